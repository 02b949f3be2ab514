//! The ledger's state commitment: a Jellyfish Merkle tree (Penumbra's `jmt` crate) over every
//! state entry, whose root every block header carries (one block later, as its `state_root`), so
//! that anyone holding a certified header can check one entry (an account's balance and flags,
//! an order, a bill, a hold) against a single node, honest or not, with a proof of its presence
//! or of its absence.
//!
//! The tree is kept in state itself, under its own key tag, and updated from a block's writes:
//! the ledger stays a pure function of what it reads through [`StateStore`], and a node commits
//! the tree's nodes in the same atomic write as the entries they commit to. Only the tree of the
//! latest version is kept: a node is stored by its path, and the node a block puts at a path
//! overwrites the one there (a node serving proofs of an older version reads them from a
//! snapshot of its store).
//!
//! What the tree holds: every state entry except the chain-head record (which carries the root
//! and so cannot be inside it) and the tree's own nodes; plus one leaf holding the height, so that
//! each version has a root even when a block changes nothing else. A deleted entry leaves a
//! tombstone, a leaf whose value says "deleted", which proves its absence: a tree that never
//! deletes a leaf is updated in one walk down the touched paths (`tree_update`, which writes
//! the crate's nodes bit for bit; the crate proves and checks). Tombstones stay.

use borsh::BorshDeserialize;
use jmt::storage::{LeafNode, Node, NodeKey, TreeReader};
use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, RootHash, SimpleHasher, Version};
use tally_crypto::{Hash, HashBuilder, merkle_root};

use crate::state::key;
use crate::tree_update;
use crate::types::{AccountId, BillId, OrderId};
use crate::{Event, ExecutionError, Receipt, Rejection, StateStore, TransferId, Write};

/// The hash function of the tree: BLAKE3 keyed with a key derived from a context string, so
/// no tree hash can be confused with any other hash of the system.
#[derive(Debug)]
pub struct TreeHasher(blake3::Hasher);

impl SimpleHasher for TreeHasher {
    fn new() -> Self {
        // Deriving the key is a hash of its own: done once, then the keyed state is copied.
        static DERIVED: std::sync::OnceLock<blake3::Hasher> = std::sync::OnceLock::new();
        TreeHasher(
            DERIVED
                .get_or_init(|| blake3::Hasher::new_derive_key("tally 2026-12 ledger state tree"))
                .clone(),
        )
    }

    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn finalize(self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

/// A proof that a state key holds a value, or holds none, under a ledger root.
pub type StateProof = jmt::proof::SparseMerkleProof<TreeHasher>;

/// Where a key sits in the tree.
pub fn key_hash(key: &[u8]) -> KeyHash {
    KeyHash(TreeHasher::hash(key))
}

/// The key of the leaf that holds the height (not a state key: no state key is this long).
pub(crate) const HEIGHT_LEAF: &[u8] = b"tally/ledger-tree/height";

/// The header's `state_root`: the ledger root (the tree's) and the block's results root.
pub fn state_root(ledger_root: Hash, results_root: Hash) -> Hash {
    HashBuilder::new("tally-state-root")
        .update(&ledger_root.0)
        .update(&results_root.0)
        .finish()
}

/// What a block produced besides state: the Merkle root of its receipts' hashes (in block
/// order) bound with a digest of the holds it released.
pub fn results_root(receipts: &[Receipt], expired: &[Event]) -> Hash {
    results_root_from(receipts_root(receipts), expired_digest(expired))
}

/// The Merkle root of a block's receipts, each as its [`receipt_hash`].
pub fn receipts_root(receipts: &[Receipt]) -> Hash {
    let receipt_hashes: Vec<Hash> = receipts.iter().map(receipt_hash).collect();
    merkle_root(&receipt_hashes)
}

/// A digest of the holds a block released at its start.
pub fn expired_digest(expired: &[Event]) -> Hash {
    let mut framed = Vec::new();
    for event in expired {
        let bytes = crate::state::encode_record(event);
        framed.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        framed.extend_from_slice(&bytes);
    }
    Hash::digest("tally-block-expired", &framed)
}

/// The results root from its two parts.
pub fn results_root_from(receipts_root: Hash, expired_digest: Hash) -> Hash {
    HashBuilder::new("tally-block-results")
        .update(&receipts_root.0)
        .update(&expired_digest.0)
        .finish()
}

/// A receipt's leaf in its block's results root: the transaction, its result and the Merkle
/// root of its events, so that a receipt can be proven to a party with the events it may not
/// read left as their hashes.
pub fn receipt_hash(receipt: &Receipt) -> Hash {
    let events: Vec<Hash> = receipt.events.iter().map(event_hash).collect();
    receipt_hash_from(receipt.tx, &receipt.result, merkle_root(&events))
}

/// [`receipt_hash`] from the transaction, its result and the Merkle root of its events'
/// [`event_hash`]es.
pub fn receipt_hash_from(tx: Hash, result: &Result<(), Rejection>, events_root: Hash) -> Hash {
    HashBuilder::new("tally-receipt")
        .update(&tx.0)
        .update(&crate::state::encode_record(result))
        .update(&events_root.0)
        .finish()
}

/// An event's leaf in its receipt's events root.
pub fn event_hash(event: &Event) -> Hash {
    Hash::digest("tally-event", &crate::state::encode_record(event))
}

/// A ledger record a party can ask a proof for, by its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvenRecord {
    Account(AccountId),
    Order(OrderId),
    Bill(BillId),
    Hold(TransferId),
}

impl ProvenRecord {
    /// The record's state key: what the proof is for.
    pub fn key(&self) -> Vec<u8> {
        match *self {
            ProvenRecord::Account(id) => key::account(id).into(),
            ProvenRecord::Order(id) => key::order(id).into(),
            ProvenRecord::Bill(id) => key::bill(id).into(),
            ProvenRecord::Hold(id) => key::hold(id).into(),
        }
    }
}

/// Decodes a proven record's value (the bytes the proof holds for).
pub fn decode_record<T: serde::de::DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, ExecutionError> {
    crate::state::decode_record(key, bytes)
}

/// Why a proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the ledger and results roots do not make the header's state root")]
    StateRootMismatch,
    #[error("the proof does not hold under the ledger root: {0}")]
    Invalid(String),
}

