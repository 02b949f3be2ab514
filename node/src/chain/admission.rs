//! Admission: what a verified transaction must show before it takes a mempool slot, and
//! what a peer that gossips refused transactions earns.
//!
//! The rules are `tally_contracts::admission`'s (the sender's key, and for a registration
//! its KYC institution's, among the signatures), judged against this node's head with the
//! keys the sender's own waiting transactions install. A refused transaction from the API
//! gets its code; one from gossip is dropped and counted, and its peer may be cut off:
//! - signatures that do not verify (or another chain's, or out of limits): at once, as for
//!   any garbage. Verification does not depend on state, and an honest peer gossips only
//!   what it admitted itself, so no honest race explains it.
//! - a sender's (or registrar's) key that did not sign: a strike. An honest peer may be a
//!   block ahead or behind this node, and a key rotated in a block one of them has not
//!   applied yet makes its honest gossip look forged here; or this node refused (busy) the
//!   rotation a later transaction is signed under. Such races are rare and few at a time,
//!   so a peer is cut off only past [`ADMISSION_STRIKES_MAX`] strikes within one window of
//!   [`STRIKE_WINDOW_BLOCKS`] committed blocks; a forger sending a stream is cut off within
//!   one batch.
//! - an unknown sender: dropped without a strike. Under load this node may refuse
//!   (busy) a registration an honest peer admitted, and then the new account's next
//!   transactions, gossiped right behind it, name a sender it does not know: counting those
//!   would cut honest validators off when the network is busiest. Such a transaction takes
//!   nobody's slot, so dropping it is all the defence needed.

use std::collections::BTreeMap;

use tally_contracts::admission::{self, AdmissionError};
use tally_contracts::{StateStore, VerifiedTransaction, VerifyError};
use tally_crypto::PublicKey;

use super::{Chain, Outbound, pool};
use crate::mempool::{MempoolError, strict_superset};

/// Strikes a peer may earn in one window before it is cut off. Far above what key-rotation
/// races give an honest peer (one per transaction signed under a key that changed in the
/// last block or two), far below one gossip batch of forgeries.
pub const ADMISSION_STRIKES_MAX: u32 = 32;
/// The window strikes are counted in, in committed blocks.
pub const STRIKE_WINDOW_BLOCKS: u64 = 32;

/// Strikes per gossiping peer in the current window. Bounded by the peer set: gossip is
/// only delivered from validators and observers.
#[derive(Debug, Default)]
pub(super) struct Strikes {
    window: u64,
    counts: BTreeMap<PublicKey, u32>,
}

impl Strikes {
    /// Counts one strike for `peer` at committed height `height`; true when that takes the
    /// peer past [`ADMISSION_STRIKES_MAX`] (its count then starts again).
    pub(super) fn strike(&mut self, peer: PublicKey, height: u64) -> bool {
        let window = height / STRIKE_WINDOW_BLOCKS;
        if window != self.window {
            self.window = window;
            self.counts.clear();
        }
        let count = self.counts.entry(peer).or_insert(0);
        *count = count.saturating_add(1);
        if *count > ADMISSION_STRIKES_MAX {
            self.counts.remove(&peer);
            return true;
        }
        false
    }
}

/// The metric label of an admission refusal.
fn admission_label(error: &AdmissionError) -> &'static str {
    match error {
        AdmissionError::UnknownSender => "unknown_sender",
        AdmissionError::WrongSigner => "wrong_signer",
        AdmissionError::MissingCoSignature => "missing_co_signature",
        AdmissionError::KeyRevoked => "key_revoked",
        AdmissionError::State(_) => "state_unreadable",
    }
}

/// The metric label of a verification refusal.
pub(super) fn verify_label(error: &VerifyError) -> &'static str {
    match error {
        VerifyError::WrongChain(_) => "wrong_chain",
        VerifyError::Limits(_) => "limits",
        VerifyError::BadSignature => "bad_signature",
        VerifyError::BadPaymentCode => "bad_payment_code",
    }
}

