//! Governance of the validator set. The ledger has no transaction for it (the contracts know
//! nothing of consensus), so a change travels in the block beside the transactions: a
//! [`ValidatorUpdate`] names the whole new set and the height it takes effect at, and carries
//! signatures of validators of the set in force at the block's height holding more than 2/3
//! of its power. Every node checks it before voting for the block and schedules the new set
//! when the block is executed, so it takes effect at the same height everywhere, without a
//! restart.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use tally_consensus::{Validator, ValidatorSet};
use tally_crypto::{PublicKey, Signature, SigningKey};

/// The domain tag validator-update signatures are made under.
pub const VALIDATOR_UPDATE_DOMAIN: &str = "tally-validator-update";
/// The earliest a change may take effect, in heights after the block carrying it: consensus
/// buffers messages up to two heights ahead, verified against the sets known then, so a set
/// must be known before its height can be buffered.
pub const UPDATE_DELAY_HEIGHTS_MIN: u64 = 3;
/// The latest a change may take effect, in heights after the block carrying it.
pub const UPDATE_DELAY_HEIGHTS_MAX: u64 = 100_000;
/// The most updates one block may carry.
pub const BLOCK_VALIDATOR_UPDATES_MAX: usize = 4;

/// What the signers agree to: from `effective_height` on, `validators` (in index order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorChange {
    pub effective_height: u64,
    pub validators: Vec<Validator>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UpdateSignature {
    pub key: PublicKey,
    pub signature: Signature,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorUpdate {
    pub change: ValidatorChange,
    /// Sorted by key, no key twice.
    pub signatures: Vec<UpdateSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error("the new set is invalid: {0}")]
    BadSet(String),
    #[error("takes effect at {at}; must be within [{min}, {max}]")]
    BadHeight { at: u64, min: u64, max: u64 },
    #[error("signatures not sorted by key or repeated")]
    NotCanonical,
    #[error("signer {0} is not a validator of the current set")]
    NotAValidator(PublicKey),
    #[error("a signature does not verify")]
    BadSignature,
    #[error("signers hold {power} of the power; more than 2/3 needs {quorum}")]
    InsufficientPower { power: u64, quorum: u64 },
    #[error("too many validator-set changes wait for a block here; retry later")]
    Busy,
}

impl UpdateError {
    /// The stable code the API answers with.
    pub fn code(&self) -> &'static str {
        match self {
            UpdateError::BadSet(_) => "BAD_VALIDATOR_SET",
            UpdateError::BadHeight { .. } => "BAD_EFFECTIVE_HEIGHT",
            UpdateError::NotCanonical => "NOT_CANONICAL",
            UpdateError::NotAValidator(_) => "NOT_A_VALIDATOR",
            UpdateError::BadSignature => "BAD_SIGNATURE",
            UpdateError::InsufficientPower { .. } => "INSUFFICIENT_POWER",
            UpdateError::Busy => "BUSY",
        }
    }
}

impl ValidatorChange {
    pub fn signing_bytes(&self) -> Vec<u8> {
        tally_consensus::encode(self)
    }

    /// The current validators plus `added`, or with its power changed if already there.
    pub fn with(current: &ValidatorSet, added: Validator, effective_height: u64) -> Self {
        let mut validators = current.validators().to_vec();
        match validators
            .iter_mut()
            .find(|v| v.public_key == added.public_key)
        {
            Some(v) => v.power = added.power,
            None => validators.push(added),
        }
        ValidatorChange {
            effective_height,
            validators,
        }
    }

    /// The current validators without `removed`.
    pub fn without(current: &ValidatorSet, removed: &PublicKey, effective_height: u64) -> Self {
        ValidatorChange {
            effective_height,
            validators: current
                .validators()
                .iter()
                .filter(|v| v.public_key != *removed)
                .copied()
                .collect(),
        }
    }
}

