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

/// The admin's archives live in this directory under `backup.dir`; no tenant
/// id can take the name (ids have no `_`).
const ADMIN_DIR: &str = "_admin";
/// Left out of every backup: regenerable caches, and the gateway's runtime
/// dir (its owner lease and lock files name a process of the running cell; a
/// restored cell that finds them refuses to start, "Another Gateway owner
/// lease is still active").
const SKIP: &[&str] = &["state/cache", "state/tmp"];
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
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<ReadError> for RestoreError {
    fn from(err: ReadError) -> RestoreError {
        match err {
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
            CellState::Running | CellState::Stopped | CellState::Failed
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
        if running {
            progress(BackupStep::Freeze);
            app.runtime
                .freeze(tenant)
                .await
                .context("cannot pause the cell for a consistent copy")?;
        }
        progress(BackupStep::Copy);
        fault_point("backup:frozen");
        let copy = {
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
            .map_err(|err| anyhow!("the copy stopped: {err}"))
        };
        let mut paused = Duration::ZERO;
        if running {
            progress(BackupStep::Thaw);
            let thawed = app.runtime.thaw(tenant).await;
            paused = started.elapsed();
            thawed.context("cannot let the cell run on after the copy; `reconcile` retries")?;
        }
        let data_bytes = copy??;

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

/// The archive a restore or verify names: a path, or a backup id in `backup.dir`.
fn resolve(app: &App, source: &str) -> Result<PathBuf, RestoreError> {
    let as_path = Path::new(source);
    if source.contains('/') || source.ends_with(&format!(".{}", archive::EXTENSION)) {
        if !as_path.is_file() {
            return Err(RestoreError::Refused(format!(
                "{source} is not a file; name an archive or a backup id"
            )));
        }
        return Ok(as_path.to_path_buf());
    }
    let valid = !source.is_empty()
        && source.len() <= 80
        && source
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(RestoreError::Refused(format!(
            "{source:?} is neither an archive path nor a backup id such as acme-20261203-150600"
        )));
    }
    let dir = &app.config().backup.dir;
    let candidates = if source.starts_with("admin-") {
        vec![dir.join(ADMIN_DIR)]
    } else {
        // The tenant is what precedes the 15-character time stamp.
        source
            .match_indices('-')
            .map(|(at, _)| &source[..at])
            .filter(|prefix| created_of(source, prefix).is_some())
            .map(|prefix| dir.join(prefix))
            .collect::<Vec<_>>()
    };
    for candidate in candidates {
        let path = candidate.join(format!("{source}.{}", archive::EXTENSION));
        if path.is_file() {
            return Ok(path);
        }
    }
    Err(RestoreError::Refused(format!(
        "no backup {source} in {}; list them with the backup list command",
        dir.display()
    )))
}

/// Reads a tenant archive into `staging` (made new): its payload and its
/// dirs. Nothing outside `staging` changes.
fn stage(
    path: &Path,
    keys: &Keys,
    staging: &Path,
) -> Result<(Manifest, TenantPayload), RestoreError> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let mut payload = None;
    let manifest = archive::read(path, keys, |manifest, name, reader| {
        if manifest.kind != Kind::Tenant {
            bail!(
                "it is a backup of the admin's store, not of a tenant; restore it with restore-admin"
            );
        }
        match name {
            "tenant.json" => {
                let mut text = Vec::new();
                reader.take(16 << 20).read_to_end(&mut text)?;
                let parsed: TenantPayload =
                    serde_json::from_slice(&text).context("its tenant record does not read")?;
                payload = Some(parsed);
            }
            "data.tar" => archive::unpack(reader, staging)?,
            other => bail!("it holds an entry MTP does not know: {other}"),
        }
        Ok(())
    })?;
    let payload = payload.ok_or_else(|| {
        RestoreError::Refused(format!("{} holds no tenant record", path.display()))
    })?;
    if !staging.join("state").is_dir() {
        return Err(RestoreError::Refused(format!(
            "{} holds no state dir",
            path.display()
        )));
    }
    forget_dead_leases(&staging.join("state"))?;
    Ok((manifest, payload))
}

/// Where OpenClaw keeps its SQLite state, under the state dir.
const STATE_DB: &str = "state/openclaw.sqlite";

/// Deletes the leases in a restored state's SQLite store. They name a process
/// of the cell the copy was taken from (pid, host, start time); a new cell
/// reclaims a dead owner's lease only on the same host name, so with any
/// other name (a restore `--as`, a drill) the gateway refused to start until
/// the five-minute lease ran out. Every process they name is gone.
fn forget_dead_leases(state_dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let db_path = state_dir.join(STATE_DB);
    let Ok(meta) = std::fs::metadata(&db_path) else {
        return Ok(());
    };
    let (uid, gid) = (meta.uid(), meta.gid());
    {
        let db = rusqlite::Connection::open(&db_path)
            .with_context(|| format!("cannot open the restored {}", db_path.display()))?;
        let has_leases: bool = db
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'state_leases'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .with_context(|| format!("cannot read the restored {}", db_path.display()))?;
        if has_leases {
            db.execute("DELETE FROM state_leases", [])
                .with_context(|| format!("cannot clear the leases in {}", db_path.display()))?;
        }
        db.close()
            .map_err(|(_, err)| err)
            .with_context(|| format!("cannot close {}", db_path.display()))?;
    }
    // SQLite may have made its -wal/-shm files anew, as root: back to the cell's user.
    let dir = db_path.parent().unwrap_or(state_dir);
    for entry in std::fs::read_dir(dir)?.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("openclaw.sqlite") {
            std::os::unix::fs::chown(entry.path(), Some(uid), Some(gid))
                .with_context(|| format!("cannot hand {} to the cell", entry.path().display()))?;
        }
    }
    Ok(())
}

