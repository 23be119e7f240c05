//! What the server's integration tests share, in one place:
//!
//! - a verifier run in-process ([`Verifier`]): `dropfix_server::run` on `127.0.0.1:0` on a
//!   runtime of its own, over the embedded store in a data dir or over PostgreSQL, stopped
//!   gracefully (as on SIGTERM) when dropped; and what is said to it: identify calls, the admin
//!   API with [`ADMIN_TOKEN`], the console's forms and login;
//! - the store opened beside it, as the CLI opens it from another process ([`with_store`]), and
//!   the workspaces and console accounts made there;
//! - the real binary: `dropfix-server serve` started ([`start_binary`], or [`serve_command`] and
//!   [`listening`] for flags of the test's own) and its other commands run ([`run_cli`],
//!   [`cli_output`]).
//!
//! Two parts live in files that other test crates also include by path, and are re-exported
//! here: the raw HTTP/1.1 client and the spawned [`Server`] (`tests/support`, shared with the
//! workspace's reliability tests), and PostgreSQL test databases ([`pg`], `pg_support`, shared
//! with `tests/pg_faults.rs`).
//!
//! Each test file includes this module with `mod support;` and uses only part of it.
#![allow(dead_code)]

#[path = "../../../tests/support/mod.rs"]
mod binary;
pub mod idp;
#[path = "../pg_support/mod.rs"]
pub mod pg;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use dropfix_core::{SecretKey, StrictMode, seed};
use dropfix_server::sealing::{self, Keyring};
use dropfix_server::store::postgres::PgOptions;
use dropfix_server::store::{Backend, Hooks, Role, Store};
use dropfix_server::workspace::{NewWorkspace, WorkspacePatch};
use dropfix_server::{AppState, Config};
use serde_json::{Value as Json, json};
use sha2::Digest;

// Each test file uses part of them, as of the rest of this module.
#[allow(unused_imports)]
pub use binary::{
    ADMIN_TOKEN, Options, Response, Server, build_request, eventually, owner_only, parse_response,
    raw_request, server_binary, try_raw_request,
};

/// The console's own origin: the Host header [`build_request`] sends, over plain HTTP.
pub const SELF_ORIGIN: &str = "http://127.0.0.1";

pub fn now() -> i64 {
    dropfix_server::http::now()
}

/// Runs `f` to its end on a runtime of its own (for a test that is not async itself).
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

// ---------------------------------------------------------------------------------------------
// Stores

/// A fresh data dir, owner-only as the server requires of a directory that holds secrets.
pub fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    owner_only(dir.path());
    dir
}

/// The embedded store in `dir`.
pub fn embedded(dir: &Path) -> Backend {
    Backend::Sqlite {
        data_dir: dir.to_path_buf(),
    }
}

/// The PostgreSQL database at `url`, four pooled connections at most.
pub fn postgres(url: &str) -> Backend {
    Backend::Postgres(PgOptions {
        pool_size: 4,
        ..PgOptions::new(url)
    })
}

/// The master keys of the embedded store in `dir` (`DATA_DIR/master.keys`, made on first use).
pub fn keyring(dir: &Path) -> Keyring {
    Keyring::load_or_create(&sealing::default_key_file(dir))
        .unwrap()
        .0
}

/// The embedded store in `dir`, opened with its master keys.
pub async fn open_embedded(dir: &Path) -> Store {
    Store::open(&embedded(dir), Hooks::new(keyring(dir)))
        .await
        .unwrap()
}

/// Runs `f` on the embedded store in `dir` from a runtime of its own: what the CLI does from
/// another process while the server runs.
pub fn with_store<T>(dir: &Path, f: impl AsyncFnOnce(&Store) -> T) -> T {
    block_on(async { f(&open_embedded(dir).await).await })
}

/// [`with_store`] on any backend, whose secrets `ring` opens.
pub fn with_store_on<T>(backend: &Backend, ring: &Keyring, f: impl AsyncFnOnce(&Store) -> T) -> T {
    block_on(async {
        let store = Store::open(backend, Hooks::new(ring.clone()))
            .await
            .unwrap();
        f(&store).await
    })
}

/// A workspace's settings, signed claims not required.
pub fn new_workspace(name: &str, strict: StrictMode, allowed_origins: &[&str]) -> NewWorkspace {
    NewWorkspace {
        name: name.into(),
        strict,
        require_signed_claims: false,
        allowed_origins: allowed_origins.iter().map(|o| o.to_string()).collect(),
    }
}

