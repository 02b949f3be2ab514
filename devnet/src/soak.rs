//! `tally-devnet soak`: steady, paced load on a devnet for a long time, and what it does to
//! the nodes.
//!
//! Where `bench` asks how fast, the soak asks whether a node that runs for months stays flat:
//! every few seconds it samples each node's resident memory (`VmRSS`), its data directory's
//! size on disk, the committed count and the commit latency of the transactions committed in
//! that interval. It writes the samples as CSV as it goes (a killed run keeps them), and at
//! the end a summary (JSON) and a chart (SVG, drawn here) of memory, disk and p99 over time.
//!
//! The load is signed as it is submitted, each transaction at its slot, so a 30-minute run at
//! 1,000 tx/s (1.8 M transactions) holds only what is in flight: the transactions submitted
//! and not yet seen in a block, each forgotten (and counted missing) after [`MISSING_AFTER`].
//! Every phase, buffer and wait is bounded in count and time.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use serde::Serialize;
use tally_contracts::AccountId;
use tally_crypto::Hash;
use tracing::{debug, info, warn};

use crate::bench::{
    BUSY_RETRY_MAX, DRAIN_WAIT, Funded, HEIGHT_POLL, IN_FLIGHT_MAX, Mix, REQUEST_TIMEOUT,
    Submission, Wallet, fund_wallets, load_transaction, percentile, proc_status_kib,
    submit_until_answered, wallets_for,
};
use crate::layout::Layout;
use tally_sdk::Api;

/// The highest `--rate`: far above what a devnet on one machine commits, and what keeps one
/// interval's latencies (rate × sample interval) small.
pub const RATE_MAX: u64 = 10_000;
/// The longest `--duration`.
pub const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);
/// The bounds of `--sample-every`.
pub const SAMPLE_EVERY_MIN: Duration = Duration::from_secs(1);
pub const SAMPLE_EVERY_MAX: Duration = Duration::from_secs(300);
/// An accepted transaction not seen in a block this long after its submission is counted
/// missing and forgotten: what bounds the in-flight table if the network stalls.
pub const MISSING_AFTER: Duration = Duration::from_secs(60);
/// The early reference point: minute 3, or 10% of a run shorter than 30 minutes.
const EARLY_MARK_MAX: Duration = Duration::from_secs(180);
/// The span the early and late p99 are taken over, ending at the early mark and at the end:
/// one minute, or the early mark when that is shorter.
const P99_WINDOW_MAX: Duration = Duration::from_secs(60);
/// Transfers one wallet makes in a run, at most: 4,000 × 100 fen stays inside tier 1's daily
/// outflow limit of the devnet's genesis (500,000 fen), so no transfer is refused for it.
const TRANSFERS_PER_WALLET_MAX: u64 = 4_000;
/// How long the block reader may keep failing (a node slow to answer under load) before the
/// soak gives up; shorter failures only delay the reading.
const READ_FAILING_MAX: Duration = Duration::from_secs(60);
/// Entries a data directory walk visits, at most (sled keeps a handful of files).
const DISK_WALK_MAX_ENTRIES: usize = 100_000;
/// The bars: RSS at the end at most 10% above the early value and under 400 MiB,
/// p99 at the end at most 20% above the early one.
const RSS_GROWTH_MAX: f64 = 0.10;
const RSS_BAR_MIB: f64 = 400.0;
const P99_GROWTH_MAX: f64 = 0.20;
const MIB: f64 = 1024.0 * 1024.0;

/// File names in `--out`.
pub const SAMPLES_FILE: &str = "samples.csv";
pub const SUMMARY_FILE: &str = "summary.json";
pub const CHART_FILE: &str = "soak.svg";

/// The soak's options.
#[derive(Debug, Clone)]
pub struct Options {
    pub duration: Duration,
    /// Transactions submitted per second, paced.
    pub rate: u64,
    pub sample_every: Duration,
    /// Where the samples, the summary and the chart go.
    pub out: PathBuf,
    pub json: bool,
}

impl Options {
    fn check(&self) -> Result<()> {
        ensure!(
            (1..=RATE_MAX).contains(&self.rate),
            "--rate must be 1 to {RATE_MAX} tx/s"
        );
        ensure!(
            self.duration >= Duration::from_secs(1) && self.duration <= DURATION_MAX,
            "--duration must be 1 s to {} h",
            DURATION_MAX.as_secs() / 3600
        );
        ensure!(
            self.sample_every >= SAMPLE_EVERY_MIN && self.sample_every <= SAMPLE_EVERY_MAX,
            "--sample-every must be {} s to {} s",
            SAMPLE_EVERY_MIN.as_secs(),
            SAMPLE_EVERY_MAX.as_secs()
        );
        Ok(())
    }

    /// When the early figures are read: minute 3, or 10% of a shorter run.
    fn early_mark(&self) -> Duration {
        (self.duration / 10).min(EARLY_MARK_MAX)
    }

    /// The span each of the early and late p99 covers: at least one sample interval.
    fn p99_window(&self) -> Duration {
        self.early_mark().min(P99_WINDOW_MAX).max(self.sample_every)
    }
}

/// `90`, `90s`, `30m`, `2h` → a duration (whole seconds; a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a whole number with s, m or h, e.g. 30m"))?;
    let seconds_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("{text:?}: the unit must be s, m or h")),
    };
    value
        .checked_mul(seconds_per)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// A node to sample: its name, process (while it runs) and data directory.
#[derive(Debug, Clone)]
pub struct NodeProbe {
    pub name: String,
    pub pid: Option<u32>,
    pub data_dir: PathBuf,
}

