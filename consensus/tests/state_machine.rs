//! The rules of Algorithm 1, one at a time, on one node with n = 4 (f = 1, quorum 3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use tally_consensus::*;

const H: u64 = 1;

fn prevote(block: Option<BlockHash>) -> (VoteKind, Option<BlockHash>) {
    (VoteKind::Prevote, block)
}

fn kinds(votes: &[Vote]) -> Vec<(VoteKind, Option<BlockHash>)> {
    votes.iter().map(|v| (v.kind, v.block)).collect()
}

#[test]
fn proposer_requests_a_block_proposes_and_prevotes_it() {
    let f = Fixture::new(4);
    let me = f.proposer(H, 0);
    let mut node = f.node(me, H);
    let out = node.start();
    assert!(out.contains(&Output::RequestBlock {
        height: Height(H),
        round: Round(0)
    }));
    assert_eq!(timeouts(&out)[0].kind, TimeoutKind::Propose);
    let out = node.step(Input::BlockToPropose {
        height: Height(H),
        round: Round(0),
        block: b"b1".to_vec(),
    });
    let proposals: Vec<_> = out
        .iter()
        .filter(|o| matches!(o, Output::Broadcast(Message::Proposal { .. })))
        .collect();
    assert_eq!(proposals.len(), 1);
    // L22 fires at once for our own (valid) block.
    assert_eq!(
        kinds(&broadcast_votes(&out)),
        vec![prevote(Some(BlockHash::of(b"b1")))]
    );
    // A second block for the same round is not proposed.
    let out = node.step(Input::BlockToPropose {
        height: Height(H),
        round: Round(0),
        block: b"b2".to_vec(),
    });
    assert!(out.is_empty());
}

#[test]
fn a_proposal_is_resent_until_every_other_validator_voted_for_its_block() {
    let f = Fixture::new(4);
    let me = f.proposer(H, 0);
    let mut node = f.node(me, H);
    node.start();
    node.step(Input::BlockToPropose {
        height: Height(H),
        round: Round(0),
        block: b"b1".to_vec(),
    });
    let b1 = Some(BlockHash::of(b"b1"));
    let resends_proposal = |node: &Consensus<_>| {
        node.messages_to_resend()
            .iter()
            .any(|m| matches!(m, Message::Proposal { .. }))
    };
    assert!(resends_proposal(&node));
    let others: Vec<usize> = (0..4).filter(|&i| i != me).collect();
    // A nil vote does not show the block arrived; votes for it do, prevote or precommit.
    node.step(f.vote(VoteKind::Prevote, H, 0, None, others[0]));
    node.step(f.vote(VoteKind::Prevote, H, 0, b1, others[1]));
    node.step(f.vote(VoteKind::Precommit, H, 0, b1, others[2]));
    assert!(
        resends_proposal(&node),
        "one validator has not shown it holds b1"
    );
    node.step(f.vote(VoteKind::Precommit, H, 0, b1, others[0]));
    assert!(!resends_proposal(&node), "all three others hold b1");
    // Its own votes still go out again.
    assert!(
        node.messages_to_resend()
            .iter()
            .any(|m| matches!(m, Message::Vote(v) if v.vote.validator.as_usize() == me))
    );
}

#[test]
fn l22_prevotes_a_valid_proposal_and_nil_for_an_invalid_one() {
    let f = Fixture::new(4);
    let me = f.non_proposer(H, 0);
    for valid in [true, false] {
        let mut node = f.node(me, H);
        node.start();
        let out = node.step(f.proposal(H, 0, b"b", None));
        assert!(
            matches!(&out[..], [Output::ValidateBlock { block_hash, .. }] if *block_hash == BlockHash::of(b"b")),
            "{out:?}"
        );
        let out = node.step(Input::BlockValidity {
            height: Height(H),
            block: BlockHash::of(b"b"),
            valid,
        });
        let expected = valid.then(|| BlockHash::of(b"b"));
        assert_eq!(kinds(&broadcast_votes(&out)), vec![prevote(expected)]);
        assert_eq!(node.current_step(), Step::Prevote);
    }
}

