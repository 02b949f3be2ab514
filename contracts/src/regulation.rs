//! Regulation and risk: `Freeze` / `Unfreeze` and the sanctions list, by the regulator;
//! KYC-tier single and daily outflow limits and the second-factor rule, applied to every
//! debit a holder's account makes.

use tally_crypto::Hash;

use crate::context::{Tx, TxResult};
use crate::ledger::accounts::AccountKind;
use crate::state::key;
use crate::transaction::Roles;
use crate::types::{AccountId, Amount, DAY_MS, InstitutionId};
use crate::{Event, Rejection};

/// Proof that one consumer payment passed the outflow checks in this transaction: who
/// pays and how much. Only [`clear_outflow`] makes one, and the ledger's posting helpers
/// ([`crate::ledger::transfers::post_linked`], [`crate::ledger::transfers::place_hold`])
/// demand one for every leg that spends a consumer's money — a debit of a wallet, or card
/// money from a bank's issuance account towards anyone but the wallet itself — so a flow
/// that skips the checks cannot move the money.
#[must_use = "the outflow is cleared for one posting: hand it to the ledger"]
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ClearedOutflow {
    payer: AccountId,
    amount: Amount,
}

impl ClearedOutflow {
    pub fn payer(&self) -> AccountId {
        self.payer
    }

    pub fn amount(&self) -> Amount {
        self.amount
    }
}

/// The outflow checks, the same for every way money leaves a consumer or is committed on
/// its behalf (balance, card, payment code, bill, transfer, remittance, withdrawal): the
/// payer is a consumer wallet (merchants and billers move their money only by settlement
/// and refunds), not frozen, not sanctioned, the second factor co-signed above its
/// threshold, and the amount fits the tier's single and daily limits. Counts the amount
/// against today's outflow, before the money moves, in the same transaction.
pub(crate) fn clear_outflow(
    tx: &mut Tx<'_, '_>,
    payer: AccountId,
    amount: Amount,
) -> TxResult<ClearedOutflow> {
    let mut a = tx.account_of_kind(payer, AccountKind::ConsumerWallet)?;
    if a.frozen {
        return Err(Rejection::AccountFrozen.into());
    }
    if tx.is_sanctioned(&a.holder.identity)? {
        return Err(Rejection::Sanctioned.into());
    }
    let second_factor_missing = a
        .holder
        .second_factor
        .is_some_and(|second| amount > second.threshold && !tx.signed_by(&second.key));
    if second_factor_missing {
        return Err(Rejection::SecondFactorRequired.into());
    }
    let limits = tx
        .rules
        .tier(a.holder.tier)
        .ok_or(Rejection::InvalidField)?;
    if amount > limits.single_max {
        return Err(Rejection::OverSingleLimit.into());
    }
    let today = tx.now_ms() / DAY_MS;
    let spent = if a.holder.outflow_day == today {
        a.holder.outflow_today
    } else {
        0
    };
    let spent = spent
        .checked_add(u128::from(amount))
        .ok_or(Rejection::Overflow)?;
    if spent > u128::from(limits.daily_max) {
        return Err(Rejection::OverDailyLimit.into());
    }
    a.holder.outflow_day = today;
    a.holder.outflow_today = spent;
    tx.put_account(&a);
    Ok(ClearedOutflow { payer, amount })
}

fn regulator(tx: &Tx<'_, '_>, sender: InstitutionId) -> TxResult {
    tx.institution_with(sender, Roles::REGULATOR).map(|_| ())
}

/// `Freeze` by the regulator: the account can neither send nor receive until unfrozen.
pub(crate) fn freeze(
    tx: &mut Tx<'_, '_>,
    sender: InstitutionId,
    account: AccountId,
    reason: Hash,
) -> TxResult {
    regulator(tx, sender)?;
    let mut a = tx.account(account)?;
    a.frozen = true;
    tx.put_account(&a);
    tx.emit(Event::AccountFrozen { account, reason });
    Ok(())
}

pub(crate) fn unfreeze(tx: &mut Tx<'_, '_>, sender: InstitutionId, account: AccountId) -> TxResult {
    regulator(tx, sender)?;
    let mut a = tx.account(account)?;
    a.frozen = false;
    tx.put_account(&a);
    tx.emit(Event::AccountUnfrozen { account });
    Ok(())
}

/// Sanctioned identities (hashes: no personal data on chain) cannot register and cannot
/// receive cross-border transfers.
pub(crate) fn add_sanction(tx: &mut Tx<'_, '_>, sender: InstitutionId, identity: Hash) -> TxResult {
    regulator(tx, sender)?;
    tx.state.put(key::sanction(identity), &());
    tx.emit(Event::SanctionAdded { identity });
    Ok(())
}

pub(crate) fn remove_sanction(
    tx: &mut Tx<'_, '_>,
    sender: InstitutionId,
    identity: Hash,
) -> TxResult {
    regulator(tx, sender)?;
    tx.state.delete(key::sanction(identity));
    tx.emit(Event::SanctionRemoved { identity });
    Ok(())
}
