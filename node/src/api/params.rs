//! Reading ids, hashes and cursors from paths, query strings and headers: every failure is
//! a 400 with a code that names what was wrong.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tally_crypto::{Hash, PublicKey};

use super::error::ApiError;

/// `Path` whose failures are JSON errors.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(value) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(value))
    }
}

/// `Query` whose failures are JSON errors.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(value))
    }
}

/// Ids are decimal integers in paths and queries (`AccountId(u128)` and friends).
pub fn decimal<T: std::str::FromStr>(what: &'static str, text: &str) -> Result<T, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(
            "BAD_ID",
            format!("{what} must be a decimal integer in range, not {text:?}"),
        )
    })
}

/// An optional decimal id: `None` when absent, refused when not a number in range.
pub fn optional_decimal<T: std::str::FromStr>(
    what: &'static str,
    text: Option<&str>,
) -> Result<Option<T>, ApiError> {
    text.map(|t| decimal(what, t)).transpose()
}

pub fn hash(text: &str) -> Result<Hash, ApiError> {
    Hash::from_hex(text).map_err(|e| ApiError::bad_request("BAD_HEX", format!("hash: {e}")))
}

pub fn public_key(text: &str) -> Result<PublicKey, ApiError> {
    PublicKey::from_hex(text)
        .map_err(|e| ApiError::bad_request("BAD_HEX", format!("public key: {e}")))
}

pub fn currency(text: &str) -> Result<tally_contracts::Currency, ApiError> {
    let bytes: [u8; 3] = text
        .as_bytes()
        .try_into()
        .map_err(|_| ApiError::bad_request("BAD_CURRENCY", "a currency is three letters"))?;
    let currency = tally_contracts::Currency(bytes);
    if !currency.is_well_formed() {
        return Err(ApiError::bad_request(
            "BAD_CURRENCY",
            "a currency is three upper-case letters",
        ));
    }
    Ok(currency)
}

/// A position in the chain: `"{height}:{index}"`, used by history cursors and event ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub height: u64,
    pub index: u32,
}

impl Position {
    pub fn parse(what: &'static str, text: &str) -> Result<Position, ApiError> {
        let bad = || {
            ApiError::bad_request(
                "BAD_CURSOR",
                format!("{what} must be \"height:index\", not {text:?}"),
            )
        };
        let (height, index) = text.split_once(':').ok_or_else(bad)?;
        Ok(Position {
            height: height.parse().map_err(|_| bad())?,
            index: index.parse().map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.height, self.index)
    }
}

/// A page size: the default when absent, refused above the maximum rather than cut, so a
/// client never mistakes a short page for the end.
pub fn page_limit(asked: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    match asked {
        None => Ok(default),
        Some(0) => Err(ApiError::bad_request(
            "BAD_LIMIT",
            "limit must be at least 1",
        )),
        Some(n) if n > max => Err(ApiError::bad_request(
            "BAD_LIMIT",
            format!("limit is at most {max}"),
        )),
        Some(n) => Ok(n),
    }
}
