//! Two verifier instances on one PostgreSQL database, each serving HTTP on its own port, as they
//! would run behind a load balancer: a change made through one instance's admin API (key
//! rotation, strict mode) is honoured by the other within a second; the old key verifies on
//! both until its grace period ends and is refused on both after; identify calls stored through
//! either instance read back through the other's admin API.
//!
//! Needs PostgreSQL (see `support::pg`): fails with instructions when none answers.

mod support;

use std::time::{Duration, Instant};

use dropfix_core::{SecretKey, StrictMode, seed};
use dropfix_server::Config;
use dropfix_server::sealing::{Keyring, MasterKey};
use dropfix_server::store::Role;
use dropfix_server::workspace;
use serde_json::{Value as Json, json};
use support::pg::TestDb;
use support::{Verifier, assert_redirect_to_login, new_workspace, now, postgres, with_store_on};

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

/// Two verifiers (`a`, `b`) on a database of their own, holding one workspace.
struct TwoInstances {
    a: Verifier,
    b: Verifier,
    app: String,
    secret: SecretKey,
    /// Dropped after the instances that use it.
    _db: TestDb,
}

/// A new database with a workspace and console accounts (`(email, password, role)`) made
/// through the store, as `dropfix-server workspace create` and `user create` make them, then
/// two instances started with `config()`, all with the same master keys. `None` when the
/// PostgreSQL tests are skipped.
fn two_instances(
    strict: StrictMode,
    members: &[(&str, &str, Role)],
    config: impl Fn() -> Config,
) -> Option<TwoInstances> {
    let db = support::block_on(TestDb::create())?;
    let ring = Keyring::new(vec![MasterKey::generate("mk1").unwrap()]).unwrap();
    let (app, secret) = with_store_on(&postgres(&db.url), &ring, async |store| {
        let settings = new_workspace("two instances", strict, &workspace::DEV_ORIGINS);
        let k = store
            .create_workspace(&settings, "cli", now())
            .await
            .unwrap();
        for (email, password, role) in members {
            let phc = dropfix_server::console::session::hash_password(password).unwrap();
            support::create_member(store, email, &phc, &k.workspace.app_id, *role).await;
        }
        (k.workspace.app_id, k.secret)
    });
    Some(TwoInstances {
        a: Verifier::start(config(), postgres(&db.url), ring.clone()),
        b: Verifier::start(config(), postgres(&db.url), ring),
        app,
        secret,
        _db: db,
    })
}

#[test]
fn a_rotation_through_one_instance_is_honoured_by_the_other_within_a_second() {
    let Some(t) = two_instances(StrictMode::Off, &[], Config::default) else {
        return;
    };
    let (a, b, app, old) = (&t.a, &t.b, &t.app, &t.secret);
    // Both verify with the first key; stored through either, readable through the other.
    for (i, (via, other)) in [(a, b), (b, a)].into_iter().enumerate() {
        let user = format!("first-{i}");
        let r = via.identify(&signed(app, old, &user));
        assert_eq!(r.status, 200, "{}", r.text());
        let r = other.get_user(app, &user);
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
        b.identify(&signed(app, &new, "new-on-b")).status == 200
    });
    eprintln!("B verified with the new key {took:?} after the rotation");
    // The old key keeps verifying on both during its grace period.
    for (name, inst) in [("a", a), ("b", b)] {
        let r = inst.identify(&signed(app, old, &format!("old-in-grace-{name}")));
        assert_eq!(r.status, 200, "{name}: {}", r.text());
    }
    assert!(
        rotated_at.elapsed() < Duration::from_secs(grace as u64),
        "too slow to check the grace period"
    );
    // After the grace period it is refused everywhere (keys end by their timestamps, not by a
    // message that might be lost).
    std::thread::sleep(Duration::from_secs(grace as u64 + 1).saturating_sub(rotated_at.elapsed()));
    for (name, inst) in [("a", a), ("b", b)] {
        let r = inst.identify(&signed(app, old, &format!("old-after-grace-{name}")));
        assert_eq!(r.status, 401, "{name}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "signature_mismatch");
        let r = inst.identify(&signed(app, &new, &format!("new-after-grace-{name}")));
        assert_eq!(r.status, 200, "{name}: {}", r.text());
    }
    // The record names the key that verified it, through either admin API.
    let r = a.get_user(app, "new-on-b");
    assert_eq!(r.status, 200, "{}", r.text());
    let new_key_id = r.json()["key_id"].clone();
    let r = b.get_user(app, "first-0");
    assert_ne!(r.json()["key_id"], new_key_id);
    // Refused calls stored nothing.
    let r = b.get_user(app, "old-after-grace-a");
    assert_eq!(r.status, 404, "{}", r.text());
}

