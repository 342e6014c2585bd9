//! `doctor`: the host and every cell held against what MTP promises — the
//! containers' egress rule, each cell's profile as MTP would make it from its
//! record (capabilities, no-new-privileges, limits, loopback-only ports, its
//! own network, log rotation, mounts), the data dir's modes and owners,
//! secrets only where they belong, images pinned and present, the store's
//! schema and size, and free disk and memory against the fleet's needs.
//!
//! Each `Finding` says what is wrong and the command that fixes it. `--fix`
//! (`doctor(app, Some(actor))`) applies only the repairs that cannot hurt a
//! running cell: file modes and owners, the egress rule, and the limits
//! (`docker update`, in place). Everything else is left to the operator.
//!
//! The egress check asks `iptables -C`; it never sends a packet. Where the
//! admin cannot run iptables (inside its own container), the finding says so
//! and how to check by hand.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::fleet::cell::{cell_spec, check_pinned};
use crate::fleet::create::CELL_UID;
use crate::fleet::{Actor, App, audit, capacity, now};
use crate::runtime::{CellProfile, GATEWAY_PORT};
use crate::tenant::{CellState, Limits, Secret, SecretKind, TenantId, TenantRecord};

/// The chain Docker leaves to the operator for rules on containers' traffic.
const EGRESS_CHAIN: &str = "DOCKER-USER";
/// Kept free on the data dir's disk beside the cells' logs: a backup, the
/// store's growth and a cell's first boot (56 MB, FACTS.md) fit in it.
const DISK_RESERVE: u64 = 2 << 30;
/// A store above this has kept far more audit rows or usage than it needs.
const STORE_LARGE: u64 = 1 << 30;
/// Secrets shorter than this are not searched for: they would match
/// ordinary text, and real tokens and keys are far longer.
const MIN_SECRET_LEN: usize = 12;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A promise is broken: a cell is less isolated or a secret is exposed.
    Critical,
    /// Something drifted or will bite soon, or a check could not be made.
    Warning,
}

impl Severity {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        }
    }
}

/// What a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    Host,
    Tenant(TenantId),
}

impl Subject {
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Subject::Host => "host",
            Subject::Tenant(tenant) => tenant.as_str(),
        }
    }
}

/// The checks, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    Egress,
    Container,
    Profile,
    Limits,
    Ports,
    Network,
    Logs,
    Mounts,
    Files,
    Secrets,
    Image,
    Store,
    Disk,
    Memory,
}

impl Check {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Egress => "egress",
            Check::Container => "container",
            Check::Profile => "profile",
            Check::Limits => "limits",
            Check::Ports => "ports",
            Check::Network => "network",
            Check::Logs => "logs",
            Check::Mounts => "mounts",
            Check::Files => "files",
            Check::Secrets => "secrets",
            Check::Image => "image",
            Check::Store => "store",
            Check::Disk => "disk",
            Check::Memory => "memory",
        }
    }
}

/// One thing that is not as MTP promises. Never holds a secret's value.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub severity: Severity,
    pub subject: Subject,
    pub check: Check,
    /// What is wrong, with the observed and the expected value.
    pub problem: String,
    /// What fixes it.
    pub fix: Fix,
    /// `--fix` repairs it.
    pub fixable: bool,
    repair: Option<Repair>,
}

impl Finding {
    /// Names the finding across runs (the monitor reports each one once): its
    /// subject, check and fix, which stay the same while the problem lasts,
    /// whatever figures the problem carries.
    #[must_use]
    pub fn key(&self) -> String {
        // The problem's words up to its first figure or quote tell apart
        // findings that share a check and a fix ("privileged" vs "no init"),
        // while the figures they carry may change from run to run.
        let what: String = self
            .problem
            .chars()
            .take_while(|c| !c.is_ascii_digit() && *c != '"' && *c != '(')
            .collect();
        format!(
            "{}|{}|{:?}|{}",
            self.subject.as_str(),
            self.check.as_str(),
            self.fix,
            what.trim()
        )
    }
}

/// What fixes a finding: a command for the host's shell as it is, or one of
/// MTP's own actions, which the adapters name in their own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// This shell command (iptables, chmod, chown, docker), on this host.
    Command(String),
    /// This shell command, run as root on the Docker host itself: the admin
    /// could not run it (it runs in a container, or without root).
    OnHost(String),
    /// Docker runs without its iptables rules: start dockerd with them, then run this.
    DockerIptables(String),
    /// Make the cell's container again from its record (remove it, then reconcile).
    Recreate(TenantId),
    /// As `Recreate`, then rotate the secret that was exposed.
    RecreateAndRotate(TenantId),
    /// Reconcile makes the tenant's missing container again from its record.
    Reconcile,
    /// A container of the cell's name that MTP did not make: remove or
    /// rename it (`docker inspect` it first), then reconcile.
    Foreign(String),
    /// The tenant's data is gone: restore its newest backup.
    Restore(TenantId),
    /// Move the tenant to a pinned image.
    Upgrade(TenantId),
    /// Set `cell.image` in the config to a pinned image.
    PinDefaultImage,
    /// Make this path (missing) a 0700 directory.
    MakeDir(PathBuf),
    /// Put the variable's name in place of the secret in this file, then rotate it.
    Unplain(PathBuf),
    /// Run the binary that wrote the store, or restore the admin's backup.
    MatchStore,
    /// Keep fewer audit rows (`audit.keepDays`, `audit.maxRows`).
    PruneAudit,
    /// Free space on the disk of this path (old backups, unused images).
    FreeDisk(PathBuf),
    /// Make room in memory: sleep tenants, move them, or add memory.
    Memory,
}

/// The repairs `--fix` may make: none of them stops or remakes a cell.
#[derive(Debug, Clone, PartialEq)]
enum Repair {
    Mode { path: PathBuf, mode: u32 },
    Owner { path: PathBuf, uid: u32, gid: u32 },
    Egress { uplink: String },
    Limits { tenant: TenantId, limits: Limits },
}

/// What a doctor run found, and with `--fix`, what it repaired.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checkup {
    /// What is wrong now (after the repairs, with `--fix`), worst first.
    pub findings: Vec<Finding>,
    /// Findings `--fix` repaired (gone on the check that followed).
    pub fixed: Vec<Finding>,
    /// Repairs that were tried and failed: the finding and why.
    pub fix_failed: Vec<(Finding, String)>,
    /// Tenants whose cells were checked.
    pub tenants: usize,
}

