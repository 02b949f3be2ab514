//! One node's HTTP API: over TLS (trusting the CA file the operator gives) or, where a node
//! serves plain HTTP, without; each request signed (RFC 9421, see
//! `tally_wire::signature`) as the party whose credential the client holds, or sent
//! without credentials. Connections are kept alive and reused (hyper's pooled client).
//! Submitting waits for the committing block (`?wait_ms=`), then polls the transaction's
//! status, both bounded.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HOST, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tally_contracts::{Event, Party, SignedTransaction, encoding};
use tally_crypto::{Hash, SigningKey};

use tally_wire::batch::{self, BatchAnswer};
use tally_wire::transaction::TxView;
use tally_wire::{ErrorBody, KeyId, signature};

use crate::ClientError;

/// The longest one HTTP request may take, connection included.
const REQUEST_TIMEOUT_MS: u64 = 15_000;
/// The longest a connection (TCP and TLS) may take to open.
const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long a submission asks the node to wait for the committing block.
const SUBMIT_WAIT_MS: u64 = 10_000;
/// The most times one submission is sent (see [`Api::submit`]).
pub const SUBMIT_ATTEMPTS_MAX: u32 = 4;
/// No resend starts later than this after the first send.
pub const RESEND_MS_MAX: u64 = 30_000;
/// The pause before the first resend; it doubles each time.
const RESEND_PAUSE_MS_MIN: u64 = 250;
/// After `wait_ms` ran out, how long we keep polling the transaction's status.
const COMMIT_POLL_MS_MAX: u64 = 20_000;
/// The pause between two polls of a transaction's status.
const COMMIT_POLL_INTERVAL_MS: u64 = 200;
/// The most bytes of an answer we read: the largest answer (a full block) is far below.
const ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;
/// How much of an answer that is not JSON an error message quotes.
const ERROR_QUOTE_CHARS_MAX: usize = 200;
/// Idle kept-alive connections per node.
const IDLE_CONNECTIONS_MAX: usize = 64;

/// What a client trusts to prove a node is the node: a CA certificate file (PEM).
#[derive(Clone)]
pub struct ClientTls(Arc<rustls::ClientConfig>);

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

impl ClientTls {
    /// Trusts the CA certificates in `ca_file` and nothing else.
    pub fn from_ca_file(ca_file: &Path) -> Result<ClientTls, ClientError> {
        crate::tls::client_config(ca_file)
            .map(|c| ClientTls(Arc::new(c)))
            .map_err(|e| ClientError::Tls(e.to_string()))
    }

    /// A configuration for clients that never speak TLS (it trusts no root). The ring
    /// provider's safe defaults always build; the process default is the fallback.
    pub fn none() -> ClientTls {
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| rustls::ClientConfig::builder());
        ClientTls(Arc::new(
            builder
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ))
    }

    /// The rustls configuration, for raw TLS connections.
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        self.0.clone()
    }
}

/// A party's credential: its keyid and the key the ledger holds for it.
#[derive(Clone)]
pub struct Credential {
    pub keyid: KeyId,
    key: SigningKey,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({})", self.keyid)
    }
}

impl Credential {
    pub fn new(keyid: KeyId, key: SigningKey) -> Credential {
        Credential { keyid, key }
    }

    pub fn of_party(party: Party, key: SigningKey) -> Credential {
        Credential::new(KeyId::from(party), key)
    }
}

/// The pooled HTTP/1 client under every [`Api`] (over rustls, or plain HTTP), for a caller
/// that also posts to URLs other than a node's (a node's webhook deliveries).
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One node's HTTP API, as one party (or none). Cheap to clone: clones share connections.
#[derive(Clone)]
pub struct Api {
    pub address: SocketAddr,
    /// `https` or `http`.
    scheme: &'static str,
    /// What requests name as their host: the node's address, or the name its certificate
    /// carries.
    authority: String,
    client: HttpClient,
    tls: Option<ClientTls>,
    credential: Option<Arc<Credential>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("url", &format!("{}://{}", self.scheme, self.authority))
            .field("credential", &self.credential)
            .finish()
    }
}

