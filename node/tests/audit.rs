//! The regulator's audit node beside four validators over loopback: it follows by sync,
//! checks every certificate and re-executes every block, and raises the alarm (and stops)
//! when the chain disagrees with its own execution.

mod common;
#[path = "common/http.rs"]
mod http;

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use common::*;
use tally_consensus::{
    BlockHash, CommitCertificate, CommitSignature, Height, Round, Vote, VoteKind,
};
use tally_contracts::{AccountId, encoding, query};
use tally_crypto::Hash;
use tally_node::block::{Block, BlockHeader, BlockResults, txs_root};
use tally_node::chain::SyncedBlock;
use tally_node::chain::audit::read_evidence;
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
    // It never signed anything, and it refuses a customer's transaction (it relays a
    // regulator's alone: `an_audit_node_relays_the_regulators_transactions_alone`).
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

/// The regulator acts from the page its audit node serves, so the audit node relays a
/// regulator's own transactions to the validators. Attackers: a customer and a bank using it
/// as a relay (refused `READ_ONLY`, unchecked), someone sending a regulator's transaction
/// signed by another key, and a replay of the regulator's committed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_node_relays_the_regulators_transactions_alone() -> Result<()> {
    use tally_contracts::{Party, Rejection, TxKind};
    use tally_node::mempool::MempoolError;
    let cluster = validators_and_audit().await?;
    let mut opening = open_wallet(1, 5_000);
    opening.extend(open_wallet(2, 5_000));
    let hashes = cluster.submit_all(&opening, |n| n / 3 % 4).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    for hash in &hashes {
        cluster.wait_committed(AUDIT, hash).await?;
    }
    let audit = &cluster.node(AUDIT)?.context;
    let freeze = |sender, key: &tally_crypto::SigningKey| {
        sign(
            sender,
            0,
            &[key],
            TxKind::Freeze {
                account: AccountId(1),
                reason: Hash::digest("tally-case-reference", b"case 7"),
            },
        )
    };

    // A customer's payment and a bank's freeze: not the regulator's, refused unchecked.
    let customer = transfer(2, 1, 3, 100);
    let bank = freeze(Party::Institution(BANK_A), &institution_key(BANK_A));
    for tx in [&customer, &bank] {
        let answer = audit.submit(encoding::encode(tx)).await;
        ensure!(
            matches!(answer, Err(SubmitError::ReadOnly)),
            "the audit node took a transaction of {:?}: {answer:?}",
            tx.tx.sender
        );
    }
    // The regulator's freeze signed by a bank's key: refused as a validator refuses it.
    let forged = freeze(Party::Institution(REGULATOR), &institution_key(BANK_A));
    let answer = audit.submit(encoding::encode(&forged)).await;
    ensure!(
        matches!(answer, Err(SubmitError::Admission(_))),
        "a forged regulator's freeze was relayed: {answer:?}"
    );
    ensure!(audit.metrics.relayed_transactions.get() == 0);

    // The regulator's own: relayed, committed by the validators, seen by the audit node.
    let regulator = freeze(Party::Institution(REGULATOR), &institution_key(REGULATOR));
    let hash = audit.submit(encoding::encode(&regulator)).await?;
    ensure!(hash == regulator.hash());
    ensure!(audit.metrics.relayed_transactions.get() == 1);
    let receipt = cluster.wait_committed(0, &hash).await?;
    ensure!(
        receipt.result.is_ok(),
        "the relayed freeze failed: {receipt:?}"
    );
    cluster.wait_committed(AUDIT, &hash).await?;
    // Sent again once committed: its nonce is used, nothing is published.
    let again = audit.submit(encoding::encode(&regulator)).await;
    ensure!(
        matches!(
            again,
            Err(SubmitError::Mempool(MempoolError::NonceUsed {
                nonce: 0,
                next: 1
            }))
        ),
        "a committed transaction was relayed again: {again:?}"
    );
    ensure!(audit.metrics.relayed_transactions.get() == 1);

    // The freeze holds, and neither refused transaction reached a validator.
    let paid = transfer(1, 2, 3, 100);
    cluster
        .submit_all(std::slice::from_ref(&paid), |_| 1)
        .await?;
    let receipt = cluster.wait_committed(0, &paid.hash()).await?;
    ensure!(
        receipt.result == Err(Rejection::AccountFrozen),
        "a frozen account paid: {receipt:?}"
    );
    for tx in [&customer, &bank, &forged] {
        for i in 0..4 {
            ensure!(
                cluster
                    .node(i)?
                    .context
                    .storage
                    .tx_location(&tx.hash())?
                    .is_none()
                    && !(cluster.node(i)?.context.pending)(&tx.hash()),
                "validator {i} holds a transaction the audit node refused"
            );
        }
    }
    cluster.shutdown().await
}

