//! State snapshots: the ledger state at one height, cut into chunks that a joining node checks
//! one by one, in any order and from any peer, against nothing but the ledger root a certified
//! header commits to.
//!
//! The cut follows the ledger tree ([`crate::commitment`]). The top of the tree (the internal
//! nodes over more than `leaves_per_chunk` leaves) travels as the snapshot's [`SnapshotTop`];
//! each subtree under it is one [`SnapshotChunk`]: every tree node of the subtree, as stored,
//! and the state entry of every leaf. The top verifies when it hashes to the ledger root; it
//! then names the hash each chunk must have. A chunk verifies when its nodes hash, bottom up,
//! to that hash and each entry is the value its leaf commits to; nothing else may be in it.
//!
//! The attacker is the peer serving a snapshot: it may alter, drop, add or move an entry or a
//! node, or serve one chunk for another. Each of these changes a hash the verified top names,
//! or leaves a node or an entry that no verified node reaches, and the chunk is refused. What
//! the hashes do not cover, the version numbers internal nodes keep for their children, is
//! only bookkeeping for the crate (the ledger's store keys nodes by path alone) and is checked
//! to be no later than the snapshot's height; a child count and leaf counts are checked
//! against the children.

use std::collections::{BTreeMap, BTreeSet};

use jmt::storage::{LeafNode, Node};
use jmt::{KeyHash, ValueHash};
use serde::{Deserialize, Serialize};
use tally_crypto::Hash;

use crate::commitment::{
    HEIGHT_LEAF, TreeHasher, has_leaf, key_hash, leaf_value, node_path_of, node_store_key_of,
};
use crate::state::key;
use crate::{StateStore, Write};

/// How many leaves a chunk holds at most when the node cuts its snapshots: about half a MiB
/// of a ledger's entries, well under a peer message.
pub const LEAVES_PER_CHUNK: usize = 2_048;
/// The bytes a chunk holds at most (its nodes and entries, before encoding), unless one entry
/// alone is larger: well under a peer message (`[limits] message_bytes_max`, 4 MiB by default).
pub const CHUNK_BYTES_MAX: usize = 1024 * 1024;
/// The deepest path of the tree: a key hash has 64 nibbles.
const PATH_NIBBLES_MAX: usize = 64;

/// One tree node as the ledger stores it: its path from the root (nibbles, each below 16)
/// and its encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeRow {
    pub path: Vec<u8>,
    pub node: Vec<u8>,
}

/// The top of a snapshot's tree and where its chunks hang.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotTop {
    /// The tree's version: the height the snapshot is of.
    pub version: u64,
    /// The internal nodes above the chunks.
    pub nodes: Vec<TreeRow>,
    /// Each chunk's root path; a chunk's index is its place here.
    pub chunks: Vec<Vec<u8>>,
}

/// One subtree of a snapshot: its nodes and the state entries its leaves commit to (a leaf
/// of a deleted entry, or the height's leaf, has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    pub nodes: Vec<TreeRow>,
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Where a chunk hangs in a verified top: the hash (and the kind of node) it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkTarget {
    pub path: Vec<u8>,
    hash: [u8; 32],
    /// `None` for a chunk at the root, whose kind the top does not say.
    kind: Option<Kind>,
}

/// What a parent says of a child node: a leaf, or internal over so many leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Leaf,
    Internal { leaves: usize },
}

/// The [`Kind`] an internal node's child entry names (the crate does not export its type).
macro_rules! kind_of {
    ($child:expr) => {
        if $child.is_leaf() {
            Kind::Leaf
        } else {
            Kind::Internal {
                leaves: $child.leaf_count(),
            }
        }
    };
}

/// Why a snapshot's part is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("the snapshot's part is malformed: {0}")]
    Malformed(String),
    #[error("the tree node at path {path} does not hash to what its parent names")]
    HashMismatch { path: String },
    #[error("the tree node at path {path} is missing")]
    Missing { path: String },
    #[error("{0} is in the snapshot's part but under no verified node")]
    Unreached(String),
    #[error("the leaf at path {path} does not commit to the entry or value served")]
    WrongValue { path: String },
    #[error("the snapshot is of version {found}, not {expected}")]
    WrongVersion { expected: u64, found: u64 },
    #[error("reading state for a snapshot: {0}")]
    Store(String),
}