/// One node at one sample.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct NodeSample {
    /// Resident memory (`VmRSS`); `None` once the process is gone.
    pub rss_bytes: Option<u64>,
    /// The data directory's allocated size, as `du` counts it.
    pub disk_bytes: Option<u64>,
}

/// One sample: counts so far, the latency of what committed in the interval, every node.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the load began (the first sample, at 0, is before it).
    pub t_s: f64,
    pub submitted: u64,
    pub committed: u64,
    pub rejected: u64,
    pub missing: u64,
    /// Committed or rejected in this interval: what `p50_ms` and `p99_ms` are over.
    pub interval_seen: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// In the order of the probes.
    pub nodes: Vec<NodeSample>,
}

/// One node's figures over the run.
#[derive(Debug, Clone, Serialize)]
pub struct NodeSummary {
    pub node: String,
    pub rss_early_mib: Option<f64>,
    pub rss_end_mib: Option<f64>,
    /// End ÷ early.
    pub rss_ratio: Option<f64>,
    /// The highest of the samples and the process's own peak (`VmHWM`) at the end.
    pub rss_peak_mib: Option<f64>,
    pub disk_start_bytes: Option<u64>,
    pub disk_end_bytes: Option<u64>,
    /// (End − start) ÷ committed.
    pub disk_bytes_per_tx: Option<f64>,
}

/// Whether the bars hold on this run, each as the figures above say.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Bars {
    /// Every node's RSS at the end at most 10% above its early value.
    pub rss_flat: bool,
    /// Every node's RSS at the end under 400 MiB.
    pub rss_under_400_mib: bool,
    /// p99 late at most 20% above p99 early.
    pub p99_flat: bool,
    /// Nothing rejected, missing, refused at submission or dropped.
    pub nothing_lost: bool,
    /// All of the above.
    pub hold: bool,
    /// The load kept its pace: at least 99% of the scheduled transactions went out.
    pub paced: bool,
    /// The bars are set for 30 minutes at 1,000 tx/s kept up; a shorter, slower or
    /// lagging run says less.
    pub full_length: bool,
}

/// The summary; `summary.json` and the `--json` line are this, serialized.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub duration_s: u64,
    pub rate: u64,
    pub sample_every_s: u64,
    pub validators: usize,
    pub wallets: usize,
    /// Rate × duration: what the load was to submit.
    pub scheduled: u64,
    /// Accepted by a validator.
    pub submitted: u64,
    pub committed: u64,
    /// In a block with a rejection code.
    pub rejected: u64,
    /// Accepted and not seen in a block within [`MISSING_AFTER`] (or by the end of the drain).
    pub missing: u64,
    /// Refused at submission (not BUSY).
    pub refused: u64,
    /// Still BUSY after the retry bound, or never answered.
    pub dropped: u64,
    /// Committed per second over the load.
    pub tps: f64,
    pub early_mark_s: f64,
    pub p99_window_s: f64,
    pub p99_early_ms: Option<f64>,
    pub p99_late_ms: Option<f64>,
    /// Late ÷ early.
    pub p99_ratio: Option<f64>,
    pub nodes: Vec<NodeSummary>,
    pub bars: Bars,
    pub samples: usize,
    pub cores: usize,
    /// `/proc/loadavg`'s three figures at the start and the end of the load: the machine may
    /// be shared, and then the figures are lower bounds.
    pub load_average_start: Option<String>,
    pub load_average_end: Option<String>,
    pub out_dir: PathBuf,
}

/// A submitted transaction not yet seen in a block.
#[derive(Debug, Clone, Copy)]
struct Pending {
    sent: Instant,
    accepted: bool,
}

/// What the load generator and the block reader share.
#[derive(Debug, Default)]
struct Ledger {
    pending: Mutex<HashMap<Hash, Pending>>,
    submitted: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
}

impl Ledger {
    fn with_pending<T>(&self, f: impl FnOnce(&mut HashMap<Hash, Pending>) -> T) -> T {
        // A panicking holder cannot leave the table half-changed: each change is one call.
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut pending)
    }

    /// Recorded before the first attempt, so a receipt read before the answer still matches.
    fn sending(&self, hash: Hash, sent: Instant) {
        self.with_pending(|p| {
            p.insert(
                hash,
                Pending {
                    sent,
                    accepted: false,
                },
            )
        });
    }

    fn answered(&self, hash: Hash, submission: Submission) {
        match submission {
            Submission::Accepted { sent } => {
                self.submitted.fetch_add(1, Ordering::Relaxed);
                self.with_pending(|p| {
                    if let Some(entry) = p.get_mut(&hash) {
                        *entry = Pending {
                            sent,
                            accepted: true,
                        };
                    }
                });
            }
            Submission::Refused => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                self.with_pending(|p| p.remove(&hash));
            }
            Submission::Dropped => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.with_pending(|p| p.remove(&hash));
            }
        }
    }

    /// Takes the transaction out when its receipt is read; when it was submitted.
    fn seen(&self, hash: &Hash) -> Option<Instant> {
        self.with_pending(|p| p.remove(hash)).map(|p| p.sent)
    }

    /// Forgets accepted transactions sent before `cutoff`; how many.
    fn forget_sent_before(&self, cutoff: Instant) -> u64 {
        self.with_pending(|p| {
            let before = p.len();
            p.retain(|_, entry| !(entry.accepted && entry.sent < cutoff));
            (before - p.len()) as u64
        })
    }

    fn accepted_pending(&self) -> usize {
        self.with_pending(|p| p.values().filter(|e| e.accepted).count())
    }
}

