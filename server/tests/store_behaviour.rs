//! One behaviour suite for both storage backends: every stored-data rule and key rule is written
//! once, as an async function over an [`Env`] (a place to open [`Store`] handles), and run
//! against the embedded SQLite store (a temporary owner-only data dir) and against a real
//! PostgreSQL (a database of its own per test). Stored users are also compared field by field
//! with `users::merge_all`, the rules as one pure function, so both backends' upsert statements
//! give the record the pure rules give for the same calls.
//!
//! PostgreSQL comes from `DROPFIX_TEST_DATABASE_URL` (see `support::pg`); when none answers the
//! PostgreSQL half fails with instructions rather than passing.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use dropfix_core::StrictMode;
use dropfix_server::sealing::{Keyring, MasterKey};
use dropfix_server::store::postgres::PgOptions;
use dropfix_server::store::{
    AccountChange, Backend, CallCounts, CountsDelta, Hooks, INVITE_TTL_SECS, MAX_PENDING_INVITES,
    MAX_RECENT_REJECTIONS, Membership, RejectionEntry, Role, SessionRules, Store, StoreError,
    TeamRefusal,
};
use dropfix_server::users::{
    Claimed, IdentifyWrite, SEEN_RESOLUTION, UserQuery, UserRecord, Verification, merge_all,
};
use dropfix_server::workspace::{
    self, KeyRuleError, MAX_LIVE_KEYS, NewKey, Registry, Workspace, WorkspacePatch,
};
use serde_json::{Map, Value as Json, json};
use support::new_workspace;
use support::pg::TestDb;

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
        Env::Sqlite(support::data_dir())
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
                ..PgOptions::new(db.store_url.clone())
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

    /// The database of a PostgreSQL-only test.
    fn db(&self) -> &TestDb {
        match self {
            Env::Postgres(db) => db,
            Env::Sqlite(_) => unreachable!("only the PostgreSQL tests ask for a database"),
        }
    }

    fn known_schema(&self) -> usize {
        match self {
            Env::Sqlite(_) => dropfix_server::store::sqlite::schema_version_known(),
            Env::Postgres(_) => dropfix_server::store::postgres::schema_version_known(),
        }
    }
}

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
    repeat_calls_are_recorded_to_the_minute,
    verification_does_not_promote_earlier_claims,
    unverified_calls_for_an_unverified_user_overlay_their_claims,
    custom_traits_are_replaced_only_by_a_call_that_sends_some,
    an_unverified_call_never_replaces_a_verified_users_custom_traits,
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
    instances_starting_together_on_a_new_store_agree_on_one_workspace_and_token,
    a_newer_schema_is_refused,
    a_change_through_one_handle_reaches_another_promptly,
    // Sealing at rest
    no_secret_is_stored_in_the_clear,
    secrets_stored_in_the_clear_are_sealed_when_the_store_opens,
    a_secret_moved_between_key_rows_or_written_in_the_clear_is_refused,
    after_a_rewrap_the_old_master_key_can_be_dropped,
    an_instance_that_cannot_unseal_changed_workspaces_marks_them_stale,
    // Console storage
    call_counts_add_up_across_handles,
    recent_rejections_keep_the_newest_hundred_per_workspace,
    sessions_resume_until_idle_or_absolute_expiry_and_end_at_logout,
    accounts_are_found_by_email_case_insensitively,
    members_have_one_role_per_workspace,
    console_access_can_be_taken_away,
    team_invitations_are_one_time_and_expire,
    the_last_owner_is_never_demoted_or_removed_even_at_once,
    both_backends_store_the_same_hostile_values_and_refuse_nul_alike,
    // Token issuers
    token_issuers_are_stored_checked_and_reach_other_handles,
    a_workspace_with_only_a_public_key_holds_no_secret,
);

// ---------------------------------------------------------------------------------------------
// Helpers

/// Values an anonymous caller can send (the core lets them through), stored byte for byte by both
/// backends; and NUL, which PostgreSQL cannot store, refused by both before either sees it.
async fn both_backends_store_the_same_hostile_values_and_refuse_nul_alike(env: &Env) {
    let store = env.store().await;
    let (app, _) = workspace(&store).await;
    let hostile = [
        "'; DROP TABLE users; --",
        "\\ \" \\u0000 %s %n {{}} $1 ?1",
        "tab\tnew\nline\r\n",
        "\u{2028}\u{2029}\u{feff}\u{202e}rtl\u{200b}",
        "😀🏳️‍🌈 日本語 \u{10ffff}",
        "\u{7f}\u{80}\u{9f}",
        &"𝔘".repeat(128),
    ];
    for (i, v) in hostile.iter().enumerate() {
        let user = format!("{v}-{i}");
        let mut w = unverified(&app, &user, NOW, claimed(Some(v), Some(v), Some(v), None));
        w.custom = json!({ *v: v, "k": [v] }).as_object().unwrap().clone();
        store
            .identify(w.clone())
            .await
            .unwrap_or_else(|e| panic!("{v:?}: {e}"));
        let stored = store.get_user(&app, &user).await.unwrap().unwrap();
        assert_eq!(Some(&stored), merge_all(None, &[w]).as_ref(), "{v:?}");
    }
    let nul_writes = [
        ("user_id", unverified(&app, "a\0b", NOW, Claimed::default())),
        (
            "traits.email",
            unverified(
                &app,
                "nul-email",
                NOW,
                claimed(None, Some("a\0@x"), None, None),
            ),
        ),
        (
            "traits.team",
            with_custom(
                unverified(&app, "nul-custom", NOW, Claimed::default()),
                json!({"team": "a\0"}),
            ),
        ),
        (
            "traits.a\\0b",
            with_custom(
                unverified(&app, "nul-key", NOW, Claimed::default()),
                json!({"a\0b": 1}),
            ),
        ),
    ];
    for (field, w) in nul_writes {
        let user = w.user_id.clone();
        match store.identify(w).await {
            Err(StoreError::InvalidValue(f)) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
        assert!(
            store.get_user(&app, &user).await.unwrap().is_none(),
            "{field}"
        );
    }
}

/// A new workspace (not strict, local origins): its app id and key id.
async fn workspace(store: &Store) -> (String, i64) {
    let settings = new_workspace("behaviour", StrictMode::Off, &workspace::DEV_ORIGINS);
    let k = store
        .create_workspace(&settings, "test", NOW)
        .await
        .unwrap();
    (k.workspace.app_id, k.key_id)
}

/// A new workspace called `name`, with no allowed origins.
async fn named_workspace(store: &Store, name: &str) -> NewKey {
    let settings = new_workspace(name, StrictMode::Off, &[]);
    store
        .create_workspace(&settings, "test", NOW)
        .await
        .unwrap()
}

/// A new workspace called `name` and a second key added to it: both keys as made.
async fn workspace_with_two_keys(store: &Store, name: &str) -> (NewKey, NewKey) {
    let k = named_workspace(store, name).await;
    let added = store
        .create_key(&k.workspace.app_id, "second", None, "test", NOW)
        .await
        .unwrap();
    (k, added)
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
        claimed_custom: Map::new(),
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
        claimed_custom: Map::new(),
    }
}

