//! Test equipment for the API tests: a real `tally_node::node::Node` (libp2p on 127.0.0.1,
//! sled in a temp dir, consensus, mempool) serving the real HTTP API over TLS on a loopback
//! port, as `tally node run` does (`api::serve`, a certificate from a test CA), optionally
//! followed by a second node in audit mode serving its own API; and helpers over the
//! project's client (`tally_sdk::Api`) with a server-sent-event reader.
//!
//! A [`Target`] is one node's API as one party: `net.api` is the validator's API signed as
//! the regulator (who may read everything, so tests about other things see it all); a test
//! about who reads what asks with [`Target::anonymous`] or [`Target::as_party`].
//!
//! Blocks are made by consensus: tests wait for commits (`?wait_ms=`, status polling,
//! the committed height), each wait bounded by [`WAIT`].
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use serde_json::Value;
use tally_consensus::{TimeoutConfig, Validator};
use tally_contracts::*;
use tally_crypto::{Hash, KeyFile, PublicKey, SigningKey};
use tally_node::api;
use tally_node::block::BlockResults;
use tally_node::config::Config;
use tally_node::genesis::GenesisFile;
use tally_node::network::PeerAddress;
use tally_node::node::{Node, NodeOptions, wait_for_height};
use tally_sdk::KeyId;
use tally_sdk::{Api, ClientTls, Credential};
use tokio::sync::oneshot;

pub const CHAIN: &str = "tally-api-test";
pub const BANK_A: InstitutionId = InstitutionId(1);
pub const BANK_B: InstitutionId = InstitutionId(2);
pub const PLATFORM: InstitutionId = InstitutionId(3);
pub const FX: InstitutionId = InstitutionId(4);
pub const REGULATOR: InstitutionId = InstitutionId(5);
/// Every wait for the chain is bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);
/// The `wait_ms` a test asks for when it submits and wants the outcome.
pub const WAIT_MS: u64 = 10_000;

pub fn key(seed: u64) -> SigningKey {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[31] = 0x5a;
    SigningKey::from_seed(bytes)
}

pub fn institution_key(id: InstitutionId) -> SigningKey {
    key(1_000 + u64::from(id.0))
}

/// The key of validator `i` of the genesis; [`AUDIT_KEY`]'s index is never a validator.
pub fn validator_key(i: u64) -> SigningKey {
    key(9_000 + i)
}

/// The audit node's network identity.
pub const AUDIT_KEY: u64 = 99;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Two banks (also KYC and acquirers), the platform and an FX provider; CNY and USD;
/// `validators` validators of power 1. Genesis time is a little in the past, so the
/// first block's wall-clock time follows it.
pub fn genesis(validators: u64) -> GenesisFile {
    let inst = |id, roles: &[Roles]| GenesisInstitution {
        id,
        key: institution_key(id).public_key(),
        roles: roles.iter().fold(Roles::default(), |a, b| a.with(*b)),
        name: match id {
            BANK_A => "Bank A".to_string(),
            BANK_B => "Bank B".to_string(),
            PLATFORM => "Platform".to_string(),
            FX => "FX Provider".to_string(),
            _ => "Regulator".to_string(),
        },
    };
    let currencies = [Currency::CNY, Currency::USD];
    let ledger = Genesis {
        chain_id: CHAIN.into(),
        time_ms: now_ms() - 60_000,
        currencies: currencies.to_vec(),
        institutions: vec![
            inst(BANK_A, &[Roles::BANK, Roles::KYC, Roles::ACQUIRER]),
            inst(BANK_B, &[Roles::BANK, Roles::KYC, Roles::ACQUIRER]),
            inst(PLATFORM, &[Roles::PLATFORM, Roles::KYC]),
            inst(FX, &[Roles::FX_PROVIDER]),
            inst(REGULATOR, &[Roles::REGULATOR]),
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
            yearly_max: NO_CAP,
            cross_border_yearly_max: NO_CAP,
        }],
        merchant_fee_bps_max: 300,
        corridors: vec![Corridor {
            from: Currency::CNY,
            to: Currency::USD,
            single_max: 500_000,
        }],
        sanctions: vec![],
    };
    GenesisFile {
        chain_id: CHAIN.into(),
        validators: (0..validators)
            .map(|i| Validator {
                public_key: validator_key(i).public_key(),
                power: 1,
            })
            .collect(),
        ledger,
        // Heights come about as fast as before the chain was quiet when idle (a block
        // every 100 ms or so): suites that wait for heights on an idle cluster keep their
        // pace. The idle behaviour itself is tested in `cluster.rs` with a longer one.
        heartbeat_ms: TEST_HEARTBEAT_MS,
    }
}

