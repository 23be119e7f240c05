//! Starting the real `dropfix-server` binary and speaking raw HTTP/1.1 to it, for the
//! reliability tests (bad input, crash safety, log leaks).
//!
//! The binary is spawned rather than run in-process because two of the promises are about the
//! process itself: a `kill -9` must lose no acknowledged write, and nothing the process prints
//! may contain a secret. The client is a few lines over `TcpStream` instead of an HTTP library so
//! that tests can send what no well-behaved library would: invalid UTF-8, lying lengths, huge
//! headers.
//!
//! Each test binary includes this file with `#[path = "support/mod.rs"] mod support;` and uses
//! only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

/// The admin token every test server is started with.
pub const ADMIN_TOKEN: &str = "dfadm_reliability_tests_admin_token_0123456789";

/// How long any single step may take before the test fails (not a timing assertion: a hang
/// guard, generous enough for a loaded CI machine).
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// Path of the server binary in this workspace's target dir, built (once per test binary) with
/// the same cargo that runs the tests. A no-op when `cargo test --workspace` has built it.
pub fn server_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // The test executable is target/<profile>/deps/<name>-<hash>.
            let exe = std::env::current_exe().expect("test executable path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("target/<profile>/deps/<test>")
                .to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "--quiet", "-p", "dropfix-server", "--bin"])
                .arg("dropfix-server")
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build -p dropfix-server");
            assert!(status.success(), "cargo build -p dropfix-server failed");
            let bin = profile_dir.join(format!("dropfix-server{}", std::env::consts::EXE_SUFFIX));
            assert!(bin.exists(), "{} was not built", bin.display());
            bin
        })
        .clone()
}

/// One line the server printed, and on which stream.
#[derive(Debug, Clone)]
pub struct Line {
    pub stderr: bool,
    pub text: String,
}

/// A running `dropfix-server serve` process. Killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Every line printed so far, on both streams, in arrival order per stream.
    output: Arc<Mutex<Vec<Line>>>,
    /// `dev workspace app_id=... secret=...` from a first start, if this start printed it.
    pub dev_workspace: Option<(String, String)>,
}

/// Options for [`Server::start`].
#[derive(Debug, Default, Clone)]
pub struct Options<'a> {
    pub env: Vec<(&'a str, &'a str)>,
    pub args: Vec<&'a str>,
}

impl Server {
    /// Starts the binary on `127.0.0.1:0` with `data_dir` and waits for its listening line.
    pub fn start(data_dir: &Path, opts: &Options<'_>) -> Server {
        Server::start_at(data_dir, "127.0.0.1:0", opts)
    }

