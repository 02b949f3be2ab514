//! The devnet's node processes: each a `tally node run` of the same binary, logging to a file
//! in its directory. Started together, watched until they commit, stopped with SIGTERM and,
//! after a bound, SIGKILL. The fault suites also stop, kill (SIGKILL) and restart single
//! nodes; a node's log is appended to across restarts.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::layout::{Layout, NodeMode, NodeSpec, port_is_free};
use tally_sdk::Api;

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

/// One node: running, or stopped (killed) by a fault test until it is restarted.
#[derive(Debug)]
pub struct NodeProcess {
    pub spec: NodeSpec,
    /// The node's API over TLS, signed as the regulator (who may read everything): what
    /// the harnesses watching a devnet need.
    pub api: Api,
    pub log: PathBuf,
    /// `None` once stopped or killed.
    child: Option<Child>,
}

impl NodeProcess {
    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// True while the process was started and not stopped (it may have exited on its own:
    /// see [`NodeProcess::exit_status`]).
    pub fn is_started(&self) -> bool {
        self.child.is_some()
    }

    /// The exit status if the process ended on its own, without being stopped.
    pub fn exit_status(&mut self) -> Result<Option<std::process::ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => Ok(child.try_wait()?),
            None => Ok(None),
        }
    }

    /// SIGKILL, then reaps the process: a crash at whatever point it was. Nothing if not
    /// running.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .await
                .with_context(|| format!("killing {}", self.spec.name))?;
        }
        Ok(())
    }

    /// SIGTERM, waits for a clean exit, and kills it after [`STOP_WAIT_MS`]. Answers the
    /// exit status (`None` if it had to be killed, or was not running).
    pub async fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        if let Some(pid) = child.id() {
            // Through `kill(1)`: this crate forbids unsafe code, so no direct libc call.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        match tokio::time::timeout(Duration::from_millis(STOP_WAIT_MS), child.wait()).await {
            Ok(Ok(status)) => {
                if status.success() {
                    info!(node = %self.spec.name, "stopped");
                } else {
                    warn!(node = %self.spec.name, %status, "stopped");
                }
                Some(status)
            }
            Ok(Err(e)) => {
                warn!(node = %self.spec.name, error = %e, "cannot wait");
                None
            }
            Err(_) => {
                warn!(node = %self.spec.name, "still running after SIGTERM; killed");
                let _ = child.kill().await;
                None
            }
        }
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
    /// The snapshot the node's chain started from, when it joined by state sync.
    #[serde(default)]
    pub synced_from_height: Option<u64>,
}

impl Network {
    /// Starts every node of `layout`.
    pub async fn start(layout: &Layout, tally_bin: &Path) -> Result<Network> {
        Network::start_except(layout, tally_bin, &[]).await
    }

    /// Starts every node of `layout` but those named in `stopped`, which are listed as
    /// stopped ([`Network::restart`] starts them).
    pub async fn start_except(
        layout: &Layout,
        tally_bin: &Path,
        stopped: &[&str],
    ) -> Result<Network> {
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
        let apis = layout
            .manifest
            .nodes
            .iter()
            .map(|spec| layout.regulator_api(spec))
            .collect::<Result<Vec<_>>>()?;
        let mut network = Network { nodes: Vec::new() };
        for (spec, api) in layout.manifest.nodes.iter().zip(apis) {
            if stopped.contains(&spec.name.as_str()) {
                network.nodes.push(NodeProcess {
                    spec: spec.clone(),
                    api,
                    log: log_path(layout, spec),
                    child: None,
                });
                continue;
            }
            match start_node(layout, spec, tally_bin) {
                Ok(child) => network.nodes.push(NodeProcess {
                    spec: spec.clone(),
                    api,
                    log: log_path(layout, spec),
                    child: Some(child),
                }),
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

    /// Waits until every validator started has committed a block; audit nodes are waited
    /// for too, but one that does not follow is reported, not fatal.
    pub async fn wait_committed(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_millis(FIRST_COMMIT_WAIT_MS);
        for i in 0..self.nodes.len() {
            if self.nodes.get(i).is_some_and(|n| !n.is_started()) {
                continue;
            }
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
            if let Some(status) = node.exit_status()? {
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

    /// Starts node `index` again after it was stopped or killed, on the same directory,
    /// ports and configuration (re-read, so a test may change it between runs). Its ports must
    /// be free again: a killed process's are at once.
    pub fn restart(&mut self, layout: &Layout, index: usize, tally_bin: &Path) -> Result<()> {
        let Some(node) = self.nodes.get_mut(index) else {
            bail!("no node {index}");
        };
        if node.child.is_some() {
            bail!("{} is still running", node.spec.name);
        }
        node.child = Some(start_node(layout, &node.spec, tally_bin)?);
        Ok(())
    }

    /// SIGKILL to every node still running, without waiting (for a drop guard: the
    /// processes were spawned kill-on-drop as well, and are reaped in the background).
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.start_kill();
            }
        }
    }

    /// The first node that exited, if any: name and status.
    pub fn exited(&mut self) -> Option<(String, String)> {
        self.nodes.iter_mut().find_map(|n| match n.exit_status() {
            Ok(Some(status)) => Some((n.spec.name.clone(), status.to_string())),
            Ok(None) => None,
            Err(e) => Some((n.spec.name.clone(), e.to_string())),
        })
    }

    /// SIGTERM to every node, then waits for each, killing any still running after the
    /// bound.
    pub async fn stop(&mut self) {
        for node in &self.nodes {
            if let Some(pid) = node.pid() {
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
            let Some(mut child) = node.child.take() else {
                continue;
            };
            match tokio::time::timeout_at(deadline, child.wait()).await {
                Ok(Ok(status)) if status.success() => {
                    info!(node = %node.spec.name, "stopped");
                }
                Ok(Ok(status)) => warn!(node = %node.spec.name, %status, "stopped"),
                Ok(Err(e)) => warn!(node = %node.spec.name, error = %e, "cannot wait"),
                Err(_) => {
                    warn!(node = %node.spec.name, "still running after SIGTERM; killed");
                    let _ = child.kill().await;
                }
            }
        }
    }
}

fn log_path(layout: &Layout, spec: &NodeSpec) -> PathBuf {
    layout.node_dir(spec).join("node.log")
}

fn start_node(layout: &Layout, spec: &NodeSpec, tally_bin: &Path) -> Result<Child> {
    let log = log_path(layout, spec);
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
    Ok(child)
}

/// The last lines of a node's log, for an error message.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(15);
    lines.get(start..).unwrap_or_default().join("\n")
}
