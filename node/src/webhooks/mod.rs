//! Webhooks: the node POSTs committed events to a URL a party registered, signed with the
//! node's key, so a merchant's shop or a bank's back office learns of a payment without
//! holding an event stream open.
//!
//! **What a party gets.** A subscription belongs to the party that signed the request
//! making it (`institution:ID` or `account:ID`); it carries exactly the events that party's
//! own `/v1/events` stream would (see `api::caller`; the owner is looked up again at every
//! scan, and one the API would refuse, a revoked key, pauses it), narrowed by the stream's filter
//! fields, in the stream's order, with the stream's ids (`"{height}:{index}"`). Delivery is
//! at least once, in order per subscription: a batch is sent again until the endpoint
//! answers 2xx, and the next batch waits for it. A receiver keeps the last id it
//! processed and skips what it has seen. A replay (`POST /v1/webhooks/{id}/replay`) moves
//! the subscription's cursor back (or forward) to any event id and resumes it.
//!
//! **A dead endpoint costs the node nothing.** No event is queued for a subscription:
//! each one's task reads committed results from storage at its own cursor, as a stream
//! does, holding one batch in memory at most. A failing endpoint is retried with
//! exponential backoff (`backoff_ms_min` doubling to `backoff_ms_max`); when it has failed
//! for `retry_for_ms` with no success the subscription is paused with the reason, and
//! stays paused until its owner replays it. Cursors live in their own database file
//! (`registry`), so writing them never waits for a block's commit.
//!
//! **Signatures.** Each delivery is signed by the node's key as RFC 9421 HTTP Message
//! Signatures (as clients sign their requests to the node, `tally_wire::signature`): covered
//! `@method`, `@authority`, `@path`, `@query` and `content-digest`,
//! `keyid="node:{public key}"`.
//! The SDK's `tally_sdk::webhook::verify_delivery` checks one, for the receiver's own
//! subscription id (the node signs every party's deliveries alike, so an endpoint must
//! refuse another subscription's, which anyone could aim at its URL); the key is in every
//! subscription's view.
//!
//! **Attackers.**
//! - *Another party* (a competing bank, a customer): reads, replays or removes only its own
//!   subscriptions (another's id answers 404, as one that does not exist), and a
//!   subscription's filter never widens what its owner may see: sight is checked per event.
//! - *A party aiming the node at the operator's own network* (server-side request forgery:
//!   the admin port, a cloud metadata address): the node posts only to origins the
//!   operator lists in `[webhooks] allow`; everything else is refused at registration.
//!   Redirects are not followed (a 3xx is a failed delivery).
//! - *A dead, slow or hostile endpoint*: each request is bounded (`timeout_ms`), its answer
//!   is never read, and nothing of it waits on the commit path (above). Subscriptions are
//!   counted per party and per node (`per_party_max`, `subscriptions_max`).
//! - *Someone posing as the node to a merchant*: cannot sign as its key; a captured
//!   delivery replayed carries ids the receiver has already processed.

mod delivery;
pub mod registry;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper::Uri;
use serde::Deserialize;
use tally_crypto::{PublicKey, SigningKey};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::storage::Storage;
pub use registry::{EventFilter, Registry, RegistryError, Status, Subscription};

/// The longest URL a subscription may name.
pub const URL_BYTES_MAX: usize = 2_048;

/// `[webhooks]` as the configuration file holds it. Without the section a node delivers no
/// webhooks and refuses to register any.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The origins (`scheme://host[:port]`) endpoints may be at.
    pub allow: Vec<String>,
    /// CA certificates (PEM) that `https` endpoints' certificates must chain to; without it,
    /// `https` endpoints are refused. The system's bundle is a fine choice.
    pub ca_file: Option<PathBuf>,
    #[serde(default = "defaults::retry_for_ms")]
    pub retry_for_ms: u64,
    #[serde(default = "defaults::backoff_ms_min")]
    pub backoff_ms_min: u64,
    #[serde(default = "defaults::backoff_ms_max")]
    pub backoff_ms_max: u64,
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "defaults::batch_events_max")]
    pub batch_events_max: u64,
    #[serde(default = "defaults::per_party_max")]
    pub per_party_max: u64,
    #[serde(default = "defaults::subscriptions_max")]
    pub subscriptions_max: u64,
}

