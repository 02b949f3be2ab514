//! The node's configuration: a TOML file, checked as a whole at start so that each mistake
//! is reported with the field it is in, before anything is opened or bound.
//!
//! Relative paths in the file are relative to the file's own directory, so a node directory
//! can be moved as a whole.
//!
//! ```toml
//! mode = "validator"                       # or "audit"
//! listen_address = "0.0.0.0:26656"         # or "/ip4/0.0.0.0/tcp/26656"
//! api_address = "127.0.0.1:8080"
//! data_dir = "data"
//! key_file = "node.key"
//! genesis_file = "genesis.json"
//! observers = ["<hex public key of an audit node>"]
//!
//! [[peers]]
//! address = "10.0.0.2:26656"
//! public_key = "<hex public key>"
//!
//! [limits]                                 # every field optional; defaults shown in `Limits`
//! message_bytes_max = 4194304
//! storage_cache_bytes = 67108864           # the storage's page cache (redb)
//! key_cache_entries = 100000               # parsed public keys kept for verification
//! evidence_pending_max = 64                # evidence waiting for a block
//! evidence_remembered_max = 1024           # committed evidence remembered against repeats
//! verified_blocks_max = 8                  # proposed blocks kept verified at one height
//! chain_inputs_max = 4096                  # the chain task's input queue
//! outbound_max = 4096                      # the chain task's queue to the network
//!
//! [pruning]                                # optional: without it every block is kept
//! keep_blocks = 100000                     # older blocks keep their header and certificate
//!
//! [snapshots]                              # optional: without it no snapshot is taken
//! interval_blocks = 1000                   # a state snapshot after every 1000th block
//! keep = 2                                 # the newest snapshots kept (and offered)
//! chunk_leaves = 2048                      # ledger entries per chunk, at most
//!
//! [state_sync]                             # optional: an empty node then replays from height 1
//! enable = true                            # an empty data directory starts from a snapshot
//! discovery_ms = 5000                      # how long to wait for peers' offers
//! fetchers = 4                             # chunks asked for at once
//!
//! [api]                                    # required: TLS files, or plain_http = true
//! tls_cert_file = "api-cert.pem"           # the certificate chain the API serves (PEM)
//! tls_key_file = "api-key.pem"             # its private key (PEM)
//! # plain_http = true                      # serve without TLS (logged as a warning)
//! metrics_public = false                   # /metrics without credentials
//! # every limit optional; defaults in `tally_node::api::Limits`
//! streams_per_client_max = 16
//! requests_per_second_per_client = 10000
//! ```
//!
//! Test builds only (tally-node's `test-faults` feature, which the test suites turn on;
//! release and default builds refuse the section with "test fault modes are not compiled
//! into this build"): a `[test_faults]` section makes the node faulty on purpose, for fault
//! tests. Every key is optional; see [`TestFaults`].
//!
//! ```toml
//! [test_faults]
//! # "equivocating-proposer" | "double-voter" | "silent" | "invalid-blocks"
//! byzantine = "invalid-blocks"
//! # with "invalid-blocks" only, and then required: "bad-signature" | "wrong-state-root"
//! invalid_block = "bad-signature"
//! # polled every 200 ms; one hex public key (or libp2p peer id) a line, '#' comments
//! blocked_peers_file = "blocked-peers.txt"
//! # serve every snapshot chunk with one byte flipped (a lying peer, for state sync tests)
//! corrupt_snapshot_chunks = true
//! ```

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tally_crypto::{KeyFile, KeyFileError, PublicKey};

use crate::network::{GossipTopic, NetworkConfig, PeerAddress, PeerSet};

/// The largest message the framing can carry is 4 GiB; far below that, a peer could make the
/// node allocate too much for one message.
pub const MESSAGE_BYTES_LIMIT: u64 = 64 * 1024 * 1024;

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{field}: {value:?} is not a valid address: {reason}")]
    Address {
        field: String,
        value: String,
        reason: String,
    },
    #[error("{field}: {value:?} is not a valid public key: {reason}")]
    PublicKey {
        field: String,
        value: String,
        reason: String,
    },
    #[error("peer {public_key} is listed more than once")]
    DuplicatePeer { public_key: PublicKey },
    #[error("address {address} is listed for more than one peer")]
    DuplicateAddress { address: Multiaddr },
    #[error("observer {public_key} is listed more than once")]
    DuplicateObserver { public_key: PublicKey },
    #[error("{field} is this node's own key")]
    OwnKey { field: String },
    #[error("limits.{name} must be above zero")]
    ZeroLimit { name: &'static str },
    #[error("limits.{name} is {value}, above the maximum of {max}")]
    LimitTooLarge {
        name: &'static str,
        value: u64,
        max: u64,
    },
    #[error(
        "limits.block_bytes_max ({block}) must be below limits.message_bytes_max ({message}): a block travels in one message"
    )]
    BlockAboveMessage { block: u64, message: u64 },
    #[error(
        "limits.mempool_bytes_max ({mempool}) must be at least limits.block_bytes_max ({block}): the mempool must hold a full block"
    )]
    MempoolBelowBlock { mempool: u64, block: u64 },
    #[error("key_file {path} does not exist (create it with `tally keys generate --out {path}`)")]
    KeyFileMissing { path: PathBuf },
    #[error("key_file: {0}")]
    KeyFile(#[from] KeyFileError),
    #[error("genesis_file {path} does not exist")]
    GenesisFileMissing { path: PathBuf },
    #[error("data_dir {path} exists and is not a directory")]
    DataDirNotDirectory { path: PathBuf },
    #[error(
        "[test_faults]: test fault modes are not compiled into this build (they are test \
         equipment: tally-node's `test-faults` feature, on in test builds only)"
    )]
    TestFaultsNotBuilt,
    #[error("[test_faults]: {0}")]
    TestFaults(String),
    #[error("[api]: {0}")]
    Api(String),
    #[error(
        "[pruning] keep_blocks is {0}; keep at least {KEEP_BLOCKS_MIN} (or leave [pruning] out \
         to keep every block)"
    )]
    KeepTooFew(u64),
    #[error("[snapshots]: {0}")]
    Snapshots(String),
    #[error("[state_sync]: {0}")]
    StateSync(String),
    #[error("[webhooks]: {0}")]
    Webhooks(String),
}

