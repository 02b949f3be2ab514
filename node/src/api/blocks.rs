//! Committed blocks with their certificates and results, the validators seen signing, and
//! equivocation evidence carried in blocks.
//!
//! What proves the chain is public: a block's header, hash, certificate and evidence. Its
//! body (every party's transactions) and results (their receipts and events) are the
//! regulator's: no institution may read another's customers' payments from a block.

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tally_consensus::{
    BlockHash, CommitCertificate, Evidence, MESSAGE_BYTES_MAX, Validator, ValidatorIndex,
};
use tally_crypto::PublicKey;

use super::caller::Caller;
use super::error::ApiError;
use super::params::{self, ApiPath, ApiQuery};
use super::transactions::stored_results;
use super::{Api, ApiState};
use crate::block::{Block, BlockHeader, BlockResults};
use crate::storage::StorageError;

/// The most blocks one evidence request reads; a client pages on with `next_before_height`.
pub const EVIDENCE_SCAN_BLOCKS_MAX: u64 = 1_000;

#[derive(Debug, Serialize)]
pub struct BlockView {
    height: u64,
    hash: BlockHash,
    header: BlockHeader,
    /// The regulator's only.
    #[serde(skip_serializing_if = "Option::is_none")]
    txs: Option<Vec<tally_contracts::SignedTransaction>>,
    evidence: Vec<Evidence>,
    certificate: CommitCertificate,
    /// The state root after the block, the holds it released and one receipt per tx. The
    /// regulator's only.
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<BlockResults>,
    /// The block was pruned on this node (`[pruning] keep_blocks`): its header and
    /// certificate remain, its transactions, evidence and results do not.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pruned: bool,
}

fn damaged(message: String) -> ApiError {
    StorageError::Damaged(message).into()
}

fn stored_block(api: &Api, height: u64) -> Result<Option<(BlockHash, Block)>, ApiError> {
    let Some(bytes) = api.ctx.storage.block(height)? else {
        return Ok(None);
    };
    Ok(Some((Block::hash_of(&bytes), Block::decode(&bytes)?)))
}

/// Certificates are stored in consensus' canonical encoding.
fn stored_certificate(api: &Api, height: u64) -> Result<CommitCertificate, ApiError> {
    let bytes = api
        .ctx
        .storage
        .certificate(height)?
        .ok_or_else(|| damaged(format!("the certificate of block {height} is missing")))?;
    tally_consensus::decode(&bytes, MESSAGE_BYTES_MAX)
        .map_err(|e| damaged(format!("the certificate of block {height}: {e}")))
}

/// A pruned block's view: its header and certificate. A node started from a snapshot holds
/// neither for most blocks below it: `410 PRUNED`.
fn pruned_view(api: &Api, height: u64) -> Result<BlockView, ApiError> {
    let Some((header, body_digest)) = api.ctx.storage.header_parts(height)? else {
        return Err(if height <= api.ctx.storage.pruned_through()? {
            ApiError::missing_at(&api.ctx.storage, height, "the header")
        } else {
            ApiError::not_found("block")
        });
    };
    let hash = BlockHash::of_parts(BlockHash::header_digest(&header), body_digest);
    Ok(BlockView {
        height,
        hash,
        header: tally_consensus::decode(&header, MESSAGE_BYTES_MAX)
            .map_err(|e| damaged(format!("the header of block {height}: {e}")))?,
        txs: None,
        evidence: Vec::new(),
        certificate: stored_certificate(api, height)?,
        results: None,
        pruned: true,
    })
}

fn view(api: &Api, height: u64, caller: &Caller) -> Result<BlockView, ApiError> {
    let Some((hash, block)) = stored_block(api, height)? else {
        return pruned_view(api, height);
    };
    let body = caller.is_regulator();
    Ok(BlockView {
        height,
        hash,
        header: block.header,
        txs: body.then(|| {
            block
                .txs
                .into_iter()
                .map(tally_contracts::EncodedTransaction::into_signed)
                .collect()
        }),
        evidence: block.evidence,
        certificate: stored_certificate(api, height)?,
        results: if body {
            Some(stored_results(&api.ctx, height)?)
        } else {
            None
        },
        pruned: false,
    })
}

fn head(api: &Api) -> Result<u64, ApiError> {
    api.ctx
        .storage
        .head()?
        .ok_or_else(|| ApiError::not_found("block (none committed yet)"))
}

pub async fn latest(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
) -> Result<Json<BlockView>, ApiError> {
    Ok(Json(view(&api, head(&api)?, &caller)?))
}

pub async fn at_height(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(height): ApiPath<String>,
) -> Result<Json<BlockView>, ApiError> {
    let height: u64 = params::decimal("height", &height)?;
    if height == 0 {
        // The genesis is a file, not a block: nothing was ever stored at 0 to be pruned.
        return Err(ApiError::bad_request(
            "BAD_HEIGHT",
            "heights start at 1: the genesis is no block",
        ));
    }
    Ok(Json(view(&api, height, &caller)?))
}

