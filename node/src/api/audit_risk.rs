//! The regulator's watch over disputes, sanctions and structuring, under `/v1/audit`: open
//! disputes oldest first with their age, the identities on the sanctions list with the
//! accounts each listing stops, and structuring alerts over a block range. `report.rs`
//! puts the same tables beside the large transactions.
//!
//! Disputes and sanctions are state, read at the head through `tally_contracts::query` in
//! bounded pages with a cursor; structuring alerts come from one pass over a block range's
//! movements (`audit_scan::scan_range`) handed to the pure
//! `tally_contracts::structuring::structuring_alerts`. Every request runs as an audit scan
//! (`audit_scan::scan`): on the blocking pool, within the node's and the client's share.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tally_contracts::query::{self, SanctionsCursor};
use tally_contracts::structuring::{ObservedMovement, StructuringRule, structuring_alerts};
use tally_contracts::{
    Account, AccountId, AccountKind, BillId, Currency, DisputeOutcome, DisputeReason, Disputed,
    InstitutionId, Ledger, OrderId, TransferId,
};
use tally_crypto::Hash;

use super::audit::threshold;
use super::audit_scan::{AccountBook, BlockRange, MovementItem, RangeQuery, scan, scan_range};
use super::error::ApiError;
use super::fair::ClientKey;
use super::params::{self, ApiQuery};
use super::{ApiState, at_head};
use crate::storage::Storage;

/// The most open disputes one page lists.
pub const DISPUTES_PAGE_MAX: usize = 1_000;
/// The most accounts (and the most listed identities) one page of the sanctions list reads.
pub const SANCTIONED_PAGE_MAX: usize = 1_000;
/// The most structuring alerts one answer lists; `truncated` says when there were more.
pub const STRUCTURING_ALERTS_MAX: usize = 1_000;
/// Structuring's window unless the request says otherwise: a day.
pub const WINDOW_MS_DEFAULT: u64 = 86_400_000;
/// The widest window: a month of 31 days. Wider would only catch ordinary spending.
pub const WINDOW_MS_MAX: u64 = 31 * 86_400_000;
/// Movements just below the threshold that make a finding unless the request says otherwise.
pub const COUNT_MIN_DEFAULT: usize = 3;
/// The largest `count_min` accepted (a bound on nonsense, not on work).
pub const COUNT_MIN_MAX: usize = 100_000;

#[derive(Debug, Deserialize)]
pub struct DisputesQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// An open dispute as the regulator reads it.
#[derive(Debug, Clone, Serialize)]
pub struct OpenDisputeView {
    /// `{ "Order": id }`, `{ "Bill": id }` or `{ "Payment": transfer id }`.
    pub disputed: Disputed,
    /// The hold on the disputed amount.
    pub hold: u128,
    pub payer: AccountId,
    pub merchant: AccountId,
    /// Where the amount is held: the merchant, or its acquirer's settlement account.
    pub held_from: AccountId,
    pub refund_to: AccountId,
    pub amount: u64,
    pub currency: String,
    pub reason: DisputeReason,
    /// Who decides: the card's bank or the wallet's institution.
    pub decider: InstitutionId,
    pub opened_at_ms: u64,
    pub deadline_ms: u64,
    /// How it ends if undecided at the deadline.
    pub default_outcome: DisputeOutcome,
    /// From its opening to the head's block time.
    pub age_ms: u64,
    /// As `after`: where a page that ends with this dispute goes on.
    pub cursor: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DisputesView {
    /// The committed height the disputes were read at.
    pub height: u64,
    /// That block's time: ages are counted to it.
    pub time_ms: u64,
    /// Oldest first.
    pub disputes: Vec<OpenDisputeView>,
    /// Pass as `after` for the next page; absent once the last open dispute was listed.
    pub next_after: Option<String>,
}

/// What is disputed as text: `order:ID`, `bill:ID` or `payment:TRANSFER_ID`.
pub fn disputed_text(disputed: Disputed) -> String {
    match disputed {
        Disputed::Order(o) => format!("order:{}", o.0),
        Disputed::Bill(b) => format!("bill:{}", b.0),
        Disputed::Payment(t) => format!("payment:{}", t.0),
    }
}

/// `{opened_at_ms}:{disputed_text}`.
fn dispute_cursor_text(c: &query::OpenDisputesCursor) -> String {
    format!("{}:{}", c.opened_at_ms, disputed_text(c.disputed))
}

fn dispute_cursor(text: &str) -> Result<query::OpenDisputesCursor, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "BAD_CURSOR",
            format!(
                "after must be \"opened_at_ms:order|bill|payment:id\" (a dispute's cursor), \
                 not {text:?}"
            ),
        )
    };
    let mut parts = text.splitn(3, ':');
    let (Some(at), Some(kind), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let opened_at_ms: u64 = at.parse().map_err(|_| bad())?;
    let id: u128 = id.parse().map_err(|_| bad())?;
    let disputed = match kind {
        "order" => Disputed::Order(OrderId(id)),
        "bill" => Disputed::Bill(BillId(id)),
        "payment" => Disputed::Payment(TransferId(id)),
        _ => return Err(bad()),
    };
    Ok(query::OpenDisputesCursor {
        opened_at_ms,
        disputed,
    })
}

