//! Bad input through the HTTP API of a real running validator (issue 7): malformed JSON,
//! wrong types, missing fields, huge bodies, invalid signatures, wrong chain id,
//! non-canonical encoding, replayed transactions, unknown accounts, negative or overflowing
//! amounts. Each gets its status and JSON error code; the node keeps serving (a good
//! transaction commits afterwards); and the balances of every account touched are
//! unchanged, read through the API of an audit node that follows the validator and
//! re-executes every block.

// Test equipment: a step that fails is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod api_support;

use std::collections::BTreeMap;

use api_support::*;
use hyper::StatusCode;
use serde_json::{Value, json};
use tally_contracts::*;
use tally_crypto::{Hash, PublicKey};
use tally_node::api::REQUEST_BODY_BYTES_MAX;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TX: &str = "/v1/transactions";

fn wait_path() -> String {
    format!("{TX}?wait_ms={WAIT_MS}")
}

/// Wallets: 100 and 102 at bank A (funded), 101 at bank B (empty).
const PAYER: u128 = 100;
const EMPTY: u128 = 101;
const PAYEE: u128 = 102;
/// Never registered.
const STRANGER: u128 = 555;
const NOBODY: u128 = 556;

fn transfer(net: &TestNet, from: u128, to: u128, id: u128, amount: Amount) -> SignedTransaction {
    net.sign(
        Party::Account(AccountId(from)),
        &[&key(from as u64)],
        TxKind::Transfer {
            id: TransferId(id),
            to: AccountId(to),
            amount,
            memo: tally_contracts::Memo::NONE,
        },
    )
}

/// Every account the bad input names or could reach, as the audit node reports it:
/// posted and pending totals, balance, availability, frozen flag and today's outflow
/// (not the nonce: a transaction the ledger rejects still uses its sender's nonce).
fn touched_accounts() -> Vec<AccountId> {
    let mut accounts: Vec<AccountId> = [PAYER, EMPTY, PAYEE, STRANGER, NOBODY]
        .map(AccountId)
        .to_vec();
    for bank in [BANK_A, BANK_B] {
        for kind in [
            AccountKind::BankIssuance,
            AccountKind::BankSettlement,
            AccountKind::Fee,
        ] {
            accounts.push(AccountId::institutional(bank, kind, Currency::CNY));
        }
    }
    accounts.push(AccountId::institutional(
        PLATFORM,
        AccountKind::Fee,
        Currency::CNY,
    ));
    accounts
}

async fn balances(audit_api: &Target) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for id in touched_accounts() {
        let answer = get(audit_api, &format!("/v1/accounts/{}", id.0)).await;
        let summary = match answer.status {
            StatusCode::OK => {
                let body = answer.json();
                let a = &body["account"];
                json!({
                    "balance": body["balance"],
                    "available": body["available"],
                    "debits_posted": a["debits_posted"],
                    "debits_pending": a["debits_pending"],
                    "credits_posted": a["credits_posted"],
                    "credits_pending": a["credits_pending"],
                    "frozen": a["frozen"],
                    "outflow_today": a["holder"]["outflow_today"],
                })
            }
            StatusCode::NOT_FOUND => json!("absent"),
            other => panic!("account {}: {other} {}", id.0, answer.text()),
        };
        out.insert(id.0.to_string(), summary);
    }
    for bank in [BANK_A, BANK_B] {
        let body = get(audit_api, &format!("/v1/institutions/{}", bank.0))
            .await
            .json();
        out.insert(format!("institution {}", bank.0), body["record"].clone());
    }
    out
}

/// The code of every transaction in blocks `1..=height` as `addr` serves them (the block,
/// then the transaction's status), sorted.
async fn committed_codes(addr: &Target, height: u64) -> Vec<String> {
    let mut codes = Vec::new();
    for h in 1..=height {
        let block = get(addr, &format!("/v1/blocks/{h}")).await.json();
        for receipt in block["results"]["receipts"].as_array().unwrap() {
            let hash = receipt["tx"].as_str().unwrap();
            let status = get(addr, &format!("{TX}/{hash}")).await.json();
            assert_eq!(status["height"], h, "{status}");
            codes.push(status["code"].as_str().unwrap().to_string());
        }
    }
    codes.sort();
    codes
}

