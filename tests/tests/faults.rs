//! Faults over real node processes: 4 validators and 1 audit node of the `tally` binary on
//! loopback, each test on its own devnet (issue 7). After every fault: all nodes agree on
//! every block and state root, nothing the API answered as committed is lost, and the ledger
//! invariants hold, read through the audit node.
//!
//! A fault is first shown to have happened, by the nodes' own counters at `/metrics`
//! (proposals refused and why, equivocations seen, messages verified per validator, the
//! partition gate's peers), then judged by what it caused. A claim that something did not
//! happen ("the minority committed nothing") is judged after a positive sign that it had its
//! chance (the live validators kept hearing each other, the majority went on), never after
//! a fixed pause.
//!
//! One network at a time (a process-wide lock): five node processes already fill two cores.
//! `TALLY_FAULT_ROUNDS=N` runs the crash loop N times (default 5). Figures go to stderr
//! (`cargo test -p tally-tests --test faults -- --nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tally_contracts::{AccountId, Event, TransferId};
use tally_devnet::layout::NodeSpec;
use tally_sdk::Submitter;
use tally_tests::chain::{
    self, check_agreement, check_agreement_with_offender, check_committed_everywhere, check_ledger,
};
use tally_tests::load::{self, Load};
use tally_tests::network::{PARTITIONABLE, TestNet};
use tally_wire::transaction::TxView;

/// One devnet at a time.
static ONE_NETWORK: Mutex<()> = Mutex::new(());

/// Bounds of the waits in these tests, each for a condition. How they were chosen: over real
/// processes on 2 cores, a restarted validator catches up and a load of transfers commits in
/// a few seconds idle and under ~20 s with a second CPU-bound process on both cores (the
/// `.ci/repeat --load` runs); 60 s is three times that and is only reached by a failing test.
const CATCH_UP_WAIT: Duration = Duration::from_secs(60);
const LOAD_WAIT: Duration = Duration::from_secs(60);
/// Heights the others decide while the killed validator is down: what it must catch up.
const DOWN_HEIGHTS: u64 = 10;
/// Consensus messages (resent every second) a validator cut from a quorum must verify from
/// the validators it can still reach before its standing still is judged: proof it was live
/// and listening, and that its votes went round without a quorum forming.
const HEARD_WITHOUT_QUORUM: u64 = 4;
/// The counter of consensus messages a node verified, per validator.
const VERIFIED: &str = "tally_consensus_messages_verified_total";

/// Runs `body` on a fresh devnet of 4 validators and 1 audit node, every node configured
/// with `config` too. The devnet is always torn down; on failure its directory (logs,
/// data) is kept and named.
fn run(name: &str, config: &str, body: impl AsyncFnOnce(&mut TestNet) -> Result<()>) {
    run_with(name, |_| config.to_string(), body);
}

/// As [`run`], with each node's extra configuration chosen by `configure`.
fn run_with(
    name: &str,
    configure: impl Fn(&NodeSpec) -> String,
    body: impl AsyncFnOnce(&mut TestNet) -> Result<()>,
) {
    let _one = ONE_NETWORK.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(async {
        let started = Instant::now();
        let mut net = TestNet::start_with(4, 1, configure).await?;
        eprintln!(
            "[{name}] devnet up in {:.1} s at {}",
            started.elapsed().as_secs_f64(),
            net.dir().display()
        );
        let outcome = body(&mut net).await;
        if outcome.is_err() {
            if let Some(kept) = net.keep_dir() {
                eprintln!("[{name}] failed; the devnet is kept in {}", kept.display());
            }
            for i in 0..net.len() {
                eprintln!("--- {} log tail\n{}", net.name(i), net.log_tail(i));
            }
        }
        net.shutdown().await;
        eprintln!("[{name}] done in {:.1} s", started.elapsed().as_secs_f64());
        outcome
    });
    if let Err(e) = result {
        panic!("{name}: {e:#}");
    }
}

fn deadline(after: Duration) -> Instant {
    Instant::now() + after
}

/// Waits until every running node has the same head as the highest, and answers it.
async fn converge(net: &mut TestNet) -> Result<u64> {
    let top = net.top_height().await;
    net.wait_all(top, deadline(CATCH_UP_WAIT)).await?;
    Ok(top)
}

/// The checks after every fault: agreement, the answered-committed transactions on every
/// node, the ledger through the audit node. Prints what they saw.
async fn check_after_fault(
    net: &mut TestNet,
    name: &str,
    committed: &[tally_crypto::Hash],
) -> Result<()> {
    net.check_alive()?;
    let top = converge(net).await?;
    let agreement = check_agreement(net).await?;
    check_committed_everywhere(net, committed).await?;
    let ledger = check_ledger(net.api(net.audit()?)?).await?;
    eprintln!(
        "[{name}] converged at {top}; {} nodes agree on heights 1..={}; {} answered-committed \
         transfers found on every node; ledger at {}: {} accounts ({} customer), {} txs ({} \
         applied), customer money {:?}, sums zero, none below floor; net positions zero, {} \
         audit statements agree",
        agreement.nodes,
        agreement.common_height,
        committed.len(),
        ledger.height,
        ledger.accounts,
        ledger.customer_accounts,
        ledger.txs,
        ledger.applied,
        ledger.customer_money,
        ledger.statements
    );
    Ok(())
}

