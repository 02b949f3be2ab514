//! A short bench, end to end: the built `tally-devnet bench` starts four validators and an
//! audit node, loads them for 3 s at 200 tx/s in batches of 16 (`/v1/transactions/batch`),
//! and must print plausible figures as its last JSON line. Nothing about speed is asserted:
//! only that the figures are there and coherent, and that no transaction was refused.

mod common;

use anyhow::{Context, Result, ensure};

#[test]
fn a_short_bench_reports_plausible_figures_as_json() -> Result<()> {
    let tally = common::tally_binary()?;
    let dir = tempfile::tempdir()?;
    let (success, output) = common::run_devnet(
        &[
            "bench",
            "--duration",
            "3",
            "--rate",
            "200",
            "--batch",
            "16",
            "--json",
        ],
        &tally,
        &dir.path().join("devnet"),
    )?;
    let last = output.last().context("the bench printed nothing")?;
    let report: serde_json::Value =
        serde_json::from_str(last).with_context(|| format!("the last line is not JSON: {last}"))?;
    let number = |field: &str| {
        report
            .get(field)
            .and_then(serde_json::Value::as_f64)
            .with_context(|| format!("no number {field:?} in {report}"))
    };
    let committed = number("committed")?;
    let submitted = number("submitted")?;
    let (p50, p90, p99, max) = (
        number("p50_ms")?,
        number("p90_ms")?,
        number("p99_ms")?,
        number("max_ms")?,
    );
    let (tps, ceiling, ratio) = (number("tps")?, number("ceiling_tps")?, number("ratio")?);
    ensure!(committed > 0.0, "nothing committed: {report}");
    ensure!(number("batch")? == 16.0, "{report}");
    ensure!(
        number("refused")? == 0.0,
        "the nodes refused a batched transaction: {report}"
    );
    ensure!(
        committed <= submitted,
        "more committed than submitted: {report}"
    );
    ensure!(
        0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
        "latency percentiles out of order: {report}"
    );
    ensure!(tps > 0.0 && ceiling > 0.0, "{report}");
    ensure!(
        (ratio - tps / ceiling).abs() < 1e-6,
        "ratio is not tps / ceiling: {report}"
    );
    let memory = report
        .get("node_peak_mib")
        .and_then(serde_json::Value::as_array)
        .context("no node_peak_mib")?;
    ensure!(memory.len() == 5, "memory of 5 nodes expected: {report}");
    for node in memory {
        let mib = node.get("peak_mib").and_then(serde_json::Value::as_f64);
        ensure!(mib.is_some_and(|m| m > 0.0), "no peak memory for {node}");
    }
    ensure!(success, "the bench exited non-zero with {report}");
    Ok(())
}
