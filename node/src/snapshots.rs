//! The state snapshots a node takes (`[snapshots]`) and offers to peers joining by state sync:
//! one directory per snapshot under `<data_dir>/snapshots/`, named by its height, holding the
//! tree's top and its roots (`top`) and one file per chunk (`chunk-{i}`), each as it is sent.
//!
//! A snapshot is cut from one read transaction of the store, taken right after its block
//! committed, so it is the state of that height while the chain goes on. It is written into
//! `{height}.partial` and renamed when whole: a directory named by a height is complete.
//! Snapshots are not part of the chain: nothing checks them here, the joining node checks
//! every part against a certified header, and a lost or damaged one is taken again later.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tally_contracts::snapshot::{self, SnapshotTop};
use tally_contracts::{Ledger, StateStore};
use tally_crypto::Hash;

/// The directory inside the data directory.
pub const SNAPSHOTS_DIR: &str = "snapshots";
const TOP_FILE: &str = "top";
const PARTIAL_SUFFIX: &str = ".partial";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotStoreError {
    #[error("snapshot file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cutting the state: {0}")]
    Cut(String),
    #[error("snapshot file {path} does not decode: {reason}")]
    Damaged { path: PathBuf, reason: String },
}

/// What a snapshot keeps besides its chunks: the height it is of, the two roots the next
/// block's header binds (so a joiner can check the state root), and the tree's top.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSnapshot {
    pub height: u64,
    pub ledger_root: Hash,
    pub results_root: Hash,
    /// The time of the snapshot's block (the chain head records it).
    pub time_ms: u64,
    pub top: SnapshotTop,
}

/// What taking a snapshot made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub height: u64,
    pub chunks: usize,
    pub bytes: u64,
}

/// One snapshot on disk, as `tally node snapshots` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotSummary {
    pub height: u64,
    pub chunks: usize,
    /// Its files' bytes together.
    pub bytes: u64,
    pub ledger_root: Hash,
}

/// The snapshots of one data directory.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
    keep: usize,
    chunk_leaves: usize,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotStoreError + '_ {
    move |source| SnapshotStoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a file and syncs it, so a renamed snapshot directory holds what it names.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SnapshotStoreError> {
    let mut file = std::fs::File::create(path).map_err(io_error(path))?;
    file.write_all(bytes).map_err(io_error(path))?;
    file.sync_data().map_err(io_error(path))
}

impl SnapshotStore {
    /// The snapshots of `data_dir`, as `[snapshots]` configures them.
    pub fn new(data_dir: &Path, config: &crate::config::Snapshots) -> SnapshotStore {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).max(1);
        SnapshotStore {
            dir: data_dir.join(SNAPSHOTS_DIR),
            keep: size(config.keep),
            chunk_leaves: size(config.chunk_leaves),
        }
    }

    fn snapshot_dir(&self, height: u64) -> PathBuf {
        self.dir.join(height.to_string())
    }

    /// The heights of the complete snapshots here, newest first.
    pub fn heights(&self) -> Vec<u64> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut heights: Vec<u64> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect();
        heights.sort_unstable_by(|a, b| b.cmp(a));
        heights
    }

    /// Cuts the state `state` holds (the head it records) into a snapshot on disk, then
    /// removes snapshots beyond the newest `keep`. A snapshot already here is kept as is.
    pub fn take(&self, state: &dyn StateStore) -> Result<Taken, SnapshotStoreError> {
        let head = Ledger::chain_head(state)
            .map_err(|e| SnapshotStoreError::Cut(e.to_string()))?
            .ok_or_else(|| SnapshotStoreError::Cut("no chain head".to_string()))?;
        let height = head.height;
        let finished = self.snapshot_dir(height);
        if finished.exists() {
            return Ok(Taken {
                height,
                chunks: 0,
                bytes: 0,
            });
        }
        let (top, chunks) = snapshot::take(state, height, self.chunk_leaves)
            .map_err(|e| SnapshotStoreError::Cut(e.to_string()))?;
        let partial = self.dir.join(format!("{height}{PARTIAL_SUFFIX}"));
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(io_error(&partial))?;
        }
        std::fs::create_dir_all(&partial).map_err(io_error(&partial))?;
        let stored = StoredSnapshot {
            height,
            ledger_root: head.ledger_root,
            results_root: head.results_root,
            time_ms: head.time_ms,
            top,
        };
        let top_bytes = tally_consensus::encode(&stored);
        let mut bytes = top_bytes.len() as u64;
        write_synced(&partial.join(TOP_FILE), &top_bytes)?;
        for (index, chunk) in chunks.iter().enumerate() {
            let encoded = tally_consensus::encode(chunk);
            bytes += encoded.len() as u64;
            write_synced(&partial.join(format!("chunk-{index}")), &encoded)?;
        }
        std::fs::rename(&partial, &finished).map_err(io_error(&finished))?;
        for old in self.heights().into_iter().skip(self.keep) {
            let dir = self.snapshot_dir(old);
            std::fs::remove_dir_all(&dir).map_err(io_error(&dir))?;
        }
        Ok(Taken {
            height,
            chunks: chunks.len(),
            bytes,
        })
    }

    /// The snapshot of `height`, if it is here.
    pub fn read(&self, height: u64) -> Result<Option<StoredSnapshot>, SnapshotStoreError> {
        let path = self.snapshot_dir(height).join(TOP_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&path)(e)),
        };
        tally_consensus::decode(&bytes, usize::MAX)
            .map(Some)
            .map_err(|e| SnapshotStoreError::Damaged {
                path,
                reason: e.to_string(),
            })
    }

    /// Every complete snapshot here, newest first.
    pub fn list(&self) -> Result<Vec<SnapshotSummary>, SnapshotStoreError> {
        let mut out = Vec::new();
        for height in self.heights() {
            let Some(stored) = self.read(height)? else {
                continue;
            };
            let dir = self.snapshot_dir(height);
            let mut bytes = 0u64;
            for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
                let entry = entry.map_err(io_error(&dir))?;
                bytes += entry.metadata().map_err(io_error(&dir))?.len();
            }
            out.push(SnapshotSummary {
                height,
                chunks: stored.top.chunks.len(),
                bytes,
                ledger_root: stored.ledger_root,
            });
        }
        Ok(out)
    }

    /// Chunk `index` of the snapshot of `height`, encoded as it is sent.
    pub fn read_chunk(
        &self,
        height: u64,
        index: u32,
    ) -> Result<Option<Vec<u8>>, SnapshotStoreError> {
        let path = self.snapshot_dir(height).join(format!("chunk-{index}"));
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path)(e)),
        }
    }
}
