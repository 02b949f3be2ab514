//! Amounts as people write them ("12.50 CNY") and as the ledger keeps them (1250 minor
//! units): converted exactly, never through a float. An amount with more decimals than its
//! currency has is refused, not rounded.

use std::fmt;

use tally_contracts::{AMOUNT_MAX, Amount, Currency};

/// ISO 4217 minor-unit exponents of the currencies a client may name. A currency missing
/// here is refused: guessing its decimals would move money by a factor of ten or more.
const EXPONENTS: &[(&str, u32)] = &[
    // Three decimals.
    ("BHD", 3),
    ("IQD", 3),
    ("JOD", 3),
    ("KWD", 3),
    ("LYD", 3),
    ("OMR", 3),
    ("TND", 3),
    // No decimals.
    ("CLP", 0),
    ("ISK", 0),
    ("JPY", 0),
    ("KRW", 0),
    ("PYG", 0),
    ("UGX", 0),
    ("VND", 0),
    ("XAF", 0),
    ("XOF", 0),
    // Two decimals.
    ("AED", 2),
    ("AUD", 2),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CNY", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("MOP", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("PHP", 2),
    ("PLN", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TRY", 2),
    ("TWD", 2),
    ("USD", 2),
    ("ZAR", 2),
];

/// Why an amount, currency or rate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("{0:?} is not a currency code (three letters, e.g. CNY)")]
    BadCurrency(String),
    #[error("the number of decimals of {0} is not known here")]
    UnknownCurrency(String),
    #[error("{0:?} is not an amount (write it like 12.50 or \"12.50 CNY\")")]
    BadAmount(String),
    #[error("{amount:?} has more decimals than {currency} has ({decimals})")]
    TooManyDecimals {
        amount: String,
        currency: String,
        decimals: u32,
    },
    #[error("{0:?} is above the most one transaction may move")]
    TooLarge(String),
    #[error("{0:?} must be more than zero")]
    Zero(String),
    #[error("no currency for {0:?}: write it like \"12.50 CNY\" or give --currency")]
    NoCurrency(String),
    #[error("the amount {amount:?} is in {given}, not in {expected}")]
    CurrencyMismatch {
        amount: String,
        given: String,
        expected: String,
    },
    #[error("{0:?} is not a rate (a decimal number above zero, e.g. 1.0850)")]
    BadRate(String),
    #[error("the rate {0:?} cannot be expressed exactly at the ledger's scale")]
    RateNotExact(String),
}

/// Parses a three-letter currency code (case-insensitive).
pub fn currency(text: &str) -> Result<Currency, MoneyError> {
    let upper = text.trim().to_ascii_uppercase();
    let bytes: [u8; 3] = upper
        .as_bytes()
        .try_into()
        .map_err(|_| MoneyError::BadCurrency(text.to_string()))?;
    let currency = Currency(bytes);
    if !currency.is_well_formed() {
        return Err(MoneyError::BadCurrency(text.to_string()));
    }
    Ok(currency)
}

/// The number of decimals of `currency`'s minor unit.
pub fn exponent(currency: Currency) -> Result<u32, MoneyError> {
    let code = currency.to_string();
    EXPONENTS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, e)| *e)
        .ok_or(MoneyError::UnknownCurrency(code))
}

/// An amount of one currency, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    pub minor: Amount,
    pub currency: Currency,
}

