//! Building this node's proposals and checking others' before voting for them.

use tally_consensus::{BlockHash, Height, Round};
use tally_contracts::VerifiedTransaction;
use tally_crypto::Hash;

use super::{BLOCK_TIME_DRIFT_MS_MAX, Chain, ChainError, pool};
use crate::block::{BLOCK_EVIDENCE_MAX, Block, BlockHeader, txs_root, validator_updates_root};
use crate::clock::now_ms;
use crate::validator_update::BLOCK_VALIDATOR_UPDATES_MAX;

/// Why a block does not fit this node's chain: a fixed `label` (the metric's reason) and a
/// `detail` for the log.
#[derive(Debug)]
pub(super) struct BlockFault {
    pub label: &'static str,
    pub detail: String,
}

fn fault(label: &'static str, detail: impl Into<String>) -> BlockFault {
    BlockFault {
        label,
        detail: detail.into(),
    }
}

impl Chain {
    /// The block this node proposes at `height`: mempool transactions up to the block
    /// limits, pending evidence and validator updates, on top of the stored head.
    pub(super) fn build_block(
        &mut self,
        height: Height,
        round: Round,
    ) -> Result<Vec<u8>, ChainError> {
        let state = self.state();
        let entries = self.mempool.reap(
            self.settings.block_txs_max,
            self.settings.block_bytes_max,
            |key| pool::next_nonce_of_key(state.as_ref(), key),
        );
        let mut updates = Vec::new();
        let mut last = self.last_scheduled();
        let mut validators_id = tally_crypto::Hash::default();
        if let Some(current) = self.consensus.validator_sets().at(height) {
            validators_id = current.id();
            for update in &self.pending_updates {
                if updates.len() < BLOCK_VALIDATOR_UPDATES_MAX
                    && update
                        .verify(&self.chain_id, height.0, last, current)
                        .is_ok()
                {
                    last = update.change.effective_height;
                    updates.push(update.clone());
                }
            }
        }
        let txs: Vec<_> = entries
            .into_iter()
            .map(|e| e.verified.encoded().clone())
            .collect();
        let block = Block {
            header: BlockHeader {
                chain_id: self.chain_id.clone(),
                height: height.0,
                time_ms: now_ms().max(self.head.time_ms.saturating_add(1)),
                parent: self.head_hash,
                state_root: self.head.state_root,
                txs_root: txs_root(&txs),
                validator_updates_root: validator_updates_root(&updates),
                validators_id,
                proposer: self.settings.key.public_key(),
            },
            txs,
            evidence: self
                .pending_evidence
                .iter()
                .take(BLOCK_EVIDENCE_MAX)
                .cloned()
                .collect(),
            validator_updates: updates,
        };
        tracing::info!(
            height = height.0,
            round = round.0,
            txs = block.txs.len(),
            "proposing"
        );
        let bytes = block.encode();
        Ok(match &self.faults {
            Some(faults) => faults.proposed_block(bytes),
            None => bytes,
        })
    }

    /// Whether a proposed block may be voted for. On success, its verified transactions are
    /// kept for executing it if it is decided.
    pub(super) fn check_proposal(
        &mut self,
        height: Height,
        _round: Round,
        block_hash: BlockHash,
        bytes: &[u8],
    ) -> Result<(), BlockFault> {
        let block = Block::decode(bytes).map_err(|e| fault("undecodable", e.to_string()))?;
        self.header_fault(&block, height)?;
        if block.header.time_ms > now_ms().saturating_add(BLOCK_TIME_DRIFT_MS_MAX) {
            return Err(fault(
                "time_ahead",
                format!("block time {} is ahead of our clock", block.header.time_ms),
            ));
        }
        let verified = self
            .verify_block_txs(&block)
            .ok_or_else(|| fault("tx_signature", "a transaction's signatures do not verify"))?;
        if let Some(detail) = self.weaker_copy(&verified) {
            return Err(fault("fewer_signatures", detail));
        }
        if self.validated.len() >= self.settings.verified_blocks_max {
            // Any one will do: a decided block that is not here is verified again.
            self.validated.pop_first();
            self.metrics.limit_reached.inc("verified_blocks_max");
        }
        self.validated.insert(block_hash, verified);
        let held = i64::try_from(self.validated.len()).unwrap_or(i64::MAX);
        self.metrics.memory.verified_blocks.set(held);
        Ok(())
    }

