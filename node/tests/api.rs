//! The HTTP API over a real server on 127.0.0.1, against a tiny single-node chain.
//!
//! The harness (`TestChain`) is test equipment, not a second node: it admits submissions
//! (canonical decode, batch signature check, duplicates, a small bound), and on request
//! seals everything admitted into the next block: it executes the block with the ledger,
//! signs a one-validator commit certificate, commits it all to a temp-dir `Storage` and
//! bumps `committed`. The API sees exactly what it would see on a real node.

// Test equipment: a step that fails is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tally_consensus::{
    CommitCertificate, CommitSignature, DOMAIN_PRECOMMIT, Height, Round, Validator, ValidatorIndex,
    ValidatorSet,
};
use tally_contracts::*;
use tally_crypto::{Hash, KeyCache, SigningKey};
use tally_node::api::{self, Limits};
use tally_node::block::{Block, BlockHeader, BlockResults, txs_root};
use tally_node::mempool::MempoolError;
use tally_node::metrics::Metrics;
use tally_node::service::{NodeContext, Submission, SubmitError};
use tally_node::storage::{BlockCommit, Storage};
use tokio::sync::{mpsc, oneshot, watch};

const CHAIN: &str = "tally-api-test";
const BANK_A: InstitutionId = InstitutionId(1);
const BANK_B: InstitutionId = InstitutionId(2);
const PLATFORM: InstitutionId = InstitutionId(3);
const FX: InstitutionId = InstitutionId(4);
const START_MS: u64 = 1_800_000_000_000;
const BLOCK_MS: u64 = 1_000;

fn key(seed: u64) -> SigningKey {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[31] = 0x5a;
    SigningKey::from_seed(bytes)
}

fn institution_key(id: InstitutionId) -> SigningKey {
    key(1_000 + u64::from(id.0))
}

fn validator_key() -> SigningKey {
    key(9_999)
}

fn genesis() -> Genesis {
    let inst = |id, roles: &[Roles]| GenesisInstitution {
        id,
        key: institution_key(id).public_key(),
        roles: roles.iter().fold(Roles::default(), |a, b| a.with(*b)),
    };
    let currencies = [Currency::CNY, Currency::USD];
    Genesis {
        chain_id: CHAIN.into(),
        time_ms: START_MS,
        currencies: currencies.to_vec(),
        institutions: vec![
            inst(BANK_A, &[Roles::BANK, Roles::KYC, Roles::ACQUIRER]),
            inst(BANK_B, &[Roles::BANK, Roles::KYC, Roles::ACQUIRER]),
            inst(PLATFORM, &[Roles::PLATFORM, Roles::KYC]),
            inst(FX, &[Roles::FX_PROVIDER]),
        ],
        platform: PLATFORM,
        governance_keys: vec![key(2_000).public_key()],
        governance_threshold: 1,
        issuance_limits: [BANK_A, BANK_B]
            .iter()
            .flat_map(|b| currencies.map(|c| (*b, c, 1_000_000_000)))
            .collect(),
        fx_credit_lines: currencies.map(|c| (FX, c, 1_000_000_000)).to_vec(),
        tiers: vec![TierLimits {
            single_max: 1_000_000,
            daily_max: 5_000_000,
        }],
        merchant_fee_bps_max: 300,
        corridors: vec![Corridor {
            from: Currency::CNY,
            to: Currency::USD,
            single_max: 500_000,
        }],
        sanctions: vec![],
    }
}

/// What the harness chain admitted and not yet sealed.
#[derive(Default)]
struct Pool {
    txs: Vec<(SignedTransaction, VerifiedTransaction)>,
    hashes: BTreeSet<Hash>,
}

struct TestChain {
    ctx: NodeContext,
    addr: SocketAddr,
    seals: mpsc::Sender<oneshot::Sender<u64>>,
    _dir: tempfile::TempDir,
    _shutdown: oneshot::Sender<()>,
}

impl TestChain {
    async fn start() -> TestChain {
        TestChain::start_with(Limits::default(), 1_000).await
    }

