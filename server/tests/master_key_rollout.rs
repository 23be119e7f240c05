//! A master key rollout that cannot leave hosts with different keys under one id:
//!
//! - `master-key add --from-stdin` adds the key `master-key generate` printed (checked as a key
//!   file line is, never echoed); the same key again changes nothing, another key under its id
//!   is refused;
//! - `master-key status`, `/healthz` and `/metrics` show each key's fingerprint and the active
//!   one, and agree;
//! - on PostgreSQL, three instances (the real binary, each with a key file of its own, as on
//!   three hosts) go through docs/SEALING.md's procedure as written: generate once, distribute,
//!   verify, activate, rewrap, drop; `activate` and `rewrap` refuse while a live instance lacks
//!   the key or holds another one under its id, naming it; identify calls succeed on every
//!   instance at every step.
//!
//! The PostgreSQL test needs PostgreSQL (see `support::pg`).

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use dropfix_core::SecretKey;
use dropfix_server::Config;
use dropfix_server::sealing::Keyring;
use serde_json::{Value as Json, json};
use support::pg::TestDb;
use support::{
    ADMIN_TOKEN, Options, Server, Verifier, data_dir, eventually, owner_only, signed_call,
};

/// What a command did: whether it succeeded, its stdout, its stderr.
struct Ran {
    ok: bool,
    out: String,
    err: String,
}

impl Ran {
    fn all(&self) -> String {
        format!("{}{}", self.out, self.err)
    }
}

