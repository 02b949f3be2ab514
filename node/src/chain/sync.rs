//! Block sync: a node that is behind fetches decided blocks with their certificates from
//! peers; every node serves them from storage.
//!
//! The sync task polls one connected peer at a time (round robin) for the blocks after its
//! committed height. What comes back goes to the chain task, which hands each block to
//! consensus as [`tally_consensus::Input::Decided`]: consensus verifies the certificate
//! against the validator set in force at that height, and the block is then executed and
//! committed like any decided block. Polling, rather than waiting to notice a gap, also
//! covers a node that restarted, started late or was partitioned, with one mechanism.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tally_consensus::CommitCertificate;
use tally_crypto::PublicKey;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::ChainInput;
use super::state_sync::{self, SnapshotManifest, SnapshotOffer, SyncRequest};
use crate::metrics::Metrics;
use crate::network::{NetworkHandle, SyncResponder};
use crate::snapshots::SnapshotStore;
use crate::storage::Storage;

/// How often the sync task asks a peer for blocks after its head.
pub const SYNC_INTERVAL_MS: u64 = 200;
/// The most blocks one response carries.
pub const SYNC_BLOCKS_MAX: u32 = 64;
/// Requests waiting to be served; more are refused (the peer asks again later).
pub const SYNC_REQUESTS_QUEUED_MAX: usize = 64;
/// The most bytes of a sync request.
const SYNC_REQUEST_BYTES_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRequest {
    pub from_height: u64,
    pub count_max: u32,
}

/// A decided block and its certificate, both as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBlock {
    pub block: Vec<u8>,
    pub certificate: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockResponse {
    /// The responder's committed height.
    pub head: u64,
    /// Consecutive blocks from the requested height.
    pub blocks: Vec<StoredBlock>,
}

/// A block from a peer, decoded, its certificate not yet verified.
#[derive(Debug, Clone)]
pub struct SyncedBlock {
    pub block: Vec<u8>,
    pub certificate: CommitCertificate,
}

/// What the sync task needs.
#[derive(Debug)]
pub struct SyncTask {
    pub storage: Storage,
    pub network: NetworkHandle,
    pub committed: watch::Receiver<u64>,
    pub chain: mpsc::Sender<ChainInput>,
    pub requests: mpsc::Receiver<(PublicKey, Vec<u8>, SyncResponder)>,
    pub metrics: std::sync::Arc<Metrics>,
    /// The most bytes of one response (the network's message limit, less framing).
    pub response_bytes_max: usize,
    /// Whether to ask peers for blocks (an isolated test node may only serve).
    pub fetch: bool,
    /// The snapshots this node offers (`[snapshots]`), if it takes any.
    pub snapshots: Option<SnapshotStore>,
    /// Test equipment: serve every snapshot chunk with a byte flipped.
    pub corrupt_snapshot_chunks: bool,
}

