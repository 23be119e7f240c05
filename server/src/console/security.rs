//! A workspace's Security page: the counts of the last hour, day and week with a chart, the keys,
//! and the settings an owner changes there (strict mode, signed claims, allowed origins), the
//! risky ones after a confirmation that says what they would have refused.

use dropfix_core::StrictMode;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::context::{
    Ctx, enc, fmt_opt_time, fmt_time, message, not_found, read_form, redirect, render,
    security_url, unavailable,
};
use super::pages::{
    Bar, Chart, ConfirmPage, KeyRow, Link, Protection, STRICT_CHOICES, SecurityPage, Seg, Window,
};
use crate::store::{CallCounts, StoreError};
use crate::web::{Body, now};
use crate::workspace::{self, MAX_LIVE_KEYS, WorkspacePatch};

/// A workspace's stored counts: per window (1 h, 24 h, 7 d) and per hour of the last 24 h.
struct Counts {
    hour: CallCounts,
    day: CallCounts,
    week: CallCounts,
    hourly: [CallCounts; 24],
}

async fn counts(ctx: &Ctx<'_>) -> Result<Counts, StoreError> {
    let now_min = now().div_euclid(60);
    let rows = ctx
        .state
        .store
        .call_counts(ctx.app(), now_min - 7 * 24 * 60 + 1)
        .await?;
    let mut c = Counts {
        hour: CallCounts::default(),
        day: CallCounts::default(),
        week: CallCounts::default(),
        hourly: [CallCounts::default(); 24],
    };
    for (minute, n) in rows {
        let age = now_min - minute;
        c.week.add(&n);
        if age < 24 * 60 {
            c.day.add(&n);
            if let Ok(i) = usize::try_from(age / 60) {
                c.hourly[23 - i.min(23)].add(&n);
            }
        }
        if age < 60 {
            c.hour.add(&n);
        }
    }
    Ok(c)
}

fn chart(hourly: &[CallCounts; 24], day: &CallCounts) -> Chart {
    const W: u32 = 480;
    const H: u32 = 100;
    const BAR: u32 = 16;
    let max = hourly
        .iter()
        .map(CallCounts::total)
        .max()
        .unwrap_or(0)
        .max(1);
    let bars = hourly
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut y = H - 1;
            let mut segs = Vec::new();
            for (n, class) in [
                (c.verified(), "verified"),
                (c.unsigned(), "would"),
                (c.rejected, "rejected"),
            ] {
                if n == 0 {
                    continue;
                }
                let h = u32::try_from((n * u64::from(H - 2)).div_ceil(max))
                    .unwrap_or(H)
                    .clamp(1, y);
                y -= h;
                segs.push(Seg { y, h, class });
            }
            Bar {
                x: u32::try_from(i).unwrap_or(0) * (W / 24) + 2,
                segs,
            }
        })
        .collect();
    Chart {
        width: W,
        height: H,
        axis_y: H - 1,
        bar_w: BAR,
        bars,
        summary: format!(
            "Last 24 hours: {} verified, {} accepted unsigned (strict mode on would reject \
             them), {} rejected",
            day.verified(),
            day.unsigned(),
            day.rejected
        ),
    }
}

/// The line shown after a change redirected back to the Security page (fixed texts: nothing
/// from the query string is echoed).
pub(super) fn notice_for(done: &str) -> Option<String> {
    Some(
        match done {
            "retired" => "Key retired: it no longer verifies.",
            "strict" => "Strict mode saved.",
            "claims" => "Signed-claims setting saved.",
            "origins" => "Allowed origins saved.",
            _ => return None,
        }
        .to_string(),
    )
}

fn strict_label(mode: StrictMode) -> &'static str {
    match mode {
        StrictMode::Off => "off",
        StrictMode::ReportOnly => "report-only",
        StrictMode::Enforce => "on",
    }
}

