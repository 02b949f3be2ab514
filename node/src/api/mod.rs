//! The HTTP JSON API under `/v1` (axum), plus `/metrics` and `/health`.
//!
//! Everything is read from committed storage through [`NodeContext`]; only submissions go
//! to the chain task. Every answer that is not a success is an [`error::ApiError`]:
//! `{ "code", "message" }` with a stable code. The routes and their answers are described
//! in `node/openapi.yaml`, which a test keeps in step with [`router`].

mod accounts;
mod audit;
mod audit_activity;
mod audit_alerts;
mod audit_charts;
mod audit_page;
mod audit_risk;
mod audit_scan;
pub mod batch;
mod blocks;
pub mod caller;
mod directory;
mod error;
pub(crate) mod events;
pub mod fair;
mod governance;
mod ledger;
mod params;
mod proofs;
mod report;
pub mod scope;
pub mod tls;
mod transactions;
pub(crate) mod webhooks;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde::Serialize;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::service::NodeContext;
pub use caller::Caller;
pub use error::ApiError;
use fair::{ClientKey, Pool, Rates, Refused, Share};
pub use scope::Scope;

/// The largest request body: a transaction is at most 2 KiB canonically, a little more as
/// JSON; anything bigger is refused before it is read.
pub const REQUEST_BODY_BYTES_MAX: usize = 64 * 1024;

/// Limits on what clients may hold open and send, for the node and for each client (the
/// party a request is signed as, or its IP address without credentials; see `fair.rs`).
/// Defaults suit a validator; tests shrink them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Event streams open at once; one more is answered 429.
    pub streams_max: usize,
    /// Event streams one client may hold open.
    pub streams_per_client_max: usize,
    /// Events buffered per stream before the stream waits for its client.
    pub stream_buffer_events_max: usize,
    /// Submissions waiting for their commit at once (`?wait_ms`); one more is answered 429.
    pub waiters_max: usize,
    /// Submissions one client may have waiting at once.
    pub waiters_per_client_max: usize,
    /// The longest a submission may wait for its commit.
    pub wait_ms_max: u64,
    /// Audit scans running at once (each may read thousands of blocks).
    pub scans_max: usize,
    /// Audit scans one client may run at once.
    pub scans_per_client_max: usize,
    /// Requests one client may send a second, on average.
    pub requests_per_second_per_client: u64,
    /// Requests one client may send at once after a quiet while.
    pub request_burst_per_client: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            streams_max: 1024,
            streams_per_client_max: 16,
            stream_buffer_events_max: 256,
            waiters_max: 1024,
            waiters_per_client_max: 256,
            wait_ms_max: 30_000,
            scans_max: 4,
            scans_per_client_max: 2,
            requests_per_second_per_client: 10_000,
            request_burst_per_client: 20_000,
        }
    }
}

/// How the API is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    pub limits: Limits,
    /// Whether requests arrive over TLS (the `@scheme` a signature may cover).
    pub tls: bool,
    /// Whether `/metrics` answers without credentials.
    pub metrics_public: bool,
}

/// What every handler shares.
#[derive(Debug)]
struct Api {
    ctx: NodeContext,
    limits: Limits,
    tls: bool,
    metrics_public: bool,
    streams: Pool,
    waiters: Pool,
    scans: Pool,
    rates: Rates,
    /// The scope of every route, by path and method: the guard's table.
    scopes: BTreeMap<&'static str, BTreeMap<Method, Scope>>,
    /// The latest activity scans, so the page's figures and its charts share one scan.
    activities: audit_activity::ActivityCache,
}

impl Api {
    /// One unit of `pool` for `client`, or a 429 naming what is full.
    fn share(
        pool: &Pool,
        client: ClientKey,
        code: &'static str,
        what: &str,
    ) -> Result<Share, ApiError> {
        pool.take(client).map_err(|refused| {
            let whose = match refused {
                Refused::Client => "this client already holds its share of",
                Refused::Node => "the node holds all it may of",
            };
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                code,
                format!("{whose} {what}; try again later"),
            )
        })
    }
}

type ApiState = State<Arc<Api>>;

/// One route: its method, path, who may call it, and its handler.
struct Route {
    method: Method,
    path: &'static str,
    scope: Scope,
    handler: MethodRouter<Arc<Api>>,
}

fn route(
    method: Method,
    path: &'static str,
    scope: Scope,
    handler: MethodRouter<Arc<Api>>,
) -> Route {
    Route {
        method,
        path,
        scope,
        handler,
    }
}

