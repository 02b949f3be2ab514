//! Read access to committed records, for queries, audit reports and tests: records by id,
//! bounded scans of one kind of record, and the postings each event stands for.
//!
//! Nothing here writes. Scans take a limit and answer at most that many records, in key
//! order, so a caller can page on from the last one it got.

use serde::Serialize;
use tally_crypto::Hash;

use crate::state::{State, decode_record, key};
use crate::{
    Account, AccountId, AccountKind, Amount, Bill, BillId, Currency, CycleId, Dispute,
    DisputeOutcome, Disputed, Event, ExecutionError, Hold, Institution, InstitutionId, Ledger,
    Memo, MerchantPayment, Order, OrderId, PersonOutflow, RefundRequest, SettlementCycleRecord,
    StateStore, TimeMs, TransferId, TxKind,
};

pub fn account(store: &dyn StateStore, id: AccountId) -> Result<Option<Account>, ExecutionError> {
    State::new(store).get(&key::account(id))
}
pub fn institution(
    store: &dyn StateStore,
    id: InstitutionId,
) -> Result<Option<Institution>, ExecutionError> {
    State::new(store).get(&key::institution(id))
}
/// Every institution, by id: the directory pages and reports name them from.
pub fn institutions(store: &dyn StateStore) -> Result<Vec<Institution>, ExecutionError> {
    let (start, end) = key::tag_range(key::INSTITUTION);
    store
        .scan(&start, &end, usize::MAX)?
        .iter()
        .map(|(k, v)| decode_record(k, v))
        .collect()
}
pub fn order(store: &dyn StateStore, id: OrderId) -> Result<Option<Order>, ExecutionError> {
    State::new(store).get(&key::order(id))
}
pub fn bill(store: &dyn StateStore, id: BillId) -> Result<Option<Bill>, ExecutionError> {
    State::new(store).get(&key::bill(id))
}
/// The recovery announced for `account` and not yet due, if any.
pub fn recovery(
    store: &dyn StateStore,
    account: AccountId,
) -> Result<Option<crate::PendingRecovery>, ExecutionError> {
    State::new(store).get(&key::recovery(account))
}
pub fn hold(store: &dyn StateStore, id: TransferId) -> Result<Option<Hold>, ExecutionError> {
    State::new(store).get(&key::hold(id))
}
/// The dispute of a payment, open or resolved.
pub fn dispute(
    store: &dyn StateStore,
    disputed: Disputed,
) -> Result<Option<Dispute>, ExecutionError> {
    State::new(store).get(&key::dispute(disputed))
}
/// A static-QR or payment-code payment, by its transfer id.
pub fn merchant_payment(
    store: &dyn StateStore,
    id: TransferId,
) -> Result<Option<MerchantPayment>, ExecutionError> {
    State::new(store).get(&key::merchant_payment(id))
}
/// The refund request waiting on an order.
pub fn refund_request(
    store: &dyn StateStore,
    order: OrderId,
) -> Result<Option<RefundRequest>, ExecutionError> {
    State::new(store).get(&key::refund_request(order))
}

/// An open dispute and how long it has been open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgedDispute {
    pub dispute: Dispute,
    /// Milliseconds from its opening to `now_ms` (the head's block time, for a report).
    pub age_ms: u64,
}

/// Where a page of [`open_disputes`] goes on: after this dispute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OpenDisputesCursor {
    pub opened_at_ms: TimeMs,
    pub disputed: Disputed,
}

/// The open disputes, oldest first, for the regulator: from after `after` (the oldest when
/// `None`), at most `limit`, each with its age at `now_ms`. One bounded scan of an index
/// kept only for open disputes.
pub fn open_disputes(
    store: &dyn StateStore,
    after: Option<OpenDisputesCursor>,
    limit: usize,
    now_ms: TimeMs,
) -> Result<Vec<AgedDispute>, ExecutionError> {
    let (first, end) = key::tag_range(key::OPEN_DISPUTE);
    let start: Vec<u8> = match after {
        None => first,
        // Just past `after`'s own key.
        Some(c) => [&key::open_dispute(c.opened_at_ms, c.disputed)[..], &[0]].concat(),
    };
    store
        .scan(&start, &end, limit)?
        .iter()
        .map(|(k, _)| {
            let corrupt = || ExecutionError::Corrupt { key: k.clone() };
            let disputed = k
                .last_chunk::<17>()
                .and_then(Disputed::from_key_bytes)
                .ok_or_else(corrupt)?;
            let dispute = dispute(store, disputed)?.ok_or_else(corrupt)?;
            Ok(AgedDispute {
                age_ms: now_ms.saturating_sub(dispute.opened_at_ms),
                dispute,
            })
        })
        .collect()
}

