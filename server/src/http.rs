//! The HTTP API: routing, `POST /v1/identify`, CORS, limits, health and metrics; the admin API
//! and the console are routed here.
//!
//! Every error leaves as JSON `{"error":{"code","message","field"?}}` built in one place
//! ([`crate::web::error`]); anything internal is logged and answered with a 503/500 that carries
//! no detail.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dropfix_core::{Decision, Identify, MAX_BODY_BYTES, Method, Policy, Value};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method as HttpMethod, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value as Json, json};

use crate::admin::admin_authorized;
use crate::issuers::WorkspaceIssuers;
use crate::limits;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::stats;
use crate::store::StoreError;
use crate::users::{Claimed, IdentifyWrite, Verification};
use crate::web::{
    Body, error, full, json_bytes, json_response, method_not_allowed, read_body, set_headers,
    uncached,
};
use crate::workspace;

/// The clock, at the path tests and embedders have used (`dropfix_server::http::now`).
pub use crate::web::now;

/// The 503 of every identify call while this instance's workspaces are older than the stored
/// ones ([`workspace::Registry::stale`]): deciding with a key that may have been retired, or a
/// strict mode that may have been tightened, would be a false 2xx.
fn config_stale() -> Response<Body> {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "config_stale",
        "this verifier cannot load its current workspace settings (see its log); retry later",
        None,
    )
}

/// The 503 of an identify call whose write was not confirmed. Usually nothing was stored, but
/// a commit whose answer was lost (a database connection cut mid-commit) may have stored it, so
/// the message does not promise either; a retry stores the same call again, which is harmless.
/// Counted in `dropfix_store_errors_total` here: the store's identify future holds no metrics.
fn identify_not_stored(metrics: &Metrics, e: &StoreError) -> Response<Body> {
    if let Some(kind) = e.kind() {
        metrics.store_error(kind);
    }
    if let StoreError::InvalidValue(field) = e {
        // The core refuses these first; kept as a clear 400 should another caller reach here.
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_characters",
            "a value holds a NUL character, which cannot be stored",
            Some(field.as_str()),
        );
    }
    // One line per call only at debug: an outage is logged once, with a summary and the
    // recovery ([`crate::store::Outage`]).
    tracing::debug!(error = %e, "identify call not stored");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the verifier could not confirm that this call was stored; retry it later (storing \
         the same call twice is harmless)",
        None,
    )
}

fn too_many(wait: Duration) -> Response<Body> {
    let mut res = error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests: wait for the number of seconds in Retry-After",
        None,
    );
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    res
}

/// Entry point for every request.
pub async fn handle(
    state: Arc<AppState>,
    peer: IpAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let version = req.version();
    let res = match path.as_str() {
        "/v1/identify" if req.method() == HttpMethod::OPTIONS => {
            // A preflight is the browser asking, not an identify call: counted on its own.
            let res = preflight(&state, &req, origin_of(req.headers()).as_deref());
            state.metrics.preflight(res.status().is_success());
            res
        }
        "/v1/identify" => {
            let started = Instant::now();
            // Rate limits follow the client, which behind a trusted proxy is not the peer.
            let client = limits::client_ip(peer, req.headers(), &state.config.trusted_proxies);
            let (res, outcome) = identify_route(&state, client, req).await;
            state.metrics.outcome(outcome);
            state
                .metrics
                .observe_latency(started.elapsed().as_secs_f64());
            res
        }
        "/healthz" if req.method() == HttpMethod::GET => Box::pin(health(&state)).await,
        // The counts name workspaces and show an attack's progress: admin token here, or the
        // token-free `--metrics-listen` address on a private interface.
        "/metrics" if req.method() == HttpMethod::GET => {
            if admin_authorized(req.headers(), &state.admin_token_sha256) {
                metrics_response(&state)
            } else {
                let mut res = error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "/metrics needs `Authorization: Bearer <admin token>` here, or serve it \
                     without a token on a private address with --metrics-listen",
                    None,
                );
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                res
            }
        }
        "/healthz" | "/metrics" => method_not_allowed("GET"),
        // The admin API, the console and health checks are boxed: their futures are large, and
        // inline they would make every identify call's future as large (moved on each call).
        p if p.starts_with("/v1/admin/") => Box::pin(crate::admin::handle(&state, req)).await,
        p if p == "/console" || p.starts_with("/console/") => {
            Box::pin(crate::console::handle(&state, peer, req)).await
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint; identify calls go to POST /v1/identify",
            None,
        ),
    };
    Ok(closing_if_draining(&state, version, res))
}

