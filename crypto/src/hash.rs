use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

use crate::CryptoError;

/// A blake3 digest. Used for block hashes, transaction hashes, state roots.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const ZERO: Hash = Hash([0u8; 32]);

    /// The digest of `bytes` under a domain tag, so hashes of different kinds of object
    /// never collide by construction.
    pub fn digest(domain: &str, bytes: &[u8]) -> Hash {
        HashBuilder::new(domain).update(bytes).finish()
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Result<Hash, CryptoError> {
        let bytes = hex::decode(s).map_err(|e| CryptoError::BadHex(e.to_string()))?;
        let got = bytes.len();
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::BadLength { expected: 32, got })?;
        Ok(Hash(arr))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight hex digits are enough to tell hashes apart in logs and test failures.
        write!(f, "Hash({})", &self.to_hex()[..8])
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Hash::from_hex(&s).map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d).map(Hash)
        }
    }
}

/// Incremental hashing of several fields under one domain tag. Each field is
/// length-prefixed, so `("ab", "c")` and `("a", "bc")` hash differently.
#[derive(Debug, Clone)]
pub struct HashBuilder(blake3::Hasher);

impl HashBuilder {
    pub fn new(domain: &str) -> HashBuilder {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"tally-hash-v1");
        hasher.update(&(domain.len() as u64).to_le_bytes());
        hasher.update(domain.as_bytes());
        HashBuilder(hasher)
    }

    pub fn update(mut self, bytes: &[u8]) -> HashBuilder {
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    pub fn finish(self) -> Hash {
        Hash(*self.0.finalize().as_bytes())
    }
}

/// The Merkle root of a list of leaf hashes, in the RFC 6962 shape: leaves and inner nodes
/// are hashed under different prefixes (no second-preimage by reinterpreting a node as a
/// leaf), and a list is split at the largest power of two below its length.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => Hash(*blake3::hash(b"tally-merkle-empty").as_bytes()),
        [leaf] => merkle_leaf(leaf),
        _ => {
            let split = leaves.len().next_power_of_two() / 2;
            let (left, right) = leaves.split_at(split);
            merkle_node(&merkle_root(left), &merkle_root(right))
        }
    }
}

fn merkle_leaf(leaf: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[0u8]);
    h.update(&leaf.0);
    Hash(*h.finalize().as_bytes())
}

fn merkle_node(left: &Hash, right: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[1u8]);
    h.update(&left.0);
    h.update(&right.0);
    Hash(*h.finalize().as_bytes())
}

/// One step of a path from a leaf up to a [`merkle_root`]: the sibling subtree's root, on
/// the side it sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MerkleStep {
    Left(Hash),
    Right(Hash),
}

/// The path from leaf `index` up to the root of `leaves`, leaf end first; `None` when there
/// is no such leaf. Built level by level in O(n): pairing nodes left to right and carrying a
/// level's lone last node up unhashed gives the same tree as [`merkle_root`]'s split at the
/// largest power of two (RFC 6962, 2.1).
pub fn merkle_path(leaves: &[Hash], index: usize) -> Option<Vec<MerkleStep>> {
    if index >= leaves.len() {
        return None;
    }
    let mut level: Vec<Hash> = leaves.iter().map(merkle_leaf).collect();
    let mut index = index;
    let mut path = Vec::new();
    while level.len() > 1 {
        let sibling = index ^ 1;
        if let Some(hash) = level.get(sibling) {
            path.push(if sibling < index {
                MerkleStep::Left(*hash)
            } else {
                MerkleStep::Right(*hash)
            });
        }
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => merkle_node(left, right),
                [lone] => *lone,
                // `chunks(2)` yields only pairs and a last lone node.
                _ => Hash::ZERO,
            })
            .collect();
        index /= 2;
    }
    Some(path)
}

/// The root that `leaf` with `path` (from [`merkle_path`]) leads to.
pub fn merkle_root_from_path(leaf: &Hash, path: &[MerkleStep]) -> Hash {
    path.iter().fold(merkle_leaf(leaf), |acc, step| match step {
        MerkleStep::Left(sibling) => merkle_node(sibling, &acc),
        MerkleStep::Right(sibling) => merkle_node(&acc, sibling),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u8) -> Hash {
        Hash::digest("test", &[i])
    }

    #[test]
    fn fields_are_length_prefixed() {
        let a = HashBuilder::new("d").update(b"ab").update(b"c").finish();
        let b = HashBuilder::new("d").update(b"a").update(b"bc").finish();
        assert_ne!(a, b);
    }

    #[test]
    fn domain_separates() {
        assert_ne!(Hash::digest("a", b"x"), Hash::digest("b", b"x"));
    }

    #[test]
    fn merkle_root_depends_on_every_leaf_and_order() {
        let leaves: Vec<Hash> = (0..7).map(leaf).collect();
        let root = merkle_root(&leaves);
        for i in 0..leaves.len() {
            let mut changed = leaves.clone();
            changed[i] = leaf(100);
            assert_ne!(merkle_root(&changed), root, "leaf {i} not covered");
        }
        let mut swapped = leaves.clone();
        swapped.swap(0, 1);
        assert_ne!(merkle_root(&swapped), root);
        assert_ne!(merkle_root(&leaves[..6]), root);
        assert_ne!(merkle_root(&[]), merkle_root(&[leaf(0)]));
    }

    #[test]
    fn every_leaf_has_a_path_to_the_root_and_no_other_leaf_does() {
        for n in 1..40u8 {
            let leaves: Vec<Hash> = (0..n).map(leaf).collect();
            let root = merkle_root(&leaves);
            for i in 0..leaves.len() {
                let path = merkle_path(&leaves, i).unwrap();
                assert_eq!(
                    merkle_root_from_path(&leaves[i], &path),
                    root,
                    "{n} leaves, {i}"
                );
                assert_ne!(merkle_root_from_path(&leaf(200), &path), root);
                if let Some(other) = leaves.get(i + 1) {
                    assert_ne!(merkle_root_from_path(other, &path), root);
                }
            }
            assert_eq!(merkle_path(&leaves, leaves.len()), None);
        }
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let h = leaf(3);
        assert_eq!(Hash::from_hex(&h.to_hex()), Ok(h));
        assert!(matches!(Hash::from_hex("zz"), Err(CryptoError::BadHex(_))));
        assert_eq!(
            Hash::from_hex("abcd"),
            Err(CryptoError::BadLength {
                expected: 32,
                got: 2
            })
        );
    }
}
