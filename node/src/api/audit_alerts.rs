//! Alerts a supervisor triages: what in a block range (and at the head) calls for a look,
//! each under a stable key, with the time this node first listed it and the regulator's
//! acknowledgement. Both are the audit node's own records (its `local` table), never on
//! chain: triage is the regulator's working state, not a fact the validators agree on. A
//! validator lists the alerts too but records nothing (a listing must not take the write
//! lock its commits need) and refuses acknowledgements (`NOT_AN_AUDIT_NODE`).
//!
//! The alerts, from one audit scan of the range ([`RangeQuery`], bounded) and reads at the
//! head:
//! - `audit_alarm`: this audit node found the chain disagreeing with its own checks;
//! - `large_transaction`: a movement of at least the threshold;
//! - `structuring`: a person's movements just below it, close together;
//! - `stopped`: a transaction refused because its account was frozen or its identity is
//!   on the sanctions list (someone tried to move money past the stop);
//! - `dispute_ageing`: an open dispute past half its time to be decided;
//! - `missed_votes`: a validator absent from more than half the commit certificates of an
//!   hour of at least [`MISSED_VOTES_BLOCKS_MIN`] blocks (a second pass over the range's
//!   certificates). A certificate carries the precommits its node had when it decided (a
//!   quorum, not always everyone's), so a slow validator shows here as well as a stopped one.
//!
//! Keys stay the same while the range moves on: a movement is named by its transaction (or,
//! for money a hold released at block time, its block and its place among that block's
//! releases), a structuring run by its latest movement (a run that grows is a new alert: new
//! activity since the acknowledgement), a stopped transaction by its hash.
//!
//! Attackers: a bank or anonymous caller hiding an alert by acknowledging it (the routes
//! answer the regulator alone); anyone filling the node's disk with triage records (only the
//! regulator's listings write, one record per alert the chain's data gives, and only a key
//! this node listed can be acknowledged, once, with a bounded note).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tally_consensus::CommitCertificate;
use tally_contracts::{AccountId, InstitutionId};
use tally_crypto::{Hash, PublicKey};

use super::ApiState;
use super::audit_activity::Bucket;
use super::audit_risk::{self, RuleQuery};
use super::audit_scan::{self, AccountBook, BlockRange, RangeQuery, scan_range};
use super::blocks::stored_validator_sets;
use super::caller::Caller;
use super::error::ApiError;
use super::fair::ClientKey;
use super::params::ApiQuery;
use super::report::{self, REPORT_DISPUTES_MAX, Watchlist, party};
use crate::chain::audit::read_evidence;
use crate::config::Mode;
use crate::storage::Storage;
use tally_wire::money;

/// A validator absent from more than half of an hour's certificates is named when the hour
/// holds at least this many blocks (fewer say little).
pub const MISSED_VOTES_BLOCKS_MIN: u64 = 10;
/// The longest acknowledgement note, in bytes.
pub const NOTE_BYTES_MAX: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    AuditAlarm,
    LargeTransaction,
    Structuring,
    Stopped,
    DisputeAgeing,
    MissedVotes,
}

/// The regulator's acknowledgement, kept on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// The regulator's institution that signed the request.
    pub by: InstitutionId,
    /// This node's clock when it was recorded.
    pub at_ms: u64,
    pub note: String,
}

/// This node's record of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Triage {
    /// This node's clock when it first listed the alert.
    pub first_seen_ms: u64,
    pub acknowledged: Option<Acknowledgement>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// Stable across requests: what the acknowledgement names.
    pub key: String,
    pub kind: AlertKind,
    /// The block it happened in, and its time; absent for what is read at the head.
    pub height: Option<u64>,
    pub time_ms: Option<u64>,
    /// One line for a person.
    pub summary: String,
    pub tx: Option<Hash>,
    pub account: Option<AccountId>,
    pub validator: Option<PublicKey>,
    /// This node's clock when it first listed the alert; absent on a validator, which
    /// records no triage.
    pub first_seen_ms: Option<u64>,
    pub acknowledged: Option<Acknowledgement>,
}

impl Alert {
    fn new(key: String, kind: AlertKind, summary: String) -> Alert {
        Alert {
            key,
            kind,
            height: None,
            time_ms: None,
            summary,
            tx: None,
            account: None,
            validator: None,
            first_seen_ms: None,
            acknowledged: None,
        }
    }

    fn at(mut self, height: u64, time_ms: u64) -> Alert {
        self.height = Some(height);
        self.time_ms = Some(time_ms);
        self
    }
}

