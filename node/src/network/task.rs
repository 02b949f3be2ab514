//! The task that owns the libp2p `Swarm`: it alone touches connections, and answers the
//! handles' commands between swarm events.

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, TopicHash};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, allow_block_list, connection_limits,
    noise, tcp, yamux,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use tally_crypto::{Hash, PublicKey, SigningKey};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use super::codec::{Frame, FrameCodec};
use super::gate::{GATE_POLL_INTERVAL, GateFile};
use super::handle::{Command, SyncResponder};
use super::handshakes::{HandshakesPerAddress, TooManyHandshakes};
use super::{GossipTopic, NetworkConfig, NetworkError, NetworkEvent, PeerSet, identity};

/// Where the answer to a handle's sync request goes.
type ResponseReply = oneshot::Sender<Result<Vec<u8>, NetworkError>>;

const DIRECT_PROTOCOL: StreamProtocol = StreamProtocol::new("/tally/direct/1");
/// 2: a request is a `SyncRequest` (blocks, or a snapshot's offer, manifest or chunk), no
/// longer a bare block request: a node of version 1 would read one as malformed.
const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/tally/sync/2");
/// Room for gossipsub's envelope around a payload (topic, sequence number, author key,
/// signature, protobuf tags), so a payload of exactly `message_bytes_max` still fits.
const GOSSIP_ENVELOPE_BYTES_MAX: usize = 1024;
const SYNC_REQUESTS_PENDING_MAX: usize = 256;
const STREAMS_PER_CONNECTION_MAX: usize = 256;
/// Two, so that when two peers dial each other at once both connections survive.
const CONNECTIONS_PER_PEER_MAX: u32 = 2;
/// Handshakes in progress with not-yet-authenticated dialers.
const INCOMING_PENDING_CONNECTIONS_MAX: u32 = 64;
/// Of those, from one IP address: an honest host has one in flight per node it runs, so
/// eight leaves room for a few nodes behind one address, and one host holds at most an
/// eighth of the node-wide cap.
const INCOMING_PENDING_PER_ADDRESS_MAX: u32 = 8;
/// Connections between validators are meant to stay up even when quiet.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
const REDIAL_DELAY_MIN: Duration = Duration::from_millis(250);
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(100);
const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);
const GOSSIP_ID_DOMAIN: &str = "tally/gossip-id";

#[derive(NetworkBehaviour)]
struct Behaviour {
    // Gating behaviours first: they refuse a connection before the others hear of it.
    // The per-address cap comes first of all, so it hears of every handshake's end.
    handshakes: HandshakesPerAddress,
    allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Test-only partitions from the blocked peers file (see `gate.rs`).
    gated: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    limits: connection_limits::Behaviour,
    direct: request_response::Behaviour<FrameCodec>,
    sync: request_response::Behaviour<FrameCodec>,
    gossip: gossipsub::Behaviour,
}