fn path_text(path: &[u8]) -> String {
    if path.is_empty() {
        return "(root)".to_string();
    }
    path.iter().map(|n| format!("{n:x}")).collect()
}

fn child_path(path: &[u8], nibble: u8) -> Vec<u8> {
    let mut child = Vec::with_capacity(path.len() + 1);
    child.extend_from_slice(path);
    child.push(nibble);
    child
}

/// A key hash's nibbles, high first.
fn nibbles_of(hash: &KeyHash) -> impl Iterator<Item = u8> + '_ {
    hash.0.iter().flat_map(|b| [b >> 4, b & 0x0F])
}

fn store_error(e: crate::StoreError) -> SnapshotError {
    SnapshotError::Store(e.to_string())
}

/// Cuts the state in `store` (whose tree is at `version`) into a top and chunks of at most
/// `leaves_per_chunk` leaves and about [`CHUNK_BYTES_MAX`] bytes (more only for a single
/// entry that large).
pub fn take(
    store: &dyn StateStore,
    version: u64,
    leaves_per_chunk: usize,
) -> Result<(SnapshotTop, Vec<SnapshotChunk>), SnapshotError> {
    let (tree_start, tree_end) = key::tag_range(key::TREE_NODE);
    // Every state key begins with an ASCII tag, so `[0xFF]` is above them all.
    let mut entries: BTreeMap<[u8; 32], (Vec<u8>, Vec<u8>)> = BTreeMap::new();
    for (k, v) in store
        .scan(&[], &[u8::MAX], usize::MAX)
        .map_err(store_error)?
    {
        if !has_leaf(&k) {
            continue;
        }
        entries.insert(key_hash(&k).0, (k, v));
    }
    let mut nodes: BTreeMap<Vec<u8>, (Vec<u8>, Node)> = BTreeMap::new();
    for (k, v) in store
        .scan(&tree_start, &tree_end, usize::MAX)
        .map_err(store_error)?
    {
        let path = node_path_of(&k)
            .ok_or_else(|| SnapshotError::Store(format!("a tree node under key {k:?}")))?;
        let node = parse_node(&path, &v)?;
        nodes.insert(path, (v, node));
    }
    let mut top = SnapshotTop {
        version,
        nodes: Vec::new(),
        chunks: Vec::new(),
    };
    // Depth first from the root: a node over too many leaves goes to the top, its children
    // are cut in turn.
    // Depth first from the root: a node over too many leaves, or whose chunk would outgrow
    // `CHUNK_BYTES_MAX`, goes to the top and its children are cut in turn.
    let mut chunks = Vec::new();
    let mut pending = vec![Vec::new()];
    while let Some(path) = pending.pop() {
        let (bytes, node) = nodes.get(&path).ok_or_else(|| SnapshotError::Missing {
            path: path_text(&path),
        })?;
        let chunk = match node {
            Node::Internal(internal) if internal.leaf_count() > leaves_per_chunk => None,
            _ => Some(chunk_under(&path, &nodes, &entries)),
        };
        match (chunk, node) {
            (Some((chunk, size)), _) if size <= CHUNK_BYTES_MAX => {
                top.chunks.push(path);
                chunks.push(chunk);
            }
            (Some((chunk, _)), Node::Leaf(_)) => {
                // One entry larger than a chunk: it goes alone.
                top.chunks.push(path);
                chunks.push(chunk);
            }
            (_, Node::Internal(internal)) => {
                top.nodes.push(TreeRow {
                    path: path.clone(),
                    node: bytes.clone(),
                });
                let children: Vec<u8> = internal.children_sorted().map(|(n, _)| n.into()).collect();
                pending.extend(children.into_iter().rev().map(|n| child_path(&path, n)));
            }
            (_, _) => {
                return Err(SnapshotError::Malformed(format!(
                    "node {} in the store",
                    path_text(&path)
                )));
            }
        }
    }
    Ok((top, chunks))
}

