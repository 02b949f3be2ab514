//! How a bank's system calls Tally: sign a transaction with the sender's key (and any
//! co-signer's), submit its canonical bytes to a node's HTTP API with `?wait_ms=`, and read
//! the receipt: `OK` with the events it caused, or the ledger's rejection code.
//!
//! Every request is bounded in time; every answer is checked before it is believed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tally_contracts::{Event, Party, SignedTransaction, Transaction, TxKind, encoding};
use tally_crypto::{Hash, SigningKey};
use tokio::net::TcpStream;

/// The longest one HTTP request may take, connection included.
const REQUEST_TIMEOUT_MS: u64 = 15_000;
/// How long a submission asks the node to wait for the committing block.
const SUBMIT_WAIT_MS: u64 = 10_000;
/// After `wait_ms` ran out, how long we keep polling the transaction's status.
const COMMIT_POLL_MS_MAX: u64 = 20_000;
/// The most bytes of an answer we read: the largest answer (a full block) is far below.
const ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;

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

/// The API's error shape.
#[derive(Debug, Deserialize)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

impl Answer {
    /// The body as `T` when the status is 200, else the API's error as an `Err`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        if self.status != StatusCode::OK {
            bail!("{}", self.error_text());
        }
        serde_json::from_slice(&self.body).context("unexpected answer shape")
    }

    pub fn error_text(&self) -> String {
        match serde_json::from_slice::<ApiError>(&self.body) {
            Ok(e) => format!("HTTP {}: {} ({})", self.status.as_u16(), e.code, e.message),
            Err(_) => format!(
                "HTTP {}: {}",
                self.status.as_u16(),
                String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
        }
    }
}

impl Api {
    pub fn new(address: SocketAddr) -> Api {
        Api { address }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<Answer> {
        let request = async {
            let stream = TcpStream::connect(self.address).await?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            // The connection task ends when the request is answered and `sender` dropped.
            tokio::spawn(connection);
            let mut request = Request::builder()
                .method(method)
                .uri(path)
                .header("host", self.address.to_string());
            if body.is_some() {
                request = request.header("content-type", "application/octet-stream");
            }
            let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let limited = http_body_util::Limited::new(response.into_body(), ANSWER_BYTES_MAX);
            let body = limited
                .collect()
                .await
                .map_err(|e| anyhow!("reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, anyhow::Error>(Answer { status, body })
        };
        tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), request)
            .await
            .map_err(|_| anyhow!("{method} {path} on {}: no answer in time", self.address))?
            .with_context(|| format!("{method} {path} on {}", self.address))
    }

    pub async fn get(&self, path: &str) -> Result<Answer> {
        self.call("GET", path, None).await
    }

    /// `GET path` as JSON of `T`; a non-200 answer is an error carrying the API's code.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.get(path)
            .await?
            .json()
            .with_context(|| format!("GET {path}"))
    }

    /// Submits a signed transaction and waits until a block settles it.
    pub async fn submit(&self, signed: &SignedTransaction) -> Result<Receipt> {
        let hash = signed.tx.hash();
        let path = format!("/v1/transactions?wait_ms={SUBMIT_WAIT_MS}");
        let answer = self
            .call("POST", &path, Some(encoding::encode(signed)))
            .await?;
        match answer.status {
            StatusCode::OK => receipt_of(hash, &answer),
            // Executed and refused by the ledger: the receipt's code is in the error.
            StatusCode::UNPROCESSABLE_ENTITY => {
                let error: ApiError =
                    serde_json::from_slice(&answer.body).context("a rejection without a code")?;
                Ok(Receipt {
                    hash,
                    code: error.code,
                    events: Vec::new(),
                })
            }
            // Taken, not committed within `wait_ms`: ask again, bounded.
            StatusCode::ACCEPTED => self.poll_committed(hash).await,
            _ => bail!(
                "{} was not accepted: {}",
                signed.tx.kind.name(),
                answer.error_text()
            ),
        }
    }

    async fn poll_committed(&self, hash: Hash) -> Result<Receipt> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(COMMIT_POLL_MS_MAX);
        while tokio::time::Instant::now() < deadline {
            let answer = self.get(&format!("/v1/transactions/{hash}")).await?;
            if answer.status == StatusCode::OK {
                let view: TxView = answer.json()?;
                if view.status == "committed" {
                    return receipt_of(hash, &answer);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("transaction {hash} was not committed within {COMMIT_POLL_MS_MAX} ms")
    }
}

/// What the ledger decided about one transaction.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub hash: Hash,
    /// `"OK"` or the ledger's stable rejection code.
    pub code: String,
    /// The events it caused (none when rejected).
    pub events: Vec<Event>,
}

impl Receipt {
    pub fn is_ok(&self) -> bool {
        self.code == "OK"
    }

