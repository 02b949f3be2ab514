//! What the fault suites check after each fault, through the nodes' public API only:
//!
//! - [`check_agreement`]: every running node holds the same block, certificate target and
//!   state roots at every height they have in common, and no block carries equivocation
//!   evidence (an honest network never makes any).
//! - [`check_committed_everywhere`]: each transaction the API answered as committed is
//!   committed on every running node, at the same height and index.
//! - [`check_ledger`]: the ledger invariants, from the audit node: per currency the posted
//!   balances of all accounts sum to zero and pending debits equal pending credits; no
//!   account below its floor and no customer account negative; every committed transaction
//!   appears once in the chain, every transfer id moves money once, and each customer
//!   account's balance is exactly what its committed top-ups and transfers make it.
//!
//! The ledger is read account by account: every institutional account the genesis can hold
//! (derived ids) and every customer account the chain's events registered. The regulator's
//! audit reports are then checked against it: open net positions sum to zero per currency,
//! and the first customer accounts' statements from height 1 carry each posting once to the
//! balance the ledger holds.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde::Deserialize;
use tally_consensus::{BlockHash, CommitCertificate, Evidence};
use tally_contracts::{AccountId, AccountKind, Currency, Event, InstitutionId, SignedTransaction};
use tally_crypto::Hash;
use tally_devnet::layout::INSTITUTIONS;
use tally_node::block::{BlockHeader, BlockResults};
use tally_sdk::Api;
use tally_wire::ledger::AccountView;
use tally_wire::transaction::TxView;

use crate::network::TestNet;

/// `/v1/blocks/{height}`.
#[derive(Debug, Clone, Deserialize)]
pub struct BlockView {
    pub height: u64,
    pub hash: BlockHash,
    pub header: BlockHeader,
    pub txs: Vec<SignedTransaction>,
    pub evidence: Vec<Evidence>,
    pub certificate: CommitCertificate,
    pub results: BlockResults,
}

/// What [`check_agreement`] compared.
#[derive(Debug, Clone, Copy)]
pub struct Agreement {
    /// Heights compared: 1 to this, on every running node.
    pub common_height: u64,
    pub nodes: usize,
}

/// The blocks `from..=to` of one node.
pub async fn blocks(api: Api, from: u64, to: u64) -> Result<Vec<BlockView>> {
    let mut out = Vec::new();
    for height in from..=to {
        let block: BlockView = api
            .get_json(&format!("/v1/blocks/{height}"))
            .await
            .with_context(|| format!("block {height} from {}", api.address))?;
        ensure!(
            block.height == height,
            "asked for block {height}, got {}",
            block.height
        );
        out.push(block);
    }
    Ok(out)
}

/// Every running node agrees with the first on every block both hold: hash, the header's
/// state root (before the block), the results' state root (after it), and the certificate
/// names that block. No block holds evidence.
pub async fn check_agreement(net: &TestNet) -> Result<Agreement> {
    Ok(check_agreement_with_offender(net, None).await?.0)
}