/// Runs `dropfix-server args` with `env` and `stdin` ([`support::cli_output`]).
fn dropfix(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Ran {
    let out = support::cli_output(args, env, stdin);
    Ran {
        ok: out.status.success(),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// [`dropfix`] that must succeed; its stdout.
fn ok(args: &[&str], env: &[(&str, &str)], stdin: &str) -> String {
    let ran = dropfix(args, env, stdin);
    assert!(ran.ok, "{args:?} failed: {}", ran.all());
    ran.out
}

/// A new key entry (`id:base64`), as `master-key generate` prints it.
fn generate(id: &str) -> String {
    ok(&["master-key", "generate", "--id", id], &[], "")
        .trim()
        .to_string()
}

/// The base64 part of an entry: what must never be printed.
fn key_part(entry: &str) -> &str {
    entry.split_once(':').unwrap().1
}

/// `master-key status --json` with `store` flags.
fn status(store: &[&str]) -> Json {
    let mut args = vec!["master-key", "status", "--json"];
    args.extend_from_slice(store);
    serde_json::from_str(&ok(&args, &[], "")).unwrap()
}

#[test]
fn a_key_added_from_stdin_shows_the_same_fingerprint_in_status_healthz_and_metrics() {
    let dir = data_dir();
    let d = dir.path().to_str().unwrap();
    let store = ["--data-dir", d];
    let key_file = dir.path().join("master.keys");
    // The first command creates the key file (mk1, active).
    let before = status(&store);
    assert_eq!(before["active"], "mk1");
    let mk1 = before["fingerprints"]["mk1"].as_str().unwrap().to_string();
    assert_eq!(mk1.len(), 16);

    let entry = generate("mk2");
    let add = [
        "master-key",
        "add",
        "--from-stdin",
        "--no-activate",
        "--data-dir",
        d,
    ];
    let ran = dropfix(&add, &[], &format!("{entry}\n"));
    assert!(ran.ok, "{}", ran.all());
    assert!(
        ran.out.contains("added master key mk2 (fingerprint "),
        "{}",
        ran.out
    );
    assert!(ran.out.contains("not active yet"), "{}", ran.out);
    assert!(!ran.all().contains(key_part(&entry)), "the key was echoed");
    let after = status(&store);
    assert_eq!(after["active"], "mk1", "--no-activate keeps mk1 active");
    assert_eq!(after["keys"], json!(["mk1", "mk2"]));
    let mk2 = after["fingerprints"]["mk2"].as_str().unwrap().to_string();
    assert!(ran.out.contains(&mk2), "{}", ran.out);
    assert_eq!(after["fingerprints"]["mk1"], mk1.as_str());

    // The same key again: nothing changes, and it says so.
    let file_before = std::fs::read(&key_file).unwrap();
    let ran = dropfix(&add, &[], &entry);
    assert!(ran.ok, "{}", ran.all());
    assert!(ran.out.contains("already in") && ran.out.contains("nothing changed"));
    assert_eq!(std::fs::read(&key_file).unwrap(), file_before);
    // Another key under the id mk2 (generated on another host: the rollout's old trap), a key
    // of the wrong length, two entries, nothing: refused, the file untouched, no key printed.
    let other = generate("mk2");
    let short = format!("mk3:{}", &key_part(&generate("mk3"))[..40]);
    let two = format!("{}\n{}", generate("mk4"), generate("mk5"));
    for (input, expected) in [
        (other.as_str(), format!("fingerprint {mk2}")),
        (short.as_str(), "standard input line 1: key `mk3` is".into()),
        (two.as_str(), "more than one key entry".into()),
        ("", "holds no key entry".into()),
    ] {
        let ran = dropfix(&add, &[], input);
        assert!(!ran.ok, "{input:?} was accepted: {}", ran.all());
        assert!(ran.err.contains(&expected), "{input:?}: {}", ran.err);
        for line in input.lines() {
            assert!(!ran.all().contains(key_part(line)), "{input:?} echoed");
        }
        assert_eq!(std::fs::read(&key_file).unwrap(), file_before);
    }
    // --from-stdin takes its id from the entry.
    let with_id = [
        "master-key",
        "add",
        "--from-stdin",
        "--id",
        "x",
        "--data-dir",
        d,
    ];
    assert!(!dropfix(&with_id, &[], &entry).ok);

    // The text status: each key's fingerprint, the active one marked.
    let text = ok(&["master-key", "status", "--data-dir", d], &[], "");
    assert!(
        text.contains(&format!("fingerprint {mk1} (active)")),
        "{text}"
    );
    assert!(text.contains(&format!("fingerprint {mk2}\n")), "{text}");
    assert!(
        !text.contains("instances"),
        "the embedded store tracks none: {text}"
    );

    // A verifier on the data dir shows the same, and follows the key file.
    let server = Verifier::embedded(dir.path(), Config::default());
    let shown = |active: &str| {
        let health = server.request("GET", "/healthz", &[], b"");
        assert_eq!(health.status, 200, "{}", health.text());
        assert_eq!(
            health.json(),
            json!({"status": "ok", "master_keys": {"active": active,
                   "fingerprints": {"mk1": mk1, "mk2": mk2}}})
        );
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let metrics = server
            .request("GET", "/metrics", &[("Authorization", &auth)], b"")
            .text();
        for (id, fp) in [("mk1", &mk1), ("mk2", &mk2)] {
            let series = format!(
                "dropfix_master_key_info{{key_id=\"{id}\",fingerprint=\"{fp}\",active=\"{}\"}} 1",
                id == active
            );
            assert!(metrics.contains(&series), "{series} not in\n{metrics}");
        }
        assert_eq!(metrics.matches("dropfix_master_key_info{").count(), 2);
    };
    shown("mk1");
    ok(&["master-key", "activate", "mk2", "--data-dir", d], &[], "");
    shown("mk2");
}

// ---------------------------------------------------------------------------------------------
// Three instances on PostgreSQL

/// One host: its own key file, and an instance serving on it.
struct Host {
    name: &'static str,
    key_file: PathBuf,
    server: Server,
    _dir: tempfile::TempDir,
}

impl Host {
    /// The store flags of a command run on this host.
    fn store<'a>(&'a self, url: &'a str) -> [&'a str; 4] {
        [
            "--database-url",
            url,
            "--master-key-file",
            self.key_file.to_str().unwrap(),
        ]
    }

    /// `dropfix-server master-key <args> <this host's store flags>`.
    fn master_key(&self, url: &str, args: &[&str], stdin: &str) -> Ran {
        let mut all = vec!["master-key"];
        all.extend_from_slice(args);
        all.extend_from_slice(&self.store(url));
        dropfix(&all, &[], stdin)
    }

    fn health(&self) -> Json {
        let r = self.server.request("GET", "/healthz", &[], b"");
        assert_eq!(r.status, 200, "{}: {}", self.name, r.text());
        r.json()
    }
}

/// A key file holding `entries` (the first active), owner-only, as an operator writes one with
/// `(umask 077; dropfix-server master-key generate --id mk1 > FILE)`.
fn write_key_file(path: &Path, entries: &[&str]) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).unwrap();
    file.write_all(format!("{}\n", entries.join("\n")).as_bytes())
        .unwrap();
}

