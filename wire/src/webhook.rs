//! A party's webhook subscriptions as the API carries them (`/v1/webhooks`), and what a
//! node signs its deliveries as.

use serde::{Deserialize, Serialize};
use tally_crypto::PublicKey;

/// The `keyid` a node signs its webhook deliveries as: `node:{its public key}`.
pub fn node_keyid(key: &PublicKey) -> String {
    format!("node:{key}")
}

/// What a party asks for: the URL and the event stream's filter fields. The client sends
/// this same type.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub institution: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// The first event id to deliver (`"height:index"`); default: the next block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// A subscription as its owner reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionView {
    pub id: u64,
    pub owner: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub institution: Option<String>,
    pub kinds: Vec<String>,
    /// The id of the next event to deliver (`"{height}:{index}"`).
    pub next: String,
    /// `active` or `paused`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_at_ms: Option<u64>,
    /// Events delivered and acknowledged.
    pub delivered: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_ms: u64,
    /// What deliveries are signed as (RFC 9421 `keyid`): `node:{public key}`.
    pub signed_by: String,
}
