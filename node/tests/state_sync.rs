//! State sync: validators take snapshots; a new audit node and a validator whose chain was
//! wiped start from the newest one instead of replaying every block, while one validator
//! serves every chunk corrupted (it is caught, cut off, and the join completes from the
//! honest one); then both follow the chain, the audit node verifying every block after the
//! snapshot. And a node that finds no snapshot offered says so and replays from height 1.

mod common;

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use common::*;
use tally_node::block::BlockResults;
use tally_node::config::{Mode, Snapshots, StateSync};
use tally_node::snapshots::SnapshotStore;
use tally_node::storage::{DATABASE_FILE, SIGNER_FILE};

const AUDIT: usize = 4;
const LIAR: usize = 3;
const WIPED: usize = 2;
const SNAPSHOTS: Snapshots = Snapshots {
    interval_blocks: 10,
    keep: 2,
    // Small chunks, so a snapshot of this test's ledger has several and the liar serves some.
    chunk_leaves: 16,
};
const JOIN: StateSync = StateSync {
    enable: true,
    discovery_ms: 2_000,
    fetchers: 4,
};

/// Node `i`'s newest snapshot whose next block it holds: what it offers first.
fn offered(cluster: &Cluster, i: usize) -> Result<Option<u64>> {
    let head = cluster.height(i)?;
    Ok(SnapshotStore::new(&cluster.data_dir(i), &SNAPSHOTS)
        .heights()
        .into_iter()
        .find(|h| *h < head))
}