impl Money {
    /// Parses "12.50 CNY", "CNY 12.50" or "12.50" (then `currency` must be given). A
    /// currency written in the text must agree with `currency` when both are given.
    pub fn parse(text: &str, currency: Option<Currency>) -> Result<Money, MoneyError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (number, written) = match words.as_slice() {
            [number] => (*number, None),
            [a, b] if a.chars().all(|c| c.is_ascii_alphabetic()) => (*b, Some(self::currency(a)?)),
            [a, b] => (*a, Some(self::currency(b)?)),
            _ => return Err(MoneyError::BadAmount(text.to_string())),
        };
        let currency = match (written, currency) {
            (Some(w), Some(c)) if w != c => {
                return Err(MoneyError::CurrencyMismatch {
                    amount: text.to_string(),
                    given: w.to_string(),
                    expected: c.to_string(),
                });
            }
            (Some(w), _) => w,
            (None, Some(c)) => c,
            (None, None) => return Err(MoneyError::NoCurrency(text.to_string())),
        };
        let decimals = exponent(currency)?;
        let minor = decimal_to_scaled(number, decimals).map_err(|e| match e {
            ScaleError::Malformed => MoneyError::BadAmount(text.to_string()),
            ScaleError::TooManyDecimals => MoneyError::TooManyDecimals {
                amount: text.to_string(),
                currency: currency.to_string(),
                decimals,
            },
            ScaleError::TooLarge => MoneyError::TooLarge(text.to_string()),
        })?;
        if minor > u128::from(AMOUNT_MAX) {
            return Err(MoneyError::TooLarge(text.to_string()));
        }
        let minor = Amount::try_from(minor).map_err(|_| MoneyError::TooLarge(text.to_string()))?;
        Ok(Money { minor, currency })
    }

    /// Like [`Money::parse`], and more than zero.
    pub fn parse_positive(text: &str, currency: Option<Currency>) -> Result<Money, MoneyError> {
        let money = Money::parse(text, currency)?;
        if money.minor == 0 {
            return Err(MoneyError::Zero(text.to_string()));
        }
        Ok(money)
    }

    /// The currency written in `text`, if any ("12.50 CNY" → CNY, "12.50" → none).
    pub fn written_currency(text: &str) -> Option<Currency> {
        text.split_whitespace()
            .find(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
            .and_then(|w| self::currency(w).ok())
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            format_minor(i128::from(self.minor), self.currency),
            self.currency
        )
    }
}

/// Minor units as a decimal in major units: 1250 CNY → "12.50". Signed, for balances.
pub fn format_minor(minor: i128, currency: Currency) -> String {
    let decimals = exponent(currency).unwrap_or(0);
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    if decimals == 0 {
        return format!("{sign}{magnitude}");
    }
    let unit = 10u128.pow(decimals);
    format!(
        "{sign}{}.{:0width$}",
        magnitude / unit,
        magnitude % unit,
        width = decimals as usize
    )
}

enum ScaleError {
    Malformed,
    TooManyDecimals,
    TooLarge,
}

/// "12.5" at scale 2 → 1250, exactly: digits only, one optional point, no sign, no
/// exponent, at most `scale` decimals (trailing zeros beyond it are allowed: "12.500").
fn decimal_to_scaled(text: &str, scale: u32) -> Result<u128, ScaleError> {
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return Err(ScaleError::Malformed);
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > scale as usize {
        return Err(ScaleError::TooManyDecimals);
    }
    let mut value: u128 = 0;
    for c in whole.chars().chain(fraction.chars()) {
        let digit = u128::from(c.to_digit(10).ok_or(ScaleError::Malformed)?);
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(digit))
            .ok_or(ScaleError::TooLarge)?;
    }
    let missing = scale.saturating_sub(u32::try_from(fraction.len()).unwrap_or(u32::MAX));
    value
        .checked_mul(10u128.checked_pow(missing).ok_or(ScaleError::TooLarge)?)
        .ok_or(ScaleError::TooLarge)
}

