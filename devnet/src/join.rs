//! `tally-devnet join`: how long a node takes to join a chain with history, from a snapshot
//! (state sync) and by replaying every block from height 1 (block sync), side by side.
//!
//! The devnet has four validators, which take snapshots (`[snapshots]`), and three audit
//! nodes: one follows from the start, two stay stopped. The bench load runs for the given
//! time; then, one after the other so they do not share the cores: an audit node joins with
//! `[state_sync]` on; validator-3 loses its chain (its signer's record kept) and joins the
//! same way; the last audit node joins by block sync. Each is timed from its start to the
//! height the validators had at that moment.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;

use crate::layout::{Layout, NodeMode};
use crate::processes::{Health, Network};

/// The longest one join is waited for.
const JOIN_WAIT: Duration = Duration::from_secs(20 * 60);
const POLL: Duration = Duration::from_millis(100);

/// What the command measured; the JSON line is this, serialized.
#[derive(Debug, Serialize)]
pub struct JoinReport {
    /// Transactions committed by the load (the history the joiners start behind).
    pub history_txs: u64,
    pub load: crate::bench::Report,
    pub joins: Vec<Join>,
    /// Block sync's time ÷ the state-synced audit node's.
    pub speedup: f64,
}

/// One node's join.
#[derive(Debug, Serialize)]
pub struct Join {
    pub node: String,
    /// `state-sync` or `block-sync`.
    pub how: String,
    /// The validators' height when it started: what it had to reach.
    pub target_height: u64,
    /// The snapshot it started from (none for block sync).
    pub snapshot_height: Option<u64>,
    /// Until its API first answered: a node that joins by state sync opens its API once
    /// the snapshot is installed, so this is discovery, chunks and install.
    pub ready_seconds: f64,
    /// Until it reached the target height: the above, then the blocks after the snapshot.
    pub seconds: f64,
}

