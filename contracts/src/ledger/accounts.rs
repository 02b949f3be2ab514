//! Accounts. Every account is credit-normal: its balance is credits minus debits, so a
//! wallet holding money is positive and a bank's issuance account (the bank's liability for
//! the wallet money it issued) is negative. Per currency, balances sum to zero.

use serde::{Deserialize, Serialize};
use tally_crypto::{Hash, PublicKey};

use crate::Rejection;
use crate::types::{AccountId, Amount, Currency, InstitutionId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum AccountKind {
    ConsumerWallet = 1,
    Merchant = 2,
    Biller = 3,
    /// A bank's account for merchant settlement proceeds.
    BankSettlement = 4,
    /// Where a bank's wallet money comes from and returns to; may go negative down to the
    /// bank's issuance limit.
    BankIssuance = 5,
    /// An FX provider's liquidity in one currency; may go negative down to its credit line.
    FxLiquidity = 6,
    /// The payment platform's fee income.
    Fee = 7,
}

impl AccountKind {
    /// Kinds whose holder signs its own transactions with a device key.
    pub fn has_holder(self) -> bool {
        matches!(
            self,
            AccountKind::ConsumerWallet | AccountKind::Merchant | AccountKind::Biller
        )
    }
}

/// A key that must co-sign any debit above `threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondFactor {
    pub key: PublicKey,
    pub threshold: Amount,
}

/// The holder of a consumer, merchant or biller account: keys, nonce, KYC and risk state.
/// Institutional accounts have a default holder no key can sign for (the zero key is of
/// small order and never verifies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub key: PublicKey,
    pub nonce: u64,
    pub tier: u8,
    /// Hash of the identity the KYC institution verified; checked against sanctions.
    pub identity: Hash,
    pub second_factor: Option<SecondFactor>,
    /// The day (`time_ms / DAY_MS`) `outflow_today` counts.
    pub outflow_day: u64,
    /// This wallet's own outflow that day, for its holder to see. The tier's limits apply
    /// to the person's totals across its wallets ([`crate::query::person_outflow`]).
    pub outflow_today: u128,
    pub cards: u8,
    /// Card payments of this wallet waiting for their bank's approval (holds on the bank's
    /// issuance account the bank has not consented to), at most
    /// [`crate::CARD_AUTHORIZATIONS_PER_WALLET_MAX`].
    pub card_authorizations: u8,
    pub merchant_fee_bps: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub kind: AccountKind,
    pub currency: Currency,
    pub institution: InstitutionId,
    pub debits_posted: u128,
    pub debits_pending: u128,
    pub credits_posted: u128,
    pub credits_pending: u128,
    pub frozen: bool,
    /// How far below zero the balance may go: zero for customers, the issuance limit for
    /// a bank's issuance account, the credit line for FX liquidity.
    pub overdraft_limit: u128,
    pub holder: Holder,
}

fn signed(x: u128) -> i128 {
    // Totals are sums of amounts ≤ AMOUNT_MAX (< 2^50) over far fewer than 2^70 transfers.
    i128::try_from(x).unwrap_or(i128::MAX)
}

impl Holder {
    pub fn new(key: PublicKey, tier: u8, identity: Hash) -> Holder {
        Holder {
            key,
            nonce: 0,
            tier,
            identity,
            second_factor: None,
            outflow_day: 0,
            outflow_today: 0,
            cards: 0,
            card_authorizations: 0,
            merchant_fee_bps: 0,
        }
    }
}

impl Account {
    pub fn new(
        id: AccountId,
        kind: AccountKind,
        currency: Currency,
        institution: InstitutionId,
    ) -> Account {
        Account {
            id,
            kind,
            currency,
            institution,
            debits_posted: 0,
            debits_pending: 0,
            credits_posted: 0,
            credits_pending: 0,
            frozen: false,
            overdraft_limit: 0,
            holder: Holder::new(PublicKey([0; 32]), 0, Hash::ZERO),
        }
    }

    /// Posted balance: credits minus debits.
    pub fn balance(&self) -> i128 {
        signed(self.credits_posted) - signed(self.debits_posted)
    }

