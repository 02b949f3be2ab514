//! The safe signer: the only holder of the validator key.
//!
//! Before it signs, it checks that the message does not conflict with what it signed before
//! (it only moves forward in (height, round, step)); it records what it signs through a
//! [`SignerStore`] and only then releases the signature. Asked again for exactly the same
//! message, it returns the same signature; asked for anything else at or before its last
//! (height, round, step), it refuses. A signer built again from the same store, after a crash,
//! still refuses. It also keeps the lock (the last block it precommitted at its height), so a
//! restarted validator keeps its lock: forgetting it is the "amnesia" fault.

use serde::{Deserialize, Serialize};
use std::fmt;
use tally_crypto::{Hash, Signature, SigningKey};

use crate::Error;
use crate::message::{DOMAIN_PROPOSAL, Proposal, SignedProposal, SignedVote, Vote, VoteKind};
use crate::types::{BlockHash, Height, Round};

/// The steps of a round in the order a validator signs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SignStep {
    Propose,
    Prevote,
    Precommit,
}

/// The last message signed: where it was, a digest of what it was, and its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSigned {
    pub height: Height,
    pub round: Round,
    pub step: SignStep,
    pub digest: Hash,
    pub signature: Signature,
}

/// The block this validator last precommitted at a height, and in which round. Algorithm 1
/// sets `lockedValue`/`lockedRound` exactly when it precommits a block (L36-L40), so the
/// signer's record of precommits is the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub height: Height,
    pub round: Round,
    pub block: BlockHash,
}

/// What the signer persists.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SignerRecord {
    pub last: Option<LastSigned>,
    pub lock: Option<Lock>,
    /// The votes signed in the round of `last` (at most a prevote and a precommit), so a
    /// restarted validator can send them again: peers that missed them may need them to
    /// reach a quorum.
    pub votes: Vec<SignedVote>,
}

/// Durable storage of the signer's record. The node implements it over its database;
/// [`SignerStore::save`] must not return until the record is durable (written and flushed):
/// the signature is released right after.
pub trait SignerStore {
    /// The record saved last, or `None` for a validator that never signed.
    fn load(&mut self) -> Result<Option<SignerRecord>, Error>;
    /// Replaces the record; durable on return.
    fn save(&mut self, record: &SignerRecord) -> Result<(), Error>;
}

/// A store in memory: for tests and the simulator, where "durable" means "survives the
/// simulated crash" (the simulator keeps the store and drops everything else).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStore {
    record: Option<SignerRecord>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    pub fn record(&self) -> Option<&SignerRecord> {
        self.record.as_ref()
    }
}

impl SignerStore for MemoryStore {
    fn load(&mut self) -> Result<Option<SignerRecord>, Error> {
        Ok(self.record.clone())
    }

    fn save(&mut self, record: &SignerRecord) -> Result<(), Error> {
        self.record = Some(record.clone());
        Ok(())
    }
}

/// The only holder of a validator's key. See the module documentation for its rules.
pub struct Signer<S: SignerStore> {
    key: SigningKey,
    chain_id: String,
    store: S,
    record: SignerRecord,
    /// Planted bug for the simulator's sensitivity tests: release signatures first and
    /// persist a record only when the next one is signed.
    #[cfg(feature = "sim")]
    persist_late: bool,
    #[cfg(feature = "sim")]
    unsaved: Option<SignerRecord>,
}

impl<S: SignerStore> fmt::Debug for Signer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("public_key", &self.key.public_key())
            .field("chain_id", &self.chain_id)
            .field("record", &self.record)
            .finish()
    }
}

impl<S: SignerStore> Signer<S> {
    /// A signer for `key` on `chain_id`, resuming from what `store` holds.
    pub fn new(key: SigningKey, chain_id: &str, mut store: S) -> Result<Signer<S>, Error> {
        let record = store.load()?.unwrap_or_default();
        Ok(Signer {
            key,
            chain_id: chain_id.to_string(),
            store,
            record,
            #[cfg(feature = "sim")]
            persist_late: false,
            #[cfg(feature = "sim")]
            unsaved: None,
        })
    }

    /// Plants the "does not persist before signing" bug (simulator sensitivity tests only).
    #[cfg(feature = "sim")]
    pub fn with_late_persist(mut self) -> Signer<S> {
        self.persist_late = true;
        self
    }

