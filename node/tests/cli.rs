//! The built `tally` binary, run as people run it.

use anyhow::{Context, Result, bail, ensure};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tally_crypto::{KeyFile, SigningKey};

fn tally(args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(args)
        .output()?)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path_arg(path: &Path) -> Result<&str> {
    path.to_str().context("temp path is not UTF-8")
}

#[test]
fn keys_generate_then_show_print_the_same_identity() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let key_path = dir.path().join("node.key");
    let generated = tally(&["keys", "generate", "--out", path_arg(&key_path)?])?;
    ensure!(generated.status.success(), "{}", text(&generated.stderr));
    let generated = text(&generated.stdout);

    let public_key = KeyFile::read(&key_path)?.public_key();
    ensure!(
        generated.contains(&format!("public key: {public_key}")),
        "{generated}"
    );
    ensure!(generated.contains("peer id:    12D3KooW"), "{generated}");

    let shown = tally(&["keys", "show", path_arg(&key_path)?])?;
    ensure!(shown.status.success(), "{}", text(&shown.stderr));
    let shown = text(&shown.stdout);
    let identity = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.starts_with("public key") || l.starts_with("peer id"))
            .map(str::to_string)
            .collect()
    };
    ensure!(
        identity(&shown) == identity(&generated),
        "{shown} vs {generated}"
    );
    ensure!(identity(&shown).len() == 2);

    // A key is never overwritten.
    let again = tally(&["keys", "generate", "--out", path_arg(&key_path)?])?;
    ensure!(!again.status.success());
    ensure!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
    ensure!(KeyFile::read(&key_path)?.public_key() == public_key);
    Ok(())
}