mod defaults {
    /// A day: an endpoint down over a night comes back to every event (on a node that keeps
    /// the blocks: a cursor below `[pruning] keep_blocks` pauses the subscription).
    pub fn retry_for_ms() -> u64 {
        86_400_000
    }
    pub fn backoff_ms_min() -> u64 {
        500
    }
    pub fn backoff_ms_max() -> u64 {
        60_000
    }
    pub fn timeout_ms() -> u64 {
        10_000
    }
    pub fn batch_events_max() -> u64 {
        100
    }
    pub fn per_party_max() -> u64 {
        8
    }
    /// Each active subscription's task remembers up to 10,000 lookups of who holds what
    /// (its owner's `Sight`), well under a megabyte: 256 of them stay within a node's means.
    pub fn subscriptions_max() -> u64 {
        256
    }
}

/// The most any `[webhooks]` count or duration may be.
const SETTING_MAX: u64 = 1 << 40;

/// Where a webhook may be delivered: a scheme, a host and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// A URL a webhook is delivered to, checked: absolute `http` or `https`, a host, no user
/// name or password, no fragment, at most [`URL_BYTES_MAX`] bytes.
pub fn parse_url(text: &str) -> Result<(Uri, Origin), String> {
    if text.len() > URL_BYTES_MAX {
        return Err(format!("a URL is at most {URL_BYTES_MAX} bytes"));
    }
    if text.contains('#') {
        return Err("a URL has no fragment here".to_string());
    }
    let uri: Uri = text.parse().map_err(|e| format!("{e}"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => "http",
        Some("https") => "https",
        _ => return Err("the scheme must be http or https".to_string()),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| "the URL names no host".to_string())?;
    if authority.as_str().contains('@') {
        return Err("a URL carries no user name or password".to_string());
    }
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return Err("the URL names no host".to_string());
    }
    let port = authority
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let origin = Origin {
        scheme: scheme.to_string(),
        host,
        port,
    };
    Ok((uri, origin))
}

/// `[webhooks]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub allow: Vec<Origin>,
    pub ca_file: Option<PathBuf>,
    pub retry_for_ms: u64,
    pub backoff_ms_min: u64,
    pub backoff_ms_max: u64,
    pub timeout_ms: u64,
    pub batch_events_max: usize,
    pub per_party_max: usize,
    pub subscriptions_max: usize,
}

impl Settings {
    /// Checks the section; paths are relative to `base` (the configuration's folder).
    pub fn check(entry: Entry, base: &Path) -> Result<Settings, String> {
        let mut allow = Vec::new();
        for (i, text) in entry.allow.iter().enumerate() {
            let (uri, origin) = parse_url(text).map_err(|e| format!("allow[{i}] {text:?}: {e}"))?;
            if uri.path() != "/" || uri.query().is_some() {
                return Err(format!(
                    "allow[{i}] {text:?}: an origin is scheme://host[:port], without a path"
                ));
            }
            allow.push(origin);
        }
        for (name, value) in [
            ("retry_for_ms", entry.retry_for_ms),
            ("backoff_ms_min", entry.backoff_ms_min),
            ("backoff_ms_max", entry.backoff_ms_max),
            ("timeout_ms", entry.timeout_ms),
            ("batch_events_max", entry.batch_events_max),
            ("per_party_max", entry.per_party_max),
            ("subscriptions_max", entry.subscriptions_max),
        ] {
            if value == 0 || value > SETTING_MAX {
                return Err(format!("{name} must be from 1 to {SETTING_MAX}"));
            }
        }
        if entry.backoff_ms_min > entry.backoff_ms_max {
            return Err("backoff_ms_min must not be above backoff_ms_max".to_string());
        }
        let ca_file = entry.ca_file.map(|p| base.join(p));
        if let Some(path) = &ca_file
            && !path.is_file()
        {
            return Err(format!("ca_file {} does not exist", path.display()));
        }
        let count = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Ok(Settings {
            allow,
            ca_file,
            retry_for_ms: entry.retry_for_ms,
            backoff_ms_min: entry.backoff_ms_min,
            backoff_ms_max: entry.backoff_ms_max,
            timeout_ms: entry.timeout_ms,
            batch_events_max: count(entry.batch_events_max),
            per_party_max: count(entry.per_party_max),
            subscriptions_max: count(entry.subscriptions_max),
        })
    }

    /// Whether the operator allows deliveries to `origin`.
    pub fn allows(&self, origin: &Origin) -> bool {
        self.allow.contains(origin)
    }
}

