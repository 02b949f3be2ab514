//! A short soak, end to end: the built `tally-devnet soak` starts four validators and an
//! audit node, loads them for 6 s at 100 tx/s sampling every second, and must leave samples,
//! a summary and a chart that say what the nodes did. Nothing about speed or memory size is
//! asserted: only that the figures are there and coherent.

mod common;

use anyhow::{Context, Result, ensure};

const NODES: [&str; 5] = [
    "validator-0",
    "validator-1",
    "validator-2",
    "validator-3",
    "audit-0",
];

#[test]
fn a_short_soak_writes_samples_a_summary_and_a_chart() -> Result<()> {
    let tally = common::tally_binary()?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("soak");
    let out_arg = out.to_string_lossy().into_owned();
    let (success, output) = common::run_devnet(
        &[
            "soak",
            "--duration",
            "6s",
            "--rate",
            "100",
            "--sample-every",
            "1s",
            "--out",
            &out_arg,
            "--json",
        ],
        &tally,
        &dir.path().join("devnet"),
    )?;
    let last = output.last().context("the soak printed nothing")?;
    let summary: serde_json::Value =
        serde_json::from_str(last).with_context(|| format!("the last line is not JSON: {last}"))?;
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json"))?)?;
    ensure!(
        written == summary,
        "summary.json differs from the JSON line"
    );
    let count = |field: &str| summary.get(field).and_then(serde_json::Value::as_u64);
    let committed = count("committed").context("no committed")?;
    ensure!(committed > 0, "nothing committed: {summary}");
    // The first validator's disk, split by kind of record (`tally node disk-usage`).
    let disk = std::fs::read_to_string(out.join("disk-usage.txt"))?;
    for kind in ["blocks", "results", "transaction index", "ledger state"] {
        ensure!(
            disk.contains(kind),
            "no {kind} row in disk-usage.txt:\n{disk}"
        );
    }
    ensure!(
        committed <= count("submitted").unwrap_or(0),
        "more committed than submitted: {summary}"
    );
    let nodes = summary
        .get("nodes")
        .and_then(serde_json::Value::as_array)
        .context("no nodes")?;
    ensure!(nodes.len() == NODES.len(), "{summary}");
    for node in nodes {
        let mib = |f: &str| node.get(f).and_then(serde_json::Value::as_f64);
        ensure!(mib("rss_early_mib").is_some_and(|m| m > 0.0), "{node}");
        ensure!(mib("rss_end_mib").is_some_and(|m| m > 0.0), "{node}");
        ensure!(mib("rss_peak_mib") >= mib("rss_end_mib"), "{node}");
        ensure!(mib("disk_bytes_per_tx").is_some(), "{node}");
    }
    ensure!(
        summary
            .pointer("/bars/hold")
            .is_some_and(serde_json::Value::is_boolean),
        "no verdict on the bars: {summary}"
    );

    // The samples: one row per second of load (and the one before it), every node's memory
    // and disk in each, the committed count never going back and ending where the summary does.
    let csv = std::fs::read_to_string(out.join("samples.csv"))?;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().context("an empty CSV")?.split(',').collect();
    for node in NODES {
        for suffix in ["rss_bytes", "disk_bytes"] {
            let column = format!("{node}_{suffix}");
            ensure!(
                header.contains(&column.as_str()),
                "no {column} in {header:?}"
            );
        }
    }
    let column = |name: &str| header.iter().position(|h| *h == name);
    let committed_at = column("committed").context("no committed column")?;
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    ensure!(
        rows.len() >= 5,
        "{} samples in a 6 s run:\n{csv}",
        rows.len()
    );
    let mut counts = Vec::new();
    for row in &rows {
        ensure!(row.len() == header.len(), "a ragged row: {row:?}");
        let number = |i: usize| row.get(i).and_then(|v| v.parse::<u64>().ok());
        counts.push(number(committed_at).context("no committed count")?);
        for node in NODES {
            let rss = column(&format!("{node}_rss_bytes")).and_then(number);
            ensure!(rss.is_some_and(|r| r > 0), "no RSS for {node} in {row:?}");
            let disk = column(&format!("{node}_disk_bytes")).and_then(number);
            ensure!(disk.is_some_and(|d| d > 0), "no disk for {node} in {row:?}");
        }
    }
    ensure!(
        counts.windows(2).all(|w| w.first() <= w.get(1)),
        "the committed count went back: {counts:?}"
    );
    ensure!(
        counts.first() < counts.last() && counts.last() == Some(&committed),
        "the committed count did not grow to the summary's: {counts:?}, {committed}"
    );

    // The chart: an SVG document with the lines drawn in it.
    let svg = std::fs::read_to_string(out.join("soak.svg"))?;
    let document = roxmltree::Document::parse(&svg).context("soak.svg is not XML")?;
    ensure!(document.root_element().has_tag_name("svg"), "not an SVG");
    let lines = document
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter(|n| {
            n.attribute("points")
                .is_some_and(|p| p.split_whitespace().count() >= 5)
        })
        .count();
    // Five nodes in each of two panels, p50 and p99 in the third.
    ensure!(
        lines >= 12,
        "{lines} lines of 5 points or more in the chart"
    );
    ensure!(success, "the soak exited non-zero with {summary}");
    Ok(())
}
