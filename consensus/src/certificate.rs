//! The commit certificate: precommits from more than 2/3 of the voting power for one block at
//! one height and round. It goes with every decided block; any node, the audit node too,
//! checks it against the validator set in force at the block's height.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use tally_crypto::{BatchVerifier, KeyCache, Signature};

use crate::Error;
use crate::message::{SignedVote, Vote, VoteKind};
use crate::types::{BlockHash, Height, Round, ValidatorIndex};
use crate::validators::{VALIDATORS_MAX, ValidatorSet, ValidatorSets};

/// One validator's precommit signature in a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CommitSignature {
    pub validator: ValidatorIndex,
    pub signature: Signature,
}

/// Proof that `block` was decided at `height`: the precommits of round `round` for it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CommitCertificate {
    pub height: Height,
    pub round: Round,
    pub block: BlockHash,
    pub signatures: Vec<CommitSignature>,
}

impl CommitCertificate {
    /// A certificate from precommits for one block at one height and round, signers in index
    /// order. The caller (the consensus core) passes only precommits it already verified.
    pub(crate) fn from_precommits<'a>(
        height: Height,
        round: Round,
        block: BlockHash,
        precommits: impl IntoIterator<Item = &'a SignedVote>,
    ) -> CommitCertificate {
        let mut signatures: Vec<CommitSignature> = precommits
            .into_iter()
            .filter(|v| {
                v.vote.kind == VoteKind::Precommit
                    && v.vote.height == height
                    && v.vote.round == round
                    && v.vote.block == Some(block)
            })
            .map(|v| CommitSignature {
                validator: v.vote.validator,
                signature: v.signature,
            })
            .collect();
        signatures.sort();
        signatures.dedup_by_key(|s| s.validator);
        CommitCertificate {
            height,
            round,
            block,
            signatures,
        }
    }

    /// The precommit a signer of this certificate signed.
    pub fn precommit(&self, validator: ValidatorIndex) -> Vote {
        Vote {
            kind: VoteKind::Precommit,
            height: self.height,
            round: self.round,
            block: Some(self.block),
            validator,
        }
    }

    /// Checks the certificate against `set`, the set in force at its height: every signer is
    /// in the set and signs once, the signers hold a quorum of power, and every signature is a
    /// valid precommit for this height, round and block (checked in one batch).
    pub fn verify(&self, set: &ValidatorSet, chain_id: &str) -> Result<(), Error> {
        self.verify_with(set, chain_id, &mut KeyCache::new(VALIDATORS_MAX))
    }

    /// [`CommitCertificate::verify`] with a caller-kept cache of parsed keys (parsing and
    /// checking a key costs more than verifying one signature).
    pub fn verify_with(
        &self,
        set: &ValidatorSet,
        chain_id: &str,
        cache: &mut KeyCache,
    ) -> Result<(), Error> {
        if self.signatures.len() > set.len() {
            // Some signer is repeated or unknown; find which below without a huge batch.
            return Err(self.first_structural_error(set).unwrap_or(Error::TooLarge {
                len: self.signatures.len(),
                limit_bytes: set.len(),
            }));
        }
        if let Some(error) = self.first_structural_error(set) {
            return Err(error);
        }
        let power: u64 = self.signatures.iter().map(|s| set.power(s.validator)).sum();
        if power < set.quorum_power() {
            return Err(Error::InsufficientPower {
                power,
                quorum: set.quorum_power(),
            });
        }
        let mut batch = BatchVerifier::with_capacity(self.signatures.len());
        for s in &self.signatures {
            let key = set
                .get(s.validator)
                .map(|v| v.public_key)
                .ok_or(Error::UnknownValidator(s.validator))?;
            let vote = self.precommit(s.validator);
            batch.push(
                key,
                VoteKind::Precommit.domain(),
                chain_id,
                &vote.signing_bytes(),
                s.signature,
            );
        }
        let verdicts = batch.verify(cache);
        for (s, ok) in self.signatures.iter().zip(verdicts) {
            if !ok {
                return Err(Error::BadSignature(s.validator));
            }
        }
        Ok(())
    }

    fn first_structural_error(&self, set: &ValidatorSet) -> Option<Error> {
        let mut seen = BTreeSet::new();
        for s in &self.signatures {
            if set.get(s.validator).is_none() {
                return Some(Error::UnknownValidator(s.validator));
            }
            if !seen.insert(s.validator) {
                return Some(Error::DuplicateSigner(s.validator));
            }
        }
        None
    }

    /// Checks that this certificate decides `block` at `height`, against the set the
    /// schedule has in force at that height.
    pub fn verify_for(
        &self,
        sets: &ValidatorSets,
        chain_id: &str,
        height: Height,
        block: BlockHash,
        cache: &mut KeyCache,
    ) -> Result<(), Error> {
        if self.height != height {
            return Err(Error::WrongHeight {
                expected: height,
                got: self.height,
            });
        }
        if self.block != block {
            return Err(Error::WrongBlock {
                expected: block,
                got: self.block,
            });
        }
        self.verify_with(sets.require(height)?, chain_id, cache)
    }
}
