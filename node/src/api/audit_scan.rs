//! Reading the chain for the audit endpoints: block ranges asked for by height or block
//! time, bounded to [`RANGE_BLOCKS_MAX`] blocks; one pass over a range's stored blocks and
//! results that turns each event into the ledger's postings ([`query::movement`]); the
//! interbank flows those postings make; and running such scans on the blocking pool, a
//! few at a time.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tally_consensus::Evidence;
use tally_contracts::query::{self, Movement};
use tally_contracts::{
    AccountId, AccountKind, Currency, Event, InstitutionId, NetPosition, Party, Rejection,
};
use tally_crypto::Hash;

use super::Api;
use super::error::ApiError;
use super::fair::ClientKey;
use crate::block::{Block, BlockResults};
use crate::storage::{Storage, StorageError};

/// The most blocks one request's range may hold.
pub const RANGE_BLOCKS_MAX: u64 = 10_000;
/// The most stopped transactions one scan lists; [`RangeScan::stopped_truncated`] says when
/// there were more.
pub const STOPPED_MAX: usize = 1_000;
/// The range read when a request names neither end: the latest blocks, at most this many...
pub const RANGE_BLOCKS_DEFAULT: u64 = 1_000;
/// ...holding at most this many transactions (as this node recorded at commit), so the
/// page's default panels cost the same on a busy chain as on a quiet one: about half a
/// second of scanning on a 2-core machine (`BENCHMARKS.md`, the regulator's page).
pub const RANGE_TXS_DEFAULT: u64 = 100_000;
/// The blocks `from..=to`; empty when `from > to` (a time range with no block in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BlockRange {
    pub from: u64,
    pub to: u64,
}

impl BlockRange {
    pub fn heights(self) -> std::ops::RangeInclusive<u64> {
        self.from..=self.to
    }
}

/// A block range by heights (`from`, `to`, inclusive) or by block time (`from_ms`,
/// `to_ms`, inclusive), never both. Missing ends: `to` is the head, `from` is
/// [`RANGE_BLOCKS_DEFAULT`] blocks below `to`; with neither end given, the latest blocks
/// holding at most [`RANGE_TXS_DEFAULT`] transactions too.
///
/// The fields are text, parsed here: `serde(flatten)` hands query values on as strings.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RangeQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub from_ms: Option<String>,
    pub to_ms: Option<String>,
}

fn bad_range(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("BAD_RANGE", message)
}

fn number(what: &str, text: Option<&str>) -> Result<Option<u64>, ApiError> {
    text.map(|t| {
        t.parse()
            .map_err(|_| bad_range(format!("{what} must be a whole number, not {t:?}")))
    })
    .transpose()
}

pub fn damaged(message: String) -> ApiError {
    StorageError::Damaged(message).into()
}

pub fn committed_head(storage: &Storage) -> Result<u64, ApiError> {
    storage
        .head()?
        .ok_or_else(|| ApiError::not_found("block (none committed yet)"))
}

pub fn stored_block(storage: &Storage, height: u64) -> Result<Block, ApiError> {
    let bytes = storage
        .block(height)?
        .ok_or_else(|| ApiError::missing_at(storage, height, "the body"))?;
    Ok(Block::decode(&bytes)?)
}

pub fn stored_results(storage: &Storage, height: u64) -> Result<BlockResults, ApiError> {
    let bytes = storage
        .results(height)?
        .ok_or_else(|| ApiError::missing_at(storage, height, "the results"))?;
    Ok(BlockResults::decode(&bytes)?)
}

fn block_time(storage: &Storage, height: u64) -> Result<u64, ApiError> {
    Ok(stored_block(storage, height)?.header.time_ms)
}

