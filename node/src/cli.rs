//! The `tally` command line, grouped by area: `tally keys ...`, `tally node ...`, `tally genesis`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "tally", version, about = "Tally permissioned settlement node")]
pub struct Cli {
    #[command(subcommand)]
    pub area: Area,
}

#[derive(Debug, Subcommand)]
pub enum Area {
    /// Create and inspect node keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run a validator or audit node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Build a genesis file from a TOML description (chain id, validators and powers,
    /// institutions and roles, currencies, limits).
    Genesis {
        /// The description (TOML).
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
        /// Where to write the genesis file (JSON); an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new key file (readable by its owner only); print its public key and peer id.
    Generate {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the public key and peer id of a key file.
    Show {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Check the configuration, start the network, and run until SIGINT or SIGTERM.
    Run {
        /// The node's TOML configuration file.
        #[arg(long, value_name = "FILE", env = "TALLY_CONFIG")]
        config: PathBuf,
    },
}
