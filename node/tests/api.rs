//! The HTTP API over a real running node: a `tally_node::node::Node` (libp2p on 127.0.0.1,
//! sled in a temp dir, consensus with one validator, mempool) serving the real API on a
//! loopback port, and where a test needs it, an audit node following it with its own API
//! (`api_support`). Blocks are made by consensus, so tests wait for commits, bounded.
//!
//! Every endpoint, its success and each error status. Answers that a committing chain
//! cannot give deterministically (a transaction still pending, a duplicate of a pending
//! transaction, a full mempool, no block yet) come from a real node whose genesis names
//! two validators while only one runs: it admits transactions and never commits.
//! Malformed, forged and hostile submissions are in `api_bad_input.rs`.

// Test equipment: a step that fails is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod api_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use api_support::*;
use hyper::StatusCode;
use serde_json::{Value, json};
use tally_consensus::{CommitCertificate, Validator, ValidatorSet};
use tally_contracts::*;
use tally_crypto::Hash;
use tally_node::api;
use tally_node::block::Block;

fn hex_of(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn transfer_from(sender: u128, nonce: u64, to: u128, amount: Amount) -> SignedTransaction {
    sign_at(
        Party::Account(AccountId(sender)),
        nonce,
        &[&key(sender as u64)],
        TxKind::Transfer {
            id: TransferId((sender << 64) | u128::from(nonce)),
            to: AccountId(to),
            amount,
            memo: tally_contracts::Memo::NONE,
        },
    )
}

/// Account `id`'s registration (its nonce 0), co-signed by Bank A, in KYC tier `tier`: a
/// new sender's first transaction that admission takes (a transfer from an account no node
/// knows is refused `UNKNOWN_SENDER`); the sender's next nonces are then taken under its key.
fn opening(id: u128, tier: u8) -> SignedTransaction {
    let k = key(id as u64);
    sign_at(
        Party::Account(AccountId(id)),
        0,
        &[&k, &institution_key(BANK_A)],
        TxKind::RegisterAccount {
            account: AccountId(id),
            key: k.public_key(),
            currency: Currency::CNY,
            institution: BANK_A,
            tier,
            identity: tally_crypto::Hash::digest("test/identity", &id.to_le_bytes()),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_in_both_forms_then_status_until_committed() {
    let net = TestNet::start().await;
    let k = key(100);
    let bank = institution_key(BANK_A);
    let register = net.sign(
        Party::Account(AccountId(100)),
        &[&k, &bank],
        TxKind::RegisterAccount {
            account: AccountId(100),
            key: k.public_key(),
            currency: Currency::CNY,
            institution: BANK_A,
            tier: 0,
            identity: Hash::digest("identity", b"100"),
        },
    );
    // The JSON form, answered at once with its hash.
    let answer = post_json(
        &net.api,
        "/v1/transactions",
        serde_json::to_vec(&register).unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["status"], "pending");
    assert_eq!(hex_of(&body["hash"]), register.hash().to_hex());

    // Consensus commits it; the status endpoint follows it there.
    let committed = net.until_committed(register.hash()).await;
    let height = committed["height"].as_u64().unwrap();
    assert!(height >= 1);
    assert_eq!(committed["index"], 0, "{committed}");
    assert_eq!(committed["code"], "OK");
    assert_eq!(committed["events"][0]["kind"], "AccountRegistered");
    assert_eq!(committed["events"][0]["id"], format!("{height}:0"));
    assert_eq!(committed["events"][0]["tx"], register.hash().to_hex());
    // It is the transaction the committed block holds.
    let block = Block::decode(&net.storage().block(height).unwrap().unwrap()).unwrap();
    assert_eq!(block.txs, vec![register.clone().into()]);

    // The binary form of the same transaction, once committed: refused.
    let again = post_bytes(&net.api, "/v1/transactions", encoding::encode(&register)).await;
    let body = again.error(StatusCode::CONFLICT, "ALREADY_COMMITTED");
    assert_eq!(hex_of(&body["hash"]), register.hash().to_hex());
    // The SDK sending it again (as after a lost answer) gets its one receipt, not an error.
    let receipt = net.api.api.submit(&register).await.unwrap();
    assert_eq!(
        (receipt.code.as_str(), receipt.height),
        ("OK", Some(height))
    );
    assert_eq!(receipt.hash, register.hash());

    // The binary form of a new transaction, waited for.
    let bind = net.sign(
        Party::Account(AccountId(100)),
        &[&k, &bank],
        TxKind::BindCard {
            card: CardToken([100; 32]),
            bank: BANK_A,
        },
    );
    let view = net.commit_signed(&bind).await;
    assert!(view["height"].as_u64().unwrap() > height);
    assert_eq!(view["events"][0]["kind"], "CardBound");

    // A never-seen hash is unknown; a malformed one is refused.
    get(
        &net.api,
        &format!("/v1/transactions/{}", Hash::digest("x", b"y").to_hex()),
    )
    .await
    .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    get(&net.api, "/v1/transactions/nothex")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_HEX");
    get(&net.api, "/v1/transactions/abcd")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_HEX");
    net.shutdown().await;
}

/// A real node that cannot commit (its genesis names two validators; one runs): what is
/// admitted stays pending, so "pending", "duplicate", "nonce taken", "busy" and "no block
/// yet" are answered deterministically. Then the node stops under the API: "shutting down".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_commit_answers_pending_duplicate_busy_and_not_found() {
    let net = TestNet::start_with(Setup {
        genesis_validators: 2,
        limits: vec![("mempool_txs_max", 3)],
        api_limits: api::Limits {
            waiters_max: 1,
            ..api::Limits::default()
        },
        ..Setup::default()
    })
    .await;
    // No block yet.
    get(&net.api, "/v1/blocks/latest")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    get(&net.api, "/v1/blocks/1")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    get(&net.api, "/v1/validators")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    let health = get(&net.api, "/health").await;
    assert_eq!(health.status, StatusCode::OK);
    let body = health.json();
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["height"], Value::Null, "{body}");

    let first = opening(100, 0);
    let answer = post_json(
        &net.api,
        "/v1/transactions",
        serde_json::to_vec(&first).unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let status_path = format!("/v1/transactions/{}", first.hash().to_hex());
    let pending = get(&net.api, &status_path).await;
    assert_eq!(pending.status, StatusCode::OK);
    assert_eq!(
        pending.json(),
        json!({"status": "pending", "hash": first.hash().to_hex()})
    );
    // The same transaction again while it waits; another one with the same nonce; one
    // too far ahead.
    post_bytes(&net.api, "/v1/transactions", encoding::encode(&first))
        .await
        .error(StatusCode::CONFLICT, "DUPLICATE");
    post_bytes(
        &net.api,
        "/v1/transactions",
        encoding::encode(&opening(100, 1)),
    )
    .await
    .error(StatusCode::CONFLICT, "NONCE_TAKEN");
    post_bytes(
        &net.api,
        "/v1/transactions",
        encoding::encode(&transfer_from(
            100,
            1 + tally_node::node::NONCE_AHEAD_MAX,
            101,
            2,
        )),
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY, "NONCE_TOO_FAR_AHEAD");

    // Waiting ends with the transaction still pending.
    let second = transfer_from(100, 1, 101, 1);
    let answer = post_bytes(
        &net.api,
        "/v1/transactions?wait_ms=50",
        encoding::encode(&second),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    assert_eq!(answer.json()["status"], "pending");

    // One submission waiting for its commit is all this API allows: the next is 429.
    let third = transfer_from(100, 2, 101, 1);
    let api_addr = net.api.clone();
    let waiter = tokio::spawn(async move {
        post_bytes(
            &api_addr,
            "/v1/transactions?wait_ms=1500",
            encoding::encode(&third),
        )
        .await
    });
    let third_path = format!(
        "/v1/transactions/{}",
        transfer_from(100, 2, 101, 1).hash().to_hex()
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while get(&net.api, &third_path).await.status != StatusCode::OK {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = post_bytes(
        &net.api,
        "/v1/transactions?wait_ms=100",
        encoding::encode(&opening(200, 0)),
    )
    .await;
    refused.error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_WAITERS");
    assert!(refused.headers.contains_key("retry-after"));
    let waited = waiter.await.unwrap();
    assert_eq!(waited.status, StatusCode::ACCEPTED, "{}", waited.text());
    assert_eq!(waited.json()["status"], "pending");

    // Three transactions wait: the mempool is full.
    let busy = post_bytes(
        &net.api,
        "/v1/transactions",
        encoding::encode(&opening(200, 0)),
    )
    .await;
    busy.error(StatusCode::SERVICE_UNAVAILABLE, "BUSY");
    assert!(busy.headers.contains_key("retry-after"));
    assert_eq!(
        net.validator.context.metrics.mempool_txs.get(),
        3,
        "the refused ones are not in the mempool"
    );

    // The node stops while its API still serves: submissions are refused, reads answer.
    let (api_addr, _keep_api) = net.stop_nodes_keep_api().await;
    post_bytes(
        &api_addr,
        "/v1/transactions",
        encoding::encode(&transfer_from(300, 0, 101, 1)),
    )
    .await
    .error(StatusCode::SERVICE_UNAVAILABLE, "SHUTTING_DOWN");
    get(&api_addr, "/v1/blocks/latest")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
}

/// The node's bounded memories filled past small configured bounds: more signing keys than
/// the key cache holds, more blocks than the page cache holds. The gauges stay within the
/// bounds and the node goes on committing. (The mempool's bound, filled past, is answered
/// BUSY in `a_node_that_cannot_commit_answers_pending_duplicate_busy_and_not_found`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bounds_hold_when_filled_past_and_the_node_goes_on() {
    const KEYS: i64 = 4;
    const CACHE_BYTES: i64 = 256 * 1024;
    const MEMPOOL_BYTES: i64 = 1024 * 1024;
    const QUEUE: i64 = 16;
    let net = TestNet::start_with(Setup {
        limits: vec![
            ("key_cache_entries", KEYS as u64),
            ("storage_cache_bytes", CACHE_BYTES as u64),
            ("block_bytes_max", 512 * 1024),
            ("mempool_bytes_max", MEMPOOL_BYTES as u64),
            ("chain_inputs_max", QUEUE as u64),
            ("outbound_max", QUEUE as u64),
        ],
        ..Setup::default()
    })
    .await;
    let memory = &net.validator.context.metrics.memory;
    let (mut most_keys, mut most_cached) = (0, 0);
    // Twelve wallets: twelve keys of their own beside the bank's, three times the cache.
    let wallets: Vec<u128> = (100..112).collect();
    for &id in &wallets {
        net.funded_wallet(id, BANK_A, 1_000).await;
        most_keys = most_keys.max(memory.key_cache_entries.get());
        most_cached = most_cached.max(memory.storage_cache_bytes.get());
    }
    for round in 0..4u64 {
        let transfers: Vec<_> = wallets
            .iter()
            .map(|&id| transfer_from(id, 3 + round, 100 + (id + 1 - 100) % 12, 10))
            .collect();
        for committed in net.commit_all(&transfers).await {
            assert_eq!(committed["code"], "OK", "{committed}");
        }
        most_keys = most_keys.max(memory.key_cache_entries.get());
        most_cached = most_cached.max(memory.storage_cache_bytes.get());
        assert!(memory.mempool_bytes.get() <= MEMPOOL_BYTES);
        assert!(memory.chain_inputs_queued.get() <= QUEUE);
        assert!(memory.outbound_queued.get() <= QUEUE);
    }
    assert!(
        (1..=KEYS).contains(&most_keys),
        "key cache held {most_keys} keys, bound {KEYS}"
    );
    assert!(
        (1..=CACHE_BYTES).contains(&most_cached),
        "page cache held {most_cached} bytes, bound {CACHE_BYTES}"
    );
    assert!(
        memory.resident_bytes.get() > 0,
        "resident memory is reported"
    );
    let metrics = get(&net.api, "/metrics").await.text();
    for name in [
        "tally_key_cache_entries",
        "tally_storage_cache_bytes",
        "tally_mempool_bytes",
        "tally_resident_memory_bytes",
        "tally_api_streams",
        "tally_api_waiters",
        "tally_api_scans",
        "tally_evidence_pending",
        "tally_evidence_remembered",
        "tally_verified_blocks",
        "tally_chain_inputs_queued",
        "tally_outbound_queued",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    // The balances moved in a ring: everyone still holds what they were topped up with.
    for &id in &wallets {
        let balance = get(&net.api, &format!("/v1/accounts/{id}")).await.json();
        assert_eq!(balance["balance"], 1_000, "{balance}");
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_answers_the_outcome() {
    let net = TestNet::start().await;
    let k = net.funded_wallet(100, BANK_A, 0).await;
    net.funded_wallet(101, BANK_A, 0).await;
    let me = Party::Account(AccountId(100));
    let top_up = net.sign(
        me,
        &[&k, &institution_key(BANK_A)],
        TxKind::TopUp {
            id: TransferId(1),
            card: CardToken([100; 32]),
            amount: 5_000,
        },
    );
    let answer = post_bytes(
        &net.api,
        &format!("/v1/transactions?wait_ms={WAIT_MS}"),
        encoding::encode(&top_up),
    )
    .await;
    let body = answer.json();
    assert_eq!(answer.status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "committed");
    assert_eq!(body["code"], "OK");
    assert_eq!(body["events"][0]["kind"], "ToppedUp");
    assert_eq!(body["events"][0]["event"]["ToppedUp"]["amount"], 5_000);
    let height = body["height"].as_u64().unwrap();
    assert!(net.storage().block(height).unwrap().is_some());

    // A transfer above the balance is committed and rejected: 422 with the ledger's code.
    let overdraw = net.sign(
        me,
        &[&k],
        TxKind::Transfer {
            id: TransferId(2),
            to: AccountId(101),
            amount: 6_000,
            memo: tally_contracts::Memo::NONE,
        },
    );
    let answer = post_bytes(
        &net.api,
        &format!("/v1/transactions?wait_ms={WAIT_MS}"),
        encoding::encode(&overdraw),
    )
    .await;
    let body = answer.error(StatusCode::UNPROCESSABLE_ENTITY, "INSUFFICIENT_FUNDS");
    assert_eq!(hex_of(&body["hash"]), overdraw.hash().to_hex());
    // The status endpoint says the same: committed, with the rejection's code, no events.
    let status = net.until_committed(overdraw.hash()).await;
    assert_eq!(status["code"], "INSUFFICIENT_FUNDS");
    assert_eq!(status["events"], json!([]));
    let account = get(&net.api, "/v1/accounts/100").await.json();
    assert_eq!(account["balance"], 5_000);

    let late = net.sign(
        me,
        &[&k],
        TxKind::SetSecondFactor {
            key: None,
            threshold: 0,
        },
    );
    post_bytes(
        &net.api,
        "/v1/transactions?wait_ms=30001",
        encoding::encode(&late),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "BAD_WAIT");
    post_bytes(
        &net.api,
        "/v1/transactions?wait_ms=soon",
        encoding::encode(&late),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "BAD_QUERY");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_node_serves_reads_and_refuses_submissions() {
    let net = TestNet::with_audit().await;
    net.funded_wallet(100, BANK_A, 7_000).await;
    let height = net.audit_caught_up().await;
    let audit_api = net.audit_api.clone().unwrap();
    let theirs = get(&audit_api, "/v1/accounts/100").await;
    assert_eq!(theirs.status, StatusCode::OK);
    let theirs = theirs.json();
    assert!(theirs["height"].as_u64().unwrap() >= height);
    assert_eq!(theirs["balance"], 7_000);
    assert_eq!(
        theirs["account"],
        get(&net.api, "/v1/accounts/100").await.json()["account"]
    );
    // The same certified block on both.
    let ours = get(&net.api, &format!("/v1/blocks/{height}")).await.json();
    let audited = get(&audit_api, &format!("/v1/blocks/{height}"))
        .await
        .json();
    assert_eq!(ours, audited);
    let health = get(&audit_api, "/health").await;
    assert_eq!(health.status, StatusCode::OK);

    // It never takes a transaction.
    let k = key(100);
    let transfer = net.sign(
        Party::Account(AccountId(100)),
        &[&k],
        TxKind::Transfer {
            id: TransferId(5),
            to: AccountId(101),
            amount: 1,
            memo: tally_contracts::Memo::NONE,
        },
    );
    post_bytes(&audit_api, "/v1/transactions", encoding::encode(&transfer))
        .await
        .error(StatusCode::FORBIDDEN, "READ_ONLY");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_paged_history() {
    let net = TestNet::start().await;
    let k = net.funded_wallet(100, BANK_A, 10_000).await;
    net.funded_wallet(101, BANK_A, 0).await;
    let view = net
        .commit(
            Party::Account(AccountId(100)),
            &[&k],
            TxKind::Transfer {
                id: TransferId(7),
                to: AccountId(101),
                amount: 2_500,
                memo: tally_contracts::Memo::NONE,
            },
        )
        .await;
    let transfer_height = view["height"].as_u64().unwrap();

    let answer = get(&net.api, "/v1/accounts/100").await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert!(
        body["height"].as_u64().unwrap() >= transfer_height,
        "{body}"
    );
    assert_eq!(body["balance"], 7_500);
    assert_eq!(body["available"], 7_500);
    assert_eq!(body["account"]["frozen"], false);
    assert_eq!(body["account"]["currency"], json!(*b"CNY"));
    assert_eq!(body["tier_limits"]["single_max"], 1_000_000);
    assert_eq!(
        get(&net.api, "/v1/accounts/101").await.json()["balance"],
        2_500
    );

    get(&net.api, "/v1/accounts/999")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    get(&net.api, "/v1/accounts/alice")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_ID");
    get(&net.api, "/v1/accounts/-1")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_ID");

    // Account 100: register, bind, top up, transfer: newest first, two per page.
    let page = get(&net.api, "/v1/accounts/100/history?limit=2")
        .await
        .json();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["height"], transfer_height);
    assert_eq!(
        entries[0]["transaction"]["tx"]["kind"]["Transfer"]["amount"],
        2_500
    );
    assert_eq!(entries[0]["code"], "OK");
    assert_eq!(
        entries[1]["transaction"]["tx"]["kind"]["TopUp"]["amount"],
        10_000
    );
    let cursor = page["next_before"].as_str().unwrap().to_string();
    let older = get(
        &net.api,
        &format!("/v1/accounts/100/history?limit=2&before={cursor}"),
    )
    .await
    .json();
    let kinds: Vec<String> = older["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["transaction"]["tx"]["kind"]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(kinds, ["BindCard", "RegisterAccount"]);
    let last = get(
        &net.api,
        &format!(
            "/v1/accounts/100/history?limit=2&before={}",
            older["next_before"].as_str().unwrap()
        ),
    )
    .await
    .json();
    assert_eq!(last["entries"], json!([]));
    assert_eq!(last["next_before"], Value::Null);
    // The receiving side sees the transfer too.
    let theirs = get(&net.api, "/v1/accounts/101/history?limit=1")
        .await
        .json();
    assert_eq!(
        theirs["entries"][0]["events"][0]["TransferReceived"]["amount"],
        2_500
    );

    for (query, code) in [
        ("limit=0", "BAD_LIMIT"),
        ("limit=101", "BAD_LIMIT"),
        ("limit=many", "BAD_QUERY"),
        ("before=7", "BAD_CURSOR"),
        ("before=a:b", "BAD_CURSOR"),
    ] {
        get(&net.api, &format!("/v1/accounts/100/history?{query}"))
            .await
            .error(StatusCode::BAD_REQUEST, code);
    }
    get(&net.api, "/v1/accounts/999/history")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    get(&net.api, "/v1/accounts/x/history")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_ID");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_rates_institutions_cycles_and_codes() {
    let net = TestNet::start().await;
    let start_ms = now_ms();
    let payer = net.funded_wallet(100, BANK_A, 50_000).await;
    net.funded_wallet(200, BANK_B, 0).await;
    let merchant = key(300);
    net.commit(
        Party::Institution(BANK_A),
        &[&institution_key(BANK_A), &merchant],
        TxKind::RegisterMerchant {
            account: AccountId(300),
            key: merchant.public_key(),
            currency: Currency::CNY,
            fee_bps: 100,
            identity: Hash::digest("identity", b"300"),
        },
    )
    .await;
    net.commit(
        Party::Account(AccountId(300)),
        &[&merchant],
        TxKind::CreateOrder {
            order: OrderId(42),
            amount: 1_200,
            currency: Currency::CNY,
            expires_at_ms: start_ms + 3_600_000,
            items: Hash::digest("items", b"tea"),
        },
    )
    .await;
    net.commit(
        Party::Account(AccountId(100)),
        &[&payer],
        TxKind::PayOrder {
            id: TransferId(9),
            order: OrderId(42),
            source: PaymentSource::Balance,
            escrow_ms: None,
        },
    )
    .await;
    let order = get(&net.api, "/v1/orders/42").await;
    assert_eq!(order.status, StatusCode::OK);
    let order = order.json();
    assert_eq!(order["record"]["amount"], 1_200);
    assert_eq!(order["record"]["paid"], 1_200);
    assert_eq!(order["record"]["payer"], 100);
    get(&net.api, "/v1/orders/43")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    get(&net.api, "/v1/orders/x")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_ID");

    // A held payment: its hold reads back by transfer id.
    net.commit(
        Party::Account(AccountId(300)),
        &[&merchant],
        TxKind::CreateOrder {
            order: OrderId(44),
            amount: 700,
            currency: Currency::CNY,
            expires_at_ms: start_ms + 3_600_000,
            items: Hash::digest("items", b"cake"),
        },
    )
    .await;
    net.commit(
        Party::Account(AccountId(100)),
        &[&payer],
        TxKind::PayOrder {
            id: TransferId(12),
            order: OrderId(44),
            source: PaymentSource::Balance,
            escrow_ms: Some(3_600_000),
        },
    )
    .await;
    let hold = get(&net.api, "/v1/holds/12").await;
    assert_eq!(hold.status, StatusCode::OK, "{}", hold.text());
    assert_eq!(hold.json()["record"]["amount"], 700, "{}", hold.text());
    get(&net.api, "/v1/holds/13")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    get(&net.api, "/v1/holds/x")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_ID");

    // A bill: issued by a registered biller, read back, unknown ones not found.
    let biller = key(400);
    net.commit(
        Party::Institution(BANK_B),
        &[&institution_key(BANK_B), &biller],
        TxKind::RegisterBiller {
            account: AccountId(400),
            key: biller.public_key(),
            currency: Currency::CNY,
            identity: Hash::digest("identity", b"400"),
        },
    )
    .await;
    net.commit(
        Party::Account(AccountId(400)),
        &[&biller],
        TxKind::IssueBill {
            bill: BillId(8),
            customer: Hash::digest("customer", b"100"),
            amount: 300,
            due_ms: start_ms + 3_600_000,
        },
    )
    .await;
    let bill = get(&net.api, "/v1/bills/8").await;
    assert_eq!(bill.status, StatusCode::OK, "{}", bill.text());
    assert_eq!(bill.json()["record"]["amount"], 300, "{}", bill.text());
    get(&net.api, "/v1/bills/1")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    get(&net.api, "/v1/bills/x")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_ID");

    // FX: a published rate reads back, filtered by pair.
    let valid_until_ms = now_ms() + 3_600_000;
    net.commit(
        Party::Institution(FX),
        &[&institution_key(FX)],
        TxKind::PublishFxRate {
            base: Currency::CNY,
            quote: Currency::USD,
            rate: 140_000_000,
            valid_from_ms: start_ms - 1_000,
            valid_until_ms,
        },
    )
    .await;
    let rates = get(&net.api, "/v1/fx-rates?base=CNY&quote=USD")
        .await
        .json();
    assert_eq!(rates["record"]["rates"][0]["rate"], 140_000_000);
    assert_eq!(rates["record"]["rates"][0]["provider"], FX.0);
    assert_eq!(
        rates["record"]["rates"][0]["valid_until_ms"],
        valid_until_ms
    );
    let none = get(&net.api, "/v1/fx-rates?base=USD").await.json();
    assert_eq!(none["record"]["rates"], json!([]));
    get(&net.api, "/v1/fx-rates?base=usd")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_CURRENCY");

    // A transfer between banks leaves an open obligation, then a cycle nets it.
    net.commit(
        Party::Account(AccountId(100)),
        &[&payer],
        TxKind::Transfer {
            id: TransferId(10),
            to: AccountId(200),
            amount: 3_000,
            memo: tally_contracts::Memo::NONE,
        },
    )
    .await;
    let bank_b = get(&net.api, "/v1/institutions/2").await.json();
    let open = &bank_b["record"]["open_obligations"];
    assert_eq!(open.as_array().unwrap().len(), 1, "{bank_b}");
    assert_eq!(open[0]["from"], BANK_A.0);
    assert_eq!(open[0]["to"], BANK_B.0);
    assert_eq!(open[0]["amount"], 3_000);
    assert_eq!(bank_b["record"]["positions"][0]["net"], 3_000);
    get(&net.api, "/v1/institutions/77")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");

    // The directory: every institution by name with its roles, every currency's decimals.
    let directory = get(&net.api, "/v1/directory").await.json();
    assert_eq!(
        directory["record"]["institutions"],
        json!([
            { "id": 1, "name": "Bank A", "roles": ["bank", "acquirer", "kyc"], "active": true },
            { "id": 2, "name": "Bank B", "roles": ["bank", "acquirer", "kyc"], "active": true },
            { "id": 3, "name": "Platform", "roles": ["platform", "kyc"], "active": true },
            { "id": 4, "name": "FX Provider", "roles": ["fx_provider"], "active": true },
            { "id": 5, "name": "Regulator", "roles": ["regulator"], "active": true },
        ]),
        "{directory}"
    );
    assert_eq!(
        directory["record"]["currencies"],
        json!([{ "code": "CNY", "decimals": 2 }, { "code": "USD", "decimals": 2 }])
    );
    get(&net.api, "/v1/institutions/x")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_ID");
    net.commit(
        Party::Institution(BANK_A),
        &[&institution_key(BANK_A)],
        TxKind::SettlementCycle,
    )
    .await;
    let cycle = get(&net.api, "/v1/settlement-cycles/1").await.json();
    assert_eq!(cycle["record"]["id"], 1);
    assert_eq!(cycle["record"]["positions"].as_array().unwrap().len(), 2);
    let bank_b = get(&net.api, "/v1/institutions/2").await.json();
    assert_eq!(bank_b["record"]["open_obligations"], json!([]));
    get(&net.api, "/v1/settlement-cycles/2")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    get(&net.api, "/v1/settlement-cycles/x")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_ID");

    // A payment code: unused, then collected by the merchant, then used.
    let code = PaymentCode {
        payer: AccountId(100),
        payer_key: payer.public_key(),
        max_amount: 500,
        issued_at_ms: now_ms() - 60_000,
        expires_at_ms: now_ms() + 100_000,
        code_nonce: 5,
        merchant: Some(AccountId(300)),
    };
    let path = format!("/v1/payment-codes/{}/5", payer.public_key().to_hex());
    assert_eq!(get(&net.api, &path).await.json()["record"]["used"], false);
    net.commit(
        Party::Account(AccountId(300)),
        &[&merchant],
        TxKind::CollectByCode {
            id: TransferId(11),
            code,
            code_signature: code.sign(&payer, CHAIN),
            amount: 400,
        },
    )
    .await;
    assert_eq!(get(&net.api, &path).await.json()["record"]["used"], true);
    get(&net.api, "/v1/payment-codes/zz/5")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_HEX");
    get(
        &net.api,
        &format!("/v1/payment-codes/{}/five", payer.public_key().to_hex()),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "BAD_ID");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_with_certificates_validators_and_evidence() {
    let net = TestNet::start().await;
    let k = key(100);
    let register = net.sign(
        Party::Account(AccountId(100)),
        &[&k, &institution_key(BANK_A)],
        TxKind::RegisterAccount {
            account: AccountId(100),
            key: k.public_key(),
            currency: Currency::CNY,
            institution: BANK_A,
            tier: 0,
            identity: Hash::digest("identity", b"100"),
        },
    );
    let view = net.commit_signed(&register).await;
    let height = view["height"].as_u64().unwrap();
    let set = ValidatorSet::new(vec![Validator {
        public_key: validator_key(0).public_key(),
        power: 1,
    }])
    .unwrap();

    // The block that holds the transaction, with its certificate and results.
    let block = get(&net.api, &format!("/v1/blocks/{height}")).await;
    assert_eq!(block.status, StatusCode::OK);
    let block = block.json();
    assert_eq!(block["height"], height);
    assert_eq!(block["header"]["height"], height);
    assert_eq!(block["txs"], json!([register]));
    assert_eq!(block["results"]["receipts"][0]["result"]["Ok"], Value::Null);
    assert_eq!(
        block["results"]["receipts"][0]["tx"],
        register.hash().to_hex()
    );
    // The certificate served is the stored one, and it verifies for the validator set.
    let certificate: CommitCertificate =
        serde_json::from_value(block["certificate"].clone()).unwrap();
    certificate.verify(&set, CHAIN).unwrap();
    let stored = net.storage().block(height).unwrap().unwrap();
    assert_eq!(certificate.block, Block::hash_of(&stored));
    assert_eq!(
        block["hash"],
        serde_json::to_value(Block::hash_of(&stored)).unwrap()
    );

    // The latest block: at or above it, certified too.
    let latest = get(&net.api, "/v1/blocks/latest").await;
    assert_eq!(latest.status, StatusCode::OK);
    let latest = latest.json();
    let latest_height = latest["height"].as_u64().unwrap();
    assert!(latest_height >= height);
    assert_eq!(latest["header"]["height"], latest_height);
    let certificate: CommitCertificate =
        serde_json::from_value(latest["certificate"].clone()).unwrap();
    certificate.verify(&set, CHAIN).unwrap();
    assert_eq!(
        certificate.block,
        Block::hash_of(&net.storage().block(latest_height).unwrap().unwrap())
    );

    net.wait_height(2).await;
    let first = get(&net.api, "/v1/blocks/1").await.json();
    assert_eq!(first["height"], 1);
    let second = get(&net.api, "/v1/blocks/2").await.json();
    assert_eq!(second["header"]["parent"], first["hash"]);
    get(&net.api, &format!("/v1/blocks/{}", u64::MAX))
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    get(&net.api, "/v1/blocks/tall")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_ID");
    // The genesis is no block; it is not a pruned one either.
    get(&net.api, "/v1/blocks/0")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_HEIGHT");

    let validators = get(&net.api, "/v1/validators").await;
    assert_eq!(validators.status, StatusCode::OK);
    let validators = validators.json();
    assert!(validators["height"].as_u64().unwrap() >= height);
    assert_eq!(validators["signers"], json!([0]));
    assert_eq!(
        validators["proposer"],
        serde_json::to_value(validator_key(0).public_key()).unwrap()
    );

    // An honest single validator: no evidence; fewer than 1,000 blocks: one page.
    let evidence = get(&net.api, "/v1/evidence").await;
    assert_eq!(evidence.status, StatusCode::OK);
    let evidence = evidence.json();
    assert_eq!(evidence["items"], json!([]));
    assert_eq!(evidence["next_before_height"], Value::Null);
    let evidence = get(&net.api, "/v1/evidence?before_height=2").await.json();
    assert_eq!(evidence["items"], json!([]));
    get(&net.api, "/v1/evidence?before_height=x")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_QUERY");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_unknown_routes() {
    let net = TestNet::start().await;
    net.wait_height(2).await;
    let health = get(&net.api, "/health").await;
    assert_eq!(health.status, StatusCode::OK);
    let body = health.json();
    assert_eq!(body["status"], "ok");
    assert!(body["height"].as_u64().unwrap() >= 2, "{body}");

    // The node's own metrics: the committed height, set by the chain task.
    let metrics = get(&net.api, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = metrics.text();
    let height: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tally_height "))
        .unwrap_or_else(|| panic!("no tally_height in {text}"))
        .trim()
        .parse()
        .unwrap();
    assert!(height >= 2, "{text}");

    // The alarm an audit node raises on a mismatch (set here on the node's real metrics;
    // the audit tests raise it for real) turns /health into 503.
    net.validator.context.metrics.audit_alarm.set(1);
    let alarmed = get(&net.api, "/health").await;
    alarmed.error(StatusCode::SERVICE_UNAVAILABLE, "AUDIT_ALARM");
    assert!(alarmed.headers.contains_key("retry-after"));
    net.validator.context.metrics.audit_alarm.set(0);

    get(&net.api, "/v1/nothing")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    call(&net.api, "DELETE", "/v1/accounts/1", &[], Vec::new())
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    call(&net.api, "GET", "/v1/transactions", &[], Vec::new())
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    net.shutdown().await;
}

/// Reads from `stream` until `seen` holds `count` events: `(id, kind, tx)`.
async fn read_into(
    stream: &mut EventStream,
    seen: &mut Vec<(String, String, Option<Hash>)>,
    count: usize,
) {
    while seen.len() < count {
        let (id, data) = stream.next().await;
        assert_eq!(data["id"], id);
        let tx = data["tx"].as_str().map(|h| Hash::from_hex(h).unwrap());
        seen.push((id, data["kind"].as_str().unwrap().to_string(), tx));
    }
}

/// Subscribe, receive some events, drop the connection; more blocks commit while away;
/// reconnect with `Last-Event-ID`, twice (once in the middle of a block's events); then
/// the live tail. Every committed event arrives exactly once, in order, none skipped, as
/// the committed blocks' stored results list them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_resumes_after_a_disconnect_exactly_once() {
    let net = TestNet::start().await;
    let k = net.funded_wallet(100, BANK_A, 100_000).await;
    net.funded_wallet(101, BANK_B, 0).await;
    let me = Party::Account(AccountId(100));
    let transfers = |from_nonce: u64, n: u64, first_id: u128| -> Vec<SignedTransaction> {
        (0..n)
            .map(|i| {
                sign_at(
                    me,
                    from_nonce + i,
                    &[&k],
                    TxKind::Transfer {
                        id: TransferId(first_id + u128::from(i)),
                        to: AccountId(101),
                        amount: 10 + i,
                        memo: tally_contracts::Memo::NONE,
                    },
                )
            })
            .collect()
    };

    let mut seen = Vec::new();
    let mut stream = EventStream::open(&net.api, "/v1/events?from_height=1", None).await;
    read_into(&mut stream, &mut seen, 4).await;
    drop(stream); // the client goes away mid-stream

    // Blocks keep coming while it is away: several transfers (two events each: between
    // banks, the transfer and the obligation), submitted at once.
    net.commit_all(&transfers(net.nonce(me), 4, 100)).await;
    let expected = stored_events(net.storage(), net.head());
    // Resume, and drop again right inside a block's events.
    let cut = (seen.len()..expected.len() - 1)
        .find(|&i| {
            let (a, b) = (&expected[i].0, &expected[i + 1].0);
            a.split(':').next() == b.split(':').next()
        })
        .expect("a block with two events");
    let mut stream = EventStream::open(&net.api, "/v1/events", Some(&seen.last().unwrap().0)).await;
    read_into(&mut stream, &mut seen, cut + 1).await;
    drop(stream); // inside a block: its next event is in the same block

    net.commit_all(&transfers(net.nonce(me), 3, 200)).await;
    let mut stream = EventStream::open(&net.api, "/v1/events", Some(&seen.last().unwrap().0)).await;
    let expected = stored_events(net.storage(), net.head());
    read_into(&mut stream, &mut seen, expected.len()).await;

    // Live tail: blocks committed while the stream is open arrive on it.
    let views = net.commit_all(&transfers(net.nonce(me), 2, 300)).await;
    let last_height = views
        .iter()
        .map(|v| v["height"].as_u64().unwrap())
        .max()
        .unwrap();
    let expected = stored_events(net.storage(), last_height);
    read_into(&mut stream, &mut seen, expected.len()).await;
    assert_eq!(seen, expected, "every event exactly once, in order");
    // 4 + 3 + 2 transfers, each a transfer and an obligation between the banks.
    let transfers_seen = seen.iter().filter(|e| e.1 == "TransferReceived").count();
    assert_eq!(transfers_seen, 9);
    stream.assert_quiet().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_filters_and_stream_limits() {
    let net = TestNet::start_with(Setup {
        api_limits: api::Limits {
            streams_max: 2,
            ..api::Limits::default()
        },
        ..Setup::default()
    })
    .await;
    let k = net.funded_wallet(100, BANK_A, 100_000).await;
    net.funded_wallet(101, BANK_B, 0).await;
    let view = net
        .commit(
            Party::Account(AccountId(100)),
            &[&k],
            TxKind::Transfer {
                id: TransferId(1),
                to: AccountId(101),
                amount: 10,
                memo: tally_contracts::Memo::NONE,
            },
        )
        .await;
    let transfer_height = view["height"].as_u64().unwrap();

    // Account 101: its registration, card, and the transfer it received.
    let mut mine = EventStream::open(&net.api, "/v1/events?from_height=1&account=101", None).await;
    let mut kinds = Vec::new();
    for _ in 0..3 {
        kinds.push(mine.next().await.1["kind"].as_str().unwrap().to_string());
    }
    assert_eq!(
        kinds,
        ["AccountRegistered", "CardBound", "TransferReceived"]
    );
    mine.assert_quiet().await;
    drop(mine);

    let mut by_kind = EventStream::open(
        &net.api,
        "/v1/events?from_height=1&kind=ToppedUp,TransferReceived&institution=1",
        None,
    )
    .await;
    let (_, data) = by_kind.next().await;
    assert_eq!(data["kind"], "ToppedUp");
    assert_eq!(data["event"]["ToppedUp"]["account"], 100);
    // The transfer names no institution.
    by_kind.assert_quiet().await;
    drop(by_kind);

    let mut merchant =
        EventStream::open(&net.api, "/v1/events?from_height=1&merchant=100", None).await;
    merchant.assert_quiet().await;
    drop(merchant);

    // `from_height` and `from_index` start inside a block.
    let in_block: Vec<_> = stored_events(net.storage(), transfer_height)
        .into_iter()
        .filter(|e| e.0.starts_with(&format!("{transfer_height}:")))
        .collect();
    assert!(in_block.len() >= 2, "{in_block:?}");
    let mut late = EventStream::open(
        &net.api,
        &format!("/v1/events?from_height={transfer_height}&from_index=1"),
        None,
    )
    .await;
    assert_eq!(late.next().await.0, in_block[1].0);

    // Two streams are open (this one, and `late`): a third is refused.
    let one = EventStream::open(&net.api, "/v1/events", None).await;
    let refused = get(&net.api, "/v1/events").await;
    refused.error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_STREAMS");
    assert!(refused.headers.contains_key("retry-after"));
    drop(one);
    drop(late);

    for (query, code) in [
        ("kind=Nonsense", "BAD_KIND"),
        ("account=bob", "BAD_ID"),
        ("merchant=-3", "BAD_ID"),
        ("institution=4294967296", "BAD_ID"),
        ("from_height=x", "BAD_QUERY"),
    ] {
        // A refused stream holds no slot, so the limit does not hide these answers; the
        // dropped ones free theirs once their task sees the client gone.
        tokio::time::sleep(Duration::from_millis(50)).await;
        get(&net.api, &format!("/v1/events?{query}"))
            .await
            .error(StatusCode::BAD_REQUEST, code);
    }
    call(
        &net.api,
        "GET",
        "/v1/events",
        &[("last-event-id", "nine")],
        Vec::new(),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "BAD_CURSOR");
    net.shutdown().await;
}

/// The router's route table and the paths of `openapi.yaml` are the same set, and each
/// documented path is served by the running node's API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_every_route() {
    let spec = include_str!("../openapi.yaml");
    let routes: BTreeSet<String> = api::route_scopes()
        .iter()
        .map(|(_, path, _)| path.to_string())
        .collect();
    let documented: BTreeSet<String> = spec
        .lines()
        .filter(|l| l.starts_with("  /") && l.trim_end().ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':').to_string())
        .collect();
    assert!(routes.len() >= 18, "routes found: {routes:?}");
    assert_eq!(routes, documented);

    let net = TestNet::start().await;
    net.wait_height(1).await;
    for path in &documented {
        if path == "/v1/events" {
            continue; // a stream: served, and never ends
        }
        let concrete = concrete_path(path);
        let method = if path == "/v1/transactions" || path == "/v1/transactions/batch" {
            "POST"
        } else {
            "GET"
        };
        let answer = call(&net.api, method, &concrete, &[], Vec::new()).await;
        if answer.status == StatusCode::NOT_FOUND {
            assert_ne!(answer.json()["message"], "no such route", "{path}");
        }
    }
    net.shutdown().await;
}

/// A route's template with sample values for its parameters.
fn concrete_path(template: &str) -> String {
    let samples = BTreeMap::from([
        ("{hash}", Hash::ZERO.to_hex()),
        ("{id}", "100".to_string()),
        ("{height}", "1".to_string()),
        ("{payer_key}", key(1).public_key().to_hex()),
        ("{code_nonce}", "1".to_string()),
        ("{chart}", "payments".to_string()),
    ]);
    let mut concrete = template.to_string();
    for (param, value) in &samples {
        concrete = concrete.replace(param, value);
    }
    concrete
}

/// The router walk: every registered route (the table the router is built from) answers
/// only whom its scope names. Without credentials, every ledger-content route is 401; a
/// bank is refused the regulator's routes with 403; the regulator is refused nothing; the
/// public routes answer everyone. A route added without a scope could not pass: it would
/// not be in the table this walks, and the guard refuses any path the table lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_only_whom_its_scope_names() {
    let net = TestNet::start().await;
    net.funded_wallet(100, BANK_A, 1_000).await;
    let routes = api::route_scopes();
    let kinds: BTreeSet<&str> = routes
        .iter()
        .map(|(_, _, scope)| match scope {
            api::Scope::Public => "public",
            api::Scope::Submit => "submit",
            api::Scope::Metrics => "metrics",
            api::Scope::Party => "party",
            api::Scope::Regulator => "regulator",
        })
        .collect();
    assert_eq!(kinds.len(), 5, "every scope is walked: {kinds:?}");
    let anonymous = net.api.anonymous();
    let bank = net.api.as_institution(BANK_A);
    let mut refused_anonymous = Vec::new();
    for (method, template, scope) in &routes {
        let path = if *template == "/v1/events" {
            // A stream whose filter matches nothing: its answer's head is all we read.
            "/v1/events?kind=SanctionAdded".to_string()
        } else {
            concrete_path(template)
        };
        let ask = |target: &Target| {
            let (target, method, path) = (target.clone(), method.to_string(), path.clone());
            async move {
                let response = send(&target, &method, &path, &[], Vec::new()).await;
                let status = response.status();
                let body = if status.is_success() && path.starts_with("/v1/events") {
                    Vec::new()
                } else {
                    use http_body_util::BodyExt;
                    response
                        .into_body()
                        .collect()
                        .await
                        .unwrap()
                        .to_bytes()
                        .to_vec()
                };
                (status, String::from_utf8_lossy(&body).into_owned())
            }
        };
        let (status, body) = ask(&anonymous).await;
        match scope {
            api::Scope::Public | api::Scope::Submit => assert!(
                status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                "{method} {path} ({scope:?}) refused without credentials: {status} {body}"
            ),
            api::Scope::Party | api::Scope::Regulator | api::Scope::Metrics => {
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} ({scope:?}) answered without credentials: {body}"
                );
                assert!(body.contains("CREDENTIALS_REQUIRED"), "{path}: {body}");
                refused_anonymous.push(path.clone());
            }
        }
        let (status, body) = ask(&bank).await;
        match scope {
            api::Scope::Regulator | api::Scope::Metrics => {
                assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
                assert!(body.contains("OUT_OF_SCOPE"), "{path}: {body}");
            }
            _ => assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}"),
        }
        let (status, body) = ask(&net.api).await;
        assert!(
            status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
            "{method} {path} refused the regulator: {status} {body}"
        );
    }
    println!(
        "{} routes walked; refused without credentials: {refused_anonymous:?}",
        routes.len()
    );
    assert!(refused_anonymous.len() >= 16, "{refused_anonymous:?}");
    net.shutdown().await;
}

/// Who reads what, party by party: a bank its own customer and not another bank's, a
/// consumer itself and not another; bad credentials are 401 with their reason; a block
/// shows its body to the regulator alone; a key rotated on chain signs from the next block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_party_reads_its_own_and_is_refused_the_rest() {
    let net = TestNet::start().await;
    let alice = net.funded_wallet(100, BANK_A, 1_000).await;
    let bob = net.funded_wallet(200, BANK_B, 1_000).await;
    let a = net.api.as_institution(BANK_A);
    let b = net.api.as_institution(BANK_B);
    let as_alice = net.api.as_party(Party::Account(AccountId(100)), &alice);
    let as_bob = net.api.as_party(Party::Account(AccountId(200)), &bob);

    for path in ["/v1/accounts/100", "/v1/accounts/100/history"] {
        assert_eq!(get(&a, path).await.status, StatusCode::OK, "{path}");
        assert_eq!(get(&as_alice, path).await.status, StatusCode::OK, "{path}");
        get(&b, path)
            .await
            .error(StatusCode::FORBIDDEN, "OUT_OF_SCOPE");
        get(&as_bob, path)
            .await
            .error(StatusCode::FORBIDDEN, "OUT_OF_SCOPE");
        get(&net.api.anonymous(), path)
            .await
            .error(StatusCode::UNAUTHORIZED, "CREDENTIALS_REQUIRED");
    }
    assert_eq!(get(&b, "/v1/accounts/200").await.status, StatusCode::OK);
    get(&a, "/v1/institutions/2")
        .await
        .error(StatusCode::FORBIDDEN, "OUT_OF_SCOPE");
    assert_eq!(get(&a, "/v1/institutions/1").await.status, StatusCode::OK);
    // Who is who is every party's to read (names, roles, decimals), nobody else's.
    for party in [&a, &as_alice] {
        let directory = get(party, "/v1/directory").await.json();
        assert_eq!(directory["record"]["institutions"][1]["name"], "Bank B");
    }
    get(&net.api.anonymous(), "/v1/directory")
        .await
        .error(StatusCode::UNAUTHORIZED, "CREDENTIALS_REQUIRED");

    // Bob's top-up: his bank and he read it; Bank A and Alice do not.
    let bob_history = get(&as_bob, "/v1/accounts/200/history").await.json();
    let top_up = bob_history["entries"][0]["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/transactions/{top_up}");
    assert_eq!(get(&as_bob, &path).await.status, StatusCode::OK);
    assert_eq!(get(&b, &path).await.status, StatusCode::OK);
    get(&a, &path)
        .await
        .error(StatusCode::FORBIDDEN, "OUT_OF_SCOPE");
    get(&as_alice, &path)
        .await
        .error(StatusCode::FORBIDDEN, "OUT_OF_SCOPE");

    // Bad credentials: another key for the party, a party with no key, an old signature.
    let mallory = key(666);
    get(
        &net.api.as_party(Party::Account(AccountId(100)), &mallory),
        "/v1/accounts/100",
    )
    .await
    .error(StatusCode::UNAUTHORIZED, "BAD_CREDENTIALS");
    get(
        &net.api.as_party(Party::Account(AccountId(999)), &mallory),
        "/v1/accounts/100",
    )
    .await
    .error(StatusCode::UNAUTHORIZED, "UNKNOWN_PARTY");
    let stale = stale_signature(&net.api, "/v1/accounts/100", &alice);
    let headers: Vec<(&str, &str)> = stale.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let answer = call(
        &net.api.anonymous(),
        "GET",
        "/v1/accounts/100",
        &headers,
        Vec::new(),
    )
    .await;
    answer.error(StatusCode::UNAUTHORIZED, "BAD_CREDENTIALS");
    assert!(answer.text().contains("old"), "{}", answer.text());

    // A block: header and certificate for anyone, its transactions for the regulator.
    let public = get(&net.api.anonymous(), "/v1/blocks/1").await.json();
    assert!(public["certificate"].is_object() && public["header"].is_object());
    assert!(
        public.get("txs").is_none() && public.get("results").is_none(),
        "{public}"
    );
    let full = get(&net.api, "/v1/blocks/1").await.json();
    assert!(
        full["txs"].is_array() && full["results"].is_object(),
        "{full}"
    );
    let bank_view = get(&a, "/v1/blocks/1").await.json();
    assert!(bank_view.get("txs").is_none(), "{bank_view}");

    // Alice rotates her key: from the block that commits it, only the new key signs.
    let fresh = key(101);
    net.commit(
        Party::Account(AccountId(100)),
        &[&alice, &fresh],
        TxKind::RotateKey {
            new_key: fresh.public_key(),
        },
    )
    .await;
    get(&as_alice, "/v1/accounts/100")
        .await
        .error(StatusCode::UNAUTHORIZED, "BAD_CREDENTIALS");
    let rotated = net.api.as_party(Party::Account(AccountId(100)), &fresh);
    assert_eq!(
        get(&rotated, "/v1/accounts/100").await.status,
        StatusCode::OK
    );
    net.shutdown().await;
}

/// Signature headers for `GET path` as `account:100` made ten minutes ago.
fn stale_signature(
    target: &Target,
    path: &str,
    key: &tally_crypto::SigningKey,
) -> Vec<(&'static str, String)> {
    use tally_wire::signature;
    let created = i64::try_from(now_ms() / 1000).unwrap() - 600;
    let uri: hyper::Uri = path.parse().unwrap();
    let mut headers = hyper::HeaderMap::new();
    headers.insert("host", target.addr.to_string().parse().unwrap());
    let covered = signature::covered(&signature::COVERED, "account:100", created).unwrap();
    let (input, value) = signature::sign(
        &signature::Message {
            method: &hyper::Method::GET,
            scheme: "https",
            uri: &uri,
            headers: &headers,
        },
        &covered,
        key,
    )
    .unwrap();
    vec![
        (signature::SIGNATURE_INPUT, input),
        (signature::SIGNATURE, value),
    ]
}

/// The event stream gives each party only its own events: a bank those touching its
/// customers (or naming it), a consumer those touching it, the regulator all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_gives_each_party_its_own_events() {
    let net = TestNet::start().await;
    let alice = net.funded_wallet(100, BANK_A, 1_000).await;
    net.funded_wallet(200, BANK_B, 1_000).await;
    let signed = net.sign(
        Party::Account(AccountId(100)),
        &[&alice],
        TxKind::Transfer {
            id: TransferId(77),
            to: AccountId(200),
            amount: 5,
            memo: tally_contracts::Memo::NONE,
        },
    );
    net.commit_signed(&signed).await;
    let head = net.head();
    let all = stored_events(net.storage(), head);
    let expect = |filter: &dyn Fn(&serde_json::Value) -> bool| -> Vec<String> {
        let mut ids = Vec::new();
        for height in 1..=head {
            let results = net.results(height);
            let expired = results.expired.iter();
            let caused = results.receipts.iter().flat_map(|r| r.events.iter());
            for (index, event) in expired.chain(caused).enumerate() {
                if filter(&serde_json::to_value(event).unwrap()) {
                    ids.push(format!("{height}:{index}"));
                }
            }
        }
        ids
    };
    // The oracle: an event touches an account when its JSON names the id as a field's value.
    let touches = |account: u128| {
        move |event: &serde_json::Value| {
            let text = event.to_string();
            text.contains(&format!(":{account},")) || text.contains(&format!(":{account}}}"))
        }
    };
    let alice_ids = expect(&touches(100));
    let bob_ids = expect(&touches(200));
    // Bank B: its customer's events, and the interbank obligation that names it.
    let bank_b_ids = expect(&|event: &serde_json::Value| {
        touches(200)(event)
            || event
                .get("ObligationRecorded")
                .is_some_and(|o| o["from"] == 2 || o["to"] == 2)
    });
    assert!(!alice_ids.is_empty() && !bob_ids.is_empty());
    for (target, want, name) in [
        (
            net.api.as_party(Party::Account(AccountId(100)), &alice),
            alice_ids.clone(),
            "alice",
        ),
        (net.api.as_institution(BANK_B), bank_b_ids.clone(), "bank B"),
        (
            net.api.clone(),
            all.iter().map(|e| e.0.clone()).collect(),
            "the regulator",
        ),
    ] {
        let mut stream = EventStream::open(&target, "/v1/events?from_height=1", None).await;
        let mut got = Vec::new();
        while got.len() < want.len() {
            let (id, data) = stream.next().await;
            got.push(id.clone());
            assert!(
                want.contains(&id),
                "{name} was sent event {id} that is not its own: {data}"
            );
        }
        assert_eq!(got, want, "{name}");
        // Nothing of anyone else's follows: a new block of the others' events only.
        println!("{name}: {} of {} events", got.len(), all.len());
    }
    assert!(alice_ids.len() < all.len() && bob_ids.len() < all.len());
    // Anonymous: no stream at all.
    let anonymous = send(&net.api.anonymous(), "GET", "/v1/events", &[], Vec::new()).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    net.shutdown().await;
}

/// A batch: every transaction queued, each answered in order with what its single
/// submission would have got (taken, a duplicate, bytes that do not decode, a forged
/// signature), then committed; sent again, the committed ones are refused as such. The JSON
/// form takes an array.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_answered_per_transaction_in_order() {
    let net = TestNet::start().await;
    let (first, second) = (opening(300, 0), opening(301, 0));
    let mut forged = opening(302, 0);
    if let TxKind::RegisterAccount { tier, .. } = &mut forged.tx.kind {
        *tier = 3;
    }
    let encoded = vec![
        encoding::encode(&first),
        encoding::encode(&second),
        encoding::encode(&first),
        vec![0xff; 12],
        encoding::encode(&forged),
    ];
    let answer = post_bytes(
        &net.api,
        "/v1/transactions/batch",
        tally_wire::batch::frame(&encoded),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let body = answer.json();
    assert_eq!(
        (body["pending"].as_u64(), body["refused"].as_u64()),
        (Some(2), Some(3)),
        "{body}"
    );
    let results = body["results"].as_array().unwrap();
    let outcome = |i: usize| (results[i]["status"].as_str(), results[i]["code"].as_str());
    assert_eq!(outcome(0), (Some("pending"), None));
    assert_eq!(hex_of(&results[0]["hash"]), first.hash().to_hex());
    assert_eq!(outcome(1), (Some("pending"), None));
    assert_eq!(hex_of(&results[1]["hash"]), second.hash().to_hex());
    // The copy finds the first in the mempool (or, had a block committed the first between
    // the two, its nonce used).
    assert_eq!(outcome(2).0, Some("refused"));
    assert!(
        matches!(outcome(2).1, Some("DUPLICATE" | "NONCE_USED")),
        "{body}"
    );
    assert_eq!(hex_of(&results[2]["hash"]), first.hash().to_hex());
    assert_eq!(outcome(3), (Some("refused"), Some("MALFORMED_TRANSACTION")));
    assert!(results[3].get("hash").is_none(), "{body}");
    assert_eq!(outcome(4), (Some("refused"), Some("BAD_SIGNATURE")));
    assert!(results[4]["message"].is_string(), "{body}");

    net.until_committed(first.hash()).await;
    net.until_committed(second.hash()).await;
    get(
        &net.api,
        &format!("/v1/transactions/{}", forged.hash().to_hex()),
    )
    .await
    .error(StatusCode::NOT_FOUND, "NOT_FOUND");

    // Again, with a new one beside them, as JSON.
    let third = opening(303, 0);
    let again = post_json(
        &net.api,
        "/v1/transactions/batch",
        serde_json::to_vec(&[&first, &third]).unwrap(),
    )
    .await;
    let body = again.json();
    assert_eq!(again.status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["code"], "ALREADY_COMMITTED", "{body}");
    assert_eq!(body["results"][1]["status"], "pending", "{body}");
    net.until_committed(third.hash()).await;

    // The reference client speaks it too.
    let client = net.api.api.anonymous();
    let fourth = opening(304, 0);
    let answer = client
        .submit_batch(&[fourth.clone(), third.clone()])
        .await
        .unwrap();
    assert_eq!(
        answer.results,
        vec![
            tally_wire::batch::BatchOutcome::Pending {
                hash: fourth.hash()
            },
            tally_wire::batch::BatchOutcome::Refused {
                hash: Some(third.hash()),
                code: "ALREADY_COMMITTED".to_string(),
                message: "the transaction is already in a committed block".to_string(),
            },
        ]
    );
    net.shutdown().await;
}

/// A batch that cannot be split, or is out of bounds, is refused whole: the valid
/// transaction at its head is not queued. A client whose tokens do not cover the batch is
/// refused whole too (a batch of n costs n requests), and a batch within them passes. An
/// audit node takes no batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_or_oversized_batch_is_refused_whole() {
    const BURST: u64 = 8;
    let net = TestNet::start_with(Setup {
        audit: true,
        api_limits: api::Limits {
            // No refill: the tokens left are exact however slow the machine.
            requests_per_second_per_client: 0,
            request_burst_per_client: BURST,
            ..api::Limits::default()
        },
        ..Setup::default()
    })
    .await;
    let valid = opening(310, 0);
    let head = encoding::encode(&valid);
    let path = "/v1/transactions/batch";
    // Taken: pending, or already committed by a block.
    let queued = || {
        let hash = valid.hash();
        (net.validator.context.pending)(&hash)
            || net.storage().tx_location(&hash).unwrap().is_some()
    };
    // The framing cut after a whole transaction.
    let mut cut = tally_wire::batch::frame(std::slice::from_ref(&head));
    cut.extend_from_slice(&[0, 0, 1]);
    let bank = net.api.as_institution(BANK_A);
    post_bytes(&bank, path, cut)
        .await
        .error(StatusCode::BAD_REQUEST, "MALFORMED_BATCH");
    post_bytes(&bank, path, Vec::new())
        .await
        .error(StatusCode::BAD_REQUEST, "MALFORMED_BATCH");
    let mut over = vec![head.clone()];
    over.extend(vec![Vec::new(); tally_wire::batch::BATCH_TXS_MAX]);
    post_bytes(&bank, path, tally_wire::batch::frame(&over))
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "BATCH_TOO_LARGE");
    post_json(&bank, path, b"[{\"tx\": 1}]".to_vec())
        .await
        .error(StatusCode::BAD_REQUEST, "MALFORMED_JSON");
    post_json(&bank, path, b"[]".to_vec())
        .await
        .error(StatusCode::BAD_REQUEST, "MALFORMED_BATCH");
    call(
        &bank,
        "POST",
        path,
        &[("content-type", "text/plain")],
        head.clone(),
    )
    .await
    .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE");
    assert!(!queued(), "a refused batch queued its first transaction");

    // Six requests spent above: two tokens left, so a batch of three is refused whole.
    let three = vec![head.clone(), Vec::new(), Vec::new()];
    post_bytes(&bank, path, tally_wire::batch::frame(&three))
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS");
    assert!(
        !queued(),
        "a batch past the client's tokens queued its first transaction"
    );
    // Another client's tokens are its own: its batch of BURST passes.
    let mut full = vec![head.clone()];
    full.extend(vec![Vec::new(); BURST as usize - 1]);
    let answer = post_bytes(
        &net.api.as_institution(BANK_B),
        path,
        tally_wire::batch::frame(&full),
    )
    .await;
    let body = answer.json();
    assert_eq!(answer.status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["pending"].as_u64(), body["refused"].as_u64()),
        (Some(1), Some(BURST - 1)),
        "{body}"
    );
    assert!(queued());

    // The audit node is read-only.
    let audit = net.audit_api.clone().unwrap();
    post_bytes(&audit, path, tally_wire::batch::frame(&[head]))
        .await
        .error(StatusCode::FORBIDDEN, "READ_ONLY");
    net.shutdown().await;
}

/// One client at its share of streams, or sending faster than its rate, is answered 429,
/// while another party is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_at_its_share_does_not_stop_another() {
    let net = TestNet::start_with(Setup {
        api_limits: api::Limits {
            streams_per_client_max: 2,
            requests_per_second_per_client: 1,
            request_burst_per_client: 40,
            ..api::Limits::default()
        },
        ..Setup::default()
    })
    .await;
    net.wait_height(1).await;
    let a = net.api.as_institution(BANK_A);
    let b = net.api.as_institution(BANK_B);
    let path = "/v1/events?kind=SanctionAdded";
    let held: Vec<_> = [0, 1]
        .iter()
        .map(|_| send(&a, "GET", path, &[], Vec::new()))
        .collect();
    let mut kept = Vec::new();
    for opening in held {
        let response = opening.await;
        assert_eq!(response.status(), StatusCode::OK);
        kept.push(response);
    }
    call(&a, "GET", path, &[], Vec::new())
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_STREAMS");
    let other = send(&b, "GET", path, &[], Vec::new()).await;
    assert_eq!(
        other.status(),
        StatusCode::OK,
        "bank B's stream was refused"
    );
    drop(kept);

    // Bank A sends past its burst: refused 429 at some point; bank B is still answered.
    let mut refused_at = None;
    for i in 0..60 {
        let answer = get(&a, "/health").await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            answer.error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS");
            refused_at = Some(i);
            break;
        }
    }
    let refused_at = refused_at.expect("bank A was never held to its rate");
    assert!(refused_at >= 30, "refused after only {refused_at} requests");
    assert_eq!(get(&b, "/health").await.status, StatusCode::OK);
    net.shutdown().await;
}

