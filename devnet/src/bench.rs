//! `tally-devnet bench`: load on a devnet through its public API, and what it committed.
//!
//! The run, in order: measure this machine's batch signature verification rate (the ceiling
//! the figures are compared with); register, card-bind and top up many wallets (and a few
//! merchants) in batches; sign every load transaction ahead, so signing costs nothing during
//! the load; submit them at the target rate (or as fast as the nodes take them) across all
//! validators over kept-alive connections, `--batch` transactions per request (64 by
//! default, through `/v1/transactions/batch`; 1 posts each alone); and walk the committed
//! blocks as the height advances, matching their receipts to the submitted hashes: one
//! reader, exact, and cheap for the nodes. Every phase is bounded in count and time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use tally_contracts::{
    AccountId, CardToken, Currency, Party, SignedTransaction, Transaction, TransferId, TxKind,
    encoding,
};
use tally_crypto::{BatchVerifier, Hash, KeyCache, PublicKey, Signature, SigningKey};

use tally_wire::batch::{BatchAnswer, BatchOutcome, frame};

use crate::layout::{BANK_A, BANK_B, Layout, institution_id};
use tally_sdk::{Api, Submitter, new_key};

/// Concurrent submissions (each on its own kept-alive connection per validator).
pub(crate) const IN_FLIGHT_MAX: usize = 128;
/// Without `--rate`, how many transactions per second of `--duration` are signed ahead: far
/// above what this network commits on a small machine, so the load never runs dry early.
const UNPACED_PREPARED_PER_S: u64 = 4_000;
/// The most load transactions signed ahead, whatever the flags (memory and signing time).
const PREPARED_MAX: u64 = 400_000;
/// The most wallets made for one run.
pub(crate) const WALLETS_MAX: usize = 4_000;
/// Merchants made for `payments` and `mixed`.
const MERCHANTS: usize = 8;
/// Each wallet's top-up, in fen (the tier-1 single-payment limit): far more than it spends.
const TOP_UP_FEN: u64 = 500_000;
/// One transfer or payment, in fen.
pub(crate) const PAYMENT_FEN: u64 = 100;
/// How long a setup batch may take to commit.
const SETUP_COMMIT_WAIT: Duration = Duration::from_secs(120);
/// After the last submission, how long commits are still awaited.
pub(crate) const DRAIN_WAIT: Duration = Duration::from_secs(30);
/// Back-off when a node answers BUSY (503) or 429, and how long one transaction may retry.
const BUSY_BACKOFF: Duration = Duration::from_millis(20);
pub(crate) const BUSY_RETRY_MAX: Duration = Duration::from_secs(10);
/// One HTTP exchange's bound.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the block reader asks for the height.
pub(crate) const HEIGHT_POLL: Duration = Duration::from_millis(25);
/// The verification measurement: batches of this size for about this long, on one thread.
const VERIFY_BATCH: usize = 1024;
const VERIFY_MEASURE: Duration = Duration::from_secs(1);

/// What the load is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// Wallet-to-wallet transfers, half of them between the two banks.
    Transfers,
    /// Wallets paying merchants (the merchant QR flow).
    Payments,
    /// Two transfers for each merchant payment.
    Mixed,
}

/// The bench's options.
#[derive(Debug, Clone)]
pub struct Options {
    pub duration_s: u64,
    pub rate: Option<u64>,
    pub mix: Mix,
    pub json: bool,
    /// Transactions per request: 1 posts each to `/v1/transactions`, more post them
    /// together to `/v1/transactions/batch`.
    pub batch: usize,
    /// Webhook subscriptions registered on each validator before the load, as the
    /// regulator (who sees every event), all to an endpoint that takes connections and never
    /// answers: what a dead merchant endpoint costs the chain.
    pub webhooks: usize,
}

