//! The metrics an on-call reads, scraped from running verifiers (in-process, over HTTP with the
//! admin token): every series that server/README.md ("Metrics") documents is in a scrape with
//! its `# TYPE` wherever its row says it is present, and absent where it is not (the embedded
//! store, PostgreSQL, HTTPS); every metric name that the alert rules
//! (`deploy/prometheus/dropfix-alerts.yml`) and the Grafana dashboard
//! (`deploy/grafana/dropfix.json`) use is in a real scrape; and the values move when they should:
//! `dropfix_config_stale` and sealing errors with a master key the instance lacks, and back; the
//! pool, the listener and the config version on PostgreSQL; the certificate's expiry with HTTPS.
//! Below HTTP: the kind each store error is counted as, and a key file swapped under a store.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use dropfix_core::StrictMode;
use dropfix_server::sealing::{Keyring, MasterKey};
use dropfix_server::store::Backend;
use dropfix_server::tls::{Tls, TlsFiles};
use dropfix_server::workspace::WorkspacePatch;
use dropfix_server::{AppState, Config};
use serde_json::json;
use support::pg::TestDb;
use support::{Verifier, eventually, new_workspace, now, signed_call, with_store_on};

/// A file of the repository, by its path from the root (this crate is `server/`).
fn repo_file(path: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

// ---------------------------------------------------------------------------------------------
// Reading a scrape

/// One scrape: each family's `# TYPE`, and each sample line as (series with labels, value).
#[derive(Debug)]
struct Scrape {
    types: HashMap<String, String>,
    samples: Vec<(String, f64)>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        assert!(text.ends_with("# EOF\n"), "not OpenMetrics text:\n{text}");
        let mut types = HashMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(t) = line.strip_prefix("# TYPE ") {
                let (family, kind) = t.split_once(' ').unwrap();
                let earlier = types.insert(family.to_string(), kind.to_string());
                assert_eq!(earlier, None, "{family} has two TYPE lines");
            } else if !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').unwrap();
                samples.push((series.to_string(), value.parse().unwrap()));
            }
        }
        Scrape { types, samples }
    }

    /// The metric names of the samples (series without labels).
    fn names(&self) -> BTreeSet<&str> {
        (self.samples.iter())
            .map(|(s, _)| s.split('{').next().unwrap())
            .collect()
    }

    /// The value of `series` (with its labels as rendered).
    fn value(&self, series: &str) -> Option<f64> {
        self.samples
            .iter()
            .find_map(|(s, v)| (s == series).then_some(*v))
    }

    fn get(&self, series: &str) -> f64 {
        self.value(series)
            .unwrap_or_else(|| panic!("{series} is not in the scrape: {self:#?}"))
    }
}

/// `GET /metrics` with the admin token.
fn scrape(v: &Verifier) -> Scrape {
    let r = v.admin("GET", "/metrics", None);
    assert_eq!(r.status, 200, "{}", r.text());
    Scrape::parse(&r.text())
}

// ---------------------------------------------------------------------------------------------
// What server/README.md documents

/// A row of the README's metrics table.
#[derive(Debug)]
struct Documented {
    series: String,
    kind: String,
    /// Where it exists: `always...`, `PostgreSQL`, `HTTPS...` or `Linux...`.
    present: String,
}

impl Documented {
    /// The family its `# TYPE` line names (OpenMetrics names a counter without `_total` and an
    /// info without `_info`).
    fn family(&self) -> &str {
        let suffix = match self.kind.as_str() {
            "counter" => "_total",
            "info" => "_info",
            _ => "",
        };
        self.series.strip_suffix(suffix).unwrap_or_else(|| {
            panic!(
                "{}: the name of a {} ends in {suffix} (Prometheus conventions)",
                self.series, self.kind
            )
        })
    }

    /// The sample name that shows the series is there (a histogram's buckets).
    fn sample(&self) -> String {
        match self.kind.as_str() {
            "histogram" => format!("{}_bucket", self.series),
            _ => self.series.clone(),
        }
    }
}

/// Where a scrape was taken.
#[derive(Debug, Clone, Copy)]
struct Context {
    postgres: bool,
    https: bool,
    /// The verifier has answered [`traffic`].
    traffic: bool,
    /// Its workspaces name JWKS URLs.
    jwks: bool,
}

