//! Tendermint BFT consensus as a pure, deterministic state machine (no I/O, no clock, no
//! randomness): inputs in, outputs out.
//!
//! - [`Consensus`]: the state machine of Algorithm 1 of "The latest gossip on BFT consensus"
//!   (Buchman, Kwon, Milosevic 2018). The host feeds [`Input`]s to [`Consensus::step`] and
//!   carries out the returned [`Output`]s in order.
//! - [`Signer`]: the only holder of the validator key; refuses conflicting signatures and
//!   records what it signs through a [`SignerStore`] before releasing a signature.
//! - [`CommitCertificate`]: the proof a block was decided; verify it against a
//!   [`ValidatorSet`].
//! - [`Evidence`]: two conflicting signed messages from one validator.
//! - [`Message`], [`Verified`]: the wire messages, their canonical encoding, and the proof a
//!   message's signature was checked ([`verify_message`], [`verify_messages`] in a batch).
//! - [`ValidatorSet`], [`ValidatorSets`]: power, quorums, proposer rotation, and which set is
//!   in force at each height.
#![forbid(unsafe_code)]

pub use tally_crypto as crypto;

mod certificate;
mod consensus;
mod error;
mod evidence;
mod message;
mod signer;
mod types;
mod validators;
mod verified;
mod votes;

#[cfg(feature = "sim")]
pub mod sim;

pub use certificate::{CommitCertificate, CommitSignature};
#[cfg(feature = "sim")]
pub use consensus::PlantedBugs;
pub use consensus::{
    Config, Consensus, Decision, FUTURE_BLOCK_BYTES_MAX, FUTURE_HEIGHTS_MAX, FUTURE_MESSAGES_MAX,
    FUTURE_ROUNDS_MAX, Input, Output, PROPOSALS_PER_ROUND_MAX, Step, Timeout, TimeoutConfig,
    TimeoutKind, ValidRecord,
};
pub use error::Error;
pub use evidence::{EquivocationKind, Evidence};
pub use message::{
    BLOCK_BYTES_MAX, DOMAIN_PRECOMMIT, DOMAIN_PREVOTE, DOMAIN_PROPOSAL, MESSAGE_BYTES_MAX, Message,
    Proposal, SignedProposal, SignedVote, Vote, VoteKind, decode, encode,
};
pub use signer::{LastSigned, Lock, MemoryStore, SignStep, Signer, SignerRecord, SignerStore};
pub use types::{BlockHash, Height, Round, ValidatorIndex, frame_block, split_block};
pub use validators::{POWER_TOTAL_MAX, VALIDATORS_MAX, Validator, ValidatorSet, ValidatorSets};
pub use verified::{Verified, verify_message, verify_messages};