/// Open disputes after `after`, oldest first, at most `limit`, aged at the head's block time.
pub fn open_disputes(
    storage: &Storage,
    after: Option<query::OpenDisputesCursor>,
    limit: usize,
) -> Result<DisputesView, ApiError> {
    let (height, (time_ms, mut aged)) = at_head(storage, |s| {
        let now = Ledger::chain_head(s)?.map_or(0, |h| h.time_ms);
        // One more than asked: whether a next page exists, without an empty last page.
        Ok((
            now,
            query::open_disputes(s, after, limit.saturating_add(1), now)?,
        ))
    })?;
    let more = aged.len() > limit;
    aged.truncate(limit);
    let mut book = AccountBook::default();
    let mut disputes = Vec::with_capacity(aged.len());
    for a in aged {
        let d = a.dispute;
        let (currency, _) = book.of(storage, d.held_from)?;
        let cursor = dispute_cursor_text(&query::OpenDisputesCursor {
            opened_at_ms: d.opened_at_ms,
            disputed: d.disputed,
        });
        disputes.push(OpenDisputeView {
            disputed: d.disputed,
            hold: d.hold.0,
            payer: d.payer,
            merchant: d.merchant,
            held_from: d.held_from,
            refund_to: d.refund_to,
            amount: d.amount,
            currency: currency.to_string(),
            reason: d.reason,
            decider: d.decider,
            opened_at_ms: d.opened_at_ms,
            deadline_ms: d.deadline_ms,
            default_outcome: d.default_outcome,
            age_ms: a.age_ms,
            cursor,
        });
    }
    let next_after = if more {
        disputes.last().map(|d| d.cursor.clone())
    } else {
        None
    };
    Ok(DisputesView {
        height,
        time_ms,
        disputes,
        next_after,
    })
}

