//! How fast the regulator's reports read the chain: one validator commits 500 wallet
//! openings and 2,000 transfers, then the block-range report (JSON and CSV), the net
//! positions and a statement are fetched over the whole chain through the real API, and
//! each answer's size and time printed.
//!
//! ```sh
//! cargo run --release -p tally-node --example audit_report_bench
//! ```

// Bench equipment: a step that fails ends the run with its error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/http.rs"]
mod http;

use std::time::Instant;

use anyhow::{Result, ensure};
use common::{Cluster, genesis, open_wallet, transfer};
use hyper::StatusCode;

const WALLETS: u128 = 500;
const ROUNDS: u64 = 4;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mut cluster = Cluster::new(genesis(1))?;
    cluster.start(0).await?;
    let opening: Vec<_> = (1..=WALLETS)
        .flat_map(|id| open_wallet(id, 100_000))
        .collect();
    let hashes = cluster.submit_all(&opening, |_| 0).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    let payments: Vec<_> = (3..3 + ROUNDS)
        .flat_map(|nonce| (1..=WALLETS).map(move |id| transfer(id, id % WALLETS + 1, nonce, 7)))
        .collect();
    let hashes = cluster.submit_all(&payments, |_| 0).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    let head = cluster.height(0)?;
    let server = http::serve(cluster.node(0)?).await?;
    let movements = WALLETS as u64 * (1 + ROUNDS);
    println!("{head} blocks, {movements} movements");
    for path in [
        format!("/v1/audit/report?from=1&to={head}&threshold=1&accounts=1"),
        format!("/v1/audit/report.csv?from=1&to={head}&threshold=1"),
        format!("/v1/audit/net-positions?from=1&to={head}"),
        format!("/v1/audit/accounts/1/statement?from=1&to={head}"),
    ] {
        let started = Instant::now();
        let answer = http::get(server.addr, &path).await?;
        let elapsed = started.elapsed();
        ensure!(answer.status == StatusCode::OK, "{}", answer.text());
        println!(
            "{path}: {} bytes in {:.1} ms",
            answer.body.len(),
            elapsed.as_secs_f64() * 1e3
        );
    }
    server.stop().await?;
    cluster.shutdown().await
}