pub fn cycle(
    store: &dyn StateStore,
    id: CycleId,
) -> Result<Option<SettlementCycleRecord>, ExecutionError> {
    State::new(store).get(&key::cycle(id))
}

/// Accounts in id order, starting after `after` (from the first when `None`), at most
/// `limit` of them.
pub fn accounts(
    store: &dyn StateStore,
    after: Option<AccountId>,
    limit: usize,
) -> Result<Vec<Account>, ExecutionError> {
    let (first, end) = key::tag_range(key::ACCOUNT);
    let start: Vec<u8> = match after {
        None => first,
        Some(AccountId(u128::MAX)) => return Ok(Vec::new()),
        Some(AccountId(id)) => key::account(AccountId(id.saturating_add(1))).into(),
    };
    store
        .scan(&start, &end, limit)?
        .iter()
        .map(|(k, v)| decode_record(k, v))
        .collect()
}

/// What a person (identity digest) has sent from its wallets in `currency` at
/// `institution`, as of `time_ms` (totals of a past day or year read zero): what its
/// tier's daily and yearly limits are checked against.
pub fn person_outflow(
    store: &dyn StateStore,
    institution: InstitutionId,
    identity: Hash,
    currency: Currency,
    time_ms: TimeMs,
) -> Result<PersonOutflow, ExecutionError> {
    let found: Option<PersonOutflow> =
        State::new(store).get(&key::person_outflow(institution, identity, currency))?;
    Ok(found.unwrap_or_default().at(time_ms))
}

/// What a person has sent abroad from its wallets in `currency`, everywhere, as of
/// `time_ms`: what its yearly cross-border quota is checked against.
pub fn cross_border_outflow(
    store: &dyn StateStore,
    identity: Hash,
    currency: Currency,
    time_ms: TimeMs,
) -> Result<PersonOutflow, ExecutionError> {
    let found: Option<PersonOutflow> =
        State::new(store).get(&key::cross_border_outflow(identity, currency))?;
    Ok(found.unwrap_or_default().at(time_ms))
}

/// Whether `identity` is on the sanctions list: one keyed read.
pub fn is_sanctioned(store: &dyn StateStore, identity: Hash) -> Result<bool, ExecutionError> {
    Ok(store.get(&key::sanction(identity))?.is_some())
}

/// Identities on the sanctions list in hash order, starting after `after`, at most
/// `limit` of them.
pub fn sanctions(
    store: &dyn StateStore,
    after: Option<Hash>,
    limit: usize,
) -> Result<Vec<Hash>, ExecutionError> {
    let (first, end) = key::tag_range(key::SANCTION);
    let start: Vec<u8> = match after {
        None => first,
        // Just past `after`'s own key.
        Some(identity) => [&key::sanction(identity)[..], &[0]].concat(),
    };
    store
        .scan(&start, &end, limit)?
        .iter()
        .map(|(k, _)| {
            k.strip_prefix(&[key::SANCTION])
                .and_then(|rest| <[u8; 32]>::try_from(rest).ok())
                .map(Hash)
                .ok_or_else(|| ExecutionError::Corrupt { key: k.clone() })
        })
        .collect()
}

/// The accounts registered with `identity` (wallets, merchants, billers) in id order,
/// starting after `after`, at most `limit` of them. One indexed scan: what a listing of
/// `identity` stops.
pub fn identity_accounts(
    store: &dyn StateStore,
    identity: Hash,
    after: Option<AccountId>,
    limit: usize,
) -> Result<Vec<Account>, ExecutionError> {
    let start: Vec<u8> = match after {
        None => key::identity_account(identity, AccountId(0)).into(),
        Some(AccountId(u128::MAX)) => return Ok(Vec::new()),
        Some(AccountId(id)) => key::identity_account(identity, AccountId(id + 1)).into(),
    };
    let end = key::identity_accounts_end(identity);
    store
        .scan(&start, &end, limit)?
        .iter()
        .map(|(k, _)| {
            let id = k
                .last_chunk::<16>()
                .map(|b| AccountId(u128::from_be_bytes(*b)))
                .ok_or_else(|| ExecutionError::Corrupt { key: k.clone() })?;
            account_of(store, id)
        })
        .collect()
}

/// An account a sanctions listing stops, with the listed identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SanctionedAccount {
    pub identity: Hash,
    pub account: Account,
}

/// Where a page of [`sanctioned_accounts`] goes on: this identity's accounts after
/// `after` (all of them when `None`), then the identities listed after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SanctionsCursor {
    pub identity: Hash,
    pub after: Option<AccountId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SanctionsPage {
    pub accounts: Vec<SanctionedAccount>,
    /// `None` at the end of the list.
    pub next: Option<SanctionsCursor>,
}