/// A body sent in chunks with no declared length (`Transfer-Encoding: chunked`), over a
/// raw TLS connection: the server may answer and close before the body is all sent, so the
/// answer is read while the body is still being written, and write errors are ignored.
/// A POST whose head declares `declared` body bytes, and no body sent: the answer the node
/// gives from the head alone.
async fn post_declared_only(target: &Target, content_type: &str, declared: usize) -> Answer {
    let stream = tls_stream(target).await;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let head = format!(
        "POST {TX} HTTP/1.1\r\nhost: tally.test\r\ncontent-type: {content_type}\r\n\
         content-length: {declared}\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    writer.flush().await.unwrap();
    read_answer(&mut reader).await
}

/// Reads from `reader` until a whole answer arrived.
async fn read_answer(reader: &mut (impl tokio::io::AsyncRead + Unpin)) -> Answer {
    let mut received = Vec::new();
    loop {
        if let Some(answer) = parse_response(&received) {
            return answer;
        }
        let mut buffer = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, reader.read(&mut buffer))
            .await
            .expect("no answer in time")
            .unwrap_or(0);
        assert!(
            n > 0,
            "connection closed before a whole answer: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..n]);
    }
}

async fn post_chunked(target: &Target, content_type: &str, total: usize) -> Answer {
    let stream = tls_stream(target).await;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let head = format!(
        "POST {TX} HTTP/1.1\r\nhost: tally.test\r\ncontent-type: {content_type}\r\n\
         transfer-encoding: chunked\r\n\r\n"
    );
    let sending = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 16 * 1024];
        for _ in 0..total.div_ceil(chunk.len()) {
            writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    });
    let answer = read_answer(&mut reader).await;
    sending.abort();
    answer
}

/// A whole HTTP/1.1 answer with a `content-length` body, once `bytes` hold one.
fn parse_response(bytes: &[u8]) -> Option<Answer> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut headers = hyper::HeaderMap::new();
    let mut length = 0;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "content-length" {
            length = value.parse().ok()?;
        }
        headers.insert(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).ok()?,
            value.parse().ok()?,
        );
    }
    (body.len() >= length).then(|| Answer {
        status: StatusCode::from_u16(status).unwrap(),
        headers,
        body: body.as_bytes()[..length].to_vec(),
    })
}

/// The JSON form of `signed` with `edit` applied to its text.
fn json_text(signed: &SignedTransaction) -> String {
    serde_json::to_string(signed).unwrap()
}

