//! The stream of committed events (server-sent events), read from stored block results.
//!
//! **Ids.** Every committed event has a place: its block's height and its index in that
//! block's events, which are the holds released at block time first, then each receipt's
//! events in transaction order (the order of [`BlockResults`]). The SSE id of an event is
//! `"{height}:{index}"`. The place does not depend on the filter, so a client resuming
//! with `Last-Event-ID` (or `from_height`/`from_index`) under any filter gets every
//! matching event after it exactly once: stored results never change once committed.
//!
//! **Who sees what.** A stream carries only the events its caller may see (see
//! `caller.rs`): the regulator every event, an institution those touching its accounts or
//! naming it, an account those touching it. The subscriber's own filter narrows that further.
//!
//! **Flow.** One task per stream reads blocks in height order and sends matching events
//! into a bounded channel; when it reaches the head it waits for the next commit. A slow
//! client fills the channel and the task waits for it, holding no more than the buffer.

use std::borrow::Cow;
use std::convert::Infallible;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tally_contracts::{AccountId, CycleId, Event, InstitutionId, OrderId};
pub use tally_wire::events::EventView;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::caller::{Caller, Sight};
use super::error::ApiError;
use super::fair::ClientKey;
use super::params::{self, ApiQuery, Position};
use super::transactions::stored_results;
use super::{Api, ApiState};
use crate::block::BlockResults;

/// Every event of one block, in stream order.
pub fn of_block(height: u64, results: &BlockResults) -> impl Iterator<Item = EventView> + '_ {
    let expired = results.expired.iter().map(|e| (None, e));
    let caused = results
        .receipts
        .iter()
        .flat_map(|r| r.events.iter().map(move |e| (Some(r.tx), e)));
    expired
        .chain(caused)
        .zip(0u32..)
        .map(move |((tx, event), index)| EventView {
            id: Position { height, index }.to_string(),
            height,
            index,
            kind: Cow::Borrowed(parties(event).kind),
            tx,
            event: event.clone(),
        })
}

/// Who an event concerns: for the subscriber's filter, and for what each party may see.
#[derive(Debug, Default)]
pub struct Parties {
    pub kind: &'static str,
    pub accounts: Vec<AccountId>,
    pub merchant: Option<AccountId>,
    pub institutions: Vec<InstitutionId>,
    /// Orders whose merchant the event also concerns (a refund, a void, a cancellation).
    pub orders: Vec<OrderId>,
    /// Settlement cycles whose members the event concerns.
    pub cycles: Vec<CycleId>,
    /// Who else sees it, beyond the parties named.
    pub reach: Reach,
}

/// Beyond the parties an event names, who may see it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Only the parties named (and their institutions, and the regulator).
    #[default]
    Named,
    /// Every institution: rules every bank applies (governance, the sanctions list).
    Institutions,
    /// Every authenticated party: published prices.
    Everyone,
}

/// Every kind an event may have, as `kind=` accepts them.
const KINDS: &[&str] = &[
    "GovernanceApplied",
    "AccountRegistered",
    "CardBound",
    "CardUnbound",
    "ToppedUp",
    "Withdrawn",
    "TransferReceived",
    "KeyRotated",
    "AccountRecovered",
    "RecoveryAnnounced",
    "RecoveryCancelled",
    "SecondFactorSet",
    "MerchantRegistered",
    "OrderCreated",
    "PaymentCompleted",
    "PaymentHeld",
    "PaymentVoided",
    "OrderCancelled",
    "Refunded",
    "CollectedByCode",
    "MerchantPaid",
    "MerchantSettled",
    "BillerRegistered",
    "BillIssued",
    "BillPaid",
    "FxRatePublished",
    "RemittanceCredited",
    "ObligationRecorded",
    "SettlementCycleOpened",
    "SettlementConfirmed",
    "SettlementClosed",
    "AccountFrozen",
    "AccountUnfrozen",
    "SanctionAdded",
    "SanctionRemoved",
    "DisputeOpened",
    "DisputeResolved",
    "RefundRequested",
    "RefundRequestAnswered",
    "EncryptionKeySet",
];