/// `GET /v1/audit/disputes`: open disputes, oldest first, with their age.
pub async fn disputes_view(
    State(api): ApiState,
    Extension(client): Extension<ClientKey>,
    ApiQuery(q): ApiQuery<DisputesQuery>,
) -> Result<Json<DisputesView>, ApiError> {
    let after = q.after.as_deref().map(dispute_cursor).transpose()?;
    let limit = params::page_limit(q.limit, 100, DISPUTES_PAGE_MAX)?;
    scan(&api, client, move |storage| {
        Ok(Json(open_disputes(storage, after, limit)?))
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct SanctionedQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

/// An account a listing stops.
#[derive(Debug, Clone, Serialize)]
pub struct ListedAccount {
    pub id: AccountId,
    pub kind: AccountKind,
    pub currency: String,
    pub institution: InstitutionId,
    pub balance: i128,
    /// Frozen besides (a freeze is the regulator's other, per-account stop).
    pub frozen: bool,
}

impl From<&Account> for ListedAccount {
    fn from(a: &Account) -> ListedAccount {
        ListedAccount {
            id: a.id,
            kind: a.kind,
            currency: a.currency.to_string(),
            institution: a.institution,
            balance: a.balance(),
            frozen: a.frozen,
        }
    }
}

/// An identity on the sanctions list and the accounts registered with it (none when it was
/// listed before it registered anywhere: the listing then stops its registration).
#[derive(Debug, Clone, Serialize)]
pub struct ListedIdentity {
    pub identity: Hash,
    /// In id order; on a page that goes on with this identity, only the first of them.
    pub accounts: Vec<ListedAccount>,
    /// Whether the next page goes on with more of this identity's accounts.
    pub more_accounts: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SanctionedView {
    pub height: u64,
    /// Listed identities in digest order.
    pub identities: Vec<ListedIdentity>,
    /// Pass as `cursor` for the next page; absent at the end of the list.
    pub next_cursor: Option<String>,
}

/// `{identity hex}` (that identity's accounts from the first) or `{identity hex}:{account}`
/// (its accounts after that one).
fn sanctions_cursor_text(c: &SanctionsCursor) -> String {
    match c.after {
        None => c.identity.to_hex(),
        Some(a) => format!("{}:{}", c.identity.to_hex(), a.0),
    }
}

fn sanctions_cursor(text: &str) -> Result<SanctionsCursor, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "BAD_CURSOR",
            format!(
                "cursor must be \"IDENTITY\" or \"IDENTITY:ACCOUNT\" (64 hex digits, a decimal id), not {text:?}"
            ),
        )
    };
    let (identity, after) = match text.split_once(':') {
        None => (text, None),
        Some((identity, account)) => (
            identity,
            Some(AccountId(account.parse().map_err(|_| bad())?)),
        ),
    };
    Ok(SanctionsCursor {
        identity: Hash::from_hex(identity).map_err(|_| bad())?,
        after,
    })
}

/// One page of the sanctions list from `from` (the start when `None`): at most `limit`
/// identities and `limit` accounts, an identity without accounts counted as one. Each
/// identity costs a keyed read and two bounded scans.
fn sanctioned_page(
    store: &Storage,
    from: Option<SanctionsCursor>,
    limit: usize,
) -> Result<(Vec<ListedIdentity>, Option<SanctionsCursor>), ApiError> {
    let first_after = |after: Option<Hash>| -> Result<Option<SanctionsCursor>, ApiError> {
        Ok(query::sanctions(store, after, 1)?
            .first()
            .map(|identity| SanctionsCursor {
                identity: *identity,
                after: None,
            }))
    };
    let mut next = match from {
        Some(cursor) => Some(cursor),
        None => first_after(None)?,
    };
    let mut listed = Vec::new();
    let mut rows = 0usize;
    while let Some(cursor) = next {
        if rows >= limit {
            return Ok((listed, Some(cursor)));
        }
        next = first_after(Some(cursor.identity))?;
        // A cursor's identity may have left the list since the page before.
        if !query::is_sanctioned(store, cursor.identity)? {
            continue;
        }
        let room = limit - rows;
        let mut accounts =
            query::identity_accounts(store, cursor.identity, cursor.after, room.saturating_add(1))?;
        let more_accounts = accounts.len() > room;
        accounts.truncate(room);
        rows = rows.saturating_add(accounts.len().max(1));
        let last = accounts.last().map(|a| a.id);
        listed.push(ListedIdentity {
            identity: cursor.identity,
            accounts: accounts.iter().map(ListedAccount::from).collect(),
            more_accounts,
        });
        if more_accounts {
            return Ok((
                listed,
                Some(SanctionsCursor {
                    identity: cursor.identity,
                    after: last,
                }),
            ));
        }
    }
    Ok((listed, None))
}

pub fn sanctioned(
    storage: &Storage,
    from: Option<SanctionsCursor>,
    limit: usize,
) -> Result<SanctionedView, ApiError> {
    let (height, (identities, next)) = at_head(storage, |s| sanctioned_page(s, from, limit))?;
    Ok(SanctionedView {
        height,
        identities,
        next_cursor: next.as_ref().map(sanctions_cursor_text),
    })
}

/// `GET /v1/audit/sanctioned`: listed identities and the accounts each listing stops.
pub async fn sanctioned_view(
    State(api): ApiState,
    Extension(client): Extension<ClientKey>,
    ApiQuery(q): ApiQuery<SanctionedQuery>,
) -> Result<Json<SanctionedView>, ApiError> {
    let from = q.cursor.as_deref().map(sanctions_cursor).transpose()?;
    let limit = params::page_limit(q.limit, 100, SANCTIONED_PAGE_MAX)?;
    scan(&api, client, move |storage| {
        Ok(Json(sanctioned(storage, from, limit)?))
    })
    .await
}

/// The structuring rule's parameters as a query gives them (text: see `RangeQuery`).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RuleQuery {
    pub threshold: Option<String>,
    pub floor: Option<String>,
    pub window_ms: Option<String>,
    pub count_min: Option<String>,
    pub sum_min: Option<String>,
}