/// A verified call that vouches for no trait.
fn signed_only(app: &str, user: &str, now: i64, key_id: i64) -> IdentifyWrite {
    verified(
        app,
        user,
        now,
        key_id,
        Claimed::default(),
        Claimed::default(),
    )
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

/// `app`'s workspace as the store reads it (not as a registry holds it).
async fn stored_workspace(store: &Store, app: &str) -> Workspace {
    store
        .workspaces()
        .await
        .unwrap()
        .into_iter()
        .find(|w| w.app_id == app)
        .unwrap()
}

/// Turns strict mode on for `app` through `store`.
async fn enforce_strict(store: &Store, app: &str) {
    let patch = WorkspacePatch {
        strict: Some(StrictMode::Enforce),
        ..Default::default()
    };
    store
        .update_workspace(app, &patch, "test", NOW)
        .await
        .unwrap();
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
    // The last call changed nothing and came within SEEN_RESOLUTION of the one before.
    assert_eq!((u.first_seen, u.last_seen), (NOW, NOW + 10));
    // A whole MRR reads back as an integer on both backends.
    assert_eq!(serde_json::to_value(&u).unwrap()["mrr"].to_string(), "5000");
}

async fn repeat_calls_are_recorded_to_the_minute(env: &Env) {
    let store = env.store().await;
    let (app, key) = workspace(&store).await;
    let pro = claimed(Some("Ada"), None, Some("pro"), Some(49.0));
    let call =
        |user: &str, now: i64, c: &Claimed| verified(&app, user, now, key, c.clone(), c.clone());
    let r = SEEN_RESOLUTION;
    // The same call again within the resolution leaves the record as it was, times included
    // (`verified` signs 5 s before `now`).
    let mut writes = vec![call("u1", NOW, &pro), call("u1", NOW + r - 1, &pro)];
    let u = store_each(&store, &writes).await;
    assert_eq!(
        (u.last_seen, u.verified_at, u.signed_at),
        (NOW, Some(NOW), Some(NOW - 5))
    );
    // At the resolution it is written: every time moves.
    writes.push(call("u1", NOW + r, &pro));
    let u = store_from(&store, &writes, 2).await;
    assert_eq!(
        (u.last_seen, u.verified_at, u.signed_at),
        (NOW + r, Some(NOW + r), Some(NOW + r - 5))
    );
    // Within it, any other change is written at once, with the times.
    let team = claimed(Some("Ada"), None, Some("team"), Some(49.0));
    writes.push(call("u1", NOW + r + 1, &team));
    let u = store_from(&store, &writes, 3).await;
    assert_eq!(
        (u.plan.as_deref(), u.last_seen),
        (Some("team"), NOW + r + 1)
    );
    // A signature much older than the stored one moves `signed_at` alone: written.
    let mut old_signature = call("u1", NOW + r + 2, &team);
    old_signature.verification.as_mut().unwrap().signed_at = NOW - 10;
    writes.push(old_signature);
    let u = store_from(&store, &writes, 4).await;
    assert_eq!((u.signed_at, u.last_seen), (Some(NOW - 10), NOW + r + 2));
    // Unverified users and calls follow the same rule; a promotion is always written.
    let mut writes = vec![
        unverified(&app, "u2", NOW, pro.clone()),
        unverified(&app, "u2", NOW + 1, pro.clone()),
    ];
    let u = store_each(&store, &writes).await;
    assert_eq!((u.verified, u.last_seen), (false, NOW));
    writes.push(call("u2", NOW + 2, &pro));
    let u = store_from(&store, &writes, 2).await;
    assert_eq!((u.verified, u.last_seen), (true, NOW + 2));
    // A clock that went back by less than the resolution changes nothing either.
    writes.push(call("u2", NOW - 3, &pro));
    let u = store_from(&store, &writes, 3).await;
    assert_eq!(u.last_seen, NOW + 2);
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
    let first = claimed(Some("A"), Some("a@example.com"), None, None);
    let second = claimed(None, Some("b@example.com"), Some("free"), Some(0.25));
    let writes = [
        unverified(&app, "u3", NOW, first),
        unverified(&app, "u3", NOW + 1, second),
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
            signed_only(&app, "u4", NOW + 2, key),
            json!({"team": "blue"}),
        ),
        signed_only(&app, "u4", NOW + 3, key),
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

/// Custom traits a signed-claims token vouched for (or a verified call sent) are a verified
/// user's, like its plan: an unsigned call keeps what it sends aside, custom traits included.
async fn an_unverified_call_never_replaces_a_verified_users_custom_traits(env: &Env) {
    let store = env.store().await;
    let (app, key) = workspace(&store).await;
    let signed = claimed(None, None, Some("enterprise"), None);
    let writes = [
        with_custom(
            verified(&app, "c1", NOW, key, signed.clone(), signed),
            json!({"team": 50, "tier": "gold"}),
        ),
        with_custom(
            unverified(&app, "c1", NOW + 1, claimed(None, None, Some("free"), None)),
            json!({"team": 1, "tier": "none"}),
        ),
    ];
    let u = store_each(&store, &writes).await;
    assert_eq!(Some(&u), merge_all(None, &writes).as_ref());
    assert!(u.verified);
    assert_eq!(u.plan.as_deref(), Some("enterprise"));
    assert_eq!(u.custom, json!({"team": 50, "tier": "gold"}));
    assert_eq!(
        u.unverified_claims,
        Some(json!({"plan": "free", "custom": {"team": 1, "tier": "none"}, "at": NOW + 1}))
    );
    // Custom traits alone are a claim too.
    let mut all = writes.to_vec();
    all.push(with_custom(
        unverified(&app, "c1", NOW + 2, Claimed::default()),
        json!({"tier": "free"}),
    ));
    let u = store_from(&store, &all, 2).await;
    assert_eq!(u.custom, json!({"team": 50, "tier": "gold"}));
    assert_eq!(
        u.unverified_claims,
        Some(json!({"custom": {"tier": "free"}, "at": NOW + 2}))
    );
    // The same calls in one batch end the same.
    let renamed: Vec<_> = all
        .iter()
        .cloned()
        .map(|mut w| {
            w.user_id = "c2".into();
            w
        })
        .collect();
    let calls = renamed
        .iter()
        .map(|w| {
            let (store, w) = (store.clone(), w.clone());
            Box::pin(async move { store.identify(w).await })
                as Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>
        })
        .collect();
    assert!(join_in_order(calls).await.iter().all(Result::is_ok));
    let together = store.get_user(&app, "c2").await.unwrap();
    assert_eq!(together.as_ref(), merge_all(None, &renamed).as_ref());
    // A later verified call that sends custom traits replaces them, as before.
    all.push(with_custom(
        signed_only(&app, "c1", NOW + 3, key),
        json!({"tier": "platinum"}),
    ));
    let u = store_from(&store, &all, 3).await;
    assert_eq!(u.custom, json!({"tier": "platinum"}));

    // A verification reaching a never-verified user does not promote the custom traits a
    // browser claimed before it, even when it sends none itself.
    let signed = claimed(None, None, Some("enterprise"), None);
    let promoted = [
        with_custom(
            unverified(&app, "c3", NOW, Claimed::default()),
            json!({"is_admin": true}),
        ),
        verified(&app, "c3", NOW + 1, key, signed.clone(), signed.clone()),
    ];
    let u = store_each(&store, &promoted).await;
    assert_eq!(u.custom, json!({}));
    // Custom traits a browser adds beside a token are that call's claims, in merge() and in
    // both backends alike.
    let mut beside = verified(&app, "c4", NOW, key, signed.clone(), signed);
    beside.claimed_custom = json!({"is_admin": true}).as_object().unwrap().clone();
    let u = store_each(&store, &[beside]).await;
    assert_eq!(
        u.unverified_claims.as_ref().map(|c| &c["custom"]),
        Some(&json!({"is_admin": true}))
    );
    assert_eq!(u.custom, json!({}));
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
        // The same call again, at once (stored once) or after another of the user's calls.
        if i % 3 == 0 {
            writes.push(w.clone());
        }
        if i % 7 == 0 {
            let again = w.clone();
            writes.push(w);
            writes.push(unverified(&app, &user, NOW + i, Claimed::default()));
            writes.push(again);
        } else {
            writes.push(w);
        }
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
    let last_used = || registry.get(&app).unwrap().key(key).unwrap().last_used_at;
    // A verified call for `user` at `now`, then a reload of the registry.
    let verified_call = async |user: &str, now: i64| {
        store
            .identify(signed_only(&app, user, now, key))
            .await
            .unwrap();
        store.reload().await.unwrap();
    };
    assert_eq!(last_used(), None);
    store
        .identify(unverified(&app, "k1", NOW + 5, Claimed::default()))
        .await
        .unwrap();
    verified_call("k1", NOW + 7).await;
    assert_eq!(last_used(), Some(NOW + 7));
    // An older time never moves it back.
    verified_call("k2", NOW + 6).await;
    assert_eq!(last_used(), Some(NOW + 7));
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
    let ws = stored_workspace(&store, &app).await;
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
    // Why retiring `key_id` at `now` is refused.
    let refused = async |key_id: i64, now: i64| {
        key_rule(
            store
                .retire_key(&app, key_id, "test", now)
                .await
                .unwrap_err(),
        )
    };
    assert_eq!(refused(k1, NOW).await, KeyRuleError::LastLiveKey);
    // A key in its grace period does not count as a replacement once its grace is over.
    let r = store.roll_key(&app, None, 10, "test", NOW).await.unwrap();
    assert_eq!(refused(r.key_id, NOW + 10).await, KeyRuleError::LastLiveKey);
    // Within the grace period either may go, but not both.
    let ws = store.retire_key(&app, k1, "test", NOW + 1).await.unwrap();
    assert_eq!(expiries(&ws), vec![(r.key_id, None)]);
    assert_eq!(refused(r.key_id, NOW + 2).await, KeyRuleError::LastLiveKey);
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
    for expiry in [NOW, workspace::LATEST_EXPIRY + 1, i64::MAX] {
        assert_eq!(
            key_rule(
                store
                    .create_key(&app, "ok", Some(expiry), "test", NOW)
                    .await
                    .unwrap_err()
            ),
            KeyRuleError::BadExpiry,
            "{expiry}"
        );
    }
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
    // The latest expiry allowed, and a roll's grace that would pass it, stay showable dates.
    let far = store
        .create_key(&app, "far", Some(workspace::LATEST_EXPIRY), "test", NOW)
        .await
        .unwrap();
    let rolled = store
        .roll_key(&app, Some(far.key_id), i64::MAX, "test", NOW)
        .await
        .unwrap();
    assert_eq!(rolled.old_key_expires_at, Some(workspace::LATEST_EXPIRY));
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
        let ws = stored_workspace(&a, &app).await;
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
            signed_only(&app, id, NOW, key)
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
    // At most 100 users, with this search and verified filter.
    let query = |search: Option<&str>, verified: Option<bool>| UserQuery {
        search: search.map(String::from),
        verified,
        limit: 100,
        ..Default::default()
    };
    assert_eq!(list(query(None, Some(true))).await, verified_ids);
    let unverified_n = list(query(None, Some(false))).await.len();
    assert_eq!(unverified_n, ids.len() - verified_ids.len());
    // Search: a substring, wildcards literal, ASCII case folded.
    assert_eq!(list(query(Some("_"), None)).await, ["a_b"]);
    assert_eq!(list(query(Some("%"), None)).await, ["100%"]);
    assert_eq!(list(query(Some("abc"), None)).await, ["ABC-upper"]);
    assert_eq!(
        list(query(Some("-1"), Some(true))).await,
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
    // Search also reaches names and emails (wildcards literal, ASCII case folded).
    let named = claimed(Some("Grace_Hopper"), Some("GRACE@navy.example"), None, None);
    store
        .identify(unverified(&app, "zz-named", NOW, named))
        .await
        .unwrap();
    assert_eq!(list(query(Some("hopper"), None)).await, ["zz-named"]);
    assert_eq!(list(query(Some("grace@NAVY"), None)).await, ["zz-named"]);
    assert_eq!(list(query(Some("e_h"), None)).await, ["zz-named"]);
    assert!(list(query(Some("eXh"), None)).await.is_empty());
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
    let settings = new_workspace("audited", StrictMode::ReportOnly, &["*"]);
    let k = store.create_workspace(&settings, "cli", NOW).await.unwrap();
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

/// What `serve` does on first start (create the development workspace if there is none, store an
/// admin token hash if there is none), done by four handles at once: one workspace, one hash.
async fn instances_starting_together_on_a_new_store_agree_on_one_workspace_and_token(env: &Env) {
    let mut handles = Vec::new();
    for _ in 0..4 {
        handles.push(env.store().await);
    }
    let dev = new_workspace("development", StrictMode::Off, &[]);
    let starts = handles.iter().enumerate().map(|(i, store)| {
        let dev = &dev;
        let start = async move {
            let created = store.create_first_workspace(dev, "serve", NOW).await;
            let token = store
                .meta_set_if_absent("admin_token_sha256", &format!("hash-{i}"))
                .await;
            (created.unwrap(), token.unwrap())
        };
        Box::pin(start) as Pin<Box<dyn Future<Output = (Option<NewKey>, String)> + Send + '_>>
    });
    let results = join_in_order(starts.collect()).await;
    let created: Vec<_> = results.iter().filter_map(|(k, _)| k.as_ref()).collect();
    assert_eq!(
        created.len(),
        1,
        "exactly one instance creates the workspace"
    );
    let listed = handles[0].workspaces().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].app_id, created[0].workspace.app_id);
    let token = &results[0].1;
    assert!(token.starts_with("hash-"), "{token}");
    assert!(
        results.iter().all(|(_, t)| t == token),
        "every instance keeps the stored hash"
    );
    assert_eq!(
        handles[1]
            .meta_get("admin_token_sha256")
            .await
            .unwrap()
            .as_ref(),
        Some(token)
    );
    // Once there is a workspace, nobody creates another.
    assert!(
        handles[2]
            .create_first_workspace(&dev, "serve", NOW)
            .await
            .unwrap()
            .is_none()
    );
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

/// Each kind of change reaches another handle's registry. The poll (SQLite) and the notification
/// (PostgreSQL) deliver it in about 250 ms and 10 ms here (printed below); the bound is 5 s so
/// that a machine running the whole suite in parallel cannot fail it (runs did, past 1 s and
/// once past 2 s, with the CI's cores shared), while a change that never arrives, or waits for
/// the next change, still does.
async fn a_change_through_one_handle_reaches_another_promptly(env: &Env) {
    let (a, _) = env.open().await;
    let (app, k1) = workspace(&a).await;
    let (_b, seen_by_b) = env.open().await;
    assert_eq!(seen_by_b.get(&app).unwrap().strict, StrictMode::Off);
    let within = |what: &'static str, ok: Box<dyn Fn() -> bool + Send>| async move {
        let start = Instant::now();
        while !ok() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{what} took over 5 s to reach the other handle"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        start.elapsed()
    };
    enforce_strict(&a, &app).await;
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
    let created = named_workspace(&a, "second").await;
    let r = Arc::clone(&seen_by_b);
    let app2 = created.workspace.app_id.clone();
    let t4 = within("a new workspace", Box::new(move || r.get(&app2).is_some())).await;
    eprintln!("reached the other handle after {t1:?}, {t2:?}, {t3:?}, {t4:?}");
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only

/// A TCP proxy to `upstream` that can be frozen: while frozen it holds every byte, as a hung
/// database (or a network partition without resets) would. Returns its address.
async fn freezable_proxy(
    upstream: String,
    frozen: Arc<std::sync::atomic::AtomicBool>,
) -> std::net::SocketAddr {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        frozen: Arc<std::sync::atomic::AtomicBool>,
    ) {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            while frozen.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw, Arc::clone(&frozen)));
            tokio::spawn(pipe(sr, cw, Arc::clone(&frozen)));
        }
    });
    addr
}

