//! The devnet as a library: the layout of a local network on disk (keys, genesis, configs),
//! its `tally` node processes, the HTTP client that signs and submits, the payment story (with
//! a merchant's webhook endpoint, `shop`) and
//! the load generators (bench and soak) and the join benchmark. The `tally-devnet` binary is a thin command line over these; the
//! cross-crate fault suites in `tests/` drive real node processes through them too.

#![forbid(unsafe_code)]

pub mod bench;
pub mod join;
/// The HTTP client that signs and submits: it lives in the node library now
/// (`tally_node::client`), so the `tally` flow commands and the devnet share it.
pub use tally_node::client;
pub mod layout;
pub mod panels;
mod ports;
pub mod processes;
pub mod shop;
pub mod soak;
pub mod story;
