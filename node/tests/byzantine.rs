//! One Byzantine validator among four (the test-only `[test_faults]` modes, see
//! `tally_node::faults`), and partitions built with the blocked peers file, over real
//! loopback sockets with the real node. Each test checks that the honest nodes hold the same
//! blocks and state roots, that the chain goes on, and where a validator equivocated, that
//! the evidence is on chain and held by the audit node.
//!
//! Each test first checks that its fault happened, from the honest nodes' own counters
//! (proposals refused with their reason, equivocations seen, messages verified per
//! validator, the gate's peers), then what it caused; a claim that something did not happen
//! is judged after a positive sign that it had its chance (the majority went on, the
//! partitioned nodes kept hearing their own side), never after a fixed pause.

// Test equipment: a step that fails is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::*;
use tally_consensus::{
    CommitCertificate, EquivocationKind, Evidence, Height, Round, ValidatorIndex,
};
use tally_contracts::{Rejection, verify_transactions};
use tally_crypto::{KeyCache, PublicKey};
use tally_node::block::{Block, BlockResults};
use tally_node::config::{Byzantine, InvalidBlock, Limits, Mode, TestFaults};
use tally_node::metrics::Metrics;
use tally_node::network::PeerAddress;
use tally_node::node::Node;

/// The faulty validator's index.
const FAULTY: usize = 3;
/// The audit node's index; its key is not a validator's.
const AUDIT: usize = 4;
/// How many of its own side's consensus messages (resent every second) a partitioned node
/// must verify before its standing still is judged: proof it was live and listening.
const HEARD_WHILE_CUT: u64 = 4;

fn metrics(cluster: &Cluster, i: usize) -> Result<&Metrics> {
    Ok(&cluster.node(i)?.context.metrics)
}

/// The sum of one counter over `nodes`.
fn total(cluster: &Cluster, nodes: &[usize], read: impl Fn(&Metrics) -> u64) -> Result<u64> {
    nodes.iter().map(|&i| Ok(read(metrics(cluster, i)?))).sum()
}

/// Starts node `i` with `faults`, dialling every node running now (so it may start after
/// nodes the cluster does not know the address of).
async fn start_faulty(
    cluster: &mut Cluster,
    i: usize,
    mode: Mode,
    observers: BTreeSet<PublicKey>,
    faults: TestFaults,
) -> Result<()> {
    let mut config = cluster.config(i, mode, observers)?;
    config.peers = cluster
        .running()
        .filter(|n| n.public_key != validator_key(i).public_key())
        .map(|n| PeerAddress {
            public_key: n.public_key,
            address: n.listen_addresses[0].clone(),
        })
        .collect();
    config.test_faults = faults;
    let node = Node::start(
        &config,
        validator_key(i),
        &cluster.genesis,
        cluster.options.clone(),
    )
    .await
    .with_context(|| format!("node {i} did not start"))?;
    while cluster.nodes.len() <= i {
        cluster.nodes.push(None);
    }
    cluster.nodes[i] = Some(node);
    Ok(())
}

/// Validators 0..3 honest, the audit node, then validator 3 with `byzantine`.
async fn cluster_with(byzantine: Byzantine) -> Result<Cluster> {
    cluster_limited(byzantine, Limits::default()).await
}

/// [`cluster_with`], every node started with `limits`.
async fn cluster_limited(byzantine: Byzantine, limits: Limits) -> Result<Cluster> {
    let mut cluster = Cluster::new(genesis(4))?;
    cluster.limits = limits;
    let observers = BTreeSet::from([validator_key(AUDIT).public_key()]);
    for i in 0..FAULTY {
        cluster
            .start_with(i, Mode::Validator, observers.clone())
            .await?;
    }
    cluster
        .start_with(AUDIT, Mode::Audit, BTreeSet::new())
        .await?;
    start_faulty(
        &mut cluster,
        FAULTY,
        Mode::Validator,
        observers,
        TestFaults {
            byzantine: Some(byzantine),
            ..TestFaults::default()
        },
    )
    .await?;
    Ok(cluster)
}

