//! Utility bills: billers registered by their acquirer issue bills; a consumer pays
//! exactly the amount due, once.

use serde::{Deserialize, Serialize};
use tally_crypto::{Hash, PublicKey};

use crate::consumer::{NewHolder, register_holder};
use crate::context::{Tx, TxError, TxResult};
use crate::ledger::accounts::AccountKind;
use crate::ledger::transfers::{Leg, check_amount, claim_transfer_id, post_linked};
use crate::regulation::{Reach, clear_outflow};
use crate::state::key;
use crate::transaction::Roles;
use crate::types::{AccountId, Amount, BillId, Currency, InstitutionId, TimeMs, TransferId};
use crate::{Event, Rejection};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bill {
    pub id: BillId,
    pub biller: AccountId,
    /// Hash of the biller's customer reference (no personal data on chain).
    pub customer: Hash,
    pub amount: Amount,
    pub currency: Currency,
    pub due_ms: TimeMs,
    pub paid_by: Option<AccountId>,
    /// When it was paid (0 until then): the dispute window runs from it.
    pub paid_at_ms: TimeMs,
}

/// `RegisterBiller`: sent by the biller's acquirer, co-signed by the biller's key.
pub(crate) fn register_biller(
    tx: &mut Tx<'_, '_>,
    acquirer: InstitutionId,
    account: AccountId,
    key: PublicKey,
    currency: Currency,
    identity: Hash,
) -> TxResult {
    tx.institution_with(acquirer, Roles::ACQUIRER)?;
    tx.require_cosigner(&key)?;
    let biller = register_holder(
        tx,
        NewHolder {
            account,
            kind: AccountKind::Biller,
            key,
            currency,
            institution: acquirer,
            tier: 0,
            identity,
            fee_bps: 0,
        },
    )?;
    tx.put_account(&biller);
    tx.emit(Event::BillerRegistered {
        biller: account,
        acquirer,
    });
    Ok(())
}

pub(crate) fn issue_bill(
    tx: &mut Tx<'_, '_>,
    biller: AccountId,
    id: BillId,
    customer: Hash,
    amount: Amount,
    due_ms: TimeMs,
) -> TxResult {
    let b = tx.account_of_kind(biller, AccountKind::Biller)?;
    check_amount(amount)?;
    let k = key::bill(id);
    if tx.state.contains(&k)? {
        return Err(Rejection::BillExists.into());
    }
    tx.state.put(
        k,
        &Bill {
            id,
            biller,
            customer,
            amount,
            currency: b.currency,
            due_ms,
            paid_by: None,
            paid_at_ms: 0,
        },
    );
    tx.emit(Event::BillIssued {
        bill: id,
        biller,
        customer,
        amount,
        due_ms,
    });
    Ok(())
}

/// `PayBill`: the amount must equal the amount due; a bill is paid once. Paying after the
/// due date is allowed (the biller decides about late fees off chain).
pub(crate) fn pay_bill(
    tx: &mut Tx<'_, '_>,
    payer: AccountId,
    body: Hash,
    id: TransferId,
    bill_id: BillId,
    amount: Amount,
) -> TxResult {
    let k = key::bill(bill_id);
    let mut bill: Bill = tx
        .state
        .get(&k)?
        .ok_or(TxError::Rejected(Rejection::BillNotFound))?;
    let consumer = tx.account_of_kind(payer, AccountKind::ConsumerWallet)?;
    if bill.paid_by.is_some() {
        return Err(Rejection::BillAlreadyPaid.into());
    }
    if amount != bill.amount {
        return Err(Rejection::BillAmountMismatch.into());
    }
    if consumer.currency != bill.currency {
        return Err(Rejection::CurrencyMismatch.into());
    }
    claim_transfer_id(tx, id, body)?;
    let cleared = clear_outflow(tx, payer, amount, Reach::Domestic)?;
    post_linked(
        tx,
        &[Leg {
            debit: payer,
            credit: bill.biller,
            amount,
        }],
        Some(cleared),
    )?;
    bill.paid_by = Some(payer);
    bill.paid_at_ms = tx.now_ms();
    tx.state.put(k, &bill);
    tx.emit(Event::BillPaid {
        id,
        bill: bill_id,
        payer,
        biller: bill.biller,
        amount,
    });
    Ok(())
}