#[test]
fn a_validator_killed_under_load_rejoins_catches_up_and_nothing_committed_is_lost() {
    run("sigkill-under-load", "", async |net| {
        let validators = net.validators();
        let apis: Vec<_> = validators.iter().map(|&i| net.api(i).unwrap()).collect();
        let mut wallets = load::make_wallets(&net.layout, &apis, 1_000, 9).await?;
        // The witness's transfer is answered committed by the victim just before it dies.
        let witness = wallets.pop().context("no witness wallet")?;
        let load = Load::start(apis, &net.layout.manifest.chain_id, &wallets);
        load.wait_committed(10, deadline(LOAD_WAIT)).await?;

        let victim = validators[2];
        let chain_id = net.layout.manifest.chain_id.clone();
        let mut submitter = Submitter::new(net.api(victim)?, chain_id.clone());
        let (answered, _) = load::honest_transfer(
            &mut submitter,
            &witness,
            wallets[0].id,
            TransferId((witness.id.0 << 32) | 1),
            deadline(LOAD_WAIT),
        )
        .await?;
        let before = net.height(victim).await?;
        net.kill(victim).await?;
        let killed = Instant::now();
        // Read from its data directory before it restarts (and before it could fetch the
        // block from a peer): what it answered as committed was durable there first.
        let data_dir = net.layout.data_dir(net.spec(victim)?);
        let location = tally_node::storage::Storage::open(&data_dir, &chain_id)
            .context("open the killed validator's data")?
            .tx_location(&answered)?;
        ensure!(
            location.is_some(),
            "{} answered {answered} committed, and its data does not hold it after SIGKILL",
            net.name(victim)
        );
        // Three of four validators hold more than 2/3 of the power: the chain goes on, and
        // the victim stays down until they have gone DOWN_HEIGHTS further under the load.
        let others_before = net.top_height().await;
        let committed_before = load.committed();
        for &i in validators.iter().filter(|&&i| i != victim) {
            net.wait_height(i, others_before + DOWN_HEIGHTS, deadline(CATCH_UP_WAIT))
                .await?;
        }
        load.wait_committed(committed_before + 5, deadline(LOAD_WAIT))
            .await?;
        let others_after = net.top_height().await;
        let committed_while_down = load.committed() - committed_before;
        net.restart(victim)?;
        let restarted = Instant::now();
        let target = net.top_height().await;
        net.wait_height(victim, target, deadline(CATCH_UP_WAIT))
            .await?;
        let catch_up = restarted.elapsed();
        // And it follows from there on, under the same load.
        let now = net.top_height().await;
        net.wait_height(victim, now + 2, deadline(CATCH_UP_WAIT))
            .await?;
        load.wait_committed(load.committed() + 10, deadline(LOAD_WAIT))
            .await?;
        let outcome = load.stop().await;
        eprintln!(
            "[sigkill-under-load] killed {} at height {before} (down {:.1} s, {} transfers committed \
             meanwhile, heights {others_before}→{others_after}); caught up to {target} in {:.2} s; \
             load: {} committed, {} rejected, {} failed {:?}",
            net.name(victim),
            restarted.duration_since(killed).as_secs_f64(),
            committed_while_down,
            catch_up.as_secs_f64(),
            outcome.committed.len(),
            outcome.rejected,
            outcome.failed,
            outcome.failure_samples
        );
        ensure!(outcome.rejected == 0, "the ledger rejected load transfers");
        check_after_fault(net, "sigkill-under-load", &outcome.committed).await
    });
}