#[test]
fn bad_arguments_and_inputs_fail_with_words() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cases: [(&[&str], &str); 5] = [
        (&["frobnicate"], "unrecognized subcommand"),
        (&["keys", "generate"], "--out"),
        (
            &["keys", "show", "/nonexistent/tally.key"],
            "cannot read key file",
        ),
        (&["node", "run"], "--config"),
        (
            &["node", "run", "--config", "/nonexistent/tally.toml"],
            "cannot read config file",
        ),
    ];
    for (args, expected) in cases {
        let out = tally(args)?;
        let stderr = text(&out.stderr);
        ensure!(!out.status.success(), "{args:?} succeeded");
        ensure!(stderr.contains(expected), "{args:?}: {stderr}");
        ensure!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let config = dir.path().join("tally.toml");
    std::fs::write(
        &config,
        "mode = \"validator\"\nlisten_address = \"nowhere\"\n",
    )?;
    let out = tally(&["node", "run", "--config", path_arg(&config)?])?;
    ensure!(!out.status.success());
    ensure!(
        text(&out.stderr).contains("missing field"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[test]
fn node_run_starts_and_exits_zero_on_sigterm() -> Result<()> {
    let dir = tempfile::tempdir()?;
    KeyFile::write_new(
        &SigningKey::from_seed([5; 32]),
        &dir.path().join("node.key"),
    )?;
    // A chain with this node as its only validator: it commits blocks on its own.
    let validator = SigningKey::from_seed([5; 32]).public_key();
    let institution = SigningKey::from_seed([7; 32]).public_key();
    let description = dir.path().join("genesis.toml");
    std::fs::write(
        &description,
        format!(
            "chain_id = \"cli-test\"\ntime_ms = 1000\ncurrencies = [\"CNY\"]\nplatform = 1\n\
             governance_keys = [\"{institution}\"]\ngovernance_threshold = 1\n\
             validators = [{{ public_key = \"{validator}\", power = 1 }}]\n\
             institutions = [{{ id = 1, public_key = \"{institution}\", roles = [\"platform\", \"bank\"] }}]\n\
             tiers = [{{ single_max = 10, daily_max = 20 }}]\n"
        ),
    )?;
    let genesis = dir.path().join("genesis.json");
    let built = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "genesis",
            "--in",
            path_arg(&description)?,
            "--out",
            path_arg(&genesis)?,
        ])
        .output()?;
    ensure!(
        built.status.success(),
        "tally genesis failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    // The API's TLS: a CA and the node's certificate, made by `tally keys`.
    let file = |name: &str| dir.path().join(name);
    for args in [
        vec![
            "keys",
            "tls-ca",
            "--cert-out",
            path_arg(&file("ca.pem"))?,
            "--key-out",
            path_arg(&file("ca.key"))?,
        ],
        vec![
            "keys",
            "tls-cert",
            "--ca-cert",
            path_arg(&file("ca.pem"))?,
            "--ca-key",
            path_arg(&file("ca.key"))?,
            "--name",
            "127.0.0.1",
            "--name",
            "localhost",
            "--cert-out",
            path_arg(&file("api-cert.pem"))?,
            "--key-out",
            path_arg(&file("api-key.pem"))?,
        ],
    ] {
        let made = tally(&args)?;
        ensure!(made.status.success(), "{args:?}: {}", text(&made.stderr));
    }
    {
        use std::os::unix::fs::PermissionsExt;
        for private in ["ca.key", "api-key.pem"] {
            let mode = std::fs::metadata(file(private))?.permissions().mode();
            ensure!(
                mode & 0o077 == 0,
                "{private} is readable by others: {mode:o}"
            );
        }
    }
    let again = tally(&[
        "keys",
        "tls-ca",
        "--cert-out",
        path_arg(&file("ca.pem"))?,
        "--key-out",
        path_arg(&file("other.key"))?,
    ])?;
    ensure!(!again.status.success(), "a CA file was overwritten");
    let peer = SigningKey::from_seed([6; 32]).public_key();
    let config = dir.path().join("tally.toml");
    std::fs::write(
        &config,
        format!(
            "mode = \"validator\"\nlisten_address = \"127.0.0.1:0\"\napi_address = \"127.0.0.1:0\"\n\
             data_dir = \"data\"\nkey_file = \"node.key\"\ngenesis_file = \"genesis.json\"\n\
             [[peers]]\naddress = \"127.0.0.1:9\"\npublic_key = \"{peer}\"\n\
             [api]\ntls_cert_file = \"api-cert.pem\"\ntls_key_file = \"api-key.pem\"\n\
             [snapshots]\ninterval_blocks = 1\n"
        ),
    )?;
    let before = tally(&["node", "snapshots", "--config", path_arg(&config)?])?;
    ensure!(
        before.status.success() && text(&before.stdout).contains("no snapshot yet"),
        "{} {}",
        text(&before.stdout),
        text(&before.stderr)
    );
    // Before the node has run there is no store: the report says so and creates none.
    let none = tally(&["node", "disk-usage", "--config", path_arg(&config)?])?;
    ensure!(
        !none.status.success(),
        "disk-usage without a store succeeded"
    );
    ensure!(
        text(&none.stderr).contains("no store at"),
        "{}",
        text(&none.stderr)
    );
    ensure!(
        !dir.path().join("data").exists(),
        "disk-usage created the data directory"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["node", "run", "--config", path_arg(&config)?])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    // The node logs these in an order that depends on timing (a lone validator may commit
    // before the API line is written), so wait for all of them in any order.
    let started = wait_for_all(
        &lines,
        &["node running", "HTTP API listening over TLS", "committed"],
    )
    .and_then(|found| health_of(found.get(1).map_or("", String::as_str), &file("ca.pem")));
    match started {
        Ok((status, health)) => {
            if status != 200 || !health.contains("\"height\"") {
                let _ = child.kill();
                bail!("the API's /health answered {status}: {health}");
            }
        }
        Err(e) => {
            let _ = child.kill();
            return Err(e);
        }
    }
    // A snapshot after every block: listed while the node runs.
    wait_for_line(&lines, "state snapshot taken")?;
    let listed = tally(&[
        "node",
        "snapshots",
        "--config",
        path_arg(&config)?,
        "--json",
    ]);
    let listed_ok = matches!(&listed, Ok(o) if o.status.success()
        && serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .is_ok_and(|v| v[0]["height"].as_u64() >= Some(1) && v[0]["chunks"].as_u64() >= Some(1)));
    if !listed_ok {
        let _ = child.kill();
        bail!(
            "node snapshots: {:?}",
            listed.map(|o| (text(&o.stdout), text(&o.stderr)))
        );
    }
    // A backup of the running node, over its admin socket.
    let live = tally(&[
        "node",
        "backup",
        "--config",
        path_arg(&config)?,
        "--out",
        path_arg(&file("live.backup"))?,
    ]);
    let live_ok = matches!(&live, Ok(o) if o.status.success()
        && text(&o.stdout).contains("from the running node"));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    ensure!(killed.success(), "kill failed");
    ensure!(
        live_ok,
        "backup of the running node: {:?}",
        live.map(|o| (text(&o.stdout), text(&o.stderr)))
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("node did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    ensure!(status.success(), "exit status {status}");
    wait_for_line(&lines, "stopped")?;

    // The stopped node's data directory, by kind of record.
    let usage = tally(&[
        "node",
        "disk-usage",
        "--config",
        path_arg(&config)?,
        "--json",
    ])?;
    ensure!(
        usage.status.success(),
        "disk-usage: {}",
        text(&usage.stderr)
    );
    let usage: serde_json::Value = serde_json::from_slice(&usage.stdout)?;
    ensure!(usage["file_bytes"].as_u64() > Some(0), "{usage}");
    let kinds = usage["kinds"].as_array().context("no kinds")?;
    let blocks = kinds
        .iter()
        .find(|k| k["kind"] == "blocks")
        .context("no blocks row")?;
    ensure!(blocks["entries"].as_u64() >= Some(1), "{usage}");
    ensure!(blocks["history"] == true, "{usage}");
    backup_and_restore_by_command(&config, &file)
}

/// `tally node backup` of the stopped node, and `tally node restore` of both backups into new
/// data directories: refused over a chain, and never over an existing backup file.
fn backup_and_restore_by_command(config: &Path, file: &dyn Fn(&str) -> PathBuf) -> Result<()> {
    let run = |args: &[&str]| -> Result<(bool, String)> {
        let out = tally(args)?;
        Ok((
            out.status.success(),
            format!("{}{}", text(&out.stdout), text(&out.stderr)),
        ))
    };
    let backup_args = |out: &Path| -> Result<Vec<String>> {
        Ok([
            "node",
            "backup",
            "--config",
            path_arg(config)?,
            "--out",
            path_arg(out)?,
        ]
        .map(String::from)
        .to_vec())
    };
    let args = backup_args(&file("stopped.backup"))?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, said) = run(&args)?;
    ensure!(ok && said.contains("the node was stopped"), "{said}");
    let (ok, said) = run(&args)?;
    ensure!(
        !ok && said.contains("never overwritten"),
        "a backup overwritten: {said}"
    );
    let base = std::fs::read_to_string(config)?;
    for (name, backup) in [
        ("restored-live", "live.backup"),
        ("restored-stopped", "stopped.backup"),
    ] {
        let restored_config = file(&format!("{name}.toml"));
        std::fs::write(
            &restored_config,
            base.replace("data_dir = \"data\"", &format!("data_dir = \"{name}\"")),
        )?;
        let backup = file(backup);
        let restore = [
            "node",
            "restore",
            "--config",
            path_arg(&restored_config)?,
            "--from",
            path_arg(&backup)?,
        ];
        let (ok, said) = run(&restore)?;
        ensure!(ok && said.contains("restored cli-test at height"), "{said}");
        let (ok, said) = run(&restore)?;
        ensure!(
            !ok && said.contains("already holds a chain"),
            "restored twice: {said}"
        );
        let (ok, said) = run(&[
            "node",
            "disk-usage",
            "--config",
            path_arg(&restored_config)?,
        ])?;
        ensure!(ok && said.contains("committed transactions"), "{said}");
    }
    Ok(())
}

/// Asks the API named in a log line (`address=IP:PORT`) for `/health`, over TLS trusting
/// the CA in `ca`, through the project's client.
fn health_of(api_line: &str, ca: &Path) -> Result<(u16, String)> {
    let address: std::net::SocketAddr = api_line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("address="))
        .context("no address in the API's log line")?
        .parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime.block_on(async {
        let tls = tally_sdk::ClientTls::from_ca_file(ca)?;
        tally_sdk::Api::https(address, &tls).get("/health").await
    })?;
    Ok((answer.status.as_u16(), text(&answer.body)))
}

#[test]
fn node_run_refuses_an_api_without_tls_unless_the_config_says_plain_http() -> Result<()> {
    let dir = tempfile::tempdir()?;
    KeyFile::write_new(
        &SigningKey::from_seed([5; 32]),
        &dir.path().join("node.key"),
    )?;
    std::fs::write(dir.path().join("genesis.json"), "{}")?;
    let config = dir.path().join("tally.toml");
    let base = "mode = \"validator\"\nlisten_address = \"127.0.0.1:0\"\n\
                api_address = \"127.0.0.1:0\"\ndata_dir = \"data\"\nkey_file = \"node.key\"\n\
                genesis_file = \"genesis.json\"\n";
    std::fs::write(&config, base)?;
    let out = tally(&["node", "run", "--config", path_arg(&config)?])?;
    ensure!(!out.status.success());
    let stderr = text(&out.stderr);
    ensure!(
        stderr.contains("[api]") && stderr.contains("plain_http = true"),
        "{stderr}"
    );
    Ok(())
}

/// Waits until each needle has appeared in some line; returns the first line for each.
fn wait_for_all(lines: &mpsc::Receiver<String>, needles: &[&str]) -> Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut found: Vec<Option<String>> = vec![None; needles.len()];
    while found.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = lines.recv_timeout(left) else {
            let missing: Vec<&str> = needles
                .iter()
                .zip(&found)
                .filter(|(_, f)| f.is_none())
                .map(|(n, _)| *n)
                .collect();
            bail!("no log lines containing {missing:?}");
        };
        for (needle, slot) in needles.iter().zip(found.iter_mut()) {
            if slot.is_none() && line.contains(needle) {
                *slot = Some(line.clone());
            }
        }
    }
    Ok(found.into_iter().flatten().collect())
}

fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Ok(line),
            Ok(_) => {}
            Err(_) => bail!("no log line containing {needle:?}"),
        }
    }
}
