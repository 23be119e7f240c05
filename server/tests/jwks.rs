//! The JWKS fetcher and cache (`dropfix_server::issuers::{fetch, jwks}`) against a local HTTPS
//! identity provider started here (127.0.0.1, port 0, a throwaway CA made with rcgen), which
//! counts the connections and requests it gets and answers as each test tells it:
//!
//! - the fetch rules: a private address without the operator flag is refused before any
//!   connection; a redirect is refused and not followed; a slow head or body times out; an
//!   oversized body (declared or chunked) is refused; a non-JSON answer and an untrusted
//!   certificate are refused; the system's CA bundle is read beside the extra CA;
//! - the cache: rotation (new kid served, old kid dropped) by the background refresh and by a
//!   refresh for an unknown kid; an outage (the last good keys keep verifying, until the
//!   staleness bound drops them; a provider that never answered leaves no keys); the lifetime
//!   clamps from `Cache-Control`; concurrent refreshes sharing one fetch; random kids at
//!   1,000 calls a second causing at most one fetch per refetch interval; forgetting a URL;
//!   the fetches in `/metrics`.
//!
//! The cache's durations are shortened through `Timing` (seconds, not minutes) where a test
//! waits for them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dropfix_server::issuers::fetch::{FetchErrorKind, FetchOptions, Fetcher};
use dropfix_server::issuers::jwks::{JwksCache, Timing};
use dropfix_server::metrics::{Metrics, Sample};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

// ---------------------------------------------------------------------------------------------
// A throwaway CA and a local identity provider

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn new_ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

impl Ca {
    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A TLS acceptor serving a certificate for localhost and 127.0.0.1 signed by this CA.
    fn acceptor(&self) -> TlsAcceptor {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), self.der()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }
}

/// A JWKS of fresh P-256 public keys with these kids.
fn jwks(kids: &[&str]) -> String {
    let keys: Vec<serde_json::Value> = kids
        .iter()
        .map(|kid| {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let point = key.public_key_raw();
            assert_eq!(point.len(), 65, "an uncompressed P-256 point");
            serde_json::json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            })
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

/// What the provider answers.
#[derive(Clone)]
enum Answer {
    /// 200 with this JSON and these extra header lines.
    Json { body: String, headers: String },
    /// This status and header lines, no body.
    Status(u16, String),
    /// 200, a text/html page.
    Html,
    /// The head after this long.
    SlowHead(Duration),
    /// The head, half the declared body, then nothing.
    SlowBody,
    /// A body of this many bytes, declared in Content-Length or chunked.
    Huge { bytes: usize, declared: bool },
    /// The connection closed as soon as it is accepted.
    Down,
}

struct Provider {
    addr: SocketAddr,
    answer: Arc<Mutex<Answer>>,
    connections: Arc<AtomicUsize>,
    /// When each request's head arrived.
    requests: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Provider {
    async fn start(ca: &Ca, answer: Answer) -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = ca.acceptor();
        let answer = Arc::new(Mutex::new(answer));
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (answer, connections, requests) =
                (answer.clone(), connections.clone(), requests.clone());
            async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let now = answer.lock().unwrap().clone();
                    if matches!(now, Answer::Down) {
                        drop(tcp);
                        continue;
                    }
                    let (acceptor, requests) = (acceptor.clone(), requests.clone());
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let mut head = Vec::new();
                        let mut buf = [0u8; 4096];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match tls.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        requests.lock().unwrap().push(Instant::now());
                        let _ = respond(&mut tls, now).await;
                        let _ = tls.shutdown().await;
                    });
                }
            }
        });
        Provider {
            addr,
            answer,
            connections,
            requests,
            task,
        }
    }

    /// The JWKS URL, by name (`localhost`, resolved) or by address.
    fn url(&self) -> String {
        format!(
            "https://localhost:{}/.well-known/jwks.json",
            self.addr.port()
        )
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn requests(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

async fn respond<S: tokio::io::AsyncWrite + Unpin>(
    out: &mut S,
    answer: Answer,
) -> std::io::Result<()> {
    match answer {
        Answer::Json { body, headers } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 {headers}Connection: close\r\n\r\n",
                body.len()
            );
            out.write_all(head.as_bytes()).await?;
            out.write_all(body.as_bytes()).await
        }
        Answer::Status(code, headers) => {
            let head = format!(
                "HTTP/1.1 {code} Whatever\r\nContent-Length: 0\r\n{headers}Connection: close\r\n\r\n"
            );
            out.write_all(head.as_bytes()).await
        }
        Answer::Html => {
            let body = "<html>sign in</html>";
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            out.write_all(head.as_bytes()).await?;
            out.write_all(body.as_bytes()).await
        }
        Answer::SlowHead(after) => {
            tokio::time::sleep(after).await;
            Box::pin(respond(
                out,
                Answer::Json {
                    body: jwks(&["slow"]),
                    headers: String::new(),
                },
            ))
            .await
        }
        Answer::SlowBody => {
            let body = jwks(&["slow"]);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            out.write_all(head.as_bytes()).await?;
            out.write_all(&body.as_bytes()[..body.len() / 2]).await?;
            out.flush().await?;
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        }
        Answer::Huge { bytes, declared } => {
            let chunk = vec![b' '; 16 * 1024];
            if declared {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \
                     {bytes}\r\n\r\n"
                );
                out.write_all(head.as_bytes()).await?;
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(chunk.len());
                    out.write_all(&chunk[..n]).await?;
                    left -= n;
                }
            } else {
                out.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                      Transfer-Encoding: chunked\r\n\r\n",
                )
                .await?;
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(chunk.len());
                    out.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                    out.write_all(&chunk[..n]).await?;
                    out.write_all(b"\r\n").await?;
                    left -= n;
                }
                out.write_all(b"0\r\n\r\n").await?;
            }
            Ok(())
        }
        Answer::Down => Ok(()),
    }
}

