//! The CSV export of a workspace's users (the verified ones, or all): streamed a page of users at
//! a time, so memory stays flat however many users there are, and limited to one export per
//! account and [`MAX_EXPORTS`] per instance (a clear 429 page otherwise).
//!
//! What a spreadsheet or a script reads without guessing: times in ISO 8601 UTC
//! (`2026-01-02T03:04:05Z`), numbers and booleans unquoted, text always quoted; the trusted
//! values (a signature vouched for them) and the browser's claims in separate columns, never
//! one in place of the other.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::json;

use super::context::{Ctx, enc, message, retry_after, security_headers, unavailable};
use super::pages::Link;
use crate::state::AppState;
use crate::users::{UserQuery, UserRecord};
use crate::web::{Body, channel_body, now};

/// Users per store read while exporting (one chunk of the response).
const EXPORT_PAGE: usize = 1000;
/// Exports running at once on one instance (each holds a few chunks and a store read at most).
pub const MAX_EXPORTS: usize = 2;
/// Chunks produced ahead of a slow client.
const CHUNKS_AHEAD: usize = 2;
/// How long a chunk may wait for the client to take it before the export is abandoned.
const SEND_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

const HEADER: &str = "user_id,verified,name,email,plan,mrr,signup_date,claimed_name,claimed_email,\
                      claimed_plan,claimed_mrr,claimed_signup_date,method,key_id,verified_at,\
                      signed_at,first_seen,last_seen\r\n";

/// Which users an export holds (`?show=` on the export link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Which {
    Verified,
    All,
}

impl Which {
    pub(super) fn from_query(show: Option<&str>) -> Option<Which> {
        match show {
            None | Some("verified") => Some(Which::Verified),
            Some("all") => Some(Which::All),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Which::Verified => "verified",
            Which::All => "all",
        }
    }
}

/// An export's place among the running ones; dropping it (the export ended) frees it.
#[derive(Debug)]
pub struct Slot {
    state: Arc<AppState>,
    account: i64,
}

/// Why an export cannot start now.
#[derive(Debug, PartialEq, Eq)]
pub enum Busy {
    /// This account already has one running.
    Account,
    /// [`MAX_EXPORTS`] are running on this instance.
    Instance,
}

/// A slot for `account`'s export, unless it already has one or the instance is at its limit.
pub fn start(state: &Arc<AppState>, account: i64) -> Result<Slot, Busy> {
    let mut running = state.console.exports.set();
    if running.contains(&account) {
        return Err(Busy::Account);
    }
    if running.len() >= MAX_EXPORTS {
        return Err(Busy::Instance);
    }
    running.insert(account);
    Ok(Slot {
        state: Arc::clone(state),
        account,
    })
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.state.console.exports.set().remove(&self.account);
    }
}