/// A raw answer: status, headers and body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as `T` when the status is 200, else the API's error.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        if self.status != StatusCode::OK {
            return Err(self.error());
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ClientError::Answer(format!("unexpected answer shape: {e}")))
    }

    /// The answer as an error: the API's code and message, or the start of the body.
    pub fn error(&self) -> ClientError {
        match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(e) => ClientError::Api {
                status: self.status.as_u16(),
                code: e.code,
                message: e.message,
            },
            Err(_) => ClientError::Api {
                status: self.status.as_u16(),
                code: "UNEXPECTED_ANSWER".to_string(),
                message: String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(ERROR_QUOTE_CHARS_MAX)
                    .collect(),
            },
        }
    }

    pub fn error_text(&self) -> String {
        self.error().to_string()
    }
}

fn connector(tls: &ClientTls) -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_millis(CONNECT_TIMEOUT_MS)));
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls.0).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

/// A pooled client trusting what `tls` trusts, keeping idle connections alive.
pub fn http_client(tls: &ClientTls) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(IDLE_CONNECTIONS_MAX)
        .build(connector(tls))
}

impl Api {
    /// The node at `address`, over plain HTTP, without credentials.
    pub fn new(address: SocketAddr) -> Api {
        Api {
            address,
            scheme: "http",
            authority: address.to_string(),
            client: http_client(&ClientTls::none()),
            tls: None,
            credential: None,
        }
    }

    /// The node at `address` over TLS, trusting `tls`; its certificate must name the
    /// address's IP.
    pub fn https(address: SocketAddr, tls: &ClientTls) -> Api {
        Api {
            address,
            scheme: "https",
            authority: address.to_string(),
            client: http_client(tls),
            tls: Some(tls.clone()),
            credential: None,
        }
    }

    /// The node at `url` (`https://HOST:PORT`, or `http://HOST:PORT` and `HOST:PORT` for
    /// plain HTTP; nothing after the port): over TLS trusting `ca_file`, which `https`
    /// requires.
    pub fn from_url(url: &str, ca_file: Option<&Path>) -> Result<Api, ClientError> {
        let bad = |why: &str| ClientError::Url(format!("{url}: {why}"));
        let text = url.trim().trim_end_matches('/');
        let uri: Uri = text.parse().map_err(|_| bad("not a URL"))?;
        let scheme = match uri.scheme_str() {
            Some("https") => "https",
            Some("http") | None => "http",
            Some(_) => return Err(bad("the scheme is https or http")),
        };
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(bad(
                "give only the node's address, like https://127.0.0.1:8080",
            ));
        }
        if scheme == "https" && ca_file.is_none() {
            return Err(bad(
                "https needs the CA certificate that signed the node's certificate \
                 (--ca-cert FILE or TALLY_CA_CERT)",
            ));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let port = authority
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let address = std::net::ToSocketAddrs::to_socket_addrs(&(authority.host(), port))
            .map_err(|e| bad(&e.to_string()))?
            .next()
            .ok_or_else(|| bad("the host has no address"))?;
        let mut api = match (scheme, ca_file) {
            ("https", Some(ca)) => Api::https(address, &ClientTls::from_ca_file(ca)?),
            _ => Api::new(address),
        };
        api.authority = authority.as_str().to_ascii_lowercase();
        Ok(api)
    }

    /// This API as `credential`'s party: every request signed with its key.
    pub fn signed_as(&self, credential: Credential) -> Api {
        Api {
            credential: Some(Arc::new(credential)),
            ..self.clone()
        }
    }

    /// This API without credentials.
    pub fn anonymous(&self) -> Api {
        Api {
            credential: None,
            ..self.clone()
        }
    }

    /// The party requests are signed as, if any.
    pub fn keyid(&self) -> Option<KeyId> {
        self.credential.as_ref().map(|c| c.keyid)
    }

    /// The TLS trust this API speaks with, if it speaks TLS.
    pub fn tls(&self) -> Option<&ClientTls> {
        self.tls.as_ref()
    }

