//! The node's data directory: one redb database file, `chain.redb`.
//!
//! Everything that must agree with everything else lives in one table, so a decided block,
//! its certificate, its results, the ledger writes it caused and the indexes commit in one
//! write transaction: a node killed at any instant finds either all of a block or none of it.
//! The signer's record lives in its own file, `signer.redb`, committed (durably) on every
//! write before a vote leaves the node. It is a file apart so that a backup never holds it and
//! a restore never rolls it back (see [`backup`]): a validator restored from an older backup
//! keeps the record of what it signed since, and cannot sign twice at a height.
//!
//! Keys in the chain table (heights big-endian so they sort):
//! `m/...` metadata, `b/{h}` block, `c/{h}` commit certificate, `r/{h}` block results,
//! `t/{tx id}` transaction location (the id covers the body and the signers),
//! `a/{account}/{h}/{i}` account history, `s/{key}` ledger state, `v/{h}` the validator
//! updates of a block that changed the validator set, `h/{h}` a pruned block's header (or
//! one a state sync brought: a node started from a snapshot holds no block below it).
//!
//! Why redb and not sled (which Tally used up to schema 4): sled 0.34 keeps per-page
//! bookkeeping in memory for every page it ever wrote, beyond its `cache_capacity`, so a
//! validator's memory grew with its history (about 1 KiB per committed transaction at
//! 1,000 tx/s; see `BENCHMARKS.md`). redb's memory is its page cache, bounded by
//! `[limits] storage_cache_bytes`, and the bytes it uses are reported (`tally_storage_cache_bytes`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tally_crypto::Hash;

pub mod backup;

/// 2: transactions are indexed (`t/{id}`) and named in receipts by an id that covers their
/// signers (`SignedTransaction::hash`), not by their body's hash; a version-1 directory's
/// index and state roots do not match what this code computes, so it is refused.
/// 3: an institution's key may be revoked (`Institution::key` is optional), the rules carry
/// the account recovery delay, and recoveries pend in state: a version-2 directory's records
/// do not decode as these, so it is refused.
/// 4: a `Transfer` (and its `TransferReceived` event) carries a memo: a version-3
/// directory's blocks and receipts do not decode as these, so it is refused.
/// 5: the directory is a redb file (`chain.redb`), no longer a sled database; a directory
/// holding sled's files is refused with that reason.
/// 6: a block carries each transaction as its canonical bytes (length-prefixed), so a
/// version-5 directory's blocks do not decode as these, and it is refused.
/// 7: an institution has a name (`Institution::name`, in state and in `AddInstitution`),
/// and the genesis carries the heartbeat: a version-6 directory's institution records do
/// not decode as these, so it is refused.
/// 8: state holds the ledger tree's nodes (tag `J`) and the chain head its ledger and results
/// roots, the state root is the tree's (`tally_contracts::commitment`), and a block is framed
/// as a header and a body: a version-7 directory has no tree and its blocks do not decode as
/// these, so it is refused.
/// 9: a block header carries the digest of its validator-set changes and the id of the set
/// that signs it, and the blocks that carry changes are indexed (`v/{h}`): a version-8
/// directory's blocks do not decode as these, so it is refused.
const SCHEMA_VERSION: u32 = 9;
/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "chain.redb";
/// The signer's database file inside the data directory (never in a backup).
pub const SIGNER_FILE: &str = "signer.redb";
/// A file every sled database directory has: how an earlier Tally's directory is recognised.
const SLED_MARKER_FILE: &str = "conf";
const CHAIN: TableDefinition<&[u8], &[u8]> = TableDefinition::new("chain");
const SIGNER: TableDefinition<&[u8], &[u8]> = TableDefinition::new("signer");
/// What this node saw by itself, agreed with no one, never in a state root or in sync:
/// `k/{h}` when it committed each block (its own clock, milliseconds since the epoch; 8
/// bytes), how many transactions the block holds (8 more) and how many pieces of
/// equivocation evidence (8 more), and
/// `alert/{key}` the regulator's triage of an audit alert (see `api::audit_alerts`).
const LOCAL: TableDefinition<&[u8], &[u8]> = TableDefinition::new("local");
const KEY_SCHEMA: &[u8] = b"m/schema";
const KEY_CHAIN_ID: &[u8] = b"m/chain_id";
const KEY_HEAD: &[u8] = b"m/head";
const KEY_SIGNER_RECORD: &[u8] = b"record";
/// Consensus's valid value (`Output::Persist`), beside the signer's record.
const KEY_VALID_RECORD: &[u8] = b"valid";
const KEY_GENESIS: &[u8] = b"m/genesis";
const KEY_VALIDATOR_SCHEDULE: &[u8] = b"m/validator_schedule";
const KEY_GENESIS_VALIDATORS: &[u8] = b"m/genesis_validators";
/// The highest height pruned (`[pruning] keep_blocks`); absent when nothing is.
const KEY_PRUNED_THROUGH: &[u8] = b"m/pruned_through";
/// Present while a state sync is filling the directory: what it wrote is not a chain yet.
const KEY_STATE_SYNC: &[u8] = b"m/state_sync";
/// The height of the snapshot this directory's chain started from (absent: genesis).
const KEY_SYNCED_FROM: &[u8] = b"m/synced_from";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open the data directory {path}: {source}")]
    Open { path: PathBuf, source: redb::Error },
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the data directory {0} holds a sled database written by an earlier Tally (schema 4 or \
         older); this version keeps its data in {DATABASE_FILE}: start from an empty directory \
         and let the node sync the chain from its peers"
    )]
    EarlierFormat(PathBuf),
    #[error("the data directory is damaged: {0}")]
    Damaged(String),
    #[error("the data directory belongs to chain {found:?}, not {expected:?}")]
    WrongChain { expected: String, found: String },
    #[error("block {got} does not follow the stored head {head}")]
    NotNextHeight { head: u64, got: u64 },
    #[error("storage I/O failed: {0}")]
    Io(#[from] redb::Error),
}

/// Turns any of redb's specific errors into [`StorageError::Io`].
fn io(error: impl Into<redb::Error>) -> StorageError {
    StorageError::Io(error.into())
}

/// Where a committed transaction is: its block height and index in the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    pub height: u64,
    pub index: u32,
}

/// A block that changed the validator set, as a state sync brings it: its header kept as a
/// pruned block's (`h/{h}`), its certificate and its updates, encoded.
#[derive(Debug, Clone)]
pub struct KeptChange {
    pub height: u64,
    pub kept_header: Vec<u8>,
    pub certificate: Vec<u8>,
    pub updates: Vec<u8>,
}

/// What completes a state sync ([`Storage::install_snapshot`]).
#[derive(Debug)]
pub struct SnapshotInstall<'a> {
    pub height: u64,
    pub genesis: &'a Hash,
    /// The chain-head record and any other state written last.
    pub state_writes: &'a [(Vec<u8>, Option<Vec<u8>>)],
    /// The snapshot block's body digest, then its header (as a pruned block keeps it).
    pub kept_header: &'a [u8],
    pub certificate: &'a [u8],
    pub changes: &'a [KeptChange],
    pub validator_schedule: Option<&'a [u8]>,
}

