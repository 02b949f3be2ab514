//! Every `tally` client command, run as a subprocess against a real network of `tally` node
//! processes (4 validators and an audit node on loopback): each flow of the payment process
//! end to end, checked by what changed (balances, statuses, the receipt's events), and per
//! area a refusal that must exit non-zero with the ledger's code in its message. Bad input
//! (amounts, key files, the API address, the chain id) must fail in words, never panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use tally_devnet::layout::{
    BANK_A, BANK_B, FX_PROVIDER, HK_BANK, INSTITUTIONS, InstitutionSpec, Layout, PLATFORM,
    REGULATOR,
};
use tally_devnet::processes::Network;

/// The SDK README's example, as the README shows it (a unit test of `tally-sdk` holds the
/// two equal).
#[path = "../../sdk/readme_example.rs"]
mod readme_example;

/// Validators of the test network; the audit node follows them.
const VALIDATORS: usize = 4;

const ALICE: u128 = 1_001;
const BOB: u128 = 1_002;
const CHEN: u128 = 1_003;
const TEA_HOUSE: u128 = 2_001;
const CITY_POWER: u128 = 3_001;

/// The network and its directory; stopped and removed on every path out of the test.
struct Devnet {
    runtime: tokio::runtime::Runtime,
    network: Option<Network>,
    layout: Layout,
    tally: PathBuf,
    api: String,
}

impl Drop for Devnet {
    fn drop(&mut self) {
        if let Some(mut network) = self.network.take() {
            self.runtime.block_on(network.stop());
        }
        let _ = std::fs::remove_dir_all(&self.layout.dir);
    }
}

