//! A workspace's audit log: who changed what, and when (the newest entries).

use hyper::{Response, StatusCode};

use super::context::{Ctx, fmt_time, render, unavailable};
use super::pages::{AuditPage, AuditRow};
use crate::web::Body;

/// Audit entries the audit page shows.
const AUDIT_ROWS: usize = 200;

pub(super) async fn audit_page(ctx: &Ctx<'_>) -> Response<Body> {
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
