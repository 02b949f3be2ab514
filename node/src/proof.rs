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

use crate::block::{BlockHeader, validator_updates_root};
use crate::validator_update::ValidatorUpdate;

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
        if self.header.validators_id != validators.id() {
            return Err(ProofCheckError::UnknownValidatorSet {
                height,
                named: self.header.validators_id,
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
    #[error("the validator changes of block {height} are not the ones its header carries")]
    ChangesNotInHeader { height: u64 },
    #[error("the validator changes are not in height order (block {height} after {after})")]
    ChangesOutOfOrder { height: u64, after: u64 },
    #[error("a validator change carried by block {height} does not hold: {reason}")]
    BadChange { height: u64, reason: String },
    #[error("no trusted validator set at height {0}")]
    NoSet(u64),
    #[error(
        "block {height} is signed by validator set {named}, not the one trusted at that height: \
         a validator-set change the client was not shown"
    )]
    UnknownValidatorSet { height: u64, named: Hash },
}

/// The validator-set changes one block carried, with the block's certified header (whose
/// `validator_updates_root` commits to them), as `GET /v1/validators/changes` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CarriedChanges {
    #[serde(flatten)]
    pub certified: CertifiedHeader,
    pub updates: Vec<ValidatorUpdate>,
}

/// A page of `GET /v1/validators/changes?from_height=h`: the blocks from `h` up that changed
/// the validator set, in height order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidatorChanges {
    pub changes: Vec<CarriedChanges>,
    /// Where the next page starts; absent on the last page.
    pub next_from_height: Option<u64>,
}

/// The validator sets a client trusts, by height: the genesis set, then each change it has
/// followed. A change is believed when the block carrying it is certified by the set the
/// client already trusts at that height, the block's header commits to it, and it is signed as
/// every node checks it (more than 2/3 of that set's power, taking effect 3 or more heights
/// later). The attacker is the node serving the changes: it cannot make one up; it can leave
/// one out, and then the client refuses certificates of the new set (`NOT VERIFIED`) rather
/// than believe a wrong one.
#[derive(Debug, Clone)]
pub struct TrustedValidators {
    chain_id: String,
    sets: tally_consensus::ValidatorSets,
    /// The last block whose changes were followed (0: only the genesis).
    followed_to: u64,
    /// When the last followed change takes effect (0: none).
    last_effective: u64,
}

impl TrustedValidators {
    pub fn genesis(chain_id: &str, validators: ValidatorSet) -> TrustedValidators {
        TrustedValidators {
            chain_id: chain_id.to_string(),
            sets: tally_consensus::ValidatorSets::new(validators),
            followed_to: 0,
            last_effective: 0,
        }
    }

    /// Follows the changes of one block, which must be above every block followed so far.
    pub fn follow(&mut self, carried: &CarriedChanges) -> Result<(), ProofCheckError> {
        let height = carried.certified.header.height;
        if height <= self.followed_to {
            return Err(ProofCheckError::ChangesOutOfOrder {
                height,
                after: self.followed_to,
            });
        }
        let current = self.at(height)?.clone();
        carried.certified.verify(&self.chain_id, &current, height)?;
        if carried.certified.header.validator_updates_root
            != validator_updates_root(&carried.updates)
        {
            return Err(ProofCheckError::ChangesNotInHeader { height });
        }
        let bad = |reason: String| ProofCheckError::BadChange { height, reason };
        for update in &carried.updates {
            let set = update
                .verify(&self.chain_id, height, self.last_effective, &current)
                .map_err(|e| bad(e.to_string()))?;
            let at = update.change.effective_height;
            self.sets
                .schedule(Height(at), set)
                .map_err(|e| bad(e.to_string()))?;
            self.last_effective = at;
        }
        self.followed_to = height;
        Ok(())
    }

    /// The set trusted to sign block `height`.
    pub fn at(&self, height: u64) -> Result<&ValidatorSet, ProofCheckError> {
        self.sets
            .at(Height(height))
            .ok_or(ProofCheckError::NoSet(height))
    }
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