/// What one `tally` command did.
#[derive(Debug)]
struct Run {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Devnet {
    fn start(tally: PathBuf) -> Devnet {
        let dir = std::env::temp_dir().join(format!(
            "tally-client-flows-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let (layout, resumed) =
            Layout::create_or_resume(&dir, VALIDATORS, 1, None, &tally).expect("the devnet layout");
        assert!(!resumed);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let api = format!(
            "https://{}",
            layout.validators().next().unwrap().api_address
        );
        let mut devnet = Devnet {
            runtime,
            network: None,
            layout,
            tally,
            api,
        };
        let network = devnet
            .runtime
            .block_on(Network::start(&devnet.layout, &devnet.tally))
            .expect("starting the nodes");
        devnet.network = Some(network);
        let network = devnet.network.as_mut().unwrap();
        devnet
            .runtime
            .block_on(network.wait_committed())
            .expect("the network commits");
        devnet
    }

    fn institution_key(&self, spec: InstitutionSpec) -> String {
        self.layout
            .dir
            .join("institutions")
            .join(format!("{}.key", spec.name))
            .display()
            .to_string()
    }

    fn path(&self, name: &str) -> String {
        self.layout.dir.join(name).display().to_string()
    }

    /// `tally ARGS --api URL` over TLS (trusting the devnet's CA), reading as the regulator
    /// (who may read everything; transactions are still sent as their senders).
    fn run(&self, args: &[&str]) -> Run {
        let ca = self.layout.ca_cert_path().display().to_string();
        let regulator = self.institution_key(REGULATOR);
        let mut all = args.to_vec();
        all.extend(["--api", &self.api, "--ca-cert", &ca]);
        all.extend(["--as", "institution:5", "--as-key", &regulator]);
        self.run_raw(&all)
    }

    /// `tally ARGS` reading as the institution `spec` instead of the regulator.
    fn run_as(&self, args: &[&str], spec: InstitutionSpec) -> Run {
        let ca = self.layout.ca_cert_path().display().to_string();
        let key = self.institution_key(spec);
        let party = format!("institution:{}", spec.id);
        let mut all = args.to_vec();
        all.extend(["--api", &self.api, "--ca-cert", &ca]);
        all.extend(["--as", &party, "--as-key", &key, "--json"]);
        self.run_raw(&all)
    }

    /// `tally ARGS`.
    fn run_raw(&self, args: &[&str]) -> Run {
        // The test plays every party; the identity secret is the banks' and the
        // regulator's, and only their commands (registrations, sanctions) read it.
        let out = Command::new(&self.tally)
            .args(args)
            .env("RUST_LOG", "warn")
            .env("TALLY_IDENTITY_SECRET", self.layout.identity_secret_path())
            .output()
            .expect("running tally");
        let run = Run {
            success: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        // A panic exits with 101; every failure must be an error in words with exit 1.
        assert_ne!(
            run.code,
            Some(101),
            "tally {args:?} panicked: {}",
            run.stderr
        );
        run
    }

    /// Runs a command with `--json`, requires success, and answers its JSON.
    fn ok(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let run = self.run(&all);
        assert!(
            run.success,
            "tally {args:?} failed: {}{}",
            run.stdout, run.stderr
        );
        let value: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("tally {args:?}: not JSON ({e}): {}", run.stdout));
        if let Some(code) = value.get("code") {
            assert_eq!(code, "OK", "tally {args:?}: {value}");
        }
        value
    }

    /// Runs a command that the ledger must refuse with `code`: exit 1, the code in words on
    /// stderr, and the receipt as JSON with the same code.
    fn refused(&self, args: &[&str], code: &str) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let run = self.run(&all);
        assert!(!run.success, "tally {args:?} succeeded: {}", run.stdout);
        assert_eq!(run.code, Some(1), "tally {args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("refused: {code} (")),
            "tally {args:?}: expected {code}, stderr: {}",
            run.stderr
        );
        let value: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(value["code"], code);
        assert_eq!(value["outcome"], "refused");
        assert!(value["height"].as_u64().is_some(), "no height: {value}");
        value
    }

    /// Runs a command that must fail before anything is submitted: exit 1, `words` in the
    /// message.
    fn bad_input(&self, args: &[&str], words: &str) {
        let run = self.run(args);
        assert!(!run.success, "tally {args:?} succeeded: {}", run.stdout);
        assert_eq!(run.code, Some(1), "tally {args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(words),
            "tally {args:?}: expected {words:?} in: {}",
            run.stderr
        );
    }

    fn balance(&self, account: u128) -> i64 {
        let view = self.ok(&["wallet", "balance", "--account", &account.to_string()]);
        view["balance"].as_i64().unwrap()
    }

    fn new_key(&self, name: &str) -> String {
        let path = self.path(name);
        let run = self.run_raw(&["keys", "generate", "--out", &path]);
        assert!(run.success, "{}", run.stderr);
        path
    }
}

/// The first event named `name` in a receipt's JSON.
fn event<'a>(receipt: &'a Value, name: &str) -> &'a Value {
    receipt["events"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e.get(name))
        .unwrap_or_else(|| panic!("no {name} event in {receipt}"))
}

/// A currency as the API writes it: its three ASCII bytes.
fn currency_json(code: &str) -> Value {
    Value::from(code.as_bytes().to_vec())
}

fn id(spec: InstitutionSpec) -> String {
    spec.id.to_string()
}

#[test]
fn every_client_command_runs_every_flow_end_to_end() {
    // Built (or found up to date) before the clock starts: the budget is the network's.
    let tally = tally_tests::binaries::tally().expect("the tally binary");
    let started = Instant::now();
    let net = Devnet::start(tally);
    let network_up = started.elapsed();
    let bank_a = net.institution_key(BANK_A);
    let bank_b = net.institution_key(BANK_B);
    let hk_bank = net.institution_key(HK_BANK);
    let regulator = net.institution_key(REGULATOR);
    let fx = net.institution_key(FX_PROVIDER);
    let platform = net.institution_key(PLATFORM);
    let alice = net.new_key("alice.key");
    let bob = net.new_key("bob.key");
    let chen = net.new_key("chen.key");
    let tea = net.new_key("tea.key");
    let power = net.new_key("power.key");
    let (alice_id, bob_id, chen_id) = (ALICE.to_string(), BOB.to_string(), CHEN.to_string());
    let (tea_id, power_id) = (TEA_HOUSE.to_string(), CITY_POWER.to_string());

    // --- Onboarding: a merchant and a biller by their acquirer, three wallets by their banks.
    let r = net.ok(&[
        "merchant",
        "register",
        "--institution",
        &id(BANK_A),
        "--key",
        &bank_a,
        "--cosigner-key",
        &tea,
        "--merchant",
        &tea_id,
        "--currency",
        "CNY",
        "--fee-bps",
        "50",
        "--identity",
        "tea-house",
    ]);
    assert_eq!(event(&r, "MerchantRegistered")["fee_bps"], 50);
    let r = net.ok(&[
        "bill",
        "register-biller",
        "--institution",
        &id(BANK_A),
        "--key",
        &bank_a,
        "--cosigner-key",
        &power,
        "--biller",
        &power_id,
        "--currency",
        "CNY",
        "--identity",
        "city-power",
    ]);
    event(&r, "BillerRegistered");
    for (account, key, bank, bank_key, currency) in [
        (&alice_id, &alice, BANK_A, &bank_a, "CNY"),
        (&bob_id, &bob, BANK_B, &bank_b, "CNY"),
        (&chen_id, &chen, HK_BANK, &hk_bank, "HKD"),
    ] {
        let r = net.ok(&[
            "wallet",
            "register",
            "--account",
            account,
            "--key",
            key,
            "--cosigner-key",
            bank_key,
            "--institution",
            &id(bank),
            "--currency",
            currency,
            "--tier",
            "1",
            "--identity",
            account,
        ]);
        assert_eq!(event(&r, "AccountRegistered")["institution"], bank.id);
    }
    // Registering needs the KYC institution's co-signature: with another key, refused at
    // admission (it never reaches a block).
    let stranger = net.new_key("stranger.key");
    net.bad_input(
        &[
            "wallet",
            "register",
            "--account",
            "1009",
            "--key",
            &stranger,
            "--cosigner-key",
            &bob,
            "--institution",
            &id(BANK_A),
            "--currency",
            "CNY",
            "--identity",
            "x",
        ],
        "MISSING_CO_SIGNATURE",
    );

    // --- Cards, top-up, withdraw.
    for (account, key, bank, bank_key, card) in [
        (&alice_id, &alice, BANK_A, &bank_a, "alice-card"),
        (&bob_id, &bob, BANK_B, &bank_b, "bob-card"),
    ] {
        let r = net.ok(&[
            "wallet",
            "bind-card",
            "--account",
            account,
            "--key",
            key,
            "--cosigner-key",
            bank_key,
            "--bank",
            &id(bank),
            "--card",
            card,
        ]);
        event(&r, "CardBound");
    }
    let r = net.ok(&[
        "wallet",
        "top-up",
        "--account",
        &alice_id,
        "--key",
        &alice,
        "--cosigner-key",
        &bank_a,
        "--card",
        "alice-card",
        "--amount",
        "1000.00 CNY",
    ]);
    assert_eq!(event(&r, "ToppedUp")["amount"], 100_000);
    net.ok(&[
        "wallet",
        "top-up",
        "--account",
        &bob_id,
        "--key",
        &bob,
        "--cosigner-key",
        &bank_b,
        "--card",
        "bob-card",
        "--amount",
        "500",
        "--currency",
        "CNY",
    ]);
    assert_eq!(net.balance(ALICE), 100_000);
    assert_eq!(net.balance(BOB), 50_000);
    let r = net.ok(&[
        "wallet",
        "withdraw",
        "--account",
        &alice_id,
        "--key",
        &alice,
        "--cosigner-key",
        &bank_a,
        "--card",
        "alice-card",
        "--amount",
        "10.00 CNY",
    ]);
    assert_eq!(event(&r, "Withdrawn")["amount"], 1_000);
    // A card that was never bound: refused.
    net.refused(
        &[
            "wallet",
            "top-up",
            "--account",
            &alice_id,
            "--key",
            &alice,
            "--cosigner-key",
            &bank_a,
            "--card",
            "someone-elses-card",
            "--amount",
            "1 CNY",
        ],
        "CARD_NOT_BOUND",
    );

    // --- Balance (in words too) and transfer between banks.
    let words = net.run(&["wallet", "balance", "--account", &alice_id]);
    assert!(
        words.success && words.stdout.contains("balance 990.00 CNY"),
        "{words:?}"
    );
    let transfer = net.run(&[
        "wallet",
        "transfer",
        "--account",
        &alice_id,
        "--key",
        &alice,
        "--to",
        &bob_id,
        "--amount",
        "12.50 CNY",
        "--memo",
        "rent, May",
    ]);
    assert!(transfer.success, "{transfer:?}");
    assert!(
        transfer.stdout.starts_with("transfer ")
            && transfer.stdout.contains("committed at height ")
            && transfer
                .stdout
                .contains("12.50 CNY from account 1001 to account 1002, memo \"rent, May\""),
        "{}",
        transfer.stdout
    );
    assert_eq!(net.balance(ALICE), 97_750);
    assert_eq!(net.balance(BOB), 51_250);
    // The receiver reads the memo with the money: in its history, in words and in JSON.
    let bob_words = net.run(&["wallet", "history", "--account", &bob_id, "--limit", "5"]);
    assert!(
        bob_words.success
            && bob_words
                .stdout
                .contains("12.50 CNY from 1001 to 1002, memo \"rent, May\""),
        "{bob_words:?}"
    );
    let bob_history = net.ok(&["wallet", "history", "--account", &bob_id, "--limit", "5"]);
    let received = bob_history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["events"].as_array().unwrap())
        .find_map(|e| e.get("TransferReceived"))
        .unwrap_or_else(|| panic!("no transfer in Bob's history: {bob_history}"));
    assert_eq!(received["memo"], "rent, May", "{received}");
    assert_eq!(received["amount"], 1_250, "{received}");
    // Over 64 bytes: the client says so and sends nothing.
    net.bad_input(
        &[
            "wallet",
            "transfer",
            "--account",
            &alice_id,
            "--key",
            &alice,
            "--to",
            &bob_id,
            "--amount",
            "1 CNY",
            "--memo",
            &"m".repeat(65),
        ],
        "--memo: at most 64 bytes of UTF-8 and no control characters (65 bytes given)",
    );
    assert_eq!(net.balance(BOB), 51_250);
    net.refused(
        &[
            "wallet",
            "transfer",
            "--account",
            &bob_id,
            "--key",
            &bob,
            "--to",
            &alice_id,
            "--amount",
            "4000.00 CNY",
        ],
        "INSUFFICIENT_FUNDS",
    );
    assert_eq!(net.balance(BOB), 51_250);

