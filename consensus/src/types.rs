//! The counters and ids of consensus, each its own type so a round can never be passed where a
//! height is expected. Arithmetic on them is checked: a counter that would overflow is a bug
//! or an attack, never a wrap-around.

use serde::{Deserialize, Serialize};
use std::fmt;
use tally_crypto::Hash;

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
    /// The domain tag block bytes are hashed under.
    pub const DOMAIN: &'static str = "tally/block";

    /// The id of a block given its bytes.
    pub fn of(block: &[u8]) -> BlockHash {
        BlockHash(Hash::digest(Self::DOMAIN, block))
    }
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