/// Runs the soak on the devnet of `layout` (validators' APIs `validators`), sampling the
/// nodes of `probes`.
pub async fn run(
    layout: &Layout,
    validators: &[SocketAddr],
    probes: &[NodeProbe],
    options: &Options,
) -> Result<Summary> {
    options.check()?;
    ensure!(!validators.is_empty(), "no validator API to load");
    let total = options.rate.saturating_mul(options.duration.as_secs());
    let wallets_count = wallets_for(total);
    let per_wallet = total.div_ceil(wallets_count as u64);
    ensure!(
        per_wallet <= TRANSFERS_PER_WALLET_MAX,
        "{total} transfers over {wallets_count} wallets is {per_wallet} each, past the \
         {TRANSFERS_PER_WALLET_MAX} a tier-1 wallet may send in a day here: lower --rate or \
         --duration"
    );
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    let mut csv = SampleWriter::create(&options.out.join(SAMPLES_FILE), probes)?;

    let Funded {
        apis,
        mut walker,
        wallets,
        merchants,
        chain_id,
    } = fund_wallets(layout, validators, wallets_count, Mix::Transfers).await?;
    let in_flight = IN_FLIGHT_MAX.min(wallets_count / 2).max(1);

    info!(
        rate = options.rate,
        duration_s = options.duration.as_secs(),
        wallets = wallets_count,
        validators = apis.len(),
        out = %options.out.display(),
        "soak: paced transfers, sampling every {} s",
        options.sample_every.as_secs()
    );
    let load_average_start = load_average();
    let ledger = Arc::new(Ledger::default());
    let origin = Instant::now();
    let stop_at = origin + options.duration;
    let generator = Generator {
        apis: Arc::new(apis),
        wallets: Arc::new(wallets),
        merchants: Arc::new(merchants),
        chain_id: Arc::new(chain_id),
        rate: options.rate,
        total,
        origin,
        stop_at,
        ledger: ledger.clone(),
        next: Arc::new(AtomicU64::new(0)),
    };
    let load = tokio::spawn(generator.run(in_flight));

    let mut sampler = Sampler::new(options, probes);
    let first = sampler.take(0.0, &ledger, (0, 0, 0), Vec::new());
    csv.write(&first)?;

    let bar = progress_bar(options.duration.as_secs());
    let (mut committed, mut rejected, mut missing) = (0u64, 0u64, 0u64);
    let mut interval: Vec<f64> = Vec::new();
    let mut next_sample = origin + options.sample_every;
    let mut load_done_at: Option<Instant> = None;
    let hard_stop = stop_at + BUSY_RETRY_MAX + REQUEST_TIMEOUT + DRAIN_WAIT;
    let mut last_commit = origin;
    let mut last_read = origin;
    loop {
        let now = Instant::now();
        if load_done_at.is_none() && load.is_finished() {
            load_done_at = Some(now);
        }
        if let Some(done) = load_done_at
            && (ledger.accepted_pending() == 0 || now > done + DRAIN_WAIT)
        {
            break;
        }
        if now > hard_stop {
            break;
        }
        let receipts = match walker.next_receipts().await {
            Ok(receipts) => {
                last_read = Instant::now();
                receipts
            }
            Err(e) if last_read.elapsed() < READ_FAILING_MAX => {
                bar.suspend(|| warn!(error = %format!("{e:#}"), "reading blocks; retrying"));
                Vec::new()
            }
            Err(e) => {
                return Err(e.context(format!(
                    "reading blocks failed for {} s",
                    READ_FAILING_MAX.as_secs()
                )));
            }
        };
        for (hash, ok, _code) in receipts {
            let Some(sent) = ledger.seen(&hash) else {
                continue;
            };
            let seen_at = Instant::now();
            if ok {
                committed += 1;
                last_commit = seen_at;
            } else {
                rejected += 1;
            }
            interval.push(seen_at.saturating_duration_since(sent).as_secs_f64() * 1e3);
        }
        if Instant::now() >= next_sample {
            if let Some(cutoff) = Instant::now().checked_sub(MISSING_AFTER) {
                missing += ledger.forget_sent_before(cutoff);
            }
            let t_s = origin.elapsed().as_secs_f64();
            let sample = sampler.take(
                t_s,
                &ledger,
                (committed, rejected, missing),
                std::mem::take(&mut interval),
            );
            csv.write(&sample)?;
            bar.suspend(|| {
                debug!(
                    t_s = format!("{t_s:.0}"),
                    committed,
                    p99_ms = ?sample.p99_ms,
                    rss_mib = ?sample.nodes.iter().map(|n| n.rss_bytes.map(|b| b / (1 << 20))).collect::<Vec<_>>(),
                    "sample"
                );
            });
            let rss_max = sample
                .nodes
                .iter()
                .filter_map(|n| n.rss_bytes)
                .max()
                .unwrap_or(0);
            bar.set_message(format!(
                "{committed} committed  p99 {}  RSS max {:.0} MiB",
                sample
                    .p99_ms
                    .map_or_else(|| "-".to_string(), |p| format!("{p:.0} ms")),
                rss_max as f64 / MIB
            ));
            // A late loop (a stalled read) samples once and catches up, not in a burst.
            next_sample = (next_sample + options.sample_every).max(Instant::now());
        }
        bar.set_position(origin.elapsed().as_secs().min(options.duration.as_secs()));
        tokio::time::sleep(HEIGHT_POLL).await;
    }
    bar.finish_and_clear();
    // The generator's workers stop on their own at `stop_at`; wait for them briefly.
    let generated = match tokio::time::timeout(REQUEST_TIMEOUT, load).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(anyhow!("the load generator: {e}")),
        Err(_) => Ok(()),
    };
    generated?;
    // Whatever was accepted and is still unseen after the drain is missing.
    missing += ledger.forget_sent_before(Instant::now() + Duration::from_secs(1));
    let t_s = origin.elapsed().as_secs_f64();
    let last = sampler.take(t_s, &ledger, (committed, rejected, missing), interval);
    csv.write(&last)?;
    let load_average_end = load_average();

    let window = last_commit.saturating_duration_since(origin).as_secs_f64();
    let counts = Counts {
        submitted: ledger.submitted.load(Ordering::Relaxed),
        committed,
        rejected,
        missing,
        refused: ledger.refused.load(Ordering::Relaxed),
        dropped: ledger.dropped.load(Ordering::Relaxed),
        tps: if window > 0.0 {
            committed as f64 / window
        } else {
            0.0
        },
    };
    let mut summary = sampler.summarize(options, &counts);
    summary.validators = validators.len();
    summary.wallets = wallets_count;
    summary.load_average_start = load_average_start;
    summary.load_average_end = load_average_end;
    std::fs::write(
        options.out.join(SUMMARY_FILE),
        serde_json::to_string_pretty(&summary)?,
    )
    .with_context(|| format!("writing {SUMMARY_FILE}"))?;
    let names: Vec<String> = probes.iter().map(|p| p.name.clone()).collect();
    write_chart(
        &options.out.join(CHART_FILE),
        &names,
        &sampler.samples,
        Some(sampler.early_mark_s),
    )?;
    Ok(summary)
}