/// Scaling out from one box: an embedded store copied into an empty PostgreSQL serves the same
/// workspaces (app ids, key ids, secrets), users, console logins and audit log, and new rows
/// continue after the copied ids. A second import into the now full database is refused.
/// Users stored by earlier versions with a NUL character (which PostgreSQL cannot hold) stop the
/// copy with their names and nothing copied, or, with `skip_unstorable`, are skipped and counted.
#[tokio::test]
async fn postgres_migration_names_or_skips_users_postgres_refuses() {
    let Some(env) = Env::postgres().await else {
        return;
    };
    let (dir, embedded, app, _) = embedded_store().await;
    for u in ["good-1", "old-name", "old-custom", "good-2"] {
        embedded
            .identify(unverified(
                &app,
                u,
                NOW,
                claimed(Some("x"), None, None, None),
            ))
            .await
            .unwrap();
    }
    // The six characters \u0000 in plain text are no NUL: copied like any other user.
    let literal = claimed(Some(r"a\u0000b"), None, None, None);
    embedded
        .identify(unverified(&app, "literal", NOW, literal))
        .await
        .unwrap();
    drop(embedded);
    let sqlite = dropfix_server::store::sqlite::open_file(dir.path()).unwrap();
    // As an earlier version stored them: straight into the file.
    sqlite
        .execute(
            "UPDATE users SET name = 'a' || char(0) || 'b' WHERE user_id = 'old-name'",
            [],
        )
        .unwrap();
    sqlite
        .execute(
            r#"UPDATE users SET custom = '{"team":"a\u0000"}' WHERE user_id = 'old-custom'"#,
            [],
        )
        .unwrap();
    let (pg, _) = env.open().await;
    let Store::Postgres(inner) = &pg else {
        unreachable!()
    };
    let e = inner.import_embedded(&sqlite, false).await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("2 stored user(s)"), "{msg}");
    assert!(
        msg.contains(r#"user "old-name": name holds a NUL"#),
        "{msg}"
    );
    assert!(
        msg.contains(r#"user "old-custom": custom holds a NUL"#),
        "{msg}"
    );
    assert!(msg.contains("--skip-unstorable"), "{msg}");
    assert!(pg.workspaces().await.unwrap().is_empty(), "nothing copied");
    let counts = inner.import_embedded(&sqlite, true).await.unwrap();
    assert!(counts.contains(&("users", 3)), "{counts:?}");
    assert!(
        counts.contains(&("users skipped (unstorable, --skip-unstorable)", 2)),
        "{counts:?}"
    );
    pg.reload().await.unwrap();
    for (u, there) in [
        ("good-1", true),
        ("old-name", false),
        ("old-custom", false),
        ("good-2", true),
    ] {
        assert_eq!(pg.get_user(&app, u).await.unwrap().is_some(), there, "{u}");
    }
}

#[tokio::test]
async fn postgres_an_embedded_store_moves_to_postgres_whole() {
    let Some(env) = Env::postgres().await else {
        return;
    };
    let (dir, embedded, app, k1) = embedded_store().await;
    let rolled = embedded.roll_key(&app, None, 60, "cli", NOW).await.unwrap();
    // The newest key id ever given is retired (its row deleted): PostgreSQL must not give it
    // again.
    let temp = embedded
        .create_key(&app, "temp", None, "cli", NOW)
        .await
        .unwrap();
    embedded
        .retire_key(&app, temp.key_id, "cli", NOW)
        .await
        .unwrap();
    let t = claimed(Some("Ada"), None, Some("pro"), Some(49.0));
    let writes = [
        with_custom(
            verified(&app, "v1", NOW, rolled.key_id, t.clone(), t),
            json!({"seats": 3}),
        ),
        unverified(&app, "u1", NOW + 1, claimed(None, None, Some("free"), None)),
    ];
    for w in &writes {
        embedded.identify(w.clone()).await.unwrap();
    }
    let account = new_account(&embedded, "ada@example.com", "$argon2id$x").await;
    assert!(
        embedded
            .add_member("ada@example.com", &app, Role::Owner, "cli", NOW)
            .await
            .unwrap()
    );
    embedded
        .create_session([7; 32], account, RULES, NOW)
        .await
        .unwrap();
    embedded
        .meta_set("admin_token_sha256", "feed")
        .await
        .unwrap();
    let before_ws = embedded.workspaces().await.unwrap();
    let mut users = Vec::new();
    for u in ["v1", "u1"] {
        users.push(stored_user(&embedded, &app, u).await);
    }
    let before_audit = embedded.audit_log(&app, 50).await.unwrap();
    drop(embedded);

    let sqlite = dropfix_server::store::sqlite::open_file(dir.path()).unwrap();
    // With master keys that cannot open the copied secrets, nothing is committed.
    let other = MasterKey::generate("other").unwrap();
    let (wrong, _) = env.open_with(keys_of(&[&other])).await;
    let Store::Postgres(wrong) = &wrong else {
        unreachable!()
    };
    let e = wrong.import_embedded(&sqlite, false).await.unwrap_err();
    assert!(matches!(e, StoreError::Sealing(_)), "{e}");
    let (pg, _) = env.open().await;
    assert!(
        pg.workspaces().await.unwrap().is_empty(),
        "the failed import left nothing"
    );
    let Store::Postgres(inner) = &pg else {
        unreachable!()
    };
    let counts = inner.import_embedded(&sqlite, false).await.unwrap();
    assert!(
        counts.contains(&("users", 2)) && counts.contains(&("keys", 2)),
        "{counts:?}"
    );

    let after_ws = pg.workspaces().await.unwrap();
    assert_eq!(after_ws.len(), 1);
    assert_eq!(after_ws[0].app_id, app);
    assert_eq!(expiries(&after_ws[0]), expiries(&before_ws[0]));
    assert_eq!(
        exposed(&after_ws[0].live_secrets(NOW).0),
        exposed(&before_ws[0].live_secrets(NOW).0),
        "the same secrets verify"
    );
    assert!(after_ws[0].key(k1).is_some());
    for (u, before) in ["v1", "u1"].into_iter().zip(&users) {
        assert_eq!(&stored_user(&pg, &app, u).await, before, "{u}");
    }
    assert_eq!(pg.audit_log(&app, 50).await.unwrap(), before_audit);
    assert_eq!(
        pg.workspaces().await.unwrap()[0].keys.len(),
        2,
        "the retired key stays gone"
    );
    assert!(pg.account_login("ada@example.com").await.unwrap().is_some());
    let resumed = pg
        .resume_session([7; 32], RULES, NOW + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resumed.memberships[0].app_id, app);
    assert_eq!(
        pg.meta_get("admin_token_sha256").await.unwrap().as_deref(),
        Some("feed")
    );
    // New rows continue after the copied ids.
    let added = pg
        .create_key(&app, "after", None, "cli", NOW)
        .await
        .unwrap();
    assert!(
        added.key_id > temp.key_id,
        "{} after {}",
        added.key_id,
        temp.key_id
    );
    let again = inner.import_embedded(&sqlite, false).await.unwrap_err();
    assert!(again.to_string().contains("empty"), "{again}");
}

/// An embedded store of its own with the suite's master keys, holding one [`workspace`] (to move
/// to PostgreSQL): its data dir, the store, the app id and key id.
async fn embedded_store() -> (tempfile::TempDir, Store, String, i64) {
    let dir = support::data_dir();
    let store = Store::open(&support::embedded(dir.path()), Hooks::new(ring()))
        .await
        .unwrap();
    let (app, key) = workspace(&store).await;
    (dir, store, app, key)
}

async fn stored_user(store: &Store, app: &str, user: &str) -> UserRecord {
    store.get_user(app, user).await.unwrap().unwrap()
}

/// A database that stops answering: every identify call gets its error within the database
/// timeout (`--db-timeout-secs`), also the calls queued behind a batch that is stuck on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_hung_database_fails_each_call_within_the_timeout() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    // postgres://user:password@HOST:PORT/db -> the proxy's address in place of HOST:PORT.
    let (head, rest) = db.url.rsplit_once('@').unwrap();
    let (upstream, tail) = rest.split_once('/').unwrap();
    let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let proxy = freezable_proxy(upstream.to_string(), Arc::clone(&frozen)).await;
    let timeout = Duration::from_secs(1);
    let backend = Backend::Postgres(PgOptions {
        pool_size: 2,
        timeout,
        ..PgOptions::new(format!("{head}@{proxy}/{tail}"))
    });
    let store = Store::open(&backend, Hooks::new(ring())).await.unwrap();
    let (app, key) = workspace(&store).await;
    let t = claimed(None, None, Some("pro"), None);
    store
        .identify(verified(&app, "before", NOW, key, t.clone(), t.clone()))
        .await
        .unwrap();

    frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            let w = verified(&app, &format!("hung-{i}"), NOW, key, t.clone(), t.clone());
            tokio::spawn(async move {
                let r = store.identify(w).await;
                (r, started.elapsed())
            })
        })
        .collect();
    for call in calls {
        let (r, took) = call.await.unwrap();
        assert!(r.is_err(), "no answer is not a success");
        assert!(
            took < timeout + Duration::from_millis(700),
            "a call waited {took:?} for a hung database (timeout {timeout:?})"
        );
    }
    frozen.store(false, std::sync::atomic::Ordering::SeqCst);
}

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
    // Refused before the batch: it never cost the others a retry.
    assert!(
        matches!(&results[1], Err(StoreError::InvalidValue(f)) if f == "traits.name"),
        "{results:?}"
    );
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
    let db = env.db();
    let (store, registry) = env.open().await;
    let (app, _) = workspace(&store).await;
    // Refuse new connections to this database and cut the existing ones.
    let admin = support::pg::connect(&support::pg::server_url())
        .await
        .unwrap();
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
    // Directly, the refused write never reached the database. Through a pooler it may have: the
    // pooler queues the transaction until a server connection is back (its query_wait_timeout),
    // after the store answered with an error; an error never promised "not stored" (a 503 is
    // retried, and identify is idempotent), only a success promises "stored".
    let via_pooler = std::env::var(support::pg::VIA_POOLER_ENV).is_ok_and(|v| v == "1");
    if !via_pooler {
        assert!(
            store
                .get_user(&app, "during-outage")
                .await
                .unwrap()
                .is_none()
        );
    }
    // Its listener reconnected: a change made elsewhere reaches its registry again.
    let (other, _) = env.open().await;
    enforce_strict(&other, &app).await;
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
    let db = env.db();
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

