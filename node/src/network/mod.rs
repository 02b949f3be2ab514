//! The node's peer-to-peer network: libp2p over TCP with Noise and Yamux.
//!
//! One task (see `task.rs`) owns the libp2p `Swarm`. The rest of the node talks to it through
//! a cloneable [`NetworkHandle`] (commands with one-shot replies) and hears from it through a
//! bounded channel of [`NetworkEvent`]s. Messages are opaque bytes: what they mean is for
//! consensus, the mempool and block sync to decide.
//!
//! Who may connect: only peers whose keys are in the [`PeerSet`] (validators plus observers).
//! A connection from any other key is refused after the Noise handshake has proven the key.
//! The set can be replaced at runtime ([`NetworkHandle::set_peer_set`]) for validator-set
//! changes.
//!
//! Three ways to talk:
//! - direct messages to one peer or to every connected validator (consensus);
//! - gossip on a [`GossipTopic`] (transactions, evidence);
//! - sync requests with a response and a timeout (block sync).
//!
//! Every message is at most `message_bytes_max` bytes. A peer that breaks the framing or
//! sends an oversized message is logged, disconnected and blocked for `peer_block_duration`;
//! the upper layer can do the same with [`NetworkHandle::report`].

mod codec;
mod gate;
mod handle;
mod handshakes;
mod identity;
mod task;

use libp2p::Multiaddr;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;
use tally_crypto::{PublicKey, SigningKey};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use codec::FrameError;
pub use handle::{NetworkHandle, SyncResponder};
pub use identity::peer_id;

/// Capacity of the command channel from handles to the network task.
const COMMANDS_CAPACITY: usize = 1024;

/// What the network needs to start.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Where to listen, as `/ip4/A.B.C.D/tcp/PORT` (port 0 picks a free port).
    pub listen_address: Multiaddr,
    /// Peers to dial and keep connected, redialled with backoff when they drop.
    pub peers: Vec<PeerAddress>,
    /// Who may connect.
    pub peer_set: PeerSet,
    /// The largest message, in payload bytes, sent or accepted on any protocol.
    pub message_bytes_max: usize,
    /// How long a sync request waits for its response.
    pub request_timeout: Duration,
    /// Upper bound of the redial backoff (it starts at a quarter second and doubles).
    pub redial_delay_max: Duration,
    /// How long a misbehaving peer stays blocked.
    pub peer_block_duration: Duration,
    /// Capacity of the event channel to the node. When it is full, events are dropped
    /// (and logged) rather than stalling the swarm: the node must keep up.
    pub events_capacity: usize,
    /// Test-only connection gating: the peers listed in this file are cut off both ways
    /// until removed from it (see `[test_faults]` in the config).
    pub blocked_peers_file: Option<std::path::PathBuf>,
    /// Where the network counts cut-offs and refused connections (the node's metrics).
    pub counters: crate::metrics::NetworkCounters,
    /// The gossip topics this node takes. Peers send a topic only to nodes subscribed to it,
    /// so a node that does not take one neither receives nor relays it.
    pub topics: Vec<GossipTopic>,
}

/// A peer to dial: its key (hence its `PeerId`) and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddress {
    pub public_key: PublicKey,
    pub address: Multiaddr,
}

/// The keys allowed to connect. Validators receive [`NetworkHandle::broadcast_direct`];
/// observers (audit nodes) may connect and gossip but are not consensus participants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerSet {
    pub validators: BTreeSet<PublicKey>,
    pub observers: BTreeSet<PublicKey>,
}

/// Gossip topics. A closed set, so a peer cannot make the node subscribe to anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GossipTopic {
    Transactions,
    Evidence,
    /// Validator-set updates waiting for a proposer to put them in a block.
    Governance,
}

impl GossipTopic {
    /// What an audit node takes: not transactions (it verifies them in blocks, and relaying
    /// every batch through it cost it and the validators a copy each).
    pub const OBSERVED: [GossipTopic; 2] = [GossipTopic::Evidence, GossipTopic::Governance];

    pub const ALL: [GossipTopic; 3] = [
        GossipTopic::Transactions,
        GossipTopic::Evidence,
        GossipTopic::Governance,
    ];

    /// The name on the wire; the version lets the encoding change without confusing peers.
    pub fn wire_name(self) -> &'static str {
        match self {
            GossipTopic::Transactions => "/tally/transactions/1",
            GossipTopic::Evidence => "/tally/evidence/1",
            GossipTopic::Governance => "/tally/governance/1",
        }
    }
}

impl fmt::Display for GossipTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

/// What the network tells the node. Peers are named by their tally public keys.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A direct message from a connected peer.
    Direct {
        from: PublicKey,
        bytes: Vec<u8>,
    },
    /// A gossip message; `from` is its author (gossip messages are signed by their author's
    /// key), not the peer that forwarded it.
    Gossip {
        from: PublicKey,
        topic: GossipTopic,
        bytes: Vec<u8>,
    },
    /// A block-sync request; answer it with `responder` (dropping it fails the request).
    SyncRequest {
        from: PublicKey,
        bytes: Vec<u8>,
        responder: SyncResponder,
    },
    PeerConnected(PublicKey),
    PeerDisconnected(PublicKey),
}

/// Why a network operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot set up the network: {0}")]
    Setup(String),
    #[error("cannot listen on {address}: {reason}")]
    Listen { address: Multiaddr, reason: String },
    #[error("public key {0} is not a valid ed25519 key")]
    BadPublicKey(PublicKey),
    #[error("peer {0} is not connected")]
    NotConnected(PublicKey),
    #[error("message of {bytes} bytes is above the limit of {max} bytes")]
    MessageTooLarge { bytes: usize, max: usize },
    #[error("no connected peer is subscribed to {0}")]
    NoSubscribers(GossipTopic),
    #[error("this message was already published")]
    Duplicate,
    #[error("cannot publish: {0}")]
    Publish(String),
    #[error("too many sync requests in flight (limit {0})")]
    Busy(usize),
    #[error("request to {peer} timed out")]
    Timeout { peer: PublicKey },
    #[error("request to {peer} failed: {reason}")]
    RequestFailed { peer: PublicKey, reason: String },
    #[error("the network task has stopped")]
    Stopped,
}

/// A started network: the handle to command it, the events it reports, and its task.
#[derive(Debug)]
pub struct Network {
    pub handle: NetworkHandle,
    pub events: mpsc::Receiver<NetworkEvent>,
    /// The addresses it listens on (the actual port when 0 was asked for).
    pub listen_addresses: Vec<Multiaddr>,
    /// Ends after [`NetworkHandle::shutdown`] or when every handle is dropped.
    pub task: JoinHandle<()>,
}

/// Starts the network task for the node holding `key`. Returns once it is listening.
pub async fn start(key: &SigningKey, config: NetworkConfig) -> Result<Network, NetworkError> {
    if config.message_bytes_max == 0 || config.events_capacity == 0 {
        return Err(NetworkError::Setup(
            "message_bytes_max and events_capacity must be above zero".to_string(),
        ));
    }
    let request_timeout = config.request_timeout;
    let (commands_tx, commands_rx) = mpsc::channel(COMMANDS_CAPACITY);
    let (events_tx, events_rx) = mpsc::channel(config.events_capacity);
    let (task, listen_addresses) =
        task::NetworkTask::start(key, config, commands_rx, events_tx, commands_tx.clone()).await?;
    Ok(Network {
        handle: NetworkHandle::new(commands_tx, request_timeout),
        events: events_rx,
        listen_addresses,
        task: tokio::spawn(task.run()),
    })
}
