//! Backups: a tenant whole in one encrypted archive, taken while its cell
//! runs, restored from the archive alone; the admin's own store likewise.
//!
//! A tenant backup freezes the cell (`docker pause`, the cgroup freezer) only
//! while its state and auth dirs are copied to a plain staging tar beside the
//! archive, then lets it run on and encrypts at leisure: the client waits for
//! the copy, not for compression or encryption. The copy is crash-consistent
//! (every process stopped at one instant), which SQLite with its WAL recovers
//! from like a power cut. The archive format is `crate::archive`.
//!
//! Archives live at `<backup.dir>/<tenant>/<id>.mtpbak`, the admin's in
//! `<backup.dir>/_admin/`; the id (`acme-20261203-150600`) carries the tenant
//! and the UTC time, so a listing needs no decryption. A backup or restore
//! holds the tenant's operation lock; one killed midway leaves a hidden
//! `.partial` file or `.restore-<id>` dir that `reconcile` removes once the
//! lock is free, and never a whole-looking archive or a half tenant.
//!
//! Here: taking and listing backups, and the leftovers of dead ones;
//! `restore` (restores and drills), `retention`, `admin` (the admin's own
//! store) and `offboard` (final backup and the client's export).

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use chrono::{Datelike, TimeZone};
use serde::{Deserialize, Serialize};

use crate::archive::{self, Keys, Kind, Manifest, ReadError, Source};
use crate::config::{AdminConfig, Keep};
use crate::fleet::cell::check_pinned;
use crate::fleet::create::{Contents, CreateError, CreateStep, NewCell, provision, random_token};
use crate::fleet::inventory::known;
use crate::fleet::lifecycle::remove_locked;
use crate::fleet::lock::{self, Op};
use crate::fleet::{
    Actor, App, TenantView, audit, audit_result, ensure_private_dir, fault_point, now,
};
use crate::tenant::{BotToken, CellState, Limits, Secret, SecretKind, TenantId};

mod admin;
mod offboard;
mod restore;
mod retention;

pub use admin::{backup_admin, restore_admin};
pub use offboard::{Offboarded, has_data, offboard};
pub use restore::{restore, verify};
pub use retention::prune;

/// The admin's archives live in this directory under `backup.dir`; no tenant
/// id can take the name (ids have no `_`).
const ADMIN_DIR: &str = "_admin";
/// Left out of every backup: regenerable caches, and the gateway's runtime
/// dir (its owner lease and lock files name a process of the running cell; a
/// restored cell that finds them refuses to start, "Another Gateway owner
/// lease is still active").
const SKIP: &[&str] = &crate::fleet::cell::REGENERABLE;
/// What a restore stages into before the dirs move into place.
const RESTORE_STAGING: &str = ".restore-";

/// One finished archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// The file name without `.mtpbak`: `<tenant>-<YYYYMMDD>-<HHMMSS>`.
    pub id: String,
    /// `None` for the admin's own store.
    pub tenant: Option<TenantId>,
    pub path: PathBuf,
    pub bytes: u64,
    /// Unix seconds (UTC), from the id.
    pub created_at: i64,
}

/// What a tenant backup did.
#[derive(Debug, Clone)]
pub struct BackedUp {
    pub backup: Backup,
    /// How long the cell was frozen; zero when it was not running.
    pub paused: Duration,
    /// The bytes of state and auth copied (before compression).
    pub data_bytes: u64,
    /// How `backup.afterCommand` ended, when one is configured: `Err` says why not.
    pub after_command: Option<Result<(), String>>,
}

/// The steps of a backup, reported as they begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupStep {
    Freeze,
    Copy,
    Thaw,
    Encrypt,
    AfterCommand,
    Done,
}

impl BackupStep {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            BackupStep::Freeze => "freeze",
            BackupStep::Copy => "copy",
            BackupStep::Thaw => "thaw",
            BackupStep::Encrypt => "encrypt",
            BackupStep::AfterCommand => "after-command",
            BackupStep::Done => "done",
        }
    }
}

/// The steps of a restore, reported as they begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreStep {
    /// Decrypting and checking the archive into a staging dir.
    Read,
    /// Backing up the tenant the restore replaces.
    SafetyBackup,
    /// Removing the tenant the restore replaces.
    Replace,
    /// Making the cell, as in a create.
    Cell(CreateStep),
}

