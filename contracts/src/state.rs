//! The ledger's working view of state during a block: committed state underneath, the
//! block's changes over it, and the current transaction's changes on top. A transaction's
//! layer is merged into the block on success and dropped on rejection, which is what makes
//! every transaction apply whole or not at all.
//!
//! Key layout: one tag byte, then fixed-width big-endian fields, so keys of one kind sort
//! by their ids (and holds' expiry index by time, then id).

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ledger::accounts::Account;
use crate::types::{AccountId, BillId, CardToken, Currency, CycleId, InstitutionId, OrderId};
use crate::{ExecutionError, StateStore, StoreError, TransferId, Write};

pub(crate) mod key {
    use super::*;
    use tally_crypto::{Hash, PublicKey};

    pub const ACCOUNT: u8 = b'A';
    pub const BILL: u8 = b'B';
    pub const CARD: u8 = b'C';
    pub const IDENTITY_ACCOUNT: u8 = b'D';
    pub const REFUND_REQUEST: u8 = b'K';
    pub const DISPUTE: u8 = b'U';
    pub const MERCHANT_PAYMENT: u8 = b'V';
    pub const OPEN_DISPUTE: u8 = b'W';
    pub const CROSS_BORDER_OUTFLOW: u8 = b'F';
    pub const RULES: u8 = b'G';
    pub const HOLD: u8 = b'H';
    pub const INSTITUTION: u8 = b'I';
    pub const PERSON_OUTFLOW: u8 = b'L';
    pub const META: u8 = b'M';
    pub const CYCLE_SEQ: u8 = b'N';
    pub const ORDER: u8 = b'O';
    pub const PAYMENT_CODE: u8 = b'P';
    pub const OBLIGATION: u8 = b'Q';
    pub const RATE: u8 = b'R';
    pub const SANCTION: u8 = b'S';
    pub const TRANSFER: u8 = b'T';
    pub const EXPIRY: u8 = b'X';
    pub const RECOVERY: u8 = b'E';
    pub const RECOVERY_DUE: u8 = b'Z';
    pub const CYCLE: u8 = b'Y';
    /// The ledger tree's nodes (`crate::commitment`), not ledger entries.
    pub const TREE_NODE: u8 = b'J';

    /// A key built on the stack: reads do not allocate.
    #[derive(Clone, Copy, Debug)]
    pub struct Key {
        len: usize,
        bytes: [u8; 64],
    }

    impl std::ops::Deref for Key {
        type Target = [u8];
        fn deref(&self) -> &[u8] {
            self.bytes.get(..self.len).unwrap_or_default()
        }
    }

    impl From<Key> for Vec<u8> {
        fn from(key: Key) -> Vec<u8> {
            key.to_vec()
        }
    }

    fn tagged(tag: u8, parts: &[&[u8]]) -> Key {
        let mut key = Key {
            len: 1,
            bytes: [0; 64],
        };
        key.bytes[0] = tag;
        for part in parts {
            let end = key.len + part.len();
            // Every key layout here is at most 49 bytes: a longer one is a bug.
            let slot = key.bytes.get_mut(key.len..end);
            let Some(slot) = slot else {
                panic!("key layout longer than 64 bytes");
            };
            slot.copy_from_slice(part);
            key.len = end;
        }
        key
    }