    // --- Online shopping: order, escrow, confirm, refund; a cancelled order.
    net.ok(&[
        "merchant",
        "create-order",
        "--account",
        &tea_id,
        "--key",
        &tea,
        "--order",
        "1",
        "--amount",
        "200.00 CNY",
        "--items",
        "two pots of tea",
    ]);
    let r = net.ok(&[
        "wallet",
        "pay-order",
        "--account",
        &alice_id,
        "--key",
        &alice,
        "--order",
        "1",
        "--escrow-minutes",
        "1440",
    ]);
    assert_eq!(event(&r, "PaymentHeld")["amount"], 20_000);
    let order = net.ok(&["merchant", "order", "--order", "1"]);
    assert_eq!(order["record"]["status"], "Held");
    let view = net.ok(&["wallet", "balance", "--account", &alice_id]);
    assert_eq!(view["available"], 77_750);
    let r = net.ok(&[
        "wallet",
        "confirm-receipt",
        "--account",
        &alice_id,
        "--key",
        &alice,
        "--order",
        "1",
    ]);
    assert_eq!(event(&r, "PaymentCompleted")["amount"], 20_000);
    assert_eq!(net.balance(TEA_HOUSE), 20_000);
    let r = net.ok(&[
        "merchant",
        "refund",
        "--account",
        &tea_id,
        "--key",
        &tea,
        "--order",
        "1",
        "--amount",
        "50.00 CNY",
    ]);
    assert_eq!(event(&r, "Refunded")["refunded_total"], 5_000);
    assert_eq!(net.balance(ALICE), 82_750);
    net.refused(
        &[
            "merchant",
            "refund",
            "--account",
            &tea_id,
            "--key",
            &tea,
            "--order",
            "1",
            "--amount",
            "160.00 CNY",
        ],
        "REFUND_EXCEEDS_PAID",
    );
    net.ok(&[
        "merchant",
        "create-order",
        "--account",
        &tea_id,
        "--key",
        &tea,
        "--order",
        "2",
        "--amount",
        "60 CNY",
    ]);
    net.ok(&[
        "wallet",
        "pay-order",
        "--account",
        &alice_id,
        "--key",
        &alice,
        "--order",
        "2",
        "--escrow-minutes",
        "60",
    ]);
    let r = net.ok(&[
        "merchant",
        "cancel",
        "--account",
        &tea_id,
        "--key",
        &tea,
        "--order",
        "2",
    ]);
    assert_eq!(event(&r, "PaymentVoided")["amount"], 6_000);
    let view = net.ok(&["wallet", "balance", "--account", &alice_id]);
    assert_eq!(
        (&view["balance"], &view["available"]),
        (&82_750.into(), &82_750.into())
    );
    // The payer's own cancel of an order that is no longer held: refused.
    net.refused(
        &[
            "wallet",
            "cancel-order",
            "--account",
            &alice_id,
            "--key",
            &alice,
            "--order",
            "2",
        ],
        "ORDER_NOT_CANCELLABLE",
    );
    // Paid by card: the card's bank co-signs and funds it; the wallet is not touched.
    net.ok(&[
        "merchant",
        "create-order",
        "--account",
        &tea_id,
        "--key",
        &tea,
        "--order",
        "3",
        "--amount",
        "20 CNY",
    ]);
    let r = net.ok(&[
        "wallet",
        "pay-order",
        "--account",
        &alice_id,
        "--key",
        &alice,
        "--order",
        "3",
        "--card",
        "alice-card",
        "--cosigner-key",
        &bank_a,
    ]);
    assert_eq!(event(&r, "PaymentCompleted")["amount"], 2_000);
    assert_eq!(net.balance(ALICE), 82_750);
    assert_eq!(net.balance(TEA_HOUSE), 17_000);
    // A card payment without the bank's consent holds the order; a stranger to it cannot
    // cancel it, and the payer's own cancel voids its hold and opens the order again.
    net.ok(&[
        "merchant",
        "create-order",
        "--account",
        &tea_id,
        "--key",
        &tea,
        "--order",
        "5",
        "--amount",
        "15 CNY",
    ]);
    let r = net.ok(&[
        "wallet",
        "pay-order",
        "--account",
        &bob_id,
        "--key",
        &bob,
        "--order",
        "5",
        "--card",
        "bob-card",
    ]);
    event(&r, "PaymentHeld");
    let stranger_cancel = [
        "wallet",
        "cancel-order",
        "--account",
        &alice_id,
        "--key",
        &alice,
        "--order",
        "5",
    ];
    net.refused(&stranger_cancel, "NOT_PERMITTED");
    let r = net.ok(&[
        "wallet",
        "cancel-order",
        "--account",
        &bob_id,
        "--key",
        &bob,
        "--order",
        "5",
    ]);
    assert_eq!(event(&r, "PaymentVoided")["amount"], 1_500);
    let order = net.ok(&["merchant", "order", "--order", "5"]);
    assert_eq!(order["record"]["status"], "Open");
    assert_eq!(order["record"]["payer"], Value::Null);
    // Open again, it is the merchant's alone to cancel.
    net.refused(&stranger_cancel, "NOT_PERMITTED");

