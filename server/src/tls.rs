//! HTTPS on the verifier itself (`serve --tls-cert FILE --tls-key FILE`), so one box can serve
//! browsers without a proxy in front.
//!
//! rustls with ring as its crypto provider: TLS 1.2 and 1.3 only, ALPN offering `h2` and
//! `http/1.1` (the connection is then served by hyper-util's auto builder). The certificate (a
//! PEM full chain, leaf first) and its key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC) are checked at
//! start: unreadable files, no certificate, no key, a key that does not match the certificate, a
//! certificate not yet valid or expired each stop the start with a message naming the file.
//! While serving, the files are checked every [`WATCH_EVERY`] (and at once on SIGHUP): a changed
//! pair is loaded and served to new connections; one that fails the checks is logged and the
//! previous certificate kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};

/// How often the certificate and key files are checked for a change.
pub const WATCH_EVERY: Duration = Duration::from_secs(10);

/// Where the certificate chain and its private key are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A loaded certificate: what rustls serves, and when it stops being valid.
struct Loaded {
    key: Arc<CertifiedKey>,
    not_after: SystemTime,
}

/// The certificate in use, swapped when the files change.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.0.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

/// HTTPS for the verifier's listener.
pub struct Tls {
    files: TlsFiles,
    acceptor: TlsAcceptor,
    current: Arc<Current>,
    /// When the certificate in use expires (for the logs).
    not_after: RwLock<SystemTime>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

/// ring, chosen for build time on small build machines (aws-lc-rs needs cmake and a long C
/// build). rustls 0.23.48 marks it deprecated because ring has no post-quantum key exchange
/// (X25519MLKEM768): handshakes use X25519 and the NIST curves, as most of the web still does.
/// Moving to aws-lc-rs is a one-line change here and in Cargo.toml.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn when(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Reads and checks the pair (see the module documentation), as of `now`.
fn load(files: &TlsFiles, now: SystemTime) -> Result<Loaded, String> {
    let cert_path = files.cert.display();
    let key_path = files.key.display();
    std::fs::metadata(&files.cert)
        .map_err(|e| format!("cannot read the TLS certificate {cert_path}: {e}"))?;
    std::fs::metadata(&files.key)
        .map_err(|e| format!("cannot read the TLS key {key_path}: {e}"))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| format!("cannot read the TLS certificate {cert_path}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the TLS certificate file {cert_path} is not valid PEM: {e}"))?;
    let Some(leaf) = chain.first() else {
        return Err(format!(
            "no certificate in {cert_path}: expected PEM (-----BEGIN CERTIFICATE-----), the \
             server's certificate first, then its chain"
        ));
    };
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!(
            "no private key in {key_path} ({e}): expected PEM, PKCS#8 (BEGIN PRIVATE KEY), \
             PKCS#1 RSA (BEGIN RSA PRIVATE KEY) or SEC1 EC (BEGIN EC PRIVATE KEY)"
        )
    })?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| format!("the certificate in {cert_path} cannot be read: {e}"))?;
    let validity = parsed.validity();
    let to_system = |t: &x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            SystemTime::UNIX_EPOCH
        }
    };
    let (not_before, not_after) = (
        to_system(&validity.not_before),
        to_system(&validity.not_after),
    );
    if now < not_before {
        return Err(format!(
            "the certificate in {cert_path} is not valid before {} (check the clock, or the file)",
            when(not_before)
        ));
    }
    if now > not_after {
        return Err(format!(
            "the certificate in {cert_path} expired on {}: renew it",
            when(not_after)
        ));
    }
    let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => format!(
            "the private key in {key_path} does not belong to the certificate in {cert_path}"
        ),
        e => format!("the TLS key in {key_path} cannot be used: {e}"),
    })?;
    Ok(Loaded {
        key: Arc::new(key),
        not_after,
    })
}

impl Tls {
    /// Loads and checks the pair; the error says what is wrong with which file.
    pub fn new(files: TlsFiles) -> Result<Tls, String> {
        let loaded = load(&files, SystemTime::now())?;
        let current = Arc::new(Current(RwLock::new(loaded.key)));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            files,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            current,
            not_after: RwLock::new(loaded.not_after),
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// When the certificate in use expires.
    pub fn not_after(&self) -> SystemTime {
        *self.not_after.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads the files again and serves them to new connections; on an error the certificate in
    /// use stays.
    pub fn reload(&self) -> Result<(), String> {
        let loaded = load(&self.files, SystemTime::now())?;
        *self.current.0.write().unwrap_or_else(|e| e.into_inner()) = loaded.key;
        *self.not_after.write().unwrap_or_else(|e| e.into_inner()) = loaded.not_after;
        Ok(())
    }

    /// Watches the files (every [`WATCH_EVERY`], and at SIGHUP) and reloads them when they
    /// change. Ends with the runtime.
    pub fn spawn_watcher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let tls = Arc::clone(self);
        tokio::spawn(async move {
            let mut seen = stamp(&tls.files);
            let mut tick = tokio::time::interval(WATCH_EVERY);
            tick.tick().await;
            #[cfg(unix)]
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let forced = match hup.as_mut() {
                    Some(h) => tokio::select! {
                        _ = tick.tick() => false,
                        _ = h.recv() => true,
                    },
                    None => {
                        tick.tick().await;
                        false
                    }
                };
                #[cfg(not(unix))]
                let forced = {
                    tick.tick().await;
                    false
                };
                let now = stamp(&tls.files);
                if !forced && now == seen {
                    continue;
                }
                seen = now;
                match tls.reload() {
                    Ok(()) => tracing::info!(
                        cert = %tls.files.cert.display(),
                        expires = %when(tls.not_after()),
                        "TLS certificate reloaded; new connections get it"
                    ),
                    Err(e) => tracing::error!(
                        error = %e,
                        "TLS certificate not reloaded; the previous one is still served"
                    ),
                }
            }
        })
    }
}

/// What tells a file changed: modification time and length of both files.
fn stamp(files: &TlsFiles) -> [Option<(SystemTime, u64)>; 2] {
    let of = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    };
    [of(&files.cert), of(&files.key)]
}
