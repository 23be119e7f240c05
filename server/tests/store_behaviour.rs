//! One behaviour suite for both storage backends: every stored-data rule and key rule is written
//! once, as an async function over an [`Env`] (a place to open [`Store`] handles), and run
//! against the embedded SQLite store (a temporary owner-only data dir) and against a real
//! PostgreSQL (a database of its own per test). Stored users are also compared field by field
//! with `users::merge_all`, the rules as one pure function, so the PostgreSQL upsert statement
//! and the SQLite read-merge-write give the same record for the same calls.
//!
//! PostgreSQL comes from `DROPFIX_TEST_DATABASE_URL` (see `pg_support`); when none answers the
//! PostgreSQL half fails with instructions rather than passing.

mod pg_support;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use dropfix_core::StrictMode;
use dropfix_server::sealing::{Keyring, MasterKey};
use dropfix_server::store::postgres::PgOptions;
use dropfix_server::store::{Backend, Hooks, Store, StoreError};
use dropfix_server::users::{
    Claimed, IdentifyWrite, UserQuery, UserRecord, Verification, merge_all,
};
use dropfix_server::workspace::{
    self, KeyRuleError, MAX_LIVE_KEYS, NewWorkspace, Registry, Workspace, WorkspacePatch,
};
use pg_support::TestDb;
use serde_json::{Map, Value as Json, json};

const NOW: i64 = 1_900_000_000;

/// The master keys every handle of a test holds unless it says otherwise (a deployment's
/// instances share one keyring).
fn ring() -> Keyring {
    static RING: std::sync::OnceLock<Keyring> = std::sync::OnceLock::new();
    RING.get_or_init(|| Keyring::new(vec![MasterKey::generate("mk1").unwrap()]).unwrap())
        .clone()
}

/// Where a test's stores live.
enum Env {
    Sqlite(tempfile::TempDir),
    Postgres(TestDb),
}

impl Env {
    fn sqlite() -> Env {
        let dir = tempfile::tempdir().unwrap();
        owner_only(dir.path());
        Env::Sqlite(dir)
    }

    async fn postgres() -> Option<Env> {
        TestDb::create().await.map(Env::Postgres)
    }

    fn backend(&self) -> Backend {
        match self {
            Env::Sqlite(dir) => Backend::Sqlite {
                data_dir: dir.path().to_path_buf(),
            },
            Env::Postgres(db) => Backend::Postgres(PgOptions {
                pool_size: 4,
                ..PgOptions::new(db.url.clone())
            }),
        }
    }

    /// A new handle on the same data with a registry of its own: another instance (or the CLI)
    /// as far as the store is concerned.
    async fn open(&self) -> (Store, Arc<Registry>) {
        self.open_with(ring()).await
    }

    /// [`Env::open`] with other master keys (a rewrap, an instance missing a key).
    async fn open_with(&self, ring: Keyring) -> (Store, Arc<Registry>) {
        let hooks = Hooks::new(ring);
        let store = Store::open(&self.backend(), hooks.clone())
            .await
            .unwrap_or_else(|e| panic!("opening the store failed: {e}"));
        (store, hooks.registry)
    }

    async fn store(&self) -> Store {
        self.open().await.0
    }

    /// Marks the database as written by a newer server (schema version `v`).
    async fn set_schema_version(&self, v: i64) {
        match self {
            Env::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(
                    dir.path().join(dropfix_server::store::sqlite::DB_FILE),
                )
                .unwrap();
                conn.pragma_update(None, "user_version", v).unwrap();
            }
            Env::Postgres(db) => {
                db.client()
                    .await
                    .execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)",
                        &[&i32::try_from(v).unwrap()],
                    )
                    .await
                    .unwrap();
            }
        }
    }

    fn known_schema(&self) -> usize {
        match self {
            Env::Sqlite(_) => dropfix_server::store::sqlite::schema_version_known(),
            Env::Postgres(_) => dropfix_server::store::postgres::schema_version_known(),
        }
    }
}