/// A client that goes away frees its stream slot: with one slot, an idle stream (its
/// filter matches nothing) is dropped and a new one is admitted soon after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_frees_its_slot() {
    let net = TestNet::start_with(Setup {
        api_limits: api::Limits {
            streams_max: 1,
            ..api::Limits::default()
        },
        ..Setup::default()
    })
    .await;
    net.wait_height(1).await;
    let mut idle = send(
        &net.api,
        "GET",
        "/v1/events?kind=SanctionAdded",
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(idle.status(), StatusCode::OK);
    for round in 0..3 {
        get(&net.api, "/v1/events")
            .await
            .error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_STREAMS");
        drop(idle);
        let dropped = tokio::time::Instant::now();
        idle = loop {
            let answer = send(
                &net.api,
                "GET",
                "/v1/events?kind=SanctionAdded",
                &[],
                Vec::new(),
            )
            .await;
            if answer.status() == StatusCode::OK {
                break answer;
            }
            assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(
                dropped.elapsed() < Duration::from_secs(3),
                "round {round}: the slot of a dropped stream is still held after {:?}",
                dropped.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
    }
    drop(idle);
    net.shutdown().await;
}

/// A client that goes away while waiting for its commit frees its waiter slot (on a node
/// that cannot commit, so the wait would otherwise last its whole `wait_ms`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_waiter_frees_its_slot() {
    let net = TestNet::start_with(Setup {
        genesis_validators: 2,
        api_limits: api::Limits {
            waiters_max: 1,
            ..api::Limits::default()
        },
        ..Setup::default()
    })
    .await;
    for nonce in 0..3 {
        let signed = match nonce {
            0 => opening(100, 0),
            _ => transfer_from(100, nonce, 101, 1),
        };
        let api_addr = net.api.clone();
        let bytes = encoding::encode(&signed);
        let waiting = tokio::spawn(async move {
            send(
                &api_addr,
                "POST",
                "/v1/transactions?wait_ms=20000",
                &[("content-type", "application/octet-stream")],
                bytes,
            )
            .await
        });
        let path = format!("/v1/transactions/{}", signed.hash().to_hex());
        let deadline = tokio::time::Instant::now() + WAIT;
        while get(&net.api, &path).await.status != StatusCode::OK {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        post_bytes(
            &net.api,
            "/v1/transactions?wait_ms=10",
            encoding::encode(&opening(200 + u128::from(nonce), 0)),
        )
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_WAITERS");
        waiting.abort(); // the client goes away, its connection with it
        let dropped = tokio::time::Instant::now();
        loop {
            let probe = opening(300 + u128::from(nonce), 0);
            let answer = post_bytes(
                &net.api,
                "/v1/transactions?wait_ms=10",
                encoding::encode(&probe),
            )
            .await;
            if answer.status == StatusCode::ACCEPTED {
                break;
            }
            answer.error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_WAITERS");
            assert!(
                dropped.elapsed() < Duration::from_secs(3),
                "the waiter slot of a dropped client is still held after {:?}",
                dropped.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    net.shutdown().await;
}

/// An institution key replaced by governance is refused by the API from the block that
/// committed the replacement (keys are looked up at the head), the new one read with; a
/// revoked key is refused with its own code, and its transactions at the door.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_or_revoked_institution_key_is_refused_from_its_block_on() {
    let net = TestNet::start().await;
    let old = net.api.as_institution(BANK_A);
    assert_eq!(get(&old, "/v1/institutions/1").await.status, StatusCode::OK);
    let platform = Party::Institution(PLATFORM);
    let governor = key(2_000);
    let new_key = key(1_101);
    let replaced = net
        .commit(
            platform,
            &[&institution_key(PLATFORM), &governor, &new_key],
            TxKind::Govern(GovernanceAction::ReplaceInstitutionKey {
                institution: BANK_A,
                new_key: new_key.public_key(),
            }),
        )
        .await;
    let height = replaced["height"].as_u64().unwrap();
    assert!(net.head() >= height);
    get(&old, "/v1/institutions/1")
        .await
        .error(StatusCode::UNAUTHORIZED, "BAD_CREDENTIALS");
    let new = net.api.as_party(Party::Institution(BANK_A), &new_key);
    assert_eq!(get(&new, "/v1/institutions/1").await.status, StatusCode::OK);

    net.commit(
        platform,
        &[&institution_key(PLATFORM), &governor],
        TxKind::Govern(GovernanceAction::RevokeInstitutionKey {
            institution: BANK_A,
        }),
    )
    .await;
    get(&new, "/v1/institutions/1")
        .await
        .error(StatusCode::UNAUTHORIZED, "KEY_REVOKED");
    let cycle = net.sign(
        Party::Institution(BANK_A),
        &[&new_key],
        TxKind::SettlementCycle,
    );
    post_bytes(&net.api, "/v1/transactions", encoding::encode(&cycle))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "KEY_REVOKED");
    // The directory shows the revoked institution as inactive, the others as they were.
    let directory = get(&net.api, "/v1/directory").await.json();
    let active: Vec<_> = directory["record"]["institutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].clone(), i["active"].clone()))
        .collect();
    assert_eq!(active[0], (json!(1), json!(false)), "{directory}");
    assert_eq!(active[1], (json!(2), json!(true)), "{directory}");
    net.shutdown().await;
}

/// A validator that keeps 3 blocks whole (`[pruning] keep_blocks = 3`): an older block still
/// answers its header and certificate (its id matches the next block's parent), its body and
/// results are gone and what needed them answers `410 PRUNED`; the newest blocks, proofs and
/// the validator set answer as on any node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruning_node_keeps_headers_and_certificates_and_answers_410_for_the_rest() {
    let net = TestNet::start_with(Setup {
        keep_blocks: Some(3),
        ..Setup::default()
    })
    .await;
    let k = net.funded_wallet(300, BANK_A, 10_000).await;
    net.funded_wallet(301, BANK_A, 0).await;
    let view = net
        .commit(
            Party::Account(AccountId(300)),
            &[&k],
            TxKind::Transfer {
                id: TransferId(30),
                to: AccountId(301),
                amount: 100,
                memo: Memo::NONE,
            },
        )
        .await;
    let old = view["height"].as_u64().unwrap();
    let hash = view["hash"].as_str().unwrap().to_string();
    let mut id = 302;
    while net.head() < old + 5 {
        net.funded_wallet(id, BANK_A, 0).await;
        id += 1;
    }
    assert!(net.storage().pruned_through().unwrap() >= old);

    let pruned = get(&net.api, &format!("/v1/blocks/{old}")).await.json();
    assert_eq!(pruned["pruned"], true, "{pruned}");
    assert_eq!(pruned["header"]["height"], old);
    assert!(pruned.get("txs").is_none() && pruned.get("results").is_none());
    assert_eq!(pruned["certificate"]["block"], pruned["hash"]);
    let next = get(&net.api, &format!("/v1/blocks/{}", old + 1))
        .await
        .json();
    assert_eq!(next["header"]["parent"], pruned["hash"], "{next}");
    let head = get(&net.api, "/v1/blocks/latest").await.json();
    assert!(
        head.get("pruned").is_none() && head["txs"].is_array(),
        "{head}"
    );

    get(&net.api, &format!("/v1/transactions/{hash}"))
        .await
        .error(StatusCode::GONE, "PRUNED");
    let owner = net.api.as_party(Party::Account(AccountId(300)), &k);
    get(&owner, "/v1/accounts/300/history")
        .await
        .error(StatusCode::GONE, "PRUNED");
    let evidence = get(&net.api.anonymous(), "/v1/evidence").await.json();
    assert_eq!(
        evidence["pruned_through"].as_u64(),
        Some(net.storage().pruned_through().unwrap()),
        "{evidence}"
    );
    // What the newest state needs is kept: the balance and its proof.
    let account = get(&owner, "/v1/accounts/300").await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.text());
    let proof = get(&owner, "/v1/accounts/300/proof").await;
    assert_eq!(proof.status, StatusCode::OK, "{}", proof.text());
    net.shutdown().await;
}
