//! What the mempool holds: a transaction verified once, with what the chain task needs to
//! reuse that verification when the transaction comes back in a block.

use std::time::Instant;

use tally_contracts::{Party, StateStore, VerifiedTransaction, query};
use tally_crypto::{Hash, PublicKey};

use crate::mempool::PoolTx;

#[derive(Debug, Clone)]
pub struct PoolEntry {
    pub verified: VerifiedTransaction,
    /// When this node admitted it: commit latency is measured from here.
    pub admitted: Instant,
}

impl PoolTx for PoolEntry {
    fn sender(&self) -> [u8; 32] {
        sender_key(self.verified.tx().sender)
    }
    fn nonce(&self) -> u64 {
        self.verified.tx().nonce
    }
    fn hash(&self) -> Hash {
        self.verified.hash()
    }
    fn size_bytes(&self) -> usize {
        self.verified.encoded().bytes().len()
    }
    fn signers(&self) -> &[PublicKey] {
        self.verified.signers()
    }
    /// Canonical bytes: the same body is the same bytes.
    fn same_body(&self, other: &PoolEntry) -> bool {
        self.verified.encoded().signing_bytes() == other.verified.encoded().signing_bytes()
    }
}

/// The mempool's sender key: a tag byte and the big-endian id, so it maps back to the party.
pub fn sender_key(party: Party) -> [u8; 32] {
    let mut key = [0u8; 32];
    match party {
        Party::Account(id) => {
            key[1..17].copy_from_slice(&id.0.to_be_bytes());
        }
        Party::Institution(id) => {
            key[0] = 1;
            key[1..5].copy_from_slice(&id.0.to_be_bytes());
        }
    }
    key
}

fn party_of(key: &[u8; 32]) -> Option<Party> {
    match key[0] {
        0 => {
            let id: [u8; 16] = key.get(1..17)?.try_into().ok()?;
            Some(Party::Account(tally_contracts::AccountId(
                u128::from_be_bytes(id),
            )))
        }
        1 => {
            let id: [u8; 4] = key.get(1..5)?.try_into().ok()?;
            Some(Party::Institution(tally_contracts::InstitutionId(
                u32::from_be_bytes(id),
            )))
        }
        _ => None,
    }
}

/// The party's next nonce in committed state (0 for an account not registered yet). A read
/// error counts as 0: the transaction then waits or is rejected by the ledger, never lost.
pub fn next_nonce(store: &dyn StateStore, party: Party) -> u64 {
    match party {
        Party::Account(id) => query::account(store, id)
            .ok()
            .flatten()
            .map_or(0, |a| a.holder.nonce),
        Party::Institution(id) => query::institution(store, id)
            .ok()
            .flatten()
            .map_or(0, |i| i.nonce),
    }
}

/// [`next_nonce`] by mempool sender key.
pub fn next_nonce_of_key(store: &dyn StateStore, key: &[u8; 32]) -> u64 {
    party_of(key).map_or(0, |p| next_nonce(store, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_contracts::{AccountId, InstitutionId};

    #[test]
    fn sender_keys_map_back_to_their_party() {
        for party in [
            Party::Account(AccountId(u128::MAX)),
            Party::Account(AccountId(7)),
            Party::Institution(InstitutionId(7)),
        ] {
            assert_eq!(party_of(&sender_key(party)), Some(party));
        }
        assert_ne!(
            sender_key(Party::Account(AccountId(7))),
            sender_key(Party::Institution(InstitutionId(7)))
        );
    }
}