    pub fn account(id: AccountId) -> Key {
        tagged(ACCOUNT, &[&id.to_key_bytes()])
    }
    pub fn institution(id: InstitutionId) -> Key {
        tagged(INSTITUTION, &[&id.to_key_bytes()])
    }
    pub fn card(account: AccountId, card: CardToken) -> Key {
        tagged(CARD, &[&account.to_key_bytes(), &card.0])
    }
    pub fn transfer(id: TransferId) -> Key {
        tagged(TRANSFER, &[&id.to_key_bytes()])
    }
    pub fn hold(id: TransferId) -> Key {
        tagged(HOLD, &[&id.to_key_bytes()])
    }
    pub fn recovery(account: AccountId) -> Key {
        tagged(RECOVERY, &[&account.to_key_bytes()])
    }
    pub fn recovery_due(at_ms: u64, account: AccountId) -> Key {
        tagged(
            RECOVERY_DUE,
            &[&at_ms.to_be_bytes(), &account.to_key_bytes()],
        )
    }
    pub fn expiry(at_ms: u64, id: TransferId) -> Key {
        tagged(EXPIRY, &[&at_ms.to_be_bytes(), &id.to_key_bytes()])
    }
    pub fn order(id: OrderId) -> Key {
        tagged(ORDER, &[&id.to_key_bytes()])
    }
    pub fn payment_code(payer_key: PublicKey, code_nonce: u64) -> Key {
        tagged(PAYMENT_CODE, &[&payer_key.0, &code_nonce.to_be_bytes()])
    }
    /// A dispute, by the payment it disputes: one per payment, ever.
    pub fn dispute(disputed: crate::Disputed) -> Key {
        tagged(DISPUTE, &[&disputed.to_key_bytes()])
    }
    /// The open disputes, oldest first: what the regulator's list of open disputes scans.
    pub fn open_dispute(opened_at_ms: u64, disputed: crate::Disputed) -> Key {
        tagged(
            OPEN_DISPUTE,
            &[&opened_at_ms.to_be_bytes(), &disputed.to_key_bytes()],
        )
    }
    /// A static-QR or payment-code payment, by its transfer id.
    pub fn merchant_payment(id: TransferId) -> Key {
        tagged(MERCHANT_PAYMENT, &[&id.to_key_bytes()])
    }
    pub fn refund_request(order: OrderId) -> Key {
        tagged(REFUND_REQUEST, &[&order.to_key_bytes()])
    }
    pub fn bill(id: BillId) -> Key {
        tagged(BILL, &[&id.to_key_bytes()])
    }
    pub fn rate(provider: InstitutionId, base: Currency, quote: Currency) -> Key {
        tagged(RATE, &[&provider.to_key_bytes(), &base.0, &quote.0])
    }
    pub fn sanction(identity: Hash) -> Key {
        tagged(SANCTION, &[&identity.0])
    }
    /// The index from an identity to the accounts registered with it.
    pub fn identity_account(identity: Hash, account: AccountId) -> Key {
        tagged(IDENTITY_ACCOUNT, &[&identity.0, &account.to_key_bytes()])
    }
    /// What a person sent from its wallets of one currency at one institution.
    pub fn person_outflow(institution: InstitutionId, identity: Hash, currency: Currency) -> Key {
        tagged(
            PERSON_OUTFLOW,
            &[&institution.to_key_bytes(), &identity.0, &currency.0],
        )
    }
    /// What a person sent abroad from its wallets of one currency, everywhere.
    pub fn cross_border_outflow(identity: Hash, currency: Currency) -> Key {
        tagged(CROSS_BORDER_OUTFLOW, &[&identity.0, &currency.0])
    }
    /// Just past every `identity_account(identity, _)` key.
    pub fn identity_accounts_end(identity: Hash) -> Key {
        tagged(IDENTITY_ACCOUNT, &[&identity.0, &[0xff; 16], &[0]])
    }
    pub fn obligation(currency: Currency, from: InstitutionId, to: InstitutionId) -> Key {
        tagged(
            OBLIGATION,
            &[&currency.0, &from.to_key_bytes(), &to.to_key_bytes()],
        )
    }
    pub fn cycle(id: CycleId) -> Key {
        tagged(CYCLE, &[&id.to_key_bytes()])
    }
    pub fn cycle_seq() -> Vec<u8> {
        vec![CYCLE_SEQ]
    }
    pub fn rules() -> Vec<u8> {
        vec![RULES]
    }
    pub fn meta() -> Vec<u8> {
        vec![META]
    }
    /// All keys with one tag: `[tag, tag + 1)`.
    pub fn tag_range(tag: u8) -> (Vec<u8>, Vec<u8>) {
        (vec![tag], vec![tag.saturating_add(1)])
    }
}

type Layer = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Committed state plus the block's and the current transaction's changes.
pub(crate) struct State<'s> {
    base: &'s dyn StateStore,
    block: Layer,
    /// The transaction's writes, each key once. A transaction writes a handful of keys,
    /// so a vector searched linearly beats a tree.
    tx: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Accounts changed by committed transactions of this block, kept decoded and encoded
    /// once at the end of the block: an account touched by many transactions is not
    /// re-encoded and re-decoded for each. Only [`crate::context::Tx`] reads and writes
    /// accounts, and it looks here first.
    accounts: BTreeMap<AccountId, Account>,
}

impl<'s> State<'s> {
    pub fn new(base: &'s dyn StateStore) -> Self {
        State {
            base,
            block: Layer::new(),
            tx: Vec::new(),
            accounts: BTreeMap::new(),
        }
    }

    fn in_tx(&self, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        self.tx
            .iter()
            .find(|(k, _)| k.as_slice() == key)
            .map(|(_, v)| v)
    }

