//! The API's trust boundary over real `tally` processes: four validators and an audit node,
//! every API on TLS (the devnet's CA), every read signed (RFC 9421) by the party's own key.
//!
//! - A bank reads its own customer and is refused another bank's (403); a consumer reads
//!   itself and is refused another (403); the `tally` command reads as the party it is told.
//! - Without credentials, every ledger-content route of the router (walked from its own
//!   table) is 401; the public ones answer.
//! - The regulator reads everything, blocks' bodies and the audit reports included, and its
//!   page (served by the audit node) works in headless Chromium once signed in.
//! - The event stream gives each party only its own events.
//! - A client holding its share of event streams (asking for 1,000), or flooding audit
//!   reports, does not stop another party's stream or the regulator's report: each is
//!   answered (not 429) while the flood holds its slots; the latency is printed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use serde_json::Value;
use tally_contracts::{AccountId, Party, Transaction, TransferId, TxKind};
use tally_devnet::layout::{BANK_A, BANK_B, Layout, REGULATOR, institution_id};
use tally_node::api::{self, Scope};
use tally_sdk::{Api, Credential};
use tally_tests::load::{Wallet, make_wallets};
use tally_tests::network::TestNet;

#[path = "../../node/tests/common/chromium.rs"]
mod chromium;

/// Every wait here is for a condition, bounded by this (a loaded 2-core machine).
const WAIT: Duration = Duration::from_secs(60);
/// Event streams the flooding client asks for.
const FLOOD_STREAMS: usize = 1_000;
/// Audit report requests in the flood.
const FLOOD_REPORTS: usize = 200;

/// The regulator's page as the audit node process serves it, in headless Chromium: signed
/// out, every ledger read is refused; signed in with the regulator's key, it shows the head
/// and finds the transfer, committed.
async fn regulator_page(net: &TestNet, transfer: tally_crypto::Hash) -> Result<()> {
    let Some(chromium) = chromium::chromium()? else {
        return Ok(());
    };
    let layout = &net.layout;
    let node = &layout.manifest.nodes[net.audit()?];
    let key_pem = std::fs::read_to_string(layout.node_dir(node).join("api-key.pem"))
        .context("the audit node's TLS key")?;
    let pin = chromium::pin_flag(&key_pem)?;
    let page = format!(
        "https://{}/regulator/?tx={}",
        node.api_address,
        transfer.to_hex()
    );
    let dom = chromium::dump_dom(chromium, &pin, &page).await?;
    ensure!(
        chromium::text_of(&dom, "signed-in-as") == Some("nobody")
            && dom.contains("CREDENTIALS_REQUIRED")
            && !dom.contains("id=\"tx-result\""),
        "the audit node answered a page that did not sign in:\n{dom}"
    );
    let regulator = institution_id(REGULATOR);
    let seed = layout.institution_key(REGULATOR)?.seed();
    let signed_in = format!(
        "{page}{}",
        chromium::credential_fragment(regulator.0, &seed)
    );
    let dom = chromium::dump_dom(chromium, &pin, &signed_in).await?;
    ensure!(
        dom.contains(&format!("data-signed-in=\"institution:{}\"", regulator.0))
            && !dom.contains("CREDENTIALS_REQUIRED"),
        "the page did not sign in as the regulator:\n{dom}"
    );
    let head: u64 = chromium::text_of(&dom, "head-height")
        .and_then(|h| h.parse().ok())
        .with_context(|| format!("no head height in the page:\n{dom}"))?;
    ensure!(head >= 1, "head {head}");
    ensure!(
        dom.contains("id=\"tx-result\"")
            && dom.contains("data-status=\"committed\"")
            && dom.contains(&transfer.to_hex()),
        "the page did not find the transfer:\n{dom}"
    );
    println!("the regulator's page, served by the audit node, signed in and found the transfer");
    Ok(())
}

/// A validator's API without credentials.
fn anonymous(layout: &Layout, i: usize) -> Api {
    let node = &layout.manifest.nodes[i];
    layout.api(node).unwrap()
}

fn as_bank(layout: &Layout, i: usize, bank: tally_devnet::layout::InstitutionSpec) -> Api {
    layout
        .api_as(layout.manifest.nodes[i].api_address, bank)
        .unwrap()
}