/// How many state entries `store` holds that the tree commits to (all but the chain-head
/// record and the tree's own nodes): what a complete cut's chunks hold between them.
pub fn state_entries(store: &dyn StateStore) -> Result<usize, SnapshotError> {
    Ok(store
        .scan(&[], &[u8::MAX], usize::MAX)
        .map_err(store_error)?
        .iter()
        .filter(|(k, _)| has_leaf(k))
        .count())
}

/// The chunk of the subtree at `root` and its size in bytes (nodes and entries).
fn chunk_under(
    root: &[u8],
    nodes: &BTreeMap<Vec<u8>, (Vec<u8>, Node)>,
    entries: &BTreeMap<[u8; 32], (Vec<u8>, Vec<u8>)>,
) -> (SnapshotChunk, usize) {
    let mut chunk = SnapshotChunk {
        nodes: Vec::new(),
        entries: Vec::new(),
    };
    let mut size = 0usize;
    // A subtree's paths are contiguous in path order, from its root's.
    for (path, (bytes, node)) in nodes.range(root.to_vec()..) {
        if !path.starts_with(root) {
            break;
        }
        size = size.saturating_add(path.len() + bytes.len());
        chunk.nodes.push(TreeRow {
            path: path.clone(),
            node: bytes.clone(),
        });
        if let Node::Leaf(leaf) = node
            && let Some((k, v)) = entries.get(&leaf.key_hash().0)
        {
            size = size.saturating_add(k.len() + v.len());
            chunk.entries.push((k.clone(), v.clone()));
        }
    }
    (chunk, size)
}

/// Decodes a stored tree node, refusing any encoding but the one the ledger writes (so the
/// bytes kept are the bytes checked) and a child count that is not the children's.
fn parse_node(path: &[u8], bytes: &[u8]) -> Result<Node, SnapshotError> {
    let malformed =
        |why: &str| SnapshotError::Malformed(format!("node {}: {why}", path_text(path)));
    if path.len() > PATH_NIBBLES_MAX || path.iter().any(|n| *n > 0x0F) {
        return Err(malformed("not a tree path"));
    }
    let node: Node = borsh::from_slice(bytes).map_err(|e| malformed(&e.to_string()))?;
    let canonical = borsh::to_vec(&node).map_err(|e| malformed(&e.to_string()))?;
    if canonical != bytes {
        return Err(malformed("not in its canonical encoding"));
    }
    match &node {
        Node::Null => return Err(malformed("a null node")),
        Node::Internal(internal) => {
            // The crate's encoding of an internal node ends with its child count, then its
            // leaf count (8 bytes each); the count is not under any hash.
            let count = internal.children_sorted().count() as u64;
            let kept = bytes
                .len()
                .checked_sub(16)
                .and_then(|at| bytes.get(at..at + 8))
                .ok_or_else(|| malformed("too short"))?;
            if kept != count.to_le_bytes() || count == 0 {
                return Err(malformed("its child count is not its children's"));
            }
            // The crate never makes one (`InternalNode::new` refuses it): its hash is its
            // leaf's, so a peer could hide a leaf one level down under a node that hashes as
            // the leaf itself, and the tree would then break at the next write there.
            if count == 1 && internal.children_sorted().any(|(_, child)| child.is_leaf()) {
                return Err(malformed("an internal node over a single leaf"));
            }
        }
        Node::Leaf(_) => {}
    }
    Ok(node)
}

/// Parses a part's rows into a map by path, refusing duplicates and rows outside `under`.
fn parse_rows(rows: &[TreeRow], under: &[u8]) -> Result<BTreeMap<Vec<u8>, Node>, SnapshotError> {
    let mut nodes = BTreeMap::new();
    for row in rows {
        if !row.path.starts_with(under) {
            return Err(SnapshotError::Unreached(format!(
                "node {}",
                path_text(&row.path)
            )));
        }
        let node = parse_node(&row.path, &row.node)?;
        if nodes.insert(row.path.clone(), node).is_some() {
            return Err(SnapshotError::Malformed(format!(
                "node {} twice",
                path_text(&row.path)
            )));
        }
    }
    Ok(nodes)
}

fn node_hash(node: &Node) -> [u8; 32] {
    match node {
        Node::Internal(internal) => internal.hash::<TreeHasher>(),
        Node::Leaf(leaf) => leaf.hash::<TreeHasher>(),
        Node::Null => [0; 32],
    }
}

