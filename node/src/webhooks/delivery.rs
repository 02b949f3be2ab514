//! One subscription's delivery task: read committed events at the cursor, POST a signed
//! batch, move the cursor when the endpoint answers 2xx, back off and retry when it does
//! not, pause when it has failed for the whole retry window.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, Uri};
use serde::Serialize;
use tally_contracts::Party;
use tally_crypto::PublicKey;
use tracing::{info, warn};

use super::{EventFilter, Shared, Status, Subscription, parse_url};
use crate::api::caller::{Caller, KeyId, Sight};
use crate::api::events::{EventView, Filter, of_block};
use crate::api::signature;
use crate::block::BlockResults;

/// The `keyid` a node signs deliveries as.
pub fn keyid(key: &PublicKey) -> String {
    format!("node:{key}")
}

/// What a delivery's body holds.
#[derive(Serialize)]
struct Body<'a> {
    subscription: u64,
    events: &'a [EventView],
}

/// Why a task stopped delivering: the reason its subscription is paused with.
struct Pause(String);

impl<E: std::fmt::Display> From<E> for Pause {
    fn from(error: E) -> Pause {
        Pause(error.to_string())
    }
}

/// Delivers subscription `id` until the node stops, the subscription is removed or
/// replayed (a newer `generation`), or it must pause.
pub(super) async fn run(shared: Arc<Shared>, id: u64, generation: u64) {
    let Err(Pause(reason)) = deliver(&shared, id, generation).await else {
        return;
    };
    warn!(subscription = id, %reason, "webhook subscription paused");
    shared.metrics.webhook_deliveries.inc("paused");
    let registry = shared.registry.clone();
    let at_ms = crate::clock::now_ms();
    let paused = tokio::task::spawn_blocking(move || {
        registry.update(id, true, |s| {
            if s.generation != generation {
                return false;
            }
            s.status = Status::Paused { reason, at_ms };
            true
        })
    })
    .await;
    if let Ok(Err(e)) = paused {
        warn!(subscription = id, error = %e, "cannot record the pause of a webhook");
    }
}

/// The party a subscription's owner is, as it stands at the head now.
fn owner_sight(shared: &Shared, subscription: &Subscription) -> Result<Sight, Pause> {
    let keyid = KeyId::parse(&subscription.owner)
        .ok_or_else(|| Pause(format!("owner {:?} is not a party", subscription.owner)))?;
    let party = match keyid {
        KeyId::Institution(i) => Party::Institution(i),
        KeyId::Account(a) => Party::Account(a),
    };
    let caller = Caller::of_party(&shared.storage, party).map_err(|e| Pause(e.message))?;
    if caller.is_anonymous() {
        return Err(Pause(format!(
            "the owner {} is not in the ledger",
            subscription.owner
        )));
    }
    Ok(Sight::new(caller, shared.storage.clone()))
}

fn filter(fields: &EventFilter) -> Result<Filter, Pause> {
    Filter::of(fields).map_err(|e| Pause(e.message))
}

/// Events from `next` on that the owner may see and wants, at most `max`, and where the
/// next gathering starts: after the last event looked at.
fn gather(
    shared: &Shared,
    filter: &Filter,
    sight: &mut Sight,
    next: (u64, u32),
    max: usize,
) -> Result<(Vec<EventView>, (u64, u32)), Pause> {
    let head = shared.storage.head()?.unwrap_or(0);
    let (mut height, mut index) = next;
    let mut batch = Vec::new();
    // Height 0 holds no events; a cursor there means "from the first block".
    height = height.max(1);
    while height <= head {
        let bytes = shared.storage.results(height)?.ok_or_else(|| {
            Pause(format!(
                "the results of block {height} are not on this node (pruned, or the node \
                 started from a later snapshot): replay from a later event"
            ))
        })?;
        let results = BlockResults::decode(&bytes)?;
        for view in of_block(height, &results).skip(usize::try_from(index).unwrap_or(usize::MAX)) {
            index = view.index.saturating_add(1);
            if filter.matches(&view.event)
                && sight
                    .sees_event(&view.event)
                    .map_err(|e| Pause(e.message))?
            {
                batch.push(view);
                if batch.len() >= max {
                    return Ok((batch, (height, index)));
                }
            }
        }
        height = height.saturating_add(1);
        index = 0;
    }
    Ok((batch, (height, index)))
}

