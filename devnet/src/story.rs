//! The payment story, told through the public HTTP API of a running devnet: each step signs
//! transactions as the people and institutions of the story would, submits them, and then
//! checks what changed (balances, statuses, events), not only that the call returned.
//!
//! The story's accounts, orders and bills get ids unique to the run, so it can be told again
//! on the same network.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde::Deserialize;
use tally_contracts::{
    AccountId, AccountKind, Bill, BillId, CardToken, Currency, DisputeOutcome, DisputeReason,
    Disputed, Event, FxAmount, GovernanceAction, InstitutionId, Order, OrderId, OrderStatus, Party,
    PaymentCode, PaymentSource, SealedTravelRule, SettlementCycleRecord, TransferId, TxKind,
};
use tally_crypto::{Hash, IdentitySecret, SigningKey};

use crate::layout::{
    BANK_A, BANK_B, FX_PROVIDER, HK_BANK, InstitutionSpec, Layout, PLATFORM, REGULATOR,
    institution_id,
};
use crate::processes::Health;
use tally_sdk::travel_rule::{self, Binding, PartyDetails, SecretKey, TravelRuleData};
use tally_sdk::{Api, Receipt, Submitter, new_key};

/// What Alice's transfer to Bob is for: the memo he reads with the money.
const TRANSFER_MEMO: &str = "dinner last Friday";

/// How long the audit node may take to reach the validators' height.
const AUDIT_CATCH_UP_MS: u64 = 30_000;
/// Tea House's merchant fee, in basis points.
const TEA_HOUSE_FEE_BPS: u16 = 50;
/// CNY→HKD: 1.0850 HKD cents per fen, at the ledger's rate scale.
const CNY_HKD_RATE: u64 = 1_085_000_000;
/// From ¥500.00 a remittance out of CNY carries travel-rule data.
const TRAVEL_RULE_THRESHOLD_FEN: u64 = 50_000;

/// The one-line result of the story.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub steps_ok: u32,
    pub steps_failed: u32,
    pub height: u64,
    pub audit_verified_height: Option<u64>,
}

/// A customer, merchant or biller: an account id and the device key that signs for it.
#[derive(Debug)]
struct Holder {
    id: AccountId,
    key: SigningKey,
}

impl Holder {
    fn new(id: u128) -> Result<Holder> {
        Ok(Holder {
            id: AccountId(id),
            key: new_key()?,
        })
    }

    fn party(&self) -> Party {
        Party::Account(self.id)
    }
}

/// Everyone in the story.
#[derive(Debug)]
struct Cast {
    /// The banks' and the regulator's identity secret.
    identity_secret: IdentitySecret,
    bank_a: SigningKey,
    bank_b: SigningKey,
    hk_bank: SigningKey,
    platform: SigningKey,
    regulator: SigningKey,
    fx: SigningKey,
    /// A consumer at Bank A, paying in CNY.
    alice: Holder,
    /// A consumer at Bank B, paying in CNY.
    bob: Holder,
    /// Alice's relative in Hong Kong, with an HKD wallet at the HK bank.
    chen: Holder,
    tea_house: Holder,
    book_store: Holder,
    city_power: Holder,
    alice_card: CardToken,
    bob_card: CardToken,
    /// The X25519 keys travel-rule data is sealed to: the receiving bank's and the
    /// regulator's; Bank B's, which must open nothing of a remittance to Hong Kong.
    hk_bank_x25519: SecretKey,
    regulator_x25519: SecretKey,
    bank_b_x25519: SecretKey,
}

struct Story {
    cast: Cast,
    sub: Submitter,
    chain_id: String,
    /// The submitting node's API, signed as the HK bank, Bank B and the regulator.
    as_hk_bank: Api,
    as_regulator: Api,
    as_bank_b: Api,
    validators: Vec<Api>,
    auditors: Vec<Api>,
    /// Ids of this run: orders, bills, transfers, payment codes.
    next_id: u128,
    step: u32,
    ok: u32,
    failed: u32,
    audit_verified_height: Option<u64>,
    /// The genesis every node started from: the validators a proof must lead to.
    genesis: tally_node::genesis::GenesisFile,
    /// The remittance with travel-rule data: its transaction and transfer id.
    travel_rule_tx: Option<(Hash, TransferId)>,
    /// The last validator's name and data directory (backed up while it runs), and where its
    /// backup is restored to be checked.
    backed_up: Option<(String, PathBuf, PathBuf)>,
    /// The devnet's webhook sink and the submitting node's key (what deliveries are signed
    /// with); `None` for a devnet made before webhooks.
    webhook_sink: Option<(SocketAddr, tally_crypto::PublicKey)>,
    /// The submitting node's API, signed as Tea House.
    as_tea_house: Api,
    /// Tea House's shop endpoint and its subscription, once it subscribed.
    shop: Option<(crate::shop::Shop, u64)>,
}

/// How long a proof may lag behind a read of the head: the genesis heartbeat (3 s) commits an
/// idle chain's next block, which certifies the state before it.
const PROOF_WAIT_MS: u64 = 10_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn yuan(fen: i128) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    format!("{sign}{}.{:02}", fen / 100, fen % 100)
}

fn card(seed: &[u8]) -> CardToken {
    CardToken(Hash::digest("tally-devnet-card", seed).0)
}

/// A person's identity digest as the banks' clients make it: keyed with the network's
/// identity secret (`tally wallet register --identity-secret`), so the same person gets
/// the same digest at every bank and no one without the secret can reverse it.
fn identity(secret: &IdentitySecret, name: &str, run: u128) -> Hash {
    tally_node::client::flows::identity_digest(secret, &format!("{name}/{run}"))
}

