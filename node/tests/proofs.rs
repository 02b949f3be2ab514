//! Proven ledger records over a real node: `GET /v1/{accounts,orders,bills,holds}/{id}/proof`
//! checked by the client's [`RecordProof::verify`] against the genesis validators alone, and
//! the same answer altered as a lying node would alter it, refused at the link it breaks.
//! Also `tally verify`, the command a wallet's owner runs.

// Test equipment: a step that fails is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod api_support;

use api_support::*;
use hyper::StatusCode;
use tally_consensus::ValidatorSet;
use tally_contracts::commitment::{ProvenRecord, decode_record};
use tally_contracts::*;
use tally_crypto::{Hash, KeyFile};
use tally_node::proof::{ProofCheckError, ProvenEvent, ReceiptProof, RecordProof};

fn trusted() -> ValidatorSet {
    genesis(1).validator_set().unwrap()
}

fn record_proof(answer: &Answer) -> RecordProof {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    serde_json::from_value(answer.json()).unwrap()
}

/// Commits one more block (a wallet's registration), so that the state after every block
/// committed so far is certified.
async fn one_more_block(net: &TestNet, id: u128) {
    net.funded_wallet(id, BANK_B, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balance_verifies_against_the_genesis_validators_and_a_lying_node_is_caught() {
    let net = TestNet::start().await;
    let k = net.funded_wallet(100, BANK_A, 10_000).await;
    let k101 = net.funded_wallet(101, BANK_A, 0).await;
    let view = net
        .commit(
            Party::Account(AccountId(100)),
            &[&k],
            TxKind::Transfer {
                id: TransferId(7),
                to: AccountId(101),
                amount: 2_500,
                memo: Memo::NONE,
            },
        )
        .await;
    let transfer_height = view["height"].as_u64().unwrap();
    let transfer_hash = Hash::from_hex(view["hash"].as_str().unwrap()).unwrap();
    one_more_block(&net, 102).await;

    let owner = net.api.as_party(Party::Account(AccountId(100)), &k);
    let answer = get(&owner, "/v1/accounts/100/proof").await;
    let body = answer.json();
    let proof = record_proof(&answer);
    let key = ProvenRecord::Account(AccountId(100)).key();
    let (value, height) = proof.verify(CHAIN, &trusted(), &key).unwrap();
    assert!(height >= transfer_height, "{height} < {transfer_height}");
    let account: Account = decode_record(&key, &value.clone().unwrap()).unwrap();
    assert_eq!(account.balance(), 7_500);
    assert_eq!(body["record"]["currency"], serde_json::json!(*b"CNY"));

    // A node that alters the balance in its answer: the proof no longer holds.
    let mut lie = proof.clone();
    let mut richer = account.clone();
    richer.overdraft_limit += 1_000_000;
    lie.value = Some(hex::encode(postcard::to_allocvec(&richer).unwrap()));
    assert!(matches!(
        lie.verify(CHAIN, &trusted(), &key),
        Err(ProofCheckError::Proof(_))
    ));
    // ... or says the account does not exist.
    let mut lie = proof.clone();
    lie.value = None;
    assert!(matches!(
        lie.verify(CHAIN, &trusted(), &key),
        Err(ProofCheckError::Proof(_))
    ));
    // ... or answers with a ledger root of its own making: it is not the header's.
    let mut lie = proof.clone();
    lie.ledger_root = Hash::digest("made up", b"root");
    assert!(lie.verify(CHAIN, &trusted(), &key).is_err());
    // ... or a header no quorum signed.
    let mut lie = proof.clone();
    lie.certified.header.time_ms += 1;
    assert_eq!(
        lie.verify(CHAIN, &trusted(), &key),
        Err(ProofCheckError::CertificateNotForHeader)
    );
    let mut lie = proof.clone();
    lie.certified.body_digest = Hash::digest("another", b"body");
    assert_eq!(
        lie.verify(CHAIN, &trusted(), &key),
        Err(ProofCheckError::CertificateNotForHeader)
    );
    // ... or the proof of another account, under this account's key or its own.
    let other = record_proof(&get(&net.api, "/v1/accounts/101/proof").await);
    assert!(matches!(
        other.verify(CHAIN, &trusted(), &key),
        Err(ProofCheckError::WrongKey { .. })
    ));
    let mut lie = other.clone();
    lie.key = proof.key.clone();
    assert!(matches!(
        lie.verify(CHAIN, &trusted(), &key),
        Err(ProofCheckError::Proof(_))
    ));
    // A client that trusts other validators believes nothing this chain signed: the header
    // names another set.
    let strangers = ValidatorSet::new(vec![tally_consensus::Validator {
        public_key: key_of_stranger(),
        power: 1,
    }])
    .unwrap();
    assert!(matches!(
        proof.verify(CHAIN, &strangers, &key),
        Err(ProofCheckError::UnknownValidatorSet { .. })
    ));
    assert!(matches!(
        proof.verify("another-chain", &trusted(), &key),
        Err(ProofCheckError::WrongChain(_))
    ));

    // Account 101's own proof holds for it; an unknown account is proven absent.
    let key101 = ProvenRecord::Account(AccountId(101)).key();
    let (value, _) = other.verify(CHAIN, &trusted(), &key101).unwrap();
    let a101: Account = decode_record(&key101, &value.unwrap()).unwrap();
    assert_eq!(a101.balance(), 2_500);
    let absent = record_proof(&get(&owner, "/v1/accounts/999/proof").await);
    let (value, _) = absent
        .verify(
            CHAIN,
            &trusted(),
            &ProvenRecord::Account(AccountId(999)).key(),
        )
        .unwrap();
    assert_eq!(value, None);
    // An order, a bill and a hold that do not exist are proven absent the same way.
    for (path, record) in [
        ("/v1/orders/5/proof", ProvenRecord::Order(OrderId(5))),
        ("/v1/bills/5/proof", ProvenRecord::Bill(BillId(5))),
        ("/v1/holds/5/proof", ProvenRecord::Hold(TransferId(5))),
    ] {
        let p = record_proof(&get(&owner, path).await);
        assert_eq!(p.verify(CHAIN, &trusted(), &record.key()).unwrap().0, None);
    }

    // The transfer's receipt, proven to its sender with every event in clear, and to its
    // payee with the events it may not read as hashes only (as the unproven status shows it).
    let path = format!("/v1/transactions/{transfer_hash}/proof");
    let answer = get(&owner, &path).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let receipt: ReceiptProof = serde_json::from_value(answer.json()).unwrap();
    assert_eq!(
        receipt.verify(CHAIN, &trusted(), transfer_hash).unwrap(),
        transfer_height
    );
    assert_eq!(receipt.result, Ok(()));
    assert!(
        receipt
            .events
            .iter()
            .all(|e| matches!(e, ProvenEvent::Shown(_)))
    );
    assert!(!receipt.events.is_empty());
    let payee = net.api.as_party(Party::Account(AccountId(101)), &k101);
    let theirs: ReceiptProof = serde_json::from_value(get(&payee, &path).await.json()).unwrap();
    theirs.verify(CHAIN, &trusted(), transfer_hash).unwrap();
    let status = get(&payee, &format!("/v1/transactions/{transfer_hash}"))
        .await
        .json();
    let shown = theirs
        .events
        .iter()
        .filter(|e| matches!(e, ProvenEvent::Shown(_)))
        .count();
    assert_eq!(shown, status["events"].as_array().unwrap().len());
    assert_eq!(theirs.events.len(), receipt.events.len());
    // A node that turns the receipt into a refusal, drops an event, or answers with another
    // transaction's receipt is not believed.
    let mut lie = receipt.clone();
    lie.result = Err(Rejection::InsufficientFunds);
    assert!(lie.verify(CHAIN, &trusted(), transfer_hash).is_err());
    let mut lie = receipt.clone();
    lie.events.pop();
    assert!(lie.verify(CHAIN, &trusted(), transfer_hash).is_err());
    let mut lie = receipt.clone();
    lie.path.reverse();
    lie.path.push(tally_crypto::MerkleStep::Left(Hash::ZERO));
    assert!(lie.verify(CHAIN, &trusted(), transfer_hash).is_err());
    assert!(matches!(
        receipt.verify(CHAIN, &trusted(), Hash::digest("other", b"tx")),
        Err(ProofCheckError::WrongTransaction { .. })
    ));
    // A competing bank holds no part of it.
    get(&net.api.as_institution(BANK_B), &path)
        .await
        .error(StatusCode::FORBIDDEN, "OUT_OF_SCOPE");
    get(&owner, &format!("/v1/transactions/{}/proof", Hash::ZERO))
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");

    // The same read rules as the unproven record: a competing bank, another customer and
    // nobody at all are refused account 100's proof.
    get(&net.api.as_institution(BANK_B), "/v1/accounts/100/proof")
        .await
        .error(StatusCode::FORBIDDEN, "OUT_OF_SCOPE");
    get(
        &net.api.as_party(Party::Account(AccountId(101)), &k101),
        "/v1/accounts/100/proof",
    )
    .await
    .error(StatusCode::FORBIDDEN, "OUT_OF_SCOPE");
    get(&net.api.anonymous(), "/v1/accounts/100/proof")
        .await
        .error(StatusCode::UNAUTHORIZED, "CREDENTIALS_REQUIRED");
    get(&owner, "/v1/accounts/x/proof")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_ID");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_committed_nothing_since_it_started_has_no_certified_state() {
    // Two validators in the genesis, one running: the node never commits a block.
    let net = TestNet::start_with(Setup {
        genesis_validators: 2,
        ..Setup::default()
    })
    .await;
    get(&net.api, "/v1/accounts/100/proof")
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE, "NOT_CERTIFIED_YET");
    net.shutdown().await;
}

fn key_of_stranger() -> tally_crypto::PublicKey {
    tally_crypto::SigningKey::from_seed([0xEE; 32]).public_key()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tally_verify_says_verified_at_a_height_or_why_not() {
    let net = TestNet::start().await;
    let k = net.funded_wallet(100, BANK_A, 10_000).await;
    net.funded_wallet(101, BANK_A, 0).await;
    let view = net
        .commit(
            Party::Account(AccountId(100)),
            &[&k],
            TxKind::Transfer {
                id: TransferId(8),
                to: AccountId(101),
                amount: 1_250,
                memo: Memo::NONE,
            },
        )
        .await;
    let transfer = view["hash"].as_str().unwrap().to_string();
    one_more_block(&net, 102).await;
    let dir = tempfile::tempdir().unwrap();
    let genesis_path = dir.path().join("genesis.json");
    std::fs::write(&genesis_path, genesis(1).to_json()).unwrap();
    let key_path = dir.path().join("wallet-100.key");
    KeyFile::write_new(&k, &key_path).unwrap();
    let api = format!("https://{}", net.api.addr);
    let ca = net.ca_file();
    let run = |what: Vec<String>, genesis: std::path::PathBuf| {
        let (api, key_path, ca) = (api.clone(), key_path.clone(), ca.clone());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
                .arg("verify")
                .args(what)
                .args(["--api", &api, "--ca-cert", ca.to_str().unwrap()])
                .args([
                    "--as",
                    "account:100",
                    "--as-key",
                    key_path.to_str().unwrap(),
                ])
                .args(["--genesis", genesis.to_str().unwrap()])
                .output()
                .unwrap()
        })
    };
    let account = || vec!["account".to_string(), "--id".into(), "100".into()];
    let out = run(account(), genesis_path.clone()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("account 100 verified at height"),
        "{stdout}"
    );
    assert!(stdout.contains("balance 87.50 CNY"), "{stdout}");

    let receipt = vec!["transaction".to_string(), "--hash".into(), transfer.clone()];
    let out = run(receipt, genesis_path.clone()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "transaction {transfer} verified committed at height"
        )),
        "{stdout}"
    );
    assert!(stdout.contains(": OK;"), "{stdout}");

    // Trusting another chain's validators, the same answer is not believed.
    let mut other = genesis(1);
    other.validators = vec![tally_consensus::Validator {
        public_key: key_of_stranger(),
        power: 1,
    }];
    let other_path = dir.path().join("other-genesis.json");
    std::fs::write(&other_path, other.to_json()).unwrap();
    let out = run(account(), other_path).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("NOT VERIFIED"), "{stderr}");
    net.shutdown().await;
}

