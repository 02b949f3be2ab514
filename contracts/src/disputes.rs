//! Disputes (chargebacks) and refund requests: what a payer can do about a completed
//! payment besides asking nicely, and asking nicely.
//!
//! **Disputes.** The payer of a paid order, a paid bill, or a static-QR or payment-code
//! payment disputes it within the governance window, with a reason. What the merchant (or
//! biller) still holds of it is held at once — from its own balance if that covers it,
//! otherwise from its acquirer's settlement account (the acquirer answers for the
//! merchants it signed up, so draining the balance first does not escape the dispute). The
//! institution that stands behind the money decides: the card's bank for a card payment,
//! the wallet's institution otherwise. A refund posts the hold back to where the payment
//! came from; a release voids it. At the deadline the hold expires and the rule in force
//! when the dispute opened ends it. One dispute per payment, ever; the hold is resolved
//! once, by whichever comes first.
//!
//! Attackers: a payer disputing twice (`DISPUTE_EXISTS`) or someone else's payment
//! (`NOT_PAYER`); a merchant draining its balance before the hold (the reserve pays); a
//! merchant refunding beside an open dispute, so the payer gets the money twice
//! (`DISPUTE_OPEN`); a bank deciding a dispute that is not its own (`NOT_PERMITTED`).
//!
//! **Refund requests.** The payer of a paid order asks for a refund of part or all of what
//! it still has there; the merchant accepts (a `Refund`, by its rules) or refuses.

use serde::{Deserialize, Serialize};
use tally_crypto::Hash;

use crate::context::{Tx, TxError, TxResult};
use crate::ledger::accounts::AccountKind;
use crate::ledger::transfers::{
    Hold, HoldPurpose, check_amount, claim_transfer_id, find_hold, place_hold, resolve_hold,
};
use crate::merchant::{self, MerchantPayment, OrderStatus};
use crate::state::key;
use crate::transaction::{DisputeOutcome, DisputeReason, Disputed};
use crate::types::{AccountId, Amount, InstitutionId, OrderId, TimeMs, TransferId};
use crate::{Bill, Event, Rejection};

/// Where a dispute stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DisputeStatus {
    Open,
    Resolved {
        outcome: DisputeOutcome,
        /// `None`: the deadline's rule ended it.
        decided_by: Option<InstitutionId>,
        at_ms: TimeMs,
    },
}

/// A dispute of one payment. Kept after it is resolved, so the payment is never disputed
/// again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute {
    pub disputed: Disputed,
    /// The hold on the disputed amount (the id the payer chose).
    pub hold: TransferId,
    pub payer: AccountId,
    /// The merchant or biller paid.
    pub merchant: AccountId,
    /// Where the amount is held: the merchant's account, or its acquirer's settlement account.
    pub held_from: AccountId,
    /// Where a refund goes: the account the payment came from (the wallet, or the card
    /// bank's issuance account).
    pub refund_to: AccountId,
    pub amount: Amount,
    pub reason: DisputeReason,
    /// Who decides: the card's bank, or the wallet's institution.
    pub decider: InstitutionId,
    pub opened_at_ms: TimeMs,
    pub deadline_ms: TimeMs,
    /// How it ends if undecided at the deadline: the rule in force when it opened.
    pub default_outcome: DisputeOutcome,
    pub status: DisputeStatus,
}

/// A payer's request for a refund of a paid order, waiting for the merchant's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub order: OrderId,
    pub payer: AccountId,
    pub merchant: AccountId,
    pub amount: Amount,
    pub requested_at_ms: TimeMs,
}

/// A completed payment as a dispute sees it.
struct Paid {
    payer: AccountId,
    merchant: AccountId,
    funding: AccountId,
    /// What the merchant still has of it (paid less refunded).
    outstanding: Amount,
    paid_at_ms: TimeMs,
}

fn paid(tx: &Tx<'_, '_>, disputed: Disputed) -> TxResult<Paid> {
    match disputed {
        Disputed::Order(id) => {
            let order = merchant::order(tx, id)?;
            let (OrderStatus::Paid, Some(payer), Some(funding)) =
                (order.status, order.payer, order.funding)
            else {
                return Err(Rejection::OrderNotPaid.into());
            };
            Ok(Paid {
                payer,
                merchant: order.merchant,
                funding,
                outstanding: order
                    .paid
                    .checked_sub(order.refunded)
                    .ok_or(Rejection::Overflow)?,
                paid_at_ms: order.paid_at_ms,
            })
        }
        Disputed::Bill(id) => {
            let bill: Bill = tx
                .state
                .get(&key::bill(id))?
                .ok_or(TxError::Rejected(Rejection::BillNotFound))?;
            let payer = bill.paid_by.ok_or(Rejection::BillNotPaid)?;
            Ok(Paid {
                payer,
                merchant: bill.biller,
                funding: payer,
                outstanding: bill.amount,
                paid_at_ms: bill.paid_at_ms,
            })
        }
        Disputed::Payment(id) => {
            let payment: MerchantPayment = tx
                .state
                .get(&key::merchant_payment(id))?
                .ok_or(TxError::Rejected(Rejection::PaymentNotFound))?;
            Ok(Paid {
                payer: payment.payer,
                merchant: payment.merchant,
                funding: payment.payer,
                outstanding: payment.amount,
                paid_at_ms: payment.paid_at_ms,
            })
        }
    }
}

