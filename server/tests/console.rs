//! The console over real HTTP, in-process: `dropfix_server::run` on `127.0.0.1:0` with a
//! temporary data dir, accounts made through the store as `dropfix-server user create` makes
//! them. Each test attacks one promise: escaping of what browsers and integrations control,
//! the cross-site rule, viewer and workspace isolation, session expiry and logout, a secret
//! shown once, login limits, and counts/rejections that reach the store from the identify path.

mod support;

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dropfix_core::{SecretKey, StrictMode, seed};
use dropfix_server::Config;
use dropfix_server::console::session;
use dropfix_server::store::{CallCounts, CountsDelta, MAX_RECENT_REJECTIONS, RejectionEntry, Role};
use serde_json::{Value as Json, json};
use support::{
    Response, SELF_ORIGIN, Verifier, assert_redirect_to_login, create_member, eventually,
    identify_request, new_workspace, now, raw_request, run_cli, signed_call, with_store,
};

const PASSWORD: &str = "correct horse battery staple";
const OWNER: &str = "owner@example.com";
const VIEWER: &str = "viewer@example.com";
const OTHER: &str = "other@example.com";

/// A verifier with the console, over an embedded store holding two workspaces and three
/// console accounts.
struct Console {
    server: Verifier,
    /// The workspace OWNER owns and VIEWER views.
    app: String,
    secret: SecretKey,
    /// A workspace only OTHER belongs to.
    other_app: String,
    dir: Arc<tempfile::TempDir>,
}

impl Deref for Console {
    type Target = Verifier;

    fn deref(&self) -> &Verifier {
        &self.server
    }
}

/// The default configuration as `configure` changes it.
fn config(configure: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    configure(&mut config);
    config
}

impl Console {
    fn start(configure: impl FnOnce(&mut Config)) -> Console {
        let dir = support::data_dir();
        let phc = session::hash_password(PASSWORD).unwrap();
        let (app, secret, other_app) = with_store(dir.path(), async |store| {
            let origins = ["http://localhost:*"];
            let acme = new_workspace("Acme", StrictMode::ReportOnly, &origins);
            let globex = new_workspace("Globex", StrictMode::Off, &origins);
            let k = store.create_workspace(&acme, "test", now()).await.unwrap();
            let o = store
                .create_workspace(&globex, "test", now())
                .await
                .unwrap();
            let (app, other) = (k.workspace.app_id.clone(), o.workspace.app_id.clone());
            for (email, ws, role) in [
                (OWNER, &app, Role::Owner),
                (VIEWER, &app, Role::Viewer),
                (OTHER, &other, Role::Owner),
            ] {
                create_member(store, email, &phc, ws, role).await;
            }
            (app, k.secret, other)
        });
        Console {
            server: Verifier::embedded(dir.path(), config(configure)),
            app,
            secret,
            other_app,
            dir: Arc::new(dir),
        }
    }

    /// A second verifier instance on the same store (as several instances share one database).
    fn another_instance(&self, configure: impl FnOnce(&mut Config)) -> Console {
        Console {
            server: Verifier::embedded(self.dir.path(), config(configure)),
            app: self.app.clone(),
            secret: self.secret.clone(),
            other_app: self.other_app.clone(),
            dir: Arc::clone(&self.dir),
        }
    }

    /// Counts flushed to the store every 100 ms.
    fn fast() -> Console {
        Console::start(|config| config.console.stats_flush = Duration::from_millis(100))
    }

    fn ws(&self, tail: &str) -> String {
        format!("/console/w/{}/{tail}", self.app)
    }

    fn identify(&self, body: Json, origin: Option<&str>) -> Response {
        let origin: Vec<_> = origin.map(|o| ("Origin", o)).into_iter().collect();
        raw_request(self.addr, &identify_request(&body, &origin))
    }

    fn signed_call(&self, secret: &SecretKey, user: &str) -> Response {
        self.identify(signed_call(&self.app, secret, user), None)
    }

    fn workspace(&self) -> dropfix_server::workspace::Workspace {
        with_store(self.dir.path(), async |s| {
            s.workspaces()
                .await
                .unwrap()
                .into_iter()
                .find(|w| w.app_id == self.app)
                .unwrap()
        })
    }
}

#[test]
fn login_cookie_is_httponly_strict_and_a_wrong_login_says_nothing_specific() {
    let c = Console::fast();
    let r = c.try_login(OWNER, PASSWORD);
    assert_eq!(r.status, 303);
    let cookie = r.header("set-cookie").unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http without the flag: {cookie}"
    );
    let wrong = c.try_login(OWNER, "not the password");
    let unknown = c.try_login("nobody@example.com", PASSWORD);
    assert_eq!((wrong.status, unknown.status), (401, 401));
    let msg = |r: &Response| {
        let t = r.text();
        let i = t.find("role=\"alert\"").unwrap();
        t[i..i + 60].to_string()
    };
    assert_eq!(msg(&wrong), msg(&unknown));
    assert!(wrong.text().contains("Wrong email or password."));
    assert!(wrong.header("set-cookie").is_none());
    // Email case does not matter.
    assert_eq!(c.try_login("OWNER@Example.COM", PASSWORD).status, 303);
}

