//! Ledger records by id: orders, bills, holds, payment codes, FX rates, institutions with
//! their open obligations, settlement cycles. Each answer names the height it is valid at.
//!
//! Payment codes, FX rates and obligations have no query in `tally-contracts`; they are
//! read here from the state layout its `state.rs` documents (a tag byte, then fixed-width
//! big-endian fields; postcard values). The API tests create each and read it back, so a
//! change of layout fails them.

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tally_contracts::fx::{FxRate, RATE_SCALE};
use tally_contracts::{
    BillId, Currency, CycleId, InstitutionId, NetPosition, OrderId, StateStore, TransferId,
    net_positions, query,
};
use tally_crypto::PublicKey;
use tally_wire::ledger::{AtHeight, RateView, Rates};

use super::caller::{Caller, Sight, out_of_scope};
use super::error::ApiError;
use super::params::{self, ApiPath, ApiQuery};
use super::{Api, ApiState, at_head};
use crate::storage::Storage;

const TAG_PAYMENT_CODE: u8 = b'P';
const TAG_OBLIGATION: u8 = b'Q';
const TAG_RATE: u8 = b'R';
/// Rates are few (providers × currency pairs); this bounds one answer.
pub const FX_RATES_MAX: usize = 4_096;
/// The most open obligations read; a settlement cycle nets at most as many.
pub const OBLIGATIONS_MAX: usize = 10_000;

fn found<T>(what: &str, read: (u64, Option<T>)) -> Result<Json<AtHeight<T>>, ApiError> {
    match read {
        (height, Some(record)) => Ok(Json(AtHeight { height, record })),
        (_, None) => Err(ApiError::not_found(what)),
    }
}

/// An open order is in any party's sight; a paid or cancelled one only in its merchant's and
/// payer's and their institutions'.
pub(super) fn order_in_sight(
    api: &Api,
    caller: Caller,
    order: &tally_contracts::Order,
) -> Result<(), ApiError> {
    if order.status == tally_contracts::OrderStatus::Open {
        return Ok(());
    }
    let mut parties = vec![order.merchant];
    parties.extend(order.payer);
    if Sight::new(caller, api.ctx.storage.clone()).sees_accounts(&parties)? {
        Ok(())
    } else {
        Err(out_of_scope(&format!("order {}", order.id.0)))
    }
}

/// An unpaid bill is in any party's sight; a paid one only in its biller's and payer's and
/// their institutions'.
pub(super) fn bill_in_sight(
    api: &Api,
    caller: Caller,
    bill: &tally_contracts::Bill,
) -> Result<(), ApiError> {
    match bill.paid_by {
        Some(payer)
            if !Sight::new(caller, api.ctx.storage.clone())
                .sees_accounts(&[bill.biller, payer])? =>
        {
            Err(out_of_scope(&format!("bill {}", bill.id.0)))
        }
        _ => Ok(()),
    }
}

/// A hold is in the sight of the parties of its two accounts.
pub(super) fn hold_in_sight(
    api: &Api,
    caller: Caller,
    hold: &tally_contracts::Hold,
) -> Result<(), ApiError> {
    if Sight::new(caller, api.ctx.storage.clone()).sees_accounts(&[hold.debit, hold.credit])? {
        Ok(())
    } else {
        Err(out_of_scope(&format!("hold {}", hold.id.0)))
    }
}

