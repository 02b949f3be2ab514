//! One test per transaction kind: success, and each rejection the issue lists.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use tally_contracts::*;
use tally_crypto::{Hash, SigningKey};

const ALICE: u128 = 11;
const BOB: u128 = 12;
const CAROL: u128 = 13; // at bank B
const SHOP: u128 = 21;

fn a(id: u128) -> Party {
    Party::Account(AccountId(id))
}

fn transfer(id: u128, to: u128, amount: Amount) -> TxKind {
    TxKind::Transfer {
        id: TransferId(id),
        to: AccountId(to),
        amount,
        memo: tally_contracts::Memo::NONE,
    }
}

/// Alice (tier 1, 100_000 CNY) and Bob at bank A, Carol at bank B, a shop at bank A.
fn world() -> (World, SigningKey, SigningKey, SigningKey, SigningKey) {
    let mut w = World::new();
    let alice = w.consumer(ALICE, BANK_A, 1, Currency::CNY);
    let bob = w.consumer(BOB, BANK_A, 0, Currency::CNY);
    let carol = w.consumer(CAROL, BANK_B, 0, Currency::CNY);
    let shop = w.merchant(SHOP, BANK_A, 100, Currency::CNY);
    w.fund(ALICE, BANK_A, 100_000);
    (w, alice, bob, carol, shop)
}

// ---------------------------------------------------------------- registration, nonces

#[test]
fn register_account_needs_kyc_cosignature_and_rejects_sanctioned() {
    let mut w = World::new();
    let k = key(50);
    let body = |id: u128, ident: Hash| TxKind::RegisterAccount {
        account: AccountId(id),
        key: k.public_key(),
        currency: Currency::CNY,
        institution: BANK_A,
        tier: 0,
        identity: ident,
    };
    let r = w.submit(a(50), &[&k], body(50, identity(50)));
    rejected(&r, Rejection::MissingCoSignature);
    assert!(query::account(&w.store, AccountId(50)).unwrap().is_none());
    let r = w.submit(
        a(50),
        &[&k, &institution_key(BANK_A)],
        body(50, identity(666)),
    );
    rejected(&r, Rejection::Sanctioned);
    let r = w.submit(
        a(50),
        &[&k, &institution_key(FX)],
        TxKind::RegisterAccount {
            account: AccountId(50),
            key: k.public_key(),
            currency: Currency::CNY,
            institution: FX,
            tier: 0,
            identity: identity(50),
        },
    );
    rejected(&r, Rejection::RoleRequired);
    let r = w.submit(
        a(50),
        &[&k, &institution_key(BANK_A)],
        body(50, identity(50)),
    );
    ok(&r);
    assert_eq!(
        r.events,
        vec![Event::AccountRegistered {
            account: AccountId(50),
            institution: BANK_A,
            tier: 0
        }]
    );
    assert_eq!(w.account(50).holder.nonce, 1);
    // Registering again is a replay of nonce 0.
    let again = w.sign_nonce(
        a(50),
        0,
        &[&k, &institution_key(BANK_A)],
        body(50, identity(50)),
    );
    rejected(&w.block(vec![again]).receipts[0], Rejection::NonceReplayed);
}

#[test]
fn nonces_replayed_out_of_order_and_wrong_signer() {
    let (mut w, alice, bob, ..) = world();
    let n = w.nonce(a(ALICE));
    let first = w.sign_nonce(a(ALICE), n, &[&alice], transfer(1, BOB, 10));
    let out = w.block(vec![first.clone()]);
    ok(&out.receipts[0]);
    let out = w.block(vec![first]);
    rejected(&out.receipts[0], Rejection::NonceReplayed);
    let ahead = w.sign_nonce(a(ALICE), n + 5, &[&alice], transfer(2, BOB, 10));
    rejected(&w.block(vec![ahead]).receipts[0], Rejection::NonceGap);
    // Bob's key signing Alice's transaction: nothing changes, not even her nonce.
    let before = w.account(ALICE);
    let forged = w.sign(a(ALICE), &[&bob], transfer(3, BOB, 10));
    rejected(&w.block(vec![forged]).receipts[0], Rejection::WrongSigner);
    assert_eq!(w.account(ALICE), before);
    let stranger = w.sign(a(999), &[&bob], transfer(3, BOB, 10));
    rejected(
        &w.block(vec![stranger]).receipts[0],
        Rejection::UnknownSender,
    );
}

#[test]
fn rejected_transaction_changes_only_the_nonce() {
    let (mut w, alice, ..) = world();
    let before = w.account(ALICE);
    let r = w.submit(a(ALICE), &[&alice], transfer(1, BOB, 10_000_000));
    rejected(&r, Rejection::OverSingleLimit);
    let after = w.account(ALICE);
    assert_eq!(after.holder.nonce, before.holder.nonce + 1);
    let mut same = after.clone();
    same.holder.nonce = before.holder.nonce;
    assert_eq!(same, before);
    // The transfer id was not consumed by the rejected transaction.
    ok(&w.submit(a(ALICE), &[&alice], transfer(1, BOB, 10)));
}

#[test]
fn wrong_chain_is_rejected_by_verification_and_execution() {
    let (w, alice, ..) = world();
    let mut tx = w.sign(a(ALICE), &[&alice], transfer(1, BOB, 1));
    tx.tx.chain_id = "other".into();
    let tx = tx.tx.sign(&[&alice]);
    let out = verify_transactions(CHAIN, vec![tx], &mut tally_crypto::KeyCache::default());
    assert!(matches!(out[0], Err(VerifyError::WrongChain(_))));
}

// ---------------------------------------------------------------- transfers

#[test]
fn a_transfer_carries_its_memo_to_the_receiver() {
    let (mut w, alice, ..) = world();
    let memo = Memo::new("rent, May — flat 3").unwrap();
    let r = w.submit(
        a(ALICE),
        &[&alice],
        TxKind::Transfer {
            id: TransferId(1),
            to: AccountId(BOB),
            amount: 300,
            memo: memo.clone(),
        },
    );
    ok(&r);
    // The one event both sides are notified from carries it.
    assert_eq!(
        r.events,
        vec![Event::TransferReceived {
            id: TransferId(1),
            from: AccountId(ALICE),
            to: AccountId(BOB),
            amount: 300,
            memo: memo.clone(),
        }]
    );
    assert_eq!(w.balance(BOB), 300);

    // No memo has one spelling: the empty text. A memo changes what is signed.
    let plain = w.sign(a(ALICE), &[&alice], transfer(2, BOB, 1));
    let mut noted = plain.clone();
    noted.tx.kind = TxKind::Transfer {
        id: TransferId(2),
        to: AccountId(BOB),
        amount: 1,
        memo: Memo::new("x").unwrap(),
    };
    assert_ne!(plain.tx.signing_bytes(), noted.tx.signing_bytes());
    assert_eq!(encoding::decode(&encoding::encode(&plain)), Ok(plain));
    assert!(Memo::new("").unwrap().is_empty());
    assert_eq!(Memo::new(""), Some(Memo::NONE));

    // Too long, or with a control character: it does not decode, so no node takes it; one
    // built in memory fails verification all the same.
    // A memo's bytes are a string's: decoding builds any text, as a forger's client would.
    let unchecked = |text: &str| -> Memo {
        postcard::from_bytes(&postcard::to_allocvec(text).unwrap()).unwrap()
    };
    let long = unchecked(&"m".repeat(MEMO_BYTES_MAX + 1));
    let bell = unchecked("ring\u{7}");
    assert!(Memo::new(long.as_str()).is_none() && Memo::new(bell.as_str()).is_none());
    assert!(Memo::new(&"m".repeat(MEMO_BYTES_MAX)).is_some());
    for bad in [long, bell] {
        let kind = TxKind::Transfer {
            id: TransferId(3),
            to: AccountId(BOB),
            amount: 1,
            memo: bad,
        };
        let signed = w.sign(a(ALICE), &[&alice], kind);
        assert_eq!(
            encoding::decode(&encoding::encode(&signed)),
            Err(DecodeError::Limit(
                "memo: at most 64 bytes, no control characters"
            ))
        );
        let verified = verify_transactions(CHAIN, vec![signed], &mut w.cache);
        assert!(
            matches!(
                verified.as_slice(),
                [Err(VerifyError::Limits(DecodeError::Limit(_)))]
            ),
            "{verified:?}"
        );
    }
    assert_eq!(w.balance(BOB), 300);
}

#[test]
fn transfer_same_and_other_institution() {
    let (mut w, alice, ..) = world();
    let r = w.submit(a(ALICE), &[&alice], transfer(1, BOB, 300));
    ok(&r);
    assert_eq!(
        r.events,
        vec![Event::TransferReceived {
            id: TransferId(1),
            from: AccountId(ALICE),
            to: AccountId(BOB),
            amount: 300,
            memo: Memo::NONE,
        }]
    );
    assert_eq!(w.balance(BOB), 300);
    ok(&w.submit(a(ALICE), &[&alice], transfer(2, CAROL, 200)));
    assert_eq!(w.balance(CAROL), 200);
    assert_eq!(w.balance(ALICE), 100_000 - 500);
    // Bank A owes bank B 200: it shows up in the next settlement cycle.
    let r = w.institution(BANK_A, TxKind::SettlementCycle);
    ok(&r);
    let Event::SettlementCycleOpened { positions, .. } = &r.events[0] else {
        panic!("{r:?}")
    };
    assert!(positions.contains(&NetPosition {
        currency: Currency::CNY,
        institution: BANK_B,
        net: 200
    }));
}

#[test]
fn transfer_ids_are_idempotent() {
    let (mut w, alice, ..) = world();
    ok(&w.submit(a(ALICE), &[&alice], transfer(7, BOB, 100)));
    rejected(
        &w.submit(a(ALICE), &[&alice], transfer(7, BOB, 100)),
        Rejection::TransferExists,
    );
    rejected(
        &w.submit(a(ALICE), &[&alice], transfer(7, BOB, 101)),
        Rejection::TransferExistsWithDifferentBody,
    );
    assert_eq!(w.balance(BOB), 100);
}

#[test]
fn transfer_rejections() {
    let (mut w, alice, bob, ..) = world();
    rejected(
        &w.submit(a(BOB), &[&bob], transfer(1, ALICE, 1)),
        Rejection::InsufficientFunds,
    );
    rejected(
        &w.submit(a(ALICE), &[&alice], transfer(2, 404, 1)),
        Rejection::AccountNotFound,
    );
    rejected(
        &w.submit(a(ALICE), &[&alice], transfer(3, SHOP, 1)),
        Rejection::WrongAccountKind,
    );
    rejected(
        &w.submit(a(ALICE), &[&alice], transfer(4, ALICE, 1)),
        Rejection::SameAccount,
    );
    rejected(
        &w.submit(a(ALICE), &[&alice], transfer(5, BOB, 0)),
        Rejection::InvalidAmount,
    );
    let usd = w.consumer(30, BANK_A, 0, Currency::USD);
    drop(usd);
    rejected(
        &w.submit(a(ALICE), &[&alice], transfer(6, 30, 5)),
        Rejection::CurrencyMismatch,
    );
}

#[test]
fn tier_limits_single_and_daily_by_block_time() {
    let (mut w, alice, bob, ..) = world();
    ok(&w.submit(a(ALICE), &[&alice], transfer(1, BOB, 50_000)));
    rejected(
        &w.submit(a(BOB), &[&bob], transfer(2, ALICE, TIER0_SINGLE + 1)),
        Rejection::OverSingleLimit,
    );
    ok(&w.submit(a(BOB), &[&bob], transfer(3, ALICE, TIER0_SINGLE)));
    ok(&w.submit(a(BOB), &[&bob], transfer(4, ALICE, TIER0_SINGLE)));
    rejected(
        &w.submit(a(BOB), &[&bob], transfer(5, ALICE, 1)),
        Rejection::OverDailyLimit,
    );
    w.advance(DAY_MS);
    ok(&w.submit(a(BOB), &[&bob], transfer(6, ALICE, 1)));
}

#[test]
fn frozen_account_cannot_send_or_receive_until_unfrozen() {
    let (mut w, alice, ..) = world();
    let reason = Hash::digest("case", b"1");
    // Only the regulator may freeze.
    rejected(
        &w.institution(
            BANK_A,
            TxKind::Freeze {
                account: AccountId(ALICE),
                reason,
            },
        ),
        Rejection::RoleRequired,
    );
    let r = w.institution(
        REGULATOR,
        TxKind::Freeze {
            account: AccountId(ALICE),
            reason,
        },
    );
    ok(&r);
    assert_eq!(
        r.events,
        vec![Event::AccountFrozen {
            account: AccountId(ALICE),
            reason
        }]
    );
    rejected(
        &w.submit(a(ALICE), &[&alice], transfer(1, BOB, 1)),
        Rejection::AccountFrozen,
    );
    let (bob_key, _) = (key(BOB as u64), ());
    w.fund(BOB, BANK_A, 100);
    rejected(
        &w.submit(a(BOB), &[&bob_key], transfer(2, ALICE, 1)),
        Rejection::AccountFrozen,
    );
    ok(&w.institution(
        REGULATOR,
        TxKind::Unfreeze {
            account: AccountId(ALICE),
        },
    ));
    ok(&w.submit(a(ALICE), &[&alice], transfer(3, BOB, 1)));
}

// ---------------------------------------------------------------- cards, top-up, withdraw

#[test]
fn cards_top_up_and_withdraw_need_the_bank() {
    let (mut w, _alice, bob, ..) = world();
    let bank = institution_key(BANK_A);
    rejected(
        &w.submit(
            a(BOB),
            &[&bob],
            TxKind::BindCard {
                card: card(1),
                bank: BANK_A,
            },
        ),
        Rejection::MissingCoSignature,
    );
    let r = w.submit(
        a(BOB),
        &[&bob, &bank],
        TxKind::BindCard {
            card: card(1),
            bank: BANK_A,
        },
    );
    ok(&r);
    rejected(
        &w.submit(
            a(BOB),
            &[&bob, &bank],
            TxKind::BindCard {
                card: card(1),
                bank: BANK_A,
            },
        ),
        Rejection::CardAlreadyBound,
    );
    rejected(
        &w.submit(
            a(BOB),
            &[&bob],
            TxKind::TopUp {
                id: TransferId(1),
                card: card(1),
                amount: 500,
            },
        ),
        Rejection::MissingCoSignature,
    );
    let r = w.submit(
        a(BOB),
        &[&bob, &bank],
        TxKind::TopUp {
            id: TransferId(1),
            card: card(1),
            amount: 500,
        },
    );
    ok(&r);
    assert!(matches!(r.events[0], Event::ToppedUp { amount: 500, .. }));
    let issuance = w.institutional(BANK_A, AccountKind::BankIssuance, Currency::CNY);
    assert_eq!(issuance.balance(), -(100_000 + 500));
    rejected(
        &w.submit(
            a(BOB),
            &[&bob, &bank],
            TxKind::Withdraw {
                id: TransferId(2),
                card: card(1),
                amount: 501,
            },
        ),
        Rejection::InsufficientFunds,
    );
    ok(&w.submit(
        a(BOB),
        &[&bob, &bank],
        TxKind::Withdraw {
            id: TransferId(3),
            card: card(1),
            amount: 200,
        },
    ));
    assert_eq!(w.balance(BOB), 300);
    rejected(
        &w.submit(
            a(BOB),
            &[&bob, &bank],
            TxKind::TopUp {
                id: TransferId(4),
                card: card(9),
                amount: 1,
            },
        ),
        Rejection::CardNotBound,
    );
    ok(&w.submit(a(BOB), &[&bob, &bank], TxKind::UnbindCard { card: card(1) }));
    rejected(
        &w.submit(
            a(BOB),
            &[&bob, &bank],
            TxKind::TopUp {
                id: TransferId(5),
                card: card(1),
                amount: 1,
            },
        ),
        Rejection::CardNotBound,
    );
}

