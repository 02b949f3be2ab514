//! Validators in one process over real loopback sockets: consensus, execution, storage,
//! mempool and sync working together. Larger loads behind `TALLY_CLUSTER_WALLETS`.

mod common;

use anyhow::Result;
use common::*;

fn wallets() -> u128 {
    std::env::var("TALLY_CLUSTER_WALLETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_commit_thousands_of_transfers_with_the_same_state() -> Result<()> {
    let mut cluster = Cluster::new(genesis(4))?;
    for i in 0..4 {
        cluster.start(i).await?;
    }
    cluster.wait_all(2).await?;
    let wallets = wallets();
    let transfers_each: u64 = 20;
    let opening: Vec<_> = (1..=wallets)
        .flat_map(|id| open_wallet(id, 100_000))
        .collect();
    let hashes = cluster.submit_all(&opening, |n| n / 3 % 4).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    // Each wallet pays the next one, in a ring: balances stay where they started.
    let mut transfers = Vec::new();
    for nonce in 3..3 + transfers_each {
        for id in 1..=wallets {
            transfers.push(transfer(id, id % wallets + 1, nonce, 7));
        }
    }
    let hashes = cluster
        .submit_all(&transfers, |n| (n % wallets as usize) % 4)
        .await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    let height = cluster.height(0)?;
    cluster.wait_all(height).await?;
    cluster.assert_same_chain(height)?;
    for i in 0..4 {
        let store = &cluster.node(i)?.context.storage;
        for id in 1..=wallets {
            let account = tally_contracts::query::account(store, tally_contracts::AccountId(id))?
                .ok_or_else(|| anyhow::anyhow!("wallet {id} missing on node {i}"))?;
            anyhow::ensure!(account.holder.nonce == 3 + transfers_each);
        }
    }
    cluster.shutdown().await
}

/// Five fresh wallets opened, then each pays another; submitted to node `to`. Returns the
/// hashes of the payments once the openings are committed.
async fn some_payments(
    cluster: &Cluster,
    first_wallet: u128,
    to: usize,
) -> Result<Vec<tally_crypto::Hash>> {
    let wallets = first_wallet..first_wallet + 5;
    let opening: Vec<_> = wallets
        .clone()
        .flat_map(|id| open_wallet(id, 1_000))
        .collect();
    let opened = cluster.submit_all(&opening, |_| to).await?;
    cluster.wait_committed_ok(to, &opened).await?;
    let payments: Vec<_> = wallets
        .map(|id| {
            let payee = if id == first_wallet {
                id + 1
            } else {
                first_wallet
            };
            transfer(id, payee, 3, 10)
        })
        .collect();
    cluster.submit_all(&payments, |_| to).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_validator_restarts_and_catches_up_with_the_same_state() -> Result<()> {
    let mut cluster = Cluster::new(genesis(4))?;
    for i in 0..4 {
        cluster.start(i).await?;
    }
    cluster.wait_all(3).await?;
    cluster.take(3)?.kill().await;
    let hashes = some_payments(&cluster, 1_000, 0).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    let height = cluster.height(0)? + 3;
    cluster.wait_height(0, height).await?;
    cluster.start(3).await?;
    cluster.wait_height(3, height + 3).await?;
    cluster.wait_committed_ok(3, &hashes).await?;
    cluster.wait_all(height + 3).await?;
    cluster.assert_same_chain(height + 3)?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_late_syncs_from_height_one() -> Result<()> {
    let mut cluster = Cluster::new(genesis(4))?;
    for i in 0..3 {
        cluster.start(i).await?;
    }
    let hashes = some_payments(&cluster, 2_000, 1).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    cluster.wait_all(6).await?;
    cluster.start(3).await?;
    let height = cluster.height(0)?;
    cluster.wait_height(3, height).await?;
    cluster.wait_committed_ok(3, &hashes).await?;
    cluster.assert_same_chain(height)?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_validator_is_added_by_governance_and_later_removed() -> Result<()> {
    use tally_consensus::{Validator, ValidatorSet};
    use tally_node::validator_update::{ValidatorChange, ValidatorUpdate};
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "off".into()))
        .with_test_writer()
        .try_init();
    let mut cluster = Cluster::new(genesis(4))?;
    for i in 0..4 {
        cluster.start(i).await?;
    }
    cluster.wait_all(2).await?;
    let four = cluster.genesis.validator_set()?;
    let fifth = validator_key(4);
    let at = cluster.height(0)? + 8;
    let added = ValidatorChange::with(
        &four,
        Validator {
            public_key: fifth.public_key(),
            power: 1,
        },
        at,
    );
    let keys: Vec<_> = (0..4).map(validator_key).collect();
    let update = ValidatorUpdate::sign(added.clone(), CHAIN, &[&keys[0], &keys[1], &keys[2]]);
    cluster.node(0)?.submit_validator_update(update).await??;
    // The fifth starts as a follower; it is let in once the change is scheduled.
    cluster.start(4).await?;
    cluster.wait_all(at + 1).await?;
    // With five validators a quorum is four: without the fifth's votes nothing commits.
    cluster.take(3)?.kill().await;
    cluster.wait_height(0, at + 4).await?;
    cluster.wait_height(4, at + 4).await?;
    let five = ValidatorSet::new(added.validators.clone())?;
    let at2 = cluster.height(0)? + 8;
    let removed = ValidatorChange::without(&five, &fifth.public_key(), at2);
    let update = ValidatorUpdate::sign(removed, CHAIN, &[&keys[0], &keys[1], &keys[2], &fifth]);
    cluster.node(1)?.submit_validator_update(update).await??;
    cluster.wait_height(0, at2).await?;
    cluster.take(4)?.shutdown().await?;
    // Back to the four (one of them down): three of four still commit.
    cluster.wait_height(0, at2 + 3).await?;
    let height = cluster.height(0)?;
    cluster.wait_all(height).await?;
    cluster.assert_same_chain(height)?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_peer_message_is_dropped_and_the_node_goes_on_committing() -> Result<()> {
    use std::time::Duration;
    use tally_node::network::{self, NetworkConfig, PeerAddress, PeerSet};
    let mut cluster = Cluster::new(genesis(4))?;
    for i in 0..3 {
        cluster.start(i).await?;
    }
    cluster.wait_all(2).await?;
    // Validator 3's key, speaking garbage.
    let target = cluster.node(0)?;
    let rogue = network::start(
        &validator_key(3),
        NetworkConfig {
            listen_address: "/ip4/127.0.0.1/tcp/0".parse()?,
            peers: vec![PeerAddress {
                public_key: target.public_key,
                address: target
                    .listen_addresses
                    .first()
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("no address"))?,
            }],
            peer_set: PeerSet {
                validators: (0..4).map(|i| validator_key(i).public_key()).collect(),
                observers: Default::default(),
            },
            message_bytes_max: 1 << 20,
            request_timeout: Duration::from_secs(2),
            redial_delay_max: Duration::from_secs(60),
            peer_block_duration: Duration::from_secs(60),
            events_capacity: 64,
            blocked_peers_file: None,
            counters: Default::default(),
            topics: tally_node::network::GossipTopic::ALL.to_vec(),
        },
    )
    .await?;
    let metrics = &target.context.metrics;
    let dropped_before = metrics.consensus_messages_dropped.get("undecodable");
    wait_until(
        "the rogue peer connected and sent its garbage",
        async || {
            Ok(rogue
                .handle
                .send_direct(target.public_key, vec![0xff; 100])
                .await
                .is_ok())
        },
    )
    .await?;
    // The garbage arrived: node 0 dropped it as undecodable and cut the rogue off.
    wait_until(
        "node 0 dropped the garbage and cut the rogue off",
        async || {
            Ok(
                metrics.consensus_messages_dropped.get("undecodable") > dropped_before
                    && metrics.network.peers_cut_off.get("reported") > 0,
            )
        },
    )
    .await?;
    let height = cluster.height(0)?;
    cluster.wait_height(0, height + 3).await?;
    let hashes = some_payments(&cluster, 3_000, 0).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    rogue.handle.shutdown().await.ok();
    cluster.shutdown().await
}

/// The chain task's queue to the network at its least (one command), on every validator: a
/// step of consensus sends several messages at once (a proposal, then a vote; a vote to each
/// peer), so commands are dropped for want of room, and counted. Consensus resends what was
/// lost, so the chain still commits payments and the validators agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbound_queue_drops_counted_commands_and_the_chain_goes_on() -> Result<()> {
    const QUEUE: i64 = 1;
    let mut cluster = Cluster::new(genesis(4))?;
    cluster.limits = tally_node::config::Limits {
        outbound_max: QUEUE as u64,
        ..Default::default()
    };
    for i in 0..4 {
        cluster.start(i).await?;
    }
    let mut most_queued = 0;
    let mut sample = |cluster: &Cluster| -> Result<u64> {
        let mut dropped = 0;
        for i in 0..4 {
            let metrics = &cluster.node(i)?.context.metrics;
            most_queued = most_queued.max(metrics.memory.outbound_queued.get());
            dropped += metrics.limit_reached.get("outbound_max");
        }
        Ok(dropped)
    };
    // The positive sign that the bound was met: a command refused by the full queue.
    wait_until(
        "a validator dropped a network command for want of room",
        async || Ok(sample(&cluster)? > 0),
    )
    .await?;
    let hashes = some_payments(&cluster, 3_000, 0).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    let height = cluster.height(0)? + 2;
    cluster.wait_all(height).await?;
    cluster.assert_same_chain(height)?;
    sample(&cluster)?;
    anyhow::ensure!(
        most_queued <= QUEUE,
        "network commands queued: {most_queued}, bound {QUEUE}"
    );
    cluster.shutdown().await
}

/// The transactions in each committed block of node `i`, heights 1 to its head.
fn txs_per_block(cluster: &Cluster, i: usize) -> Result<Vec<usize>> {
    let storage = &cluster.node(i)?.context.storage;
    (1..=cluster.height(i)?)
        .map(|h| {
            let results = storage
                .results(h)?
                .ok_or_else(|| anyhow::anyhow!("results of block {h} missing"))?;
            Ok(tally_node::block::BlockResults::decode(&results)?
                .receipts
                .len())
        })
        .collect()
}

/// Quiet when idle (issue 18): an idle chain commits one block per heartbeat, not one every
/// ~100 ms, and each of those is empty. The claim "no more blocks" is judged after a
/// positive sign that heartbeats had their chance: every node's own count of heights it
/// started on the heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_chain_commits_one_block_per_heartbeat() -> Result<()> {
    const HEARTBEAT_MS: u64 = 1_000;
    const HEARTBEATS: u64 = 4;
    let mut genesis = genesis(4);
    genesis.heartbeat_ms = HEARTBEAT_MS;
    let mut cluster = Cluster::new(genesis)?;
    for i in 0..4 {
        cluster.start(i).await?;
    }
    cluster.wait_all(1).await?;
    let (from, started) = (cluster.height(0)?, std::time::Instant::now());
    wait_until(
        "every validator started heights on the heartbeat",
        async || {
            Ok(cluster
                .running()
                .all(|n| n.context.metrics.idle_heartbeats.get() >= HEARTBEATS))
        },
    )
    .await?;
    let (to, elapsed) = (cluster.height(0)?, started.elapsed());
    // Each idle block comes a heartbeat after the one before it (a few milliseconds less
    // on a node that committed the previous one late): at most one per heartbeat, plus the
    // block under way at each end of the window.
    let most = elapsed.as_millis() as u64 / HEARTBEAT_MS + 2;
    anyhow::ensure!(
        to - from <= most,
        "{} blocks in {elapsed:?} of idling with a {HEARTBEAT_MS} ms heartbeat (at most {most})",
        to - from
    );
    anyhow::ensure!(to > from, "no heartbeat block at all");
    let txs = txs_per_block(&cluster, 0)?;
    anyhow::ensure!(
        txs.iter().all(|&n| n == 0),
        "an idle block with txs: {txs:?}"
    );
    // Work still commits: the chain is quiet, not asleep.
    let hashes = some_payments(&cluster, 5_000, 1).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    cluster.shutdown().await
}

/// A transaction does not wait for the heartbeat: with the longest heartbeat a genesis may
/// set (10 minutes), payments on an idle chain commit within the suites' usual deadline
/// (a minute), and no node ever started a height on the heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_on_an_idle_chain_is_proposed_at_once() -> Result<()> {
    let mut genesis = genesis(4);
    genesis.heartbeat_ms = *tally_node::genesis::HEARTBEAT_MS_RANGE.end();
    let mut cluster = Cluster::new(genesis)?;
    for i in 0..4 {
        cluster.start(i).await?;
    }
    let hashes = some_payments(&cluster, 6_000, 2).await?;
    cluster.wait_committed_ok(2, &hashes).await?;
    for node in cluster.running() {
        anyhow::ensure!(node.context.metrics.idle_heartbeats.get() == 0);
    }
    cluster.shutdown().await
}