/// Checks a node against what its parent says of it: its hash, its kind (a leaf, or internal
/// over so many leaves) and the versions it names for its children.
fn check_node(
    path: &[u8],
    node: &Node,
    hash: [u8; 32],
    kind: Option<Kind>,
    version: u64,
) -> Result<(), SnapshotError> {
    if node_hash(node) != hash {
        return Err(SnapshotError::HashMismatch {
            path: path_text(path),
        });
    }
    let kind_holds = match (kind, node) {
        (None, _) => true,
        (Some(Kind::Leaf), Node::Leaf(_)) => true,
        (Some(Kind::Internal { leaves }), Node::Internal(i)) => leaves == i.leaf_count(),
        _ => false,
    };
    if !kind_holds {
        return Err(SnapshotError::Malformed(format!(
            "node {} is not the kind its parent names",
            path_text(path)
        )));
    }
    if let Node::Internal(internal) = node {
        let counted = internal
            .children_sorted()
            .try_fold(0usize, |sum, (_, child)| {
                sum.checked_add(child.leaf_count())
            });
        if counted != Some(internal.leaf_count()) {
            return Err(SnapshotError::Malformed(format!(
                "node {}: its leaf count is not its children's",
                path_text(path)
            )));
        }
        if internal.children_sorted().any(|(_, c)| c.version > version) {
            return Err(SnapshotError::Malformed(format!(
                "node {} names a version after the snapshot's",
                path_text(path)
            )));
        }
    }
    Ok(())
}

/// Checks a snapshot's top against the ledger root a certified header committed to; returns
/// where each chunk hangs, in the order of [`SnapshotTop::chunks`].
pub fn verify_top(top: &SnapshotTop, ledger_root: Hash) -> Result<Vec<ChunkTarget>, SnapshotError> {
    let nodes = parse_rows(&top.nodes, &[])?;
    let mut targets: BTreeMap<Vec<u8>, Option<ChunkTarget>> = BTreeMap::new();
    for path in &top.chunks {
        if path.len() > PATH_NIBBLES_MAX || path.iter().any(|n| *n > 0x0F) {
            return Err(SnapshotError::Malformed("a chunk's path".to_string()));
        }
        if targets.insert(path.clone(), None).is_some() || nodes.contains_key(path) {
            return Err(SnapshotError::Malformed(format!(
                "chunk {} twice",
                path_text(path)
            )));
        }
    }
    let mut reached = 0usize;
    // (path, the hash and kind its parent names)
    let mut pending = vec![(Vec::new(), ledger_root.0, None)];
    while let Some((path, hash, kind)) = pending.pop() {
        if let Some(slot) = targets.get_mut(&path) {
            *slot = Some(ChunkTarget { path, hash, kind });
            continue;
        }
        let node = nodes.get(&path).ok_or_else(|| SnapshotError::Missing {
            path: path_text(&path),
        })?;
        let Node::Internal(internal) = node else {
            return Err(SnapshotError::Malformed(format!(
                "the top's node {} is a leaf",
                path_text(&path)
            )));
        };
        check_node(&path, node, hash, kind, top.version)?;
        reached += 1;
        for (nibble, child) in internal.children_sorted() {
            pending.push((
                child_path(&path, nibble.into()),
                child.hash,
                Some(kind_of!(child)),
            ));
        }
    }
    if reached != nodes.len() {
        return Err(SnapshotError::Unreached("a node of the top".to_string()));
    }
    top.chunks
        .iter()
        .map(|path| {
            targets
                .get(path)
                .cloned()
                .flatten()
                .ok_or_else(|| SnapshotError::Unreached(format!("chunk {}", path_text(path))))
        })
        .collect()
}