#[test]
fn issuance_is_bounded_by_governance() {
    let (mut w, _alice, bob, ..) = world();
    let bank = institution_key(BANK_A);
    ok(&w.submit(
        a(BOB),
        &[&bob, &bank],
        TxKind::BindCard {
            card: card(2),
            bank: BANK_A,
        },
    ));
    let gov = governance_keys();
    let set_limit = |limit| {
        TxKind::Govern(GovernanceAction::SetIssuanceLimit {
            bank: BANK_A,
            currency: Currency::CNY,
            limit,
        })
    };
    // One governance signature is below the threshold of two.
    let r = w.submit(
        Party::Institution(BANK_A),
        &[&bank, &gov[0]],
        set_limit(100_010),
    );
    rejected(&r, Rejection::GovernanceQuorum);
    let r = w.submit(
        Party::Institution(BANK_A),
        &[&bank, &gov[0], &gov[2]],
        set_limit(100_010),
    );
    ok(&r);
    rejected(
        &w.submit(
            a(BOB),
            &[&bob, &bank],
            TxKind::TopUp {
                id: TransferId(1),
                card: card(2),
                amount: 11,
            },
        ),
        Rejection::IssuanceLimitExceeded,
    );
    ok(&w.submit(
        a(BOB),
        &[&bob, &bank],
        TxKind::TopUp {
            id: TransferId(2),
            card: card(2),
            amount: 10,
        },
    ));
}

// ---------------------------------------------------------------- keys

#[test]
fn rotate_recover_and_second_factor() {
    let (mut w, alice, ..) = world();
    let new = key(777);
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            TxKind::RotateKey {
                new_key: new.public_key(),
            },
        ),
        Rejection::MissingCoSignature,
    );
    ok(&w.submit(
        a(ALICE),
        &[&alice, &new],
        TxKind::RotateKey {
            new_key: new.public_key(),
        },
    ));
    rejected(
        &w.submit(a(ALICE), &[&alice], transfer(1, BOB, 1)),
        Rejection::WrongSigner,
    );
    ok(&w.submit(a(ALICE), &[&new], transfer(2, BOB, 1)));

    // Lost phone: bank A (which holds the account) recovers it; bank B may not.
    let phone = key(778);
    rejected(
        &w.institution(
            BANK_B,
            TxKind::RecoverAccount {
                account: AccountId(ALICE),
                new_key: phone.public_key(),
            },
        ),
        Rejection::NotPermitted,
    );
    let r = w.submit(
        Party::Institution(BANK_A),
        &[&institution_key(BANK_A), &phone],
        TxKind::RecoverAccount {
            account: AccountId(ALICE),
            new_key: phone.public_key(),
        },
    );
    ok(&r);
    // Announced: the new key takes over only after the delay.
    rejected(
        &w.submit(a(ALICE), &[&phone], transfer(3, BOB, 1)),
        Rejection::WrongSigner,
    );
    w.advance(RECOVERY_DELAY_MS_DEFAULT);
    let out = w.block(vec![]);
    assert!(
        out.expired.contains(&Event::AccountRecovered {
            account: AccountId(ALICE),
            institution: BANK_A,
        }),
        "{out:?}"
    );
    ok(&w.submit(a(ALICE), &[&phone], transfer(3, BOB, 1)));

    // Second factor above 1_000.
    let token = key(779);
    ok(&w.submit(
        a(ALICE),
        &[&phone, &token],
        TxKind::SetSecondFactor {
            key: Some(token.public_key()),
            threshold: 1_000,
        },
    ));
    ok(&w.submit(a(ALICE), &[&phone], transfer(4, BOB, 1_000)));
    rejected(
        &w.submit(a(ALICE), &[&phone], transfer(5, BOB, 1_001)),
        Rejection::SecondFactorRequired,
    );
    ok(&w.submit(a(ALICE), &[&phone, &token], transfer(6, BOB, 1_001)));
    // The phone alone cannot remove the second factor.
    rejected(
        &w.submit(
            a(ALICE),
            &[&phone],
            TxKind::SetSecondFactor {
                key: None,
                threshold: 0,
            },
        ),
        Rejection::SecondFactorRequired,
    );
    ok(&w.submit(
        a(ALICE),
        &[&phone, &token],
        TxKind::SetSecondFactor {
            key: None,
            threshold: 0,
        },
    ));
    ok(&w.submit(a(ALICE), &[&phone], transfer(7, BOB, 5_000)));
}

// ---------------------------------------------------------------- merchant

fn create_order(
    w: &mut World,
    shop: &SigningKey,
    order: u128,
    amount: Amount,
    ttl_ms: u64,
) -> Receipt {
    let expires_at_ms = w.time_ms + 1_000 + ttl_ms;
    w.submit(
        a(SHOP),
        &[shop],
        TxKind::CreateOrder {
            order: OrderId(order),
            amount,
            currency: Currency::CNY,
            expires_at_ms,
            items: Hash::digest("items", &order.to_le_bytes()),
        },
    )
}

fn pay(id: u128, order: u128, source: PaymentSource, escrow_ms: Option<u64>) -> TxKind {
    TxKind::PayOrder {
        id: TransferId(id),
        order: OrderId(order),
        source,
        escrow_ms,
    }
}

#[test]
fn register_merchant_by_acquirer_within_fee_schedule() {
    let mut w = World::new();
    let k = key(60);
    let body = |fee_bps| TxKind::RegisterMerchant {
        account: AccountId(60),
        key: k.public_key(),
        currency: Currency::CNY,
        fee_bps,
        identity: identity(60),
    };
    rejected(
        &w.institution(BANK_A, body(100)),
        Rejection::MissingCoSignature,
    );
    let r = w.submit(
        Party::Institution(PLATFORM),
        &[&institution_key(PLATFORM), &k],
        body(100),
    );
    rejected(&r, Rejection::RoleRequired);
    let r = w.submit(
        Party::Institution(BANK_A),
        &[&institution_key(BANK_A), &k],
        body(301),
    );
    rejected(&r, Rejection::FeeAboveSchedule);
    let r = w.submit(
        Party::Institution(BANK_A),
        &[&institution_key(BANK_A), &k],
        body(300),
    );
    ok(&r);
    assert_eq!(w.account(60).kind, AccountKind::Merchant);
}

#[test]
fn order_paid_from_balance_then_refunded_partially_and_fully() {
    let (mut w, alice, _bob, _carol, shop) = world();
    let r = create_order(&mut w, &shop, 1, 1_000, 60_000);
    ok(&r);
    rejected(
        &create_order(&mut w, &shop, 1, 1_000, 60_000),
        Rejection::OrderExists,
    );
    let r = w.submit(
        a(ALICE),
        &[&alice],
        pay(10, 1, PaymentSource::Balance, None),
    );
    ok(&r);
    assert_eq!(
        r.events,
        vec![Event::PaymentCompleted {
            order: OrderId(1),
            payer: AccountId(ALICE),
            merchant: AccountId(SHOP),
            amount: 1_000
        }]
    );
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            pay(11, 1, PaymentSource::Balance, None),
        ),
        Rejection::OrderNotPayable,
    );
    let refund = |id, amount| TxKind::Refund {
        id: TransferId(id),
        order: OrderId(1),
        amount,
    };
    // Only the merchant refunds.
    rejected(
        &w.submit(a(ALICE), &[&alice], refund(20, 1)),
        Rejection::NotPermitted,
    );
    rejected(
        &w.submit(a(SHOP), &[&shop], refund(20, 1_001)),
        Rejection::RefundExceedsPaid,
    );
    let r = w.submit(a(SHOP), &[&shop], refund(20, 400));
    ok(&r);
    assert!(matches!(
        r.events[0],
        Event::Refunded {
            refunded_total: 400,
            ..
        }
    ));
    // The same refund again (a retry) applies nothing.
    rejected(
        &w.submit(a(SHOP), &[&shop], refund(20, 400)),
        Rejection::TransferExists,
    );
    rejected(
        &w.submit(a(SHOP), &[&shop], refund(21, 601)),
        Rejection::RefundExceedsPaid,
    );
    ok(&w.submit(a(SHOP), &[&shop], refund(22, 600)));
    // Fully refunded: a double refund is refused.
    rejected(
        &w.submit(a(SHOP), &[&shop], refund(23, 1)),
        Rejection::RefundExceedsPaid,
    );
    assert_eq!(w.balance(ALICE), 100_000);
    assert_eq!(w.balance(SHOP), 0);
    let order = query::order(&w.store, OrderId(1)).unwrap().unwrap();
    assert_eq!((order.paid, order.refunded), (1_000, 1_000));
}

#[test]
fn expired_order_and_currency_mismatch() {
    let (mut w, alice, _bob, _carol, shop) = world();
    ok(&create_order(&mut w, &shop, 2, 100, 5_000));
    w.advance(10_000);
    rejected(
        &w.submit(a(ALICE), &[&alice], pay(1, 2, PaymentSource::Balance, None)),
        Rejection::OrderExpired,
    );
    ok(&create_order(&mut w, &shop, 3, 100, 60_000));
    let hk = w.consumer(31, BANK_A, 0, Currency::HKD);
    rejected(
        &w.submit(a(31), &[&hk], pay(2, 3, PaymentSource::Balance, None)),
        Rejection::CurrencyMismatch,
    );
    rejected(
        &w.submit(
            a(SHOP),
            &[&shop],
            TxKind::CreateOrder {
                order: OrderId(4),
                amount: 1,
                currency: Currency::USD,
                expires_at_ms: w.time_ms + 60_000,
                items: Hash::ZERO,
            },
        ),
        Rejection::CurrencyMismatch,
    );
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            pay(3, 99, PaymentSource::Balance, None),
        ),
        Rejection::OrderNotFound,
    );
}

#[test]
fn escrow_confirmed_by_payer_or_released_at_expiry() {
    let (mut w, alice, bob, _carol, shop) = world();
    ok(&create_order(&mut w, &shop, 1, 700, 600_000));
    let r = w.submit(
        a(ALICE),
        &[&alice],
        pay(1, 1, PaymentSource::Balance, Some(100_000)),
    );
    ok(&r);
    assert!(matches!(
        r.events[0],
        Event::PaymentHeld { amount: 700, .. }
    ));
    assert_eq!(w.account(ALICE).available(), 100_000 - 700);
    assert_eq!(w.balance(SHOP), 0);
    rejected(
        &w.submit(
            a(BOB),
            &[&bob],
            TxKind::ConfirmReceipt { order: OrderId(1) },
        ),
        Rejection::NotPayer,
    );
    let r = w.submit(
        a(ALICE),
        &[&alice],
        TxKind::ConfirmReceipt { order: OrderId(1) },
    );
    ok(&r);
    assert_eq!(w.balance(SHOP), 700);
    assert!(query::hold(&w.store, TransferId(1)).unwrap().is_none());

    // Second order: nobody confirms; at expiry the escrow goes to the merchant.
    ok(&create_order(&mut w, &shop, 2, 300, 600_000));
    ok(&w.submit(
        a(ALICE),
        &[&alice],
        pay(2, 2, PaymentSource::Balance, Some(50_000)),
    ));
    w.advance(40_000);
    let out = w.block(vec![]);
    assert!(out.expired.is_empty());
    w.advance(20_000);
    let out = w.block(vec![]);
    assert_eq!(
        out.expired,
        vec![Event::PaymentCompleted {
            order: OrderId(2),
            payer: AccountId(ALICE),
            merchant: AccountId(SHOP),
            amount: 300
        }]
    );
    assert_eq!(w.balance(SHOP), 1_000);
    assert_eq!(
        query::order(&w.store, OrderId(2)).unwrap().unwrap().status,
        OrderStatus::Paid
    );
}

#[test]
fn cancel_open_order_and_void_held_payment() {
    let (mut w, alice, bob, _carol, shop) = world();
    ok(&create_order(&mut w, &shop, 1, 500, 600_000));
    rejected(
        &w.submit(a(BOB), &[&bob], TxKind::CancelOrder { order: OrderId(1) }),
        Rejection::NotPermitted,
    );
    ok(&w.submit(a(SHOP), &[&shop], TxKind::CancelOrder { order: OrderId(1) }));
    rejected(
        &w.submit(a(ALICE), &[&alice], pay(1, 1, PaymentSource::Balance, None)),
        Rejection::OrderNotPayable,
    );
    ok(&create_order(&mut w, &shop, 2, 500, 600_000));
    ok(&w.submit(
        a(ALICE),
        &[&alice],
        pay(2, 2, PaymentSource::Balance, Some(100_000)),
    ));
    let r = w.submit(
        a(ALICE),
        &[&alice],
        TxKind::CancelOrder { order: OrderId(2) },
    );
    ok(&r);
    assert!(r.events.contains(&Event::PaymentVoided {
        order: OrderId(2),
        payer: AccountId(ALICE),
        amount: 500
    }));
    assert_eq!(w.account(ALICE).available(), 100_000);
    // The payer voided its own payment; the merchant's order is open again, not cancelled.
    assert!(
        !r.events
            .contains(&Event::OrderCancelled { order: OrderId(2) })
    );
    let reopened = query::order(&w.store, OrderId(2)).unwrap().unwrap();
    assert_eq!((reopened.status, reopened.payer), (OrderStatus::Open, None));
    // The merchant may cancel its own held order: the hold is voided, the order cancelled.
    ok(&w.submit(
        a(ALICE),
        &[&alice],
        pay(3, 2, PaymentSource::Balance, Some(100_000)),
    ));
    let r = w.submit(a(SHOP), &[&shop], TxKind::CancelOrder { order: OrderId(2) });
    ok(&r);
    assert_eq!(
        r.events,
        vec![
            Event::PaymentVoided {
                order: OrderId(2),
                payer: AccountId(ALICE),
                amount: 500
            },
            Event::OrderCancelled { order: OrderId(2) }
        ]
    );
    assert_eq!(w.account(ALICE).available(), 100_000);
    rejected(
        &w.submit(a(SHOP), &[&shop], TxKind::CancelOrder { order: OrderId(2) }),
        Rejection::OrderNotCancellable,
    );
}

