//! Secrets at rest and key changes that race, on the embedded store:
//! - no workspace secret appears anywhere in the SQLite files (main file, WAL, shared memory),
//!   and the master key file is owner-only;
//! - a database written before sealing has its secrets sealed when opened, and they verify;
//! - rolls and retirements made through two store handles at once (two processes, as two CLIs
//!   would) are serialized: no lost key, never two keys without an expiry, the newest secret
//!   never deleted.

mod support;

use std::path::Path;

use dropfix_core::StrictMode;
use dropfix_server::sealing::{self, Keyring};
use dropfix_server::store::Store;
use dropfix_server::workspace::{self, NewKey};
use support::{new_workspace, now, open_embedded};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A data dir the store makes on first use, in a temporary dir kept as long as the first value.
fn data_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    (parent, dir)
}

async fn create_workspace(store: &Store) -> NewKey {
    let settings = new_workspace("t", StrictMode::Off, &workspace::DEV_ORIGINS);
    store
        .create_workspace(&settings, "test", now())
        .await
        .unwrap()
}

/// Two handles on the store in `dir`, as two processes (two CLIs) hold them, and the app id of
/// a new workspace.
async fn two_handles(dir: &Path) -> (Store, Store, String) {
    let a = open_embedded(dir).await;
    let b = open_embedded(dir).await;
    let app = create_workspace(&a).await.workspace.app_id;
    (a, b, app)
}

#[test]
fn no_secret_in_any_byte_of_the_database_files() {
    let (_keep, dir) = data_dir();
    let secrets = rt().block_on(async {
        let store = open_embedded(&dir).await;
        let mut secrets = Vec::new();
        let first = create_workspace(&store).await;
        let app = first.workspace.app_id.clone();
        secrets.push(first.secret.expose_secret().to_string());
        let added = store
            .create_key(&app, "second", None, "test", now())
            .await
            .unwrap();
        secrets.push(added.secret.expose_secret().to_string());
        let rolled = store
            .roll_key(&app, None, 3600, "test", now())
            .await
            .unwrap();
        secrets.push(rolled.secret.expose_secret().to_string());
        // The secrets verify after a reload: they open again from what is stored.
        let loaded = store.workspaces().await.unwrap();
        let live: Vec<String> = loaded[0]
            .live_secrets(now())
            .0
            .iter()
            .map(|s| s.expose_secret().to_string())
            .collect();
        for s in &secrets {
            assert!(live.contains(s), "a stored secret no longer opens");
        }
        secrets
    });
    let mut scanned = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("dropfix.sqlite3") {
            continue;
        }
        // The store thread may still be closing and removing its -wal/-shm files.
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        scanned += bytes.len();
        for s in &secrets {
            let hex_part = s.trim_start_matches(dropfix_core::SECRET_PREFIX);
            for needle in [s.as_str(), hex_part, &hex_part[..16]] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{name} holds a secret (or part of one) in the clear"
                );
            }
        }
    }
    assert!(scanned > 0, "no database file was scanned");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(sealing::default_key_file(&dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the master key file is owner-only");
    }
}

#[test]
fn secrets_stored_in_the_clear_by_an_older_version_are_sealed_on_open() {
    let (_keep, dir) = data_dir();
    let app = rt().block_on(async {
        let store = open_embedded(&dir).await;
        create_workspace(&store).await.workspace.app_id
    });
    // What a pre-sealing version stored: the secret itself.
    let legacy = "dfsk_legacy_plaintext_secret_0123456789";
    {
        let conn = rusqlite::Connection::open(dir.join("dropfix.sqlite3")).unwrap();
        conn.execute("UPDATE keys SET secret = ?1", [legacy])
            .unwrap();
        // A pre-sealing version had not run the one-time upgrade.
        conn.execute(
            "DELETE FROM meta WHERE key = ?1",
            [dropfix_server::store::SECRETS_BOUND_META],
        )
        .unwrap();
    }
    rt().block_on(async {
        let store = open_embedded(&dir).await;
        let ws = store.workspaces().await.unwrap();
        assert_eq!(ws[0].app_id, app);
        assert_eq!(ws[0].live_secrets(now()).0[0].expose_secret(), legacy);
    });
    let conn = rusqlite::Connection::open(dir.join("dropfix.sqlite3")).unwrap();
    let stored: String = conn
        .query_row("SELECT secret FROM keys", [], |r| r.get(0))
        .unwrap();
    assert!(stored.starts_with("dfseal1:"), "{stored}");
    assert!(!stored.contains(legacy));
}

