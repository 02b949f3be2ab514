//! Ledger records as the API answers them: each read at a committed height.

use serde::{Deserialize, Serialize};
use tally_contracts::{Account, Currency, InstitutionId, TierLimits};

/// A record and the committed height it was read at (`/v1/orders/{id}`, `/v1/bills/{id}`,
/// `/v1/rates`, `/v1/directory`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtHeight<T> {
    pub height: u64,
    pub record: T,
}

/// `/v1/accounts/{id}`: an account with its balances at a height.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// The committed height these figures are valid at.
    pub height: u64,
    pub account: Account,
    /// Posted balance: credits minus debits (negative for issuance accounts).
    pub balance: i128,
    /// What may still be debited: the balance minus pending debits.
    pub available: i128,
    /// The KYC tier's single and daily limits, for accounts with a holder.
    #[serde(default)]
    pub tier_limits: Option<TierLimits>,
}

/// One FX provider's rate for a currency pair (`/v1/rates`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateView {
    pub provider: InstitutionId,
    pub base: Currency,
    pub quote: Currency,
    /// Quote minor units per base minor unit, times `scale`.
    pub rate: u64,
    pub scale: u64,
    pub valid_from_ms: u64,
    pub valid_until_ms: u64,
}

/// `/v1/rates`'s record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    pub rates: Vec<RateView>,
}
