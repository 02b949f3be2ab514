//! The HTTP API of an in-process node on a loopback port, served over TLS as `tally node
//! run` serves it (a certificate from a test CA), and requests to it through the project's
//! client, signed as the regulator (who may read everything these tests look at).
//!
//! A server is named by its address: [`serve`] keeps, per address, the client that trusts
//! its CA and holds the regulator's credential, and [`get`] finds it there.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use hyper::StatusCode;
use tally_contracts::Party;
use tally_node::node::Node;
use tally_sdk::{Api, ClientTls, Credential};

/// Every request of these helpers is answered within this, or fails.
pub const REQUEST_WAIT: Duration = Duration::from_secs(30);

/// The client of each server started here, by address (signed as the regulator).
static CLIENTS: Mutex<BTreeMap<SocketAddr, Api>> = Mutex::new(BTreeMap::new());

/// A node's API served on a loopback port. It holds the node's storage open: stop it before
/// the node is restarted on the same data directory.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    /// The client, signed as the regulator.
    pub api: Api,
    /// The server certificate's key (PEM), for a browser to pin.
    pub key_pem: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
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
        CLIENTS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.addr);
    }
}

/// Serves `node`'s API over TLS on a free loopback port until stopped or dropped.
pub async fn serve(node: &Node) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let ca = tally_node::api::tls::new_ca("Tally test CA")?;
    let cert = tally_node::api::tls::new_server_certificate(&ca, &["127.0.0.1".to_string()])?;
    let ca_file = dir.path().join("ca.pem");
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&ca_file, &ca.cert_pem)?;
    std::fs::write(&cert_file, &cert.cert_pem)?;
    std::fs::write(&key_file, &cert.key_pem)?;
    let tls = tally_node::api::tls::server_config(&cert_file, &key_file)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tally_node::api::serve(
        listener,
        node.context.clone(),
        Some(tls),
        tally_node::api::Options::default(),
        async {
            let _ = stopped.await;
        },
    );
    let task = tokio::spawn(async move {
        let _ = serving.await;
    });
    let regulator = crate::common::REGULATOR;
    let api =
        Api::https(addr, &ClientTls::from_ca_file(&ca_file)?).signed_as(Credential::of_party(
            Party::Institution(regulator),
            crate::common::institution_key(regulator),
        ));
    CLIENTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(addr, api.clone());
    Ok(Server {
        addr,
        api,
        key_pem: cert.key_pem,
        stop: Some(stop),
        task,
        _dir: dir,
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

/// The regulator's client of the server at `addr`.
pub fn client(addr: SocketAddr) -> Result<Api> {
    CLIENTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&addr)
        .cloned()
        .with_context(|| format!("no API served at {addr} by these helpers"))
}

/// `GET path` on the server at `addr`, as the regulator.
pub async fn get(addr: SocketAddr, path: &str) -> Result<Answer> {
    let api = client(addr)?;
    let answer = tokio::time::timeout(REQUEST_WAIT, api.get(path))
        .await
        .with_context(|| format!("GET {path}: no answer in {REQUEST_WAIT:?}"))?
        .with_context(|| format!("GET {path}"))?;
    Ok(Answer {
        status: answer.status,
        headers: answer.headers,
        body: answer.body.to_vec(),
    })
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
