//! The API against its contract, by an OpenAPI-driven fuzzer: schemathesis (PyPI) reads
//! `node/openapi.yaml`, generates requests for every operation (examples, boundary values,
//! random data, stateful sequences) and sends them, each signed as the regulator
//! (`tests/python/schemathesis_signing.py`), to a devnet validator over TLS. The checks
//! (`tests/python/schemathesis.toml`): no server error; every status, content type, header
//! and body as the document says; a schema-valid request taken (2xx, or 401/403/404/409 for
//! what the caller may not see, what does not exist or what the chain's state refuses) and a
//! schema-violating one refused; required headers, unsupported methods and auth as HTTP
//! says. Where a rule between parameters is beyond a schema (a range by heights or by time,
//! not both), the hooks keep generated queries to it; where a check cannot hold at all (a
//! signed transaction is more than its schema), the config turns that check off for that
//! operation, saying why. `/v1/events` is a stream that never ends and is left out.
//!
//! Needs `schemathesis` with `cryptography` (`.ci/run` installs both into a venv and names
//! it in TALLY_SCHEMATHESIS); without it this test says so and passes, except under
//! `CI=true`, where it fails. A fixed seed replays a run exactly (TALLY_FUZZ_SEED), and
//! TALLY_FUZZ_EXAMPLES sets the examples per operation (default 30, about 4,000 requests).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tally_devnet::layout::{Layout, REGULATOR};
use tally_devnet::processes::Network;

const SEED_DEFAULT: &str = "1";
const EXAMPLES_DEFAULT: &str = "30";
/// The whole run's bound; it takes about 15 s on 2 cores.
const RUN_WAIT: Duration = Duration::from_secs(600);

/// The devnet node, stopped and its directory removed on every path out of the test.
struct Running {
    runtime: tokio::runtime::Runtime,
    network: Option<Network>,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut network) = self.network.take() {
            self.runtime.block_on(network.stop());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The fuzzer's command, or `None` (after saying why) where it is not installed.
fn schemathesis() -> Option<PathBuf> {
    let program = std::env::var_os("TALLY_SCHEMATHESIS")
        .map_or_else(|| PathBuf::from("schemathesis"), PathBuf::from);
    let found = Command::new(&program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(program);
    }
    let why = format!(
        "{} cannot run (pip install schemathesis cryptography, or set TALLY_SCHEMATHESIS)",
        program.display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{why} (CI=true: .ci/run installs it)"
    );
    eprintln!("SKIPPED: {why}");
    None
}

#[test]
fn the_fuzzer_finds_the_api_as_its_openapi_document_says() {
    let Some(schemathesis) = schemathesis() else {
        return;
    };
    let tally = tally_tests::binaries::tally().expect("the tally binary");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("tally-openapi-fuzz-{}", std::process::id()));
    let (layout, _) = Layout::create_or_resume(&dir, 1, 0, None, &tally).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let network = runtime
        .block_on(Network::start(&layout, &tally))
        .expect("starting the node");
    let mut node = Running {
        runtime,
        network: Some(network),
        dir: dir.clone(),
    };
    node.runtime
        .block_on(node.network.as_mut().unwrap().wait_committed())
        .expect("the node commits");
    let api = layout.validators().next().unwrap().api_address;
    let seed = std::env::var("TALLY_FUZZ_SEED").unwrap_or_else(|_| SEED_DEFAULT.to_string());
    let examples =
        std::env::var("TALLY_FUZZ_EXAMPLES").unwrap_or_else(|_| EXAMPLES_DEFAULT.to_string());
    let python = root.join("tests/python");
    let mut child = Command::new(&schemathesis)
        .arg("--config-file")
        .arg(python.join("schemathesis.toml"))
        .arg("run")
        .arg(root.join("node/openapi.yaml"))
        .args(["--url", &format!("https://{api}")])
        .arg("--tls-verify")
        .arg(layout.ca_cert_path())
        .args(["--exclude-path", "/v1/events"])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--request-timeout", "10", "--no-color"])
        // No example database: each run is its seed's alone, and nothing is written here.
        .args(["--generation-database", "none"])
        .current_dir(&dir)
        .env("SCHEMATHESIS_HOOKS", "schemathesis_signing")
        .env("PYTHONPATH", &python)
        .env(
            "TALLY_FUZZ_KEY",
            layout.dir.join("institutions").join("regulator.key"),
        )
        .env("TALLY_FUZZ_KEYID", format!("institution:{}", REGULATOR.id))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting schemathesis");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > RUN_WAIT {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = child.wait_with_output().unwrap();
    drop(node);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let status = status.unwrap_or_else(|| panic!("schemathesis ran past {RUN_WAIT:?}:\n{report}"));
    assert!(
        status.success(),
        "schemathesis found failures (seed {seed}):\n{report}"
    );
    // Every selected operation was reached (all but the stream).
    let number_after = |label: &str| -> Option<usize> {
        let at = report.find(label)? + label.len();
        let digits: String = report[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let (selected, tested) = (number_after("Selected: "), number_after("Tested: "));
    assert!(
        selected.is_some_and(|n| n >= 50) && tested == selected,
        "selected {selected:?}, tested {tested:?}:\n{report}"
    );
    let summary = report.rfind("SUMMARY").map_or("", |i| &report[i..]);
    eprintln!("schemathesis, seed {seed}, {examples} examples per operation:\n{summary}");
}
