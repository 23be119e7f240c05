//! The HTTP API: routing, `POST /v1/identify`, CORS, limits, health, metrics and the admin API.
//!
//! Every error leaves as JSON `{"error":{"code","message","field"?}}` built in one place
//! ([`error`]); anything internal is logged and answered with a 503/500 that carries no detail.

// Helpers return the finished error response as their `Err`: it is built once, on a cold path.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dropfix_core::{Decision, Identify, MAX_BODY_BYTES, Policy, Value};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method as HttpMethod, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::store::{Claimed, IdentifyWrite, StoreError, Verification, get_user, list_users};
use crate::workspace::{self, NewWorkspace, WorkspacePatch};

pub type Body = Full<Bytes>;

/// Admin request bodies are small JSON objects.
const MAX_ADMIN_BODY_BYTES: usize = 64 * 1024;
/// Most users one admin list call returns.
const MAX_LIST_LIMIT: usize = 100_000;

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut res = Response::new(Full::new(Bytes::from(bytes)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The one error shape.
pub fn error(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response<Body> {
    let mut e = Map::new();
    e.insert("code".into(), code.into());
    e.insert("message".into(), message.into());
    if let Some(f) = field.filter(|f| !f.is_empty()) {
        e.insert("field".into(), f.into());
    }
    json_response(status, &json!({ "error": e }))
}

fn store_unavailable(e: &StoreError) -> Response<Body> {
    tracing::error!(error = %e, "store failure");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the verifier could not store this call; nothing was recorded, retry later",
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
    let res = match path.as_str() {
        "/v1/identify" => {
            let started = Instant::now();
            let (res, outcome) = identify_route(&state, peer, req).await;
            state.metrics.outcome(outcome);
            state
                .metrics
                .observe_latency(started.elapsed().as_secs_f64());
            res
        }
        "/healthz" if req.method() == HttpMethod::GET => health(&state).await,
        "/metrics" if req.method() == HttpMethod::GET => {
            let mut res = Response::new(Full::new(Bytes::from(state.metrics.render())));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            res
        }
        "/healthz" | "/metrics" => method_not_allowed("GET"),
        p if p.starts_with("/v1/admin/") => admin(&state, req).await,
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint; identify calls go to POST /v1/identify",
            None,
        ),
    };
    Ok(res)
}

/// 200 only when the store answers a query within a second, so a load balancer stops sending
/// calls to a verifier that could not store them.
async fn health(state: &AppState) -> Response<Body> {
    let probe = state.store.call(|c| {
        c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .map_err(StoreError::from)
    });
    match tokio::time::timeout(Duration::from_secs(1), probe).await {
        Ok(Ok(_)) => json_response(StatusCode::OK, &json!({"status": "ok"})),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "health check: store failed");
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "store_unavailable"}),
            )
        }
        Err(_) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "store_slow"}),
        ),
    }
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut res = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("this endpoint accepts {allow} only"),
        None,
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
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

fn origin_forbidden() -> Response<Body> {
    error(
        StatusCode::FORBIDDEN,
        "origin_not_allowed",
        "this page's origin is not in the workspace's allowed origins; add it with \
         `dropfix-server workspace set APP_ID --allowed-origin ORIGIN`",
        None,
    )
}

/// `/v1/identify`: the CORS wrapper around [`identify`]. Returns the response and its outcome
/// label for the metrics.
async fn identify_route(
    state: &AppState,
    peer: IpAddr,
    req: Request<Incoming>,
) -> (Response<Body>, &'static str) {
    let origin = origin_of(req.headers());
    if req.method() == HttpMethod::OPTIONS {
        return (preflight(state, &req, origin.as_deref()), "preflight");
    }
    let (mut res, outcome, app) = identify(state, peer, req, origin.as_deref()).await;
    if let Some(origin) = &origin {
        // Errors carry CORS headers too, so the SDK can read the code and the message.
        let allowed = match &app {
            Some(ws) => ws.allows_origin(origin),
            None => state.registry.any_allows_origin(origin),
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
    // then checks the workspace it names).
    let app = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "app_id")
            .map(|(_, v)| v.into_owned())
    });
    let allowed = match app.as_deref().map(|a| state.registry.get(a)) {
        Some(Some(ws)) => ws.allows_origin(origin),
        Some(None) => false,
        None => state.registry.any_allows_origin(origin),
    };
    if !allowed {
        return origin_forbidden();
    }
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::NO_CONTENT;
    allow_origin(&mut res, origin);
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
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

