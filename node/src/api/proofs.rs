//! Ledger records with the proof a client checks them by ([`crate::proof`]): an account, an
//! order, a bill or a hold, each from the newest state a committed block certifies (one block
//! behind the head), with the proof of its presence or absence, the header that commits to
//! that state and the header's certificate.
//!
//! Also a committed transaction's receipt, proven up to the next block's header; and the
//! validator-set changes, each with the certified header of the block that carried it, which a
//! client follows from the genesis set to know which set signs a later header.
//!
//! Who may call: the party that may read the record unproven (the same rules as
//! `GET /v1/accounts/{id}` and the ledger records'); a record that does not exist is proven
//! absent to any party, as its unproven read says "not found" to any party. The validator
//! changes are public, as the validator set and the block headers are.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tally_consensus::MESSAGE_BYTES_MAX;
use tally_contracts::commitment::{self, ProvenRecord};
use tally_contracts::{Account, AccountId, Bill, BillId, Hold, Ledger, Order, OrderId, TransferId};
use tally_crypto::{Hash, merkle_path};

use super::caller::{Caller, Sight, out_of_scope};
use super::error::ApiError;
use super::ledger::{bill_in_sight, hold_in_sight, order_in_sight};
use super::params::{self, ApiPath};
use super::transactions::{self, stored_results};
use super::{Api, ApiState};
use crate::proof::{
    CarriedChanges, CertifiedHeader, ProvenEvent, ReceiptProof, RecordProof, ValidatorChanges,
};
use crate::storage::StorageError;

/// A record (decoded for people; `null` when absent) and its proof.
#[derive(Debug, Serialize)]
pub struct ProvenView<T> {
    record: Option<T>,
    #[serde(flatten)]
    proof: RecordProof,
}

pub async fn account(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProvenView<Account>>, ApiError> {
    let id = AccountId(params::decimal("account id", &id)?);
    let view = prove::<Account>(&api, ProvenRecord::Account(id))?;
    if let Some(account) = &view.record
        && !caller.reads_account(account)
    {
        return Err(out_of_scope(&format!("account {}", id.0)));
    }
    Ok(Json(view))
}

pub async fn order(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProvenView<Order>>, ApiError> {
    let id = OrderId(params::decimal("order id", &id)?);
    let view = prove::<Order>(&api, ProvenRecord::Order(id))?;
    if let Some(order) = &view.record {
        order_in_sight(&api, caller, order)?;
    }
    Ok(Json(view))
}

pub async fn bill(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProvenView<Bill>>, ApiError> {
    let id = BillId(params::decimal("bill id", &id)?);
    let view = prove::<Bill>(&api, ProvenRecord::Bill(id))?;
    if let Some(bill) = &view.record {
        bill_in_sight(&api, caller, bill)?;
    }
    Ok(Json(view))
}

pub async fn hold(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProvenView<Hold>>, ApiError> {
    let id = TransferId(params::decimal("hold id", &id)?);
    let view = prove::<Hold>(&api, ProvenRecord::Hold(id))?;
    if let Some(hold) = &view.record {
        hold_in_sight(&api, caller, hold)?;
    }
    Ok(Json(view))
}

fn damaged(message: String) -> ApiError {
    StorageError::Damaged(message).into()
}

/// Reads `record` and its proof from the certified state, with the header and certificate of
/// the block that certifies it.
fn prove<T: DeserializeOwned>(api: &Api, record: ProvenRecord) -> Result<ProvenView<T>, ApiError> {
    let state = api.ctx.storage.certified_state().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_CERTIFIED_YET",
            "this node has committed no block since it started, so no state it holds is \
             certified yet (a block certifies the state before it); try again after the next \
             block, or ask another node",
        )
    })?;
    let head = Ledger::chain_head(&*state)?
        .ok_or_else(|| damaged("the certified state has no chain head".to_string()))?;
    let key = record.key();
    let value = tally_contracts::StateStore::get(&*state, &key)
        .map_err(|e| damaged(format!("reading the certified state: {e}")))?;
    let (ledger_root, proof) = commitment::prove(&*state, head.height, &key)?;
    if ledger_root != head.ledger_root {
        return Err(damaged(format!(
            "the ledger tree's root at height {} is not the chain head's",
            head.height
        )));
    }
    let decoded = value
        .as_deref()
        .map(|bytes| commitment::decode_record::<T>(&key, bytes))
        .transpose()?;
    Ok(ProvenView {
        record: decoded,
        proof: RecordProof {
            height: head.height,
            key: hex::encode(&key),
            value: value.as_deref().map(hex::encode),
            proof,
            ledger_root,
            results_root: head.results_root,
            certified: certified_header(api, head.height.saturating_add(1))?,
        },
    })
}

/// The most blocks of validator changes one page answers.
const CHANGES_PAGE_MAX: usize = 32;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// The first block height to list (default 1).
    from_height: Option<String>,
}

