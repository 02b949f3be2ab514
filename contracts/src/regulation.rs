//! Regulation and risk: `Freeze` / `Unfreeze` and the sanctions list, by the regulator;
//! the outflow checks every consumer payment passes — frozen, sanctions, second factor,
//! the tier's single limit and the person's daily, yearly and cross-border totals.

use serde::{Deserialize, Serialize};
use tally_crypto::Hash;

use crate::context::{Tx, TxResult};
use crate::ledger::accounts::AccountKind;
use crate::state::key;
use crate::transaction::Roles;
use crate::types::{AccountId, Amount, DAY_MS, InstitutionId, TimeMs, utc_year};
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

/// What a person has sent in the current day and year of block time: what its tier's
/// daily and yearly limits (or its yearly cross-border quota) are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PersonOutflow {
    /// The UTC day (`time_ms / DAY_MS`) `day_total` counts.
    pub day: u64,
    pub day_total: u128,
    /// The UTC calendar year ([`utc_year`]) `year_total` counts.
    pub year: u64,
    pub year_total: u128,
}

impl PersonOutflow {
    /// The totals as of `time_ms`: those of a past day or year are zero.
    pub fn at(self, time_ms: TimeMs) -> PersonOutflow {
        let (day, year) = (time_ms / DAY_MS, utc_year(time_ms));
        PersonOutflow {
            day,
            day_total: if self.day == day { self.day_total } else { 0 },
            year,
            year_total: if self.year == year {
                self.year_total
            } else {
                0
            },
        }
    }

    fn add(&mut self, amount: Amount) -> Result<(), Rejection> {
        let add = |total: u128| {
            total
                .checked_add(u128::from(amount))
                .ok_or(Rejection::Overflow)
        };
        self.day_total = add(self.day_total)?;
        self.year_total = add(self.year_total)?;
        Ok(())
    }
}

/// Where an outflow goes: a cross-border transfer also counts against the person's yearly
/// cross-border quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    Domestic,
    CrossBorder,
}

/// The outflow checks, the same for every way money leaves a consumer or is committed on
/// its behalf (balance, card, payment code, bill, transfer, remittance, withdrawal): the
/// payer is a consumer wallet (merchants and billers move their money only by settlement
/// and refunds), not frozen, not sanctioned, the second factor co-signed above its
/// threshold, the amount within its tier's single limit, and the person's totals within
/// the tier's daily and yearly limits at the wallet's institution (and, abroad, within its
/// yearly cross-border quota everywhere). Counts the amount, before the money moves, in
/// the same transaction.
pub(crate) fn clear_outflow(
    tx: &mut Tx<'_, '_>,
    payer: AccountId,
    amount: Amount,
    reach: Reach,
) -> TxResult<ClearedOutflow> {
    let mut a = tx.account_of_kind(payer, AccountKind::ConsumerWallet)?;
    if a.frozen {
        return Err(Rejection::AccountFrozen.into());
    }
    let person = a.holder.identity;
    if tx.is_sanctioned(&person)? {
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
    let now = tx.now_ms();
    let k = key::person_outflow(a.institution, person, a.currency);
    let mut sent = tx
        .state
        .get::<PersonOutflow>(&k)?
        .unwrap_or_default()
        .at(now);
    sent.add(amount)?;
    if sent.day_total > u128::from(limits.daily_max) {
        return Err(Rejection::OverDailyLimit.into());
    }
    if sent.year_total > u128::from(limits.yearly_max) {
        return Err(Rejection::OverYearlyLimit.into());
    }
    if reach == Reach::CrossBorder {
        let k = key::cross_border_outflow(person, a.currency);
        let mut abroad = tx
            .state
            .get::<PersonOutflow>(&k)?
            .unwrap_or_default()
            .at(now);
        abroad.add(amount)?;
        if abroad.year_total > u128::from(limits.cross_border_yearly_max) {
            return Err(Rejection::CrossBorderQuotaExceeded.into());
        }
        tx.state.put(k, &abroad);
    }
    tx.state.put(k, &sent);
    // The wallet's own share of the day, shown with the account.
    let today = now / DAY_MS;
    let own = if a.holder.outflow_day == today {
        a.holder.outflow_today
    } else {
        0
    };
    a.holder.outflow_day = today;
    a.holder.outflow_today = own
        .checked_add(u128::from(amount))
        .ok_or(Rejection::Overflow)?;
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