#[test]
fn l57_propose_timeout_prevotes_nil_only_in_its_round_and_step() {
    let f = Fixture::new(4);
    let mut node = f.node(f.non_proposer(H, 0), H);
    node.start();
    let stale = Timeout {
        height: Height(H),
        round: Round(3),
        kind: TimeoutKind::Propose,
    };
    assert!(node.step(Input::Timeout(stale)).is_empty());
    let t = Timeout {
        height: Height(H),
        round: Round(0),
        kind: TimeoutKind::Propose,
    };
    let out = node.step(Input::Timeout(t));
    assert_eq!(kinds(&broadcast_votes(&out)), vec![prevote(None)]);
    // Fired again: nothing more (step is prevote now).
    assert!(broadcast_votes(&node.step(Input::Timeout(t))).is_empty());
}

#[test]
fn l36_precommits_and_locks_on_a_prevote_quorum_and_l49_decides() {
    let f = Fixture::new(4);
    let me = f.non_proposer(H, 0);
    let mut node = f.node(me, H);
    node.start();
    let b = BlockHash::of(b"b");
    node.step(f.proposal(H, 0, b"b", None));
    node.step(Input::BlockValidity {
        height: Height(H),
        block: b,
        valid: true,
    });
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    // Our prevote plus one other: 2 of 4, no quorum, no precommit.
    let out = node.step(f.vote(VoteKind::Prevote, H, 0, Some(b), others[0]));
    assert!(broadcast_votes(&out).is_empty());
    let out = node.step(f.vote(VoteKind::Prevote, H, 0, Some(b), others[1]));
    assert_eq!(
        kinds(&broadcast_votes(&out)),
        vec![(VoteKind::Precommit, Some(b))]
    );
    // L34 scheduled the prevote timeout too.
    assert!(
        timeouts(&out)
            .iter()
            .any(|t| t.kind == TimeoutKind::Prevote)
    );
    assert_eq!(node.locked(), Some((Round(0), b)));
    // Two more precommits (with ours, 3 of 4): decide.
    node.step(f.vote(VoteKind::Precommit, H, 0, Some(b), others[0]));
    let out = node.step(f.vote(VoteKind::Precommit, H, 0, Some(b), others[1]));
    let d = decisions(&out);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].height, Height(H));
    assert_eq!(d[0].block, b"b".to_vec());
    assert_eq!(d[0].certificate.verify(&f.set, CHAIN), Ok(()));
    // No commit wait: height H + 1 round 0 has started.
    assert_eq!(node.height(), Height(H + 1));
    assert_eq!(node.round(), Round(0));
    assert_eq!(node.locked(), None);
}

#[test]
fn l44_precommits_nil_on_nil_quorum_and_l61_on_prevote_timeout() {
    let f = Fixture::new(4);
    let me = f.non_proposer(H, 0);
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    let propose_timeout = Input::Timeout(Timeout {
        height: Height(H),
        round: Round(0),
        kind: TimeoutKind::Propose,
    });

    let mut node = f.node(me, H);
    node.start();
    node.step(propose_timeout.clone());
    node.step(f.vote(VoteKind::Prevote, H, 0, None, others[0]));
    let out = node.step(f.vote(VoteKind::Prevote, H, 0, None, others[1]));
    assert_eq!(
        kinds(&broadcast_votes(&out)),
        vec![(VoteKind::Precommit, None)]
    );

    // Split prevotes: a quorum of "anything" schedules the timeout (L34), which precommits
    // nil (L61).
    let mut node = f.node(me, H);
    node.start();
    node.step(propose_timeout);
    let x = Some(BlockHash::of(b"x"));
    node.step(f.vote(VoteKind::Prevote, H, 0, x, others[0]));
    let out = node.step(f.vote(VoteKind::Prevote, H, 0, x, others[1]));
    assert!(
        broadcast_votes(&out).is_empty(),
        "no proposal for x: no L36"
    );
    let t = timeouts(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].kind, TimeoutKind::Prevote);
    let out = node.step(Input::Timeout(t[0]));
    assert_eq!(
        kinds(&broadcast_votes(&out)),
        vec![(VoteKind::Precommit, None)]
    );
}

