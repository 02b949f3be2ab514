//! A backup of a data directory, taken from one read transaction (so a consistent point even
//! while the node commits), and its restore into an empty directory.
//!
//! The file: `TALLYBK1`, a length-prefixed JSON [`BackupHeader`], the entries of the chain
//! table and of the node's local table (`[table][key length u32 LE][key][value length u32
//! LE][value]`), an end mark, and the BLAKE3 digest of every byte before it. The signer's
//! file is never in it: a restore can therefore never roll back what the validator signed
//! (the signer's record stays in `signer.redb`, which a restore does not touch).
//!
//! Who may hand us a backup: anyone can put a file on an operator's disk, so a restore trusts
//! nothing in it until the digest matches, checks the chain and schema its header names
//! against the node's own before writing, and before the file becomes the directory's chain
//! opens it as the node would (schema, chain id, the head's block and certificate) and checks
//! that the stored ledger tree's root node is the root the chain-head record holds, that every
//! node of the tree hashes to what its parent names, that every leaf commits to its entry's
//! value and that no entry lies outside the tree. The digest has no key, so a file someone
//! rewrote with a fresh digest passes the digest; an altered, added or dropped ledger entry
//! then fails the tree's checks. The head's certificate is checked against the validator set
//! the file itself holds (a forger who rewrites the whole chain can make that agree): the
//! genesis the node names is checked when it starts, and its state roots differ from the
//! validators' at its next block, so it votes for nothing and its audit fails.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use tally_crypto::{Hash, HashBuilder};

use super::{CHAIN, DATABASE_FILE, KEY_CHAIN_ID, KEY_HEAD, LOCAL, SCHEMA_VERSION, Storage, io};
use super::{StorageError, read_u64};

const MAGIC: &[u8; 8] = b"TALLYBK1";
const DIGEST_DOMAIN: &str = "tally/backup";
const HEADER_BYTES_MAX: u32 = 64 * 1024;
/// No key Tally writes comes near this; a longer one means a damaged or forged file.
const KEY_BYTES_MAX: u32 = 64 * 1024;
/// A block, its results or a tree node: all far below this.
const VALUE_BYTES_MAX: u32 = 256 * 1024 * 1024;
const TAG_CHAIN: u8 = 1;
const TAG_LOCAL: u8 = 2;
const TAG_END: u8 = 0xFF;
/// Entries per write transaction of a restore (the file being written is not yet the
/// directory's: a crash leaves only `chain.redb.restoring`).
const RESTORE_BATCH: u64 = 20_000;
/// What a restore writes before it is checked and renamed to `chain.redb`.
pub const RESTORING_FILE: &str = "chain.redb.restoring";

/// What a backup holds, written first so a restore can refuse a wrong file before reading
/// the rest, and a progress bar knows its length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    pub chain_id: String,
    /// The storage schema the entries are in.
    pub schema: u32,
    /// The height of the last block the backup holds.
    pub head: u64,
    /// Entries that follow (chain and local tables together).
    pub entries: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{what}: {source}")]
    File {
        what: String,
        source: std::io::Error,
    },
    #[error(
        "this is not a Tally backup (it does not start with {:?})",
        String::from_utf8_lossy(MAGIC)
    )]
    NotABackup,
    #[error("the backup is damaged: {0}")]
    Damaged(String),
    #[error("the backup ends early: it was cut short (a copy or a transfer that did not finish)")]
    Truncated,
    #[error("the backup's digest does not match its contents: it was altered or damaged")]
    DigestMismatch,
    #[error("the backup is of chain {found:?}, not {expected:?}")]
    WrongChain { expected: String, found: String },
    #[error("the backup is in storage schema {found}; this version reads schema {SCHEMA_VERSION}")]
    WrongSchema { found: u32 },
    #[error("nothing to back up: no block is committed yet")]
    NothingCommitted,
    #[error(
        "{0} already holds a chain: a restore writes only into a directory without one (move \
         {DATABASE_FILE} aside; keep signer.redb, which the restore leaves as it is)"
    )]
    DirectoryHoldsAChain(PathBuf),
    #[error(
        "the restored ledger tree's root {tree} is not the root {recorded} the chain-head \
         record holds: the backup is inconsistent (kept aside as {kept})"
    )]
    RootMismatch {
        tree: String,
        recorded: String,
        kept: String,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn file_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::File { what, source }
}