/// Blocks from `from` to `to` are the same on nodes `a` and `b`, with the same state roots.
fn same_blocks(cluster: &Cluster, a: usize, b: usize, from: u64, to: u64) -> Result<()> {
    let (a, b) = (cluster.node(a)?, cluster.node(b)?);
    for h in from..=to {
        let ours = a.context.storage.block(h)?.context("block missing")?;
        ensure!(
            b.context.storage.block(h)?.as_ref() == Some(&ours),
            "block {h} differs"
        );
        let root = |n: &tally_node::node::Node| -> Result<_> {
            Ok(
                BlockResults::decode(&n.context.storage.results(h)?.context("no results")?)?
                    .state_root,
            )
        };
        ensure!(root(a)? == root(b)?, "the state after block {h} differs");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_node_and_a_wiped_validator_join_from_a_snapshot_despite_a_lying_peer()
-> Result<()> {
    let mut cluster = Cluster::new(genesis(4))?;
    let observers = BTreeSet::from([validator_key(AUDIT).public_key()]);
    for i in 0..4 {
        let mut config = cluster.config(i, Mode::Validator, observers.clone())?;
        config.snapshots = Some(SNAPSHOTS);
        config.test_faults.corrupt_snapshot_chunks = i == LIAR;
        cluster.start_config(i, config).await?;
    }
    cluster.wait_all(2).await?;
    // A ledger of some size: 80 wallets, each paying its neighbour a few times.
    let wallets: Vec<_> = (1..=80u128).flat_map(|id| open_wallet(id, 1_000)).collect();
    let opened = cluster.submit_all(&wallets, |_| 0).await?;
    cluster.wait_committed_ok(0, &opened).await?;
    let payments: Vec<_> = (0..3u64)
        .flat_map(|round| (1..=80u128).map(move |id| transfer(id, id % 80 + 1, 3 + round, 1)))
        .collect();
    let paid = cluster.submit_all(&payments, |n| n % 80 % 4).await?;
    cluster.wait_committed_ok(0, &paid).await?;
    let past = cluster.height(0)? + SNAPSHOTS.interval_blocks + 2;
    cluster.wait_all(past).await?;

    // Two validators stop: no quorum, the chain holds still, and the two left offer the
    // same snapshots. Validator 2 loses its chain (its signer's record is kept).
    cluster.take(1)?.kill().await;
    cluster.take(WIPED)?.kill().await;
    std::fs::remove_file(cluster.data_dir(WIPED).join(DATABASE_FILE))?;
    ensure!(cluster.data_dir(WIPED).join(SIGNER_FILE).exists());
    wait_until("both validators left offer the same snapshot", async || {
        Ok(cluster.height(0)? == cluster.height(LIAR)?
            && offered(&cluster, 0)?.is_some()
            && offered(&cluster, 0)? == offered(&cluster, LIAR)?)
    })
    .await?;
    let snapshot = offered(&cluster, 0)?.context("no snapshot offered")?;
    let head = cluster.height(0)?;

    // The audit node starts empty, with state sync on: it returns from start with the
    // snapshot installed.
    let mut config = cluster.config(AUDIT, Mode::Audit, BTreeSet::new())?;
    config.state_sync = JOIN;
    cluster.start_config(AUDIT, config).await?;
    let audit = cluster.node(AUDIT)?;
    ensure!(
        audit.context.storage.synced_from()? == Some(snapshot),
        "the audit node started from {:?}, not the snapshot of {snapshot}",
        audit.context.storage.synced_from()?
    );
    ensure!(
        audit.context.metrics.state_sync_bad_parts.get() >= 1,
        "the lying validator's chunks were never caught"
    );
    // It holds no block at or below the snapshot, and follows to the head.
    ensure!(audit.context.storage.block(snapshot)?.is_none());
    cluster.wait_height(AUDIT, head).await?;

    // The wiped validator joins the same way (from the validators left; the audit node takes
    // no snapshots).
    let mut config = cluster.config(WIPED, Mode::Validator, observers.clone())?;
    config.snapshots = Some(SNAPSHOTS);
    config.state_sync = JOIN;
    cluster.start_config(WIPED, config).await?;
    let wiped = cluster.node(WIPED)?;
    ensure!(wiped.context.storage.synced_from()? == Some(snapshot));
    ensure!(wiped.context.metrics.state_sync_bad_parts.get() >= 1);

    // Validator 1 comes back: a quorum again. Then the liar stops, so every block needs the
    // restored validator's vote: it takes part.
    let config = cluster.config(1, Mode::Validator, observers.clone())?;
    cluster.start_config(1, config).await?;
    let more: Vec<_> = (1..=80u128)
        .map(|id| transfer(id, id % 80 + 1, 6, 1))
        .collect();
    let more = cluster.submit_all(&more, |n| n % 80 % 3).await?;
    cluster.wait_committed_ok(0, &more).await?;
    cluster.take(LIAR)?.kill().await;
    let later = cluster.height(0)? + 5;
    for i in [0, 1, WIPED, AUDIT] {
        cluster.wait_height(i, later).await?;
    }
    // Every node agrees on every block after the snapshot, and the audit node verified each.
    let to = later
        .min(cluster.height(AUDIT)?)
        .min(cluster.height(WIPED)?);
    same_blocks(&cluster, 0, AUDIT, snapshot + 1, to)?;
    same_blocks(&cluster, 0, WIPED, snapshot + 1, to)?;
    let audit = cluster.node(AUDIT)?;
    ensure!(
        audit.context.metrics.audit_alarm.get() == 0,
        "the audit node raised its alarm"
    );
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_snapshot_offered_a_node_replays_from_height_one() -> Result<()> {
    let mut cluster = Cluster::new(genesis(4))?;
    let observers = BTreeSet::from([validator_key(AUDIT).public_key()]);
    for i in 0..4 {
        cluster
            .start_with(i, Mode::Validator, observers.clone())
            .await?;
    }
    cluster.wait_all(5).await?;
    let mut config = cluster.config(AUDIT, Mode::Audit, BTreeSet::new())?;
    config.state_sync = StateSync {
        discovery_ms: 500,
        ..JOIN
    };
    cluster.start_config(AUDIT, config).await?;
    let audit = cluster.node(AUDIT)?;
    ensure!(audit.context.storage.synced_from()?.is_none());
    let head = cluster.height(0)?;
    cluster.wait_height(AUDIT, head).await?;
    ensure!(cluster.node(AUDIT)?.context.storage.block(1)?.is_some());
    cluster.shutdown().await
}
