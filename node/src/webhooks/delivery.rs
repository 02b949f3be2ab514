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
use tally_contracts::{Roles, query};
use tally_wire::signature;
use tally_wire::webhook::node_keyid;
use tracing::{info, warn};

use super::{EventFilter, Shared, Status, Subscription, parse_url};
use crate::api::caller::{Caller, KeyId, Sight};
use crate::api::events::{EventView, Filter, of_block};
use crate::block::BlockResults;

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

/// What a subscription's owner may read, as the ledger stands at the head now: the same
/// checks as authenticating its request (an institution whose key governance revoked, or an
/// account without a holder, reads nothing).
fn owner_caller(shared: &Shared, owner: &str) -> Result<Caller, Pause> {
    let keyid =
        KeyId::parse(owner).ok_or_else(|| Pause(format!("owner {owner:?} is not a party")))?;
    let refused = |why: &str| Err(Pause(format!("the owner {owner} {why}")));
    match keyid {
        KeyId::Institution(id) => match query::institution(&shared.storage, id)? {
            None => refused("is not in the ledger"),
            Some(i) if i.key.is_none() => refused("had its key revoked by governance"),
            Some(i) if i.roles.contains(Roles::REGULATOR) => Ok(Caller::Regulator(id)),
            Some(_) => Ok(Caller::Institution(id)),
        },
        KeyId::Account(id) => match query::account(&shared.storage, id)? {
            Some(a) if a.kind.has_holder() => Ok(Caller::Account {
                id,
                institution: a.institution,
            }),
            _ => refused("holds no key in the ledger"),
        },
    }
}

fn filter(fields: &EventFilter) -> Result<Filter, Pause> {
    Filter::of(fields).map_err(|e| Pause(e.message))
}

/// One scan's findings: the events to deliver, where the next scan starts, and whether
/// committed blocks remain past it.
struct Scan {
    batch: Vec<EventView>,
    after: (u64, u32),
    more: bool,
}

/// Events from `next` on that the owner may see and wants, at most `max`, looking at no
/// more than [`SCAN_BLOCKS_MAX`] blocks: a scan runs off the async threads and ends soon, so
/// a subscription replayed from the first block, or one whose filter matches nothing, never
/// holds a thread for the whole chain.
fn scan(
    shared: &Shared,
    filter: &Filter,
    sight: &mut Sight,
    next: (u64, u32),
    max: usize,
) -> Result<Scan, Pause> {
    let head = shared.storage.head()?.unwrap_or(0);
    // Height 0 holds no events; a cursor there means "from the first block".
    let (mut height, mut index) = (next.0.max(1), next.1);
    let last = head.min(height.saturating_add(SCAN_BLOCKS_MAX - 1));
    let mut batch = Vec::new();
    while height <= last {
        let bytes = shared.storage.results(height)?.ok_or_else(|| {
            Pause(format!(
                "the results of block {height} are not on this node (pruned, or the node \
                 started from a later snapshot): replay from a later event"
            ))
        })?;
        let results = BlockResults::decode(&bytes)?;
        let skip = usize::try_from(index).unwrap_or(usize::MAX);
        for view in of_block(height, &results).skip(skip) {
            index = view.index.saturating_add(1);
            let wanted = filter.matches(&view.event)
                && sight
                    .sees_event(&view.event)
                    .map_err(|e| Pause(e.message))?;
            if wanted {
                batch.push(view);
                if batch.len() >= max {
                    return Ok(Scan {
                        batch,
                        after: (height, index),
                        more: true,
                    });
                }
            }
        }
        height = height.saturating_add(1);
        index = 0;
    }
    Ok(Scan {
        batch,
        after: (height, index),
        more: height <= head,
    })
}

/// The most blocks one scan reads.
const SCAN_BLOCKS_MAX: u64 = 256;
/// How often an acknowledged cursor is made durable at the latest: between, a crash
/// re-delivers what was acknowledged since (at least once still holds).
const DURABLE_EVERY: Duration = Duration::from_secs(5);

