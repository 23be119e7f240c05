//! A workspace's recent rejections (refused calls, and those strict mode's report-only setting
//! would have refused), each with what to do about it.

use dropfix_core::Rejection;
use hyper::{Response, StatusCode};

use super::context::{Ctx, fmt_time, render, unavailable};
use super::pages::{RejectionRow, RejectionsPage};
use crate::web::Body;

/// What to do about a rejection code, in plain words. `enforced` is false for a call report-only
/// accepted: the workspace is not in strict mode then, and the fix must not say it is.
fn fix_for(code: &str, enforced: bool) -> &'static str {
    if !enforced && code == "signature_required" {
        return "report-only: this call had no signature, so it was accepted and stored \
                unverified; with strict mode on it would be refused (401). Sign it on your server \
                (signature and signedAt) before turning strict mode on";
    }
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

pub(super) async fn rejections_page(ctx: &Ctx<'_>) -> Response<Body> {
    let list = match ctx.state.store.recent_rejections(ctx.app()).await {
        Ok(l) => l,
        Err(e) => return unavailable(&e, Some(ctx.account)),
    };
    let rows = list
        .into_iter()
        .map(|r| RejectionRow {
            at: fmt_time(r.at),
            fix: fix_for(&r.code, r.enforced),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_fix() {
        for r in Rejection::ALL {
            assert_ne!(fix_for(r.code(), true), fix_for("nope", true));
        }
        assert!(fix_for("origin_not_allowed", true).contains("Allowed origins"));
        // Report-only never claims the workspace is in strict mode.
        let report_only = fix_for("signature_required", false);
        assert!(!report_only.contains("is in strict mode"), "{report_only}");
        assert!(report_only.starts_with("report-only"));
    }
}
