//! Submitting many transactions in one request, as a bank's payment system sends the
//! payments it has gathered: one request, one signature check of the request and one round
//! of TLS records for up to [`BATCH_TXS_MAX`] transactions instead of one each.
//!
//! `POST /v1/transactions/batch` takes either form of the single submission:
//! - `application/octet-stream`: each transaction's canonical bytes, preceded by their
//!   length as a 4-byte big-endian number ([`tally_wire::batch::frame`] builds such a body);
//! - `application/json`: an array of transactions in their JSON form.
//!
//! Every transaction is queued for admission before any answer is awaited, so the chain
//! task verifies the batch's signatures together. The answer (200) lists, in the body's
//! order, each transaction's outcome: `pending` with its hash, or `refused` with the code
//! and message its single submission would have got (`BUSY` ones may be sent again later).
//! No answer waits for a commit: `GET /v1/transactions/{hash}` and the event stream follow
//! them there. A body that cannot be split (a cut length, no transaction, more than
//! [`BATCH_TXS_MAX`], malformed JSON) is refused whole, and nothing is queued.
//!
//! Who may call it: anyone, as for one transaction (scope `submit`): each transaction's own
//! signatures authenticate it. What bounds a flood: the body limit every request has, the
//! count bound, and the client's request tokens: a batch of n transactions costs n tokens,
//! all or none, so batching saves the node work but is no way around a client's share.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use tally_contracts::{EncodedTransaction, SignedTransaction};
use tally_crypto::Hash;

use tally_wire::batch::{BATCH_TXS_MAX, BatchAnswer, BatchOutcome, LENGTH_BYTES};

use super::error::ApiError;
use super::fair::ClientKey;
use super::transactions::{Form, already_committed, form, from_json, malformed_json};
use super::{Api, ApiState};
use crate::config::Mode;
use crate::service::{Queued, SubmitError};

fn bad_batch(message: String) -> ApiError {
    ApiError::bad_request("MALFORMED_BATCH", message)
}

/// Refuses a batch of `count` transactions that is empty or over [`BATCH_TXS_MAX`].
fn check_count(count: usize) -> Result<(), ApiError> {
    if count == 0 {
        return Err(bad_batch("the batch holds no transaction".to_string()));
    }
    if count > BATCH_TXS_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BATCH_TOO_LARGE",
            format!("a batch holds at most {BATCH_TXS_MAX} transactions"),
        ));
    }
    Ok(())
}

/// Splits a binary batch into its transactions' bytes; refused whole when a length prefix
/// or a transaction is cut short, or when the count is out of bounds.
fn frames(body: &[u8]) -> Result<Vec<&[u8]>, ApiError> {
    let mut frames = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = frames.len() + 1;
        let Some((length, after)) = rest.split_first_chunk::<LENGTH_BYTES>() else {
            return Err(bad_batch(format!(
                "transaction {n}: its {LENGTH_BYTES}-byte length is cut short"
            )));
        };
        let length = usize::try_from(u32::from_be_bytes(*length)).unwrap_or(usize::MAX);
        let Some((tx, after)) = after.split_at_checked(length) else {
            return Err(bad_batch(format!(
                "transaction {n} claims {length} bytes; {} remain",
                after.len()
            )));
        };
        frames.push(tx);
        // Checked as it grows, so a body of empty frames stops at the bound.
        if frames.len() > BATCH_TXS_MAX {
            check_count(frames.len())?;
        }
        rest = after;
    }
    check_count(frames.len())?;
    Ok(frames)
}