/// One CSV cell: always quoted (inner quotes doubled), and a value a spreadsheet would run as a
/// formula (`=`, `+`, `-`, `@`, tab, carriage return first) gets a leading `'`.
pub fn csv_cell(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

/// A text cell, quoted ([`csv_cell`]); empty (unquoted) when there is no value.
fn text(v: Option<&str>) -> String {
    v.map(csv_cell).unwrap_or_default()
}

/// A Unix time as ISO 8601 UTC; empty when there is none.
fn time(t: Option<i64>) -> String {
    t.map(crate::workspace::rfc3339).unwrap_or_default()
}

/// An MRR as a plain JSON number (no exponent for whole amounts); empty when there is none.
fn mrr(v: Option<f64>) -> String {
    v.map(|m| crate::users::mrr_json(m).to_string())
        .unwrap_or_default()
}

/// The CSV lines of a page of users.
fn rows(users: &[UserRecord]) -> Bytes {
    let mut out = String::new();
    for u in users {
        let (trusted, claimed) = u.trusted_and_claimed();
        let cells = [
            csv_cell(&u.user_id),
            u.verified.to_string(),
            text(trusted.name.as_deref()),
            text(trusted.email.as_deref()),
            text(trusted.plan.as_deref()),
            mrr(trusted.mrr),
            text(trusted.signup_date.as_deref()),
            text(claimed.name.as_deref()),
            text(claimed.email.as_deref()),
            text(claimed.plan.as_deref()),
            mrr(claimed.mrr),
            text(claimed.signup_date.as_deref()),
            text(u.method.as_deref()),
            u.key_id.map(|k| k.to_string()).unwrap_or_default(),
            time(u.verified_at),
            time(u.signed_at),
            time(Some(u.first_seen)),
            time(Some(u.last_seen)),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    Bytes::from(out)
}

fn page_query(which: Which, after: Option<String>) -> UserQuery {
    UserQuery {
        verified: (which == Which::Verified).then_some(true),
        search: None,
        after,
        limit: EXPORT_PAGE,
    }
}

pub(super) async fn export_users(ctx: &Ctx<'_>, which: Which) -> Response<Body> {
    let slot = match start(ctx.state, ctx.account.id) {
        Ok(slot) => slot,
        Err(busy) => {
            let text = match busy {
                Busy::Account => {
                    "An export of yours is still running. Wait for it to finish, then try again."
                }
                Busy::Instance => {
                    "Other exports are running on this server. Try again in a minute."
                }
            };
            let page = message(
                StatusCode::TOO_MANY_REQUESTS,
                "Export already running",
                text,
                Some(ctx.account),
                Some(Link::new(
                    &format!("/console/w/{}/users", enc(ctx.app())),
                    "Back to Users",
                )),
            );
            return retry_after(page, "60");
        }
    };
    // The first page is read before answering, so a store that does not answer still gets the
    // usual 503 page rather than a broken download.
    let store = ctx.state.store.clone();
    let app = ctx.app().to_string();
    let first = match store.list_users(&app, &page_query(which, None)).await {
        Ok(page) => page,
        Err(e) => return unavailable(&e, Some(ctx.account)),
    };
    let (tx, body) = channel_body(CHUNKS_AHEAD);
    let actor = ctx.actor().to_string();
    tokio::spawn(async move {
        let _slot = slot;
        // A chunk the client does not take within SEND_WAIT ends the export: a client that
        // stops reading cannot hold one of the few export slots for ever.
        let send = |chunk| send_within(&tx, chunk);
        let mut page = first;
        let mut count = 0usize;
        let mut complete = false;
        if send(Ok(Bytes::from_static(HEADER.as_bytes()))).await {
            loop {
                let last = page.len() < EXPORT_PAGE;
                if !send(Ok(rows(&page))).await {
                    break; // The client went away or stopped reading.
                }
                count += page.len();
                if last {
                    complete = true;
                    break;
                }
                let after = page.last().map(|u| u.user_id.clone());
                page = match store.list_users(&app, &page_query(which, after)).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(error = %e, "console: export stopped by a store failure");
                        let _ = send(Err(std::io::Error::other("store failure"))).await;
                        break;
                    }
                };
            }
        }
        // Written before the body ends (the sender is dropped after this), so a client that has
        // the whole file finds the export in the audit log. "complete": every row was handed to
        // the connection.
        audit(&store, &app, &actor, which, count, complete).await;
        drop(tx);
    });
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    security_headers(h);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}-users-{}.csv\"",
        which.as_str(),
        ctx.app()
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// Hands `chunk` to the response; `false` when the client went away or took nothing for
/// [`SEND_WAIT`].
async fn send_within(
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    chunk: Result<Bytes, std::io::Error>,
) -> bool {
    matches!(
        tokio::time::timeout(SEND_WAIT, tx.send(chunk)).await,
        Ok(Ok(()))
    )
}

async fn audit(
    store: &crate::store::Store,
    app: &str,
    actor: &str,
    which: Which,
    count: usize,
    complete: bool,
) {
    let detail = json!({
        "users": count, "show": which.as_str(), "format": "csv", "complete": complete
    });
    if let Err(e) = store
        .append_audit(app, actor, "users.export", detail, now())
        .await
    {
        tracing::error!(error = %e, "console: the export's audit entry was not written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealing::{Keyring, MasterKey};
    use crate::store::Backend;

    #[tokio::test]
    async fn one_export_per_account_and_a_few_per_instance() {
        let ring = Keyring::new(vec![MasterKey::generate("mk").unwrap()]).unwrap();
        let state = AppState::new(Default::default(), &Backend::SqliteMemory, ring, [0; 32])
            .await
            .unwrap();
        let a = start(&state, 1).unwrap();
        assert_eq!(start(&state, 1).unwrap_err(), Busy::Account);
        let b = start(&state, 2).unwrap();
        assert_eq!(MAX_EXPORTS, 2);
        assert_eq!(start(&state, 3).unwrap_err(), Busy::Instance);
        drop(a);
        let _c = start(&state, 3).unwrap();
        let _again = start(&state, 1).unwrap_err();
        drop(b);
        let _d = start(&state, 1).unwrap();
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("ada"), "\"ada\"");
        assert_eq!(csv_cell("a\"b,c"), "\"a\"\"b,c\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-1+1"), "\"'-1+1\"");
        assert_eq!(csv_cell("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn rows_have_iso_times_bare_numbers_and_claims_apart() {
        let u = UserRecord {
            user_id: "42".into(),
            verified: true,
            method: Some("signed_claims".into()),
            verified_at: Some(0),
            signed_at: Some(86_400),
            name: None,
            email: None,
            plan: Some("pro".into()),
            mrr: Some(49.0),
            signup_date: None,
            custom: json!({}),
            unverified_claims: Some(json!({"at": 5, "name": "Ada", "mrr": 1e6})),
            first_seen: 0,
            last_seen: 1_765_000_000,
            key_id: Some(3),
        };
        let line = String::from_utf8(rows(&[u]).to_vec()).unwrap();
        assert_eq!(
            line,
            "\"42\",true,,,\"pro\",49,,\"Ada\",,,1000000,,\"signed_claims\",3,\
             1970-01-01T00:00:00Z,1970-01-02T00:00:00Z,1970-01-01T00:00:00Z,\
             2025-12-06T05:46:40Z\r\n"
        );
        assert_eq!(
            HEADER.split(',').count(),
            line.trim_end().split(',').count()
        );
    }
}
