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