/// `stage` into a fresh `staging` (what a dead restore left there goes first:
/// the caller holds the lock), off the async workers: decrypting is CPU work.
async fn stage_off_thread(
    app: &App,
    identity: Option<&Path>,
    path: &Path,
    staging: &Path,
) -> Result<(Manifest, TenantPayload), RestoreError> {
    remove_staging(staging)?;
    ensure_private_dir(&app.config().tenants_dir())?;
    let keys = keys(app.config(), identity)?;
    let (path, staging) = (path.to_path_buf(), staging.to_path_buf());
    tokio::task::spawn_blocking(move || stage(&path, &keys, &staging))
        .await
        .map_err(|err| anyhow!("the reader stopped: {err}"))?
}

/// A tenant made from another's archive gets gateway and hooks tokens of its own.
fn fresh_tokens(secrets: &mut Vec<(SecretKind, Secret<String>)>) {
    secrets.retain(|(kind, _)| !matches!(kind, SecretKind::GatewayToken | SecretKind::HooksToken));
    secrets.push((SecretKind::GatewayToken, Secret::new(random_token())));
    secrets.push((SecretKind::HooksToken, Secret::new(random_token())));
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

fn secrets_of(payload: &TenantPayload) -> Vec<(SecretKind, Secret<String>)> {
    SecretKind::ALL
        .into_iter()
        .filter_map(|kind| {
            payload
                .secrets
                .get(kind.as_str())
                .map(|value| (kind, Secret::new(value.clone())))
        })
        .collect()
}

/// Restores a tenant from an archive: running, healthy and paired when it
/// returns, with its files as they were. The usage ledger is not touched.
///
/// # Errors
///
/// See `RestoreError`; the fleet is as it was after any of them, except that
/// a replaced tenant's safety backup stays.
pub async fn restore(
    app: &App,
    actor: &Actor,
    request: RestoreRequest,
    progress: &mut (dyn FnMut(RestoreStep) + Send),
) -> Result<TenantView, RestoreError> {
    let path = resolve(app, &request.source)?;
    let keys = keys(app.config(), request.identity.as_deref())?;
    let peeked = archive::peek(&path, &keys)?;
    if peeked.kind != Kind::Tenant {
        return Err(RestoreError::Refused(format!(
            "{} is a backup of the admin's store; restore it with restore-admin",
            path.display()
        )));
    }
    let original: TenantId = peeked
        .tenant
        .as_deref()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| RestoreError::Refused("its manifest names no valid tenant".to_string()))?;
    let target = request.as_id.clone().unwrap_or_else(|| original.clone());
    if target != original && request.bot_token.is_none() {
        return Err(RestoreError::Refused(format!(
            "restoring {original} as {target} needs another bot token: one bot polls from one place only, and two cells on one token both fail"
        )));
    }
    let _guard = match lock::acquire(app, &target, Op::Restore, actor) {
        Ok(guard) => guard,
        Err(err) => match lock::busy(&err) {
            Some(busy) => return Err(RestoreError::Busy(busy.clone())),
            None => return Err(RestoreError::Other(err)),
        },
    };
    let result = restore_locked(app, actor, &request, &path, &target, progress).await;
    if let Err(err) = &result
        && !matches!(err, RestoreError::Create(_))
    {
        audit(
            app,
            actor,
            "restore",
            Some(&target),
            Err(("validate", &format!("{err:#}"))),
        );
    }
    result
}

