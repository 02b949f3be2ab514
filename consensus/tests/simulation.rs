//! Whole networks in one process, seeded: at least 500 seeds across n = 4, 7 and 10 with
//! network faults, crash-restarts and Byzantine validators, checked for agreement, valid
//! certificates, caught equivocation and liveness after healing. `TALLY_SIM_SEEDS` raises the
//! count; a failure prints the command that replays it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use tally_consensus::PlantedBugs;
use tally_consensus::sim::{Report, Scenario, replay_command, run};

const SEEDS_DEFAULT: u64 = 510;

fn seeds_total() -> u64 {
    std::env::var("TALLY_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS_DEFAULT)
}

/// This size's share of the seeds: 40% at n = 4, 35% at n = 7, 25% at n = 10.
fn seeds_for(n: usize) -> u64 {
    let total = seeds_total();
    match n {
        4 => total * 40 / 100,
        7 => total * 35 / 100,
        _ => total - total * 40 / 100 - total * 35 / 100,
    }
}

fn run_many(n: usize) {
    let count = seeds_for(n);
    let mut failures = Vec::new();
    let (mut decisions, mut byzantine_runs, mut evidence) = (0, 0, 0);
    for seed in 0..count {
        let scenario = Scenario::random(seed, n);
        byzantine_runs += u64::from(!scenario.byzantine.is_empty());
        let report = run(&scenario);
        decisions += report.decisions;
        evidence += report.evidence;
        if !report.violations.is_empty() {
            eprintln!("seed {seed} n={n} failed: {:#?}", report.violations);
            eprintln!("replay: {}", replay_command(seed, n));
            failures.push(seed);
        }
    }
    eprintln!(
        "n={n}: {count} seeds ({byzantine_runs} with Byzantine validators), {decisions} honest decisions, {evidence} evidence"
    );
    assert!(failures.is_empty(), "n={n}: failing seeds {failures:?}");
}

#[test]
fn seeds_n4() {
    run_many(4);
}

#[test]
fn seeds_n7() {
    run_many(7);
}

#[test]
fn seeds_n10() {
    run_many(10);
}

/// Replays one seed: `TALLY_SIM_SEED=.. TALLY_SIM_N=.. cargo test -p tally-consensus --test
/// simulation replay -- --nocapture`. Without the variables it runs seed 0 at n = 4.
#[test]
fn replay() {
    let seed = std::env::var("TALLY_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let n = std::env::var("TALLY_SIM_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let scenario = Scenario::random(seed, n);
    eprintln!("{scenario:#?}");
    let report = run(&scenario);
    eprintln!("{report:#?}");
    assert!(report.violations.is_empty());
}

#[test]
fn a_seed_replays_exactly() {
    let scenario = Scenario::random(42, 7);
    let a: Report = run(&scenario);
    let b: Report = run(&scenario);
    assert_eq!(a, b);
    assert!(a.decisions > 0);
}

/// Runs the default seeds (the n = 4 share, then n = 7) with a bug planted until one run
/// reports a violation that the same run without the bug does not; returns that violation.
fn first_caught(
    shape: impl Fn(&mut Scenario),
    plant: impl Fn(&mut Scenario),
) -> Option<(u64, usize, String)> {
    for n in [4, 7] {
        for seed in 0..seeds_for(n) {
            let mut scenario = Scenario::random(seed, n);
            shape(&mut scenario);
            let clean = scenario.clone();
            plant(&mut scenario);
            let report = run(&scenario);
            if let Some(v) = report.violations.first()
                && run(&clean).violations.is_empty()
            {
                return Some((seed, n, v.clone()));
            }
        }
    }
    None
}

#[test]
fn planted_quorum_of_2f_is_caught() {
    let caught = first_caught(
        |_| {},
        |s| {
            s.planted = PlantedBugs {
                quorum_2f: true,
                ..PlantedBugs::default()
            }
        },
    );
    eprintln!("quorum 2f: {caught:?}");
    assert!(caught.is_some());
}

#[test]
fn planted_ignore_lock_is_caught() {
    // The lock matters only when some nodes decided a block and the others, some locked on
    // it, move on and see a fresh block: a Byzantine node that forgets its own lock and
    // withholds messages from some peers sets that up.
    let caught = first_caught(
        |s| {
            s.byzantine = [(0, tally_consensus::sim::Behaviour::Amnesia)].into();
            // Enough loss that a block is often decided by some nodes while others move on
            // to the next round.
            s.faults.loss_pct = s.faults.loss_pct.max(25);
        },
        |s| {
            s.planted = PlantedBugs {
                ignore_lock: true,
                ..PlantedBugs::default()
            }
        },
    );
    eprintln!("ignore lock: {caught:?}");
    assert!(caught.is_some());
}

#[test]
fn planted_late_persisting_signer_is_caught() {
    let caught = first_caught(|_| {}, |s| s.signer_persists_late = true);
    eprintln!("late persist: {caught:?}");
    assert!(caught.is_some());
}