/// The first height in `1..=head` whose block time passes `ok` (block times rise with
/// height), or `head + 1`.
fn first_height_where(
    storage: &Storage,
    head: u64,
    ok: impl Fn(u64) -> bool,
) -> Result<u64, ApiError> {
    let (mut low, mut high) = (1u64, head.saturating_add(1));
    while low < high {
        let middle = low + (high - low) / 2;
        if ok(block_time(storage, middle)?) {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    Ok(low)
}

/// Refuses a range of more than [`RANGE_BLOCKS_MAX`] blocks.
fn too_large(range: BlockRange) -> Result<(), ApiError> {
    if range.from <= range.to && range.to - range.from >= RANGE_BLOCKS_MAX {
        return Err(ApiError::bad_request(
            "RANGE_TOO_LARGE",
            format!(
                "a range holds at most {RANGE_BLOCKS_MAX} blocks; {}..={} holds {}",
                range.from,
                range.to,
                (range.to - range.from).saturating_add(1)
            ),
        ));
    }
    Ok(())
}

/// The default range: back from the head, [`RANGE_BLOCKS_DEFAULT`] blocks or fewer, so
/// that they hold at most [`RANGE_TXS_DEFAULT`] transactions (the head's block always, even
/// a larger one). Blocks this node has no count for (committed before counts were kept)
/// count as empty: the block bound still holds.
fn latest(storage: &Storage, head: u64) -> Result<BlockRange, ApiError> {
    let lowest = head.saturating_sub(RANGE_BLOCKS_DEFAULT - 1).max(1);
    let counts = storage.recorded_transactions(lowest..=head)?;
    let mut from = head;
    let mut held = 0u64;
    for (height, count) in (lowest..=head).rev().zip(counts.iter().rev()) {
        held = held.saturating_add(count.unwrap_or(0));
        if held > RANGE_TXS_DEFAULT && height < head {
            break;
        }
        from = height;
    }
    Ok(BlockRange { from, to: head })
}

impl RangeQuery {
    /// The blocks asked for, checked against the head and [`RANGE_BLOCKS_MAX`].
    pub fn resolve(&self, storage: &Storage) -> Result<BlockRange, ApiError> {
        let (from, to) = (
            number("from", self.from.as_deref())?,
            number("to", self.to.as_deref())?,
        );
        let (from_ms, to_ms) = (
            number("from_ms", self.from_ms.as_deref())?,
            number("to_ms", self.to_ms.as_deref())?,
        );
        let head = committed_head(storage)?;
        let by_height = from.is_some() || to.is_some();
        let by_time = from_ms.is_some() || to_ms.is_some();
        let range = match (by_height, by_time) {
            (true, true) => {
                return Err(bad_range(
                    "give a range by heights (from, to) or by block time (from_ms, to_ms), not both",
                ));
            }
            (_, true) => {
                let from_ms = from_ms.unwrap_or(0);
                let to_ms = to_ms.unwrap_or(u64::MAX);
                if from_ms > to_ms {
                    return Err(bad_range("from_ms is after to_ms"));
                }
                let from = first_height_where(storage, head, |t| t >= from_ms)?;
                let to = first_height_where(storage, head, |t| t > to_ms)?.saturating_sub(1);
                BlockRange { from, to }
            }
            (false, false) => latest(storage, head)?,
            (_, false) => {
                let given_to = to;
                let to = to.unwrap_or(head);
                let from =
                    from.unwrap_or_else(|| to.saturating_sub(RANGE_BLOCKS_DEFAULT - 1).max(1));
                if from == 0 {
                    return Err(bad_range("heights start at 1"));
                }
                if from > to && given_to.is_some() {
                    return Err(bad_range(format!("from {from} is above to {to}")));
                }
                too_large(BlockRange { from, to })?;
                // A well-formed range that reaches blocks not committed yet: what is refused
                // is the chain's state, not the request (it may be answered later).
                let beyond = to.max(from);
                if beyond > head {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "BEYOND_HEAD",
                        format!("block {beyond} is not committed yet: the head is {head}"),
                    ));
                }
                BlockRange { from, to }
            }
        };
        too_large(range)?;
        Ok(range)
    }
}

/// Runs a scan on the blocking pool, holding one of the node's few scan permits.
pub async fn scan<T: Send + 'static>(
    api: &Api,
    client: ClientKey,
    work: impl FnOnce(&Storage) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _share = Api::share(&api.scans, client, "TOO_MANY_SCANS", "audit scans")?;
    let storage = api.ctx.storage.clone();
    tokio::task::spawn_blocking(move || work(&storage))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "SCAN_FAILED",
                format!("the scan stopped: {e}"),
            )
        })?
}

/// The currency, institution and kind of accounts, read once per request (none changes).
#[derive(Debug, Default)]
pub struct AccountBook(BTreeMap<AccountId, (Currency, InstitutionId, AccountKind)>);

impl AccountBook {
    pub fn of(
        &mut self,
        storage: &Storage,
        id: AccountId,
    ) -> Result<(Currency, InstitutionId), ApiError> {
        self.read(storage, id).map(|(c, i, _)| (c, i))
    }

    pub fn kind_of(&mut self, storage: &Storage, id: AccountId) -> Result<AccountKind, ApiError> {
        self.read(storage, id).map(|(_, _, k)| k)
    }

    fn read(
        &mut self,
        storage: &Storage,
        id: AccountId,
    ) -> Result<(Currency, InstitutionId, AccountKind), ApiError> {
        if let Some(found) = self.0.get(&id) {
            return Ok(*found);
        }
        let account = query::account(storage, id)?
            .ok_or_else(|| damaged(format!("account {} moved money but is missing", id.0)))?;
        let found = (account.currency, account.institution, account.kind);
        self.0.insert(id, found);
        Ok(found)
    }
}

