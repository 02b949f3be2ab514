//! [`Verified`]: the proof that a message's signature was checked against the validator set
//! in force at its height. The consensus core takes only verified messages, and the only way
//! to make one is to check it here, one at a time or in a batch.

use tally_crypto::{BatchVerifier, Hash, KeyCache};

use crate::Error;
use crate::message::{DOMAIN_PROPOSAL, Message};
use crate::types::BlockHash;
use crate::validators::{ValidatorSet, ValidatorSets};

/// A value whose signature verified against the validator set named by [`Verified::set_id`].
/// There is no public constructor other than the checks in this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<T> {
    value: T,
    set_id: Hash,
}

impl<T> Verified<T> {
    pub fn get(&self) -> &T {
        &self.value
    }

    pub fn into_inner(self) -> T {
        self.value
    }

    /// The id of the validator set the signature was checked against.
    pub fn set_id(&self) -> Hash {
        self.set_id
    }
}

impl<T> std::ops::Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Every check of a message but its signature: the signer is in the set, a proposal comes
/// from the round's proposer, names its block's hash and a proof-of-lock round below its
/// round.
fn check_structure(message: &Message, set: &ValidatorSet) -> Result<(), Error> {
    let signer = message.signer();
    if set.get(signer).is_none() {
        return Err(Error::UnknownValidator(signer));
    }
    if let Message::Proposal { proposal, block } = message {
        let p = &proposal.proposal;
        let expected = set.proposer(p.height, p.round);
        if p.proposer != expected {
            return Err(Error::NotProposer {
                validator: p.proposer,
                height: p.height,
                round: p.round,
            });
        }
        if let Some(pol_round) = p.pol_round
            && pol_round >= p.round
        {
            return Err(Error::BadPolRound {
                pol_round,
                round: p.round,
            });
        }
        let actual = BlockHash::of(block);
        if actual != p.block {
            return Err(Error::BlockHashMismatch {
                claimed: p.block,
                actual,
            });
        }
    }
    Ok(())
}

/// Verifies one message against `set`, which must be the set in force at its height.
pub fn verify_message(
    message: Message,
    set: &ValidatorSet,
    chain_id: &str,
) -> Result<Verified<Message>, Error> {
    check_structure(&message, set)?;
    let key = set
        .get(message.signer())
        .map(|v| v.public_key)
        .ok_or(Error::UnknownValidator(message.signer()))?;
    match &message {
        Message::Proposal { proposal, .. } => proposal.verify_signature(&key, chain_id)?,
        Message::Vote(vote) => vote.verify_signature(&key, chain_id)?,
    }
    Ok(Verified {
        value: message,
        set_id: set.id(),
    })
}

/// Verifies many messages at once, each against the set in force at its height, with one
/// batch equation for all signatures (falling back to single checks only to find bad ones).
/// The verdicts are those [`verify_message`] would give, in input order.
pub fn verify_messages(
    messages: Vec<Message>,
    sets: &ValidatorSets,
    chain_id: &str,
    cache: &mut KeyCache,
) -> Vec<Result<Verified<Message>, Error>> {
    let mut batch = BatchVerifier::with_capacity(messages.len());
    // Per message: Ok(set id) if it went into the batch, or the structural error.
    let mut checked: Vec<Result<Hash, Error>> = Vec::with_capacity(messages.len());
    for message in &messages {
        let result = sets.require(message.height()).and_then(|set| {
            check_structure(message, set)?;
            let key = set
                .get(message.signer())
                .map(|v| v.public_key)
                .ok_or(Error::UnknownValidator(message.signer()))?;
            match message {
                Message::Proposal { proposal, .. } => batch.push(
                    key,
                    DOMAIN_PROPOSAL,
                    chain_id,
                    &proposal.proposal.signing_bytes(),
                    proposal.signature,
                ),
                Message::Vote(v) => batch.push(
                    key,
                    v.vote.kind.domain(),
                    chain_id,
                    &v.vote.signing_bytes(),
                    v.signature,
                ),
            }
            Ok(set.id())
        });
        checked.push(result);
    }
    let mut verdicts = batch.verify(cache).into_iter();
    messages
        .into_iter()
        .zip(checked)
        .map(|(message, checked)| {
            let set_id = checked?;
            // One verdict per pushed item, in order; a missing verdict counts as a failure.
            if verdicts.next().unwrap_or(false) {
                Ok(Verified {
                    value: message,
                    set_id,
                })
            } else {
                Err(Error::BadSignature(message.signer()))
            }
        })
        .collect()
}
