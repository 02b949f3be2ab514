//! Commit certificate checks and equivocation evidence verification.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use tally_consensus::crypto::{KeyCache, Signature};
use tally_consensus::*;

#[test]
fn a_quorum_certificate_verifies() {
    let f = Fixture::new(4);
    let cert = f.certificate(5, 2, b"b", &[0, 1, 3]);
    assert_eq!(cert.verify(&f.set, CHAIN), Ok(()));
    let mut cache = KeyCache::default();
    assert_eq!(
        cert.verify_for(&f.sets, CHAIN, Height(5), BlockHash::of(b"b"), &mut cache),
        Ok(())
    );
}

#[test]
fn too_little_power() {
    let f = Fixture::new(4);
    let cert = f.certificate(5, 2, b"b", &[0, 1]);
    assert_eq!(
        cert.verify(&f.set, CHAIN),
        Err(Error::InsufficientPower {
            power: 2,
            quorum: 3
        })
    );
}

#[test]
fn duplicate_signers() {
    let f = Fixture::new(4);
    let mut cert = f.certificate(5, 2, b"b", &[0, 1]);
    cert.signatures.push(cert.signatures[1]);
    assert_eq!(
        cert.verify(&f.set, CHAIN),
        Err(Error::DuplicateSigner(ValidatorIndex(1)))
    );
}

#[test]
fn signer_not_in_the_set() {
    let f = Fixture::new(4);
    let big = Fixture::new(5);
    let cert = big.certificate(5, 2, b"b", &[0, 1, 4]);
    assert_eq!(
        cert.verify(&f.set, CHAIN),
        Err(Error::UnknownValidator(ValidatorIndex(4)))
    );
}

#[test]
fn wrong_height_round_or_block() {
    let f = Fixture::new(4);
    let good = f.certificate(5, 2, b"b", &[0, 1, 2]);
    let mut cache = KeyCache::default();
    // Asked about another height or block.
    assert!(matches!(
        good.verify_for(&f.sets, CHAIN, Height(6), BlockHash::of(b"b"), &mut cache),
        Err(Error::WrongHeight { .. })
    ));
    assert!(matches!(
        good.verify_for(&f.sets, CHAIN, Height(5), BlockHash::of(b"c"), &mut cache),
        Err(Error::WrongBlock { .. })
    ));
    // Relabelled: the signatures were for height 5 round 2 block b.
    for relabel in [
        |c: &mut CommitCertificate| c.height = Height(6),
        |c: &mut CommitCertificate| c.round = Round(3),
        |c: &mut CommitCertificate| c.block = BlockHash::of(b"c"),
    ] {
        let mut cert = good.clone();
        relabel(&mut cert);
        assert!(matches!(
            cert.verify(&f.set, CHAIN),
            Err(Error::BadSignature(_))
        ));
    }
    // Another chain's certificate.
    assert!(good.verify(&f.set, "other-chain").is_err());
}

#[test]
fn bad_signature_is_found_in_the_batch() {
    let f = Fixture::new(7);
    let mut cert = f.certificate(5, 2, b"b", &[0, 1, 2, 3, 4, 5]);
    cert.signatures[4].signature.0[10] ^= 1;
    assert_eq!(
        cert.verify(&f.set, CHAIN),
        Err(Error::BadSignature(ValidatorIndex(4)))
    );
    cert.signatures[4].signature = Signature([0; 64]);
    assert_eq!(
        cert.verify(&f.set, CHAIN),
        Err(Error::BadSignature(ValidatorIndex(4)))
    );
}

#[test]
fn certificates_follow_the_set_in_force() {
    let f = Fixture::new(4);
    let mut sets = f.sets.clone();
    // From height 10 validator 3 holds power 4 of 7: a quorum (5) needs it.
    let mut heavier: Vec<Validator> = f.set.validators().to_vec();
    heavier[3].power = 4;
    sets.schedule(Height(10), ValidatorSet::new(heavier).unwrap())
        .unwrap();
    let mut cache = KeyCache::default();
    let b = BlockHash::of(b"b");
    let without_3 = f.certificate(10, 0, b"b", &[0, 1, 2]);
    assert!(matches!(
        without_3.verify_for(&sets, CHAIN, Height(10), b, &mut cache),
        Err(Error::InsufficientPower {
            power: 3,
            quorum: 5
        })
    ));
    let at_9 = f.certificate(9, 0, b"b", &[0, 1, 2]);
    assert_eq!(
        at_9.verify_for(&sets, CHAIN, Height(9), b, &mut cache),
        Ok(())
    );
    let with_3 = f.certificate(10, 0, b"b", &[0, 3]);
    assert_eq!(
        with_3.verify_for(&sets, CHAIN, Height(10), b, &mut cache),
        Ok(())
    );
}

