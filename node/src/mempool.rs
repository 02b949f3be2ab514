//! The mempool: transactions waiting for a block.
//!
//! Bounded in count and bytes: a full pool answers [`MempoolError::Busy`] instead of
//! growing. Transactions are kept per sender in nonce order; a block takes them in arrival
//! order, but never a nonce before its predecessor. Signatures are checked by the caller
//! (in batches) before a transaction gets here, once per transaction: the pool only holds
//! verified transactions.

use std::collections::BTreeMap;

use tally_crypto::Hash;

/// What the pool needs to know of a transaction.
pub trait PoolTx {
    /// The account whose nonce orders this transaction.
    fn sender(&self) -> [u8; 32];
    fn nonce(&self) -> u64;
    fn hash(&self) -> Hash;
    fn size_bytes(&self) -> usize;
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
    #[error("nonce {nonce} is too far ahead of the next nonce {next}")]
    NonceTooFarAhead { nonce: u64, next: u64 },
    #[error("another transaction with nonce {nonce} from this sender is waiting")]
    NonceTaken { nonce: u64 },
    #[error("the transaction is {size} bytes, more than the mempool's {max}")]
    TooLarge { size: usize, max: usize },
}

#[derive(Debug)]
struct Entry<T> {
    tx: T,
    arrival: u64,
}

#[derive(Debug)]
pub struct Mempool<T> {
    limits: MempoolLimits,
    by_sender: BTreeMap<[u8; 32], BTreeMap<u64, Entry<T>>>,
    by_hash: BTreeMap<Hash, ([u8; 32], u64)>,
    by_arrival: BTreeMap<u64, ([u8; 32], u64)>,
    next_arrival: u64,
    bytes: usize,
}

impl<T: PoolTx + Clone> Mempool<T> {
    pub fn new(limits: MempoolLimits) -> Mempool<T> {
        Mempool {
            limits,
            by_sender: BTreeMap::new(),
            by_hash: BTreeMap::new(),
            by_arrival: BTreeMap::new(),
            next_arrival: 0,
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

    pub fn contains(&self, hash: &Hash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Adds a verified transaction. `next_nonce` is the sender's next nonce in the committed
    /// state.
    pub fn insert(&mut self, tx: T, next_nonce: u64) -> Result<(), MempoolError> {
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
        if self
            .by_sender
            .get(&sender)
            .is_some_and(|queue| queue.contains_key(&nonce))
        {
            return Err(MempoolError::NonceTaken { nonce });
        }
        if self.by_hash.len() >= self.limits.txs_max
            || self.bytes.saturating_add(size) > self.limits.bytes_max
        {
            return Err(MempoolError::Busy);
        }
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.by_sender
            .entry(sender)
            .or_default()
            .insert(nonce, Entry { tx, arrival });
        self.by_hash.insert(hash, (sender, nonce));
        self.by_arrival.insert(arrival, (sender, nonce));
        self.bytes += size;
        Ok(())
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
            while let Some(entry) = self.by_sender.get(sender).and_then(|q| q.get(&nonce)) {
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
        self.by_sender.get(sender)?.get(nonce).map(|e| &e.tx)
    }

    /// Drops one transaction (committed, or found invalid), if it is here.
    pub fn remove(&mut self, hash: &Hash) {
        let Some((sender, nonce)) = self.by_hash.remove(hash) else {
            return;
        };
        let Some(queue) = self.by_sender.get_mut(&sender) else {
            return;
        };
        if let Some(entry) = queue.remove(&nonce) {
            self.by_arrival.remove(&entry.arrival);
            self.bytes = self.bytes.saturating_sub(entry.tx.size_bytes());
        }
        if queue.is_empty() {
            self.by_sender.remove(&sender);
        }
    }

    /// Each waiting transaction, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.by_arrival.values().filter_map(|(sender, nonce)| {
            self.by_sender
                .get(sender)
                .and_then(|q| q.get(nonce))
                .map(|e| &e.tx)
        })
    }

    /// Drops what a committed block made stale: for each sender touched, every transaction
    /// below its new next nonce.
    pub fn remove_committed(&mut self, senders: &[([u8; 32], u64)]) {
        for (sender, next) in senders {
            let Some(queue) = self.by_sender.get_mut(sender) else {
                continue;
            };
            let stale: Vec<u64> = queue.range(..next).map(|(n, _)| *n).collect();
            for nonce in stale {
                if let Some(entry) = queue.remove(&nonce) {
                    self.by_hash.remove(&entry.tx.hash());
                    self.by_arrival.remove(&entry.arrival);
                    self.bytes = self.bytes.saturating_sub(entry.tx.size_bytes());
                }
            }
            if queue.is_empty() {
                self.by_sender.remove(sender);
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
    }

    impl PoolTx for Tx {
        fn sender(&self) -> [u8; 32] {
            [self.sender; 32]
        }
        fn nonce(&self) -> u64 {
            self.nonce
        }
        fn hash(&self) -> Hash {
            let mut bytes = vec![self.sender];
            bytes.extend_from_slice(&self.nonce.to_be_bytes());
            bytes.extend_from_slice(&(self.size as u64).to_be_bytes());
            Hash::digest("test-tx", &bytes)
        }
        fn size_bytes(&self) -> usize {
            self.size
        }
    }

    fn tx(sender: u8, nonce: u64) -> Tx {
        Tx {
            sender,
            nonce,
            size: 100,
        }
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
        assert_eq!(pool.insert(tx(1, 5), 5), Ok(()));
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
            assert_eq!(pool.insert(tx(i, 0), 0), Ok(()));
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
            assert_eq!(pool.insert(t, next), Ok(()));
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
            assert_eq!(pool.insert(t, 0), Ok(()));
        }
        pool.remove_committed(&[([1; 32], 2), ([2; 32], 1)]);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.bytes(), 100);
        assert!(pool.contains(&tx(1, 2).hash()));
        assert_eq!(pool.reap(10, 10_000, |_| 2), vec![tx(1, 2)]);
    }
}
