//! What the audit node's alarm means: a quorum of validators signed something that disagrees
//! with the audit node's own execution (a state root), or signed two blocks for one height.
//! A peer that serves a block whose certificate a quorum did not sign proves nothing about
//! the chain, only about itself: it is cut off and the audit node follows another peer.
//!
//! Attacker: a validator (or any peer the audit node syncs from) that wants to stop the
//! regulator's view of the chain by serving it forged certificates.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::*;
use tally_consensus::{
    BlockHash, CommitCertificate, CommitSignature, Height, Round, Vote, VoteKind,
};
use tally_crypto::{Hash, SigningKey};
use tally_node::block::{Block, BlockHeader, BlockResults, txs_root};
use tally_node::chain::SyncedBlock;
use tally_node::chain::audit::read_evidence;
use tally_node::config::Mode;

/// The audit node's index in the cluster; its key is not in the validator set.
const AUDIT: usize = 4;

/// Four validators that admit the audit node as an observer, then the audit node.
async fn validators_and_audit() -> Result<Cluster> {
    let mut cluster = Cluster::new(genesis(4))?;
    let observers = BTreeSet::from([validator_key(AUDIT).public_key()]);
    for i in 0..4 {
        cluster
            .start_with(i, Mode::Validator, observers.clone())
            .await?;
    }
    cluster
        .start_with(AUDIT, Mode::Audit, BTreeSet::new())
        .await?;
    Ok(cluster)
}

/// Opens wallets `first..first + count` through the validators and waits for their commit
/// on validator 0.
async fn open_wallets(cluster: &Cluster, first: u128, count: u128) -> Result<()> {
    let opening: Vec<_> = (first..first + count)
        .flat_map(|id| open_wallet(id, 10_000))
        .collect();
    let hashes = cluster.submit_all(&opening, |n| n / 3 % 4).await?;
    cluster.wait_committed_ok(0, &hashes).await
}

/// The state root the audit node stored after executing block `height`.
fn audit_root_after(cluster: &Cluster, height: u64) -> Result<Hash> {
    let results = cluster
        .node(AUDIT)?
        .context
        .storage
        .results(height)?
        .with_context(|| format!("no results for block {height}"))?;
    Ok(BlockResults::decode(&results)?.state_root)
}

/// How a test certificate is made.
#[derive(Debug, Clone, Copy)]
enum Signing {
    /// Precommits of the first `n` validators, with their real keys.
    Validators(usize),
    /// Precommits for all four validator slots, made with keys that are not theirs.
    OtherKeys,
    /// A quorum's real precommits, for another block than the one served.
    AnotherBlock,
}

/// An empty block at `height` on top of the audit node's block `height - 1`, claiming
/// `state_root`, `time_step` ms after its parent, with a certificate made as `signing`
/// says.
fn certified(
    cluster: &Cluster,
    height: u64,
    state_root: Hash,
    time_step: u64,
    signing: Signing,
) -> Result<SyncedBlock> {
    let storage = &cluster.node(AUDIT)?.context.storage;
    let parent_bytes = storage.block(height - 1)?.context("parent block missing")?;
    let parent = Block::decode(&parent_bytes)?;
    let block = Block {
        header: BlockHeader {
            chain_id: CHAIN.into(),
            height,
            time_ms: parent.header.time_ms + time_step,
            parent: BlockHash::of(&parent_bytes).0,
            state_root,
            txs_root: txs_root(&[]),
            validator_updates_root: tally_node::block::validator_updates_root(&[]),
            validators_id: parent.header.validators_id,
            proposer: validator_key(0).public_key(),
        },
        txs: Vec::new(),
        evidence: Vec::new(),
        validator_updates: Vec::new(),
    }
    .encode();
    let served = BlockHash::of(&block);
    let (signed_block, signers): (BlockHash, Vec<(usize, SigningKey)>) = match signing {
        Signing::Validators(n) => (served, (0..n).map(|i| (i, validator_key(i))).collect()),
        Signing::OtherKeys => (served, (0..4).map(|i| (i, validator_key(50 + i))).collect()),
        Signing::AnotherBlock => (
            BlockHash(Hash::digest("test", b"another block")),
            (0..4).map(|i| (i, validator_key(i))).collect(),
        ),
    };
    let set = cluster.genesis.validator_set()?;
    let mut signatures = Vec::new();
    for (slot, key) in signers {
        let validator = set
            .index_of(&validator_key(slot).public_key())
            .context("validator not in the set")?;
        let vote = Vote {
            kind: VoteKind::Precommit,
            height: Height(height),
            round: Round(0),
            block: Some(signed_block),
            validator,
        };
        signatures.push(CommitSignature {
            validator,
            signature: key.sign(VoteKind::Precommit.domain(), CHAIN, &vote.signing_bytes()),
        });
    }
    signatures.sort();
    Ok(SyncedBlock {
        certificate: CommitCertificate {
            height: Height(height),
            round: Round(0),
            block: signed_block,
            signatures,
        },
        block,
    })
}

