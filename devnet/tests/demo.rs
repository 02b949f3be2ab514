//! The demo, end to end: the built `tally-devnet demo` starts four validators and an audit
//! node of the built `tally` binary, tells the payment story, and must report no failed step.

mod common;

use anyhow::{Context, Result, ensure};

#[test]
fn the_demo_tells_the_whole_payment_story_without_a_failed_step() -> Result<()> {
    let tally = common::tally_binary()?;
    let dir = tempfile::tempdir()?;
    let (success, output) = common::run_devnet(&["demo"], &tally, &dir.path().join("devnet"))?;
    let last = output
        .iter()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no JSON summary line")?;
    let summary: serde_json::Value = serde_json::from_str(last)?;
    let count = |field: &str| summary.get(field).and_then(serde_json::Value::as_u64);
    let failed: Vec<&String> = output.iter().filter(|l| l.contains('✗')).collect();
    ensure!(
        count("steps_failed") == Some(0),
        "failed steps: {failed:?}\n{summary}"
    );
    ensure!(count("steps_ok") >= Some(25), "{summary}");
    // A fresh devnet has a webhook sink: the shop's step ran, not skipped.
    ensure!(
        output
            .iter()
            .any(|l| l.contains("delivered to webhook") && l.contains("signature checked")),
        "the shop's webhook step did not run: {output:?}"
    );
    let height = count("height").context("no height")?;
    let audited = count("audit_verified_height").context("no audit height")?;
    ensure!(height > 0 && audited > 0 && audited <= height, "{summary}");
    ensure!(success, "the demo exited non-zero with {summary}");
    Ok(())
}
