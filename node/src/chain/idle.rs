//! Quiet when idle: a height with nothing to commit does not start until it has something,
//! or until the genesis's heartbeat is due.
//!
//! Why: Tendermint proposes a block every height, so an idle chain used to commit about ten
//! empty blocks a second, each stored, synced, verified and scanned by every report (864,000
//! a day). Here the host holds back what starts round 0 of a height (the proposer's
//! [`Output::RequestBlock`] and every validator's propose timeout) while its mempool has no
//! transaction ready to commit, no evidence and no validator update waits, and lets them go
//! as soon as one arrives (so no transaction waits for the heartbeat) or when the heartbeat
//! fires, whichever comes first.
//!
//! Holding a timeout back only makes it late, which consensus must survive anyway: safety
//! does not depend on timing, and the state machine stays as it was. A validator that holds
//! still takes part: a proposal from a proposer that had work is prevoted as usual. Later
//! rounds are never held (a round failed, so someone had work).

use tally_consensus::{Height, Output, Round, TimeoutKind};

/// Round 0's outputs held back, and the heartbeat of the current height.
#[derive(Debug, Default)]
pub(super) struct IdleWait {
    held: Vec<Output>,
    /// The height whose heartbeat timer was started, and whether it has fired.
    heartbeat: Option<(Height, bool)>,
}

/// The height and round an output starts a round with, if it is one that waits for work.
fn round_start(output: &Output) -> Option<(Height, Round)> {
    match output {
        Output::RequestBlock { height, round } => Some((*height, *round)),
        Output::ScheduleTimeout { timeout, .. } if timeout.kind == TimeoutKind::Propose => {
            Some((timeout.height, timeout.round))
        }
        _ => None,
    }
}

impl IdleWait {
    /// Whether `output` waits: it starts round 0 of the current height, there is no work,
    /// and the height's heartbeat has not fired.
    pub(super) fn waits(&self, output: &Output, current: Height, has_work: bool) -> bool {
        round_start(output).is_some_and(|(height, round)| {
            height == current && round == Round(0) && !has_work && !self.due(current)
        })
    }

    /// Holds back an output that [`IdleWait::waits`]. True if it is the first of its height:
    /// the caller starts the height's heartbeat timer.
    pub(super) fn hold(&mut self, output: Output, current: Height) -> bool {
        self.held
            .retain(|h| round_start(h).is_some_and(|(at, _)| at == current));
        self.held.push(output);
        let first = self.heartbeat.is_none_or(|(at, _)| at != current);
        if first {
            self.heartbeat = Some((current, false));
        }
        first
    }

    /// The heartbeat timer of `height` fired. True if it ends a wait (outputs were held):
    /// the chain was idle for a whole heartbeat.
    pub(super) fn heartbeat(&mut self, height: Height) -> bool {
        match &mut self.heartbeat {
            Some((at, fired)) if *at == height => {
                *fired = true;
                self.held
                    .iter()
                    .any(|h| round_start(h).is_some_and(|(at, _)| at == height))
            }
            _ => false,
        }
    }

    /// The held outputs of the current height, once there is work or its heartbeat fired;
    /// those of past heights are dropped (the height was decided without them).
    pub(super) fn release(&mut self, current: Height, has_work: bool) -> Vec<Output> {
        if self.held.is_empty() || !(has_work || self.due(current)) {
            return Vec::new();
        }
        std::mem::take(&mut self.held)
            .into_iter()
            .filter(|h| round_start(h).is_some_and(|(at, _)| at == current))
            .collect()
    }

    fn due(&self, height: Height) -> bool {
        self.heartbeat == Some((height, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_consensus::Timeout;

    fn request(height: u64, round: u32) -> Output {
        Output::RequestBlock {
            height: Height(height),
            round: Round(round),
        }
    }

    fn propose_timeout(height: u64, round: u32) -> Output {
        Output::ScheduleTimeout {
            timeout: Timeout {
                height: Height(height),
                round: Round(round),
                kind: TimeoutKind::Propose,
            },
            duration_ms: 1_000,
        }
    }

    /// Offers `output` as the chain task does: held if it waits. `Some(first of its
    /// height)` if held, `None` if it is carried out.
    fn offer(idle: &mut IdleWait, output: Output, current: Height, has_work: bool) -> Option<bool> {
        idle.waits(&output, current, has_work)
            .then(|| idle.hold(output, current))
    }

    fn held(answer: Option<bool>) -> bool {
        answer.is_some()
    }

    #[test]
    fn round_zero_waits_for_work_and_goes_the_moment_it_comes() {
        let mut idle = IdleWait::default();
        let h = Height(5);
        assert_eq!(
            offer(&mut idle, propose_timeout(5, 0), h, false),
            Some(true)
        );
        assert_eq!(offer(&mut idle, request(5, 0), h, false), Some(false));
        assert!(idle.release(h, false).is_empty(), "nothing came yet");
        assert_eq!(
            idle.release(h, true),
            vec![propose_timeout(5, 0), request(5, 0)]
        );
        assert!(idle.release(h, true).is_empty(), "released once");
    }

    #[test]
    fn the_heartbeat_lets_an_idle_height_start() {
        let mut idle = IdleWait::default();
        let h = Height(5);
        assert!(held(offer(&mut idle, request(5, 0), h, false)));
        assert!(!idle.heartbeat(Height(4)), "another height's timer");
        assert!(idle.release(h, false).is_empty());
        assert!(idle.heartbeat(h), "it ends a wait");
        assert_eq!(idle.release(h, false), vec![request(5, 0)]);
        // Once due, nothing more of this height is held.
        assert!(!held(offer(&mut idle, propose_timeout(5, 0), h, false)));
    }

    #[test]
    fn other_outputs_later_rounds_and_busy_heights_are_never_held() {
        let mut idle = IdleWait::default();
        let h = Height(5);
        assert!(!held(offer(&mut idle, request(5, 1), h, false)));
        assert!(!held(offer(&mut idle, propose_timeout(5, 2), h, false)));
        assert!(!held(offer(&mut idle, request(5, 0), h, true)));
        assert!(
            !held(offer(&mut idle, request(6, 0), h, false)),
            "not current"
        );
        let prevote = Output::ScheduleTimeout {
            timeout: Timeout {
                height: h,
                round: Round(0),
                kind: TimeoutKind::Prevote,
            },
            duration_ms: 500,
        };
        assert!(!held(offer(&mut idle, prevote, h, false)));
    }

    #[test]
    fn a_height_decided_while_waiting_leaves_nothing_behind() {
        let mut idle = IdleWait::default();
        assert!(held(offer(&mut idle, request(5, 0), Height(5), false)));
        // Height 5 was decided on another proposer's block; height 6 waits in turn.
        assert_eq!(
            offer(&mut idle, propose_timeout(6, 0), Height(6), false),
            Some(true)
        );
        assert!(!idle.heartbeat(Height(5)), "the old timer is stale");
        assert_eq!(
            idle.release(Height(6), true),
            vec![propose_timeout(6, 0)],
            "height 5's request is gone"
        );
    }
}
