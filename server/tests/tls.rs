//! HTTPS on the verifier, through the real binary (`serve --tls-cert --tls-key`) and real
//! clients (curl, and a rustls client that reads the served certificate), with a throwaway CA
//! made here: identify and the console over HTTPS, ALPN choosing HTTP/2 or HTTP/1.1, a swapped
//! certificate served without a restart, bad files refused at start with the reason, and clients
//! that do not speak TLS (or never finish the handshake) costing nothing to others.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, SanType, date_time_ymd,
};
use support::{listening, run_cli, serve_command};
use tokio_rustls::rustls::{self, pki_types::ServerName};

const BIN: &str = env!("CARGO_BIN_EXE_dropfix-server");

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "DropFix test CA");
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A certificate for localhost and 127.0.0.1 signed by `ca`, valid `from`..`until` (years), and
/// its key, as PEM.
fn leaf(ca: &Ca, name: &str, from: i32, until: i32) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    params.distinguished_name.push(DnType::CommonName, name);
    params.not_before = date_time_ymd(from, 1, 1);
    params.not_after = date_time_ymd(until, 1, 1);
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    // The served file is the full chain: the leaf, then the CA.
    (
        format!("{}{}", cert.pem(), ca.cert.pem()),
        key.serialize_pem(),
    )
}

struct Files {
    dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn files(ca: &Ca, cert_and_key: &(String, String)) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let (ca_path, cert, key) = (
        dir.path().join("ca.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
    );
    std::fs::write(&ca_path, ca.cert.pem()).unwrap();
    std::fs::write(&cert, &cert_and_key.0).unwrap();
    std::fs::write(&key, &cert_and_key.1).unwrap();
    Files {
        dir,
        ca: ca_path,
        cert,
        key,
    }
}

struct Server {
    child: Child,
    addr: SocketAddr,
    app: String,
    secret: String,
    data: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An owner-only data dir in `parent`.
fn data_dir(parent: &Path) -> PathBuf {
    let data = parent.join("data");
    std::fs::create_dir(&data).unwrap();
    support::owner_only(&data);
    data
}

/// `serve` with TLS on `f`'s files; waits for "listening on https://". (The child is waited
/// for by `Server`'s drop. The one panic before that means its stdout closed, so it has exited
/// already and is only left unreaped until the test process ends.)
fn serve(f: &Files) -> Server {
    serve_with(f, &[])
}

/// [`serve`] with more flags.
#[allow(clippy::zombie_processes)]
fn serve_with(f: &Files, extra: &[&str]) -> Server {
    let data = data_dir(f.dir.path());
    let mut child = tls_command(&data, &f.cert, &f.key)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = listening(&mut child, "https");
    Server {
        child,
        addr: started.addr,
        app: started.app,
        secret: started.secret,
        data,
    }
}

/// `serve` over `data` with this certificate and key.
fn tls_command(data: &Path, cert: &Path, key: &Path) -> Command {
    let mut command = serve_command(data);
    command
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key);
    command
}

/// `serve` with these files, expected to refuse to start: its stderr.
fn refused_start(cert: &Path, key: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let out = tls_command(&data, cert, key).output().unwrap();
    assert!(!out.status.success(), "it started");
    assert!(
        std::fs::read_dir(&data).unwrap().next().is_none(),
        "nothing written before the certificate was checked"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// curl over HTTPS with the test CA: (status, HTTP version, headers and body).
fn curl(s: &Server, f: &Files, extra: &[&str], path: &str) -> (String, String, String) {
    let port = s.addr.port();
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "--max-time", "10"])
        .arg("--cacert")
        .arg(&f.ca)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-w", "\n%{http_code} %{http_version}"])
        .args(extra)
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .expect("curl is installed by scripts/setup.sh");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (code, version) = last.split_once(' ').unwrap_or((last, ""));
    (code.to_string(), version.to_string(), body.to_string())
}

/// A rustls client that trusts `f`'s CA, offering `alpn` (none: the server's default, HTTP/1.1).
fn connector(f: &Files, alpn: Option<&[u8]>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&f.ca).unwrap();
    for c in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.map(<[u8]>::to_vec).into_iter().collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// The certificate the server presents (leaf, DER), through a rustls client trusting the CA.
fn served_certificate(addr: SocketAddr, f: &Files) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let connector = connector(f, None);
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    })
}

