//! The messages validators exchange, the bytes each signature covers, and their one canonical
//! binary encoding.
//!
//! Every signature covers a domain tag naming the kind of message plus the chain id (see
//! `tally_crypto::signing_message`), so a prevote can never be replayed as a precommit, a
//! proposal, a transaction, or on another chain.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tally_crypto::{PublicKey, Signature};

use crate::Error;
use crate::types::{BlockHash, Height, Round, ValidatorIndex};

/// Most bytes of a block's encoding.
pub const BLOCK_BYTES_MAX: usize = 4 << 20;
/// Most bytes of one encoded [`Message`]: a block plus its proposal's fixed fields.
pub const MESSAGE_BYTES_MAX: usize = BLOCK_BYTES_MAX + 1024;

/// Signature domain of proposals.
pub const DOMAIN_PROPOSAL: &str = "tally/proposal";
/// Signature domain of prevotes.
pub const DOMAIN_PREVOTE: &str = "tally/prevote";
/// Signature domain of precommits.
pub const DOMAIN_PRECOMMIT: &str = "tally/precommit";

/// The two kinds of vote of a Tendermint round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VoteKind {
    Prevote,
    Precommit,
}

impl VoteKind {
    /// The signature domain of this kind of vote.
    pub fn domain(self) -> &'static str {
        match self {
            VoteKind::Prevote => DOMAIN_PREVOTE,
            VoteKind::Precommit => DOMAIN_PRECOMMIT,
        }
    }
}

/// A prevote or precommit: for a block, or for nothing (`None`, "nil").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Vote {
    pub kind: VoteKind,
    pub height: Height,
    pub round: Round,
    pub block: Option<BlockHash>,
    pub validator: ValidatorIndex,
}

impl Vote {
    /// The bytes the signature covers (under [`VoteKind::domain`] and the chain id).
    pub fn signing_bytes(&self) -> Vec<u8> {
        encode(self)
    }
}

/// A vote with its validator's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SignedVote {
    pub vote: Vote,
    pub signature: Signature,
}

impl SignedVote {
    /// Strict check of the signature against `key`.
    pub fn verify_signature(&self, key: &PublicKey, chain_id: &str) -> Result<(), Error> {
        tally_crypto::verify(
            key,
            self.vote.kind.domain(),
            chain_id,
            &self.vote.signing_bytes(),
            &self.signature,
        )
        .map_err(|_| Error::BadSignature(self.vote.validator))
    }
}

/// What a proposer signs: the block's hash, not its bytes, so a signature (and evidence of a
/// conflicting proposal) stays small whatever the block's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    /// The round in which this block got a quorum of prevotes, if it is proposed again
    /// (`validRound` of the paper; `None` is its -1).
    pub pol_round: Option<Round>,
    pub block: BlockHash,
    pub proposer: ValidatorIndex,
}

impl Proposal {
    /// The bytes the signature covers (under [`DOMAIN_PROPOSAL`] and the chain id).
    pub fn signing_bytes(&self) -> Vec<u8> {
        encode(self)
    }
}

/// A proposal with its proposer's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SignedProposal {
    pub proposal: Proposal,
    pub signature: Signature,
}

impl SignedProposal {
    /// Strict check of the signature against `key`.
    pub fn verify_signature(&self, key: &PublicKey, chain_id: &str) -> Result<(), Error> {
        tally_crypto::verify(
            key,
            DOMAIN_PROPOSAL,
            chain_id,
            &self.proposal.signing_bytes(),
            &self.signature,
        )
        .map_err(|_| Error::BadSignature(self.proposal.proposer))
    }
}

/// What validators send each other during a height.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A signed proposal and the block it names.
    Proposal {
        proposal: SignedProposal,
        block: Vec<u8>,
    },
    Vote(SignedVote),
}

impl Message {
    pub fn height(&self) -> Height {
        match self {
            Message::Proposal { proposal, .. } => proposal.proposal.height,
            Message::Vote(v) => v.vote.height,
        }
    }

    pub fn round(&self) -> Round {
        match self {
            Message::Proposal { proposal, .. } => proposal.proposal.round,
            Message::Vote(v) => v.vote.round,
        }
    }

    /// The validator that signed the message.
    pub fn signer(&self) -> ValidatorIndex {
        match self {
            Message::Proposal { proposal, .. } => proposal.proposal.proposer,
            Message::Vote(v) => v.vote.validator,
        }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes bytes from a peer, refusing more than [`MESSAGE_BYTES_MAX`] bytes, a block
    /// above [`BLOCK_BYTES_MAX`] and any non-canonical encoding.
    pub fn decode(bytes: &[u8]) -> Result<Message, Error> {
        let message: Message = decode(bytes, MESSAGE_BYTES_MAX)?;
        if let Message::Proposal { block, .. } = &message
            && block.len() > BLOCK_BYTES_MAX
        {
            return Err(Error::TooLarge {
                len: block.len(),
                limit_bytes: BLOCK_BYTES_MAX,
            });
        }
        Ok(message)
    }
}

/// The canonical (postcard) encoding of a value.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing into a growable buffer fails only for types postcard cannot express
    // (unknown-length sequences); every type of this crate has a known shape.
    #[allow(clippy::expect_used)]
    postcard::to_allocvec(value).expect("postcard encodes every type of this crate")
}

/// Decodes untrusted bytes: refuses input above `limit_bytes`, malformed input, trailing
/// bytes, and any encoding that does not re-encode to exactly the same bytes (overlong
/// varints, for one), so every value has one encoding and one hash.
pub fn decode<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    limit_bytes: usize,
) -> Result<T, Error> {
    if bytes.len() > limit_bytes {
        return Err(Error::TooLarge {
            len: bytes.len(),
            limit_bytes,
        });
    }
    let value: T = postcard::from_bytes(bytes).map_err(|e| Error::Malformed(e.to_string()))?;
    if encode(&value) != bytes {
        return Err(Error::NonCanonical);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_crypto::Hash;

    fn vote() -> Message {
        Message::Vote(SignedVote {
            vote: Vote {
                kind: VoteKind::Precommit,
                height: Height(300),
                round: Round(2),
                block: Some(BlockHash(Hash([7; 32]))),
                validator: ValidatorIndex(3),
            },
            signature: Signature([9; 64]),
        })
    }

    #[test]
    fn round_trip() {
        let m = vote();
        assert_eq!(Message::decode(&m.encode()), Ok(m));
        let p = Message::Proposal {
            proposal: SignedProposal {
                proposal: Proposal {
                    height: Height(1),
                    round: Round(0),
                    pol_round: None,
                    block: BlockHash::of(b"block"),
                    proposer: ValidatorIndex(0),
                },
                signature: Signature([1; 64]),
            },
            block: b"block".to_vec(),
        };
        assert_eq!(Message::decode(&p.encode()), Ok(p));
    }

    #[test]
    fn refuses_non_canonical_trailing_and_oversized() {
        let bytes = vote().encode();
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(Message::decode(&trailing), Err(Error::NonCanonical));
        // Height 300 is the varint ac 02 at offset 2; an overlong form of a small field:
        // the round (2) written as 82 00.
        let round_at = 4;
        assert_eq!(bytes.get(round_at), Some(&2));
        let mut overlong = bytes.clone();
        overlong.splice(round_at..round_at + 1, [0x82, 0x00]);
        assert!(Message::decode(&overlong).is_err());
        assert!(matches!(
            decode::<Message>(&bytes, 10),
            Err(Error::TooLarge { .. })
        ));
        assert!(Message::decode(&[]).is_err());
        assert!(Message::decode(&[7, 7, 7]).is_err());
    }
}
