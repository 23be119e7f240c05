//! The console: Settings -> Security as server-rendered pages under `/console`.
//!
//! - [`session`]: passwords (argon2id), session tokens kept hashed in the store, login limits;
//! - [`csrf`]: the cross-site rule every non-GET request passes first;
//! - [`crate::stats`]: the live counts and recent rejections the identify path feeds;
//! - [`pages`]: the askama templates (HTML-escaped by default, checked at compile time);
//! - [`context`]: what every page shares (who asks about which workspace, the HTML answers).
//!
//! Authorization is decided here, once per request, before any page code runs: a workspace the
//! account is not a member of answers 404 (the same as one that does not exist, so ids cannot be
//! probed), and a viewer's change answers 403. Every change goes through the same [`Store`]
//! methods as the CLI and the admin API, with the account's email as the audit actor.
//!
//! [`Store`]: crate::store::Store

mod context;
mod csrf;
mod export;
mod login;
mod pages;
pub mod session;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use dropfix_core::{Rejection, SecretKey, StrictMode};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;

use crate::state::AppState;
use crate::store::{Account, CallCounts, Role, StoreError};
use crate::users::UserQuery;
use crate::web::{Body, full, now};
use crate::workspace::{self, KeyRuleError, MAX_LIVE_KEYS, WorkspacePatch};
use context::*;
use pages::*;

/// The console's settings, at the path the CLI and tests name (`console::ConsoleConfig`).
pub use crate::state::ConsoleConfig;

/// Users per page of the users list.
const USERS_PER_PAGE: usize = 50;
/// Audit entries the audit page shows.
const AUDIT_ROWS: usize = 200;

const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");

// ---------------------------------------------------------------------------------------------
// Responses

