//! Submitting a transaction and asking where it stands.
//!
//! A submission is answered with its hash as soon as the mempool takes it (202). With
//! `?wait_ms=N` the answer waits, at most `N` ms, for the block that commits it, and then
//! says what the ledger decided: 200 with its events, or 422 with the rejection's code.
//!
//! Submitting is open to anyone (a transaction proves its sender by its own signatures),
//! but an answer lists only the events the caller may see; without credentials, those its
//! sender may see. A committed transaction's status answers its sender, the parties its
//! events name, their institutions and the regulator.

use std::borrow::Cow;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tally_contracts::{
    AccountId, EncodedTransaction, Party, SealedTravelRule, SignedTransaction, TransferId, TxKind,
    encoding,
};
use tally_crypto::Hash;
use tally_wire::transaction::TxView;
use tokio::time::Instant;

use super::caller::{Caller, Sight, out_of_scope};
use super::error::ApiError;
use super::fair::ClientKey;
use super::params::{self, ApiPath, ApiQuery};
use super::{Api, ApiState, events};
use crate::block::BlockResults;
use crate::service::{NodeContext, TxStatus};

#[derive(Debug, Deserialize)]
pub struct SubmitQuery {
    wait_ms: Option<u64>,
}

/// The two forms a transaction is submitted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// `application/octet-stream`: canonical bytes.
    Binary,
    /// `application/json`: the JSON form, re-encoded here.
    Json,
}

/// The form the `Content-Type` names; 415 for anything else.
pub(super) fn form(headers: &HeaderMap) -> Result<Form, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/octet-stream" => Ok(Form::Binary),
        "application/json" => Ok(Form::Json),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send application/octet-stream (canonical bytes) or application/json",
        )),
    }
}

/// A transaction in its JSON form, held to the same checks as bytes: limits, and one
/// encoding per transaction.
pub(super) fn from_json(signed: SignedTransaction) -> Result<EncodedTransaction, ApiError> {
    Ok(EncodedTransaction::decode(encoding::encode(&signed))?)
}

pub(super) fn malformed_json(e: serde_json::Error) -> ApiError {
    ApiError::bad_request("MALFORMED_JSON", e.to_string())
}

/// The transaction of the body: binary as sent, or the JSON form encoded.
fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<EncodedTransaction, ApiError> {
    match form(headers)? {
        Form::Binary => Ok(EncodedTransaction::decode(body.to_vec())?),
        Form::Json => from_json(serde_json::from_slice(body).map_err(malformed_json)?),
    }
}

/// Refused: the transaction is in a committed block already.
pub(super) fn already_committed(hash: Hash) -> ApiError {
    ApiError {
        tx: Some(hash),
        ..ApiError::new(
            StatusCode::CONFLICT,
            "ALREADY_COMMITTED",
            "the transaction is already in a committed block",
        )
    }
}

pub async fn submit(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientKey>,
    ApiQuery(query): ApiQuery<SubmitQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let tx = decode_body(&headers, &body)?;
    let hash = tx.hash();
    let sender = tx.tx().sender;
    if api.ctx.storage.tx_location(&hash)?.is_some() {
        return Err(already_committed(hash));
    }
    let waiter = match query.wait_ms {
        None => None,
        Some(ms) if ms > api.limits.wait_ms_max => {
            return Err(ApiError::bad_request(
                "BAD_WAIT",
                format!("wait_ms is at most {}", api.limits.wait_ms_max),
            ));
        }
        Some(ms) => {
            let share = Api::share(
                &api.waiters,
                client,
                "TOO_MANY_WAITERS",
                "submissions waiting for their commit (retry without wait_ms)",
            )?;
            Some((ms, share))
        }
    };
    let hash = api.ctx.enqueue(tx)?.answer().await?;
    let Some((wait_ms, _permit)) = waiter else {
        return Ok((StatusCode::ACCEPTED, Json(TxView::Pending { hash })).into_response());
    };
    let view = wait_for_commit(&api.ctx, hash, Duration::from_millis(wait_ms)).await?;
    let mut sight = match caller {
        Caller::Anonymous => Sight::new(
            Caller::of_party(&api.ctx.storage, sender)?,
            api.ctx.storage.clone(),
        ),
        caller => Sight::new(caller, api.ctx.storage.clone()),
    };
    let view = only_seen(view, &mut sight)?;
    match &view {
        TxView::Committed { code, .. } if code != "OK" => {
            let rejection = committed_receipt(&api.ctx, hash)?.and_then(|r| r.result.err());
            match rejection {
                Some(rejection) => Err(ApiError::rejected(hash, rejection)),
                None => Ok(Json(view).into_response()),
            }
        }
        TxView::Committed { .. } => Ok(Json(view).into_response()),
        TxView::Pending { .. } | TxView::Unknown { .. } => {
            Ok((StatusCode::ACCEPTED, Json(view)).into_response())
        }
    }
}