    /// The checks every decided or proposed block must pass against our chain: chain id,
    /// height, parent, time after the parent's, state root, transactions root, proposer in
    /// the set, evidence and validator updates.
    pub(super) fn check_header(&self, block: &Block, height: Height) -> Result<(), String> {
        self.header_fault(block, height).map_err(|f| f.detail)
    }

    /// [`Chain::check_header`] with the fault's label.
    fn header_fault(&self, block: &Block, height: Height) -> Result<(), BlockFault> {
        let h = &block.header;
        if h.chain_id != self.chain_id {
            return Err(fault("chain_id", format!("chain id {:?}", h.chain_id)));
        }
        if h.height != height.0 || h.height != self.head.height.saturating_add(1) {
            return Err(fault(
                "height",
                format!("height {} (head {})", h.height, self.head.height),
            ));
        }
        if h.parent != self.head_hash {
            return Err(fault("parent", "parent is not our head"));
        }
        if h.time_ms <= self.head.time_ms {
            return Err(fault(
                "time",
                format!(
                    "time {} not after the parent's {}",
                    h.time_ms, self.head.time_ms
                ),
            ));
        }
        if h.state_root != self.head.state_root {
            return Err(fault(
                "state_root",
                format!(
                    "state root {} differs from ours {}",
                    h.state_root, self.head.state_root
                ),
            ));
        }
        if h.txs_root != txs_root(&block.txs) {
            return Err(fault("txs_root", "transactions root does not match"));
        }
        if h.validator_updates_root != validator_updates_root(&block.validator_updates) {
            return Err(fault(
                "validator_updates_root",
                "validator updates root does not match",
            ));
        }
        let set = self
            .consensus
            .validator_sets()
            .at(height)
            .ok_or_else(|| fault("no_validator_set", "no validator set in force"))?;
        if set.index_of(&h.proposer).is_none() {
            return Err(fault("proposer", "proposer is not a validator"));
        }
        if h.validators_id != set.id() {
            return Err(fault(
                "validators_id",
                "the header names another validator set than the one in force",
            ));
        }
        for evidence in &block.evidence {
            let at = self
                .consensus
                .validator_sets()
                .at(evidence.height())
                .ok_or_else(|| fault("evidence", "evidence for a height with no set"))?;
            evidence
                .verify(at, &self.chain_id)
                .map_err(|e| fault("evidence", format!("evidence: {e}")))?;
        }
        let mut last = self.last_scheduled();
        for update in &block.validator_updates {
            update
                .verify(&self.chain_id, height.0, last, set)
                .map_err(|e| fault("validator_update", format!("validator update: {e}")))?;
            last = update.change.effective_height;
        }
        Ok(())
    }

    /// The block's transactions verified, reusing the mempool's verification of identical
    /// transactions and checking the rest in one batch; `None` if any fails.
    pub(super) fn verify_block_txs(&mut self, block: &Block) -> Option<Vec<VerifiedTransaction>> {
        let mut out: Vec<Option<VerifiedTransaction>> = Vec::with_capacity(block.txs.len());
        let mut missing = Vec::new();
        let mut missing_at = Vec::new();
        for (i, tx) in block.txs.iter().enumerate() {
            let hash: Hash = tx.hash();
            let known = self
                .mempool
                .get(&hash)
                .filter(|e| e.verified.encoded() == tx)
                .map(|e| e.verified.clone());
            if known.is_none() {
                missing.push(tx.clone());
                missing_at.push(i);
            }
            out.push(known);
        }
        if !missing.is_empty() {
            let verdicts =
                tally_contracts::verify_transactions(&self.chain_id, missing, &mut self.keys);
            for (i, verdict) in missing_at.into_iter().zip(verdicts) {
                let slot = out.get_mut(i)?;
                *slot = Some(verdict.ok()?);
            }
        }
        out.into_iter().collect()
    }
}
