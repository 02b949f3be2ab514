//! Admission: whether a verified transaction may take its sender's nonce slot in a node's
//! mempool, judged against the committed state before any block holds it.
//!
//! Verification proves only that each listed key signed. Without this check anyone could
//! sign `sender = victim, nonce = victim's next` with their own key: the forgery would hold
//! the victim's slot on every validator (the victim's real transaction refused as taken),
//! then fail in its block as `WRONG_SIGNER` without using the nonce, and the attacker would
//! send the next one. So the sender's own key must be among the signatures before the
//! transaction waits anywhere:
//! - an account sends with its device key (the holder's key in state);
//! - a `RegisterAccount` for an account that does not exist yet is sent with the key it
//!   registers, and the KYC institution it names must co-sign: otherwise anyone could hold
//!   the registration slot of an account id someone else is about to register;
//! - an institution sends with its institution key, and one whose key governance revoked
//!   sends nothing (`KEY_REVOKED`) until governance gives it a new one.
//!
//! The same checks, with the same codes, run again when the block executes
//! (`WRONG_SIGNER`, `UNKNOWN_SENDER`, `MISSING_CO_SIGNATURE`, `KEY_REVOKED`): admission judges against
//! the state at the node's head, the block against the state it executes on.
//!
//! A sender's key may change in a transaction still waiting in the mempool (its
//! registration, a key rotation): the node passes the keys those of the sender's own
//! waiting transactions install, and a transaction signed by one of them is admitted too.
//! Only the sender could have put them there, since each was itself admitted.

use tally_crypto::PublicKey;

use crate::{ExecutionError, Party, Roles, Transaction, TxKind, VerifiedTransaction, query};

/// Why a transaction may not wait for a block. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("the sender is not registered")]
    UnknownSender,
    #[error("the sender's key did not sign")]
    WrongSigner,
    #[error("the KYC institution the registration names did not co-sign")]
    MissingCoSignature,
    #[error("the institution's key was revoked by governance")]
    KeyRevoked,
    #[error("the state could not be read: {0}")]
    State(String),
}

impl AdmissionError {
    /// The stable code, the ledger's own for the same refusal.
    pub fn code(&self) -> &'static str {
        match self {
            AdmissionError::UnknownSender => "UNKNOWN_SENDER",
            AdmissionError::WrongSigner => "WRONG_SIGNER",
            AdmissionError::MissingCoSignature => "MISSING_CO_SIGNATURE",
            AdmissionError::KeyRevoked => "KEY_REVOKED",
            AdmissionError::State(_) => "STATE_UNREADABLE",
        }
    }
}

impl From<ExecutionError> for AdmissionError {
    fn from(e: ExecutionError) -> AdmissionError {
        AdmissionError::State(e.to_string())
    }
}

/// The keys that must sign for `tx` to be admitted, by the state in `store`: the sender's
/// key, and for a registration also the registering institution's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequiredSigners {
    pub sender: PublicKey,
    pub registrar: Option<PublicKey>,
    /// The sender's next nonce in `store` (0 for an account not registered yet), read with
    /// its key so the mempool need not read the sender's record a second time.
    pub next_nonce: u64,
}

/// The signers `tx` needs by the state in `store`.
pub fn required_signers(
    store: &dyn crate::StateStore,
    tx: &Transaction,
) -> Result<RequiredSigners, AdmissionError> {
    match tx.sender {
        Party::Account(id) => match query::account(store, id)? {
            Some(account) if account.kind.has_holder() => Ok(RequiredSigners {
                sender: account.holder.key,
                registrar: None,
                next_nonce: account.holder.nonce,
            }),
            Some(_) => Err(AdmissionError::UnknownSender),
            None => match &tx.kind {
                TxKind::RegisterAccount {
                    account,
                    key,
                    institution,
                    ..
                } if *account == id => {
                    let registrar = query::institution(store, *institution)?
                        .filter(|i| i.roles.contains(Roles::KYC))
                        .ok_or(AdmissionError::MissingCoSignature)?;
                    Ok(RequiredSigners {
                        sender: *key,
                        registrar: Some(registrar.key.ok_or(AdmissionError::KeyRevoked)?),
                        next_nonce: 0,
                    })
                }
                _ => Err(AdmissionError::UnknownSender),
            },
        },
        Party::Institution(id) => match query::institution(store, id)? {
            Some(institution) => Ok(RequiredSigners {
                sender: institution.key.ok_or(AdmissionError::KeyRevoked)?,
                registrar: None,
                next_nonce: institution.nonce,
            }),
            None => Err(AdmissionError::UnknownSender),
        },
    }
}

