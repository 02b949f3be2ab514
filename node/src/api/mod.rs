//! The HTTP JSON API under `/v1` (axum), plus `/metrics` and `/health`.
//!
//! Everything is read from committed storage through [`NodeContext`]; only submissions go
//! to the chain task. Every answer that is not a success is an [`error::ApiError`]:
//! `{ "code", "message" }` with a stable code. The routes and their answers are described
//! in `node/openapi.yaml`, which a test keeps in step with [`router`].

mod accounts;
mod audit;
mod audit_page;
mod audit_scan;
mod blocks;
mod error;
mod events;
mod ledger;
mod params;
mod report;
mod transactions;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::sync::Semaphore;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::service::NodeContext;
pub use error::ApiError;

/// The largest request body: a transaction is at most 2 KiB canonically, a little more as
/// JSON; anything bigger is refused before it is read.
pub const REQUEST_BODY_BYTES_MAX: usize = 64 * 1024;

/// Limits on what clients may hold open. Defaults suit a validator; tests shrink them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Event streams open at once; one more is answered 429.
    pub streams_max: usize,
    /// Events buffered per stream before the stream waits for its client.
    pub stream_buffer_events_max: usize,
    /// Submissions waiting for their commit at once (`?wait_ms`); one more is answered 429.
    pub waiters_max: usize,
    /// The longest a submission may wait for its commit.
    pub wait_ms_max: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            streams_max: 256,
            stream_buffer_events_max: 256,
            waiters_max: 1024,
            wait_ms_max: 30_000,
        }
    }
}

/// What every handler shares.
#[derive(Debug)]
struct Api {
    ctx: NodeContext,
    limits: Limits,
    streams: Arc<Semaphore>,
    waiters: Arc<Semaphore>,
    /// Audit scans running at once (each may read thousands of blocks).
    scans: Arc<Semaphore>,
}

/// Audit scans that may run at once; one more is answered 429.
pub const SCANS_MAX: usize = 4;

type ApiState = State<Arc<Api>>;

/// The API with default limits.
pub fn router(ctx: NodeContext) -> Router {
    router_with(ctx, Limits::default())
}

/// The API with the given limits.
pub fn router_with(ctx: NodeContext, limits: Limits) -> Router {
    let api = Arc::new(Api {
        ctx,
        limits,
        streams: Arc::new(Semaphore::new(limits.streams_max)),
        waiters: Arc::new(Semaphore::new(limits.waiters_max)),
        scans: Arc::new(Semaphore::new(SCANS_MAX)),
    });
    let v1 = Router::new()
        .route("/transactions", post(transactions::submit))
        .route("/transactions/{hash}", get(transactions::status))
        .route("/accounts/{id}", get(accounts::account))
        .route("/accounts/{id}/history", get(accounts::history))
        .route("/orders/{id}", get(ledger::order))
        .route("/bills/{id}", get(ledger::bill))
        .route("/holds/{id}", get(ledger::hold))
        .route(
            "/payment-codes/{payer_key}/{code_nonce}",
            get(ledger::payment_code),
        )
        .route("/fx-rates", get(ledger::fx_rates))
        .route("/institutions/{id}", get(ledger::institution))
        .route("/settlement-cycles/{id}", get(ledger::cycle))
        .route("/blocks/latest", get(blocks::latest))
        .route("/blocks/{height}", get(blocks::at_height))
        .route("/validators", get(blocks::validators))
        .route("/evidence", get(blocks::evidence))
        .route("/events", get(events::stream))
        .route("/audit/net-positions", get(audit::net_positions_view))
        .route("/audit/large-transactions", get(audit::large_transactions))
        .route("/audit/frozen", get(audit::frozen_view))
        .route("/audit/accounts/{id}/statement", get(audit::statement_view))
        .route("/audit/report", get(report::report))
        .route("/audit/report.csv", get(report::report_csv));
    Router::new()
        .nest("/v1", v1)
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/regulator", get(audit_page::redirect))
        .route("/regulator/", get(audit_page::index))
        .route("/regulator/app.js", get(audit_page::script))
        .route("/regulator/style.css", get(audit_page::style))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(api)
        // The limit refuses a declared oversize body before it is read; the layer around
        // it rewrites that plain-text answer into the API's error shape.
        .layer(RequestBodyLimitLayer::new(REQUEST_BODY_BYTES_MAX))
        .layer(middleware::from_fn(json_body_too_large))
        .layer(TraceLayer::new_for_http())
}

/// Serves the API on `listener` until `shutdown` completes, then lets open requests end.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: NodeContext,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(ctx))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this route does not take that method",
    )
}

async fn json_body_too_large(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return error::body_too_large().into_response();
    }
    response
}

/// What the node is and how far it got.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NodeStatus {
    /// `validator` or `audit`.
    mode: &'static str,
    /// The last committed height.
    height: Option<u64>,
    /// An audit node only: the highest height whose state this node computed itself and
    /// found equal to the state root the validators signed (in the next block's header).
    /// Every committed block's certificate was verified and the block re-executed.
    #[serde(skip_serializing_if = "Option::is_none")]
    verified_height: Option<u64>,
    /// Whether the audit alarm is raised.
    alarm: bool,
}

fn node_status(ctx: &NodeContext) -> Result<NodeStatus, ApiError> {
    let audit = ctx.mode == crate::config::Mode::Audit;
    let height = ctx.storage.head()?;
    Ok(NodeStatus {
        mode: if audit { "audit" } else { "validator" },
        height,
        verified_height: audit.then(|| height.unwrap_or(0).saturating_sub(1)),
        alarm: ctx.metrics.audit_alarm.get() > 0,
    })
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    #[serde(flatten)]
    node: NodeStatus,
}

/// 200 with the mode and head height while the node is sound; 503 while it raises an alarm.
async fn health(State(api): ApiState) -> Result<axum::Json<Health>, ApiError> {
    let node = node_status(&api.ctx)?;
    if node.alarm {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "AUDIT_ALARM",
            format!(
                "the node found a mismatch in the chain after height {} and stopped following it",
                node.height.unwrap_or(0)
            ),
        ));
    }
    Ok(axum::Json(Health { status: "ok", node }))
}

async fn metrics(State(api): ApiState) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        api.ctx.metrics.render(),
    )
        .into_response()
}

/// Reads state at one height: the ledger's head record is read before and after, and the
/// read is retried if a block committed in between, so the answer and its height agree.
fn at_head<T>(
    storage: &crate::storage::Storage,
    read: impl Fn(&crate::storage::Storage) -> Result<T, ApiError>,
) -> Result<(u64, T), ApiError> {
    const ATTEMPTS_MAX: usize = 4;
    let head = |s: &crate::storage::Storage| -> Result<u64, ApiError> {
        Ok(tally_contracts::Ledger::chain_head(s)?.map_or(0, |h| h.height))
    };
    for _ in 0..ATTEMPTS_MAX {
        let before = head(storage)?;
        let value = read(storage)?;
        if head(storage)? == before {
            return Ok((before, value));
        }
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "BUSY",
        "blocks commit faster than the read; try again",
    ))
}
