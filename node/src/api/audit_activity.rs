//! Activity over time, for the regulator's charts: money movements (count and volume) per
//! minute or hour of block time by currency and kind, the net interbank flow of each
//! institution accumulated over the range, remittance corridors, and blocks and
//! transactions per bucket with the latency this node saw (from a block's proposal to its
//! commit here: on the audit node, how far the regulator's view trails the chain). One pass of the audit scan over a bounded block range
//! ([`RangeQuery`]), answered as JSON, as CSV (one series at a time) or drawn as SVG
//! ([`super::audit_charts`]); the three carry the same figures.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tally_contracts::{Currency, InstitutionId, query};

use super::ApiState;
use super::audit_charts::{self, Chart};
use super::audit_scan::{
    AccountBook, BlockRange, MovementItem, RangeQuery, interbank_postings, scan, scan_range,
};
use super::error::ApiError;
use super::fair::ClientKey;
use super::params::{ApiPath, ApiQuery};
use super::report::field;
use crate::storage::Storage;

#[derive(Debug, Deserialize)]
pub struct ActivityQuery {
    #[serde(flatten)]
    range: RangeQuery,
    /// `minute` (the default) or `hour`.
    bucket: Option<String>,
    /// The CSV's series: `payments` (the default), `flows`, `corridors` or `blocks`.
    series: Option<String>,
}

/// A bucket of block time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Minute,
    Hour,
}

impl Bucket {
    fn parse(text: Option<&str>) -> Result<Bucket, ApiError> {
        match text {
            None | Some("minute") => Ok(Bucket::Minute),
            Some("hour") => Ok(Bucket::Hour),
            Some(other) => Err(ApiError::bad_request(
                "BAD_BUCKET",
                format!("bucket is minute or hour, not {other:?}"),
            )),
        }
    }

    pub fn ms(self) -> u64 {
        match self {
            Bucket::Minute => 60_000,
            Bucket::Hour => 3_600_000,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Bucket::Minute => "minute",
            Bucket::Hour => "hour",
        }
    }

    pub fn start(self, time_ms: u64) -> u64 {
        time_ms - time_ms % self.ms()
    }
}

/// Money movements of one kind and currency in one bucket.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PaymentBucket {
    pub start_ms: u64,
    pub currency: String,
    pub kind: &'static str,
    pub count: u64,
    /// Minor units of `currency`.
    pub volume: u128,
}

/// One institution's net interbank flow in one currency and bucket (received minus paid,
/// postings between two institutions' accounts), and its sum from the range's start:
/// the last `cumulative` of the range equals `GET /v1/audit/net-positions`'s `flows` net.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FlowBucket {
    pub start_ms: u64,
    pub currency: String,
    pub institution: InstitutionId,
    pub net: i128,
    pub cumulative: i128,
}

/// Remittances from one currency into another in one bucket.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CorridorBucket {
    pub start_ms: u64,
    pub from: String,
    pub to: String,
    pub count: u64,
    /// Minor units of `from` debited.
    pub debited: u128,
    /// Minor units of `to` credited.
    pub credited: u128,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BlockBucket {
    pub start_ms: u64,
    pub blocks: u64,
    pub transactions: u64,
    /// From each block's proposal (its header's time, the proposer's clock) to its commit
    /// on this node (this node's clock), over the bucket's blocks this node recorded a
    /// commit time for: the median and the largest, in milliseconds. On an audit node this
    /// is its lag behind the chain: the validators' commit, the sync poll and its own
    /// checks. A clock behind the proposer's counts as 0. `None` when no block of the
    /// bucket has a recorded commit time (a directory written before they were kept).
    pub lag_ms_median: Option<u64>,
    pub lag_ms_max: Option<u64>,
}

/// The median (the lower middle of an even count) and the largest of `lags`, sorted here.
fn median_and_max(mut lags: Vec<u64>) -> (Option<u64>, Option<u64>) {
    lags.sort_unstable();
    let median = lags
        .len()
        .checked_sub(1)
        .and_then(|last| lags.get(last / 2));
    (median.copied(), lags.last().copied())
}

#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    pub range: BlockRange,
    pub bucket: &'static str,
    pub bucket_ms: u64,
    pub payments: Vec<PaymentBucket>,
    pub flows: Vec<FlowBucket>,
    pub corridors: Vec<CorridorBucket>,
    pub blocks: Vec<BlockBucket>,
}