// ---------------------------------------------------------------------------------------------
// Raw access to what a backend stored (what a backup, a dump or a stolen disk would hold)

impl Env {
    fn sqlite_conn(dir: &tempfile::TempDir) -> rusqlite::Connection {
        let conn =
            rusqlite::Connection::open(dir.path().join(dropfix_server::store::sqlite::DB_FILE))
                .unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn
    }

    /// Everything stored, as bytes: on SQLite every byte of every file in the data dir (main
    /// file, WAL, shared memory); on PostgreSQL every row of every table of the database, each
    /// read whole as text (what `pg_dump` would print).
    async fn everything_stored(&self) -> Vec<u8> {
        match self {
            Env::Sqlite(dir) => {
                let mut out = Vec::new();
                for entry in std::fs::read_dir(dir.path()).unwrap() {
                    out.extend(std::fs::read(entry.unwrap().path()).unwrap());
                }
                out
            }
            Env::Postgres(db) => {
                let client = db.client().await;
                let tables = client
                    .query(
                        "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name)
                         FROM information_schema.tables
                         WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
                           AND table_type = 'BASE TABLE'",
                        &[],
                    )
                    .await
                    .unwrap();
                assert!(tables.len() >= 10, "only {} tables found", tables.len());
                let mut out = Vec::new();
                for t in &tables {
                    let table: &str = t.get(0);
                    let rows = client
                        .query(&format!("SELECT t::text FROM {table} t"), &[])
                        .await
                        .unwrap();
                    for r in &rows {
                        out.extend_from_slice(r.get::<_, &str>(0).as_bytes());
                        out.push(b'\n');
                    }
                }
                out
            }
        }
    }

    /// Every value of every row of every table (what a logical dump holds).
    async fn every_stored_value(&self) -> Vec<u8> {
        match self {
            Env::Sqlite(dir) => {
                let conn = Env::sqlite_conn(dir);
                let tables: Vec<String> = conn
                    .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .unwrap()
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert!(tables.len() >= 10, "only {} tables found", tables.len());
                let mut out = Vec::new();
                for table in tables {
                    let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
                    let columns = stmt.column_count();
                    let mut rows = stmt.query([]).unwrap();
                    while let Some(row) = rows.next().unwrap() {
                        for i in 0..columns {
                            use rusqlite::types::ValueRef;
                            match row.get_ref(i).unwrap() {
                                ValueRef::Text(b) | ValueRef::Blob(b) => out.extend_from_slice(b),
                                ValueRef::Integer(n) => out.extend(n.to_string().bytes()),
                                ValueRef::Real(x) => out.extend(x.to_string().bytes()),
                                ValueRef::Null => {}
                            }
                            out.push(b'\n');
                        }
                    }
                }
                out
            }
            Env::Postgres(_) => self.everything_stored().await,
        }
    }