/// What to restore and as what.
#[derive(Debug, Clone, Default)]
pub struct RestoreRequest {
    /// An archive's path, or a backup id in `backup.dir`.
    pub source: String,
    /// Restore as another tenant id (needs its own bot token).
    pub as_id: Option<TenantId>,
    /// The bot token to run with; required with `as_id`.
    pub bot_token: Option<BotToken>,
    /// Replace an existing tenant of that id (its current state is backed up first).
    pub replace: bool,
    /// An `age` identity file for archives written to the operator's own recipient.
    pub identity: Option<PathBuf>,
}

/// Why a restore did not happen; each leaves the fleet as it was.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The archive cannot be used (bad input: exit 2): damaged, cut short,
    /// not an archive, too new, or (`locked`) not decryptable with the keys given.
    #[error("{reason}")]
    Unreadable { reason: String, locked: bool },
    /// Refused before anything changed (bad input: exit 2).
    #[error("{0}")]
    Refused(String),
    /// A tenant of that id exists and `replace` was not asked for.
    #[error("tenant {0} exists; restoring over it replaces its current state")]
    Exists(TenantId),
    #[error(transparent)]
    Busy(lock::Busy),
    /// Making the cell failed; what it made was undone.
    #[error(transparent)]
    Create(CreateError),
    /// The tenant was replaced (its state backed up as `safety` first), then
    /// making the restored cell failed: the tenant is gone until `safety` is
    /// restored.
    #[error(
        "{source}; the tenant it replaced was removed, and its state before is in backup {safety}"
    )]
    ReplacedThenFailed {
        tenant: TenantId,
        safety: String,
        source: Box<CreateError>,
    },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<ReadError> for RestoreError {
    fn from(err: ReadError) -> RestoreError {
        match err {
            // The archive's contents refused by what reads them (another kind,
            // an unknown entry, a path out of its root, a record that does
            // not parse) are bad input; a failing disk is not.
            ReadError::Sink(err)
                if !err
                    .chain()
                    .any(|cause| cause.downcast_ref::<std::io::Error>().is_some()) =>
            {
                RestoreError::Unreadable {
                    reason: format!("the archive cannot be restored: {err:#}"),
                    locked: false,
                }
            }
            ReadError::Sink(err) => RestoreError::Other(err),
            ReadError::Decrypt { .. } => RestoreError::Unreadable {
                reason: err.to_string(),
                locked: true,
            },
            other => RestoreError::Unreadable {
                reason: other.to_string(),
                locked: false,
            },
        }
    }
}

/// What a restore drill found.
#[derive(Debug, Clone)]
pub struct Verified {
    pub backup_id: String,
    pub tenant: Option<TenantId>,
    /// The files and bytes of state and auth restored.
    pub files: u64,
    pub data_bytes: u64,
    /// From the start of the scratch cell to healthy and paired.
    pub boot: Duration,
}

/// What retention kept and deleted (or would, in a dry run).
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    pub kept: Vec<Backup>,
    pub deleted: Vec<Backup>,
}

/// What `restore_admin` put back.
#[derive(Debug, Clone)]
pub struct AdminRestored {
    pub backup_id: String,
    pub store_bytes: u64,
}

/// The tenant as the archive records it (`tenant.json`).
#[derive(Serialize, Deserialize)]
struct TenantPayload {
    id: String,
    display_name: Option<String>,
    state: String,
    image: String,
    image_id: Option<String>,
    model: String,
    memory_bytes: i64,
    nano_cpus: i64,
    pids: i64,
    bot_id: u64,
    bot_username: Option<String>,
    generation: u64,
    created_at: i64,
    /// Secret kind (`gateway-token`, …) to value.
    secrets: std::collections::BTreeMap<String, String>,
}

fn keys(config: &AdminConfig, identity: Option<&Path>) -> anyhow::Result<Keys> {
    let mut keys = Keys::load(
        &config.data_dir.join("backup.key"),
        &config.backup.recipients,
    )?;
    if let Some(identity) = identity {
        keys.add_identity_file(identity)?;
    }
    Ok(keys)
}

fn stamp(at: i64) -> String {
    chrono::Utc
        .timestamp_opt(at, 0)
        .single()
        .unwrap_or_default()
        .format("%Y%m%d-%H%M%S")
        .to_string()
}

