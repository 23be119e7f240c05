//! "`backup` copies the embedded store while it serves; `restore` brings it back."
//!
//! Client threads send signed identify calls to the real server binary as fast as they can; once
//! a few hundred are acknowledged, `dropfix-server backup` runs against the serving data dir
//! while the calls go on. The backup is restored into a fresh data dir (with the master key file
//! copied apart, as the docs say) and served: every call acknowledged before the backup began is
//! there, verified, and the workspace's secret verifies new calls. Also: a backup never
//! overwrites a file, a restore never replaces a store, and a restore with the wrong master keys
//! leaves the data dir as it was.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use dropfix_core::{SecretKey, seed};
use serde_json::json;
use support::{Options, Server, build_request, server_binary, try_raw_request};

const WORKERS: usize = 4;

fn now() -> i64 {
    dropfix_tests::now()
}

fn cli(args: &[&str], data_dir: &Path) -> (bool, String) {
    let out = Command::new(server_binary())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DROPFIX_MASTER_KEYS")
        .env_remove("DROPFIX_DATABASE_URL")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn signed_call(server: &Server, app: &str, secret: &SecretKey, user: &str) -> Option<u16> {
    let body = json!({"app_id": app, "user_id": user,
                      "signature": seed::sign(secret, user), "signed_at": now()})
    .to_string();
    let req = build_request(
        "POST",
        "/v1/identify",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    try_raw_request(server.addr, &req).ok().map(|r| r.status)
}

#[test]
fn a_backup_taken_under_load_restores_every_call_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let server = Arc::new(Server::start(&data, &Options::default()));
    let (app, secret) = server.dev_workspace.clone().expect("dev workspace");
    let secret = SecretKey::new(secret);

    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (server, app, secret) = (Arc::clone(&server), app.clone(), secret.clone());
            let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let user = format!("w{w}-u{i}");
                    if signed_call(&server, &app, &secret, &user) == Some(200) {
                        acked.lock().unwrap().insert(user);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    support::eventually("300 acknowledged calls", || {
        (acked.lock().unwrap().len() >= 300).then_some(())
    });

    // Everything acknowledged from here back must be in the backup.
    let before: BTreeSet<String> = acked.lock().unwrap().clone();
    let file = dir.path().join("store.backup");
    let (ok, out) = cli(&["backup", "--to", file.to_str().unwrap()], &data);
    assert!(ok, "{out}");
    assert!(out.contains("master keys are not in it"), "{out}");
    let during = acked.lock().unwrap().len();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(
        during > before.len(),
        "the load went on while the backup ran ({} -> {during})",
        before.len()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the backup holds sealed secrets: owner-only");
    }
    // A backup never overwrites.
    let (ok, out) = cli(&["backup", "--to", file.to_str().unwrap()], &data);
    assert!(!ok && out.contains("exists"), "{out}");

    // Restore into a fresh data dir, the master key file put back first.
    let restored = dir.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    support::owner_only(&restored);
    std::fs::copy(data.join("master.keys"), restored.join("master.keys")).unwrap();
    let (ok, out) = cli(&["restore", "--from", file.to_str().unwrap()], &restored);
    assert!(ok, "{out}");
    assert!(out.contains("every secret opens"), "{out}");
    // Never over a store.
    let (ok, out) = cli(&["restore", "--from", file.to_str().unwrap()], &restored);
    assert!(!ok && out.contains("already holds a store"), "{out}");

    let again = Server::start(&restored, &Options::default());
    assert!(
        again.dev_workspace.is_none(),
        "the restored workspace, not a new one"
    );
    let stored: BTreeSet<String> = again
        .users(&app)
        .iter()
        .filter(|u| u["verified"] == json!(true))
        .map(|u| u["user_id"].as_str().unwrap().to_string())
        .collect();
    let missing: Vec<_> = before.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged calls missing: {missing:?}",
        missing.len()
    );
    // The restored secret verifies new calls.
    assert_eq!(
        signed_call(&again, &app, &secret, "after-restore"),
        Some(200)
    );
}

#[test]
fn a_restore_with_other_master_keys_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    {
        let _server = Server::start(&data, &Options::default());
    }
    let file = dir.path().join("store.backup");
    let (ok, out) = cli(&["backup", "--to", file.to_str().unwrap()], &data);
    assert!(ok, "{out}");

    // Without any master keys: restored, and told to put the key file back.
    let bare = dir.path().join("bare");
    let (ok, out) = cli(&["restore", "--from", file.to_str().unwrap()], &bare);
    assert!(ok, "{out}");
    assert!(out.contains("no master keys yet"), "{out}");
    assert!(!bare.join("master.keys").exists(), "no key file made up");

    // With another data dir's keys: refused, and the data dir keeps no store.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    {
        let _server = Server::start(&elsewhere, &Options::default());
    }
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    support::owner_only(&other);
    std::fs::copy(elsewhere.join("master.keys"), other.join("master.keys")).unwrap();
    let (ok, out) = cli(&["restore", "--from", file.to_str().unwrap()], &other);
    assert!(!ok, "{out}");
    assert!(out.contains("do not open"), "{out}");
    assert!(!other.join("dropfix.sqlite3").exists(), "{out}");

    // A journal left beside a moved-away database would be replayed onto the restored one.
    let stale = dir.path().join("stale");
    std::fs::create_dir(&stale).unwrap();
    support::owner_only(&stale);
    std::fs::write(stale.join("dropfix.sqlite3-wal"), b"old").unwrap();
    let (ok, out) = cli(&["restore", "--from", file.to_str().unwrap()], &stale);
    assert!(!ok && out.contains("-wal"), "{out}");
    assert!(!stale.join("dropfix.sqlite3").exists());

    // Not a backup at all.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, "not a database").unwrap();
    let (ok, out) = cli(
        &["restore", "--from", junk.to_str().unwrap()],
        &dir.path().join("junk-target"),
    );
    assert!(!ok, "{out}");
}
