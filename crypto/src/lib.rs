//! Cryptography shared by every Tally crate.
//!
//! - [`Hash`]: blake3 digests and a [`merkle_root`] of a list.
//! - [`SigningKey`], [`PublicKey`], [`Signature`]: ed25519 keys; every signature covers a
//!   domain tag and the chain id, so a vote can never be replayed as a transaction or on
//!   another chain.
//! - [`verify`]: strict single verification (ed25519-dalek `verify_strict`).
//! - [`BatchVerifier`]: batch verification that gives, item by item, the same verdict as
//!   [`verify`] (see `batch.rs` for why plain batch verification does not).
//! - [`KeyFile`]: a validator's or client's key on disk.
#![forbid(unsafe_code)]

mod batch;
mod hash;
mod identity;
mod keyfile;
mod keys;

pub use batch::{BatchVerifier, KeyCache};
pub use hash::{Hash, HashBuilder, MerkleStep, merkle_path, merkle_root, merkle_root_from_path};
pub use identity::IdentitySecret;
pub use keyfile::{KeyFile, KeyFileError};
pub use keys::{PublicKey, Signature, SigningKey, signing_message, verify, verify_message};

/// Why a signature or key was refused. Verification reports only *that* it failed: the
/// reason is not something a caller may act on differently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("signature does not verify")]
    BadSignature,
    #[error("public key is not a valid ed25519 point")]
    BadPublicKey,
    #[error("hex decoding failed: {0}")]
    BadHex(String),
    #[error("expected {expected} bytes, got {got}")]
    BadLength { expected: usize, got: usize },
}
