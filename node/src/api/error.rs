//! The API's one error shape: `{ "code": "...", "message": "..." }` with a stable code and
//! an HTTP status chosen by who must act: the caller (4xx) or the node (5xx).

use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tally_contracts::admission::AdmissionError;
use tally_contracts::{DecodeError, ExecutionError, Rejection, VerifyError};
use tally_crypto::Hash;

use crate::mempool::MempoolError;
use crate::service::SubmitError;
use crate::storage::StorageError;

/// How long a busy node asks a client to wait before retrying.
const RETRY_AFTER_SECONDS: &str = "1";

/// An error answer. `code` never changes meaning once published; `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The transaction the error is about, when there is one (a committed rejection).
    pub tx: Option<Hash>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<Hash>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            tx: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// What a read of block `height`'s `what` found missing: pruned (`410 PRUNED`), or, above
    /// the pruned heights, a damaged data directory.
    pub fn missing_at(storage: &crate::storage::Storage, height: u64, what: &str) -> ApiError {
        match storage.pruned_through() {
            Ok(through) if height <= through => ApiError::new(
                StatusCode::GONE,
                "PRUNED",
                format!(
                    "{what} of block {height} is not on this node: it holds the blocks above \
                     {through} whole (it prunes older ones, [pruning] keep_blocks, or started \
                     from a snapshot of that height); an audit node that keeps every block \
                     still has it"
                ),
            ),
            Ok(_) => crate::storage::StorageError::Damaged(format!(
                "{what} of committed block {height} is missing"
            ))
            .into(),
            Err(e) => e.into(),
        }
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{what} not found"),
        )
    }

    /// A transaction the ledger executed and refused: its receipt's stable code.
    pub fn rejected(tx: Hash, rejection: Rejection) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: rejection.code(),
            message: rejection.to_string(),
            tx: Some(tx),
        }
    }

    fn internal(code: &'static str, message: String) -> ApiError {
        // The details stay in the log: they describe the node, not the request.
        tracing::error!(target: "tally::api", code, %message, "request failed inside the node");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code,
            "the node could not answer; see its log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            code: self.code,
            message: &self.message,
            hash: self.tx,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE
            || self.status == StatusCode::TOO_MANY_REQUESTS
        {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        ApiError::internal("STORAGE_FAILED", e.to_string())
    }
}

impl From<ExecutionError> for ApiError {
    fn from(e: ExecutionError) -> ApiError {
        ApiError::internal("STATE_UNREADABLE", e.to_string())
    }
}

impl From<crate::block::BlockError> for ApiError {
    fn from(e: crate::block::BlockError) -> ApiError {
        ApiError::internal("STORED_BLOCK_UNREADABLE", e.to_string())
    }
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> ApiError {
        let code = match e {
            DecodeError::TooLarge { .. } => {
                return ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "TRANSACTION_TOO_LARGE",
                    e.to_string(),
                );
            }
            DecodeError::Malformed(_) => "MALFORMED_TRANSACTION",
            DecodeError::NotCanonical => "NON_CANONICAL_ENCODING",
            DecodeError::Limit(_) => "FIELD_OUT_OF_LIMITS",
        };
        ApiError::bad_request(code, e.to_string())
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> ApiError {
        let message = e.to_string();
        let (status, code) = match e {
            SubmitError::Decode(d) => return d.into(),
            SubmitError::Verify(VerifyError::Limits(d)) => return d.into(),
            SubmitError::Verify(VerifyError::WrongChain(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "WRONG_CHAIN")
            }
            SubmitError::Verify(VerifyError::BadSignature) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "BAD_SIGNATURE")
            }
            SubmitError::Verify(VerifyError::BadPaymentCode) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "BAD_PAYMENT_CODE")
            }
            SubmitError::Mempool(MempoolError::Duplicate) => (StatusCode::CONFLICT, "DUPLICATE"),
            SubmitError::Mempool(MempoolError::NonceUsed { .. }) => {
                (StatusCode::CONFLICT, "NONCE_USED")
            }
            SubmitError::Mempool(MempoolError::NonceTaken { .. }) => {
                (StatusCode::CONFLICT, "NONCE_TAKEN")
            }
            SubmitError::Mempool(MempoolError::FewerSignatures { .. }) => {
                (StatusCode::CONFLICT, "FEWER_SIGNATURES")
            }
            // The ledger's own codes for the same refusals, given before any block.
            SubmitError::Admission(AdmissionError::State(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "STATE_UNREADABLE")
            }
            SubmitError::Admission(a) => (StatusCode::UNPROCESSABLE_ENTITY, a.code()),
            SubmitError::Mempool(MempoolError::NonceTooFarAhead { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "NONCE_TOO_FAR_AHEAD")
            }
            SubmitError::Mempool(MempoolError::TooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "TRANSACTION_TOO_LARGE")
            }
            SubmitError::Mempool(MempoolError::Busy) => (StatusCode::SERVICE_UNAVAILABLE, "BUSY"),
            SubmitError::ReadOnly => (StatusCode::FORBIDDEN, "READ_ONLY"),
            SubmitError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "SHUTTING_DOWN"),
        };
        ApiError::new(status, code, message)
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> ApiError {
        ApiError::bad_request("BAD_PATH", e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::bad_request("BAD_QUERY", e.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> ApiError {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return body_too_large();
        }
        ApiError::bad_request("BAD_BODY", e.body_text())
    }
}

pub fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this route does not take that method",
    )
}

pub fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "BODY_TOO_LARGE",
        format!(
            "request bodies are limited to {} bytes",
            super::REQUEST_BODY_BYTES_MAX
        ),
    )
}