#[test]
fn card_payment_with_bank_cosignature_or_bank_approved_hold() {
    let (mut w, _alice, bob, _carol, shop) = world();
    let bank = institution_key(BANK_B);
    ok(&w.submit(
        a(BOB),
        &[&bob, &bank],
        TxKind::BindCard {
            card: card(5),
            bank: BANK_B,
        },
    ));
    // Co-signed by the card's bank: immediate.
    ok(&create_order(&mut w, &shop, 1, 800, 600_000));
    ok(&w.submit(
        a(BOB),
        &[&bob, &bank],
        pay(1, 1, PaymentSource::Card(card(5)), None),
    ));
    assert_eq!(w.balance(SHOP), 800);
    assert_eq!(
        w.institutional(BANK_B, AccountKind::BankIssuance, Currency::CNY)
            .balance(),
        -800
    );
    // Escrow of card money without the bank: refused.
    ok(&create_order(&mut w, &shop, 2, 100, 600_000));
    rejected(
        &w.submit(
            a(BOB),
            &[&bob],
            pay(2, 2, PaymentSource::Card(card(5)), Some(1_000)),
        ),
        Rejection::MissingCoSignature,
    );
    // Without the bank's co-signature: held until the bank approves.
    ok(&w.submit(
        a(BOB),
        &[&bob],
        pay(3, 2, PaymentSource::Card(card(5)), None),
    ));
    assert_eq!(w.balance(SHOP), 800);
    rejected(
        &w.institution(
            BANK_A,
            TxKind::AuthorizeCardPayment {
                order: OrderId(2),
                approve: true,
            },
        ),
        Rejection::NotPermitted,
    );
    ok(&w.institution(
        BANK_B,
        TxKind::AuthorizeCardPayment {
            order: OrderId(2),
            approve: true,
        },
    ));
    assert_eq!(w.balance(SHOP), 900);
    // Declined: the order opens again.
    ok(&create_order(&mut w, &shop, 3, 50, 600_000));
    ok(&w.submit(
        a(BOB),
        &[&bob],
        pay(4, 3, PaymentSource::Card(card(5)), None),
    ));
    ok(&w.institution(
        BANK_B,
        TxKind::AuthorizeCardPayment {
            order: OrderId(3),
            approve: false,
        },
    ));
    assert_eq!(
        query::order(&w.store, OrderId(3)).unwrap().unwrap().status,
        OrderStatus::Open
    );
    // Unanswered: voided at expiry.
    ok(&w.submit(
        a(BOB),
        &[&bob],
        pay(5, 3, PaymentSource::Card(card(5)), None),
    ));
    w.advance(CARD_AUTHORIZATION_MS);
    let out = w.block(vec![]);
    assert!(matches!(
        out.expired[0],
        Event::PaymentVoided { amount: 50, .. }
    ));
    assert_eq!(w.balance(SHOP), 900);
    // A refund of a card payment goes back to the card's bank.
    ok(&w.submit(
        a(SHOP),
        &[&shop],
        TxKind::Refund {
            id: TransferId(9),
            order: OrderId(1),
            amount: 800,
        },
    ));
    assert_eq!(
        w.institutional(BANK_B, AccountKind::BankIssuance, Currency::CNY)
            .balance(),
        -100
    );
}

/// Alice's code for any merchant, good for the ten minutes before `expires_at_ms`.
fn code(
    payer_key: &SigningKey,
    max_amount: Amount,
    expires_at_ms: u64,
    code_nonce: u64,
) -> (PaymentCode, tally_crypto::Signature) {
    signed_code(
        PaymentCode {
            payer: AccountId(ALICE),
            payer_key: payer_key.public_key(),
            max_amount,
            issued_at_ms: expires_at_ms.saturating_sub(PAYMENT_CODE_LIFETIME_MS_MAX),
            expires_at_ms,
            code_nonce,
            merchant: None,
        },
        payer_key,
    )
}

fn signed_code(code: PaymentCode, key: &SigningKey) -> (PaymentCode, tally_crypto::Signature) {
    let sig = code.sign(key, CHAIN);
    (code, sig)
}

fn collect(
    id: u128,
    code: PaymentCode,
    code_signature: tally_crypto::Signature,
    amount: Amount,
) -> TxKind {
    TxKind::CollectByCode {
        id: TransferId(id),
        code,
        code_signature,
        amount,
    }
}

#[test]
fn collect_by_code_once_unexpired_within_max() {
    let (mut w, alice, bob, _carol, shop) = world();
    let expires = w.time_ms + 120_000;
    let (c, sig) = code(&alice, 500, expires, 1);
    let r = w.submit(a(SHOP), &[&shop], collect(1, c, sig, 300));
    ok(&r);
    assert!(matches!(
        r.events[0],
        Event::CollectedByCode { amount: 300, .. }
    ));
    rejected(
        &w.submit(a(SHOP), &[&shop], collect(2, c, sig, 100)),
        Rejection::PaymentCodeUsed,
    );
    let (c2, sig2) = code(&alice, 500, expires, 2);
    rejected(
        &w.submit(a(SHOP), &[&shop], collect(3, c2, sig2, 501)),
        Rejection::PaymentCodeExceeded,
    );
    // A code signed by someone else's key for Alice's account.
    let (mut c3, _) = code(&bob, 500, expires, 3);
    c3.payer = AccountId(ALICE);
    let sig3 = c3.sign(&bob, CHAIN);
    rejected(
        &w.submit(a(SHOP), &[&shop], collect(4, c3, sig3, 1)),
        Rejection::WrongSigner,
    );
    w.advance(200_000);
    rejected(
        &w.submit(a(SHOP), &[&shop], collect(5, c2, sig2, 1)),
        Rejection::PaymentCodeExpired,
    );
    // A forged code signature fails verification before execution.
    let (c4, mut sig4) = code(&alice, 500, w.time_ms + 60_000, 4);
    sig4.0[0] ^= 1;
    let tx = w.sign(a(SHOP), &[&shop], collect(6, c4, sig4, 1));
    let out = verify_transactions(CHAIN, vec![tx], &mut tally_crypto::KeyCache::default());
    assert_eq!(out[0], Err(VerifyError::BadPaymentCode));
    assert_eq!(w.balance(SHOP), 300);
}

#[test]
fn pay_merchant_and_settle_minus_fee() {
    let (mut w, alice, _bob, _carol, shop) = world();
    let r = w.submit(
        a(ALICE),
        &[&alice],
        TxKind::PayMerchant {
            id: TransferId(1),
            merchant: AccountId(SHOP),
            amount: 10_050,
            reference: Memo::NONE,
        },
    );
    ok(&r);
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            TxKind::PayMerchant {
                id: TransferId(2),
                merchant: AccountId(BOB),
                amount: 1,
                reference: Memo::NONE,
            },
        ),
        Rejection::WrongAccountKind,
    );
    rejected(
        &w.submit(
            a(SHOP),
            &[&shop],
            TxKind::SettleMerchant {
                id: TransferId(3),
                amount: 10_051,
            },
        ),
        Rejection::InsufficientFunds,
    );
    let r = w.submit(
        a(SHOP),
        &[&shop],
        TxKind::SettleMerchant {
            id: TransferId(4),
            amount: 10_050,
        },
    );
    ok(&r);
    // 1% of 10_050 = 100.5, rounded down to 100; the fee crosses to the platform's bank.
    assert_eq!(
        r.events,
        vec![
            Event::ObligationRecorded {
                currency: Currency::CNY,
                from: InstitutionId(1),
                to: InstitutionId(3),
                amount: 100,
            },
            Event::MerchantSettled {
                id: TransferId(4),
                merchant: AccountId(SHOP),
                bank: BANK_A,
                net: 9_950,
                fee: 100
            }
        ]
    );
    assert_eq!(
        w.institutional(PLATFORM, AccountKind::Fee, Currency::CNY)
            .balance(),
        100
    );
    assert_eq!(
        w.institutional(BANK_A, AccountKind::BankSettlement, Currency::CNY)
            .balance(),
        9_950
    );
}

// ---------------------------------------------------------------- bills

#[test]
fn bills_are_paid_exactly_once() {
    let (mut w, alice, ..) = world();
    let biller_key = key(40);
    let r = w.submit(
        Party::Institution(BANK_B),
        &[&institution_key(BANK_B), &biller_key],
        TxKind::RegisterBiller {
            account: AccountId(40),
            key: biller_key.public_key(),
            currency: Currency::CNY,
            identity: identity(40),
        },
    );
    ok(&r);
    let issue = TxKind::IssueBill {
        bill: BillId(1),
        customer: Hash::digest("customer", b"meter-17"),
        amount: 2_345,
        due_ms: w.time_ms + DAY_MS,
    };
    rejected(
        &w.submit(a(ALICE), &[&alice], issue.clone()),
        Rejection::WrongAccountKind,
    );
    ok(&w.submit(a(40), &[&biller_key], issue.clone()));
    rejected(
        &w.submit(a(40), &[&biller_key], issue),
        Rejection::BillExists,
    );
    let pay = |id, amount| TxKind::PayBill {
        id: TransferId(id),
        bill: BillId(1),
        amount,
    };
    rejected(
        &w.submit(a(ALICE), &[&alice], pay(1, 2_344)),
        Rejection::BillAmountMismatch,
    );
    let r = w.submit(a(ALICE), &[&alice], pay(2, 2_345));
    ok(&r);
    assert!(
        r.events
            .iter()
            .any(|e| matches!(e, Event::BillPaid { amount: 2_345, .. }))
    );
    rejected(
        &w.submit(a(ALICE), &[&alice], pay(3, 2_345)),
        Rejection::BillAlreadyPaid,
    );
    assert_eq!(w.balance(40), 2_345);
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            TxKind::PayBill {
                id: TransferId(4),
                bill: BillId(2),
                amount: 1,
            },
        ),
        Rejection::BillNotFound,
    );
}

// ---------------------------------------------------------------- cross-border

const USD_BENEFICIARY: u128 = 70;

fn fx_world() -> (World, SigningKey) {
    let (mut w, alice, ..) = world();
    w.consumer(USD_BENEFICIARY, BANK_B, 0, Currency::USD);
    // 1 fen = 0.138 cents.
    let r = w.institution(
        FX,
        TxKind::PublishFxRate {
            base: Currency::CNY,
            quote: Currency::USD,
            rate: 138_000_000,
            valid_from_ms: w.time_ms,
            valid_until_ms: w.time_ms + 3_600_000,
        },
    );
    ok(&r);
    (w, alice)
}

fn remit(id: u128, to: u128, amount: FxAmount) -> TxKind {
    TxKind::CrossBorderTransfer {
        id: TransferId(id),
        provider: FX,
        beneficiary: AccountId(to),
        amount,
        travel_rule: Vec::new(),
    }
}

#[test]
fn cross_border_send_and_receive_with_rounding() {
    let (mut w, alice) = fx_world();
    let r = w.submit(
        a(ALICE),
        &[&alice],
        remit(
            1,
            USD_BENEFICIARY,
            FxAmount::Send {
                debit: 10_001,
                min_credit: 1_380,
            },
        ),
    );
    ok(&r);
    // 10_001 × 0.138 = 1380.138 → 1380 (down). The FX provider owes the beneficiary's
    // bank what it credits, and is owed what it debited.
    assert_eq!(
        r.events,
        vec![
            Event::ObligationRecorded {
                currency: Currency::CNY,
                from: InstitutionId(1),
                to: InstitutionId(4),
                amount: 10_001,
            },
            Event::ObligationRecorded {
                currency: Currency::USD,
                from: InstitutionId(4),
                to: InstitutionId(2),
                amount: 1_380,
            },
            Event::RemittanceCredited {
                id: TransferId(1),
                sender: AccountId(ALICE),
                beneficiary: AccountId(USD_BENEFICIARY),
                debited: 10_001,
                debit_currency: Currency::CNY,
                credited: 1_380,
                credit_currency: Currency::USD,
                travel_rule_for: Vec::new(),
            }
        ]
    );
    // 100 cents need 724.6 fen → 725 (up).
    ok(&w.submit(
        a(ALICE),
        &[&alice],
        remit(
            2,
            USD_BENEFICIARY,
            FxAmount::Receive {
                credit: 100,
                max_debit: 725,
            },
        ),
    ));
    assert_eq!(w.balance(USD_BENEFICIARY), 1_480);
    assert_eq!(w.balance(ALICE), 100_000 - 10_001 - 725);
    assert_eq!(
        w.institutional(FX, AccountKind::FxLiquidity, Currency::USD)
            .balance(),
        -1_480
    );
}

#[test]
fn cross_border_rejections() {
    let (mut w, alice) = fx_world();
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            remit(
                1,
                USD_BENEFICIARY,
                FxAmount::Send {
                    debit: 10_000,
                    min_credit: 1_381,
                },
            ),
        ),
        Rejection::FxSlippage,
    );
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            remit(
                2,
                USD_BENEFICIARY,
                FxAmount::Receive {
                    credit: 100,
                    max_debit: 724,
                },
            ),
        ),
        Rejection::FxSlippage,
    );
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            remit(
                3,
                USD_BENEFICIARY,
                FxAmount::Send {
                    debit: 500_001,
                    min_credit: 0,
                },
            ),
        ),
        Rejection::CorridorLimitExceeded,
    );
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            remit(
                4,
                BOB,
                FxAmount::Send {
                    debit: 10,
                    min_credit: 0,
                },
            ),
        ),
        Rejection::CurrencyMismatch,
    );
    let hkd = w.consumer(71, BANK_B, 0, Currency::HKD);
    drop(hkd);
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            remit(
                5,
                71,
                FxAmount::Send {
                    debit: 10,
                    min_credit: 0,
                },
            ),
        ),
        Rejection::CorridorClosed,
    );
    // Sanctioned after registration: cross-border credit is blocked.
    ok(&w.institution(
        REGULATOR,
        TxKind::AddSanction {
            identity: identity(USD_BENEFICIARY),
        },
    ));
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            remit(
                6,
                USD_BENEFICIARY,
                FxAmount::Send {
                    debit: 10,
                    min_credit: 0,
                },
            ),
        ),
        Rejection::Sanctioned,
    );
    ok(&w.institution(
        REGULATOR,
        TxKind::RemoveSanction {
            identity: identity(USD_BENEFICIARY),
        },
    ));
    w.advance(3_600_000);
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            remit(
                7,
                USD_BENEFICIARY,
                FxAmount::Send {
                    debit: 10,
                    min_credit: 0,
                },
            ),
        ),
        Rejection::RateExpired,
    );
    let usd = key(USD_BENEFICIARY as u64);
    w.fund(USD_BENEFICIARY, BANK_B, 1_000);
    rejected(
        &w.submit(
            a(USD_BENEFICIARY),
            &[&usd],
            TxKind::CrossBorderTransfer {
                id: TransferId(8),
                provider: FX,
                beneficiary: AccountId(ALICE),
                amount: FxAmount::Send {
                    debit: 10,
                    min_credit: 0,
                },
                travel_rule: Vec::new(),
            },
        ),
        Rejection::CorridorClosed,
    );
    assert_eq!(w.balance(ALICE), 100_000);
    // Only an FX provider publishes rates.
    rejected(
        &w.institution(
            BANK_A,
            TxKind::PublishFxRate {
                base: Currency::CNY,
                quote: Currency::USD,
                rate: 1,
                valid_from_ms: 0,
                valid_until_ms: 1,
            },
        ),
        Rejection::RoleRequired,
    );
}

// ---------------------------------------------------------------- interbank

#[test]
fn settlement_cycle_nets_multilaterally_and_closes_on_confirmation() {
    let (mut w, alice, _bob, carol, _shop) = world();
    rejected(
        &w.institution(BANK_A, TxKind::SettlementCycle),
        Rejection::NothingToSettle,
    );
    w.fund(CAROL, BANK_B, 1_000);
    ok(&w.submit(a(ALICE), &[&alice], transfer(1, CAROL, 700)));
    ok(&w.submit(a(CAROL), &[&carol], transfer(2, ALICE, 200)));
    let r = w.institution(PLATFORM, TxKind::SettlementCycle);
    ok(&r);
    assert_eq!(
        r.events,
        vec![Event::SettlementCycleOpened {
            cycle: CycleId(1),
            positions: vec![
                NetPosition {
                    currency: Currency::CNY,
                    institution: BANK_A,
                    net: -500
                },
                NetPosition {
                    currency: Currency::CNY,
                    institution: BANK_B,
                    net: 500
                },
            ]
        }]
    );
    rejected(
        &w.institution(BANK_A, TxKind::SettlementCycle),
        Rejection::NothingToSettle,
    );
    rejected(
        &w.institution(BANK_A, TxKind::ConfirmSettlement { cycle: CycleId(1) }),
        Rejection::NotAReceiver,
    );
    rejected(
        &w.institution(BANK_B, TxKind::ConfirmSettlement { cycle: CycleId(2) }),
        Rejection::CycleNotFound,
    );
    let r = w.institution(BANK_B, TxKind::ConfirmSettlement { cycle: CycleId(1) });
    ok(&r);
    assert_eq!(
        r.events.last(),
        Some(&Event::SettlementClosed { cycle: CycleId(1) })
    );
    rejected(
        &w.institution(BANK_B, TxKind::ConfirmSettlement { cycle: CycleId(1) }),
        Rejection::AlreadyConfirmed,
    );
    rejected(
        &w.institution(REGULATOR, TxKind::SettlementCycle),
        Rejection::RoleRequired,
    );
}