fn asset(body: &'static str, content_type: &'static str) -> Response<Body> {
    let mut res = Response::new(full(Bytes::from_static(body.as_bytes())));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

fn forbidden_viewer(account: &Account, app_id: &str) -> Response<Body> {
    message(
        StatusCode::FORBIDDEN,
        "Only owners can change this",
        "This account is a viewer of this workspace: it may look, not change. Ask an owner.",
        Some(account),
        Some(Link::new(&security_url(app_id), "Back to Security")),
    )
}

// ---------------------------------------------------------------------------------------------
// Routing

/// Entry point for every `/console...` request.
pub async fn handle(state: &Arc<AppState>, peer: IpAddr, req: Request<Incoming>) -> Response<Body> {
    let cfg = &state.config.console;
    let scheme = if cfg.secure_cookies { "https" } else { "http" };
    let authority = req.uri().authority().map(|a| a.as_str());
    if !csrf::same_origin(req.method(), req.headers(), authority, scheme) {
        return message(
            StatusCode::FORBIDDEN,
            "Cross-site request refused",
            "This change did not come from a console page on this server, so it was refused. \
             Open the console directly and try again.",
            None,
            Some(Link::new("/console", "Open the console")),
        );
    }
    let path = req.uri().path().to_string();
    let segs: Vec<String> = path
        .strip_prefix("/console")
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    match segs.as_slice() {
        ["static", "console.css"] if get => return asset(CSS, "text/css; charset=utf-8"),
        ["static", "console.js"] if get => {
            return asset(JS, "text/javascript; charset=utf-8");
        }
        ["login"] if get => return login::login_page(StatusCode::OK, None, ""),
        ["login"] if method == Method::POST => return login::login(state, peer, req).await,
        _ => {}
    }
    let token = session::token_from(req.headers());
    let account = match token {
        Some(t) => {
            match state
                .store
                .resume_session(t, session::rules(cfg), now())
                .await
            {
                Ok(a) => a,
                Err(e) => return unavailable(&e, None),
            }
        }
        None => None,
    };
    let Some(account) = account else {
        // Also for a POST: a change from an expired session is not applied.
        return redirect("/console/login");
    };
    match (segs.as_slice(), get) {
        ([], true) => redirect("/console/workspaces"),
        (["logout"], false) if method == Method::POST => {
            login::logout(state, &account, token).await
        }
        (["workspaces"], true) => login::workspaces_page(state, &account),
        (["w", app_id, tail @ ..], _) => {
            let Some(membership) = account.memberships.iter().find(|m| m.app_id == *app_id) else {
                return not_found(Some(&account));
            };
            // From this instance's registry (current with every change, made here or anywhere):
            // a page reads only the workspace it shows and unseals nothing, so viewers cannot
            // keep the store busy re-reading every workspace.
            let Some(ws) = state.registry.get(app_id) else {
                return not_found(Some(&account));
            };
            let ctx = Ctx {
                state,
                owner: membership.role == Role::Owner,
                role: membership.role,
                account: &account,
                ws,
            };
            workspace_route(ctx, method, tail, req).await
        }
        _ => not_found(Some(&account)),
    }
}

async fn workspace_route(
    ctx: Ctx<'_>,
    method: Method,
    tail: &[&str],
    req: Request<Incoming>,
) -> Response<Body> {
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    // Pages that change something (and their confirmation pages) are for owners only; "check a
    // signature" is a POST that changes nothing, so viewers may use it.
    let changes = match tail {
        ["check"] | ["users", "export.csv"] => false,
        ["keys", _, "roll" | "retire"] | ["users", _, "delete"] | ["user", "delete"] => true,
        _ => post,
    };
    if changes && !ctx.owner {
        return forbidden_viewer(ctx.account, ctx.app());
    }
    match (tail, get, post) {
        ([], true, _) => redirect(&security_url(ctx.app())),
        (["security"], true, _) => {
            let notice = query(&req).get("done").and_then(|d| notice_for(d));
            security_page(&ctx, StatusCode::OK, notice, None).await
        }
        (["keys"], _, true) => create_key(&ctx, req).await,
        (["keys", id, action @ ("roll" | "retire")], _, _) if get || post => {
            let Some(mut key) = id
                .parse::<i64>()
                .ok()
                .and_then(|id| ctx.ws.live_keys(now()).find(|k| k.id == id).cloned())
            else {
                return not_found(Some(ctx.account));
            };
            if !post {
                // The confirmation pages say when the key last verified a call.
                match ctx.state.store.key_last_used(ctx.app()).await {
                    Ok(used) => key.last_used_at = used.get(&key.id).copied(),
                    Err(e) => return unavailable(&e, Some(ctx.account)),
                }
            }
            match (*action, post) {
                ("roll", false) => roll_confirm(&ctx, &key),
                ("roll", true) => roll(&ctx, &key, req).await,
                ("retire", false) => retire_confirm(&ctx, &key),
                _ => retire(&ctx, &key).await,
            }
        }
        (["strict"], _, true) => strict(&ctx, req).await,
        (["claims"], _, true) => claims(&ctx, req).await,
        (["origins"], _, true) => origins(&ctx, req).await,
        (["rejections"], true, _) => rejections_page(&ctx).await,
        (["check"], true, _) => render(
            StatusCode::OK,
            &CheckPage {
                l: ctx.layout("Check a signature", "check"),
                app_id: ctx.app().to_string(),
                user_id: String::new(),
                signature: String::new(),
                signed_at: String::new(),
                error: None,
                results: Vec::new(),
            },
        ),
        (["check"], _, true) => check(&ctx, req).await,
        (["users"], true, _) => users_page(&ctx, &req).await,
        (["users", "export.csv"], true, _) => export::export_users(&ctx).await,
        (["user", tail @ ..], _, _) => {
            let Some(user_id) = query(&req).remove("id") else {
                return not_found(Some(ctx.account));
            };
            match (tail, get, post) {
                ([], true, _) => user_page(&ctx, &user_id).await,
                (["delete"], true, _) => delete_user_confirm(&ctx, &user_id).await,
                (["delete"], _, true) => delete_user(&ctx, &user_id).await,
                _ => not_found(Some(ctx.account)),
            }
        }
        (["users", user_id], true, _) => user_page(&ctx, user_id).await,
        (["users", user_id, "delete"], true, _) => delete_user_confirm(&ctx, user_id).await,
        (["users", user_id, "delete"], _, true) => delete_user(&ctx, user_id).await,
        (["audit"], true, _) => audit_page(&ctx).await,
        _ => not_found(Some(ctx.account)),
    }
}

// ---------------------------------------------------------------------------------------------
// Security: keys, strict mode, signed claims, origins

/// A workspace's stored counts: per window (1 h, 24 h, 7 d) and per hour of the last 24 h.
struct Counts {
    hour: CallCounts,
    day: CallCounts,
    week: CallCounts,
    hourly: [CallCounts; 24],
}

async fn counts(ctx: &Ctx<'_>) -> Result<Counts, StoreError> {
    let now_min = now().div_euclid(60);
    let rows = ctx
        .state
        .store
        .call_counts(ctx.app(), now_min - 7 * 24 * 60 + 1)
        .await?;
    let mut c = Counts {
        hour: CallCounts::default(),
        day: CallCounts::default(),
        week: CallCounts::default(),
        hourly: [CallCounts::default(); 24],
    };
    for (minute, n) in rows {
        let age = now_min - minute;
        c.week.add(&n);
        if age < 24 * 60 {
            c.day.add(&n);
            if let Ok(i) = usize::try_from(age / 60) {
                c.hourly[23 - i.min(23)].add(&n);
            }
        }
        if age < 60 {
            c.hour.add(&n);
        }
    }
    Ok(c)
}

fn chart(hourly: &[CallCounts; 24], day: &CallCounts) -> Chart {
    const W: u32 = 480;
    const H: u32 = 100;
    const BAR: u32 = 16;
    let max = hourly
        .iter()
        .map(CallCounts::total)
        .max()
        .unwrap_or(0)
        .max(1);
    let bars = hourly
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut y = H - 1;
            let mut segs = Vec::new();
            for (n, class) in [
                (c.verified(), "verified"),
                (c.unverified, "unverified"),
                (c.would_reject, "would"),
                (c.rejected, "rejected"),
            ] {
                if n == 0 {
                    continue;
                }
                let h = u32::try_from((n * u64::from(H - 2)).div_ceil(max))
                    .unwrap_or(H)
                    .clamp(1, y);
                y -= h;
                segs.push(Seg { y, h, class });
            }
            Bar {
                x: u32::try_from(i).unwrap_or(0) * (W / 24) + 2,
                segs,
            }
        })
        .collect();
    Chart {
        width: W,
        height: H,
        axis_y: H - 1,
        bar_w: BAR,
        bars,
        summary: format!(
            "Last 24 hours: {} verified, {} unverified, {} would be rejected, {} rejected",
            day.verified(),
            day.unverified,
            day.would_reject,
            day.rejected
        ),
    }
}

