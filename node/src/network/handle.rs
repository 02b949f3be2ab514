//! The cloneable handle through which the node commands the network task.

use libp2p::request_response::ResponseChannel;
use std::time::Duration;
use tally_crypto::PublicKey;
use tokio::sync::{mpsc, oneshot};

use super::codec::Frame;
use super::{GossipTopic, NetworkError, PeerSet};

/// Slack on top of the protocol's own request timeout, so a caller of
/// [`NetworkHandle::request`] is never left waiting if the task misses its deadline.
const REQUEST_DEADLINE_SLACK: Duration = Duration::from_secs(1);

type Reply<T> = oneshot::Sender<Result<T, NetworkError>>;

/// What a handle asks of the network task.
#[derive(Debug)]
pub(super) enum Command {
    SendDirect {
        to: PublicKey,
        bytes: Vec<u8>,
        reply: Reply<()>,
    },
    BroadcastDirect {
        bytes: Vec<u8>,
        reply: Reply<usize>,
    },
    Publish {
        topic: GossipTopic,
        bytes: Vec<u8>,
        reply: Reply<()>,
    },
    Request {
        to: PublicKey,
        bytes: Vec<u8>,
        reply: Reply<Vec<u8>>,
    },
    Respond {
        channel: ResponseChannel<Frame>,
        bytes: Vec<u8>,
    },
    Report {
        peer: PublicKey,
        reason: String,
    },
    SetPeerSet {
        peer_set: PeerSet,
        reply: Reply<()>,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PublicKey>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Talks to the network task. Cheap to clone; every call waits for the task's answer.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    commands: mpsc::Sender<Command>,
    request_deadline: Duration,
}

impl NetworkHandle {
    pub(super) fn new(commands: mpsc::Sender<Command>, request_timeout: Duration) -> NetworkHandle {
        NetworkHandle {
            commands,
            request_deadline: request_timeout.saturating_add(REQUEST_DEADLINE_SLACK),
        }
    }

    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, NetworkError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| NetworkError::Stopped)?;
        answer.await.map_err(|_| NetworkError::Stopped)?
    }

    /// Sends `bytes` to one connected peer. Returns once the message is handed to the peer's
    /// connection; delivery is not confirmed (consensus tolerates loss).
    pub async fn send_direct(&self, to: PublicKey, bytes: Vec<u8>) -> Result<(), NetworkError> {
        self.ask(|reply| Command::SendDirect { to, bytes, reply })
            .await
    }

    /// Sends `bytes` to every connected validator; returns how many it was sent to.
    pub async fn broadcast_direct(&self, bytes: Vec<u8>) -> Result<usize, NetworkError> {
        self.ask(|reply| Command::BroadcastDirect { bytes, reply })
            .await
    }

    /// Gossips `bytes` on `topic`. Identical bytes are one message network-wide: publishing
    /// them again is [`NetworkError::Duplicate`].
    pub async fn publish(&self, topic: GossipTopic, bytes: Vec<u8>) -> Result<(), NetworkError> {
        self.ask(|reply| Command::Publish {
            topic,
            bytes,
            reply,
        })
        .await
    }

    /// Sends a sync request to a connected peer and waits for its response.
    pub async fn request(&self, to: PublicKey, bytes: Vec<u8>) -> Result<Vec<u8>, NetworkError> {
        let asked = self.ask(|reply| Command::Request { to, bytes, reply });
        tokio::time::timeout(self.request_deadline, asked)
            .await
            .map_err(|_| NetworkError::Timeout { peer: to })?
    }

    /// Disconnects `peer` and blocks it for a while, for a reason the upper layer found
    /// (an invalid signature, a message that does not decode).
    pub async fn report(
        &self,
        peer: PublicKey,
        reason: impl Into<String>,
    ) -> Result<(), NetworkError> {
        self.commands
            .send(Command::Report {
                peer,
                reason: reason.into(),
            })
            .await
            .map_err(|_| NetworkError::Stopped)
    }

    /// Replaces the keys allowed to connect; peers no longer in the set are disconnected.
    pub async fn set_peer_set(&self, peer_set: PeerSet) -> Result<(), NetworkError> {
        self.ask(|reply| Command::SetPeerSet { peer_set, reply })
            .await
    }

    /// The peers connected now, in key order.
    pub async fn connected_peers(&self) -> Result<Vec<PublicKey>, NetworkError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::ConnectedPeers { reply })
            .await
            .map_err(|_| NetworkError::Stopped)?;
        answer.await.map_err(|_| NetworkError::Stopped)
    }

    /// Stops the network task: connections are closed and the listener released.
    pub async fn shutdown(&self) -> Result<(), NetworkError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Shutdown { reply })
            .await
            .map_err(|_| NetworkError::Stopped)?;
        answer.await.map_err(|_| NetworkError::Stopped)
    }
}

/// Answers one [`super::NetworkEvent::SyncRequest`].
#[derive(Debug)]
pub struct SyncResponder {
    channel: ResponseChannel<Frame>,
    commands: mpsc::Sender<Command>,
    bytes_max: usize,
}

impl SyncResponder {
    pub(super) fn new(
        channel: ResponseChannel<Frame>,
        commands: mpsc::Sender<Command>,
        bytes_max: usize,
    ) -> SyncResponder {
        SyncResponder {
            channel,
            commands,
            bytes_max,
        }
    }

    /// Sends the response. A response above the message limit is refused here rather than
    /// being cut off by the peer.
    pub async fn respond(self, bytes: Vec<u8>) -> Result<(), NetworkError> {
        if bytes.len() > self.bytes_max {
            return Err(NetworkError::MessageTooLarge {
                bytes: bytes.len(),
                max: self.bytes_max,
            });
        }
        self.commands
            .send(Command::Respond {
                channel: self.channel,
                bytes,
            })
            .await
            .map_err(|_| NetworkError::Stopped)
    }
}
