//! One node's HTTP API, over a plain HTTP/1 connection per request: loopback and LAN
//! clients need no TLS stack or connection pool here. Submitting waits for the committing
//! block (`?wait_ms=`), then polls the transaction's status, both bounded.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tally_contracts::{Event, SignedTransaction, encoding};
use tally_crypto::Hash;
use tokio::net::TcpStream;

use super::ClientError;

/// The longest one HTTP request may take, connection included.
const REQUEST_TIMEOUT_MS: u64 = 15_000;
/// How long a submission asks the node to wait for the committing block.
const SUBMIT_WAIT_MS: u64 = 10_000;
/// After `wait_ms` ran out, how long we keep polling the transaction's status.
const COMMIT_POLL_MS_MAX: u64 = 20_000;
/// The pause between two polls of a transaction's status.
const COMMIT_POLL_INTERVAL_MS: u64 = 200;
/// The most bytes of an answer we read: the largest answer (a full block) is far below.
const ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;
/// How much of an answer that is not JSON an error message quotes.
const ERROR_QUOTE_CHARS_MAX: usize = 200;

/// One node's HTTP API.
#[derive(Debug, Clone, Copy)]
pub struct Api {
    pub address: SocketAddr,
}

/// A raw answer: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// The API's error shape. `hash` names the transaction when the ledger executed and
/// refused it.
#[derive(Debug, Deserialize)]
pub struct ApiErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub hash: Option<Hash>,
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
        match serde_json::from_slice::<ApiErrorBody>(&self.body) {
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

impl Api {
    pub fn new(address: SocketAddr) -> Api {
        Api { address }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let transport = |detail: String| ClientError::Transport {
            method: method.to_string(),
            path: path.to_string(),
            address: self.address,
            detail,
        };
        let request = async {
            let stream = TcpStream::connect(self.address)
                .await
                .map_err(|e| transport(e.to_string()))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| transport(e.to_string()))?;
            // The connection task ends when the request is answered and `sender` dropped.
            tokio::spawn(connection);
            let mut request = Request::builder()
                .method(method)
                .uri(path)
                .header("host", self.address.to_string());
            if body.is_some() {
                request = request.header("content-type", "application/octet-stream");
            }
            let request = request
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|e| transport(e.to_string()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| transport(e.to_string()))?;
            let status = response.status();
            let limited = http_body_util::Limited::new(response.into_body(), ANSWER_BYTES_MAX);
            let body = limited
                .collect()
                .await
                .map_err(|e| transport(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, ClientError>(Answer { status, body })
        };
        tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), request)
            .await
            .map_err(|_| ClientError::Timeout {
                method: method.to_string(),
                path: path.to_string(),
                address: self.address,
                ms: REQUEST_TIMEOUT_MS,
            })?
    }

    pub async fn get(&self, path: &str) -> Result<Answer, ClientError> {
        self.call("GET", path, None).await
    }

    /// `GET path` as JSON of `T`; a non-200 answer is an error carrying the API's code.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.get(path).await?.json()
    }

    /// Submits a signed transaction and waits until a block settles it. A refusal by the
    /// ledger is a receipt with its code; a refusal before any block (bad signature, wrong
    /// chain, a busy node) is an error.
    pub async fn submit(&self, signed: &SignedTransaction) -> Result<Receipt, ClientError> {
        let hash = signed.hash();
        let path = format!("/v1/transactions?wait_ms={SUBMIT_WAIT_MS}");
        let answer = self
            .call("POST", &path, Some(encoding::encode(signed)))
            .await?;
        match answer.status {
            StatusCode::OK => receipt_of(hash, &answer),
            StatusCode::UNPROCESSABLE_ENTITY => {
                let error: ApiErrorBody =
                    serde_json::from_slice(&answer.body).map_err(|_| answer.error())?;
                // Only a rejection the ledger committed names the transaction.
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
            // Taken, not committed within `wait_ms`: ask again, bounded.
            StatusCode::ACCEPTED => self.poll_committed(hash).await,
            _ => Err(answer.error()),
        }
    }

    /// The height that committed `hash`, if the node says so now.
    async fn committed_height(&self, hash: Hash) -> Option<u64> {
        let answer = self.get(&format!("/v1/transactions/{hash}")).await.ok()?;
        let view: TxView = answer.json().ok()?;
        view.height
    }

    async fn poll_committed(&self, hash: Hash) -> Result<Receipt, ClientError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(COMMIT_POLL_MS_MAX);
        while tokio::time::Instant::now() < deadline {
            let answer = self.get(&format!("/v1/transactions/{hash}")).await?;
            if answer.status == StatusCode::OK {
                let view: TxView = answer.json()?;
                if view.status == "committed" {
                    return receipt_of(hash, &answer);
                }
            }
            tokio::time::sleep(Duration::from_millis(COMMIT_POLL_INTERVAL_MS)).await;
        }
        Err(ClientError::NotCommitted {
            hash,
            ms: COMMIT_POLL_MS_MAX,
        })
    }
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
    /// The events it caused (none when rejected).
    pub events: Vec<Event>,
}

impl Receipt {
    pub fn is_ok(&self) -> bool {
        self.code == "OK"
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

#[derive(Debug, Deserialize)]
struct TxView {
    status: String,
    #[serde(default)]
    height: Option<u64>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    events: Vec<EventView>,
}

#[derive(Debug, Deserialize)]
struct EventView {
    event: Event,
}

fn receipt_of(hash: Hash, answer: &Answer) -> Result<Receipt, ClientError> {
    let view: TxView = answer.json()?;
    if view.status != "committed" {
        return Err(ClientError::Answer(format!(
            "transaction {hash} is {}, not committed",
            view.status
        )));
    }
    Ok(Receipt {
        hash,
        height: view.height,
        code: view.code.ok_or_else(|| {
            ClientError::Answer(format!("transaction {hash} is committed without a code"))
        })?,
        message: None,
        events: view.events.into_iter().map(|e| e.event).collect(),
    })
}