#[test]
fn two_of_four_validators_stopped_commit_nothing_and_fork_nothing_then_resume() {
    run("two-stopped", "", async |net| {
        let validators = net.validators();
        let apis: Vec<_> = validators.iter().map(|&i| net.api(i).unwrap()).collect();
        let wallets = load::make_wallets(&net.layout, &apis, 1_000, 2).await?;

        for &v in &validators[2..] {
            net.stop(v).await?;
        }
        // A block whose precommits were already out when they stopped may still land; none
        // after it can (no node had gone past `cut_at` once both were down).
        let live: Vec<usize> = net.running();
        let cut_at = net.top_height().await;
        let live_validators: Vec<usize> = validators[..2].to_vec();
        let heard_before = net.metric_sums(&live_validators, VERIFIED).await?;
        // A transfer submitted now is taken, but cannot commit.
        let mut submitter = Submitter::new(apis[0].clone(), net.layout.manifest.chain_id.clone());
        let pending = {
            let w = &wallets[0];
            let signed = tally_contracts::Transaction {
                chain_id: submitter.chain_id.clone(),
                sender: tally_contracts::Party::Account(w.id),
                nonce: 3,
                kind: tally_contracts::TxKind::Transfer {
                    id: TransferId(77),
                    to: wallets[1].id,
                    amount: 5,
                    memo: tally_contracts::Memo::NONE,
                },
            }
            .sign(&[&w.key]);
            let sent = load::flood(&apis[0], std::slice::from_ref(&signed), 1).await;
            ensure!(
                sent.accepted == 1,
                "the live validator did not take a transfer: {sent:?}"
            );
            signed.hash()
        };
        // Their chance: the two live validators keep hearing each other's votes.
        for (&i, &before) in live_validators.iter().zip(&heard_before) {
            net.wait_metrics(
                i,
                "it heard the other live validator's votes",
                deadline(LOAD_WAIT),
                |m| m.sum(VERIFIED) >= before + HEARD_WITHOUT_QUORUM,
            )
            .await?;
        }
        let halted_at = heights(net, &live).await?;
        for (&i, &h) in live.iter().zip(&halted_at) {
            ensure!(
                h <= cut_at + 1,
                "{} committed without a quorum: {cut_at} when two stopped, now {h}",
                net.name(i)
            );
        }
        let status: TxView = apis[0]
            .get_json(&format!("/v1/transactions/{pending}"))
            .await?;
        ensure!(
            matches!(status, TxView::Pending { .. }),
            "the transfer is {status:?}"
        );
        let agreement = check_agreement(net).await?;
        eprintln!(
            "[two-stopped] 2 of 4 validators stopped at {cut_at}: heights {halted_at:?} after \
             the live validators heard each other {HEARD_WITHOUT_QUORUM} times; no fork on the \
             {} live nodes up to {}",
            agreement.nodes, agreement.common_height
        );

        let restarted = Instant::now();
        for &v in &validators[2..] {
            net.restart(v)?;
        }
        let resume = halted_at.iter().copied().max().unwrap_or(0) + 2;
        net.wait_all(resume, deadline(CATCH_UP_WAIT)).await?;
        eprintln!(
            "[two-stopped] restarted: all 5 nodes past height {resume} in {:.2} s",
            restarted.elapsed().as_secs_f64()
        );
        // The transfer taken during the halt commits once the quorum is back.
        let wait_until = deadline(CATCH_UP_WAIT);
        loop {
            let status: TxView = apis[0]
                .get_json(&format!("/v1/transactions/{pending}"))
                .await?;
            if let TxView::Committed { code, .. } = &status {
                ensure!(code == "OK", "{status:?}");
                break;
            }
            ensure!(
                Instant::now() < wait_until,
                "the halted transfer never committed"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        submitter.api = apis[1].clone();
        let (hash, _) = load::honest_transfer(
            &mut submitter,
            &wallets[1],
            wallets[0].id,
            TransferId(78),
            deadline(LOAD_WAIT),
        )
        .await?;
        check_after_fault(net, "two-stopped", &[pending, hash]).await
    });
}

#[test]
fn the_audit_node_killed_resumes_verifying_where_it_stopped() {
    run("audit-killed", "", async |net| {
        let validators = net.validators();
        let apis: Vec<_> = validators.iter().map(|&i| net.api(i).unwrap()).collect();
        let wallets = load::make_wallets(&net.layout, &apis, 1_000, 4).await?;
        let load = Load::start(apis, &net.layout.manifest.chain_id, &wallets);
        load.wait_committed(5, deadline(LOAD_WAIT)).await?;

        let audit = net.audit()?;
        let health = net.health(audit).await?;
        let verified_before = health.verified_height;
        let answered = health.height.unwrap_or(0);
        // What it had verified is read from its log, not from the answer above: an audit
        // node verifies in bursts as it syncs, and several blocks may land between a read of
        // /health and the kill. Lines logged after this snapshot count as "after" below.
        let log = net.log(audit);
        let log_before = log.len();
        let verified = committed_heights(&log).last().copied().unwrap_or(answered);
        net.kill(audit).await?;
        // Down until the chain has gone on without it: it has blocks to verify on return.
        let down_at = net.top_height().await;
        net.wait_height(
            validators[0],
            down_at + DOWN_HEIGHTS,
            deadline(CATCH_UP_WAIT),
        )
        .await?;
        let restarted = Instant::now();
        net.restart(audit)?;
        // Its first answer after the restart: the height it had verified, not 0.
        let (first, first_verified) = loop {
            if let Ok(h) = net.health(audit).await {
                break (h.height.unwrap_or(0), h.verified_height);
            }
            ensure!(
                restarted.elapsed() < CATCH_UP_WAIT,
                "the audit node does not answer after its restart:\n{}",
                net.log_tail(audit)
            );
            net.check_alive()?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        ensure!(
            first_verified >= verified_before,
            "the audit node's verified height went back: {verified_before:?} → {first_verified:?}"
        );
        ensure!(
            first >= answered,
            "the audit node restarted at height {first}, below the {answered} it had answered"
        );
        let target = net.top_height().await;
        net.wait_height(audit, target, deadline(CATCH_UP_WAIT))
            .await?;
        let catch_up = restarted.elapsed();
        let outcome = load.stop().await;
        let head = converge(net).await?;
        // What it verified after the restart: only the blocks it had not.
        let after = net
            .log(audit)
            .get(log_before..)
            .unwrap_or_default()
            .to_string();
        ensure!(
            !after.contains("genesis applied"),
            "the audit node started over from genesis"
        );
        // The heights it verified after the log snapshot: each once, the first right after
        // the last it had logged (or the one after that: a block stored but not yet logged
        // when it was killed), none from the start again.
        let heights = committed_heights(&after);
        let first_again = *heights
            .first()
            .context("nothing verified after the restart")?;
        ensure!(
            (verified + 1..=verified + 2).contains(&first_again),
            "after the restart the audit node verified from {first_again}, having verified {verified}"
        );
        ensure!(
            heights.windows(2).all(|w| w[1] == w[0] + 1),
            "the audit node verified some height twice or skipped one after its restart"
        );
        let verified_again = heights.len();
        eprintln!(
            "[audit-killed] killed at height {verified} (/health verified_height \
             {verified_before:?}); first answer after restart at {first} (verified \
             {first_verified:?}); caught up to {target} in {:.2} s; verified {verified_again} blocks after \
             the restart, from {first_again} (none from 0), converged at {head}",
            catch_up.as_secs_f64()
        );
        check_after_fault(net, "audit-killed", &outcome.committed).await
    });
}

/// The heights a node's log says it committed (verified, for an audit node), in order.
fn committed_heights(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains(" committed"))
        .filter_map(|l| {
            let rest = l.split("commit{height=").nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn fault_rounds() -> usize {
    std::env::var("TALLY_FAULT_ROUNDS")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(5)
}

#[test]
fn a_validator_killed_again_and_again_mid_write_reopens_its_data_and_never_serves_a_wrong_state() {
    run("crash-loop", "", async |net| {
        let validators = net.validators();
        let apis: Vec<_> = validators.iter().map(|&i| net.api(i).unwrap()).collect();
        let wallets = load::make_wallets(&net.layout, &apis, 1_000, 8).await?;
        let load = Load::start(apis, &net.layout.manifest.chain_id, &wallets);
        load.wait_committed(5, deadline(LOAD_WAIT)).await?;
        let victim = validators[1];
        let witness = validators[0];
        let rounds = fault_rounds();
        let mut catch_ups = Vec::new();
        for round in 0..rounds {
            // Kill at a different moment of the block cycle each round.
            let pause = 150 + (round as u64 * 337) % 900;
            tokio::time::sleep(Duration::from_millis(pause)).await;
            let at = net.height(victim).await.unwrap_or(0);
            net.kill(victim).await?;
            net.restart(victim)?;
            let restarted = Instant::now();
            // It opens its data directory and serves again, or refuses with a reason.
            let head = loop {
                let node = &mut net.net.nodes[victim];
                if let Some(status) = node.exit_status()? {
                    let tail = net.log_tail(victim);
                    bail!(
                        "round {round}: the restarted validator exited ({status}); {}:\n{tail}",
                        if tail.contains("damaged") || tail.contains("corrupt") {
                            "it said why"
                        } else {
                            "WITHOUT a clear reason"
                        }
                    );
                }
                if let Ok(h) = net.height(victim).await {
                    break h;
                }
                ensure!(
                    restarted.elapsed() < CATCH_UP_WAIT,
                    "round {round}: no answer after the restart"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            ensure!(
                head + 1 >= at,
                "round {round}: killed at {at}, reopened at {head}: committed blocks lost"
            );
            // What it serves at once is what the others hold.
            if head > 0 {
                let mine = net.block(victim, head).await?;
                let theirs = net.block(witness, head).await?;
                ensure!(
                    mine.hash == theirs.hash
                        && mine.results.state_root == theirs.results.state_root,
                    "round {round}: after the crash it serves another block {head}"
                );
            }
            let target = net.top_height().await;
            net.wait_height(victim, target, deadline(CATCH_UP_WAIT))
                .await?;
            catch_ups.push(restarted.elapsed().as_secs_f64());
            eprintln!(
                "[crash-loop] round {round}: killed at {at} after {pause} ms, reopened at \
                 {head}, caught up to {target} in {:.2} s",
                restarted.elapsed().as_secs_f64()
            );
        }
        load.wait_committed(load.committed() + 5, deadline(LOAD_WAIT))
            .await?;
        let outcome = load.stop().await;
        let worst = catch_ups.iter().copied().fold(0.0, f64::max);
        eprintln!(
            "[crash-loop] {rounds} kills; worst catch-up {worst:.2} s; load: {} committed, {} \
             failed",
            outcome.committed.len(),
            outcome.failed
        );
        ensure!(outcome.rejected == 0, "the ledger rejected load transfers");
        check_after_fault(net, "crash-loop", &outcome.committed).await
    });
}

/// The mempool's capacity in the flood test: small, so ten times it is quick to send.
const FLOOD_MEMPOOL_TXS: u64 = 200;
/// How much a node's resident memory may grow over its level before the flood.
const FLOOD_RSS_GROWTH_MAX_KIB: u64 = 128 * 1024;

#[test]
fn a_mempool_flood_of_ten_times_its_capacity_stays_bounded_and_honest_transfers_commit() {
    let config = format!("[limits]\nmempool_txs_max = {FLOOD_MEMPOOL_TXS}\n");
    run("mempool-flood", &config, async |net| {
        let validators = net.validators();
        let apis: Vec<_> = validators.iter().map(|&i| net.api(i).unwrap()).collect();
        let wallets = load::make_wallets(&net.layout, &apis, 1_000, 4).await?;
        let flood_first = 1_000_000u128;
        let flood_count = usize::try_from(FLOOD_MEMPOOL_TXS * 10)?;
        let flood_txs = load::flood_registrations(&net.layout, flood_first, flood_count)?;
        let flooded = validators[0];
        let baseline: Vec<u64> = (0..net.len())
            .map(|i| net.memory_kib(i).map_or(0, |m| m.0))
            .collect();

        // Memory and the flooded node's mempool, sampled through the flood.
        let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let pids: Vec<Option<u32>> = (0..net.len()).map(|i| net.pid(i)).collect();
        let metrics_api = net.api(flooded)?;
        let sampler = {
            let sampling = sampling.clone();
            tokio::spawn(async move {
                let mut peak_rss = vec![0u64; pids.len()];
                let mut peak_mempool = 0u64;
                while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                    for (i, pid) in pids.iter().enumerate() {
                        if let Some(kib) = pid.and_then(rss_kib) {
                            peak_rss[i] = peak_rss[i].max(kib);
                        }
                    }
                    if let Ok(answer) = metrics_api.get("/metrics").await {
                        let text = String::from_utf8_lossy(&answer.body).to_string();
                        if let Some(n) = metric(&text, "tally_mempool_txs") {
                            peak_mempool = peak_mempool.max(n);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                (peak_rss, peak_mempool)
            })
        };

        // Honest transfers during the flood, to the flooded validator and to another.
        let honest = {
            let (wallets, chain_id) = (wallets.clone(), net.layout.manifest.chain_id.clone());
            let targets = [apis[0].clone(), apis[1].clone()];
            tokio::spawn(async move {
                let mut tasks = tokio::task::JoinSet::new();
                for (k, w) in wallets.iter().enumerate() {
                    let to = wallets[(k + 1) % wallets.len()].id;
                    let (w, chain_id) = (w.clone(), chain_id.clone());
                    let api = targets[k % 2].clone();
                    tasks.spawn(async move {
                        let mut submitter = Submitter::new(api, chain_id);
                        let mut done = Vec::new();
                        for n in 0..3u128 {
                            let id = TransferId((w.id.0 << 32) | n);
                            done.push(
                                load::honest_transfer(
                                    &mut submitter,
                                    &w,
                                    to,
                                    id,
                                    deadline(LOAD_WAIT),
                                )
                                .await?,
                            );
                        }
                        Ok::<_, anyhow::Error>(done)
                    });
                }
                let mut all = Vec::new();
                while let Some(r) = tasks.join_next().await {
                    all.extend(r.context("an honest sender")??);
                }
                Ok::<_, anyhow::Error>(all)
            })
        };
        let outcome = load::flood(&net.api(flooded)?, &flood_txs, 32).await;
        let honest = honest.await.context("the honest senders")??;
        sampling.store(false, std::sync::atomic::Ordering::Relaxed);
        let (peak_rss, peak_mempool) = sampler.await.context("the sampler")?;

        let busy: usize = outcome
            .refused
            .iter()
            .filter(|(k, _)| k.starts_with("HTTP 503") || k.starts_with("HTTP 429"))
            .map(|(_, v)| *v)
            .sum();
        eprintln!(
            "[mempool-flood] {} registrations to {} in {:.2} s ({:.0}/s): {} taken, refused {:?}, \
             {} unanswered; mempool peak {peak_mempool} of {FLOOD_MEMPOOL_TXS}",
            outcome.sent,
            net.name(flooded),
            outcome.elapsed.as_secs_f64(),
            outcome.sent as f64 / outcome.elapsed.as_secs_f64().max(1e-3),
            outcome.accepted,
            outcome.refused,
            outcome.unanswered
        );
        for i in 0..net.len() {
            eprintln!(
                "[mempool-flood] {}: RSS {} MiB before, peak {} MiB during the flood",
                net.name(i),
                baseline[i] / 1024,
                peak_rss[i] / 1024
            );
        }
        let latencies: Vec<String> = honest
            .iter()
            .map(|(_, d)| format!("{:.2}", d.as_secs_f64()))
            .collect();
        eprintln!(
            "[mempool-flood] {} honest transfers committed during the flood, in s: {latencies:?}",
            honest.len()
        );
        ensure!(outcome.sent == flood_count, "not all of the flood was sent");
        ensure!(
            outcome.unanswered == 0,
            "the flooded node stopped answering"
        );
        ensure!(busy > 0, "the flood never filled the mempool: {outcome:?}");
        ensure!(
            busy + outcome.accepted == outcome.sent,
            "refusals other than 503/429: {:?}",
            outcome.refused
        );
        ensure!(
            peak_mempool <= FLOOD_MEMPOOL_TXS,
            "the mempool held {peak_mempool}, above its {FLOOD_MEMPOOL_TXS}"
        );
        for i in 0..net.len() {
            ensure!(
                peak_rss[i] <= baseline[i] + FLOOD_RSS_GROWTH_MAX_KIB,
                "{}: resident memory grew from {} to {} KiB in the flood",
                net.name(i),
                baseline[i],
                peak_rss[i]
            );
        }
        ensure!(
            honest.len() == wallets.len() * 3,
            "honest transfers missing"
        );

        // Every registration the node took is committed, once; none it refused is.
        let drain = deadline(LOAD_WAIT);
        let registered = loop {
            let head = converge(net).await?;
            let blocks = chain::blocks(net.api(net.audit()?)?, 1, head).await?;
            let registered = blocks
                .iter()
                .flat_map(|b| b.results.receipts.iter())
                .flat_map(|r| r.events.iter())
                .filter(|e| {
                    matches!(e, Event::AccountRegistered { account: AccountId(a), .. }
                        if (flood_first..flood_first + flood_count as u128).contains(a))
                })
                .count();
            if registered >= outcome.accepted || Instant::now() > drain {
                break registered;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        ensure!(
            registered == outcome.accepted,
            "{} registrations taken, {registered} committed",
            outcome.accepted
        );
        let hashes: Vec<_> = honest.iter().map(|(h, _)| *h).collect();
        check_after_fault(net, "mempool-flood", &hashes).await
    });
}

/// `VmRSS` of a process, KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A metric's value from the Prometheus text.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Heights of `nodes` now.
async fn heights(net: &TestNet, nodes: &[usize]) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for &i in nodes {
        out.push(net.height(i).await?);
    }
    Ok(out)
}

#[test]
fn partitions_3_1_and_2_2_the_side_above_two_thirds_goes_on_and_all_converge_when_healed() {
    run("partitions", PARTITIONABLE, async |net| {
        let v = net.validators();
        let audit = net.audit()?;
        let apis: Vec<_> = v.iter().map(|&i| net.api(i).unwrap()).collect();
        let wallets = load::make_wallets(&net.layout, &apis, 1_000, 2).await?;
        let mut committed = Vec::new();
        let chain_id = net.layout.manifest.chain_id.clone();

        // 3 | 1: three validators (and the audit node) against one.
        let majority = [v[0], v[1], v[2], audit];
        let minority = [v[3]];
        net.partition(&[&majority, &minority])?;
        net.wait_partition(&[&majority, &minority], deadline(CATCH_UP_WAIT))
            .await?;
        // Cut off, the lone validator may still decide the height in flight, none after.
        let cut_at = net.top_height().await;
        let m0 = heights(net, &majority).await?;
        let mut submitter = Submitter::new(apis[0].clone(), chain_id.clone());
        let (hash, _) = load::honest_transfer(
            &mut submitter,
            &wallets[0],
            wallets[1].id,
            TransferId(1),
            deadline(LOAD_WAIT),
        )
        .await?;
        committed.push(hash);
        // The lone validator's chance: the majority decides two heights past anything it
        // could, while its gate stays shut.
        for &i in &majority {
            net.wait_height(i, cut_at + 3, deadline(CATCH_UP_WAIT))
                .await?;
        }
        let m1 = heights(net, &majority).await?;
        let lone = net.metrics(v[3]).await?;
        ensure!(
            lone.get("tally_gated_peers") == 4 && lone.get("tally_peers") == 0,
            "the lone validator's gate opened during the partition"
        );
        let lone1 = net.height(v[3]).await?;
        ensure!(
            lone1 <= cut_at + 1,
            "the lone validator committed alone: cut off at {cut_at}, now at {lone1}"
        );
        eprintln!(
            "[partitions] 3|1 from {cut_at}: the majority went {m0:?} → {m1:?} (a transfer \
             committed), the lone validator stayed at {lone1}"
        );
        net.partition(&[])?;
        let healed = Instant::now();
        let top = net.top_height().await;
        net.wait_height(v[3], top, deadline(CATCH_UP_WAIT)).await?;
        eprintln!(
            "[partitions] healed: the lone validator caught up from {lone1} to {top} in {:.2} s",
            healed.elapsed().as_secs_f64()
        );
        check_agreement(net).await?;

        // 2 | 2: no side holds more than 2/3 of the power.
        let halves: [&[usize]; 2] = [&[v[0], v[1], audit], &[v[2], v[3]]];
        net.partition(&halves)?;
        net.wait_partition(&halves, deadline(CATCH_UP_WAIT)).await?;
        let cut_at = net.top_height().await;
        let all: Vec<usize> = net.running();
        // Their chance: each validator keeps hearing its partner's votes, no quorum forms.
        let heard_before = net.metric_sums(&v, VERIFIED).await?;
        for (&i, &before) in v.iter().zip(&heard_before) {
            net.wait_metrics(
                i,
                "it heard its partner's votes across its half",
                deadline(LOAD_WAIT),
                |m| m.sum(VERIFIED) >= before + HEARD_WITHOUT_QUORUM,
            )
            .await?;
        }
        let h1 = heights(net, &all).await?;
        ensure!(
            h1.iter().all(|&h| h <= cut_at + 1),
            "a half of the network committed alone: cut at {cut_at}, now {h1:?}"
        );
        eprintln!(
            "[partitions] 2|2 from {cut_at}: every node at {h1:?} after each validator heard its \
             partner {HEARD_WITHOUT_QUORUM} times"
        );
        net.partition(&[])?;
        let healed = Instant::now();
        let resume = h1.iter().copied().max().unwrap_or(0) + 2;
        net.wait_all(resume, deadline(CATCH_UP_WAIT)).await?;
        eprintln!(
            "[partitions] healed: all nodes past {resume} in {:.2} s",
            healed.elapsed().as_secs_f64()
        );
        submitter.api = apis[3].clone();
        let (hash, _) = load::honest_transfer(
            &mut submitter,
            &wallets[1],
            wallets[0].id,
            TransferId(2),
            deadline(LOAD_WAIT),
        )
        .await?;
        committed.push(hash);
        check_after_fault(net, "partitions", &committed).await
    });
}

#[test]
fn a_double_voting_validator_among_four_honest_agree_the_chain_goes_on_and_the_audit_node_shows_the_evidence()
 {
    let byzantine = "validator-3";
    run_with(
        "byzantine",
        |spec| {
            if spec.name == byzantine {
                "[test_faults]\nbyzantine = \"double-voter\"\n".to_string()
            } else {
                String::new()
            }
        },
        async |net| {
            let v = net.validators();
            ensure!(
                net.name(v[3]) == byzantine,
                "validator 3 is not the faulty one"
            );
            let honest: Vec<_> = v[..3].iter().map(|&i| net.api(i).unwrap()).collect();
            let wallets = load::make_wallets(&net.layout, &honest, 1_000, 4).await?;
            let load = Load::start(honest, &net.layout.manifest.chain_id, &wallets);
            load.wait_committed(20, deadline(LOAD_WAIT)).await?;
            // The fault happened: an honest validator saw the two votes.
            equivocation_seen(net, &v[..3]).await?;
            // The evidence reaches a block, and the audit node shows it.
            let audit = net.api(net.audit()?)?;
            let shown = evidence_shown_against(audit.clone(), 3).await?;
            let outcome = load.stop().await;
            ensure!(outcome.rejected == 0, "the ledger rejected load transfers");
            converge(net).await?;
            let (agreement, evidence) = check_agreement_with_offender(net, Some(3)).await?;
            ensure!(!evidence.is_empty(), "no evidence in the agreed blocks");
            eprintln!(
                "[byzantine] double voter validator-3: {} nodes agree up to {}; {} evidence items on \
                 chain, all against validator 3 (first at height {}); the audit node's /v1/evidence \
                 shows {}; load: {} committed through the honest validators",
                agreement.nodes,
                agreement.common_height,
                evidence.len(),
                evidence.first().map_or(0, |(h, _)| *h),
                shown.len(),
                outcome.committed.len()
            );
            check_committed_everywhere(net, &outcome.committed).await?;
            let ledger = check_ledger(audit).await?;
            eprintln!(
                "[byzantine] ledger at {}: {} accounts, {} txs, sums zero, none below floor",
                ledger.height, ledger.accounts, ledger.txs
            );
            Ok(())
        },
    );
}

/// Waits until one of the honest validators `honest` counted an equivocation it saw.
async fn equivocation_seen(net: &mut TestNet, honest: &[usize]) -> Result<()> {
    let wait_until = deadline(LOAD_WAIT);
    loop {
        let seen = net
            .metric_sums(honest, "tally_equivocations_detected_total")
            .await?;
        if seen.iter().sum::<u64>() > 0 {
            return Ok(());
        }
        ensure!(
            Instant::now() < wait_until,
            "no honest validator saw an equivocation"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (bounded) until the audit node's `/v1/evidence` shows committed evidence, and checks
/// that every item names validator `offender`. Answers the items.
async fn evidence_shown_against(
    audit: tally_sdk::Api,
    offender: u32,
) -> Result<Vec<serde_json::Value>> {
    let wait_until = deadline(LOAD_WAIT);
    let shown = loop {
        let page: serde_json::Value = audit.get_json("/v1/evidence").await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() {
            break items;
        }
        ensure!(Instant::now() < wait_until, "no evidence on chain in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for item in &shown {
        let e: tally_consensus::Evidence = serde_json::from_value(item["evidence"].clone())?;
        ensure!(
            e.validator().0 == offender,
            "the audit node shows evidence against {}",
            e.validator().0
        );
    }
    Ok(shown)
}

/// Rewrites node `i`'s `[test_faults]` section (the last section of its configuration: the
/// suite appends it) to `section`; read at the node's next start.
fn set_test_faults(net: &TestNet, i: usize, section: &str) -> Result<()> {
    let path = net.layout.config_path(net.spec(i)?);
    let text = std::fs::read_to_string(&path)?;
    let honest = match text.find("[test_faults]") {
        Some(at) => &text[..at],
        None => text.as_str(),
    };
    std::fs::write(&path, format!("{honest}{section}"))?;
    Ok(())
}

#[test]
fn the_other_byzantine_modes_one_validator_of_four_the_honest_agree_and_the_chain_goes_on() {
    let byzantine = "validator-3";
    run_with(
        "byzantine-modes",
        |spec| {
            if spec.name == byzantine {
                "[test_faults]\nbyzantine = \"equivocating-proposer\"\n".to_string()
            } else {
                String::new()
            }
        },
        async |net| {
            let v = net.validators();
            let faulty = v[3];
            ensure!(
                net.name(faulty) == byzantine,
                "validator 3 is not the faulty one"
            );
            let honest: Vec<_> = v[..3].iter().map(|&i| net.api(i).unwrap()).collect();
            let wallets = load::make_wallets(&net.layout, &honest, 1_000, 4).await?;
            let load = Load::start(honest, &net.layout.manifest.chain_id, &wallets);
            load.wait_committed(10, deadline(LOAD_WAIT)).await?;

            // The equivocating proposer: honest validators see its two proposals, which
            // become evidence on chain, which the audit node shows.
            equivocation_seen(net, &v[..3]).await?;
            let audit = net.api(net.audit()?)?;
            let shown = evidence_shown_against(audit.clone(), 3).await?;
            eprintln!(
                "[byzantine-modes] equivocating proposer: {} evidence items shown by the audit node",
                shown.len()
            );

            // Then silent, and proposing invalid blocks of each kind: the validator is
            // restarted in each mode, and the chain must go on by at least two of its turns
            // to propose (every fourth height) while the load keeps committing.
            let faulty_key = net.spec(faulty)?.public_key;
            // The faulty validator's index in the set (the genesis keeps the layout's order).
            let faulty_verified = format!("{VERIFIED}{{validator=\"3\"}}");
            for (mode, section, logged, refused) in [
                (
                    "silent",
                    "[test_faults]\nbyzantine = \"silent\"\n",
                    "byzantine=Silent",
                    None,
                ),
                (
                    "invalid blocks (bad signature)",
                    "[test_faults]\nbyzantine = \"invalid-blocks\"\ninvalid_block = \"bad-signature\"\n",
                    "byzantine=InvalidBlocks(BadSignature)",
                    Some("tx_signature"),
                ),
                (
                    "invalid blocks (wrong state root)",
                    "[test_faults]\nbyzantine = \"invalid-blocks\"\ninvalid_block = \"wrong-state-root\"\n",
                    "byzantine=InvalidBlocks(WrongStateRoot)",
                    Some("state_root"),
                ),
            ] {
                net.stop(faulty).await?;
                set_test_faults(net, faulty, section)?;
                net.restart(faulty)?;
                // It is back among the validators, hearing them (so silent means silent).
                net.wait_metrics(
                    faulty,
                    "the faulty validator reconnected to the others",
                    deadline(CATCH_UP_WAIT),
                    |m| m.get("tally_peers") >= 3,
                )
                .await?;
                // What the honest validators had counted when it came back in this mode.
                let mut before = Vec::new();
                for &i in &v[..3] {
                    before.push(net.metrics(i).await?);
                }
                let from = net.height(v[0]).await?;
                let committed_before = load.committed();
                net.wait_height(v[0], from + 8, deadline(LOAD_WAIT)).await?;
                load.wait_committed(committed_before + 5, deadline(LOAD_WAIT))
                    .await?;
                // The fault happened, as the honest validators counted it: each refused one
                // of its proposals for this mode's reason; or, silent, none of them verified
                // a single message of it while it was connected through eight heights.
                for (&i, before) in v[..3].iter().zip(&before) {
                    match refused {
                        Some(reason) => {
                            let sample =
                                format!("tally_proposals_refused_total{{reason=\"{reason}\"}}");
                            let had = before.get(&sample);
                            net.wait_metrics(
                                i,
                                &format!("{mode}: it refused a proposal ({reason})"),
                                deadline(LOAD_WAIT),
                                |m| m.get(&sample) > had,
                            )
                            .await?;
                        }
                        None => {
                            let heard = net.metrics(i).await?.get(&faulty_verified);
                            ensure!(
                                heard == before.get(&faulty_verified),
                                "{mode}: {} verified messages of the silent validator",
                                net.name(i)
                            );
                        }
                    }
                }
                // It really ran in this mode (it says so at start), and none of its blocks
                // was decided.
                ensure!(
                    net.log(faulty).contains(logged),
                    "{mode}: the faulty validator's log does not show the mode {logged}"
                );
                let to = net.height(v[0]).await?;
                let decided = chain::blocks(net.api(v[0])?, from + 1, to).await?;
                ensure!(
                    decided.iter().all(|b| b.header.proposer != faulty_key),
                    "{mode}: a block proposed by the faulty validator was decided"
                );
                eprintln!(
                    "[byzantine-modes] {mode}: the honest validators went {from} -> {}, {} load \
                     transfers committed meanwhile",
                    net.height(v[0]).await?,
                    load.committed() - committed_before
                );
            }
            let outcome = load.stop().await;
            ensure!(outcome.rejected == 0, "the ledger rejected load transfers");
            converge(net).await?;
            let (agreement, evidence) = check_agreement_with_offender(net, Some(3)).await?;
            ensure!(!evidence.is_empty(), "no evidence in the agreed blocks");
            // No block the faulty validator proposed while it proposed invalid ones was
            // decided: every decided block's header and transactions are checked by
            // agreement and by the audit node's re-execution (its alarm is down).
            let health = net.health(net.audit()?).await?;
            ensure!(
                health.status == "ok",
                "the audit node is not healthy: {health:?}"
            );
            check_committed_everywhere(net, &outcome.committed).await?;
            let ledger = check_ledger(audit).await?;
            eprintln!(
                "[byzantine-modes] {} nodes agree up to {}; {} evidence items, all against \
                 validator 3; ledger at {}: sums zero, none below floor",
                agreement.nodes,
                agreement.common_height,
                evidence.len(),
                ledger.height
            );
            Ok(())
        },
    );
}

/// The snapshots the state-sync test's validators take, and its liar's fault.
const SNAPSHOTS: &str = "[snapshots]\ninterval_blocks = 10\nchunk_leaves = 16\n";

#[test]
fn a_wiped_validator_joins_by_state_sync_while_a_peer_serves_corrupt_chunks() {
    let configure = |node: &NodeSpec| match node.name.as_str() {
        "validator-3" => format!("{SNAPSHOTS}[test_faults]\ncorrupt_snapshot_chunks = true\n"),
        name if name.starts_with("validator-") => SNAPSHOTS.to_string(),
        _ => String::new(),
    };
    run_with("state-sync", configure, async |net| {
        let v = net.validators();
        let (honest, lying, stopped, wiped) = (v[0], v[3], v[1], v[2]);
        let apis: Vec<_> = v.iter().map(|&i| net.api(i).unwrap()).collect();
        // A ledger of some size (several chunks of 16 leaves), then a few snapshots.
        let wallets = load::make_wallets(&net.layout, &apis, 1_000, 60).await?;
        let load = Load::start(apis, &net.layout.manifest.chain_id, &wallets);
        load.wait_committed(60, deadline(LOAD_WAIT)).await?;
        let outcome = load.stop().await;
        let past = net.top_height().await + 12;
        net.wait_all(past, deadline(CATCH_UP_WAIT)).await?;

        // Two validators stop: no quorum, the chain holds still. One of them loses its chain.
        net.stop(stopped).await?;
        net.stop(wiped).await?;
        let data_dir = net.layout.data_dir(net.spec(wiped)?);
        std::fs::remove_file(data_dir.join(tally_node::storage::DATABASE_FILE))?;
        let snapshots = |i: usize| -> Result<Vec<u64>> {
            let dir = net.layout.data_dir(net.spec(i)?);
            Ok(std::fs::read_dir(dir.join("snapshots"))?
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect())
        };
        let still = deadline(CATCH_UP_WAIT);
        let (head, snapshot) = loop {
            let (a, b) = (net.height(honest).await?, net.height(lying).await?);
            let newest = snapshots(honest)?.into_iter().filter(|h| *h < a).max();
            let theirs = snapshots(lying)?.into_iter().filter(|h| *h < b).max();
            if a == b && newest.is_some() && newest == theirs {
                break (a, newest.context("no snapshot")?);
            }
            ensure!(
                Instant::now() < still,
                "the two validators left do not settle"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };

        // The wiped validator starts with state sync on, from the honest and the lying one.
        net.append_config(wiped, "[state_sync]\nenable = true\ndiscovery_ms = 2000")?;
        net.restart(wiped)?;
        let joined = deadline(CATCH_UP_WAIT);
        let health = loop {
            if let Ok(health) = net.health(wiped).await {
                break health;
            }
            net.check_alive()?;
            ensure!(
                Instant::now() < joined,
                "the wiped validator never answered"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        ensure!(
            health.synced_from_height == Some(snapshot),
            "it started from {:?}, not the snapshot of {snapshot}",
            health.synced_from_height
        );
        let bad = net
            .metrics(wiped)
            .await?
            .sum("tally_state_sync_bad_parts_total");
        ensure!(bad >= 1, "the lying validator's chunks were never caught");
        ensure!(net.log(wiped).contains("does not verify"));
        // It holds no block below the snapshot: asked for one, it says so.
        let gone = net
            .api(wiped)?
            .get(&format!("/v1/blocks/{}", snapshot - 1))
            .await?;
        ensure!(
            gone.status.as_u16() == 410,
            "block {} on the synced validator: {}",
            snapshot - 1,
            gone.status
        );

        // The stopped validator comes back: the chain goes on, the restored one in it.
        net.restart(stopped)?;
        net.wait_all(head + 5, deadline(CATCH_UP_WAIT)).await?;
        let to = net.top_height().await;
        net.wait_height(wiped, to, deadline(CATCH_UP_WAIT)).await?;
        let ours = chain::blocks(net.api(honest)?, snapshot + 1, to).await?;
        let theirs = chain::blocks(net.api(wiped)?, snapshot + 1, to).await?;
        for (a, b) in ours.iter().zip(&theirs) {
            ensure!(a.hash == b.hash, "block {} differs", a.height);
            ensure!(
                a.results.state_root == b.results.state_root,
                "the state after block {} differs",
                a.height
            );
        }
        ensure!(ours.len() == theirs.len() && !ours.is_empty());
        let ledger = check_ledger(net.api(net.audit()?)?).await?;
        eprintln!(
            "[state-sync] {} load transfers committed; {} joined from the snapshot of \
             {snapshot} (head {head}), {bad} bad parts caught; blocks {}..={to} agree; ledger \
             at {}: sums zero, none below floor",
            outcome.committed.len(),
            net.name(wiped),
            snapshot + 1,
            ledger.height
        );
        Ok(())
    });
}