/// Everything one decided block changes, committed together.
#[derive(Debug, Default)]
pub struct BlockCommit<'a> {
    pub height: u64,
    pub block: &'a [u8],
    pub certificate: &'a [u8],
    pub results: &'a [u8],
    /// Ledger writes in execution order; `None` deletes the key.
    pub state_writes: &'a [(Vec<u8>, Option<Vec<u8>>)],
    /// Hashes of the block's transactions, in block order.
    pub tx_hashes: &'a [Hash],
    /// (account key bytes, index in block) for each account a transaction touched.
    pub account_entries: &'a [(Vec<u8>, u32)],
    /// The validator-set schedule after this block, when the block changed it.
    pub validator_schedule: Option<&'a [u8]>,
    /// The block's validator updates, encoded: kept (under `v/{h}`) when the block changed
    /// the schedule.
    pub validator_updates: &'a [u8],
    /// Blocks to keep whole (`[pruning] keep_blocks`): older ones keep only their header and
    /// certificate. `None` keeps everything.
    pub keep_blocks: Option<u64>,
    /// This node's clock when it committed the block (milliseconds since the epoch): kept
    /// in the node's own table, for the latency it reports (not agreed, not synced).
    pub committed_ms: u64,
    /// Pieces of equivocation evidence the block carries (kept beside the commit time, so
    /// a search for evidence skips the blocks without any unread).
    pub evidence_count: u64,
}

/// The data directory, shared by the chain task and the API's readers: each read sees the
/// last committed write transaction, whole.
#[derive(Debug, Clone)]
pub struct Storage {
    db: Arc<redb::Database>,
    /// `signer.redb`: the signer's record and consensus's valid value.
    signer: Arc<redb::Database>,
    /// The newest state a committed block certifies (see [`Storage::certified_state`]).
    certified: Arc<std::sync::RwLock<Option<Arc<StateSnapshot>>>>,
}

fn height_key(prefix: &[u8], height: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&height.to_be_bytes());
    key
}

fn alert_key(key: &str) -> Vec<u8> {
    let mut full = Vec::with_capacity(6 + key.len());
    full.extend_from_slice(b"alert/");
    full.extend_from_slice(key.as_bytes());
    full
}

fn state_key(key: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(2 + key.len());
    full.extend_from_slice(b"s/");
    full.extend_from_slice(key);
    full
}

fn read_u64(bytes: &[u8], what: &str) -> Result<u64, StorageError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StorageError::Damaged(format!("{what} is not 8 bytes")))?;
    Ok(u64::from_be_bytes(arr))
}

/// What a pruned block keeps under `h/{h}`: its body's digest, then its header.
pub fn kept_header(header: &[u8], body_digest: &Hash) -> Vec<u8> {
    let mut kept = Vec::with_capacity(32 + header.len());
    kept.extend_from_slice(body_digest.as_bytes());
    kept.extend_from_slice(header);
    kept
}

/// The most heights one commit prunes: a node that turns pruning on over a long history
/// catches up over many commits, each bounded.
const PRUNE_PER_COMMIT_MAX: u64 = 64;

/// Prunes the blocks at heights up to `through` not pruned yet (at most
/// [`PRUNE_PER_COMMIT_MAX`] of them): each block's bytes become its header and its body's
/// digest (`h/{h}`: the digest, then the header), so its id and certificate can still be
/// checked, and its results go.
fn prune(chain: &mut redb::Table<'_, &[u8], &[u8]>, through: u64) -> Result<(), StorageError> {
    let done = chain
        .get(KEY_PRUNED_THROUGH)
        .map_err(io)?
        .map(|b| read_u64(b.value(), "the pruned height"))
        .transpose()?
        .unwrap_or(0);
    let end = through.min(done.saturating_add(PRUNE_PER_COMMIT_MAX));
    if end <= done {
        return Ok(());
    }
    for height in done.saturating_add(1)..=end {
        let block = chain
            .remove(height_key(b"b/", height).as_slice())
            .map_err(io)?
            .map(|v| v.value().to_vec());
        if let Some(block) = block {
            let (header, body) = tally_consensus::split_block(&block).ok_or_else(|| {
                StorageError::Damaged(format!("block {height} has no header frame"))
            })?;
            let kept = kept_header(header, &tally_consensus::BlockHash::body_digest(body));
            chain
                .insert(height_key(b"h/", height).as_slice(), kept.as_slice())
                .map_err(io)?;
        }
        chain
            .remove(height_key(b"r/", height).as_slice())
            .map_err(io)?;
    }
    chain
        .insert(KEY_PRUNED_THROUGH, end.to_be_bytes().as_slice())
        .map_err(io)?;
    Ok(())
}

/// A ledger write into the chain table: a value, or a deletion.
fn put_state(
    table: &mut redb::Table<'_, &[u8], &[u8]>,
    writes: &[(Vec<u8>, Option<Vec<u8>>)],
) -> Result<(), StorageError> {
    for (key, value) in writes {
        let full = state_key(key);
        match value {
            Some(v) => {
                table.insert(full.as_slice(), v.as_slice()).map_err(io)?;
            }
            None => {
                table.remove(full.as_slice()).map_err(io)?;
            }
        }
    }
    Ok(())
}

impl Storage {
    /// Opens (or creates) the data directory for `chain_id`. Refuses a directory of another
    /// chain or schema, and one whose head block is missing.
    pub fn open(dir: &Path, chain_id: &str) -> Result<Storage, StorageError> {
        Storage::open_with_cache(dir, chain_id, crate::config::STORAGE_CACHE_BYTES_DEFAULT)
    }

    /// [`Storage::open`] with a page cache of at most `cache_bytes` (`[limits]
    /// storage_cache_bytes`).
    pub fn open_with_cache(
        dir: &Path,
        chain_id: &str,
        cache_bytes: u64,
    ) -> Result<Storage, StorageError> {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let file = dir.join(DATABASE_FILE);
        if !file.exists() && dir.join(SLED_MARKER_FILE).exists() {
            return Err(StorageError::EarlierFormat(dir.to_path_buf()));
        }
        Storage::open_file(dir, &file, chain_id, cache_bytes)
    }

    /// [`Storage::open_with_cache`] with the chain's database at `file` (a restore checks the
    /// file it wrote before it becomes the directory's `chain.redb`).
    fn open_file(
        dir: &Path,
        file: &Path,
        chain_id: &str,
        cache_bytes: u64,
    ) -> Result<Storage, StorageError> {
        let open_error = |source: redb::Error| StorageError::Open {
            path: dir.to_path_buf(),
            source,
        };
        let db = redb::Database::builder()
            .set_cache_size(usize::try_from(cache_bytes).unwrap_or(usize::MAX))
            .create(file)
            .map_err(|e| open_error(e.into()))?;
        let signer =
            redb::Database::create(dir.join(SIGNER_FILE)).map_err(|e| open_error(e.into()))?;
        let storage = Storage {
            db: Arc::new(db),
            signer: Arc::new(signer),
            certified: Arc::default(),
        };
        storage.move_signer_table()?;
        let found_schema = storage.chain_get(KEY_SCHEMA)?;
        match found_schema {
            None => {
                let txn = storage.db.begin_write().map_err(io)?;
                {
                    let mut chain = txn.open_table(CHAIN).map_err(io)?;
                    chain
                        .insert(KEY_SCHEMA, SCHEMA_VERSION.to_be_bytes().as_slice())
                        .map_err(io)?;
                    chain
                        .insert(KEY_CHAIN_ID, chain_id.as_bytes())
                        .map_err(io)?;
                    txn.open_table(LOCAL).map_err(io)?;
                }
                txn.commit().map_err(io)?;
            }
            Some(version) => {
                if version != SCHEMA_VERSION.to_be_bytes() {
                    return Err(StorageError::Damaged(format!(
                        "schema version {version:?} is not {SCHEMA_VERSION}: move \
                         {DATABASE_FILE} aside and start again, the node syncs the chain from \
                         its peers (keep {SIGNER_FILE}: it holds what this validator signed)"
                    )));
                }
                let found = storage.chain_get(KEY_CHAIN_ID)?.ok_or_else(|| {
                    StorageError::Damaged("the chain id record is missing".to_string())
                })?;
                let found = String::from_utf8_lossy(&found).into_owned();
                if found != chain_id {
                    return Err(StorageError::WrongChain {
                        expected: chain_id.to_string(),
                        found,
                    });
                }
                if let Some(head) = storage.head()?
                    && ((storage.block(head)?.is_none()
                        && storage.chain_get(&height_key(b"h/", head))?.is_none())
                        || storage.certificate(head)?.is_none())
                {
                    return Err(StorageError::Damaged(format!(
                        "the head is {head} but its block or certificate is missing"
                    )));
                }
            }
        }
        Ok(storage)
    }

