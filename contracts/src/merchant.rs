//! Merchant flows: registration by the acquiring bank, orders paid from balance or card,
//! immediately or into escrow, card authorizations, cancellation, refunds, offline payment
//! codes, static-QR payments, and settlement to the merchant's bank minus fees.

use serde::{Deserialize, Serialize};
use tally_crypto::{Hash, PublicKey};

use crate::consumer::{CardBinding, NewHolder, register_holder};
use crate::context::{Tx, TxError, TxResult};
use crate::ledger::accounts::AccountKind;
use crate::ledger::transfers::{
    Hold, HoldPurpose, Leg, check_amount, claim_transfer_id, find_hold, place_hold, post_linked,
    resolve_hold, screen,
};
use crate::regulation::{Reach, clear_outflow};
use crate::state::key;
use crate::transaction::{Disputed, Memo, PaymentCode, PaymentSource, Roles};
use crate::types::{AccountId, Amount, Currency, InstitutionId, OrderId, TimeMs, TransferId};
use crate::{Event, Rejection};

/// The longest escrow: 90 days.
pub const ESCROW_MS_MAX: u64 = 90 * 86_400_000;
/// How long a card's bank has to approve a payment before the hold is voided.
pub const CARD_AUTHORIZATION_MS: u64 = 15 * 60_000;
/// The longest an order may stay open: 30 days.
pub const ORDER_LIFETIME_MS_MAX: u64 = 30 * 86_400_000;
/// The most card payments one wallet may have waiting for their bank's approval at once.
/// Such a hold reserves the bank's issuance headroom without the bank's consent, so a
/// wallet may tie up at most this many times its tier's single-payment limit (each hold is
/// also counted against the payer's daily limit, and stays counted if it is voided).
pub const CARD_AUTHORIZATIONS_PER_WALLET_MAX: u8 = 2;
/// The longest a payment code may be valid: 10 minutes.
pub const PAYMENT_CODE_LIFETIME_MS_MAX: u64 = 10 * 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    Open,
    /// Paid into a hold (escrow or card authorization).
    Held,
    Paid,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub merchant: AccountId,
    pub amount: Amount,
    pub currency: Currency,
    pub expires_at_ms: TimeMs,
    pub items: Hash,
    pub status: OrderStatus,
    pub payer: Option<AccountId>,
    /// The account the money came from (the payer's wallet, or the card bank's issuance
    /// account); refunds go back to it.
    pub funding: Option<AccountId>,
    pub hold: Option<TransferId>,
    pub paid: Amount,
    pub refunded: Amount,
    /// When the payment completed (0 until then): the dispute window runs from it.
    pub paid_at_ms: TimeMs,
}

/// A static-QR (`PayMerchant`) or payment-code (`CollectByCode`) payment, kept so its payer
/// can dispute it and its merchant can match its reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantPayment {
    pub id: TransferId,
    pub payer: AccountId,
    pub merchant: AccountId,
    pub amount: Amount,
    pub currency: Currency,
    pub paid_at_ms: TimeMs,
    /// The merchant's reference from its QR code; empty for a payment code.
    pub reference: Memo,
}

/// `RegisterMerchant`: sent by the acquiring bank, co-signed by the merchant's key.
pub(crate) fn register_merchant(
    tx: &mut Tx<'_, '_>,
    acquirer: InstitutionId,
    account: AccountId,
    key: PublicKey,
    currency: Currency,
    fee_bps: u16,
    identity: Hash,
) -> TxResult {
    tx.institution_with(acquirer, Roles::ACQUIRER)?;
    tx.institution_with(acquirer, Roles::BANK)?;
    tx.require_cosigner(&key)?;
    if fee_bps > tx.rules.merchant_fee_bps_max {
        return Err(Rejection::FeeAboveSchedule.into());
    }
    let merchant = register_holder(
        tx,
        NewHolder {
            account,
            kind: AccountKind::Merchant,
            key,
            currency,
            institution: acquirer,
            tier: 0,
            identity,
            fee_bps,
        },
    )?;
    tx.put_account(&merchant);
    tx.emit(Event::MerchantRegistered {
        merchant: account,
        acquirer,
        fee_bps,
    });
    Ok(())
}

