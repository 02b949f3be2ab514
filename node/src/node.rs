//! A whole node: the network task, the router that decodes what peers send and hands it on,
//! the chain task, the sync task and the outbox that carries the chain task's network
//! commands. Each is a task owning its state, joined by bounded channels:
//!
//! ```text
//! network ──events──▶ router ──ChainInput──▶ chain ──Outbound──▶ outbox ──▶ network
//!                       └──SyncRequest──▶ sync ──ChainInput (synced blocks)──▶ chain
//! API ──Submission──▶ chain
//! ```
//!
//! An empty node with `[state_sync]` on starts the network first and installs a peer's
//! snapshot (`chain::state_sync`) before the chain opens on it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;
use tally_consensus::{Evidence, Message, TimeoutConfig};
use tally_contracts::EncodedTransaction;
use tally_crypto::{PublicKey, SigningKey};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::chain::state_sync::{Joiner, StateSyncError};
use crate::chain::{
    Chain, ChainError, ChainInput, ChainSettings, Outbound, SyncTask,
    sync::SYNC_REQUESTS_QUEUED_MAX,
};
use crate::config::{Config, Mode};
use crate::genesis::GenesisFile;
use crate::mempool::MempoolLimits;
use crate::metrics::Metrics;
use crate::network::{self, GossipTopic, NetworkError, NetworkEvent, NetworkHandle};
use crate::service::{NodeContext, Submission, UpdateSubmission};
use crate::snapshots::SnapshotStore;
use crate::storage::{Storage, StorageError};
use crate::validator_update::{UpdateError, ValidatorUpdate};

/// Submissions waiting for the chain task; a full queue answers "busy".
pub const SUBMISSIONS_MAX: usize = 8192;
/// Validator-set changes from the API waiting for the chain task: governance is rare, so a
/// few; a full queue is answered busy.
const UPDATE_SUBMISSIONS_MAX: usize = 16;
/// How far ahead of its sender's next nonce a transaction may wait in the mempool.
pub const NONCE_AHEAD_MAX: u64 = 1_024;
/// The most bytes one gossiped transaction batch decodes to (beside the network's limit).
const TX_BATCH_COUNT_MAX: usize = 4_096;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("network: {0}")]
    Network(#[from] NetworkError),
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    #[error("state sync: {0}")]
    StateSync(#[from] StateSyncError),
    #[error("webhooks: {0}")]
    Webhooks(#[from] crate::webhooks::WebhookError),
    #[error("the chain task stopped")]
    Stopped,
    #[error("a task panicked: {0}")]
    Join(String),
    #[error(
        "test fault modes are not compiled into this build (tally-node's `test-faults` feature)"
    )]
    TestFaultsNotBuilt,
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    pub context: NodeContext,
    pub network: NetworkHandle,
    pub listen_addresses: Vec<Multiaddr>,
    pub public_key: PublicKey,
    chain_inputs: mpsc::Sender<ChainInput>,
    shutdown: watch::Sender<bool>,
    chain: JoinHandle<Result<(), ChainError>>,
    tasks: Vec<JoinHandle<()>>,
    network_task: JoinHandle<()>,
}

/// What a node is started with besides its configuration file's contents.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub timeouts: TimeoutConfig,
    /// Whether to poll peers for blocks (on in every real node).
    pub sync: bool,
}

impl Default for NodeOptions {
    fn default() -> NodeOptions {
        NodeOptions {
            timeouts: TimeoutConfig::default(),
            sync: true,
        }
    }
}