// Exhaustive on purpose: a new kind of event must say whom it notifies, or it would be
// silently missing from every filtered stream, and from every party's sight.
pub fn parties(event: &Event) -> Parties {
    let p = |kind, accounts: &[AccountId], merchant, institutions: &[InstitutionId]| Parties {
        kind,
        accounts: accounts.to_vec(),
        merchant,
        institutions: institutions.to_vec(),
        ..Parties::default()
    };
    let with_order = |parties: Parties, order: OrderId| Parties {
        orders: vec![order],
        ..parties
    };
    let with_cycle = |parties: Parties, cycle: CycleId| Parties {
        cycles: vec![cycle],
        ..parties
    };
    let reaching = |parties: Parties, reach: Reach| Parties { reach, ..parties };
    match event {
        Event::GovernanceApplied { .. } => {
            reaching(p("GovernanceApplied", &[], None, &[]), Reach::Institutions)
        }
        Event::AccountRegistered {
            account,
            institution,
            ..
        } => p("AccountRegistered", &[*account], None, &[*institution]),
        Event::CardBound { account, bank } => p("CardBound", &[*account], None, &[*bank]),
        Event::CardUnbound { account, bank } => p("CardUnbound", &[*account], None, &[*bank]),
        Event::ToppedUp { account, bank, .. } => p("ToppedUp", &[*account], None, &[*bank]),
        Event::Withdrawn { account, bank, .. } => p("Withdrawn", &[*account], None, &[*bank]),
        Event::TransferReceived { from, to, .. } => p("TransferReceived", &[*from, *to], None, &[]),
        Event::KeyRotated { account, .. } => p("KeyRotated", &[*account], None, &[]),
        Event::AccountRecovered {
            account,
            institution,
        } => p("AccountRecovered", &[*account], None, &[*institution]),
        // The account's own stream shows the recovery, so its holder can cancel it in time.
        Event::RecoveryAnnounced {
            account,
            institution,
            ..
        } => p("RecoveryAnnounced", &[*account], None, &[*institution]),
        Event::RecoveryCancelled {
            account,
            institution,
            ..
        } => p("RecoveryCancelled", &[*account], None, &[*institution]),
        Event::SecondFactorSet { account, .. } => p("SecondFactorSet", &[*account], None, &[]),
        Event::MerchantRegistered {
            merchant, acquirer, ..
        } => p(
            "MerchantRegistered",
            &[*merchant],
            Some(*merchant),
            &[*acquirer],
        ),
        Event::OrderCreated { merchant, .. } => {
            p("OrderCreated", &[*merchant], Some(*merchant), &[])
        }
        Event::PaymentCompleted {
            payer, merchant, ..
        } => p(
            "PaymentCompleted",
            &[*payer, *merchant],
            Some(*merchant),
            &[],
        ),
        Event::PaymentHeld {
            payer, merchant, ..
        } => p("PaymentHeld", &[*payer, *merchant], Some(*merchant), &[]),
        Event::PaymentVoided { payer, order, .. } => {
            with_order(p("PaymentVoided", &[*payer], None, &[]), *order)
        }
        Event::OrderCancelled { order } => with_order(p("OrderCancelled", &[], None, &[]), *order),
        Event::Refunded { payer, order, .. } => {
            with_order(p("Refunded", &[*payer], None, &[]), *order)
        }
        Event::CollectedByCode {
            payer, merchant, ..
        } => p(
            "CollectedByCode",
            &[*payer, *merchant],
            Some(*merchant),
            &[],
        ),
        Event::MerchantPaid {
            payer, merchant, ..
        } => p("MerchantPaid", &[*payer, *merchant], Some(*merchant), &[]),
        Event::MerchantSettled { merchant, bank, .. } => {
            p("MerchantSettled", &[*merchant], Some(*merchant), &[*bank])
        }
        Event::BillerRegistered { biller, acquirer } => {
            p("BillerRegistered", &[*biller], None, &[*acquirer])
        }
        Event::BillIssued { biller, .. } => p("BillIssued", &[*biller], None, &[]),
        Event::BillPaid { payer, biller, .. } => p("BillPaid", &[*payer, *biller], None, &[]),
        Event::FxRatePublished { provider, .. } => reaching(
            p("FxRatePublished", &[], None, &[*provider]),
            Reach::Everyone,
        ),
        Event::RemittanceCredited {
            sender,
            beneficiary,
            ..
        } => p("RemittanceCredited", &[*sender, *beneficiary], None, &[]),
        Event::ObligationRecorded { from, to, .. } => {
            p("ObligationRecorded", &[], None, &[*from, *to])
        }
        Event::SettlementCycleOpened { positions, .. } => {
            let institutions: Vec<InstitutionId> =
                positions.iter().map(|p| p.institution).collect();
            p("SettlementCycleOpened", &[], None, &institutions)
        }
        Event::SettlementConfirmed { institution, cycle } => {
            with_cycle(p("SettlementConfirmed", &[], None, &[*institution]), *cycle)
        }
        Event::SettlementClosed { cycle } => {
            with_cycle(p("SettlementClosed", &[], None, &[]), *cycle)
        }
        Event::AccountFrozen { account, .. } => p("AccountFrozen", &[*account], None, &[]),
        Event::AccountUnfrozen { account } => p("AccountUnfrozen", &[*account], None, &[]),
        Event::SanctionAdded { .. } => {
            reaching(p("SanctionAdded", &[], None, &[]), Reach::Institutions)
        }
        Event::SanctionRemoved { .. } => {
            reaching(p("SanctionRemoved", &[], None, &[]), Reach::Institutions)
        }
        // Both sides of a dispute or a refund request see it, and the deciding bank.
        Event::DisputeOpened {
            payer,
            merchant,
            decider,
            ..
        } => p(
            "DisputeOpened",
            &[*payer, *merchant],
            Some(*merchant),
            &[*decider],
        ),
        Event::DisputeResolved {
            payer,
            merchant,
            decided_by,
            ..
        } => p(
            "DisputeResolved",
            &[*payer, *merchant],
            Some(*merchant),
            decided_by.as_slice(),
        ),
        Event::RefundRequested {
            payer, merchant, ..
        } => p(
            "RefundRequested",
            &[*payer, *merchant],
            Some(*merchant),
            &[],
        ),
        Event::RefundRequestAnswered {
            payer, merchant, ..
        } => p(
            "RefundRequestAnswered",
            &[*payer, *merchant],
            Some(*merchant),
            &[],
        ),
        // A public key: every sender's client seals to it.
        Event::EncryptionKeySet { institution, .. } => reaching(
            p("EncryptionKeySet", &[], None, &[*institution]),
            Reach::Everyone,
        ),
    }
}

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    from_height: Option<u64>,
    from_index: Option<u32>,
    account: Option<String>,
    merchant: Option<String>,
    institution: Option<String>,
    /// One kind, or several separated by commas.
    kind: Option<String>,
}

