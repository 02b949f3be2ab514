//! `POST /v1/validators/updates`: a change of the validator set, as governance signed it.
//!
//! Who may call: anyone (the `Submit` scope). A change proves itself by its signatures, as a
//! transaction proves its sender: validators holding more than 2/3 of the power in force must
//! have signed it, and the chain task checks that (and the delay before it takes effect)
//! before holding it for a block, as every validator checks it again before voting for the
//! block that carries it. The attacker is anyone on the network: a change signed by too few,
//! by keys outside the set, or altered after signing is refused with the reason and changes
//! nothing. An audit node holds no changes (`403 READ_ONLY`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ApiState;
use super::error::ApiError;
use crate::config::Mode;
use crate::service::UpdateSubmission;
use crate::validator_update::ValidatorUpdate;

#[derive(Debug, Serialize)]
struct HeldView {
    /// Held for a block; it takes effect at this height once a block carries it.
    effective_height: u64,
    validators: usize,
}

pub async fn submit_update(State(api): ApiState, body: Bytes) -> Result<Response, ApiError> {
    if api.ctx.mode == Mode::Audit {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "READ_ONLY",
            "an audit node holds no validator-set changes; send it to a validator",
        ));
    }
    let update: ValidatorUpdate = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "BAD_BODY",
            format!(
                "the body is a validator update {{\"change\": {{\"effective_height\", \
                 \"validators\"}}, \"signatures\"}}: {e}"
            ),
        )
    })?;
    let held = HeldView {
        effective_height: update.change.effective_height,
        validators: update.change.validators.len(),
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let busy = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "BUSY",
            "the node is not taking validator-set changes now; retry",
        )
    };
    api.ctx
        .validator_updates
        .try_send(UpdateSubmission { update, reply })
        .map_err(|_| busy())?;
    match answer.await {
        Ok(Ok(())) => Ok((StatusCode::ACCEPTED, Json(held)).into_response()),
        Ok(Err(crate::validator_update::UpdateError::Busy)) => Err(busy()),
        Ok(Err(refused)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            refused.code(),
            refused.to_string(),
        )),
        Err(_) => Err(busy()),
    }
}
