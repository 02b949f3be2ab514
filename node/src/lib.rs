//! The Tally node: the only crate that does I/O.
//!
//! - [`network`]: libp2p transport, peer allow-listing and the three message paths.
//! - [`config`]: the node's TOML configuration, checked at start.
#![forbid(unsafe_code)]

pub mod config;
pub mod network;