    /// `(id, app_id, secret column)` of every key row.
    async fn key_rows(&self) -> Vec<(i64, String, String)> {
        match self {
            Env::Sqlite(dir) => {
                let conn = Env::sqlite_conn(dir);
                let mut stmt = conn
                    .prepare("SELECT id, app_id, secret FROM keys ORDER BY id")
                    .unwrap();
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            }
            Env::Postgres(db) => db
                .client()
                .await
                .query("SELECT id, app_id, secret FROM keys ORDER BY id", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
        }
    }

    /// Writes a key row's secret column as given (a database from before sealing).
    /// Makes the store look written by a version before the one-time upgrade of secrets.
    async fn forget_secret_upgrade(&self) {
        match self {
            Env::Sqlite(dir) => {
                Env::sqlite_conn(dir)
                    .execute(
                        "DELETE FROM meta WHERE key = ?1",
                        [dropfix_server::store::SECRETS_BOUND_META],
                    )
                    .unwrap();
            }
            Env::Postgres(db) => {
                db.client()
                    .await
                    .execute(
                        "DELETE FROM meta WHERE key = $1",
                        &[&dropfix_server::store::SECRETS_BOUND_META],
                    )
                    .await
                    .unwrap();
            }
        }
    }

    async fn set_stored_secret(&self, id: i64, value: &str) {
        match self {
            Env::Sqlite(dir) => {
                Env::sqlite_conn(dir)
                    .execute(
                        "UPDATE keys SET secret = ?2 WHERE id = ?1",
                        rusqlite::params![id, value],
                    )
                    .unwrap();
            }
            Env::Postgres(db) => {
                db.client()
                    .await
                    .execute("UPDATE keys SET secret = $2 WHERE id = $1", &[&id, &value])
                    .await
                    .unwrap();
            }
        }
    }

    /// Rows of `table` (a constant of the test) for `app_id`, or all of them.
    async fn count_rows(&self, table: &str, app_id: Option<&str>) -> i64 {
        let sql = match app_id {
            Some(_) => format!("SELECT count(*) FROM {table} WHERE app_id = $1"),
            None => format!("SELECT count(*) FROM {table}"),
        };
        match self {
            Env::Sqlite(dir) => {
                let conn = Env::sqlite_conn(dir);
                let sql = sql.replace("$1", "?1");
                match app_id {
                    Some(app) => conn.query_row(&sql, [app], |r| r.get(0)),
                    None => conn.query_row(&sql, [], |r| r.get(0)),
                }
                .unwrap()
            }
            Env::Postgres(db) => {
                let client = db.client().await;
                match app_id {
                    Some(app) => client.query_one(&sql, &[&app]).await,
                    None => client.query_one(&sql, &[]).await,
                }
                .unwrap()
                .get(0)
            }
        }
    }
}

fn secret_of(ws: &Workspace, key_id: i64) -> String {
    ws.keys
        .iter()
        .find(|k| k.id == key_id)
        .unwrap_or_else(|| panic!("key {key_id} not in {}", ws.app_id))
        .secret
        .expose_secret()
        .to_string()
}

fn keys_of(mk: &[&MasterKey]) -> Keyring {
    Keyring::new(mk.iter().map(|k| (*k).clone()).collect()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Sealing at rest

async fn no_secret_is_stored_in_the_clear(env: &Env) {
    let (store, registry) = env.open().await;
    let mut secrets = Vec::new();
    let mut apps = Vec::new();
    for name in ["one", "two"] {
        let (k, added) = workspace_with_two_keys(&store, name).await;
        let app = k.workspace.app_id.clone();
        secrets.push(k.secret.expose_secret().to_string());
        secrets.push(added.secret.expose_secret().to_string());
        let rolled = store
            .roll_key(&app, Some(added.key_id), 3600, "test", NOW)
            .await
            .unwrap();
        secrets.push(rolled.secret.expose_secret().to_string());
        store
            .identify(verified(
                &app,
                "u1",
                NOW,
                k.key_id,
                claimed(Some("Ann"), None, Some("pro"), None),
                Claimed::default(),
            ))
            .await
            .unwrap();
        apps.push(app);
    }
    // What is stored opens again to the same secrets (through a fresh handle).
    let (_other, loaded) = env.open().await;
    let mut live: Vec<String> = apps
        .iter()
        .flat_map(|a| {
            loaded
                .get(a)
                .unwrap()
                .keys
                .iter()
                .map(|k| k.secret.expose_secret().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    live.sort();
    let mut expected = secrets.clone();
    expected.sort();
    assert_eq!(live, expected);
    assert_eq!(registry.get(&apps[0]).unwrap().keys.len(), 3);
    let stored = env.everything_stored().await;
    assert!(!stored.is_empty());
    for s in &secrets {
        for form in [s.clone(), hex::encode(s.as_bytes())] {
            assert!(
                !stored.windows(form.len()).any(|w| w == form.as_bytes()),
                "a secret is stored in the clear"
            );
        }
    }
    // Every key row holds a value sealed with the active master key, bound to its workspace.
    let rows = env.key_rows().await;
    assert_eq!(rows.len(), 6);
    for (_, _, sealed) in &rows {
        assert!(sealed.starts_with("dfseal1:mk1:"), "{sealed}");
    }
    let counts = store.seal_counts().await.unwrap();
    assert_eq!(
        counts.by_key.into_iter().collect::<Vec<_>>(),
        [("mk1".to_string(), 6)]
    );
    // A sealed value copied into another workspace's row does not open there.
    let (a_row, b_row) = (
        rows.iter().find(|r| r.1 == apps[0]).unwrap(),
        rows.iter().find(|r| r.1 == apps[1]).unwrap(),
    );
    env.set_stored_secret(b_row.0, &a_row.2).await;
    match store.workspaces().await {
        Err(StoreError::Sealing(_)) => {}
        other => panic!("a value sealed for another workspace opened: {other:?}"),
    }
}

/// After the one-time upgrade, what a store never writes is tampering: a retired key's sealed
/// secret copied into a live key row of the same workspace does not open, and neither does a
/// secret written in the clear; the store refuses to open (or, running, marks its workspaces
/// stale) instead of adopting either.
async fn a_secret_moved_between_key_rows_or_written_in_the_clear_is_refused(env: &Env) {
    let (store, registry) = env.open().await;
    // Another workspace, whose key stays as the store wrote it.
    workspace(&store).await;
    let (app, live_key) = workspace(&store).await;
    let old = store
        .create_key(&app, "old", None, "test", NOW)
        .await
        .unwrap();
    let rows = env.key_rows().await;
    let old_sealed = rows
        .iter()
        .find(|(id, _, _)| *id == old.key_id)
        .map(|(_, _, s)| s.clone())
        .unwrap();
    store
        .retire_key(&app, old.key_id, "test", NOW)
        .await
        .unwrap();
    // The retired key's sealed secret, pasted into the live key's row.
    env.set_stored_secret(live_key, &old_sealed).await;
    store.reload().await.unwrap_err();
    assert!(registry.is_stale(), "decisions stop rather than use it");
    drop(store);
    let Err(e) = Store::open(&env.backend(), Hooks::new(ring())).await else {
        panic!("a swapped secret was accepted");
    };
    assert!(
        e.to_string()
            .contains(&format!("key {} of workspace {app}", live_key)),
        "{e}"
    );
    // A secret written in the clear: refused too, never sealed and adopted.
    env.set_stored_secret(live_key, "dfsk_chosen_by_whoever_wrote_this_row")
        .await;
    let Err(e) = Store::open(&env.backend(), Hooks::new(ring())).await else {
        panic!("a secret in the clear was adopted");
    };
    assert!(e.to_string().contains("in the clear"), "{e}");
    assert_eq!(
        env.key_rows()
            .await
            .iter()
            .find(|(id, _, _)| *id == live_key)
            .unwrap()
            .2,
        "dfsk_chosen_by_whoever_wrote_this_row",
        "left as it was, for the operator to see"
    );
    // Deleting the record of the upgrade, to have the next start adopt that value, is refused
    // too while any row is already sealed to its row.
    env.forget_secret_upgrade().await;
    let Err(e) = Store::open(&env.backend(), Hooks::new(ring())).await else {
        panic!("a secret in the clear was adopted after the upgrade record was deleted");
    };
    assert!(e.to_string().contains("already sealed to its row"), "{e}");
}

async fn secrets_stored_in_the_clear_are_sealed_when_the_store_opens(env: &Env) {
    let store = env.store().await;
    let (k, added) = workspace_with_two_keys(&store, "legacy").await;
    let app = k.workspace.app_id.clone();
    drop(store);
    // As older versions stored them: one in the clear (before sealing), one sealed for its
    // workspace only (before secrets were bound to their key rows).
    let clear = [
        (k.key_id, k.secret.expose_secret().to_string()),
        (added.key_id, added.secret.expose_secret().to_string()),
    ];
    env.set_stored_secret(clear[0].0, &clear[0].1).await;
    let workspace_only = ring().seal(&clear[1].1, format!("dropfix-secret:{app}").as_bytes());
    env.set_stored_secret(clear[1].0, &workspace_only).await;
    env.forget_secret_upgrade().await;
    assert_eq!(
        env.store().await.seal_counts().await.unwrap().by_key.len(),
        1,
        "opening seals them, so the count is of sealed values only"
    );
    let (store, registry) = env.open().await;
    let rows = env.key_rows().await;
    for (_, _, stored) in &rows {
        assert!(stored.starts_with("dfseal1:mk1:"), "{stored}");
    }
    // Every value of every row: the clear values are gone. (On SQLite the bytes of the old
    // values may linger in free pages or the WAL; that is the embedded store's file format,
    // not what this rule is about.)
    let stored = env.every_stored_value().await;
    for (id, secret) in &clear {
        assert!(
            !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a legacy secret is still in the clear"
        );
        // And they verify as before.
        assert_eq!(secret_of(&registry.get(&app).unwrap(), *id), *secret);
    }
    assert_eq!(
        store.seal_counts().await.unwrap().by_key.get("mk1"),
        Some(&2)
    );
}

/// A rewrap to a master key one instance lacks, then a change: that instance cannot load the
/// changed workspaces, and says so (its registry is stale) instead of deciding with the old
/// ones; an instance with the key loads them.
async fn an_instance_that_cannot_unseal_changed_workspaces_marks_them_stale(env: &Env) {
    let mk1 = MasterKey::generate("old").unwrap();
    let mk2 = MasterKey::generate("new").unwrap();
    let (lagging, registry) = env.open_with(keys_of(&[&mk1])).await;
    let (app, _) = workspace(&lagging).await;
    assert_eq!(registry.stale(), None);
    let (updated, _) = env.open_with(keys_of(&[&mk2, &mk1])).await;
    assert_eq!(updated.rewrap_secrets().await.unwrap(), 1);
    enforce_strict(&updated, &app).await;
    let start = Instant::now();
    let why = loop {
        if let Some(why) = registry.stale() {
            break why;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the lagging instance never noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(why.contains("new"), "names the missing key: {why}");
    // It keeps retrying, and stays stale while the key is missing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(registry.is_stale());
    drop(lagging);
    let (_fresh, fresh) = env.open_with(keys_of(&[&mk2, &mk1])).await;
    assert!(!fresh.is_stale());
    assert_eq!(fresh.get(&app).unwrap().strict, StrictMode::Enforce);
}

async fn after_a_rewrap_the_old_master_key_can_be_dropped(env: &Env) {
    let mk1 = MasterKey::generate("old").unwrap();
    let mk2 = MasterKey::generate("new").unwrap();
    let (first, _) = env.open_with(keys_of(&[&mk1])).await;
    let (k, added) = workspace_with_two_keys(&first, "rewrap").await;
    let app = k.workspace.app_id.clone();
    let secrets = [
        (k.key_id, k.secret.expose_secret().to_string()),
        (added.key_id, added.secret.expose_secret().to_string()),
    ];
    // The new key is added everywhere (still opening the old values), made active, and the
    // secrets rewrapped through one handle.
    let (store, registry) = env.open_with(keys_of(&[&mk2, &mk1])).await;
    let counts = store.seal_counts().await.unwrap().by_key;
    assert_eq!(counts.get("old"), Some(&2));
    assert_eq!(store.rewrap_secrets().await.unwrap(), 2);
    let counts = store.seal_counts().await.unwrap().by_key;
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [("new".to_string(), 2)]
    );
    // Nothing left to do: a second pass rewrites nothing.
    assert_eq!(store.rewrap_secrets().await.unwrap(), 0);
    for (id, secret) in &secrets {
        assert_eq!(secret_of(&registry.get(&app).unwrap(), *id), *secret);
    }
    // A key made now is sealed with the active key.
    let third = store
        .create_key(&app, "third", None, "test", NOW)
        .await
        .unwrap();
    assert_eq!(
        store.seal_counts().await.unwrap().by_key.get("new"),
        Some(&3)
    );
    drop((first, store));
    // The old key is dropped: the store opens with the new one alone, secrets intact.
    let (_store, registry) = env.open_with(keys_of(&[&mk2])).await;
    let ws = registry.get(&app).unwrap();
    for (id, secret) in &secrets {
        assert_eq!(secret_of(&ws, *id), *secret);
    }
    assert_eq!(
        secret_of(&ws, third.key_id),
        third.secret.expose_secret().to_string()
    );
    // And the old key alone no longer opens anything: the rewrap really happened.
    let hooks = Hooks::new(keys_of(&[&mk1]));
    match Store::open(&env.backend(), hooks).await {
        Err(StoreError::Sealing(_)) => {}
        Err(e) => panic!("expected a sealing error, got {e}"),
        Ok(_) => panic!("the old master key still opens the stored secrets"),
    }
}

// ---------------------------------------------------------------------------------------------
// Console storage

fn counts(verified_seed: u64, unverified: u64, would_reject: u64, rejected: u64) -> CallCounts {
    CallCounts {
        verified_seed,
        verified_claims: verified_seed * 2,
        unverified,
        would_reject,
        rejected,
        // Added up like the others: a backend that dropped it would show here.
        seed_with_traits: verified_seed / 2,
    }
}

fn delta(app: &str, minute: i64, c: CallCounts) -> CountsDelta {
    CountsDelta {
        app_id: app.into(),
        minute,
        counts: c,
    }
}

async fn call_counts_add_up_across_handles(env: &Env) {
    let (a, _) = env.open().await;
    let (b, _) = env.open().await;
    let (app, _) = workspace(&a).await;
    let (other, _) = workspace(&a).await;
    let m = NOW / 60;
    a.add_call_stats(
        vec![
            delta(&app, m, counts(1, 2, 3, 4)),
            delta(&app, m + 1, counts(1, 0, 0, 0)),
            delta(&other, m, counts(9, 9, 9, 9)),
        ],
        vec![],
    )
    .await
    .unwrap();
    // Another instance flushes into the same minute, once with two deltas for it in one flush.
    b.add_call_stats(
        vec![
            delta(&app, m, counts(10, 20, 30, 40)),
            delta(&app, m, counts(100, 0, 0, 0)),
        ],
        vec![],
    )
    .await
    .unwrap();
    // Both flushing at once (each instance's flush task runs on its own).
    let (r1, r2) = tokio::join!(
        a.add_call_stats(vec![delta(&app, m + 1, counts(0, 1, 0, 0))], vec![]),
        b.add_call_stats(vec![delta(&app, m + 1, counts(0, 1, 0, 0))], vec![]),
    );
    r1.unwrap();
    r2.unwrap();
    let got = a.call_counts(&app, m).await.unwrap();
    assert_eq!(
        got,
        vec![(m, counts(111, 22, 33, 44)), (m + 1, counts(1, 2, 0, 0))]
    );
    assert_eq!(
        b.call_counts(&app, m + 1).await.unwrap(),
        vec![(m + 1, counts(1, 2, 0, 0))]
    );
    assert_eq!(
        b.call_counts(&other, 0).await.unwrap(),
        vec![(m, counts(9, 9, 9, 9))]
    );
    assert!(a.call_counts("app_none", 0).await.unwrap().is_empty());
    // Buckets older than eight days go when newer ones are flushed.
    let later = m + 8 * 24 * 60 + 2;
    a.add_call_stats(vec![delta(&app, later, counts(0, 0, 0, 1))], vec![])
        .await
        .unwrap();
    assert_eq!(
        a.call_counts(&app, 0).await.unwrap(),
        vec![(later, counts(0, 0, 0, 1))]
    );
}

fn rejection(app: &str, at: i64, n: usize) -> RejectionEntry {
    RejectionEntry {
        app_id: app.into(),
        at,
        code: "signature_mismatch".into(),
        enforced: n.is_multiple_of(2),
        key_id: Some(n as i64),
        origin: Some("https://app.example".into()),
        user_id: Some(format!("user-{n}")),
    }
}

async fn recent_rejections_keep_the_newest_hundred_per_workspace(env: &Env) {
    let (a, _) = env.open().await;
    let (b, _) = env.open().await;
    let (app, _) = workspace(&a).await;
    let (other, _) = workspace(&a).await;
    a.add_call_stats(
        vec![],
        (0..60)
            .map(|n| rejection(&app, NOW + n as i64, n))
            .chain([rejection(&other, NOW, 0)])
            .collect(),
    )
    .await
    .unwrap();
    // Two instances flush at once: the log is still bounded once both commit. (Each handle
    // holds a connection already, so neither flush waits for a connect and they overlap.)
    b.recent_rejections(&app).await.unwrap();
    let (r1, r2) = tokio::join!(
        a.add_call_stats(
            vec![],
            (60..120)
                .map(|n| rejection(&app, NOW + n as i64, n))
                .collect()
        ),
        b.add_call_stats(
            vec![],
            (120..180)
                .map(|n| rejection(&app, NOW + n as i64, n))
                .collect()
        ),
    );
    r1.unwrap();
    r2.unwrap();
    assert_eq!(
        env.count_rows("recent_rejections", Some(&app)).await,
        MAX_RECENT_REJECTIONS as i64
    );
    let got = b.recent_rejections(&app).await.unwrap();
    assert_eq!(got.len(), MAX_RECENT_REJECTIONS);
    // The first flush's 60 are the oldest: all of them went, and 20 of the next.
    assert!(got.iter().all(|r| r.at >= NOW + 60), "{:?}", got.last());
    // Newest first within a flush.
    let a_part: Vec<i64> = got
        .iter()
        .filter(|r| r.at < NOW + 120)
        .map(|r| r.at)
        .collect();
    assert!(a_part.windows(2).all(|w| w[0] > w[1]), "{a_part:?}");
    // More rounds of three flushes at once, the log checked after each.
    let (c, _) = env.open().await;
    c.recent_rejections(&app).await.unwrap();
    for round in 0..4usize {
        let batch = |i: usize| -> Vec<RejectionEntry> {
            let base = 200 + round * 60 + i * 20;
            (base..base + 20)
                .map(|n| rejection(&app, NOW + n as i64, n))
                .collect()
        };
        let (r1, r2, r3) = tokio::join!(
            a.add_call_stats(vec![], batch(0)),
            b.add_call_stats(vec![], batch(1)),
            c.add_call_stats(vec![], batch(2)),
        );
        r1.unwrap();
        r2.unwrap();
        r3.unwrap();
        assert_eq!(
            env.count_rows("recent_rejections", Some(&app)).await,
            MAX_RECENT_REJECTIONS as i64,
            "round {round}"
        );
    }
    // One more flush: the newest entry is first, and it round-trips field by field.
    let newest = RejectionEntry {
        enforced: false,
        key_id: None,
        origin: None,
        user_id: None,
        ..rejection(&app, NOW + 500, 1)
    };
    a.add_call_stats(vec![], vec![newest.clone()])
        .await
        .unwrap();
    let got = a.recent_rejections(&app).await.unwrap();
    assert_eq!(got.len(), MAX_RECENT_REJECTIONS);
    assert_eq!(got[0], newest);
    assert_eq!(
        got[1].user_id.as_deref().map(|u| u.starts_with("user-")),
        Some(true)
    );
    // The other workspace kept its one entry.
    assert_eq!(
        a.recent_rejections(&other).await.unwrap(),
        vec![rejection(&other, NOW, 0)]
    );
}

const RULES: SessionRules = SessionRules {
    idle_secs: 100,
    absolute_secs: 1000,
};

/// A new console account's id (`phc` its password hash).
async fn new_account(store: &Store, email: &str, phc: &str) -> i64 {
    store
        .create_account(email, phc, NOW)
        .await
        .unwrap()
        .expect("a new email makes an account")
}

/// Whether `store` resumes the session `token` at `now`.
async fn resumes(store: &Store, token: [u8; 32], now: i64) -> bool {
    store
        .resume_session(token, RULES, now)
        .await
        .unwrap()
        .is_some()
}

async fn sessions_resume_until_idle_or_absolute_expiry_and_end_at_logout(env: &Env) {
    let (a, _) = env.open().await;
    let (b, _) = env.open().await;
    let (app, _) = workspace(&a).await;
    let id = new_account(&a, "owner@example.com", "$argon2id$v=19$test").await;
    assert!(
        a.add_member("owner@example.com", &app, Role::Owner, "cli", NOW)
            .await
            .unwrap()
    );
    let token = [7u8; 32];
    a.create_session(token, id, RULES, NOW).await.unwrap();
    // The table holds the SHA-256 the caller gave (never a token), and any instance resumes it.
    let acct = b
        .resume_session(token, RULES, NOW + 50)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((acct.id, acct.email.as_str()), (id, "owner@example.com"));
    assert_eq!(
        acct.memberships,
        vec![Membership {
            app_id: app.clone(),
            role: Role::Owner
        }]
    );
    // Activity keeps it alive past one idle period from the login...
    for t in [NOW + 140, NOW + 230, NOW + 320] {
        assert!(resumes(&a, token, t).await, "{t}");
    }
    // ...but not idle for the whole period (from the last use at NOW+320).
    assert!(!resumes(&b, token, NOW + 420).await);
    // It was deleted: even a request dated earlier no longer finds it.
    assert!(!resumes(&a, token, NOW + 330).await);

    // Absolute expiry: used every 90 s, it still ends 1000 s after login.
    let token2 = [8u8; 32];
    a.create_session(token2, id, RULES, NOW).await.unwrap();
    let mut t = NOW;
    while t + 90 < NOW + 1000 {
        t += 90;
        assert!(resumes(&b, token2, t).await, "{t}");
    }
    assert!(!resumes(&a, token2, NOW + 1000).await);

    // Logout through one instance ends it on the other.
    let token3 = [9u8; 32];
    a.create_session(token3, id, RULES, NOW).await.unwrap();
    assert!(resumes(&b, token3, NOW + 1).await);
    b.delete_session(token3).await.unwrap();
    assert!(!resumes(&a, token3, NOW + 2).await);
    // Deleting an unknown session is not an error.
    b.delete_session([1u8; 32]).await.unwrap();

    // A login forgets every session that has ended, even ones nobody presents again.
    let (s1, s2, s3, s4) = ([21u8; 32], [22u8; 32], [23u8; 32], [24u8; 32]);
    a.create_session(s1, id, RULES, NOW).await.unwrap();
    a.create_session(s2, id, RULES, NOW + 10).await.unwrap();
    a.create_session(s3, id, RULES, NOW + 20).await.unwrap();
    // s1 and s3 stay in use; s2 is never presented again.
    for t in (1..=11).map(|i| NOW + 90 * i) {
        assert!(resumes(&a, s1, t).await, "{t}");
        assert!(resumes(&b, s3, t).await, "{t}");
    }
    assert_eq!(env.count_rows("console_sessions", None).await, 3);
    // At NOW+1005 s1 is past its absolute limit and s2 idle: the next login deletes both.
    b.create_session(s4, id, RULES, NOW + 1005).await.unwrap();
    assert_eq!(env.count_rows("console_sessions", None).await, 2);
    assert!(resumes(&a, s3, NOW + 1006).await);
    assert!(resumes(&a, s4, NOW + 1006).await);
    assert!(!resumes(&a, s1, NOW + 999).await);
}

async fn accounts_are_found_by_email_case_insensitively(env: &Env) {
    let (a, _) = env.open().await;
    let (b, _) = env.open().await;
    let id = new_account(&a, "Ann.Lee@Example.COM", "$argon2id$ann").await;
    // The same address in other case is taken, from any instance.
    assert_eq!(
        b.create_account("ann.lee@example.com", "$argon2id$other", NOW)
            .await
            .unwrap(),
        None
    );
    let bob = b
        .create_account("bob@example.com", "$argon2id$bob", NOW + 1)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(id, bob);
    let login = b
        .account_login("ANN.LEE@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (login.id, login.password_phc.as_str()),
        (id, "$argon2id$ann")
    );
    assert!(
        a.account_login("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    let accounts = a.list_accounts().await.unwrap();
    let listed: Vec<(i64, &str, i64)> = accounts
        .iter()
        .map(|x| (x.id, x.email.as_str(), x.created_at))
        .collect();
    assert_eq!(
        listed,
        [
            (id, "ann.lee@example.com", NOW),
            (bob, "bob@example.com", NOW + 1)
        ]
    );
    assert!(accounts.iter().all(|x| x.memberships.is_empty()));
}

async fn console_access_can_be_taken_away(env: &Env) {
    let (a, _) = env.open().await;
    let (b, _) = env.open().await;
    let (w1, _) = workspace(&a).await;
    let (w2, _) = workspace(&a).await;
    let id = new_account(&a, "leaver@example.com", "$argon2id$old").await;
    for w in [&w1, &w2] {
        assert!(
            a.add_member("leaver@example.com", w, Role::Owner, "cli", NOW)
                .await
                .unwrap()
        );
    }
    let (s1, s2) = ([1u8; 32], [2u8; 32]);
    for s in [s1, s2] {
        a.create_session(s, id, RULES, NOW).await.unwrap();
    }
    // One workspace taken away (through another handle): the session stays, without it.
    let remove = AccountChange::RemoveFrom(w1.clone());
    assert!(
        b.change_account("Leaver@Example.com", &remove, "cli", NOW + 1)
            .await
            .unwrap()
    );
    assert!(
        !b.change_account("leaver@example.com", &remove, "cli", NOW + 1)
            .await
            .unwrap()
    );
    let account = a.resume_session(s1, RULES, NOW + 2).await.unwrap().unwrap();
    let apps: Vec<_> = account
        .memberships
        .iter()
        .map(|m| m.app_id.clone())
        .collect();
    assert_eq!(apps, vec![w2.clone()]);
    // A new password ends every session.
    let reset = AccountChange::SetPassword("$argon2id$new".into());
    assert!(
        b.change_account("leaver@example.com", &reset, "cli", NOW + 3)
            .await
            .unwrap()
    );
    for s in [s1, s2] {
        assert!(!resumes(&a, s, NOW + 4).await);
    }
    let login = a
        .account_login("leaver@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(login.password_phc, "$argon2id$new");
    // Deleted: no login, no session, no membership; audited where it was a member.
    a.create_session(s1, id, RULES, NOW + 5).await.unwrap();
    assert!(
        b.change_account("leaver@example.com", &AccountChange::Delete, "cli", NOW + 6)
            .await
            .unwrap()
    );
    assert!(
        a.account_login("leaver@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(!resumes(&a, s1, NOW + 7).await);
    assert!(a.list_accounts().await.unwrap().iter().all(|x| x.id != id));
    assert!(
        !b.change_account("leaver@example.com", &AccountChange::Delete, "cli", NOW + 8)
            .await
            .unwrap()
    );
    let actions = |w: String| {
        let a = a.clone();
        async move {
            a.audit_log(&w, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|e| (e.action, e.detail))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        actions(w1.clone()).await[0],
        (
            "member.remove".to_string(),
            json!({"email": "leaver@example.com"})
        )
    );
    assert_eq!(
        actions(w2.clone()).await[0],
        (
            "member.remove".to_string(),
            json!({"email": "leaver@example.com", "account_deleted": true})
        )
    );
}

async fn members_have_one_role_per_workspace(env: &Env) {
    let (a, _) = env.open().await;
    let (b, _) = env.open().await;
    let (w1, _) = workspace(&a).await;
    let (w2, _) = workspace(&a).await;
    let (first, second) = if w1 < w2 { (w1, w2) } else { (w2, w1) };
    let id = new_account(&a, "Viewer@Example.com", "$argon2id$v").await;
    // Unknown account: false; unknown workspace: an error (and nothing stored either way).
    assert!(
        !a.add_member("nobody@example.com", &first, Role::Owner, "cli", NOW)
            .await
            .unwrap()
    );
    assert!(matches!(
        a.add_member("viewer@example.com", "app_missing", Role::Owner, "cli", NOW)
            .await,
        Err(StoreError::WorkspaceNotFound)
    ));
    assert!(
        b.add_member("VIEWER@example.com", &second, Role::Viewer, "cli", NOW + 1)
            .await
            .unwrap()
    );
    assert!(
        a.add_member(
            "viewer@example.com",
            &first,
            Role::Viewer,
            "owner@x",
            NOW + 2
        )
        .await
        .unwrap()
    );
    // A second grant replaces the role in that workspace only.
    assert!(
        b.add_member(
            "viewer@example.com",
            &first,
            Role::Owner,
            "owner@x",
            NOW + 3
        )
        .await
        .unwrap()
    );
    let accounts = a.list_accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);
    let want = vec![
        Membership {
            app_id: first.clone(),
            role: Role::Owner,
        },
        Membership {
            app_id: second.clone(),
            role: Role::Viewer,
        },
    ];
    assert_eq!(accounts[0].memberships, want);
    let token = [3u8; 32];
    b.create_session(token, id, RULES, NOW).await.unwrap();
    assert_eq!(
        a.resume_session(token, RULES, NOW + 1)
            .await
            .unwrap()
            .unwrap()
            .memberships,
        want
    );
    // Each grant is audited in its workspace, never with a password hash.
    let log = a.audit_log(&first, 10).await.unwrap();
    let grants: Vec<(&str, &str, &Json)> = log
        .iter()
        .filter(|e| e.action == "member.set")
        .map(|e| (e.actor.as_str(), e.action.as_str(), &e.detail))
        .collect();
    assert_eq!(
        grants,
        [
            (
                "owner@x",
                "member.set",
                &json!({"email": "viewer@example.com", "role": "owner"})
            ),
            (
                "owner@x",
                "member.set",
                &json!({"email": "viewer@example.com", "role": "viewer"})
            ),
        ]
    );
    assert!(!serde_json::to_string(&log).unwrap().contains("argon2id"));
    // Entries the console appends (an export) land in the same log, newest first.
    b.append_audit(
        &second,
        "viewer@example.com",
        "users.export",
        json!({"format": "csv"}),
        NOW + 9,
    )
    .await
    .unwrap();
    let log = a.audit_log(&second, 1).await.unwrap();
    assert_eq!(
        (
            log[0].at,
            log[0].actor.as_str(),
            log[0].action.as_str(),
            &log[0].detail
        ),
        (
            NOW + 9,
            "viewer@example.com",
            "users.export",
            &json!({"format": "csv"})
        )
    );
}

/// `pg_dump` from the postgresql client package, where the operator's backups come from.
fn pg_dump_binary() -> std::path::PathBuf {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("pg_dump"))
            .collect::<Vec<_>>()
    });
    // Debian keeps each version's binaries apart; the newest can dump any older server.
    let mut versioned: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/pg_dump"))
        .collect();
    versioned.sort();
    on_path
        .chain(versioned.into_iter().rev())
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "pg_dump not found (PATH or /usr/lib/postgresql/*/bin): install the postgresql \
                 client package (scripts/postgres.sh installs postgresql)"
            )
        })
}

/// A real backup (`pg_dump` of the whole database, data and schema) holds no workspace secret,
/// only sealed values.
#[tokio::test]
async fn postgres_a_pg_dump_holds_no_secret() {
    let Some(env) = Env::postgres().await else {
        return;
    };
    let db = env.db();
    let store = env.store().await;
    let (k, added) = workspace_with_two_keys(&store, "dumped").await;
    let app = k.workspace.app_id.clone();
    let mut secrets = vec![k.secret, added.secret];
    let rolled = store
        .roll_key(&app, Some(added.key_id), 3600, "test", NOW)
        .await
        .unwrap();
    secrets.push(rolled.secret);
    // Blocking is fine here: the dump connects on its own, the store waits for nothing.
    let out = std::process::Command::new(pg_dump_binary())
        .arg("--no-owner")
        .arg(&db.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = String::from_utf8(out.stdout).unwrap();
    // The dump does hold the key rows, sealed.
    assert_eq!(dump.matches("dfseal1:mk1:").count(), 3, "{dump}");
    for s in &secrets {
        assert!(
            !dump.contains(s.expose_secret()),
            "a secret is in the pg_dump output"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The Team page's rules

async fn team_invitations_are_one_time_and_expire(env: &Env) {
    let (a, _) = env.open().await;
    let (b, _) = env.open().await;
    let (app, _) = workspace(&a).await;
    new_account(&a, "owner@example.com", "$argon2id$owner").await;
    assert!(
        a.add_member("owner@example.com", &app, Role::Owner, "cli", NOW)
            .await
            .unwrap()
    );
    // A member cannot be invited again; an unknown workspace is an error.
    assert_eq!(
        a.invite_member(&app, "Owner@Example.com", Role::Viewer, [1; 32], "o", NOW)
            .await
            .unwrap(),
        Err(TeamRefusal::AlreadyMember)
    );
    assert!(matches!(
        a.invite_member(
            "app_missing",
            "x@example.com",
            Role::Viewer,
            [1; 32],
            "o",
            NOW
        )
        .await,
        Err(StoreError::WorkspaceNotFound)
    ));
    let expires = a
        .invite_member(
            &app,
            "New@Example.com",
            Role::Viewer,
            [2; 32],
            "owner@example.com",
            NOW,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(expires, NOW + INVITE_TTL_SECS);
    // Inviting the same email again replaces the first link.
    a.invite_member(
        &app,
        "new@example.com",
        Role::Viewer,
        [3; 32],
        "owner@example.com",
        NOW,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(b.invite_for([2; 32], NOW).await.unwrap(), None);
    let offer = b.invite_for([3; 32], NOW).await.unwrap().unwrap();
    assert_eq!(
        (offer.email.as_str(), offer.role),
        ("new@example.com", Role::Viewer)
    );
    assert_eq!(offer.existing_phc, None);
    let team = b.team(&app, NOW).await.unwrap();
    assert_eq!(team.invites.len(), 1);
    assert_eq!(team.invites[0].created_by, "owner@example.com");
    // Expired: neither offered nor accepted, nor listed.
    let late = NOW + INVITE_TTL_SECS;
    assert_eq!(b.invite_for([3; 32], late).await.unwrap(), None);
    assert_eq!(
        b.accept_invite([3; 32], Some("$argon2id$new"), late)
            .await
            .unwrap(),
        Err(TeamRefusal::InviteGone)
    );
    assert!(b.team(&app, late).await.unwrap().invites.is_empty());
    assert!(b.account_login("new@example.com").await.unwrap().is_none());
    // In time: the account is made with the chosen password, a member with the invited role.
    let (joined_app, email) = b
        .accept_invite([3; 32], Some("$argon2id$new"), NOW + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (joined_app.as_str(), email.as_str()),
        (app.as_str(), "new@example.com")
    );
    let login = a.account_login("new@example.com").await.unwrap().unwrap();
    assert_eq!(login.password_phc, "$argon2id$new");
    // Used once.
    assert_eq!(
        a.accept_invite([3; 32], Some("$argon2id$again"), NOW + 6)
            .await
            .unwrap(),
        Err(TeamRefusal::InviteGone)
    );
    let team = a.team(&app, NOW + 6).await.unwrap();
    let roles: Vec<_> = team
        .members
        .iter()
        .map(|m| (m.email.as_str(), m.role))
        .collect();
    assert_eq!(
        roles,
        [
            ("new@example.com", Role::Viewer),
            ("owner@example.com", Role::Owner)
        ]
    );
    assert!(team.invites.is_empty());
    // An existing account joins without a new password (the caller checked its own), and a
    // link never replaces an existing account's password.
    let (other, _) = workspace(&a).await;
    a.invite_member(&other, "new@example.com", Role::Owner, [4; 32], "cli", NOW)
        .await
        .unwrap()
        .unwrap();
    let offer = a.invite_for([4; 32], NOW).await.unwrap().unwrap();
    assert_eq!(offer.existing_phc.as_deref(), Some("$argon2id$new"));
    assert_eq!(
        a.accept_invite([4; 32], Some("$argon2id$takeover"), NOW)
            .await
            .unwrap(),
        Err(TeamRefusal::AccountChanged)
    );
    assert!(a.accept_invite([4; 32], None, NOW).await.unwrap().is_ok());
    let login = a.account_login("new@example.com").await.unwrap().unwrap();
    assert_eq!(login.password_phc, "$argon2id$new");
    // Last login: set by a session.
    assert_eq!(
        a.team(&app, NOW).await.unwrap().members[0].last_login_at,
        None
    );
    a.create_session([9; 32], login.id, RULES, NOW + 7)
        .await
        .unwrap();
    assert_eq!(
        a.team(&app, NOW + 7).await.unwrap().members[0].last_login_at,
        Some(NOW + 7)
    );
    // A bound on pending invitations; cancelling one makes room.
    for i in 0..MAX_PENDING_INVITES {
        let token = [u8::try_from(i).unwrap() + 100; 32];
        a.invite_member(
            &app,
            &format!("p{i}@example.com"),
            Role::Viewer,
            token,
            "o",
            NOW,
        )
        .await
        .unwrap()
        .unwrap();
    }
    assert_eq!(
        a.invite_member(
            &app,
            "one-more@example.com",
            Role::Viewer,
            [99; 32],
            "o",
            NOW
        )
        .await
        .unwrap(),
        Err(TeamRefusal::TooManyInvites)
    );
    assert!(
        a.revoke_invite(&app, "P0@example.com", "o", NOW)
            .await
            .unwrap()
    );
    assert!(
        !a.revoke_invite(&app, "p0@example.com", "o", NOW)
            .await
            .unwrap()
    );
    assert!(
        a.invite_member(
            &app,
            "one-more@example.com",
            Role::Viewer,
            [99; 32],
            "o",
            NOW
        )
        .await
        .unwrap()
        .is_ok()
    );
    let actions: Vec<String> = a
        .audit_log(&app, 200)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for action in ["member.invite", "member.join", "member.invite_cancel"] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
}

async fn the_last_owner_is_never_demoted_or_removed_even_at_once(env: &Env) {
    let (a, _) = env.open().await;
    let (b, _) = env.open().await;
    let (app, _) = workspace(&a).await;
    for (email, role) in [
        ("ada@example.com", Role::Owner),
        ("bob@example.com", Role::Owner),
        ("eve@example.com", Role::Viewer),
    ] {
        new_account(&a, email, "$argon2id$x").await;
        assert!(a.add_member(email, &app, role, "cli", NOW).await.unwrap());
    }
    assert_eq!(
        a.change_member(&app, "nobody@example.com", None, "ada", NOW)
            .await
            .unwrap(),
        Err(TeamRefusal::NotMember)
    );
    // Two owners demote each other (or themselves) at once, from two handles: one succeeds.
    for round in 0..3 {
        let (x, y) = if round % 2 == 0 {
            ("ada", "bob")
        } else {
            ("bob", "ada")
        };
        let (ex, ey) = (format!("{x}@example.com"), format!("{y}@example.com"));
        let results = join_in_order(vec![
            Box::pin(a.change_member(&app, &ex, Some(Role::Viewer), "t", NOW)),
            Box::pin(b.change_member(&app, &ey, None, "t", NOW)),
        ])
        .await;
        let ok = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
        let last = results
            .iter()
            .filter(|r| matches!(r, Ok(Err(TeamRefusal::LastOwner))))
            .count();
        assert_eq!((ok, last), (1, 1), "round {round}: {results:?}");
        let owners: Vec<String> = a
            .team(&app, NOW)
            .await
            .unwrap()
            .members
            .into_iter()
            .filter(|m| m.role == Role::Owner)
            .map(|m| m.email)
            .collect();
        assert_eq!(owners.len(), 1, "round {round}: {owners:?}");
        // Put things back: both owners again.
        for e in [&ex, &ey] {
            if !owners.contains(e) {
                a.add_member(e, &app, Role::Owner, "cli", NOW)
                    .await
                    .unwrap();
            }
        }
    }
    // The only owner left: neither demoted nor removed; a viewer may be promoted and removed.
    a.change_member(&app, "bob@example.com", None, "ada", NOW)
        .await
        .unwrap()
        .unwrap();
    for change in [Some(Role::Viewer), None] {
        assert_eq!(
            a.change_member(&app, "ADA@example.com", change, "ada", NOW)
                .await
                .unwrap(),
            Err(TeamRefusal::LastOwner)
        );
    }
    a.change_member(&app, "eve@example.com", Some(Role::Owner), "ada", NOW)
        .await
        .unwrap()
        .unwrap();
    a.change_member(
        &app,
        "ada@example.com",
        Some(Role::Viewer),
        "eve@example.com",
        NOW,
    )
    .await
    .unwrap()
    .unwrap();
    let log = a.audit_log(&app, 50).await.unwrap();
    let role = log.iter().find(|e| e.action == "member.role").unwrap();
    assert_eq!(role.actor, "eve@example.com");
    assert_eq!(
        role.detail,
        json!({"email": "ada@example.com", "from": "owner", "to": "viewer"})
    );
    assert!(log.iter().any(|e| e.action == "member.remove"));
}

// ---------------------------------------------------------------------------------------------
// Token issuers

/// A fresh P-256 public key as a JWK (the private half is dropped: the store never sees one).
fn ec_public_jwk(kid: &str) -> Json {
    use base64::Engine as _;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&point[1..33]), "y": b64(&point[33..])})
}

fn issuer_input(name: &str, keys: Vec<Json>) -> dropfix_server::issuers::IssuerConfig {
    dropfix_server::issuers::IssuerInput {
        name: name.into(),
        public_keys: keys,
        ..Default::default()
    }
    .into_config()
    .unwrap()
}

fn issuer_rule(e: StoreError) -> workspace::IssuerRuleError {
    match e {
        StoreError::Issuer(r) => r,
        other => panic!("expected an issuer rule error, got {other:?}"),
    }
}

async fn token_issuers_are_stored_checked_and_reach_other_handles(env: &Env) {
    use workspace::IssuerRuleError as R;
    let (store, _) = env.open().await;
    let (_other, registry) = env.open().await;
    let (app, _) = workspace(&store).await;
    let ws = store
        .add_issuer(
            &app,
            issuer_input("backend", vec![ec_public_jwk("k1")]),
            "test",
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(ws.issuers.len(), 1);
    assert_eq!(
        ws.issuer("backend")
            .unwrap()
            .static_keys
            .as_ref()
            .unwrap()
            .kids(),
        ["k1"]
    );
    // The other handle hears of it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while registry.get(&app).is_none_or(|w| w.issuers.is_empty()) {
        assert!(
            Instant::now() < deadline,
            "the change never reached the other handle"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Rules: unique names, a bounded count, checked configurations, removal of what exists.
    let again = store
        .add_issuer(
            &app,
            issuer_input("backend", vec![ec_public_jwk("k2")]),
            "test",
            NOW,
        )
        .await
        .unwrap_err();
    assert_eq!(issuer_rule(again), R::Exists);
    let mut private = ec_public_jwk("k3");
    private["d"] = "AAAA".into();
    let bad = dropfix_server::issuers::IssuerConfig {
        keys: vec![private],
        ..issuer_input("private", vec![ec_public_jwk("k3")])
    };
    assert!(matches!(
        issuer_rule(store.add_issuer(&app, bad, "test", NOW).await.unwrap_err()),
        R::Invalid(why) if why.contains("private")
    ));
    let jwks_without_aud = dropfix_server::issuers::IssuerConfig {
        keys: vec![],
        jwks_url: Some("https://idp.example/.well-known/jwks.json".into()),
        iss: Some("https://idp.example/".into()),
        ..issuer_input("idp", vec![ec_public_jwk("k4")])
    };
    assert!(matches!(
        issuer_rule(store.add_issuer(&app, jwks_without_aud, "test", NOW).await.unwrap_err()),
        R::Invalid(why) if why.contains("audience")
    ));
    for i in 1..dropfix_server::issuers::MAX_ISSUERS {
        let input = issuer_input(&format!("n{i}"), vec![ec_public_jwk("k")]);
        store.add_issuer(&app, input, "test", NOW).await.unwrap();
    }
    let over = issuer_input("one-too-many", vec![ec_public_jwk("k")]);
    assert_eq!(
        issuer_rule(store.add_issuer(&app, over, "test", NOW).await.unwrap_err()),
        R::TooMany
    );
    assert_eq!(
        issuer_rule(
            store
                .remove_issuer(&app, "nobody", "test", NOW)
                .await
                .unwrap_err()
        ),
        R::NotFound
    );
    let ws = store
        .remove_issuer(&app, "backend", "test", NOW)
        .await
        .unwrap();
    assert!(ws.issuer("backend").is_none());
    assert_eq!(ws.issuers.len(), dropfix_server::issuers::MAX_ISSUERS - 1);
    // A workspace that does not exist.
    let missing = store
        .add_issuer(
            "app_missing",
            issuer_input("x", vec![ec_public_jwk("k")]),
            "test",
            NOW,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::WorkspaceNotFound),
        "{missing:?}"
    );
    // Both changes are audited.
    let actions: Vec<String> = store
        .audit_log(&app, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.iter().any(|a| a == "issuer.add"), "{actions:?}");
    assert!(actions.iter().any(|a| a == "issuer.remove"), "{actions:?}");
}

/// Every row of every table, as text: what a dump of the database shows.
async fn dump(env: &Env) -> String {
    match env {
        Env::Sqlite(dir) => {
            let conn =
                rusqlite::Connection::open(dir.path().join(dropfix_server::store::sqlite::DB_FILE))
                    .unwrap();
            let tables: Vec<String> = conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let mut out = String::new();
            for t in tables {
                let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
                let n = stmt.column_count();
                let mut rows = stmt.query([]).unwrap();
                while let Some(row) = rows.next().unwrap() {
                    for i in 0..n {
                        use rusqlite::types::ValueRef;
                        match row.get_ref(i).unwrap() {
                            ValueRef::Text(t) | ValueRef::Blob(t) => {
                                out.push_str(&String::from_utf8_lossy(t));
                            }
                            ValueRef::Integer(n) => out.push_str(&n.to_string()),
                            ValueRef::Real(f) => out.push_str(&f.to_string()),
                            ValueRef::Null => {}
                        }
                        out.push('|');
                    }
                    out.push('\n');
                }
            }
            out
        }
        Env::Postgres(_) => String::from_utf8(env.everything_stored().await).unwrap(),
    }
}

/// A workspace that verifies with a public key only: its last secret key retired, no row of a
/// dump holds the secret, its claims key or the sealed secret; and the issuer cannot be removed
/// then (the workspace would verify nothing).
async fn a_workspace_with_only_a_public_key_holds_no_secret(env: &Env) {
    let store = env.store().await;
    let k = named_workspace(&store, "public-key only").await;
    let app = k.workspace.app_id.clone();
    let sealed = env
        .key_rows()
        .await
        .into_iter()
        .find(|r| r.1 == app)
        .map(|r| r.2)
        .unwrap();
    // Without an issuer the last key stays.
    let refused = store
        .retire_key(&app, k.key_id, "test", NOW)
        .await
        .unwrap_err();
    assert_eq!(key_rule(refused), KeyRuleError::LastLiveKey);
    store
        .add_issuer(
            &app,
            issuer_input("backend", vec![ec_public_jwk("k1")]),
            "test",
            NOW,
        )
        .await
        .unwrap();
    let ws = store.retire_key(&app, k.key_id, "test", NOW).await.unwrap();
    assert!(ws.keys.is_empty());
    let dump = dump(env).await;
    assert!(dump.contains("k1"), "the dump misses the issuer: {dump}");
    for material in [
        k.secret.expose_secret(),
        k.secret.expose_claims_key(),
        sealed.as_str(),
        // The sealed value's ciphertext part alone.
        sealed.rsplit(':').next().unwrap(),
    ] {
        assert!(
            !dump.contains(material),
            "the dump holds symmetric key material"
        );
    }
    assert!(!dump.contains("dfseal1:"), "a sealed secret is left");
    let last = store
        .remove_issuer(&app, "backend", "test", NOW)
        .await
        .unwrap_err();
    assert_eq!(issuer_rule(last), workspace::IssuerRuleError::LastVerifier);
    // With a key again, it may go.
    store
        .create_key(&app, "again", None, "test", NOW)
        .await
        .unwrap();
    store
        .remove_issuer(&app, "backend", "test", NOW)
        .await
        .unwrap();
}
