//! Equivocation evidence: two conflicting messages signed by one validator for the same
//! height, round and kind. Anyone can check it against the validator set; the node gossips it
//! and puts it on chain.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::message::{SignedProposal, SignedVote, VoteKind};
use crate::types::{Height, Round, ValidatorIndex};
use crate::validators::ValidatorSet;

/// Which kind of message a validator signed twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EquivocationKind {
    Proposal,
    Prevote,
    Precommit,
}

/// Two conflicting signed messages from one validator. Built only through
/// [`Evidence::votes`] and [`Evidence::proposals`], which put the pair in a canonical order so
/// the same equivocation seen twice is the same evidence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Evidence {
    ConflictingVotes {
        first: SignedVote,
        second: SignedVote,
    },
    ConflictingProposals {
        first: SignedProposal,
        second: SignedProposal,
    },
}

impl Evidence {
    /// Evidence from two votes, or `None` if they do not conflict: same validator, kind,
    /// height and round, different blocks.
    pub fn votes(a: SignedVote, b: SignedVote) -> Option<Evidence> {
        let (x, y) = (a.vote, b.vote);
        let conflict = x.validator == y.validator
            && x.kind == y.kind
            && x.height == y.height
            && x.round == y.round
            && x.block != y.block;
        conflict.then(|| {
            let (first, second) = if a <= b { (a, b) } else { (b, a) };
            Evidence::ConflictingVotes { first, second }
        })
    }

    /// Evidence from two proposals, or `None` if they do not conflict: same proposer, height
    /// and round, different block or proof-of-lock round.
    pub fn proposals(a: SignedProposal, b: SignedProposal) -> Option<Evidence> {
        let (x, y) = (a.proposal, b.proposal);
        let conflict = x.proposer == y.proposer
            && x.height == y.height
            && x.round == y.round
            && (x.block, x.pol_round) != (y.block, y.pol_round);
        conflict.then(|| {
            let (first, second) = if a <= b { (a, b) } else { (b, a) };
            Evidence::ConflictingProposals { first, second }
        })
    }

    /// The validator that equivocated.
    pub fn validator(&self) -> ValidatorIndex {
        match self {
            Evidence::ConflictingVotes { first, .. } => first.vote.validator,
            Evidence::ConflictingProposals { first, .. } => first.proposal.proposer,
        }
    }

    pub fn height(&self) -> Height {
        match self {
            Evidence::ConflictingVotes { first, .. } => first.vote.height,
            Evidence::ConflictingProposals { first, .. } => first.proposal.height,
        }
    }

    pub fn round(&self) -> Round {
        match self {
            Evidence::ConflictingVotes { first, .. } => first.vote.round,
            Evidence::ConflictingProposals { first, .. } => first.proposal.round,
        }
    }

    pub fn kind(&self) -> EquivocationKind {
        match self {
            Evidence::ConflictingVotes { first, .. } => match first.vote.kind {
                VoteKind::Prevote => EquivocationKind::Prevote,
                VoteKind::Precommit => EquivocationKind::Precommit,
            },
            Evidence::ConflictingProposals { .. } => EquivocationKind::Proposal,
        }
    }

    /// Checks that the two messages conflict and both signatures are the validator's, with
    /// `set` the set in force at the evidence's height.
    pub fn verify(&self, set: &ValidatorSet, chain_id: &str) -> Result<(), Error> {
        let rebuilt = match self {
            Evidence::ConflictingVotes { first, second } => Evidence::votes(*first, *second),
            Evidence::ConflictingProposals { first, second } => {
                Evidence::proposals(*first, *second)
            }
        };
        // Also refuses a pair that conflicts but is not in canonical order: one equivocation
        // has one encoding.
        if rebuilt.as_ref() != Some(self) {
            return Err(Error::NotConflicting);
        }
        let key = set
            .get(self.validator())
            .map(|v| v.public_key)
            .ok_or(Error::UnknownValidator(self.validator()))?;
        match self {
            Evidence::ConflictingVotes { first, second } => {
                first.verify_signature(&key, chain_id)?;
                second.verify_signature(&key, chain_id)
            }
            Evidence::ConflictingProposals { first, second } => {
                first.verify_signature(&key, chain_id)?;
                second.verify_signature(&key, chain_id)
            }
        }
    }
}