/// Why one POST did not count as delivered.
fn post_error(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// POSTs `body` to `uri`, signed as the node: `Ok` on a 2xx answer.
async fn post(shared: &Shared, uri: &Uri, body: Vec<u8>) -> Result<(), String> {
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .ok_or_else(|| "the URL names no host".to_string())?;
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_str(&authority).map_err(post_error)?);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        HeaderName::from_static(signature::CONTENT_DIGEST),
        HeaderValue::from_str(&signature::content_digest(&body)).map_err(post_error)?,
    );
    let method = Method::POST;
    let message = signature::Message {
        method: &method,
        scheme: uri.scheme_str().unwrap_or("http"),
        uri,
        headers: &headers,
    };
    let covered = signature::covered(
        &signature::WEBHOOK_COVERED,
        &keyid(&shared.key.public_key()),
        crate::clock::now_s(),
    )
    .map_err(post_error)?;
    let (input, value) = signature::sign(&message, &covered, &shared.key).map_err(post_error)?;
    headers.insert(
        HeaderName::from_static(signature::SIGNATURE_INPUT),
        HeaderValue::from_str(&input).map_err(post_error)?,
    );
    headers.insert(
        HeaderName::from_static(signature::SIGNATURE),
        HeaderValue::from_str(&value).map_err(post_error)?,
    );
    let mut request = Request::builder()
        .method(method)
        .uri(uri.clone())
        .body(Full::new(Bytes::from(body)))
        .map_err(post_error)?;
    *request.headers_mut() = headers;
    let timeout = Duration::from_millis(shared.settings.timeout_ms);
    let response = tokio::time::timeout(timeout, shared.client.request(request))
        .await
        .map_err(|_| format!("no answer within {} ms", shared.settings.timeout_ms))?
        .map_err(|e| format!("no connection: {e}"))?;
    // The answer's body is never read: an endpoint cannot make the node hold anything.
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered HTTP {}", status.as_u16()))
    }
}

async fn deliver(shared: &Arc<Shared>, id: u64, generation: u64) -> Result<(), Pause> {
    let Some(subscription) = shared.registry.get(id)? else {
        return Ok(());
    };
    if subscription.generation != generation || subscription.status != Status::Active {
        return Ok(());
    }
    let (uri, _) = parse_url(&subscription.url).map_err(Pause)?;
    let filter = filter(&subscription.filter)?;
    let mut sight = owner_sight(shared, &subscription)?;
    let mut committed = shared.committed.clone();
    let mut next = subscription.next;
    let mut failing_since_ms = subscription.failing_since_ms;
    let max = shared.settings.batch_events_max.max(1);
    info!(subscription = id, url = %subscription.url, "delivering webhook");
    loop {
        committed.borrow_and_update();
        let (batch, after) = gather(shared, &filter, &mut sight, next, max)?;
        if batch.is_empty() {
            next = after;
            if committed.changed().await.is_err() {
                return Ok(());
            }
            continue;
        }
        let body = serde_json::to_vec(&Body {
            subscription: id,
            events: &batch,
        })?;
        let mut backoff = shared.settings.backoff_ms_min;
        loop {
            match post(shared, &uri, body.clone()).await {
                Ok(()) => {
                    shared.metrics.webhook_deliveries.inc("ok");
                    shared
                        .metrics
                        .webhook_events_delivered
                        .inc_by(batch.len() as u64);
                    let registry = shared.registry.clone();
                    let count = batch.len() as u64;
                    let moved = tokio::task::spawn_blocking(move || {
                        registry.update(id, false, |s| {
                            if s.generation != generation {
                                return false;
                            }
                            s.next = after;
                            s.delivered = s.delivered.saturating_add(count);
                            s.failing_since_ms = None;
                            s.last_error = None;
                            true
                        })
                    })
                    .await??;
                    if moved.is_none() {
                        // Replayed or removed meanwhile: the newer task (if any) goes on.
                        return Ok(());
                    }
                    failing_since_ms = None;
                    break;
                }
                Err(reason) => {
                    shared.metrics.webhook_deliveries.inc("failed");
                    let now = crate::clock::now_ms();
                    let since = *failing_since_ms.get_or_insert(now);
                    if now.saturating_sub(since) >= shared.settings.retry_for_ms {
                        return Err(Pause(format!(
                            "the endpoint failed every delivery for {} ms (the retry window); \
                             the last: {reason}",
                            now.saturating_sub(since)
                        )));
                    }
                    let registry = shared.registry.clone();
                    let noted = tokio::task::spawn_blocking(move || {
                        registry.update(id, false, |s| {
                            if s.generation != generation {
                                return false;
                            }
                            s.failing_since_ms = Some(since);
                            s.last_error = Some(reason);
                            true
                        })
                    })
                    .await??;
                    if noted.is_none() {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                    backoff = backoff
                        .saturating_mul(2)
                        .min(shared.settings.backoff_ms_max);
                }
            }
        }
        next = after;
    }
}
