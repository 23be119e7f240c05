//! A local identity provider for the tests: a throwaway CA (rcgen) and an HTTPS server on
//! 127.0.0.1 port 0 that serves a JWKS (or misbehaves as a test tells it), counting the
//! connections and requests it gets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dropfix_server::issuers::fetch::FetchOptions;
use dropfix_server::issuers::jwks::Timing;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

pub fn new_ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

impl Ca {
    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A TLS acceptor serving a certificate for localhost and 127.0.0.1 signed by this CA.
    pub fn acceptor(&self) -> TlsAcceptor {
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
pub fn jwks(kids: &[&str]) -> String {
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
pub enum Answer {
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

pub struct Provider {
    pub addr: SocketAddr,
    pub answer: Arc<Mutex<Answer>>,
    pub connections: Arc<AtomicUsize>,
    /// When each request's head arrived.
    pub requests: Arc<Mutex<Vec<Instant>>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Provider {
    pub async fn start(ca: &Ca, answer: Answer) -> Provider {
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
    pub fn url(&self) -> String {
        format!(
            "https://localhost:{}/.well-known/jwks.json",
            self.addr.port()
        )
    }

    pub fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn requests(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

pub async fn respond<S: tokio::io::AsyncWrite + Unpin>(
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

pub fn json(kids: &[&str], headers: &str) -> Answer {
    Answer::Json {
        body: jwks(kids),
        headers: headers.to_string(),
    }
}

/// Fetching as the tests do: private addresses allowed (the provider is on 127.0.0.1), only the
/// test CA trusted, short bounds.
pub fn options(ca: &Ca) -> FetchOptions {
    FetchOptions {
        allow_private_addresses: true,
        extra_roots: vec![ca.der()],
        skip_system_roots: true,
        timeout: Duration::from_millis(800),
        max_body_bytes: 256 * 1024,
    }
}

/// Durations a test can wait for.
pub fn short() -> Timing {
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