    async fn start_with(limits: Limits, pool_txs_max: usize) -> TestChain {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), CHAIN).unwrap();
        let (submit, submissions) = mpsc::channel(16);
        let (seals, seal_requests) = mpsc::channel(1);
        let (committed_tx, committed) = watch::channel(0);
        let pool = Arc::new(Mutex::new(Pool::default()));
        let pending = {
            let pool = pool.clone();
            Arc::new(move |h: &Hash| pool.lock().unwrap().hashes.contains(h))
        };
        let ctx = NodeContext {
            chain_id: CHAIN.to_string(),
            storage: storage.clone(),
            submit,
            committed,
            pending,
            metrics: Arc::new(Metrics::new()),
        };
        tokio::spawn(chain_task(
            storage,
            submissions,
            seal_requests,
            pool,
            committed_tx,
            pool_txs_max,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown_tx, shutdown) = oneshot::channel::<()>();
        let router = api::router_with(ctx.clone(), limits);
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = shutdown.await;
                })
                .await
                .unwrap();
        });
        TestChain {
            ctx,
            addr,
            seals,
            _dir: dir,
            _shutdown: shutdown_tx,
        }
    }

    /// Seals everything admitted so far into the next block; answers its height.
    async fn seal(&self) -> u64 {
        let (done, height) = oneshot::channel();
        self.seals.send(done).await.unwrap();
        height.await.unwrap()
    }

    fn nonce(&self, party: Party) -> u64 {
        match party {
            Party::Account(id) => query::account(&self.ctx.storage, id)
                .unwrap()
                .map_or(0, |a| a.holder.nonce),
            Party::Institution(id) => query::institution(&self.ctx.storage, id)
                .unwrap()
                .map_or(0, |i| i.nonce),
        }
    }

    fn sign(&self, sender: Party, keys: &[&SigningKey], kind: TxKind) -> SignedTransaction {
        Transaction {
            chain_id: CHAIN.into(),
            sender,
            nonce: self.nonce(sender),
            kind,
        }
        .sign(keys)
    }

    /// Submits straight to the node (not over HTTP) and seals: for setting up state.
    async fn commit(&self, sender: Party, keys: &[&SigningKey], kind: TxKind) -> Receipt {
        let signed = self.sign(sender, keys, kind);
        let hash = self.ctx.submit(encoding::encode(&signed)).await.unwrap();
        let height = self.seal().await;
        let results = self.results(height);
        let receipt = results.receipts.into_iter().find(|r| r.tx == hash).unwrap();
        assert_eq!(receipt.result, Ok(()), "{receipt:?}");
        receipt
    }

    fn results(&self, height: u64) -> BlockResults {
        BlockResults::decode(&self.ctx.storage.results(height).unwrap().unwrap()).unwrap()
    }

    /// A consumer wallet at `bank`, with a bound card and `amount` topped up.
    async fn funded_wallet(&self, id: u128, bank: InstitutionId, amount: Amount) -> SigningKey {
        let k = key(id as u64);
        let bank_key = institution_key(bank);
        let me = Party::Account(AccountId(id));
        self.commit(
            me,
            &[&k, &bank_key],
            TxKind::RegisterAccount {
                account: AccountId(id),
                key: k.public_key(),
                currency: Currency::CNY,
                institution: bank,
                tier: 0,
                identity: Hash::digest("identity", &id.to_le_bytes()),
            },
        )
        .await;
        let card = CardToken([id as u8; 32]);
        self.commit(me, &[&k, &bank_key], TxKind::BindCard { card, bank })
            .await;
        if amount > 0 {
            self.commit(
                me,
                &[&k, &bank_key],
                TxKind::TopUp {
                    id: TransferId(id << 32),
                    card,
                    amount,
                },
            )
            .await;
        }
        k
    }
}

async fn chain_task(
    storage: Storage,
    mut submissions: mpsc::Receiver<Submission>,
    mut seals: mpsc::Receiver<oneshot::Sender<u64>>,
    pool: Arc<Mutex<Pool>>,
    committed: watch::Sender<u64>,
    pool_txs_max: usize,
) {
    let mut cache = KeyCache::default();
    let mut genesis_writes = Some(genesis().apply(&MemoryStore::new()).unwrap().writes);
    loop {
        tokio::select! {
            Some(submission) = submissions.recv() => {
                let answer = admit(&submission.bytes, &pool, pool_txs_max, &mut cache);
                let _ = submission.reply.send(answer);
            }
            Some(done) = seals.recv() => {
                let txs = std::mem::take(&mut *pool.lock().unwrap());
                let height = seal(&storage, txs.txs, genesis_writes.take());
                committed.send_replace(height);
                let _ = done.send(height);
            }
            else => return,
        }
    }
}

fn admit(
    bytes: &[u8],
    pool: &Mutex<Pool>,
    pool_txs_max: usize,
    cache: &mut KeyCache,
) -> Result<Hash, SubmitError> {
    let signed = encoding::decode(bytes)?;
    let verified = verify_transactions(CHAIN, vec![signed.clone()], cache)
        .pop()
        .unwrap()?;
    let mut pool = pool.lock().unwrap();
    if pool.hashes.contains(&verified.hash()) {
        return Err(MempoolError::Duplicate.into());
    }
    if pool.txs.len() >= pool_txs_max {
        return Err(MempoolError::Busy.into());
    }
    let hash = verified.hash();
    pool.hashes.insert(hash);
    pool.txs.push((signed, verified));
    Ok(hash)
}

/// The accounts an executed transaction touched, for the history index: its sender and
/// every account its events name.
fn touched(signed: &SignedTransaction, receipt: &Receipt) -> BTreeSet<u128> {
    let mut accounts = BTreeSet::new();
    if let Party::Account(id) = signed.tx.sender {
        accounts.insert(id.0);
    }
    for event in &receipt.events {
        let Value::Object(outer) = serde_json::to_value(event).unwrap() else {
            continue;
        };
        for (kind, fields) in outer {
            if kind == "ObligationRecorded" {
                continue;
            }
            let Value::Object(fields) = fields else {
                continue;
            };
            for (name, value) in fields {
                let is_account = [
                    "account",
                    "from",
                    "to",
                    "payer",
                    "merchant",
                    "biller",
                    "sender",
                    "beneficiary",
                ]
                .contains(&name.as_str());
                if let (true, Some(id)) = (is_account, value.as_u64()) {
                    accounts.insert(u128::from(id));
                }
            }
        }
    }
    accounts
}