pub(crate) fn order(tx: &Tx<'_, '_>, id: OrderId) -> TxResult<Order> {
    tx.state
        .get(&key::order(id))?
        .ok_or(TxError::Rejected(Rejection::OrderNotFound))
}

pub(crate) fn put_order(tx: &mut Tx<'_, '_>, order: &Order) {
    tx.state.put(key::order(order.id), order);
}

pub(crate) fn create_order(
    tx: &mut Tx<'_, '_>,
    merchant: AccountId,
    id: OrderId,
    amount: Amount,
    currency: Currency,
    expires_at_ms: TimeMs,
    items: Hash,
) -> TxResult {
    let m = tx.account_of_kind(merchant, AccountKind::Merchant)?;
    check_amount(amount)?;
    if currency != m.currency {
        return Err(Rejection::CurrencyMismatch.into());
    }
    if expires_at_ms <= tx.now_ms() {
        return Err(Rejection::OrderExpired.into());
    }
    if expires_at_ms - tx.now_ms() > ORDER_LIFETIME_MS_MAX {
        return Err(Rejection::InvalidField.into());
    }
    let k = key::order(id);
    if tx.state.contains(&k)? {
        return Err(Rejection::OrderExists.into());
    }
    put_order(
        tx,
        &Order {
            id,
            merchant,
            amount,
            currency,
            expires_at_ms,
            items,
            status: OrderStatus::Open,
            payer: None,
            funding: None,
            hold: None,
            paid: 0,
            refunded: 0,
            paid_at_ms: 0,
        },
    );
    tx.emit(Event::OrderCreated {
        order: id,
        merchant,
        amount,
    });
    Ok(())
}

/// `PayOrder`. From balance: the payer's own money. From a card: the card's bank's
/// issuance account, which moves only if the bank co-signed; without its co-signature the
/// money is held until the bank posts or voids it (`AuthorizeCardPayment`) or the
/// authorization expires, and a wallet may have at most
/// [`CARD_AUTHORIZATIONS_PER_WALLET_MAX`] such holds open. Either way the payer passes the
/// same outflow checks (frozen, sanctions, second factor, tier limits) before the source is
/// looked at. With `escrow_ms`, a funded payment is held until `ConfirmReceipt` or the
/// escrow expires (then it goes to the merchant).
pub(crate) fn pay_order(
    tx: &mut Tx<'_, '_>,
    payer: AccountId,
    body: Hash,
    id: TransferId,
    order_id: OrderId,
    source: PaymentSource,
    escrow_ms: Option<u64>,
) -> TxResult {
    let mut order = order(tx, order_id)?;
    let consumer = tx.account_of_kind(payer, AccountKind::ConsumerWallet)?;
    if order.status != OrderStatus::Open {
        return Err(Rejection::OrderNotPayable.into());
    }
    if tx.now_ms() >= order.expires_at_ms {
        return Err(Rejection::OrderExpired.into());
    }
    if consumer.currency != order.currency {
        return Err(Rejection::CurrencyMismatch.into());
    }
    if escrow_ms.is_some_and(|ms| ms == 0 || ms > ESCROW_MS_MAX) {
        return Err(Rejection::InvalidField.into());
    }
    claim_transfer_id(tx, id, body)?;
    let cleared = clear_outflow(tx, payer, order.amount, Reach::Domestic)?;
    let (funding, bank_approved) = match source {
        PaymentSource::Balance => (payer, true),
        PaymentSource::Card(card) => {
            let binding: CardBinding = tx
                .state
                .get(&key::card(payer, card))?
                .ok_or(Rejection::CardNotBound)?;
            let bank = tx.institution(binding.bank)?;
            let funding =
                AccountId::institutional(bank.id, AccountKind::BankIssuance, order.currency);
            (funding, tx.signed_by_institution(&bank))
        }
    };
    order.payer = Some(payer);
    order.funding = Some(funding);
    let hold = match (bank_approved, escrow_ms) {
        (true, None) => None,
        (true, Some(ms)) => Some((HoldPurpose::Escrow(order_id), ms)),
        (false, None) => {
            open_card_authorization(tx, payer)?;
            Some((
                HoldPurpose::CardAuthorization(order_id),
                CARD_AUTHORIZATION_MS,
            ))
        }
        // Escrow of card money needs the bank's approval up front.
        (false, Some(_)) => return Err(Rejection::MissingCoSignature.into()),
    };
    match hold {
        None => {
            post_linked(
                tx,
                &[Leg {
                    debit: funding,
                    credit: order.merchant,
                    amount: order.amount,
                }],
                Some(cleared),
            )?;
            order.status = OrderStatus::Paid;
            order.paid = order.amount;
            order.paid_at_ms = tx.now_ms();
            tx.emit(Event::PaymentCompleted {
                order: order_id,
                payer,
                merchant: order.merchant,
                amount: order.amount,
            });
        }
        Some((purpose, ms)) => {
            let expires_at_ms = tx.now_ms().checked_add(ms).ok_or(Rejection::Overflow)?;
            place_hold(
                tx,
                &Hold {
                    id,
                    debit: funding,
                    credit: order.merchant,
                    amount: order.amount,
                    expires_at_ms,
                    purpose,
                },
                Some(cleared),
            )?;
            order.status = OrderStatus::Held;
            order.hold = Some(id);
            tx.emit(Event::PaymentHeld {
                order: order_id,
                payer,
                merchant: order.merchant,
                amount: order.amount,
                expires_at_ms,
            });
        }
    }
    put_order(tx, &order);
    Ok(())
}