/// The line shown after a change redirected back to the Security page (fixed texts: nothing
/// from the query string is echoed).
fn notice_for(done: &str) -> Option<String> {
    Some(
        match done {
            "retired" => "Key retired: it no longer verifies.",
            "strict" => "Strict mode saved.",
            "claims" => "Signed-claims setting saved.",
            "origins" => "Allowed origins saved.",
            _ => return None,
        }
        .to_string(),
    )
}

fn strict_label(mode: StrictMode) -> &'static str {
    match mode {
        StrictMode::Off => "off",
        StrictMode::ReportOnly => "report-only",
        StrictMode::Enforce => "on",
    }
}

/// `part` as a rounded percentage of `whole` (0 when there is nothing).
fn pct(part: u64, whole: u64) -> u64 {
    (part * 100 + whole / 2).checked_div(whole).unwrap_or(0)
}

async fn security_page(
    ctx: &Ctx<'_>,
    status: StatusCode,
    notice: Option<String>,
    origins_form: Option<(String, String)>,
) -> Response<Body> {
    let c = match counts(ctx).await {
        Ok(c) => c,
        Err(e) => return unavailable(&e, Some(ctx.account)),
    };
    let used = match ctx.state.store.key_last_used(ctx.app()).await {
        Ok(u) => u,
        Err(e) => return unavailable(&e, Some(ctx.account)),
    };
    let now = now();
    let keys = ctx
        .ws
        .keys
        .iter()
        .map(|k| KeyRow {
            id: k.id,
            label: k.label.clone(),
            created: fmt_time(k.created_at),
            created_by: k.created_by.clone(),
            last_used: fmt_opt_time(used.get(&k.id).copied()),
            live: k.live(now),
            status: match k.expires_at {
                None => "verifies".into(),
                Some(t) if t <= now => format!("stopped verifying {}", fmt_time(t)),
                Some(t) => format!("verifies until {}", fmt_time(t)),
            },
        })
        .collect();
    let (origins_text, origins_error) = match origins_form {
        Some((text, err)) => (text, Some(err)),
        None => (ctx.ws.allowed_origins.join("\n"), None),
    };
    let verified_7d = c.week.verified();
    let mut l = ctx.layout("Security", "security");
    l.notice = notice;
    render(
        status,
        &SecurityPage {
            l,
            app_id: ctx.app().to_string(),
            can_change: ctx.owner,
            live_count: ctx.ws.live_keys(now).count(),
            max_keys: MAX_LIVE_KEYS,
            keys,
            strict: ctx.ws.strict.as_str(),
            strict_label: strict_label(ctx.ws.strict),
            strict_choices: STRICT_CHOICES,
            windows: vec![
                Window::new("Last hour", "1h", c.hour),
                Window::new("24 hours", "24h", c.day),
                Window::new("7 days", "7d", c.week),
            ],
            chart: chart(&c.hourly, &c.day),
            require_claims: ctx.ws.require_signed_claims,
            verified_7d,
            seed_pct: pct(c.week.verified_seed, verified_7d),
            claims_pct: pct(c.week.verified_claims, verified_7d),
            origins: ctx.ws.allowed_origins.clone(),
            origins_text,
            origins_error,
        },
    )
}