    // --- Offline: a payment code, collected once; a merchant's QR.
    let code = net.ok(&[
        "wallet",
        "show-code",
        "--account",
        &alice_id,
        "--key",
        &alice,
        "--max-amount",
        "100.00 CNY",
        "--valid-minutes",
        "5",
    ]);
    let code = code["payment_code"].as_str().unwrap().to_string();
    let r = net.ok(&[
        "merchant",
        "collect",
        "--account",
        &tea_id,
        "--key",
        &tea,
        "--code",
        &code,
        "--amount",
        "30.00 CNY",
    ]);
    assert_eq!(event(&r, "CollectedByCode")["amount"], 3_000);
    assert_eq!(net.balance(ALICE), 79_750);
    net.refused(
        &[
            "merchant",
            "collect",
            "--account",
            &tea_id,
            "--key",
            &tea,
            "--code",
            &code,
            "--amount",
            "30.00 CNY",
        ],
        "PAYMENT_CODE_USED",
    );
    let r = net.ok(&[
        "wallet",
        "pay-merchant",
        "--account",
        &bob_id,
        "--key",
        &bob,
        "--merchant",
        &tea_id,
        "--amount",
        "25 CNY",
        "--reference",
        "till 3",
    ]);
    assert_eq!(event(&r, "MerchantPaid")["amount"], 2_500);
    // The static QR code's reference reaches the merchant with the money.
    assert_eq!(event(&r, "MerchantPaid")["reference"], "till 3");
    assert_eq!(net.balance(BOB), 48_750);

    // --- Bills: issue, a wrong amount refused, the exact amount read from the chain.
    net.ok(&[
        "bill",
        "issue",
        "--account",
        &power_id,
        "--key",
        &power,
        "--bill",
        "1",
        "--customer",
        "alice's meter 17",
        "--amount",
        "88.50 CNY",
    ]);
    net.refused(
        &[
            "bill",
            "pay",
            "--account",
            &alice_id,
            "--key",
            &alice,
            "--bill",
            "1",
            "--amount",
            "80 CNY",
        ],
        "BILL_AMOUNT_MISMATCH",
    );
    let r = net.ok(&[
        "bill",
        "pay",
        "--account",
        &alice_id,
        "--key",
        &alice,
        "--bill",
        "1",
    ]);
    assert_eq!(event(&r, "BillPaid")["amount"], 8_850);
    let bill = net.ok(&["bill", "show", "--bill", "1"]);
    assert_eq!(bill["record"]["paid_by"], ALICE as u64);
    assert_eq!(net.balance(ALICE), 70_900);

    // --- Cross-border: a rate, a remittance at it, and one asking more than the rate gives.
    let r = net.ok(&[
        "fx",
        "publish-rate",
        "--institution",
        &id(FX_PROVIDER),
        "--key",
        &fx,
        "--base",
        "CNY",
        "--quote",
        "HKD",
        "--rate",
        "1.0850",
    ]);
    assert_eq!(event(&r, "FxRatePublished")["rate"], 1_085_000_000u64);
    let rates = net.ok(&["fx", "rates", "--base", "CNY", "--quote", "HKD"]);
    assert_eq!(rates["record"]["rates"][0]["rate"], 1_085_000_000u64);
    let r = net.ok(&[
        "remit",
        "--account",
        &alice_id,
        "--key",
        &alice,
        "--provider",
        &id(FX_PROVIDER),
        "--to",
        &chen_id,
        "--send",
        "100.00 CNY",
    ]);
    let credited = event(&r, "RemittanceCredited");
    assert_eq!(
        (&credited["debited"], &credited["credited"]),
        (&10_000.into(), &10_850.into())
    );
    assert_eq!(net.balance(CHEN), 10_850);
    assert_eq!(net.balance(ALICE), 60_900);
    // (the FX_SLIPPAGE refusal and a --receive remittance follow)
    net.refused(
        &[
            "remit",
            "--account",
            &alice_id,
            "--key",
            &alice,
            "--provider",
            &id(FX_PROVIDER),
            "--to",
            &chen_id,
            "--send",
            "10.00 CNY",
            "--min-receive",
            "11.00 HKD",
        ],
        "FX_SLIPPAGE",
    );
    // Receiving an exact amount: the most to debit is the rate's, rounded up.
    let r = net.ok(&[
        "remit",
        "--account",
        &alice_id,
        "--key",
        &alice,
        "--provider",
        &id(FX_PROVIDER),
        "--to",
        &chen_id,
        "--receive",
        "10.85 HKD",
    ]);
    let credited = event(&r, "RemittanceCredited");
    assert_eq!(
        (&credited["debited"], &credited["credited"]),
        (&1_000.into(), &1_085.into())
    );
    assert_eq!(net.balance(CHEN), 11_935);
    assert_eq!(net.balance(ALICE), 59_900);

