//! Structuring alerts: a person who splits what would be one large transaction into several
//! that each stay just below the large-transaction threshold. Over the movements a report
//! scans, a person's movements of `floor ≤ amount < threshold` in one currency are flagged
//! when, within `window_ms` of each other, there are at least `count_min` of them adding up
//! to at least `sum_min`. Overlapping windows make one alert, so a long run of small
//! payments is one finding, not one per payment.
//!
//! Pure and deterministic: integers only, ordered maps, and the same alerts whatever order
//! the movements come in. The caller says who the person behind each movement is (the
//! paying account's identity digest), so one person's wallets are seen together.

use std::collections::BTreeMap;

use serde::Serialize;
use tally_crypto::Hash;

use crate::types::{AccountId, Amount, Currency, TimeMs};

/// What counts as structuring. Amounts are minor units of the movements' currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StructuringRule {
    /// The large-transaction threshold: a movement of at least this is reported as large
    /// anyway, so it is not structuring.
    pub threshold: Amount,
    /// "Just below": from this amount up to the threshold.
    pub floor: Amount,
    /// How close in time the movements of one finding are: from the first to the last at
    /// most this.
    pub window_ms: u64,
    /// At least this many movements just below the threshold in the window...
    pub count_min: usize,
    /// ...adding up to at least this much.
    pub sum_min: u128,
}

/// One movement as the report saw it, with the person who paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ObservedMovement {
    /// The paying account's holder (identity digest).
    pub person: Hash,
    pub account: AccountId,
    pub currency: Currency,
    pub amount: Amount,
    pub time_ms: TimeMs,
    /// Where the movement is: block height and index in the block.
    pub height: u64,
    pub index: u32,
}

/// A person's movements just below the threshold, close together in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StructuringAlert {
    pub person: Hash,
    pub currency: Currency,
    pub first_ms: TimeMs,
    pub last_ms: TimeMs,
    pub count: usize,
    pub sum: u128,
    /// The movements, oldest first.
    pub movements: Vec<ObservedMovement>,
}

/// The structuring alerts among `movements`, ordered by person, currency and time.
pub fn structuring_alerts(
    movements: &[ObservedMovement],
    rule: &StructuringRule,
) -> Vec<StructuringAlert> {
    let count_min = rule.count_min.max(1);
    let mut by_person: BTreeMap<(Hash, Currency), Vec<ObservedMovement>> = BTreeMap::new();
    for m in movements {
        if rule.floor <= m.amount && m.amount < rule.threshold {
            by_person
                .entry((m.person, m.currency))
                .or_default()
                .push(*m);
        }
    }
    let mut alerts = Vec::new();
    for ((person, currency), mut near) in by_person {
        near.sort_by_key(|m| (m.time_ms, m.height, m.index, m.account));
        // The run being built: indexes [start, end] into `near`.
        let mut run: Option<(usize, usize)> = None;
        let mut left = 0;
        let mut sum: u128 = 0;
        for (right, m) in near.iter().enumerate() {
            sum += u128::from(m.amount);
            while near
                .get(left)
                .is_some_and(|first| m.time_ms - first.time_ms > rule.window_ms)
            {
                sum -= near.get(left).map_or(0, |first| u128::from(first.amount));
                left += 1;
            }
            let count = right + 1 - left;
            if count < count_min || sum < rule.sum_min {
                continue;
            }
            run = match run {
                // This window overlaps the run: the run grows.
                Some((start, end)) if left <= end => Some((start, right)),
                Some(done) => {
                    alerts.push(alert(person, currency, &near, done));
                    Some((left, right))
                }
                None => Some((left, right)),
            };
        }
        if let Some(done) = run {
            alerts.push(alert(person, currency, &near, done));
        }
    }
    alerts
}