/// A rate written in major units ("1.0850" HKD per CNY) as the ledger keeps it: quote minor
/// units per base minor unit × `rate_scale` (10^9). Exact, or refused.
pub fn rate_to_ledger(
    text: &str,
    base: Currency,
    quote: Currency,
    rate_scale: u64,
) -> Result<u64, MoneyError> {
    let bad = || MoneyError::BadRate(text.to_string());
    let not_exact = || MoneyError::RateNotExact(text.to_string());
    // minor_quote / minor_base = major_rate × 10^(e_quote − e_base).
    let (e_base, e_quote) = (exponent(base)?, exponent(quote)?);
    let scale_digits = rate_scale.checked_ilog10().ok_or_else(not_exact)?;
    if 10u64.checked_pow(scale_digits) != Some(rate_scale) {
        return Err(not_exact());
    }
    let shift = i64::from(scale_digits) + i64::from(e_quote) - i64::from(e_base);
    let shift = u32::try_from(shift).map_err(|_| not_exact())?;
    let scaled = decimal_to_scaled(text.trim(), shift).map_err(|e| match e {
        ScaleError::Malformed => bad(),
        ScaleError::TooManyDecimals => not_exact(),
        ScaleError::TooLarge => bad(),
    })?;
    let rate = u64::try_from(scaled).map_err(|_| bad())?;
    if rate == 0 {
        return Err(bad());
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_convert_exactly() {
        let cny = Some(Currency::CNY);
        assert_eq!(Money::parse("12.50 CNY", None).map(|m| m.minor), Ok(1250));
        assert_eq!(Money::parse("CNY 12.5", None).map(|m| m.minor), Ok(1250));
        assert_eq!(Money::parse("12", cny).map(|m| m.minor), Ok(1200));
        assert_eq!(Money::parse("0.01", cny).map(|m| m.minor), Ok(1));
        assert_eq!(Money::parse(".5", cny).map(|m| m.minor), Ok(50));
        assert_eq!(Money::parse("12.500", cny).map(|m| m.minor), Ok(1250));
        assert_eq!(Money::parse("1000 JPY", None).map(|m| m.minor), Ok(1000));
        assert_eq!(Money::parse("1.234 KWD", None).map(|m| m.minor), Ok(1234));
        assert!(matches!(
            Money::parse("12.505", cny),
            Err(MoneyError::TooManyDecimals { .. })
        ));
        assert!(matches!(
            Money::parse("1.5 JPY", None),
            Err(MoneyError::TooManyDecimals { .. })
        ));
        for bad in ["", ".", "-1", "1e3", "1,5", "12.50.1", "+1", "NaN", "1 2 3"] {
            assert!(Money::parse(bad, cny).is_err(), "{bad:?} was taken");
        }
        assert!(matches!(
            Money::parse("12", None),
            Err(MoneyError::NoCurrency(_))
        ));
        assert!(matches!(
            Money::parse("12 HKD", cny),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert!(matches!(
            Money::parse("12 XYZ", None),
            Err(MoneyError::UnknownCurrency(_))
        ));
        assert!(matches!(
            Money::parse("99999999999999999999999999999999999999999", cny),
            Err(MoneyError::TooLarge(_))
        ));
        assert!(matches!(
            Money::parse("10000000000000.01", cny),
            Err(MoneyError::TooLarge(_))
        ));
        assert!(matches!(
            Money::parse_positive("0.00", cny),
            Err(MoneyError::Zero(_))
        ));
    }

    #[test]
    fn amounts_print_in_major_units() {
        assert_eq!(format_minor(1250, Currency::CNY), "12.50");
        assert_eq!(format_minor(-5, Currency::CNY), "-0.05");
        assert_eq!(format_minor(7, Currency(*b"JPY")), "7");
        let money = Money {
            minor: 100_001,
            currency: Currency::HKD,
        };
        assert_eq!(money.to_string(), "1000.01 HKD");
    }

    #[test]
    fn rates_convert_exactly() {
        let scale = 1_000_000_000;
        assert_eq!(
            rate_to_ledger("1.0850", Currency::CNY, Currency::HKD, scale),
            Ok(1_085_000_000)
        );
        // 1 USD = 150.25 JPY: 15025 yen per 100 cents → 1.5025 yen per cent.
        assert_eq!(
            rate_to_ledger("150.25", Currency::USD, Currency(*b"JPY"), scale),
            Ok(1_502_500_000)
        );
        assert!(matches!(
            rate_to_ledger("1.0000000001", Currency::CNY, Currency::HKD, scale),
            Err(MoneyError::RateNotExact(_))
        ));
        for bad in ["0", "-1", "abc", ""] {
            assert!(rate_to_ledger(bad, Currency::CNY, Currency::HKD, scale).is_err());
        }
    }
}
