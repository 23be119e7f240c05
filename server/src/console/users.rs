//! A workspace's stored users: the list (all, verified or unverified, searched by id, name or
//! email, paged; name, email and plan shown trusted, or labelled as claims), one
//! user's trusted values beside what browsers only claimed, and deleting a user's data. (The CSV
//! export of the verified users is [`super::export`].)

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::context::{
    Ctx, enc, fmt_opt_time, fmt_time, not_found, query, redirect, render, unavailable, user_url,
};
use super::pages::{ConfirmPage, SHOWS, TraitCell, UserPage, UserRow, UsersPage};
use crate::users::UserQuery;
use crate::web::{Body, now};

/// Users per page of the users list.
const USERS_PER_PAGE: usize = 50;

pub(super) async fn users_page(ctx: &Ctx<'_>, req: &Request<Incoming>) -> Response<Body> {
    let q = query(req);
    let show = match q.get("show").map(String::as_str) {
        Some("verified") => "verified",
        Some("unverified") => "unverified",
        _ => "all",
    };
    let search = q
        .get("q")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let query = UserQuery {
        verified: match show {
            "verified" => Some(true),
            "unverified" => Some(false),
            _ => None,
        },
        search: search.clone(),
        after: q.get("after").cloned().filter(|s| !s.is_empty()),
        limit: USERS_PER_PAGE + 1,
    };
    let mut users = match ctx.state.store.list_users(ctx.app(), &query).await {
        Ok(u) => u,
        Err(e) => return unavailable(&e, Some(ctx.account)),
    };
    let next = (users.len() > USERS_PER_PAGE).then(|| {
        users.truncate(USERS_PER_PAGE);
        let last = users.last().map(|u| u.user_id.as_str()).unwrap_or_default();
        let mut qs = form_urlencoded::Serializer::new(String::new());
        qs.append_pair("show", show);
        if let Some(s) = &search {
            qs.append_pair("q", s);
        }
        qs.append_pair("after", last);
        format!("/console/w/{}/users?{}", enc(ctx.app()), qs.finish())
    });
    let rows = users
        .into_iter()
        .map(|u| {
            let (trusted, claimed) = u.trusted_and_claimed();
            // A trusted value when there is one, else what a browser claimed, labelled so.
            let cell = |t: Option<String>, c: Option<String>| match (t, c) {
                (Some(v), _) => TraitCell {
                    value: v,
                    claimed: false,
                },
                (None, Some(v)) => TraitCell {
                    value: v,
                    claimed: true,
                },
                (None, None) => TraitCell {
                    value: "-".into(),
                    claimed: false,
                },
            };
            UserRow {
                url: user_url(ctx.app(), &u.user_id, false),
                traits: [
                    cell(trusted.name, claimed.name),
                    cell(trusted.email, claimed.email),
                    cell(trusted.plan, claimed.plan),
                ],
                method: u.method.unwrap_or_else(|| "-".into()),
                last_seen: fmt_time(u.last_seen),
                verified: u.verified,
                user_id: u.user_id,
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &UsersPage {
            l: ctx.layout("Users", "users"),
            app_id: ctx.app().to_string(),
            shows: SHOWS,
            show,
            q: search.unwrap_or_default(),
            rows,
            next,
        },
    )
}

fn json_field(v: &serde_json::Value, name: &str) -> String {
    match v.get(name) {
        None | Some(serde_json::Value::Null) => "-".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

pub(super) async fn user_page(ctx: &Ctx<'_>, user_id: &str) -> Response<Body> {
    let u = match ctx.state.store.get_user(ctx.app(), user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return not_found(Some(ctx.account)),
        Err(e) => return unavailable(&e, Some(ctx.account)),
    };
    // A verified user's columns hold trusted values and its later claims sit aside; a
    // never-verified user's columns hold only what browsers claimed.
    let columns = serde_json::to_value(&u).unwrap_or_default();
    let aside = u.unverified_claims.clone().unwrap_or_default();
    let traits = ["name", "email", "plan", "mrr", "signup_date"]
        .into_iter()
        .map(|t| {
            if u.verified {
                (t, json_field(&columns, t), json_field(&aside, t))
            } else {
                (t, "-".to_string(), json_field(&columns, t))
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &UserPage {
            l: ctx.layout("User", "users"),
            can_change: ctx.owner,
            user_id: u.user_id.clone(),
            delete_url: user_url(ctx.app(), &u.user_id, true),
            verified: u.verified,
            method: u.method.clone().unwrap_or_else(|| "-".into()),
            key: u.key_id.map_or_else(|| "-".into(), |k| k.to_string()),
            verified_at: fmt_opt_time(u.verified_at),
            signed_at: fmt_opt_time(u.signed_at),
            first_seen: fmt_time(u.first_seen),
            last_seen: fmt_time(u.last_seen),
            traits,
            custom: serde_json::to_string_pretty(&u.custom).unwrap_or_default(),
            claimed_custom: aside
                .get("custom")
                .filter(|_| u.verified)
                .map(|c| serde_json::to_string_pretty(c).unwrap_or_default()),
        },
    )
}

pub(super) async fn delete_user_confirm(ctx: &Ctx<'_>, user_id: &str) -> Response<Body> {
    match ctx.state.store.get_user(ctx.app(), user_id).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(Some(ctx.account)),
        Err(e) => return unavailable(&e, Some(ctx.account)),
    }
    render(
        StatusCode::OK,
        &ConfirmPage {
            l: ctx.layout("Delete a user's data", "users"),
            paragraphs: vec![format!(
                "Delete everything stored about user {user_id:?}: trusted values, claims and \
                 custom traits. If the user's browser calls identify() again, the user is \
                 stored again from that call."
            )],
            action: user_url(ctx.app(), user_id, true),
            hidden: vec![],
            choices_legend: String::new(),
            choices_name: "",
            choices: vec![],
            button: "Delete this user's data".into(),
            button_class: "danger",
            cancel: user_url(ctx.app(), user_id, false),
            can_proceed: true,
        },
    )
}

pub(super) async fn delete_user(ctx: &Ctx<'_>, user_id: &str) -> Response<Body> {
    match ctx
        .state
        .store
        .delete_user(ctx.app(), user_id, ctx.actor(), now())
        .await
    {
        Ok(true) => redirect(&format!("/console/w/{}/users?deleted=1", enc(ctx.app()))),
        Ok(false) => not_found(Some(ctx.account)),
        Err(e) => unavailable(&e, Some(ctx.account)),
    }
}