/// The three ways a peer may forge a certificate, for the block at `height`.
fn forgeries(cluster: &Cluster, height: u64, root: Hash) -> Result<Vec<SyncedBlock>> {
    Ok(vec![
        certified(cluster, height, root, 1, Signing::Validators(2))?,
        certified(cluster, height, root, 1, Signing::OtherKeys)?,
        certified(cluster, height, root, 1, Signing::AnotherBlock)?,
    ])
}

/// An audit node that followed four validators through some blocks, the validators then
/// stopped: the test alone serves it blocks. Returns the audit node's head, which is final:
/// it holds every block any validator has.
async fn audit_node_alone() -> Result<(Cluster, u64)> {
    let mut cluster = validators_and_audit().await?;
    open_wallets(&cluster, 1, 4).await?;
    // A few blocks past the wallets' (an idle chain goes on with empty ones), so the tests
    // have a committed block with a committed parent to serve forgeries for.
    cluster.wait_height(AUDIT, cluster.height(0)? + 2).await?;
    // Two validators stop first: the other two hold no quorum, so the chain stops, and the
    // audit node takes whatever it lacks. The stores stay open to read each head after.
    let mut stores = Vec::new();
    for i in 0..2 {
        let node = cluster.take(i)?;
        stores.push(node.context.storage.clone());
        node.shutdown().await?;
    }
    let top = |stores: &[tally_node::storage::Storage], cluster: &Cluster| -> Result<u64> {
        let mut top = 0;
        for store in stores {
            top = top.max(store.head()?.unwrap_or(0));
        }
        for i in 2..4 {
            if let Ok(node) = cluster.node(i) {
                top = top.max(node.context.storage.head()?.unwrap_or(0));
            }
        }
        Ok(top)
    };
    wait_until("the audit node holds every block a validator has", || {
        Ok(cluster.height(AUDIT)? >= top(&stores, &cluster)?)
    })
    .await?;
    for i in 2..4 {
        let node = cluster.take(i)?;
        stores.push(node.context.storage.clone());
        node.shutdown().await?;
    }
    // Validators 2 and 3 may still have decided a block after the wait above looked, from
    // precommits 0 and 1 sent before they stopped (queued, or in flight). Nobody is left to
    // serve it, so the test does, from the stopped validators' own stores, as a peer would:
    // the audit node's head is then final.
    let last = top(&stores, &cluster)?;
    let audit = cluster.node(AUDIT)?;
    for height in cluster.height(AUDIT)? + 1..=last {
        let holder = stores
            .iter()
            .find(|s| s.head().ok().flatten().is_some_and(|h| h >= height))
            .context("no validator holds the block")?;
        let block = holder.block(height)?.context("block missing")?;
        let certificate = holder.certificate(height)?.context("certificate missing")?;
        let certificate: CommitCertificate = tally_consensus::decode(&certificate, usize::MAX)?;
        audit
            .deliver_synced(
                validator_key(2).public_key(),
                vec![SyncedBlock { block, certificate }],
            )
            .await?;
        cluster.wait_height(AUDIT, height).await?;
    }
    let head = cluster.height(AUDIT)?;
    ensure!(
        head == last,
        "the audit node stopped at {head}, a validator holds {last}"
    );
    ensure!(head >= 2, "too few blocks: {head}");
    Ok((cluster, head))
}