/// The figures; the JSON line is this, serialized.
#[derive(Debug, Serialize)]
pub struct Report {
    pub mix: String,
    pub duration_s: u64,
    pub target_rate: Option<u64>,
    /// Transactions per submission request.
    pub batch: usize,
    /// Webhook subscriptions to a never-answering endpoint, per validator.
    pub webhooks: usize,
    pub validators: usize,
    pub wallets: usize,
    pub prepared: u64,
    pub submitted: u64,
    /// Refused at submission (not BUSY): duplicate, nonce, malformed …
    pub refused: u64,
    /// Still BUSY after the retry bound, or not answered.
    pub dropped: u64,
    /// Included in a block and executed `OK`.
    pub committed: u64,
    /// Included in a block and refused by the ledger (a rejection code).
    pub rejected: u64,
    /// Accepted but not seen in a block before the drain bound.
    pub missing: u64,
    /// Committed (OK) per second, from the first submission to the last commit seen.
    pub tps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub elapsed_s: f64,
    /// Peak resident memory (VmHWM) of each node process, MiB; empty with `--api`.
    pub node_peak_mib: Vec<NodeMemory>,
    pub cores: usize,
    pub verify_per_s: f64,
    /// cores × verifications per second ÷ validators.
    pub ceiling_tps: f64,
    /// tps ÷ ceiling_tps.
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeMemory {
    pub node: String,
    pub peak_mib: f64,
}

/// A node process to read memory from: name and pid.
#[derive(Debug, Clone)]
pub struct NodePid {
    pub name: String,
    pub pid: u32,
}

/// One prepared transaction: where it goes, its hash and canonical bytes.
pub(crate) struct Prepared {
    pub(crate) validator: usize,
    pub(crate) hash: Hash,
    pub(crate) bytes: Bytes,
}

/// A wallet of the run: id, device key, bank key index (0 = Bank A, 1 = Bank B).
pub(crate) struct Wallet {
    id: AccountId,
    key: SigningKey,
    bank: usize,
}

/// Wallets registered, card-bound and topped up on a devnet, ready to carry load.
pub(crate) struct Funded {
    /// Submitters' APIs, one per validator, without credentials.
    pub(crate) apis: Vec<Api>,
    /// Reads the committed blocks from the first validator, as the regulator.
    pub(crate) walker: BlockWalker,
    pub(crate) wallets: Vec<Wallet>,
    pub(crate) merchants: Vec<AccountId>,
    pub(crate) chain_id: String,
}

/// Enough wallets for `transactions` load transactions, never more than [`WALLETS_MAX`]:
/// at least two per submission in flight, so that a sender's consecutive nonces are never
/// in flight together (each waits for `in_flight` others), and a sender has few
/// transactions pending at once.
pub(crate) fn wallets_for(transactions: u64) -> usize {
    usize::try_from(transactions / 8)
        .unwrap_or(WALLETS_MAX)
        .clamp(2 * IN_FLIGHT_MAX + 1, WALLETS_MAX)
}

/// Makes `wallets_count` wallets (and, for a mix with payments, the merchants) on the devnet
/// of `layout` through `validators`, each setup round committed before the next.
pub(crate) async fn fund_wallets(
    layout: &Layout,
    validators: &[SocketAddr],
    wallets_count: usize,
    mix: Mix,
) -> Result<Funded> {
    let in_flight = IN_FLIGHT_MAX.min(wallets_count / 2);
    let chain_id = layout.manifest.chain_id.clone();
    let banks = [
        layout.institution_key(BANK_A)?,
        layout.institution_key(BANK_B)?,
    ];
    // Submissions go without credentials (each transaction is signed by its sender); the
    // block reader reads blocks' results, which only the regulator may.
    let apis: Vec<Api> = validators
        .iter()
        .map(|a| layout.api_at(*a))
        .collect::<Result<_>>()?;
    let reader =
        layout.regulator_api_at(*validators.first().ok_or_else(|| anyhow!("no validator"))?)?;
    let mut walker = BlockWalker::start(reader.clone()).await?;
    let run = u128::from(now_ms()) << 32;

    let merchants = if mix == Mix::Transfers {
        Vec::new()
    } else {
        eprintln!("registering {MERCHANTS} merchants …");
        make_merchants(layout, reader, &banks, run).await?
    };

    eprintln!("registering, binding cards and topping up {wallets_count} wallets …");
    let wallets: Vec<Wallet> = (0..wallets_count)
        .map(|i| {
            Ok(Wallet {
                id: AccountId(run + 1_000 + i as u128),
                key: new_key()?,
                bank: i % 2,
            })
        })
        .collect::<Result<_>>()?;
    let cards: Vec<CardToken> = wallets
        .iter()
        .map(|w| CardToken(Hash::digest("tally-devnet-bench-card", &w.id.0.to_le_bytes()).0))
        .collect();
    // Three rounds, each committed before the next: the card needs the account, the top-up
    // the card. Within a round nothing depends on anything else, so all go at once.
    for round in 0..3u64 {
        let txs: Vec<Prepared> = wallets
            .iter()
            .zip(&cards)
            .enumerate()
            .map(|(i, (w, card))| {
                let bank_key = banks.get(w.bank).ok_or_else(|| anyhow!("no bank key"))?;
                let kind = match round {
                    0 => TxKind::RegisterAccount {
                        account: w.id,
                        key: w.key.public_key(),
                        currency: Currency::CNY,
                        institution: institution_id(if w.bank == 0 { BANK_A } else { BANK_B }),
                        tier: 1,
                        identity: Hash::digest(
                            "tally-devnet-bench-identity",
                            &w.id.0.to_le_bytes(),
                        ),
                    },
                    1 => TxKind::BindCard {
                        card: *card,
                        bank: institution_id(if w.bank == 0 { BANK_A } else { BANK_B }),
                    },
                    _ => TxKind::TopUp {
                        id: TransferId(w.id.0),
                        card: *card,
                        amount: TOP_UP_FEN,
                    },
                };
                let signed = Transaction {
                    chain_id: chain_id.clone(),
                    sender: Party::Account(w.id),
                    nonce: round,
                    kind,
                }
                .sign(&[&w.key, bank_key]);
                Ok(prepare(&signed, i % apis.len()))
            })
            .collect::<Result<_>>()?;
        setup_round(&apis, &mut walker, txs, in_flight, round).await?;
    }
    Ok(Funded {
        apis,
        walker,
        wallets,
        merchants,
        chain_id,
    })
}

/// Runs the bench on the devnet of `layout`, whose validators' APIs are `validators`.
pub async fn run(
    layout: &Layout,
    validators: &[SocketAddr],
    pids: &[NodePid],
    options: &Options,
) -> Result<Report> {
    ensure!(!validators.is_empty(), "no validator API to load");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!("measuring batch signature verification on one thread …");
    let verify_per_s = tokio::task::spawn_blocking(measure_verify_rate)
        .await
        .context("the verification measurement")??;
    let ceiling_tps = cores as f64 * verify_per_s / validators.len() as f64;
    eprintln!(
        "{verify_per_s:.0} verifications/s per core × {cores} cores ÷ {} validators = ceiling {ceiling_tps:.0} tx/s",
        validators.len()
    );

    let prepared_count = match options.rate {
        Some(rate) => rate.saturating_mul(options.duration_s),
        None => UNPACED_PREPARED_PER_S.saturating_mul(options.duration_s),
    }
    .clamp(1, PREPARED_MAX);
    let wallets_count = wallets_for(prepared_count);
    let in_flight = load_workers(wallets_count, options.batch);
    let black_hole = if options.webhooks > 0 {
        Some(black_hole_webhooks(layout, validators, options.webhooks).await?)
    } else {
        None
    };
    let Funded {
        apis,
        mut walker,
        wallets,
        merchants,
        chain_id,
    } = fund_wallets(layout, validators, wallets_count, options.mix).await?;

    eprintln!("signing {prepared_count} transactions ahead …");
    let load = Arc::new(
        sign_load(
            &wallets,
            &merchants,
            &chain_id,
            prepared_count,
            options.mix,
            apis.len(),
        )
        .await?,
    );
    let index: HashMap<Hash, usize> = load.iter().enumerate().map(|(i, p)| (p.hash, i)).collect();
    ensure!(
        index.len() == load.len(),
        "two prepared transactions share a hash"
    );

    eprintln!(
        "load: {} for {} s at {} across {} validators",
        match options.mix {
            Mix::Transfers => "transfers",
            Mix::Payments => "merchant payments",
            Mix::Mixed => "transfers and merchant payments",
        },
        options.duration_s,
        options
            .rate
            .map_or_else(|| "full speed".to_string(), |r| format!("{r} tx/s")),
        apis.len()
    );
    let outcome = drive(&apis, &mut walker, load, index, options, in_flight).await?;
    if let Some(black_hole) = black_hole {
        black_hole.remove().await;
    }
    let node_peak_mib = pids
        .iter()
        .map(|n| NodeMemory {
            node: n.name.clone(),
            peak_mib: peak_memory_mib(n.pid).unwrap_or(f64::NAN),
        })
        .collect();

    let mut latencies = outcome.latencies_ms;
    latencies.sort_by(f64::total_cmp);
    let elapsed_s = outcome.window.as_secs_f64();
    let tps = if elapsed_s > 0.0 {
        outcome.committed as f64 / elapsed_s
    } else {
        0.0
    };
    Ok(Report {
        mix: format!("{:?}", options.mix).to_lowercase(),
        duration_s: options.duration_s,
        target_rate: options.rate,
        batch: options.batch,
        webhooks: options.webhooks,
        validators: apis.len(),
        wallets: wallets_count,
        prepared: prepared_count,
        submitted: outcome.submitted,
        refused: outcome.refused,
        dropped: outcome.dropped,
        committed: outcome.committed,
        rejected: outcome.rejected,
        missing: outcome
            .submitted
            .saturating_sub(outcome.committed + outcome.rejected),
        tps,
        p50_ms: percentile(&latencies, 0.50),
        p90_ms: percentile(&latencies, 0.90),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        elapsed_s,
        node_peak_mib,
        cores,
        verify_per_s,
        ceiling_tps,
        ratio: if ceiling_tps > 0.0 {
            tps / ceiling_tps
        } else {
            0.0
        },
    })
}

/// Prints the human summary and, with `json`, the JSON line last.
pub fn print(report: &Report, json: bool) -> Result<()> {
    println!(
        "bench: {} for {} s, {} validators, {} wallets, {} per request",
        report.mix, report.duration_s, report.validators, report.wallets, report.batch
    );
    println!(
        "  submitted {}  committed {}  rejected {}  refused at submit {}  dropped {}  missing {}",
        report.submitted,
        report.committed,
        report.rejected,
        report.refused,
        report.dropped,
        report.missing
    );
    println!(
        "  throughput {:.0} committed tx/s over {:.1} s",
        report.tps, report.elapsed_s
    );
    println!(
        "  commit latency p50 {:.0} ms  p90 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
        report.p50_ms, report.p90_ms, report.p99_ms, report.max_ms
    );
    for node in &report.node_peak_mib {
        println!("  {:<12} peak memory {:.0} MiB", node.node, node.peak_mib);
    }
    println!(
        "  ceiling {:.0} tx/s ({} cores × {:.0} verifications/s ÷ {} validators); ratio {:.3}",
        report.ceiling_tps, report.cores, report.verify_per_s, report.validators, report.ratio
    );
    if report.webhooks > 0 {
        println!(
            "  with {} webhook subscriptions per validator to an endpoint that never answers",
            report.webhooks
        );
    }
    if json {
        println!("{}", serde_json::to_string(report)?);
    }
    Ok(())
}

/// Listens on the devnet's webhook sink and never answers: each connection is read to its
/// end (so the nodes' timed-out requests free their sockets) and dropped. Registers `count`
/// subscriptions on each validator, as the regulator, to it. The listener stops when the
/// answer is dropped.
async fn black_hole_webhooks(
    layout: &Layout,
    validators: &[SocketAddr],
    count: usize,
) -> Result<BlackHole> {
    let sink = layout
        .manifest
        .webhook_sink
        .context("this devnet was made before webhooks: it has no webhook sink; make a new one")?;
    let listener = tokio::net::TcpListener::bind(sink)
        .await
        .with_context(|| format!("listening on the webhook sink {sink}"))?;
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while matches!(
                    tokio::io::AsyncReadExt::read(&mut socket, &mut buffer).await,
                    Ok(n) if n > 0
                ) {}
            });
        }
    });
    let mut hole = BlackHole {
        _listener: AbortOnDrop(task),
        subscriptions: Vec::new(),
    };
    for address in validators {
        let api = layout.regulator_api_at(*address)?;
        for i in 0..count {
            let made = api
                .subscribe_webhook(&tally_sdk::webhook::NewSubscription {
                    url: format!("http://{sink}/never-answers/{i}"),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("registering webhook {i} on {address}"))?;
            hole.subscriptions.push((api.clone(), made.id));
        }
    }
    eprintln!("{count} webhook subscriptions on each validator to {sink}, which never answers");
    Ok(hole)
}

