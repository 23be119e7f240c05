//! The pages before a workspace is chosen: logging in (rate-limited, argon2id off the async
//! workers), logging out, and the list of the account's workspaces.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::context::{read_form, redirect, render, retry_after, unavailable};
use super::pages::{Layout, LoginPage, WorkspaceItem, WorkspacesPage};
use super::session;
use crate::limits;
use crate::state::AppState;
use crate::store::Account;
use crate::web::{Body, now};

/// How long a login waits for a password check to be free before a 503 "busy" page.
const LOGIN_QUEUE_WAIT: Duration = Duration::from_secs(10);

pub(super) fn login_page(status: StatusCode, error: Option<&str>, email: &str) -> Response<Body> {
    render(
        status,
        &LoginPage {
            l: Layout::plain("Log in", None),
            error: error.map(str::to_string),
            email: email.to_string(),
        },
    )
}

pub(super) async fn login(
    state: &Arc<AppState>,
    peer: IpAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let secure = state.config.console.secure_cookies;
    // Limits follow the client as the identify path sees it (behind a trusted proxy, the
    // forwarded address; IPv6 by /64), not the balancer every user shares.
    let client = limits::client_ip(peer, req.headers(), &state.config.trusted_proxies);
    let f = match read_form(state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let email = f.get("email").map(|e| e.trim()).unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    if email.len() > session::MAX_EMAIL_BYTES {
        // Refused before any limit is consulted: a flood of long emails leaves nothing behind.
        return login_page(
            StatusCode::BAD_REQUEST,
            Some("That email address is too long (at most 254 characters)."),
            "",
        );
    }
    let Some(attempt) = state.console.login_limits.attempt(email, client) else {
        let page = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many login attempts. Wait a minute and try again."),
            email,
        );
        return retry_after(page, "60");
    };
    let account = match state.store.account_login(email).await {
        Ok(a) => a,
        Err(e) => return unavailable(&e, None),
    };
    // argon2 is CPU-bound for tens of milliseconds and holds 19 MiB while it runs: off the async
    // workers, and only a few at once (many clients each within their limits could otherwise
    // run hundreds together). An unknown email runs it too, so timing does not tell which emails
    // have accounts.
    let permit = match tokio::time::timeout(
        LOGIN_QUEUE_WAIT,
        Arc::clone(&state.console.password_checks).acquire_owned(),
    )
    .await
    {
        Ok(Ok(permit)) => permit,
        _ => {
            let page = login_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("The server is busy checking other logins. Try again in a moment."),
                email,
            );
            return retry_after(page, "5");
        }
    };
    let verified = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        match &account {
            Some(a) if session::verify_password(&password, &a.password_phc) => Some(a.id),
            Some(_) => None,
            None => {
                session::verify_unknown_account(&password);
                None
            }
        }
    })
    .await
    .ok()
    .flatten();
    let Some(account_id) = verified else {
        // Any client can repeat this at will: rate-limited like other client-triggered lines.
        if state.limits.may_log() {
            tracing::info!(%client, "console login failed");
        }
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("Wrong email or password."),
            email,
        );
    };
    state.console.login_limits.succeeded(attempt);
    let (token, digest) = session::new_token();
    let rules = session::rules(&state.config.console);
    if let Err(e) = state
        .store
        .create_session(digest, account_id, rules, now())
        .await
    {
        return unavailable(&e, None);
    }
    let mut res = redirect("/console/workspaces");
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&token, secure)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// Ends the session the request came with and clears its cookie.
pub(super) async fn logout(
    state: &AppState,
    account: &Account,
    token: Option<[u8; 32]>,
) -> Response<Body> {
    if let Some(t) = token
        && let Err(e) = state.store.delete_session(t).await
    {
        return unavailable(&e, Some(account));
    }
    let mut res = redirect("/console/login");
    let secure = state.config.console.secure_cookies;
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(secure)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

pub(super) fn workspaces_page(state: &AppState, account: &Account) -> Response<Body> {
    let items = account
        .memberships
        .iter()
        .map(|m| WorkspaceItem {
            name: state
                .registry
                .get(&m.app_id)
                .map(|w| w.name.clone())
                .unwrap_or_else(|| m.app_id.clone()),
            app_id: m.app_id.clone(),
            role: m.role.as_str(),
        })
        .collect();
    render(
        StatusCode::OK,
        &WorkspacesPage {
            l: Layout::plain("Workspaces", Some(account)),
            items,
        },
    )
}
