//! Movements of money: linked groups of legs that apply whole or not at all, holds
//! (pending transfers) that are later posted — in full or less — or voided, and the
//! idempotency of client-chosen transfer ids.
//!
//! Every posted leg between accounts of different institutions also records an interbank
//! obligation (see [`crate::interbank`]): that is how cross-institution payments reach the
//! settlement cycle without each contract remembering to do it.

use serde::{Deserialize, Serialize};
use tally_crypto::Hash;

use crate::Rejection;
use crate::context::TxError;
use crate::context::{Tx, TxResult};
use crate::interbank::record_obligation;
use crate::ledger::accounts::Account;
use crate::state::key;
use crate::types::{AMOUNT_MAX, AccountId, Amount, OrderId, TimeMs, TransferId};

/// One debit-credit pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Leg {
    pub debit: AccountId,
    pub credit: AccountId,
    pub amount: Amount,
}

/// What a transfer id was used for, so a retry can be told from a conflicting reuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRecord {
    /// Hash of the transaction kind (the body without sender nonce).
    pub body: Hash,
    pub height: u64,
}

/// Why money is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldPurpose {
    /// An order paid into escrow: posted on `ConfirmReceipt` or at expiry.
    Escrow(OrderId),
    /// An order paid by card waiting for the bank: posted on approval, voided on decline
    /// or at expiry.
    CardAuthorization(OrderId),
}

/// A pending transfer: `amount` reserved on `debit`, expected on `credit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: TransferId,
    pub debit: AccountId,
    pub credit: AccountId,
    pub amount: Amount,
    pub expires_at_ms: TimeMs,
    pub purpose: HoldPurpose,
}

pub(crate) fn check_amount(amount: Amount) -> TxResult {
    if amount == 0 || amount > AMOUNT_MAX {
        return Err(Rejection::InvalidAmount.into());
    }
    Ok(())
}

/// Claims a transfer id for this body. Applying the same id again answers "exists" (with
/// the same body) or "exists with different body"; either way nothing applies twice. A
/// rejected transaction's claim is dropped with the rest of its changes.
pub(crate) fn claim_transfer_id(tx: &mut Tx<'_, '_>, id: TransferId, body: Hash) -> TxResult {
    let k = key::transfer(id);
    if let Some(existing) = tx.state.get::<TransferRecord>(&k)? {
        return Err(if existing.body == body {
            Rejection::TransferExists
        } else {
            Rejection::TransferExistsWithDifferentBody
        }
        .into());
    }
    let height = tx.block.height;
    tx.state.put(k, &TransferRecord { body, height });
    Ok(())
}

/// Accounts a group touches, loaded once and written once.
struct Touched(Vec<Account>);

impl Touched {
    fn with<T>(
        &mut self,
        tx: &mut Tx<'_, '_>,
        id: AccountId,
        f: impl FnOnce(&mut Account) -> Result<T, Rejection>,
    ) -> TxResult<T> {
        if let Some(account) = self.0.iter_mut().find(|a| a.id == id) {
            return f(account).map_err(TxError::from);
        }
        let mut account = tx.account(id)?;
        let out = f(&mut account)?;
        self.0.push(account);
        Ok(out)
    }

    fn write(self, tx: &mut Tx<'_, '_>) {
        for account in &self.0 {
            tx.put_account(account);
        }
    }
}

/// Posts every leg or none: all checks (currency, frozen, floors, overflow) run against
/// the accounts as the earlier legs of the group leave them.
pub(crate) fn post_linked(tx: &mut Tx<'_, '_>, legs: &[Leg]) -> TxResult {
    let mut touched = Touched(Vec::with_capacity(legs.len() * 2));
    let mut crossings = Vec::new();
    for leg in legs {
        check_amount(leg.amount)?;
        if leg.debit == leg.credit {
            return Err(Rejection::SameAccount.into());
        }
        let (currency, from) = touched.with(tx, leg.debit, |a| {
            a.debit(leg.amount).map(|()| (a.currency, a.institution))
        })?;
        let to = touched.with(tx, leg.credit, |a| {
            if a.currency != currency {
                return Err(Rejection::CurrencyMismatch);
            }
            a.credit(leg.amount).map(|()| a.institution)
        })?;
        if from != to {
            crossings.push((currency, from, to, leg.amount));
        }
    }
    touched.write(tx);
    for (currency, from, to, amount) in crossings {
        record_obligation(tx, currency, from, to, amount)?;
    }
    Ok(())
}

/// Places a hold: reserves `hold.amount` on the debit account and records it as pending
/// on the credit account, until posted, voided, or expired at `hold.expires_at_ms`.
pub(crate) fn place_hold(tx: &mut Tx<'_, '_>, hold: &Hold) -> TxResult {
    check_amount(hold.amount)?;
    if hold.debit == hold.credit {
        return Err(Rejection::SameAccount.into());
    }
    let mut touched = Touched(Vec::with_capacity(2));
    let currency = touched.with(tx, hold.debit, |a| {
        a.reserve_debit(hold.amount).map(|()| a.currency)
    })?;
    touched.with(tx, hold.credit, |a| {
        if a.currency != currency {
            return Err(Rejection::CurrencyMismatch);
        }
        a.expect_credit(hold.amount)
    })?;
    touched.write(tx);
    tx.state.put(key::hold(hold.id), hold);
    tx.state.put(key::expiry(hold.expires_at_ms, hold.id), &());
    Ok(())
}

pub(crate) fn find_hold(tx: &mut Tx<'_, '_>, id: TransferId) -> TxResult<Hold> {
    tx.state
        .get(&key::hold(id))?
        .ok_or(TxError::Rejected(Rejection::OrderNotHeld))
}

/// Resolves a hold: posts `posted` of it (up to its amount) and releases the rest.
/// `posted == 0` voids it.
pub(crate) fn resolve_hold(tx: &mut Tx<'_, '_>, hold: &Hold, posted: Amount) -> TxResult {
    if posted > hold.amount {
        return Err(Rejection::InvalidAmount.into());
    }
    let mut touched = Touched(Vec::with_capacity(2));
    let (currency, from) = touched.with(tx, hold.debit, |a| {
        a.settle_debit(hold.amount, posted)
            .map(|()| (a.currency, a.institution))
    })?;
    let to = touched.with(tx, hold.credit, |a| {
        a.settle_credit(hold.amount, posted).map(|()| a.institution)
    })?;
    touched.write(tx);
    tx.state.delete(key::hold(hold.id));
    tx.state.delete(key::expiry(hold.expires_at_ms, hold.id));
    if posted > 0 && from != to {
        record_obligation(tx, currency, from, to, posted)?;
    }
    Ok(())
}
