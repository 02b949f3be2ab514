//! The regulator's audit endpoints on an audit node that follows four validators: net
//! positions, large transactions, frozen accounts and funds, statements and the block-range
//! report (JSON and CSV) agree with the validators' state and with sums computed here from
//! the transactions submitted; open disputes, the sanctions list's accounts and structuring
//! alerts list what was submitted; and each endpoint refuses bad requests with its code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
#[path = "common/http.rs"]
mod http;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use anyhow::{Context, Result, ensure};
use common::*;
use http::{get, get_json};
use hyper::StatusCode;
use serde_json::Value;
use tally_contracts::*;
use tally_crypto::{Hash, SigningKey};
use tally_node::config::Mode;

const AUDIT: usize = 4;
/// A merchant acquired by bank A, with a fee of 1%.
const MERCHANT: u128 = 100;
const FEE_BPS: u16 = 100;
const TOP_UP: u64 = 300_000;
/// Payments of at least this much are large in these tests.
const THRESHOLD: u64 = 200_000;

fn sign(sender: Party, nonce: u64, keys: &[&SigningKey], kind: TxKind) -> SignedTransaction {
    Transaction {
        chain_id: CHAIN.into(),
        sender,
        nonce,
        kind,
    }
    .sign(keys)
}

/// Register wallet `id` at `bank`, bind a card of `bank`, top up [`TOP_UP`]: nonces 0..=2.
fn open_wallet_at(id: u128, bank: InstitutionId) -> Vec<SignedTransaction> {
    let k = wallet_key(id);
    let b = institution_key(bank);
    let card = CardToken(Hash::digest("card", &id.to_le_bytes()).0);
    let me = Party::Account(AccountId(id));
    vec![
        sign(
            me,
            0,
            &[&k, &b],
            TxKind::RegisterAccount {
                account: AccountId(id),
                key: k.public_key(),
                currency: Currency::CNY,
                institution: bank,
                tier: 0,
                identity: Hash::digest("identity", &id.to_le_bytes()),
            },
        ),
        sign(me, 1, &[&k, &b], TxKind::BindCard { card, bank }),
        sign(
            me,
            2,
            &[&k, &b],
            TxKind::TopUp {
                id: TransferId(id),
                card,
                amount: TOP_UP,
            },
        ),
    ]
}

fn bank_of(id: u128) -> InstitutionId {
    if id <= 4 { BANK_A } else { BANK_B }
}

/// What the test submitted, and what it expects from it.
#[derive(Default)]
struct Expected {
    balances: BTreeMap<u128, i128>,
    /// Interbank (paid, received) per institution, CNY.
    flows: BTreeMap<u32, (u128, u128)>,
    /// Hashes of movements of at least [`THRESHOLD`].
    large: BTreeSet<String>,
    /// (debit, credit) postings touching each wallet, in order.
    postings: BTreeMap<u128, Vec<(u64, u64)>>,
}

impl Expected {
    fn top_up(&mut self, id: u128) {
        *self.balances.entry(id).or_default() += i128::from(TOP_UP);
        self.postings.entry(id).or_default().push((0, TOP_UP));
    }

    fn payment(&mut self, tx: &SignedTransaction, from: u128, to: u128, amount: u64) {
        self.debit(from, amount);
        self.credit(to, amount);
        self.flow(bank_of(from), bank_of(to), amount);
        if amount >= THRESHOLD {
            self.large.insert(tx.hash().to_hex());
        }
    }

    fn debit(&mut self, account: u128, amount: u64) {
        *self.balances.entry(account).or_default() -= i128::from(amount);
        self.postings.entry(account).or_default().push((amount, 0));
    }

    fn credit(&mut self, account: u128, amount: u64) {
        *self.balances.entry(account).or_default() += i128::from(amount);
        self.postings.entry(account).or_default().push((0, amount));
    }

    fn flow(&mut self, from: InstitutionId, to: InstitutionId, amount: u64) {
        if from != to {
            self.flows.entry(from.0).or_default().0 += u128::from(amount);
            self.flows.entry(to.0).or_default().1 += u128::from(amount);
        }
    }

    fn net(&self, institution: u32) -> i128 {
        let (paid, received) = self.flows.get(&institution).copied().unwrap_or_default();
        received as i128 - paid as i128
    }
}

struct Setup {
    cluster: Cluster,
    servers: [http::Server; 2],
    audit: SocketAddr,
    validator: SocketAddr,
    head: u64,
    expected: Expected,
    /// Wallet 8's freeze.
    freeze: Hash,
}

/// Merchant payments: an order paid by a bank-B card (funded by bank B's issuance), one
/// paid from a bank-A wallet's balance, a partial refund (back to the card's bank), a
/// direct payment from a bank-B wallet, and a settlement to the acquirer less the fee.
fn merchant_flows(
    nonces: &mut BTreeMap<u128, u64>,
    expected: &mut Expected,
) -> Vec<Vec<SignedTransaction>> {
    let m = wallet_key(MERCHANT);
    let me = Party::Account(AccountId(MERCHANT));
    let bank_a = institution_key(BANK_A);
    let bank_b = institution_key(BANK_B);
    let mut next = |id: u128| {
        let n = nonces.entry(id).or_default();
        *n += 1;
        *n - 1
    };
    let expires_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 86_400_000;
    let register = sign(
        Party::Institution(BANK_A),
        0,
        &[&bank_a, &m],
        TxKind::RegisterMerchant {
            account: AccountId(MERCHANT),
            key: m.public_key(),
            currency: Currency::CNY,
            fee_bps: FEE_BPS,
            identity: Hash::digest("identity", b"merchant"),
        },
    );
    let order = |nonce, order, amount| {
        sign(
            me,
            nonce,
            &[&m],
            TxKind::CreateOrder {
                order: OrderId(order),
                amount,
                currency: Currency::CNY,
                expires_at_ms,
                items: Hash::digest("items", &order.to_le_bytes()),
            },
        )
    };
    let orders = vec![
        order(next(MERCHANT), 1, 50_000),
        order(next(MERCHANT), 2, 30_000),
    ];
    let card5 = CardToken(Hash::digest("card", &5u128.to_le_bytes()).0);
    let payments = vec![
        sign(
            Party::Account(AccountId(5)),
            next(5),
            &[&wallet_key(5), &bank_b],
            TxKind::PayOrder {
                id: TransferId(9_001),
                order: OrderId(1),
                source: PaymentSource::Card(card5),
                escrow_ms: None,
            },
        ),
        sign(
            Party::Account(AccountId(1)),
            next(1),
            &[&wallet_key(1)],
            TxKind::PayOrder {
                id: TransferId(9_002),
                order: OrderId(2),
                source: PaymentSource::Balance,
                escrow_ms: None,
            },
        ),
        sign(
            Party::Account(AccountId(6)),
            next(6),
            &[&wallet_key(6)],
            TxKind::PayMerchant {
                id: TransferId(9_003),
                merchant: AccountId(MERCHANT),
                amount: 20_000,
                reference: Memo::new("till 3").unwrap(),
            },
        ),
    ];
    let after = vec![
        sign(
            me,
            next(MERCHANT),
            &[&m],
            TxKind::Refund {
                id: TransferId(9_004),
                order: OrderId(1),
                amount: 10_000,
            },
        ),
        sign(
            me,
            next(MERCHANT),
            &[&m],
            TxKind::SettleMerchant {
                id: TransferId(9_005),
                amount: 60_000,
            },
        ),
    ];
    // Card: bank B's issuance pays the merchant; the wallet's balance does not move.
    expected.credit(MERCHANT, 50_000);
    expected.flow(BANK_B, BANK_A, 50_000);
    expected.debit(1, 30_000);
    expected.credit(MERCHANT, 30_000);
    expected.debit(6, 20_000);
    expected.credit(MERCHANT, 20_000);
    expected.flow(BANK_B, BANK_A, 20_000);
    expected.debit(MERCHANT, 10_000);
    expected.flow(BANK_A, BANK_B, 10_000);
    let fee = 60_000 * u64::from(FEE_BPS) / 10_000;
    expected.debit(MERCHANT, 60_000 - fee);
    expected.debit(MERCHANT, fee);
    expected.flow(BANK_A, PLATFORM, fee);
    vec![vec![register], orders, payments, after]
}

