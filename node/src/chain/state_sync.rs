//! State sync: a node with an empty data directory starts from a peer's snapshot of the state
//! instead of replaying every block from height 1, then block-syncs from the snapshot's
//! height like any node that is behind.
//!
//! The joining node trusts only its genesis. It gathers peers' offers ([`SnapshotOffer`]),
//! takes the newest height offered and checks its manifest ([`SnapshotManifest`]): it follows
//! the validator-set changes the manifest carries from the genesis set (each certified by the
//! set before it, as a client does), then checks that a quorum of the set in force signed the
//! snapshot's block and the block after it, that the one's header is the other's parent, and
//! that the ledger and results roots make the state root the later header carries. The tree's
//! top must hash to that ledger root; it names the hash of every chunk. Chunks are asked for
//! several at a time, spread over every peer offering the snapshot; each is checked alone as
//! it arrives ([`tally_contracts::snapshot::verify_chunk`]) and written, and one that does
//! not verify is asked of another peer while the peer that served it is reported (the network
//! disconnects and blocks it) and asked no more. When no peer offers a snapshot, or no honest
//! one is left, the node says so and replays blocks from height 1.
//!
//! Attackers: a peer serving a made-up or altered manifest (refused: no quorum signed it, or
//! the roots do not match), corrupted or swapped chunks (refused one by one, the peer cut off),
//! or nothing at all (asked no more after a few failures in a row). Manifests are asked of
//! every peer offering the chosen height: chunks are fetched from the peers that cut the tree
//! the same way as most of them (a peer configured with other chunk sizes is not used, and not
//! blamed), and the validator-set changes are taken from the manifest that carries the most
//! (each is certified, so a peer can leave one out but not make one up; the longest verified
//! list is complete as long as one offering peer is honest). A peer can delay a join or force
//! it back to block sync; it cannot change the state installed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tally_consensus::{BlockHash, ValidatorSet};
use tally_contracts::snapshot::{self, ChunkTarget, SnapshotChunk};
use tally_contracts::{ChainHead, commitment};
use tally_crypto::PublicKey;
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::sync::BlockRequest;
use crate::metrics::Metrics;
use crate::network::NetworkHandle;
use crate::proof::{CarriedChanges, CertifiedHeader, ProofCheckError, TrustedValidators};
use crate::snapshots::{SnapshotStore, StoredSnapshot};
use crate::storage::{self, KeptChange, SnapshotInstall, Storage, StorageError};
use crate::validator_update::ValidatorUpdate;

/// The snapshot heights a node offers at most (its newest).
pub const SNAPSHOTS_OFFERED_MAX: usize = 4;
/// The validator-set changes a manifest carries at most; a chain with more is joined by
/// block sync (the manifest would outgrow a message long before).
pub const MANIFEST_CHANGES_MAX: usize = 1_024;
/// Failed requests in a row (timeouts, nothing served) after which a peer is asked no more.
const PEER_FAILURES_MAX: u32 = 3;
/// Rounds of discovery, choice and fetching before the node replays from height 1 instead:
/// a snapshot may be removed by its holders while it is fetched (they keep the newest few).
const JOIN_ATTEMPTS: u32 = 3;
/// How often offers are asked for during discovery.
const DISCOVERY_POLL: Duration = Duration::from_millis(250);
/// The least time discovery waits for more offers once every connected peer answered.
const DISCOVERY_MIN: Duration = Duration::from_millis(1_000);

/// What a peer asks over the sync protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// Decided blocks (answered with a `BlockResponse`).
    Blocks(BlockRequest),
    /// Which snapshots are offered ([`SnapshotOffer`]).
    Snapshots,
    /// A snapshot's manifest (`Option<SnapshotManifest>`).
    Manifest { height: u64 },
    /// One chunk of a snapshot, encoded as taken; empty when not served.
    Chunk { height: u64, index: u32 },
}

/// The snapshot heights a node offers, newest first: only those whose next block it holds
/// (that block's header certifies the snapshot's state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotOffer {
    pub heights: Vec<u64>,
}