impl Behaviour {
    fn new(
        keypair: &libp2p::identity::Keypair,
        config: &NetworkConfig,
    ) -> Result<Behaviour, NetworkError> {
        let setup = |e: String| NetworkError::Setup(e);
        let gossip_config = gossipsub::ConfigBuilder::default()
            .max_transmit_size(
                config
                    .message_bytes_max
                    .saturating_add(GOSSIP_ENVELOPE_BYTES_MAX),
            )
            .validation_mode(gossipsub::ValidationMode::Strict)
            // The network checks size and author before a message is forwarded, so an honest
            // node never relays what would get it cut off.
            .validate_messages()
            // Same bytes, same message: a transaction gossiped by two nodes is one message.
            .message_id_fn(|message| {
                gossipsub::MessageId::from(
                    Hash::digest(GOSSIP_ID_DOMAIN, &message.data)
                        .as_bytes()
                        .to_vec(),
                )
            })
            .build()
            .map_err(|e| setup(format!("gossipsub configuration: {e}")))?;
        let gossip = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(keypair.clone()),
            gossip_config,
        )
        .map_err(|e| setup(format!("gossipsub: {e}")))?;
        let request_response = |protocol: StreamProtocol, timeout: Duration| {
            request_response::Behaviour::with_codec(
                FrameCodec::new(config.message_bytes_max),
                [(protocol, ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(timeout)
                    .with_max_concurrent_streams(STREAMS_PER_CONNECTION_MAX),
            )
        };
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established_per_peer(Some(CONNECTIONS_PER_PEER_MAX))
            .with_max_pending_incoming(Some(INCOMING_PENDING_CONNECTIONS_MAX));
        Ok(Behaviour {
            handshakes: HandshakesPerAddress::new(INCOMING_PENDING_PER_ADDRESS_MAX),
            allowed: allow_block_list::Behaviour::default(),
            blocked: allow_block_list::Behaviour::default(),
            gated: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(limits),
            direct: request_response(DIRECT_PROTOCOL, config.request_timeout),
            sync: request_response(SYNC_PROTOCOL, config.request_timeout),
            gossip,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Validator,
    Observer,
}

#[derive(Debug, Clone, Copy)]
struct Member {
    key: PublicKey,
    role: Role,
}

/// A configured peer this node keeps dialling while it is not connected.
#[derive(Debug)]
struct DialTarget {
    address: Multiaddr,
    attempts: u32,
    next_at: Instant,
}

pub(super) struct NetworkTask {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    /// Weak, so that the task ends once every handle is gone; responders upgrade it.
    commands_weak: mpsc::WeakSender<Command>,
    events: mpsc::Sender<NetworkEvent>,
    local_key: PublicKey,
    config: NetworkConfig,
    /// The allow set, by peer id.
    members: BTreeMap<PeerId, Member>,
    /// Peers reported to the node as connected (so each connect has one disconnect).
    connected: BTreeMap<PeerId, PublicKey>,
    dial_targets: BTreeMap<PeerId, DialTarget>,
    blocked_until: BTreeMap<PeerId, Instant>,
    /// The blocked peers file, if configured, and the peers it lists now.
    gate_file: Option<GateFile>,
    gated: BTreeSet<PeerId>,
    topics: HashMap<TopicHash, GossipTopic>,
    pending_requests: HashMap<OutboundRequestId, (PublicKey, ResponseReply)>,
}

impl NetworkTask {
    pub(super) async fn start(
        key: &SigningKey,
        config: NetworkConfig,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<NetworkEvent>,
        commands_tx: mpsc::Sender<Command>,
    ) -> Result<(NetworkTask, Vec<Multiaddr>), NetworkError> {
        let setup = |e: String| NetworkError::Setup(e);
        let keypair = identity::keypair(key)?;
        let behaviour = Behaviour::new(&keypair, &config)?;
        let mut swarm = SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| setup(format!("noise: {e}")))?
            .with_behaviour(|_| behaviour)
            .map_err(|e| setup(format!("behaviour: {e}")))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
            .build();

        let mut topics = HashMap::new();
        for &topic in &config.topics {
            let ident = IdentTopic::new(topic.wire_name());
            swarm
                .behaviour_mut()
                .gossip
                .subscribe(&ident)
                .map_err(|e| setup(format!("subscribe to {topic}: {e}")))?;
            topics.insert(ident.hash(), topic);
        }

        let listen_addresses = listen(&mut swarm, &config.listen_address).await?;
        info!(addresses = ?listen_addresses, peer_id = %swarm.local_peer_id(), "network listening");

        let now = Instant::now();
        let mut dial_targets = BTreeMap::new();
        for peer in &config.peers {
            let target = DialTarget {
                address: peer.address.clone(),
                attempts: 0,
                next_at: now,
            };
            dial_targets.insert(identity::peer_id(&peer.public_key)?, target);
        }

        let mut task = NetworkTask {
            swarm,
            commands,
            commands_weak: commands_tx.downgrade(),
            events,
            local_key: key.public_key(),
            members: BTreeMap::new(),
            connected: BTreeMap::new(),
            dial_targets,
            blocked_until: BTreeMap::new(),
            gate_file: config.blocked_peers_file.clone().map(GateFile::new),
            gated: BTreeSet::new(),
            topics,
            pending_requests: HashMap::new(),
            config: config.clone(),
        };
        task.set_peer_set(config.peer_set)?;
        Ok((task, listen_addresses))
    }

    pub(super) async fn run(mut self) {
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        housekeeping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut gate_poll = tokio::time::interval(GATE_POLL_INTERVAL);
        gate_poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let shutdown_reply = loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    None => break None,
                    Some(Command::Shutdown { reply }) => break Some(reply),
                    Some(command) => self.on_command(command),
                },
                _ = housekeeping.tick() => self.on_housekeeping(),
                _ = gate_poll.tick(), if self.gate_file.is_some() => self.poll_gate(),
            }
        };
        // Dropping the swarm closes every connection and releases the listening port.
        drop(self.swarm);
        info!("network stopped");
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::SendDirect { to, bytes, reply } => {
                let _ = reply.send(self.send_direct(to, bytes));
            }
            Command::BroadcastDirect { bytes, reply } => {
                let _ = reply.send(self.broadcast_direct(bytes));
            }
            Command::Publish {
                topic,
                bytes,
                reply,
            } => {
                let _ = reply.send(self.publish(topic, bytes));
            }
            Command::Request { to, bytes, reply } => self.request(to, bytes, reply),
            Command::Respond { channel, bytes } => {
                if self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, Ok(bytes))
                    .is_err()
                {
                    debug!("sync response not sent: the request was dropped");
                }
            }
            Command::Report { peer, reason } => match identity::peer_id(&peer) {
                Ok(peer_id) => self.cut_off(peer_id, "reported", &reason),
                Err(e) => warn!(error = %e, "report about an invalid key ignored"),
            },
            Command::SetPeerSet { peer_set, reply } => {
                let _ = reply.send(self.set_peer_set(peer_set));
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.connected.values().copied().collect());
            }
            // Handled by the run loop.
            Command::Shutdown { reply } => {
                let _ = reply.send(());
            }
        }
    }

    fn check_size(&self, bytes: &[u8]) -> Result<(), NetworkError> {
        if bytes.len() > self.config.message_bytes_max {
            return Err(NetworkError::MessageTooLarge {
                bytes: bytes.len(),
                max: self.config.message_bytes_max,
            });
        }
        Ok(())
    }

    fn connected_peer(&self, key: PublicKey) -> Result<PeerId, NetworkError> {
        let peer = identity::peer_id(&key)?;
        if self.connected.contains_key(&peer) {
            Ok(peer)
        } else {
            Err(NetworkError::NotConnected(key))
        }
    }

    fn send_direct(&mut self, to: PublicKey, bytes: Vec<u8>) -> Result<(), NetworkError> {
        self.check_size(&bytes)?;
        let peer = self.connected_peer(to)?;
        self.swarm
            .behaviour_mut()
            .direct
            .send_request(&peer, Ok(bytes));
        Ok(())
    }

    fn broadcast_direct(&mut self, bytes: Vec<u8>) -> Result<usize, NetworkError> {
        self.check_size(&bytes)?;
        let validators: Vec<PeerId> = self
            .connected
            .keys()
            .filter(|peer| {
                self.members
                    .get(peer)
                    .is_some_and(|m| m.role == Role::Validator)
            })
            .copied()
            .collect();
        for peer in &validators {
            self.swarm
                .behaviour_mut()
                .direct
                .send_request(peer, Ok(bytes.clone()));
        }
        Ok(validators.len())
    }

    fn publish(&mut self, topic: GossipTopic, bytes: Vec<u8>) -> Result<(), NetworkError> {
        self.check_size(&bytes)?;
        let ident = IdentTopic::new(topic.wire_name());
        match self.swarm.behaviour_mut().gossip.publish(ident, bytes) {
            Ok(_) => Ok(()),
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                Err(NetworkError::NoSubscribers(topic))
            }
            Err(gossipsub::PublishError::Duplicate) => Err(NetworkError::Duplicate),
            Err(e) => Err(NetworkError::Publish(e.to_string())),
        }
    }

    fn request(&mut self, to: PublicKey, bytes: Vec<u8>, reply: ResponseReply) {
        let checked = self.check_size(&bytes).and_then(|()| {
            if self.pending_requests.len() >= SYNC_REQUESTS_PENDING_MAX {
                return Err(NetworkError::Busy(SYNC_REQUESTS_PENDING_MAX));
            }
            self.connected_peer(to)
        });
        match checked {
            Ok(peer) => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, Ok(bytes));
                self.pending_requests.insert(id, (to, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Replaces the allow set. Every key is checked before anything changes, so a bad key
    /// leaves the old set in force.
    fn set_peer_set(&mut self, peer_set: PeerSet) -> Result<(), NetworkError> {
        let mut members = BTreeMap::new();
        let roles = peer_set
            .validators
            .iter()
            .map(|key| (key, Role::Validator))
            .chain(peer_set.observers.iter().map(|key| (key, Role::Observer)));
        for (key, role) in roles {
            if *key == self.local_key {
                continue;
            }
            // A key listed both ways is a validator: `or_insert` keeps the first role.
            members
                .entry(identity::peer_id(key)?)
                .or_insert(Member { key: *key, role });
        }
        let behaviour = self.swarm.behaviour_mut();
        for peer in self.members.keys().filter(|p| !members.contains_key(p)) {
            // Closes the peer's connections too.
            behaviour.allowed.disallow_peer(*peer);
        }
        for peer in members.keys() {
            behaviour.allowed.allow_peer(*peer);
        }
        info!(
            validators = peer_set.validators.len(),
            observers = peer_set.observers.len(),
            "peer set in force"
        );
        self.members = members;
        Ok(())
    }

    /// Disconnects a misbehaving peer and refuses it for `peer_block_duration`; counted
    /// under `label` (a fixed word: `reason` may hold a peer's text).
    fn cut_off(&mut self, peer: PeerId, label: &'static str, reason: &str) {
        self.config.counters.peers_cut_off.inc(label);
        let key = self.members.get(&peer).map(|m| m.key.to_hex());
        warn!(
            peer = key.as_deref().unwrap_or("unknown"),
            peer_id = %peer,
            reason,
            block_secs = self.config.peer_block_duration.as_secs(),
            "cutting off peer"
        );
        self.blocked_until
            .insert(peer, Instant::now() + self.config.peer_block_duration);
        self.swarm.behaviour_mut().blocked.block_peer(peer);
    }

    /// Applies a change of the blocked peers file: newly listed peers are disconnected and
    /// refused (dial and inbound), peers no longer listed are allowed again.
    fn poll_gate(&mut self) {
        let Some(listed) = self.gate_file.as_mut().and_then(GateFile::poll) else {
            return;
        };
        let behaviour = self.swarm.behaviour_mut();
        for peer in self.gated.difference(&listed) {
            behaviour.gated.unblock_peer(*peer);
            info!(peer_id = %peer, "peer no longer gated");
        }
        for peer in listed.difference(&self.gated) {
            // Closes the peer's connections too.
            behaviour.gated.block_peer(*peer);
            info!(peer_id = %peer, "peer gated");
        }
        self.gated = listed;
        self.config
            .counters
            .gated_peers
            .set(i64::try_from(self.gated.len()).unwrap_or(i64::MAX));
    }

    fn on_housekeeping(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .blocked_until
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in expired {
            self.blocked_until.remove(&peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            info!(peer_id = %peer, "peer unblocked");
        }

        for (peer, target) in &mut self.dial_targets {
            let wanted = self.members.contains_key(peer)
                && !self.blocked_until.contains_key(peer)
                && !self.gated.contains(peer)
                && !self.swarm.is_connected(peer);
            if !wanted || target.next_at > now {
                continue;
            }
            let opts = DialOpts::peer_id(*peer)
                .addresses(vec![target.address.clone()])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                debug!(peer_id = %peer, error = %e, "dial not started");
            }
            target.next_at = now + redial_delay(target.attempts, self.config.redial_delay_max);
            target.attempts = target.attempts.saturating_add(1);
        }
    }

    fn emit(&self, event: NetworkEvent) {
        use mpsc::error::TrySendError;
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => {
                warn!(
                    event = event_kind(&event),
                    "event channel full: event dropped"
                );
            }
            Err(TrySendError::Closed(_)) => debug!("nobody listens to network events"),
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Direct(event)) => self.on_direct(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(event)) => self.on_gossip(event),
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                if let Some(target) = self.dial_targets.get_mut(&peer_id) {
                    target.attempts = 0;
                }
                let Some(member) = self.members.get(&peer_id).copied() else {
                    // The allow list refuses these; reaching here means the set changed
                    // while the handshake ran.
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                };
                if self.connected.insert(peer_id, member.key).is_none() {
                    info!(
                        peer = %member.key,
                        role = ?member.role,
                        address = %endpoint.get_remote_address(),
                        "peer connected"
                    );
                    self.emit(NetworkEvent::PeerConnected(member.key));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                if num_established > 0 {
                    return;
                }
                if let Some(target) = self.dial_targets.get_mut(&peer_id) {
                    // Redial at once; repeated failures back off from there.
                    target.next_at = Instant::now();
                }
                if let Some(key) = self.connected.remove(&peer_id) {
                    let cause = cause.map(|c| c.to_string());
                    info!(peer = %key, cause = cause.as_deref().unwrap_or("closed"), "peer disconnected");
                    self.emit(NetworkEvent::PeerDisconnected(key));
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                peer_id,
                ..
            } => {
                if let libp2p::swarm::ListenError::Denied { cause } = &error {
                    self.count_refusal(peer_id, cause);
                }
                info!(
                    address = %send_back_addr,
                    peer_id = ?peer_id,
                    error = %error,
                    "incoming connection refused or failed"
                );
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                if let libp2p::swarm::DialError::Denied { cause } = &error {
                    self.count_refusal(peer_id, cause);
                }
                debug!(peer_id = ?peer_id, error = %error, "dial failed");
            }
            _ => {}
        }
    }

    /// Counts a connection one of the gating behaviours refused, by which and why.
    fn count_refusal(&self, peer: Option<PeerId>, cause: &libp2p::swarm::ConnectionDenied) {
        let reason = if cause.downcast_ref::<allow_block_list::Blocked>().is_some() {
            // The cut-off list and the test gate refuse with the same error.
            match peer {
                Some(peer) if self.gated.contains(&peer) => "gated",
                _ => "blocked",
            }
        } else if cause
            .downcast_ref::<allow_block_list::NotAllowed>()
            .is_some()
        {
            "not_allowed"
        } else if cause
            .downcast_ref::<connection_limits::Exceeded>()
            .is_some()
        {
            "limit"
        } else if cause.downcast_ref::<TooManyHandshakes>().is_some() {
            "address_limit"
        } else {
            "other"
        };
        self.config.counters.connections_refused.inc(reason);
    }

    /// The key of a member peer; `None` for others and for gated peers, whose messages
    /// still in flight when the gate closed are dropped.
    fn member_key(&self, peer: &PeerId) -> Option<PublicKey> {
        if self.gated.contains(peer) {
            return None;
        }
        self.members.get(peer).map(|m| m.key)
    }

    fn on_direct(&mut self, event: request_response::Event<Frame, Frame>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => match (request, self.member_key(&peer)) {
                (Ok(bytes), Some(from)) => {
                    let ack = self
                        .swarm
                        .behaviour_mut()
                        .direct
                        .send_response(channel, Ok(Vec::new()));
                    if ack.is_err() {
                        debug!(peer = %from, "direct message ack not sent");
                    }
                    self.emit(NetworkEvent::Direct { from, bytes });
                }
                (Ok(_), None) => {
                    debug!(peer_id = %peer, "direct message from a non-member dropped")
                }
                (Err(e), _) => self.cut_off(
                    peer,
                    "malformed_direct",
                    &format!("malformed direct message: {e}"),
                ),
            },
            Event::Message {
                peer,
                message: Message::Response { response, .. },
                ..
            } => {
                if let Err(e) = response {
                    self.cut_off(
                        peer,
                        "malformed_direct_ack",
                        &format!("malformed direct message ack: {e}"),
                    );
                }
            }
            Event::OutboundFailure { peer, error, .. } => {
                debug!(peer_id = %peer, error = %error, "direct message not delivered");
            }
            Event::InboundFailure { peer, error, .. } => {
                debug!(peer_id = %peer, error = %error, "inbound direct message failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    fn on_sync(&mut self, event: request_response::Event<Frame, Frame>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => match (request, self.member_key(&peer)) {
                (Ok(bytes), Some(from)) => {
                    // The task holds only a weak sender; if no handle is left, nobody could
                    // answer anyway.
                    if let Some(commands) = self.commands_weak.upgrade() {
                        let responder =
                            SyncResponder::new(channel, commands, self.config.message_bytes_max);
                        self.emit(NetworkEvent::SyncRequest {
                            from,
                            bytes,
                            responder,
                        });
                    }
                }
                (Ok(_), None) => debug!(peer_id = %peer, "sync request from a non-member dropped"),
                (Err(e), _) => self.cut_off(
                    peer,
                    "malformed_sync_request",
                    &format!("malformed sync request: {e}"),
                ),
            },
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let pending = self.pending_requests.remove(&request_id);
                let result = match response {
                    Ok(bytes) => Ok(bytes),
                    Err(e) => {
                        self.cut_off(
                            peer,
                            "malformed_sync_response",
                            &format!("malformed sync response: {e}"),
                        );
                        Err(e.to_string())
                    }
                };
                if let Some((key, reply)) = pending {
                    let _ = reply.send(
                        result.map_err(|reason| NetworkError::RequestFailed { peer: key, reason }),
                    );
                }
            }
            Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some((peer, reply)) = self.pending_requests.remove(&request_id) {
                    debug!(peer = %peer, error = %error, "sync request failed");
                    let error = match error {
                        request_response::OutboundFailure::Timeout => {
                            NetworkError::Timeout { peer }
                        }
                        other => NetworkError::RequestFailed {
                            peer,
                            reason: other.to_string(),
                        },
                    };
                    let _ = reply.send(Err(error));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                debug!(peer_id = %peer, error = %error, "inbound sync request failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        else {
            return;
        };
        let topic = self.topics.get(&message.topic).copied();
        let author = message
            .source
            .and_then(|peer| self.member_key(&peer))
            .filter(|_| !self.gated.contains(&propagation_source));
        let (acceptance, event) = match (topic, author) {
            _ if message.data.len() > self.config.message_bytes_max => {
                let reason = format!(
                    "gossip message of {} bytes, above the limit of {}",
                    message.data.len(),
                    self.config.message_bytes_max
                );
                self.cut_off(propagation_source, "oversized_gossip", &reason);
                (MessageAcceptance::Reject, None)
            }
            (Some(topic), Some(from)) => (
                MessageAcceptance::Accept,
                Some(NetworkEvent::Gossip {
                    from,
                    topic,
                    bytes: message.data,
                }),
            ),
            // An author outside the set may be a peer set change still propagating: not
            // proof of misbehaviour by the forwarder, so dropped without penalty.
            _ => {
                debug!(peer_id = %propagation_source, "gossip from an unknown author or topic dropped");
                (MessageAcceptance::Ignore, None)
            }
        };
        self.swarm
            .behaviour_mut()
            .gossip
            .report_message_validation_result(&message_id, &propagation_source, acceptance);
        if let Some(event) = event {
            self.emit(event);
        }
    }
}

/// Binds the listener and waits until it reports its address (with the real port).
async fn listen(
    swarm: &mut Swarm<Behaviour>,
    address: &Multiaddr,
) -> Result<Vec<Multiaddr>, NetworkError> {
    let refused = |reason: String| NetworkError::Listen {
        address: address.clone(),
        reason,
    };
    swarm
        .listen_on(address.clone())
        .map_err(|e| refused(e.to_string()))?;
    let first_address = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => return Ok(address),
                SwarmEvent::ListenerError { error, .. } => return Err(refused(error.to_string())),
                SwarmEvent::ListenerClosed { reason, .. } => {
                    let reason = reason.err().map(|e| e.to_string());
                    return Err(refused(
                        reason.unwrap_or_else(|| "listener closed".to_string()),
                    ));
                }
                _ => {}
            }
        }
    };
    let first = tokio::time::timeout(LISTEN_TIMEOUT, first_address)
        .await
        .map_err(|_| refused("no listen address reported in time".to_string()))??;
    let mut addresses: Vec<Multiaddr> = swarm.listeners().cloned().collect();
    if !addresses.contains(&first) {
        addresses.push(first);
    }
    Ok(addresses)
}

/// 250 ms, doubling with each failed attempt, up to `max`.
fn redial_delay(attempts: u32, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempts.min(16)).unwrap_or(u32::MAX);
    REDIAL_DELAY_MIN.saturating_mul(factor).min(max)
}

fn event_kind(event: &NetworkEvent) -> &'static str {
    match event {
        NetworkEvent::Direct { .. } => "direct",
        NetworkEvent::Gossip { .. } => "gossip",
        NetworkEvent::SyncRequest { .. } => "sync_request",
        NetworkEvent::PeerConnected(_) => "peer_connected",
        NetworkEvent::PeerDisconnected(_) => "peer_disconnected",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redial_backs_off_and_is_capped() {
        let max = Duration::from_secs(5);
        assert_eq!(redial_delay(0, max), Duration::from_millis(250));
        assert_eq!(redial_delay(1, max), Duration::from_millis(500));
        assert_eq!(redial_delay(3, max), Duration::from_secs(2));
        assert_eq!(redial_delay(5, max), max);
        assert_eq!(redial_delay(u32::MAX, max), max);
    }
}
