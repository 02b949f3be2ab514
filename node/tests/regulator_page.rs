//! The regulator's page in headless Chromium: served by a running node over TLS, it signs in
//! with the regulator's institution key (WebCrypto Ed25519, RFC 9421 signatures), shows the
//! head height and finds a committed transaction by its hash, rendered into the DOM; signed
//! out, the node refuses it every ledger read. Its watch sections show an open dispute with
//! its age, a sanctioned person's accounts and a structuring alert.
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
    for file in ["app.js", "sign.js", "style.css"] {
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
    // The idle chain's heartbeat blocks after the last transaction are folded into one row;
    // the known transaction's block is shown while it is within the page's look-back
    // (100 heights, 10 s of 100 ms heartbeats: a slow start of Chromium may pass it).
    let blocks = tbody(&dom, "blocks")?;
    let last = hashes
        .iter()
        .map(|h| {
            Ok(cluster
                .node(0)?
                .context
                .storage
                .tx_location(h)?
                .map_or(0, |l| l.height))
        })
        .collect::<Result<Vec<u64>>>()?
        .into_iter()
        .max()
        .unwrap_or(0);
    if shown > last {
        ensure!(
            blocks.contains("empty block") && blocks.contains("folded"),
            "no folded empty blocks above {last}, head {shown}:\n{blocks}"
        );
    }
    if shown < location.height + 90 {
        ensure!(
            blocks.contains(&format!("<tr><td class=\"num\">{}</td>", location.height)),
            "the transaction's block {} is not shown:\n{blocks}",
            location.height
        );
    }
    // Amounts in major units with their currency, institutions and accounts by name, times
    // in the viewer's zone with UTC on hover.
    let large = tbody(&dom, "large")?;
    ensure!(
        large.contains(">¥50.00<") && large.contains("title=\"5000 CNY minor units\""),
        "the top-up's amount is not formatted:\n{large}"
    );
    ensure!(
        large.contains(">Bank A bank issuance<") && large.contains(">consumer wallet 1 · Bank A<"),
        "the accounts are not named by kind and institution:\n{large}"
    );
    ensure!(large.contains(" UTC\">"), "no UTC time on hover:\n{large}");

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

/// Signs `kind` as `sender` with `keys`.
fn signed(
    sender: tally_contracts::Party,
    nonce: u64,
    keys: &[&tally_crypto::SigningKey],
    kind: tally_contracts::TxKind,
) -> tally_contracts::SignedTransaction {
    tally_contracts::Transaction {
        chain_id: CHAIN.into(),
        sender,
        nonce,
        kind,
    }
    .sign(keys)
}

/// The rows of the table body with `id` in `dom`.
fn tbody<'a>(dom: &'a str, id: &str) -> Result<&'a str> {
    let start = dom
        .find(&format!("<tbody id=\"{id}\">"))
        .with_context(|| format!("no table {id}:\n{dom}"))?;
    let end = dom[start..]
        .find("</tbody>")
        .with_context(|| format!("table {id} does not end"))?;
    Ok(&dom[start..start + end])
}