#[test]
fn l47_precommit_timeout_starts_the_next_round_l65() {
    let f = Fixture::new(4);
    let me = f.non_proposer(H, 0);
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    let mut node = f.node(me, H);
    node.start();
    node.step(f.vote(VoteKind::Precommit, H, 0, None, others[0]));
    node.step(f.vote(VoteKind::Precommit, H, 0, None, others[1]));
    let out = node.step(f.vote(
        VoteKind::Precommit,
        H,
        0,
        Some(BlockHash::of(b"z")),
        others[2],
    ));
    let t = timeouts(&out);
    assert_eq!(t.len(), 1, "{out:?}");
    assert_eq!(t[0].kind, TimeoutKind::Precommit);
    // A later quorum in the same round does not schedule it again.
    assert!(
        node.step(f.vote(VoteKind::Precommit, H, 0, None, me))
            .is_empty()
    );
    let out = node.step(Input::Timeout(t[0]));
    assert_eq!(node.round(), Round(1));
    assert_eq!(node.current_step(), Step::Propose);
    let t = timeouts(&out);
    assert_eq!(t[0].round, Round(1));
    // The timeout grows with the round.
    let cfg = TimeoutConfig::default();
    assert!(
        cfg.duration_ms(TimeoutKind::Propose, Round(1))
            > cfg.duration_ms(TimeoutKind::Propose, Round(0))
    );
    assert_eq!(
        cfg.duration_ms(TimeoutKind::Propose, Round(1_000_000)),
        cfg.timeout_ms_max
    );
}

#[test]
fn l55_skips_to_a_round_with_f_plus_one_votes() {
    let f = Fixture::new(4);
    let me = f.non_proposer(H, 0);
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    let mut node = f.node(me, H);
    node.start();
    // One validator (f) in round 5 is not enough ...
    node.step(f.vote(VoteKind::Prevote, H, 5, None, others[0]));
    assert_eq!(node.round(), Round(0));
    // ... f+1 is.
    node.step(f.vote(VoteKind::Precommit, H, 5, None, others[1]));
    assert_eq!(node.round(), Round(5));
    // Far-future rounds are dropped, however many validators.
    for i in &others {
        node.step(f.vote(VoteKind::Prevote, H, 5 + FUTURE_ROUNDS_MAX + 1, None, *i));
    }
    assert_eq!(node.round(), Round(5));
}

/// Sees round 0 propose b and two others prevote it: with its own prevote, a quorum, so it
/// precommits and locks on b. The outputs of the last step.
fn prevote_quorum_on_b(f: &Fixture, me: usize) -> (Consensus<MemoryStore>, Vec<Output>) {
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    let b = BlockHash::of(b"b");
    let mut node = f.node(me, H);
    node.start();
    node.step(f.proposal(H, 0, b"b", None));
    node.step(Input::BlockValidity {
        height: Height(H),
        block: b,
        valid: true,
    });
    node.step(f.vote(VoteKind::Prevote, H, 0, Some(b), others[0]));
    let out = node.step(f.vote(VoteKind::Prevote, H, 0, Some(b), others[1]));
    (node, out)
}

