//! The CSV export of a workspace's verified users: streamed a page of users at a time, so memory
//! stays flat however many users there are, and limited to one export per account and
//! [`MAX_EXPORTS`] per instance (a clear 429 page otherwise).

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

const HEADER: &str = "user_id,name,email,plan,mrr,signup_date,method,key_id,verified_at,signed_at,\
                      first_seen,last_seen\r\n";

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

/// The CSV lines of a page of users.
fn rows(users: &[UserRecord]) -> Bytes {
    let mut out = String::new();
    for u in users {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
        let cells = [
            u.user_id.clone(),
            opt(&u.name),
            opt(&u.email),
            opt(&u.plan),
            u.mrr
                .map(|m| crate::users::mrr_json(m).to_string())
                .unwrap_or_default(),
            opt(&u.signup_date),
            opt(&u.method),
            num(u.key_id),
            num(u.verified_at),
            num(u.signed_at),
            u.first_seen.to_string(),
            u.last_seen.to_string(),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    Bytes::from(out)
}

fn page_query(after: Option<String>) -> UserQuery {
    UserQuery {
        verified: Some(true),
        search: None,
        after,
        limit: EXPORT_PAGE,
    }
}

pub(super) async fn export_users(ctx: &Ctx<'_>) -> Response<Body> {
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
    let first = match store.list_users(&app, &page_query(None)).await {
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
                page = match store.list_users(&app, &page_query(after)).await {
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
        audit(&store, &app, &actor, count, complete).await;
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
        "attachment; filename=\"verified-users-{}.csv\"",
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

async fn audit(store: &crate::store::Store, app: &str, actor: &str, count: usize, complete: bool) {
    let detail = json!({"verified_users": count, "format": "csv", "complete": complete});
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
}
