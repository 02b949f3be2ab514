//! Throughput and commit latency of a validator cluster in one process over loopback.
//!
//! `cargo run --release -p tally-node --example cluster_bench -- --transfers 20000`
//!
//! Starts the validators of the cluster tests (`tests/common`), opens and funds `--wallets`
//! wallets, signs every transfer before the clock starts, then submits them to the nodes'
//! `NodeContext` submission queues (a wallet always to the same node, in nonce order) at
//! `--rate` per second, or as fast as they are accepted with `--rate 0`. A full queue is the
//! node's "busy": the submitter pauses and retries the same transaction. Commits are observed
//! on node 0: on each new committed height its block results are read and each receipt is
//! matched to the transfer it answers.
//!
//! Latency is from the first attempt to submit a transfer to the moment node 0's committed
//! height covering its block was observed. Throughput is committed transfers over the window
//! from the first submission to the last commit. Prints a summary, then one line of JSON.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use common::{Cluster, genesis, open_wallet, transfer};
use tally_contracts::EncodedTransaction;
use tally_crypto::Hash;
use tally_node::block::BlockResults;
use tally_node::mempool::MempoolError;
use tally_node::node::NONCE_AHEAD_MAX;
use tally_node::service::{NodeContext, Submission, SubmitError};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Parser)]
#[command(about = "Committed transfers per second and commit latency of a local cluster")]
struct Args {
    /// Validators started in this process.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Wallets opened and funded before the measurement; transfers go round them in a ring.
    #[arg(long, default_value_t = 1_000)]
    wallets: u128,
    /// Signed transfers submitted in the measured window.
    #[arg(long, default_value_t = 20_000)]
    transfers: usize,
    /// Target submissions per second over all nodes; 0 submits as fast as they are accepted.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Hard limit on the whole run, setup included, in seconds.
    #[arg(long, default_value_t = 120)]
    deadline_s: u64,
    /// Skip the check that every node holds the same blocks and state roots at the end.
    #[arg(long)]
    no_check: bool,
}

/// One transfer, signed and encoded before the clock starts.
#[derive(Debug)]
struct Prepared {
    index: usize,
    hash: Hash,
    tx: EncodedTransaction,
}

/// What a node's submission queue answered for one transfer.
#[derive(Debug)]
struct Submitted {
    index: usize,
    first_attempt: Instant,
    answer: Result<(), SubmitError>,
}

/// Pause before retrying a submission the node was too busy to take.
const BUSY_PAUSE: Duration = Duration::from_millis(2);
/// Passes over transfers the mempool answered "busy" (full), before they count as rejected.
const BUSY_PASSES_MAX: usize = 5;

fn main() -> Result<()> {
    let args = Args::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .try_init();
    // As many workers as the machine has cores: the nodes, the submitters and the commit
    // watcher share them, as they would share a small server.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(args.deadline_s);
    let load_before = load_average();
    let report = runtime.block_on(run(&args, deadline))?;
    let load_after = load_average();
    print_report(&args, &report, cores, &load_before, &load_after)
}

#[derive(Debug, Default)]
struct Report {
    prepared: usize,
    submitted: usize,
    accepted: usize,
    rejected: HashMap<String, usize>,
    busy_retries: usize,
    committed_ok: usize,
    committed_failed: usize,
    blocks: u64,
    window: Duration,
    submit_duration: Duration,
    /// Submission to observed commit, of transfers committed ok, sorted.
    latencies: Vec<Duration>,
    setup: Duration,
}

