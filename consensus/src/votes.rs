//! The votes of one height, by round: who voted what, the power behind each block, and
//! conflicting votes turned into evidence.
//!
//! As in the paper, a vote counts toward the block it names: a validator that equivocates
//! counts toward each block it voted for (up to [`VOTES_PER_SLOT_MAX`] of them), but only once
//! toward "any" (the 2f+1 PREVOTE(*) of L34 and L47) and toward f+1 (L55). Counting only the
//! first vote would let an equivocator show different quorums to different nodes forever and
//! stall a height; counting each is safe because quorums of 2f+1 intersect in f+1 validators,
//! at least one honest.

use std::collections::{BTreeMap, BTreeSet};

use crate::evidence::Evidence;
use crate::message::{SignedVote, VoteKind};
use crate::types::{BlockHash, Round, ValidatorIndex};

/// Most distinct votes counted from one validator for one round and kind (one honest vote,
/// the rest equivocation).
pub(crate) const VOTES_PER_SLOT_MAX: usize = 3;

/// The votes of one kind in one round.
#[derive(Debug, Default)]
struct Tally {
    votes: BTreeMap<ValidatorIndex, Vec<SignedVote>>,
    power_by_block: BTreeMap<Option<BlockHash>, u64>,
    power_total: u64,
}

#[derive(Debug, Default)]
struct RoundVotes {
    prevotes: Tally,
    precommits: Tally,
    /// Power of the distinct validators with any vote in this round (the f+1 rule, L55).
    signers: BTreeMap<ValidatorIndex, u64>,
    signer_power: u64,
}

/// What adding a vote did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Added {
    Counted,
    /// Already had exactly this vote.
    Duplicate,
    /// A different vote from the same validator for the same slot: not counted. `Some` the
    /// first time this validator equivocates in this round and kind.
    Conflict(Option<Box<Evidence>>),
}

/// All votes of one height.
#[derive(Debug, Default)]
pub(crate) struct VoteKeeper {
    rounds: BTreeMap<Round, RoundVotes>,
    reported: BTreeSet<(ValidatorIndex, Round, VoteKind)>,
}

impl VoteKeeper {
    /// Adds a verified vote of the keeper's height, from a validator holding `power`.
    pub(crate) fn add(&mut self, vote: SignedVote, power: u64) -> Added {
        let v = vote.vote;
        let round = self.rounds.entry(v.round).or_default();
        let tally = match v.kind {
            VoteKind::Prevote => &mut round.prevotes,
            VoteKind::Precommit => &mut round.precommits,
        };
        let cast = tally.votes.entry(v.validator).or_default();
        if cast.iter().any(|c| c.vote.block == v.block) {
            return Added::Duplicate;
        }
        let first = cast.first().copied();
        if cast.len() < VOTES_PER_SLOT_MAX {
            cast.push(vote);
            *tally.power_by_block.entry(v.block).or_default() += power;
        }
        let Some(first) = first else {
            tally.power_total += power;
            if round.signers.insert(v.validator, power).is_none() {
                round.signer_power += power;
            }
            return Added::Counted;
        };
        let evidence = if self.reported.insert((v.validator, v.round, v.kind)) {
            Evidence::votes(first, vote).map(Box::new)
        } else {
            None
        };
        Added::Conflict(evidence)
    }

    fn tally(&self, round: Round, kind: VoteKind) -> Option<&Tally> {
        self.rounds.get(&round).map(|r| match kind {
            VoteKind::Prevote => &r.prevotes,
            VoteKind::Precommit => &r.precommits,
        })
    }

    /// Power of the votes of `kind` in `round` for `block` (`None`: nil).
    pub(crate) fn power_for(&self, round: Round, kind: VoteKind, block: Option<BlockHash>) -> u64 {
        self.tally(round, kind)
            .and_then(|t| t.power_by_block.get(&block).copied())
            .unwrap_or(0)
    }

    /// Power of all votes of `kind` in `round`, whatever they are for.
    pub(crate) fn power_any(&self, round: Round, kind: VoteKind) -> u64 {
        self.tally(round, kind).map_or(0, |t| t.power_total)
    }

    /// Power of the distinct validators that voted in `round`.
    pub(crate) fn signer_power(&self, round: Round) -> u64 {
        self.rounds.get(&round).map_or(0, |r| r.signer_power)
    }

    /// Rounds with any vote, and for each, the blocks (not nil) with precommit power.
    pub(crate) fn precommitted_blocks(&self) -> Vec<(Round, BlockHash, u64)> {
        self.rounds
            .iter()
            .flat_map(|(round, r)| {
                r.precommits
                    .power_by_block
                    .iter()
                    .filter_map(move |(block, power)| block.map(|b| (*round, b, *power)))
            })
            .collect()
    }

