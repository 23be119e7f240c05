//! A workspace's secret keys: create one, roll one (a new key, the old one verifying for a grace
//! period the owner picks) or retire one, each confirmed first; a new secret is shown once.

use dropfix_core::SecretKey;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::context::{
    Ctx, enc, fmt_opt_time, fmt_time, message, not_found, read_form, redirect, render,
    security_url, unavailable,
};
use super::pages::{Choice, ConfirmPage, Link, SecretPage};
use crate::store::StoreError;
use crate::web::{Body, now};
use crate::workspace::{self, KeyRuleError};

fn key_error(ctx: &Ctx<'_>, e: StoreError) -> Response<Body> {
    match e {
        StoreError::Key(k) => message(
            StatusCode::CONFLICT,
            "Not done",
            k.message(),
            Some(ctx.account),
            Some(Link::new(&security_url(ctx.app()), "Back to Security")),
        ),
        StoreError::WorkspaceNotFound => not_found(Some(ctx.account)),
        e => unavailable(&e, Some(ctx.account)),
    }
}

/// The key that signs signed-claims tokens (derived from the secret; shown with it, once).
fn claims_key_of(secret: &SecretKey) -> Option<String> {
    Some(secret.expose_claims_key().to_string())
}

fn secret_page(
    ctx: &Ctx<'_>,
    title: &str,
    key_id: i64,
    label: &str,
    secret: &SecretKey,
    notes: Vec<String>,
) -> Response<Body> {
    render(
        StatusCode::OK,
        &SecretPage {
            l: ctx.layout(title, "security"),
            key_id,
            label: label.to_string(),
            secret: secret.expose_secret().to_string(),
            claims_key: claims_key_of(secret),
            notes,
            back: security_url(ctx.app()),
        },
    )
}

pub(super) async fn create_key(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let label = f.get("label").map(|s| s.trim()).unwrap_or_default();
    let now = now();
    let expires_at = match f.get("expires").map(String::as_str).unwrap_or("never") {
        "never" => None,
        d => match parse_duration(d) {
            Some(secs) if secs > 0 => Some(now + secs),
            _ => return key_error(ctx, StoreError::Key(KeyRuleError::BadExpiry)),
        },
    };
    match ctx
        .state
        .store
        .create_key(ctx.app(), label, expires_at, ctx.actor(), now)
        .await
    {
        Ok(k) => {
            let mut notes = vec![format!(
                "Key {} verifies from now on, beside the workspace's other live keys.",
                k.key_id
            )];
            if let Some(t) = expires_at {
                notes.push(format!("It stops verifying at {}.", fmt_time(t)));
            }
            secret_page(ctx, "New secret key", k.key_id, label, &k.secret, notes)
        }
        Err(e) => key_error(ctx, e),
    }
}

/// A live key's roll or retire page: its confirmation (GET) or the change (POST).
pub(super) async fn key_page(
    ctx: &Ctx<'_>,
    id: &str,
    action: &str,
    post: bool,
    req: Request<Incoming>,
) -> Response<Body> {
    let Some(mut key) = id
        .parse::<i64>()
        .ok()
        .and_then(|id| ctx.ws.live_keys(now()).find(|k| k.id == id).cloned())
    else {
        return not_found(Some(ctx.account));
    };
    if !post {
        // The confirmation pages say when the key last verified a call.
        match ctx.state.store.key_last_used(ctx.app()).await {
            Ok(used) => key.last_used_at = used.get(&key.id).copied(),
            Err(e) => return unavailable(&e, Some(ctx.account)),
        }
    }
    match (action, post) {
        ("roll", false) => roll_confirm(ctx, &key),
        ("roll", true) => roll(ctx, &key, req).await,
        ("retire", false) => retire_confirm(ctx, &key),
        _ => retire(ctx, &key).await,
    }
}