/// The paced load: workers take the next index, wait for its slot, sign and submit it.
struct Generator {
    apis: Arc<Vec<Api>>,
    wallets: Arc<Vec<Wallet>>,
    merchants: Arc<Vec<AccountId>>,
    chain_id: Arc<String>,
    rate: u64,
    total: u64,
    origin: Instant,
    stop_at: Instant,
    ledger: Arc<Ledger>,
    next: Arc<AtomicU64>,
}

impl Generator {
    async fn run(self, in_flight: usize) -> Result<()> {
        let this = Arc::new(self);
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..in_flight {
            let this = this.clone();
            workers.spawn(async move { this.work().await });
        }
        let mut first_error = None;
        while let Some(joined) = workers.join_next().await {
            let result = joined
                .map_err(|e| anyhow!("a load worker: {e}"))
                .and_then(|r| r);
            if let Err(e) = result {
                first_error.get_or_insert(e);
                workers.abort_all();
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn work(&self) -> Result<()> {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.total {
                return Ok(());
            }
            let slot = self.origin + Duration::from_secs_f64(i as f64 / self.rate as f64);
            tokio::time::sleep_until(slot.into()).await;
            if Instant::now() >= self.stop_at {
                return Ok(());
            }
            // Signed at its slot: one signature (tens of microseconds) per transaction.
            let tx = load_transaction(
                &self.wallets,
                &self.merchants,
                &self.chain_id,
                Mix::Transfers,
                self.apis.len(),
                i,
            )?;
            self.ledger.sending(tx.hash, Instant::now());
            let submission = submit_until_answered(&self.apis, &tx, self.stop_at).await;
            self.ledger.answered(tx.hash, submission);
        }
    }
}

/// The counts of the run, for the summary.
#[derive(Debug, Clone, Copy)]
struct Counts {
    submitted: u64,
    committed: u64,
    rejected: u64,
    missing: u64,
    refused: u64,
    dropped: u64,
    tps: f64,
}

/// The early figures, read once at the first sample past the early mark.
#[derive(Debug, Clone)]
struct Early {
    rss: Vec<Option<u64>>,
    p99_ms: Option<f64>,
}

/// Takes and keeps the samples, and the latencies of the last p99 window.
struct Sampler {
    probes: Vec<NodeProbe>,
    samples: Vec<Sample>,
    early_mark_s: f64,
    window_s: f64,
    /// (sample time, that interval's latencies), for the last `window_s`.
    window: VecDeque<(f64, Vec<f64>)>,
    early: Option<Early>,
    late_p99_ms: Option<f64>,
}

impl Sampler {
    fn new(options: &Options, probes: &[NodeProbe]) -> Sampler {
        Sampler {
            probes: probes.to_vec(),
            samples: Vec::new(),
            early_mark_s: options.early_mark().as_secs_f64(),
            window_s: options.p99_window().as_secs_f64(),
            window: VecDeque::new(),
            early: None,
            late_p99_ms: None,
        }
    }

    fn take(
        &mut self,
        t_s: f64,
        ledger: &Ledger,
        (committed, rejected, missing): (u64, u64, u64),
        mut latencies: Vec<f64>,
    ) -> Sample {
        let nodes = self
            .probes
            .iter()
            .map(|p| NodeSample {
                rss_bytes: p
                    .pid
                    .and_then(|pid| proc_status_kib(pid, "VmRSS:"))
                    .map(|kib| kib * 1024),
                disk_bytes: dir_bytes(&p.data_dir),
            })
            .collect();
        latencies.sort_by(f64::total_cmp);
        let (p50_ms, p99_ms) = if latencies.is_empty() {
            (None, None)
        } else {
            (
                Some(percentile(&latencies, 0.50)),
                Some(percentile(&latencies, 0.99)),
            )
        };
        let sample = Sample {
            t_s,
            submitted: ledger.submitted.load(Ordering::Relaxed),
            committed,
            rejected,
            missing,
            interval_seen: latencies.len() as u64,
            p50_ms,
            p99_ms,
            nodes,
        };
        self.record(sample.clone(), latencies);
        sample
    }

    /// Keeps `sample`, its interval's latencies in the window, and the early figures once
    /// past the early mark.
    fn record(&mut self, sample: Sample, latencies: Vec<f64>) {
        let t_s = sample.t_s;
        if t_s > 0.0 {
            self.window.push_back((t_s, latencies));
        }
        while self
            .window
            .front()
            .is_some_and(|(t, _)| *t <= t_s - self.window_s)
        {
            self.window.pop_front();
        }
        let window_p99 = {
            let mut all: Vec<f64> = self
                .window
                .iter()
                .flat_map(|(_, l)| l.iter().copied())
                .collect();
            all.sort_by(f64::total_cmp);
            (!all.is_empty()).then(|| percentile(&all, 0.99))
        };
        if self.early.is_none() && t_s >= self.early_mark_s && t_s > 0.0 {
            self.early = Some(Early {
                rss: sample.nodes.iter().map(|n| n.rss_bytes).collect(),
                p99_ms: window_p99,
            });
        }
        self.late_p99_ms = window_p99;
        self.samples.push(sample);
    }

    fn summarize(&self, options: &Options, counts: &Counts) -> Summary {
        let first = self.samples.first();
        let last = self.samples.last();
        let nodes: Vec<NodeSummary> = self
            .probes
            .iter()
            .enumerate()
            .map(|(i, probe)| {
                let at = |s: Option<&Sample>| s.and_then(|s| s.nodes.get(i)).copied();
                let rss_early = self
                    .early
                    .as_ref()
                    .and_then(|e| e.rss.get(i).copied().flatten());
                let rss_end = at(last).and_then(|n| n.rss_bytes);
                let sampled_peak = self
                    .samples
                    .iter()
                    .filter_map(|s| s.nodes.get(i).and_then(|n| n.rss_bytes))
                    .max();
                let hwm = probe
                    .pid
                    .and_then(|pid| proc_status_kib(pid, "VmHWM:"))
                    .map(|kib| kib * 1024);
                let peak = sampled_peak.max(hwm);
                let disk_start = at(first).and_then(|n| n.disk_bytes);
                let disk_end = at(last).and_then(|n| n.disk_bytes);
                let mib = |b: u64| b as f64 / MIB;
                NodeSummary {
                    node: probe.name.clone(),
                    rss_early_mib: rss_early.map(mib),
                    rss_end_mib: rss_end.map(mib),
                    rss_ratio: match (rss_early, rss_end) {
                        (Some(e), Some(l)) if e > 0 => Some(l as f64 / e as f64),
                        _ => None,
                    },
                    rss_peak_mib: peak.map(mib),
                    disk_start_bytes: disk_start,
                    disk_end_bytes: disk_end,
                    disk_bytes_per_tx: match (disk_start, disk_end) {
                        (Some(s), Some(e)) if counts.committed > 0 => {
                            Some((e as f64 - s as f64) / counts.committed as f64)
                        }
                        _ => None,
                    },
                }
            })
            .collect();
        let p99_early_ms = self.early.as_ref().and_then(|e| e.p99_ms);
        let p99_late_ms = self.late_p99_ms;
        let p99_ratio = match (p99_early_ms, p99_late_ms) {
            (Some(e), Some(l)) if e > 0.0 => Some(l / e),
            _ => None,
        };
        let rss_flat = !nodes.is_empty()
            && nodes
                .iter()
                .all(|n| n.rss_ratio.is_some_and(|r| r <= 1.0 + RSS_GROWTH_MAX));
        let rss_under_400_mib = !nodes.is_empty()
            && nodes
                .iter()
                .all(|n| n.rss_end_mib.is_some_and(|m| m < RSS_BAR_MIB));
        let p99_flat = p99_ratio.is_some_and(|r| r <= 1.0 + P99_GROWTH_MAX);
        let scheduled = options.rate.saturating_mul(options.duration.as_secs());
        // Whatever got an answer went out on time or nearly; what never left is the lag.
        let sent = counts.submitted + counts.refused + counts.dropped;
        let paced = sent.saturating_mul(100) >= scheduled.saturating_mul(99);
        let nothing_lost = counts.committed > 0
            && counts.rejected == 0
            && counts.missing == 0
            && counts.refused == 0
            && counts.dropped == 0;
        Summary {
            duration_s: options.duration.as_secs(),
            rate: options.rate,
            sample_every_s: options.sample_every.as_secs(),
            validators: 0,
            wallets: 0,
            scheduled,
            submitted: counts.submitted,
            committed: counts.committed,
            rejected: counts.rejected,
            missing: counts.missing,
            refused: counts.refused,
            dropped: counts.dropped,
            tps: counts.tps,
            early_mark_s: self.early_mark_s,
            p99_window_s: self.window_s,
            p99_early_ms,
            p99_late_ms,
            p99_ratio,
            nodes,
            bars: Bars {
                rss_flat,
                rss_under_400_mib,
                p99_flat,
                nothing_lost,
                hold: rss_flat && rss_under_400_mib && p99_flat && nothing_lost,
                paced,
                full_length: options.duration >= Duration::from_secs(30 * 60)
                    && options.rate >= 1_000
                    && paced,
            },
            samples: self.samples.len(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_average_start: None,
            load_average_end: None,
            out_dir: options.out.clone(),
        }
    }
}

/// Writes the samples as CSV, one row per sample, flushed at each so a killed run keeps them.
struct SampleWriter {
    file: std::io::BufWriter<std::fs::File>,
}

impl SampleWriter {
    fn create(path: &Path, probes: &[NodeProbe]) -> Result<SampleWriter> {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut writer = SampleWriter {
            file: std::io::BufWriter::new(file),
        };
        let mut header =
            String::from("t_s,submitted,committed,rejected,missing,interval_seen,p50_ms,p99_ms");
        for probe in probes {
            header.push_str(&format!(
                ",{0}_rss_bytes,{0}_disk_bytes",
                csv_field(&probe.name)
            ));
        }
        writeln!(writer.file, "{header}")?;
        writer.file.flush()?;
        Ok(writer)
    }

    fn write(&mut self, sample: &Sample) -> Result<()> {
        let opt_f = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.1}"));
        let opt_u = |v: Option<u64>| v.map_or_else(String::new, |v| v.to_string());
        let mut row = format!(
            "{:.1},{},{},{},{},{},{},{}",
            sample.t_s,
            sample.submitted,
            sample.committed,
            sample.rejected,
            sample.missing,
            sample.interval_seen,
            opt_f(sample.p50_ms),
            opt_f(sample.p99_ms)
        );
        for node in &sample.nodes {
            row.push_str(&format!(
                ",{},{}",
                opt_u(node.rss_bytes),
                opt_u(node.disk_bytes)
            ));
        }
        writeln!(self.file, "{row}")?;
        self.file.flush()?;
        Ok(())
    }
}

/// Node names are the devnet's own (`validator-0` …); anything that would split a CSV
/// field is replaced all the same.
fn csv_field(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == ',' || c == '"' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The allocated size of everything under `dir` (as `du` counts it), not following links and
/// visiting at most [`DISK_WALK_MAX_ENTRIES`] entries; `None` if `dir` cannot be read.
pub fn dir_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut visited = 0usize;
    let mut stack = vec![dir.to_path_buf()];
    let mut root = true;
    while let Some(path) = stack.pop() {
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            // The root must be readable; a file vanishing underneath (sled's compaction)
            // is not an error.
            Err(_) if root => return None,
            Err(_) => continue,
        };
        root = false;
        for entry in entries.flatten() {
            visited += 1;
            if visited > DISK_WALK_MAX_ENTRIES {
                return Some(total);
            }
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total = total.saturating_add(meta.blocks().saturating_mul(512));
            }
        }
    }
    Some(total)
}

