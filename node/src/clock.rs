//! The wall clock, read only here. The node stamps its proposals and local records with it
//! (a block's time, commit times, first sightings of alerts, request signatures'
//! freshness); consensus and the contracts never read it: a block's time is the proposer's
//! reading, carried in its header, so a replay gives the same state.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; 0 for a clock set before it.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Seconds since the Unix epoch (signed, as HTTP message signatures carry them); 0 for a
/// clock set before it.
pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
