//! The bad-input matrix: hostile and broken requests against the real `dropfix-server` binary.
//!
//! Every case must get the right status, a JSON error body with a code, a message that helps
//! (naming the field where one is at fault) and `field` where it applies; must store nothing
//! (checked through the admin API's user list after each case); and must leave the server
//! healthy (`GET /healthz` is 200 after each case). Cases that only an HTTP library would refuse
//! to send (invalid UTF-8, lying lengths, oversized headers) go over a raw TCP connection.
//!
//! Protocol-level rejections that happen before any route runs (a request line or header block
//! that is not HTTP, headers over the limit) are answered by the HTTP layer itself; for those
//! only the status is checked, not the body.

#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::json;
use support::{HANG_GUARD, Options, Response, Server, build_request};

/// What a case must produce.
struct Expect {
    status: u16,
    /// `error.code`, when the contract or the core pins it.
    code: Option<&'static str>,
    /// `error.field`, when a field is at fault.
    field: Option<&'static str>,
    /// Whether the body must be the JSON error shape (false for HTTP-layer rejections).
    json: bool,
}

const fn err(status: u16, code: &'static str, field: &'static str) -> Expect {
    Expect {
        status,
        code: Some(code),
        field: if field.is_empty() { None } else { Some(field) },
        json: true,
    }
}

/// A status and a JSON error body whose code the contract leaves to the server.
const fn status(status: u16) -> Expect {
    Expect {
        status,
        code: None,
        field: None,
        json: true,
    }
}

/// An HTTP-layer rejection: only the status is checked.
const fn http_layer(status: u16) -> Expect {
    Expect {
        status,
        code: None,
        field: None,
        json: false,
    }
}

enum Send {
    /// `POST /v1/identify`, `Content-Type: application/json`, this body.
    Body(Vec<u8>),
    /// These exact bytes on a fresh connection.
    Raw(Vec<u8>),
    /// These bytes, then the write half is shut: for requests whose declared length is a lie.
    RawThenEof(Vec<u8>),
}

struct Case {
    name: &'static str,
    send: Send,
    expect: Expect,
}

fn body(s: &str) -> Send {
    Send::Body(s.as_bytes().to_vec())
}

fn json_body(v: serde_json::Value) -> Send {
    Send::Body(v.to_string().into_bytes())
}

