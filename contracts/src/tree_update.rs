//! A block's update of the ledger tree, written for speed and bit for bit the `jmt` crate's
//! batch insertion: the same nodes at the same paths, encoded as the crate encodes them, hashed
//! as it hashes them. So the crate still proves entries and restores nothing changes; only the
//! walk is ours.
//!
//! Why not the crate's own `batch_put_value_sets`: on a block of 10,000 transfers it spent
//! about 300 ms in bookkeeping (hash maps and B-tree maps keyed by nibble paths, a clone of
//! every internal node it rewrites, then a second map to freeze them), against a few
//! milliseconds of hashing. Here the walk is one recursion over the sorted keys with the path in
//! a fixed buffer: each touched node is read once, hashed once and encoded once.
//!
//! The tree never deletes a leaf (a deleted entry is a tombstone, see `commitment`), so a block
//! only replaces leaves, adds leaves and splits a leaf into an internal node above it and
//! its new neighbours: every path it touches gets a new node, and no write deletes.
//!
//! The equivalence with the crate is a property test (`same_nodes_and_root_as_the_crate`).

use jmt::proof::INTERNAL_DOMAIN_SEPARATOR;
use jmt::storage::LeafNode;
use jmt::{KeyHash, SimpleHasher, ValueHash, Version};

use crate::commitment::{TreeHasher, node_store_key_of};
use crate::{ExecutionError, StateStore, Write};

/// An empty subtree's hash (the crate's placeholder).
const PLACEHOLDER: [u8; 32] = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";

/// The variant tags of the crate's node encoding (borsh of `jmt::storage::Node`).
const TAG_LEAF: u8 = 2;
const TAG_INTERNAL: u8 = 1;
/// An internal node's encoding: its tag, 16 optional children, the child and leaf counts.
const INTERNAL_BYTES_MAX: usize = 1 + 16 * (1 + CHILD_BYTES_MAX) + 16;
/// A child: its hash, its version, and a leaf's tag or an internal node's tag and leaf count.
const CHILD_BYTES_MAX: usize = 32 + 8 + 1 + 8;
const LEAF_BYTES: usize = 1 + 32 + 32;

/// A (key hash, value hash) pair of a block, as the tree takes them.
pub(crate) type Update = ([u8; 32], [u8; 32]);

/// What a parent records of a child.
#[derive(Debug, Clone, Copy)]
struct ChildRef {
    hash: [u8; 32],
    version: Version,
    /// `None` for a leaf, else the leaves under the internal node.
    leaf_count: Option<u64>,
}

impl ChildRef {
    fn leaves(&self) -> u64 {
        self.leaf_count.unwrap_or(1)
    }
}

/// A stored node, decoded.
// Decoded one at a time on the walk's stack; boxing the large variant would allocate per node.
#[allow(clippy::large_enum_variant)]
enum StoredNode {
    Leaf(Update),
    Internal([Option<ChildRef>; 16]),
}

/// Applies `updates` (sorted by key hash, each key once) to the tree of `version - 1` held in
/// `store` as version `version`; returns the new root and the node writes, ordered by key.
pub(crate) fn apply(
    store: &dyn StateStore,
    version: Version,
    updates: &[Update],
) -> Result<([u8; 32], Vec<Write>), ExecutionError> {
    if updates.is_empty() {
        return Err(ExecutionError::Tree(
            "a block updates at least one leaf".into(),
        ));
    }
    if updates
        .windows(2)
        .any(|w| matches!(w, [a, b] if a.0 >= b.0))
    {
        return Err(ExecutionError::Tree(
            "updates are not sorted by key hash".into(),
        ));
    }
    let mut walk = Walk {
        store,
        version,
        path: [0; 64],
        writes: std::iter::repeat_with(Vec::new).take(65).collect(),
    };
    let root = match walk.read(0)? {
        Some(node) => walk.insert_at(0, node, updates)?,
        // Only genesis starts from an empty tree; a later version without a root is a store
        // that lost its tree.
        None if version == 0 => walk.create(0, updates)?,
        None => return Err(ExecutionError::Tree("the tree's root is missing".into())),
    };
    // A node's key orders by depth first, then by path; the walk visits each depth's nodes
    // left to right but for a leaf pushed down beside new ones, so each depth's writes are
    // sorted already or nearly (a stable sort checks them in one pass).
    let mut writes = Vec::with_capacity(walk.writes.iter().map(Vec::len).sum());
    for mut at_depth in walk.writes {
        at_depth.sort_by(|a, b| a.key.cmp(&b.key));
        writes.append(&mut at_depth);
    }
    Ok((root.hash, writes))
}

