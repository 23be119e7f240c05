//! `migrate-to-postgres` as an operator runs it: it refuses a data dir a server is still serving
//! from (what that server acknowledged after the copy would be lost), it says a target that
//! holds data is not empty before it needs the keys that data is sealed with, and a failed copy
//! leaves the target as it was (no empty tables behind).
//!
//! Needs PostgreSQL (see `support::pg`).

mod support;

use dropfix_core::StrictMode;
use serde_json::json;
use support::pg::TestDb;
use support::{block_on, new_workspace, now, run_cli, start_binary, with_store};

/// The first column of `sql`'s rows, as text.
async fn names(db: &TestDb, sql: &str) -> Vec<String> {
    db.client()
        .await
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn tables(db: &TestDb) -> Vec<String> {
    names(
        db,
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1",
    )
    .await
}

/// The functions in the test database's schema (the identify batch's, once migrated).
async fn functions(db: &TestDb) -> Vec<String> {
    names(
        db,
        "SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = current_schema() ORDER BY 1",
    )
    .await
}

fn migrate(dir: &std::path::Path, db: &TestDb) -> (bool, String) {
    run_cli(dir, &["migrate-to-postgres", "--database-url", &db.url], "")
}

#[test]
fn a_served_data_dir_is_refused_until_its_server_stops() {
    let Some(db) = block_on(TestDb::create()) else {
        return;
    };
    let (mut server, dir, app, _secret) = start_binary(&[], &[]);
    let call = json!({"app_id": app, "user_id": "u1"}).to_string();
    assert_eq!(server.identify(call.as_bytes()).status, 202);

    let (ok, out) = migrate(dir.path(), &db);
    assert!(!ok, "copied from a live server: {out}");
    assert!(out.contains("is serving from"), "{out}");
    assert!(block_on(tables(&db)).is_empty(), "the target was touched");

    server.stop();
    let (ok, out) = migrate(dir.path(), &db);
    assert!(ok, "{out}");
    assert!(out.contains("users: 1 rows copied"), "{out}");
}

#[test]
fn a_target_holding_data_is_named_so_before_its_keys_are_needed() {
    let Some(db) = block_on(TestDb::create()) else {
        return;
    };
    // Data sealed under master keys the migration does not have.
    let other = support::data_dir();
    let ring = support::keyring(other.path());
    support::with_store_on(&support::postgres(&db.url), &ring, async |store| {
        let new = new_workspace("theirs", StrictMode::Off, &[]);
        store.create_workspace(&new, "test", now()).await.unwrap();
    });
    let dir = support::data_dir();
    with_store(dir.path(), async |store| {
        let new = new_workspace("ours", StrictMode::Off, &[]);
        store.create_workspace(&new, "test", now()).await.unwrap();
    });
    let before = block_on(tables(&db));
    let (ok, out) = migrate(dir.path(), &db);
    assert!(!ok, "{out}");
    assert!(out.contains("already holds"), "{out}");
    assert!(!out.contains("master key"), "{out}");
    assert_eq!(block_on(tables(&db)), before, "nothing was dropped");
}

#[test]
fn a_failed_copy_leaves_no_table_behind() {
    let Some(db) = block_on(TestDb::create()) else {
        return;
    };
    let dir = support::data_dir();
    with_store(dir.path(), async |store| {
        let new = new_workspace("ours", StrictMode::Off, &[]);
        store.create_workspace(&new, "test", now()).await.unwrap();
    });
    // A row PostgreSQL cannot store (as an earlier version could write it): the copy fails
    // without --skip-unstorable.
    let sqlite = dropfix_server::store::sqlite::open_file(dir.path()).unwrap();
    sqlite
        .execute(
            "INSERT INTO users (app_id, user_id, verified, name, first_seen, last_seen)
             SELECT app_id, 'bad', 0, 'a' || char(0), 1, 1 FROM workspaces",
            [],
        )
        .unwrap();
    drop(sqlite);
    let (ok, out) = migrate(dir.path(), &db);
    assert!(!ok, "{out}");
    assert!(
        out.contains("tables it created in the target were dropped"),
        "{out}"
    );
    assert_eq!(block_on(tables(&db)), Vec::<String>::new());
    assert_eq!(block_on(functions(&db)), Vec::<String>::new());
}
