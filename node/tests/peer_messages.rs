//! Hostile peer messages against three honest validators of four, over loopback.
//!
//! The fourth validator's key is held by a raw network endpoint that sends valid-looking
//! votes for blocks nobody has; four observer keys (admitted to connect, never validators)
//! send a truncated message, random bytes, a vote signed with the wrong key and a vote from
//! a validator index outside the set. Each of those four is dropped, counted under its
//! reason, and its sender cut off and kept out; the validator with the odd votes, whose
//! votes every honest node checked and counted, stays connected (a vote for an unknown block
//! is legitimate protocol traffic); the three honest validators keep committing one chain.
//!
//! The hostile votes are for a height far ahead of every node: a message for a height
//! already decided is dropped unchecked (it cannot change anything), so a vote built for
//! "the next height" could go stale on a fast chain and never be judged at all.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use common::*;
use tally_consensus::{BlockHash, Message, SignedVote, ValidatorIndex, Vote, VoteKind};
use tally_crypto::{Hash, PublicKey, SigningKey};
use tally_node::block::Block;
use tally_node::config::Mode;
use tally_node::metrics::Metrics;
use tally_node::network::{self, Network};

/// The validator whose key the raw endpoint holds.
const ODD_VALIDATOR: usize = 3;
/// How far ahead of the chain the hostile votes are: never reached while the test runs, so
/// every honest node checks them against the set in force (the genesis set).
const AHEAD: u64 = 1_000;
/// Refused redials that show a cut-off sender kept trying and stayed out.
const REDIALS_REFUSED: u64 = 2;

fn observer_key(i: u8) -> SigningKey {
    SigningKey::from_seed([40 + i; 32])
}

/// A raw endpoint with `key`, dialling the honest validators of `cluster`.
async fn raw_endpoint(cluster: &Cluster, key: &SigningKey) -> Result<Network> {
    let config = cluster.config(ODD_VALIDATOR, Mode::Validator, BTreeSet::new())?;
    let endpoint = network::start(key, config.network()).await?;
    let handle = endpoint.handle.clone();
    wait_until(
        "the raw endpoint connected to the three honest validators",
        async || Ok(handle.connected_peers().await?.len() >= 3),
    )
    .await?;
    Ok(endpoint)
}

/// A prevote signed by `key` in the validator slot `validator` at `height`, round 0.
fn vote(key: &SigningKey, validator: u32, height: u64, block: Option<BlockHash>) -> Message {
    let vote = Vote {
        kind: VoteKind::Prevote,
        height: tally_consensus::Height(height),
        round: tally_consensus::Round(0),
        block,
        validator: ValidatorIndex(validator),
    };
    let signature = key.sign(vote.kind.domain(), CHAIN, &vote.signing_bytes());
    Message::Vote(SignedVote { vote, signature })
}

/// Sends `bytes` to every honest validator.
async fn send_to_all(endpoint: &Network, honest: &[PublicKey], bytes: &[u8]) -> Result<()> {
    for peer in honest {
        endpoint.handle.send_direct(*peer, bytes.to_vec()).await?;
    }
    Ok(())
}

fn metrics(cluster: &Cluster, i: usize) -> Result<&Metrics> {
    Ok(&cluster.node(i)?.context.metrics)
}

/// One counter of each honest node.
fn counts(cluster: &Cluster, read: impl Fn(&Metrics) -> u64) -> Result<Vec<u64>> {
    (0..3).map(|i| Ok(read(metrics(cluster, i)?))).collect()
}

