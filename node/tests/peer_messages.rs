//! Hostile peer messages against three honest validators of four, over loopback.
//!
//! The fourth validator's key is held by a raw network endpoint that sends valid-looking
//! votes for blocks nobody has; four observer keys (admitted to connect, never validators)
//! send a truncated message, random bytes, a vote signed with the wrong key and a vote from
//! a validator index outside the set. Each of those four is dropped and its sender cut off;
//! the validator with the odd votes stays connected (a vote for an unknown block is
//! legitimate protocol traffic); the three honest validators keep committing one chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::*;
use tally_consensus::{BlockHash, Message, SignedVote, ValidatorIndex, Vote, VoteKind};
use tally_crypto::{Hash, PublicKey, SigningKey};
use tally_node::block::Block;
use tally_node::config::Mode;
use tally_node::network::{self, Network, NetworkEvent};
use tokio::time::timeout;

/// The validator whose key the raw endpoint holds.
const ODD_VALIDATOR: usize = 3;

fn observer_key(i: u8) -> SigningKey {
    SigningKey::from_seed([40 + i; 32])
}

/// A raw endpoint with `key`, dialling the honest validators of `cluster`.
async fn raw_endpoint(cluster: &Cluster, key: &SigningKey) -> Result<Network> {
    let config = cluster.config(ODD_VALIDATOR, Mode::Validator, BTreeSet::new())?;
    let endpoint = network::start(key, config.network()).await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    while endpoint.handle.connected_peers().await?.len() < 3 {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the raw endpoint did not connect to the three honest validators"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(endpoint)
}

/// A vote signed by `key` in the validator slot `validator`, for the height being decided.
fn vote(
    cluster: &Cluster,
    key: &SigningKey,
    validator: u32,
    block: Option<BlockHash>,
) -> Result<Message> {
    let height = cluster.height(0)? + 1;
    let vote = Vote {
        kind: VoteKind::Prevote,
        height: tally_consensus::Height(height),
        round: tally_consensus::Round(0),
        block,
        validator: ValidatorIndex(validator),
    };
    let signature = key.sign(vote.kind.domain(), CHAIN, &vote.signing_bytes());
    Ok(Message::Vote(SignedVote { vote, signature }))
}

/// Sends `bytes` to every honest validator.
async fn send_to_all(endpoint: &Network, honest: &[PublicKey], bytes: &[u8]) -> Result<()> {
    for peer in honest {
        endpoint.handle.send_direct(*peer, bytes.to_vec()).await?;
    }
    Ok(())
}

/// Waits until every honest validator has cut `endpoint` off, and checks from the honest
/// side that they keep it out: the endpoint redials, and may see a connection for an instant
/// before the honest node refuses it, so its own view is not the judge.
async fn cut_off_by_all(
    cluster: &Cluster,
    endpoint: &mut Network,
    sender: PublicKey,
    honest: &[PublicKey],
) -> Result<()> {
    let mut open: BTreeSet<PublicKey> = honest.iter().copied().collect();
    let closed = async {
        while let Some(event) = endpoint.events.recv().await {
            if let NetworkEvent::PeerDisconnected(peer) = event {
                open.remove(&peer);
                if open.is_empty() {
                    return Ok(());
                }
            }
        }
        bail!("the endpoint's event channel closed")
    };
    timeout(WAIT, closed)
        .await
        .context("not every honest validator cut the sender off")??;
    // Still out a while later, across the endpoint's redials.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for i in 0..3 {
            let connected = cluster.node(i)?.network.connected_peers().await?;
            ensure!(
                !connected.contains(&sender),
                "honest validator {i} let the cut-off sender back in"
            );
        }
    }
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

    // The fourth validator's key, voting for blocks nobody has, once per height.
    let odd = raw_endpoint(&cluster, &validator_key(ODD_VALIDATOR)).await?;
    for n in 0u8..5 {
        let unknown = BlockHash(Hash::digest("test/unknown-block", &[n]));
        let message = vote(
            &cluster,
            &validator_key(ODD_VALIDATOR),
            ODD_VALIDATOR as u32,
            Some(unknown),
        )?;
        send_to_all(&odd, &honest, &message.encode()).await?;
        let h = cluster.height(0)?;
        cluster.wait_height(0, h + 1).await?;
    }

    // A valid vote, truncated.
    let mut truncating = raw_endpoint(&cluster, &observers[0]).await?;
    let whole = vote(&cluster, &validator_key(ODD_VALIDATOR), 3, None)?.encode();
    let half = whole.get(..whole.len() / 2).context("empty encoding")?;
    send_to_all(&truncating, &honest, half).await?;
    cut_off_by_all(
        &cluster,
        &mut truncating,
        observers[0].public_key(),
        &honest,
    )
    .await?;

    // Random bytes (a fixed seed, so a failure replays).
    let mut random = raw_endpoint(&cluster, &observers[1]).await?;
    let noise: Vec<u8> = (0u32..300)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    send_to_all(&random, &honest, &noise).await?;
    cut_off_by_all(&cluster, &mut random, observers[1].public_key(), &honest).await?;

    // A vote in validator 1's name, signed with the observer's own key.
    let mut forging = raw_endpoint(&cluster, &observers[2]).await?;
    let forged = vote(&cluster, &observers[2], 1, None)?;
    send_to_all(&forging, &honest, &forged.encode()).await?;
    cut_off_by_all(&cluster, &mut forging, observers[2].public_key(), &honest).await?;

    // A vote from a validator index the set does not have.
    let mut outsider = raw_endpoint(&cluster, &observers[3]).await?;
    let stranger = vote(&cluster, &observers[3], 9, None)?;
    send_to_all(&outsider, &honest, &stranger.encode()).await?;
    cut_off_by_all(&cluster, &mut outsider, observers[3].public_key(), &honest).await?;

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
    // The validator that only voted oddly is still connected to everyone.
    let connected = odd.handle.connected_peers().await?;
    ensure!(
        honest.iter().all(|p| connected.contains(p)),
        "the validator with votes for unknown blocks was cut off: connected to {connected:?}"
    );
    cluster.shutdown().await
}
