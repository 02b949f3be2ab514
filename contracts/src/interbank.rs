//! Interbank settlement. Every posted movement between accounts of two institutions adds
//! to an open obligation `from → to` in that currency. `SettlementCycle` nets all open
//! obligations multilaterally per currency — each institution's position is what it is
//! owed minus what it owes, and positions sum to zero — and closes them into a cycle;
//! `ConfirmSettlement` by each net receiver confirms it got the money (off chain, through
//! the central bank's system), and the cycle closes when all have.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::context::{Tx, TxError, TxResult};
use crate::events::NetPosition;
use crate::state::{decode_record, key};
use crate::transaction::Roles;
use crate::types::{Amount, Currency, CycleId, InstitutionId};
use crate::{Event, Rejection};

/// The most obligations one cycle nets; more wait for the next cycle.
pub const OBLIGATIONS_PER_CYCLE_MAX: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementCycleRecord {
    pub id: CycleId,
    pub opened_at_ms: u64,
    pub positions: Vec<NetPosition>,
    /// Net receivers that have not confirmed yet.
    pub awaiting: Vec<InstitutionId>,
}

/// Adds `amount` to the open obligation `from → to` in `currency`.
pub(crate) fn record_obligation(
    tx: &mut Tx<'_, '_>,
    currency: Currency,
    from: InstitutionId,
    to: InstitutionId,
    amount: Amount,
) -> TxResult {
    let k = key::obligation(currency, from, to);
    let open: u128 = tx.state.get(&k)?.unwrap_or(0);
    let open = open
        .checked_add(u128::from(amount))
        .ok_or(Rejection::Overflow)?;
    tx.state.put(k, &open);
    // The institutions' back offices follow their obligations from the event stream.
    tx.emit(Event::ObligationRecorded {
        currency,
        from,
        to,
        amount,
    });
    Ok(())
}

/// Net positions of a set of obligations `(currency, from, to, amount)`, ordered by
/// currency then institution; zero positions are left out.
pub fn net_positions(
    obligations: &[(Currency, InstitutionId, InstitutionId, u128)],
) -> Vec<NetPosition> {
    let mut net: BTreeMap<(Currency, InstitutionId), i128> = BTreeMap::new();
    for (currency, from, to, amount) in obligations {
        let amount = i128::try_from(*amount).unwrap_or(i128::MAX);
        *net.entry((*currency, *from)).or_default() -= amount;
        *net.entry((*currency, *to)).or_default() += amount;
    }
    net.into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|((currency, institution), net)| NetPosition {
            currency,
            institution,
            net,
        })
        .collect()
}

fn parse_obligation(k: &[u8]) -> Option<(Currency, InstitutionId, InstitutionId)> {
    let rest = k.strip_prefix(&[key::OBLIGATION])?;
    let (currency, rest) = rest.split_first_chunk::<3>()?;
    let (from, rest) = rest.split_first_chunk::<4>()?;
    let to: [u8; 4] = rest.try_into().ok()?;
    Some((
        Currency(*currency),
        InstitutionId(u32::from_be_bytes(*from)),
        InstitutionId(u32::from_be_bytes(to)),
    ))
}

/// `SettlementCycle`, by a bank or the platform: nets and closes the open obligations.
pub(crate) fn settlement_cycle(tx: &mut Tx<'_, '_>, sender: InstitutionId) -> TxResult {
    let institution = tx.institution(sender)?;
    if !(institution.roles.contains(Roles::BANK) || institution.roles.contains(Roles::PLATFORM)) {
        return Err(Rejection::RoleRequired.into());
    }
    let (start, end) = key::tag_range(key::OBLIGATION);
    let entries = tx.state.scan(&start, &end, OBLIGATIONS_PER_CYCLE_MAX)?;
    if entries.is_empty() {
        return Err(Rejection::NothingToSettle.into());
    }
    let mut obligations = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let (currency, from, to) = parse_obligation(&k)
            .ok_or_else(|| TxError::Failed(crate::ExecutionError::Corrupt { key: k.clone() }))?;
        let amount: u128 = decode_record(&k, &v)?;
        obligations.push((currency, from, to, amount));
        tx.state.delete(k);
    }
    let positions = net_positions(&obligations);
    let mut sums: BTreeMap<Currency, i128> = BTreeMap::new();
    for p in &positions {
        *sums.entry(p.currency).or_default() += p.net;
    }
    assert!(
        sums.values().all(|s| *s == 0),
        "net positions of a cycle sum to zero per currency"
    );
    let mut awaiting: Vec<InstitutionId> = positions
        .iter()
        .filter(|p| p.net > 0)
        .map(|p| p.institution)
        .collect();
    awaiting.sort_unstable();
    awaiting.dedup();
    let id = next_cycle_id(tx)?;
    let record = SettlementCycleRecord {
        id,
        opened_at_ms: tx.now_ms(),
        positions: positions.clone(),
        awaiting,
    };
    tx.state.put(key::cycle(id), &record);
    tx.emit(Event::SettlementCycleOpened {
        cycle: id,
        positions,
    });
    if record.awaiting.is_empty() {
        tx.emit(Event::SettlementClosed { cycle: id });
    }
    Ok(())
}

fn next_cycle_id(tx: &mut Tx<'_, '_>) -> TxResult<CycleId> {
    let k = key::cycle_seq();
    let last: u64 = tx.state.get(&k)?.unwrap_or(0);
    let next = last.checked_add(1).ok_or(Rejection::Overflow)?;
    tx.state.put(k, &next);
    Ok(CycleId(next))
}

/// `ConfirmSettlement` by a net receiver of the cycle.
pub(crate) fn confirm_settlement(
    tx: &mut Tx<'_, '_>,
    sender: InstitutionId,
    cycle: CycleId,
) -> TxResult {
    let k = key::cycle(cycle);
    let mut record: SettlementCycleRecord = tx
        .state
        .get(&k)?
        .ok_or(TxError::Rejected(Rejection::CycleNotFound))?;
    let receives = record
        .positions
        .iter()
        .any(|p| p.institution == sender && p.net > 0);
    if !receives {
        return Err(Rejection::NotAReceiver.into());
    }
    let Ok(at) = record.awaiting.binary_search(&sender) else {
        return Err(Rejection::AlreadyConfirmed.into());
    };
    record.awaiting.remove(at);
    tx.state.put(k, &record);
    tx.emit(Event::SettlementConfirmed {
        cycle,
        institution: sender,
    });
    if record.awaiting.is_empty() {
        tx.emit(Event::SettlementClosed { cycle });
    }
    Ok(())
}