/// Counts one more card payment of `payer` waiting for its bank, within the bound.
fn open_card_authorization(tx: &mut Tx<'_, '_>, payer: AccountId) -> TxResult {
    let mut wallet = tx.account(payer)?;
    if wallet.holder.card_authorizations >= CARD_AUTHORIZATIONS_PER_WALLET_MAX {
        return Err(Rejection::CardAuthorizationsExceeded.into());
    }
    wallet.holder.card_authorizations += 1;
    tx.put_account(&wallet);
    Ok(())
}

/// A card authorization hold is resolved (approved, declined, voided or expired): its
/// payer has one fewer waiting.
fn close_card_authorization(tx: &mut Tx<'_, '_>, order: &Order, hold: &Hold) -> TxResult {
    if !matches!(hold.purpose, HoldPurpose::CardAuthorization(_)) {
        return Ok(());
    }
    let payer = order.payer.ok_or(Rejection::OrderNotHeld)?;
    let mut wallet = tx.account(payer)?;
    wallet.holder.card_authorizations = wallet
        .holder
        .card_authorizations
        .checked_sub(1)
        .ok_or(Rejection::Overflow)?;
    tx.put_account(&wallet);
    Ok(())
}

/// Posts an order's hold in full: the order is paid.
fn complete_held(tx: &mut Tx<'_, '_>, order: &mut Order, hold: &Hold) -> TxResult {
    resolve_hold(tx, hold, hold.amount)?;
    close_card_authorization(tx, order, hold)?;
    order.status = OrderStatus::Paid;
    order.paid = hold.amount;
    order.hold = None;
    order.paid_at_ms = tx.now_ms();
    put_order(tx, order);
    tx.emit(Event::PaymentCompleted {
        order: order.id,
        payer: order.payer.unwrap_or_default(),
        merchant: order.merchant,
        amount: hold.amount,
    });
    Ok(())
}