    /// What may still be debited: the posted balance minus reserved (pending) debits.
    /// Pending credits do not count until posted.
    pub fn available(&self) -> i128 {
        self.balance() - signed(self.debits_pending)
    }

    /// The lowest the available balance may go.
    pub fn floor(&self) -> i128 {
        -signed(self.overdraft_limit)
    }

    fn check_debit(&self, amount: Amount) -> Result<(), Rejection> {
        if self.frozen {
            return Err(Rejection::AccountFrozen);
        }
        if self.available() - i128::from(amount) < self.floor() {
            return Err(match self.kind {
                AccountKind::BankIssuance => Rejection::IssuanceLimitExceeded,
                _ => Rejection::InsufficientFunds,
            });
        }
        Ok(())
    }

    pub fn debit(&mut self, amount: Amount) -> Result<(), Rejection> {
        self.check_debit(amount)?;
        self.debits_posted = add(self.debits_posted, amount)?;
        Ok(())
    }

    pub fn credit(&mut self, amount: Amount) -> Result<(), Rejection> {
        if self.frozen {
            return Err(Rejection::AccountFrozen);
        }
        self.credits_posted = add(self.credits_posted, amount)?;
        Ok(())
    }

    /// Reserves a pending debit (the debit side of a hold).
    pub fn reserve_debit(&mut self, amount: Amount) -> Result<(), Rejection> {
        self.check_debit(amount)?;
        self.debits_pending = add(self.debits_pending, amount)?;
        Ok(())
    }

    /// Records a pending credit (the credit side of a hold).
    pub fn expect_credit(&mut self, amount: Amount) -> Result<(), Rejection> {
        if self.frozen {
            return Err(Rejection::AccountFrozen);
        }
        self.credits_pending = add(self.credits_pending, amount)?;
        Ok(())
    }

    /// Releases a hold's debit side and posts `posted` of it (0 when voided). A hold placed
    /// before a freeze still resolves: the money was already committed.
    pub fn settle_debit(&mut self, held: Amount, posted: Amount) -> Result<(), Rejection> {
        debug_assert!(posted <= held);
        self.debits_pending = sub(self.debits_pending, held)?;
        self.debits_posted = add(self.debits_posted, posted)?;
        Ok(())
    }

    pub fn settle_credit(&mut self, held: Amount, posted: Amount) -> Result<(), Rejection> {
        debug_assert!(posted <= held);
        self.credits_pending = sub(self.credits_pending, held)?;
        self.credits_posted = add(self.credits_posted, posted)?;
        Ok(())
    }
}

fn add(total: u128, amount: Amount) -> Result<u128, Rejection> {
    total
        .checked_add(u128::from(amount))
        .ok_or(Rejection::Overflow)
}

fn sub(total: u128, amount: Amount) -> Result<u128, Rejection> {
    total
        .checked_sub(u128::from(amount))
        .ok_or(Rejection::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wallet() -> Account {
        Account::new(
            AccountId(1),
            AccountKind::ConsumerWallet,
            Currency::CNY,
            InstitutionId(1),
        )
    }

    #[test]
    fn debits_stop_at_the_floor_counting_pending() {
        let mut a = wallet();
        a.credit(100).unwrap();
        a.reserve_debit(60).unwrap();
        assert_eq!(a.debit(41), Err(Rejection::InsufficientFunds));
        a.debit(40).unwrap();
        assert_eq!(a.available(), 0);
        a.settle_debit(60, 0).unwrap();
        assert_eq!(a.available(), 60);
    }

    #[test]
    fn issuance_goes_negative_to_its_limit() {
        let mut a = Account::new(
            AccountId(2),
            AccountKind::BankIssuance,
            Currency::CNY,
            InstitutionId(1),
        );
        a.overdraft_limit = 500;
        a.debit(500).unwrap();
        assert_eq!(a.balance(), -500);
        assert_eq!(a.debit(1), Err(Rejection::IssuanceLimitExceeded));
    }

    #[test]
    fn frozen_accounts_move_nothing() {
        let mut a = wallet();
        a.credit(10).unwrap();
        a.frozen = true;
        assert_eq!(a.debit(1), Err(Rejection::AccountFrozen));
        assert_eq!(a.credit(1), Err(Rejection::AccountFrozen));
    }
}