#[test]
fn conflicting_votes_are_evidence() {
    let f = Fixture::new(4);
    let a = f.signed_vote(VoteKind::Precommit, 3, 1, Some(BlockHash::of(b"a")), 2);
    let b = f.signed_vote(VoteKind::Precommit, 3, 1, None, 2);
    let e = Evidence::votes(a, b).unwrap();
    assert_eq!(Evidence::votes(b, a), Some(e.clone()), "one order");
    assert_eq!(e.verify(&f.set, CHAIN), Ok(()));
    assert_eq!(e.validator(), ValidatorIndex(2));
    assert_eq!(e.kind(), EquivocationKind::Precommit);
    // Not conflicting: the same vote, another validator, round, kind or height.
    assert_eq!(Evidence::votes(a, a), None);
    let other_validator = f.signed_vote(VoteKind::Precommit, 3, 1, None, 1);
    assert_eq!(Evidence::votes(a, other_validator), None);
    let other_round = f.signed_vote(VoteKind::Precommit, 3, 2, None, 2);
    assert_eq!(Evidence::votes(a, other_round), None);
    let other_kind = f.signed_vote(VoteKind::Prevote, 3, 1, None, 2);
    assert_eq!(Evidence::votes(a, other_kind), None);
}

#[test]
fn evidence_with_a_forged_or_reordered_pair_is_refused() {
    let f = Fixture::new(4);
    let a = f.signed_vote(VoteKind::Prevote, 3, 1, Some(BlockHash::of(b"a")), 2);
    let b = f.signed_vote(VoteKind::Prevote, 3, 1, None, 2);
    let Evidence::ConflictingVotes { first, second } = Evidence::votes(a, b).unwrap() else {
        unreachable!()
    };
    let mut forged = second;
    forged.signature.0[3] ^= 1;
    let (x, y) = if first <= forged {
        (first, forged)
    } else {
        (forged, first)
    };
    let e = Evidence::ConflictingVotes {
        first: x,
        second: y,
    };
    assert_eq!(
        e.verify(&f.set, CHAIN),
        Err(Error::BadSignature(ValidatorIndex(2)))
    );
    let reordered = Evidence::ConflictingVotes {
        first: second,
        second: first,
    };
    assert_eq!(reordered.verify(&f.set, CHAIN), Err(Error::NotConflicting));
    // Checked against a set where validator 2 has another key.
    let other = Fixture::new(5);
    let mut swapped: Vec<Validator> = f.set.validators().to_vec();
    swapped[2] = other.set.validators()[4];
    let set = ValidatorSet::new(swapped).unwrap();
    assert!(Evidence::votes(a, b).unwrap().verify(&set, CHAIN).is_err());
}

#[test]
fn conflicting_proposals_are_evidence() {
    let f = Fixture::new(4);
    let Message::Proposal { proposal: p1, .. } = f.proposal_message(3, 0, b"one", None) else {
        unreachable!()
    };
    let Message::Proposal { proposal: p2, .. } = f.proposal_message(3, 0, b"two", None) else {
        unreachable!()
    };
    let e = Evidence::proposals(p1, p2).unwrap();
    assert_eq!(e.verify(&f.set, CHAIN), Ok(()));
    assert_eq!(e.kind(), EquivocationKind::Proposal);
    assert_eq!(Evidence::proposals(p1, p1), None);
    // Evidence survives its encoding.
    let bytes = encode(&e);
    assert_eq!(decode::<Evidence>(&bytes, 1024), Ok(e));
}

#[test]
fn verification_refuses_wrong_proposer_and_mismatched_blocks() {
    let f = Fixture::new(4);
    let m = f.proposal_message(3, 0, b"one", None);
    let Message::Proposal { proposal, .. } = m.clone() else {
        unreachable!()
    };
    let swapped = Message::Proposal {
        proposal,
        block: b"other".to_vec(),
    };
    assert!(matches!(
        verify_message(swapped, &f.set, CHAIN),
        Err(Error::BlockHashMismatch { .. })
    ));
    let mut not_proposer = proposal;
    not_proposer.proposal.proposer = ValidatorIndex((proposal.proposal.proposer.0 + 1) % 4);
    assert!(matches!(
        verify_message(
            Message::Proposal {
                proposal: not_proposer,
                block: b"one".to_vec()
            },
            &f.set,
            CHAIN
        ),
        Err(Error::NotProposer { .. })
    ));
    let mut pol = proposal;
    pol.proposal.pol_round = Some(Round(0));
    assert!(matches!(
        verify_message(
            Message::Proposal {
                proposal: pol,
                block: b"one".to_vec()
            },
            &f.set,
            CHAIN
        ),
        Err(Error::BadPolRound { .. })
    ));
    assert!(verify_message(m, &f.set, CHAIN).is_ok());
}
