//! A short bench, end to end: the built `tally-devnet bench` starts four validators and an
//! audit node, loads them for 3 s at 200 tx/s, and must print plausible figures as its last
//! JSON line. Nothing about speed is asserted: only that the figures are there and coherent.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// The whole short bench, network start, setup and stop included (about half a minute here).
const DEMO_WAIT: Duration = Duration::from_secs(240);
/// How long the demo may take to stop its nodes after SIGTERM.
const STOP_WAIT: Duration = Duration::from_secs(20);

/// The `tally` binary of this build profile, built (or brought up to date) first: cargo
/// builds another package's binaries for a test only when the test's package depends on it.
fn tally_binary() -> Result<PathBuf> {
    let devnet = PathBuf::from(env!("CARGO_BIN_EXE_tally-devnet"));
    let dir = devnet
        .parent()
        .context("the devnet binary has no directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut build = Command::new(cargo);
    build.args(["build", "-p", "tally-node", "--bin", "tally"]);
    if dir.ends_with("release") {
        build.arg("--release");
    }
    let status = build
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .context("running cargo build for the tally binary")?;
    ensure!(status.success(), "cargo build -p tally-node failed");
    let tally = dir.join("tally");
    ensure!(tally.is_file(), "{} was not built", tally.display());
    Ok(tally)
}

/// Stops the bench: SIGTERM (it then stops its nodes), and SIGKILL after a bound.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + STOP_WAIT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn run_bench(tally: &Path, dir: &Path) -> Result<(bool, Vec<String>)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally-devnet"))
        .args([
            "bench",
            "--duration",
            "3",
            "--rate",
            "200",
            "--json",
            "--dir",
        ])
        .arg(dir)
        .env("TALLY_BIN", tally)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting tally-devnet bench")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + DEMO_WAIT;
    let mut output = Vec::new();
    let status = loop {
        while let Ok(line) = lines.try_recv() {
            println!("{line}");
            output.push(line);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                stop(&mut child);
                bail!("waiting for the bench: {e}");
            }
        }
        if Instant::now() > deadline {
            stop(&mut child);
            bail!(
                "the bench did not finish within {DEMO_WAIT:?}; its output:\n{}",
                output.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // What the reader thread still holds.
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
        println!("{line}");
        output.push(line);
    }
    Ok((status.success(), output))
}

#[test]
fn a_short_bench_reports_plausible_figures_as_json() -> Result<()> {
    let tally = tally_binary()?;
    let dir = tempfile::tempdir()?;
    let (success, output) = run_bench(&tally, &dir.path().join("devnet"))?;
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