/// The fewest blocks a pruning node keeps whole: the head and the blocks a lagging peer or a
/// proof may still ask for.
pub const KEEP_BLOCKS_MIN: u64 = 2;

/// `[pruning]`: which blocks a node keeps whole. An audit node that should keep everything
/// (the regulator's) leaves the section out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pruning {
    /// The newest blocks kept whole; an older block keeps only its header (with its body's
    /// digest) and its certificate, its transactions and results are removed, and the API
    /// answers `410 PRUNED` for what they held. `None`: keep everything.
    pub keep_blocks: Option<u64>,
}

/// `[snapshots]`: state snapshots this node takes and offers to peers that join by state sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshots {
    /// A snapshot of the state after every block whose height is a multiple of this.
    pub interval_blocks: u64,
    /// The newest snapshots kept on disk and offered; older ones are removed.
    #[serde(default = "snapshots_keep_default")]
    pub keep: u64,
    /// The most ledger entries (tree leaves) one chunk holds: larger chunks mean fewer
    /// requests, smaller ones less work redone when a peer serves a bad one.
    #[serde(default = "snapshots_chunk_leaves_default")]
    pub chunk_leaves: u64,
}

fn snapshots_keep_default() -> u64 {
    2
}

fn snapshots_chunk_leaves_default() -> u64 {
    tally_contracts::snapshot::LEAVES_PER_CHUNK as u64
}

/// The bounds of `[snapshots] chunk_leaves`: a chunk of the most leaves stays well under a
/// peer message (`[limits] message_bytes_max`' default) for ledger entries of usual size.
pub const CHUNK_LEAVES_MIN: u64 = 16;
pub const CHUNK_LEAVES_MAX: u64 = 8_192;

/// `[state_sync]`: how a node with an empty data directory joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateSync {
    /// Start from the newest snapshot peers offer, checked against the genesis's validators;
    /// off, or when no peer offers one, the node replays every block from height 1.
    pub enable: bool,
    /// How long to gather peers' offers before choosing (milliseconds).
    pub discovery_ms: u64,
    /// How many chunks are asked for at once, spread over the peers offering them.
    pub fetchers: u64,
}

impl Default for StateSync {
    fn default() -> StateSync {
        StateSync {
            enable: false,
            discovery_ms: 5_000,
            fetchers: 4,
        }
    }
}

/// The most chunks asked for at once.
pub const STATE_SYNC_FETCHERS_MAX: u64 = 64;

/// What the node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Votes and proposes with its key.
    Validator,
    /// Read-only: verifies everything and never signs. Its key is only its network identity,
    /// which validators list among their observers.
    Audit,
}

/// The storage page cache unless configured: room for the hot state of a busy chain, small
/// enough for five nodes on one 4 GiB machine.
pub const STORAGE_CACHE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// Bounds on what the node holds and accepts. Every one must be above zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The largest peer message, in bytes, on every protocol.
    pub message_bytes_max: u64,
    pub mempool_txs_max: u64,
    pub mempool_bytes_max: u64,
    pub block_txs_max: u64,
    pub block_bytes_max: u64,
    /// How long a block-sync request waits for its answer.
    pub sync_request_timeout_ms: u64,
    /// How long a peer that sent a malformed message stays cut off.
    pub peer_block_ms: u64,
    /// Upper bound of the backoff between redials of a configured peer.
    pub redial_delay_ms_max: u64,
    /// Network events buffered for the node before new ones are dropped.
    pub network_events_max: u64,
    /// Bytes of the storage's page cache (redb's cache size; redb's own default is 1 GiB).
    /// Reported as `tally_storage_cache_bytes`.
    pub storage_cache_bytes: u64,
    /// Parsed public keys kept to verify signatures without parsing them again; a full cache
    /// is emptied and refilled. Reported as `tally_key_cache_entries`.
    pub key_cache_entries: u64,
    /// Verified evidence of equivocation kept until a block carries it; more is dropped
    /// (counted as `tally_limit_reached_total{limit="evidence_pending_max"}`), and a
    /// validator that keeps equivocating is caught again. Reported as `tally_evidence_pending`.
    pub evidence_pending_max: u64,
    /// Committed evidence remembered so that a copy gossiped late is not put on chain again;
    /// the oldest is forgotten first. Reported as `tally_evidence_remembered`.
    pub evidence_remembered_max: u64,
    /// Proposed blocks kept with their transactions verified at the current height (an
    /// equivocating proposer sends two a round); one evicted is verified again if decided.
    /// Reported as `tally_verified_blocks`.
    pub verified_blocks_max: u64,
    /// The chain task's input queue (consensus messages, gossip, timeouts); when it is full
    /// the network's event queue (`network_events_max`) fills and drops. Reported as
    /// `tally_chain_inputs_queued`.
    pub chain_inputs_max: u64,
    /// The chain task's queue of messages to the network; when full a message is dropped
    /// (consensus resends). Reported as `tally_outbound_queued`.
    pub outbound_max: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            message_bytes_max: 4 * 1024 * 1024,
            mempool_txs_max: 100_000,
            mempool_bytes_max: 64 * 1024 * 1024,
            block_txs_max: 10_000,
            block_bytes_max: 2 * 1024 * 1024,
            sync_request_timeout_ms: 10_000,
            peer_block_ms: 60_000,
            redial_delay_ms_max: 10_000,
            network_events_max: 4096,
            storage_cache_bytes: STORAGE_CACHE_BYTES_DEFAULT,
            key_cache_entries: 100_000,
            evidence_pending_max: 64,
            evidence_remembered_max: 1024,
            verified_blocks_max: 8,
            chain_inputs_max: 4096,
            outbound_max: 4096,
        }
    }
}

/// Test-only fault modes (`[test_faults]`), read only by builds with the `test-faults`
/// feature. The default is an honest node; without the feature it is the only value a
/// configuration file can give.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestFaults {
    /// How this validator misbehaves in consensus, if at all.
    pub byzantine: Option<Byzantine>,
    /// A file the network polls (every 200 ms): the peers listed there (hex public keys or
    /// libp2p peer ids, one a line, `#` starts a comment) are disconnected and refused both
    /// ways, and their messages dropped, until their line is removed. A missing file blocks
    /// nobody. Lets a test build and heal partitions without root.
    pub blocked_peers_file: Option<PathBuf>,
    /// Serves every snapshot chunk with a byte flipped: a peer lying to a node that joins by
    /// state sync.
    pub corrupt_snapshot_chunks: bool,
}