/// What the workspace's settings protect, said plainly at the top of the Security page: strict
/// mode on makes every call carry a valid signature, but the seed form's signature covers the
/// user id only, so plan and MRR sent beside it are stored as verified whatever the browser made
/// of them; only signed claims put the traits under the signature.
fn protection(ws: &workspace::Workspace, week: &CallCounts) -> Protection {
    let (level, key, detail) = if ws.require_signed_claims {
        (
            "Traits verified",
            "traits",
            "Every call needs a signed-claims token from your backend (401 \
             signed_claims_required otherwise). The user id and the traits the token carries \
             (plan, MRR, email, name) are verified; traits the browser sends beside the token are \
             kept apart as claims, never stored as verified.",
        )
    } else if ws.strict == StrictMode::Enforce {
        (
            "User id verified",
            "user_id",
            "Every call needs a valid signature (401 signature_required otherwise). With the seed \
             form the signature covers the user id only: plan, MRR, email and name sent beside \
             it can be changed in the browser and are still stored as verified. Require signed \
             claims to verify them too.",
        )
    } else {
        (
            "Unsigned calls accepted",
            "open",
            "Anyone who can run code in a page can call identify() with any user id and traits: \
             calls without a signature are accepted and stored as unverified users. Turn strict \
             mode on to refuse them.",
        )
    };
    let carried = week.seed_with_traits;
    let recommend = (!ws.require_signed_claims && carried > 0).then(|| {
        format!(
            "{carried} of the {} verified calls in the last 7 days carried plan or MRR beside a \
             seed-form signature, which covers the user id only: those values were stored as \
             verified although the browser could have changed them. Put them in a signed-claims \
             token and require signed claims.",
            week.verified()
        )
    });
    Protection {
        level,
        key,
        detail,
        recommend,
    }
}

/// `part` as a rounded percentage of `whole` (0 when there is nothing).
fn pct(part: u64, whole: u64) -> u64 {
    (part * 100 + whole / 2).checked_div(whole).unwrap_or(0)
}

pub(super) async fn security_page(
    ctx: &Ctx<'_>,
    status: StatusCode,
    notice: Option<String>,
    origins_form: Option<(String, String)>,
) -> Response<Body> {
    let c = match counts(ctx).await {
        Ok(c) => c,
        Err(e) => return unavailable(&e, Some(ctx.account)),
    };
    let used = match ctx.state.store.key_last_used(ctx.app()).await {
        Ok(u) => u,
        Err(e) => return unavailable(&e, Some(ctx.account)),
    };
    let now = now();
    let keys = ctx
        .ws
        .keys
        .iter()
        .map(|k| KeyRow {
            id: k.id,
            label: k.label.clone(),
            created: fmt_time(k.created_at),
            created_by: k.created_by.clone(),
            last_used: fmt_opt_time(used.get(&k.id).copied()),
            live: k.live(now),
            status: match k.expires_at {
                None => "verifies".into(),
                Some(t) if t <= now => format!("stopped verifying {}", fmt_time(t)),
                Some(t) => format!("verifies until {}", fmt_time(t)),
            },
        })
        .collect();
    let (origins_text, origins_error) = match origins_form {
        Some((text, err)) => (text, Some(err)),
        None => (ctx.ws.allowed_origins.join("\n"), None),
    };
    let verified_7d = c.week.verified();
    let mut l = ctx.layout("Security", "security");
    l.notice = notice;
    render(
        status,
        &SecurityPage {
            l,
            app_id: ctx.app().to_string(),
            can_change: ctx.owner,
            live_count: ctx.ws.live_keys(now).count(),
            max_keys: MAX_LIVE_KEYS,
            keys,
            strict: ctx.ws.strict.as_str(),
            strict_label: strict_label(ctx.ws.strict),
            strict_choices: STRICT_CHOICES,
            windows: vec![
                Window::new("Last hour", "1h", c.hour),
                Window::new("24 hours", "24h", c.day),
                Window::new("7 days", "7d", c.week),
            ],
            chart: chart(&c.hourly, &c.day),
            require_claims: ctx.ws.require_signed_claims,
            verified_7d,
            protection: protection(&ctx.ws, &c.week),
            seed_pct: pct(c.week.verified_seed, verified_7d),
            claims_pct: pct(c.week.verified_claims, verified_7d),
            origins: ctx.ws.allowed_origins.clone(),
            origins_text,
            origins_error,
        },
    )
}

async fn update(ctx: &Ctx<'_>, patch: WorkspacePatch, done: &str) -> Response<Body> {
    match ctx
        .state
        .store
        .update_workspace(ctx.app(), &patch, ctx.actor(), now())
        .await
    {
        Ok(_) => redirect(&format!("{}?done={done}", security_url(ctx.app()))),
        Err(StoreError::WorkspaceNotFound) => not_found(Some(ctx.account)),
        Err(e) => unavailable(&e, Some(ctx.account)),
    }
}