impl Checkup {
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Checks the host and every cell; with `fix` (the actor asking), applies the
/// safe repairs, audits each, and checks again.
///
/// # Errors
///
/// Docker or the store cannot be read at all (single checks that cannot be
/// made become findings instead).
pub async fn doctor(app: &App, fix: Option<&Actor>) -> anyhow::Result<Checkup> {
    let (findings, tenants) = examine(app).await?;
    let Some(actor) = fix else {
        return Ok(Checkup {
            findings,
            tenants,
            ..Checkup::default()
        });
    };
    let mut tried = Vec::new();
    let mut fix_failed = Vec::new();
    for finding in findings.iter().filter(|f| f.repair.is_some()) {
        let Some(repair) = &finding.repair else {
            continue;
        };
        let tenant = match &finding.subject {
            Subject::Tenant(tenant) => Some(tenant),
            Subject::Host => None,
        };
        match apply(app, repair).await {
            Ok(()) => {
                audit(app, actor, "doctor fix", tenant, Ok(()));
                tried.push(finding.clone());
            }
            Err(err) => {
                let reason = format!("{err:#}");
                audit(
                    app,
                    actor,
                    "doctor fix",
                    tenant,
                    Err((finding.check.as_str(), &reason)),
                );
                fix_failed.push((finding.clone(), reason));
            }
        }
    }
    let (after, tenants) = examine(app).await?;
    let fixed = tried
        .into_iter()
        .filter(|finding| !after.iter().any(|left| left.key() == finding.key()))
        .collect();
    Ok(Checkup {
        findings: after,
        fixed,
        fix_failed,
        tenants,
    })
}

/// Every check once, worst first.
async fn examine(app: &App) -> anyhow::Result<(Vec<Finding>, usize)> {
    let mut findings = Vec::new();
    findings.extend(egress());
    findings.extend(admin_files(app));
    findings.extend(store(app));
    findings.extend(disk(app)?);
    findings.extend(memory(app).await);
    findings.extend(default_image(app).await?);
    let records = app.store.tenants()?;
    let secrets = known_secrets(app)?;
    let mut tenants = 0;
    for record in &records {
        // Creates, removals and upgrades (maintenance) change the cell while
        // they run; they are judged once they are done.
        let in_maintenance = record.maintenance_until.is_some_and(|until| until > now());
        // An action on it now (a resize between Docker and its record, an
        // upgrade) is not drift: judged next time.
        if in_maintenance
            || crate::fleet::lock::is_held(app, &record.id)?
            || !matches!(
                record.state,
                CellState::Running | CellState::Stopped | CellState::Sleeping
            )
        {
            continue;
        }
        tenants += 1;
        findings.extend(cell(app, record, &secrets).await?);
        findings.extend(tenant_files(app, record));
        findings.extend(config_file(app, record, &secrets));
    }
    findings
        .sort_by(|a, b| (a.severity, &a.subject, a.check).cmp(&(b.severity, &b.subject, b.check)));
    Ok((findings, tenants))
}

fn finding(
    severity: Severity,
    subject: &Subject,
    check: Check,
    problem: String,
    fix: Fix,
    repair: Option<Repair>,
) -> Finding {
    Finding {
        severity,
        subject: subject.clone(),
        check,
        problem,
        fix,
        fixable: repair.is_some(),
        repair,
    }
}

/// Opens a file or dir a repair changes, without following a link at its
/// end and only when it really lies inside the data dir: a cell owns its
/// state and auth dirs and could put a link where a file was checked, to
/// make a root `--fix` chmod or chown a host file. The repair then works on
/// this descriptor, never on the path again.
fn open_inside(root: &Path, path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("cannot open {} (a link is not followed)", path.display()))?;
    let kind = file.metadata()?.file_type();
    anyhow::ensure!(
        kind.is_file() || kind.is_dir(),
        "{} is neither a file nor a dir; not touching it",
        path.display()
    );
    let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .with_context(|| format!("cannot tell where {} lies", path.display()))?;
    let root = std::fs::canonicalize(root)
        .with_context(|| format!("cannot resolve {}", root.display()))?;
    anyhow::ensure!(
        real.starts_with(&root),
        "{} leads out of the data dir (to {}); not touching it",
        path.display(),
        real.display()
    );
    Ok(file)
}

async fn apply(app: &App, repair: &Repair) -> anyhow::Result<()> {
    match repair {
        Repair::Mode { path, mode } => {
            let file = open_inside(&app.config.data_dir, path)?;
            file.set_permissions(std::fs::Permissions::from_mode(*mode))
                .with_context(|| format!("cannot chmod {:o} {}", mode, path.display()))
        }
        Repair::Owner { path, uid, gid } => {
            let file = open_inside(&app.config.data_dir, path)?;
            std::os::unix::fs::fchown(&file, Some(*uid), Some(*gid))
                .with_context(|| format!("cannot chown {uid}:{gid} {}", path.display()))
        }
        Repair::Egress { uplink } => {
            let output = std::process::Command::new("iptables")
                .args(["-I", EGRESS_CHAIN, "-o", uplink, "-j", "DROP"])
                .output()
                .context("cannot run iptables")?;
            if !output.status.success() {
                anyhow::bail!(
                    "iptables -I {EGRESS_CHAIN} -o {uplink} -j DROP failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            Ok(())
        }
        Repair::Limits { tenant, limits } => app
            .runtime
            .update_limits(tenant, limits)
            .await
            .with_context(|| format!("cannot update the limits of {tenant}'s cell")),
    }
}

// ---- egress ----

/// The interface of the default route, from the kernel's routing table.
fn uplink() -> anyhow::Result<Option<String>> {
    let table =
        std::fs::read_to_string("/proc/net/route").context("cannot read /proc/net/route")?;
    Ok(default_route(&table))
}

/// The interface of the first default route (destination and mask 0) in
/// `/proc/net/route`.
fn default_route(table: &str) -> Option<String> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [iface, "00000000", _, _, _, _, _, "00000000", ..] => Some((*iface).to_string()),
            _ => None,
        }
    })
}

