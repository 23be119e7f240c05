//! What a `serve` does before it serves (the real binary):
//!
//! - it binds its addresses before it writes anything: a start on a port in use stores and
//!   prints no admin token, creates no data dir, key file or workspace;
//! - a data dir that other users can read or write is refused before anything is created in it
//!   (the master key file included), by `serve` and the other commands alike;
//! - on PostgreSQL a first start creates no development workspace, so prints no secret, unless
//!   asked with `--create-dev-workspace`, and logs how to create the first workspace.
//!
//! The PostgreSQL test needs PostgreSQL (see `support::pg`).

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use support::pg::TestDb;
use support::{ADMIN_TOKEN, Options, Server, cli_output, data_dir, with_store};

/// Runs `dropfix-server args` with `env` to its end (killed if it serves instead).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    cli_output(args, env, "")
}

/// What is in `dir`: names, recursively (empty when it does not exist).
fn listing(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let path = e.unwrap().path();
            out.insert(path.display().to_string());
            out.extend(listing(&path));
        }
    }
    out
}

/// A `serve` that failed: non-zero exit, no secret printed; its stderr.
fn refused(out: &Output) -> String {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(!out.status.success(), "it served: {stdout}{stderr}");
    for secret in [
        "admin token",
        "dfadm_",
        "dev workspace",
        "dfsk_",
        "listening on",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{stdout}{stderr}"
        );
    }
    stderr
}

#[test]
fn a_serve_that_cannot_bind_writes_nothing_and_prints_no_token() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    let parent = data_dir();
    // A data dir that does not exist yet, and a store whose start never stored an admin token
    // (the flag gives it without storing it): neither may gain one.
    let fresh = parent.path().join("fresh");
    let existing = parent.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    support::owner_only(&existing);
    let first = Server::start(&existing, &Options::default());
    drop(first);
    let before = listing(parent.path());
    for (listen, metrics) in [(busy.as_str(), None), ("127.0.0.1:0", Some(busy.as_str()))] {
        for dir in [&fresh, &existing] {
            let mut args = vec!["serve", "--listen", listen, "--data-dir"];
            args.push(dir.to_str().unwrap());
            args.extend(metrics.map(|m| ["--metrics-listen", m]).iter().flatten());
            let err = refused(&run(&args, &[]));
            assert!(
                err.contains(&busy) && err.contains("nothing was written"),
                "{err}"
            );
        }
    }
    assert_eq!(listing(parent.path()), before, "files were written");
    assert!(!fresh.exists());
    let token = with_store(&existing, async |s| {
        s.meta_get("admin_token_sha256").await.unwrap()
    });
    assert_eq!(token, None, "an admin token was stored");
}

#[cfg(unix)]
#[test]
fn a_data_dir_open_to_other_users_is_refused_before_anything_is_created_in_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let parent = tempfile::tempdir().unwrap();
    for mode in [0o777, 0o770, 0o755, 0o707] {
        let dir = parent.path().join(format!("data-{mode:o}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let d = dir.to_str().unwrap();
        let serve = ["serve", "--listen", "127.0.0.1:0", "--data-dir", d];
        let err = refused(&run(&serve, &[]));
        assert!(err.contains(&format!("chmod 700 {d}")), "{mode:o}: {err}");
        for command in [
            &["workspace", "list", "--data-dir", d][..],
            &["master-key", "status", "--data-dir", d],
            &["master-key", "add", "--data-dir", d],
        ] {
            let out = run(command, &[]);
            assert!(!out.status.success(), "{command:?} on mode {mode:o}");
        }
        assert_eq!(listing(&dir), BTreeSet::new(), "mode {mode:o}: written in");
    }
}

#[test]
fn a_first_start_on_postgres_creates_no_development_workspace_unless_asked() {
    let Some(db) = support::block_on(TestDb::create()) else {
        return;
    };
    let keys =
        String::from_utf8(run(&["master-key", "generate", "--id", "mk1"], &[]).stdout).unwrap();
    let env = [("DROPFIX_MASTER_KEYS", keys.trim())];
    let start = |flags: &[&str]| {
        let dir = data_dir();
        let mut args = vec!["--database-url", db.url.as_str()];
        args.extend_from_slice(flags);
        let server = Server::start(
            dir.path(),
            &Options {
                env: vec![env[0], ("DROPFIX_LOG", "info"), ("NO_COLOR", "")],
                args,
            },
        );
        (server, dir)
    };
    let workspaces = || {
        let out = run(
            &["workspace", "list", "--json", "--database-url", &db.url],
            &env,
        );
        assert!(out.status.success(), "{out:?}");
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        list["workspaces"].as_array().unwrap().len()
    };
    let (plain, _dir) = start(&[]);
    assert_eq!(plain.dev_workspace, None);
    // The log line comes on stderr, read apart from the stdout line the start waited for.
    let said = support::eventually("the log line saying how to create a workspace", || {
        let said = plain.output();
        said.iter()
            .any(|l| {
                l.stderr
                    && l.text.contains("holds no workspace yet")
                    && l.text.contains("dropfix-server workspace create --name")
                    && l.text.contains("--create-dev-workspace")
            })
            .then_some(said)
    });
    assert!(
        said.iter()
            .all(|l| !l.text.contains("dfsk_") && !l.text.contains("dev workspace")),
        "{said:?}"
    );
    assert_eq!(workspaces(), 0);
    // Asked: one instance creates it (and prints it once); another, asked too, finds it made.
    let (asked, _dir) = start(&["--create-dev-workspace"]);
    let (app, secret) = asked.dev_workspace.clone().expect("the dev workspace");
    assert!(app.starts_with("app_") && secret.starts_with("dfsk_"));
    let (again, _dir) = start(&["--create-dev-workspace"]);
    assert_eq!(again.dev_workspace, None);
    assert_eq!(workspaces(), 1);
    // Every instance serves it.
    for s in [&plain, &asked, &again] {
        let r = s.request(
            "GET",
            &format!("/v1/admin/workspaces/{app}"),
            &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
}