/// The accounts the sanctions list stops, for the regulator: listed identities in hash
/// order, each with its accounts in id order, from `from` (the start of the list when
/// `None`). At most `limit` accounts and `limit` identities per page, each found by
/// keyed reads and bounded scans.
pub fn sanctioned_accounts(
    store: &dyn StateStore,
    from: Option<SanctionsCursor>,
    limit: usize,
) -> Result<SanctionsPage, ExecutionError> {
    let first_after = |after: Option<Hash>| -> Result<Option<SanctionsCursor>, ExecutionError> {
        Ok(sanctions(store, after, 1)?
            .first()
            .map(|identity| SanctionsCursor {
                identity: *identity,
                after: None,
            }))
    };
    let mut next = match from {
        Some(cursor) => Some(cursor),
        None => first_after(None)?,
    };
    let mut accounts = Vec::new();
    let mut looked = 0;
    while let Some(cursor) = next {
        if accounts.len() >= limit || looked >= limit {
            return Ok(SanctionsPage {
                accounts,
                next: Some(cursor),
            });
        }
        looked += 1;
        // A cursor's identity may have left the list since the last page.
        if store.get(&key::sanction(cursor.identity))?.is_some() {
            let room = limit - accounts.len();
            let batch = identity_accounts(store, cursor.identity, cursor.after, room)?;
            let filled = batch.len() == room;
            let last = batch.last().map(|a| a.id);
            accounts.extend(batch.into_iter().map(|account| SanctionedAccount {
                identity: cursor.identity,
                account,
            }));
            if filled {
                return Ok(SanctionsPage {
                    accounts,
                    next: Some(SanctionsCursor {
                        identity: cursor.identity,
                        after: last,
                    }),
                });
            }
        }
        next = first_after(Some(cursor.identity))?;
    }
    Ok(SanctionsPage {
        accounts,
        next: None,
    })
}

/// Open holds in transfer-id order, at most `limit` of them.
pub fn holds(store: &dyn StateStore, limit: usize) -> Result<Vec<Hold>, ExecutionError> {
    let (start, end) = key::tag_range(key::HOLD);
    store
        .scan(&start, &end, limit)?
        .iter()
        .map(|(k, v)| decode_record(k, v))
        .collect()
}

/// An interbank obligation not yet netted by a settlement cycle: `from` owes `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Obligation {
    pub currency: Currency,
    pub from: InstitutionId,
    pub to: InstitutionId,
    pub amount: u128,
}

/// Open obligations in (currency, from, to) order, at most `limit` of them.
pub fn obligations(
    store: &dyn StateStore,
    limit: usize,
) -> Result<Vec<Obligation>, ExecutionError> {
    let (start, end) = key::tag_range(key::OBLIGATION);
    store
        .scan(&start, &end, limit)?
        .iter()
        .map(|(k, v)| {
            let corrupt = || ExecutionError::Corrupt { key: k.clone() };
            let rest = k.strip_prefix(&[key::OBLIGATION]).ok_or_else(corrupt)?;
            let (currency, rest) = rest.split_first_chunk::<3>().ok_or_else(corrupt)?;
            let (from, rest) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
            let to: [u8; 4] = rest.try_into().map_err(|_| corrupt())?;
            Ok(Obligation {
                currency: Currency(*currency),
                from: InstitutionId(u32::from_be_bytes(*from)),
                to: InstitutionId(u32::from_be_bytes(to)),
                amount: decode_record(k, v)?,
            })
        })
        .collect()
}

/// One posted debit-credit pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Posting {
    pub debit: AccountId,
    pub credit: AccountId,
    pub amount: Amount,
}

/// Money an event moved: who paid whom how much (in the payer's currency), and the
/// postings that made it, exactly as the ledger posted them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Movement {
    pub kind: &'static str,
    pub from: AccountId,
    pub to: AccountId,
    pub amount: Amount,
    pub currency: Currency,
    pub postings: Vec<Posting>,
    /// What the payer wrote for the payee: a transfer's memo, a merchant payment's QR
    /// reference; empty for the rest.
    pub note: Memo,
}

fn record<T>(found: Option<T>, k: &[u8]) -> Result<T, ExecutionError> {
    found.ok_or_else(|| ExecutionError::Corrupt { key: k.to_vec() })
}

fn account_of(store: &dyn StateStore, id: AccountId) -> Result<Account, ExecutionError> {
    record(account(store, id)?, &key::account(id))
}

fn order_of(store: &dyn StateStore, id: OrderId) -> Result<Order, ExecutionError> {
    record(order(store, id)?, &key::order(id))
}

