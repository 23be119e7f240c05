//! The admin API (`/v1/admin/...`, bearer token): workspaces, their keys, stored users and the
//! audit log. Every store call goes through the backend-neutral [`crate::store::Store`]; every
//! query parameter is checked, and anything the endpoint does not document is refused with a 400
//! that names the parameter (a churn job asking for `verified=True` must never get unverified
//! users because of a spelling).

// Helpers return the finished error response as their `Err`: it is built once, on a cold path.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::issuers::IssuerInput;
use crate::state::AppState;
use crate::store::StoreError;
use crate::users::{UserQuery, UserRecord};
use crate::web::{Body, error, json_response, now, read_body, store_unavailable};
use crate::workspace::{
    self, IssuerRuleError, KeyRuleError, NewKey, NewWorkspace, Workspace, WorkspacePatch,
};

/// Admin request bodies are small JSON objects.
const MAX_ADMIN_BODY_BYTES: usize = 64 * 1024;
/// Most users one admin list call returns.
pub const MAX_LIST_LIMIT: usize = 100_000;
/// Users a list call returns when it names no limit.
const DEFAULT_LIST_LIMIT: usize = 100;
/// Longest grace period a roll may give the old key.
pub const MAX_GRACE_SECS: i64 = 30 * 24 * 3600;
/// Who the audit log names for changes made through this API.
const ACTOR: &str = "admin-api";

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
struct RollBody {
    grace_seconds: Option<i64>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewKeyBody {
    label: Option<String>,
    expires_at: Option<i64>,
}

fn bad_request(code: &str, message: &str) -> Response<Body> {
    error(StatusCode::BAD_REQUEST, code, message, None)
}

fn bad_param(name: &str, message: &str) -> Response<Body> {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        &format!("query parameter `{name}`: {message}"),
        Some(name),
    )
}

fn not_found(code: &str, message: &str) -> Response<Body> {
    error(StatusCode::NOT_FOUND, code, message, None)
}

fn workspace_not_found() -> Response<Body> {
    not_found("workspace_not_found", "no workspace has this app id")
}

/// A workspace's token issuers as the admin API shows them: the stored configuration (public
/// keys and URLs only) and, for a JWKS issuer, what this verifier last fetched.
fn issuers_body(state: &AppState, ws: &Workspace) -> serde_json::Value {
    let list: Vec<serde_json::Value> = ws
        .issuers
        .iter()
        .map(|i| {
            let mut v = serde_json::to_value(&i.config).unwrap_or_default();
            v["key_ids"] = match &i.static_keys {
                Some(keys) => json!(keys.kids()),
                None => json!(null),
            };
            if let Some(url) = &i.config.jwks_url {
                v["fetch"] = state.jwks_status(url);
            }
            v
        })
        .collect();
    json!({"app_id": ws.app_id, "token_issuers": list})
}