fn json(kids: &[&str], headers: &str) -> Answer {
    Answer::Json {
        body: jwks(kids),
        headers: headers.to_string(),
    }
}

/// Fetching as the tests do: private addresses allowed (the provider is on 127.0.0.1), only the
/// test CA trusted, short bounds.
fn options(ca: &Ca) -> FetchOptions {
    FetchOptions {
        allow_private_addresses: true,
        extra_roots: vec![ca.der()],
        skip_system_roots: true,
        timeout: Duration::from_millis(800),
        max_body_bytes: 256 * 1024,
    }
}

/// Durations a test can wait for.
fn short() -> Timing {
    Timing {
        min_lifetime: Duration::from_millis(400),
        max_lifetime: Duration::from_secs(2),
        default_lifetime: Duration::from_secs(2),
        refetch_interval: Duration::from_millis(500),
        max_stale: Duration::from_secs(3),
        retry_min: Duration::from_millis(100),
        retry_max: Duration::from_millis(200),
    }
}

fn new_cache(ca: &Ca, timing: Timing) -> (Arc<JwksCache>, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    (
        Arc::new(JwksCache::new(options(ca), timing, Arc::clone(&metrics))),
        metrics,
    )
}

fn kids(cache: &JwksCache, url: &str) -> Vec<String> {
    cache.status(url).map(|s| s.kids).unwrap_or_default()
}