async fn run(args: &Args, deadline: Instant) -> Result<Report> {
    ensure!(args.validators >= 1, "--validators must be at least 1");
    ensure!(args.wallets >= 2, "--wallets must be at least 2");
    let per_wallet = args.transfers.div_ceil(usize::try_from(args.wallets)?);
    ensure!(
        u64::try_from(per_wallet)? <= NONCE_AHEAD_MAX,
        "{per_wallet} transfers per wallet is beyond the mempool's nonce window \
         ({NONCE_AHEAD_MAX}): give more --wallets"
    );
    let setup_start = Instant::now();
    let mut cluster = Cluster::new(genesis(args.validators))?;
    for i in 0..args.validators {
        cluster.start(i).await?;
    }
    cluster.wait_all(2).await?;

    // Open and fund the wallets (three transactions each), outside the measurement.
    let opening: Vec<_> = (1..=args.wallets)
        .flat_map(|id| open_wallet(id, 1_000_000))
        .collect();
    let v = args.validators;
    let hashes = cluster.submit_all(&opening, |n| n / 3 % v).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    eprintln!(
        "{} wallets funded in {:.1?}; signing {} transfers",
        args.wallets,
        setup_start.elapsed(),
        args.transfers
    );

    // Sign everything ahead: a ring where each wallet pays the next, nonces from 3 on.
    // Wallet `id` always goes to node `id % v`, so its nonces reach one mempool in order.
    let mut by_node: Vec<Vec<Prepared>> = (0..v).map(|_| Vec::new()).collect();
    let mut index_of: HashMap<Hash, usize> = HashMap::with_capacity(args.transfers);
    'rounds: for round in 0..per_wallet {
        for id in 1..=args.wallets {
            let index = index_of.len();
            if index >= args.transfers {
                break 'rounds;
            }
            let tx = transfer(id, id % args.wallets + 1, 3 + u64::try_from(round)?, 7);
            let hash = tx.hash();
            index_of.insert(hash, index);
            let node = usize::try_from(id)? % v;
            by_node.get_mut(node).context("node index")?.push(Prepared {
                index,
                hash,
                tx: EncodedTransaction::new(tx),
            });
        }
    }
    let prepared = index_of.len();
    let setup = setup_start.elapsed();
    eprintln!("setup done in {setup:.1?}; measuring");

    // The commit watcher starts before the first submission so that no block is missed.
    let expected = Arc::new(AtomicUsize::new(usize::MAX));
    let start_height = cluster.height(0)?;
    let watcher = tokio::spawn(watch_commits(
        cluster.node(0)?.context.clone(),
        start_height,
        index_of,
        Arc::clone(&expected),
        deadline,
    ));

    let start = Instant::now();
    // Each node gets its share of the target rate.
    let per_node_rate = args.rate as f64 / v as f64;
    let mut submitters = Vec::new();
    for (i, txs) in by_node.into_iter().enumerate() {
        let context = cluster.node(i)?.context.clone();
        submitters.push(tokio::spawn(submit_node(
            context,
            txs,
            per_node_rate,
            start,
            deadline,
        )));
    }
    let mut report = Report {
        prepared,
        setup,
        ..Report::default()
    };
    let mut first_attempts: Vec<Option<Instant>> = vec![None; prepared];
    for submitter in submitters {
        let (outcomes, busy_retries) = submitter.await??;
        report.busy_retries += busy_retries;
        for outcome in outcomes {
            report.submitted += 1;
            match outcome.answer {
                Ok(()) => {
                    report.accepted += 1;
                    if let Some(slot) = first_attempts.get_mut(outcome.index) {
                        *slot = Some(outcome.first_attempt);
                    }
                }
                Err(e) => *report.rejected.entry(e.to_string()).or_default() += 1,
            }
        }
    }
    report.submit_duration = start.elapsed();
    expected.store(report.accepted, Ordering::SeqCst);
    let commits = watcher.await??;
    report.blocks = commits.blocks;
    report.committed_failed = commits.failed;
    let mut last_commit = start;
    for (index, at) in commits.ok {
        if let Some(Some(first)) = first_attempts.get(index) {
            report.latencies.push(at.saturating_duration_since(*first));
            last_commit = last_commit.max(at);
        }
    }
    report.committed_ok = report.latencies.len();
    report.latencies.sort_unstable();
    report.window = last_commit.saturating_duration_since(start);

    if !args.no_check {
        // Outside the measurement: every node committed the same blocks and state roots.
        let height = cluster.height(0)?;
        cluster.wait_all(height).await?;
        cluster.assert_same_chain(height)?;
        eprintln!("all {v} nodes hold the same {height} blocks and state roots");
    }
    cluster.shutdown().await?;
    Ok(report)
}

