//! The demo, end to end: the built `tally-devnet demo` starts four validators and an audit
//! node of the built `tally` binary, tells the payment story, and must report no failed step.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// The whole demo, network start and stop included; it takes well under a minute here.
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

/// Stops the demo: SIGTERM (it then stops its nodes), and SIGKILL after a bound.
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

fn run_demo(tally: &Path, dir: &Path) -> Result<(bool, Vec<String>)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally-devnet"))
        .arg("demo")
        .arg("--dir")
        .arg(dir)
        .env("TALLY_BIN", tally)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting tally-devnet demo")?;
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
                bail!("waiting for the demo: {e}");
            }
        }
        if Instant::now() > deadline {
            stop(&mut child);
            bail!(
                "the demo did not finish within {DEMO_WAIT:?}; its output:\n{}",
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
fn the_demo_tells_the_whole_payment_story_without_a_failed_step() -> Result<()> {
    let tally = tally_binary()?;
    let dir = tempfile::tempdir()?;
    let (success, output) = run_demo(&tally, &dir.path().join("devnet"))?;
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
    ensure!(count("steps_ok") >= Some(17), "{summary}");
    let height = count("height").context("no height")?;
    let audited = count("audit_verified_height").context("no audit height")?;
    ensure!(height > 0 && audited > 0 && audited <= height, "{summary}");
    ensure!(success, "the demo exited non-zero with {summary}");
    Ok(())
}
