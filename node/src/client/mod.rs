//! The client side of Tally: how a bank's system, a merchant's till or a person at a terminal
//! talks to a node. Sign a transaction with the sender's key (and any co-signer's), submit its
//! canonical bytes to a node's HTTP API with `?wait_ms=`, and read the receipt: `OK` with the
//! events it caused, or the ledger's rejection code.
//!
//! - [`api`]: one node's HTTP API over TLS (or plain HTTP where a node serves it), each
//!   request signed as the client's party (RFC 9421); answers and receipts.
//! - [`submitter`]: signs and submits for several senders, keeping each one's nonce.
//! - [`money`]: decimal amounts with their currency, converted exactly to minor units.
//! - [`flows`]: the `tally wallet|merchant|bill|fx|remit|regulator|institution|travel-rule`
//!   commands: one transaction builder per flow, and how each outcome is told.
//! - [`webhook`]: a party's webhook subscriptions, and the check of a delivery as its
//!   endpoint receives it.
//! - [`travel_rule`]: travel-rule data sealed (HPKE) to its readers, opened by them; their
//!   X25519 key files.
//!
//! Every request is bounded in time; every answer is checked before it is believed.

pub mod api;
pub mod flows;
pub mod money;
pub mod submitter;
pub mod travel_rule;
pub mod webhook;

pub use api::{Answer, Api, ApiErrorBody, ClientTls, Credential, Receipt};
pub use submitter::{AccountView, Submitter, new_key};

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