/// A block that changed the validator set, with its certified header: the API's
/// [`CarriedChanges`] for the peer protocol, whose encoding (postcard) cannot carry that type's
/// flattened JSON form. [`SnapshotManifest::verify`] turns each into one to follow it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestChange {
    pub certified: CertifiedHeader,
    pub updates: Vec<ValidatorUpdate>,
}

/// Everything a joining node checks a snapshot by, besides its chunks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotManifest {
    pub snapshot: StoredSnapshot,
    /// The snapshot's block.
    pub head: CertifiedHeader,
    /// The block after it, whose header's state root commits to the snapshot's state.
    pub next: CertifiedHeader,
    /// Every block up to the snapshot's that changed the validator set, in height order.
    pub changes: Vec<ManifestChange>,
}

/// Why a manifest is refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("it is of height {found}, not the {asked} asked for")]
    WrongHeight { asked: u64, found: u64 },
    #[error("a validator change above the snapshot's height ({0})")]
    LateChange(u64),
    #[error(transparent)]
    Check(#[from] ProofCheckError),
    #[error("the snapshot's block is not the parent of the block after it")]
    NotParent,
    #[error("the snapshot's time is not its block's")]
    WrongTime,
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    #[error(transparent)]
    Proof(#[from] commitment::ProofError),
}

/// Errors that stop a node from starting (not a peer's misbehaviour, which is worked around).
#[derive(Debug, thiserror::Error)]
pub enum StateSyncError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the installed tree's root is not the snapshot's: {0}")]
    Installed(String),
    #[error("a chunk check stopped: {0}")]
    Join(String),
}

/// A manifest that holds: where each chunk hangs and the validator schedule it makes.
#[derive(Debug)]
pub struct VerifiedManifest {
    pub manifest: SnapshotManifest,
    pub targets: Vec<ChunkTarget>,
    schedule: Vec<(u64, Vec<tally_consensus::Validator>)>,
}

impl SnapshotManifest {
    /// Reads the manifest of the snapshot of `height` from this node's snapshots and store;
    /// `None` when it is not offered (not here, or its next block not committed yet).
    pub fn read(
        storage: &Storage,
        snapshots: &SnapshotStore,
        height: u64,
    ) -> Result<Option<SnapshotManifest>, String> {
        let Some(snapshot) = snapshots.read(height).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let head = storage
            .certified_header(height)
            .map_err(|e| e.to_string())?;
        let next = storage
            .certified_header(height.saturating_add(1))
            .map_err(|e| e.to_string())?;
        let (Some(head), Some(next)) = (head, next) else {
            return Ok(None);
        };
        let stored = storage
            .validator_changes(1, MANIFEST_CHANGES_MAX.saturating_add(1))
            .map_err(|e| e.to_string())?;
        let stored: Vec<_> = stored.into_iter().filter(|(at, _)| *at <= height).collect();
        if stored.len() > MANIFEST_CHANGES_MAX {
            // Cut short, the list would leave a joiner with a wrong schedule: not offered.
            return Ok(None);
        }
        let mut changes = Vec::new();
        for (at, updates) in stored {
            let certified = storage
                .certified_header(at)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("the header of block {at} is missing"))?;
            let updates =
                tally_consensus::decode(&updates, usize::MAX).map_err(|e| e.to_string())?;
            changes.push(ManifestChange { certified, updates });
        }
        Ok(Some(SnapshotManifest {
            snapshot,
            head,
            next,
            changes,
        }))
    }

    /// Checks every link from the genesis validators to the snapshot's tree top (see the
    /// module's comment).
    pub fn verify(
        self,
        chain_id: &str,
        genesis: ValidatorSet,
        asked: u64,
    ) -> Result<VerifiedManifest, ManifestError> {
        let height = self.snapshot.height;
        if height != asked || self.snapshot.top.version != height {
            return Err(ManifestError::WrongHeight {
                asked,
                found: height,
            });
        }
        let mut trusted = TrustedValidators::genesis(chain_id, genesis);
        let mut schedule = Vec::new();
        for change in &self.changes {
            let at = change.certified.header.height;
            if at > height {
                return Err(ManifestError::LateChange(at));
            }
            trusted.follow(&CarriedChanges {
                certified: change.certified.clone(),
                updates: change.updates.clone(),
            })?;
            schedule.extend(
                change
                    .updates
                    .iter()
                    .map(|u| (u.change.effective_height, u.change.validators.clone())),
            );
        }
        self.head.verify(chain_id, trusted.at(height)?, height)?;
        let next_height = height.saturating_add(1);
        self.next
            .verify(chain_id, trusted.at(next_height)?, next_height)?;
        let head_id = BlockHash::of_parts(
            BlockHash::header_digest(&tally_consensus::encode(&self.head.header)),
            self.head.body_digest,
        );
        if self.next.header.parent != head_id.0 {
            return Err(ManifestError::NotParent);
        }
        if self.snapshot.time_ms != self.head.header.time_ms {
            return Err(ManifestError::WrongTime);
        }
        commitment::verify_state_root(
            self.next.header.state_root,
            self.snapshot.ledger_root,
            self.snapshot.results_root,
        )?;
        let targets = snapshot::verify_top(&self.snapshot.top, self.snapshot.ledger_root)?;
        Ok(VerifiedManifest {
            manifest: self,
            targets,
            schedule,
        })
    }
}

