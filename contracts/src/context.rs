//! What a contract sees while it executes one transaction: state (through the
//! transaction's own layer), the chain's rules, the block, who signed, and the events it
//! has emitted so far.

use tally_crypto::PublicKey;

use crate::governance::{Institution, Rules};
use crate::ledger::accounts::{Account, AccountKind};
use crate::state::{State, key};
use crate::transaction::Roles;
use crate::types::{AccountId, Currency, InstitutionId, TimeMs};
use crate::{BlockContext, Event, ExecutionError, Rejection, StoreError};

/// How executing a transaction can end early: rejected (the transaction's fault) or failed
/// (the store's: the whole block stops).
#[derive(Debug)]
pub(crate) enum TxError {
    Rejected(Rejection),
    Failed(ExecutionError),
}

impl From<Rejection> for TxError {
    fn from(r: Rejection) -> TxError {
        TxError::Rejected(r)
    }
}

impl From<ExecutionError> for TxError {
    fn from(e: ExecutionError) -> TxError {
        TxError::Failed(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> TxError {
        TxError::Failed(ExecutionError::Store(e))
    }
}

pub(crate) type TxResult<T = ()> = Result<T, TxError>;

pub(crate) struct Tx<'a, 's> {
    pub state: &'a mut State<'s>,
    pub rules: &'a Rules,
    pub block: BlockContext,
    /// Keys that signed, sorted. Empty for the ledger's own work (expiring holds).
    pub signers: &'a [PublicKey],
    pub events: Vec<Event>,
    /// Accounts this transaction read, decoded once; `true` if changed. Written to state
    /// (encoded once) by [`Tx::commit`]. A transaction touches a handful of accounts, so
    /// a short vector beats a map.
    accounts: Vec<(Account, bool)>,
}

impl<'a, 's> Tx<'a, 's> {
    pub fn new(
        state: &'a mut State<'s>,
        rules: &'a Rules,
        block: BlockContext,
        signers: &'a [PublicKey],
    ) -> Tx<'a, 's> {
        Tx {
            state,
            rules,
            block,
            signers,
            events: Vec::new(),
            accounts: Vec::new(),
        }
    }

    /// Keeps this transaction's changes: writes changed accounts and merges the
    /// transaction's layer into the block.
    pub fn commit(&mut self) {
        for (account, changed) in &mut self.accounts {
            if *changed {
                self.state.stage_account(account.clone());
                *changed = false;
            }
        }
        self.state.commit_tx();
    }

    /// Drops this transaction's changes.
    pub fn abort(&mut self) {
        self.accounts.clear();
        self.events.clear();
        self.state.abort_tx();
    }
}

impl Tx<'_, '_> {
    pub fn now_ms(&self) -> TimeMs {
        self.block.time_ms
    }

    pub fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    pub fn signed_by(&self, key: &PublicKey) -> bool {
        self.signers.binary_search(key).is_ok()
    }

    pub fn require_cosigner(&self, key: &PublicKey) -> TxResult {
        if self.signed_by(key) {
            Ok(())
        } else {
            Err(Rejection::MissingCoSignature.into())
        }
    }

    /// `institution` must have co-signed with its key; a revoked key co-signs nothing.
    pub fn require_institution_cosigner(&self, institution: &Institution) -> TxResult {
        match institution.key {
            Some(key) => self.require_cosigner(&key),
            None => Err(Rejection::KeyRevoked.into()),
        }
    }

    /// Whether `institution` co-signed with its key (never, once its key is revoked).
    pub fn signed_by_institution(&self, institution: &Institution) -> bool {
        institution.key.is_some_and(|key| self.signed_by(&key))
    }

    pub fn find_account(&mut self, id: AccountId) -> TxResult<Option<Account>> {
        if let Some((account, _)) = self.accounts.iter().find(|(a, _)| a.id == id) {
            return Ok(Some(account.clone()));
        }
        let found: Option<Account> = match self.state.block_account(id) {
            Some(account) => Some(account.clone()),
            None => self.state.get(&key::account(id))?,
        };
        if let Some(account) = &found {
            self.accounts.push((account.clone(), false));
        }
        Ok(found)
    }

    pub fn account(&mut self, id: AccountId) -> TxResult<Account> {
        self.find_account(id)?
            .ok_or(TxError::Rejected(Rejection::AccountNotFound))
    }

    /// An account that must be of `kind`.
    pub fn account_of_kind(&mut self, id: AccountId, kind: AccountKind) -> TxResult<Account> {
        let account = self.account(id)?;
        if account.kind != kind {
            return Err(Rejection::WrongAccountKind.into());
        }
        Ok(account)
    }

    pub fn put_account(&mut self, account: &Account) {
        match self.accounts.iter_mut().find(|(a, _)| a.id == account.id) {
            Some(slot) => *slot = (account.clone(), true),
            None => self.accounts.push((account.clone(), true)),
        }
    }

    pub fn institution(&self, id: InstitutionId) -> TxResult<Institution> {
        self.state
            .get(&key::institution(id))?
            .ok_or(TxError::Rejected(Rejection::InstitutionNotFound))
    }

    /// An institution that must have `role`.
    pub fn institution_with(&self, id: InstitutionId, role: Roles) -> TxResult<Institution> {
        let institution = self.institution(id)?;
        if !institution.roles.contains(role) {
            return Err(Rejection::RoleRequired.into());
        }
        Ok(institution)
    }

    pub fn require_currency(&self, currency: Currency) -> TxResult {
        if self.rules.currencies.binary_search(&currency).is_ok() {
            Ok(())
        } else {
            Err(Rejection::UnknownCurrency.into())
        }
    }

    pub fn is_sanctioned(&self, identity: &tally_crypto::Hash) -> TxResult<bool> {
        Ok(self.state.contains(&key::sanction(*identity))?)
    }
}