/// Sends `bytes` from a fresh endpoint with `key` to the honest validators, then checks
/// from the honest side that each of them dropped it under `reason` (a count of dropped
/// consensus messages) and cut the sender off, and that each then kept refusing the
/// sender's redials without letting it back in. The endpoint is shut down after, so the
/// next sender's refused redials are its own.
async fn sent_dropped_and_cut_off(
    cluster: &Cluster,
    key: &SigningKey,
    bytes: &[u8],
    reason: &'static str,
) -> Result<()> {
    let honest: Vec<PublicKey> = (0..3).map(|i| validator_key(i).public_key()).collect();
    let sender = key.public_key();
    let endpoint = raw_endpoint(cluster, key).await?;
    let dropped = |m: &Metrics| m.consensus_messages_dropped.get(reason);
    let cut = |m: &Metrics| m.network.peers_cut_off.get("reported");
    let dropped_before = counts(cluster, dropped)?;
    let cut_before = counts(cluster, cut)?;
    send_to_all(&endpoint, &honest, bytes).await?;
    for i in 0..3 {
        let node = cluster.node(i)?;
        wait_until(
            &format!("honest validator {i} dropped the message ({reason}) and cut {sender} off"),
            async || {
                let m = &node.context.metrics;
                Ok(dropped(m) > dropped_before[i]
                    && cut(m) > cut_before[i]
                    && !node.network.connected_peers().await?.contains(&sender))
            },
        )
        .await?;
    }
    // Kept out: the sender redials at once and again, and each honest node refuses it
    // (counted), never listing it as connected meanwhile.
    let refused = |m: &Metrics| m.network.connections_refused.get("blocked");
    let refused_before = counts(cluster, refused)?;
    for (i, before) in refused_before.into_iter().enumerate() {
        let node = cluster.node(i)?;
        wait_until(
            &format!("honest validator {i} refused {REDIALS_REFUSED} redials of {sender}"),
            async || {
                ensure!(
                    !node.network.connected_peers().await?.contains(&sender),
                    "honest validator {i} let the cut-off sender {sender} back in"
                );
                Ok(refused(&node.context.metrics) >= before + REDIALS_REFUSED)
            },
        )
        .await?;
    }
    endpoint.handle.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn hostile_peer_messages_are_dropped_and_consensus_goes_on() -> Result<()> {
    let mut cluster = Cluster::new(genesis(4))?;
    let observers: Vec<SigningKey> = (0..4).map(observer_key).collect();
    let admitted: BTreeSet<PublicKey> = observers.iter().map(SigningKey::public_key).collect();
    for i in 0..3 {
        cluster
            .start_with(i, Mode::Validator, admitted.clone())
            .await?;
    }
    let honest: Vec<PublicKey> = (0..3).map(|i| validator_key(i).public_key()).collect();
    cluster.wait_all(2).await?;
    let odd_index = cluster
        .genesis
        .validator_set()?
        .index_of(&validator_key(ODD_VALIDATOR).public_key())
        .context("the odd validator is not in the set")?;

    // The fourth validator's key, voting for blocks nobody has, once per height: for the
    // height being decided, and for one far ahead (checked by every node for certain).
    let odd = raw_endpoint(&cluster, &validator_key(ODD_VALIDATOR)).await?;
    let verified = |m: &Metrics| m.consensus_messages_verified.get(odd_index.0);
    let verified_before = counts(&cluster, verified)?;
    let rounds = 5u8;
    for n in 0..rounds {
        let unknown = Some(BlockHash(Hash::digest("test/unknown-block", &[n])));
        let h = cluster.height(0)?;
        for height in [h + 1, h + AHEAD] {
            let message = vote(&validator_key(ODD_VALIDATOR), odd_index.0, height, unknown);
            send_to_all(&odd, &honest, &message.encode()).await?;
        }
        cluster.wait_height(0, h + 1).await?;
    }
    for (i, before) in verified_before.into_iter().enumerate() {
        let m = metrics(&cluster, i)?;
        wait_until(
            &format!("honest validator {i} verified the odd validator's {rounds} far votes"),
            async || Ok(verified(m) >= before + u64::from(rounds)),
        )
        .await?;
    }

    let far = cluster.height(0)? + AHEAD;
    // A valid vote, truncated.
    let whole = vote(&validator_key(ODD_VALIDATOR), odd_index.0, far, None).encode();
    let half = whole.get(..whole.len() / 2).context("empty encoding")?;
    sent_dropped_and_cut_off(&cluster, &observers[0], half, "undecodable").await?;

    // Random bytes (a fixed seed, so a failure replays).
    let noise: Vec<u8> = (0u32..300)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    sent_dropped_and_cut_off(&cluster, &observers[1], &noise, "undecodable").await?;

    // A vote in validator 1's name, signed with the observer's own key.
    let forged = vote(&observers[2], 1, far, None).encode();
    sent_dropped_and_cut_off(&cluster, &observers[2], &forged, "bad_signature").await?;

    // A vote from a validator index the set does not have.
    let stranger = vote(&observers[3], 9, far, None).encode();
    sent_dropped_and_cut_off(&cluster, &observers[3], &stranger, "unknown_validator").await?;

    // Consensus unharmed: more blocks, one chain, and no evidence against anyone (the odd
    // votes were one per height and round, so nobody equivocated).
    let before = cluster.height(0)?;
    cluster.wait_all(before + 3).await?;
    let head = (0..3)
        .map(|i| cluster.height(i))
        .collect::<Result<Vec<u64>>>()?
        .into_iter()
        .min()
        .context("no node")?;
    cluster.assert_same_chain(head)?;
    let node = cluster.node(0)?;
    for h in 1..=head {
        let bytes = node.context.storage.block(h)?.context("block missing")?;
        let block = Block::decode(&bytes)?;
        ensure!(
            block.evidence.is_empty(),
            "block {h} holds evidence: {:?}",
            block.evidence
        );
    }
    // The validator that only voted oddly, whose votes every honest node verified (above),
    // is still connected to everyone, seen from both sides.
    let connected = odd.handle.connected_peers().await?;
    ensure!(
        honest.iter().all(|p| connected.contains(p)),
        "the validator with votes for unknown blocks was cut off: connected to {connected:?}"
    );
    let odd_key = validator_key(ODD_VALIDATOR).public_key();
    for i in 0..3 {
        let theirs = cluster.node(i)?.network.connected_peers().await?;
        ensure!(
            theirs.contains(&odd_key),
            "honest validator {i} cut off the validator with votes for unknown blocks"
        );
    }
    cluster.shutdown().await
}
