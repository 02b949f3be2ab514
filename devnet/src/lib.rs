//! The devnet as a library: the layout of a local network on disk (keys, genesis, configs),
//! its `tally` node processes, the payment story (with a merchant's webhook endpoint,
//! `shop`), the load generators (bench and soak) and the join benchmark, all speaking to the
//! nodes through the client SDK (`tally-sdk`). The `tally-devnet` binary is a thin command
//! line over these; the cross-crate fault suites in `tests/` drive real node processes
//! through them too.

#![forbid(unsafe_code)]

pub mod bench;
pub mod join;
pub mod layout;
pub mod panels;
mod ports;
pub mod processes;
pub mod shop;
pub mod soak;
pub mod story;
