//! The regulator's report for a block range: every audit table in one answer, as JSON or
//! as CSV (one section per table: a `# name` line, a header row, the rows, a blank line),
//! which a spreadsheet opens as it is.
//!
//! Tables over the range come from the blocks (interbank flows, large transactions and,
//! beside them, structuring alerts; freezes, settlement cycles, equivocation evidence,
//! statements); tables of state (open positions, frozen accounts, holds, open disputes,
//! the sanctions list's accounts) are read at the head, named in `state_height`.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tally_contracts::AccountId;
use tally_contracts::structuring::StructuringRule;

use super::audit::{self, FrozenView, LARGE_TRANSACTIONS_MAX, OpenPositions, Statement};
use super::audit_risk::{
    self, AlertView, ListedIdentity, OpenDisputeView, RuleQuery, StructuringWatch,
};
use super::audit_scan::{
    self, AccountBook, BlockRange, CycleItem, EvidenceItem, FlowSums, FlowView, FreezeItem,
    MovementItem, RangeQuery, StoppedItem,
};
use super::error::ApiError;
use super::fair::ClientKey;
use super::params::{self, ApiQuery};
use super::{ApiState, NodeStatus, at_head};

/// Movements of at least this many minor units are large unless the request says otherwise.
pub const THRESHOLD_DEFAULT: u64 = 5_000_000;
/// The most accounts whose statements one report carries.
pub const STATEMENTS_MAX: usize = 10;
/// The most open disputes one report lists (oldest first); `/v1/audit/disputes` pages on.
pub const REPORT_DISPUTES_MAX: usize = 1_000;
/// The most sanctioned accounts (and listed identities) one report lists;
/// `/v1/audit/sanctioned` pages on.
pub const REPORT_SANCTIONED_MAX: usize = 1_000;

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    #[serde(flatten)]
    range: RangeQuery,
    /// The large-transaction threshold and the structuring rule around it.
    #[serde(flatten)]
    rule: RuleQuery,
    /// Account ids separated by commas: their statements are included.
    accounts: Option<String>,
    /// `json` (the default) or `csv`.
    format: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    chain_id: String,
    range: BlockRange,
    from_time_ms: Option<u64>,
    to_time_ms: Option<u64>,
    /// The head the state tables were read at.
    state_height: u64,
    node: NodeStatus,
    threshold: u64,
    net_flows: Vec<FlowView>,
    open_positions: OpenPositions,
    large_transactions: Vec<MovementItem>,
    /// Whether more than [`LARGE_TRANSACTIONS_MAX`] large transactions were found.
    large_transactions_truncated: bool,
    /// What counts as structuring (its threshold is `threshold`).
    structuring: StructuringRule,
    /// Beside the large transactions: a person's movements just below the threshold.
    structuring_alerts: Vec<AlertView>,
    /// Whether more than [`audit_risk::STRUCTURING_ALERTS_MAX`] alerts were found.
    structuring_alerts_truncated: bool,
    /// Open disputes at the head, oldest first, aged at the head's block time.
    open_disputes: Vec<OpenDisputeView>,
    /// Whether more than [`REPORT_DISPUTES_MAX`] disputes are open.
    open_disputes_truncated: bool,
    /// Identities on the sanctions list with the accounts each listing stops.
    sanctioned: Vec<ListedIdentity>,
    /// Whether the list goes on past [`REPORT_SANCTIONED_MAX`] accounts or identities.
    sanctioned_truncated: bool,
    frozen: FrozenView,
    freezes: Vec<FreezeItem>,
    /// Transactions refused by a freeze or a sanction in the range, at most
    /// [`audit_scan::STOPPED_MAX`].
    stopped: Vec<StoppedItem>,
    stopped_truncated: bool,
    settlement_cycles: Vec<CycleItem>,
    evidence: Vec<EvidenceItem>,
    statements: Vec<Statement>,
}

