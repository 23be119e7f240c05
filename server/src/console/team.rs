//! A workspace's Team page: its members with their role and last login, and for owners inviting
//! someone (a one-time link valid 72 hours, shown once: the verifier sends no mail), changing a
//! role, removing a member and cancelling an invitation, each audited. The last owner can be
//! neither demoted nor removed (the store decides it, in the transaction that changes it).
//!
//! The invitation link (`/console/invite/{token}`) is the one page here that needs no session:
//! the invited person sets their own password through it (argon2id, as `user create` does), or,
//! when an account with that email exists, proves it with that account's password. Its attempts
//! spend the login limits of that email, and its password work shares the login's queue.

use std::net::IpAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, Response, StatusCode};
use sha2::{Digest, Sha256};

use super::context::{
    Ctx, enc, fmt_opt_time, fmt_time, message, query, read_form, redirect, render, retry_after,
    unavailable,
};
use super::pages::{
    AcceptPage, ConfirmPage, InviteLinkPage, InviteRow, Layout, Link, MemberRow, ROLES, TeamPage,
};
use super::session;
use crate::limits;
use crate::state::AppState;
use crate::store::{Role, StoreError, TeamRefusal};
use crate::web::{Body, now};

fn team_url(app_id: &str) -> String {
    format!("/console/w/{}/team", enc(app_id))
}

/// The Team page's notices after a change (fixed texts: nothing from the query is echoed).
fn notice_for(done: &str) -> Option<String> {
    Some(
        match done {
            "role" => "Role saved.",
            "removed" => "Member removed: their open sessions lose this workspace at once.",
            "cancelled" => "Invitation cancelled: its link no longer works.",
            _ => return None,
        }
        .to_string(),
    )
}

fn refused(ctx: &Ctx<'_>, r: TeamRefusal) -> Response<Body> {
    let status = match r {
        TeamRefusal::NotMember => StatusCode::NOT_FOUND,
        TeamRefusal::TooManyInvites => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::CONFLICT,
    };
    message(
        status,
        "Not done",
        r.message(),
        Some(ctx.account),
        Some(Link::new(&team_url(ctx.app()), "Back to Team")),
    )
}

fn bad_form(ctx: &Ctx<'_>, text: &str) -> Response<Body> {
    message(
        StatusCode::BAD_REQUEST,
        "Check the form",
        text,
        Some(ctx.account),
        Some(Link::new(&team_url(ctx.app()), "Back to Team")),
    )
}

fn role_from(f: &std::collections::HashMap<String, String>) -> Option<Role> {
    f.get("role").and_then(|r| Role::parse(r))
}

/// A plausible email address, lower-cased, or what is wrong with it.
fn email_from(raw: Option<&String>) -> Result<String, &'static str> {
    let email = raw.map(|e| e.trim().to_lowercase()).unwrap_or_default();
    if email.len() > session::MAX_EMAIL_BYTES {
        return Err("That email address is too long (at most 254 characters).");
    }
    let ok = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    });
    if !ok || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("Give the email address of the person to invite (name@example.com).");
    }
    Ok(email)
}

pub(super) async fn team_page(ctx: &Ctx<'_>, req: &Request<Incoming>) -> Response<Body> {
    let now = now();
    let team = match ctx.state.store.team(ctx.app(), now).await {
        Ok(t) => t,
        Err(e) => return unavailable(&e, Some(ctx.account)),
    };
    let owners = team
        .members
        .iter()
        .filter(|m| m.role == Role::Owner)
        .count();
    let members = team
        .members
        .into_iter()
        .map(|m| MemberRow {
            you: m.email == ctx.account.email,
            last_owner: m.role == Role::Owner && owners <= 1,
            remove_url: format!(
                "{}/remove?{}",
                team_url(ctx.app()),
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("email", &m.email)
                    .finish()
            ),
            role: m.role.as_str(),
            last_login: fmt_opt_time(m.last_login_at),
            email: m.email,
        })
        .collect();
    let invites = team
        .invites
        .into_iter()
        .map(|i| InviteRow {
            email: i.email,
            role: i.role.as_str(),
            created_by: i.created_by,
            created: fmt_time(i.created_at),
            expires: fmt_time(i.expires_at),
        })
        .collect();
    let mut l = ctx.layout("Team", "team");
    l.notice = query(req).get("done").and_then(|d| notice_for(d));
    render(
        StatusCode::OK,
        &TeamPage {
            l,
            app_id: ctx.app().to_string(),
            can_change: ctx.owner,
            members,
            invites,
            roles: ROLES,
        },
    )
}

