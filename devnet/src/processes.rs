//! The devnet's node processes: each a `tally node run` of the same binary, logging to a file
//! in its directory. Started together, watched until they commit, stopped with SIGTERM and,
//! after a bound, SIGKILL.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::client::Api;
use crate::layout::{Layout, NodeMode, NodeSpec, port_is_free};

/// How long the network may take to commit its first blocks.
const FIRST_COMMIT_WAIT_MS: u64 = 60_000;
/// How long a node may take to stop after SIGTERM before it is killed.
const STOP_WAIT_MS: u64 = 10_000;

/// The `tally` binary: `TALLY_BIN`, else the one beside this binary (same cargo target dir).
pub fn tally_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("TALLY_BIN") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("TALLY_BIN={} is not a file", path.display());
    }
    let here = std::env::current_exe().context("finding this binary's path")?;
    let dir = here.parent().context("this binary has no directory")?;
    let beside = dir.join("tally");
    let release = dir.ends_with("release");
    let profile = if release { " --release" } else { "" };
    // Under `cargo run` (which sets CARGO) the node is built, or brought up to date, first:
    // the README's one command then works from a fresh clone and never runs a stale node.
    if let Some(cargo) = std::env::var_os("CARGO") {
        eprintln!("building the node: cargo build{profile} -p tally-node --bin tally");
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "-p", "tally-node", "--bin", "tally"]);
        if release {
            build.arg("--release");
        }
        let status = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .context("running cargo build")?;
        if !status.success() {
            bail!("cargo build{profile} -p tally-node --bin tally failed");
        }
    }
    if beside.is_file() {
        return Ok(beside);
    }
    bail!(
        "the `tally` binary is not in {} (build it with `cargo build{profile} -p tally-node --bin tally`, \
         or set TALLY_BIN)",
        dir.display()
    )
}

/// One running node.
#[derive(Debug)]
pub struct NodeProcess {
    pub spec: NodeSpec,
    pub api: Api,
    pub log: PathBuf,
    child: Child,
}

impl NodeProcess {
    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The running devnet.
#[derive(Debug)]
pub struct Network {
    pub nodes: Vec<NodeProcess>,
}

#[derive(Debug, Deserialize)]
pub struct Health {
    pub status: String,
    pub height: Option<u64>,
}

impl Network {
    /// Starts every node of `layout`.
    pub async fn start(layout: &Layout, tally_bin: &Path) -> Result<Network> {
        for node in &layout.manifest.nodes {
            for address in [node.p2p_address, node.api_address] {
                if !port_is_free(address) {
                    bail!(
                        "{} is in use: is this devnet already running? ({} of {})",
                        address,
                        node.name,
                        layout.dir.display()
                    );
                }
            }
        }
        let mut network = Network { nodes: Vec::new() };
        for spec in &layout.manifest.nodes {
            match start_node(layout, spec, tally_bin) {
                Ok(node) => network.nodes.push(node),
                Err(e) => {
                    network.stop().await;
                    return Err(e);
                }
            }
        }
        Ok(network)
    }

    pub fn validators(&self) -> impl Iterator<Item = &NodeProcess> {
        self.nodes
            .iter()
            .filter(|n| n.spec.mode == NodeMode::Validator)
    }

    /// Waits until every validator has committed a block; audit nodes are waited for too,
    /// but one that does not follow is reported, not fatal.
    pub async fn wait_committed(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_millis(FIRST_COMMIT_WAIT_MS);
        for i in 0..self.nodes.len() {
            let result = self.wait_node_committed(i, deadline).await;
            let Some(node) = self.nodes.get(i) else {
                break;
            };
            match (result, node.spec.mode) {
                (Ok(height), _) => info!(node = %node.spec.name, height, "committing"),
                (Err(e), NodeMode::Validator) => return Err(e),
                (Err(e), NodeMode::Audit) => {
                    warn!(node = %node.spec.name, error = %e, "the audit node is not following");
                }
            }
        }
        Ok(())
    }

    async fn wait_node_committed(&mut self, index: usize, deadline: Instant) -> Result<u64> {
        loop {
            let Some(node) = self.nodes.get_mut(index) else {
                bail!("no node {index}");
            };
            if let Some(status) = node.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before committing; its log ends:\n{}",
                    node.spec.name,
                    log_tail(&node.log)
                );
            }
            if let Ok(health) = node.api.get_json::<Health>("/health").await
                && let Some(height) = health.height.filter(|h| *h >= 1)
            {
                return Ok(height);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} committed nothing within {FIRST_COMMIT_WAIT_MS} ms; its log ends:\n{}",
                    node.spec.name,
                    log_tail(&node.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The first node that exited, if any: name and status.
    pub fn exited(&mut self) -> Option<(String, String)> {
        self.nodes
            .iter_mut()
            .find_map(|n| match n.child.try_wait() {
                Ok(Some(status)) => Some((n.spec.name.clone(), status.to_string())),
                Ok(None) => None,
                Err(e) => Some((n.spec.name.clone(), e.to_string())),
            })
    }

    /// SIGTERM to every node, then waits for each, killing any still running after the
    /// bound.
    pub async fn stop(&mut self) {
        for node in &self.nodes {
            if let Some(pid) = node.child.id() {
                // Through `kill(1)`: this crate forbids unsafe code, so no direct libc call.
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let deadline = Instant::now() + Duration::from_millis(STOP_WAIT_MS);
        for node in &mut self.nodes {
            match tokio::time::timeout_at(deadline, node.child.wait()).await {
                Ok(Ok(status)) if status.success() => {
                    info!(node = %node.spec.name, "stopped");
                }
                Ok(Ok(status)) => warn!(node = %node.spec.name, %status, "stopped"),
                Ok(Err(e)) => warn!(node = %node.spec.name, error = %e, "cannot wait"),
                Err(_) => {
                    warn!(node = %node.spec.name, "still running after SIGTERM; killed");
                    let _ = node.child.kill().await;
                }
            }
        }
    }
}

fn start_node(layout: &Layout, spec: &NodeSpec, tally_bin: &Path) -> Result<NodeProcess> {
    let dir = layout.node_dir(spec);
    let log = dir.join("node.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let child = Command::new(tally_bin)
        .arg("node")
        .arg("run")
        .arg("--config")
        .arg(layout.config_path(spec))
        .env(
            "RUST_LOG",
            std::env::var("TALLY_NODE_LOG").unwrap_or_else(|_| "info".to_string()),
        )
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        // If this process dies without stopping them, the nodes die with it.
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} with {}", spec.name, tally_bin.display()))?;
    Ok(NodeProcess {
        spec: spec.clone(),
        api: Api::new(spec.api_address),
        log,
        child,
    })
}

/// The last lines of a node's log, for an error message.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(15);
    lines.get(start..).unwrap_or_default().join("\n")
}
