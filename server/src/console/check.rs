//! "Check a signature": runs the `debug-signature` checks ([`crate::diagnose`]) on a user id and
//! signature or token against each live key of the workspace. Changes nothing, so viewers may use
//! it.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::context::{Ctx, read_form, render};
use super::pages::{CheckPage, CheckResult, FindingRow, Verdict};
use crate::web::{Body, now};

/// The empty form.
pub(super) fn form(ctx: &Ctx<'_>) -> Response<Body> {
    render(
        StatusCode::OK,
        &CheckPage {
            l: ctx.layout("Check a signature", "check"),
            app_id: ctx.app().to_string(),
            user_id: String::new(),
            signature: String::new(),
            signed_at: String::new(),
            error: None,
            verdict: None,
            results: Vec::new(),
        },
    )
}

/// Longest user id / signature the check form takes (identify's own limits are smaller).
const MAX_CHECK_FIELD: usize = 8 * 1024;

pub(super) async fn check(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let user_id = f.get("user_id").cloned().unwrap_or_default();
    let signature = f
        .get("signature")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let signed_at_text = f
        .get("signed_at")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mut error = None;
    let signed_at = if signed_at_text.is_empty() {
        None
    } else {
        match signed_at_text.parse::<i64>() {
            Ok(t) => Some(t),
            Err(_) => {
                error = Some("signedAt is a whole number of seconds since 1970.".to_string());
                None
            }
        }
    };
    if user_id.is_empty() || signature.is_empty() {
        error = Some("Give the user id and the signature or token.".into());
    }
    if user_id.len() > MAX_CHECK_FIELD || signature.len() > MAX_CHECK_FIELD {
        error = Some("That is longer than any identify call can be.".into());
    }
    let mut results = Vec::new();
    let issuer_token = dropfix_core::issuer::is_issuer_token(&signature);
    if error.is_none() && issuer_token {
        // A public-key token is checked against the token issuers, not the keys.
        let issuers = crate::issuers::WorkspaceIssuers {
            issuers: &ctx.ws.issuers,
            jwks: ctx.state.jwks_keys(),
        };
        let report = crate::diagnose::diagnose_issuer_token(&issuers, &user_id, &signature, now());
        results.push(check_result(0, "token issuers".into(), report));
    }
    if error.is_none() && !issuer_token {
        let now = now();
        for key in ctx.ws.live_keys(now) {
            let report = crate::diagnose::diagnose(&crate::diagnose::Input {
                secret: key.secret.clone(),
                user_id: user_id.clone(),
                signature: signature.clone(),
                signed_at,
                now,
                email: None,
            });
            results.push(check_result(key.id, key.label.clone(), report));
        }
    }
    // The details list the key that verifies first (a failing key's "Fix:" above it read as the
    // answer); the verdict line above them is the answer.
    results.sort_by_key(|r| !r.valid);
    let verdict = (error.is_none()).then(|| verdict(&results));
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render(
        status,
        &CheckPage {
            l: ctx.layout("Check a signature", "check"),
            app_id: ctx.app().to_string(),
            user_id,
            signature,
            signed_at: signed_at_text,
            error,
            verdict,
            results,
        },
    )
}

/// One line that answers "would this call be accepted?", before the details per key: the key
/// it verifies with, or the refusal the verifier would answer. A key whose MAC matched but that
/// failed later (expired, clock, claims) is what the verifier reports, so its code wins over
/// the other keys' `signature_mismatch`.
fn verdict(results: &[CheckResult]) -> Verdict {
    if let Some(r) = results.iter().find(|r| r.valid) {
        return Verdict {
            ok: true,
            text: format!(
                "Verifies with key {} ({}): the verifier accepts this call.",
                r.key_id, r.label
            ),
            fix: None,
        };
    }
    let Some(r) = results
        .iter()
        .find(|r| r.code.is_some_and(|c| c != "signature_mismatch"))
        .or(results.first())
    else {
        return Verdict {
            ok: false,
            text: "Refused: this workspace has no key that verifies now (create one on the \
                   Security page)."
                .into(),
            fix: None,
        };
    };
    let code = r.code.unwrap_or("signature_mismatch");
    let text = if results.len() > 1 && code == "signature_mismatch" {
        format!(
            "Refused (401 {code}): it matches none of the {} keys that verify now.",
            results.len()
        )
    } else {
        format!("Refused (401 {code}) with key {} ({}).", r.key_id, r.label)
    };
    Verdict {
        ok: false,
        text,
        fix: r.fix.clone(),
    }
}

/// One report of the `debug-signature` checks as the page shows it (key 0: the token issuers).
fn check_result(key_id: i64, label: String, report: crate::diagnose::Report) -> CheckResult {
    CheckResult {
        key_id,
        label,
        valid: report.valid,
        code: report.code,
        findings: report
            .findings
            .into_iter()
            .map(|f| FindingRow {
                check: f.check,
                ok: f.ok,
                detail: f.detail,
            })
            .collect(),
        fix: report.fix,
    }
}