/// The never-answering endpoint and the subscriptions aimed at it.
struct BlackHole {
    _listener: AbortOnDrop,
    subscriptions: Vec<(Api, u64)>,
}

impl BlackHole {
    /// Removes the subscriptions, so a devnet kept (`--dir`) is left as it was.
    async fn remove(self) {
        for (api, id) in &self.subscriptions {
            if let Err(e) = api.remove_webhook(*id).await {
                eprintln!("removing webhook {id}: {e}");
            }
        }
    }
}

/// Aborts its task when dropped: at the end of the run, or when a registration fails.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn prepare(signed: &SignedTransaction, validator: usize) -> Prepared {
    Prepared {
        validator,
        hash: signed.hash(),
        bytes: Bytes::from(encoding::encode(signed)),
    }
}

/// Verifications per second on one thread, batches of [`VERIFY_BATCH`], keys cached as in
/// the node.
fn measure_verify_rate() -> Result<f64> {
    let keys: Vec<SigningKey> = (0..64u8).map(|i| SigningKey::from_seed([i; 32])).collect();
    let signed: Vec<(PublicKey, Vec<u8>, Signature)> = keys
        .iter()
        .cycle()
        .take(VERIFY_BATCH)
        .enumerate()
        .map(|(i, key)| {
            // About the size of a transfer's signing bytes.
            let message = vec![(i % 251) as u8; 120];
            let signature = key.sign("bench-tx", "bench-chain", &message);
            (key.public_key(), message, signature)
        })
        .collect();
    let mut cache = KeyCache::default();
    let start = Instant::now();
    let mut verified = 0usize;
    while start.elapsed() < VERIFY_MEASURE {
        let mut batch = BatchVerifier::with_capacity(signed.len());
        for (key, message, signature) in &signed {
            batch.push(*key, "bench-tx", "bench-chain", message, *signature);
        }
        ensure!(batch.verify_all(&mut cache), "a valid batch did not verify");
        verified += signed.len();
    }
    Ok(verified as f64 / start.elapsed().as_secs_f64())
}