fn usize_of(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

impl Node {
    /// Opens storage, applies or checks genesis, starts the network with the genesis
    /// validators as the peer set, and starts the chain, sync, router and outbox tasks.
    pub async fn start(
        config: &Config,
        key: SigningKey,
        genesis: &GenesisFile,
        options: NodeOptions,
    ) -> Result<Node, NodeError> {
        // `Config::load` refuses them already; this covers a configuration built in code.
        if !cfg!(feature = "test-faults") && !config.test_faults.is_honest() {
            return Err(NodeError::TestFaultsNotBuilt);
        }
        let storage = Storage::open_with_cache(
            &config.data_dir,
            &genesis.chain_id,
            config.limits.storage_cache_bytes,
        )?;
        if config.mode == Mode::Validator
            && storage.head()?.is_some_and(|h| h > 0)
            && storage.signer_record()?.is_none()
        {
            // Restored, or its signer.redb lost: it may have signed at the height now open.
            warn!(
                data_dir = %config.data_dir.display(),
                "this validator's directory holds a chain but no signer's record: if its key \
                 signed votes before (on this disk or another), stop it and bring that \
                 signer.redb here, or it may sign twice at one height"
            );
        }
        if let Some(keep) = config.pruning.keep_blocks {
            info!(
                keep_blocks = keep,
                "pruning: older blocks keep only their header and certificate; a peer down for \
                 longer, or restored from an older backup, must sync them from a node that \
                 keeps every block"
            );
        }
        if let (Some(keep), Some(snapshots)) = (config.pruning.keep_blocks, config.snapshots)
            && keep <= snapshots.interval_blocks
        {
            warn!(
                keep_blocks = keep,
                interval_blocks = snapshots.interval_blocks,
                "a snapshot is offered only while the blocks after it are kept whole: with the \
                 pruning window no longer than the snapshot interval, most are never offered"
            );
        }
        let metrics = Arc::new(Metrics::new());
        let limits = &config.limits;
        let (inputs_tx, inputs_rx) = mpsc::channel(usize_of(limits.chain_inputs_max));
        let (outbound_tx, outbound_rx) = mpsc::channel(usize_of(limits.outbound_max));
        let settings = ChainSettings {
            mode: config.mode,
            key: key.clone(),
            mempool: MempoolLimits {
                txs_max: usize_of(limits.mempool_txs_max),
                bytes_max: usize_of(limits.mempool_bytes_max),
                nonce_ahead_max: NONCE_AHEAD_MAX,
            },
            block_txs_max: usize_of(limits.block_txs_max).min(crate::block::BLOCK_TXS_MAX),
            block_bytes_max: usize_of(limits.block_bytes_max),
            key_cache_entries: usize_of(limits.key_cache_entries),
            evidence_pending_max: usize_of(limits.evidence_pending_max),
            evidence_remembered_max: usize_of(limits.evidence_remembered_max),
            verified_blocks_max: usize_of(limits.verified_blocks_max),
            timeouts: options.timeouts,
            observers: config.observers.clone(),
            data_dir: config.data_dir.clone(),
            byzantine: config.test_faults.byzantine,
            keep_blocks: config.pruning.keep_blocks,
            snapshots: config
                .snapshots
                .map(|s| (s.interval_blocks, SnapshotStore::new(&config.data_dir, &s))),
        };
        let mut network_config = config.network();
        network_config.counters = metrics.network.clone();
        // The genesis names who may connect; the chain task widens it as the set changes.
        network_config.peer_set.validators = genesis
            .validators
            .iter()
            .map(|v| v.public_key)
            .collect::<BTreeSet<_>>();
        let mut network = network::start(&key, network_config).await?;
        let response_bytes_max = usize_of(limits.message_bytes_max).saturating_sub(1024);
        if config.state_sync.enable
            && (storage.genesis_hash()?.is_none() || storage.state_sync_interrupted()?)
        {
            let joiner = Joiner {
                network: network.handle.clone(),
                storage: storage.clone(),
                chain_id: genesis.chain_id.clone(),
                genesis_hash: genesis.hash(),
                genesis_validators: genesis.validator_set().map_err(ChainError::from)?,
                discovery: Duration::from_millis(config.state_sync.discovery_ms),
                peers_configured: config.peers.len(),
                fetchers: usize_of(config.state_sync.fetchers).max(1),
                response_bytes_max: usize_of(limits.message_bytes_max),
                metrics: metrics.clone(),
            };
            let joined = join_draining(&joiner, &mut network.events).await;
            if let Err(e) = joined {
                network.handle.shutdown().await.ok();
                return Err(e.into());
            }
        }
        if let Some(from) = storage.synced_from()? {
            metrics
                .synced_from_height
                .set(i64::try_from(from).unwrap_or(i64::MAX));
        }
        let parts = Chain::open(
            settings,
            storage.clone(),
            genesis,
            metrics.clone(),
            outbound_tx,
            inputs_tx.clone(),
        )?;
        // The API answers the validator set in force; storage keeps only later changes.
        storage.put_genesis_validators(&tally_consensus::encode(&genesis.validators))?;
        let handle = network.handle.clone();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (submit_tx, submit_rx) = mpsc::channel::<Submission>(SUBMISSIONS_MAX);
        let (updates_tx, updates_rx) = mpsc::channel::<UpdateSubmission>(UPDATE_SUBMISSIONS_MAX);
        let (sync_tx, sync_rx) = mpsc::channel(SYNC_REQUESTS_QUEUED_MAX);
        let pending = parts.pending.clone();
        let webhooks = match &config.webhooks {
            Some(settings) => Some(crate::webhooks::Webhooks::start(
                settings.clone(),
                &config.data_dir,
                storage.clone(),
                parts.committed.clone(),
                key.clone(),
                metrics.clone(),
            )?),
            None => None,
        };
        let context = NodeContext {
            chain_id: genesis.chain_id.clone(),
            mode: config.mode,
            storage: storage.clone(),
            submit: submit_tx,
            validator_updates: updates_tx,
            committed: parts.committed.clone(),
            pending: Arc::new(move |hash| match pending.read() {
                Ok(view) => view.contains(hash),
                Err(poisoned) => poisoned.into_inner().contains(hash),
            }),
            metrics: metrics.clone(),
            data_dir: config.data_dir.clone(),
            webhooks,
        };
        let chain = tokio::spawn(parts.chain.run(inputs_rx, submit_rx, shutdown_rx.clone()));
        let sync = SyncTask {
            storage,
            network: handle.clone(),
            committed: parts.committed,
            chain: inputs_tx.clone(),
            requests: sync_rx,
            metrics: metrics.clone(),
            response_bytes_max,
            fetch: options.sync,
            snapshots: config
                .snapshots
                .map(|s| SnapshotStore::new(&config.data_dir, &s)),
            corrupt_snapshot_chunks: config.test_faults.corrupt_snapshot_chunks,
        };
        let router = Router {
            chain: inputs_tx.clone(),
            sync: sync_tx,
            network: handle.clone(),
            metrics,
            message_bytes_max: usize_of(limits.message_bytes_max),
            peers: BTreeSet::new(),
        };
        let mut tasks = vec![
            tokio::spawn(sync.run(shutdown_rx.clone())),
            tokio::spawn(router.run(network.events, shutdown_rx.clone())),
            tokio::spawn(outbox(handle.clone(), outbound_rx)),
            tokio::spawn(forward_updates(updates_rx, inputs_tx.clone())),
        ];
        // Without its admin socket a node still runs; only `tally node backup` must wait
        // until it stops.
        match crate::admin::bind(&config.data_dir) {
            Ok((listener, owner)) => tasks.push(tokio::spawn(crate::admin::serve(
                listener,
                owner,
                context.storage.clone(),
                shutdown_rx.clone(),
            ))),
            Err(e) => warn!(error = %e, "no admin socket: backups only while the node is stopped"),
        }
        info!(public_key = %key.public_key(), addresses = ?network.listen_addresses, "node running");
        Ok(Node {
            context,
            network: handle,
            listen_addresses: network.listen_addresses,
            public_key: key.public_key(),
            chain_inputs: inputs_tx,
            shutdown: shutdown_tx,
            chain,
            tasks,
            network_task: network.task,
        })
    }

    /// Submits a validator-set update here; it is gossiped and waits for a proposer.
    pub async fn submit_validator_update(
        &self,
        update: ValidatorUpdate,
    ) -> Result<Result<(), UpdateError>, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.chain_inputs
            .send(ChainInput::ValidatorUpdate {
                update,
                reply: Some(reply),
            })
            .await
            .map_err(|_| NodeError::Stopped)?;
        answer.await.map_err(|_| NodeError::Stopped)
    }

    /// Hands decided blocks to the chain task exactly as the sync task does with what a peer
    /// served, as if `from` had served them. Test equipment: lets a test play a peer that
    /// serves a forged block, without a second network stack.
    pub async fn deliver_synced(
        &self,
        from: PublicKey,
        blocks: Vec<crate::chain::SyncedBlock>,
    ) -> Result<(), NodeError> {
        self.chain_inputs
            .send(ChainInput::Synced { from, blocks })
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Resolves when the chain task stops by itself (an error) rather than by shutdown.
    pub fn is_finished(&self) -> bool {
        self.chain.is_finished()
    }

    /// Stops accepting, lets the chain task finish its batch and flush, then stops the
    /// network.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        let _ = self.shutdown.send(true);
        if let Some(webhooks) = &self.context.webhooks {
            webhooks.stop();
        }
        let chain = self
            .chain
            .await
            .map_err(|e| NodeError::Join(e.to_string()))?;
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
        self.network.shutdown().await.ok();
        let _ = self.network_task.await;
        chain?;
        Ok(())
    }

    /// Stops every task at once without flushing anything: what a crash looks like to the
    /// data directory (sled's committed batches survive; nothing else is written).
    pub async fn kill(self) {
        if let Some(webhooks) = &self.context.webhooks {
            webhooks.stop();
        }
        self.chain.abort();
        let _ = self.chain.await;
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
        self.network.shutdown().await.ok();
        let _ = self.network_task.await;
    }
}