async fn setup() -> Result<Setup> {
    let mut genesis = genesis(4);
    for institution in &mut genesis.ledger.institutions {
        if institution.id == BANK_A {
            institution.roles = institution.roles.with(Roles::ACQUIRER);
        }
    }
    let mut cluster = Cluster::new(genesis)?;
    let observers = BTreeSet::from([validator_key(AUDIT).public_key()]);
    for i in 0..4 {
        cluster
            .start_with(i, Mode::Validator, observers.clone())
            .await?;
    }
    cluster
        .start_with(AUDIT, Mode::Audit, BTreeSet::new())
        .await?;
    let mut expected = Expected::default();
    let opening: Vec<_> = (1..=8u128)
        .flat_map(|id| open_wallet_at(id, bank_of(id)))
        .collect();
    for id in 1..=8 {
        expected.top_up(id);
    }
    // Top-ups are large too.
    expected
        .large
        .extend(opening.iter().skip(2).step_by(3).map(|t| t.hash().to_hex()));
    let hashes = cluster.submit_all(&opening, |n| n / 3 % 4).await?;
    cluster.wait_committed_ok(0, &hashes).await?;

    // Payments within and across the two banks, two of them large.
    let plan: [(u128, u128, u64); 8] = [
        (1, 5, 1_000),
        (5, 1, 2_500),
        (2, 3, 700),
        (6, 2, 250_000),
        (3, 7, 201_000),
        (7, 8, 4_000),
        (4, 6, 999),
        (8, 4, 3_333),
    ];
    let mut nonces: BTreeMap<u128, u64> = (1..=8).map(|id| (id, 3)).collect();
    let mut payments = Vec::new();
    for (from, to, amount) in plan {
        let nonce = nonces.get_mut(&from).unwrap();
        let tx = sign(
            Party::Account(AccountId(from)),
            *nonce,
            &[&wallet_key(from)],
            TxKind::Transfer {
                id: TransferId(1_000 + u128::from(*nonce) * 16 + from),
                to: AccountId(to),
                amount,
                // Wallet 5 writes what its transfers are for; the statements show it.
                memo: if from == 5 {
                    Memo::new("rent").unwrap()
                } else {
                    Memo::NONE
                },
            },
        );
        *nonce += 1;
        expected.payment(&tx, from, to, amount);
        payments.push(tx);
    }
    let hashes = cluster.submit_all(&payments, |n| n % 4).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    for step in merchant_flows(&mut nonces, &mut expected) {
        let hashes = cluster.submit_all(&step, |n| n % 4).await?;
        cluster.wait_committed_ok(0, &hashes).await?;
    }

    // The regulator freezes wallet 8.
    let reason = Hash::digest("test", b"suspicious");
    let freeze = sign(
        Party::Institution(REGULATOR),
        0,
        &[&institution_key(REGULATOR)],
        TxKind::Freeze {
            account: AccountId(8),
            reason,
        },
    );
    let hashes = cluster
        .submit_all(std::slice::from_ref(&freeze), |_| 1)
        .await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    let head = cluster.height(0)?;
    cluster.wait_height(AUDIT, head).await?;
    cluster.wait_committed_ok(AUDIT, &hashes).await?;
    let audit_api = http::serve(cluster.node(AUDIT)?).await?;
    let validator_api = http::serve(cluster.node(0)?).await?;
    Ok(Setup {
        audit: audit_api.addr,
        validator: validator_api.addr,
        servers: [audit_api, validator_api],
        cluster,
        head,
        expected,
        freeze: freeze.hash(),
    })
}

