//! The console: each workspace's Security page and the pages beside it (Recent rejections, Check
//! a signature, Users, Team, Audit log), server-rendered under `/console`. This file routes
//! every `/console...` request; each page has a file of its own:
//!
//! - `login.rs`: logging in and out, the list of the account's workspaces;
//! - `security.rs`: a workspace's counts and settings (strict mode, signed claims, origins);
//! - `keys.rs`: creating, rolling and retiring secret keys;
//! - `rejections.rs`, `check.rs`: recent rejections, and checking a signature;
//! - `users.rs`, `export.rs`: the stored users, and their CSV export;
//! - `team.rs`: the workspace's members, invitations (and the invitation link's page, which
//!   needs no session), roles and removals;
//! - `audit.rs`: the audit log.
//!
//! What the pages share: `context.rs` (who asks about which workspace, the HTML answers),
//! `pages.rs` (the askama templates, HTML-escaped by default, checked at compile time),
//! [`session`] (passwords, session tokens kept hashed in the store) and `csrf.rs` (the cross-site
//! rule every non-GET request passes first). The counts they show are [`crate::stats`]; the
//! login limits are [`crate::limits::login`].
//!
//! Authorization is decided here, once per request, before any page code runs: a workspace the
//! account is not a member of answers 404 (the same as one that does not exist, so ids cannot be
//! probed), and a viewer's change answers 403. Every change goes through the same [`Store`]
//! methods as the CLI and the admin API, with the account's email as the audit actor.
//!
//! [`Store`]: crate::store::Store

mod audit;
mod check;
mod context;
mod csrf;
mod export;
mod issuers;
mod keys;
mod login;
mod pages;
mod rejections;
mod security;
pub mod session;
mod team;
mod users;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header;
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;

use crate::state::AppState;
use crate::store::{Account, Role};
use crate::web::{Body, full, now, set_headers};
use context::{Ctx, message, not_found, query, redirect, security_url, unavailable};
use pages::Link;

/// The console's settings, at the path the CLI and tests name (`console::ConsoleConfig`).
pub use crate::state::ConsoleConfig;

const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");

fn asset(body: &'static str, content_type: &'static str) -> Response<Body> {
    let mut res = Response::new(full(Bytes::from_static(body.as_bytes())));
    set_headers(
        res.headers_mut(),
        &[
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
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
        // An invitation link: the invited person has no session yet.
        ["invite", token] if get => return team::invite_page(state, token).await,
        ["invite", token] if method == Method::POST => {
            return team::accept(state, peer, token, req).await;
        }
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
        ["keys", _, "roll" | "retire"]
        | ["users", _, "delete"]
        | ["user", "delete"]
        | ["team", "remove"] => true,
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
        (["issuers"], true, _) => issuers::issuers_page(&ctx),
        (["issuers"], _, true) => issuers::add(&ctx, req).await,
        (["issuers", "remove"], _, true) => issuers::remove(&ctx, req).await,
        (["check"], _, true) => check::check(&ctx, req).await,
        (["users"], true, _) => users::users_page(&ctx, &req).await,
        (["users", "export.csv"], true, _) => {
            match export::Which::from_query(query(&req).get("show").map(String::as_str)) {
                Some(which) => export::export_users(&ctx, which).await,
                None => not_found(Some(ctx.account)),
            }
        }
        (["user", tail @ ..], _, _) => {
            let Some(user_id) = query(&req).remove("id") else {
                return not_found(Some(ctx.account));
            };
            match (tail, get, post) {
                ([], true, _) => users::user_page(&ctx, &user_id).await,
                (["delete"], true, _) => users::delete_user_confirm(&ctx, &user_id).await,
                (["delete"], _, true) => users::delete_user(&ctx, &user_id).await,
                _ => not_found(Some(ctx.account)),
            }
        }
        (["users", user_id], true, _) => users::user_page(&ctx, user_id).await,
        (["users", user_id, "delete"], true, _) => users::delete_user_confirm(&ctx, user_id).await,
        (["users", user_id, "delete"], _, true) => users::delete_user(&ctx, user_id).await,
        (["audit"], true, _) => audit::audit_page(&ctx).await,
        (["team"], true, _) => team::team_page(&ctx, &req).await,
        (["team", "invite"], _, true) => team::invite(&ctx, req).await,
        (["team", "cancel"], _, true) => team::cancel_invite(&ctx, req).await,
        (["team", "role"], _, true) => team::set_role(&ctx, req).await,
        (["team", "remove"], true, _) => team::remove_confirm(&ctx, &req),
        (["team", "remove"], _, true) => team::remove(&ctx, req).await,
        _ => not_found(Some(ctx.account)),
    }
}