/// Checks that `key` holds `value` (or, with `None`, holds nothing) under `ledger_root`. A
/// key holds nothing when the tree has no leaf for it or a tombstone (the empty value).
pub fn verify(
    ledger_root: Hash,
    key: &[u8],
    value: Option<&[u8]>,
    proof: &StateProof,
) -> Result<(), ProofError> {
    let root = RootHash(ledger_root.0);
    let at = key_hash(key);
    let held = match value {
        Some(_) => proof.verify(root, at, Some(leaf_value(value))),
        None => proof
            .verify(root, at, None::<&[u8]>)
            .or_else(|_| proof.verify(root, at, Some(leaf_value(None)))),
    };
    held.map_err(|e| ProofError::Invalid(e.to_string()))
}

/// What a leaf holds for an entry: its bytes after a 1 (some entries are empty: an index's
/// unit value), or for a deleted entry a lone 0, the tombstone.
pub(crate) fn leaf_value(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        Some(bytes) => {
            let mut leaf = Vec::with_capacity(1 + bytes.len());
            leaf.push(1);
            leaf.extend_from_slice(bytes);
            leaf
        }
        None => vec![0],
    }
}

/// Whether a state key is committed by a leaf of the tree: every key but the chain-head record
/// (which carries the root) and the tree's own nodes.
pub(crate) fn has_leaf(key: &[u8]) -> bool {
    // The chain-head record's key is its tag alone (`key::meta`).
    key != [key::META] && key.first() != Some(&key::TREE_NODE)
}

/// The hash of [`leaf_value`], without building it.
fn leaf_value_hash(value: Option<&[u8]>) -> [u8; 32] {
    let mut hasher = TreeHasher::new();
    match value {
        Some(bytes) => {
            hasher.update(&[1]);
            hasher.update(bytes);
        }
        None => hasher.update(&[0]),
    }
    hasher.finalize()
}

/// Checks that the two roots a node answered with make the certified header's state root.
pub fn verify_state_root(
    header_state_root: Hash,
    ledger_root: Hash,
    results_root: Hash,
) -> Result<(), ProofError> {
    if state_root(ledger_root, results_root) == header_state_root {
        Ok(())
    } else {
        Err(ProofError::StateRootMismatch)
    }
}

/// The tree's new root after a block, and its node changes to commit with the block.
#[derive(Debug)]
pub struct TreeUpdate {
    pub root: Hash,
    /// The nodes the block writes, each overwriting the one at its path, ordered by key.
    pub writes: Vec<Write>,
}

