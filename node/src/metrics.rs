//! Prometheus metrics of the node, served at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Counters of one kind of event, one per value of a label (`reason`, `input`). The values
/// are fixed words written where the event happens, never text from a peer, so a label has
/// a few known values and an attacker cannot grow the exposition.
#[derive(Debug, Clone)]
pub struct CountBy {
    label: &'static str,
    family: Family<[(&'static str, &'static str); 1], Counter>,
}

impl CountBy {
    fn new(label: &'static str) -> CountBy {
        CountBy {
            label,
            family: Family::default(),
        }
    }

    pub fn inc(&self, value: &'static str) {
        self.family.get_or_create(&[(self.label, value)]).inc();
    }

    /// The count for `value` so far (0 if it never happened).
    pub fn get(&self, value: &'static str) -> u64 {
        self.family
            .get(&[(self.label, value)])
            .map_or(0, |counter| counter.get())
    }
}

/// Consensus messages whose signature verified, per validator index. The label is bounded
/// by the validator set's size (at most `VALIDATORS_MAX`); an operator sees who takes part.
#[derive(Debug, Clone, Default)]
pub struct CountByValidator(Family<[(&'static str, u32); 1], Counter>);

impl CountByValidator {
    pub fn inc(&self, validator: u32) {
        self.0.get_or_create(&[("validator", validator)]).inc();
    }

    pub fn get(&self, validator: u32) -> u64 {
        self.0
            .get(&[("validator", validator)])
            .map_or(0, |counter| counter.get())
    }
}

/// The `reason` a consensus message refused at verification is counted under.
pub fn refusal_reason(error: &tally_consensus::Error) -> &'static str {
    use tally_consensus::Error;
    match error {
        Error::UnknownValidator(_) => "unknown_validator",
        Error::BadSignature(_) => "bad_signature",
        Error::NotProposer { .. } => "not_proposer",
        Error::NoValidatorSet(_) => "no_validator_set",
        Error::BadPolRound { .. } | Error::BlockHashMismatch { .. } => "malformed",
        _ => "other",
    }
}

/// What the network task counts. It gets its own clone (the counters share their values
/// with these), so a network started without a node still has somewhere to count.
#[derive(Debug, Clone)]
pub struct NetworkCounters {
    /// Peers disconnected and blocked for misbehaving, by reason.
    pub peers_cut_off: CountBy,
    /// Connections refused, by reason. After the handshake proved the peer's key: `blocked`
    /// (cut off a while ago), `gated` (the test gate), `not_allowed` (not in the peer set).
    /// Before or after it: `limit` (node-wide connection limits). Before it:
    /// `address_limit` (too many handshakes in progress from the dialler's IP address).
    pub connections_refused: CountBy,
    /// Peers the test gate (the blocked peers file) lists now: moves once the node read it.
    pub gated_peers: Gauge,
}

impl Default for NetworkCounters {
    fn default() -> NetworkCounters {
        NetworkCounters {
            peers_cut_off: CountBy::new("reason"),
            connections_refused: CountBy::new("reason"),
            gated_peers: Gauge::default(),
        }
    }
}

/// Every metric the node exports. Cheap to update from any task (atomics).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The last committed height.
    pub height: Gauge,
    /// The consensus round at the current height.
    pub round: Gauge,
    /// Transactions in committed blocks (accepted and rejected by the ledger).
    pub committed_txs: Counter,
    /// Seconds from a transaction entering this node's mempool to its block's commit.
    pub commit_latency_seconds: Histogram,
    /// Transactions in the mempool.
    pub mempool_txs: Gauge,
    /// Connected peers.
    pub peers: Gauge,
    /// How many heights this node is behind the highest height it has seen.
    pub sync_lag: Gauge,
    /// 1 while the audit node has found a mismatch and stopped following.
    pub audit_alarm: Gauge,
    /// The height of the newest state snapshot this node took (0: none).
    pub snapshot_height: Gauge,
    /// The snapshot height this node's chain started from (0: it replayed from genesis).
    pub synced_from_height: Gauge,
    /// Snapshot chunks (or manifests) a peer served that did not verify; each peer is
    /// reported and asked no more.
    pub state_sync_bad_parts: Counter,
    /// Consensus messages dropped, by reason: `stale` (for a height already decided, not
    /// checked: it cannot change anything) or why one was refused (its sender is cut off).
    pub consensus_messages_dropped: CountBy,
    /// Consensus messages whose signature verified against the set in force at their
    /// height, per validator.
    pub consensus_messages_verified: CountByValidator,
    /// Proposed blocks this node refused to vote for, by reason.
    pub proposals_refused: CountBy,
    /// Equivocations this node saw itself (two conflicting messages signed by one validator).
    pub equivocations_detected: Counter,
    /// Pieces of evidence in blocks this node committed.
    pub evidence_committed: Counter,
    /// Heights this node started on the genesis's heartbeat: nothing to commit came for a
    /// whole heartbeat (an idle chain; see `chain::idle`).
    pub idle_heartbeats: Counter,
    /// Regulators' transactions an audit node relayed to the validators (see
    /// `chain::relay`).
    pub relayed_transactions: Counter,
    /// Inputs a halted node (an audit node after its alarm) dropped, by kind of input.
    pub halted_inputs_dropped: CountBy,
    /// Transactions refused at admission (from the API or gossip), by reason: `wrong_signer`,
    /// `unknown_sender`, `missing_co_signature` (the sender's or registrar's key did not
    /// sign), `key_revoked` (an institution whose key governance revoked),
    /// `bad_signature`, `fewer_signatures` (a copy with more signers waits).
    pub transactions_refused: CountBy,
    /// The part of `transactions_refused` that peers gossiped, by the same reasons.
    pub gossiped_transactions_refused: CountBy,
    pub network: NetworkCounters,
    pub memory: MemoryGauges,
    /// Times a bounded memory was full and dropped or evicted something, by the `[limits]`
    /// field that bounds it: the sign that a bound is too small for the load, or that a
    /// peer is flooding it.
    pub limit_reached: CountBy,
    /// Webhook deliveries (one POST of a batch of events), by outcome: `ok` (answered 2xx),
    /// `failed` (no answer in time, no connection, or another status), `paused` (a
    /// subscription stopped after failing for its whole retry window).
    pub webhook_deliveries: CountBy,
    /// Events delivered to webhooks and acknowledged.
    pub webhook_events_delivered: Counter,
}

/// What the node's bounded memories hold now, each beside the `[limits]` field that bounds
/// it, and the process's resident memory: what an operator watches for a node that must run
/// for months.
#[derive(Debug, Default)]
pub struct MemoryGauges {
    /// Bytes of transactions in the mempool (`mempool_bytes_max`).
    pub mempool_bytes: Gauge,
    /// Parsed public keys in the verification cache (`key_cache_entries`).
    pub key_cache_entries: Gauge,
    /// Bytes in the storage's page cache (`storage_cache_bytes`).
    pub storage_cache_bytes: Gauge,
    /// The process's resident memory (`VmRSS`), where the system tells it.
    pub resident_bytes: Gauge,
    /// Event streams open (`[api] streams_max`), set when `/metrics` is read.
    pub api_streams: Gauge,
    /// Submissions waiting for their commit (`[api] waiters_max`), set when read.
    pub api_waiters: Gauge,
    /// Audit scans running (`[api] scans_max`), set when read.
    pub api_scans: Gauge,
    /// Evidence waiting for a block (`evidence_pending_max`).
    pub evidence_pending: Gauge,
    /// Committed evidence remembered against repeats (`evidence_remembered_max`).
    pub evidence_remembered: Gauge,
    /// Proposed blocks kept verified at the current height (`verified_blocks_max`).
    pub verified_blocks: Gauge,
    /// Inputs queued for the chain task (`chain_inputs_max`).
    pub chain_inputs_queued: Gauge,
    /// Messages queued from the chain task to the network (`outbound_max`).
    pub outbound_queued: Gauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tally");
        let height = Gauge::default();
        let round = Gauge::default();
        let committed_txs = Counter::default();
        let commit_latency_seconds =
            Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        let mempool_txs = Gauge::default();
        let peers = Gauge::default();
        let sync_lag = Gauge::default();
        let audit_alarm = Gauge::default();
        let snapshot_height = Gauge::default();
        let synced_from_height = Gauge::default();
        let state_sync_bad_parts = Counter::default();
        let consensus_messages_dropped = CountBy::new("reason");
        let consensus_messages_verified = CountByValidator::default();
        let proposals_refused = CountBy::new("reason");
        let equivocations_detected = Counter::default();
        let evidence_committed = Counter::default();
        let idle_heartbeats = Counter::default();
        let relayed_transactions = Counter::default();
        let halted_inputs_dropped = CountBy::new("input");
        let transactions_refused = CountBy::new("reason");
        let gossiped_transactions_refused = CountBy::new("reason");
        let network = NetworkCounters::default();
        let memory = MemoryGauges::default();
        let limit_reached = CountBy::new("limit");
        let webhook_deliveries = CountBy::new("outcome");
        let webhook_events_delivered = Counter::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries (one POST of a batch), by outcome: ok, failed, paused",
            webhook_deliveries.family.clone(),
        );
        registry.register(
            "webhook_events_delivered",
            "Events delivered to webhooks and acknowledged",
            webhook_events_delivered.clone(),
        );
        registry.register("height", "Last committed height", height.clone());
        registry.register(
            "mempool_bytes",
            "Bytes of transactions in the mempool (limits.mempool_bytes_max)",
            memory.mempool_bytes.clone(),
        );
        registry.register(
            "key_cache_entries",
            "Parsed public keys cached for verification (limits.key_cache_entries)",
            memory.key_cache_entries.clone(),
        );
        registry.register(
            "storage_cache_bytes",
            "Bytes in the storage's page cache (limits.storage_cache_bytes)",
            memory.storage_cache_bytes.clone(),
        );
        registry.register(
            "resident_memory_bytes",
            "Resident memory of the node's process",
            memory.resident_bytes.clone(),
        );
        registry.register(
            "api_streams",
            "Event streams open (api.streams_max)",
            memory.api_streams.clone(),
        );
        registry.register(
            "api_waiters",
            "Submissions waiting for their commit (api.waiters_max)",
            memory.api_waiters.clone(),
        );
        registry.register(
            "api_scans",
            "Audit scans running (api.scans_max)",
            memory.api_scans.clone(),
        );
        for (name, help, gauge) in [
            (
                "evidence_pending",
                "Evidence waiting for a block (limits.evidence_pending_max)",
                &memory.evidence_pending,
            ),
            (
                "evidence_remembered",
                "Committed evidence remembered (limits.evidence_remembered_max)",
                &memory.evidence_remembered,
            ),
            (
                "verified_blocks",
                "Proposed blocks kept verified at this height (limits.verified_blocks_max)",
                &memory.verified_blocks,
            ),
            (
                "chain_inputs_queued",
                "Inputs queued for the chain task (limits.chain_inputs_max)",
                &memory.chain_inputs_queued,
            ),
            (
                "outbound_queued",
                "Messages queued for the network (limits.outbound_max)",
                &memory.outbound_queued,
            ),
        ] {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "limit_reached",
            "Times a bounded memory was full and dropped or evicted, by limit",
            limit_reached.family.clone(),
        );
        registry.register(
            "round",
            "Consensus round at the current height",
            round.clone(),
        );
        registry.register(
            "committed_txs",
            "Transactions in committed blocks",
            committed_txs.clone(),
        );
        registry.register(
            "commit_latency_seconds",
            "From mempool admission to the block's commit",
            commit_latency_seconds.clone(),
        );
        registry.register(
            "mempool_txs",
            "Transactions in the mempool",
            mempool_txs.clone(),
        );
        registry.register("peers", "Connected peers", peers.clone());
        registry.register(
            "sync_lag",
            "Heights behind the highest height seen",
            sync_lag.clone(),
        );
        registry.register(
            "audit_alarm",
            "1 when the audit node found a mismatch and stopped following",
            audit_alarm.clone(),
        );
        registry.register(
            "snapshot_height",
            "The height of the newest state snapshot taken (0: none)",
            snapshot_height.clone(),
        );
        registry.register(
            "synced_from_height",
            "The snapshot height this chain started from (0: replayed from genesis)",
            synced_from_height.clone(),
        );
        registry.register(
            "state_sync_bad_parts",
            "Snapshot parts a peer served that did not verify",
            state_sync_bad_parts.clone(),
        );
        registry.register(
            "consensus_messages_dropped",
            "Consensus messages dropped: stale (not checked) or refused, by reason",
            consensus_messages_dropped.family.clone(),
        );
        registry.register(
            "consensus_messages_verified",
            "Consensus messages whose signature verified, per validator index",
            consensus_messages_verified.0.clone(),
        );
        registry.register(
            "proposals_refused",
            "Proposed blocks refused, by reason",
            proposals_refused.family.clone(),
        );
        registry.register(
            "equivocations_detected",
            "Conflicting signed messages of one validator seen by this node",
            equivocations_detected.clone(),
        );
        registry.register(
            "evidence_committed",
            "Pieces of evidence in committed blocks",
            evidence_committed.clone(),
        );
        registry.register(
            "idle_heartbeats",
            "Heights started on the heartbeat after a whole heartbeat with nothing to commit",
            idle_heartbeats.clone(),
        );
        registry.register(
            "relayed_transactions",
            "Regulators' transactions an audit node relayed to the validators",
            relayed_transactions.clone(),
        );
        registry.register(
            "halted_inputs_dropped",
            "Inputs dropped by a halted node, by kind",
            halted_inputs_dropped.family.clone(),
        );
        registry.register(
            "transactions_refused",
            "Transactions refused at admission, by reason",
            transactions_refused.family.clone(),
        );
        registry.register(
            "gossiped_transactions_refused",
            "Gossiped transactions refused at admission, by reason",
            gossiped_transactions_refused.family.clone(),
        );
        registry.register(
            "peers_cut_off",
            "Peers disconnected and blocked for misbehaving, by reason",
            network.peers_cut_off.family.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused (before or after the handshake), by reason",
            network.connections_refused.family.clone(),
        );
        registry.register(
            "gated_peers",
            "Peers the test gate lists now",
            network.gated_peers.clone(),
        );
        Metrics {
            registry,
            height,
            round,
            committed_txs,
            commit_latency_seconds,
            mempool_txs,
            peers,
            sync_lag,
            audit_alarm,
            snapshot_height,
            synced_from_height,
            state_sync_bad_parts,
            consensus_messages_dropped,
            consensus_messages_verified,
            proposals_refused,
            equivocations_detected,
            evidence_committed,
            idle_heartbeats,
            relayed_transactions,
            halted_inputs_dropped,
            transactions_refused,
            gossiped_transactions_refused,
            network,
            memory,
            limit_reached,
            webhook_deliveries,
            webhook_events_delivered,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_set() {
        let metrics = Metrics::new();
        metrics.height.set(42);
        metrics.committed_txs.inc_by(7);
        metrics.commit_latency_seconds.observe(0.3);
        let text = metrics.render();
        assert!(text.contains("tally_height 42"), "{text}");
        assert!(text.contains("tally_committed_txs_total 7"), "{text}");
        assert!(
            text.contains("tally_commit_latency_seconds_count 1"),
            "{text}"
        );
    }

    #[test]
    fn counts_by_reason_and_validator() {
        let metrics = Metrics::new();
        metrics.proposals_refused.inc("state_root");
        metrics.proposals_refused.inc("state_root");
        metrics.consensus_messages_verified.inc(3);
        metrics.network.connections_refused.inc("blocked");
        assert_eq!(metrics.proposals_refused.get("state_root"), 2);
        assert_eq!(metrics.proposals_refused.get("tx_signature"), 0);
        assert_eq!(metrics.consensus_messages_verified.get(3), 1);
        assert_eq!(metrics.consensus_messages_verified.get(0), 0);
        let text = metrics.render();
        assert!(
            text.contains("tally_proposals_refused_total{reason=\"state_root\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("tally_consensus_messages_verified_total{validator=\"3\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tally_connections_refused_total{reason=\"blocked\"} 1"),
            "{text}"
        );
    }
}