    /// A data directory written before the signer's file existed (schema 8 and earlier) kept
    /// the signer's table in `chain.redb`: it moves to `signer.redb`, durably there before it
    /// is dropped here, and never over a record `signer.redb` already holds. It moves before
    /// the schema is checked, so an older directory refused for its schema leaves the record
    /// behind in `signer.redb` when its operator moves `chain.redb` aside.
    fn move_signer_table(&self) -> Result<(), StorageError> {
        let old: Vec<(Vec<u8>, Vec<u8>)> = {
            let txn = self.db.begin_read().map_err(io)?;
            let table = match txn.open_table(SIGNER) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
                Err(e) => return Err(io(e)),
            };
            table
                .iter()
                .map_err(io)?
                .map(|entry| {
                    entry
                        .map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
                        .map_err(io)
                })
                .collect::<Result<_, _>>()?
        };
        for (key, value) in &old {
            if Storage::get_from(&self.signer, SIGNER, key)?.is_none() {
                Storage::put_into(&self.signer, SIGNER, key, value)?;
            }
        }
        let txn = self.db.begin_write().map_err(io)?;
        txn.delete_table(SIGNER).map_err(io)?;
        txn.commit().map_err(io)
    }

    /// Bytes the page cache holds now (at most `[limits] storage_cache_bytes`).
    pub fn cache_used_bytes(&self) -> u64 {
        u64::try_from(self.db.cache_stats().used_bytes()).unwrap_or(u64::MAX)
    }

    fn get_from(
        db: &redb::Database,
        table: TableDefinition<&[u8], &[u8]>,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = db.begin_read().map_err(io)?;
        let table = match txn.open_table(table) {
            Ok(table) => table,
            // Created at open: missing only in a file another program wrote.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        Ok(table.get(key).map_err(io)?.map(|v| v.value().to_vec()))
    }

    fn chain_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Storage::get_from(&self.db, CHAIN, key)
    }

    /// Writes one value into `table` and commits it durably.
    fn put_into(
        db: &redb::Database,
        table: TableDefinition<&[u8], &[u8]>,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StorageError> {
        let txn = db.begin_write().map_err(io)?;
        txn.open_table(table)
            .map_err(io)?
            .insert(key, value)
            .map_err(io)?;
        txn.commit().map_err(io)
    }

    /// The height of the last committed block, if any.
    pub fn head(&self) -> Result<Option<u64>, StorageError> {
        self.chain_get(KEY_HEAD)?
            .map(|b| read_u64(&b, "the head height"))
            .transpose()
    }

    /// Commits a decided block and all it changed in one durable write transaction.
    pub fn commit_block(&self, commit: &BlockCommit<'_>) -> Result<(), StorageError> {
        let txn = self.db.begin_write().map_err(io)?;
        {
            let mut chain = txn.open_table(CHAIN).map_err(io)?;
            // Read inside the write transaction: no other commit can slip in between.
            let head = chain
                .get(KEY_HEAD)
                .map_err(io)?
                .map(|b| read_u64(b.value(), "the head height"))
                .transpose()?;
            let expected = head.map_or(1, |h| h.saturating_add(1));
            if commit.height != expected {
                return Err(StorageError::NotNextHeight {
                    head: head.unwrap_or(0),
                    got: commit.height,
                });
            }
            chain
                .insert(height_key(b"b/", commit.height).as_slice(), commit.block)
                .map_err(io)?;
            chain
                .insert(
                    height_key(b"c/", commit.height).as_slice(),
                    commit.certificate,
                )
                .map_err(io)?;
            chain
                .insert(height_key(b"r/", commit.height).as_slice(), commit.results)
                .map_err(io)?;
            put_state(&mut chain, commit.state_writes)?;
            for (index, hash) in commit.tx_hashes.iter().enumerate() {
                let mut key = Vec::with_capacity(34);
                key.extend_from_slice(b"t/");
                key.extend_from_slice(hash.as_bytes());
                let mut location = [0u8; 12];
                location[..8].copy_from_slice(&commit.height.to_be_bytes());
                location[8..].copy_from_slice(&(index as u32).to_be_bytes());
                chain
                    .insert(key.as_slice(), location.as_slice())
                    .map_err(io)?;
            }
            for (account, index) in commit.account_entries {
                let mut key = Vec::with_capacity(2 + account.len() + 13);
                key.extend_from_slice(b"a/");
                key.extend_from_slice(account);
                key.push(b'/');
                key.extend_from_slice(&commit.height.to_be_bytes());
                key.extend_from_slice(&index.to_be_bytes());
                chain.insert(key.as_slice(), [].as_slice()).map_err(io)?;
            }
            if let Some(schedule) = commit.validator_schedule {
                chain.insert(KEY_VALIDATOR_SCHEDULE, schedule).map_err(io)?;
                // The schedule changes only by a block's validator updates: kept apart, so
                // they outlive the block's pruning (a client follows them from the genesis).
                chain
                    .insert(
                        height_key(b"v/", commit.height).as_slice(),
                        commit.validator_updates,
                    )
                    .map_err(io)?;
            }
            if let Some(keep) = commit.keep_blocks {
                prune(&mut chain, commit.height.saturating_sub(keep))?;
            }
            chain
                .insert(KEY_HEAD, commit.height.to_be_bytes().as_slice())
                .map_err(io)?;
            let mut record = [0u8; 24];
            record[..8].copy_from_slice(&commit.committed_ms.to_be_bytes());
            record[8..16].copy_from_slice(&(commit.tx_hashes.len() as u64).to_be_bytes());
            record[16..].copy_from_slice(&commit.evidence_count.to_be_bytes());
            txn.open_table(LOCAL)
                .map_err(io)?
                .insert(
                    height_key(b"k/", commit.height).as_slice(),
                    record.as_slice(),
                )
                .map_err(io)?;
        }
        txn.commit().map_err(io)
    }

    /// When this node committed each block of `heights` (its own clock), newest last, `None`
    /// where it has no record (a directory written before this record existed has none for
    /// its older blocks); one read transaction.
    pub fn committed_ms(
        &self,
        heights: std::ops::RangeInclusive<u64>,
    ) -> Result<Vec<Option<u64>>, StorageError> {
        self.recorded_counts(heights, 0..8)
    }

    /// How many transactions each block of `heights` holds, as this node recorded when it
    /// committed it (`None` where it has no record), newest last; one read transaction,
    /// without reading the blocks.
    pub fn recorded_transactions(
        &self,
        heights: std::ops::RangeInclusive<u64>,
    ) -> Result<Vec<Option<u64>>, StorageError> {
        self.recorded_counts(heights, 8..16)
    }

    /// How many pieces of evidence each block of `heights` carries, as recorded at commit
    /// (`None` where there is no record), newest last.
    pub fn recorded_evidence(
        &self,
        heights: std::ops::RangeInclusive<u64>,
    ) -> Result<Vec<Option<u64>>, StorageError> {
        self.recorded_counts(heights, 16..24)
    }

    fn recorded_counts(
        &self,
        heights: std::ops::RangeInclusive<u64>,
        field: std::ops::Range<usize>,
    ) -> Result<Vec<Option<u64>>, StorageError> {
        let txn = self.db.begin_read().map_err(io)?;
        let table = match txn.open_table(LOCAL) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Ok(heights.map(|_| None).collect());
            }
            Err(e) => return Err(io(e)),
        };
        let mut counts = Vec::new();
        for height in heights {
            let record = table
                .get(height_key(b"k/", height).as_slice())
                .map_err(io)?;
            let count = match record.as_ref().and_then(|r| r.value().get(field.clone())) {
                Some(bytes) => Some(read_u64(bytes, "a block's recorded count")?),
                None => None,
            };
            counts.push(count);
        }
        Ok(counts)
    }

    /// The node's own records under `alert/{key}` (the regulator's triage of an alert) for
    /// each of `keys`, in their order: one read transaction.
    pub fn alert_records(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let txn = self.db.begin_read().map_err(io)?;
        let table = match txn.open_table(LOCAL) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![None; keys.len()]),
            Err(e) => return Err(io(e)),
        };
        keys.iter()
            .map(|key| {
                Ok(table
                    .get(alert_key(key).as_slice())
                    .map_err(io)?
                    .map(|v| v.value().to_vec()))
            })
            .collect()
    }

    /// The record of each key, `new` stored now for those that had none: one write
    /// transaction, so a record written meanwhile is kept, not replaced.
    pub fn alert_records_or_insert(
        &self,
        keys: &[String],
        new: &[u8],
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let txn = self.db.begin_write().map_err(io)?;
        let mut records = Vec::with_capacity(keys.len());
        {
            let mut table = txn.open_table(LOCAL).map_err(io)?;
            for key in keys {
                let full = alert_key(key);
                let stored = table
                    .get(full.as_slice())
                    .map_err(io)?
                    .map(|v| v.value().to_vec());
                match stored {
                    Some(record) => records.push(record),
                    None => {
                        table.insert(full.as_slice(), new).map_err(io)?;
                        records.push(new.to_vec());
                    }
                }
            }
        }
        txn.commit().map_err(io)?;
        Ok(records)
    }

    /// Rewrites the record of `key` in one write transaction: `update` is given the stored
    /// record, if any, and returns the new one, or an error that leaves it as it was.
    pub fn update_alert_record<E>(
        &self,
        key: &str,
        update: impl FnOnce(Option<&[u8]>) -> Result<Vec<u8>, E>,
    ) -> Result<Result<Vec<u8>, E>, StorageError> {
        let full = alert_key(key);
        let txn = self.db.begin_write().map_err(io)?;
        let written = {
            let mut table = txn.open_table(LOCAL).map_err(io)?;
            let stored = table
                .get(full.as_slice())
                .map_err(io)?
                .map(|v| v.value().to_vec());
            match update(stored.as_deref()) {
                Ok(record) => {
                    table
                        .insert(full.as_slice(), record.as_slice())
                        .map_err(io)?;
                    Ok(record)
                }
                Err(e) => Err(e),
            }
        };
        if written.is_ok() {
            txn.commit().map_err(io)?;
        } else {
            txn.abort().map_err(io)?;
        }
        Ok(written)
    }

    /// Commits the genesis state (its ledger writes) and the genesis hash in one write
    /// transaction, into a data directory that has neither yet.
    pub fn commit_genesis(
        &self,
        genesis: &Hash,
        state_writes: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<(), StorageError> {
        let txn = self.db.begin_write().map_err(io)?;
        {
            let mut chain = txn.open_table(CHAIN).map_err(io)?;
            if chain.get(KEY_GENESIS).map_err(io)?.is_some()
                || chain.get(KEY_HEAD).map_err(io)?.is_some()
            {
                return Err(StorageError::Damaged(
                    "genesis applied twice to one data directory".to_string(),
                ));
            }
            put_state(&mut chain, state_writes)?;
            chain
                .insert(KEY_GENESIS, genesis.as_bytes().as_slice())
                .map_err(io)?;
        }
        txn.commit().map_err(io)
    }

    /// Starts filling an empty directory from a snapshot: any state an interrupted sync left
    /// is removed, and the directory is marked as not a chain until
    /// [`Storage::install_snapshot`] completes it.
    pub fn begin_state_sync(&self) -> Result<(), StorageError> {
        let txn = self.db.begin_write().map_err(io)?;
        {
            let mut chain = txn.open_table(CHAIN).map_err(io)?;
            if chain.get(KEY_GENESIS).map_err(io)?.is_some() {
                return Err(StorageError::Damaged(
                    "a state sync into a directory that holds a chain".to_string(),
                ));
            }
            let (start, end) = (state_key(&[]), state_key(&[u8::MAX]));
            chain
                .retain_in(start.as_slice()..end.as_slice(), |_, _| false)
                .map_err(io)?;
            chain.insert(KEY_STATE_SYNC, [1u8].as_slice()).map_err(io)?;
        }
        txn.commit().map_err(io)
    }

    /// Whether a state sync began here and did not complete.
    pub fn state_sync_interrupted(&self) -> Result<bool, StorageError> {
        Ok(self.chain_get(KEY_STATE_SYNC)?.is_some())
    }

    /// Writes verified snapshot rows (ledger state and tree nodes) during a state sync. Not
    /// durable by itself: [`Storage::install_snapshot`] is, and an interrupted sync starts over.
    pub fn put_snapshot_rows(
        &self,
        writes: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<(), StorageError> {
        let mut txn = self.db.begin_write().map_err(io)?;
        txn.set_durability(redb::Durability::None).map_err(io)?;
        {
            let mut chain = txn.open_table(CHAIN).map_err(io)?;
            if chain.get(KEY_STATE_SYNC).map_err(io)?.is_none() {
                return Err(StorageError::Damaged(
                    "snapshot rows outside a state sync".to_string(),
                ));
            }
            put_state(&mut chain, writes)?;
        }
        txn.commit().map_err(io)
    }

    /// Gives a state sync up: its rows are removed and the directory is empty again.
    pub fn abandon_state_sync(&self) -> Result<(), StorageError> {
        let txn = self.db.begin_write().map_err(io)?;
        {
            let mut chain = txn.open_table(CHAIN).map_err(io)?;
            let (start, end) = (state_key(&[]), state_key(&[u8::MAX]));
            chain
                .retain_in(start.as_slice()..end.as_slice(), |_, _| false)
                .map_err(io)?;
            chain.remove(KEY_STATE_SYNC).map_err(io)?;
        }
        txn.commit().map_err(io)
    }

    /// Completes a state sync, durably and at once: the chain head, the genesis it follows,
    /// the snapshot block's header and certificate, the blocks that changed the validator set
    /// (their headers, certificates and updates) and the schedule they make. The blocks up to
    /// the snapshot count as pruned: this node never held them.
    pub fn install_snapshot(&self, install: &SnapshotInstall<'_>) -> Result<(), StorageError> {
        let txn = self.db.begin_write().map_err(io)?;
        {
            let mut chain = txn.open_table(CHAIN).map_err(io)?;
            if chain.get(KEY_STATE_SYNC).map_err(io)?.is_none() {
                return Err(StorageError::Damaged(
                    "a snapshot installed outside a state sync".to_string(),
                ));
            }
            put_state(&mut chain, install.state_writes)?;
            let height = install.height;
            chain
                .insert(height_key(b"h/", height).as_slice(), install.kept_header)
                .map_err(io)?;
            chain
                .insert(height_key(b"c/", height).as_slice(), install.certificate)
                .map_err(io)?;
            for change in install.changes {
                chain
                    .insert(
                        height_key(b"h/", change.height).as_slice(),
                        change.kept_header.as_slice(),
                    )
                    .map_err(io)?;
                chain
                    .insert(
                        height_key(b"c/", change.height).as_slice(),
                        change.certificate.as_slice(),
                    )
                    .map_err(io)?;
                chain
                    .insert(
                        height_key(b"v/", change.height).as_slice(),
                        change.updates.as_slice(),
                    )
                    .map_err(io)?;
            }
            if let Some(schedule) = install.validator_schedule {
                chain.insert(KEY_VALIDATOR_SCHEDULE, schedule).map_err(io)?;
            }
            chain
                .insert(KEY_GENESIS, install.genesis.as_bytes().as_slice())
                .map_err(io)?;
            let at = height.to_be_bytes();
            chain.insert(KEY_HEAD, at.as_slice()).map_err(io)?;
            chain
                .insert(KEY_PRUNED_THROUGH, at.as_slice())
                .map_err(io)?;
            chain.insert(KEY_SYNCED_FROM, at.as_slice()).map_err(io)?;
            chain.remove(KEY_STATE_SYNC).map_err(io)?;
        }
        txn.commit().map_err(io)
    }

    /// The height of the snapshot this chain started from; `None` when it replayed every
    /// block from the genesis.
    pub fn synced_from(&self) -> Result<Option<u64>, StorageError> {
        self.chain_get(KEY_SYNCED_FROM)?
            .map(|b| read_u64(&b, "the snapshot height"))
            .transpose()
    }

    /// The hash of the genesis this directory was started from, if any.
    pub fn genesis_hash(&self) -> Result<Option<Hash>, StorageError> {
        let Some(bytes) = self.chain_get(KEY_GENESIS)? else {
            return Ok(None);
        };
        let bytes: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| StorageError::Damaged("the genesis hash is not 32 bytes".to_string()))?;
        Ok(Some(Hash(bytes)))
    }

    /// The validator-set schedule stored with the last block that changed it.
    pub fn validator_schedule(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.chain_get(KEY_VALIDATOR_SCHEDULE)
    }

    /// Records the genesis validator set (encoded), for readers of the set in force.
    pub fn put_genesis_validators(&self, validators: &[u8]) -> Result<(), StorageError> {
        Storage::put_into(&self.db, CHAIN, KEY_GENESIS_VALIDATORS, validators)
    }

    /// The genesis validator set, encoded, if the node recorded it.
    pub fn genesis_validators(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.chain_get(KEY_GENESIS_VALIDATORS)
    }

    /// Makes everything written so far durable. Every write transaction already commits
    /// durably, so there is nothing left to do; kept for callers that say where durability
    /// matters.
    pub fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }

    pub fn block(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.chain_get(&height_key(b"b/", height))
    }

    pub fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.chain_get(&height_key(b"c/", height))
    }

    pub fn results(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.chain_get(&height_key(b"r/", height))
    }

    pub fn tx_location(&self, hash: &Hash) -> Result<Option<TxLocation>, StorageError> {
        let mut key = b"t/".to_vec();
        key.extend_from_slice(hash.as_bytes());
        let Some(value) = self.chain_get(&key)? else {
            return Ok(None);
        };
        let (height, index) = value.split_at_checked(8).ok_or_else(|| {
            StorageError::Damaged("a transaction location is too short".to_string())
        })?;
        let index: [u8; 4] = index.try_into().map_err(|_| {
            StorageError::Damaged("a transaction location is the wrong size".to_string())
        })?;
        Ok(Some(TxLocation {
            height: read_u64(height, "a transaction height")?,
            index: u32::from_be_bytes(index),
        }))
    }

    /// An account's transactions, newest first, starting below `before` (exclusive) if given.
    /// The highest height whose block was pruned to its header (0: none).
    pub fn pruned_through(&self) -> Result<u64, StorageError> {
        Ok(self
            .chain_get(KEY_PRUNED_THROUGH)?
            .map(|b| read_u64(&b, "the pruned height"))
            .transpose()?
            .unwrap_or(0))
    }

    /// Block `height`'s encoded header and its body's digest, whether the block is kept whole
    /// or pruned: what its id and its certificate are checked by.
    pub fn header_parts(&self, height: u64) -> Result<Option<(Vec<u8>, Hash)>, StorageError> {
        if let Some(block) = self.block(height)? {
            let (header, body) = tally_consensus::split_block(&block).ok_or_else(|| {
                StorageError::Damaged(format!("block {height} has no header frame"))
            })?;
            return Ok(Some((
                header.to_vec(),
                tally_consensus::BlockHash::body_digest(body),
            )));
        }
        let Some(kept) = self.chain_get(&height_key(b"h/", height))? else {
            return Ok(None);
        };
        let (digest, header) = kept.split_at_checked(32).ok_or_else(|| {
            StorageError::Damaged(format!("the kept header of block {height} is too short"))
        })?;
        let digest: [u8; 32] = digest.try_into().map_err(|_| {
            StorageError::Damaged(format!("the kept header of block {height} is too short"))
        })?;
        Ok(Some((header.to_vec(), Hash(digest))))
    }

    /// Block `height`'s header, its body's digest and its certificate, whether the block is
    /// kept whole or pruned: what a client or a joining node checks a state root by. `None`
    /// while the block is not committed here.
    pub fn certified_header(
        &self,
        height: u64,
    ) -> Result<Option<crate::proof::CertifiedHeader>, StorageError> {
        let Some((header, body_digest)) = self.header_parts(height)? else {
            return Ok(None);
        };
        let header = tally_consensus::decode(&header, usize::MAX)
            .map_err(|e| StorageError::Damaged(format!("the header of block {height}: {e}")))?;
        let certificate = self.certificate(height)?.ok_or_else(|| {
            StorageError::Damaged(format!("the certificate of block {height} is missing"))
        })?;
        let certificate = tally_consensus::decode(&certificate, usize::MAX).map_err(|e| {
            StorageError::Damaged(format!("the certificate of block {height}: {e}"))
        })?;
        Ok(Some(crate::proof::CertifiedHeader {
            header,
            body_digest,
            certificate,
        }))
    }

    /// Block `height`'s id, whether kept whole or pruned.
    pub fn block_id(
        &self,
        height: u64,
    ) -> Result<Option<tally_consensus::BlockHash>, StorageError> {
        Ok(self.header_parts(height)?.map(|(header, body_digest)| {
            tally_consensus::BlockHash::of_parts(
                tally_consensus::BlockHash::header_digest(&header),
                body_digest,
            )
        }))
    }

    /// The blocks that changed the validator set, from height `from` up, at most `limit`:
    /// each height with the block's validator updates, encoded.
    pub fn validator_changes(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let txn = self.db.begin_read().map_err(io)?;
        let chain = txn.open_table(CHAIN).map_err(io)?;
        let (start, end) = (height_key(b"v/", from), height_key(b"v/", u64::MAX));
        let mut out = Vec::new();
        for entry in chain
            .range(start.as_slice()..=end.as_slice())
            .map_err(io)?
            .take(limit)
        {
            let (key, value) = entry.map_err(io)?;
            out.push((
                read_u64(
                    key.value().get(2..).unwrap_or_default(),
                    "a validator change's height",
                )?,
                value.value().to_vec(),
            ));
        }
        Ok(out)
    }

    pub fn account_history(
        &self,
        account: &[u8],
        before: Option<TxLocation>,
        limit: usize,
    ) -> Result<Vec<TxLocation>, StorageError> {
        let mut prefix = b"a/".to_vec();
        prefix.extend_from_slice(account);
        prefix.push(b'/');
        let mut upper = prefix.clone();
        match before {
            Some(loc) => {
                upper.extend_from_slice(&loc.height.to_be_bytes());
                upper.extend_from_slice(&loc.index.to_be_bytes());
            }
            None => upper.extend_from_slice(&[0xff; 13]),
        }
        let txn = self.db.begin_read().map_err(io)?;
        let chain = txn.open_table(CHAIN).map_err(io)?;
        let mut out = Vec::new();
        for entry in chain
            .range(prefix.as_slice()..upper.as_slice())
            .map_err(io)?
            .rev()
            .take(limit)
        {
            let (key, _) = entry.map_err(io)?;
            let tail = key.value().get(prefix.len()..).unwrap_or_default();
            let (height, index) = tail.split_at_checked(8).ok_or_else(|| {
                StorageError::Damaged("an account history key is too short".to_string())
            })?;
            let index: [u8; 4] = index.try_into().map_err(|_| {
                StorageError::Damaged("an account history key is the wrong size".to_string())
            })?;
            out.push(TxLocation {
                height: read_u64(height, "a history height")?,
                index: u32::from_be_bytes(index),
            });
        }
        Ok(out)
    }

    /// A ledger state value, as committed by the last block.
    pub fn state_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.state_snapshot()?.get(key)
    }

    /// The ledger state as the last committed block left it, for many reads: a block's
    /// execution or a batch of admissions reads through one read transaction instead of
    /// opening one per key, and sees one state throughout.
    pub fn state_snapshot(&self) -> Result<StateSnapshot, StorageError> {
        let txn = self.db.begin_read().map_err(io)?;
        Ok(StateSnapshot {
            chain: txn.open_table(CHAIN).map_err(io)?,
        })
    }

    /// The state after block `h - 1`, kept once block `h` committed: block `h`'s header carries
    /// its state root and block `h`'s certificate signs that header, so proofs read from it can
    /// be checked by a client (the state after `h` is certified only by block `h + 1`). A
    /// read snapshot of the database (redb keeps its pages while it is held; the next commit
    /// replaces it). `None` until a block commits after the node starts.
    pub fn certified_state(&self) -> Option<Arc<StateSnapshot>> {
        self.certified.read().ok().and_then(|c| c.clone())
    }

    /// Keeps `snapshot`, the state a block just committed was executed on, as the certified
    /// state.
    pub fn set_certified_state(&self, snapshot: StateSnapshot) {
        if let Ok(mut certified) = self.certified.write() {
            *certified = Some(Arc::new(snapshot));
        }
    }

    /// The signer's record: what the validator key last signed.
    pub fn signer_record(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Storage::get_from(&self.signer, SIGNER, KEY_SIGNER_RECORD)
    }

    /// Stores the signer's record durably before returning, so a signature released after
    /// this call is never forgotten by a restart.
    pub fn put_signer_record(&self, record: &[u8]) -> Result<(), StorageError> {
        Storage::put_into(&self.signer, SIGNER, KEY_SIGNER_RECORD, record)
    }

    /// Consensus's last valid value (a block with a quorum of prevotes) at the height being
    /// decided, as stored by [`Storage::put_valid_record`].
    pub fn valid_record(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Storage::get_from(&self.signer, SIGNER, KEY_VALID_RECORD)
    }

    /// Stores consensus's valid value durably, replacing the one before: a validator that
    /// crashes after precommitting it must find it again to re-propose it.
    pub fn put_valid_record(&self, record: &[u8]) -> Result<(), StorageError> {
        Storage::put_into(&self.signer, SIGNER, KEY_VALID_RECORD, record)
    }
}

