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
use crate::ledger::accounts::{Account, AccountKind};
use crate::regulation::ClearedOutflow;
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
    /// A disputed payment's amount: posted back to where the payment came from (refund)
    /// or voided (released to the merchant) by the decision, or by the rule at expiry.
    Dispute(crate::Disputed),
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

/// Accounts a group touches, loaded once and written once. When `screen` is set (new
/// movements, not the resolution of holds placed earlier), each account is checked as it
/// is first loaded: not frozen, and, for an account with a holder, its identity not on the
/// sanctions list (one keyed read: O(log n) in the size of state).
struct Touched {
    accounts: Vec<Account>,
    screen: bool,
}

impl Touched {
    fn new(capacity: usize, screen: bool) -> Touched {
        Touched {
            accounts: Vec::with_capacity(capacity),
            screen,
        }
    }

    fn get(&mut self, tx: &mut Tx<'_, '_>, id: AccountId) -> TxResult<&mut Account> {
        let at = match self.accounts.iter().position(|a| a.id == id) {
            Some(at) => at,
            None => {
                let account = tx.account(id)?;
                if self.screen {
                    screen(tx, &account)?;
                }
                self.accounts.push(account);
                self.accounts.len() - 1
            }
        };
        self.accounts
            .get_mut(at)
            .ok_or(TxError::Rejected(Rejection::AccountNotFound))
    }

    fn with<T>(
        &mut self,
        tx: &mut Tx<'_, '_>,
        id: AccountId,
        f: impl FnOnce(&mut Account) -> Result<T, Rejection>,
    ) -> TxResult<T> {
        f(self.get(tx, id)?).map_err(TxError::from)
    }

    fn write(self, tx: &mut Tx<'_, '_>) {
        for account in &self.accounts {
            tx.put_account(account);
        }
    }
}

/// May this account take part in a new movement: not frozen, and not held by a sanctioned
/// identity. Every new movement of every flow screens every account it touches here, so
/// listing an identity stops all its accounts at once.
pub(crate) fn screen(tx: &Tx<'_, '_>, account: &Account) -> TxResult {
    if account.frozen {
        return Err(Rejection::AccountFrozen.into());
    }
    if account.kind.has_holder() && tx.is_sanctioned(&account.holder.identity)? {
        return Err(Rejection::Sanctioned.into());
    }
    Ok(())
}

/// Does moving money from `debit` to `credit` spend a consumer's money: a debit of a
/// consumer wallet, or card money (a bank's issuance account) paid to anyone but a wallet
/// (a top-up credits the wallet itself; everything else from issuance is a card payment).
fn spends_for_consumer(debit: &Account, credit: &Account) -> bool {
    match debit.kind {
        AccountKind::ConsumerWallet => true,
        AccountKind::BankIssuance => credit.kind != AccountKind::ConsumerWallet,
        _ => false,
    }
}

/// The outflow clearance a group may use: one, for exactly one leg that spends a
/// consumer's money, of its payer and amount.
struct Clearance(Option<ClearedOutflow>);

impl Clearance {
    fn cover(&mut self, debit: &Account, credit: &Account, amount: Amount) -> TxResult {
        if !spends_for_consumer(debit, credit) {
            return Ok(());
        }
        let covered = self.0.take().is_some_and(|cleared| {
            cleared.amount() == amount
                && (debit.kind != AccountKind::ConsumerWallet || cleared.payer() == debit.id)
        });
        // A flow that reaches here without clearing the outflow is a bug in this crate:
        // tests stop on it; a release build refuses the transaction.
        debug_assert!(
            covered,
            "{:?} spends for a consumer without the outflow checks",
            debit.id
        );
        if covered {
            Ok(())
        } else {
            Err(Rejection::NotPermitted.into())
        }
    }

    /// A clearance nothing used is a flow that checked one payment and made another.
    fn finish(self) -> TxResult {
        debug_assert!(self.0.is_none(), "cleared outflow {:?} not used", self.0);
        match self.0 {
            None => Ok(()),
            Some(_) => Err(Rejection::NotPermitted.into()),
        }
    }
}

/// Posts every leg or none: all checks (frozen, sanctions, outflow clearance, currency,
/// floors, overflow) run against the accounts as the earlier legs of the group leave them.
/// `outflow` clears the one leg that spends a consumer's money, if any.
pub(crate) fn post_linked(
    tx: &mut Tx<'_, '_>,
    legs: &[Leg],
    outflow: Option<ClearedOutflow>,
) -> TxResult {
    let mut clearance = Clearance(outflow);
    let mut touched = Touched::new(legs.len() * 2, true);
    let mut crossings = Vec::new();
    for leg in legs {
        check_amount(leg.amount)?;
        if leg.debit == leg.credit {
            return Err(Rejection::SameAccount.into());
        }
        let debit = touched.get(tx, leg.debit)?.clone();
        let credit = touched.get(tx, leg.credit)?.clone();
        clearance.cover(&debit, &credit, leg.amount)?;
        touched.with(tx, leg.debit, |a| a.debit(leg.amount))?;
        if credit.currency != debit.currency {
            return Err(Rejection::CurrencyMismatch.into());
        }
        touched.with(tx, leg.credit, |a| a.credit(leg.amount))?;
        if debit.institution != credit.institution {
            crossings.push((
                debit.currency,
                debit.institution,
                credit.institution,
                leg.amount,
            ));
        }
    }
    clearance.finish()?;
    touched.write(tx);
    for (currency, from, to, amount) in crossings {
        record_obligation(tx, currency, from, to, amount)?;
    }
    Ok(())
}

