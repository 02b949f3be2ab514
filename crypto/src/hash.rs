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
        [leaf] => {
            let mut h = blake3::Hasher::new();
            h.update(&[0u8]);
            h.update(&leaf.0);
            Hash(*h.finalize().as_bytes())
        }
        _ => {
            let split = leaves.len().next_power_of_two() / 2;
            let (left, right) = leaves.split_at(split);
            let mut h = blake3::Hasher::new();
            h.update(&[1u8]);
            h.update(&merkle_root(left).0);
            h.update(&merkle_root(right).0);
            Hash(*h.finalize().as_bytes())
        }
    }
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