// `BlockCommit` gains fields (the validator schedule) this harness leaves empty.
#[allow(clippy::needless_update)]
fn seal(
    storage: &Storage,
    txs: Vec<(SignedTransaction, VerifiedTransaction)>,
    genesis_writes: Option<Vec<Write>>,
) -> u64 {
    let head = storage.head().unwrap().unwrap_or(0);
    let height = head + 1;
    let time_ms = START_MS + height * BLOCK_MS;
    let verified: Vec<VerifiedTransaction> = txs.iter().map(|(_, v)| v.clone()).collect();
    // Block 1 executes over genesis state, which is committed together with it.
    let mut genesis_store = MemoryStore::new();
    let (store, mut state_writes): (&dyn StateStore, Vec<_>) = match &genesis_writes {
        Some(writes) => {
            genesis_store.apply(writes);
            (
                &genesis_store,
                writes
                    .iter()
                    .map(|w| (w.key.clone(), w.value.clone()))
                    .collect(),
            )
        }
        None => (storage, Vec::new()),
    };
    let previous = Ledger::chain_head(store).unwrap().unwrap();
    let out = Ledger::execute_block(store, BlockContext { height, time_ms }, &verified).unwrap();
    state_writes.extend(out.writes.iter().map(|w| (w.key.clone(), w.value.clone())));
    let parent = match storage.block(head).unwrap() {
        Some(bytes) => Block::hash_of(&bytes).0,
        None => Hash::ZERO,
    };
    let signed: Vec<SignedTransaction> = txs.iter().map(|(s, _)| s.clone()).collect();
    let block = Block {
        header: BlockHeader {
            chain_id: CHAIN.into(),
            height,
            time_ms,
            parent,
            state_root: previous.state_root,
            txs_root: txs_root(&signed),
            proposer: validator_key().public_key(),
        },
        txs: signed,
        evidence: Vec::new(),
        validator_updates: Vec::new(),
    };
    let block_bytes = block.encode();
    let mut certificate = CommitCertificate {
        height: Height(height),
        round: Round(0),
        block: Block::hash_of(&block_bytes),
        signatures: Vec::new(),
    };
    let precommit = certificate.precommit(ValidatorIndex(0));
    certificate.signatures.push(CommitSignature {
        validator: ValidatorIndex(0),
        signature: validator_key().sign(DOMAIN_PRECOMMIT, CHAIN, &precommit.signing_bytes()),
    });
    let results = BlockResults {
        state_root: out.state_root,
        expired: out.expired,
        receipts: out.receipts,
    };
    let mut account_entries = Vec::new();
    for (index, ((signed, _), receipt)) in txs.iter().zip(&results.receipts).enumerate() {
        for account in touched(signed, receipt) {
            account_entries.push((AccountId(account).to_key_bytes().to_vec(), index as u32));
        }
    }
    let tx_hashes: Vec<Hash> = verified.iter().map(|v| v.hash()).collect();
    storage
        .commit_block(&BlockCommit {
            height,
            block: &block_bytes,
            certificate: &tally_consensus::encode(&certificate),
            results: &results.encode(),
            state_writes: &state_writes,
            tx_hashes: &tx_hashes,
            account_entries: &account_entries,
            ..Default::default()
        })
        .unwrap();
    height
}

// ---------------------------------------------------------------- a small HTTP client

struct Answer {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts an error answer: its status and stable code.
    fn error(&self, status: StatusCode, code: &str) -> Value {
        let body = self.json();
        assert_eq!(self.status, status, "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert!(body["message"].is_string(), "{body}");
        body
    }
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> hyper::Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "tally.test");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    sender
        .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap()
}

async fn call(
    chain: &TestChain,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let response = send(chain.addr, method, path, headers, body).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: body.to_vec(),
    }
}

async fn get(chain: &TestChain, path: &str) -> Answer {
    call(chain, "GET", path, &[], Vec::new()).await
}

async fn post_bytes(chain: &TestChain, path: &str, bytes: Vec<u8>) -> Answer {
    call(
        chain,
        "POST",
        path,
        &[("content-type", "application/octet-stream")],
        bytes,
    )
    .await
}

async fn post_json(chain: &TestChain, path: &str, body: Vec<u8>) -> Answer {
    call(
        chain,
        "POST",
        path,
        &[("content-type", "application/json")],
        body,
    )
    .await
}

/// A server-sent event stream, read frame by frame.
struct EventStream {
    body: Incoming,
    buffer: String,
}