    fn write(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        match self.tx.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.tx.push((key, value)),
        }
    }

    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(value) = self.in_tx(key) {
            return Ok(value.clone());
        }
        if let Some(value) = self.block.get(key) {
            return Ok(value.clone());
        }
        self.base.get(key)
    }

    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, ExecutionError> {
        let layered = self.in_tx(key).or_else(|| self.block.get(key));
        if let Some(value) = layered {
            return value
                .as_deref()
                .map(|bytes| decode_record(key, bytes))
                .transpose();
        }
        match self.base.get(key)? {
            None => Ok(None),
            Some(bytes) => decode_record(key, &bytes).map(Some),
        }
    }

    pub fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.get_raw(key)?.is_some())
    }

    pub fn put<T: Serialize>(&mut self, key: impl Into<Vec<u8>>, value: &T) {
        self.write(key.into(), Some(encode_record(value)));
    }

    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.write(key.into(), None);
    }

    /// Entries with `start <= key < end` as this transaction sees them, ascending, at most
    /// `limit`.
    pub fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<crate::store::Entries, StoreError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let range = (Bound::Included(start), Bound::Excluded(end));
        let in_block = self.block.range::<[u8], _>(range).count();
        let in_range = |k: &[u8]| start <= k && k < end;
        let in_tx = self.tx.iter().filter(|(k, _)| in_range(k)).count();
        // Each overlay entry may hide at most one committed entry, so fetching that many
        // more from below is enough to fill `limit` after merging.
        let fetch = limit.saturating_add(in_block).saturating_add(in_tx);
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = self
            .base
            .scan(start, end, fetch)?
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        for (k, v) in self.block.range::<[u8], _>(range) {
            merged.insert(k.clone(), v.clone());
        }
        for (k, v) in self.tx.iter().filter(|(k, _)| in_range(k)) {
            merged.insert(k.clone(), v.clone());
        }
        Ok(merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .take(limit)
            .collect())
    }

    pub fn commit_tx(&mut self) {
        for (k, v) in self.tx.drain(..) {
            self.block.insert(k, v);
        }
    }

    pub fn abort_tx(&mut self) {
        self.tx.clear();
    }

    /// An account as changed earlier in this block, if it was.
    pub fn block_account(&self, id: AccountId) -> Option<&Account> {
        self.accounts.get(&id)
    }

    /// Records an account changed by a committed transaction.
    pub fn stage_account(&mut self, account: Account) {
        self.accounts.insert(account.id, account);
    }

    /// The block's changes, ordered by key.
    pub fn into_writes(mut self) -> Vec<Write> {
        self.commit_tx();
        for (id, account) in std::mem::take(&mut self.accounts) {
            self.block
                .insert(key::account(id).into(), Some(encode_record(&account)));
        }
        self.block
            .into_iter()
            .map(|(key, value)| Write { key, value })
            .collect()
    }
}

pub(crate) fn encode_record<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain structs of integers, arrays and vectors into a Vec cannot fail;
    // an empty record would be refused on the next read as corrupt, never misread.
    // Sized for an account record, so encoding does not reallocate as it grows.
    postcard::to_extend(value, Vec::with_capacity(192)).unwrap_or_default()
}

pub(crate) fn decode_record<T: DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, ExecutionError> {
    postcard::from_bytes(bytes).map_err(|_| ExecutionError::Corrupt { key: key.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    fn w(k: u8, v: Option<u8>) -> Write {
        Write {
            key: vec![k],
            value: v.map(|v| vec![v]),
        }
    }

    #[test]
    fn scan_merges_layers_and_hides_deletes() {
        let mut base = MemoryStore::new();
        base.apply(&[w(1, Some(1)), w(2, Some(2)), w(3, Some(3)), w(4, Some(4))]);
        let mut state = State::new(&base);
        state.delete(vec![1]);
        state.commit_tx();
        state.delete(vec![2]);
        state.put(vec![5], &7u8);
        let got = state.scan(&[0], &[9], 2).unwrap();
        assert_eq!(got, vec![(vec![3], vec![3]), (vec![4], vec![4])]);
        state.abort_tx();
        let got = state.scan(&[0], &[9], 10).unwrap();
        let keys: Vec<u8> = got.iter().map(|(k, _)| k[0]).collect();
        assert_eq!(keys, vec![2, 3, 4]);
        let writes = state.into_writes();
        assert_eq!(writes, vec![w(1, None)]);
    }
}