impl SyncTask {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let SyncTask {
            storage,
            network,
            committed,
            chain,
            requests,
            metrics,
            response_bytes_max,
            fetch,
            snapshots,
            corrupt_snapshot_chunks,
        } = self;
        // Serving runs beside fetching: a node waiting for a peer's answer must still answer
        // that peer's request, or two nodes asking each other at once would both wait out
        // the request timeout (and a behind node would stall for that long). Both run in
        // this one task, so aborting it (a killed node) releases storage at once.
        let server = Server {
            storage,
            network: network.clone(),
            response_bytes_max,
            snapshots,
            corrupt_snapshot_chunks,
        };
        let serving = server.run(requests, shutdown.clone());
        let mut fetcher = Fetcher {
            network,
            committed,
            chain,
            metrics,
            response_bytes_max,
            unserved: 0,
        };
        let mut tick = tokio::time::interval(Duration::from_millis(SYNC_INTERVAL_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let fetching = async move {
            let mut next_peer = 0usize;
            loop {
                tokio::select! {
                    _ = shutdown.changed() => break,
                    // A node that raised the alarm has stopped following: no more fetching.
                    _ = tick.tick(), if fetch && fetcher.metrics.audit_alarm.get() == 0 => {
                        next_peer = next_peer.wrapping_add(1);
                        fetcher.fetch_from_a_peer(next_peer).await;
                    }
                }
            }
        };
        tokio::join!(serving, fetching);
    }
}

/// Answers peers' sync requests from storage and the snapshots.
struct Server {
    storage: Storage,
    network: NetworkHandle,
    response_bytes_max: usize,
    snapshots: Option<SnapshotStore>,
    corrupt_snapshot_chunks: bool,
}

impl Server {
    async fn run(
        self,
        mut requests: mpsc::Receiver<(PublicKey, Vec<u8>, SyncResponder)>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                request = requests.recv() => match request {
                    Some((from, bytes, responder)) => self.serve(from, &bytes, responder).await,
                    None => return,
                },
            }
        }
    }

    async fn serve(&self, from: PublicKey, bytes: &[u8], responder: SyncResponder) {
        let request: SyncRequest = match tally_consensus::decode(bytes, SYNC_REQUEST_BYTES_MAX) {
            Ok(r) => r,
            Err(e) => {
                warn!(peer = %from, error = %e, "malformed sync request");
                let _ = self.network.report(from, "malformed sync request").await;
                return;
            }
        };
        // Off the runtime's threads: a chunk or a manifest is read from disk.
        let answering = Answering {
            storage: self.storage.clone(),
            snapshots: self.snapshots.clone(),
            response_bytes_max: self.response_bytes_max,
            corrupt_snapshot_chunks: self.corrupt_snapshot_chunks,
        };
        let response = match tokio::task::spawn_blocking(move || answering.answer(&request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                warn!(peer = %from, error = %e, "cannot read what a peer asked for");
                return;
            }
            Err(e) => {
                warn!(peer = %from, error = %e, "answering a peer stopped");
                return;
            }
        };
        if let Err(e) = responder.respond(response).await {
            debug!(peer = %from, error = %e, "sync response not sent");
        }
    }
}

/// What answering one sync request reads.
struct Answering {
    storage: Storage,
    snapshots: Option<SnapshotStore>,
    response_bytes_max: usize,
    corrupt_snapshot_chunks: bool,
}

impl Answering {
    fn answer(&self, request: &SyncRequest) -> Result<Vec<u8>, String> {
        let no_snapshots = || "this node takes no snapshots".to_string();
        match request {
            SyncRequest::Blocks(request) => {
                read_blocks(&self.storage, request, self.response_bytes_max)
                    .map(|r| tally_consensus::encode(&r))
                    .map_err(|e| e.to_string())
            }
            SyncRequest::Snapshots => {
                let offer = match &self.snapshots {
                    Some(snapshots) => {
                        state_sync::offer(&self.storage, snapshots).map_err(|e| e.to_string())?
                    }
                    None => SnapshotOffer {
                        heights: Vec::new(),
                    },
                };
                Ok(tally_consensus::encode(&offer))
            }
            SyncRequest::Manifest { height } => {
                let manifest = match &self.snapshots {
                    Some(snapshots) => SnapshotManifest::read(&self.storage, snapshots, *height)?,
                    None => None,
                };
                Ok(tally_consensus::encode(&manifest))
            }
            SyncRequest::Chunk { height, index } => {
                let snapshots = self.snapshots.as_ref().ok_or_else(no_snapshots)?;
                let mut chunk = snapshots
                    .read_chunk(*height, *index)
                    .map_err(|e| e.to_string())?
                    .unwrap_or_default();
                corrupt_chunk(&mut chunk, self.corrupt_snapshot_chunks);
                Ok(chunk)
            }
        }
    }
}

/// Test equipment (`[test_faults] corrupt_snapshot_chunks`): flips a byte of a chunk served,
/// as a lying peer would. Compiled into test builds only.
#[cfg(feature = "test-faults")]
fn corrupt_chunk(chunk: &mut [u8], on: bool) {
    let middle = chunk.len() / 2;
    if let Some(byte) = chunk.get_mut(middle).filter(|_| on) {
        *byte ^= 0x01;
    }
}

