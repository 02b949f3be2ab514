//! The one error type of this crate. Every input from outside (bytes, messages, certificates,
//! evidence, validator lists) is checked and refused with one of these; none panics.

use crate::types::{BlockHash, Height, Round, ValidatorIndex};

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // Encoding.
    #[error("{len} bytes is more than the limit of {limit_bytes}")]
    TooLarge { len: usize, limit_bytes: usize },
    #[error("malformed encoding: {0}")]
    Malformed(String),
    #[error("encoding is not canonical (re-encoding gives different bytes)")]
    NonCanonical,

    // Validator sets.
    #[error("a validator set needs at least one validator and at most {max}")]
    ValidatorCount { max: usize },
    #[error("validator {0} has zero voting power")]
    ZeroPower(ValidatorIndex),
    #[error("total voting power exceeds {max}")]
    PowerTooLarge { max: u64 },
    #[error("validator {0} has an invalid or duplicate public key")]
    BadValidatorKey(ValidatorIndex),
    #[error("no validator set is in force at height {0}")]
    NoValidatorSet(Height),
    #[error("a validator set change must take effect after height {last}, not at {at}")]
    ScheduleOrder { at: Height, last: Height },

    // Signed messages.
    #[error("validator {0} is not in the set")]
    UnknownValidator(ValidatorIndex),
    #[error("bad signature from validator {0}")]
    BadSignature(ValidatorIndex),
    #[error("validator {validator} is not the proposer for height {height} round {round}")]
    NotProposer {
        validator: ValidatorIndex,
        height: Height,
        round: Round,
    },
    #[error("proposal carries a proof-of-lock round {pol_round} not below its round {round}")]
    BadPolRound { pol_round: Round, round: Round },
    #[error("block bytes hash to {actual:?}, the proposal names {claimed:?}")]
    BlockHashMismatch {
        claimed: BlockHash,
        actual: BlockHash,
    },

    // Commit certificates.
    #[error("certificate is for height {got}, expected {expected}")]
    WrongHeight { expected: Height, got: Height },
    #[error("certificate is for block {got:?}, expected {expected:?}")]
    WrongBlock { expected: BlockHash, got: BlockHash },
    #[error("validator {0} signs the certificate twice")]
    DuplicateSigner(ValidatorIndex),
    #[error("certificate signers hold {power} voting power, a quorum needs {quorum}")]
    InsufficientPower { power: u64, quorum: u64 },

    // Evidence.
    #[error("the two messages do not conflict (different signer, slot, or identical)")]
    NotConflicting,

    // The signer.
    #[error("refused to sign: {0}")]
    SignRefused(&'static str),
    #[error("signer store failed: {0}")]
    Store(String),
}
