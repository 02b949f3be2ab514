//! The chain task: one task owning consensus, the mempool, the verification caches and
//! execution. Everything reaches it through one bounded channel of [`ChainInput`]s (network
//! messages decoded by the router, gossiped transactions, timer firings, synced blocks) plus
//! the API's [`Submission`]s; what it asks of the network leaves through a bounded channel
//! of [`Outbound`] commands, so it never waits on the network.
//!
//! Consensus outputs are carried out in the order given: a `Broadcast` leaves only after the
//! signer recorded it (the [`DurableSignerStore`] commits durably before returning); a `Decision` is
//! executed and committed before the outputs after it (they belong to the next height).

mod admission;
pub mod audit;
mod commit;
mod idle;
mod pool;
mod proposal;
mod relay;
mod signer_store;
pub mod state_sync;
pub mod sync;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tally_consensus::{
    BlockHash, Config as ConsensusConfig, Consensus, Evidence, Height, Input, Message, Output,
    Signer, Timeout, TimeoutConfig, ValidatorSet, ValidatorSets,
};
use tally_contracts::{
    ChainHead, EncodedTransaction, Ledger, StateStore, VerifiedTransaction, verify_transactions,
};
use tally_crypto::{Hash, KeyCache, PublicKey, SigningKey};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::config::{Byzantine, Mode};
use crate::faults::{Faults, Recipients};
use crate::genesis::GenesisFile;
use crate::mempool::{Mempool, MempoolLimits};
use crate::metrics::Metrics;
use crate::network::{GossipTopic, PeerSet};
use crate::service::{Submission, SubmitError};
use crate::snapshots::SnapshotStore;
use crate::storage::{Storage, StorageError};
use crate::validator_update::{UpdateError, ValidatorUpdate};

pub use pool::{PoolEntry, sender_key};
pub use signer_store::DurableSignerStore;
pub use sync::{SyncTask, SyncedBlock};

/// The most inputs taken from the channel at once (their signatures verified in one batch).
const INPUT_BATCH_MAX: usize = 1024;
/// How often this node's own consensus messages are sent again (peers may have missed them).
const RESEND_INTERVAL_MS: u64 = 1_000;
/// How often transactions admitted from the API are gossiped, in one message.
const GOSSIP_INTERVAL_MS: u64 = 20;
/// The most transactions in one gossip message.
const GOSSIP_TXS_MAX: usize = 2_048;
/// A proposed block's time may be at most this far ahead of the checker's clock.
pub const BLOCK_TIME_DRIFT_MS_MAX: u64 = 2_000;
/// The most validator updates kept for a later block.
const PENDING_UPDATES_MAX: usize = 16;
/// Where a submitter hears whether its transaction was admitted.
type SubmitReply = oneshot::Sender<Result<Hash, SubmitError>>;

/// Where a transaction being admitted came from.
enum Origin {
    /// The API: answer here.
    Api(SubmitReply),
    /// A peer's gossip: refusals count against this peer.
    Peer(PublicKey),
}

/// What the chain task is fed.
#[derive(Debug)]
pub enum ChainInput {
    /// A consensus message from a validator, decoded, its signature not yet checked.
    Message {
        from: PublicKey,
        message: Message,
    },
    /// Transactions gossiped by a peer, decoded, signatures not yet checked.
    Transactions {
        from: PublicKey,
        txs: Vec<EncodedTransaction>,
    },
    Evidence {
        from: PublicKey,
        evidence: Evidence,
    },
    /// A validator-set update, from a peer's gossip (no reply) or submitted here.
    ValidatorUpdate {
        update: ValidatorUpdate,
        reply: Option<oneshot::Sender<Result<(), UpdateError>>>,
    },
    /// A timeout consensus scheduled has fired.
    Timeout(Timeout),
    /// The heartbeat of this height is due: an idle height starts now (see [`idle`]).
    Heartbeat(Height),
    /// Decided blocks fetched from a peer, in height order.
    Synced {
        from: PublicKey,
        blocks: Vec<SyncedBlock>,
    },
}

impl ChainInput {
    /// A fixed name for the kind of input, for metrics.
    fn kind(&self) -> &'static str {
        match self {
            ChainInput::Message { .. } => "message",
            ChainInput::Transactions { .. } => "transactions",
            ChainInput::Evidence { .. } => "evidence",
            ChainInput::ValidatorUpdate { .. } => "validator_update",
            ChainInput::Timeout(_) => "timeout",
            ChainInput::Heartbeat(_) => "heartbeat",
            ChainInput::Synced { .. } => "synced",
        }
    }
}

/// What the chain task asks of the network.
#[derive(Debug)]
pub enum Outbound {
    Broadcast(Vec<u8>),
    /// A consensus message to one validator only (test fault modes alone send these).
    SendTo(PublicKey, Vec<u8>),
    Publish(GossipTopic, Vec<u8>),
    Report(PublicKey, String),
    PeerSet(PeerSet),
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("the ledger failed: {0}")]
    Ledger(#[from] tally_contracts::ExecutionError),
    #[error("genesis: {0}")]
    Genesis(String),
    #[error("the data directory was started from another genesis")]
    OtherGenesis,
    #[error(
        "a state sync into this data directory was interrupted: start the node again with \
         [state_sync] enable = true to finish it, or empty the directory to replay from genesis"
    )]
    StateSyncInterrupted,
    #[error("consensus: {0}")]
    Consensus(#[from] tally_consensus::Error),
    #[error("decided block {height} cannot be applied: {reason}")]
    BadDecidedBlock { height: u64, reason: String },
}

