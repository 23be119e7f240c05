//! What the log says when PostgreSQL goes away under load: one ERROR line with the cause when
//! it stops answering, one line when it answers again, and not a line per refused call. The
//! database is reached through a TCP relay this test can cut (every connection dropped and new
//! ones refused), as a network partition or a database restart would.
//!
//! Needs PostgreSQL (see `support::pg`).

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::pg::TestDb;

/// A TCP relay to `upstream` that can be cut: while cut, it drops every relayed connection and
/// closes new ones at once.
struct Relay {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (accept_cut, accept_open) = (Arc::clone(&cut), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if accept_cut.load(Ordering::Relaxed) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut open = accept_open.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay { addr, cut, open }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Relaxed);
        if cut {
            for s in self.open.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// `url` with its host and port replaced by `addr`.
fn through(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, path) = rest.split_once('/').unwrap();
    let creds = auth
        .rsplit_once('@')
        .map(|(c, _)| format!("{c}@"))
        .unwrap_or_default();
    format!("{scheme}://{creds}{addr}/{path}")
}

fn upstream(url: &str) -> SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let host = rest.split('/').next().unwrap();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let with_port = if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_string()
    } else {
        format!("{host}:5432")
    };
    std::net::ToSocketAddrs::to_socket_addrs(&with_port)
        .expect("the database URL's host resolves")
        .next()
        .expect("an address for the database host")
}

#[test]
fn an_outage_under_load_is_logged_once_and_its_end_too() {
    let Some(db) = support::block_on(TestDb::create()) else {
        return;
    };
    let relay = Relay::start(upstream(&db.url));
    let url = through(&db.url, relay.addr);
    let data = tempfile::tempdir().unwrap();
    let generated = std::process::Command::new(support::server_binary())
        .args(["master-key", "generate", "--id", "mk1"])
        .output()
        .unwrap();
    let keys = String::from_utf8(generated.stdout)
        .unwrap()
        .trim()
        .to_string();
    let opts = support::Options {
        env: vec![
            ("DROPFIX_LOG", "info"),
            ("NO_COLOR", ""),
            ("DROPFIX_MASTER_KEYS", &keys),
        ],
        args: vec!["--database-url", &url, "--db-timeout-secs", "1"],
    };
    let mut server = support::Server::start(data.path(), &opts);
    let (app, _secret) = server.create_workspace(json!({"name": "outage"}));
    let call = |user: &str| json!({"app_id": app, "user_id": user}).to_string();
    assert_eq!(server.identify(call("before").as_bytes()).status, 202);

    relay.set_cut(true);
    let started = Instant::now();
    let mut refused = 0;
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(4) {
        n += 1;
        let r = server.identify(call(&format!("during-{n}")).as_bytes());
        assert_ne!(r.status / 100, 2, "stored while the database was cut off");
        refused += 1;
        let _ = server.request("GET", "/healthz", &[], b"");
    }
    relay.set_cut(false);
    support::eventually("calls are stored again", || {
        (server.identify(call("after").as_bytes()).status == 202).then_some(())
    });
    server.stop();

    let lines: Vec<String> = server.output().into_iter().map(|l| l.text).collect();
    let errors: Vec<&String> = lines.iter().filter(|l| l.contains("ERROR")).collect();
    assert!(refused > 10, "only {refused} calls during the outage");
    assert_eq!(
        errors.len(),
        1,
        "{refused} refused calls gave these ERROR lines: {errors:#?}"
    );
    assert!(errors[0].contains("stopped answering"), "{}", errors[0]);
    assert!(
        lines.iter().any(|l| l.contains("the store answers again")),
        "no recovery line: {lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("postgres: postgres:")),
        "a doubled prefix: {lines:#?}"
    );
    let all = lines.len();
    assert!(
        all < 40,
        "{all} log lines for {refused} refused calls: {lines:#?}"
    );
}