/// An optional whole number within `range`, or a 400 with `code`.
fn bounded<T>(
    text: Option<&str>,
    code: &'static str,
    what: &str,
    range: std::ops::RangeInclusive<T>,
) -> Result<Option<T>, ApiError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let Some(text) = text else {
        return Ok(None);
    };
    match text.parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(ApiError::bad_request(
            code,
            format!(
                "{what} is a whole number from {} to {}, not {text:?}",
                range.start(),
                range.end()
            ),
        )),
    }
}

impl RuleQuery {
    /// The rule asked for. Defaults: `threshold` as given by the caller; `floor` 80% of the
    /// threshold (rounded up); a day's window; 3 movements; a sum of the threshold.
    pub fn resolve(&self, threshold_default: Option<u64>) -> Result<StructuringRule, ApiError> {
        let threshold = threshold(self.threshold.as_deref(), threshold_default)?;
        let floor = match self.floor.as_deref() {
            None => threshold - threshold / 5,
            // At or above the threshold nothing would be "just below" it.
            Some(text) => match text.parse::<u64>() {
                Ok(f) if (1..threshold).contains(&f) => f,
                _ => {
                    return Err(ApiError::bad_request(
                        "BAD_FLOOR",
                        format!(
                            "floor is a whole amount from 1 to below the threshold {threshold}, \
                             not {text:?}"
                        ),
                    ));
                }
            },
        };
        let window_ms = bounded(
            self.window_ms.as_deref(),
            "BAD_WINDOW",
            "window_ms",
            1..=WINDOW_MS_MAX,
        )?
        .unwrap_or(WINDOW_MS_DEFAULT);
        let count_min = bounded(
            self.count_min.as_deref(),
            "BAD_COUNT",
            "count_min",
            2..=COUNT_MIN_MAX,
        )?
        .unwrap_or(COUNT_MIN_DEFAULT);
        let sum_min = bounded(self.sum_min.as_deref(), "BAD_SUM", "sum_min", 1..=u128::MAX)?
            .unwrap_or(u128::from(threshold));
        Ok(StructuringRule {
            threshold,
            floor,
            window_ms,
            count_min,
            sum_min,
        })
    }
}

/// One movement of an alert.
#[derive(Debug, Clone, Serialize)]
pub struct AlertMovement {
    pub height: u64,
    /// Absent for money a hold released at block time.
    pub index: Option<u32>,
    pub hash: Option<Hash>,
    pub time_ms: u64,
    /// The paying customer's account.
    pub account: AccountId,
    pub amount: u64,
}

/// A person's movements just below the threshold, close together in time.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    /// The identity digest of the accounts that paid.
    pub person: Hash,
    pub currency: String,
    pub first_ms: u64,
    pub last_ms: u64,
    pub count: usize,
    pub sum: u128,
    /// The person's accounts among the movements, in id order.
    pub accounts: Vec<AccountId>,
    /// Oldest first.
    pub movements: Vec<AlertMovement>,
}

/// A movement from the block time (a hold released by expiry) has no index in its block;
/// the observation carries this instead, past any index a block can hold.
const NO_INDEX: u32 = u32::MAX;

/// What a scan hands over for structuring: the movements just below the threshold, each
/// with the person who paid (customers' accounts only: an institution's account is no
/// person), and the hashes of their transactions.
#[derive(Debug)]
pub struct StructuringWatch {
    rule: StructuringRule,
    currency: Option<Currency>,
    /// The identity digest of each paying account seen, `None` for institutions' accounts.
    persons: BTreeMap<AccountId, Option<Hash>>,
    near: Vec<ObservedMovement>,
    hashes: BTreeMap<(u64, u32), Hash>,
}

