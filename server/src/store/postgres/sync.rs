//! Keeping the schema and the registry current: migrations under an advisory lock, and the
//! LISTEN connection and version poll that reload workspaces changed by any instance.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::{AsyncMessage, IsolationLevel};

use super::{
    CHANNEL, ConfigSync, MAX_BACKOFF, MIGRATION_LOCK, MIGRATIONS, POLL_INTERVAL, PgConn, bounded,
    describe, pooled,
};
use crate::sealing::Keyring;
use crate::store::sql::pending_migrations;
use crate::store::{Hooks, StoreError, config};

// ---------------------------------------------------------------------------------------------
// Migrations

pub(super) async fn migrate(pool: &Pool, ring: &Keyring) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Held until COMMIT: a second instance starting now waits here, then finds the work done.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let found: i64 = tx
        .query_one(
            "SELECT COALESCE(max(version), 0)::bigint FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    for (version, sql) in pending_migrations(MIGRATIONS, found)? {
        tx.batch_execute(sql).await?;
        let n = i32::try_from(version).unwrap_or(i32::MAX);
        tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&n])
            .await?;
        tracing::info!(version = n, "postgres schema migrated");
    }
    // Under the same lock: instances starting together upgrade the stored secrets once.
    config::upgrade_secrets(&mut PgConn(&tx), ring).await?;
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Keeping the registry current

/// Reloads the registry: always when `force`, else only if `config_version` moved since the
/// last load. The version and the workspaces come from one snapshot, so the version recorded is
/// exactly the one the registry reflects.
pub(super) async fn reload(
    pool: &Pool,
    hooks: &Hooks,
    sync: &ConfigSync,
    force: bool,
) -> Result<(), StoreError> {
    let mut seen = sync.seen.lock().await;
    let mut client = pooled(pool, &hooks.metrics).await?;
    if !force {
        let stmt = client
            .prepare_cached("SELECT version FROM config_version")
            .await?;
        let version: i64 = client.query_one(&stmt, &[]).await?.get(0);
        if *seen == Some(version) {
            return Ok(());
        }
    }
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let version: i64 = tx
        .query_one("SELECT version FROM config_version", &[])
        .await?
        .get(0);
    let workspaces =
        match config::load_workspaces(&mut PgConn(&tx), &hooks.keyring.get(), None).await {
            Ok(w) => w,
            Err(e) => {
                crate::store::reload_failed(&hooks.registry, &e);
                // Forget the version, so the poll retries even if nothing changes meanwhile (a
                // key file mended after a forced reload failed).
                *seen = None;
                return Err(e);
            }
        };
    tx.commit().await?;
    if !force {
        tracing::info!(
            workspaces = workspaces.len(),
            version,
            "workspaces reloaded"
        );
    }
    hooks.registry.replace(workspaces);
    *seen = Some(version);
    sync.loaded.store(version, Ordering::Relaxed);
    Ok(())
}

/// LISTENs on a connection of its own and reloads on every notification; reconnects (with
/// backoff) when the connection is lost and then reloads everything, since notifications sent
/// while it was away are gone.
pub(super) async fn listen(
    (cfg, tls): (
        tokio_postgres::Config,
        tokio_postgres_rustls::MakeRustlsConnect,
    ),
    pool: Pool,
    hooks: Hooks,
    sync: Arc<ConfigSync>,
    op_timeout: Duration,
    mut stop: watch::Receiver<()>,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(100);
    loop {
        let session = async {
            let (client, mut conn) =
                bounded(op_timeout, async { Ok(cfg.connect(tls.clone()).await?) }).await?;
            let (notify_tx, mut notify_rx) = mpsc::unbounded_channel::<()>();
            // The connection must be polled for the client to work at all; poll_message is
            // what hands out notifications (a plain `conn.await` would drop them).
            let driver = tokio::spawn(async move {
                loop {
                    match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                        Some(Ok(AsyncMessage::Notification(_))) => {
                            if notify_tx.send(()).is_err() {
                                break;
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            tracing::warn!(error = %describe(&e), "listener connection lost");
                            break;
                        }
                        None => break,
                    }
                }
            });
            let listening = async {
                bounded(op_timeout, async {
                    Ok(client.batch_execute(&format!("LISTEN {CHANNEL}")).await?)
                })
                .await?;
                // Whatever changed while nobody listened.
                bounded(op_timeout, reload(&pool, &hooks, &sync, true)).await?;
                Ok::<_, StoreError>(())
            }
            .await;
            if let Err(e) = listening {
                driver.abort();
                return Err(e);
            }
            tracing::debug!("listening for workspace changes");
            sync.listening.store(true, Ordering::Relaxed);
            if let Some(tx) = ready.take() {
                let _ = tx.send(());
            }
            backoff = Duration::from_millis(100);
            while notify_rx.recv().await.is_some() {
                // One reload covers every notification already queued.
                while notify_rx.try_recv().is_ok() {}
                // A failed reload is logged by `reload_failed` or retried by the poll.
                if let Err(e) = bounded(op_timeout, reload(&pool, &hooks, &sync, false)).await {
                    tracing::debug!(error = %e, "reloading workspaces after a notification failed");
                }
            }
            drop(client);
            Ok::<_, StoreError>(())
        };
        tokio::select! {
            r = session => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, retry_in = ?backoff, "workspace listener down");
                }
            }
            _ = stop.changed() => return,
        }
        sync.listening.store(false, Ordering::Relaxed);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The safety net: compares `config_version` every second and reloads when it moved.
pub(super) async fn poll_version(
    pool: Pool,
    hooks: Hooks,
    sync: Arc<ConfigSync>,
    op_timeout: Duration,
    mut stop: watch::Receiver<()>,
) {
    let mut interval = tokio::time::interval(POLL_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = bounded(op_timeout, reload(&pool, &hooks, &sync, false)).await {
            tracing::debug!(error = %e, "config version poll failed");
        }
    }
}