/// Voids an order's hold: the money stays with the payer; the order is `next`.
fn void_held(tx: &mut Tx<'_, '_>, order: &mut Order, hold: &Hold, next: OrderStatus) -> TxResult {
    resolve_hold(tx, hold, 0)?;
    close_card_authorization(tx, order, hold)?;
    let payer = order.payer.unwrap_or_default();
    order.status = next;
    order.hold = None;
    if next == OrderStatus::Open {
        order.payer = None;
        order.funding = None;
    }
    put_order(tx, order);
    tx.emit(Event::PaymentVoided {
        order: order.id,
        payer,
        amount: hold.amount,
    });
    Ok(())
}

fn held(tx: &mut Tx<'_, '_>, order: &Order) -> TxResult<Hold> {
    match (order.status, order.hold) {
        (OrderStatus::Held, Some(id)) => find_hold(tx, id),
        _ => Err(Rejection::OrderNotHeld.into()),
    }
}

/// `ConfirmReceipt` by the payer: the escrowed payment goes to the merchant.
pub(crate) fn confirm_receipt(tx: &mut Tx<'_, '_>, sender: AccountId, id: OrderId) -> TxResult {
    let mut order = order(tx, id)?;
    if order.payer != Some(sender) {
        return Err(Rejection::NotPayer.into());
    }
    let hold = held(tx, &order)?;
    if !matches!(hold.purpose, HoldPurpose::Escrow(_)) {
        return Err(Rejection::OrderNotHeld.into());
    }
    complete_held(tx, &mut order, &hold)
}

/// `AuthorizeCardPayment` by the card's bank: posts (approve) or voids (decline) the hold
/// on its issuance account.
pub(crate) fn authorize_card_payment(
    tx: &mut Tx<'_, '_>,
    bank: InstitutionId,
    id: OrderId,
    approve: bool,
) -> TxResult {
    let mut order = order(tx, id)?;
    let hold = held(tx, &order)?;
    if !matches!(hold.purpose, HoldPurpose::CardAuthorization(_)) {
        return Err(Rejection::OrderNotHeld.into());
    }
    let funding = tx.account(hold.debit)?;
    if funding.institution != bank {
        return Err(Rejection::NotPermitted.into());
    }
    if approve {
        complete_held(tx, &mut order, &hold)
    } else {
        void_held(tx, &mut order, &hold, OrderStatus::Open)
    }
}

/// `CancelOrder`. The merchant cancels its own order, open or held (a held payment is
/// voided: the money stays with the payer). The payer of a held payment voids its own
/// payment: the hold is released and the order is open again for anyone to pay — a payer
/// never cancels the merchant's order. Anyone else: `NOT_PERMITTED`.
pub(crate) fn cancel_order(tx: &mut Tx<'_, '_>, sender: AccountId, id: OrderId) -> TxResult {
    let mut order = order(tx, id)?;
    let is_merchant = order.merchant == sender;
    let is_payer = order.payer == Some(sender);
    match order.status {
        OrderStatus::Open if is_merchant => {
            order.status = OrderStatus::Cancelled;
            put_order(tx, &order);
        }
        OrderStatus::Held if is_merchant => {
            let hold = held(tx, &order)?;
            void_held(tx, &mut order, &hold, OrderStatus::Cancelled)?;
        }
        OrderStatus::Held if is_payer => {
            let hold = held(tx, &order)?;
            return void_held(tx, &mut order, &hold, OrderStatus::Open);
        }
        OrderStatus::Open | OrderStatus::Held => return Err(Rejection::NotPermitted.into()),
        OrderStatus::Paid | OrderStatus::Cancelled => {
            return Err(Rejection::OrderNotCancellable.into());
        }
    }
    tx.emit(Event::OrderCancelled { order: id });
    Ok(())
}