/// This node's offer: its snapshots whose next block it holds, newest first, and only those
/// after which it still holds every block whole (a pruning node cannot serve a joiner the
/// blocks after an older one).
pub fn offer(storage: &Storage, snapshots: &SnapshotStore) -> Result<SnapshotOffer, StorageError> {
    let head = storage.head()?.unwrap_or(0);
    let pruned_through = storage.pruned_through()?;
    Ok(SnapshotOffer {
        heights: snapshots
            .heights()
            .into_iter()
            .filter(|h| *h >= 1 && *h < head && *h >= pruned_through)
            .take(SNAPSHOTS_OFFERED_MAX)
            .collect(),
    })
}

/// How a node joins by state sync.
#[derive(Debug, Clone)]
pub struct Joiner {
    pub network: NetworkHandle,
    pub storage: Storage,
    pub chain_id: String,
    pub genesis_hash: tally_crypto::Hash,
    pub genesis_validators: ValidatorSet,
    pub discovery: Duration,
    /// The peers in the node's configuration: discovery ends early only once as many have
    /// answered (a peer still connecting may hold the newest snapshot).
    pub peers_configured: usize,
    pub fetchers: usize,
    /// The most bytes of one response it decodes: the network's message limit (a peer sends
    /// at most that less some room, so an honest answer is never cut here).
    pub response_bytes_max: usize,
    pub metrics: std::sync::Arc<Metrics>,
}

/// What one chunk request came to.
enum Fetched {
    Verified(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    /// The peer served something that does not verify.
    Bad(String),
    /// Nothing usable came back (a timeout, a peer without the chunk).
    Unavailable(String),
}

impl Joiner {
    async fn ask(&self, peer: PublicKey, request: &SyncRequest) -> Result<Vec<u8>, String> {
        self.network
            .request(peer, tally_consensus::encode(request))
            .await
            .map_err(|e| e.to_string())
    }

