//! The regulator's read-only audit endpoints, under `/v1/audit`: net positions per
//! institution and currency, large transactions, frozen accounts and held funds, and a
//! per-account statement. `report.rs` bundles them for a block range.
//!
//! Everything is read from committed storage: state at the head through
//! `tally_contracts::query`, and the money each block moved from its stored results (see
//! `audit_scan.rs`). Every scan is bounded: a block range holds at most
//! `RANGE_BLOCKS_MAX` blocks, or the request is answered 400 `RANGE_TOO_LARGE`; state
//! scans read at most a fixed number of records per request and say where to page on.
//! Scans run on the blocking pool, a few at a time (429 `TOO_MANY_SCANS`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tally_contracts::query::{self, Obligation};
use tally_contracts::{Account, AccountId, AccountKind, Currency, InstitutionId, net_positions};
use tally_crypto::Hash;

use super::audit_scan::{
    AccountBook, BlockRange, FlowSums, FlowView, MovementItem, PositionView, RangeQuery, scan,
    scan_range,
};
use super::error::ApiError;
use super::fair::ClientKey;
use super::params::{self, ApiPath, ApiQuery};
use super::{ApiState, at_head};
use crate::storage::Storage;

/// A statement's balances are carried from the head back, or from genesis forward: at most
/// this many blocks are read for one statement.
pub const STATEMENT_SCAN_BLOCKS_MAX: u64 = 100_000;
/// The most accounts one page of the frozen-accounts scan reads (one state read, so it
/// stays short beside a busy chain's commits).
pub const ACCOUNTS_SCAN_MAX: usize = 20_000;
/// The most pages of accounts a report reads for its frozen-accounts table.
pub const REPORT_ACCOUNT_PAGES_MAX: usize = 50;
/// The most frozen accounts one answer lists.
pub const FROZEN_PAGE_MAX: usize = 1_000;
/// The most open holds read.
pub const HOLDS_MAX: usize = 10_000;
/// The most open obligations read (a settlement cycle nets at most as many).
pub const OBLIGATIONS_MAX: usize = 10_000;
/// The most large transactions one answer lists; `next_from` says where to go on.
pub const LARGE_TRANSACTIONS_MAX: usize = 1_000;