/// Tells the story on the devnet of `layout`, submitting to `submit_to`; prints one line per
/// step and the JSON summary last.
pub async fn tell(layout: &Layout, submit_to: SocketAddr) -> Summary {
    let mut story = match Story::new(layout, submit_to) {
        Ok(s) => s,
        Err(e) => {
            println!("✗ the story cannot start: {e:#}");
            let summary = Summary {
                steps_ok: 0,
                steps_failed: 1,
                height: 0,
                audit_verified_height: None,
            };
            print_summary(&summary);
            return summary;
        }
    };
    println!(
        "The payment story on chain {:?}: {} validators, {} audit node(s).",
        layout.manifest.chain_id,
        story.validators.len(),
        story.auditors.len()
    );
    let r = story.onboard_merchants().await;
    story.record(
        "Bank A and Bank B register two merchants and a utility biller",
        r,
    );
    let r = story.register_consumers().await;
    story.record(
        "Alice registers at Bank A, Bob at Bank B, Chen at the HK bank; Alice and Bob bind cards",
        r,
    );
    let r = story.top_up().await;
    story.record(
        "Alice tops up ¥1000.00 from her Bank A card, Bob ¥500.00 from his Bank B card",
        r,
    );
    let r = story.balance_query().await;
    story.record("Alice checks her balance and history", r);
    let r = story.online_shopping().await;
    story.record(
        "Online shopping: Alice pays Tea House ¥200.00 into escrow, confirms receipt, gets ¥50.00 refunded",
        r,
    );
    let r = story.cancelled_order().await;
    story.record(
        "Alice pays Book Store into escrow, then cancels her payment: the hold is voided and the order open again; Book Store cancels it",
        r,
    );
    let r = story.shop_subscribes().await;
    story.record(
        "Tea House's shop registers a webhook for its collections",
        r,
    );
    let r = story.payment_code().await;
    story.record(
        "Offline: Tea House collects ¥30.00 with Alice's payment code",
        r,
    );
    let r = story.shop_notified().await;
    story.record(
        "Tea House's shop is notified of the ¥30.00 by webhook, signed by the node",
        r,
    );
    let r = story.merchant_qr().await;
    story.record("Offline: Bob scans Book Store's QR and pays ¥25.00", r);
    let r = story.utility_bill().await;
    story.record(
        "City Power issues Alice a bill of ¥88.50; she pays exactly that",
        r,
    );
    let r = story.interbank_transfer().await;
    story.record(
        "Alice (Bank A) transfers ¥120.00 to Bob (Bank B): an interbank obligation",
        r,
    );
    let r = story.remittance().await;
    story.record(
        "Cross-border: CNY→HKD published at 1.0850; Alice remits ¥100.00 to Chen in Hong Kong",
        r,
    );
    let r = story.reused_code().await;
    story.record("Alice's payment code, used a second time, is refused", r);
    let r = story.overdraft().await;
    story.record(
        "Bob tries to send ¥1000.00 with less in his wallet: refused",
        r,
    );
    let r = story.freeze().await;
    story.record(
        "The regulator freezes Bob's wallet; his next payment is refused",
        r,
    );
    let r = story.settlement_cycle().await;
    story.record(
        "A settlement cycle nets the banks' obligations; the receivers confirm",
        r,
    );
    let r = story.merchant_settlement().await;
    story.record(
        "Tea House settles its takings to Bank A, less the platform's fee",
        r,
    );
    let r = story.dispute().await;
    story.record(
        "Alice pays Tea House ¥40.00 for an order that never comes and disputes it; Bank A decides: refunded",
        r,
    );
    let r = story.travel_rule_setup().await;
    story.record(
        "Banks and the regulator register their X25519 travel-rule keys; governance sets travel-rule data from ¥500.00 on CNY remittances",
        r,
    );
    let r = story.travel_rule_remittance().await;
    story.record(
        "Alice remits ¥500.00 to Chen: refused without travel-rule data, credited with it sealed to the HK bank and the regulator",
        r,
    );
    let r = story.travel_rule_reading().await;
    story.record(
        "The HK bank and the regulator open the travel-rule data; Bank B can neither read the copies nor open one with its key",
        r,
    );
    let r = story.audit().await;
    story.record(
        "The audit node verified every block; its state root equals the validators'",
        r,
    );
    let r = story.proven_balance().await;
    story.record(
        "Alice checks her balance with its Merkle proof from every node, against the genesis validators alone",
        r,
    );
    let r = story.backup_and_restore().await;
    story.record(
        "A validator is backed up while the network runs, and the backup restored into a scratch directory: digest, chain and ledger root check",
        r,
    );
    let height = story.height().await.unwrap_or(0);
    let summary = Summary {
        steps_ok: story.ok,
        steps_failed: story.failed,
        height,
        audit_verified_height: story.audit_verified_height,
    };
    print_summary(&summary);
    summary
}

fn print_summary(summary: &Summary) {
    match serde_json::to_string(summary) {
        Ok(line) => println!("{line}"),
        Err(e) => println!("{{\"error\":\"{e}\"}}"),
    }
}

impl Story {
    fn new(layout: &Layout, submit_to: SocketAddr) -> Result<Story> {
        let key = |spec: InstitutionSpec| {
            layout
                .institution_key(spec)
                .with_context(|| format!("the key of {}", spec.name))
        };
        // Ids unique to this run: milliseconds since the epoch, shifted clear of the counter.
        let run = u128::from(now_ms()) << 20;
        let cast = Cast {
            identity_secret: layout.identity_secret()?,
            bank_a: key(BANK_A)?,
            bank_b: key(BANK_B)?,
            hk_bank: key(HK_BANK)?,
            platform: key(PLATFORM)?,
            regulator: key(REGULATOR)?,
            fx: key(FX_PROVIDER)?,
            alice: Holder::new(run + 1)?,
            bob: Holder::new(run + 2)?,
            chen: Holder::new(run + 3)?,
            tea_house: Holder::new(run + 4)?,
            book_store: Holder::new(run + 5)?,
            city_power: Holder::new(run + 6)?,
            alice_card: card(format!("alice/{run}").as_bytes()),
            bob_card: card(format!("bob/{run}").as_bytes()),
            hk_bank_x25519: layout.encryption_key(HK_BANK)?,
            regulator_x25519: layout.encryption_key(REGULATOR)?,
            bank_b_x25519: layout.encryption_key(BANK_B)?,
        };
        let as_tea_house = layout
            .api_at(submit_to)?
            .signed_as(tally_sdk::Credential::of_party(
                cast.tea_house.party(),
                cast.tea_house.key.clone(),
            ));
        Ok(Story {
            cast,
            chain_id: layout.manifest.chain_id.clone(),
            as_hk_bank: layout.api_as(submit_to, HK_BANK)?,
            as_regulator: layout.regulator_api_at(submit_to)?,
            as_bank_b: layout.api_as(submit_to, BANK_B)?,
            // Transactions go as their senders; the story's own checks read as the regulator.
            sub: Submitter::new(
                layout.regulator_api_at(submit_to)?,
                layout.manifest.chain_id.clone(),
            ),
            validators: layout
                .validators()
                .map(|n| layout.regulator_api(n))
                .collect::<anyhow::Result<_>>()?,
            auditors: layout
                .auditors()
                .map(|n| layout.regulator_api(n))
                .collect::<anyhow::Result<_>>()?,
            next_id: run + 100,
            step: 0,
            ok: 0,
            failed: 0,
            audit_verified_height: None,
            genesis: tally_node::genesis::GenesisFile::load(&layout.dir.join("genesis.json"))?,
            travel_rule_tx: None,
            webhook_sink: layout.manifest.webhook_sink.and_then(|sink| {
                layout
                    .manifest
                    .nodes
                    .iter()
                    .find(|n| n.api_address == submit_to)
                    .map(|n| (sink, n.public_key))
            }),
            as_tea_house,
            shop: None,
            backed_up: layout.validators().last().map(|n| {
                (
                    n.name.clone(),
                    layout.data_dir(n),
                    layout.dir.join("restore-check"),
                )
            }),
        })
    }

    fn record(&mut self, what: &str, result: Result<String>) {
        self.step += 1;
        match result {
            Ok(outcome) => {
                self.ok += 1;
                println!("{:>2}. {what}\n    ✓ {outcome}", self.step);
            }
            Err(e) => {
                self.failed += 1;
                println!("{:>2}. {what}\n    ✗ {e:#}", self.step);
            }
        }
    }

    fn id(&mut self) -> u128 {
        self.next_id += 1;
        self.next_id
    }

    async fn balance(&self, account: AccountId) -> Result<i128> {
        Ok(self.sub.account(account).await?.balance)
    }

    async fn height(&self) -> Result<u64> {
        let api = self
            .validators
            .first()
            .ok_or_else(|| anyhow!("no validator"))?;
        let health: Health = api.get_json("/health").await?;
        health.height.ok_or_else(|| anyhow!("nothing committed"))
    }

    async fn order(&self, order: OrderId) -> Result<Order> {
        Ok(self.sub.record(&format!("/v1/orders/{}", order.0)).await?)
    }

    /// Sends and requires `OK`.
    async fn ok(&mut self, sender: Party, keys: &[&SigningKey], kind: TxKind) -> Result<Receipt> {
        let name = kind.name();
        let receipt = self.sub.send(sender, keys, kind).await?;
        ensure!(
            receipt.is_ok(),
            "{name} was refused: {} (tx {})",
            receipt.code,
            receipt.hash
        );
        Ok(receipt)
    }

    /// Sends and requires the rejection `code`.
    async fn refused(
        &mut self,
        sender: Party,
        keys: &[&SigningKey],
        kind: TxKind,
        code: &str,
    ) -> Result<Receipt> {
        let name = kind.name();
        let receipt = self.sub.send(sender, keys, kind).await?;
        ensure!(
            receipt.code == code,
            "{name}: expected {code}, the ledger answered {}",
            receipt.code
        );
        Ok(receipt)
    }

