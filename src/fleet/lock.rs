//! Per-tenant operation locks: at most one mutating action per tenant at a
//! time, across threads, processes, PID namespaces (the CLI run with
//! `docker run`/`docker exec` beside `mtp serve`) and hosts that share the
//! data dir. Each is an OS file lock (`flock`) on `<data>/locks/<id>.lock`,
//! held for the whole action and released by the kernel when the holder ends,
//! however it ends: a killed process never leaves a stale lock behind, so "the
//! lock is free" is the proof that no action on the tenant is still running.
//!
//! A second action is refused at once (`Busy`), never queued: a Telegram
//! handler must not hang behind a five-minute upgrade. Lock files are small and
//! kept (deleting one while another process has it open would split the lock).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::Context;

use crate::fleet::{Actor, App, ensure_private_dir, now};
use crate::tenant::TenantId;

/// The actions that take a tenant's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Start,
    Stop,
    Restart,
    Upgrade,
    Remove,
    Pair,
    Hooks,
    Suspend,
    Resume,
    Heal,
    Repair,
    Backup,
    Restore,
    Sleep,
    Wake,
    Resize,
    Config,
    Move,
}

impl Op {
    const ALL: [Op; 19] = [
        Op::Create,
        Op::Start,
        Op::Stop,
        Op::Restart,
        Op::Upgrade,
        Op::Remove,
        Op::Pair,
        Op::Hooks,
        Op::Suspend,
        Op::Resume,
        Op::Heal,
        Op::Repair,
        Op::Backup,
        Op::Restore,
        Op::Sleep,
        Op::Wake,
        Op::Resize,
        Op::Config,
        Op::Move,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Start => "start",
            Op::Stop => "stop",
            Op::Restart => "restart",
            Op::Upgrade => "upgrade",
            Op::Remove => "remove",
            Op::Pair => "pair",
            Op::Hooks => "hooks",
            Op::Suspend => "suspend",
            Op::Resume => "resume",
            Op::Heal => "heal",
            Op::Repair => "repair",
            Op::Backup => "backup",
            Op::Restore => "restore",
            Op::Sleep => "sleep",
            Op::Wake => "wake",
            Op::Resize => "resize",
            Op::Config => "config",
            Op::Move => "move",
        }
    }

    /// The participle for "acme is being …".
    #[must_use]
    pub fn being(self) -> &'static str {
        match self {
            Op::Create => "created",
            Op::Start => "started",
            Op::Stop => "stopped",
            Op::Restart => "restarted",
            Op::Upgrade => "upgraded",
            Op::Remove => "removed",
            Op::Pair => "paired",
            Op::Hooks => "reconfigured (hooks)",
            Op::Suspend => "suspended",
            Op::Resume => "resumed",
            Op::Heal => "healed",
            Op::Repair => "repaired",
            Op::Backup => "backed up",
            Op::Restore => "restored",
            Op::Sleep => "put to sleep",
            Op::Wake => "woken",
            Op::Resize => "resized",
            Op::Config => "reconfigured",
            Op::Move => "moved",
        }
    }
}

/// Another action holds the tenant's lock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", busy_message(self))]
pub struct Busy {
    pub tenant: TenantId,
    /// What the holder does, when its lock file says so.
    pub op: Option<Op>,
    /// Who: the audit label (`cli:alice`, `tg:42`, `system:monitor`).
    pub by: Option<String>,
    /// Unix seconds when it began.
    pub since: Option<i64>,
}

fn busy_message(busy: &Busy) -> String {
    let what = busy.op.map_or("changed", Op::being);
    let by = busy.by.as_deref().unwrap_or("another process");
    let since = busy.since.map_or_else(String::new, |since| {
        let at = chrono::DateTime::from_timestamp(since, 0).map_or_else(
            || since.to_string(),
            |at| at.format("%H:%M:%S UTC").to_string(),
        );
        format!(" since {at}")
    });
    format!(
        "{} is being {what} by {by}{since}; try again when it finishes",
        busy.tenant
    )
}

/// A held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct Guard {
    _file: File,
}

