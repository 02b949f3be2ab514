//! A devnet of real `tally` processes for the fault suites: made in a temporary directory
//! (kept, and its path printed, when the test fails), started, faulted one node at a time,
//! and always torn down: dropping a [`TestNet`] SIGKILLs every node it started, so a failing
//! or panicking test leaves no process behind.
//!
//! Every wait here is bounded; each error names the node and ends with its log's last lines.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use tally_devnet::client::Api;
use tally_devnet::layout::{Layout, NodeMode, NodeSpec};
use tally_devnet::processes::{Network, log_tail};

use crate::chain::BlockView;

/// The blocked-peers file name, in each node's directory: configure it with
/// [`PARTITIONABLE`].
pub const BLOCKED_PEERS_FILE: &str = "blocked-peers.txt";
/// The configuration that lets [`TestNet::partition`] cut and heal the network.
pub const PARTITIONABLE: &str = "[test_faults]\nblocked_peers_file = \"blocked-peers.txt\"\n";

/// How often waits poll a node.
const POLL: Duration = Duration::from_millis(100);
/// How long a freshly started network may take to commit its first block.
const FIRST_COMMIT_WAIT: Duration = Duration::from_secs(60);

/// The `tally` binary, built (or brought up to date) once per test process: every network
/// of the run uses the same one.
fn tally_binary() -> Result<PathBuf> {
    static TALLY: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    TALLY
        .get_or_init(crate::binaries::tally)
        .clone()
        .map_err(|e| anyhow!(e))
}

/// A running devnet of `tally` processes.
#[derive(Debug)]
pub struct TestNet {
    pub layout: Layout,
    pub net: Network,
    pub tally: PathBuf,
    dir: Option<tempfile::TempDir>,
}

/// `/health`'s answer.
#[derive(Debug, Deserialize)]
pub struct Health {
    pub status: String,
    pub height: Option<u64>,
    /// An audit node's: the highest height whose state it computed and found signed.
    #[serde(default)]
    pub verified_height: Option<u64>,
}

impl TestNet {
    /// Makes a devnet of `validators` validators and `auditors` audit nodes on free loopback
    /// ports, appends `extra_config` (TOML, e.g. a `[limits]` section) to every node's
    /// configuration, starts every node and waits until each has committed a block.
    pub async fn start(validators: usize, auditors: usize, extra_config: &str) -> Result<TestNet> {
        TestNet::start_with(validators, auditors, |_| extra_config.to_string()).await
    }

    /// As [`TestNet::start`], with each node's extra configuration chosen by `configure`
    /// (e.g. a `[test_faults]` section for one validator only).
    pub async fn start_with(
        validators: usize,
        auditors: usize,
        configure: impl Fn(&NodeSpec) -> String,
    ) -> Result<TestNet> {
        let tally = tally_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("tally-faults-")
            .tempdir()
            .context("making the devnet's directory")?;
        let (layout, _) = Layout::create_or_resume(dir.path(), validators, auditors, &tally)?;
        for node in &layout.manifest.nodes {
            let extra = configure(node);
            if !extra.trim().is_empty() {
                layout.append_config(node, &extra)?;
            }
        }
        let net = Network::start(&layout, &tally).await?;
        let mut testnet = TestNet {
            layout,
            net,
            tally,
            dir: Some(dir),
        };
        let deadline = Instant::now() + FIRST_COMMIT_WAIT;
        for i in 0..testnet.net.nodes.len() {
            testnet.wait_height(i, 1, deadline).await?;
        }
        Ok(testnet)
    }

    /// Keeps the devnet's directory after the test (for a failed test's logs).
    pub fn keep_dir(&mut self) -> Option<PathBuf> {
        self.dir.take().map(tempfile::TempDir::keep)
    }

    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    pub fn len(&self) -> usize {
        self.net.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.net.nodes.is_empty()
    }

    pub fn spec(&self, i: usize) -> Result<&NodeSpec> {
        Ok(&self
            .net
            .nodes
            .get(i)
            .ok_or_else(|| anyhow!("no node {i}"))?
            .spec)
    }

    pub fn name(&self, i: usize) -> String {
        self.spec(i)
            .map_or_else(|_| format!("node {i}"), |s| s.name.clone())
    }

    pub fn api(&self, i: usize) -> Result<Api> {
        Ok(self
            .net
            .nodes
            .get(i)
            .ok_or_else(|| anyhow!("no node {i}"))?
            .api)
    }

    /// The validators' indexes, in layout order.
    pub fn validators(&self) -> Vec<usize> {
        self.indexes(NodeMode::Validator)
    }

    /// The audit nodes' indexes.
    pub fn auditors(&self) -> Vec<usize> {
        self.indexes(NodeMode::Audit)
    }

    /// The first audit node.
    pub fn audit(&self) -> Result<usize> {
        self.auditors()
            .first()
            .copied()
            .ok_or_else(|| anyhow!("this devnet has no audit node"))
    }