/// What one kind of record takes in the chain table (see the module documentation's keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KindUsage {
    pub kind: RecordKind,
    pub entries: u64,
    /// Key and value bytes together, as stored before redb's page overhead.
    pub bytes: u64,
}

/// The kinds of record in the chain table, by key prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum RecordKind {
    Blocks,
    Certificates,
    Results,
    TransactionIndex,
    AccountHistory,
    State,
    /// The ledger tree's nodes (state entries under the tree's tag).
    StateTree,
    #[default]
    Metadata,
}

impl RecordKind {
    pub const ALL: [RecordKind; 8] = [
        RecordKind::Blocks,
        RecordKind::Certificates,
        RecordKind::Results,
        RecordKind::TransactionIndex,
        RecordKind::AccountHistory,
        RecordKind::State,
        RecordKind::StateTree,
        RecordKind::Metadata,
    ];

    fn of(key: &[u8]) -> RecordKind {
        if key.get(..3) == Some(b"s/J".as_slice()) {
            return RecordKind::StateTree;
        }
        match key.get(..2) {
            Some(b"b/" | b"h/") => RecordKind::Blocks,
            Some(b"c/") => RecordKind::Certificates,
            Some(b"r/") => RecordKind::Results,
            Some(b"t/") => RecordKind::TransactionIndex,
            Some(b"a/") => RecordKind::AccountHistory,
            Some(b"s/") => RecordKind::State,
            _ => RecordKind::Metadata,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Blocks => "blocks",
            RecordKind::Certificates => "certificates",
            RecordKind::Results => "results",
            RecordKind::TransactionIndex => "transaction index",
            RecordKind::AccountHistory => "account history",
            RecordKind::State => "ledger state",
            RecordKind::StateTree => "ledger state tree",
            RecordKind::Metadata => "metadata",
        }
    }