#[derive(Debug, Deserialize)]
pub struct AlertsQuery {
    #[serde(flatten)]
    range: RangeQuery,
    #[serde(flatten)]
    rule: RuleQuery,
}

#[derive(Debug, Serialize)]
pub struct AlertsView {
    pub range: BlockRange,
    pub threshold: u64,
    /// Not yet acknowledged.
    pub open: usize,
    /// Open first, then newest first.
    pub alerts: Vec<Alert>,
    /// Whether a table the alerts come from stopped at its bound (large transactions,
    /// structuring, disputes).
    pub truncated: bool,
}

fn amount_text(amount: u128, currency: &str) -> String {
    match money::currency(currency) {
        Ok(c) => money::format_minor(i128::try_from(amount).unwrap_or(i128::MAX), c),
        Err(_) => format!("{amount} {currency} minor units"),
    }
}

/// The alarm's evidence kept in `data_dir`, one alert per offending height; one alert
/// without a height when the evidence cannot be read.
fn alarm_alerts(data_dir: &std::path::Path, raised: bool) -> Vec<Alert> {
    match read_evidence(data_dir) {
        Ok(kept) if kept.is_empty() && !raised => Vec::new(),
        Ok(kept) if !kept.is_empty() => kept
            .into_iter()
            .map(|e| {
                let mut alert = Alert::new(
                    format!("alarm:{}", e.height),
                    AlertKind::AuditAlarm,
                    format!(
                        "the chain disagrees with this audit node at height {}: {}",
                        e.height, e.reason
                    ),
                );
                alert.height = Some(e.height);
                alert
            })
            .collect(),
        Ok(_) => vec![Alert::new(
            "alarm:unreadable".into(),
            AlertKind::AuditAlarm,
            "the audit alarm is raised and its evidence cannot be read".into(),
        )],
        Err(e) => vec![Alert::new(
            "alarm:unreadable".into(),
            AlertKind::AuditAlarm,
            format!("the audit alarm's evidence cannot be read: {e}"),
        )],
    }
}

/// Per validator and hour of block time: certificates of that hour, and how many lacked it.
fn missed_votes(
    storage: &Storage,
    blocks: &[audit_scan::BlockSummary],
) -> Result<Vec<Alert>, ApiError> {
    let sets = stored_validator_sets(storage)?;
    // (hour, validator) → (blocks of the hour it was in the set for, certificates without it)
    let mut tally: BTreeMap<(u64, PublicKey), (u64, u64)> = BTreeMap::new();
    for block in blocks {
        let height = block.height;
        let Some(set) = sets.iter().rev().find(|(from, _)| *from <= height) else {
            continue;
        };
        let bytes = storage
            .certificate(height)?
            .ok_or_else(|| audit_scan::damaged(format!("certificate {height} is missing")))?;
        let certificate: CommitCertificate = tally_consensus::decode(&bytes, usize::MAX)
            .map_err(|e| audit_scan::damaged(format!("the stored certificate {height}: {e}")))?;
        let hour = Bucket::Hour.start(block.time_ms);
        for (index, validator) in set.1.iter().enumerate() {
            let signed = certificate
                .signatures
                .iter()
                .any(|s| usize::try_from(s.validator.0).is_ok_and(|i| i == index));
            let entry = tally.entry((hour, validator.public_key)).or_default();
            entry.0 += 1;
            if !signed {
                entry.1 += 1;
            }
        }
    }
    Ok(tally
        .into_iter()
        .filter(|(_, (blocks, missed))| {
            *blocks >= MISSED_VOTES_BLOCKS_MIN && missed.saturating_mul(2) > *blocks
        })
        .map(|((hour, key), (blocks, missed))| {
            let mut alert = Alert::new(
                format!("missed-votes:{}:{hour}", key.to_hex()),
                AlertKind::MissedVotes,
                format!(
                    "validator {} is absent from {missed} of {blocks} commit certificates in the hour",
                    key.to_hex()
                ),
            );
            alert.time_ms = Some(hour);
            alert.validator = Some(key);
            alert
        })
        .collect())
}

