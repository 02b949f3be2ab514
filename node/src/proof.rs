//! A proven ledger record as a node answers it, and how a client checks it against nothing but
//! the validator set it trusts: a wallet asks any single node, honest or not, and believes the
//! answer only if every link holds.
//!
//! The links, from the record up: the record's bytes are under its key in the ledger tree
//! (`tally_contracts::commitment`); the tree's root and the block's results root make the state
//! root; that state root is in the header of the next block; the header and the digest of that
//! block's body make the block id ([`BlockHash::of_parts`], so the body, which holds every
//! party's transactions, is not needed); and a quorum of the validator set signed that id.
//!
//! Attackers: a node that alters a balance, answers for another key, offers a proof under a
//! root it made up, or a header no quorum signed; each breaks one link and is refused.

use serde::{Deserialize, Serialize};
use tally_consensus::{BlockHash, CommitCertificate, Height, ValidatorSet};
use tally_contracts::commitment::{self, ProofError, StateProof};
use tally_contracts::{Event, Rejection};
use tally_crypto::{Hash, MerkleStep, merkle_root, merkle_root_from_path};

use crate::block::BlockHeader;

/// A block header with what proves a quorum signed it: the digest of the block's body (so the
/// body itself, every party's transactions, is not needed) and the block's certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertifiedHeader {
    pub header: BlockHeader,
    /// The digest of the block's body ([`BlockHash::body_digest`]).
    pub body_digest: Hash,
    /// The quorum's signatures over the block's id.
    pub certificate: CommitCertificate,
}

impl CertifiedHeader {
    /// Checks that this is the header of block `height` of `chain_id` and that a quorum of
    /// `validators` signed it.
    pub fn verify(
        &self,
        chain_id: &str,
        validators: &ValidatorSet,
        height: u64,
    ) -> Result<(), ProofCheckError> {
        if self.header.chain_id != chain_id {
            return Err(ProofCheckError::WrongChain(self.header.chain_id.clone()));
        }
        if self.header.height != height {
            return Err(ProofCheckError::WrongHeight {
                header: self.header.height,
                expected: height,
            });
        }
        let id = BlockHash::of_parts(
            BlockHash::header_digest(&tally_consensus::encode(&self.header)),
            self.body_digest,
        );
        if self.certificate.block != id || self.certificate.height != Height(height) {
            return Err(ProofCheckError::CertificateNotForHeader);
        }
        self.certificate
            .verify(validators, chain_id)
            .map_err(|e| ProofCheckError::Certificate(e.to_string()))
    }
}

/// One record with its proof, as `GET /v1/{accounts,orders,bills,holds}/{id}/proof` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordProof {
    /// The state the record is proven in: after executing the block at this height.
    pub height: u64,
    /// The record's state key, hex.
    pub key: String,
    /// The record's bytes (its canonical encoding), hex; absent when the record does not exist
    /// (then the proof is of absence).
    pub value: Option<String>,
    pub proof: StateProof,
    pub ledger_root: Hash,
    pub results_root: Hash,
    /// The block at `height + 1`, whose header's `state_root` commits to this state.
    #[serde(flatten)]
    pub certified: CertifiedHeader,
}

/// Why a client does not believe a proven record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofCheckError {
    #[error("the answer is about transaction {answered}, not the one asked for ({asked})")]
    WrongTransaction { asked: Hash, answered: Hash },
    #[error("the answer is about key {answered}, not the record asked for ({asked})")]
    WrongKey { asked: String, answered: String },
    #[error("the answer is malformed: {0}")]
    Malformed(String),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("the header is of chain {0}, not the one trusted")]
    WrongChain(String),
    #[error("the header is at height {header}, not {expected} (the block after the state's)")]
    WrongHeight { header: u64, expected: u64 },
    #[error("the certificate is for another block than this header")]
    CertificateNotForHeader,
    #[error("the certificate does not verify against the trusted validator set: {0}")]
    Certificate(String),
}

impl RecordProof {
    /// Checks every link from the record to a quorum of `validators` on `chain_id`, for the
    /// record under `key`. Returns the record's bytes (`None`: proven absent) and the height.
    pub fn verify(
        &self,
        chain_id: &str,
        validators: &ValidatorSet,
        key: &[u8],
    ) -> Result<(Option<Vec<u8>>, u64), ProofCheckError> {
        let asked = hex::encode(key);
        if self.key != asked {
            return Err(ProofCheckError::WrongKey {
                asked,
                answered: self.key.clone(),
            });
        }
        let value = self
            .value
            .as_deref()
            .map(hex::decode)
            .transpose()
            .map_err(|e| ProofCheckError::Malformed(format!("value: {e}")))?;
        commitment::verify(self.ledger_root, key, value.as_deref(), &self.proof)?;
        commitment::verify_state_root(
            self.certified.header.state_root,
            self.ledger_root,
            self.results_root,
        )?;
        self.certified
            .verify(chain_id, validators, self.height.saturating_add(1))?;
        Ok((value, self.height))
    }
}

/// One of a proven receipt's events: in clear if the asking party may read it, else only its
/// hash (which is all the receipt's hash needs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvenEvent {
    Shown(Event),
    Hidden(Hash),
}

/// A committed transaction's receipt with its proof, as `GET /v1/transactions/{hash}/proof`
/// answers: the receipt's path up to its block's receipts root, which with the released holds'
/// digest and the ledger root makes the state root the next block's header carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptProof {
    /// The block the transaction was committed in.
    pub height: u64,
    /// Its place in the block (told, not proven: the receipt names its transaction, and a
    /// transaction commits once).
    pub index: u32,
    pub tx: Hash,
    pub result: Result<(), Rejection>,
    pub events: Vec<ProvenEvent>,
    /// From the receipt up to the block's receipts root.
    pub path: Vec<MerkleStep>,
    pub expired_digest: Hash,
    /// The ledger root after the block.
    pub ledger_root: Hash,
    /// The block at `height + 1`.
    #[serde(flatten)]
    pub certified: CertifiedHeader,
}

impl ReceiptProof {
    /// Checks every link from the receipt of `tx` to a quorum of `validators` on `chain_id`.
    /// Returns the height it was committed at.
    pub fn verify(
        &self,
        chain_id: &str,
        validators: &ValidatorSet,
        tx: Hash,
    ) -> Result<u64, ProofCheckError> {
        if self.tx != tx {
            return Err(ProofCheckError::WrongTransaction {
                asked: tx,
                answered: self.tx,
            });
        }
        let events: Vec<Hash> = self
            .events
            .iter()
            .map(|e| match e {
                ProvenEvent::Shown(event) => commitment::event_hash(event),
                ProvenEvent::Hidden(hash) => *hash,
            })
            .collect();
        let receipt = commitment::receipt_hash_from(self.tx, &self.result, merkle_root(&events));
        let results_root = commitment::results_root_from(
            merkle_root_from_path(&receipt, &self.path),
            self.expired_digest,
        );
        commitment::verify_state_root(
            self.certified.header.state_root,
            self.ledger_root,
            results_root,
        )?;
        self.certified
            .verify(chain_id, validators, self.height.saturating_add(1))?;
        Ok(self.height)
    }
}