fn find(tx: &Tx<'_, '_>, disputed: Disputed) -> TxResult<Option<Dispute>> {
    Ok(tx.state.get(&key::dispute(disputed))?)
}

/// Whether `disputed` has a dispute waiting for its decision.
pub(crate) fn is_open(tx: &Tx<'_, '_>, disputed: Disputed) -> TxResult<bool> {
    Ok(find(tx, disputed)?.is_some_and(|d| d.status == DisputeStatus::Open))
}

/// `OpenDispute` by the payer.
pub(crate) fn open_dispute(
    tx: &mut Tx<'_, '_>,
    sender: AccountId,
    body: Hash,
    id: TransferId,
    disputed: Disputed,
    reason: DisputeReason,
) -> TxResult {
    let paid = paid(tx, disputed)?;
    if paid.payer != sender {
        return Err(Rejection::NotPayer.into());
    }
    if find(tx, disputed)?.is_some() {
        return Err(Rejection::DisputeExists.into());
    }
    let rules = tx.rules.disputes;
    let now = tx.now_ms();
    if now >= paid.paid_at_ms.saturating_add(rules.window_ms) {
        return Err(Rejection::DisputeWindowClosed.into());
    }
    if paid.outstanding == 0 {
        return Err(Rejection::NothingToDispute.into());
    }
    let amount = paid.outstanding;
    check_amount(amount)?;
    claim_transfer_id(tx, id, body)?;
    let funding = tx.account(paid.funding)?;
    let decider = if funding.kind == AccountKind::BankIssuance {
        funding.institution
    } else {
        tx.account(paid.payer)?.institution
    };
    let merchant = tx.account(paid.merchant)?;
    let held_from = if merchant.available() >= i128::from(amount) {
        merchant.id
    } else {
        let reserve = AccountId::institutional(
            merchant.institution,
            AccountKind::BankSettlement,
            merchant.currency,
        );
        // An acquirer without a settlement account (no bank role) has no reserve.
        if tx.find_account(reserve)?.is_none() {
            return Err(Rejection::InsufficientFunds.into());
        }
        reserve
    };
    let deadline_ms = now
        .checked_add(rules.decision_ms)
        .ok_or(Rejection::Overflow)?;
    // Neither side is a consumer paying: no outflow clearance. Both accounts are screened
    // as for any new movement (frozen, sanctioned).
    place_hold(
        tx,
        &Hold {
            id,
            debit: held_from,
            credit: paid.funding,
            amount,
            expires_at_ms: deadline_ms,
            purpose: HoldPurpose::Dispute(disputed),
        },
        None,
    )?;
    tx.state.put(
        key::dispute(disputed),
        &Dispute {
            disputed,
            hold: id,
            payer: paid.payer,
            merchant: paid.merchant,
            held_from,
            refund_to: paid.funding,
            amount,
            reason,
            decider,
            opened_at_ms: now,
            deadline_ms,
            default_outcome: rules.default,
            status: DisputeStatus::Open,
        },
    );
    tx.state.put(key::open_dispute(now, disputed), &());
    tx.emit(Event::DisputeOpened {
        disputed,
        payer: paid.payer,
        merchant: paid.merchant,
        amount,
        reason,
        decider,
        held_from,
        deadline_ms,
    });
    Ok(())
}

/// `DecideDispute` by the deciding institution.
pub(crate) fn decide_dispute(
    tx: &mut Tx<'_, '_>,
    sender: InstitutionId,
    disputed: Disputed,
    outcome: DisputeOutcome,
) -> TxResult {
    let dispute = find(tx, disputed)?.ok_or(Rejection::DisputeNotFound)?;
    if dispute.decider != sender {
        return Err(Rejection::NotPermitted.into());
    }
    if dispute.status != DisputeStatus::Open {
        return Err(Rejection::DisputeNotOpen.into());
    }
    resolve(tx, dispute, outcome, Some(sender))
}

/// A dispute's hold reached its deadline: the rule it opened under ends it.
pub(crate) fn expire(tx: &mut Tx<'_, '_>, hold: &Hold) -> TxResult {
    let HoldPurpose::Dispute(disputed) = hold.purpose else {
        return Err(Rejection::DisputeNotFound.into());
    };
    let dispute = find(tx, disputed)?.ok_or(Rejection::DisputeNotFound)?;
    if dispute.status != DisputeStatus::Open || dispute.hold != hold.id {
        return Err(Rejection::DisputeNotOpen.into());
    }
    let outcome = dispute.default_outcome;
    resolve(tx, dispute, outcome, None)
}

