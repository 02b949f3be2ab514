//! The Tally node: the only crate that does I/O.