/// Every alert of `range`, without this node's triage yet, and whether a source was cut at
/// its bound.
fn find(
    storage: &Storage,
    range: BlockRange,
    rule: tally_contracts::structuring::StructuringRule,
) -> Result<(Vec<Alert>, bool), ApiError> {
    let mut book = AccountBook::default();
    let mut watchlist = Watchlist::new(rule);
    let scanned = scan_range(storage, range, &mut book, &mut |s, _, item| {
        watchlist.observe(s, item)
    })?;
    let mut alerts = Vec::new();
    // A hold released at block time has no transaction: its key is its block and its place
    // among that block's large releases (the scan's order is the chain's).
    let mut releases: BTreeMap<u64, u32> = BTreeMap::new();
    for m in &watchlist.large {
        let by = match m.hash {
            Some(h) => h.to_hex(),
            None => {
                let n = releases.entry(m.height).or_default();
                *n += 1;
                format!("{}:expired:{n}", m.height)
            }
        };
        let mut alert = Alert::new(
            format!("large:{by}:{}:{}:{}", m.kind, m.from.0, m.to.0),
            AlertKind::LargeTransaction,
            format!(
                "{} {} from account {} to account {}",
                m.kind,
                amount_text(u128::from(m.amount), &m.currency),
                m.from.0,
                m.to.0
            ),
        )
        .at(m.height, m.time_ms);
        alert.tx = m.hash;
        alert.account = Some(m.from);
        alerts.push(alert);
    }
    let (structuring, structuring_truncated) = watchlist.structuring.alerts();
    for a in structuring {
        let (Some(first), Some(last)) = (a.movements.first(), a.movements.last()) else {
            continue;
        };
        let latest = match last.hash {
            Some(h) => h.to_hex(),
            None => format!("{}:expired", last.height),
        };
        let mut alert = Alert::new(
            format!("structuring:{}:{}:{latest}", a.person.to_hex(), a.currency),
            AlertKind::Structuring,
            format!(
                "{} payments of {} in all, each just below the threshold, from {} account(s) of one person",
                a.count,
                amount_text(a.sum, &a.currency),
                a.accounts.len()
            ),
        )
        .at(first.height, first.time_ms);
        alert.tx = first.hash;
        alert.account = Some(first.account);
        alerts.push(alert);
    }
    for t in scanned.stopped {
        let mut alert = Alert::new(
            format!("stopped:{}", t.hash.to_hex()),
            AlertKind::Stopped,
            format!(
                "{} by {} refused: {}",
                t.tx_kind,
                party(t.sender),
                if t.code == "SANCTIONED" {
                    "the identity is on the sanctions list"
                } else {
                    "the account is frozen"
                }
            ),
        )
        .at(t.height, t.time_ms);
        alert.tx = Some(t.hash);
        if let tally_contracts::Party::Account(a) = t.sender {
            alert.account = Some(a);
        }
        alerts.push(alert);
    }
    let disputes = audit_risk::open_disputes(storage, None, REPORT_DISPUTES_MAX)?;
    for d in &disputes.disputes {
        let window = d.deadline_ms.saturating_sub(d.opened_at_ms);
        if d.age_ms.saturating_mul(2) < window {
            continue;
        }
        let mut alert = Alert::new(
            format!("dispute:{}", d.cursor),
            AlertKind::DisputeAgeing,
            format!(
                "dispute of {} open {} h of its {} h, undecided by institution {}",
                amount_text(u128::from(d.amount), &d.currency),
                d.age_ms / Bucket::Hour.ms(),
                window / Bucket::Hour.ms(),
                d.decider.0
            ),
        );
        alert.time_ms = Some(d.opened_at_ms);
        alert.account = Some(d.payer);
        alerts.push(alert);
    }
    alerts.extend(missed_votes(storage, &scanned.blocks)?);
    let truncated = watchlist.large_truncated
        || structuring_truncated
        || scanned.stopped_truncated
        || disputes.next_after.is_some();
    Ok((alerts, truncated))
}

fn decode_triage(bytes: &[u8]) -> Result<Triage, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| audit_scan::damaged(format!("an alert's triage record: {e}")))
}

fn encode_triage(triage: &Triage) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(triage).map_err(|e| audit_scan::damaged(format!("encoding triage: {e}")))
}

