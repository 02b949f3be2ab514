//! Travel-rule data on cross-border transfers. From a threshold governance sets per
//! sender's currency, a `CrossBorderTransfer` carries the originator's and the
//! beneficiary's names, accounts and addresses, sealed (HPKE, by the sender's client) to
//! the beneficiary's institution and to a regulator, each under the encryption key that
//! institution registered itself (`SetEncryptionKey`). The ledger never sees the data: it
//! checks only that the sealed copies are there, of bounded size, and addressed to exactly
//! those who may read them under their current keys — a copy for anyone else (a competing
//! bank) is refused, so is a transfer above the threshold without them.

use crate::context::{Tx, TxResult};
use crate::transaction::{EncryptionKey, Roles, SealedTravelRule};
use crate::types::{Amount, Currency, InstitutionId};
use crate::{Event, Rejection};

/// `SetEncryptionKey` by an institution, for itself. Keys are made where they are used:
/// only the institution's own key registers its encryption key.
pub(crate) fn set_encryption_key(
    tx: &mut Tx<'_, '_>,
    sender: InstitutionId,
    key: EncryptionKey,
) -> TxResult {
    if !key.is_valid() {
        return Err(Rejection::InvalidKey.into());
    }
    let mut institution = tx.institution(sender)?;
    institution.encryption_key = Some(key);
    tx.state
        .put(crate::state::key::institution(sender), &institution);
    tx.emit(Event::EncryptionKeySet {
        institution: sender,
        key,
    });
    Ok(())
}

/// Checks a remittance's sealed travel-rule data: required from the threshold of the
/// sender's currency; when present (at any amount) addressed to the beneficiary's
/// institution and at least one regulator, nobody else, each under its registered key.
/// Returns the recipients, for the event.
pub(crate) fn check(
    tx: &Tx<'_, '_>,
    currency: Currency,
    debit: Amount,
    beneficiary_institution: InstitutionId,
    sealed: &[SealedTravelRule],
) -> TxResult<Vec<InstitutionId>> {
    let required = tx
        .rules
        .travel_rule_threshold(currency)
        .is_some_and(|threshold| debit >= threshold);
    if sealed.is_empty() {
        return if required {
            Err(Rejection::TravelRuleRequired.into())
        } else {
            Ok(Vec::new())
        };
    }
    let (mut to_beneficiary_bank, mut to_regulator) = (false, false);
    for copy in sealed {
        let recipient = tx.institution(copy.recipient)?;
        let registered = recipient
            .encryption_key
            .ok_or(Rejection::EncryptionKeyMissing)?;
        if registered != copy.key {
            return Err(Rejection::TravelRuleRecipients.into());
        }
        let is_beneficiary_bank = recipient.id == beneficiary_institution;
        let is_regulator = recipient.roles.contains(Roles::REGULATOR);
        if !is_beneficiary_bank && !is_regulator {
            return Err(Rejection::TravelRuleRecipients.into());
        }
        to_beneficiary_bank |= is_beneficiary_bank;
        to_regulator |= is_regulator;
    }
    if !to_beneficiary_bank {
        // Say so when the beneficiary's institution could not have been sealed to at all.
        if tx
            .institution(beneficiary_institution)?
            .encryption_key
            .is_none()
        {
            return Err(Rejection::EncryptionKeyMissing.into());
        }
        return Err(Rejection::TravelRuleRecipients.into());
    }
    if !to_regulator {
        return Err(Rejection::TravelRuleRecipients.into());
    }
    Ok(sealed.iter().map(|copy| copy.recipient).collect())
}
