//! TLS to PostgreSQL by the URL's sslmode: a server that does not offer TLS when the URL asks for
//! it, and a certificate that does not lead to the given CA, both fail the start with a message
//! that says so. (The whole store suite also runs over `sslmode=verify-full` in the test command:
//! scripts/postgres-tls.sh.)

mod support;

use std::io::{Read, Write};

use dropfix_server::sealing::{Keyring, MasterKey};
use dropfix_server::store::postgres::PgOptions;
use dropfix_server::store::{Backend, Hooks, Store};

async fn open(url: &str) -> Result<Store, String> {
    let ring = Keyring::new(vec![MasterKey::generate("mk1").unwrap()]).unwrap();
    let opts = PgOptions {
        timeout: std::time::Duration::from_secs(3),
        ..PgOptions::new(url)
    };
    Store::open(&Backend::Postgres(opts), Hooks::new(ring))
        .await
        .map_err(|e| e.to_string())
}

/// What PostgreSQL without TLS answers to a client's SSLRequest: `N`.
fn server_without_tls() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut request = [0u8; 8];
            if conn.read_exact(&mut request).is_ok() {
                let _ = conn.write_all(b"N");
            }
        }
    });
    port
}

#[tokio::test]
async fn tls_required_of_a_server_without_it_fails_naming_sslmode() {
    let port = server_without_tls();
    for mode in ["require", "verify-ca", "verify-full"] {
        let url =
            format!("postgres://u:p@127.0.0.1:{port}/db?sslmode={mode}&sslrootcert=/dev/null");
        let url = if mode == "require" {
            url.replace("&sslrootcert=/dev/null", "")
        } else {
            url
        };
        let Err(e) = open(&url).await else {
            panic!("{mode}: opened");
        };
        assert!(
            e.contains("sslmode") || e.contains("sslrootcert"),
            "{mode}: {e}"
        );
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_fails_the_connection() {
    if support::pg::skipped() {
        return;
    }
    // A CA that signed nothing the server has.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong-ca.pem");
    std::fs::write(&wrong, ca.pem()).unwrap();
    // The test server, asked for verify-full against that CA (whatever sslmode it was given).
    let server = support::pg::server_url();
    let base = server.split_once('?').map_or(server.as_str(), |(b, _)| b);
    let url = format!("{base}?sslmode=verify-full&sslrootcert={}", wrong.display());
    let Err(e) = open(&url).await else {
        panic!("a certificate not from the given CA was accepted");
    };
    assert!(e.contains("certificate") || e.contains("sslmode"), "{e}");
    // And the same server with the CA it is meant to have (in the TLS run) still works.
    if server.contains("sslmode=verify-full") {
        support::pg::connect(&server).await.unwrap();
    }
}