    /// Rounds above `round` that have votes, highest first.
    pub(crate) fn rounds_above(&self, round: Round) -> Vec<Round> {
        self.rounds
            .range(round.saturating_add(1)..)
            .map(|(r, _)| *r)
            .filter(|r| *r > round)
            .rev()
            .collect()
    }

    /// The precommits of `round`.
    pub(crate) fn precommits(&self, round: Round) -> impl Iterator<Item = &SignedVote> {
        self.rounds
            .get(&round)
            .into_iter()
            .flat_map(|r| r.precommits.votes.values().flatten())
    }

    /// The prevotes of `round` for `block`: a proof of lock, when they are a quorum.
    pub(crate) fn prevotes_for(&self, round: Round, block: BlockHash) -> Vec<SignedVote> {
        self.rounds
            .get(&round)
            .into_iter()
            .flat_map(|r| r.prevotes.votes.values().flatten())
            .filter(|v| v.vote.block == Some(block))
            .copied()
            .collect()
    }

    /// The validators with a vote (prevote or precommit) for `block` in `round`: each
    /// checked the block, so each holds it.
    pub(crate) fn holders_of(&self, round: Round, block: BlockHash) -> BTreeSet<ValidatorIndex> {
        self.rounds
            .get(&round)
            .into_iter()
            .flat_map(|r| [&r.prevotes, &r.precommits])
            .flat_map(|tally| tally.votes.values().flatten())
            .filter(|v| v.vote.block == Some(block))
            .map(|v| v.vote.validator)
            .collect()
    }

    /// The votes a validator cast in `round`.
    pub(crate) fn votes_of(&self, round: Round, validator: ValidatorIndex) -> Vec<SignedVote> {
        self.rounds
            .get(&round)
            .into_iter()
            .flat_map(|r| {
                [
                    r.prevotes.votes.get(&validator),
                    r.precommits.votes.get(&validator),
                ]
            })
            .flatten()
            .flatten()
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Vote;
    use crate::types::Height;
    use tally_crypto::Signature;

    fn vote(kind: VoteKind, round: u32, block: Option<u8>, validator: u32) -> SignedVote {
        SignedVote {
            vote: Vote {
                kind,
                height: Height(1),
                round: Round(round),
                block: block.map(|b| BlockHash::of(&[b])),
                validator: ValidatorIndex(validator),
            },
            signature: Signature([validator as u8; 64]),
        }
    }

    #[test]
    fn counts_power_once_per_validator_and_reports_conflicts_once() {
        let mut k = VoteKeeper::default();
        assert_eq!(
            k.add(vote(VoteKind::Prevote, 0, Some(1), 0), 2),
            Added::Counted
        );
        assert_eq!(
            k.add(vote(VoteKind::Prevote, 0, Some(1), 0), 2),
            Added::Duplicate
        );
        let Added::Conflict(Some(e)) = k.add(vote(VoteKind::Prevote, 0, None, 0), 2) else {
            panic!("expected evidence")
        };
        assert_eq!(e.validator(), ValidatorIndex(0));
        assert_eq!(
            k.add(vote(VoteKind::Prevote, 0, Some(3), 0), 2),
            Added::Conflict(None)
        );
        // Beyond the bound, further conflicting votes are not counted.
        assert_eq!(
            k.add(vote(VoteKind::Prevote, 0, Some(4), 0), 2),
            Added::Conflict(None)
        );
        k.add(vote(VoteKind::Prevote, 0, None, 1), 1);
        k.add(vote(VoteKind::Precommit, 0, None, 1), 1);
        let b1 = Some(BlockHash::of(&[1]));
        // The equivocator counts toward each block it voted for ...
        assert_eq!(k.power_for(Round(0), VoteKind::Prevote, b1), 2);
        assert_eq!(k.power_for(Round(0), VoteKind::Prevote, None), 3);
        assert_eq!(
            k.power_for(Round(0), VoteKind::Prevote, Some(BlockHash::of(&[4]))),
            0
        );
        // ... but once toward "any" and toward f+1.
        assert_eq!(k.power_any(Round(0), VoteKind::Prevote), 3);
        assert_eq!(k.signer_power(Round(0)), 3);
        assert_eq!(k.rounds_above(Round(0)), Vec::<Round>::new());
        k.add(vote(VoteKind::Precommit, 5, Some(1), 2), 1);
        assert_eq!(k.rounds_above(Round(0)), vec![Round(5)]);
        assert_eq!(k.precommitted_blocks().len(), 1);
    }
}
