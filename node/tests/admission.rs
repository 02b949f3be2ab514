//! Admission over four validators on loopback: a transaction waits for a block only if its
//! sender's key signed it, and copies of one body with fewer signers cannot displace the
//! one with more.
//!
//! Attackers: anyone who signs `sender = victim, nonce = victim's next` with their own key,
//! to hold the victim's nonce slot (before admission checked the sender's key, the victim
//! was refused `NONCE_TAKEN` on every validator while forgeries waited); a peer that gossips
//! such forgeries; someone who strips the bank's co-signature from a transaction in flight
//! and sends the stripped copy first to another validator.

mod common;

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail, ensure};
use common::*;
use tally_contracts::admission::AdmissionError;
use tally_contracts::*;
use tally_crypto::{Hash, PublicKey, SigningKey};
use tally_node::block::Block;
use tally_node::config::Mode;
use tally_node::mempool::MempoolError;
use tally_node::metrics::Metrics;
use tally_node::network::{self, GossipTopic, Network};
use tally_node::service::SubmitError;

const VICTIM: u128 = 1;
const PAYEE: u128 = 2;
const FORGERIES: usize = 50;

/// Waits until `condition` holds, or fails naming `what` after [`WAIT`].
async fn wait_for(what: &str, mut condition: impl AsyncFnMut() -> Result<bool>) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition().await? {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "not in {WAIT:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(())
}

fn signed(sender: Party, nonce: u64, keys: &[&SigningKey], kind: TxKind) -> SignedTransaction {
    Transaction {
        chain_id: CHAIN.into(),
        sender,
        nonce,
        kind,
    }
    .sign(keys)
}

/// Forgery `n` for the victim's nonce `nonce`: a transfer to the attacker's wallet signed by
/// keys that are not the victim's (the attacker's own; some also by a bank's, whose key is
/// real but not the sender's).
fn forgery(n: usize, nonce: u64) -> SignedTransaction {
    let attacker = SigningKey::from_seed(Hash::digest("test/attacker", &n.to_le_bytes()).0);
    let bank = institution_key(BANK_A);
    let keys: Vec<&SigningKey> = if n.is_multiple_of(5) {
        vec![&attacker, &bank]
    } else {
        vec![&attacker]
    };
    signed(
        Party::Account(AccountId(VICTIM)),
        nonce,
        &keys,
        TxKind::Transfer {
            id: TransferId(1_000_000 + n as u128),
            to: AccountId(PAYEE),
            amount: 1 + n as u64,
            memo: tally_contracts::Memo::NONE,
        },
    )
}

/// Four validators admitting `observers` to connect; wallets `VICTIM` and `PAYEE` opened.
async fn four_validators(observers: BTreeSet<PublicKey>) -> Result<Cluster> {
    let mut cluster = Cluster::new(genesis(4))?;
    for i in 0..4 {
        cluster
            .start_with(i, Mode::Validator, observers.clone())
            .await?;
    }
    let opening: Vec<_> = [VICTIM, PAYEE]
        .into_iter()
        .flat_map(|id| open_wallet(id, 100_000))
        .collect();
    let hashes = cluster.submit_all(&opening, |n| n / 3 % 4).await?;
    for i in 0..4 {
        cluster.wait_committed_ok(i, &hashes).await?;
    }
    Ok(cluster)
}

/// Every transaction in node `i`'s blocks up to its head.
fn committed_txs(cluster: &Cluster, i: usize) -> Result<Vec<SignedTransaction>> {
    let storage = &cluster.node(i)?.context.storage;
    let head = storage.head()?.unwrap_or(0);
    let mut txs = Vec::new();
    for h in 1..=head {
        let block = storage
            .block(h)?
            .with_context(|| format!("block {h} missing"))?;
        txs.extend(
            Block::decode(&block)?
                .txs
                .into_iter()
                .map(EncodedTransaction::into_signed),
        );
    }
    Ok(txs)
}

