//! The cell's own SQLite store (`<state dir>/state/openclaw.sqlite`), opened by
//! the admin only while no gateway runs on it: a restore's staged copy, a
//! sleeping cell's stopped container. SQLite may make its `-wal`/`-shm` files
//! anew as the admin's user; they are handed back to the file's owner (the
//! cell's user) before returning, or the gateway could not open its store.

use std::path::Path;

use anyhow::Context;

/// Where OpenClaw keeps its SQLite state, under the state dir.
const STATE_DB: &str = "state/openclaw.sqlite";

/// Runs `work` on the cell's store; `None` when the cell has none yet.
///
/// # Errors
///
/// The store cannot be opened or `work` fails.
pub(crate) fn with_cell_db<T>(
    state_dir: &Path,
    work: impl FnOnce(&rusqlite::Connection) -> anyhow::Result<T>,
) -> anyhow::Result<Option<T>> {
    use std::os::unix::fs::MetadataExt;
    let db_path = state_dir.join(STATE_DB);
    let Ok(meta) = std::fs::metadata(&db_path) else {
        return Ok(None);
    };
    let (uid, gid) = (meta.uid(), meta.gid());
    let result = (|| {
        let db = rusqlite::Connection::open(&db_path)
            .with_context(|| format!("cannot open {}", db_path.display()))?;
        let result = work(&db)?;
        db.close()
            .map_err(|(_, err)| err)
            .with_context(|| format!("cannot close {}", db_path.display()))?;
        anyhow::Ok(result)
    })();
    let dir = db_path.parent().unwrap_or(state_dir);
    for entry in std::fs::read_dir(dir)?.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("openclaw.sqlite") {
            std::os::unix::fs::chown(entry.path(), Some(uid), Some(gid))
                .with_context(|| format!("cannot hand {} to the cell", entry.path().display()))?;
        }
    }
    result.map(Some)
}

/// Whether `table` exists in the store.
pub(crate) fn has_table(db: &rusqlite::Connection, table: &str) -> anyhow::Result<bool> {
    let count: i64 = db.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |row| row.get(0),
    )?;
    Ok(count > 0)
}

/// Deletes the leases in a restored state's store. They name a process of the
/// cell the copy was taken from (pid, host, start time); a new cell reclaims a
/// dead owner's lease only on the same host name, so with any other name (a
/// restore `--as`, a drill) the gateway refused to start until the
/// five-minute lease ran out. Every process they name is gone.
pub(crate) fn forget_dead_leases(state_dir: &Path) -> anyhow::Result<()> {
    with_cell_db(state_dir, |db| {
        if has_table(db, "state_leases")? {
            db.execute("DELETE FROM state_leases", [])
                .context("cannot clear the leases")?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Telegram updates the cell took from Telegram (confirmed there) but has not
/// finished handling: a sleeping cell with any must wake at once, or they wait
/// for its next start.
pub(crate) fn unfinished_telegram_updates(state_dir: &Path) -> anyhow::Result<u64> {
    let count = with_cell_db(state_dir, |db| {
        if !has_table(db, "channel_ingress_events")? {
            return Ok(0);
        }
        let count: i64 = db.query_row(
            "SELECT count(*) FROM channel_ingress_events WHERE channel_id = 'telegram' AND status IN ('pending', 'claimed')",
            [],
            |row| row.get(0),
        )?;
        Ok(u64::try_from(count).unwrap_or(0))
    })?;
    Ok(count.unwrap_or(0))
}