// ---------------------------------------------------------------- governance

/// Attacker: a governance quorum talked into adding an institution whose name passes for
/// another's on every page and report ("institution 1" beside "Institution 1"), or hides
/// text with control and bidi characters. Names are unique ignoring case and printable.
#[test]
fn an_institution_cannot_take_a_name_that_passes_for_another() {
    let (mut w, ..) = world();
    let gov = governance_keys();
    let bank = institution_key(BANK_A);
    let add = |id: u32, name: &str| {
        TxKind::Govern(GovernanceAction::AddInstitution {
            id: InstitutionId(id),
            key: institution_key(InstitutionId(id)).public_key(),
            roles: Roles::BANK,
            name: name.into(),
        })
    };
    let taken = format!("institution {}", BANK_A.0);
    let too_long = "x".repeat(65);
    let refused = [
        (taken.as_str(), Rejection::InstitutionNameTaken),
        ("", Rejection::InvalidField),
        (" Bank C", Rejection::InvalidField),
        ("Bank C ", Rejection::InvalidField),
        ("Bank  C", Rejection::InvalidField),
        ("Bank\tC", Rejection::InvalidField),
        ("Bank\u{202E}C", Rejection::InvalidField),
        ("Bank\u{200B}C", Rejection::InvalidField),
        ("Bank C\u{E0041}", Rejection::InvalidField),
        ("Bank C\u{FE0F}", Rejection::InvalidField),
        ("B\u{0430}nk C", Rejection::InvalidField),
        ("Bank\u{3000}C", Rejection::InvalidField),
        (too_long.as_str(), Rejection::InvalidField),
    ];
    for (name, why) in refused {
        rejected(
            &w.submit(
                Party::Institution(BANK_A),
                &[&bank, &gov[0], &gov[1]],
                add(11, name),
            ),
            why,
        );
        assert!(
            query::institution(&w.store, InstitutionId(11))
                .unwrap()
                .is_none(),
            "{name:?}"
        );
    }
    let longest = format!("{}x", "銀".repeat(21));
    ok(&w.submit(
        Party::Institution(BANK_A),
        &[&bank, &gov[0], &gov[1]],
        add(11, &longest),
    ));
    ok(&w.submit(
        Party::Institution(BANK_A),
        &[&bank, &gov[0], &gov[1]],
        add(12, "Bank C"),
    ));
    let named: Vec<(u32, String)> = query::institutions(&w.store)
        .unwrap()
        .into_iter()
        .map(|i| (i.id.0, i.name))
        .filter(|(id, _)| *id >= 11)
        .collect();
    assert_eq!(named, [(11, longest), (12, "Bank C".to_string())]);
    // Two in one block: the second sees the first.
    let first = w.sign(
        Party::Institution(BANK_A),
        &[&bank, &gov[0], &gov[1]],
        add(13, "Bank D"),
    );
    let second = w.sign(
        Party::Institution(BANK_B),
        &[&institution_key(BANK_B), &gov[0], &gov[1]],
        add(14, "bank d"),
    );
    let out = w.block(vec![first, second]);
    ok(&out.receipts[0]);
    rejected(&out.receipts[1], Rejection::InstitutionNameTaken);
}

#[test]
fn governance_adds_institutions_and_changes_rules() {
    let (mut w, alice, ..) = world();
    let gov = governance_keys();
    let bank = institution_key(BANK_A);
    let new_bank = institution_key(InstitutionId(9));
    let add = TxKind::Govern(GovernanceAction::AddInstitution {
        id: InstitutionId(9),
        key: new_bank.public_key(),
        roles: Roles::BANK.with(Roles::KYC),
        name: "Bank Nine".into(),
    });
    ok(&w.submit(
        Party::Institution(BANK_A),
        &[&bank, &gov[0], &gov[1]],
        add.clone(),
    ));
    rejected(
        &w.submit(Party::Institution(BANK_A), &[&bank, &gov[0], &gov[1]], add),
        Rejection::InstitutionExists,
    );
    w.consumer(90, InstitutionId(9), 0, Currency::CNY);
    ok(&w.submit(
        Party::Institution(BANK_A),
        &[&bank, &gov[1], &gov[2]],
        TxKind::Govern(GovernanceAction::SetTierLimits {
            tier: 1,
            single_max: 10,
            daily_max: 20,
            yearly_max: 1_000,
            cross_border_yearly_max: 100,
        }),
    ));
    rejected(
        &w.submit(a(ALICE), &[&alice], transfer(1, 90, 11)),
        Rejection::OverSingleLimit,
    );
    ok(&w.submit(a(ALICE), &[&alice], transfer(2, 90, 10)));
    // The rule change took effect within the block it was applied in, too.
    let gov_tx = w.sign(
        Party::Institution(BANK_A),
        &[&bank, &gov[0], &gov[2]],
        TxKind::Govern(GovernanceAction::SetTierLimits {
            tier: 1,
            single_max: 1_000,
            daily_max: 2_000,
            yearly_max: 100_000,
            cross_border_yearly_max: 1_000,
        }),
    );
    let pay = w.sign(a(ALICE), &[&alice], transfer(3, 90, 500));
    let out = w.block(vec![gov_tx, pay]);
    ok(&out.receipts[0]);
    ok(&out.receipts[1]);
}

// ---------------------------------------------------------------- blocks, root

#[test]
fn blocks_must_follow_the_head_and_roots_chain() {
    let (w, alice, ..) = world();
    let head = Ledger::chain_head(&w.store).unwrap().unwrap();
    assert_eq!(head.height, w.height);
    let err = Ledger::execute_block(
        &w.store,
        BlockContext {
            height: w.height + 2,
            time_ms: w.time_ms + 1,
        },
        &[],
    );
    assert!(matches!(err, Err(ExecutionError::BlockOutOfOrder { .. })));
    // Two different blocks at the same height give different roots; the same block, the same.
    let tx = w.sign(a(ALICE), &[&alice], transfer(1, BOB, 1));
    let v = verify_transactions(CHAIN, vec![tx], &mut tally_crypto::KeyCache::default())
        .pop()
        .unwrap()
        .unwrap();
    let ctx = BlockContext {
        height: w.height + 1,
        time_ms: w.time_ms + 1,
    };
    let one = Ledger::execute_block(&w.store, ctx, std::slice::from_ref(&v)).unwrap();
    let again = Ledger::execute_block(&w.store, ctx, std::slice::from_ref(&v)).unwrap();
    let empty = Ledger::execute_block(&w.store, ctx, &[]).unwrap();
    assert_eq!(one, again);
    assert_ne!(one.state_root, empty.state_root);
    assert_ne!(one.state_root, head.state_root);
    assert!(one.writes.windows(2).all(|p| p[0].key < p[1].key));
}

#[test]
fn genesis_only_on_an_empty_store_and_validated() {
    let w = World::new();
    assert!(matches!(
        genesis().apply(&w.store),
        Err(ExecutionError::NotEmpty)
    ));
    let mut bad = genesis();
    bad.governance_threshold = 4;
    assert!(matches!(
        bad.apply(&MemoryStore::new()),
        Err(ExecutionError::Genesis(_))
    ));
    let mut bad = genesis();
    bad.platform = BANK_A;
    assert!(matches!(
        bad.apply(&MemoryStore::new()),
        Err(ExecutionError::Genesis(_))
    ));
    let a1 = genesis().apply(&MemoryStore::new()).unwrap();
    let a2 = genesis().apply(&MemoryStore::new()).unwrap();
    assert_eq!(a1, a2);
}

// ---------------------------------------------------------------- no way around the rules

/// Binds card `n` of `bank` to `id`'s wallet.
fn bind(w: &mut World, id: u128, who: &SigningKey, n: u8, bank: InstitutionId) {
    ok(&w.submit(
        a(id),
        &[who, &institution_key(bank)],
        TxKind::BindCard {
            card: card(n),
            bank,
        },
    ));
}

fn freeze(w: &mut World, id: u128) {
    ok(&w.institution(
        REGULATOR,
        TxKind::Freeze {
            account: AccountId(id),
            reason: Hash::digest("case", b"card"),
        },
    ));
}

#[test]
fn a_customer_whose_wallet_is_frozen_cannot_pay_by_card_even_with_the_bank() {
    let (mut w, alice, ..) = world();
    let shop = key(SHOP as u64);
    let bank = institution_key(BANK_A);
    bind(&mut w, ALICE, &alice, 7, BANK_A);
    ok(&create_order(&mut w, &shop, 1, 500, 600_000));
    freeze(&mut w, ALICE);
    let issuance_before = w.institutional(BANK_A, AccountKind::BankIssuance, Currency::CNY);
    for keys in [vec![&alice, &bank], vec![&alice]] {
        rejected(
            &w.submit(
                a(ALICE),
                &keys,
                pay(1, 1, PaymentSource::Card(card(7)), None),
            ),
            Rejection::AccountFrozen,
        );
    }
    // Nothing moved and nothing was reserved on the bank's issuance account.
    assert_eq!(
        w.institutional(BANK_A, AccountKind::BankIssuance, Currency::CNY),
        issuance_before
    );
    assert_eq!(
        query::order(&w.store, OrderId(1)).unwrap().unwrap().status,
        OrderStatus::Open
    );
    ok(&w.institution(
        REGULATOR,
        TxKind::Unfreeze {
            account: AccountId(ALICE),
        },
    ));
    ok(&w.submit(
        a(ALICE),
        &[&alice, &bank],
        pay(2, 1, PaymentSource::Card(card(7)), None),
    ));
}

#[test]
fn a_customer_paying_by_card_meets_the_same_limits_and_second_factor_as_from_balance() {
    let (mut w, _alice, bob, ..) = world();
    let shop = key(SHOP as u64);
    let bank = institution_key(BANK_A);
    bind(&mut w, BOB, &bob, 8, BANK_A);
    // Bob's tier 0: 10_000 a payment, 20_000 a day, whatever the source.
    ok(&create_order(&mut w, &shop, 1, TIER0_SINGLE + 1, 600_000));
    rejected(
        &w.submit(
            a(BOB),
            &[&bob, &bank],
            pay(1, 1, PaymentSource::Card(card(8)), None),
        ),
        Rejection::OverSingleLimit,
    );
    for order in 2..=3 {
        ok(&create_order(&mut w, &shop, order, TIER0_SINGLE, 600_000));
        ok(&w.submit(
            a(BOB),
            &[&bob, &bank],
            pay(order, order, PaymentSource::Card(card(8)), None),
        ));
    }
    // Card payments count against the day: the next card or balance payment is over it.
    ok(&create_order(&mut w, &shop, 4, 1, 600_000));
    rejected(
        &w.submit(
            a(BOB),
            &[&bob, &bank],
            pay(4, 4, PaymentSource::Card(card(8)), None),
        ),
        Rejection::OverDailyLimit,
    );
    w.fund(BOB, BANK_A, 100);
    rejected(
        &w.submit(a(BOB), &[&bob], pay(5, 4, PaymentSource::Balance, None)),
        Rejection::OverDailyLimit,
    );
    w.advance(DAY_MS);
    // A second factor above 50: the card path asks for it as the balance path does.
    let token = key(780);
    ok(&w.submit(
        a(BOB),
        &[&bob, &token],
        TxKind::SetSecondFactor {
            key: Some(token.public_key()),
            threshold: 50,
        },
    ));
    ok(&create_order(&mut w, &shop, 6, 51, 600_000));
    for (id, source, keys) in [
        (6, PaymentSource::Card(card(8)), vec![&bob, &bank]),
        (7, PaymentSource::Card(card(8)), vec![&bob]),
        (8, PaymentSource::Balance, vec![&bob]),
    ] {
        rejected(
            &w.submit(a(BOB), &keys, pay(id, 6, source, None)),
            Rejection::SecondFactorRequired,
        );
    }
    ok(&w.submit(
        a(BOB),
        &[&bob, &bank, &token],
        pay(9, 6, PaymentSource::Card(card(8)), None),
    ));
}

#[test]
fn a_stranger_holding_an_order_by_card_cannot_cancel_it_nor_tie_up_the_bank() {
    let (mut w, alice, bob, carol, shop) = world();
    bind(&mut w, BOB, &bob, 9, BANK_B);
    ok(&create_order(&mut w, &shop, 1, 700, 600_000));
    // Bob pays by card without the bank's consent: a hold on bank B's issuance account.
    ok(&w.submit(
        a(BOB),
        &[&bob],
        pay(1, 1, PaymentSource::Card(card(9)), None),
    ));
    assert_eq!(w.account(BOB).holder.card_authorizations, 1);
    // Carol, a stranger to the payment, cannot cancel it.
    rejected(
        &w.submit(
            a(CAROL),
            &[&carol],
            TxKind::CancelOrder { order: OrderId(1) },
        ),
        Rejection::NotPermitted,
    );
    // Bob's cancel voids his own hold and opens the order again; it does not cancel it.
    let r = w.submit(a(BOB), &[&bob], TxKind::CancelOrder { order: OrderId(1) });
    ok(&r);
    assert_eq!(
        r.events,
        vec![Event::PaymentVoided {
            order: OrderId(1),
            payer: AccountId(BOB),
            amount: 700
        }]
    );
    assert_eq!(w.account(BOB).holder.card_authorizations, 0);
    let order = query::order(&w.store, OrderId(1)).unwrap().unwrap();
    assert_eq!((order.status, order.payer), (OrderStatus::Open, None));
    // Now Bob is no payer: the open order is the merchant's alone to cancel.
    rejected(
        &w.submit(a(BOB), &[&bob], TxKind::CancelOrder { order: OrderId(1) }),
        Rejection::NotPermitted,
    );
    ok(&w.submit(a(ALICE), &[&alice], pay(2, 1, PaymentSource::Balance, None)));
    // At most two card payments of one wallet wait for the bank at once: the bank's
    // headroom a wallet can reserve without consent is bounded.
    for order in 2..=4 {
        ok(&create_order(&mut w, &shop, order, 100, 600_000));
    }
    ok(&w.submit(
        a(BOB),
        &[&bob],
        pay(3, 2, PaymentSource::Card(card(9)), None),
    ));
    ok(&w.submit(
        a(BOB),
        &[&bob],
        pay(4, 3, PaymentSource::Card(card(9)), None),
    ));
    rejected(
        &w.submit(
            a(BOB),
            &[&bob],
            pay(5, 4, PaymentSource::Card(card(9)), None),
        ),
        Rejection::CardAuthorizationsExceeded,
    );
    assert_eq!(
        w.institutional(BANK_B, AccountKind::BankIssuance, Currency::CNY)
            .debits_pending,
        200
    );
    // The bank's answer frees a place; so does expiry.
    ok(&w.institution(
        BANK_B,
        TxKind::AuthorizeCardPayment {
            order: OrderId(2),
            approve: false,
        },
    ));
    ok(&w.submit(
        a(BOB),
        &[&bob],
        pay(6, 4, PaymentSource::Card(card(9)), None),
    ));
    assert_eq!(w.account(BOB).holder.card_authorizations, 2);
    w.advance(CARD_AUTHORIZATION_MS);
    let out = w.block(vec![]);
    assert_eq!(out.expired.len(), 2);
    assert_eq!(w.account(BOB).holder.card_authorizations, 0);
    assert_eq!(
        w.institutional(BANK_B, AccountKind::BankIssuance, Currency::CNY)
            .debits_pending,
        0
    );
}