/// Waits until `pass` holds, or fails with `what` after [`WAIT`].
async fn wait_until(what: &str, mut pass: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !pass()? {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{what}: not in {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Peers served the next block with a certificate no quorum signed: no alarm, nothing
/// committed, and the node still takes the real next block; then a quorum-signed block
/// with a state root other than its own raises the alarm, with the evidence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_certificates_do_not_raise_the_alarm_a_quorum_signed_wrong_root_does() -> Result<()>
{
    let (cluster, head) = audit_node_alone().await?;
    let audit = cluster.node(AUDIT)?;
    let ours = audit_root_after(&cluster, head)?;
    for (peer, forged) in forgeries(&cluster, head + 1, ours)?.into_iter().enumerate() {
        audit
            .deliver_synced(validator_key(peer).public_key(), vec![forged])
            .await?;
    }
    // A positive signal that the chain task handled the three: the honest block after them
    // on the same channel is committed.
    let honest = certified(&cluster, head + 1, ours, 1, Signing::Validators(3))?;
    audit
        .deliver_synced(validator_key(3).public_key(), vec![honest.clone()])
        .await?;
    cluster.wait_height(AUDIT, head + 1).await?;
    ensure!(
        audit.context.storage.block(head + 1)?.as_ref() == Some(&honest.block),
        "a forged block was committed"
    );
    ensure!(audit.context.metrics.audit_alarm.get() == 0, "alarm raised");
    ensure!(read_evidence(&cluster.data_dir(AUDIT))?.is_empty());

    // A quorum signed a block whose state root is not the one the audit node computed.
    let wrong = Hash::digest("test", b"not the state after the head");
    let lie = certified(&cluster, head + 2, wrong, 1, Signing::Validators(3))?;
    audit
        .deliver_synced(validator_key(1).public_key(), vec![lie.clone()])
        .await?;
    wait_until("the alarm", || {
        Ok(audit.context.metrics.audit_alarm.get() == 1)
    })
    .await?;
    ensure!(cluster.height(AUDIT)? == head + 1, "the lie was committed");
    let evidence = read_evidence(&cluster.data_dir(AUDIT))?;
    let [kept] = evidence.as_slice() else {
        anyhow::bail!("expected one piece of evidence, found {evidence:?}");
    };
    ensure!(kept.height == head + 2 && kept.claimed_state_root == Some(wrong));
    ensure!(kept.our_state_root == audit_root_after(&cluster, head + 1)?);
    ensure!(kept.reason.contains("state root"), "{}", kept.reason);
    ensure!(kept.block == hex::encode(&lie.block));
    cluster.shutdown().await
}

/// A second block for a height the audit node already committed: with a certificate no
/// quorum signed it is the peer's lie (no alarm); with a quorum's certificate it proves
/// the validators signed two blocks at one height (the alarm).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_certified_block_for_a_decided_height_raises_the_alarm() -> Result<()> {
    let (cluster, head) = audit_node_alone().await?;
    let audit = cluster.node(AUDIT)?;
    let root = audit_root_after(&cluster, head - 1)?;
    let committed = audit.context.storage.block(head)?.context("head missing")?;
    for (peer, forged) in forgeries(&cluster, head, root)?.into_iter().enumerate() {
        ensure!(
            forged.block != committed,
            "the forgery is the committed block"
        );
        audit
            .deliver_synced(validator_key(peer).public_key(), vec![forged])
            .await?;
    }
    // The committed block again, with its real certificate: nothing to see.
    let stored = audit
        .context
        .storage
        .certificate(head)?
        .context("certificate missing")?;
    let again = SyncedBlock {
        block: committed.clone(),
        certificate: tally_consensus::decode(&stored, usize::MAX)?,
    };
    audit
        .deliver_synced(validator_key(3).public_key(), vec![again])
        .await?;
    // Positive signal that all of the above was handled: a real next block is committed.
    let next = certified(
        &cluster,
        head + 1,
        audit_root_after(&cluster, head)?,
        1,
        Signing::Validators(4),
    )?;
    audit
        .deliver_synced(validator_key(3).public_key(), vec![next])
        .await?;
    cluster.wait_height(AUDIT, head + 1).await?;
    ensure!(audit.context.metrics.audit_alarm.get() == 0, "alarm raised");
    ensure!(read_evidence(&cluster.data_dir(AUDIT))?.is_empty());

    // Now a quorum's certificate for a different block at the decided height `head`.
    let conflicting = certified(&cluster, head, root, 2, Signing::Validators(3))?;
    ensure!(conflicting.block != committed);
    audit
        .deliver_synced(validator_key(2).public_key(), vec![conflicting.clone()])
        .await?;
    wait_until("the alarm", || {
        Ok(audit.context.metrics.audit_alarm.get() == 1)
    })
    .await?;
    let evidence = read_evidence(&cluster.data_dir(AUDIT))?;
    let [kept] = evidence.as_slice() else {
        anyhow::bail!("expected one piece of evidence, found {evidence:?}");
    };
    ensure!(kept.height == head, "{kept:?}");
    ensure!(kept.reason.contains("conflicting"), "{}", kept.reason);
    ensure!(kept.block == hex::encode(&conflicting.block));
    ensure!(kept.peer == Some(validator_key(2).public_key().to_string()));
    cluster.shutdown().await
}

/// On a live chain, three of the four validators (as far as the audit node can tell)
/// serve it forged certificates: each is cut off, and the audit node keeps following the
/// chain through the fourth, verifying every block, without an alarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_serving_forged_certificates_are_cut_off_and_the_audit_node_follows_an_honest_one()
-> Result<()> {
    let cluster = validators_and_audit().await?;
    open_wallets(&cluster, 1, 4).await?;
    cluster.wait_height(AUDIT, cluster.height(0)?).await?;
    let audit = cluster.node(AUDIT)?;
    let liars: Vec<_> = (0..3).map(|i| validator_key(i).public_key()).collect();
    wait_connected(
        "the audit node connected to every validator",
        audit,
        |peers| peers.len() >= 4,
    )
    .await?;
    for (liar, forgery) in liars.iter().zip(0..3) {
        // The next block, as far as the audit node knows now (a block may land meanwhile:
        // then the forgery is a second block for a decided height, refused the same way).
        let head = cluster.height(AUDIT)?;
        let forged = forgeries(&cluster, head + 1, audit_root_after(&cluster, head)?)?
            .into_iter()
            .nth(forgery)
            .context("no forgery")?;
        audit.deliver_synced(*liar, vec![forged]).await?;
    }
    wait_connected("the three liars cut off", audit, |peers| {
        liars.iter().all(|liar| !peers.contains(liar))
    })
    .await?;
    ensure!(
        audit
            .network
            .connected_peers()
            .await?
            .contains(&validator_key(3).public_key()),
        "the honest validator was cut off too"
    );
    // The chain goes on; the audit node verifies it through the one peer left.
    open_wallets(&cluster, 100, 4).await?;
    let height = cluster.height(0)?;
    cluster.wait_height(AUDIT, height).await?;
    ensure!(audit.context.metrics.audit_alarm.get() == 0, "alarm raised");
    ensure!(read_evidence(&cluster.data_dir(AUDIT))?.is_empty());
    // Blocks are compared up to what every node has (the validators keep committing).
    cluster.assert_same_chain(height)?;
    cluster.shutdown().await
}

/// Waits until the peers `node` is connected to pass `pass`.
async fn wait_connected(
    what: &str,
    node: &tally_node::node::Node,
    pass: impl Fn(&[tally_crypto::PublicKey]) -> bool,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !pass(&node.network.connected_peers().await?) {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{what}: not in {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
