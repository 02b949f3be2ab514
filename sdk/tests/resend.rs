//! `Api::submit` against a scripted node: a lost answer or a busy node gets the same bytes
//! again, a node that already holds the transaction is followed to its receipt, and a
//! refusal is never resent. The script answers each request in turn and records what came.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tally_contracts::{AccountId, Memo, Party, SignedTransaction, Transaction, TransferId, TxKind};
use tally_crypto::{Hash, SigningKey};
use tally_sdk::api::SUBMIT_ATTEMPTS_MAX;
use tally_sdk::{Api, ClientError};
use tally_wire::ErrorBody;
use tally_wire::transaction::TxView;

/// What the scripted node answers next: a status and a JSON body, or a dropped connection.
#[derive(Debug, Clone)]
enum Step {
    Answer(StatusCode, String),
    /// A busy answer asking the client to wait this many seconds (`Retry-After`).
    Busy(u64),
    Drop,
}

#[derive(Debug, Default)]
struct Script {
    steps: Mutex<VecDeque<Step>>,
    /// Each request's method, path and body, in arrival order.
    seen: Mutex<Vec<(String, String, Bytes)>>,
}

async fn answer(
    script: Arc<Script>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    script.seen.lock().unwrap().push((method, path, body));
    let step = script.steps.lock().unwrap().pop_front();
    match step {
        Some(Step::Answer(status, json)) => Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json)))
            .unwrap()),
        Some(Step::Busy(seconds)) => Ok(Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .header("content-type", "application/json")
            .header("retry-after", seconds.to_string())
            .body(Full::new(Bytes::from(
                r#"{"code":"BUSY","message":"busy"}"#,
            )))
            .unwrap()),
        // An error from the service makes hyper close the connection without an answer.
        Some(Step::Drop) | None => Err(std::io::Error::other("dropped")),
    }
}

