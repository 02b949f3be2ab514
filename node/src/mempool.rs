//! The mempool: transactions waiting for a block.
//!
//! Bounded in count and bytes: a full pool answers [`MempoolError::Busy`] instead of
//! growing. Transactions are kept per sender in nonce order; a block takes them in arrival
//! order, but never a nonce before its predecessor. Signatures are checked by the caller
//! (in batches) before a transaction gets here, once per transaction: the pool only holds
//! verified transactions.
//!
//! A sender's transactions form a run from its next committed nonce; those beyond a gap in
//! that run ("gapped") cannot be executed, so they must never keep out one that can. The
//! rule: a gapped transaction is the first to go: an executable transaction arriving at a
//! full pool evicts gapped ones (farthest ahead of its sender's next nonce first), a gapped
//! one waits at most [`GAPPED_BLOCKS_MAX`] committed blocks, and a sender holds at most
//! [`GAPPED_PER_SENDER_MAX`] of them.
//!
//! One transaction per (sender, nonce) slot: the first to arrive holds it, with one
//! exception. A transaction's id covers its signers, so copies of one body with different
//! signatures are different transactions, and a copy stripped of a co-signature (a card's
//! bank, a second factor) would commit with another outcome than the one its sender and
//! co-signers meant. So when two copies of one body meet, the one whose signers are a
//! strict superset of the other's holds the slot: it replaces a held copy with fewer
//! signers (keeping its place in line), and a copy with fewer signers than the held one is
//! refused ([`MempoolError::FewerSignatures`]). Copies whose signer sets do not contain one
//! another: the first holds the slot. The chain task also refuses to vote for a block that
//! carries a copy with fewer signers than one it holds.

use std::collections::BTreeMap;

use tally_crypto::{Hash, PublicKey};

/// How many committed blocks a transaction may wait with a gap before it. Long enough for a
/// client to resubmit a missing nonce (a refused or lost one), short enough that an
/// abandoned gap does not hold its slots for long; eviction, not expiry, is what keeps
/// executable transactions flowing when the pool is full.
pub const GAPPED_BLOCKS_MAX: u64 = 128;
/// How many gapped transactions one sender may hold: enough for a client sending a little
/// out of order, far below a pool's worth.
pub const GAPPED_PER_SENDER_MAX: usize = 64;

/// What the pool needs to know of a transaction.
pub trait PoolTx {
    /// The account whose nonce orders this transaction.
    fn sender(&self) -> [u8; 32];
    fn nonce(&self) -> u64;
    /// The transaction's id (it covers the signer set).
    fn hash(&self) -> Hash;
    fn size_bytes(&self) -> usize;
    /// The keys that signed, sorted.
    fn signers(&self) -> &[PublicKey];
    /// Whether `other` is a copy of this transaction: the same body, whatever signatures.
    fn same_body(&self, other: &Self) -> bool;
}