/// Waits until `hash` is committed or `wait` has passed; answers where it stands then.
async fn wait_for_commit(
    ctx: &NodeContext,
    hash: Hash,
    wait: Duration,
) -> Result<TxView, ApiError> {
    let deadline = Instant::now() + wait;
    let mut committed = ctx.committed.clone();
    loop {
        // Marked seen before storage is read, so a commit after the read wakes us.
        committed.borrow_and_update();
        let view = view(ctx, hash)?;
        if matches!(view, TxView::Committed { .. }) {
            return Ok(view);
        }
        match tokio::time::timeout_at(deadline, committed.changed()).await {
            Err(_elapsed) => return Ok(view),
            Ok(Err(_closed)) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SHUTTING_DOWN",
                    "the node is shutting down",
                ));
            }
            Ok(Ok(())) => {}
        }
    }
}

/// The events of a committed view that `sight` may see.
fn only_seen(view: TxView, sight: &mut Sight) -> Result<TxView, ApiError> {
    Ok(match view {
        TxView::Committed {
            hash,
            height,
            index,
            code,
            events,
        } => {
            let mut seen = Vec::with_capacity(events.len());
            for event in events {
                if sight.sees_event(&event.event)? {
                    seen.push(event);
                }
            }
            TxView::Committed {
                hash,
                height,
                index,
                code,
                events: seen,
            }
        }
        view => view,
    })
}

/// Where a transaction stands. Pending or unknown tells nothing a caller holding the hash
/// does not know; a committed one answers only those who may see it (see the module).
pub async fn status(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(hash): ApiPath<String>,
) -> Result<Json<TxView>, ApiError> {
    let hash = params::hash(&hash)?;
    let view = view(&api.ctx, hash)?;
    let TxView::Committed { height, index, .. } = &view else {
        return match view {
            TxView::Unknown { .. } => Err(ApiError::not_found("transaction")),
            view => Ok(Json(view)),
        };
    };
    let mut sight = Sight::new(caller.clone(), api.ctx.storage.clone());
    let sees_sender = sees_sender(&api.ctx, &caller, &mut sight, *height, *index)?;
    let view = only_seen(view, &mut sight)?;
    match &view {
        TxView::Committed { events, .. } if sees_sender || !events.is_empty() => Ok(Json(view)),
        _ => Err(out_of_scope(&format!("transaction {hash}"))),
    }
}

/// Whether `caller` may read the sender of the committed transaction at `height`, `index`
/// (one of the two ways to see a transaction; the other is one of its events).
pub(super) fn sees_sender(
    ctx: &NodeContext,
    caller: &Caller,
    sight: &mut Sight,
    height: u64,
    index: u32,
) -> Result<bool, ApiError> {
    Ok(match committed_sender(ctx, height, index)? {
        Party::Account(account) => sight.sees_accounts(&[account])?,
        Party::Institution(institution) => caller.reads_institution(institution),
    })
}

/// The sender of the transaction at `height`, `index`.
fn committed_sender(ctx: &NodeContext, height: u64, index: u32) -> Result<Party, ApiError> {
    let bytes = ctx
        .storage
        .block(height)?
        .ok_or_else(|| ApiError::missing_at(&ctx.storage, height, "the body"))?;
    let block = crate::block::Block::decode(&bytes)?;
    block
        .txs
        .get(index as usize)
        .map(|t| t.tx().sender)
        .ok_or_else(|| missing(height, "a transaction"))
}

/// A committed cross-border transfer's sealed travel-rule copies, as one reader gets them.
#[derive(Debug, Serialize)]
pub struct TravelRuleView {
    hash: Hash,
    height: u64,
    /// What each copy is bound to (HPKE's info and aad): the chain and the transfer.
    chain_id: String,
    transfer: TransferId,
    sender: AccountId,
    beneficiary: AccountId,
    /// The copies the caller may have: the regulator all, an institution its own.
    copies: Vec<SealedTravelRule>,
}