    /// Joins from the newest snapshot peers offer: returns its height once installed, or
    /// `None` when no usable snapshot was offered (the directory is left empty, and the node
    /// replays blocks from height 1).
    pub async fn join(&self) -> Result<Option<u64>, StateSyncError> {
        if self.storage.state_sync_interrupted()? {
            info!("state sync: an earlier sync was interrupted; starting over");
            self.storage.abandon_state_sync()?;
        }
        for attempt in 1..=JOIN_ATTEMPTS {
            let offers = self.discover().await;
            if offers.is_empty() {
                warn!("state sync: no peer offered a snapshot; syncing blocks from height 1");
                return Ok(None);
            }
            let Some((verified, peers)) = self.choose(&offers).await else {
                warn!(
                    attempt,
                    peers_offering = offers.len(),
                    "state sync: no offered snapshot verified"
                );
                continue;
            };
            let height = verified.manifest.snapshot.height;
            info!(
                height,
                chunks = verified.targets.len(),
                peers = peers.len(),
                "state sync: snapshot chosen and its manifest verified; fetching chunks"
            );
            let started = Instant::now();
            self.storage.begin_state_sync()?;
            let top: Vec<(Vec<u8>, Option<Vec<u8>>)> =
                snapshot::top_writes(&verified.manifest.snapshot.top)
                    .into_iter()
                    .map(|w| (w.key, w.value))
                    .collect();
            self.storage.put_snapshot_rows(&top)?;
            if !self.fetch_chunks(&verified, peers).await? {
                self.storage.abandon_state_sync()?;
                warn!(
                    attempt,
                    height, "state sync: no peer left serving the snapshot's chunks"
                );
                continue;
            }
            self.install(&verified)?;
            self.metrics
                .synced_from_height
                .set(i64::try_from(height).unwrap_or(i64::MAX));
            info!(
                height,
                seconds = started.elapsed().as_secs_f64(),
                "state sync: snapshot installed; syncing blocks from its height"
            );
            return Ok(Some(height));
        }
        warn!(
            attempts = JOIN_ATTEMPTS,
            "state sync: no usable snapshot; syncing blocks from height 1"
        );
        Ok(None)
    }

    /// Asks connected peers for their offers until the discovery time is up (or, once as
    /// many peers as are configured answered with at least one offer among them, sooner).
    async fn discover(&self) -> BTreeMap<PublicKey, Vec<u64>> {
        let started = Instant::now();
        let mut offers = BTreeMap::new();
        let mut answered = BTreeSet::new();
        loop {
            let peers = self.network.connected_peers().await.unwrap_or_default();
            let unasked: Vec<PublicKey> = peers
                .iter()
                .filter(|p| !answered.contains(*p))
                .copied()
                .collect();
            let asks = unasked
                .iter()
                .map(|peer| async move { (*peer, self.ask(*peer, &SyncRequest::Snapshots).await) });
            for (peer, answer) in futures::future::join_all(asks).await {
                let Ok(bytes) = answer else { continue };
                answered.insert(peer);
                match tally_consensus::decode::<SnapshotOffer>(&bytes, 1_024) {
                    Ok(offer) if !offer.heights.is_empty() => {
                        let mut heights = offer.heights;
                        heights.truncate(SNAPSHOTS_OFFERED_MAX);
                        offers.insert(peer, heights);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn!(%peer, error = %e, "state sync: a malformed snapshot offer");
                        let _ = self.network.report(peer, "malformed snapshot offer").await;
                    }
                }
            }
            let elapsed = started.elapsed();
            let all_answered = answered.len() >= self.peers_configured.max(1)
                && peers.iter().all(|p| answered.contains(p));
            if elapsed >= self.discovery
                || (all_answered && !offers.is_empty() && elapsed >= DISCOVERY_MIN)
            {
                return offers;
            }
            tokio::time::sleep(DISCOVERY_POLL).await;
        }
    }