/// The validators: who proposed the latest block and which validator indexes signed its
/// certificate; the set in force at that height, and the changes scheduled after it.
#[derive(Debug, Serialize)]
pub struct ValidatorsView {
    height: u64,
    round: u32,
    proposer: PublicKey,
    signers: Vec<ValidatorIndex>,
    /// The set that signed the latest block, in index order; absent when this node did not
    /// record its genesis set.
    in_force: Option<ValidatorSetView>,
    /// Sets taking effect above the latest block, by height.
    scheduled: Vec<ValidatorSetView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ValidatorSetView {
    /// The first height this set signs.
    from_height: u64,
    validators: Vec<ValidatorView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ValidatorView {
    index: u32,
    public_key: PublicKey,
    power: u64,
}

fn set_view(from_height: u64, validators: &[Validator]) -> ValidatorSetView {
    ValidatorSetView {
        from_height,
        validators: validators
            .iter()
            .zip(0u32..)
            .map(|(v, index)| ValidatorView {
                index,
                public_key: v.public_key,
                power: v.power,
            })
            .collect(),
    }
}

fn decode_stored<T: Serialize + serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    tally_consensus::decode(bytes, usize::MAX)
        .map_err(|e| damaged(format!("the stored {what}: {e}")))
}

/// The genesis set (from height 1) and every scheduled change, each with the first height
/// it signs, in height order.
pub(super) fn stored_validator_sets(
    storage: &crate::storage::Storage,
) -> Result<Vec<(u64, Vec<Validator>)>, ApiError> {
    let mut sets = Vec::new();
    if let Some(bytes) = storage.genesis_validators()? {
        let genesis: Vec<Validator> = decode_stored(&bytes, "genesis validators")?;
        sets.push((1, genesis));
    }
    if let Some(bytes) = storage.validator_schedule()? {
        let schedule: Vec<(u64, Vec<Validator>)> = decode_stored(&bytes, "validator schedule")?;
        sets.extend(schedule);
    }
    sets.sort_by_key(|(from, _)| *from);
    Ok(sets)
}

fn validator_sets(api: &Api) -> Result<Vec<ValidatorSetView>, ApiError> {
    Ok(stored_validator_sets(&api.ctx.storage)?
        .iter()
        .map(|(at, set)| set_view(*at, set))
        .collect())
}

pub async fn validators(State(api): ApiState) -> Result<Json<ValidatorsView>, ApiError> {
    let height = head(&api)?;
    let (_, block) = stored_block(&api, height)?
        .ok_or_else(|| damaged(format!("the head block {height} is missing")))?;
    let certificate = stored_certificate(&api, height)?;
    let (mut in_force, mut scheduled) = (None, Vec::new());
    for set in validator_sets(&api)? {
        if set.from_height <= height {
            in_force = Some(set);
        } else {
            scheduled.push(set);
        }
    }
    Ok(Json(ValidatorsView {
        height,
        round: certificate.round.0,
        proposer: block.header.proposer,
        signers: certificate.signatures.iter().map(|s| s.validator).collect(),
        in_force,
        scheduled,
    }))
}

#[derive(Debug, Deserialize)]
pub struct EvidenceQuery {
    /// Look at blocks below this height; the default is above the head.
    before_height: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct EvidenceItem {
    height: u64,
    evidence: Evidence,
}

#[derive(Debug, Serialize)]
pub struct EvidencePage {
    /// Newest first.
    items: Vec<EvidenceItem>,
    /// Pass as `before_height` to look further back; absent once block 1 (or the first
    /// block kept whole) was read.
    next_before_height: Option<u64>,
    /// This node pruned the blocks up to here: their evidence is not listed (an audit node
    /// that keeps every block lists it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pruned_through: Option<u64>,
}

pub async fn evidence(
    State(api): ApiState,
    ApiQuery(q): ApiQuery<EvidenceQuery>,
) -> Result<Json<EvidencePage>, ApiError> {
    let top = api.ctx.storage.head()?.unwrap_or(0);
    let before = q
        .before_height
        .unwrap_or(u64::MAX)
        .min(top.saturating_add(1));
    // Pruned blocks carry no evidence any more: the scan ends above them.
    let pruned_through = api.ctx.storage.pruned_through()?;
    let lowest = before
        .saturating_sub(EVIDENCE_SCAN_BLOCKS_MAX)
        .max(pruned_through.saturating_add(1));
    let mut items = Vec::new();
    // Blocks recorded at commit as carrying no evidence are not read (a busy block is
    // costly to decode); blocks without a record are.
    let recorded = if lowest < before {
        api.ctx.storage.recorded_evidence(lowest..=before - 1)?
    } else {
        Vec::new()
    };
    let heights: Vec<(u64, Option<u64>)> = (lowest..before).zip(recorded).collect();
    for (height, count) in heights.into_iter().rev() {
        if count == Some(0) {
            continue;
        }
        let Some((_, block)) = stored_block(&api, height)? else {
            continue;
        };
        items.extend(
            block
                .evidence
                .into_iter()
                .map(|evidence| EvidenceItem { height, evidence }),
        );
    }
    Ok(Json(EvidencePage {
        items,
        next_before_height: (lowest > pruned_through.saturating_add(1)).then_some(lowest),
        pruned_through: (pruned_through > 0).then_some(pruned_through),
    }))
}