/// How the chain task is set up.
#[derive(Debug, Clone)]
pub struct ChainSettings {
    pub mode: Mode,
    pub key: SigningKey,
    pub mempool: MempoolLimits,
    pub block_txs_max: usize,
    pub block_bytes_max: usize,
    /// Parsed public keys kept for verification (`[limits] key_cache_entries`).
    pub key_cache_entries: usize,
    /// Evidence kept for a later block (`[limits] evidence_pending_max`).
    pub evidence_pending_max: usize,
    /// Committed evidence remembered against repeats (`[limits] evidence_remembered_max`).
    pub evidence_remembered_max: usize,
    /// Proposed blocks kept verified at one height (`[limits] verified_blocks_max`).
    pub verified_blocks_max: usize,
    pub timeouts: TimeoutConfig,
    /// Keys allowed to connect besides the validators.
    pub observers: BTreeSet<PublicKey>,
    /// The node's data directory, where alarm evidence is kept (see [`audit`]).
    pub data_dir: std::path::PathBuf,
    /// Test-only Byzantine behaviour (see [`crate::faults`]); `None` for an honest node.
    pub byzantine: Option<Byzantine>,
    /// `[pruning] keep_blocks`: blocks kept whole; older ones keep their header and
    /// certificate. `None` keeps everything.
    pub keep_blocks: Option<u64>,
    /// `[snapshots]`: the state is snapshot after every block whose height is a multiple of
    /// the interval, into the store. `None` takes none.
    pub snapshots: Option<(u64, SnapshotStore)>,
}

/// The chain task's state. See the module documentation.
pub struct Chain {
    chain_id: String,
    mode: Mode,
    storage: Storage,
    consensus: Consensus<DurableSignerStore>,
    mempool: Mempool<PoolEntry>,
    /// Hashes in the mempool, for the API's status queries.
    pending_view: Arc<RwLock<BTreeSet<Hash>>>,
    keys: KeyCache,
    /// Transactions of blocks validated at the current height, by block hash, to execute
    /// without verifying again.
    validated: BTreeMap<BlockHash, Vec<VerifiedTransaction>>,
    head: ChainHead,
    head_hash: Hash,
    /// Every scheduled change of the validator set: (effective height, validators).
    schedule: Vec<(u64, Vec<tally_consensus::Validator>)>,
    pending_evidence: Vec<Evidence>,
    /// Evidence committed lately, oldest first (`settings.evidence_remembered_max`).
    committed_evidence: VecDeque<Evidence>,
    pending_updates: Vec<ValidatorUpdate>,
    to_gossip: Vec<Vec<u8>>,
    /// Set while a snapshot is being cut (one at a time).
    snapshot_taking: Arc<std::sync::atomic::AtomicBool>,
    settings: ChainSettings,
    metrics: Arc<Metrics>,
    committed: watch::Sender<u64>,
    outbound: mpsc::Sender<Outbound>,
    /// For timers to feed their timeouts back.
    inputs: mpsc::Sender<ChainInput>,
    /// Set when this node found its state differs from the chain: it stops following.
    halted: bool,
    /// Outputs after a decision, carried out on the next turn of the loop so a run of
    /// decisions (a lone validator, a catching-up node) cannot starve the other inputs.
    deferred: Vec<Output>,
    /// Set only by a test's `[test_faults]`: what this validator does wrong.
    faults: Option<Faults>,
    /// Per gossiping peer, its transactions refused for a key that did not sign.
    strikes: admission::Strikes,
    /// Round 0 held back while a height has nothing to commit (see [`idle`]).
    idle: idle::IdleWait,
    /// The genesis's heartbeat: the longest an idle chain goes without a block.
    heartbeat_ms: u64,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("chain_id", &self.chain_id)
            .field("height", &self.consensus.height())
            .field("mempool", &self.mempool.len())
            .finish_non_exhaustive()
    }
}

/// What starting the chain task gives the rest of the node.
#[derive(Debug)]
pub struct ChainParts {
    pub chain: Chain,
    pub committed: watch::Receiver<u64>,
    pub pending: Arc<RwLock<BTreeSet<Hash>>>,
}

/// Room for a valid value's prevotes and framing beside its block.
const VALID_RECORD_OVERHEAD_BYTES: usize = 256 * 1024;

