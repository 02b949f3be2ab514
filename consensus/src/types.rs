//! The counters and ids of consensus, each its own type so a round can never be passed where a
//! height is expected. Arithmetic on them is checked: a counter that would overflow is a bug
//! or an attack, never a wrap-around.

use serde::{Deserialize, Serialize};
use std::fmt;
use tally_crypto::{Hash, HashBuilder};

/// A block height. The genesis block has height 0; consensus decides heights from 1 on.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Height(pub u64);

/// A round within one height. Round 0 is the first; rounds only grow within a height.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Round(pub u32);

/// The position of a validator in the validator set in force at a height.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ValidatorIndex(pub u32);

/// The id of a block: the hash of its bytes under the block domain. Consensus knows blocks
/// only as opaque bytes with this hash.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlockHash(pub Hash);

impl Height {
    /// The next height, or `None` at `u64::MAX`.
    pub fn next(self) -> Option<Height> {
        self.0.checked_add(1).map(Height)
    }

    /// `self + n`, or `None` on overflow.
    pub fn checked_add(self, n: u64) -> Option<Height> {
        self.0.checked_add(n).map(Height)
    }
}

impl Round {
    pub const ZERO: Round = Round(0);

    /// The next round, or `None` at `u32::MAX`.
    pub fn next(self) -> Option<Round> {
        self.0.checked_add(1).map(Round)
    }

    /// `self + n`, saturating: used only for bounds ("no further than n rounds ahead").
    pub fn saturating_add(self, n: u32) -> Round {
        Round(self.0.saturating_add(n))
    }
}

impl ValidatorIndex {
    /// The index as a `usize`, for looking up the validator list.
    pub fn as_usize(self) -> usize {
        self.0 as usize
    }
}

impl BlockHash {
    /// The domain tag a block's id is made under.
    pub const DOMAIN: &'static str = "tally/block";

    /// The id of a block given its bytes. A block's bytes are framed as a header (its length
    /// in 4 little-endian bytes, then the header) and a body; the id binds the digest of each,
    /// so whoever holds a header and its body's digest can check a commit certificate without
    /// the body, which carries every party's transactions. Bytes without that frame are
    /// hashed whole under another domain, so no framed block shares their id.
    pub fn of(block: &[u8]) -> BlockHash {
        match split_block(block) {
            Some((header, body)) => BlockHash::of_parts(
                BlockHash::header_digest(header),
                BlockHash::body_digest(body),
            ),
            None => BlockHash(Hash::digest("tally/block-unframed", block)),
        }
    }

    /// The id from a header's bytes' digest and its body's digest.
    pub fn of_parts(header_digest: Hash, body_digest: Hash) -> BlockHash {
        BlockHash(
            HashBuilder::new(Self::DOMAIN)
                .update(&header_digest.0)
                .update(&body_digest.0)
                .finish(),
        )
    }

    pub fn header_digest(header: &[u8]) -> Hash {
        Hash::digest("tally/block-header", header)
    }

    pub fn body_digest(body: &[u8]) -> Hash {
        Hash::digest("tally/block-body", body)
    }
}

/// A block's bytes split into its header and its body, if they carry the frame
/// [`BlockHash::of`] describes.
pub fn split_block(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// Frames a block's header and body as [`BlockHash::of`] reads them.
pub fn frame_block(header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + header.len() + body.len());
    // A header is a few hundred bytes; a block is bounded far below 4 GiB.
    out.extend_from_slice(
        &u32::try_from(header.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(header);
    out.extend_from_slice(body);
    out
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "h{}", self.0)
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

impl fmt::Display for ValidatorIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for ValidatorIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl fmt::Display for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Block({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Height(u64::MAX).next(), None);
        assert_eq!(Height(1).next(), Some(Height(2)));
        assert_eq!(Height(u64::MAX - 1).checked_add(2), None);
        assert_eq!(Round(u32::MAX).next(), None);
        assert_eq!(Round(u32::MAX - 1).saturating_add(5), Round(u32::MAX));
    }

    #[test]
    fn block_hash_depends_on_bytes() {
        assert_ne!(BlockHash::of(b"a"), BlockHash::of(b"b"));
        assert_eq!(BlockHash::of(b"a"), BlockHash::of(b"a"));
    }
}
