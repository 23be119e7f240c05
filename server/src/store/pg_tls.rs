//! TLS to PostgreSQL, as libpq's `sslmode` describes it, through rustls (ring, as the
//! verifier's own HTTPS: `crate::tls`).
//!
//! tokio-postgres reads only `disable`, `prefer` and `require`, and refuses other parameters, so
//! `sslmode` and `sslrootcert` are taken out of the URL here and applied as libpq would:
//!
//! | sslmode | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | no | - |
//! | `prefer` (the default) | if the server offers TLS | no |
//! | `require` | yes, or the connection fails | no; with `sslrootcert`, as `verify-ca` |
//! | `verify-ca` | yes | signed by a CA in `sslrootcert` |
//! | `verify-full` | yes | as `verify-ca`, and issued for the host name connected to |
//!
//! `sslrootcert` is a PEM file of CA certificates; without it `verify-ca` and `verify-full` read
//! libpq's default, `~/.postgresql/root.crt`, and fail with a clear message when it is missing.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::StoreError;

/// libpq's `sslmode` values this store honours (`allow` is read as `prefer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, StoreError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(StoreError::Setup(format!(
                    "invalid --database-url: sslmode={other:?} is not one of disable, allow, \
                     prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }
}

/// The connection settings of a database URL, and the TLS connector its `sslmode` asks for.
pub fn config(url: &str) -> Result<(tokio_postgres::Config, MakeRustlsConnect), StoreError> {
    let (rest, mode, root) = split(url)?;
    let mut cfg = tokio_postgres::Config::from_str(&rest)
        .map_err(|e| StoreError::Setup(format!("invalid --database-url: {e}")))?;
    // With a CA file (given, or libpq's default one present), require checks the chain, as
    // libpq does.
    let root = root.or_else(|| (mode == SslMode::Require).then(default_root).flatten());
    let mode = match (mode, &root) {
        (SslMode::Require, Some(_)) => SslMode::VerifyCa,
        (m, _) => m,
    };
    cfg.ssl_mode(match mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        _ => PgSslMode::Require,
    });
    let provider = crate::tls::provider();
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => Arc::new(Lenient {
            provider: Arc::clone(&provider),
            chain: None,
        }),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = roots(root, mode)?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|e| StoreError::Setup(format!("sslrootcert: {e}")))?;
            if mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(Lenient {
                    provider: Arc::clone(&provider),
                    chain: Some(webpki),
                })
            }
        }
    };
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Setup(format!("TLS setup failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((cfg, MakeRustlsConnect::new(client)))
}

/// Takes `sslmode` and `sslrootcert` out of a URL (`postgres://...?sslmode=...`) or a key=value
/// string (`host=... sslmode=...`). Client certificates are not supported: refused by name.
fn split(url: &str) -> Result<(String, SslMode, Option<PathBuf>), StoreError> {
    let mut mode = SslMode::Prefer;
    let mut root = None;
    let mut take = |k: &str, v: &str| -> Result<bool, StoreError> {
        match k {
            "sslmode" => mode = SslMode::parse(v)?,
            "sslrootcert" => root = Some(PathBuf::from(v)),
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(StoreError::Setup(format!(
                    "invalid --database-url: {k} (client certificates) is not supported; \
                     authenticate with a password"
                )));
            }
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                // The other parameters are kept byte for byte (re-encoding would turn a %20 into
                // a + that tokio-postgres reads literally).
                let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(&decode(k), &decode(v))? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            match word.split_once('=') {
                Some((k, v)) if take(k.trim(), v.trim_matches('\'').trim())? => {}
                _ => kept.push(word),
            }
        }
        kept.join(" ")
    };
    Ok((rest, mode, root))
}

/// libpq's default CA file, `~/.postgresql/root.crt`, when it exists.
fn default_root() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
        .filter(|p| p.exists())
}

fn roots(file: Option<PathBuf>, mode: SslMode) -> Result<RootCertStore, StoreError> {
    let name = if mode == SslMode::VerifyFull {
        "verify-full"
    } else {
        "verify-ca"
    };
    let file = match file {
        Some(f) => f,
        None => default_root().ok_or_else(|| {
            StoreError::Setup(format!(
                "sslmode={name} checks the database's certificate against a CA: add \
                     sslrootcert=/path/to/ca.pem to --database-url"
            ))
        })?,
    };
    let mut roots = RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&file)
        .and_then(|i| i.collect())
        .map_err(|e| {
            StoreError::Setup(format!("cannot read sslrootcert {}: {e}", file.display()))
        })?;
    for c in certs {
        roots
            .add(c)
            .map_err(|e| StoreError::Setup(format!("sslrootcert {}: {e}", file.display())))?;
    }
    if roots.is_empty() {
        return Err(StoreError::Setup(format!(
            "sslrootcert {} holds no certificate",
            file.display()
        )));
    }
    Ok(roots)
}

/// What libpq checks below `verify-full`: nothing (`prefer`, `require`), or the chain to a CA in
/// `sslrootcert` without comparing the certificate's name with the host (`verify-ca`; webpki
/// checks the chain first, so a name error means the chain passed). The handshake signatures are
/// verified either way, so the session keys belong to whoever holds the certificate's key.
#[derive(Debug)]
struct Lenient {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_both_url_forms() {
        let (rest, mode, root) = split(
            "postgres://u:p@h:5432/db?sslmode=verify-full&sslrootcert=%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@h:5432/db?application_name=x");
        assert_eq!(mode, SslMode::VerifyFull);
        assert_eq!(root, Some(PathBuf::from("/ca.pem")));
        let (rest, mode, root) = split("postgres://u@h/db").unwrap();
        assert_eq!(
            (rest.as_str(), mode, root),
            ("postgres://u@h/db", SslMode::Prefer, None)
        );
        let (rest, mode, _) = split("host=h user=u sslmode=require dbname=d").unwrap();
        assert_eq!(
            (rest.as_str(), mode),
            ("host=h user=u dbname=d", SslMode::Require)
        );
        let e = split("postgres://h/db?sslmode=verify_full").unwrap_err();
        assert!(e.to_string().contains("sslmode"), "{e}");
        let e = split("postgres://h/db?sslcert=/c.pem").unwrap_err();
        assert!(e.to_string().contains("client certificates"), "{e}");
    }

    #[test]
    fn verify_modes_need_a_ca() {
        // SAFETY of the test: HOME pointed at an empty directory, so libpq's default is absent.
        let dir = tempfile::tempdir().unwrap();
        let e = roots(None, SslMode::VerifyFull);
        if std::env::var_os("HOME")
            .is_some_and(|h| !PathBuf::from(h).join(".postgresql/root.crt").exists())
        {
            assert!(e.unwrap_err().to_string().contains("sslrootcert"));
        }
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = roots(Some(empty), SslMode::VerifyCa).unwrap_err();
        assert!(e.to_string().contains("holds no certificate"), "{e}");
    }
}
