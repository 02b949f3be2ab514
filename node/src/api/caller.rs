//! Who is asking, and what they may read.
//!
//! A request signed (RFC 9421, see [`tally_wire::signature`]) with `keyid="institution:ID"` or
//! `keyid="account:ID"` is checked against that party's key in the ledger state at the head:
//! the institution's key, or the account's device key. A key rotated or recovered on chain
//! takes effect with the block that commits it. An institution with the `REGULATOR` role is
//! the regulator.
//!
//! What each party reads (`SECURITY.md`, "The API's trust boundary"):
//! - the regulator: everything;
//! - an institution: the accounts it holds (`Account::institution`: its customers,
//!   merchants, billers and its own accounts), and the transactions, events, orders, bills
//!   and holds that touch them, settlement cycles it is in, itself;
//! - an account: itself and what touches it;
//! - anyone, without credentials: what proves the chain (block headers and certificates,
//!   validators, evidence, health).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use tally_contracts::{
    Account, AccountId, CycleId, Event, InstitutionId, OrderId, Party, Roles, query,
};

pub use tally_wire::KeyId;

use super::error::ApiError;
use super::events::{Reach, parties};
use crate::storage::Storage;
use tally_wire::signature::{Message, Presented};

/// How old a signature's `created` may be: a captured request (it travels only inside TLS)
/// cannot be replayed later than this.
pub const SIGNATURE_AGE_S_MAX: i64 = 300;
/// How far ahead of the node's clock `created` may be (clients' clocks drift).
pub const SIGNATURE_AHEAD_S_MAX: i64 = 60;
/// The most entries a [`Sight`] remembers before it starts afresh (a long event stream).
const SIGHT_CACHE_MAX: usize = 10_000;

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials.
    Anonymous,
    /// An institution with the `REGULATOR` role.
    Regulator(InstitutionId),
    Institution(InstitutionId),
    /// A consumer, merchant or biller, by its device key; `institution` holds it.
    Account {
        id: AccountId,
        institution: InstitutionId,
    },
}

pub fn credentials_required() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "CREDENTIALS_REQUIRED",
        "this route answers only a party that signs its request (RFC 9421, keyid \
         \"institution:ID\" or \"account:ID\")",
    )
}

pub fn bad_credentials(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "BAD_CREDENTIALS",
        format!("the request's signature is not accepted: {reason}"),
    )
}

pub fn out_of_scope(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "OUT_OF_SCOPE",
        format!("{what} is not yours to read"),
    )
}

/// The caller a signed request proves, checked against the key at the head.
pub fn authenticate(
    storage: &Storage,
    message: &Message<'_>,
    presented: &Presented,
) -> Result<Caller, ApiError> {
    let now = crate::clock::now_s();
    if presented.created > now.saturating_add(SIGNATURE_AHEAD_S_MAX) {
        return Err(bad_credentials(format!(
            "created is {} s ahead of the node's clock",
            presented.created - now
        )));
    }
    if presented.created < now.saturating_sub(SIGNATURE_AGE_S_MAX) {
        return Err(bad_credentials(format!(
            "created is more than {SIGNATURE_AGE_S_MAX} s old"
        )));
    }
    if presented.expires.is_some_and(|e| e < now) {
        return Err(bad_credentials("the signature has expired"));
    }
    let keyid = KeyId::parse(&presented.keyid).ok_or_else(|| {
        bad_credentials(format!(
            "keyid {:?} is neither \"institution:ID\" nor \"account:ID\"",
            presented.keyid
        ))
    })?;
    let (key, caller) = match keyid {
        KeyId::Institution(id) => {
            let Some(institution) = query::institution(storage, id)? else {
                return Err(unknown_party(keyid));
            };
            let caller = if institution.roles.contains(Roles::REGULATOR) {
                Caller::Regulator(id)
            } else {
                Caller::Institution(id)
            };
            // A revoked key proves nothing: governance took it away because it may be
            // in a thief's hands.
            let Some(key) = institution.key else {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "KEY_REVOKED",
                    format!("{keyid}'s key was revoked by governance"),
                ));
            };
            (key, caller)
        }
        KeyId::Account(id) => match query::account(storage, id)? {
            Some(account) if account.kind.has_holder() => (
                account.holder.key,
                Caller::Account {
                    id,
                    institution: account.institution,
                },
            ),
            _ => return Err(unknown_party(keyid)),
        },
    };
    presented.verify(message, &key).map_err(bad_credentials)?;
    Ok(caller)
}

fn unknown_party(keyid: KeyId) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "UNKNOWN_PARTY",
        format!("{keyid} holds no key on the chain at its head"),
    )
}

impl Caller {
    pub fn is_anonymous(&self) -> bool {
        *self == Caller::Anonymous
    }

    pub fn is_regulator(&self) -> bool {
        matches!(self, Caller::Regulator(_))
    }

    /// The caller the sender of a committed transaction is: its signatures proved it.
    pub fn of_party(storage: &Storage, party: Party) -> Result<Caller, ApiError> {
        Ok(match party {
            Party::Institution(id) => match query::institution(storage, id)? {
                Some(i) if i.roles.contains(Roles::REGULATOR) => Caller::Regulator(id),
                Some(_) => Caller::Institution(id),
                None => Caller::Anonymous,
            },
            Party::Account(id) => match query::account(storage, id)? {
                Some(a) => Caller::Account {
                    id,
                    institution: a.institution,
                },
                None => Caller::Anonymous,
            },
        })
    }

