//! The Tally node: the only crate that does I/O.
//!
//! - [`network`]: libp2p transport, peer allow-listing and the three message paths.
//! - [`config`]: the node's TOML configuration, checked at start.
//! - [`block`]: the block format and the stored results of executing one.
//! - [`service`]: what the API may ask of the running node (submit, status, committed height).
//! - [`metrics`]: Prometheus metrics.
//! - [`storage`]: the data directory (sled): blocks, certificates, state, indexes, signer record.
//! - [`mempool`]: verified transactions waiting for a block, bounded, in nonce order.
#![forbid(unsafe_code)]

pub mod api;
pub mod block;
pub mod chain;
pub mod config;
pub mod mempool;
pub mod metrics;
pub mod network;
pub mod service;
pub mod storage;