/// While draining, an HTTP/1.1 response closes its connection, so a keep-alive client's next
/// call opens a new one (which the load balancer sends elsewhere). HTTP/2 has no such header:
/// its connections get GOAWAY when the listener closes.
fn closing_if_draining(
    state: &AppState,
    version: hyper::Version,
    mut res: Response<Body>,
) -> Response<Body> {
    if state.is_draining() && version <= hyper::Version::HTTP_11 {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// 200 only when the store answers a query within a second and this instance's workspaces are
/// the stored ones, so a load balancer stops sending calls to a verifier that could not store
/// them or would decide with retired keys; 503 `draining` once shutdown has begun. Every answer
/// names the master keys this instance holds (ids and fingerprints, never a key), so a key
/// rollout can be checked on each instance.
async fn health(state: &AppState) -> Response<Body> {
    let ring = state.keyring.get();
    let master_keys = json!({
        "active": ring.active_id(),
        "fingerprints": ring
            .fingerprints()
            .map(|(id, fp)| (id.to_owned(), Json::from(fp)))
            .collect::<Map<String, Json>>(),
    });
    // Draining first: a draining instance may be healthy, and it is leaving.
    let status = if state.is_draining() {
        Err("draining")
    } else if state.registry.is_stale() {
        Err("config_stale")
    } else {
        match tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await {
            Ok(Ok(_)) => {
                state.outage.answered();
                Ok("ok")
            }
            Ok(Err(e)) => {
                state.outage.failed(&e, false);
                tracing::debug!(error = %e, "health check: store failed");
                Err("store_unavailable")
            }
            // Slow is not away: a busy store still stores calls (their failures say when not).
            Err(_) => Err("store_slow"),
        }
    };
    let (code, status) = match status {
        Ok(s) => (StatusCode::OK, s),
        Err(s) => (StatusCode::SERVICE_UNAVAILABLE, s),
    };
    json_response(code, &json!({"status": status, "master_keys": master_keys}))
}

/// The metrics as OpenMetrics text.
fn metrics_response(state: &AppState) -> Response<Body> {
    uncached(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        state.metrics_text(),
    )
}

/// The answer of the token-free metrics listener ([`crate::run_metrics`]): `GET /metrics`, and
/// nothing else.
pub(crate) fn metrics_only(state: &AppState, req: &Request<Incoming>) -> Response<Body> {
    if req.uri().path() != "/metrics" {
        error(
            StatusCode::NOT_FOUND,
            "not_found",
            "this address serves GET /metrics only",
            None,
        )
    } else if req.method() != HttpMethod::GET {
        error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint accepts GET only",
            None,
        )
    } else {
        metrics_response(state)
    }
}

fn origin_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Adds the CORS headers for an allowed origin.
fn allow_origin(res: &mut Response<Body>, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
    }
}

/// Longest origin written to a log line: the header is the client's text.
const MAX_LOGGED_ORIGIN: usize = 200;