/// Submits `txs` in order to one node, paced at `rate` per second (0: no pacing). Returns
/// each transfer's answer and how many times the node was busy.
async fn submit_node(
    context: NodeContext,
    txs: Vec<Prepared>,
    rate: f64,
    start: Instant,
    deadline: Instant,
) -> Result<(Vec<Submitted>, usize)> {
    let mut busy_retries = 0;
    let mut outcomes = Vec::with_capacity(txs.len());
    let mut first_attempts: HashMap<usize, Instant> = HashMap::new();
    let mut todo = txs;
    for pass in 0..BUSY_PASSES_MAX {
        // Queue every transfer without waiting for its answer, so the chain task admits
        // them in batches; the answers are read once the pass has queued them all.
        let mut waiting: Vec<(Prepared, Instant, oneshot::Receiver<_>)> = Vec::new();
        for (sent, tx) in todo.into_iter().enumerate() {
            if rate > 0.0 && pass == 0 {
                let due = start + Duration::from_secs_f64(sent as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            let first = *first_attempts.entry(tx.index).or_insert_with(Instant::now);
            let (reply, answer) = oneshot::channel();
            let mut submission = Submission {
                tx: tx.tx.clone(),
                reply,
            };
            loop {
                match context.submit.try_send(submission) {
                    Ok(()) => break,
                    Err(mpsc::error::TrySendError::Full(back)) => {
                        ensure!(Instant::now() < deadline, "deadline passed while busy");
                        busy_retries += 1;
                        submission = back;
                        tokio::time::sleep(BUSY_PAUSE).await;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => bail!("node stopped"),
                }
            }
            waiting.push((tx, first, answer));
        }
        let mut again = Vec::new();
        for (tx, first, answer) in waiting {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let answer = tokio::time::timeout(remaining, answer)
                .await
                .context("deadline passed waiting for the mempool's answer")?
                .unwrap_or(Err(SubmitError::ShuttingDown));
            match answer {
                Ok(hash) => {
                    ensure!(hash == tx.hash, "the node names another hash");
                    outcomes.push(Submitted {
                        index: tx.index,
                        first_attempt: first,
                        answer: Ok(()),
                    });
                }
                // The mempool is full: try again once the nodes have drained it a little.
                Err(SubmitError::Mempool(MempoolError::Busy)) if pass + 1 < BUSY_PASSES_MAX => {
                    again.push(tx)
                }
                Err(e) => outcomes.push(Submitted {
                    index: tx.index,
                    first_attempt: first,
                    answer: Err(e),
                }),
            }
        }
        if again.is_empty() {
            break;
        }
        busy_retries += again.len();
        tokio::time::sleep(Duration::from_millis(200)).await;
        todo = again;
    }
    Ok((outcomes, busy_retries))
}

#[derive(Debug, Default)]
struct Commits {
    /// Transfer index and when its commit was observed, for receipts that are ok.
    ok: Vec<(usize, Instant)>,
    failed: usize,
    blocks: u64,
}

/// Follows node 0's committed height from `from`, reading each new block's receipts, until
/// as many transfers as `expected` were seen or the deadline passes.
async fn watch_commits(
    context: NodeContext,
    from: u64,
    index_of: HashMap<Hash, usize>,
    expected: Arc<AtomicUsize>,
    deadline: Instant,
) -> Result<Commits> {
    let mut committed = context.committed.clone();
    let mut commits = Commits::default();
    let mut seen = 0usize;
    let mut height = from;
    while seen < expected.load(Ordering::SeqCst) && Instant::now() < deadline {
        // Bounded wait, so a change of `expected` or the deadline is noticed.
        let _ = tokio::time::timeout(Duration::from_millis(200), committed.changed()).await;
        let now = Instant::now();
        let head = *committed.borrow_and_update();
        while height < head {
            height += 1;
            commits.blocks += 1;
            let bytes = context
                .storage
                .results(height)?
                .with_context(|| format!("results of block {height} missing"))?;
            for receipt in BlockResults::decode(&bytes)?.receipts {
                let Some(&index) = index_of.get(&receipt.tx) else {
                    continue;
                };
                seen += 1;
                if receipt.result.is_ok() {
                    commits.ok.push((index, now));
                } else {
                    commits.failed += 1;
                }
            }
        }
    }
    Ok(commits)
}

/// The 1-, 5- and 15-minute load averages, as /proc/loadavg says them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The latency below which a fraction `q` of the sorted latencies fall.
fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| (d.as_secs_f64() * 1e4).round() / 10.0)
}

fn print_report(
    args: &Args,
    r: &Report,
    cores: usize,
    load_before: &str,
    load_after: &str,
) -> Result<()> {
    let window = r.window.as_secs_f64();
    let tps = if window > 0.0 {
        r.committed_ok as f64 / window
    } else {
        0.0
    };
    let submit_rate = r.accepted as f64 / r.submit_duration.as_secs_f64().max(1e-9);
    let p = |q| ms(percentile(&r.latencies, q));
    let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
    let rejected: usize = r.rejected.values().sum();
    println!(
        "cluster_bench: {} validators, {} wallets, {} transfers, rate {}",
        args.validators,
        args.wallets,
        r.prepared,
        if args.rate == 0 {
            "as fast as accepted".to_string()
        } else {
            format!("{}/s", args.rate)
        }
    );
    println!("  setup (start, fund, sign)  {:.1?}", r.setup);
    println!(
        "  submitted {} accepted {} rejected {rejected} (busy retries {})",
        r.submitted, r.accepted, r.busy_retries
    );
    for (why, n) in &r.rejected {
        println!("    rejected {n}: {why}");
    }
    println!(
        "  committed ok {} failed in block {} in {} blocks",
        r.committed_ok, r.committed_failed, r.blocks
    );
    println!(
        "  submission took {:.2?} ({submit_rate:.0} accepted/s); window to last commit {:.2?}",
        r.submit_duration, r.window
    );
    println!("  committed transfers/s      {tps:.0}");
    println!(
        "  commit latency p50 {} p90 {} p99 {} max {}",
        show(p(0.5)),
        show(p(0.9)),
        show(p(0.99)),
        show(ms(r.latencies.last().copied()))
    );
    let rss = peak_rss_kib();
    println!(
        "  peak RSS {} MiB; {cores} cores; load average before {load_before}, after {load_after}",
        rss.map_or("-".to_string(), |k| (k / 1024).to_string())
    );
    let json = serde_json::json!({
        "validators": args.validators,
        "wallets": args.wallets,
        "transfers": r.prepared,
        "rate": args.rate,
        "submitted": r.submitted,
        "accepted": r.accepted,
        "rejected": rejected,
        "busy_retries": r.busy_retries,
        "committed": r.committed_ok,
        "failed_in_block": r.committed_failed,
        "blocks": r.blocks,
        "window_s": window,
        "submit_s": r.submit_duration.as_secs_f64(),
        "committed_per_s": tps.round(),
        "latency_ms": {
            "p50": p(0.5), "p90": p(0.9), "p99": p(0.99),
            "max": ms(r.latencies.last().copied()),
        },
        "peak_rss_kib": rss,
        "cores": cores,
        "load_before": load_before,
        "load_after": load_after,
    });
    println!("{json}");
    ensure!(
        r.committed_ok == r.prepared,
        "only {} of {} transfers committed ok",
        r.committed_ok,
        r.prepared
    );
    Ok(())
}
