//! Console accounts, their roles in workspaces, and their sessions, as stored. Written once for
//! every backend, over [`Sql`]. Emails are stored lower-cased; a session is stored as the
//! SHA-256 of its token, never the token.

use std::collections::HashMap;

use serde_json::json;

use super::config::audit;
use super::sql::{Row, RowLock, Sql, args};
use super::{Account, AccountChange, AccountLogin, Membership, Role, SessionRules, StoreError};

/// Creates an account; `None` when the email is taken.
pub(crate) async fn create_account(
    c: &mut impl Sql,
    email: &str,
    password_phc: &str,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let row = c
        .row(
            "INSERT INTO console_accounts (email, password_phc, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (email) DO NOTHING RETURNING id",
            args![&email.to_lowercase(), password_phc, now],
        )
        .await?;
    row.map(|r| r.i64(0)).transpose()
}

/// The id of the account with this (lower-cased) email, locked as asked.
async fn account_by_email(
    c: &mut impl Sql,
    email: &str,
    lock: Option<RowLock>,
) -> Result<Option<i64>, StoreError> {
    let lock = lock.map_or("", |l| c.row_lock(l));
    let sql = format!("SELECT id FROM console_accounts WHERE email = $1{lock}");
    c.row(&sql, args![email])
        .await?
        .map(|r| r.i64(0))
        .transpose()
}

/// Gives an account a role in a workspace (replacing its role there); `false` when no account
/// has this email.
pub(crate) async fn add_member(
    c: &mut impl Sql,
    email: &str,
    app_id: &str,
    role: Role,
    actor: &str,
    now: i64,
) -> Result<bool, StoreError> {
    // Share-locked: the workspace cannot vanish before the membership commits.
    let sql = format!(
        "SELECT 1 FROM workspaces WHERE app_id = $1{}",
        c.row_lock(RowLock::Share)
    );
    c.row(&sql, args![app_id])
        .await?
        .ok_or(StoreError::WorkspaceNotFound)?;
    let email = email.to_lowercase();
    let Some(account_id) = account_by_email(c, &email, None).await? else {
        return Ok(false);
    };
    c.exec(
        "INSERT INTO console_members (account_id, app_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (account_id, app_id) DO UPDATE SET role = excluded.role",
        args![account_id, app_id, role.as_str()],
    )
    .await?;
    let detail = json!({"email": email, "role": role.as_str()});
    audit(c, app_id, actor, "member.set", detail, now).await?;
    Ok(true)
}

/// Takes console access away ([`AccountChange`]); `false` when no account has this email (or,
/// for a removal, it is not a member there).
pub(crate) async fn change_account(
    c: &mut impl Sql,
    email: &str,
    change: &AccountChange,
    actor: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let email = email.to_lowercase();
    let Some(id) = account_by_email(c, &email, Some(RowLock::Update)).await? else {
        return Ok(false);
    };
    match change {
        AccountChange::RemoveFrom(app_id) => {
            let n = c
                .exec(
                    "DELETE FROM console_members WHERE account_id = $1 AND app_id = $2",
                    args![id, app_id],
                )
                .await?;
            if n == 0 {
                return Ok(false);
            }
            let detail = json!({"email": email});
            audit(c, app_id, actor, "member.remove", detail, now).await?;
        }
        AccountChange::Delete => {
            for m in memberships(c, id).await? {
                let detail = json!({"email": email, "account_deleted": true});
                audit(c, &m.app_id, actor, "member.remove", detail, now).await?;
            }
            // Explicitly, not by ON DELETE CASCADE: SQLite enforces foreign keys only when
            // asked to.
            c.exec(
                "DELETE FROM console_sessions WHERE account_id = $1",
                args![id],
            )
            .await?;
            c.exec(
                "DELETE FROM console_members WHERE account_id = $1",
                args![id],
            )
            .await?;
            c.exec("DELETE FROM console_accounts WHERE id = $1", args![id])
                .await?;
        }
        AccountChange::SetPassword(phc) => {
            c.exec(
                "UPDATE console_accounts SET password_phc = $1 WHERE id = $2",
                args![phc, id],
            )
            .await?;
            c.exec(
                "DELETE FROM console_sessions WHERE account_id = $1",
                args![id],
            )
            .await?;
        }
    }
    Ok(true)
}

/// A membership row; an unreadable role fails closed: look only.
fn membership(r: &Row, app: usize, role: usize) -> Result<Membership, StoreError> {
    Ok(Membership {
        app_id: r.text(app)?,
        role: Role::parse(r.str(role)?).unwrap_or(Role::Viewer),
    })
}

async fn memberships(c: &mut impl Sql, account_id: i64) -> Result<Vec<Membership>, StoreError> {
    c.rows_as(
        "SELECT app_id, role FROM console_members WHERE account_id = $1 ORDER BY app_id",
        args![account_id],
        |r| membership(r, 0, 1),
    )
    .await
}