    /// `https://HOST:PORT` or `http://HOST:PORT`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    fn transport(&self, method: &Method, path: &str, detail: impl ToString) -> ClientError {
        ClientError::Transport {
            method: method.to_string(),
            path: path.to_string(),
            address: self.address,
            detail: detail.to_string(),
        }
    }

    /// The request, with its host, headers and body, signed when the API holds a
    /// credential (covering its body through `Content-Digest`).
    fn build(
        &self,
        method: &Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let invalid = |what: &str| self.transport(method, path, format!("invalid {what}"));
        let target: Uri = path.parse().map_err(|_| invalid("path"))?;
        let mut map = HeaderMap::new();
        map.insert(
            HOST,
            HeaderValue::from_str(&self.authority).map_err(|_| invalid("host"))?,
        );
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("header name"))?,
                HeaderValue::from_str(value).map_err(|_| invalid("header value"))?,
            );
        }
        if let Some(credential) = &self.credential {
            let mut covered: Vec<&str> = signature::COVERED.to_vec();
            if !body.is_empty() {
                map.insert(
                    HeaderName::from_static(signature::CONTENT_DIGEST),
                    HeaderValue::from_str(&signature::content_digest(&body))
                        .map_err(|_| invalid("digest"))?,
                );
                covered.push(signature::CONTENT_DIGEST);
            }
            let message = signature::Message {
                method,
                scheme: self.scheme,
                uri: &target,
                headers: &map,
            };
            let list = signature::covered(&covered, &credential.keyid.to_string(), now_s())
                .map_err(|e| self.transport(method, path, e))?;
            let (input, value) = signature::sign(&message, &list, &credential.key)
                .map_err(|e| self.transport(method, path, e))?;
            map.insert(
                HeaderName::from_static(signature::SIGNATURE_INPUT),
                HeaderValue::from_str(&input).map_err(|_| invalid("signature"))?,
            );
            map.insert(
                HeaderName::from_static(signature::SIGNATURE),
                HeaderValue::from_str(&value).map_err(|_| invalid("signature"))?,
            );
        }
        let uri: Uri = format!("{}://{}{path}", self.scheme, self.authority)
            .parse()
            .map_err(|_| invalid("URL"))?;
        let mut request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.transport(method, path, e))?;
        *request.headers_mut() = map;
        Ok(request)
    }

    /// Sends a request and returns the answer as it starts: status, headers and a body
    /// still to read (an event stream never ends). Bounded until the answer's head.
    pub async fn open(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Response<Incoming>, ClientError> {
        let request = self.build(&method, path, headers, body)?;
        match tokio::time::timeout(
            Duration::from_millis(REQUEST_TIMEOUT_MS),
            self.client.request(request),
        )
        .await
        {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(self.transport(&method, path, error_chain(&e))),
            Err(_) => Err(ClientError::Timeout {
                method: method.to_string(),
                path: path.to_string(),
                address: self.address,
                ms: REQUEST_TIMEOUT_MS,
            }),
        }
    }

    /// Sends a request and reads the whole answer, bounded in time and size.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, ClientError> {
        let whole = async {
            let response = self.open(method.clone(), path, headers, body).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let limited = http_body_util::Limited::new(response.into_body(), ANSWER_BYTES_MAX);
            let body = limited
                .collect()
                .await
                .map_err(|e| self.transport(&method, path, format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, ClientError>(Answer {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), whole)
            .await
            .map_err(|_| ClientError::Timeout {
                method: method.to_string(),
                path: path.to_string(),
                address: self.address,
                ms: REQUEST_TIMEOUT_MS,
            })?
    }

    pub async fn get(&self, path: &str) -> Result<Answer, ClientError> {
        self.request(Method::GET, path, &[], Vec::new()).await
    }

    /// `GET path` as JSON of `T`; a non-200 answer is an error carrying the API's code.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.get(path).await?.json()
    }

    /// Posts a transaction's canonical bytes to `path`.
    pub async fn post_transaction(
        &self,
        path: &str,
        signed: &SignedTransaction,
    ) -> Result<Answer, ClientError> {
        self.request(
            Method::POST,
            path,
            &[("content-type", "application/octet-stream")],
            encoding::encode(signed),
        )
        .await
    }

    /// Submits up to [`batch::BATCH_TXS_MAX`] signed transactions in one request, without waiting
    /// for their commit: each one's outcome, in order (taken with its hash, or refused with
    /// the API's code; `BUSY` ones may be sent again). A batch refused whole is an error.
    pub async fn submit_batch(
        &self,
        txs: &[SignedTransaction],
    ) -> Result<BatchAnswer, ClientError> {
        let encoded: Vec<Vec<u8>> = txs.iter().map(encoding::encode).collect();
        self.request(
            Method::POST,
            "/v1/transactions/batch",
            &[("content-type", "application/octet-stream")],
            batch::frame(&encoded),
        )
        .await?
        .json()
    }

    /// Submits a signed transaction and waits until a block settles it. A refusal by the
    /// ledger is a receipt with its code; a refusal before any block (bad signature, wrong
    /// chain) is an error.
    ///
    /// Sending is idempotent, so a lost answer is sent again: the transaction's hash names
    /// it, a node that holds it already answers `DUPLICATE` or `ALREADY_COMMITTED` (then the
    /// receipt is read by hash), and the ledger's nonce executes it once whatever arrives.
    /// The same bytes are resent when the connection broke or the time ran out (whether the
    /// node took them is unknown) and when the node was busy (503, 429; a `Retry-After` is
    /// kept), up to [`SUBMIT_ATTEMPTS_MAX`] sends, none started later than
    /// [`RESEND_MS_MAX`] after the first, pausing longer each time. After a resend, any
    /// conflict (`NONCE_USED`: an earlier send was committed between the node's checks) is
    /// answered by the transaction's own status when that says it is committed.
    pub async fn submit(&self, signed: &SignedTransaction) -> Result<Receipt, ClientError> {
        self.submit_read_as(signed, self).await
    }

    /// [`Api::submit`], reading the transaction's status as `reader`: a new account's
    /// opening is sent unsigned (the ledger has no key for it yet), and its receipt is read
    /// as the account once a block holds it.
    pub async fn submit_read_as(
        &self,
        signed: &SignedTransaction,
        reader: &Api,
    ) -> Result<Receipt, ClientError> {
        let hash = signed.hash();
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(RESEND_PAUSE_MS_MIN);
        let mut wait_ms = SUBMIT_WAIT_MS;
        let mut attempt = 1;
        loop {
            let path = format!("/v1/transactions?wait_ms={wait_ms}");
            let may_resend = |attempt: u32, pause: Duration| {
                attempt < SUBMIT_ATTEMPTS_MAX
                    && started.elapsed() + pause < Duration::from_millis(RESEND_MS_MAX)
            };
            let answer = match self.post_transaction(&path, signed).await {
                Ok(answer) => answer,
                Err(ClientError::Transport { .. } | ClientError::Timeout { .. })
                    if may_resend(attempt, pause) =>
                {
                    tokio::time::sleep(pause).await;
                    (attempt, pause) = (attempt + 1, pause.saturating_mul(2));
                    continue;
                }
                Err(e) => return Err(e),
            };
            match answer.status {
                StatusCode::OK => return receipt_of(hash, &answer),
                StatusCode::UNPROCESSABLE_ENTITY => return reader.refusal(hash, &answer).await,
                // Taken, not committed within `wait_ms`; or taken by an earlier send.
                StatusCode::ACCEPTED => return reader.poll_committed(hash).await,
                StatusCode::CONFLICT
                    if matches!(
                        answer.error().api_code(),
                        Some("DUPLICATE" | "ALREADY_COMMITTED")
                    ) =>
                {
                    return reader.poll_committed(hash).await;
                }
                StatusCode::CONFLICT if attempt > 1 => {
                    return match reader.committed_receipt(hash).await {
                        Some(receipt) => Ok(receipt),
                        None => Err(answer.error()),
                    };
                }
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                    let pause_asked = retry_after(&answer).map_or(pause, |asked| asked.max(pause));
                    if !may_resend(attempt, pause_asked) {
                        return Err(answer.error());
                    }
                    // Too many waiters: send again without waiting, then poll.
                    if answer.error().api_code() == Some("TOO_MANY_WAITERS") {
                        wait_ms = 0;
                    }
                    tokio::time::sleep(pause_asked).await;
                    (attempt, pause) = (attempt + 1, pause.saturating_mul(2));
                }
                _ => return Err(answer.error()),
            }
        }
    }

    /// A 422 answer: the ledger's refusal of a committed transaction (it names the
    /// transaction), or a refusal before any block (it does not).
    async fn refusal(&self, hash: Hash, answer: &Answer) -> Result<Receipt, ClientError> {
        let error: ErrorBody = serde_json::from_slice(&answer.body).map_err(|_| answer.error())?;
        if error.hash.is_none() {
            return Err(answer.error());
        }
        let height = self.committed_height(hash).await;
        Ok(Receipt {
            hash,
            height,
            code: error.code,
            message: Some(error.message),
            events: Vec::new(),
        })
    }

    /// The height that committed `hash`, if the node says so now.
    async fn committed_height(&self, hash: Hash) -> Option<u64> {
        let answer = self.get(&format!("/v1/transactions/{hash}")).await.ok()?;
        match answer.json::<TxView>().ok()? {
            TxView::Committed { height, .. } => Some(height),
            TxView::Pending { .. } | TxView::Unknown { .. } => None,
        }
    }

    /// The receipt of `hash` if the node says now that a block holds it.
    async fn committed_receipt(&self, hash: Hash) -> Option<Receipt> {
        let answer = self.get(&format!("/v1/transactions/{hash}")).await.ok()?;
        match answer.json::<TxView>().ok()? {
            TxView::Committed { .. } => receipt_of(hash, &answer).ok(),
            TxView::Pending { .. } | TxView::Unknown { .. } => None,
        }
    }

    async fn poll_committed(&self, hash: Hash) -> Result<Receipt, ClientError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(COMMIT_POLL_MS_MAX);
        while tokio::time::Instant::now() < deadline {
            let answer = self.get(&format!("/v1/transactions/{hash}")).await?;
            // A reader the ledger does not know yet: the account this transaction opens.
            let reader_not_yet = answer.status == StatusCode::UNAUTHORIZED
                && answer.error().api_code() == Some("UNKNOWN_PARTY");
            if answer.status == StatusCode::OK {
                if let TxView::Committed { .. } = answer.json::<TxView>()? {
                    return receipt_of(hash, &answer);
                }
            } else if answer.status != StatusCode::NOT_FOUND && !reader_not_yet {
                // Refused (no credentials, out of scope): polling will not change that.
                return Err(answer.error());
            }
            tokio::time::sleep(Duration::from_millis(COMMIT_POLL_INTERVAL_MS)).await;
        }
        Err(ClientError::NotCommitted {
            hash,
            ms: COMMIT_POLL_MS_MAX,
        })
    }
}

