//! `/v1/webhooks`: a party registers a URL the node POSTs its committed events to, signed
//! (see `crate::webhooks` for the delivery and its attackers).
//!
//! Who may call: any authenticated party (the `Party` scope), for its own subscriptions
//! only. A subscription belongs to the party that signed the request making it; another
//! party's id answers `404 NOT_FOUND`, as an id that does not exist, so ids reveal
//! nothing. A node without `[webhooks]` answers `409 WEBHOOKS_OFF` to everyone.
//!
//! - `POST /v1/webhooks` `{"url", "account"?, "merchant"?, "institution"?, "kinds"?, "from"?}`:
//!   `201` with the subscription. The filter fields are the event stream's (ids as decimal
//!   text, kinds by name); `from` is the first event id to deliver (default: the next block).
//! - `GET /v1/webhooks`: the caller's subscriptions.
//! - `GET /v1/webhooks/{id}`: one, with its cursor, counts, last error and pause reason.
//! - `DELETE /v1/webhooks/{id}`: `204`.
//! - `POST /v1/webhooks/{id}/replay` `{"from"?}`: moves the cursor to `from` (or keeps it)
//!   and resumes a paused subscription.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tally_wire::webhook::{NewSubscription, SubscriptionView};

use super::ApiState;
use super::caller::{Caller, credentials_required};
use super::error::ApiError;
use super::events::Filter;
use super::params::{self, ApiPath, Position};
use crate::webhooks::{EventFilter, Status, Subscription, WebhookError, Webhooks};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    from: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct SubscriptionsView {
    subscriptions: Vec<SubscriptionView>,
}

fn view(webhooks: &Webhooks, s: Subscription) -> SubscriptionView {
    let (status, paused_reason, paused_at_ms) = match s.status {
        Status::Active => ("active", None, None),
        Status::Paused { reason, at_ms } => ("paused", Some(reason), Some(at_ms)),
    };
    SubscriptionView {
        id: s.id,
        owner: s.owner,
        url: s.url,
        account: s.filter.account.map(|a| a.to_string()),
        merchant: s.filter.merchant.map(|a| a.to_string()),
        institution: s.filter.institution.map(|i| i.to_string()),
        kinds: s.filter.kinds,
        next: Position {
            height: s.next.0,
            index: s.next.1,
        }
        .to_string(),
        status: status.to_string(),
        paused_reason,
        paused_at_ms,
        delivered: s.delivered,
        failing_since_ms: s.failing_since_ms,
        last_error: s.last_error,
        created_ms: s.created_ms,
        signed_by: webhooks.keyid(),
    }
}

/// The party a subscription of this caller belongs to.
fn owner(caller: &Caller) -> Result<String, ApiError> {
    match caller {
        Caller::Anonymous => Err(credentials_required()),
        Caller::Regulator(i) | Caller::Institution(i) => Ok(format!("institution:{}", i.0)),
        Caller::Account { id, .. } => Ok(format!("account:{}", id.0)),
    }
}

fn service(api: &super::Api) -> Result<Arc<Webhooks>, ApiError> {
    api.ctx.webhooks.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "WEBHOOKS_OFF",
            "this node delivers no webhooks (its configuration has no [webhooks] section)",
        )
    })
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> ApiError {
        let message = error.to_string();
        match error {
            WebhookError::BadUrl(_) => ApiError::bad_request("BAD_URL", message),
            WebhookError::OriginNotAllowed(_) | WebhookError::NoTrustForHttps => {
                ApiError::new(StatusCode::FORBIDDEN, "URL_NOT_ALLOWED", message)
            }
            WebhookError::PartyFull(_) | WebhookError::NodeFull(_) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_WEBHOOKS", message)
            }
            WebhookError::Registry(_) | WebhookError::Tls(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "WEBHOOK_REGISTRY",
                message,
            ),
        }
    }
}

/// Runs a registry operation off the async threads (it writes and syncs a file).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, WebhookError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "WEBHOOK_REGISTRY",
                e.to_string(),
            )
        })?
        .map_err(ApiError::from)
}

fn subscription_id(text: &str) -> Result<u64, ApiError> {
    params::decimal("subscription id", text)
}

fn body<T: serde::de::DeserializeOwned + Default>(
    bytes: &Bytes,
    shape: &str,
) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("BAD_BODY", format!("the body is {shape}: {e}")))
}

pub(super) async fn subscribe(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let owner = owner(&caller)?;
    let webhooks = service(&api)?;
    let request: NewSubscription = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "BAD_BODY",
            format!(
                "the body is {{\"url\": text, \"account\"?, \"merchant\"?, \"institution\"?: \
                 decimal text, \"kinds\"?: [text], \"from\"?: \"height:index\"}}: {e}"
            ),
        )
    })?;
    let filter = EventFilter {
        account: params::optional_decimal("account", request.account.as_deref())?,
        merchant: params::optional_decimal("merchant", request.merchant.as_deref())?,
        institution: params::optional_decimal("institution", request.institution.as_deref())?,
        kinds: request.kinds,
    };
    // Checked now, so a subscription that could never deliver is refused, not paused later.
    Filter::of(&filter)?;
    let mut kinds = filter.kinds.clone();
    kinds.sort_unstable();
    kinds.dedup();
    if kinds.len() != filter.kinds.len() {
        return Err(ApiError::bad_request("BAD_KIND", "a kind is named twice"));
    }
    let next = match &request.from {
        Some(text) => Position::parse("from", text)?,
        None => Position {
            height: api.ctx.storage.head()?.unwrap_or(0).saturating_add(1),
            index: 0,
        },
    };
    let url = request.url;
    let service = webhooks.clone();
    let made =
        blocking(move || service.subscribe(owner, &url, filter, (next.height, next.index))).await?;
    Ok((StatusCode::CREATED, Json(view(&webhooks, made))).into_response())
}

pub(super) async fn list(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
) -> Result<Json<SubscriptionsView>, ApiError> {
    let owner = owner(&caller)?;
    let webhooks = service(&api)?;
    let service = webhooks.clone();
    let held = blocking(move || service.owned_by(&owner)).await?;
    Ok(Json(SubscriptionsView {
        subscriptions: held.into_iter().map(|s| view(&webhooks, s)).collect(),
    }))
}

fn not_found() -> ApiError {
    ApiError::not_found("subscription")
}

pub(super) async fn one(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let owner = owner(&caller)?;
    let id = subscription_id(&id)?;
    let webhooks = service(&api)?;
    let service = webhooks.clone();
    let found = blocking(move || service.owned(&owner, id))
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(view(&webhooks, found)))
}

pub(super) async fn remove(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let owner = owner(&caller)?;
    let id = subscription_id(&id)?;
    let webhooks = service(&api)?;
    if blocking(move || webhooks.remove(&owner, id)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

pub(super) async fn replay(
    State(api): ApiState,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    bytes: Bytes,
) -> Result<Json<SubscriptionView>, ApiError> {
    let owner = owner(&caller)?;
    let id = subscription_id(&id)?;
    let webhooks = service(&api)?;
    let request: ReplayRequest = body(&bytes, "{\"from\"?: \"height:index\"}")?;
    let from = request
        .from
        .as_deref()
        .map(|text| Position::parse("from", text))
        .transpose()?
        .map(|p| (p.height, p.index));
    let service = webhooks.clone();
    let replayed = blocking(move || service.replay(&owner, id, from))
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(view(&webhooks, replayed)))
}