impl Context {
    /// Whether a series documented as `present` must be in the scrape (`Some(true)`), must not
    /// be (`Some(false)`), or may be either (a labelled count before anything was counted).
    fn expects(self, present: &str) -> Option<bool> {
        Some(if present.starts_with("always") {
            true
        } else if present.starts_with("once counted") {
            return self.traffic.then_some(true);
        } else if present.starts_with("PostgreSQL") {
            self.postgres
        } else if present.starts_with("HTTPS") {
            self.https
        } else if present.starts_with("JWKS URLs in use") {
            if self.jwks && present.contains("once fetched") {
                return None;
            }
            self.jwks
        } else if present.starts_with("Linux") {
            cfg!(target_os = "linux")
        } else {
            panic!(
                "a metrics row says it is present {present:?}: always, once counted, \
                 PostgreSQL, HTTPS, JWKS URLs in use or Linux?"
            )
        })
    }
}

/// The README's metrics table.
fn documented() -> Vec<Documented> {
    let readme = repo_file("server/README.md");
    let rows: Vec<Documented> = readme
        .lines()
        .filter(|l| l.starts_with("| `dropfix_") || l.starts_with("| `process_"))
        .map(|l| {
            // A `|` inside a cell is written `\|`.
            let cells: Vec<String> = l
                .replace("\\|", "\u{1}")
                .split('|')
                .map(|c| c.trim().replace('\u{1}', "|"))
                .collect();
            assert_eq!(cells.len(), 8, "a metrics row has 6 columns: {l}");
            Documented {
                series: cells[1].trim_matches('`').to_string(),
                kind: cells[2].clone(),
                present: cells[4].clone(),
            }
        })
        .collect();
    assert!(rows.len() > 20, "the README's metrics table: {rows:?}");
    rows
}

/// Every documented series that applies in `cx` is in `scrape` with its type; those that do not
/// apply are absent (not 0).
fn check_documented(scrape: &Scrape, cx: Context) {
    let names = scrape.names();
    let documented = documented();
    for doc in &documented {
        let family = doc.family();
        let expected = cx.expects(&doc.present);
        if expected == Some(true) {
            assert_eq!(
                scrape.types.get(family).map(String::as_str),
                Some(doc.kind.as_str()),
                "{} ({cx:?}): the TYPE line of {family}",
                doc.series
            );
            assert!(
                names.contains(doc.sample().as_str()),
                "{} ({cx:?}): no sample; the scrape has {names:?}",
                doc.series
            );
        } else if expected == Some(false) {
            assert!(
                !scrape.types.contains_key(family) && !names.contains(doc.sample().as_str()),
                "{} ({cx:?}) is present {}, so not here",
                doc.series,
                doc.present
            );
        }
    }
    // And nothing undocumented.
    for family in scrape.types.keys() {
        assert!(
            documented.iter().any(|d| d.family() == family),
            "{family} is scraped but not in server/README.md's metrics table"
        );
    }
}

/// [`check_documented`] for a verifier on `backend` (plain HTTP) after [`traffic`], and its
/// build info.
fn check_served(scrape: &Scrape, backend: &str) {
    let cx = Context {
        postgres: backend == "postgres",
        https: false,
        traffic: true,
        jwks: false,
    };
    check_documented(scrape, cx);
    let version = env!("CARGO_PKG_VERSION");
    let build = format!("dropfix_build_info{{version=\"{version}\",backend=\"{backend}\"}}");
    assert_eq!(scrape.get(&build), 1.0);
}

// ---------------------------------------------------------------------------------------------
// Verifiers that have seen a bit of everything

/// A workspace in `report_only` (so an unsigned call counts as a would-be rejection) made on
/// `backend` as the CLI makes it; its app id and secret.
fn workspace_on(backend: &Backend, ring: &Keyring) -> (String, dropfix_core::SecretKey) {
    support::workspace_on(backend, ring, "metrics", StrictMode::ReportOnly)
}

fn ring() -> Keyring {
    Keyring::new(vec![MasterKey::generate("mk1").unwrap()]).unwrap()
}