/// A workspace made on `backend` as the CLI makes it (the development origins allowed); its
/// app id and secret.
pub fn workspace_on(
    backend: &Backend,
    ring: &Keyring,
    name: &str,
    strict: StrictMode,
) -> (String, SecretKey) {
    with_store_on(backend, ring, async |store| {
        let settings = new_workspace(name, strict, &dropfix_server::workspace::DEV_ORIGINS);
        let k = store
            .create_workspace(&settings, "cli", now())
            .await
            .unwrap();
        (k.workspace.app_id, k.secret)
    })
}

/// Changes workspace `app` on `backend` as the CLI does (from outside a running server).
pub fn update_on(backend: &Backend, ring: &Keyring, app: &str, patch: &WorkspacePatch) {
    with_store_on(backend, ring, async |store| {
        store
            .update_workspace(app, patch, "cli", now())
            .await
            .unwrap();
    });
}

/// A console account with the password hash `phc` and `role` in `app`, as
/// `dropfix-server user create` makes it.
pub async fn create_member(store: &Store, email: &str, phc: &str, app: &str, role: Role) {
    store.create_account(email, phc, now()).await.unwrap();
    assert!(
        store
            .add_member(email, app, role, "cli", now())
            .await
            .unwrap()
    );
}

// ---------------------------------------------------------------------------------------------
// A verifier in-process

