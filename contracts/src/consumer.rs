//! Consumer flows: registration (with KYC), cards, top-up and withdrawal through the
//! card's bank, wallet transfers, key rotation, recovery and the second factor.

use serde::{Deserialize, Serialize};
use tally_crypto::{Hash, PublicKey};

use crate::context::{Tx, TxError, TxResult};
use crate::ledger::accounts::{Account, AccountKind, Holder, SecondFactor};
use crate::ledger::transfers::{Leg, claim_transfer_id, post_linked};
use crate::regulation::{Reach, clear_outflow};
use crate::state::key;
use crate::transaction::{Memo, Roles};
use crate::types::{AccountId, Amount, CardToken, Currency, InstitutionId, TimeMs, TransferId};
use crate::{Event, Rejection};

/// The most cards bound to one account.
pub const CARDS_PER_ACCOUNT_MAX: u8 = 8;

/// A card bound to an account, and the bank that issued its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardBinding {
    pub bank: InstitutionId,
}

/// What a new holder account needs; shared by consumers, merchants and billers.
pub(crate) struct NewHolder {
    pub account: AccountId,
    pub kind: AccountKind,
    pub key: PublicKey,
    pub currency: Currency,
    pub institution: InstitutionId,
    pub tier: u8,
    pub identity: Hash,
    pub fee_bps: u16,
}

/// Creates a holder's account after the checks every registration shares.
pub(crate) fn register_holder(tx: &mut Tx<'_, '_>, new: NewHolder) -> TxResult<Account> {
    if !new.account.is_customer_id() {
        return Err(Rejection::InvalidField.into());
    }
    if !new.key.is_valid() {
        return Err(Rejection::InvalidKey.into());
    }
    tx.require_currency(new.currency)?;
    if tx.rules.tier(new.tier).is_none() {
        return Err(Rejection::InvalidField.into());
    }
    if tx.find_account(new.account)?.is_some() {
        return Err(Rejection::AccountExists.into());
    }
    if tx.is_sanctioned(&new.identity)? {
        return Err(Rejection::Sanctioned.into());
    }
    let mut account = Account::new(new.account, new.kind, new.currency, new.institution);
    account.holder = Holder::new(new.key, new.tier, new.identity);
    account.holder.merchant_fee_bps = new.fee_bps;
    // The regulator's view of a listing: every account of the identity.
    tx.state
        .put(key::identity_account(new.identity, new.account), &());
    Ok(account)
}

/// `RegisterAccount`: sent by the new account (its device key, nonce 0), co-signed by the
/// KYC institution that verified the identity and will hold the wallet.
pub(crate) fn register_account(
    tx: &mut Tx<'_, '_>,
    account: AccountId,
    key: PublicKey,
    currency: Currency,
    institution: InstitutionId,
    tier: u8,
    identity: Hash,
) -> TxResult {
    let kyc = tx.institution_with(institution, Roles::KYC)?;
    tx.require_institution_cosigner(&kyc)?;
    let mut created = register_holder(
        tx,
        NewHolder {
            account,
            kind: AccountKind::ConsumerWallet,
            key,
            currency,
            institution,
            tier,
            identity,
            fee_bps: 0,
        },
    )?;
    // The registration itself used nonce 0.
    created.holder.nonce = 1;
    tx.put_account(&created);
    tx.emit(Event::AccountRegistered {
        account,
        institution,
        tier,
    });
    Ok(())
}

fn card_bank(tx: &Tx<'_, '_>, account: AccountId, card: CardToken) -> TxResult<InstitutionId> {
    tx.state
        .get::<CardBinding>(&key::card(account, card))?
        .map(|b| b.bank)
        .ok_or(TxError::Rejected(Rejection::CardNotBound))
}

/// The bank that issued `card`, which must have co-signed.
fn cosigning_card_bank(
    tx: &Tx<'_, '_>,
    account: AccountId,
    card: CardToken,
) -> TxResult<InstitutionId> {
    let bank = card_bank(tx, account, card)?;
    let institution = tx.institution(bank)?;
    tx.require_institution_cosigner(&institution)?;
    Ok(bank)
}

pub(crate) fn bind_card(
    tx: &mut Tx<'_, '_>,
    sender: AccountId,
    card: CardToken,
    bank: InstitutionId,
) -> TxResult {
    let mut account = tx.account_of_kind(sender, AccountKind::ConsumerWallet)?;
    let institution = tx.institution_with(bank, Roles::BANK)?;
    tx.require_institution_cosigner(&institution)?;
    let k = key::card(sender, card);
    if tx.state.contains(&k)? {
        return Err(Rejection::CardAlreadyBound.into());
    }
    if account.holder.cards >= CARDS_PER_ACCOUNT_MAX {
        return Err(Rejection::TooManyCards.into());
    }
    account.holder.cards += 1;
    tx.put_account(&account);
    tx.state.put(k, &CardBinding { bank });
    tx.emit(Event::CardBound {
        account: sender,
        bank,
    });
    Ok(())
}