/// `/proc/loadavg`'s 1, 5 and 15-minute figures.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn progress_bar(seconds: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(seconds),
        indicatif::ProgressDrawTarget::stderr_with_hz(2),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Prints the summary and, with `json`, the JSON line last.
pub fn print(summary: &Summary, json: bool) -> Result<()> {
    let opt = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
    };
    println!(
        "soak: {} s at {} tx/s, {} validators, {} wallets, {} samples every {} s",
        summary.duration_s,
        summary.rate,
        summary.validators,
        summary.wallets,
        summary.samples,
        summary.sample_every_s
    );
    println!(
        "  scheduled {}  submitted {}  committed {}  rejected {}  missing {}  refused at submit {}  dropped {}  ({:.0} committed tx/s)",
        summary.scheduled,
        summary.submitted,
        summary.committed,
        summary.rejected,
        summary.missing,
        summary.refused,
        summary.dropped,
        summary.tps
    );
    println!(
        "  p99 early {} ms (the {:.0} s to {:.0} s)  late {} ms (the last {:.0} s)  late/early {}",
        opt(summary.p99_early_ms, 0),
        (summary.early_mark_s - summary.p99_window_s).max(0.0),
        summary.early_mark_s,
        opt(summary.p99_late_ms, 0),
        summary.p99_window_s,
        opt(summary.p99_ratio, 2)
    );
    println!(
        "  {:<12} {:>10} {:>10} {:>9} {:>10} {:>12}",
        "node", "RSS early", "RSS end", "end/early", "RSS peak", "disk B/tx"
    );
    for n in &summary.nodes {
        println!(
            "  {:<12} {:>6} MiB {:>6} MiB {:>9} {:>6} MiB {:>12}",
            n.node,
            opt(n.rss_early_mib, 0),
            opt(n.rss_end_mib, 0),
            opt(n.rss_ratio, 2),
            opt(n.rss_peak_mib, 0),
            opt(n.disk_bytes_per_tx, 0)
        );
    }
    let mark = |ok: bool| if ok { "yes" } else { "NO" };
    let b = summary.bars;
    println!(
        "  issue 20's bars: RSS end ≤ early +10%: {}; RSS end < 400 MiB: {}; p99 late ≤ early +20%: {}; \
         nothing rejected, missing, refused or dropped: {}",
        mark(b.rss_flat),
        mark(b.rss_under_400_mib),
        mark(b.p99_flat),
        mark(b.nothing_lost)
    );
    if !b.paced {
        println!(
            "  the load fell behind its pace: {} of {} scheduled transactions went out",
            summary.submitted + summary.refused + summary.dropped,
            summary.scheduled
        );
    }
    println!(
        "  the bars {} on this run{}",
        if b.hold { "HOLD" } else { "DO NOT HOLD" },
        if b.full_length {
            ""
        } else {
            " (they are set for 30 minutes at 1,000 tx/s kept up; this run is shorter, slower \
             or fell behind)"
        }
    );
    println!(
        "  load average {} at the start, {} at the end, {} cores; samples, summary and chart in {}",
        summary.load_average_start.as_deref().unwrap_or("-"),
        summary.load_average_end.as_deref().unwrap_or("-"),
        summary.cores,
        summary.out_dir.display()
    );
    if json {
        println!("{}", serde_json::to_string(summary)?);
    }
    Ok(())
}

