//! Prometheus metrics (OpenMetrics text). Counted as they happen: identify outcomes by code,
//! identify latency, store commit batch sizes, store errors by kind, the wait for a pooled
//! database connection, strict report-only would-be rejections and refused origins per
//! workspace, CORS preflights, connections refused by the per-client cap, and JWKS fetches by
//! result ([`jwks`]). Read at each scrape ([`Sample`], filled by the state that knows them): the
//! build, the store's queue and PostgreSQL pool, whether the workspaces are stale and when they
//! last loaded, the LISTEN connection, the TLS certificate's expiry, the master keys this
//! instance holds (id and fingerprint, to compare instances during a key rollout), the keys held
//! per JWKS URL, and the `process_*` metrics ([`process`]).
//! server/README.md ("Metrics") lists every series with an example alert.
//!
//! Served by [`crate::http`] behind the admin token on the main port (`GET /metrics`) and, when
//! configured, without a token on a listener of its own (`--metrics-listen`, see
//! [`crate::run_metrics`]): the counts name workspaces and show an attack's progress, so they are
//! not for the public.

mod jwks;
mod process;

pub use jwks::{JWKS_FETCH_RESULTS, JwksSample};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
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
struct KindLabels {
    /// One of [`STORE_ERROR_KINDS`].
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    backend: &'static str,
}

/// The kinds of `dropfix_store_errors_total`: the store could not be reached or failed
/// (`unavailable`), did not answer in time (`timeout`), held a secret this instance cannot
/// unseal (`sealing`), was handed a value no backend stores (`invalid_value`), or anything else
/// (`other`). Each is present from the start, at 0, so a rate over it has a series to read.
pub const STORE_ERROR_KINDS: [&str; 5] = [
    "unavailable",
    "timeout",
    "sealing",
    "invalid_value",
    "other",
];

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
    store_errors: Family<KindLabels, Counter>,
    /// Registered at a scrape only on PostgreSQL (see [`Sample::pool`]).
    pool_wait: Histogram,
    master_keys: Family<MasterKeyLabels, Gauge>,
    /// The label sets `master_keys` shows now (the keyring changes rarely: compared, not redone).
    master_keys_shown: std::sync::Mutex<Vec<MasterKeyLabels>>,
    jwks: jwks::JwksCounts,
}

/// The state of a PostgreSQL connection pool at a scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStatus {
    /// Connections the pool may open (`--db-pool-size`).
    pub max: usize,
    /// Connections open now.
    pub open: usize,
    /// Open connections lent out now.
    pub in_use: usize,
    /// Callers waiting for a connection now.
    pub waiting: usize,
}

