//! How long the regulator's page takes to fill, on a devnet's audit node: every request the
//! page makes for its panels (the same paths `node/src/api/regulator/app.js` asks for, the
//! six charts over the activity's range, the report), each timed on its first ask and on a
//! second, with the chain's size beside them. Grow the chain first (for instance
//! `tally-devnet soak --rate 1000 --duration 17m --dir DIR` for a million transfers), then
//! `tally-devnet panels --dir DIR` tells whether every panel still answers within
//! [`PANEL_BAR`] (issue 18).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde::Serialize;
use tally_sdk::Api;

/// What each panel must answer within.
pub const PANEL_BAR: Duration = Duration::from_secs(1);
/// Blocks per counting request: the audit scans' range bound.
const COUNT_WINDOW: u64 = 10_000;

#[derive(Debug, Clone)]
pub struct Options {
    /// The large-transaction threshold the page asks with, in minor units.
    pub threshold: u64,
    pub json: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PanelTiming {
    pub panel: String,
    pub path: String,
    pub status: u16,
    pub bytes: usize,
    pub first_ms: f64,
    pub again_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The audit node's head when the panels were read.
    pub head: u64,
    /// Transactions in blocks 1..=head (counted through the activity endpoint).
    pub transactions: u64,
    /// Transactions in the blocks the page's default range covers.
    pub transactions_in_range: u64,
    pub range_from: u64,
    pub range_to: u64,
    pub panels: Vec<PanelTiming>,
    /// Whether every panel answered 200 within [`PANEL_BAR`], on both asks.
    pub within_bar: bool,
}

#[derive(serde::Deserialize)]
struct Range {
    from: u64,
    to: u64,
}

#[derive(serde::Deserialize)]
struct BlockBucket {
    transactions: u64,
}

#[derive(serde::Deserialize)]
struct Activity {
    range: Range,
    blocks: Vec<BlockBucket>,
}

#[derive(serde::Deserialize)]
struct Latest {
    height: u64,
}

#[derive(serde::Deserialize)]
struct Mover {
    from: serde_json::Value,
}

#[derive(serde::Deserialize)]
struct Large {
    items: Vec<Mover>,
}

/// One timed GET: (status, bytes, milliseconds).
async fn timed(api: &Api, path: &str) -> Result<(u16, usize, f64)> {
    let started = Instant::now();
    let answer = api.get(path).await.with_context(|| format!("GET {path}"))?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok((answer.status.as_u16(), answer.body.len(), ms))
}

/// Each panel asked twice, one after the other.
async fn time_all(api: &Api, panels: Vec<(String, String)>) -> Result<Vec<PanelTiming>> {
    let mut timings = Vec::new();
    for (panel, path) in panels {
        let (status, bytes, first_ms) = timed(api, &path).await?;
        let (_, _, again_ms) = timed(api, &path).await?;
        timings.push(PanelTiming {
            panel,
            path,
            status,
            bytes,
            first_ms,
            again_ms,
        });
    }
    Ok(timings)
}

fn transactions(activity: &Activity) -> u64 {
    activity.blocks.iter().map(|b| b.transactions).sum()
}

/// Counts the chain's transactions window by window (a progress bar on a long chain).
async fn count(api: &Api, head: u64) -> Result<u64> {
    let bar = indicatif::ProgressBar::new(head);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "counting transactions {bar:40} {pos}/{len} blocks ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut total = 0;
    let mut from = 1;
    while from <= head {
        let to = head.min(from + COUNT_WINDOW - 1);
        let activity: Activity = api
            .get_json(&format!(
                "/v1/audit/activity?bucket=hour&from={from}&to={to}"
            ))
            .await
            .with_context(|| format!("counting blocks {from}..={to}"))?;
        total += transactions(&activity);
        bar.set_position(to);
        from = to + 1;
    }
    bar.finish_and_clear();
    Ok(total)
}

/// Times every panel of the page on the audit node `api` (signed as the regulator).
pub async fn run(api: &Api, options: &Options) -> Result<Report> {
    let latest: Latest = api.get_json("/v1/blocks/latest").await?;
    let head = latest.height;
    let threshold = options.threshold;
    let panels: Vec<(String, String)> = [
        ("health", "/health".to_string()),
        ("head", "/v1/blocks/latest".to_string()),
        ("directory", "/v1/directory".to_string()),
        ("validators", "/v1/validators".to_string()),
        ("evidence", "/v1/evidence".to_string()),
        ("net positions", "/v1/audit/net-positions".to_string()),
        (
            "large transactions",
            format!("/v1/audit/large-transactions?threshold={threshold}"),
        ),
        (
            "structuring",
            format!("/v1/audit/structuring?threshold={threshold}"),
        ),
        ("alerts", format!("/v1/audit/alerts?threshold={threshold}")),
        ("disputes", "/v1/audit/disputes?limit=100".to_string()),
        ("frozen", "/v1/audit/frozen?limit=100".to_string()),
        ("sanctioned", "/v1/audit/sanctioned?limit=100".to_string()),
        ("activity", "/v1/audit/activity?bucket=minute".to_string()),
    ]
    .into_iter()
    .map(|(name, path)| (name.to_string(), path))
    .collect();
    let mut timings = time_all(api, panels).await?;
    // The charts ask for the activity's own range, as the page does (that scan is kept by
    // the node, so they are drawn from it).
    let activity: Activity = api.get_json("/v1/audit/activity?bucket=minute").await?;
    let range = format!("from={}&to={}", activity.range.from, activity.range.to);
    let mut panels: Vec<(String, String)> = Vec::new();
    for chart in [
        "payments",
        "volume",
        "flows",
        "corridors",
        "blocks",
        "latency",
    ] {
        panels.push((
            format!("chart {chart}"),
            format!("/v1/audit/charts/{chart}?bucket=minute&{range}"),
        ));
    }
    let large: Large = api
        .get_json(&format!(
            "/v1/audit/large-transactions?threshold={threshold}&{range}"
        ))
        .await?;
    if let Some(account) = large.items.first().and_then(|m| m.from.as_u64()) {
        panels.push((
            format!("statement of account {account}"),
            format!("/v1/audit/accounts/{account}/statement?{range}"),
        ));
    }
    panels.push((
        "report (download)".into(),
        format!("/v1/audit/report?{range}"),
    ));
    timings.extend(time_all(api, panels).await?);
    let bar_ms = PANEL_BAR.as_secs_f64() * 1000.0;
    let within_bar = timings
        .iter()
        .all(|t| t.status == 200 && t.first_ms <= bar_ms && t.again_ms <= bar_ms);
    let transactions_in_range = transactions(&activity);
    let total = count(api, head).await?;
    Ok(Report {
        head,
        transactions: total,
        transactions_in_range,
        range_from: activity.range.from,
        range_to: activity.range.to,
        panels: timings,
        within_bar,
    })
}

pub fn print(report: &Report, json: bool) -> Result<()> {
    println!(
        "audit node at height {}: {} transactions in all; the page's range is blocks {}..={} ({} transactions)",
        report.head,
        report.transactions,
        report.range_from,
        report.range_to,
        report.transactions_in_range
    );
    println!(
        "{:<32} {:>6} {:>10} {:>10} {:>10}",
        "panel", "status", "bytes", "first ms", "again ms"
    );
    for t in &report.panels {
        println!(
            "{:<32} {:>6} {:>10} {:>10.1} {:>10.1}",
            t.panel, t.status, t.bytes, t.first_ms, t.again_ms
        );
    }
    println!(
        "every panel answered within {} ms: {}",
        PANEL_BAR.as_millis(),
        if report.within_bar { "yes" } else { "NO" }
    );
    if json {
        println!(
            "{}",
            serde_json::to_string(report).map_err(|e| anyhow!("the report as JSON: {e}"))?
        );
    }
    Ok(())
}
