//! Two verifier instances on one PostgreSQL database, each serving HTTP on its own port, as they
//! would run behind a load balancer: a change made through one instance's admin API (key
//! rotation, strict mode) is honoured by the other within a second; the old key verifies on
//! both until its grace period ends and is refused on both after; identify calls stored through
//! either instance read back through the other's admin API.
//!
//! Needs PostgreSQL (see `pg_support`): fails with instructions when none answers.

#[path = "../../tests/support/mod.rs"]
mod support;

mod pg_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dropfix_core::{SecretKey, StrictMode, seed};
use dropfix_server::sealing::{Keyring, MasterKey};
use dropfix_server::store::postgres::PgOptions;
use dropfix_server::store::{Backend, Hooks, Role, Store};
use dropfix_server::workspace::{self, NewWorkspace};
use dropfix_server::{AppState, Config};
use pg_support::TestDb;
use serde_json::{Value as Json, json};
use sha2::Digest;
use support::{Response, build_request, raw_request};

const ADMIN: &str = "dfadm_postgres_instances_admin_token";

fn now() -> i64 {
    dropfix_server::http::now()
}

/// One verifier: its own runtime, store handle (pool + listener) and port.
struct Instance {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Instance {
    /// Every instance of a deployment holds the same master keys (`ring`).
    fn start(url: &str, ring: &Keyring) -> Instance {
        Instance::start_with(url, ring, Config::default())
    }