/// A verifier serving HTTP on `127.0.0.1:0` in this process, on a runtime of its own (two
/// workers), with [`ADMIN_TOKEN`]. Dropping it stops it as [`Verifier::stop`] does.
#[derive(Debug)]
pub struct Verifier {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Verifier {
    /// Serves `backend`, whose secrets `ring` opens (every instance of a deployment holds the
    /// same master keys).
    pub fn start(config: Config, backend: Backend, ring: Keyring) -> Verifier {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let admin = sha2::Sha256::digest(ADMIN_TOKEN.as_bytes()).into();
                let state = AppState::new(config, &backend, ring, admin).await.unwrap();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                dropfix_server::run(listener, state, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        Verifier {
            addr: addr_rx.recv().unwrap(),
            shutdown: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Serves the embedded store in `dir` (another instance on the same dir shares its data).
    pub fn embedded(dir: &Path, config: Config) -> Verifier {
        Verifier::start(config, embedded(dir), keyring(dir))
    }

    /// Asks for a graceful stop, as SIGTERM does, without waiting for it: the listener closes,
    /// requests under way are finished.
    pub fn begin_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// A graceful stop, waited for; the store's data stays for inspection. A verifier that
    /// failed (its `run` an error, or a panic) fails the test here, unless it is failing already.
    pub fn stop(&mut self) {
        self.begin_stop();
        if let Some(t) = self.thread.take() {
            let ended = t.join();
            if !std::thread::panicking() {
                ended.expect("the verifier ended with a panic");
            }
        }
    }

    /// A request with `Connection: close` and a correct `Content-Length`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        raw_request(self.addr, &build_request(method, path, headers, body))
    }

    /// `POST /v1/identify` with `body` as JSON.
    pub fn identify(&self, body: &Json) -> Response {
        raw_request(self.addr, &identify_request(body, &[]))
    }

    /// An admin API call with [`ADMIN_TOKEN`] and `body` as JSON.
    pub fn admin(&self, method: &str, path: &str, body: Option<Json>) -> Response {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.request(
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            &bytes,
        )
    }

    /// The admin API's answer for `user` of the workspace `app`.
    pub fn get_user(&self, app: &str, user: &str) -> Response {
        let path = format!("/v1/admin/workspaces/{app}/users/{user}");
        self.admin("GET", &path, None)
    }

    /// A console page with the session `cookie` (the `Cookie` header's value, or "" for none).
    pub fn get(&self, cookie: &str, path: &str) -> Response {
        self.request("GET", path, &[("Cookie", cookie)], b"")
    }

    /// A same-origin form POST to the console, as its own pages send it.
    pub fn post(&self, cookie: &str, path: &str, form: &[(&str, &str)]) -> Response {
        self.post_with(cookie, path, form, &[("Origin", SELF_ORIGIN)])
    }

    /// A form POST to the console with `extra` headers in place of the same-origin `Origin`.
    pub fn post_with(
        &self,
        cookie: &str,
        path: &str,
        form: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut headers = vec![
            ("Cookie", cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        headers.extend_from_slice(extra);
        self.request("POST", path, &headers, body.as_bytes())
    }

    /// A console login, whatever its answer.
    pub fn try_login(&self, email: &str, password: &str) -> Response {
        self.post(
            "",
            "/console/login",
            &[("email", email), ("password", password)],
        )
    }

    /// Logs in to the console; returns the session's `Cookie` header value.
    pub fn login(&self, email: &str, password: &str) -> String {
        let r = self.try_login(email, password);
        assert_eq!(r.status, 303, "{}", r.text());
        let set = r.header("set-cookie").expect("a session cookie");
        set.split(';').next().unwrap().to_string()
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An identify request: `POST /v1/identify` with `body` as JSON and `extra` headers.
pub fn identify_request(body: &Json, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend_from_slice(extra);
    build_request(
        "POST",
        "/v1/identify",
        &headers,
        body.to_string().as_bytes(),
    )
}

/// An identify call for `user` signed now with `secret` in the seed form.
pub fn signed_call(app: &str, secret: &SecretKey, user: &str) -> Json {
    json!({"app_id": app, "user_id": user, "signature": seed::sign(secret, user), "signedAt": now()})
}

/// The console's answer to a request without a live session.
pub fn assert_redirect_to_login(r: &Response) {
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/console/login"));
}

// ---------------------------------------------------------------------------------------------
// The real binary

/// `dropfix-server serve` on a fresh data dir with `args` and `env` besides deterministic logs
/// (whatever the caller's environment says); returns it, its temp dir and the development
/// workspace its first start made.
pub fn start_binary(
    args: &[&str],
    env: &[(&str, &str)],
) -> (Server, tempfile::TempDir, String, SecretKey) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = Options {
        env: vec![("DROPFIX_LOG", "info"), ("NO_COLOR", "")],
        args: args.to_vec(),
    };
    opts.env.extend_from_slice(env);
    let server = Server::start(dir.path(), &opts);
    let (app, secret) = server.dev_workspace.clone().expect("first start prints it");
    (server, dir, app, SecretKey::new(secret.as_str()))
}

/// `dropfix-server serve` on `127.0.0.1:0` over the data dir `data` with [`ADMIN_TOKEN`], for
/// the caller's own flags and streams ([`listening`] reads where it listens).
pub fn serve_command(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dropfix-server"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-token",
            ADMIN_TOKEN,
        ])
        .arg("--data-dir")
        .arg(data);
    command
}

/// Where a `serve` listens, and the development workspace its first start made (empty when it
/// printed none).
#[derive(Debug)]
pub struct Listening {
    pub addr: SocketAddr,
    pub app: String,
    pub secret: String,
}

/// Reads `child`'s stdout (piped) up to its "listening on `scheme`://" line; the rest is read
/// away on a thread of its own, so the server never blocks on a full pipe.
pub fn listening(child: &mut Child, scheme: &str) -> Listening {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut app, mut secret) = (String::new(), String::new());
    let listening_on = format!("dropfix-server listening on {scheme}://");
    loop {
        let line = lines
            .next()
            .expect("the server printed its address")
            .unwrap();
        if let Some(rest) = line.strip_prefix("dev workspace ") {
            for part in rest.split(' ') {
                match part.split_once('=') {
                    Some(("app_id", v)) => app = v.to_string(),
                    Some(("secret", v)) => secret = v.to_string(),
                    _ => {}
                }
            }
        }
        if let Some(addr) = line.strip_prefix(&listening_on) {
            let addr = addr.parse().unwrap();
            std::thread::spawn(move || for _ in lines {});
            return Listening { addr, app, secret };
        }
    }
}

/// Runs a `dropfix-server` command on the data dir `dir` with `stdin`: whether it succeeded,
/// and its stdout then stderr.
pub fn run_cli(dir: &Path, args: &[&str], stdin: &str) -> (bool, String) {
    let mut args = args.to_vec();
    args.extend(["--data-dir", dir.to_str().unwrap()]);
    let out = cli_output(&args, &[], stdin);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Runs `dropfix-server args` to its end with `env` (the store settings of the test's own
/// environment left out) and `stdin`. A command still running after [`binary::HANG_GUARD`] (a
/// `serve` expected to fail that serves instead) is killed, so the test fails instead of hanging.
pub fn cli_output(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    // Cargo builds the binary for integration tests and names its path here.
    let mut command = Command::new(env!("CARGO_BIN_EXE_dropfix-server"));
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "DROPFIX_MASTER_KEYS",
        "DROPFIX_MASTER_KEY_FILE",
        "DROPFIX_DATABASE_URL",
        "DROPFIX_DATA_DIR",
        "DROPFIX_ADMIN_TOKEN",
    ] {
        command.env_remove(var);
    }
    let mut child = command.envs(env.iter().copied()).spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let pid = child.id().to_string();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(binary::HANG_GUARD).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    let _ = watchdog.join();
    out
}
