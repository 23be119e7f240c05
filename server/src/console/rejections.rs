//! A workspace's recent rejections (refused calls, and those strict mode's report-only setting
//! would have refused), each with what to do about it.

use dropfix_core::Rejection;
use hyper::{Response, StatusCode};

use super::context::{Ctx, fmt_time, render, unavailable};
use super::pages::{RejectionRow, RejectionsPage};
use crate::web::Body;

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

pub(super) async fn rejections_page(ctx: &Ctx<'_>) -> Response<Body> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_fix() {
        for r in Rejection::ALL {
            assert_ne!(fix_for(r.code()), fix_for("nope"));
        }
        assert!(fix_for("origin_not_allowed").contains("Allowed origins"));
    }
}