    /// [`Server::start`] listening on `listen` (a port a restarted instance keeps).
    pub fn start_at(data_dir: &Path, listen: &str, opts: &Options<'_>) -> Server {
        owner_only(data_dir);
        let mut cmd = Command::new(server_binary());
        cmd.arg("serve")
            .args(["--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(["--admin-token", ADMIN_TOKEN])
            .args(&opts.args)
            .env_remove("DROPFIX_LISTEN")
            .env_remove("DROPFIX_DATA_DIR")
            .env_remove("DROPFIX_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn dropfix-server");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<Line>();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for (stream, is_err) in [
            (Box::new(stdout) as Box<dyn Read + Send>, false),
            (Box::new(stderr), true),
        ] {
            let output = Arc::clone(&output);
            let tx = tx.clone();
            std::thread::spawn(move || {
                // Lossy: a non-UTF-8 byte in a log line must still be scanned, not stop the reader.
                let mut reader = BufReader::new(stream);
                let mut buf = Vec::new();
                while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                    let text = String::from_utf8_lossy(&buf).trim_end().to_string();
                    let line = Line {
                        stderr: is_err,
                        text,
                    };
                    output.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                    buf.clear();
                }
            });
        }
        drop(tx);
        let deadline = Instant::now() + HANG_GUARD;
        let mut dev_workspace = None;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "dropfix-server did not print its listening line; output:\n{}",
                        dump(&output.lock().unwrap())
                    );
                }
            };
            if let Some(rest) = line.text.split("dev workspace ").nth(1) {
                let field = |name: &str| {
                    rest.split_whitespace()
                        .find_map(|kv| kv.strip_prefix(name))
                        .map(str::to_string)
                };
                if let (Some(app), Some(secret)) = (field("app_id="), field("secret=")) {
                    dev_workspace = Some((app, secret));
                }
            }
            if let Some(rest) = line
                .text
                .split("dropfix-server listening on http://")
                .nth(1)
            {
                break rest
                    .trim()
                    .parse::<SocketAddr>()
                    .expect("listening line has HOST:PORT");
            }
        };
        Server {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
            output,
            dev_workspace,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no shutdown hook, no flush, no chance to finish anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }

    /// Asks for a graceful stop (SIGTERM) and waits for the process to exit, so every log line
    /// it would write has been written. Falls back to SIGKILL after the hang guard.
    pub fn stop(&mut self) {
        self.signal("TERM");
        if self.wait_exit(HANG_GUARD).is_none() {
            self.kill9();
        }
    }

    /// Sends the signal named `name` (`TERM`, `INT`, ...) to the process.
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status();
    }

    /// The exit status, once the process has exited within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().ok().flatten() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Everything printed so far.
    pub fn output(&self) -> Vec<Line> {
        self.output.lock().unwrap().clone()
    }

    /// Sends raw bytes as one request on a fresh connection and reads the response.
    pub fn raw(&self, request: &[u8]) -> Response {
        raw_request(self.addr, request)
    }

    /// A request with `Connection: close` and a correct `Content-Length`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.raw(&build_request(method, path, headers, body))
    }

    /// `POST /v1/identify` with `Content-Type: application/json`.
    pub fn identify(&self, body: &[u8]) -> Response {
        self.request(
            "POST",
            "/v1/identify",
            &[("Content-Type", "application/json")],
            body,
        )
    }

    /// An admin call with the bearer token.
    pub fn admin(&self, method: &str, path: &str, body: Option<&Json>) -> Response {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let mut headers = vec![("Authorization", auth.as_str())];
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.request(method, path, &headers, &bytes)
    }

    /// Creates a workspace through the admin API; returns `(app_id, secret)`.
    pub fn create_workspace(&self, body: Json) -> (String, String) {
        let r = self.admin("POST", "/v1/admin/workspaces", Some(&body));
        assert_eq!(r.status, 201, "create workspace: {}", r.text());
        let j = r.json();
        (
            j["app_id"].as_str().unwrap().to_string(),
            j["secret"].as_str().unwrap().to_string(),
        )
    }

    /// Every stored user of a workspace, through the admin API.
    pub fn users(&self, app_id: &str) -> Vec<Json> {
        let r = self.admin(
            "GET",
            &format!("/v1/admin/workspaces/{app_id}/users?limit=100000"),
            None,
        );
        assert_eq!(r.status, 200, "list users: {}", r.text());
        r.json()["users"]
            .as_array()
            .expect("users is an array")
            .clone()
    }

    /// `GET /healthz` is 200 `{"status":"ok"}`.
    pub fn assert_healthy(&self, context: &str) {
        let r = self.request("GET", "/healthz", &[], b"");
        assert_eq!(r.status, 200, "healthz after {context}: {}", r.text());
        assert_eq!(r.json()["status"], "ok", "healthz after {context}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dump(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| format!("[{}] {}\n", if l.stderr { "err" } else { "out" }, l.text))
        .collect()
}

/// Builds an HTTP/1.1 request with `Host`, `Connection: close` and `Content-Length`.
pub fn build_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" || method == "PATCH" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {:?}", self.text()))
    }
}

/// Writes `request` on a fresh connection and reads until the server closes it (the request
/// says `Connection: close`). A server that stops reading early (413 on a large body) may reset
/// the connection while we still write; the response it already sent is still read.
pub fn raw_request(addr: SocketAddr, request: &[u8]) -> Response {
    try_raw_request(addr, request).unwrap_or_else(|e| panic!("request to {addr}: {e}"))
}

/// [`raw_request`] that returns I/O errors (connection refused, reset before any response).
pub fn try_raw_request(addr: SocketAddr, request: &[u8]) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(HANG_GUARD))?;
    stream.set_write_timeout(Some(HANG_GUARD))?;
    // Ignore write errors: what matters is the response, which may already be on its way.
    let write_result = stream.write_all(request);
    let _ = stream.flush();
    let mut buf = Vec::new();
    let read_result = stream.read_to_end(&mut buf);
    if buf.is_empty() {
        write_result?;
        read_result?;
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed without a response",
        ));
    }
    parse_response(&buf)
        .ok_or_else(|| std::io::Error::other(format!("unparseable response: {buf:?}")))
}

pub fn parse_response(buf: &[u8]) -> Option<Response> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &buf[head_end + 4..];
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else if let Some((_, len)) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        let len: usize = len.parse().ok()?;
        rest.get(..len)?.to_vec()
    } else {
        rest.to_vec()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// Polls `f` until it returns `Some`, failing after the hang guard. For conditions the test
/// cannot be notified of (a CLI edit taking effect, a port being free).
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Makes a test's data dir owner-only, as the server requires of a directory that holds
/// secrets (`tempfile` creates them 0755 under the usual umask).
pub fn owner_only(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .expect("chmod 700 the test data dir");
    }
}