/// Starts node `index` and waits until it reports `target` or more.
async fn time_join(
    network: &mut Network,
    layout: &Layout,
    index: usize,
    how: &str,
    tally_bin: &std::path::Path,
) -> Result<Join> {
    let target = validator_height(network).await?;
    let started = Instant::now();
    network.restart(layout, index, tally_bin)?;
    let node = network.nodes.get_mut(index).context("no such node")?;
    eprintln!(
        "{} joins by {how}; the validators are at height {target}",
        node.spec.name
    );
    let mut ready_seconds = None;
    loop {
        if let Some(status) = node.exit_status()? {
            bail!(
                "{} exited ({status}); its log ends:\n{}",
                node.spec.name,
                crate::processes::log_tail(&node.log)
            );
        }
        let health = node.api.get_json::<Health>("/health").await;
        if health.is_ok() && ready_seconds.is_none() {
            ready_seconds = Some(started.elapsed().as_secs_f64());
        }
        if let Ok(health) = health
            && health.height.is_some_and(|h| h >= target)
        {
            let seconds = started.elapsed().as_secs_f64();
            eprintln!(
                "{} reached {target} in {seconds:.1} s (started from {})",
                node.spec.name,
                health
                    .synced_from_height
                    .map_or("the genesis".to_string(), |h| format!(
                        "the snapshot of {h}"
                    ))
            );
            return Ok(Join {
                node: node.spec.name.clone(),
                how: how.to_string(),
                target_height: target,
                snapshot_height: health.synced_from_height,
                ready_seconds: ready_seconds.unwrap_or(seconds),
                seconds,
            });
        }
        ensure!(
            started.elapsed() < JOIN_WAIT,
            "{} did not reach {target} in {JOIN_WAIT:?}",
            node.spec.name
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The highest height a running validator reports.
async fn validator_height(network: &Network) -> Result<u64> {
    let mut best = None;
    for node in network.validators().filter(|n| n.is_started()) {
        if let Ok(health) = node.api.get_json::<Health>("/health").await {
            best = best.max(health.height);
        }
    }
    best.context("no validator answers")
}

fn index_of(network: &Network, name: &str) -> Result<usize> {
    network
        .nodes
        .iter()
        .position(|n| n.spec.name == name)
        .with_context(|| format!("the devnet has no {name}"))
}

/// Runs the load on `network` (started without the two joining audit nodes), then the joins.
pub async fn run(
    layout: &Layout,
    network: &mut Network,
    load: &crate::bench::Options,
    tally_bin: &std::path::Path,
) -> Result<JoinReport> {
    let validators: Vec<_> = network.validators().map(|n| n.api.address).collect();
    let pids: Vec<crate::bench::NodePid> = network
        .nodes
        .iter()
        .filter_map(|n| {
            n.pid().map(|pid| crate::bench::NodePid {
                name: n.spec.name.clone(),
                pid,
            })
        })
        .collect();
    let report = crate::bench::run(layout, &validators, &pids, load).await?;
    ensure!(report.committed > 0, "the load committed nothing");

    let state_synced = index_of(network, "audit-1")?;
    let block_synced = index_of(network, "audit-2")?;
    let mut joins = vec![time_join(network, layout, state_synced, "state-sync", tally_bin).await?];

    // A validator loses its chain; its signer's record (signer.redb) stays.
    let wiped = index_of(network, "validator-3")?;
    let spec = network
        .nodes
        .get(wiped)
        .context("no validator-3")?
        .spec
        .clone();
    if let Some(node) = network.nodes.get_mut(wiped) {
        node.stop().await;
    }
    let chain = layout
        .data_dir(&spec)
        .join(tally_node::storage::DATABASE_FILE);
    std::fs::remove_file(&chain).with_context(|| format!("removing {}", chain.display()))?;
    let config = std::fs::read_to_string(layout.config_path(&spec))?;
    if !config.contains("[state_sync]") {
        layout.append_config(&spec, "[state_sync]\nenable = true")?;
    }
    joins.push(time_join(network, layout, wiped, "state-sync", tally_bin).await?);

    joins.push(time_join(network, layout, block_synced, "block-sync", tally_bin).await?);
    let seconds = |how: &str| {
        joins
            .iter()
            .find(|j| j.how == how)
            .map_or(f64::NAN, |j| j.seconds)
    };
    Ok(JoinReport {
        history_txs: report.committed,
        speedup: seconds("block-sync") / seconds("state-sync"),
        load: report,
        joins,
    })
}

/// The devnet's nodes that stay stopped until their join.
pub const JOINERS: [&str; 2] = ["audit-1", "audit-2"];

/// How often the validators snapshot the state for this command: a few a minute under the
/// bench's load, so the joiners start near the head.
pub const SNAPSHOT_INTERVAL_BLOCKS: u64 = 50;

/// The configuration of a new devnet for the joins, before it starts: the validators take
/// snapshots; one joining audit node has state sync on, the other nothing (it replays from
/// height 1).
pub fn prepare(layout: &Layout) -> Result<()> {
    for validator in layout.validators() {
        layout.append_config(
            validator,
            &format!("[snapshots]\ninterval_blocks = {SNAPSHOT_INTERVAL_BLOCKS}"),
        )?;
    }
    let audit = |name: &str| {
        layout
            .manifest
            .nodes
            .iter()
            .find(|n| n.name == name && n.mode == NodeMode::Audit)
            .with_context(|| format!("the devnet has no {name}"))
    };
    let state_synced = audit("audit-1")?;
    audit("audit-2")?;
    let config = std::fs::read_to_string(layout.config_path(state_synced))?;
    if !config.contains("[state_sync]") {
        layout.append_config(state_synced, "[state_sync]\nenable = true")?;
    }
    Ok(())
}

pub fn print(report: &JoinReport, json: bool) -> Result<()> {
    println!(
        "history: {} transactions committed in {} s of load ({:.0} tx/s)",
        report.history_txs, report.load.duration_s, report.load.tps
    );
    for join in &report.joins {
        println!(
            "{:<12} {:<10} answered after {:>5.1} s, reached height {:>6} in {:>6.1} s{}",
            join.node,
            join.how,
            join.ready_seconds,
            join.target_height,
            join.seconds,
            join.snapshot_height
                .map_or(String::new(), |h| format!(" (from the snapshot of {h})"))
        );
    }
    println!(
        "state sync is {:.1}× faster than block sync",
        report.speedup
    );
    if json {
        println!("{}", serde_json::to_string(report)?);
    }
    Ok(())
}
