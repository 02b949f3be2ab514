//! What the devnet's end-to-end tests share: the `tally` binary of this build, and running a
//! `tally-devnet` command with a bound, stopping it (and so its nodes) on timeout.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// A whole run, network start and stop included; each takes well under a minute here.
const RUN_WAIT: Duration = Duration::from_secs(240);
/// How long a devnet command may take to stop its nodes after SIGTERM.
const STOP_WAIT: Duration = Duration::from_secs(20);

/// The `tally` binary of this build profile, built (or brought up to date) first: cargo
/// builds another package's binaries for a test only when the test's package depends on it.
pub fn tally_binary() -> Result<PathBuf> {
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

/// Stops a devnet command: SIGTERM (it then stops its nodes), and SIGKILL after a bound.
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

/// Runs `tally-devnet ARGS --dir DIR` with the given `tally` binary, echoing and collecting
/// its standard output, within `RUN_WAIT`. Answers whether it exited 0, and its lines.
pub fn run_devnet(args: &[&str], tally: &Path, dir: &Path) -> Result<(bool, Vec<String>)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally-devnet"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("TALLY_BIN", tally)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting tally-devnet {args:?}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + RUN_WAIT;
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
                bail!("waiting for tally-devnet {args:?}: {e}");
            }
        }
        if Instant::now() > deadline {
            stop(&mut child);
            bail!(
                "tally-devnet {args:?} did not finish within {RUN_WAIT:?}; its output:\n{}",
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