fn too_large(limit: usize) -> Response<Body> {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        &format!("the request body is larger than {limit} bytes"),
        None,
    )
}

/// Reads a body of at most `limit` bytes within the configured time.
async fn read_body(
    state: &AppState,
    req: Request<Incoming>,
    limit: usize,
) -> Result<Bytes, Response<Body>> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let body = Limited::new(req.into_body(), limit);
    match tokio::time::timeout(state.config.body_timeout, body.collect()).await {
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the request body did not arrive in time",
            None,
        )),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
        Ok(Err(_)) => Err(error(
            StatusCode::BAD_REQUEST,
            "body_unreadable",
            "the request body could not be read (connection error or bad chunked encoding)",
            None,
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// The decision table of PROTOCOL.md, over HTTP.
async fn identify(
    state: &AppState,
    peer: IpAddr,
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
    if let Err(wait) = state.limits.check_ip(peer) {
        bail!(too_many(wait), "rate_limited");
    }
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
    let body = match read_body(state, req, MAX_BODY_BYTES).await {
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
        tracing::info!(app_id = %ws.app_id, origin, "identify from an origin the workspace does not allow");
        return (origin_forbidden(), "origin_not_allowed", Some(ws));
    }
    if let Err(wait) = state.limits.check_app(&ws.app_id) {
        return (too_many(wait), "rate_limited", Some(ws));
    }

    let now = now();
    let (secrets, key_ids) = ws.live_secrets(now);
    let policy = Policy {
        secrets: &secrets,
        strict: ws.strict,
        require_signed_claims: ws.require_signed_claims,
    };
    let decision = dropfix_core::decide(&policy, &call, now);
    // Custom traits a signed-claims token signs: stored over what the browser sent.
    let mut signed_custom = Vec::new();
    let (verification, trusted, outcome) = match decision {
        Decision::Rejected(r) => {
            // debug, not info: under a forging attack every request is a 401, and the counts are in
            // /metrics (dropfix_identify_requests_total{outcome="signature_mismatch"}).
            tracing::debug!(app_id = %ws.app_id, code = r.code(), "identify rejected");
            let res = error(StatusCode::UNAUTHORIZED, r.code(), r.message(), None);
            return (res, r.code(), Some(ws));
        }
        Decision::Unverified { would_reject } => {
            if let Some(r) = would_reject {
                state.metrics.would_reject(&ws.app_id);
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
                key_id: key_ids.get(v.key_index).copied().unwrap_or_default(),
                signed_at: v.signed_at,
            };
            (Some(verification), trusted, "verified")
        }
    };
    // Only an accepted call gets this far: what the browser claimed moves into the write.
    let Identify {
        user_id, traits, ..
    } = call;
    let claimed = Claimed {
        name: traits.name,
        email: traits.email,
        plan: traits.plan,
        mrr: traits.mrr,
        signup_date: traits.signup_date,
    };
    let custom: Map<String, Json> = traits
        .custom
        .into_iter()
        .chain(signed_custom)
        .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or(Json::Null)))
        .collect();
    let method = verification.map(|v| v.method);
    let write = IdentifyWrite {
        app_id: ws.app_id.clone(),
        user_id: user_id.clone(),
        now,
        verification,
        trusted,
        claimed,
        custom,
    };
    if let Err(e) = state.store.identify(write).await {
        return (store_unavailable(&e), "store_unavailable", Some(ws));
    }
    tracing::debug!(app_id = %ws.app_id, outcome, "identify stored");
    let status = if method.is_some() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let body = json!({"verified": method.is_some(), "user_id": user_id, "method": method});
    (json_response(status, &body), outcome, Some(ws))
}

// ---------------------------------------------------------------------------------------------
// Admin API

/// Checks `Authorization: Bearer <token>` against the configured token, comparing SHA-256
/// digests in constant time (so neither the length nor a prefix of the token leaks).
pub fn admin_authorized(headers: &HeaderMap, token_sha256: &[u8; 32]) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let digest: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
    digest.ct_eq(token_sha256).into()
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    strict: Option<String>,
    allowed_origins: Option<Vec<String>>,
    require_signed_claims: Option<bool>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    strict: Option<String>,
    allowed_origins: Option<Vec<String>>,
    require_signed_claims: Option<bool>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    grace_seconds: Option<i64>,
}