fn json_edit(signed: &SignedTransaction, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value = serde_json::to_value(signed).unwrap();
    edit(&mut value);
    serde_json::to_vec(&value).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_error_code_and_changes_nothing() {
    let net = TestNet::with_audit().await;
    let api = net.api.clone();
    let audit_api = net.audit_api.clone().unwrap();
    net.funded_wallet(PAYER, BANK_A, 50_000).await;
    net.funded_wallet(EMPTY, BANK_B, 0).await;
    net.funded_wallet(PAYEE, BANK_A, 1_000).await;
    net.audit_caught_up().await;
    let before = balances(&audit_api).await;
    assert_eq!(before[&PAYER.to_string()]["balance"], 50_000, "{before:?}");

    // A good transfer, kept unsent: the template most bad input is cut from. Sentinel
    // amount 987654 makes textual edits of the amount unambiguous.
    let good = transfer(&net, PAYER, PAYEE, 1, 987_654);
    let good_json = json_text(&good);
    assert_eq!(good_json.matches("987654").count(), 1);

    // ---- malformed JSON
    for body in [
        &b"{not json"[..],
        b"",
        b"null",
        b"[]",
        b"\"tx\"",
        &good_json.as_bytes()[..good_json.len() / 2],
        b"{\"tx\": \xff\xfe}",
    ] {
        post_json(&api, TX, body.to_vec())
            .await
            .error(StatusCode::BAD_REQUEST, "MALFORMED_JSON");
    }

    // ---- wrong types
    let wrong_types: Vec<Vec<u8>> = vec![
        json_edit(&good, |v| v["tx"]["nonce"] = json!("0")),
        json_edit(&good, |v| v["tx"]["nonce"] = json!(1.5)),
        json_edit(&good, |v| v["tx"]["chain_id"] = json!(7)),
        json_edit(&good, |v| v["tx"]["sender"] = json!(100)),
        json_edit(&good, |v| v["tx"]["sender"] = json!({"Spaceship": 100})),
        json_edit(&good, |v| v["tx"]["kind"] = json!({"Steal": {"amount": 1}})),
        json_edit(&good, |v| v["tx"]["kind"]["Transfer"]["to"] = json!("102")),
        json_edit(&good, |v| v["signatures"] = json!({})),
        json_edit(&good, |v| v["signatures"][0]["key"] = json!(12)),
        json_edit(&good, |v| v["signatures"][0]["signature"] = json!("zz")),
        json_edit(&good, |v| v["tx"] = json!([])),
        br#"{"tx": 5, "signatures": []}"#.to_vec(),
    ];
    for body in wrong_types {
        post_json(&api, TX, body)
            .await
            .error(StatusCode::BAD_REQUEST, "MALFORMED_JSON");
    }

    // ---- missing fields
    let missing: Vec<Vec<u8>> = vec![
        b"{}".to_vec(),
        json_edit(&good, |v| {
            v.as_object_mut().unwrap().remove("signatures");
        }),
        json_edit(&good, |v| {
            v["tx"].as_object_mut().unwrap().remove("nonce");
        }),
        json_edit(&good, |v| {
            v["tx"].as_object_mut().unwrap().remove("chain_id");
        }),
        json_edit(&good, |v| {
            v["tx"]["kind"]["Transfer"]
                .as_object_mut()
                .unwrap()
                .remove("amount");
        }),
        // No memo is the empty text, never an absent field: one spelling.
        json_edit(&good, |v| {
            v["tx"]["kind"]["Transfer"]
                .as_object_mut()
                .unwrap()
                .remove("memo");
        }),
        json_edit(&good, |v| {
            v["signatures"][0]
                .as_object_mut()
                .unwrap()
                .remove("signature");
        }),
    ];
    for body in missing {
        post_json(&api, TX, body)
            .await
            .error(StatusCode::BAD_REQUEST, "MALFORMED_JSON");
    }
    // Present but empty: no signature at all.
    post_json(&api, TX, json_edit(&good, |v| v["signatures"] = json!([])))
        .await
        .error(StatusCode::BAD_REQUEST, "FIELD_OUT_OF_LIMITS");

    // ---- negative or overflowing amounts (and ids, nonces) in JSON
    for amount in [
        "-5",
        "-0.0",
        "18446744073709551616",
        "1e3",
        "\"10\"",
        "null",
    ] {
        post_json(&api, TX, good_json.replace("987654", amount).into_bytes())
            .await
            .error(StatusCode::BAD_REQUEST, "MALFORMED_JSON");
    }
    for edit in [
        json_edit(&good, |v| v["tx"]["nonce"] = json!(-1)),
        json_edit(&good, |v| v["tx"]["kind"]["Transfer"]["to"] = json!(-102)),
    ] {
        post_json(&api, TX, edit)
            .await
            .error(StatusCode::BAD_REQUEST, "MALFORMED_JSON");
    }
    let text = good_json.replace(
        &format!("\"to\":{PAYEE}"),
        "\"to\":340282366920938463463374607431768211456",
    );
    assert_ne!(text, good_json);
    post_json(&api, TX, text.into_bytes())
        .await
        .error(StatusCode::BAD_REQUEST, "MALFORMED_JSON");
    // Well-formed, signed, but out of range: committed and rejected by the ledger (a
    // wallet's tier limit is checked before the amount's own bound).
    for (amount, id, code) in [
        (0, 10, "INVALID_AMOUNT"),
        (AMOUNT_MAX + 1, 11, "OVER_TIER_SINGLE_LIMIT"),
        (u64::MAX, 12, "OVER_TIER_SINGLE_LIMIT"),
    ] {
        let signed = transfer(&net, PAYER, PAYEE, id, amount);
        let answer = post_bytes(&api, &wait_path(), encoding::encode(&signed)).await;
        let body = answer.error(StatusCode::UNPROCESSABLE_ENTITY, code);
        assert_eq!(body["hash"], signed.hash().to_hex());
    }
    let top_up = net.sign(
        Party::Account(AccountId(PAYER)),
        &[&key(PAYER as u64), &institution_key(BANK_A)],
        TxKind::TopUp {
            id: TransferId(13),
            card: CardToken([PAYER as u8; 32]),
            amount: u64::MAX,
        },
    );
    post_bytes(&api, &wait_path(), encoding::encode(&top_up))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_AMOUNT");
    // More than the balance.
    post_bytes(
        &api,
        &wait_path(),
        encoding::encode(&transfer(&net, PAYER, PAYEE, 14, 50_001)),
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY, "INSUFFICIENT_FUNDS");

    // ---- huge bodies
    // Declared above the limit: refused before it is read. Only the head is sent: the
    // answer must come without a byte of the body (a client writing the body could find the
    // connection closed under it, and that would be a race, not a check).
    post_declared_only(&api, "application/json", REQUEST_BODY_BYTES_MAX + 1)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_LARGE");
    // Not declared (chunked), and far above the limit: cut off by its actual length.
    post_chunked(&api, "application/json", 4 * REQUEST_BODY_BYTES_MAX)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_LARGE");
    post_chunked(&api, "application/octet-stream", 4 * REQUEST_BODY_BYTES_MAX)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_LARGE");
    // Under the body limit, over a transaction's.
    post_bytes(&api, TX, vec![0; encoding::TX_BYTES_MAX + 1])
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "TRANSACTION_TOO_LARGE");
    let mut long_chain = good.tx.clone();
    long_chain.chain_id = "x".repeat(10_000);
    post_json(
        &api,
        TX,
        serde_json::to_vec(&long_chain.sign(&[&key(PAYER as u64)])).unwrap(),
    )
    .await
    .error(StatusCode::PAYLOAD_TOO_LARGE, "TRANSACTION_TOO_LARGE");
    let mut long_chain = good.tx.clone();
    long_chain.chain_id = "x".repeat(encoding::CHAIN_ID_BYTES_MAX + 1);
    post_bytes(
        &api,
        TX,
        encoding::encode(&long_chain.sign(&[&key(PAYER as u64)])),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "FIELD_OUT_OF_LIMITS");
    let many_keys: Vec<_> = (0..=encoding::SIGNATURES_MAX as u64)
        .map(|i| key(7_000 + i))
        .collect();
    let crowded = good.tx.clone().sign(&many_keys.iter().collect::<Vec<_>>());
    post_bytes(&api, TX, encoding::encode(&crowded))
        .await
        .error(StatusCode::BAD_REQUEST, "FIELD_OUT_OF_LIMITS");
    // A transfer's memo over 64 bytes, or with a control character, validly signed: refused
    // at the door as bytes and as JSON, whatever the signature says.
    for text in [
        "m".repeat(tally_contracts::MEMO_BYTES_MAX + 1),
        "ring\u{7}".to_string(),
    ] {
        let mut noted = good.tx.clone();
        if let TxKind::Transfer { memo, .. } = &mut noted.kind {
            *memo = serde_json::from_value(json!(text)).unwrap();
        }
        let noted = noted.sign(&[&key(PAYER as u64)]);
        post_bytes(&api, TX, encoding::encode(&noted))
            .await
            .error(StatusCode::BAD_REQUEST, "FIELD_OUT_OF_LIMITS");
        post_json(&api, TX, serde_json::to_vec(&noted).unwrap())
            .await
            .error(StatusCode::BAD_REQUEST, "FIELD_OUT_OF_LIMITS");
    }

    // ---- invalid signatures
    let mut forged = good.clone();
    forged.signatures[0].signature.0[3] ^= 1;
    post_bytes(&api, TX, encoding::encode(&forged))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "BAD_SIGNATURE");
    post_json(&api, TX, serde_json::to_vec(&forged).unwrap())
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "BAD_SIGNATURE");
    // A valid signature over another body: the amount raised after signing.
    let mut raised = good.clone();
    if let TxKind::Transfer { amount, .. } = &mut raised.tx.kind {
        *amount = 49_000;
    }
    post_bytes(&api, TX, encoding::encode(&raised))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "BAD_SIGNATURE");
    // A key that is not a valid point, a small-order key, an all-zero signature.
    let mut bad_key = good.clone();
    bad_key.signatures[0].key = PublicKey([0xff; 32]);
    post_bytes(&api, TX, encoding::encode(&bad_key))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "BAD_SIGNATURE");
    let mut small_order = good.clone();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    small_order.signatures[0].key = PublicKey(identity);
    post_bytes(&api, TX, encoding::encode(&small_order))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "BAD_SIGNATURE");
    let mut zero_sig = good.clone();
    zero_sig.signatures[0].signature.0 = [0; 64];
    post_bytes(&api, TX, encoding::encode(&zero_sig))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "BAD_SIGNATURE");
    // The same signature twice, or out of key order: not the one encoding.
    let mut twice = good.clone();
    twice.signatures.push(twice.signatures[0]);
    post_bytes(&api, TX, encoding::encode(&twice))
        .await
        .error(StatusCode::BAD_REQUEST, "FIELD_OUT_OF_LIMITS");
    let mut unsorted = good.tx.clone().sign(&[&key(PAYER as u64), &key(7_000)]);
    unsorted.signatures.reverse();
    post_bytes(&api, TX, encoding::encode(&unsorted))
        .await
        .error(StatusCode::BAD_REQUEST, "FIELD_OUT_OF_LIMITS");
    // Signed, validly, by someone else's key: the ledger refuses it.
    let by_other = net.sign(
        Party::Account(AccountId(PAYER)),
        &[&key(PAYEE as u64)],
        TxKind::Transfer {
            id: TransferId(16),
            to: AccountId(PAYEE),
            amount: 100,
            memo: tally_contracts::Memo::NONE,
        },
    );
    post_bytes(&api, &wait_path(), encoding::encode(&by_other))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "WRONG_SIGNER");
    // A top-up the card's bank did not co-sign.
    let unbacked = net.sign(
        Party::Account(AccountId(PAYER)),
        &[&key(PAYER as u64)],
        TxKind::TopUp {
            id: TransferId(15),
            card: CardToken([PAYER as u8; 32]),
            amount: 1_000,
        },
    );
    post_bytes(&api, &wait_path(), encoding::encode(&unbacked))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "MISSING_CO_SIGNATURE");

    // ---- wrong chain id: signed for another chain, or relabelled after signing
    let mut elsewhere = good.tx.clone();
    elsewhere.chain_id = "another-chain".into();
    post_bytes(
        &api,
        TX,
        encoding::encode(&elsewhere.clone().sign(&[&key(PAYER as u64)])),
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY, "WRONG_CHAIN");
    let mut relabelled = good.clone();
    relabelled.tx.chain_id = "another-chain".into();
    post_json(&api, TX, serde_json::to_vec(&relabelled).unwrap())
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "WRONG_CHAIN");
    let mut empty_chain = good.tx.clone();
    empty_chain.chain_id = String::new();
    post_bytes(
        &api,
        TX,
        encoding::encode(&empty_chain.sign(&[&key(PAYER as u64)])),
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY, "WRONG_CHAIN");

    // ---- non-canonical and malformed binary encodings
    let bytes = encoding::encode(&good);
    let mut trailing = bytes.clone();
    trailing.push(0);
    post_bytes(&api, TX, trailing)
        .await
        .error(StatusCode::BAD_REQUEST, "NON_CANONICAL_ENCODING");
    // The nonce (after the chain id, the sender's tag and its one-byte id) as a padded
    // varint: the same value, a second encoding.
    let nonce_at = 1 + CHAIN.len() + 1 + 1;
    assert_eq!(u64::from(bytes[nonce_at]), good.tx.nonce);
    assert!(good.tx.nonce < 0x80);
    let mut padded = bytes[..nonce_at].to_vec();
    padded.extend_from_slice(&[0x80 | bytes[nonce_at], 0x00]);
    padded.extend_from_slice(&bytes[nonce_at + 1..]);
    post_bytes(&api, TX, padded)
        .await
        .error(StatusCode::BAD_REQUEST, "NON_CANONICAL_ENCODING");
    // The nonce as a varint beyond u64.
    let mut overflowing = bytes[..nonce_at].to_vec();
    overflowing.extend_from_slice(&[0xff; 10]);
    overflowing.push(0x01);
    overflowing.extend_from_slice(&bytes[nonce_at + 1..]);
    post_bytes(&api, TX, overflowing)
        .await
        .error(StatusCode::BAD_REQUEST, "MALFORMED_TRANSACTION");
    for body in [
        Vec::new(),
        vec![0xff; 10],
        bytes[..bytes.len() / 2].to_vec(),
        bytes[..bytes.len() - 1].to_vec(),
        good_json.as_bytes().to_vec(),
    ] {
        post_bytes(&api, TX, body)
            .await
            .error(StatusCode::BAD_REQUEST, "MALFORMED_TRANSACTION");
    }
    // Neither form: refused whatever the body.
    for content_type in ["text/plain", "application/x-www-form-urlencoded", ""] {
        call(
            &api,
            "POST",
            TX,
            &[("content-type", content_type)],
            bytes.clone(),
        )
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE");
    }
    call(&api, "POST", TX, &[], bytes.clone())
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE");

    // ---- replayed transactions
    // A small transfer that really happens, then comes back.
    let paid = transfer(&net, PAYER, PAYEE, 20, 500);
    net.commit_signed(&paid).await;
    for replay in [
        post_bytes(&api, TX, encoding::encode(&paid)).await,
        post_json(&api, &wait_path(), serde_json::to_vec(&paid).unwrap()).await,
    ] {
        let body = replay.error(StatusCode::CONFLICT, "ALREADY_COMMITTED");
        assert_eq!(body["hash"], paid.hash().to_hex());
    }
    // Its nonce again, with another body.
    let reused = sign_at(
        Party::Account(AccountId(PAYER)),
        paid.tx.nonce,
        &[&key(PAYER as u64)],
        TxKind::Transfer {
            id: TransferId(21),
            to: AccountId(PAYEE),
            amount: 500,
            memo: tally_contracts::Memo::NONE,
        },
    );
    post_bytes(&api, TX, encoding::encode(&reused))
        .await
        .error(StatusCode::CONFLICT, "NONCE_USED");
    // Its transfer id again under a new nonce: the ledger applies an id at most once.
    post_bytes(
        &api,
        &wait_path(),
        encoding::encode(&transfer(&net, PAYER, PAYEE, 20, 500)),
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY, "TRANSFER_EXISTS");
    post_bytes(
        &api,
        &wait_path(),
        encoding::encode(&transfer(&net, PAYER, PAYEE, 20, 600)),
    )
    .await
    .error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "TRANSFER_EXISTS_WITH_DIFFERENT_BODY",
    );
    // The balances moved by exactly the one real payment, which is now the baseline.
    net.audit_caught_up().await;
    let mut before = before;
    let after_payment = balances(&audit_api).await;
    assert_eq!(after_payment[&PAYER.to_string()]["balance"], 50_000 - 500);
    assert_eq!(after_payment[&PAYEE.to_string()]["balance"], 1_000 + 500);
    for id in [PAYER, PAYEE] {
        before.insert(id.to_string(), after_payment[&id.to_string()].clone());
    }
    assert_eq!(before, after_payment, "only the payment moved money");

    // ---- unknown accounts
    let stranger = sign_at(
        Party::Account(AccountId(STRANGER)),
        0,
        &[&key(STRANGER as u64)],
        TxKind::Transfer {
            id: TransferId(30),
            to: AccountId(PAYEE),
            amount: 100,
            memo: tally_contracts::Memo::NONE,
        },
    );
    post_bytes(&api, &wait_path(), encoding::encode(&stranger))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "UNKNOWN_SENDER");
    post_bytes(
        &api,
        &wait_path(),
        encoding::encode(&transfer(&net, PAYER, NOBODY, 31, 100)),
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY, "ACCOUNT_NOT_FOUND");
    let ghost_bank = sign_at(
        Party::Institution(InstitutionId(77)),
        0,
        &[&key(77)],
        TxKind::SettlementCycle,
    );
    post_bytes(&api, &wait_path(), encoding::encode(&ghost_bank))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "UNKNOWN_SENDER");
    for path in [
        format!("/v1/accounts/{NOBODY}"),
        format!("/v1/accounts/{STRANGER}/history"),
        "/v1/institutions/77".to_string(),
    ] {
        get(&api, &path)
            .await
            .error(StatusCode::NOT_FOUND, "NOT_FOUND");
        get(&audit_api, &path)
            .await
            .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    }
    for path in [
        "/v1/accounts/340282366920938463463374607431768211456",
        "/v1/accounts/-1",
        "/v1/accounts/1e3",
        "/v1/institutions/4294967296",
    ] {
        get(&api, path)
            .await
            .error(StatusCode::BAD_REQUEST, "BAD_ID");
    }

    // ---- hostile shapes: nesting past the parser's depth, bad UTF-8 in paths, headers
    // and query values, numbers past their type
    let deep = "[".repeat(REQUEST_BODY_BYTES_MAX / 2);
    post_json(&api, TX, deep.into_bytes())
        .await
        .error(StatusCode::BAD_REQUEST, "MALFORMED_JSON");
    let deep_object = format!("{{\"tx\": {}", "{\"a\": ".repeat(10_000));
    post_json(&api, TX, deep_object.into_bytes())
        .await
        .error(StatusCode::BAD_REQUEST, "MALFORMED_JSON");
    get(&api, "/v1/accounts/%FF%FE")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_PATH");
    get(&api, "/v1/transactions/%C3%28")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_PATH");
    post_bytes(
        &api,
        "/v1/transactions?wait_ms=18446744073709551616",
        encoding::encode(&good),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "BAD_QUERY");
    post_bytes(&api, "/v1/transactions?wait_ms=-1", encoding::encode(&good))
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_QUERY");
    get(
        &api,
        &format!("/v1/accounts/{PAYER}/history?before=1:4294967296"),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "BAD_CURSOR");
    get(&api, "/v1/events?from_index=4294967296")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_QUERY");
    for cursor in ["1:-1", "18446744073709551616:0", ":", "1:2:3"] {
        call(
            &api,
            "GET",
            "/v1/events",
            &[("last-event-id", cursor)],
            Vec::new(),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_CURSOR");
    }

    // ---- the node keeps serving, and nothing moved
    let health = get(&api, "/health").await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text());
    let height = net.audit_caught_up().await;
    let after = balances(&audit_api).await;
    assert_eq!(before, after, "bad input moved money");
    // The audit node re-executed every block, the rejected ones included, and agrees.
    let audit_health = get(&audit_api, "/health").await;
    assert_eq!(
        audit_health.status,
        StatusCode::OK,
        "{}",
        audit_health.text()
    );
    let ours = get(&api, &format!("/v1/blocks/{height}")).await.json();
    let theirs = get(&audit_api, &format!("/v1/blocks/{height}"))
        .await
        .json();
    assert_eq!(
        ours["results"]["state_root"],
        theirs["results"]["state_root"]
    );
    assert_eq!(ours, theirs);
    // What reached a block: the wallets' opening and the one payment, accepted, and each
    // transaction answered 422 above with its ledger code; nothing refused at the door
    // (an unknown sender and a sender whose key did not sign are refused there, with the
    // ledger's codes, and never take a slot).
    let mut expected: Vec<String> = [
        ["OK"; 9].as_slice(),
        &["INVALID_AMOUNT"; 2],
        &["OVER_TIER_SINGLE_LIMIT"; 2],
        &[
            "INSUFFICIENT_FUNDS",
            "MISSING_CO_SIGNATURE",
            "TRANSFER_EXISTS",
            "TRANSFER_EXISTS_WITH_DIFFERENT_BODY",
            "ACCOUNT_NOT_FOUND",
        ],
    ]
    .concat()
    .into_iter()
    .map(String::from)
    .collect();
    expected.sort();
    assert_eq!(committed_codes(&audit_api, height).await, expected);

    // A good transaction still commits, and the audit node sees exactly its effect.
    net.commit_signed(&transfer(&net, PAYER, PAYEE, 40, 1_234))
        .await;
    net.audit_caught_up().await;
    let last = balances(&audit_api).await;
    assert_eq!(last[&PAYER.to_string()]["balance"], 50_000 - 500 - 1_234);
    assert_eq!(last[&PAYEE.to_string()]["balance"], 1_000 + 500 + 1_234);
    let mut expected = after;
    for id in [PAYER, PAYEE] {
        expected.insert(id.to_string(), last[&id.to_string()].clone());
    }
    assert_eq!(expected, last, "the good transfer moved only its own money");
    net.shutdown().await;
}