pub(super) async fn strict(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let Some(mode) = f
        .get("mode")
        .and_then(|m| STRICT_CHOICES.iter().find(|(v, _)| v == m))
        .and_then(|(v, _)| StrictMode::parse(v))
    else {
        return message(
            StatusCode::BAD_REQUEST,
            "Choose a mode",
            "Strict mode is off, report-only or on.",
            Some(ctx.account),
            Some(Link::new(&security_url(ctx.app()), "Back to Security")),
        );
    };
    let confirmed = f.get("confirm").is_some_and(|c| c == "yes");
    if mode == StrictMode::Enforce && ctx.ws.strict != StrictMode::Enforce && !confirmed {
        let c = match counts(ctx).await {
            Ok(c) => c,
            Err(e) => return unavailable(&e, Some(ctx.account)),
        };
        let refused = c.day.unverified + c.day.would_reject;
        return render(
            StatusCode::OK,
            &ConfirmPage {
                l: ctx.layout("Turn strict mode on", "security"),
                paragraphs: vec![
                    format!(
                        "In the last 24 hours {refused} calls were accepted without a valid \
                         signature (the Security page's \"would be rejected\"). With strict mode \
                         on, each of them would have been refused (401) and stored nothing."
                    ),
                    format!(
                        "{} calls verified in the same 24 hours; they keep working.",
                        c.day.verified()
                    ),
                    "If that number is not zero, find the callers in Recent rejections (switch \
                     to report-only first to see them) before turning strict mode on."
                        .into(),
                ],
                action: format!("/console/w/{}/strict", enc(ctx.app())),
                hidden: vec![("mode", "on".into()), ("confirm", "yes".into())],
                choices_legend: String::new(),
                choices_name: "",
                choices: vec![],
                button: format!("Turn strict mode on (refuse about {refused} calls a day)"),
                button_class: "danger",
                cancel: security_url(ctx.app()),
                can_proceed: true,
            },
        );
    }
    let patch = WorkspacePatch {
        strict: Some(mode),
        ..Default::default()
    };
    update(ctx, patch, "strict").await
}

pub(super) async fn claims(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let required = match f.get("required").map(String::as_str) {
        Some("on") => true,
        Some("off") => false,
        _ => {
            return message(
                StatusCode::BAD_REQUEST,
                "Choose on or off",
                "Require signed claims is on or off.",
                Some(ctx.account),
                Some(Link::new(&security_url(ctx.app()), "Back to Security")),
            );
        }
    };
    let confirmed = f.get("confirm").is_some_and(|c| c == "yes");
    if required && !ctx.ws.require_signed_claims && !confirmed {
        let c = match counts(ctx).await {
            Ok(c) => c,
            Err(e) => return unavailable(&e, Some(ctx.account)),
        };
        return render(
            StatusCode::OK,
            &ConfirmPage {
                l: ctx.layout("Require signed claims", "security"),
                paragraphs: vec![format!(
                    "In the last 24 hours {} calls verified with the seed form and {} were not \
                     signed at all. With signed claims required, all of them would have been \
                     refused (401 signed_claims_required); only the {} calls with a signed-claims \
                     token keep working.",
                    c.day.verified_seed,
                    c.day.unverified + c.day.would_reject,
                    c.day.verified_claims
                )],
                action: format!("/console/w/{}/claims", enc(ctx.app())),
                hidden: vec![("required", "on".into()), ("confirm", "yes".into())],
                choices_legend: String::new(),
                choices_name: "",
                choices: vec![],
                button: "Require signed claims".into(),
                button_class: "danger",
                cancel: security_url(ctx.app()),
                can_proceed: true,
            },
        );
    }
    let patch = WorkspacePatch {
        require_signed_claims: Some(required),
        ..Default::default()
    };
    update(ctx, patch, "claims").await
}

/// Most allowed origins one workspace may list.
const MAX_ORIGINS: usize = 100;

pub(super) async fn origins(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let text = f.get("origins").cloned().unwrap_or_default();
    let mut list: Vec<String> = Vec::new();
    let mut problem = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Err(e) = workspace::validate_origin_pattern(line) {
            problem = Some(e);
            break;
        }
        if !list.iter().any(|o| o == line) {
            list.push(line.to_string());
        }
    }
    if problem.is_none() && list.len() > MAX_ORIGINS {
        problem = Some(format!("at most {MAX_ORIGINS} allowed origins"));
    }
    if let Some(e) = problem {
        return security_page(ctx, StatusCode::UNPROCESSABLE_ENTITY, None, Some((text, e))).await;
    }
    let patch = WorkspacePatch {
        allowed_origins: Some(list),
        ..Default::default()
    };
    update(ctx, patch, "origins").await
}