#[test]
fn a_merchant_or_biller_cannot_pay_wallets_or_shops_directly() {
    let (mut w, alice, ..) = world();
    let shop = key(SHOP as u64);
    ok(&w.submit(
        a(ALICE),
        &[&alice],
        TxKind::PayMerchant {
            id: TransferId(1),
            merchant: AccountId(SHOP),
            amount: 5_000,
            reference: Memo::NONE,
        },
    ));
    let biller = key(31);
    ok(&w.submit(
        Party::Institution(BANK_A),
        &[&institution_key(BANK_A), &biller],
        TxKind::RegisterBiller {
            account: AccountId(31),
            key: biller.public_key(),
            currency: Currency::CNY,
            identity: identity(31),
        },
    ));
    ok(&w.submit(
        a(31),
        &[&biller],
        TxKind::IssueBill {
            bill: BillId(1),
            customer: Hash::digest("customer", b"1"),
            amount: 100,
            due_ms: w.time_ms + DAY_MS,
        },
    ));
    let before = w.account(SHOP);
    // The shop tries every consumer flow to move its takings without settlement's fee.
    for kind in [
        transfer(2, ALICE, 1_000),
        TxKind::PayMerchant {
            id: TransferId(3),
            merchant: AccountId(SHOP),
            amount: 1_000,
            reference: Memo::NONE,
        },
        TxKind::CrossBorderTransfer {
            id: TransferId(4),
            provider: FX,
            beneficiary: AccountId(ALICE),
            amount: FxAmount::Send {
                debit: 1_000,
                min_credit: 0,
            },
            travel_rule: Vec::new(),
        },
        TxKind::PayBill {
            id: TransferId(7),
            bill: BillId(1),
            amount: 100,
        },
    ] {
        rejected(
            &w.submit(a(SHOP), &[&shop], kind),
            Rejection::WrongAccountKind,
        );
    }
    let after = w.account(SHOP);
    assert_eq!(after.balance(), before.balance());
    assert_eq!(after.holder.nonce, before.holder.nonce + 4);
    rejected(
        &w.submit(a(31), &[&biller], transfer(5, ALICE, 1)),
        Rejection::WrongAccountKind,
    );
    // Settlement is the merchant's way out, with its fee.
    ok(&w.submit(
        a(SHOP),
        &[&shop],
        TxKind::SettleMerchant {
            id: TransferId(6),
            amount: 5_000,
        },
    ));
}

fn sanction(w: &mut World, who: Hash, add: bool) {
    let kind = if add {
        TxKind::AddSanction { identity: who }
    } else {
        TxKind::RemoveSanction { identity: who }
    };
    ok(&w.institution(REGULATOR, kind));
}

#[test]
fn a_customer_listed_after_registration_neither_sends_nor_receives_at_any_of_its_accounts() {
    let (mut w, alice) = fx_world();
    let bob = key(BOB as u64);
    let shop = key(SHOP as u64);
    let bank_a = institution_key(BANK_A);
    // Alice has two more wallets under the same identity, at bank B, in CNY and USD.
    let alice_b = w.person_wallet(14, BANK_B, 1, Currency::CNY, identity(ALICE));
    w.person_wallet(15, BANK_B, 1, Currency::USD, identity(ALICE));
    w.fund(14, BANK_B, 1_000);
    w.fund(BOB, BANK_A, 5_000);
    bind(&mut w, ALICE, &alice, 7, BANK_A);
    let biller = key(31);
    ok(&w.submit(
        Party::Institution(BANK_A),
        &[&bank_a, &biller],
        TxKind::RegisterBiller {
            account: AccountId(31),
            key: biller.public_key(),
            currency: Currency::CNY,
            identity: identity(31),
        },
    ));
    ok(&w.submit(
        a(31),
        &[&biller],
        TxKind::IssueBill {
            bill: BillId(1),
            customer: Hash::digest("customer", b"alice"),
            amount: 100,
            due_ms: w.time_ms + DAY_MS,
        },
    ));
    // Before the listing: a payment into escrow, a paid order, a payment code.
    for order in 1..=3 {
        ok(&create_order(&mut w, &shop, order, 300, 600_000));
    }
    ok(&w.submit(
        a(ALICE),
        &[&alice],
        pay(1, 1, PaymentSource::Balance, Some(60_000)),
    ));
    ok(&w.submit(a(ALICE), &[&alice], pay(2, 2, PaymentSource::Balance, None)));
    let (c, sig) = code(&alice, 500, w.time_ms + 300_000, 1);

    sanction(&mut w, identity(ALICE), true);
    let alice_before = w.account(ALICE);
    let tried: Vec<(u128, Vec<&SigningKey>, TxKind)> = vec![
        // Sending, from each of her wallets and by every flow.
        (ALICE, vec![&alice], transfer(10, BOB, 10)),
        (14, vec![&alice_b], transfer(11, BOB, 10)),
        (
            ALICE,
            vec![&alice],
            pay(12, 3, PaymentSource::Balance, None),
        ),
        (
            ALICE,
            vec![&alice, &bank_a],
            pay(13, 3, PaymentSource::Card(card(7)), None),
        ),
        (
            ALICE,
            vec![&alice],
            TxKind::PayMerchant {
                id: TransferId(14),
                merchant: AccountId(SHOP),
                amount: 10,
                reference: Memo::NONE,
            },
        ),
        (SHOP, vec![&shop], collect(15, c, sig, 10)),
        (
            ALICE,
            vec![&alice],
            TxKind::PayBill {
                id: TransferId(16),
                bill: BillId(1),
                amount: 100,
            },
        ),
        (
            ALICE,
            vec![&alice],
            remit(
                17,
                USD_BENEFICIARY,
                FxAmount::Send {
                    debit: 1_000,
                    min_credit: 1,
                },
            ),
        ),
        (
            ALICE,
            vec![&alice, &bank_a],
            TxKind::Withdraw {
                id: TransferId(18),
                card: card(7),
                amount: 10,
            },
        ),
        // Receiving, at each of her wallets and by every flow.
        (BOB, vec![&bob], transfer(19, ALICE, 10)),
        (BOB, vec![&bob], transfer(20, 14, 10)),
        (
            BOB,
            vec![&bob],
            remit(
                21,
                15,
                FxAmount::Send {
                    debit: 1_000,
                    min_credit: 1,
                },
            ),
        ),
        (
            ALICE,
            vec![&alice, &bank_a],
            TxKind::TopUp {
                id: TransferId(22),
                card: card(7),
                amount: 10,
            },
        ),
        (
            SHOP,
            vec![&shop],
            TxKind::Refund {
                id: TransferId(23),
                order: OrderId(2),
                amount: 100,
            },
        ),
    ];
    for (sender, keys, kind) in tried {
        let what = format!("{kind:?}");
        let r = w.submit(a(sender), &keys, kind);
        assert_eq!(r.result, Err(Rejection::Sanctioned), "{what}: {r:?}");
    }
    let mut alice_after = w.account(ALICE);
    alice_after.holder.nonce = alice_before.holder.nonce;
    assert_eq!(alice_after, alice_before, "nothing moved but nonces");
    assert_eq!(w.balance(14), 1_000);
    assert_eq!(w.balance(15), 0);

    // The regulator's page: every account of the listed identity, by one indexed scan.
    let page = query::sanctioned_accounts(&w.store, None, 10).unwrap();
    let listed: Vec<(Hash, u128)> = page
        .accounts
        .iter()
        .map(|s| (s.identity, s.account.id.0))
        .collect();
    assert_eq!(
        listed,
        vec![
            (identity(ALICE), ALICE),
            (identity(ALICE), 14),
            (identity(ALICE), 15)
        ]
    );
    assert_eq!(page.next, None);
    // Pages of one go on where the last stopped and end with the list.
    let mut cursor = None;
    let mut paged = Vec::new();
    loop {
        let page = query::sanctioned_accounts(&w.store, cursor, 1).unwrap();
        paged.extend(page.accounts.iter().map(|s| s.account.id.0));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, vec![ALICE, 14, 15]);

    // The hold placed before the listing resolves by its rules: escrow expiry pays the shop.
    w.advance(60_000);
    let out = w.block(vec![]);
    assert!(
        matches!(
            out.expired[..],
            [Event::PaymentCompleted { amount: 300, .. }]
        ),
        "{:?}",
        out.expired
    );

    // Taken off the list: she sends and receives again.
    sanction(&mut w, identity(ALICE), false);
    ok(&w.submit(a(ALICE), &[&alice], transfer(30, BOB, 10)));
    ok(&w.submit(a(BOB), &[&bob], transfer(31, 14, 10)));
    assert!(
        query::sanctioned_accounts(&w.store, None, 10)
            .unwrap()
            .accounts
            .iter()
            .all(|s| s.identity != identity(ALICE))
    );
}

#[test]
fn a_merchant_listed_after_registration_is_neither_paid_nor_settled() {
    let (mut w, alice, ..) = world();
    let shop = key(SHOP as u64);
    let pay_shop = |id: u128| TxKind::PayMerchant {
        id: TransferId(id),
        merchant: AccountId(SHOP),
        amount: 1_000,
        reference: Memo::NONE,
    };
    ok(&w.submit(a(ALICE), &[&alice], pay_shop(1)));
    sanction(&mut w, identity(SHOP), true);
    rejected(
        &w.submit(a(ALICE), &[&alice], pay_shop(2)),
        Rejection::Sanctioned,
    );
    let settle = |id: u128| TxKind::SettleMerchant {
        id: TransferId(id),
        amount: 1_000,
    };
    rejected(
        &w.submit(a(SHOP), &[&shop], settle(3)),
        Rejection::Sanctioned,
    );
    sanction(&mut w, identity(SHOP), false);
    ok(&w.submit(a(SHOP), &[&shop], settle(4)));
}

#[test]
fn a_customer_with_several_wallets_at_one_bank_has_one_persons_limits() {
    let mut w = World::new();
    // Bob, a low-verification (tier 0) customer, with two wallets at bank A and one at B.
    let bob = w.consumer(BOB, BANK_A, 0, Currency::CNY);
    let bob_2 = w.person_wallet(16, BANK_A, 0, Currency::CNY, identity(BOB));
    let bob_b = w.person_wallet(17, BANK_B, 0, Currency::CNY, identity(BOB));
    let alice = w.consumer(ALICE, BANK_A, 1, Currency::CNY);
    for (id, bank) in [(BOB, BANK_A), (16, BANK_A), (17, BANK_B)] {
        w.fund(id, bank, 60_000);
    }
    let mut next_id = 100;
    let mut send = |w: &mut World, from: u128, k: &SigningKey, amount: Amount| {
        next_id += 1;
        w.submit(a(from), &[k], transfer(next_id, ALICE, amount))
    };
    // A day's limit is the person's at bank A, whichever wallet sends.
    ok(&send(&mut w, BOB, &bob, TIER0_SINGLE));
    ok(&send(&mut w, 16, &bob_2, TIER0_DAILY - TIER0_SINGLE));
    rejected(&send(&mut w, 16, &bob_2, 1), Rejection::OverDailyLimit);
    rejected(&send(&mut w, BOB, &bob, 1), Rejection::OverDailyLimit);
    let sent =
        query::person_outflow(&w.store, BANK_A, identity(BOB), Currency::CNY, w.time_ms).unwrap();
    assert_eq!(sent.day_total, u128::from(TIER0_DAILY));
    // At another bank the person has that bank's limits.
    ok(&send(&mut w, 17, &bob_b, TIER0_SINGLE));
    // The year's limit (50_000 for tier 0) across days: 20_000 + 20_000 + 10_000.
    w.advance(DAY_MS);
    ok(&send(&mut w, 16, &bob_2, TIER0_SINGLE));
    ok(&send(&mut w, BOB, &bob, TIER0_SINGLE));
    w.advance(DAY_MS);
    ok(&send(&mut w, BOB, &bob, TIER0_YEARLY - 2 * TIER0_DAILY));
    rejected(&send(&mut w, 16, &bob_2, 1), Rejection::OverYearlyLimit);
    rejected(&send(&mut w, BOB, &bob, 1), Rejection::OverYearlyLimit);
    // Every consumer path counts: a bill, a static-QR payment, a card payment.
    let shop = w.merchant(SHOP, BANK_A, 0, Currency::CNY);
    rejected(
        &w.submit(
            a(16),
            &[&bob_2],
            TxKind::PayMerchant {
                id: TransferId(200),
                merchant: AccountId(SHOP),
                amount: 1,
                reference: Memo::NONE,
            },
        ),
        Rejection::OverYearlyLimit,
    );
    ok(&create_order(&mut w, &shop, 1, 1, 600_000));
    rejected(
        &w.submit(
            a(BOB),
            &[&bob, &institution_key(BANK_A)],
            pay(201, 1, PaymentSource::Card(card(BOB as u8)), None),
        ),
        Rejection::OverYearlyLimit,
    );
    let year = utc_year(w.time_ms);
    // A new calendar year (UTC) starts the count again.
    while utc_year(w.time_ms + 1_000) == year {
        w.advance(DAY_MS);
    }
    ok(&send(&mut w, 16, &bob_2, TIER0_SINGLE));
    let sent =
        query::person_outflow(&w.store, BANK_A, identity(BOB), Currency::CNY, w.time_ms).unwrap();
    assert_eq!(
        (sent.year, sent.year_total),
        (year + 1, u128::from(TIER0_SINGLE))
    );
    let _ = alice;
}

#[test]
fn a_customer_remitting_from_wallets_at_two_banks_has_one_yearly_cross_border_quota() {
    let (mut w, _alice) = fx_world();
    let bob = key(BOB as u64);
    let bob_b = w.person_wallet(17, BANK_B, 0, Currency::CNY, identity(BOB));
    w.fund(BOB, BANK_A, 60_000);
    w.fund(17, BANK_B, 60_000);
    let send = |id: u128, debit: Amount| {
        remit(
            id,
            USD_BENEFICIARY,
            FxAmount::Send {
                debit,
                min_credit: 1,
            },
        )
    };
    let rate = |w: &mut World| {
        let valid_from_ms = w.time_ms;
        ok(&w.institution(
            FX,
            TxKind::PublishFxRate {
                base: Currency::CNY,
                quote: Currency::USD,
                rate: 138_000_000,
                valid_from_ms,
                valid_until_ms: valid_from_ms + 3_600_000,
            },
        ));
    };
    // Tier 0: 30_000 a year abroad, whichever bank the person remits from.
    ok(&w.submit(a(BOB), &[&bob], send(1, 10_000)));
    ok(&w.submit(a(17), &[&bob_b], send(2, 10_000)));
    w.advance(DAY_MS);
    rate(&mut w);
    ok(&w.submit(a(BOB), &[&bob], send(3, 10_000)));
    rejected(
        &w.submit(a(17), &[&bob_b], send(4, 100)),
        Rejection::CrossBorderQuotaExceeded,
    );
    let abroad =
        query::cross_border_outflow(&w.store, identity(BOB), Currency::CNY, w.time_ms).unwrap();
    assert_eq!(abroad.year_total, u128::from(TIER0_CROSS_BORDER_YEARLY));
    // A domestic transfer still goes: the quota is for cross-border transfers only.
    ok(&w.submit(a(17), &[&bob_b], transfer(5, BOB, 1)));
}