/// Bytes written, hashed as they go.
struct DigestWriter<W: Write> {
    out: W,
    digest: Option<HashBuilder>,
}

impl<W: Write> DigestWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        self.digest = self.digest.take().map(|d| d.update(bytes));
        self.out
            .write_all(bytes)
            .map_err(file_error("writing the backup"))
    }

    fn entry(&mut self, tag: u8, key: &[u8], value: &[u8]) -> Result<(), BackupError> {
        let length = |bytes: &[u8]| {
            u32::try_from(bytes.len())
                .map(u32::to_le_bytes)
                .map_err(|_| BackupError::Damaged("an entry longer than 4 GiB".to_string()))
        };
        self.put(&[tag])?;
        self.put(&length(key)?)?;
        self.put(key)?;
        self.put(&length(value)?)?;
        self.put(value)
    }
}

/// Writes a backup of `storage` to `out`: everything one read transaction sees, so a consistent
/// point while the node goes on committing. `progress` is told the entries written so far.
pub fn write(
    storage: &Storage,
    out: impl Write,
    mut progress: impl FnMut(&BackupHeader, u64),
) -> Result<BackupHeader, BackupError> {
    let txn = storage.db.begin_read().map_err(io)?;
    let chain = txn.open_table(CHAIN).map_err(io)?;
    let local = txn.open_table(LOCAL).map_err(io)?;
    let text = |key: &[u8]| -> Result<Vec<u8>, BackupError> {
        chain
            .get(key)
            .map_err(io)?
            .map(|v| v.value().to_vec())
            .ok_or_else(|| {
                BackupError::Damaged(format!("{} is missing", String::from_utf8_lossy(key)))
            })
    };
    let head = match chain.get(KEY_HEAD).map_err(io)? {
        Some(bytes) => read_u64(bytes.value(), "the head height")?,
        None => return Err(BackupError::NothingCommitted),
    };
    let header = BackupHeader {
        chain_id: String::from_utf8_lossy(&text(KEY_CHAIN_ID)?).into_owned(),
        schema: SCHEMA_VERSION,
        head,
        entries: chain
            .len()
            .map_err(io)?
            .saturating_add(local.len().map_err(io)?),
    };
    let header_bytes = serde_json::to_vec(&header)
        .map_err(|e| BackupError::Damaged(format!("the header does not encode: {e}")))?;
    let header_len = u32::try_from(header_bytes.len())
        .ok()
        .filter(|&n| n <= HEADER_BYTES_MAX)
        .ok_or_else(|| BackupError::Damaged("the header is too long".to_string()))?;
    let mut out = DigestWriter {
        out: std::io::BufWriter::with_capacity(1 << 20, out),
        digest: Some(HashBuilder::new(DIGEST_DOMAIN)),
    };
    out.put(MAGIC)?;
    out.put(&header_len.to_le_bytes())?;
    out.put(&header_bytes)?;
    let mut written: u64 = 0;
    for (tag, table) in [(TAG_CHAIN, &chain), (TAG_LOCAL, &local)] {
        for entry in table.iter().map_err(io)? {
            let (key, value) = entry.map_err(io)?;
            out.entry(tag, key.value(), value.value())?;
            written = written.saturating_add(1);
            if written.is_multiple_of(10_000) {
                progress(&header, written);
            }
        }
    }
    out.put(&[TAG_END])?;
    let digest = out
        .digest
        .take()
        .map(HashBuilder::finish)
        .ok_or_else(|| BackupError::Damaged("the digest was lost".to_string()))?;
    out.put(digest.as_bytes())?;
    out.out.flush().map_err(file_error("writing the backup"))?;
    progress(&header, written);
    Ok(header)
}

/// Which table an entry of a backup belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Chain,
    Local,
}