pub(crate) fn unbind_card(tx: &mut Tx<'_, '_>, sender: AccountId, card: CardToken) -> TxResult {
    let mut account = tx.account_of_kind(sender, AccountKind::ConsumerWallet)?;
    let bank = cosigning_card_bank(tx, sender, card)?;
    account.holder.cards = account.holder.cards.saturating_sub(1);
    tx.put_account(&account);
    tx.state.delete(key::card(sender, card));
    tx.emit(Event::CardUnbound {
        account: sender,
        bank,
    });
    Ok(())
}

/// `TopUp`: the card's bank issues wallet money (debits its issuance account, within its
/// limit) against the card.
pub(crate) fn top_up(
    tx: &mut Tx<'_, '_>,
    sender: AccountId,
    body: Hash,
    id: TransferId,
    card: CardToken,
    amount: Amount,
) -> TxResult {
    let account = tx.account_of_kind(sender, AccountKind::ConsumerWallet)?;
    let bank = cosigning_card_bank(tx, sender, card)?;
    claim_transfer_id(tx, id, body)?;
    let issuance = AccountId::institutional(bank, AccountKind::BankIssuance, account.currency);
    post_linked(
        tx,
        &[Leg {
            debit: issuance,
            credit: sender,
            amount,
        }],
        None,
    )?;
    tx.emit(Event::ToppedUp {
        id,
        account: sender,
        bank,
        amount,
    });
    Ok(())
}

/// `Withdraw`: wallet money returns to the card's bank's issuance account.
pub(crate) fn withdraw(
    tx: &mut Tx<'_, '_>,
    sender: AccountId,
    body: Hash,
    id: TransferId,
    card: CardToken,
    amount: Amount,
) -> TxResult {
    let account = tx.account_of_kind(sender, AccountKind::ConsumerWallet)?;
    let bank = cosigning_card_bank(tx, sender, card)?;
    claim_transfer_id(tx, id, body)?;
    let cleared = clear_outflow(tx, sender, amount, Reach::Domestic)?;
    let issuance = AccountId::institutional(bank, AccountKind::BankIssuance, account.currency);
    post_linked(
        tx,
        &[Leg {
            debit: sender,
            credit: issuance,
            amount,
        }],
        Some(cleared),
    )?;
    tx.emit(Event::Withdrawn {
        id,
        account: sender,
        bank,
        amount,
    });
    Ok(())
}

/// `Transfer`: wallet to wallet, at the same or another institution. Only consumers'
/// wallets send and receive transfers: a merchant or biller paying a wallet directly would
/// skip settlement and its fee.
pub(crate) fn transfer(
    tx: &mut Tx<'_, '_>,
    sender: AccountId,
    body: Hash,
    id: TransferId,
    to: AccountId,
    amount: Amount,
    memo: &Memo,
) -> TxResult {
    tx.account_of_kind(sender, AccountKind::ConsumerWallet)?;
    // Checked when decoded; a memo built in memory is held to the same.
    if !memo.is_well_formed() {
        return Err(Rejection::InvalidField.into());
    }
    claim_transfer_id(tx, id, body)?;
    let cleared = clear_outflow(tx, sender, amount, Reach::Domestic)?;
    let recipient = tx.account(to)?;
    if recipient.kind != AccountKind::ConsumerWallet {
        return Err(Rejection::WrongAccountKind.into());
    }
    post_linked(
        tx,
        &[Leg {
            debit: sender,
            credit: to,
            amount,
        }],
        Some(cleared),
    )?;
    tx.emit(Event::TransferReceived {
        id,
        from: sender,
        to,
        amount,
        memo: memo.clone(),
    });
    Ok(())
}

/// `RotateKey`: the old key sends, the new key co-signs (proof of possession).
pub(crate) fn rotate_key(tx: &mut Tx<'_, '_>, sender: AccountId, new_key: PublicKey) -> TxResult {
    if !new_key.is_valid() {
        return Err(Rejection::InvalidKey.into());
    }
    tx.require_cosigner(&new_key)?;
    let mut account = tx.account(sender)?;
    account.holder.key = new_key;
    tx.put_account(&account);
    tx.emit(Event::KeyRotated {
        account: sender,
        key: new_key,
    });
    Ok(())
}

/// The most recoveries completed at the start of one block; the rest wait for the next
/// block, earliest due first.
pub const RECOVERIES_PER_BLOCK_MAX: usize = 1_000;