    /// Whether the record is history (grows with every block) rather than current state.
    pub fn is_history(self) -> bool {
        !matches!(
            self,
            RecordKind::State | RecordKind::StateTree | RecordKind::Metadata
        )
    }
}

impl Storage {
    /// Entries in the chain table: what a walk of [`Storage::usage`] visits.
    pub fn chain_entries(&self) -> Result<u64, StorageError> {
        let txn = self.db.begin_read().map_err(io)?;
        let chain = txn.open_table(CHAIN).map_err(io)?;
        chain.len().map_err(io)
    }

    /// Entries and bytes of each kind of record, by a walk of the whole chain table (as of
    /// one snapshot). `visited` is told the count every 10,000 entries, for a progress bar.
    pub fn usage(&self, mut visited: impl FnMut(u64)) -> Result<Vec<KindUsage>, StorageError> {
        let mut usage: Vec<KindUsage> = RecordKind::ALL
            .iter()
            .map(|&kind| KindUsage {
                kind,
                ..KindUsage::default()
            })
            .collect();
        let txn = self.db.begin_read().map_err(io)?;
        let chain = txn.open_table(CHAIN).map_err(io)?;
        let mut count: u64 = 0;
        for entry in chain.iter().map_err(io)? {
            let (key, value) = entry.map_err(io)?;
            let kind = RecordKind::of(key.value());
            let bytes = (key.value().len() + value.value().len()) as u64;
            if let Some(slot) = usage.iter_mut().find(|u| u.kind == kind) {
                slot.entries = slot.entries.saturating_add(1);
                slot.bytes = slot.bytes.saturating_add(bytes);
            }
            count = count.saturating_add(1);
            if count.is_multiple_of(10_000) {
                visited(count);
            }
        }
        visited(count);
        Ok(usage)
    }
}

