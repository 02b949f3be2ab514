//! The `tally` client commands ([`flows`]), built on the client SDK (`tally-sdk`).

pub mod flows;
