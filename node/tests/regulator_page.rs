//! The regulator's page in headless Chromium: served by a running node over TLS, it signs in
//! with the regulator's institution key (WebCrypto Ed25519, RFC 9421 signatures), shows the
//! head height and finds a committed transaction by its hash, rendered into the DOM; signed
//! out, the node refuses it every ledger read.
//!
//! Without `/usr/bin/chromium` the test says so and passes, except under `CI=true` (see
//! `common/chromium.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
#[path = "common/http.rs"]
mod http;

use anyhow::{Context, Result, ensure};
use chromium::{chromium, dump_dom, screenshot, text_of};
use common::*;
use hyper::StatusCode;

#[path = "common/chromium.rs"]
mod chromium;

/// The fragment that signs the page in as the regulator (read by the page, never sent).
fn regulator_credential() -> String {
    chromium::credential_fragment(REGULATOR.0, &institution_key(REGULATOR).seed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regulator_page_shows_the_head_and_finds_a_transaction() -> Result<()> {
    let Some(chromium) = chromium()? else {
        return Ok(());
    };
    let mut cluster = Cluster::new(genesis(1))?;
    cluster.start(0).await?;
    let txs = open_wallet(1, 5_000);
    let hashes = cluster.submit_all(&txs, |_| 0).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    let known = hashes[2];
    let location = cluster
        .node(0)?
        .context
        .storage
        .tx_location(&known)?
        .context("committed")?;
    let server = http::serve(cluster.node(0)?).await?;
    let addr = server.addr;
    let pin = chromium::pin_flag(&server.key_pem)?;

    // The page and its files come with a same-origin-only policy.
    let page = http::get(addr, "/regulator/").await?;
    ensure!(page.status == StatusCode::OK);
    let policy = page.header("content-security-policy").unwrap_or_default();
    ensure!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"));
    ensure!(!page.text().contains("http://") && !page.text().contains("https://"));
    for file in ["app.js", "style.css"] {
        let answer = http::get(addr, &format!("/regulator/{file}")).await?;
        ensure!(answer.status == StatusCode::OK, "{file}");
        ensure!(!answer.text().contains("http://") && !answer.text().contains("https://"));
    }

    // Signed out, the page gets nothing of the ledger: every read is refused.
    let page_url = format!(
        "https://{addr}/regulator/?tx={}&threshold=1000",
        known.to_hex()
    );
    let dom = dump_dom(chromium, &pin, &page_url).await?;
    ensure!(
        text_of(&dom, "signed-in-as") == Some("nobody"),
        "signed in without credentials:\n{dom}"
    );
    ensure!(
        dom.contains("CREDENTIALS_REQUIRED") && !dom.contains("id=\"tx-result\""),
        "the node answered a page that did not sign in:\n{dom}"
    );

    let url = format!("{page_url}{}", regulator_credential());
    let dom = dump_dom(chromium, &pin, &url).await?;
    ensure!(
        dom.contains(&format!("data-signed-in=\"institution:{}\"", REGULATOR.0)),
        "the page did not sign in:\n{dom}"
    );
    ensure!(!dom.contains("CREDENTIALS_REQUIRED"), "{dom}");
    let head = cluster.height(0)?;
    let shown: u64 = text_of(&dom, "head-height")
        .with_context(|| format!("no head height in the page:\n{dom}"))?
        .parse()
        .with_context(|| format!("the head height is not a number:\n{dom}"))?;
    ensure!(
        shown >= location.height && shown <= head,
        "head shown {shown}, committed {}..={head}",
        location.height
    );
    ensure!(dom.contains("id=\"tx-result\""), "no search result:\n{dom}");
    ensure!(dom.contains("data-status=\"committed\""), "{dom}");
    ensure!(
        dom.contains(&known.to_hex()),
        "the hash is not shown:\n{dom}"
    );
    ensure!(
        dom.contains("TopUp"),
        "the transaction's kind is not shown:\n{dom}"
    );
    ensure!(
        dom.contains("Node healthy (validator)"),
        "no health alert line:\n{dom}"
    );
    // The validator set, the latest blocks and the large movements (the top-up) are shown.
    ensure!(
        dom.contains(&validator_key(0).public_key().to_hex()),
        "no validator in the page:\n{dom}"
    );
    let blocks = &dom[dom.find("id=\"blocks\"").context("no blocks table")?..];
    ensure!(
        blocks.contains("<tr><td class=\"num\">"),
        "no block rows:\n{dom}"
    );
    let large = &dom[dom.find("id=\"large\"").context("no large table")?..];
    ensure!(
        large.contains("5000 CNY") && large.contains("institution 1"),
        "{dom}"
    );

    // For a person to look at: `TALLY_PAGE_SCREENSHOT=page.png` keeps a picture of the page.
    if let Ok(path) = std::env::var("TALLY_PAGE_SCREENSHOT") {
        screenshot(chromium, &pin, &url, &path).await?;
    }

    // An unknown hash is reported as not found, in the page.
    let unknown = "ab".repeat(32);
    let dom = dump_dom(
        chromium,
        &pin,
        &format!(
            "https://{addr}/regulator/?tx={unknown}{}",
            regulator_credential()
        ),
    )
    .await?;
    ensure!(
        text_of(&dom, "search-result").is_some() && dom.contains("NOT_FOUND"),
        "{dom}"
    );
    server.stop().await?;
    cluster.shutdown().await
}
