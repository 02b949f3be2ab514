//! The Tally node: the only crate that does I/O.
//!
//! - [`network`]: libp2p transport, peer allow-listing and the three message paths.
//! - [`config`]: the node's TOML configuration, checked at start.
//! - [`block`]: the block format and the stored results of executing one.
//! - [`service`]: what the API may ask of the running node (submit, status, committed height).
//! - [`metrics`]: Prometheus metrics.
//! - [`clock`]: the wall clock, for the node's local records (never consensus's).
//! - [`storage`]: the data directory (redb): blocks, certificates, state, indexes, signer
//!   record; its backup and restore.
//! - [`mempool`]: verified transactions waiting for a block, bounded, in nonce order.
//! - [`genesis`]: the genesis file and the description `tally genesis` builds it from.
//! - [`validator_update`]: governance of the validator set, carried in blocks.
//! - [`chain`]: the chain task: consensus, mempool, execution and block sync.
//! - [`client`]: the `tally` flow commands, over the client SDK (`tally-sdk`).
//! - [`faults`]: test-only Byzantine behaviour, switched on by `[test_faults]` in the config.
//! - [`proof`]: a proven ledger record as a node answers it, and the client's check of it.
//! - [`admin`]: the admin socket in the data directory (`tally node backup` of a running node).
//! - [`webhooks`]: committed events POSTed, signed, to the URLs parties register.
//! - [`node`]: starting and stopping a whole node (network, chain task, router).
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod block;
pub mod chain;
pub mod client;
pub mod clock;
pub mod config;
pub mod faults;
pub mod genesis;
pub mod mempool;
pub mod metrics;
pub mod network;
pub mod node;
pub mod proof;
pub mod service;
pub mod snapshots;
pub mod storage;
pub mod validator_update;
pub mod webhooks;
