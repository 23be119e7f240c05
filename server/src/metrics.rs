//! Prometheus metrics (OpenMetrics text): identify outcomes by code, identify latency, store
//! commit batch sizes, strict report-only would-be rejections and refused origins per workspace,
//! CORS preflights, connections refused by the per-client cap, and the master keys this
//! instance holds (id and fingerprint, to compare instances during a key rollout).
//!
//! Served by [`crate::http`] behind the admin token on the main port (`GET /metrics`) and, when
//! configured, without a token on a listener of its own (`--metrics-listen`, see
//! [`crate::run_metrics`]): the counts name workspaces and show an attack's progress, so they are
//! not for the public.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    /// `verified`, `unverified`, or the error code (`signature_mismatch`, `invalid_json`, ...).
    /// A static string: counting an outcome allocates nothing.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PreflightLabels {
    /// `allowed` or `refused`.
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MasterKeyLabels {
    key_id: String,
    fingerprint: String,
    /// `true` for the key that seals, else `false`.
    active: &'static str,
}

/// The `app_id` label for a call whose workspace does not exist: the label set stays bounded
/// by the workspaces there are, whatever ids clients send.
pub const UNKNOWN_APP: &str = "unknown";

pub struct Metrics {
    registry: Registry,
    outcomes: Family<OutcomeLabels, Counter>,
    would_reject: Family<AppLabels, Counter>,
    origin_refused: Family<AppLabels, Counter>,
    preflights: Family<PreflightLabels, Counter>,
    connections_refused: Counter,
    latency: Histogram,
    batch: Histogram,
    master_keys: Family<MasterKeyLabels, Gauge>,
    /// The label sets `master_keys` shows now (the keyring changes rarely: compared, not redone).
    master_keys_shown: std::sync::Mutex<Vec<MasterKeyLabels>>,
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
        let origin_refused = Family::<AppLabels, Counter>::default();
        registry.register(
            "identify_origin_refused",
            "Identify calls and preflights refused because the page's origin is not in the \
             workspace's allowed origins (app_id \"unknown\" when no such workspace exists)",
            origin_refused.clone(),
        );
        let preflights = Family::<PreflightLabels, Counter>::default();
        registry.register(
            "identify_preflights",
            "CORS preflights (OPTIONS /v1/identify) by result; not identify calls",
            preflights.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused_per_client_cap",
            "Connections closed on accept because their client already had the most open",
            connections_refused.clone(),
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
        let master_keys = Family::<MasterKeyLabels, Gauge>::default();
        registry.register(
            "master_key_info",
            "1 for each master key this instance holds, by id and fingerprint (never the key); \
             active=\"true\" for the one it seals with. Every instance should show the same",
            master_keys.clone(),
        );
        Metrics {
            registry,
            outcomes,
            would_reject,
            origin_refused,
            preflights,
            connections_refused,
            latency,
            batch,
            master_keys,
            master_keys_shown: Default::default(),
        }
    }
}

impl Metrics {
    pub fn outcome(&self, outcome: &'static str) {
        self.outcomes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn would_reject(&self, app_id: &str) {
        self.would_reject
            .get_or_create(&AppLabels {
                app_id: app_id.to_string(),
            })
            .inc();
    }

    /// `app_id` must be a workspace that exists, or [`UNKNOWN_APP`].
    pub fn origin_refused(&self, app_id: &str) {
        self.origin_refused
            .get_or_create(&AppLabels {
                app_id: app_id.to_string(),
            })
            .inc();
    }

    pub fn preflight(&self, allowed: bool) {
        let result = if allowed { "allowed" } else { "refused" };
        self.preflights
            .get_or_create(&PreflightLabels { result })
            .inc();
    }

    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    pub fn observe_latency(&self, seconds: f64) {
        self.latency.observe(seconds);
    }

    pub fn observe_batch(&self, size: usize) {
        self.batch.observe(size as f64);
    }

    /// Shows the keys of `ring` in `dropfix_master_key_info` (called before each render, so a
    /// reloaded key file shows at the next scrape). New series are set before old ones go, so
    /// a scrape meanwhile never sees none.
    pub fn master_keys(&self, ring: &crate::sealing::Keyring) {
        let now: Vec<MasterKeyLabels> = ring
            .fingerprints()
            .map(|(id, fingerprint)| MasterKeyLabels {
                active: if id == ring.active_id() {
                    "true"
                } else {
                    "false"
                },
                key_id: id.to_owned(),
                fingerprint,
            })
            .collect();
        let mut shown = self
            .master_keys_shown
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *shown == now {
            return;
        }
        for labels in &now {
            self.master_keys.get_or_create(labels).set(1);
        }
        for gone in shown.iter().filter(|l| !now.contains(l)) {
            self.master_keys.remove(gone);
        }
        *shown = now;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