impl TestFaults {
    pub fn is_honest(&self) -> bool {
        self.byzantine.is_none()
            && self.blocked_peers_file.is_none()
            && !self.corrupt_snapshot_chunks
    }
}

/// A Byzantine validator's behaviour (see `crate::faults`).
#[cfg(feature = "test-faults")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Byzantine {
    /// `"equivocating-proposer"`: as proposer, signs and sends a second, different block for
    /// the same height and round, to every peer.
    EquivocatingProposer,
    /// `"double-voter"`: every prevote and precommit is followed by a conflicting one (nil
    /// for a block, a made-up block for nil), signed with the key past the signer's record.
    DoubleVoter,
    /// `"silent"`: sends no consensus message at all; still follows the chain by sync.
    Silent,
    /// `"invalid-blocks"`: as proposer, proposes only blocks of the given kind.
    InvalidBlocks(InvalidBlock),
}

/// A build without the `test-faults` feature has no Byzantine behaviour: nothing makes a
/// value of this type (its field is private and this module never does).
#[cfg(not(feature = "test-faults"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Byzantine(());

/// What is wrong with the blocks an `"invalid-blocks"` validator proposes.
#[cfg(feature = "test-faults")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvalidBlock {
    /// `"bad-signature"`: a transaction whose signature does not verify.
    BadSignature,
    /// `"wrong-state-root"`: a header whose state root is not the state after the parent.
    WrongStateRoot,
}

#[cfg(feature = "test-faults")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ByzantineName {
    EquivocatingProposer,
    DoubleVoter,
    Silent,
    InvalidBlocks,
}

#[cfg(feature = "test-faults")]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFaultsEntry {
    byzantine: Option<ByzantineName>,
    invalid_block: Option<InvalidBlock>,
    blocked_peers_file: Option<PathBuf>,
    #[serde(default)]
    corrupt_snapshot_chunks: bool,
}

/// What a `[test_faults]` section is read as: its fields in a test build; in a product
/// build, anything (it is refused whatever it holds).
#[cfg(feature = "test-faults")]
type TestFaultsSection = TestFaultsEntry;
#[cfg(not(feature = "test-faults"))]
type TestFaultsSection = toml::Table;

/// Without the `test-faults` feature: any `[test_faults]` section, even an empty one, is
/// refused (a product binary is never started from a test's configuration).
#[cfg(not(feature = "test-faults"))]
fn check_test_faults(
    entry: Option<TestFaultsSection>,
    _base: &Path,
) -> Result<TestFaults, ConfigError> {
    match entry {
        None => Ok(TestFaults::default()),
        Some(_) => Err(ConfigError::TestFaultsNotBuilt),
    }
}

#[cfg(feature = "test-faults")]
fn check_test_faults(
    entry: Option<TestFaultsSection>,
    base: &Path,
) -> Result<TestFaults, ConfigError> {
    let Some(entry) = entry else {
        return Ok(TestFaults::default());
    };
    let byzantine = match (entry.byzantine, entry.invalid_block) {
        (None, None) => None,
        (Some(ByzantineName::InvalidBlocks), Some(kind)) => Some(Byzantine::InvalidBlocks(kind)),
        (Some(ByzantineName::InvalidBlocks), None) => {
            return Err(ConfigError::TestFaults(
                "byzantine = \"invalid-blocks\" needs invalid_block = \"bad-signature\" or \"wrong-state-root\"".to_string(),
            ));
        }
        (_, Some(_)) => {
            return Err(ConfigError::TestFaults(
                "invalid_block goes only with byzantine = \"invalid-blocks\"".to_string(),
            ));
        }
        (Some(ByzantineName::EquivocatingProposer), None) => Some(Byzantine::EquivocatingProposer),
        (Some(ByzantineName::DoubleVoter), None) => Some(Byzantine::DoubleVoter),
        (Some(ByzantineName::Silent), None) => Some(Byzantine::Silent),
    };
    Ok(TestFaults {
        byzantine,
        blocked_peers_file: entry.blocked_peers_file.map(|p| base.join(p)),
        corrupt_snapshot_chunks: entry.corrupt_snapshot_chunks,
    })
}

/// A checked configuration. Paths are absolute or relative to the working directory.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub listen_address: Multiaddr,
    /// The validators this node dials and keeps connected. Until the genesis is read at
    /// start, they are also the validator set the network admits.
    pub peers: Vec<PeerAddress>,
    /// Keys admitted without being validators (audit nodes).
    pub observers: BTreeSet<PublicKey>,
    pub data_dir: PathBuf,
    pub key_file: PathBuf,
    /// This node's public key, read from `key_file`.
    pub public_key: PublicKey,
    pub api_address: SocketAddr,
    pub genesis_file: PathBuf,
    pub limits: Limits,
    /// Test-only fault modes; empty (honest) unless the file has `[test_faults]`.
    pub test_faults: TestFaults,
    /// How the HTTP API is served (`[api]`).
    pub api: ApiConfig,
    /// Which blocks are kept whole (`[pruning]`).
    pub pruning: Pruning,
    /// State snapshots taken and offered (`[snapshots]`); `None`: none.
    pub snapshots: Option<Snapshots>,
    /// How an empty node joins (`[state_sync]`).
    pub state_sync: StateSync,
    /// Webhook deliveries (`[webhooks]`); `None`: none, and registering one is refused.
    pub webhooks: Option<crate::webhooks::Settings>,
}

/// How the HTTP API is served: over TLS with the operator's certificate, or, when the
/// configuration says so explicitly, plain HTTP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiConfig {
    /// The certificate chain and private key (PEM) the API serves TLS with; `None` only
    /// with `plain_http`.
    pub tls: Option<ApiTls>,
    /// Whether `/metrics` answers without credentials.
    pub metrics_public: bool,
    /// What clients may hold and send, per client and in all.
    pub limits: crate::api::Limits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiEntry {
    #[serde(default)]
    plain_http: bool,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    #[serde(default)]
    metrics_public: bool,
    streams_max: Option<u64>,
    streams_per_client_max: Option<u64>,
    waiters_max: Option<u64>,
    waiters_per_client_max: Option<u64>,
    scans_max: Option<u64>,
    scans_per_client_max: Option<u64>,
    requests_per_second_per_client: Option<u64>,
    request_burst_per_client: Option<u64>,
}

