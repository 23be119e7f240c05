//! One JWKS document fetched over HTTPS, safely: the URL comes from a workspace's settings, so
//! a fetch must not become a way to make the verifier reach inside its own network (SSRF).
//!
//! - `https://` only, with no user name or password in the URL.
//! - The host is resolved here and every address checked: private, loopback, link-local,
//!   unique-local, CGNAT, multicast, unspecified, documentation, benchmarking and reserved
//!   ranges are refused ([`refused_range`]), also inside IPv4-mapped, NAT64 and 6to4 IPv6
//!   addresses, unless the operator allows them (`--jwks-allow-private-addresses`: tests and
//!   identity providers on a private network). The connection goes to an address that was
//!   checked: the name is not looked up a second time, so a DNS answer that changes between
//!   the check and the connection (rebinding) reaches nothing it should not.
//! - TLS (rustls, ring) verifies the certificate for the host name of the URL (SNI too),
//!   against the operating system's CA bundle plus an optional extra CA file (`--jwks-ca-file`).
//! - Redirects are not followed: a 3xx is an error naming where it pointed, so the operator
//!   configures the final URL (a redirect is how an allowed host would send a fetch elsewhere).
//! - Only a `200` with a JSON media type is accepted; the body is bounded ([`MAX_BODY_BYTES`]:
//!   `Content-Length` checked first, then counted while reading) and so is the whole fetch
//!   ([`TIMEOUT`]: name resolution, connection, TLS, request and body together).
//!
//! HTTP/1.1 through hyper's client connection, one connection per fetch: fetches are rare
//! (minutes apart per URL), so nothing is pooled.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{self, HeaderMap};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

mod addresses;

pub use addresses::refused_range;

/// The largest JWKS document accepted (a provider's set holds a few keys: a few KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The most a whole fetch may take: name resolution, connection, TLS, request and body.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// How fetches are made: from `serve`'s flags; tests shorten the bounds.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Connect to private, loopback, link-local... addresses too (`--jwks-allow-private-addresses`).
    pub allow_private_addresses: bool,
    /// Trusted besides the system's CA bundle (`--jwks-ca-file`).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Leave out the system's CA bundle (tests: only their throwaway CA is trusted).
    pub skip_system_roots: bool,
    /// See [`TIMEOUT`].
    pub timeout: Duration,
    /// See [`MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            allow_private_addresses: false,
            extra_roots: Vec::new(),
            skip_system_roots: false,
            timeout: TIMEOUT,
            max_body_bytes: MAX_BODY_BYTES,
        }
    }
}

impl FetchOptions {
    /// Adds the CA certificates of a PEM file (`--jwks-ca-file`). Read at start, so a file that
    /// cannot be used stops the start with what is wrong with it.
    pub fn add_ca_file(&mut self, path: &Path) -> Result<(), String> {
        let shown = path.display();
        std::fs::metadata(path)
            .map_err(|e| format!("cannot read the JWKS CA file {shown}: {e}"))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read the JWKS CA file {shown}: {e}"))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the JWKS CA file {shown} is not valid PEM: {e}"))?;
        if certs.is_empty() {
            return Err(format!(
                "no certificate in the JWKS CA file {shown}: expected PEM CA certificates \
                 (-----BEGIN CERTIFICATE-----)"
            ));
        }
        let mut check = RootCertStore::empty();
        let (_, unusable) = check.add_parsable_certificates(certs.iter().cloned());
        if unusable > 0 {
            return Err(format!(
                "{unusable} certificate(s) in the JWKS CA file {shown} cannot serve as a trust \
                 anchor (not an X.509 CA certificate rustls can read)"
            ));
        }
        self.extra_roots.extend(certs);
        Ok(())
    }
}

/// Why a fetch failed. Its message says what happened without the body or any header value
/// beyond a redirect's host, and is safe for logs and the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    pub kind: FetchErrorKind,
    pub message: String,
}

/// What kind of failure, the `result` label of `dropfix_jwks_fetches_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchErrorKind {
    /// A status other than 200 (a redirect included), or HTTP spoken wrongly.
    HttpError,
    /// The body is larger than allowed.
    TooLarge,
    /// The fetch took longer than allowed.
    Timeout,
    /// The URL's host is, or resolves only to, an address that is refused.
    RefusedAddress,
    /// The TLS handshake or the certificate check failed.
    Tls,
    /// The URL is not one that is fetched, or the answer is not a JWKS.
    Invalid,
    /// The name does not resolve, or no address accepted the connection.
    Unreachable,
}