#[test]
fn secure_cookie_flag_marks_the_cookie_and_expects_https_origins() {
    let c = Console::start(|config| config.console.secure_cookies = true);
    // An http:// origin is not this console's origin when it is served over https.
    assert_eq!(c.try_login(OWNER, PASSWORD).status, 403);
    let r = c.post_with(
        "",
        "/console/login",
        &[("email", OWNER), ("password", PASSWORD)],
        &[("Origin", "https://127.0.0.1")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(r.header("set-cookie").unwrap().ends_with("; Secure"));
}

#[test]
fn login_attempts_are_rate_limited_per_email() {
    let c = Console::fast();
    for _ in 0..5 {
        assert_eq!(c.try_login(OWNER, "wrong password!").status, 401);
    }
    // Over the limit even the right password is not checked.
    let r = c.try_login(OWNER, PASSWORD);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("60"));
    // Another account is not locked out by it.
    assert_eq!(c.try_login(VIEWER, PASSWORD).status, 303);
}

/// A login POST as a trusted proxy forwards it for `client`.
fn login_from(c: &Console, client: &str, email: &str, password: &str) -> Response {
    c.post_with(
        "",
        "/console/login",
        &[("email", email), ("password", password)],
        &[("Origin", SELF_ORIGIN), ("X-Forwarded-For", client)],
    )
}

#[test]
fn login_limits_follow_the_forwarded_client_and_a_flood_elsewhere_never_locks_the_owner_out() {
    let c = Console::start(|config| config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]);
    // Behind the balancer every request comes from 127.0.0.1: 25 wrong logins by 25 clients
    // do not spend the owner's budget...
    for i in 0..25 {
        let r = login_from(
            &c,
            &format!("198.51.100.{i}"),
            &format!("u{i}@example.com"),
            "x",
        );
        assert_eq!(r.status, 401, "{i}: {}", r.text());
    }
    assert_eq!(login_from(&c, "203.0.113.7", OWNER, PASSWORD).status, 303);
    // ...and 120 wrong passwords for the owner's email from 120 other addresses (past the
    // account's budget for clients it has not seen) do not lock the owner out of the address
    // they logged in from, while a new address now waits.
    let mut refused = 0;
    for i in 0..120 {
        let r = login_from(&c, &format!("192.0.2.{i}"), OWNER, "wrong password!");
        assert!(matches!(r.status, 401 | 429), "{i}: {}", r.text());
        refused += usize::from(r.status == 429);
    }
    assert!(
        refused >= 19,
        "the account's budget for new clients ran out ({refused})"
    );
    assert_eq!(login_from(&c, "203.0.113.7", OWNER, PASSWORD).status, 303);
    assert_eq!(login_from(&c, "203.0.113.8", OWNER, PASSWORD).status, 429);
    // One client is still limited, wherever the balancer puts it.
    let mut statuses = Vec::new();
    for i in 0..25 {
        statuses.push(login_from(&c, "198.51.100.200", &format!("v{i}@example.com"), "x").status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // IPv6 clients are counted by /64.
    let mut statuses = Vec::new();
    for i in 0..25 {
        let client = format!("2001:db8:5:6::{i:x}");
        statuses.push(login_from(&c, &client, &format!("w{i}@example.com"), "x").status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[test]
fn logging_in_again_and_again_is_never_refused() {
    let c = Console::fast();
    // More than any bucket's burst: successes are not counted against the client.
    for i in 0..25 {
        assert_eq!(c.try_login(OWNER, PASSWORD).status, 303, "login {i}");
    }
}

#[test]
fn an_email_longer_than_254_bytes_is_refused_before_any_limit() {
    let c = Console::fast();
    for i in 0..30 {
        let email = format!("{}{i}@example.com", "a".repeat(60_000));
        let r = c.try_login(&email, "x");
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains("too long"));
    }
    let exactly = format!("{}@example.com", "a".repeat(254 - "@example.com".len()));
    assert_eq!(c.try_login(&exactly, "x").status, 401);
    // None of that spent this client's budget.
    assert_eq!(c.try_login(OWNER, PASSWORD).status, 303);
}

#[test]
fn every_page_needs_a_session() {
    let c = Console::fast();
    for path in [
        "/console".to_string(),
        "/console/workspaces".into(),
        c.ws("security"),
        c.ws("users"),
        c.ws("audit"),
        c.ws("users/export.csv"),
    ] {
        assert_redirect_to_login(&c.get("", &path));
        assert_redirect_to_login(&c.get("dropfix_console=forged", &path));
    }
    let r = c.post("", &c.ws("strict"), &[("mode", "off")]);
    assert_redirect_to_login(&r);
    assert_eq!(c.workspace().strict, StrictMode::ReportOnly);
}

#[test]
fn cross_site_posts_are_refused_and_change_nothing() {
    let c = Console::fast();
    let cookie = c.login(OWNER, PASSWORD);
    let form = [("mode", "off")];
    for headers in [
        vec![("Origin", "https://evil.example")],
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Sec-Fetch-Site", "same-site")],
        // A same-origin Origin does not outvote the browser's own cross-site verdict.
        vec![("Sec-Fetch-Site", "cross-site"), ("Origin", SELF_ORIGIN)],
        vec![("Origin", "null")],
        // Neither header: not a browser form post from this console.
        vec![],
    ] {
        let r = c.post_with(&cookie, &c.ws("strict"), &form, &headers);
        assert_eq!(r.status, 403, "{headers:?}: {}", r.text());
        assert!(r.text().contains("Cross-site request refused"));
    }
    // Logging in from another site is refused too (login CSRF).
    let r = c.post_with(
        "",
        "/console/login",
        &[("email", OWNER), ("password", PASSWORD)],
        &[("Origin", "https://evil.example")],
    );
    assert_eq!(r.status, 403);
    assert_eq!(c.workspace().strict, StrictMode::ReportOnly);
    // The same POST from the console itself works.
    let r = c.post_with(
        &cookie,
        &c.ws("strict"),
        &form,
        &[("Sec-Fetch-Site", "same-origin")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(c.workspace().strict, StrictMode::Off);
}

#[test]
fn a_viewer_sees_no_change_controls_and_every_change_is_403() {
    let c = Console::fast();
    let cookie = c.login(VIEWER, PASSWORD);
    let page = c.get(&cookie, &c.ws("security"));
    assert_eq!(page.status, 200);
    let html = page.text();
    for control in [
        "Create key",
        "/roll\"",
        "/retire\"",
        "Save strict mode",
        "Save allowed origins",
        "Require signed claims</button>",
    ] {
        assert!(!html.contains(control), "viewer sees {control:?}");
    }
    let key = c.workspace().keys[0].id;
    let before = c.workspace();
    for (path, form) in [
        (c.ws("keys"), vec![("label", "x")]),
        (c.ws(&format!("keys/{key}/roll")), vec![("grace", "now")]),
        (c.ws(&format!("keys/{key}/retire")), vec![]),
        (c.ws("strict"), vec![("mode", "on"), ("confirm", "yes")]),
        (c.ws("claims"), vec![("required", "on"), ("confirm", "yes")]),
        (c.ws("origins"), vec![("origins", "*")]),
        (c.ws("users/u1/delete"), vec![]),
    ] {
        let r = c.post(&cookie, &path, &form);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
    }
    for path in [
        c.ws(&format!("keys/{key}/roll")),
        c.ws(&format!("keys/{key}/retire")),
    ] {
        assert_eq!(c.get(&cookie, &path).status, 403, "{path}");
    }
    let after = c.workspace();
    assert_eq!(after.strict, before.strict);
    assert_eq!(after.allowed_origins, before.allowed_origins);
    assert_eq!(after.require_signed_claims, before.require_signed_claims);
    assert_eq!(after.keys.len(), before.keys.len());
    // Looking is allowed: the other pages, the signature check and the export.
    for path in ["rejections", "check", "users", "audit", "users/export.csv"] {
        assert_eq!(c.get(&cookie, &c.ws(path)).status, 200, "{path}");
    }
    let r = c.post(
        &cookie,
        &c.ws("check"),
        &[("user_id", "1"), ("signature", "00"), ("signed_at", "")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn another_workspace_is_not_found_by_page_or_by_guessing_urls() {
    let c = Console::fast();
    // A user in the other workspace, whose page we will guess.
    let other_app = c.other_app.clone();
    let r = c.identify(json!({"app_id": other_app, "user_id": "globex-user"}), None);
    assert_eq!(r.status, 202, "{}", r.text());
    let cookie = c.login(OWNER, PASSWORD);
    let chooser = c.get(&cookie, "/console/workspaces").text();
    assert!(chooser.contains(&c.app) && !chooser.contains(&other_app));
    let nowhere = c.get(&cookie, "/console/w/app_doesnotexist/security");
    assert_eq!(nowhere.status, 404);
    let other_key = c.workspace().keys[0].id + 1;
    for tail in [
        "".to_string(),
        "security".into(),
        "users".into(),
        "users/globex-user".into(),
        "users/export.csv".into(),
        "audit".into(),
        "rejections".into(),
        "check".into(),
        format!("keys/{other_key}/roll"),
    ] {
        let r = c.get(&cookie, &format!("/console/w/{other_app}/{tail}"));
        assert_eq!(r.status, 404, "{tail}");
        // The same page as for a workspace that does not exist: nothing tells them apart.
        assert_eq!(r.text(), nowhere.text(), "{tail}");
    }
    for (tail, form) in [
        ("strict", vec![("mode", "on"), ("confirm", "yes")]),
        ("keys", vec![("label", "mine now")]),
        ("users/globex-user/delete", vec![]),
        ("origins", vec![("origins", "*")]),
    ] {
        let r = c.post(&cookie, &format!("/console/w/{other_app}/{tail}"), &form);
        assert_eq!(r.status, 404, "{tail}");
    }
    // A key id of the other workspace under our own workspace is not found either.
    let r = c.get(&cookie, &c.ws(&format!("keys/{other_key}/retire")));
    assert_eq!(r.status, 404);
    let globex = with_store(c.dir.path(), async |s| {
        let ws = s.workspaces().await.unwrap();
        let g = ws.into_iter().find(|w| w.app_id == other_app).unwrap();
        (
            g.strict,
            g.keys.len(),
            s.get_user(&other_app, "globex-user")
                .await
                .unwrap()
                .is_some(),
        )
    });
    assert_eq!(globex, (StrictMode::Off, 1, true));
}

#[test]
fn sessions_end_when_idle_and_on_logout() {
    let c = Console::start(|config| config.console.session_idle = Duration::from_secs(3));
    let cookie = c.login(OWNER, PASSWORD);
    assert_eq!(c.get(&cookie, &c.ws("security")).status, 200);
    // Activity keeps it alive (times are whole seconds: 1 s apart is at most 2 s idle)...
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(c.get(&cookie, &c.ws("security")).status, 200);
    }
    // ...idleness ends it.
    std::thread::sleep(Duration::from_millis(4100));
    assert_redirect_to_login(&c.get(&cookie, &c.ws("security")));
    // Logout ends it on the server, not only in the browser.
    let cookie = c.login(OWNER, PASSWORD);
    let r = c.post(&cookie, "/console/logout", &[]);
    assert_redirect_to_login(&r);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_redirect_to_login(&c.get(&cookie, &c.ws("security")));
}

#[test]
fn sessions_end_at_the_absolute_limit_however_active() {
    let c = Console::start(|config| config.console.session_absolute = Duration::from_secs(2));
    let cookie = c.login(OWNER, PASSWORD);
    for _ in 0..2 {
        assert_eq!(c.get(&cookie, &c.ws("security")).status, 200);
        std::thread::sleep(Duration::from_millis(700));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_redirect_to_login(&c.get(&cookie, &c.ws("security")));
}

fn secret_in(html: &str) -> Option<String> {
    let i = html.find("dfsk_")?;
    let end = html[i..].find('"')?;
    Some(html[i..i + end].to_string())
}

#[test]
fn a_new_secret_is_shown_once_verifies_and_never_reaches_the_audit_log() {
    let c = Console::fast();
    let cookie = c.login(OWNER, PASSWORD);
    let r = c.post(
        &cookie,
        &c.ws("keys"),
        &[("label", "api-prod"), ("expires", "never")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let secret = secret_in(&r.text()).expect("the secret on the page");
    let secret = SecretKey::new(secret);
    let page = c.get(&cookie, &c.ws("security")).text();
    assert!(secret_in(&page).is_none(), "a secret on the security page");
    assert!(!page.contains(secret.expose_secret()));
    assert!(page.contains("api-prod"));
    // It is a real key: a call signed with it verifies, and its key is the new one.
    let r = c.signed_call(&secret, "u-new-key");
    assert_eq!(r.status, 200, "{}", r.text());
    let audit = c.get(&cookie, &c.ws("audit")).text();
    assert!(audit.contains("key.create") && audit.contains(OWNER));
    assert!(!audit.contains(secret.expose_secret()));
    assert!(!audit.contains(c.secret.expose_secret()));
}

#[test]
fn roll_with_an_hour_of_grace_keeps_both_keys_verifying_and_retire_stops_one() {
    let c = Console::fast();
    let cookie = c.login(OWNER, PASSWORD);
    let old = c.workspace().keys[0].id;
    let confirm = c.get(&cookie, &c.ws(&format!("keys/{old}/roll"))).text();
    assert!(confirm.contains(&format!("calls signed with key {old} stop verifying at")));
    assert!(confirm.contains(&format!("calls signed with key {old} stop verifying now")));
    let r = c.post(
        &cookie,
        &c.ws(&format!("keys/{old}/roll")),
        &[("grace", "1h")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let new_secret = SecretKey::new(secret_in(&r.text()).unwrap());
    assert_eq!(c.signed_call(&c.secret, "old-key-user").status, 200);
    assert_eq!(c.signed_call(&new_secret, "new-key-user").status, 200);
    let ws = c.workspace();
    let old_key = ws.key(old).unwrap();
    let until = old_key.expires_at.unwrap();
    assert!(
        (until - now() - 3600).abs() < 10,
        "old key expires in about an hour"
    );
    // An unknown grace is refused, not defaulted.
    let new_id = ws.keys[0].id;
    let r = c.post(
        &cookie,
        &c.ws(&format!("keys/{new_id}/roll")),
        &[("grace", "forever")],
    );
    assert_eq!(r.status, 400);
    // Retire the old key: it stops verifying at once.
    let r = c.post(&cookie, &c.ws(&format!("keys/{old}/retire")), &[]);
    assert_eq!(r.status, 303, "{}", r.text());
    let r = c.signed_call(&c.secret, "old-key-user-2");
    assert_eq!(r.status, 401, "{}", r.text());
    // The last live key cannot be retired: the confirmation says so and offers no button.
    let page = c
        .get(&cookie, &c.ws(&format!("keys/{new_id}/retire")))
        .text();
    assert!(page.contains("only live key") && !page.contains("type=\"submit\" class=\"danger\""));
    let r = c.post(&cookie, &c.ws(&format!("keys/{new_id}/retire")), &[]);
    assert_eq!(r.status, 409);
    let audit = c.get(&cookie, &c.ws("audit")).text();
    assert!(audit.contains("key.roll") && audit.contains("key.retire"));
}

#[test]
fn user_controlled_strings_are_escaped_everywhere() {
    let c = Console::fast();
    let cookie = c.login(OWNER, PASSWORD);
    let evil_user = "<script>alert(\"u\")</script>'";
    let evil_origin = "https://x\"><img src=x onerror=alert(1)>";
    let evil_label = "<script>alert('label')</script>";
    // Refused (not a host a browser sends), and the refusal shows it escaped.
    let r = c.post(
        &cookie,
        &c.ws("origins"),
        &[("origins", &format!("http://localhost:*\n{evil_origin}"))],
    );
    assert_ne!(r.status, 303, "{}", r.text());
    let refusal = r.text();
    assert!(
        refusal.contains("onerror=alert(1)&#62;") && !refusal.contains("<img"),
        "{refusal}"
    );
    let r = c.post(&cookie, &c.ws("keys"), &[("label", evil_label)]);
    assert_eq!(r.status, 200);
    assert!(!r.text().contains(evil_label));
    // A stored (report-only, unsigned) user and a refused call from an evil page.
    let r = c.identify(
        json!({"app_id": c.app, "user_id": evil_user, "traits": {"name": "<b>n</b>"}}),
        Some("http://localhost:3000"),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let r = c.identify(
        json!({"app_id": c.app, "user_id": evil_user}),
        Some("https://evil.example\"><script>x()</script>"),
    );
    assert_eq!(r.status, 403);
    let user_path = format!(
        "users/{}",
        percent_encoding::utf8_percent_encode(evil_user, percent_encoding::NON_ALPHANUMERIC)
    );
    eventually("the rejection to be flushed", || {
        let t = c.get(&cookie, &c.ws("rejections")).text();
        t.contains("origin_not_allowed").then_some(())
    });
    for path in [
        "security",
        "users",
        user_path.as_str(),
        "rejections",
        "audit",
    ] {
        let r = c.get(&cookie, &c.ws(path));
        assert_eq!(r.status, 200, "{path}");
        let t = r.text();
        for raw in ["<script>", "<img", "<b>n</b>"] {
            assert!(!t.contains(raw), "{path} contains {raw}");
        }
    }
    let users = c.get(&cookie, &c.ws("users")).text();
    assert!(
        users.contains("&#60;script&#62;alert(&#34;u&#34;)&#60;/script&#62;&#39;"),
        "{users}"
    );
    let user = c.get(&cookie, &c.ws(&user_path)).text();
    assert!(user.contains("&#60;b&#62;n&#60;/b&#62;"));
    assert!(!c.get(&cookie, &c.ws("security")).text().contains("onerror"));
}

#[test]
fn strict_on_goes_through_a_confirmation_that_counts_what_it_would_refuse() {
    let c = Console::fast();
    let cookie = c.login(OWNER, PASSWORD);
    for i in 0..3 {
        let r = c.identify(
            json!({"app_id": c.app, "user_id": format!("anon-{i}")}),
            None,
        );
        assert_eq!(r.status, 202);
    }
    assert_eq!(c.signed_call(&c.secret, "signed").status, 200);
    let page = eventually("counts to reach the store", || {
        let t = c.get(&cookie, &c.ws("security")).text();
        // Both: a flush may fall between the unsigned calls and the signed one.
        (t.contains("data-count=\"would_reject-1h\">3<")
            && t.contains("data-count=\"verified-24h\">1<"))
        .then_some(t)
    });
    assert!(page.contains("data-count=\"verified-24h\">1<"), "{page}");
    let r = c.post(&cookie, &c.ws("strict"), &[("mode", "on")]);
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .contains("In the last 24 hours 3 calls were accepted without a valid signature"),
        "{}",
        r.text()
    );
    assert_eq!(
        c.workspace().strict,
        StrictMode::ReportOnly,
        "not applied before confirming"
    );
    let r = c.post(
        &cookie,
        &c.ws("strict"),
        &[("mode", "on"), ("confirm", "yes")],
    );
    assert_eq!(r.status, 303);
    assert_eq!(c.workspace().strict, StrictMode::Enforce);
    let r = c.identify(json!({"app_id": c.app, "user_id": "anon-late"}), None);
    assert_eq!(r.status, 401);
    let r = c.post(&cookie, &c.ws("strict"), &[("mode", "sometimes")]);
    assert_eq!(r.status, 400);
}

#[test]
fn a_forged_call_shows_in_recent_rejections_with_its_fix_and_no_signature() {
    let c = Console::fast();
    let cookie = c.login(OWNER, PASSWORD);
    let forged = seed::sign(
        &SecretKey::new("dfsk_not_this_workspace_secret_000000"),
        "mallory",
    );
    let r = c.identify(
        json!({"app_id": c.app, "user_id": "mallory", "signature": forged, "signedAt": now(),
               "traits": {"plan": "enterprise-secret-plan"}}),
        Some("http://localhost:5173"),
    );
    assert_eq!(r.status, 401);
    let page = eventually("the rejection to be flushed", || {
        let t = c.get(&cookie, &c.ws("rejections")).text();
        t.contains("signature_mismatch").then_some(t)
    });
    assert!(page.contains("mallory") && page.contains("http://localhost:5173"));
    assert!(page.contains("sign the exact user id string"), "the fix");
    assert!(!page.contains(&forged) && !page.contains("enterprise-secret-plan"));
    // Still no stored user for a rejected call.
    let stored = with_store(c.dir.path(), async |s| {
        s.get_user(&c.app, "mallory").await.unwrap()
    });
    assert!(stored.is_none());
}

#[test]
fn check_a_signature_explains_without_showing_the_expected_one() {
    let c = Console::fast();
    let cookie = c.login(OWNER, PASSWORD);
    let good = seed::sign(&c.secret, "42");
    let t = now().to_string();
    let r = c.post(
        &cookie,
        &c.ws("check"),
        &[("user_id", "42"), ("signature", &good), ("signed_at", &t)],
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains("verifies"), "{}", r.text());
    // Signed the email instead of the id: named, and the right digest is not on the page.
    let r = c.post(
        &cookie,
        &c.ws("check"),
        &[("user_id", "43"), ("signature", &good), ("signed_at", &t)],
    );
    let text = r.text();
    assert!(text.contains("signature_mismatch"), "{text}");
    assert!(!text.contains(&seed::sign(&c.secret, "43")));
    let r = c.post(
        &cookie,
        &c.ws("check"),
        &[
            ("user_id", "42"),
            ("signature", &good),
            ("signed_at", "soon"),
        ],
    );
    assert_eq!(r.status, 422);
}

#[test]
fn users_list_filters_pages_exports_and_deletes() {
    let c = Console::fast();
    let cookie = c.login(OWNER, PASSWORD);
    assert_eq!(
        c.signed_call(&c.secret, "=HYPERLINK(\"http://x\")").status,
        200
    );
    assert_eq!(c.signed_call(&c.secret, "ver-1").status, 200);
    // An unsigned call's custom traits for a verified user are shown apart, never as its own.
    let r = c.identify(
        json!({"app_id": c.app, "user_id": "ver-1", "traits": {"seats": "<i>9</i>"}}),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let page = c.get(&cookie, &c.ws("users/ver-1")).text();
    let (own, aside) = page
        .split_once("Custom traits claimed without a signature")
        .expect("the claimed custom traits are shown");
    assert!(!own.contains("seats"), "{page}");
    assert!(
        aside.contains("&#60;i&#62;9&#60;/i&#62;") && !aside.contains("<i>"),
        "{page}"
    );
    for i in 0..3 {
        let r = c.identify(
            json!({"app_id": c.app, "user_id": format!("anon-{i}")}),
            None,
        );
        assert_eq!(r.status, 202);
    }
    let v = c.get(&cookie, &c.ws("users?show=verified")).text();
    assert!(v.contains("ver-1") && !v.contains("anon-0"));
    let u = c
        .get(&cookie, &c.ws("users?show=unverified&q=anon-1"))
        .text();
    assert!(u.contains("anon-1") && !u.contains("anon-0") && !u.contains("ver-1"));
    let csv = c.get(&cookie, &c.ws("users/export.csv"));
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let body = csv.text();
    assert!(body.contains("\"'=HYPERLINK(\"\"http://x\"\")\""), "{body}");
    assert!(body.contains("\"ver-1\"") && !body.contains("anon-"));
    let r = c.post(&cookie, &c.ws("users/ver-1/delete"), &[]);
    assert_eq!(r.status, 303);
    assert_eq!(c.get(&cookie, &c.ws("users/ver-1")).status, 404);
    let audit = c.get(&cookie, &c.ws("audit")).text();
    assert!(audit.contains("user.delete") && audit.contains("users.export"));
}

#[test]
fn the_csv_export_is_streamed_page_by_page_whole_and_audited() {
    let c = Console::fast();
    let app = c.app.clone();
    // 2,500 verified users: three store pages.
    with_store(c.dir.path(), async |store| {
        let calls: Vec<_> = (0..2_500)
            .map(|i| {
                store.identify(dropfix_server::users::IdentifyWrite {
                    app_id: app.clone(),
                    user_id: format!("user-{i:05}"),
                    now: now(),
                    verification: Some(dropfix_server::users::Verification {
                        method: "seed_hmac",
                        key_id: 1,
                        signed_at: now(),
                    }),
                    trusted: Default::default(),
                    claimed: Default::default(),
                    custom: Default::default(),
                    claimed_custom: Default::default(),
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap();
        }
    });
    let cookie = c.login(VIEWER, PASSWORD);
    let csv = c.get(&cookie, &c.ws("users/export.csv"));
    assert_eq!(csv.status, 200);
    // Sent as it is produced: chunked, with no length known up front.
    assert_eq!(csv.header("transfer-encoding"), Some("chunked"));
    assert!(csv.header("content-length").is_none());
    let body = csv.text();
    let lines: Vec<&str> = body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2_501, "header and every user");
    assert!(lines[0].starts_with("user_id,verified,name,email"));
    assert!(lines[1].starts_with("\"user-00000\"") && lines[2_500].starts_with("\"user-02499\""));
    let audit = c.get(&cookie, &c.ws("audit")).text();
    assert!(audit.contains("users.export"), "{audit}");
    assert!(audit.contains("2500"), "{audit}");
}

/// The `href` of every link in `html` (attribute values as the page escaped them, unescaped).
fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|h| {
            h.replace("&amp;", "&")
                .replace("&#x2f;", "/")
                .replace("&#x27;", "'")
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
        })
        .collect()
}

#[test]
fn user_links_carry_any_id_to_that_user_and_nowhere_else() {
    let c = Console::fast();
    let ids = [
        "../keys/1/retire",
        "victim/delete",
        "a/b",
        "..",
        ".",
        "q?x=1",
        "frag#top",
        "100%25 sure",
        "spaced out",
        "naïve 日本",
        "&amp;",
    ];
    for id in ids {
        let r = c.identify(json!({"app_id": c.app, "user_id": id}), None);
        assert_eq!(r.status, 202, "{id}: {}", r.text());
    }
    let cookie = c.login(OWNER, PASSWORD);
    let list = c.get(&cookie, &c.ws("users?show=all")).text();
    let links: Vec<String> = hrefs(&list)
        .into_iter()
        .filter(|h| h.contains("/user?"))
        .collect();
    assert_eq!(links.len(), ids.len(), "{links:?}");
    for link in &links {
        // Nothing in a link's path comes from the id.
        let path = link.split('?').next().unwrap();
        assert_eq!(path, format!("/console/w/{}/user", c.app), "{link}");
    }
    for id in ids {
        let link = links
            .iter()
            .find(|l| {
                let q = l.split_once('?').unwrap().1;
                form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "id" && v == id)
            })
            .unwrap_or_else(|| panic!("no link for {id:?} in {links:?}"));
        let page = c.get(&cookie, link);
        assert_eq!(page.status, 200, "{id}: {link}");
        let delete = hrefs(&page.text())
            .into_iter()
            .find(|h| h.contains("/user/delete?"))
            .unwrap_or_else(|| panic!("{id}: no delete link"));
        assert_eq!(c.get(&cookie, &delete).status, 200, "{id}: {delete}");
    }
    // Deleting one through its link deletes exactly that one; the key it named is untouched.
    let victim = links
        .iter()
        .find(|l| l.contains("retire"))
        .unwrap()
        .replace("/user?", "/user/delete?");
    assert_eq!(c.post(&cookie, &victim, &[]).status, 303);
    let ws = c.workspace();
    assert_eq!(ws.live_keys(now()).count(), 1, "key 1 still live");
    let after = c.get(&cookie, &c.ws("users?show=all")).text();
    let remaining = hrefs(&after)
        .iter()
        .filter(|h| h.contains("/user?"))
        .count();
    assert_eq!(remaining, ids.len() - 1);
    // The path form still reaches an id encoded as one segment.
    assert_eq!(c.get(&cookie, &c.ws("users/a%2Fb")).status, 200);
    assert_eq!(
        c.get(&cookie, &c.ws("users/..%2Fkeys%2F1%2Fretire")).status,
        404
    );
}

#[test]
fn invalid_origins_are_refused_with_the_reason_and_nothing_changes() {
    let c = Console::fast();
    let cookie = c.login(OWNER, PASSWORD);
    let origins = "https://ok.example\nhttps://bad.example/path";
    let r = c.post(&cookie, &c.ws("origins"), &[("origins", origins)]);
    assert_eq!(r.status, 422);
    assert!(r.text().contains("no path"), "{}", r.text());
    assert_eq!(
        c.workspace().allowed_origins,
        vec!["http://localhost:*".to_string()]
    );
}

#[test]
fn stored_counts_add_up_across_flushes_and_rejections_stay_bounded() {
    let dir = support::data_dir();
    with_store(dir.path(), async |s| {
        let delta = |n: u64| CountsDelta {
            app_id: "app_a".into(),
            minute: 1000,
            counts: CallCounts {
                verified_seed: n,
                rejected: 1,
                ..CallCounts::default()
            },
        };
        // Two instances flushing into the same minute: totals, never the last writer's value.
        s.add_call_stats(vec![delta(2)], vec![]).await.unwrap();
        s.add_call_stats(vec![delta(3)], vec![]).await.unwrap();
        let rows = s.call_counts("app_a", 0).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].1.verified_seed, rows[0].1.rejected), (5, 2));
        let entry = |i: i64, app: &str| RejectionEntry {
            app_id: app.into(),
            at: i,
            code: "signature_mismatch".into(),
            enforced: true,
            key_id: None,
            origin: None,
            user_id: Some(format!("u{i}")),
        };
        let many: Vec<_> = (0..150).map(|i| entry(i, "app_a")).collect();
        s.add_call_stats(vec![], many).await.unwrap();
        s.add_call_stats(vec![], vec![entry(7, "app_b")])
            .await
            .unwrap();
        let a = s.recent_rejections("app_a").await.unwrap();
        assert_eq!(a.len(), MAX_RECENT_REJECTIONS);
        assert_eq!(a[0].at, 149, "newest first");
        assert_eq!(a.last().unwrap().at, 50);
        assert_eq!(s.recent_rejections("app_b").await.unwrap().len(), 1);
    });
}

#[test]
fn counts_not_yet_flushed_are_written_at_shutdown() {
    let mut c = Console::start(|config| config.console.stats_flush = Duration::from_secs(3600));
    assert_eq!(c.signed_call(&c.secret.clone(), "s1").status, 200);
    let r = c.identify(json!({"app_id": c.app, "user_id": "anon"}), None);
    assert_eq!(r.status, 202);
    c.server.stop();
    let rows = with_store(c.dir.path(), async |s| {
        s.call_counts(&c.app, 0).await.unwrap()
    });
    let mut total = CallCounts::default();
    for (_, n) in &rows {
        total.add(n);
    }
    assert_eq!((total.verified_seed, total.would_reject), (1, 1));
}

#[test]
fn any_instance_serves_a_session_and_counts_are_totals_across_instances() {
    let a = Console::fast();
    let b = a.another_instance(|config| config.console.stats_flush = Duration::from_millis(100));
    // Logged in on A, used on B; logged out on B, refused on A.
    let cookie = a.login(OWNER, PASSWORD);
    assert_eq!(b.get(&cookie, &b.ws("security")).status, 200);
    // Two calls through A, three through B: the console on either shows five.
    for (i, instance) in [&a, &a, &b, &b, &b].into_iter().enumerate() {
        let r = instance.identify(json!({"app_id": a.app, "user_id": format!("u{i}")}), None);
        assert_eq!(r.status, 202);
    }
    for instance in [&a, &b] {
        eventually("both instances' counts in the store", || {
            let t = instance.get(&cookie, &instance.ws("security")).text();
            t.contains("data-count=\"would_reject-1h\">5<")
                .then_some(())
        });
    }
    let r = b.post(&cookie, "/console/logout", &[]);
    assert_redirect_to_login(&r);
    assert_redirect_to_login(&a.get(&cookie, &a.ws("security")));
}

/// What an operator does when someone leaves or a password leaks, from the CLI while the
/// console runs: each takes effect on the next request of a session already open.
#[test]
fn console_access_is_taken_away_from_the_cli() {
    let c = Console::fast();
    let dir = c.dir.path();
    let owner = c.login(OWNER, PASSWORD);
    let viewer = c.login(VIEWER, PASSWORD);
    assert_eq!(c.get(&viewer, &c.ws("users")).status, 200);

    let remove = [
        "user",
        "remove-from-workspace",
        "--email",
        VIEWER,
        "--workspace",
        &c.app,
    ];
    let (ok, out) = run_cli(dir, &remove, "");
    assert!(ok, "{out}");
    assert_eq!(c.get(&viewer, &c.ws("users")).status, 404);
    let (ok, out) = run_cli(dir, &remove, "");
    assert!(!ok && out.contains("not a member"), "{out}");

    let new_password = "a brand new passphrase";
    let (ok, out) = run_cli(
        dir,
        &["user", "set-password", "--email", OWNER, "--password-stdin"],
        &format!("{new_password}\n"),
    );
    assert!(ok, "{out}");
    assert_ne!(
        c.get(&owner, &c.ws("users")).status,
        200,
        "the old session ended"
    );
    assert_eq!(c.try_login(OWNER, PASSWORD).status, 401);
    assert_eq!(c.try_login(OWNER, new_password).status, 303);

    let (ok, out) = run_cli(dir, &["user", "delete", "--email", OWNER], "");
    assert!(ok, "{out}");
    assert_eq!(c.try_login(OWNER, new_password).status, 401);
    let (ok, out) = run_cli(dir, &["user", "delete", "--email", OWNER], "");
    assert!(!ok && out.contains("no console account"), "{out}");
    // Each change is in the workspace's audit log.
    let log = with_store(dir, async |s| s.audit_log(&c.app, 10).await.unwrap());
    let removed: Vec<_> = log.iter().filter(|e| e.action == "member.remove").collect();
    assert_eq!(removed.len(), 2, "{log:?}");
}

#[test]
fn the_user_cli_makes_argon2id_accounts_and_refuses_mistakes() {
    let dir = support::data_dir();
    let run = |args: &[&str], stdin: &str| run_cli(dir.path(), args, stdin);
    let (ok, out) = run(&["workspace", "create", "--name", "cli", "--json"], "");
    assert!(ok, "{out}");
    // stdout's JSON line (stderr may carry the master-key-file notice of a first start).
    let json_line = out.lines().find(|l| l.starts_with('{')).unwrap();
    let app = serde_json::from_str::<Json>(json_line).unwrap()["app_id"]
        .as_str()
        .unwrap()
        .to_string();
    let create = |email: &str, ws: &str, password: &str| {
        run(
            &[
                "user",
                "create",
                "--email",
                email,
                "--password-stdin",
                "--workspace",
                ws,
            ],
            &format!("{password}\n"),
        )
    };
    let (ok, out) = create("ada@example.com", &app, "short");
    assert!(!ok && out.contains("at least 12"), "{out}");
    let (ok, out) = create("ada@example.com", "app_nope", PASSWORD);
    assert!(!ok && out.contains("no workspace"), "{out}");
    let (ok, out) = create("not-an-email", &app, PASSWORD);
    assert!(!ok, "{out}");
    let (ok, out) = create("Ada@Example.com", &app, PASSWORD);
    assert!(ok, "{out}");
    let (ok, out) = create("ada@example.com", &app, PASSWORD);
    assert!(!ok && out.contains("exists"), "{out}");
    let add = [
        "user",
        "add-to-workspace",
        "--email",
        "bob@example.com",
        "--workspace",
        &app,
    ];
    let (ok, out) = run(&add, "");
    assert!(!ok && out.contains("no console account"), "{out}");
    let (ok, out) = run(&["user", "list", "--json"], "");
    assert!(ok, "{out}");
    let list: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(list["accounts"][0]["email"], "ada@example.com");
    assert_eq!(list["accounts"][0]["workspaces"][0]["role"], "owner");
    let phc = with_store(dir.path(), async |s| {
        s.account_login("ada@example.com")
            .await
            .unwrap()
            .unwrap()
            .password_phc
    });
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert!(!phc.contains(PASSWORD));
}

#[test]
fn ended_sessions_are_forgotten_at_the_next_login() {
    let c = Console::start(|config| config.console.session_idle = Duration::from_secs(1));
    let _abandoned = c.login(OWNER, PASSWORD);
    std::thread::sleep(Duration::from_millis(2100));
    let _fresh = c.login(VIEWER, PASSWORD);
    let rows: i64 = {
        let conn = rusqlite_conn(c.dir.path());
        conn.query_row("SELECT count(*) FROM console_sessions", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(rows, 1, "only the fresh session is kept");
}

fn rusqlite_conn(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("dropfix.sqlite3")).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The Security page tells the whole truth (issue 29)

#[test]
fn the_security_page_states_the_protection_level_and_what_each_setting_protects() {
    let c = Console::fast();
    let cookie = c.login(OWNER, PASSWORD);
    let page = c.get(&cookie, &c.ws("security")).text();
    // Report-only: unsigned calls are accepted.
    assert!(page.contains("data-protection=\"open\""), "{page}");
    assert!(page.contains("Unsigned calls accepted"), "{page}");
    assert!(!page.contains("data-testid=\"recommend-claims\""));
    // Strict on: the user id is verified, and the page says the traits are not.
    let r = c.post(
        &cookie,
        &c.ws("strict"),
        &[("mode", "on"), ("confirm", "yes")],
    );
    assert_eq!(r.status, 303);
    // A seed-form call without plan or MRR: nothing outside the signature, no recommendation.
    assert_eq!(c.signed_call(&c.secret, "plain-user").status, 200);
    eventually("the plain seed-form call to be counted", || {
        let t = c.get(&cookie, &c.ws("security")).text();
        t.contains("data-count=\"verified-1h\">1<").then_some(())
    });
    let page = c.get(&cookie, &c.ws("security")).text();
    assert!(!page.contains("data-testid=\"recommend-claims\""), "{page}");
    // The DevTools call: a valid seed hash with plan and MRR the browser chose. Stored
    // verified with those values, so the page recommends signed claims.
    let mut call = signed_call(&c.app, &c.secret, "seed-user");
    call["traits"] = json!({"plan": "enterprise", "mrr": 100000});
    assert_eq!(c.identify(call, None).status, 200);
    let page = eventually("the seed-form call with traits to be counted", || {
        let t = c.get(&cookie, &c.ws("security")).text();
        t.contains("data-testid=\"recommend-claims\"").then_some(t)
    });
    assert!(page.contains("data-protection=\"user_id\""), "{page}");
    assert!(page.contains("User id verified"), "{page}");
    assert!(page.contains("covers the user id only"), "{page}");
    assert!(
        page.contains("1 of the 2 verified calls in the last 7 days carried plan or MRR"),
        "{page}"
    );
    // The strict choice itself says what it verifies.
    assert!(
        page.contains("verifies the user id; plan and MRR only"),
        "{page}"
    );
    // Require signed claims: the traits are verified, nothing left to recommend.
    let r = c.post(
        &cookie,
        &c.ws("claims"),
        &[("required", "on"), ("confirm", "yes")],
    );
    assert_eq!(r.status, 303);
    let page = c.get(&cookie, &c.ws("security")).text();
    assert!(page.contains("data-protection=\"traits\""), "{page}");
    assert!(page.contains("Traits verified"), "{page}");
    assert!(!page.contains("data-testid=\"recommend-claims\""), "{page}");
}

#[test]
fn would_be_rejected_counts_unsigned_calls_in_every_mode() {
    let c = Console::fast();
    let cookie = c.login(OWNER, PASSWORD);
    let r = c.post(&cookie, &c.ws("strict"), &[("mode", "off")]);
    assert_eq!(r.status, 303);
    assert_eq!(c.workspace().strict, StrictMode::Off);
    for i in 0..2 {
        let r = c.identify(
            json!({"app_id": c.app, "user_id": format!("off-{i}")}),
            None,
        );
        assert_eq!(r.status, 202);
    }
    eventually(
        "strict-off unsigned calls counted as would be rejected",
        || {
            let t = c.get(&cookie, &c.ws("security")).text();
            t.contains("data-count=\"would_reject-1h\">2<")
                .then_some(())
        },
    );
    // And report-only adds to the same count.
    let r = c.post(&cookie, &c.ws("strict"), &[("mode", "report_only")]);
    assert_eq!(r.status, 303);
    let r = c.identify(json!({"app_id": c.app, "user_id": "ro-1"}), None);
    assert_eq!(r.status, 202);
    eventually("the report-only call added", || {
        let t = c.get(&cookie, &c.ws("security")).text();
        t.contains("data-count=\"would_reject-24h\">3<")
            .then_some(())
    });
}

#[test]
fn keys_say_in_words_where_a_secret_is_and_how_to_get_one() {
    let c = Console::fast();
    let owner = c.login(OWNER, PASSWORD);
    let page = c.get(&owner, &c.ws("security")).text();
    assert!(
        !page.contains('•'),
        "no bullets for a screen reader to read"
    );
    assert!(page.contains("a secret is shown once, when its key is created or rolled"));
    assert!(page.contains(&format!(
        "/console/w/{}/keys/1/roll\">roll key 1</a>",
        c.app
    )));
    let viewer = c.login(VIEWER, PASSWORD);
    let page = c.get(&viewer, &c.ws("security")).text();
    assert!(
        page.contains("an owner rolls this key or creates a key"),
        "{page}"
    );
    assert!(!page.contains("/keys/1/roll"), "{page}");
}

#[test]
fn check_a_signature_gives_one_verdict_first() {
    let c = Console::fast();
    let cookie = c.login(OWNER, PASSWORD);
    let r = c.post(&cookie, &c.ws("keys"), &[("label", "second")]);
    assert_eq!(r.status, 200);
    let second = SecretKey::new(secret_in(&r.text()).unwrap());
    let id = {
        let t = r.text();
        let at = t.find("Secret key ").unwrap() + "Secret key ".len();
        t[at..].split(' ').next().unwrap().to_string()
    };
    let at = now().to_string();
    // Valid with the new key: the verdict comes first, then its details, then key 1's failure.
    let sig = seed::sign(&second, "42");
    let r = c.post(
        &cookie,
        &c.ws("check"),
        &[("user_id", "42"), ("signature", &sig), ("signed_at", &at)],
    );
    assert_eq!(r.status, 200);
    let t = r.text();
    let verdict = t
        .find(&format!("Verifies with key {id} (second)"))
        .expect(&t);
    let key2 = t.find(&format!("Key {id} (second): verifies")).expect(&t);
    let key1 = t.find("Key 1 (default): would be refused").expect(&t);
    let fix = t.find("Fix:").expect(&t);
    assert!(verdict < key2 && key2 < key1 && key1 < fix, "{t}");
    // Matching the new key but stale: the verdict is what the verifier answers, not key 1's
    // mismatch.
    let stale = (now() - 3600).to_string();
    let r = c.post(
        &cookie,
        &c.ws("check"),
        &[
            ("user_id", "42"),
            ("signature", &sig),
            ("signed_at", &stale),
        ],
    );
    let t = r.text();
    let verdict = t
        .find(&format!("Refused (401 signature_expired) with key {id}"))
        .expect(&t);
    assert!(verdict < t.find("Key 1 (default)").unwrap(), "{t}");
    // Matching no key.
    let forged = seed::sign(
        &SecretKey::new("dfsk_not_this_workspace_secret_000000"),
        "42",
    );
    let t = c
        .post(
            &cookie,
            &c.ws("check"),
            &[
                ("user_id", "42"),
                ("signature", &forged),
                ("signed_at", &at),
            ],
        )
        .text();
    assert!(
        t.contains("Refused (401 signature_mismatch): it matches none of the 2 keys"),
        "{t}"
    );
}

#[test]
fn a_rolled_key_names_where_each_of_its_keys_goes() {
    let c = Console::fast();
    let cookie = c.login(OWNER, PASSWORD);
    let r = c.post(&cookie, &c.ws("keys/1/roll"), &[("grace", "1h")]);
    assert_eq!(r.status, 200);
    let page = r.text();
    assert!(page.contains("<code>DROPFIX_SECRET_KEY</code>"), "{page}");
    let hint = &page[page.find("data-testid=\"claims-key-hint\"").expect(&page)..];
    assert!(hint.contains("<code>DROPFIX_CLAIMS_KEY</code>"), "{hint}");
    assert!(hint.contains("derives this one itself"), "{hint}");
}

#[test]
fn report_only_rejections_never_claim_strict_mode() {
    let c = Console::fast();
    let cookie = c.login(OWNER, PASSWORD);
    let r = c.identify(json!({"app_id": c.app, "user_id": "anon"}), None);
    assert_eq!(r.status, 202);
    let page = eventually("the report-only rejection", || {
        let t = c.get(&cookie, &c.ws("rejections")).text();
        t.contains("signature_required").then_some(t)
    });
    assert!(
        page.contains("report-only: this call had no signature"),
        "{page}"
    );
    assert!(!page.contains("is in strict mode"), "{page}");
    assert!(page.contains("<code class=\"code-name\">signature_required</code>"));
}

#[test]
fn users_show_name_email_and_plan_with_claims_labelled_and_export_readable_csv() {
    let c = Console::fast();
    let cookie = c.login(OWNER, PASSWORD);
    // A signed-claims call whose token covers the plan and MRR only: the name and email it also
    // sends are claims, accepted (200), not an error.
    let token = dropfix_core::claims::sign(
        &c.secret,
        &dropfix_core::claims::Claims {
            sub: "sc-1".into(),
            iat: now(),
            plan: Some("pro".into()),
            mrr: Some(49.0),
            ..Default::default()
        },
    );
    let r = c.identify(
        json!({"app_id": c.app, "user_id": "sc-1", "traits": {"name": "Ada Lovelace",
               "email": "ada@example.com", "plan": "pro", "mrr": 49}, "signature": token}),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c.identify(
        json!({"app_id": c.app, "user_id": "anon-1", "traits": {"name": "Bob", "plan": "free"}}),
        None,
    );
    assert_eq!(r.status, 202);
    let list = c.get(&cookie, &c.ws("users")).text();
    let row = |id: &str| {
        let at = list.find(&format!(">{id}</a>")).expect(&list);
        list[at..at + list[at..].find("</tr>").unwrap()].to_string()
    };
    let sc = row("sc-1");
    assert!(sc.contains("<td>pro</td>"), "trusted plan unlabelled: {sc}");
    assert!(
        sc.contains("Ada Lovelace <span class=\"claim\">claimed</span>"),
        "{sc}"
    );
    assert!(
        sc.contains("ada@example.com <span class=\"claim\">claimed</span>"),
        "{sc}"
    );
    assert!(sc.contains("verified <span class=\"muted small\">signed_claims</span>"));
    let anon = row("anon-1");
    assert!(
        anon.contains("free <span class=\"claim\">claimed</span>"),
        "{anon}"
    );
    assert!(anon.contains("unverified"), "{anon}");
    // Search reaches names and emails (a verified user's trusted ones, an unverified user's
    // claims), not only ids.
    let mut seed = support::signed_call(&c.app, &c.secret, "seed-1");
    seed["traits"] = json!({"name": "Grace Hopper", "email": "grace@navy.example"});
    assert_eq!(c.identify(seed, None).status, 200);
    let found = c.get(&cookie, &c.ws("users?q=HOPPER")).text();
    assert!(
        found.contains(">seed-1</a>") && !found.contains(">sc-1</a>"),
        "{found}"
    );
    let found = c.get(&cookie, &c.ws("users?q=navy.example")).text();
    assert!(found.contains(">seed-1</a>") && !found.contains(">anon-1</a>"));
    let found = c.get(&cookie, &c.ws("users?q=bob")).text();
    assert!(found.contains(">anon-1</a>") && !found.contains(">seed-1</a>"));

    // The CSV: verified (the default) or all; ISO 8601 UTC times, numbers and booleans bare,
    // trusted values and claims in separate columns.
    let verified = c
        .get(&cookie, &c.ws("users/export.csv?show=verified"))
        .text();
    let all = c.get(&cookie, &c.ws("users/export.csv?show=all"));
    assert_eq!(all.status, 200);
    assert!(
        all.header("content-disposition")
            .unwrap()
            .contains("all-users-")
    );
    let all = all.text();
    let lines: Vec<&str> = all.lines().collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(
        &header[..12],
        [
            "user_id",
            "verified",
            "name",
            "email",
            "plan",
            "mrr",
            "signup_date",
            "claimed_name",
            "claimed_email",
            "claimed_plan",
            "claimed_mrr",
            "claimed_signup_date"
        ]
    );
    let sc = lines.iter().find(|l| l.starts_with("\"sc-1\"")).unwrap();
    let cells: Vec<&str> = sc.split(',').collect();
    assert_eq!(
        &cells[..12],
        [
            "\"sc-1\"",
            "true",
            "",
            "",
            "\"pro\"",
            "49",
            "",
            "\"Ada Lovelace\"",
            "\"ada@example.com\"",
            "",
            "",
            ""
        ]
    );
    let last_seen = cells.last().unwrap();
    assert!(
        last_seen.len() == 20 && last_seen.ends_with('Z') && last_seen.contains('T'),
        "{last_seen}"
    );
    let anon = lines.iter().find(|l| l.starts_with("\"anon-1\"")).unwrap();
    assert!(
        anon.starts_with("\"anon-1\",false,,,,,,\"Bob\",,\"free\","),
        "{anon}"
    );
    assert!(verified.contains("\"sc-1\"") && !verified.contains("anon-1"));
    assert_eq!(
        c.get(&cookie, &c.ws("users/export.csv?show=nope")).status,
        404
    );
    let audit = c.get(&cookie, &c.ws("audit")).text();
    assert!(audit.contains("&#34;show&#34;:&#34;all&#34;"), "{audit}");
}
