//! Batch and single verification of consensus messages agree, on valid, mutated and
//! non-canonical signatures; and decoding accepts only canonical encodings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use proptest::prelude::*;
use tally_consensus::crypto::KeyCache;
use tally_consensus::*;

/// The group order L, little-endian: S + L is a non-canonical encoding of the same scalar.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn add_l(s: &mut [u8]) {
    let mut carry = 0u16;
    for (b, l) in s.iter_mut().zip(L) {
        let sum = u16::from(*b) + u16::from(l) + carry;
        *b = sum as u8;
        carry = sum >> 8;
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    None,
    FlipBit(usize),
    NonCanonicalS,
    ZeroR,
    OtherValidator,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => Just(Mutation::None),
        2 => (0usize..512).prop_map(Mutation::FlipBit),
        1 => Just(Mutation::NonCanonicalS),
        1 => Just(Mutation::ZeroR),
        1 => Just(Mutation::OtherValidator),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn batch_and_single_agree(items in proptest::collection::vec((0usize..7, 0u32..4, any::<bool>(), mutation()), 1..24)) {
        let f = Fixture::new(7);
        let mut messages = Vec::new();
        for (from, round, prevote, m) in items {
            let kind = if prevote { VoteKind::Prevote } else { VoteKind::Precommit };
            let mut v = f.signed_vote(kind, 2, round, Some(BlockHash::of(&[round as u8])), from);
            match m {
                Mutation::None => {}
                Mutation::FlipBit(bit) => v.signature.0[bit / 8] ^= 1 << (bit % 8),
                Mutation::NonCanonicalS => add_l(&mut v.signature.0[32..]),
                Mutation::ZeroR => v.signature.0[..32].fill(0),
                Mutation::OtherValidator => v.vote.validator = ValidatorIndex(((from + 1) % 7) as u32),
            }
            messages.push(Message::Vote(v));
        }
        let single: Vec<bool> = messages
            .iter()
            .map(|m| verify_message(m.clone(), &f.set, CHAIN).is_ok())
            .collect();
        let batch: Vec<bool> = verify_messages(messages, &f.sets, CHAIN, &mut KeyCache::default())
            .into_iter()
            .map(|r| r.is_ok())
            .collect();
        prop_assert_eq!(single, batch);
    }

    #[test]
    fn decoding_accepts_only_canonical_bytes(
        round in 0u32..100_000,
        at in 0usize..200,
        byte in any::<u8>(),
        insert in any::<bool>(),
    ) {
        let f = Fixture::new(4);
        let v = f.signed_vote(VoteKind::Prevote, 1_000_000, round, None, 1);
        let mut bytes = Message::Vote(v).encode();
        let at = at % (bytes.len() + 1);
        if insert {
            bytes.insert(at, byte);
        } else if at < bytes.len() {
            bytes[at] = byte;
        }
        if let Ok(m) = Message::decode(&bytes) {
            // Whatever decodes re-encodes to exactly the input ...
            prop_assert_eq!(m.encode(), bytes.clone());
            // ... and batch and single verification agree on it.
            let single = verify_message(m.clone(), &f.set, CHAIN).is_ok();
            let batch = verify_messages(vec![m], &f.sets, CHAIN, &mut KeyCache::default())
                .pop()
                .is_some_and(|r| r.is_ok());
            prop_assert_eq!(single, batch);
        }
    }
}

#[test]
fn a_mutated_signature_fails_both_ways() {
    let f = Fixture::new(4);
    let mut v = f.signed_vote(VoteKind::Prevote, 1, 0, None, 1);
    add_l(&mut v.signature.0[32..]);
    let m = Message::Vote(v);
    assert!(verify_message(m.clone(), &f.set, CHAIN).is_err());
    let r = verify_messages(vec![m], &f.sets, CHAIN, &mut KeyCache::default());
    assert!(r[0].is_err());
}