/// The link's origin, as the owner's browser reached this console.
fn console_origin(ctx: &Ctx<'_>, req: &Request<Incoming>) -> String {
    let scheme = if ctx.state.config.console.secure_cookies {
        "https"
    } else {
        "http"
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("127.0.0.1");
    format!("{scheme}://{host}")
}

pub(super) async fn invite(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let origin = console_origin(ctx, &req);
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let email = match email_from(f.get("email")) {
        Ok(e) => e,
        Err(text) => return bad_form(ctx, text),
    };
    let Some(role) = role_from(&f) else {
        return bad_form(ctx, "Choose a role: owner or viewer.");
    };
    let (token, digest) = session::new_token();
    let now = now();
    match ctx
        .state
        .store
        .invite_member(ctx.app(), &email, role, digest, ctx.actor(), now)
        .await
    {
        Ok(Ok(expires_at)) => render(
            StatusCode::OK,
            &InviteLinkPage {
                l: ctx.layout("Invitation link", "team"),
                email,
                role: role.as_str(),
                link: format!("{origin}/console/invite/{token}"),
                expires: fmt_time(expires_at),
                back: team_url(ctx.app()),
            },
        ),
        Ok(Err(r)) => refused(ctx, r),
        Err(StoreError::WorkspaceNotFound) => super::context::not_found(Some(ctx.account)),
        Err(e) => unavailable(&e, Some(ctx.account)),
    }
}

pub(super) async fn cancel_invite(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let email = f.get("email").cloned().unwrap_or_default();
    match ctx
        .state
        .store
        .revoke_invite(ctx.app(), &email, ctx.actor(), now())
        .await
    {
        Ok(true) => redirect(&format!("{}?done=cancelled", team_url(ctx.app()))),
        Ok(false) => super::context::not_found(Some(ctx.account)),
        Err(e) => unavailable(&e, Some(ctx.account)),
    }
}

pub(super) async fn set_role(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let email = f.get("email").cloned().unwrap_or_default();
    let Some(role) = role_from(&f) else {
        return bad_form(ctx, "Choose a role: owner or viewer.");
    };
    match ctx
        .state
        .store
        .change_member(ctx.app(), &email, Some(role), ctx.actor(), now())
        .await
    {
        Ok(Ok(())) => redirect(&format!("{}?done=role", team_url(ctx.app()))),
        Ok(Err(r)) => refused(ctx, r),
        Err(e) => unavailable(&e, Some(ctx.account)),
    }
}

pub(super) fn remove_confirm(ctx: &Ctx<'_>, req: &Request<Incoming>) -> Response<Body> {
    let email = query(req).remove("email").unwrap_or_default();
    let you = email.eq_ignore_ascii_case(&ctx.account.email);
    let mut paragraphs = vec![format!(
        "Remove {email} from this workspace: their open sessions lose it on their next request, \
         and they can come back only through a new invitation. Their account stays (it may belong \
         to other workspaces)."
    )];
    if you {
        paragraphs.push("This is your own account: you lose this workspace too.".into());
    }
    render(
        StatusCode::OK,
        &ConfirmPage {
            l: ctx.layout("Remove a member", "team"),
            paragraphs,
            action: format!("{}/remove", team_url(ctx.app())),
            hidden: vec![("email", email)],
            choices_legend: String::new(),
            choices_name: "",
            choices: vec![],
            button: "Remove from this workspace".into(),
            button_class: "danger",
            cancel: team_url(ctx.app()),
            can_proceed: true,
        },
    )
}

pub(super) async fn remove(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let email = f.get("email").cloned().unwrap_or_default();
    match ctx
        .state
        .store
        .change_member(ctx.app(), &email, None, ctx.actor(), now())
        .await
    {
        Ok(Ok(())) if email.eq_ignore_ascii_case(&ctx.account.email) => {
            redirect("/console/workspaces")
        }
        Ok(Ok(())) => redirect(&format!("{}?done=removed", team_url(ctx.app()))),
        Ok(Err(r)) => refused(ctx, r),
        Err(e) => unavailable(&e, Some(ctx.account)),
    }
}

// ---------------------------------------------------------------------------------------------
// The invitation link: no session

/// The SHA-256 of a link's token, when it has the form tokens have (64 hex digits).
fn token_digest(token: &str) -> Option<[u8; 32]> {
    (token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| Sha256::digest(token.as_bytes()).into())
}

fn gone() -> Response<Body> {
    message(
        StatusCode::NOT_FOUND,
        "Invitation not valid",
        TeamRefusal::InviteGone.message(),
        None,
        Some(Link::new("/console/login", "Log in")),
    )
}

fn accept_page(
    state: &AppState,
    status: StatusCode,
    token: &str,
    invite: &crate::store::InviteFor,
    error: Option<&str>,
) -> Response<Body> {
    let workspace = state
        .registry
        .get(&invite.app_id)
        .map_or_else(|| invite.app_id.clone(), |w| w.name.clone());
    render(
        status,
        &AcceptPage {
            l: Layout::plain("Join a workspace", None),
            action: format!("/console/invite/{token}"),
            workspace,
            email: invite.email.clone(),
            role: invite.role.as_str(),
            expires: fmt_time(invite.expires_at),
            existing: invite.existing_phc.is_some(),
            min_chars: session::MIN_PASSWORD_CHARS,
            error: error.map(str::to_string),
        },
    )
}

pub(super) async fn invite_page(state: &AppState, token: &str) -> Response<Body> {
    let Some(digest) = token_digest(token) else {
        return gone();
    };
    match state.store.invite_for(digest, now()).await {
        Ok(Some(invite)) => accept_page(state, StatusCode::OK, token, &invite, None),
        Ok(None) => gone(),
        Err(e) => unavailable(&e, None),
    }
}

pub(super) async fn accept(
    state: &Arc<AppState>,
    peer: IpAddr,
    token: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let client = limits::client_ip(peer, req.headers(), &state.config.trusted_proxies);
    let Some(digest) = token_digest(token) else {
        return gone();
    };
    let f = match super::context::read_form(state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let invite = match state.store.invite_for(digest, now()).await {
        Ok(Some(i)) => i,
        Ok(None) => return gone(),
        Err(e) => return unavailable(&e, None),
    };
    let password = f.get("password").cloned().unwrap_or_default();
    let again = |status, text: &str| accept_page(state, status, token, &invite, Some(text));
    if invite.existing_phc.is_none() {
        if password.chars().count() < session::MIN_PASSWORD_CHARS {
            return again(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!(
                    "Choose a password of at least {} characters.",
                    session::MIN_PASSWORD_CHARS
                ),
            );
        }
        if f.get("password2") != Some(&password) {
            return again(
                StatusCode::UNPROCESSABLE_ENTITY,
                "The two passwords differ: type the same one twice.",
            );
        }
    }
    // An attempt on this email's account, as a login is: the same limits and password queue.
    let Some(attempt) = state.console.login_limits.attempt(&invite.email, client) else {
        let page = again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts. Wait a minute and try again.",
        );
        return retry_after(page, "60");
    };
    let Ok(Ok(permit)) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        Arc::clone(&state.console.password_checks).acquire_owned(),
    )
    .await
    else {
        let page = again(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is busy checking passwords. Try again in a moment.",
        );
        return retry_after(page, "5");
    };
    let existing = invite.existing_phc.clone();
    // Ok(new PHC or None for an existing account), Err(()) for a wrong password.
    let checked = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        match existing {
            Some(phc) => session::verify_password(&password, &phc)
                .then_some(None)
                .ok_or(()),
            None => session::hash_password(&password).map(Some).map_err(|_| ()),
        }
    })
    .await;
    let new_phc = match checked {
        Ok(Ok(phc)) => phc,
        Ok(Err(())) if invite.existing_phc.is_some() => {
            if state.limits.may_log() {
                tracing::info!(%client, "console invitation: wrong password");
            }
            return again(
                StatusCode::UNAUTHORIZED,
                "Wrong password for this account. Use the password you log in with.",
            );
        }
        _ => {
            return again(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The password could not be stored. Try again.",
            );
        }
    };
    match state
        .store
        .accept_invite(digest, new_phc.as_deref(), now())
        .await
    {
        Ok(Ok((app_id, email))) => {
            state.console.login_limits.succeeded(attempt);
            let name = state
                .registry
                .get(&app_id)
                .map_or(app_id.clone(), |w| w.name.clone());
            message(
                StatusCode::OK,
                "You joined the workspace",
                &format!(
                    "{email} is now {} of {name}. Log in with this email and your password.",
                    invite.role.as_str()
                ),
                None,
                Some(Link::new("/console/login", "Log in")),
            )
        }
        Ok(Err(TeamRefusal::InviteGone)) => gone(),
        Ok(Err(r)) => again(StatusCode::CONFLICT, r.message()),
        Err(e) => unavailable(&e, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        let e = |s: &str| email_from(Some(&s.to_string()));
        assert_eq!(e(" Bob@Example.COM ").unwrap(), "bob@example.com");
        for bad in ["", "bob", "@x", "bob@", "a b@x", "a@b@c", "a\u{7}@x"] {
            assert!(e(bad).is_err(), "{bad:?}");
        }
        assert!(e(&format!("{}@x.com", "a".repeat(260))).is_err());
    }

    #[test]
    fn link_tokens() {
        assert!(token_digest(&"a".repeat(64)).is_some());
        assert!(token_digest(&"a".repeat(63)).is_none());
        assert!(token_digest(&"g".repeat(64)).is_none());
    }
}
