//! Admission and transaction identity over real `tally` processes: 4 validators and 1 audit
//! node on loopback, each test on its own devnet, everything through the public API.
//!
//! Attackers: anyone who signs `sender = victim, nonce = victim's next` with their own key to
//! hold the victim's nonce slot (before admission checked the sender's key, the victim was
//! refused `409 NONCE_TAKEN` on every validator while the forgeries waited); someone who
//! strips the bank's co-signature from a transaction in flight and sends the stripped copy
//! first to another validator, so it commits with another outcome.
//!
//! One network at a time (a process-wide lock): five node processes fill two cores.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tally_contracts::{AccountId, Party, SignedTransaction, Transaction, TransferId, TxKind};
use tally_crypto::{Hash, SigningKey};
use tally_sdk::{Api, ClientError};
use tally_tests::chain::{self, check_agreement, check_ledger};
use tally_tests::load::{self, Wallet};
use tally_tests::network::TestNet;
use tally_wire::ledger::AccountView;
use tally_wire::transaction::TxView;

/// One devnet at a time.
static ONE_NETWORK: Mutex<()> = Mutex::new(());

/// Bound of every wait here, each for a condition: a transaction commits in well under a
/// second on an idle devnet and in a few seconds with the two cores busy; only a failing
/// test waits this long.
const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
const FORGERIES: usize = 50;
/// The count of transactions a node refused at admission because the sender's key did not
/// sign.
const REFUSED_WRONG_SIGNER: &str = "tally_transactions_refused_total{reason=\"wrong_signer\"}";

/// Runs `body` on a fresh devnet of 4 validators and 1 audit node, torn down after; on a
/// failure the devnet's directory is kept and the nodes' log tails printed.
fn run(name: &str, body: impl AsyncFnOnce(&mut TestNet) -> Result<()>) {
    let _one = ONE_NETWORK.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(async {
        let mut net = TestNet::start(4, 1, "").await?;
        let outcome = body(&mut net).await;
        if outcome.is_err() {
            if let Some(kept) = net.keep_dir() {
                eprintln!("[{name}] failed; the devnet is kept in {}", kept.display());
            }
            for i in 0..net.len() {
                eprintln!("--- {} log tail\n{}", net.name(i), net.log_tail(i));
            }
        }
        net.shutdown().await;
        outcome
    });
    if let Err(e) = result {
        panic!("{name}: {e:#}");
    }
}

/// Two funded wallets (the victim at Bank A, the payee at Bank B), nonces 0..=2 used.
async fn victim_and_payee(net: &mut TestNet, first_id: u128) -> Result<(Wallet, Wallet)> {
    let apis = net.running_validator_apis();
    let mut wallets = load::make_wallets(&net.layout, &apis, first_id, 2).await?;
    let payee = wallets.pop().context("no payee")?;
    let victim = wallets.pop().context("no victim")?;
    // Every node, the audit node too, has their opening before balances are read.
    let top = net.top_height().await;
    net.wait_all(top, Instant::now() + WAIT).await?;
    Ok((victim, payee))
}

fn signed(
    net: &TestNet,
    sender: Party,
    nonce: u64,
    keys: &[&SigningKey],
    kind: TxKind,
) -> SignedTransaction {
    Transaction {
        chain_id: net.layout.manifest.chain_id.clone(),
        sender,
        nonce,
        kind,
    }
    .sign(keys)
}

/// Posts `tx` without waiting for its block: the node's answer (status, and code if any).
async fn post(api: &Api, tx: &SignedTransaction) -> Result<(u16, Option<String>)> {
    let answer = api.post_transaction("/v1/transactions", tx).await?;
    let status = answer.status.as_u16();
    if status == 202 {
        return Ok((status, None));
    }
    match answer.error() {
        ClientError::Api { code, .. } => Ok((status, Some(code))),
        other => bail!("unexpected answer: {other}"),
    }
}

/// `/v1/transactions/{id}` on `api`: its status, or `None` when the node does not know it.
async fn status(api: &Api, id: Hash) -> Result<Option<TxView>> {
    let answer = api.get(&format!("/v1/transactions/{id}")).await?;
    if answer.status.as_u16() == 404 {
        return Ok(None);
    }
    Ok(Some(answer.json()?))
}

