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

mod check;
mod context;
mod csrf;
mod export;
mod keys;
mod login;
mod pages;
mod rejections;
mod security;
pub mod session;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;

use crate::state::AppState;
use crate::store::{Account, Role};
use crate::users::UserQuery;
use crate::web::{Body, full, now};
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
            let notice = query(&req)
                .get("done")
                .and_then(|d| security::notice_for(d));
            security::security_page(&ctx, StatusCode::OK, notice, None).await
        }
        (["keys"], _, true) => keys::create_key(&ctx, req).await,
        (["keys", id, action @ ("roll" | "retire")], _, _) if get || post => {
            keys::key_page(&ctx, id, action, post, req).await
        }
        (["strict"], _, true) => security::strict(&ctx, req).await,
        (["claims"], _, true) => security::claims(&ctx, req).await,
        (["origins"], _, true) => security::origins(&ctx, req).await,
        (["rejections"], true, _) => rejections::rejections_page(&ctx).await,
        (["check"], true, _) => check::form(&ctx),
        (["check"], _, true) => check::check(&ctx, req).await,
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