/// Polls `check` until it holds or `within` passes.
async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < until, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one series in a render of `metrics` with `cache`'s samples.
fn metric(metrics: &Metrics, cache: &JwksCache, series: &str) -> Option<f64> {
    let text = metrics.render(&Sample {
        backend: "sqlite",
        jwks: cache.samples(),
        ..Sample::default()
    });
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// The fetch rules

#[tokio::test]
async fn a_private_address_is_refused_without_the_flag_and_nothing_is_connected() {
    let ca = new_ca("test CA");
    let p = Provider::start(&ca, json(&["k1"], "")).await;
    let public_only = Fetcher::new(FetchOptions {
        allow_private_addresses: false,
        ..options(&ca)
    });
    for url in [
        p.url(),
        format!("https://127.0.0.1:{}/jwks", p.addr.port()),
        format!("https://[::ffff:127.0.0.1]:{}/jwks", p.addr.port()),
    ] {
        let e = public_only.get(&url).await.unwrap_err();
        assert_eq!(e.kind, FetchErrorKind::RefusedAddress, "{url}: {e}");
        assert!(e.message.contains("loopback"), "{e}");
        assert!(e.message.contains("--jwks-allow-private-addresses"), "{e}");
    }
    assert_eq!(
        p.connections.load(Ordering::SeqCst),
        0,
        "no connection made"
    );

    // The same URL with the flag: fetched.
    let fetched = Fetcher::new(options(&ca)).get(&p.url()).await.unwrap();
    assert!(String::from_utf8_lossy(&fetched.body).contains("\"k1\""));
    assert_eq!(p.requests(), 1);

    // And through the cache: refused, counted, explained in the status.
    let metrics = Arc::new(Metrics::default());
    let cache = JwksCache::new(
        FetchOptions {
            allow_private_addresses: false,
            ..options(&ca)
        },
        short(),
        Arc::clone(&metrics),
    );
    assert!(
        cache
            .refresh(&p.url(), Duration::from_secs(2))
            .await
            .is_none()
    );
    let status = cache.status(&p.url()).unwrap();
    assert!(
        status.last_error.as_deref().unwrap().contains("loopback"),
        "{status:?}"
    );
    assert_eq!(status.key_count, 0);
    // (The background retry may have counted another by now.)
    let refused = "dropfix_jwks_fetches_total{result=\"refused_address\"}";
    assert!(metric(&metrics, &cache, refused).unwrap() >= 1.0);
    assert_eq!(
        p.connections.load(Ordering::SeqCst),
        1,
        "only the allowed fetch connected"
    );
}

#[tokio::test]
async fn a_redirect_is_refused_and_not_followed() {
    let ca = new_ca("test CA");
    let elsewhere = Provider::start(&ca, json(&["evil"], "")).await;
    let target = format!("https://127.0.0.1:{}/keys", elsewhere.addr.port());
    let p = Provider::start(&ca, Answer::Status(302, format!("Location: {target}\r\n"))).await;
    let e = Fetcher::new(options(&ca)).get(&p.url()).await.unwrap_err();
    assert_eq!(e.kind, FetchErrorKind::HttpError, "{e}");
    assert!(e.message.contains("to host 127.0.0.1"), "{e}");
    assert!(e.message.contains("not followed"), "{e}");
    assert_eq!(p.requests(), 1);
    assert_eq!(
        elsewhere.connections.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
}

#[tokio::test]
async fn a_slow_head_or_body_times_out() {
    let ca = new_ca("test CA");
    let fetcher = Fetcher::new(options(&ca));
    for answer in [Answer::SlowHead(Duration::from_secs(5)), Answer::SlowBody] {
        let p = Provider::start(&ca, answer).await;
        let started = Instant::now();
        let e = fetcher.get(&p.url()).await.unwrap_err();
        assert_eq!(e.kind, FetchErrorKind::Timeout, "{e}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(p.requests(), 1);
    }
}

#[tokio::test]
async fn an_oversized_body_is_refused_declared_or_not() {
    let ca = new_ca("test CA");
    let fetcher = Fetcher::new(options(&ca));
    for declared in [true, false] {
        let p = Provider::start(
            &ca,
            Answer::Huge {
                bytes: 4 * 1024 * 1024,
                declared,
            },
        )
        .await;
        let e = fetcher.get(&p.url()).await.unwrap_err();
        assert_eq!(e.kind, FetchErrorKind::TooLarge, "declared {declared}: {e}");
        assert!(e.message.contains("256 KiB"), "{e}");
    }
    // Just under the bound is read whole (the JSON check is the parser's).
    let p = Provider::start(
        &ca,
        Answer::Huge {
            bytes: 256 * 1024,
            declared: false,
        },
    )
    .await;
    assert_eq!(fetcher.get(&p.url()).await.unwrap().body.len(), 256 * 1024);
}

#[tokio::test]
async fn non_json_error_statuses_and_untrusted_certificates_are_refused() {
    let ca = new_ca("test CA");
    let fetcher = Fetcher::new(options(&ca));
    let p = Provider::start(&ca, Answer::Html).await;
    let e = fetcher.get(&p.url()).await.unwrap_err();
    assert_eq!(e.kind, FetchErrorKind::Invalid, "{e}");
    assert!(e.message.contains("text/html"), "{e}");

    p.set(Answer::Status(404, String::new()));
    let e = fetcher.get(&p.url()).await.unwrap_err();
    assert_eq!(e.kind, FetchErrorKind::HttpError, "{e}");
    assert!(e.message.contains("404"), "{e}");

    // A provider whose certificate another CA signed.
    p.set(json(&["k1"], ""));
    let other = new_ca("another CA");
    let e = Fetcher::new(options(&other))
        .get(&p.url())
        .await
        .unwrap_err();
    assert_eq!(e.kind, FetchErrorKind::Tls, "{e}");

    // http:// is never fetched.
    let e = fetcher
        .get(&format!("http://localhost:{}/jwks", p.addr.port()))
        .await
        .unwrap_err();
    assert_eq!(e.kind, FetchErrorKind::Invalid, "{e}");
    assert_eq!(
        p.requests(),
        2,
        "the html page and the 404; none over untrusted TLS or http"
    );
}

#[tokio::test]
async fn the_system_bundle_is_read_beside_the_extra_ca() {
    let ca = new_ca("test CA");
    let p = Provider::start(&ca, json(&["k1"], "")).await;
    let fetcher = Fetcher::new(FetchOptions {
        skip_system_roots: false,
        ..options(&ca)
    });
    fetcher.get(&p.url()).await.unwrap();

    // A CA file read at start: PEM with a certificate, or a clear refusal.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ca.pem");
    std::fs::write(&file, ca.cert.pem()).unwrap();
    let mut o = FetchOptions::default();
    o.add_ca_file(&file).unwrap();
    assert_eq!(o.extra_roots, vec![ca.der()]);
    std::fs::write(&file, "not a certificate").unwrap();
    let e = FetchOptions::default().add_ca_file(&file).unwrap_err();
    assert!(e.contains("no certificate"), "{e}");
    let e = FetchOptions::default()
        .add_ca_file(&dir.path().join("missing.pem"))
        .unwrap_err();
    assert!(e.contains("cannot read"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// The cache

#[tokio::test]
async fn rotation_new_kid_served_old_kid_dropped() {
    let ca = new_ca("test CA");
    let p = Provider::start(&ca, json(&["k1"], "Cache-Control: max-age=1\r\n")).await;
    let (cache, _) = new_cache(&ca, short());
    let url = p.url();
    assert!(cache.get(&url).is_none(), "not tracked yet");
    cache.track([url.clone()]);
    eventually(Duration::from_secs(3), "the first fetch", || {
        cache.get(&url).is_some()
    })
    .await;
    assert_eq!(kids(&cache, &url), ["k1"]);

    // The provider rotates: the background refresh (80 % of max-age=1) picks it up by itself.
    p.set(json(&["k2"], "Cache-Control: max-age=1\r\n"));
    eventually(Duration::from_secs(3), "the background refresh", || {
        kids(&cache, &url) == ["k2"]
    })
    .await;

    drop(cache);

    // Without a background refresh in between (a long lifetime): a token names a kid the cache
    // lacks. Within the refetch interval of the last fetch nothing is fetched; after it,
    // refresh fetches at once, and the old kid is gone.
    let (cache, _) = new_cache(
        &ca,
        Timing {
            max_lifetime: Duration::from_secs(60),
            default_lifetime: Duration::from_secs(60),
            ..short()
        },
    );
    p.set(json(&["k3"], ""));
    assert!(cache.refresh(&url, Duration::from_secs(2)).await.is_some());
    assert_eq!(kids(&cache, &url), ["k3"]);
    let seen = p.requests();
    p.set(json(&["k4", "k5"], ""));
    let keys = cache.refresh(&url, Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        (keys.len(), p.requests()),
        (1, seen),
        "fetched within the interval"
    );
    tokio::time::sleep(short().refetch_interval).await;
    let keys = cache.refresh(&url, Duration::from_secs(2)).await.unwrap();
    assert_eq!((keys.len(), p.requests()), (2, seen + 1));
    let mut now = kids(&cache, &url);
    now.sort();
    assert_eq!(now, ["k4", "k5"]);
    let status = cache.status(&url).unwrap();
    assert_eq!(status.key_count, 2);
    assert!(!status.stale && status.last_error.is_none(), "{status:?}");
}

#[tokio::test]
async fn an_outage_keeps_the_last_keys_until_the_staleness_bound() {
    let ca = new_ca("test CA");
    let p = Provider::start(&ca, json(&["k1"], "")).await;
    let (cache, metrics) = new_cache(&ca, short());
    let url = p.url();
    cache.track([url.clone()]);
    eventually(Duration::from_secs(3), "the first fetch", || {
        cache.get(&url).is_some()
    })
    .await;
    let fetched_at = Instant::now();

    // The provider goes down: refreshes fail, the keys keep verifying, past their lifetime.
    p.set(Answer::Status(503, String::new()));
    eventually(Duration::from_secs(4), "stale keys still served", || {
        cache
            .status(&url)
            .is_some_and(|s| s.stale && s.last_error.is_some())
    })
    .await;
    assert!(cache.get(&url).is_some());
    let refreshed = cache.refresh(&url, Duration::from_secs(1)).await;
    assert!(
        refreshed.is_some(),
        "a refresh during the outage returns the cached keys"
    );
    let status = cache.status(&url).unwrap();
    assert!(
        status.last_error.as_deref().unwrap().contains("503"),
        "{status:?}"
    );
    assert_eq!(status.kids, ["k1"]);
    assert!(status.drop_at.is_some());
    let stale_series = format!("dropfix_jwks_stale{{url=\"{url}\"}}");
    assert_eq!(metric(&metrics, &cache, &stale_series), Some(1.0));
    assert!(
        metric(
            &metrics,
            &cache,
            "dropfix_jwks_fetches_total{result=\"http_error\"}"
        )
        .unwrap()
            >= 1.0
    );

    // Past max_stale (3 s here, 72 h in production) after the last success: dropped.
    p.set(Answer::Down);
    eventually(Duration::from_secs(5), "the keys dropped", || {
        cache.get(&url).is_none()
    })
    .await;
    assert!(fetched_at.elapsed() >= short().max_stale - Duration::from_millis(100));
    let status = cache.status(&url).unwrap();
    assert_eq!((status.key_count, status.stale), (0, false), "{status:?}");
    let keys_series = format!("dropfix_jwks_keys{{url=\"{url}\"}}");
    assert_eq!(metric(&metrics, &cache, &keys_series), Some(0.0));

    // The provider is back: the next retry fetches again.
    p.set(json(&["k5"], ""));
    eventually(Duration::from_secs(3), "recovered", || {
        kids(&cache, &url) == ["k5"]
    })
    .await;
}

#[tokio::test]
async fn a_provider_that_never_answered_leaves_no_keys() {
    let ca = new_ca("test CA");
    let p = Provider::start(&ca, Answer::Down).await;
    let (cache, metrics) = new_cache(&ca, short());
    let url = p.url();
    cache.track([url.clone()]);
    assert!(cache.refresh(&url, Duration::from_secs(2)).await.is_none());
    assert!(cache.get(&url).is_none());
    let status = cache.status(&url).unwrap();
    assert!(
        status.last_success.is_none() && status.last_attempt.is_some(),
        "{status:?}"
    );
    assert!(status.last_error.is_some(), "{status:?}");
    assert_eq!(status.key_count, 0);
    let keys_series = format!("dropfix_jwks_keys{{url=\"{url}\"}}");
    assert_eq!(metric(&metrics, &cache, &keys_series), Some(0.0));
    let last = format!("dropfix_jwks_last_success_timestamp_seconds{{url=\"{url}\"}}");
    assert_eq!(metric(&metrics, &cache, &last), None);
}

#[tokio::test]
async fn the_lifetime_comes_from_cache_control_within_its_bounds() {
    let ca = new_ca("test CA");
    let hour = Duration::from_secs(3600);
    for (headers, expected) in [
        (
            "Cache-Control: public, max-age=5\r\n",
            Duration::from_secs(60),
        ),
        ("Cache-Control: max-age=900\r\n", Duration::from_secs(900)),
        (
            "Cache-Control: max-age=900\r\nAge: 300\r\n",
            Duration::from_secs(600),
        ),
        ("Cache-Control: max-age=31536000\r\n", 24 * hour),
        ("Cache-Control: no-store\r\n", Duration::from_secs(60)),
        ("", hour),
    ] {
        let p = Provider::start(&ca, json(&["k1"], headers)).await;
        // Production bounds: only one fetch happens here.
        let (cache, _) = new_cache(&ca, Timing::default());
        let url = p.url();
        assert!(cache.refresh(&url, Duration::from_secs(2)).await.is_some());
        let s = cache.status(&url).unwrap();
        let lifetime = s
            .expires
            .unwrap()
            .duration_since(s.last_success.unwrap())
            .unwrap();
        let off = lifetime.abs_diff(expected);
        assert!(
            off < Duration::from_secs(2),
            "{headers:?}: {lifetime:?}, not {expected:?}"
        );
        assert_eq!(p.requests(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_share_one_fetch() {
    let ca = new_ca("test CA");
    let p = Provider::start(&ca, Answer::SlowHead(Duration::from_millis(300))).await;
    let (cache, _) = new_cache(&ca, short());
    let url = p.url();
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let (cache, url) = (Arc::clone(&cache), url.clone());
            tokio::spawn(async move { cache.refresh(&url, Duration::from_secs(3)).await })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().is_some());
    }
    assert_eq!(p.requests(), 1);
}

/// Random kids at `rate` calls a second for `secs`: each call a refresh, as the verifier makes
/// for a kid it does not know. Returns when the provider saw each request.
async fn random_kids(cache: &Arc<JwksCache>, url: &str, secs: u64) {
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut calls = Vec::new();
    for _ in 0..secs * 1000 {
        tick.tick().await;
        let (cache, url) = (Arc::clone(cache), url.to_string());
        calls.push(tokio::spawn(async move {
            let keys = cache.refresh(&url, Duration::from_millis(100)).await;
            // The kid is random: never among them, whatever was fetched.
            assert!(keys.is_some());
        }));
    }
    for call in calls {
        call.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kids_at_1000_a_second_cause_at_most_one_fetch_per_interval() {
    let ca = new_ca("test CA");
    let p = Provider::start(&ca, json(&["k1"], "")).await;

    // Production interval (30 s): in 3 s of random kids, no fetch beyond the first.
    let (cache, metrics) = new_cache(&ca, Timing::default());
    let url = p.url();
    cache.track([url.clone()]);
    eventually(Duration::from_secs(3), "the first fetch", || {
        cache.get(&url).is_some()
    })
    .await;
    random_kids(&cache, &url, 3).await;
    assert_eq!(p.requests(), 1, "random kids made the provider fetch again");
    assert_eq!(
        metric(
            &metrics,
            &cache,
            "dropfix_jwks_fetches_total{result=\"ok\"}"
        ),
        Some(1.0)
    );
    drop(cache);

    // A 500 ms interval: about one fetch per interval, never two within one.
    let p = Provider::start(&ca, json(&["k1"], "")).await;
    let timing = Timing {
        default_lifetime: Duration::from_secs(60),
        max_lifetime: Duration::from_secs(60),
        ..short()
    };
    let interval = timing.refetch_interval;
    let (cache, _) = new_cache(&ca, timing);
    let url = p.url();
    let started = Instant::now();
    assert!(cache.refresh(&url, Duration::from_secs(2)).await.is_some());
    random_kids(&cache, &url, 3).await;
    let elapsed = started.elapsed();
    let at = p.requests.lock().unwrap().clone();
    let most = (elapsed.as_secs_f64() / interval.as_secs_f64()).ceil() as usize + 1;
    assert!(
        at.len() >= 4 && at.len() <= most,
        "{} fetches in {elapsed:?} (at most {most})",
        at.len()
    );
    for pair in at.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap + Duration::from_millis(100) >= interval,
            "two fetches {gap:?} apart (interval {interval:?})"
        );
    }
}

#[tokio::test]
async fn a_url_no_longer_tracked_is_forgotten_and_no_longer_fetched() {
    let ca = new_ca("test CA");
    let p = Provider::start(&ca, json(&["k1"], "Cache-Control: max-age=1\r\n")).await;
    let (cache, _) = new_cache(&ca, short());
    let url = p.url();
    cache.track([url.clone()]);
    eventually(Duration::from_secs(3), "the first fetch", || {
        cache.get(&url).is_some()
    })
    .await;
    assert_eq!(cache.urls(), std::slice::from_ref(&url));
    cache.track(Vec::<String>::new());
    assert!(cache.get(&url).is_none());
    assert!(cache.status(&url).is_none());
    assert!(cache.urls().is_empty());
    let seen = p.requests();
    // Its background refresh (80 % of the 1 s lifetime) would have fetched by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(p.requests(), seen);
}

#[tokio::test]
async fn a_document_that_is_not_a_jwks_is_refused_and_the_last_keys_kept() {
    let ca = new_ca("test CA");
    let p = Provider::start(&ca, json(&["k1"], "")).await;
    let (cache, metrics) = new_cache(&ca, short());
    let url = p.url();
    assert!(cache.refresh(&url, Duration::from_secs(2)).await.is_some());
    p.set(Answer::Json {
        body: "{\"hello\": \"world\"}".into(),
        headers: String::new(),
    });
    tokio::time::sleep(short().refetch_interval).await;
    let keys = cache.refresh(&url, Duration::from_secs(2)).await;
    assert_eq!(keys.map(|k| k.len()), Some(1), "the last good keys");
    let status = cache.status(&url).unwrap();
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("not a usable JWKS"),
        "{status:?}"
    );
    let invalid = "dropfix_jwks_fetches_total{result=\"invalid\"}";
    assert!(metric(&metrics, &cache, invalid).unwrap() >= 1.0);
}