fn as_wallet(api: &Api, wallet: &Wallet) -> Api {
    api.signed_as(Credential::of_party(
        Party::Account(wallet.id),
        wallet.key.clone(),
    ))
}

/// The answer's error code, or the status when it has none.
fn code(answer: &tally_sdk::Answer) -> String {
    serde_json::from_slice::<Value>(&answer.body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| answer.status.to_string())
}

/// A route's template with sample values for its parameters.
fn concrete(template: &str, account: AccountId) -> String {
    template
        .replace("{hash}", &"ab".repeat(32))
        .replace("{id}", &account.0.to_string())
        .replace("{height}", "1")
        .replace("{payer_key}", &"cd".repeat(32))
        .replace("{code_nonce}", "1")
}

/// Two wallets (Bank A's, Bank B's) and a transfer from the first to the second.
async fn two_customers(net: &TestNet) -> Result<(Vec<Wallet>, tally_crypto::Hash)> {
    let apis = net.running_validator_apis();
    let wallets = make_wallets(&net.layout, &apis, 9_000_001, 2).await?;
    let signed = Transaction {
        chain_id: net.layout.manifest.chain_id.clone(),
        sender: Party::Account(wallets[0].id),
        nonce: 3,
        kind: TxKind::Transfer {
            id: TransferId(77),
            to: wallets[1].id,
            amount: 5,
            memo: tally_contracts::Memo::NONE,
        },
    }
    .sign(&[&wallets[0].key]);
    let receipt = apis[0].submit(&signed).await?;
    ensure!(receipt.is_ok(), "the transfer: {}", receipt.code);
    Ok((wallets, receipt.hash))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_party_reads_only_its_own_over_tls() -> Result<()> {
    let mut net = TestNet::start(4, 1, "").await?;
    let outcome = reads(&net).await;
    if outcome.is_err()
        && let Some(dir) = net.keep_dir()
    {
        eprintln!("the devnet's directory is kept: {}", dir.display());
    }
    net.shutdown().await;
    outcome
}

async fn reads(net: &TestNet) -> Result<()> {
    let layout = &net.layout;
    let (wallets, transfer) = two_customers(net).await?;
    let (alice, bob) = (&wallets[0], &wallets[1]);
    let v0 = anonymous(layout, 0);
    let bank_a = as_bank(layout, 0, BANK_A);
    let bank_b = as_bank(layout, 0, BANK_B);
    let as_alice = as_wallet(&v0, alice);
    let as_bob = as_wallet(&v0, bob);

    // Bank A reads its customer and not Bank B's; a consumer itself and not another.
    for (who, api, mine, theirs) in [
        ("bank A", &bank_a, alice, bob),
        ("bank B", &bank_b, bob, alice),
        ("alice", &as_alice, alice, bob),
        ("bob", &as_bob, bob, alice),
    ] {
        for path in ["/v1/accounts/{id}", "/v1/accounts/{id}/history"] {
            let own = api.get(&concrete(path, mine.id)).await?;
            ensure!(
                own.status == StatusCode::OK,
                "{who} {path}: {}",
                own.error_text()
            );
            let other = api.get(&concrete(path, theirs.id)).await?;
            ensure!(
                other.status == StatusCode::FORBIDDEN && code(&other) == "OUT_OF_SCOPE",
                "{who} read another's {path}: {} {}",
                other.status,
                code(&other)
            );
        }
    }
    println!("bank A reads its customer, 403 for bank B's; each consumer itself, 403 for another");

    // The `tally` command reads as the party it is told to be.
    let key_file = net.dir().join("alice.key");
    tally_crypto::KeyFile::write_new(&alice.key, &key_file)?;
    let tally = |account: AccountId| {
        std::process::Command::new(&net.tally)
            .args([
                "wallet",
                "balance",
                "--account",
                &account.0.to_string(),
                "--json",
            ])
            .args([
                "--api",
                &format!("https://{}", layout.manifest.nodes[0].api_address),
            ])
            .arg("--ca-cert")
            .arg(layout.ca_cert_path())
            .args(["--as", &format!("account:{}", alice.id.0), "--as-key"])
            .arg(&key_file)
            .env("RUST_LOG", "warn")
            .output()
    };
    let own = tally(alice.id)?;
    ensure!(
        own.status.success(),
        "tally wallet balance as alice: {}",
        String::from_utf8_lossy(&own.stderr)
    );
    let other = tally(bob.id)?;
    let stderr = String::from_utf8_lossy(&other.stderr);
    ensure!(
        !other.status.success() && stderr.contains("OUT_OF_SCOPE"),
        "tally read bob's balance as alice: {stderr}"
    );

    // Without credentials: 401 on every ledger-content route of the router, walked from the
    // table it is built from; the public routes answer.
    let mut refused = Vec::new();
    let mut public = Vec::new();
    for (method, template, scope) in api::route_scopes() {
        let path = if template == "/v1/events" {
            "/v1/events?kind=SanctionAdded".to_string()
        } else {
            concrete(template, alice.id)
        };
        let response = v0.open(method.clone(), &path, &[], Vec::new()).await?;
        let status = response.status();
        let body = if status == StatusCode::OK && template == "/v1/events" {
            String::new()
        } else {
            let bytes = response.into_body().collect().await?.to_bytes();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        match scope {
            Scope::Party | Scope::Regulator => {
                ensure!(
                    status == StatusCode::UNAUTHORIZED && body.contains("CREDENTIALS_REQUIRED"),
                    "{method} {path} answered without credentials: {status} {body}"
                );
                refused.push(template);
            }
            // The devnet lets anyone scrape metrics (`[api] metrics_public = true`).
            Scope::Public | Scope::Submit | Scope::Metrics => {
                ensure!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{method} {path} refused without credentials: {status} {body}"
                );
                public.push(template);
            }
        }
    }
    println!(
        "without credentials, 401 on {} routes: {refused:?}; answered on {public:?}",
        refused.len()
    );
    ensure!(refused.len() >= 16, "{refused:?}");

    // The regulator reads everything: both customers, the transfer, a block's body, and
    // the audit node's reports.
    let regulator = net.api(0)?;
    for path in [
        concrete("/v1/accounts/{id}", alice.id),
        concrete("/v1/accounts/{id}", bob.id),
        concrete("/v1/accounts/{id}/history", bob.id),
        format!("/v1/transactions/{transfer}"),
        "/v1/institutions/1".to_string(),
        "/v1/institutions/2".to_string(),
    ] {
        let answer = regulator.get(&path).await?;
        ensure!(
            answer.status == StatusCode::OK,
            "{path}: {}",
            answer.error_text()
        );
    }
    let status: Value = regulator
        .get_json(&format!("/v1/transactions/{transfer}"))
        .await?;
    let height = status["height"].as_u64().context("no height")?;
    let block: Value = regulator.get_json(&format!("/v1/blocks/{height}")).await?;
    ensure!(
        block["txs"].as_array().is_some_and(|t| !t.is_empty()),
        "{block}"
    );
    let public_block: Value = v0.get_json(&format!("/v1/blocks/{height}")).await?;
    ensure!(
        public_block.get("txs").is_none() && public_block["certificate"].is_object(),
        "the public got a block's body: {public_block}"
    );
    let audit = net.api(net.audit()?)?;
    for path in [
        "/v1/audit/report",
        "/v1/audit/net-positions",
        "/v1/audit/frozen",
    ] {
        let answer = audit.get(path).await?;
        ensure!(
            answer.status == StatusCode::OK,
            "{path}: {}",
            answer.error_text()
        );
        let refused = as_bank(layout, net.audit()?, BANK_A).get(path).await?;
        ensure!(
            refused.status == StatusCode::FORBIDDEN,
            "bank A read {path}"
        );
    }
    println!(
        "the regulator reads both customers, the transfer, block {height}'s body and the reports"
    );
    regulator_page(net, transfer).await?;

    // The event stream: each party only its own events, all of them. What each should get
    // is read from the blocks' results (the regulator's), in stream order.
    let all = events_of_blocks(&regulator, height).await?;
    let alice_id = alice.id.0;
    let bob_id = bob.id.0;
    for (who, api, own) in [
        (
            "alice",
            &as_alice,
            Box::new(move |e: &Value| names(e, alice_id)) as Box<dyn Fn(&Value) -> bool>,
        ),
        (
            "bank B",
            &bank_b,
            Box::new(move |e: &Value| {
                names(e, bob_id)
                    || e["event"]
                        .get("ObligationRecorded")
                        .is_some_and(|o| o["from"] == 2 || o["to"] == 2)
            }),
        ),
    ] {
        let want: Vec<&Value> = all.iter().filter(|e| own(e)).collect();
        let got = events(api, want.len(), &*own).await?;
        let ids = |v: &[&Value]| -> Vec<String> {
            v.iter()
                .map(|e| e["id"].as_str().unwrap_or("").to_string())
                .collect()
        };
        let got_refs: Vec<&Value> = got.iter().collect();
        ensure!(
            ids(&got_refs) == ids(&want),
            "{who}'s stream: {:?}, its own: {:?}",
            ids(&got_refs),
            ids(&want)
        );
        println!("{who}: {} of the {} events so far", got.len(), all.len());
    }
    Ok(())
}

/// Whether an event's JSON names `account` as a field's value.
fn names(event: &Value, account: u128) -> bool {
    let text = event["event"].to_string();
    text.contains(&format!(":{account},")) || text.contains(&format!(":{account}}}"))
}

/// Every event of blocks `1..=top`, as the stream orders and names them: per block the holds
/// released first, then each receipt's events; `{ id, event }`.
async fn events_of_blocks(regulator: &Api, top: u64) -> Result<Vec<Value>> {
    let mut all = Vec::new();
    for height in 1..=top {
        let block: Value = regulator.get_json(&format!("/v1/blocks/{height}")).await?;
        let results = &block["results"];
        let expired = results["expired"].as_array().cloned().unwrap_or_default();
        let caused = results["receipts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .flat_map(|r| r["events"].as_array().cloned().unwrap_or_default());
        for (index, event) in expired.into_iter().chain(caused).enumerate() {
            all.push(serde_json::json!({ "id": format!("{height}:{index}"), "event": event }));
        }
    }
    Ok(all)
}

/// The first `count` events of `api`'s stream from height 1; each must pass `own`.
/// Bounded by [`WAIT`].
async fn events(api: &Api, count: usize, own: &dyn Fn(&Value) -> bool) -> Result<Vec<Value>> {
    let response = api
        .open(Method::GET, "/v1/events?from_height=1", &[], Vec::new())
        .await?;
    ensure!(
        response.status() == StatusCode::OK,
        "stream: {}",
        response.status()
    );
    let mut stream = Sse::new(response.into_body());
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while seen.len() < count {
        let event = stream.next(deadline).await?;
        ensure!(own(&event), "an event not its own: {event}");
        seen.push(event);
    }
    Ok(seen)
}

/// A server-sent event stream's data events.
struct Sse {
    body: Incoming,
    buffer: String,
}

impl Sse {
    fn new(body: Incoming) -> Sse {
        Sse {
            body,
            buffer: String::new(),
        }
    }

    async fn next(&mut self, deadline: Instant) -> Result<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if frame.lines().any(|l| l.starts_with("event:")) {
                    bail!("the stream sent an error: {frame}");
                }
                if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) {
                    return Ok(serde_json::from_str(data.trim_start())?);
                }
                continue; // a keep-alive comment
            }
            let frame = tokio::time::timeout_at(deadline.into(), self.body.frame())
                .await
                .context("no event in time")?
                .context("the stream ended")??;
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data)?);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_does_not_stop_another_partys_stream_or_report() -> Result<()> {
    let mut net = TestNet::start(4, 1, "").await?;
    let outcome = floods(&net).await;
    if outcome.is_err()
        && let Some(dir) = net.keep_dir()
    {
        eprintln!("the devnet's directory is kept: {}", dir.display());
    }
    net.shutdown().await;
    outcome
}