fn egress() -> Option<Finding> {
    let host = Subject::Host;
    let uplink = match uplink() {
        Ok(Some(uplink)) => uplink,
        Ok(None) => {
            return Some(finding(
                Severity::Warning,
                &host,
                Check::Egress,
                "cannot check the egress rule: this host has no default route, so its uplink is unknown".to_string(),
                Fix::OnHost(
                    "ip route show default; iptables -C DOCKER-USER -o <uplink> -j DROP".to_string(),
                ),
                None,
            ));
        }
        Err(err) => {
            return Some(finding(
                Severity::Warning,
                &host,
                Check::Egress,
                format!("cannot check the egress rule: {err:#}"),
                Fix::OnHost(
                    "IF=$(ip route show default | awk '{print $5; exit}'); iptables -C DOCKER-USER -o \"$IF\" -j DROP".to_string(),
                ),
                None,
            ));
        }
    };
    let check = format!("iptables -C {EGRESS_CHAIN} -o {uplink} -j DROP");
    let insert = format!("iptables -I {EGRESS_CHAIN} -o {uplink} -j DROP");
    let output = std::process::Command::new("iptables")
        .args(["-C", EGRESS_CHAIN, "-o", &uplink, "-j", "DROP"])
        .output();
    let output = match output {
        Ok(output) => output,
        Err(err) => {
            return Some(finding(
                Severity::Warning,
                &host,
                Check::Egress,
                format!(
                    "cannot check the egress rule: iptables cannot be run here ({err}); the admin may run in a container"
                ),
                Fix::OnHost(format!("{check} || {insert}")),
                None,
            ));
        }
    };
    if output.status.success() {
        return None;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = stderr.lines().next().unwrap_or("").trim().to_string();
    match egress_verdict(output.status.code(), &stderr) {
        EgressVerdict::Missing => Some(finding(
            Severity::Critical,
            &host,
            Check::Egress,
            format!("the egress rule is missing: cells can send traffic out of {uplink}"),
            Fix::Command(insert),
            Some(Repair::Egress { uplink }),
        )),
        EgressVerdict::NoChain => Some(finding(
            Severity::Critical,
            &host,
            Check::Egress,
            format!(
                "the {EGRESS_CHAIN} chain does not exist ({said}): Docker runs without its iptables rules, so nothing holds cells' traffic back"
            ),
            Fix::DockerIptables(insert),
            None,
        )),
        EgressVerdict::Unknown => Some(finding(
            Severity::Warning,
            &host,
            Check::Egress,
            format!("cannot check the egress rule: iptables says {said:?}"),
            Fix::OnHost(format!("{check} || {insert}")),
            None,
        )),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum EgressVerdict {
    Missing,
    NoChain,
    Unknown,
}

/// What a failed `iptables -C` means: exit 1 with "Bad rule" is a missing
/// rule; "No chain" a missing chain; anything else (no permission, no
/// iptables module) means the rule could not be checked.
fn egress_verdict(code: Option<i32>, stderr: &str) -> EgressVerdict {
    if stderr.contains("No chain/target/match") || stderr.contains("chain `DOCKER-USER' in table") {
        return EgressVerdict::NoChain;
    }
    if code == Some(1)
        && (stderr.contains("Bad rule") || stderr.contains("does a matching rule exist"))
    {
        return EgressVerdict::Missing;
    }
    EgressVerdict::Unknown
}

// ---- files ----

/// How a path must look: its mode bits that matter and its owner.
struct Want<'a> {
    path: &'a Path,
    dir: bool,
    /// The exact mode (0700 or 0600).
    mode: u32,
    /// `None`: whoever runs the admin.
    owner: Option<(u32, u32)>,
}

fn admin_files(app: &App) -> Vec<Finding> {
    let data = &app.config.data_dir;
    let store = app.config.store_path();
    let key = data.join("device.key");
    let tenants = app.config.tenants_dir();
    let mut res = Vec::new();
    for (path, dir, mode) in [
        (data.as_path(), true, 0o700),
        (store.as_path(), false, 0o600),
        (key.as_path(), false, 0o600),
        (tenants.as_path(), true, 0o700),
    ] {
        let want = Want {
            path,
            dir,
            mode,
            owner: None,
        };
        res.extend(check_path(&Subject::Host, &want, false));
    }
    res
}

fn tenant_files(app: &App, record: &TenantRecord) -> Vec<Finding> {
    let subject = Subject::Tenant(record.id.clone());
    let dir = app.tenant_dir(&record.id);
    let state = dir.join("state");
    let auth = dir.join("auth");
    let config = state.join("openclaw.json");
    let cell = Some((CELL_UID, CELL_UID));
    let mut res = check_path(
        &subject,
        &Want {
            path: &dir,
            dir: true,
            mode: 0o700,
            owner: None,
        },
        true,
    );
    for (path, dir, mode) in [
        (&state, true, 0o700),
        (&auth, true, 0o700),
        (&config, false, 0o600),
    ] {
        res.extend(check_path(
            &subject,
            &Want {
                path,
                dir,
                mode,
                owner: cell,
            },
            true,
        ));
    }
    // The cell's secret files (a cell made before they were files has none).
    let secrets = dir.join(crate::fleet::cell::SECRETS_SUBDIR);
    res.extend(check_path(
        &subject,
        &Want {
            path: &secrets,
            dir: true,
            mode: 0o700,
            owner: cell,
        },
        false,
    ));
    for path in files_under(&secrets) {
        res.extend(check_path(
            &subject,
            &Want {
                path: &path,
                dir: false,
                mode: 0o400,
                owner: cell,
            },
            false,
        ));
    }
    // Files that hold credentials: the auth dir's and the paired devices'.
    for root in [auth, state.join("devices")] {
        for path in files_under(&root) {
            res.extend(check_path(
                &subject,
                &Want {
                    path: &path,
                    dir: false,
                    mode: 0o600,
                    owner: cell,
                },
                false,
            ));
        }
    }
    res
}

/// Regular files under `root` (not following symlinks), at most a few levels deep.
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut res = Vec::new();
    let mut pending = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && depth < 4 {
                pending.push((entry.path(), depth + 1));
            } else if kind.is_file() {
                res.push(entry.path());
            }
        }
    }
    res.sort();
    res
}