/// Applies a block's state writes (ordered, each key once) to the tree of `version - 1`
/// (none for version 0, genesis) as version `version`. The ledger calls it when it seals a
/// block; public for the benchmark that measures its share.
pub fn update(
    store: &dyn StateStore,
    version: Version,
    state_writes: &[Write],
) -> Result<TreeUpdate, ExecutionError> {
    // A deleted entry becomes a tombstone leaf (see `leaf_value`): the tree never deletes a
    // leaf, which keeps a block's update one walk down the touched paths (`tree_update`).
    let mut updates: Vec<tree_update::Update> = state_writes
        .iter()
        .filter(|w| has_leaf(&w.key))
        .map(|w| (key_hash(&w.key).0, leaf_value_hash(w.value.as_deref())))
        .collect();
    updates.push((
        key_hash(HEIGHT_LEAF).0,
        leaf_value_hash(Some(&version.to_le_bytes())),
    ));
    // Sorted by key hash, each key once (the last write of a key wins, as in the crate). The
    // first eight bytes order all but a vanishing few pairs without a call to `memcmp`.
    updates.reverse();
    updates.sort_by(|(a, _), (b, _)| {
        let prefix = |k: &[u8; 32]| k.first_chunk::<8>().map(|p| u64::from_be_bytes(*p));
        prefix(a).cmp(&prefix(b)).then_with(|| a.cmp(b))
    });
    updates.dedup_by(|later, earlier| later.0 == earlier.0);
    let (root, writes) = tree_update::apply(store, version, &updates)?;
    Ok(TreeUpdate {
        root: Hash(root),
        writes,
    })
}

/// [`update`] through the crate's own batch insertion: the reference the fast walk is tested
/// against.
#[cfg(test)]
pub(crate) fn update_by_crate(
    store: &dyn StateStore,
    version: Version,
    state_writes: &[Write],
) -> Result<TreeUpdate, ExecutionError> {
    let mut value_set: Vec<(KeyHash, OwnedValue)> = state_writes
        .iter()
        .filter(|w| has_leaf(&w.key))
        .map(|w| (key_hash(&w.key), leaf_value(w.value.as_deref())))
        .collect();
    value_set.push((
        key_hash(HEIGHT_LEAF),
        leaf_value(Some(&version.to_le_bytes())),
    ));
    put_by_crate(store, version, value_set)
}