#[derive(Default)]
struct Sums {
    payments: BTreeMap<(u64, Currency, &'static str), (u64, u128)>,
    flows: BTreeMap<(u64, Currency, InstitutionId), i128>,
    corridors: BTreeMap<(u64, Currency, Currency), (u64, u128, u128)>,
}

impl Sums {
    fn add(
        &mut self,
        storage: &Storage,
        book: &mut AccountBook,
        bucket: Bucket,
        item: &MovementItem,
    ) -> Result<(), ApiError> {
        let start = bucket.start(item.time_ms);
        let currency = item.movement.currency;
        let payment = self
            .payments
            .entry((start, currency, item.kind))
            .or_default();
        payment.0 = payment.0.saturating_add(1);
        payment.1 = payment.1.saturating_add(u128::from(item.amount));
        for (posted_in, from, to, amount) in interbank_postings(storage, book, item)? {
            let amount = i128::from(amount);
            let paid = self.flows.entry((start, posted_in, from)).or_default();
            *paid = paid.saturating_sub(amount);
            let received = self.flows.entry((start, posted_in, to)).or_default();
            *received = received.saturating_add(amount);
        }
        if item.kind == "RemittanceCredited" {
            let (credit_currency, _) = book.of(storage, item.to)?;
            let credited: u128 = item
                .movement
                .postings
                .iter()
                .filter(|p| p.credit == item.to)
                .map(|p| u128::from(p.amount))
                .sum();
            let corridor = self
                .corridors
                .entry((start, currency, credit_currency))
                .or_default();
            corridor.0 = corridor.0.saturating_add(1);
            corridor.1 = corridor.1.saturating_add(u128::from(item.amount));
            corridor.2 = corridor.2.saturating_add(credited);
        }
        Ok(())
    }
}

/// One pass over `range`.
pub fn activity(
    storage: &Storage,
    range: BlockRange,
    bucket: Bucket,
) -> Result<Activity, ApiError> {
    let mut book = AccountBook::default();
    let mut sums = Sums::default();
    let scanned = scan_range(storage, range, &mut book, &mut |s, b, item| {
        sums.add(s, b, bucket, &item)
    })?;
    let mut blocks: BTreeMap<u64, (u64, u64, Vec<u64>)> = BTreeMap::new();
    // The node's commit times of the scanned heights, read in one transaction.
    let heights = scanned.blocks.iter().map(|b| b.height);
    let committed: BTreeMap<u64, u64> = match (heights.clone().min(), heights.max()) {
        (Some(first), Some(last)) => (first..=last)
            .zip(storage.committed_ms(first..=last)?)
            .filter_map(|(height, ms)| Some((height, ms?)))
            .collect(),
        _ => BTreeMap::new(),
    };
    for block in &scanned.blocks {
        let entry = blocks.entry(bucket.start(block.time_ms)).or_default();
        entry.0 = entry.0.saturating_add(1);
        entry.1 = entry
            .1
            .saturating_add(u64::try_from(block.transactions).unwrap_or(u64::MAX));
        if let Some(committed) = committed.get(&block.height) {
            entry.2.push(committed.saturating_sub(block.time_ms));
        }
    }
    // Ordered by bucket, then currency and institution: the running sums follow time.
    let mut running: BTreeMap<(Currency, InstitutionId), i128> = BTreeMap::new();
    let flows = sums
        .flows
        .into_iter()
        .map(|((start_ms, currency, institution), net)| {
            let sum = running.entry((currency, institution)).or_default();
            *sum = sum.saturating_add(net);
            FlowBucket {
                start_ms,
                currency: currency.to_string(),
                institution,
                net,
                cumulative: *sum,
            }
        })
        .collect();
    Ok(Activity {
        range,
        bucket: bucket.name(),
        bucket_ms: bucket.ms(),
        payments: sums
            .payments
            .into_iter()
            .map(
                |((start_ms, currency, kind), (count, volume))| PaymentBucket {
                    start_ms,
                    currency: currency.to_string(),
                    kind,
                    count,
                    volume,
                },
            )
            .collect(),
        flows,
        corridors: sums
            .corridors
            .into_iter()
            .map(
                |((start_ms, from, to), (count, debited, credited))| CorridorBucket {
                    start_ms,
                    from: from.to_string(),
                    to: to.to_string(),
                    count,
                    debited,
                    credited,
                },
            )
            .collect(),
        blocks: blocks
            .into_iter()
            .map(|(start_ms, (blocks, transactions, lags))| {
                let (lag_ms_median, lag_ms_max) = median_and_max(lags);
                BlockBucket {
                    start_ms,
                    blocks,
                    transactions,
                    lag_ms_median,
                    lag_ms_max,
                }
            })
            .collect(),
    })
}

/// How many activities [`ActivityCache`] keeps.
const CACHED_ACTIVITIES_MAX: usize = 4;

/// The latest activities by range and bucket. A committed block never changes, nor does
/// this node's record of when it committed it, so the activity of a range below the head
/// is the same on every read: the page's figures and its six charts (seven requests, one
/// range) cost one scan.
#[derive(Debug, Default)]
pub struct ActivityCache(Mutex<VecDeque<(BlockRange, Bucket, Arc<Activity>)>>);

impl ActivityCache {
    fn get(&self, range: BlockRange, bucket: Bucket) -> Option<Arc<Activity>> {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.iter()
            .find(|(r, b, _)| *r == range && *b == bucket)
            .map(|(_, _, a)| a.clone())
    }

    fn put(&self, range: BlockRange, bucket: Bucket, activity: Arc<Activity>) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.retain(|(r, b, _)| !(*r == range && *b == bucket));
        if kept.len() >= CACHED_ACTIVITIES_MAX {
            kept.pop_front();
        }
        kept.push_back((range, bucket, activity));
    }
}