fn alert(
    person: Hash,
    currency: Currency,
    near: &[ObservedMovement],
    (start, end): (usize, usize),
) -> StructuringAlert {
    let movements: Vec<ObservedMovement> = near.get(start..=end).unwrap_or_default().to_vec();
    StructuringAlert {
        person,
        currency,
        first_ms: movements.first().map_or(0, |m| m.time_ms),
        last_ms: movements.last().map_or(0, |m| m.time_ms),
        count: movements.len(),
        sum: movements.iter().map(|m| u128::from(m.amount)).sum(),
        movements,
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    const HOUR_MS: u64 = 3_600_000;

    /// Threshold ¥10,000.00; just below from ¥9,000.00; three or more within a day adding
    /// up to at least the threshold.
    const RULE: StructuringRule = StructuringRule {
        threshold: 1_000_000,
        floor: 900_000,
        window_ms: 24 * HOUR_MS,
        count_min: 3,
        sum_min: 1_000_000,
    };

    fn person(n: u8) -> Hash {
        Hash::digest("person", &[n])
    }

    fn m(who: u8, account: u128, amount: Amount, hour: u64) -> ObservedMovement {
        ObservedMovement {
            person: person(who),
            account: AccountId(account),
            currency: Currency::CNY,
            amount,
            time_ms: hour * HOUR_MS,
            height: hour,
            index: 0,
        }
    }

    #[test]
    fn three_payments_just_below_within_a_day_are_flagged_once() {
        let seen = [
            m(1, 10, 950_000, 1),
            m(1, 10, 990_000, 5),
            m(1, 10, 930_000, 20),
        ];
        let alerts = structuring_alerts(&seen, &RULE);
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!((a.person, a.count, a.sum), (person(1), 3, 2_870_000));
        assert_eq!((a.first_ms, a.last_ms), (HOUR_MS, 20 * HOUR_MS));
    }

    #[test]
    fn the_same_payments_spread_over_more_than_the_window_are_not() {
        let seen = [
            m(1, 10, 950_000, 1),
            m(1, 10, 990_000, 20),
            m(1, 10, 930_000, 40),
        ];
        assert!(structuring_alerts(&seen, &RULE).is_empty());
    }

    #[test]
    fn only_amounts_just_below_the_threshold_count() {
        // At or above the threshold is a large transaction, below the floor is ordinary.
        let seen = [
            m(1, 10, 1_000_000, 1),
            m(1, 10, 899_999, 2),
            m(1, 10, 950_000, 3),
            m(1, 10, 950_000, 4),
        ];
        assert!(structuring_alerts(&seen, &RULE).is_empty());
        let more = [&seen[..], &[m(1, 10, 900_000, 5)]].concat();
        let alerts = structuring_alerts(&more, &RULE);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].count, 3);
    }

    #[test]
    fn a_persons_wallets_are_seen_together_and_people_apart() {
        // Person 1 splits across two wallets; person 2 pays as often but is another person.
        let seen = [
            m(1, 10, 950_000, 1),
            m(2, 20, 950_000, 1),
            m(1, 11, 950_000, 2),
            m(2, 21, 950_000, 2),
            m(1, 10, 950_000, 3),
        ];
        let alerts = structuring_alerts(&seen, &RULE);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].person, person(1));
        let accounts: Vec<u128> = alerts[0].movements.iter().map(|m| m.account.0).collect();
        assert_eq!(accounts, vec![10, 11, 10]);
    }

    #[test]
    fn the_count_and_the_sum_both_bind() {
        let seen = [
            m(1, 10, 950_000, 1),
            m(1, 10, 950_000, 2),
            m(1, 10, 950_000, 3),
        ];
        let more_needed = StructuringRule {
            count_min: 4,
            ..RULE
        };
        assert!(structuring_alerts(&seen, &more_needed).is_empty());
        let larger_sum = StructuringRule {
            sum_min: 2_850_001,
            ..RULE
        };
        assert!(structuring_alerts(&seen, &larger_sum).is_empty());
        let exact_sum = StructuringRule {
            sum_min: 2_850_000,
            ..RULE
        };
        assert_eq!(structuring_alerts(&seen, &exact_sum).len(), 1);
    }

    #[test]
    fn overlapping_windows_are_one_finding_and_separate_bursts_two() {
        // Hours 0..=5: one run; hours 100..=102: another.
        let mut seen: Vec<ObservedMovement> = (0..6).map(|h| m(1, 10, 950_000, h)).collect();
        seen.extend((100..103).map(|h| m(1, 10, 950_000, h)));
        let alerts = structuring_alerts(&seen, &RULE);
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].count, 6);
        assert_eq!(alerts[1].count, 3);
        assert_eq!(alerts[1].first_ms, 100 * HOUR_MS);
    }

    #[test]
    fn the_order_movements_come_in_does_not_matter() {
        let mut seen: Vec<ObservedMovement> = (0..8)
            .map(|h| {
                m(
                    (h % 2) as u8,
                    10 + u128::from(h % 3),
                    910_000 + h * 10_000,
                    h * 5,
                )
            })
            .collect();
        let forward = structuring_alerts(&seen, &RULE);
        seen.reverse();
        assert_eq!(structuring_alerts(&seen, &RULE), forward);
        assert!(!forward.is_empty());
    }
}
