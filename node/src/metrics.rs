//! Prometheus metrics of the node, served at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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
        registry.register("height", "Last committed height", height.clone());
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
}
