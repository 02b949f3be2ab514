//! Webhooks from a bank's or a merchant's side: register, read, replay and remove the
//! party's subscriptions (`/v1/webhooks`, signed as the party like every read), and check a
//! delivery as the endpoint receives it ([`verify_delivery`]).
//!
//! A receiver checks each POST against the node's key (the subscription's `signed_by`) and
//! its own subscription's id before believing it, keeps the id of the last event it
//! processed, and skips any event at or before it: deliveries come at least once, in order.
//! The id matters: the node signs every party's deliveries with one key, and any party may
//! aim a subscription of its own at another's URL (at an allowed origin), so a delivery
//! for another subscription is genuine, and not the receiver's.

use hyper::{HeaderMap, Method, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use tally_crypto::PublicKey;
pub use tally_wire::events::EventView;
use tally_wire::signature::{self, SignatureError};
pub use tally_wire::webhook::{NewSubscription, SubscriptionView};

use crate::ClientError;
use crate::api::{Answer, Api};

#[derive(Deserialize)]
struct SubscriptionsView {
    subscriptions: Vec<SubscriptionView>,
}

/// `answer` as `T` when its status is `expected`, else the API's error.
fn expect<T: serde::de::DeserializeOwned>(
    answer: &Answer,
    expected: StatusCode,
) -> Result<T, ClientError> {
    if answer.status != expected {
        return Err(answer.error());
    }
    serde_json::from_slice(&answer.body)
        .map_err(|e| ClientError::Answer(format!("unexpected answer shape: {e}")))
}

fn json_body(value: &impl Serialize) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(value).map_err(|e| ClientError::Answer(e.to_string()))
}

const JSON: [(&str, &str); 1] = [("content-type", "application/json")];

impl Api {
    /// Registers a subscription for the party this client signs as.
    pub async fn subscribe_webhook(
        &self,
        new: &NewSubscription,
    ) -> Result<SubscriptionView, ClientError> {
        let answer = self
            .request(Method::POST, "/v1/webhooks", &JSON, json_body(new)?)
            .await?;
        expect(&answer, StatusCode::CREATED)
    }

    /// The party's subscriptions.
    pub async fn webhooks(&self) -> Result<Vec<SubscriptionView>, ClientError> {
        let view: SubscriptionsView = self.get_json("/v1/webhooks").await?;
        Ok(view.subscriptions)
    }

    pub async fn webhook(&self, id: u64) -> Result<SubscriptionView, ClientError> {
        self.get_json(&format!("/v1/webhooks/{id}")).await
    }

    pub async fn remove_webhook(&self, id: u64) -> Result<(), ClientError> {
        let answer = self
            .request(
                Method::DELETE,
                &format!("/v1/webhooks/{id}"),
                &[],
                Vec::new(),
            )
            .await?;
        if answer.status == StatusCode::NO_CONTENT {
            Ok(())
        } else {
            Err(answer.error())
        }
    }

    /// Moves the subscription's cursor to `from` (or keeps it) and resumes it.
    pub async fn replay_webhook(
        &self,
        id: u64,
        from: Option<&str>,
    ) -> Result<SubscriptionView, ClientError> {
        let body = json_body(&serde_json::json!({ "from": from }))?;
        let answer = self
            .request(
                Method::POST,
                &format!("/v1/webhooks/{id}/replay"),
                &JSON,
                body,
            )
            .await?;
        expect(&answer, StatusCode::OK)
    }
}

/// A checked delivery.
#[derive(Debug, Clone, Deserialize)]
pub struct Delivery {
    pub subscription: u64,
    pub events: Vec<EventView>,
    /// When the node signed it (seconds since the epoch): a retry is signed afresh.
    #[serde(skip)]
    pub created: i64,
}

/// Why a delivery is not believed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the request carries no signature")]
    Unsigned,
    #[error("signed as {found:?}, not as the node {expected:?}")]
    WrongSigner { expected: String, found: String },
    #[error("a delivery for subscription {found}, not this endpoint's {expected}")]
    OtherSubscription { expected: u64, found: u64 },
    #[error("signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("the body is not a delivery: {0}")]
    Body(String),
}

/// Checks a POST an endpoint received: signed by `node` (RFC 9421 over the method, the
/// target and the body's digest), the digest matching the body, and the body a delivery
/// for `subscription` (the id the endpoint's registration answered). `uri` is the
/// request's target as received (path and query; the host is read from `Host` when the URI
/// has none).
pub fn verify_delivery(
    node: &PublicKey,
    subscription: u64,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Delivery, DeliveryError> {
    let presented = signature::presented(headers)?.ok_or(DeliveryError::Unsigned)?;
    let expected = tally_wire::webhook::node_keyid(node);
    if presented.keyid != expected {
        return Err(DeliveryError::WrongSigner {
            expected,
            found: presented.keyid,
        });
    }
    presented.check_coverage(true)?;
    signature::check_digest(headers, body)?;
    let message = signature::Message {
        method,
        scheme: uri.scheme_str().unwrap_or("http"),
        uri,
        headers,
    };
    presented.verify(&message, node)?;
    let mut delivery: Delivery =
        serde_json::from_slice(body).map_err(|e| DeliveryError::Body(e.to_string()))?;
    if delivery.subscription != subscription {
        return Err(DeliveryError::OtherSubscription {
            expected: subscription,
            found: delivery.subscription,
        });
    }
    delivery.created = presented.created;
    Ok(delivery)
}
