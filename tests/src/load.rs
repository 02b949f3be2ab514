//! Load for the fault suites, through the public API: funded wallets, a steady stream of
//! wallet-to-wallet transfers that survives nodes going away (each transfer goes to the
//! next validator; an unanswered one is simply not counted as committed), and a raw flood
//! of submissions that does not wait for anything.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use hyper::Method;
use hyper::body::Bytes;
use tally_contracts::{
    AccountId, CardToken, Currency, Party, SignedTransaction, Transaction, TransferId, TxKind,
    encoding,
};
use tally_crypto::{Hash, SigningKey};
use tally_devnet::layout::{BANK_A, BANK_B, InstitutionSpec, Layout, institution_id};
use tally_sdk::{Api, ClientError, Submitter};

/// Each wallet's top-up, fen: the tier-1 single-payment limit.
pub const TOP_UP_FEN: u64 = 500_000;
/// One load transfer, fen: a wallet makes thousands before it runs dry or hits a limit.
const TRANSFER_FEN: u64 = 1;
/// After a failed submission, how long a load worker waits before the next.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long stopping the load waits for submissions in flight (each is bounded by the
/// client's own timeouts, 30 s at most).
const STOP_WAIT: Duration = Duration::from_secs(40);
/// One raw submission's bound.
const POST_TIMEOUT: Duration = Duration::from_secs(15);

/// A registered, card-bound, topped-up consumer wallet.
#[derive(Debug, Clone)]
pub struct Wallet {
    pub id: AccountId,
    pub key: SigningKey,
    pub bank: InstitutionSpec,
    pub card: CardToken,
}

/// A deterministic key for test accounts: the same `(tag, i)` gives the same key.
pub fn test_key(tag: &str, i: u64) -> SigningKey {
    SigningKey::from_seed(Hash::digest(tag, &i.to_le_bytes()).0)
}

/// Registers, card-binds and tops up `count` wallets (ids from `first_id`), alternately at
/// Bank A and Bank B, each round committed before the next. Submissions are spread over
/// `apis`.
pub async fn make_wallets(
    layout: &Layout,
    apis: &[Api],
    first_id: u128,
    count: usize,
) -> Result<Vec<Wallet>> {
    ensure!(!apis.is_empty(), "no validator to submit to");
    let chain_id = layout.manifest.chain_id.clone();
    let banks = [
        (BANK_A, layout.institution_key(BANK_A)?),
        (BANK_B, layout.institution_key(BANK_B)?),
    ];
    let wallets: Vec<Wallet> = (0..count)
        .map(|i| {
            let id = AccountId(first_id + i as u128);
            let bank = if i % 2 == 0 { BANK_A } else { BANK_B };
            Wallet {
                id,
                key: test_key("tally-faults-wallet", u64::try_from(id.0).unwrap_or(0)),
                bank,
                card: CardToken(Hash::digest("tally-faults-card", &id.0.to_le_bytes()).0),
            }
        })
        .collect();
    for round in 0..3u64 {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, w) in wallets.iter().enumerate() {
            let bank_key = banks
                .iter()
                .find(|(b, _)| b.id == w.bank.id)
                .map(|(_, k)| k.clone())
                .ok_or_else(|| anyhow!("no bank key"))?;
            let kind = match round {
                0 => TxKind::RegisterAccount {
                    account: w.id,
                    key: w.key.public_key(),
                    currency: Currency::CNY,
                    institution: institution_id(w.bank),
                    tier: 1,
                    identity: Hash::digest("tally-faults-identity", &w.id.0.to_le_bytes()),
                },
                1 => TxKind::BindCard {
                    card: w.card,
                    bank: institution_id(w.bank),
                },
                _ => TxKind::TopUp {
                    id: TransferId(w.id.0),
                    card: w.card,
                    amount: TOP_UP_FEN,
                },
            };
            let signed = Transaction {
                chain_id: chain_id.clone(),
                sender: Party::Account(w.id),
                nonce: round,
                kind,
            }
            .sign(&[&w.key, &bank_key]);
            let api = apis
                .get(i % apis.len())
                .cloned()
                .ok_or_else(|| anyhow!("no api"))?;
            tasks.spawn(async move { api.submit(&signed).await });
        }
        while let Some(result) = tasks.join_next().await {
            let receipt = result.context("a setup task")??;
            ensure!(
                receipt.is_ok(),
                "wallet setup round {round}: {}",
                receipt.code
            );
        }
    }
    Ok(wallets)
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Transactions the API answered as committed and applied (`OK`).
    pub committed: Vec<Hash>,
    /// Committed, but refused by the ledger.
    pub rejected: usize,
    /// Submissions that failed (node gone, refused, no answer in time).
    pub failed: usize,
    /// A few of the failures, for the report.
    pub failure_samples: Vec<String>,
}