fn key_error(ctx: &Ctx<'_>, e: StoreError) -> Response<Body> {
    match e {
        StoreError::Key(k) => message(
            StatusCode::CONFLICT,
            "Not done",
            k.message(),
            Some(ctx.account),
            Some(Link::new(&security_url(ctx.app()), "Back to Security")),
        ),
        StoreError::WorkspaceNotFound => not_found(Some(ctx.account)),
        e => unavailable(&e, Some(ctx.account)),
    }
}

/// The key that signs signed-claims tokens (derived from the secret; shown with it, once).
fn claims_key_of(secret: &SecretKey) -> Option<String> {
    Some(secret.expose_claims_key().to_string())
}

fn secret_page(
    ctx: &Ctx<'_>,
    title: &str,
    key_id: i64,
    label: &str,
    secret: &SecretKey,
    notes: Vec<String>,
) -> Response<Body> {
    render(
        StatusCode::OK,
        &SecretPage {
            l: ctx.layout(title, "security"),
            key_id,
            label: label.to_string(),
            secret: secret.expose_secret().to_string(),
            claims_key: claims_key_of(secret),
            notes,
            back: security_url(ctx.app()),
        },
    )
}

async fn create_key(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let label = f.get("label").map(|s| s.trim()).unwrap_or_default();
    let now = now();
    let expires_at = match f.get("expires").map(String::as_str).unwrap_or("never") {
        "never" => None,
        d => match parse_duration(d) {
            Some(secs) if secs > 0 => Some(now + secs),
            _ => return key_error(ctx, StoreError::Key(KeyRuleError::BadExpiry)),
        },
    };
    match ctx
        .state
        .store
        .create_key(ctx.app(), label, expires_at, ctx.actor(), now)
        .await
    {
        Ok(k) => {
            let mut notes = vec![format!(
                "Key {} verifies from now on, beside the workspace's other live keys.",
                k.key_id
            )];
            if let Some(t) = expires_at {
                notes.push(format!("It stops verifying at {}.", fmt_time(t)));
            }
            secret_page(ctx, "New secret key", k.key_id, label, &k.secret, notes)
        }
        Err(e) => key_error(ctx, e),
    }
}

