//! Validator sets: public keys with voting power, quorum arithmetic, proposer rotation, and
//! the schedule of sets by the height they take effect at.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tally_crypto::{Hash, HashBuilder, PublicKey};

use crate::Error;
use crate::types::{Height, Round, ValidatorIndex};

/// Most validators in one set.
pub const VALIDATORS_MAX: usize = 256;
/// Most total voting power of one set. Bounded so quorum arithmetic cannot overflow and the
/// proposer cycle (one slot per unit of power) is precomputed in bounded memory.
pub const POWER_TOTAL_MAX: u64 = 1 << 16;

/// One validator: its key and its voting power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    pub public_key: PublicKey,
    pub power: u64,
}

/// The validators in force at a height. A validator's [`ValidatorIndex`] is its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    power_total: u64,
    /// The proposer for each slot of the rotation cycle (length `power_total`).
    rotation: Vec<ValidatorIndex>,
    id: Hash,
}

impl ValidatorSet {
    /// A set from its validators, in index order. Refuses an empty or oversized set, zero
    /// power, total power above [`POWER_TOTAL_MAX`], and invalid or duplicate keys.
    pub fn new(validators: Vec<Validator>) -> Result<ValidatorSet, Error> {
        if validators.is_empty() || validators.len() > VALIDATORS_MAX {
            return Err(Error::ValidatorCount {
                max: VALIDATORS_MAX,
            });
        }
        let mut power_total: u64 = 0;
        let mut keys = BTreeSet::new();
        let mut id = HashBuilder::new("tally/validator-set");
        for (i, v) in validators.iter().enumerate() {
            let index = ValidatorIndex(i as u32);
            if v.power == 0 {
                return Err(Error::ZeroPower(index));
            }
            if !v.public_key.is_valid() || !keys.insert(v.public_key) {
                return Err(Error::BadValidatorKey(index));
            }
            power_total = power_total
                .checked_add(v.power)
                .filter(|p| *p <= POWER_TOTAL_MAX)
                .ok_or(Error::PowerTooLarge {
                    max: POWER_TOTAL_MAX,
                })?;
            id = id.update(&v.public_key.0).update(&v.power.to_le_bytes());
        }
        let rotation = rotation(&validators, power_total);
        Ok(ValidatorSet {
            validators,
            power_total,
            rotation,
            id: id.finish(),
        })
    }

    /// A hash of the keys and powers: names this exact set.
    pub fn id(&self) -> Hash {
        self.id
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    pub fn get(&self, index: ValidatorIndex) -> Option<&Validator> {
        self.validators.get(index.as_usize())
    }

    /// The index of the validator holding `key`, if it is in the set.
    pub fn index_of(&self, key: &PublicKey) -> Option<ValidatorIndex> {
        self.validators
            .iter()
            .position(|v| v.public_key == *key)
            .map(|i| ValidatorIndex(i as u32))
    }

    /// The voting power of `index`, or 0 if it is not in the set.
    pub fn power(&self, index: ValidatorIndex) -> u64 {
        self.get(index).map_or(0, |v| v.power)
    }

    pub fn power_total(&self) -> u64 {
        self.power_total
    }

    /// The least power that is more than 2/3 of the total (2f+1 when every power is 1).
    pub fn quorum_power(&self) -> u64 {
        self.power_total * 2 / 3 + 1
    }

    /// The least power that is more than 1/3 of the total (f+1 when every power is 1): at
    /// least one honest validator is among any holders of this much power.
    pub fn one_third_power(&self) -> u64 {
        self.power_total / 3 + 1
    }

    /// The proposer of `round` at `height`: a weighted round robin in which each validator
    /// proposes in proportion to its power, interleaved rather than in runs (the smooth
    /// weighted round robin of CometBFT's proposer priority, without its state: the cycle has
    /// one slot per unit of power and is computed once per set).
    pub fn proposer(&self, height: Height, round: Round) -> ValidatorIndex {
        let slot = (u128::from(height.0) + u128::from(round.0)) % u128::from(self.power_total);
        // The rotation has exactly `power_total` slots, so `slot` is in range.
        self.rotation
            .get(slot as usize)
            .copied()
            .unwrap_or(ValidatorIndex(0))
    }
}

/// Smooth weighted round robin over one full cycle: every step each validator's priority grows
/// by its power, the highest (lowest index on ties) is chosen and pays the total. After
/// `power_total` steps every validator was chosen exactly `power` times.
fn rotation(validators: &[Validator], power_total: u64) -> Vec<ValidatorIndex> {
    let mut priority: Vec<i64> = vec![0; validators.len()];
    let mut cycle = Vec::with_capacity(power_total as usize);
    for _ in 0..power_total {
        let mut best = 0usize;
        let mut best_priority = i64::MIN;
        for (i, (p, v)) in priority.iter_mut().zip(validators).enumerate() {
            *p += v.power as i64;
            if *p > best_priority {
                best = i;
                best_priority = *p;
            }
        }
        if let Some(p) = priority.get_mut(best) {
            *p -= power_total as i64;
        }
        cycle.push(ValidatorIndex(best as u32));
    }
    cycle
}

/// Which validator set is in force at each height: a genesis set and later changes, each
/// taking effect at a named height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorSets {
    by_start: BTreeMap<Height, ValidatorSet>,
}

