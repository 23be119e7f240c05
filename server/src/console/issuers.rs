//! A workspace's Token issuers page: the issuers it trusts (public keys of the customer's
//! backend, identity providers' JWKS URLs), their keys and this verifier's fetch status, and for
//! owners the forms that add and remove them (the same checks as the CLI and the admin API).

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::context::{Ctx, not_found, read_form, redirect, render, unavailable};
use super::pages::{IssuerForm, IssuerKeyRow, IssuerRow, IssuersPage};
use crate::issuers::{IssuerInput, parse_claim_map};
use crate::store::StoreError;
use crate::web::{Body, now};

fn url(app_id: &str) -> String {
    format!(
        "/console/w/{}/issuers",
        percent_encoding::utf8_percent_encode(app_id, percent_encoding::NON_ALPHANUMERIC)
    )
}

fn rows(ctx: &Ctx<'_>) -> Vec<IssuerRow> {
    ctx.ws
        .issuers
        .iter()
        .map(|i| {
            let c = &i.config;
            let keys = match &i.static_keys {
                Some(set) => Some(std::sync::Arc::clone(set)),
                None => c
                    .jwks_url
                    .as_deref()
                    .and_then(|u| ctx.state.jwks_keys().get(u)),
            };
            let fetch = c.jwks_url.as_deref().map(|u| {
                let status = ctx.state.jwks_status(u);
                let ok = status.get("ok").and_then(serde_json::Value::as_bool) == Some(true);
                let text = status
                    .get("summary")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("not fetched by this verifier yet")
                    .to_string();
                super::pages::FetchRow { ok, text }
            });
            IssuerRow {
                name: c.name.clone(),
                source: c
                    .jwks_url
                    .clone()
                    .map_or_else(|| "registered public keys".into(), |u| format!("JWKS {u}")),
                iss: c
                    .iss
                    .clone()
                    .unwrap_or_else(|| "(none: tokens carry no iss)".into()),
                audiences: if c.audiences.is_empty() {
                    "(not checked)".into()
                } else {
                    c.audiences.join(", ")
                },
                user_claim: c.user_claim.clone(),
                traits: match &c.claims {
                    Some(map) if map.is_empty() => "none".into(),
                    Some(map) => map
                        .iter()
                        .map(|m| format!("{} \u{2192} {}", m.claim, m.to))
                        .collect::<Vec<_>>()
                        .join(", "),
                    None => "every claim of the token that is not a registered one".into(),
                },
                algorithms: c.algorithms.join(" "),
                keys: keys
                    .map(|set| {
                        set.keys
                            .iter()
                            .map(|k| IssuerKeyRow {
                                kid: k.kid.clone().unwrap_or_else(|| k.thumbprint()),
                                kind: k.kind(),
                                alg: k.alg.clone().unwrap_or_else(|| "any it makes".into()),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                fetch,
            }
        })
        .collect()
}

fn page(
    ctx: &Ctx<'_>,
    status: StatusCode,
    form: IssuerForm,
    error: Option<String>,
) -> Response<Body> {
    render(
        status,
        &IssuersPage {
            l: ctx.layout("Token issuers", "issuers"),
            app_id: ctx.app().to_string(),
            can_change: ctx.owner,
            issuers: rows(ctx),
            form,
            error,
        },
    )
}

pub(super) fn issuers_page(ctx: &Ctx<'_>) -> Response<Body> {
    let form = IssuerForm {
        user_claim: "sub".into(),
        ..IssuerForm::default()
    };
    page(ctx, StatusCode::OK, form, None)
}

pub(super) async fn add(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let field = |name: &str| {
        f.get(name)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let form = IssuerForm {
        name: field("name"),
        public_key: field("public_key"),
        kid: field("kid"),
        jwks_url: field("jwks_url"),
        iss: field("iss"),
        audiences: field("audiences"),
        user_claim: field("user_claim"),
        claims: field("claims"),
        algorithms: field("algorithms"),
    };
    let lines = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let claims: Result<Vec<_>, String> = lines(&form.claims)
        .iter()
        .map(|l| parse_claim_map(l))
        .collect();
    let claims = match claims {
        Ok(c) => c,
        Err(e) => return page(ctx, StatusCode::UNPROCESSABLE_ENTITY, form, Some(e)),
    };
    let algorithms: Vec<String> = form
        .algorithms
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let input = IssuerInput {
        name: form.name.clone(),
        iss: nonempty(&form.iss),
        audiences: lines(&form.audiences),
        user_claim: nonempty(&form.user_claim),
        claims: (!claims.is_empty()).then_some(claims),
        algorithms: (!algorithms.is_empty()).then_some(algorithms),
        jwks_url: nonempty(&form.jwks_url),
        public_keys: nonempty(&form.public_key)
            .map(|k| vec![k.into()])
            .unwrap_or_default(),
        kid: nonempty(&form.kid),
    };
    let config = match input.into_config() {
        Ok(c) => c,
        Err(e) => return page(ctx, StatusCode::UNPROCESSABLE_ENTITY, form, Some(e)),
    };
    match ctx
        .state
        .store
        .add_issuer(ctx.app(), config, ctx.actor(), now())
        .await
    {
        Ok(_) => redirect(&url(ctx.app())),
        Err(StoreError::Issuer(e)) => page(
            ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            form,
            Some(e.message()),
        ),
        Err(StoreError::WorkspaceNotFound) => not_found(Some(ctx.account)),
        Err(e) => unavailable(&e, Some(ctx.account)),
    }
}

pub(super) async fn remove(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let f = match read_form(ctx.state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let name = f.get("name").cloned().unwrap_or_default();
    match ctx
        .state
        .store
        .remove_issuer(ctx.app(), &name, ctx.actor(), now())
        .await
    {
        Ok(_) => redirect(&url(ctx.app())),
        Err(StoreError::Issuer(e)) => page(
            ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            IssuerForm::default(),
            Some(e.message()),
        ),
        Err(StoreError::WorkspaceNotFound) => not_found(Some(ctx.account)),
        Err(e) => unavailable(&e, Some(ctx.account)),
    }
}
