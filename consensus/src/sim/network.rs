//! The simulated network's faults, drawn per scenario.

use rand_chacha::ChaCha8Rng;

use super::{below, chance};

/// How the network misbehaves in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkFaults {
    /// Each message copy is lost with this probability (percent).
    pub loss_pct: u32,
    /// Each message copy is delivered twice with this probability (percent).
    pub duplicate_pct: u32,
    /// Delivery delay, uniform in [min, max]: independent per copy, so messages reorder.
    pub delay_ms_min: u64,
    pub delay_ms_max: u64,
    /// Partitions (before healing): how many, each splitting the nodes in two for a while.
    pub partitions: u32,
    /// Crash-restarts of honest nodes (before healing).
    pub crashes: u32,
    /// After an honest node broadcasts a proposal or a precommit, it crashes with this
    /// probability (percent), before healing, as long as crashes are left.
    pub crash_after_send_pct: u32,
    /// Local clocks run at (100 ± skew)% of simulated time.
    pub clock_skew_pct: u32,
}

impl NetworkFaults {
    /// No faults: a perfect network with a small fixed delay.
    pub fn none() -> NetworkFaults {
        NetworkFaults {
            loss_pct: 0,
            duplicate_pct: 0,
            delay_ms_min: 10,
            delay_ms_max: 10,
            partitions: 0,
            crashes: 0,
            crash_after_send_pct: 0,
            clock_skew_pct: 0,
        }
    }

    pub(crate) fn random(rng: &mut ChaCha8Rng) -> NetworkFaults {
        let delay_ms_min = 1 + below(rng, 20);
        NetworkFaults {
            loss_pct: below(rng, 16) as u32,
            duplicate_pct: below(rng, 10) as u32,
            delay_ms_min,
            delay_ms_max: delay_ms_min + below(rng, 200),
            partitions: below(rng, 3) as u32,
            crashes: below(rng, 4) as u32,
            crash_after_send_pct: if chance(rng, 30) { 5 } else { 0 },
            clock_skew_pct: below(rng, 30) as u32,
        }
    }
}