    async fn onboard_merchants(&mut self) -> Result<String> {
        let c = &self.cast;
        let run = c.alice.id.0;
        let merchants = [
            (
                &c.tea_house,
                BANK_A,
                &c.bank_a,
                TEA_HOUSE_FEE_BPS,
                "tea-house",
            ),
            (&c.book_store, BANK_B, &c.bank_b, 30, "book-store"),
        ];
        let mut plans = Vec::new();
        for (merchant, acquirer, acquirer_key, fee_bps, name) in merchants {
            plans.push((
                Party::Institution(institution_id(acquirer)),
                [acquirer_key.clone(), merchant.key.clone()],
                TxKind::RegisterMerchant {
                    account: merchant.id,
                    key: merchant.key.public_key(),
                    currency: Currency::CNY,
                    fee_bps,
                    identity: identity(&c.identity_secret, name, run),
                },
            ));
        }
        plans.push((
            Party::Institution(institution_id(BANK_A)),
            [c.bank_a.clone(), c.city_power.key.clone()],
            TxKind::RegisterBiller {
                account: c.city_power.id,
                key: c.city_power.key.public_key(),
                currency: Currency::CNY,
                identity: identity(&c.identity_secret, "city-power", run),
            },
        ));
        for (sender, [a, b], kind) in plans {
            self.ok(sender, &[&a, &b], kind).await?;
        }
        let c = &self.cast;
        for (id, kind) in [
            (c.tea_house.id, AccountKind::Merchant),
            (c.book_store.id, AccountKind::Merchant),
            (c.city_power.id, AccountKind::Biller),
        ] {
            let view = self.sub.account(id).await?;
            ensure!(
                view.account.kind == kind,
                "account {} is {:?}, not {kind:?}",
                id.0,
                view.account.kind
            );
        }
        Ok("OK: MerchantRegistered ×2, BillerRegistered".to_string())
    }

    async fn register_consumers(&mut self) -> Result<String> {
        let run = self.cast.alice.id.0;
        let people = [
            (
                &self.cast.alice,
                BANK_A,
                &self.cast.bank_a,
                Currency::CNY,
                "alice",
            ),
            (
                &self.cast.bob,
                BANK_B,
                &self.cast.bank_b,
                Currency::CNY,
                "bob",
            ),
            (
                &self.cast.chen,
                HK_BANK,
                &self.cast.hk_bank,
                Currency::HKD,
                "chen",
            ),
        ];
        let mut plans = Vec::new();
        for (who, bank, bank_key, currency, name) in people {
            plans.push((
                who.party(),
                [who.key.clone(), bank_key.clone()],
                TxKind::RegisterAccount {
                    account: who.id,
                    key: who.key.public_key(),
                    currency,
                    institution: institution_id(bank),
                    tier: 1,
                    identity: identity(&self.cast.identity_secret, name, run),
                },
                bank,
            ));
        }
        for (party, [a, b], kind, bank) in plans {
            let receipt = self.ok(party, &[&a, &b], kind).await?;
            let registered = receipt.event("AccountRegistered", |e| match e {
                Event::AccountRegistered { institution, .. } => Some(*institution),
                _ => None,
            })?;
            ensure!(
                registered == institution_id(bank),
                "registered at the wrong bank"
            );
        }
        let c = &self.cast;
        let bindings = [
            (
                c.alice.party(),
                [c.alice.key.clone(), c.bank_a.clone()],
                c.alice_card,
                BANK_A,
            ),
            (
                c.bob.party(),
                [c.bob.key.clone(), c.bank_b.clone()],
                c.bob_card,
                BANK_B,
            ),
        ];
        for (party, [a, b], card, bank) in bindings {
            let receipt = self
                .ok(
                    party,
                    &[&a, &b],
                    TxKind::BindCard {
                        card,
                        bank: institution_id(bank),
                    },
                )
                .await?;
            receipt.event("CardBound", |e| {
                matches!(e, Event::CardBound { .. }).then_some(())
            })?;
        }
        let chen = self.sub.account(self.cast.chen.id).await?;
        ensure!(
            chen.account.currency == Currency::HKD,
            "Chen's wallet is not in HKD"
        );
        Ok("OK: AccountRegistered ×3, CardBound ×2".to_string())
    }

    async fn top_up(&mut self) -> Result<String> {
        let c = &self.cast;
        let plans = [
            (
                c.alice.party(),
                c.alice.id,
                [c.alice.key.clone(), c.bank_a.clone()],
                c.alice_card,
                100_000u64,
            ),
            (
                c.bob.party(),
                c.bob.id,
                [c.bob.key.clone(), c.bank_b.clone()],
                c.bob_card,
                50_000,
            ),
        ];
        for (party, account, [a, b], card, amount) in plans {
            let id = TransferId(self.id());
            let receipt = self
                .ok(party, &[&a, &b], TxKind::TopUp { id, card, amount })
                .await?;
            let topped = receipt.event("ToppedUp", |e| match e {
                Event::ToppedUp { amount, .. } => Some(*amount),
                _ => None,
            })?;
            ensure!(topped == amount, "topped up {topped}, asked {amount}");
            let balance = self.balance(account).await?;
            ensure!(
                balance == i128::from(amount),
                "balance {balance} after topping up {amount}"
            );
        }
        Ok("OK: Alice ¥1000.00, Bob ¥500.00".to_string())
    }

    async fn balance_query(&mut self) -> Result<String> {
        let view = self.sub.account(self.cast.alice.id).await?;
        ensure!(view.balance == 100_000, "balance is {}", yuan(view.balance));
        ensure!(
            view.available == 100_000,
            "available is {}",
            yuan(view.available)
        );
        #[derive(Deserialize)]
        struct History {
            entries: Vec<serde_json::Value>,
        }
        let history: History = self
            .sub
            .api
            .get_json(&format!("/v1/accounts/{}/history", self.cast.alice.id.0))
            .await?;
        // Registration, card binding and top-up.
        ensure!(
            history.entries.len() >= 3,
            "history has {} entries, expected 3",
            history.entries.len()
        );
        Ok(format!(
            "OK: ¥{} available at height {}, {} history entries",
            yuan(view.available),
            view.height,
            history.entries.len()
        ))
    }

    async fn create_order(&mut self, merchant_is_tea_house: bool, amount: u64) -> Result<OrderId> {
        let order = OrderId(self.id());
        let merchant = if merchant_is_tea_house {
            &self.cast.tea_house
        } else {
            &self.cast.book_store
        };
        let (party, key) = (merchant.party(), merchant.key.clone());
        let receipt = self
            .ok(
                party,
                &[&key],
                TxKind::CreateOrder {
                    order,
                    amount,
                    currency: Currency::CNY,
                    expires_at_ms: now_ms() + 3_600_000,
                    items: Hash::digest("tally-devnet-items", &order.0.to_be_bytes()),
                },
            )
            .await?;
        receipt.event("OrderCreated", |e| {
            matches!(e, Event::OrderCreated { .. }).then_some(())
        })?;
        Ok(order)
    }

    async fn pay_into_escrow(&mut self, order: OrderId) -> Result<()> {
        let (party, key) = (self.cast.alice.party(), self.cast.alice.key.clone());
        let id = TransferId(self.id());
        let receipt = self
            .ok(
                party,
                &[&key],
                TxKind::PayOrder {
                    id,
                    order,
                    source: PaymentSource::Balance,
                    escrow_ms: Some(86_400_000),
                },
            )
            .await?;
        receipt.event("PaymentHeld", |e| {
            matches!(e, Event::PaymentHeld { .. }).then_some(())
        })?;
        let status = self.order(order).await?.status;
        ensure!(status == OrderStatus::Held, "order is {status:?}, not held");
        Ok(())
    }