fn as_i128(v: &Value) -> i128 {
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
        .unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// `{institution: net}` of a list of positions or flows in CNY.
fn nets(list: &Value) -> BTreeMap<u32, i128> {
    list.as_array()
        .unwrap()
        .iter()
        .filter(|p| p["currency"] == "CNY")
        .map(|p| {
            (
                p["institution"].as_u64().unwrap() as u32,
                as_i128(&p["net"]),
            )
        })
        .collect()
}

fn expected_nets(e: &Expected) -> BTreeMap<u32, i128> {
    e.flows
        .keys()
        .map(|i| (*i, e.net(*i)))
        .filter(|(_, n)| *n != 0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_reports_match_the_validators_state_and_the_submitted_payments() -> Result<()> {
    let Setup {
        cluster,
        servers,
        audit,
        validator,
        head,
        expected,
        freeze,
    } = setup().await?;
    let range = format!("from=1&to={head}");

    // Health and validators.
    let health = get_json(audit, "/health").await?;
    ensure!(health["mode"] == "audit", "{health}");
    ensure!(health["alarm"] == false, "{health}");
    let height = health["height"].as_u64().context("height")?;
    ensure!(height >= head);
    ensure!(
        health["verified_height"].as_u64() == Some(height - 1),
        "{health}"
    );
    let health = get_json(validator, "/health").await?;
    ensure!(
        health["mode"] == "validator" && health["verified_height"].is_null(),
        "{health}"
    );
    let validators = get_json(audit, "/v1/validators").await?;
    let keys: Vec<Value> = (0..4)
        .map(|i| serde_json::to_value(validator_key(i).public_key()).unwrap())
        .collect();
    let in_force: Vec<Value> = validators["in_force"]["validators"]
        .as_array()
        .context("in_force")?
        .iter()
        .map(|v| v["public_key"].clone())
        .collect();
    ensure!(in_force == keys, "{validators}");
    ensure!(validators["scheduled"] == serde_json::json!([]));

    // Net positions: open obligations at the head, and flows over the whole chain, equal
    // the interbank sums of the payments; the validator answers the same.
    let path = format!("/v1/audit/net-positions?{range}");
    let ours = get_json(audit, &path).await?;
    let theirs = get_json(validator, &path).await?;
    let want = expected_nets(&expected);
    ensure!(nets(&ours["open"]["positions"]) == want, "{ours}");
    ensure!(nets(&ours["flows"]) == want, "{ours}");
    ensure!(ours["open"] == theirs["open"] && ours["flows"] == theirs["flows"]);
    for flow in ours["flows"].as_array().unwrap() {
        let i = flow["institution"].as_u64().unwrap() as u32;
        let (paid, received) = expected.flows[&i];
        ensure!(as_i128(&flow["paid"]) == paid as i128, "{flow}");
        ensure!(as_i128(&flow["received"]) == received as i128, "{flow}");
    }
    let only_a = get_json(audit, &format!("{path}&institution=1&currency=CNY")).await?;
    ensure!(nets(&only_a["flows"]).keys().eq([&BANK_A.0]), "{only_a}");

    // Large transactions, by heights and by block time.
    let path = format!("/v1/audit/large-transactions?threshold={THRESHOLD}&{range}");
    let large = get_json(audit, &path).await?;
    let hashes = |v: &Value| -> BTreeSet<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["hash"].as_str().unwrap().to_string())
            .collect()
    };
    ensure!(hashes(&large) == expected.large, "{large}");
    ensure!(large == get_json(validator, &path).await?);
    let first = get_json(audit, "/v1/blocks/1").await?;
    let last = get_json(audit, &format!("/v1/blocks/{head}")).await?;
    let by_time = get_json(
        audit,
        &format!(
            "/v1/audit/large-transactions?threshold={THRESHOLD}&from_ms={}&to_ms={}",
            first["header"]["time_ms"], last["header"]["time_ms"]
        ),
    )
    .await?;
    ensure!(by_time["range"] == large["range"], "{by_time}");
    ensure!(hashes(&by_time) == expected.large);
    let all = get_json(
        audit,
        &format!("/v1/audit/large-transactions?threshold=1&{range}"),
    )
    .await?;
    // Top-ups, transfers, two order payments, a refund, a direct payment, a settlement.
    ensure!(all["items"].as_array().unwrap().len() == 8 + 8 + 5, "{all}");

    // Activity for the charts: the movements per bucket add up to the range's movements
    // (count and volume), each institution's accumulated interbank flow ends at its flow
    // net, and every block of the range is counted once; the validator answers the same,
    // but for the latency, which is each node's own (from a block's proposal to its commit
    // on that node): both nodes committed every block of this run, so both report it.
    let path = format!("/v1/audit/activity?{range}");
    let activity = get_json(audit, &path).await?;
    let without_lag = |mut a: Value| -> Result<Value> {
        for b in a["blocks"].as_array_mut().context("blocks")? {
            let median = b["lag_ms_median"]
                .as_u64()
                .context("a bucket without its lag")?;
            let max = b["lag_ms_max"]
                .as_u64()
                .context("a bucket without its lag")?;
            // Milliseconds between two clocks of one machine: well under a minute.
            ensure!(median <= max && max < 60_000, "{b}");
            b["lag_ms_median"] = Value::Null;
            b["lag_ms_max"] = Value::Null;
        }
        Ok(a)
    };
    ensure!(
        without_lag(activity.clone())? == without_lag(get_json(validator, &path).await?)?,
        "{activity}"
    );
    let items = all["items"].as_array().unwrap();
    let payments = activity["payments"].as_array().unwrap();
    let counted: u64 = payments.iter().map(|p| p["count"].as_u64().unwrap()).sum();
    ensure!(counted == items.len() as u64, "{activity}");
    let volume: i128 = payments.iter().map(|p| as_i128(&p["volume"])).sum();
    ensure!(
        volume == items.iter().map(|i| as_i128(&i["amount"])).sum::<i128>(),
        "{activity}"
    );
    let mut accumulated = BTreeMap::new();
    for flow in activity["flows"].as_array().unwrap() {
        let i = flow["institution"].as_u64().unwrap() as u32;
        accumulated.insert(i, as_i128(&flow["cumulative"]));
    }
    ensure!(accumulated == want, "{activity}");
    let blocks = activity["blocks"].as_array().unwrap();
    let counted: u64 = blocks.iter().map(|b| b["blocks"].as_u64().unwrap()).sum();
    ensure!(counted == head, "{activity}");
    let by_hour = get_json(audit, &format!("{path}&bucket=hour")).await?;
    ensure!(by_hour["bucket_ms"] == 3_600_000, "{by_hour}");

    // Frozen accounts and funds.
    let frozen = get_json(audit, "/v1/audit/frozen").await?;
    let accounts = frozen["accounts"].as_array().unwrap();
    ensure!(accounts.len() == 1 && accounts[0]["id"] == 8, "{frozen}");
    ensure!(as_i128(&accounts[0]["balance"]) == expected.balances[&8]);
    let account = get_json(validator, "/v1/accounts/8").await?;
    ensure!(account["account"]["frozen"] == true);
    ensure!(as_i128(&account["balance"]) == expected.balances[&8]);
    ensure!(frozen["frozen_totals"][0]["amount"] == accounts[0]["balance"]);
    ensure!(frozen["holds"] == serde_json::json!([]));
    ensure!(frozen["next_after"].is_null(), "{frozen}");
    let page = get_json(audit, "/v1/audit/frozen?after=7&limit=1").await?;
    ensure!(page["accounts"][0]["id"] == 8, "{page}");
    let page = get_json(audit, "/v1/audit/frozen?after=8").await?;
    ensure!(page["accounts"] == serde_json::json!([]), "{page}");

    // Statements: opening, entries and closing agree with the validators' balances and the
    // payments, and two adjacent ranges (read from genesis and from the head) join up.
    for id in [1u128, 5, 6, 8, MERCHANT] {
        let whole = get_json(audit, &format!("/v1/audit/accounts/{id}/statement?{range}")).await?;
        let balance = get_json(validator, &format!("/v1/accounts/{id}")).await?["balance"].clone();
        ensure!(as_i128(&whole["opening_balance"]) == 0, "{whole}");
        ensure!(
            as_i128(&whole["closing_balance"]) == as_i128(&balance),
            "{whole}"
        );
        ensure!(as_i128(&balance) == expected.balances[&id]);
        // Payments in one block run in the proposer's order, not the submission order.
        let mut entries: Vec<(u64, u64)> = whole["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["debit"].as_u64().unwrap(), e["credit"].as_u64().unwrap()))
            .collect();
        let mut want_entries = expected.postings[&id].clone();
        entries.sort_unstable();
        want_entries.sort_unstable();
        ensure!(entries == want_entries, "{whole}");
        // The payer's words reach both sides' statements: wallet 5's memo, the QR reference.
        let notes: BTreeSet<&str> = whole["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["note"].as_str().filter(|n| !n.is_empty()))
            .collect();
        let want_notes: BTreeSet<&str> = match id {
            1 | 5 => ["rent"].into(),
            6 | MERCHANT => ["till 3"].into(),
            _ => BTreeSet::new(),
        };
        ensure!(
            notes == want_notes,
            "account {id}: notes {notes:?}\n{whole}"
        );
        let split = whole["entries"].as_array().unwrap().last().unwrap()["height"]
            .as_u64()
            .unwrap();
        let early = get_json(
            audit,
            &format!("/v1/audit/accounts/{id}/statement?from=1&to={}", split - 1),
        )
        .await?;
        let late = get_json(
            audit,
            &format!("/v1/audit/accounts/{id}/statement?from={split}&to={head}"),
        )
        .await?;
        ensure!(early["anchored_at"] == 0, "{early}");
        ensure!(
            early["closing_balance"] == late["opening_balance"],
            "{early} {late}"
        );
        ensure!(
            late["closing_balance"] == whole["closing_balance"],
            "{late}"
        );
        // One block at the head: its balance is carried back from the head's.
        let now = get_json(audit, "/health").await?["height"]
            .as_u64()
            .unwrap();
        let tip = get_json(
            audit,
            &format!("/v1/audit/accounts/{id}/statement?from={now}&to={now}"),
        )
        .await?;
        ensure!(tip["anchored_at"].as_u64() >= Some(now), "{tip}");
        ensure!(tip["closing_balance"] == whole["closing_balance"], "{tip}");
    }

    // The report: the same tables for the range, as JSON and as CSV.
    let path = format!("/v1/audit/report?{range}&threshold={THRESHOLD}&accounts=1,8");
    let report = get_json(audit, &path).await?;
    ensure!(nets(&report["net_flows"]) == want, "{report}");
    ensure!(nets(&report["open_positions"]["positions"]) == want);
    let large_in_report: BTreeSet<String> = report["large_transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["hash"].as_str().unwrap().to_string())
        .collect();
    ensure!(large_in_report == expected.large);
    ensure!(report["frozen"]["accounts"][0]["id"] == 8);
    let freezes = report["freezes"].as_array().unwrap();
    ensure!(freezes.len() == 1, "{report}");
    ensure!(freezes[0]["account"] == 8 && freezes[0]["frozen"] == true);
    ensure!(freezes[0]["hash"] == freeze.to_hex());
    ensure!(report["evidence"] == serde_json::json!([]));
    ensure!(report["statements"].as_array().unwrap().len() == 2);
    ensure!(report["node"]["mode"] == "audit");

    for path in [
        format!("/v1/audit/report.csv?{range}&threshold={THRESHOLD}&accounts=1,8"),
        format!("/v1/audit/report?{range}&threshold={THRESHOLD}&accounts=1,8&format=csv"),
    ] {
        let csv = get(audit, &path).await?;
        ensure!(csv.status == StatusCode::OK, "{}", csv.text());
        ensure!(
            csv.header("content-type").as_deref() == Some("text/csv; charset=utf-8"),
            "{:?}",
            csv.headers
        );
        let sections = csv_sections(&csv.text());
        let flows = &sections["net_flows"];
        ensure!(flows[0] == ["currency", "institution", "paid", "received", "net"]);
        let csv_nets: BTreeMap<u32, i128> = flows[1..]
            .iter()
            .map(|r| (r[1].parse().unwrap(), r[4].parse().unwrap()))
            .collect();
        ensure!(csv_nets == want, "{flows:?}");
        let large = &sections["large_transactions"];
        let csv_large: BTreeSet<String> = large[1..].iter().map(|r| r[3].clone()).collect();
        ensure!(csv_large == expected.large, "{large:?}");
        ensure!(sections["frozen_accounts"][1][0] == "8");
        ensure!(sections["freezes"].len() == 2);
        ensure!(
            sections["statement_entries"].len() - 1
                == expected.postings[&1].len() + expected.postings[&8].len()
        );
        ensure!(sections["report"][1][6] == "audit");
    }
    for server in servers {
        server.stop().await?;
    }
    cluster.shutdown().await
}

/// `# name` then rows, per section; fields split on commas (the test's values hold none).
fn csv_sections(text: &str) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut out: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if let Some(name) = line.strip_prefix("# ") {
            current = name.to_string();
            out.entry(current.clone()).or_default();
        } else {
            out.entry(current.clone())
                .or_default()
                .push(line.split(',').map(str::to_string).collect());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_endpoints_refuse_bad_requests_with_their_codes() -> Result<()> {
    let mut cluster = Cluster::new(genesis(1))?;
    cluster.start(0).await?;
    let server = http::serve(cluster.node(0)?).await?;
    let addr = server.addr;
    // Before the first block, a range has nothing to cover.
    let early = get(addr, "/v1/audit/large-transactions?threshold=1").await?;
    if cluster.height(0)? == 0 {
        early.error(StatusCode::NOT_FOUND, "NOT_FOUND")?;
    }
    let hashes = cluster
        .submit_all(&open_wallet_at(1, BANK_A), |_| 0)
        .await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    let head = cluster.height(0)?;

    let bad = StatusCode::BAD_REQUEST;
    let cases: Vec<(String, StatusCode, &str)> = vec![
        ("/v1/audit/large-transactions".into(), bad, "BAD_THRESHOLD"),
        (
            "/v1/audit/large-transactions?threshold=0".into(),
            bad,
            "BAD_THRESHOLD",
        ),
        (
            "/v1/audit/large-transactions?threshold=x".into(),
            bad,
            "BAD_THRESHOLD",
        ),
        (
            "/v1/audit/large-transactions?threshold=1&from=3&to=2".into(),
            bad,
            "BAD_RANGE",
        ),
        (
            "/v1/audit/large-transactions?threshold=1&from=0".into(),
            bad,
            "BAD_RANGE",
        ),
        (
            "/v1/audit/large-transactions?threshold=1&from=one".into(),
            bad,
            "BAD_RANGE",
        ),
        (
            format!("/v1/audit/large-transactions?threshold=1&to={}", head + 100),
            StatusCode::NOT_FOUND,
            "BEYOND_HEAD",
        ),
        (
            format!("/v1/audit/large-transactions?threshold=1&from={}", head + 1),
            StatusCode::NOT_FOUND,
            "BEYOND_HEAD",
        ),
        (
            "/v1/audit/large-transactions?threshold=1&from=1&from_ms=5".into(),
            bad,
            "BAD_RANGE",
        ),
        (
            "/v1/audit/large-transactions?threshold=1&from_ms=9&to_ms=8".into(),
            bad,
            "BAD_RANGE",
        ),
        (
            "/v1/audit/large-transactions?threshold=1&from=1&to=10001".into(),
            bad,
            "RANGE_TOO_LARGE",
        ),
        (
            "/v1/audit/large-transactions?threshold=1&currency=cny".into(),
            bad,
            "BAD_CURRENCY",
        ),
        (
            "/v1/audit/net-positions?from=1&to=20000".into(),
            bad,
            "RANGE_TOO_LARGE",
        ),
        ("/v1/audit/activity?bucket=day".into(), bad, "BAD_BUCKET"),
        (
            "/v1/audit/activity?from=1&to=20000".into(),
            bad,
            "RANGE_TOO_LARGE",
        ),
        (
            "/v1/audit/activity.csv?series=pie".into(),
            bad,
            "BAD_SERIES",
        ),
        (
            "/v1/audit/charts/pie".into(),
            StatusCode::NOT_FOUND,
            "NO_SUCH_CHART",
        ),
        (
            "/v1/audit/net-positions?institution=bank".into(),
            bad,
            "BAD_ID",
        ),
        (
            "/v1/audit/net-positions?currency=EURO".into(),
            bad,
            "BAD_CURRENCY",
        ),
        ("/v1/audit/frozen?limit=0".into(), bad, "BAD_LIMIT"),
        ("/v1/audit/frozen?limit=1001".into(), bad, "BAD_LIMIT"),
        ("/v1/audit/frozen?after=x".into(), bad, "BAD_ID"),
        ("/v1/audit/accounts/x/statement".into(), bad, "BAD_ID"),
        (
            "/v1/audit/accounts/1/statement?from=2&to=1".into(),
            bad,
            "BAD_RANGE",
        ),
        (
            "/v1/audit/accounts/1/statement?from=1&to=99999".into(),
            bad,
            "RANGE_TOO_LARGE",
        ),
        (
            "/v1/audit/accounts/77/statement".into(),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        ("/v1/audit/report?format=xml".into(), bad, "BAD_FORMAT"),
        ("/v1/audit/report?accounts=1,x".into(), bad, "BAD_ID"),
        (
            "/v1/audit/report?accounts=1,2,3,4,5,6,7,8,9,10,11".into(),
            bad,
            "BAD_ACCOUNTS",
        ),
        (
            "/v1/audit/report?accounts=77".into(),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        ("/v1/audit/report.csv?from=5&to=1".into(), bad, "BAD_RANGE"),
        ("/v1/audit/report?threshold=0".into(), bad, "BAD_THRESHOLD"),
        ("/v1/audit/report?floor=0".into(), bad, "BAD_FLOOR"),
        ("/v1/audit/disputes?limit=0".into(), bad, "BAD_LIMIT"),
        ("/v1/audit/disputes?limit=1001".into(), bad, "BAD_LIMIT"),
        ("/v1/audit/disputes?after=5".into(), bad, "BAD_CURSOR"),
        (
            "/v1/audit/disputes?after=5:cart:1".into(),
            bad,
            "BAD_CURSOR",
        ),
        (
            "/v1/audit/disputes?after=x:order:1".into(),
            bad,
            "BAD_CURSOR",
        ),
        ("/v1/audit/sanctioned?limit=1001".into(), bad, "BAD_LIMIT"),
        ("/v1/audit/sanctioned?cursor=zz".into(), bad, "BAD_CURSOR"),
        (
            format!("/v1/audit/sanctioned?cursor={}:x", Hash::ZERO.to_hex()),
            bad,
            "BAD_CURSOR",
        ),
        (
            "/v1/audit/structuring?threshold=0".into(),
            bad,
            "BAD_THRESHOLD",
        ),
        (
            "/v1/audit/structuring?threshold=100&floor=100".into(),
            bad,
            "BAD_FLOOR",
        ),
        ("/v1/audit/structuring?floor=0".into(), bad, "BAD_FLOOR"),
        ("/v1/audit/structuring?floor=-1".into(), bad, "BAD_FLOOR"),
        (
            "/v1/audit/structuring?window_ms=0".into(),
            bad,
            "BAD_WINDOW",
        ),
        (
            "/v1/audit/structuring?window_ms=2678400001".into(),
            bad,
            "BAD_WINDOW",
        ),
        ("/v1/audit/structuring?count_min=1".into(), bad, "BAD_COUNT"),
        ("/v1/audit/structuring?count_min=x".into(), bad, "BAD_COUNT"),
        ("/v1/audit/structuring?sum_min=0".into(), bad, "BAD_SUM"),
        (
            "/v1/audit/structuring?currency=cny".into(),
            bad,
            "BAD_CURRENCY",
        ),
        (
            "/v1/audit/structuring?from=1&to=10001".into(),
            bad,
            "RANGE_TOO_LARGE",
        ),
    ];
    for (path, status, code) in &cases {
        get(addr, path)
            .await?
            .error(*status, code)
            .with_context(|| path.clone())?;
    }
    // The defaults answer: the latest blocks, and the validator's own health.
    let report = get_json(addr, "/v1/audit/report").await?;
    ensure!(report["range"]["from"] == 1, "{report}");
    ensure!(report["threshold"] == 5_000_000);
    let structuring = get_json(addr, "/v1/audit/structuring").await?;
    ensure!(
        structuring["rule"]["threshold"] == 5_000_000,
        "{structuring}"
    );
    ensure!(structuring["rule"]["floor"] == 4_000_000, "{structuring}");
    ensure!(structuring["rule"]["sum_min"] == 5_000_000, "{structuring}");
    ensure!(
        structuring["alerts"] == serde_json::json!([]),
        "{structuring}"
    );
    let empty = get_json(addr, "/v1/audit/disputes").await?;
    ensure!(empty["disputes"] == serde_json::json!([]), "{empty}");
    let empty = get_json(addr, "/v1/audit/sanctioned").await?;
    ensure!(empty["identities"] == serde_json::json!([]), "{empty}");
    let statement = get_json(addr, "/v1/audit/accounts/1/statement").await?;
    ensure!(
        as_i128(&statement["closing_balance"]) == i128::from(TOP_UP),
        "{statement}"
    );
    let health = get_json(addr, "/health").await?;
    ensure!(
        health["mode"] == "validator" && health["status"] == "ok",
        "{health}"
    );
    server.stop().await?;
    cluster.shutdown().await
}

/// Structuring in these tests: payments of at least this much are large; from 80% of it
/// (the default floor) they are "just below".
const LIMIT: u64 = 100_000;
/// The person who splits payments across two wallets.
const SPLITTER: [u128; 2] = [1, 2];
/// One large payment.
const LARGE_PAYER: u128 = 3;
/// Two payments just below: under the default `count_min` of 3.
const TWICE_PAYER: u128 = 4;
/// Payers of the two disputed orders.
const DISPUTERS: [u128; 2] = [5, 6];
/// Everyone pays this wallet.
const PAYEE: u128 = 9;

fn person(id: u128) -> Hash {
    if SPLITTER.contains(&id) {
        Hash::digest("identity", b"splitter")
    } else {
        Hash::digest("identity", &id.to_le_bytes())
    }
}

/// GET `path` as `as_whom`: (status, JSON body or null).
async fn get_as(as_whom: &tally_sdk::Api, path: &str) -> Result<(StatusCode, Value)> {
    let answer = tokio::time::timeout(http::REQUEST_WAIT, as_whom.get(path))
        .await
        .with_context(|| format!("GET {path}: no answer"))??;
    let body = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    Ok((answer.status, body))
}

async fn commit(cluster: &Cluster, txs: &[SignedTransaction]) -> Result<Vec<Hash>> {
    let hashes = cluster.submit_all(txs, |_| 0).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    Ok(hashes)
}

/// The regulator's watch: disputes listed open with their age until decided, a sanctioned
/// identity's accounts listed, and structuring flagged for one person splitting payments
/// just below the threshold across two wallets (not for one large payment, not for a person
/// under `count_min`), through the endpoints and in the report (JSON and CSV); nobody but
/// the regulator reads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regulator_sees_open_disputes_sanctioned_accounts_and_structuring() -> Result<()> {
    let mut genesis = genesis(1);
    for institution in &mut genesis.ledger.institutions {
        if institution.id == BANK_A {
            institution.roles = institution.roles.with(Roles::ACQUIRER);
        }
    }
    let mut cluster = Cluster::new(genesis)?;
    cluster.start(0).await?;
    let opening: Vec<_> = [1, 2, 3, 4, 5, 6, 9]
        .into_iter()
        .flat_map(|id| open_wallet_of(id, 500_000, person(id)))
        .collect();
    commit(&cluster, &opening).await?;

    // Structuring: the splitter pays 90,000 + 95,000 + 85,000 from two wallets; another
    // person pays 150,000 once (a large transaction); a third pays 90,000 twice.
    let splits = vec![
        transfer(SPLITTER[0], PAYEE, 3, 90_000),
        transfer(SPLITTER[1], PAYEE, 3, 95_000),
        transfer(SPLITTER[0], PAYEE, 4, 85_000),
    ];
    let split_hashes: BTreeSet<String> = commit(&cluster, &splits)
        .await?
        .iter()
        .map(|h| h.to_hex())
        .collect();
    commit(
        &cluster,
        &[
            transfer(LARGE_PAYER, PAYEE, 3, 150_000),
            transfer(TWICE_PAYER, PAYEE, 3, 90_000),
            transfer(TWICE_PAYER, PAYEE, 4, 89_000),
        ],
    )
    .await?;

    // Two paid orders, both disputed by their payers.
    let bank_a = institution_key(BANK_A);
    let m = wallet_key(MERCHANT);
    let shop = Party::Account(AccountId(MERCHANT));
    commit(
        &cluster,
        &[sign(
            Party::Institution(BANK_A),
            0,
            &[&bank_a, &m],
            TxKind::RegisterMerchant {
                account: AccountId(MERCHANT),
                key: m.public_key(),
                currency: Currency::CNY,
                fee_bps: FEE_BPS,
                identity: Hash::digest("identity", b"merchant"),
            },
        )],
    )
    .await?;
    let expires_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64
        + 86_400_000;
    let mut orders = Vec::new();
    let mut payments = Vec::new();
    let mut opened = Vec::new();
    for (n, payer) in DISPUTERS.into_iter().enumerate() {
        let order = OrderId(n as u128 + 1);
        orders.push(sign(
            shop,
            n as u64,
            &[&m],
            TxKind::CreateOrder {
                order,
                amount: 40_000,
                currency: Currency::CNY,
                expires_at_ms,
                items: Hash::digest("items", &[n as u8]),
            },
        ));
        payments.push(sign(
            Party::Account(AccountId(payer)),
            3,
            &[&wallet_key(payer)],
            TxKind::PayOrder {
                id: TransferId(7_000 + payer),
                order,
                source: PaymentSource::Balance,
                escrow_ms: None,
            },
        ));
        opened.push(sign(
            Party::Account(AccountId(payer)),
            4,
            &[&wallet_key(payer)],
            TxKind::OpenDispute {
                id: TransferId(8_000 + payer),
                disputed: Disputed::Order(order),
                reason: DisputeReason::NotReceived,
            },
        ));
    }
    commit(&cluster, &orders).await?;
    commit(&cluster, &payments).await?;
    // One after the other, so "oldest first" has one answer.
    let first_opened = commit(&cluster, &opened[..1]).await?;
    commit(&cluster, &opened[1..]).await?;

    // The regulator lists the splitter's identity, and one nobody registered.
    let regulator = institution_key(REGULATOR);
    let unregistered = Hash::digest("identity", b"never registered");
    commit(
        &cluster,
        &[
            sign(
                Party::Institution(REGULATOR),
                0,
                &[&regulator],
                TxKind::AddSanction {
                    identity: person(SPLITTER[0]),
                },
            ),
            sign(
                Party::Institution(REGULATOR),
                1,
                &[&regulator],
                TxKind::AddSanction {
                    identity: unregistered,
                },
            ),
        ],
    )
    .await?;

    let server = http::serve(cluster.node(0)?).await?;
    let addr = server.addr;
    let head = cluster.height(0)?;
    let range = format!("from=1&to={head}");

    // Open disputes, oldest first, aged at the head's block time.
    let listed = get_json(addr, "/v1/audit/disputes").await?;
    let disputes = listed["disputes"].as_array().context("disputes")?;
    ensure!(disputes.len() == 2, "{listed}");
    ensure!(disputes[0]["disputed"]["Order"] == 1, "{listed}");
    ensure!(disputes[1]["disputed"]["Order"] == 2, "{listed}");
    let opened_at = cluster
        .node(0)?
        .context
        .storage
        .tx_location(&first_opened[0])?
        .context("committed")?;
    let opened_block = get_json(addr, &format!("/v1/blocks/{}", opened_at.height)).await?;
    ensure!(disputes[0]["opened_at_ms"] == opened_block["header"]["time_ms"]);
    let now = listed["time_ms"].as_u64().context("time_ms")?;
    for d in disputes {
        let opened_ms = d["opened_at_ms"].as_u64().context("opened_at_ms")?;
        ensure!(d["age_ms"].as_u64() == Some(now - opened_ms), "{d}");
        ensure!(d["amount"] == 40_000 && d["currency"] == "CNY", "{d}");
        ensure!(
            d["decider"] == BANK_A.0 && d["merchant"].as_u64() == Some(MERCHANT as u64),
            "{d}"
        );
    }
    // Later blocks committed since (the sanctions): the oldest has aged.
    ensure!(
        listed["height"].as_u64() > Some(opened_at.height),
        "{listed}"
    );
    ensure!(disputes[0]["age_ms"].as_u64() > Some(0), "{listed}");
    ensure!(listed["next_after"].is_null(), "{listed}");
    let page = get_json(addr, "/v1/audit/disputes?limit=1").await?;
    ensure!(page["disputes"][0]["disputed"]["Order"] == 1, "{page}");
    let after = page["next_after"].as_str().context("next_after")?;
    let page = get_json(addr, &format!("/v1/audit/disputes?limit=1&after={after}")).await?;
    ensure!(
        page["disputes"].as_array().map(Vec::len) == Some(1),
        "{page}"
    );
    ensure!(page["disputes"][0]["disputed"]["Order"] == 2, "{page}");
    ensure!(page["next_after"].is_null(), "{page}");

    // Sanctioned: the splitter's two wallets, and the listed identity with none.
    let sanctioned = get_json(addr, "/v1/audit/sanctioned").await?;
    let identities = sanctioned["identities"].as_array().context("identities")?;
    ensure!(identities.len() == 2, "{sanctioned}");
    let of = |identity: Hash| {
        identities
            .iter()
            .find(|i| i["identity"] == identity.to_hex())
            .cloned()
            .unwrap_or(Value::Null)
    };
    let splitter = of(person(SPLITTER[0]));
    let ids: Vec<u64> = splitter["accounts"]
        .as_array()
        .context("the splitter is not listed")?
        .iter()
        .filter_map(|a| a["id"].as_u64())
        .collect();
    ensure!(ids == [1, 2], "{sanctioned}");
    ensure!(splitter["accounts"][0]["balance"] == 500_000 - 90_000 - 85_000);
    ensure!(
        of(unregistered)["accounts"] == serde_json::json!([]),
        "{sanctioned}"
    );
    ensure!(sanctioned["next_cursor"].is_null(), "{sanctioned}");
    // Page by page, one account at a time: every account once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            None => "/v1/audit/sanctioned?limit=1".to_string(),
            Some(c) => format!("/v1/audit/sanctioned?limit=1&cursor={c}"),
        };
        let page = get_json(addr, &path).await?;
        for i in page["identities"].as_array().context("identities")? {
            seen.push((
                i["identity"].as_str().unwrap_or_default().to_string(),
                i["accounts"].as_array().map_or(0, Vec::len),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let splitter_pages = seen
        .iter()
        .filter(|(i, _)| *i == person(SPLITTER[0]).to_hex())
        .map(|(_, n)| *n)
        .collect::<Vec<_>>();
    ensure!(splitter_pages == [1, 1], "{seen:?}");
    ensure!(seen.len() == 3, "{seen:?}");

    // Structuring, with the defaults around the threshold: the splitter alone.
    let path = format!("/v1/audit/structuring?threshold={LIMIT}&{range}");
    let found = get_json(addr, &path).await?;
    ensure!(found["rule"]["floor"] == 80_000, "{found}");
    ensure!(found["rule"]["window_ms"] == 86_400_000, "{found}");
    ensure!(found["rule"]["count_min"] == 3 && found["rule"]["sum_min"] == LIMIT);
    let alerts = found["alerts"].as_array().context("alerts")?;
    ensure!(alerts.len() == 1, "{found}");
    let alert = &alerts[0];
    ensure!(alert["person"] == person(SPLITTER[0]).to_hex(), "{alert}");
    ensure!(alert["count"] == 3 && alert["sum"] == 270_000, "{alert}");
    ensure!(alert["accounts"] == serde_json::json!([1, 2]), "{alert}");
    let flagged: BTreeSet<String> = alert["movements"]
        .as_array()
        .context("movements")?
        .iter()
        .filter_map(|m| m["hash"].as_str().map(str::to_string))
        .collect();
    ensure!(flagged == split_hashes, "{alert}");
    ensure!(found["truncated"] == false);
    // The one large payment is a large transaction, not structuring.
    let large = get_json(
        addr,
        &format!("/v1/audit/large-transactions?threshold={LIMIT}&{range}"),
    )
    .await?;
    let large_amounts: Vec<u64> = large["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter(|i| i["kind"] == "TransferReceived")
        .filter_map(|i| i["amount"].as_u64())
        .collect();
    ensure!(large_amounts == [150_000], "{large}");
    // Two payments are enough when the rule says so: the twice-payer is flagged too.
    let two = get_json(addr, &format!("{path}&count_min=2")).await?;
    let people: BTreeSet<String> = two["alerts"]
        .as_array()
        .context("alerts")?
        .iter()
        .filter_map(|a| a["person"].as_str().map(str::to_string))
        .collect();
    ensure!(
        people == BTreeSet::from([person(SPLITTER[0]).to_hex(), person(TWICE_PAYER).to_hex()]),
        "{two}"
    );
    // A sum the splitter does not reach.
    let high = get_json(addr, &format!("{path}&sum_min=270001")).await?;
    ensure!(high["alerts"] == serde_json::json!([]), "{high}");
    // As an alert to triage, the run keeps its key (under which an acknowledgement is kept)
    // as the range moves on: from the first block, from the splits' own first block, and
    // by default once later blocks have moved the head.
    let split_from = cluster
        .node(0)?
        .context
        .storage
        .tx_location(&splits[0].hash())?
        .context("committed")?
        .height;
    let structuring_keys = |listed: &Value| -> Vec<String> {
        alerts_of(listed, "structuring")
            .iter()
            .filter_map(|a| a["key"].as_str().map(str::to_string))
            .collect()
    };
    let alerts = format!("/v1/audit/alerts?threshold={LIMIT}");
    let whole = get_json(addr, &format!("{alerts}&{range}")).await?;
    let keys = structuring_keys(&whole);
    ensure!(keys.len() == 1, "{whole}");
    let from_splits = get_json(addr, &format!("{alerts}&from={split_from}&to={head}")).await?;
    ensure!(structuring_keys(&from_splits) == keys, "{from_splits}");
    cluster.wait_height(0, head + 3).await?;
    let by_default = get_json(addr, &alerts).await?;
    ensure!(
        by_default["range"]["to"].as_u64() >= Some(head + 3),
        "{by_default}"
    );
    ensure!(structuring_keys(&by_default) == keys, "{by_default}");

    // The report carries the three tables beside the large transactions.
    let report_path = format!("/v1/audit/report?{range}&threshold={LIMIT}");
    let report = get_json(addr, &report_path).await?;
    ensure!(report["structuring_alerts"] == found["alerts"], "{report}");
    ensure!(report["structuring"] == found["rule"], "{report}");
    ensure!(report["structuring_alerts_truncated"] == false);
    ensure!(report["open_disputes"].as_array().map(Vec::len) == Some(2));
    ensure!(report["open_disputes_truncated"] == false);
    ensure!(report["sanctioned"].as_array().map(Vec::len) == Some(2));
    ensure!(report["sanctioned_truncated"] == false);
    let csv = get(
        addr,
        &format!("/v1/audit/report.csv?{range}&threshold={LIMIT}"),
    )
    .await?;
    ensure!(csv.status == StatusCode::OK, "{}", csv.text());
    let sections = csv_sections(&csv.text());
    let alerts_csv = &sections["structuring_alerts"];
    ensure!(alerts_csv.len() == 2, "{alerts_csv:?}");
    ensure!(alerts_csv[1][1] == person(SPLITTER[0]).to_hex());
    ensure!(alerts_csv[1][5] == "3" && alerts_csv[1][6] == "270000");
    ensure!(alerts_csv[1][7] == "1 2", "{alerts_csv:?}");
    ensure!(sections["structuring_movements"].len() == 4);
    let disputes_csv = &sections["open_disputes"];
    ensure!(disputes_csv.len() == 3, "{disputes_csv:?}");
    ensure!(disputes_csv[1][0] == "order:1" && disputes_csv[2][0] == "order:2");
    let sanctioned_csv = &sections["sanctioned"];
    // The splitter's two accounts and the unregistered identity's empty row.
    ensure!(sanctioned_csv.len() == 4, "{sanctioned_csv:?}");
    ensure!(
        sections["report"][1][9] == "80000",
        "{:?}",
        sections["report"]
    );

    // Only the regulator reads them: a bank and a consumer are refused, nobody is asked in.
    let bank = server.api.signed_as(tally_sdk::Credential::of_party(
        Party::Institution(BANK_A),
        institution_key(BANK_A),
    ));
    let consumer = server.api.signed_as(tally_sdk::Credential::of_party(
        Party::Account(AccountId(PAYEE)),
        wallet_key(PAYEE),
    ));
    for path in [
        "/v1/audit/disputes".to_string(),
        "/v1/audit/sanctioned".to_string(),
        format!("/v1/audit/structuring?{range}"),
    ] {
        for (who, api) in [("bank", &bank), ("consumer", &consumer)] {
            let (status, body) = get_as(api, &path).await?;
            ensure!(
                status == StatusCode::FORBIDDEN && body["code"] == "OUT_OF_SCOPE",
                "{who} {path}: {status} {body}"
            );
        }
        let (status, body) = get_as(&server.api.anonymous(), &path).await?;
        ensure!(
            status == StatusCode::UNAUTHORIZED && body["code"] == "CREDENTIALS_REQUIRED",
            "{path}: {status} {body}"
        );
    }

    // Decided, the dispute is gone from the list; the other stays.
    commit(
        &cluster,
        &[sign(
            Party::Institution(BANK_A),
            1,
            &[&bank_a],
            TxKind::DecideDispute {
                disputed: Disputed::Order(OrderId(1)),
                outcome: DisputeOutcome::Refund,
            },
        )],
    )
    .await?;
    let listed = get_json(addr, "/v1/audit/disputes").await?;
    let disputes = listed["disputes"].as_array().context("disputes")?;
    ensure!(disputes.len() == 1, "{listed}");
    ensure!(disputes[0]["disputed"]["Order"] == 2, "{listed}");
    server.stop().await?;
    cluster.shutdown().await
}

/// POST a JSON body as `as_whom`: (status, JSON body or null).
async fn post_as(
    as_whom: &tally_sdk::Api,
    path: &str,
    body: &Value,
) -> Result<(StatusCode, Value)> {
    let request = as_whom.request(
        hyper::Method::POST,
        path,
        &[("content-type", "application/json")],
        serde_json::to_vec(body)?,
    );
    let answer = tokio::time::timeout(http::REQUEST_WAIT, request)
        .await
        .with_context(|| format!("POST {path}: no answer"))??;
    let body = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    Ok((answer.status, body))
}

fn alerts_of<'a>(listed: &'a Value, kind: &str) -> Vec<&'a Value> {
    listed["alerts"]
        .as_array()
        .map(|all| all.iter().filter(|a| a["kind"] == kind).collect())
        .unwrap_or_default()
}

/// Alerts a supervisor triages, on the audit node: the large payments, a payment stopped by
/// a freeze, and a validator missing votes while it is down, each with the time the node
/// first listed it; acknowledged by the regulator once, kept across requests. Attackers: a
/// bank acknowledging an alert away (refused, the alert stays open), anyone acknowledging
/// a key the node never listed (nothing written), a second acknowledgement rewriting the
/// first (refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_listed_with_their_first_sighting_and_acknowledged_by_the_regulator_alone()
-> Result<()> {
    let Setup {
        mut cluster,
        servers,
        audit,
        validator,
        expected,
        ..
    } = setup().await?;
    // Frozen wallet 8 tries to pay: the ledger refuses it.
    let stopped = transfer(8, 1, 4, 10);
    cluster
        .submit_all(std::slice::from_ref(&stopped), |_| 0)
        .await?;
    let receipt = cluster.wait_committed(0, &stopped.hash()).await?;
    ensure!(
        receipt.result == Err(Rejection::AccountFrozen),
        "{receipt:?}"
    );
    // Validator 3 stops; the other three go on committing (heartbeat blocks), without it.
    cluster.take(3)?.kill().await;
    let down_from = cluster.height(0)? + 1;
    // At least 25 blocks: an hour's boundary among them still leaves 13 on one side.
    cluster.wait_height(0, down_from + 25).await?;
    let head = cluster.height(0)?;
    cluster.wait_height(AUDIT, head).await?;

    let path = format!("/v1/audit/alerts?from=1&to={head}&threshold={THRESHOLD}");
    let listed = get_json(audit, &path).await?;
    let large: BTreeSet<String> = alerts_of(&listed, "large_transaction")
        .iter()
        .filter_map(|a| a["tx"].as_str().map(str::to_string))
        .collect();
    ensure!(large == expected.large, "{listed}");
    let refused = alerts_of(&listed, "stopped");
    ensure!(
        refused.len() == 1 && refused[0]["tx"] == stopped.hash().to_hex(),
        "{listed}"
    );
    ensure!(refused[0]["account"] == 8, "{listed}");
    // Missed votes, counted from the blocks after validator 3 stopped: it alone.
    let since = format!("/v1/audit/alerts?from={down_from}&to={head}&threshold={THRESHOLD}");
    let later = get_json(audit, &since).await?;
    let missed: BTreeSet<String> = alerts_of(&later, "missed_votes")
        .iter()
        .filter_map(|a| a["validator"].as_str().map(str::to_string))
        .collect();
    ensure!(
        missed == BTreeSet::from([validator_key(3).public_key().to_hex()]),
        "{later}"
    );
    // First seen once: the same time on the next listing.
    let again = get_json(audit, &path).await?;
    let first_seen = |v: &Value, key: &Value| {
        v["alerts"]
            .as_array()
            .and_then(|all| all.iter().find(|a| a["key"] == *key))
            .map(|a| a["first_seen_ms"].clone())
    };
    let key = refused[0]["key"].clone();
    ensure!(first_seen(&listed, &key).is_some_and(|t| t.as_u64() > Some(0)));
    ensure!(
        first_seen(&listed, &key) == first_seen(&again, &key),
        "{again}"
    );
    let open = listed["open"].as_u64().context("open")?;
    ensure!(open as usize == listed["alerts"].as_array().map_or(0, Vec::len));

    // Bank A may neither read nor acknowledge them; anonymous callers are asked in.
    let regulator = http::client(audit)?;
    let bank = regulator.signed_as(tally_sdk::Credential::of_party(
        Party::Institution(BANK_A),
        institution_key(BANK_A),
    ));
    let ack = "/v1/audit/alerts/acknowledge";
    let body = serde_json::json!({ "key": key, "note": "case 2026-131 opened" });
    let (status, answer) = post_as(&bank, ack, &body).await?;
    ensure!(
        status == StatusCode::FORBIDDEN && answer["code"] == "OUT_OF_SCOPE",
        "{status} {answer}"
    );
    let (status, answer) = get_as(&bank, &path).await?;
    ensure!(status == StatusCode::FORBIDDEN, "{status} {answer}");
    let (status, _) = post_as(&regulator.anonymous(), ack, &body).await?;
    ensure!(status == StatusCode::UNAUTHORIZED, "{status}");
    // A key the node never listed, a note too long or with control characters, a body
    // that is not the request: refused, nothing written.
    for (bad, code) in [
        (
            serde_json::json!({ "key": "stopped:00", "note": "" }),
            "NO_SUCH_ALERT",
        ),
        (
            serde_json::json!({ "key": key, "note": "x".repeat(501) }),
            "BAD_NOTE",
        ),
        (
            serde_json::json!({ "key": key, "note": "a\u{7}b" }),
            "BAD_NOTE",
        ),
        (serde_json::json!({ "alert": key }), "BAD_BODY"),
    ] {
        let (status, answer) = post_as(&regulator, ack, &bad).await?;
        ensure!(
            answer["code"] == code && status.is_client_error(),
            "{bad}: {status} {answer}"
        );
    }
    let unchanged = get_json(audit, &path).await?;
    ensure!(unchanged["open"] == open, "{unchanged}");
    // A validator lists the same alerts but keeps no triage (a listing takes no write lock
    // from its commits), and sends acknowledgements to the audit node.
    let on_validator = get_json(validator, &path).await?;
    ensure!(
        on_validator["alerts"].as_array().map(Vec::len)
            == listed["alerts"].as_array().map(Vec::len)
            && on_validator["alerts"]
                .as_array()
                .is_some_and(|all| all.iter().all(|a| a["first_seen_ms"].is_null())),
        "{on_validator}"
    );
    let (status, answer) = post_as(&http::client(validator)?, ack, &body).await?;
    ensure!(
        status == StatusCode::CONFLICT && answer["code"] == "NOT_AN_AUDIT_NODE",
        "{status} {answer}"
    );

    // The regulator acknowledges it once; the second is refused and changes nothing.
    let (status, answer) = post_as(&regulator, ack, &body).await?;
    ensure!(status == StatusCode::OK, "{status} {answer}");
    ensure!(
        answer["acknowledged"]["by"] == REGULATOR.0
            && answer["acknowledged"]["note"] == "case 2026-131 opened",
        "{answer}"
    );
    let again = serde_json::json!({ "key": key, "note": "rewritten" });
    let (status, answer) = post_as(&regulator, ack, &again).await?;
    ensure!(
        status == StatusCode::CONFLICT && answer["code"] == "ALREADY_ACKNOWLEDGED",
        "{status} {answer}"
    );
    let after = get_json(audit, &path).await?;
    ensure!(after["open"].as_u64() == Some(open - 1), "{after}");
    let triaged = after["alerts"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["key"] == key))
        .context("the acknowledged alert is still listed")?;
    ensure!(
        triaged["acknowledged"]["note"] == "case 2026-131 opened",
        "{triaged}"
    );
    // Open alerts come first, the acknowledged one after them.
    let last = after["alerts"].as_array().and_then(|a| a.last()).cloned();
    ensure!(last.is_some_and(|a| a["key"] == key), "{after}");
    for server in servers {
        server.stop().await?;
    }
    cluster.shutdown().await
}
