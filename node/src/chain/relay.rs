//! What an audit node does with a submission. It keeps no mempool of its own and proposes
//! nothing, but the regulator acts (freezes, sanctions) from the page its audit node serves,
//! so an audit node relays a regulator's own transactions to the validators over gossip.
//!
//! Attackers: a bank or a customer using the regulator's node as a free relay or as an
//! amplifier toward the validators. A transaction whose sender is not an institution holding
//! the regulator's role in this node's state is refused `READ_ONLY` before its signatures are
//! even checked; one that is gets the checks a validator's door gives (signatures, the
//! sender's key among them, a nonce not already used) before it is published, so the audit
//! node never gossips what would earn it strikes. The validators judge it again as they
//! judge any gossip: the relay adds no authority.

use tally_contracts::{Party, Roles, StateStore, Transaction, VerifiedTransaction, query};
use tally_crypto::Hash;
use tracing::info;

use super::Chain;
use crate::mempool::MempoolError;
use crate::service::SubmitError;

/// Whether an audit node relays `tx`: its sender is an institution that holds the
/// regulator's role in `state`. Read before verification: a stranger's flood costs a lookup,
/// not a signature check.
pub(super) fn relays(state: &dyn StateStore, tx: &Transaction) -> bool {
    let Party::Institution(id) = tx.sender else {
        return false;
    };
    matches!(
        query::institution(state, id),
        Ok(Some(institution)) if institution.roles.contains(Roles::REGULATOR)
    )
}

impl Chain {
    /// Publishes a regulator's verified and admitted transaction to the validators, unless
    /// its nonce was used (`next_nonce` is the sender's next, from this node's state).
    pub(super) fn relay(
        &mut self,
        verified: &VerifiedTransaction,
        next_nonce: u64,
    ) -> Result<Hash, SubmitError> {
        let nonce = verified.tx().nonce;
        if nonce < next_nonce {
            return Err(SubmitError::Mempool(MempoolError::NonceUsed {
                nonce,
                next: next_nonce,
            }));
        }
        let hash = verified.hash();
        info!(%hash, nonce, "relaying a regulator's transaction to the validators");
        self.metrics.relayed_transactions.inc();
        self.to_gossip.push(verified.encoded().bytes().to_vec());
        Ok(hash)
    }
}
