//! Who is who on the chain: each institution's name and roles, and each currency with its
//! number of decimals, so that clients and the regulator's page show "Bank A" and
//! "¥220.90" instead of `institution 1` and `22090`.
//!
//! Any signed-in party may read it: every participant deals with every institution by
//! name, and the directory holds no balance, key or customer. Someone who is not a party
//! learns nothing of who takes part.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use tally_contracts::{Ledger, query};
use tally_wire::ledger::AtHeight;
use tally_wire::money;

use super::error::ApiError;
use super::{ApiState, at_head};

#[derive(Debug, Serialize)]
pub struct Directory {
    institutions: Vec<InstitutionEntry>,
    currencies: Vec<CurrencyEntry>,
}

#[derive(Debug, Serialize)]
struct InstitutionEntry {
    id: u32,
    name: String,
    roles: Vec<&'static str>,
    /// False while governance has revoked its key: it signs nothing until given a new one.
    active: bool,
}

#[derive(Debug, Serialize)]
struct CurrencyEntry {
    code: String,
    /// ISO 4217's minor-unit exponent: an amount of `n` minor units is `n / 10^decimals`.
    /// Absent for a code the node does not know the decimals of: show its minor units.
    #[serde(skip_serializing_if = "Option::is_none")]
    decimals: Option<u32>,
}

pub async fn directory(State(api): ApiState) -> Result<Json<AtHeight<Directory>>, ApiError> {
    let (height, directory) = at_head(&api.ctx.storage, |s| {
        let institutions = query::institutions(s)?;
        let rules = Ledger::rules(s)?;
        Ok(Directory {
            institutions: institutions
                .into_iter()
                .map(|i| InstitutionEntry {
                    id: i.id.0,
                    name: i.name,
                    roles: i.roles.names(),
                    active: i.key.is_some(),
                })
                .collect(),
            currencies: rules
                .currencies
                .iter()
                .map(|c| CurrencyEntry {
                    code: c.to_string(),
                    decimals: money::exponent(*c).ok(),
                })
                .collect(),
        })
    })?;
    Ok(Json(AtHeight {
        height,
        record: directory,
    }))
}
