//! Keeping the schema and the registry current: migrations under an advisory lock, and the
//! LISTEN connection and version poll that reload workspaces changed by any instance.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::types::Type;
use tokio_postgres::{AsyncMessage, IsolationLevel};

use super::{
    CHANNEL, ConfigSync, Listener, MAX_BACKOFF, MIGRATION_LOCK, MIGRATIONS, POLL_INTERVAL, PgConn,
    bounded, describe, pooled,
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
    tx.execute_typed(
        "SELECT pg_advisory_xact_lock($1)",
        &[(&MIGRATION_LOCK, Type::INT8)],
    )
    .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let found: i64 = tx
        .query_typed_one(
            "SELECT COALESCE(max(version), 0)::bigint FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    for (version, sql) in pending_migrations(MIGRATIONS, found)? {
        tx.batch_execute(sql).await?;
        let n = i32::try_from(version).unwrap_or(i32::MAX);
        tx.execute_typed(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[(&n, Type::INT4)],
        )
        .await?;
        tracing::info!(version = n, "postgres schema migrated");
    }
    // The identify batch's function, by the name of its text (a rolling upgrade's instances
    // each find their own); created once per database, under the lock.
    let function = &*super::batch::BATCH_FUNCTION;
    let exists = tx
        .query_typed_opt(
            "SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE p.proname = $1 AND n.nspname = current_schema()",
            &[(&function.name, Type::TEXT)],
        )
        .await?
        .is_some();
    if !exists {
        tx.batch_execute(&function.create).await?;
        tracing::info!(function = %function.name, "postgres identify batch function created");
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
        let version: i64 = client
            .query_typed_one("SELECT version FROM config_version", &[])
            .await?
            .get(0);
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
        .query_typed_one("SELECT version FROM config_version", &[])
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

/// How long the first listener session waits for its own test notification before deciding
/// that notifications do not come through its URL.
const PROBE_WAIT: Duration = Duration::from_secs(5);
/// How long the store's opening waits for that notification (a direct connection delivers it
/// in about a millisecond); after this the store opens anyway, relying on the poll until the
/// probe is heard or given up.
const PROBE_QUICK: Duration = Duration::from_millis(300);

/// What the listener learnt about its URL.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Heard {
    /// Not tried yet (the first session that connects tries).
    Untried,
    /// A notification sent from a pooled connection reached the LISTEN connection.
    Delivered,
}

/// LISTENs on a connection of its own and reloads on every notification; reconnects (with
/// backoff) when the connection is lost and then reloads everything, since notifications sent
/// while it was away are gone.
///
/// The first session proves that notifications arrive at all: it LISTENs on a channel of its
/// own, sends one notification there from a pooled connection and waits [`PROBE_WAIT`] for
/// it (the store opens after [`PROBE_QUICK`] at most). Through a transaction-mode pooler (PgBouncer `pool_mode = transaction`, Supabase's
/// port 6543) LISTEN runs on whichever server connection the pooler lends for that statement,
/// which then serves other clients: nothing ever reaches this connection. A pooler cannot be
/// asked what mode it runs in (PgBouncer passes `SHOW` to the server), so the outcome is what
/// decides, whatever lies in between. When the probe is not heard, the listener says so once
/// and stops; the 1 s version poll brings every change, and `--database-direct-url` is the
/// fix. The probe channel is unique to this process, so a LISTEN the pooler leaves behind on
/// a server connection never wakes anyone.
pub(super) async fn listen(
    listener: Listener,
    pool: Pool,
    hooks: Hooks,
    sync: Arc<ConfigSync>,
    op_timeout: Duration,
    mut stop: watch::Receiver<()>,
    ready: oneshot::Sender<()>,
) {
    let Listener {
        connect: (cfg, tls),
        direct,
    } = listener;
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(100);
    let mut heard = Heard::Untried;
    // When the listener's connection last failed, while it has not been back since.
    let mut down_since: Option<std::time::Instant> = None;
    let probe_channel = {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).expect("the operating system's random number generator failed");
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!("dropfix_probe_{hex}")
    };
    loop {
        let session = async {
            let (client, mut conn) =
                bounded(op_timeout, async { Ok(cfg.connect(tls.clone()).await?) }).await?;
            let (notify_tx, mut notify_rx) = mpsc::unbounded_channel::<String>();
            // The connection must be polled for the client to work at all; poll_message is
            // what hands out notifications (a plain `conn.await` would drop them).
            let driver = tokio::spawn(async move {
                loop {
                    match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                        Some(Ok(AsyncMessage::Notification(n))) => {
                            if notify_tx.send(n.channel().to_owned()).is_err() {
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
            if heard == Heard::Untried {
                let probed = probe(
                    &client,
                    &mut notify_rx,
                    &pool,
                    &probe_channel,
                    op_timeout,
                    &mut ready,
                );
                match probed.await {
                    Ok(true) => heard = Heard::Delivered,
                    Ok(false) => {
                        driver.abort();
                        return Ok(false);
                    }
                    Err(e) => {
                        driver.abort();
                        return Err(e);
                    }
                }
            }
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
            if let Some(since) = down_since.take() {
                tracing::info!(
                    down_secs = format_args!("{:.1}", since.elapsed().as_secs_f64()),
                    "workspace listener reconnected"
                );
            } else {
                tracing::debug!("listening for workspace changes");
            }
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
            Ok::<_, StoreError>(true)
        };
        tokio::select! {
            r = session => match r {
                Ok(true) => {}
                Ok(false) => {
                    let via = if direct { "--database-direct-url" } else { "--database-url" };
                    tracing::warn!(
                        "workspace changes made by other instances reach this one by the 1 s \
                         poll only: a notification sent through {via} never arrived, as happens \
                         behind a transaction-mode pooler (PgBouncer pool_mode = transaction, \
                         Supabase's port 6543); give a URL that reaches PostgreSQL directly or \
                         through a session-mode pool as --database-direct-url \
                         (DROPFIX_DATABASE_DIRECT_URL) for changes within milliseconds"
                    );
                    sync.listening.store(false, Ordering::Relaxed);
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                    return;
                }
                // Said once per outage (its retries at debug): a database that is away is
                // also logged by the store's outage tracker, and the 1 s poll covers changes.
                Err(e) if down_since.is_none() => {
                    down_since = Some(std::time::Instant::now());
                    tracing::warn!(
                        error = %e,
                        "workspace listener down; retrying with backoff (the 1 s poll still \
                         brings changes once the database answers)"
                    );
                }
                Err(e) => {
                    tracing::debug!(error = %e, retry_in = ?backoff, "workspace listener still down");
                }
            },
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

/// LISTENs on `channel`, notifies it from a pooled connection, and waits [`PROBE_WAIT`] for the
/// notification: whether notifications reach this connection at all (see [`listen`]). After
/// [`PROBE_QUICK`] without it, `ready` is answered, so the store opens without waiting longer.
async fn probe(
    client: &tokio_postgres::Client,
    notified: &mut mpsc::UnboundedReceiver<String>,
    pool: &Pool,
    channel: &str,
    op_timeout: Duration,
    ready: &mut Option<oneshot::Sender<()>>,
) -> Result<bool, StoreError> {
    bounded(op_timeout, async {
        Ok(client.batch_execute(&format!("LISTEN {channel}")).await?)
    })
    .await?;
    bounded(op_timeout, async {
        let sender = pool.get().await?;
        sender
            .execute_typed("SELECT pg_notify($1, '')", &[(&channel, Type::TEXT)])
            .await?;
        Ok(())
    })
    .await?;
    let started = tokio::time::Instant::now();
    let wait = async {
        while let Some(got) = notified.recv().await {
            if got == channel {
                return true;
            }
        }
        false
    };
    tokio::pin!(wait);
    let heard = match tokio::time::timeout(PROBE_QUICK, &mut wait).await {
        Ok(heard) => heard,
        Err(_) => {
            if let Some(tx) = ready.take() {
                let _ = tx.send(());
            }
            tokio::time::timeout_at(started + PROBE_WAIT, wait)
                .await
                .unwrap_or(false)
        }
    };
    if heard {
        bounded(op_timeout, async {
            Ok(client.batch_execute(&format!("UNLISTEN {channel}")).await?)
        })
        .await?;
    }
    Ok(heard)
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