struct Walk<'s> {
    store: &'s dyn StateStore,
    version: Version,
    /// The nibbles from the root to the node being visited (the first `depth` of them).
    path: [u8; 64],
    /// The node writes by depth (0 to 64).
    writes: Vec<Vec<Write>>,
}

fn nibble(key: &[u8; 32], depth: usize) -> Result<u8, ExecutionError> {
    let byte = key
        .get(depth / 2)
        .ok_or_else(|| ExecutionError::Tree("a path longer than a key hash".into()))?;
    Ok(if depth.is_multiple_of(2) {
        byte >> 4
    } else {
        byte & 0x0F
    })
}

/// Splits `updates` (sorted) into runs sharing their nibble at `depth`.
fn runs(
    updates: &[Update],
    depth: usize,
) -> impl Iterator<Item = Result<(u8, &[Update]), ExecutionError>> {
    let mut rest = updates;
    std::iter::from_fn(move || {
        let (first, _) = rest.first()?;
        let run = nibble(first, depth).and_then(|n| {
            let mut len = 1;
            while let Some((key, _)) = rest.get(len) {
                if nibble(key, depth)? != n {
                    break;
                }
                len += 1;
            }
            let (run, after) = rest.split_at(len);
            rest = after;
            Ok((n, run))
        });
        if run.is_err() {
            rest = &[];
        }
        Some(run)
    })
}