/// One entry of a backup: its table, key and value.
type Entry = (Table, Vec<u8>, Vec<u8>);

impl<R: Read> std::fmt::Debug for BackupReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupReader")
            .field("header", &self.header)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

/// Reads a backup entry by entry, hashing as it goes; [`BackupReader::next_entry`] answers
/// `None` only after the digest matched.
pub struct BackupReader<R: Read> {
    source: R,
    digest: Option<HashBuilder>,
    header: BackupHeader,
    read: u64,
}

impl<R: Read> BackupReader<R> {
    /// Reads the magic and the header.
    pub fn open(source: R) -> Result<BackupReader<R>, BackupError> {
        let mut reader = BackupReader {
            source,
            digest: Some(HashBuilder::new(DIGEST_DOMAIN)),
            header: BackupHeader {
                chain_id: String::new(),
                schema: 0,
                head: 0,
                entries: 0,
            },
            read: 0,
        };
        let mut magic = [0u8; 8];
        reader.fill(&mut magic).map_err(|e| match e {
            BackupError::Truncated => BackupError::NotABackup,
            other => other,
        })?;
        if &magic != MAGIC {
            return Err(BackupError::NotABackup);
        }
        let length = reader.length(HEADER_BYTES_MAX, "header")?;
        let bytes = reader.bytes(length)?;
        reader.header = serde_json::from_slice(&bytes)
            .map_err(|e| BackupError::Damaged(format!("the header does not decode: {e}")))?;
        Ok(reader)
    }

    pub fn header(&self) -> &BackupHeader {
        &self.header
    }

    /// Entries read so far.
    pub fn entries_read(&self) -> u64 {
        self.read
    }

    fn absorb(&mut self, bytes: &[u8]) {
        self.digest = self.digest.take().map(|d| d.update(bytes));
    }

    fn fill(&mut self, buffer: &mut [u8]) -> Result<(), BackupError> {
        self.source.read_exact(buffer).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                BackupError::Truncated
            } else {
                file_error("reading the backup")(e)
            }
        })?;
        self.absorb(buffer);
        Ok(())
    }

    fn length(&mut self, max: u32, what: &str) -> Result<u32, BackupError> {
        let mut bytes = [0u8; 4];
        self.fill(&mut bytes)?;
        let length = u32::from_le_bytes(bytes);
        if length > max {
            return Err(BackupError::Damaged(format!(
                "a {what} of {length} bytes (at most {max})"
            )));
        }
        Ok(length)
    }

    /// `length` bytes, allocated as they arrive (a damaged length cannot reserve memory the
    /// file does not hold).
    fn bytes(&mut self, length: u32) -> Result<Vec<u8>, BackupError> {
        let mut out = Vec::new();
        (&mut self.source)
            .take(u64::from(length))
            .read_to_end(&mut out)
            .map_err(file_error("reading the backup"))?;
        if out.len() != length as usize {
            return Err(BackupError::Truncated);
        }
        self.absorb(&out);
        Ok(out)
    }

    /// The next entry, or `None` at the end mark once the digest matched.
    fn next_entry(&mut self) -> Result<Option<Entry>, BackupError> {
        let mut tag = [0u8; 1];
        self.fill(&mut tag)?;
        let table = match tag[0] {
            TAG_CHAIN => Table::Chain,
            TAG_LOCAL => Table::Local,
            TAG_END => {
                let expected = self
                    .digest
                    .take()
                    .map(HashBuilder::finish)
                    .ok_or_else(|| BackupError::Damaged("read past the end".to_string()))?;
                let mut found = [0u8; 32];
                self.source.read_exact(&mut found).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        BackupError::Truncated
                    } else {
                        file_error("reading the backup")(e)
                    }
                })?;
                if Hash(found) != expected {
                    return Err(BackupError::DigestMismatch);
                }
                if self.read != self.header.entries {
                    return Err(BackupError::Damaged(format!(
                        "it holds {} entries, its header says {}",
                        self.read, self.header.entries
                    )));
                }
                return Ok(None);
            }
            other => return Err(BackupError::Damaged(format!("an entry tagged {other}"))),
        };
        let key_length = self.length(KEY_BYTES_MAX, "key")?;
        let key = self.bytes(key_length)?;
        let value_length = self.length(VALUE_BYTES_MAX, "value")?;
        let value = self.bytes(value_length)?;
        self.read = self.read.saturating_add(1);
        Ok(Some((table, key, value)))
    }

    /// Reads to the end and checks the digest, keeping nothing: `tally node backup` checks
    /// the file it received this way.
    pub fn check(mut self, mut progress: impl FnMut(u64)) -> Result<BackupHeader, BackupError> {
        while self.next_entry()?.is_some() {
            if self.read.is_multiple_of(10_000) {
                progress(self.read);
            }
        }
        progress(self.read);
        Ok(self.header)
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub header: BackupHeader,
    /// Whether the directory already held a signer's record, kept as it was.
    pub signer_record_kept: bool,
}