impl FetchErrorKind {
    pub fn label(self) -> &'static str {
        match self {
            FetchErrorKind::HttpError => "http_error",
            FetchErrorKind::TooLarge => "too_large",
            FetchErrorKind::Timeout => "timeout",
            FetchErrorKind::RefusedAddress => "refused_address",
            FetchErrorKind::Tls => "tls",
            FetchErrorKind::Invalid => "invalid",
            FetchErrorKind::Unreachable => "unreachable",
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FetchError {}

fn err(kind: FetchErrorKind, message: impl Into<String>) -> FetchError {
    FetchError {
        kind,
        message: message.into(),
    }
}

/// A successful fetch.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: Bytes,
    /// How long the answer may be cached, by its `Cache-Control` / `Expires` headers
    /// ([`cache_lifetime`]); `None` when they do not say. Not clamped here.
    pub lifetime: Option<Duration>,
}

/// A URL that may be fetched: `https`, a host, no user info.
#[derive(Debug, Clone)]
pub struct Target {
    host: String,
    /// The host as an address when the URL names one (`https://192.0.2.1/`, `https://[::1]/`).
    literal: Option<IpAddr>,
    port: u16,
    /// The `Host` header: the authority as written.
    authority: String,
    path_and_query: String,
}

impl Target {
    /// Checks `url` (also at configuration time: a workspace cannot name a URL that would never
    /// be fetched).
    pub fn parse(url: &str) -> Result<Target, FetchError> {
        let invalid = |why: &str| err(FetchErrorKind::Invalid, format!("JWKS URL: {why}"));
        let uri: Uri = url
            .parse()
            .map_err(|_| invalid("not a URL (expected https://host/path)"))?;
        if uri.scheme_str() != Some("https") {
            return Err(invalid(
                "only https:// URLs are fetched (the keys must come over a verified connection)",
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("no host (expected https://host/path)"))?;
        if authority.as_str().contains('@') {
            return Err(invalid(
                "a user name or password in the URL is not supported (JWKS are public documents)",
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(invalid("no host (expected https://host/path)"));
        }
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        Ok(Target {
            host: host.to_ascii_lowercase(),
            literal: host.parse().ok(),
            port: authority.port_u16().unwrap_or(443),
            authority: authority.as_str().to_string(),
            path_and_query,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }
}

/// Makes fetches; one per process (the TLS roots are read once, on the first fetch).
#[derive(Debug)]
pub struct Fetcher {
    options: FetchOptions,
    tls: tokio::sync::OnceCell<Arc<ClientConfig>>,
}

impl Fetcher {
    pub fn new(options: FetchOptions) -> Fetcher {
        Fetcher {
            options,
            tls: tokio::sync::OnceCell::new(),
        }
    }

    pub fn options(&self) -> &FetchOptions {
        &self.options
    }

    /// `GET url`, by the rules of the module documentation.
    pub async fn get(&self, url: &str) -> Result<Fetched, FetchError> {
        let target = Target::parse(url)?;
        match tokio::time::timeout(self.options.timeout, self.get_checked(&target)).await {
            Ok(result) => result,
            Err(_) => Err(err(
                FetchErrorKind::Timeout,
                format!(
                    "{} did not answer within {} ms (name resolution, connection, TLS and body \
                     together)",
                    target.host,
                    self.options.timeout.as_millis()
                ),
            )),
        }
    }

    async fn get_checked(&self, target: &Target) -> Result<Fetched, FetchError> {
        let addrs = self.resolve(target).await?;
        let tls = self.tls_config().await?;
        let tcp = connect_any(target, &addrs).await?;
        let name = match target.literal {
            Some(ip) => ServerName::IpAddress(ip.into()),
            None => ServerName::try_from(target.host.clone()).map_err(|_| {
                err(
                    FetchErrorKind::Invalid,
                    format!("JWKS URL: {:?} is not a valid host name", target.host),
                )
            })?,
        };
        let stream = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| {
                err(
                    FetchErrorKind::Tls,
                    format!("TLS with {} failed: {e}", target.host),
                )
            })?;
        let http_error = |e: hyper::Error| {
            err(
                FetchErrorKind::HttpError,
                format!("HTTP with {} failed: {e}", target.host),
            )
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http_error)?;
        // Driven by a task of its own, ended when this fetch ends (done, failed or timed out).
        let _connection = AbortOnDrop(tokio::spawn(connection));
        let request = Request::get(target.path_and_query.as_str())
            .header(header::HOST, target.authority.as_str())
            .header(header::ACCEPT, "application/jwk-set+json, application/json")
            .header(
                header::USER_AGENT,
                concat!("dropfix-server/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| err(FetchErrorKind::Invalid, format!("JWKS URL: {e}")))?;
        let response = sender.send_request(request).await.map_err(http_error)?;
        check_head(target, response.status(), response.headers())?;
        let max = self.options.max_body_bytes;
        let too_large = || {
            err(
                FetchErrorKind::TooLarge,
                format!(
                    "the JWKS from {} is larger than {} KiB: refused",
                    target.host,
                    max / 1024
                ),
            )
        };
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        let lifetime = cache_lifetime(response.headers(), SystemTime::now());
        let mut body = response.into_body();
        let mut bytes = Vec::with_capacity(declared.map_or(8 * 1024, |n| n as usize));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(http_error)?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > max {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(Fetched {
            body: bytes.into(),
            lifetime,
        })
    }

    /// The addresses of `target` that may be connected to; refused when there is none.
    async fn resolve(&self, target: &Target) -> Result<Vec<SocketAddr>, FetchError> {
        let found: Vec<SocketAddr> = match target.literal {
            Some(ip) => vec![SocketAddr::new(ip, target.port)],
            None => tokio::net::lookup_host((target.host.as_str(), target.port))
                .await
                .map_err(|e| {
                    err(
                        FetchErrorKind::Unreachable,
                        format!("cannot resolve {}: {e}", target.host),
                    )
                })?
                .collect(),
        };
        if self.options.allow_private_addresses {
            return Ok(found);
        }
        let allowed: Vec<SocketAddr> = found
            .iter()
            .copied()
            .filter(|a| refused_range(a.ip()).is_none())
            .collect();
        match found.first() {
            Some(first) if allowed.is_empty() => Err(err(
                FetchErrorKind::RefusedAddress,
                format!(
                    "{} is {} ({}): JWKS are fetched from public addresses only (an identity \
                     provider on a private network needs --jwks-allow-private-addresses)",
                    target.host,
                    first.ip(),
                    refused_range(first.ip()).unwrap_or("refused"),
                ),
            )),
            None => Err(err(
                FetchErrorKind::Unreachable,
                format!("{} resolves to no address", target.host),
            )),
            Some(_) => Ok(allowed),
        }
    }

    /// The TLS client settings, built on the first fetch (reading the system's CA bundle takes
    /// a few milliseconds of file reads, done off the runtime's threads).
    async fn tls_config(&self) -> Result<Arc<ClientConfig>, FetchError> {
        let options = self.options.clone();
        self.tls
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || client_config(&options))
                    .await
                    .map_err(|e| err(FetchErrorKind::Tls, format!("TLS setup failed: {e}")))?
            })
            .await
            .cloned()
    }
}

/// rustls with ring (as the verifier's own HTTPS, [`crate::tls`]) trusting the system's CA
/// bundle and the extra CA certificates.
fn client_config(options: &FetchOptions) -> Result<Arc<ClientConfig>, FetchError> {
    let mut roots = RootCertStore::empty();
    if !options.skip_system_roots {
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!(error = %e, "reading the system's CA certificates for JWKS fetches");
        }
        let (_, unusable) = roots.add_parsable_certificates(native.certs);
        if unusable > 0 {
            tracing::debug!(
                unusable,
                "system CA certificates rustls cannot use were skipped"
            );
        }
    }
    roots.add_parsable_certificates(options.extra_roots.iter().cloned());
    if roots.is_empty() {
        return Err(err(
            FetchErrorKind::Tls,
            "no trusted CA certificate for JWKS fetches: install the system's CA bundle \
             (ca-certificates) or give --jwks-ca-file",
        ));
    }
    let config = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(FetchErrorKind::Tls, format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Connects to the first of `addrs` that accepts.
async fn connect_any(
    target: &Target,
    addrs: &[SocketAddr],
) -> Result<tokio::net::TcpStream, FetchError> {
    let mut last = None;
    for addr in addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(format!("{addr}: {e}")),
        }
    }
    Err(err(
        FetchErrorKind::Unreachable,
        format!(
            "cannot connect to {} ({})",
            target.host,
            last.unwrap_or_else(|| "no address".into())
        ),
    ))
}

/// The status and the media type: a 200 with JSON, else an error that says what came.
fn check_head(target: &Target, status: StatusCode, headers: &HeaderMap) -> Result<(), FetchError> {
    if status.is_redirection() {
        let to = headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| {
                match l
                    .parse::<Uri>()
                    .ok()
                    .and_then(|u| u.host().map(str::to_owned))
                {
                    Some(host) => format!("to host {host}"),
                    None => format!("elsewhere on {}", target.host),
                }
            })
            .unwrap_or_else(|| "without a Location".into());
        return Err(err(
            FetchErrorKind::HttpError,
            format!(
                "{} answered {status}, a redirect {to}: redirects are not followed; configure \
                 the final JWKS URL",
                target.host
            ),
        ));
    }
    if status != StatusCode::OK {
        return Err(err(
            FetchErrorKind::HttpError,
            format!(
                "{} answered {status} (expected 200 with the JWKS)",
                target.host
            ),
        ));
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match media {
        Some(m)
            if m == "application/json"
                || (m.starts_with("application/") && m.ends_with("+json")) =>
        {
            Ok(())
        }
        other => Err(err(
            FetchErrorKind::Invalid,
            format!(
                "{} answered Content-Type {}, not JSON (expected application/json or \
                 application/jwk-set+json)",
                target.host,
                other.as_deref().unwrap_or("(none)")
            ),
        )),
    }
}

/// How long a response may be cached: `Cache-Control: max-age` (less `Age`), else `Expires`
/// (against `Date`, else `now`); `no-store` and `no-cache` mean 0. `None` when they do not say.
pub fn cache_lifetime(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let directives: Vec<String> = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    if directives
        .iter()
        .any(|d| d == "no-store" || d == "no-cache")
    {
        return Some(Duration::ZERO);
    }
    let max_age = directives.iter().find_map(|d| {
        let v = d.strip_prefix("max-age")?.trim_start().strip_prefix('=')?;
        v.trim().trim_matches('"').parse::<u64>().ok()
    });
    if let Some(max_age) = max_age {
        let age = headers
            .get(header::AGE)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .unwrap_or(0);
        return Some(Duration::from_secs(max_age.saturating_sub(age)));
    }
    let date = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
    };
    let expires = headers.get(header::EXPIRES)?;
    // An Expires that is not a date (often "0" or "-1") means already expired.
    let Some(expires) = date(header::EXPIRES) else {
        let _ = expires;
        return Some(Duration::ZERO);
    };
    let base = date(header::DATE).unwrap_or(now);
    Some(expires.duration_since(base).unwrap_or(Duration::ZERO))
}

/// Aborts the task when dropped: a fetch that ends (or is cancelled by its timeout) closes its
/// connection.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_with_a_host_and_no_credentials_are_fetched() {
        for bad in [
            "http://example.com/jwks",
            "ftp://example.com/jwks",
            "example.com/jwks",
            "https://user:pw@example.com/jwks",
            "https:///jwks",
            "not a url",
        ] {
            let e = Target::parse(bad).unwrap_err();
            assert_eq!(e.kind, FetchErrorKind::Invalid, "{bad}: {e}");
        }
        let t = Target::parse("https://Login.Example.com:8443/.well-known/jwks.json?v=2").unwrap();
        assert_eq!(t.host, "login.example.com");
        assert_eq!(t.port, 8443);
        assert_eq!(t.path_and_query, "/.well-known/jwks.json?v=2");
        assert_eq!(t.literal, None);
        let t = Target::parse("https://[::1]/jwks").unwrap();
        assert_eq!(t.literal, Some("::1".parse().unwrap()));
        assert_eq!(t.port, 443);
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_cache_lifetime_comes_from_cache_control_then_expires() {
        let now = httpdate::parse_http_date("Mon, 07 Dec 2026 12:00:00 GMT").unwrap();
        let life = |h: &[(&str, &str)]| cache_lifetime(&headers(h), now);
        assert_eq!(life(&[]), None);
        assert_eq!(
            life(&[("cache-control", "public, max-age=600")]),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            life(&[("cache-control", "max-age=600"), ("age", "100")]),
            Some(Duration::from_secs(500))
        );
        assert_eq!(
            life(&[("cache-control", "max-age=600, no-cache")]),
            Some(Duration::ZERO)
        );
        assert_eq!(
            life(&[
                ("cache-control", "max-age=60"),
                ("expires", "Tue, 08 Dec 2026 12:00:00 GMT")
            ]),
            Some(Duration::from_secs(60)),
            "max-age wins over Expires"
        );
        assert_eq!(
            life(&[("expires", "Mon, 07 Dec 2026 13:00:00 GMT")]),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            life(&[
                ("expires", "Mon, 07 Dec 2026 13:00:00 GMT"),
                ("date", "Mon, 07 Dec 2026 12:30:00 GMT")
            ]),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(life(&[("expires", "0")]), Some(Duration::ZERO));
        assert_eq!(life(&[("cache-control", "public")]), None);
    }

    #[test]
    fn a_redirect_names_its_target_host_and_a_non_json_answer_is_refused() {
        let t = Target::parse("https://idp.example/jwks").unwrap();
        let e = check_head(
            &t,
            StatusCode::FOUND,
            &headers(&[("location", "https://evil.example/keys")]),
        )
        .unwrap_err();
        assert_eq!(e.kind, FetchErrorKind::HttpError);
        assert!(e.message.contains("evil.example"), "{e}");
        let e = check_head(
            &t,
            StatusCode::OK,
            &headers(&[("content-type", "text/html")]),
        )
        .unwrap_err();
        assert_eq!(e.kind, FetchErrorKind::Invalid);
        for ok in [
            "application/json",
            "application/jwk-set+json; charset=utf-8",
        ] {
            check_head(&t, StatusCode::OK, &headers(&[("content-type", ok)])).unwrap();
        }
    }
}