/// Calls that move every labelled family: a verified call, an unsigned one (a would-be
/// rejection), and a preflight from an origin the workspace does not allow.
fn traffic(v: &Verifier, app: &str, secret: &dropfix_core::SecretKey) {
    let r = v.identify(&signed_call(app, secret, "u1"));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = v.identify(&json!({"app_id": app, "user_id": "u2"}));
    assert_eq!(r.status, 202, "{}", r.text());
    let path = format!("/v1/identify?app_id={app}");
    let r = v.request(
        "OPTIONS",
        &path,
        &[("Origin", "https://elsewhere.example")],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
}

/// A scrape of an embedded-store verifier after [`traffic`].
fn embedded_scrape() -> Scrape {
    let dir = support::data_dir();
    let (backend, ring) = (support::embedded(dir.path()), ring());
    let (app, secret) = workspace_on(&backend, &ring);
    let v = Verifier::start(Config::default(), backend, ring);
    traffic(&v, &app, &secret);
    scrape(&v)
}

/// A scrape of an HTTPS verifier's state (its certificate valid until 2040), with the
/// certificate's `notAfter` in seconds.
fn https_scrape() -> (Scrape, i64) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2040, 1, 1);
    let not_after = params.not_after.unix_timestamp();
    let cert = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    let config = Config {
        tls: Some(Arc::new(Tls::new(files).unwrap())),
        ..Config::default()
    };
    let text = support::block_on(async {
        let state = AppState::new(config, &Backend::SqliteMemory, ring(), [0; 32])
            .await
            .unwrap();
        state.metrics_text()
    });
    (Scrape::parse(&text), not_after)
}

/// A PostgreSQL verifier after [`traffic`], with the database and the workspace; `None` when
/// the PostgreSQL tests are skipped.
struct OnPostgres {
    verifier: Verifier,
    backend: Backend,
    ring: Keyring,
    app: String,
    /// Dropped after the verifier that uses it.
    _db: TestDb,
}

fn on_postgres() -> Option<OnPostgres> {
    let db = support::block_on(TestDb::create())?;
    let (backend, ring) = (support::postgres(&db.url), ring());
    let (app, secret) = workspace_on(&backend, &ring);
    let verifier = Verifier::start(Config::default(), backend.clone(), ring.clone());
    traffic(&verifier, &app, &secret);
    Some(OnPostgres {
        verifier,
        backend,
        ring,
        app,
        _db: db,
    })
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn the_embedded_store_has_every_documented_series_that_applies_to_it() {
    let s = embedded_scrape();
    check_served(&s, "sqlite");
    assert_eq!(s.get("dropfix_config_stale"), 0.0);
    assert_eq!(
        s.get("dropfix_identify_requests_total{outcome=\"verified\"}"),
        1.0
    );
    assert_eq!(
        s.get("dropfix_identify_preflights_total{result=\"refused\"}"),
        1.0
    );
    for kind in [
        "unavailable",
        "timeout",
        "sealing",
        "invalid_value",
        "other",
    ] {
        let series = format!("dropfix_store_errors_total{{kind=\"{kind}\"}}");
        assert_eq!(s.get(&series), 0.0, "{series}");
    }
    if cfg!(target_os = "linux") {
        assert!(s.get("process_resident_memory_bytes") > 1e6);
        assert!(s.get("process_open_fds") >= 3.0);
        let started = s.get("process_start_time_seconds");
        assert!((started - now() as f64).abs() < 3600.0, "{started}");
    }
}

#[test]
fn postgres_has_its_pool_listener_and_config_version_too() {
    let Some(pg) = on_postgres() else { return };
    let v = &pg.verifier;
    let s = scrape(v);
    check_served(&s, "postgres");
    // support::postgres opens at most 4; the identify calls' batches took one each.
    assert_eq!(s.get("dropfix_db_pool_max_connections"), 4.0);
    let open = s.get("dropfix_db_pool_connections");
    assert!((1.0..=4.0).contains(&open), "{open}");
    assert!(s.get("dropfix_db_pool_connections_in_use") <= open);
    assert_eq!(s.get("dropfix_db_pool_waiting"), 0.0);
    assert!(s.get("dropfix_db_pool_wait_seconds_count") >= 2.0);
    eventually("the listener to be connected", || {
        (scrape(v).get("dropfix_config_listener_connected") == 1.0).then_some(())
    });

    // A change made elsewhere (the CLI, another instance) reaches this one: its version moves,
    // and so does the time of its last load.
    let before = scrape(v);
    let (version, loaded) = (
        before.get("dropfix_config_version"),
        before.get("dropfix_config_last_reload_timestamp_seconds"),
    );
    let app = pg.app.clone();
    let patch = WorkspacePatch {
        name: Some("renamed".into()),
        ..Default::default()
    };
    support::update_on(&pg.backend, &pg.ring, &app, &patch);
    let after = eventually("the change to arrive", || {
        let s = scrape(v);
        (s.get("dropfix_config_version") > version).then_some(s)
    });
    assert_eq!(after.get("dropfix_config_version"), version + 1.0);
    assert!(after.get("dropfix_config_last_reload_timestamp_seconds") > loaded);
    assert_eq!(after.get("dropfix_config_stale"), 0.0);
}

#[test]
fn https_reports_when_its_certificate_expires() {
    let (s, not_after) = https_scrape();
    check_documented(
        &s,
        Context {
            postgres: false,
            https: true,
            traffic: false,
            jwks: false,
        },
    );
    assert_eq!(
        s.get("dropfix_tls_certificate_expiry_timestamp_seconds"),
        not_after as f64
    );
}

/// The example alerts and the dashboard query only what a verifier serves: each metric name in
/// them is in a real scrape (the embedded store, HTTPS, PostgreSQL).
#[test]
fn the_alert_rules_and_the_dashboard_use_only_scraped_names() {
    let mut scraped: BTreeSet<String> = BTreeSet::new();
    let mut add = |s: &Scrape| scraped.extend(s.names().into_iter().map(str::to_string));
    add(&embedded_scrape());
    add(&https_scrape().0);
    let pg = on_postgres();
    if let Some(pg) = &pg {
        add(&scrape(&pg.verifier));
    }
    let postgres_only: Vec<String> = documented()
        .into_iter()
        .filter(|d| d.present.starts_with("PostgreSQL"))
        .flat_map(|d| {
            let sample = d.sample();
            [d.series, sample]
        })
        .collect();
    for file in [
        "deploy/prometheus/dropfix-alerts.yml",
        "deploy/grafana/dropfix.json",
    ] {
        let text = repo_file(file);
        let used = metric_names(&text);
        assert!(used.len() >= 10, "{file}: {used:?}");
        for name in used {
            if pg.is_none() && postgres_only.contains(&name) {
                eprintln!("{file}: {name} not checked (the PostgreSQL tests are skipped)");
                continue;
            }
            assert!(
                scraped.contains(&name),
                "{file} uses {name}, which no verifier serves; served: {scraped:?}"
            );
        }
    }
}

/// The metric names in `text`: words that start with `dropfix_` or `process_` (not a prefix
/// alone, such as the `process_*` of a comment).
fn metric_names(text: &str) -> BTreeSet<String> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.split(|c: char| !is_word(c))
        .filter(|w| w.starts_with("dropfix_") || w.starts_with("process_"))
        .filter(|w| !w.ends_with('_'))
        .map(str::to_string)
        .collect()
}

