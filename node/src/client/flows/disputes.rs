//! Disputes and refund requests: a payer disputes a completed payment or asks its merchant
//! for a refund; the deciding institution decides the dispute, the merchant answers the
//! request.

use super::*;
use tally_contracts::{DisputeOutcome, DisputeReason, Disputed};

fn disputed(arg: &DisputedArg) -> Result<(Disputed, String), CommandError> {
    match (arg.order, arg.bill, arg.payment) {
        (Some(id), None, None) => Ok((Disputed::Order(OrderId(id)), format!("order {id}"))),
        (None, Some(id), None) => Ok((Disputed::Bill(BillId(id)), format!("bill {id}"))),
        (None, None, Some(id)) => Ok((Disputed::Payment(TransferId(id)), format!("payment {id}"))),
        _ => Err(input("name the payment: one of --order, --bill, --payment")),
    }
}

fn reason(arg: DisputeReasonArg) -> DisputeReason {
    match arg {
        DisputeReasonArg::NotReceived => DisputeReason::NotReceived,
        DisputeReasonArg::NotAsDescribed => DisputeReason::NotAsDescribed,
        DisputeReasonArg::Unauthorized => DisputeReason::Unauthorized,
        DisputeReasonArg::Duplicate => DisputeReason::Duplicate,
        DisputeReasonArg::Cancelled => DisputeReason::Cancelled,
        DisputeReasonArg::IncorrectAmount => DisputeReason::IncorrectAmount,
    }
}

/// `tally wallet dispute`.
pub(super) fn open(
    signer: &AccountSigner,
    target: &DisputedArg,
    why: DisputeReasonArg,
    id: &TransferIdArg,
) -> Result<Plan, CommandError> {
    let (sender, key) = account_party(signer, "--account")?;
    let (disputed, what) = disputed(target)?;
    let kind = TxKind::OpenDispute {
        id: transfer_id(id)?,
        disputed,
        reason: reason(why),
    };
    Ok(plan("dispute", sender, vec![key], kind)
        .words(format!(
            "{what} disputed ({why:?}); the amount is held until decided"
        ))
        .expect("DisputeOpened"))
}

/// `tally institution decide-dispute`.
pub(super) fn decide(
    signer: &InstitutionSigner,
    target: &DisputedArg,
    outcome: DisputeOutcomeArg,
) -> Result<Plan, CommandError> {
    let (sender, key) = institution_party(signer)?;
    let (disputed, what) = disputed(target)?;
    let (outcome, words) = match outcome {
        DisputeOutcomeArg::Refund => (DisputeOutcome::Refund, "refunded to the payer"),
        DisputeOutcomeArg::Release => (DisputeOutcome::Release, "released to the merchant"),
    };
    let kind = TxKind::DecideDispute { disputed, outcome };
    Ok(plan("decide-dispute", sender, vec![key], kind)
        .words(format!("dispute of {what} decided: {words}"))
        .expect("DisputeResolved"))
}

/// `tally wallet request-refund`.
pub(super) async fn request_refund(
    client: &Client,
    signer: &AccountSigner,
    order: u128,
    amount: &AmountArg,
) -> Result<Plan, CommandError> {
    let (sender, key) = account_party(signer, "--account")?;
    let currency = currency_of(client, signer.account).await?;
    let money = amount_in(amount, currency)?;
    let kind = TxKind::RequestRefund {
        order: OrderId(order),
        amount: money.minor,
    };
    Ok(plan("request-refund", sender, vec![key], kind)
        .words(format!("a refund of {money} asked on order {order}"))
        .expect("RefundRequested")
        .in_currency(currency))
}

/// `tally merchant accept-refund` and `refuse-refund`.
pub(super) fn answer_refund(
    signer: &AccountSigner,
    order: u128,
    accept: Option<&TransferIdArg>,
) -> Result<Plan, CommandError> {
    let (sender, key) = account_party(signer, "--account")?;
    let order_id = OrderId(order);
    Ok(match accept {
        Some(id) => plan(
            "accept-refund",
            sender,
            vec![key],
            TxKind::AcceptRefundRequest {
                id: transfer_id(id)?,
                order: order_id,
            },
        )
        .words(format!(
            "the refund request on order {order} accepted and refunded"
        ))
        .expect("Refunded"),
        None => plan(
            "refuse-refund",
            sender,
            vec![key],
            TxKind::RefuseRefundRequest { order: order_id },
        )
        .words(format!("the refund request on order {order} refused"))
        .expect("RefundRequestAnswered"),
    })
}