/// What a subscriber wants: every condition given must hold.
#[derive(Debug, Default)]
pub struct Filter {
    account: Option<AccountId>,
    merchant: Option<AccountId>,
    institution: Option<InstitutionId>,
    kinds: Vec<&'static str>,
}

/// The known kind named `text`, or why not.
fn known_kind(text: &str) -> Result<&'static str, ApiError> {
    KINDS
        .iter()
        .copied()
        .find(|known| *known == text)
        .ok_or_else(|| ApiError::bad_request("BAD_KIND", format!("no event kind {text:?}")))
}

impl Filter {
    fn from_query(query: &StreamQuery) -> Result<Filter, ApiError> {
        let kinds: Vec<String> = match &query.kind {
            None => Vec::new(),
            Some(text) => text.split(',').map(str::to_string).collect(),
        };
        Filter::of(&crate::webhooks::EventFilter {
            account: params::optional_decimal("account", query.account.as_deref())?,
            merchant: params::optional_decimal("merchant", query.merchant.as_deref())?,
            institution: params::optional_decimal("institution", query.institution.as_deref())?,
            kinds,
        })
    }

    /// The filter a webhook subscription (or a stream's query) names; an unknown kind is
    /// refused.
    pub fn of(fields: &crate::webhooks::EventFilter) -> Result<Filter, ApiError> {
        Ok(Filter {
            account: fields.account.map(AccountId),
            merchant: fields.merchant.map(AccountId),
            institution: fields.institution.map(InstitutionId),
            kinds: fields
                .kinds
                .iter()
                .map(|k| known_kind(k))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn matches(&self, event: &Event) -> bool {
        let parties = parties(event);
        self.account.is_none_or(|a| parties.accounts.contains(&a))
            && self.merchant.is_none_or(|m| parties.merchant == Some(m))
            && self
                .institution
                .is_none_or(|i| parties.institutions.contains(&i))
            && (self.kinds.is_empty() || self.kinds.contains(&parties.kind))
    }
}

pub(super) async fn stream(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientKey>,
    ApiQuery(query): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let filter = Filter::from_query(&query)?;
    let start = match headers.get("last-event-id") {
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| ApiError::bad_request("BAD_CURSOR", "Last-Event-ID is not text"))?;
            let seen = Position::parse("Last-Event-ID", text)?;
            match seen.index.checked_add(1) {
                Some(index) => Position { index, ..seen },
                None => Position {
                    height: seen.height.saturating_add(1),
                    index: 0,
                },
            }
        }
        None => match query.from_height {
            Some(height) => Position {
                height: height.max(1),
                index: query.from_index.unwrap_or(0),
            },
            None => Position {
                height: api.ctx.storage.head()?.unwrap_or(0).saturating_add(1),
                index: 0,
            },
        },
    };
    let share = Api::share(&api.streams, client, "TOO_MANY_STREAMS", "event streams")?;
    let (sender, receiver) = mpsc::channel(api.limits.stream_buffer_events_max.max(1));
    let api = api.clone();
    let mut sight = Sight::new(caller, api.ctx.storage.clone());
    tokio::spawn(async move {
        let _share = share;
        if let Err(e) = pump(&api, &filter, &mut sight, start, &sender).await {
            // The client learns why its stream ended; its last id lets it resume.
            let body = serde_json::json!({ "code": e.code, "message": e.message });
            let _ = sender
                .send(Ok(SseEvent::default()
                    .event("error")
                    .data(body.to_string())))
                .await;
        }
    });
    Ok(Sse::new(ReceiverStream::new(receiver))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Sends matching events from `start` on, until the client goes away or the node shuts
/// down (`Ok`), or storage fails (`Err`, told to the client).
async fn pump(
    api: &Api,
    filter: &Filter,
    sight: &mut Sight,
    start: Position,
    sender: &mpsc::Sender<Result<SseEvent, Infallible>>,
) -> Result<(), ApiError> {
    let mut next = start;
    let mut committed = api.ctx.committed.clone();
    loop {
        // Marked seen before the head is read, so a commit after the read wakes us.
        committed.borrow_and_update();
        let head = api.ctx.storage.head()?.unwrap_or(0);
        while next.height <= head {
            if sender.is_closed() {
                return Ok(());
            }
            let results = stored_results(&api.ctx, next.height)?;
            for view in of_block(next.height, &results).skip(next.index as usize) {
                if !filter.matches(&view.event) || !sight.sees_event(&view.event)? {
                    continue;
                }
                let data = serde_json::to_string(&view).map_err(|e| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "EVENT_UNREADABLE",
                        e.to_string(),
                    )
                })?;
                let event = SseEvent::default().id(view.id).data(data);
                if sender.send(Ok(event)).await.is_err() {
                    return Ok(());
                }
            }
            next = Position {
                height: next.height.saturating_add(1),
                index: 0,
            };
        }
        tokio::select! {
            changed = committed.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            () = sender.closed() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `node/openapi.yaml`'s `EventKind` enum (what the document promises `kind=` and a
    /// webhook's `kinds` take) is exactly `KINDS`.
    #[test]
    fn the_openapi_documents_every_kind_and_no_other() {
        let spec = include_str!("../../openapi.yaml");
        let documented: Vec<&str> = spec
            .split_once("    EventKind:")
            .and_then(|(_, rest)| rest.split_once("enum: ["))
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(list, _)| list.split(',').map(str::trim).collect())
            .unwrap_or_default();
        let mut documented = documented;
        documented.sort_unstable();
        let mut kinds = KINDS.to_vec();
        kinds.sort_unstable();
        assert_eq!(documented, kinds);
    }

    #[test]
    fn every_kind_is_known_to_the_filter() {
        // `KINDS` is what `kind=` accepts; each name must be one `parties` can produce.
        let mut kinds = KINDS.to_vec();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), KINDS.len());
        let event = Event::OrderCancelled {
            order: tally_contracts::OrderId(1),
        };
        assert!(KINDS.contains(&parties(&event).kind));
    }
}
