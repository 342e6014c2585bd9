//! The embedded redb store: tenants, secrets, audit log and schema meta, with
//! typed access. Nothing outside `store/` names a table or a key encoding.
//!
//! # One store, two processes
//!
//! redb lets one process open a file at a time. The admin never keeps the file
//! open: every call opens it, runs one transaction and closes it again, so the CLI
//! and `mtp serve` can both work on the same data dir. A call that finds the file
//! held by another process waits for it (up to 15 s, `OPEN_BACKOFF`) and then gives up with
//! `Error::Busy`.

mod records;
mod usage;

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use redb::{AccessGuard, Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::backoff::{Attempt, Backoff, GaveUp};
use crate::tenant::{AlertState, Check, Secret, SecretKind, TenantId, TenantRecord};

pub use records::{AuditEntry, Outcome};
pub use usage::{
    BudgetFacts, BudgetMarks, BudgetRecord, DayUsage, ModelDayUsage, Ratcheted, Suspension,
    UsageFigures,
};

/// The schema this binary writes. Raise it with a migration in `migrate`.
pub const SCHEMA_VERSION: u64 = 1;

/// How a call waits for another process to release the file: short pauses,
/// since transactions are milliseconds long; 15 s in all means something is stuck.
const OPEN_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(2),
    max: Duration::from_millis(50),
    give_up_after: Duration::from_secs(15),
};

/// Tells apart the temporary files of concurrent first opens in one process.
static NEXT_TEMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
/// Key: (tenant id, secret kind).
const SECRETS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("secrets");
/// Key: sequence number; append-only.
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// How far out of time order the audit log may be: entries come from more than
/// one process (the CLI and `mtp serve`), each stamping its own clock reading
/// before it waits for the file.
const AUDIT_CLOCK_SLACK: i64 = 300;
/// Key: (tenant id, check name).
const ALERTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("alerts");
/// Key: Telegram chat id of an operator; value: the bot's encoded dialogue state.
const DIALOGUES: TableDefinition<i64, &[u8]> = TableDefinition::new("dialogues");
/// A tenant's memory samples: (unix seconds, bytes), oldest first.
pub type MemorySeries = Vec<(i64, u64)>;

/// Key: tenant id; value: its newest memory samples, `[[unix seconds, bytes], …]`
/// (JSON), oldest first.
const FOOTPRINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("footprints");

/// Key: `current`; value: the newest fleet rollout, as `fleet::rollout`
/// encodes it (JSON with its own version field).
const ROLLOUTS: TableDefinition<&str, &[u8]> = TableDefinition::new("rollouts");

/// Failures a caller may branch on; everything else is `Other`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the store {path} was written by a newer MTP Admin (schema {found}, this binary knows {known}); upgrade mtp before using this data dir"
    )]
    TooNew {
        path: PathBuf,
        found: u64,
        known: u64,
    },
    #[error(
        "the store {path} is held by another process for over {waited:?}; is a stuck mtp running? (check with `ps aux | grep mtp`)"
    )]
    Busy { path: PathBuf, waited: Duration },
    #[error("tenant {0} already exists")]
    Exists(TenantId),
    #[error("store {path}: {source}")]
    Other {
        path: PathBuf,
        #[source]
        source: anyhow::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// A handle on the store file; cheap to clone. Calls from one process are
/// serialized by an in-process lock, calls from others by redb's file lock.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    local: Arc<Mutex<()>>,
}

impl Store {
    /// Opens (creating if needed) the store at `path`, mode 0600, and runs migrations.
    ///
    /// # Errors
    ///
    /// `TooNew` for a file from a newer binary; `Busy` if another process holds it
    /// too long; `Other` for I/O and redb failures.
    pub fn open(path: &Path) -> Result<Store> {
        let store = Store {
            path: path.to_path_buf(),
            local: Arc::new(Mutex::new(())),
        };
        if !path.exists() {
            store.create_file()?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|err| store.other(anyhow::Error::new(err).context("cannot set mode 0600")))?;
        store.with_db(migrate).map_err(|err| match err {
            Error::TooNew { found, known, .. } => Error::TooNew {
                path: path.to_path_buf(),
                found,
                known,
            },
            err => err,
        })?;
        Ok(store)
    }