/// As [`check_agreement`], but evidence against `offender` (a validator index) is expected
/// and answered, with its height; evidence or an equivocation logged against any other
/// validator fails.
pub async fn check_agreement_with_offender(
    net: &TestNet,
    offender: Option<u32>,
) -> Result<(Agreement, Vec<(u64, Evidence)>)> {
    let running = net.running();
    let mut heads = Vec::new();
    for &i in &running {
        heads.push((i, net.height(i).await?));
    }
    let common = heads.iter().map(|(_, h)| *h).min().unwrap_or(0);
    ensure!(common >= 1, "a running node has no block: {heads:?}");
    let Some(&first) = running.first() else {
        bail!("no node is running");
    };
    let reference = blocks(net.api(first)?, 1, common).await?;
    let mut evidence = Vec::new();
    for block in &reference {
        ensure!(
            block.certificate.block == block.hash,
            "{}: the certificate at {} is for another block",
            net.name(first),
            block.height
        );
        for e in &block.evidence {
            ensure!(
                Some(e.validator().0) == offender,
                "block {} carries evidence against validator {}: {e:?}",
                block.height,
                e.validator().0
            );
            evidence.push((block.height, e.clone()));
        }
    }
    for &i in running.iter().skip(1) {
        let theirs = blocks(net.api(i)?, 1, common).await?;
        for (a, b) in reference.iter().zip(&theirs) {
            ensure!(
                a.hash == b.hash,
                "fork at height {}: {} has {:?}, {} has {:?}",
                a.height,
                net.name(first),
                a.hash,
                net.name(i),
                b.hash
            );
            ensure!(
                a.header.state_root == b.header.state_root
                    && a.results.state_root == b.results.state_root,
                "state roots differ at height {} between {} and {}",
                a.height,
                net.name(first),
                net.name(i)
            );
            ensure!(
                b.certificate.block == b.hash,
                "{}: the certificate at {} is for another block",
                net.name(i),
                b.height
            );
        }
    }
    // A node's own log names every equivocation it saw, even one not yet in a block.
    let expected = offender.map(|o| format!("validator={o} "));
    for i in 0..net.len() {
        let log = net.log(i);
        let unexpected = log.lines().find(|l| {
            l.contains("equivocation") && expected.as_ref().is_none_or(|e| !l.contains(e))
        });
        if let Some(line) = unexpected {
            bail!("{} saw an equivocation: {line}", net.name(i));
        }
    }
    Ok((
        Agreement {
            common_height: common,
            nodes: running.len(),
        },
        evidence,
    ))
}