/// A recovery announced and not yet due: `new_key` becomes the account's key at `due_ms`
/// unless the account's current key cancels it (`CancelRecovery`) first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRecovery {
    pub account: AccountId,
    pub institution: InstitutionId,
    pub new_key: PublicKey,
    /// The institution's key that announced it: if governance replaced or revoked that key
    /// before the due time, the recovery lapses (it may have been a thief's).
    pub announced_by: PublicKey,
    pub due_ms: TimeMs,
}

/// `RecoverAccount`: for a lost phone. The institution holding the account sends it (after
/// verifying the person off chain); the new device key co-signs. It only announces the
/// recovery: the new key takes over after the delay governance set, and until then the
/// account's current key keeps working and may cancel it. Taking effect at once would let
/// an insider at the bank, or whoever stole the bank's key, take over any customer's
/// account before the customer could notice.
pub(crate) fn recover_account(
    tx: &mut Tx<'_, '_>,
    sender: InstitutionId,
    account: AccountId,
    new_key: PublicKey,
) -> TxResult {
    let institution = tx.institution_with(sender, Roles::KYC)?;
    let a = tx.account(account)?;
    if !a.kind.has_holder() || a.institution != sender {
        return Err(Rejection::NotPermitted.into());
    }
    if !new_key.is_valid() || new_key == a.holder.key {
        return Err(Rejection::InvalidKey.into());
    }
    tx.require_cosigner(&new_key)?;
    let k = key::recovery(account);
    if tx.state.contains(&k)? {
        return Err(Rejection::RecoveryPending.into());
    }
    let announced_by = institution.key.ok_or(Rejection::KeyRevoked)?;
    let due_ms = tx
        .now_ms()
        .checked_add(tx.rules.recovery_delay_ms)
        .ok_or(Rejection::Overflow)?;
    tx.state.put(
        k,
        &PendingRecovery {
            account,
            institution: sender,
            new_key,
            announced_by,
            due_ms,
        },
    );
    tx.state.put(key::recovery_due(due_ms, account), &());
    tx.emit(Event::RecoveryAnnounced {
        account,
        institution: sender,
        new_key,
        due_ms,
    });
    Ok(())
}

/// `CancelRecovery`: the account, with its current key (the sender's key check), drops the
/// recovery announced for it.
pub(crate) fn cancel_recovery(tx: &mut Tx<'_, '_>, sender: AccountId) -> TxResult {
    let k = key::recovery(sender);
    let pending: PendingRecovery = tx.state.get(&k)?.ok_or(Rejection::RecoveryNotFound)?;
    tx.state.delete(k);
    tx.state.delete(key::recovery_due(pending.due_ms, sender));
    tx.emit(Event::RecoveryCancelled {
        account: sender,
        institution: pending.institution,
        by_account: true,
    });
    Ok(())
}

/// Completes a recovery that fell due: the new key becomes the account's, unless the
/// institution's key that announced it is no longer its key.
pub(crate) fn complete_recovery(tx: &mut Tx<'_, '_>, pending: &PendingRecovery) -> TxResult {
    tx.state.delete(key::recovery(pending.account));
    tx.state
        .delete(key::recovery_due(pending.due_ms, pending.account));
    let current = tx.institution(pending.institution)?.key;
    if current != Some(pending.announced_by) {
        tx.emit(Event::RecoveryCancelled {
            account: pending.account,
            institution: pending.institution,
            by_account: false,
        });
        return Ok(());
    }
    let mut a = tx.account(pending.account)?;
    a.holder.key = pending.new_key;
    tx.put_account(&a);
    tx.emit(Event::AccountRecovered {
        account: pending.account,
        institution: pending.institution,
    });
    Ok(())
}

/// `SetSecondFactor`: sets, changes or removes the key that must co-sign debits above
/// `threshold`. The current second factor (if any) and the new one must both co-sign, so a
/// stolen phone alone cannot remove it.
pub(crate) fn set_second_factor(
    tx: &mut Tx<'_, '_>,
    sender: AccountId,
    key: Option<PublicKey>,
    threshold: Amount,
) -> TxResult {
    let mut account = tx.account(sender)?;
    if account
        .holder
        .second_factor
        .is_some_and(|current| !tx.signed_by(&current.key))
    {
        return Err(Rejection::SecondFactorRequired.into());
    }
    if let Some(new) = key {
        if !new.is_valid() || new == account.holder.key {
            return Err(Rejection::InvalidKey.into());
        }
        tx.require_cosigner(&new)?;
    }
    account.holder.second_factor = key.map(|key| SecondFactor { key, threshold });
    tx.put_account(&account);
    tx.emit(Event::SecondFactorSet {
        account: sender,
        enabled: key.is_some(),
        threshold,
    });
    Ok(())
}