/// The batch's transactions, each decoded or refused on its own.
fn transactions(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<Result<EncodedTransaction, ApiError>>, ApiError> {
    Ok(match form(headers)? {
        Form::Binary => frames(body)?
            .into_iter()
            .map(|bytes| EncodedTransaction::decode(bytes.to_vec()).map_err(ApiError::from))
            .collect(),
        Form::Json => {
            let signed: Vec<SignedTransaction> =
                serde_json::from_slice(body).map_err(malformed_json)?;
            check_count(signed.len())?;
            signed.into_iter().map(from_json).collect()
        }
    })
}

/// Queues one transaction for admission, unless it is committed already.
fn queue(api: &Api, tx: EncodedTransaction) -> Result<(Hash, Queued), ApiError> {
    let hash = tx.hash();
    if api.ctx.storage.tx_location(&hash)?.is_some() {
        return Err(already_committed(hash));
    }
    match api.ctx.enqueue(tx) {
        Ok(queued) => Ok((hash, queued)),
        Err(e) => Err(about(hash, e)),
    }
}

/// A refusal of the transaction `hash`, in the API's words.
fn about(hash: Hash, e: SubmitError) -> ApiError {
    ApiError {
        tx: Some(hash),
        ..ApiError::from(e)
    }
}

fn refused(e: ApiError) -> BatchOutcome {
    BatchOutcome::Refused {
        hash: e.tx,
        code: e.code.to_string(),
        message: e.message,
    }
}

pub(super) async fn submit_batch(
    State(api): ApiState,
    Extension(client): Extension<ClientKey>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BatchAnswer>, ApiError> {
    let body = body?;
    // A regulator's action comes one at a time (see `chain::relay`); batches are for the
    // validators' own clients.
    if api.ctx.mode == Mode::Audit {
        return Err(SubmitError::ReadOnly.into());
    }
    let txs = transactions(&headers, &body)?;
    // The guard took the request's token; the batch's other transactions take theirs here.
    let more = u64::try_from(txs.len().saturating_sub(1)).unwrap_or(u64::MAX);
    if more > 0 && !api.rates.allow_n(client, more, tokio::time::Instant::now()) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            format!(
                "a batch of {} transactions costs as many request tokens, more than this \
                 client holds now; send a smaller batch or slow down",
                txs.len()
            ),
        ));
    }
    // Everything queued first, then the answers awaited: one verification batch.
    let queued: Vec<Result<(Hash, Queued), ApiError>> = txs
        .into_iter()
        .map(|tx| tx.and_then(|tx| queue(&api, tx)))
        .collect();
    let mut results = Vec::with_capacity(queued.len());
    for slot in queued {
        results.push(match slot {
            Err(e) => refused(e),
            Ok((hash, queued)) => match queued.answer().await {
                Ok(hash) => BatchOutcome::Pending { hash },
                Err(e) => refused(about(hash, e)),
            },
        });
    }
    let pending = results
        .iter()
        .filter(|r| matches!(r, BatchOutcome::Pending { .. }))
        .count();
    Ok(Json(BatchAnswer {
        pending,
        refused: results.len() - pending,
        results,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_wire::batch::frame;

    #[test]
    fn a_framed_batch_splits_back_into_its_transactions() {
        let txs = vec![vec![1, 2, 3], Vec::new(), vec![9; 300]];
        let body = frame(&txs);
        let split = frames(&body).map_err(|e| e.message).unwrap_or_default();
        assert_eq!(split, txs.iter().map(Vec::as_slice).collect::<Vec<_>>());
    }

    #[test]
    fn a_broken_frame_refuses_the_whole_batch() {
        let code = |body: &[u8]| frames(body).err().map(|e| e.code);
        assert_eq!(code(&[]), Some("MALFORMED_BATCH"), "empty");
        assert_eq!(code(&[0, 0, 1]), Some("MALFORMED_BATCH"), "cut prefix");
        assert_eq!(
            code(&[0, 0, 0, 5, 1, 2]),
            Some("MALFORMED_BATCH"),
            "cut body"
        );
        let mut body = frame(&[vec![7; 10]]);
        body.push(0);
        assert_eq!(code(&body), Some("MALFORMED_BATCH"), "trailing byte");
        let huge = [0xff, 0xff, 0xff, 0xff, 1];
        assert_eq!(
            code(&huge),
            Some("MALFORMED_BATCH"),
            "a length past the end"
        );
    }

    #[test]
    fn more_than_the_bound_is_refused_even_as_empty_frames() {
        let at_bound = frame(&vec![Vec::new(); BATCH_TXS_MAX]);
        assert!(frames(&at_bound).is_ok());
        let over = frame(&vec![Vec::new(); BATCH_TXS_MAX + 1]);
        assert_eq!(frames(&over).err().map(|e| e.code), Some("BATCH_TOO_LARGE"));
    }
}
