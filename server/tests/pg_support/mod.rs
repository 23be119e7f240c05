//! PostgreSQL for the integration tests: each test gets a database of its own (so tests and
//! their NOTIFY channels stay apart), dropped when the test ends.
//!
//! The server is found through `DROPFIX_TEST_DATABASE_URL` (a role allowed to CREATE DATABASE),
//! else the role `scripts/postgres.sh` creates on 127.0.0.1:5432. When neither answers, the
//! PostgreSQL tests FAIL and say how to get one: they never pass silently. Only
//! `DROPFIX_SKIP_POSTGRES_TESTS=1`, for a local run, skips them (no script sets it).
//!
//! `DROPFIX_TEST_POOLER_URL` names a transaction-mode pooler in front of the same server
//! (`scripts/pgbouncer.sh`): `server/tests/pg_pooler.rs` needs it, and with
//! `DROPFIX_TEST_STORES_VIA_POOLER=1` every store a test opens on its database
//! ([`TestDb::store_url`]) goes through it, while the test's own look at the data
//! ([`TestDb::client`]) and the database's creation and removal stay direct.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

/// The explicit local opt-out.
pub const SKIP_ENV: &str = "DROPFIX_SKIP_POSTGRES_TESTS";
/// Where the tests look for PostgreSQL.
pub const URL_ENV: &str = "DROPFIX_TEST_DATABASE_URL";
/// What `scripts/postgres.sh` sets up on the machine's own cluster.
pub const DEFAULT_URL: &str =
    "postgres://dropfix_test:dropfix_test_password@127.0.0.1:5432/postgres";

/// A transaction-mode pooler in front of the test server (`scripts/pgbouncer.sh`).
pub const POOLER_ENV: &str = "DROPFIX_TEST_POOLER_URL";
/// `1`: the stores of every test go through [`POOLER_ENV`]'s pooler.
pub const VIA_POOLER_ENV: &str = "DROPFIX_TEST_STORES_VIA_POOLER";

/// The pooler's URL; panics with instructions when there is none (its tests never pass
/// silently).
pub fn pooler_url() -> String {
    std::env::var(POOLER_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "no transaction-mode pooler: run `export {POOLER_ENV}=\"$(scripts/pgbouncer.sh \
                 start \"$(scripts/postgres.sh)\")\"` first (scripts/test.sh does this; \
                 `scripts/pgbouncer.sh stop` ends it), or set {SKIP_ENV}=1 on a local run"
            )
        })
}

/// Whether the PostgreSQL tests are skipped on purpose (prints why).
pub fn skipped() -> bool {
    let skip = std::env::var(SKIP_ENV).is_ok_and(|v| v == "1");
    if skip {
        eprintln!("{SKIP_ENV}=1: skipping a PostgreSQL test");
    }
    skip
}

/// The URL of the server's maintenance database (where CREATE DATABASE runs).
pub fn server_url() -> String {
    std::env::var(URL_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_string())
}

/// `url` with its database name replaced by `db` (URL form only, which is what the scripts and
/// CI pass).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn redacted(url: &str) -> String {
    // user:password@ -> user:***@
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// A connection as the store makes it (the URL's sslmode and sslrootcert honoured, so the
/// suite also runs against a server that requires TLS).
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (cfg, tls) = dropfix_server::store::pg_tls::config(url).map_err(|e| e.to_string())?;
    let (client, conn) =
        cfg.connect(tls)
            .await
            .map_err(|e| match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            })?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A database that exists for one test and is dropped (connections and all) with this value.
#[derive(Debug)]
pub struct TestDb {
    /// A direct URL of this database.
    pub url: String,
    /// The URL stores under test use: [`TestDb::url`], or the same database through the
    /// pooler when [`VIA_POOLER_ENV`] is `1`.
    pub store_url: String,
    pub name: String,
    server: String,
}

impl TestDb {
    /// Creates an empty database; `None` only when the tests are skipped on purpose. Panics
    /// with instructions when PostgreSQL cannot be reached.
    pub async fn create() -> Option<TestDb> {
        if skipped() {
            return None;
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let server = server_url();
        let client = connect(&server).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {} ({e}). The PostgreSQL tests need one: run \
                 `export {URL_ENV}=\"$(scripts/postgres.sh)\"` first (scripts/test.sh does this), \
                 or set {URL_ENV} to a role with CREATEDB. To skip these tests on a local run \
                 only, set {SKIP_ENV}=1.",
                redacted(&server)
            )
        });
        let name = format!(
            "dropfix_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} failed: {e}"));
        let via_pooler = std::env::var(VIA_POOLER_ENV).is_ok_and(|v| v == "1");
        Some(TestDb {
            url: with_database(&server, &name),
            store_url: with_database(
                &if via_pooler {
                    pooler_url()
                } else {
                    server.clone()
                },
                &name,
            ),
            name,
            server,
        })
    }

    /// A plain connection to this database (to look at or tamper with what the store wrote).
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url)
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime, so the async work gets a thread of its own.
        let (server, name) = (self.server.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(c) = connect(&server).await {
                    // FORCE: the store's pool and listener may still be connected.
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            });
        });
        let _ = dropped.join();
    }
}

#[test]
fn database_names_replace_only_the_path() {
    assert_eq!(
        with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
        "postgres://u:p@h:5432/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    assert_eq!(
        redacted("postgres://u:secret@h/db"),
        "postgres://u:***@h/db"
    );
}