/// Hands consensus the valid value stored before a restart (Tendermint's WAL, the liveness
/// half): a validator that crashed after a block got a quorum of prevotes re-proposes that
/// block when its turn comes. A record for another height is stale and ignored; one that
/// does not decode or whose prevotes do not prove it is logged and ignored, as the node is
/// safe without it (the signer's record keeps the lock).
fn recover_valid_value(
    storage: &Storage,
    consensus: &mut Consensus<DurableSignerStore>,
    block_bytes_max: usize,
) {
    let bytes = match storage.valid_record() {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return,
        Err(e) => {
            warn!(error = %e, "the stored valid value cannot be read; starting without it");
            return;
        }
    };
    let limit = block_bytes_max.saturating_add(VALID_RECORD_OVERHEAD_BYTES);
    let record: tally_consensus::ValidRecord = match tally_consensus::decode(&bytes, limit) {
        Ok(record) => record,
        Err(e) => {
            warn!(error = %e, "the stored valid value does not decode; starting without it");
            return;
        }
    };
    if record.height != consensus.height() {
        return;
    }
    let (height, round) = (record.height.0, record.round.0);
    match consensus.recover(record) {
        Ok(()) => info!(
            height,
            round, "recovered the valid value stored before the restart"
        ),
        Err(e) => warn!(height, round, error = %e, "the stored valid value was refused"),
    }
}

impl Chain {
    /// Opens the chain from storage: applies genesis to an empty data directory (or checks
    /// a non-empty one belongs to it), rebuilds the validator sets, and starts consensus at
    /// the height after the stored head with the signer's stored record.
    pub fn open(
        settings: ChainSettings,
        storage: Storage,
        genesis: &GenesisFile,
        metrics: Arc<Metrics>,
        outbound: mpsc::Sender<Outbound>,
        inputs: mpsc::Sender<ChainInput>,
    ) -> Result<ChainParts, ChainError> {
        let chain_id = genesis.chain_id.clone();
        if storage.state_sync_interrupted()? {
            return Err(ChainError::StateSyncInterrupted);
        }
        match storage.genesis_hash()? {
            Some(hash) if hash == genesis.hash() => {}
            Some(_) => return Err(ChainError::OtherGenesis),
            None => {
                let outcome = genesis
                    .ledger
                    .apply(&storage)
                    .map_err(|e| ChainError::Genesis(e.to_string()))?;
                let writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = outcome
                    .writes
                    .into_iter()
                    .map(|w| (w.key, w.value))
                    .collect();
                storage.commit_genesis(&genesis.hash(), &writes)?;
                info!(chain_id, "genesis applied");
            }
        }
        let head = Ledger::chain_head(&storage)?
            .ok_or_else(|| ChainError::Genesis("no chain head after genesis".to_string()))?;
        // Kept whole, or only its header (pruned, or the snapshot a state sync started from).
        let head_hash = match head.height {
            0 => Hash::ZERO,
            h => storage
                .block_id(h)?
                .map(|id| id.0)
                .ok_or(StorageError::Damaged(format!("block {h} is missing")))?,
        };
        let mut sets = ValidatorSets::new(genesis.validator_set()?);
        let schedule: Vec<(u64, Vec<tally_consensus::Validator>)> =
            match storage.validator_schedule()? {
                Some(bytes) => tally_consensus::decode(&bytes, usize::MAX)?,
                None => Vec::new(),
            };
        for (at, validators) in &schedule {
            sets.schedule(Height(*at), ValidatorSet::new(validators.clone())?)?;
        }
        let signer = match settings.mode {
            Mode::Validator => Some(Signer::new(
                settings.key.clone(),
                &chain_id,
                DurableSignerStore::new(storage.clone()),
            )?),
            Mode::Audit => None,
        };
        let mut config = ConsensusConfig::new(&chain_id);
        config.timeouts = settings.timeouts;
        let height = Height(head.height.saturating_add(1));
        let mut consensus = Consensus::new(config, sets, height, signer);
        recover_valid_value(&storage, &mut consensus, settings.block_bytes_max);
        let (committed_tx, committed) = watch::channel(head.height);
        let pending_view = Arc::new(RwLock::new(BTreeSet::new()));
        metrics
            .height
            .set(i64::try_from(head.height).unwrap_or(i64::MAX));
        let faults = match (settings.byzantine, settings.mode) {
            (Some(byzantine), Mode::Validator) => {
                Some(Faults::new(byzantine, settings.key.clone(), &chain_id))
            }
            _ => None,
        };
        let mut chain = Chain {
            chain_id,
            mode: settings.mode,
            storage,
            consensus,
            mempool: Mempool::new(settings.mempool),
            pending_view: pending_view.clone(),
            keys: KeyCache::new(settings.key_cache_entries),
            validated: BTreeMap::new(),
            head,
            head_hash,
            schedule,
            pending_evidence: Vec::new(),
            committed_evidence: VecDeque::new(),
            pending_updates: Vec::new(),
            to_gossip: Vec::new(),
            settings,
            metrics,
            committed: committed_tx,
            outbound,
            inputs,
            halted: false,
            deferred: Vec::new(),
            faults,
            strikes: admission::Strikes::default(),
            idle: idle::IdleWait::default(),
            heartbeat_ms: genesis.heartbeat_ms,
            snapshot_taking: Arc::default(),
        };
        chain.resume_alarm();
        Ok(ChainParts {
            chain,
            committed,
            pending: pending_view,
        })
    }

    /// The keys allowed to connect: every validator of the set in force now and of every
    /// set scheduled later (so a joining validator connects before its first height), and
    /// the observers.
    fn peer_set(&self) -> PeerSet {
        let now = self.consensus.height();
        let mut validators: BTreeSet<PublicKey> = self
            .consensus
            .validator_sets()
            .at(now)
            .map(|s| s.validators().iter().map(|v| v.public_key).collect())
            .unwrap_or_default();
        for (at, set) in &self.schedule {
            if Height(*at) > now {
                validators.extend(set.iter().map(|v| v.public_key));
            }
        }
        PeerSet {
            validators,
            observers: self.settings.observers.clone(),
        }
    }

