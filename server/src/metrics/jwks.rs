//! The JWKS fetcher's series (`crate::issuers::jwks`): fetches counted by result as they happen,
//! and per JWKS URL, read at each scrape, the keys held, the last successful fetch and whether
//! the keys are stale.
//!
//! The per-URL series are labelled by the JWKS URL itself: the URLs come from the workspaces'
//! issuer settings (made by an administrator, not by callers), so the label set is bounded by
//! the issuers configured. A URL no longer configured leaves with the next scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The results of `dropfix_jwks_fetches_total`: `ok`, or why a fetch failed (the kinds of
/// `crate::issuers::fetch::FetchErrorKind`). Each is present from the start, at 0.
pub const JWKS_FETCH_RESULTS: [&str; 8] = [
    "ok",
    "http_error",
    "too_large",
    "timeout",
    "refused_address",
    "tls",
    "invalid",
    "unreachable",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    /// One of [`JWKS_FETCH_RESULTS`].
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UrlLabels {
    url: String,
}

/// One JWKS URL at a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct JwksSample {
    pub url: String,
    /// Keys held now (0: none, calls naming it get 503 `issuer_unavailable`).
    pub keys: usize,
    /// When a fetch last succeeded, in seconds since the epoch.
    pub last_success: Option<f64>,
    /// The keys held are past their cache lifetime (refreshes fail).
    pub stale: bool,
}

/// The counts, registered with the other counts.
pub(super) struct JwksCounts {
    fetches: Family<ResultLabels, Counter>,
}

impl JwksCounts {
    pub(super) fn register(registry: &mut Registry) -> JwksCounts {
        let fetches = Family::<ResultLabels, Counter>::default();
        for result in JWKS_FETCH_RESULTS {
            let _ = fetches.get_or_create(&ResultLabels { result });
        }
        registry.register(
            "jwks_fetches",
            "JWKS fetches of the token issuers' key sets, by result (ok or why they failed)",
            fetches.clone(),
        );
        JwksCounts { fetches }
    }

    /// `result` is one of [`JWKS_FETCH_RESULTS`].
    pub(super) fn fetch(&self, result: &'static str) {
        self.fetches.get_or_create(&ResultLabels { result }).inc();
    }
}

/// The per-URL series of `samples` into the scrape's registry; none when no URL is in use.
pub(super) fn sampled(r: &mut Registry, samples: &[JwksSample]) {
    if samples.is_empty() {
        return;
    }
    let keys = Family::<UrlLabels, Gauge>::default();
    let last = Family::<UrlLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let stale = Family::<UrlLabels, Gauge>::default();
    for s in samples {
        let labels = UrlLabels { url: s.url.clone() };
        keys.get_or_create(&labels).set(s.keys as i64);
        stale.get_or_create(&labels).set(i64::from(s.stale));
        if let Some(at) = s.last_success {
            last.get_or_create(&labels).set(at);
        }
    }
    r.register(
        "jwks_keys",
        "Keys held for each JWKS URL in use (0: none, its tokens get 503 issuer_unavailable)",
        keys,
    );
    r.register(
        "jwks_last_success_timestamp_seconds",
        "When the JWKS of each URL in use was last fetched successfully",
        last,
    );
    r.register(
        "jwks_stale",
        "1 while the keys held for a JWKS URL are past their cache lifetime because refreshes \
         fail (they keep verifying up to 72 h after the last success)",
        stale,
    );
}
