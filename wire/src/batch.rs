//! A batch of transactions as `POST /v1/transactions/batch` takes it in binary form, and
//! its answer.

use serde::{Deserialize, Serialize};
use tally_crypto::Hash;

/// The most transactions in one batch. The body limit holds about 250 simple transfers;
/// the count keeps a batch's work bounded whatever its transactions' size.
pub const BATCH_TXS_MAX: usize = 256;

/// The length prefix of each transaction in a binary batch.
pub const LENGTH_BYTES: usize = 4;

/// One transaction's outcome in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum BatchOutcome {
    /// Taken into the mempool.
    Pending { hash: Hash },
    /// Not taken: the code and message a single submission would have been answered.
    Refused {
        /// The transaction's hash, when it decoded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hash: Option<Hash>,
        code: String,
        message: String,
    },
}

/// The answer to a batch: how many were taken and refused, and each one's outcome in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAnswer {
    pub pending: usize,
    pub refused: usize,
    pub results: Vec<BatchOutcome>,
}

/// A binary batch body: each encoded transaction preceded by its length (4 bytes, big
/// endian). A transaction is at most a few KiB, far below the prefix's bound.
pub fn frame<T: AsRef<[u8]>>(encoded: &[T]) -> Vec<u8> {
    let total = encoded
        .iter()
        .map(|e| LENGTH_BYTES + e.as_ref().len())
        .sum();
    let mut body = Vec::with_capacity(total);
    for tx in encoded {
        let tx = tx.as_ref();
        let length = u32::try_from(tx.len()).unwrap_or(u32::MAX);
        body.extend_from_slice(&length.to_be_bytes());
        body.extend_from_slice(tx);
    }
    body
}