/// Checks a chunk against where it hangs in a verified top of version `version`; returns the
/// state writes that install it (its tree nodes, then its entries).
pub fn verify_chunk(
    target: &ChunkTarget,
    version: u64,
    chunk: &SnapshotChunk,
) -> Result<Vec<Write>, SnapshotError> {
    let nodes = parse_rows(&chunk.nodes, &target.path)?;
    let mut entries: BTreeMap<[u8; 32], &(Vec<u8>, Vec<u8>)> = BTreeMap::new();
    for entry in &chunk.entries {
        if !has_leaf(&entry.0) || entry.0 == HEIGHT_LEAF {
            return Err(SnapshotError::Malformed(
                "an entry under a key no leaf holds".to_string(),
            ));
        }
        if entries.insert(key_hash(&entry.0).0, entry).is_some() {
            return Err(SnapshotError::Malformed("an entry twice".to_string()));
        }
    }
    let height_leaf = key_hash(HEIGHT_LEAF);
    let mut used = BTreeSet::new();
    let mut reached = 0usize;
    let mut pending = vec![(target.path.clone(), target.hash, target.kind)];
    while let Some((path, hash, kind)) = pending.pop() {
        let node = nodes.get(&path).ok_or_else(|| SnapshotError::Missing {
            path: path_text(&path),
        })?;
        check_node(&path, node, hash, kind, version)?;
        reached += 1;
        match node {
            Node::Internal(internal) => {
                for (nibble, child) in internal.children_sorted() {
                    pending.push((
                        child_path(&path, nibble.into()),
                        child.hash,
                        Some(kind_of!(child)),
                    ));
                }
            }
            Node::Leaf(leaf) => {
                let at = leaf.key_hash();
                if !nibbles_of(&at).take(path.len()).eq(path.iter().copied()) {
                    return Err(SnapshotError::Malformed(format!(
                        "leaf {} is not on its key's path",
                        path_text(&path)
                    )));
                }
                let value = match entries.get(&at.0) {
                    Some((_, v)) => {
                        used.insert(at.0);
                        leaf_value(Some(v))
                    }
                    None if at == height_leaf => leaf_value(Some(&version.to_le_bytes())),
                    None => leaf_value(None),
                };
                if *leaf != LeafNode::new(at, ValueHash::with::<TreeHasher>(value)) {
                    return Err(SnapshotError::WrongValue {
                        path: path_text(&path),
                    });
                }
            }
            Node::Null => {
                return Err(SnapshotError::Malformed("a null node".to_string()));
            }
        }
    }
    if reached != nodes.len() {
        return Err(SnapshotError::Unreached("a node of the chunk".to_string()));
    }
    if used.len() != entries.len() {
        return Err(SnapshotError::Unreached(
            "an entry no leaf commits to".to_string(),
        ));
    }
    let mut writes: Vec<Write> = chunk
        .nodes
        .iter()
        .map(|row| Write {
            key: node_store_key_of(&row.path),
            value: Some(row.node.clone()),
        })
        .collect();
    writes.extend(chunk.entries.iter().map(|(k, v)| Write {
        key: k.clone(),
        value: Some(v.clone()),
    }));
    Ok(writes)
}

/// The state writes of a verified top's nodes.
pub fn top_writes(top: &SnapshotTop) -> Vec<Write> {
    top.nodes
        .iter()
        .map(|row| Write {
            key: node_store_key_of(&row.path),
            value: Some(row.node.clone()),
        })
        .collect()
}

/// The chain-head record a node started from a snapshot writes: it is outside the tree (it
/// carries the tree's root), so the snapshot brings it as its parts, each checked.
pub fn chain_head_write(head: &crate::ChainHead) -> Write {
    Write {
        key: key::meta(),
        value: Some(crate::state::encode_record(head)),
    }
}