async fn restore_locked(
    app: &App,
    actor: &Actor,
    request: &RestoreRequest,
    path: &Path,
    target: &TenantId,
    progress: &mut (dyn FnMut(RestoreStep) + Send),
) -> Result<TenantView, RestoreError> {
    let existing = app.store.tenant(target).map_err(anyhow::Error::from)?;
    if existing.is_some() && !request.replace {
        return Err(RestoreError::Exists(target.clone()));
    }
    if existing.is_none() && app.tenant_dir(target).exists() {
        return Err(RestoreError::Refused(format!(
            "{} holds data of a tenant removed without purging it; purge it first or move it away",
            app.tenant_dir(target).display()
        )));
    }
    progress(RestoreStep::Read);
    let staging = staging_dir(app, target);
    let staged = stage_off_thread(app, request.identity.as_deref(), path, &staging).await;
    let result = async {
        let (_manifest, payload) = staged?;
        fault_point("restore:staged");
        check_pinned(&payload.image).map_err(|err| RestoreError::Refused(format!("{err:#}")))?;
        let image_known = app
            .runtime
            .image_id(&payload.image)
            .await
            .context("cannot ask Docker for the image")?;
        if image_known.is_none() {
            return Err(RestoreError::Refused(format!(
                "Docker has no image {}; build or load it on this host first (MTP never pulls)",
                payload.image
            )));
        }
        let mut secrets = secrets_of(&payload);
        if !secrets
            .iter()
            .any(|(kind, _)| *kind == SecretKind::GatewayToken)
        {
            return Err(RestoreError::Refused(
                "the archive holds no gateway token".to_string(),
            ));
        }
        let mut bot_id = payload.bot_id;
        let mut bot_username = payload.bot_username.clone();
        if let Some(token) = &request.bot_token {
            secrets.retain(|(kind, _)| *kind != SecretKind::BotToken);
            secrets.push((SecretKind::BotToken, token.secret().clone()));
            if token.bot_id() != bot_id {
                bot_username = None;
            }
            bot_id = token.bot_id();
        }
        if target.as_str() != payload.id {
            fresh_tokens(&mut secrets);
        }
        if existing.is_some() {
            progress(RestoreStep::SafetyBackup);
            let mut quiet = |_| {};
            let safety = backup_locked(app, target, &mut quiet).await;
            audit_result(
                app,
                actor,
                "backup (before restore)",
                target,
                "backup",
                &safety,
            );
            safety.context(
                "the current state could not be backed up first, so nothing was replaced",
            )?;
            progress(RestoreStep::Replace);
            remove_locked(app, actor, target, true).await?;
        }
        let cell = NewCell {
            id: target.clone(),
            display_name: payload.display_name.clone(),
            image: payload.image.clone(),
            model: payload.model.clone(),
            limits: payload.limits(),
            bot_id,
            bot_username,
            generation: payload.generation,
            created_at: payload.created_at,
            secrets,
            keep_failed: false,
            quiet_until: None,
        };
        let mut cell_progress = |step| progress(RestoreStep::Cell(step));
        provision(
            app,
            actor,
            "restore",
            cell,
            Contents::Restored { staging: &staging },
            &mut cell_progress,
        )
        .await
        .map_err(RestoreError::Create)
    }
    .await;
    let _ = remove_staging(&staging);
    result
}