/// Each of `hashes` is committed on every running node, at one height and index.
pub async fn check_committed_everywhere(net: &TestNet, hashes: &[Hash]) -> Result<()> {
    let running = net.running();
    let mut apis = Vec::new();
    for &i in &running {
        apis.push((net.name(i), net.api(i)?));
    }
    // A few lookups at a time: each is one loopback request.
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in hashes.chunks(hashes.len().div_ceil(8).max(1)) {
        let chunk = chunk.to_vec();
        let apis = apis.clone();
        tasks.spawn(async move {
            for hash in chunk {
                let mut place: Option<(u64, u32)> = None;
                for (name, api) in &apis {
                    let status: TxView = api
                        .get_json(&format!("/v1/transactions/{hash}"))
                        .await
                        .with_context(|| format!("{name}: transaction {hash}"))?;
                    let TxView::Committed { height, index, .. } = status else {
                        bail!(
                            "{name}: transaction {hash} answered committed earlier is {status:?}"
                        );
                    };
                    let here = (height, index);
                    match place {
                        None => place = Some(here),
                        Some(p) => ensure!(
                            p == here,
                            "{name}: transaction {hash} is at {here:?}, elsewhere at {p:?}"
                        ),
                    }
                }
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.context("a lookup task")??;
    }
    Ok(())
}

/// What [`check_ledger`] saw.
#[derive(Debug, Clone, Default)]
pub struct LedgerReport {
    /// The height the ledger was read at.
    pub height: u64,
    pub accounts: usize,
    pub customer_accounts: usize,
    /// Transactions in the chain, and those the ledger applied (`OK`).
    pub txs: usize,
    pub applied: usize,
    /// Per currency, the money in customer accounts.
    pub customer_money: BTreeMap<Currency, i128>,
    /// Customer accounts whose audit statement was checked against the ledger.
    pub statements: usize,
}

const CURRENCIES: [Currency; 3] = [Currency::CNY, Currency::HKD, Currency::USD];
const INSTITUTIONAL_KINDS: [AccountKind; 4] = [
    AccountKind::BankSettlement,
    AccountKind::BankIssuance,
    AccountKind::FxLiquidity,
    AccountKind::Fee,
];
/// Tries to read the ledger while no block changes it.
const QUIET_READ_TRIES: usize = 5;

/// The money movements the chain's events make, per customer account, and the registered
/// customer accounts. `None` for the balances when an event moves money in a way this
/// check does not follow (the fault suites make only top-ups and transfers).
struct Replay {
    customers: BTreeSet<u128>,
    balances: Option<BTreeMap<u128, i128>>,
    txs: usize,
    applied: usize,
}

fn replay(chain: &[BlockView]) -> Result<Replay> {
    let mut hashes = BTreeSet::new();
    let mut transfer_ids = BTreeSet::new();
    let mut customers = BTreeSet::new();
    let mut balances: Option<BTreeMap<u128, i128>> = Some(BTreeMap::new());
    let (mut txs, mut applied) = (0, 0);
    for block in chain {
        ensure!(
            block.results.receipts.len() == block.txs.len(),
            "block {}: {} receipts for {} transactions",
            block.height,
            block.results.receipts.len(),
            block.txs.len()
        );
        if !block.results.expired.is_empty() {
            balances = None;
        }
        for (tx, receipt) in block.txs.iter().zip(&block.results.receipts) {
            txs += 1;
            ensure!(
                tx.hash() == receipt.tx,
                "block {}: a receipt for another transaction",
                block.height
            );
            ensure!(
                hashes.insert(receipt.tx),
                "transaction {} is in the chain twice (again at {})",
                receipt.tx,
                block.height
            );
            if receipt.result.is_err() {
                ensure!(
                    receipt.events.is_empty(),
                    "a rejected transaction has events"
                );
                continue;
            }
            applied += 1;
            for event in &receipt.events {
                let mut moved = |id: tally_contracts::TransferId,
                                 changes: &[(AccountId, i128)]|
                 -> Result<()> {
                    ensure!(
                        transfer_ids.insert(id),
                        "transfer id {id:?} moved money twice (again at {})",
                        block.height
                    );
                    if let Some(b) = balances.as_mut() {
                        for (account, delta) in changes {
                            if account.is_customer_id() {
                                *b.entry(account.0).or_default() += delta;
                            }
                        }
                    }
                    Ok(())
                };
                match event {
                    Event::AccountRegistered { account, .. } => {
                        customers.insert(account.0);
                    }
                    Event::MerchantRegistered { merchant, .. } => {
                        customers.insert(merchant.0);
                    }
                    Event::BillerRegistered { biller, .. } => {
                        customers.insert(biller.0);
                    }
                    Event::ToppedUp {
                        id,
                        account,
                        amount,
                        ..
                    } => moved(*id, &[(*account, i128::from(*amount))])?,
                    Event::Withdrawn {
                        id,
                        account,
                        amount,
                        ..
                    } => moved(*id, &[(*account, -i128::from(*amount))])?,
                    Event::TransferReceived {
                        id,
                        from,
                        to,
                        amount,
                        ..
                    } => moved(
                        *id,
                        &[(*from, -i128::from(*amount)), (*to, i128::from(*amount))],
                    )?,
                    Event::CardBound { .. }
                    | Event::CardUnbound { .. }
                    | Event::KeyRotated { .. }
                    | Event::GovernanceApplied { .. } => {}
                    // Anything else may move money this replay does not follow.
                    _ => balances = None,
                }
            }
        }
    }
    Ok(Replay {
        customers,
        balances,
        txs,
        applied,
    })
}

/// The ledger invariants, read from `audit` (an audit node: it re-executed every block and
/// checked every state root the validators signed). The network should be quiet (no load):
/// the accounts are read one by one, and the check retries while blocks with transactions
/// keep coming.
pub async fn check_ledger(audit: Api) -> Result<LedgerReport> {
    let health: crate::network::Health = audit.get_json("/health").await?;
    ensure!(
        health.status == "ok",
        "the audit node is not sound: {health:?}"
    );
    let metrics = audit.get("/metrics").await?;
    let metrics = String::from_utf8_lossy(&metrics.body).to_string();
    ensure!(
        metrics.lines().any(|l| l.trim() == "tally_audit_alarm 0"),
        "the audit node's alarm is raised"
    );
    let mut head = health.height.unwrap_or(0);
    let mut chain = blocks(audit.clone(), 1, head).await?;
    for _ in 0..QUIET_READ_TRIES {
        let replay = replay(&chain)?;
        let (accounts, read_height) = read_accounts(audit.clone(), &replay.customers).await?;
        // Blocks committed while reading: harmless if they changed nothing.
        let later = blocks(audit.clone(), head + 1, read_height).await?;
        let quiet = later
            .iter()
            .all(|b| b.txs.is_empty() && b.results.expired.is_empty());
        chain.extend(later);
        head = read_height.max(head);
        if !quiet {
            continue;
        }
        let mut report = judge(&accounts, &replay, head)?;
        report.statements = check_audit_reports(audit.clone(), &accounts, head).await?;
        return Ok(report);
    }
    bail!("the ledger kept changing while it was read ({QUIET_READ_TRIES} tries)")
}

/// Every institutional account the genesis's institutions may hold, and the customers':
/// the accounts found, and the highest height a read was valid at.
async fn read_accounts(audit: Api, customers: &BTreeSet<u128>) -> Result<(Vec<AccountView>, u64)> {
    let mut ids: Vec<AccountId> = Vec::new();
    for institution in INSTITUTIONS {
        for kind in INSTITUTIONAL_KINDS {
            for currency in CURRENCIES {
                ids.push(AccountId::institutional(
                    InstitutionId(institution.id),
                    kind,
                    currency,
                ));
            }
        }
    }
    ids.extend(customers.iter().map(|c| AccountId(*c)));
    let mut accounts = Vec::new();
    let mut top = 0;
    for id in ids {
        let answer = audit.get(&format!("/v1/accounts/{}", id.0)).await?;
        if answer.status.as_u16() == 404 {
            ensure!(
                !id.is_customer_id(),
                "customer account {} was registered but is not found",
                id.0
            );
            continue;
        }
        let view: AccountView = answer.json()?;
        top = top.max(view.height);
        accounts.push(view);
    }
    Ok((accounts, top))
}

fn judge(accounts: &[AccountView], replay: &Replay, height: u64) -> Result<LedgerReport> {
    let mut posted: BTreeMap<Currency, i128> = BTreeMap::new();
    let mut pending: BTreeMap<Currency, (i128, i128)> = BTreeMap::new();
    let mut customer_money: BTreeMap<Currency, i128> = BTreeMap::new();
    let mut customer_accounts = 0;
    for view in accounts {
        let a = &view.account;
        ensure!(
            view.balance == a.balance() && view.available == a.available(),
            "account {}: the API's balance figures disagree with its totals",
            a.id.0
        );
        *posted.entry(a.currency).or_default() += a.balance();
        let p = pending.entry(a.currency).or_default();
        p.0 += i128::try_from(a.debits_pending)?;
        p.1 += i128::try_from(a.credits_pending)?;
        ensure!(
            a.available() >= a.floor(),
            "account {} is below its floor: available {}, floor {}",
            a.id.0,
            a.available(),
            a.floor()
        );
        if a.id.is_customer_id() {
            customer_accounts += 1;
            ensure!(
                a.balance() >= 0 && a.available() >= 0,
                "customer account {} is negative: {}",
                a.id.0,
                a.balance()
            );
            *customer_money.entry(a.currency).or_default() += a.balance();
            if let Some(expected) = replay.balances.as_ref() {
                let want = expected.get(&a.id.0).copied().unwrap_or(0);
                ensure!(
                    a.balance() == want,
                    "account {}: balance {} but its committed top-ups and transfers make {want}",
                    a.id.0,
                    a.balance()
                );
            }
        }
    }
    for (currency, sum) in &posted {
        ensure!(
            *sum == 0,
            "{currency}: posted balances sum to {sum}, not zero"
        );
    }
    for (currency, (debits, credits)) in &pending {
        ensure!(
            debits == credits,
            "{currency}: pending debits {debits} differ from pending credits {credits}"
        );
    }
    ensure!(
        customer_accounts == replay.customers.len(),
        "{} customer accounts registered, {customer_accounts} read",
        replay.customers.len()
    );
    Ok(LedgerReport {
        height,
        accounts: accounts.len(),
        customer_accounts,
        txs: replay.txs,
        applied: replay.applied,
        customer_money,
        statements: 0,
    })
}

/// Statements checked per ledger check: the first customer accounts (the test's wallets).
const STATEMENTS_CHECKED_MAX: usize = 16;

/// How long a report read waits for the audit node's scans to have room (it answers 429
/// while a few scans run). A scan here takes well under a second even on a loaded 2-core
/// machine; 60 s is only reached when the node never frees a slot, which is a failure.
const AUDIT_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `GET path` as JSON, retried while the audit scans are busy (429), up to [`AUDIT_BUSY_WAIT`].
async fn audit_json(audit: Api, path: &str) -> Result<serde_json::Value> {
    let deadline = std::time::Instant::now() + AUDIT_BUSY_WAIT;
    loop {
        let answer = audit.get(path).await?;
        if answer.status.as_u16() != 429 {
            return answer.json().with_context(|| format!("GET {path}"));
        }
        if std::time::Instant::now() > deadline {
            bail!("GET {path}: the audit scans stayed busy for {AUDIT_BUSY_WAIT:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn int(value: &serde_json::Value, what: &str) -> Result<i128> {
    value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from))
        .ok_or_else(|| anyhow!("{what} is not an integer: {value}"))
}

/// The regulator's audit reports agree with the ledger: open net positions sum to zero per
/// currency; each checked customer account's statement from height 1 opens at zero, carries
/// every posting once into the next balance, and closes at the account's balance.
async fn check_audit_reports(audit: Api, accounts: &[AccountView], head: u64) -> Result<usize> {
    let positions = audit_json(
        audit.clone(),
        &format!("/v1/audit/net-positions?from=1&to={head}"),
    )
    .await?;
    let mut net: BTreeMap<String, i128> = BTreeMap::new();
    for p in field(field(&positions, "open"), "positions")
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let currency = field(&p, "currency")
            .as_str()
            .unwrap_or_default()
            .to_string();
        *net.entry(currency).or_default() += int(field(&p, "net"), "a net position")?;
    }
    for (currency, sum) in &net {
        ensure!(
            *sum == 0,
            "{currency}: open net positions sum to {sum}, not zero"
        );
    }
    let mut checked = 0;
    for view in accounts
        .iter()
        .filter(|v| v.account.id.is_customer_id())
        .take(STATEMENTS_CHECKED_MAX)
    {
        let id = view.account.id.0;
        let statement = audit_json(
            audit.clone(),
            &format!("/v1/audit/accounts/{id}/statement?from=1&to={head}"),
        )
        .await?;
        let opening = int(field(&statement, "opening_balance"), "opening_balance")?;
        ensure!(
            opening == 0,
            "account {id}: its statement opens at {opening}, not 0"
        );
        let mut balance = opening;
        let mut seen = BTreeSet::new();
        for entry in field(&statement, "entries")
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let place = (
                field(&entry, "height").as_u64(),
                field(&entry, "index").as_u64(),
            );
            ensure!(
                seen.insert(place),
                "account {id}: a transaction posted twice in its statement at {place:?}"
            );
            balance +=
                int(field(&entry, "credit"), "credit")? - int(field(&entry, "debit"), "debit")?;
            ensure!(
                balance == int(field(&entry, "balance_after"), "balance_after")?,
                "account {id}: its statement's running balance breaks at {place:?}"
            );
        }
        let closing = int(field(&statement, "closing_balance"), "closing_balance")?;
        ensure!(
            closing == balance && closing == view.balance,
            "account {id}: statement closes at {closing} (entries make {balance}), the ledger \
             says {}",
            view.balance
        );
        checked += 1;
    }
    Ok(checked)
}

/// A JSON object's field, `null` when absent.
fn field<'a>(value: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    value.get(name).unwrap_or(&serde_json::Value::Null)
}