impl Walk<'_> {
    fn path_key(&self, depth: usize) -> Result<Vec<u8>, ExecutionError> {
        let nibbles = self
            .path
            .get(..depth)
            .ok_or_else(|| ExecutionError::Tree("a path longer than a key hash".into()))?;
        Ok(node_store_key_of(nibbles))
    }

    fn set_nibble(&mut self, depth: usize, n: u8) -> Result<(), ExecutionError> {
        let slot = self
            .path
            .get_mut(depth)
            .ok_or_else(|| ExecutionError::Tree("a path longer than a key hash".into()))?;
        *slot = n;
        Ok(())
    }

    fn push(&mut self, depth: usize, node: Vec<u8>) -> Result<(), ExecutionError> {
        let key = self.path_key(depth)?;
        let at_depth = self
            .writes
            .get_mut(depth)
            .ok_or_else(|| ExecutionError::Tree("a path longer than a key hash".into()))?;
        at_depth.push(Write {
            key,
            value: Some(node),
        });
        Ok(())
    }

    fn read(&self, depth: usize) -> Result<Option<StoredNode>, ExecutionError> {
        match self.store.get(&self.path_key(depth)?)? {
            None => Ok(None),
            Some(bytes) => decode(&bytes).map(Some),
        }
    }

    /// Updates the node at the path's first `depth` nibbles, `existing`, with `updates` (all
    /// under that path).
    fn insert_at(
        &mut self,
        depth: usize,
        existing: StoredNode,
        updates: &[Update],
    ) -> Result<ChildRef, ExecutionError> {
        match existing {
            StoredNode::Leaf(leaf) => self.with_existing_leaf(depth, leaf, updates),
            StoredNode::Internal(old) => {
                let mut children = old;
                for run in runs(updates, depth) {
                    let (n, run) = run?;
                    self.set_nibble(depth, n)?;
                    let at = usize::from(n);
                    let child = match old.get(at).copied().flatten() {
                        Some(_) => match self.read(depth + 1)? {
                            Some(node) => self.insert_at(depth + 1, node, run)?,
                            None => {
                                return Err(ExecutionError::Tree(
                                    "an internal node names a child the store lacks".into(),
                                ));
                            }
                        },
                        None => self.create(depth + 1, run)?,
                    };
                    if let Some(slot) = children.get_mut(at) {
                        *slot = Some(child);
                    }
                }
                self.write_internal(depth, &children)
            }
        }
    }

    /// The crate's `batch_create_subtree_with_existing_leaf`: `leaf` sits at this path and
    /// `updates` arrive there.
    fn with_existing_leaf(
        &mut self,
        depth: usize,
        leaf: Update,
        updates: &[Update],
    ) -> Result<ChildRef, ExecutionError> {
        if let [only] = updates
            && only.0 == leaf.0
        {
            return self.write_leaf(depth, *only);
        }
        let leaf_bucket = nibble(&leaf.0, depth)?;
        let mut children = [None; 16];
        let mut isolated = true;
        for run in runs(updates, depth) {
            let (n, run) = run?;
            self.set_nibble(depth, n)?;
            let child = if n == leaf_bucket {
                isolated = false;
                self.with_existing_leaf(depth + 1, leaf, run)?
            } else {
                self.create(depth + 1, run)?
            };
            if let Some(slot) = children.get_mut(usize::from(n)) {
                *slot = Some(child);
            }
        }
        if isolated {
            self.set_nibble(depth, leaf_bucket)?;
            let moved = self.write_leaf(depth + 1, leaf)?;
            if let Some(slot) = children.get_mut(usize::from(leaf_bucket)) {
                *slot = Some(moved);
            }
        }
        self.write_internal(depth, &children)
    }

    /// The crate's `batch_create_subtree`: `updates` under a path that holds nothing.
    fn create(&mut self, depth: usize, updates: &[Update]) -> Result<ChildRef, ExecutionError> {
        if let [only] = updates {
            return self.write_leaf(depth, *only);
        }
        let mut children = [None; 16];
        for run in runs(updates, depth) {
            let (n, run) = run?;
            self.set_nibble(depth, n)?;
            let child = self.create(depth + 1, run)?;
            if let Some(slot) = children.get_mut(usize::from(n)) {
                *slot = Some(child);
            }
        }
        self.write_internal(depth, &children)
    }

    fn write_leaf(
        &mut self,
        depth: usize,
        (key, value): Update,
    ) -> Result<ChildRef, ExecutionError> {
        let hash = LeafNode::new(KeyHash(key), ValueHash(value)).hash::<TreeHasher>();
        let mut bytes = Vec::with_capacity(LEAF_BYTES);
        bytes.push(TAG_LEAF);
        bytes.extend_from_slice(&key);
        bytes.extend_from_slice(&value);
        self.push(depth, bytes)?;
        Ok(ChildRef {
            hash,
            version: self.version,
            leaf_count: None,
        })
    }

    fn write_internal(
        &mut self,
        depth: usize,
        children: &[Option<ChildRef>; 16],
    ) -> Result<ChildRef, ExecutionError> {
        let mut count = 0u64;
        let mut leaf_count = 0u64;
        let mut bytes = Vec::with_capacity(INTERNAL_BYTES_MAX);
        bytes.push(TAG_INTERNAL);
        for child in children {
            match child {
                None => bytes.push(0),
                Some(child) => {
                    count += 1;
                    leaf_count = leaf_count
                        .checked_add(child.leaves())
                        .ok_or_else(|| ExecutionError::Tree("leaf count overflow".into()))?;
                    bytes.push(1);
                    bytes.extend_from_slice(&child.hash);
                    bytes.extend_from_slice(&child.version.to_le_bytes());
                    match child.leaf_count {
                        None => bytes.push(0),
                        Some(leaves) => {
                            bytes.push(1);
                            bytes.extend_from_slice(&leaves.to_le_bytes());
                        }
                    }
                }
            }
        }
        bytes.extend_from_slice(&count.to_le_bytes());
        bytes.extend_from_slice(&leaf_count.to_le_bytes());
        self.push(depth, bytes)?;
        Ok(ChildRef {
            hash: internal_hash(children),
            version: self.version,
            leaf_count: Some(leaf_count),
        })
    }
}

/// An internal node's hash: the binary Merkle tree over its 16 slots, where a range holding a
/// single leaf takes that leaf's hash and an empty range the placeholder (the crate's
/// `InternalNode::hash`).
fn internal_hash(children: &[Option<ChildRef>; 16]) -> [u8; 32] {
    let mut existing = 0u16;
    let mut leaves = 0u16;
    for (i, child) in children.iter().enumerate() {
        if let Some(child) = child {
            existing |= 1 << i;
            if child.leaf_count.is_none() {
                leaves |= 1 << i;
            }
        }
    }
    range_hash(children, 0, 16, existing, leaves)
}

