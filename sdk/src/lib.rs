//! Tally's client SDK: how a bank's system, a merchant's till or a person at a terminal
//! talks to a node. Sign a transaction with the sender's key (and any co-signer's), submit its
//! canonical bytes to a node's HTTP API with `?wait_ms=`, and read the receipt: `OK` with the
//! events it caused, or the ledger's rejection code.
//!
//! - [`api`]: one node's HTTP API over TLS (or plain HTTP where a node serves it), each
//!   request signed as the client's party (RFC 9421); a pool of kept-alive connections;
//!   answers and receipts.
//! - [`submitter`]: signs and submits for several senders, keeping each one's nonce.
//! - [`money`]: decimal amounts with their currency, converted exactly to minor units.
//! - [`webhook`]: a party's webhook subscriptions, and the check of a delivery as its
//!   endpoint receives it.
//! - [`travel_rule`]: travel-rule data sealed (HPKE) to its readers, opened by them; their
//!   X25519 key files.
//!
//! It holds nothing of the node: the wire types are `tally-wire`'s, the transactions
//! `tally-contracts`', the keys `tally-crypto`'s. Every request is bounded in time; every
//! answer is checked before it is believed.
#![doc = include_str!("../README.md")]

pub mod api;
pub mod submitter;
pub mod tls;
pub mod travel_rule;
pub mod webhook;

pub use api::{Answer, Api, ClientTls, Credential, Receipt};
pub use submitter::{AccountView, Submitter, new_key};
pub use tally_wire::{ErrorBody, KeyId, batch, money, signature};

/// What can go wrong between a client and a node.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection, or the connection broke.
    #[error("{method} {path} on {address}: {detail}")]
    Transport {
        method: String,
        path: String,
        address: std::net::SocketAddr,
        detail: String,
    },
    #[error("{method} {path} on {address}: no answer within {ms} ms")]
    Timeout {
        method: String,
        path: String,
        address: std::net::SocketAddr,
        ms: u64,
    },
    /// The node answered with an error: its status and stable code.
    #[error("HTTP {status}: {code} ({message})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// An answer that is not what the API describes.
    #[error("unexpected answer: {0}")]
    Answer(String),
    /// A transaction the node took but no block committed within the bound.
    #[error("transaction {hash} was not committed within {ms} ms")]
    NotCommitted { hash: tally_crypto::Hash, ms: u64 },
    /// A transaction the ledger executed and refused: its stable code and its words.
    #[error("transaction {hash} refused: {code} ({message})")]
    Refused {
        hash: tally_crypto::Hash,
        code: String,
        message: String,
    },
    /// A receipt without the event the flow must cause.
    #[error("no {0} event in the receipt")]
    MissingEvent(String),
    #[error("no OS randomness: {0}")]
    Randomness(String),
    /// The TLS trust could not be set up (a missing or unreadable CA file).
    #[error("TLS: {0}")]
    Tls(String),
    /// A node URL that is not one.
    #[error("node URL {0}")]
    Url(String),
}

impl ClientError {
    /// The API's stable code, when the node answered with one.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    /// The README's example is `readme_example.rs`, which a devnet test runs: they may not
    /// drift apart.
    #[test]
    fn the_readme_example_is_the_file_the_devnet_test_runs() {
        let readme = include_str!("../README.md");
        let example = include_str!("../readme_example.rs");
        let block = readme
            .split_once("```rust\n")
            .and_then(|(_, rest)| rest.split_once("```\n"))
            .map(|(block, _)| block);
        assert_eq!(block, Some(example));
    }
}
