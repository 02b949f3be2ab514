//! The subscriptions this node delivers to, in their own database file (`webhooks.redb` in
//! the data directory): what the node agreed with no one, never in a state root, a backup
//! or a sync. A separate file because a delivery's cursor is written after every
//! acknowledged batch, and those writes must never wait for, or hold up, a block's commit
//! (redb has one writer per file).
//!
//! Records are JSON under `s/{id}` (big-endian), the next id under `m/next_id`.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const SUBSCRIPTIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("subscriptions");
const KEY_NEXT_ID: &[u8] = b"m/next_id";
const SUBSCRIPTION_PREFIX: &[u8] = b"s/";
/// The database file inside the data directory.
pub const FILE: &str = "webhooks.redb";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot open the webhook registry {path}: {source}")]
    Open { path: PathBuf, source: redb::Error },
    #[error("webhook registry I/O failed: {0}")]
    Io(#[from] redb::Error),
    #[error("the webhook registry holds a damaged record: {0}")]
    Damaged(String),
}

fn io(error: impl Into<redb::Error>) -> RegistryError {
    RegistryError::Io(error.into())
}

/// Which events a subscription wants, beyond what its owner may see; the `/v1/events`
/// filter's fields, checked when the subscription was made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    pub account: Option<u128>,
    pub merchant: Option<u128>,
    pub institution: Option<u32>,
    /// Event kinds; empty: every kind.
    pub kinds: Vec<String>,
}

/// Whether the node delivers to a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    Active,
    /// Stopped by the node; a replay resumes it.
    Paused {
        reason: String,
        at_ms: u64,
    },
}

/// One subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: u64,
    /// The party that made it (`institution:ID` or `account:ID`): deliveries carry only what
    /// it may read, and only it may see, change or remove the subscription.
    pub owner: String,
    pub url: String,
    pub filter: EventFilter,
    /// The next event to deliver: `(height, index)` of the event stream's ids.
    pub next: (u64, u32),
    pub status: Status,
    /// Bumped by every replay: a delivery started before it cannot move the cursor after it.
    pub generation: u64,
    /// Events delivered and acknowledged.
    pub delivered: u64,
    /// Since when deliveries have failed without a success between (node clock, ms).
    pub failing_since_ms: Option<u64>,
    pub last_error: Option<String>,
    pub created_ms: u64,
}

/// The registry: cheap to clone, shared by the API and the delivery tasks.
#[derive(Clone)]
pub struct Registry {
    db: std::sync::Arc<redb::Database>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

fn key(id: u64) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[..2].copy_from_slice(SUBSCRIPTION_PREFIX);
    key[2..].copy_from_slice(&id.to_be_bytes());
    key
}

fn decode(bytes: &[u8]) -> Result<Subscription, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::Damaged(e.to_string()))
}

fn encode(subscription: &Subscription) -> Result<Vec<u8>, RegistryError> {
    serde_json::to_vec(subscription).map_err(|e| RegistryError::Damaged(e.to_string()))
}