    async fn online_shopping(&mut self) -> Result<String> {
        let merchant_before = self.balance(self.cast.tea_house.id).await?;
        let order = self.create_order(true, 20_000).await?;
        self.pay_into_escrow(order).await?;
        let alice = self.sub.account(self.cast.alice.id).await?;
        ensure!(
            alice.available == 80_000,
            "Alice's available is {} during escrow",
            yuan(alice.available)
        );
        ensure!(
            self.balance(self.cast.tea_house.id).await? == merchant_before,
            "the merchant was paid before delivery"
        );
        let (party, key) = (self.cast.alice.party(), self.cast.alice.key.clone());
        let receipt = self
            .ok(party, &[&key], TxKind::ConfirmReceipt { order })
            .await?;
        receipt.event("PaymentCompleted", |e| {
            matches!(e, Event::PaymentCompleted { .. }).then_some(())
        })?;
        ensure!(
            self.balance(self.cast.tea_house.id).await? == merchant_before + 20_000,
            "the merchant did not receive ¥200.00 on confirmation"
        );
        let (party, key) = (self.cast.tea_house.party(), self.cast.tea_house.key.clone());
        let id = TransferId(self.id());
        let receipt = self
            .ok(
                party,
                &[&key],
                TxKind::Refund {
                    id,
                    order,
                    amount: 5_000,
                },
            )
            .await?;
        let total = receipt.event("Refunded", |e| match e {
            Event::Refunded { refunded_total, .. } => Some(*refunded_total),
            _ => None,
        })?;
        let record = self.order(order).await?;
        ensure!(
            record.status == OrderStatus::Paid && record.refunded == 5_000 && total == 5_000,
            "order is {:?} with {} refunded",
            record.status,
            record.refunded
        );
        let alice = self.balance(self.cast.alice.id).await?;
        ensure!(
            alice == 85_000,
            "Alice has ¥{}, expected ¥850.00",
            yuan(alice)
        );
        Ok(format!(
            "OK: PaymentHeld → PaymentCompleted → Refunded ¥50.00; Alice has ¥{}",
            yuan(alice)
        ))
    }

    async fn cancelled_order(&mut self) -> Result<String> {
        let order = self.create_order(false, 6_000).await?;
        self.pay_into_escrow(order).await?;
        let (party, key) = (self.cast.alice.party(), self.cast.alice.key.clone());
        let receipt = self
            .ok(party, &[&key], TxKind::CancelOrder { order })
            .await?;
        receipt.event("PaymentVoided", |e| {
            matches!(e, Event::PaymentVoided { .. }).then_some(())
        })?;
        // The payer voids her own payment; the order is the merchant's, open again.
        let record = self.order(order).await?;
        ensure!(
            record.status == OrderStatus::Open && record.payer.is_none(),
            "after Alice's cancel the order is {:?}, payer {:?}",
            record.status,
            record.payer
        );
        let (party, key) = (
            self.cast.book_store.party(),
            self.cast.book_store.key.clone(),
        );
        let receipt = self
            .ok(party, &[&key], TxKind::CancelOrder { order })
            .await?;
        receipt.event("OrderCancelled", |e| {
            matches!(e, Event::OrderCancelled { .. }).then_some(())
        })?;
        let status = self.order(order).await?.status;
        ensure!(status == OrderStatus::Cancelled, "order is {status:?}");
        let alice = self.sub.account(self.cast.alice.id).await?;
        ensure!(
            alice.balance == 85_000 && alice.available == 85_000,
            "Alice has ¥{} (¥{} available) after the cancellation",
            yuan(alice.balance),
            yuan(alice.available)
        );
        Ok("OK: PaymentVoided (order open again), then OrderCancelled by Book Store; Alice keeps ¥850.00".to_string())
    }

    fn alice_code(&mut self) -> (PaymentCode, tally_crypto::Signature) {
        // Good from a minute ago (the chain's clock may be a little behind this one) for
        // six minutes in all, and only for the tea house.
        let issued_at_ms = now_ms() - 60_000;
        let code = PaymentCode {
            payer: self.cast.alice.id,
            payer_key: self.cast.alice.key.public_key(),
            max_amount: 10_000,
            issued_at_ms,
            expires_at_ms: issued_at_ms + 6 * 60_000,
            // One code for the story: its nonce is fixed so the reuse step shows it again.
            code_nonce: 1,
            merchant: Some(self.cast.tea_house.id),
        };
        let signature = code.sign(&self.cast.alice.key, &self.sub.chain_id);
        (code, signature)
    }

    async fn payment_code(&mut self) -> Result<String> {
        let before = self.balance(self.cast.tea_house.id).await?;
        let (code, code_signature) = self.alice_code();
        let (party, key) = (self.cast.tea_house.party(), self.cast.tea_house.key.clone());
        let id = TransferId(self.id());
        let receipt = self
            .ok(
                party,
                &[&key],
                TxKind::CollectByCode {
                    id,
                    code,
                    code_signature,
                    amount: 3_000,
                },
            )
            .await?;
        receipt.event("CollectedByCode", |e| {
            matches!(e, Event::CollectedByCode { .. }).then_some(())
        })?;
        ensure!(
            self.balance(self.cast.alice.id).await? == 82_000,
            "Alice was not debited ¥30.00"
        );
        ensure!(
            self.balance(self.cast.tea_house.id).await? == before + 3_000,
            "Tea House was not credited ¥30.00"
        );
        #[derive(Deserialize)]
        struct CodeView {
            used: bool,
        }
        let view: CodeView = self
            .sub
            .record(&format!(
                "/v1/payment-codes/{}/{}",
                code.payer_key, code.code_nonce
            ))
            .await?;
        ensure!(view.used, "the API does not show the code as used");
        Ok("OK: CollectedByCode ¥30.00; the code is now marked used".to_string())
    }

    /// Tea House's shop listens on the devnet's webhook sink and subscribes to its
    /// collections on the submitting node.
    async fn shop_subscribes(&mut self) -> Result<String> {
        let Some((sink, node)) = self.webhook_sink else {
            return Ok(
                "SKIPPED: this devnet was made before webhooks (devnet.json names no webhook sink)"
                    .to_string(),
            );
        };
        let view = self
            .as_tea_house
            .subscribe_webhook(&tally_sdk::webhook::NewSubscription {
                url: format!("http://{sink}/tea-house/tally"),
                kinds: vec!["CollectedByCode".to_string()],
                ..Default::default()
            })
            .await?;
        ensure!(
            view.signed_by == tally_wire::webhook::node_keyid(&node),
            "deliveries are signed by {}, not by the node's key",
            view.signed_by
        );
        let shop = crate::shop::Shop::open(sink, node, view.id).await?;
        let told = format!(
            "OK: webhook {} to {} for CollectedByCode from event {}",
            view.id, view.url, view.next
        );
        self.shop = Some((shop, view.id));
        Ok(told)
    }

    /// The shop's delivery of the collection, checked against the node's key.
    async fn shop_notified(&mut self) -> Result<String> {
        if self.webhook_sink.is_none() {
            return Ok("SKIPPED: no webhook sink on this devnet".to_string());
        }
        let (shop, id) = self
            .shop
            .as_mut()
            .context("the shop never subscribed (the step before failed)")?;
        let id = *id;
        let delivery = shop.next(Duration::from_secs(15)).await?;
        let event = delivery.events.first().context("an empty delivery")?;
        let Event::CollectedByCode {
            merchant, amount, ..
        } = &event.event
        else {
            bail!(
                "the shop was sent {} instead of CollectedByCode",
                event.kind
            );
        };
        ensure!(
            *merchant == self.cast.tea_house.id && *amount == 3_000,
            "the shop was told of ¥{} to account {}",
            yuan(i128::from(*amount)),
            merchant.0
        );
        let told = format!(
            "OK: event {} (CollectedByCode ¥30.00) delivered to webhook {id}, its signature checked against the node's key; the shop unsubscribes",
            event.id
        );
        self.as_tea_house.remove_webhook(id).await?;
        self.shop = None;
        Ok(told)
    }