#[cfg(unix)]
fn owner_only(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[cfg(not(unix))]
fn owner_only(_: &Path) {}

/// Runs every rule on both backends: `sqlite::rule` and `postgres::rule`.
macro_rules! on_both_backends {
    ($($rule:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $rule() {
                    super::$rule(&super::Env::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $rule() {
                    if let Some(env) = super::Env::postgres().await {
                        super::$rule(&env).await;
                    }
                }
            )*
        }
    };
}

on_both_backends!(
    unverified_calls_never_overwrite_or_downgrade_a_verified_user,
    verification_does_not_promote_earlier_claims,
    unverified_calls_for_an_unverified_user_overlay_their_claims,
    custom_traits_are_replaced_only_by_a_call_that_sends_some,
    many_writes_for_one_user_in_one_batch_equal_the_calls_one_by_one,
    verified_calls_record_when_their_key_was_last_used,
    a_roll_keeps_the_old_key_verifying_until_its_grace_ends,
    a_second_roll_never_cuts_another_keys_grace,
    retire_and_retire_old,
    the_last_live_key_cannot_be_retired,
    at_most_ten_live_keys,
    key_rules_refuse_bad_input,
    concurrent_rolls_from_two_handles_run_one_after_the_other,
    strict_modes_and_origins_change_through_update_workspace,
    user_listing_pages_filters_and_searches,
    delete_user_removes_the_record_and_audits,
    the_audit_log_is_newest_first_and_holds_no_secret,
    meta_values_round_trip,
    a_newer_schema_is_refused,
    a_change_through_one_handle_reaches_another_within_a_second,
);

// ---------------------------------------------------------------------------------------------
// Helpers

async fn workspace(store: &Store) -> (String, i64) {
    let k = store
        .create_workspace(
            &NewWorkspace {
                name: "behaviour".into(),
                strict: StrictMode::Off,
                require_signed_claims: false,
                allowed_origins: workspace::DEV_ORIGINS.map(String::from).to_vec(),
            },
            "test",
            NOW,
        )
        .await
        .unwrap();
    (k.workspace.app_id, k.key_id)
}

fn claimed(
    name: Option<&str>,
    email: Option<&str>,
    plan: Option<&str>,
    mrr: Option<f64>,
) -> Claimed {
    Claimed {
        name: name.map(String::from),
        email: email.map(String::from),
        plan: plan.map(String::from),
        mrr,
        signup_date: None,
    }
}

fn unverified(app: &str, user: &str, now: i64, c: Claimed) -> IdentifyWrite {
    IdentifyWrite {
        app_id: app.into(),
        user_id: user.into(),
        now,
        verification: None,
        trusted: Claimed::default(),
        claimed: c,
        custom: Map::new(),
    }
}

fn verified(
    app: &str,
    user: &str,
    now: i64,
    key_id: i64,
    trusted: Claimed,
    c: Claimed,
) -> IdentifyWrite {
    IdentifyWrite {
        app_id: app.into(),
        user_id: user.into(),
        now,
        verification: Some(Verification {
            method: "hmac",
            key_id,
            signed_at: now - 5,
        }),
        trusted,
        claimed: c,
        custom: Map::new(),
    }
}

fn with_custom(mut w: IdentifyWrite, custom: Json) -> IdentifyWrite {
    w.custom = custom.as_object().unwrap().clone();
    w
}

/// Stores `writes[from..]` one call at a time (the earlier ones are already stored) and checks
/// the stored record against `merge_all` over all of `writes`.
async fn store_from(store: &Store, writes: &[IdentifyWrite], from: usize) -> UserRecord {
    for w in &writes[from..] {
        store.identify(w.clone()).await.unwrap();
    }
    let (app, user) = (&writes[0].app_id, &writes[0].user_id);
    let stored = store.get_user(app, user).await.unwrap().unwrap();
    assert_eq!(
        Some(&stored),
        merge_all(None, writes).as_ref(),
        "stored vs merge()"
    );
    stored
}

async fn store_each(store: &Store, writes: &[IdentifyWrite]) -> UserRecord {
    store_from(store, writes, 0).await
}

/// A pending identify call.
type Call = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// Polls every future in order until all are done: the first poll of each enqueues its write,
/// so the store receives them in this order, all before any is answered.
async fn join_in_order<T>(futures: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut futures: Vec<_> = futures.into_iter().map(Some).collect();
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futures.iter_mut().zip(out.iter_mut()) {
            if let Some(fut) = f {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *o = Some(v);
                        *f = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

fn exposed(secrets: &[dropfix_core::SecretKey]) -> Vec<&str> {
    secrets.iter().map(|s| s.expose_secret()).collect()
}

fn key_rule(e: StoreError) -> KeyRuleError {
    match e {
        StoreError::Key(k) => k,
        other => panic!("expected a key rule error, got {other:?}"),
    }
}

fn expiries(ws: &Workspace) -> Vec<(i64, Option<i64>)> {
    ws.keys.iter().map(|k| (k.id, k.expires_at)).collect()
}

// ---------------------------------------------------------------------------------------------
// Stored-data rules

async fn unverified_calls_never_overwrite_or_downgrade_a_verified_user(env: &Env) {
    let store = env.store().await;
    let (app, key) = workspace(&store).await;
    let trusted = claimed(
        Some("Ada"),
        Some("ada@example.com"),
        Some("pro"),
        Some(5000.0),
    );
    let writes = [
        verified(&app, "u1", NOW, key, trusted.clone(), trusted.clone()),
        unverified(
            &app,
            "u1",
            NOW + 10,
            claimed(
                Some("Mallory"),
                Some("evil@example.com"),
                Some("enterprise"),
                Some(1.5),
            ),
        ),
        // Claims nothing: the earlier unverified claims stay.
        unverified(&app, "u1", NOW + 20, Claimed::default()),
    ];
    let u = store_each(&store, &writes).await;
    assert!(u.verified);
    assert_eq!(u.values(), trusted);
    assert_eq!(
        (u.method.as_deref(), u.key_id, u.verified_at),
        (Some("hmac"), Some(key), Some(NOW))
    );
    assert_eq!(
        u.unverified_claims,
        Some(
            json!({"name": "Mallory", "email": "evil@example.com", "plan": "enterprise", "mrr": 1.5, "at": NOW + 10})
        )
    );
    assert_eq!((u.first_seen, u.last_seen), (NOW, NOW + 20));
    // A whole MRR reads back as an integer on both backends.
    assert_eq!(serde_json::to_value(&u).unwrap()["mrr"].to_string(), "5000");
}

async fn verification_does_not_promote_earlier_claims(env: &Env) {
    let store = env.store().await;
    let (app, key) = workspace(&store).await;
    let writes = [
        unverified(
            &app,
            "u2",
            NOW,
            claimed(
                Some("Eve"),
                Some("eve@example.com"),
                Some("pro"),
                Some(10.0),
            ),
        ),
        // The token vouches for the email only; the name it also sent stays a claim.
        verified(
            &app,
            "u2",
            NOW + 1,
            key,
            claimed(None, Some("real@example.com"), None, None),
            claimed(Some("Eve Again"), Some("real@example.com"), None, None),
        ),
    ];
    let u = store_each(&store, &writes).await;
    assert!(u.verified);
    assert_eq!(
        u.values(),
        claimed(None, Some("real@example.com"), None, None)
    );
    assert_eq!(
        u.unverified_claims,
        Some(json!({"name": "Eve Again", "at": NOW + 1}))
    );
    // A later verification overlays what it vouches for on the trusted values.
    let more = [
        writes[0].clone(),
        writes[1].clone(),
        verified(
            &app,
            "u2",
            NOW + 2,
            key,
            claimed(None, None, Some("team"), None),
            claimed(None, None, Some("team"), None),
        ),
    ];
    let u = store_from(&store, &more, 2).await;
    assert_eq!(Some(&u), merge_all(None, &more).as_ref());
    assert_eq!(
        u.values(),
        claimed(None, Some("real@example.com"), Some("team"), None)
    );
    assert_eq!(u.unverified_claims, None);
}

async fn unverified_calls_for_an_unverified_user_overlay_their_claims(env: &Env) {
    let store = env.store().await;
    let (app, _) = workspace(&store).await;
    let writes = [
        unverified(
            &app,
            "u3",
            NOW,
            claimed(Some("A"), Some("a@example.com"), None, None),
        ),
        unverified(
            &app,
            "u3",
            NOW + 1,
            claimed(None, Some("b@example.com"), Some("free"), Some(0.25)),
        ),
    ];
    let u = store_each(&store, &writes).await;
    assert!(!u.verified);
    assert_eq!(
        u.values(),
        claimed(Some("A"), Some("b@example.com"), Some("free"), Some(0.25))
    );
    assert_eq!(
        (u.method, u.key_id, u.unverified_claims),
        (None, None, None)
    );
}

async fn custom_traits_are_replaced_only_by_a_call_that_sends_some(env: &Env) {
    let store = env.store().await;
    let (app, key) = workspace(&store).await;
    let writes = [
        with_custom(
            unverified(&app, "u4", NOW, Claimed::default()),
            json!({"team": "red", "seats": 3, "nested": {"a": [1, 2.5, null]}}),
        ),
        unverified(&app, "u4", NOW + 1, claimed(Some("n"), None, None, None)),
        with_custom(
            verified(
                &app,
                "u4",
                NOW + 2,
                key,
                Claimed::default(),
                Claimed::default(),
            ),
            json!({"team": "blue"}),
        ),
        verified(
            &app,
            "u4",
            NOW + 3,
            key,
            Claimed::default(),
            Claimed::default(),
        ),
    ];
    let u = store_each(&store, &writes[..2]).await;
    assert_eq!(
        u.custom,
        json!({"team": "red", "seats": 3, "nested": {"a": [1, 2.5, null]}})
    );
    let u = store_from(&store, &writes, 2).await;
    assert_eq!(Some(&u), merge_all(None, &writes).as_ref());
    assert_eq!(u.custom, json!({"team": "blue"}));
    // A user that never sent custom traits reads back an empty object.
    store_each(&store, &[unverified(&app, "u5", NOW, Claimed::default())]).await;
    assert_eq!(
        store.get_user(&app, "u5").await.unwrap().unwrap().custom,
        json!({})
    );
}

async fn many_writes_for_one_user_in_one_batch_equal_the_calls_one_by_one(env: &Env) {
    let store = env.store().await;
    let (app, key) = workspace(&store).await;
    // Several users, each written many times with verified and unverified calls interleaved:
    // sent together they land in one commit batch with duplicates.
    let mut writes = Vec::new();
    for i in 0..60i64 {
        let user = format!("batch-{}", i % 4);
        let n = format!("name-{i}");
        let w = match i % 5 {
            0 | 3 => verified(
                &app,
                &user,
                NOW + i,
                key,
                claimed(
                    None,
                    Some(&format!("v{i}@example.com")),
                    None,
                    Some(i as f64),
                ),
                claimed(
                    Some(&n),
                    Some(&format!("v{i}@example.com")),
                    None,
                    Some(i as f64),
                ),
            ),
            1 => with_custom(
                unverified(
                    &app,
                    &user,
                    NOW + i,
                    claimed(Some(&n), None, Some("free"), None),
                ),
                json!({"i": i}),
            ),
            2 => unverified(&app, &user, NOW + i, Claimed::default()),
            _ => unverified(
                &app,
                &user,
                NOW + i,
                claimed(None, Some(&format!("u{i}@example.com")), None, None),
            ),
        };
        writes.push(w);
    }
    let results = join_in_order(
        writes
            .iter()
            .map(|w| Box::pin(store.identify(w.clone())) as Pin<Box<dyn Future<Output = _> + Send>>)
            .collect(),
    )
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for u in 0..4 {
        let user = format!("batch-{u}");
        let mine: Vec<&IdentifyWrite> = writes.iter().filter(|w| w.user_id == user).collect();
        let stored = store.get_user(&app, &user).await.unwrap();
        assert_eq!(stored, merge_all(None, mine.iter().copied()), "{user}");
    }
}

/// PostgreSQL only: the embedded store has one writer per data dir by design (a second server
/// on the same SQLite file gets SQLITE_BUSY on its identify batches).
#[tokio::test]
async fn postgres_two_instances_writing_the_same_users_at_once_store_every_call() {
    if let Some(env) = Env::postgres().await {
        two_instances_writing_the_same_users_at_once_store_every_call(&env).await;
    }
}

/// Two instances (two handles, each with its own batches) write the same users at once: every
/// call is acknowledged (conflicts between their transactions are retried, not reported), and a
/// user that any verified call reached ends verified with trusted values from a verified call.
async fn two_instances_writing_the_same_users_at_once_store_every_call(env: &Env) {
    let (a, _) = env.open().await;
    let (b, _) = env.open().await;
    let (app, key) = workspace(&a).await;
    let write = |i: i64| {
        let user = format!("shared-{}", i % 5);
        if i % 2 == 0 {
            let t = claimed(None, Some(&format!("v{i}@example.com")), Some("pro"), None);
            verified(&app, &user, NOW + i, key, t.clone(), t)
        } else {
            unverified(
                &app,
                &user,
                NOW + i,
                claimed(Some("x"), Some("evil@example.com"), Some("free"), None),
            )
        }
    };
    let mut calls: Vec<Call> = Vec::new();
    for i in 0..200i64 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let w = write(i);
        calls.push(Box::pin(async move { store.identify(w).await }));
    }
    // Both handles' batches run at the same time: spawn each half as its own task.
    let (evens, odds): (Vec<_>, Vec<_>) =
        calls.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let run = |half: Vec<(usize, Call)>| {
        tokio::spawn(async move { join_in_order(half.into_iter().map(|(_, f)| f).collect()).await })
    };
    let (ra, rb) = tokio::join!(run(evens), run(odds));
    let results: Vec<_> = ra.unwrap().into_iter().chain(rb.unwrap()).collect();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for u in 0..5 {
        let stored = a
            .get_user(&app, &format!("shared-{u}"))
            .await
            .unwrap()
            .unwrap();
        assert!(stored.verified, "{stored:?}");
        assert_eq!(stored.plan.as_deref(), Some("pro"));
        assert!(
            stored.email.as_deref().is_some_and(|e| e.starts_with('v')),
            "{stored:?}"
        );
    }
}

async fn verified_calls_record_when_their_key_was_last_used(env: &Env) {
    let (store, registry) = env.open().await;
    let (app, key) = workspace(&store).await;
    assert_eq!(
        registry.get(&app).unwrap().key(key).unwrap().last_used_at,
        None
    );
    store
        .identify(unverified(&app, "k1", NOW + 5, Claimed::default()))
        .await
        .unwrap();
    store
        .identify(verified(
            &app,
            "k1",
            NOW + 7,
            key,
            Claimed::default(),
            Claimed::default(),
        ))
        .await
        .unwrap();
    store.reload().await.unwrap();
    assert_eq!(
        registry.get(&app).unwrap().key(key).unwrap().last_used_at,
        Some(NOW + 7)
    );
    // An older time never moves it back.
    store
        .identify(verified(
            &app,
            "k2",
            NOW + 6,
            key,
            Claimed::default(),
            Claimed::default(),
        ))
        .await
        .unwrap();
    store.reload().await.unwrap();
    assert_eq!(
        registry.get(&app).unwrap().key(key).unwrap().last_used_at,
        Some(NOW + 7)
    );
}

// ---------------------------------------------------------------------------------------------
// Key rules

async fn a_roll_keeps_the_old_key_verifying_until_its_grace_ends(env: &Env) {
    let (store, registry) = env.open().await;
    let (app, k1) = workspace(&store).await;
    let old_secret = registry.get(&app).unwrap().key(k1).unwrap().secret.clone();
    let rolled = store.roll_key(&app, None, 100, "test", NOW).await.unwrap();
    assert_eq!(rolled.old_key_expires_at, Some(NOW + 100));
    assert_ne!(rolled.secret.expose_secret(), old_secret.expose_secret());
    // This handle's registry has the change at once.
    let ws = registry.get(&app).unwrap();
    let (secrets, ids) = ws.live_secrets(NOW + 99);
    assert_eq!(ids, vec![rolled.key_id, k1]);
    assert_eq!(
        exposed(&secrets),
        vec![rolled.secret.expose_secret(), old_secret.expose_secret()]
    );
    let (secrets, ids) = ws.live_secrets(NOW + 100);
    assert_eq!(ids, vec![rolled.key_id]);
    assert_eq!(exposed(&secrets), vec![rolled.secret.expose_secret()]);
    assert_eq!(ws.key(rolled.key_id).unwrap().label, "default");
    // Grace 0: the rolled key stops now (and is purged).
    let again = store
        .roll_key(&app, Some(rolled.key_id), 0, "test", NOW + 1)
        .await
        .unwrap();
    assert_eq!(again.old_key_expires_at, Some(NOW + 1));
    let (_, ids) = again.workspace.live_secrets(NOW + 1);
    assert_eq!(ids, vec![again.key_id, k1]);
}

async fn a_second_roll_never_cuts_another_keys_grace(env: &Env) {
    let store = env.store().await;
    let (app, k1) = workspace(&store).await;
    let r1 = store.roll_key(&app, None, 1000, "test", NOW).await.unwrap();
    let r2 = store
        .roll_key(&app, None, 10, "test", NOW + 1)
        .await
        .unwrap();
    assert_eq!(
        expiries(&r2.workspace),
        vec![
            (r2.key_id, None),
            (r1.key_id, Some(NOW + 11)),
            (k1, Some(NOW + 1000))
        ]
    );
    // Rolling a key already in grace never extends it.
    let r3 = store
        .roll_key(&app, Some(k1), 5000, "test", NOW + 2)
        .await
        .unwrap();
    assert_eq!(r3.old_key_expires_at, Some(NOW + 1000));
    let ws = store
        .workspaces()
        .await
        .unwrap()
        .into_iter()
        .find(|w| w.app_id == app)
        .unwrap();
    assert_eq!(
        expiries(&ws),
        vec![
            (r3.key_id, None),
            (r2.key_id, None),
            (r1.key_id, Some(NOW + 11)),
            (k1, Some(NOW + 1000))
        ]
    );
    // A roll after a grace ended purges the expired key.
    let r4 = store
        .roll_key(&app, Some(r3.key_id), 0, "test", NOW + 20)
        .await
        .unwrap();
    let ids: Vec<i64> = r4.workspace.keys.iter().map(|k| k.id).collect();
    assert_eq!(ids, vec![r4.key_id, r2.key_id, k1]);
}

async fn retire_and_retire_old(env: &Env) {
    let (store, registry) = env.open().await;
    let (app, k1) = workspace(&store).await;
    let k2 = store
        .create_key(&app, "ci", None, "test", NOW)
        .await
        .unwrap()
        .key_id;
    let k3 = store
        .create_key(&app, "web", Some(NOW + 500), "test", NOW)
        .await
        .unwrap()
        .key_id;
    let ws = store.retire_key(&app, k2, "test", NOW + 1).await.unwrap();
    assert_eq!(
        ws.keys.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![k3, k1]
    );
    assert!(
        registry.get(&app).unwrap().key(k2).is_none(),
        "registry updated at once"
    );
    assert_eq!(
        key_rule(
            store
                .retire_key(&app, k2, "test", NOW + 1)
                .await
                .unwrap_err()
        ),
        KeyRuleError::NoSuchKey
    );
    let k4 = store
        .roll_key(&app, Some(k1), 3600, "test", NOW + 2)
        .await
        .unwrap()
        .key_id;
    let ws = store.retire_old_keys(&app, "test", NOW + 3).await.unwrap();
    assert_eq!(expiries(&ws), vec![(k4, None)]);
    let (_, ids) = registry.get(&app).unwrap().live_secrets(NOW + 3);
    assert_eq!(ids, vec![k4]);
    // Nothing older left: a no-op.
    let ws = store.retire_old_keys(&app, "test", NOW + 4).await.unwrap();
    assert_eq!(expiries(&ws), vec![(k4, None)]);
}

async fn the_last_live_key_cannot_be_retired(env: &Env) {
    let store = env.store().await;
    let (app, k1) = workspace(&store).await;
    assert_eq!(
        key_rule(store.retire_key(&app, k1, "test", NOW).await.unwrap_err()),
        KeyRuleError::LastLiveKey
    );
    // A key in its grace period does not count as a replacement once its grace is over.
    let r = store.roll_key(&app, None, 10, "test", NOW).await.unwrap();
    assert_eq!(
        key_rule(
            store
                .retire_key(&app, r.key_id, "test", NOW + 10)
                .await
                .unwrap_err()
        ),
        KeyRuleError::LastLiveKey
    );
    // Within the grace period either may go, but not both.
    let ws = store.retire_key(&app, k1, "test", NOW + 1).await.unwrap();
    assert_eq!(expiries(&ws), vec![(r.key_id, None)]);
    assert_eq!(
        key_rule(
            store
                .retire_key(&app, r.key_id, "test", NOW + 2)
                .await
                .unwrap_err()
        ),
        KeyRuleError::LastLiveKey
    );
}

async fn at_most_ten_live_keys(env: &Env) {
    let store = env.store().await;
    let (app, _) = workspace(&store).await;
    let mut last = 0;
    for i in 1..MAX_LIVE_KEYS {
        last = store
            .create_key(&app, &format!("k{i}"), None, "test", NOW)
            .await
            .unwrap()
            .key_id;
    }
    assert_eq!(
        key_rule(
            store
                .create_key(&app, "one-too-many", None, "test", NOW)
                .await
                .unwrap_err()
        ),
        KeyRuleError::TooManyKeys
    );
    // A roll with grace would need an eleventh live key; without grace it replaces one.
    assert_eq!(
        key_rule(
            store
                .roll_key(&app, None, 60, "test", NOW)
                .await
                .unwrap_err()
        ),
        KeyRuleError::TooManyKeys
    );
    let r = store
        .roll_key(&app, Some(last), 0, "test", NOW)
        .await
        .unwrap();
    assert_eq!(r.workspace.live_keys(NOW).count(), MAX_LIVE_KEYS);
    // A key whose expiry passed frees its place.
    store.retire_key(&app, r.key_id, "test", NOW).await.unwrap();
    store
        .create_key(&app, "short", Some(NOW + 5), "test", NOW)
        .await
        .unwrap();
    let k = store
        .create_key(&app, "after", None, "test", NOW + 5)
        .await
        .unwrap();
    assert_eq!(k.workspace.live_keys(NOW + 5).count(), MAX_LIVE_KEYS);
}

async fn key_rules_refuse_bad_input(env: &Env) {
    let store = env.store().await;
    let (app, _) = workspace(&store).await;
    for label in ["", "   ", "tab\there", &"x".repeat(65)] {
        assert_eq!(
            key_rule(
                store
                    .create_key(&app, label, None, "test", NOW)
                    .await
                    .unwrap_err()
            ),
            KeyRuleError::BadLabel,
            "{label:?}"
        );
    }
    assert_eq!(
        key_rule(
            store
                .create_key(&app, "ok", Some(NOW), "test", NOW)
                .await
                .unwrap_err()
        ),
        KeyRuleError::BadExpiry
    );
    assert_eq!(
        key_rule(
            store
                .roll_key(&app, Some(999_999), 10, "test", NOW)
                .await
                .unwrap_err()
        ),
        KeyRuleError::NoSuchKey
    );
    for e in [
        store
            .create_key("app_nope", "ok", None, "test", NOW)
            .await
            .unwrap_err(),
        store
            .roll_key("app_nope", None, 10, "test", NOW)
            .await
            .unwrap_err(),
        store
            .retire_key("app_nope", 1, "test", NOW)
            .await
            .unwrap_err(),
        store
            .retire_old_keys("app_nope", "test", NOW)
            .await
            .unwrap_err(),
        store
            .update_workspace("app_nope", &WorkspacePatch::default(), "test", NOW)
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(e, StoreError::WorkspaceNotFound), "{e:?}");
    }
    // Refused changes leave no audit entry behind.
    let actions: Vec<String> = store
        .audit_log(&app, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(actions, vec!["workspace.create"]);
}

async fn concurrent_rolls_from_two_handles_run_one_after_the_other(env: &Env) {
    let (a, _) = env.open().await;
    let (b, _) = env.open().await;
    let (app, k1) = workspace(&a).await;
    let mut kept = vec![k1];
    for round in 0..3i64 {
        let now = NOW + round;
        let (ra, rb) = tokio::join!(
            a.roll_key(&app, None, 3600, "a", now),
            b.roll_key(&app, None, 3600, "b", now)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        // Serialised: the second roll saw the first one's new key as the newest and rolled it,
        // so every earlier key is kept, both new keys exist, and exactly one has no expiry.
        let ws = a
            .workspaces()
            .await
            .unwrap()
            .into_iter()
            .find(|w| w.app_id == app)
            .unwrap();
        let (first, second) = if ra.key_id < rb.key_id {
            (ra, rb)
        } else {
            (rb, ra)
        };
        kept.push(first.key_id);
        kept.push(second.key_id);
        let mut ids: Vec<i64> = ws.keys.iter().map(|k| k.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, kept, "round {round}");
        let open: Vec<i64> = ws
            .keys
            .iter()
            .filter(|k| k.expires_at.is_none())
            .map(|k| k.id)
            .collect();
        assert_eq!(open, vec![second.key_id], "round {round}");
        assert_eq!(ws.key(first.key_id).unwrap().expires_at, Some(now + 3600));
        assert_eq!(first.old_key_expires_at, Some(now + 3600));
        assert_eq!(second.old_key_expires_at, Some(now + 3600));
    }
    let rolls = a
        .audit_log(&app, 100)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == "key.roll")
        .count();
    assert_eq!(rolls, 6);
}

async fn strict_modes_and_origins_change_through_update_workspace(env: &Env) {
    let (store, registry) = env.open().await;
    let (app, _) = workspace(&store).await;
    for mode in [StrictMode::ReportOnly, StrictMode::Enforce, StrictMode::Off] {
        let ws = store
            .update_workspace(
                &app,
                &WorkspacePatch {
                    strict: Some(mode),
                    ..Default::default()
                },
                "test",
                NOW,
            )
            .await
            .unwrap();
        assert_eq!(ws.strict, mode);
        assert_eq!(registry.get(&app).unwrap().strict, mode);
    }
    let patch = WorkspacePatch {
        name: Some("renamed".into()),
        strict: Some(StrictMode::Enforce),
        require_signed_claims: Some(true),
        allowed_origins: Some(vec![
            "https://app.example.com".into(),
            "http://localhost:*".into(),
        ]),
    };
    let ws = store
        .update_workspace(&app, &patch, "admin", NOW + 1)
        .await
        .unwrap();
    let seen = registry.get(&app).unwrap();
    for w in [&ws, &*seen] {
        assert_eq!(
            (w.name.as_str(), w.strict, w.require_signed_claims),
            ("renamed", StrictMode::Enforce, true)
        );
        assert!(w.allows_origin("https://app.example.com"));
        assert!(w.allows_origin("http://localhost:3000"));
        assert!(!w.allows_origin("http://127.0.0.1:3000"));
    }
    let last = &store.audit_log(&app, 1).await.unwrap()[0];
    assert_eq!(
        (last.action.as_str(), last.actor.as_str(), last.at),
        ("workspace.update", "admin", NOW + 1)
    );
    assert_eq!(
        last.detail,
        json!({"name": "renamed", "strict": "on", "require_signed_claims": true,
               "allowed_origins": ["https://app.example.com", "http://localhost:*"]})
    );
    // An empty patch changes nothing and audits nothing.
    store
        .update_workspace(&app, &WorkspacePatch::default(), "test", NOW + 2)
        .await
        .unwrap();
    assert_eq!(store.audit_log(&app, 100).await.unwrap().len(), 5);
}

async fn user_listing_pages_filters_and_searches(env: &Env) {
    let store = env.store().await;
    let (app, key) = workspace(&store).await;
    let (other, _) = workspace(&store).await;
    let mut ids: Vec<String> = (0..25).map(|i| format!("user-{i:02}")).collect();
    // Byte order, not a locale's: upper case before lower case before non-ASCII.
    ids.extend(["Zed", "a_b", "axb", "ABC-upper", "ümlaut", "100%"].map(String::from));
    for (i, id) in ids.iter().enumerate() {
        let w = if i % 3 == 0 {
            verified(&app, id, NOW, key, Claimed::default(), Claimed::default())
        } else {
            unverified(&app, id, NOW, Claimed::default())
        };
        store.identify(w).await.unwrap();
    }
    store
        .identify(unverified(
            &other,
            "user-00-other-app",
            NOW,
            Claimed::default(),
        ))
        .await
        .unwrap();
    let list = async |q: UserQuery| -> Vec<String> {
        store
            .list_users(&app, &q)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.user_id)
            .collect()
    };
    let mut sorted = ids.clone();
    sorted.sort();
    // Pages of 7 with the keyset cursor walk every user exactly once, in byte order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = list(UserQuery {
            after: after.clone(),
            limit: 7,
            ..Default::default()
        })
        .await;
        assert!(page.len() <= 7);
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        seen.extend(page);
    }
    assert_eq!(seen, sorted);
    assert_eq!(&sorted[..3], ["100%", "ABC-upper", "Zed"]);
    assert_eq!(sorted.last().unwrap(), "ümlaut");
    let verified_ids: Vec<String> = {
        let mut v: Vec<String> = ids.iter().step_by(3).cloned().collect();
        v.sort();
        v
    };
    assert_eq!(
        list(UserQuery {
            verified: Some(true),
            limit: 100,
            ..Default::default()
        })
        .await,
        verified_ids
    );
    let unverified_n = list(UserQuery {
        verified: Some(false),
        limit: 100,
        ..Default::default()
    })
    .await
    .len();
    assert_eq!(unverified_n, ids.len() - verified_ids.len());
    // Search: a substring, wildcards literal, ASCII case folded.
    assert_eq!(
        list(UserQuery {
            search: Some("_".into()),
            limit: 100,
            ..Default::default()
        })
        .await,
        ["a_b"]
    );
    assert_eq!(
        list(UserQuery {
            search: Some("%".into()),
            limit: 100,
            ..Default::default()
        })
        .await,
        ["100%"]
    );
    assert_eq!(
        list(UserQuery {
            search: Some("abc".into()),
            limit: 100,
            ..Default::default()
        })
        .await,
        ["ABC-upper"]
    );
    assert_eq!(
        list(UserQuery {
            search: Some("-1".into()),
            verified: Some(true),
            limit: 100,
            ..Default::default()
        })
        .await,
        ["user-12", "user-15", "user-18"]
    );
    assert_eq!(
        list(UserQuery {
            search: Some("user-2".into()),
            after: Some("user-21".into()),
            limit: 2,
            ..Default::default()
        })
        .await,
        ["user-22", "user-23"]
    );
    assert!(
        list(UserQuery {
            limit: 0,
            ..Default::default()
        })
        .await
        .is_empty()
    );
}