/// The most any one `[api]` count may be: far above what a node can hold, far below
/// anything that overflows.
const API_LIMIT_MAX: u64 = 1 << 24;

fn check_api(entry: Option<ApiEntry>, base: &Path) -> Result<ApiConfig, ConfigError> {
    let refused = |m: &str| ConfigError::Api(m.to_string());
    let entry = entry.ok_or_else(|| {
        refused(
            "the section is missing: give tls_cert_file and tls_key_file, or plain_http = true \
             to serve the API without TLS",
        )
    })?;
    let tls = match (entry.plain_http, entry.tls_cert_file, entry.tls_key_file) {
        (true, None, None) => None,
        (true, _, _) => {
            return Err(refused(
                "plain_http = true goes without tls_cert_file and tls_key_file",
            ));
        }
        (false, Some(cert), Some(key)) => {
            let (cert_file, key_file) = (base.join(cert), base.join(key));
            for (field, path) in [("tls_cert_file", &cert_file), ("tls_key_file", &key_file)] {
                if !path.is_file() {
                    return Err(ConfigError::Api(format!(
                        "{field} {} does not exist",
                        path.display()
                    )));
                }
            }
            Some(ApiTls {
                cert_file,
                key_file,
            })
        }
        (false, _, _) => {
            return Err(refused(
                "give both tls_cert_file and tls_key_file, or plain_http = true",
            ));
        }
    };
    let positive = |name: &str, value: Option<u64>| -> Result<Option<u64>, ConfigError> {
        match value {
            Some(0) => Err(ConfigError::Api(format!("{name} must be above zero"))),
            Some(v) if v > API_LIMIT_MAX => Err(ConfigError::Api(format!(
                "{name} is {v}, above the maximum of {API_LIMIT_MAX}"
            ))),
            other => Ok(other),
        }
    };
    let count = |name: &str, value: Option<u64>, default: usize| -> Result<usize, ConfigError> {
        Ok(positive(name, value)?.map_or(default, |v| usize::try_from(v).unwrap_or(usize::MAX)))
    };
    let defaults = crate::api::Limits::default();
    let limits = crate::api::Limits {
        streams_max: count("streams_max", entry.streams_max, defaults.streams_max)?,
        streams_per_client_max: count(
            "streams_per_client_max",
            entry.streams_per_client_max,
            defaults.streams_per_client_max,
        )?,
        waiters_max: count("waiters_max", entry.waiters_max, defaults.waiters_max)?,
        waiters_per_client_max: count(
            "waiters_per_client_max",
            entry.waiters_per_client_max,
            defaults.waiters_per_client_max,
        )?,
        scans_max: count("scans_max", entry.scans_max, defaults.scans_max)?,
        scans_per_client_max: count(
            "scans_per_client_max",
            entry.scans_per_client_max,
            defaults.scans_per_client_max,
        )?,
        requests_per_second_per_client: positive(
            "requests_per_second_per_client",
            entry.requests_per_second_per_client,
        )?
        .unwrap_or(defaults.requests_per_second_per_client),
        request_burst_per_client: positive(
            "request_burst_per_client",
            entry.request_burst_per_client,
        )?
        .unwrap_or(defaults.request_burst_per_client),
        ..defaults
    };
    Ok(ApiConfig {
        tls,
        metrics_public: entry.metrics_public,
        limits,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    mode: Mode,
    listen_address: String,
    #[serde(default)]
    peers: Vec<PeerEntry>,
    #[serde(default)]
    observers: Vec<String>,
    data_dir: PathBuf,
    key_file: PathBuf,
    api_address: String,
    genesis_file: PathBuf,
    #[serde(default)]
    limits: Limits,
    test_faults: Option<TestFaultsSection>,
    api: Option<ApiEntry>,
    #[serde(default)]
    pruning: Pruning,
    snapshots: Option<Snapshots>,
    #[serde(default)]
    state_sync: StateSync,
    webhooks: Option<crate::webhooks::Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerEntry {
    address: String,
    public_key: String,
}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file: ConfigFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Config::check(file, base)
    }

    fn check(file: ConfigFile, base: &Path) -> Result<Config, ConfigError> {
        check_limits(&file.limits)?;
        if let Some(keep) = file.pruning.keep_blocks
            && keep < KEEP_BLOCKS_MIN
        {
            return Err(ConfigError::KeepTooFew(keep));
        }
        if let Some(snapshots) = file.snapshots {
            if snapshots.interval_blocks == 0 || snapshots.keep == 0 {
                return Err(ConfigError::Snapshots(
                    "interval_blocks and keep must be above zero (leave [snapshots] out to take \
                     none)"
                        .to_string(),
                ));
            }
            if !(CHUNK_LEAVES_MIN..=CHUNK_LEAVES_MAX).contains(&snapshots.chunk_leaves) {
                return Err(ConfigError::Snapshots(format!(
                    "chunk_leaves must be from {CHUNK_LEAVES_MIN} to {CHUNK_LEAVES_MAX}"
                )));
            }
        }
        let sync = file.state_sync;
        if sync.discovery_ms == 0 || sync.fetchers == 0 || sync.fetchers > STATE_SYNC_FETCHERS_MAX {
            return Err(ConfigError::StateSync(format!(
                "discovery_ms must be above zero and fetchers from 1 to {STATE_SYNC_FETCHERS_MAX}"
            )));
        }
        let test_faults = check_test_faults(file.test_faults, base)?;
        let api = check_api(file.api, base)?;
        let webhooks = file
            .webhooks
            .map(|entry| crate::webhooks::Settings::check(entry, base))
            .transpose()
            .map_err(ConfigError::Webhooks)?;
        let listen_address = parse_address("listen_address", &file.listen_address)?;
        let api_address =
            file.api_address
                .parse::<SocketAddr>()
                .map_err(|e| ConfigError::Address {
                    field: "api_address".to_string(),
                    value: file.api_address.clone(),
                    reason: format!("{e} (expected IP:port)"),
                })?;

        let key_file = base.join(&file.key_file);
        if !key_file.exists() {
            return Err(ConfigError::KeyFileMissing { path: key_file });
        }
        let public_key = KeyFile::read(&key_file)?.public_key();
        let genesis_file = base.join(&file.genesis_file);
        if !genesis_file.is_file() {
            return Err(ConfigError::GenesisFileMissing { path: genesis_file });
        }
        let data_dir = base.join(&file.data_dir);
        if data_dir.exists() && !data_dir.is_dir() {
            return Err(ConfigError::DataDirNotDirectory { path: data_dir });
        }

        let mut peers: Vec<PeerAddress> = Vec::with_capacity(file.peers.len());
        for (index, entry) in file.peers.iter().enumerate() {
            let field = format!("peers[{index}]");
            let key = parse_public_key(&format!("{field}.public_key"), &entry.public_key)?;
            let address = parse_address(&format!("{field}.address"), &entry.address)?;
            if key == public_key {
                return Err(ConfigError::OwnKey { field });
            }
            if peers.iter().any(|p| p.public_key == key) {
                return Err(ConfigError::DuplicatePeer { public_key: key });
            }
            if peers.iter().any(|p| p.address == address) {
                return Err(ConfigError::DuplicateAddress { address });
            }
            peers.push(PeerAddress {
                public_key: key,
                address,
            });
        }
        let mut observers = BTreeSet::new();
        for (index, value) in file.observers.iter().enumerate() {
            let field = format!("observers[{index}]");
            let key = parse_public_key(&field, value)?;
            if key == public_key {
                return Err(ConfigError::OwnKey { field });
            }
            if !observers.insert(key) {
                return Err(ConfigError::DuplicateObserver { public_key: key });
            }
        }

        Ok(Config {
            mode: file.mode,
            listen_address,
            peers,
            observers,
            data_dir,
            key_file,
            public_key,
            api_address,
            genesis_file,
            limits: file.limits,
            test_faults,
            api,
            pruning: file.pruning,
            snapshots: file.snapshots,
            state_sync: file.state_sync,
            webhooks,
        })
    }

    /// What the network task needs from this configuration.
    pub fn network(&self) -> NetworkConfig {
        let limits = &self.limits;
        NetworkConfig {
            listen_address: self.listen_address.clone(),
            peers: self.peers.clone(),
            peer_set: PeerSet {
                validators: self.peers.iter().map(|p| p.public_key).collect(),
                observers: self.observers.clone(),
            },
            // Both were checked against limits that fit in usize on every supported target.
            message_bytes_max: usize::try_from(limits.message_bytes_max).unwrap_or(usize::MAX),
            request_timeout: Duration::from_millis(limits.sync_request_timeout_ms),
            redial_delay_max: Duration::from_millis(limits.redial_delay_ms_max),
            peer_block_duration: Duration::from_millis(limits.peer_block_ms),
            events_capacity: usize::try_from(limits.network_events_max).unwrap_or(usize::MAX),
            blocked_peers_file: self.test_faults.blocked_peers_file.clone(),
            counters: Default::default(),
            topics: match self.mode {
                Mode::Validator => GossipTopic::ALL.to_vec(),
                Mode::Audit => GossipTopic::OBSERVED.to_vec(),
            },
        }
    }
}

fn check_limits(limits: &Limits) -> Result<(), ConfigError> {
    let named = [
        ("message_bytes_max", limits.message_bytes_max),
        ("mempool_txs_max", limits.mempool_txs_max),
        ("mempool_bytes_max", limits.mempool_bytes_max),
        ("block_txs_max", limits.block_txs_max),
        ("block_bytes_max", limits.block_bytes_max),
        ("sync_request_timeout_ms", limits.sync_request_timeout_ms),
        ("peer_block_ms", limits.peer_block_ms),
        ("redial_delay_ms_max", limits.redial_delay_ms_max),
        ("network_events_max", limits.network_events_max),
        ("storage_cache_bytes", limits.storage_cache_bytes),
        ("key_cache_entries", limits.key_cache_entries),
        ("evidence_pending_max", limits.evidence_pending_max),
        ("evidence_remembered_max", limits.evidence_remembered_max),
        ("verified_blocks_max", limits.verified_blocks_max),
        ("chain_inputs_max", limits.chain_inputs_max),
        ("outbound_max", limits.outbound_max),
    ];
    for (name, value) in named {
        if value == 0 {
            return Err(ConfigError::ZeroLimit { name });
        }
    }
    let bounded = [
        (
            "message_bytes_max",
            limits.message_bytes_max,
            MESSAGE_BYTES_LIMIT,
        ),
        ("network_events_max", limits.network_events_max, 1 << 20),
        ("storage_cache_bytes", limits.storage_cache_bytes, 1 << 40),
        ("key_cache_entries", limits.key_cache_entries, 1 << 24),
        // A block carries at most `BLOCK_EVIDENCE_MAX` pieces; more pending is memory only.
        ("evidence_pending_max", limits.evidence_pending_max, 1 << 16),
        (
            "evidence_remembered_max",
            limits.evidence_remembered_max,
            1 << 20,
        ),
        ("verified_blocks_max", limits.verified_blocks_max, 1 << 10),
        ("chain_inputs_max", limits.chain_inputs_max, 1 << 20),
        ("outbound_max", limits.outbound_max, 1 << 20),
        // Durations beyond a day are mistakes, and keep `Instant` arithmetic far from overflow.
        (
            "sync_request_timeout_ms",
            limits.sync_request_timeout_ms,
            86_400_000,
        ),
        ("peer_block_ms", limits.peer_block_ms, 86_400_000),
        (
            "redial_delay_ms_max",
            limits.redial_delay_ms_max,
            86_400_000,
        ),
    ];
    for (name, value, max) in bounded {
        if value > max {
            return Err(ConfigError::LimitTooLarge { name, value, max });
        }
    }
    if limits.block_bytes_max >= limits.message_bytes_max {
        return Err(ConfigError::BlockAboveMessage {
            block: limits.block_bytes_max,
            message: limits.message_bytes_max,
        });
    }
    if limits.mempool_bytes_max < limits.block_bytes_max {
        return Err(ConfigError::MempoolBelowBlock {
            mempool: limits.mempool_bytes_max,
            block: limits.block_bytes_max,
        });
    }
    Ok(())
}

fn parse_public_key(field: &str, value: &str) -> Result<PublicKey, ConfigError> {
    let refused = |reason: String| ConfigError::PublicKey {
        field: field.to_string(),
        value: value.to_string(),
        reason,
    };
    let key = PublicKey::from_hex(value).map_err(|e| refused(e.to_string()))?;
    if !key.is_valid() {
        return Err(refused("not a usable ed25519 point".to_string()));
    }
    Ok(key)
}

/// A TCP address as `IP:port` or as the multiaddr `/ip4/A.B.C.D/tcp/PORT` (or `/ip6/...`).
/// Host names are refused: the node resolves no names, so a peer's address cannot be
/// redirected through DNS.
pub fn parse_address(field: &str, value: &str) -> Result<Multiaddr, ConfigError> {
    let refused = |reason: &str| ConfigError::Address {
        field: field.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if !value.starts_with('/') {
        let socket: SocketAddr = value
            .parse()
            .map_err(|_| refused("expected IP:port or a multiaddr such as /ip4/10.0.0.1/tcp/26656; host names are not supported"))?;
        return Ok(Multiaddr::empty()
            .with(Protocol::from(socket.ip()))
            .with(Protocol::Tcp(socket.port())));
    }
    let address: Multiaddr = value
        .parse()
        .map_err(|e: libp2p::multiaddr::Error| refused(&e.to_string()))?;
    let mut parts = address.iter();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Protocol::Ip4(_) | Protocol::Ip6(_)), Some(Protocol::Tcp(_)), None) => Ok(address),
        _ => Err(refused(
            "expected exactly /ip4/ADDRESS/tcp/PORT or /ip6/ADDRESS/tcp/PORT",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{Context, Result, bail};
    use tally_crypto::SigningKey;

    /// A directory holding a valid key file and genesis file, and a valid config text.
    struct Fixture {
        dir: tempfile::TempDir,
    }

    fn peer_key(i: u8) -> String {
        SigningKey::from_seed([i; 32]).public_key().to_hex()
    }

    impl Fixture {
        fn new() -> Result<Fixture> {
            let dir = tempfile::tempdir()?;
            KeyFile::write_new(
                &SigningKey::from_seed([1; 32]),
                &dir.path().join("node.key"),
            )?;
            std::fs::write(dir.path().join("genesis.json"), "{}")?;
            Ok(Fixture { dir })
        }

        fn valid_text(&self) -> String {
            format!(
                r#"
mode = "validator"
listen_address = "127.0.0.1:26656"
api_address = "127.0.0.1:8080"
data_dir = "data"
key_file = "node.key"
genesis_file = "genesis.json"
observers = ["{observer}"]

[[peers]]
address = "/ip4/10.0.0.2/tcp/26656"
public_key = "{peer2}"

[[peers]]
address = "10.0.0.3:26656"
public_key = "{peer3}"

[api]
plain_http = true

[limits]
message_bytes_max = 1048576
block_bytes_max = 524288
"#,
                observer = peer_key(9),
                peer2 = peer_key(2),
                peer3 = peer_key(3),
            )
        }

        fn load(&self, text: &str) -> Result<Config, ConfigError> {
            let path = self.dir.path().join("tally.toml");
            std::fs::write(&path, text).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            Config::load(&path)
        }

        /// Loads the valid text with `from` replaced by `to`; the edit must apply.
        fn load_edited(&self, from: &str, to: &str) -> Result<ConfigError> {
            let text = self.valid_text();
            if !text.contains(from) {
                bail!("fixture has no {from:?}");
            }
            match self.load(&text.replacen(from, to, 1)) {
                Ok(_) => bail!("accepted a config with {from:?} replaced by {to:?}"),
                Err(e) => Ok(e),
            }
        }
    }

    #[test]
    fn a_valid_file_loads_with_paths_relative_to_it() -> Result<()> {
        let fixture = Fixture::new()?;
        let config = fixture.load(&fixture.valid_text())?;
        assert_eq!(config.mode, Mode::Validator);
        assert_eq!(
            config.listen_address.to_string(),
            "/ip4/127.0.0.1/tcp/26656"
        );
        assert_eq!(config.peers.len(), 2);
        assert_eq!(
            config
                .peers
                .get(1)
                .map(|p| p.address.to_string())
                .as_deref(),
            Some("/ip4/10.0.0.3/tcp/26656")
        );
        assert_eq!(config.observers.len(), 1);
        assert_eq!(config.key_file, fixture.dir.path().join("node.key"));
        assert_eq!(config.data_dir, fixture.dir.path().join("data"));
        assert_eq!(
            config.public_key,
            SigningKey::from_seed([1; 32]).public_key()
        );
        assert_eq!(config.limits.message_bytes_max, 1_048_576);
        assert_eq!(config.limits.block_txs_max, Limits::default().block_txs_max);
        assert_eq!(
            config.pruning.keep_blocks, None,
            "every block kept unless asked"
        );
        let pruning = fixture.load(&format!(
            "{}\n[pruning]\nkeep_blocks = 1000\n",
            fixture.valid_text()
        ))?;
        assert_eq!(pruning.pruning.keep_blocks, Some(1000));
        assert_eq!(config.snapshots, None, "no snapshots unless asked");
        assert!(
            !config.state_sync.enable,
            "replay from genesis unless asked"
        );
        let syncing = fixture.load(&format!(
            "{}\n[snapshots]\ninterval_blocks = 500\n[state_sync]\nenable = true\n",
            fixture.valid_text()
        ))?;
        assert_eq!(
            syncing.snapshots,
            Some(Snapshots {
                interval_blocks: 500,
                keep: 2,
                chunk_leaves: tally_contracts::snapshot::LEAVES_PER_CHUNK as u64,
            })
        );
        assert_eq!(syncing.state_sync.fetchers, 4);
        let network = config.network();
        assert_eq!(network.peer_set.validators.len(), 2);
        assert_eq!(network.message_bytes_max, 1_048_576);
        assert_eq!(
            network.topics,
            GossipTopic::ALL.to_vec(),
            "a validator takes every topic"
        );
        let audit = fixture.load(
            &fixture
                .valid_text()
                .replace(r#"mode = "validator""#, r#"mode = "audit""#),
        )?;
        assert_eq!(
            audit.network().topics,
            GossipTopic::OBSERVED.to_vec(),
            "an audit node takes no transaction gossip"
        );
        Ok(())
    }

    #[test]
    fn a_missing_file_is_named() -> Result<()> {
        let fixture = Fixture::new()?;
        let path = fixture.dir.path().join("absent.toml");
        let error = Config::load(&path).err().context("loaded a missing file")?;
        assert!(matches!(error, ConfigError::Read { .. }));
        assert!(error.to_string().contains("absent.toml"));
        Ok(())
    }

    #[test]
    fn unknown_and_missing_fields_are_named() -> Result<()> {
        let fixture = Fixture::new()?;
        let unknown = fixture.load_edited("mode =", "colour = \"blue\"\nmode =")?;
        assert!(matches!(unknown, ConfigError::Parse { .. }));
        assert!(unknown.to_string().contains("colour"), "{unknown}");
        let in_limits = fixture.load_edited("[limits]", "[limits]\nblock_size = 3")?;
        assert!(in_limits.to_string().contains("block_size"), "{in_limits}");
        let missing = fixture.load_edited("key_file = \"node.key\"", "")?;
        assert!(missing.to_string().contains("key_file"), "{missing}");
        let bad_mode = fixture.load_edited("\"validator\"", "\"leader\"")?;
        assert!(bad_mode.to_string().contains("leader"), "{bad_mode}");
        let not_toml = fixture
            .load("mode = ")
            .err()
            .context("accepted broken TOML")?;
        assert!(matches!(not_toml, ConfigError::Parse { .. }));
        Ok(())
    }

    #[test]
    fn bad_addresses_are_refused_with_their_field() -> Result<()> {
        let fixture = Fixture::new()?;
        for (from, to, field) in [
            ("127.0.0.1:26656", "localhost:26656", "listen_address"),
            ("127.0.0.1:26656", "127.0.0.1", "listen_address"),
            (
                "/ip4/10.0.0.2/tcp/26656",
                "/ip4/10.0.0.2/udp/26656",
                "peers[0].address",
            ),
            (
                "/ip4/10.0.0.2/tcp/26656",
                "/ip4/10.0.0.2/tcp/1/tcp/2",
                "peers[0].address",
            ),
            (
                "/ip4/10.0.0.2/tcp/26656",
                "/ip4/10.0.0.999/tcp/1",
                "peers[0].address",
            ),
            ("127.0.0.1:8080", "127.0.0.1:99999", "api_address"),
        ] {
            let error = fixture.load_edited(from, to)?;
            assert!(
                matches!(&error, ConfigError::Address { field: f, .. } if f == field),
                "{to}: {error}"
            );
        }
        Ok(())
    }

    #[test]
    fn bad_and_duplicate_keys_are_refused() -> Result<()> {
        let fixture = Fixture::new()?;
        let short = fixture.load_edited(&peer_key(2), "abcd")?;
        assert!(
            matches!(short, ConfigError::PublicKey { ref field, .. } if field == "peers[0].public_key")
        );
        let weak = fixture.load_edited(&peer_key(2), &"00".repeat(32))?;
        assert!(matches!(weak, ConfigError::PublicKey { .. }));
        let twice = fixture.load_edited(&peer_key(3), &peer_key(2))?;
        assert!(matches!(twice, ConfigError::DuplicatePeer { .. }));
        let same_address = fixture.load_edited("10.0.0.3:26656", "10.0.0.2:26656")?;
        assert!(matches!(same_address, ConfigError::DuplicateAddress { .. }));
        let own = fixture.load_edited(&peer_key(3), &peer_key(1))?;
        assert!(matches!(own, ConfigError::OwnKey { ref field } if field == "peers[1]"));
        let observer_twice = fixture.load_edited(
            &format!("[\"{}\"]", peer_key(9)),
            &format!("[\"{0}\", \"{0}\"]", peer_key(9)),
        )?;
        assert!(matches!(
            observer_twice,
            ConfigError::DuplicateObserver { .. }
        ));
        Ok(())
    }

    #[test]
    fn zero_oversized_and_inconsistent_limits_are_refused() -> Result<()> {
        let fixture = Fixture::new()?;
        let zero = fixture.load_edited("[limits]", "[limits]\nmempool_txs_max = 0")?;
        assert!(matches!(
            zero,
            ConfigError::ZeroLimit {
                name: "mempool_txs_max"
            }
        ));
        assert!(zero.to_string().contains("limits.mempool_txs_max"));
        let huge = fixture.load_edited("1048576", "1000000000000")?;
        assert!(matches!(
            huge,
            ConfigError::LimitTooLarge {
                name: "message_bytes_max",
                ..
            }
        ));
        let block = fixture.load_edited("524288", "2000000")?;
        assert!(matches!(block, ConfigError::BlockAboveMessage { .. }));
        let keep = fixture.load_edited("[limits]", "[pruning]\nkeep_blocks = 1\n[limits]")?;
        assert!(matches!(keep, ConfigError::KeepTooFew(1)), "{keep}");
        let unknown = fixture.load_edited("[limits]", "[pruning]\nkeep = 10\n[limits]")?;
        assert!(matches!(unknown, ConfigError::Parse { .. }), "{unknown}");
        for section in [
            "[snapshots]\ninterval_blocks = 0",
            "[snapshots]\ninterval_blocks = 10\nkeep = 0",
            "[snapshots]\ninterval_blocks = 10\nchunk_leaves = 1",
            "[snapshots]\ninterval_blocks = 10\nchunk_leaves = 100000",
        ] {
            let bad = fixture.load_edited("[limits]", &format!("{section}\n[limits]"))?;
            assert!(matches!(bad, ConfigError::Snapshots(_)), "{section}: {bad}");
        }
        for section in [
            "[state_sync]\nenable = true\nfetchers = 0",
            "[state_sync]\nenable = true\nfetchers = 1000",
            "[state_sync]\nenable = true\ndiscovery_ms = 0",
        ] {
            let bad = fixture.load_edited("[limits]", &format!("{section}\n[limits]"))?;
            assert!(matches!(bad, ConfigError::StateSync(_)), "{section}: {bad}");
        }
        let typo = fixture.load_edited("[limits]", "[state_sync]\nenabled = true\n[limits]")?;
        assert!(matches!(typo, ConfigError::Parse { .. }), "{typo}");
        let mempool = fixture.load_edited("[limits]", "[limits]\nmempool_bytes_max = 1000")?;
        assert!(matches!(mempool, ConfigError::MempoolBelowBlock { .. }));
        let cache = fixture.load_edited("[limits]", "[limits]\nstorage_cache_bytes = 0")?;
        assert!(matches!(
            cache,
            ConfigError::ZeroLimit {
                name: "storage_cache_bytes"
            }
        ));
        let cache =
            fixture.load_edited("[limits]", "[limits]\nstorage_cache_bytes = 2000000000000")?;
        assert!(matches!(
            cache,
            ConfigError::LimitTooLarge {
                name: "storage_cache_bytes",
                ..
            }
        ));
        let negative = fixture.load_edited("524288", "-1")?;
        assert!(matches!(negative, ConfigError::Parse { .. }));
        for name in [
            "evidence_pending_max",
            "evidence_remembered_max",
            "verified_blocks_max",
            "chain_inputs_max",
            "outbound_max",
        ] {
            let zero = fixture.load_edited("[limits]", &format!("[limits]\n{name} = 0"))?;
            assert!(
                matches!(zero, ConfigError::ZeroLimit { name: n } if n == name),
                "{name} = 0: {zero}"
            );
            let huge =
                fixture.load_edited("[limits]", &format!("[limits]\n{name} = 1000000000"))?;
            assert!(
                matches!(huge, ConfigError::LimitTooLarge { name: n, .. } if n == name),
                "{name} too large: {huge}"
            );
        }
        Ok(())
    }

    #[test]
    fn missing_or_wrong_files_are_refused() -> Result<()> {
        let fixture = Fixture::new()?;
        let key = fixture.load_edited("\"node.key\"", "\"other.key\"")?;
        assert!(matches!(key, ConfigError::KeyFileMissing { .. }));
        assert!(key.to_string().contains("tally keys generate"));
        std::fs::write(fixture.dir.path().join("broken.key"), "{}")?;
        let broken = fixture.load_edited("\"node.key\"", "\"broken.key\"")?;
        assert!(matches!(broken, ConfigError::KeyFile(_)));
        let genesis = fixture.load_edited("\"genesis.json\"", "\"nowhere.json\"")?;
        assert!(matches!(genesis, ConfigError::GenesisFileMissing { .. }));
        let data = fixture.load_edited("\"data\"", "\"genesis.json\"")?;
        assert!(matches!(data, ConfigError::DataDirNotDirectory { .. }));
        Ok(())
    }

    #[test]
    fn the_api_serves_tls_unless_plain_http_is_said_explicitly() -> Result<()> {
        let fixture = Fixture::new()?;
        let plain = fixture.load(&fixture.valid_text())?;
        assert_eq!(plain.api.tls, None);
        assert!(!plain.api.metrics_public);
        assert_eq!(plain.api.limits, crate::api::Limits::default());
        let missing = fixture.load_edited("[api]\nplain_http = true", "")?;
        assert!(matches!(missing, ConfigError::Api(_)), "{missing}");
        assert!(
            missing.to_string().contains("plain_http = true"),
            "{missing}"
        );
        std::fs::write(fixture.dir.path().join("cert.pem"), "x")?;
        std::fs::write(fixture.dir.path().join("key.pem"), "x")?;
        let tls = fixture.load(&fixture.valid_text().replace(
            "plain_http = true",
            "tls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\"\nmetrics_public = true\n\
             streams_per_client_max = 3\nrequests_per_second_per_client = 50",
        ))?;
        assert_eq!(
            tls.api.tls,
            Some(ApiTls {
                cert_file: fixture.dir.path().join("cert.pem"),
                key_file: fixture.dir.path().join("key.pem"),
            })
        );
        assert!(tls.api.metrics_public);
        assert_eq!(tls.api.limits.streams_per_client_max, 3);
        assert_eq!(tls.api.limits.requests_per_second_per_client, 50);
        for (to, needle) in [
            ("plain_http = false", "plain_http = true"),
            ("tls_cert_file = \"cert.pem\"", "both"),
            (
                "plain_http = true\ntls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\"",
                "goes without",
            ),
            (
                "tls_cert_file = \"nowhere.pem\"\ntls_key_file = \"key.pem\"",
                "nowhere.pem",
            ),
            (
                "plain_http = true\nstreams_max = 0",
                "streams_max must be above zero",
            ),
            (
                "plain_http = true\nrequests_per_second_per_client = 99999999999",
                "above the maximum",
            ),
            ("plain_http = true\ncolour = 1", "colour"),
        ] {
            let error = fixture.load_edited("plain_http = true", to)?;
            assert!(error.to_string().contains(needle), "{to}: {error}");
        }
        Ok(())
    }

    /// The test builds (the `test-faults` feature) read the section; product builds refuse
    /// it (that half runs in `.ci/run`, against a binary built without the feature).
    #[cfg(feature = "test-faults")]
    #[test]
    fn test_faults_are_read_by_test_builds() -> Result<()> {
        let fixture = Fixture::new()?;
        let honest = fixture.load(&fixture.valid_text())?;
        assert!(honest.test_faults.is_honest());
        let text = format!(
            "{}\n[test_faults]\nbyzantine = \"invalid-blocks\"\ninvalid_block = \"wrong-state-root\"\nblocked_peers_file = \"blocked.txt\"\n",
            fixture.valid_text()
        );
        let loaded = fixture.load(&text);
        let faults = loaded?.test_faults;
        assert_eq!(
            faults.byzantine,
            Some(Byzantine::InvalidBlocks(InvalidBlock::WrongStateRoot))
        );
        assert_eq!(
            faults.blocked_peers_file,
            Some(fixture.dir.path().join("blocked.txt"))
        );
        for (section, needle) in [
            ("byzantine = \"invalid-blocks\"", "needs invalid_block"),
            (
                "byzantine = \"silent\"\ninvalid_block = \"bad-signature\"",
                "only with",
            ),
            ("byzantine = \"liar\"", "liar"),
            ("colour = 1", "colour"),
        ] {
            let text = format!("{}\n[test_faults]\n{section}\n", fixture.valid_text());
            let error = fixture.load(&text).err().context(section)?;
            assert!(error.to_string().contains(needle), "{section}: {error}");
        }
        Ok(())
    }
}
