//! What the node's public faces (the HTTP API, the audit endpoints) may ask of the running
//! node, and nothing more: read committed data from [`Storage`], submit transactions, and
//! learn when a new block is committed.
//!
//! The chain task owns consensus, the mempool and execution; it consumes [`Submission`]s
//! and publishes the committed height. The API reads everything else from storage, so it
//! never waits on consensus.

use std::sync::Arc;

use tally_contracts::admission::AdmissionError;
use tally_contracts::{DecodeError, EncodedTransaction, VerifyError};
use tally_crypto::Hash;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Mode;
use crate::mempool::MempoolError;
use crate::storage::Storage;

/// A transaction from outside, decoded where it came in (off the chain task), and where to
/// answer.
#[derive(Debug)]
pub struct Submission {
    pub tx: EncodedTransaction,
    pub reply: oneshot::Sender<Result<Hash, SubmitError>>,
}

/// A validator-set change from outside (`POST /v1/validators/updates`), and where to answer:
/// whether the chain task holds it for a block.
#[derive(Debug)]
pub struct UpdateSubmission {
    pub update: crate::validator_update::ValidatorUpdate,
    pub reply: oneshot::Sender<Result<(), crate::validator_update::UpdateError>>,
}

/// Why a submitted transaction was not taken into the mempool. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("transaction bytes refused: {0}")]
    Decode(#[from] DecodeError),
    #[error("transaction refused: {0}")]
    Verify(#[from] VerifyError),
    /// Its sender's key (or a registration's KYC institution's) is not among the signatures.
    #[error("transaction refused at admission: {0}")]
    Admission(#[from] AdmissionError),
    #[error("{0}")]
    Mempool(#[from] MempoolError),
    #[error(
        "an audit node takes no transactions but a regulator's own, which it relays to the \
         validators; send this one to a validator"
    )]
    ReadOnly,
    #[error("the node is shutting down")]
    ShuttingDown,
}

/// Where a transaction stands, as the node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// In this node's mempool, waiting for a block.
    Pending,
    /// In a committed block; the receipt is in that block's results.
    Committed { height: u64, index: u32 },
    /// Not known to this node (never submitted here, or dropped).
    Unknown,
}

/// A cheap, cloneable view of the running node for its public faces.
#[derive(Clone)]
pub struct NodeContext {
    pub chain_id: String,
    /// Validator or audit node, from the configuration.
    pub mode: Mode,
    pub storage: Storage,
    /// Transactions to admit; a full channel means the node is busy.
    pub submit: mpsc::Sender<Submission>,
    /// Validator-set changes to hold for a block (a validator's chain task checks each).
    pub validator_updates: mpsc::Sender<UpdateSubmission>,
    /// The last committed height; changes after each block is committed to storage.
    pub committed: watch::Receiver<u64>,
    /// Whether a transaction hash is in the mempool.
    pub pending: Arc<dyn Fn(&Hash) -> bool + Send + Sync>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The data directory (an audit node's alarm evidence is read from it).
    pub data_dir: std::path::PathBuf,
    /// Webhook subscriptions and their deliveries (`[webhooks]`); `None`: this node
    /// delivers none and refuses to register any.
    pub webhooks: Option<Arc<crate::webhooks::Webhooks>>,
}

/// A submission in the chain task's queue: [`Queued::answer`] waits for the mempool's verdict.
#[derive(Debug)]
pub struct Queued(oneshot::Receiver<Result<Hash, SubmitError>>);

impl Queued {
    pub async fn answer(self) -> Result<Hash, SubmitError> {
        self.0.await.map_err(|_| SubmitError::ShuttingDown)?
    }
}

impl std::fmt::Debug for NodeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeContext")
            .field("chain_id", &self.chain_id)
            .field("committed", &*self.committed.borrow())
            .finish_non_exhaustive()
    }
}

impl NodeContext {
    /// Submits transaction bytes and waits for the mempool's answer (not for the commit).
    pub async fn submit(&self, bytes: Vec<u8>) -> Result<Hash, SubmitError> {
        self.enqueue(EncodedTransaction::decode(bytes)?)?
            .answer()
            .await
    }

    /// Queues a decoded transaction for admission without waiting for the answer, so a
    /// batch is queued whole before any answer is awaited (the chain task then verifies it
    /// in one go). A full queue is answered busy at once.
    pub fn enqueue(&self, tx: EncodedTransaction) -> Result<Queued, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.submit
            .try_send(Submission { tx, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SubmitError::Mempool(MempoolError::Busy),
                mpsc::error::TrySendError::Closed(_) => SubmitError::ShuttingDown,
            })?;
        Ok(Queued(answer))
    }

    pub fn status(&self, hash: &Hash) -> Result<TxStatus, crate::storage::StorageError> {
        if let Some(location) = self.storage.tx_location(hash)? {
            return Ok(TxStatus::Committed {
                height: location.height,
                index: location.index,
            });
        }
        Ok(if (self.pending)(hash) {
            TxStatus::Pending
        } else {
            TxStatus::Unknown
        })
    }
}