async fn delete_user_removes_the_record_and_audits(env: &Env) {
    let store = env.store().await;
    let (app, _) = workspace(&store).await;
    store
        .identify(unverified(
            &app,
            "gone",
            NOW,
            claimed(Some("x"), None, None, None),
        ))
        .await
        .unwrap();
    assert!(
        store
            .delete_user(&app, "gone", "admin", NOW + 1)
            .await
            .unwrap()
    );
    assert_eq!(store.get_user(&app, "gone").await.unwrap(), None);
    assert!(
        !store
            .delete_user(&app, "gone", "admin", NOW + 2)
            .await
            .unwrap()
    );
    let log = store.audit_log(&app, 10).await.unwrap();
    assert_eq!(log.iter().filter(|e| e.action == "user.delete").count(), 1);
    assert_eq!(log[0].detail, json!({"user_id": "gone"}));
    // A new call starts a fresh record.
    store
        .identify(unverified(&app, "gone", NOW + 3, Claimed::default()))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_user(&app, "gone")
            .await
            .unwrap()
            .unwrap()
            .first_seen,
        NOW + 3
    );
}

async fn the_audit_log_is_newest_first_and_holds_no_secret(env: &Env) {
    let store = env.store().await;
    let k = store
        .create_workspace(
            &NewWorkspace {
                name: "audited".into(),
                strict: StrictMode::ReportOnly,
                require_signed_claims: false,
                allowed_origins: vec!["*".into()],
            },
            "cli",
            NOW,
        )
        .await
        .unwrap();
    let app = k.workspace.app_id.clone();
    let mut secrets = vec![k.secret.expose_secret().to_string()];
    let added = store
        .create_key(&app, "extra", None, "admin-api", NOW + 1)
        .await
        .unwrap();
    secrets.push(added.secret.expose_secret().to_string());
    let rolled = store
        .roll_key(&app, Some(added.key_id), 60, "admin-api", NOW + 2)
        .await
        .unwrap();
    secrets.push(rolled.secret.expose_secret().to_string());
    store
        .retire_key(&app, added.key_id, "cli", NOW + 3)
        .await
        .unwrap();
    store.retire_old_keys(&app, "cli", NOW + 4).await.unwrap();
    let log = store.audit_log(&app, 100).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "key.retire_old",
            "key.retire",
            "key.roll",
            "key.create",
            "workspace.create"
        ]
    );
    let ats: Vec<i64> = log.iter().map(|e| e.at).collect();
    assert_eq!(ats, [NOW + 4, NOW + 3, NOW + 2, NOW + 1, NOW]);
    assert_eq!(log[4].actor, "cli");
    assert_eq!(
        log[4].detail,
        json!({"name": "audited", "strict": "report_only", "require_signed_claims": false,
               "allowed_origins": ["*"], "key_id": k.key_id})
    );
    assert_eq!(
        log[2].detail,
        json!({"key_id": added.key_id, "new_key_id": rolled.key_id, "label": "extra",
               "old_key_expires_at": NOW + 62, "grace_seconds": 60})
    );
    let text = serde_json::to_string(&log).unwrap();
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a secret is in the audit log");
    }
    assert_eq!(store.audit_log(&app, 2).await.unwrap().len(), 2);
}