/// The one place store errors become responses.
fn store_error(e: &StoreError) -> Response<Body> {
    match e {
        StoreError::WorkspaceNotFound => workspace_not_found(),
        StoreError::Key(k) => {
            let status = match k {
                KeyRuleError::NoSuchKey => StatusCode::NOT_FOUND,
                KeyRuleError::TooManyKeys | KeyRuleError::LastLiveKey => StatusCode::CONFLICT,
                KeyRuleError::BadLabel | KeyRuleError::BadExpiry => StatusCode::BAD_REQUEST,
            };
            error(status, k.code(), k.message(), None)
        }
        StoreError::Issuer(i) => {
            let status = match i {
                IssuerRuleError::NotFound => StatusCode::NOT_FOUND,
                IssuerRuleError::Invalid(_) => StatusCode::BAD_REQUEST,
                IssuerRuleError::Exists
                | IssuerRuleError::TooMany
                | IssuerRuleError::LastVerifier => StatusCode::CONFLICT,
            };
            error(status, i.code(), &i.message(), None)
        }
        StoreError::Sealing(_) => {
            tracing::error!(error = %e, "admin call: a stored secret cannot be unsealed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "config_stale",
                "this verifier cannot unseal the stored secrets with its master keys (see its \
                 log): give it the master key they are sealed with",
                None,
            )
        }
        other => store_unavailable(other),
    }
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

/// The grace period a roll's body asks for (the default when it names none), checked.
async fn roll_grace(state: &AppState, req: Request<Incoming>) -> Result<i64, Response<Body>> {
    let body: RollBody = body_json(state, req, true).await?;
    let grace = body
        .grace_seconds
        .unwrap_or(workspace::DEFAULT_ROTATION_GRACE_SECS);
    if (0..=MAX_GRACE_SECS).contains(&grace) {
        Ok(grace)
    } else {
        Err(bad_request(
            "invalid_value",
            "grace_seconds must be between 0 (the old key stops now) and 2592000 (30 days)",
        ))
    }
}

async fn body_json<T: serde::de::DeserializeOwned + Default>(
    state: &AppState,
    req: Request<Incoming>,
    optional: bool,
) -> Result<T, Response<Body>> {
    let body = read_body(req, MAX_ADMIN_BODY_BYTES, state.config.body_timeout).await?;
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

/// The query string of one endpoint, checked: each parameter at most once and only the ones
/// the endpoint documents.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(req: &Request<Incoming>, allowed: &[&str]) -> Result<Query, Response<Body>> {
        let pairs: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        for (i, (k, _)) in pairs.iter().enumerate() {
            if !allowed.contains(&k.as_str()) {
                let known = if allowed.is_empty() {
                    "this endpoint takes no query parameters".to_string()
                } else {
                    format!("this endpoint accepts {}", allowed.join(", "))
                };
                return Err(bad_param(k, &format!("unknown parameter; {known}")));
            }
            if pairs[..i].iter().any(|(prev, _)| prev == k) {
                return Err(bad_param(k, "given more than once"));
            }
        }
        Ok(Query(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `true`/`1` or `false`/`0`, exactly; anything else is refused.
    fn bool(&self, name: &str) -> Result<Option<bool>, Response<Body>> {
        match self.get(name) {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(_) => Err(bad_param(
                name,
                "must be `true` or `1` (verified users only) or `false` or `0` (unverified \
                 users only); leave it out for all users",
            )),
        }
    }

    fn limit(&self, name: &str, default: usize, max: usize) -> Result<usize, Response<Body>> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| bad_param(name, &format!("must be a whole number from 1 to {max}"))),
        }
    }

    fn text(&self, name: &str, max_bytes: usize) -> Result<Option<String>, Response<Body>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.is_empty() || v.len() > max_bytes => Err(bad_param(
                name,
                &format!("must be 1 to {max_bytes} bytes; leave it out for no filter"),
            )),
            Some(v) => Ok(Some(v.to_string())),
        }
    }
}

fn key_id_param(s: &str) -> Result<i64, Response<Body>> {
    s.parse::<i64>()
        .ok()
        .filter(|&id| id > 0)
        .ok_or_else(|| not_found("key_not_found", "key ids are positive whole numbers"))
}

/// A workspace with a just-made key: the summary plus the secret, shown this once.
fn new_key_body(k: &NewKey) -> Json {
    let mut body = serde_json::to_value(k.workspace.summary()).unwrap_or_default();
    body["key_id"] = k.key_id.into();
    body["secret"] = k.secret.expose_secret().into();
    // Signed-claims tokens are HS256 with this key, never with the secret itself.
    body["claims_key"] = k.secret.expose_claims_key().into();
    if let Some(t) = k.old_key_expires_at {
        body["old_key_expires_at"] = t.into();
    }
    body
}

/// Users as a list body; serialized straight from the records so the fields come in the same
/// order as the single-user endpoint's.
#[derive(serde::Serialize)]
struct UserPage<'a> {
    users: &'a [UserRecord],
    next_after: Option<&'a str>,
}

pub async fn handle(state: &Arc<AppState>, req: Request<Incoming>) -> Response<Body> {
    if !admin_authorized(req.headers(), &state.admin_token_sha256) {
        // At most a few lines a second: anyone can send these at will.
        if state.limits.may_log() {
            tracing::warn!("admin call with a missing or wrong admin token");
        }
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "admin endpoints need `Authorization: Bearer <admin token>`",
            None,
        );
    }
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/v1/admin/workspaces") else {
        return not_found("not_found", "no such admin endpoint");
    };
    if !rest.is_empty() && !rest.starts_with('/') {
        return not_found("not_found", "no such admin endpoint");
    }
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    match route(state, req, &method, &seg).await {
        Ok(res) | Err(res) => res,
    }
}