    // --- Regulation: freeze stops payments, unfreeze restores them; only a regulator may.
    let r = net.ok(&[
        "regulator",
        "freeze",
        "--institution",
        &id(REGULATOR),
        "--key",
        &regulator,
        "--target",
        &bob_id,
        "--reason",
        "case 2026-117",
    ]);
    event(&r, "AccountFrozen");
    assert_eq!(
        net.ok(&["wallet", "balance", "--account", &bob_id])["account"]["frozen"],
        true
    );
    net.refused(
        &[
            "wallet",
            "pay-merchant",
            "--account",
            &bob_id,
            "--key",
            &bob,
            "--merchant",
            &tea_id,
            "--amount",
            "1 CNY",
        ],
        "ACCOUNT_FROZEN",
    );
    // By card, even with the bank's co-signature: the same outflow checks, refused.
    net.ok(&[
        "merchant",
        "create-order",
        "--account",
        &tea_id,
        "--key",
        &tea,
        "--order",
        "4",
        "--amount",
        "10 CNY",
    ]);
    for with_bank in [true, false] {
        let mut pay = vec![
            "wallet",
            "pay-order",
            "--account",
            &bob_id,
            "--key",
            &bob,
            "--order",
            "4",
            "--card",
            "bob-card",
        ];
        if with_bank {
            pay.extend(["--cosigner-key", &bank_b]);
        }
        net.refused(&pay, "ACCOUNT_FROZEN");
    }
    assert_eq!(
        net.ok(&["merchant", "order", "--order", "4"])["record"]["status"],
        "Open"
    );
    net.refused(
        &[
            "regulator",
            "unfreeze",
            "--institution",
            &id(BANK_A),
            "--key",
            &bank_a,
            "--target",
            &bob_id,
        ],
        "ROLE_REQUIRED",
    );
    let r = net.ok(&[
        "regulator",
        "unfreeze",
        "--institution",
        &id(REGULATOR),
        "--key",
        &regulator,
        "--target",
        &bob_id,
    ]);
    event(&r, "AccountUnfrozen");
    // A sanctioned identity cannot open a wallet until it is taken off the list.
    let sanctioned = [
        "wallet",
        "register",
        "--account",
        "1010",
        "--key",
        &stranger,
        "--cosigner-key",
        &bank_a,
        "--institution",
        "1",
        "--currency",
        "CNY",
        "--identity",
        "mallory",
    ];
    let r = net.ok(&[
        "regulator",
        "sanction",
        "--institution",
        &id(REGULATOR),
        "--key",
        &regulator,
        "--identity",
        "mallory",
    ]);
    event(&r, "SanctionAdded");
    net.refused(&sanctioned, "SANCTIONED");
    let r = net.ok(&[
        "regulator",
        "unsanction",
        "--institution",
        &id(REGULATOR),
        "--key",
        &regulator,
        "--identity",
        "mallory",
    ]);
    event(&r, "SanctionRemoved");
    // Bob registered long ago; listed now, his transfer and his remittance are refused.
    let sanction = |add: bool| {
        let r = net.ok(&[
            "regulator",
            if add { "sanction" } else { "unsanction" },
            "--institution",
            &id(REGULATOR),
            "--key",
            &regulator,
            "--identity",
            &bob_id,
        ]);
        event(
            &r,
            if add {
                "SanctionAdded"
            } else {
                "SanctionRemoved"
            },
        );
    };
    sanction(true);
    let bob_before = net.balance(BOB);
    let bob_transfer = [
        "wallet",
        "transfer",
        "--account",
        &bob_id,
        "--key",
        &bob,
        "--to",
        &alice_id,
        "--amount",
        "1 CNY",
    ];
    net.refused(&bob_transfer, "SANCTIONED");
    net.refused(
        &[
            "remit",
            "--account",
            &bob_id,
            "--key",
            &bob,
            "--provider",
            &id(FX_PROVIDER),
            "--to",
            &chen_id,
            "--send",
            "10.00 CNY",
        ],
        "SANCTIONED",
    );
    // Nor can he be paid.
    net.refused(
        &[
            "wallet",
            "transfer",
            "--account",
            &alice_id,
            "--key",
            &alice,
            "--to",
            &bob_id,
            "--amount",
            "1 CNY",
        ],
        "SANCTIONED",
    );
    assert_eq!(net.balance(BOB), bob_before);
    // Off the list, the listing no longer stops him (a transfer beyond his balance is
    // refused for the money, not the list).
    sanction(false);
    let mut too_much = bob_transfer;
    too_much[9] = "4000 CNY";
    net.refused(&too_much, "INSUFFICIENT_FUNDS");
    // Another account id: the refused registration's body (and so its hash) is on chain.
    let mut cleared = sanctioned;
    cleared[3] = "1011";
    net.ok(&cleared);
    // Tier limits are a governance change: three governance keys co-sign; one is too few.
    let r = net.ok(&[
        "regulator",
        "set-limits",
        "--institution",
        &id(REGULATOR),
        "--key",
        &regulator,
        "--cosigner-key",
        &bank_a,
        "--cosigner-key",
        &bank_b,
        "--cosigner-key",
        &platform,
        "--tier",
        "1",
        "--single-max",
        "300.00 CNY",
        "--daily-max",
        "2000 CNY",
        "--yearly-max",
        "200000 CNY",
        "--cross-border-yearly-max",
        "none",
    ]);
    event(&r, "GovernanceApplied");
    net.refused(
        &[
            "regulator",
            "set-limits",
            "--institution",
            &id(REGULATOR),
            "--key",
            &regulator,
            "--cosigner-key",
            &bank_a,
            "--tier",
            "1",
            "--single-max",
            "1 CNY",
            "--daily-max",
            "1 CNY",
            "--yearly-max",
            "1 CNY",
            "--cross-border-yearly-max",
            "1 CNY",
        ],
        "GOVERNANCE_QUORUM",
    );
    net.refused(
        &[
            "wallet",
            "transfer",
            "--account",
            &bob_id,
            "--key",
            &bob,
            "--to",
            &alice_id,
            "--amount",
            "300.01 CNY",
        ],
        "OVER_TIER_SINGLE_LIMIT",
    );

    // --- Account recovery: governance sets the delay; bank B announces a new key for Bob,
    // which is refused until due; Bob's own key cancels it.
    let r = net.ok(&[
        "governance",
        "set-recovery-delay",
        "--institution",
        &id(PLATFORM),
        "--key",
        &platform,
        "--cosigner-key",
        &bank_a,
        "--cosigner-key",
        &bank_b,
        "--hours",
        "48",
    ]);
    event(&r, "GovernanceApplied");
    let bob_phone = net.new_key("bob-phone.key");
    let r = net.ok(&[
        "institution",
        "recover-account",
        "--institution",
        &id(BANK_B),
        "--key",
        &bank_b,
        "--target",
        &bob_id,
        "--new-key",
        &bob_phone,
    ]);
    let announced = &event(&r, "RecoveryAnnounced")["account"];
    assert!(
        *announced == BOB as u64 || *announced == BOB.to_string(),
        "{announced}"
    );
    net.bad_input(
        &[
            "wallet",
            "transfer",
            "--account",
            &bob_id,
            "--key",
            &bob_phone,
            "--to",
            &alice_id,
            "--amount",
            "1 CNY",
        ],
        // Not Bob's key yet: the API refuses it as his credential before anything is sent.
        "BAD_CREDENTIALS",
    );
    let r = net.ok(&[
        "wallet",
        "cancel-recovery",
        "--account",
        &bob_id,
        "--key",
        &bob,
    ]);
    assert_eq!(event(&r, "RecoveryCancelled")["by_account"], true);
    net.refused(
        &[
            "wallet",
            "cancel-recovery",
            "--account",
            &bob_id,
            "--key",
            &bob,
        ],
        "RECOVERY_NOT_FOUND",
    );