fn bad_request(code: &str, message: &str) -> Response<Body> {
    error(StatusCode::BAD_REQUEST, code, message, None)
}

fn parse_strict(s: Option<&str>) -> Result<Option<dropfix_core::StrictMode>, Response<Body>> {
    match s {
        None => Ok(None),
        Some(s) => dropfix_core::StrictMode::parse(s).map(Some).ok_or_else(|| {
            bad_request(
                "invalid_value",
                "strict must be \"off\", \"report_only\" or \"on\"",
            )
        }),
    }
}

fn check_origins(origins: &Option<Vec<String>>) -> Result<(), Response<Body>> {
    for o in origins.iter().flatten() {
        workspace::validate_origin_pattern(o).map_err(|m| bad_request("invalid_value", &m))?;
    }
    Ok(())
}

async fn admin_json<T: serde::de::DeserializeOwned + Default>(
    state: &AppState,
    req: Request<Incoming>,
    optional: bool,
) -> Result<T, Response<Body>> {
    let body = read_body(state, req, MAX_ADMIN_BODY_BYTES).await?;
    if optional && body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body).map_err(|e| {
        bad_request(
            "invalid_json",
            &format!("request body is not valid for this endpoint: {e}"),
        )
    })
}

fn workspace_not_found() -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "workspace_not_found",
        "no workspace has this app id",
        None,
    )
}

async fn admin(state: &Arc<AppState>, req: Request<Incoming>) -> Response<Body> {
    if !admin_authorized(req.headers(), &state.admin_token_sha256) {
        tracing::warn!("admin call with a missing or wrong admin token");
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "admin endpoints need `Authorization: Bearer <admin token>`",
            None,
        );
    }
    let path = req.uri().path().to_string();
    let segments: Vec<String> = match path.strip_prefix("/v1/admin/workspaces") {
        Some(rest) => rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect(),
        None => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such admin endpoint",
                None,
            );
        }
    };
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let result = match (&method, seg.as_slice()) {
        (&HttpMethod::GET, []) => {
            let list: Vec<_> = state.registry.all().iter().map(|w| w.summary()).collect();
            Ok(json_response(StatusCode::OK, &json!({"workspaces": list})))
        }
        (&HttpMethod::POST, []) => admin_create(state, req).await,
        (&HttpMethod::GET, [app]) => match state.registry.get(app) {
            Some(ws) => Ok(json_response(StatusCode::OK, &ws.summary())),
            None => Ok(workspace_not_found()),
        },
        (&HttpMethod::PATCH, [app]) => admin_patch(state, req, app.to_string()).await,
        (&HttpMethod::POST, [app, "rotate"]) => admin_rotate(state, req, app.to_string()).await,
        (&HttpMethod::POST, [app, "retire-old"]) => admin_retire(state, app.to_string()).await,
        (&HttpMethod::GET, [app, "users"]) => {
            if state.registry.get(app).is_none() {
                return workspace_not_found();
            }
            let get = |k: &str| {
                query
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
            };
            let verified_only = get("verified").is_some_and(|v| v == "true" || v == "1");
            let limit = get("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(100)
                .clamp(1, MAX_LIST_LIMIT);
            let after = get("after");
            let app = app.to_string();
            state
                .store
                .call(move |c| list_users(c, &app, verified_only, after.as_deref(), limit))
                .await
                .map(|users| {
                    let next = (users.len() == limit)
                        .then(|| users.last().map(|u| u.user_id.clone()))
                        .flatten();
                    json_response(StatusCode::OK, &json!({"users": users, "next_after": next}))
                })
        }
        (&HttpMethod::GET, [app, "users", user]) => {
            if state.registry.get(app).is_none() {
                return workspace_not_found();
            }
            let (app, user) = (app.to_string(), user.to_string());
            state
                .store
                .call(move |c| get_user(c, &app, &user))
                .await
                .map(|u| match u {
                    Some(u) => json_response(StatusCode::OK, &u),
                    None => error(
                        StatusCode::NOT_FOUND,
                        "user_not_found",
                        "no identify call has been stored for this user id",
                        None,
                    ),
                })
        }
        _ => Ok(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such admin endpoint or method",
            None,
        )),
    };
    result.unwrap_or_else(|e| store_unavailable(&e))
}