/// `Refund` by the merchant, partial or full: the sum of refunds never exceeds what was
/// paid. The money goes back where it came from (wallet, or the card's bank).
pub(crate) fn refund(
    tx: &mut Tx<'_, '_>,
    sender: AccountId,
    body: Hash,
    id: TransferId,
    order_id: OrderId,
    amount: Amount,
) -> TxResult {
    let mut order = order(tx, order_id)?;
    if order.merchant != sender {
        return Err(Rejection::NotPermitted.into());
    }
    check_amount(amount)?;
    let (OrderStatus::Paid, Some(funding), Some(payer)) =
        (order.status, order.funding, order.payer)
    else {
        return Err(Rejection::OrderNotPaid.into());
    };
    // The disputed amount is held for the dispute's decision: no refund beside it.
    if crate::disputes::is_open(tx, Disputed::Order(order_id))? {
        return Err(Rejection::DisputeOpen.into());
    }
    let refunded = order
        .refunded
        .checked_add(amount)
        .ok_or(Rejection::Overflow)?;
    if refunded > order.paid {
        return Err(Rejection::RefundExceedsPaid.into());
    }
    claim_transfer_id(tx, id, body)?;
    // A refund of a card payment goes to the card's bank, but it is the payer's money:
    // a frozen or sanctioned payer receives no refund either way.
    let payer_account = tx.account(payer)?;
    screen(tx, &payer_account)?;
    post_linked(
        tx,
        &[Leg {
            debit: sender,
            credit: funding,
            amount,
        }],
        None,
    )?;
    order.refunded = refunded;
    put_order(tx, &order);
    tx.emit(Event::Refunded {
        id,
        order: order_id,
        payer,
        amount,
        refunded_total: refunded,
    });
    Ok(())
}

/// `CollectByCode`: the merchant submits the consumer's offline payment code (signature
/// checked in verification). The code must be signed by the payer's current device key,
/// issued at most ten minutes before it expires, within that window now, for this
/// merchant if it names one, used once, and the amount within its maximum. Offline codes cannot carry a
/// second factor, so above the payer's second-factor threshold they are refused.
pub(crate) fn collect_by_code(
    tx: &mut Tx<'_, '_>,
    merchant: AccountId,
    body: Hash,
    id: TransferId,
    code: &PaymentCode,
    amount: Amount,
) -> TxResult {
    tx.account_of_kind(merchant, AccountKind::Merchant)?;
    let payer = tx.account_of_kind(code.payer, AccountKind::ConsumerWallet)?;
    if payer.holder.key != code.payer_key {
        return Err(Rejection::WrongSigner.into());
    }
    // Good from its issue time, for at most ten minutes: a long-dated code never becomes
    // usable in its last minutes, and one shown later cannot have been made earlier.
    let lifetime_ms = code.expires_at_ms.checked_sub(code.issued_at_ms);
    if lifetime_ms.is_none_or(|ms| ms == 0 || ms > PAYMENT_CODE_LIFETIME_MS_MAX) {
        return Err(Rejection::InvalidField.into());
    }
    if tx.now_ms() < code.issued_at_ms {
        return Err(Rejection::PaymentCodeNotYetValid.into());
    }
    if tx.now_ms() >= code.expires_at_ms {
        return Err(Rejection::PaymentCodeExpired.into());
    }
    if code.merchant.is_some_and(|named| named != merchant) {
        return Err(Rejection::PaymentCodeWrongMerchant.into());
    }
    if amount > code.max_amount {
        return Err(Rejection::PaymentCodeExceeded.into());
    }
    let used = key::payment_code(code.payer_key, code.code_nonce);
    if tx.state.contains(&used)? {
        return Err(Rejection::PaymentCodeUsed.into());
    }
    tx.state.put(used, &());
    claim_transfer_id(tx, id, body)?;
    let cleared = clear_outflow(tx, code.payer, amount, Reach::Domestic)?;
    post_linked(
        tx,
        &[Leg {
            debit: code.payer,
            credit: merchant,
            amount,
        }],
        Some(cleared),
    )?;
    record_merchant_payment(
        tx,
        MerchantPayment {
            id,
            payer: code.payer,
            merchant,
            amount,
            currency: payer.currency,
            paid_at_ms: tx.now_ms(),
            reference: Memo::NONE,
        },
    );
    tx.emit(Event::CollectedByCode {
        id,
        payer: code.payer,
        merchant,
        amount,
    });
    Ok(())
}