    /// Makes the store file, race-free: a complete, migrated store is built
    /// under a temporary name (0600 from its first byte) and hard-linked into
    /// place. Of several processes starting at once on a fresh data dir, one
    /// link wins; the others find the file there and simply open it.
    fn create_file(&self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let name = self
            .path
            .file_name()
            .map_or_else(|| "store".into(), |name| name.to_string_lossy());
        let temp = dir.join(format!(
            ".{name}.new-{}-{}",
            std::process::id(),
            NEXT_TEMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let result = (|| -> anyhow::Result<()> {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
                .with_context(|| format!("cannot create {}", temp.display()))?;
            {
                // redb accepts the empty file and initializes it.
                let db = Database::create(&temp)
                    .with_context(|| format!("cannot initialize {}", temp.display()))?;
                migrate(&db)?;
            }
            match fs::hard_link(&temp, &self.path) {
                Ok(()) => Ok(()),
                // Another process got there first: its file is complete.
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                Err(err) => {
                    Err(anyhow::Error::new(err).context("cannot link the store file into place"))
                }
            }
        })();
        let _ = fs::remove_file(&temp);
        result.map_err(|err| self.other(err.context("cannot create the store file")))
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version the file records (`None` before its first migration).
    ///
    /// # Errors
    ///
    /// The file cannot be opened or read.
    pub fn schema_version(&self) -> Result<Option<u64>> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let Some(meta) = open_if_exists(&txn, META)? else {
                return Ok(None);
            };
            Ok(meta.get("schema_version")?.map(|v| v.value()))
        })
    }

    fn other(&self, source: anyhow::Error) -> Error {
        Error::Other {
            path: self.path.clone(),
            source,
        }
    }

    /// Opens the file, runs `f`, closes the file. On a multi-threaded tokio
    /// runtime the call moves off the async worker first (`block_in_place`):
    /// a wait for another process's transaction must never stall the bot or
    /// the monitor.
    pub(super) fn with_db<T>(&self, f: impl FnOnce(&Database) -> anyhow::Result<T>) -> Result<T> {
        off_the_async_workers(|| self.with_db_here(f))
    }