/// Every instance answers an identify call signed with the workspace's secret: no instance is
/// left without a key it needs (which would answer 503 config_stale).
fn every_instance_verifies(hosts: &[Host], app: &str, secret: &SecretKey, step: &str) {
    for h in hosts {
        let user = format!("{step}-{}", h.name);
        let r = h.server.request(
            "POST",
            "/v1/identify",
            &[("Content-Type", "application/json")],
            signed_call(app, secret, &user).to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{step}, {}: {}", h.name, r.text());
    }
}

/// Waits until `host`'s `master-key status` lists every instance of `hosts`, each line as
/// `expected` says of that host (the text it prints about an instance after its keys); returns
/// that status.
fn status_until(
    host: &Host,
    url: &str,
    hosts: &[Host],
    expected: impl Fn(&Host) -> &'static str,
) -> String {
    eventually("the instances' keys in `master-key status`", || {
        let out = host.master_key(url, &["status"], "");
        assert!(out.ok, "{}", out.all());
        let lines: Vec<&str> = (out.out.lines())
            .filter(|l| l.starts_with("instance "))
            .collect();
        let each = hosts.iter().all(|h| {
            let addr = h.server.addr.to_string();
            (lines.iter()).any(|l| l.contains(&addr) && l.contains(expected(h)))
        });
        (lines.len() == hosts.len() && each).then_some(out.out)
    })
}

#[test]
fn three_instances_on_postgres_roll_a_master_key_as_sealing_md_says() {
    let Some(db) = support::block_on(TestDb::create()) else {
        return;
    };
    let url = db.url.as_str();
    let mk1 = generate("mk1");
    // Three hosts, each with its own copy of the key file, each serving.
    let names = ["host-a", "host-b", "host-c"];
    let mut hosts: Vec<Host> = Vec::new();
    for name in names {
        let dir = tempfile::tempdir().unwrap();
        owner_only(dir.path());
        let key_file = dir.path().join("master.keys");
        write_key_file(&key_file, &[&mk1]);
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let server = Server::start(
            &data,
            &Options {
                env: vec![("DROPFIX_LOG", "info"), ("NO_COLOR", "")],
                args: vec![
                    "--database-url",
                    url,
                    "--master-key-file",
                    key_file.to_str().unwrap(),
                ],
            },
        );
        hosts.push(Host {
            name,
            key_file,
            server,
            _dir: dir,
        });
    }
    let (a, b, c) = (&hosts[0], &hosts[1], &hosts[2]);
    let created = ok(
        &["workspace", "create", "--name", "rollout", "--json"]
            .into_iter()
            .chain(a.store(url))
            .collect::<Vec<_>>(),
        &[],
        "",
    );
    let created: Json = serde_json::from_str(&created).unwrap();
    let app = created["app_id"].as_str().unwrap().to_string();
    let secret = SecretKey::new(created["secret"].as_str().unwrap());
    every_instance_verifies(&hosts, &app, &secret, "start");

    // 1. Generate the new key once.
    let mk2 = generate("mk2");
    let add = ["add", "--from-stdin", "--no-activate"];
    // 2. Distribute it: hosts a and b get it; host c, as in the trial that found the bug,
    //    makes its own mk2 (a different key under the same id).
    for h in [a, b] {
        let ran = h.master_key(url, &add, &mk2);
        assert!(ran.ok, "{}: {}", h.name, ran.all());
        assert!(!ran.all().contains(key_part(&mk2)));
    }
    let ran = c.master_key(url, &["add", "--no-activate", "--id", "mk2"], "");
    assert!(ran.ok, "{}", ran.all());
    every_instance_verifies(&hosts, &app, &secret, "distributed");

    // 3. Verify: a's status names the fingerprint that differs; activate and rewrap refuse,
    //    naming host c's instance; nothing changed.
    let fp = |h: &Host| h.health()["master_keys"]["fingerprints"]["mk2"].clone();
    let status_a = status(&a.store(url));
    let mk2_fp = status_a["fingerprints"]["mk2"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fp(b), mk2_fp.as_str());
    assert_ne!(fp(c), mk2_fp.as_str());
    // (Each instance re-registers its keys within seconds of its key file changing.)
    let c_name = c.name;
    let text = status_until(a, url, &hosts, |h| {
        if h.name == c_name {
            "holds another key as mk2"
        } else {
            "the same keys as here"
        }
    });
    assert_eq!(text.matches("active mk1;").count(), 3, "{text}");
    let file_a = std::fs::read(&a.key_file).unwrap();
    let ran = a.master_key(url, &["activate", "mk2"], "");
    assert!(!ran.ok, "activate went ahead: {}", ran.all());
    assert!(ran.err.contains("refusing to activate it"), "{}", ran.err);
    assert!(ran.err.contains(&c.server.addr.to_string()), "{}", ran.err);
    assert!(ran.err.contains("holds another key as mk2"), "{}", ran.err);
    assert!(!ran.err.contains(&a.server.addr.to_string()), "{}", ran.err);
    assert_eq!(std::fs::read(&a.key_file).unwrap(), file_a);
    // A rewrap from a keyring with mk2 active (the operator's own copy) refuses as well.
    let ring = format!("{mk2},{mk1}");
    let ran = dropfix(
        &["master-key", "rewrap", "--database-url", url],
        &[("DROPFIX_MASTER_KEYS", &ring)],
        "",
    );
    assert!(!ran.ok, "rewrap went ahead: {}", ran.all());
    assert!(ran.err.contains("refusing to rewrap"), "{}", ran.err);
    assert!(ran.err.contains(&c.server.addr.to_string()), "{}", ran.err);
    assert_eq!(status(&a.store(url))["sealed"], json!({"mk1": 1}));

    // Host c is mended: its wrong mk2 (which sealed nothing) dropped, the right one added.
    let ran = c.master_key(url, &["drop", "mk2"], "");
    assert!(ran.ok, "{}", ran.all());
    let ran = c.master_key(url, &add, &mk2);
    assert!(ran.ok, "{}", ran.all());
    // Verified: every instance holds the very key (status from any host, and /healthz).
    status_until(b, url, &hosts, |_| "the same keys as here");
    for h in &hosts {
        assert_eq!(fp(h), mk2_fp.as_str(), "{}", h.name);
        assert_eq!(h.health()["master_keys"]["active"], "mk1");
    }

    // 4. Activate it on every host, 5. rewrap once, 6. drop the old key on every host.
    for h in &hosts {
        let ran = h.master_key(url, &["activate", "mk2"], "");
        assert!(ran.ok, "{}: {}", h.name, ran.all());
        every_instance_verifies(&hosts, &app, &secret, &format!("activated-{}", h.name));
    }
    status_until(a, url, &hosts, |_| "active mk2;");
    let ran = a.master_key(url, &["rewrap"], "");
    assert!(ran.ok, "{}", ran.all());
    assert!(ran.out.contains("re-sealed 1 secret(s)"), "{}", ran.out);
    assert_eq!(status(&a.store(url))["sealed"], json!({"mk2": 1}));
    every_instance_verifies(&hosts, &app, &secret, "rewrapped");
    for h in &hosts {
        let ran = h.master_key(url, &["drop", "mk1"], "");
        assert!(ran.ok, "{}: {}", h.name, ran.all());
    }
    status_until(c, url, &hosts, |_| "the same keys as here");
    every_instance_verifies(&hosts, &app, &secret, "dropped");
    for h in &hosts {
        assert_eq!(
            h.health()["master_keys"],
            json!({"active": "mk2", "fingerprints": {"mk2": mk2_fp}}),
            "{}",
            h.name
        );
    }
}

#[test]
fn on_postgres_a_drop_waits_for_every_instance_to_seal_with_the_new_key() {
    let Some(db) = support::block_on(TestDb::create()) else {
        return;
    };
    let url = db.url.as_str();
    let (mk1, mk2) = (generate("mk1"), generate("mk2"));
    let dir = data_dir();
    // One instance still seals with mk1; this host already activated mk2.
    let serving = dir.path().join("serving.keys");
    write_key_file(&serving, &[&mk1, &mk2]);
    let here = dir.path().join("here.keys");
    write_key_file(&here, &[&mk2, &mk1]);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let server = Server::start(
        &data,
        &Options {
            env: vec![],
            args: vec![
                "--database-url",
                url,
                "--master-key-file",
                serving.to_str().unwrap(),
            ],
        },
    );
    let here_store = [
        "--database-url",
        url,
        "--master-key-file",
        here.to_str().unwrap(),
    ];
    eventually("the instance registered", || {
        let s = status(&here_store);
        (s["instances"].as_array().map(Vec::len) == Some(1)).then_some(())
    });
    let drop = [
        "master-key",
        "drop",
        "mk1",
        "--database-url",
        url,
        "--master-key-file",
        here.to_str().unwrap(),
    ];
    let ran = dropfix(&drop, &[], "");
    assert!(!ran.ok, "drop went ahead: {}", ran.all());
    assert!(
        ran.err.contains("still seal new secrets with it"),
        "{}",
        ran.err
    );
    assert!(ran.err.contains(&server.addr.to_string()), "{}", ran.err);
    assert!(Keyring::load_file(&here).unwrap().contains("mk1"));
    // --force drops it anyway.
    let mut forced = drop.to_vec();
    forced.push("--force");
    ok(&forced, &[], "");
    assert!(!Keyring::load_file(&here).unwrap().contains("mk1"));
}