/// A repeat call that changes nothing within the resolution of the stored times
/// (`users::SEEN_RESOLUTION`), through either instance, leaves the row as it is on disk: no new
/// row version (same `ctid`) and not even a row lock (`xmax` still 0), which an `ON CONFLICT DO
/// UPDATE` whose condition is false would take, with a WAL record and a dirtied page. A call
/// that changes a value is stored at once.
#[test]
fn a_repeat_call_through_any_instance_leaves_the_row_untouched() {
    let Some(t) = two_instances(StrictMode::Off, &[], Config::default) else {
        return;
    };
    let (a, b, app, secret) = (&t.a, &t.b, &t.app, &t.secret);
    let row = || {
        support::block_on(async {
            let c = t._db.client().await;
            let r = c
                .query_one(
                    "SELECT ctid::text, xmax::text, plan, last_seen FROM users
                     WHERE app_id = $1 AND user_id = 'repeat'",
                    &[app],
                )
                .await
                .unwrap();
            (
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
                r.get::<_, i64>(3),
            )
        })
    };
    let call = signed(app, secret, "repeat");
    assert_eq!(a.identify(&call).status, 200);
    let first = row();
    assert_eq!((first.1.as_str(), first.2.as_str()), ("0", "pro"));
    for via in [b, a, b] {
        let r = via.identify(&call);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(row(), first, "a repeat call touched the row");
    }
    let mut changed = call.clone();
    changed["traits"]["plan"] = json!("team");
    assert_eq!(b.identify(&changed).status, 200);
    let after = row();
    assert_eq!(after.2, "team");
    assert_ne!(after.0, first.0, "a change makes a new row version");
}

#[test]
fn a_strict_toggle_through_one_instance_is_honoured_by_the_other_within_a_second() {
    let Some(t) = two_instances(StrictMode::Off, &[], Config::default) else {
        return;
    };
    let (a, b, app, secret) = (&t.a, &t.b, &t.app, &t.secret);
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
    assert_eq!(b.identify(&signed(app, secret, "signed")).status, 200);
    // The 401 stored nothing; the signed call is readable through A.
    assert_eq!(a.get_user(app, "anon-2").status, 404);
    assert_eq!(a.get_user(app, "signed").status, 200);
    let r = b.admin("GET", &format!("/v1/admin/workspaces/{app}"), None);
    assert_eq!(r.json()["strict"], "on", "{}", r.text());
}

/// The console on PostgreSQL: a session made by logging in on one instance is served by the
/// other and ended there by logout; the counts each instance flushes add up in the store, so
/// both consoles show the total.
#[test]
fn a_console_session_and_the_counts_are_shared_by_every_instance() {
    let (email, password) = ("Owner@Example.com", "correct horse battery staple");
    let config = || Config {
        console: dropfix_server::console::ConsoleConfig {
            stats_flush: Duration::from_millis(100),
            ..Default::default()
        },
        ..Config::default()
    };
    let members = [(email, password, Role::Owner)];
    let Some(t) = two_instances(StrictMode::ReportOnly, &members, config) else {
        return;
    };
    let (a, b, app) = (&t.a, &t.b, &t.app);
    // The email in other case: accounts are found case-insensitively.
    let cookie = a.login("owner@example.COM", password);
    let page = format!("/console/w/{app}/security");
    let r = b.get(&cookie, &page);
    assert_eq!(r.status, 200, "{}", r.text());
    // Two unsigned calls through A, three through B (report-only: accepted, would be refused).
    for (i, inst) in [a, a, b, b, b].into_iter().enumerate() {
        let r = inst.identify(&json!({"app_id": app, "user_id": format!("u{i}")}));
        assert_eq!(r.status, 202, "{}", r.text());
    }
    for inst in [a, b] {
        support::eventually("both instances' counts in the store", || {
            let t = inst.get(&cookie, &page).text();
            t.contains("data-count=\"would_reject-1h\">5<")
                .then_some(())
        });
    }
    let r = b.post(&cookie, "/console/logout", &[]);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_redirect_to_login(&a.get(&cookie, &page));
}
