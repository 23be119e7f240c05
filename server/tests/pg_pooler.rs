//! PostgreSQL behind a transaction-mode pooler (PgBouncer `pool_mode = transaction`, started by
//! `scripts/pgbouncer.sh` in the test command; `DROPFIX_TEST_POOLER_URL` names it):
//!
//! - with nothing but the pooler's URL, instances find out that notifications do not come
//!   through it, and a change made by one still reaches another within 1.5 s (the 1 s poll);
//! - with `--database-direct-url` the listener hears changes through its own session;
//! - a client that does name statements there gets 26000, and the message the store makes of it
//!   names `pool_mode` and what to do.
//!
//! The whole store behaviour suite's PostgreSQL half, and `kill -9` of a verifier under load,
//! also run through the pooler in the test command (`DROPFIX_TEST_STORES_VIA_POOLER=1`).

mod support;

use std::time::{Duration, Instant};

use dropfix_core::StrictMode;
use dropfix_server::metrics::Sample;
use dropfix_server::sealing::{Keyring, MasterKey};
use dropfix_server::store::postgres::PgOptions;
use dropfix_server::store::{Backend, Hooks, Store, StoreError};
use dropfix_server::workspace::{Registry, WorkspacePatch};
use support::pg::{TestDb, pooler_url, with_database};

const NOW: i64 = 1_700_000_000;

fn ring() -> Keyring {
    static RING: std::sync::OnceLock<Keyring> = std::sync::OnceLock::new();
    RING.get_or_init(|| Keyring::new(vec![MasterKey::generate("mk1").unwrap()]).unwrap())
        .clone()
}

/// The test database through the pooler.
fn pooled(db: &TestDb) -> String {
    with_database(&pooler_url(), &db.name)
}

async fn open(url: &str, direct: Option<&str>) -> (Store, std::sync::Arc<Registry>) {
    let hooks = Hooks::new(ring());
    let opts = PgOptions {
        pool_size: 4,
        direct_url: direct.map(str::to_owned),
        ..PgOptions::new(url)
    };
    let store = Store::open(&Backend::Postgres(opts), hooks.clone())
        .await
        .unwrap_or_else(|e| panic!("opening the store through the pooler failed: {e}"));
    (store, hooks.registry)
}

fn listening(store: &Store) -> Option<bool> {
    let mut sample = Sample::default();
    store.fill_sample(&mut sample);
    sample.listener_connected
}

/// Turns strict mode on through `a` and waits for `b_sees` to show it: how long it took.
async fn strict_change_reaches(
    a: &Store,
    b_sees: &Registry,
    app: &str,
    bound: Duration,
) -> Duration {
    let patch = WorkspacePatch {
        strict: Some(StrictMode::Enforce),
        ..Default::default()
    };
    a.update_workspace(app, &patch, "test", NOW).await.unwrap();
    let start = Instant::now();
    while b_sees.get(app).unwrap().strict != StrictMode::Enforce {
        assert!(
            start.elapsed() < bound,
            "the change took over {bound:?} to reach the other instance"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

async fn new_workspace(store: &Store) -> String {
    let settings = support::new_workspace("pooled", StrictMode::Off, &[]);
    store
        .create_workspace(&settings, "test", NOW)
        .await
        .unwrap()
        .workspace
        .app_id
}

#[tokio::test]
async fn without_a_direct_url_a_change_reaches_another_instance_within_1_5_s() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let url = pooled(&db);
    let (a, _) = open(&url, None).await;
    let app = new_workspace(&a).await;
    let (b, b_sees) = open(&url, None).await;
    // LISTEN through the pooler hears nothing: the instance knows, and says so (the log line)
    // instead of claiming a listener.
    assert_eq!(listening(&b), Some(false));
    assert_eq!(b_sees.get(&app).unwrap().strict, StrictMode::Off);
    let took = strict_change_reaches(&a, &b_sees, &app, Duration::from_millis(1500)).await;
    eprintln!("through the pooler, by the poll: {took:?}");
}

#[tokio::test]
async fn with_a_direct_url_the_listener_hears_changes() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let url = pooled(&db);
    let (a, _) = open(&url, None).await;
    let app = new_workspace(&a).await;
    let (b, b_sees) = open(&url, Some(&db.url)).await;
    assert_eq!(listening(&b), Some(true));
    let took = strict_change_reaches(&a, &b_sees, &app, Duration::from_millis(1500)).await;
    eprintln!("through the pooler, heard on the direct URL: {took:?}");
}

/// What a client that names statements meets behind a transaction pooler, and the message the
/// store makes of it: the pooler lends each statement outside a transaction to whichever server
/// connection is free, so a statement prepared on one is missing on the next.
#[tokio::test]
async fn a_named_statement_error_names_pool_mode_and_the_fix() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let url = pooled(&db);
    let (namer, holder) = (
        support::pg::connect(&url).await.unwrap(),
        support::pg::connect(&url).await.unwrap(),
    );
    let stmt = namer.prepare("SELECT 1").await.unwrap();
    // The server connection the statement was prepared on, held by another client's
    // transaction: the next statement of `namer` goes to another one.
    holder.batch_execute("BEGIN").await.unwrap();
    let err = namer.query(&stmt, &[]).await.unwrap_err();
    holder.batch_execute("COMMIT").await.unwrap();
    let message = StoreError::from(err).to_string();
    assert!(message.contains("(26000)"), "{message}");
    assert!(message.contains("pool_mode"), "{message}");
    assert!(message.contains("session"), "{message}");
}