fn pem_leaf_der(pem: &str) -> Vec<u8> {
    let first = rustls_pki_types::pem::PemObject::pem_slice_iter(pem.as_bytes())
        .next()
        .unwrap();
    let der: rustls_pki_types::CertificateDer<'static> = first.unwrap();
    der.to_vec()
}

#[test]
fn identify_and_health_over_https_with_http2_by_alpn_and_http11_too() {
    let ca = ca();
    let f = files(&ca, &leaf(&ca, "first", 2020, 2100));
    let s = serve(&f);
    let (code, version, _) = curl(&s, &f, &["--http2"], "/healthz");
    assert_eq!((code.as_str(), version.as_str()), ("200", "2"));
    let (code, version, _) = curl(&s, &f, &["--http1.1"], "/healthz");
    assert_eq!((code.as_str(), version.as_str()), ("200", "1.1"));
    // A signed identify over HTTP/2, stored verified.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signature =
        dropfix_core::seed::sign(&dropfix_core::SecretKey::new(s.secret.as_str()), "tls-user");
    let body = format!(
        r#"{{"app_id":"{}","user_id":"tls-user","signature":"{signature}","signed_at":{now}}}"#,
        s.app
    );
    let (code, version, text) = curl(
        &s,
        &f,
        &[
            "--http2",
            "-H",
            "Content-Type: application/json",
            "--data",
            &body,
        ],
        "/v1/identify",
    );
    assert_eq!((code.as_str(), version.as_str()), ("200", "2"), "{text}");
    assert!(text.contains(r#""verified":true"#), "{text}");
    // A client that does not trust the CA is refused by curl (the server's chain is checked).
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("https://127.0.0.1:{}/healthz", s.addr.port()))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn the_console_cookie_is_secure_under_tls() {
    let ca = ca();
    let f = files(&ca, &leaf(&ca, "first", 2020, 2100));
    let s = serve(&f);
    let (ok, out) = run_cli(
        &s.data,
        &[
            "user",
            "create",
            "--email",
            "owner@example.com",
            "--password-stdin",
            "--workspace",
            &s.app,
            "--role",
            "owner",
        ],
        "a long enough password\n",
    );
    assert!(ok, "{out}");
    let origin = format!("Origin: https://localhost:{}", s.addr.port());
    let (code, _, headers) = curl(
        &s,
        &f,
        &[
            "-H",
            &origin,
            "--data-urlencode",
            "email=owner@example.com",
            "--data-urlencode",
            "password=a long enough password",
        ],
        "/console/login",
    );
    assert_eq!(code, "303", "{headers}");
    let cookie = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[test]
fn a_certificate_swapped_on_disk_is_served_without_a_restart() {
    let ca = ca();
    let first = leaf(&ca, "first", 2020, 2100);
    let f = files(&ca, &first);
    let s = serve(&f);
    assert_eq!(served_certificate(s.addr, &f), pem_leaf_der(&first.0));
    let second = leaf(&ca, "second", 2021, 2101);
    // The key first, then the certificate: a reload in between sees a mismatched pair, keeps
    // serving the first one, and the next look takes the new pair.
    std::fs::write(&f.key, &second.1).unwrap();
    std::fs::write(&f.cert, &second.0).unwrap();
    let start = Instant::now();
    while served_certificate(s.addr, &f) != pem_leaf_der(&second.0) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the new certificate was not served within 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A broken file is not taken: the second certificate stays.
    std::fs::write(&f.cert, "not a certificate").unwrap();
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-HUP", &s.child.id().to_string()])
            .status();
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(served_certificate(s.addr, &f), pem_leaf_der(&second.0));
}

#[test]
fn bad_certificate_files_are_refused_at_start_with_the_reason() {
    let ca = ca();
    let good = leaf(&ca, "good", 2020, 2100);
    let other = leaf(&ca, "other", 2020, 2100);
    let expired = leaf(&ca, "expired", 2019, 2021);
    let future = leaf(&ca, "future", 2090, 2100);
    let f = files(&ca, &good);
    let write = |name: &str, text: &str| {
        let p = f.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cases: Vec<(PathBuf, PathBuf, &str)> = vec![
        (
            write("expired.pem", &expired.0),
            write("expired.key", &expired.1),
            "expired on 2021-01-01",
        ),
        (
            write("future.pem", &future.0),
            write("future.key", &future.1),
            "not valid before 2090-01-01",
        ),
        (
            f.cert.clone(),
            write("other.key", &other.1),
            "does not belong to the certificate",
        ),
        (
            f.dir.path().join("missing.pem"),
            f.key.clone(),
            "cannot read the TLS certificate",
        ),
        (write("empty.pem", ""), f.key.clone(), "no certificate in"),
        (
            f.cert.clone(),
            write("nokey.pem", &good.0),
            "no private key in",
        ),
    ];
    for (cert, key, reason) in cases {
        let err = refused_start(&cert, &key);
        assert!(err.contains(reason), "{reason}: {err}");
    }
    // --tls-cert without --tls-key is a usage error.
    let out = Command::new(BIN)
        .args(["serve", "--tls-cert"])
        .arg(&f.cert)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

#[test]
fn clients_that_do_not_speak_tls_cost_others_nothing() {
    let ca = ca();
    let f = files(&ca, &leaf(&ca, "first", 2020, 2100));
    let s = serve(&f);
    // Plain HTTP on the HTTPS port: the connection is closed, no answer in clear.
    let mut plain = TcpStream::connect(s.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!String::from_utf8_lossy(&got).contains("200"), "{got:?}");
    // Connections that open and never start a handshake do not keep others out.
    let idle: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    let (code, _, _) = curl(&s, &f, &[], "/healthz");
    assert_eq!(code, "200");
    drop(idle);
}

#[test]
fn a_tls_client_on_the_plain_port_is_refused_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = serve_command(&data_dir(dir.path()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = listening(&mut child, "http").addr;
    let ca = ca();
    let f = files(&ca, &leaf(&ca, "first", 2020, 2100));
    // A TLS handshake on the plain port fails (the server reads no HTTP there) ...
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handshake = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::timeout(
            Duration::from_secs(15),
            connector(&f, None).connect(ServerName::try_from("localhost").unwrap(), tcp),
        )
        .await
    });
    assert!(
        matches!(handshake, Ok(Err(_))),
        "the handshake did not fail"
    );
    // SIGHUP (`systemctl reload`) has nothing to reload without TLS: the server keeps running.
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            child.try_wait().unwrap().is_none(),
            "SIGHUP ended the server"
        );
    }
    // ... and a plain client is served as ever.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = String::new();
    plain.read_to_string(&mut got).unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_client_silent_after_the_handshake_is_closed_within_the_header_timeout() {
    let ca = ca();
    let f = files(&ca, &leaf(&ca, "first", 2020, 2100));
    let s = serve_with(&f, &["--header-timeout-secs", "2"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tokio::io::AsyncReadExt;
        for alpn in [None, Some(b"h2".as_slice())] {
            let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
            let mut tls = connector(&f, alpn)
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            // Nothing sent: the server closes the connection (an HTTP/2 server first sends its
            // settings), well before this bound.
            let closed = tokio::time::timeout(Duration::from_secs(15), async {
                let mut buf = [0u8; 4096];
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => continue,
                    }
                }
            })
            .await;
            assert!(closed.is_ok(), "alpn {alpn:?}: still open after 15 s");
        }
    });
}