/// What a scrape reads from the running server rather than counts: the store fills its part
/// (`Store::fill_sample`), the state the rest. `None` is a series this instance does not have
/// (PostgreSQL's on the embedded store, the certificate's without TLS): absent, not 0, so an
/// alert on it does not fire where it does not apply.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Store work queued and not yet taken by the writer.
    pub store_queue_length: usize,
    pub pool: Option<PoolStatus>,
    /// The workspaces here are older than the stored ones (`Registry::stale`).
    pub config_stale: bool,
    /// The PostgreSQL `config_version` the workspaces here reflect.
    pub config_version: Option<i64>,
    /// When the workspaces were last loaded, in seconds since the epoch.
    pub config_last_reload: Option<f64>,
    /// Whether the PostgreSQL LISTEN connection is up.
    pub listener_connected: Option<bool>,
    /// When the served certificate expires, in seconds since the epoch.
    pub tls_expiry: Option<f64>,
    /// The JWKS URLs in use (none: their series are absent).
    pub jwks: Vec<JwksSample>,
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
        let store_errors = Family::<KindLabels, Counter>::default();
        for kind in STORE_ERROR_KINDS {
            let _ = store_errors.get_or_create(&KindLabels { kind });
        }
        registry.register(
            "store_errors",
            "Store operations that failed (identify writes, admin and console reads and \
             writes, health checks, reloads), by kind",
            store_errors.clone(),
        );
        // 100 µs .. ~6.6 s (the pool wait's default bound is 5 s)
        let pool_wait = Histogram::new(exponential_buckets(0.000_1, 4.0, 9));
        let master_keys = Family::<MasterKeyLabels, Gauge>::default();
        registry.register(
            "master_key_info",
            "1 for each master key this instance holds, by id and fingerprint (never the key); \
             active=\"true\" for the one it seals with. Every instance should show the same",
            master_keys.clone(),
        );
        let jwks = jwks::JwksCounts::register(&mut registry);
        Metrics {
            registry,
            outcomes,
            would_reject,
            origin_refused,
            preflights,
            connections_refused,
            latency,
            batch,
            store_errors,
            pool_wait,
            master_keys,
            master_keys_shown: Default::default(),
            jwks,
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

    /// Counts a failed store operation; `kind` is one of [`STORE_ERROR_KINDS`].
    pub fn store_error(&self, kind: &'static str) {
        self.store_errors.get_or_create(&KindLabels { kind }).inc();
    }

    /// How long a caller waited for a pooled PostgreSQL connection (got one or not).
    pub fn observe_pool_wait(&self, seconds: f64) {
        self.pool_wait.observe(seconds);
    }

    /// Counts a JWKS fetch; `result` is one of [`JWKS_FETCH_RESULTS`].
    pub fn jwks_fetch(&self, result: &'static str) {
        self.jwks.fetch(result);
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

    /// Everything, as OpenMetrics text: the counts, then `sample`, then the process.
    pub fn render(&self, sample: &Sample) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &self.sampled(sample));
        if let Some(process) = process::read() {
            let _ = encode_registry(&mut out, &process.registry());
        }
        let _ = encode_eof(&mut out);
        out
    }

    /// The series of `sample`, in a registry made for this scrape.
    fn sampled(&self, sample: &Sample) -> Registry {
        let mut r = Registry::with_prefix("dropfix");
        r.register(
            "build",
            "This verifier's version and store backend (always 1)",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                backend: sample.backend,
            }),
        );
        r.register(
            "store_queue_length",
            "Store work queued and not yet taken by the writer: identify writes (on the \
             embedded store also admin work and change polls); callers wait while it is full",
            ConstGauge::new(sample.store_queue_length),
        );
        if let Some(pool) = sample.pool {
            for (name, help, value) in [
                (
                    "db_pool_max_connections",
                    "Connections the PostgreSQL pool may open (--db-pool-size)",
                    pool.max,
                ),
                (
                    "db_pool_connections",
                    "Connections the PostgreSQL pool has open",
                    pool.open,
                ),
                (
                    "db_pool_connections_in_use",
                    "Pooled PostgreSQL connections lent out now",
                    pool.in_use,
                ),
                (
                    "db_pool_waiting",
                    "Callers waiting for a pooled PostgreSQL connection now",
                    pool.waiting,
                ),
            ] {
                r.register(name, help, ConstGauge::new(value));
            }
            r.register(
                "db_pool_wait_seconds",
                "Time callers waited for a pooled PostgreSQL connection, whether they got one \
                 or timed out",
                self.pool_wait.clone(),
            );
        }
        r.register(
            "config_stale",
            "1 while the workspaces here are older than the stored ones because a change \
             could not be loaded (identify calls and /healthz answer 503 config_stale)",
            ConstGauge::new(i64::from(sample.config_stale)),
        );
        if let Some(version) = sample.config_version {
            r.register(
                "config_version",
                "The PostgreSQL config_version the workspaces here reflect (every instance \
                 reaches the same one within a second of a change)",
                ConstGauge::new(version),
            );
        }
        if let Some(at) = sample.config_last_reload {
            r.register(
                "config_last_reload_timestamp_seconds",
                "When the workspaces here were last loaded from the store",
                ConstGauge::new(at),
            );
        }
        if let Some(up) = sample.listener_connected {
            r.register(
                "config_listener_connected",
                "1 while the PostgreSQL LISTEN connection that hears of workspace changes is up \
                 (without it, changes arrive by the 1 s poll)",
                ConstGauge::new(i64::from(up)),
            );
        }
        if let Some(at) = sample.tls_expiry {
            r.register(
                "tls_certificate_expiry_timestamp_seconds",
                "When the HTTPS certificate served now expires (its notAfter)",
                ConstGauge::new(at),
            );
        }
        jwks::sampled(&mut r, &sample.jwks);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `# TYPE` line of each metric family in `text`.
    fn types(text: &str) -> Vec<(&str, &str)> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
            .collect()
    }

    #[test]
    fn a_postgres_sample_renders_every_series_once() {
        let metrics = Metrics::default();
        metrics.store_error("timeout");
        metrics.observe_pool_wait(0.002);
        let sample = Sample {
            backend: "postgres",
            store_queue_length: 3,
            pool: Some(PoolStatus {
                max: 16,
                open: 5,
                in_use: 2,
                waiting: 1,
            }),
            config_stale: true,
            config_version: Some(42),
            config_last_reload: Some(1_700_000_000.5),
            listener_connected: Some(false),
            tls_expiry: Some(1_800_000_000.0),
            jwks: Vec::new(),
        };
        let text = metrics.render(&sample);
        for line in [
            "dropfix_build_info{version=\"",
            "dropfix_store_errors_total{kind=\"timeout\"} 1",
            "dropfix_store_errors_total{kind=\"sealing\"} 0",
            "dropfix_store_queue_length 3",
            "dropfix_db_pool_max_connections 16",
            "dropfix_db_pool_connections 5",
            "dropfix_db_pool_connections_in_use 2",
            "dropfix_db_pool_waiting 1",
            "dropfix_db_pool_wait_seconds_count 1",
            "dropfix_config_stale 1",
            "dropfix_config_version 42",
            "dropfix_config_last_reload_timestamp_seconds 1700000000.5",
            "dropfix_config_listener_connected 0",
            "dropfix_tls_certificate_expiry_timestamp_seconds 1800000000.0",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.contains("backend=\"postgres\""), "{text}");
        let types = types(&text);
        let mut names: Vec<&str> = types.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), types.len(), "a family twice: {types:?}");
        assert!(types.contains(&("dropfix_build", "info")));
        assert!(types.contains(&("dropfix_db_pool_wait_seconds", "histogram")));
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1);
    }

    #[test]
    fn series_that_do_not_apply_are_absent_not_zero() {
        let text = Metrics::default().render(&Sample {
            backend: "sqlite",
            ..Sample::default()
        });
        for absent in [
            "dropfix_db_pool",
            "dropfix_config_version",
            "dropfix_config_listener_connected",
            "dropfix_tls_certificate",
            "dropfix_config_last_reload_timestamp_seconds",
        ] {
            assert!(!text.contains(absent), "{absent} in:\n{text}");
        }
        assert!(text.contains("dropfix_config_stale 0"), "{text}");
        for kind in STORE_ERROR_KINDS {
            let line = format!("dropfix_store_errors_total{{kind=\"{kind}\"}} 0");
            assert!(text.contains(&line), "{line} missing");
        }
    }
}