/// Each alert with this node's record of it; an alert listed for the first time gets its
/// first-seen time now. New records go in one write that keeps any record written
/// meanwhile (an acknowledgement is never replaced by a first sighting).
fn triaged(storage: &Storage, alerts: &mut [Alert], now: u64) -> Result<(), ApiError> {
    let mut missing = Vec::new();
    let keys: Vec<&str> = alerts.iter().map(|a| a.key.as_str()).collect();
    let records = storage.alert_records(&keys)?;
    for (i, (alert, record)) in alerts.iter_mut().zip(records).enumerate() {
        match record {
            Some(bytes) => {
                let triage = decode_triage(&bytes)?;
                alert.first_seen_ms = Some(triage.first_seen_ms);
                alert.acknowledged = triage.acknowledged;
            }
            None => missing.push(i),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let first_sighting = encode_triage(&Triage {
        first_seen_ms: now,
        acknowledged: None,
    })?;
    let keys: Vec<String> = missing
        .iter()
        .filter_map(|i| alerts.get(*i).map(|a| a.key.clone()))
        .collect();
    let stored = storage.alert_records_or_insert(&keys, &first_sighting)?;
    for (i, bytes) in missing.into_iter().zip(stored) {
        let triage = decode_triage(&bytes)?;
        if let Some(alert) = alerts.get_mut(i) {
            alert.first_seen_ms = Some(triage.first_seen_ms);
            alert.acknowledged = triage.acknowledged;
        }
    }
    Ok(())
}

/// `GET /v1/audit/alerts`: the range's alerts with their triage.
pub async fn alerts(
    State(api): ApiState,
    Extension(client): Extension<ClientKey>,
    ApiQuery(q): ApiQuery<AlertsQuery>,
) -> Result<Json<AlertsView>, ApiError> {
    let rule = q.rule.resolve(Some(report::THRESHOLD_DEFAULT))?;
    let range = q.range.resolve(&api.ctx.storage)?;
    let audit = api.ctx.mode == Mode::Audit;
    let raised = api.ctx.metrics.audit_alarm.get() > 0;
    let data_dir = api.ctx.data_dir.clone();
    let (mut alerts, truncated) = audit_scan::scan(&api, client, move |storage| {
        let mut alerts = if audit {
            alarm_alerts(&data_dir, raised)
        } else {
            Vec::new()
        };
        let (found, truncated) = find(storage, range, rule)?;
        alerts.extend(found);
        if audit {
            triaged(storage, &mut alerts, crate::clock::now_ms())?;
        }
        Ok((alerts, truncated))
    })
    .await?;
    alerts.sort_by(|a, b| {
        let newest = |x: &Alert| std::cmp::Reverse(x.time_ms.or(x.first_seen_ms));
        (a.acknowledged.is_some(), newest(a), &a.key).cmp(&(
            b.acknowledged.is_some(),
            newest(b),
            &b.key,
        ))
    });
    Ok(Json(AlertsView {
        range,
        threshold: rule.threshold,
        open: alerts.iter().filter(|a| a.acknowledged.is_none()).count(),
        alerts,
        truncated,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeRequest {
    pub key: String,
    #[serde(default)]
    pub note: String,
}

fn bad_note(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("BAD_NOTE", message)
}

/// `POST /v1/audit/alerts/acknowledge` with `{"key": …, "note": …}`: records the
/// regulator's acknowledgement of an alert this node listed. Once: a second is refused
/// (`ALREADY_ACKNOWLEDGED`), so the first stays as it was written.
pub async fn acknowledge(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Triage>, ApiError> {
    // The scope guard let the regulator alone through; the institution is named here.
    caller.require_regulator()?;
    let Caller::Regulator(by) = caller else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "OUT_OF_SCOPE",
            "this route answers the regulator alone",
        ));
    };
    let request: AcknowledgeRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "BAD_BODY",
            format!("the body is {{\"key\": text, \"note\": text}}: {e}"),
        )
    })?;
    if api.ctx.mode != Mode::Audit {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "NOT_AN_AUDIT_NODE",
            "alerts are triaged on an audit node; this is a validator",
        ));
    }
    if request.note.len() > NOTE_BYTES_MAX {
        return Err(bad_note(format!(
            "a note is at most {NOTE_BYTES_MAX} bytes, not {}",
            request.note.len()
        )));
    }
    if request.note.chars().any(char::is_control) {
        return Err(bad_note("a note holds no control characters"));
    }
    let storage = api.ctx.storage.clone();
    let triage = tokio::task::spawn_blocking(move || -> Result<Triage, ApiError> {
        // One write transaction reads and rewrites the record: two acknowledgements sent
        // together cannot both pass the check.
        let written = storage.update_alert_record(&request.key, |stored| {
            // Keys are what this node listed; an unknown key is never written.
            let Some(bytes) = stored else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "NO_SUCH_ALERT",
                    "this node has not listed an alert with this key",
                ));
            };
            let mut triage = decode_triage(bytes)?;
            if triage.acknowledged.is_some() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "ALREADY_ACKNOWLEDGED",
                    "this alert was acknowledged already",
                ));
            }
            triage.acknowledged = Some(Acknowledgement {
                by,
                at_ms: crate::clock::now_ms(),
                note: request.note,
            });
            encode_triage(&triage)
        })??;
        decode_triage(&written)
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ACKNOWLEDGE_FAILED",
            format!("recording the acknowledgement stopped: {e}"),
        )
    })??;
    Ok(Json(triage))
}