fn range_hash(
    children: &[Option<ChildRef>; 16],
    start: u32,
    width: u32,
    existing: u16,
    leaves: u16,
) -> [u8; 32] {
    // `width` is 16, 8, 4, 2 or 1 and `start` a multiple of it below 16.
    let mask = (((1u32 << width) - 1) << start) as u16;
    let (in_range, leaves_in_range) = (existing & mask, leaves & mask);
    if in_range == 0 {
        PLACEHOLDER
    } else if width == 1 || (in_range.count_ones() == 1 && leaves_in_range != 0) {
        children
            .get(in_range.trailing_zeros() as usize)
            .copied()
            .flatten()
            .map_or(PLACEHOLDER, |child| child.hash)
    } else {
        let left = range_hash(children, start, width / 2, in_range, leaves_in_range);
        let right = range_hash(
            children,
            start + width / 2,
            width / 2,
            in_range,
            leaves_in_range,
        );
        let mut hasher = TreeHasher::new();
        hasher.update(INTERNAL_DOMAIN_SEPARATOR);
        hasher.update(&left);
        hasher.update(&right);
        hasher.finalize()
    }
}

/// Decodes a node as the crate encodes it (and as `write_leaf`/`write_internal` write it).
fn decode(bytes: &[u8]) -> Result<StoredNode, ExecutionError> {
    let bad = || ExecutionError::Tree("a stored tree node does not decode".into());
    let mut reader = Reader(bytes);
    let node = match reader.byte()? {
        TAG_LEAF => StoredNode::Leaf((reader.array()?, reader.array()?)),
        TAG_INTERNAL => {
            let mut children = [None; 16];
            for slot in &mut children {
                *slot = match reader.byte()? {
                    0 => None,
                    1 => {
                        let hash = reader.array()?;
                        let version = u64::from_le_bytes(reader.array()?);
                        let leaf_count = match reader.byte()? {
                            0 => None,
                            1 => Some(u64::from_le_bytes(reader.array()?)),
                            _ => return Err(bad()),
                        };
                        Some(ChildRef {
                            hash,
                            version,
                            leaf_count,
                        })
                    }
                    _ => return Err(bad()),
                };
            }
            // The child and leaf counts follow; the walk recomputes both.
            let _counts: [u8; 16] = reader.array()?;
            StoredNode::Internal(children)
        }
        _ => return Err(bad()),
    };
    if reader.0.is_empty() {
        Ok(node)
    } else {
        Err(bad())
    }
}