/// The page's watch sections: an open dispute with its age, the sanctioned person's
/// accounts, and the structuring alert of one person splitting payments across two wallets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regulator_page_shows_disputes_sanctioned_accounts_and_structuring() -> Result<()> {
    use tally_contracts::*;
    use tally_crypto::Hash;
    let Some(chromium) = chromium()? else {
        return Ok(());
    };
    let mut genesis = genesis(1);
    for institution in &mut genesis.ledger.institutions {
        if institution.id == BANK_A {
            institution.roles = institution.roles.with(Roles::ACQUIRER);
        }
    }
    let mut cluster = Cluster::new(genesis)?;
    cluster.start(0).await?;
    let commit = async |txs: Vec<SignedTransaction>| -> Result<()> {
        let hashes = cluster.submit_all(&txs, |_| 0).await?;
        cluster.wait_committed_ok(0, &hashes).await
    };
    // Wallets 1 and 2 are one person's; 3 pays an order; 9 is paid.
    let splitter = Hash::digest("identity", b"splitter");
    let bank = institution_key(BANK_A);
    let mut opening = Vec::new();
    for id in [1u128, 2, 3, 9] {
        let k = wallet_key(id);
        let me = Party::Account(AccountId(id));
        let card = CardToken(Hash::digest("card", &id.to_le_bytes()).0);
        let identity = if id <= 2 {
            splitter
        } else {
            Hash::digest("identity", &id.to_le_bytes())
        };
        opening.push(signed(
            me,
            0,
            &[&k, &bank],
            TxKind::RegisterAccount {
                account: AccountId(id),
                key: k.public_key(),
                currency: Currency::CNY,
                institution: BANK_A,
                tier: 0,
                identity,
            },
        ));
        opening.push(signed(
            me,
            1,
            &[&k, &bank],
            TxKind::BindCard { card, bank: BANK_A },
        ));
        opening.push(signed(
            me,
            2,
            &[&k, &bank],
            TxKind::TopUp {
                id: TransferId(id),
                card,
                amount: 500_000,
            },
        ));
    }
    let shop = wallet_key(100);
    opening.push(signed(
        Party::Institution(BANK_A),
        0,
        &[&bank, &shop],
        TxKind::RegisterMerchant {
            account: AccountId(100),
            key: shop.public_key(),
            currency: Currency::CNY,
            fee_bps: 100,
            identity: Hash::digest("identity", b"shop"),
        },
    ));
    commit(opening).await?;
    let expires_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64
        + 86_400_000;
    commit(vec![
        transfer(1, 9, 3, 90_000),
        transfer(2, 9, 3, 95_000),
        transfer(1, 9, 4, 85_000),
        signed(
            Party::Account(AccountId(100)),
            0,
            &[&shop],
            TxKind::CreateOrder {
                order: OrderId(41),
                amount: 40_000,
                currency: Currency::CNY,
                expires_at_ms,
                items: Hash::digest("items", b"41"),
            },
        ),
    ])
    .await?;
    let payer = wallet_key(3);
    commit(vec![signed(
        Party::Account(AccountId(3)),
        3,
        &[&payer],
        TxKind::PayOrder {
            id: TransferId(7_003),
            order: OrderId(41),
            source: PaymentSource::Balance,
            escrow_ms: None,
        },
    )])
    .await?;
    commit(vec![signed(
        Party::Account(AccountId(3)),
        4,
        &[&payer],
        TxKind::OpenDispute {
            id: TransferId(8_003),
            disputed: Disputed::Order(OrderId(41)),
            reason: DisputeReason::NotReceived,
        },
    )])
    .await?;
    // A later block: the dispute has an age.
    commit(vec![signed(
        Party::Institution(REGULATOR),
        0,
        &[&institution_key(REGULATOR)],
        TxKind::AddSanction { identity: splitter },
    )])
    .await?;

    let server = http::serve(cluster.node(0)?).await?;
    let addr = server.addr;
    let pin = chromium::pin_flag(&server.key_pem)?;
    let url = format!(
        "https://{addr}/regulator/?threshold=100000&from=1{}",
        regulator_credential()
    );
    let dom = dump_dom(chromium, &pin, &url).await?;
    ensure!(!dom.contains("CREDENTIALS_REQUIRED"), "{dom}");
    let short = |h: Hash| h.to_hex()[..16].to_string();

    let disputes = tbody(&dom, "disputes")?;
    ensure!(
        disputes.contains("order 41") && disputes.contains(">¥400.00<"),
        "no open dispute row:\n{disputes}"
    );
    ensure!(
        disputes.contains("<td>Bank A</td>"),
        "the deciding institution is not named:\n{disputes}"
    );
    ensure!(disputes.contains("NotReceived"), "{disputes}");
    let age: u64 = disputes
        .split("data-age-ms=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no age")?
        .parse()?;
    ensure!(age > 0, "{disputes}");

    let sanctioned = tbody(&dom, "sanctioned")?;
    ensure!(
        // The shown text, not the title that holds the whole digest.
        sanctioned.matches(&format!(">{}", short(splitter))).count() == 2,
        "the sanctioned person's two accounts are not both shown:\n{sanctioned}"
    );
    ensure!(
        sanctioned.contains(">consumer wallet 1<")
            && sanctioned.contains(">consumer wallet 2<")
            && sanctioned.contains("<td>Bank A</td>")
            && sanctioned.contains(">¥3,250.00<")
            && sanctioned.contains(">¥4,050.00<"),
        "{sanctioned}"
    );

    let structuring = tbody(&dom, "structuring")?;
    ensure!(
        structuring.contains(&short(splitter)) && structuring.contains(">¥2,700.00<"),
        "no structuring alert:\n{structuring}"
    );
    ensure!(structuring.contains("1 2"), "{structuring}");
    ensure!(
        !structuring.contains(&short(Hash::digest("identity", &3u128.to_le_bytes()))),
        "{structuring}"
    );

    // The activity charts: five SVGs drawn by the node and shown from memory, and beside
    // them the figures they plot, which equal the ledger's: four top-ups of ¥5,000.00, three
    // transfers adding up to ¥2,700.00, and the 20 transactions this test committed.
    for chart in ["payments", "volume", "flows", "corridors", "blocks"] {
        let figure = dom
            .find(&format!("data-chart=\"{chart}\""))
            .with_context(|| format!("no {chart} chart:\n{dom}"))?;
        ensure!(
            dom[figure..].contains("<img alt=") && dom[figure..].contains("src=\"blob:"),
            "the {chart} chart is not shown:\n{dom}"
        );
    }
    let payments = tbody(&dom, "activity-payments")?;
    let sum_of = |table: &str, kind: &str, field: &str| -> u64 {
        table
            .split("<tr ")
            .filter(|r| r.contains(&format!("data-kind=\"{kind}\"")))
            .filter_map(|r| r.split(&format!("data-{field}=\"")).nth(1))
            .filter_map(|v| v.split('"').next()?.parse::<u64>().ok())
            .sum()
    };
    ensure!(
        sum_of(payments, "ToppedUp", "count") == 4
            && sum_of(payments, "ToppedUp", "volume") == 2_000_000
            && sum_of(payments, "TransferReceived", "count") == 3
            && sum_of(payments, "TransferReceived", "volume") == 270_000,
        "the payments figures differ from the ledger's:\n{payments}"
    );
    let blocks = tbody(&dom, "activity-blocks")?;
    let transactions: u64 = blocks
        .split("data-transactions=\"")
        .skip(1)
        .filter_map(|v| v.split('"').next()?.parse::<u64>().ok())
        .sum();
    ensure!(
        transactions == 20,
        "{transactions} transactions in:\n{blocks}"
    );

    // Drill-down: the large top-up's receiving account links to the account, whose page
    // shows its holder, kind and limits and its statement with the balance after each line:
    // +5,000.00, -900.00, -850.00 (the two payments of wallet 1 above).
    let large = tbody(&dom, "large")?;
    ensure!(
        large.contains("data-find=\"1\">consumer wallet 1 · Bank A</a>"),
        "no link from the large transaction to its account:\n{large}"
    );
    let dom = dump_dom(
        chromium,
        &pin,
        &format!(
            "https://{addr}/regulator/?account=1{}",
            regulator_credential()
        ),
    )
    .await?;
    let account = &dom[dom
        .find("id=\"account-result\"")
        .with_context(|| format!("no account shown:\n{dom}"))?..];
    ensure!(
        account.contains("consumer wallet 1")
            && account.contains("<dd>Bank A</dd>")
            && account.contains("<dd>¥3,250.00</dd>")
            && account.contains("Tier limits"),
        "the account's holder, kind, balance or limits are missing:\n{account}"
    );
    let statement = tbody(&dom, "statement")?;
    let balances: Vec<&str> = statement
        .split("data-balance-after=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    ensure!(
        balances == ["500000", "410000", "325000"],
        "running balances {balances:?}:\n{statement}"
    );
    ensure!(
        statement.contains(">¥3,250.00<") && statement.contains(">¥900.00<"),
        "{statement}"
    );

    // An institution by name: its open obligations and net positions.
    let dom = dump_dom(
        chromium,
        &pin,
        &format!(
            "https://{addr}/regulator/?institution=Bank%20A{}",
            regulator_credential()
        ),
    )
    .await?;
    ensure!(
        dom.contains("id=\"institution-result\"") && dom.contains("<dd>Bank A (1)</dd>"),
        "no institution shown:\n{dom}"
    );
    server.stop().await?;
    cluster.shutdown().await
}