/// Whether the sorted key list `big` holds every key of the sorted list `small` and more.
pub fn strict_superset(big: &[PublicKey], small: &[PublicKey]) -> bool {
    big.len() > small.len() && small.iter().all(|k| big.binary_search(k).is_ok())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolLimits {
    pub txs_max: usize,
    pub bytes_max: usize,
    /// How far ahead of the sender's next nonce a transaction may be.
    pub nonce_ahead_max: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    #[error("the transaction is already in the mempool")]
    Duplicate,
    #[error("the mempool is full; try again later")]
    Busy,
    #[error("nonce {nonce} was already used (next is {next})")]
    NonceUsed { nonce: u64, next: u64 },
    /// Also the answer when the sender already holds [`GAPPED_PER_SENDER_MAX`] transactions
    /// beyond a gap and this one would be another.
    #[error("nonce {nonce} is too far ahead of the next nonce {next}")]
    NonceTooFarAhead { nonce: u64, next: u64 },
    #[error("another transaction with nonce {nonce} from this sender is waiting")]
    NonceTaken { nonce: u64 },
    /// A copy of the same body signed by more keys (a superset of these) is waiting.
    #[error("a copy of this transaction signed by more keys is waiting (nonce {nonce})")]
    FewerSignatures { nonce: u64 },
    #[error("the transaction is {size} bytes, more than the mempool's {max}")]
    TooLarge { size: usize, max: usize },
}

/// Key of a gapped transaction in the eviction order: (nonce minus its sender's next
/// nonce, arrival); the greatest goes first.
type GapKey = (u64, u64);

#[derive(Debug)]
struct Gap {
    key: GapKey,
    /// The pool's block count when the transaction became gapped.
    since: u64,
}

#[derive(Debug)]
struct Entry<T> {
    tx: T,
    arrival: u64,
    gap: Option<Gap>,
}

#[derive(Debug)]
struct Queue<T> {
    /// The sender's next nonce in the committed state, as last told.
    next: u64,
    txs: BTreeMap<u64, Entry<T>>,
}

impl<T> Queue<T> {
    /// The nonce after the run of consecutive transactions from `next`.
    fn run_end(&self) -> u64 {
        let mut end = self.next;
        for nonce in self.txs.range(self.next..).map(|(n, _)| *n) {
            if nonce != end {
                break;
            }
            end = end.saturating_add(1);
        }
        end
    }

    fn gapped_count(&self) -> usize {
        self.txs.values().filter(|e| e.gap.is_some()).count()
    }
}

#[derive(Debug)]
pub struct Mempool<T> {
    limits: MempoolLimits,
    by_sender: BTreeMap<[u8; 32], Queue<T>>,
    by_hash: BTreeMap<Hash, ([u8; 32], u64)>,
    by_arrival: BTreeMap<u64, ([u8; 32], u64)>,
    /// The gapped transactions, in eviction order (last goes first).
    gapped: BTreeMap<GapKey, ([u8; 32], u64)>,
    gapped_bytes: usize,
    next_arrival: u64,
    /// Committed blocks seen (calls of [`Mempool::remove_committed`]): the clock of expiry.
    blocks: u64,
    bytes: usize,
}

impl<T: PoolTx + Clone> Mempool<T> {
    pub fn new(limits: MempoolLimits) -> Mempool<T> {
        Mempool {
            limits,
            by_sender: BTreeMap::new(),
            by_hash: BTreeMap::new(),
            by_arrival: BTreeMap::new(),
            gapped: BTreeMap::new(),
            gapped_bytes: 0,
            next_arrival: 0,
            blocks: 0,
            bytes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many transactions wait with a gap before them.
    pub fn gapped_len(&self) -> usize {
        self.gapped.len()
    }

    pub fn contains(&self, hash: &Hash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Adds a verified transaction. `next_nonce` is the sender's next nonce in the committed
    /// state. At a full pool, a transaction its sender can execute next evicts gapped ones
    /// (see the module's rule); a gapped one is refused. A copy with more signers than the
    /// one holding its slot replaces it: the displaced copy is returned.
    pub fn insert(&mut self, tx: T, next_nonce: u64) -> Result<Option<T>, MempoolError> {
        let hash = tx.hash();
        if self.by_hash.contains_key(&hash) {
            return Err(MempoolError::Duplicate);
        }
        let (sender, nonce, size) = (tx.sender(), tx.nonce(), tx.size_bytes());
        if nonce < next_nonce {
            return Err(MempoolError::NonceUsed {
                nonce,
                next: next_nonce,
            });
        }
        if nonce - next_nonce > self.limits.nonce_ahead_max {
            return Err(MempoolError::NonceTooFarAhead {
                nonce,
                next: next_nonce,
            });
        }
        if size > self.limits.bytes_max {
            return Err(MempoolError::TooLarge {
                size,
                max: self.limits.bytes_max,
            });
        }
        if let Some(held) = self.at(&sender, nonce) {
            if held.same_body(&tx) {
                if strict_superset(tx.signers(), held.signers()) {
                    return self.replace(&sender, nonce, tx).map(Some);
                }
                if strict_superset(held.signers(), tx.signers()) {
                    return Err(MempoolError::FewerSignatures { nonce });
                }
            }
            return Err(MempoolError::NonceTaken { nonce });
        }
        self.advance(&sender, next_nonce);
        let (executable, sender_gapped) = match self.by_sender.get(&sender) {
            Some(queue) => (nonce == queue.run_end(), queue.gapped_count()),
            None => (nonce == next_nonce, 0),
        };
        if !executable && sender_gapped >= GAPPED_PER_SENDER_MAX {
            return Err(MempoolError::NonceTooFarAhead {
                nonce,
                next: next_nonce,
            });
        }
        if !self.fits(size) {
            // Room is made only for an executable transaction, and only if evicting every
            // gapped one would make enough.
            let room_without_gapped = self.len().saturating_sub(self.gapped.len())
                < self.limits.txs_max
                && (self.bytes.saturating_sub(self.gapped_bytes)).saturating_add(size)
                    <= self.limits.bytes_max;
            if !executable || !room_without_gapped {
                return Err(MempoolError::Busy);
            }
            while !self.fits(size) {
                let Some((_, &(victim_sender, victim_nonce))) = self.gapped.last_key_value() else {
                    return Err(MempoolError::Busy);
                };
                // A gapped transaction's removal changes no other's standing.
                self.detach(&victim_sender, victim_nonce);
                tracing::debug!(
                    nonce = victim_nonce,
                    "mempool: evicted a gapped transaction"
                );
            }
        }
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.by_sender
            .entry(sender)
            .or_insert_with(|| Queue {
                next: next_nonce,
                txs: BTreeMap::new(),
            })
            .txs
            .insert(
                nonce,
                Entry {
                    tx,
                    arrival,
                    gap: None,
                },
            );
        self.by_hash.insert(hash, (sender, nonce));
        self.by_arrival.insert(arrival, (sender, nonce));
        self.bytes += size;
        self.classify(&sender);
        Ok(None)
    }

    /// Puts `tx` in the place of the copy holding its slot (same arrival, same standing).
    fn replace(&mut self, sender: &[u8; 32], nonce: u64, tx: T) -> Result<T, MempoolError> {
        let (new_hash, new_size) = (tx.hash(), tx.size_bytes());
        let old_size = self.at(sender, nonce).map_or(0, PoolTx::size_bytes);
        let bytes = self.bytes.saturating_sub(old_size).saturating_add(new_size);
        if bytes > self.limits.bytes_max {
            return Err(MempoolError::Busy);
        }
        let entry = self
            .by_sender
            .get_mut(sender)
            .and_then(|q| q.txs.get_mut(&nonce))
            .ok_or(MempoolError::NonceTaken { nonce })?;
        let old = std::mem::replace(&mut entry.tx, tx);
        if entry.gap.is_some() {
            self.gapped_bytes = self
                .gapped_bytes
                .saturating_sub(old_size)
                .saturating_add(new_size);
        }
        self.by_hash.remove(&old.hash());
        self.by_hash.insert(new_hash, (*sender, nonce));
        self.bytes = bytes;
        Ok(old)
    }

    /// The transaction holding `sender`'s slot `nonce`, if any.
    pub fn at(&self, sender: &[u8; 32], nonce: u64) -> Option<&T> {
        self.by_sender.get(sender)?.txs.get(&nonce).map(|e| &e.tx)
    }

    /// `sender`'s waiting transactions below `nonce`, in nonce order.
    pub fn waiting_below(&self, sender: &[u8; 32], nonce: u64) -> impl Iterator<Item = &T> {
        self.by_sender
            .get(sender)
            .into_iter()
            .flat_map(move |q| q.txs.range(..nonce).map(|(_, e)| &e.tx))
    }

    /// Whether a transaction of `size` bytes fits beside what is here.
    fn fits(&self, size: usize) -> bool {
        self.len() < self.limits.txs_max && self.bytes.saturating_add(size) <= self.limits.bytes_max
    }

    /// Transactions for a block, up to `txs_max` and `bytes_max`: in arrival order, each
    /// sender's in nonce order from its next committed nonce, with no gaps.
    /// `next_nonce(sender)` answers the sender's next nonce in the committed state.
    pub fn reap(
        &self,
        txs_max: usize,
        bytes_max: usize,
        mut next_nonce: impl FnMut(&[u8; 32]) -> u64,
    ) -> Vec<T> {
        let mut expected: BTreeMap<[u8; 32], u64> = BTreeMap::new();
        // Transactions that arrived before their predecessor, taken right after it.
        let mut early: BTreeMap<[u8; 32], std::collections::BTreeSet<u64>> = BTreeMap::new();
        let mut taken: Vec<T> = Vec::new();
        let mut bytes = 0usize;
        for (sender, nonce) in self.by_arrival.values() {
            let next = *expected
                .entry(*sender)
                .or_insert_with(|| next_nonce(sender));
            if *nonce > next {
                early.entry(*sender).or_default().insert(*nonce);
                continue;
            }
            if *nonce < next {
                continue;
            }
            let mut nonce = *nonce;
            while let Some(entry) = self.by_sender.get(sender).and_then(|q| q.txs.get(&nonce)) {
                let size = entry.tx.size_bytes();
                if taken.len() >= txs_max || bytes.saturating_add(size) > bytes_max {
                    return taken;
                }
                bytes += size;
                taken.push(entry.tx.clone());
                nonce += 1;
                expected.insert(*sender, nonce);
                let successor_waits = early
                    .get_mut(sender)
                    .is_some_and(|waiting| waiting.remove(&nonce));
                if !successor_waits {
                    break;
                }
            }
        }
        taken
    }

    pub fn get(&self, hash: &Hash) -> Option<&T> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        self.by_sender.get(sender)?.txs.get(nonce).map(|e| &e.tx)
    }

    /// Drops one transaction (committed, or found invalid), if it is here.
    pub fn remove(&mut self, hash: &Hash) {
        let Some((sender, nonce)) = self.by_hash.get(hash).copied() else {
            return;
        };
        self.take(&sender, nonce);
    }

    /// Each waiting transaction, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.by_arrival.values().filter_map(|(sender, nonce)| {
            self.by_sender
                .get(sender)
                .and_then(|q| q.txs.get(nonce))
                .map(|e| &e.tx)
        })
    }

    /// Drops what a committed block made stale: for each sender touched, every transaction
    /// below its new next nonce. Called once per committed block: it is also the clock by
    /// which gapped transactions expire after [`GAPPED_BLOCKS_MAX`] blocks.
    pub fn remove_committed(&mut self, senders: &[([u8; 32], u64)]) {
        self.blocks = self.blocks.saturating_add(1);
        for (sender, next) in senders {
            self.advance(sender, *next);
        }
        let expired: Vec<([u8; 32], u64)> = self
            .gapped
            .values()
            .filter(|(sender, nonce)| {
                self.by_sender
                    .get(sender)
                    .and_then(|q| q.txs.get(nonce))
                    .and_then(|e| e.gap.as_ref())
                    .is_some_and(|gap| self.blocks.saturating_sub(gap.since) >= GAPPED_BLOCKS_MAX)
            })
            .copied()
            .collect();
        for (sender, nonce) in expired {
            self.detach(&sender, nonce);
        }
    }

    /// Records that `sender`'s next committed nonce is `next` (never moving it back): drops
    /// its transactions below it and reclassifies the rest.
    fn advance(&mut self, sender: &[u8; 32], next: u64) {
        let Some(queue) = self.by_sender.get_mut(sender) else {
            return;
        };
        if next <= queue.next {
            return;
        }
        queue.next = next;
        let stale: Vec<u64> = queue.txs.range(..next).map(|(n, _)| *n).collect();
        for nonce in stale {
            self.detach(sender, nonce);
        }
        self.classify(sender);
    }

    /// Removes one transaction from every index, then reclassifies its sender's others.
    fn take(&mut self, sender: &[u8; 32], nonce: u64) {
        self.detach(sender, nonce);
        self.classify(sender);
    }

    /// Removes one transaction from every index, leaving its sender's others as they were.
    fn detach(&mut self, sender: &[u8; 32], nonce: u64) {
        let Some(queue) = self.by_sender.get_mut(sender) else {
            return;
        };
        if let Some(entry) = queue.txs.remove(&nonce) {
            self.by_hash.remove(&entry.tx.hash());
            self.by_arrival.remove(&entry.arrival);
            let size = entry.tx.size_bytes();
            self.bytes = self.bytes.saturating_sub(size);
            if let Some(gap) = entry.gap {
                self.gapped.remove(&gap.key);
                self.gapped_bytes = self.gapped_bytes.saturating_sub(size);
            }
        }
        if queue.txs.is_empty() {
            self.by_sender.remove(sender);
        }
    }

    /// Marks each of `sender`'s transactions gapped or not, keeping the gapped index and the
    /// time each became gapped.
    fn classify(&mut self, sender: &[u8; 32]) {
        let Some(queue) = self.by_sender.get_mut(sender) else {
            return;
        };
        let (next, run_end) = (queue.next, queue.run_end());
        for (nonce, entry) in queue.txs.iter_mut() {
            let size = entry.tx.size_bytes();
            if (next..run_end).contains(nonce) {
                if let Some(gap) = entry.gap.take() {
                    self.gapped.remove(&gap.key);
                    self.gapped_bytes = self.gapped_bytes.saturating_sub(size);
                }
                continue;
            }
            let key = (nonce.saturating_sub(next), entry.arrival);
            match &mut entry.gap {
                Some(gap) if gap.key == key => {}
                Some(gap) => {
                    self.gapped.remove(&gap.key);
                    self.gapped.insert(key, (*sender, *nonce));
                    gap.key = key;
                }
                None => {
                    self.gapped.insert(key, (*sender, *nonce));
                    self.gapped_bytes = self.gapped_bytes.saturating_add(size);
                    entry.gap = Some(Gap {
                        key,
                        since: self.blocks,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Tx {
        sender: u8,
        nonce: u64,
        size: usize,
        /// Which body, among a sender's bodies at one nonce.
        body: u8,
        /// Sorted.
        signers: Vec<PublicKey>,
    }

    impl PoolTx for Tx {
        fn sender(&self) -> [u8; 32] {
            [self.sender; 32]
        }
        fn nonce(&self) -> u64 {
            self.nonce
        }
        fn hash(&self) -> Hash {
            let mut bytes = vec![self.sender, self.body];
            bytes.extend_from_slice(&self.nonce.to_be_bytes());
            bytes.extend_from_slice(&(self.size as u64).to_be_bytes());
            for key in &self.signers {
                bytes.extend_from_slice(&key.0);
            }
            Hash::digest("test-tx", &bytes)
        }
        fn size_bytes(&self) -> usize {
            self.size
        }
        fn signers(&self) -> &[PublicKey] {
            &self.signers
        }
        fn same_body(&self, other: &Tx) -> bool {
            (self.sender, self.nonce, self.body) == (other.sender, other.nonce, other.body)
        }
    }

    fn tx(sender: u8, nonce: u64) -> Tx {
        Tx {
            sender,
            nonce,
            size: 100,
            body: 0,
            signers: vec![PublicKey([sender; 32])],
        }
    }

    /// `tx(sender, nonce)` signed by the sender and the keys `others` (bytes of the keys).
    fn signed_by(sender: u8, nonce: u64, others: &[u8]) -> Tx {
        let mut t = tx(sender, nonce);
        t.signers.extend(others.iter().map(|k| PublicKey([*k; 32])));
        t.signers.sort();
        t.size += 64 * others.len();
        t
    }

    fn pool(txs_max: usize) -> Mempool<Tx> {
        Mempool::new(MempoolLimits {
            txs_max,
            bytes_max: 100 * txs_max,
            nonce_ahead_max: 16,
        })
    }

    #[test]
    fn duplicates_and_stale_nonces_are_refused() {
        let mut pool = pool(10);
        assert_eq!(pool.insert(tx(1, 5), 5), Ok(None));
        assert_eq!(pool.insert(tx(1, 5), 5), Err(MempoolError::Duplicate));
        assert_eq!(
            pool.insert(tx(1, 4), 5),
            Err(MempoolError::NonceUsed { nonce: 4, next: 5 })
        );
        assert_eq!(
            pool.insert(tx(1, 22), 5),
            Err(MempoolError::NonceTooFarAhead { nonce: 22, next: 5 })
        );
        let same_nonce = Tx {
            size: 99,
            ..tx(1, 5)
        };
        assert_eq!(
            pool.insert(same_nonce, 5),
            Err(MempoolError::NonceTaken { nonce: 5 })
        );
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn full_pool_answers_busy_and_stays_bounded() {
        let mut pool = pool(3);
        for i in 0..3 {
            assert_eq!(pool.insert(tx(i, 0), 0), Ok(None));
        }
        for i in 3..30 {
            assert_eq!(pool.insert(tx(i, 0), 0), Err(MempoolError::Busy));
        }
        assert_eq!((pool.len(), pool.bytes()), (3, 300));
    }

    #[test]
    fn reap_keeps_nonce_order_and_limits() {
        let mut pool = pool(10);
        // Sender 1's nonce 1 arrives before its nonce 0.
        for t in [tx(1, 1), tx(2, 0), tx(1, 0), tx(3, 7), tx(2, 1)] {
            let next = if t.sender == 3 { 5 } else { 0 };
            assert_eq!(pool.insert(t, next), Ok(None));
        }
        let next = |s: &[u8; 32]| if s[0] == 3 { 5 } else { 0 };
        let block = pool.reap(10, 10_000, next);
        assert_eq!(
            block,
            vec![tx(2, 0), tx(1, 0), tx(1, 1), tx(2, 1)],
            "sender 3 has a gap"
        );
        assert_eq!(pool.reap(2, 10_000, next).len(), 2);
        assert_eq!(pool.reap(10, 250, next).len(), 2);
    }

    #[test]
    fn committed_transactions_leave_the_pool() {
        let mut pool = pool(10);
        for t in [tx(1, 0), tx(1, 1), tx(1, 2), tx(2, 0)] {
            assert_eq!(pool.insert(t, 0), Ok(None));
        }
        pool.remove_committed(&[([1; 32], 2), ([2; 32], 1)]);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.bytes(), 100);
        assert!(pool.contains(&tx(1, 2).hash()));
        assert_eq!(pool.reap(10, 10_000, |_| 2), vec![tx(1, 2)]);
    }

    fn wide_pool(txs_max: usize) -> Mempool<Tx> {
        Mempool::new(MempoolLimits {
            txs_max,
            bytes_max: 100 * txs_max,
            nonce_ahead_max: 1_024,
        })
    }

    #[test]
    fn a_pool_full_of_gapped_transactions_still_admits_executable_ones() {
        let mut pool = pool(4);
        // Four senders each skip nonces: nothing here can run.
        for s in 1..=4u8 {
            assert_eq!(pool.insert(tx(s, u64::from(s)), 0), Ok(None));
        }
        assert_eq!((pool.len(), pool.gapped_len()), (4, 4));
        // Another gapped one finds the pool full.
        assert_eq!(pool.insert(tx(5, 3), 0), Err(MempoolError::Busy));
        // An executable one evicts the gapped one farthest ahead (sender 4, nonce 4).
        assert_eq!(pool.insert(tx(9, 0), 0), Ok(None));
        assert!(!pool.contains(&tx(4, 4).hash()));
        assert!(pool.contains(&tx(9, 0).hash()));
        // So does the next one after a queued run, then the next farthest (sender 3).
        assert_eq!(pool.insert(tx(9, 1), 0), Ok(None));
        assert!(!pool.contains(&tx(3, 3).hash()));
        // Filling a sender's gap makes its waiting transaction executable.
        assert_eq!(pool.insert(tx(1, 0), 0), Ok(None));
        assert!(!pool.contains(&tx(2, 2).hash()));
        assert_eq!((pool.len(), pool.gapped_len(), pool.bytes()), (4, 0, 400));
        // No gapped transaction is left: now an executable one is refused.
        assert_eq!(pool.insert(tx(7, 0), 0), Err(MempoolError::Busy));
        let block = pool.reap(10, 10_000, |_| 0);
        assert_eq!(block, vec![tx(9, 0), tx(9, 1), tx(1, 0), tx(1, 1)]);
    }

    #[test]
    fn an_executable_transaction_evicts_as_many_gapped_ones_as_its_bytes_need() {
        let mut pool = pool(10); // 1,000 bytes
        assert_eq!(pool.insert(tx(1, 0), 0), Ok(None));
        for s in 2..=10u8 {
            assert_eq!(pool.insert(tx(s, 1), 0), Ok(None));
        }
        let big = Tx {
            size: 250,
            ..tx(1, 1)
        };
        // Not enough room even without every gapped one: nothing is evicted.
        let huge = Tx {
            size: 950,
            ..tx(1, 1)
        };
        assert_eq!(pool.insert(huge, 0), Err(MempoolError::Busy));
        assert_eq!((pool.len(), pool.gapped_len()), (10, 9));
        assert_eq!(pool.insert(big.clone(), 0), Ok(None));
        assert_eq!((pool.len(), pool.gapped_len(), pool.bytes()), (8, 6, 950));
        assert_eq!(pool.reap(10, 10_000, |_| 0), vec![tx(1, 0), big]);
    }

    #[test]
    fn gapped_transactions_expire_after_gapped_blocks_max() {
        let mut pool = pool(10);
        assert_eq!(pool.insert(tx(1, 3), 0), Ok(None));
        assert_eq!(pool.insert(tx(2, 0), 0), Ok(None));
        // Sender 3's gap is filled in time; sender 4's gap is closed by a commit.
        assert_eq!(pool.insert(tx(3, 1), 0), Ok(None));
        assert_eq!(pool.insert(tx(4, 2), 0), Ok(None));
        assert_eq!(pool.gapped_len(), 3);
        for _ in 1..GAPPED_BLOCKS_MAX / 2 {
            pool.remove_committed(&[]);
        }
        assert_eq!(pool.insert(tx(3, 0), 0), Ok(None));
        pool.remove_committed(&[([4; 32], 2)]);
        // Sender 5's nonce 1 becomes gapped later, when its nonce 0 is dropped as invalid.
        assert_eq!(pool.insert(tx(5, 0), 0), Ok(None));
        assert_eq!(pool.insert(tx(5, 1), 0), Ok(None));
        pool.remove(&tx(5, 0).hash());
        assert_eq!(pool.gapped_len(), 2);
        for _ in GAPPED_BLOCKS_MAX / 2..GAPPED_BLOCKS_MAX - 1 {
            pool.remove_committed(&[]);
        }
        assert!(pool.contains(&tx(1, 3).hash()), "not yet expired");
        pool.remove_committed(&[]);
        assert!(!pool.contains(&tx(1, 3).hash()), "expired");
        for t in [tx(2, 0), tx(3, 0), tx(3, 1), tx(4, 2), tx(5, 1)] {
            assert!(pool.contains(&t.hash()), "{t:?} stays");
        }
        assert_eq!((pool.len(), pool.bytes()), (5, 500));
        for _ in 0..GAPPED_BLOCKS_MAX / 2 {
            pool.remove_committed(&[]);
        }
        assert!(
            !pool.contains(&tx(5, 1).hash()),
            "expired, counted from its gap"
        );
        assert_eq!((pool.len(), pool.gapped_len(), pool.bytes()), (4, 0, 400));
    }

    #[test]
    fn a_sender_holds_at_most_gapped_per_sender_max_gapped_transactions() {
        let mut pool = wide_pool(1_000);
        let cap = GAPPED_PER_SENDER_MAX as u64;
        for nonce in 1..=cap {
            assert_eq!(pool.insert(tx(1, nonce), 0), Ok(None));
        }
        assert_eq!(
            pool.insert(tx(1, cap + 1), 0),
            Err(MempoolError::NonceTooFarAhead {
                nonce: cap + 1,
                next: 0
            })
        );
        assert_eq!(
            pool.insert(tx(2, 5), 0),
            Ok(None),
            "other senders are not held"
        );
        // Filling the gap makes the whole run executable; the sender may queue more.
        assert_eq!(pool.insert(tx(1, 0), 0), Ok(None));
        assert_eq!(pool.gapped_len(), 1);
        for nonce in cap + 1..=cap + 100 {
            assert_eq!(pool.insert(tx(1, nonce), 0), Ok(None), "executable run");
        }
        assert_eq!(pool.insert(tx(1, cap + 102), 0), Ok(None));
        assert_eq!(pool.len(), GAPPED_PER_SENDER_MAX + 100 + 1 + 1 + 1);
    }

    /// A co-signature stripped in flight: whichever copy arrives first, the one with more
    /// signers holds the slot, in the first one's place in line.
    #[test]
    fn a_copy_with_more_signers_holds_the_slot() {
        let original = signed_by(1, 0, &[50]);
        let stripped = tx(1, 0);
        // The stripped copy first: the original replaces it.
        let mut pool = pool(10);
        assert_eq!(pool.insert(tx(2, 0), 0), Ok(None));
        assert_eq!(pool.insert(stripped.clone(), 0), Ok(None));
        assert_eq!(pool.insert(tx(3, 0), 0), Ok(None));
        assert_eq!(pool.insert(original.clone(), 0), Ok(Some(stripped.clone())));
        assert!(pool.contains(&original.hash()) && !pool.contains(&stripped.hash()));
        assert_eq!((pool.len(), pool.bytes()), (3, 300 + 64));
        assert_eq!(
            pool.reap(10, 10_000, |_| 0),
            vec![tx(2, 0), original.clone(), tx(3, 0)],
            "the original takes the stripped copy's place in line"
        );
        // The original first: the stripped copy is refused.
        let mut pool = self::pool(10);
        assert_eq!(pool.insert(original.clone(), 0), Ok(None));
        assert_eq!(
            pool.insert(stripped.clone(), 0),
            Err(MempoolError::FewerSignatures { nonce: 0 })
        );
        assert_eq!(
            pool.insert(original.clone(), 0),
            Err(MempoolError::Duplicate)
        );
        // Other signers, neither set containing the other: the first copy stays.
        let other = signed_by(1, 0, &[60]);
        assert_eq!(
            pool.insert(other, 0),
            Err(MempoolError::NonceTaken { nonce: 0 })
        );
        // Another body at the same nonce, even signed by more keys: taken.
        let mut another_body = signed_by(1, 0, &[50, 60]);
        another_body.body = 1;
        assert_eq!(
            pool.insert(another_body, 0),
            Err(MempoolError::NonceTaken { nonce: 0 })
        );
        // Still more signers of the same body: replaces again.
        let more = signed_by(1, 0, &[50, 60]);
        assert_eq!(pool.insert(more.clone(), 0), Ok(Some(original)));
        assert_eq!(pool.at(&[1; 32], 0), Some(&more));
        assert_eq!((pool.len(), pool.bytes()), (1, 100 + 128));
    }

    #[test]
    fn a_replacement_keeps_a_gapped_standing_and_the_byte_limit() {
        let mut pool = pool(3); // 300 bytes
        assert_eq!(pool.insert(tx(2, 0), 0), Ok(None));
        assert_eq!(pool.insert(tx(1, 3), 0), Ok(None));
        assert_eq!(pool.gapped_len(), 1);
        let bigger = signed_by(1, 3, &[50]);
        assert_eq!(pool.insert(bigger.clone(), 0), Ok(Some(tx(1, 3))));
        assert_eq!((pool.len(), pool.gapped_len(), pool.bytes()), (2, 1, 264));
        // A replacement that would pass the byte limit is refused, the held copy stays.
        let too_big = Tx {
            size: 250,
            ..signed_by(1, 3, &[50, 60])
        };
        assert_eq!(pool.insert(too_big, 0), Err(MempoolError::Busy));
        assert_eq!(pool.at(&[1; 32], 3), Some(&bigger));
        assert_eq!((pool.len(), pool.bytes()), (2, 264));
        // Its gap closed by a commit, it leaves the gapped set as any other would.
        pool.remove_committed(&[([1; 32], 3)]);
        assert_eq!((pool.len(), pool.gapped_len(), pool.bytes()), (2, 0, 264));
        assert_eq!(
            pool.waiting_below(&[1; 32], 10)
                .cloned()
                .collect::<Vec<_>>(),
            vec![bigger]
        );
    }
}