#[test]
fn governance_sets_a_classes_yearly_limits_consistently() {
    let (mut w, alice, ..) = world();
    let gov = governance_keys();
    let bank = institution_key(BANK_A);
    let set = |single_max, daily_max, yearly_max| {
        TxKind::Govern(GovernanceAction::SetTierLimits {
            tier: 1,
            single_max,
            daily_max,
            yearly_max,
            cross_border_yearly_max: 10,
        })
    };
    rejected(
        &w.submit(
            Party::Institution(BANK_A),
            &[&bank, &gov[0], &gov[1]],
            set(100, 1_000, 999),
        ),
        Rejection::InvalidField,
    );
    ok(&w.submit(
        Party::Institution(BANK_A),
        &[&bank, &gov[0], &gov[1]],
        set(100, 1_000, 1_000),
    ));
    assert_eq!(
        Ledger::rules(&w.store).unwrap().tier(1),
        Some(TierLimits {
            single_max: 100,
            daily_max: 1_000,
            yearly_max: 1_000,
            cross_border_yearly_max: 10,
        })
    );
    rejected(
        &w.submit(a(ALICE), &[&alice], transfer(1, BOB, 101)),
        Rejection::OverSingleLimit,
    );
}

#[test]
fn a_merchant_cannot_collect_a_code_meant_for_another_nor_outside_its_ten_minutes() {
    let (mut w, alice, _bob, _carol, shop) = world();
    let other_shop = w.merchant(22, BANK_B, 100, Currency::CNY);
    let now = w.time_ms;
    let alices = |issued_at_ms: u64, expires_at_ms: u64, code_nonce: u64, merchant| {
        signed_code(
            PaymentCode {
                payer: AccountId(ALICE),
                payer_key: alice.public_key(),
                max_amount: 500,
                issued_at_ms,
                expires_at_ms,
                code_nonce,
                merchant,
            },
            &alice,
        )
    };
    // A code for the shop: another merchant that got to see it cannot collect it.
    let (c, sig) = alices(now, now + 120_000, 1, Some(AccountId(SHOP)));
    rejected(
        &w.submit(a(22), &[&other_shop], collect(1, c, sig, 100)),
        Rejection::PaymentCodeWrongMerchant,
    );
    ok(&w.submit(a(SHOP), &[&shop], collect(2, c, sig, 100)));
    // Long-dated: never good, not even in its last ten minutes.
    let (long, long_sig) = alices(now, now + 3_600_000, 2, None);
    rejected(
        &w.submit(a(SHOP), &[&shop], collect(3, long, long_sig, 100)),
        Rejection::InvalidField,
    );
    w.advance(3_600_000 - 300_000);
    rejected(
        &w.submit(a(SHOP), &[&shop], collect(4, long, long_sig, 100)),
        Rejection::InvalidField,
    );
    // Issued in the future: not good before its issue time, good from it.
    let now = w.time_ms;
    let (later, later_sig) = alices(now + 300_000, now + 600_000, 3, None);
    rejected(
        &w.submit(a(SHOP), &[&shop], collect(5, later, later_sig, 100)),
        Rejection::PaymentCodeNotYetValid,
    );
    w.advance(300_000);
    ok(&w.submit(a(22), &[&other_shop], collect(6, later, later_sig, 100)));
    // No window at all.
    let now = w.time_ms;
    let (empty, empty_sig) = alices(now, now, 4, None);
    rejected(
        &w.submit(a(SHOP), &[&shop], collect(7, empty, empty_sig, 100)),
        Rejection::InvalidField,
    );
    assert_eq!(w.balance(SHOP), 100);
    assert_eq!(w.balance(22), 100);
}

// ---------------------------------------------------------------- disputes

fn govern(w: &mut World, action: GovernanceAction) -> Receipt {
    let gov = governance_keys();
    w.submit(
        a_inst(BANK_A),
        &[&institution_key(BANK_A), &gov[0], &gov[1]],
        TxKind::Govern(action),
    )
}

fn a_inst(id: InstitutionId) -> Party {
    Party::Institution(id)
}

fn open_dispute(id: u128, disputed: Disputed) -> TxKind {
    TxKind::OpenDispute {
        id: TransferId(id),
        disputed,
        reason: DisputeReason::NotReceived,
    }
}

fn decide(disputed: Disputed, outcome: DisputeOutcome) -> TxKind {
    TxKind::DecideDispute { disputed, outcome }
}

/// Alice pays the shop's order 1 of 8_000 from her balance.
fn paid_order(w: &mut World, alice: &SigningKey, shop: &SigningKey) {
    ok(&create_order(w, shop, 1, 8_000, 60_000));
    ok(&w.submit(
        a(ALICE),
        &[alice],
        pay(100, 1, PaymentSource::Balance, None),
    ));
}

#[test]
fn a_payer_disputes_an_order_its_bank_refunds_it_once_and_the_merchant_cannot_spend_it_meanwhile() {
    let (mut w, alice, bob, _, shop) = world();
    paid_order(&mut w, &alice, &shop);
    let disputed = Disputed::Order(OrderId(1));
    // Someone else's payment is not theirs to dispute.
    rejected(
        &w.submit(a(BOB), &[&bob], open_dispute(200, disputed)),
        Rejection::NotPayer,
    );
    let r = w.submit(a(ALICE), &[&alice], open_dispute(200, disputed));
    ok(&r);
    let deadline_ms = w.time_ms + DisputeRules::default().decision_ms;
    assert_eq!(
        r.events,
        vec![Event::DisputeOpened {
            disputed,
            payer: AccountId(ALICE),
            merchant: AccountId(SHOP),
            amount: 8_000,
            reason: DisputeReason::NotReceived,
            decider: BANK_A,
            held_from: AccountId(SHOP),
            deadline_ms,
        }]
    );
    // Held: the merchant can neither settle it away nor refund beside the dispute.
    assert_eq!(w.account(SHOP).available(), 0);
    rejected(
        &w.submit(
            a(SHOP),
            &[&shop],
            TxKind::SettleMerchant {
                id: TransferId(300),
                amount: 8_000,
            },
        ),
        Rejection::InsufficientFunds,
    );
    rejected(
        &w.submit(
            a(SHOP),
            &[&shop],
            TxKind::Refund {
                id: TransferId(301),
                order: OrderId(1),
                amount: 8_000,
            },
        ),
        Rejection::DisputeOpen,
    );
    // Twice is refused; so is a bank that does not stand behind the money.
    rejected(
        &w.submit(a(ALICE), &[&alice], open_dispute(201, disputed)),
        Rejection::DisputeExists,
    );
    rejected(
        &w.institution(BANK_B, decide(disputed, DisputeOutcome::Refund)),
        Rejection::NotPermitted,
    );
    let listed = query::open_disputes(&w.store, None, 10, w.time_ms).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].dispute.disputed, disputed);
    assert_eq!(listed[0].age_ms, w.time_ms - listed[0].dispute.opened_at_ms);
    assert!(listed[0].age_ms > 0);

    let before = w.balance(ALICE);
    let r = w.institution(BANK_A, decide(disputed, DisputeOutcome::Refund));
    ok(&r);
    assert_eq!(
        r.events,
        vec![Event::DisputeResolved {
            disputed,
            payer: AccountId(ALICE),
            merchant: AccountId(SHOP),
            amount: 8_000,
            outcome: DisputeOutcome::Refund,
            decided_by: Some(BANK_A),
            held_from: AccountId(SHOP),
            refund_to: AccountId(ALICE),
        }]
    );
    assert_eq!(w.balance(ALICE), before + 8_000);
    assert_eq!(w.balance(SHOP), 0);
    assert!(
        query::open_disputes(&w.store, None, 10, w.time_ms)
            .unwrap()
            .is_empty()
    );
    // Exactly once: not decided again, not disputed again, not refunded again.
    rejected(
        &w.institution(BANK_A, decide(disputed, DisputeOutcome::Refund)),
        Rejection::DisputeNotOpen,
    );
    rejected(
        &w.submit(a(ALICE), &[&alice], open_dispute(202, disputed)),
        Rejection::DisputeExists,
    );
    assert_eq!(
        query::order(&w.store, OrderId(1))
            .unwrap()
            .unwrap()
            .refunded,
        8_000
    );
    rejected(
        &w.submit(
            a(SHOP),
            &[&shop],
            TxKind::Refund {
                id: TransferId(302),
                order: OrderId(1),
                amount: 1,
            },
        ),
        Rejection::RefundExceedsPaid,
    );
}

#[test]
fn only_a_paid_payment_within_the_window_and_what_is_left_of_it_is_disputed() {
    let (mut w, alice, _, _, shop) = world();
    ok(&create_order(&mut w, &shop, 1, 8_000, 60_000));
    let order = Disputed::Order(OrderId(1));
    rejected(
        &w.submit(a(ALICE), &[&alice], open_dispute(200, order)),
        Rejection::OrderNotPaid,
    );
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            open_dispute(200, Disputed::Payment(TransferId(77))),
        ),
        Rejection::PaymentNotFound,
    );
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            open_dispute(200, Disputed::Bill(BillId(5))),
        ),
        Rejection::BillNotFound,
    );
    ok(&w.submit(
        a(ALICE),
        &[&alice],
        pay(100, 1, PaymentSource::Balance, None),
    ));
    // A partial refund leaves less to dispute; a full one nothing.
    ok(&w.submit(
        a(SHOP),
        &[&shop],
        TxKind::Refund {
            id: TransferId(101),
            order: OrderId(1),
            amount: 3_000,
        },
    ));
    rejected(
        &govern(
            &mut w,
            GovernanceAction::SetDisputeRules {
                window_ms: 0,
                decision_ms: 1,
                default: DisputeOutcome::Refund,
            },
        ),
        Rejection::InvalidField,
    );
    ok(&govern(
        &mut w,
        GovernanceAction::SetDisputeRules {
            window_ms: DAY_MS,
            decision_ms: DAY_MS,
            default: DisputeOutcome::Refund,
        },
    ));
    let r = w.submit(a(ALICE), &[&alice], open_dispute(200, order));
    ok(&r);
    assert!(matches!(
        r.events[0],
        Event::DisputeOpened { amount: 5_000, .. }
    ));
    // Another order, refunded in full, then too old.
    ok(&create_order(&mut w, &shop, 2, 1_000, 60_000));
    ok(&w.submit(
        a(ALICE),
        &[&alice],
        pay(102, 2, PaymentSource::Balance, None),
    ));
    ok(&w.submit(
        a(SHOP),
        &[&shop],
        TxKind::Refund {
            id: TransferId(103),
            order: OrderId(2),
            amount: 1_000,
        },
    ));
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            open_dispute(201, Disputed::Order(OrderId(2))),
        ),
        Rejection::NothingToDispute,
    );
    ok(&create_order(&mut w, &shop, 3, 1_000, 60_000));
    ok(&w.submit(
        a(ALICE),
        &[&alice],
        pay(104, 3, PaymentSource::Balance, None),
    ));
    w.advance(DAY_MS);
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            open_dispute(202, Disputed::Order(OrderId(3))),
        ),
        Rejection::DisputeWindowClosed,
    );
}

#[test]
fn a_merchant_that_drained_its_balance_is_charged_back_from_its_acquirers_reserve() {
    let (mut w, alice, _, _, shop) = world();
    let reference = Memo::new("till 3 / order 1234").unwrap();
    let r = w.submit(
        a(ALICE),
        &[&alice],
        TxKind::PayMerchant {
            id: TransferId(50),
            merchant: AccountId(SHOP),
            amount: 6_000,
            reference: reference.clone(),
        },
    );
    ok(&r);
    // The merchant sees its reference on the payment, to match it.
    assert!(matches!(
        &r.events[0],
        Event::MerchantPaid { reference: seen, .. } if *seen == reference
    ));
    let kept = query::merchant_payment(&w.store, TransferId(50))
        .unwrap()
        .unwrap();
    assert_eq!((kept.reference, kept.amount), (reference, 6_000));
    ok(&w.submit(
        a(ALICE),
        &[&alice],
        TxKind::PayMerchant {
            id: TransferId(53),
            merchant: AccountId(SHOP),
            amount: 4_000,
            reference: Memo::NONE,
        },
    ));
    // It settles everything before the payer notices.
    ok(&w.submit(
        a(SHOP),
        &[&shop],
        TxKind::SettleMerchant {
            id: TransferId(51),
            amount: 10_000,
        },
    ));
    assert_eq!(w.balance(SHOP), 0);
    let reserve = AccountId::institutional(BANK_A, AccountKind::BankSettlement, Currency::CNY);
    let reserve_before = query::account(&w.store, reserve)
        .unwrap()
        .unwrap()
        .balance();
    let disputed = Disputed::Payment(TransferId(50));
    let r = w.submit(a(ALICE), &[&alice], open_dispute(52, disputed));
    ok(&r);
    assert!(matches!(
        r.events[0],
        Event::DisputeOpened { held_from, .. } if held_from == reserve
    ));
    let before = w.balance(ALICE);
    ok(&w.institution(BANK_A, decide(disputed, DisputeOutcome::Refund)));
    assert_eq!(w.balance(ALICE), before + 6_000);
    let reserve_after = query::account(&w.store, reserve)
        .unwrap()
        .unwrap()
        .balance();
    assert_eq!(reserve_after, reserve_before - 6_000);
}

#[test]
fn a_card_payments_dispute_is_decided_by_the_cards_bank_not_the_wallets() {
    let (mut w, _, _, carol, shop) = world();
    // Carol's wallet is at bank B; her card is bank A's.
    bind(&mut w, CAROL, &carol, 9, BANK_A);
    ok(&create_order(&mut w, &shop, 1, 4_000, 60_000));
    ok(&w.submit(
        a(CAROL),
        &[&carol, &institution_key(BANK_A)],
        pay(100, 1, PaymentSource::Card(card(9)), None),
    ));
    let disputed = Disputed::Order(OrderId(1));
    let r = w.submit(a(CAROL), &[&carol], open_dispute(200, disputed));
    ok(&r);
    let issuance = AccountId::institutional(BANK_A, AccountKind::BankIssuance, Currency::CNY);
    assert!(matches!(
        r.events[0],
        Event::DisputeOpened {
            decider: BANK_A,
            ..
        }
    ));
    rejected(
        &w.institution(BANK_B, decide(disputed, DisputeOutcome::Refund)),
        Rejection::NotPermitted,
    );
    // Released: the merchant keeps it, nothing moves.
    let (shop_before, issuance_before) = (
        w.balance(SHOP),
        query::account(&w.store, issuance)
            .unwrap()
            .unwrap()
            .balance(),
    );
    let r = w.institution(BANK_A, decide(disputed, DisputeOutcome::Release));
    ok(&r);
    assert!(matches!(
        r.events[0],
        Event::DisputeResolved { outcome: DisputeOutcome::Release, refund_to, .. } if refund_to == issuance
    ));
    assert_eq!(w.balance(SHOP), shop_before);
    assert_eq!(w.account(SHOP).available(), shop_before);
    assert_eq!(
        query::account(&w.store, issuance)
            .unwrap()
            .unwrap()
            .balance(),
        issuance_before
    );
    let record = query::dispute(&w.store, disputed).unwrap().unwrap();
    assert!(matches!(
        record.status,
        DisputeStatus::Resolved {
            outcome: DisputeOutcome::Release,
            decided_by: Some(BANK_A),
            ..
        }
    ));
}