    /// Runs until `shutdown` changes or the inputs close. Storage is flushed on the way out.
    pub async fn run(
        mut self,
        mut inputs: mpsc::Receiver<ChainInput>,
        mut submissions: mpsc::Receiver<Submission>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ChainError> {
        self.send(Outbound::PeerSet(self.peer_set()));
        let started = self.consensus.start();
        self.carry_out(started)?;
        let mut resend = tokio::time::interval(Duration::from_millis(RESEND_INTERVAL_MS));
        resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut gossip = tokio::time::interval(Duration::from_millis(GOSSIP_INTERVAL_MS));
        gossip.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                _ = std::future::ready(()), if !self.deferred.is_empty() => {
                    let deferred = std::mem::take(&mut self.deferred);
                    self.carry_out(deferred)?;
                    tokio::task::yield_now().await;
                }
                input = inputs.recv() => {
                    let Some(first) = input else { break };
                    let mut batch = vec![first];
                    while batch.len() < INPUT_BATCH_MAX {
                        match inputs.try_recv() {
                            Ok(input) => batch.push(input),
                            Err(_) => break,
                        }
                    }
                    self.handle(batch, Vec::new())?;
                }
                submission = submissions.recv() => {
                    let Some(first) = submission else { break };
                    let mut batch = vec![first];
                    while batch.len() < INPUT_BATCH_MAX {
                        match submissions.try_recv() {
                            Ok(s) => batch.push(s),
                            Err(_) => break,
                        }
                    }
                    self.handle(Vec::new(), batch)?;
                }
                _ = resend.tick() => {
                    if !self.halted {
                        for message in self.consensus.messages_to_resend() {
                            self.broadcast(message);
                        }
                    }
                }
                _ = gossip.tick() => self.flush_gossip(),
            }
        }
        // Refuse what is still queued: the submitters hear "shutting down", not silence.
        submissions.close();
        while let Ok(s) = submissions.try_recv() {
            let _ = s.reply.send(Err(SubmitError::ShuttingDown));
        }
        self.storage.flush()?;
        info!(height = self.head.height, "chain task stopped");
        Ok(())
    }

    /// Sends one of this node's consensus messages to every validator.
    fn broadcast(&self, message: Message) {
        match &self.faults {
            None => self.send(Outbound::Broadcast(message.encode())),
            Some(faults) => {
                let now = self.consensus.height();
                let own = self.settings.key.public_key();
                let others: Vec<PublicKey> = self
                    .consensus
                    .validator_sets()
                    .at(now)
                    .map(|set| {
                        set.validators()
                            .iter()
                            .map(|v| v.public_key)
                            .filter(|key| *key != own)
                            .collect()
                    })
                    .unwrap_or_default();
                for (recipients, message) in faults.outgoing(message, &others) {
                    let bytes = message.encode();
                    match recipients {
                        Recipients::All => self.send(Outbound::Broadcast(bytes)),
                        Recipients::Only(keys) => {
                            for key in keys {
                                self.send(Outbound::SendTo(key, bytes.clone()));
                            }
                        }
                    }
                }
            }
        }
    }

    fn send(&self, command: Outbound) {
        if let Err(e) = self.outbound.try_send(command) {
            // Consensus tolerates a lost message (it resends); the rest is best effort.
            self.metrics.limit_reached.inc("outbound_max");
            warn!(error = %e, "outbound queue full; a network command was dropped");
        }
    }

    /// One batch of inputs: consensus messages are verified together, transactions too.
    fn handle(
        &mut self,
        inputs: Vec<ChainInput>,
        submissions: Vec<Submission>,
    ) -> Result<(), ChainError> {
        if self.halted {
            for input in &inputs {
                self.metrics.halted_inputs_dropped.inc(input.kind());
            }
            for s in submissions {
                let _ = s.reply.send(Err(SubmitError::ShuttingDown));
            }
            return Ok(());
        }
        let mut messages = Vec::new();
        let mut gossiped = Vec::new();
        let mut others = Vec::new();
        for input in inputs {
            match input {
                ChainInput::Message { from, message } => messages.push((from, message)),
                ChainInput::Transactions { from, txs } => gossiped.push((from, txs)),
                other => others.push(other),
            }
        }
        if !submissions.is_empty() || !gossiped.is_empty() {
            self.admit(submissions, gossiped);
        }
        if !messages.is_empty() {
            self.on_messages(messages)?;
        }
        for input in others {
            match input {
                ChainInput::Timeout(timeout) => {
                    let out = self.consensus.step(Input::Timeout(timeout));
                    self.carry_out(out)?;
                }
                ChainInput::Synced { from, blocks } => self.on_synced(from, blocks)?,
                ChainInput::Heartbeat(height) => {
                    if self.idle.heartbeat(height) {
                        self.metrics.idle_heartbeats.inc();
                        debug!(height = height.0, "idle for a heartbeat: the height starts");
                    }
                }
                ChainInput::Evidence { from, evidence } => self.on_evidence(from, evidence),
                ChainInput::ValidatorUpdate { update, reply } => {
                    let local = reply.is_some();
                    let verdict = self.on_validator_update(update, local);
                    if let Some(reply) = reply {
                        let _ = reply.send(verdict);
                    }
                }
                ChainInput::Message { .. } | ChainInput::Transactions { .. } => {}
            }
            if self.halted {
                break;
            }
        }
        if !self.halted {
            let released = self.idle.release(self.consensus.height(), self.has_work());
            if !released.is_empty() {
                self.carry_out(released)?;
            }
        }
        Ok(())
    }

    /// Whether this height has something to commit: a transaction its sender can execute
    /// next, evidence, or a validator update. (A mempool of gapped transactions alone is
    /// no reason for a block: none of them could go in it.)
    fn has_work(&self) -> bool {
        self.mempool.len() > self.mempool.gapped_len()
            || !self.pending_evidence.is_empty()
            || !self.pending_updates.is_empty()
    }

    /// Feeds `ChainInput::Heartbeat(height)` back once the genesis's heartbeat has passed.
    fn start_heartbeat(&self, height: Height) {
        let inputs = self.inputs.clone();
        let after = Duration::from_millis(self.heartbeat_ms);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = inputs.send(ChainInput::Heartbeat(height)).await;
        });
    }

    fn on_messages(&mut self, messages: Vec<(PublicKey, Message)>) -> Result<(), ChainError> {
        let now = self.consensus.height();
        // Messages of decided heights cannot change anything; skip their signatures.
        let (froms, messages): (Vec<PublicKey>, Vec<Message>) = messages
            .into_iter()
            .filter(|(_, m)| {
                let current = m.height() >= now;
                if !current {
                    self.metrics.consensus_messages_dropped.inc("stale");
                }
                current
            })
            .unzip();
        let verdicts = tally_consensus::verify_messages(
            messages,
            self.consensus.validator_sets(),
            &self.chain_id,
            &mut self.keys,
        );
        for (from, verdict) in froms.into_iter().zip(verdicts) {
            match verdict {
                Ok(verified) => {
                    self.metrics
                        .consensus_messages_verified
                        .inc(verified.signer().0);
                    let out = self.consensus.step(Input::Message(verified));
                    self.carry_out(out)?;
                    if self.halted {
                        return Ok(());
                    }
                }
                Err(e) => {
                    self.metrics
                        .consensus_messages_dropped
                        .inc(crate::metrics::refusal_reason(&e));
                    warn!(peer = %from, error = %e, "consensus message refused");
                    self.send(Outbound::Report(
                        from,
                        format!("bad consensus message: {e}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Carries out consensus outputs in order; outputs of inputs fed back while doing so
    /// (a built block, a validity verdict) are carried out after those already queued.
    fn carry_out(&mut self, outputs: Vec<Output>) -> Result<(), ChainError> {
        if !self.deferred.is_empty() {
            // Earlier outputs are waiting: these come after them.
            self.deferred.extend(outputs);
            return Ok(());
        }
        let mut queue: VecDeque<Output> = outputs.into();
        while let Some(output) = queue.pop_front() {
            if self.halted {
                return Ok(());
            }
            let height = self.consensus.height();
            if self.idle.waits(&output, height, self.has_work()) {
                if self.idle.hold(output, height) {
                    self.start_heartbeat(height);
                }
                continue;
            }
            match output {
                Output::Broadcast(message) => self.broadcast(message),
                Output::ScheduleTimeout {
                    timeout,
                    duration_ms,
                } => {
                    let inputs = self.inputs.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(duration_ms)).await;
                        let _ = inputs.send(ChainInput::Timeout(timeout)).await;
                    });
                }
                Output::RequestBlock { height, round } => {
                    let block = self.build_block(height, round)?;
                    queue.extend(self.consensus.step(Input::BlockToPropose {
                        height,
                        round,
                        block,
                    }));
                }
                Output::ValidateBlock {
                    height,
                    round,
                    block_hash,
                    block,
                } => {
                    let valid = match self.check_proposal(height, round, block_hash, &block) {
                        Ok(()) => true,
                        Err(refusal) => {
                            self.metrics.proposals_refused.inc(refusal.label);
                            let reason = refusal.detail;
                            warn!(height = height.0, round = round.0, %reason, "proposed block refused");
                            false
                        }
                    };
                    queue.extend(self.consensus.step(Input::BlockValidity {
                        height,
                        block: block_hash,
                        valid,
                    }));
                }
                Output::Decision(decision) => {
                    self.apply_decision(decision)?;
                    self.deferred.extend(queue.drain(..));
                }
                Output::Evidence(evidence) => {
                    self.metrics.equivocations_detected.inc();
                    warn!(
                        validator = evidence.validator().0,
                        height = evidence.height().0,
                        "equivocation"
                    );
                    self.send(Outbound::Publish(
                        GossipTopic::Evidence,
                        tally_consensus::encode(&evidence),
                    ));
                    self.keep_evidence(evidence);
                }
                // For liveness after a crash while holding a valid value: see
                // `recover_valid_value`.
                Output::Persist(record) => {
                    self.storage
                        .put_valid_record(&tally_consensus::encode(&record))?;
                }
                Output::SignerRefused {
                    height,
                    round,
                    error,
                } => debug!(height = height.0, round = round.0, %error, "signer refused"),
            }
        }
        self.metrics.round.set(i64::from(self.consensus.round().0));
        Ok(())
    }

    /// Admits transactions from the API and from gossip (decoded where they came in): verify
    /// in one batch, check the sender's key signed (see [`admission`]), insert into the
    /// mempool. Submitters get an answer; what the API gave is gossiped; refused gossip is
    /// counted against its peer.
    fn admit(
        &mut self,
        submissions: Vec<Submission>,
        gossiped: Vec<(PublicKey, Vec<EncodedTransaction>)>,
    ) {
        let mut txs: Vec<EncodedTransaction> = Vec::new();
        let mut origins: Vec<Origin> = Vec::new();
        let state = self.state();
        for s in submissions {
            if self.mode == Mode::Audit && !relay::relays(state.as_ref(), s.tx.tx()) {
                let _ = s.reply.send(Err(SubmitError::ReadOnly));
                continue;
            }
            origins.push(Origin::Api(s.reply));
            txs.push(s.tx);
        }
        for (from, batch) in gossiped {
            for tx in batch {
                if self.mempool.contains(&tx.hash()) {
                    continue;
                }
                origins.push(Origin::Peer(from));
                txs.push(tx);
            }
        }
        let verdicts = verify_transactions(&self.chain_id, txs, &mut self.keys);
        for (verdict, origin) in verdicts.into_iter().zip(origins) {
            let peer = match &origin {
                Origin::Peer(from) => Some(*from),
                Origin::Api(_) => None,
            };
            let result = match verdict {
                Err(e) => {
                    self.refused_verification(peer, &e);
                    Err(SubmitError::Verify(e))
                }
                Ok(verified) => match self.admission(state.as_ref(), &verified) {
                    Err(e) => {
                        self.refused_admission(peer, &e);
                        Err(SubmitError::Admission(e))
                    }
                    Ok(next) if self.mode == Mode::Audit => self.relay(&verified, next),
                    Ok(next) => {
                        let hash = verified.hash();
                        let bytes = peer.is_none().then(|| verified.encoded().bytes().to_vec());
                        let entry = PoolEntry {
                            verified,
                            admitted: std::time::Instant::now(),
                        };
                        match self.mempool.insert(entry, next) {
                            Ok(displaced) => {
                                let mut view = match self.pending_view.write() {
                                    Ok(v) => v,
                                    Err(poisoned) => poisoned.into_inner(),
                                };
                                if let Some(displaced) = displaced {
                                    view.remove(&displaced.verified.hash());
                                }
                                view.insert(hash);
                                if let Some(bytes) = bytes {
                                    self.to_gossip.push(bytes);
                                }
                                Ok(hash)
                            }
                            Err(e) => {
                                self.refused_in_mempool(peer, &e);
                                Err(SubmitError::Mempool(e))
                            }
                        }
                    }
                },
            };
            if let Origin::Api(reply) = origin {
                let _ = reply.send(result);
            }
        }
        self.report_mempool();
    }

    fn report_mempool(&self) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.metrics.mempool_txs.set(gauge(self.mempool.len()));
        let memory = &self.metrics.memory;
        memory.mempool_bytes.set(gauge(self.mempool.bytes()));
    }

    /// Sets the memory gauges (after each commit: often enough to watch, rare enough to be
    /// free).
    fn report_memory(&self) {
        self.report_mempool();
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let memory = &self.metrics.memory;
        memory.key_cache_entries.set(gauge(self.keys.len() as u64));
        memory
            .storage_cache_bytes
            .set(gauge(self.storage.cache_used_bytes()));
        memory
            .evidence_pending
            .set(gauge(self.pending_evidence.len() as u64));
        memory
            .evidence_remembered
            .set(gauge(self.committed_evidence.len() as u64));
        memory
            .verified_blocks
            .set(gauge(self.validated.len() as u64));
        let queued = |capacity: usize, free: usize| gauge(capacity.saturating_sub(free) as u64);
        memory
            .chain_inputs_queued
            .set(queued(self.inputs.max_capacity(), self.inputs.capacity()));
        memory.outbound_queued.set(queued(
            self.outbound.max_capacity(),
            self.outbound.capacity(),
        ));
        if let Some(bytes) = resident_bytes() {
            memory.resident_bytes.set(gauge(bytes));
        }
    }

    /// The committed state for many reads: one read transaction (see
    /// [`Storage::state_snapshot`]), or the storage itself, a transaction per read, when
    /// none can be opened. Taken after the last commit and dropped before the next.
    fn state(&self) -> Box<dyn StateStore> {
        match self.storage.state_snapshot() {
            Ok(snapshot) => Box::new(snapshot),
            Err(e) => {
                warn!(error = %e, "no read snapshot of the state; reading key by key");
                Box::new(self.storage.clone())
            }
        }
    }

    fn flush_gossip(&mut self) {
        while !self.to_gossip.is_empty() {
            let n = self.to_gossip.len().min(GOSSIP_TXS_MAX);
            let batch: Vec<Vec<u8>> = self.to_gossip.drain(..n).collect();
            self.send(Outbound::Publish(
                GossipTopic::Transactions,
                tally_consensus::encode(&batch),
            ));
        }
    }

    fn keep_evidence(&mut self, evidence: Evidence) {
        if self.pending_evidence.contains(&evidence) || self.committed_evidence.contains(&evidence)
        {
            return;
        }
        if self.pending_evidence.len() >= self.settings.evidence_pending_max {
            self.metrics.limit_reached.inc("evidence_pending_max");
            return;
        }
        self.pending_evidence.push(evidence);
    }

    /// Forgets pending evidence that `block` committed and remembers it, so a late copy
    /// from gossip does not go on chain twice.
    fn evidence_committed(&mut self, committed: &[Evidence]) {
        self.metrics
            .evidence_committed
            .inc_by(committed.len() as u64);
        self.pending_evidence.retain(|e| !committed.contains(e));
        for evidence in committed {
            if self.committed_evidence.len() >= self.settings.evidence_remembered_max {
                self.committed_evidence.pop_front();
                self.metrics.limit_reached.inc("evidence_remembered_max");
            }
            self.committed_evidence.push_back(evidence.clone());
        }
    }

    fn on_evidence(&mut self, from: PublicKey, evidence: Evidence) {
        let Some(set) = self.consensus.validator_sets().at(evidence.height()) else {
            return;
        };
        match evidence.verify(set, &self.chain_id) {
            Ok(()) => self.keep_evidence(evidence),
            Err(e) => {
                self.send(Outbound::Report(from, format!("bad evidence: {e}")));
            }
        }
    }

    fn last_scheduled(&self) -> u64 {
        self.schedule.last().map_or(0, |(at, _)| *at)
    }

    /// Keeps an update that verifies now, for a block this node may propose; gossips the
    /// ones submitted here.
    fn on_validator_update(
        &mut self,
        update: ValidatorUpdate,
        local: bool,
    ) -> Result<(), UpdateError> {
        let height = self.consensus.height();
        let current = self
            .consensus
            .validator_sets()
            .at(height)
            .ok_or_else(|| UpdateError::BadSet("no set in force".to_string()))?;
        update.verify(&self.chain_id, height.0, self.last_scheduled(), current)?;
        if self.pending_updates.contains(&update) {
            return Ok(());
        }
        if self.pending_updates.len() >= PENDING_UPDATES_MAX {
            return Err(UpdateError::Busy);
        }
        if local {
            self.send(Outbound::Publish(
                GossipTopic::Governance,
                tally_consensus::encode(&update),
            ));
        }
        info!(
            effective_height = update.change.effective_height,
            validators = update.change.validators.len(),
            "validator update waiting for a block"
        );
        self.pending_updates.push(update);
        Ok(())
    }

    /// Blocks a peer served by sync. A block whose certificate does not verify (no quorum,
    /// a bad signature, another block's) proves nothing about the chain, only about the
    /// peer: it is reported (the network cuts it off for a while) and the next poll asks
    /// another peer. Only what a quorum signed can raise the alarm: a certified block that
    /// disagrees with this node's own execution (found when it is applied), or a certified
    /// block that differs from the one this node already committed at that height.
    fn on_synced(&mut self, from: PublicKey, blocks: Vec<SyncedBlock>) -> Result<(), ChainError> {
        for synced in blocks {
            // What the previous block's decision left for later comes first.
            while !self.deferred.is_empty() && !self.halted {
                let deferred = std::mem::take(&mut self.deferred);
                self.carry_out(deferred)?;
            }
            let height = self.consensus.height();
            if synced.certificate.height < height {
                if self.check_decided_again(from, &synced)? {
                    continue;
                }
                break;
            }
            if synced.certificate.height > height {
                // Not consecutive with what we have: a later poll fills the gap.
                break;
            }
            let before = self.head.height;
            let block_hash = BlockHash::of(&synced.block);
            let certificate = synced.certificate.clone();
            let out = self.consensus.step(Input::Decided {
                block: synced.block,
                certificate: synced.certificate,
            });
            self.carry_out(out)?;
            if self.halted {
                // The block was certified and this node's checks of it failed: the alarm
                // (or, for a validator, the halt) is raised where it was applied.
                break;
            }
            if self.head.height == before {
                // Consensus drops a block whose certificate does not verify; say why.
                let reason = self
                    .check_certificate(&certificate, block_hash)
                    .err()
                    .unwrap_or_else(|| "the certificate was not accepted".to_string());
                warn!(peer = %from, height = height.0, %reason, "synced block refused; cutting the peer off");
                self.send(Outbound::Report(
                    from,
                    format!("synced block {} with a bad certificate: {reason}", height.0),
                ));
                break;
            }
        }
        Ok(())
    }

    /// A synced block for a height this node has already committed (a late answer, or a
    /// peer's lie). The same block: nothing to do (true). Another block whose certificate
    /// verifies: two quorum certificates for one height, which more than a third of the
    /// voting power must have signed — the alarm (false). Another block with a certificate
    /// that does not verify: the peer is reported (false).
    fn check_decided_again(
        &mut self,
        from: PublicKey,
        synced: &SyncedBlock,
    ) -> Result<bool, ChainError> {
        let height = synced.certificate.height.0;
        // A pruned block keeps its id (its header and its body's digest).
        let Some(ours_hash) = self.storage.block_id(height)? else {
            return Ok(true);
        };
        let theirs = BlockHash::of(&synced.block);
        if theirs == ours_hash {
            return Ok(true);
        }
        match self.check_certificate(&synced.certificate, theirs) {
            Ok(()) => {
                self.raise_alarm(audit::Offence {
                    height,
                    reason: format!(
                        "conflicting certificates: a quorum certificate for a block other than \
                         the committed {} at height {height}",
                        ours_hash.0
                    ),
                    block: &synced.block,
                    certificate: &synced.certificate,
                    peer: Some(from),
                });
            }
            Err(reason) => {
                warn!(peer = %from, height, %reason, "synced block for a decided height refused; cutting the peer off");
                self.send(Outbound::Report(
                    from,
                    format!("synced block {height} with a bad certificate: {reason}"),
                ));
            }
        }
        Ok(false)
    }

    /// The checks consensus makes of a decided block's certificate, with the reason when
    /// one fails (consensus itself only drops such a block). `block` is the hash of the
    /// block it came with.
    fn check_certificate(
        &mut self,
        certificate: &tally_consensus::CommitCertificate,
        block: BlockHash,
    ) -> Result<(), String> {
        if certificate.block != block {
            return Err("the certificate is for another block".to_string());
        }
        let set = self
            .consensus
            .validator_sets()
            .at(certificate.height)
            .ok_or_else(|| format!("no validator set in force at {}", certificate.height.0))?;
        certificate
            .verify_with(set, &self.chain_id, &mut self.keys)
            .map_err(|e| format!("the certificate does not verify: {e}"))
    }
}

/// Milliseconds since the Unix epoch by the local clock.
/// The process's resident memory, from `/proc/self/status` (`VmRSS`, in KiB); `None` where
/// the system has no such file.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_consensus::{
        BlockHash, Round, SignedVote, ValidRecord, Validator, ValidatorIndex, Vote, VoteKind,
    };

    const CHAIN: &str = "tally-test";

    fn keys() -> Vec<SigningKey> {
        (1..=4u8).map(|i| SigningKey::from_seed([i; 32])).collect()
    }

    fn consensus_on(
        storage: &Storage,
        height: u64,
    ) -> Result<Consensus<DurableSignerStore>, Box<dyn std::error::Error>> {
        let keys = keys();
        let set = ValidatorSet::new(
            keys.iter()
                .map(|k| Validator {
                    public_key: k.public_key(),
                    power: 1,
                })
                .collect(),
        )?;
        let signer = Signer::new(
            keys[0].clone(),
            CHAIN,
            DurableSignerStore::new(storage.clone()),
        )?;
        Ok(Consensus::new(
            ConsensusConfig::new(CHAIN),
            ValidatorSets::new(set),
            Height(height),
            Some(signer),
        ))
    }

    fn record(height: u64, voters: usize) -> ValidRecord {
        let keys = keys();
        let block = b"the block".to_vec();
        let prevotes = (0..voters)
            .map(|i| {
                let vote = Vote {
                    kind: VoteKind::Prevote,
                    height: Height(height),
                    round: Round(2),
                    block: Some(BlockHash::of(&block)),
                    validator: ValidatorIndex(i as u32),
                };
                let signature =
                    keys[i].sign(VoteKind::Prevote.domain(), CHAIN, &vote.signing_bytes());
                SignedVote { vote, signature }
            })
            .collect();
        ValidRecord {
            height: Height(height),
            round: Round(2),
            block,
            prevotes,
        }
    }

    /// The node's half of crash recovery: what `Output::Persist` stored is handed back to
    /// consensus on reopening, for this height only and only with a quorum behind it.
    /// (`consensus/tests/state_machine.rs` shows the recovered node re-proposing it.)
    #[test]
    fn a_stored_valid_value_is_recovered_at_its_height_only()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let block = BlockHash::of(b"the block");
        let cases = [
            (Some(record(5, 3)), 5, true),
            (Some(record(5, 3)), 6, false),
            (Some(record(5, 2)), 5, false),
            (None, 5, false),
        ];
        for (case, (stored, at, recovered)) in cases.into_iter().enumerate() {
            let path = dir.path().join(case.to_string());
            let storage = Storage::open(&path, CHAIN)?;
            if let Some(r) = &stored {
                storage.put_valid_record(&tally_consensus::encode(r))?;
            }
            // What a restart finds: the directory opened again.
            drop(storage);
            let storage = Storage::open(&path, CHAIN)?;
            let mut consensus = consensus_on(&storage, at)?;
            recover_valid_value(&storage, &mut consensus, 1024);
            let expected = recovered.then_some((Round(2), block));
            assert_eq!(consensus.valid(), expected, "case {case}");
        }
        // Garbage in the slot is ignored, not fatal.
        let storage = Storage::open(&dir.path().join("garbage"), CHAIN)?;
        storage.put_valid_record(b"not a record")?;
        let mut consensus = consensus_on(&storage, 5)?;
        recover_valid_value(&storage, &mut consensus, 1024);
        assert_eq!(consensus.valid(), None);
        Ok(())
    }
}
