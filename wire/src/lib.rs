//! What travels between a Tally node's HTTP API and its clients, shared by both sides so
//! that neither keeps its own copy: how a request is signed (RFC 9421, [`signature`]), the
//! party a signature names ([`KeyId`]), money as people write it ([`money`]), a binary batch
//! of transactions and its answer ([`batch`]), where a transaction stands ([`transaction`]),
//! committed events ([`events`]), ledger records at a height ([`ledger`]), webhook
//! subscriptions ([`webhook`]) and the error shape every refusal has ([`ErrorBody`]).
//!
//! Pure: no I/O, no async runtime, no HTTP client or server; the `http` crate's request
//! types only.

pub mod batch;
pub mod events;
pub mod ledger;
pub mod money;
pub mod signature;
pub mod transaction;
pub mod webhook;

use serde::{Deserialize, Serialize};
use tally_contracts::{AccountId, InstitutionId, Party};
use tally_crypto::Hash;

/// The body of every error answer. `code` never changes meaning once published; `message`
/// is for people; `hash` names the transaction when the ledger executed and refused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Hash>,
}

/// The party a request is signed as: what its `keyid` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyId {
    Institution(InstitutionId),
    Account(AccountId),
}

impl KeyId {
    pub fn parse(text: &str) -> Option<KeyId> {
        let (kind, id) = text.split_once(':')?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        match kind {
            "institution" => id
                .parse()
                .ok()
                .map(|i| KeyId::Institution(InstitutionId(i))),
            "account" => id.parse().ok().map(|a| KeyId::Account(AccountId(a))),
            _ => None,
        }
    }
}

impl From<Party> for KeyId {
    fn from(party: Party) -> KeyId {
        match party {
            Party::Institution(i) => KeyId::Institution(i),
            Party::Account(a) => KeyId::Account(a),
        }
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyId::Institution(i) => write!(f, "institution:{}", i.0),
            KeyId::Account(a) => write!(f, "account:{}", a.0),
        }
    }
}
