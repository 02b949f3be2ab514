//! Cross-border payments: FX providers publish integer rates with a fixed scale and a
//! validity window; a `CrossBorderTransfer` debits the sender in one currency and credits
//! the beneficiary in another through the provider's liquidity accounts, as one linked
//! group (payment versus payment: both legs or neither).
//!
//! **Rounding rule.** Rates are quote minor units per base minor unit times
//! [`RATE_SCALE`]. Conversions always round in the provider's favour: the beneficiary's
//! amount rounds **down** (`credit = floor(debit × rate / RATE_SCALE)`), and the sender's
//! amount for a fixed credit rounds **up** (`debit = ceil(credit × RATE_SCALE / rate)`).

use serde::{Deserialize, Serialize};
use tally_crypto::Hash;

use crate::context::{Tx, TxError, TxResult};
use crate::ledger::accounts::AccountKind;
use crate::ledger::transfers::{Leg, check_amount, claim_transfer_id, post_linked};
use crate::regulation::{Reach, clear_outflow};
use crate::state::key;
use crate::transaction::{FxAmount, Roles, SealedTravelRule};
use crate::types::{AccountId, Amount, Currency, InstitutionId, TimeMs, TransferId};
use crate::{Event, Rejection};

/// Fixed scale of FX rates: a rate of `RATE_SCALE` converts one minor unit to one.
pub const RATE_SCALE: u64 = 1_000_000_000;
/// The longest validity window of a published rate: one day.
pub const RATE_VALIDITY_MS_MAX: u64 = 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxRate {
    pub rate: u64,
    pub valid_from_ms: TimeMs,
    pub valid_until_ms: TimeMs,
}

/// The beneficiary's amount for a debit: rounds down.
pub fn convert_debit(debit: Amount, rate: u64) -> Option<Amount> {
    let credit = u128::from(debit).checked_mul(u128::from(rate))? / u128::from(RATE_SCALE);
    Amount::try_from(credit).ok()
}

/// The sender's amount for a credit: rounds up.
pub fn convert_credit(credit: Amount, rate: u64) -> Option<Amount> {
    if rate == 0 {
        return None;
    }
    let debit = u128::from(credit)
        .checked_mul(u128::from(RATE_SCALE))?
        .div_ceil(u128::from(rate));
    Amount::try_from(debit).ok()
}

/// `PublishFxRate` by an FX provider for one direction of a pair.
pub(crate) fn publish_rate(
    tx: &mut Tx<'_, '_>,
    provider: InstitutionId,
    base: Currency,
    quote: Currency,
    rate: u64,
    valid_from_ms: TimeMs,
    valid_until_ms: TimeMs,
) -> TxResult {
    tx.institution_with(provider, Roles::FX_PROVIDER)?;
    tx.require_currency(base)?;
    tx.require_currency(quote)?;
    if base == quote
        || rate == 0
        || valid_until_ms <= valid_from_ms
        || valid_until_ms - valid_from_ms > RATE_VALIDITY_MS_MAX
    {
        return Err(Rejection::InvalidField.into());
    }
    tx.state.put(
        key::rate(provider, base, quote),
        &FxRate {
            rate,
            valid_from_ms,
            valid_until_ms,
        },
    );
    tx.emit(Event::FxRatePublished {
        provider,
        base,
        quote,
        rate,
        valid_until_ms,
    });
    Ok(())
}

/// `CrossBorderTransfer`: sender's wallet → provider's liquidity in the sender's currency,
/// provider's liquidity in the beneficiary's currency → beneficiary, at the provider's
/// current rate, within the corridor's limit and the sender's bound, carrying sealed
/// travel-rule data from the governance threshold on.
#[allow(clippy::too_many_arguments)]
pub(crate) fn cross_border_transfer(
    tx: &mut Tx<'_, '_>,
    sender: AccountId,
    body: Hash,
    id: TransferId,
    provider: InstitutionId,
    beneficiary: AccountId,
    amount: FxAmount,
    travel_rule: &[SealedTravelRule],
) -> TxResult {
    let from = tx.account_of_kind(sender, AccountKind::ConsumerWallet)?;
    let to = tx.account_of_kind(beneficiary, AccountKind::ConsumerWallet)?;
    tx.institution_with(provider, Roles::FX_PROVIDER)?;
    if from.currency == to.currency {
        return Err(Rejection::CurrencyMismatch.into());
    }
    let corridor = tx
        .rules
        .corridor(from.currency, to.currency)
        .ok_or(Rejection::CorridorClosed)?;
    let rate: FxRate = tx
        .state
        .get(&key::rate(provider, from.currency, to.currency))?
        .ok_or(TxError::Rejected(Rejection::RateNotFound))?;
    if tx.now_ms() < rate.valid_from_ms || tx.now_ms() >= rate.valid_until_ms {
        return Err(Rejection::RateExpired.into());
    }
    let (debit, credit) = match amount {
        FxAmount::Send { debit, min_credit } => {
            let credit = convert_debit(debit, rate.rate).ok_or(Rejection::Overflow)?;
            if credit < min_credit {
                return Err(Rejection::FxSlippage.into());
            }
            (debit, credit)
        }
        FxAmount::Receive { credit, max_debit } => {
            let debit = convert_credit(credit, rate.rate).ok_or(Rejection::Overflow)?;
            if debit > max_debit {
                return Err(Rejection::FxSlippage.into());
            }
            (debit, credit)
        }
    };
    check_amount(debit)?;
    check_amount(credit)?;
    if debit > corridor.single_max {
        return Err(Rejection::CorridorLimitExceeded.into());
    }
    let travel_rule_for =
        crate::travel_rule::check(tx, from.currency, debit, to.institution, travel_rule)?;
    claim_transfer_id(tx, id, body)?;
    let cleared = clear_outflow(tx, sender, debit, Reach::CrossBorder)?;
    post_linked(
        tx,
        &[
            Leg {
                debit: sender,
                credit: AccountId::institutional(provider, AccountKind::FxLiquidity, from.currency),
                amount: debit,
            },
            Leg {
                debit: AccountId::institutional(provider, AccountKind::FxLiquidity, to.currency),
                credit: beneficiary,
                amount: credit,
            },
        ],
        Some(cleared),
    )?;
    tx.emit(Event::RemittanceCredited {
        id,
        sender,
        beneficiary,
        debited: debit,
        debit_currency: from.currency,
        credited: credit,
        credit_currency: to.currency,
        travel_rule_for,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_favours_the_provider() {
        // 1 CNY fen = 0.1379 US cents: 1_379 fen → 190.161 cents → 190.
        let rate = 137_900_000;
        assert_eq!(convert_debit(1_379, rate), Some(190));
        // 190 cents need 1377.8 fen → 1378.
        assert_eq!(convert_credit(190, rate), Some(1_378));
        assert_eq!(convert_credit(1, 0), None);
        for debit in [1u64, 7, 999, 123_456] {
            let credit = convert_debit(debit, rate).unwrap();
            assert!(convert_credit(credit, rate).unwrap() <= debit);
        }
    }
}