/// The value of `attribute` on the element with `id` in `dom`.
fn attribute<'a>(dom: &'a str, id: &str, attribute: &str) -> Option<&'a str> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let tag = &dom[dom[..start].rfind('<')?..];
    let tag = &tag[..tag.find('>')?];
    let value = &tag[tag.find(&format!("{attribute}=\""))? + attribute.len() + 2..];
    value.split('"').next()
}

/// Acting from the page: a freeze built and signed in the browser (WebCrypto, the key never
/// sent) is committed and refuses the account's next payment. Attacker: a competing bank
/// signed in to the same page tries the same freeze first; every validator refuses it
/// (`ROLE_REQUIRED`) and the account goes on paying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_signed_in_the_page_refuses_the_accounts_next_payment() -> Result<()> {
    use tally_contracts::*;
    use tally_crypto::Hash;
    let Some(chromium) = chromium()? else {
        return Ok(());
    };
    let mut cluster = Cluster::new(genesis(1))?;
    // Validator 0 and an audit node (index 1) beside it: triage is kept by audit nodes.
    let observers = std::collections::BTreeSet::from([validator_key(1).public_key()]);
    cluster
        .start_with(0, tally_node::config::Mode::Validator, observers)
        .await?;
    cluster
        .start_with(1, tally_node::config::Mode::Audit, Default::default())
        .await?;
    let mut opening = open_wallet(1, 5_000);
    opening.extend(open_wallet(2, 5_000));
    let hashes = cluster.submit_all(&opening, |_| 0).await?;
    cluster.wait_committed_ok(0, &hashes).await?;
    let server = http::serve(cluster.node(0)?).await?;
    let audit = http::serve(cluster.node(1)?).await?;
    let case = "case 2026-117";
    let action = |addr: std::net::SocketAddr| {
        format!(
            "https://{addr}/regulator/?act=freeze&target=1&reason={}",
            case.replace(' ', "%20")
        )
    };
    let validator_pin = chromium::pin_flag(&server.key_pem)?;
    let pin = chromium::pin_flag(&audit.key_pem)?;
    let addr = audit.addr;

    // Bank A, signed in with its own key, is refused by the ledger on a validator's page
    // (only the regulator freezes), and by the audit node's page, which relays a
    // regulator's transactions alone.
    let as_bank = chromium::credential_fragment(BANK_A.0, &institution_key(BANK_A).seed());
    let dom = dump_dom(
        chromium,
        &validator_pin,
        &format!("{}{as_bank}", action(server.addr)),
    )
    .await?;
    ensure!(
        attribute(&dom, "act-status", "data-code") == Some("ROLE_REQUIRED"),
        "the bank's freeze was not refused ROLE_REQUIRED:\n{dom}"
    );
    let dom = dump_dom(chromium, &pin, &format!("{}{as_bank}", action(addr))).await?;
    ensure!(
        attribute(&dom, "act-status", "data-code") == Some("READ_ONLY"),
        "the audit node relayed the bank's freeze:\n{dom}"
    );
    let paid = cluster.submit_all(&[transfer(1, 2, 3, 100)], |_| 0).await?;
    cluster.wait_committed_ok(0, &paid).await?;

    // The regulator's freeze from the audit node's page: relayed to the validator,
    // committed, and exactly the transaction the `tally` command would have built (the same
    // bytes give the same id; the reason is the case's digest).
    let dom = dump_dom(
        chromium,
        &pin,
        &format!("{}{}", action(addr), regulator_credential()),
    )
    .await?;
    ensure!(
        attribute(&dom, "act-status", "data-code") == Some("OK"),
        "the regulator's freeze was not committed:\n{dom}"
    );
    ensure!(
        text_of(&dom, "act-status").is_some_and(|t| t.contains("frozen: committed at height")),
        "{dom}"
    );
    let expected = signed(
        Party::Institution(REGULATOR),
        0,
        &[&institution_key(REGULATOR)],
        TxKind::Freeze {
            account: AccountId(1),
            reason: Hash::digest("tally-case-reference", case.as_bytes()),
        },
    );
    ensure!(
        attribute(&dom, "act-status", "data-hash") == Some(expected.hash().to_hex().as_str()),
        "the page's transaction differs from the command line's:\n{dom}"
    );
    let frozen = tbody(&dom, "frozen")?;
    ensure!(
        frozen.contains(">consumer wallet 1<"),
        "the frozen account is not listed:\n{frozen}"
    );

    // The account's next payment is refused by the ledger.
    let refused = transfer(1, 2, 4, 100);
    cluster
        .submit_all(std::slice::from_ref(&refused), |_| 0)
        .await?;
    let receipt = cluster.wait_committed(0, &refused.hash()).await?;
    ensure!(
        receipt.result == Err(Rejection::AccountFrozen),
        "a frozen account paid: {receipt:?}"
    );

    // The refused payment is an alert to triage on the audit node; the regulator
    // acknowledges it from the page the audit node serves (a signed POST whose body digest
    // the signature covers), and the node keeps it.
    cluster.wait_committed(1, &refused.hash()).await?;
    let alerts = http::get_json(addr, "/v1/audit/alerts?from=1").await?;
    let key = alerts["alerts"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|a| a["kind"] == "stopped" && a["tx"] == refused.hash().to_hex())
        })
        .and_then(|a| a["key"].as_str().map(str::to_string))
        .with_context(|| format!("no alert for the refused payment: {alerts}"))?;
    let acknowledge = format!(
        "https://{addr}/regulator/?acknowledge={}&note=case%202026-117%20opened{}",
        key.replace(':', "%3A"),
        regulator_credential()
    );
    let dom = dump_dom(chromium, &pin, &acknowledge).await?;
    ensure!(
        attribute(&dom, "triage-status", "data-code") == Some("OK"),
        "the acknowledgement was not recorded:\n{dom}"
    );
    let triage = tbody(&dom, "triage")?;
    ensure!(
        triage.contains(&format!("data-key=\"{key}\""))
            && triage.contains("data-acknowledged=\"true\"")
            && triage.contains("case 2026-117 opened"),
        "the triage table does not show it acknowledged:\n{triage}"
    );
    let after = http::get_json(addr, "/v1/audit/alerts?from=1").await?;
    let kept = after["alerts"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["key"] == key.as_str()))
        .with_context(|| format!("the alert is gone: {after}"))?;
    ensure!(
        kept["acknowledged"]["by"] == REGULATOR.0
            && kept["acknowledged"]["note"] == "case 2026-117 opened",
        "{kept}"
    );
    audit.stop().await?;
    server.stop().await?;
    cluster.shutdown().await
}