    fn with_db_here<T>(&self, f: impl FnOnce(&Database) -> anyhow::Result<T>) -> Result<T> {
        // The guard only orders calls; a poisoned lock protects no data.
        let _guard = self
            .local
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let opened = OPEN_BACKOFF.retry_blocking(|| match Database::create(&self.path) {
            Ok(db) => Attempt::Done(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => Attempt::Retry(Error::Busy {
                path: self.path.clone(),
                waited: OPEN_BACKOFF.give_up_after,
            }),
            Err(err) => {
                Attempt::Fail(self.other(anyhow::Error::new(err).context("cannot open the store")))
            }
        });
        let db = opened.map_err(GaveUp::into_inner)?;
        f(&db).map_err(|err| match err.downcast::<Error>() {
            Ok(typed) => typed,
            Err(err) => self.other(err),
        })
    }

    /// Copies the whole store file to `target` (created new, 0600) while holding
    /// it open, so no other process writes meanwhile: a consistent copy as of
    /// the last committed transaction.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` when the
    /// copy cannot be written.
    pub fn copy_to(&self, target: &Path) -> Result<u64> {
        self.with_db_here(|_db| {
            let mut from = fs::File::open(&self.path)
                .with_context(|| format!("cannot read {}", self.path.display()))?;
            let mut to = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(target)
                .with_context(|| format!("cannot create {}", target.display()))?;
            let bytes = std::io::copy(&mut from, &mut to)
                .with_context(|| format!("cannot write {}", target.display()))?;
            to.sync_all()
                .with_context(|| format!("cannot write {}", target.display()))?;
            Ok(bytes)
        })
    }

    /// All tenant records, ordered by id.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn tenants(&self) -> Result<Vec<TenantRecord>> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let Some(table) = open_if_exists(&txn, TENANTS)? else {
                return Ok(Vec::new());
            };
            let mut res = Vec::new();
            for row in table.iter()? {
                let (_, value) = row?;
                res.push(records::decode_tenant(value.value())?);
            }
            Ok(res)
        })
    }

    /// The record of one tenant, if there is one.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let Some(table) = open_if_exists(&txn, TENANTS)? else {
                return Ok(None);
            };
            match table.get(id.as_str())? {
                Some(value) => Ok(Some(records::decode_tenant(value.value())?)),
                None => Ok(None),
            }
        })
    }

    /// Inserts a new tenant, refusing an id that exists. `allocate` sees every
    /// existing record inside the same write transaction, so the port and subnet
    /// it picks cannot be taken by a concurrent create.
    ///
    /// # Errors
    ///
    /// `Exists` when a record with that id is there already; otherwise as
    /// for [`Store::tenants`].
    pub fn insert_tenant(
        &self,
        id: &TenantId,
        allocate: impl FnOnce(&[TenantRecord]) -> anyhow::Result<TenantRecord>,
    ) -> Result<TenantRecord> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            let record = {
                let mut table = txn.open_table(TENANTS)?;
                if table.get(id.as_str())?.is_some() {
                    return Err(Error::Exists(id.clone()).into());
                }
                let mut existing = Vec::new();
                for row in table.iter()? {
                    let (_, value) = row?;
                    existing.push(records::decode_tenant(value.value())?);
                }
                let record = allocate(&existing)?;
                table.insert(id.as_str(), records::encode_tenant(&record)?.as_slice())?;
                record
            };
            txn.commit()?;
            Ok(record)
        })
    }

    /// Changes the fields an action owns in one tenant's record, read and
    /// written in one write transaction, so no action ever writes back a copy
    /// read minutes earlier over someone else's change. `change` sees the
    /// record as it is now; an `Err` from it aborts and writes nothing. `None`
    /// when there is no such tenant (nothing written).
    ///
    /// # Errors
    ///
    /// The store cannot be read or written, or `change` refused.
    pub fn update_tenant(
        &self,
        id: &TenantId,
        change: impl FnOnce(&mut TenantRecord) -> anyhow::Result<()>,
    ) -> Result<Option<TenantRecord>> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            let record = {
                let mut table = txn.open_table(TENANTS)?;
                let current = match table.get(id.as_str())? {
                    Some(value) => records::decode_tenant(value.value())?,
                    None => return Ok(None),
                };
                let mut record = current;
                change(&mut record)?;
                table.insert(id.as_str(), records::encode_tenant(&record)?.as_slice())?;
                record
            };
            txn.commit()?;
            Ok(Some(record))
        })
    }

    /// Replaces the record of an existing tenant.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn put_tenant(&self, record: &TenantRecord) -> Result<()> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(TENANTS)?;
                table.insert(
                    record.id.as_str(),
                    records::encode_tenant(record)?.as_slice(),
                )?;
            }
            txn.commit()?;
            Ok(())
        })
    }

    /// Removes a tenant's record, secrets and alert states in one transaction;
    /// its usage ledger and budget rows too unless `keep_ledger` (a removed
    /// client's spend stays billable until its data is purged).
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn remove_tenant(&self, id: &TenantId, keep_ledger: bool) -> Result<bool> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            let existed = {
                let mut table = txn.open_table(TENANTS)?;
                let existed = table.remove(id.as_str())?.is_some();
                let mut secrets = txn.open_table(SECRETS)?;
                for kind in SecretKind::ALL {
                    secrets.remove((id.as_str(), kind.as_str()))?;
                }
                let mut alerts = txn.open_table(ALERTS)?;
                for check in Check::ALL {
                    alerts.remove((id.as_str(), check.as_str()))?;
                }
                if !keep_ledger {
                    usage::remove_tenant_rows(&txn, id.as_str())?;
                }
                existed
            };
            txn.commit()?;
            Ok(existed)
        })
    }

    /// Stores (or replaces) one secret of a tenant.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn put_secret(
        &self,
        id: &TenantId,
        kind: SecretKind,
        value: &Secret<String>,
    ) -> Result<()> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(SECRETS)?;
                table.insert((id.as_str(), kind.as_str()), value.expose().as_bytes())?;
            }
            txn.commit()?;
            Ok(())
        })
    }

    /// Forgets one secret of a tenant (nothing to do when there is none).
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn remove_secret(&self, id: &TenantId, kind: SecretKind) -> Result<()> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(SECRETS)?;
                table.remove((id.as_str(), kind.as_str()))?;
            }
            txn.commit()?;
            Ok(())
        })
    }

    /// One secret of a tenant, if it is stored.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn secret(&self, id: &TenantId, kind: SecretKind) -> Result<Option<Secret<String>>> {
        Ok(self
            .secrets(id)?
            .into_iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v))
    }

    /// Every secret a tenant has, for redaction and for building its cell.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn secrets(&self, id: &TenantId) -> Result<Vec<(SecretKind, Secret<String>)>> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let Some(table) = open_if_exists(&txn, SECRETS)? else {
                return Ok(Vec::new());
            };
            let mut res = Vec::new();
            for kind in SecretKind::ALL {
                if let Some(value) = table.get((id.as_str(), kind.as_str()))? {
                    let text = String::from_utf8(value.value().to_vec()).map_err(|_| {
                        anyhow::anyhow!("secret {} of {id} is not UTF-8", kind.as_str())
                    })?;
                    res.push((kind, Secret::new(text)));
                }
            }
            Ok(res)
        })
    }

    /// Every tenant's secrets in one read (for a sweep over the whole fleet).
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn all_secrets(&self) -> Result<Vec<(TenantId, SecretKind, Secret<String>)>> {
        self.with_db(|db| {
            read_all(db, SECRETS, |key, value| {
                let (tenant, kind) = key.value();
                let (Ok(tenant), Some(kind)) = (
                    tenant.parse::<TenantId>(),
                    SecretKind::ALL.into_iter().find(|k| k.as_str() == kind),
                ) else {
                    return Ok(None);
                };
                let Ok(text) = String::from_utf8(value.value().to_vec()) else {
                    return Ok(None);
                };
                Ok(Some((tenant, kind, Secret::new(text))))
            })
        })
    }

    /// Appends one entry to the audit log.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn audit(&self, entry: &AuditEntry) -> Result<()> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(AUDIT)?;
                let next = match table.last()? {
                    Some((key, _)) => key.value() + 1,
                    None => 1,
                };
                table.insert(next, records::encode_audit(entry)?.as_slice())?;
            }
            txn.commit()?;
            Ok(())
        })
    }

    /// The last `limit` audit entries, oldest first; all of them for `tenant` if given.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn audit_log(&self, tenant: Option<&TenantId>, limit: usize) -> Result<Vec<AuditEntry>> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let Some(table) = open_if_exists(&txn, AUDIT)? else {
                return Ok(Vec::new());
            };
            let mut res = Vec::new();
            for row in table.iter()?.rev() {
                if res.len() >= limit {
                    break;
                }
                let (_, value) = row?;
                let entry = records::decode_audit(value.value())?;
                if tenant.is_some_and(|t| entry.tenant.as_deref() != Some(t.as_str())) {
                    continue;
                }
                res.push(entry);
            }
            res.reverse();
            Ok(res)
        })
    }
}