/// An operator rewraps the secrets to a master key this instance was not given: it cannot load
/// the change (`dropfix_config_stale` 1), an admin read of the workspace fails on the sealed
/// secret (`dropfix_store_errors_total{kind="sealing"}`) and identify calls get 503
/// `config_stale`; rewrapped back, the instance loads again by itself (stale 0, a newer load).
#[test]
fn config_stale_and_sealing_errors_follow_a_master_key_the_instance_lacks() {
    let dir = support::data_dir();
    let backend = support::embedded(dir.path());
    let (mk1, mk2) = (
        MasterKey::generate("mk1").unwrap(),
        MasterKey::generate("mk2").unwrap(),
    );
    let only_mk1 = Keyring::new(vec![mk1.clone()]).unwrap();
    let (app, secret) = workspace_on(&backend, &only_mk1);
    let v = Verifier::start(Config::default(), backend.clone(), only_mk1);
    let sealing = "dropfix_store_errors_total{kind=\"sealing\"}";
    let before = scrape(&v);
    assert_eq!(before.get("dropfix_config_stale"), 0.0);
    assert_eq!(before.get(sealing), 0.0);
    let loaded = before.get("dropfix_config_last_reload_timestamp_seconds");

    // `master-key rewrap` with mk2 active, from another process.
    let rewrap = |ring: Keyring| {
        with_store_on(&backend, &ring, async |store| {
            assert_eq!(store.rewrap_secrets().await.unwrap(), 1);
        })
    };
    rewrap(Keyring::new(vec![mk2.clone(), mk1.clone()]).unwrap());
    eventually("config_stale to be 1", || {
        (scrape(&v).get("dropfix_config_stale") == 1.0).then_some(())
    });
    let r = v.admin("GET", &format!("/v1/admin/workspaces/{app}"), None);
    assert_eq!(r.status, 503, "{}", r.text());
    let r = v.identify(&signed_call(&app, &secret, "u1"));
    assert_eq!(r.json()["error"]["code"], "config_stale", "{}", r.text());
    let stale = scrape(&v);
    assert!(stale.get(sealing) >= 1.0, "{stale:#?}");
    assert_eq!(
        stale.get("dropfix_identify_requests_total{outcome=\"config_stale\"}"),
        1.0
    );
    assert_eq!(
        stale.get("dropfix_config_last_reload_timestamp_seconds"),
        loaded,
        "nothing was loaded"
    );

    rewrap(Keyring::new(vec![mk1, mk2]).unwrap());
    let fresh = eventually("config_stale to be 0 again", || {
        let s = scrape(&v);
        (s.get("dropfix_config_stale") == 0.0).then_some(s)
    });
    assert!(fresh.get("dropfix_config_last_reload_timestamp_seconds") > loaded);
    let r = v.identify(&signed_call(&app, &secret, "u1"));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn store_errors_have_a_kind_unless_they_are_the_callers_mistake() {
    use dropfix_server::metrics::STORE_ERROR_KINDS;
    use dropfix_server::store::StoreError;
    use dropfix_server::workspace::KeyRuleError;

    let sqlite = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
    let cases = [
        (StoreError::Postgres("gone".into()), Some("unavailable")),
        (StoreError::Closed, Some("unavailable")),
        (
            StoreError::Sqlite(sqlite(rusqlite::ffi::SQLITE_FULL)),
            Some("unavailable"),
        ),
        (StoreError::Timeout("late".into()), Some("timeout")),
        (
            StoreError::Sqlite(sqlite(rusqlite::ffi::SQLITE_BUSY)),
            Some("timeout"),
        ),
        (StoreError::Sealing("no key".into()), Some("sealing")),
        (
            StoreError::InvalidValue("name".into()),
            Some("invalid_value"),
        ),
        (
            StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows),
            Some("other"),
        ),
        (StoreError::Setup("perms".into()), Some("other")),
        (StoreError::WorkspaceNotFound, None),
        (StoreError::Key(KeyRuleError::LastLiveKey), None),
    ];
    for (e, kind) in cases {
        assert_eq!(e.kind(), kind, "{e}");
        assert!(kind.is_none_or(|k| STORE_ERROR_KINDS.contains(&k)));
    }
}