/// Every subscription `table` holds, in id order.
fn every(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<Vec<Subscription>, RegistryError> {
    let mut found = Vec::new();
    for entry in table
        .range(SUBSCRIPTION_PREFIX..b"s0".as_slice())
        .map_err(io)?
    {
        let (_, value) = entry.map_err(io)?;
        found.push(decode(value.value())?);
    }
    Ok(found)
}

impl Registry {
    /// Opens (or creates) the registry in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Registry, RegistryError> {
        let path = data_dir.join(FILE);
        let open = |source: redb::Error| RegistryError::Open {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(|e| open(redb::Error::Io(e)))?;
        let db = redb::Database::create(&path).map_err(|e| open(e.into()))?;
        let txn = db.begin_write().map_err(|e| open(e.into()))?;
        txn.open_table(SUBSCRIPTIONS).map_err(|e| open(e.into()))?;
        txn.commit().map_err(|e| open(e.into()))?;
        Ok(Registry {
            db: std::sync::Arc::new(db),
        })
    }

    /// Every subscription, in id order.
    pub fn all(&self) -> Result<Vec<Subscription>, RegistryError> {
        let txn = self.db.begin_read().map_err(io)?;
        every(&txn.open_table(SUBSCRIPTIONS).map_err(io)?)
    }

    pub fn get(&self, id: u64) -> Result<Option<Subscription>, RegistryError> {
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(SUBSCRIPTIONS).map_err(io)?;
        let value = table.get(key(id).as_slice()).map_err(io)?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// Stores `make(id)` under a fresh id, unless `admit` refuses, given every subscription
    /// held: one write transaction, so two requests cannot both pass a count check.
    pub fn insert<E>(
        &self,
        admit: impl FnOnce(&[Subscription]) -> Result<(), E>,
        make: impl FnOnce(u64) -> Subscription,
    ) -> Result<Result<Subscription, E>, RegistryError> {
        let txn = self.db.begin_write().map_err(io)?;
        let subscription = {
            let mut table = txn.open_table(SUBSCRIPTIONS).map_err(io)?;
            // Read inside the write: the count checked is the count written against.
            let current = every(&table)?;
            if let Err(refused) = admit(&current) {
                return Ok(Err(refused));
            }
            let id = match table.get(KEY_NEXT_ID).map_err(io)? {
                Some(v) => {
                    let bytes: [u8; 8] = v.value().try_into().map_err(|_| {
                        RegistryError::Damaged("the next id is not 8 bytes".to_string())
                    })?;
                    u64::from_be_bytes(bytes)
                }
                None => 1,
            };
            let subscription = make(id);
            table
                .insert(KEY_NEXT_ID, id.saturating_add(1).to_be_bytes().as_slice())
                .map_err(io)?;
            table
                .insert(key(id).as_slice(), encode(&subscription)?.as_slice())
                .map_err(io)?;
            subscription
        };
        txn.commit().map_err(io)?;
        Ok(Ok(subscription))
    }

    /// Rewrites subscription `id` with `change` in one write transaction; `None` when there
    /// is none, or when `change` answers `false` (nothing written).
    pub fn update(
        &self,
        id: u64,
        durable: bool,
        change: impl FnOnce(&mut Subscription) -> bool,
    ) -> Result<Option<Subscription>, RegistryError> {
        let mut txn = self.db.begin_write().map_err(io)?;
        if !durable {
            // A cursor lost in a crash means events delivered again: at least once holds.
            txn.set_durability(redb::Durability::None).map_err(io)?;
        }
        let written = {
            let mut table = txn.open_table(SUBSCRIPTIONS).map_err(io)?;
            let Some(mut subscription) = table
                .get(key(id).as_slice())
                .map_err(io)?
                .map(|v| decode(v.value()))
                .transpose()?
            else {
                return Ok(None);
            };
            if !change(&mut subscription) {
                return Ok(None);
            }
            table
                .insert(key(id).as_slice(), encode(&subscription)?.as_slice())
                .map_err(io)?;
            subscription
        };
        txn.commit().map_err(io)?;
        Ok(Some(written))
    }

    /// Removes subscription `id`; whether it was there.
    pub fn remove(&self, id: u64) -> Result<bool, RegistryError> {
        let txn = self.db.begin_write().map_err(io)?;
        let removed = {
            let mut table = txn.open_table(SUBSCRIPTIONS).map_err(io)?;
            table.remove(key(id).as_slice()).map_err(io)?.is_some()
        };
        txn.commit().map_err(io)?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(id: u64, owner: &str) -> Subscription {
        Subscription {
            id,
            owner: owner.to_string(),
            url: "http://127.0.0.1:9/hook".to_string(),
            filter: EventFilter::default(),
            next: (1, 0),
            status: Status::Active,
            generation: 0,
            delivered: 0,
            failing_since_ms: None,
            last_error: None,
            created_ms: 0,
        }
    }

    #[test]
    fn ids_are_fresh_and_records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        let a = registry
            .insert(|_| Ok::<(), ()>(()), |id| subscription(id, "account:7"))
            .unwrap()
            .unwrap();
        let b = registry
            .insert(|_| Ok::<(), ()>(()), |id| subscription(id, "account:8"))
            .unwrap()
            .unwrap();
        assert_eq!((a.id, b.id), (1, 2));
        assert!(registry.remove(1).unwrap());
        assert!(!registry.remove(1).unwrap());
        drop(registry);
        let registry = Registry::open(dir.path()).unwrap();
        let c = registry
            .insert(|_| Ok::<(), ()>(()), |id| subscription(id, "account:9"))
            .unwrap()
            .unwrap();
        // A removed id is never given again: a late delivery cannot land in a new owner's.
        assert_eq!(c.id, 3);
        let owners: Vec<String> = registry
            .all()
            .unwrap()
            .into_iter()
            .map(|s| s.owner)
            .collect();
        assert_eq!(owners, ["account:8", "account:9"]);
    }

    #[test]
    fn a_refused_insert_writes_nothing_and_updates_see_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        let refused = registry
            .insert(
                |held| if held.is_empty() { Err("full") } else { Ok(()) },
                |id| subscription(id, "account:7"),
            )
            .unwrap();
        assert_eq!(refused, Err("full"));
        assert!(registry.all().unwrap().is_empty());
        registry
            .insert(|_| Ok::<(), ()>(()), |id| subscription(id, "account:7"))
            .unwrap()
            .unwrap();
        let moved = registry
            .update(1, false, |s| {
                s.next = (5, 2);
                true
            })
            .unwrap()
            .unwrap();
        assert_eq!(moved.next, (5, 2));
        assert_eq!(registry.get(1).unwrap().unwrap().next, (5, 2));
        assert!(registry.update(1, true, |_| false).unwrap().is_none());
        assert!(registry.update(9, true, |_| true).unwrap().is_none());
    }
}