/// One path against what it must be; `required`: a missing path is a finding.
fn check_path(subject: &Subject, want: &Want<'_>, required: bool) -> Vec<Finding> {
    let path = want.path;
    let shown = path.display();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if !required {
                return Vec::new();
            }
            let fix = match subject {
                Subject::Tenant(tenant) => Fix::Restore(tenant.clone()),
                Subject::Host => Fix::MakeDir(path.to_path_buf()),
            };
            return vec![finding(
                Severity::Critical,
                subject,
                Check::Files,
                format!("{shown} is missing"),
                fix,
                None,
            )];
        }
        Err(err) => {
            return vec![finding(
                Severity::Warning,
                subject,
                Check::Files,
                format!("cannot read {shown}: {err}"),
                Fix::Command(format!("ls -ld {shown}")),
                None,
            )];
        }
    };
    if meta.file_type().is_symlink() || meta.is_dir() != want.dir {
        let expected = if want.dir { "a directory" } else { "a file" };
        return vec![finding(
            Severity::Critical,
            subject,
            Check::Files,
            format!("{shown} is not {expected} (a symlink?)"),
            Fix::Command(format!("ls -ld {shown}")),
            None,
        )];
    }
    let mut res = Vec::new();
    let mode = meta.permissions().mode() & 0o777;
    if mode != want.mode {
        let severity = if mode & 0o077 != 0 {
            Severity::Critical
        } else {
            Severity::Warning
        };
        res.push(finding(
            severity,
            subject,
            Check::Files,
            format!("{shown} has mode {mode:04o}, expected {:04o}", want.mode),
            Fix::Command(format!("chmod {:o} {shown}", want.mode)),
            Some(Repair::Mode {
                path: path.to_path_buf(),
                mode: want.mode,
            }),
        ));
    }
    let (uid, gid) = want.owner.unwrap_or_else(|| (euid(), meta.gid()));
    let owner_wrong = match want.owner {
        Some(_) => meta.uid() != uid || meta.gid() != gid,
        None => meta.uid() != uid,
    };
    if owner_wrong {
        // Only root may give a file away; anyone else gets the command.
        let repair = (euid() == 0).then(|| Repair::Owner {
            path: path.to_path_buf(),
            uid,
            gid,
        });
        res.push(finding(
            Severity::Critical,
            subject,
            Check::Files,
            format!(
                "{shown} is owned by {}:{}, expected {uid}:{gid}",
                meta.uid(),
                meta.gid()
            ),
            Fix::Command(format!("chown {uid}:{gid} {shown}")),
            repair,
        ));
    }
    res
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

// ---- store, disk, memory, images ----

fn store(app: &App) -> Vec<Finding> {
    let host = Subject::Host;
    let path = app.store.path();
    let mut res = Vec::new();
    match app.store.schema_version() {
        Ok(Some(version)) if version == crate::store::SCHEMA_VERSION => {}
        Ok(found) => res.push(finding(
            Severity::Critical,
            &host,
            Check::Store,
            format!(
                "the store {} has schema version {}, this binary uses {}",
                path.display(),
                found.map_or_else(|| "none".to_string(), |v| v.to_string()),
                crate::store::SCHEMA_VERSION
            ),
            Fix::MatchStore,
            None,
        )),
        Err(err) => res.push(finding(
            Severity::Critical,
            &host,
            Check::Store,
            format!("cannot read the store's schema version: {err:#}"),
            Fix::Command(format!("ls -l {}", path.display())),
            None,
        )),
    }
    if let Ok(meta) = std::fs::metadata(path)
        && meta.len() > STORE_LARGE
    {
        res.push(finding(
            Severity::Warning,
            &host,
            Check::Store,
            format!(
                "the store {} is {} MiB (more than {} MiB)",
                path.display(),
                meta.len() >> 20,
                STORE_LARGE >> 20
            ),
            Fix::PruneAudit,
            None,
        ));
    }
    res
}

fn disk(app: &App) -> anyhow::Result<Option<Finding>> {
    let data = &app.config.data_dir;
    let free = free_disk(data)?;
    let tenants = app.store.tenants()?.len() as u64;
    let logs = app.config.cell.log_max_bytes * u64::from(app.config.cell.log_max_files);
    let needed = DISK_RESERVE + tenants * logs;
    if free >= needed {
        return Ok(None);
    }
    Ok(Some(finding(
        Severity::Critical,
        &Subject::Host,
        Check::Disk,
        format!(
            "{} MiB free on the disk of {}, the fleet needs {} MiB ({} MiB reserve and {} MiB of rotated logs for each of {tenants} tenants)",
            free >> 20,
            data.display(),
            needed >> 20,
            DISK_RESERVE >> 20,
            logs >> 20
        ),
        Fix::FreeDisk(data.clone()),
        None,
    )))
}