/// `now`, `1h`, `24h`, `1d`, `7d`, `30d`, `90d` as seconds.
fn parse_duration(s: &str) -> Option<i64> {
    if s == "now" {
        return Some(0);
    }
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = n.parse().ok()?;
    let unit = match unit {
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(unit)
}

const GRACES: [(&str, &str, i64); 4] = [
    ("now", "Now", 0),
    ("1h", "1 hour", 3600),
    ("24h", "24 hours", 86_400),
    ("7d", "7 days", 7 * 86_400),
];

fn roll_confirm(ctx: &Ctx<'_>, key: &workspace::Key) -> Response<Body> {
    let now = now();
    let choices = GRACES
        .iter()
        .map(|(value, label, secs)| {
            let until = workspace::rolled_expiry(key.expires_at, now, *secs);
            let detail = if until <= now {
                format!(
                    "calls signed with key {} stop verifying now: every backend still signing \
                     with it gets 401 signature_mismatch at once",
                    key.id
                )
            } else {
                let mut d = format!(
                    "calls signed with key {} stop verifying at {}; put the new key in every \
                     backend before then",
                    key.id,
                    fmt_time(until)
                );
                if until < now + secs {
                    d.push_str(
                        " (its current grace period ends sooner, and a roll never extends it)",
                    );
                }
                d
            };
            Choice {
                value,
                label,
                detail,
                checked: *value == "1h",
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &ConfirmPage {
            l: ctx.layout(&format!("Roll key {}", key.id), "security"),
            paragraphs: vec![
                format!(
                    "Rolling key {} ({}) creates a new key with the same label and shows its \
                     secret once. Key {} keeps verifying for the grace period you choose; no \
                     other key changes.",
                    key.id, key.label, key.id
                ),
                format!(
                    "Key {} was last used: {}.",
                    key.id,
                    fmt_opt_time(key.last_used_at)
                ),
            ],
            action: format!("/console/w/{}/keys/{}/roll", enc(ctx.app()), key.id),
            hidden: vec![],
            choices_legend: format!("How long key {} keeps verifying", key.id),
            choices_name: "grace",
            choices,
            button: format!("Roll key {}", key.id),
            button_class: "",
            cancel: security_url(ctx.app()),
            can_proceed: true,
        },
    )
}

async fn roll(ctx: &Ctx<'_>, key: &workspace::Key, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let Some(grace) = f
        .get("grace")
        .and_then(|g| GRACES.iter().find(|(v, ..)| v == g))
        .map(|(.., secs)| *secs)
    else {
        return message(
            StatusCode::BAD_REQUEST,
            "Choose a grace period",
            "Pick how long the old key keeps verifying: now, 1 hour, 24 hours or 7 days.",
            Some(ctx.account),
            Some(Link::new(
                &format!("/console/w/{}/keys/{}/roll", enc(ctx.app()), key.id),
                "Back",
            )),
        );
    };
    match ctx
        .state
        .store
        .roll_key(ctx.app(), Some(key.id), grace, ctx.actor(), now())
        .await
    {
        Ok(k) => {
            let until = k.old_key_expires_at.unwrap_or_else(now);
            let notes = vec![if until <= now() {
                format!("Key {} stopped verifying now.", key.id)
            } else {
                format!(
                    "Key {} keeps verifying until {}: both keys verify until then.",
                    key.id,
                    fmt_time(until)
                )
            }];
            secret_page(
                ctx,
                &format!("Key {} rolled: new key {}", key.id, k.key_id),
                k.key_id,
                &key.label,
                &k.secret,
                notes,
            )
        }
        Err(e) => key_error(ctx, e),
    }
}

fn retire_confirm(ctx: &Ctx<'_>, key: &workspace::Key) -> Response<Body> {
    let only = ctx.ws.live_keys(now()).count() <= 1;
    let mut paragraphs = vec![format!(
        "Retiring key {} ({}) stops it verifying now: every call signed with it is refused \
         (401 signature_mismatch) from then on, and its secret is forgotten. It was last used: {}.",
        key.id,
        key.label,
        fmt_opt_time(key.last_used_at)
    )];
    if only {
        paragraphs.push(KeyRuleError::LastLiveKey.message().to_string());
    }
    render(
        StatusCode::OK,
        &ConfirmPage {
            l: ctx.layout(&format!("Retire key {}", key.id), "security"),
            paragraphs,
            action: format!("/console/w/{}/keys/{}/retire", enc(ctx.app()), key.id),
            hidden: vec![],
            choices_legend: String::new(),
            choices_name: "",
            choices: vec![],
            button: format!("Retire key {}", key.id),
            button_class: "danger",
            cancel: security_url(ctx.app()),
            can_proceed: !only,
        },
    )
}

async fn retire(ctx: &Ctx<'_>, key: &workspace::Key) -> Response<Body> {
    match ctx
        .state
        .store
        .retire_key(ctx.app(), key.id, ctx.actor(), now())
        .await
    {
        Ok(_) => redirect(&format!("{}?done=retired", security_url(ctx.app()))),
        Err(e) => key_error(ctx, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h"), Some(3600));
        assert_eq!(parse_duration("7d"), Some(604_800));
        assert_eq!(parse_duration("now"), Some(0));
        assert_eq!(parse_duration("7w"), None);
        assert_eq!(parse_duration(""), None);
    }
}