/// Draws the chart: three panels, one above the other: RSS per node, disk per node, and the
/// commit latency (p50 and p99) per interval, over the run's time; a grey vertical line at
/// `early_mark_s`, where the early figures are read.
pub fn write_chart(
    path: &Path,
    names: &[String],
    samples: &[Sample],
    early_mark_s: Option<f64>,
) -> Result<()> {
    use plotters::prelude::*;

    let t_max = samples.iter().map(|s| s.t_s).fold(0.0f64, f64::max);
    // Minutes on long runs, seconds on short ones: the axis then reads in round numbers.
    let (unit, scale) = if t_max >= 600.0 {
        ("minutes", 60.0)
    } else {
        ("seconds", 1.0)
    };
    let x_max = (t_max / scale).max(1e-3);
    let mut rss: Vec<Series> = Vec::new();
    let mut disk: Vec<Series> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let points = |f: fn(&NodeSample) -> Option<u64>| -> Vec<(f64, f64)> {
            samples
                .iter()
                .filter_map(|s| {
                    let v = s.nodes.get(i).and_then(f)?;
                    Some((s.t_s / scale, v as f64 / MIB))
                })
                .collect()
        };
        rss.push(Series {
            label: name.clone(),
            points: points(|n| n.rss_bytes),
        });
        disk.push(Series {
            label: name.clone(),
            points: points(|n| n.disk_bytes),
        });
    }
    let latency = |label: &str, f: fn(&Sample) -> Option<f64>| Series {
        label: label.to_string(),
        points: samples
            .iter()
            .filter_map(|s| Some((s.t_s / scale, f(s)?)))
            .collect(),
    };
    let latencies = vec![latency("p99", |s| s.p99_ms), latency("p50", |s| s.p50_ms)];

    let root = SVGBackend::new(path, (1000, 1200)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_error)?;
    let panels = root.split_evenly((3, 1));
    let specs = [
        ("Resident memory per node", "MiB", &rss),
        ("Data directory on disk per node", "MiB", &disk),
        ("Commit latency per sample interval", "ms", &latencies),
    ];
    for (panel, (title, y_unit, series)) in panels.iter().zip(specs) {
        let y_max = series
            .iter()
            .flat_map(|s| s.points.iter().map(|(_, y)| *y))
            .fold(0.0f64, f64::max);
        let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_desc(unit)
            .y_desc(y_unit)
            .draw()
            .map_err(chart_error)?;
        if let Some(mark) = early_mark_s.filter(|m| *m > 0.0 && *m <= t_max) {
            // Darker than the mesh, which it may fall on.
            let grey = BLACK.mix(0.6);
            chart
                .draw_series(LineSeries::new(
                    [(mark / scale, 0.0), (mark / scale, y_max)],
                    grey.stroke_width(3),
                ))
                .map_err(chart_error)?
                .label("early mark")
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(3))
                });
        }
        for (i, s) in series.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(chart_error)?
                .label(s.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(chart_error)?;
    }
    root.present().map_err(chart_error)?;
    Ok(())
}

