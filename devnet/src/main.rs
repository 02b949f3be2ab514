//! `tally-devnet`: a working Tally network on this machine in one command, and the payment
//! story told through its public API.
//!
//! ```sh
//! cargo run --release -p tally-devnet -- demo     # start a devnet, tell the story, stop
//! cargo run --release -p tally-devnet -- up       # start a devnet and keep it until Ctrl-C
//! cargo run --release -p tally-devnet -- soak --duration 30m --out soak   # memory, disk, p99
//! ```

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::{Parser, Subcommand};

use tally_devnet::layout::Layout;
use tally_devnet::processes::{Network, tally_binary};
use tally_devnet::{bench, join, panels, soak, story};

#[derive(Debug, Parser)]
#[command(
    name = "tally-devnet",
    version,
    about = "A local Tally settlement network"
)]
struct Cli {
    #[command(subcommand)]
    command: DevnetCommand,
}

#[derive(Debug, Subcommand)]
enum DevnetCommand {
    /// Start a devnet (or resume the one in --dir) and run it until Ctrl-C.
    Up {
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Audit nodes.
        #[arg(long, default_value_t = 1)]
        observers: usize,
        /// The devnet's directory; a fresh temporary one if absent.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The longest the idle chain goes without a block, in milliseconds (the genesis's
        /// heartbeat; 3000 if absent). Only for a new devnet: one resumed keeps its own.
        #[arg(long, value_name = "MS")]
        heartbeat_ms: Option<u64>,
    },
    /// Tell the payment story through the API of a devnet this command starts (or, with
    /// --api, of one already running, whose --dir holds the institutions' keys).
    Demo {
        /// The devnet's directory; a fresh temporary one (removed after) if absent.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// A running node's API, e.g. https://127.0.0.1:8080 (requires --dir).
        #[arg(long, value_name = "URL", requires = "dir")]
        api: Option<String>,
    },
    /// Load a devnet this command starts (or, with --api, running ones) with signed
    /// transfers and payments, and report throughput, commit latency, memory and the
    /// signature-verification ceiling.
    Bench {
        /// Seconds of load.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Target submissions per second; as fast as the network takes them if absent.
        #[arg(long)]
        rate: Option<u64>,
        #[arg(long, value_enum, default_value_t = bench::Mix::Transfers)]
        mix: bench::Mix,
        /// Print the figures as one JSON object on the last line.
        #[arg(long)]
        json: bool,
        /// Transactions per submission request: 1 posts each to /v1/transactions, more
        /// post them together to /v1/transactions/batch (at most 256), as a payment system
        /// sending what it has gathered would.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=256))]
        batch: u16,
        /// The devnet's directory; a fresh temporary one (removed after) if absent.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Running validators' APIs, e.g. https://127.0.0.1:8080 (requires --dir).
        #[arg(long, value_name = "URL", requires = "dir", num_args = 1..)]
        api: Vec<String>,
        /// Webhook subscriptions to register on each validator (as the regulator, for every
        /// event) to an endpoint that never answers: a dead merchant's cost to the chain.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
        webhooks: u16,
    },
    /// Steady paced transfers on a devnet this command starts, for a long time, sampling
    /// every node's memory (RSS) and data directory on disk and the commit latency; prints
    /// a summary against issue 20's bars and writes the samples (CSV), the summary (JSON)
    /// and a chart (SVG) to --out.
    Soak {
        /// How long the load runs: 90, 90s, 30m, 2h.
        #[arg(long, value_parser = soak::parse_duration, default_value = "30m")]
        duration: Duration,
        /// Transfers submitted per second, paced.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// How often the nodes are sampled: 5, 5s, 1m.
        #[arg(long, value_parser = soak::parse_duration, default_value = "5s")]
        sample_every: Duration,
        /// Where samples.csv, summary.json and soak.svg go; tally-soak-<time> here if absent.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print the summary as one JSON object on the last line.
        #[arg(long)]
        json: bool,
        /// The devnet's directory; a fresh temporary one (removed after) if absent.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// How long a node takes to join a chain with history: the bench load runs on a new
    /// devnet, then an audit node and a wiped validator join by state sync (from the
    /// validators' snapshots) and another audit node by replaying every block (block sync),
    /// each timed to the validators' height.
    Join {
        /// Seconds of load before the joins.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Target submissions per second; as fast as the network takes them if absent.
        #[arg(long)]
        rate: Option<u64>,
        /// Print the figures as one JSON object on the last line.
        #[arg(long)]
        json: bool,
        /// A new directory for the devnet; a fresh temporary one (removed after) if absent.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Time every panel of the regulator's page on the audit node of the devnet in --dir
    /// (resumed for the purpose, stopped after): each request the page makes, asked twice,
    /// beside the chain's size. Grow the chain first, e.g. with `soak --dir`.
    Panels {
        /// The devnet's directory (made by `up`, `demo`, `bench` or `soak` with --dir).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The large-transaction threshold the page asks with, in minor units.
        #[arg(long, default_value_t = 5_000_000)]
        threshold: u64,
        /// Print the figures as one JSON object on the last line.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "tally_devnet=info".to_string()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only where a person reads a terminal, not in files and CI logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            DevnetCommand::Up {
                validators,
                observers,
                dir,
                heartbeat_ms,
            } => up(validators, observers, heartbeat_ms, dir).await,
            DevnetCommand::Demo { dir, api } => demo(dir, api).await,
            DevnetCommand::Bench {
                duration,
                rate,
                mix,
                json,
                batch,
                dir,
                api,
                webhooks,
            } => {
                let options = bench::Options {
                    duration_s: duration,
                    rate,
                    mix,
                    json,
                    batch: usize::from(batch),
                    webhooks: usize::from(webhooks),
                };
                bench(options, dir, api).await
            }
            DevnetCommand::Soak {
                duration,
                rate,
                sample_every,
                out,
                json,
                dir,
            } => {
                let out = match out {
                    Some(out) => out,
                    None => PathBuf::from(format!("tally-soak-{}", unix_seconds()?)),
                };
                let options = soak::Options {
                    duration,
                    rate,
                    sample_every,
                    out,
                    json,
                };
                soak(options, dir).await
            }
            DevnetCommand::Join {
                duration,
                rate,
                json,
                dir,
            } => {
                let load = bench::Options {
                    duration_s: duration,
                    rate,
                    mix: bench::Mix::Transfers,
                    json: false,
                    batch: 64,
                    webhooks: 0,
                };
                join(load, json, dir).await
            }
            DevnetCommand::Panels {
                dir,
                threshold,
                json,
            } => panels_of(&dir, panels::Options { threshold, json }).await,
        }
    });
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn unix_seconds() -> Result<u64> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs())
}

