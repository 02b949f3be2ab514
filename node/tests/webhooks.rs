//! Webhooks against a real node: a merchant's endpoint (an HTTP server on loopback, as the
//! merchant would run) receives its committed events, signed by the node, in order and at
//! least once, through a 30-second outage; a subscription answers its owner alone and posts
//! only to origins the operator allows; an endpoint failing past the retry window is paused
//! and a replay from an event id resumes it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod api_support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_support::*;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tally_contracts::*;
use tally_crypto::{Hash, SigningKey};
use tally_sdk::webhook::{DeliveryError, verify_delivery};
use tokio::task::JoinHandle;

/// One POST the endpoint took.
struct Post {
    uri: Uri,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// What an endpoint received; `failing` makes it answer 500, `down` makes it answer
/// nothing (connections closed at once, as a host whose service stopped).
#[derive(Clone, Default)]
struct Inbox {
    posts: Arc<Mutex<Vec<Post>>>,
    failing: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
}

async fn receive(
    inbox: Inbox,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Empty<Bytes>>, std::io::Error> {
    if inbox.down.load(Ordering::SeqCst) {
        // An error closes the connection without an answer.
        return Err(std::io::Error::other("down"));
    }
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let mut response = hyper::Response::new(Empty::new());
    if inbox.failing.load(Ordering::SeqCst) {
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return Ok(response);
    }
    inbox.posts.lock().unwrap().push(Post {
        uri: parts.uri,
        headers: parts.headers,
        body: body.to_vec(),
    });
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// A merchant's endpoint on loopback. It keeps its port for the whole test (going down is
/// `Inbox::down`), so no other socket can take the port meanwhile.
struct Endpoint {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Endpoint {
    async fn start(inbox: &Inbox) -> Endpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inbox = inbox.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if inbox.down.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let inbox = inbox.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| receive(inbox.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Endpoint { addr, task }
    }
}

fn section(endpoint: SocketAddr, extra: &str) -> String {
    format!("allow = [\"http://{endpoint}\"]\n{extra}")
}

/// Every delivery so far to `path`, each checked against the validator's key as one of
/// `subscription`'s: its events' ids in the order they came (a redelivery repeats ids) and
/// their kinds.
fn delivered_to(inbox: &Inbox, path: &str, subscription: u64) -> Vec<(String, String)> {
    let node = validator_key(0).public_key();
    let posts = inbox.posts.lock().unwrap();
    let mut events = Vec::new();
    for post in posts.iter().filter(|p| p.uri.path() == path) {
        let delivery = verify_delivery(
            &node,
            subscription,
            &Method::POST,
            &post.uri,
            &post.headers,
            &post.body,
        )
        .unwrap_or_else(|e| panic!("a delivery that does not verify: {e}"));
        for event in delivery.events {
            events.push((event.id, event.kind.into_owned()));
        }
    }
    events
}

/// The ids of `delivered`, each once, in first-seen order; asserts they came in order with
/// no gap: an event is either the next unseen one or a repeat of one already seen.
fn in_order_once(delivered: &[(String, String)], expected: &[String]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for (id, _) in delivered {
        if seen.contains(id) {
            continue;
        }
        assert_eq!(
            Some(id),
            expected.get(seen.len()),
            "event {id} came out of order; seen so far {seen:?}"
        );
        seen.push(id.clone());
    }
    seen
}

async fn until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn register_merchant(net: &TestNet, id: u128) -> SigningKey {
    let merchant = key(id as u64);
    net.commit(
        Party::Institution(BANK_A),
        &[&institution_key(BANK_A), &merchant],
        TxKind::RegisterMerchant {
            account: AccountId(id),
            key: merchant.public_key(),
            currency: Currency::CNY,
            fee_bps: 100,
            identity: Hash::digest("identity", &id.to_le_bytes()),
        },
    )
    .await;
    merchant
}

/// The merchant creates `orders` and the payer pays each: a burst of submissions.
async fn sell(
    net: &TestNet,
    merchant: (u128, &SigningKey),
    payer: (u128, &SigningKey),
    orders: std::ops::RangeInclusive<u128>,
) {
    let m = Party::Account(AccountId(merchant.0));
    let p = Party::Account(AccountId(payer.0));
    let expires_at_ms = now_ms() + 3_600_000;
    let first = net.nonce(m);
    let created: Vec<_> = orders
        .clone()
        .zip(first..)
        .map(|(order, nonce)| {
            sign_at(
                m,
                nonce,
                &[merchant.1],
                TxKind::CreateOrder {
                    order: OrderId(order),
                    amount: 100,
                    currency: Currency::CNY,
                    expires_at_ms,
                    items: Hash::digest("items", &order.to_le_bytes()),
                },
            )
        })
        .collect();
    net.commit_all(&created).await;
    let first = net.nonce(p);
    let paid: Vec<_> = orders
        .zip(first..)
        .map(|(order, nonce)| {
            sign_at(
                p,
                nonce,
                &[payer.1],
                TxKind::PayOrder {
                    id: TransferId(1_000 + order),
                    order: OrderId(order),
                    source: PaymentSource::Balance,
                    escrow_ms: None,
                },
            )
        })
        .collect();
    net.commit_all(&paid).await;
}

async fn subscribe(target: &Target, body: Value) -> Answer {
    post_json(target, "/v1/webhooks", body.to_string().into_bytes()).await
}

/// Ids of the stored events of `kinds`, in stream order.
fn stored_of(net: &TestNet, kinds: &[&str]) -> Vec<String> {
    stored_events(net.storage(), net.head())
        .into_iter()
        .filter(|(_, kind, _)| kinds.contains(&kind.as_str()))
        .map(|(id, _, _)| id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_endpoint_down_for_30_s_gets_every_event_in_order_once_back() {
    let inbox = Inbox::default();
    let endpoint = Endpoint::start(&inbox).await;
    let addr = endpoint.addr;
    let net = TestNet::start_with(Setup {
        webhooks: Some(section(
            addr,
            "backoff_ms_min = 100\nbackoff_ms_max = 1000\n",
        )),
        ..Setup::default()
    })
    .await;
    let payer = net.funded_wallet(100, BANK_A, 1_000_000).await;
    let merchant = register_merchant(&net, 300).await;
    let as_merchant = net.api.as_party(Party::Account(AccountId(300)), &merchant);
    let made = subscribe(
        &as_merchant,
        json!({ "url": format!("http://{addr}/shop/tally?till=1"), "kinds": ["PaymentCompleted"] }),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    let made = made.json();
    assert_eq!(made["owner"], "account:300");
    assert_eq!(made["status"], "active");
    assert_eq!(
        made["signed_by"],
        format!("node:{}", validator_key(0).public_key())
    );
    let id = made["id"].as_u64().unwrap();

    let delivered = |inbox: &Inbox| delivered_to(inbox, "/shop/tally", id);
    sell(&net, (300, &merchant), (100, &payer), 1..=5).await;
    until("the first burst delivered", WAIT, || {
        delivered(&inbox).len() >= 5
    })
    .await;

    // The endpoint goes down for 30 s while a second burst commits.
    inbox.down.store(true, Ordering::SeqCst);
    let down_at = tokio::time::Instant::now();
    sell(&net, (300, &merchant), (100, &payer), 6..=25).await;
    tokio::time::sleep_until(down_at + Duration::from_secs(30)).await;
    let view = get(&as_merchant, &format!("/v1/webhooks/{id}"))
        .await
        .json();
    assert_eq!(view["status"], "active", "{view}");
    assert!(view["failing_since_ms"].is_u64(), "{view}");
    assert!(
        view["last_error"].as_str().unwrap().contains("connection"),
        "{view}"
    );
    let before = delivered(&inbox).len();

    inbox.down.store(false, Ordering::SeqCst);
    until("every event once the endpoint is back", WAIT, || {
        in_order_once(&delivered(&inbox), &stored_of(&net, &["PaymentCompleted"])).len() >= 25
    })
    .await;
    let expected = stored_of(&net, &["PaymentCompleted"]);
    assert_eq!(expected.len(), 25);
    let got = delivered(&inbox);
    assert_eq!(in_order_once(&got, &expected), expected);
    assert!(got.iter().all(|(_, kind)| kind == "PaymentCompleted"));
    assert_eq!(
        before, 5,
        "nothing was delivered while the endpoint was down"
    );
    // The cursor is written after the endpoint's answer: read until it is.
    let view = poll(&as_merchant, &format!("/v1/webhooks/{id}"), |v| {
        v["delivered"].as_u64() == Some(25)
    })
    .await;
    assert!(view.get("last_error").is_none(), "{view}");
    let metrics = get(&net.api, "/metrics").await.text();
    assert!(
        metrics.contains("tally_webhook_deliveries_total{outcome=\"failed\"}"),
        "{metrics}"
    );
    drop(endpoint);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_answers_its_owner_alone_and_posts_only_where_allowed() {
    let inbox = Inbox::default();
    let endpoint = Endpoint::start(&inbox).await;
    let addr = endpoint.addr;
    let net = TestNet::start_with(Setup {
        webhooks: Some(section(addr, "per_party_max = 2\n")),
        ..Setup::default()
    })
    .await;
    let alice = net.funded_wallet(100, BANK_A, 10_000).await;
    let bob = net.funded_wallet(200, BANK_B, 0).await;
    let as_alice = net.api.as_party(Party::Account(AccountId(100)), &alice);
    let as_bob = net.api.as_party(Party::Account(AccountId(200)), &bob);
    let bank_b = net.api.as_institution(BANK_B);

    // Alice asks for every event touching Bob's account: the filter cannot widen her sight.
    let spy = subscribe(
        &as_alice,
        json!({ "url": format!("http://{addr}/alice"), "account": "200" }),
    )
    .await;
    assert_eq!(spy.status, StatusCode::CREATED, "{}", spy.text());
    let spy = spy.json()["id"].as_u64().unwrap();
    let own = subscribe(&as_bob, json!({ "url": format!("http://{addr}/bob") })).await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.text());
    let bob_hook = own.json()["id"].as_u64().unwrap();

    // Another party (a customer, a competing bank) cannot read, replay or remove it.
    for other in [&as_bob, &bank_b] {
        get(other, &format!("/v1/webhooks/{spy}"))
            .await
            .error(StatusCode::NOT_FOUND, "NOT_FOUND");
        call(
            other,
            "DELETE",
            &format!("/v1/webhooks/{spy}"),
            &[],
            Vec::new(),
        )
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
        post_json(other, &format!("/v1/webhooks/{spy}/replay"), b"{}".to_vec())
            .await
            .error(StatusCode::NOT_FOUND, "NOT_FOUND");
        let listed = get(other, "/v1/webhooks").await.json();
        assert!(
            listed["subscriptions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["id"] != spy),
            "{listed}"
        );
    }
    subscribe(
        &net.api.anonymous(),
        json!({ "url": format!("http://{addr}/x") }),
    )
    .await
    .error(StatusCode::UNAUTHORIZED, "CREDENTIALS_REQUIRED");

    // Only the operator's origins: not another port, not the cloud's metadata address,
    // not https at an http origin; and malformed requests change nothing.
    let other_port = SocketAddr::new(addr.ip(), addr.port().wrapping_add(1).max(1));
    for url in [
        format!("http://{other_port}/x"),
        "http://169.254.169.254/latest/meta-data".to_string(),
        format!("https://{addr}/x"),
        format!("http://{addr}.evil.example/x"),
    ] {
        subscribe(&as_alice, json!({ "url": url }))
            .await
            .error(StatusCode::FORBIDDEN, "URL_NOT_ALLOWED");
    }
    for (body, code) in [
        (json!({ "url": "ftp://127.0.0.1/x" }), "BAD_URL"),
        (
            json!({ "url": format!("http://{addr}/x"), "kinds": ["Nope"] }),
            "BAD_KIND",
        ),
        (
            json!({ "url": format!("http://{addr}/x"), "kinds": ["ToppedUp", "ToppedUp"] }),
            "BAD_KIND",
        ),
        (
            json!({ "url": format!("http://{addr}/x"), "from": "x" }),
            "BAD_CURSOR",
        ),
        (
            json!({ "url": format!("http://{addr}/x"), "account": "-1" }),
            "BAD_ID",
        ),
        (
            json!({ "url": format!("http://{addr}/x"), "color": "red" }),
            "BAD_BODY",
        ),
    ] {
        subscribe(&as_alice, body)
            .await
            .error(StatusCode::BAD_REQUEST, code);
    }
    // Two a party at most, here.
    let second = subscribe(
        &as_alice,
        json!({ "url": format!("http://{addr}/alice2"), "kinds": ["KeyRotated"] }),
    )
    .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text());
    subscribe(&as_alice, json!({ "url": format!("http://{addr}/alice3") }))
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_WEBHOOKS");
    let listed = get(&as_alice, "/v1/webhooks").await.json();
    assert_eq!(
        listed["subscriptions"].as_array().unwrap().len(),
        2,
        "{listed}"
    );

    // Alice pays Bob; Bob's bank tops him up (Alice may not see that); Alice pays again.
    let pay = |n: u128| {
        net.sign(
            Party::Account(AccountId(100)),
            &[&alice],
            TxKind::Transfer {
                id: TransferId(50 + n),
                to: AccountId(200),
                amount: 10,
                memo: Memo::NONE,
            },
        )
    };
    net.commit_signed(&pay(1)).await;
    net.commit(
        Party::Account(AccountId(200)),
        &[&bob, &institution_key(BANK_B)],
        TxKind::TopUp {
            id: TransferId(77),
            card: CardToken([200; 32]),
            amount: 500,
        },
    )
    .await;
    net.commit_signed(&pay(2)).await;
    let to_alice = |inbox: &Inbox| delivered_to(inbox, "/alice", spy);
    until("Alice's two transfers", WAIT, || {
        to_alice(&inbox).len() >= 2
    })
    .await;
    let transfers = stored_of(&net, &["TransferReceived"]);
    let got = to_alice(&inbox);
    assert_eq!(in_order_once(&got, &transfers), transfers);
    assert!(
        got.iter().all(|(_, kind)| kind == "TransferReceived"),
        "Alice got an event of Bob's she may not see: {got:?}"
    );
    // Bob's own subscription has his top-up.
    until("Bob's top-up", WAIT, || {
        delivered_to(&inbox, "/bob", bob_hook)
            .iter()
            .any(|(_, kind)| kind == "ToppedUp")
    })
    .await;
    // A delivery is genuine for its own subscription alone: one of Alice's, aimed at Bob's
    // URL, is refused by Bob's check (his id), however well signed.
    let refused = {
        let node = validator_key(0).public_key();
        let posts = inbox.posts.lock().unwrap();
        let alices = posts.iter().find(|p| p.uri.path() == "/alice").unwrap();
        verify_delivery(
            &node,
            bob_hook,
            &Method::POST,
            &alices.uri,
            &alices.headers,
            &alices.body,
        )
    };
    assert!(
        matches!(refused, Err(DeliveryError::OtherSubscription { expected, found }) if expected == bob_hook && found == spy),
        "{refused:?}"
    );
    // Alice removes hers; it is gone for her and for everyone.
    let removed = call(
        &as_alice,
        "DELETE",
        &format!("/v1/webhooks/{spy}"),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    get(&as_alice, &format!("/v1/webhooks/{spy}"))
        .await
        .error(StatusCode::NOT_FOUND, "NOT_FOUND");
    drop(endpoint);
    net.shutdown().await;

    // A node without [webhooks] registers none.
    let plain = TestNet::start().await;
    subscribe(&plain.api, json!({ "url": "http://127.0.0.1:9/x" }))
        .await
        .error(StatusCode::CONFLICT, "WEBHOOKS_OFF");
    plain.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_past_its_window_is_paused_and_a_replay_resumes_it() {
    let inbox = Inbox::default();
    inbox.failing.store(true, Ordering::SeqCst);
    let endpoint = Endpoint::start(&inbox).await;
    let addr = endpoint.addr;
    let net = TestNet::start_with(Setup {
        webhooks: Some(section(
            addr,
            "retry_for_ms = 1500\nbackoff_ms_min = 100\nbackoff_ms_max = 200\n",
        )),
        ..Setup::default()
    })
    .await;
    let alice = net.funded_wallet(100, BANK_A, 10_000).await;
    let as_alice = net.api.as_party(Party::Account(AccountId(100)), &alice);
    // From the first block: her registration, card and top-up are delivered too.
    let kinds = ["AccountRegistered", "CardBound", "ToppedUp"];
    let made = subscribe(
        &as_alice,
        json!({ "url": format!("http://{addr}/alice"), "kinds": kinds, "from": "1:0" }),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    let id = made.json()["id"].as_u64().unwrap();
    let path = format!("/v1/webhooks/{id}");
    let delivered = |inbox: &Inbox| delivered_to(inbox, "/alice", id);

    let view = poll(&as_alice, &path, |v| v["status"] == "paused").await;
    let reason = view["paused_reason"].as_str().unwrap();
    assert!(reason.contains("HTTP 500"), "{view}");
    assert!(view["paused_at_ms"].is_u64(), "{view}");
    assert_eq!(view["delivered"].as_u64(), Some(0), "{view}");
    assert!(delivered(&inbox).is_empty());
    let metrics = get(&net.api, "/metrics").await.text();
    assert!(
        metrics.contains("tally_webhook_deliveries_total{outcome=\"paused\"} 1"),
        "{metrics}"
    );

    // Paused, it stays paused: more events, no attempt.
    let attempts = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("tally_webhook_deliveries_total{outcome=\"failed\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap()
    };
    let failed = attempts(&metrics);
    net.commit(
        Party::Account(AccountId(100)),
        &[&alice, &institution_key(BANK_A)],
        TxKind::TopUp {
            id: TransferId(900),
            card: CardToken([100; 32]),
            amount: 5,
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(attempts(&get(&net.api, "/metrics").await.text()), failed);

    // The endpoint is mended; the owner resumes it at its cursor (nothing was acknowledged,
    // so the start): every event, in order.
    inbox.failing.store(false, Ordering::SeqCst);
    let replayed = post_json(&as_alice, &format!("{path}/replay"), b"{}".to_vec()).await;
    assert_eq!(replayed.status, StatusCode::OK, "{}", replayed.text());
    assert_eq!(replayed.json()["status"], "active");
    let expected = stored_of(&net, &kinds);
    assert_eq!(expected.len(), 4, "{expected:?}");
    until("every event after the replay", WAIT, || {
        in_order_once(&delivered(&inbox), &expected).len() == expected.len()
    })
    .await;
    assert_eq!(in_order_once(&delivered(&inbox), &expected), expected);
    // Acknowledged (the cursor written) before the next replay, so the counts add up.
    poll(&as_alice, &path, |v| v["delivered"].as_u64() == Some(4)).await;

    // A replay from an event id delivers from that event again.
    let posts_before = inbox.posts.lock().unwrap().len();
    let again = json!({ "from": expected[2] }).to_string().into_bytes();
    let replayed = post_json(&as_alice, &format!("{path}/replay"), again).await;
    assert_eq!(replayed.json()["next"], expected[2].as_str());
    until("the replayed events", WAIT, || {
        inbox.posts.lock().unwrap().len() > posts_before
            && delivered(&inbox).len() >= expected.len() + 2
    })
    .await;
    let got = delivered(&inbox);
    let tail: Vec<&str> = got[expected.len()..]
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(tail, [expected[2].as_str(), expected[3].as_str()]);
    poll(&as_alice, &path, |v| v["delivered"].as_u64() == Some(6)).await;
    drop(endpoint);
    net.shutdown().await;
}

/// Reads `path` until `done` holds for the answer, bounded by [`WAIT`].
async fn poll(target: &Target, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let view = get(target, path).await.json();
        if done(&view) {
            return view;
        }
        assert!(tokio::time::Instant::now() < deadline, "{path}: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
