//! `migrate-to-postgres`: copy an embedded store into an empty PostgreSQL, with its secrets
//! sealed as they are (the instances then need the same master keys).

use super::CliResult;
use super::data_dir::{DataDir, keyring_from_env, with_store};
use crate::sealing;
use crate::store::{Store, postgres};

pub(super) fn migrate_to_postgres(mut data: DataDir, skip_unstorable: bool) -> CliResult {
    let Some(url) = data.database_url.clone() else {
        return Err("give the PostgreSQL database to copy into with --database-url".into());
    };
    if !keyring_from_env() && data.master_key_file.is_none() {
        // The secrets stay sealed as they are: the instances need the keys that sealed them.
        let path = sealing::default_key_file(&data.data_dir);
        if !path.exists() {
            return Err(format!(
                "no master key file at {}: give --master-key-file",
                path.display()
            )
            .into());
        }
        data.master_key_file = Some(path);
    }
    // Held until the copy is done: no server starts on the data dir meanwhile.
    let _not_served = crate::store::sqlite::refuse_if_served(&data.data_dir, "copying its store")?;
    // Opened as a store first and closed again: an embedded store written by an earlier version
    // gets its one-time upgrades (secrets bound to their key rows) before it is copied.
    let embedded = DataDir {
        database_url: None,
        ..data.clone()
    };
    with_store(&embedded, |_store| async move { Ok(()) })?;
    let sqlite = crate::store::sqlite::open_file(&data.data_dir)?;
    let key_file = data.master_key_file.clone();
    // Checked before the target is opened as a store (which needs the keys of what it holds),
    // and what it holds now is what a failed copy leaves.
    let target = postgres::PgOptions {
        pool_size: data.db_pool_size,
        ..postgres::PgOptions::new(url)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let before = runtime.block_on(postgres::import_target(&target))?;
    let copied = with_store(&data, |store| async move {
        let Store::Postgres(pg) = &store else {
            return Err("--database-url names no PostgreSQL database".into());
        };
        let counts = pg.import_embedded(&sqlite, skip_unstorable).await?;
        for (table, n) in counts {
            println!("{table}: {n} rows copied");
        }
        let keys = match key_file {
            Some(path) => format!(
                "--master-key-file {} (or its keys in {})",
                path.display(),
                sealing::MASTER_KEYS_ENV
            ),
            None => format!("the same {}", sealing::MASTER_KEYS_ENV),
        };
        println!(
            "done. Start every instance with --database-url and {keys}; keep the data dir until \
             they serve (it is no longer written to)."
        );
        Ok(())
    });
    if copied.is_err() {
        match runtime.block_on(postgres::drop_tables_created(&target, &before)) {
            Ok(dropped) if !dropped.is_empty() => eprintln!(
                "the copy failed: the {} tables it created in the target were dropped",
                dropped.len()
            ),
            Ok(_) => {}
            Err(e) => eprintln!("the copy failed, and dropping the tables it created failed: {e}"),
        }
    }
    copied
}
