//! Executing a decided block and committing it with everything it changed.

use tally_consensus::{BlockHash, Decision, Height, ValidatorSet};
use tally_contracts::{BlockContext, Ledger, Party, TxKind};

use super::audit::Offence;
use super::{Chain, ChainError, Outbound, pool};
use crate::block::{Block, BlockResults};
use crate::storage::BlockCommit;

impl Chain {
    /// Executes a decided block over storage and commits it atomically (block, certificate,
    /// results, ledger writes, indexes, validator schedule); then updates the mempool, the
    /// metrics and the committed height. A block that does not fit our chain halts the node:
    /// a quorum decided it, so our state is the one that differs.
    pub(super) fn apply_decision(&mut self, decision: Decision) -> Result<(), ChainError> {
        let height = decision.height.0;
        let span = tracing::info_span!("commit", height, round = decision.round.0);
        let _enter = span.enter();
        let block = match Block::decode(&decision.block) {
            Ok(b) => b,
            Err(e) => {
                self.raise_alarm(Offence {
                    height,
                    reason: format!("decided block does not decode: {e}"),
                    block: &decision.block,
                    certificate: &decision.certificate,
                    peer: None,
                });
                return Ok(());
            }
        };
        // For an audit node this is where a state root differing from its own re-execution
        // shows: the header's root is the validators' root after the previous block, signed
        // with the block by the quorum whose certificate consensus just verified.
        if let Err(reason) = self.check_header(&block, decision.height) {
            self.raise_alarm(Offence {
                height,
                reason,
                block: &decision.block,
                certificate: &decision.certificate,
                peer: None,
            });
            return Ok(());
        }
        let block_hash = BlockHash::of(&decision.block);
        let verified = match self.validated.remove(&block_hash) {
            Some(v) => v,
            None => match self.verify_block_txs(&block) {
                Some(v) => v,
                None => {
                    self.raise_alarm(Offence {
                        height,
                        reason: "a decided transaction's signatures do not verify".to_string(),
                        block: &decision.block,
                        certificate: &decision.certificate,
                        peer: None,
                    });
                    return Ok(());
                }
            },
        };
        let before = self.storage.state_snapshot()?;
        let outcome = Ledger::execute_block(
            &before,
            BlockContext {
                height,
                time_ms: block.header.time_ms,
            },
            &verified,
        )?;
        // Validator updates: checked against the set in force at this height, scheduled in
        // consensus (which is already at the next height) and recorded with the block.
        let mut schedule_changed = false;
        for update in &block.validator_updates {
            let current = self
                .consensus
                .validator_sets()
                .at(decision.height)
                .cloned()
                .ok_or_else(|| ChainError::BadDecidedBlock {
                    height,
                    reason: "no validator set".to_string(),
                })?;
            let set: ValidatorSet = update
                .verify(&self.chain_id, height, self.last_scheduled(), &current)
                .map_err(|e| ChainError::BadDecidedBlock {
                    height,
                    reason: e.to_string(),
                })?;
            let at = update.change.effective_height;
            self.consensus.schedule_validator_set(Height(at), set)?;
            self.schedule.push((at, update.change.validators.clone()));
            schedule_changed = true;
            tracing::info!(
                effective_height = at,
                validators = update.change.validators.len(),
                "validator set change scheduled"
            );
        }
        let results = BlockResults {
            state_root: outcome.state_root,
            ledger_root: outcome.head.ledger_root,
            expired: outcome.expired,
            receipts: outcome.receipts,
        };
        let writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = outcome
            .writes
            .into_iter()
            .map(|w| (w.key, w.value))
            .collect();
        let tx_hashes: Vec<tally_crypto::Hash> = verified.iter().map(|v| v.hash()).collect();
        let account_entries = touched_accounts(&block);
        let schedule_bytes = schedule_changed.then(|| tally_consensus::encode(&self.schedule));
        // Kept only for a block that changed the set (`v/{h}`): most blocks encode nothing here.
        let updates_bytes = if schedule_changed {
            tally_consensus::encode(&block.validator_updates)
        } else {
            Vec::new()
        };
        self.storage.commit_block(&BlockCommit {
            height,
            block: &decision.block,
            certificate: &tally_consensus::encode(&decision.certificate),
            results: &results.encode(),
            state_writes: &writes,
            tx_hashes: &tx_hashes,
            account_entries: &account_entries,
            validator_schedule: schedule_bytes.as_deref(),
            validator_updates: &updates_bytes,
            keep_blocks: self.settings.keep_blocks,
            committed_ms: crate::clock::now_ms(),
            evidence_count: block.evidence.len() as u64,
        })?;
        self.storage.set_certified_state(before);
        self.head = outcome.head;
        self.head_hash = block_hash.0;
        self.validated.clear();
        // The ledger invariants (a full scan of state) after every block in debug builds, as
        // the tests run; release builds skip the scan.
        if cfg!(debug_assertions)
            && let Err(violation) = tally_contracts::check_invariants(&self.storage)
        {
            self.raise_alarm(Offence {
                height,
                reason: format!("ledger invariant violated: {violation:?}"),
                block: &decision.block,
                certificate: &decision.certificate,
                peer: None,
            });
            return Ok(());
        }
        self.after_commit(&block, &tx_hashes);
        self.snapshot_if_due(height);
        if schedule_changed {
            self.send(Outbound::PeerSet(self.peer_set()));
        }
        tracing::info!(txs = block.txs.len(), state_root = %results.state_root, "committed");
        Ok(())
    }

