//! The node's data directory: one sled database.
//!
//! Everything that must agree with everything else lives in one tree, so a decided block,
//! its certificate, its results, the ledger writes it caused and the indexes commit in one
//! atomic batch: a node killed at any instant finds either all of a block or none of it.
//! The signer's record lives in its own tree and is flushed on every write, before a vote
//! leaves the node.
//!
//! Keys in the chain tree (heights big-endian so they sort):
//! `m/...` metadata, `b/{h}` block, `c/{h}` commit certificate, `r/{h}` block results,
//! `t/{tx id}` transaction location (the id covers the body and the signers),
//! `a/{account}/{h}/{i}` account history, `s/{key}` ledger state.

use std::path::{Path, PathBuf};

use tally_crypto::Hash;

/// 2: transactions are indexed (`t/{id}`) and named in receipts by an id that covers their
/// signers (`SignedTransaction::hash`), not by their body's hash; a version-1 directory's
/// index and state roots do not match what this code computes, so it is refused.
/// 3: an institution's key may be revoked (`Institution::key` is optional), the rules carry
/// the account recovery delay, and recoveries pend in state: a version-2 directory's records
/// do not decode as these, so it is refused.
/// 4: a `Transfer` (and its `TransferReceived` event) carries a memo: a version-3
/// directory's blocks and receipts do not decode as these, so it is refused.
const SCHEMA_VERSION: u32 = 4;
const KEY_SCHEMA: &[u8] = b"m/schema";
const KEY_CHAIN_ID: &[u8] = b"m/chain_id";
const KEY_HEAD: &[u8] = b"m/head";
const KEY_SIGNER_RECORD: &[u8] = b"record";
/// Consensus's valid value (`Output::Persist`), beside the signer's record.
const KEY_VALID_RECORD: &[u8] = b"valid";
const KEY_GENESIS: &[u8] = b"m/genesis";
const KEY_VALIDATOR_SCHEDULE: &[u8] = b"m/validator_schedule";
const KEY_GENESIS_VALIDATORS: &[u8] = b"m/genesis_validators";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open the data directory {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("the data directory is damaged: {0}")]
    Damaged(String),
    #[error("the data directory belongs to chain {found:?}, not {expected:?}")]
    WrongChain { expected: String, found: String },
    #[error("block {got} does not follow the stored head {head}")]
    NotNextHeight { head: u64, got: u64 },
    #[error("storage I/O failed: {0}")]
    Io(#[from] sled::Error),
}

/// Where a committed transaction is: its block height and index in the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    pub height: u64,
    pub index: u32,
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
}

#[derive(Debug, Clone)]
pub struct Storage {
    db: sled::Db,
    chain: sled::Tree,
    signer: sled::Tree,
}

fn height_key(prefix: &[u8], height: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&height.to_be_bytes());
    key
}