/// The next free archive path for `prefix` (a tenant id or `admin`) at `at`.
fn next_path(dir: &Path, prefix: &str, at: i64) -> (String, PathBuf) {
    let base = format!("{prefix}-{}", stamp(at));
    let mut id = base.clone();
    let mut n = 2;
    while dir.join(format!("{id}.{}", archive::EXTENSION)).exists() {
        id = format!("{base}-{n}");
        n += 1;
    }
    let path = dir.join(format!("{id}.{}", archive::EXTENSION));
    (id, path)
}

/// Reads the UTC time out of a backup id.
fn created_of(id: &str, prefix: &str) -> Option<i64> {
    let rest = id.strip_prefix(prefix)?.strip_prefix('-')?;
    let when = rest.get(..15)?;
    let tail = &rest[15..];
    if !(tail.is_empty() || tail.starts_with('-') && tail[1..].chars().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(when, "%Y%m%d-%H%M%S")
        .ok()
        .map(|time| time.and_utc().timestamp())
}

/// Backs up `tenant` while its cell runs.
///
/// # Errors
///
/// Unknown tenant, another action holds it (`lock::Busy`), a tenant in the
/// middle of a create or removal, its dirs cannot be read, or the archive
/// cannot be written; no archive is left then.
pub async fn backup(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    progress: &mut (dyn FnMut(BackupStep) + Send),
) -> anyhow::Result<BackedUp> {
    let _guard = lock::acquire(app, tenant, Op::Backup, actor)?;
    let result = backup_locked(app, tenant, progress).await;
    audit_result(app, actor, "backup", tenant, "backup", &result);
    result
}

/// Backs up every tenant with a cell, one after the other; a failure does not
/// stop the others.
///
/// # Errors
///
/// The store cannot be read; each tenant's own failure is in its result.
pub async fn backup_all(
    app: &App,
    actor: &Actor,
    progress: &mut (dyn FnMut(&TenantId, BackupStep) + Send),
) -> anyhow::Result<Vec<(TenantId, anyhow::Result<BackedUp>)>> {
    let mut results = Vec::new();
    for record in app.store.tenants()? {
        if !matches!(
            record.state,
            CellState::Running | CellState::Stopped | CellState::Sleeping | CellState::Failed
        ) {
            continue;
        }
        let id = record.id.clone();
        let mut step = |s| progress(&id, s);
        let result = backup(app, actor, &record.id, &mut step).await;
        results.push((record.id, result));
    }
    Ok(results)
}

async fn backup_locked(
    app: &App,
    tenant: &TenantId,
    progress: &mut (dyn FnMut(BackupStep) + Send),
) -> anyhow::Result<BackedUp> {
    let record = known(app, tenant)?;
    if matches!(record.state, CellState::Creating | CellState::Removing) {
        bail!(
            "{tenant} is {}; back it up once that has finished",
            record.state.as_str()
        );
    }
    let config = app.config();
    let dir = config.backup.dir.join(tenant.as_str());
    ensure_private_dir(&config.backup.dir)?;
    ensure_private_dir(&dir)?;
    let keys = keys(config, None)?;
    let tenant_dir = app.tenant_dir(tenant);
    let state_dir = tenant_dir.join("state");
    let auth_dir = tenant_dir.join("auth");
    if !state_dir.is_dir() {
        bail!(
            "its data dir {} is gone; nothing to back up",
            state_dir.display()
        );
    }
    let at = now();
    let (id, path) = next_path(&dir, tenant.as_str(), at);
    let staging = dir.join(format!(".{id}.data{}", archive::PARTIAL));

    let result = async {
        // Freeze only a running cell; a stopped one holds still by itself.
        let running = app
            .runtime
            .inspect(tenant)
            .await?
            .is_some_and(|status| status.running && status.state != "paused");
        let started = Instant::now();
        let swarm = app.runtime.engine() == crate::tenant::Engine::Swarm;
        let mut frozen = false;
        if running {
            progress(BackupStep::Freeze);
            match app.runtime.freeze(tenant).await {
                Ok(()) => frozen = true,
                // A Swarm cell on another node cannot be paused from here.
                Err(err) if swarm => {
                    tracing::warn!(cause = %err, %tenant, "backup: copying the cell's volumes while it runs");
                }
                Err(err) => {
                    return Err(err).context("cannot pause the cell for a consistent copy");
                }
            }
        }
        progress(BackupStep::Copy);
        fault_point("backup:frozen");
        // On Swarm the dirs are first brought over from the volumes.
        let copy = async {
            crate::fleet::cell::pull_state(app, &record).await?;
            let (staging, state_dir, auth_dir) =
                (staging.clone(), state_dir.clone(), auth_dir.clone());
            tokio::task::spawn_blocking(move || {
                let mut dirs: Vec<(&str, &Path)> = vec![("state", state_dir.as_path())];
                if auth_dir.is_dir() {
                    dirs.push(("auth", auth_dir.as_path()));
                }
                archive::snapshot_dirs(&dirs, SKIP, &staging)
            })
            .await
            .map_err(|err| anyhow!("the copy stopped: {err}"))?
        }
        .await;
        let mut paused = Duration::ZERO;
        if frozen {
            progress(BackupStep::Thaw);
            let thawed = app.runtime.thaw(tenant).await;
            paused = started.elapsed();
            thawed.context("cannot let the cell run on after the copy; `reconcile` retries")?;
        }
        let data_bytes = copy?;

        progress(BackupStep::Encrypt);
        fault_point("backup:encrypt");
        let secrets = app.store.secrets(tenant)?;
        let payload = TenantPayload {
            id: tenant.as_str().to_string(),
            display_name: record.display_name.clone(),
            state: record.state.as_str().to_string(),
            image: record.image.clone(),
            image_id: record.image_id.clone(),
            model: record.model.clone(),
            memory_bytes: record.limits.memory_bytes,
            nano_cpus: record.limits.nano_cpus,
            pids: record.limits.pids,
            bot_id: record.bot_id,
            bot_username: record.bot_username.clone(),
            generation: record.generation,
            created_at: record.created_at,
            secrets: secrets
                .iter()
                .map(|(kind, value)| (kind.as_str().to_string(), value.expose().clone()))
                .collect(),
        };
        let manifest = Manifest {
            format: String::new(),
            version: 0,
            kind: Kind::Tenant,
            id: id.clone(),
            tenant: Some(tenant.as_str().to_string()),
            created_at: at,
            mtp_version: env!("CARGO_PKG_VERSION").to_string(),
            openclaw_image: Some(record.image.clone()),
            openclaw_image_id: record.image_id.clone(),
            entries: Vec::new(),
        };
        let entries = vec![
            (
                "tenant.json".to_string(),
                Source::Bytes(serde_json::to_vec_pretty(&payload)?),
            ),
            ("data.tar".to_string(), Source::File(staging.clone())),
        ];
        let written = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || archive::write(&path, &keys, manifest, entries))
                .await
                .map_err(|err| anyhow!("the archive writer stopped: {err}"))??
        };
        let (_, bytes) = written;
        anyhow::Ok((paused, data_bytes, bytes))
    }
    .await;
    let _ = std::fs::remove_file(&staging);
    let (paused, data_bytes, bytes) = result?;
    fault_point("backup:written");
    let backup = Backup {
        id,
        tenant: Some(tenant.clone()),
        path,
        bytes,
        created_at: at,
    };
    let after_command = match &config.backup.after_command {
        Some(command) => {
            progress(BackupStep::AfterCommand);
            Some(run_after(command, &backup.path).await)
        }
        None => None,
    };
    progress(BackupStep::Done);
    Ok(BackedUp {
        backup,
        paused,
        data_bytes,
        after_command,
    })
}

