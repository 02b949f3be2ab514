//! The `tally` command line, grouped by area: `tally keys ...`, `tally node ...`, `tally genesis`,
//! and the client commands, one per flow: `tally wallet ...`, `tally merchant ...`, `tally bill
//! ...`, `tally fx ...`, `tally remit`, `tally regulator ...`, `tally governance ...`,
//! `tally institution ...`, `tally webhook ...`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tally_node::client::flows::{
    BillCommand, Connection, FxCommand, GovernanceCommand, InstitutionCommand, MerchantCommand,
    RegulatorCommand, RemitCommand, TravelRuleCommand, VerifyCommand, WalletCommand,
    WebhookCommand,
};

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
    /// Check a ledger record (account, order, bill, hold) against the validators the genesis
    /// names, with its proof from one node: "verified at height h", or why not.
    Verify {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: VerifyCommand,
    },
    /// A consumer's wallet: register, bind a card, top up, withdraw, pay, transfer, show a
    /// payment code, confirm receipt, balance and history.
    Wallet {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: WalletCommand,
    },
    /// A merchant: register (by its acquirer), create orders, collect by code, cancel,
    /// refund, settle.
    Merchant {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: MerchantCommand,
    },
    /// Utility bills: register a biller, issue, pay.
    Bill {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: BillCommand,
    },
    /// An FX provider: publish a rate; read the rates.
    Fx {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: FxCommand,
    },
    /// Send money abroad through an FX provider (payment versus payment).
    Remit {
        #[command(flatten)]
        connection: Connection,
        #[command(flatten)]
        command: Box<RemitCommand>,
    },
    /// A regulator: freeze and unfreeze accounts, sanctions, tier limits.
    Regulator {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: RegulatorCommand,
    },
    /// Governance with a quorum of the governance keys: replace or revoke an institution's
    /// key; the account-recovery delay.
    Governance {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: GovernanceCommand,
    },
    /// Interbank settlement: net the open obligations, confirm receipt; positions. Disputes
    /// an institution decides; the key it receives travel-rule data under; account recovery.
    Institution {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: InstitutionCommand,
    },
    /// Travel-rule data of a remittance, opened by the beneficiary's institution or a
    /// regulator.
    TravelRule {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: TravelRuleCommand,
    },
    /// Webhooks: URLs the node POSTs the --as party's committed events to, signed by the
    /// node; subscribe, list, show, replay from an event, remove.
    Webhook {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: WebhookCommand,
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
    /// Write a new identity secret (32 random bytes, readable by its owner only): the key
    /// under which the KYC institutions and the regulator digest identities. Give it to
    /// them alone (their clients' --identity-secret); never to a validator.
    IdentitySecret {
        /// Where to write it; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the public key and peer id of a key file.
    Show {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Make a certificate authority for the API's TLS (a devnet's or a test's): its
    /// certificate and private key, PEM. A real institution uses its own PKI instead.
    TlsCa {
        /// Where to write the CA certificate (give it to clients: --ca-cert).
        #[arg(long, value_name = "FILE")]
        cert_out: PathBuf,
        /// Where to write the CA's private key (readable by its owner only).
        #[arg(long, value_name = "FILE")]
        key_out: PathBuf,
        /// The CA's name.
        #[arg(long, default_value = "Tally API CA")]
        name: String,
    },
    /// Make a node's API certificate (ECDSA P-256) for its names, signed by a CA made with
    /// `tally keys tls-ca`; the node's `[api]` names the two files it writes.
    TlsCert {
        #[arg(long, value_name = "FILE")]
        ca_cert: PathBuf,
        #[arg(long, value_name = "FILE")]
        ca_key: PathBuf,
        /// A name clients reach the node by: an IP address or a DNS name (repeat).
        #[arg(long = "name", value_name = "NAME", required = true)]
        names: Vec<String>,
        #[arg(long, value_name = "FILE")]
        cert_out: PathBuf,
        /// Where to write the certificate's private key (readable by its owner only).
        #[arg(long, value_name = "FILE")]
        key_out: PathBuf,
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
    /// How the data directory's records split by kind (blocks, certificates, results,
    /// indexes, ledger state): entries, bytes and bytes per committed transaction. Reads the
    /// whole store; the node must be stopped (the store admits one process at a time).
    DiskUsage {
        /// The node's TOML configuration file.
        #[arg(long, value_name = "FILE", env = "TALLY_CONFIG")]
        config: PathBuf,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the state snapshots this node has taken (`[snapshots]`) and offers to nodes that
    /// join by state sync: height, chunks, bytes, ledger root. Reads only the snapshot files,
    /// so the node may be running.
    Snapshots {
        /// The node's TOML configuration file.
        #[arg(long, value_name = "FILE", env = "TALLY_CONFIG")]
        config: PathBuf,
        /// Print one JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write a backup of the data directory to a new file: from the running node, over its
    /// admin socket, as of one consistent point while it goes on committing; or, when no node
    /// runs, straight from the store. The signer's record is never in it.
    Backup {
        /// The node's TOML configuration file.
        #[arg(long, value_name = "FILE", env = "TALLY_CONFIG")]
        config: PathBuf,
        /// Where to write the backup; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Restore a backup into the configuration's data directory, which must hold no chain
    /// (the signer's record there, if any, is kept as it is). The backup's digest, chain and
    /// ledger root are checked before the directory is used; the node then syncs the blocks
    /// committed since the backup from its peers.
    Restore {
        /// The node's TOML configuration file.
        #[arg(long, value_name = "FILE", env = "TALLY_CONFIG")]
        config: PathBuf,
        /// The backup file (`tally node backup`).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
}