/// A steady load of transfers: one worker per sending wallet, each transfer submitted to the
/// next validator in turn and awaited until committed.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicUsize>,
    tasks: tokio::task::JoinSet<LoadOutcome>,
}

impl Load {
    /// Starts a worker for each wallet, sending to the next wallet of the list.
    pub fn start(apis: Vec<Api>, chain_id: &str, wallets: &[Wallet]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        let count = wallets.len();
        for (s, wallet) in wallets.iter().enumerate() {
            let Some(to) = wallets.get((s + 1) % count).map(|w| w.id) else {
                continue;
            };
            let (apis, wallet, stop, counter) = (
                apis.clone(),
                wallet.clone(),
                stop.clone(),
                committed.clone(),
            );
            let chain_id = chain_id.to_string();
            tasks.spawn(async move {
                transfer_worker(apis, chain_id, wallet, to, s, stop, counter).await
            });
        }
        Load {
            stop,
            committed,
            tasks,
        }
    }

    /// Transfers committed so far.
    pub fn committed(&self) -> usize {
        self.committed.load(Ordering::Relaxed)
    }

    /// Waits until `more` transfers beyond `now` are committed, or `deadline`.
    pub async fn wait_committed(&self, at_least: usize, deadline: Instant) -> Result<()> {
        while self.committed() < at_least {
            if Instant::now() > deadline {
                bail!(
                    "the load committed {} transfers, not {at_least}, in time",
                    self.committed()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Stops the workers (each after its submission in flight) and gathers what they saw.
    pub async fn stop(mut self) -> LoadOutcome {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = LoadOutcome::default();
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(Some(Ok(outcome))) => {
                    all.committed.extend(outcome.committed);
                    all.rejected += outcome.rejected;
                    all.failed += outcome.failed;
                    if all.failure_samples.len() < 5 {
                        all.failure_samples.extend(outcome.failure_samples);
                    }
                }
                Ok(Some(Err(_))) => all.failed += 1,
                Ok(None) => break,
                Err(_) => {
                    self.tasks.abort_all();
                    break;
                }
            }
        }
        all
    }
}

async fn transfer_worker(
    apis: Vec<Api>,
    chain_id: String,
    wallet: Wallet,
    to: AccountId,
    start: usize,
    stop: Arc<AtomicBool>,
    counter: Arc<AtomicUsize>,
) -> LoadOutcome {
    let mut outcome = LoadOutcome::default();
    let Some(first) = apis.first().cloned() else {
        return outcome;
    };
    let mut submitter = Submitter::new(first, chain_id);
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let Some(api) = apis.get((start + n as usize) % apis.len()).cloned() else {
            break;
        };
        submitter.api = api;
        n += 1;
        let id = TransferId((wallet.id.0 << 32) | u128::from(n));
        let kind = TxKind::Transfer {
            id,
            to,
            amount: TRANSFER_FEN,
            memo: tally_contracts::Memo::NONE,
        };
        match submitter
            .send(Party::Account(wallet.id), &[&wallet.key], kind)
            .await
        {
            Ok(receipt) if receipt.is_ok() => {
                outcome.committed.push(receipt.hash);
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => outcome.rejected += 1,
            Err(e) => {
                outcome.failed += 1;
                if outcome.failure_samples.len() < 2 {
                    outcome.failure_samples.push(format!("{e:#}"));
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
    outcome
}

/// One honest transfer, submitted and awaited; answered BUSY or 429 it is tried again
/// after a pause until `deadline`. Answers the receipt's hash and how long it took.
pub async fn honest_transfer(
    submitter: &mut Submitter,
    wallet: &Wallet,
    to: AccountId,
    id: TransferId,
    deadline: Instant,
) -> Result<(Hash, Duration)> {
    let start = Instant::now();
    loop {
        let kind = TxKind::Transfer {
            id,
            to,
            amount: TRANSFER_FEN,
            memo: tally_contracts::Memo::NONE,
        };
        match submitter
            .send(Party::Account(wallet.id), &[&wallet.key], kind)
            .await
        {
            Ok(receipt) if receipt.is_ok() => return Ok((receipt.hash, start.elapsed())),
            Ok(receipt) => bail!("an honest transfer was rejected: {}", receipt.code),
            Err(e) => {
                let busy = matches!(
                    e,
                    ClientError::Api {
                        status: 503 | 429,
                        ..
                    }
                );
                if !busy || Instant::now() > deadline {
                    bail!(
                        "an honest transfer was not committed ({:?}): {e}",
                        start.elapsed()
                    );
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// Fresh accounts' registrations, co-signed by Bank A: valid and independent of each
/// other (each sender's first nonce), so each one the mempool takes can commit.
pub fn flood_registrations(
    layout: &Layout,
    first_id: u128,
    count: usize,
) -> Result<Vec<SignedTransaction>> {
    let bank = layout.institution_key(BANK_A)?;
    let chain_id = layout.manifest.chain_id.clone();
    Ok((0..count)
        .map(|i| {
            let id = AccountId(first_id + i as u128);
            let key = test_key("tally-faults-flood", u64::try_from(id.0).unwrap_or(0));
            Transaction {
                chain_id: chain_id.clone(),
                sender: Party::Account(id),
                nonce: 0,
                kind: TxKind::RegisterAccount {
                    account: id,
                    key: key.public_key(),
                    currency: Currency::CNY,
                    institution: institution_id(BANK_A),
                    tier: 0,
                    identity: Hash::digest("tally-faults-flood-identity", &id.0.to_le_bytes()),
                },
            }
            .sign(&[&key, &bank])
        })
        .collect())
}

/// What a flood's submissions were answered.
#[derive(Debug, Default)]
pub struct FloodOutcome {
    pub sent: usize,
    /// Taken into the mempool (202).
    pub accepted: usize,
    /// Per refusal: "HTTP status CODE" and how many.
    pub refused: BTreeMap<String, usize>,
    /// No answer (connection refused or reset, timeout).
    pub unanswered: usize,
    pub elapsed: Duration,
}

/// Submits every transaction once to `api`'s node without waiting for commits, from
/// `connections` submitters over its kept-alive TLS connections, as fast as the node answers.
pub async fn flood(api: &Api, txs: &[SignedTransaction], connections: usize) -> FloodOutcome {
    let api = api.clone();
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        txs.iter()
            .map(|t| Bytes::from(encoding::encode(t)))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections.max(1) {
        let (bodies, next, api) = (bodies.clone(), next.clone(), api.clone());
        tasks.spawn(async move {
            let mut outcome = FloodOutcome::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                outcome.sent += 1;
                match post(&api, body.clone()).await {
                    Ok((202 | 200, _)) => outcome.accepted += 1,
                    Ok((status, code)) => {
                        *outcome
                            .refused
                            .entry(format!("HTTP {status} {code}"))
                            .or_default() += 1;
                    }
                    Err(_) => outcome.unanswered += 1,
                }
            }
            outcome
        });
    }
    let mut all = FloodOutcome::default();
    while let Some(result) = tasks.join_next().await {
        let Ok(part) = result else {
            all.unanswered += 1;
            continue;
        };
        all.sent += part.sent;
        all.accepted += part.accepted;
        all.unanswered += part.unanswered;
        for (k, v) in part.refused {
            *all.refused.entry(k).or_default() += v;
        }
    }
    all.elapsed = start.elapsed();
    all
}

/// `POST /v1/transactions` (canonical bytes, no wait): the status and the error code, if
/// any.
async fn post(api: &Api, body: Bytes) -> Result<(u16, String)> {
    let exchange = api.request(
        Method::POST,
        "/v1/transactions",
        &[("content-type", "application/octet-stream")],
        body.to_vec(),
    );
    let answer = tokio::time::timeout(POST_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow!("no answer from {} in time", api.address))??;
    let code = serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_string))
        .unwrap_or_default();
    Ok((answer.status.as_u16(), code))
}
