//! The regulator's audit node beside four validators over loopback: it follows by sync,
//! checks every certificate and re-executes every block, and raises the alarm (and stops)
//! when the chain disagrees with its own execution.

mod common;

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use common::*;
use tally_contracts::{AccountId, encoding, query};
use tally_node::block::BlockResults;
use tally_node::config::Mode;
use tally_node::service::SubmitError;

/// The audit node's index in the cluster; its key (`validator_key(AUDIT)`) is not in the
/// genesis validator set, so it is only the node's network identity.
const AUDIT: usize = 4;

/// Starts four validators that admit the audit node as an observer, then the audit node.
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

/// Opens `wallets` wallets and has each pay the next `rounds` times, submitted to the
/// validators; waits until validator 0 committed them all.
async fn transfers(cluster: &Cluster, wallets: u128, rounds: u64) -> Result<()> {
    let opening: Vec<_> = (1..=wallets)
        .flat_map(|id| open_wallet(id, 100_000))
        .collect();
    let hashes = cluster.submit_all(&opening, |n| n / 3 % 4).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    let mut payments = Vec::new();
    for nonce in 3..3 + rounds {
        for id in 1..=wallets {
            payments.push(transfer(id, id % wallets + 1, nonce, 10 + id as u64));
        }
    }
    let hashes = cluster
        .submit_all(&payments, |n| (n % wallets as usize) % 4)
        .await?;
    cluster.wait_committed_ok(0, &hashes).await
}

/// The state root the node stored after executing block `height`.
fn state_root_after(cluster: &Cluster, node: usize, height: u64) -> Result<tally_crypto::Hash> {
    let results = cluster
        .node(node)?
        .context
        .storage
        .results(height)?
        .with_context(|| format!("node {node} has no results for block {height}"))?;
    Ok(BlockResults::decode(&results)?.state_root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_node_follows_four_validators_with_the_same_state() -> Result<()> {
    let cluster = validators_and_audit().await?;
    let wallets = 30;
    transfers(&cluster, wallets, 7).await?;
    let height = cluster.height(0)?;
    cluster.wait_all(height).await?;
    // Same blocks and, after each, the same state root on every node, the audit node too.
    cluster.assert_same_chain(height)?;
    ensure!(state_root_after(&cluster, AUDIT, height)? == state_root_after(&cluster, 0, height)?);
    let audit = cluster.node(AUDIT)?;
    for id in (1..=wallets).step_by(7) {
        let ours = query::account(&audit.context.storage, AccountId(id))?;
        ensure!(ours.is_some(), "wallet {id} missing on the audit node");
        for i in 0..4 {
            let theirs = query::account(&cluster.node(i)?.context.storage, AccountId(id))?;
            ensure!(
                theirs == ours,
                "wallet {id} differs between validator {i} and the audit node"
            );
        }
    }
    ensure!(
        audit.context.metrics.audit_alarm.get() == 0,
        "alarm raised on an honest chain"
    );
    // It never signed anything, and it refuses transactions.
    ensure!(
        audit.context.storage.signer_record()?.is_none(),
        "the audit node signed"
    );
    let refused = audit
        .context
        .submit(encoding::encode(&transfer(1, 2, 3 + 7, 1)))
        .await;
    ensure!(
        matches!(refused, Err(SubmitError::ReadOnly)),
        "the audit node took a transaction: {refused:?}"
    );
    cluster.shutdown().await
}