/// Why a subscription could not be made or changed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Registry(#[from] RegistryError),
    #[error("the URL is not one: {0}")]
    BadUrl(String),
    #[error(
        "this node does not deliver to {0}: the operator allows only the origins in [webhooks] allow"
    )]
    OriginNotAllowed(Origin),
    #[error("this node has no CA certificates for https endpoints ([webhooks] ca_file)")]
    NoTrustForHttps,
    #[error("this party already holds {0} subscriptions, the most one may")]
    PartyFull(usize),
    #[error("this node already holds {0} subscriptions, the most it may")]
    NodeFull(usize),
    #[error("TLS: {0}")]
    Tls(String),
}

/// What the delivery tasks share.
struct Shared {
    settings: Settings,
    registry: Registry,
    storage: Storage,
    committed: watch::Receiver<u64>,
    key: SigningKey,
    client: tally_sdk::api::HttpClient,
    metrics: Arc<Metrics>,
}

/// The node's webhooks: the registry and one delivery task per active subscription.
pub struct Webhooks {
    shared: Arc<Shared>,
    tasks: Mutex<BTreeMap<u64, JoinHandle<()>>>,
    /// Held across a change of a subscription and the restart of its task, so two replays
    /// (or a replay and a removal) at once cannot leave a task for an older generation, or
    /// one for a removed subscription.
    changing: Mutex<()>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("allow", &self.shared.settings.allow)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Opens the registry in `data_dir` and starts delivering to every active subscription.
    /// Must run inside the node's tokio runtime.
    pub fn start(
        settings: Settings,
        data_dir: &Path,
        storage: Storage,
        committed: watch::Receiver<u64>,
        key: SigningKey,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Webhooks>, WebhookError> {
        let tls = match &settings.ca_file {
            Some(path) => tally_sdk::ClientTls::from_ca_file(path)
                .map_err(|e| WebhookError::Tls(e.to_string()))?,
            None => tally_sdk::ClientTls::none(),
        };
        let registry = Registry::open(data_dir)?;
        let webhooks = Arc::new(Webhooks {
            shared: Arc::new(Shared {
                client: tally_sdk::api::http_client(&tls),
                settings,
                registry,
                storage,
                committed,
                key,
                metrics,
            }),
            tasks: Mutex::new(BTreeMap::new()),
            changing: Mutex::new(()),
        });
        for subscription in webhooks.shared.registry.all()? {
            if subscription.status == Status::Active {
                webhooks.spawn(&subscription);
            }
        }
        Ok(webhooks)
    }

    /// The key deliveries are signed with.
    pub fn signing_key(&self) -> PublicKey {
        self.shared.key.public_key()
    }

    /// The `keyid` deliveries are signed as.
    pub fn keyid(&self) -> String {
        tally_wire::webhook::node_keyid(&self.signing_key())
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, JoinHandle<()>>> {
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn changing(&self) -> std::sync::MutexGuard<'_, ()> {
        self.changing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts (or restarts) delivering `subscription` from its cursor.
    fn spawn(&self, subscription: &Subscription) {
        let task = tokio::spawn(delivery::run(
            self.shared.clone(),
            subscription.id,
            subscription.generation,
        ));
        if let Some(old) = self.tasks().insert(subscription.id, task) {
            old.abort();
        }
    }

    fn stop_task(&self, id: u64) {
        if let Some(task) = self.tasks().remove(&id) {
            task.abort();
        }
    }

    /// Registers a subscription for `owner`, delivering from `next` on. `owner` is the
    /// authenticated party; the filter was checked by the caller.
    pub fn subscribe(
        &self,
        owner: String,
        url: &str,
        filter: EventFilter,
        next: (u64, u32),
    ) -> Result<Subscription, WebhookError> {
        let (_, origin) = parse_url(url).map_err(WebhookError::BadUrl)?;
        if !self.shared.settings.allows(&origin) {
            return Err(WebhookError::OriginNotAllowed(origin));
        }
        if origin.scheme == "https" && self.shared.settings.ca_file.is_none() {
            return Err(WebhookError::NoTrustForHttps);
        }
        let settings = &self.shared.settings;
        let admitted = self.shared.registry.insert(
            |held| {
                if held.len() >= settings.subscriptions_max {
                    return Err(WebhookError::NodeFull(settings.subscriptions_max));
                }
                if held.iter().filter(|s| s.owner == owner).count() >= settings.per_party_max {
                    return Err(WebhookError::PartyFull(settings.per_party_max));
                }
                Ok(())
            },
            |id| Subscription {
                id,
                owner: owner.clone(),
                url: url.to_string(),
                filter,
                next,
                status: Status::Active,
                generation: 0,
                delivered: 0,
                failing_since_ms: None,
                last_error: None,
                created_ms: crate::clock::now_ms(),
            },
        )?;
        let subscription = admitted?;
        let _changing = self.changing();
        self.spawn(&subscription);
        Ok(subscription)
    }

    /// `owner`'s subscriptions, in id order.
    pub fn owned_by(&self, owner: &str) -> Result<Vec<Subscription>, WebhookError> {
        Ok(self
            .shared
            .registry
            .all()?
            .into_iter()
            .filter(|s| s.owner == owner)
            .collect())
    }

    /// Subscription `id` if `owner` holds it: another party's is as absent as none.
    pub fn owned(&self, owner: &str, id: u64) -> Result<Option<Subscription>, WebhookError> {
        Ok(self.shared.registry.get(id)?.filter(|s| s.owner == owner))
    }

    /// Removes `owner`'s subscription `id`; whether there was one.
    pub fn remove(&self, owner: &str, id: u64) -> Result<bool, WebhookError> {
        let _changing = self.changing();
        if self.owned(owner, id)?.is_none() {
            return Ok(false);
        }
        self.stop_task(id);
        Ok(self.shared.registry.remove(id)?)
    }

    /// Moves `owner`'s subscription `id` to `from` (its own cursor when `None`) and
    /// resumes it; `None` when `owner` holds no such subscription.
    pub fn replay(
        &self,
        owner: &str,
        id: u64,
        from: Option<(u64, u32)>,
    ) -> Result<Option<Subscription>, WebhookError> {
        let _changing = self.changing();
        if self.owned(owner, id)?.is_none() {
            return Ok(None);
        }
        // Stopped first: a batch in flight may still land, but its cursor write is refused
        // (the generation moved on), so the replay's cursor stands.
        self.stop_task(id);
        let updated = self.shared.registry.update(id, true, |s| {
            if s.owner != owner {
                return false;
            }
            s.next = from.unwrap_or(s.next);
            s.status = Status::Active;
            s.generation = s.generation.saturating_add(1);
            s.failing_since_ms = None;
            s.last_error = None;
            true
        })?;
        if let Some(subscription) = &updated {
            self.spawn(subscription);
        }
        Ok(updated)
    }

    /// Stops every delivery task (the node is shutting down).
    pub fn stop(&self) {
        for (_, task) in std::mem::take(&mut *self.tasks()) {
            task.abort();
        }
    }
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(allow: &[&str]) -> Entry {
        toml::from_str(&format!(
            "allow = [{}]",
            allow
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .unwrap()
    }

    #[test]
    fn urls_are_checked_and_matched_by_whole_origin() {
        let settings = Settings::check(
            entry(&["https://hooks.bank-a.example", "http://127.0.0.1:8080"]),
            Path::new(""),
        )
        .unwrap();
        let allowed = |url: &str| {
            parse_url(url)
                .map(|(_, origin)| settings.allows(&origin))
                .unwrap_or(false)
        };
        assert!(allowed("https://hooks.bank-a.example/tally?shop=1"));
        assert!(allowed("https://HOOKS.bank-a.example:443/x"));
        assert!(allowed("http://127.0.0.1:8080/hook"));
        // A longer host that starts the same, another port or scheme, a user name: no.
        assert!(!allowed("https://hooks.bank-a.example.evil.example/x"));
        assert!(!allowed("https://hooks.bank-a.example:8443/x"));
        assert!(!allowed("http://hooks.bank-a.example/x"));
        assert!(!allowed("http://127.0.0.1:8081/hook"));
        assert!(!allowed("http://127.0.0.1:8080@169.254.169.254/"));
        for bad in [
            "ftp://127.0.0.1:8080/",
            "/relative",
            "http://",
            "http://127.0.0.1:8080/#x",
            "http://user:pw@127.0.0.1:8080/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(parse_url(&format!("http://a.example/{}", "x".repeat(URL_BYTES_MAX))).is_err());
    }

    #[test]
    fn settings_refuse_paths_zeros_and_inverted_backoff() {
        assert!(Settings::check(entry(&["http://127.0.0.1:8080/hook"]), Path::new("")).is_err());
        let mut zero = entry(&[]);
        zero.timeout_ms = 0;
        assert!(Settings::check(zero, Path::new("")).is_err());
        let mut inverted = entry(&[]);
        inverted.backoff_ms_min = 10_000;
        inverted.backoff_ms_max = 1_000;
        assert!(Settings::check(inverted, Path::new("")).is_err());
        let mut missing = entry(&[]);
        missing.ca_file = Some(PathBuf::from("/no/such/ca.pem"));
        assert!(Settings::check(missing, Path::new("")).is_err());
    }
}