fn cases(app: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |name, send, expect| cases.push(Case { name, send, expect });
    let ok = |extra: &str| format!(r#"{{"app_id":"{app}","user_id":"u1"{extra}}}"#);

    // Malformed and truncated JSON.
    for (name, text) in [
        ("empty body", String::new()),
        (
            "truncated object",
            format!(r#"{{"app_id":"{app}","user_id":"u1""#),
        ),
        (
            "truncated inside a string",
            format!(r#"{{"app_id":"{app}","user_id":"u"#),
        ),
        ("trailing garbage", format!("{} xyz", ok(""))),
        ("two JSON documents", format!("{}{}", ok(""), ok(""))),
        ("not JSON at all", "user_id=1".into()),
        ("array body", "[1,2]".into()),
        ("string body", r#""hello""#.into()),
        ("null body", "null".into()),
        (
            "single quotes",
            format!("{{'app_id':'{app}','user_id':'u1'}}"),
        ),
        (
            "trailing comma",
            format!(r#"{{"app_id":"{app}","user_id":"u1",}}"#),
        ),
    ] {
        add(name, body(&text), err(400, "invalid_json", ""));
    }

    // Missing, empty, oversized and wrongly typed ids.
    add(
        "user_id missing",
        json_body(json!({"app_id": app})),
        err(400, "missing_field", "user_id"),
    );
    add(
        "user_id null",
        json_body(json!({"app_id": app, "user_id": null})),
        err(400, "missing_field", "user_id"),
    );
    add(
        "user_id empty",
        json_body(json!({"app_id": app, "user_id": ""})),
        err(400, "empty_value", "user_id"),
    );
    add(
        "user_id 256 bytes",
        json_body(json!({"app_id": app, "user_id": "x".repeat(256)})),
        err(400, "too_long", "user_id"),
    );
    for (name, id) in [
        ("user_id a float", json!(4.5)),
        ("user_id a boolean", json!(true)),
        ("user_id an object", json!({"id": 1})),
        ("user_id an array", json!(["1"])),
    ] {
        add(
            name,
            json_body(json!({"app_id": app, "user_id": id})),
            err(400, "invalid_type", "user_id"),
        );
    }
    add(
        "user_id beyond i64",
        body(&format!(
            r#"{{"app_id":"{app}","user_id":18446744073709551616}}"#
        )),
        err(400, "invalid_type", "user_id"),
    );
    add(
        "app_id missing",
        json_body(json!({"user_id": "u1"})),
        err(400, "missing_field", "app_id"),
    );
    add(
        "app_id a number",
        json_body(json!({"app_id": 7, "user_id": "u1"})),
        err(400, "invalid_type", "app_id"),
    );

    // Control characters in ids.
    for (name, id) in [
        ("user_id with NUL", "a\u{0}b"),
        ("user_id with ESC", "a\u{1b}[31mred"),
        ("user_id with newline", "u1\nFAKE LOG LINE"),
        ("user_id with DEL", "a\u{7f}"),
        ("user_id with C1 NEL", "a\u{85}"),
    ] {
        add(
            name,
            json_body(json!({"app_id": app, "user_id": id})),
            err(400, "invalid_characters", "user_id"),
        );
    }
    // Control characters in trait values: NUL could not be stored by every backend.
    for (name, traits, field) in [
        (
            "NUL in traits.name",
            json!({"name": "Ada\u{0}"}),
            "traits.name",
        ),
        (
            "ESC in traits.plan",
            json!({"plan": "pro\u{1b}[2J"}),
            "traits.plan",
        ),
        (
            "NUL in a custom trait",
            json!({"team": "a\u{0}b"}),
            "traits.team",
        ),
    ] {
        add(
            name,
            json_body(json!({"app_id": app, "user_id": "u1", "traits": traits})),
            err(400, "invalid_characters", field),
        );
    }
    add(
        "app_id with a tab",
        json_body(json!({"app_id": format!("{app}\t"), "user_id": "u1"})),
        err(400, "invalid_characters", "app_id"),
    );
    add(
        "raw control byte inside a JSON string",
        Send::Body(format!("{{\"app_id\":\"{app}\",\"user_id\":\"a\u{1}b\"}}").into_bytes()),
        err(400, "invalid_json", ""),
    );

    // Invalid UTF-8 and broken escapes.
    let mut bad_utf8 = format!(r#"{{"app_id":"{app}","user_id":""#).into_bytes();
    bad_utf8.extend_from_slice(b"\xff\xfe\xc3\x28");
    bad_utf8.extend_from_slice(br#""}"#);
    add(
        "invalid UTF-8 in user_id",
        Send::Body(bad_utf8),
        err(400, "invalid_json", ""),
    );
    add(
        "lone surrogate escape",
        body(&format!(r#"{{"app_id":"{app}","user_id":"\ud800"}}"#)),
        err(400, "invalid_json", ""),
    );
    add(
        "UTF-8 BOM before the body",
        Send::Body([b"\xef\xbb\xbf".as_slice(), ok("").as_bytes()].concat()),
        err(400, "invalid_json", ""),
    );

    // Numbers: NaN and Infinity literals, negative and huge MRR, wrong types.
    for (name, lit) in [
        ("mrr NaN literal", "NaN"),
        ("mrr Infinity literal", "Infinity"),
        ("mrr -Infinity literal", "-Infinity"),
        ("mrr overflowing literal 1e999", "1e999"),
        ("mrr hex literal", "0x10"),
        ("mrr with leading zeros", "007"),
    ] {
        add(
            name,
            body(&ok(&format!(r#","traits":{{"mrr":{lit}}}"#))),
            err(400, "invalid_json", ""),
        );
    }
    for (name, mrr) in [
        ("mrr negative", json!(-1)),
        ("mrr slightly negative", json!(-0.01)),
        ("mrr above 1e12", json!(1.5e12)),
        ("mrr 1e300", json!(1e300)),
    ] {
        add(
            name,
            json_body(json!({"app_id": app, "user_id": "u1", "traits": {"mrr": mrr}})),
            err(400, "invalid_value", "traits.mrr"),
        );
    }
    add(
        "mrr a string",
        json_body(json!({"app_id": app, "user_id": "u1", "traits": {"mrr": "49"}})),
        err(400, "invalid_type", "traits.mrr"),
    );
    add(
        "plan a number",
        json_body(json!({"app_id": app, "user_id": "u1", "traits": {"plan": 3}})),
        err(400, "invalid_type", "traits.plan"),
    );
    add(
        "email an array",
        json_body(json!({"app_id": app, "user_id": "u1", "traits": {"email": ["a@b.c"]}})),
        err(400, "invalid_type", "traits.email"),
    );
    add(
        "traits a string",
        json_body(json!({"app_id": app, "user_id": "u1", "traits": "pro"})),
        err(400, "invalid_type", "traits"),
    );
    add(
        "custom trait an object",
        json_body(json!({"app_id": app, "user_id": "u1", "traits": {"team": {"size": 5}}})),
        err(400, "invalid_type", "traits.team"),
    );
    add(
        "trait string over 512 bytes",
        json_body(json!({"app_id": app, "user_id": "u1", "traits": {"name": "n".repeat(513)}})),
        err(400, "too_long", "traits.name"),
    );
    let many: serde_json::Map<String, serde_json::Value> =
        (0..33).map(|i| (format!("k{i}"), json!(i))).collect();
    add(
        "33 custom traits",
        json_body(json!({"app_id": app, "user_id": "u1", "traits": many})),
        err(400, "too_many_traits", "traits"),
    );
    add(
        "signed_at a string",
        json_body(json!({"app_id": app, "user_id": "u1", "signed_at": "1732406400"})),
        err(400, "invalid_type", "signed_at"),
    );
    add(
        "signedAt a float",
        json_body(json!({"app_id": app, "user_id": "u1", "signedAt": 1732406400.5})),
        err(400, "invalid_type", "signedAt"),
    );

    // Client-sent verification fields and secrets.
    for (name, key, field) in [
        ("trait named verified", "verified", "traits.verified"),
        (
            "trait named dropfix_verified",
            "dropfix_verified",
            "traits.dropfix_verified",
        ),
        (
            "trait named signature_valid",
            "signature_valid",
            "traits.signature_valid",
        ),
    ] {
        add(
            name,
            json_body(json!({"app_id": app, "user_id": "u1", "traits": {key: true}})),
            err(400, "reserved_trait", field),
        );
    }
    add(
        "secret sent as the signature",
        json_body(json!({"app_id": app, "user_id": "u1",
                         "signature": format!("dfsk_{}", "ab".repeat(32))})),
        err(400, "secret_not_allowed", "signature"),
    );
    add(
        "unknown top-level field",
        json_body(json!({"app_id": app, "user_id": "u1", "verified": true})),
        err(400, "unknown_field", "verified"),
    );

    // Nesting and duplicates.
    add(
        "deeply nested arrays",
        body(&ok(&format!(r#","traits":{{"x":{}}}"#, "[".repeat(5000)))),
        err(400, "invalid_json", ""),
    );
    add(
        "deeply nested objects",
        body(&format!("{}1{}", r#"{"a":"#.repeat(2000), "}".repeat(2000))),
        err(400, "invalid_json", ""),
    );
    add(
        "duplicate user_id",
        body(&format!(
            r#"{{"app_id":"{app}","user_id":"u1","user_id":"admin"}}"#
        )),
        err(400, "invalid_json", ""),
    );
    add(
        "duplicate trait key",
        body(&ok(r#","traits":{"plan":"free","plan":"enterprise"}"#)),
        err(400, "invalid_json", ""),
    );
    let sig_a = "a".repeat(64);
    let sig_b = "b".repeat(64);
    add(
        "signature and hash both present and different",
        json_body(
            json!({"app_id": app, "user_id": "u1", "signature": sig_a, "hash": sig_b,
                         "signed_at": 1}),
        ),
        err(400, "conflicting_fields", "signature"),
    );
    add(
        "signed_at and signedAt both present and different",
        json_body(json!({"app_id": app, "user_id": "u1", "signed_at": 1, "signedAt": 2})),
        err(400, "conflicting_fields", "signed_at"),
    );

    // Sizes.
    let padded = |n: usize| {
        let base = ok("");
        let mut s = base[..base.len() - 1].to_string();
        s.push_str(r#","traits":{"note":""#);
        s.push_str(&"p".repeat(n));
        s.push_str(r#""}}"#);
        s
    };
    add(
        "body of 16 KiB + 1",
        body(&format!(
            "{}{}",
            " ".repeat(16 * 1024 + 1 - ok("").len()),
            ok("")
        )),
        status(413),
    );
    add("body of 1 MiB", body(&padded(1 << 20)), status(413));
    add(
        "Content-Length of 100 MB, body never sent",
        Send::RawThenEof(build_head(
            "POST",
            "/v1/identify",
            &[
                ("Content-Type", "application/json"),
                ("Content-Length", "100000000"),
            ],
        )),
        status(413),
    );
    let mut chunked = build_head(
        "POST",
        "/v1/identify",
        &[
            ("Content-Type", "application/json"),
            ("Transfer-Encoding", "chunked"),
        ],
    );
    let big = padded(64 * 1024);
    for chunk in big.as_bytes().chunks(1000) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    add("chunked body over 16 KiB", Send::Raw(chunked), status(413));

    // Headers.
    let huge_value = "h".repeat(1 << 20);
    add(
        "one 1 MiB header",
        Send::Raw(build_request(
            "POST",
            "/v1/identify",
            &[
                ("Content-Type", "application/json"),
                ("X-Padding", &huge_value),
            ],
            ok("").as_bytes(),
        )),
        http_layer(431),
    );
    let many_headers: Vec<(String, String)> = (0..500)
        .map(|i| (format!("X-H{i}"), "v".to_string()))
        .collect();
    let mut headers: Vec<(&str, &str)> = many_headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    headers.push(("Content-Type", "application/json"));
    add(
        "500 headers",
        Send::Raw(build_request(
            "POST",
            "/v1/identify",
            &headers,
            ok("").as_bytes(),
        )),
        http_layer(431),
    );
    add(
        "request line that is not HTTP",
        Send::Raw(b"HELLO\r\n\r\n".to_vec()),
        http_layer(400),
    );
    add(
        "Content-Length that is not a number",
        Send::Raw(build_head(
            "POST",
            "/v1/identify",
            &[
                ("Content-Type", "application/json"),
                ("Content-Length", "abc"),
            ],
        )),
        http_layer(400),
    );

    // Content type and method.
    for (name, ct) in [
        ("Content-Type text/plain", Some("text/plain")),
        (
            "Content-Type form",
            Some("application/x-www-form-urlencoded"),
        ),
        (
            "Content-Type multipart",
            Some("multipart/form-data; boundary=x"),
        ),
        ("Content-Type application/jsonx", Some("application/jsonx")),
        ("no Content-Type", None),
    ] {
        let headers: Vec<(&str, &str)> = ct.map(|ct| ("Content-Type", ct)).into_iter().collect();
        add(
            name,
            Send::Raw(build_request(
                "POST",
                "/v1/identify",
                &headers,
                ok("").as_bytes(),
            )),
            status(415),
        );
    }
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        add(
            match method {
                "GET" => "GET /v1/identify",
                "PUT" => "PUT /v1/identify",
                "DELETE" => "DELETE /v1/identify",
                _ => "PATCH /v1/identify",
            },
            Send::Raw(build_request(
                method,
                "/v1/identify",
                &[("Content-Type", "application/json")],
                ok("").as_bytes(),
            )),
            status(405),
        );
    }

    // Workspace lookup and origins.
    add(
        "unknown app",
        json_body(json!({"app_id": "app_does_not_exist", "user_id": "u1"})),
        err(401, "unknown_app", ""),
    );
    add(
        "unknown app with a signature",
        json_body(json!({"app_id": "app_does_not_exist", "user_id": "u1",
                         "signature": "c".repeat(64), "signed_at": 1})),
        err(401, "unknown_app", ""),
    );
    add(
        "disallowed CORS origin",
        Send::Raw(build_request(
            "POST",
            "/v1/identify",
            &[
                ("Content-Type", "application/json"),
                ("Origin", "https://evil.example"),
            ],
            ok("").as_bytes(),
        )),
        status(403),
    );
    add(
        "malformed signature",
        json_body(
            json!({"app_id": app, "user_id": "u1", "signature": "not-a-signature",
                         "signed_at": 1}),
        ),
        err(401, "signature_malformed", ""),
    );
    add(
        "seed signature without signedAt",
        json_body(json!({"app_id": app, "user_id": "u1", "signature": "d".repeat(64)})),
        err(401, "signed_at_missing", ""),
    );
    cases
}

/// Request head only (no body, no Content-Length added).
fn build_head(method: &str, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

fn send(server: &Server, send: &Send) -> Response {
    match send {
        Send::Body(b) => server.identify(b),
        Send::Raw(bytes) => server.raw(bytes),
        Send::RawThenEof(bytes) => {
            let mut stream = TcpStream::connect(server.addr).unwrap();
            stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
            let _ = stream.write_all(bytes);
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let mut buf = Vec::new();
            let _ = stream.read_to_end(&mut buf);
            support::parse_response(&buf)
                .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(&buf)))
        }
    }
}

/// Checks one case; returns a description of every way it failed.
fn check(server: &Server, app: &str, case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    let r = send(server, &case.send);
    let e = &case.expect;
    if r.status != e.status {
        problems.push(format!(
            "status {} (want {}): {}",
            r.status,
            e.status,
            r.text()
        ));
    }
    if e.json {
        match serde_json::from_slice::<serde_json::Value>(&r.body) {
            Err(_) => problems.push(format!("body is not JSON: {:?}", r.text())),
            Ok(j) => {
                let error = &j["error"];
                let code = error["code"].as_str().unwrap_or("");
                let message = error["message"].as_str().unwrap_or("");
                if code.is_empty() || message.is_empty() {
                    problems.push(format!("no error.code/error.message: {j}"));
                }
                if let Some(want) = e.code
                    && code != want
                {
                    problems.push(format!("code {code:?} (want {want:?}): {j}"));
                }
                if let Some(want) = e.field {
                    if error["field"] != want {
                        problems.push(format!("field {} (want {want:?}): {j}", error["field"]));
                    }
                    if !message.contains(want) {
                        problems.push(format!("message does not name {want}: {message:?}"));
                    }
                }
                let ct = r.header("content-type").unwrap_or("");
                if !ct.starts_with("application/json") {
                    problems.push(format!("Content-Type {ct:?}"));
                }
            }
        }
    }
    let users = server.users(app);
    if !users.is_empty() {
        problems.push(format!("stored something: {users:?}"));
    }
    let health = server.request("GET", "/healthz", &[], b"");
    if health.status != 200 {
        problems.push(format!("healthz {} afterwards", health.status));
    }
    problems
}

#[test]
fn bad_input_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &Options::default());
    let (app, _secret) = server
        .dev_workspace
        .clone()
        .expect("first start prints the dev workspace");
    assert!(server.users(&app).is_empty());

    let cases = cases(&app);
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        for problem in check(&server, &app, case) {
            failures.push(format!("{}: {problem}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "failures in the {} cases:\n{}",
        cases.len(),
        failures.join("\n")
    );

    // Positive controls: the checks above can see a stored user, and the limits are limits, not
    // off-by-one refusals of legitimate calls.
    let at_limit = {
        let base = format!(r#"{{"app_id":"{app}","user_id":"edge"}}"#);
        format!("{}{base}", " ".repeat(16 * 1024 - base.len()))
    };
    assert_eq!(at_limit.len(), 16 * 1024);
    let r = server.identify(at_limit.as_bytes());
    assert_eq!(r.status, 202, "a 16 KiB body is allowed: {}", r.text());
    let r = server.request(
        "POST",
        "/v1/identify",
        &[("Content-Type", "application/json; charset=utf-8")],
        json!({"app_id": app, "user_id": "charset", "traits": {"mrr": 1e12, "plan": "pro"}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(
        r.status,
        202,
        "charset parameter and mrr = 1e12: {}",
        r.text()
    );
    let r = server.request(
        "POST",
        "/v1/identify",
        &[
            ("Content-Type", "application/json"),
            ("Origin", "http://localhost:5173"),
        ],
        json!({"app_id": app, "user_id": "from-localhost"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 202, "allowed origin: {}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:5173")
    );
    let mut stored: Vec<String> = server
        .users(&app)
        .iter()
        .map(|u| u["user_id"].as_str().unwrap().to_string())
        .collect();
    stored.sort();
    assert_eq!(stored, ["charset", "edge", "from-localhost"]);
    server.assert_healthy("the positive controls");
}

/// A preflight from a disallowed origin gets no `Access-Control-Allow-Origin`, and a
/// preflight from an allowed one gets exactly that origin back.
#[test]
fn cors_preflight_follows_allowed_origins() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &Options::default());
    let preflight = |origin: &str| {
        server.request(
            "OPTIONS",
            "/v1/identify",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            b"",
        )
    };
    let evil = preflight("https://evil.example");
    assert_eq!(evil.header("access-control-allow-origin"), None, "{evil:?}");
    assert!(evil.status >= 400 || evil.status == 204, "{evil:?}");
    let good = preflight("http://localhost:3000");
    assert!((200..300).contains(&good.status), "{good:?}");
    assert_eq!(
        good.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    server.assert_healthy("preflights");
}