/// A new directory under the system's temporary directory.
fn fresh_dir() -> Result<PathBuf> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let dir = std::env::temp_dir().join(format!("tally-devnet-{}-{now}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Makes or resumes the devnet in `dir` and starts it; returns once it commits.
async fn start(
    dir: &Path,
    validators: usize,
    observers: usize,
    heartbeat_ms: Option<u64>,
) -> Result<(Layout, Network)> {
    let tally = tally_binary()?;
    let (layout, resumed) =
        Layout::create_or_resume(dir, validators, observers, heartbeat_ms, &tally)?;
    if resumed {
        let nodes = &layout.manifest.nodes;
        let kept = layout.validators().count();
        eprintln!(
            "resuming the devnet in {} as it was made: {kept} validators, {} audit node(s)",
            dir.display(),
            nodes.len() - kept
        );
    }
    let mut network = Network::start(&layout, &tally).await?;
    if let Err(e) = network.wait_committed().await {
        network.stop().await;
        return Err(e);
    }
    Ok((layout, network))
}

async fn up(
    validators: usize,
    observers: usize,
    heartbeat_ms: Option<u64>,
    dir: Option<PathBuf>,
) -> Result<bool> {
    let dir = match dir {
        Some(d) => d,
        None => fresh_dir()?,
    };
    let (layout, mut network) = start(&dir, validators, observers, heartbeat_ms).await?;
    println!("devnet running in {}", dir.display());
    println!(
        "  TLS: trust {} (--ca-cert or TALLY_CA_CERT); credentials: {}",
        layout.ca_cert_path().display(),
        dir.join("institutions").display()
    );
    println!(
        "  identity secret (KYC banks' and the regulator's clients only): {} \
         (--identity-secret or TALLY_IDENTITY_SECRET)",
        layout.identity_secret_path().display()
    );
    for node in &network.nodes {
        println!(
            "  {:<12} {:<9} api https://{}   log {}",
            node.spec.name,
            format!("{:?}", node.spec.mode).to_lowercase(),
            node.api.address,
            node.log.display()
        );
    }
    println!(
        "resume later with: tally-devnet up --dir {}\nCtrl-C stops it.",
        dir.display()
    );
    // Runs until Ctrl-C, or until a node dies on its own.
    let ended = loop {
        tokio::select! {
            signal = interrupted() => {
                break signal.map(|()| None);
            }
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                if let Some(exited) = network.exited() {
                    break Ok(Some(exited));
                }
            }
        }
    };
    eprintln!("stopping the devnet");
    network.stop().await;
    match ended? {
        None => Ok(true),
        Some((name, status)) => {
            eprintln!("{name} exited on its own ({status})");
            Ok(false)
        }
    }
}

async fn demo(dir: Option<PathBuf>, api: Option<String>) -> Result<bool> {
    if let (Some(dir), Some(url)) = (&dir, &api) {
        let layout = Layout::read(dir)?;
        let submit_to = parse_api_url(url)?;
        let summary = story::tell(&layout, submit_to).await;
        return Ok(summary.steps_failed == 0);
    }
    let (dir, temporary) = match dir {
        Some(d) => (d, false),
        None => (fresh_dir()?, true),
    };
    let started = start(&dir, 4, 1, None).await;
    let ok = match started {
        Ok((layout, mut network)) => {
            let submit_to = network
                .validators()
                .next()
                .map(|n| n.api.address)
                .ok_or_else(|| anyhow!("the devnet has no validator"));
            let summary = match submit_to {
                Ok(address) => tokio::select! {
                    summary = story::tell(&layout, address) => Ok(summary),
                    signal = interrupted() => signal.and_then(|()| Err(anyhow!("interrupted"))),
                },
                Err(e) => Err(e),
            };
            network.stop().await;
            summary.map(|s| s.steps_failed == 0)
        }
        Err(e) => Err(e),
    };
    if temporary {
        if ok.as_ref().is_ok_and(|ok| *ok) {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            eprintln!("the devnet's directory (logs) is kept: {}", dir.display());
        }
    }
    ok
}

async fn bench(options: bench::Options, dir: Option<PathBuf>, api: Vec<String>) -> Result<bool> {
    if let Some(dir) = &dir
        && !api.is_empty()
    {
        let layout = Layout::read(dir)?;
        let validators = api
            .iter()
            .map(|u| parse_api_url(u))
            .collect::<Result<Vec<_>>>()?;
        let report = bench::run(&layout, &validators, &[], &options).await?;
        bench::print(&report, options.json)?;
        return Ok(report.committed > 0);
    }
    let (dir, temporary) = match dir {
        Some(d) => (d, false),
        None => (fresh_dir()?, true),
    };
    let (layout, mut network) = start(&dir, 4, 1, None).await?;
    let validators: Vec<SocketAddr> = network.validators().map(|n| n.api.address).collect();
    let pids: Vec<bench::NodePid> = network
        .nodes
        .iter()
        .filter_map(|n| {
            n.pid().map(|pid| bench::NodePid {
                name: n.spec.name.clone(),
                pid,
            })
        })
        .collect();
    let report = tokio::select! {
        report = bench::run(&layout, &validators, &pids, &options) => report,
        signal = interrupted() => signal.and_then(|()| Err(anyhow!("interrupted"))),
    };
    network.stop().await;
    let ok = match report {
        Ok(report) => {
            bench::print(&report, options.json)?;
            Ok(report.committed > 0)
        }
        Err(e) => Err(e),
    };
    if temporary {
        if ok.as_ref().is_ok_and(|ok| *ok) {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            eprintln!("the devnet's directory (logs) is kept: {}", dir.display());
        }
    }
    ok
}

async fn join(load: bench::Options, json: bool, dir: Option<PathBuf>) -> Result<bool> {
    let (dir, temporary) = match dir {
        Some(d) => (d, false),
        None => (fresh_dir()?, true),
    };
    let tally = tally_binary()?;
    let (layout, resumed) = Layout::create_or_resume(&dir, 4, 3, None, &tally)?;
    if resumed {
        bail!(
            "{} holds a devnet already: the joins must start from empty nodes, give a new \
             directory",
            dir.display()
        );
    }
    join::prepare(&layout)?;
    let mut network = Network::start_except(&layout, &tally, &join::JOINERS).await?;
    let report = match network.wait_committed().await {
        Ok(()) => tokio::select! {
            report = join::run(&layout, &mut network, &load, &tally) => report,
            signal = interrupted() => signal.and_then(|()| Err(anyhow!("interrupted"))),
        },
        Err(e) => Err(e),
    };
    network.stop().await;
    let ok = match report {
        Ok(report) => {
            join::print(&report, json)?;
            Ok(true)
        }
        Err(e) => Err(e),
    };
    if temporary {
        if ok.is_ok() {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            eprintln!("the devnet's directory (logs) is kept: {}", dir.display());
        }
    }
    ok
}

async fn panels_of(dir: &Path, options: panels::Options) -> Result<bool> {
    // A directory without a devnet would start an empty one: nothing to measure.
    Layout::read(dir).with_context(|| format!("no devnet in {}", dir.display()))?;
    let (layout, mut network) = start(dir, 4, 1, None).await?;
    let audit = network
        .nodes
        .iter()
        .find(|n| n.spec.mode == tally_devnet::layout::NodeMode::Audit)
        .map(|n| layout.regulator_api(&n.spec))
        .transpose()?;
    let report = match audit {
        Some(api) => tokio::select! {
            report = panels::run(&api, &options) => report,
            signal = interrupted() => signal.and_then(|()| Err(anyhow!("interrupted"))),
        },
        None => Err(anyhow!("the devnet in {} has no audit node", dir.display())),
    };
    network.stop().await;
    let report = report?;
    panels::print(&report, options.json)?;
    Ok(report.within_bar)
}

async fn soak(options: soak::Options, dir: Option<PathBuf>) -> Result<bool> {
    let (dir, temporary) = match dir {
        Some(d) => (d, false),
        None => (fresh_dir()?, true),
    };
    let (layout, mut network) = start(&dir, 4, 1, None).await?;
    let validators: Vec<SocketAddr> = network.validators().map(|n| n.api.address).collect();
    let probes: Vec<soak::NodeProbe> = network
        .nodes
        .iter()
        .map(|n| soak::NodeProbe {
            name: n.spec.name.clone(),
            pid: n.pid(),
            data_dir: layout.data_dir(&n.spec),
        })
        .collect();
    let summary = tokio::select! {
        summary = soak::run(&layout, &validators, &probes, &options) => summary,
        signal = interrupted() => signal.and_then(|()| Err(anyhow!("interrupted"))),
    };
    // A node that died during the run shows as a gap in its samples; say which.
    let exited = network.exited();
    let first_validator = network
        .validators()
        .next()
        .map(|n| layout.config_path(&n.spec));
    network.stop().await;
    if let Some((name, status)) = &exited {
        eprintln!(
            "{name} exited during the soak ({status}); its log is in {}",
            dir.display()
        );
    }
    let ok = match summary {
        Ok(summary) => {
            // Before the summary, whose JSON line (--json) comes last.
            if let Some(config) = &first_validator {
                disk_usage_by_kind(config, &options.out);
            }
            soak::print(&summary, options.json)?;
            Ok(summary.committed > 0 && exited.is_none())
        }
        Err(e) => Err(e),
    };
    if temporary {
        if ok.as_ref().is_ok_and(|ok| *ok) {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            eprintln!("the devnet's directory (logs) is kept: {}", dir.display());
        }
    }
    ok
}

/// What the run left on a stopped validator's disk, by kind of record (`tally node
/// disk-usage`): printed, and written to `disk-usage.txt` in `out`. A failure is reported and
/// does not fail the soak, whose figures stand without it.
fn disk_usage_by_kind(config: &Path, out: &Path) {
    let answer = tally_binary().and_then(|tally| {
        let output = std::process::Command::new(tally)
            .args(["node", "disk-usage", "--config"])
            .arg(config)
            .output()
            .context("running tally node disk-usage")?;
        ensure!(
            output.status.success(),
            "tally node disk-usage: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    });
    match answer {
        Ok(text) => {
            println!("  disk by kind of record on the first validator:");
            for line in text.lines() {
                println!("    {line}");
            }
            let file = out.join("disk-usage.txt");
            if let Err(e) = std::fs::write(&file, text) {
                eprintln!("writing {}: {e}", file.display());
            }
        }
        Err(e) => eprintln!("disk usage by kind not read: {e:#}"),
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM, so either stops the nodes cleanly.
async fn interrupted() -> Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        signal = tokio::signal::ctrl_c() => signal.context("listening for Ctrl-C"),
        _ = terminate.recv() => Ok(()),
    }
}

/// `https://127.0.0.1:8080` (or without the scheme) → a socket address; the devnet's CA
/// is what the client trusts.
fn parse_api_url(url: &str) -> Result<SocketAddr> {
    let rest = url.strip_prefix("https://").unwrap_or(url);
    let host_port = rest.trim_end_matches('/');
    host_port
        .parse()
        .with_context(|| format!("--api {url:?}: expected https://IP:PORT"))
}