impl ValidatorSets {
    /// `genesis` is in force from height 0 until the first scheduled change.
    pub fn new(genesis: ValidatorSet) -> ValidatorSets {
        ValidatorSets {
            by_start: BTreeMap::from([(Height(0), genesis)]),
        }
    }

    /// `set` takes effect at height `at`, which must be after every change already scheduled.
    pub fn schedule(&mut self, at: Height, set: ValidatorSet) -> Result<(), Error> {
        let last = self
            .by_start
            .keys()
            .next_back()
            .copied()
            .unwrap_or_default();
        if at <= last {
            return Err(Error::ScheduleOrder { at, last });
        }
        self.by_start.insert(at, set);
        Ok(())
    }

    /// The set in force at `height`.
    pub fn at(&self, height: Height) -> Option<&ValidatorSet> {
        self.by_start.range(..=height).next_back().map(|(_, s)| s)
    }

    /// The set in force at `height`, or an error naming the height.
    pub fn require(&self, height: Height) -> Result<&ValidatorSet, Error> {
        self.at(height).ok_or(Error::NoValidatorSet(height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_crypto::SigningKey;

    pub(crate) fn set_with_powers(powers: &[u64]) -> ValidatorSet {
        ValidatorSet::new(
            powers
                .iter()
                .enumerate()
                .map(|(i, p)| Validator {
                    public_key: SigningKey::from_seed([i as u8 + 1; 32]).public_key(),
                    power: *p,
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn quorum_is_more_than_two_thirds() {
        assert_eq!(set_with_powers(&[1; 4]).quorum_power(), 3);
        assert_eq!(set_with_powers(&[1; 7]).quorum_power(), 5);
        assert_eq!(set_with_powers(&[1; 10]).quorum_power(), 7);
        assert_eq!(set_with_powers(&[1; 3]).quorum_power(), 3);
        assert_eq!(set_with_powers(&[1; 4]).one_third_power(), 2);
        assert_eq!(set_with_powers(&[1; 10]).one_third_power(), 4);
        // 2/3 of 6 is 4: a quorum needs 5.
        assert_eq!(set_with_powers(&[2, 2, 2]).quorum_power(), 5);
    }

    #[test]
    fn proposer_rotation_is_weighted_and_interleaved() {
        let set = set_with_powers(&[3, 1, 1]);
        let seq: Vec<u32> = (0..5)
            .map(|h| set.proposer(Height(h), Round(0)).0)
            .collect();
        let count0 = seq.iter().filter(|i| **i == 0).count();
        assert_eq!(count0, 3, "{seq:?}");
        assert_ne!(
            seq.get(..3),
            Some(&[0u32, 0, 0][..]),
            "interleaved: {seq:?}"
        );
        // Rounds move through the same rotation.
        assert_eq!(
            set.proposer(Height(1), Round(1)),
            set.proposer(Height(2), Round(0))
        );
        let equal = set_with_powers(&[1; 4]);
        let all: BTreeSet<u32> = (0..4)
            .map(|r| equal.proposer(Height(9), Round(r)).0)
            .collect();
        assert_eq!(all.len(), 4);
    }

    #[test]
    fn refuses_bad_sets() {
        assert!(ValidatorSet::new(vec![]).is_err());
        let k = SigningKey::from_seed([1; 32]).public_key();
        let v = |power| Validator {
            public_key: k,
            power,
        };
        assert_eq!(
            ValidatorSet::new(vec![v(0)]),
            Err(Error::ZeroPower(ValidatorIndex(0)))
        );
        assert_eq!(
            ValidatorSet::new(vec![v(1), v(1)]),
            Err(Error::BadValidatorKey(ValidatorIndex(1)))
        );
        assert!(matches!(
            ValidatorSet::new(vec![v(POWER_TOTAL_MAX + 1)]),
            Err(Error::PowerTooLarge { .. })
        ));
        let weak = Validator {
            public_key: PublicKey([0; 32]),
            power: 1,
        };
        assert!(ValidatorSet::new(vec![weak]).is_err());
    }

    #[test]
    fn schedule_picks_the_set_in_force() {
        let a = set_with_powers(&[1; 4]);
        let b = set_with_powers(&[1, 1, 1, 2]);
        let mut sets = ValidatorSets::new(a.clone());
        sets.schedule(Height(10), b.clone()).unwrap();
        assert_eq!(sets.at(Height(9)), Some(&a));
        assert_eq!(sets.at(Height(10)), Some(&b));
        assert_eq!(sets.at(Height(1000)), Some(&b));
        assert!(sets.schedule(Height(10), a.clone()).is_err());
        assert!(sets.schedule(Height(5), a).is_err());
        assert_ne!(
            sets.at(Height(9)).map(|s| s.id()),
            sets.at(Height(10)).map(|s| s.id())
        );
    }
}
