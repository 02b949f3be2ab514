//! The signer's record in the data directory: flushed before [`SignerStore::save`] returns,
//! so a vote that leaves the node is never forgotten by a restart.

use tally_consensus::{Error, SignerRecord, SignerStore};

use crate::storage::Storage;

/// The most bytes of a stored signer record (a few votes and a lock).
const SIGNER_RECORD_BYTES_MAX: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct DurableSignerStore {
    storage: Storage,
}

impl DurableSignerStore {
    pub fn new(storage: Storage) -> DurableSignerStore {
        DurableSignerStore { storage }
    }
}

impl SignerStore for DurableSignerStore {
    fn load(&mut self) -> Result<Option<SignerRecord>, Error> {
        let Some(bytes) = self
            .storage
            .signer_record()
            .map_err(|e| Error::Store(e.to_string()))?
        else {
            return Ok(None);
        };
        tally_consensus::decode(&bytes, SIGNER_RECORD_BYTES_MAX).map(Some)
    }

    fn save(&mut self, record: &SignerRecord) -> Result<(), Error> {
        self.storage
            .put_signer_record(&tally_consensus::encode(record))
            .map_err(|e| Error::Store(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_record_survives_reopening() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let record = SignerRecord::default();
        {
            let mut store = DurableSignerStore::new(Storage::open(dir.path(), "c")?);
            assert_eq!(store.load()?, None);
            store.save(&record)?;
        }
        let mut store = DurableSignerStore::new(Storage::open(dir.path(), "c")?);
        assert_eq!(store.load()?, Some(record));
        Ok(())
    }
}