/// Open obligations and the net positions they make, at the head.
#[derive(Debug, Clone, Serialize)]
pub struct OpenPositions {
    /// What a settlement cycle would net now: positive receives, negative pays.
    pub positions: Vec<PositionView>,
    pub obligations: Vec<ObligationView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObligationView {
    pub currency: String,
    pub from: InstitutionId,
    pub to: InstitutionId,
    pub amount: u128,
}

pub fn open_positions(storage: &Storage) -> Result<OpenPositions, ApiError> {
    let obligations = query::obligations(storage, OBLIGATIONS_MAX)?;
    let all: Vec<_> = obligations
        .iter()
        .map(|o| (o.currency, o.from, o.to, o.amount))
        .collect();
    Ok(OpenPositions {
        positions: net_positions(&all).iter().map(PositionView::from).collect(),
        obligations: obligations
            .iter()
            .map(|o: &Obligation| ObligationView {
                currency: o.currency.to_string(),
                from: o.from,
                to: o.to,
                amount: o.amount,
            })
            .collect(),
    })
}

#[derive(Debug, Deserialize)]
pub struct PositionsQuery {
    #[serde(flatten)]
    range: RangeQuery,
    currency: Option<String>,
    institution: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PositionsView {
    /// The committed height the open positions were read at.
    height: u64,
    open: OpenPositions,
    range: BlockRange,
    /// Interbank flows in `range`, per currency and institution.
    flows: Vec<FlowView>,
}

fn filters(
    currency: Option<&str>,
    institution: Option<&str>,
) -> Result<(Option<String>, Option<InstitutionId>), ApiError> {
    let currency = currency
        .map(params::currency)
        .transpose()?
        .map(|c| c.to_string());
    let institution = institution
        .map(|i| params::decimal("institution", i).map(InstitutionId))
        .transpose()?;
    Ok((currency, institution))
}

/// `GET /v1/audit/net-positions`: open positions at the head, flows over a range.
pub async fn net_positions_view(
    State(api): ApiState,
    Extension(client): Extension<ClientKey>,
    ApiQuery(q): ApiQuery<PositionsQuery>,
) -> Result<Json<PositionsView>, ApiError> {
    let (currency, institution) = filters(q.currency.as_deref(), q.institution.as_deref())?;
    let range = q.range.resolve(&api.ctx.storage)?;
    let keep = move |c: &str, i: InstitutionId| {
        currency.as_deref().is_none_or(|x| x == c) && institution.is_none_or(|x| x == i)
    };
    scan(&api, client, move |storage| {
        let (height, mut open) = at_head(storage, open_positions)?;
        let mut book = AccountBook::default();
        let mut sums = FlowSums::default();
        scan_range(storage, range, &mut book, &mut |s, b, item| {
            sums.add(s, b, &item)
        })?;
        let mut flows = sums.views();
        open.positions.retain(|p| keep(&p.currency, p.institution));
        open.obligations
            .retain(|o| keep(&o.currency, o.from) || keep(&o.currency, o.to));
        flows.retain(|f| keep(&f.currency, f.institution));
        Ok(Json(PositionsView {
            height,
            open,
            range,
            flows,
        }))
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct LargeQuery {
    #[serde(flatten)]
    range: RangeQuery,
    threshold: Option<String>,
    currency: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LargeView {
    range: BlockRange,
    threshold: u64,
    currency: Option<String>,
    /// Oldest first.
    items: Vec<MovementItem>,
    /// Set when the answer stopped at [`LARGE_TRANSACTIONS_MAX`] items: ask again from here.
    next_from: Option<u64>,
}

/// The threshold in minor units: a movement of at least this much is large.
pub fn threshold(text: Option<&str>, default: Option<u64>) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "BAD_THRESHOLD",
            "threshold is a whole amount in minor units, at least 1",
        )
    };
    match text {
        None => default.ok_or_else(bad),
        Some(t) => match t.parse::<u64>() {
            Ok(0) | Err(_) => Err(bad()),
            Ok(n) => Ok(n),
        },
    }
}

/// Large movements of `range`, at most [`LARGE_TRANSACTIONS_MAX`] (whole blocks), and the
/// height to go on from when cut.
pub fn large_movements(
    storage: &Storage,
    range: BlockRange,
    threshold: u64,
    currency: Option<&str>,
    book: &mut AccountBook,
) -> Result<(Vec<MovementItem>, Option<u64>), ApiError> {
    let mut items = Vec::new();
    let mut height = range.from;
    while height <= range.to {
        // Block by block, so a cut falls between blocks.
        let one = BlockRange {
            from: height,
            to: height,
        };
        scan_range(storage, one, book, &mut |_, _, m| {
            if m.amount >= threshold && currency.is_none_or(|c| c == m.currency) {
                items.push(m);
            }
            Ok(())
        })?;
        height += 1;
        if items.len() >= LARGE_TRANSACTIONS_MAX && height <= range.to {
            return Ok((items, Some(height)));
        }
    }
    Ok((items, None))
}

/// `GET /v1/audit/large-transactions`: movements of at least `threshold` in a range.
pub async fn large_transactions(
    State(api): ApiState,
    Extension(client): Extension<ClientKey>,
    ApiQuery(q): ApiQuery<LargeQuery>,
) -> Result<Json<LargeView>, ApiError> {
    let threshold = threshold(q.threshold.as_deref(), None)?;
    let currency = q
        .currency
        .as_deref()
        .map(params::currency)
        .transpose()?
        .map(|c| c.to_string());
    let range = q.range.resolve(&api.ctx.storage)?;
    scan(&api, client, move |storage| {
        let mut book = AccountBook::default();
        let (items, next_from) =
            large_movements(storage, range, threshold, currency.as_deref(), &mut book)?;
        Ok(Json(LargeView {
            range,
            threshold,
            currency,
            items,
            next_from,
        }))
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct FrozenQuery {
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FrozenAccount {
    pub id: AccountId,
    pub kind: AccountKind,
    pub currency: String,
    pub institution: InstitutionId,
    /// Posted balance, which cannot move while the account is frozen.
    pub balance: i128,
    pub debits_pending: u128,
    pub credits_pending: u128,
}

impl From<&Account> for FrozenAccount {
    fn from(a: &Account) -> FrozenAccount {
        FrozenAccount {
            id: a.id,
            kind: a.kind,
            currency: a.currency.to_string(),
            institution: a.institution,
            balance: a.balance(),
            debits_pending: a.debits_pending,
            credits_pending: a.credits_pending,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HoldView {
    pub id: u128,
    pub debit: AccountId,
    pub credit: AccountId,
    pub amount: u64,
    pub currency: String,
    pub expires_at_ms: u64,
    pub purpose: tally_contracts::HoldPurpose,
}

#[derive(Debug, Clone, Serialize)]
pub struct CurrencyTotal {
    pub currency: String,
    pub amount: i128,
}

#[derive(Debug, Clone, Serialize)]
pub struct FrozenView {
    pub height: u64,
    /// Frozen accounts with ids above `after`, in id order.
    pub accounts: Vec<FrozenAccount>,
    /// Posted balances of `accounts`, per currency.
    pub frozen_totals: Vec<CurrencyTotal>,
    /// Money reserved by open holds (escrow, card authorizations), in id order.
    pub holds: Vec<HoldView>,
    pub held_totals: Vec<CurrencyTotal>,
    /// Whether more than [`HOLDS_MAX`] holds are open (only the first are listed).
    pub holds_truncated: bool,
    /// Pass as `after` for the next page; absent once every account was read.
    pub next_after: Option<AccountId>,
}

fn totals(items: impl Iterator<Item = (Currency, i128)>) -> Vec<CurrencyTotal> {
    let mut sums: BTreeMap<Currency, i128> = BTreeMap::new();
    for (currency, amount) in items {
        let sum = sums.entry(currency).or_default();
        *sum = sum.saturating_add(amount);
    }
    sums.into_iter()
        .map(|(currency, amount)| CurrencyTotal {
            currency: currency.to_string(),
            amount,
        })
        .collect()
}

/// One page of frozen accounts after `after`: at most `limit` of them, from at most
/// [`ACCOUNTS_SCAN_MAX`] accounts read, with where the next page starts.
fn frozen_page(
    storage: &Storage,
    after: Option<AccountId>,
    limit: usize,
) -> Result<(u64, Vec<Account>, Option<AccountId>), ApiError> {
    let (height, scanned) = at_head(storage, |s| {
        Ok(query::accounts(s, after, ACCOUNTS_SCAN_MAX)?)
    })?;
    let mut frozen = Vec::new();
    let mut last_read = None;
    for account in scanned.iter() {
        last_read = Some(account.id);
        if account.frozen {
            frozen.push(account.clone());
            if frozen.len() >= limit {
                break;
            }
        }
    }
    let read_all = scanned.len() < ACCOUNTS_SCAN_MAX && last_read == scanned.last().map(|a| a.id);
    Ok((height, frozen, if read_all { None } else { last_read }))
}

/// Frozen accounts after `after` (at most `limit`, reading at most `pages` pages of
/// accounts), and every open hold.
pub fn frozen(
    storage: &Storage,
    after: Option<AccountId>,
    limit: usize,
    pages: usize,
) -> Result<FrozenView, ApiError> {
    let (height, mut accounts, mut next_after) = frozen_page(storage, after, limit)?;
    for _ in 1..pages {
        let Some(from) = next_after.filter(|_| accounts.len() < limit) else {
            break;
        };
        let (_, more, next) = frozen_page(storage, Some(from), limit - accounts.len())?;
        accounts.extend(more);
        next_after = next;
    }
    let holds = at_head(storage, |s| {
        Ok(query::holds(s, HOLDS_MAX.saturating_add(1))?)
    })?
    .1;
    let holds_truncated = holds.len() > HOLDS_MAX;
    let mut book = AccountBook::default();
    let mut hold_views = Vec::with_capacity(holds.len().min(HOLDS_MAX));
    let mut held = Vec::with_capacity(hold_views.capacity());
    for hold in holds.iter().take(HOLDS_MAX) {
        let (currency, _) = book.of(storage, hold.debit)?;
        held.push((currency, i128::from(hold.amount)));
        hold_views.push(HoldView {
            id: hold.id.0,
            debit: hold.debit,
            credit: hold.credit,
            amount: hold.amount,
            currency: currency.to_string(),
            expires_at_ms: hold.expires_at_ms,
            purpose: hold.purpose,
        });
    }
    Ok(FrozenView {
        height,
        frozen_totals: totals(accounts.iter().map(|a| (a.currency, a.balance()))),
        accounts: accounts.iter().map(FrozenAccount::from).collect(),
        holds: hold_views,
        held_totals: totals(held.into_iter()),
        holds_truncated,
        next_after,
    })
}

/// `GET /v1/audit/frozen`: frozen accounts and held funds, at the head.
pub async fn frozen_view(
    State(api): ApiState,
    Extension(client): Extension<ClientKey>,
    ApiQuery(q): ApiQuery<FrozenQuery>,
) -> Result<Json<FrozenView>, ApiError> {
    let after = q
        .after
        .as_deref()
        .map(|a| params::decimal("after", a).map(AccountId))
        .transpose()?;
    let limit = params::page_limit(q.limit, 100, FROZEN_PAGE_MAX)?;
    scan(&api, client, move |storage| {
        Ok(Json(frozen(storage, after, limit, 1)?))
    })
    .await
}

/// One entry of a statement: money in (`credit`) or out (`debit`) of the account.
#[derive(Debug, Clone, Serialize)]
pub struct StatementEntry {
    pub height: u64,
    pub index: Option<u32>,
    pub time_ms: u64,
    pub hash: Option<Hash>,
    pub kind: &'static str,
    pub counterparty: AccountId,
    pub debit: u64,
    pub credit: u64,
    pub balance_after: i128,
    /// The payer's memo or the merchant's QR reference; empty for none.
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    pub account: AccountId,
    pub kind: AccountKind,
    pub currency: String,
    pub institution: InstitutionId,
    pub range: BlockRange,
    /// The posted balance after block `range.from - 1`.
    pub opening_balance: i128,
    pub entries: Vec<StatementEntry>,
    /// The posted balance after block `range.to`.
    pub closing_balance: i128,
    pub total_debits: u128,
    pub total_credits: u128,
    /// The head the balance was carried from (or 0 when carried from genesis).
    pub anchored_at: u64,
}

/// Every posting of `item` touching `account`, as (debit, credit, counterparty).
fn touching(item: &MovementItem, account: AccountId) -> Vec<(u64, u64, AccountId)> {
    item.movement
        .postings
        .iter()
        .filter_map(|p| {
            if p.debit == account {
                Some((p.amount, 0, p.credit))
            } else if p.credit == account {
                Some((0, p.amount, p.debit))
            } else {
                None
            }
        })
        .collect()
}

/// The account's postings in `range`, in chain order, as statement entries with
/// `balance_after` still zero.
fn postings_of(
    storage: &Storage,
    account: AccountId,
    range: BlockRange,
    book: &mut AccountBook,
) -> Result<Vec<StatementEntry>, ApiError> {
    let mut out = Vec::new();
    scan_range(storage, range, book, &mut |_, _, item| {
        for (debit, credit, counterparty) in touching(&item, account) {
            out.push(StatementEntry {
                height: item.height,
                index: item.index,
                time_ms: item.time_ms,
                hash: item.hash,
                kind: item.kind,
                counterparty,
                debit,
                credit,
                balance_after: 0,
                note: item.movement.note.as_str().to_string(),
            });
        }
        Ok(())
    })?;
    Ok(out)
}

fn net_of(entries: &[StatementEntry]) -> i128 {
    entries
        .iter()
        .map(|e| i128::from(e.credit) - i128::from(e.debit))
        .sum()
}

/// The statement of `account` for `range`. Balances are carried from the cheaper anchor:
/// forward from genesis (every account starts at zero), or back from the head's balance.
pub fn statement(
    storage: &Storage,
    account: AccountId,
    range: BlockRange,
) -> Result<Statement, ApiError> {
    let (head, found) = at_head(storage, |s| Ok(query::account(s, account)?))?;
    let record = found.ok_or_else(|| ApiError::not_found("account"))?;
    let forward = range.to;
    let backward = head.saturating_sub(range.from).saturating_add(1);
    if forward.min(backward) > STATEMENT_SCAN_BLOCKS_MAX {
        return Err(ApiError::bad_request(
            "RANGE_TOO_LARGE",
            format!(
                "a statement reads at most {STATEMENT_SCAN_BLOCKS_MAX} blocks from genesis or \
                 from the head; this one needs {}",
                forward.min(backward)
            ),
        ));
    }
    let mut book = AccountBook::default();
    let mut entries = postings_of(storage, account, range, &mut book)?;
    let (opening, anchored_at) = if forward <= backward {
        let before = BlockRange {
            from: 1,
            to: range.from.saturating_sub(1),
        };
        (
            net_of(&postings_of(storage, account, before, &mut book)?),
            0,
        )
    } else {
        let after = BlockRange {
            from: range.to.saturating_add(1),
            to: head,
        };
        let later = net_of(&postings_of(storage, account, after, &mut book)?);
        (record.balance() - later - net_of(&entries), head)
    };
    let mut balance = opening;
    let (mut total_debits, mut total_credits) = (0u128, 0u128);
    for entry in &mut entries {
        balance += i128::from(entry.credit) - i128::from(entry.debit);
        entry.balance_after = balance;
        total_debits = total_debits.saturating_add(u128::from(entry.debit));
        total_credits = total_credits.saturating_add(u128::from(entry.credit));
    }
    Ok(Statement {
        account,
        kind: record.kind,
        currency: record.currency.to_string(),
        institution: record.institution,
        range,
        opening_balance: opening,
        entries,
        closing_balance: balance,
        total_debits,
        total_credits,
        anchored_at,
    })
}

/// `GET /v1/audit/accounts/{id}/statement`.
pub async fn statement_view(
    State(api): ApiState,
    Extension(client): Extension<ClientKey>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Json<Statement>, ApiError> {
    let id = AccountId(params::decimal("account id", &id)?);
    let range = q.resolve(&api.ctx.storage)?;
    if query::account(&api.ctx.storage, id)?.is_none() {
        return Err(ApiError::not_found("account"));
    }
    scan(&api, client, move |storage| {
        Ok(Json(statement(storage, id, range)?))
    })
    .await
}