/// Whether an Origin header is a serialized origin a browser sends (`scheme://host[:port]`,
/// nothing else), so that it may be offered in a command: the header is the client's text.
fn is_serialized_origin(origin: &str) -> bool {
    let Some((scheme, host)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// `s` as one single-quoted shell word.
fn shell_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The command that adds `origin` (a serialized origin, see [`is_serialized_origin`]) to a
/// workspace's allowed origins, every word quoted for a POSIX shell. `workspace set
/// --allowed-origin` replaces the list, so the command repeats the origins already allowed.
fn allow_origin_command(ws: Option<&workspace::Workspace>, origin: &str) -> String {
    let mut cmd = format!(
        "dropfix-server workspace set {}",
        ws.map_or("APP_ID".to_string(), |w| shell_word(&w.app_id))
    );
    for o in ws.map(|w| w.allowed_origins.as_slice()).unwrap_or_default() {
        cmd.push_str(" --allowed-origin ");
        cmd.push_str(&shell_word(o));
    }
    cmd.push_str(" --allowed-origin ");
    cmd.push_str(&shell_word(origin));
    cmd
}

/// The 403 for a refused origin, counted per workspace (`"unknown"` when `app` names none, so
/// the label set stays bounded) and logged with the fix where the operator looks. The browser
/// hides this answer from the page, so the log and the metric are what make it diagnosable.
fn origin_forbidden(
    state: &AppState,
    ws: Option<&workspace::Workspace>,
    app: Option<&str>,
    origin: &str,
    preflight: bool,
) -> Response<Body> {
    state
        .metrics
        .origin_refused(ws.map_or(crate::metrics::UNKNOWN_APP, |w| w.app_id.as_str()));
    let shown: String = origin.chars().take(MAX_LOGGED_ORIGIN).collect();
    // Only an origin a browser could have sent is offered as a command to run.
    let valid = shown.len() == origin.len() && is_serialized_origin(origin);
    let fix = if valid {
        format!(
            "add {shown} to the workspace's allowed origins: {}",
            allow_origin_command(ws, &shown)
        )
    } else {
        "none: the Origin header is not a browser's origin (scheme://host[:port])".to_string()
    };
    // info, not warn, and at most a few lines a second: any page can send these at will.
    if state.limits.may_log() {
        match ws {
            Some(ws) => tracing::info!(
                app_id = %ws.app_id,
                origin = ?shown,
                preflight,
                fix = %fix,
                "identify refused: the page's origin is not allowed by the workspace",
            ),
            None => tracing::info!(
                app_id = ?app.map(|a| a.chars().take(MAX_LOGGED_ORIGIN).collect::<String>()),
                origin = ?shown,
                preflight,
                fix = "check the app id the page sends; if it is right, add the page's origin \
                       to that workspace's allowed origins",
                "identify refused: no workspace with this app id allows the page's origin",
            ),
        }
    }
    // The answer names no other allowed origin (they may be internal hosts); the log does.
    let message = match ws {
        Some(ws) if valid => format!(
            "this page's origin is not in the workspace's allowed origins; add it with \
             `dropfix-server workspace set {} --allowed-origin {}` (repeat \
             --allowed-origin for every origin to keep: the list is replaced)",
            shell_word(&ws.app_id),
            shell_word(&shown)
        ),
        _ => "this page's origin is not in the workspace's allowed origins; add it with \
                 `dropfix-server workspace set APP_ID --allowed-origin ORIGIN` (repeat \
                 --allowed-origin for every origin to keep: the list is replaced)"
            .to_string(),
    };
    error(StatusCode::FORBIDDEN, "origin_not_allowed", &message, None)
}

/// `/v1/identify`: the CORS wrapper around [`identify`]. Returns the response and its outcome
/// label for the metrics.
async fn identify_route(
    state: &AppState,
    client: IpAddr,
    req: Request<Incoming>,
) -> (Response<Body>, &'static str) {
    let origin = origin_of(req.headers());
    let (mut res, outcome, app) = identify(state, client, req, origin.as_deref()).await;
    if let Some(origin) = &origin {
        // Errors carry CORS headers too, so the SDK can read the code and the message; an
        // unknown app id's 401 to any origin (see `preflight`): it says nothing about any
        // workspace.
        let allowed = match &app {
            Some(ws) => ws.allows_origin(origin),
            None => outcome == "unknown_app" || state.registry.any_allows_origin(origin),
        };
        if allowed {
            allow_origin(&mut res, origin);
        }
    }
    (res, outcome)
}

fn preflight(state: &AppState, req: &Request<Incoming>, origin: Option<&str>) -> Response<Body> {
    let Some(origin) = origin else {
        return error(
            StatusCode::BAD_REQUEST,
            "not_a_preflight",
            "OPTIONS /v1/identify is a CORS preflight and needs an Origin header",
            None,
        );
    };
    // The SDK names its app in the query string so the preflight can follow that workspace's
    // origins; a preflight without it is allowed if any workspace allows the origin (the POST
    // then checks the workspace it names). A preflight naming an app id no workspace has is
    // allowed from any origin: the POST then answers 401 `unknown_app` with CORS headers, so
    // the page learns that its app id is wrong (a 403 here would read as an origin problem,
    // and its fix, `workspace set` with that id, cannot work). Nothing is stored for it.
    let app = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "app_id")
            .map(|(_, v)| v.into_owned())
    });
    let ws = app.as_deref().and_then(|a| state.registry.get(a));
    let allowed = match (&app, &ws) {
        (Some(_), Some(ws)) => ws.allows_origin(origin),
        (Some(_), None) => !state.registry.is_stale(),
        (None, _) => state.registry.any_allows_origin(origin),
    };
    if !allowed {
        return origin_forbidden(state, ws.as_deref(), app.as_deref(), origin, true);
    }
    let mut res = Response::new(full(Bytes::new()));
    *res.status_mut() = StatusCode::NO_CONTENT;
    allow_origin(&mut res, origin);
    set_headers(
        res.headers_mut(),
        &[
            (header::ACCESS_CONTROL_ALLOW_METHODS, "POST"),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type"),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    );
    res
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// How long an identify call waits for its issuer's keys to be fetched (a new kid, or an issuer
/// this verifier has no keys of yet) before it is answered 503 `issuer_unavailable`.
const JWKS_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The decision table of PROTOCOL.md, over HTTP.
async fn identify(
    state: &AppState,
    client: IpAddr,
    req: Request<Incoming>,
    origin: Option<&str>,
) -> (
    Response<Body>,
    &'static str,
    Option<Arc<workspace::Workspace>>,
) {
    macro_rules! bail {
        ($res:expr, $outcome:expr) => {
            return ($res, $outcome, None)
        };
    }
    if req.method() != HttpMethod::POST {
        bail!(method_not_allowed("POST"), "method_not_allowed");
    }
    // Per client and before parsing: this limit guards the parser and the MAC.
    if let Err(wait) = state.limits.check_ip(client) {
        bail!(too_many(wait), "rate_limited");
    }
    let explain = wants_explain(req.uri().query());
    if !is_json_content_type(req.headers()) {
        bail!(
            error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the identify call as Content-Type: application/json",
                None,
            ),
            "unsupported_media_type"
        );
    }
    let body = match read_body(req, MAX_BODY_BYTES, state.config.body_timeout).await {
        Ok(b) => b,
        Err(res) => bail!(res, "bad_request"),
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let e = dropfix_core::ValidationError::invalid_json(&e.to_string());
            bail!(
                error(StatusCode::BAD_REQUEST, e.code, &e.message, None),
                "invalid_json"
            );
        }
    };
    let call = match Identify::from_wire(&value) {
        Ok(c) => c,
        Err(e) => bail!(
            error(StatusCode::BAD_REQUEST, e.code, &e.message, Some(&e.field)),
            e.code
        ),
    };
    if state.registry.is_stale() {
        bail!(config_stale(), "config_stale");
    }
    let Some(ws) = state.registry.get(&call.app_id) else {
        bail!(
            error(
                StatusCode::UNAUTHORIZED,
                "unknown_app",
                "no workspace has this app_id: copy it from your DropFix settings (each \
                 workspace has its own app id and secret key)",
                Some("app_id"),
            ),
            "unknown_app"
        );
    };
    if let Some(origin) = origin
        && !ws.allows_origin(origin)
    {
        let code = "origin_not_allowed";
        (state.console.stats).refused(&ws.app_id, now(), code, Some(origin), &call.user_id, None);
        let res = origin_forbidden(state, Some(&ws), Some(&ws.app_id), origin, false);
        return (res, "origin_not_allowed", Some(ws));
    }

    // Only a JWKS issuer can lack keys a fetch would bring: static keys and HS256 tokens skip
    // this (and the token's parse it needs) on the hot path.
    if let Some(token) = call.signature.as_deref()
        && ws.issuers.iter().any(|i| i.config.jwks_url.is_some())
        && dropfix_core::issuer::is_issuer_token(token)
    {
        crate::issuers::refresh_for_token(&ws.issuers, &state.jwks, token, JWKS_WAIT).await;
    }
    let now = now();
    let (secrets, key_ids) = ws.live_secrets(now);
    let policy = Policy {
        secrets: &secrets,
        strict: ws.strict,
        require_signed_claims: ws.require_signed_claims,
        issuers: &WorkspaceIssuers {
            issuers: &ws.issuers,
            jwks: state.jwks_keys(),
        },
    };
    let decision = dropfix_core::decide(&policy, &call, now);
    let mut stat = stats::Outcome::Unverified;
    // Custom traits a signed-claims token signs: stored over what the browser sent.
    let mut signed_custom = Vec::new();
    let (verification, trusted, outcome) = match decision {
        Decision::Rejected(r) => {
            // debug, not info: under a forging attack every request is a 401, and the counts are in
            // /metrics (dropfix_identify_requests_total{outcome="signature_mismatch"}).
            tracing::debug!(app_id = %ws.app_id, code = r.code(), "identify rejected");
            let (user, sig) = (&call.user_id, call.signature.as_deref());
            let message = match sig {
                Some(s) if dropfix_core::issuer::is_issuer_token(s) => r.issuer_token_message(),
                Some(s) if dropfix_core::claims::is_jws_form(s) => r.token_message(),
                _ => r.message(),
            };
            if r.status() == 503 {
                // Not a refusal: the issuer's keys are unknown yet, and the SDK retries a 503.
                let res = error(StatusCode::SERVICE_UNAVAILABLE, r.code(), message, None);
                return (res, r.code(), Some(ws));
            }
            let key = stats::signing_key(r.code(), &secrets, &key_ids, user, sig);
            (state.console.stats).refused(&ws.app_id, now, r.code(), origin, user, key);
            let res = error(StatusCode::UNAUTHORIZED, r.code(), message, None);
            return (res, r.code(), Some(ws));
        }
        Decision::Unverified { would_reject } => {
            if let Some(r) = would_reject {
                state.metrics.would_reject(&ws.app_id);
                stat = stats::Outcome::WouldReject;
                (state.console.stats).would_refuse(
                    &ws.app_id,
                    now,
                    r.code(),
                    origin,
                    &call.user_id,
                );
                tracing::info!(
                    app_id = %ws.app_id,
                    code = r.code(),
                    "strict mode (report only) would have rejected this call; stored as unverified"
                );
            }
            (None, Claimed::default(), "unverified")
        }
        Decision::Verified(v) => {
            let trusted = Claimed {
                name: v.trusted.name,
                email: v.trusted.email,
                plan: v.trusted.plan,
                mrr: v.trusted.mrr,
                // The seed form trusts the call's signup_date; signed claims only the token's.
                signup_date: v.trusted.signup_date,
            };
            signed_custom = v.trusted.custom;
            let verification = Verification {
                method: v.method.as_str(),
                // An issuer token is verified by no key of the workspace: no key id.
                key_id: match v.method {
                    Method::IssuerToken => 0,
                    _ => key_ids.get(v.key_index).copied().unwrap_or_default(),
                },
                signed_at: v.signed_at,
            };
            stat = match v.method {
                // The seed form signs the user id only: plan or MRR beside it is counted, for
                // the Security page's recommendation of signed claims.
                Method::SeedHmac if trusted.plan.is_some() || trusted.mrr.is_some() => {
                    stats::Outcome::VerifiedSeedWithTraits
                }
                Method::SeedHmac => stats::Outcome::VerifiedSeed,
                Method::SignedClaims | Method::IssuerToken => stats::Outcome::VerifiedClaims,
            };
            (Some(verification), trusted, "verified")
        }
    };
    // The workspace's quota is spent by accepted calls only, so forged or malformed calls (which
    // cost a MAC at most, and are limited per client above) cannot starve an honest workspace.
    if let Err(wait) = state.limits.check_app(ws.shared_id()) {
        return (too_many(wait), "rate_limited", Some(ws));
    }
    // Only an accepted call gets this far: what the browser claimed moves into the write.
    let Identify {
        user_id, traits, ..
    } = call;
    let hints = if explain {
        let names = traits.custom.iter().chain(&signed_custom).map(|(k, _)| k);
        misspelling_hints(names)
    } else {
        Vec::new()
    };
    let claimed = Claimed {
        name: traits.name,
        email: traits.email,
        plan: traits.plan,
        mrr: traits.mrr,
        signup_date: traits.signup_date,
    };
    let to_json =
        |(k, v): (String, dropfix_core::Value)| (k, serde_json::to_value(v).unwrap_or(Json::Null));
    // A token vouches for its own custom traits only: what the browser added beside it is a
    // claim (kept aside), so a valid token cannot carry unsigned traits into the user's set.
    let (custom, claimed_custom): (Map<String, Json>, Map<String, Json>) =
        if verification.is_some_and(|v| v.method != Method::SeedHmac.as_str()) {
            let added: Map<String, Json> = traits
                .custom
                .into_iter()
                .filter(|(k, _)| !signed_custom.iter().any(|(s, _)| s == k))
                .map(to_json)
                .collect();
            (signed_custom.into_iter().map(to_json).collect(), added)
        } else {
            (traits.custom.into_iter().map(to_json).collect(), Map::new())
        };
    let method = verification.map(|v| v.method);
    // The answer is made before the write so the user id can move into the write instead of
    // being copied; it is sent only once the write is committed.
    let answer = serde_json::to_vec(&Accepted {
        verified: method.is_some(),
        user_id: &user_id,
        method,
        hints,
    })
    .unwrap_or_default();
    let write = IdentifyWrite {
        app_id: ws.app_id.clone(),
        user_id,
        now,
        verification,
        trusted,
        claimed,
        custom,
        claimed_custom,
    };
    if let Err(e) = state.store.identify(write).await {
        state.outage.failed(&e, true);
        let res = identify_not_stored(&state.metrics, &e);
        return (res, "store_unavailable", Some(ws));
    }
    state.outage.answered();
    state.console.stats.count(&ws.app_id, now, stat);
    tracing::debug!(app_id = %ws.app_id, outcome, "identify stored");
    let status = if method.is_some() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    (json_bytes(status, answer), outcome, Some(ws))
}

/// The body of a 200/202 identify answer.
#[derive(Serialize)]
struct Accepted<'a> {
    verified: bool,
    user_id: &'a str,
    method: Option<&'static str>,
    /// With `?explain=1` only: what was stored differently from what the call likely meant.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hints: Vec<Hint>,
}

/// One `explain` hint: the field it is about, and what to change.
#[derive(Serialize)]
struct Hint {
    field: String,
    message: String,
}

/// `?explain=1` (or `true`): the caller (the SDK in debug mode) wants the answer's `hints`.
fn wants_explain(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes())
            .any(|(k, v)| k == "explain" && (v == "1" || v == "true"))
    })
}

/// A hint for each custom trait (of the call, or of its token) that looks like a misspelled
/// standard trait: it is stored as a custom trait, and the standard one stays empty.
fn misspelling_hints<'a>(names: impl Iterator<Item = &'a String>) -> Vec<Hint> {
    names
        .filter_map(|name| {
            let standard = crate::users::misspelled_standard_trait(name)?;
            Some(Hint {
                field: format!("traits.{name}"),
                message: format!(
                    "`{name}` is stored as a custom trait, not as the standard trait \
                     `{standard}`: did you mean {standard}?"
                ),
            })
        })
        .collect()
}