/// The test genesis's heartbeat (see [`GenesisFile::heartbeat_ms`]).
pub const TEST_HEARTBEAT_MS: u64 = 100;

/// What to start.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Validators in the genesis; only validator 0 runs. With more than one, no block can
    /// ever be committed: a node that admits transactions and keeps them pending.
    pub genesis_validators: u64,
    /// Whether an audit node follows validator 0 and serves its own API.
    pub audit: bool,
    /// The validator's `[limits]` that are not the default, as (field, value).
    pub limits: Vec<(&'static str, u64)>,
    /// The validator's API limits (streams, waiters).
    pub api_limits: api::Limits,
    /// The validator's `[pruning] keep_blocks`; `None` keeps every block.
    pub keep_blocks: Option<u64>,
    /// The body of the validator's `[webhooks]` section; `None`: no section.
    pub webhooks: Option<String>,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            genesis_validators: 1,
            audit: false,
            limits: Vec::new(),
            api_limits: api::Limits::default(),
            keep_blocks: None,
            webhooks: None,
        }
    }
}

/// One node's API, as one party (or none).
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub api: Api,
}

impl Target {
    pub fn anonymous(&self) -> Target {
        Target {
            addr: self.addr,
            api: self.api.anonymous(),
        }
    }

    /// Signed as `party` with `key`.
    pub fn as_party(&self, party: Party, key: &SigningKey) -> Target {
        Target {
            addr: self.addr,
            api: self.api.signed_as(Credential::of_party(party, key.clone())),
        }
    }

    /// Signed as institution `id` with its genesis key.
    pub fn as_institution(&self, id: InstitutionId) -> Target {
        self.as_party(Party::Institution(id), &institution_key(id))
    }

    /// Signed as `keyid` with `key`, whatever the ledger says of it.
    pub fn as_keyid(&self, keyid: KeyId, key: &SigningKey) -> Target {
        Target {
            addr: self.addr,
            api: self.api.signed_as(Credential::new(keyid, key.clone())),
        }
    }
}

/// The API's TLS: a CA, the node's certificate for 127.0.0.1 (files in the test's
/// directory), and the client trust in that CA.
pub struct TestTls {
    pub server: rustls::ServerConfig,
    pub client: ClientTls,
}

pub fn test_tls(dir: &std::path::Path) -> TestTls {
    let ca = api::tls::new_ca("Tally test CA").unwrap();
    let cert = api::tls::new_server_certificate(&ca, &["127.0.0.1".to_string()]).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ca_file = write("api-ca.pem", &ca.cert_pem);
    let cert_file = write("api-cert.pem", &cert.cert_pem);
    let key_file = write("api-key.pem", &cert.key_pem);
    TestTls {
        server: api::tls::server_config(&cert_file, &key_file).unwrap(),
        client: ClientTls::from_ca_file(&ca_file).unwrap(),
    }
}