impl Store {
    /// Visits the audit entries written at or after `since` (unix seconds),
    /// newest first. The log is appended in time order, so the walk stops a
    /// little past the first older entry: its cost is that of the range, not of
    /// the log.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn visit_audit_since(&self, since: i64, mut visit: impl FnMut(AuditEntry)) -> Result<()> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let Some(table) = open_if_exists(&txn, AUDIT)? else {
                return Ok(());
            };
            for row in table.iter()?.rev() {
                let (_, value) = row?;
                let entry = records::decode_audit(value.value())?;
                if entry.at < since - AUDIT_CLOCK_SLACK {
                    break;
                }
                if entry.at >= since {
                    visit(entry);
                }
            }
            Ok(())
        })
    }

    /// Deletes, in one transaction, the audit entries older than `before`
    /// (unix seconds) and the oldest beyond the newest `max_rows`; returns how
    /// many went.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn prune_audit(&self, before: i64, max_rows: u64) -> Result<u64> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            let removed = {
                let mut table = txn.open_table(AUDIT)?;
                let mut rows = table.len()?;
                let mut removed = 0;
                loop {
                    let (key, old) = match table.first()? {
                        Some((key, value)) => (
                            key.value(),
                            // An entry this binary cannot read goes only when the log is too long.
                            records::decode_audit(value.value())
                                .is_ok_and(|entry| entry.at < before),
                        ),
                        None => break,
                    };
                    if !old && rows <= max_rows {
                        break;
                    }
                    table.remove(key)?;
                    rows -= 1;
                    removed += 1;
                }
                removed
            };
            txn.commit()?;
            Ok(removed)
        })
    }
}