fn accounts(text: Option<&str>) -> Result<Vec<AccountId>, ApiError> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(Vec::new());
    };
    let ids = text
        .split(',')
        .map(|id| params::decimal("account id", id.trim()).map(AccountId))
        .collect::<Result<Vec<_>, _>>()?;
    if ids.len() > STATEMENTS_MAX {
        return Err(ApiError::bad_request(
            "BAD_ACCOUNTS",
            format!("a report carries at most {STATEMENTS_MAX} statements"),
        ));
    }
    Ok(ids)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

/// What one scan watches for, for the report and for the alerts alike: movements of at
/// least the threshold, and structuring just below it.
pub(super) struct Watchlist {
    threshold: u64,
    /// At most [`LARGE_TRANSACTIONS_MAX`], in chain order.
    pub large: Vec<MovementItem>,
    /// Whether more were found.
    pub large_truncated: bool,
    pub structuring: StructuringWatch,
}

impl Watchlist {
    pub fn new(rule: StructuringRule) -> Watchlist {
        Watchlist {
            threshold: rule.threshold,
            large: Vec::new(),
            large_truncated: false,
            structuring: StructuringWatch::new(rule, None),
        }
    }

    pub fn observe(
        &mut self,
        storage: &crate::storage::Storage,
        item: MovementItem,
    ) -> Result<(), ApiError> {
        self.structuring.observe(storage, &item)?;
        if item.amount >= self.threshold {
            if self.large.len() < LARGE_TRANSACTIONS_MAX {
                self.large.push(item);
            } else {
                self.large_truncated = true;
            }
        }
        Ok(())
    }
}

fn build(
    storage: &crate::storage::Storage,
    chain_id: String,
    node: NodeStatus,
    range: BlockRange,
    rule: StructuringRule,
    statement_of: &[AccountId],
) -> Result<Report, ApiError> {
    let threshold = rule.threshold;
    let mut book = AccountBook::default();
    let mut sums = FlowSums::default();
    let mut watchlist = Watchlist::new(rule);
    let scanned = audit_scan::scan_range(storage, range, &mut book, &mut |s, b, item| {
        sums.add(s, b, &item)?;
        watchlist.observe(s, item)
    })?;
    let (structuring_alerts, structuring_alerts_truncated) = watchlist.structuring.alerts();
    let (large, truncated) = (watchlist.large, watchlist.large_truncated);
    let (state_height, open_positions) = at_head(storage, audit::open_positions)?;
    let disputes = audit_risk::open_disputes(storage, None, REPORT_DISPUTES_MAX)?;
    let sanctioned = audit_risk::sanctioned(storage, None, REPORT_SANCTIONED_MAX)?;
    let frozen = audit::frozen(
        storage,
        None,
        audit::FROZEN_PAGE_MAX,
        audit::REPORT_ACCOUNT_PAGES_MAX,
    )?;
    let statements = statement_of
        .iter()
        .map(|id| audit::statement(storage, *id, range))
        .collect::<Result<Vec<_>, _>>()?;
    let time = |h: u64| -> Result<Option<u64>, ApiError> {
        if range.from > range.to {
            return Ok(None);
        }
        Ok(Some(audit_scan::stored_block(storage, h)?.header.time_ms))
    };
    Ok(Report {
        chain_id,
        range,
        from_time_ms: time(range.from)?,
        to_time_ms: time(range.to)?,
        state_height,
        node,
        threshold,
        net_flows: sums.views(),
        open_positions,
        large_transactions: large,
        large_transactions_truncated: truncated,
        structuring: rule,
        structuring_alerts,
        structuring_alerts_truncated,
        open_disputes_truncated: disputes.next_after.is_some(),
        open_disputes: disputes.disputes,
        sanctioned_truncated: sanctioned.next_cursor.is_some(),
        sanctioned: sanctioned.identities,
        frozen,
        freezes: scanned.freezes,
        stopped: scanned.stopped,
        stopped_truncated: scanned.stopped_truncated,
        settlement_cycles: scanned.cycles,
        evidence: scanned.evidence,
        statements,
    })
}