    async fn merchant_qr(&mut self) -> Result<String> {
        let before = self.balance(self.cast.book_store.id).await?;
        let (party, key) = (self.cast.bob.party(), self.cast.bob.key.clone());
        let merchant = self.cast.book_store.id;
        let id = TransferId(self.id());
        let receipt = self
            .ok(
                party,
                &[&key],
                TxKind::PayMerchant {
                    id,
                    merchant,
                    amount: 2_500,
                    reference: tally_contracts::Memo::NONE,
                },
            )
            .await?;
        receipt.event("MerchantPaid", |e| {
            matches!(e, Event::MerchantPaid { .. }).then_some(())
        })?;
        ensure!(
            self.balance(self.cast.bob.id).await? == 47_500,
            "Bob was not debited ¥25.00"
        );
        ensure!(
            self.balance(merchant).await? == before + 2_500,
            "Book Store was not credited"
        );
        Ok("OK: MerchantPaid; Bob has ¥475.00".to_string())
    }

    async fn utility_bill(&mut self) -> Result<String> {
        let bill = BillId(self.id());
        let (party, key) = (
            self.cast.city_power.party(),
            self.cast.city_power.key.clone(),
        );
        self.ok(
            party,
            &[&key],
            TxKind::IssueBill {
                bill,
                customer: Hash::digest(
                    "tally-devnet-customer",
                    &self.cast.alice.id.0.to_be_bytes(),
                ),
                amount: 8_850,
                due_ms: now_ms() + 14 * 86_400_000,
            },
        )
        .await?;
        let (party, key) = (self.cast.alice.party(), self.cast.alice.key.clone());
        // Paying a different amount is refused before the exact one is accepted.
        let id = TransferId(self.id());
        self.refused(
            party,
            &[&key],
            TxKind::PayBill {
                id,
                bill,
                amount: 8_000,
            },
            "BILL_AMOUNT_MISMATCH",
        )
        .await?;
        let id = TransferId(self.id());
        let receipt = self
            .ok(
                party,
                &[&key],
                TxKind::PayBill {
                    id,
                    bill,
                    amount: 8_850,
                },
            )
            .await?;
        receipt.event("BillPaid", |e| {
            matches!(e, Event::BillPaid { .. }).then_some(())
        })?;
        let record: Bill = self.sub.record(&format!("/v1/bills/{}", bill.0)).await?;
        ensure!(
            record.paid_by == Some(self.cast.alice.id),
            "the bill is not marked paid by Alice"
        );
        let alice = self.balance(self.cast.alice.id).await?;
        ensure!(
            alice == 73_150,
            "Alice has ¥{}, expected ¥731.50",
            yuan(alice)
        );
        Ok("OK: BillPaid (a wrong amount first: BILL_AMOUNT_MISMATCH)".to_string())
    }

    /// The open obligation Bank A → Bank B in CNY, as the API reports it.
    async fn obligation_a_to_b(&self) -> Result<u128> {
        #[derive(Deserialize)]
        struct Obligation {
            currency: Currency,
            from: InstitutionId,
            to: InstitutionId,
            amount: u128,
        }
        #[derive(Deserialize)]
        struct InstitutionView {
            open_obligations: Vec<Obligation>,
        }
        let view: InstitutionView = self
            .sub
            .record(&format!("/v1/institutions/{}", BANK_A.id))
            .await?;
        Ok(view
            .open_obligations
            .iter()
            .filter(|o| {
                o.currency == Currency::CNY
                    && o.from == institution_id(BANK_A)
                    && o.to == institution_id(BANK_B)
            })
            .map(|o| o.amount)
            .sum())
    }

    async fn interbank_transfer(&mut self) -> Result<String> {
        let owed_before = self.obligation_a_to_b().await?;
        let (party, key) = (self.cast.alice.party(), self.cast.alice.key.clone());
        let to = self.cast.bob.id;
        let id = TransferId(self.id());
        let receipt = self
            .ok(
                party,
                &[&key],
                TxKind::Transfer {
                    id,
                    to,
                    amount: 12_000,
                    memo: tally_contracts::Memo::new(TRANSFER_MEMO).unwrap_or_default(),
                },
            )
            .await?;
        // Bob reads what it is for in the event he is notified from.
        let memo = receipt.event("TransferReceived", |e| match e {
            Event::TransferReceived { memo, .. } => Some(memo.clone()),
            _ => None,
        })?;
        ensure!(
            memo.as_str() == TRANSFER_MEMO,
            "the transfer reached Bob with the memo {memo:?}"
        );
        ensure!(
            self.balance(self.cast.alice.id).await? == 61_150,
            "Alice was not debited"
        );
        ensure!(self.balance(to).await? == 59_500, "Bob was not credited");
        // The transfer crossed banks: the receipt tells Bank A's back office what it now
        // owes, and the institution's open obligations agree.
        let recorded = receipt.event("ObligationRecorded", |e| match e {
            Event::ObligationRecorded { amount, .. } => Some(*amount),
            _ => None,
        })?;
        ensure!(
            recorded == 12_000,
            "the receipt records an obligation of {recorded}"
        );
        let owed = self.obligation_a_to_b().await?;
        ensure!(
            owed == owed_before + 12_000,
            "Bank A owes Bank B {owed}, {owed_before} before the transfer"
        );
        Ok(format!(
            "OK: TransferReceived (memo {TRANSFER_MEMO:?}), ObligationRecorded; Bank A now owes Bank B ¥{}",
            yuan(i128::try_from(owed).unwrap_or(i128::MAX))
        ))
    }

    async fn remittance(&mut self) -> Result<String> {
        let fx = institution_id(FX_PROVIDER);
        let block_time = self.latest_block_time().await?;
        let fx_key = self.cast.fx.clone();
        self.ok(
            Party::Institution(fx),
            &[&fx_key],
            TxKind::PublishFxRate {
                base: Currency::CNY,
                quote: Currency::HKD,
                rate: CNY_HKD_RATE,
                valid_from_ms: block_time,
                valid_until_ms: block_time + 3_600_000,
            },
        )
        .await?;
        let (party, key) = (self.cast.alice.party(), self.cast.alice.key.clone());
        let beneficiary = self.cast.chen.id;
        let id = TransferId(self.id());
        let receipt = self
            .ok(
                party,
                &[&key],
                TxKind::CrossBorderTransfer {
                    id,
                    provider: fx,
                    beneficiary,
                    amount: FxAmount::Send {
                        debit: 10_000,
                        min_credit: 10_800,
                    },
                    travel_rule: Vec::new(),
                },
            )
            .await?;
        let (debited, credited) = receipt.event("RemittanceCredited", |e| match e {
            Event::RemittanceCredited {
                debited, credited, ..
            } => Some((*debited, *credited)),
            _ => None,
        })?;
        // floor(10000 × 1.085) = 10850 HK cents.
        ensure!(
            debited == 10_000 && credited == 10_850,
            "debited {debited}, credited {credited}"
        );
        ensure!(
            self.balance(self.cast.alice.id).await? == 51_150,
            "Alice was not debited ¥100.00"
        );
        let chen = self.balance(beneficiary).await?;
        ensure!(chen == 10_850, "Chen has HK${}", yuan(chen));
        Ok("OK: RemittanceCredited ¥100.00 → HK$108.50 to Chen".to_string())
    }