#[cfg(not(feature = "test-faults"))]
fn corrupt_chunk(_chunk: &mut [u8], _on: bool) {}

/// Asks peers, one at a time, for the blocks after this node's head.
struct Fetcher {
    network: NetworkHandle,
    committed: watch::Receiver<u64>,
    chain: mpsc::Sender<ChainInput>,
    metrics: std::sync::Arc<Metrics>,
    response_bytes_max: usize,
    /// Answers from a peer ahead of this node that held none of the blocks asked for.
    unserved: u64,
}

impl Fetcher {
    async fn fetch_from_a_peer(&mut self, turn: usize) {
        let Ok(peers) = self.network.connected_peers().await else {
            return;
        };
        let Some(peer) = peers.get(turn % peers.len().max(1)).copied() else {
            return;
        };
        let committed = *self.committed.borrow();
        let request = BlockRequest {
            from_height: committed.saturating_add(1),
            count_max: SYNC_BLOCKS_MAX,
        };
        let bytes = match self
            .network
            .request(
                peer,
                tally_consensus::encode(&SyncRequest::Blocks(request.clone())),
            )
            .await
        {
            Ok(bytes) => bytes,
            Err(e) => {
                debug!(%peer, error = %e, "sync request failed");
                return;
            }
        };
        let response: BlockResponse = match tally_consensus::decode(&bytes, self.response_bytes_max)
        {
            Ok(r) => r,
            Err(e) => {
                warn!(%peer, error = %e, "malformed sync response");
                let _ = self.network.report(peer, "malformed sync response").await;
                return;
            }
        };
        self.metrics
            .sync_lag
            .set(i64::try_from(response.head.saturating_sub(committed)).unwrap_or(i64::MAX));
        let mut blocks = Vec::with_capacity(response.blocks.len());
        for stored in response.blocks.into_iter().take(SYNC_BLOCKS_MAX as usize) {
            match tally_consensus::decode::<CommitCertificate>(
                &stored.certificate,
                self.response_bytes_max,
            ) {
                Ok(certificate) => blocks.push(SyncedBlock {
                    block: stored.block,
                    certificate,
                }),
                Err(e) => {
                    warn!(%peer, error = %e, "malformed certificate in a sync response");
                    let _ = self.network.report(peer, "malformed certificate").await;
                    return;
                }
            }
        }
        if blocks.is_empty() && response.head > committed {
            // Pruned there, or a block too large for one answer: others are asked in turn.
            // Logged on the 1st, 2nd, 4th, 8th... time, so a long wait is seen, not a flood.
            self.unserved = self.unserved.saturating_add(1);
            if self.unserved.is_power_of_two() {
                warn!(
                    %peer,
                    peer_head = response.head,
                    committed,
                    times = self.unserved,
                    "a peer ahead of this node served none of the blocks asked for (pruned \
                     there?); asking others"
                );
            }
        }
        if !blocks.is_empty() {
            debug!(%peer, from = request.from_height, count = blocks.len(), "blocks fetched");
            let _ = self
                .chain
                .send(ChainInput::Synced { from: peer, blocks })
                .await;
        }
    }
}

/// Consecutive stored blocks from the requested height, within the count and byte limits.
fn read_blocks(
    storage: &Storage,
    request: &BlockRequest,
    bytes_max: usize,
) -> Result<BlockResponse, crate::storage::StorageError> {
    let head = storage.head()?.unwrap_or(0);
    let count = request.count_max.min(SYNC_BLOCKS_MAX);
    let mut blocks = Vec::new();
    // Room for the response's own framing.
    let mut bytes = 64usize;
    let mut height = request.from_height.max(1);
    while height <= head && blocks.len() < count as usize {
        let (Some(block), Some(certificate)) =
            (storage.block(height)?, storage.certificate(height)?)
        else {
            break;
        };
        let size = block.len() + certificate.len() + 16;
        if bytes.saturating_add(size) > bytes_max {
            break;
        }
        bytes += size;
        blocks.push(StoredBlock { block, certificate });
        height += 1;
    }
    Ok(BlockResponse { head, blocks })
}
