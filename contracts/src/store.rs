//! The key-value view the ledger runs over. The node backs it with redb, tests with a
//! [`MemoryStore`]. The ledger only reads through it: what a block changes comes back as an
//! ordered list of [`Write`]s that the node commits atomically with the block.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Key-value pairs, ordered by key.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Read access to committed state.
pub trait StateStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Entries with `start <= key < end`, ascending by key, at most `limit` of them.
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Entries, StoreError>;
}

/// One change to commit: a value to store under `key`, or `None` to delete it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// State in memory, ordered. For tests, tools and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStore {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Commits a block's writes, in order.
    pub fn apply(&mut self, writes: &[Write]) {
        for write in writes {
            match &write.value {
                Some(value) => {
                    self.entries.insert(write.key.clone(), value.clone());
                }
                None => {
                    self.entries.remove(&write.key);
                }
            }
        }
    }

    /// Commits a block's writes, in order, taking them (no copies).
    pub fn commit(&mut self, writes: Vec<Write>) {
        for write in writes {
            match write.value {
                Some(value) => {
                    self.entries.insert(write.key, value);
                }
                None => {
                    self.entries.remove(&write.key);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl StateStore for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.entries.get(key).cloned())
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Entries, StoreError> {
        if start >= end {
            return Ok(Vec::new());
        }
        Ok(self
            .entries
            .range::<[u8], _>((
                std::ops::Bound::Included(start),
                std::ops::Bound::Excluded(end),
            ))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl<S: StateStore + ?Sized> StateStore for &S {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(key)
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Entries, StoreError> {
        (**self).scan(start, end, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_is_ordered_bounded_and_half_open() {
        let mut store = MemoryStore::new();
        let writes: Vec<Write> = [3u8, 1, 2, 5]
            .iter()
            .map(|k| Write {
                key: vec![*k],
                value: Some(vec![*k]),
            })
            .collect();
        store.apply(&writes);
        let got = store.scan(&[1], &[5], 10).unwrap();
        let keys: Vec<u8> = got.iter().map(|(k, _)| k[0]).collect();
        assert_eq!(keys, vec![1, 2, 3]);
        assert_eq!(store.scan(&[1], &[5], 2).unwrap().len(), 2);
        assert!(store.scan(&[5], &[1], 10).unwrap().is_empty());
        store.apply(&[Write {
            key: vec![2],
            value: None,
        }]);
        assert_eq!(store.get(&[2]).unwrap(), None);
    }
}