/// Bytes free for an unprivileged user on the filesystem of `path`.
fn free_disk(path: &Path) -> anyhow::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("{} holds a NUL byte", path.display()))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` points to
    // writable memory of the right size; statvfs fills it on success.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot statvfs {}", path.display()));
    }
    // SAFETY: statvfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

async fn memory(app: &App) -> Option<Finding> {
    let host = Subject::Host;
    let plan = match capacity::capacity(app).await {
        Ok(plan) => plan,
        Err(err) => {
            return Some(finding(
                Severity::Warning,
                &host,
                Check::Memory,
                format!("cannot measure the host's memory: {err:#}"),
                Fix::Memory,
                None,
            ));
        }
    };
    let footprint = plan.footprint?;
    if plan.free < footprint.active {
        return Some(finding(
            Severity::Warning,
            &host,
            Check::Memory,
            format!(
                "{} MiB of memory free, less than one active cell takes ({} MiB): no room for another tenant",
                plan.free >> 20,
                footprint.active >> 20
            ),
            Fix::Memory,
            None,
        ));
    }
    match plan.all_awake_short {
        Some(short) if short > 0 => Some(finding(
            Severity::Warning,
            &host,
            Check::Memory,
            format!(
                "if all {} sleeping tenants woke at once, {} MiB of memory would be missing",
                plan.sleeping,
                short >> 20
            ),
            Fix::Memory,
            None,
        )),
        _ => None,
    }
}

async fn default_image(app: &App) -> anyhow::Result<Vec<Finding>> {
    let image = &app.config.cell.image;
    image_findings(app, &Subject::Host, image, "cell.image").await
}

/// `image` must be pinned and on this Docker host.
async fn image_findings(
    app: &App,
    subject: &Subject,
    image: &str,
    whose: &str,
) -> anyhow::Result<Vec<Finding>> {
    let mut res = Vec::new();
    if let Err(err) = check_pinned(image) {
        let fix = match subject {
            Subject::Tenant(tenant) => Fix::Upgrade(tenant.clone()),
            Subject::Host => Fix::PinDefaultImage,
        };
        res.push(finding(
            Severity::Critical,
            subject,
            Check::Image,
            format!("{whose} {image} is not pinned: {err:#}"),
            fix,
            None,
        ));
    }
    let present = app
        .runtime
        .image_id(image)
        .await
        .with_context(|| format!("cannot ask Docker for the image {image}"))?;
    if present.is_none() {
        res.push(finding(
            Severity::Critical,
            subject,
            Check::Image,
            format!("{whose} {image} is not on this Docker host (MTP never pulls)"),
            Fix::Command(format!("docker pull {image}")),
            None,
        ));
    }
    Ok(res)
}

// ---- cells ----

/// Every secret MTP keeps, and whose it is.
struct Known {
    /// (owner label, the secret's env var or kind, value).
    secrets: Vec<(String, Secret<String>)>,
}

fn known_secrets(app: &App) -> anyhow::Result<Known> {
    let mut secrets = Vec::new();
    for (tenant, kind, value) in app.store.all_secrets()? {
        secrets.push((format!("tenant {tenant}'s {}", kind_name(kind)), value));
    }
    if let Some(token) = &app.config.telegram.token {
        secrets.push(("the admin bot's token".to_string(), token.clone()));
    }
    if let Some(key) = &app.config.telegram.shared_provider_key {
        secrets.push(("the shared provider key".to_string(), key.clone()));
    }
    secrets.retain(|(_, value)| value.expose().len() >= MIN_SECRET_LEN);
    Ok(Known { secrets })
}

fn kind_name(kind: SecretKind) -> &'static str {
    match kind {
        SecretKind::GatewayToken => "gateway token",
        SecretKind::BotToken => "bot token",
        SecretKind::ProviderKey => "provider key",
        SecretKind::HooksToken => "hooks token",
        SecretKind::DeviceToken => "device token",
    }
}

async fn cell(app: &App, record: &TenantRecord, known: &Known) -> anyhow::Result<Vec<Finding>> {
    let tenant = &record.id;
    let subject = Subject::Tenant(tenant.clone());
    let mut res = image_findings(app, &subject, &record.image, "its image").await?;
    if app.runtime.engine() == crate::tenant::Engine::Swarm {
        // A service's profile is its spec, checked by no code here yet; the
        // container checks below are of a single host's cells.
        return Ok(res);
    }
    let profile = match app.runtime.profile(tenant).await {
        Ok(Some(profile)) => profile,
        Ok(None) => {
            res.push(finding(
                Severity::Critical,
                &subject,
                Check::Container,
                format!("{} has no container", record.state.as_str()),
                Fix::Reconcile,
                None,
            ));
            return Ok(res);
        }
        Err(crate::runtime::Error::Foreign { name }) => {
            res.push(finding(
                Severity::Critical,
                &subject,
                Check::Container,
                format!("the container {name} was not made by MTP (no mtp.tenant label)"),
                Fix::Foreign(name.clone()),
                None,
            ));
            return Ok(res);
        }
        Err(err) => {
            return Err(err).with_context(|| format!("cannot inspect {tenant}'s cell"));
        }
    };
    let secrets = app.store.secrets(tenant)?;
    let spec = cell_spec(app, record, &record.image, &secrets);
    res.extend(compare(&subject, record, &spec, &profile));
    let subnets = match app.runtime.network_subnets(tenant).await {
        Ok(subnets) => subnets,
        // A network of its name that MTP did not make is a finding, not the
        // end of the whole run.
        Err(crate::runtime::Error::Foreign { name }) => {
            res.push(finding(
                Severity::Critical,
                &subject,
                Check::Network,
                format!("the network {name} was not made by MTP (no mtp.tenant label)"),
                Fix::Foreign(name.clone()),
                None,
            ));
            res.extend(env_secrets(&subject, &spec, &profile, known));
            return Ok(res);
        }
        Err(err) => {
            return Err(err).with_context(|| format!("cannot inspect {tenant}'s network"));
        }
    };
    if let Some(subnets) = subnets {
        if !subnets.contains(&record.subnet) {
            res.push(finding(
                Severity::Warning,
                &subject,
                Check::Network,
                format!(
                    "its network has subnet {}, the record says {}",
                    subnets.join(", "),
                    record.subnet
                ),
                Fix::Recreate(tenant.clone()),
                None,
            ));
        }
    } else {
        res.push(finding(
            Severity::Critical,
            &subject,
            Check::Network,
            format!("its network {} is missing", tenant.cell_name()),
            Fix::Recreate(tenant.clone()),
            None,
        ));
    }
    res.extend(env_secrets(&subject, &spec, &profile, known));
    Ok(res)
}

/// The container against the spec MTP would make for its record.
fn compare(
    subject: &Subject,
    record: &TenantRecord,
    spec: &crate::runtime::CellSpec,
    profile: &CellProfile,
) -> Vec<Finding> {
    let tenant = &record.id;
    let mut res = Vec::new();
    let mut drift = |check: Check, severity: Severity, problem: String| {
        res.push(finding(
            severity,
            subject,
            check,
            problem,
            Fix::Recreate(tenant.clone()),
            None,
        ));
    };
    if !profile
        .cap_drop
        .iter()
        .any(|cap| cap.eq_ignore_ascii_case("ALL"))
    {
        drift(
            Check::Profile,
            Severity::Critical,
            format!(
                "capabilities are not all dropped (cap_drop: [{}]), expected ALL",
                profile.cap_drop.join(", ")
            ),
        );
    }
    if !profile.cap_add.is_empty() {
        drift(
            Check::Profile,
            Severity::Critical,
            format!("capabilities added: {}", profile.cap_add.join(", ")),
        );
    }
    if !profile
        .security_opt
        .iter()
        .any(|opt| opt == "no-new-privileges:true" || opt == "no-new-privileges")
    {
        drift(
            Check::Profile,
            Severity::Critical,
            "no-new-privileges is off".to_string(),
        );
    }
    let loosened: Vec<&String> = profile
        .security_opt
        .iter()
        .filter(|opt| opt.ends_with("=unconfined") || opt.ends_with(":unconfined"))
        .collect();
    if !loosened.is_empty() {
        drift(
            Check::Profile,
            Severity::Critical,
            format!("security options loosened: {loosened:?}"),
        );
    }
    if profile.privileged {
        drift(
            Check::Profile,
            Severity::Critical,
            "the container is privileged".to_string(),
        );
    }
    if !profile.readonly_rootfs {
        drift(
            Check::Profile,
            Severity::Warning,
            "the root filesystem is writable, expected read-only".to_string(),
        );
    }
    if !profile.init {
        drift(
            Check::Profile,
            Severity::Warning,
            "it runs without --init".to_string(),
        );
    }
    if profile.user != "1000:1000" {
        drift(
            Check::Profile,
            Severity::Critical,
            format!("it runs as user {:?}, expected 1000:1000", profile.user),
        );
    }
    if profile.image != record.image {
        drift(
            Check::Image,
            Severity::Warning,
            format!(
                "the container runs {}, the record says {}",
                profile.image, record.image
            ),
        );
    }
    let expected_port = (
        format!("{GATEWAY_PORT}/tcp"),
        "127.0.0.1".to_string(),
        record.port.to_string(),
    );
    if profile.published != [expected_port] {
        let shown: Vec<String> = profile
            .published
            .iter()
            .map(|(port, ip, host_port)| {
                let ip = if ip.is_empty() { "0.0.0.0" } else { ip };
                format!("{ip}:{host_port}->{port}")
            })
            .collect();
        drift(
            Check::Ports,
            Severity::Critical,
            format!(
                "published ports [{}], expected only 127.0.0.1:{}->{GATEWAY_PORT}/tcp",
                shown.join(", "),
                record.port
            ),
        );
    }
    let network = tenant.cell_name();
    if profile.network_mode != network || profile.networks != [network.clone()] {
        drift(
            Check::Network,
            Severity::Critical,
            format!(
                "on networks [{}] (mode {}), expected only {network}",
                profile.networks.join(", "),
                profile.network_mode
            ),
        );
    }
    let want_size = spec.log_max_bytes.to_string();
    let want_files = spec.log_max_files.to_string();
    if profile.log_driver != "json-file"
        || profile.log_options.get("max-size") != Some(&want_size)
        || profile.log_options.get("max-file") != Some(&want_files)
    {
        drift(
            Check::Logs,
            Severity::Warning,
            format!(
                "log driver {} with options {:?}, expected json-file rotated at max-size {want_size}, max-file {want_files}",
                profile.log_driver,
                // Keys only: another driver's options may hold its credentials.
                profile.log_options.keys().collect::<Vec<_>>()
            ),
        );
    }
    let mut want_mounts: Vec<(String, String)> = spec
        .mounts
        .iter()
        .map(|mount| (mount.source.display().to_string(), mount.target.clone()))
        .collect();
    want_mounts.sort();
    if profile.mounts != want_mounts {
        let extra: Vec<String> = profile
            .mounts
            .iter()
            .filter(|mount| !want_mounts.contains(mount))
            .map(|(source, target)| format!("{source}:{target}"))
            .collect();
        drift(
            Check::Mounts,
            Severity::Critical,
            format!(
                "mounts differ from the record's state and auth dirs (unexpected: [{}])",
                extra.join(", ")
            ),
        );
    }
    let limits = &record.limits;
    let mut wrong = Vec::new();
    if profile.memory_bytes != limits.memory_bytes {
        wrong.push(format!(
            "memory {} (expected {})",
            bytes_text(profile.memory_bytes),
            bytes_text(limits.memory_bytes)
        ));
    } else if profile.memory_swap_bytes != limits.memory_bytes {
        wrong.push(format!(
            "memory+swap {} (expected {})",
            bytes_text(profile.memory_swap_bytes),
            bytes_text(limits.memory_bytes)
        ));
    }
    if profile.nano_cpus != limits.nano_cpus {
        wrong.push(format!(
            "cpus {} (expected {})",
            cpus_text(profile.nano_cpus),
            cpus_text(limits.nano_cpus)
        ));
    }
    if profile.pids_limit != limits.pids {
        wrong.push(format!(
            "pids limit {} (expected {})",
            if profile.pids_limit > 0 {
                profile.pids_limit.to_string()
            } else {
                "none".to_string()
            },
            limits.pids
        ));
    }
    if !wrong.is_empty() {
        // Lower-than-recorded limits only starve the cell; missing or higher
        // ones let it starve its neighbours.
        let loosened = profile.memory_bytes == 0
            || profile.memory_bytes > limits.memory_bytes
            || profile.nano_cpus == 0
            || profile.nano_cpus > limits.nano_cpus
            || profile.pids_limit <= 0
            || profile.pids_limit > limits.pids;
        res.push(finding(
            if loosened {
                Severity::Critical
            } else {
                Severity::Warning
            },
            subject,
            Check::Limits,
            format!("limits changed outside MTP: {}", wrong.join(", ")),
            Fix::Command(format!(
                "docker update --memory {} --memory-swap {} --cpus {} --pids-limit {} {}",
                limits.memory_bytes,
                limits.memory_bytes,
                cpus_text(limits.nano_cpus),
                limits.pids,
                tenant.cell_name()
            )),
            Some(Repair::Limits {
                tenant: tenant.clone(),
                limits: limits.clone(),
            }),
        ));
    }
    res
}

fn bytes_text(bytes: i64) -> String {
    if bytes <= 0 {
        return "none".to_string();
    }
    format!("{} MiB", bytes >> 20)
}

fn cpus_text(nano: i64) -> String {
    if nano <= 0 {
        return "none".to_string();
    }
    let text = format!("{:.3}", nano as f64 / 1e9);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A secret in the cell's environment that its spec does not put there
/// (another tenant's, the admin's, or its own under another name).
fn env_secrets(
    subject: &Subject,
    spec: &crate::runtime::CellSpec,
    profile: &CellProfile,
    known: &Known,
) -> Vec<Finding> {
    let Subject::Tenant(tenant) = subject else {
        return Vec::new();
    };
    let mut res = Vec::new();
    for (name, value) in &profile.env {
        let its_own = spec
            .secret_env
            .iter()
            .any(|(want, secret)| want == name && secret.expose() == value.expose());
        if its_own && !spec.secrets_as_files {
            continue;
        }
        if its_own {
            // A container made before the secrets were files: its own
            // secrets, where anyone who can inspect containers reads them.
            res.push(finding(
                Severity::Warning,
                subject,
                Check::Secrets,
                format!(
                    "its environment variable {name} holds its own secret (a container made before MTP gave cells their secrets as files; `docker inspect` shows it)"
                ),
                Fix::Recreate(tenant.clone()),
                None,
            ));
            continue;
        }
        let owners: Vec<&str> = known
            .secrets
            .iter()
            .filter(|(_, secret)| value.expose().contains(secret.expose().as_str()))
            .map(|(owner, _)| owner.as_str())
            .collect();
        if owners.is_empty() {
            continue;
        }
        res.push(finding(
            Severity::Critical,
            subject,
            Check::Secrets,
            format!(
                "its environment variable {name} holds {} (value not shown)",
                owners.join(" and ")
            ),
            Fix::RecreateAndRotate(tenant.clone()),
            None,
        ));
    }
    res
}

/// The most of a cell's config file doctor reads.
const CONFIG_READ_LIMIT: u64 = 4 << 20;

/// A cell's file as text: a regular file only (no link followed, no FIFO
/// waited on), at most `CONFIG_READ_LIMIT` bytes; `None` when it is not one.
fn read_bounded(path: &Path) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.file_type().is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(CONFIG_READ_LIMIT)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The cell's config file must name secrets (`${TELEGRAM_BOT_TOKEN}`), never
/// hold one.
fn config_file(app: &App, record: &TenantRecord, known: &Known) -> Vec<Finding> {
    let path = app
        .tenant_dir(&record.id)
        .join("state")
        .join("openclaw.json");
    let Some(text) = read_bounded(&path) else {
        return Vec::new();
    };
    let owners: Vec<&str> = known
        .secrets
        .iter()
        .filter(|(_, secret)| text.contains(secret.expose().as_str()))
        .map(|(owner, _)| owner.as_str())
        .collect();
    if owners.is_empty() {
        return Vec::new();
    }
    vec![finding(
        Severity::Critical,
        &Subject::Tenant(record.id.clone()),
        Check::Secrets,
        format!(
            "{} holds {} in plain text (value not shown)",
            path.display(),
            owners.join(" and ")
        ),
        Fix::Unplain(path.clone()),
        None,
    )]
}

/// The findings of `now` not among `reported` (by `Finding::key`); `reported`
/// becomes the keys of `now`, so a finding that went away and comes back is
/// new again.
pub fn new_findings(
    reported: &mut std::collections::HashSet<String>,
    now: &[Finding],
) -> Vec<Finding> {
    let fresh: Vec<Finding> = now
        .iter()
        .filter(|finding| !reported.contains(&finding.key()))
        .cloned()
        .collect();
    *reported = now.iter().map(Finding::key).collect();
    fresh
}

/// Counts per severity, for summaries.
#[must_use]
pub fn tally(findings: &[Finding]) -> BTreeMap<Severity, usize> {
    let mut res = BTreeMap::new();
    for finding in findings {
        *res.entry(finding.severity).or_insert(0) += 1;
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_route_names_the_uplink() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
br-11a4\t0000D50A\t00000000\t0001\t0\t0\t0\tF0FFFFFF\t0\t0\t0
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
";
        assert_eq!(default_route(table), Some("eth0".to_string()));
        assert_eq!(default_route("Iface\tDestination\n"), None);
    }

    #[test]
    fn iptables_answers_are_told_apart() {
        let missing = "iptables: Bad rule (does a matching rule exist in that chain?).\n";
        assert_eq!(egress_verdict(Some(1), missing), EgressVerdict::Missing);
        let no_chain = "iptables: No chain/target/match by that name.\n";
        assert_eq!(egress_verdict(Some(1), no_chain), EgressVerdict::NoChain);
        let denied = "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n";
        assert_eq!(egress_verdict(Some(4), denied), EgressVerdict::Unknown);
    }

    fn sample(subject: &str, fix: &str) -> Finding {
        finding(
            Severity::Warning,
            &Subject::Tenant(subject.parse().unwrap()),
            Check::Files,
            "x has mode 0644, expected 0600".to_string(),
            Fix::Command(fix.to_string()),
            None,
        )
    }

    #[test]
    fn only_new_findings_are_reported_again() {
        let mut reported = std::collections::HashSet::new();
        let first = [sample("acme", "chmod 600 a"), sample("acme", "chmod 600 b")];
        assert_eq!(new_findings(&mut reported, &first).len(), 2);
        assert!(new_findings(&mut reported, &first).is_empty());
        // One fixed, one new: only the new one is reported.
        let second = [sample("acme", "chmod 600 b"), sample("beta", "chmod 600 c")];
        let fresh = new_findings(&mut reported, &second);
        assert_eq!(fresh, vec![sample("beta", "chmod 600 c")]);
        // The fixed one comes back: new again.
        let third = [sample("acme", "chmod 600 a")];
        assert_eq!(new_findings(&mut reported, &third).len(), 1);
    }

    fn record() -> TenantRecord {
        TenantRecord {
            id: "acme".parse().unwrap(),
            display_name: None,
            state: CellState::Running,
            port: 19100,
            subnet: "10.213.0.0/28".into(),
            image: "mtp-test/openclaw:2026.9.6".into(),
            image_id: None,
            model: "anthropic/claude-opus-4-6".into(),
            limits: Limits {
                memory_bytes: 1 << 30,
                nano_cpus: 2_000_000_000,
                pids: 512,
            },
            bot_id: 1,
            bot_username: None,
            generation: 1,
            created_at: 0,
            updated_at: 0,
            last_error: None,
            paired: true,
            create_progress: Default::default(),
            purge_on_remove: false,
            muted_until: None,
            maintenance_until: None,
            slept_at: None,
            wake_at: None,
            pinned_image: None,
            node: None,
        }
    }

    const OWN_TOKEN: &str = "7000000101:AAOwnBotTokenOfAcmeForTestsOnly_abcdefg";
    const OTHER_TOKEN: &str = "7000000202:AAOtherTenantsBotTokenForTestsOnly_abcd";

    fn spec(record: &TenantRecord) -> crate::runtime::CellSpec {
        crate::runtime::CellSpec {
            tenant: record.id.clone(),
            generation: 1,
            image: record.image.clone(),
            port: record.port,
            subnet: record.subnet.clone(),
            limits: record.limits.clone(),
            mounts: vec![
                crate::runtime::Mount {
                    source: "/data/tenants/acme/state".into(),
                    target: "/home/node/.openclaw".into(),
                    read_only: false,
                },
                crate::runtime::Mount {
                    source: "/data/tenants/acme/auth".into(),
                    target: "/home/node/.config/openclaw".into(),
                    read_only: false,
                },
            ],
            env: Vec::new(),
            secret_env: vec![(
                "TELEGRAM_BOT_TOKEN".to_string(),
                Secret::new(OWN_TOKEN.to_string()),
            )],
            // The way cells were made before their secrets were files.
            secrets_as_files: false,
            command: Vec::new(),
            log_max_bytes: 10_485_760,
            log_max_files: 3,
            node: None,
        }
    }

    /// What Docker reports for a cell made exactly from `spec`.
    fn as_made(record: &TenantRecord) -> CellProfile {
        CellProfile {
            image: record.image.clone(),
            user: "1000:1000".into(),
            cap_add: Vec::new(),
            cap_drop: vec!["ALL".into()],
            security_opt: vec!["no-new-privileges:true".into()],
            privileged: false,
            readonly_rootfs: true,
            init: true,
            memory_bytes: 1 << 30,
            memory_swap_bytes: 1 << 30,
            nano_cpus: 2_000_000_000,
            pids_limit: 512,
            network_mode: "mtp-cell-acme".into(),
            networks: vec!["mtp-cell-acme".into()],
            published: vec![("18789/tcp".into(), "127.0.0.1".into(), "19100".into())],
            log_driver: "json-file".into(),
            log_options: BTreeMap::from([
                ("max-file".to_string(), "3".to_string()),
                ("max-size".to_string(), "10485760".to_string()),
            ]),
            mounts: vec![
                (
                    "/data/tenants/acme/auth".into(),
                    "/home/node/.config/openclaw".into(),
                ),
                (
                    "/data/tenants/acme/state".into(),
                    "/home/node/.openclaw".into(),
                ),
            ],
            env: vec![(
                "TELEGRAM_BOT_TOKEN".to_string(),
                Secret::new(OWN_TOKEN.to_string()),
            )],
            running: true,
        }
    }

    #[test]
    fn a_cell_as_mtp_made_it_has_no_findings() {
        let record = record();
        let subject = Subject::Tenant(record.id.clone());
        assert_eq!(
            compare(&subject, &record, &spec(&record), &as_made(&record)),
            Vec::new()
        );
    }

    #[test]
    fn a_loosened_profile_is_found_and_only_limits_are_fixable() {
        let record = record();
        let subject = Subject::Tenant(record.id.clone());
        let mut profile = as_made(&record);
        profile.cap_add = vec!["NET_RAW".into()];
        profile.security_opt.clear();
        profile
            .published
            .push(("18789/tcp".into(), String::new(), "29100".into()));
        profile.networks.push("bridge".into());
        profile
            .mounts
            .push(("/var/run/docker.sock".into(), "/var/run/docker.sock".into()));
        profile.log_options.clear();
        profile.memory_bytes = 0;
        let found: Vec<(Check, Severity, bool)> =
            compare(&subject, &record, &spec(&record), &profile)
                .iter()
                .map(|f| (f.check, f.severity, f.fixable))
                .collect();
        assert_eq!(
            found,
            vec![
                (Check::Profile, Severity::Critical, false),
                (Check::Profile, Severity::Critical, false),
                (Check::Ports, Severity::Critical, false),
                (Check::Network, Severity::Critical, false),
                (Check::Logs, Severity::Warning, false),
                (Check::Mounts, Severity::Critical, false),
                (Check::Limits, Severity::Critical, true),
            ]
        );
    }

    #[test]
    fn unconfined_security_options_are_found_and_log_options_shown_by_key() {
        let record = record();
        let subject = Subject::Tenant(record.id.clone());
        let mut profile = as_made(&record);
        profile.security_opt.push("seccomp=unconfined".into());
        profile.log_driver = "splunk".into();
        profile
            .log_options
            .insert("splunk-token".into(), "a-credential-value".into());
        let found = compare(&subject, &record, &spec(&record), &profile);
        assert!(
            found
                .iter()
                .any(|f| f.check == Check::Profile && f.problem.contains("seccomp=unconfined")),
            "{found:?}"
        );
        let logs = found.iter().find(|f| f.check == Check::Logs).unwrap();
        assert!(logs.problem.contains("splunk-token"), "{}", logs.problem);
        assert!(
            !logs.problem.contains("a-credential-value"),
            "{}",
            logs.problem
        );
    }

    #[test]
    fn a_secret_where_it_does_not_belong_is_named_never_shown() {
        let record = record();
        let subject = Subject::Tenant(record.id.clone());
        let mut profile = as_made(&record);
        profile.env.push((
            "EXTRA".to_string(),
            Secret::new(format!("prefix-{OTHER_TOKEN}")),
        ));
        let known = Known {
            secrets: vec![
                (
                    "tenant acme's bot token".to_string(),
                    Secret::new(OWN_TOKEN.to_string()),
                ),
                (
                    "tenant beta's bot token".to_string(),
                    Secret::new(OTHER_TOKEN.to_string()),
                ),
            ],
        };
        let found = env_secrets(&subject, &spec(&record), &profile, &known);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].problem,
            "its environment variable EXTRA holds tenant beta's bot token (value not shown)"
        );
        assert!(!format!("{found:?}").contains(OTHER_TOKEN));
        // Its own token under another name is out of place too.
        let mut profile = as_made(&record);
        profile
            .env
            .push(("LEAK".to_string(), Secret::new(OWN_TOKEN.to_string())));
        let found = env_secrets(&subject, &spec(&record), &profile, &known);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .problem
                .contains("LEAK holds tenant acme's bot token")
        );
        // A cell whose secrets are files holds none in its environment: one
        // made before keeps its own there, to be made again.
        let files = crate::runtime::CellSpec {
            secrets_as_files: true,
            ..spec(&record)
        };
        let found = env_secrets(&subject, &files, &as_made(&record), &known);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Warning);
        assert_eq!(found[0].fix, Fix::Recreate(record.id.clone()));
        assert!(
            found[0]
                .problem
                .contains("TELEGRAM_BOT_TOKEN holds its own secret")
        );
    }

    #[test]
    fn cpus_are_shown_as_docker_takes_them() {
        assert_eq!(cpus_text(1_500_000_000), "1.5");
        assert_eq!(cpus_text(2_000_000_000), "2");
        assert_eq!(cpus_text(0), "none");
    }

    #[test]
    fn a_repair_follows_no_link_out_of_the_data_dir() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("passwd");
        std::fs::write(&secret, "root").unwrap();
        let data = tempfile::tempdir().unwrap();
        let state = data.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::write(state.join("openclaw.json"), "{}").unwrap();
        assert!(open_inside(data.path(), &state.join("openclaw.json")).is_ok());
        // A link in place of the checked file: not followed.
        std::os::unix::fs::symlink(&secret, state.join("paired.json")).unwrap();
        assert!(open_inside(data.path(), &state.join("paired.json")).is_err());
        // A linked dir on the way: it leads out, refused.
        std::os::unix::fs::symlink(outside.path(), state.join("devices")).unwrap();
        let err = open_inside(data.path(), &state.join("devices").join("passwd")).unwrap_err();
        assert!(err.to_string().contains("leads out"), "{err}");
        // A FIFO is neither file nor dir, and is not waited on.
        let fifo = state.join("fifo");
        let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        assert!(open_inside(data.path(), &fifo).is_err());
        assert_eq!(read_bounded(&fifo), None);
        assert_eq!(
            read_bounded(&state.join("paired.json")),
            None,
            "a link is not read"
        );
    }
}