/// Runs `backup.afterCommand` on a finished archive: `sh -c <command>` with
/// the path as `$1`, for up to an hour.
async fn run_after(command: &str, path: &Path) -> Result<(), String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .arg("mtp-backup")
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| format!("cannot run it: {err}"))?;
    let output = tokio::time::timeout(Duration::from_secs(3600), child.wait_with_output())
        .await
        .map_err(|_| "it ran for over an hour and was stopped".to_string())?
        .map_err(|err| format!("cannot run it: {err}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default().trim();
    Err(format!(
        "it exited with {}{}",
        output
            .status
            .code()
            .map_or_else(|| "a signal".to_string(), |c| format!("code {c}")),
        if last.is_empty() {
            String::new()
        } else {
            format!(": {last}")
        }
    ))
}

/// The finished archives in `backup.dir`, newest first: of one tenant, or of
/// every tenant (not the admin's) when `tenant` is `None`.
///
/// # Errors
///
/// `backup.dir` cannot be read.
pub fn list(app: &App, tenant: Option<&TenantId>) -> anyhow::Result<Vec<Backup>> {
    list_in(&app.config().backup.dir, tenant)
}

/// The admin's own archives, newest first.
///
/// # Errors
///
/// `backup.dir` cannot be read.
pub fn list_admin(app: &App) -> anyhow::Result<Vec<Backup>> {
    let mut found = read_archives(&app.config().backup.dir.join(ADMIN_DIR), "admin", None)?;
    found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    Ok(found)
}

fn list_in(dir: &Path, tenant: Option<&TenantId>) -> anyhow::Result<Vec<Backup>> {
    let mut found = Vec::new();
    let tenants: Vec<TenantId> = match tenant {
        Some(tenant) => vec![tenant.clone()],
        None => match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
                .collect(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => {
                return Err(err).with_context(|| format!("cannot read {}", dir.display()));
            }
        },
    };
    for tenant in tenants {
        let sub = dir.join(tenant.as_str());
        found.extend(read_archives(&sub, tenant.as_str(), Some(&tenant))?);
    }
    found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    Ok(found)
}

fn read_archives(
    dir: &Path,
    prefix: &str,
    tenant: Option<&TenantId>,
) -> anyhow::Result<Vec<Backup>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(id) = name.strip_suffix(&format!(".{}", archive::EXTENSION)) else {
            continue;
        };
        if id.starts_with('.') {
            continue;
        }
        let Some(created_at) = created_of(id, prefix) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        found.push(Backup {
            id: id.to_string(),
            tenant: tenant.cloned(),
            path: entry.path(),
            bytes: meta.len(),
            created_at,
        });
    }
    Ok(found)
}