/// How many leaves a verified chunk's subtree holds (for progress).
pub fn leaves_of(target: &ChunkTarget) -> usize {
    match &target.kind {
        Some(Kind::Internal { leaves }) => *leaves,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::MemoryStore;
    use crate::commitment;

    /// A store after `blocks` (writes over a small key space, so keys are overwritten and
    /// deleted and the tree holds tombstones), with the tree's root at the last version.
    fn ledger(blocks: &[BTreeMap<Vec<u8>, Option<Vec<u8>>>]) -> (MemoryStore, Hash, u64) {
        let mut store = MemoryStore::new();
        let mut root = Hash::ZERO;
        for (version, block) in blocks.iter().enumerate() {
            let writes: Vec<Write> = block
                .iter()
                .map(|(key, value)| Write {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect();
            let update = commitment::update(&store, version as u64, &writes).unwrap();
            store.apply(&writes);
            store.apply(&update.writes);
            root = update.root;
        }
        (store, root, blocks.len().saturating_sub(1) as u64)
    }

    fn blocks() -> impl Strategy<Value = Vec<BTreeMap<Vec<u8>, Option<Vec<u8>>>>> {
        proptest::collection::vec(
            proptest::collection::btree_map(
                (0u16..300).prop_map(|k| {
                    let mut key = vec![b'A'];
                    key.extend_from_slice(&k.to_be_bytes());
                    key
                }),
                proptest::option::weighted(0.8, proptest::collection::vec(any::<u8>(), 0..10)),
                0..80,
            ),
            1..5,
        )
    }

    /// Installs a snapshot into an empty store, checking every part on the way.
    fn install(
        top: &SnapshotTop,
        chunks: &[SnapshotChunk],
        root: Hash,
    ) -> Result<MemoryStore, SnapshotError> {
        let targets = verify_top(top, root)?;
        let mut store = MemoryStore::new();
        store.apply(&top_writes(top));
        for (target, chunk) in targets.iter().zip(chunks) {
            store.apply(&verify_chunk(target, top.version, chunk)?);
        }
        Ok(store)
    }

    fn without_meta(store: &MemoryStore) -> Vec<(Vec<u8>, Vec<u8>)> {
        store.scan(&[], &[u8::MAX], usize::MAX).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn a_snapshot_installs_the_same_state_and_tree_and_the_next_root_agrees(
            history in blocks(),
            leaves in 1usize..40,
            next in blocks(),
        ) {
            let (store, root, version) = ledger(&history);
            let (top, chunks) = take(&store, version, leaves).unwrap();
            prop_assert_eq!(top.chunks.len(), chunks.len());
            for chunk in &chunks {
                let leaves_in = chunk.nodes.iter().filter(|r| {
                    matches!(borsh::from_slice::<Node>(&r.node), Ok(Node::Leaf(_)))
                }).count();
                prop_assert!(leaves_in <= leaves.max(1) || chunk.nodes.len() == 1);
            }
            let installed = install(&top, &chunks, root).unwrap();
            prop_assert_eq!(without_meta(&installed), without_meta(&store));
            // The installed node executes the next block to the root every other node has.
            let writes: Vec<Write> = next[0]
                .iter()
                .map(|(key, value)| Write { key: key.clone(), value: value.clone() })
                .collect();
            let theirs = commitment::update(&store, version + 1, &writes).unwrap();
            let ours = commitment::update(&installed, version + 1, &writes).unwrap();
            prop_assert_eq!(theirs.root, ours.root);
            prop_assert_eq!(theirs.writes, ours.writes);
        }

        #[test]
        fn no_altered_dropped_added_or_moved_part_verifies(
            history in blocks(),
            leaves in 1usize..20,
            pick in any::<prop::sample::Index>(),
            byte in any::<prop::sample::Index>(),
        ) {
            let (store, root, version) = ledger(&history);
            let (top, chunks) = take(&store, version, leaves).unwrap();
            let targets = verify_top(&top, root).unwrap();
            let i = pick.index(chunks.len());
            let (target, chunk) = (&targets[i], &chunks[i]);
            prop_assert!(verify_chunk(target, version, chunk).is_ok());
            // Under another root, or of another version, nothing holds.
            prop_assert!(install(&top, &chunks, Hash::digest("other", &root.0)).is_err());
            if chunk.nodes.iter().any(|r| {
                matches!(borsh::from_slice::<Node>(&r.node), Ok(Node::Leaf(l)) if l.key_hash() == key_hash(HEIGHT_LEAF))
            }) {
                prop_assert!(verify_chunk(target, version + 1, chunk).is_err());
            }
            // An entry's value altered.
            if !chunk.entries.is_empty() {
                let mut altered = chunk.clone();
                let e = byte.index(altered.entries.len());
                altered.entries[e].1.push(7);
                prop_assert!(verify_chunk(target, version, &altered).is_err());
                let mut dropped = chunk.clone();
                dropped.entries.remove(e);
                prop_assert!(verify_chunk(target, version, &dropped).is_err());
            }
            // An entry added that no leaf commits to.
            let mut added = chunk.clone();
            added.entries.push((vec![b'A', 0xFF, 0xFF], vec![1]));
            prop_assert!(verify_chunk(target, version, &added).is_err());
            // A node's byte flipped, or a node dropped.
            let mut flipped = chunk.clone();
            let n = byte.index(flipped.nodes.len());
            let at = byte.index(flipped.nodes[n].node.len());
            flipped.nodes[n].node[at] ^= 0x01;
            prop_assert!(verify_chunk(target, version, &flipped).is_err());
            let mut dropped = chunk.clone();
            dropped.nodes.remove(n);
            prop_assert!(verify_chunk(target, version, &dropped).is_err());
            // Another chunk served in this one's place.
            if chunks.len() > 1 {
                let other = &chunks[(i + 1) % chunks.len()];
                prop_assert!(verify_chunk(target, version, other).is_err());
            }
            // The top with a node dropped or a chunk left out.
            if !top.nodes.is_empty() {
                let mut cut = top.clone();
                cut.nodes.pop();
                prop_assert!(verify_top(&cut, root).is_err());
            }
            let mut fewer = top.clone();
            fewer.chunks.pop();
            prop_assert!(verify_top(&fewer, root).is_err());
        }
    }

    #[test]
    fn a_node_hiding_a_leaf_one_level_down_is_refused() {
        // A leaf of a real tree.
        let block: BTreeMap<Vec<u8>, Option<Vec<u8>>> =
            (0u8..20).map(|k| (vec![b'A', k], Some(vec![k]))).collect();
        let (store, _, _) = ledger(&[block]);
        let (start, end) = key::tag_range(key::TREE_NODE);
        let leaf = store
            .scan(&start, &end, usize::MAX)
            .unwrap()
            .into_iter()
            .find_map(
                |(_, bytes)| match borsh::from_slice::<Node>(&bytes).unwrap() {
                    Node::Leaf(leaf) => Some(Node::Leaf(leaf)),
                    _ => None,
                },
            )
            .unwrap();
        // An internal node whose one child is that leaf, encoded as the crate does: a tag, 16
        // optional children (hash, version, kind), the child count, the leaf count.
        let mut forged = vec![1u8];
        for slot in 0..16 {
            if slot == 5 {
                forged.push(1);
                forged.extend_from_slice(&node_hash(&leaf));
                forged.extend_from_slice(&0u64.to_le_bytes());
                forged.push(0);
            } else {
                forged.push(0);
            }
        }
        forged.extend_from_slice(&1u64.to_le_bytes());
        forged.extend_from_slice(&1u64.to_le_bytes());
        let node: Node = borsh::from_slice(&forged).unwrap();
        // It hashes as the leaf itself: a parent could name either.
        assert_eq!(node_hash(&node), node_hash(&leaf));
        assert!(matches!(
            parse_node(&[3], &forged),
            Err(SnapshotError::Malformed(_))
        ));
    }

    #[test]
    fn an_internal_nodes_encoding_ends_with_its_child_and_leaf_counts() {
        // `parse_node` reads the child count from the crate's encoding: this pins the layout.
        let block: BTreeMap<Vec<u8>, Option<Vec<u8>>> =
            (0u8..50).map(|k| (vec![b'A', k], Some(vec![k]))).collect();
        let (store, _, _) = ledger(&[block]);
        let (start, end) = key::tag_range(key::TREE_NODE);
        let mut internal = 0;
        for (k, bytes) in store.scan(&start, &end, usize::MAX).unwrap() {
            let path = node_path_of(&k).unwrap();
            assert_eq!(node_store_key_of(&path), k);
            if let Node::Internal(node) = borsh::from_slice::<Node>(&bytes).unwrap() {
                internal += 1;
                let tail = &bytes[bytes.len() - 16..];
                let children = node.children_sorted().count() as u64;
                assert_eq!(&tail[..8], children.to_le_bytes());
                assert_eq!(&tail[8..], (node.leaf_count() as u64).to_le_bytes());
                assert!(parse_node(&path, &bytes).is_ok());
                let mut miscounted = bytes.clone();
                let at = bytes.len() - 16;
                miscounted[at] ^= 0x02;
                assert!(parse_node(&path, &miscounted).is_err());
            }
        }
        assert!(internal > 0);
    }
}
