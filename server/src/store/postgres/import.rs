//! Copying an embedded store into PostgreSQL (`migrate-to-postgres`).

use deadpool_postgres::GenericClient;
use tokio_postgres::types::{ToSql, Type};

use super::batch::json_text_has_nul;
use super::{FIRST_WORKSPACE_LOCK, PgConn, PgOptions, PgStore, pg_config};
use crate::store::StoreError;
use crate::store::config;
use crate::store::sql::Sql;

impl PgStore {
    /// Copies everything an embedded store holds into this database, which must hold no
    /// workspace, user or console account yet, in one transaction: the same app ids, key ids
    /// and sealed secrets (so the instances need the embedded store's master keys), users,
    /// audit log, console accounts, roles and sessions, counts and recent rejections, and the
    /// admin token's hash. Users are copied in pages, so memory does not grow with their number.
    /// Not bounded by the database timeout: it takes as long as the data needs.
    pub async fn import_embedded(
        &self,
        from: &rusqlite::Connection,
        skip_unstorable: bool,
    ) -> Result<Vec<(&'static str, u64)>, StoreError> {
        let mut client = self.inner.pool.get().await?;
        let tx = client.transaction().await?;
        // Another importer (or a server creating its first workspace) waits, then sees data.
        tx.execute_typed(
            "SELECT pg_advisory_xact_lock($1)",
            &[(&FIRST_WORKSPACE_LOCK, Type::INT8)],
        )
        .await?;
        if holds_data(&*tx).await? {
            return Err(not_empty());
        }
        use rusqlite::OptionalExtension as _;
        // One snapshot of the embedded store for the whole copy.
        let snapshot = from.unchecked_transaction()?;
        let mut counts = Vec::new();
        macro_rules! copy {
            ($table:literal, $select:literal, $insert:literal, |$r:ident| [$($col:expr => $ty:ident),* $(,)?]) => {{
                let mut stmt = from.prepare($select)?;
                let mut rows = stmt.query([])?;
                let mut n = 0u64;
                while let Some($r) = rows.next()? {
                    // Unnamed, as every statement of this backend (see `super::typed`).
                    tx.execute_typed($insert, &[$((&$col as &(dyn ToSql + Sync), Type::$ty)),*]).await?;
                    n += 1;
                }
                counts.push(($table, n));
            }};
        }
        copy!(
            "meta",
            "SELECT key, value FROM meta",
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            |r| [r.get::<_, String>(0)? => TEXT, r.get::<_, String>(1)? => TEXT]
        );
        copy!(
            "workspaces",
            "SELECT app_id, name, strict, require_signed_claims, allowed_origins, created_at,
                 token_issuers
             FROM workspaces",
            "INSERT INTO workspaces (app_id, name, strict, require_signed_claims,
                 allowed_origins, created_at, token_issuers) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            |r| [
                r.get::<_, String>(0)? => TEXT,
                r.get::<_, String>(1)? => TEXT,
                r.get::<_, String>(2)? => TEXT,
                r.get::<_, bool>(3)? => BOOL,
                r.get::<_, String>(4)? => TEXT,
                r.get::<_, i64>(5)? => INT8,
                r.get::<_, String>(6)? => TEXT,
            ]
        );
        copy!(
            "keys",
            "SELECT id, app_id, secret, created_at, expires_at, label, created_by, last_used_at
             FROM keys",
            "INSERT INTO keys (id, app_id, secret, created_at, expires_at, label, created_by,
                 last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            |r| [
                r.get::<_, i64>(0)? => INT8,
                r.get::<_, String>(1)? => TEXT,
                r.get::<_, String>(2)? => TEXT,
                r.get::<_, i64>(3)? => INT8,
                r.get::<_, Option<i64>>(4)? => INT8,
                r.get::<_, String>(5)? => TEXT,
                r.get::<_, String>(6)? => TEXT,
                r.get::<_, Option<i64>>(7)? => INT8,
            ]
        );
        // Users, a page at a time in key order.
        let insert = "INSERT INTO users (app_id, user_id, verified, method, key_id, verified_at,
                 signed_at, name, email, plan, mrr, signup_date, custom, unverified_claims,
                 first_seen, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
        let mut page = from.prepare(
            "SELECT app_id, user_id, verified, method, key_id, verified_at, signed_at, name,
                 email, plan, mrr, signup_date, custom, unverified_claims, first_seen, last_seen
             FROM users WHERE (app_id, user_id) > (?1, ?2) ORDER BY app_id, user_id LIMIT 1000",
        )?;
        let (mut after, mut n) = ((String::new(), String::new()), 0u64);
        // Rows PostgreSQL would refuse (a NUL character, stored by versions that let it through):
        // named, or skipped and counted when asked.
        let mut refused: Vec<String> = Vec::new();
        loop {
            let mut rows = page.query(rusqlite::params![after.0, after.1])?;
            let mut last = None;
            while let Some(r) = rows.next()? {
                let (app, user): (String, String) = (r.get(0)?, r.get(1)?);
                let text: [(&str, Option<String>); 6] = [
                    ("method", r.get(3)?),
                    ("name", r.get(7)?),
                    ("email", r.get(8)?),
                    ("plan", r.get(9)?),
                    ("signup_date", r.get(11)?),
                    ("unverified_claims", r.get(13)?),
                ];
                let custom: String = r.get(12)?;
                // Plain text holds a NUL only raw; the JSON columns may hold one escaped.
                let is_json = |column: &str| matches!(column, "custom" | "unverified_claims");
                let unstorable = std::iter::once(("user_id", Some(user.clone())))
                    .chain(std::iter::once(("custom", Some(custom.clone()))))
                    .chain(text.iter().cloned())
                    .find(|(column, v)| {
                        v.as_deref().is_some_and(|v| {
                            v.contains('\0') || is_json(column) && json_text_has_nul(v)
                        })
                    })
                    .map(|(column, _)| column);
                if let Some(column) = unstorable {
                    refused.push(format!(
                        "workspace {app}, user {:?}: {column} holds a NUL character",
                        user
                    ));
                    last = Some((app, user));
                    continue;
                }
                let (verified, mrr): (bool, Option<f64>) = (r.get(2)?, r.get(10)?);
                let [key_id, verified_at, signed_at]: [Option<i64>; 3] =
                    [r.get(4)?, r.get(5)?, r.get(6)?];
                let (first_seen, last_seen): (i64, i64) = (r.get(14)?, r.get(15)?);
                let (text_t, int8) = (Type::TEXT, Type::INT8);
                let args: [(&(dyn ToSql + Sync), Type); 16] = [
                    (&app, text_t.clone()),
                    (&user, text_t.clone()),
                    (&verified, Type::BOOL),
                    (&text[0].1, text_t.clone()),
                    (&key_id, int8.clone()),
                    (&verified_at, int8.clone()),
                    (&signed_at, int8.clone()),
                    (&text[1].1, text_t.clone()),
                    (&text[2].1, text_t.clone()),
                    (&text[3].1, text_t.clone()),
                    (&mrr, Type::FLOAT8),
                    (&text[4].1, text_t.clone()),
                    (&custom, text_t.clone()),
                    (&text[5].1, text_t),
                    (&first_seen, int8.clone()),
                    (&last_seen, int8),
                ];
                tx.execute_typed(insert, &args).await?;
                n += 1;
                last = Some((app, user));
            }
            match last {
                Some(l) => after = l,
                None => break,
            }
        }
        if !refused.is_empty() && !skip_unstorable {
            let shown = refused.len().min(20);
            return Err(StoreError::Setup(format!(
                "{} stored user(s) cannot be stored in PostgreSQL, so nothing was copied:\n  {}{}\n\
                 fix or delete them in the embedded store (the console or the admin API), or copy \
                 everything else with --skip-unstorable",
                refused.len(),
                refused[..shown].join("\n  "),
                if refused.len() > shown { "\n  ..." } else { "" },
            )));
        }
        if !refused.is_empty() {
            counts.push((
                "users skipped (unstorable, --skip-unstorable)",
                refused.len() as u64,
            ));
        }
        counts.push(("users", n));
        copy!(
            "audit_log",
            "SELECT id, app_id, at, actor, action, detail FROM audit_log",
            "INSERT INTO audit_log (id, app_id, at, actor, action, detail)
             VALUES ($1, $2, $3, $4, $5, $6)",
            |r| [
                r.get::<_, i64>(0)? => INT8,
                r.get::<_, String>(1)? => TEXT,
                r.get::<_, i64>(2)? => INT8,
                r.get::<_, String>(3)? => TEXT,
                r.get::<_, String>(4)? => TEXT,
                r.get::<_, String>(5)? => TEXT,
            ]
        );
        copy!(
            "console_accounts",
            "SELECT id, email, password_phc, created_at, last_login_at FROM console_accounts",
            "INSERT INTO console_accounts (id, email, password_phc, created_at, last_login_at)
             VALUES ($1, $2, $3, $4, $5)",
            |r| [
                r.get::<_, i64>(0)? => INT8,
                r.get::<_, String>(1)? => TEXT,
                r.get::<_, String>(2)? => TEXT,
                r.get::<_, i64>(3)? => INT8,
                r.get::<_, Option<i64>>(4)? => INT8,
            ]
        );
        copy!(
            "console_members",
            "SELECT account_id, app_id, role FROM console_members",
            "INSERT INTO console_members (account_id, app_id, role) VALUES ($1, $2, $3)",
            |r| [
                r.get::<_, i64>(0)? => INT8,
                r.get::<_, String>(1)? => TEXT,
                r.get::<_, String>(2)? => TEXT
            ]
        );
        copy!(
            "console_sessions",
            "SELECT token_sha256, account_id, created_at, last_seen FROM console_sessions",
            "INSERT INTO console_sessions (token_sha256, account_id, created_at, last_seen)
             VALUES ($1, $2, $3, $4)",
            |r| [
                r.get::<_, Vec<u8>>(0)? => BYTEA,
                r.get::<_, i64>(1)? => INT8,
                r.get::<_, i64>(2)? => INT8,
                r.get::<_, i64>(3)? => INT8,
            ]
        );
        copy!(
            "console_invites",
            "SELECT token_sha256, app_id, email, role, created_by, created_at, expires_at
             FROM console_invites",
            "INSERT INTO console_invites (token_sha256, app_id, email, role, created_by,
                 created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            |r| [
                r.get::<_, Vec<u8>>(0)? => BYTEA,
                r.get::<_, String>(1)? => TEXT,
                r.get::<_, String>(2)? => TEXT,
                r.get::<_, String>(3)? => TEXT,
                r.get::<_, String>(4)? => TEXT,
                r.get::<_, i64>(5)? => INT8,
                r.get::<_, i64>(6)? => INT8,
            ]
        );
        copy!(
            "call_counts",
            "SELECT app_id, minute, verified_seed, verified_claims, unverified, would_reject,
                 rejected, seed_with_traits FROM call_counts",
            "INSERT INTO call_counts (app_id, minute, verified_seed, verified_claims, unverified,
                 would_reject, rejected, seed_with_traits) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            |r| [
                r.get::<_, String>(0)? => TEXT,
                r.get::<_, i64>(1)? => INT8,
                r.get::<_, i64>(2)? => INT8,
                r.get::<_, i64>(3)? => INT8,
                r.get::<_, i64>(4)? => INT8,
                r.get::<_, i64>(5)? => INT8,
                r.get::<_, i64>(6)? => INT8,
                r.get::<_, i64>(7)? => INT8,
            ]
        );
        copy!(
            "recent_rejections",
            "SELECT id, app_id, at, code, enforced, key_id, origin, user_id
             FROM recent_rejections",
            "INSERT INTO recent_rejections (id, app_id, at, code, enforced, key_id, origin,
                 user_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            |r| [
                r.get::<_, i64>(0)? => INT8,
                r.get::<_, String>(1)? => TEXT,
                r.get::<_, i64>(2)? => INT8,
                r.get::<_, String>(3)? => TEXT,
                r.get::<_, bool>(4)? => BOOL,
                r.get::<_, Option<i64>>(5)? => INT8,
                r.get::<_, Option<String>>(6)? => TEXT,
                r.get::<_, Option<String>>(7)? => TEXT,
            ]
        );
        // Ids were copied as they were: new rows continue after them, and after any id the
        // embedded store ever gave (AUTOINCREMENT never reuses one; a retired key's id must
        // not come back, users and rejections still name it).
        for table in ["keys", "audit_log", "console_accounts", "recent_rejections"] {
            let given: i64 = from
                .query_row(
                    "SELECT seq FROM sqlite_sequence WHERE name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            tx.execute_typed(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                         GREATEST((SELECT COALESCE(max(id), 0) FROM {table}), $1) + 1, false)"
                ),
                &[(&given, Type::INT8)],
            )
            .await?;
        }
        drop(snapshot);
        // The instances must open every copied secret with the keys this import was given:
        // checked before the commit, so a wrong key file leaves the database empty.
        config::load_workspaces(&mut PgConn(&tx), &self.inner.hooks.keyring.get(), None).await?;
        PgConn(&tx).config_changed().await?;
        tx.commit().await?;
        drop(client);
        self.reload().await?;
        Ok(counts)
    }
}

