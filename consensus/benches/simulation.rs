//! `cargo bench -p tally-consensus`: simulated decisions per second and messages per height
//! for n = 4, 7, 10, 31 on a fault-free simulated network, and batch against single
//! signature verification of votes. Prints figures; asserts nothing about time.
#![allow(clippy::indexing_slicing)]

use std::time::Instant;
use tally_consensus::crypto::{KeyCache, SigningKey};
use tally_consensus::sim::{NetworkFaults, Scenario, run};
use tally_consensus::*;

const HEIGHTS: u64 = 40;
const VOTES: usize = 1024;

fn main() {
    println!("simulated consensus, fault-free network (10 ms delay), {HEIGHTS} heights each");
    for n in [4usize, 7, 10, 31] {
        let mut scenario = Scenario::random(1, n);
        scenario.byzantine.clear();
        scenario.faults = NetworkFaults::none();
        scenario.heal_ms = 0;
        scenario.set_change_at = None;
        scenario.liveness_heights = HEIGHTS;
        let started = Instant::now();
        let report = run(&scenario);
        let seconds = started.elapsed().as_secs_f64();
        let heights = report.common_height.max(1);
        println!(
            "n={n:>2}: {heights} heights in {seconds:.3} s wall: {:.1} decided heights/s, {:.0} messages/height, {} ms simulated/height, violations {}",
            heights as f64 / seconds,
            report.messages as f64 / heights as f64,
            report.sim_ms / heights,
            report.violations.len()
        );
    }

    let keys: Vec<SigningKey> = (0..VOTES)
        .map(|i| SigningKey::from_seed([(i % 250) as u8 + 1; 32]))
        .take(250)
        .collect();
    let set = ValidatorSet::new(
        keys.iter()
            .map(|k| Validator {
                public_key: k.public_key(),
                power: 1,
            })
            .collect(),
    )
    .unwrap_or_else(|e| panic!("bench validator set: {e}"));
    let sets = ValidatorSets::new(set.clone());
    let messages: Vec<Message> = (0..VOTES)
        .map(|i| {
            let validator = i % keys.len();
            let vote = Vote {
                kind: VoteKind::Prevote,
                height: Height(1),
                round: Round((i / keys.len()) as u32),
                block: Some(BlockHash::of(b"bench")),
                validator: ValidatorIndex(validator as u32),
            };
            let signature = keys[validator].sign(DOMAIN_PREVOTE, "bench", &vote.signing_bytes());
            Message::Vote(SignedVote { vote, signature })
        })
        .collect();
    let started = Instant::now();
    let single_ok = messages
        .iter()
        .filter(|m| verify_message((*m).clone(), &set, "bench").is_ok())
        .count();
    let single = started.elapsed().as_secs_f64();
    let mut cache = KeyCache::default();
    // Warm the key cache (a node keeps one): keys are parsed once, not per batch.
    let _ = verify_messages(messages.clone(), &sets, "bench", &mut cache);
    let started = Instant::now();
    let batch_ok = verify_messages(messages, &sets, "bench", &mut cache)
        .iter()
        .filter(|r| r.is_ok())
        .count();
    let batch = started.elapsed().as_secs_f64();
    println!(
        "vote verification, {VOTES} votes, one thread: single {:.0}/s, batch {:.0}/s ({single_ok} and {batch_ok} valid)",
        VOTES as f64 / single,
        VOTES as f64 / batch
    );
}