fn record_merchant_payment(tx: &mut Tx<'_, '_>, payment: MerchantPayment) {
    tx.state.put(key::merchant_payment(payment.id), &payment);
}

/// `PayMerchant`: the consumer pays the merchant id read from a static QR code, with the
/// merchant's reference (till, order) from the code, so the merchant can match it.
pub(crate) fn pay_merchant(
    tx: &mut Tx<'_, '_>,
    payer: AccountId,
    body: Hash,
    id: TransferId,
    merchant: AccountId,
    amount: Amount,
    reference: &Memo,
) -> TxResult {
    let wallet = tx.account_of_kind(payer, AccountKind::ConsumerWallet)?;
    tx.account_of_kind(merchant, AccountKind::Merchant)?;
    // Checked when decoded; a memo built in memory is held to the same.
    if !reference.is_well_formed() {
        return Err(Rejection::InvalidField.into());
    }
    claim_transfer_id(tx, id, body)?;
    let cleared = clear_outflow(tx, payer, amount, Reach::Domestic)?;
    post_linked(
        tx,
        &[Leg {
            debit: payer,
            credit: merchant,
            amount,
        }],
        Some(cleared),
    )?;
    record_merchant_payment(
        tx,
        MerchantPayment {
            id,
            payer,
            merchant,
            amount,
            currency: wallet.currency,
            paid_at_ms: tx.now_ms(),
            reference: reference.clone(),
        },
    );
    tx.emit(Event::MerchantPaid {
        id,
        payer,
        merchant,
        amount,
        reference: reference.clone(),
    });
    Ok(())
}

/// The platform's fee on a settled amount. Rounds down: the merchant never pays a
/// fraction of a minor unit.
pub fn merchant_fee(amount: Amount, fee_bps: u16) -> Amount {
    let fee = u128::from(amount) * u128::from(fee_bps) / 10_000;
    // fee ≤ amount because fee_bps ≤ 10_000.
    Amount::try_from(fee).unwrap_or(amount)
}

/// `SettleMerchant`: moves `amount` out of the merchant's balance, the fee to the
/// platform's fee account and the rest to the acquiring bank's settlement account, as one
/// linked group.
pub(crate) fn settle_merchant(
    tx: &mut Tx<'_, '_>,
    merchant: AccountId,
    body: Hash,
    id: TransferId,
    amount: Amount,
) -> TxResult {
    let m = tx.account_of_kind(merchant, AccountKind::Merchant)?;
    check_amount(amount)?;
    claim_transfer_id(tx, id, body)?;
    let fee = merchant_fee(amount, m.holder.merchant_fee_bps);
    let net = amount - fee;
    let settlement =
        AccountId::institutional(m.institution, AccountKind::BankSettlement, m.currency);
    let fees = AccountId::institutional(tx.rules.platform, AccountKind::Fee, m.currency);
    let mut legs = Vec::with_capacity(2);
    if net > 0 {
        legs.push(Leg {
            debit: merchant,
            credit: settlement,
            amount: net,
        });
    }
    if fee > 0 {
        legs.push(Leg {
            debit: merchant,
            credit: fees,
            amount: fee,
        });
    }
    post_linked(tx, &legs, None)?;
    tx.emit(Event::MerchantSettled {
        id,
        merchant,
        bank: m.institution,
        net,
        fee,
    });
    Ok(())
}

/// An order's hold reached its expiry: an escrow is released to the merchant; an
/// unanswered card authorization is voided and the order can be paid again. (A dispute's
/// hold ends by [`crate::disputes::expire`].)
pub(crate) fn expire_hold(tx: &mut Tx<'_, '_>, hold: &Hold) -> TxResult {
    match hold.purpose {
        HoldPurpose::Escrow(id) => complete_held(tx, &mut order(tx, id)?, hold),
        HoldPurpose::CardAuthorization(id) => {
            void_held(tx, &mut order(tx, id)?, hold, OrderStatus::Open)
        }
        HoldPurpose::Dispute(_) => crate::disputes::expire(tx, hold),
    }
}