/// Every route of the API, with its scope: the router is built from this table alone, and
/// the guard refuses anything the table does not name.
fn routes() -> Vec<Route> {
    use Scope::*;
    const GET: Method = Method::GET;
    vec![
        route(
            Method::POST,
            "/v1/transactions",
            Submit,
            post(transactions::submit),
        ),
        route(
            Method::POST,
            "/v1/transactions/batch",
            Submit,
            post(batch::submit_batch),
        ),
        route(
            GET,
            "/v1/transactions/{hash}",
            Party,
            get(transactions::status),
        ),
        route(
            GET,
            "/v1/travel-rule/{hash}",
            Party,
            get(transactions::travel_rule),
        ),
        route(GET, "/v1/accounts/{id}", Party, get(accounts::account)),
        route(
            GET,
            "/v1/accounts/{id}/history",
            Party,
            get(accounts::history),
        ),
        route(GET, "/v1/orders/{id}", Party, get(ledger::order)),
        route(GET, "/v1/bills/{id}", Party, get(ledger::bill)),
        route(GET, "/v1/holds/{id}", Party, get(ledger::hold)),
        route(
            GET,
            "/v1/transactions/{hash}/proof",
            Party,
            get(proofs::transaction),
        ),
        route(GET, "/v1/accounts/{id}/proof", Party, get(proofs::account)),
        route(GET, "/v1/orders/{id}/proof", Party, get(proofs::order)),
        route(GET, "/v1/bills/{id}/proof", Party, get(proofs::bill)),
        route(GET, "/v1/holds/{id}/proof", Party, get(proofs::hold)),
        route(
            GET,
            "/v1/payment-codes/{payer_key}/{code_nonce}",
            Party,
            get(ledger::payment_code),
        ),
        route(GET, "/v1/fx-rates", Party, get(ledger::fx_rates)),
        route(GET, "/v1/directory", Party, get(directory::directory)),
        route(
            GET,
            "/v1/institutions/{id}",
            Party,
            get(ledger::institution),
        ),
        route(GET, "/v1/settlement-cycles/{id}", Party, get(ledger::cycle)),
        route(GET, "/v1/blocks/latest", Public, get(blocks::latest)),
        route(GET, "/v1/blocks/{height}", Public, get(blocks::at_height)),
        route(GET, "/v1/validators", Public, get(blocks::validators)),
        route(
            GET,
            "/v1/validators/changes",
            Public,
            get(proofs::validator_changes),
        ),
        route(
            Method::POST,
            "/v1/validators/updates",
            Submit,
            post(governance::submit_update),
        ),
        route(GET, "/v1/evidence", Public, get(blocks::evidence)),
        route(GET, "/v1/events", Party, get(events::stream)),
        route(
            Method::POST,
            "/v1/webhooks",
            Party,
            post(webhooks::subscribe),
        ),
        route(GET, "/v1/webhooks", Party, get(webhooks::list)),
        route(GET, "/v1/webhooks/{id}", Party, get(webhooks::one)),
        route(
            Method::DELETE,
            "/v1/webhooks/{id}",
            Party,
            axum::routing::delete(webhooks::remove),
        ),
        route(
            Method::POST,
            "/v1/webhooks/{id}/replay",
            Party,
            post(webhooks::replay),
        ),
        route(
            GET,
            "/v1/audit/net-positions",
            Regulator,
            get(audit::net_positions_view),
        ),
        route(
            GET,
            "/v1/audit/large-transactions",
            Regulator,
            get(audit::large_transactions),
        ),
        route(GET, "/v1/audit/frozen", Regulator, get(audit::frozen_view)),
        route(
            GET,
            "/v1/audit/disputes",
            Regulator,
            get(audit_risk::disputes_view),
        ),
        route(
            GET,
            "/v1/audit/sanctioned",
            Regulator,
            get(audit_risk::sanctioned_view),
        ),
        route(
            GET,
            "/v1/audit/structuring",
            Regulator,
            get(audit_risk::structuring_view),
        ),
        route(
            GET,
            "/v1/audit/accounts/{id}/statement",
            Regulator,
            get(audit::statement_view),
        ),
        route(
            GET,
            "/v1/audit/activity",
            Regulator,
            get(audit_activity::activity_view),
        ),
        route(
            GET,
            "/v1/audit/activity.csv",
            Regulator,
            get(audit_activity::activity_csv),
        ),
        route(
            GET,
            "/v1/audit/charts/{chart}",
            Regulator,
            get(audit_activity::chart_svg),
        ),
        route(
            GET,
            "/v1/audit/alerts",
            Regulator,
            get(audit_alerts::alerts),
        ),
        route(
            Method::POST,
            "/v1/audit/alerts/acknowledge",
            Regulator,
            post(audit_alerts::acknowledge),
        ),
        route(GET, "/v1/audit/report", Regulator, get(report::report)),
        route(
            GET,
            "/v1/audit/report.csv",
            Regulator,
            get(report::report_csv),
        ),
        route(GET, "/health", Public, get(health)),
        route(GET, "/metrics", Metrics, get(metrics)),
        route(GET, "/regulator", Public, get(audit_page::redirect)),
        route(GET, "/regulator/", Public, get(audit_page::index)),
        route(GET, "/regulator/app.js", Public, get(audit_page::script)),
        route(GET, "/regulator/sign.js", Public, get(audit_page::signing)),
        route(GET, "/regulator/style.css", Public, get(audit_page::style)),
    ]
}