async fn meta_values_round_trip(env: &Env) {
    let store = env.store().await;
    assert_eq!(store.meta_get("admin_token_sha256").await.unwrap(), None);
    store.meta_set("admin_token_sha256", "abc").await.unwrap();
    store.meta_set("admin_token_sha256", "def").await.unwrap();
    assert_eq!(
        store
            .meta_get("admin_token_sha256")
            .await
            .unwrap()
            .as_deref(),
        Some("def")
    );
    store.ping().await.unwrap();
}

async fn a_newer_schema_is_refused(env: &Env) {
    // Created and migrated by this build first; then a newer server "migrates" it further.
    let store = env.store().await;
    workspace(&store).await;
    drop(store);
    let newer = env.known_schema() as i64 + 1;
    env.set_schema_version(newer).await;
    let hooks = Hooks::new(ring());
    match Store::open(&env.backend(), hooks).await {
        Err(StoreError::UnknownSchema { found, known }) => {
            assert_eq!((found, known), (newer, env.known_schema()));
        }
        Err(e) => panic!("expected UnknownSchema, got {e}"),
        Ok(_) => panic!("a database from a newer server was opened"),
    }
}

async fn a_change_through_one_handle_reaches_another_within_a_second(env: &Env) {
    let (a, _) = env.open().await;
    let (app, k1) = workspace(&a).await;
    let (_b, seen_by_b) = env.open().await;
    assert_eq!(seen_by_b.get(&app).unwrap().strict, StrictMode::Off);
    let within = |what: &'static str, ok: Box<dyn Fn() -> bool + Send>| async move {
        let start = Instant::now();
        while !ok() {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "{what} took over a second to reach the other handle"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        start.elapsed()
    };
    a.update_workspace(
        &app,
        &WorkspacePatch {
            strict: Some(StrictMode::Enforce),
            ..Default::default()
        },
        "test",
        NOW,
    )
    .await
    .unwrap();
    let r = Arc::clone(&seen_by_b);
    let app2 = app.clone();
    let t1 = within(
        "a strict toggle",
        Box::new(move || r.get(&app2).unwrap().strict == StrictMode::Enforce),
    )
    .await;
    let rolled = a.roll_key(&app, None, 30, "test", NOW).await.unwrap();
    let r = Arc::clone(&seen_by_b);
    let app2 = app.clone();
    let new_id = rolled.key_id;
    let t2 = within(
        "a rotation",
        Box::new(move || r.get(&app2).unwrap().live_secrets(NOW).1 == vec![new_id, k1]),
    )
    .await;
    a.retire_key(&app, k1, "test", NOW + 1).await.unwrap();
    let r = Arc::clone(&seen_by_b);
    let app2 = app.clone();
    let t3 = within(
        "a retirement",
        Box::new(move || r.get(&app2).unwrap().key(k1).is_none()),
    )
    .await;
    let created = a
        .create_workspace(
            &NewWorkspace {
                name: "second".into(),
                strict: StrictMode::Off,
                require_signed_claims: false,
                allowed_origins: vec![],
            },
            "test",
            NOW,
        )
        .await
        .unwrap();
    let r = Arc::clone(&seen_by_b);
    let app2 = created.workspace.app_id.clone();
    let t4 = within("a new workspace", Box::new(move || r.get(&app2).is_some())).await;
    eprintln!("reached the other handle after {t1:?}, {t2:?}, {t3:?}, {t4:?}");
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only

/// PostgreSQL cannot store a NUL character in text; such a call fails alone (503 for that
/// caller) and the rest of its batch is stored.
#[tokio::test]
async fn postgres_one_bad_record_does_not_fail_its_batch() {
    let Some(env) = Env::postgres().await else {
        return;
    };
    let store = env.store().await;
    let (app, _) = workspace(&store).await;
    let writes = [
        unverified(&app, "good-1", NOW, claimed(Some("ok"), None, None, None)),
        unverified(
            &app,
            "bad",
            NOW,
            claimed(Some("nul\0here"), None, None, None),
        ),
        unverified(&app, "good-2", NOW, Claimed::default()),
    ];
    let results: Vec<Result<(), StoreError>> = join_in_order(
        writes
            .iter()
            .map(|w| Box::pin(store.identify(w.clone())) as Pin<Box<dyn Future<Output = _> + Send>>)
            .collect(),
    )
    .await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(results[1].is_err());
    assert!(store.get_user(&app, "good-1").await.unwrap().is_some());
    assert!(store.get_user(&app, "good-2").await.unwrap().is_some());
    assert!(store.get_user(&app, "bad").await.unwrap().is_none());
}

/// A database that is gone answers with errors (503 upstream) within the timeouts, never a
/// false success and never a hang; once it is back, the same handle works again.
#[tokio::test]
async fn postgres_a_stopped_database_gives_errors_quickly_then_recovers() {
    let Some(env) = Env::postgres().await else {
        return;
    };
    let Env::Postgres(db) = &env else {
        unreachable!()
    };
    let (store, registry) = env.open().await;
    let (app, _) = workspace(&store).await;
    // Refuse new connections to this database and cut the existing ones.
    let admin = tokio_postgres::connect(&pg_support::server_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(admin.1);
    let admin = admin.0;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false",
            db.name
        ))
        .await
        .unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&db.name],
        )
        .await
        .unwrap();
    let start = Instant::now();
    let r = store
        .identify(unverified(&app, "during-outage", NOW, Claimed::default()))
        .await;
    assert!(r.is_err(), "a write during the outage was acknowledged");
    assert!(store.ping().await.is_err());
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "errors took {:?}",
        start.elapsed()
    );
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true",
            db.name
        ))
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        if store
            .identify(unverified(&app, "after-outage", NOW, Claimed::default()))
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the store did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.ping().await.unwrap();
    assert!(
        store
            .get_user(&app, "after-outage")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_user(&app, "during-outage")
            .await
            .unwrap()
            .is_none()
    );
    // Its listener reconnected: a change made elsewhere reaches its registry again.
    let (other, _) = env.open().await;
    let patch = WorkspacePatch {
        strict: Some(StrictMode::Enforce),
        ..Default::default()
    };
    other
        .update_workspace(&app, &patch, "test", NOW)
        .await
        .unwrap();
    let start = Instant::now();
    while registry.get(&app).unwrap().strict != StrictMode::Enforce {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "a change after the outage did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Instances starting together on an empty database migrate it once (the advisory lock).
#[tokio::test]
async fn postgres_instances_starting_together_migrate_once() {
    let Some(env) = Env::postgres().await else {
        return;
    };
    let opened = join_in_order(
        (0..4)
            .map(|_| Box::pin(env.open()) as Pin<Box<dyn Future<Output = _> + Send>>)
            .collect(),
    )
    .await;
    assert_eq!(opened.len(), 4);
    let Env::Postgres(db) = &env else {
        unreachable!()
    };
    let rows = db
        .client()
        .await
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    let expected: Vec<i32> =
        (1..=dropfix_server::store::postgres::schema_version_known() as i32).collect();
    assert_eq!(versions, expected);
}
