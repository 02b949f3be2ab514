//! Identifiers and amounts. Every id has its own type so an order id can never be passed
//! where an account id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Money in integer minor units of one currency (cents, fen). Never a float.
pub type Amount = u64;

/// The most a single transaction may move: far above any real payment, far below overflow
/// of the `u128` account totals.
pub const AMOUNT_MAX: Amount = 1_000_000_000_000_000;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
        pub struct $name(pub $inner);

        impl $name {
            /// Fixed-width big-endian bytes: keys sort by id.
            pub fn to_key_bytes(self) -> [u8; std::mem::size_of::<$inner>()] {
                self.0.to_be_bytes()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}

id_type!(
    /// A ledger account. Customers, merchants and billers choose theirs (top bit clear);
    /// institutions' accounts are derived with [`AccountId::institutional`] (top bit set).
    AccountId(u128)
);
id_type!(
    /// An institution: a bank, the payment platform, an FX provider, an acquirer, the
    /// regulator.
    InstitutionId(u32)
);
id_type!(
    /// A client-chosen, idempotent id of a movement of money: applied at most once.
    TransferId(u128)
);
id_type!(
    /// A merchant order, chosen by the merchant.
    OrderId(u128)
);
id_type!(
    /// A bill, chosen by the biller.
    BillId(u128)
);
id_type!(
    /// A settlement cycle, numbered from 1 by the ledger.
    CycleId(u64)
);

impl AccountId {
    const INSTITUTIONAL_BIT: u128 = 1 << 127;

    /// The account an institution holds for one purpose in one currency. Derived, so it
    /// needs no registry: `[1 | 0..][institution: 32][kind: 8][currency: 24]` in the low bits.
    pub fn institutional(
        institution: InstitutionId,
        kind: crate::AccountKind,
        currency: Currency,
    ) -> AccountId {
        let [a, b, c] = currency.0;
        let code = (u128::from(a) << 16) | (u128::from(b) << 8) | u128::from(c);
        AccountId(
            Self::INSTITUTIONAL_BIT
                | (u128::from(institution.0) << 32)
                | ((kind as u128) << 24)
                | code,
        )
    }

    /// True for ids customers, merchants and billers may choose.
    pub fn is_customer_id(self) -> bool {
        self.0 & Self::INSTITUTIONAL_BIT == 0
    }
}

/// An ISO 4217 alphabetic code, e.g. `Currency(*b"CNY")`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Currency(pub [u8; 3]);

impl Currency {
    pub const CNY: Currency = Currency(*b"CNY");
    pub const HKD: Currency = Currency(*b"HKD");
    pub const USD: Currency = Currency(*b"USD");

    /// Three upper-case ASCII letters.
    pub fn is_well_formed(self) -> bool {
        self.0.iter().all(u8::is_ascii_uppercase)
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = self.0;
        write!(f, "{}{}{}", char::from(a), char::from(b), char::from(c))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A bank-issued card token: an opaque value from the bank, never a card number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct CardToken(pub [u8; 32]);

/// Block time in milliseconds since the Unix epoch, as agreed by consensus.
pub type TimeMs = u64;

/// Milliseconds in a day: daily limits reset when `time_ms / DAY_MS` changes (midnight
/// UTC).
pub const DAY_MS: TimeMs = 86_400_000;

/// The UTC calendar year (proleptic Gregorian) a block time falls in: yearly limits reset
/// at 00:00 UTC on 1 January. Integers only: the year whose 1 January is the last one on
/// or before the block's day.
pub fn utc_year(time_ms: TimeMs) -> u64 {
    let day = time_ms / DAY_MS;
    // Leap years in 1..=y, and the days from 1970-01-01 to 1 January of `year` (≥ 1970).
    let leaps = |y: u64| y / 4 - y / 100 + y / 400;
    let first_day = |year: u64| 365 * (year - 1970) + leaps(year - 1) - leaps(1969);
    // 400 Gregorian years are 146,097 days: the estimate is off by at most one year.
    // (`day` < 2^38, so nothing here overflows.)
    let mut year = 1970 + day * 400 / 146_097;
    while year > 1970 && first_day(year) > day {
        year -= 1;
    }
    while first_day(year + 1) <= day {
        year += 1;
    }
    year
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_years_turn_on_the_first_of_january() {
        // Days since 1970-01-01 of the last day of a year and the first of the next.
        for (last_day, year) in [
            (364u64, 1970u64),
            (1_095, 1972),
            (11_322, 2000),
            (19_722, 2023),
            (47_481, 2099),
            (157_419, 2400),
        ] {
            assert_eq!(utc_year(last_day * DAY_MS), year);
            assert_eq!(utc_year((last_day + 1) * DAY_MS - 1), year);
            assert_eq!(utc_year((last_day + 1) * DAY_MS), year + 1);
        }
        assert_eq!(utc_year(0), 1970);
        // 2000-02-29 exists: day 11,016 is still 2000.
        assert_eq!(utc_year(11_016 * DAY_MS), 2000);
        // Never panics, even at the end of time.
        assert!(utc_year(u64::MAX) > 500_000_000);
    }
}