/// Takes the tenant's lock for `op`, or says who holds it.
///
/// # Errors
///
/// `Busy` (as the error's root) when another action holds it; an I/O error
/// when the lock file cannot be made.
pub fn acquire(app: &App, tenant: &TenantId, op: Op, actor: &Actor) -> anyhow::Result<Guard> {
    let path = lock_path(app, tenant)?;
    let (mut file, taken) = open_and_lock(&path)?;
    if !taken {
        return Err(holder(&mut file, tenant).into());
    }
    // Who holds it, for the refusals of others; the lock does not depend on it.
    let line = format!("{}\t{}\t{}\n", op.as_str(), actor.label(), now());
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(line.as_bytes()));
    if let Err(err) = written {
        tracing::warn!(cause = %err, %tenant, "cannot note the lock holder");
    }
    Ok(Guard { _file: file })
}

/// True when an action holds the tenant's lock right now.
///
/// # Errors
///
/// The lock file cannot be opened.
pub fn is_held(app: &App, tenant: &TenantId) -> anyhow::Result<bool> {
    let path = lock_path(app, tenant)?;
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(err) => {
            return Err(err).with_context(|| format!("cannot open {}", path.display()));
        }
    };
    // Taking it for a moment is the only portable test; it is released on drop.
    Ok(!try_flock(&file)?)
}

/// Who holds a fleet-wide lock, as its file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    /// The audit label of the holder.
    pub(crate) by: Option<String>,
    /// Unix seconds.
    pub(crate) since: Option<i64>,
}

/// Takes a fleet-wide lock by `name` (a rollout), or returns who holds it
/// (`Err` inside the `Ok`: who holds it). The same
/// kernel-released `flock` as a tenant's; `@` keeps its file apart from any
/// tenant's.
///
/// # Errors
///
/// The lock file cannot be made.
pub(crate) fn acquire_fleet(
    app: &App,
    name: &str,
    actor: &Actor,
) -> anyhow::Result<Result<Guard, Holder>> {
    let dir = app.config.data_dir.join("locks");
    ensure_private_dir(&dir)?;
    let path = dir.join(format!("@{name}.lock"));
    let (mut file, taken) = open_and_lock(&path)?;
    if !taken {
        let mut text = String::new();
        let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
        let mut fields = text.trim_end().splitn(2, '\t');
        let by = fields
            .next()
            .filter(|by| !by.is_empty())
            .map(str::to_string);
        let since = fields.next().and_then(|since| since.parse().ok());
        return Ok(Err(Holder { by, since }));
    }
    let line = format!("{}\t{}\n", actor.label(), now());
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(line.as_bytes()));
    if let Err(err) = written {
        tracing::warn!(cause = %err, name, "cannot note the lock holder");
    }
    Ok(Ok(Guard { _file: file }))
}

fn lock_path(app: &App, tenant: &TenantId) -> anyhow::Result<PathBuf> {
    let dir = app.config.data_dir.join("locks");
    ensure_private_dir(&dir)?;
    Ok(dir.join(format!("{}.lock", tenant.as_str())))
}

/// Opens (making it 0600 if new) the lock file at `path` and tries to take
/// it: the file, and whether it was taken.
fn open_and_lock(path: &std::path::Path) -> anyhow::Result<(File, bool)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    let taken = try_flock(&file).with_context(|| format!("cannot lock {}", path.display()))?;
    Ok((file, taken))
}

/// `flock(LOCK_EX | LOCK_NB)`: true when taken, false when someone holds it.
fn try_flock(file: &File) -> anyhow::Result<bool> {
    // SAFETY: the descriptor is open for the duration of the call.
    let res = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if res == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(err.into())
}

/// Reads who holds the lock from its file (best effort).
fn holder(file: &mut File, tenant: &TenantId) -> Busy {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    let mut fields = text.trim_end().splitn(3, '\t');
    let op = fields
        .next()
        .and_then(|name| Op::ALL.into_iter().find(|op| op.as_str() == name));
    let by = fields
        .next()
        .map(str::to_string)
        .filter(|by| !by.is_empty());
    let since = fields.next().and_then(|since| since.parse().ok());
    Busy {
        tenant: tenant.clone(),
        op,
        by,
        since,
    }
}

/// True when `err` is (or wraps) a refusal because another action holds the lock.
#[must_use]
pub fn busy(err: &anyhow::Error) -> Option<&Busy> {
    err.chain().find_map(|cause| cause.downcast_ref::<Busy>())
}
