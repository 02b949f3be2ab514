//! The Byzantine validator itself, compiled only with the `test-faults` feature (see the
//! parent module).
//!
//! The conflicting messages are signed with the validator key directly, past the signer and
//! its store: the signer would (rightly) refuse them.

use tally_consensus::{
    BlockHash, DOMAIN_PROPOSAL, Message, Proposal, SignedProposal, SignedVote, Vote,
};
use tally_contracts::{AccountId, Party, SignedTransaction, Transaction, TransferId, TxKind};
use tally_crypto::{Hash, PublicKey, Signature, SigningKey};
use tracing::warn;

use super::Recipients;
use crate::block::{Block, txs_root};
use crate::config::{Byzantine, InvalidBlock};

/// A validator that misbehaves as `byzantine` says.
pub struct Faults {
    byzantine: Byzantine,
    key: SigningKey,
    chain_id: String,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("byzantine", &self.byzantine)
            .finish_non_exhaustive()
    }
}

impl Faults {
    pub fn new(byzantine: Byzantine, key: SigningKey, chain_id: &str) -> Faults {
        warn!(
            ?byzantine,
            "TEST FAULT MODE: this validator is Byzantine on purpose"
        );
        Faults {
            byzantine,
            key,
            chain_id: chain_id.to_string(),
        }
    }

    /// What goes out, and to whom, in place of `message`, which consensus signed through its
    /// signer and would send to every validator; `others` are the other validators' keys.
    ///
    /// The equivocating proposer sends its two blocks to the two halves of the validators
    /// first, so each half sees a different block first, then the other block to each half,
    /// so every honest node holds the signed pair: the evidence.
    pub fn outgoing(&self, message: Message, others: &[PublicKey]) -> Vec<(Recipients, Message)> {
        match (self.byzantine, message) {
            (Byzantine::Silent, _) => Vec::new(),
            (Byzantine::DoubleVoter, Message::Vote(vote)) => {
                let other = self.conflicting_vote(vote);
                vec![
                    (Recipients::All, Message::Vote(vote)),
                    (Recipients::All, Message::Vote(other)),
                ]
            }
            (Byzantine::EquivocatingProposer, Message::Proposal { proposal, block }) => {
                let first = Message::Proposal { proposal, block };
                let Message::Proposal { block, .. } = &first else {
                    return vec![(Recipients::All, first)];
                };
                let Some(second) = self.conflicting_proposal(proposal, block) else {
                    return vec![(Recipients::All, first)];
                };
                let (even, odd): (Vec<_>, Vec<_>) =
                    others.iter().enumerate().partition(|(i, _)| i % 2 == 0);
                let even: Vec<PublicKey> = even.into_iter().map(|(_, k)| *k).collect();
                let odd: Vec<PublicKey> = odd.into_iter().map(|(_, k)| *k).collect();
                vec![
                    (Recipients::Only(even.clone()), first.clone()),
                    (Recipients::Only(odd.clone()), second.clone()),
                    (Recipients::Only(even), second),
                    (Recipients::Only(odd), first),
                ]
            }
            (_, message) => vec![(Recipients::All, message)],
        }
    }

    /// The block this node proposes in place of `block` (encoded), which it built honestly.
    pub fn proposed_block(&self, block: Vec<u8>) -> Vec<u8> {
        let Byzantine::InvalidBlocks(kind) = self.byzantine else {
            return block;
        };
        let Ok(mut decoded) = Block::decode(&block) else {
            return block;
        };
        match kind {
            InvalidBlock::WrongStateRoot => {
                decoded.header.state_root = Hash::digest("tally/fault", b"wrong state root");
            }
            InvalidBlock::BadSignature => {
                decoded
                    .txs
                    .push(self.badly_signed_transaction(decoded.header.height).into());
                decoded.header.txs_root = txs_root(&decoded.txs);
            }
        }
        decoded.encode()
    }

    /// The same vote for another value: nil for a block, a made-up block for nil.
    fn conflicting_vote(&self, signed: SignedVote) -> SignedVote {
        let mut vote: Vote = signed.vote;
        vote.block = match vote.block {
            Some(_) => None,
            None => Some(BlockHash(Hash::digest(
                "tally/fault",
                &vote.height.0.to_be_bytes(),
            ))),
        };
        let signature = self
            .key
            .sign(vote.kind.domain(), &self.chain_id, &vote.signing_bytes());
        SignedVote { vote, signature }
    }

    /// A second proposal for the same height and round: the same block one millisecond
    /// later (a valid block, so honest nodes may vote for either).
    fn conflicting_proposal(&self, signed: SignedProposal, block: &[u8]) -> Option<Message> {
        let mut other = Block::decode(block).ok()?;
        other.header.time_ms = other.header.time_ms.checked_add(1)?;
        let bytes = other.encode();
        let proposal = Proposal {
            block: BlockHash::of(&bytes),
            ..signed.proposal
        };
        let signature = self
            .key
            .sign(DOMAIN_PROPOSAL, &self.chain_id, &proposal.signing_bytes());
        Some(Message::Proposal {
            proposal: SignedProposal {
                proposal,
                signature,
            },
            block: bytes,
        })
    }

    /// A well-formed transfer whose signature does not verify.
    fn badly_signed_transaction(&self, height: u64) -> SignedTransaction {
        let mut signed = Transaction {
            chain_id: self.chain_id.clone(),
            sender: Party::Account(AccountId(u128::from(height))),
            nonce: 0,
            kind: TxKind::Transfer {
                id: TransferId(u128::from(height)),
                to: AccountId(1),
                amount: 1,
                memo: tally_contracts::Memo::NONE,
            },
        }
        .sign(&[&self.key]);
        for s in &mut signed.signatures {
            let mut bytes = s.signature.0;
            bytes[0] ^= 1;
            s.signature = Signature(bytes);
        }
        signed
    }
}
