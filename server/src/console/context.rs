//! What every console page shares: who asks about which workspace ([`Ctx`]), the page frame, the
//! HTML answers (pages, redirects, messages, the 404/503 pages) with their security headers,
//! console URLs, forms and times.

// read_form returns the finished error page as its `Err`: it is built once, on a cold path.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::pages::{Layout, Link, MessagePage, WS_LINKS, WsNav};
use crate::state::AppState;
use crate::store::{Account, Role, StoreError};
use crate::web::{Body, full, read_body, set_headers};
use crate::workspace::{self, Workspace};

/// Console form bodies are small.
pub(super) const MAX_FORM_BYTES: usize = 64 * 1024;

pub(super) fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    security_headers(h);
    res
}

pub(super) fn security_headers(h: &mut hyper::HeaderMap) {
    // Pages may show a secret once or user data: never cached, never framed, no referrer.
    set_headers(
        h,
        &[
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
    );
}

pub(super) fn render(status: StatusCode, page: &impl askama::Template) -> Response<Body> {
    match page.render() {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>Internal error.</p>".into(),
            )
        }
    }
}

pub(super) fn redirect(location: &str) -> Response<Body> {
    let mut res = Response::new(full(Bytes::new()));
    *res.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    security_headers(res.headers_mut());
    res
}

/// `res` with `Retry-After: secs`: a refusal that says when to try again.
pub(super) fn retry_after(mut res: Response<Body>, secs: &'static str) -> Response<Body> {
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(secs));
    res
}

pub(super) fn message(
    status: StatusCode,
    title: &str,
    text: &str,
    account: Option<&Account>,
    back: Option<Link>,
) -> Response<Body> {
    render(
        status,
        &MessagePage {
            l: Layout::plain(title, account),
            text: text.to_string(),
            back,
        },
    )
}

pub(super) fn not_found(account: Option<&Account>) -> Response<Body> {
    message(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page, or it belongs to a workspace this account is not a member of.",
        account,
        Some(Link::new("/console/workspaces", "Your workspaces")),
    )
}

pub(super) fn unavailable(e: &StoreError, account: Option<&Account>) -> Response<Body> {
    tracing::error!(error = %e, "console: store failure");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again",
        "The store did not answer; nothing was changed. Try again in a moment.",
        account,
        None,
    )
}

/// A user's page, or with `delete` its delete confirmation (GET) and deletion (POST). The id
/// travels in the query, never in the path: a browser resolves `.` and `..` path segments even
/// when percent-encoded, so an id such as `..` or `../keys/1/retire` could only ever point
/// elsewhere there. (`/users/{id}` paths with the id percent-encoded as one segment still work.)
pub(super) fn user_url(app_id: &str, user_id: &str, delete: bool) -> String {
    let id: String = form_urlencoded::byte_serialize(user_id.as_bytes()).collect();
    let tail = if delete { "/delete" } else { "" };
    format!("/console/w/{}/user{tail}?id={id}", enc(app_id))
}

pub(super) fn security_url(app_id: &str) -> String {
    format!("/console/w/{}/security", enc(app_id))
}

/// What a URL path segment may hold unencoded: RFC 3986's unreserved characters.
pub(super) const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment, percent-encoded.
pub(super) fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

pub(super) fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

pub(super) fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form(q.as_bytes()))
        .unwrap_or_default()
}

pub(super) async fn read_form(
    state: &AppState,
    req: Request<Incoming>,
) -> Result<HashMap<String, String>, Response<Body>> {
    read_body(req, MAX_FORM_BYTES, state.config.body_timeout)
        .await
        .map(|b| form(&b))
}

/// Unix seconds as `2026-01-02 03:04:05 UTC`.
pub(super) fn fmt_time(t: i64) -> String {
    workspace::rfc3339(t).replace('T', " ").replace('Z', " UTC")
}

pub(super) fn fmt_opt_time(t: Option<i64>) -> String {
    t.map_or_else(|| "never".into(), fmt_time)
}

/// What every workspace page knows: who asks, in which role, about which workspace (as this
/// instance decides with it; pages that show keys' last use read those times from the store).
pub(super) struct Ctx<'a> {
    pub(super) state: &'a Arc<AppState>,
    pub(super) account: &'a Account,
    pub(super) role: Role,
    pub(super) owner: bool,
    pub(super) ws: Arc<Workspace>,
}

impl Ctx<'_> {
    pub(super) fn layout(&self, title: &str, section: &'static str) -> Layout {
        Layout {
            title: title.to_string(),
            email: Some(self.account.email.clone()),
            ws: Some(WsNav {
                app_id: self.ws.app_id.clone(),
                name: self.ws.name.clone(),
                role: self.role.as_str(),
                links: WS_LINKS,
            }),
            section,
            notice: None,
        }
    }

    pub(super) fn actor(&self) -> &str {
        &self.account.email
    }

    pub(super) fn app(&self) -> &str {
        &self.ws.app_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00:00 UTC");
    }
}