/// Locks on b in round 0, then sees round 1 propose c.
fn locked_node(f: &Fixture, me: usize) -> Consensus<MemoryStore> {
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    let b = BlockHash::of(b"b");
    let (mut node, _) = prevote_quorum_on_b(f, me);
    assert_eq!(node.locked(), Some((Round(0), b)));
    // Round 0 fails to commit: precommit timeout.
    node.step(f.vote(VoteKind::Precommit, H, 0, None, others[0]));
    let out = node.step(f.vote(VoteKind::Precommit, H, 0, None, others[1]));
    let t = timeouts(&out)[0];
    node.step(Input::Timeout(t));
    assert_eq!(node.round(), Round(1));
    node
}

#[test]
fn the_lock_holds_against_a_fresh_proposal_l22() {
    let f = Fixture::new(4);
    let me = (0..4)
        .find(|i| *i != f.proposer(H, 0) && *i != f.proposer(H, 1))
        .unwrap();
    let mut node = locked_node(&f, me);
    let c = BlockHash::of(b"c");
    node.step(f.proposal(H, 1, b"c", None));
    let out = node.step(Input::BlockValidity {
        height: Height(H),
        block: c,
        valid: true,
    });
    assert_eq!(kinds(&broadcast_votes(&out)), vec![prevote(None)]);
}

#[test]
fn a_newer_proof_of_lock_unlocks_l28() {
    let f = Fixture::new(4);
    let me = (0..4)
        .find(|i| *i != f.proposer(H, 0) && *i != f.proposer(H, 2))
        .unwrap();
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    let mut node = locked_node(&f, me);
    let c = BlockHash::of(b"c");
    // Round 1: the others prevote c (we time out and prevote nil), nobody commits.
    for i in &others {
        node.step(f.vote(VoteKind::Prevote, H, 1, Some(c), *i));
    }
    // Round 2 reproposes c with proof-of-lock round 1 >= our locked round 0.
    for i in &others[..2] {
        node.step(f.vote(VoteKind::Prevote, H, 2, None, *i));
    }
    assert_eq!(node.round(), Round(2));
    node.step(f.proposal(H, 2, b"c", Some(1)));
    let out = node.step(Input::BlockValidity {
        height: Height(H),
        block: c,
        valid: true,
    });
    assert_eq!(kinds(&broadcast_votes(&out)), vec![prevote(Some(c))]);
}

#[test]
fn an_older_proof_of_lock_does_not_unlock_l28() {
    let f = Fixture::new(4);
    let me = (0..4)
        .find(|i| *i != f.proposer(H, 1) && *i != f.proposer(H, 2))
        .unwrap();
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    let (b, c) = (BlockHash::of(b"b"), BlockHash::of(b"c"));
    let mut node = f.node(me, H);
    node.start();
    // Round 0: the others prevote c, we never see its proposal; nobody commits.
    for i in &others {
        node.step(f.vote(VoteKind::Prevote, H, 0, Some(c), *i));
    }
    for i in &others {
        node.step(f.vote(VoteKind::Precommit, H, 0, None, *i));
    }
    assert_eq!(node.round(), Round(0));
    node.step(Input::Timeout(Timeout {
        height: Height(H),
        round: Round(0),
        kind: TimeoutKind::Precommit,
    }));
    // Round 1: we lock on b.
    node.step(f.proposal(H, 1, b"b", None));
    node.step(Input::BlockValidity {
        height: Height(H),
        block: b,
        valid: true,
    });
    node.step(f.vote(VoteKind::Prevote, H, 1, Some(b), others[0]));
    node.step(f.vote(VoteKind::Prevote, H, 1, Some(b), others[1]));
    assert_eq!(node.locked(), Some((Round(1), b)));
    for i in &others[..2] {
        node.step(f.vote(VoteKind::Precommit, H, 2, None, *i));
    }
    assert_eq!(node.round(), Round(2));
    // Round 2 reproposes c with proof-of-lock round 0, older than our lock: prevote nil.
    node.step(f.proposal(H, 2, b"c", Some(0)));
    let out = node.step(Input::BlockValidity {
        height: Height(H),
        block: c,
        valid: true,
    });
    assert_eq!(kinds(&broadcast_votes(&out)), vec![prevote(None)]);
}