async fn scripted_node(steps: Vec<Step>) -> (Api, Arc<Script>) {
    let script = Arc::new(Script {
        steps: Mutex::new(steps.into()),
        seen: Mutex::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let serving = script.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let script = serving.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| answer(script.clone(), request));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (Api::new(address), script)
}

fn transfer() -> SignedTransaction {
    let key = SigningKey::from_seed([7; 32]);
    Transaction {
        chain_id: "tally-test".to_string(),
        sender: Party::Account(AccountId(1_001)),
        nonce: 3,
        kind: TxKind::Transfer {
            id: TransferId(9),
            to: AccountId(1_002),
            amount: 2_500,
            memo: Memo::NONE,
        },
    }
    .sign(&[&key])
}

fn error(status: StatusCode, code: &str, hash: Option<Hash>) -> Step {
    let body = ErrorBody {
        code: code.to_string(),
        message: format!("{code} in words"),
        hash,
    };
    Step::Answer(status, serde_json::to_string(&body).unwrap())
}

fn committed(hash: Hash, code: &'static str) -> Step {
    let view = TxView::Committed {
        hash,
        height: 12,
        index: 0,
        code: code.into(),
        events: Vec::new(),
    };
    Step::Answer(StatusCode::OK, serde_json::to_string(&view).unwrap())
}

/// The methods and paths the node saw, and whether every POST carried the same bytes.
fn requests(script: &Script) -> (Vec<String>, bool) {
    let seen = script.seen.lock().unwrap();
    let posts: Vec<&Bytes> = seen
        .iter()
        .filter(|(m, ..)| m == "POST")
        .map(|(.., b)| b)
        .collect();
    let same = posts.windows(2).all(|w| w[0] == w[1]);
    let names = seen.iter().map(|(m, p, _)| format!("{m} {p}")).collect();
    (names, same)
}

#[tokio::test]
async fn a_busy_node_gets_the_same_bytes_again_and_a_duplicate_is_followed_to_its_receipt() {
    let tx = transfer();
    let hash = tx.hash();
    let (api, script) = scripted_node(vec![
        error(StatusCode::SERVICE_UNAVAILABLE, "BUSY", None),
        error(StatusCode::CONFLICT, "DUPLICATE", None),
        committed(hash, "OK"),
    ])
    .await;
    let receipt = api.submit(&tx).await.unwrap();
    assert!(receipt.is_ok());
    assert_eq!((receipt.hash, receipt.height), (hash, Some(12)));
    let (names, same) = requests(&script);
    let status = format!("GET /v1/transactions/{hash}");
    assert_eq!(
        names,
        ["POST /v1/transactions", "POST /v1/transactions", &status]
    );
    assert!(same, "a resend carried other bytes");
}

#[tokio::test]
async fn a_lost_answer_is_resent_and_an_already_committed_refusal_is_its_receipt() {
    let tx = transfer();
    let hash = tx.hash();
    let (api, script) = scripted_node(vec![
        Step::Drop,
        error(StatusCode::CONFLICT, "ALREADY_COMMITTED", Some(hash)),
        committed(hash, "INSUFFICIENT_FUNDS"),
    ])
    .await;
    let receipt = api.submit(&tx).await.unwrap();
    assert_eq!(receipt.code, "INSUFFICIENT_FUNDS");
    assert!(matches!(
        receipt.accepted(),
        Err(ClientError::Refused { code, .. }) if code == "INSUFFICIENT_FUNDS"
    ));
    let (names, same) = requests(&script);
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(same, "a resend carried other bytes");
}

#[tokio::test]
async fn a_refusal_before_any_block_is_never_resent() {
    let tx = transfer();
    let (api, script) = scripted_node(vec![
        error(StatusCode::UNPROCESSABLE_ENTITY, "BAD_SIGNATURE", None),
        error(StatusCode::CONFLICT, "NONCE_TAKEN", None),
    ])
    .await;
    let refused = api.submit(&tx).await.unwrap_err();
    assert_eq!(refused.api_code(), Some("BAD_SIGNATURE"));
    // On a first send, a conflict other than the transaction itself is the answer too.
    let refused = api.submit(&tx).await.unwrap_err();
    assert_eq!(refused.api_code(), Some("NONCE_TAKEN"));
    assert_eq!(requests(&script).0.len(), 2);
}

#[tokio::test]
async fn a_used_nonce_after_a_resend_is_answered_by_the_transactions_own_status() {
    // The first send was taken and committed, its answer lost; the resend reaches the
    // mempool after the commit, which refuses the nonce as used.
    let tx = transfer();
    let hash = tx.hash();
    let (api, script) = scripted_node(vec![
        Step::Drop,
        error(StatusCode::CONFLICT, "NONCE_USED", None),
        committed(hash, "OK"),
    ])
    .await;
    let receipt = api.submit(&tx).await.unwrap();
    assert!(receipt.is_ok());
    assert_eq!(requests(&script).0.len(), 3);
}

#[tokio::test]
async fn a_busy_node_is_given_the_time_it_asks_for() {
    let tx = transfer();
    let hash = tx.hash();
    let (api, _script) = scripted_node(vec![Step::Busy(1), committed(hash, "OK")]).await;
    let started = std::time::Instant::now();
    let receipt = api.submit(&tx).await.unwrap();
    assert!(receipt.is_ok());
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "resent after {:?}, before the Retry-After second",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_node_busy_every_time_is_sent_the_bounded_number_of_times() {
    let tx = transfer();
    let busy = error(StatusCode::SERVICE_UNAVAILABLE, "BUSY", None);
    let (api, script) = scripted_node(vec![busy; 10]).await;
    let refused = api.submit(&tx).await.unwrap_err();
    assert_eq!(refused.api_code(), Some("BUSY"));
    let (names, same) = requests(&script);
    assert_eq!(names.len(), SUBMIT_ATTEMPTS_MAX as usize);
    assert!(same);
}