#[test]
fn a_rewrap_moves_every_secret_to_the_new_master_key() {
    let (_keep, dir) = data_dir();
    let key_file = sealing::default_key_file(&dir);
    let secret = rt().block_on(async {
        let store = open_embedded(&dir).await;
        create_workspace(&store)
            .await
            .secret
            .expose_secret()
            .to_string()
    });
    let new_id = Keyring::add_new_key_to_file(&key_file).unwrap();
    rt().block_on(async {
        let store = open_embedded(&dir).await;
        assert_eq!(store.rewrap_secrets().await.unwrap(), 1);
        let counts = store.seal_counts().await.unwrap();
        assert_eq!(counts.by_key.keys().collect::<Vec<_>>(), vec![&new_id]);
    });
    let old = Keyring::load_file(&key_file)
        .unwrap()
        .key_ids()
        .find(|id| *id != new_id)
        .unwrap()
        .to_string();
    Keyring::remove_key_from_file(&key_file, &old).unwrap();
    rt().block_on(async {
        let store = open_embedded(&dir).await;
        let ws = store.workspaces().await.unwrap();
        assert_eq!(ws[0].live_secrets(now()).0[0].expose_secret(), secret);
    });
}

#[test]
fn concurrent_rolls_from_two_processes_are_serialized() {
    let (_keep, dir) = data_dir();
    rt().block_on(async {
        let (a, b, app) = two_handles(&dir).await;
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                store.roll_key(&app, None, 3600, "test", now()).await
            }));
        }
        let mut new_ids = Vec::new();
        for t in tasks {
            new_ids.push(t.await.unwrap().unwrap().key_id);
        }
        let ws = a.workspaces().await.unwrap().remove(0);
        let live: Vec<_> = ws.live_keys(now()).collect();
        assert_eq!(live.len(), 9, "the first key and eight rolled-in keys");
        let without_expiry: Vec<_> = live.iter().filter(|k| k.expires_at.is_none()).collect();
        assert_eq!(
            without_expiry.len(),
            1,
            "only the newest key has no expiry: {:?}",
            ws.summary().keys
        );
        assert_eq!(without_expiry[0].id, *new_ids.iter().max().unwrap());
        // A tenth live key fits, an eleventh does not.
        a.create_key(&app, "tenth", None, "test", now())
            .await
            .unwrap();
        let err = b
            .create_key(&app, "eleventh", None, "test", now())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("at most 10"), "{err}");
    });
}

#[test]
fn retire_old_racing_a_roll_never_deletes_the_new_secret() {
    for _ in 0..5 {
        let (_keep, dir) = data_dir();
        rt().block_on(async {
            let (a, b, app) = two_handles(&dir).await;
            let (app1, app2) = (app.clone(), app.clone());
            let roll = tokio::spawn(async move { a.roll_key(&app1, None, 3600, "t", now()).await });
            let retire = tokio::spawn(async move { b.retire_old_keys(&app2, "t", now()).await });
            let rolled = roll.await.unwrap().unwrap();
            retire.await.unwrap().unwrap();
            let store = open_embedded(&dir).await;
            let ws = store.workspaces().await.unwrap().remove(0);
            assert!(
                ws.key(rolled.key_id).is_some_and(|k| k.live(now())),
                "the key a roll just handed out was deleted"
            );
        });
    }
}