#[test]
fn conflicting_votes_give_evidence_once_and_are_not_counted() {
    let f = Fixture::new(4);
    let me = f.non_proposer(H, 0);
    let bad = (me + 1) % 4;
    let mut node = f.node(me, H);
    node.start();
    node.step(f.vote(VoteKind::Prevote, H, 0, None, bad));
    let out = node.step(f.vote(VoteKind::Prevote, H, 0, Some(BlockHash::of(b"x")), bad));
    let e = evidence(&out);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].validator(), ValidatorIndex(bad as u32));
    assert_eq!(e[0].verify(&f.set, CHAIN), Ok(()));
    let out = node.step(f.vote(VoteKind::Prevote, H, 0, Some(BlockHash::of(b"y")), bad));
    assert!(evidence(&out).is_empty(), "reported once");
}

#[test]
fn conflicting_proposals_give_evidence() {
    let f = Fixture::new(4);
    let mut node = f.node(f.non_proposer(H, 0), H);
    node.start();
    node.step(f.proposal(H, 0, b"one", None));
    let out = node.step(f.proposal(H, 0, b"two", None));
    let e = evidence(&out);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind(), EquivocationKind::Proposal);
    assert_eq!(e[0].verify(&f.set, CHAIN), Ok(()));
}

#[test]
fn catch_up_with_a_certificate() {
    let f = Fixture::new(4);
    let mut node = f.node(0, H);
    node.start();
    // Too few signers: ignored.
    let weak = f.certificate(H, 3, b"b", &[1, 2]);
    let out = node.step(Input::Decided {
        block: b"b".to_vec(),
        certificate: weak,
    });
    assert!(decisions(&out).is_empty());
    // Block bytes that do not match: ignored.
    let cert = f.certificate(H, 3, b"b", &[1, 2, 3]);
    let out = node.step(Input::Decided {
        block: b"other".to_vec(),
        certificate: cert.clone(),
    });
    assert!(decisions(&out).is_empty());
    let out = node.step(Input::Decided {
        block: b"b".to_vec(),
        certificate: cert,
    });
    assert_eq!(decisions(&out).len(), 1);
    assert_eq!(node.height(), Height(H + 1));
}

#[test]
fn messages_for_the_next_height_are_buffered_and_replayed() {
    let f = Fixture::new(4);
    let me = f.non_proposer(H + 1, 0);
    let mut node = f.node(me, H);
    node.start();
    node.step(f.proposal(H + 1, 0, b"next", None));
    let cert = f.certificate(H, 0, b"b", &[0, 1, 2, 3]);
    let out = node.step(Input::Decided {
        block: b"b".to_vec(),
        certificate: cert,
    });
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::ValidateBlock { height, .. } if *height == Height(H + 1))),
        "{out:?}"
    );
}

#[test]
fn a_restarted_validator_keeps_its_lock_and_does_not_sign_again() {
    let f = Fixture::new(4);
    let me = (0..4)
        .find(|i| *i != f.proposer(H, 0) && *i != f.proposer(H, 1))
        .unwrap();
    let node = locked_node(&f, me);
    let store = node.into_signer().unwrap().into_store();
    let mut restarted = f.node_with_store(me, H, store);
    restarted.start();
    assert_eq!(restarted.locked(), Some((Round(0), BlockHash::of(b"b"))));
    assert_eq!(restarted.round(), Round(0));
    assert_eq!(restarted.current_step(), Step::Precommit);
    // Round 1 proposes c fresh: the lock still holds.
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    restarted.step(f.vote(VoteKind::Precommit, H, 1, None, others[0]));
    restarted.step(f.vote(VoteKind::Precommit, H, 1, None, others[1]));
    assert_eq!(restarted.round(), Round(1));
    restarted.step(f.proposal(H, 1, b"c", None));
    let out = restarted.step(Input::BlockValidity {
        height: Height(H),
        block: BlockHash::of(b"c"),
        valid: true,
    });
    assert_eq!(kinds(&broadcast_votes(&out)), vec![prevote(None)]);
}