#[test]
fn an_undecided_dispute_ends_at_its_deadline_by_the_rule_it_opened_under() {
    let (mut w, alice, _, _, shop) = world();
    ok(&govern(
        &mut w,
        GovernanceAction::SetDisputeRules {
            window_ms: DAY_MS,
            decision_ms: 60_000,
            default: DisputeOutcome::Release,
        },
    ));
    paid_order(&mut w, &alice, &shop);
    let disputed = Disputed::Order(OrderId(1));
    ok(&w.submit(a(ALICE), &[&alice], open_dispute(200, disputed)));
    // The rule changes while it waits: it ends by the one it opened under.
    ok(&govern(
        &mut w,
        GovernanceAction::SetDisputeRules {
            window_ms: DAY_MS,
            decision_ms: 60_000,
            default: DisputeOutcome::Refund,
        },
    ));
    let before = (w.balance(ALICE), w.balance(SHOP));
    w.advance(60_000);
    let out = w.block(vec![]);
    assert_eq!(out.expired.len(), 1);
    assert!(matches!(
        out.expired[0],
        Event::DisputeResolved {
            outcome: DisputeOutcome::Release,
            decided_by: None,
            ..
        }
    ));
    assert_eq!((w.balance(ALICE), w.balance(SHOP)), before);
    assert_eq!(w.account(SHOP).available(), before.1);
    rejected(
        &w.institution(BANK_A, decide(disputed, DisputeOutcome::Refund)),
        Rejection::DisputeNotOpen,
    );
    // A bill disputed under the new rule is refunded at its deadline.
    let biller = key(31);
    ok(&w.submit(
        a_inst(BANK_A),
        &[&institution_key(BANK_A), &biller],
        TxKind::RegisterBiller {
            account: AccountId(31),
            key: biller.public_key(),
            currency: Currency::CNY,
            identity: identity(31),
        },
    ));
    ok(&w.submit(
        a(31),
        &[&biller],
        TxKind::IssueBill {
            bill: BillId(7),
            customer: Hash::digest("customer", b"alice"),
            amount: 2_500,
            due_ms: w.time_ms + DAY_MS,
        },
    ));
    let bill = Disputed::Bill(BillId(7));
    rejected(
        &w.submit(a(ALICE), &[&alice], open_dispute(201, bill)),
        Rejection::BillNotPaid,
    );
    ok(&w.submit(
        a(ALICE),
        &[&alice],
        TxKind::PayBill {
            id: TransferId(202),
            bill: BillId(7),
            amount: 2_500,
        },
    ));
    ok(&w.submit(a(ALICE), &[&alice], open_dispute(203, bill)));
    let before = w.balance(ALICE);
    w.advance(60_000);
    let out = w.block(vec![]);
    assert!(matches!(
        out.expired[0],
        Event::DisputeResolved {
            outcome: DisputeOutcome::Refund,
            decided_by: None,
            ..
        }
    ));
    assert_eq!(w.balance(ALICE), before + 2_500);
    assert_eq!(w.balance(31), 0);
}

// ---------------------------------------------------------------- refund requests

#[test]
fn a_payer_asks_for_a_refund_and_only_its_merchant_accepts_or_refuses() {
    let (mut w, alice, bob, _, shop) = world();
    paid_order(&mut w, &alice, &shop);
    let request = |amount| TxKind::RequestRefund {
        order: OrderId(1),
        amount,
    };
    rejected(
        &w.submit(a(BOB), &[&bob], request(1_000)),
        Rejection::NotPayer,
    );
    rejected(
        &w.submit(a(ALICE), &[&alice], request(8_001)),
        Rejection::RefundExceedsPaid,
    );
    let r = w.submit(a(ALICE), &[&alice], request(3_000));
    ok(&r);
    assert_eq!(
        r.events,
        vec![Event::RefundRequested {
            order: OrderId(1),
            payer: AccountId(ALICE),
            merchant: AccountId(SHOP),
            amount: 3_000
        }]
    );
    rejected(
        &w.submit(a(ALICE), &[&alice], request(1_000)),
        Rejection::RefundRequestExists,
    );
    // Another merchant cannot answer for this one.
    let other = w.merchant(22, BANK_B, 100, Currency::CNY);
    rejected(
        &w.submit(
            a(22),
            &[&other],
            TxKind::AcceptRefundRequest {
                id: TransferId(400),
                order: OrderId(1),
            },
        ),
        Rejection::NotPermitted,
    );
    let before = w.balance(ALICE);
    let r = w.submit(
        a(SHOP),
        &[&shop],
        TxKind::AcceptRefundRequest {
            id: TransferId(400),
            order: OrderId(1),
        },
    );
    ok(&r);
    assert!(matches!(r.events[0], Event::Refunded { amount: 3_000, .. }));
    assert!(matches!(
        r.events[1],
        Event::RefundRequestAnswered {
            accepted: true,
            amount: 3_000,
            ..
        }
    ));
    assert_eq!(w.balance(ALICE), before + 3_000);
    // Refused: nothing moves, and the request is gone.
    ok(&w.submit(a(ALICE), &[&alice], request(5_000)));
    let r = w.submit(
        a(SHOP),
        &[&shop],
        TxKind::RefuseRefundRequest { order: OrderId(1) },
    );
    ok(&r);
    assert!(matches!(
        r.events[0],
        Event::RefundRequestAnswered {
            accepted: false,
            ..
        }
    ));
    assert_eq!(w.balance(ALICE), before + 3_000);
    rejected(
        &w.submit(
            a(SHOP),
            &[&shop],
            TxKind::AcceptRefundRequest {
                id: TransferId(401),
                order: OrderId(1),
            },
        ),
        Rejection::RefundRequestNotFound,
    );
    // Beside an open dispute, no request.
    ok(&w.submit(
        a(ALICE),
        &[&alice],
        open_dispute(500, Disputed::Order(OrderId(1))),
    ));
    rejected(
        &w.submit(a(ALICE), &[&alice], request(1_000)),
        Rejection::DisputeOpen,
    );
}

// ---------------------------------------------------------------- references

#[test]
fn memos_and_references_are_short_printable_text_or_refused_at_decoding() {
    assert!(Memo::new(&"x".repeat(MEMO_BYTES_MAX)).is_some());
    assert!(Memo::new(&"x".repeat(MEMO_BYTES_MAX + 1)).is_none());
    assert!(Memo::new("till 3\u{1b}[2J").is_none());
    assert_eq!(Memo::new("").unwrap(), Memo::NONE);
    let (w, alice, ..) = world();
    // Built by hand past the constructor: decoding refuses it.
    let bytes = postcard::to_allocvec("order \u{7} 1").unwrap();
    let forged: Memo = postcard::from_bytes(&bytes).unwrap();
    assert!(!forged.is_well_formed());
    let tx = w.sign(
        a(ALICE),
        &[&alice],
        TxKind::PayMerchant {
            id: TransferId(1),
            merchant: AccountId(SHOP),
            amount: 1,
            reference: forged,
        },
    );
    assert!(matches!(
        encoding::decode(&encoding::encode(&tx)),
        Err(DecodeError::Limit(_))
    ));
}

// ---------------------------------------------------------------- travel rule

fn sealed(recipient: InstitutionId, key: EncryptionKey, len: usize) -> SealedTravelRule {
    SealedTravelRule {
        recipient,
        key,
        encapsulated: [7; 32],
        ciphertext: vec![0xab; len],
    }
}

fn enc_key(n: u8) -> EncryptionKey {
    EncryptionKey([n; 32])
}

fn remit_with(id: u128, debit: Amount, travel_rule: Vec<SealedTravelRule>) -> TxKind {
    TxKind::CrossBorderTransfer {
        id: TransferId(id),
        provider: FX,
        beneficiary: AccountId(USD_BENEFICIARY),
        amount: FxAmount::Send {
            debit,
            min_credit: 0,
        },
        travel_rule,
    }
}

#[test]
fn above_the_threshold_a_remittance_carries_travel_rule_data_sealed_to_the_beneficiarys_bank_and_a_regulator_only()
 {
    let (mut w, alice) = fx_world();
    rejected(
        &govern(
            &mut w,
            GovernanceAction::SetTravelRuleThreshold {
                currency: Currency(*b"EUR"),
                threshold: 1,
            },
        ),
        Rejection::UnknownCurrency,
    );
    ok(&govern(
        &mut w,
        GovernanceAction::SetTravelRuleThreshold {
            currency: Currency::CNY,
            threshold: 10_000,
        },
    ));
    // Below the threshold nothing is needed; at it, the data is.
    ok(&w.submit(a(ALICE), &[&alice], remit_with(1, 9_999, vec![])));
    rejected(
        &w.submit(a(ALICE), &[&alice], remit_with(2, 10_000, vec![])),
        Rejection::TravelRuleRequired,
    );
    // Keys are the institutions' own, registered by themselves.
    let with_both = |bank: EncryptionKey, regulator: EncryptionKey| {
        vec![sealed(BANK_B, bank, 200), sealed(REGULATOR, regulator, 200)]
    };
    rejected(
        &w.submit(
            a(ALICE),
            &[&alice],
            remit_with(3, 10_000, with_both(enc_key(2), enc_key(5))),
        ),
        Rejection::EncryptionKeyMissing,
    );
    rejected(
        &w.institution(BANK_B, TxKind::SetEncryptionKey { key: enc_key(0) }),
        Rejection::InvalidKey,
    );
    for (institution, n) in [(BANK_A, 1), (BANK_B, 2), (REGULATOR, 5)] {
        let r = w.institution(institution, TxKind::SetEncryptionKey { key: enc_key(n) });
        ok(&r);
        assert_eq!(
            r.events,
            vec![Event::EncryptionKeySet {
                institution,
                key: enc_key(n)
            }]
        );
    }
    assert_eq!(
        query::institution(&w.store, BANK_B)
            .unwrap()
            .unwrap()
            .encryption_key,
        Some(enc_key(2))
    );
    // Sealed to the beneficiary's bank and the regulator under their keys: accepted, and
    // the event says who can read it.
    let r = w.submit(
        a(ALICE),
        &[&alice],
        remit_with(4, 10_000, with_both(enc_key(2), enc_key(5))),
    );
    ok(&r);
    assert!(matches!(
        &r.events.last().unwrap(),
        Event::RemittanceCredited { travel_rule_for, .. } if *travel_rule_for == vec![BANK_B, REGULATOR]
    ));
    let refused = |w: &mut World, id: u128, copies: Vec<SealedTravelRule>, why: Rejection| {
        let before = w.balance(ALICE);
        rejected(
            &w.submit(a(ALICE), &[&alice], remit_with(id, 10_000, copies)),
            why,
        );
        assert_eq!(w.balance(ALICE), before);
    };
    // A copy for a competing bank, a stale key, a missing regulator or bank copy.
    refused(
        &mut w,
        5,
        vec![
            sealed(BANK_A, enc_key(1), 200),
            sealed(BANK_B, enc_key(2), 200),
            sealed(REGULATOR, enc_key(5), 200),
        ],
        Rejection::TravelRuleRecipients,
    );
    refused(
        &mut w,
        6,
        with_both(enc_key(9), enc_key(5)),
        Rejection::TravelRuleRecipients,
    );
    refused(
        &mut w,
        7,
        vec![sealed(BANK_B, enc_key(2), 200)],
        Rejection::TravelRuleRecipients,
    );
    refused(
        &mut w,
        8,
        vec![sealed(REGULATOR, enc_key(5), 200)],
        Rejection::TravelRuleRecipients,
    );
    // The bank rotates its key: data sealed to the old one is refused.
    ok(&w.institution(BANK_B, TxKind::SetEncryptionKey { key: enc_key(3) }));
    refused(
        &mut w,
        9,
        with_both(enc_key(2), enc_key(5)),
        Rejection::TravelRuleRecipients,
    );
    ok(&w.submit(
        a(ALICE),
        &[&alice],
        remit_with(10, 10_000, with_both(enc_key(3), enc_key(5))),
    ));
    // Governance can lift the requirement.
    ok(&govern(
        &mut w,
        GovernanceAction::SetTravelRuleThreshold {
            currency: Currency::CNY,
            threshold: NO_CAP,
        },
    ));
    ok(&w.submit(a(ALICE), &[&alice], remit_with(11, 10_000, vec![])));
}

#[test]
fn sealed_travel_rule_data_is_bounded_sorted_and_refused_at_decoding_otherwise() {
    let (w, alice) = fx_world();
    let decoded = |copies: Vec<SealedTravelRule>| {
        let tx = w.sign(a(ALICE), &[&alice], remit_with(1, 10_000, copies));
        encoding::decode(&encoding::encode(&tx))
    };
    let max = TRAVEL_RULE_CIPHERTEXT_BYTES_MAX;
    assert!(
        decoded(vec![
            sealed(BANK_B, enc_key(2), max),
            sealed(REGULATOR, enc_key(5), max)
        ])
        .is_ok()
    );
    for bad in [
        vec![sealed(BANK_B, enc_key(2), max + 1)],
        vec![sealed(
            BANK_B,
            enc_key(2),
            TRAVEL_RULE_CIPHERTEXT_BYTES_MIN - 1,
        )],
        vec![
            sealed(REGULATOR, enc_key(5), 40),
            sealed(BANK_B, enc_key(2), 40),
        ],
        vec![
            sealed(BANK_B, enc_key(2), 40),
            sealed(BANK_B, enc_key(2), 40),
        ],
        (1..=4)
            .map(|i| sealed(InstitutionId(i), enc_key(2), 40))
            .collect(),
    ] {
        assert!(
            matches!(decoded(bad.clone()), Err(DecodeError::Limit(_))),
            "{bad:?} was decoded"
        );
    }
}

// ---------------------------------------------------------------- institution keys

fn replace_key(institution: InstitutionId, new_key: &SigningKey) -> TxKind {
    TxKind::Govern(GovernanceAction::ReplaceInstitutionKey {
        institution,
        new_key: new_key.public_key(),
    })
}

fn revoke_key(institution: InstitutionId) -> TxKind {
    TxKind::Govern(GovernanceAction::RevokeInstitutionKey { institution })
}

fn register(id: u128, k: &SigningKey, bank: InstitutionId) -> TxKind {
    TxKind::RegisterAccount {
        account: AccountId(id),
        key: k.public_key(),
        currency: Currency::CNY,
        institution: bank,
        tier: 0,
        identity: identity(id),
    }
}