/// `now`, `1h`, `24h`, `1d`, `7d`, `30d`, `90d` as seconds.
fn parse_duration(s: &str) -> Option<i64> {
    if s == "now" {
        return Some(0);
    }
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = n.parse().ok()?;
    let unit = match unit {
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(unit)
}

const GRACES: [(&str, &str, i64); 4] = [
    ("now", "Now", 0),
    ("1h", "1 hour", 3600),
    ("24h", "24 hours", 86_400),
    ("7d", "7 days", 7 * 86_400),
];

fn roll_confirm(ctx: &Ctx<'_>, key: &workspace::Key) -> Response<Body> {
    let now = now();
    let choices = GRACES
        .iter()
        .map(|(value, label, secs)| {
            let until = workspace::rolled_expiry(key.expires_at, now, *secs);
            let detail = if until <= now {
                format!(
                    "calls signed with key {} stop verifying now: every backend still signing \
                     with it gets 401 signature_mismatch at once",
                    key.id
                )
            } else {
                let mut d = format!(
                    "calls signed with key {} stop verifying at {}; put the new key in every \
                     backend before then",
                    key.id,
                    fmt_time(until)
                );
                if until < now + secs {
                    d.push_str(
                        " (its current grace period ends sooner, and a roll never extends it)",
                    );
                }
                d
            };
            Choice {
                value,
                label,
                detail,
                checked: *value == "1h",
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &ConfirmPage {
            l: ctx.layout(&format!("Roll key {}", key.id), "security"),
            paragraphs: vec![
                format!(
                    "Rolling key {} ({}) creates a new key with the same label and shows its \
                     secret once. Key {} keeps verifying for the grace period you choose; no \
                     other key changes.",
                    key.id, key.label, key.id
                ),
                format!(
                    "Key {} was last used: {}.",
                    key.id,
                    fmt_opt_time(key.last_used_at)
                ),
            ],
            action: format!("/console/w/{}/keys/{}/roll", enc(ctx.app()), key.id),
            hidden: vec![],
            choices_legend: format!("How long key {} keeps verifying", key.id),
            choices_name: "grace",
            choices,
            button: format!("Roll key {}", key.id),
            button_class: "",
            cancel: security_url(ctx.app()),
            can_proceed: true,
        },
    )
}

async fn roll(ctx: &Ctx<'_>, key: &workspace::Key, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let Some(grace) = f
        .get("grace")
        .and_then(|g| GRACES.iter().find(|(v, ..)| v == g))
        .map(|(.., secs)| *secs)
    else {
        return message(
            StatusCode::BAD_REQUEST,
            "Choose a grace period",
            "Pick how long the old key keeps verifying: now, 1 hour, 24 hours or 7 days.",
            Some(ctx.account),
            Some(Link::new(
                &format!("/console/w/{}/keys/{}/roll", enc(ctx.app()), key.id),
                "Back",
            )),
        );
    };
    match ctx
        .state
        .store
        .roll_key(ctx.app(), Some(key.id), grace, ctx.actor(), now())
        .await
    {
        Ok(k) => {
            let until = k.old_key_expires_at.unwrap_or_else(now);
            let notes = vec![if until <= now() {
                format!("Key {} stopped verifying now.", key.id)
            } else {
                format!(
                    "Key {} keeps verifying until {}: both keys verify until then.",
                    key.id,
                    fmt_time(until)
                )
            }];
            secret_page(
                ctx,
                &format!("Key {} rolled: new key {}", key.id, k.key_id),
                k.key_id,
                &key.label,
                &k.secret,
                notes,
            )
        }
        Err(e) => key_error(ctx, e),
    }
}

fn retire_confirm(ctx: &Ctx<'_>, key: &workspace::Key) -> Response<Body> {
    let only = ctx.ws.live_keys(now()).count() <= 1;
    let mut paragraphs = vec![format!(
        "Retiring key {} ({}) stops it verifying now: every call signed with it is refused \
         (401 signature_mismatch) from then on, and its secret is forgotten. It was last used: {}.",
        key.id,
        key.label,
        fmt_opt_time(key.last_used_at)
    )];
    if only {
        paragraphs.push(KeyRuleError::LastLiveKey.message().to_string());
    }
    render(
        StatusCode::OK,
        &ConfirmPage {
            l: ctx.layout(&format!("Retire key {}", key.id), "security"),
            paragraphs,
            action: format!("/console/w/{}/keys/{}/retire", enc(ctx.app()), key.id),
            hidden: vec![],
            choices_legend: String::new(),
            choices_name: "",
            choices: vec![],
            button: format!("Retire key {}", key.id),
            button_class: "danger",
            cancel: security_url(ctx.app()),
            can_proceed: !only,
        },
    )
}

async fn retire(ctx: &Ctx<'_>, key: &workspace::Key) -> Response<Body> {
    match ctx
        .state
        .store
        .retire_key(ctx.app(), key.id, ctx.actor(), now())
        .await
    {
        Ok(_) => redirect(&format!("{}?done=retired", security_url(ctx.app()))),
        Err(e) => key_error(ctx, e),
    }
}

async fn update(ctx: &Ctx<'_>, patch: WorkspacePatch, done: &str) -> Response<Body> {
    match ctx
        .state
        .store
        .update_workspace(ctx.app(), &patch, ctx.actor(), now())
        .await
    {
        Ok(_) => redirect(&format!("{}?done={done}", security_url(ctx.app()))),
        Err(StoreError::WorkspaceNotFound) => not_found(Some(ctx.account)),
        Err(e) => unavailable(&e, Some(ctx.account)),
    }
}

async fn strict(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let Some(mode) = f
        .get("mode")
        .and_then(|m| STRICT_CHOICES.iter().find(|(v, _)| v == m))
        .and_then(|(v, _)| StrictMode::parse(v))
    else {
        return message(
            StatusCode::BAD_REQUEST,
            "Choose a mode",
            "Strict mode is off, report-only or on.",
            Some(ctx.account),
            Some(Link::new(&security_url(ctx.app()), "Back to Security")),
        );
    };
    let confirmed = f.get("confirm").is_some_and(|c| c == "yes");
    if mode == StrictMode::Enforce && ctx.ws.strict != StrictMode::Enforce && !confirmed {
        let c = match counts(ctx).await {
            Ok(c) => c,
            Err(e) => return unavailable(&e, Some(ctx.account)),
        };
        let refused = c.day.unverified + c.day.would_reject;
        return render(
            StatusCode::OK,
            &ConfirmPage {
                l: ctx.layout("Turn strict mode on", "security"),
                paragraphs: vec![
                    format!(
                        "In the last 24 hours {refused} calls were accepted without a valid \
                         signature ({} unverified, {} counted as would be rejected). With strict \
                         mode on, each of them would have been refused (401) and stored nothing.",
                        c.day.unverified, c.day.would_reject
                    ),
                    format!(
                        "{} calls verified in the same 24 hours; they keep working.",
                        c.day.verified()
                    ),
                    "If that number is not zero, find the callers in Recent rejections (switch \
                     to report-only first to see them) before turning strict mode on."
                        .into(),
                ],
                action: format!("/console/w/{}/strict", enc(ctx.app())),
                hidden: vec![("mode", "on".into()), ("confirm", "yes".into())],
                choices_legend: String::new(),
                choices_name: "",
                choices: vec![],
                button: format!("Turn strict mode on (refuse about {refused} calls a day)"),
                button_class: "danger",
                cancel: security_url(ctx.app()),
                can_proceed: true,
            },
        );
    }
    let patch = WorkspacePatch {
        strict: Some(mode),
        ..Default::default()
    };
    update(ctx, patch, "strict").await
}

async fn claims(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let required = match f.get("required").map(String::as_str) {
        Some("on") => true,
        Some("off") => false,
        _ => {
            return message(
                StatusCode::BAD_REQUEST,
                "Choose on or off",
                "Require signed claims is on or off.",
                Some(ctx.account),
                Some(Link::new(&security_url(ctx.app()), "Back to Security")),
            );
        }
    };
    let confirmed = f.get("confirm").is_some_and(|c| c == "yes");
    if required && !ctx.ws.require_signed_claims && !confirmed {
        let c = match counts(ctx).await {
            Ok(c) => c,
            Err(e) => return unavailable(&e, Some(ctx.account)),
        };
        return render(
            StatusCode::OK,
            &ConfirmPage {
                l: ctx.layout("Require signed claims", "security"),
                paragraphs: vec![format!(
                    "In the last 24 hours {} calls verified with the seed form and {} were not \
                     signed at all. With signed claims required, all of them would have been \
                     refused (401 signed_claims_required); only the {} calls with a signed-claims \
                     token keep working.",
                    c.day.verified_seed,
                    c.day.unverified + c.day.would_reject,
                    c.day.verified_claims
                )],
                action: format!("/console/w/{}/claims", enc(ctx.app())),
                hidden: vec![("required", "on".into()), ("confirm", "yes".into())],
                choices_legend: String::new(),
                choices_name: "",
                choices: vec![],
                button: "Require signed claims".into(),
                button_class: "danger",
                cancel: security_url(ctx.app()),
                can_proceed: true,
            },
        );
    }
    let patch = WorkspacePatch {
        require_signed_claims: Some(required),
        ..Default::default()
    };
    update(ctx, patch, "claims").await
}

/// Most allowed origins one workspace may list.
const MAX_ORIGINS: usize = 100;

async fn origins(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let text = f.get("origins").cloned().unwrap_or_default();
    let mut list: Vec<String> = Vec::new();
    let mut problem = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Err(e) = workspace::validate_origin_pattern(line) {
            problem = Some(e);
            break;
        }
        if !list.iter().any(|o| o == line) {
            list.push(line.to_string());
        }
    }
    if problem.is_none() && list.len() > MAX_ORIGINS {
        problem = Some(format!("at most {MAX_ORIGINS} allowed origins"));
    }
    if let Some(e) = problem {
        return security_page(ctx, StatusCode::UNPROCESSABLE_ENTITY, None, Some((text, e))).await;
    }
    let patch = WorkspacePatch {
        allowed_origins: Some(list),
        ..Default::default()
    };
    update(ctx, patch, "origins").await
}

// ---------------------------------------------------------------------------------------------
// Rejections, signature check

/// What to do about a rejection code, in plain words.
fn fix_for(code: &str) -> &'static str {
    if code == "origin_not_allowed" {
        return "the page calling identify() is on an origin this workspace does not allow: add \
                it under Allowed origins (scheme://host[:port], no path)";
    }
    Rejection::ALL
        .iter()
        .find(|r| r.code() == code)
        .map_or("see the error message your integration received", |r| {
            r.message()
        })
}

async fn rejections_page(ctx: &Ctx<'_>) -> Response<Body> {
    let list = match ctx.state.store.recent_rejections(ctx.app()).await {
        Ok(l) => l,
        Err(e) => return unavailable(&e, Some(ctx.account)),
    };
    let rows = list
        .into_iter()
        .map(|r| RejectionRow {
            at: fmt_time(r.at),
            fix: fix_for(&r.code),
            code: r.code,
            enforced: r.enforced,
            key: r.key_id.map_or_else(|| "-".into(), |k| k.to_string()),
            origin: r.origin.unwrap_or_else(|| "-".into()),
            user_id: r.user_id.unwrap_or_else(|| "-".into()),
        })
        .collect();
    render(
        StatusCode::OK,
        &RejectionsPage {
            l: ctx.layout("Recent rejections", "rejections"),
            max: crate::store::MAX_RECENT_REJECTIONS,
            rows,
        },
    )
}

/// Longest user id / signature the check form takes (identify's own limits are smaller).
const MAX_CHECK_FIELD: usize = 8 * 1024;

async fn check(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let user_id = f.get("user_id").cloned().unwrap_or_default();
    let signature = f
        .get("signature")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let signed_at_text = f
        .get("signed_at")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mut error = None;
    let signed_at = if signed_at_text.is_empty() {
        None
    } else {
        match signed_at_text.parse::<i64>() {
            Ok(t) => Some(t),
            Err(_) => {
                error = Some("signedAt is a whole number of seconds since 1970.".to_string());
                None
            }
        }
    };
    if user_id.is_empty() || signature.is_empty() {
        error = Some("Give the user id and the signature or token.".into());
    }
    if user_id.len() > MAX_CHECK_FIELD || signature.len() > MAX_CHECK_FIELD {
        error = Some("That is longer than any identify call can be.".into());
    }
    let mut results = Vec::new();
    if error.is_none() {
        let now = now();
        for key in ctx.ws.live_keys(now) {
            let report = crate::diagnose::diagnose(&crate::diagnose::Input {
                secret: key.secret.clone(),
                user_id: user_id.clone(),
                signature: signature.clone(),
                signed_at,
                now,
                email: None,
            });
            results.push(CheckResult {
                key_id: key.id,
                label: key.label.clone(),
                valid: report.valid,
                code: report.code,
                findings: report
                    .findings
                    .into_iter()
                    .map(|f| FindingRow {
                        check: f.check,
                        ok: f.ok,
                        detail: f.detail,
                    })
                    .collect(),
                fix: report.fix,
            });
        }
    }
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render(
        status,
        &CheckPage {
            l: ctx.layout("Check a signature", "check"),
            app_id: ctx.app().to_string(),
            user_id,
            signature,
            signed_at: signed_at_text,
            error,
            results,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Users

async fn users_page(ctx: &Ctx<'_>, req: &Request<Incoming>) -> Response<Body> {
    let q = query(req);
    let show = match q.get("show").map(String::as_str) {
        Some("verified") => "verified",
        Some("unverified") => "unverified",
        _ => "all",
    };
    let search = q
        .get("q")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let query = UserQuery {
        verified: match show {
            "verified" => Some(true),
            "unverified" => Some(false),
            _ => None,
        },
        search: search.clone(),
        after: q.get("after").cloned().filter(|s| !s.is_empty()),
        limit: USERS_PER_PAGE + 1,
    };
    let mut users = match ctx.state.store.list_users(ctx.app(), &query).await {
        Ok(u) => u,
        Err(e) => return unavailable(&e, Some(ctx.account)),
    };
    let next = (users.len() > USERS_PER_PAGE).then(|| {
        users.truncate(USERS_PER_PAGE);
        let last = users.last().map(|u| u.user_id.as_str()).unwrap_or_default();
        let mut qs = form_urlencoded::Serializer::new(String::new());
        qs.append_pair("show", show);
        if let Some(s) = &search {
            qs.append_pair("q", s);
        }
        qs.append_pair("after", last);
        format!("/console/w/{}/users?{}", enc(ctx.app()), qs.finish())
    });
    let rows = users
        .into_iter()
        .map(|u| UserRow {
            url: user_url(ctx.app(), &u.user_id, false),
            method: u.method.unwrap_or_else(|| "-".into()),
            last_seen: fmt_time(u.last_seen),
            verified: u.verified,
            user_id: u.user_id,
        })
        .collect();
    render(
        StatusCode::OK,
        &UsersPage {
            l: ctx.layout("Users", "users"),
            app_id: ctx.app().to_string(),
            shows: SHOWS,
            show,
            q: search.unwrap_or_default(),
            rows,
            next,
        },
    )
}

fn json_field(v: &serde_json::Value, name: &str) -> String {
    match v.get(name) {
        None | Some(serde_json::Value::Null) => "-".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

async fn user_page(ctx: &Ctx<'_>, user_id: &str) -> Response<Body> {
    let u = match ctx.state.store.get_user(ctx.app(), user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return not_found(Some(ctx.account)),
        Err(e) => return unavailable(&e, Some(ctx.account)),
    };
    // A verified user's columns hold trusted values and its later claims sit aside; a
    // never-verified user's columns hold only what browsers claimed.
    let columns = serde_json::to_value(&u).unwrap_or_default();
    let aside = u.unverified_claims.clone().unwrap_or_default();
    let traits = ["name", "email", "plan", "mrr", "signup_date"]
        .into_iter()
        .map(|t| {
            if u.verified {
                (t, json_field(&columns, t), json_field(&aside, t))
            } else {
                (t, "-".to_string(), json_field(&columns, t))
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &UserPage {
            l: ctx.layout("User", "users"),
            can_change: ctx.owner,
            user_id: u.user_id.clone(),
            delete_url: user_url(ctx.app(), &u.user_id, true),
            verified: u.verified,
            method: u.method.clone().unwrap_or_else(|| "-".into()),
            key: u.key_id.map_or_else(|| "-".into(), |k| k.to_string()),
            verified_at: fmt_opt_time(u.verified_at),
            signed_at: fmt_opt_time(u.signed_at),
            first_seen: fmt_time(u.first_seen),
            last_seen: fmt_time(u.last_seen),
            traits,
            custom: serde_json::to_string_pretty(&u.custom).unwrap_or_default(),
            claimed_custom: aside
                .get("custom")
                .filter(|_| u.verified)
                .map(|c| serde_json::to_string_pretty(c).unwrap_or_default()),
        },
    )
}

async fn delete_user_confirm(ctx: &Ctx<'_>, user_id: &str) -> Response<Body> {
    match ctx.state.store.get_user(ctx.app(), user_id).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(Some(ctx.account)),
        Err(e) => return unavailable(&e, Some(ctx.account)),
    }
    render(
        StatusCode::OK,
        &ConfirmPage {
            l: ctx.layout("Delete a user's data", "users"),
            paragraphs: vec![format!(
                "Delete everything stored about user {user_id:?}: trusted values, claims and \
                 custom traits. If the user's browser calls identify() again, the user is \
                 stored again from that call."
            )],
            action: user_url(ctx.app(), user_id, true),
            hidden: vec![],
            choices_legend: String::new(),
            choices_name: "",
            choices: vec![],
            button: "Delete this user's data".into(),
            button_class: "danger",
            cancel: user_url(ctx.app(), user_id, false),
            can_proceed: true,
        },
    )
}

async fn delete_user(ctx: &Ctx<'_>, user_id: &str) -> Response<Body> {
    match ctx
        .state
        .store
        .delete_user(ctx.app(), user_id, ctx.actor(), now())
        .await
    {
        Ok(true) => redirect(&format!("/console/w/{}/users?deleted=1", enc(ctx.app()))),
        Ok(false) => not_found(Some(ctx.account)),
        Err(e) => unavailable(&e, Some(ctx.account)),
    }
}

async fn audit_page(ctx: &Ctx<'_>) -> Response<Body> {
    let entries = match ctx.state.store.audit_log(ctx.app(), AUDIT_ROWS).await {
        Ok(e) => e,
        Err(e) => return unavailable(&e, Some(ctx.account)),
    };
    let rows = entries
        .into_iter()
        .map(|e| AuditRow {
            at: fmt_time(e.at),
            actor: e.actor,
            action: e.action,
            detail: e.detail.to_string(),
        })
        .collect();
    render(
        StatusCode::OK,
        &AuditPage {
            l: ctx.layout("Audit log", "audit"),
            rows,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h"), Some(3600));
        assert_eq!(parse_duration("7d"), Some(604_800));
        assert_eq!(parse_duration("now"), Some(0));
        assert_eq!(parse_duration("7w"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn every_code_has_a_fix() {
        for r in Rejection::ALL {
            assert_ne!(fix_for(r.code()), fix_for("nope"));
        }
        assert!(fix_for("origin_not_allowed").contains("Allowed origins"));
    }
}
