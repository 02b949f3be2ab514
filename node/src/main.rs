//! `tally`: the command people run. Errors reach them in words with a non-zero exit.

mod cli;

use anyhow::{Context, Result};
use clap::Parser;
use std::path::Path;
use std::process::ExitCode;
use tally_crypto::{KeyFile, SigningKey};
use tally_node::config::Config;
use tally_node::network::{self, GossipTopic, NetworkEvent};
use tracing::{debug, info};

use cli::{Area, Cli, KeysCommand, NodeCommand};

fn main() -> ExitCode {
    // Bad arguments: clap prints the usage and exits with status 2.
    let cli = Cli::parse();
    init_logging();
    let outcome = match cli.area {
        Area::Keys(KeysCommand::Generate { out }) => generate_key(&out),
        Area::Keys(KeysCommand::Show { file }) => show_key(&file),
        Area::Node(NodeCommand::Run { config }) => run_node(&config),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (stdout carries command output); `RUST_LOG` overrides the level.
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn generate_key(out: &Path) -> Result<()> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let key = SigningKey::from_seed(seed);
    zeroize::Zeroize::zeroize(&mut seed);
    KeyFile::write_new(&key, out)?;
    println!("wrote {}", out.display());
    print_identity(&key)
}

fn show_key(file: &Path) -> Result<()> {
    print_identity(&KeyFile::read(file)?)
}

fn print_identity(key: &SigningKey) -> Result<()> {
    let public_key = key.public_key();
    println!("public key: {public_key}");
    println!("peer id:    {}", network::peer_id(&public_key)?);
    Ok(())
}

fn run_node(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)
        .with_context(|| format!("configuration {} refused", config_path.display()))?;
    let key = KeyFile::read(&config.key_file)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, key))
}

async fn serve(config: Config, key: SigningKey) -> Result<()> {
    // Installed before anything starts, so a signal during start-up is not lost.
    let shutdown = shutdown_signal()?;
    tokio::pin!(shutdown);

    info!(
        mode = ?config.mode,
        public_key = %config.public_key,
        peers = config.peers.len(),
        observers = config.observers.len(),
        "starting node"
    );
    // Extension point: open storage in `config.data_dir`, read `config.genesis_file` and take
    // the validator set from it (then `handle.set_peer_set`), start the mempool, consensus
    // and the API on `config.api_address`. Each is a task owning its state, fed from the
    // event loop below.
    let mut network = network::start(&key, config.network()).await?;
    info!(addresses = ?network.listen_addresses, "node running");

    let signal = loop {
        tokio::select! {
            event = network.events.recv() => match event {
                Some(event) => route(event),
                None => break None,
            },
            signal = &mut shutdown => break Some(signal),
        }
    };
    match signal {
        Some(name) => info!(signal = name, "shutting down"),
        None => info!("network stopped; shutting down"),
    }
    // Extension point: stop accepting API requests and flush storage before the network.
    network.handle.shutdown().await?;
    network.task.await.context("network task failed")?;
    info!("stopped");
    Ok(())
}

/// Where each network event goes. Until consensus, the mempool and block sync are wired in,
/// messages have no consumer and are dropped here, in one visible place.
fn route(event: NetworkEvent) {
    match event {
        // Extension point: consensus messages (proposals, votes) go to the consensus task.
        NetworkEvent::Direct { from, bytes } => {
            debug!(peer = %from, bytes = bytes.len(), "direct message: no consensus yet, dropped")
        }
        // Extension point: transactions go to the mempool, evidence to consensus.
        NetworkEvent::Gossip { from, topic, bytes } => {
            let consumer = match topic {
                GossipTopic::Transactions => "mempool",
                GossipTopic::Evidence => "consensus",
            };
            debug!(peer = %from, %topic, bytes = bytes.len(), consumer, "gossip: no consumer yet, dropped")
        }
        // Extension point: block sync answers from storage. Dropping the responder fails the
        // request at the peer at once instead of letting it time out.
        NetworkEvent::SyncRequest { from, .. } => {
            debug!(peer = %from, "sync request: block sync not served yet, refused")
        }
        NetworkEvent::PeerConnected(peer) => debug!(%peer, "peer connected"),
        NetworkEvent::PeerDisconnected(peer) => debug!(%peer, "peer disconnected"),
    }
}

/// Resolves with the signal's name on SIGINT or SIGTERM.
fn shutdown_signal() -> Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    })
}