/// The liveness half of crash recovery (Tendermint's WAL): a validator that saw b get a
/// prevote quorum (its valid value) crashes; restarted with the `Persist` record it stored,
/// it proposes b again with its proof-of-lock round when its turn comes, where without the
/// record it would have lost the bytes of the block it is locked on.
#[test]
fn a_restarted_validator_re_proposes_the_valid_value_it_persisted() {
    let f = Fixture::new(4);
    let me = f.proposer(H, 1);
    assert_ne!(me, f.proposer(H, 0), "the fixture's rotation changed");
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    let b = BlockHash::of(b"b");
    let (node, out) = prevote_quorum_on_b(&f, me);
    let record = out
        .iter()
        .find_map(|o| match o {
            Output::Persist(record) => Some(record.clone()),
            _ => None,
        })
        .expect("a prevote quorum for a valid block is persisted");
    assert_eq!((record.height, record.round), (Height(H), Round(0)));
    assert_eq!(record.block, b"b".to_vec());

    // The crash: only the signer's store and the persisted record survive.
    let store = node.into_signer().unwrap().into_store();
    for recovered in [true, false] {
        let mut restarted = f.node_with_store(me, H, store.clone());
        if recovered {
            restarted.recover(record.clone()).unwrap();
        }
        restarted.start();
        // Round 0 fails to commit; round 1 is this validator's.
        restarted.step(f.vote(VoteKind::Precommit, H, 0, None, others[0]));
        let out = restarted.step(f.vote(VoteKind::Precommit, H, 0, None, others[1]));
        let timeout = timeouts(&out)[0];
        let out = restarted.step(Input::Timeout(timeout));
        assert_eq!(restarted.round(), Round(1));
        let proposed = out.iter().find_map(|o| match o {
            Output::Broadcast(Message::Proposal { proposal, block }) => {
                Some((proposal.proposal, block.clone()))
            }
            _ => None,
        });
        if recovered {
            let (proposal, bytes) = proposed.expect("the recovered validator proposes at once");
            assert_eq!((proposal.block, bytes), (b, b"b".to_vec()));
            assert_eq!(proposal.pol_round, Some(Round(0)));
        } else {
            assert!(
                proposed.is_none(),
                "without the record it has no bytes for b and cannot re-propose it: {out:?}"
            );
        }
    }

    // A record for another height, or without a quorum of prevotes, is refused.
    let mut later = f.node_with_store(me, H + 1, MemoryStore::new());
    assert!(later.recover(record.clone()).is_err());
    let mut thin = record.clone();
    thin.prevotes.truncate(2);
    assert!(f.node(me, H).recover(thin).is_err());
}

#[test]
fn messages_signed_against_another_set_are_ignored() {
    let f = Fixture::new(4);
    let other = Fixture::new(5);
    let mut node = f.node(f.non_proposer(H, 0), H);
    node.start();
    // Validator 0 has the same key in both fixtures, but the message was checked against a
    // different set.
    let m = Message::Vote(other.signed_vote(VoteKind::Precommit, H, 0, None, 0));
    let verified = verify_message(m, &other.set, CHAIN).unwrap();
    node.step(Input::Message(verified));
    let mut scheduled = Vec::new();
    for i in 1..3 {
        scheduled.extend(timeouts(&node.step(f.vote(
            VoteKind::Precommit,
            H,
            0,
            None,
            i,
        ))));
    }
    // Two counted precommits of four: no quorum, no L47 timeout.
    assert!(scheduled.is_empty());
    let out = node.step(f.vote(VoteKind::Precommit, H, 0, None, 3));
    assert_eq!(
        timeouts(&out).len(),
        1,
        "the third counted precommit makes a quorum"
    );
}