    async fn dispute(&mut self) -> Result<String> {
        let order = self.create_order(true, 4_000).await?;
        let (party, key) = (self.cast.alice.party(), self.cast.alice.key.clone());
        let id = TransferId(self.id());
        self.ok(
            party,
            &[&key],
            TxKind::PayOrder {
                id,
                order,
                source: PaymentSource::Balance,
                escrow_ms: None,
            },
        )
        .await?;
        let status = self.order(order).await?.status;
        ensure!(status == OrderStatus::Paid, "order is {status:?}, not paid");
        let alice_paid = self.balance(self.cast.alice.id).await?;
        let disputed = Disputed::Order(order);
        let hold = TransferId(self.id());
        let receipt = self
            .ok(
                party,
                &[&key],
                TxKind::OpenDispute {
                    id: hold,
                    disputed,
                    reason: DisputeReason::NotReceived,
                },
            )
            .await?;
        let (amount, decider) = receipt.event("DisputeOpened", |e| match e {
            Event::DisputeOpened {
                amount, decider, ..
            } => Some((*amount, *decider)),
            _ => None,
        })?;
        ensure!(
            amount == 4_000 && decider == institution_id(BANK_A),
            "¥{} held, decided by institution {}",
            yuan(i128::from(amount)),
            decider.0
        );
        let bank_a = self.cast.bank_a.clone();
        let receipt = self
            .ok(
                Party::Institution(institution_id(BANK_A)),
                &[&bank_a],
                TxKind::DecideDispute {
                    disputed,
                    outcome: DisputeOutcome::Refund,
                },
            )
            .await?;
        let outcome = receipt.event("DisputeResolved", |e| match e {
            Event::DisputeResolved { outcome, .. } => Some(*outcome),
            _ => None,
        })?;
        ensure!(outcome == DisputeOutcome::Refund, "resolved as {outcome:?}");
        let alice = self.balance(self.cast.alice.id).await?;
        ensure!(
            alice == alice_paid + 4_000,
            "Alice has ¥{}, expected ¥{} after the refund",
            yuan(alice),
            yuan(alice_paid + 4_000)
        );
        Ok(format!(
            "OK: PaymentCompleted → DisputeOpened (¥40.00 held, Bank A decides) → DisputeResolved Refund; Alice back at ¥{}",
            yuan(alice)
        ))
    }

    async fn travel_rule_setup(&mut self) -> Result<String> {
        let registrations = [
            (
                BANK_B,
                self.cast.bank_b.clone(),
                self.cast.bank_b_x25519.public(),
            ),
            (
                HK_BANK,
                self.cast.hk_bank.clone(),
                self.cast.hk_bank_x25519.public(),
            ),
            (
                REGULATOR,
                self.cast.regulator.clone(),
                self.cast.regulator_x25519.public(),
            ),
        ];
        for (spec, signing, key) in registrations {
            let receipt = self
                .ok(
                    Party::Institution(institution_id(spec)),
                    &[&signing],
                    TxKind::SetEncryptionKey { key },
                )
                .await?;
            receipt.event("EncryptionKeySet", |e| {
                matches!(e, Event::EncryptionKeySet { .. }).then_some(())
            })?;
        }
        // A governance change: three of the four governors sign.
        let (a, b, platform) = (
            self.cast.bank_a.clone(),
            self.cast.bank_b.clone(),
            self.cast.platform.clone(),
        );
        let receipt = self
            .ok(
                Party::Institution(institution_id(BANK_A)),
                &[&a, &b, &platform],
                TxKind::Govern(GovernanceAction::SetTravelRuleThreshold {
                    currency: Currency::CNY,
                    threshold: TRAVEL_RULE_THRESHOLD_FEN,
                }),
            )
            .await?;
        receipt.event("GovernanceApplied", |e| {
            matches!(e, Event::GovernanceApplied { .. }).then_some(())
        })?;
        Ok("OK: EncryptionKeySet ×3, GovernanceApplied (CNY threshold ¥500.00)".to_string())
    }

    fn travel_rule_data(&self) -> TravelRuleData {
        TravelRuleData {
            originator: PartyDetails {
                name: "Alice Wang".into(),
                account: self.cast.alice.id.0.to_string(),
                address: "1 Century Avenue, Shanghai".into(),
            },
            beneficiary: PartyDetails {
                name: "Chen Ka-ming".into(),
                account: self.cast.chen.id.0.to_string(),
                address: "8 Queen's Road Central, Hong Kong".into(),
            },
        }
    }

    fn binding(&self, transfer: TransferId) -> Binding {
        Binding {
            chain_id: self.chain_id.clone(),
            transfer,
            sender: self.cast.alice.id,
            beneficiary: self.cast.chen.id,
        }
    }

    async fn travel_rule_remittance(&mut self) -> Result<String> {
        let fx = institution_id(FX_PROVIDER);
        let (party, key) = (self.cast.alice.party(), self.cast.alice.key.clone());
        let amount = FxAmount::Send {
            debit: TRAVEL_RULE_THRESHOLD_FEN,
            min_credit: 54_000,
        };
        let id = TransferId(self.id());
        self.refused(
            party,
            &[&key],
            TxKind::CrossBorderTransfer {
                id,
                provider: fx,
                beneficiary: self.cast.chen.id,
                amount,
                travel_rule: Vec::new(),
            },
            "TRAVEL_RULE_REQUIRED",
        )
        .await?;
        let (alice_before, chen_before) = (
            self.balance(self.cast.alice.id).await?,
            self.balance(self.cast.chen.id).await?,
        );
        let id = TransferId(self.id());
        let data = self.travel_rule_data();
        let binding = self.binding(id);
        // Sorted by recipient: the HK bank (4) before the regulator (5).
        let copies: Vec<SealedTravelRule> = [
            (HK_BANK, self.cast.hk_bank_x25519.public()),
            (REGULATOR, self.cast.regulator_x25519.public()),
        ]
        .into_iter()
        .map(|(spec, public)| travel_rule::seal(&data, institution_id(spec), public, &binding))
        .collect::<Result<_, _>>()?;
        let receipt = self
            .ok(
                party,
                &[&key],
                TxKind::CrossBorderTransfer {
                    id,
                    provider: fx,
                    beneficiary: self.cast.chen.id,
                    amount,
                    travel_rule: copies,
                },
            )
            .await?;
        let (credited, sealed_to) = receipt.event("RemittanceCredited", |e| match e {
            Event::RemittanceCredited {
                credited,
                travel_rule_for,
                ..
            } => Some((*credited, travel_rule_for.clone())),
            _ => None,
        })?;
        ensure!(
            sealed_to == vec![institution_id(HK_BANK), institution_id(REGULATOR)],
            "sealed to {sealed_to:?}"
        );
        ensure!(
            self.balance(self.cast.alice.id).await? == alice_before - 50_000,
            "Alice was not debited ¥500.00"
        );
        let chen = self.balance(self.cast.chen.id).await?;
        ensure!(
            chen == chen_before + i128::from(credited),
            "Chen has HK${}",
            yuan(chen)
        );
        self.travel_rule_tx = Some((receipt.hash, id));
        Ok(format!(
            "OK: TRAVEL_RULE_REQUIRED, then RemittanceCredited HK${} with travel-rule data for institutions 4 and 5",
            yuan(i128::from(credited))
        ))
    }