/// Registers the merchants at the two banks, each committed before the next is made.
async fn make_merchants(
    layout: &Layout,
    api: Api,
    banks: &[SigningKey; 2],
    run: u128,
) -> Result<Vec<AccountId>> {
    let mut submitter = Submitter::new(api, layout.manifest.chain_id.clone());
    let mut merchants = Vec::new();
    for i in 0..MERCHANTS {
        let key = new_key()?;
        let id = AccountId(run + i as u128);
        let (bank, bank_key) = if i % 2 == 0 {
            (BANK_A, &banks[0])
        } else {
            (BANK_B, &banks[1])
        };
        let receipt = submitter
            .send(
                Party::Institution(institution_id(bank)),
                &[bank_key, &key],
                TxKind::RegisterMerchant {
                    account: id,
                    key: key.public_key(),
                    currency: Currency::CNY,
                    fee_bps: 30,
                    identity: Hash::digest("tally-devnet-bench-merchant", &id.0.to_le_bytes()),
                },
            )
            .await?;
        ensure!(receipt.is_ok(), "merchant {i}: {}", receipt.code);
        merchants.push(id);
    }
    Ok(merchants)
}

/// Load transaction `i`: sender `i % wallets` at its nonce `3 + i / wallets`, so a sender's
/// transactions are submitted in nonce order, `wallets` submissions apart, always to the same
/// validator.
pub(crate) fn load_transaction(
    wallets: &[Wallet],
    merchants: &[AccountId],
    chain_id: &str,
    mix: Mix,
    validators: usize,
    i: u64,
) -> Result<Prepared> {
    let n = wallets.len() as u64;
    ensure!(n > 0 && validators > 0, "no wallet or no validator");
    let sender_index = usize::try_from(i % n)?;
    let w = wallets
        .get(sender_index)
        .ok_or_else(|| anyhow!("no wallet {sender_index}"))?;
    let round = i / n;
    let pay_merchant = match mix {
        Mix::Transfers => false,
        Mix::Payments => true,
        Mix::Mixed => i % 3 == 2,
    };
    let id = TransferId((w.id.0 << 20) | u128::from(round));
    let kind = if pay_merchant {
        let m = usize::try_from(i % merchants.len().max(1) as u64)?;
        TxKind::PayMerchant {
            id,
            merchant: *merchants.get(m).ok_or_else(|| anyhow!("no merchant"))?,
            amount: PAYMENT_FEN,
            reference: tally_contracts::Memo::NONE,
        }
    } else {
        // The next wallet is at the other bank: every transfer is interbank-netted.
        let to = wallets
            .get((sender_index + 1) % wallets.len())
            .ok_or_else(|| anyhow!("no recipient"))?;
        TxKind::Transfer {
            id,
            to: to.id,
            amount: PAYMENT_FEN,
            memo: tally_contracts::Memo::NONE,
        }
    };
    let signed = Transaction {
        chain_id: chain_id.to_string(),
        sender: Party::Account(w.id),
        nonce: 3 + round,
        kind,
    }
    .sign(&[&w.key]);
    Ok(prepare(&signed, sender_index % validators))
}