/// Why one POST did not count as delivered.
fn post_error(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// The URL as the node posts and signs it: an explicit default port dropped, as RFC 9421
/// derives `@authority` (so any verifier, and `Host`, see the same authority).
fn target(url: &Uri) -> Result<Uri, String> {
    let authority = url.authority().ok_or("the URL names no host")?;
    let scheme = url.scheme_str().unwrap_or("http");
    let default = if scheme == "https" { 443 } else { 80 };
    let authority = match authority.port_u16() {
        Some(port) if port == default => authority.host().to_string(),
        _ => authority.as_str().to_string(),
    };
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    Uri::builder()
        .scheme(scheme)
        .authority(authority.to_ascii_lowercase())
        .path_and_query(path)
        .build()
        .map_err(post_error)
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
        &node_keyid(&shared.key.public_key()),
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

/// Writes `change` to subscription `id` if it is still at `generation`: `false` when it
/// was replayed or removed meanwhile (a newer task, if any, goes on).
async fn record(
    shared: &Shared,
    id: u64,
    generation: u64,
    durable: bool,
    change: impl FnOnce(&mut Subscription) + Send + 'static,
) -> Result<bool, Pause> {
    let registry = shared.registry.clone();
    let written = tokio::task::spawn_blocking(move || {
        registry.update(id, durable, |s| {
            if s.generation != generation {
                return false;
            }
            change(s);
            true
        })
    })
    .await??;
    Ok(written.is_some())
}

async fn deliver(shared: &Arc<Shared>, id: u64, generation: u64) -> Result<(), Pause> {
    let Some(subscription) = shared.registry.get(id)? else {
        return Ok(());
    };
    if subscription.generation != generation || subscription.status != Status::Active {
        return Ok(());
    }
    let (url, _) = parse_url(&subscription.url).map_err(Pause)?;
    let uri = target(&url).map_err(Pause)?;
    let mut filter = filter(&subscription.filter)?;
    let owner = subscription.owner.clone();
    let mut sight = Sight::new(owner_caller(shared, &owner)?, shared.storage.clone());
    let mut committed = shared.committed.clone();
    let mut next = subscription.next;
    let mut failing_since_ms = subscription.failing_since_ms;
    let mut durable_at = tokio::time::Instant::now();
    let max = shared.settings.batch_events_max.max(1);
    info!(subscription = id, url = %subscription.url, "delivering webhook");
    loop {
        committed.borrow_and_update();
        // Off the async threads; the owner is looked up again each time, so a revoked key
        // or a closed account stops its deliveries at once.
        let task = {
            let shared = shared.clone();
            let owner = owner.clone();
            tokio::task::spawn_blocking(move || {
                let caller = owner_caller(&shared, &owner)?;
                if caller != sight.caller {
                    sight = Sight::new(caller, shared.storage.clone());
                }
                let found = scan(&shared, &filter, &mut sight, next, max);
                found.map(|found| (found, filter, sight))
            })
        };
        let (found, kept_filter, kept_sight) = task.await??;
        (filter, sight) = (kept_filter, kept_sight);
        let Scan { batch, after, more } = found;
        if batch.is_empty() {
            next = after;
            if !more && committed.changed().await.is_err() {
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
                    let count = batch.len() as u64;
                    shared.metrics.webhook_events_delivered.inc_by(count);
                    let durable = durable_at.elapsed() >= DURABLE_EVERY;
                    let moved = record(shared, id, generation, durable, move |s| {
                        s.next = after;
                        s.delivered = s.delivered.saturating_add(count);
                        s.failing_since_ms = None;
                        s.last_error = None;
                    })
                    .await?;
                    if !moved {
                        return Ok(());
                    }
                    if durable {
                        durable_at = tokio::time::Instant::now();
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
                    let noted = record(shared, id, generation, false, move |s| {
                        s.failing_since_ms = Some(since);
                        s.last_error = Some(reason);
                    })
                    .await?;
                    if !noted {
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
