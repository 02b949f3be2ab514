//! Headless Chromium for the regulator page's tests (here and, by `#[path]`, in the
//! process-level suites of `tests/`): where it is, how it trusts a node's TLS key, and the
//! DOM it renders.
//!
//! Without `/usr/bin/chromium` (Debian's `chromium` package) a test says so and passes,
//! except under `CI=true`, where `.ci/run` installs it and its absence is a failure.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The longest one Chromium run may take before the test gives up on it.
const CHROMIUM_WAIT: Duration = Duration::from_secs(40);

/// Chromium's path, or `None` (after saying why) when the test cannot run here.
pub fn chromium() -> Result<Option<&'static str>> {
    if Path::new(CHROMIUM).exists() {
        return Ok(Some(CHROMIUM));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!("{CHROMIUM} is missing under CI=true: .ci/run should have installed it");
    }
    eprintln!("skipped: {CHROMIUM} is missing (apt-get install chromium)");
    Ok(None)
}

/// What Chromium needs to trust a server whose TLS key is `key_pem`: the key's pin
/// (`--ignore-certificate-errors-spki-list`, the base64 sha-256 of its SubjectPublicKeyInfo).
pub fn pin_flag(key_pem: &str) -> Result<String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let spki = rcgen::KeyPair::from_pem(key_pem)?.public_key_der();
    let pin = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(spki));
    Ok(format!("--ignore-certificate-errors-spki-list={pin}"))
}

/// The fragment that signs the page in as an institution (read by the page, never sent).
pub fn credential_fragment(institution: u32, seed: &[u8; 32]) -> String {
    format!(
        "#credential=institution:{institution}:{}",
        hex::encode(seed)
    )
}

/// The DOM of `url` after its scripts ran, as headless Chromium dumps it.
pub async fn dump_dom(chromium: &str, pin: &str, url: &str) -> Result<String> {
    let profile = tempfile::tempdir()?;
    let mut command = tokio::process::Command::new(chromium);
    command
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--disable-background-networking",
            "--run-all-compositor-stages-before-draw",
            "--virtual-time-budget=4000",
            "--dump-dom",
        ])
        .arg(pin)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(CHROMIUM_WAIT, command.output())
        .await
        .context("chromium did not finish in time")??;
    ensure!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Saves a picture of `url` to `path`.
#[allow(dead_code)]
pub async fn screenshot(chromium: &str, pin: &str, url: &str, path: &str) -> Result<()> {
    let profile = tempfile::tempdir()?;
    let status = tokio::time::timeout(
        CHROMIUM_WAIT,
        tokio::process::Command::new(chromium)
            .args([
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--hide-scrollbars",
                "--window-size=1400,1800",
                "--virtual-time-budget=4000",
            ])
            .arg(pin)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--screenshot={path}"))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status(),
    )
    .await
    .context("chromium did not finish in time")??;
    ensure!(status.success(), "chromium failed to take the screenshot");
    Ok(())
}

/// The text of the element with `id` in `dom` (the first text up to the next tag).
pub fn text_of<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let rest = dom.get(at..)?;
    let start = rest.find('>')? + 1;
    let end = rest.get(start..)?.find('<')? + start;
    Some(rest.get(start..end)?.trim())
}