/// Restores a backup into `dir`, which must hold no chain (`chain.redb`); `signer.redb`, if
/// there, is left as it is. Everything is written to `chain.redb.restoring` first and renamed
/// only once the digest matched and the ledger tree's root equals the recorded one, so a
/// failed restore leaves the directory without a chain, never with half of one.
pub fn restore(
    dir: &Path,
    chain_id: &str,
    source: impl Read,
    mut progress: impl FnMut(&BackupHeader, u64),
) -> Result<Restored, BackupError> {
    let target = dir.join(DATABASE_FILE);
    if target.exists() {
        return Err(BackupError::DirectoryHoldsAChain(dir.to_path_buf()));
    }
    let mut reader = BackupReader::open(std::io::BufReader::with_capacity(1 << 20, source))?;
    let header = reader.header().clone();
    if header.chain_id != chain_id {
        return Err(BackupError::WrongChain {
            expected: chain_id.to_string(),
            found: header.chain_id,
        });
    }
    if header.schema != SCHEMA_VERSION {
        return Err(BackupError::WrongSchema {
            found: header.schema,
        });
    }
    std::fs::create_dir_all(dir).map_err(file_error(format!("creating {}", dir.display())))?;
    let partial = dir.join(RESTORING_FILE);
    if partial.exists() {
        std::fs::remove_file(&partial)
            .map_err(file_error(format!("removing {}", partial.display())))?;
    }
    let imported = import(&partial, &mut reader, &mut progress);
    if let Err(e) = imported {
        // Best effort: the error says what went wrong; a leftover partial file is removed by
        // the next restore anyway.
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    // Checked where it was written, as the node will open it (schema, chain id, the head's
    // block and certificate), and its tree against the head's results: only then is it the
    // directory's chain.
    let checked = Storage::open_file(
        dir,
        &partial,
        chain_id,
        crate::config::STORAGE_CACHE_BYTES_DEFAULT,
    )
    .map_err(BackupError::from)
    .and_then(|storage| {
        check_root(&storage, header.head)?;
        Ok(storage.signer_record()?.is_some())
    });
    let signer_record_kept = match checked {
        Ok(kept) => kept,
        Err(BackupError::RootMismatch { tree, recorded, .. }) => {
            let kept = dir.join("chain.redb.rejected");
            std::fs::rename(&partial, &kept)
                .map_err(file_error(format!("moving {} aside", partial.display())))?;
            return Err(BackupError::RootMismatch {
                tree,
                recorded,
                kept: kept.display().to_string(),
            });
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, &target).map_err(file_error(format!(
        "renaming {} to {}",
        partial.display(),
        target.display()
    )))?;
    // The rename itself must survive a crash.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(file_error(format!("syncing {}", dir.display())))?;
    Ok(Restored {
        header,
        signer_record_kept,
    })
}

fn import<R: Read>(
    file: &Path,
    reader: &mut BackupReader<R>,
    progress: &mut impl FnMut(&BackupHeader, u64),
) -> Result<(), BackupError> {
    let db = redb::Database::create(file).map_err(|e| StorageError::Open {
        path: file.to_path_buf(),
        source: e.into(),
    })?;
    let tables: [TableDefinition<&[u8], &[u8]>; 2] = [CHAIN, LOCAL];
    loop {
        let mut txn = db.begin_write().map_err(io)?;
        // Only the last transaction must be durable: until the rename nothing reads the file.
        txn.set_durability(redb::Durability::None)
            .map_err(|e| BackupError::Damaged(format!("redb refused a durability: {e}")))?;
        let mut done = false;
        {
            let mut chain = txn.open_table(tables[0]).map_err(io)?;
            let mut local = txn.open_table(tables[1]).map_err(io)?;
            for _ in 0..RESTORE_BATCH {
                match reader.next_entry()? {
                    Some((Table::Chain, key, value)) => {
                        chain.insert(key.as_slice(), value.as_slice()).map_err(io)?;
                    }
                    Some((Table::Local, key, value)) => {
                        local.insert(key.as_slice(), value.as_slice()).map_err(io)?;
                    }
                    None => {
                        done = true;
                        break;
                    }
                }
            }
        }
        if done {
            txn.set_durability(redb::Durability::Immediate)
                .map_err(|e| BackupError::Damaged(format!("redb refused a durability: {e}")))?;
        }
        txn.commit().map_err(io)?;
        progress(reader.header(), reader.entries_read());
        if done {
            return Ok(());
        }
    }
}

/// The restored tree's root against the one the chain-head record holds (which the head
/// block's results also record; the head record is there too for a chain started from a
/// snapshot, whose head block's results it never held).
fn check_root(storage: &Storage, head: u64) -> Result<(), BackupError> {
    if storage.head()? != Some(head) {
        return Err(BackupError::Damaged(format!(
            "its header names head {head}, its chain table {:?}",
            storage.head()?
        )));
    }
    let recorded = tally_contracts::Ledger::chain_head(storage)
        .map_err(|e| BackupError::Damaged(format!("the chain-head record: {e}")))?
        .filter(|h| h.height == head)
        .ok_or_else(|| {
            BackupError::Damaged(format!("the chain-head record is not of block {head}"))
        })?;
    let (tree, _) = tally_contracts::commitment::prove(storage, head, b"")
        .map_err(|e| BackupError::Damaged(format!("the ledger tree: {e}")))?;
    if tree != recorded.ledger_root {
        return Err(BackupError::RootMismatch {
            tree: tree.to_hex(),
            recorded: recorded.ledger_root.to_hex(),
            kept: String::new(),
        });
    }
    check_tree_holds_the_entries(storage, head, recorded.ledger_root)
}

/// Every node of the ledger tree hashes to what its parent names, up to the recorded root;
/// every leaf commits to its entry's value; and no state entry lies outside the tree. These
/// are a state-sync snapshot's checks, run over the whole state (held in memory while they
/// run: a restore is rare and the state is a fraction of the file).
fn check_tree_holds_the_entries(
    storage: &Storage,
    head: u64,
    ledger_root: tally_crypto::Hash,
) -> Result<(), BackupError> {
    use tally_contracts::snapshot;
    let damaged = |e: snapshot::SnapshotError| {
        BackupError::Damaged(format!("the ledger tree does not hold its entries: {e}"))
    };
    let (top, chunks) =
        snapshot::take(storage, head, snapshot::LEAVES_PER_CHUNK).map_err(damaged)?;
    let targets = snapshot::verify_top(&top, ledger_root).map_err(damaged)?;
    if targets.len() != chunks.len() {
        return Err(BackupError::Damaged(
            "the ledger tree's chunks do not match its top".to_string(),
        ));
    }
    let mut in_tree = 0usize;
    for (target, chunk) in targets.iter().zip(&chunks) {
        snapshot::verify_chunk(target, head, chunk).map_err(damaged)?;
        in_tree = in_tree.saturating_add(chunk.entries.len());
    }
    let in_state = snapshot::state_entries(storage).map_err(damaged)?;
    if in_tree != in_state {
        return Err(BackupError::Damaged(format!(
            "{in_state} state entries, of which the ledger tree holds {in_tree}"
        )));
    }
    Ok(())
}