    async fn travel_rule_reading(&mut self) -> Result<String> {
        #[derive(Deserialize)]
        struct Copies {
            transfer: TransferId,
            copies: Vec<SealedTravelRule>,
        }
        let (hash, id) = self
            .travel_rule_tx
            .ok_or_else(|| anyhow!("no remittance with travel-rule data to read"))?;
        let path = format!("/v1/travel-rule/{}", hash.to_hex());
        let expected = self.travel_rule_data();
        let binding = self.binding(id);
        // The HK bank reads its own copy and opens it.
        let hk: Copies = self.as_hk_bank.get_json(&path).await?;
        ensure!(
            hk.transfer == id,
            "the copies of transfer {}",
            hk.transfer.0
        );
        let [copy] = hk.copies.as_slice() else {
            bail!("the HK bank got {} copies, not its one", hk.copies.len());
        };
        let opened = travel_rule::open(copy, &self.cast.hk_bank_x25519, &binding)?;
        ensure!(opened == expected, "the HK bank read {opened:?}");
        // The regulator reads every copy and opens its own.
        let all: Copies = self.as_regulator.get_json(&path).await?;
        let regulators = all
            .copies
            .iter()
            .find(|c| c.recipient == institution_id(REGULATOR))
            .ok_or_else(|| anyhow!("no copy for the regulator"))?;
        let opened = travel_rule::open(regulators, &self.cast.regulator_x25519, &binding)?;
        ensure!(opened == expected, "the regulator read {opened:?}");
        // Bank B: the node serves it no copy, and its key opens none of them.
        match self.as_bank_b.get_json::<Copies>(&path).await {
            Err(e) if e.api_code() == Some("OUT_OF_SCOPE") => {}
            Err(e) => bail!("Bank B's read failed otherwise: {e}"),
            Ok(_) => bail!("Bank B was served travel-rule copies sealed to others"),
        }
        for copy in &all.copies {
            ensure!(
                travel_rule::open(copy, &self.cast.bank_b_x25519, &binding).is_err(),
                "Bank B's key opened the copy for institution {}",
                copy.recipient.0
            );
        }
        Ok(format!(
            "OK: HK bank and regulator read \"{}\" → \"{}\"; Bank B: OUT_OF_SCOPE, and its key opens neither copy",
            expected.originator.name, expected.beneficiary.name
        ))
    }

    async fn latest_block_time(&self) -> Result<u64> {
        #[derive(Deserialize)]
        struct Header {
            time_ms: u64,
        }
        #[derive(Deserialize)]
        struct Latest {
            header: Header,
        }
        let latest: Latest = self.sub.api.get_json("/v1/blocks/latest").await?;
        Ok(latest.header.time_ms)
    }

    async fn reused_code(&mut self) -> Result<String> {
        let (code, code_signature) = self.alice_code();
        let (party, key) = (self.cast.tea_house.party(), self.cast.tea_house.key.clone());
        let id = TransferId(self.id());
        self.refused(
            party,
            &[&key],
            TxKind::CollectByCode {
                id,
                code,
                code_signature,
                amount: 3_000,
            },
            "PAYMENT_CODE_USED",
        )
        .await?;
        ensure!(
            self.balance(self.cast.alice.id).await? == 51_150,
            "Alice's balance changed"
        );
        Ok("PAYMENT_CODE_USED, nothing moved".to_string())
    }

    async fn overdraft(&mut self) -> Result<String> {
        let (party, key) = (self.cast.bob.party(), self.cast.bob.key.clone());
        let to = self.cast.alice.id;
        let id = TransferId(self.id());
        self.refused(
            party,
            &[&key],
            TxKind::Transfer {
                id,
                to,
                amount: 100_000,
                memo: tally_contracts::Memo::NONE,
            },
            "INSUFFICIENT_FUNDS",
        )
        .await?;
        ensure!(
            self.balance(self.cast.bob.id).await? == 59_500,
            "Bob's balance changed"
        );
        Ok("INSUFFICIENT_FUNDS, nothing moved".to_string())
    }

    async fn freeze(&mut self) -> Result<String> {
        let regulator = self.cast.regulator.clone();
        let account = self.cast.bob.id;
        let receipt = self
            .ok(
                Party::Institution(institution_id(REGULATOR)),
                &[&regulator],
                TxKind::Freeze {
                    account,
                    reason: Hash::digest("tally-devnet-case", b"case 2026-117"),
                },
            )
            .await?;
        receipt.event("AccountFrozen", |e| {
            matches!(e, Event::AccountFrozen { .. }).then_some(())
        })?;
        ensure!(
            self.sub.account(account).await?.account.frozen,
            "the account is not frozen"
        );
        let (party, key) = (self.cast.bob.party(), self.cast.bob.key.clone());
        let merchant = self.cast.book_store.id;
        let id = TransferId(self.id());
        self.refused(
            party,
            &[&key],
            TxKind::PayMerchant {
                id,
                merchant,
                amount: 1_000,
                reference: tally_contracts::Memo::NONE,
            },
            "ACCOUNT_FROZEN",
        )
        .await?;
        ensure!(
            self.balance(account).await? == 59_500,
            "Bob's balance changed"
        );
        Ok("AccountFrozen; the payment: ACCOUNT_FROZEN".to_string())
    }

    async fn settlement_cycle(&mut self) -> Result<String> {
        let bank_a = self.cast.bank_a.clone();
        let receipt = self
            .ok(
                Party::Institution(institution_id(BANK_A)),
                &[&bank_a],
                TxKind::SettlementCycle,
            )
            .await?;
        let (cycle, positions) = receipt.event("SettlementCycleOpened", |e| match e {
            Event::SettlementCycleOpened { cycle, positions } => Some((*cycle, positions.clone())),
            _ => None,
        })?;
        for currency in [Currency::CNY, Currency::HKD] {
            let sum: i128 = positions
                .iter()
                .filter(|p| p.currency == currency)
                .map(|p| p.net)
                .sum();
            ensure!(sum == 0, "{currency} positions sum to {sum}");
        }
        let net = |institution: InstitutionId, currency: Currency| {
            positions
                .iter()
                .find(|p| p.institution == institution && p.currency == currency)
                .map_or(0, |p| p.net)
        };
        // Bank A's customers paid Bank B's ¥120.00 and the FX provider ¥100.00.
        ensure!(
            net(institution_id(BANK_A), Currency::CNY) <= -22_000,
            "Bank A's CNY position is {}",
            net(institution_id(BANK_A), Currency::CNY)
        );
        ensure!(
            net(institution_id(BANK_B), Currency::CNY) >= 12_000,
            "Bank B's CNY position is {}",
            net(institution_id(BANK_B), Currency::CNY)
        );
        let path = format!("/v1/settlement-cycles/{}", cycle.0);
        let record: SettlementCycleRecord = self.sub.record(&path).await?;
        let keys = [
            (institution_id(BANK_A), self.cast.bank_a.clone()),
            (institution_id(BANK_B), self.cast.bank_b.clone()),
            (institution_id(HK_BANK), self.cast.hk_bank.clone()),
            (institution_id(PLATFORM), self.cast.platform.clone()),
            (institution_id(FX_PROVIDER), self.cast.fx.clone()),
        ];
        for receiver in &record.awaiting {
            let key = keys
                .iter()
                .find(|(id, _)| id == receiver)
                .map(|(_, k)| k.clone())
                .ok_or_else(|| anyhow!("receiver {receiver:?} is not in the story"))?;
            self.ok(
                Party::Institution(*receiver),
                &[&key],
                TxKind::ConfirmSettlement { cycle },
            )
            .await?;
        }
        let record: SettlementCycleRecord = self.sub.record(&path).await?;
        ensure!(
            record.awaiting.is_empty(),
            "still awaiting {:?}",
            record.awaiting
        );
        let shown: Vec<String> = positions
            .iter()
            .filter(|p| p.net != 0)
            .map(|p| format!("{}:{} {}", p.institution.0, p.currency, yuan(p.net)))
            .collect();
        Ok(format!(
            "OK: cycle {} nets [{}]; closed after {} confirmation(s)",
            cycle.0,
            shown.join(", "),
            positions.iter().filter(|p| p.net > 0).count()
        ))
    }