fn staging_dir(app: &App, tenant: &TenantId) -> PathBuf {
    app.config()
        .tenants_dir()
        .join(format!("{RESTORE_STAGING}{tenant}"))
}

fn remove_staging(staging: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(staging) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot remove {}", staging.display())),
    }
}

/// A restore drill: restores the archive into a scratch cell that cannot
/// reach Telegram (its Bot API root points nowhere), waits for it to be
/// healthy and paired, counts what came back, and removes it again.
///
/// # Errors
///
/// The archive is refused, or the scratch cell does not come up; the scratch
/// cell is removed either way.
pub async fn verify(
    app: &App,
    actor: &Actor,
    source: &str,
    identity: Option<&Path>,
    progress: &mut (dyn FnMut(RestoreStep) + Send),
) -> Result<Verified, RestoreError> {
    let path = resolve(app, source)?;
    let scratch: TenantId = format!("drill-{:08x}", rand::random::<u32>())
        .parse()
        .map_err(|err| anyhow!("{err}"))?;
    let _guard = lock::acquire(app, &scratch, Op::Restore, actor)?;
    progress(RestoreStep::Read);
    let staging = staging_dir(app, &scratch);
    let staged = stage_off_thread(app, identity, &path, &staging).await;
    let result = async {
        let (manifest, payload) = staged?;
        let (files, data_bytes) = count_tree(&staging)?;
        isolate_from_telegram(&staging.join("state").join("openclaw.json"))?;
        let mut secrets = secrets_of(&payload);
        fresh_tokens(&mut secrets);
        let cell = NewCell {
            id: scratch.clone(),
            display_name: Some(format!("restore drill of {}", manifest.id)),
            image: payload.image.clone(),
            model: payload.model.clone(),
            limits: payload.limits(),
            bot_id: 0,
            bot_username: None,
            generation: 1,
            created_at: now(),
            secrets,
            keep_failed: false,
            quiet_until: Some(now() + 3600),
        };
        let started = Instant::now();
        let mut cell_progress = |step| progress(RestoreStep::Cell(step));
        provision(
            app,
            actor,
            "verify",
            cell,
            Contents::Restored { staging: &staging },
            &mut cell_progress,
        )
        .await
        .map_err(RestoreError::Create)?;
        let boot = started.elapsed();
        let removed = remove_locked(app, actor, &scratch, true).await;
        removed.context("the drill passed, but its scratch cell could not be removed")?;
        Ok(Verified {
            backup_id: manifest.id,
            tenant: manifest.tenant.as_deref().and_then(|id| id.parse().ok()),
            files,
            data_bytes,
            boot,
        })
    }
    .await;
    let _ = remove_staging(&staging);
    if result.is_err() && app.store.tenant(&scratch).ok().flatten().is_some() {
        let _ = remove_locked(app, actor, &scratch, true).await;
    }
    result
}

fn count_tree(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            let (f, b) = count_tree(&entry.path())?;
            files += f;
            bytes += b;
        } else if kind.is_file() {
            files += 1;
            bytes += entry.metadata()?.len();
        }
    }
    Ok((files, bytes))
}

/// Points a restored config's Telegram channel at a closed port inside the
/// cell, so a drill can never poll the client's bot.
fn isolate_from_telegram(config: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let mut value: serde_json::Value =
        json5::from_str(&text).with_context(|| format!("{} is not JSON5", config.display()))?;
    if let Some(telegram) = value
        .get_mut("channels")
        .and_then(|channels| channels.get_mut("telegram"))
        .and_then(serde_json::Value::as_object_mut)
    {
        telegram.insert(
            "apiRoot".to_string(),
            serde_json::Value::String("http://127.0.0.1:9".to_string()),
        );
    }
    let meta = std::fs::metadata(config)?;
    std::fs::write(config, serde_json::to_vec_pretty(&value)?)
        .with_context(|| format!("cannot write {}", config.display()))?;
    std::fs::set_permissions(config, meta.permissions())?;
    Ok(())
}