impl Chain {
    /// Whether `verified` may wait for a block here (see the module documentation); if so,
    /// its sender's next nonce in committed state.
    pub(super) fn admission(
        &self,
        state: &dyn StateStore,
        verified: &VerifiedTransaction,
    ) -> Result<u64, AdmissionError> {
        let sender = pool::sender_key(verified.tx().sender);
        let pending: Vec<PublicKey> = self
            .mempool
            .waiting_below(&sender, verified.tx().nonce)
            .filter_map(|waiting| admission::installed_key(waiting.verified.tx()))
            .collect();
        admission::admit(state, verified, &pending)
    }

    /// A transaction of a proposed block for which this node holds a copy of the same body
    /// signed by strictly more keys: the block's copy may have been stripped of a
    /// co-signature in flight, and would commit with another outcome than the one its
    /// signers meant. A validator that knows the fuller copy does not vote for the block;
    /// the next proposer, reached by the same gossip, proposes the fuller one.
    pub(super) fn weaker_copy(&self, verified: &[VerifiedTransaction]) -> Option<String> {
        verified.iter().find_map(|tx| {
            let held = self
                .mempool
                .at(&pool::sender_key(tx.tx().sender), tx.tx().nonce)?;
            (held.verified.encoded().signing_bytes() == tx.encoded().signing_bytes()
                && strict_superset(held.verified.signers(), tx.signers()))
            .then(|| {
                format!(
                    "transaction {} has fewer signers than the copy {} waiting here",
                    tx.hash(),
                    held.verified.hash()
                )
            })
        })
    }

    /// Counts a transaction refused at admission; `from` is the gossiping peer, if any.
    pub(super) fn refused_admission(&mut self, from: Option<PublicKey>, error: &AdmissionError) {
        let label = admission_label(error);
        self.metrics.transactions_refused.inc(label);
        let Some(peer) = from else {
            return;
        };
        self.metrics.gossiped_transactions_refused.inc(label);
        let strike = matches!(
            error,
            AdmissionError::WrongSigner | AdmissionError::MissingCoSignature
        );
        if strike && self.strikes.strike(peer, self.head.height) {
            tracing::warn!(%peer, "peer gossiped transactions their senders did not sign; cutting it off");
            self.send(Outbound::Report(
                peer,
                format!(
                    "gossiped more than {ADMISSION_STRIKES_MAX} transactions their senders \
                     did not sign within {STRIKE_WINDOW_BLOCKS} blocks"
                ),
            ));
        }
    }

    /// Counts a transaction whose signatures did not verify; a gossiping peer is cut off.
    pub(super) fn refused_verification(&mut self, from: Option<PublicKey>, error: &VerifyError) {
        let label = verify_label(error);
        self.metrics.transactions_refused.inc(label);
        if let Some(peer) = from {
            self.metrics.gossiped_transactions_refused.inc(label);
            tracing::warn!(%peer, %error, "gossiped transaction does not verify; cutting the peer off");
            self.send(Outbound::Report(
                peer,
                format!("gossiped a transaction that does not verify: {error}"),
            ));
        }
    }

    /// Counts a copy refused because one with more signers waits.
    pub(super) fn refused_in_mempool(&self, from: Option<PublicKey>, error: &MempoolError) {
        if let MempoolError::FewerSignatures { .. } = error {
            self.metrics.transactions_refused.inc("fewer_signatures");
            if from.is_some() {
                self.metrics
                    .gossiped_transactions_refused
                    .inc("fewer_signatures");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_cut_off_past_the_strikes_of_one_window() {
        let mut strikes = Strikes::default();
        let (honest, forger) = (PublicKey([1; 32]), PublicKey([2; 32]));
        let window = STRIKE_WINDOW_BLOCKS;
        // Races spread over windows never add up.
        for w in 0..10 {
            for _ in 0..ADMISSION_STRIKES_MAX {
                assert!(!strikes.strike(honest, w * window + 1));
            }
        }
        // A stream of forgeries within one window: cut off at the first strike past the max.
        for n in 1..=ADMISSION_STRIKES_MAX {
            assert!(!strikes.strike(forger, 10 * window), "strike {n}");
        }
        assert!(strikes.strike(forger, 10 * window));
        // Counted again from zero afterwards; the other peer's count is its own.
        assert!(!strikes.strike(forger, 10 * window));
        assert!(!strikes.strike(honest, 10 * window));
    }
}