async fn reload(state: &Arc<AppState>) -> Result<(), StoreError> {
    state
        .store
        .reload_workspaces(Arc::clone(&state.registry))
        .await
}

async fn admin_create(
    state: &Arc<AppState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, StoreError> {
    let body: CreateBody = match admin_json(state, req, false).await {
        Ok(b) => b,
        Err(res) => return Ok(res),
    };
    if body.name.trim().is_empty() {
        return Ok(bad_request("missing_field", "name is required"));
    }
    let strict = match parse_strict(body.strict.as_deref()) {
        Ok(s) => s.unwrap_or(dropfix_core::StrictMode::Off),
        Err(res) => return Ok(res),
    };
    if let Err(res) = check_origins(&body.allowed_origins) {
        return Ok(res);
    }
    let new = NewWorkspace {
        name: body.name,
        strict,
        require_signed_claims: body.require_signed_claims.unwrap_or(false),
        allowed_origins: body
            .allowed_origins
            .unwrap_or_else(|| workspace::DEV_ORIGINS.map(String::from).to_vec()),
    };
    let now = now();
    let (ws, secret) = state
        .store
        .call(move |c| workspace::create_workspace(c, &new, now))
        .await?;
    reload(state).await?;
    tracing::info!(app_id = %ws.app_id, "workspace created");
    let mut body = serde_json::to_value(ws.summary()).unwrap_or_default();
    body["secret"] = secret.expose_secret().into();
    Ok(json_response(StatusCode::CREATED, &body))
}

async fn admin_patch(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    app: String,
) -> Result<Response<Body>, StoreError> {
    let body: PatchBody = match admin_json(state, req, false).await {
        Ok(b) => b,
        Err(res) => return Ok(res),
    };
    let strict = match parse_strict(body.strict.as_deref()) {
        Ok(s) => s,
        Err(res) => return Ok(res),
    };
    if let Err(res) = check_origins(&body.allowed_origins) {
        return Ok(res);
    }
    let patch = WorkspacePatch {
        name: body.name,
        strict,
        require_signed_claims: body.require_signed_claims,
        allowed_origins: body.allowed_origins,
    };
    let ws = state
        .store
        .call(move |c| workspace::update_workspace(c, &app, &patch))
        .await?;
    let Some(ws) = ws else {
        return Ok(workspace_not_found());
    };
    reload(state).await?;
    tracing::info!(app_id = %ws.app_id, strict = ws.strict.as_str(), "workspace updated");
    Ok(json_response(StatusCode::OK, &ws.summary()))
}

async fn admin_retire(state: &Arc<AppState>, app: String) -> Result<Response<Body>, StoreError> {
    let ws = state
        .store
        .call(move |c| workspace::retire_old_keys(c, &app))
        .await?;
    let Some(ws) = ws else {
        return Ok(workspace_not_found());
    };
    reload(state).await?;
    tracing::info!(app_id = %ws.app_id, "old secret keys retired");
    Ok(json_response(StatusCode::OK, &ws.summary()))
}

async fn admin_rotate(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    app: String,
) -> Result<Response<Body>, StoreError> {
    let body: RotateBody = match admin_json(state, req, true).await {
        Ok(b) => b,
        Err(res) => return Ok(res),
    };
    let grace = body
        .grace_seconds
        .unwrap_or(workspace::DEFAULT_ROTATION_GRACE_SECS);
    let now = now();
    let rotation = state
        .store
        .call(move |c| workspace::rotate_key(c, &app, grace, now))
        .await?;
    let Some(r) = rotation else {
        return Ok(workspace_not_found());
    };
    reload(state).await?;
    tracing::info!(app_id = %r.workspace.app_id, "secret key rotated");
    let mut body = serde_json::to_value(r.workspace.summary()).unwrap_or_default();
    body["secret"] = r.secret.expose_secret().into();
    body["old_key_expires_at"] = r.old_key_expires_at.into();
    Ok(json_response(StatusCode::OK, &body))
}