/// One line of a panel.
struct Series {
    label: String,
    points: Vec<(f64, f64)>,
}

fn chart_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the chart: {e}")
}

/// The soak's figures must be computed from what was sampled, whatever the devnet: these
/// tests feed the sampler and the chart made-up samples.
#[cfg(test)]
mod tests {
    use super::*;

    fn options(duration_s: u64, sample_every_s: u64) -> Options {
        Options {
            duration: Duration::from_secs(duration_s),
            rate: 1_000,
            sample_every: Duration::from_secs(sample_every_s),
            out: PathBuf::from("unused"),
            json: false,
        }
    }

    fn probe(name: &str) -> NodeProbe {
        NodeProbe {
            name: name.to_string(),
            // No process: the summary's peak then comes from the samples alone.
            pid: None,
            data_dir: PathBuf::from("unused"),
        }
    }

    fn sample(t_s: f64, committed: u64, rss_mib: &[u64], disk: &[u64]) -> Sample {
        Sample {
            t_s,
            submitted: committed,
            committed,
            rejected: 0,
            missing: 0,
            interval_seen: 0,
            p50_ms: None,
            p99_ms: None,
            nodes: rss_mib
                .iter()
                .zip(disk)
                .map(|(r, d)| NodeSample {
                    rss_bytes: Some(r << 20),
                    disk_bytes: Some(*d),
                })
                .collect(),
        }
    }

    fn counts(committed: u64) -> Counts {
        Counts {
            submitted: committed,
            committed,
            rejected: 0,
            missing: 0,
            refused: 0,
            dropped: 0,
            tps: 0.0,
        }
    }

    #[test]
    fn durations_read_in_seconds_minutes_and_hours() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "m", "5d", "1.5m", "-3s", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn the_early_mark_is_minute_three_or_a_tenth_of_a_shorter_run() {
        assert_eq!(options(1800, 5).early_mark(), Duration::from_secs(180));
        assert_eq!(options(3600, 5).early_mark(), Duration::from_secs(180));
        assert_eq!(options(60, 5).early_mark(), Duration::from_secs(6));
        assert_eq!(options(1800, 5).p99_window(), Duration::from_secs(60));
        // Never narrower than one interval, or it would hold no latency at all.
        assert_eq!(options(20, 5).p99_window(), Duration::from_secs(5));
    }

    #[test]
    fn options_out_of_bounds_are_refused() {
        let mut o = options(60, 5);
        assert!(o.check().is_ok());
        o.rate = 0;
        assert!(o.check().is_err());
        o.rate = RATE_MAX + 1;
        assert!(o.check().is_err());
        let mut o = options(60, 0);
        assert!(o.check().is_err());
        o.sample_every = SAMPLE_EVERY_MAX + Duration::from_secs(1);
        assert!(o.check().is_err());
        assert!(options(0, 5).check().is_err());
    }