/// Waits until `id` is committed on every running node, and answers its code on each.
async fn committed_everywhere(net: &TestNet, id: Hash) -> Result<Vec<String>> {
    let deadline = Instant::now() + WAIT;
    let mut codes = Vec::new();
    for i in net.running() {
        let api = net.api(i)?;
        loop {
            if let Some(TxView::Committed { code, .. }) = status(&api, id).await? {
                codes.push(code.into_owned());
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{id} not committed on {}",
                net.name(i)
            );
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(codes)
}

async fn refused_wrong_signer(net: &TestNet, nodes: &[usize]) -> Result<Vec<u64>> {
    let mut counts = Vec::new();
    for &i in nodes {
        counts.push(net.metrics(i).await?.get(REFUSED_WRONG_SIGNER));
    }
    Ok(counts)
}

async fn balance(api: &Api, account: AccountId) -> Result<i128> {
    let view: AccountView = api.get_json(&format!("/v1/accounts/{}", account.0)).await?;
    Ok(view.balance)
}

/// Every transaction of the audit node's blocks 1..=its head.
async fn all_committed(net: &TestNet) -> Result<Vec<SignedTransaction>> {
    let audit = net.audit()?;
    let head = net.height(audit).await?;
    let blocks = chain::blocks(net.api(audit)?, 1, head).await?;
    Ok(blocks.into_iter().flat_map(|b| b.txs).collect())
}

/// Forgery `n` of the victim's nonce `nonce`: a transfer to `to`, signed by an attacker's
/// key (every fifth also by a bank's real key, which is not the sender's either).
fn forgery(
    net: &TestNet,
    victim: &Wallet,
    to: AccountId,
    n: usize,
    nonce: u64,
    bank: &SigningKey,
) -> SignedTransaction {
    let attacker = load::test_key("tally-trust-attacker", n as u64);
    let keys: Vec<&SigningKey> = if n.is_multiple_of(5) {
        vec![&attacker, bank]
    } else {
        vec![&attacker]
    };
    signed(
        net,
        Party::Account(victim.id),
        nonce,
        &keys,
        TxKind::Transfer {
            id: TransferId(9_000_000 + n as u128),
            to,
            amount: 1 + n as u64,
            memo: tally_contracts::Memo::NONE,
        },
    )
}

/// 50 forgeries of the victim's next nonce, sent to every validator, half before and half
/// while the victim's own transfer is on its way: every forgery refused at the door with
/// 422 WRONG_SIGNER on every validator (and counted there), the victim's transfer commits
/// everywhere with its effect, and no forgery is in any block.
#[test]
fn forged_senders_are_refused_at_the_door_and_the_victims_transaction_commits() {
    run("forged senders", async |net| {
        let (victim, payee) = victim_and_payee(net, 7_100).await?;
        let bank = net.layout.institution_key(tally_devnet::layout::BANK_B)?;
        let validators = net.validators();
        let apis: Vec<Api> = validators
            .iter()
            .map(|&i| net.api(i))
            .collect::<Result<_>>()?;
        let refused_before = refused_wrong_signer(net, &validators).await?;
        let audit_api = net.api(net.audit()?)?;
        let before = (
            balance(&audit_api, victim.id).await?,
            balance(&audit_api, payee.id).await?,
        );
        let forgeries: Vec<SignedTransaction> = (0..FORGERIES)
            .map(|n| forgery(net, &victim, payee.id, n, 3, &bank))
            .collect();
        let real = signed(
            net,
            Party::Account(victim.id),
            3,
            &[&victim.key],
            TxKind::Transfer {
                id: TransferId(8_000_000),
                to: payee.id,
                amount: 777,
                memo: tally_contracts::Memo::NONE,
            },
        );
        let mut answers = Vec::new();
        let (first, second) = forgeries.split_at(FORGERIES / 2);
        for tx in first {
            for api in &apis {
                answers.push(post(api, tx).await?);
            }
        }
        let sender = apis[1].clone();
        let real_to_send = real.clone();
        let victims = tokio::spawn(async move { sender.submit(&real_to_send).await });
        for tx in second {
            for api in &apis {
                answers.push(post(api, tx).await?);
            }
        }
        let receipt = victims.await??;
        ensure!(receipt.is_ok(), "the victim's transfer: {}", receipt.code);
        ensure!(receipt.hash == real.hash());
        let wrong: Vec<_> = answers
            .iter()
            .filter(|a| **a != (422, Some("WRONG_SIGNER".to_string())))
            .collect();
        ensure!(
            wrong.is_empty() && answers.len() == FORGERIES * apis.len(),
            "forgeries not refused at the door: {wrong:?}"
        );
        let codes = committed_everywhere(net, real.hash()).await?;
        ensure!(codes.iter().all(|c| c == "OK"), "{codes:?}");
        ensure!(balance(&audit_api, victim.id).await? == before.0 - 777);
        ensure!(balance(&audit_api, payee.id).await? == before.1 + 777);
        let refused = refused_wrong_signer(net, &validators).await?;
        for ((i, now), then) in validators.iter().zip(&refused).zip(&refused_before) {
            ensure!(
                *now == then + FORGERIES as u64,
                "{} counted {} refusals",
                net.name(*i),
                now - then
            );
        }
        let forged: BTreeSet<Hash> = forgeries.iter().map(SignedTransaction::hash).collect();
        let committed = all_committed(net).await?;
        ensure!(
            committed.iter().all(|tx| !forged.contains(&tx.hash())),
            "a forgery is in a block"
        );
        ensure!(committed.iter().any(|tx| tx.hash() == real.hash()));
        check_agreement(net).await?;
        check_ledger(audit_api).await?;
        Ok(())
    });
}

/// The card's bank co-signs a top-up; the stripped copy (the wallet's signature alone)
/// would commit as `MISSING_CO_SIGNATURE` and use the nonce. Sent first, to another
/// validator than the original, it does not stop the original from committing and topping
/// up. Both wait behind a nonce gap (the wallet's previous transaction goes last), so no
/// block can take either before both have reached every validator.
#[test]
fn a_copy_stripped_of_the_banks_co_signature_does_not_displace_the_original() {
    run("co-signature stripping", async |net| {
        let (wallet, payee) = victim_and_payee(net, 7_200).await?;
        let bank = net.layout.institution_key(wallet.bank)?;
        let validators = net.validators();
        let apis: Vec<Api> = validators
            .iter()
            .map(|&i| net.api(i))
            .collect::<Result<_>>()?;
        let audit_api = net.api(net.audit()?)?;
        let before = balance(&audit_api, wallet.id).await?;
        let top_up = TxKind::TopUp {
            id: TransferId(8_100_000),
            card: wallet.card,
            amount: 5_000,
        };
        let original = signed(
            net,
            Party::Account(wallet.id),
            4,
            &[&wallet.key, &bank],
            top_up,
        );
        let mut stripped = original.clone();
        stripped
            .signatures
            .retain(|s| s.key == wallet.key.public_key());
        ensure!(stripped.signatures.len() == 1 && stripped.hash() != original.hash());

        ensure!(
            post(&apis[1], &stripped).await? == (202, None),
            "the stripped copy was not taken"
        );
        ensure!(
            post(&apis[2], &original).await? == (202, None),
            "the original was not taken"
        );
        // Every validator comes to hold the original and not the stripped copy.
        let deadline = Instant::now() + WAIT;
        for (api, &i) in apis.iter().zip(&validators) {
            loop {
                let held = status(api, original.hash())
                    .await?
                    .is_some_and(|s| matches!(s, TxView::Pending { .. }));
                let stripped_known = status(api, stripped.hash()).await?.is_some();
                if held && !stripped_known {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "{} never held the original alone",
                    net.name(i)
                );
                tokio::time::sleep(POLL).await;
            }
        }
        // Sent again where the original waits, the stripped copy is refused.
        ensure!(
            post(&apis[0], &stripped).await? == (409, Some("FEWER_SIGNATURES".to_string())),
            "the stripped copy was not refused"
        );
        // The gap closes; the original commits, topping up.
        let gap = signed(
            net,
            Party::Account(wallet.id),
            3,
            &[&wallet.key],
            TxKind::Transfer {
                id: TransferId(8_100_001),
                to: payee.id,
                amount: 1,
                memo: tally_contracts::Memo::NONE,
            },
        );
        let receipt = apis[3].submit(&gap).await?;
        ensure!(receipt.is_ok(), "the gap's transfer: {}", receipt.code);
        let codes = committed_everywhere(net, original.hash()).await?;
        ensure!(
            codes.iter().all(|c| c == "OK"),
            "the original committed as {codes:?}"
        );
        for &i in &net.running() {
            ensure!(
                status(&net.api(i)?, stripped.hash()).await?.is_none(),
                "{} knows the stripped copy",
                net.name(i)
            );
        }
        ensure!(balance(&audit_api, wallet.id).await? == before - 1 + 5_000);
        check_agreement(net).await?;
        check_ledger(audit_api).await?;
        Ok(())
    });
}
