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

/// The newest Telegram update the cell has handled and recorded (its offset
/// store, `telegram.update-offsets`): the cell confirms it at Telegram with
/// its next `getUpdates`, so until then Telegram still lists it as pending.
/// `None` when the cell never recorded one, or one for another bot than
/// `bot_id` (the token's number before the colon).
pub(crate) fn telegram_watermark(state_dir: &Path, bot_id: &str) -> anyhow::Result<Option<i64>> {
    let newest = with_cell_db(state_dir, |db| {
        if !has_table(db, "plugin_state_entries")? {
            return Ok(None);
        }
        let mut query = db.prepare(
            "SELECT value_json FROM plugin_state_entries WHERE namespace = 'telegram.update-offsets'",
        )?;
        let mut newest: Option<i64> = None;
        for value in query.query_map([], |row| row.get::<_, String>(0))? {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&value?) else {
                continue;
            };
            // An entry for another bot (a rotated token) says nothing of this one.
            if value["botId"].as_str().is_some_and(|id| id != bot_id) {
                continue;
            }
            if let Some(id) = value["lastUpdateId"].as_i64() {
                newest = Some(newest.map_or(id, |seen| seen.max(id)));
            }
        }
        Ok(newest)
    })?;
    Ok(newest.flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store shaped as OpenClaw 2026.9.6 keeps it.
    fn store_with(dir: &Path, entries: &[(&str, &str)]) {
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let db = rusqlite::Connection::open(dir.join(STATE_DB)).unwrap();
        db.execute_batch(
            "CREATE TABLE plugin_state_entries (plugin_id TEXT NOT NULL, namespace TEXT NOT NULL, entry_key TEXT NOT NULL, value_json TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER, PRIMARY KEY (plugin_id, namespace, entry_key)) STRICT",
        )
        .unwrap();
        for (key, value) in entries {
            db.execute(
                "INSERT INTO plugin_state_entries VALUES ('telegram', ?1, ?2, ?3, 0, NULL)",
                [
                    if key.starts_with("other") {
                        "telegram.other"
                    } else {
                        "telegram.update-offsets"
                    },
                    key,
                    value,
                ],
            )
            .unwrap();
        }
    }

    #[test]
    fn the_watermark_is_the_cells_newest_handled_update_of_this_bot() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            telegram_watermark(dir.path(), "7000").unwrap(),
            None,
            "no store yet"
        );
        store_with(
            dir.path(),
            &[
                (
                    "default",
                    r#"{"version":3,"lastUpdateId":41,"botId":"7000","tokenFingerprint":"x"}"#,
                ),
                (
                    "old",
                    r#"{"version":3,"lastUpdateId":99,"botId":"6000","tokenFingerprint":"y"}"#,
                ),
                ("other", r#"{"lastUpdateId":500}"#),
                ("broken", "not json"),
            ],
        );
        assert_eq!(telegram_watermark(dir.path(), "7000").unwrap(), Some(41));
        assert_eq!(telegram_watermark(dir.path(), "5000").unwrap(), None);
    }
}