/// One read transaction's view of the ledger state ([`Storage::state_snapshot`]); it keeps
/// the pages it sees alive until dropped, so hold it for a block or a batch, not longer.
pub struct StateSnapshot {
    chain: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl std::fmt::Debug for StateSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateSnapshot").finish_non_exhaustive()
    }
}

impl StateSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let value = self.chain.get(state_key(key).as_slice()).map_err(io)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// Ledger state entries with keys in `start..end`, in key order, at most `limit`.
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<tally_contracts::Entries, StorageError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let (start, end) = (state_key(start), state_key(end));
        let mut out = Vec::new();
        for entry in self
            .chain
            .range(start.as_slice()..end.as_slice())
            .map_err(io)?
            .take(limit)
        {
            let (key, value) = entry.map_err(io)?;
            out.push((
                key.value().get(2..).unwrap_or_default().to_vec(),
                value.value().to_vec(),
            ));
        }
        Ok(out)
    }
}

fn store_error(e: StorageError) -> tally_contracts::StoreError {
    tally_contracts::StoreError(e.to_string())
}

impl tally_contracts::StateStore for StateSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, tally_contracts::StoreError> {
        StateSnapshot::get(self, key).map_err(store_error)
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<tally_contracts::Entries, tally_contracts::StoreError> {
        StateSnapshot::scan(self, start, end, limit).map_err(store_error)
    }
}