/// The crate's batch insertion of `value_set` as version `version`, its nodes as writes.
#[cfg(test)]
pub(crate) fn put_by_crate(
    store: &dyn StateStore,
    version: Version,
    value_set: Vec<(KeyHash, OwnedValue)>,
) -> Result<TreeUpdate, ExecutionError> {
    let reader = NodeReader(store);
    let tree = JellyfishMerkleTree::<_, TreeHasher>::new(&reader);
    let (roots, batch) = tree
        .batch_put_value_sets(vec![value_set], None, version)
        .map_err(tree_error)?;
    let root = roots
        .first()
        .copied()
        .ok_or_else(|| ExecutionError::Tree("no root for the block".to_string()))?;
    // A replaced node and its replacement share a path: one overwrite, not a write and a
    // delete. Paths only replaced are deleted (none: the tree deletes no leaf).
    let mut changes: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> = batch
        .node_batch
        .nodes()
        .iter()
        .map(|(node_key, node)| {
            borsh::to_vec(node)
                .map(|bytes| (node_store_key(node_key), Some(bytes)))
                .map_err(|e| ExecutionError::Tree(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    for stale in &batch.stale_node_index_batch {
        changes
            .entry(node_store_key(&stale.node_key))
            .or_insert(None);
    }
    Ok(TreeUpdate {
        root: Hash(root.0),
        writes: changes
            .into_iter()
            .map(|(key, value)| Write { key, value })
            .collect(),
    })
}

/// The ledger root of the tree in `store` (at the version it holds), with a proof for `key`.
/// The value itself is read from state by the caller: the tree stores only its hash.
pub fn prove(
    store: &dyn StateStore,
    version: Version,
    key: &[u8],
) -> Result<(Hash, StateProof), ExecutionError> {
    let reader = NodeReader(store);
    let tree = JellyfishMerkleTree::<_, TreeHasher>::new(&reader);
    let root = tree.get_root_hash(version).map_err(tree_error)?;
    let (_, proof) = tree
        .get_with_proof(key_hash(key), version)
        .map_err(tree_error)?;
    Ok((Hash(root.0), proof))
}

fn tree_error(e: anyhow::Error) -> ExecutionError {
    ExecutionError::Tree(format!("{e:#}"))
}

/// A node's key in state: the tree's tag, then its nibble path. Not its version: state holds
/// one version of the tree, the latest, so a path names one node (the crate asks for a node
/// by version and path; the version a parent names is always the stored node's).
fn node_store_key(node_key: &NodeKey) -> Vec<u8> {
    let nibbles: Vec<u8> = node_key.nibble_path().nibbles().map(u8::from).collect();
    node_store_key_of(&nibbles)
}

/// [`node_store_key`] of the node at a path given as nibbles (each below 16, at most 64).
pub(crate) fn node_store_key_of(nibbles: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + nibbles.len().div_ceil(2));
    k.push(key::TREE_NODE);
    // At most 64 nibbles: a key hash is 32 bytes.
    k.push(u8::try_from(nibbles.len()).unwrap_or(u8::MAX));
    for pair in nibbles.chunks(2) {
        let high = pair.first().copied().unwrap_or(0);
        let low = pair.get(1).copied().unwrap_or(0);
        k.push((high << 4) | (low & 0x0F));
    }
    k
}

/// The nibble path a tree node's state key names (the inverse of [`node_store_key_of`]);
/// `None` for a key that is not one.
pub(crate) fn node_path_of(store_key: &[u8]) -> Option<Vec<u8>> {
    let (&tag, rest) = store_key.split_first()?;
    let (&count, packed) = rest.split_first()?;
    if tag != key::TREE_NODE || count > 64 || packed.len() != usize::from(count).div_ceil(2) {
        return None;
    }
    Some(
        (0..usize::from(count))
            .map(|i| {
                let byte = packed.get(i / 2).copied().unwrap_or(0);
                if i % 2 == 0 { byte >> 4 } else { byte & 0x0F }
            })
            .collect(),
    )
}

/// The tree's nodes, read from state.
struct NodeReader<'s>(&'s dyn StateStore);

impl TreeReader for NodeReader<'_> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        match self.0.get(&node_store_key(node_key))? {
            None => Ok(None),
            Some(bytes) => Ok(Some(Node::try_from_slice(&bytes)?)),
        }
    }

    fn get_value_option(
        &self,
        _max_version: Version,
        _key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        // The tree keeps no values (state does: keeping them twice would double every write).
        // `get_with_proof` asks for the proven leaf's value only to hand it back, and `prove`
        // discards it, so an empty value is enough here.
        Ok(Some(Vec::new()))
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Used only by the crate's tree restoration, which the ledger does not use.
        Err(anyhow::anyhow!(
            "the ledger tree does not index its rightmost leaf"
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::MemoryStore;

    /// A block's writes over a small key space (so keys are overwritten and deleted), ordered
    /// and each key once, as the ledger makes them (an index entry's value may be empty).
    fn block_writes() -> impl Strategy<Value = Vec<Write>> {
        proptest::collection::btree_map(
            (0u8..40).prop_map(|k| vec![b'A', k]),
            proptest::option::weighted(0.8, proptest::collection::vec(any::<u8>(), 0..12)),
            0..12,
        )
        .prop_map(|m| {
            m.into_iter()
                .map(|(key, value)| Write { key, value })
                .collect()
        })
    }

    /// Applies blocks to a fresh store as versions 0, 1, ...; returns the store, the state it
    /// holds and each version's root.
    fn apply_blocks(blocks: &[Vec<Write>]) -> (MemoryStore, BTreeMap<Vec<u8>, Vec<u8>>, Vec<Hash>) {
        let mut store = MemoryStore::new();
        let mut state = BTreeMap::new();
        let mut roots = Vec::new();
        for (version, writes) in blocks.iter().enumerate() {
            let update = update(&store, version as u64, writes).unwrap();
            store.apply(writes);
            store.apply(&update.writes);
            for w in writes {
                match &w.value {
                    Some(v) => state.insert(w.key.clone(), v.clone()),
                    None => state.remove(&w.key),
                };
            }
            roots.push(update.root);
        }
        (store, state, roots)
    }

    fn tree_nodes(store: &MemoryStore) -> usize {
        let (start, end) = key::tag_range(key::TREE_NODE);
        store.scan(&start, &end, usize::MAX).unwrap().len()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_proof_verifies_and_no_changed_or_absent_value_does(
            blocks in proptest::collection::vec(block_writes(), 1..6),
        ) {
            let (store, state, roots) = apply_blocks(&blocks);
            let version = (blocks.len() - 1) as u64;
            let root = *roots.last().unwrap();
            for k in 0u8..40 {
                let key = vec![b'A', k];
                let (proven_root, proof) = prove(&store, version, &key).unwrap();
                prop_assert_eq!(proven_root, root);
                match state.get(&key) {
                    Some(value) => {
                        prop_assert!(verify(root, &key, Some(value), &proof).is_ok());
                        let mut changed = value.clone();
                        changed.push(1);
                        prop_assert!(verify(root, &key, Some(&changed), &proof).is_err());
                        prop_assert!(verify(root, &key, None, &proof).is_err());
                        // The same proof does not speak for another key.
                        let other = vec![b'A', k.wrapping_add(40)];
                        prop_assert!(verify(root, &other, Some(value), &proof).is_err());
                    }
                    None => {
                        prop_assert!(verify(root, &key, None, &proof).is_ok());
                        prop_assert!(verify(root, &key, Some(&[0u8][..]), &proof).is_err());
                    }
                }
                // No proof holds under another root.
                let other_root = Hash::digest("other", &root.0);
                prop_assert!(verify(other_root, &key, state.get(&key).map(Vec::as_slice), &proof).is_err());
            }
        }

        #[test]
        fn the_root_is_the_states_whatever_the_history(
            first in block_writes(),
            second in block_writes(),
        ) {
            // One node applies two blocks; another applies their sum, then an empty block.
            let (_, state_a, roots_a) = apply_blocks(&[first.clone(), second.clone()]);
            let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
            for w in first.iter().chain(&second) {
                merged.insert(w.key.clone(), w.value.clone());
            }
            let merged: Vec<Write> = merged
                .into_iter()
                .map(|(key, value)| Write { key, value })
                .collect();
            let (_, state_b, roots_b) = apply_blocks(&[merged, Vec::new()]);
            prop_assert_eq!(state_a, state_b);
            prop_assert_eq!(roots_a[1], roots_b[1]);
            // And a third node, replaying the same blocks, agrees at every version.
            let (_, _, roots_c) = apply_blocks(&[first, second]);
            prop_assert_eq!(roots_a, roots_c);
        }
    }

    #[test]
    fn replaced_nodes_are_deleted_with_the_block_that_replaces_them() {
        let put = |k: u8, v: u8| Write {
            key: vec![b'A', k],
            value: Some(vec![v]),
        };
        let blocks: Vec<Vec<Write>> = (0..20u8)
            .map(|round| (0..30u8).map(|k| put(k, round)).collect())
            .collect();
        let (store, _, _) = apply_blocks(&blocks);
        let nodes_after_many = tree_nodes(&store);
        let (store, _, _) = apply_blocks(&blocks[..1]);
        // Thirty-one leaves (the height's too) and their internal nodes, however many
        // versions wrote them.
        assert_eq!(nodes_after_many, tree_nodes(&store));
        // Deleting every entry leaves a tombstone in each leaf: the same nodes, and each key
        // proven absent.
        let deletes: Vec<Write> = (0..30u8)
            .map(|k| Write {
                key: vec![b'A', k],
                value: None,
            })
            .collect();
        let mut with_deletes = blocks.clone();
        with_deletes.push(deletes);
        let (store, state, roots) = apply_blocks(&with_deletes);
        assert!(state.is_empty());
        assert_eq!(tree_nodes(&store), nodes_after_many);
        let version = (with_deletes.len() - 1) as u64;
        for k in 0..30u8 {
            let (_, proof) = prove(&store, version, &[b'A', k]).unwrap();
            let root = *roots.last().unwrap();
            assert!(verify(root, &[b'A', k], None, &proof).is_ok());
            assert!(verify(root, &[b'A', k], Some(&[19u8][..]), &proof).is_err());
            // A tombstone is not the empty value (which some index entries hold).
            assert!(verify(root, &[b'A', k], Some(&[][..]), &proof).is_err());
        }
    }

    #[test]
    fn the_chain_head_and_the_trees_own_nodes_are_not_leaves() {
        let entry = Write {
            key: vec![b'A', 1],
            value: Some(vec![7]),
        };
        let head = Write {
            key: key::meta(),
            value: Some(vec![9]),
        };
        let (_, _, with_head) = apply_blocks(&[vec![entry.clone(), head]]);
        let (_, _, without) = apply_blocks(&[vec![entry]]);
        assert_eq!(with_head, without);
    }

    #[test]
    fn a_forged_proof_is_refused_not_a_panic() {
        let (store, _, roots) = apply_blocks(&[vec![Write {
            key: vec![b'A', 1],
            value: Some(vec![7]),
        }]]);
        let (_, proof) = prove(&store, 0, &[b'A', 1]).unwrap();
        let mut json = serde_json::to_value(&proof).unwrap();
        let sibling = json["siblings"][0].clone();
        assert!(!sibling.is_null(), "a two-leaf tree's proof has a sibling");
        for count in [0, 2, 255, 256, 300] {
            json["siblings"] = serde_json::Value::Array(vec![sibling.clone(); count]);
            let forged: StateProof = serde_json::from_value(json.clone()).unwrap();
            assert!(verify(roots[0], &[b'A', 1], Some(&[7u8][..]), &forged).is_err());
        }
    }
}
