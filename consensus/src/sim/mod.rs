//! A seeded, deterministic simulator: whole networks of [`Consensus`] nodes in one process,
//! over a simulated network with delay, loss, duplication, reordering, partitions that heal,
//! clock skew and crash-restart, with up to f Byzantine validators. Every random choice comes
//! from one ChaCha stream seeded by [`Scenario::seed`], every map is ordered, and time is a
//! counter: a seed replays a run exactly.
//!
//! After a run, [`Report::violations`] lists every broken property:
//! - agreement: two honest nodes decided different blocks at one height;
//! - a decision whose certificate does not verify against the set in force at its height;
//! - evidence that does not verify, or names an honest validator;
//! - an equivocation an honest node saw (two conflicting signed messages of one validator for
//!   one slot, both delivered while it was at that height) without emitting evidence for it;
//! - liveness: an honest node that decided fewer than [`Scenario::liveness_heights`] new
//!   heights within [`Scenario::liveness_ms_max`] after the network healed.
//!
//! [`Consensus`]: crate::Consensus

mod network;
mod node;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::BTreeMap;

pub use network::NetworkFaults;

use crate::PlantedBugs;

/// The chain id every simulated node uses.
pub const SIM_CHAIN_ID: &str = "tally-sim";

/// How a faulty validator misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Behaviour {
    /// Proposes two different blocks for its rounds, each to part of the network first.
    EquivocatingProposer,
    /// Signs a second, conflicting vote for every vote it casts and sends both.
    DoubleVoter,
    /// Sends nothing.
    Silent,
    /// Forgets its lock (prevotes for any valid proposal) and withholds each message copy
    /// half the time, so different peers see different quorums.
    Amnesia,
    /// Sends votes with bad signatures, votes in other validators' names, votes for blocks
    /// nobody proposed, undecodable and non-canonical bytes, and proposes invalid blocks.
    BadSender,
}

impl Behaviour {
    pub const ALL: [Behaviour; 5] = [
        Behaviour::EquivocatingProposer,
        Behaviour::DoubleVoter,
        Behaviour::Silent,
        Behaviour::Amnesia,
        Behaviour::BadSender,
    ];

    /// True if this behaviour signs conflicting messages (and must be caught).
    pub fn equivocates(self) -> bool {
        matches!(
            self,
            Behaviour::EquivocatingProposer | Behaviour::DoubleVoter
        )
    }
}

/// One simulated run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub seed: u64,
    pub n: usize,
    /// Faulty validators by index, at most f = (n - 1) / 3 of them.
    pub byzantine: BTreeMap<usize, Behaviour>,
    pub faults: NetworkFaults,
    /// From this time on there are no partitions and no crashes.
    pub heal_ms: u64,
    /// Liveness: every honest node decides at least this many heights after healing ...
    pub liveness_heights: u64,
    /// ... within this long.
    pub liveness_ms_max: u64,
    /// A validator-set change (one honest validator's power doubles) takes effect here.
    pub set_change_at: Option<u64>,
    /// Bugs planted in every honest node (sensitivity tests).
    pub planted: PlantedBugs,
    /// Plant the signer that releases signatures before persisting them.
    pub signer_persists_late: bool,
}

impl Scenario {
    /// The scenario a seed stands for at size `n`: faults, Byzantine validators (0 to f,
    /// with behaviours), partitions and crashes, all drawn from the seed.
    pub fn random(seed: u64, n: usize) -> Scenario {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5ce0_a110);
        let f = n.saturating_sub(1) / 3;
        let faulty = (rng.next_u64() % (f as u64 + 1)) as usize;
        let mut byzantine = BTreeMap::new();
        while byzantine.len() < faulty {
            let who = (rng.next_u64() % n as u64) as usize;
            let behaviour = Behaviour::ALL
                .get((rng.next_u64() % Behaviour::ALL.len() as u64) as usize)
                .copied()
                .unwrap_or(Behaviour::Silent);
            byzantine.entry(who).or_insert(behaviour);
        }
        let heal_ms = 1_500 + rng.next_u64() % 3_000;
        let set_change_at = (rng.next_u64() % 3 == 0).then(|| 2 + rng.next_u64() % 4);
        Scenario {
            seed,
            n,
            byzantine,
            faults: NetworkFaults::random(&mut rng),
            heal_ms,
            liveness_heights: 3,
            liveness_ms_max: 60_000,
            set_change_at,
            planted: PlantedBugs::default(),
            signer_persists_late: false,
        }
    }

    pub fn is_byzantine(&self, node: usize) -> bool {
        self.byzantine.contains_key(&node)
    }
}

/// What a run did and what it broke.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub violations: Vec<String>,
    /// Decisions by honest nodes (each node's decision of each height counts once).
    pub decisions: u64,
    /// The highest height every honest node decided.
    pub common_height: u64,
    /// Consensus messages sent (each copy to each peer counts).
    pub messages: u64,
    pub evidence: u64,
    pub sim_ms: u64,
    /// Each node's position at the end (height, round, step, lock), for replays.
    pub nodes: Vec<String>,
}

/// The command that replays one seed of the default simulation test.
pub fn replay_command(seed: u64, n: usize) -> String {
    format!(
        "TALLY_SIM_SEED={seed} TALLY_SIM_N={n} cargo test -p tally-consensus --test simulation replay -- --nocapture"
    )
}

/// Runs a scenario to the end and checks it.
pub fn run(scenario: &Scenario) -> Report {
    node::World::new(scenario).run()
}

/// A random number below `n` (0 when `n` is 0).
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    if n == 0 { 0 } else { rng.next_u64() % n }
}

/// True with probability `pct`/100.
fn chance(rng: &mut ChaCha8Rng, pct: u32) -> bool {
    below(rng, 100) < u64::from(pct)
}