/// A refused transaction leaves nothing behind: its hash is unknown, the mempool is
/// empty, and the genuine transaction with the same body still commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_transactions_leave_no_trace() {
    let net = TestNet::start().await;
    net.funded_wallet(PAYER, BANK_A, 1_000).await;
    net.funded_wallet(PAYEE, BANK_A, 0).await;
    let good = transfer(&net, PAYER, PAYEE, 1, 10);
    let mut forged = good.clone();
    forged.signatures[0].signature.0[0] ^= 0x80;
    post_bytes(&net.api, TX, encoding::encode(&forged))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "BAD_SIGNATURE");
    let mut elsewhere = good.tx.clone();
    elsewhere.chain_id = "another-chain".into();
    let elsewhere = elsewhere.sign(&[&key(PAYER as u64)]);
    post_bytes(&net.api, TX, encoding::encode(&elsewhere))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "WRONG_CHAIN");
    for hash in [forged.hash(), elsewhere.hash(), Hash::digest("x", b"y")] {
        get(&net.api, &format!("/v1/transactions/{}", hash.to_hex()))
            .await
            .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    }
    assert_eq!(net.validator.context.metrics.mempool_txs.get(), 0);
    // The genuine one (same id as the forged one: the same keys signed the same body; the
    // signatures' bytes are not part of it) is still accepted and commits.
    assert_eq!(good.hash(), forged.hash());
    net.commit_signed(&good).await;
    net.shutdown().await;
}
