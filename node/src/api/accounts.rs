//! An account's balances and its history.
//!
//! History is kept by the chain task in storage under the account id's 16 big-endian key
//! bytes ([`AccountId::to_key_bytes`]); pages go from newest to oldest, and `next_before`
//! is the cursor of the next older page.

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tally_contracts::{AccountId, Event, Ledger, SignedTransaction, query};
use tally_crypto::Hash;
use tally_wire::ledger::AccountView;

use super::caller::{Caller, out_of_scope};
use super::error::ApiError;
use super::params::{self, ApiPath, ApiQuery, Position};
use super::transactions::stored_results;
use super::{ApiState, at_head};
use crate::block::{Block, BlockResults};
use crate::storage::TxLocation;

pub const HISTORY_PAGE_DEFAULT: usize = 20;
pub const HISTORY_PAGE_MAX: usize = 100;

pub async fn account(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AccountView>, ApiError> {
    let id = AccountId(params::decimal("account id", &id)?);
    let (height, (account, rules)) = at_head(&api.ctx.storage, |s| {
        Ok((query::account(s, id)?, Ledger::rules(s)?))
    })?;
    let account = account.ok_or_else(|| ApiError::not_found("account"))?;
    if !caller.reads_account(&account) {
        return Err(out_of_scope(&format!("account {}", id.0)));
    }
    let tier_limits = account
        .kind
        .has_holder()
        .then(|| rules.tier(account.holder.tier))
        .flatten();
    Ok(Json(AccountView {
        height,
        balance: account.balance(),
        available: account.available(),
        tier_limits,
        account,
    }))
}

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    /// `"height:index"`: entries strictly older than this.
    before: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct HistoryEntry {
    height: u64,
    index: u32,
    hash: Hash,
    transaction: SignedTransaction,
    /// `"OK"`, or the ledger's stable rejection code.
    code: &'static str,
    events: Vec<Event>,
}

#[derive(Debug, Serialize)]
pub struct HistoryPage {
    entries: Vec<HistoryEntry>,
    /// Pass as `before` for the next older page; absent on the last page.
    next_before: Option<String>,
}

pub async fn history(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    let id = AccountId(params::decimal("account id", &id)?);
    let before = q
        .before
        .as_deref()
        .map(|b| Position::parse("before", b))
        .transpose()?
        .map(|p| TxLocation {
            height: p.height,
            index: p.index,
        });
    let limit = params::page_limit(q.limit, HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX)?;
    let account =
        query::account(&api.ctx.storage, id)?.ok_or_else(|| ApiError::not_found("account"))?;
    if !caller.reads_account(&account) {
        return Err(out_of_scope(&format!("account {}", id.0)));
    }
    let locations = api
        .ctx
        .storage
        .account_history(&id.to_key_bytes(), before, limit)?;
    let mut block: Option<(u64, Block, BlockResults)> = None;
    let mut entries = Vec::with_capacity(locations.len());
    for location in &locations {
        let cached = block.as_ref().is_some_and(|(h, ..)| *h == location.height);
        if !cached {
            let bytes = api.ctx.storage.block(location.height)?.ok_or_else(|| {
                ApiError::missing_at(&api.ctx.storage, location.height, "the body")
            })?;
            block = Some((
                location.height,
                Block::decode(&bytes)?,
                stored_results(&api.ctx, location.height)?,
            ));
        }
        let Some((_, b, results)) = &block else {
            continue;
        };
        let i = location.index as usize;
        let (Some(transaction), Some(receipt)) = (b.txs.get(i), results.receipts.get(i)) else {
            return Err(ApiError::from(crate::storage::StorageError::Damaged(
                format!(
                    "history points at a missing transaction {}",
                    location_text(*location)
                ),
            )));
        };
        entries.push(HistoryEntry {
            height: location.height,
            index: location.index,
            hash: receipt.tx,
            transaction: transaction.signed().clone(),
            code: receipt.result.map_or_else(|r| r.code(), |()| "OK"),
            events: receipt.events.clone(),
        });
    }
    let next_before = (locations.len() == limit)
        .then(|| locations.last().map(|l| location_text(*l)))
        .flatten();
    Ok(Json(HistoryPage {
        entries,
        next_before,
    }))
}

fn location_text(location: TxLocation) -> String {
    Position {
        height: location.height,
        index: location.index,
    }
    .to_string()
}