#[test]
fn governance_replaces_a_compromised_institution_key() {
    let (mut w, _alice, bob, ..) = world();
    let gov = governance_keys();
    let old = institution_key(BANK_A);
    let new = key(4_001);
    let platform = institution_key(PLATFORM);
    // The new key must prove it is held.
    rejected(
        &w.submit(
            a_inst(PLATFORM),
            &[&platform, &gov[0], &gov[1]],
            replace_key(BANK_A, &new),
        ),
        Rejection::MissingCoSignature,
    );
    rejected(
        &w.submit(
            a_inst(PLATFORM),
            &[&platform, &gov[0], &new],
            replace_key(BANK_A, &new),
        ),
        Rejection::GovernanceQuorum,
    );
    // In one block: bank A's transaction before the replacement passes its key check, the
    // one after it is refused; the old key's co-signature no longer counts either.
    let nonce = w.nonce(a_inst(BANK_A));
    let before = w.sign_nonce(a_inst(BANK_A), nonce, &[&old], TxKind::SettlementCycle);
    let replace = w.sign(
        a_inst(PLATFORM),
        &[&platform, &gov[0], &gov[1], &new],
        replace_key(BANK_A, &new),
    );
    let after = w.sign_nonce(a_inst(BANK_A), nonce + 1, &[&old], TxKind::SettlementCycle);
    let out = w.block(vec![before, replace, after]);
    rejected(&out.receipts[0], Rejection::NothingToSettle);
    ok(&out.receipts[1]);
    rejected(&out.receipts[2], Rejection::WrongSigner);
    assert_eq!(
        w.nonce(a_inst(BANK_A)),
        nonce + 1,
        "the refused one used no nonce"
    );
    assert_eq!(
        query::institution(&w.store, BANK_A).unwrap().unwrap().key,
        Some(new.public_key())
    );
    // The old key signs nothing: not as the sender, not as a co-signer.
    rejected(
        &w.submit(a_inst(BANK_A), &[&old], TxKind::SettlementCycle),
        Rejection::WrongSigner,
    );
    let k = key(60);
    rejected(
        &w.submit(a(60), &[&k, &old], register(60, &k, BANK_A)),
        Rejection::MissingCoSignature,
    );
    rejected(
        &w.submit(
            a(BOB),
            &[&bob, &old],
            TxKind::BindCard {
                card: card(9),
                bank: BANK_A,
            },
        ),
        Rejection::MissingCoSignature,
    );
    // The new key does all of it, and the bank's customers never noticed.
    rejected(
        &w.submit(a_inst(BANK_A), &[&new], TxKind::SettlementCycle),
        Rejection::NothingToSettle,
    );
    ok(&w.submit(a(60), &[&k, &new], register(60, &k, BANK_A)));
    ok(&w.submit(
        a(BOB),
        &[&bob, &new],
        TxKind::BindCard {
            card: card(9),
            bank: BANK_A,
        },
    ));
    ok(&w.submit(a(ALICE), &[&key(ALICE as u64)], transfer(1, BOB, 10)));
    // No going back to the old key, nor to another governance key.
    rejected(
        &w.submit(
            a_inst(PLATFORM),
            &[&platform, &gov[0], &gov[1], &old],
            replace_key(BANK_A, &new),
        ),
        Rejection::InvalidKey,
    );
    rejected(
        &w.submit(
            a_inst(PLATFORM),
            &[&platform, &gov[0], &gov[1], &gov[2]],
            replace_key(BANK_A, &gov[2]),
        ),
        Rejection::InvalidKey,
    );
}

#[test]
fn a_revoked_institution_signs_nothing_until_replaced_and_keeps_its_accounts() {
    let (mut w, alice, _bob, carol, shop) = world();
    let gov = governance_keys();
    let bank_b = institution_key(BANK_B);
    w.fund(CAROL, BANK_B, 5_000);
    ok(&w.submit(a(ALICE), &[&alice], transfer(1, CAROL, 100)));
    let r = w.submit(
        a_inst(PLATFORM),
        &[&institution_key(PLATFORM), &gov[1], &gov[2]],
        revoke_key(BANK_B),
    );
    ok(&r);
    assert_eq!(
        r.events,
        vec![Event::GovernanceApplied {
            action: "RevokeInstitutionKey".into()
        }]
    );
    assert_eq!(
        query::institution(&w.store, BANK_B).unwrap().unwrap().key,
        None
    );
    rejected(
        &w.institution(BANK_B, TxKind::SettlementCycle),
        Rejection::KeyRevoked,
    );
    let k = key(61);
    rejected(
        &w.submit(a(61), &[&k, &bank_b], register(61, &k, BANK_B)),
        Rejection::KeyRevoked,
    );
    rejected(
        &w.submit(
            a(CAROL),
            &[&carol, &bank_b],
            TxKind::TopUp {
                id: TransferId(7),
                card: card(CAROL as u8),
                amount: 1,
            },
        ),
        Rejection::KeyRevoked,
    );
    // A card payment the revoked bank "co-signed" waits for an answer it cannot give.
    let expires_at_ms = w.time_ms + 60_000;
    ok(&w.submit(
        a(SHOP),
        &[&shop],
        TxKind::CreateOrder {
            order: OrderId(1),
            amount: 50,
            currency: Currency::CNY,
            expires_at_ms,
            items: Hash::digest("items", b"1"),
        },
    ));
    let r = w.submit(
        a(CAROL),
        &[&carol, &bank_b],
        TxKind::PayOrder {
            id: TransferId(8),
            order: OrderId(1),
            source: PaymentSource::Card(card(CAROL as u8)),
            escrow_ms: None,
        },
    );
    ok(&r);
    assert!(
        matches!(r.events.last(), Some(Event::PaymentHeld { .. })),
        "{r:?}"
    );
    // Its customers' accounts and its obligations stay.
    ok(&w.submit(a(CAROL), &[&carol], transfer(2, ALICE, 10)));
    assert_eq!(w.balance(CAROL), 5_000 + 100 - 10);
    rejected(
        &w.submit(
            a_inst(PLATFORM),
            &[&institution_key(PLATFORM), &gov[1], &gov[2]],
            revoke_key(BANK_B),
        ),
        Rejection::KeyRevoked,
    );
    // Replaced: it signs again, with the new key only.
    let new = key(4_002);
    ok(&w.submit(
        a_inst(PLATFORM),
        &[&institution_key(PLATFORM), &gov[0], &gov[2], &new],
        replace_key(BANK_B, &new),
    ));
    ok(&w.submit(a(61), &[&k, &new], register(61, &k, BANK_B)));
    rejected(
        &w.institution(BANK_B, TxKind::SettlementCycle),
        Rejection::WrongSigner,
    );
    ok(&w.submit(a_inst(BANK_B), &[&new], TxKind::SettlementCycle));
}

/// A world whose governance keys are three institutions' own keys (as on the devnet).
fn world_governed_by_institutions() -> World {
    let mut g = genesis();
    g.governance_keys = [BANK_A, BANK_B, PLATFORM]
        .map(|i| institution_key(i).public_key())
        .to_vec();
    let mut store = MemoryStore::new();
    let out = g.apply(&store).unwrap();
    store.apply(&out.writes);
    World::from_parts(store, 0, START_MS)
}

#[test]
fn a_stolen_governance_key_neither_blocks_nor_undoes_its_replacement() {
    let mut w = world_governed_by_institutions();
    let [a_key, b_key, p_key] = [BANK_A, BANK_B, PLATFORM].map(institution_key);
    let new = key(4_003);
    // The key in question does not count toward the quorum in its own case.
    rejected(
        &w.submit(
            a_inst(BANK_A),
            &[&a_key, &b_key, &new],
            replace_key(BANK_A, &new),
        ),
        Rejection::GovernanceQuorum,
    );
    // The other two suffice, whatever the thief does.
    ok(&w.submit(
        a_inst(BANK_B),
        &[&b_key, &p_key, &new],
        replace_key(BANK_A, &new),
    ));
    let rules = Ledger::rules(&w.store).unwrap();
    assert!(rules.governance_keys.contains(&new.public_key()));
    assert!(!rules.governance_keys.contains(&a_key.public_key()));
    assert!(rules.governance_keys.windows(2).all(|k| k[0] < k[1]));
    // The old key is no governance key now: with one accomplice it cannot take the
    // institution back, nor change any rule.
    let thief = key(4_666);
    rejected(
        &w.submit(
            a_inst(BANK_B),
            &[&b_key, &a_key, &thief],
            replace_key(BANK_A, &thief),
        ),
        Rejection::GovernanceQuorum,
    );
    rejected(
        &w.submit(
            a_inst(BANK_B),
            &[&b_key, &a_key],
            TxKind::Govern(GovernanceAction::SetFeeSchedule {
                merchant_fee_bps_max: 10_000,
            }),
        ),
        Rejection::GovernanceQuorum,
    );
    ok(&w.submit(
        a_inst(BANK_B),
        &[&b_key, &new],
        TxKind::Govern(GovernanceAction::SetFeeSchedule {
            merchant_fee_bps_max: 200,
        }),
    ));
    // Revoking a governor drops its vote; its own key never helps decide it, so the
    // others left still reach the threshold (2 of 3 here).
    ok(&w.submit(a_inst(BANK_B), &[&b_key, &new], revoke_key(PLATFORM)));
    assert_eq!(Ledger::rules(&w.store).unwrap().governance_keys.len(), 2);
    rejected(
        &w.submit(a_inst(BANK_A), &[&new, &b_key, &p_key], revoke_key(BANK_B)),
        Rejection::GovernanceQuorum,
    );
    rejected(
        &w.submit(a_inst(BANK_A), &[&new, &b_key], revoke_key(BANK_B)),
        Rejection::GovernanceQuorum,
    );
}

// ---------------------------------------------------------------- account recovery

fn recover(account: u128, new_key: &SigningKey) -> TxKind {
    TxKind::RecoverAccount {
        account: AccountId(account),
        new_key: new_key.public_key(),
    }
}

fn announce(w: &mut World, account: u128, new_key: &SigningKey) -> u64 {
    let r = w.submit(
        a_inst(BANK_A),
        &[&institution_key(BANK_A), new_key],
        recover(account, new_key),
    );
    ok(&r);
    let due_ms = w.time_ms + RECOVERY_DELAY_MS_DEFAULT;
    assert_eq!(
        r.events,
        vec![Event::RecoveryAnnounced {
            account: AccountId(account),
            institution: BANK_A,
            new_key: new_key.public_key(),
            due_ms,
        }]
    );
    due_ms
}

#[test]
fn a_recovery_is_announced_and_completes_after_the_delay() {
    let (mut w, alice, ..) = world();
    let phone = key(801);
    let due_ms = announce(&mut w, ALICE, &phone);
    assert_eq!(
        query::recovery(&w.store, AccountId(ALICE))
            .unwrap()
            .map(|p| p.due_ms),
        Some(due_ms)
    );
    // While it pends the account works with its current key; the new key signs nothing.
    ok(&w.submit(a(ALICE), &[&alice], transfer(1, BOB, 10)));
    rejected(
        &w.submit(a(ALICE), &[&phone], transfer(2, BOB, 10)),
        Rejection::WrongSigner,
    );
    // One recovery at a time.
    let other = key(802);
    rejected(
        &w.submit(
            a_inst(BANK_A),
            &[&institution_key(BANK_A), &other],
            recover(ALICE, &other),
        ),
        Rejection::RecoveryPending,
    );
    // Not before its time (the block after next is at due_ms - 1_000).
    w.time_ms = due_ms - 3_000;
    let out = w.block(vec![]);
    assert!(out.expired.is_empty(), "{out:?}");
    ok(&w.submit(a(ALICE), &[&alice], transfer(3, BOB, 10)));
    // Due (the block's time is due_ms): it completes before the block's transactions.
    let late = w.sign(a(ALICE), &[&alice], transfer(4, BOB, 10));
    let by_phone = w.sign(a(ALICE), &[&phone], transfer(5, BOB, 10));
    let out = w.block(vec![late, by_phone]);
    assert_eq!(w.time_ms, due_ms);
    assert_eq!(
        out.expired,
        vec![Event::AccountRecovered {
            account: AccountId(ALICE),
            institution: BANK_A,
        }]
    );
    rejected(&out.receipts[0], Rejection::WrongSigner);
    ok(&out.receipts[1]);
    assert_eq!(w.account(ALICE).holder.key, phone.public_key());
    assert_eq!(query::recovery(&w.store, AccountId(ALICE)).unwrap(), None);
    rejected(
        &w.submit(a(ALICE), &[&phone], TxKind::CancelRecovery),
        Rejection::RecoveryNotFound,
    );
}

#[test]
fn the_accounts_key_cancels_a_recovery_which_then_never_takes_effect() {
    let (mut w, alice, bob, ..) = world();
    let thief = key(803);
    let due_ms = announce(&mut w, ALICE, &thief);
    // Only the account's current key cancels: not the recovery's key, not another's.
    rejected(
        &w.submit(a(ALICE), &[&thief], TxKind::CancelRecovery),
        Rejection::WrongSigner,
    );
    rejected(
        &w.submit(a(ALICE), &[&bob], TxKind::CancelRecovery),
        Rejection::WrongSigner,
    );
    rejected(
        &w.submit(a(BOB), &[&bob], TxKind::CancelRecovery),
        Rejection::RecoveryNotFound,
    );
    let r = w.submit(a(ALICE), &[&alice], TxKind::CancelRecovery);
    ok(&r);
    assert_eq!(
        r.events,
        vec![Event::RecoveryCancelled {
            account: AccountId(ALICE),
            institution: BANK_A,
            by_account: true,
        }]
    );
    w.time_ms = due_ms + 86_400_000;
    let out = w.block(vec![]);
    assert!(out.expired.is_empty(), "{out:?}");
    assert_eq!(w.account(ALICE).holder.key, alice.public_key());
    rejected(
        &w.submit(a(ALICE), &[&thief], transfer(1, BOB, 10)),
        Rejection::WrongSigner,
    );
    ok(&w.submit(a(ALICE), &[&alice], transfer(2, BOB, 10)));
    // The bank may announce another (a real loss this time).
    announce(&mut w, ALICE, &key(804));
}

#[test]
fn governance_sets_the_delay_and_a_thiefs_recoveries_lapse_with_its_key() {
    let (mut w, alice, bob, ..) = world();
    let set_delay = |delay_ms| TxKind::Govern(GovernanceAction::SetRecoveryDelay { delay_ms });
    let gov = governance_keys();
    for bad in [0, RECOVERY_DELAY_MS_MAX + 1] {
        rejected(
            &w.submit(
                a_inst(PLATFORM),
                &[&institution_key(PLATFORM), &gov[0], &gov[1]],
                set_delay(bad),
            ),
            Rejection::InvalidField,
        );
    }
    ok(&w.submit(
        a_inst(PLATFORM),
        &[&institution_key(PLATFORM), &gov[0], &gov[1]],
        set_delay(3_600_000),
    ));
    assert_eq!(
        Ledger::rules(&w.store).unwrap().recovery_delay_ms,
        3_600_000
    );
    // Announced with bank A's stolen key, for two customers.
    let thief = key(805);
    let stolen = institution_key(BANK_A);
    ok(&w.submit(a_inst(BANK_A), &[&stolen, &thief], recover(ALICE, &thief)));
    let due_ms = w.time_ms + 3_600_000;
    ok(&w.submit(a_inst(BANK_A), &[&stolen, &thief], recover(BOB, &thief)));
    // Governance replaces the key within the hour: both recoveries lapse at their time.
    let new = key(4_010);
    ok(&w.submit(
        a_inst(PLATFORM),
        &[&institution_key(PLATFORM), &gov[0], &gov[1], &new],
        replace_key(BANK_A, &new),
    ));
    w.time_ms = due_ms + 60_000;
    let out = w.block(vec![]);
    let lapsed = |id: u128| Event::RecoveryCancelled {
        account: AccountId(id),
        institution: BANK_A,
        by_account: false,
    };
    assert_eq!(
        out.expired,
        vec![lapsed(ALICE), lapsed(BOB)],
        "in account order"
    );
    assert_eq!(w.account(ALICE).holder.key, alice.public_key());
    assert_eq!(w.account(BOB).holder.key, bob.public_key());
    rejected(
        &w.submit(a(ALICE), &[&thief], transfer(1, BOB, 10)),
        Rejection::WrongSigner,
    );
}