/// Ends an open dispute: its hold is posted (refund) or voided (release), exactly once —
/// the hold is gone afterwards, and the dispute is no longer open.
fn resolve(
    tx: &mut Tx<'_, '_>,
    mut dispute: Dispute,
    outcome: DisputeOutcome,
    decided_by: Option<InstitutionId>,
) -> TxResult {
    let hold = find_hold(tx, dispute.hold)?;
    let posted = match outcome {
        DisputeOutcome::Refund => dispute.amount,
        DisputeOutcome::Release => 0,
    };
    resolve_hold(tx, &hold, posted)?;
    if let (DisputeOutcome::Refund, Disputed::Order(id)) = (outcome, dispute.disputed) {
        // A refunded order counts the chargeback as refunded: the merchant cannot refund
        // it a second time.
        let mut order = merchant::order(tx, id)?;
        order.refunded = order
            .refunded
            .checked_add(dispute.amount)
            .ok_or(Rejection::Overflow)?;
        merchant::put_order(tx, &order);
    }
    let now = tx.now_ms();
    tx.state
        .delete(key::open_dispute(dispute.opened_at_ms, dispute.disputed));
    dispute.status = DisputeStatus::Resolved {
        outcome,
        decided_by,
        at_ms: now,
    };
    tx.state.put(key::dispute(dispute.disputed), &dispute);
    tx.emit(Event::DisputeResolved {
        disputed: dispute.disputed,
        payer: dispute.payer,
        merchant: dispute.merchant,
        amount: dispute.amount,
        outcome,
        decided_by,
        held_from: dispute.held_from,
        refund_to: dispute.refund_to,
    });
    Ok(())
}

/// `RequestRefund` by the payer of a paid order: at most what it still has there.
pub(crate) fn request_refund(
    tx: &mut Tx<'_, '_>,
    sender: AccountId,
    order_id: OrderId,
    amount: Amount,
) -> TxResult {
    let order = merchant::order(tx, order_id)?;
    if order.status != OrderStatus::Paid {
        return Err(Rejection::OrderNotPaid.into());
    }
    if order.payer != Some(sender) {
        return Err(Rejection::NotPayer.into());
    }
    check_amount(amount)?;
    let outstanding = order
        .paid
        .checked_sub(order.refunded)
        .ok_or(Rejection::Overflow)?;
    if amount > outstanding {
        return Err(Rejection::RefundExceedsPaid.into());
    }
    if is_open(tx, Disputed::Order(order_id))? {
        return Err(Rejection::DisputeOpen.into());
    }
    let k = key::refund_request(order_id);
    if tx.state.contains(&k)? {
        return Err(Rejection::RefundRequestExists.into());
    }
    tx.state.put(
        k,
        &RefundRequest {
            order: order_id,
            payer: sender,
            merchant: order.merchant,
            amount,
            requested_at_ms: tx.now_ms(),
        },
    );
    tx.emit(Event::RefundRequested {
        order: order_id,
        payer: sender,
        merchant: order.merchant,
        amount,
    });
    Ok(())
}

/// The request on `order_id`, which must be `sender`'s order.
fn waiting_request(
    tx: &Tx<'_, '_>,
    sender: AccountId,
    order_id: OrderId,
) -> TxResult<RefundRequest> {
    let order = merchant::order(tx, order_id)?;
    if order.merchant != sender {
        return Err(Rejection::NotPermitted.into());
    }
    tx.state
        .get(&key::refund_request(order_id))?
        .ok_or(TxError::Rejected(Rejection::RefundRequestNotFound))
}

/// `AcceptRefundRequest` by the merchant: the refund is made under the `Refund` rules
/// (never above what was paid, not beside an open dispute, the payer screened).
pub(crate) fn accept_refund_request(
    tx: &mut Tx<'_, '_>,
    sender: AccountId,
    body: Hash,
    id: TransferId,
    order_id: OrderId,
) -> TxResult {
    let request = waiting_request(tx, sender, order_id)?;
    merchant::refund(tx, sender, body, id, order_id, request.amount)?;
    answer(tx, &request, true)
}

/// `RefuseRefundRequest` by the merchant.
pub(crate) fn refuse_refund_request(
    tx: &mut Tx<'_, '_>,
    sender: AccountId,
    order_id: OrderId,
) -> TxResult {
    let request = waiting_request(tx, sender, order_id)?;
    answer(tx, &request, false)
}

fn answer(tx: &mut Tx<'_, '_>, request: &RefundRequest, accepted: bool) -> TxResult {
    tx.state.delete(key::refund_request(request.order));
    tx.emit(Event::RefundRequestAnswered {
        order: request.order,
        payer: request.payer,
        merchant: request.merchant,
        amount: request.amount,
        accepted,
    });
    Ok(())
}
