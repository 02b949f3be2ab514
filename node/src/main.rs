//! `tally`: the command people run. Errors reach them in words with a non-zero exit.

mod backup_commands;
mod cli;

use anyhow::{Context, Result, bail};
use clap::Parser;
use std::path::Path;
use std::process::ExitCode;
use tally_crypto::{KeyFile, SigningKey};
use tally_node::client::flows::{self, ClientCommand, CommandError, Connection};
use tally_node::config::Config;
use tally_node::genesis::{GenesisDescription, GenesisFile};
use tally_node::network;
use tally_node::node::{Node, NodeOptions};
use tracing::info;

use cli::{Area, Cli, KeysCommand, NodeCommand};

fn main() -> ExitCode {
    // Bad arguments: clap prints the usage and exits with status 2.
    let cli = Cli::parse();
    init_logging();
    let outcome = match cli.area {
        Area::Keys(KeysCommand::Generate { out }) => generate_key(&out),
        Area::Keys(KeysCommand::IdentitySecret { out }) => generate_identity_secret(&out),
        Area::Keys(KeysCommand::Show { file }) => show_key(&file),
        Area::Keys(KeysCommand::TlsCa {
            cert_out,
            key_out,
            name,
        }) => make_ca(&name, &cert_out, &key_out),
        Area::Keys(KeysCommand::TlsCert {
            ca_cert,
            ca_key,
            names,
            cert_out,
            key_out,
        }) => make_server_certificate(&ca_cert, &ca_key, &names, &cert_out, &key_out),
        Area::Node(NodeCommand::Run { config }) => run_node(&config),
        Area::Node(NodeCommand::DiskUsage { config, json }) => disk_usage(&config, json),
        Area::Node(NodeCommand::Snapshots { config, json }) => list_snapshots(&config, json),
        Area::Node(NodeCommand::Backup { config, out }) => backup_commands::backup(&config, &out),
        Area::Node(NodeCommand::Restore { config, from }) => {
            backup_commands::restore(&config, &from)
        }
        Area::Genesis { input, out } => write_genesis(&input, &out),
        Area::Wallet {
            connection,
            command,
        } => return run_client(&connection, ClientCommand::Wallet(command)),
        Area::Verify {
            connection,
            command,
        } => return run_client(&connection, ClientCommand::Verify(command)),
        Area::Merchant {
            connection,
            command,
        } => return run_client(&connection, ClientCommand::Merchant(command)),
        Area::Bill {
            connection,
            command,
        } => return run_client(&connection, ClientCommand::Bill(command)),
        Area::Fx {
            connection,
            command,
        } => return run_client(&connection, ClientCommand::Fx(command)),
        Area::Remit {
            connection,
            command,
        } => return run_client(&connection, ClientCommand::Remit(command)),
        Area::Regulator {
            connection,
            command,
        } => return run_client(&connection, ClientCommand::Regulator(command)),
        Area::Governance {
            connection,
            command,
        } => return run_client(&connection, ClientCommand::Governance(command)),
        Area::Institution {
            connection,
            command,
        } => return run_client(&connection, ClientCommand::Institution(command)),
        Area::TravelRule {
            connection,
            command,
        } => return run_client(&connection, ClientCommand::TravelRule(command)),
        Area::Webhook {
            connection,
            command,
        } => return run_client(&connection, ClientCommand::Webhook(command)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a client command: the outcome in words (or JSON with `--json`) on stdout; a refusal
/// or any other error in words on stderr, with a non-zero exit.
fn run_client(connection: &Connection, command: ClientCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let print = |report: &flows::Report| {
        if connection.json {
            println!("{}", report.json);
        } else {
            println!("{}", report.text);
        }
    };
    match runtime.block_on(flows::run(connection, command)) {
        Ok(report) => {
            print(&report);
            ExitCode::SUCCESS
        }
        Err(error) => {
            if let (CommandError::Refused(refusal), true) = (&error, connection.json) {
                print(&refusal.report);
            }
            match error {
                CommandError::Refused(_) => eprintln!("{error}"),
                _ => eprintln!("error: {error}"),
            }
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

fn generate_identity_secret(out: &Path) -> Result<()> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let secret = tally_crypto::IdentitySecret::from_bytes(bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    secret.write_new(out)?;
    println!("wrote {}", out.display());
    Ok(())
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

/// Writes `text` to a new file (never over an existing one), readable by its owner only
/// when it is `private`.
fn write_new(path: &Path, text: &str, private: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    if private {
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| {
        format!(
            "cannot create {} (an existing file is never overwritten)",
            path.display()
        )
    })?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    println!("wrote {}", path.display());
    Ok(())
}

fn make_ca(name: &str, cert_out: &Path, key_out: &Path) -> Result<()> {
    let ca = tally_node::api::tls::new_ca(name)?;
    write_new(key_out, &ca.key_pem, true)?;
    write_new(cert_out, &ca.cert_pem, false)
}

fn make_server_certificate(
    ca_cert: &Path,
    ca_key: &Path,
    names: &[String],
    cert_out: &Path,
    key_out: &Path,
) -> Result<()> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let ca = tally_node::api::tls::Issued {
        cert_pem: read(ca_cert)?,
        key_pem: read(ca_key)?,
    };
    let issued = tally_node::api::tls::new_server_certificate(&ca, names)?;
    write_new(key_out, &issued.key_pem, true)?;
    write_new(cert_out, &issued.cert_pem, false)
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

/// `tally node snapshots`: the snapshots in the data directory, newest first.
fn list_snapshots(config_path: &Path, json: bool) -> Result<()> {
    let config = tally_node::config::Config::load(config_path)?;
    let Some(settings) = config.snapshots else {
        bail!(
            "{} has no [snapshots] section: this node takes no snapshots",
            config_path.display()
        );
    };
    let snapshots =
        tally_node::snapshots::SnapshotStore::new(&config.data_dir, &settings).list()?;
    if json {
        println!("{}", serde_json::to_string(&snapshots)?);
        return Ok(());
    }
    if snapshots.is_empty() {
        println!(
            "no snapshot yet: one is taken after every {} blocks",
            settings.interval_blocks
        );
    }
    for s in &snapshots {
        println!(
            "height {:>10}  {:>6} chunks  {:>10.1} MiB  ledger root {}",
            s.height,
            s.chunks,
            s.bytes as f64 / (1024.0 * 1024.0),
            s.ledger_root
        );
    }
    Ok(())
}

/// `tally node disk-usage`: the data directory's records by kind, from a walk of the store.
fn disk_usage(config_path: &Path, json: bool) -> Result<()> {
    use tally_node::storage::DATABASE_FILE;
    let (config, genesis) = backup_commands::load(config_path)?;
    let file = config.data_dir.join(DATABASE_FILE);
    let storage = backup_commands::open_stopped_store(
        &config,
        &genesis,
        &format!("(from {})", config_path.display()),
        "is the node still running? stop it first",
    )?;
    let file_bytes = std::fs::metadata(&file)
        .with_context(|| format!("reading the size of {}", file.display()))?
        .len();
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(storage.chain_entries()?),
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} records")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let usage = storage.usage(|n| bar.set_position(n))?;
    bar.finish_and_clear();
    let committed = usage
        .iter()
        .find(|u| u.kind == tally_node::storage::RecordKind::TransactionIndex)
        .map_or(0, |u| u.entries);
    // Whole bytes per transaction, rounded down; 0 before the first transaction.
    let per_tx = |bytes: u64| bytes.checked_div(committed).unwrap_or(0);
    if json {
        let kinds: Vec<serde_json::Value> = usage
            .iter()
            .map(|u| {
                serde_json::json!({
                    "kind": u.kind.name(),
                    "history": u.kind.is_history(),
                    "entries": u.entries,
                    "bytes": u.bytes,
                    "bytes_per_committed_tx": per_tx(u.bytes),
                })
            })
            .collect();
        let summary = serde_json::json!({
            "data_dir": config.data_dir,
            "file_bytes": file_bytes,
            "committed_transactions": committed,
            "file_bytes_per_committed_tx": per_tx(file_bytes),
            "kinds": kinds,
        });
        println!("{summary}");
        return Ok(());
    }
    const MIB: f64 = 1024.0 * 1024.0;
    println!(
        "{}: {:.1} MiB on disk, {committed} committed transactions ({} B each, the file over them)",
        file.display(),
        file_bytes as f64 / MIB,
        per_tx(file_bytes)
    );
    println!(
        "{:<18} {:>12} {:>12} {:>10}  kept",
        "records", "entries", "MiB", "B per tx"
    );
    for u in &usage {
        println!(
            "{:<18} {:>12} {:>12.1} {:>10}  {}",
            u.kind.name(),
            u.entries,
            u.bytes as f64 / MIB,
            per_tx(u.bytes),
            if u.kind.is_history() {
                "history: grows with every block"
            } else {
                "current state"
            }
        );
    }
    let total: u64 = usage.iter().map(|u| u.bytes).sum();
    println!(
        "{:<18} {:>12} {:>12.1} {:>10}  (keys and values, before the store's page overhead)",
        "total",
        usage.iter().map(|u| u.entries).sum::<u64>(),
        total as f64 / MIB,
        per_tx(total)
    );
    Ok(())
}

fn write_genesis(input: &Path, out: &Path) -> Result<()> {
    let description = GenesisDescription::load(input)?;
    let genesis = description
        .build()
        .map_err(|e| anyhow::anyhow!("{} refused: {e}", input.display()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    std::io::Write::write_all(&mut file, genesis.to_json().as_bytes())?;
    println!("wrote {}", out.display());
    println!("chain id:     {}", genesis.chain_id);
    println!("genesis hash: {}", genesis.hash());
    println!("validators:   {}", genesis.validators.len());
    Ok(())
}

fn run_node(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)
        .with_context(|| format!("configuration {} refused", config_path.display()))?;
    let key = KeyFile::read(&config.key_file)?;
    let genesis = GenesisFile::load(&config.genesis_file)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, key, genesis))
}

/// How long open API connections (event streams) get to finish at shutdown.
const API_SHUTDOWN_MS: std::time::Duration = std::time::Duration::from_millis(3_000);

async fn serve(config: Config, key: SigningKey, genesis: GenesisFile) -> Result<()> {
    // Installed before anything starts, so a signal during start-up is not lost.
    let shutdown = shutdown_signal()?;
    info!(
        mode = ?config.mode,
        public_key = %config.public_key,
        chain_id = genesis.chain_id,
        peers = config.peers.len(),
        observers = config.observers.len(),
        "starting node"
    );
    // Read and bound before the node starts, so a bad certificate or a busy port is
    // reported before anything else runs.
    let tls = match &config.api.tls {
        Some(files) => Some(
            tally_node::api::tls::server_config(&files.cert_file, &files.key_file)
                .context("the API's TLS certificate")?,
        ),
        None => None,
    };
    let api_listener = std::net::TcpListener::bind(config.api_address)
        .with_context(|| format!("cannot listen for the API on {}", config.api_address))?;
    let api_address = api_listener.local_addr()?;
    let node = Node::start(&config, key, &genesis, NodeOptions::default()).await?;
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let tls_on = tls.is_some();
    let api = tokio::spawn(tally_node::api::serve(
        api_listener,
        node.context.clone(),
        tls,
        tally_node::api::Options {
            limits: config.api.limits,
            tls: tls_on,
            metrics_public: config.api.metrics_public,
        },
        async move {
            let _ = api_stopped.await;
        },
    ));
    if tls_on {
        info!(address = %api_address, "HTTP API listening over TLS");
    } else {
        tracing::warn!(
            address = %api_address,
            "HTTP API listening WITHOUT TLS ([api] plain_http = true): requests, credentials' \
             signatures and answers travel in clear"
        );
    }
    let mut committed = node.context.committed.clone();
    let signal = tokio::select! {
        signal = shutdown => Some(signal),
        // The chain task stops by itself only on an error; shut down and report it.
        _ = async {
            loop {
                if committed.changed().await.is_err() {
                    return;
                }
            }
        } => None,
    };
    match signal {
        Some(name) => info!(signal = name, "shutting down"),
        None => info!("the chain task stopped; shutting down"),
    }
    // Stop taking requests first, then let the node flush and stop.
    let _ = stop_api.send(());
    // Open event streams never end by themselves: give them a bound, then cut them.
    let api_abort = api.abort_handle();
    match tokio::time::timeout(API_SHUTDOWN_MS, api).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the HTTP API stopped with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the HTTP API task failed"),
        Err(_) => {
            api_abort.abort();
            info!("closed the HTTP API's open streams");
        }
    }
    node.shutdown().await?;
    info!("stopped");
    Ok(())
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
