//! A merchant's shop endpoint, as a merchant would run one: it takes the node's webhook
//! deliveries on the devnet's sink, checks each against the node's key
//! and its own subscription (`tally_sdk::webhook::verify_delivery`) before
//! believing it, answers 204 to a good one and 401 to anything else (another
//! subscription's delivery included), and hands the checked deliveries to the story.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tally_crypto::PublicKey;
use tally_sdk::webhook::{Delivery, verify_delivery};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The most a delivery's body may be.
const BODY_BYTES_MAX: usize = 4 << 20;
/// Deliveries held for the story before the shop answers 503.
const HELD_MAX: usize = 64;

/// The shop, listening until dropped.
#[derive(Debug)]
pub struct Shop {
    deliveries: mpsc::Receiver<Delivery>,
    task: JoinHandle<()>,
}

impl Drop for Shop {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn take(
    request: Request<Incoming>,
    node: PublicKey,
    subscription: u64,
    held: mpsc::Sender<Delivery>,
) -> Result<Response<Empty<Bytes>>, std::convert::Infallible> {
    let (parts, body) = request.into_parts();
    let checked = match Limited::new(body, BODY_BYTES_MAX).collect().await {
        Ok(body) => verify_delivery(
            &node,
            subscription,
            &parts.method,
            &parts.uri,
            &parts.headers,
            &body.to_bytes(),
        )
        .ok(),
        Err(_) => None,
    };
    let status = match checked {
        None => StatusCode::UNAUTHORIZED,
        Some(delivery) => match held.try_send(delivery) {
            Ok(()) => StatusCode::NO_CONTENT,
            // The story is not reading: the node will deliver it again.
            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        },
    };
    let mut response = Response::new(Empty::new());
    *response.status_mut() = status;
    Ok(response)
}

impl Shop {
    /// Listens on `sink` for deliveries of `subscription` signed by `node`.
    pub async fn open(sink: SocketAddr, node: PublicKey, subscription: u64) -> Result<Shop> {
        let listener = tokio::net::TcpListener::bind(sink)
            .await
            .with_context(|| format!("the shop cannot listen on the webhook sink {sink}"))?;
        let (sender, deliveries) = mpsc::channel(HELD_MAX);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let held = sender.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        take(request, node, subscription, held.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Shop { deliveries, task })
    }

    /// The next delivery that verified; an error when none came in time.
    pub async fn next(&mut self, within: Duration) -> Result<Delivery> {
        match tokio::time::timeout(within, self.deliveries.recv()).await {
            Ok(Some(delivery)) => Ok(delivery),
            Ok(None) => Err(anyhow!("the shop stopped listening")),
            Err(_) => Err(anyhow!("no delivery that verified within {within:?}")),
        }
    }
}