/// Admits `verified` if its sender's key (by `store`, or one of `pending_keys`: keys the
/// sender's own waiting transactions install) is among its signatures, and for a
/// registration the registering institution's too. Answers the sender's next nonce in
/// `store`, which the mempool orders by.
pub fn admit(
    store: &dyn crate::StateStore,
    verified: &VerifiedTransaction,
    pending_keys: &[PublicKey],
) -> Result<u64, AdmissionError> {
    let tx = verified.tx();
    let required = match required_signers(store, tx) {
        Ok(required) => required,
        // Registered by a transaction still waiting: its key stands in for the state's, and
        // the state holds no nonce for it yet.
        Err(AdmissionError::UnknownSender)
            if pending_keys.iter().any(|k| verified.is_signed_by(k)) =>
        {
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let sender_signed = verified.is_signed_by(&required.sender)
        || pending_keys.iter().any(|k| verified.is_signed_by(k));
    if !sender_signed {
        return Err(AdmissionError::WrongSigner);
    }
    if let Some(registrar) = required.registrar
        && !verified.is_signed_by(&registrar)
    {
        return Err(AdmissionError::MissingCoSignature);
    }
    Ok(required.next_nonce)
}

/// The key `tx` makes its sender's from its block on, if it is a key change by the sender
/// itself: a registration's key, a rotation's new key. What [`admit`] takes as pending.
pub fn installed_key(tx: &Transaction) -> Option<PublicKey> {
    match (&tx.sender, &tx.kind) {
        (Party::Account(id), TxKind::RegisterAccount { account, key, .. }) if id == account => {
            Some(*key)
        }
        (Party::Account(_), TxKind::RotateKey { new_key }) => Some(*new_key),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AccountId, Currency, Genesis, GenesisInstitution, InstitutionId, MemoryStore, NO_CAP,
        TierLimits, TransferId, verify_transactions,
    };
    use tally_crypto::{Hash, KeyCache, SigningKey};

    const CHAIN: &str = "admission";
    const BANK: InstitutionId = InstitutionId(1);
    const PLATFORM: InstitutionId = InstitutionId(2);

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed([seed; 32])
    }

    /// A store with a KYC bank (key 1) and a platform (key 2), and wallet 7 (key 7)
    /// registered.
    fn store() -> MemoryStore {
        let mut store = MemoryStore::default();
        let genesis = Genesis {
            chain_id: CHAIN.into(),
            time_ms: 1,
            currencies: vec![Currency::CNY],
            institutions: vec![
                GenesisInstitution {
                    id: BANK,
                    key: key(1).public_key(),
                    roles: Roles::BANK.with(Roles::KYC),
                    name: "Bank".into(),
                },
                GenesisInstitution {
                    id: PLATFORM,
                    key: key(2).public_key(),
                    roles: Roles::PLATFORM,
                    name: "Platform".into(),
                },
            ],
            platform: PLATFORM,
            governance_keys: vec![key(9).public_key()],
            governance_threshold: 1,
            issuance_limits: vec![],
            fx_credit_lines: vec![],
            tiers: vec![TierLimits {
                single_max: 1_000,
                daily_max: 10_000,
                yearly_max: NO_CAP,
                cross_border_yearly_max: NO_CAP,
            }],
            merchant_fee_bps_max: 100,
            corridors: vec![],
            sanctions: vec![],
        };
        let outcome = genesis.apply(&store).map_err(|e| e.to_string());
        let Ok(outcome) = outcome else {
            panic!("genesis: {outcome:?}");
        };
        store.commit(outcome.writes);
        let registration = register(7, 7, BANK).sign(&[&key(7), &key(1)]);
        let verified = verify(registration);
        let block = crate::Ledger::execute_block(
            &store,
            crate::BlockContext {
                height: 1,
                time_ms: 2,
            },
            &[verified],
        );
        let Ok(block) = block else {
            panic!("block: {block:?}");
        };
        store.commit(block.writes);
        store
    }

    fn register(account: u128, key_seed: u8, institution: InstitutionId) -> Transaction {
        Transaction {
            chain_id: CHAIN.into(),
            sender: Party::Account(AccountId(account)),
            nonce: 0,
            kind: TxKind::RegisterAccount {
                account: AccountId(account),
                key: key(key_seed).public_key(),
                currency: Currency::CNY,
                institution,
                tier: 0,
                identity: Hash::digest("identity", &account.to_le_bytes()),
            },
        }
    }

    fn from(sender: Party, nonce: u64, kind: TxKind) -> Transaction {
        Transaction {
            chain_id: CHAIN.into(),
            sender,
            nonce,
            kind,
        }
    }

    fn transfer(from_account: u128, nonce: u64) -> Transaction {
        from(
            Party::Account(AccountId(from_account)),
            nonce,
            TxKind::Transfer {
                id: TransferId(nonce.into()),
                to: AccountId(8),
                amount: 1,
                memo: crate::Memo::NONE,
            },
        )
    }

    fn verify(signed: crate::SignedTransaction) -> VerifiedTransaction {
        let out = verify_transactions(CHAIN, vec![signed], &mut KeyCache::default());
        match out.into_iter().next() {
            Some(Ok(verified)) => verified,
            other => panic!("not verified: {other:?}"),
        }
    }

    fn admitted(
        store: &MemoryStore,
        tx: Transaction,
        keys: &[&SigningKey],
    ) -> Result<(), AdmissionError> {
        admit(store, &verify(tx.sign(keys)), &[]).map(drop)
    }

    #[test]
    fn the_senders_own_key_must_sign() {
        let store = store();
        assert_eq!(admitted(&store, transfer(7, 1), &[&key(7)]), Ok(()));
        // With the key, the sender's next nonce: wallet 7's registration used nonce 0.
        assert_eq!(
            admit(&store, &verify(transfer(7, 5).sign(&[&key(7)])), &[]),
            Ok(1)
        );
        let by_bank = from(
            Party::Institution(BANK),
            0,
            TxKind::RotateKey {
                new_key: key(5).public_key(),
            },
        );
        assert_eq!(admit(&store, &verify(by_bank.sign(&[&key(1)])), &[]), Ok(0));
        // Anyone else's key, alone or with others: refused, whatever the nonce.
        for nonce in [1, 2, 1_000] {
            assert_eq!(
                admitted(&store, transfer(7, nonce), &[&key(66)]),
                Err(AdmissionError::WrongSigner)
            );
            assert_eq!(
                admitted(&store, transfer(7, nonce), &[&key(1), &key(2), &key(66)]),
                Err(AdmissionError::WrongSigner),
                "institutions' keys are not the wallet's"
            );
        }
        assert_eq!(
            admitted(&store, transfer(99, 0), &[&key(99)]),
            Err(AdmissionError::UnknownSender)
        );
        // Institutions: their institution key.
        let cycle = from(Party::Institution(BANK), 0, TxKind::SettlementCycle);
        assert_eq!(admitted(&store, cycle.clone(), &[&key(1)]), Ok(()));
        assert_eq!(
            admitted(&store, cycle, &[&key(2)]),
            Err(AdmissionError::WrongSigner)
        );
        let ghost = from(
            Party::Institution(InstitutionId(77)),
            0,
            TxKind::SettlementCycle,
        );
        assert_eq!(
            admitted(&store, ghost, &[&key(77)]),
            Err(AdmissionError::UnknownSender)
        );
    }

    #[test]
    fn a_registration_needs_its_key_and_its_kyc_institution() {
        let store = store();
        assert_eq!(
            admitted(&store, register(8, 8, BANK), &[&key(8), &key(1)]),
            Ok(())
        );
        // Someone taking the slot of account 8 with their own key and no KYC co-signature.
        assert_eq!(
            admitted(&store, register(8, 66, BANK), &[&key(66)]),
            Err(AdmissionError::MissingCoSignature)
        );
        // The registered key must sign, even with the institution's co-signature.
        assert_eq!(
            admitted(&store, register(8, 8, BANK), &[&key(66), &key(1)]),
            Err(AdmissionError::WrongSigner)
        );
        // The institution named must have the KYC role.
        assert_eq!(
            admitted(&store, register(8, 8, PLATFORM), &[&key(8), &key(2)]),
            Err(AdmissionError::MissingCoSignature)
        );
        // An account that exists is sent for by its holder's key (and will fail as a
        // replay): not by the key a new registration names.
        assert_eq!(
            admitted(&store, register(7, 66, BANK), &[&key(66), &key(1)]),
            Err(AdmissionError::WrongSigner)
        );
    }

    #[test]
    fn keys_installed_by_the_senders_waiting_transactions_count() {
        let store = store();
        let rotate = from(
            Party::Account(AccountId(7)),
            1,
            TxKind::RotateKey {
                new_key: key(70).public_key(),
            },
        );
        assert_eq!(installed_key(&rotate), Some(key(70).public_key()));
        let next = verify(transfer(7, 2).sign(&[&key(70)]));
        assert_eq!(admit(&store, &next, &[]), Err(AdmissionError::WrongSigner));
        assert_eq!(admit(&store, &next, &[key(70).public_key()]), Ok(1));
        // A wallet whose registration still waits: its next transactions.
        let waiting = register(8, 8, BANK);
        assert_eq!(installed_key(&waiting), Some(key(8).public_key()));
        let first = verify(transfer(8, 1).sign(&[&key(8)]));
        assert_eq!(
            admit(&store, &first, &[]),
            Err(AdmissionError::UnknownSender)
        );
        assert_eq!(
            admit(&store, &first, &[key(8).public_key()]),
            Ok(0),
            "a wallet still being registered has no nonce in state"
        );
        let forged = verify(transfer(8, 1).sign(&[&key(66)]));
        assert_eq!(
            admit(&store, &forged, &[key(8).public_key()]),
            Err(AdmissionError::UnknownSender)
        );
        // Another party's transactions install nothing for this sender.
        let recovery = from(
            Party::Institution(BANK),
            0,
            TxKind::RecoverAccount {
                account: AccountId(7),
                new_key: key(71).public_key(),
            },
        );
        assert_eq!(installed_key(&recovery), None);
        assert_eq!(installed_key(&transfer(7, 1)), None);
    }

    #[test]
    fn a_revoked_institution_is_refused_as_sender_and_registrar() {
        let mut store = store();
        let revoke = from(
            Party::Institution(PLATFORM),
            0,
            TxKind::Govern(crate::GovernanceAction::RevokeInstitutionKey { institution: BANK }),
        );
        let block = crate::Ledger::execute_block(
            &store,
            crate::BlockContext {
                height: 2,
                time_ms: 3,
            },
            &[verify(revoke.sign(&[&key(2), &key(9)]))],
        );
        let Ok(block) = block else {
            panic!("block: {block:?}");
        };
        assert_eq!(block.receipts.first().map(|r| r.result), Some(Ok(())));
        store.commit(block.writes);
        let cycle = from(Party::Institution(BANK), 0, TxKind::SettlementCycle);
        assert_eq!(
            admitted(&store, cycle, &[&key(1)]),
            Err(AdmissionError::KeyRevoked)
        );
        assert_eq!(
            admitted(&store, register(8, 8, BANK), &[&key(8), &key(1)]),
            Err(AdmissionError::KeyRevoked)
        );
        // Its customers still send.
        assert_eq!(admitted(&store, transfer(7, 1), &[&key(7)]), Ok(()));
    }

    #[test]
    fn an_announced_recoverys_key_counts_only_once_it_completed() {
        let mut store = store();
        let recover = from(
            Party::Institution(BANK),
            0,
            TxKind::RecoverAccount {
                account: AccountId(7),
                new_key: key(71).public_key(),
            },
        );
        let mut time_ms = 3;
        let run =
            |store: &mut MemoryStore, height: u64, time_ms: u64, txs: Vec<VerifiedTransaction>| {
                let block = crate::Ledger::execute_block(
                    &*store,
                    crate::BlockContext { height, time_ms },
                    &txs,
                );
                let Ok(block) = block else {
                    panic!("block: {block:?}");
                };
                store.commit(block.writes);
            };
        run(
            &mut store,
            2,
            time_ms,
            vec![verify(recover.sign(&[&key(1), &key(71)]))],
        );
        let by_new = || verify(transfer(7, 1).sign(&[&key(71)]));
        let by_old = || verify(transfer(7, 1).sign(&[&key(7)]));
        assert_eq!(
            admit(&store, &by_new(), &[]),
            Err(AdmissionError::WrongSigner)
        );
        assert_eq!(admit(&store, &by_old(), &[]), Ok(1));
        time_ms += crate::RECOVERY_DELAY_MS_DEFAULT;
        run(&mut store, 3, time_ms, vec![]);
        assert_eq!(admit(&store, &by_new(), &[]), Ok(1));
        assert_eq!(
            admit(&store, &by_old(), &[]),
            Err(AdmissionError::WrongSigner)
        );
    }
}
