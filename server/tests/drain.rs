//! Shutdown as a load balancer needs it: after SIGTERM the verifier keeps serving for the drain
//! period with `/healthz` at 503 `draining` and HTTP/1.1 responses closing their connections,
//! then closes its listener, finishes what is in flight and exits promptly. Behind HAProxy, a
//! rolling restart under load loses no call.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Response, parse_response, start_binary};

/// One request on a keep-alive connection (no `Connection: close` from the client), read up to
/// the end of its response.
fn keep_alive(addr: SocketAddr, method: &str, path: &str, body: &str) -> Response {
    try_keep_alive(addr, method, path, body).unwrap()
}

fn try_keep_alive(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(res) = parse_response(&buf) {
            return Ok(res);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn sigterm_drains_then_closes_the_listener_and_exits_promptly() {
    // Long enough that a loaded machine still sees the drain before it ends.
    let drain = Duration::from_secs(5);
    let (mut server, _dir, app, _secret) = start_binary(&["--drain-secs", "5"], &[]);
    let addr = server.addr;
    let call = json!({"app_id": app, "user_id": "drained-user"}).to_string();

    let before = keep_alive(addr, "GET", "/healthz", "");
    assert_eq!(before.status, 200);
    assert_eq!(
        before.header("connection"),
        None,
        "keep-alive before the signal"
    );

    server.signal("TERM");
    let signalled = Instant::now();
    let health = support::eventually("healthz says draining", || {
        try_keep_alive(addr, "GET", "/healthz", "")
            .ok()
            .filter(|r| r.status == 503)
    });
    assert!(signalled.elapsed() < drain, "503 while draining");
    assert_eq!(health.json()["status"], "draining");
    assert_eq!(health.header("connection"), Some("close"));

    // Still served (new connections too), each response closing its connection.
    let stored = keep_alive(addr, "POST", "/v1/identify", &call);
    assert_eq!(stored.status, 202, "{}", stored.text());
    assert_eq!(stored.header("connection"), Some("close"));

    let status = server
        .wait_exit(drain + Duration::from_secs(10))
        .expect("the verifier exits after draining");
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took >= drain,
        "exited after {took:?}, before the drain period"
    );
    assert!(
        took < drain + Duration::from_secs(3),
        "exited {took:?} after the signal: the drain is {drain:?}, the rest should be prompt"
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener is closed once the process is gone"
    );
    let out = server.output();
    assert!(out.iter().any(|l| l.text.contains("draining")), "{out:?}");
}

#[test]
fn a_second_signal_cuts_the_drain_short() {
    let (mut server, _dir, _app, _secret) = start_binary(&["--drain-secs", "30"], &[]);
    server.signal("TERM");
    support::eventually("healthz says draining", || {
        try_keep_alive(server.addr, "GET", "/healthz", "")
            .ok()
            .filter(|r| r.status == 503)
    });
    let second = Instant::now();
    server.signal("INT");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exits soon after the second signal");
    assert!(status.success(), "{status:?}");
    assert!(
        second.elapsed() < Duration::from_secs(3),
        "{:?}",
        second.elapsed()
    );
}

/// `dropfix-server serve` on PostgreSQL at `port` with the master keys `keys` (the same on
/// every instance), draining 2 s on SIGTERM.
fn start_on_postgres(url: &str, keys: &str, data: &std::path::Path, port: u16) -> support::Server {
    let opts = support::Options {
        env: vec![
            ("DROPFIX_LOG", "info"),
            ("NO_COLOR", ""),
            ("DROPFIX_MASTER_KEYS", keys),
        ],
        args: vec!["--database-url", url, "--drain-secs", "2"],
    };
    support::Server::start_at(data, &format!("127.0.0.1:{port}"), &opts)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills HAProxy when the test ends, however it ends.
struct Proxy(std::process::Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two verifiers on one PostgreSQL behind HAProxy as deploy/haproxy.cfg sets it up (keep-alive
/// to the verifiers, no retries of a request a verifier dropped; health checks on /healthz every
/// 200 ms, two failed ones take an instance out),
/// under steady load; each is restarted in turn (SIGTERM, wait, start again on its port). No
/// call fails and every acknowledged call is stored.
#[test]
fn a_rolling_restart_behind_haproxy_fails_no_call() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let Some(db) = support::block_on(support::pg::TestDb::create()) else {
        return;
    };
    let haproxy = std::process::Command::new("haproxy").arg("-v").output();
    if haproxy.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is not installed (scripts/setup.sh installs it)"
        );
        eprintln!("haproxy is not installed: skipping the rolling-restart test");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let generated = std::process::Command::new(support::server_binary())
        .args(["master-key", "generate", "--id", "mk1"])
        .output()
        .unwrap();
    assert!(generated.status.success(), "{generated:?}");
    let keys = String::from_utf8(generated.stdout)
        .unwrap()
        .trim()
        .to_string();
    let (port_a, port_b, front) = (free_port(), free_port(), free_port());
    let mut a = start_on_postgres(&db.url, &keys, data.path(), port_a);
    let mut b = start_on_postgres(&db.url, &keys, data.path(), port_b);
    let (app, _secret) = b.create_workspace(json!({"name": "rolling"}));
    let cfg = data.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    maxconn 1000\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n\
             \x20   timeout server 10s\n    option http-keep-alive\n\
             frontend fe\n    bind 127.0.0.1:{front}\n    default_backend be\n\
             backend be\n    balance roundrobin\n    option httpchk GET /healthz\n\
             \x20   http-check expect status 200\n\
             \x20   timeout check 2s\n\
             \x20   default-server check inter 200ms fall 2 rise 2\n\
             \x20   server a 127.0.0.1:{port_a}\n    server b 127.0.0.1:{port_b}\n"
        ),
    )
    .unwrap();
    let _proxy = Proxy(
        std::process::Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start haproxy"),
    );
    let front: SocketAddr = format!("127.0.0.1:{front}").parse().unwrap();
    let app_id = app.clone();
    let identify = move |user: &str| {
        let body = json!({"app_id": app_id, "user_id": user}).to_string();
        let req = support::build_request(
            "POST",
            "/v1/identify",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        support::try_raw_request(front, &req)
    };
    support::eventually("both verifiers up behind HAProxy", || {
        identify("warm-up").ok().filter(|r| r.status == 202)
    });

    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let load: Vec<_> = (0..4)
        .map(|t| {
            let (stop, acknowledged, failures) = (
                Arc::clone(&stop),
                Arc::clone(&acknowledged),
                Arc::clone(&failures),
            );
            let identify = identify.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let user = format!("roll-{t}-{n}");
                    n += 1;
                    match identify(&user) {
                        Ok(r) if r.status == 202 => acknowledged.lock().unwrap().push(user),
                        Ok(r) => failures.lock().unwrap().push(format!(
                            "{user}: {} {}",
                            r.status,
                            r.text()
                        )),
                        Err(e) => failures.lock().unwrap().push(format!("{user}: {e}")),
                    }
                }
            })
        })
        .collect();

    for (server, port) in [(&mut a, port_a), (&mut b, port_b)] {
        std::thread::sleep(Duration::from_millis(800));
        server.signal("TERM");
        assert!(
            server.wait_exit(Duration::from_secs(20)).is_some(),
            "an instance did not stop"
        );
        *server = start_on_postgres(&db.url, &keys, data.path(), port);
        support::eventually("the restarted instance is healthy", || {
            (server.request("GET", "/healthz", &[], b"").status == 200).then_some(())
        });
        // Back in HAProxy's rotation (two good checks 200 ms apart) before the next one goes.
        std::thread::sleep(Duration::from_millis(1000));
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    let acknowledged = acknowledged.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed calls: {failures:?}",
        failures.len()
    );
    assert!(
        acknowledged.len() > 100,
        "only {} calls",
        acknowledged.len()
    );
    let stored: std::collections::HashSet<String> = a
        .users(&app)
        .iter()
        .map(|u| u["user_id"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|u| !stored.contains(*u))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
}