fn balance(cluster: &Cluster, i: usize, id: u128) -> Result<i128> {
    let account = query::account(&cluster.node(i)?.context.storage, AccountId(id))?
        .with_context(|| format!("account {id} missing"))?;
    Ok(account.balance())
}

/// The API's answer to a refusal: its status and code are the ones `tally node` sends.
fn refused_wrong_signer(refusal: Result<Hash, SubmitError>) -> Result<()> {
    match refusal {
        Err(SubmitError::Admission(AdmissionError::WrongSigner)) => Ok(()),
        other => bail!("a forgery was not refused as WRONG_SIGNER: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgeries_for_a_victims_next_nonce_are_refused_at_the_door() -> Result<()> {
    let cluster = four_validators(BTreeSet::new()).await?;
    let before = [balance(&cluster, 0, VICTIM)?, balance(&cluster, 0, PAYEE)?];
    let refused = |m: &Metrics| m.transactions_refused.get("wrong_signer");
    let refused_before: Vec<u64> = (0..4)
        .map(|i| Ok(refused(&cluster.node(i)?.context.metrics)))
        .collect::<Result<_>>()?;
    let real = transfer(VICTIM, PAYEE, 3, 777);
    let forgeries: Vec<SignedTransaction> = (0..FORGERIES).map(|n| forgery(n, 3)).collect();
    // Half the forgeries to every validator, the victim's transaction, the other half.
    let (first, second) = forgeries.split_at(FORGERIES / 2);
    for tx in first {
        for i in 0..4 {
            refused_wrong_signer(cluster.node(i)?.context.submit(encoding::encode(tx)).await)?;
        }
    }
    let real_id = cluster
        .node(1)?
        .context
        .submit(encoding::encode(&real))
        .await?;
    ensure!(real_id == real.hash());
    for tx in second {
        for i in 0..4 {
            refused_wrong_signer(cluster.node(i)?.context.submit(encoding::encode(tx)).await)?;
        }
    }
    // The victim's transaction commits everywhere, with its effect.
    for i in 0..4 {
        cluster.wait_committed_ok(i, &[real_id]).await?;
    }
    let height = cluster.height(0)?;
    cluster.wait_all(height).await?;
    cluster.assert_same_chain(height)?;
    ensure!(balance(&cluster, 0, VICTIM)? == before[0] - 777);
    ensure!(balance(&cluster, 0, PAYEE)? == before[1] + 777);
    // Every forgery counted as refused by every validator, none in any block.
    for (i, before) in refused_before.iter().enumerate() {
        let metrics = &cluster.node(i)?.context.metrics;
        ensure!(
            refused(metrics) == before + FORGERIES as u64,
            "validator {i} counted {} refusals",
            refused(metrics) - before
        );
    }
    let forged: BTreeSet<Hash> = forgeries.iter().map(SignedTransaction::hash).collect();
    let victims: Vec<SignedTransaction> = committed_txs(&cluster, 0)?
        .into_iter()
        .filter(|tx| tx.tx.sender == Party::Account(AccountId(VICTIM)))
        .collect();
    ensure!(victims.iter().all(|tx| !forged.contains(&tx.hash())));
    ensure!(
        victims.len() == 4 && victims.iter().any(|tx| tx.hash() == real_id),
        "the victim's committed transactions: {victims:?}"
    );
    // Also by the API's lookup: unknown.
    for tx in &forgeries {
        ensure!(
            cluster
                .node(2)?
                .context
                .storage
                .tx_location(&tx.hash())?
                .is_none()
        );
    }
    cluster.shutdown().await
}

fn observer_key(i: u8) -> SigningKey {
    SigningKey::from_seed([60 + i; 32])
}

/// A raw network endpoint with `key`, connected to the four validators.
async fn raw_endpoint(cluster: &Cluster, key: &SigningKey) -> Result<Network> {
    let config = cluster.config(9, Mode::Validator, BTreeSet::new())?;
    let endpoint = network::start(key, config.network()).await?;
    let handle = endpoint.handle.clone();
    wait_for("the raw endpoint connected to the validators", async || {
        Ok(handle.connected_peers().await?.len() >= 4)
    })
    .await?;
    Ok(endpoint)
}

/// Gossips `txs` as one transaction batch, as a node does, retrying while the gossip mesh
/// forms.
async fn gossip(endpoint: &Network, txs: &[SignedTransaction]) -> Result<()> {
    let batch: Vec<Vec<u8>> = txs.iter().map(encoding::encode).collect();
    let bytes = tally_consensus::encode(&batch);
    wait_for("the batch was published", async || {
        Ok(endpoint
            .handle
            .publish(GossipTopic::Transactions, bytes.clone())
            .await
            .is_ok())
    })
    .await
}

/// Waits until every validator counted `count` more gossiped refusals for `reason`.
async fn wait_gossip_refused(
    cluster: &Cluster,
    reason: &'static str,
    before: &[u64],
    count: u64,
) -> Result<()> {
    for (i, before) in before.iter().enumerate() {
        let metrics = &cluster.node(i)?.context.metrics;
        wait_for(
            &format!("validator {i} refused {count} gossiped transactions ({reason})"),
            async || Ok(metrics.gossiped_transactions_refused.get(reason) >= before + count),
        )
        .await?;
    }
    Ok(())
}

fn gossip_refused(cluster: &Cluster, reason: &'static str) -> Result<Vec<u64>> {
    (0..4)
        .map(|i| {
            Ok(cluster
                .node(i)?
                .context
                .metrics
                .gossiped_transactions_refused
                .get(reason))
        })
        .collect()
}

/// Forgeries gossiped by a peer: each dropped and counted by every validator, the forger
/// cut off past its strikes; a peer with a few (what a key-rotation race can give an honest
/// peer) stays; a peer gossiping a bad signature is cut off at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgeries_gossiped_by_a_peer_are_dropped_and_the_forger_cut_off() -> Result<()> {
    let observers: Vec<SigningKey> = (0..3).map(observer_key).collect();
    let cluster = four_validators(observers.iter().map(SigningKey::public_key).collect()).await?;
    let (racer, forger, garbler) = (&observers[0], &observers[1], &observers[2]);
    let racer_end = raw_endpoint(&cluster, racer).await?;
    let forger_end = raw_endpoint(&cluster, forger).await?;
    let garbler_end = raw_endpoint(&cluster, garbler).await?;

    // A few, as a race could give: counted, dropped, the peer kept.
    let before = gossip_refused(&cluster, "wrong_signer")?;
    let few: Vec<_> = (100..105).map(|n| forgery(n, 3)).collect();
    gossip(&racer_end, &few).await?;
    wait_gossip_refused(&cluster, "wrong_signer", &before, few.len() as u64).await?;

    // A stream: every forgery counted, the forger cut off by every validator.
    let before = gossip_refused(&cluster, "wrong_signer")?;
    let stream: Vec<_> = (0..FORGERIES).map(|n| forgery(n, 3)).collect();
    gossip(&forger_end, &stream).await?;
    wait_gossip_refused(&cluster, "wrong_signer", &before, FORGERIES as u64).await?;
    for i in 0..4 {
        let node = cluster.node(i)?;
        wait_for(&format!("validator {i} cut the forger off"), async || {
            Ok(!node
                .network
                .connected_peers()
                .await?
                .contains(&forger.public_key()))
        })
        .await?;
    }

    // One transaction whose signature does not verify: garbage, cut off at once.
    let before = gossip_refused(&cluster, "bad_signature")?;
    let mut bad = transfer(VICTIM, PAYEE, 3, 5);
    if let Some(first) = bad.signatures.first_mut() {
        first.signature.0[0] ^= 1;
    }
    gossip(&garbler_end, &[bad]).await?;
    wait_gossip_refused(&cluster, "bad_signature", &before, 1).await?;
    for i in 0..4 {
        let node = cluster.node(i)?;
        wait_for(&format!("validator {i} cut the garbler off"), async || {
            Ok(!node
                .network
                .connected_peers()
                .await?
                .contains(&garbler.public_key()))
        })
        .await?;
    }
    // The racer, whose few refusals every validator counted before the others were cut
    // off, is still connected to all of them.
    for i in 0..4 {
        let peers = cluster.node(i)?.network.connected_peers().await?;
        ensure!(
            peers.contains(&racer.public_key()),
            "validator {i} cut off a peer with {} strikes",
            few.len()
        );
    }

    // The victim's own transaction for the nonce they all aimed at commits; no forgery does.
    let real = transfer(VICTIM, PAYEE, 3, 10);
    let id = cluster
        .node(3)?
        .context
        .submit(encoding::encode(&real))
        .await?;
    for i in 0..4 {
        cluster.wait_committed_ok(i, &[id]).await?;
    }
    let forged: BTreeSet<Hash> = few
        .iter()
        .chain(&stream)
        .map(SignedTransaction::hash)
        .collect();
    ensure!(
        committed_txs(&cluster, 0)?
            .iter()
            .all(|tx| !forged.contains(&tx.hash()))
    );
    for end in [racer_end, forger_end, garbler_end] {
        end.handle.shutdown().await?;
    }
    cluster.shutdown().await
}

/// The card's bank co-signs a top-up; an attacker strips the bank's signature and sends the
/// stripped copy first to another validator. The stripped copy would commit as
/// `MISSING_CO_SIGNATURE` and use the nonce; the original must commit, topping up.
///
/// The two copies wait behind a nonce gap (the sender's previous transaction is sent last),
/// so no block can take either before both have met every validator: the test shows what
/// each validator keeps, then that the one kept commits with its intended outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_stripped_of_a_co_signature_does_not_displace_the_original() -> Result<()> {
    let cluster = four_validators(BTreeSet::new()).await?;
    let wallet = wallet_key(VICTIM);
    let bank = institution_key(BANK_A);
    let card = CardToken(Hash::digest("card", &VICTIM.to_le_bytes()).0);
    let top_up = TxKind::TopUp {
        id: TransferId(4242),
        card,
        amount: 5_000,
    };
    let party = Party::Account(AccountId(VICTIM));
    let original = signed(party, 4, &[&wallet, &bank], top_up.clone());
    let mut stripped = original.clone();
    stripped.signatures.retain(|s| s.key == wallet.public_key());
    ensure!(stripped.signatures.len() == 1 && stripped.hash() != original.hash());
    let before = balance(&cluster, 0, VICTIM)?;

    // The stripped copy first, to validator 1; then the original to validator 2.
    cluster
        .node(1)?
        .context
        .submit(encoding::encode(&stripped))
        .await?;
    cluster
        .node(2)?
        .context
        .submit(encoding::encode(&original))
        .await?;
    // Every validator ends up holding the original, not the stripped copy.
    for i in 0..4 {
        let context = &cluster.node(i)?.context;
        wait_for(&format!("validator {i} holds the original"), async || {
            Ok((context.pending)(&original.hash()) && !(context.pending)(&stripped.hash()))
        })
        .await?;
    }
    // The stripped copy sent again is refused where the original waits.
    match cluster
        .node(0)?
        .context
        .submit(encoding::encode(&stripped))
        .await
    {
        Err(SubmitError::Mempool(MempoolError::FewerSignatures { nonce: 4 })) => {}
        other => bail!("the stripped copy was not refused: {other:?}"),
    }
    // The gap closes: the sender's nonce 3, then both commit.
    let gap = transfer(VICTIM, PAYEE, 3, 1);
    let gap_id = cluster
        .node(3)?
        .context
        .submit(encoding::encode(&gap))
        .await?;
    for i in 0..4 {
        cluster
            .wait_committed_ok(i, &[gap_id, original.hash()])
            .await?;
        ensure!(
            cluster
                .node(i)?
                .context
                .storage
                .tx_location(&stripped.hash())?
                .is_none(),
            "the stripped copy committed on validator {i}"
        );
    }
    ensure!(balance(&cluster, 0, VICTIM)? == before - 1 + 5_000);
    cluster.shutdown().await
}