/// A running validator (and maybe an audit node), each serving the HTTP API on 127.0.0.1.
pub struct TestNet {
    pub validator: Node,
    /// The validator's API, signed as the regulator.
    pub api: Target,
    pub audit: Option<Node>,
    /// The audit node's API, signed as the regulator.
    pub audit_api: Option<Target>,
    api_stops: Vec<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

fn node_options() -> NodeOptions {
    NodeOptions {
        timeouts: TimeoutConfig {
            propose_ms: 500,
            prevote_ms: 250,
            precommit_ms: 250,
            round_increase_ms: 250,
            timeout_ms_max: 5_000,
        },
        sync: true,
    }
}

/// A node's `[limits]` that are not the default and its `[pruning] keep_blocks`.
#[derive(Default)]
struct Sections {
    limits: Vec<(&'static str, u64)>,
    keep_blocks: Option<u64>,
    webhooks: Option<String>,
}

/// Writes this node's key file and configuration into `dir` and loads it with
/// `Config::load`, the way `tally node run` starts (the genesis file is already there).
fn config(
    dir: &std::path::Path,
    name: &str,
    mode: &str,
    key: &SigningKey,
    peers: &[PeerAddress],
    observers: &[PublicKey],
    sections: &Sections,
) -> Config {
    let key_file = dir.join(format!("{name}.key"));
    KeyFile::write_new(key, &key_file).unwrap();
    let mut text = format!(
        "mode = \"{mode}\"\n\
         listen_address = \"/ip4/127.0.0.1/tcp/0\"\n\
         data_dir = \"{name}\"\n\
         key_file = \"{name}.key\"\n\
         api_address = \"127.0.0.1:0\"\n\
         genesis_file = \"genesis.json\"\n"
    );
    let api = "[api]\nplain_http = true\n";
    let observers: Vec<String> = observers.iter().map(|k| format!("\"{k}\"")).collect();
    text.push_str(&format!("observers = [{}]\n", observers.join(", ")));
    for peer in peers {
        text.push_str(&format!(
            "[[peers]]\naddress = \"{}\"\npublic_key = \"{}\"\n",
            peer.address, peer.public_key
        ));
    }
    if !sections.limits.is_empty() {
        text.push_str("[limits]\n");
        for (field, value) in &sections.limits {
            text.push_str(&format!("{field} = {value}\n"));
        }
    }
    text.push_str(api);
    if let Some(keep) = sections.keep_blocks {
        text.push_str(&format!("[pruning]\nkeep_blocks = {keep}\n"));
    }
    if let Some(webhooks) = &sections.webhooks {
        text.push_str(&format!("[webhooks]\n{webhooks}\n"));
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap()
}

/// Serves the real API for `node` on a fresh loopback port over TLS, as `tally node run`
/// does (`api::serve`); answers the node's API signed as the regulator.
async fn serve_api(
    node: &Node,
    limits: api::Limits,
    tls: &TestTls,
    stops: &mut Vec<oneshot::Sender<()>>,
) -> Target {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    stops.push(stop);
    let shutdown = async move {
        let _ = stopped.await;
    };
    tokio::spawn(api::serve(
        listener,
        node.context.clone(),
        Some(tls.server.clone()),
        api::Options {
            limits,
            ..api::Options::default()
        },
        shutdown,
    ));
    Target {
        addr,
        api: Api::https(addr, &tls.client),
    }
    .as_institution(REGULATOR)
}

impl TestNet {
    /// One validator that commits, serving the API with default limits.
    pub async fn start() -> TestNet {
        TestNet::start_with(Setup::default()).await
    }

    /// One validator that commits, followed by an audit node; both serve the API.
    pub async fn with_audit() -> TestNet {
        TestNet::start_with(Setup {
            audit: true,
            ..Setup::default()
        })
        .await
    }

    pub async fn start_with(setup: Setup) -> TestNet {
        let dir = tempfile::tempdir().unwrap();
        let genesis = genesis(setup.genesis_validators);
        let audit_key = key(AUDIT_KEY);
        let genesis_path = dir.path().join("genesis.json");
        std::fs::write(&genesis_path, genesis.to_json()).unwrap();
        let genesis = GenesisFile::load(&genesis_path).unwrap();
        let observers = if setup.audit {
            vec![audit_key.public_key()]
        } else {
            Vec::new()
        };
        let validator_config = config(
            dir.path(),
            "validator",
            "validator",
            &validator_key(0),
            &[],
            &observers,
            &Sections {
                limits: setup.limits.clone(),
                keep_blocks: setup.keep_blocks,
                webhooks: setup.webhooks.clone(),
            },
        );
        let validator = Node::start(
            &validator_config,
            validator_key(0),
            &genesis,
            node_options(),
        )
        .await
        .unwrap();
        let mut stops = Vec::new();
        let tls = test_tls(dir.path());
        let api = serve_api(&validator, setup.api_limits, &tls, &mut stops).await;
        let (audit, audit_api) = if setup.audit {
            let peer = PeerAddress {
                public_key: validator.public_key,
                address: validator.listen_addresses.first().cloned().unwrap(),
            };
            let audit_config = config(
                dir.path(),
                "audit",
                "audit",
                &audit_key,
                &[peer],
                &[],
                &Sections::default(),
            );
            let audit = Node::start(&audit_config, audit_key, &genesis, node_options())
                .await
                .unwrap();
            let audit_api = serve_api(&audit, api::Limits::default(), &tls, &mut stops).await;
            (Some(audit), Some(audit_api))
        } else {
            (None, None)
        };
        TestNet {
            validator,
            api,
            audit,
            audit_api,
            api_stops: stops,
            _dir: dir,
        }
    }

    /// Stops the API servers, then the nodes (audit node first).
    pub async fn shutdown(self) {
        for stop in self.api_stops {
            let _ = stop.send(());
        }
        if let Some(audit) = self.audit {
            audit.shutdown().await.unwrap();
        }
        self.validator.shutdown().await.unwrap();
    }

    /// Stops the nodes but keeps their API servers running (until the answer is dropped):
    /// what a client sees of a node going down under it.
    pub async fn stop_nodes_keep_api(self) -> (Target, Vec<oneshot::Sender<()>>) {
        if let Some(audit) = self.audit {
            audit.shutdown().await.unwrap();
        }
        self.validator.shutdown().await.unwrap();
        (self.api, self.api_stops)
    }

    /// The CA certificate (PEM) the nodes' API certificates are signed by.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self._dir.path().join("api-ca.pem")
    }

    pub fn storage(&self) -> &tally_node::storage::Storage {
        &self.validator.context.storage
    }

    pub fn head(&self) -> u64 {
        self.storage().head().unwrap().unwrap_or(0)
    }

    pub fn results(&self, height: u64) -> BlockResults {
        BlockResults::decode(&self.storage().results(height).unwrap().unwrap()).unwrap()
    }

    /// Waits until the validator has committed `height`.
    pub async fn wait_height(&self, height: u64) {
        let mut committed = self.validator.context.committed.clone();
        assert!(
            wait_for_height(&mut committed, height, WAIT).await,
            "height {height} not committed in {WAIT:?}"
        );
    }

    /// Waits until the audit node has verified and stored everything the validator has
    /// committed so far; answers that height.
    pub async fn audit_caught_up(&self) -> u64 {
        let audit = self.audit.as_ref().expect("no audit node");
        // The stored head, not the `committed` watch: the chain task bumps the watch a
        // moment after the block is in storage, where the API already reads it.
        let height = self.head().max(*self.validator.context.committed.borrow());
        let mut committed = audit.context.committed.clone();
        assert!(
            wait_for_height(&mut committed, height, WAIT).await,
            "the audit node did not reach height {height} in {WAIT:?} (at {})",
            *committed.borrow()
        );
        height
    }

    /// The sender's next nonce in the validator's committed state.
    pub fn nonce(&self, party: Party) -> u64 {
        match party {
            Party::Account(id) => query::account(self.storage(), id)
                .unwrap()
                .map_or(0, |a| a.holder.nonce),
            Party::Institution(id) => query::institution(self.storage(), id)
                .unwrap()
                .map_or(0, |i| i.nonce),
        }
    }

    /// Signs with the sender's next committed nonce.
    pub fn sign(&self, sender: Party, keys: &[&SigningKey], kind: TxKind) -> SignedTransaction {
        sign_at(sender, self.nonce(sender), keys, kind)
    }

    /// Submits over HTTP and waits for the commit; asserts the ledger accepted it.
    /// Answers the committed view (`height`, `index`, `events`).
    pub async fn commit(&self, sender: Party, keys: &[&SigningKey], kind: TxKind) -> Value {
        let signed = self.sign(sender, keys, kind);
        self.commit_signed(&signed).await
    }

    pub async fn commit_signed(&self, signed: &SignedTransaction) -> Value {
        let answer = post_bytes(
            &self.api,
            &format!("/v1/transactions?wait_ms={WAIT_MS}"),
            encoding::encode(signed),
        )
        .await;
        let body = answer.json();
        assert_eq!(answer.status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "committed", "{body}");
        assert_eq!(body["code"], "OK", "{body}");
        assert_eq!(body["hash"], signed.hash().to_hex(), "{body}");
        body
    }

    /// Submits several transactions at once (no waiting), then waits for each to be
    /// committed and accepted; answers their committed views in order.
    pub async fn commit_all(&self, txs: &[SignedTransaction]) -> Vec<Value> {
        for signed in txs {
            let answer = post_bytes(&self.api, "/v1/transactions", encoding::encode(signed)).await;
            assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
        }
        let mut views = Vec::new();
        for signed in txs {
            let view = self.until_committed(signed.hash()).await;
            assert_eq!(view["code"], "OK", "{view}");
            views.push(view);
        }
        views
    }

    /// Polls `GET /v1/transactions/{hash}` until it answers committed.
    pub async fn until_committed(&self, hash: Hash) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        let path = format!("/v1/transactions/{}", hash.to_hex());
        loop {
            let answer = get(&self.api, &path).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
            let body = answer.json();
            if body["status"] == "committed" {
                return body;
            }
            assert_eq!(body["status"], "pending", "{body}");
            assert!(
                tokio::time::Instant::now() < deadline,
                "{hash} not committed in {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A consumer wallet `id` at `bank` with a bound card (token `[id; 32]`) and `amount`
    /// topped up, submitted together and all committed.
    pub async fn funded_wallet(&self, id: u128, bank: InstitutionId, amount: Amount) -> SigningKey {
        let k = key(id as u64);
        let bank_key = institution_key(bank);
        let me = Party::Account(AccountId(id));
        let card = CardToken([id as u8; 32]);
        let mut txs = vec![
            sign_at(
                me,
                0,
                &[&k, &bank_key],
                TxKind::RegisterAccount {
                    account: AccountId(id),
                    key: k.public_key(),
                    currency: Currency::CNY,
                    institution: bank,
                    tier: 0,
                    identity: Hash::digest("identity", &id.to_le_bytes()),
                },
            ),
            sign_at(me, 1, &[&k, &bank_key], TxKind::BindCard { card, bank }),
        ];
        if amount > 0 {
            txs.push(sign_at(
                me,
                2,
                &[&k, &bank_key],
                TxKind::TopUp {
                    id: TransferId(id << 32),
                    card,
                    amount,
                },
            ));
        }
        self.commit_all(&txs).await;
        k
    }
}

pub fn sign_at(sender: Party, nonce: u64, keys: &[&SigningKey], kind: TxKind) -> SignedTransaction {
    Transaction {
        chain_id: CHAIN.into(),
        sender,
        nonce,
        kind,
    }
    .sign(keys)
}

/// Every event of blocks `1..=head` in `storage`, in stream order: `(id, kind, tx)`.
pub fn stored_events(
    storage: &tally_node::storage::Storage,
    head: u64,
) -> Vec<(String, String, Option<Hash>)> {
    let mut out = Vec::new();
    for height in 1..=head {
        let results = BlockResults::decode(&storage.results(height).unwrap().unwrap()).unwrap();
        let expired = results.expired.iter().map(|e| (None, e));
        let caused = results
            .receipts
            .iter()
            .flat_map(|r| r.events.iter().map(move |e| (Some(r.tx), e)));
        for (index, (tx, event)) in expired.chain(caused).enumerate() {
            let json = serde_json::to_value(event).unwrap();
            let kind = json.as_object().unwrap().keys().next().unwrap().clone();
            out.push((format!("{height}:{index}"), kind, tx));
        }
    }
    out
}

// ---------------------------------------------------------------- requests

pub struct Answer {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts an error answer: its status, its stable code and a message.
    pub fn error(&self, status: StatusCode, code: &str) -> Value {
        let body = self.json();
        assert_eq!(self.status, status, "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert!(body["message"].is_string(), "{body}");
        body
    }
}

/// Sends a request; answers as soon as its head arrives (the body is still to read).
pub async fn send(
    target: &Target,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> hyper::Response<Incoming> {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    target
        .api
        .open(method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub async fn call(
    target: &Target,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let response = tokio::time::timeout(WAIT, send(target, method, path, headers, body))
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer in {WAIT:?}"));
    let status = response.status();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(WAIT, response.into_body().collect())
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no whole answer in {WAIT:?}"))
        .unwrap()
        .to_bytes();
    Answer {
        status,
        headers,
        body: body.to_vec(),
    }
}

pub async fn get(target: &Target, path: &str) -> Answer {
    call(target, "GET", path, &[], Vec::new()).await
}

pub async fn post_bytes(target: &Target, path: &str, bytes: Vec<u8>) -> Answer {
    call(
        target,
        "POST",
        path,
        &[("content-type", "application/octet-stream")],
        bytes,
    )
    .await
}

pub async fn post_json(target: &Target, path: &str, body: Vec<u8>) -> Answer {
    call(
        target,
        "POST",
        path,
        &[("content-type", "application/json")],
        body,
    )
    .await
}

/// A raw TLS connection to `target`'s node, trusting the test CA: for requests the client
/// would never send (a body in chunks without end).
pub async fn tls_stream(target: &Target) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let config = target.api.tls().expect("the API speaks TLS").config();
    let tcp = tokio::net::TcpStream::connect(target.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(target.addr.ip().into());
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap()
}

/// A server-sent event stream, read frame by frame.
pub struct EventStream {
    body: Incoming,
    buffer: String,
}

impl EventStream {
    pub async fn open(target: &Target, path: &str, last_event_id: Option<&str>) -> EventStream {
        let headers: Vec<(&str, &str)> = last_event_id
            .map(|id| vec![("last-event-id", id)])
            .unwrap_or_default();
        let response = send(target, "GET", path, &headers, Vec::new()).await;
        assert_eq!(response.status(), StatusCode::OK);
        EventStream {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next event's id and data, or `None` if none comes within `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + within;
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
                    } else if line.starts_with("event:") {
                        panic!("the stream sent an error: {frame}");
                    }
                }
                match (id, data) {
                    (Some(id), Some(data)) => return Some((id, data)),
                    _ => continue, // a keep-alive comment
                }
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// The next event, which must come within [`WAIT`].
    pub async fn next(&mut self) -> (String, Value) {
        self.next_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("no event within {WAIT:?}"))
    }

    /// Asserts that no event comes for a while (blocks keep committing meanwhile).
    pub async fn assert_quiet(&mut self) {
        if let Some((id, data)) = self.next_within(Duration::from_millis(1_500)).await {
            panic!("unexpected event {id}: {data}");
        }
    }
}