/// Opens wallets 1..=4 through the honest validators and has them pay each other once;
/// waits until validator 0 committed every one, accepted.
async fn honest_payments(cluster: &Cluster, honest: &[usize]) -> Result<()> {
    let opening: Vec<_> = (1..=4).flat_map(|id| open_wallet(id, 10_000)).collect();
    let hashes = cluster
        .submit_all(&opening, |n| honest[n / 3 % honest.len()])
        .await?;
    cluster.wait_committed_ok(honest[0], &hashes).await?;
    let payments: Vec<_> = (1..=4).map(|id| transfer(id, id % 4 + 1, 3, 100)).collect();
    let hashes = cluster
        .submit_all(&payments, |n| honest[n % honest.len()])
        .await?;
    cluster.wait_committed_ok(honest[0], &hashes).await
}

/// Nodes `nodes` hold the same block and the same state root after it at every height
/// each of them has, up to `height`; each has at least `height`.
fn assert_agree(cluster: &Cluster, nodes: &[usize], height: u64) -> Result<()> {
    let first = cluster.node(nodes[0])?;
    for h in 1..=height {
        let block = first.context.storage.block(h)?.context("block missing")?;
        let root = state_root(first, h)?;
        for &i in &nodes[1..] {
            let other = cluster.node(i)?;
            ensure!(
                other.context.storage.block(h)?.as_ref() == Some(&block),
                "block {h} differs on node {i}"
            );
            ensure!(
                state_root(other, h)? == root,
                "state root after {h} differs on node {i}"
            );
        }
    }
    Ok(())
}

fn state_root(node: &Node, height: u64) -> Result<tally_crypto::Hash> {
    let results = node
        .context
        .storage
        .results(height)?
        .with_context(|| format!("no results for block {height}"))?;
    Ok(BlockResults::decode(&results)?.state_root)
}

fn blocks(node: &Node, height: u64) -> Result<Vec<Block>> {
    (1..=height)
        .map(|h| {
            let bytes = node.context.storage.block(h)?.context("block missing")?;
            Ok(Block::decode(&bytes)?)
        })
        .collect()
}

/// The evidence committed in blocks 1..=height on `node`.
fn committed_evidence(node: &Node, height: u64) -> Result<Vec<Evidence>> {
    Ok(blocks(node, height)?
        .into_iter()
        .flat_map(|b| b.evidence)
        .collect())
}

fn faulty_index(cluster: &Cluster) -> Result<ValidatorIndex> {
    cluster
        .genesis
        .validator_set()?
        .index_of(&validator_key(FAULTY).public_key())
        .context("faulty validator not in the set")
}

