//! A committed event as the event stream (`/v1/events`), a transaction's status and a
//! webhook delivery carry it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use tally_contracts::Event;
use tally_crypto::Hash;

/// A committed event with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    /// `"{height}:{index}"`: the stream id, the same under every filter.
    pub id: String,
    pub height: u64,
    pub index: u32,
    /// The event's kind (`TransferReceived`, ...), as the stream's `kind` filter names it.
    pub kind: Cow<'static, str>,
    /// The transaction that caused it; `None` for a hold released at block time.
    pub tx: Option<Hash>,
    pub event: Event,
}