/// One money movement in a committed block: by a transaction (`index`, `hash`), or by a
/// hold released at block time (neither).
#[derive(Debug, Clone, Serialize)]
pub struct MovementItem {
    pub height: u64,
    pub index: Option<u32>,
    pub time_ms: u64,
    pub hash: Option<Hash>,
    /// The transaction's kind, or `HoldExpired`.
    pub tx_kind: &'static str,
    pub kind: &'static str,
    pub from: AccountId,
    pub from_institution: InstitutionId,
    pub from_kind: AccountKind,
    pub to: AccountId,
    pub to_institution: InstitutionId,
    pub to_kind: AccountKind,
    pub amount: u64,
    pub currency: String,
    #[serde(skip)]
    pub movement: Movement,
    /// The customer on whose behalf the money left: for a card payment the wallet, though
    /// the money comes from its bank's issuance account (`from`); else `from`. The
    /// structuring alerts read the person behind a movement from this account.
    #[serde(skip)]
    pub payer: AccountId,
}

/// What one pass over a block range collects besides money movements.
#[derive(Debug, Default)]
pub struct RangeScan {
    /// Every block of the range, in order: its height, time and number of transactions.
    pub blocks: Vec<BlockSummary>,
    pub freezes: Vec<FreezeItem>,
    pub evidence: Vec<EvidenceItem>,
    pub cycles: Vec<CycleItem>,
    /// Transactions the ledger refused because an account was frozen or an identity is on
    /// the sanctions list: money someone tried to move past the regulator's stop.
    pub stopped: Vec<StoppedItem>,
    /// Whether more than [`STOPPED_MAX`] were found.
    pub stopped_truncated: bool,
}