/// Below HTTP: the key file of a running store replaced by one with another key. Reading the
/// workspaces through the store fails with a sealing error, counted by kind; a reload marks the
/// registry stale; the caller's own mistakes are not counted.
#[test]
fn a_swapped_master_key_file_is_counted_as_sealing_errors_and_marks_the_registry_stale() {
    use dropfix_server::metrics::{STORE_ERROR_KINDS, Sample};
    use dropfix_server::sealing::default_key_file;
    use dropfix_server::store::{Hooks, Store, StoreError};

    let (dir, other) = (support::data_dir(), support::data_dir());
    let file = default_key_file(dir.path());
    let ring = Keyring::load_or_create(&file).unwrap().0;
    Keyring::load_or_create(&default_key_file(other.path())).unwrap();
    let hooks = Hooks::new(ring);
    let (metrics, registry) = (Arc::clone(&hooks.metrics), Arc::clone(&hooks.registry));
    let count = |kind: &str| {
        let s = Scrape::parse(&metrics.render(&Sample::default()));
        s.get(&format!("dropfix_store_errors_total{{kind=\"{kind}\"}}"))
    };
    support::block_on(async {
        let store = Store::open(&Backend::SqliteMemory, hooks).await.unwrap();
        let settings = new_workspace("w", StrictMode::Off, &[]);
        store.create_workspace(&settings, "t", now()).await.unwrap();
        let patch = WorkspacePatch::default();
        let e = store.update_workspace("nope", &patch, "t", now()).await;
        assert!(matches!(e, Err(StoreError::WorkspaceNotFound)));
        assert!(STORE_ERROR_KINDS.iter().all(|k| count(k) == 0.0));

        // The key file is read again when its modification time changes.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::copy(default_key_file(other.path()), &file).unwrap();
        let e = store.workspaces().await.unwrap_err();
        assert!(matches!(e, StoreError::Sealing(_)), "{e}");
        assert_eq!(count("sealing"), 1.0);
        assert!(!registry.is_stale());
        assert!(store.reload().await.is_err());
        assert_eq!(count("sealing"), 2.0);
        assert!(registry.is_stale());
    });
}
