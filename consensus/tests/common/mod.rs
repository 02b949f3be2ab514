//! A fixture for driving one consensus instance by hand: n validators with fixed keys, and
//! signed, verified messages from any of them.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use tally_consensus::crypto::SigningKey;
use tally_consensus::*;

pub const CHAIN: &str = "tally-test";

pub struct Fixture {
    pub keys: Vec<SigningKey>,
    pub set: ValidatorSet,
    pub sets: ValidatorSets,
}

impl Fixture {
    pub fn new(n: usize) -> Fixture {
        let keys: Vec<SigningKey> = (0..n)
            .map(|i| SigningKey::from_seed([i as u8 + 1; 32]))
            .collect();
        let set = ValidatorSet::new(
            keys.iter()
                .map(|k| Validator {
                    public_key: k.public_key(),
                    power: 1,
                })
                .collect(),
        )
        .unwrap();
        Fixture {
            sets: ValidatorSets::new(set.clone()),
            keys,
            set,
        }
    }

    /// A consensus instance for validator `me` at `height`, with a fresh store.
    pub fn node(&self, me: usize, height: u64) -> Consensus<MemoryStore> {
        self.node_with_store(me, height, MemoryStore::new())
    }

    pub fn node_with_store(
        &self,
        me: usize,
        height: u64,
        store: MemoryStore,
    ) -> Consensus<MemoryStore> {
        let signer = Signer::new(self.keys[me].clone(), CHAIN, store).unwrap();
        Consensus::new(
            Config::new(CHAIN),
            self.sets.clone(),
            Height(height),
            Some(signer),
        )
    }

    pub fn signed_vote(
        &self,
        kind: VoteKind,
        h: u64,
        r: u32,
        block: Option<BlockHash>,
        from: usize,
    ) -> SignedVote {
        let vote = Vote {
            kind,
            height: Height(h),
            round: Round(r),
            block,
            validator: ValidatorIndex(from as u32),
        };
        let signature = self.keys[from].sign(kind.domain(), CHAIN, &vote.signing_bytes());
        SignedVote { vote, signature }
    }

    pub fn vote(
        &self,
        kind: VoteKind,
        h: u64,
        r: u32,
        block: Option<BlockHash>,
        from: usize,
    ) -> Input {
        let m = Message::Vote(self.signed_vote(kind, h, r, block, from));
        Input::Message(verify_message(m, &self.set, CHAIN).unwrap())
    }

    /// The proposal of (h, r) by its rightful proposer.
    pub fn proposal(&self, h: u64, r: u32, block: &[u8], pol_round: Option<u32>) -> Input {
        Input::Message(
            verify_message(
                self.proposal_message(h, r, block, pol_round),
                &self.set,
                CHAIN,
            )
            .unwrap(),
        )
    }

    pub fn proposal_message(
        &self,
        h: u64,
        r: u32,
        block: &[u8],
        pol_round: Option<u32>,
    ) -> Message {
        let proposer = self.set.proposer(Height(h), Round(r));
        let proposal = Proposal {
            height: Height(h),
            round: Round(r),
            pol_round: pol_round.map(Round),
            block: BlockHash::of(block),
            proposer,
        };
        let signature =
            self.keys[proposer.as_usize()].sign(DOMAIN_PROPOSAL, CHAIN, &proposal.signing_bytes());
        Message::Proposal {
            proposal: SignedProposal {
                proposal,
                signature,
            },
            block: block.to_vec(),
        }
    }

    pub fn proposer(&self, h: u64, r: u32) -> usize {
        self.set.proposer(Height(h), Round(r)).as_usize()
    }

    /// A validator that is not the proposer of (h, r).
    pub fn non_proposer(&self, h: u64, r: u32) -> usize {
        (self.proposer(h, r) + 1) % self.keys.len()
    }

    pub fn certificate(
        &self,
        h: u64,
        r: u32,
        block: &[u8],
        signers: &[usize],
    ) -> CommitCertificate {
        let hash = BlockHash::of(block);
        CommitCertificate {
            height: Height(h),
            round: Round(r),
            block: hash,
            signatures: signers
                .iter()
                .map(|i| CommitSignature {
                    validator: ValidatorIndex(*i as u32),
                    signature: self
                        .signed_vote(VoteKind::Precommit, h, r, Some(hash), *i)
                        .signature,
                })
                .collect(),
        }
    }
}

/// The votes this node broadcast among `outputs`.
pub fn broadcast_votes(outputs: &[Output]) -> Vec<Vote> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Broadcast(Message::Vote(v)) => Some(v.vote),
            _ => None,
        })
        .collect()
}

pub fn decisions(outputs: &[Output]) -> Vec<Decision> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Decision(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

pub fn timeouts(outputs: &[Output]) -> Vec<Timeout> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::ScheduleTimeout { timeout, .. } => Some(*timeout),
            _ => None,
        })
        .collect()
}

pub fn evidence(outputs: &[Output]) -> Vec<Evidence> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Evidence(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}