/// Runs a state sync while the network's events go unanswered: the chain is not open yet,
/// so consensus messages and peers' requests are dropped (peers time out and ask another).
async fn join_draining(
    joiner: &Joiner,
    events: &mut mpsc::Receiver<NetworkEvent>,
) -> Result<Option<u64>, StateSyncError> {
    let joining = joiner.join();
    tokio::pin!(joining);
    let mut open = true;
    loop {
        tokio::select! {
            joined = &mut joining => return joined,
            event = events.recv(), if open => open = event.is_some(),
        }
    }
}

/// Hands validator-set changes from the API to the chain task, which checks each.
async fn forward_updates(
    mut updates: mpsc::Receiver<UpdateSubmission>,
    chain: mpsc::Sender<ChainInput>,
) {
    while let Some(UpdateSubmission { update, reply }) = updates.recv().await {
        let input = ChainInput::ValidatorUpdate {
            update,
            reply: Some(reply),
        };
        if chain.send(input).await.is_err() {
            return;
        }
    }
}

/// Carries the chain task's network commands, so the chain task never waits on the network.
async fn outbox(network: NetworkHandle, mut commands: mpsc::Receiver<Outbound>) {
    while let Some(command) = commands.recv().await {
        let result = match command {
            Outbound::Broadcast(bytes) => network.broadcast_direct(bytes).await.map(|_| ()),
            Outbound::SendTo(peer, bytes) => network.send_direct(peer, bytes).await,
            Outbound::Publish(topic, bytes) => match network.publish(topic, bytes).await {
                // Alone on the network, or the same bytes again: nothing to do.
                Err(NetworkError::NoSubscribers(_) | NetworkError::Duplicate) => Ok(()),
                other => other,
            },
            Outbound::Report(peer, reason) => network.report(peer, reason).await,
            Outbound::PeerSet(set) => network.set_peer_set(set).await,
        };
        if let Err(e) = result {
            debug!(error = %e, "network command failed");
            if matches!(e, NetworkError::Stopped) {
                return;
            }
        }
    }
}