/// Places a hold: reserves `hold.amount` on the debit account and records it as pending
/// on the credit account, until posted, voided, or expired at `hold.expires_at_ms`.
/// `outflow` clears it when it spends a consumer's money.
pub(crate) fn place_hold(
    tx: &mut Tx<'_, '_>,
    hold: &Hold,
    outflow: Option<ClearedOutflow>,
) -> TxResult {
    check_amount(hold.amount)?;
    if hold.debit == hold.credit {
        return Err(Rejection::SameAccount.into());
    }
    let mut clearance = Clearance(outflow);
    let mut touched = Touched::new(2, true);
    let debit = touched.get(tx, hold.debit)?.clone();
    let credit = touched.get(tx, hold.credit)?.clone();
    clearance.cover(&debit, &credit, hold.amount)?;
    clearance.finish()?;
    touched.with(tx, hold.debit, |a| a.reserve_debit(hold.amount))?;
    if credit.currency != debit.currency {
        return Err(Rejection::CurrencyMismatch.into());
    }
    touched.with(tx, hold.credit, |a| a.expect_credit(hold.amount))?;
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
    // A hold placed before a freeze or a sanction still resolves by its rules: the money
    // was committed when it was placed.
    let mut touched = Touched::new(2, false);
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::governance::{Rules, TierLimits};
    use crate::regulation::{Reach, clear_outflow};
    use crate::state::State;
    use crate::types::{Currency, InstitutionId};
    use crate::{BlockContext, MemoryStore};
    use tally_crypto::{Hash, PublicKey};

    fn rules() -> Rules {
        Rules {
            chain_id: "t".into(),
            currencies: vec![Currency::CNY],
            platform: InstitutionId(1),
            governance_keys: Vec::new(),
            governance_threshold: 1,
            tiers: vec![TierLimits {
                single_max: 1_000,
                daily_max: 1_000,
                yearly_max: 1_000,
                cross_border_yearly_max: 1_000,
            }],
            merchant_fee_bps_max: 0,
            corridors: Vec::new(),
            disputes: crate::governance::DisputeRules::default(),
            travel_rule_thresholds: Vec::new(),
            recovery_delay_ms: crate::governance::RECOVERY_DELAY_MS_DEFAULT,
        }
    }

    fn wallet(id: u128) -> Account {
        let mut a = Account::new(
            AccountId(id),
            AccountKind::ConsumerWallet,
            Currency::CNY,
            InstitutionId(1),
        );
        a.holder.key = PublicKey([id as u8; 32]);
        a.holder.identity = Hash::digest("person", &id.to_le_bytes());
        a.credits_posted = 500;
        a
    }

    /// Runs `f` on a transaction over two funded wallets, 1 and 2: what it returned, or
    /// `None` if it stopped on a debug assertion.
    fn attempt(f: impl FnOnce(&mut Tx<'_, '_>) -> TxResult) -> Option<Result<(), Rejection>> {
        let store = MemoryStore::new();
        let mut state = State::new(&store);
        let rules = rules();
        let block = BlockContext {
            height: 1,
            time_ms: 1_800_000_000_000,
        };
        let mut tx = Tx::new(&mut state, &rules, block, &[]);
        tx.put_account(&wallet(1));
        tx.put_account(&wallet(2));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut tx)));
        outcome.ok().map(|r| match r {
            Ok(()) => Ok(()),
            Err(TxError::Rejected(r)) => Err(r),
            Err(TxError::Failed(e)) => panic!("{e}"),
        })
    }

    /// A test build stops at the bug; a release build refuses the transaction.
    fn refused_as_a_bug(outcome: Option<Result<(), Rejection>>) {
        if cfg!(debug_assertions) {
            assert_eq!(outcome, None);
        } else {
            assert_eq!(outcome, Some(Err(Rejection::NotPermitted)));
        }
    }

    const LEG: Leg = Leg {
        debit: AccountId(1),
        credit: AccountId(2),
        amount: 10,
    };

    #[test]
    fn a_wallet_pays_only_with_the_outflow_checks_proof() {
        refused_as_a_bug(attempt(|tx| post_linked(tx, &[LEG], None)));
        let hold = Hold {
            id: TransferId(1),
            debit: AccountId(1),
            credit: AccountId(2),
            amount: 10,
            expires_at_ms: 1_900_000_000_000,
            purpose: HoldPurpose::Escrow(OrderId(1)),
        };
        refused_as_a_bug(attempt(|tx| place_hold(tx, &hold, None)));
        assert_eq!(
            attempt(|tx| {
                let cleared = clear_outflow(tx, AccountId(1), 10, Reach::Domestic)?;
                post_linked(tx, &[LEG], Some(cleared))
            }),
            Some(Ok(()))
        );
    }

    #[test]
    fn a_proof_covers_only_the_payment_it_cleared() {
        // Another amount, another payer, or a proof left unused.
        refused_as_a_bug(attempt(|tx| {
            let cleared = clear_outflow(tx, AccountId(1), 9, Reach::Domestic)?;
            post_linked(tx, &[LEG], Some(cleared))
        }));
        refused_as_a_bug(attempt(|tx| {
            let cleared = clear_outflow(tx, AccountId(2), 10, Reach::Domestic)?;
            post_linked(tx, &[LEG], Some(cleared))
        }));
        refused_as_a_bug(attempt(|tx| {
            let cleared = clear_outflow(tx, AccountId(1), 10, Reach::Domestic)?;
            let back = Leg {
                debit: AccountId(2),
                credit: AccountId(1),
                amount: 10,
            };
            let cleared_2 = clear_outflow(tx, AccountId(2), 10, Reach::Domestic)?;
            post_linked(tx, &[back], Some(cleared_2))?;
            post_linked(tx, &[], Some(cleared))
        }));
    }
}