    fn indexes(&self, mode: NodeMode) -> Vec<usize> {
        self.net
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.spec.mode == mode)
            .map(|(i, _)| i)
            .collect()
    }

    /// The nodes started and not stopped.
    pub fn running(&self) -> Vec<usize> {
        self.net
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_started())
            .map(|(i, _)| i)
            .collect()
    }

    /// Running validators' APIs.
    pub fn running_validator_apis(&self) -> Vec<Api> {
        self.validators()
            .into_iter()
            .filter(|i| self.running().contains(i))
            .filter_map(|i| self.api(i).ok())
            .collect()
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.net.nodes.get(i).and_then(|n| n.pid())
    }

    pub fn log_path(&self, i: usize) -> Result<PathBuf> {
        Ok(self
            .net
            .nodes
            .get(i)
            .ok_or_else(|| anyhow!("no node {i}"))?
            .log
            .clone())
    }

    /// The whole log of node `i` (all its runs).
    pub fn log(&self, i: usize) -> String {
        self.log_path(i)
            .ok()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// The last lines of node `i`'s log, for error messages.
    pub fn log_tail(&self, i: usize) -> String {
        self.log_path(i).map(|p| log_tail(&p)).unwrap_or_default()
    }

    /// SIGKILL node `i`.
    pub async fn kill(&mut self, i: usize) -> Result<()> {
        self.net
            .nodes
            .get_mut(i)
            .ok_or_else(|| anyhow!("no node {i}"))?
            .kill()
            .await
    }

    /// SIGTERM node `i`, killed after a bound: answers whether it exited cleanly.
    pub async fn stop(&mut self, i: usize) -> Result<bool> {
        let node = self
            .net
            .nodes
            .get_mut(i)
            .ok_or_else(|| anyhow!("no node {i}"))?;
        Ok(node.stop().await.is_some_and(|s| s.success()))
    }

    /// Starts node `i` again on its directory and configuration.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.net.restart(&self.layout, i, &self.tally)
    }

    /// Appends TOML to node `i`'s configuration (read at its next start).
    pub fn append_config(&self, i: usize, text: &str) -> Result<()> {
        self.layout.append_config(self.spec(i)?, text)
    }

    /// Cuts the network into `groups` (node indexes; a node in no group is cut from all):
    /// each node's blocked-peers file (the `[test_faults]` connection gate, polled by the
    /// node every 200 ms) lists every node outside its group. `&[]` heals.
    pub fn partition(&self, groups: &[&[usize]]) -> Result<()> {
        for i in 0..self.len() {
            let group: Vec<usize> = groups
                .iter()
                .find(|g| g.contains(&i))
                .map_or_else(|| vec![i], |g| g.to_vec());
            let mut text = String::from("# written by the fault test\n");
            if !groups.is_empty() {
                for j in (0..self.len()).filter(|j| !group.contains(j)) {
                    text.push_str(&self.spec(j)?.public_key.to_hex());
                    text.push('\n');
                }
            }
            let path = self.layout.node_dir(self.spec(i)?).join(BLOCKED_PEERS_FILE);
            // Whole or not at all: the node may read the file at any moment.
            let staging = path.with_extension("tmp");
            std::fs::write(&staging, text)
                .with_context(|| format!("writing {}", staging.display()))?;
            std::fs::rename(&staging, &path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// `/health` of node `i`.
    pub async fn health(&self, i: usize) -> Result<Health> {
        Ok(self.api(i)?.get_json::<Health>("/health").await?)
    }

    /// The committed height of node `i`, 0 before its first block.
    pub async fn height(&self, i: usize) -> Result<u64> {
        Ok(self.health(i).await?.height.unwrap_or(0))
    }

    /// Waits until node `i` has committed `height`, failing at `deadline` or if the process
    /// exits. Answers the height reached.
    pub async fn wait_height(&mut self, i: usize, height: u64, deadline: Instant) -> Result<u64> {
        loop {
            let node = self
                .net
                .nodes
                .get_mut(i)
                .ok_or_else(|| anyhow!("no node {i}"))?;
            if let Some(status) = node.exit_status()? {
                bail!(
                    "{} exited ({status}) waiting for height {height}; its log ends:\n{}",
                    node.spec.name,
                    log_tail(&node.log)
                );
            }
            if let Ok(h) = self.height(i).await
                && h >= height
            {
                return Ok(h);
            }
            if Instant::now() > deadline {
                let at = self.height(i).await.ok();
                bail!(
                    "{} did not reach height {height} in time (at {at:?}); its log ends:\n{}",
                    self.name(i),
                    self.log_tail(i)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every running node has committed `height`.
    pub async fn wait_all(&mut self, height: u64, deadline: Instant) -> Result<()> {
        for i in self.running() {
            self.wait_height(i, height, deadline).await?;
        }
        Ok(())
    }

    /// The highest committed height among the running validators.
    pub async fn top_height(&self) -> u64 {
        let mut top = 0;
        for i in self.running() {
            if let Ok(h) = self.height(i).await {
                top = top.max(h);
            }
        }
        top
    }

    /// Fails if a node that was not stopped has exited on its own.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some((name, status)) = self.net.exited() {
            let i = self
                .net
                .nodes
                .iter()
                .position(|n| n.spec.name == name)
                .unwrap_or(0);
            bail!(
                "{name} exited on its own ({status}); its log ends:\n{}",
                self.log_tail(i)
            );
        }
        Ok(())
    }

    /// The committed block at `height` on node `i`.
    pub async fn block(&self, i: usize, height: u64) -> Result<BlockView> {
        self.api(i)?
            .get_json(&format!("/v1/blocks/{height}"))
            .await
            .with_context(|| format!("{}: block {height}", self.name(i)))
    }

    /// Resident memory of node `i` now and at its peak, KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, i: usize) -> Option<(u64, u64)> {
        let pid = self.pid(i)?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<u64> {
            status
                .lines()
                .find(|l| l.starts_with(name))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Stops every node (SIGTERM, then SIGKILL after a bound).
    pub async fn shutdown(&mut self) {
        self.net.stop().await;
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // SIGKILL whatever still runs: the children were spawned with kill-on-drop, so
        // dropping the network kills them; made explicit here, before the directory goes.
        self.net.kill_all();
        if std::thread::panicking()
            && let Some(kept) = self.keep_dir()
        {
            eprintln!(
                "the failed test's devnet (configs, data, node logs) is kept in {}",
                kept.display()
            );
        }
    }
}