/// Waits until the audit node has committed evidence of `kind` against the faulty
/// validator; returns the height it holds then.
async fn wait_for_evidence(cluster: &Cluster, kinds: &[EquivocationKind]) -> Result<u64> {
    let faulty = faulty_index(cluster)?;
    let audit = cluster.node(AUDIT)?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let height = cluster.height(AUDIT)?;
        let evidence = committed_evidence(audit, height)?;
        if evidence
            .iter()
            .any(|e| e.validator() == faulty && kinds.contains(&e.kind()))
        {
            ensure!(
                evidence.iter().all(|e| e.validator() == faulty),
                "evidence against an honest validator: {evidence:?}"
            );
            return Ok(height);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no {kinds:?} evidence on the audit node by height {height}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The evidence `node` serves at `/v1/evidence` (its real API router on a loopback port),
/// checked to be exactly what its blocks 1..=height carry.
async fn assert_served_evidence(node: &Node, height: u64) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let router = tally_node::api::router(node.context.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let request = format!(
        "GET /v1/evidence?before_height={} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n",
        height + 1
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await??;
    server.abort();
    let answer = String::from_utf8(answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").context("no HTTP body")?;
    ensure!(head.starts_with("HTTP/1.1 200"), "/v1/evidence: {head}");
    let page: serde_json::Value = serde_json::from_str(body)?;
    let served: BTreeSet<String> = page["items"]
        .as_array()
        .context("no items")?
        .iter()
        .map(|item| item["evidence"].to_string())
        .collect();
    let stored: BTreeSet<String> = committed_evidence(node, height)?
        .iter()
        .map(|e| Ok(serde_json::to_value(e)?.to_string()))
        .collect::<Result<_>>()?;
    ensure!(!served.is_empty(), "no evidence served");
    ensure!(served == stored, "served evidence differs from the blocks'");
    Ok(())
}

/// The common checks after a Byzantine run: honest payments commit, the chain passes
/// `height` (the faulty validator had its turns to propose), and the honest validators and
/// the audit node agree on every block and state root.
async fn honest_nodes_agree_and_go_on(cluster: &Cluster, height: u64) -> Result<u64> {
    honest_payments(cluster, &[0, 1, 2]).await?;
    let target = height.max(cluster.height(0)?);
    for i in [0, 1, 2, AUDIT] {
        cluster.wait_height(i, target).await?;
    }
    assert_agree(cluster, &[0, 1, 2, AUDIT], target)?;
    Ok(target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocating_proposer_is_outvoted_and_its_evidence_committed() -> Result<()> {
    // The verified-block memory at its least: the two blocks of an equivocating round do
    // not fit, one is evicted, and the decided one is verified again at commit.
    let cluster = cluster_limited(
        Byzantine::EquivocatingProposer,
        Limits {
            verified_blocks_max: 1,
            ..Limits::default()
        },
    )
    .await?;
    // The fault happened: honest nodes saw two proposals signed for one slot.
    let mut most_verified = 0;
    wait_until(
        "an honest validator saw the proposer equivocate",
        async || {
            for i in [0, 1, 2] {
                most_verified =
                    most_verified.max(metrics(&cluster, i)?.memory.verified_blocks.get());
            }
            Ok(total(&cluster, &[0, 1, 2], |m| m.equivocations_detected.get())? > 0)
        },
    )
    .await?;
    wait_until("an honest validator evicted a verified block", async || {
        for i in [0, 1, 2] {
            most_verified = most_verified.max(metrics(&cluster, i)?.memory.verified_blocks.get());
        }
        Ok(total(&cluster, &[0, 1, 2], |m| {
            m.limit_reached.get("verified_blocks_max")
        })? > 0)
    })
    .await?;
    // Only the bound is judged: a sample may fall between a commit (which empties the
    // memory) and the next verified block; the eviction counted above is the positive sign.
    ensure!(
        most_verified <= 1,
        "verified blocks held: {most_verified}, bound 1"
    );
    let height = honest_nodes_agree_and_go_on(&cluster, 8).await?;
    let at = wait_for_evidence(&cluster, &[EquivocationKind::Proposal]).await?;
    let height = height.max(at);
    for i in [0, 1, 2] {
        cluster.wait_height(i, height).await?;
    }
    assert_agree(&cluster, &[0, 1, 2, AUDIT], height)?;
    // Every piece of evidence verifies and none is committed twice.
    let evidence = committed_evidence(cluster.node(AUDIT)?, height)?;
    let set = cluster.genesis.validator_set()?;
    for e in &evidence {
        e.verify(&set, CHAIN)?;
    }
    let distinct: BTreeSet<&Evidence> = evidence.iter().collect();
    ensure!(distinct.len() == evidence.len(), "evidence committed twice");
    assert_served_evidence(cluster.node(AUDIT)?, height).await?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_voter_is_outvoted_and_its_evidence_committed() -> Result<()> {
    let cluster = cluster_with(Byzantine::DoubleVoter).await?;
    wait_until("an honest validator saw the double vote", async || {
        Ok(total(&cluster, &[0, 1, 2], |m| m.equivocations_detected.get())? > 0)
    })
    .await?;
    let height = honest_nodes_agree_and_go_on(&cluster, 6).await?;
    let at = wait_for_evidence(
        &cluster,
        &[EquivocationKind::Prevote, EquivocationKind::Precommit],
    )
    .await?;
    for i in [0, 1, 2] {
        cluster.wait_height(i, at).await?;
    }
    assert_agree(&cluster, &[0, 1, 2, AUDIT], height.max(at))?;
    let evidence = committed_evidence(cluster.node(AUDIT)?, height.max(at))?;
    let distinct: BTreeSet<&Evidence> = evidence.iter().collect();
    ensure!(distinct.len() == evidence.len(), "evidence committed twice");
    assert_served_evidence(cluster.node(AUDIT)?, height.max(at)).await?;
    cluster.shutdown().await
}

/// The evidence memories at their least (one piece pending, two remembered) against a
/// validator that double-votes at every height: more evidence arrives than they hold, they
/// stay within their bounds, what did not fit is counted, and the chain goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_memory_stays_within_its_limits_and_the_chain_goes_on() -> Result<()> {
    const PENDING: i64 = 1;
    const REMEMBERED: i64 = 2;
    let cluster = cluster_limited(
        Byzantine::DoubleVoter,
        Limits {
            evidence_pending_max: PENDING as u64,
            evidence_remembered_max: REMEMBERED as u64,
            ..Limits::default()
        },
    )
    .await?;
    let honest = [0, 1, 2];
    let (mut most_pending, mut most_remembered) = (0, 0);
    // Filled past both bounds: evidence refused for want of room, and more committed than
    // remembered (the oldest forgotten).
    wait_until(
        "evidence refused and forgotten past both bounds",
        async || {
            for &i in &honest {
                let memory = &metrics(&cluster, i)?.memory;
                most_pending = most_pending.max(memory.evidence_pending.get());
                most_remembered = most_remembered.max(memory.evidence_remembered.get());
            }
            let reached =
                |limit: &'static str| total(&cluster, &honest, |m| m.limit_reached.get(limit));
            Ok(reached("evidence_pending_max")? > 0 && reached("evidence_remembered_max")? > 0)
        },
    )
    .await?;
    // Only the bounds are judged from the sampled gauges (a sample may come before a
    // commit set them); that both bounds were reached is counted above.
    ensure!(
        most_pending <= PENDING,
        "pending evidence held {most_pending}, bound {PENDING}"
    );
    ensure!(
        most_remembered <= REMEMBERED,
        "remembered evidence held {most_remembered}, bound {REMEMBERED}"
    );
    // The chain goes on, the nodes agree, and the evidence on chain names only the faulty
    // validator.
    honest_nodes_agree_and_go_on(&cluster, cluster.height(0)? + 2).await?;
    wait_for_evidence(
        &cluster,
        &[EquivocationKind::Prevote, EquivocationKind::Precommit],
    )
    .await?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_validator_does_not_stop_the_chain_and_still_follows_it() -> Result<()> {
    let cluster = cluster_with(Byzantine::Silent).await?;
    let faulty = validator_key(FAULTY).public_key();
    let index = faulty_index(&cluster)?;
    // It is connected to every honest validator (it hears them all) and follows.
    wait_until(
        "the silent validator connected to the three honest ones",
        async || {
            let peers = cluster.node(FAULTY)?.network.connected_peers().await?;
            Ok((0..3).all(|i| peers.contains(&validator_key(i).public_key())))
        },
    )
    .await?;
    let joined = cluster.height(0)?;
    // Its turns to propose come round after it joined (two of them: every fourth height).
    let height = honest_nodes_agree_and_go_on(&cluster, joined + 8).await?;
    cluster.wait_height(FAULTY, height).await?;
    assert_agree(&cluster, &[0, FAULTY], height)?;
    // It had its turns, connected and following, and they passed: every height it was the
    // first proposer for was decided in a later round, by another proposer.
    let set = cluster.genesis.validator_set()?;
    let node = cluster.node(0)?;
    let turns: Vec<u64> = (joined + 1..=height)
        .filter(|&h| set.proposer(Height(h), Round(0)) == index)
        .collect();
    ensure!(
        turns.len() >= 2,
        "the silent validator had {} turns",
        turns.len()
    );
    for &h in &turns {
        let bytes = node
            .context
            .storage
            .certificate(h)?
            .context("no certificate")?;
        let certificate: CommitCertificate = tally_consensus::decode(&bytes, usize::MAX)?;
        ensure!(
            certificate.round > Round(0),
            "height {h}, the silent validator's turn, was decided in round 0"
        );
    }
    // Silence is the fault: none of its messages reached an honest node, and so no block of
    // its was decided.
    for i in 0..3 {
        let heard = metrics(&cluster, i)?
            .consensus_messages_verified
            .get(index.0);
        ensure!(
            heard == 0,
            "honest validator {i} verified {heard} messages of the silent validator"
        );
    }
    for block in blocks(node, height)? {
        ensure!(
            block.header.proposer != faulty,
            "a silent validator's block was decided"
        );
    }
    cluster.shutdown().await
}

/// Honest nodes never decide a block of the faulty proposer, whose every block is invalid;
/// what they decided verifies.
async fn invalid_blocks_are_refused(kind: InvalidBlock) -> Result<()> {
    let cluster = cluster_with(Byzantine::InvalidBlocks(kind)).await?;
    // The fault happened: every honest validator refused a proposal of the faulty one for
    // the reason this kind of block gives.
    let reason = match kind {
        InvalidBlock::BadSignature => "tx_signature",
        InvalidBlock::WrongStateRoot => "state_root",
    };
    for i in 0..3 {
        let m = metrics(&cluster, i)?;
        wait_until(
            &format!("honest validator {i} refused a proposal ({reason})"),
            async || Ok(m.proposals_refused.get(reason) > 0),
        )
        .await?;
    }
    let height = honest_nodes_agree_and_go_on(&cluster, 8).await?;
    let faulty = validator_key(FAULTY).public_key();
    let mut keys = KeyCache::default();
    let mut parent_root = None;
    for (h, block) in (1..).zip(blocks(cluster.node(0)?, height)?) {
        ensure!(
            block.header.proposer != faulty,
            "{kind:?}: the faulty proposer's block {h} was decided"
        );
        let verdicts = verify_transactions(CHAIN, block.txs.clone(), &mut keys);
        ensure!(
            verdicts.iter().all(Result::is_ok),
            "block {h}: bad signature"
        );
        if let Some(root) = parent_root {
            ensure!(
                block.header.state_root == root,
                "block {h}: wrong state root"
            );
        }
        parent_root = Some(state_root(cluster.node(0)?, h)?);
    }
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_with_a_bad_signature_are_refused() -> Result<()> {
    invalid_blocks_are_refused(InvalidBlock::BadSignature).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_with_a_wrong_state_root_are_refused() -> Result<()> {
    invalid_blocks_are_refused(InvalidBlock::WrongStateRoot).await
}

/// An overdraft is not an invalid block: a transfer above the balance is committed with an
/// INSUFFICIENT_FUNDS receipt and changes nothing, the same on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdraft_is_committed_as_a_rejection_that_moves_nothing() -> Result<()> {
    let mut cluster = Cluster::new(genesis(4))?;
    for i in 0..4 {
        cluster.start(i).await?;
    }
    let opening: Vec<_> = (1..=2).flat_map(|id| open_wallet(id, 1_000)).collect();
    // A wallet's three opening transactions go to one validator: the second is admitted
    // only once that node holds the registration that installs the wallet's key.
    let hashes = cluster.submit_all(&opening, |n| n / 3 % 4).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    let overdraft = transfer(1, 2, 3, 5_000);
    let hash = cluster.submit_all(&[overdraft], |_| 1).await?[0];
    let node = cluster.node(0)?;
    let deadline = tokio::time::Instant::now() + WAIT;
    let location = loop {
        if let Some(l) = node.context.storage.tx_location(&hash)? {
            break l;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "overdraft not committed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let results = BlockResults::decode(
        &node
            .context
            .storage
            .results(location.height)?
            .context("no results")?,
    )?;
    let receipt = &results.receipts[location.index as usize];
    ensure!(
        receipt.result == Err(Rejection::InsufficientFunds),
        "overdraft receipt: {receipt:?}"
    );
    cluster.wait_all(location.height).await?;
    assert_agree(&cluster, &[0, 1, 2, 3], location.height)?;
    cluster.shutdown().await
}

/// Writes the blocked peers file of a node: the keys of `nodes`.
fn block_peers(path: &PathBuf, nodes: &[usize]) -> Result<()> {
    let text: String = nodes
        .iter()
        .map(|&i| format!("{}\n", validator_key(i).public_key().to_hex()))
        .collect();
    // Written whole then renamed, so the node never reads half a file.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

fn gated(cluster: &Cluster, i: usize) -> TestFaults {
    TestFaults {
        blocked_peers_file: Some(cluster.dir.path().join(format!("blocked-{i}"))),
        ..TestFaults::default()
    }
}

/// Waits until the partition `sides` is in force: each gated node has read its file (its
/// gate lists the other side), and no node is connected to one on the other side.
async fn partitioned(cluster: &Cluster, sides: &[&[usize]], gated: &[usize]) -> Result<()> {
    let side_of = |i: usize| sides.iter().position(|s| s.contains(&i));
    for &i in gated {
        let others = (0..4).filter(|&j| side_of(j) != side_of(i)).count();
        let m = metrics(cluster, i)?;
        wait_until(&format!("node {i} read its gate"), async || {
            Ok(m.network.gated_peers.get() == others as i64)
        })
        .await?;
    }
    for i in 0..4 {
        let node = cluster.node(i)?;
        wait_until(
            &format!("node {i} lost its links across the partition"),
            async || {
                let peers = node.network.connected_peers().await?;
                Ok((0..4)
                    .filter(|&j| side_of(j) != side_of(i))
                    .all(|j| !peers.contains(&validator_key(j).public_key())))
            },
        )
        .await?;
    }
    Ok(())
}

/// The highest height any of the four validators holds.
fn top(cluster: &Cluster) -> Result<u64> {
    (0..4)
        .map(|i| cluster.height(i))
        .try_fold(0, |a, h| Ok(a.max(h?)))
}

/// Waits until every node of `nodes` has verified [`HEARD_WHILE_CUT`] more consensus
/// messages (from its own side only, the partition being in force) than `before`.
async fn heard_own_side(cluster: &Cluster, nodes: &[usize], before: &[u64]) -> Result<()> {
    for (&i, &b) in nodes.iter().zip(before) {
        let m = metrics(cluster, i)?;
        wait_until(
            &format!("node {i} heard its own side while partitioned"),
            async || Ok(verified_total(m) >= b + HEARD_WHILE_CUT),
        )
        .await?;
    }
    Ok(())
}

/// Consensus messages `metrics`' node verified, from any of the four validators.
fn verified_total(metrics: &Metrics) -> u64 {
    (0..4)
        .map(|v| metrics.consensus_messages_verified.get(v))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_one_partition_goes_on_on_the_three_side_and_converges_when_healed() -> Result<()> {
    let mut cluster = Cluster::new(genesis(4))?;
    for i in 0..3 {
        cluster.start(i).await?;
    }
    let faults = gated(&cluster, 3);
    let file = faults.blocked_peers_file.clone().context("no file")?;
    start_faulty(&mut cluster, 3, Mode::Validator, BTreeSet::new(), faults).await?;
    cluster.wait_all(2).await?;

    // Node 3 alone: gating on its side cuts every link both ways.
    block_peers(&file, &[0, 1, 2])?;
    partitioned(&cluster, &[&[0, 1, 2], &[3]], &[3]).await?;
    // Once cut off, node 3 can still decide the height whose precommits were already on
    // their way to it, but none after: no node had gone past `cut_at` when the links went.
    let cut_at = top(&cluster)?;
    honest_payments(&cluster, &[0, 1, 2]).await?;
    let majority_at = cluster.height(0)?;
    // Its chance: the majority decided two heights past anything node 3 could decide, with
    // node 3 running and its gate still shut.
    cluster.wait_height(0, cut_at + 3).await?;
    ensure!(
        metrics(&cluster, 3)?.network.gated_peers.get() == 3
            && cluster.node(3)?.network.connected_peers().await?.is_empty(),
        "node 3's gate opened during the partition"
    );
    ensure!(
        cluster.height(3)? <= cut_at + 1,
        "the isolated node committed alone (cut off at {cut_at}, now at {})",
        cluster.height(3)?
    );

    // Healed: node 3 catches up and the four go on together.
    block_peers(&file, &[])?;
    let target = cluster.height(0)?.max(majority_at) + 2;
    cluster.wait_all(target).await?;
    assert_agree(&cluster, &[0, 1, 2, 3], target)?;
    let late = vec![transfer(1, 2, 4, 10)];
    let hashes = cluster.submit_all(&late, |_| 3).await?;
    cluster.wait_committed_ok(3, &hashes).await?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_two_partition_commits_nothing_forks_nothing_and_resumes_when_healed() -> Result<()> {
    let mut cluster = Cluster::new(genesis(4))?;
    for i in 0..2 {
        cluster.start(i).await?;
    }
    let files: Vec<PathBuf> = [2, 3]
        .iter()
        .map(|&i| cluster.dir.path().join(format!("blocked-{i}")))
        .collect();
    for i in [2, 3] {
        let faults = gated(&cluster, i);
        start_faulty(&mut cluster, i, Mode::Validator, BTreeSet::new(), faults).await?;
    }
    cluster.wait_all(2).await?;

    // {0, 1} | {2, 3}: nodes 2 and 3 refuse 0 and 1, which cuts every link across.
    for file in &files {
        block_peers(file, &[0, 1])?;
    }
    partitioned(&cluster, &[&[0, 1], &[2, 3]], &[2, 3]).await?;
    // As in the 3|1 case: at most the height in flight when the links went is decided.
    let cut_at = top(&cluster)?;
    let heard_before: Vec<u64> = (0..4)
        .map(|i| Ok(verified_total(metrics(&cluster, i)?)))
        .collect::<Result<_>>()?;
    // Transactions wait on both sides; no side has the 3 of 4 votes needed to commit.
    let opening: Vec<_> = (1..=2).flat_map(|id| open_wallet(id, 1_000)).collect();
    let hashes = cluster.submit_all(&opening, |n| [0, 2][n / 3]).await?;
    // Their chance: every node keeps hearing its partner's votes, and still nobody can
    // gather a quorum.
    heard_own_side(&cluster, &[0, 1, 2, 3], &heard_before).await?;
    let during: Vec<u64> = (0..4).map(|i| cluster.height(i)).collect::<Result<_>>()?;
    ensure!(
        during.iter().all(|&h| h <= cut_at + 1),
        "a minority side committed: cut off at {cut_at}, now {during:?}"
    );
    // No fork: wherever two nodes both have a height, they have the same block.
    let low = *during.iter().min().context("no nodes")?;
    assert_agree(&cluster, &[0, 1, 2, 3], low)?;
    let high = *during.iter().max().context("no nodes")?;
    for h in low + 1..=high {
        let held: BTreeSet<Vec<u8>> = (0..4)
            .filter_map(|i| cluster.node(i).ok()?.context.storage.block(h).ok()?)
            .collect();
        ensure!(held.len() <= 1, "two blocks at height {h}");
    }

    // Healed: the chain resumes, the waiting transactions commit, all agree.
    for file in &files {
        block_peers(file, &[])?;
    }
    cluster.wait_committed_ok(0, &hashes).await?;
    let target = cluster.height(0)?;
    cluster.wait_all(target).await?;
    assert_agree(&cluster, &[0, 1, 2, 3], target)?;
    cluster.shutdown().await
}