/// Applies `backup.keep` to every tenant's archives and the admin's; with
/// `dry_run`, only says what it would delete.
///
/// # Errors
///
/// `backup.dir` cannot be read; an archive that cannot be deleted.
pub fn prune(app: &App, actor: &Actor, dry_run: bool) -> anyhow::Result<Pruned> {
    let config = app.config();
    let zone = config.usage.time_zone;
    let mut groups: Vec<Vec<Backup>> = Vec::new();
    let all = list(app, None)?;
    let mut tenants: Vec<Option<TenantId>> = all.iter().map(|b| b.tenant.clone()).collect();
    tenants.dedup();
    tenants.sort();
    tenants.dedup();
    for tenant in tenants {
        groups.push(all.iter().filter(|b| b.tenant == tenant).cloned().collect());
    }
    groups.push(list_admin(app)?);
    let mut pruned = Pruned::default();
    for group in groups {
        let (kept, deleted) = retention(group, config.backup.keep, zone);
        pruned.kept.extend(kept);
        pruned.deleted.extend(deleted);
    }
    if !dry_run {
        for backup in &pruned.deleted {
            std::fs::remove_file(&backup.path)
                .with_context(|| format!("cannot delete {}", backup.path.display()))?;
        }
        if !pruned.deleted.is_empty() {
            audit(
                app,
                actor,
                &format!("backup prune: {} deleted", pruned.deleted.len()),
                None,
                Ok(()),
            );
        }
    }
    Ok(pruned)
}

/// Splits one tenant's backups (any order) into kept and deleted: the newest
/// of each of the `keep.daily` most recent days that have one, and of each of
/// the `keep.weekly` most recent ISO weeks, in `zone`.
fn retention(
    mut backups: Vec<Backup>,
    keep: Keep,
    zone: chrono_tz::Tz,
) -> (Vec<Backup>, Vec<Backup>) {
    backups.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let mut days = Vec::new();
    let mut weeks = Vec::new();
    let mut kept = Vec::new();
    let mut deleted = Vec::new();
    for backup in backups {
        let local = zone
            .timestamp_opt(backup.created_at, 0)
            .single()
            .unwrap_or_else(|| zone.timestamp_opt(0, 0).unwrap());
        let day = local.date_naive();
        let week = local.iso_week();
        let mut keep_it = false;
        if !days.contains(&day) && days.len() < keep.daily as usize {
            days.push(day);
            keep_it = true;
        }
        if !weeks.contains(&week) && weeks.len() < keep.weekly as usize {
            weeks.push(week);
            keep_it = true;
        }
        if keep_it {
            kept.push(backup);
        } else {
            deleted.push(backup);
        }
    }
    (kept, deleted)
}

/// Backs up the admin's own store and device key, consistent under the same
/// store lock every call uses.
///
/// # Errors
///
/// The store is held too long by another process, or the archive cannot be written.
pub async fn backup_admin(app: &App, actor: &Actor) -> anyhow::Result<Backup> {
    let result = backup_admin_inner(app).await;
    match &result {
        Ok(_) => audit(app, actor, "backup admin", None, Ok(())),
        Err(err) => audit(
            app,
            actor,
            "backup admin",
            None,
            Err(("backup", &format!("{err:#}"))),
        ),
    }
    result
}

async fn backup_admin_inner(app: &App) -> anyhow::Result<Backup> {
    let config = app.config();
    let dir = config.backup.dir.join(ADMIN_DIR);
    ensure_private_dir(&config.backup.dir)?;
    ensure_private_dir(&dir)?;
    let keys = keys(config, None)?;
    let at = now();
    let (id, path) = next_path(&dir, "admin", at);
    let staging = dir.join(format!(".{id}.store{}", archive::PARTIAL));
    let result = async {
        let store_copy = {
            let store = app.store.clone();
            let staging = staging.clone();
            tokio::task::spawn_blocking(move || store.copy_to(&staging))
                .await
                .map_err(|err| anyhow!("the copy stopped: {err}"))?
        };
        store_copy?;
        fault_point("backup-admin:copied");
        let device_key = std::fs::read(config.data_dir.join("device.key"))
            .context("cannot read the admin's device key")?;
        let manifest = Manifest {
            format: String::new(),
            version: 0,
            kind: Kind::Admin,
            id: id.clone(),
            tenant: None,
            created_at: at,
            mtp_version: env!("CARGO_PKG_VERSION").to_string(),
            openclaw_image: None,
            openclaw_image_id: None,
            entries: Vec::new(),
        };
        let entries = vec![
            ("mtp.redb".to_string(), Source::File(staging.clone())),
            ("device.key".to_string(), Source::Bytes(device_key)),
        ];
        let path = path.clone();
        tokio::task::spawn_blocking(move || archive::write(&path, &keys, manifest, entries))
            .await
            .map_err(|err| anyhow!("the archive writer stopped: {err}"))?
    }
    .await;
    let _ = std::fs::remove_file(&staging);
    let (_, bytes) = result?;
    Ok(Backup {
        id,
        tenant: None,
        path,
        bytes,
        created_at: at,
    })
}

