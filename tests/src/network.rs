//! A devnet of real `tally` processes for the fault suites: made in a temporary directory
//! (kept, and its path printed, when the test fails), started, faulted one node at a time,
//! and always torn down: dropping a [`TestNet`] SIGKILLs every node it started, so a failing
//! or panicking test leaves no process behind.
//!
//! Every wait here is bounded; each error names the node and ends with its log's last lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use tally_devnet::layout::{Layout, NodeMode, NodeSpec};
use tally_devnet::processes::{Network, log_tail};
use tally_sdk::Api;

use crate::chain::BlockView;

/// The blocked-peers file name, in each node's directory: configure it with
/// [`PARTITIONABLE`].
pub const BLOCKED_PEERS_FILE: &str = "blocked-peers.txt";
/// The configuration that lets [`TestNet::partition`] cut and heal the network.
pub const PARTITIONABLE: &str = "[test_faults]\nblocked_peers_file = \"blocked-peers.txt\"\n";

/// The fault suites' genesis heartbeat: an idle network commits a block about every 100 ms,
/// as before the chain was quiet when idle, so suites that count heights on an idle network
/// (a stopped validator's peers going on, a partition's majority deciding) keep their pace.
/// The idle behaviour itself is tested in `node/tests/cluster.rs`.
pub const HEARTBEAT_MS: u64 = 100;

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

/// A node's `/metrics` (the Prometheus text), read once: what the fault suites judge a
/// fault by (proposals refused and why, messages verified per validator, the gate's peers).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Each sample, keyed by its name and labels as exposed, e.g.
    /// `tally_proposals_refused_total{reason="state_root"}`.
    samples: BTreeMap<String, f64>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (key, value) = l.rsplit_once(' ')?;
                Some((key.to_string(), value.trim().parse::<f64>().ok()?))
            })
            .collect();
        Metrics { samples }
    }

    /// The value of `sample` (its name, and labels as exposed); 0 when absent, as a counter
    /// is until it first counts. Values are whole counts and gauges here.
    pub fn get(&self, sample: &str) -> u64 {
        self.samples.get(sample).map_or(0, |v| v.max(0.0) as u64)
    }

    /// The sum of metric `name` over all its label sets.
    pub fn sum(&self, name: &str) -> u64 {
        self.samples
            .iter()
            .filter(|(key, _)| {
                key.strip_prefix(name)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
            })
            .map(|(_, v)| v.max(0.0) as u64)
            .sum()
    }
}

/// `/health`'s answer.
#[derive(Debug, Deserialize)]
pub struct Health {
    pub status: String,
    pub height: Option<u64>,
    /// An audit node's: the highest height whose state it computed and found signed.
    #[serde(default)]
    pub verified_height: Option<u64>,
    /// The snapshot the node's chain started from, when it joined by state sync.
    #[serde(default)]
    pub synced_from_height: Option<u64>,
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
        let (layout, _) =
            Layout::create_or_resume(dir.path(), validators, auditors, Some(HEARTBEAT_MS), &tally)?;
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
            .api
            .clone())
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

    /// Node `i`'s `/metrics`, parsed.
    pub async fn metrics(&self, i: usize) -> Result<Metrics> {
        let answer = self
            .api(i)?
            .get("/metrics")
            .await
            .with_context(|| format!("{}: /metrics", self.name(i)))?;
        if !answer.status.is_success() {
            bail!("{}: /metrics answered {}", self.name(i), answer.status);
        }
        Ok(Metrics::parse(&String::from_utf8_lossy(&answer.body)))
    }

    /// The sum of metric `name` on each of `nodes` now.
    pub async fn metric_sums(&self, nodes: &[usize], name: &str) -> Result<Vec<u64>> {
        let mut sums = Vec::with_capacity(nodes.len());
        for &i in nodes {
            sums.push(self.metrics(i).await?.sum(name));
        }
        Ok(sums)
    }

    /// Waits until `condition` holds of node `i`'s metrics, failing at `deadline` (naming
    /// `what`, with the node's log tail) or if the process exits.
    pub async fn wait_metrics(
        &mut self,
        i: usize,
        what: &str,
        deadline: Instant,
        condition: impl Fn(&Metrics) -> bool,
    ) -> Result<Metrics> {
        loop {
            self.check_alive()?;
            if let Ok(metrics) = self.metrics(i).await
                && condition(&metrics)
            {
                return Ok(metrics);
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: not in time: {what}; its log ends:\n{}",
                    self.name(i),
                    self.log_tail(i)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the partition `groups` (as given to [`TestNet::partition`]; `&[]` for
    /// healed) is in force on every running node: each has read its blocked-peers file (its
    /// gate lists everyone outside its group) and has no link left across.
    pub async fn wait_partition(&mut self, groups: &[&[usize]], deadline: Instant) -> Result<()> {
        for i in self.running() {
            let group_size = groups
                .iter()
                .find(|g| g.contains(&i))
                .map_or(1, |g| g.len());
            let outside = if groups.is_empty() {
                0
            } else {
                self.len() - group_size
            };
            let linked_max = if groups.is_empty() {
                u64::MAX
            } else {
                (group_size - 1) as u64
            };
            self.wait_metrics(
                i,
                &format!("its gate lists {outside} peers and it has at most {linked_max} links"),
                deadline,
                |m| {
                    m.get("tally_gated_peers") == outside as u64
                        && m.get("tally_peers") <= linked_max
                },
            )
            .await?;
        }
        Ok(())
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