impl Store {
    /// The raw dialogue state of an operator's chat (the bot encodes it).
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn dialogue(&self, chat_id: i64) -> Result<Option<Vec<u8>>> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(DIALOGUES)?;
            Ok(table.get(chat_id)?.map(|value| value.value().to_vec()))
        })
    }

    /// Stores an operator's encoded dialogue state.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn put_dialogue(&self, chat_id: i64, bytes: &[u8]) -> Result<()> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            txn.open_table(DIALOGUES)?.insert(chat_id, bytes)?;
            txn.commit()?;
            Ok(())
        })
    }

    /// Forgets an operator's dialogue state.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn remove_dialogue(&self, chat_id: i64) -> Result<()> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            txn.open_table(DIALOGUES)?.remove(chat_id)?;
            txn.commit()?;
            Ok(())
        })
    }

    /// Every stored dialogue, for the idle-expiry sweep.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn dialogues(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        self.with_db(|db| {
            read_all(db, DIALOGUES, |key, value| {
                Ok(Some((key.value(), value.value().to_vec())))
            })
        })
    }
}

impl Store {
    /// Every stored alert state.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn alert_states(&self) -> Result<Vec<(TenantId, Check, AlertState)>> {
        self.with_db(|db| {
            read_all(db, ALERTS, |key, value| {
                let (tenant, check) = key.value();
                let (Ok(tenant), Some(check)) = (tenant.parse::<TenantId>(), Check::parse(check))
                else {
                    return Ok(None);
                };
                Ok(Some((tenant, check, records::decode_alert(value.value())?)))
            })
        })
    }

    /// Saves many alert states in one transaction (one sweep's worth).
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures or a row that does not decode.
    pub fn put_alert_states(&self, states: &[(TenantId, Check, AlertState)]) -> Result<()> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(ALERTS)?;
                for (tenant, check, state) in states {
                    table.insert(
                        (tenant.as_str(), check.as_str()),
                        records::encode_alert(state)?.as_slice(),
                    )?;
                }
            }
            txn.commit()?;
            Ok(())
        })
    }
}

impl Store {
    /// Adds one memory sample per tenant (one sweep's worth) in one
    /// transaction, keeping each tenant's newest `keep`; tenants not in
    /// `samples` and without a record are forgotten.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures.
    pub fn add_footprints(&self, at: i64, samples: &[(TenantId, u64)], keep: usize) -> Result<()> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(FOOTPRINTS)?;
                for (tenant, bytes) in samples {
                    let mut series: Vec<(i64, u64)> = match table.get(tenant.as_str())? {
                        Some(value) => serde_json::from_slice(value.value()).unwrap_or_default(),
                        None => Vec::new(),
                    };
                    series.push((at, *bytes));
                    let extra = series.len().saturating_sub(keep);
                    series.drain(..extra);
                    table.insert(tenant.as_str(), serde_json::to_vec(&series)?.as_slice())?;
                }
                let tenants = txn.open_table(TENANTS)?;
                let mut gone = Vec::new();
                for row in table.iter()? {
                    let (key, _) = row?;
                    if tenants.get(key.value())?.is_none() {
                        gone.push(key.value().to_string());
                    }
                }
                for key in gone {
                    table.remove(key.as_str())?;
                }
            }
            txn.commit()?;
            Ok(())
        })
    }

    /// Every tenant's stored memory samples, oldest first.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures.
    pub fn footprints(&self) -> Result<Vec<(TenantId, MemorySeries)>> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let Some(table) = open_if_exists(&txn, FOOTPRINTS)? else {
                return Ok(Vec::new());
            };
            let mut all = Vec::new();
            for row in table.iter()? {
                let (key, value) = row?;
                let Ok(tenant) = key.value().parse::<TenantId>() else {
                    continue;
                };
                let series = serde_json::from_slice(value.value()).unwrap_or_default();
                all.push((tenant, series));
            }
            Ok(all)
        })
    }
}

