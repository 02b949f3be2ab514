//! Who may call each route: one table for the whole router (`super::routes`), checked by
//! one middleware before any handler runs. A route the table does not name is refused to
//! everyone, so an endpoint added without a written scope cannot be left open.
//!
//! The guard also authenticates the caller (see `caller.rs`), charges the caller's request
//! bucket (`fair.rs`), and hands the handler a [`Caller`] and a [`ClientKey`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::caller::{self, Caller, KeyId};
use super::error::{self, ApiError};
use super::fair::ClientKey;
use super::{Api, REQUEST_BODY_BYTES_MAX};
use tally_wire::signature::{self, Message};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Anyone, without credentials: what proves the chain (headers, certificates, the
    /// validator set, evidence), the node's health, and the regulator's page's static files
    /// (which hold no data; the page signs in to read).
    Public,
    /// Anyone: a transaction proves its sender by its own signatures (a validator-set change,
    /// its signers by theirs). The answer shows only what the caller may read (without
    /// credentials: what the sender may read).
    Submit,
    /// Public when the operator sets `[api] metrics_public = true`, else the regulator.
    Metrics,
    /// Any authenticated party; the handler answers only what that party may read and
    /// refuses the rest with 403.
    Party,
    /// The regulator alone.
    Regulator,
}

fn refused(status: StatusCode, code: &'static str, message: &str) -> Response {
    ApiError::new(status, code, message).into_response()
}

/// The peer's IP address, when the server passed it on.
fn client_address(request: &Request) -> ClientKey {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(ClientKey::Unknown, |c| ClientKey::Address(c.0.ip()))
}

/// Checks every request against the scope table; see the module's comment.
pub(super) async fn guard(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let Some(path) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
    else {
        // No route matched: the router answers 404 and reads nothing.
        return next.run(request).await;
    };
    let Some(methods) = api.scopes.get(path.as_str()) else {
        return refused(
            StatusCode::FORBIDDEN,
            "NO_SCOPE",
            "this route has no written scope and answers no one",
        );
    };
    let method = if request.method() == Method::HEAD {
        Method::GET
    } else {
        request.method().clone()
    };
    let Some(scope) = methods.get(&method).copied() else {
        return error::method_not_allowed().into_response();
    };
    let address = client_address(&request);
    let (parts, body) = request.into_parts();
    let presented = match signature::presented(&parts.headers) {
        Ok(p) => p,
        Err(e) => return charge_then(&api, address, caller::bad_credentials(e)),
    };
    let (caller, body) = match presented {
        None => (Caller::Anonymous, body),
        Some(presented) => {
            let bytes = match to_bytes(body, REQUEST_BODY_BYTES_MAX).await {
                Ok(b) => b,
                Err(_) => return error::body_too_large().into_response(),
            };
            let message = Message {
                method: &parts.method,
                scheme: if api.tls { "https" } else { "http" },
                uri: &parts.uri,
                headers: &parts.headers,
            };
            let checked = presented
                .check_coverage(!bytes.is_empty())
                .and_then(|()| {
                    if bytes.is_empty() {
                        Ok(())
                    } else {
                        signature::check_digest(&parts.headers, &bytes)
                    }
                })
                .map_err(caller::bad_credentials)
                .and_then(|()| caller::authenticate(&api.ctx.storage, &message, &presented));
            match checked {
                Ok(caller) => (caller, Body::from(bytes)),
                Err(e) => return charge_then(&api, address, e),
            }
        }
    };
    let client = match &caller {
        Caller::Anonymous => address,
        Caller::Regulator(i) | Caller::Institution(i) => ClientKey::Party(KeyId::Institution(*i)),
        Caller::Account { id, .. } => ClientKey::Party(KeyId::Account(*id)),
    };
    if !api.rates.allow(client, tokio::time::Instant::now()) {
        return too_many_requests();
    }
    let allowed = match scope {
        Scope::Public | Scope::Submit => Ok(()),
        Scope::Metrics if api.metrics_public => Ok(()),
        Scope::Metrics | Scope::Regulator => caller.require_regulator(),
        Scope::Party if caller.is_anonymous() => Err(caller::credentials_required()),
        Scope::Party => Ok(()),
    };
    if let Err(e) = allowed {
        return e.into_response();
    }
    let mut request = Request::from_parts(parts, body);
    request.extensions_mut().insert(caller);
    request.extensions_mut().insert(client);
    next.run(request).await
}

fn too_many_requests() -> Response {
    refused(
        StatusCode::TOO_MANY_REQUESTS,
        "TOO_MANY_REQUESTS",
        "this client sent more requests than its share; slow down",
    )
}

/// A refused authentication still costs the sender's address its token, so bad
/// signatures cannot be sent without bound.
fn charge_then(api: &Api, address: ClientKey, error: ApiError) -> Response {
    if !api.rates.allow(address, tokio::time::Instant::now()) {
        return too_many_requests();
    }
    error.into_response()
}