/// Signs the load on all cores, ahead of submitting it.
async fn sign_load(
    wallets: &[Wallet],
    merchants: &[AccountId],
    chain_id: &str,
    count: u64,
    mix: Mix,
    validators: usize,
) -> Result<Vec<Prepared>> {
    let make = |i: u64| load_transaction(wallets, merchants, chain_id, mix, validators, i);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let per_thread = count.div_ceil(threads);
    let parts: Vec<Result<Vec<Prepared>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let make = &make;
                scope.spawn(move || {
                    let start = t * per_thread;
                    let end = (start + per_thread).min(count);
                    (start..end).map(make).collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a signing thread panicked"))?)
            .collect()
    });
    let mut all = Vec::with_capacity(usize::try_from(count)?);
    for part in parts {
        all.extend(part?);
    }
    Ok(all)
}

/// Submits one setup round and waits until every transaction is in a block and `OK`.
async fn setup_round(
    apis: &[Api],
    walker: &mut BlockWalker,
    txs: Vec<Prepared>,
    in_flight: usize,
    round: u64,
) -> Result<()> {
    let what = ["registration", "card binding", "top-up"]
        .get(usize::try_from(round)?)
        .copied()
        .unwrap_or("setup");
    let mut waiting: HashMap<Hash, ()> = txs.iter().map(|p| (p.hash, ())).collect();
    let txs = Arc::new(txs);
    let shared = Arc::new(Shared::new(txs.len()));
    let submit = tokio::spawn(submit_all(
        apis.to_vec(),
        txs,
        shared.clone(),
        in_flight,
        None,
        Instant::now() + SETUP_COMMIT_WAIT,
        1,
    ));
    let deadline = Instant::now() + SETUP_COMMIT_WAIT;
    while !waiting.is_empty() {
        ensure!(
            Instant::now() < deadline,
            "{} of the wallets' {what}s not committed within {SETUP_COMMIT_WAIT:?}",
            waiting.len()
        );
        for (hash, ok, code) in walker.next_receipts().await? {
            if waiting.remove(&hash).is_some() && !ok {
                bail!("a wallet's {what} was rejected: {code}");
            }
        }
        if submit.is_finished() && shared.refused.load(Ordering::Relaxed) > 0 {
            bail!("the node refused a wallet's {what} at submission");
        }
        tokio::time::sleep(HEIGHT_POLL).await;
    }
    submit.await.context("the setup submitter")?;
    Ok(())
}