    /// The newest offered snapshot whose manifest verifies, and the peers to fetch it from:
    /// every peer offering it is asked for its manifest; those cutting the tree as most do
    /// serve the chunks, and the manifest carrying the most validator-set changes is used.
    async fn choose(
        &self,
        offers: &BTreeMap<PublicKey, Vec<u64>>,
    ) -> Option<(VerifiedManifest, Vec<PublicKey>)> {
        let heights: BTreeSet<u64> = offers.values().flatten().copied().collect();
        for height in heights.into_iter().rev() {
            let offering: Vec<PublicKey> = offers
                .iter()
                .filter(|(_, hs)| hs.contains(&height))
                .map(|(p, _)| *p)
                .collect();
            let asks = offering.iter().map(|peer| async move {
                (
                    *peer,
                    self.ask(*peer, &SyncRequest::Manifest { height }).await,
                )
            });
            // By the digest of the top: peers that cut the tree the same way.
            let mut cuts: BTreeMap<tally_crypto::Hash, Vec<(PublicKey, VerifiedManifest)>> =
                BTreeMap::new();
            for (peer, answer) in futures::future::join_all(asks).await {
                let bytes = match answer {
                    Ok(b) => b,
                    Err(e) => {
                        warn!(%peer, height, error = %e, "state sync: no manifest from a peer");
                        continue;
                    }
                };
                let manifest = match tally_consensus::decode::<Option<SnapshotManifest>>(
                    &bytes,
                    self.response_bytes_max,
                ) {
                    Ok(Some(m)) => m,
                    // Offered, then removed or not servable: nothing to blame.
                    Ok(None) => continue,
                    Err(e) => {
                        self.refuse(peer, height, e.to_string(), "malformed snapshot manifest")
                            .await;
                        continue;
                    }
                };
                let top_digest = tally_crypto::Hash::digest(
                    "tally/snapshot-top",
                    &tally_consensus::encode(&manifest.snapshot.top),
                );
                match manifest.verify(&self.chain_id, self.genesis_validators.clone(), height) {
                    Ok(verified) => cuts.entry(top_digest).or_default().push((peer, verified)),
                    Err(e) => {
                        self.refuse(peer, height, e.to_string(), "bad snapshot manifest")
                            .await;
                    }
                }
            }
            let Some(cut) = cuts.into_values().max_by_key(|peers| peers.len()) else {
                continue;
            };
            let peers: Vec<PublicKey> = cut.iter().map(|(p, _)| *p).collect();
            let (_, verified) = cut
                .into_iter()
                .max_by_key(|(_, v)| v.manifest.changes.len())?;
            return Some((verified, peers));
        }
        None
    }

    /// Counts, logs and reports a peer whose snapshot part is refused.
    async fn refuse(&self, peer: PublicKey, height: u64, reason: String, report: &str) {
        warn!(%peer, height, reason, "state sync: a peer's manifest is refused");
        self.metrics.state_sync_bad_parts.inc();
        let _ = self.network.report(peer, report.to_string()).await;
    }

    /// Fetches and installs every chunk; `false` when no peer is left to ask.
    async fn fetch_chunks(
        &self,
        verified: &VerifiedManifest,
        mut peers: Vec<PublicKey>,
    ) -> Result<bool, StateSyncError> {
        let height = verified.manifest.snapshot.height;
        let total = verified.targets.len();
        let mut queue: VecDeque<usize> = (0..total).collect();
        let mut failures: BTreeMap<PublicKey, u32> = BTreeMap::new();
        let mut in_flight = JoinSet::new();
        let mut turn = 0usize;
        let mut done = 0usize;
        let mut reported_tenth = 0usize;
        loop {
            while in_flight.len() < self.fetchers {
                let Some(index) = queue.pop_front() else {
                    break;
                };
                let Some(peer) = peers.get(turn % peers.len().max(1)).copied() else {
                    return Ok(false);
                };
                turn = turn.wrapping_add(1);
                let Some(target) = verified.targets.get(index).cloned() else {
                    continue;
                };
                let joiner = self.clone();
                in_flight.spawn(async move {
                    let fetched = joiner.fetch_chunk(peer, height, index, target).await;
                    (index, peer, fetched)
                });
            }
            let Some(joined) = in_flight.join_next().await else {
                return Ok(true);
            };
            let (index, peer, fetched) = joined.map_err(|e| StateSyncError::Join(e.to_string()))?;
            match fetched {
                Fetched::Verified(rows) => {
                    failures.remove(&peer);
                    self.storage.put_snapshot_rows(&rows)?;
                    done += 1;
                    let tenth = done * 10 / total.max(1);
                    if tenth > reported_tenth {
                        reported_tenth = tenth;
                        info!(
                            height,
                            done, total, "state sync: chunks verified and written"
                        );
                    }
                }
                Fetched::Bad(reason) => {
                    warn!(
                        %peer, height, index, reason,
                        "state sync: a peer served a chunk that does not verify; it is cut off \
                         and the chunk asked of another"
                    );
                    self.metrics.state_sync_bad_parts.inc();
                    let _ = self.network.report(peer, "bad snapshot chunk").await;
                    peers.retain(|p| *p != peer);
                    queue.push_back(index);
                }
                Fetched::Unavailable(reason) => {
                    let count = failures.entry(peer).or_default();
                    *count += 1;
                    warn!(%peer, height, index, reason, "state sync: a chunk request failed");
                    if *count >= PEER_FAILURES_MAX {
                        peers.retain(|p| *p != peer);
                    }
                    queue.push_back(index);
                }
            }
        }
    }