    /// Whether the caller may read this account (and its history).
    pub fn reads_account(&self, account: &Account) -> bool {
        match self {
            Caller::Anonymous => false,
            Caller::Regulator(_) => true,
            Caller::Institution(i) => account.institution == *i,
            Caller::Account { id, .. } => account.id == *id,
        }
    }

    /// Whether the caller may read what this institution alone should see (its record,
    /// its obligations).
    pub fn reads_institution(&self, id: InstitutionId) -> bool {
        match self {
            Caller::Regulator(_) => true,
            Caller::Institution(i) => *i == id,
            Caller::Anonymous | Caller::Account { .. } => false,
        }
    }

    /// Refuses the anonymous (401) and everyone who is not the regulator (403).
    pub fn require_regulator(&self) -> Result<(), ApiError> {
        match self {
            Caller::Regulator(_) => Ok(()),
            Caller::Anonymous => Err(credentials_required()),
            _ => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "OUT_OF_SCOPE",
                "this route answers the regulator alone",
            )),
        }
    }
}

/// What one caller may see, with the lookups that needs remembered (an account's
/// institution and an order's merchant never change; a cycle's members neither).
#[derive(Debug)]
pub struct Sight {
    pub caller: Caller,
    storage: Storage,
    holders: BTreeMap<AccountId, Option<InstitutionId>>,
    merchants: BTreeMap<OrderId, Option<AccountId>>,
    cycles: BTreeMap<CycleId, Vec<InstitutionId>>,
}

impl Sight {
    pub fn new(caller: Caller, storage: Storage) -> Sight {
        Sight {
            caller,
            storage,
            holders: BTreeMap::new(),
            merchants: BTreeMap::new(),
            cycles: BTreeMap::new(),
        }
    }

    fn forget_if_full(&mut self) {
        if self.holders.len() + self.merchants.len() + self.cycles.len() > SIGHT_CACHE_MAX {
            self.holders.clear();
            self.merchants.clear();
            self.cycles.clear();
        }
    }

    /// The institution holding `account`, if it exists.
    pub fn holder(&mut self, account: AccountId) -> Result<Option<InstitutionId>, ApiError> {
        if let Some(known) = self.holders.get(&account) {
            return Ok(*known);
        }
        self.forget_if_full();
        let found = query::account(&self.storage, account)?.map(|a| a.institution);
        self.holders.insert(account, found);
        Ok(found)
    }

    fn merchant(&mut self, order: OrderId) -> Result<Option<AccountId>, ApiError> {
        if let Some(known) = self.merchants.get(&order) {
            return Ok(*known);
        }
        self.forget_if_full();
        let found = query::order(&self.storage, order)?.map(|o| o.merchant);
        self.merchants.insert(order, found);
        Ok(found)
    }

    fn cycle_members(&mut self, cycle: CycleId) -> Result<Vec<InstitutionId>, ApiError> {
        if let Some(known) = self.cycles.get(&cycle) {
            return Ok(known.clone());
        }
        self.forget_if_full();
        let found: Vec<InstitutionId> = query::cycle(&self.storage, cycle)?
            .map(|c| c.positions.iter().map(|p| p.institution).collect())
            .unwrap_or_default();
        self.cycles.insert(cycle, found.clone());
        Ok(found)
    }

    /// Whether the caller may see any of `accounts` (as itself, or as their institution).
    pub fn sees_accounts(&mut self, accounts: &[AccountId]) -> Result<bool, ApiError> {
        match self.caller.clone() {
            Caller::Anonymous => Ok(false),
            Caller::Regulator(_) => Ok(true),
            Caller::Account { id, .. } => Ok(accounts.contains(&id)),
            Caller::Institution(i) => {
                for account in accounts {
                    if self.holder(*account)? == Some(i) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    /// Whether the caller may see this committed event.
    pub fn sees_event(&mut self, event: &Event) -> Result<bool, ApiError> {
        let caller = self.caller.clone();
        let institution = match caller {
            Caller::Anonymous => return Ok(false),
            Caller::Regulator(_) => return Ok(true),
            Caller::Institution(i) => Some(i),
            Caller::Account { .. } => None,
        };
        let parties = parties(event);
        match parties.reach {
            Reach::Everyone => return Ok(true),
            Reach::Institutions if institution.is_some() => return Ok(true),
            Reach::Institutions | Reach::Named => {}
        }
        if let Some(i) = institution
            && parties.institutions.contains(&i)
        {
            return Ok(true);
        }
        let mut accounts = parties.accounts.clone();
        for order in &parties.orders {
            if let Some(merchant) = self.merchant(*order)? {
                accounts.push(merchant);
            }
        }
        if self.sees_accounts(&accounts)? {
            return Ok(true);
        }
        if let Some(i) = institution {
            for cycle in &parties.cycles {
                if self.cycle_members(*cycle)?.contains(&i) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_name_an_institution_or_an_account() {
        assert_eq!(
            KeyId::parse("institution:1"),
            Some(KeyId::Institution(InstitutionId(1)))
        );
        assert_eq!(
            KeyId::parse("account:340282366920938463463374607431768211455"),
            Some(KeyId::Account(AccountId(u128::MAX)))
        );
        for bad in [
            "institution:",
            "institution:-1",
            "institution:+1",
            "institution:4294967296",
            "account:1:2",
            "bank:1",
            "account",
            "",
            " account:1",
        ] {
            assert_eq!(KeyId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(KeyId::Account(AccountId(7)).to_string(), "account:7");
    }
}