/// Counters shared between the submitters and the reader.
struct Shared {
    next: AtomicUsize,
    submitted: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
    /// Per transaction: microseconds since `origin` + 1 when accepted, 0 before.
    accepted_at: Vec<AtomicU64>,
    origin: Instant,
}

impl Shared {
    fn new(count: usize) -> Shared {
        Shared {
            next: AtomicUsize::new(0),
            submitted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            accepted_at: (0..count).map(|_| AtomicU64::new(0)).collect(),
            origin: Instant::now(),
        }
    }
}

/// How many submitters carry the load: the transactions in flight at once stay below half
/// the wallets (so a sender's consecutive nonces are never in flight together), in
/// requests of `batch`, at most [`IN_FLIGHT_MAX`] requests.
fn load_workers(wallets: usize, batch: usize) -> usize {
    (wallets / 2 / batch.max(1)).clamp(1, IN_FLIGHT_MAX)
}

/// `in_flight` workers take the next `batch` transactions in order, wait for the last one's
/// slot at `rate`, and submit them (retrying BUSY briefly), until all are taken or
/// `stop_at`. A batch of 1 posts each transaction alone.
async fn submit_all(
    apis: Vec<Api>,
    txs: Arc<Vec<Prepared>>,
    shared: Arc<Shared>,
    in_flight: usize,
    rate: Option<u64>,
    stop_at: Instant,
    batch: usize,
) {
    let start = Instant::now();
    let batch = batch.max(1);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..in_flight.max(1) {
        let (apis, txs, shared) = (apis.clone(), txs.clone(), shared.clone());
        workers.spawn(async move {
            loop {
                let first = shared.next.fetch_add(batch, Ordering::Relaxed);
                if first >= txs.len() {
                    break;
                }
                let end = first.saturating_add(batch).min(txs.len());
                if let Some(rate) = rate.filter(|r| *r > 0) {
                    let last = end - 1;
                    let slot = start + Duration::from_secs_f64(last as f64 / rate as f64);
                    tokio::time::sleep_until(slot.into()).await;
                }
                if Instant::now() >= stop_at {
                    break;
                }
                if batch == 1 {
                    if let Some(tx) = txs.get(first) {
                        submit_one(&apis, tx, first, &shared, stop_at).await;
                    }
                    continue;
                }
                // One request per validator the chunk's transactions go to.
                let mut by_validator: std::collections::BTreeMap<usize, Vec<usize>> =
                    Default::default();
                for i in first..end {
                    if let Some(tx) = txs.get(i) {
                        by_validator.entry(tx.validator).or_default().push(i);
                    }
                }
                for (validator, indices) in by_validator {
                    match apis.get(validator) {
                        Some(api) => {
                            submit_batch(api, &txs, indices, &shared, stop_at).await;
                        }
                        None => {
                            shared
                                .dropped
                                .fetch_add(indices.len() as u64, Ordering::Relaxed);
                        }
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

/// Marks transaction `i` taken into the pool, by the attempt sent at `sent`.
fn accepted(shared: &Shared, i: usize, sent: Instant) {
    let micros =
        u64::try_from(sent.duration_since(shared.origin).as_micros()).unwrap_or(u64::MAX - 1);
    if let Some(at) = shared.accepted_at.get(i) {
        at.store(micros + 1, Ordering::Relaxed);
    }
    shared.submitted.fetch_add(1, Ordering::Relaxed);
}

/// Posts the transactions `indices` (all for `api`'s validator) as one batch, and again
/// those answered BUSY (all of them on a 503, a 429 or no answer), for
/// [`BUSY_RETRY_MAX`], never past `stop_at` and the drain.
async fn submit_batch(
    api: &Api,
    txs: &[Prepared],
    mut indices: Vec<usize>,
    shared: &Shared,
    stop_at: Instant,
) {
    let retry_until = (Instant::now() + BUSY_RETRY_MAX).min(stop_at + DRAIN_WAIT);
    loop {
        let encoded: Vec<&[u8]> = indices
            .iter()
            .filter_map(|&i| txs.get(i))
            .map(|p| p.bytes.as_ref())
            .collect();
        let sent = Instant::now();
        let answer = api
            .request(
                Method::POST,
                "/v1/transactions/batch",
                &[("content-type", "application/octet-stream")],
                frame(&encoded),
            )
            .await;
        let busy: Vec<usize> = match answer {
            Ok(answer) if answer.status == StatusCode::OK => {
                let Ok(batch) = answer.json::<BatchAnswer>() else {
                    shared
                        .dropped
                        .fetch_add(indices.len() as u64, Ordering::Relaxed);
                    return;
                };
                let mut busy = Vec::new();
                for (k, &i) in indices.iter().enumerate() {
                    match batch.results.get(k) {
                        Some(BatchOutcome::Pending { .. }) => accepted(shared, i, sent),
                        Some(BatchOutcome::Refused { code, .. }) if code == "BUSY" => busy.push(i),
                        Some(BatchOutcome::Refused { .. }) => {
                            shared.refused.fetch_add(1, Ordering::Relaxed);
                        }
                        None => {
                            shared.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                busy
            }
            Ok(answer)
                if answer.status == StatusCode::SERVICE_UNAVAILABLE
                    || answer.status == StatusCode::TOO_MANY_REQUESTS =>
            {
                indices
            }
            Err(_) => indices,
            Ok(_) => {
                shared
                    .refused
                    .fetch_add(indices.len() as u64, Ordering::Relaxed);
                return;
            }
        };
        if busy.is_empty() {
            return;
        }
        if Instant::now() >= retry_until {
            shared
                .dropped
                .fetch_add(busy.len() as u64, Ordering::Relaxed);
            return;
        }
        tokio::time::sleep(BUSY_BACKOFF).await;
        indices = busy;
    }
}

async fn submit_one(apis: &[Api], tx: &Prepared, i: usize, shared: &Shared, stop_at: Instant) {
    match submit_until_answered(apis, tx, stop_at).await {
        Submission::Accepted { sent } => accepted(shared, i, sent),
        Submission::Dropped => {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Submission::Refused => {
            shared.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What became of one submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Submission {
    /// Taken into the pool; `sent` is when the accepted attempt went out.
    Accepted { sent: Instant },
    /// Refused (not BUSY): duplicate, nonce, malformed …
    Refused,
    /// Still BUSY after the retry bound, or not answered.
    Dropped,
}

/// Submits `tx` to its validator, retrying BUSY (and unanswered) attempts for
/// [`BUSY_RETRY_MAX`], never past `stop_at` and the drain.
pub(crate) async fn submit_until_answered(
    apis: &[Api],
    tx: &Prepared,
    stop_at: Instant,
) -> Submission {
    let retry_until = (Instant::now() + BUSY_RETRY_MAX).min(stop_at + DRAIN_WAIT);
    let Some(api) = apis.get(tx.validator) else {
        return Submission::Dropped;
    };
    loop {
        let sent = Instant::now();
        match post(api, tx.bytes.clone()).await {
            Ok(StatusCode::ACCEPTED | StatusCode::OK) => return Submission::Accepted { sent },
            Ok(StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS) | Err(_)
                if Instant::now() < retry_until =>
            {
                tokio::time::sleep(BUSY_BACKOFF).await;
            }
            Ok(StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS) | Err(_) => {
                return Submission::Dropped;
            }
            Ok(_) => return Submission::Refused,
        }
    }
}

/// `POST /v1/transactions` (canonical bytes, no wait) over the API's kept-alive TLS
/// connections; the answer's status.
async fn post(api: &Api, body: Bytes) -> Result<StatusCode> {
    let answer = api
        .request(
            Method::POST,
            "/v1/transactions",
            &[("content-type", "application/octet-stream")],
            body.to_vec(),
        )
        .await?;
    Ok(answer.status)
}

/// What the load phase saw.
struct Outcome {
    submitted: u64,
    refused: u64,
    dropped: u64,
    committed: u64,
    rejected: u64,
    latencies_ms: Vec<f64>,
    window: Duration,
}

/// Submits the load while walking the blocks, until the duration plus a bounded drain.
async fn drive(
    apis: &[Api],
    walker: &mut BlockWalker,
    load: Arc<Vec<Prepared>>,
    index: HashMap<Hash, usize>,
    options: &Options,
    in_flight: usize,
) -> Result<Outcome> {
    let shared = Arc::new(Shared::new(load.len()));
    let start = shared.origin;
    let stop_at = start + Duration::from_secs(options.duration_s);
    let submit = tokio::spawn(submit_all(
        apis.to_vec(),
        load.clone(),
        shared.clone(),
        in_flight,
        options.rate,
        stop_at,
        options.batch,
    ));
    let bar = progress_bar(load.len() as u64);
    let mut seen = vec![false; load.len()];
    let (mut committed, mut rejected) = (0u64, 0u64);
    let mut latencies_ms = Vec::new();
    let mut last_commit = start;
    // Committed counts a second apart, for the live rate.
    let mut recent: std::collections::VecDeque<(Instant, u64)> = Default::default();
    let mut submit_done_at: Option<Instant> = None;
    // The hard bound: the load, a retrying submission's bound, and the drain.
    let hard_stop = stop_at + BUSY_RETRY_MAX + REQUEST_TIMEOUT + DRAIN_WAIT;
    loop {
        let now = Instant::now();
        if submit_done_at.is_none() && submit.is_finished() {
            submit_done_at = Some(now);
        }
        let submitted = shared.submitted.load(Ordering::Relaxed);
        if let Some(done) = submit_done_at
            && (committed + rejected >= submitted || now > done + DRAIN_WAIT)
        {
            break;
        }
        if now > hard_stop {
            break;
        }
        for (hash, ok, _code) in walker.next_receipts().await? {
            let Some(&i) = index.get(&hash) else { continue };
            let Some(flag) = seen.get_mut(i) else {
                continue;
            };
            if *flag {
                continue;
            }
            *flag = true;
            let seen_at = Instant::now();
            if ok {
                committed += 1;
                last_commit = seen_at;
            } else {
                rejected += 1;
            }
            let accepted = shared
                .accepted_at
                .get(i)
                .map_or(0, |a| a.load(Ordering::Relaxed));
            if accepted > 0 {
                let at = start + Duration::from_micros(accepted - 1);
                latencies_ms.push(seen_at.saturating_duration_since(at).as_secs_f64() * 1e3);
            }
        }
        recent.push_back((Instant::now(), committed));
        while recent
            .front()
            .is_some_and(|(t, _)| t.elapsed() > Duration::from_secs(1))
        {
            recent.pop_front();
        }
        let live = match recent.front() {
            Some((t, c)) if t.elapsed() > Duration::from_millis(100) => {
                (committed - c) as f64 / t.elapsed().as_secs_f64()
            }
            _ => 0.0,
        };
        bar.set_position(committed + rejected);
        bar.set_message(format!(
            "{live:.0} tx/s committed, {} submitted",
            shared.submitted.load(Ordering::Relaxed)
        ));
        tokio::time::sleep(HEIGHT_POLL).await;
    }
    bar.finish_and_clear();
    // Submitters past the bound stop on their own at `stop_at`; wait for them briefly.
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, submit).await;
    Ok(Outcome {
        submitted: shared.submitted.load(Ordering::Relaxed),
        refused: shared.refused.load(Ordering::Relaxed),
        dropped: shared.dropped.load(Ordering::Relaxed),
        committed,
        rejected,
        latencies_ms,
        window: last_commit.saturating_duration_since(start),
    })
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} in blocks  {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The value at fraction `q` of sorted `values` (nearest rank); 0 when empty.
pub(crate) fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len());
    values.get(rank - 1).copied().unwrap_or(0.0)
}

/// A process's peak resident set (`VmHWM`), MiB.
fn peak_memory_mib(pid: u32) -> Option<f64> {
    Some(proc_status_kib(pid, "VmHWM:")? as f64 / 1024.0)
}

/// A KiB figure of a process's `/proc/PID/status` (`VmRSS:`, `VmHWM:` …); `None` when the
/// process is gone or the line is not there.
pub(crate) fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reads each committed block once, in height order, from one node.
pub(crate) struct BlockWalker {
    api: Api,
    /// The last height read.
    height: u64,
}

#[derive(Debug, Deserialize)]
struct HealthView {
    height: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct BlockView {
    results: ResultsView,
}

#[derive(Debug, Deserialize)]
struct ResultsView {
    receipts: Vec<ReceiptView>,
}

#[derive(Debug, Deserialize)]
struct ReceiptView {
    tx: Hash,
    result: Result<(), serde_json::Value>,
}

impl BlockWalker {
    /// Starts at the node's current height: only blocks after it are read.
    async fn start(api: Api) -> Result<BlockWalker> {
        let health: HealthView = api.get_json("/health").await?;
        Ok(BlockWalker {
            api,
            height: health.height.unwrap_or(0),
        })
    }

    /// The receipts of the blocks committed since the last call: (tx hash, OK?, code). A
    /// failed read is an error only when nothing was read before it.
    pub(crate) async fn next_receipts(&mut self) -> Result<Vec<(Hash, bool, String)>> {
        let health: HealthView = self.api.get_json("/health").await?;
        let head = health.height.unwrap_or(0);
        let mut out = Vec::new();
        while self.height < head {
            let next = self.height + 1;
            let block: BlockView = match self.api.get_json(&format!("/v1/blocks/{next}")).await {
                Ok(block) => block,
                // The blocks read so far are passed on, not lost with the error: the height
                // stays at the last one read, and the next call retries from there.
                Err(_) if !out.is_empty() => break,
                Err(e) => return Err(e.into()),
            };
            for receipt in block.results.receipts {
                let code = match &receipt.result {
                    Ok(()) => "OK".to_string(),
                    Err(e) => e.to_string(),
                };
                out.push((receipt.tx, receipt.result.is_ok(), code));
            }
            self.height = next;
        }
        Ok(out)
    }
}