impl EventStream {
    async fn open(chain: &TestChain, path: &str, last_event_id: Option<&str>) -> EventStream {
        let headers: Vec<(&str, &str)> = last_event_id
            .map(|id| vec![("last-event-id", id)])
            .unwrap_or_default();
        let response = send(chain.addr, "GET", path, &headers, Vec::new()).await;
        assert_eq!(response.status(), StatusCode::OK);
        EventStream {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next event's id and data, or `None` if none comes within a while.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut id = None;
                let mut data = None;
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim_start().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(serde_json::from_str(v.trim_start()).unwrap());
                    }
                }
                match (id, data) {
                    (Some(id), Some(data)) => return Some((id, data)),
                    _ => continue, // a keep-alive comment
                }
            }
            let frame = tokio::time::timeout(Duration::from_secs(2), self.body.frame())
                .await
                .ok()??
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }
}

fn hex_of(v: &Value) -> &str {
    v.as_str().unwrap()
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn submit_in_both_forms_then_status_until_committed() {
    let chain = TestChain::start().await;
    let k = key(100);
    let bank = institution_key(BANK_A);
    let register = chain.sign(
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
    let answer = post_json(
        &chain,
        "/v1/transactions",
        serde_json::to_vec(&register).unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    let body = answer.json();
    assert_eq!(body["status"], "pending");
    assert_eq!(hex_of(&body["hash"]), register.tx.hash().to_hex());
    let status_path = format!("/v1/transactions/{}", register.tx.hash().to_hex());
    let pending = get(&chain, &status_path).await;
    assert_eq!(pending.status, StatusCode::OK);
    assert_eq!(pending.json()["status"], "pending");

    // The same transaction again, while it waits: a conflict.
    post_bytes(&chain, "/v1/transactions", encoding::encode(&register))
        .await
        .error(StatusCode::CONFLICT, "DUPLICATE");

    let height = chain.seal().await;
    let committed = get(&chain, &status_path).await;
    assert_eq!(committed.status, StatusCode::OK);
    let body = committed.json();
    assert_eq!(body["status"], "committed");
    assert_eq!(body["height"], height);
    assert_eq!(body["index"], 0);
    assert_eq!(body["code"], "OK");
    assert_eq!(body["events"][0]["kind"], "AccountRegistered");
    assert_eq!(body["events"][0]["id"], format!("{height}:0"));

    // Once committed, submitting it again is refused as well.
    post_bytes(&chain, "/v1/transactions", encoding::encode(&register))
        .await
        .error(StatusCode::CONFLICT, "ALREADY_COMMITTED");

    // A never-seen hash is unknown.
    get(
        &chain,
        &format!("/v1/transactions/{}", Hash::digest("x", b"y").to_hex()),
    )
    .await
    .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    get(&chain, "/v1/transactions/nothex")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_HEX");
    get(&chain, "/v1/transactions/abcd")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_HEX");
}

#[tokio::test]
async fn waiting_answers_the_outcome_or_pending_when_time_is_up() {
    let chain = Arc::new(TestChain::start().await);
    let k = chain.funded_wallet(100, BANK_A, 0).await;
    let me = Party::Account(AccountId(100));
    let top_up = chain.sign(
        me,
        &[&k, &institution_key(BANK_A)],
        TxKind::TopUp {
            id: TransferId(1),
            card: CardToken([100; 32]),
            amount: 5_000,
        },
    );
    // Sealed while the request waits.
    {
        let chain2 = chain.clone();
        let hash = top_up.tx.hash();
        let sealer = tokio::spawn(async move {
            while !(chain2.ctx.pending)(&hash) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            chain2.seal().await
        });
        let answer = post_bytes(
            &chain,
            "/v1/transactions?wait_ms=10000",
            encoding::encode(&top_up),
        )
        .await;
        let height = sealer.await.unwrap();
        let body = answer.json();
        assert_eq!(answer.status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "committed");
        assert_eq!(body["height"], height);
        assert_eq!(body["events"][0]["kind"], "ToppedUp");
    }

    // A transfer above the balance is committed and rejected: 422 with the ledger's code.
    let overdraw = chain.sign(
        me,
        &[&k],
        TxKind::Transfer {
            id: TransferId(2),
            to: AccountId::institutional(BANK_A, AccountKind::Fee, Currency::CNY),
            amount: 1_000_000,
        },
    );
    let chain2 = chain.clone();
    let hash = overdraw.tx.hash();
    let sealer = tokio::spawn(async move {
        while !(chain2.ctx.pending)(&hash) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        chain2.seal().await
    });
    let answer = post_bytes(
        &chain,
        "/v1/transactions?wait_ms=10000",
        encoding::encode(&overdraw),
    )
    .await;
    sealer.await.unwrap();
    let body = answer.json();
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_ne!(body["code"], "OK");
    assert!(
        Rejection::ALL.iter().any(|r| body["code"] == r.code()),
        "{body}"
    );
    assert_eq!(hex_of(&body["hash"]), hash.to_hex());

    // Nobody seals: the wait ends with the transaction still pending.
    let late = chain.sign(
        me,
        &[&k],
        TxKind::SetSecondFactor {
            key: None,
            threshold: 0,
        },
    );
    let answer = post_bytes(
        &chain,
        "/v1/transactions?wait_ms=50",
        encoding::encode(&late),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(answer.json()["status"], "pending");

    post_bytes(
        &chain,
        "/v1/transactions?wait_ms=30001",
        encoding::encode(&late),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "BAD_WAIT");
    post_bytes(
        &chain,
        "/v1/transactions?wait_ms=soon",
        encoding::encode(&late),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "BAD_QUERY");
}

#[tokio::test]
async fn malformed_and_refused_submissions() {
    let chain = TestChain::start().await;
    let k = key(100);
    let good = chain.sign(
        Party::Account(AccountId(100)),
        &[&k],
        TxKind::Transfer {
            id: TransferId(1),
            to: AccountId(101),
            amount: 1,
        },
    );
    post_json(&chain, "/v1/transactions", b"{not json".to_vec())
        .await
        .error(StatusCode::BAD_REQUEST, "MALFORMED_JSON");
    post_json(&chain, "/v1/transactions", br#"{"tx": 5}"#.to_vec())
        .await
        .error(StatusCode::BAD_REQUEST, "MALFORMED_JSON");
    post_bytes(&chain, "/v1/transactions", vec![0xff; 10])
        .await
        .error(StatusCode::BAD_REQUEST, "MALFORMED_TRANSACTION");
    let mut trailing = encoding::encode(&good);
    trailing.push(0);
    post_bytes(&chain, "/v1/transactions", trailing)
        .await
        .error(StatusCode::BAD_REQUEST, "NON_CANONICAL_ENCODING");
    post_bytes(
        &chain,
        "/v1/transactions",
        vec![0; encoding::TX_BYTES_MAX + 1],
    )
    .await
    .error(StatusCode::PAYLOAD_TOO_LARGE, "TRANSACTION_TOO_LARGE");
    let mut unsigned = good.clone();
    unsigned.signatures.clear();
    post_json(
        &chain,
        "/v1/transactions",
        serde_json::to_vec(&unsigned).unwrap(),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "FIELD_OUT_OF_LIMITS");

    let mut forged = good.clone();
    forged.signatures[0].signature.0[3] ^= 1;
    post_bytes(&chain, "/v1/transactions", encoding::encode(&forged))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "BAD_SIGNATURE");
    let mut elsewhere = good.tx.clone();
    elsewhere.chain_id = "another-chain".into();
    post_bytes(
        &chain,
        "/v1/transactions",
        encoding::encode(&elsewhere.sign(&[&k])),
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY, "WRONG_CHAIN");

    call(
        &chain,
        "POST",
        "/v1/transactions",
        &[("content-type", "text/plain")],
        b"hello".to_vec(),
    )
    .await
    .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE");

    // Above the body limit: refused by its declared length, and by its actual length.
    let huge = vec![b' '; api::REQUEST_BODY_BYTES_MAX + 1];
    post_json(&chain, "/v1/transactions", huge)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_LARGE");

    // Nothing of this reached the pool.
    assert_eq!(chain.seal().await, 1);
    assert!(chain.results(1).receipts.is_empty());
}

#[tokio::test]
async fn a_full_pool_answers_busy() {
    let chain = TestChain::start_with(Limits::default(), 1).await;
    let k = key(100);
    let transfer = |nonce: u64| {
        Transaction {
            chain_id: CHAIN.into(),
            sender: Party::Account(AccountId(100)),
            nonce,
            kind: TxKind::Transfer {
                id: TransferId(nonce.into()),
                to: AccountId(101),
                amount: 1,
            },
        }
        .sign(&[&k])
    };
    let first = post_bytes(&chain, "/v1/transactions", encoding::encode(&transfer(0))).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let busy = post_bytes(&chain, "/v1/transactions", encoding::encode(&transfer(1))).await;
    busy.error(StatusCode::SERVICE_UNAVAILABLE, "BUSY");
    assert!(busy.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn accounts_and_paged_history() {
    let chain = TestChain::start().await;
    let k = chain.funded_wallet(100, BANK_A, 10_000).await;
    chain.funded_wallet(101, BANK_A, 0).await;
    chain
        .commit(
            Party::Account(AccountId(100)),
            &[&k],
            TxKind::Transfer {
                id: TransferId(7),
                to: AccountId(101),
                amount: 2_500,
            },
        )
        .await;
    let head = chain.ctx.storage.head().unwrap().unwrap();

    let answer = get(&chain, "/v1/accounts/100").await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert_eq!(body["height"], head);
    assert_eq!(body["balance"], 7_500);
    assert_eq!(body["available"], 7_500);
    assert_eq!(body["account"]["frozen"], false);
    assert_eq!(body["account"]["currency"], json!(*b"CNY"));
    assert_eq!(body["tier_limits"]["single_max"], 1_000_000);
    assert_eq!(
        get(&chain, "/v1/accounts/101").await.json()["balance"],
        2_500
    );

    get(&chain, "/v1/accounts/999")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    get(&chain, "/v1/accounts/alice")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_ID");
    get(&chain, "/v1/accounts/-1")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_ID");

    // Account 100: register, bind, top up, transfer: newest first, two per page.
    let page = get(&chain, "/v1/accounts/100/history?limit=2").await.json();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["height"], head);
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
        &chain,
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
        &chain,
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
    let theirs = get(&chain, "/v1/accounts/101/history?limit=1").await.json();
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
        get(&chain, &format!("/v1/accounts/100/history?{query}"))
            .await
            .error(StatusCode::BAD_REQUEST, code);
    }
    get(&chain, "/v1/accounts/999/history")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn orders_rates_institutions_cycles_and_codes() {
    let chain = TestChain::start().await;
    let payer = chain.funded_wallet(100, BANK_A, 50_000).await;
    chain.funded_wallet(200, BANK_B, 0).await;
    let merchant = key(300);
    chain
        .commit(
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
    chain
        .commit(
            Party::Account(AccountId(300)),
            &[&merchant],
            TxKind::CreateOrder {
                order: OrderId(42),
                amount: 1_200,
                currency: Currency::CNY,
                expires_at_ms: START_MS + 3_600_000,
                items: Hash::digest("items", b"tea"),
            },
        )
        .await;
    chain
        .commit(
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
    let order = get(&chain, "/v1/orders/42").await;
    assert_eq!(order.status, StatusCode::OK);
    let order = order.json();
    assert_eq!(order["record"]["amount"], 1_200);
    assert_eq!(order["record"]["paid"], 1_200);
    assert_eq!(order["record"]["payer"], 100);
    get(&chain, "/v1/orders/43")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    get(&chain, "/v1/orders/x")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_ID");
    get(&chain, "/v1/bills/1")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    get(&chain, "/v1/holds/1")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");

    // FX: a published rate reads back, filtered by pair.
    let now = START_MS + 20 * BLOCK_MS;
    chain
        .commit(
            Party::Institution(FX),
            &[&institution_key(FX)],
            TxKind::PublishFxRate {
                base: Currency::CNY,
                quote: Currency::USD,
                rate: 140_000_000,
                valid_from_ms: START_MS,
                valid_until_ms: now + 3_600_000,
            },
        )
        .await;
    let rates = get(&chain, "/v1/fx-rates?base=CNY&quote=USD").await.json();
    assert_eq!(rates["record"]["rates"][0]["rate"], 140_000_000);
    assert_eq!(rates["record"]["rates"][0]["provider"], FX.0);
    assert_eq!(
        rates["record"]["rates"][0]["valid_until_ms"],
        now + 3_600_000
    );
    let none = get(&chain, "/v1/fx-rates?base=USD").await.json();
    assert_eq!(none["record"]["rates"], json!([]));
    get(&chain, "/v1/fx-rates?base=usd")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_CURRENCY");

    // A transfer between banks leaves an open obligation, then a cycle nets it.
    chain
        .commit(
            Party::Account(AccountId(100)),
            &[&payer],
            TxKind::Transfer {
                id: TransferId(10),
                to: AccountId(200),
                amount: 3_000,
            },
        )
        .await;
    let bank_b = get(&chain, "/v1/institutions/2").await.json();
    let open = &bank_b["record"]["open_obligations"];
    assert_eq!(open.as_array().unwrap().len(), 1, "{bank_b}");
    assert_eq!(open[0]["from"], BANK_A.0);
    assert_eq!(open[0]["to"], BANK_B.0);
    assert_eq!(open[0]["amount"], 3_000);
    assert_eq!(bank_b["record"]["positions"][0]["net"], 3_000);
    get(&chain, "/v1/institutions/77")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    chain
        .commit(
            Party::Institution(BANK_A),
            &[&institution_key(BANK_A)],
            TxKind::SettlementCycle,
        )
        .await;
    let cycle = get(&chain, "/v1/settlement-cycles/1").await.json();
    assert_eq!(cycle["record"]["id"], 1);
    assert_eq!(cycle["record"]["positions"].as_array().unwrap().len(), 2);
    let bank_b = get(&chain, "/v1/institutions/2").await.json();
    assert_eq!(bank_b["record"]["open_obligations"], json!([]));
    get(&chain, "/v1/settlement-cycles/2")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");

    // A payment code: unused, then collected by the merchant, then used.
    let code = PaymentCode {
        payer: AccountId(100),
        payer_key: payer.public_key(),
        max_amount: 500,
        expires_at_ms: START_MS + 100 * BLOCK_MS,
        code_nonce: 5,
    };
    let path = format!("/v1/payment-codes/{}/5", payer.public_key().to_hex());
    assert_eq!(get(&chain, &path).await.json()["record"]["used"], false);
    chain
        .commit(
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
    assert_eq!(get(&chain, &path).await.json()["record"]["used"], true);
    get(&chain, "/v1/payment-codes/zz/5")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_HEX");
}

#[tokio::test]
async fn blocks_with_certificates_validators_and_evidence() {
    let chain = TestChain::start().await;
    get(&chain, "/v1/blocks/latest")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    get(&chain, "/v1/validators")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    chain.funded_wallet(100, BANK_A, 1_000).await;
    let head = chain.ctx.storage.head().unwrap().unwrap();

    let latest = get(&chain, "/v1/blocks/latest").await;
    assert_eq!(latest.status, StatusCode::OK);
    let latest = latest.json();
    assert_eq!(latest["height"], head);
    assert_eq!(latest["header"]["height"], head);
    assert_eq!(latest["txs"].as_array().unwrap().len(), 1);
    assert_eq!(
        latest["results"]["receipts"][0]["result"]["Ok"],
        Value::Null
    );
    // The certificate served is the stored one, and it verifies for the validator.
    let certificate: CommitCertificate =
        serde_json::from_value(latest["certificate"].clone()).unwrap();
    let set = ValidatorSet::new(vec![Validator {
        public_key: validator_key().public_key(),
        power: 1,
    }])
    .unwrap();
    certificate.verify(&set, CHAIN).unwrap();
    let stored = chain.ctx.storage.block(head).unwrap().unwrap();
    assert_eq!(certificate.block, Block::hash_of(&stored));
    assert_eq!(
        latest["hash"],
        serde_json::to_value(Block::hash_of(&stored)).unwrap()
    );

    let first = get(&chain, "/v1/blocks/1").await.json();
    assert_eq!(first["height"], 1);
    let second = get(&chain, "/v1/blocks/2").await.json();
    assert_eq!(second["header"]["parent"], first["hash"]);
    get(&chain, &format!("/v1/blocks/{}", head + 1))
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    get(&chain, "/v1/blocks/tall")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_ID");

    let validators = get(&chain, "/v1/validators").await.json();
    assert_eq!(validators["height"], head);
    assert_eq!(validators["signers"], json!([0]));
    assert_eq!(
        validators["proposer"],
        serde_json::to_value(validator_key().public_key()).unwrap()
    );

    let evidence = get(&chain, "/v1/evidence").await.json();
    assert_eq!(evidence["items"], json!([]));
    assert_eq!(evidence["next_before_height"], Value::Null);
    get(&chain, "/v1/evidence?before_height=x")
        .await
        .error(StatusCode::BAD_REQUEST, "BAD_QUERY");
}

#[tokio::test]
async fn health_metrics_and_unknown_routes() {
    let chain = TestChain::start().await;
    chain.seal().await;
    let health = get(&chain, "/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["height"], 1);
    chain.ctx.metrics.height.set(1);
    let metrics = get(&chain, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(text.contains("tally_height 1"), "{text}");
    chain.ctx.metrics.audit_alarm.set(1);
    get(&chain, "/health")
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE, "AUDIT_ALARM");

    get(&chain, "/v1/nothing")
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    call(&chain, "DELETE", "/v1/accounts/1", &[], Vec::new())
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
}

/// Every event of blocks `1..=head` from storage, in stream order: `(id, kind)`.
fn stored_events(chain: &TestChain, head: u64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for height in 1..=head {
        let results = chain.results(height);
        let events = results
            .expired
            .iter()
            .chain(results.receipts.iter().flat_map(|r| r.events.iter()));
        for (index, event) in events.enumerate() {
            let json = serde_json::to_value(event).unwrap();
            let kind = json.as_object().unwrap().keys().next().unwrap().clone();
            out.push((format!("{height}:{index}"), kind));
        }
    }
    out
}

#[tokio::test]
async fn the_event_stream_resumes_after_a_disconnect_exactly_once() {
    let chain = TestChain::start().await;
    let k = chain.funded_wallet(100, BANK_A, 100_000).await;
    chain.funded_wallet(101, BANK_B, 0).await;

    let mut stream = EventStream::open(&chain, "/v1/events?from_height=1", None).await;
    let mut seen: Vec<(String, String)> = Vec::new();
    for _ in 0..4 {
        let (id, data) = stream.next().await.unwrap();
        assert_eq!(data["id"], id);
        seen.push((id, data["kind"].as_str().unwrap().to_string()));
    }
    drop(stream); // the client goes away mid-stream

    // Blocks keep coming while it is away, several transactions in one block.
    let me = Party::Account(AccountId(100));
    let nonce = chain.nonce(me);
    for i in 0..3u64 {
        let signed = Transaction {
            chain_id: CHAIN.into(),
            sender: me,
            nonce: nonce + i,
            kind: TxKind::Transfer {
                id: TransferId(100 + u128::from(i)),
                to: AccountId(101),
                amount: 10,
            },
        }
        .sign(&[&k]);
        chain.ctx.submit(encoding::encode(&signed)).await.unwrap();
    }
    chain.seal().await;

    let last = seen.last().unwrap().0.clone();
    let mut stream = EventStream::open(&chain, "/v1/events", Some(&last)).await;
    let head = chain.ctx.storage.head().unwrap().unwrap();
    let expected_now = stored_events(&chain, head);
    while seen.len() < expected_now.len() {
        let (id, data) = stream.next().await.unwrap();
        seen.push((id, data["kind"].as_str().unwrap().to_string()));
    }
    // Live tail: a block committed while the stream is open arrives on it.
    chain
        .commit(
            me,
            &[&k],
            TxKind::Transfer {
                id: TransferId(200),
                to: AccountId(101),
                amount: 1,
            },
        )
        .await;
    let expected = stored_events(&chain, head + 1);
    while seen.len() < expected.len() {
        let (id, data) = stream.next().await.unwrap();
        seen.push((id, data["kind"].as_str().unwrap().to_string()));
    }
    assert_eq!(seen, expected, "every event exactly once, in order");
    assert!(stream.next().await.is_none(), "nothing more than stored");
}

#[tokio::test]
async fn event_filters_and_stream_limits() {
    let limits = Limits {
        streams_max: 2,
        ..Limits::default()
    };
    let chain = TestChain::start_with(limits, 1_000).await;
    let k = chain.funded_wallet(100, BANK_A, 100_000).await;
    chain.funded_wallet(101, BANK_B, 0).await;
    chain
        .commit(
            Party::Account(AccountId(100)),
            &[&k],
            TxKind::Transfer {
                id: TransferId(1),
                to: AccountId(101),
                amount: 10,
            },
        )
        .await;

    // Account 101: its registration, card, and the transfer it received.
    let mut mine = EventStream::open(&chain, "/v1/events?from_height=1&account=101", None).await;
    let mut kinds = Vec::new();
    while let Some((_, data)) = mine.next().await {
        kinds.push(data["kind"].as_str().unwrap().to_string());
    }
    assert_eq!(
        kinds,
        ["AccountRegistered", "CardBound", "TransferReceived"]
    );
    drop(mine);

    let mut by_kind = EventStream::open(
        &chain,
        "/v1/events?from_height=1&kind=ToppedUp,TransferReceived&institution=1",
        None,
    )
    .await;
    let (id, data) = by_kind.next().await.unwrap();
    assert_eq!(data["kind"], "ToppedUp");
    assert_eq!(data["event"]["ToppedUp"]["account"], 100);
    assert!(
        by_kind.next().await.is_none(),
        "the transfer names no institution: {id}"
    );
    drop(by_kind);

    // `from_index` starts inside a block.
    let head = chain.ctx.storage.head().unwrap().unwrap();
    let mut late = EventStream::open(
        &chain,
        &format!("/v1/events?from_height={head}&from_index=0"),
        None,
    )
    .await;
    assert_eq!(late.next().await.unwrap().0, format!("{head}:0"));

    // Two streams are open (this one, and `late`): a third is refused.
    let one = EventStream::open(&chain, "/v1/events", None).await;
    get(&chain, "/v1/events")
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_STREAMS");
    drop(one);
    drop(late);

    for (query, code) in [
        ("kind=Nonsense", "BAD_KIND"),
        ("account=bob", "BAD_ID"),
        ("from_height=x", "BAD_QUERY"),
    ] {
        // A refused stream holds no slot, so the limit does not hide these answers.
        tokio::time::sleep(Duration::from_millis(50)).await;
        get(&chain, &format!("/v1/events?{query}"))
            .await
            .error(StatusCode::BAD_REQUEST, code);
    }
    call(
        &chain,
        "GET",
        "/v1/events",
        &[("last-event-id", "nine")],
        Vec::new(),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "BAD_CURSOR");
}

/// The routes in `api/mod.rs` and the paths of `openapi.yaml` are the same set, and each
/// documented path is served by the router.
#[tokio::test]
async fn openapi_describes_every_route() {
    let source = include_str!("../src/api/mod.rs");
    let spec = include_str!("../openapi.yaml");
    let mut routes = BTreeSet::new();
    let mut in_v1 = false;
    for line in source.lines() {
        let line = line.trim();
        if line.starts_with("let v1 = Router::new()") {
            in_v1 = true;
        }
        if line.starts_with("Router::new()") && !line.starts_with("let") {
            in_v1 = false;
        }
        let text = line.strip_prefix(".route(\"").or_else(|| {
            line.strip_prefix("\"/")
                .filter(|_| line.ends_with("\","))
                .map(|_| &line[1..])
        });
        if let Some(rest) = text {
            let path = rest.split('"').next().unwrap();
            routes.insert(if in_v1 {
                format!("/v1{path}")
            } else {
                path.to_string()
            });
        }
    }
    let documented: BTreeSet<String> = spec
        .lines()
        .filter(|l| l.starts_with("  /") && l.trim_end().ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':').to_string())
        .collect();
    assert!(routes.len() >= 18, "routes found: {routes:?}");
    assert_eq!(routes, documented);

    let chain = TestChain::start().await;
    let samples = BTreeMap::from([
        ("{hash}", Hash::ZERO.to_hex()),
        ("{id}", "1".to_string()),
        ("{height}", "1".to_string()),
        ("{payer_key}", key(1).public_key().to_hex()),
        ("{code_nonce}", "1".to_string()),
    ]);
    for path in &documented {
        if path == "/v1/events" {
            continue; // a stream: served, and never ends
        }
        let mut concrete = path.clone();
        for (param, value) in &samples {
            concrete = concrete.replace(param, value);
        }
        let method = if path == "/v1/transactions" {
            "POST"
        } else {
            "GET"
        };
        let answer = call(&chain, method, &concrete, &[], Vec::new()).await;
        if answer.status == StatusCode::NOT_FOUND {
            assert_ne!(answer.json()["message"], "no such route", "{path}");
        }
    }
}