/// Puts an admin archive back into a data dir that has no store yet: the
/// store and the device key. Runs without an `App` (there is no store to open).
///
/// # Errors
///
/// The data dir has a store already, or the archive is refused; nothing
/// changed then.
pub fn restore_admin(
    config: &AdminConfig,
    archive_path: &Path,
    identity: Option<&Path>,
) -> Result<AdminRestored, RestoreError> {
    let store_path = config.store_path();
    if store_path.exists() {
        return Err(RestoreError::Refused(format!(
            "{} exists; restore-admin only fills an empty data dir, so move that store away first",
            store_path.display()
        )));
    }
    if !archive_path.is_file() {
        return Err(RestoreError::Refused(format!(
            "{} is not a file",
            archive_path.display()
        )));
    }
    ensure_private_dir(&config.data_dir)?;
    let keys = keys(config, identity)?;
    let staged_store = config
        .data_dir
        .join(format!(".mtp.redb.restore{}", archive::PARTIAL));
    let staged_key = config
        .data_dir
        .join(format!(".device.key.restore{}", archive::PARTIAL));
    for stale in [&staged_store, &staged_key] {
        let _ = std::fs::remove_file(stale);
    }
    let result = (|| {
        let manifest = archive::read(archive_path, &keys, |manifest, name, reader| {
            if manifest.kind != Kind::Admin {
                bail!("it is a tenant's backup, not the admin's; restore it with backup restore");
            }
            let target = match name {
                "mtp.redb" => &staged_store,
                "device.key" => &staged_key,
                other => bail!("it holds an entry MTP does not know: {other}"),
            };
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(target)
                .with_context(|| format!("cannot create {}", target.display()))?;
            std::io::copy(reader, &mut file)?;
            file.sync_all()?;
            Ok(())
        })?;
        if !staged_store.is_file() {
            return Err(RestoreError::Refused(
                "the archive holds no store".to_string(),
            ));
        }
        let store_bytes = std::fs::metadata(&staged_store)
            .map(|m| m.len())
            .unwrap_or(0);
        let device_key = config.data_dir.join("device.key");
        if staged_key.is_file() {
            std::fs::rename(&staged_key, &device_key)
                .with_context(|| format!("cannot write {}", device_key.display()))?;
        }
        // Last: the store's presence says the restore is complete.
        std::fs::hard_link(&staged_store, &store_path)
            .with_context(|| format!("cannot write {}", store_path.display()))?;
        std::fs::set_permissions(&store_path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot set mode 0600 on {}", store_path.display()))?;
        Ok(AdminRestored {
            backup_id: manifest.id,
            store_bytes,
        })
    })();
    for staged in [&staged_store, &staged_key] {
        let _ = std::fs::remove_file(staged);
    }
    result
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
                && remove_staging(&entry.path()).is_ok()
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
    archive::export_tree(&state, tenant.as_str(), EXPORT_SKIP, sessions, target)
}

/// What a client's export leaves out at the top of the state dir: MTP's and
/// the operator's secrets and the gateway's machinery. The gateway's SQLite
/// stores (`state/`, and any `*.sqlite` below) hold its device tokens and
/// credentials beside the sessions, so sessions come from the gateway itself.
const EXPORT_SKIP: &[&str] = &[
    "openclaw.json",
    "openclaw.json.bak",
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
    let sessions = sessions_for_export(app, tenant).await;
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
