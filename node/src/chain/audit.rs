//! The alarm: what a node does when the chain it is given disagrees with its own checks.
//!
//! An audit node follows the chain by sync and checks two things of every block: its commit
//! certificate verifies against the validator set in force at its height, and the state root
//! its header claims (the root after the previous block, signed by the quorum that signed the
//! block) equals the root this node got by executing the previous block itself.
//!
//! The alarm means that a quorum signed something false: a certified block whose state root
//! (or another header check) disagrees with this node's execution, or a second certified
//! block for a height this node already committed (two quorum certificates for one height).
//! A block whose certificate does not verify proves nothing about the validators, only about
//! the peer that served it: that peer is cut off and the block is asked of another (see
//! `Chain::on_synced`), so one lying peer cannot halt the regulator's view.
//!
//! On the alarm the node stops following, sets the `audit_alarm` metric (so `/health`
//! fails), logs an error with the height and both roots, and writes the evidence — the
//! offending block and certificate — as a JSON file under `audit-evidence/` in its data
//! directory, where a regulator reads it back with [`read_evidence`].
//!
//! The alarm of an audit node is sticky: a restarted audit node that finds evidence in its
//! data directory stays halted with the alarm raised, until a person has looked at the
//! evidence and moved it away.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tally_consensus::CommitCertificate;
use tally_crypto::Hash;
use tracing::{error, warn};

use super::Chain;
use crate::block::Block;
use crate::config::Mode;

/// The directory under the data directory that holds alarm evidence.
pub const EVIDENCE_DIR: &str = "audit-evidence";

/// What a node keeps when it raises the alarm: enough for a regulator to check the claim
/// without the node (the block and certificate as they were received, hex encoded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmEvidence {
    /// The height of the offending block.
    pub height: u64,
    pub reason: String,
    /// This node's state root after executing up to `height - 1`.
    pub our_state_root: Hash,
    /// The state root after `height - 1` that the block's header claims, if it decodes.
    pub claimed_state_root: Option<Hash>,
    /// The peer the block came from, if it came by sync.
    pub peer: Option<String>,
    /// The block's bytes, hex.
    pub block: String,
    /// The certificate, encoded, hex.
    pub certificate: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence file {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("evidence file {path} is not evidence: {error}")]
    Malformed {
        path: PathBuf,
        error: serde_json::Error,
    },
}

/// Where alarm evidence of the node with this data directory is kept.
pub fn evidence_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(EVIDENCE_DIR)
}

/// Every piece of alarm evidence kept in `data_dir`, in height order (none if the directory
/// does not exist).
pub fn read_evidence(data_dir: &Path) -> Result<Vec<AlarmEvidence>, EvidenceError> {
    let dir = evidence_dir(data_dir);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| EvidenceError::Io { path, error }
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir)(e)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(io(&dir))?.path();
        if path.extension().is_some_and(|e| e == "json") {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            serde_json::from_slice(&bytes).map_err(|error| EvidenceError::Malformed { path, error })
        })
        .collect()
}

/// Writes one piece of evidence, whole or not at all (a temporary file renamed into place).
fn write_evidence(data_dir: &Path, evidence: &AlarmEvidence) -> Result<PathBuf, std::io::Error> {
    let dir = evidence_dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("height-{:020}.json", evidence.height));
    let temporary = dir.join(format!("height-{:020}.json.partial", evidence.height));
    let json = serde_json::to_vec_pretty(evidence).map_err(std::io::Error::other)?;
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&json)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, &path)?;
    Ok(path)
}

/// A block the node refuses to follow past, with what it knows of it.
pub(super) struct Offence<'a> {
    pub height: u64,
    pub reason: String,
    pub block: &'a [u8],
    pub certificate: &'a CommitCertificate,
    pub peer: Option<tally_crypto::PublicKey>,
}

impl Chain {
    /// An audit node that raised the alarm before it was stopped stays halted.
    pub(super) fn resume_alarm(&mut self) {
        if self.mode != Mode::Audit {
            return;
        }
        match read_evidence(&self.settings.data_dir) {
            Ok(kept) if kept.is_empty() => {}
            Ok(kept) => {
                let heights: Vec<u64> = kept.iter().map(|e| e.height).collect();
                error!(
                    ?heights,
                    dir = %evidence_dir(&self.settings.data_dir).display(),
                    "the audit alarm was raised before this start; not following until the \
                     evidence is moved away"
                );
                self.metrics.audit_alarm.set(1);
                self.halted = true;
            }
            Err(e) => {
                // Unreadable evidence is still evidence: stay halted.
                error!(error = %e, "audit evidence unreadable; not following");
                self.metrics.audit_alarm.set(1);
                self.halted = true;
            }
        }
    }

    /// Stops following, raises the alarm, and keeps the offending block and certificate.
    pub(super) fn raise_alarm(&mut self, offence: Offence<'_>) {
        let claimed_state_root = Block::decode(offence.block)
            .ok()
            .map(|b| b.header.state_root);
        let evidence = AlarmEvidence {
            height: offence.height,
            reason: offence.reason,
            our_state_root: self.head.state_root,
            claimed_state_root,
            peer: offence.peer.map(|p| p.to_string()),
            block: hex::encode(offence.block),
            certificate: hex::encode(tally_consensus::encode(offence.certificate)),
        };
        let claimed = claimed_state_root.map_or_else(|| "none".to_string(), |r| r.to_string());
        error!(
            height = evidence.height,
            reason = %evidence.reason,
            our_state_root = %evidence.our_state_root,
            claimed_state_root = %claimed,
            "the chain disagrees with this node's checks; it stops following"
        );
        match write_evidence(&self.settings.data_dir, &evidence) {
            Ok(path) => error!(path = %path.display(), "evidence kept"),
            // The log line above carries the roots; the block itself is lost with the file.
            Err(e) => warn!(error = %e, "evidence could not be written"),
        }
        self.metrics.audit_alarm.set(1);
        self.halted = true;
    }
}