    fn start_with(url: &str, ring: &Keyring, config: Config) -> Instance {
        let ring = ring.clone();
        let backend = Backend::Postgres(PgOptions {
            pool_size: 4,
            ..PgOptions::new(url)
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let state = AppState::new(
                    config,
                    &backend,
                    ring,
                    sha2::Sha256::digest(ADMIN.as_bytes()).into(),
                )
                .await
                .unwrap();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                dropfix_server::run(listener, state, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        Instance {
            addr: addr_rx.recv().unwrap(),
            shutdown: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        raw_request(self.addr, &build_request(method, path, headers, body))
    }

    fn identify(&self, body: &Json) -> Response {
        self.request(
            "POST",
            "/v1/identify",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    fn admin(&self, method: &str, path: &str, body: Option<Json>) -> Response {
        let auth = format!("Bearer {ADMIN}");
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.request(
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            &bytes,
        )
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn signed(app: &str, secret: &SecretKey, user: &str) -> Json {
    json!({"app_id": app, "user_id": user, "traits": {"plan": "pro"},
           "signature": seed::sign(secret, user), "signedAt": now()})
}

/// Waits until `ok` holds; fails if that takes longer than `limit`. Returns the time it took.
fn within(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?} on the other instance"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// A workspace made through the store (as `dropfix-server workspace create` would).
fn create_workspace(url: &str, ring: &Keyring) -> (String, SecretKey) {
    create_workspace_with(url, ring, StrictMode::Off, &[])
}

/// A workspace, and console accounts with a role in it (as `dropfix-server user create`).
fn create_workspace_with(
    url: &str,
    ring: &Keyring,
    strict: StrictMode,
    members: &[(&str, &str, Role)],
) -> (String, SecretKey) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let hooks = Hooks::new(ring.clone());
        let store = Store::open(&Backend::Postgres(PgOptions::new(url)), hooks)
            .await
            .unwrap();
        let k = store
            .create_workspace(
                &NewWorkspace {
                    name: "two instances".into(),
                    strict,
                    require_signed_claims: false,
                    allowed_origins: workspace::DEV_ORIGINS.map(String::from).to_vec(),
                },
                "cli",
                now(),
            )
            .await
            .unwrap();
        for (email, password, role) in members {
            let phc = dropfix_server::console::session::hash_password(password).unwrap();
            store.create_account(email, &phc, now()).await.unwrap();
            assert!(
                store
                    .add_member(email, &k.workspace.app_id, *role, "cli", now())
                    .await
                    .unwrap()
            );
        }
        (k.workspace.app_id, k.secret)
    })
}

/// The master keys of one test's deployment (shared by all its instances and the "CLI").
fn keyring() -> Keyring {
    Keyring::new(vec![MasterKey::generate("mk1").unwrap()]).unwrap()
}

fn test_db() -> Option<TestDb> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(TestDb::create())
}

#[test]
fn a_rotation_through_one_instance_is_honoured_by_the_other_within_a_second() {
    let Some(db) = test_db() else { return };
    let ring = keyring();
    let (app, old) = create_workspace(&db.url, &ring);
    let a = Instance::start(&db.url, &ring);
    let b = Instance::start(&db.url, &ring);
    // Both verify with the first key; stored through either, readable through the other.
    for (i, (via, other)) in [(&a, &b), (&b, &a)].into_iter().enumerate() {
        let user = format!("first-{i}");
        let r = via.identify(&signed(&app, &old, &user));
        assert_eq!(r.status, 200, "{}", r.text());
        let r = other.admin(
            "GET",
            &format!("/v1/admin/workspaces/{app}/users/{user}"),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let u = r.json();
        assert_eq!(
            (u["verified"].as_bool(), u["plan"].as_str()),
            (Some(true), Some("pro")),
            "{u}"
        );
    }

    // Rotate through A with a short grace.
    let grace = 3;
    let r = a.admin(
        "POST",
        &format!("/v1/admin/workspaces/{app}/rotate"),
        Some(json!({"grace_seconds": grace})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let rotated_at = Instant::now();
    let new = SecretKey::new(r.json()["secret"].as_str().unwrap());
    let took = within(Duration::from_secs(1), "the new key", || {
        b.identify(&signed(&app, &new, "new-on-b")).status == 200
    });
    eprintln!("B verified with the new key {took:?} after the rotation");
    // The old key keeps verifying on both during its grace period.
    for (name, inst) in [("a", &a), ("b", &b)] {
        let r = inst.identify(&signed(&app, &old, &format!("old-in-grace-{name}")));
        assert_eq!(r.status, 200, "{name}: {}", r.text());
    }
    assert!(
        rotated_at.elapsed() < Duration::from_secs(grace as u64),
        "too slow to check the grace period"
    );
    // After the grace period it is refused everywhere (keys end by their timestamps, not by a
    // message that might be lost).
    std::thread::sleep(Duration::from_secs(grace as u64 + 1).saturating_sub(rotated_at.elapsed()));
    for (name, inst) in [("a", &a), ("b", &b)] {
        let r = inst.identify(&signed(&app, &old, &format!("old-after-grace-{name}")));
        assert_eq!(r.status, 401, "{name}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "signature_mismatch");
        let r = inst.identify(&signed(&app, &new, &format!("new-after-grace-{name}")));
        assert_eq!(r.status, 200, "{name}: {}", r.text());
    }
    // The record names the key that verified it, through either admin API.
    let r = a.admin(
        "GET",
        &format!("/v1/admin/workspaces/{app}/users/new-on-b"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let new_key_id = r.json()["key_id"].clone();
    let r = b.admin(
        "GET",
        &format!("/v1/admin/workspaces/{app}/users/first-0"),
        None,
    );
    assert_ne!(r.json()["key_id"], new_key_id);
    // Refused calls stored nothing.
    let r = b.admin(
        "GET",
        &format!("/v1/admin/workspaces/{app}/users/old-after-grace-a"),
        None,
    );
    assert_eq!(r.status, 404, "{}", r.text());
}

#[test]
fn a_strict_toggle_through_one_instance_is_honoured_by_the_other_within_a_second() {
    let Some(db) = test_db() else { return };
    let ring = keyring();
    let (app, secret) = create_workspace(&db.url, &ring);
    let a = Instance::start(&db.url, &ring);
    let b = Instance::start(&db.url, &ring);
    let unsigned = json!({"app_id": app, "user_id": "anon", "traits": {"name": "x"}});
    assert_eq!(b.identify(&unsigned).status, 202);
    let r = a.admin(
        "PATCH",
        &format!("/v1/admin/workspaces/{app}"),
        Some(json!({"strict": "on"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let mut probe = 0;
    let took = within(Duration::from_secs(1), "strict mode on", || {
        probe += 1;
        b.identify(&json!({"app_id": app, "user_id": format!("probe-{probe}")}))
            .status
            == 401
    });
    eprintln!("B enforced strict mode {took:?} after the change");
    let r = b.identify(&json!({"app_id": app, "user_id": "anon-2"}));
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(b.identify(&signed(&app, &secret, "signed")).status, 200);
    // The 401 stored nothing; the signed call is readable through A.
    assert_eq!(
        a.admin(
            "GET",
            &format!("/v1/admin/workspaces/{app}/users/anon-2"),
            None
        )
        .status,
        404
    );
    assert_eq!(
        a.admin(
            "GET",
            &format!("/v1/admin/workspaces/{app}/users/signed"),
            None
        )
        .status,
        200
    );
    let r = b.admin("GET", &format!("/v1/admin/workspaces/{app}"), None);
    assert_eq!(r.json()["strict"], "on", "{}", r.text());
}

/// The console on PostgreSQL: a session made by logging in on one instance is served by the
/// other and ended there by logout; the counts each instance flushes add up in the store, so
/// both consoles show the total.
#[test]
fn a_console_session_and_the_counts_are_shared_by_every_instance() {
    let Some(db) = test_db() else { return };
    let ring = keyring();
    let (email, password) = ("Owner@Example.com", "correct horse battery staple");
    let (app, _) = create_workspace_with(
        &db.url,
        &ring,
        StrictMode::ReportOnly,
        &[(email, password, Role::Owner)],
    );
    let config = || Config {
        console: dropfix_server::console::ConsoleConfig {
            stats_flush: Duration::from_millis(100),
            ..Default::default()
        },
        ..Config::default()
    };
    let a = Instance::start_with(&db.url, &ring, config());
    let b = Instance::start_with(&db.url, &ring, config());
    // The console's own origin is the Host header `build_request` sends.
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("email", "owner@example.COM"), ("password", password)])
        .finish();
    let r = a.request(
        "POST",
        "/console/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", "http://127.0.0.1"),
        ],
        form.as_bytes(),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = r
        .header("set-cookie")
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = format!("/console/w/{app}/security");
    let r = b.request("GET", &page, &[("Cookie", &cookie)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    // Two unsigned calls through A, three through B (report-only: accepted, would be refused).
    for (i, inst) in [&a, &a, &b, &b, &b].into_iter().enumerate() {
        let r = inst.identify(&json!({"app_id": app, "user_id": format!("u{i}")}));
        assert_eq!(r.status, 202, "{}", r.text());
    }
    for inst in [&a, &b] {
        support::eventually("both instances' counts in the store", || {
            let t = inst
                .request("GET", &page, &[("Cookie", &cookie)], b"")
                .text();
            t.contains("data-count=\"would_reject-1h\">5<")
                .then_some(())
        });
    }
    let r = b.request(
        "POST",
        "/console/logout",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", "http://127.0.0.1"),
        ],
        b"",
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let r = a.request("GET", &page, &[("Cookie", &cookie)], b"");
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/console/login"))
    );
}