struct Reader<'b>(&'b [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, ExecutionError> {
        let [first, rest @ ..] = self.0 else {
            return Err(ExecutionError::Tree("a stored tree node ends early".into()));
        };
        self.0 = rest;
        Ok(*first)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ExecutionError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or_else(|| ExecutionError::Tree("a stored tree node ends early".into()))?;
        self.0 = rest;
        Ok(*head)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::MemoryStore;
    use crate::commitment::{put_by_crate, update, update_by_crate};

    /// Blocks of writes over a key space of `keys` keys (so keys are overwritten, deleted and
    /// added), ordered and each key once, as the ledger makes them.
    fn blocks(keys: u16, per_block: usize) -> impl Strategy<Value = Vec<Vec<Write>>> {
        let block = proptest::collection::btree_map(
            (0..keys).prop_map(|k| {
                let mut key = vec![b'A'];
                key.extend_from_slice(&k.to_be_bytes());
                key
            }),
            proptest::option::weighted(0.9, proptest::collection::vec(any::<u8>(), 0..6)),
            0..per_block,
        )
        .prop_map(|m| {
            m.into_iter()
                .map(|(key, value)| Write { key, value })
                .collect::<Vec<_>>()
        });
        proptest::collection::vec(block, 1..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn same_nodes_and_root_as_the_crate(blocks in prop_oneof![blocks(40, 12), blocks(3000, 600)]) {
            let mut store = MemoryStore::new();
            for (version, writes) in blocks.iter().enumerate() {
                let ours = update(&store, version as u64, writes).unwrap();
                let crates = update_by_crate(&store, version as u64, writes).unwrap();
                prop_assert_eq!(ours.root, crates.root);
                prop_assert_eq!(&ours.writes, &crates.writes);
                store.apply(writes);
                store.apply(&ours.writes);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// A key written twice in one block: the last write wins, as in the crate.
        #[test]
        fn a_key_written_twice_keeps_its_last_value_as_in_the_crate(
            writes in proptest::collection::vec(
                ((0u8..8).prop_map(|k| vec![b'A', k]), proptest::option::of(any::<u8>().prop_map(|v| vec![v]))),
                1..24,
            ),
        ) {
            let writes: Vec<Write> = writes
                .into_iter()
                .map(|(key, value)| Write { key, value })
                .collect();
            let store = MemoryStore::new();
            let ours = update(&store, 0, &writes).unwrap();
            let crates = update_by_crate(&store, 0, &writes).unwrap();
            prop_assert_eq!(ours.root, crates.root);
            prop_assert_eq!(ours.writes, crates.writes);
        }
    }

    /// The root of a fixed ledger, computed once: both sides of the tests above share the
    /// hasher and the leaf encoding, so only a known answer catches a change to either.
    #[test]
    fn a_fixed_ledger_has_a_known_root() {
        let mut store = MemoryStore::new();
        let mut root = None;
        for version in 0..3u8 {
            let writes: Vec<Write> = (0..50u8)
                .map(|k| Write {
                    key: vec![b'A', k],
                    value: (k % 7 != version).then(|| vec![version, k]),
                })
                .collect();
            let update = update(&store, u64::from(version), &writes).unwrap();
            store.apply(&writes);
            store.apply(&update.writes);
            root = Some(update.root);
        }
        assert_eq!(
            root.map(|r| r.to_hex()).unwrap(),
            "4f1eafb1fa8a61e0805ab675ffeac10510bbc8f15f76f5230b5662e2acd0375e"
        );
    }

    #[test]
    fn keys_sharing_long_prefixes_split_as_in_the_crate() {
        // Key hashes chosen to share 0 to 62 nibbles, so that leaves split into long chains
        // of internal nodes, one block after another.
        let key = |shared: usize, last: u8| {
            let mut k = [0xA5u8; 32];
            if let Some(byte) = k.get_mut(shared / 2) {
                *byte = if shared.is_multiple_of(2) {
                    last << 4
                } else {
                    0xA0 | last
                };
            }
            k
        };
        let mut store = MemoryStore::new();
        let rounds: [&[(usize, u8)]; 4] = [
            &[(0, 1), (63, 2)],
            &[(62, 3), (10, 4), (0, 1)],
            &[(61, 5), (11, 6), (40, 7), (63, 2)],
            &[(1, 8), (2, 9), (3, 10), (62, 11), (33, 12)],
        ];
        for (version, round) in rounds.iter().enumerate() {
            let value = |i: usize| vec![version as u8, i as u8];
            let mut updates: Vec<Update> = round
                .iter()
                .enumerate()
                .map(|(i, &(shared, last))| (key(shared, last), TreeHasher::hash(value(i))))
                .collect();
            let set = round
                .iter()
                .enumerate()
                .map(|(i, &(shared, last))| (KeyHash(key(shared, last)), value(i)))
                .collect();
            updates.sort_by_key(|u| u.0);
            let (root, writes) = apply(&store, version as u64, &updates).unwrap();
            let crates = put_by_crate(&store, version as u64, set).unwrap();
            assert_eq!(root, crates.root.0);
            assert_eq!(writes, crates.writes);
            store.apply(&writes);
        }
        // The chains are there: a node 60 nibbles down.
        let (start, end) = crate::state::key::tag_range(crate::state::key::TREE_NODE);
        let deepest = store
            .scan(&start, &end, usize::MAX)
            .unwrap()
            .iter()
            .filter_map(|(k, _)| k.get(1).copied())
            .max();
        assert!(deepest >= Some(60), "deepest node at {deepest:?}");
    }

    #[test]
    fn a_store_that_lost_its_root_or_holds_garbage_is_an_error_not_a_panic() {
        let mut store = MemoryStore::new();
        let updates = [([1; 32], [2; 32]), ([0x80; 32], [3; 32])];
        let (_, writes) = apply(&store, 0, &updates).unwrap();
        assert!(apply(&MemoryStore::new(), 1, &updates).is_err());
        store.apply(&writes);
        assert!(apply(&store, 1, &updates).is_ok());
        // Unsorted or repeated keys are refused.
        assert!(apply(&store, 1, &[updates[1], updates[0]]).is_err());
        assert!(apply(&store, 1, &[updates[0], updates[0]]).is_err());
        assert!(apply(&store, 1, &[]).is_err());
        for garbage in [vec![], vec![2], vec![1; 64], vec![9; 70], vec![2; 600]] {
            let mut broken = store.clone();
            broken.apply(&[Write {
                key: node_store_key_of(&[]),
                value: Some(garbage),
            }]);
            assert!(apply(&broken, 1, &updates).is_err());
        }
    }
}