/// An empty block on top of the audit node's head at `height - 1`, claiming `state_root`,
/// with a certificate really signed by all four validators' keys: what a corrupt quorum
/// would produce.
fn signed_block(cluster: &Cluster, height: u64, state_root: Hash) -> Result<SyncedBlock> {
    signed_by(cluster, height, state_root, 4)
}

/// [`signed_block`] with the precommits of only the first `signers` validators.
fn signed_by(
    cluster: &Cluster,
    height: u64,
    state_root: Hash,
    signers: usize,
) -> Result<SyncedBlock> {
    let storage = &cluster.node(AUDIT)?.context.storage;
    let parent_bytes = storage.block(height - 1)?.context("parent block missing")?;
    let parent = Block::decode(&parent_bytes)?;
    let block = Block {
        header: BlockHeader {
            chain_id: CHAIN.into(),
            height,
            time_ms: parent.header.time_ms + 1,
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
    let set = cluster.genesis.validator_set()?;
    let mut signatures = Vec::new();
    for i in 0..signers {
        let key = validator_key(i);
        let validator = set
            .index_of(&key.public_key())
            .context("validator not in the set")?;
        let vote = Vote {
            kind: VoteKind::Precommit,
            height: Height(height),
            round: Round(0),
            block: Some(BlockHash::of(&block)),
            validator,
        };
        let signature = key.sign(VoteKind::Precommit.domain(), CHAIN, &vote.signing_bytes());
        signatures.push(CommitSignature {
            validator,
            signature,
        });
    }
    signatures.sort();
    Ok(SyncedBlock {
        certificate: CommitCertificate {
            height: Height(height),
            round: Round(0),
            block: BlockHash::of(&block),
            signatures,
        },
        block,
    })
}

/// An audit node that followed four validators through some transfers, after the
/// validators stopped: the test then plays the peer that serves the next block. Returns the
/// audit node's head.
async fn audit_node_alone() -> Result<(Cluster, u64)> {
    let mut cluster = validators_and_audit().await?;
    transfers(&cluster, 5, 2).await?;
    cluster.wait_height(AUDIT, cluster.height(0)?).await?;
    // Two validators stop first: the other two hold no quorum, so the chain stops where it
    // is, and the audit node takes from them whatever it lacks. Their stores stay open to
    // read each validator's head after it stopped.
    let mut stores = Vec::new();
    for i in 0..2 {
        let node = cluster.take(i)?;
        stores.push(node.context.storage.clone());
        node.shutdown().await?;
    }
    let heads = |stores: &[tally_node::storage::Storage]| -> Result<u64> {
        stores
            .iter()
            .map(|s| Ok(s.head()?.unwrap_or(0)))
            .try_fold(0, |a, h: Result<u64>| Ok(a.max(h?)))
    };
    wait_until(
        "the audit node holds every block any validator has",
        async || Ok(cluster.height(AUDIT)? >= heads(&stores)?.max(top_live(&cluster)?)),
    )
    .await?;
    for i in 2..4 {
        let node = cluster.take(i)?;
        stores.push(node.context.storage.clone());
        node.shutdown().await?;
    }
    // Nothing is left anywhere for it to take: its head is final.
    let head = cluster.height(AUDIT)?;
    let top = heads(&stores)?;
    ensure!(
        head == top,
        "the audit node stopped at {head}, a validator holds {top}"
    );
    Ok((cluster, head))
}

/// The highest head of the validators still running.
fn top_live(cluster: &Cluster) -> Result<u64> {
    (0..4)
        .filter(|&i| cluster.node(i).is_ok())
        .map(|i| cluster.height(i))
        .try_fold(0, |a, h| Ok(a.max(h?)))
}

/// Delivers `block` to the halted audit node and waits until it dropped it (counted); its
/// head must not have moved.
async fn delivered_to_halted(cluster: &Cluster, block: SyncedBlock, head: u64) -> Result<()> {
    let audit = cluster.node(AUDIT)?;
    let dropped = || audit.context.metrics.halted_inputs_dropped.get("synced");
    let before = dropped();
    audit
        .deliver_synced(validator_key(1).public_key(), vec![block])
        .await?;
    wait_until(
        "the halted audit node dropped the synced block",
        async || Ok(dropped() > before),
    )
    .await?;
    ensure!(
        cluster.height(AUDIT)? == head,
        "a halted audit node followed"
    );
    Ok(())
}

/// Waits until the audit node raised the alarm.
async fn wait_alarm(cluster: &Cluster) -> Result<()> {
    let audit = cluster.node(AUDIT)?;
    wait_until("the audit node raised the alarm", async || {
        Ok(audit.context.metrics.audit_alarm.get() > 0)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certified_block_with_a_wrong_state_root_raises_the_alarm_and_stops_the_audit_node()
-> Result<()> {
    let (mut cluster, head) = audit_node_alone().await?;
    let ours = state_root_after(&cluster, AUDIT, head)?;
    let forged_root = Hash::digest("test", b"not the state after the head");
    let forged = signed_block(&cluster, head + 1, forged_root)?;
    let honest = signed_block(&cluster, head + 1, ours)?;
    let audit = cluster.node(AUDIT)?;
    ensure!(audit.context.metrics.audit_alarm.get() == 0);
    audit
        .deliver_synced(validator_key(0).public_key(), vec![forged.clone()])
        .await?;
    wait_alarm(&cluster).await?;
    ensure!(
        cluster.height(AUDIT)? == head,
        "the forged block was committed"
    );
    // The evidence names the block, both roots, and holds the block and certificate.
    let evidence = read_evidence(&cluster.data_dir(AUDIT))?;
    let [kept] = evidence.as_slice() else {
        anyhow::bail!("expected one piece of evidence, found {evidence:?}");
    };
    ensure!(kept.height == head + 1);
    ensure!(kept.our_state_root == ours);
    ensure!(kept.claimed_state_root == Some(forged_root));
    ensure!(kept.block == hex::encode(&forged.block));
    ensure!(kept.certificate == hex::encode(tally_consensus::encode(&forged.certificate)));
    ensure!(
        kept.reason.contains("state root"),
        "reason: {}",
        kept.reason
    );
    // Its API says so: `/health` fails with the alarm, and the report names it.
    let server = http::serve(audit).await?;
    let api = server.addr;
    http::get(api, "/health")
        .await?
        .error(hyper::StatusCode::SERVICE_UNAVAILABLE, "AUDIT_ALARM")?;
    let report = http::get_json(api, "/v1/audit/report").await?;
    ensure!(
        report["node"]["alarm"] == true && report["node"]["mode"] == "audit",
        "{}",
        report["node"]
    );
    ensure!(report["node"]["height"] == head && report["range"]["to"] == head);
    // The supervisor's alerts lead with it, naming the offending height.
    let alerts = http::get_json(api, "/v1/audit/alerts").await?;
    let alarm = alerts["alerts"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["kind"] == "audit_alarm"))
        .with_context(|| format!("no alarm among the alerts: {alerts}"))?;
    ensure!(
        alarm["key"] == format!("alarm:{}", head + 1) && alarm["height"] == head + 1,
        "{alarm}"
    );
    ensure!(alarm["acknowledged"].is_null(), "{alarm}");
    server.stop().await?;
    // It has stopped following: even the honest block is not taken.
    delivered_to_halted(&cluster, honest.clone(), head).await?;
    // The alarm survives a restart: the node comes back halted, with the alarm up.
    cluster.take(AUDIT)?.kill().await;
    cluster
        .start_with(AUDIT, Mode::Audit, BTreeSet::new())
        .await?;
    let audit = cluster.node(AUDIT)?;
    ensure!(
        audit.context.metrics.audit_alarm.get() == 1,
        "alarm cleared by a restart"
    );
    delivered_to_halted(&cluster, honest, head).await?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_audit_node_restarts_and_resumes_verifying_where_it_stopped() -> Result<()> {
    let mut cluster = validators_and_audit().await?;
    transfers(&cluster, 5, 2).await?;
    cluster.wait_height(AUDIT, cluster.height(0)?).await?;
    // It may commit one more block between this read and the kill; never fewer.
    let stopped_at = cluster.height(AUDIT)?;
    ensure!(stopped_at > 0);
    cluster.take(AUDIT)?.kill().await;
    // Its storage kept what it had verified: reopened, it starts from there.
    cluster
        .start_with(AUDIT, Mode::Audit, BTreeSet::new())
        .await?;
    let resumed_at = cluster.height(AUDIT)?;
    ensure!(
        resumed_at >= stopped_at,
        "killed at {stopped_at}, resumed at {resumed_at}"
    );
    // The chain moves on meanwhile (fresh wallets), and the audit node verifies it too.
    let opening: Vec<_> = (500..505).flat_map(|id| open_wallet(id, 1_000)).collect();
    // A wallet's three opening transactions go to one validator: the second is admitted
    // only once that node holds the registration that installs the wallet's key.
    let hashes = cluster.submit_all(&opening, |n| n / 3 % 4).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    let height = cluster.height(0)?;
    ensure!(height > resumed_at);
    cluster.wait_all(height).await?;
    cluster.wait_committed_ok(AUDIT, &hashes).await?;
    cluster.assert_same_chain(height)?;
    ensure!(cluster.node(AUDIT)?.context.metrics.audit_alarm.get() == 0);
    cluster.shutdown().await
}

// A block whose certificate lacks a quorum no longer raises the alarm: it proves nothing
// about the chain, only about the peer that served it, which is cut off. See audit_alarm.rs.