impl ValidatorUpdate {
    /// Signed by each key (the caller chooses keys holding more than 2/3 of the power).
    pub fn sign(change: ValidatorChange, chain_id: &str, keys: &[&SigningKey]) -> Self {
        let bytes = change.signing_bytes();
        let mut signatures: Vec<UpdateSignature> = keys
            .iter()
            .map(|k| UpdateSignature {
                key: k.public_key(),
                signature: k.sign(VALIDATOR_UPDATE_DOMAIN, chain_id, &bytes),
            })
            .collect();
        signatures.sort();
        signatures.dedup_by_key(|s| s.key);
        ValidatorUpdate { change, signatures }
    }

    /// Checks the update for a block at `height`, under `current` (the set in force there),
    /// when the last scheduled change takes effect at `last_scheduled`. Returns the new set.
    pub fn verify(
        &self,
        chain_id: &str,
        height: u64,
        last_scheduled: u64,
        current: &ValidatorSet,
    ) -> Result<ValidatorSet, UpdateError> {
        let set = ValidatorSet::new(self.change.validators.clone())
            .map_err(|e| UpdateError::BadSet(e.to_string()))?;
        let min = height
            .saturating_add(UPDATE_DELAY_HEIGHTS_MIN)
            .max(last_scheduled.saturating_add(1));
        let max = height.saturating_add(UPDATE_DELAY_HEIGHTS_MAX);
        let at = self.change.effective_height;
        if at < min || at > max {
            return Err(UpdateError::BadHeight { at, min, max });
        }
        let keys: Vec<PublicKey> = self.signatures.iter().map(|s| s.key).collect();
        if !keys.windows(2).all(|w| matches!(w, [a, b] if a < b)) {
            return Err(UpdateError::NotCanonical);
        }
        let bytes = self.change.signing_bytes();
        let mut power = 0u64;
        let mut counted = BTreeSet::new();
        for s in &self.signatures {
            let index = current
                .index_of(&s.key)
                .ok_or(UpdateError::NotAValidator(s.key))?;
            tally_crypto::verify(
                &s.key,
                VALIDATOR_UPDATE_DOMAIN,
                chain_id,
                &bytes,
                &s.signature,
            )
            .map_err(|_| UpdateError::BadSignature)?;
            if counted.insert(index) {
                power = power.saturating_add(current.power(index));
            }
        }
        let quorum = current.quorum_power();
        if power < quorum {
            return Err(UpdateError::InsufficientPower { power, quorum });
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<SigningKey> {
        (1..=4u8).map(|i| SigningKey::from_seed([i; 32])).collect()
    }

    fn set(keys: &[SigningKey]) -> Result<ValidatorSet, tally_consensus::Error> {
        ValidatorSet::new(
            keys.iter()
                .map(|k| Validator {
                    public_key: k.public_key(),
                    power: 1,
                })
                .collect(),
        )
    }

    #[test]
    fn needs_more_than_two_thirds_and_a_later_height() -> Result<(), Box<dyn std::error::Error>> {
        let keys = keys();
        let current = set(&keys)?;
        let fifth = SigningKey::from_seed([5; 32]).public_key();
        let change = ValidatorChange::with(
            &current,
            Validator {
                public_key: fifth,
                power: 1,
            },
            20,
        );
        let refs: Vec<&SigningKey> = keys.iter().collect();
        let three = ValidatorUpdate::sign(change.clone(), "c", refs.get(..3).unwrap_or(&[]));
        assert_eq!(three.verify("c", 10, 0, &current)?.len(), 5);
        let two = ValidatorUpdate::sign(change.clone(), "c", refs.get(..2).unwrap_or(&[]));
        assert!(matches!(
            two.verify("c", 10, 0, &current),
            Err(UpdateError::InsufficientPower { .. })
        ));
        assert!(matches!(
            three.verify("other-chain", 10, 0, &current),
            Err(UpdateError::BadSignature)
        ));
        assert!(matches!(
            three.verify("c", 18, 0, &current),
            Err(UpdateError::BadHeight { .. })
        ));
        assert!(matches!(
            three.verify("c", 10, 20, &current),
            Err(UpdateError::BadHeight { .. })
        ));
        let outsider = SigningKey::from_seed([7; 32]);
        let with_outsider = ValidatorUpdate::sign(change, "c", &[&outsider]);
        assert!(matches!(
            with_outsider.verify("c", 10, 0, &current),
            Err(UpdateError::NotAValidator(_))
        ));
        Ok(())
    }
}