/// Every route with its method and scope, as the router serves them: what a test walks to
/// check that each one answers only whom its scope names.
pub fn route_scopes() -> Vec<(Method, &'static str, Scope)> {
    routes()
        .into_iter()
        .map(|r| (r.method, r.path, r.scope))
        .collect()
}

/// The API with default limits, for plain HTTP.
pub fn router(ctx: NodeContext) -> Router {
    router_for(ctx, Options::default())
}

/// The API with the given limits, for plain HTTP.
pub fn router_with(ctx: NodeContext, limits: Limits) -> Router {
    router_for(
        ctx,
        Options {
            limits,
            ..Options::default()
        },
    )
}

/// The API as `options` say.
pub fn router_for(ctx: NodeContext, options: Options) -> Router {
    let limits = options.limits;
    let table = routes();
    let mut scopes: BTreeMap<&'static str, BTreeMap<Method, Scope>> = BTreeMap::new();
    for r in &table {
        scopes
            .entry(r.path)
            .or_default()
            .insert(r.method.clone(), r.scope);
    }
    let api = Arc::new(Api {
        ctx,
        limits,
        tls: options.tls,
        metrics_public: options.metrics_public,
        streams: Pool::new(limits.streams_max, limits.streams_per_client_max),
        waiters: Pool::new(limits.waiters_max, limits.waiters_per_client_max),
        scans: Pool::new(limits.scans_max, limits.scans_per_client_max),
        rates: Rates::new(
            limits.requests_per_second_per_client,
            limits.request_burst_per_client,
        ),
        scopes,
        activities: Default::default(),
    });
    let mut router = Router::new();
    for r in table {
        router = router.route(r.path, r.handler);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(api.clone(), scope::guard))
        .with_state(api)
        // The limit refuses a declared oversize body before it is read; the layer around
        // it rewrites that plain-text answer into the API's error shape.
        .layer(RequestBodyLimitLayer::new(REQUEST_BODY_BYTES_MAX))
        .layer(middleware::from_fn(json_body_too_large))
        .layer(TraceLayer::new_for_http())
}

/// How long a TLS handshake may take before the connection is dropped.
const TLS_HANDSHAKE_MS_MAX: u64 = 10_000;

/// Serves the API on `listener` until `shutdown` completes, then lets open requests end:
/// over TLS with `tls`, else plain HTTP.
pub async fn serve(
    listener: std::net::TcpListener,
    ctx: NodeContext,
    tls: Option<rustls::ServerConfig>,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let options = Options {
        tls: tls.is_some(),
        ..options
    };
    let app = router_for(ctx, options).into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        Some(config) => {
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                stopper.graceful_shutdown(None);
            });
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(
                axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config)),
            )
            .handshake_timeout(Duration::from_millis(TLS_HANDSHAKE_MS_MAX));
            axum_server::from_tcp(listener)?
                .acceptor(acceptor)
                .handle(handle)
                .serve(app)
                .await
        }
        None => {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route")
}

async fn method_not_allowed() -> ApiError {
    error::method_not_allowed()
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
    /// An audit node only: the first block it executed itself: 1, or, when it joined by
    /// state sync, the block after the snapshot (the snapshot's state was checked against a
    /// certified header, not recomputed).
    #[serde(skip_serializing_if = "Option::is_none")]
    verified_from_height: Option<u64>,
    /// The snapshot height this node's chain started from, when it joined by state sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    synced_from_height: Option<u64>,
    /// Whether the audit alarm is raised.
    alarm: bool,
}

fn node_status(ctx: &NodeContext) -> Result<NodeStatus, ApiError> {
    let audit = ctx.mode == crate::config::Mode::Audit;
    let height = ctx.storage.head()?;
    let synced_from = ctx.storage.synced_from()?;
    let executed_from = synced_from.map_or(1, |h| h.saturating_add(1));
    // The state after block k is verified when block k + 1's header agrees with it; a node
    // started from a snapshot of height s computed the states after s + 1 and later only.
    let below_head = height.unwrap_or(0).saturating_sub(1);
    let verified = match synced_from {
        None => Some(below_head),
        Some(s) => (below_head > s).then_some(below_head),
    };
    Ok(NodeStatus {
        mode: if audit { "audit" } else { "validator" },
        height,
        verified_height: verified.filter(|_| audit),
        verified_from_height: audit.then_some(executed_from),
        synced_from_height: synced_from,
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
    // The API's shares are counted where they live; set when read.
    let memory = &api.ctx.metrics.memory;
    let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    memory.api_streams.set(gauge(api.streams.held()));
    memory.api_waiters.set(gauge(api.waiters.held()));
    memory.api_scans.set(gauge(api.scans.held()));
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