async fn read(
    api: &super::Api,
    client: ClientKey,
    q: &ActivityQuery,
) -> Result<Arc<Activity>, ApiError> {
    let bucket = Bucket::parse(q.bucket.as_deref())?;
    let range = q.range.resolve(&api.ctx.storage)?;
    if let Some(kept) = api.activities.get(range, bucket) {
        return Ok(kept);
    }
    let found = Arc::new(scan(api, client, move |storage| activity(storage, range, bucket)).await?);
    api.activities.put(range, bucket, found.clone());
    Ok(found)
}

/// `GET /v1/audit/activity`.
pub async fn activity_view(
    State(api): ApiState,
    Extension(client): Extension<ClientKey>,
    ApiQuery(q): ApiQuery<ActivityQuery>,
) -> Result<axum::Json<Activity>, ApiError> {
    Ok(axum::Json(Activity::clone(&*read(&api, client, &q).await?)))
}

/// `GET /v1/audit/activity.csv?series=…`: one series as CSV, the same rows as the JSON's.
pub async fn activity_csv(
    State(api): ApiState,
    Extension(client): Extension<ClientKey>,
    ApiQuery(q): ApiQuery<ActivityQuery>,
) -> Result<Response, ApiError> {
    let series = q.series.as_deref().unwrap_or("payments");
    if !["payments", "flows", "corridors", "blocks"].contains(&series) {
        return Err(ApiError::bad_request(
            "BAD_SERIES",
            format!("series is payments, flows, corridors or blocks, not {series:?}"),
        ));
    }
    let a = read(&api, client, &q).await?;
    let rows: Vec<Vec<String>> = match series {
        "flows" => a
            .flows
            .iter()
            .map(|f| {
                vec![
                    f.start_ms.to_string(),
                    f.currency.clone(),
                    f.institution.0.to_string(),
                    f.net.to_string(),
                    f.cumulative.to_string(),
                ]
            })
            .collect(),
        "corridors" => a
            .corridors
            .iter()
            .map(|c| {
                vec![
                    c.start_ms.to_string(),
                    c.from.clone(),
                    c.to.clone(),
                    c.count.to_string(),
                    c.debited.to_string(),
                    c.credited.to_string(),
                ]
            })
            .collect(),
        "blocks" => a
            .blocks
            .iter()
            .map(|b| {
                let optional = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
                vec![
                    b.start_ms.to_string(),
                    b.blocks.to_string(),
                    b.transactions.to_string(),
                    optional(b.lag_ms_median),
                    optional(b.lag_ms_max),
                ]
            })
            .collect(),
        _ => a
            .payments
            .iter()
            .map(|p| {
                vec![
                    p.start_ms.to_string(),
                    p.currency.clone(),
                    p.kind.to_string(),
                    p.count.to_string(),
                    p.volume.to_string(),
                ]
            })
            .collect(),
    };
    let head: &[&str] = match series {
        "flows" => &["start_ms", "currency", "institution", "net", "cumulative"],
        "corridors" => &["start_ms", "from", "to", "count", "debited", "credited"],
        "blocks" => &[
            "start_ms",
            "blocks",
            "transactions",
            "lag_ms_median",
            "lag_ms_max",
        ],
        _ => &["start_ms", "currency", "kind", "count", "volume"],
    };
    let mut text = head.join(",");
    text.push('\n');
    for row in rows {
        let fields: Vec<String> = row.iter().map(|f| field(f)).collect();
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment"),
            ),
        ],
        text,
    )
        .into_response())
}

/// `GET /v1/audit/charts/{chart}`: one chart of the activity, as SVG.
pub async fn chart_svg(
    State(api): ApiState,
    Extension(client): Extension<ClientKey>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ActivityQuery>,
) -> Result<Response, ApiError> {
    let chart = Chart::parse(&name).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "NO_SUCH_CHART",
            format!(
                "the charts are {}, not {name:?}",
                Chart::ALL.map(Chart::name).join(", ")
            ),
        )
    })?;
    let a = read(&api, client, &q).await?;
    let names = at_head_names(&api)?;
    let svg = audit_charts::draw(chart, &a, &names).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "CHART_FAILED",
            format!("drawing the chart: {e}"),
        )
    })?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        svg,
    )
        .into_response())
}

/// Institutions' names by id, for the charts' legends.
fn at_head_names(api: &super::Api) -> Result<BTreeMap<InstitutionId, String>, ApiError> {
    Ok(query::institutions(&api.ctx.storage)?
        .into_iter()
        .map(|i| (i.id, i.name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::median_and_max;

    #[test]
    fn the_lag_is_the_lower_middle_and_the_largest() {
        assert_eq!(median_and_max(vec![]), (None, None));
        assert_eq!(median_and_max(vec![7]), (Some(7), Some(7)));
        assert_eq!(median_and_max(vec![40, 10, 30, 20]), (Some(20), Some(40)));
        assert_eq!(median_and_max(vec![5, 900, 1]), (Some(5), Some(900)));
    }
}