impl StructuringWatch {
    pub fn new(rule: StructuringRule, currency: Option<Currency>) -> StructuringWatch {
        StructuringWatch {
            rule,
            currency,
            persons: BTreeMap::new(),
            near: Vec::new(),
            hashes: BTreeMap::new(),
        }
    }

    pub fn observe(&mut self, storage: &Storage, item: &MovementItem) -> Result<(), ApiError> {
        let amount = item.amount;
        if amount < self.rule.floor || amount >= self.rule.threshold {
            return Ok(());
        }
        let currency = item.movement.currency;
        if self.currency.is_some_and(|c| c != currency) {
            return Ok(());
        }
        let person = match self.persons.get(&item.payer) {
            Some(found) => *found,
            None => {
                let found = query::account(storage, item.payer)?
                    .filter(|a| a.kind.has_holder())
                    .map(|a| a.holder.identity);
                self.persons.insert(item.payer, found);
                found
            }
        };
        let Some(person) = person else {
            return Ok(());
        };
        let index = item.index.unwrap_or(NO_INDEX);
        if let (Some(i), Some(hash)) = (item.index, item.hash) {
            self.hashes.insert((item.height, i), hash);
        }
        self.near.push(ObservedMovement {
            person,
            account: item.payer,
            currency,
            amount,
            time_ms: item.time_ms,
            height: item.height,
            index,
        });
        Ok(())
    }

    /// The alerts, at most [`STRUCTURING_ALERTS_MAX`], and whether there were more.
    pub fn alerts(&self) -> (Vec<AlertView>, bool) {
        let all = structuring_alerts(&self.near, &self.rule);
        let truncated = all.len() > STRUCTURING_ALERTS_MAX;
        let views = all
            .into_iter()
            .take(STRUCTURING_ALERTS_MAX)
            .map(|a| {
                let accounts: BTreeSet<AccountId> = a.movements.iter().map(|m| m.account).collect();
                AlertView {
                    person: a.person,
                    currency: a.currency.to_string(),
                    first_ms: a.first_ms,
                    last_ms: a.last_ms,
                    count: a.count,
                    sum: a.sum,
                    accounts: accounts.into_iter().collect(),
                    movements: a
                        .movements
                        .iter()
                        .map(|m| {
                            let index = (m.index != NO_INDEX).then_some(m.index);
                            AlertMovement {
                                height: m.height,
                                index,
                                hash: index.and_then(|i| self.hashes.get(&(m.height, i)).copied()),
                                time_ms: m.time_ms,
                                account: m.account,
                                amount: m.amount,
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        (views, truncated)
    }
}

#[derive(Debug, Deserialize)]
pub struct StructuringQuery {
    #[serde(flatten)]
    range: RangeQuery,
    #[serde(flatten)]
    rule: RuleQuery,
    currency: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StructuringView {
    pub range: BlockRange,
    pub rule: StructuringRule,
    pub currency: Option<String>,
    /// By person, currency and time.
    pub alerts: Vec<AlertView>,
    /// Whether more than [`STRUCTURING_ALERTS_MAX`] alerts were found.
    pub truncated: bool,
}

/// `GET /v1/audit/structuring`: structuring alerts over a block range.
pub async fn structuring_view(
    State(api): ApiState,
    Extension(client): Extension<ClientKey>,
    ApiQuery(q): ApiQuery<StructuringQuery>,
) -> Result<Json<StructuringView>, ApiError> {
    let rule = q.rule.resolve(Some(super::report::THRESHOLD_DEFAULT))?;
    let currency = q.currency.as_deref().map(params::currency).transpose()?;
    let range = q.range.resolve(&api.ctx.storage)?;
    scan(&api, client, move |storage| {
        let mut book = AccountBook::default();
        let mut watch = StructuringWatch::new(rule, currency);
        scan_range(storage, range, &mut book, &mut |s, _, item| {
            watch.observe(s, &item)
        })?;
        let (alerts, truncated) = watch.alerts();
        Ok(Json(StructuringView {
            range,
            rule,
            currency: currency.map(|c| c.to_string()),
            alerts,
            truncated,
        }))
    })
    .await
}