/// An error and its causes, for a transport failure (a TLS refusal hides under hyper's).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What the ledger decided about one transaction.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub hash: Hash,
    /// The block that committed it, when known.
    pub height: Option<u64>,
    /// `"OK"` or the ledger's stable rejection code.
    pub code: String,
    /// The ledger's words for a rejection.
    pub message: Option<String>,
    /// The events it caused that the submitter may see (none when rejected).
    pub events: Vec<Event>,
}

impl Receipt {
    pub fn is_ok(&self) -> bool {
        self.code == "OK"
    }

    /// The receipt when the ledger accepted the transaction, else its refusal as an error.
    pub fn accepted(self) -> Result<Receipt, ClientError> {
        if self.is_ok() {
            return Ok(self);
        }
        Err(ClientError::Refused {
            hash: self.hash,
            message: self.message.unwrap_or_default(),
            code: self.code,
        })
    }

    /// The first event `pick` recognises, or an error naming what was missing.
    pub fn event<T>(
        &self,
        what: &str,
        pick: impl Fn(&Event) -> Option<T>,
    ) -> Result<T, ClientError> {
        self.events
            .iter()
            .find_map(pick)
            .ok_or_else(|| ClientError::MissingEvent(what.to_string()))
    }
}

/// How long a 503 or 429 answer asks the client to wait (`Retry-After` in seconds), at most
/// [`RESEND_MS_MAX`].
fn retry_after(answer: &Answer) -> Option<Duration> {
    let seconds: u64 = answer
        .headers
        .get(hyper::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(Duration::from_millis(RESEND_MS_MAX)))
}

fn receipt_of(hash: Hash, answer: &Answer) -> Result<Receipt, ClientError> {
    match answer.json::<TxView>()? {
        TxView::Committed {
            height,
            code,
            events,
            ..
        } => Ok(Receipt {
            hash,
            height: Some(height),
            code: code.into_owned(),
            message: None,
            events: events.into_iter().map(|e| e.event).collect(),
        }),
        TxView::Pending { .. } | TxView::Unknown { .. } => Err(ClientError::Answer(format!(
            "transaction {hash} is not committed"
        ))),
    }
}

/// Seconds since the Unix epoch, for a signature's `created`.
fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