    // --- Interbank settlement: net, every receiver confirms, the cycle closes.
    let before = net.ok(&["institution", "show", "--institution", &id(BANK_A)]);
    assert!(
        !before["record"]["open_obligations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = net.ok(&[
        "institution",
        "settle-cycle",
        "--institution",
        &id(BANK_A),
        "--key",
        &bank_a,
    ]);
    let opened = event(&r, "SettlementCycleOpened");
    let cycle = opened["cycle"].as_u64().unwrap().to_string();
    let positions = opened["positions"].as_array().unwrap();
    // Bank A's customers paid Bank B ¥12.50 and the FX provider ¥110.00, received ¥25.00.
    let net_of = |who: InstitutionSpec, currency: &str| {
        positions
            .iter()
            .find(|p| p["institution"] == who.id && p["currency"] == currency_json(currency))
            .map_or(0, |p| p["net"].as_i64().unwrap())
    };
    assert_eq!(net_of(BANK_A, "CNY"), -9_750);
    assert_eq!(net_of(FX_PROVIDER, "CNY"), 11_000);
    assert_eq!(net_of(HK_BANK, "HKD"), 11_935);
    let state = net.ok(&["institution", "cycle", "--cycle", &cycle]);
    let awaiting: Vec<u64> = state["record"]["awaiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap())
        .collect();
    assert!(!awaiting.is_empty());
    for receiver in &awaiting {
        let spec = INSTITUTIONS
            .iter()
            .find(|i| u64::from(i.id) == *receiver)
            .unwrap();
        let r = net.ok(&[
            "institution",
            "confirm",
            "--institution",
            &receiver.to_string(),
            "--key",
            &net.institution_key(*spec),
            "--cycle",
            &cycle,
        ]);
        event(&r, "SettlementConfirmed");
    }
    let state = net.ok(&["institution", "cycle", "--cycle", &cycle]);
    assert_eq!(state["record"]["awaiting"], Value::Array(Vec::new()));
    net.refused(
        &[
            "institution",
            "settle-cycle",
            "--institution",
            &id(BANK_A),
            "--key",
            &bank_a,
        ],
        "NOTHING_TO_SETTLE",
    );

    // --- The merchant settles all its takings, less the platform's 0.5 %.
    let takings = net.balance(TEA_HOUSE);
    assert_eq!(takings, 20_000 - 5_000 + 2_000 + 3_000 + 2_500);
    let r = net.ok(&["merchant", "settle", "--account", &tea_id, "--key", &tea]);
    let settled = event(&r, "MerchantSettled");
    assert_eq!(settled["fee"], 112);
    assert_eq!(settled["net"], 22_500 - 112);
    assert_eq!(net.balance(TEA_HOUSE), 0);
    net.refused(
        &[
            "merchant",
            "settle",
            "--account",
            &tea_id,
            "--key",
            &tea,
            "--amount",
            "1 CNY",
        ],
        "INSUFFICIENT_FUNDS",
    );

    // --- History, newest first, with every kind Alice sent.
    let history = net.ok(&[
        "wallet",
        "history",
        "--account",
        &alice_id,
        "--limit",
        "100",
    ]);
    let entries = history["entries"].as_array().unwrap();
    assert!(entries.len() >= 12, "{} entries", entries.len());
    let heights: Vec<u64> = entries
        .iter()
        .map(|e| e["height"].as_u64().unwrap())
        .collect();
    assert!(heights.windows(2).all(|w| w[0] >= w[1]), "{heights:?}");

    // --- Bad input fails in words before anything is sent.
    let transfer = |amount: &str, key: &str| {
        vec![
            "wallet".to_string(),
            "transfer".into(),
            "--account".into(),
            alice_id.clone(),
            "--key".into(),
            key.to_string(),
            "--to".into(),
            bob_id.clone(),
            "--amount".into(),
            amount.to_string(),
        ]
    };
    let args = |v: &[String]| v.iter().map(String::clone).collect::<Vec<_>>();
    let run_bad = |v: Vec<String>, words: &str| {
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        net.bad_input(&refs, words);
    };
    run_bad(
        args(&transfer("1.234 CNY", &alice)),
        "more decimals than CNY has (2)",
    );
    run_bad(
        args(&transfer("12.50 HKD", &alice)),
        "is in HKD, not in CNY",
    );
    run_bad(args(&transfer("-5 CNY", &alice)), "is not an amount");
    run_bad(args(&transfer("1e3", &alice)), "is not an amount");
    let missing = net.path("no-such.key");
    run_bad(args(&transfer("1 CNY", &missing)), "key file");
    let garbage = net.path("garbage.key");
    std::fs::write(&garbage, "not a key").unwrap();
    run_bad(args(&transfer("1 CNY", &garbage)), "key file");
    run_bad(
        vec![
            "wallet".into(),
            "balance".into(),
            "--account".into(),
            "424242".into(),
        ],
        "account 424242 does not exist",
    );
    run_bad(
        vec![
            "merchant".into(),
            "collect".into(),
            "--account".into(),
            tea_id.clone(),
            "--key".into(),
            tea.clone(),
            "--code".into(),
            "tallycode:zz".into(),
            "--amount".into(),
            "1 CNY".into(),
        ],
        "not a payment code",
    );
    let mut wrong_chain = args(&transfer("1 CNY", &alice));
    wrong_chain.extend(["--chain-id".to_string(), "another-chain".to_string()]);
    run_bad(wrong_chain, "WRONG_CHAIN");
    let unreachable = net.run_raw(&[
        "wallet",
        "balance",
        "--account",
        "1",
        "--api",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(unreachable.code, Some(1));
    assert!(
        unreachable.stderr.contains("127.0.0.1:1"),
        "{unreachable:?}"
    );
    let https = net.run_raw(&[
        "wallet",
        "balance",
        "--account",
        "1",
        "--api",
        "https://x:1",
    ]);
    assert!(https.stderr.contains("--ca-cert"), "{https:?}");
    // Nothing moved through all of that.
    assert_eq!(net.balance(ALICE), 59_900);

    disputes_and_refund_requests(&net, &alice, &tea, &bank_a, &bank_b);
    travel_rule_remittance(
        &net, &alice, &bank_a, &bank_b, &hk_bank, &platform, &regulator,
    );

    // --- Institution keys: governance replaces the FX provider's key (the old one is
    // refused at the door, the new one signs), then revokes it.
    let fx_new = net.new_key("fx-new.key");
    let governance = |command: &'static str| {
        vec![
            "governance",
            command,
            "--institution",
            "3",
            "--key",
            platform.as_str(),
            "--cosigner-key",
            bank_a.as_str(),
            "--cosigner-key",
            bank_b.as_str(),
            "--target",
            "6",
        ]
    };
    let mut replace = governance("replace-institution-key");
    replace.extend(["--new-key", fx_new.as_str()]);
    event(&net.ok(&replace), "GovernanceApplied");
    let fx_id = id(FX_PROVIDER);
    let settle_as = |key: &str| {
        net.run(&[
            "institution",
            "settle-cycle",
            "--institution",
            &fx_id,
            "--key",
            key,
        ])
    };
    let old_key = settle_as(&fx);
    // The old key is no credential any more: the API refuses it before anything is sent.
    assert!(
        !old_key.success && old_key.stderr.contains("BAD_CREDENTIALS"),
        "{old_key:?}"
    );
    // The new key passes the key check; an FX provider may not settle.
    net.refused(
        &[
            "institution",
            "settle-cycle",
            "--institution",
            &fx_id,
            "--key",
            &fx_new,
        ],
        "ROLE_REQUIRED",
    );
    event(
        &net.ok(&governance("revoke-institution-key")),
        "GovernanceApplied",
    );
    let revoked = settle_as(&fx_new);
    assert!(
        !revoked.success && revoked.stderr.contains("KEY_REVOKED"),
        "{revoked:?}"
    );

    webhooks(&net);
    sdk_readme_example(&net, &alice);

    let elapsed = started.elapsed();
    eprintln!(
        "client flows: network up in {:.1} s, all commands in {:.1} s",
        network_up.as_secs_f64(),
        (elapsed - network_up).as_secs_f64()
    );
}

/// The SDK README's example against this network: Bank A opens a wallet for a new
/// customer, Alice pays it 25.00 CNY, and the new wallet reads its balance.
fn sdk_readme_example(net: &Devnet, alice_key: &str) {
    const CUSTOMER: u128 = 1_777;
    let key = |path: &str| tally_crypto::KeyFile::read(std::path::Path::new(path)).unwrap();
    let (bank_key, alice) = (key(&net.institution_key(BANK_A)), key(alice_key));
    let kyc = tally_node::client::flows::identity_digest(
        &net.layout.identity_secret().unwrap(),
        "sdk-readme-customer",
    );
    let alice_before = net.balance(ALICE);
    let balance = net
        .runtime
        .block_on(readme_example::open_wallet_and_pay(
            (
                &net.api,
                &net.layout.ca_cert_path(),
                tally_devnet::layout::CHAIN_ID,
            ),
            (tally_contracts::InstitutionId(BANK_A.id), &bank_key),
            (tally_contracts::AccountId(ALICE), &alice),
            (tally_contracts::AccountId(CUSTOMER), kyc),
        ))
        .unwrap_or_else(|e| panic!("the SDK README's example: {e}"));
    assert_eq!(balance, 2_500);
    assert_eq!(net.balance(CUSTOMER), 2_500);
    assert_eq!(net.balance(ALICE), alice_before - 2_500);
}

/// `tally webhook`, as Bank A: subscribe at the devnet's sink, list, show, replay from the
/// first event, remove; Bank B cannot read Bank A's; an origin the operator did not allow
/// is refused.
fn webhooks(net: &Devnet) {
    let json = |run: &Run| -> Value {
        assert!(run.success, "{}{}", run.stdout, run.stderr);
        serde_json::from_str(&run.stdout).unwrap()
    };
    let sink = net
        .layout
        .manifest
        .webhook_sink
        .expect("a devnet has a webhook sink");
    let url = format!("http://{sink}/bank-a");
    let made = json(&net.run_as(
        &[
            "webhook",
            "subscribe",
            "--url",
            &url,
            "--kind",
            "TransferReceived",
        ],
        BANK_A,
    ));
    assert_eq!(made["owner"], "institution:1", "{made}");
    assert_eq!(made["kinds"][0], "TransferReceived", "{made}");
    let hook_id = made["id"].as_u64().unwrap();
    let hook = hook_id.to_string();
    let listed = json(&net.run_as(&["webhook", "list"], BANK_A));
    assert!(
        listed["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"].as_u64() == Some(hook_id)),
        "{listed}"
    );
    assert_eq!(
        json(&net.run_as(&["webhook", "show", &hook], BANK_A))["url"],
        url
    );
    let replayed = json(&net.run_as(&["webhook", "replay", &hook, "--from", "1:0"], BANK_A));
    assert_eq!(replayed["next"], "1:0", "{replayed}");
    assert_eq!(replayed["status"], "active", "{replayed}");
    let other = net.run_as(&["webhook", "show", &hook], BANK_B);
    assert!(
        !other.success && other.stderr.contains("NOT_FOUND"),
        "{other:?}"
    );
    let elsewhere = net.run_as(
        &[
            "webhook",
            "subscribe",
            "--url",
            "http://169.254.169.254/latest",
        ],
        BANK_A,
    );
    assert!(
        !elsewhere.success && elsewhere.stderr.contains("URL_NOT_ALLOWED"),
        "{elsewhere:?}"
    );
    assert!(net.run_as(&["webhook", "remove", &hook], BANK_A).success);
    let gone = net.run_as(&["webhook", "show", &hook], BANK_A);
    assert!(
        !gone.success && gone.stderr.contains("NOT_FOUND"),
        "{gone:?}"
    );
}

/// Owned arguments as the `&str`s the helpers take.
fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Tea House's order `order` for `amount`, paid by Alice from her balance at once.
fn paid_order(net: &Devnet, alice: &str, tea: &str, order: &str, amount: &str) {
    let (alice_id, tea_id) = (ALICE.to_string(), TEA_HOUSE.to_string());
    net.ok(&[
        "merchant",
        "create-order",
        "--account",
        &tea_id,
        "--key",
        tea,
        "--order",
        order,
        "--amount",
        amount,
    ]);
    let r = net.ok(&[
        "wallet",
        "pay-order",
        "--account",
        &alice_id,
        "--key",
        alice,
        "--order",
        order,
    ]);
    event(&r, "PaymentCompleted");
}

/// A payer's dispute decided by her bank (and refused to anyone else), and refund requests
/// the merchant accepts or refuses.
fn disputes_and_refund_requests(net: &Devnet, alice: &str, tea: &str, bank_a: &str, bank_b: &str) {
    let (alice_id, tea_id) = (ALICE.to_string(), TEA_HOUSE.to_string());
    let before = net.balance(ALICE);
    paid_order(net, alice, tea, "50", "30.00 CNY");
    assert_eq!(net.balance(ALICE), before - 3_000);
    let dispute = [
        "wallet",
        "dispute",
        "--account",
        &alice_id,
        "--key",
        alice,
        "--order",
        "50",
        "--reason",
        "not-received",
    ];
    let r = net.ok(&dispute);
    let opened = event(&r, "DisputeOpened");
    assert_eq!(
        (&opened["amount"], &opened["decider"]),
        (&3_000.into(), &BANK_A.id.into())
    );
    net.refused(&dispute, "DISPUTE_EXISTS");
    let decide = |key: &str, institution: InstitutionSpec, outcome: &str| {
        vec![
            "institution".to_string(),
            "decide-dispute".into(),
            "--institution".into(),
            institution.id.to_string(),
            "--key".into(),
            key.to_string(),
            "--order".into(),
            "50".into(),
            "--outcome".into(),
            outcome.into(),
        ]
    };
    // Another bank may not decide Bank A's customer's dispute.
    let not_hers = decide(bank_b, BANK_B, "release");
    net.refused(&as_refs(&not_hers), "NOT_PERMITTED");
    let hers = decide(bank_a, BANK_A, "refund");
    let r = net.ok(&as_refs(&hers));
    assert_eq!(event(&r, "DisputeResolved")["outcome"], "Refund");
    assert_eq!(net.balance(ALICE), before, "the refund is back with Alice");

    // A refund request accepted, then one refused.
    paid_order(net, alice, tea, "51", "20.00 CNY");
    let r = net.ok(&[
        "wallet",
        "request-refund",
        "--account",
        &alice_id,
        "--key",
        alice,
        "--order",
        "51",
        "--amount",
        "5.00 CNY",
    ]);
    assert_eq!(event(&r, "RefundRequested")["amount"], 500);
    let r = net.ok(&[
        "merchant",
        "accept-refund",
        "--account",
        &tea_id,
        "--key",
        tea,
        "--order",
        "51",
    ]);
    assert_eq!(event(&r, "RefundRequestAnswered")["accepted"], true);
    assert_eq!(event(&r, "Refunded")["amount"], 500);
    assert_eq!(net.balance(ALICE), before - 1_500);
    net.ok(&[
        "wallet",
        "request-refund",
        "--account",
        &alice_id,
        "--key",
        alice,
        "--order",
        "51",
        "--amount",
        "15.00 CNY",
    ]);
    let r = net.ok(&[
        "merchant",
        "refuse-refund",
        "--account",
        &tea_id,
        "--key",
        tea,
        "--order",
        "51",
    ]);
    assert_eq!(event(&r, "RefundRequestAnswered")["accepted"], false);
    assert_eq!(net.balance(ALICE), before - 1_500);
}

/// Travel-rule data: keys registered, a threshold set, a remittance above it refused
/// without data and credited with it; the receiving bank and the regulator open it, a third
/// institution cannot.
fn travel_rule_remittance(
    net: &Devnet,
    alice: &str,
    bank_a: &str,
    bank_b: &str,
    hk_bank: &str,
    platform: &str,
    regulator: &str,
) {
    let alice_id = ALICE.to_string();
    let mut secret = std::collections::BTreeMap::new();
    for (spec, key) in [(BANK_B, bank_b), (HK_BANK, hk_bank), (REGULATOR, regulator)] {
        let file = net.path(&format!("{}.x25519", spec.name));
        let r = net.ok(&[
            "institution",
            "set-encryption-key",
            "--institution",
            &id(spec),
            "--key",
            key,
            "--encryption-key",
            &file,
        ]);
        let registered = event(&r, "EncryptionKeySet")["key"].clone();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        // Run again, the file is read, not replaced: the same key.
        let r = net.ok(&[
            "institution",
            "set-encryption-key",
            "--institution",
            &id(spec),
            "--key",
            key,
            "--encryption-key",
            &file,
        ]);
        assert_eq!(event(&r, "EncryptionKeySet")["key"], registered);
        secret.insert(spec.id, file);
    }
    let r = net.ok(&[
        "regulator",
        "set-travel-rule-threshold",
        "--institution",
        &id(BANK_A),
        "--key",
        bank_a,
        "--cosigner-key",
        bank_b,
        "--cosigner-key",
        platform,
        "--threshold",
        "300.00 CNY",
    ]);
    event(&r, "GovernanceApplied");
    let remit = [
        "remit",
        "--account",
        &alice_id,
        "--key",
        alice,
        "--provider",
        &id(FX_PROVIDER),
        "--to",
        &CHEN.to_string(),
        "--send",
        "300.00 CNY",
    ];
    let remit: Vec<String> = remit.iter().map(|s| s.to_string()).collect();
    net.refused(&as_refs(&remit), "TRAVEL_RULE_REQUIRED");
    let (alice_before, chen_before) = (net.balance(ALICE), net.balance(CHEN));
    let mut with_data = remit.clone();
    for (flag, value) in [
        ("--regulator", id(REGULATOR)),
        ("--originator-name", "Alice Wang".to_string()),
        ("--originator-address", "1 Century Avenue, Shanghai".into()),
        ("--beneficiary-name", "Chen Ka-ming".into()),
        (
            "--beneficiary-address",
            "8 Queen's Road Central, Hong Kong".into(),
        ),
    ] {
        with_data.push(flag.to_string());
        with_data.push(value);
    }
    let r = net.ok(&as_refs(&with_data));
    let credited = event(&r, "RemittanceCredited");
    assert_eq!(
        credited["travel_rule_for"],
        serde_json::json!([HK_BANK.id, REGULATOR.id])
    );
    assert_eq!(net.balance(ALICE), alice_before - 30_000);
    assert_eq!(
        net.balance(CHEN),
        chen_before + credited["credited"].as_i64().unwrap()
    );
    let hash = r["hash"].as_str().unwrap().to_string();
    let open = |institution: InstitutionSpec, key_of: InstitutionSpec| {
        vec![
            "travel-rule".to_string(),
            "open".into(),
            "--tx".into(),
            hash.clone(),
            "--institution".into(),
            institution.id.to_string(),
            "--secret-key".into(),
            secret[&key_of.id].clone(),
        ]
    };
    // The receiving bank, reading as itself, opens its copy.
    let run = net.run_as(&as_refs(&open(HK_BANK, HK_BANK)), HK_BANK);
    assert!(run.success, "{run:?}");
    let opened: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(opened["travel_rule"]["originator"]["name"], "Alice Wang");
    assert_eq!(
        opened["travel_rule"]["beneficiary"]["account"],
        CHEN.to_string()
    );
    // The regulator opens its own.
    let opened = net.ok(&as_refs(&open(REGULATOR, REGULATOR)));
    assert_eq!(opened["travel_rule"]["beneficiary"]["name"], "Chen Ka-ming");
    // Bank B is served no copy...
    let run = net.run_as(&as_refs(&open(HK_BANK, BANK_B)), BANK_B);
    assert!(!run.success, "{run:?}");
    assert!(run.stderr.contains("OUT_OF_SCOPE"), "{run:?}");
    // ...and with a copy in hand (as the regulator serves them), its key opens neither.
    for copy_of in [HK_BANK, REGULATOR] {
        net.bad_input(
            &as_refs(&open(copy_of, BANK_B)),
            &format!(
                "does not open the copy sealed to institution {}",
                copy_of.id
            ),
        );
    }
}
