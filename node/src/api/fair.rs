//! Fair shares: what one client may hold of the node's API, so that no client can starve the
//! others. A client is the party its request is signed as, or, without credentials, its IP
//! address.
//!
//! - Requests: a token bucket per client (`requests_per_second_per_client`, with a burst).
//! - Event streams, commit waiters and audit scans: a per-client cap inside the node's
//!   global cap. One client filling its own share is answered 429 while others still find
//!   room, up to the global cap (which bounds the node's memory).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::caller::KeyId;

/// The most clients whose request buckets are remembered; beyond it, idle ones are dropped
/// and, while every one is busy, new clients share one overflow bucket.
pub const RATE_CLIENTS_MAX: usize = 16_384;

/// Whom a share is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClientKey {
    Party(KeyId),
    Address(IpAddr),
    /// Requests whose address the server did not pass on (a router served without
    /// connection information), and new clients while the bucket table is full.
    Unknown,
}

/// Why a share was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client holds all it may.
    Client,
    /// The node holds all it may, across clients.
    Node,
}

/// A bounded resource shared by clients: at most `node_max` held in all, at most
/// `client_max` by one client.
#[derive(Debug)]
pub struct Pool {
    node: Arc<Semaphore>,
    node_max: usize,
    client_max: usize,
    held: Arc<Mutex<BTreeMap<ClientKey, usize>>>,
}

/// One unit of a [`Pool`], given back when dropped.
#[derive(Debug)]
pub struct Share {
    _permit: OwnedSemaphorePermit,
    client: ClientKey,
    held: Arc<Mutex<BTreeMap<ClientKey, usize>>>,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.client);
            }
        }
    }
}

impl Pool {
    pub fn new(node_max: usize, client_max: usize) -> Pool {
        Pool {
            node: Arc::new(Semaphore::new(node_max)),
            node_max,
            client_max,
            held: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// Units held now, by all clients.
    pub fn held(&self) -> usize {
        self.node_max.saturating_sub(self.node.available_permits())
    }

    /// One unit for `client`, or why not.
    pub fn take(&self, client: ClientKey) -> Result<Share, Refused> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = held.get(&client).copied().unwrap_or(0);
        if mine >= self.client_max {
            return Err(Refused::Client);
        }
        let permit = self
            .node
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Node)?;
        held.insert(client, mine + 1);
        Ok(Share {
            _permit: permit,
            client,
            held: self.held.clone(),
        })
    }

    /// How many units `client` holds now.
    pub fn held_by(&self, client: ClientKey) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&client)
            .copied()
            .unwrap_or(0)
    }
}

/// Tokens are counted in thousandths, so a bucket refills smoothly by the millisecond.
const MILLI: u64 = 1_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens_milli: u64,
    refilled: Instant,
}

/// Token buckets per client: `per_second` requests a second, up to `burst` at once.
#[derive(Debug)]
pub struct Rates {
    per_second: u64,
    burst: u64,
    buckets: Mutex<BTreeMap<ClientKey, Bucket>>,
}

impl Rates {
    pub fn new(per_second: u64, burst: u64) -> Rates {
        Rates {
            per_second,
            burst: burst.max(1),
            buckets: Mutex::new(BTreeMap::new()),
        }
    }

    /// Takes one request's token from `client`'s bucket; false when it is empty.
    pub fn allow(&self, client: ClientKey, now: Instant) -> bool {
        self.allow_n(client, 1, now)
    }

    /// Takes `n` tokens from `client`'s bucket at once, or none (false) when it holds fewer:
    /// a batch of `n` transactions costs what `n` requests would.
    pub fn allow_n(&self, client: ClientKey, n: u64, now: Instant) -> bool {
        let cost = n.saturating_mul(MILLI);
        let full = self.burst.saturating_mul(MILLI);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let client = if buckets.contains_key(&client) || buckets.len() < RATE_CLIENTS_MAX {
            client
        } else {
            self.forget_idle(&mut buckets, now);
            if buckets.len() < RATE_CLIENTS_MAX {
                client
            } else {
                ClientKey::Unknown
            }
        };
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens_milli: full,
            refilled: now,
        });
        let elapsed_ms = u64::try_from(now.saturating_duration_since(bucket.refilled).as_millis())
            .unwrap_or(u64::MAX);
        // per_second tokens a second = per_second thousandths a millisecond.
        bucket.tokens_milli = bucket
            .tokens_milli
            .saturating_add(elapsed_ms.saturating_mul(self.per_second))
            .min(full);
        bucket.refilled = now;
        if bucket.tokens_milli < cost {
            return false;
        }
        bucket.tokens_milli -= cost;
        true
    }

    /// Drops buckets that would be full by now: their clients have been idle.
    fn forget_idle(&self, buckets: &mut BTreeMap<ClientKey, Bucket>, now: Instant) {
        let full = self.burst.saturating_mul(MILLI);
        buckets.retain(|_, b| {
            let elapsed_ms = u64::try_from(now.saturating_duration_since(b.refilled).as_millis())
                .unwrap_or(u64::MAX);
            b.tokens_milli
                .saturating_add(elapsed_ms.saturating_mul(self.per_second))
                < full
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tally_contracts::InstitutionId;

    fn party(i: u32) -> ClientKey {
        ClientKey::Party(KeyId::Institution(InstitutionId(i)))
    }

    #[test]
    fn one_client_at_its_cap_leaves_room_for_others() {
        let pool = Pool::new(4, 2);
        let a1 = pool.take(party(1));
        let a2 = pool.take(party(1));
        assert!(a1.is_ok() && a2.is_ok());
        assert_eq!(pool.take(party(1)).err(), Some(Refused::Client));
        let b1 = pool.take(party(2));
        let b2 = pool.take(party(2));
        assert!(b1.is_ok() && b2.is_ok());
        assert_eq!(pool.take(party(3)).err(), Some(Refused::Node));
        assert_eq!(pool.held(), 4, "the node's cap, filled past, holds");
        drop(a1);
        assert_eq!(pool.held(), 3);
        assert_eq!(pool.held_by(party(1)), 1);
        let c = pool.take(party(3));
        assert!(c.is_ok());
        assert_eq!(pool.held_by(party(3)), 1);
        drop(c);
        assert_eq!(pool.held_by(party(3)), 0);
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let rates = Rates::new(10, 5);
        let start = Instant::now();
        for _ in 0..5 {
            assert!(rates.allow(party(1), start));
        }
        assert!(!rates.allow(party(1), start));
        // Another client has its own bucket.
        assert!(rates.allow(party(2), start));
        // 10 a second: one more after 100 ms, not before.
        assert!(!rates.allow(party(1), start + Duration::from_millis(50)));
        assert!(rates.allow(party(1), start + Duration::from_millis(150)));
        assert!(!rates.allow(party(1), start + Duration::from_millis(150)));
        // Idle long enough, the bucket is full again, never above its burst.
        let later = start + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(rates.allow(party(1), later));
        }
        assert!(!rates.allow(party(1), later));
    }

    #[test]
    fn a_batch_takes_all_its_tokens_or_none() {
        let rates = Rates::new(10, 5);
        let start = Instant::now();
        assert!(rates.allow_n(party(1), 3, start));
        // Two tokens left: a batch of three is refused and takes nothing …
        assert!(!rates.allow_n(party(1), 3, start));
        // … so the two are still there for single requests.
        assert!(rates.allow(party(1), start));
        assert!(rates.allow(party(1), start));
        assert!(!rates.allow(party(1), start));
        // More than the burst never passes, however long the client waits.
        assert!(!rates.allow_n(party(2), 6, start + Duration::from_secs(60)));
    }
}