    #[test]
    fn flat_memory_and_latency_hold_the_bars_and_growth_does_not() {
        let o = options(100, 10);
        let probes = [probe("validator-0"), probe("validator-1")];
        let mut flat = Sampler::new(&o, &probes);
        let mut growing = Sampler::new(&o, &probes);
        for step in 0..=10u64 {
            let t = step as f64 * 10.0;
            let committed = step * 10_000;
            let disk = [1_000_000 + committed * 500, 1_000_000 + committed * 700];
            let latencies: Vec<f64> = (1..=100).map(|i| i as f64).collect();
            let slow: Vec<f64> = (1..=100).map(|i| (i + 10 * step) as f64).collect();
            flat.record(sample(t, committed, &[100, 102], &disk), latencies);
            growing.record(
                sample(t, committed, &[100 + 40 * step, 100], &disk),
                if t > 0.0 { slow } else { Vec::new() },
            );
        }
        let summary = flat.summarize(&o, &counts(100_000));
        assert_eq!(summary.early_mark_s, 10.0);
        assert!(summary.bars.hold, "{summary:#?}");
        assert!(summary.bars.paced);
        assert!(!summary.bars.full_length);
        // 1,000 tx/s for 100 s scheduled, 98,000 sent: the load lagged.
        assert!(!flat.summarize(&o, &counts(98_000)).bars.paced);
        let node0 = summary.nodes.first().expect("two nodes");
        assert_eq!(node0.rss_early_mib, Some(100.0));
        assert_eq!(node0.rss_ratio, Some(1.0));
        assert_eq!(node0.disk_bytes_per_tx, Some(500.0));
        assert_eq!(summary.p99_early_ms, Some(99.0));
        assert_eq!(summary.p99_late_ms, Some(99.0));

        let summary = growing.summarize(&o, &counts(100_000));
        assert!(!summary.bars.rss_flat);
        // 100 + 400 MiB at the end: past the 400 MiB bar too.
        assert!(!summary.bars.rss_under_400_mib);
        assert!(!summary.bars.p99_flat, "{summary:#?}");
        assert!(summary.bars.nothing_lost);
        assert!(!summary.bars.hold);
        let node0 = summary.nodes.first().expect("two nodes");
        assert_eq!(node0.rss_peak_mib, Some(500.0));

        let mut lost = counts(100_000);
        lost.missing = 1;
        assert!(!flat.summarize(&o, &lost).bars.nothing_lost);
        assert!(!flat.summarize(&o, &counts(0)).bars.nothing_lost);
    }

    #[test]
    fn the_p99_window_forgets_intervals_older_than_its_span() {
        let o = options(600, 10);
        let mut sampler = Sampler::new(&o, &[probe("validator-0")]);
        for step in 0..=60u64 {
            let latency = if step <= 30 { 1000.0 } else { 10.0 };
            sampler.record(
                sample(step as f64 * 10.0, step, &[1], &[1]),
                vec![latency; 50],
            );
        }
        // Six 10 s intervals in a 60 s window, bounded however long the run.
        assert_eq!(sampler.window.len(), 6);
        assert_eq!(sampler.late_p99_ms, Some(10.0));
        assert_eq!(sampler.early.as_ref().and_then(|e| e.p99_ms), Some(1000.0));
    }

    #[test]
    fn the_ledger_counts_each_answer_and_forgets_only_stale_accepted_transactions() {
        let ledger = Ledger::default();
        let t0 = Instant::now();
        let hash = |i: u8| Hash([i; 32]);
        for i in 0..4 {
            ledger.sending(hash(i), t0);
        }
        ledger.answered(hash(0), Submission::Accepted { sent: t0 });
        ledger.answered(hash(1), Submission::Refused);
        ledger.answered(hash(2), Submission::Dropped);
        assert_eq!(ledger.submitted.load(Ordering::Relaxed), 1);
        assert_eq!(ledger.refused.load(Ordering::Relaxed), 1);
        assert_eq!(ledger.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(ledger.accepted_pending(), 1);
        // Still being submitted (3) is never forgotten; accepted and stale (0) is.
        let later = t0 + Duration::from_secs(120);
        assert_eq!(ledger.forget_sent_before(later), 1);
        assert!(ledger.seen(&hash(0)).is_none());
        assert!(ledger.seen(&hash(3)).is_some());
        assert!(ledger.seen(&hash(3)).is_none());
    }

    #[test]
    fn the_chart_has_a_line_per_node_and_per_percentile() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(CHART_FILE);
        let names = vec!["validator-0".to_string(), "audit-0".to_string()];
        let samples: Vec<Sample> = (0..20u64)
            .map(|i| {
                let mut s = sample(i as f64 * 60.0, i * 1000, &[100 + i, 90], &[i << 20, 5]);
                s.p50_ms = Some(60.0);
                s.p99_ms = Some(100.0 + i as f64);
                s
            })
            .collect();
        write_chart(&path, &names, &samples, Some(180.0))?;
        let text = std::fs::read_to_string(&path)?;
        let svg = roxmltree::Document::parse(&text)?;
        let lines = svg
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .filter(|n| {
                n.attribute("points")
                    .is_some_and(|p| p.split(' ').count() >= 20)
            })
            .count();
        // Two nodes in two panels, two percentiles in the third.
        assert!(lines >= 6, "{lines} lines of 20 points");
        assert!(text.contains("validator-0") && text.contains("p99"));
        assert!(text.contains("early mark"));
        // Nothing sampled yet still draws three empty panels.
        write_chart(&path, &names, &[], None)?;
        roxmltree::Document::parse(&std::fs::read_to_string(&path)?)?;
        Ok(())
    }

    #[test]
    fn the_data_directory_walk_sums_files_below_it() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("a/b"))?;
        std::fs::write(dir.path().join("a/b/blob"), vec![7u8; 64 * 1024])?;
        std::fs::write(dir.path().join("top"), vec![7u8; 8 * 1024])?;
        let bytes = dir_bytes(dir.path()).context("readable")?;
        assert!(bytes >= 72 * 1024, "{bytes}");
        assert_eq!(dir_bytes(&dir.path().join("absent")), None);
        Ok(())
    }
}
