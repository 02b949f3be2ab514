//! The votes of one height, by round: who voted what, the power behind each block, and
//! conflicting votes turned into evidence. Counts the first vote of each validator per round
//! and kind; a second, different one is equivocation and is not counted.

use std::collections::{BTreeMap, BTreeSet};

use crate::evidence::Evidence;
use crate::message::{SignedVote, VoteKind};
use crate::types::{BlockHash, Round, ValidatorIndex};

/// The votes of one kind in one round.
#[derive(Debug, Default)]
struct Tally {
    votes: BTreeMap<ValidatorIndex, SignedVote>,
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
    Conflict(Option<Evidence>),
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
        if let Some(existing) = tally.votes.get(&v.validator) {
            if *existing == vote {
                return Added::Duplicate;
            }
            let evidence = if self.reported.insert((v.validator, v.round, v.kind)) {
                Evidence::votes(*existing, vote)
            } else {
                None
            };
            return Added::Conflict(evidence);
        }
        tally.votes.insert(v.validator, vote);
        *tally.power_by_block.entry(v.block).or_default() += power;
        tally.power_total += power;
        if round.signers.insert(v.validator, power).is_none() {
            round.signer_power += power;
        }
        Added::Counted
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
            .flat_map(|r| r.precommits.votes.values())
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
        k.add(vote(VoteKind::Prevote, 0, None, 1), 1);
        k.add(vote(VoteKind::Precommit, 0, None, 1), 1);
        let b1 = Some(BlockHash::of(&[1]));
        assert_eq!(k.power_for(Round(0), VoteKind::Prevote, b1), 2);
        assert_eq!(k.power_for(Round(0), VoteKind::Prevote, None), 1);
        assert_eq!(k.power_any(Round(0), VoteKind::Prevote), 3);
        assert_eq!(k.signer_power(Round(0)), 3);
        assert_eq!(k.rounds_above(Round(0)), Vec::<Round>::new());
        k.add(vote(VoteKind::Precommit, 5, Some(1), 2), 1);
        assert_eq!(k.rounds_above(Round(0)), vec![Round(5)]);
        assert_eq!(k.precommitted_blocks().len(), 1);
    }
}