    pub fn public_key(&self) -> tally_crypto::PublicKey {
        self.key.public_key()
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// What was signed last (after a restart: what the store held).
    pub fn last_signed(&self) -> Option<LastSigned> {
        self.record.last
    }

    /// The votes signed in the round of the last signature.
    pub fn recent_votes(&self) -> &[SignedVote] {
        &self.record.votes
    }

    /// The lock held at `height`, if any.
    pub fn lock_at(&self, height: Height) -> Option<Lock> {
        self.record.lock.filter(|l| l.height == height)
    }

    /// Gives back the store (the simulator keeps it across a crash).
    pub fn into_store(self) -> S {
        self.store
    }

    /// Signs a vote, if it does not conflict with anything signed before.
    pub fn sign_vote(&mut self, vote: Vote) -> Result<SignedVote, Error> {
        let step = match vote.kind {
            VoteKind::Prevote => SignStep::Prevote,
            VoteKind::Precommit => SignStep::Precommit,
        };
        let lock = match (vote.kind, vote.block) {
            (VoteKind::Precommit, Some(block)) => Some(Lock {
                height: vote.height,
                round: vote.round,
                block,
            }),
            _ => None,
        };
        let signature = self.sign(
            vote.height,
            vote.round,
            step,
            vote.kind.domain(),
            &vote.signing_bytes(),
            lock,
            Some(vote),
        )?;
        Ok(SignedVote { vote, signature })
    }

    /// Signs a proposal, if it does not conflict with anything signed before.
    pub fn sign_proposal(&mut self, proposal: Proposal) -> Result<SignedProposal, Error> {
        let signature = self.sign(
            proposal.height,
            proposal.round,
            SignStep::Propose,
            DOMAIN_PROPOSAL,
            &proposal.signing_bytes(),
            None,
            None,
        )?;
        Ok(SignedProposal {
            proposal,
            signature,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn sign(
        &mut self,
        height: Height,
        round: Round,
        step: SignStep,
        domain: &str,
        bytes: &[u8],
        new_lock: Option<Lock>,
        vote: Option<Vote>,
    ) -> Result<Signature, Error> {
        let digest = tally_crypto::HashBuilder::new("tally/signer-record")
            .update(domain.as_bytes())
            .update(bytes)
            .finish();
        if let Some(last) = self.record.last {
            let at = (height, round, step);
            let last_at = (last.height, last.round, last.step);
            if at < last_at {
                return Err(Error::SignRefused("already signed a later step"));
            }
            if at == last_at {
                return if digest == last.digest {
                    Ok(last.signature)
                } else {
                    Err(Error::SignRefused(
                        "conflicts with what was signed at this step",
                    ))
                };
            }
        }
        let signature = self.key.sign(domain, &self.chain_id, bytes);
        // The lock belongs to one height: a new height starts unlocked.
        let kept_lock = self.record.lock.filter(|l| l.height == height);
        let mut votes: Vec<SignedVote> = self
            .record
            .votes
            .iter()
            .filter(|v| (v.vote.height, v.vote.round) == (height, round))
            .copied()
            .collect();
        votes.extend(vote.map(|vote| SignedVote { vote, signature }));
        let record = SignerRecord {
            last: Some(LastSigned {
                height,
                round,
                step,
                digest,
                signature,
            }),
            lock: new_lock.or(kept_lock),
            votes,
        };
        self.persist(&record)?;
        self.record = record;
        Ok(signature)
    }

    #[cfg(not(feature = "sim"))]
    fn persist(&mut self, record: &SignerRecord) -> Result<(), Error> {
        self.store.save(record)
    }

    #[cfg(feature = "sim")]
    fn persist(&mut self, record: &SignerRecord) -> Result<(), Error> {
        if self.persist_late {
            if let Some(previous) = self.unsaved.replace(record.clone()) {
                self.store.save(&previous)?;
            }
            return Ok(());
        }
        self.store.save(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ValidatorIndex;

    fn vote(kind: VoteKind, h: u64, r: u32, block: Option<u8>) -> Vote {
        Vote {
            kind,
            height: Height(h),
            round: Round(r),
            block: block.map(|b| BlockHash::of(&[b])),
            validator: ValidatorIndex(0),
        }
    }

    fn signer(store: MemoryStore) -> Signer<MemoryStore> {
        Signer::new(SigningKey::from_seed([5; 32]), "test-chain", store).unwrap()
    }

    /// A store that fails: the signer must not release a signature it could not record.
    struct BrokenStore;
    impl SignerStore for BrokenStore {
        fn load(&mut self) -> Result<Option<SignerRecord>, Error> {
            Ok(None)
        }
        fn save(&mut self, _: &SignerRecord) -> Result<(), Error> {
            Err(Error::Store("disk full".into()))
        }
    }

    #[test]
    fn same_request_same_signature_conflict_refused() {
        let mut s = signer(MemoryStore::new());
        let a = s.sign_vote(vote(VoteKind::Prevote, 1, 0, Some(1))).unwrap();
        let again = s.sign_vote(vote(VoteKind::Prevote, 1, 0, Some(1))).unwrap();
        assert_eq!(a, again);
        assert!(matches!(
            s.sign_vote(vote(VoteKind::Prevote, 1, 0, Some(2))),
            Err(Error::SignRefused(_))
        ));
        assert!(matches!(
            s.sign_vote(vote(VoteKind::Prevote, 1, 0, None)),
            Err(Error::SignRefused(_))
        ));
        // Forward is fine: the precommit of the same round, then a later round.
        s.sign_vote(vote(VoteKind::Precommit, 1, 0, Some(1)))
            .unwrap();
        // Backward is refused: a prevote after the precommit of the same round.
        assert!(s.sign_vote(vote(VoteKind::Prevote, 1, 0, Some(1))).is_err());
        s.sign_vote(vote(VoteKind::Prevote, 1, 1, None)).unwrap();
        assert!(
            s.sign_vote(vote(VoteKind::Precommit, 1, 0, Some(1)))
                .is_err()
        );
    }

    #[test]
    fn refusals_survive_a_restart() {
        let mut s = signer(MemoryStore::new());
        let p = Proposal {
            height: Height(4),
            round: Round(2),
            pol_round: None,
            block: BlockHash::of(b"x"),
            proposer: ValidatorIndex(0),
        };
        let signed = s.sign_proposal(p).unwrap();
        s.sign_vote(vote(VoteKind::Precommit, 4, 2, Some(9)))
            .unwrap();
        let store = s.into_store();
        let mut restarted = signer(store);
        assert_eq!(
            restarted.lock_at(Height(4)).map(|l| l.round),
            Some(Round(2))
        );
        // The same proposal is refused now (it is behind the precommit) ...
        assert!(restarted.sign_proposal(p).is_err());
        // ... and so is a different precommit in the same round, or anything earlier.
        assert!(
            restarted
                .sign_vote(vote(VoteKind::Precommit, 4, 2, None))
                .is_err()
        );
        assert!(
            restarted
                .sign_vote(vote(VoteKind::Prevote, 3, 9, None))
                .is_err()
        );
        // The same precommit again gives the same signature.
        let again = restarted
            .sign_vote(vote(VoteKind::Precommit, 4, 2, Some(9)))
            .unwrap();
        assert_eq!(again.vote.block, Some(BlockHash::of(&[9])));
        let _ = signed;
        // A new height starts unlocked.
        restarted
            .sign_vote(vote(VoteKind::Prevote, 5, 0, None))
            .unwrap();
        assert_eq!(restarted.lock_at(Height(5)), None);
        assert_eq!(restarted.lock_at(Height(4)), None);
    }

    #[test]
    fn no_signature_without_a_record() {
        let mut s = Signer::new(SigningKey::from_seed([5; 32]), "c", BrokenStore).unwrap();
        assert_eq!(
            s.sign_vote(vote(VoteKind::Prevote, 1, 0, None)),
            Err(Error::Store("disk full".into()))
        );
        // Nothing was recorded in memory either: the same request is tried again, not
        // answered from a record that never became durable.
        assert!(s.last_signed().is_none());
    }

    #[test]
    fn signatures_verify_under_their_domains() {
        let mut s = signer(MemoryStore::new());
        let v = s
            .sign_vote(vote(VoteKind::Precommit, 1, 0, Some(1)))
            .unwrap();
        let key = s.public_key();
        assert_eq!(v.verify_signature(&key, "test-chain"), Ok(()));
        assert!(v.verify_signature(&key, "other-chain").is_err());
        let mut as_prevote = v;
        as_prevote.vote.kind = VoteKind::Prevote;
        assert!(as_prevote.verify_signature(&key, "test-chain").is_err());
    }
}