/// `GET /v1/travel-rule/{hash}`: the sealed copies of an applied cross-border transfer,
/// each only to the institution it was sealed to and to the regulator. They are ciphertext,
/// but who sent travel-rule data to whom is still nobody else's business.
pub async fn travel_rule(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(hash): ApiPath<String>,
) -> Result<Json<TravelRuleView>, ApiError> {
    let hash = params::hash(&hash)?;
    let none = || ApiError::not_found("travel-rule data of an applied cross-border transfer");
    let TxStatus::Committed { height, index } = api.ctx.status(&hash)? else {
        return Err(none());
    };
    let results = stored_results(&api.ctx, height)?;
    let applied = results
        .receipts
        .get(index as usize)
        .is_some_and(|r| r.result.is_ok());
    let bytes = api
        .ctx
        .storage
        .block(height)?
        .ok_or_else(|| ApiError::missing_at(&api.ctx.storage, height, "the body"))?;
    let block = crate::block::Block::decode(&bytes)?;
    let signed = block
        .txs
        .get(index as usize)
        .ok_or_else(|| missing(height, "a transaction"))?;
    let (
        true,
        Party::Account(sender),
        TxKind::CrossBorderTransfer {
            id,
            beneficiary,
            travel_rule,
            ..
        },
    ) = (applied, signed.tx().sender, &signed.tx().kind)
    else {
        return Err(none());
    };
    if travel_rule.is_empty() {
        return Err(none());
    }
    let copies: Vec<SealedTravelRule> = travel_rule
        .iter()
        .filter(|copy| match &caller {
            Caller::Regulator(_) => true,
            Caller::Institution(i) => *i == copy.recipient,
            Caller::Anonymous | Caller::Account { .. } => false,
        })
        .cloned()
        .collect();
    if copies.is_empty() {
        return Err(out_of_scope(&format!(
            "travel-rule data of transaction {hash} (sealed to others)"
        )));
    }
    Ok(Json(TravelRuleView {
        hash,
        height,
        chain_id: block.header.chain_id.clone(),
        transfer: *id,
        sender,
        beneficiary: *beneficiary,
        copies,
    }))
}

fn view(ctx: &NodeContext, hash: Hash) -> Result<TxView, ApiError> {
    Ok(match ctx.status(&hash)? {
        TxStatus::Pending => TxView::Pending { hash },
        TxStatus::Unknown => TxView::Unknown { hash },
        TxStatus::Committed { height, index } => {
            let results = stored_results(ctx, height)?;
            let receipt = results
                .receipts
                .get(index as usize)
                .ok_or_else(|| missing(height, "a receipt"))?;
            let events = events::of_block(height, &results)
                .filter(|e| e.tx == Some(hash))
                .collect();
            TxView::Committed {
                hash,
                height,
                index,
                code: Cow::Borrowed(receipt.result.map_or_else(|r| r.code(), |()| "OK")),
                events,
            }
        }
    })
}

/// Where a committed transaction is: its block's height and its index there.
pub(super) fn committed_at(ctx: &NodeContext, hash: Hash) -> Result<Option<(u64, u32)>, ApiError> {
    Ok(ctx
        .storage
        .tx_location(&hash)?
        .map(|location| (location.height, location.index)))
}

fn committed_receipt(
    ctx: &NodeContext,
    hash: Hash,
) -> Result<Option<tally_contracts::Receipt>, ApiError> {
    let Some(location) = ctx.storage.tx_location(&hash)? else {
        return Ok(None);
    };
    let results = stored_results(ctx, location.height)?;
    Ok(results.receipts.get(location.index as usize).cloned())
}

/// A committed block's results; their absence means the data directory is damaged.
pub fn stored_results(ctx: &NodeContext, height: u64) -> Result<BlockResults, ApiError> {
    let bytes = ctx
        .storage
        .results(height)?
        .ok_or_else(|| ApiError::missing_at(&ctx.storage, height, "the results"))?;
    Ok(BlockResults::decode(&bytes)?)
}

/// Something a stored block or its results should hold and do not: a damaged directory.
fn missing(height: u64, what: &str) -> ApiError {
    ApiError::from(crate::storage::StorageError::Damaged(format!(
        "{what} of committed block {height} is missing"
    )))
}