impl TenantPayload {
    fn limits(&self) -> Limits {
        Limits {
            memory_bytes: self.memory_bytes,
            nano_cpus: self.nano_cpus,
            pids: self.pids,
        }
    }
}

/// The newest finished backup of `tenant`, if any.
#[must_use]
pub fn last_backup(app: &App, tenant: &TenantId) -> Option<Backup> {
    list(app, Some(tenant)).ok()?.into_iter().next()
}

/// Removes what killed backups and restores left: hidden partial files in
/// `backup.dir` and `.restore-<id>` staging dirs, each only when its
/// tenant's lock is free (the admin's after an hour). Returns how many went.
pub(crate) fn clean_leftovers(app: &App, actor: &Actor) -> usize {
    let mut removed = 0;
    let config = app.config();
    let free = |tenant: &TenantId| lock::acquire(app, tenant, Op::Repair, actor).ok();
    if let Ok(entries) = std::fs::read_dir(config.tenants_dir()) {
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(tenant) = name
                .strip_prefix(RESTORE_STAGING)
                .and_then(|id| id.parse::<TenantId>().ok())
            else {
                continue;
            };
            if let Some(_guard) = free(&tenant)
                && restore::remove_staging(&entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    let Ok(dirs) = std::fs::read_dir(&config.backup.dir) else {
        return removed;
    };
    for dir in dirs.filter_map(Result::ok) {
        let name = dir.file_name().to_string_lossy().into_owned();
        let guard = if name == ADMIN_DIR {
            None
        } else {
            match name.parse::<TenantId>() {
                Ok(tenant) => match free(&tenant) {
                    Some(guard) => Some(guard),
                    None => continue,
                },
                Err(_) => continue,
            }
        };
        let Ok(files) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for file in files.filter_map(Result::ok) {
            let file_name = file.file_name().to_string_lossy().into_owned();
            if !(file_name.starts_with('.') && file_name.ends_with(archive::PARTIAL)) {
                continue;
            }
            let old_enough = guard.is_some()
                || file
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|at| at.elapsed().unwrap_or_default() > Duration::from_secs(3600));
            if old_enough && std::fs::remove_file(file.path()).is_ok() {
                removed += 1;
            }
        }
        drop(guard);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    // A refused archive exits 2 like any bad input; a disk that fails while
    // unpacking is a failed action.
    #[test]
    fn what_the_reader_refuses_is_bad_input_and_io_is_not() {
        let refused = RestoreError::from(ReadError::Sink(anyhow!(
            "the data names a path outside its root: ../../etc/passwd"
        )));
        assert!(
            matches!(refused, RestoreError::Unreadable { locked: false, .. }),
            "{refused:?}"
        );
        let disk = std::io::Error::other("No space left on device");
        let failed = RestoreError::from(ReadError::Sink(
            anyhow::Error::new(disk).context("cannot unpack the data"),
        ));
        assert!(matches!(failed, RestoreError::Other(_)), "{failed:?}");
    }
}