    /// After a block whose height is a multiple of `[snapshots] interval_blocks`: cuts a
    /// snapshot of the state it left, off the chain task (a read transaction holds that state
    /// while the chain goes on). One at a time: one due while another is still being cut is
    /// skipped, with a warning.
    fn snapshot_if_due(&self, height: u64) {
        use std::sync::atomic::Ordering;
        let Some((interval, store)) = &self.settings.snapshots else {
            return;
        };
        if height == 0 || !height.is_multiple_of(*interval) {
            return;
        }
        if self.snapshot_taking.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                height,
                "a state snapshot is still being taken; this one is skipped"
            );
            return;
        }
        let state = match self.storage.state_snapshot() {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(height, error = %e, "cannot read the state to snapshot");
                self.snapshot_taking.store(false, Ordering::Release);
                return;
            }
        };
        let (store, taking, metrics) = (
            store.clone(),
            self.snapshot_taking.clone(),
            self.metrics.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            match store.take(&state) {
                Ok(taken) => {
                    metrics
                        .snapshot_height
                        .set(i64::try_from(taken.height).unwrap_or(i64::MAX));
                    tracing::info!(
                        height = taken.height,
                        chunks = taken.chunks,
                        bytes = taken.bytes,
                        ms = started.elapsed().as_millis() as u64,
                        "state snapshot taken"
                    );
                }
                Err(e) => tracing::warn!(height, error = %e, "state snapshot failed"),
            }
            taking.store(false, Ordering::Release);
        });
    }

    fn after_commit(&mut self, block: &Block, tx_hashes: &[tally_crypto::Hash]) {
        let now = std::time::Instant::now();
        for hash in tx_hashes {
            if let Some(entry) = self.mempool.get(hash) {
                self.metrics
                    .commit_latency_seconds
                    .observe(now.duration_since(entry.admitted).as_secs_f64());
            }
            self.mempool.remove(hash);
        }
        // One committed-state read per sender, not per transaction: a busy wallet has
        // several transactions in one block.
        let mut parties: Vec<([u8; 32], Party)> = block
            .txs
            .iter()
            .map(|t| (pool::sender_key(t.tx().sender), t.tx().sender))
            .collect();
        parties.sort_unstable_by_key(|(key, _)| *key);
        parties.dedup_by_key(|(key, _)| *key);
        let state = self.state();
        let senders: Vec<([u8; 32], u64)> = parties
            .into_iter()
            .map(|(key, party)| (key, pool::next_nonce(state.as_ref(), party)))
            .collect();
        self.mempool.remove_committed(&senders);
        {
            let mut view = match self.pending_view.write() {
                Ok(v) => v,
                Err(poisoned) => poisoned.into_inner(),
            };
            view.clear();
            view.extend(self.mempool.iter().map(|e| e.verified.hash()));
        }
        self.evidence_committed(&block.evidence);
        let height = block.header.height;
        // An update whose height has come too close (or that an update scheduled since
        // overtook) can go in no later block: it is dropped, not kept as work for ever (a
        // chain with a pending update is never quiet).
        let earliest = height
            .saturating_add(1)
            .saturating_add(crate::validator_update::UPDATE_DELAY_HEIGHTS_MIN)
            .max(self.last_scheduled().saturating_add(1));
        self.pending_updates.retain(|u| {
            !block.validator_updates.contains(u) && u.change.effective_height >= earliest
        });
        self.metrics
            .height
            .set(i64::try_from(height).unwrap_or(i64::MAX));
        self.metrics.committed_txs.inc_by(block.txs.len() as u64);
        self.report_memory();
        self.committed.send_replace(height);
    }
}

/// (account key bytes, index in block) of the accounts each transaction names: its sender
/// and the account it pays, for the account history index. Keys are
/// `AccountId::to_key_bytes()`.
fn touched_accounts(block: &Block) -> Vec<(Vec<u8>, u32)> {
    let mut entries = Vec::new();
    for (index, signed) in block.txs.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        if let Party::Account(id) = signed.tx().sender {
            entries.push((id.to_key_bytes().to_vec(), index));
        }
        let other = match &signed.tx().kind {
            TxKind::Transfer { to, .. } => Some(*to),
            TxKind::PayMerchant { merchant, .. } => Some(*merchant),
            TxKind::CrossBorderTransfer { beneficiary, .. } => Some(*beneficiary),
            TxKind::RegisterAccount { account, .. }
            | TxKind::RegisterMerchant { account, .. }
            | TxKind::RegisterBiller { account, .. }
            | TxKind::Freeze { account, .. }
            | TxKind::Unfreeze { account } => Some(*account),
            _ => None,
        };
        if let Some(id) = other {
            entries.push((id.to_key_bytes().to_vec(), index));
        }
    }
    entries.sort();
    entries.dedup();
    entries
}
