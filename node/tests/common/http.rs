//! The HTTP API of an in-process node on a loopback port, and a plain HTTP/1 client for it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tally_node::node::Node;

/// Every request of these helpers is answered within this, or fails.
pub const REQUEST_WAIT: Duration = Duration::from_secs(30);

/// A node's API served on a loopback port. It holds the node's storage open: stop it before
/// the node is restarted on the same data directory.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops taking connections and waits for open ones to end.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(REQUEST_WAIT, &mut self.task)
            .await
            .context("the API did not stop in time")??;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `node`'s API on a free loopback port until stopped or dropped.
pub async fn serve(node: &Node) -> Result<Server> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = tally_node::api::router(node.context.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(Server {
        addr,
        stop: Some(stop),
        task,
    })
}

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| format!("not JSON: {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The answer is a JSON error with this status and code.
    pub fn error(&self, status: StatusCode, code: &str) -> Result<()> {
        anyhow::ensure!(
            self.status == status,
            "expected {status}, got {}: {}",
            self.status,
            self.text()
        );
        let json = self.json()?;
        anyhow::ensure!(
            json.get("code").and_then(|c| c.as_str()) == Some(code),
            "expected code {code}: {json}"
        );
        anyhow::ensure!(
            json.get("message").is_some_and(|m| m.is_string()),
            "no message: {json}"
        );
        Ok(())
    }
}

/// `GET path` on `addr`.
pub async fn get(addr: SocketAddr, path: &str) -> Result<Answer> {
    let send = async {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method("GET")
            .uri(path)
            .header("host", "tally.test")
            .body(Full::new(Bytes::new()))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes().to_vec();
        anyhow::Ok(Answer {
            status,
            headers,
            body,
        })
    };
    tokio::time::timeout(REQUEST_WAIT, send)
        .await
        .with_context(|| format!("GET {path}: no answer in {REQUEST_WAIT:?}"))?
        .with_context(|| format!("GET {path}"))
}

/// `GET path`, which must answer 200 with JSON.
pub async fn get_json(addr: SocketAddr, path: &str) -> Result<serde_json::Value> {
    let answer = get(addr, path).await?;
    anyhow::ensure!(
        answer.status == StatusCode::OK,
        "GET {path}: {} {}",
        answer.status,
        answer.text()
    );
    answer.json()
}
