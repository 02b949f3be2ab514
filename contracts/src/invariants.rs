//! Whole-state checks of the ledger's invariants. O(state): the node runs them after each
//! block in debug builds, tests run them after every step.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::StateStore;
use crate::disputes::{Dispute, DisputeStatus};
use crate::interbank::SettlementCycleRecord;
use crate::ledger::accounts::Account;
use crate::ledger::transfers::{Hold, HoldPurpose};
use crate::merchant::Order;
use crate::state::{decode_record, key};
use crate::types::{AccountId, Currency, CycleId, OrderId, TransferId};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvariantViolation {
    #[error("store: {0}")]
    Store(String),
    #[error("undecodable record at {key:02x?}")]
    Corrupt { key: Vec<u8> },
    #[error("{currency} posted balances sum to {sum}, not zero")]
    NotZeroSum { currency: Currency, sum: i128 },
    #[error("{currency} pending credits and debits differ by {difference}")]
    PendingNotBalanced {
        currency: Currency,
        difference: i128,
    },
    #[error("{account:?} is below its floor")]
    BelowFloor { account: AccountId },
    #[error("{account:?} pending totals differ from its holds")]
    PendingMismatch { account: AccountId },
    #[error("{order:?} refunded more than was paid")]
    RefundsExceedPaid { order: OrderId },
    #[error("hold {hold:?} has no transfer record")]
    HoldWithoutTransfer { hold: TransferId },
    #[error("cycle {cycle:?} net positions do not sum to zero")]
    NetPositionsNotZero { cycle: CycleId },
    #[error("{account:?} counts other card authorizations than its open ones")]
    CardAuthorizationsMismatch { account: AccountId },
    #[error("{account:?} is missing from, or wrongly in, its identity's index")]
    IdentityIndexMismatch { account: AccountId },
    #[error("dispute hold {hold:?} and its dispute disagree (open, amount, accounts, index)")]
    DisputeMismatch { hold: TransferId },
}

/// Every open dispute has its hold (same id, amount and accounts, and a `Dispute` purpose
/// naming it) and its entry in the open index; every dispute hold has its open dispute;
/// the open index holds nothing else. So a disputed amount is held exactly while its
/// dispute is open, and resolved with it.
fn check_disputes(
    store: &dyn StateStore,
    disputes: &[Dispute],
    holds: &[Hold],
) -> Result<(), InvariantViolation> {
    let mut open = 0usize;
    for d in disputes {
        let hold = holds.iter().find(|h| h.id == d.hold);
        let matches = hold.is_some_and(|h| {
            h.purpose == HoldPurpose::Dispute(d.disputed)
                && h.amount == d.amount
                && h.debit == d.held_from
                && h.credit == d.refund_to
        });
        let indexed = store
            .get(&key::open_dispute(d.opened_at_ms, d.disputed))
            .map_err(|e| InvariantViolation::Store(e.0))?
            .is_some();
        let consistent = match d.status {
            DisputeStatus::Open => {
                open += 1;
                matches && indexed
            }
            DisputeStatus::Resolved { .. } => hold.is_none() && !indexed,
        };
        if !consistent {
            return Err(InvariantViolation::DisputeMismatch { hold: d.hold });
        }
    }
    for h in holds {
        if let HoldPurpose::Dispute(disputed) = h.purpose {
            let owned = disputes.iter().any(|d| {
                d.disputed == disputed && d.hold == h.id && d.status == DisputeStatus::Open
            });
            if !owned {
                return Err(InvariantViolation::DisputeMismatch { hold: h.id });
            }
        }
    }
    let (start, end) = key::tag_range(key::OPEN_DISPUTE);
    let indexed = store
        .scan(&start, &end, usize::MAX)
        .map_err(|e| InvariantViolation::Store(e.0))?
        .len();
    if indexed != open {
        return Err(InvariantViolation::DisputeMismatch {
            hold: TransferId::default(),
        });
    }
    Ok(())
}

/// What the check saw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InvariantReport {
    pub accounts: usize,
    pub holds: usize,
    pub orders: usize,
    pub cycles: usize,
    /// Per currency, the sum of posted balances of customer accounts (wallets, merchants,
    /// billers): the wallet money outstanding.
    pub customer_money: BTreeMap<Currency, i128>,
}

fn all<T: DeserializeOwned>(store: &dyn StateStore, tag: u8) -> Result<Vec<T>, InvariantViolation> {
    let (start, end) = key::tag_range(tag);
    store
        .scan(&start, &end, usize::MAX)
        .map_err(|e| InvariantViolation::Store(e.0))?
        .into_iter()
        .map(|(k, v)| {
            decode_record(&k, &v).map_err(|_| InvariantViolation::Corrupt { key: k.clone() })
        })
        .collect()
}