async fn answer(
    api: std::sync::Arc<super::Api>,
    client: ClientKey,
    q: ReportQuery,
    format: Format,
) -> Result<Response, ApiError> {
    let rule = q.rule.resolve(Some(THRESHOLD_DEFAULT))?;
    let statement_of = accounts(q.accounts.as_deref())?;
    let range = q.range.resolve(&api.ctx.storage)?;
    for id in &statement_of {
        if tally_contracts::query::account(&api.ctx.storage, *id)?.is_none() {
            return Err(ApiError::not_found(&format!("account {}", id.0)));
        }
    }
    let chain_id = api.ctx.chain_id.clone();
    let node = super::node_status(&api.ctx)?;
    let report = audit_scan::scan(&api, client, move |storage| {
        build(storage, chain_id, node, range, rule, &statement_of)
    })
    .await?;
    Ok(match format {
        Format::Json => Json(report).into_response(),
        Format::Csv => {
            let name = format!(
                "attachment; filename=\"tally-report-{}-{}.csv\"",
                report.range.from, report.range.to
            );
            let mut response = csv(&report).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            if let Ok(value) = HeaderValue::from_str(&name) {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
    })
}

/// `GET /v1/audit/report`: JSON, or CSV with `format=csv`.
pub async fn report(
    State(api): ApiState,
    Extension(client): Extension<ClientKey>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let format = match q.format.as_deref() {
        None | Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some(other) => {
            return Err(ApiError::bad_request(
                "BAD_FORMAT",
                format!("format is json or csv, not {other:?}"),
            ));
        }
    };
    answer(api, client, q, format).await
}

/// `GET /v1/audit/report.csv`: the report as CSV.
pub async fn report_csv(
    State(api): ApiState,
    Extension(client): Extension<ClientKey>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    answer(api, client, q, Format::Csv).await
}

/// A CSV field: quoted when it holds a separator, quote or line break; text a spreadsheet
/// would take for a formula is prefixed with a quote mark.
pub(super) fn field(text: &str) -> String {
    let formula = text.starts_with(['=', '+', '@', '\t', '\r'])
        || (text.starts_with('-') && text.parse::<i128>().is_err());
    let text = if formula {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

struct Csv(String);

impl Csv {
    fn section(&mut self, name: &str, header: &[&str]) {
        if !self.0.is_empty() {
            self.0.push_str("\r\n");
        }
        let _ = write!(self.0, "# {name}\r\n");
        self.row(header.iter().map(|h| h.to_string()));
    }

    fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        let line: Vec<String> = cells.into_iter().map(|c| field(&c)).collect();
        self.0.push_str(&line.join(","));
        self.0.push_str("\r\n");
    }
}

/// A transaction's sender as text: `institution:ID` or `account:ID` (as a request's keyid).
pub(super) fn party(sender: tally_contracts::Party) -> String {
    match sender {
        tally_contracts::Party::Institution(i) => format!("institution:{}", i.0),
        tally_contracts::Party::Account(a) => format!("account:{}", a.0),
    }
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// The report as multi-section CSV.
pub fn csv(r: &Report) -> String {
    let mut out = Csv(String::new());
    out.section(
        "report",
        &[
            "chain_id",
            "from",
            "to",
            "from_time_ms",
            "to_time_ms",
            "state_height",
            "mode",
            "audit_alarm",
            "threshold",
            "structuring_floor",
            "structuring_window_ms",
            "structuring_count_min",
            "structuring_sum_min",
        ],
    );
    out.row([
        r.chain_id.clone(),
        r.range.from.to_string(),
        r.range.to.to_string(),
        opt(r.from_time_ms),
        opt(r.to_time_ms),
        r.state_height.to_string(),
        r.node.mode.to_string(),
        r.node.alarm.to_string(),
        r.threshold.to_string(),
        r.structuring.floor.to_string(),
        r.structuring.window_ms.to_string(),
        r.structuring.count_min.to_string(),
        r.structuring.sum_min.to_string(),
    ]);
    out.section(
        "net_flows",
        &["currency", "institution", "paid", "received", "net"],
    );
    for f in &r.net_flows {
        out.row([
            f.currency.clone(),
            f.institution.0.to_string(),
            f.paid.to_string(),
            f.received.to_string(),
            f.net.to_string(),
        ]);
    }
    out.section("open_positions", &["currency", "institution", "net"]);
    for p in &r.open_positions.positions {
        out.row([
            p.currency.clone(),
            p.institution.0.to_string(),
            p.net.to_string(),
        ]);
    }
    out.section("open_obligations", &["currency", "from", "to", "amount"]);
    for o in &r.open_positions.obligations {
        out.row([
            o.currency.clone(),
            o.from.0.to_string(),
            o.to.0.to_string(),
            o.amount.to_string(),
        ]);
    }
    out.section(
        "large_transactions",
        &[
            "height",
            "index",
            "time_ms",
            "hash",
            "tx_kind",
            "kind",
            "from",
            "from_institution",
            "to",
            "to_institution",
            "amount",
            "currency",
        ],
    );
    for m in &r.large_transactions {
        out.row([
            m.height.to_string(),
            opt(m.index),
            m.time_ms.to_string(),
            opt(m.hash.map(|h| h.to_hex())),
            m.tx_kind.to_string(),
            m.kind.to_string(),
            m.from.0.to_string(),
            m.from_institution.0.to_string(),
            m.to.0.to_string(),
            m.to_institution.0.to_string(),
            m.amount.to_string(),
            m.currency.clone(),
        ]);
    }
    out.section(
        "structuring_alerts",
        &[
            "alert", "person", "currency", "first_ms", "last_ms", "count", "sum", "accounts",
        ],
    );
    for (n, a) in r.structuring_alerts.iter().enumerate() {
        let accounts: Vec<String> = a.accounts.iter().map(|id| id.0.to_string()).collect();
        out.row([
            n.to_string(),
            a.person.to_hex(),
            a.currency.clone(),
            a.first_ms.to_string(),
            a.last_ms.to_string(),
            a.count.to_string(),
            a.sum.to_string(),
            // One cell: a spreadsheet keeps the list together.
            accounts.join(" "),
        ]);
    }
    out.section(
        "structuring_movements",
        &[
            "alert", "height", "index", "time_ms", "hash", "account", "amount",
        ],
    );
    for (n, a) in r.structuring_alerts.iter().enumerate() {
        for m in &a.movements {
            out.row([
                n.to_string(),
                m.height.to_string(),
                opt(m.index),
                m.time_ms.to_string(),
                opt(m.hash.map(|h| h.to_hex())),
                m.account.0.to_string(),
                m.amount.to_string(),
            ]);
        }
    }
    out.section(
        "open_disputes",
        &[
            "disputed",
            "payer",
            "merchant",
            "held_from",
            "amount",
            "currency",
            "reason",
            "decider",
            "opened_at_ms",
            "deadline_ms",
            "age_ms",
            "default_outcome",
        ],
    );
    for d in &r.open_disputes {
        out.row([
            audit_risk::disputed_text(d.disputed),
            d.payer.0.to_string(),
            d.merchant.0.to_string(),
            d.held_from.0.to_string(),
            d.amount.to_string(),
            d.currency.clone(),
            format!("{:?}", d.reason),
            d.decider.0.to_string(),
            d.opened_at_ms.to_string(),
            d.deadline_ms.to_string(),
            d.age_ms.to_string(),
            format!("{:?}", d.default_outcome),
        ]);
    }
    out.section(
        "sanctioned",
        &[
            "identity",
            "account",
            "kind",
            "currency",
            "institution",
            "balance",
            "frozen",
        ],
    );
    for listed in &r.sanctioned {
        if listed.accounts.is_empty() {
            out.row([
                listed.identity.to_hex(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        for a in &listed.accounts {
            out.row([
                listed.identity.to_hex(),
                a.id.0.to_string(),
                format!("{:?}", a.kind),
                a.currency.clone(),
                a.institution.0.to_string(),
                a.balance.to_string(),
                a.frozen.to_string(),
            ]);
        }
    }
    out.section(
        "frozen_accounts",
        &[
            "account",
            "kind",
            "currency",
            "institution",
            "balance",
            "debits_pending",
            "credits_pending",
        ],
    );
    for a in &r.frozen.accounts {
        out.row([
            a.id.0.to_string(),
            format!("{:?}", a.kind),
            a.currency.clone(),
            a.institution.0.to_string(),
            a.balance.to_string(),
            a.debits_pending.to_string(),
            a.credits_pending.to_string(),
        ]);
    }
    out.section("frozen_totals", &["currency", "balance"]);
    for t in &r.frozen.frozen_totals {
        out.row([t.currency.clone(), t.amount.to_string()]);
    }
    out.section(
        "holds",
        &[
            "hold",
            "debit",
            "credit",
            "amount",
            "currency",
            "expires_at_ms",
        ],
    );
    for h in &r.frozen.holds {
        out.row([
            h.id.to_string(),
            h.debit.0.to_string(),
            h.credit.0.to_string(),
            h.amount.to_string(),
            h.currency.clone(),
            h.expires_at_ms.to_string(),
        ]);
    }
    out.section("held_totals", &["currency", "amount"]);
    for t in &r.frozen.held_totals {
        out.row([t.currency.clone(), t.amount.to_string()]);
    }
    out.section(
        "freezes",
        &["height", "hash", "account", "frozen", "reason"],
    );
    for f in &r.freezes {
        out.row([
            f.height.to_string(),
            opt(f.hash.map(|h| h.to_hex())),
            f.account.0.to_string(),
            f.frozen.to_string(),
            opt(f.reason.map(|h| h.to_hex())),
        ]);
    }
    out.section(
        "stopped",
        &[
            "height", "index", "hash", "time_ms", "tx_kind", "sender", "code",
        ],
    );
    for t in &r.stopped {
        out.row([
            t.height.to_string(),
            t.index.to_string(),
            t.hash.to_hex(),
            t.time_ms.to_string(),
            t.tx_kind.to_string(),
            party(t.sender),
            t.code.to_string(),
        ]);
    }
    out.section(
        "settlement_cycles",
        &["height", "cycle", "currency", "institution", "net"],
    );
    for c in &r.settlement_cycles {
        for p in &c.positions {
            out.row([
                c.height.to_string(),
                c.cycle.to_string(),
                p.currency.clone(),
                p.institution.0.to_string(),
                p.net.to_string(),
            ]);
        }
    }
    out.section(
        "evidence",
        &["height", "validator", "kind", "evidence_height", "round"],
    );
    for e in &r.evidence {
        out.row([
            e.height.to_string(),
            e.validator.to_string(),
            e.kind.to_string(),
            e.evidence_height.to_string(),
            e.round.to_string(),
        ]);
    }
    out.section(
        "statements",
        &[
            "account",
            "currency",
            "opening_balance",
            "closing_balance",
            "total_debits",
            "total_credits",
        ],
    );
    for s in &r.statements {
        out.row([
            s.account.0.to_string(),
            s.currency.clone(),
            s.opening_balance.to_string(),
            s.closing_balance.to_string(),
            s.total_debits.to_string(),
            s.total_credits.to_string(),
        ]);
    }
    out.section(
        "statement_entries",
        &[
            "account",
            "height",
            "index",
            "time_ms",
            "hash",
            "kind",
            "counterparty",
            "debit",
            "credit",
            "balance_after",
            "note",
        ],
    );
    for s in &r.statements {
        for e in &s.entries {
            out.row([
                s.account.0.to_string(),
                e.height.to_string(),
                opt(e.index),
                e.time_ms.to_string(),
                opt(e.hash.map(|h| h.to_hex())),
                e.kind.to_string(),
                e.counterparty.0.to_string(),
                e.debit.to_string(),
                e.credit.to_string(),
                e.balance_after.to_string(),
                e.note.clone(),
            ]);
        }
    }
    out.0
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(field("CNY"), "CNY");
        assert_eq!(field("-42"), "-42");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(field("-x"), "'-x");
    }
}