/// The ledger reads committed state straight from the data directory, one read transaction
/// per call (the API's point reads); many reads go through a [`StateSnapshot`].
impl tally_contracts::StateStore for Storage {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, tally_contracts::StoreError> {
        self.state_get(key).map_err(store_error)
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<tally_contracts::Entries, tally_contracts::StoreError> {
        self.state_snapshot()
            .and_then(|snapshot| snapshot.scan(start, end, limit))
            .map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(storage: &Storage, height: u64, writes: &[(Vec<u8>, Option<Vec<u8>>)]) {
        let hashes = [Hash::digest("tx", &height.to_be_bytes())];
        let entries = [(b"alice".to_vec(), 0u32)];
        let result = storage.commit_block(&BlockCommit {
            height,
            block: b"block",
            certificate: b"cert",
            results: b"results",
            state_writes: writes,
            tx_hashes: &hashes,
            account_entries: &entries,
            validator_schedule: None,
            committed_ms: 1_000 + height,
            evidence_count: 0,
            ..Default::default()
        });
        assert!(result.is_ok(), "{result:?}");
    }

    /// A pruning node keeps the newest blocks whole; an older one keeps its header, its
    /// body's digest (so its id) and its certificate, and loses its body and results. A node
    /// turning pruning on over a long history catches up a bounded number of blocks a commit.
    #[test]
    fn pruning_keeps_ids_and_certificates_and_drops_bodies_and_results() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), "c").unwrap();
        let blocks: Vec<Vec<u8>> = (1..=100u64)
            .map(|h| {
                tally_consensus::frame_block(
                    format!("header {h}").as_bytes(),
                    format!("body {h}").as_bytes(),
                )
            })
            .collect();
        let commit = |height: u64, keep: Option<u64>| {
            let result = storage.commit_block(&BlockCommit {
                height,
                block: &blocks[height as usize - 1],
                certificate: format!("cert {height}").as_bytes(),
                results: b"results",
                keep_blocks: keep,
                ..Default::default()
            });
            assert!(result.is_ok(), "{result:?}");
        };
        for height in 1..=90 {
            commit(height, None);
        }
        assert_eq!(storage.pruned_through().unwrap(), 0);
        commit(91, Some(3));
        assert_eq!(storage.pruned_through().unwrap(), PRUNE_PER_COMMIT_MAX);
        for height in 92..=100 {
            commit(height, Some(3));
        }
        assert_eq!(storage.pruned_through().unwrap(), 97);
        for height in 1..=100u64 {
            let whole = height > 97;
            let bytes = &blocks[height as usize - 1];
            assert_eq!(storage.block(height).unwrap().is_some(), whole, "{height}");
            assert_eq!(
                storage.results(height).unwrap().is_some(),
                whole,
                "{height}"
            );
            assert_eq!(
                storage.certificate(height).unwrap(),
                Some(format!("cert {height}").into_bytes())
            );
            assert_eq!(
                storage.block_id(height).unwrap(),
                Some(tally_consensus::BlockHash::of(bytes)),
                "{height}"
            );
            let (header, _) = storage.header_parts(height).unwrap().unwrap();
            assert_eq!(header, format!("header {height}").into_bytes());
        }
        drop(storage);
        let storage = Storage::open(dir.path(), "c").unwrap();
        assert_eq!(storage.head().unwrap(), Some(100));
        assert_eq!(storage.pruned_through().unwrap(), 97);
    }

    /// A first sighting never replaces a record written meanwhile, and an update that fails
    /// writes nothing.
    #[test]
    fn alert_records_keep_what_was_written_first() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), "chain-a").unwrap();
        let keys = vec!["a".to_string(), "b".to_string()];
        let first = storage.alert_records_or_insert(&keys, b"seen-1").unwrap();
        assert_eq!(first, vec![b"seen-1".to_vec(), b"seen-1".to_vec()]);
        let acked = storage
            .update_alert_record("a", |stored| {
                assert_eq!(stored, Some(b"seen-1".as_slice()));
                Ok::<_, ()>(b"acked".to_vec())
            })
            .unwrap();
        assert_eq!(acked, Ok(b"acked".to_vec()));
        let again = storage.alert_records_or_insert(&keys, b"seen-2").unwrap();
        assert_eq!(again, vec![b"acked".to_vec(), b"seen-1".to_vec()]);
        let refused = storage
            .update_alert_record("c", |_| Err::<Vec<u8>, _>("unknown"))
            .unwrap();
        assert_eq!(refused, Err("unknown"));
        assert_eq!(
            storage.alert_records(&["a", "c"]).unwrap(),
            vec![Some(b"acked".to_vec()), None]
        );
    }

    #[test]
    fn blocks_commit_in_order_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = Storage::open(dir.path(), "chain-a").unwrap();
            assert_eq!(storage.head().unwrap(), None);
            commit(&storage, 1, &[(b"k".to_vec(), Some(b"v1".to_vec()))]);
            commit(
                &storage,
                2,
                &[(b"k".to_vec(), None), (b"j".to_vec(), Some(b"w".to_vec()))],
            );
            let skipped = storage.commit_block(&BlockCommit {
                height: 4,
                ..Default::default()
            });
            assert!(matches!(
                skipped,
                Err(StorageError::NotNextHeight { head: 2, got: 4 })
            ));
        }
        let storage = Storage::open(dir.path(), "chain-a").unwrap();
        assert_eq!(storage.head().unwrap(), Some(2));
        assert_eq!(storage.state_get(b"k").unwrap(), None);
        assert_eq!(storage.state_get(b"j").unwrap(), Some(b"w".to_vec()));
        assert_eq!(storage.block(2).unwrap(), Some(b"block".to_vec()));
        // The node's own commit times and transaction counts survive too; the refused block
        // left none.
        assert_eq!(
            storage.committed_ms(2..=4).unwrap(),
            vec![Some(1_002), None, None]
        );
        assert_eq!(
            storage.recorded_transactions(1..=4).unwrap(),
            vec![Some(1), Some(1), None, None]
        );
        assert_eq!(
            storage.recorded_evidence(1..=3).unwrap(),
            vec![Some(0), Some(0), None]
        );
        let loc = storage
            .tx_location(&Hash::digest("tx", &2u64.to_be_bytes()))
            .unwrap();
        assert_eq!(
            loc,
            Some(TxLocation {
                height: 2,
                index: 0
            })
        );
        let history = storage.account_history(b"alice", None, 10).unwrap();
        assert_eq!(
            history,
            vec![
                TxLocation {
                    height: 2,
                    index: 0
                },
                TxLocation {
                    height: 1,
                    index: 0
                }
            ]
        );
        let older = storage
            .account_history(b"alice", history.first().copied(), 10)
            .unwrap();
        assert_eq!(
            older,
            vec![TxLocation {
                height: 1,
                index: 0
            }]
        );
        assert!(
            storage
                .account_history(b"alic", None, 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_page_cache_stays_within_its_bound_while_the_data_outgrows_it() {
        let dir = tempfile::tempdir().unwrap();
        let bound: u64 = 256 * 1024;
        let storage = Storage::open_with_cache(dir.path(), "c", bound).unwrap();
        let block = vec![7u8; 8 * 1024];
        let mut most_used = 0;
        for height in 1..=200u64 {
            let writes: Vec<_> = (0..20u64)
                .map(|i| {
                    let key = (height * 100 + i).to_be_bytes().to_vec();
                    (key, Some(vec![1u8; 100]))
                })
                .collect();
            let hashes = [Hash::digest("tx", &height.to_be_bytes())];
            storage
                .commit_block(&BlockCommit {
                    height,
                    block: &block,
                    certificate: b"cert",
                    results: b"results",
                    state_writes: &writes,
                    tx_hashes: &hashes,
                    ..Default::default()
                })
                .unwrap();
            // Reads fill the cache too.
            assert_eq!(
                storage.block(height / 2 + 1).unwrap().map(|b| b.len()),
                Some(block.len())
            );
            most_used = most_used.max(storage.cache_used_bytes());
        }
        let file = std::fs::metadata(dir.path().join(DATABASE_FILE))
            .unwrap()
            .len();
        assert!(
            file > 4 * bound,
            "the data ({file} B) must outgrow the cache"
        );
        assert!(most_used > 0, "the cache was never used");
        assert!(
            most_used <= bound,
            "the cache held {most_used} B, above its bound {bound}"
        );
        assert_eq!(storage.head().unwrap(), Some(200));
        assert_eq!(
            storage.state_get(&(100u64 * 100).to_be_bytes()).unwrap(),
            Some(vec![1u8; 100])
        );
    }

    #[test]
    fn usage_splits_the_records_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), "c").unwrap();
        commit(&storage, 1, &[(b"k".to_vec(), Some(b"v1".to_vec()))]);
        commit(&storage, 2, &[(b"j".to_vec(), Some(b"w".to_vec()))]);
        commit(&storage, 3, &[(b"J1".to_vec(), Some(b"n".to_vec()))]);
        let mut last_seen = 0;
        let usage = storage.usage(|n| last_seen = n).unwrap();
        let of = |kind: RecordKind| *usage.iter().find(|u| u.kind == kind).unwrap();
        assert_eq!(of(RecordKind::Blocks).entries, 3);
        assert_eq!(of(RecordKind::Blocks).bytes, 3 * (10 + 5));
        assert_eq!(of(RecordKind::TransactionIndex).entries, 3);
        assert_eq!(of(RecordKind::AccountHistory).entries, 3);
        assert_eq!(of(RecordKind::State).entries, 2);
        assert_eq!(of(RecordKind::State).bytes, (3 + 2) + (3 + 1));
        assert_eq!(of(RecordKind::StateTree).entries, 1);
        assert_eq!(of(RecordKind::StateTree).bytes, 4 + 1);
        let total: u64 = usage.iter().map(|u| u.entries).sum();
        assert_eq!(total, storage.chain_entries().unwrap());
        assert_eq!(last_seen, total);
    }

    #[test]
    fn an_earlier_sled_directory_is_refused_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("conf"), b"segment_size: 524288").unwrap();
        let err = Storage::open(dir.path(), "c").unwrap_err();
        assert!(matches!(err, StorageError::EarlierFormat(_)), "{err}");
        assert!(err.to_string().contains("sled"), "{err}");
        assert!(
            !dir.path().join(DATABASE_FILE).exists(),
            "nothing is written"
        );
    }

    #[test]
    fn another_chains_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Storage::open(dir.path(), "chain-a").unwrap());
        let err = Storage::open(dir.path(), "chain-b").unwrap_err();
        assert!(matches!(err, StorageError::WrongChain { .. }), "{err}");
    }

    #[test]
    fn an_interrupted_state_sync_is_remembered_and_its_rows_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let row = (b"A1".to_vec(), Some(b"balance".to_vec()));
        {
            let storage = Storage::open(dir.path(), "c").unwrap();
            // Rows go in only during a sync.
            assert!(
                storage
                    .put_snapshot_rows(std::slice::from_ref(&row))
                    .is_err()
            );
            storage.begin_state_sync().unwrap();
            storage
                .put_snapshot_rows(std::slice::from_ref(&row))
                .unwrap();
            storage.flush().unwrap();
        }
        let storage = Storage::open(dir.path(), "c").unwrap();
        assert!(storage.state_sync_interrupted().unwrap());
        assert_eq!(storage.state_get(b"A1").unwrap(), Some(b"balance".to_vec()));
        assert_eq!(storage.genesis_hash().unwrap(), None);
        storage.abandon_state_sync().unwrap();
        assert!(!storage.state_sync_interrupted().unwrap());
        assert_eq!(storage.state_get(b"A1").unwrap(), None);
        // A directory holding a chain is never the target of a sync.
        storage.commit_genesis(&Hash::ZERO, &[]).unwrap();
        assert!(storage.begin_state_sync().is_err());
        assert_eq!(storage.synced_from().unwrap(), None);
    }

    #[test]
    fn signer_record_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = Storage::open(dir.path(), "c").unwrap();
            assert_eq!(storage.signer_record().unwrap(), None);
            storage.put_signer_record(b"h5 r0 prevote").unwrap();
        }
        let storage = Storage::open(dir.path(), "c").unwrap();
        assert_eq!(
            storage.signer_record().unwrap(),
            Some(b"h5 r0 prevote".to_vec())
        );
    }

    /// A directory from before `signer.redb` keeps its records: they move there, and never
    /// over a newer record already in it.
    #[test]
    fn the_signer_table_in_an_earlier_directory_moves_to_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        drop(Storage::open(dir.path(), "c").unwrap());
        let put_old = |key: &[u8], value: &[u8]| {
            let db = redb::Database::create(dir.path().join(DATABASE_FILE)).unwrap();
            Storage::put_into(&db, SIGNER, key, value).unwrap();
        };
        put_old(KEY_SIGNER_RECORD, b"h7 r1 precommit");
        put_old(KEY_VALID_RECORD, b"valid at h7");
        std::fs::remove_file(dir.path().join(SIGNER_FILE)).unwrap();
        let storage = Storage::open(dir.path(), "c").unwrap();
        assert_eq!(
            storage.signer_record().unwrap(),
            Some(b"h7 r1 precommit".to_vec())
        );
        assert_eq!(
            storage.valid_record().unwrap(),
            Some(b"valid at h7".to_vec())
        );
        assert_eq!(
            Storage::get_from(&storage.db, SIGNER, KEY_SIGNER_RECORD).unwrap(),
            None,
            "the old table is still in chain.redb"
        );
        storage.put_signer_record(b"h9 r0 prevote").unwrap();
        drop(storage);
        put_old(KEY_SIGNER_RECORD, b"h7 r1 precommit");
        let storage = Storage::open(dir.path(), "c").unwrap();
        assert_eq!(
            storage.signer_record().unwrap(),
            Some(b"h9 r0 prevote".to_vec())
        );
    }
}