/// Whether the database holds workspaces, users or console accounts (its schema exists).
async fn holds_data(c: &impl tokio_postgres::GenericClient) -> Result<bool, StoreError> {
    let held: i64 = c
        .query_typed_one(
            "SELECT (SELECT count(*) FROM workspaces) + (SELECT count(*) FROM users)
                  + (SELECT count(*) FROM console_accounts)",
            &[],
        )
        .await?
        .get(0);
    Ok(held > 0)
}

fn not_empty() -> StoreError {
    StoreError::Setup(
        "the PostgreSQL database already holds workspaces, users or console accounts; import \
         into an empty one (before any workspace is created on it, and before a server started \
         with --create-dev-workspace creates one); nothing was changed"
            .into(),
    )
}

/// A plain connection for what runs before the target is opened as a store.
async fn connect(opts: &PgOptions) -> Result<tokio_postgres::Client, StoreError> {
    let (cfg, tls) = pg_config(opts)?;
    let (client, connection) = cfg.connect(tls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The tables of the target's schema now. The first check of `migrate-to-postgres`, before it
/// opens the target as a store (which needs the master keys of whatever it holds): a database
/// holding data is refused as such. The tables returned are what a failed import must leave
/// ([`drop_tables_created`]).
pub async fn import_target(opts: &PgOptions) -> Result<Vec<String>, StoreError> {
    let client = connect(opts).await?;
    let tables: Vec<String> = client
        .query_typed(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if tables.iter().any(|t| t == "workspaces") && holds_data(&client).await? {
        return Err(not_empty());
    }
    Ok(tables)
}

/// After a failed import: drops the tables that were not there before it (`before`, from
/// [`import_target`]), so the target is left as it was; returns their names.
pub async fn drop_tables_created(
    opts: &PgOptions,
    before: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut client = connect(opts).await?;
    let tx = client.transaction().await?;
    // As an import or a first workspace does: whoever else writes there now waits for this.
    tx.execute_typed(
        "SELECT pg_advisory_xact_lock($1)",
        &[(&FIRST_WORKSPACE_LOCK, Type::INT8)],
    )
    .await?;
    let workspaces = tx
        .query_typed_opt("SELECT to_regclass('workspaces')::text", &[])
        .await?
        .and_then(|r| r.get::<_, Option<String>>(0));
    if workspaces.is_some() && holds_data(&tx).await? {
        // Data arrived meanwhile (another import, a server creating a workspace, or this copy
        // committed and failed after): never ours to drop.
        return Ok(Vec::new());
    }
    let now: Vec<String> = tx
        .query_typed(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let created: Vec<String> = now.into_iter().filter(|t| !before.contains(t)).collect();
    for table in &created {
        let quoted = table.replace('"', "\"\"");
        tx.batch_execute(&format!("DROP TABLE IF EXISTS \"{quoted}\" CASCADE"))
            .await?;
    }
    // The migrations that created the tables also created the identify batch's function.
    if created.iter().any(|t| t == "users") {
        let name = &super::batch::BATCH_FUNCTION.name;
        tx.batch_execute(&format!("DROP FUNCTION IF EXISTS {name}"))
            .await?;
    }
    tx.commit().await?;
    Ok(created)
}