async fn account(c: &mut impl Sql, id: i64) -> Result<Option<Account>, StoreError> {
    let Some(row) = c
        .row(
            "SELECT email, created_at FROM console_accounts WHERE id = $1",
            args![id],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Account {
        id,
        email: row.text(0)?,
        created_at: row.i64(1)?,
        memberships: memberships(c, id).await?,
    }))
}

/// Every account with its memberships, by email (run in one snapshot, so a membership never
/// names an account not listed).
pub(crate) async fn list_accounts(c: &mut impl Sql) -> Result<Vec<Account>, StoreError> {
    let accounts = c
        .rows(
            "SELECT id, email, created_at FROM console_accounts ORDER BY email",
            &[],
        )
        .await?;
    let members = c
        .rows(
            "SELECT account_id, app_id, role FROM console_members ORDER BY app_id",
            &[],
        )
        .await?;
    let mut by_account: HashMap<i64, Vec<Membership>> = HashMap::new();
    for m in &members {
        by_account
            .entry(m.i64(0)?)
            .or_default()
            .push(membership(m, 1, 2)?);
    }
    accounts
        .iter()
        .map(|a| {
            let id = a.i64(0)?;
            Ok(Account {
                id,
                email: a.text(1)?,
                created_at: a.i64(2)?,
                memberships: by_account.remove(&id).unwrap_or_default(),
            })
        })
        .collect()
}

/// The account a login names (by email, case-insensitively).
pub(crate) async fn account_login(
    c: &mut impl Sql,
    email: &str,
) -> Result<Option<AccountLogin>, StoreError> {
    let row = c
        .row(
            "SELECT id, password_phc FROM console_accounts WHERE email = $1",
            args![&email.to_lowercase()],
        )
        .await?;
    row.map(|r| {
        Ok(AccountLogin {
            id: r.i64(0)?,
            password_phc: r.text(1)?,
        })
    })
    .transpose()
}

/// Stores a new session, notes the account's login time, and forgets every session that has
/// ended under `rules`.
pub(crate) async fn create_session(
    c: &mut impl Sql,
    token_sha256: &[u8; 32],
    account_id: i64,
    rules: SessionRules,
    now: i64,
) -> Result<(), StoreError> {
    let idle_before = now.saturating_sub(rules.idle_secs);
    let absolute_before = now.saturating_sub(rules.absolute_secs);
    c.exec(
        "DELETE FROM console_sessions WHERE last_seen <= $1 OR created_at <= $2",
        args![idle_before, absolute_before],
    )
    .await?;
    c.exec(
        "INSERT INTO console_sessions (token_sha256, account_id, created_at, last_seen)
         VALUES ($1, $2, $3, $3)",
        args![&token_sha256[..], account_id, now],
    )
    .await?;
    // The Team page's "last login".
    c.exec(
        "UPDATE console_accounts SET last_login_at = $1 WHERE id = $2",
        args![now, account_id],
    )
    .await?;
    Ok(())
}

/// The account of a live session, marking it used at `now`; an ended session is deleted and
/// gives `None`.
pub(crate) async fn resume_session(
    c: &mut impl Sql,
    token_sha256: &[u8; 32],
    rules: SessionRules,
    now: i64,
) -> Result<Option<Account>, StoreError> {
    let token = &token_sha256[..];
    // Locked: a logout or expiry on another instance is not undone by this request.
    let sql = format!(
        "SELECT account_id, created_at, last_seen FROM console_sessions
         WHERE token_sha256 = $1{}",
        c.row_lock(RowLock::Update)
    );
    let Some(row) = c.row(&sql, args![token]).await? else {
        return Ok(None);
    };
    let (account_id, created_at, last_seen) = (row.i64(0)?, row.i64(1)?, row.i64(2)?);
    let idle_over = now.saturating_sub(last_seen) >= rules.idle_secs;
    let absolute_over = now.saturating_sub(created_at) >= rules.absolute_secs;
    if idle_over || absolute_over {
        delete_session(c, token_sha256).await?;
        return Ok(None);
    }
    if now > last_seen {
        c.exec(
            "UPDATE console_sessions SET last_seen = $2 WHERE token_sha256 = $1",
            args![token, now],
        )
        .await?;
    }
    account(c, account_id).await
}

/// Ends a session (logout).
pub(crate) async fn delete_session(
    c: &mut impl Sql,
    token_sha256: &[u8; 32],
) -> Result<(), StoreError> {
    c.exec(
        "DELETE FROM console_sessions WHERE token_sha256 = $1",
        args![&token_sha256[..]],
    )
    .await?;
    Ok(())
}