/// The posted money movement an event records, if it records one (holds placed or voided
/// post nothing). `kind` is the transaction that caused the event, when one did: a
/// remittance's event does not name its FX provider.
///
/// What the event leaves out is read from committed state that later blocks do not change:
/// an account's currency and institution, a paid order's funding account, the platform.
pub fn movement(
    store: &dyn StateStore,
    event: &Event,
    kind: Option<&TxKind>,
) -> Result<Option<Movement>, ExecutionError> {
    let one = |name, from: AccountId, to: AccountId, amount: Amount, currency| Movement {
        kind: name,
        from,
        to,
        amount,
        currency,
        postings: vec![Posting {
            debit: from,
            credit: to,
            amount,
        }],
        note: Memo::NONE,
    };
    let currency_of = |id| account_of(store, id).map(|a| a.currency);
    Ok(Some(match event {
        Event::ToppedUp {
            account,
            bank,
            amount,
            ..
        } => {
            let currency = currency_of(*account)?;
            let issuance = AccountId::institutional(*bank, AccountKind::BankIssuance, currency);
            one("ToppedUp", issuance, *account, *amount, currency)
        }
        Event::Withdrawn {
            account,
            bank,
            amount,
            ..
        } => {
            let currency = currency_of(*account)?;
            let issuance = AccountId::institutional(*bank, AccountKind::BankIssuance, currency);
            one("Withdrawn", *account, issuance, *amount, currency)
        }
        Event::TransferReceived {
            from,
            to,
            amount,
            memo,
            ..
        } => Movement {
            note: memo.clone(),
            ..one("TransferReceived", *from, *to, *amount, currency_of(*from)?)
        },
        Event::PaymentCompleted {
            order,
            merchant,
            amount,
            ..
        } => {
            let o = order_of(store, *order)?;
            let funding = record(o.funding, &key::order(*order))?;
            one("PaymentCompleted", funding, *merchant, *amount, o.currency)
        }
        Event::Refunded { order, amount, .. } => {
            let o = order_of(store, *order)?;
            let funding = record(o.funding, &key::order(*order))?;
            one("Refunded", o.merchant, funding, *amount, o.currency)
        }
        Event::CollectedByCode {
            payer,
            merchant,
            amount,
            ..
        } => one(
            "CollectedByCode",
            *payer,
            *merchant,
            *amount,
            currency_of(*payer)?,
        ),
        Event::MerchantPaid {
            payer,
            merchant,
            amount,
            reference,
            ..
        } => Movement {
            note: reference.clone(),
            ..one(
                "MerchantPaid",
                *payer,
                *merchant,
                *amount,
                currency_of(*payer)?,
            )
        },
        Event::BillPaid {
            payer,
            biller,
            amount,
            ..
        } => one("BillPaid", *payer, *biller, *amount, currency_of(*payer)?),
        Event::MerchantSettled {
            merchant,
            bank,
            net,
            fee,
            ..
        } => {
            let currency = currency_of(*merchant)?;
            let settlement = AccountId::institutional(*bank, AccountKind::BankSettlement, currency);
            let platform = Ledger::rules(store)?.platform;
            let fees = AccountId::institutional(platform, AccountKind::Fee, currency);
            let mut postings = Vec::with_capacity(2);
            if *net > 0 {
                postings.push(Posting {
                    debit: *merchant,
                    credit: settlement,
                    amount: *net,
                });
            }
            if *fee > 0 {
                postings.push(Posting {
                    debit: *merchant,
                    credit: fees,
                    amount: *fee,
                });
            }
            Movement {
                kind: "MerchantSettled",
                from: *merchant,
                to: settlement,
                amount: net.saturating_add(*fee),
                currency,
                postings,
                note: Memo::NONE,
            }
        }
        Event::RemittanceCredited {
            sender,
            beneficiary,
            debited,
            debit_currency,
            credited,
            credit_currency,
            ..
        } => {
            let Some(TxKind::CrossBorderTransfer { provider, .. }) = kind else {
                return Err(ExecutionError::Corrupt {
                    key: key::account(*sender).into(),
                });
            };
            let liquidity =
                |currency| AccountId::institutional(*provider, AccountKind::FxLiquidity, currency);
            Movement {
                kind: "RemittanceCredited",
                from: *sender,
                to: *beneficiary,
                amount: *debited,
                currency: *debit_currency,
                postings: vec![
                    Posting {
                        debit: *sender,
                        credit: liquidity(*debit_currency),
                        amount: *debited,
                    },
                    Posting {
                        debit: liquidity(*credit_currency),
                        credit: *beneficiary,
                        amount: *credited,
                    },
                ],
                note: Memo::NONE,
            }
        }
        Event::DisputeResolved {
            outcome: DisputeOutcome::Refund,
            held_from,
            refund_to,
            amount,
            ..
        } => one(
            "DisputeRefunded",
            *held_from,
            *refund_to,
            *amount,
            currency_of(*held_from)?,
        ),
        _ => return Ok(None),
    }))
}