async fn route(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    method: &Method,
    seg: &[&str],
) -> Result<Response<Body>, Response<Body>> {
    let no_query = |req: &Request<Incoming>| Query::parse(req, &[]).map(|_| ());
    let store = &state.store;
    let now = now();
    Ok(match (method, seg) {
        (&Method::GET, []) => {
            no_query(&req)?;
            let list = store.workspaces().await.map_err(|e| store_error(&e))?;
            let list: Vec<_> = list.iter().map(Workspace::summary).collect();
            json_response(StatusCode::OK, &json!({"workspaces": list}))
        }
        (&Method::POST, []) => {
            no_query(&req)?;
            let body: CreateBody = body_json(state, req, false).await?;
            if body.name.trim().is_empty() {
                return Err(bad_request("missing_field", "name is required"));
            }
            workspace::validate_name(&body.name).map_err(|e| bad_request("invalid_value", &e))?;
            let strict = parse_strict(body.strict.as_deref())?.unwrap_or_default();
            check_origins(&body.allowed_origins)?;
            let new = NewWorkspace {
                name: body.name,
                strict,
                require_signed_claims: body.require_signed_claims.unwrap_or(false),
                allowed_origins: body
                    .allowed_origins
                    .unwrap_or_else(|| workspace::DEV_ORIGINS.map(String::from).to_vec()),
            };
            let k = store
                .create_workspace(&new, ACTOR, now)
                .await
                .map_err(|e| store_error(&e))?;
            tracing::info!(app_id = %k.workspace.app_id, "workspace created");
            json_response(StatusCode::CREATED, &new_key_body(&k))
        }
        (&Method::GET, [app]) => {
            no_query(&req)?;
            let ws = find_workspace(state, app).await?;
            json_response(StatusCode::OK, &ws.summary())
        }
        (&Method::PATCH, [app]) => {
            no_query(&req)?;
            let body: PatchBody = body_json(state, req, false).await?;
            let strict = parse_strict(body.strict.as_deref())?;
            check_origins(&body.allowed_origins)?;
            if let Some(name) = &body.name {
                workspace::validate_name(name).map_err(|e| bad_request("invalid_value", &e))?;
            }
            let patch = WorkspacePatch {
                name: body.name,
                strict,
                require_signed_claims: body.require_signed_claims,
                allowed_origins: body.allowed_origins,
            };
            let ws = store
                .update_workspace(app, &patch, ACTOR, now)
                .await
                .map_err(|e| store_error(&e))?;
            tracing::info!(app_id = %ws.app_id, strict = ws.strict.as_str(), "workspace updated");
            json_response(StatusCode::OK, &ws.summary())
        }
        (&Method::POST, [app, "rotate"]) => {
            no_query(&req)?;
            let grace = roll_grace(state, req).await?;
            let k = store
                .roll_key(app, None, grace, ACTOR, now)
                .await
                .map_err(|e| store_error(&e))?;
            tracing::info!(app_id = %app, key_id = k.key_id, "secret key rolled");
            json_response(StatusCode::OK, &new_key_body(&k))
        }
        (&Method::POST, [app, "retire-old"]) => {
            no_query(&req)?;
            let ws = store
                .retire_old_keys(app, ACTOR, now)
                .await
                .map_err(|e| store_error(&e))?;
            tracing::info!(app_id = %app, "old secret keys retired");
            json_response(StatusCode::OK, &ws.summary())
        }
        (&Method::GET, [app, "keys"]) => {
            no_query(&req)?;
            let ws = find_workspace(state, app).await?;
            json_response(StatusCode::OK, &json!({"keys": ws.summary().keys}))
        }
        (&Method::POST, [app, "keys"]) => {
            no_query(&req)?;
            let body: NewKeyBody = body_json(state, req, true).await?;
            let label = body.label.unwrap_or_else(|| "default".into());
            let k = store
                .create_key(app, &label, body.expires_at, ACTOR, now)
                .await
                .map_err(|e| store_error(&e))?;
            tracing::info!(app_id = %app, key_id = k.key_id, "secret key created");
            json_response(StatusCode::CREATED, &new_key_body(&k))
        }
        (&Method::POST, [app, "keys", id, "roll"]) => {
            no_query(&req)?;
            let id = key_id_param(id)?;
            let grace = roll_grace(state, req).await?;
            let k = store
                .roll_key(app, Some(id), grace, ACTOR, now)
                .await
                .map_err(|e| store_error(&e))?;
            tracing::info!(app_id = %app, old_key_id = id, key_id = k.key_id, "secret key rolled");
            json_response(StatusCode::OK, &new_key_body(&k))
        }
        (&Method::DELETE, [app, "keys", id]) => {
            no_query(&req)?;
            let id = key_id_param(id)?;
            let ws = store
                .retire_key(app, id, ACTOR, now)
                .await
                .map_err(|e| store_error(&e))?;
            tracing::info!(app_id = %app, key_id = id, "secret key retired");
            json_response(StatusCode::OK, &ws.summary())
        }
        (&Method::GET, [app, "issuers"]) => {
            no_query(&req)?;
            let ws = find_workspace(state, app).await?;
            json_response(StatusCode::OK, &issuers_body(state, &ws))
        }
        (&Method::POST, [app, "issuers"]) => {
            no_query(&req)?;
            let body: IssuerInput = body_json(state, req, false).await?;
            let config = body
                .into_config()
                .map_err(|why| error(StatusCode::BAD_REQUEST, "invalid_issuer", &why, None))?;
            let name = config.name.clone();
            let ws = store
                .add_issuer(app, config, ACTOR, now)
                .await
                .map_err(|e| store_error(&e))?;
            tracing::info!(app_id = %app, issuer = %name, "token issuer added");
            json_response(StatusCode::CREATED, &issuers_body(state, &ws))
        }
        (&Method::DELETE, [app, "issuers", name]) => {
            no_query(&req)?;
            let ws = store
                .remove_issuer(app, name, ACTOR, now)
                .await
                .map_err(|e| store_error(&e))?;
            tracing::info!(app_id = %app, issuer = %name, "token issuer removed");
            json_response(StatusCode::OK, &issuers_body(state, &ws))
        }
        (&Method::GET, [app, "users"]) => {
            let q = Query::parse(&req, &["verified", "limit", "after", "search"])?;
            let query = UserQuery {
                verified: q.bool("verified")?,
                limit: q.limit("limit", DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?,
                after: q.text("after", dropfix_core::MAX_USER_ID_BYTES)?,
                search: q.text("search", dropfix_core::MAX_USER_ID_BYTES)?,
            };
            find_workspace(state, app).await?;
            let users = store
                .list_users(app, &query)
                .await
                .map_err(|e| store_error(&e))?;
            let next_after = (users.len() == query.limit)
                .then(|| users.last().map(|u| u.user_id.as_str()))
                .flatten();
            json_response(
                StatusCode::OK,
                &UserPage {
                    users: &users,
                    next_after,
                },
            )
        }
        (&Method::GET, [app, "users", user]) => {
            no_query(&req)?;
            find_workspace(state, app).await?;
            match store
                .get_user(app, user)
                .await
                .map_err(|e| store_error(&e))?
            {
                Some(u) => json_response(StatusCode::OK, &u),
                None => user_not_found(),
            }
        }
        (&Method::DELETE, [app, "users", user]) => {
            no_query(&req)?;
            find_workspace(state, app).await?;
            let deleted = store
                .delete_user(app, user, ACTOR, now)
                .await
                .map_err(|e| store_error(&e))?;
            if !deleted {
                return Err(user_not_found());
            }
            tracing::info!(app_id = %app, "stored user deleted");
            json_response(StatusCode::OK, &json!({"deleted": true, "user_id": user}))
        }
        (&Method::GET, [app, "audit"]) => {
            let q = Query::parse(&req, &["limit"])?;
            let limit = q.limit("limit", 100, 1000)?;
            find_workspace(state, app).await?;
            let entries = store
                .audit_log(app, limit)
                .await
                .map_err(|e| store_error(&e))?;
            json_response(StatusCode::OK, &json!({"entries": entries}))
        }
        _ => not_found("not_found", "no such admin endpoint or method"),
    })
}

fn user_not_found() -> Response<Body> {
    not_found(
        "user_not_found",
        "no identify call has been stored for this user id",
    )
}

/// The workspace as stored now (fresh, so key `last_used_at` values are current).
async fn find_workspace(state: &AppState, app: &str) -> Result<Workspace, Response<Body>> {
    if state.registry.get(app).is_none() {
        // The registry may lag another instance's create by up to a second; ask the store.
        state.store.reload().await.map_err(|e| store_error(&e))?;
    }
    state
        .store
        .workspaces()
        .await
        .map_err(|e| store_error(&e))?
        .into_iter()
        .find(|w| w.app_id == app)
        .ok_or_else(workspace_not_found)
}