impl Store {
    /// The newest fleet rollout's encoding, if there ever was one.
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures.
    pub fn rollout(&self) -> Result<Option<Vec<u8>>> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let Some(table) = open_if_exists(&txn, ROLLOUTS)? else {
                return Ok(None);
            };
            Ok(table.get("current")?.map(|value| value.value().to_vec()))
        })
    }

    /// Changes the newest rollout in one transaction: `change` gets its
    /// encoding (if any) and returns the new one (or `None` to keep it).
    ///
    /// # Errors
    ///
    /// `Busy` when another process holds the file too long; `Other` for I/O and redb
    /// failures, or whatever `change` refused with.
    pub fn update_rollout(
        &self,
        change: impl FnOnce(Option<&[u8]>) -> anyhow::Result<Option<Vec<u8>>>,
    ) -> Result<Option<Vec<u8>>> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            let written = {
                let mut table = txn.open_table(ROLLOUTS)?;
                let current = table.get("current")?.map(|value| value.value().to_vec());
                let next = change(current.as_deref())?;
                if let Some(next) = &next {
                    table.insert("current", next.as_slice())?;
                }
                next.or(current)
            };
            txn.commit()?;
            Ok(written)
        })
    }
}

/// Runs blocking store work off tokio's async workers when called on a
/// multi-threaded runtime (the product's); elsewhere (a current-thread test
/// runtime, plain threads) it just runs.
fn off_the_async_workers<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Opens `definition` for reading; `None` when the table was never written.
fn open_if_exists<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    definition: TableDefinition<K, V>,
) -> anyhow::Result<Option<redb::ReadOnlyTable<K, V>>> {
    match txn.open_table(definition) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Every row of a table in one read, as `decode` makes it; a row `decode`
/// turns into `None` (a key this binary does not know) is skipped.
fn read_all<K: redb::Key + 'static, V: redb::Value + 'static, T>(
    db: &Database,
    definition: TableDefinition<K, V>,
    mut decode: impl FnMut(AccessGuard<'_, K>, AccessGuard<'_, V>) -> anyhow::Result<Option<T>>,
) -> anyhow::Result<Vec<T>> {
    let txn = db.begin_read()?;
    let table = txn.open_table(definition)?;
    let mut res = Vec::new();
    for row in table.iter()? {
        let (key, value) = row?;
        res.extend(decode(key, value)?);
    }
    Ok(res)
}

fn migrate(db: &Database) -> anyhow::Result<()> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        let found = meta.get("schema_version")?.map(|v| v.value());
        match found {
            None => {
                meta.insert("schema_version", SCHEMA_VERSION)?;
            }
            Some(found) if found > SCHEMA_VERSION => {
                return Err(Error::TooNew {
                    path: PathBuf::new(),
                    found,
                    known: SCHEMA_VERSION,
                }
                .into());
            }
            Some(_) => {}
        }
        // Create every table so readers never meet a missing one.
        txn.open_table(TENANTS)?;
        txn.open_table(SECRETS)?;
        txn.open_table(AUDIT)?;
        txn.open_table(DIALOGUES)?;
        txn.open_table(ALERTS)?;
        txn.open_table(usage::USAGE_DAILY)?;
        txn.open_table(usage::USAGE_MODELS)?;
        txn.open_table(usage::BUDGETS)?;
        txn.open_table(usage::BUDGET_NOTICES)?;
    }
    txn.commit()?;
    Ok(())
}

/// Sets the schema version; only for tests that prove a newer file is refused.
///
/// # Errors
///
/// The file cannot be opened or written.
#[doc(hidden)]
pub fn force_schema_version(path: &Path, version: u64) -> anyhow::Result<()> {
    let db = Database::create(path)?;
    let txn = db.begin_write()?;
    txn.open_table(META)?.insert("schema_version", version)?;
    txn.commit()?;
    Ok(())
}
