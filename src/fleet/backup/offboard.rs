//! Offboarding: a final backup, the client's own export (sessions told by the gateway), then the removal.

use super::*;

/// Writes the client's plain export of `tenant` to `target` (a new `.tar.gz`,
/// 0600): the workspace, memory and sessions as files, without MTP's or the
/// operator's secrets (no config, credentials, device keys or auth dir).
///
/// # Errors
///
/// `target` exists or cannot be written; the tenant's state dir is gone.
pub(crate) fn export_for_client(
    app: &App,
    tenant: &TenantId,
    sessions: &[(String, Vec<u8>)],
    target: &Path,
) -> anyhow::Result<u64> {
    let state = app.tenant_dir(tenant).join("state");
    if !state.is_dir() {
        bail!(
            "its data dir {} is gone; nothing to export",
            state.display()
        );
    }
    if target.exists() {
        bail!(
            "{} exists; name a new file for the export",
            target.display()
        );
    }
    // Every copy the gateway keeps of its config goes too (`.bak`, and the
    // `.last-good` it writes once a config has run a while), whatever it
    // names the next one.
    let copies: Vec<String> = std::fs::read_dir(&state)
        .with_context(|| format!("cannot read {}", state.display()))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(CONFIG_FILE))
        .collect();
    let skip: Vec<&str> = EXPORT_SKIP
        .iter()
        .copied()
        .chain(copies.iter().map(String::as_str))
        .collect();
    archive::export_tree(&state, tenant.as_str(), &skip, sessions, target)
}

/// The gateway's config file, at the top of the state dir.
const CONFIG_FILE: &str = "openclaw.json";

/// What a client's export leaves out at the top of the state dir: MTP's and
/// the operator's secrets and the gateway's machinery. The gateway's SQLite
/// stores (`state/`, and any `*.sqlite` below) hold its device tokens and
/// credentials beside the sessions, so sessions come from the gateway itself.
const EXPORT_SKIP: &[&str] = &[
    CONFIG_FILE,
    "state",
    "credentials",
    "identity",
    "devices",
    "agents",
    "cache",
    "tmp",
    "logs",
];

/// The most sessions and the most pages of one session an export reads.
const EXPORT_MAX_SESSIONS: usize = 1000;
const EXPORT_MAX_PAGES: usize = 100;

/// Every session's messages as the gateway tells them (`sessions.list`, then
/// `chat.history` page by page), one JSON file each under `sessions/`, with
/// MTP's secrets replaced by `<redacted>`.
async fn sessions_for_export(
    app: &App,
    tenant: &TenantId,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    use crate::fleet::cell_gateway::rpc;
    let secrets: Vec<Secret<String>> = app
        .store
        .secrets(tenant)?
        .into_iter()
        .map(|(_, value)| value)
        .collect();
    let listed = rpc(
        app,
        tenant,
        "sessions.list",
        serde_json::json!({ "limit": EXPORT_MAX_SESSIONS }),
    )
    .await?;
    let mut files = Vec::new();
    for row in listed["sessions"].as_array().into_iter().flatten() {
        let Some(key) = row["key"].as_str() else {
            continue;
        };
        let mut messages = Vec::new();
        let mut offset: Option<u64> = None;
        for _ in 0..EXPORT_MAX_PAGES {
            let mut params = serde_json::json!({ "sessionKey": key, "limit": 1000 });
            if let Some(offset) = offset {
                params["offset"] = offset.into();
            }
            let page = rpc(app, tenant, "chat.history", params).await?;
            messages.extend(page["messages"].as_array().cloned().unwrap_or_default());
            offset = page["nextOffset"].as_u64();
            if page["hasMore"] != serde_json::Value::Bool(true) || offset.is_none() {
                break;
            }
        }
        let name: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let text = serde_json::to_string_pretty(
            &serde_json::json!({ "sessionKey": key, "messages": messages }),
        )?;
        files.push((
            format!("sessions/{name}.json"),
            crate::fleet::redact(&text, &secrets).into_bytes(),
        ));
    }
    Ok(files)
}

/// What an offboarding left: the final backup and the client's export.
#[derive(Debug, Clone)]
pub struct Offboarded {
    pub backup: BackedUp,
    pub export: PathBuf,
    pub export_bytes: u64,
    /// How many sessions the export holds, or why it holds none (the cell
    /// not running, the gateway not answering).
    pub sessions: Result<usize, String>,
    pub removed: crate::fleet::Removed,
}

/// Takes a final backup, writes the client's export (to `export`, or beside
/// the tenant's archives as `<id>-export-<time>.tar.gz`), then removes the
/// tenant (`tenant rm --export`, the bot's Remove), holding the lock throughout.
///
/// # Errors
///
/// The backup or the export fails (then nothing is removed), or the removal fails.
pub async fn offboard(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    export: Option<&Path>,
    purge: bool,
) -> anyhow::Result<Offboarded> {
    crate::fleet::reconcile::reconcile_first(app, actor).await?;
    let _guard = lock::acquire(app, tenant, Op::Remove, actor)?;
    let mut quiet = |_| {};
    let final_backup = backup_locked(app, tenant, &mut quiet).await;
    audit_result(
        app,
        actor,
        "backup (final)",
        tenant,
        "backup",
        &final_backup,
    );
    let final_backup = final_backup.context("the final backup failed, so nothing was removed")?;
    let export = export.map_or_else(
        || {
            final_backup.backup.path.with_file_name(format!(
                "{tenant}-export-{}.tar.gz",
                stamp(final_backup.backup.created_at)
            ))
        },
        Path::to_path_buf,
    );
    // A running gateway just thawed from the final backup's copy, or busy,
    // may fail a call: the client's sessions are worth a few more tries. A
    // stopped or sleeping one is not asked again.
    let running = crate::fleet::inventory::known(app, tenant)?.state == CellState::Running;
    let sessions = crate::backoff::Backoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(5),
        give_up_after: Duration::from_secs(30),
    }
    .retry(|| async {
        match sessions_for_export(app, tenant).await {
            Ok(files) => crate::backoff::Attempt::Done(files),
            // A stopped, sleeping or unpaired cell: no use waiting.
            Err(err)
                if !running
                    || err
                        .downcast_ref::<crate::fleet::obstacle::Asleep>()
                        .is_some()
                    || err
                        .downcast_ref::<crate::fleet::obstacle::NotPaired>()
                        .is_some() =>
            {
                crate::backoff::Attempt::Fail(err)
            }
            Err(err) => {
                tracing::warn!(%tenant, "the sessions for the export: {err:#}; trying again");
                crate::backoff::Attempt::Retry(err)
            }
        }
    })
    .await
    .map_err(crate::backoff::GaveUp::into_inner);
    let files = sessions.as_ref().map_or(&[][..], Vec::as_slice);
    let export_bytes = export_for_client(app, tenant, files, &export)
        .context("the client's export failed, so nothing was removed")?;
    let sessions = sessions
        .map(|files| files.len())
        .map_err(|err| format!("{err:#}"));
    let removed = remove_locked(app, actor, tenant, purge).await?;
    Ok(Offboarded {
        backup: final_backup,
        export,
        export_bytes,
        sessions,
        removed,
    })
}

/// Whether the tenant has data to back up (its state dir exists).
#[must_use]
pub fn has_data(app: &App, tenant: &TenantId) -> bool {
    app.tenant_dir(tenant).join("state").is_dir()
}