/// The validator set changes by governance: {validator 0} becomes {a new key of power 1,
/// validator 0 of power 5}, so validator 0 alone still commits, now as index 1. A client that
/// trusts only the genesis refuses the new set's certificates; one that follows the change the
/// node serves (certified by the genesis set, committed to by its block's header) verifies
/// them; a node that alters the change, makes one up, or serves it twice is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_follows_a_certified_validator_change_and_refuses_an_altered_one() {
    use tally_consensus::Validator;
    use tally_node::proof::{TrustedValidators, ValidatorChanges};
    use tally_node::validator_update::{ValidatorChange, ValidatorUpdate};

    let net = TestNet::start().await;
    let k = net.funded_wallet(200, BANK_A, 10_000).await;
    let newcomer = key(7_700).public_key();
    let change = ValidatorChange {
        effective_height: net.head() + 5,
        validators: vec![
            Validator {
                public_key: newcomer,
                power: 1,
            },
            Validator {
                public_key: validator_key(0).public_key(),
                power: 5,
            },
        ],
    };
    // Anyone may send a change; only one the set in force signed is held.
    let anyone = net.api.anonymous();
    let post_update = |update: &ValidatorUpdate| {
        post_json(
            &anyone,
            "/v1/validators/updates",
            serde_json::to_vec(update).unwrap(),
        )
    };
    let by_outsider = ValidatorUpdate::sign(change.clone(), CHAIN, &[&key(7_701)]);
    post_update(&by_outsider)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "NOT_A_VALIDATOR");
    let mut altered = ValidatorUpdate::sign(change.clone(), CHAIN, &[&validator_key(0)]);
    altered.change.validators[0].power = 50;
    post_update(&altered)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "BAD_SIGNATURE");
    post_json(
        &anyone,
        "/v1/validators/updates",
        b"{\"change\": 1}".to_vec(),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "BAD_BODY");
    // Nothing refused is held: below, the one change ever carried is the command's.
    let answer = get(&anyone, "/v1/validators").await.json();
    assert!(
        answer["scheduled"].as_array().unwrap().is_empty(),
        "a refused change was scheduled: {answer}"
    );

    // The validator's operator changes the set with the command: validator 0 moves behind the
    // newcomer, so the new set's certificates name it by another index.
    let dir = tempfile::tempdir().unwrap();
    let validator_key_file = dir.path().join("validator-0.key");
    KeyFile::write_new(&validator_key(0), &validator_key_file).unwrap();
    let (api, ca) = (format!("https://{}", net.api.addr), net.ca_file());
    let tally = move |args: Vec<String>| {
        let (api, ca) = (api.clone(), ca.clone());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
                .args(args)
                .args(["--api", &api, "--ca-cert", ca.to_str().unwrap()])
                .output()
                .unwrap()
        })
    };
    let mine = validator_key(0).public_key().to_hex();
    let out = tally(vec![
        "governance".into(),
        "change-validators".into(),
        "--validator-key".into(),
        validator_key_file.to_str().unwrap().into(),
        "--remove".into(),
        mine.clone(),
        "--set".into(),
        format!("{}:1", newcomer.to_hex()),
        "--set".into(),
        format!("{mine}:5"),
        "--effective-in".into(),
        "5".into(),
    ])
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("validator set change scheduled: from height"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer = get(&anyone, "/v1/validators").await.json();
    let effective = answer["scheduled"][0]["from_height"].as_u64().unwrap();
    let mut id = 201;
    while net.head() <= effective + 1 {
        one_more_block(&net, id).await;
        id += 1;
    }
    let owner = net.api.as_party(Party::Account(AccountId(200)), &k);
    let proof = record_proof(&get(&owner, "/v1/accounts/200/proof").await);
    assert!(proof.height >= effective, "proof at {}", proof.height);
    let record_key = ProvenRecord::Account(AccountId(200)).key();
    assert!(
        matches!(
            proof.verify(CHAIN, &trusted(), &record_key),
            Err(ProofCheckError::UnknownValidatorSet { .. })
        ),
        "the genesis set alone believed the new set's header"
    );

    let answer = get(&net.api.anonymous(), "/v1/validators/changes").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let changes: ValidatorChanges = serde_json::from_value(answer.json()).unwrap();
    assert_eq!(changes.changes.len(), 1, "{}", answer.text());
    assert_eq!(changes.changes[0].updates.len(), 1, "{}", answer.text());
    assert_eq!(changes.next_from_height, None);
    let carried = &changes.changes[0];
    let mut following = TrustedValidators::genesis(CHAIN, trusted());
    following.follow(carried).unwrap();
    let (value, _) = proof
        .verify(CHAIN, following.at(proof.height + 1).unwrap(), &record_key)
        .unwrap();
    assert!(value.is_some());
    // The same block again: refused, the client's view unchanged.
    assert!(matches!(
        following.follow(carried),
        Err(ProofCheckError::ChangesOutOfOrder { .. })
    ));

    // A node that moves the change's height, or hands the new set all the power.
    let fresh = || TrustedValidators::genesis(CHAIN, trusted());
    let mut moved = carried.clone();
    moved.updates[0].change.effective_height += 1;
    assert!(matches!(
        fresh().follow(&moved),
        Err(ProofCheckError::ChangesNotInHeader { .. })
    ));
    // The same, with the header's digest made to match: the certificate no longer does.
    moved.certified.header.validator_updates_root =
        tally_node::block::validator_updates_root(&moved.updates);
    assert!(matches!(
        fresh().follow(&moved),
        Err(ProofCheckError::CertificateNotForHeader)
    ));
    // The same change signed by a key outside the set instead: not what the header commits
    // to. (The signature check behind it is `ValidatorUpdate::verify`'s, every node's, tested
    // in `validator_update.rs` and above through the API.)
    let mut made_up = carried.clone();
    made_up.updates = vec![ValidatorUpdate::sign(
        carried.updates[0].change.clone(),
        CHAIN,
        &[&key(7_701)],
    )];
    assert!(matches!(
        fresh().follow(&made_up),
        Err(ProofCheckError::ChangesNotInHeader { .. })
    ));

    // `tally verify` follows the change by itself.
    let genesis_path = dir.path().join("genesis.json");
    std::fs::write(&genesis_path, genesis(1).to_json()).unwrap();
    let key_path = dir.path().join("wallet-200.key");
    KeyFile::write_new(&k, &key_path).unwrap();
    let out = tally(
        [
            "verify",
            "account",
            "--id",
            "200",
            "--as",
            "account:200",
            "--as-key",
            key_path.to_str().unwrap(),
            "--genesis",
            genesis_path.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec(),
    )
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("account 200 verified at height"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("of 2 validators"), "{stdout}");
    net.shutdown().await;
}