/// Checks, over the whole state: per currency posted balances sum to zero and pending
/// debits equal pending credits; no account's available balance is below its floor; each
/// account's pending totals equal the sum of its holds; every hold's transfer id is
/// claimed; no order refunded more than was paid; every settlement cycle's net positions
/// sum to zero per currency; each wallet's count of card payments waiting for their bank
/// equals its open card-authorization holds; the identity index holds exactly every
/// holder's account under its identity. (That a transfer id applies at most once is structural: one
/// record per id, claimed in the same layer as the movement.)
pub fn check_invariants(store: &dyn StateStore) -> Result<InvariantReport, InvariantViolation> {
    let accounts: Vec<Account> = all(store, key::ACCOUNT)?;
    let holds: Vec<Hold> = all(store, key::HOLD)?;
    let orders: Vec<Order> = all(store, key::ORDER)?;
    let cycles: Vec<SettlementCycleRecord> = all(store, key::CYCLE)?;
    let disputes: Vec<Dispute> = all(store, key::DISPUTE)?;
    check_disputes(store, &disputes, &holds)?;

    let mut held: BTreeMap<AccountId, (u128, u128)> = BTreeMap::new();
    for hold in &holds {
        held.entry(hold.debit).or_default().0 += u128::from(hold.amount);
        held.entry(hold.credit).or_default().1 += u128::from(hold.amount);
        let claimed = store
            .get(&key::transfer(hold.id))
            .map_err(|e| InvariantViolation::Store(e.0))?
            .is_some();
        if !claimed {
            return Err(InvariantViolation::HoldWithoutTransfer { hold: hold.id });
        }
    }

    // Open card authorizations per payer, from the holds and their orders.
    let payers: BTreeMap<OrderId, AccountId> = orders
        .iter()
        .filter_map(|o| o.payer.map(|p| (o.id, p)))
        .collect();
    let mut authorizations: BTreeMap<AccountId, u32> = BTreeMap::new();
    for hold in &holds {
        if let HoldPurpose::CardAuthorization(order) = hold.purpose {
            let payer = payers.get(&order).copied().unwrap_or_default();
            *authorizations.entry(payer).or_default() += 1;
        }
    }

    // The identity index (what a sanctions listing stops) holds every holder's account
    // under its identity, and nothing else.
    let (start, end) = key::tag_range(key::IDENTITY_ACCOUNT);
    let indexed = store
        .scan(&start, &end, usize::MAX)
        .map_err(|e| InvariantViolation::Store(e.0))?;
    let holders: BTreeMap<Vec<u8>, AccountId> = accounts
        .iter()
        .filter(|a| a.kind.has_holder())
        .map(|a| {
            (
                key::identity_account(a.holder.identity, a.id).to_vec(),
                a.id,
            )
        })
        .collect();
    for (k, _) in &indexed {
        if !holders.contains_key(k) {
            let account = k
                .last_chunk::<16>()
                .map(|b| AccountId(u128::from_be_bytes(*b)))
                .unwrap_or_default();
            return Err(InvariantViolation::IdentityIndexMismatch { account });
        }
    }
    if indexed.len() != holders.len() {
        let listed: Vec<&Vec<u8>> = indexed.iter().map(|(k, _)| k).collect();
        let missing = holders
            .iter()
            .find(|(k, _)| listed.binary_search(k).is_err())
            .map(|(_, id)| *id)
            .unwrap_or_default();
        return Err(InvariantViolation::IdentityIndexMismatch { account: missing });
    }

    let mut posted: BTreeMap<Currency, i128> = BTreeMap::new();
    let mut pending: BTreeMap<Currency, i128> = BTreeMap::new();
    let mut report = InvariantReport {
        accounts: accounts.len(),
        holds: holds.len(),
        orders: orders.len(),
        cycles: cycles.len(),
        ..InvariantReport::default()
    };
    for a in &accounts {
        *posted.entry(a.currency).or_default() += a.balance();
        let pending_net = i128::try_from(a.credits_pending).unwrap_or(i128::MAX)
            - i128::try_from(a.debits_pending).unwrap_or(i128::MAX);
        *pending.entry(a.currency).or_default() += pending_net;
        if a.kind.has_holder() {
            *report.customer_money.entry(a.currency).or_default() += a.balance();
        }
        if a.available() < a.floor() || a.balance() < a.floor() {
            return Err(InvariantViolation::BelowFloor { account: a.id });
        }
        let open = authorizations.remove(&a.id).unwrap_or_default();
        if open != u32::from(a.holder.card_authorizations) {
            return Err(InvariantViolation::CardAuthorizationsMismatch { account: a.id });
        }
        let (debits, credits) = held.get(&a.id).copied().unwrap_or_default();
        if debits != a.debits_pending || credits != a.credits_pending {
            return Err(InvariantViolation::PendingMismatch { account: a.id });
        }
    }
    // A card authorization whose payer is not an account is counted nowhere.
    if let Some((account, _)) = authorizations.pop_first() {
        return Err(InvariantViolation::CardAuthorizationsMismatch { account });
    }
    for (currency, sum) in posted {
        if sum != 0 {
            return Err(InvariantViolation::NotZeroSum { currency, sum });
        }
    }
    for (currency, difference) in pending {
        if difference != 0 {
            return Err(InvariantViolation::PendingNotBalanced {
                currency,
                difference,
            });
        }
    }
    for order in &orders {
        if order.refunded > order.paid {
            return Err(InvariantViolation::RefundsExceedPaid { order: order.id });
        }
    }
    for cycle in &cycles {
        let mut sums: BTreeMap<Currency, i128> = BTreeMap::new();
        for p in &cycle.positions {
            *sums.entry(p.currency).or_default() += p.net;
        }
        if sums.values().any(|s| *s != 0) {
            return Err(InvariantViolation::NetPositionsNotZero { cycle: cycle.id });
        }
    }
    Ok(report)
}