/// A transaction refused by a freeze or a sanction.
#[derive(Debug, Clone, Serialize)]
pub struct StoppedItem {
    pub height: u64,
    pub index: u32,
    pub hash: Hash,
    pub time_ms: u64,
    pub tx_kind: &'static str,
    pub sender: Party,
    /// `ACCOUNT_FROZEN` or `SANCTIONED`.
    pub code: &'static str,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct BlockSummary {
    pub height: u64,
    pub time_ms: u64,
    pub transactions: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct FreezeItem {
    pub height: u64,
    pub hash: Option<Hash>,
    pub account: AccountId,
    pub frozen: bool,
    pub reason: Option<Hash>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvidenceItem {
    pub height: u64,
    pub validator: u32,
    pub kind: &'static str,
    pub evidence_height: u64,
    pub round: u32,
    pub evidence: Evidence,
}

#[derive(Debug, Clone, Serialize)]
pub struct CycleItem {
    pub height: u64,
    pub cycle: u64,
    pub positions: Vec<PositionView>,
}

/// What is done with each money movement of a scan, in chain order.
pub type OnMovement<'a> =
    dyn FnMut(&Storage, &mut AccountBook, MovementItem) -> Result<(), ApiError> + 'a;

/// Reads every block of `range` once, in order: hands each money movement to
/// `on_movement` and collects freezes, evidence, settlement cycles and transactions stopped
/// by a freeze or a sanction.
pub fn scan_range(
    storage: &Storage,
    range: BlockRange,
    book: &mut AccountBook,
    on_movement: &mut OnMovement<'_>,
) -> Result<RangeScan, ApiError> {
    let mut out = RangeScan::default();
    // One read transaction for the whole scan: a movement reads its accounts' records, and
    // a transaction per read cost more than the scan's own work (the records it reads
    // never change once written).
    let snapshot = storage.state_snapshot()?;
    for height in range.heights() {
        let block = stored_block(storage, height)?;
        let results = stored_results(storage, height)?;
        let time_ms = block.header.time_ms;
        out.blocks.push(BlockSummary {
            height,
            time_ms,
            transactions: block.txs.len(),
        });
        for evidence in &block.evidence {
            out.evidence.push(EvidenceItem {
                height,
                validator: evidence.validator().0,
                kind: match evidence {
                    Evidence::ConflictingVotes { .. } => "ConflictingVotes",
                    Evidence::ConflictingProposals { .. } => "ConflictingProposals",
                },
                evidence_height: evidence.height().0,
                round: evidence.round().0,
                evidence: evidence.clone(),
            });
        }
        for (index, receipt) in results.receipts.iter().enumerate() {
            let Err(refusal) = receipt.result else {
                continue;
            };
            if !matches!(refusal, Rejection::AccountFrozen | Rejection::Sanctioned) {
                continue;
            }
            let Some(signed) = block.txs.get(index) else {
                continue;
            };
            if out.stopped.len() >= STOPPED_MAX {
                out.stopped_truncated = true;
                continue;
            }
            out.stopped.push(StoppedItem {
                height,
                index: u32::try_from(index).unwrap_or(u32::MAX),
                hash: receipt.tx,
                time_ms,
                tx_kind: signed.tx().kind.name(),
                sender: signed.tx().sender,
                code: refusal.code(),
            });
        }
        let expired = results.expired.iter().map(|e| (None, e));
        let caused = results.receipts.iter().enumerate().flat_map(|(i, r)| {
            r.events
                .iter()
                .map(move |e| (Some((u32::try_from(i).unwrap_or(u32::MAX), r.tx)), e))
        });
        for (by, event) in expired.chain(caused) {
            let signed = by.and_then(|(i, _)| block.txs.get(i as usize));
            let kind = signed.map(|s| &s.tx().kind);
            match event {
                Event::AccountFrozen { account, reason } => out.freezes.push(FreezeItem {
                    height,
                    hash: by.map(|(_, h)| h),
                    account: *account,
                    frozen: true,
                    reason: Some(*reason),
                }),
                Event::AccountUnfrozen { account } => out.freezes.push(FreezeItem {
                    height,
                    hash: by.map(|(_, h)| h),
                    account: *account,
                    frozen: false,
                    reason: None,
                }),
                Event::SettlementCycleOpened { cycle, positions } => out.cycles.push(CycleItem {
                    height,
                    cycle: cycle.0,
                    positions: positions.iter().map(PositionView::from).collect(),
                }),
                _ => {}
            }
            let Some(movement) = query::movement(&snapshot, event, kind)? else {
                continue;
            };
            let (_, from_institution) = book.of(storage, movement.from)?;
            let (_, to_institution) = book.of(storage, movement.to)?;
            let payer = match event {
                Event::PaymentCompleted { payer, .. } => *payer,
                _ => movement.from,
            };
            let item = MovementItem {
                height,
                index: by.map(|(i, _)| i),
                time_ms,
                hash: by.map(|(_, h)| h),
                tx_kind: kind.map_or("HoldExpired", |k| k.name()),
                kind: movement.kind,
                from: movement.from,
                from_institution,
                from_kind: book.kind_of(storage, movement.from)?,
                to: movement.to,
                to_institution,
                to_kind: book.kind_of(storage, movement.to)?,
                amount: movement.amount,
                currency: movement.currency.to_string(),
                movement,
                payer,
            };
            on_movement(storage, book, item)?;
        }
    }
    Ok(out)
}

/// A net position with its currency as text.
#[derive(Debug, Clone, Serialize)]
pub struct PositionView {
    pub currency: String,
    pub institution: InstitutionId,
    pub net: i128,
}

impl From<&NetPosition> for PositionView {
    fn from(p: &NetPosition) -> PositionView {
        PositionView {
            currency: p.currency.to_string(),
            institution: p.institution,
            net: p.net,
        }
    }
}

/// Interbank money of one institution in one currency over a block range: what its
/// accounts paid to and received from other institutions' accounts.
#[derive(Debug, Clone, Serialize)]
pub struct FlowView {
    pub currency: String,
    pub institution: InstitutionId,
    pub paid: u128,
    pub received: u128,
    /// `received - paid`: positive receives in settlement, negative pays.
    pub net: i128,
}

/// The postings of `item` between two institutions' accounts: (currency, paying
/// institution, receiving institution, amount). What interbank flows are made of.
pub fn interbank_postings(
    storage: &Storage,
    book: &mut AccountBook,
    item: &MovementItem,
) -> Result<Vec<(Currency, InstitutionId, InstitutionId, u64)>, ApiError> {
    let mut out = Vec::new();
    for posting in &item.movement.postings {
        let (currency, from) = book.of(storage, posting.debit)?;
        let (_, to) = book.of(storage, posting.credit)?;
        if from != to {
            out.push((currency, from, to, posting.amount));
        }
    }
    Ok(out)
}

/// Interbank flows per currency and institution, summed the way the ledger records
/// obligations: every posting between accounts of two institutions.
#[derive(Debug, Default)]
pub struct FlowSums(BTreeMap<(Currency, InstitutionId), (u128, u128)>);

impl FlowSums {
    pub fn add(
        &mut self,
        storage: &Storage,
        book: &mut AccountBook,
        item: &MovementItem,
    ) -> Result<(), ApiError> {
        for (currency, from, to, amount) in interbank_postings(storage, book, item)? {
            let amount = u128::from(amount);
            let payer = self.0.entry((currency, from)).or_default();
            payer.0 = payer.0.saturating_add(amount);
            let payee = self.0.entry((currency, to)).or_default();
            payee.1 = payee.1.saturating_add(amount);
        }
        Ok(())
    }

    pub fn views(&self) -> Vec<FlowView> {
        self.0
            .iter()
            .map(|((currency, institution), (paid, received))| FlowView {
                currency: currency.to_string(),
                institution: *institution,
                paid: *paid,
                received: *received,
                net: signed(*received) - signed(*paid),
            })
            .collect()
    }
}

fn signed(x: u128) -> i128 {
    i128::try_from(x).unwrap_or(i128::MAX)
}