/// Decodes what peers send (bounded, canonical) and hands it to its consumer; garbage is
/// reported so the network cuts the peer off.
struct Router {
    chain: mpsc::Sender<ChainInput>,
    sync: mpsc::Sender<(PublicKey, Vec<u8>, network::SyncResponder)>,
    network: NetworkHandle,
    metrics: Arc<Metrics>,
    message_bytes_max: usize,
    peers: BTreeSet<PublicKey>,
}

impl Router {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<NetworkEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let event = tokio::select! {
                _ = shutdown.changed() => return,
                event = events.recv() => match event {
                    Some(e) => e,
                    None => return,
                },
            };
            if self.route(event).await.is_err() {
                return;
            }
        }
    }

    async fn garbage(&self, peer: PublicKey, what: &str, error: impl std::fmt::Display) {
        warn!(%peer, what, %error, "malformed message dropped");
        let _ = self
            .network
            .report(peer, format!("malformed {what}: {error}"))
            .await;
    }

    /// Err when the chain task is gone.
    async fn route(&mut self, event: NetworkEvent) -> Result<(), ()> {
        let input = match event {
            NetworkEvent::Direct { from, bytes } => match Message::decode(&bytes) {
                Ok(message) => ChainInput::Message { from, message },
                Err(e) => {
                    self.metrics.consensus_messages_dropped.inc("undecodable");
                    self.garbage(from, "consensus message", e).await;
                    return Ok(());
                }
            },
            NetworkEvent::Gossip { from, topic, bytes } => match topic {
                GossipTopic::Transactions => match self.decode_txs(&bytes) {
                    Ok(txs) => ChainInput::Transactions { from, txs },
                    Err(e) => {
                        self.garbage(from, "transaction batch", e).await;
                        return Ok(());
                    }
                },
                GossipTopic::Evidence => {
                    match tally_consensus::decode::<Evidence>(&bytes, self.message_bytes_max) {
                        Ok(evidence) => ChainInput::Evidence { from, evidence },
                        Err(e) => {
                            self.garbage(from, "evidence", e).await;
                            return Ok(());
                        }
                    }
                }
                GossipTopic::Governance => {
                    match tally_consensus::decode::<ValidatorUpdate>(&bytes, self.message_bytes_max)
                    {
                        Ok(update) => ChainInput::ValidatorUpdate {
                            update,
                            reply: None,
                        },
                        Err(e) => {
                            self.garbage(from, "validator update", e).await;
                            return Ok(());
                        }
                    }
                }
            },
            NetworkEvent::SyncRequest {
                from,
                bytes,
                responder,
            } => {
                // A full queue drops the responder: the peer's request fails at once and it
                // asks again later.
                let _ = self.sync.try_send((from, bytes, responder));
                return Ok(());
            }
            NetworkEvent::PeerConnected(peer) => {
                self.peers.insert(peer);
                self.metrics.peers.set(self.peers.len() as i64);
                debug!(%peer, "peer connected");
                return Ok(());
            }
            NetworkEvent::PeerDisconnected(peer) => {
                self.peers.remove(&peer);
                self.metrics.peers.set(self.peers.len() as i64);
                debug!(%peer, "peer disconnected");
                return Ok(());
            }
        };
        self.chain.send(input).await.map_err(|_| ())
    }

    fn decode_txs(&self, bytes: &[u8]) -> Result<Vec<EncodedTransaction>, String> {
        let batch: Vec<Vec<u8>> =
            tally_consensus::decode(bytes, self.message_bytes_max).map_err(|e| e.to_string())?;
        if batch.len() > TX_BATCH_COUNT_MAX {
            return Err(format!(
                "{} transactions, limit {TX_BATCH_COUNT_MAX}",
                batch.len()
            ));
        }
        batch
            .into_iter()
            .map(|b| EncodedTransaction::decode(b).map_err(|e| e.to_string()))
            .collect()
    }
}

/// Waits until the node has committed `height`, up to `timeout`.
pub async fn wait_for_height(
    committed: &mut watch::Receiver<u64>,
    height: u64,
    timeout: Duration,
) -> bool {
    tokio::time::timeout(timeout, committed.wait_for(|h| *h >= height))
        .await
        .is_ok_and(|r| r.is_ok())
}