/// The blocks that changed the validator set, from `from_height` up, each with its certified
/// header and the changes it carried.
pub async fn validator_changes(
    State(api): ApiState,
    params::ApiQuery(q): params::ApiQuery<ChangesQuery>,
) -> Result<Json<ValidatorChanges>, ApiError> {
    let from = match q.from_height.as_deref() {
        Some(text) => params::decimal("from_height", text)?,
        None => 1,
    };
    let mut stored = api
        .ctx
        .storage
        .validator_changes(from, CHANGES_PAGE_MAX.saturating_add(1))?;
    let next_from_height = if stored.len() > CHANGES_PAGE_MAX {
        stored.pop().map(|(height, _)| height)
    } else {
        None
    };
    let mut changes = Vec::with_capacity(stored.len());
    for (height, updates) in stored {
        // Kept apart from the block, so they are served after it is pruned.
        let updates = tally_consensus::decode(&updates, MESSAGE_BYTES_MAX)
            .map_err(|e| damaged(format!("the validator updates of block {height}: {e}")))?;
        changes.push(CarriedChanges {
            certified: certified_header(&api, height)?,
            updates,
        });
    }
    Ok(Json(ValidatorChanges {
        changes,
        next_from_height,
    }))
}

/// Block `height`'s header, its body's digest and its certificate (kept when the block is
/// pruned); `503 NOT_CERTIFIED_YET` while that block is not committed.
fn certified_header(api: &Api, height: u64) -> Result<CertifiedHeader, ApiError> {
    api.ctx.storage.certified_header(height)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_CERTIFIED_YET",
            format!(
                "block {height}, whose header would certify this, is not committed yet; try \
                 again after it"
            ),
        )
    })
}

/// A committed transaction's receipt with its proof, to whom `GET /v1/transactions/{hash}`
/// shows it (a party that sees its sender, or one of its events); the events the caller may
/// not read are given as their hashes only.
pub async fn transaction(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(hash): ApiPath<String>,
) -> Result<Json<ReceiptProof>, ApiError> {
    let hash = params::hash(&hash)?;
    let (height, index) = transactions::committed_at(&api.ctx, hash)?
        .ok_or_else(|| ApiError::not_found("committed transaction"))?;
    let mut sight = Sight::new(caller.clone(), api.ctx.storage.clone());
    let mut seen = transactions::sees_sender(&api.ctx, &caller, &mut sight, height, index)?;
    let results = stored_results(&api.ctx, height)?;
    let receipt = results.receipts.get(index as usize).ok_or_else(|| {
        damaged(format!(
            "the receipt of transaction {index} of block {height} is missing"
        ))
    })?;
    let mut events = Vec::with_capacity(receipt.events.len());
    for event in &receipt.events {
        if sight.sees_event(event)? {
            seen = true;
            events.push(ProvenEvent::Shown(event.clone()));
        } else {
            events.push(ProvenEvent::Hidden(commitment::event_hash(event)));
        }
    }
    if !seen {
        return Err(out_of_scope(&format!("transaction {hash}")));
    }
    let receipts: Vec<Hash> = results
        .receipts
        .iter()
        .map(commitment::receipt_hash)
        .collect();
    let path = merkle_path(&receipts, index as usize)
        .ok_or_else(|| damaged(format!("no path to receipt {index} of block {height}")))?;
    Ok(Json(ReceiptProof {
        height,
        index,
        tx: receipt.tx,
        result: receipt.result,
        events,
        path,
        expired_digest: commitment::expired_digest(&results.expired),
        ledger_root: results.ledger_root,
        certified: certified_header(&api, height.saturating_add(1))?,
    }))
}
