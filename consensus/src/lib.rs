//! Tendermint BFT consensus as a pure, deterministic state machine (no I/O, no clock, no
//! randomness): inputs in, outputs out.

pub use tally_crypto as crypto;