/// An open order is shown to any party (the would-be payer has only its id, from the
/// merchant); once paid or cancelled, only to its merchant and payer and their institutions.
pub async fn order(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AtHeight<tally_contracts::Order>>, ApiError> {
    let id = OrderId(params::decimal("order id", &id)?);
    let read = at_head(&api.ctx.storage, |s| Ok(query::order(s, id)?))?;
    if let Some(order) = &read.1 {
        order_in_sight(&api, caller, order)?;
    }
    found("order", (read.0, read.1))
}

/// An unpaid bill is shown to any party (the biller's customer pays it by its id); a paid
/// one only to its biller and payer and their institutions.
pub async fn bill(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AtHeight<tally_contracts::Bill>>, ApiError> {
    let id = BillId(params::decimal("bill id", &id)?);
    let read = at_head(&api.ctx.storage, |s| Ok(query::bill(s, id)?))?;
    if let Some(bill) = &read.1 {
        bill_in_sight(&api, caller, bill)?;
    }
    found("bill", (read.0, read.1))
}

/// A hold, to the parties of its two accounts.
pub async fn hold(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AtHeight<tally_contracts::Hold>>, ApiError> {
    let id = TransferId(params::decimal("hold id", &id)?);
    let read = at_head(&api.ctx.storage, |s| Ok(query::hold(s, id)?))?;
    if let Some(hold) = &read.1 {
        hold_in_sight(&api, caller, hold)?;
    }
    found("hold", (read.0, read.1))
}

/// A settlement cycle, to the institutions it nets.
pub async fn cycle(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AtHeight<tally_contracts::SettlementCycleRecord>>, ApiError> {
    let id = CycleId(params::decimal("settlement cycle id", &id)?);
    let read = at_head(&api.ctx.storage, |s| Ok(query::cycle(s, id)?))?;
    if let Some(cycle) = &read.1
        && !cycle
            .positions
            .iter()
            .any(|p| caller.reads_institution(p.institution))
        && !caller.is_regulator()
    {
        return Err(out_of_scope(&format!("settlement cycle {}", id.0)));
    }
    found("settlement cycle", (read.0, read.1))
}

#[derive(Debug, Serialize)]
pub struct PaymentCodeView {
    payer_key: PublicKey,
    code_nonce: u64,
    /// Whether a merchant already collected with this code; a code is good once.
    used: bool,
}

pub async fn payment_code(
    State(api): ApiState,
    ApiPath((payer_key, code_nonce)): ApiPath<(String, String)>,
) -> Result<Json<AtHeight<PaymentCodeView>>, ApiError> {
    let payer_key = params::public_key(&payer_key)?;
    let code_nonce: u64 = params::decimal("code nonce", &code_nonce)?;
    let mut key = vec![TAG_PAYMENT_CODE];
    key.extend_from_slice(&payer_key.0);
    key.extend_from_slice(&code_nonce.to_be_bytes());
    let (height, used) = at_head(&api.ctx.storage, |s| Ok(s.state_get(&key)?.is_some()))?;
    Ok(Json(AtHeight {
        height,
        record: PaymentCodeView {
            payer_key,
            code_nonce,
            used,
        },
    }))
}

#[derive(Debug, Deserialize)]
pub struct RatesQuery {
    provider: Option<String>,
    base: Option<String>,
    quote: Option<String>,
}

fn state_error(e: tally_contracts::StoreError) -> ApiError {
    ApiError::from(tally_contracts::ExecutionError::from(e))
}

fn corrupt(key: &[u8]) -> ApiError {
    ApiError::from(tally_contracts::ExecutionError::Corrupt { key: key.to_vec() })
}

fn read_rates(storage: &Storage) -> Result<Vec<RateView>, ApiError> {
    let entries = storage
        .scan(&[TAG_RATE], &[TAG_RATE + 1], FX_RATES_MAX)
        .map_err(state_error)?;
    entries
        .iter()
        .map(|(k, v)| {
            let parse = || {
                let rest = k.strip_prefix(&[TAG_RATE])?;
                let (provider, rest) = rest.split_first_chunk::<4>()?;
                let (base, rest) = rest.split_first_chunk::<3>()?;
                let quote: [u8; 3] = rest.try_into().ok()?;
                let rate: FxRate = postcard::from_bytes(v).ok()?;
                Some(RateView {
                    provider: InstitutionId(u32::from_be_bytes(*provider)),
                    base: Currency(*base),
                    quote: Currency(quote),
                    rate: rate.rate,
                    scale: RATE_SCALE,
                    valid_from_ms: rate.valid_from_ms,
                    valid_until_ms: rate.valid_until_ms,
                })
            };
            parse().ok_or_else(|| corrupt(k))
        })
        .collect()
}

pub async fn fx_rates(
    State(api): ApiState,
    ApiQuery(q): ApiQuery<RatesQuery>,
) -> Result<Json<AtHeight<Rates>>, ApiError> {
    let provider = q
        .provider
        .as_deref()
        .map(|p| params::decimal("provider", p).map(InstitutionId))
        .transpose()?;
    let base = q.base.as_deref().map(params::currency).transpose()?;
    let quote = q.quote.as_deref().map(params::currency).transpose()?;
    let (height, rates) = at_head(&api.ctx.storage, read_rates)?;
    let rates = rates
        .into_iter()
        .filter(|r| {
            provider.is_none_or(|p| r.provider == p)
                && base.is_none_or(|b| r.base == b)
                && quote.is_none_or(|c| r.quote == c)
        })
        .collect();
    Ok(Json(AtHeight {
        height,
        record: Rates { rates },
    }))
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Obligation {
    currency: Currency,
    from: InstitutionId,
    to: InstitutionId,
    amount: u128,
}

fn read_obligations(storage: &Storage) -> Result<Vec<Obligation>, ApiError> {
    let entries = storage
        .scan(&[TAG_OBLIGATION], &[TAG_OBLIGATION + 1], OBLIGATIONS_MAX)
        .map_err(state_error)?;
    entries
        .iter()
        .map(|(k, v)| {
            let parse = || {
                let rest = k.strip_prefix(&[TAG_OBLIGATION])?;
                let (currency, rest) = rest.split_first_chunk::<3>()?;
                let (from, rest) = rest.split_first_chunk::<4>()?;
                let to: [u8; 4] = rest.try_into().ok()?;
                Some(Obligation {
                    currency: Currency(*currency),
                    from: InstitutionId(u32::from_be_bytes(*from)),
                    to: InstitutionId(u32::from_be_bytes(to)),
                    amount: postcard::from_bytes(v).ok()?,
                })
            };
            parse().ok_or_else(|| corrupt(k))
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct InstitutionView {
    institution: tally_contracts::Institution,
    /// What this institution owes or is owed, not yet netted by a settlement cycle.
    open_obligations: Vec<Obligation>,
    /// Its net position per currency if a cycle netted the open obligations now:
    /// positive receives, negative pays.
    positions: Vec<NetPosition>,
}

/// An institution's record and open obligations, to itself and the regulator.
pub async fn institution(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AtHeight<InstitutionView>>, ApiError> {
    let id = InstitutionId(params::decimal("institution id", &id)?);
    if !caller.reads_institution(id) {
        return Err(out_of_scope(&format!("institution {}", id.0)));
    }
    let (height, (institution, obligations)) = at_head(&api.ctx.storage, |s| {
        Ok((query::institution(s, id)?, read_obligations(s)?))
    })?;
    let institution = institution.ok_or_else(|| ApiError::not_found("institution"))?;
    let all: Vec<_> = obligations
        .iter()
        .map(|o| (o.currency, o.from, o.to, o.amount))
        .collect();
    let positions = net_positions(&all)
        .into_iter()
        .filter(|p| p.institution == id)
        .collect();
    Ok(Json(AtHeight {
        height,
        record: InstitutionView {
            institution,
            open_obligations: obligations
                .into_iter()
                .filter(|o| o.from == id || o.to == id)
                .collect(),
            positions,
        },
    }))
}