fn read_u64(bytes: &[u8], what: &str) -> Result<u64, StorageError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StorageError::Damaged(format!("{what} is not 8 bytes")))?;
    Ok(u64::from_be_bytes(arr))
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
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|source| StorageError::Open {
                path: dir.to_path_buf(),
                source,
            })?;
        let chain = db.open_tree("chain")?;
        let signer = db.open_tree("signer")?;
        let storage = Storage { db, chain, signer };
        match storage.chain.get(KEY_SCHEMA)? {
            None => {
                let mut batch = sled::Batch::default();
                batch.insert(KEY_SCHEMA, &SCHEMA_VERSION.to_be_bytes());
                batch.insert(KEY_CHAIN_ID, chain_id.as_bytes());
                storage.chain.apply_batch(batch)?;
                storage.db.flush()?;
            }
            Some(version) => {
                if version.as_ref() != SCHEMA_VERSION.to_be_bytes() {
                    return Err(StorageError::Damaged(format!(
                        "schema version {version:?} is not {SCHEMA_VERSION}"
                    )));
                }
                let found = storage.chain.get(KEY_CHAIN_ID)?.ok_or_else(|| {
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
                    && (storage.block(head)?.is_none() || storage.certificate(head)?.is_none())
                {
                    return Err(StorageError::Damaged(format!(
                        "the head is {head} but its block or certificate is missing"
                    )));
                }
            }
        }
        Ok(storage)
    }

    /// The height of the last committed block, if any.
    pub fn head(&self) -> Result<Option<u64>, StorageError> {
        self.chain
            .get(KEY_HEAD)?
            .map(|b| read_u64(&b, "the head height"))
            .transpose()
    }

    /// Commits a decided block and all it changed in one atomic batch, then flushes.
    pub fn commit_block(&self, commit: &BlockCommit<'_>) -> Result<(), StorageError> {
        let head = self.head()?;
        let expected = head.map_or(1, |h| h.saturating_add(1));
        if commit.height != expected {
            return Err(StorageError::NotNextHeight {
                head: head.unwrap_or(0),
                got: commit.height,
            });
        }
        let mut batch = sled::Batch::default();
        batch.insert(height_key(b"b/", commit.height), commit.block);
        batch.insert(height_key(b"c/", commit.height), commit.certificate);
        batch.insert(height_key(b"r/", commit.height), commit.results);
        for (key, value) in commit.state_writes {
            let mut full = Vec::with_capacity(2 + key.len());
            full.extend_from_slice(b"s/");
            full.extend_from_slice(key);
            match value {
                Some(v) => batch.insert(full, v.as_slice()),
                None => batch.remove(full),
            }
        }
        for (index, hash) in commit.tx_hashes.iter().enumerate() {
            let mut key = Vec::with_capacity(34);
            key.extend_from_slice(b"t/");
            key.extend_from_slice(hash.as_bytes());
            let mut location = commit.height.to_be_bytes().to_vec();
            location.extend_from_slice(&(index as u32).to_be_bytes());
            batch.insert(key, location);
        }
        for (account, index) in commit.account_entries {
            let mut key = Vec::with_capacity(2 + account.len() + 13);
            key.extend_from_slice(b"a/");
            key.extend_from_slice(account);
            key.push(b'/');
            key.extend_from_slice(&commit.height.to_be_bytes());
            key.extend_from_slice(&index.to_be_bytes());
            batch.insert(key, &[]);
        }
        if let Some(schedule) = commit.validator_schedule {
            batch.insert(KEY_VALIDATOR_SCHEDULE, schedule);
        }
        batch.insert(KEY_HEAD, &commit.height.to_be_bytes());
        self.chain.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Commits the genesis state (its ledger writes) and the genesis hash in one batch, into
    /// a data directory that has neither yet.
    pub fn commit_genesis(
        &self,
        genesis: &Hash,
        state_writes: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<(), StorageError> {
        if self.chain.get(KEY_GENESIS)?.is_some() || self.head()?.is_some() {
            return Err(StorageError::Damaged(
                "genesis applied twice to one data directory".to_string(),
            ));
        }
        let mut batch = sled::Batch::default();
        for (key, value) in state_writes {
            let mut full = Vec::with_capacity(2 + key.len());
            full.extend_from_slice(b"s/");
            full.extend_from_slice(key);
            match value {
                Some(v) => batch.insert(full, v.as_slice()),
                None => batch.remove(full),
            }
        }
        batch.insert(KEY_GENESIS, genesis.as_bytes());
        self.chain.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// The hash of the genesis this directory was started from, if any.
    pub fn genesis_hash(&self) -> Result<Option<Hash>, StorageError> {
        let Some(bytes) = self.chain.get(KEY_GENESIS)? else {
            return Ok(None);
        };
        let bytes: [u8; 32] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| StorageError::Damaged("the genesis hash is not 32 bytes".to_string()))?;
        Ok(Some(Hash(bytes)))
    }

    /// The validator-set schedule stored with the last block that changed it.
    pub fn validator_schedule(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.chain.get(KEY_VALIDATOR_SCHEDULE)?.map(|v| v.to_vec()))
    }

    /// Records the genesis validator set (encoded), for readers of the set in force.
    pub fn put_genesis_validators(&self, validators: &[u8]) -> Result<(), StorageError> {
        self.chain.insert(KEY_GENESIS_VALIDATORS, validators)?;
        Ok(())
    }

    /// The genesis validator set, encoded, if the node recorded it.
    pub fn genesis_validators(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.chain.get(KEY_GENESIS_VALIDATORS)?.map(|v| v.to_vec()))
    }

    /// Flushes everything written so far to disk.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.db.flush()?;
        Ok(())
    }

    pub fn block(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .chain
            .get(height_key(b"b/", height))?
            .map(|v| v.to_vec()))
    }

    pub fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .chain
            .get(height_key(b"c/", height))?
            .map(|v| v.to_vec()))
    }

    pub fn results(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .chain
            .get(height_key(b"r/", height))?
            .map(|v| v.to_vec()))
    }

    pub fn tx_location(&self, hash: &Hash) -> Result<Option<TxLocation>, StorageError> {
        let mut key = b"t/".to_vec();
        key.extend_from_slice(hash.as_bytes());
        let Some(value) = self.chain.get(key)? else {
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
        let mut out = Vec::new();
        for entry in self.chain.range(prefix.clone()..upper).rev().take(limit) {
            let (key, _) = entry?;
            let tail = key.get(prefix.len()..).unwrap_or_default();
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
        let mut full = Vec::with_capacity(2 + key.len());
        full.extend_from_slice(b"s/");
        full.extend_from_slice(key);
        Ok(self.chain.get(full)?.map(|v| v.to_vec()))
    }

    /// The signer's record: what the validator key last signed.
    pub fn signer_record(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.signer.get(KEY_SIGNER_RECORD)?.map(|v| v.to_vec()))
    }

    /// Stores the signer's record and flushes it to disk before returning, so a signature
    /// released after this call is never forgotten by a restart.
    pub fn put_signer_record(&self, record: &[u8]) -> Result<(), StorageError> {
        self.signer.insert(KEY_SIGNER_RECORD, record)?;
        self.signer.flush()?;
        Ok(())
    }

    /// Consensus's last valid value (a block with a quorum of prevotes) at the height being
    /// decided, as stored by [`Storage::put_valid_record`].
    pub fn valid_record(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.signer.get(KEY_VALID_RECORD)?.map(|v| v.to_vec()))
    }

    /// Stores consensus's valid value, replacing the one before, and flushes: a validator
    /// that crashes after precommitting it must find it again to re-propose it.
    pub fn put_valid_record(&self, record: &[u8]) -> Result<(), StorageError> {
        self.signer.insert(KEY_VALID_RECORD, record)?;
        self.signer.flush()?;
        Ok(())
    }
}

/// The ledger reads committed state straight from the data directory.
impl tally_contracts::StateStore for Storage {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, tally_contracts::StoreError> {
        self.state_get(key)
            .map_err(|e| tally_contracts::StoreError(e.to_string()))
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<tally_contracts::Entries, tally_contracts::StoreError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let prefixed = |k: &[u8]| {
            let mut full = Vec::with_capacity(2 + k.len());
            full.extend_from_slice(b"s/");
            full.extend_from_slice(k);
            full
        };
        let mut out = Vec::new();
        for entry in self.chain.range(prefixed(start)..prefixed(end)).take(limit) {
            let (key, value) = entry.map_err(|e| tally_contracts::StoreError(e.to_string()))?;
            out.push((key.get(2..).unwrap_or_default().to_vec(), value.to_vec()));
        }
        Ok(out)
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
        });
        assert!(result.is_ok(), "{result:?}");
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
    fn another_chains_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Storage::open(dir.path(), "chain-a").unwrap());
        let err = Storage::open(dir.path(), "chain-b").unwrap_err();
        assert!(matches!(err, StorageError::WrongChain { .. }), "{err}");
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
}