    /// The first event `pick` recognises, or an error naming what was missing.
    pub fn event<T>(&self, what: &str, pick: impl Fn(&Event) -> Option<T>) -> Result<T> {
        self.events
            .iter()
            .find_map(pick)
            .ok_or_else(|| anyhow!("no {what} event in the receipt"))
    }
}

#[derive(Debug, Deserialize)]
struct TxView {
    status: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    events: Vec<EventView>,
}

#[derive(Debug, Deserialize)]
struct EventView {
    event: Event,
}

fn receipt_of(hash: Hash, answer: &Answer) -> Result<Receipt> {
    let view: TxView = answer.json()?;
    if view.status != "committed" {
        bail!("transaction {hash} is {}, not committed", view.status);
    }
    Ok(Receipt {
        hash,
        code: view
            .code
            .ok_or_else(|| anyhow!("a committed transaction without a code"))?,
        events: view.events.into_iter().map(|e| e.event).collect(),
    })
}

/// Signs and submits on behalf of several senders, keeping each sender's next nonce.
/// A sender's first nonce is read from the chain, so a client can join a running network.
#[derive(Debug)]
pub struct Submitter {
    pub api: Api,
    pub chain_id: String,
    nonces: BTreeMap<PartyKey, u64>,
}

/// `Party` is not ordered; this is its sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PartyKey {
    Account(u128),
    Institution(u32),
}

fn party_key(party: Party) -> PartyKey {
    match party {
        Party::Account(a) => PartyKey::Account(a.0),
        Party::Institution(i) => PartyKey::Institution(i.0),
    }
}

#[derive(Debug, Deserialize)]
struct AtHeight<T> {
    record: T,
}

#[derive(Debug, Deserialize)]
struct InstitutionRecord {
    institution: tally_contracts::Institution,
}

#[derive(Debug, Deserialize)]
pub struct AccountView {
    pub height: u64,
    pub account: tally_contracts::Account,
    pub balance: i128,
    pub available: i128,
}

impl Submitter {
    pub fn new(api: Api, chain_id: String) -> Submitter {
        Submitter {
            api,
            chain_id,
            nonces: BTreeMap::new(),
        }
    }

    /// The sender's next nonce: remembered, or read from the chain (0 for a new account).
    async fn next_nonce(&mut self, sender: Party) -> Result<u64> {
        if let Some(n) = self.nonces.get(&party_key(sender)) {
            return Ok(*n);
        }
        let nonce = match sender {
            Party::Institution(id) => {
                let view: AtHeight<InstitutionRecord> = self
                    .api
                    .get_json(&format!("/v1/institutions/{}", id.0))
                    .await?;
                view.record.institution.nonce
            }
            Party::Account(id) => {
                let answer = self.api.get(&format!("/v1/accounts/{}", id.0)).await?;
                if answer.status == StatusCode::NOT_FOUND {
                    0
                } else {
                    answer.json::<AccountView>()?.account.holder.nonce
                }
            }
        };
        Ok(nonce)
    }

    /// Signs `kind` as `sender` (first key) with any co-signers, submits it, and waits for
    /// its receipt. The nonce advances whenever the ledger executed the transaction, even
    /// when it refused it; a submission the node did not take leaves it where it was.
    pub async fn send(
        &mut self,
        sender: Party,
        keys: &[&SigningKey],
        kind: TxKind,
    ) -> Result<Receipt> {
        let nonce = self.next_nonce(sender).await?;
        let signed = Transaction {
            chain_id: self.chain_id.clone(),
            sender,
            nonce,
            kind,
        }
        .sign(keys);
        let result = self.api.submit(&signed).await;
        match &result {
            Ok(receipt) if !nonce_not_used(&receipt.code) => {
                self.nonces.insert(party_key(sender), nonce + 1);
            }
            // Unknown whether it was used: read it again next time.
            _ => {
                self.nonces.remove(&party_key(sender));
            }
        }
        result
    }

    pub async fn account(&self, id: tally_contracts::AccountId) -> Result<AccountView> {
        self.api.get_json(&format!("/v1/accounts/{}", id.0)).await
    }

    /// `/v1/{what}/{id}`'s record.
    pub async fn record<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let view: AtHeight<T> = self.api.get_json(path).await?;
        Ok(view.record)
    }
}

/// Rejections made before the nonce is consumed (see the contracts' README).
fn nonce_not_used(code: &str) -> bool {
    matches!(
        code,
        "WRONG_CHAIN" | "UNKNOWN_SENDER" | "NONCE_REPLAYED" | "NONCE_OUT_OF_ORDER" | "WRONG_SIGNER"
    )
}

/// A new key from the OS random source.
pub fn new_key() -> Result<SigningKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow!("no OS randomness: {e}"))?;
    Ok(SigningKey::from_seed(seed))
}
