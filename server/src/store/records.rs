//! Reading and deleting stored users, and reading the audit log. Written once for every
//! backend, over [`Sql`]. (Users are written by each backend's batched identify upsert.)

use serde_json::{Value as Json, json};

use super::config::audit;
use super::sql::{Row, Sql, args};
use super::{AuditEntry, StoreError};
use crate::users::{UserQuery, UserRecord};

/// The user columns in [`user_from_row`]'s order.
const USER_COLUMNS: &str = "user_id, verified, method, verified_at, signed_at, name, email, \
     plan, mrr, signup_date, custom, unverified_claims, first_seen, last_seen, key_id";

fn user_from_row(r: &Row) -> Result<UserRecord, StoreError> {
    let json_col = |i: usize| -> Result<Option<Json>, StoreError> {
        Ok(r.opt_str(i)?.and_then(|t| serde_json::from_str(t).ok()))
    };
    Ok(UserRecord {
        user_id: r.text(0)?,
        verified: r.bool(1)?,
        method: r.opt_text(2)?,
        verified_at: r.opt_i64(3)?,
        signed_at: r.opt_i64(4)?,
        name: r.opt_text(5)?,
        email: r.opt_text(6)?,
        plan: r.opt_text(7)?,
        mrr: r.opt_f64(8)?,
        signup_date: r.opt_text(9)?,
        custom: json_col(10)?.unwrap_or_else(|| Json::Object(serde_json::Map::new())),
        unverified_claims: json_col(11)?,
        first_seen: r.i64(12)?,
        last_seen: r.i64(13)?,
        key_id: r.opt_i64(14)?,
    })
}

pub(crate) async fn get_user(
    c: &mut impl Sql,
    app_id: &str,
    user_id: &str,
) -> Result<Option<UserRecord>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE app_id = $1 AND user_id = $2");
    c.row(&sql, args![app_id, user_id])
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

/// `LIKE` pattern for "contains", with the wildcards in the search text escaped.
fn contains_pattern(search: &str) -> String {
    let mut p = String::with_capacity(search.len() + 2);
    p.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Users in user-id order (byte order on every backend, so cursors page alike) after
/// `q.after`, optionally only (un)verified ones or those whose id, name or email contains
/// `q.search` (ASCII case folded, as every backend's case-insensitive LIKE does on these
/// columns).
pub(crate) async fn list_users(
    c: &mut impl Sql,
    app_id: &str,
    q: &UserQuery,
) -> Result<Vec<UserRecord>, StoreError> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE app_id = $1
         AND (CAST($2 AS BOOLEAN) IS NULL OR verified = $2) AND user_id > $3
         AND (CAST($4 AS TEXT) IS NULL OR user_id {like} $4 ESCAPE '\\'
              OR name {like} $4 ESCAPE '\\' OR email {like} $4 ESCAPE '\\')
         ORDER BY user_id LIMIT $5",
        like = c.ilike()
    );
    let pattern = q.search.as_deref().map(contains_pattern);
    let args = args![
        app_id,
        q.verified,
        q.after.as_deref().unwrap_or(""),
        pattern.as_deref(),
        i64::try_from(q.limit).unwrap_or(i64::MAX),
    ];
    c.rows_as(&sql, args, user_from_row).await
}

/// Deletes one user's stored data (audited); `false` when there was none.
pub(crate) async fn delete_user(
    c: &mut impl Sql,
    app_id: &str,
    user_id: &str,
    actor: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let n = c
        .exec(
            "DELETE FROM users WHERE app_id = $1 AND user_id = $2",
            args![app_id, user_id],
        )
        .await?;
    if n > 0 {
        let detail = json!({"user_id": user_id});
        audit(c, app_id, actor, "user.delete", detail, now).await?;
    }
    Ok(n > 0)
}

/// The newest audit entries of a workspace, newest first.
pub(crate) async fn audit_log(
    c: &mut impl Sql,
    app_id: &str,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    c.rows_as(
        "SELECT at, actor, action, detail FROM audit_log WHERE app_id = $1
         ORDER BY id DESC LIMIT $2",
        args![app_id, i64::try_from(limit).unwrap_or(i64::MAX)],
        |r| {
            Ok(AuditEntry {
                at: r.i64(0)?,
                actor: r.text(1)?,
                action: r.text(2)?,
                detail: serde_json::from_str(r.str(3)?).unwrap_or(Json::Null),
            })
        },
    )
    .await
}
