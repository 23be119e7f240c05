//! Prometheus metrics (`GET /metrics`, OpenMetrics text): identify outcomes by code, identify
//! latency, store commit batch sizes, and strict report-only would-be rejections per workspace.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    /// `verified`, `unverified`, or the error code (`signature_mismatch`, `invalid_json`, ...).
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app_id: String,
}

pub struct Metrics {
    registry: Registry,
    outcomes: Family<OutcomeLabels, Counter>,
    would_reject: Family<AppLabels, Counter>,
    latency: Histogram,
    batch: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dropfix");
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "identify_requests",
            "Identify calls by outcome (verified, unverified or the error code)",
            outcomes.clone(),
        );
        let would_reject = Family::<AppLabels, Counter>::default();
        registry.register(
            "strict_would_reject",
            "Unsigned calls accepted in strict report-only mode that enforcement would reject",
            would_reject.clone(),
        );
        // 50 µs .. ~1.6 s
        let latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "identify_duration_seconds",
            "Time from request to response for identify calls, including the store commit",
            latency.clone(),
        );
        let batch = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register(
            "store_commit_batch_size",
            "Identify writes committed per store transaction (group commit)",
            batch.clone(),
        );
        Metrics {
            registry,
            outcomes,
            would_reject,
            latency,
            batch,
        }
    }
}

impl Metrics {
    pub fn outcome(&self, outcome: &str) {
        self.outcomes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn would_reject(&self, app_id: &str) {
        self.would_reject
            .get_or_create(&AppLabels {
                app_id: app_id.to_string(),
            })
            .inc();
    }

    pub fn observe_latency(&self, seconds: f64) {
        self.latency.observe(seconds);
    }

    pub fn observe_batch(&self, size: usize) {
        self.batch.observe(size as f64);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