async fn floods(net: &TestNet) -> Result<()> {
    let layout = &net.layout;
    two_customers(net).await?;
    let flooder = as_bank(layout, 0, BANK_A);

    // Bank A asks for 1,000 event streams and keeps every one it gets.
    let mut held = Vec::new();
    let mut refused = BTreeSet::new();
    let mut refused_count = 0;
    for _ in 0..FLOOD_STREAMS {
        let response = flooder
            .open(
                Method::GET,
                "/v1/events?kind=SanctionAdded",
                &[],
                Vec::new(),
            )
            .await?;
        if response.status() == StatusCode::OK {
            held.push(response);
        } else {
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            refused.insert(format!("{status} {}", body["code"].as_str().unwrap_or("")));
            refused_count += 1;
        }
    }
    let share = api::Limits::default().streams_per_client_max;
    println!(
        "bank A asked for {FLOOD_STREAMS} streams: holds {}, refused {refused_count} ({refused:?})",
        held.len()
    );
    ensure!(
        held.len() == share,
        "bank A holds {} streams, its share is {share}",
        held.len()
    );
    ensure!(
        refused == BTreeSet::from(["429 Too Many Requests TOO_MANY_STREAMS".to_string()]),
        "{refused:?}"
    );
    // Anonymous clients get no stream at all: no slot is taken.
    let refused_anonymous = anonymous(layout, 0)
        .open(Method::GET, "/v1/events", &[], Vec::new())
        .await?;
    ensure!(refused_anonymous.status() == StatusCode::UNAUTHORIZED);

    // Bank B, meanwhile, opens its stream and gets its events.
    let bank_b = as_bank(layout, 0, BANK_B);
    let started = Instant::now();
    let response = bank_b
        .open(Method::GET, "/v1/events?from_height=1", &[], Vec::new())
        .await?;
    ensure!(
        response.status() == StatusCode::OK,
        "bank B's stream was refused while bank A flooded: {}",
        response.status()
    );
    let first = Sse::new(response.into_body())
        .next(Instant::now() + WAIT)
        .await?;
    println!(
        "bank B's stream answered and gave its first event ({}) {:.0} ms after asking, while \
         bank A held {} streams",
        first["kind"],
        started.elapsed().as_secs_f64() * 1000.0,
        held.len()
    );
    ensure!(held.len() == share, "bank A lost streams meanwhile");

    // A flood of audit reports from a bank and from anonymous clients, all at once: each is
    // refused before it takes a scan slot, and the regulator's report is answered.
    let audit_index = net.audit()?;
    let audit_regulator = net.api(audit_index)?;
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..FLOOD_REPORTS {
        let api = if i % 2 == 0 {
            as_bank(layout, audit_index, BANK_A)
        } else {
            anonymous(layout, audit_index)
        };
        flood.spawn(async move { api.get("/v1/audit/report").await });
    }
    let started = Instant::now();
    let report = audit_regulator.get("/v1/audit/report").await?;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    while let Some(answer) = flood.join_next().await {
        let answer = answer??;
        *outcomes
            .entry(format!("{} {}", answer.status.as_u16(), code(&answer)))
            .or_default() += 1;
    }
    println!(
        "the regulator's report answered {} in {latency_ms:.0} ms during a flood of \
         {FLOOD_REPORTS} reports by others: {outcomes:?}",
        report.status
    );
    ensure!(report.status == StatusCode::OK, "{}", report.error_text());
    ensure!(
        outcomes
            .keys()
            .all(|k| k == "401 CREDENTIALS_REQUIRED" || k == "403 OUT_OF_SCOPE"),
        "{outcomes:?}"
    );
    ensure!(outcomes.values().sum::<usize>() == FLOOD_REPORTS);
    drop(held);

    // The regulator flooding its own reports is held to its share of scans; bank B's
    // stream is unaffected by that too.
    let mut own = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let api = audit_regulator.clone();
        own.spawn(async move { api.get(&format!("/v1/audit/report?to={}", 1)).await });
    }
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    while let Some(answer) = own.join_next().await {
        let answer = answer??;
        *codes
            .entry(format!("{} {}", answer.status.as_u16(), code(&answer)))
            .or_default() += 1;
    }
    println!("the regulator's own 40 concurrent reports: {codes:?}");
    ensure!(
        codes
            .keys()
            .all(|k| k.starts_with("200") || k == "429 TOO_MANY_SCANS"),
        "{codes:?}"
    );
    Ok(())
}