    async fn fetch_chunk(
        &self,
        peer: PublicKey,
        height: u64,
        index: usize,
        target: ChunkTarget,
    ) -> Fetched {
        let request = SyncRequest::Chunk {
            height,
            index: u32::try_from(index).unwrap_or(u32::MAX),
        };
        let bytes = match self.ask(peer, &request).await {
            Ok(b) if b.is_empty() => return Fetched::Unavailable("not served".to_string()),
            Ok(b) => b,
            Err(e) => return Fetched::Unavailable(e),
        };
        let limit = self.response_bytes_max;
        let checked = tokio::task::spawn_blocking(move || {
            let chunk: SnapshotChunk =
                tally_consensus::decode(&bytes, limit).map_err(|e| e.to_string())?;
            snapshot::verify_chunk(&target, height, &chunk).map_err(|e| e.to_string())
        })
        .await;
        match checked {
            Ok(Ok(writes)) => {
                Fetched::Verified(writes.into_iter().map(|w| (w.key, w.value)).collect())
            }
            Ok(Err(reason)) => Fetched::Bad(reason),
            Err(e) => Fetched::Unavailable(e.to_string()),
        }
    }

    /// Completes the directory: the chain head, the headers and changes, and a last check that
    /// the tree installed has the snapshot's root.
    fn install(&self, verified: &VerifiedManifest) -> Result<(), StateSyncError> {
        let manifest = &verified.manifest;
        let snap = &manifest.snapshot;
        let (root, _) = commitment::prove(&self.storage, snap.height, b"")
            .map_err(|e| StateSyncError::Installed(e.to_string()))?;
        if root != snap.ledger_root {
            self.storage.abandon_state_sync()?;
            return Err(StateSyncError::Installed(format!(
                "{root} against {}",
                snap.ledger_root
            )));
        }
        let head = ChainHead {
            height: snap.height,
            time_ms: snap.time_ms,
            state_root: manifest.next.header.state_root,
            ledger_root: snap.ledger_root,
            results_root: snap.results_root,
        };
        let head_write = snapshot::chain_head_write(&head);
        let kept = |c: &CertifiedHeader| {
            storage::kept_header(&tally_consensus::encode(&c.header), &c.body_digest)
        };
        let changes: Vec<KeptChange> = manifest
            .changes
            .iter()
            .map(|c| KeptChange {
                height: c.certified.header.height,
                kept_header: kept(&c.certified),
                certificate: tally_consensus::encode(&c.certified.certificate),
                updates: tally_consensus::encode(&c.updates),
            })
            .collect();
        let schedule =
            (!verified.schedule.is_empty()).then(|| tally_consensus::encode(&verified.schedule));
        self.storage.install_snapshot(&SnapshotInstall {
            height: snap.height,
            genesis: &self.genesis_hash,
            state_writes: &[(head_write.key, head_write.value)],
            kept_header: &kept(&manifest.head),
            certificate: &tally_consensus::encode(&manifest.head.certificate),
            changes: &changes,
            validator_schedule: schedule.as_deref(),
        })?;
        Ok(())
    }
}