    async fn merchant_settlement(&mut self) -> Result<String> {
        let merchant = self.cast.tea_house.id;
        let takings = self.balance(merchant).await?;
        let amount = u64::try_from(takings).context("Tea House's balance")?;
        ensure!(amount > 0, "Tea House has nothing to settle");
        let settlement = AccountId::institutional(
            institution_id(BANK_A),
            AccountKind::BankSettlement,
            Currency::CNY,
        );
        let fees =
            AccountId::institutional(institution_id(PLATFORM), AccountKind::Fee, Currency::CNY);
        let (settlement_before, fees_before) =
            (self.balance(settlement).await?, self.balance(fees).await?);
        let (party, key) = (self.cast.tea_house.party(), self.cast.tea_house.key.clone());
        let id = TransferId(self.id());
        let receipt = self
            .ok(party, &[&key], TxKind::SettleMerchant { id, amount })
            .await?;
        let (net, fee) = receipt.event("MerchantSettled", |e| match e {
            Event::MerchantSettled { net, fee, .. } => Some((*net, *fee)),
            _ => None,
        })?;
        let expected_fee = amount * u64::from(TEA_HOUSE_FEE_BPS) / 10_000;
        ensure!(
            fee == expected_fee && net + fee == amount,
            "net {net} + fee {fee} for {amount}"
        );
        ensure!(
            self.balance(merchant).await? == 0,
            "Tea House still holds money"
        );
        ensure!(
            self.balance(settlement).await? == settlement_before + i128::from(net),
            "Bank A's settlement account did not receive the net"
        );
        ensure!(
            self.balance(fees).await? == fees_before + i128::from(fee),
            "the platform did not receive the fee"
        );
        Ok(format!(
            "OK: MerchantSettled ¥{} to Bank A, fee ¥{} to the platform",
            yuan(i128::from(net)),
            yuan(i128::from(fee))
        ))
    }

    /// Alice reads her balance with its proof from each validator and the audit node, and
    /// believes each answer only once every link up to a quorum of the genesis validators
    /// holds. A proof is of the state one block behind the head, so she waits (bounded) for
    /// a proof at least as new as her last payment.
    async fn proven_balance(&mut self) -> Result<String> {
        let alice = &self.cast.alice;
        let expected = self.sub.account(alice.id).await?;
        let validators = self.genesis.validator_set()?;
        let record = tally_contracts::commitment::ProvenRecord::Account(alice.id);
        let key = record.key();
        let path = format!("/v1/accounts/{}/proof", alice.id.0);
        let credential =
            || tally_sdk::Credential::of_party(Party::Account(alice.id), alice.key.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_millis(PROOF_WAIT_MS);
        let mut heights = Vec::new();
        for (name, api) in self
            .validators
            .iter()
            .enumerate()
            .map(|(i, api)| (format!("validator {i}"), api))
            .chain(
                self.auditors
                    .iter()
                    .map(|api| ("the audit node".to_string(), api)),
            )
        {
            let as_alice = api.signed_as(credential());
            let (value, height) = loop {
                let answer: tally_node::proof::RecordProof = as_alice
                    .get_json(&path)
                    .await
                    .with_context(|| format!("{name}'s proof"))?;
                let (value, height) = answer
                    .verify(&self.chain_id, &validators, &key)
                    .with_context(|| format!("{name}'s proof is not believed"))?;
                if height >= expected.height {
                    break (value, height);
                }
                if tokio::time::Instant::now() > deadline {
                    bail!(
                        "{name} proves height {height}, not yet Alice's balance at {}",
                        expected.height
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let bytes = value.with_context(|| format!("{name} proves Alice's account absent"))?;
            let account: tally_contracts::Account =
                tally_contracts::commitment::decode_record(&key, &bytes)?;
            ensure!(
                account.balance() == expected.balance,
                "{name} proves ¥{}, the API said ¥{}",
                yuan(account.balance()),
                yuan(expected.balance)
            );
            heights.push(height);
        }
        Ok(format!(
            "OK: ¥{} verified from {} nodes (proofs at heights {})",
            yuan(expected.balance),
            heights.len(),
            heights
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    /// What `tally node backup` and `tally node restore` do, through the same library calls:
    /// the running validator answers on its admin socket; the restore checks the digest, the
    /// chain and the ledger tree's root against the head block's results.
    async fn backup_and_restore(&mut self) -> Result<String> {
        let (name, data_dir, scratch) = self
            .backed_up
            .clone()
            .ok_or_else(|| anyhow!("this devnet has no validator"))?;
        let chain_id = self.chain_id.clone();
        tokio::task::spawn_blocking(move || -> Result<String> {
            // A scratch directory of an earlier run goes first: a restore writes only where no
            // chain is.
            if scratch.exists() {
                std::fs::remove_dir_all(&scratch)
                    .with_context(|| format!("removing {}", scratch.display()))?;
            }
            std::fs::create_dir_all(&scratch)?;
            let file = scratch.join("backup");
            let mut out = std::io::BufWriter::new(std::fs::File::create_new(&file)?);
            let header = tally_node::admin::request_backup(&data_dir, &mut out, |_| {}, |_| {})?
                .ok_or_else(|| anyhow!("{name} did not answer on its admin socket"))?;
            std::io::Write::flush(&mut out)?;
            drop(out);
            let bytes = std::fs::metadata(&file)?.len();
            let restored = tally_node::storage::backup::restore(
                &scratch.join("data"),
                &chain_id,
                std::fs::File::open(&file)?,
                |_, _| {},
            )?;
            ensure!(restored.header == header, "restored {:?}", restored.header);
            std::fs::remove_dir_all(&scratch)
                .with_context(|| format!("removing {}", scratch.display()))?;
            Ok(format!(
                "OK: {name} at height {} ({} entries, {:.1} MiB) backed up over its admin socket and restored",
                header.head,
                header.entries,
                bytes as f64 / (1024.0 * 1024.0)
            ))
        })
        .await?
    }

    async fn audit(&mut self) -> Result<String> {
        let auditor = self
            .auditors
            .first()
            .cloned()
            .ok_or_else(|| anyhow!("this devnet has no audit node"))?;
        let target = self.height().await?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(AUDIT_CATCH_UP_MS);
        let audit_height = loop {
            let health = auditor.get("/health").await?;
            if health.status != hyper::StatusCode::OK {
                bail!("the audit node is unhealthy: {}", health.error_text());
            }
            let health: Health = health.json()?;
            ensure!(
                health.status == "ok",
                "the audit node says {}",
                health.status
            );
            let height = health.height.unwrap_or(0);
            self.audit_verified_height = Some(height);
            if height >= target {
                break height;
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the audit node reached height {height}, the validators {target}, within {AUDIT_CATCH_UP_MS} ms"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        #[derive(Deserialize, PartialEq, Eq, Debug)]
        struct Results {
            state_root: Hash,
        }
        #[derive(Deserialize)]
        struct Block {
            hash: serde_json::Value,
            results: Results,
        }
        // Its latest verified block, as every validator has it.
        let path = format!("/v1/blocks/{audit_height}");
        let audited: Block = auditor.get_json(&path).await?;
        for (i, validator) in self.validators.iter().enumerate() {
            let block: Block = validator
                .get_json(&path)
                .await
                .with_context(|| format!("validator {i}"))?;
            ensure!(
                block.hash == audited.hash && block.results == audited.results,
                "validator {i}'s block {audit_height} differs from the audit node's"
            );
        }
        Ok(format!(
            "OK: audit node healthy, verified up to {audit_height}; its state root there = {}… on all {} validators",
            audited
                .results
                .state_root
                .to_hex()
                .get(..12)
                .unwrap_or_default(),
            self.validators.len()
        ))
    }
}
