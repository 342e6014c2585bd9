//! `AdminConfig`: one JSON5 file plus `MTP_*` environment overrides, read and
//! validated once at start. Two steps, as ripgrep does with its flags: `RawConfig`
//! is what the file says (unknown keys refused with their path), `AdminConfig` is
//! what the program uses (every value checked). Nothing re-reads env later.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::tenant::{BudgetAction, Engine, Limits, Secret, TenantId, Usd};

/// The pinned default cell image: the locally built OpenClaw gateway.
pub const DEFAULT_CELL_IMAGE: &str = "mtp-test/openclaw:2026.9.6";

/// What the config file may say. Every field is optional; defaults fill the rest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    data_dir: Option<PathBuf>,
    docker_host: Option<String>,
    cell: Option<RawCell>,
    telegram: Option<RawTelegram>,
    monitor: Option<RawMonitor>,
    usage: Option<RawUsage>,
    audit: Option<RawAudit>,
    backup: Option<RawBackup>,
    sleep: Option<RawSleep>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSleep {
    after: Option<String>,
    never: Option<Vec<String>>,
    tenants: Option<BTreeMap<String, RawTenantSleep>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTenantSleep {
    after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawBackup {
    dir: Option<PathBuf>,
    schedule: Option<String>,
    keep: Option<RawKeep>,
    recipients: Option<Vec<String>>,
    after_command: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawKeep {
    daily: Option<u32>,
    weekly: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAudit {
    keep_days: Option<u32>,
    max_rows: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawUsage {
    interval: Option<String>,
    time_zone: Option<String>,
    plans: Option<BTreeMap<String, RawPricing>>,
    default_plan: Option<String>,
    tenants: Option<BTreeMap<String, RawTenantUsage>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPricing {
    markup_percent: Option<f64>,
    monthly_fee: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTenantUsage {
    plan: Option<String>,
    markup_percent: Option<f64>,
    monthly_fee: Option<f64>,
    budget: Option<f64>,
    on_budget: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMonitor {
    interval: Option<String>,
    down_after: Option<u32>,
    probe_timeout: Option<String>,
    concurrency: Option<usize>,
    heal: Option<bool>,
    http_addr: Option<String>,
    digest_at: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTelegram {
    /// A file holding the admin bot's token (the token itself only via env).
    token_file: Option<PathBuf>,
    operators: Option<Vec<u64>>,
    ops_chat_id: Option<i64>,
    api_url: Option<String>,
    shared_provider_key_file: Option<PathBuf>,
    dialogue_idle: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCell {
    image: Option<String>,
    port_start: Option<u16>,
    port_end: Option<u16>,
    memory: Option<String>,
    cpus: Option<f64>,
    pids_limit: Option<i64>,
    health_timeout: Option<String>,
    subnet_pool: Option<String>,
    model: Option<String>,
    telegram_api_root: Option<String>,
    extra_env: Option<BTreeMap<String, String>>,
    log_max_size: Option<String>,
    log_max_files: Option<u32>,
    preapprove_pairing: Option<bool>,
    engine: Option<String>,
    node_labels: Option<BTreeMap<String, String>>,
}

/// The checked configuration the program runs with.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Where the store file, the device key and every tenant's dirs live.
    pub data_dir: PathBuf,
    /// `unix:///var/run/docker.sock` (default) or another Docker endpoint.
    pub docker_host: Option<String>,
    pub cell: CellDefaults,
    pub telegram: TelegramSettings,
    pub monitor: MonitorSettings,
    pub usage: UsageSettings,
    pub audit: AuditSettings,
    pub backup: BackupSettings,
    pub sleep: SleepSettings,
}

/// Idle cells sleep (`sleep` in the config file): the container is stopped
/// and started again on the client's next Telegram message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SleepSettings {
    /// Idle time after which a tenant sleeps; `None`: never (the default).
    pub after: Option<Duration>,
    /// Tenants that never sleep (they pay for always-on).
    pub never: Vec<TenantId>,
    /// Per-tenant idle times; `None` in the map: this tenant never sleeps.
    pub tenants: BTreeMap<TenantId, Option<Duration>>,
}

impl SleepSettings {
    /// The idle time after which `tenant` sleeps, `None` when it never does.
    #[must_use]
    pub fn after_for(&self, tenant: &TenantId) -> Option<Duration> {
        if self.never.contains(tenant) {
            return None;
        }
        match self.tenants.get(tenant) {
            Some(after) => *after,
            None => self.after,
        }
    }
}

/// Backups (`backup` in the config file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// Where archives go: `<dir>/<tenant>/<backup id>.mtpbak`, the admin's in `<dir>/_admin`.
    pub dir: PathBuf,
    /// The daily time (in `usage.timeZone`) `mtp serve` backs up every tenant and
    /// the admin; `None`: off.
    pub schedule: Option<chrono::NaiveTime>,
    /// Retention per tenant.
    pub keep: Keep,
    /// The operator's own `age` recipients: when set, archives are encrypted to
    /// them alone and this host cannot read them without their identity file.
    pub recipients: Vec<String>,
    /// Run with each finished archive's path as `$1` (`sh -c`), e.g. to copy it off the host.
    pub after_command: Option<String>,
}

/// How many backups retention keeps: the newest of each of the last `daily`
/// days that have one, and of each of the last `weekly` weeks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    pub daily: u32,
    pub weekly: u32,
}

/// How much of the audit log is kept (`audit` in the config file); `mtp serve`
/// prunes the rest hourly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditSettings {
    /// Entries older than this many days go (default 365).
    pub keep_days: u32,
    /// At most this many entries are kept, the newest (default 100 000).
    pub max_rows: u64,
}

/// Usage collection, pricing and budgets (`usage` in the config file).
#[derive(Debug, Clone)]
pub struct UsageSettings {
    /// Time between collections in `mtp serve` (`MTP_USAGE_INTERVAL`, default 1 h).
    pub interval: Duration,
    /// Where days and months begin (`MTP_USAGE_TIME_ZONE`, IANA name, default UTC);
    /// the gateway is asked in the same zone.
    pub time_zone: chrono_tz::Tz,
    /// Named price plans.
    pub plans: BTreeMap<String, Pricing>,
    /// The plan of tenants that name none.
    pub default_plan: Option<String>,
    /// Per-tenant plan, price overrides and budget, by tenant id.
    pub tenants: BTreeMap<TenantId, TenantUsage>,
}

/// How a tenant's bill is made from its cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    /// Added to the gateway's cost, in percent (20 bills $1.20 per $1.00).
    pub markup_percent: f64,
    /// A fixed amount per calendar month.
    pub monthly_fee: Usd,
}

/// One tenant's entry under `usage.tenants`.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantUsage {
    pub plan: Option<String>,
    pub markup_percent: Option<f64>,
    pub monthly_fee: Option<Usd>,
    /// Monthly budget (an operator's `/budget` wins over it).
    pub budget: Option<Usd>,
    pub on_budget: Option<BudgetAction>,
}

impl UsageSettings {
    /// The pricing of a tenant: its own figures, else its plan's, else the
    /// default plan's, else no markup and no fee.
    #[must_use]
    pub fn pricing(&self, tenant: &TenantId) -> Pricing {
        let entry = self.tenants.get(tenant);
        let plan = entry
            .and_then(|entry| entry.plan.as_ref())
            .or(self.default_plan.as_ref())
            .and_then(|name| self.plans.get(name))
            .copied()
            .unwrap_or(Pricing {
                markup_percent: 0.0,
                monthly_fee: Usd::ZERO,
            });
        Pricing {
            markup_percent: entry
                .and_then(|entry| entry.markup_percent)
                .unwrap_or(plan.markup_percent),
            monthly_fee: entry
                .and_then(|entry| entry.monthly_fee)
                .unwrap_or(plan.monthly_fee),
        }
    }
}

/// The fleet monitor inside `mtp serve`.
#[derive(Debug, Clone)]
pub struct MonitorSettings {
    /// Time between sweeps (`MTP_MONITOR_INTERVAL`, default 30 s).
    pub interval: Duration,
    /// Consecutive failures before DOWN (`MTP_MONITOR_DOWN_AFTER`, default 3).
    pub down_after: u32,
    /// Deadline of each probe.
    pub probe_timeout: Duration,
    /// Tenants probed at once.
    pub concurrency: usize,
    /// Start cells that exited and Docker did not restart (`MTP_MONITOR_HEAL`).
    pub heal: bool,
    /// The admin's own HTTP listener for `/healthz` and `/metrics` (loopback only).
    pub http_addr: std::net::SocketAddr,
    /// When the daily digest goes to the ops group (UTC, `HH:MM`); none if unset.
    pub digest_at: Option<chrono::NaiveTime>,
}

/// The admin bot's settings. `token` and `operators` are needed only by `mtp serve`.
#[derive(Debug, Clone)]
pub struct TelegramSettings {
    pub token: Option<Secret<String>>,
    /// Telegram user ids allowed to act.
    pub operators: Vec<u64>,
    /// Where alerts and digests go.
    pub ops_chat_id: Option<i64>,
    /// The Bot API base URL (Telegram's by default; tests use a loopback fake).
    /// Tenant tokens are proven (`getMe`) against the same API.
    pub api_url: String,
    /// A provider key tenants may share instead of bringing their own.
    pub shared_provider_key: Option<Secret<String>>,
    /// A dialogue untouched this long expires (default 30 min).
    pub dialogue_idle: Duration,
}

/// The Bot API of Telegram itself.
pub const TELEGRAM_API_URL: &str = "https://api.telegram.org";

impl TelegramSettings {
    /// The token and operators, or an error that says what to set.
    ///
    /// # Errors
    ///
    /// No token, or no operators.
    pub fn require(&self) -> anyhow::Result<(&Secret<String>, &[u64])> {
        let Some(token) = &self.token else {
            bail!(
                "no admin bot token: set MTP_TELEGRAM_TOKEN (from @BotFather) or telegram.tokenFile in the config"
            );
        };
        if self.operators.is_empty() {
            bail!(
                "no operators: set MTP_OPERATORS to the Telegram user ids allowed to act (comma-separated), or telegram.operators in the config"
            );
        }
        Ok((token, &self.operators))
    }
}

/// Defaults for new cells; a tenant may override image and limits.
#[derive(Debug, Clone)]
pub struct CellDefaults {
    pub image: String,
    /// First host port handed out (on 127.0.0.1).
    pub port_start: u16,
    /// Last host port handed out, inclusive.
    pub port_end: u16,
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    pub pids_limit: i64,
    /// How long create waits for `/healthz`.
    pub health_timeout: Duration,
    /// The pool the /28 subnets of cell networks come from.
    pub subnet_pool: SubnetPool,
    /// Default model, `provider/model`.
    pub model: String,
    /// `channels.telegram.apiRoot` for every cell (a self-hosted Bot API).
    pub telegram_api_root: Option<String>,
    /// Extra environment for every cell (e.g. `OPENCLAW_OFFLINE=1` in tests).
    pub extra_env: BTreeMap<String, String>,
    /// Docker rotates a cell's log (`json-file`) when a file reaches this size
    /// (`cell.logMaxSize`, default 10m) ...
    pub log_max_bytes: u64,
    /// ... and keeps this many files (`cell.logMaxFiles`, default 3), so a
    /// chatty or crash-looping cell cannot fill the disk.
    pub log_max_files: u32,
    /// A new cell gets the admin's device approved before its first start
    /// (`devices/paired.json`, imported by the gateway at its first boot);
    /// off: the admin approves itself by `devices approve` in the cell.
    pub preapprove_pairing: bool,
    /// Where cells run (`cell.engine`): `docker`, one host (the default), or
    /// `swarm`, services on the swarm this engine manages.
    pub engine: Engine,
    /// On Swarm, the node labels a node must carry to take a new cell (or a
    /// drained one): `cell.nodeLabels`, e.g. `{ "mtp.pool": "clients" }`.
    pub node_labels: BTreeMap<String, String>,
}

impl CellDefaults {
    /// A cell's limits: the operator's memory and CPUs where given, else these
    /// defaults; the pids limit is always the default. The one place a
    /// tenant's limits fall back to config (create, the CLI, the bot).
    #[must_use]
    pub fn limits(&self, memory_bytes: Option<i64>, nano_cpus: Option<i64>) -> Limits {
        Limits {
            memory_bytes: memory_bytes.unwrap_or(self.memory_bytes),
            nano_cpus: nano_cpus.unwrap_or(self.nano_cpus),
            pids: self.pids_limit,
        }
    }
}

/// An IPv4 network (`10.213.0.0/16`) cut into /28s for cell networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetPool {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl SubnetPool {
    /// Cell networks are /28: 14 usable addresses, plenty for one container.
    pub const CELL_PREFIX: u8 = 28;

    pub fn parse(s: &str) -> anyhow::Result<SubnetPool> {
        let Some((addr, prefix)) = s.split_once('/') else {
            bail!("{s:?} is not a CIDR network; write it like \"10.213.0.0/16\"");
        };
        let base: Ipv4Addr = addr
            .parse()
            .with_context(|| format!("{addr:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .with_context(|| format!("{prefix:?} is not a prefix length"))?;
        if !(8..=SubnetPool::CELL_PREFIX).contains(&prefix) {
            bail!("prefix /{prefix} must be between /8 and /28");
        }
        let mask = u32::MAX << (32 - prefix);
        if u32::from(base) & !mask != 0 {
            bail!(
                "{s} has host bits set; did you mean {}/{prefix}?",
                Ipv4Addr::from(u32::from(base) & mask)
            );
        }
        Ok(SubnetPool { base, prefix })
    }

    /// Number of /28 subnets in the pool.
    #[must_use]
    pub fn len(&self) -> u32 {
        1 << (SubnetPool::CELL_PREFIX - self.prefix)
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `index`-th /28 of the pool, as `a.b.c.d/28`.
    #[must_use]
    pub fn subnet(&self, index: u32) -> String {
        let addr = Ipv4Addr::from(u32::from(self.base) + index * 16);
        format!("{addr}/{}", SubnetPool::CELL_PREFIX)
    }
}

impl AdminConfig {
    /// Loads the config: `path` if given (must exist), else `./mtp.json5` if it
    /// exists, else built-in defaults; then `MTP_*` overrides from `env`; then checks.
    ///
    /// # Errors
    ///
    /// A missing or unreadable file, a JSON5 syntax error, an unknown key or a bad
    /// value; the message names the file and the key path.
    pub fn load(
        path: Option<&Path>,
        data_dir_flag: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> anyhow::Result<AdminConfig> {
        let (raw, source) = match path {
            Some(path) => (read_raw(path)?, path.display().to_string()),
            None => {
                let default = Path::new("mtp.json5");
                if default.exists() {
                    (read_raw(default)?, "mtp.json5".to_string())
                } else {
                    (RawConfig::default(), "built-in defaults".to_string())
                }
            }
        };
        check(raw, data_dir_flag, env).with_context(|| format!("invalid configuration ({source})"))
    }

    /// Parses config text (JSON5) without touching the environment; for tests and `doctor`.
    pub fn from_json5(text: &str) -> anyhow::Result<AdminConfig> {
        check(parse_raw(text)?, None, &BTreeMap::new())
    }

    #[must_use]
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("mtp.redb")
    }

    #[must_use]
    pub fn tenants_dir(&self) -> PathBuf {
        self.data_dir.join("tenants")
    }
}

fn read_raw(path: &Path) -> anyhow::Result<RawConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse_raw(&text).with_context(|| format!("invalid config file {}", path.display()))
}

fn parse_raw(text: &str) -> anyhow::Result<RawConfig> {
    let value: serde_json::Value = json5::from_str(text).context("not valid JSON5")?;
    let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        anyhow::anyhow!("at key `{path}`: {}", err.into_inner())
    })?;
    Ok(raw)
}

fn check(
    raw: RawConfig,
    data_dir_flag: Option<&Path>,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<AdminConfig> {
    let env_of = |key: &str| env.get(key).filter(|v| !v.is_empty()).cloned();
    let cell = raw.cell.unwrap_or_default();

    let data_dir = data_dir_flag
        .map(Path::to_path_buf)
        .or_else(|| env_of("MTP_DATA_DIR").map(PathBuf::from))
        .or(raw.data_dir)
        .unwrap_or_else(|| PathBuf::from("./data"));
    let data_dir = absolute(&data_dir).context("at key `dataDir`")?;

    let docker_host = env_of("MTP_DOCKER_HOST").or(raw.docker_host);
    if let Some(host) = &docker_host
        && !(host.starts_with("unix://")
            || host.starts_with("tcp://127.0.0.1")
            || host.starts_with("http://127.0.0.1"))
    {
        bail!(
            "at key `dockerHost`: {host:?} is not allowed; use unix:///var/run/docker.sock or a 127.0.0.1 address"
        );
    }

    let image = env_of("MTP_CELL_IMAGE")
        .or(cell.image)
        .unwrap_or_else(|| DEFAULT_CELL_IMAGE.to_string());
    if let Err(err) = crate::tenant::check_pinned_image(&image) {
        bail!("at key `cell.image`: {err}");
    }

    let port_start = match env_of("MTP_PORT_START") {
        Some(v) => v
            .parse()
            .with_context(|| format!("MTP_PORT_START={v:?} is not a port number"))?,
        None => cell.port_start.unwrap_or(19100),
    };
    let port_end = cell.port_end.unwrap_or(port_start.saturating_add(999));
    if port_start < 1024 || port_end < port_start {
        bail!(
            "at key `cell.portStart`/`cell.portEnd`: need 1024 <= portStart <= portEnd, got {port_start}..={port_end}"
        );
    }

    let memory = cell.memory.unwrap_or_else(|| "2g".to_string());
    let memory_bytes =
        parse_memory(&memory).with_context(|| format!("at key `cell.memory`: {memory:?}"))?;
    let cpus = cell.cpus.unwrap_or(2.0);
    let nano_cpus = cpus_to_nano(cpus).context("at key `cell.cpus`")?;
    let pids_limit = cell.pids_limit.unwrap_or(512);
    if !(32..=65536).contains(&pids_limit) {
        bail!("at key `cell.pidsLimit`: {pids_limit} is outside 32..=65536");
    }
    let health_timeout = match env_of("MTP_HEALTH_TIMEOUT").or(cell.health_timeout) {
        Some(text) => humantime::parse_duration(&text).with_context(|| {
            format!("at key `cell.healthTimeout`: {text:?} is not a duration such as \"120s\"")
        })?,
        None => Duration::from_secs(120),
    };
    let subnet_pool = SubnetPool::parse(
        &env_of("MTP_SUBNET_POOL")
            .or(cell.subnet_pool)
            .unwrap_or_else(|| "10.213.0.0/16".to_string()),
    )
    .context("at key `cell.subnetPool`")?;
    let model = cell
        .model
        .unwrap_or_else(|| "anthropic/claude-opus-4-6".to_string());
    if !model.contains('/') || model.contains(char::is_whitespace) {
        bail!(
            "at key `cell.model`: {model:?} must look like provider/model, e.g. anthropic/claude-opus-4-6"
        );
    }
    let telegram_api_root = env_of("MTP_TELEGRAM_API_ROOT").or(cell.telegram_api_root);
    if let Some(root) = &telegram_api_root
        && !(root.starts_with("http://") || root.starts_with("https://"))
    {
        bail!("at key `cell.telegramApiRoot`: {root:?} must be an http(s) URL");
    }
    let extra_env = cell.extra_env.unwrap_or_default();
    for key in extra_env.keys() {
        let valid = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && !key.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            bail!("at key `cell.extraEnv.{key}`: environment names use A-Z, 0-9 and '_'");
        }
    }
    let log_max_size = cell.log_max_size.unwrap_or_else(|| "10m".to_string());
    let log_max_bytes = parse_log_size(&log_max_size)
        .with_context(|| format!("at key `cell.logMaxSize`: {log_max_size:?}"))?;
    let log_max_files = cell.log_max_files.unwrap_or(3);
    if !(1..=100).contains(&log_max_files) {
        bail!("at key `cell.logMaxFiles`: {log_max_files} is outside 1..=100");
    }

    let engine = match env_of("MTP_CELL_ENGINE")
        .or(cell.engine)
        .as_deref()
        .unwrap_or("docker")
    {
        "docker" => Engine::Docker,
        "swarm" => Engine::Swarm,
        other => bail!("at key `cell.engine`: {other:?} is neither \"docker\" nor \"swarm\""),
    };

    let node_labels = cell.node_labels.unwrap_or_default();
    for (key, value) in &node_labels {
        let plain = |text: &str| {
            !text.is_empty() && !text.contains(|c: char| c.is_whitespace() || c == '=')
        };
        if !plain(key) || !plain(value) {
            bail!(
                "at key `cell.nodeLabels`: {key:?}: {value:?} is not a node label (no spaces or '=', neither empty)"
            );
        }
    }

    let telegram = check_telegram(raw.telegram.unwrap_or_default(), env)?;
    let monitor = check_monitor(raw.monitor.unwrap_or_default(), env)?;
    let usage = check_usage(raw.usage.unwrap_or_default(), env)?;
    let audit = check_audit(raw.audit.unwrap_or_default())?;
    let backup = check_backup(raw.backup.unwrap_or_default(), &data_dir, env)?;
    let sleep = check_sleep(raw.sleep.unwrap_or_default(), env)?;

    Ok(AdminConfig {
        data_dir,
        docker_host,
        telegram,
        monitor,
        usage,
        audit,
        backup,
        sleep,
        cell: CellDefaults {
            image,
            port_start,
            port_end,
            memory_bytes,
            nano_cpus,
            pids_limit,
            health_timeout,
            subnet_pool,
            model,
            telegram_api_root,
            extra_env,
            log_max_bytes,
            log_max_files,
            preapprove_pairing: cell.preapprove_pairing.unwrap_or(true),
            engine,
            node_labels,
        },
    })
}

fn check_telegram(
    raw: RawTelegram,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<TelegramSettings> {
    let env_of = |key: &str| env.get(key).filter(|v| !v.is_empty()).cloned();
    let read_secret_file = |path: &Path, key: &str| -> anyhow::Result<Secret<String>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("at key `{key}`: cannot read {}", path.display()))?;
        let text = text.trim().to_string();
        if text.is_empty() {
            bail!("at key `{key}`: {} is empty", path.display());
        }
        Ok(Secret::new(text))
    };
    // A file named in the environment: a Docker secret under /run/secrets.
    let token_file = env_of("MTP_TELEGRAM_TOKEN_FILE")
        .map(PathBuf::from)
        .or(raw.token_file);
    let token = match (env_of("MTP_TELEGRAM_TOKEN"), &token_file) {
        (Some(token), _) => Some(Secret::new(token.trim().to_string())),
        (None, Some(path)) => Some(read_secret_file(path, "telegram.tokenFile")?),
        (None, None) => None,
    };
    if let Some(token) = &token
        && crate::tenant::BotToken::parse(token.expose()).is_err()
    {
        bail!(
            "MTP_TELEGRAM_TOKEN / telegram.tokenFile does not look like a bot token (123456789:AA…); copy it again from @BotFather"
        );
    }
    let operators = match env_of("MTP_OPERATORS") {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|id| {
                id.parse::<u64>().with_context(|| {
                    format!("MTP_OPERATORS: {id:?} is not a Telegram user id (digits only)")
                })
            })
            .collect::<anyhow::Result<Vec<u64>>>()?,
        None => raw.operators.unwrap_or_default(),
    };
    let ops_chat_id = match env_of("MTP_OPS_CHAT_ID") {
        Some(id) => Some(id.trim().parse::<i64>().with_context(|| {
            format!("MTP_OPS_CHAT_ID={id:?} is not a chat id (e.g. -1001234567890)")
        })?),
        None => raw.ops_chat_id,
    };
    let api_url = env_of("MTP_TELEGRAM_API_URL")
        .or(raw.api_url)
        .unwrap_or_else(|| TELEGRAM_API_URL.to_string());
    if !(api_url.starts_with("https://")
        || api_url.starts_with("http://127.0.0.1")
        || api_url.starts_with("http://localhost"))
    {
        bail!("at key `telegram.apiUrl`: {api_url:?} must be https:// (or http:// on loopback)");
    }
    let shared_provider_key = match (
        env_of("MTP_SHARED_PROVIDER_KEY"),
        &raw.shared_provider_key_file,
    ) {
        (Some(key), _) => Some(Secret::new(key.trim().to_string())),
        (None, Some(path)) => Some(read_secret_file(path, "telegram.sharedProviderKeyFile")?),
        (None, None) => None,
    };
    let dialogue_idle = match env_of("MTP_DIALOGUE_IDLE").or(raw.dialogue_idle) {
        Some(text) => humantime::parse_duration(&text).with_context(|| {
            format!("at key `telegram.dialogueIdle`: {text:?} is not a duration such as \"30m\"")
        })?,
        None => Duration::from_secs(30 * 60),
    };
    if dialogue_idle < Duration::from_secs(1) {
        bail!("at key `telegram.dialogueIdle`: must be at least 1s");
    }
    Ok(TelegramSettings {
        token,
        operators,
        ops_chat_id,
        api_url,
        shared_provider_key,
        dialogue_idle,
    })
}

fn check_monitor(
    raw: RawMonitor,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<MonitorSettings> {
    let env_of = |key: &str| env.get(key).filter(|v| !v.is_empty()).cloned();
    let duration = |text: Option<String>, key: &str, default: u64| -> anyhow::Result<Duration> {
        match text {
            Some(text) => {
                let value = humantime::parse_duration(&text).with_context(|| {
                    format!("at key `{key}`: {text:?} is not a duration such as \"30s\"")
                })?;
                if value < Duration::from_millis(100) {
                    bail!("at key `{key}`: {text:?} is too short (at least 100ms)");
                }
                Ok(value)
            }
            None => Ok(Duration::from_secs(default)),
        }
    };
    let interval = duration(
        env_of("MTP_MONITOR_INTERVAL").or(raw.interval),
        "monitor.interval",
        30,
    )?;
    let probe_timeout = duration(raw.probe_timeout, "monitor.probeTimeout", 5)?;
    let down_after = match env_of("MTP_MONITOR_DOWN_AFTER") {
        Some(text) => text
            .parse::<u32>()
            .with_context(|| format!("MTP_MONITOR_DOWN_AFTER={text:?} is not a count"))?,
        None => raw.down_after.unwrap_or(3),
    };
    if !(1..=100).contains(&down_after) {
        bail!("at key `monitor.downAfter`: {down_after} is outside 1..=100");
    }
    let concurrency = raw.concurrency.unwrap_or(16);
    if !(1..=256).contains(&concurrency) {
        bail!("at key `monitor.concurrency`: {concurrency} is outside 1..=256");
    }
    let heal = match env_of("MTP_MONITOR_HEAL") {
        Some(text) => match text.as_str() {
            "1" | "true" | "yes" => true,
            "0" | "false" | "no" => false,
            _ => bail!("MTP_MONITOR_HEAL={text:?}: use true or false"),
        },
        None => raw.heal.unwrap_or(true),
    };
    let addr_text = env_of("MTP_HTTP_ADDR")
        .or(raw.http_addr)
        .unwrap_or_else(|| "127.0.0.1:9464".to_string());
    let http_addr: std::net::SocketAddr = addr_text.parse().with_context(|| {
        format!("at key `monitor.httpAddr`: {addr_text:?} is not an address such as 127.0.0.1:9464")
    })?;
    if !http_addr.ip().is_loopback() {
        bail!(
            "at key `monitor.httpAddr`: {addr_text} is not a loopback address; the admin listens on 127.0.0.1 only"
        );
    }
    let digest_at = match env_of("MTP_DIGEST_AT").or(raw.digest_at) {
        Some(text) => Some(
            chrono::NaiveTime::parse_from_str(&text, "%H:%M").with_context(|| {
                format!("at key `monitor.digestAt`: {text:?} is not a time such as \"09:00\"")
            })?,
        ),
        None => None,
    };
    Ok(MonitorSettings {
        interval,
        down_after,
        probe_timeout,
        concurrency,
        heal,
        http_addr,
        digest_at,
    })
}

fn check_usage(raw: RawUsage, env: &BTreeMap<String, String>) -> anyhow::Result<UsageSettings> {
    let env_of = |key: &str| env.get(key).filter(|v| !v.is_empty()).cloned();
    let interval = match env_of("MTP_USAGE_INTERVAL").or(raw.interval) {
        Some(text) => {
            let value = humantime::parse_duration(&text).with_context(|| {
                format!("at key `usage.interval`: {text:?} is not a duration such as \"1h\"")
            })?;
            if value < Duration::from_secs(1) {
                bail!("at key `usage.interval`: {text:?} is too short (at least 1s)");
            }
            value
        }
        None => Duration::from_secs(3600),
    };
    let zone_text = env_of("MTP_USAGE_TIME_ZONE")
        .or(raw.time_zone)
        .unwrap_or_else(|| "UTC".to_string());
    let time_zone: chrono_tz::Tz = zone_text
        .parse()
        .map_err(|_| anyhow::anyhow!("at key `usage.timeZone`: {zone_text:?} is not an IANA time zone such as \"UTC\" or \"Europe/Berlin\""))?;
    let check_pricing =
        |markup: Option<f64>, fee: Option<f64>, key: &str| -> anyhow::Result<Option<Usd>> {
            if let Some(markup) = markup
                && !(markup.is_finite() && (0.0..=1000.0).contains(&markup))
            {
                bail!("at key `{key}.markupPercent`: {markup} is outside 0..=1000");
            }
            fee.map(Usd::try_from)
                .transpose()
                .with_context(|| format!("at key `{key}.monthlyFee`"))
        };
    let mut plans = BTreeMap::new();
    for (name, plan) in raw.plans.unwrap_or_default() {
        let monthly_fee = check_pricing(
            plan.markup_percent,
            plan.monthly_fee,
            &format!("usage.plans.{name}"),
        )?;
        plans.insert(
            name,
            Pricing {
                markup_percent: plan.markup_percent.unwrap_or(0.0),
                monthly_fee: monthly_fee.unwrap_or(Usd::ZERO),
            },
        );
    }
    let known_plans = || plans.keys().cloned().collect::<Vec<_>>().join(", ");
    if let Some(name) = &raw.default_plan
        && !plans.contains_key(name)
    {
        bail!(
            "at key `usage.defaultPlan`: no plan {name:?} under usage.plans (plans: {})",
            known_plans()
        );
    }
    let mut tenants = BTreeMap::new();
    for (id, entry) in raw.tenants.unwrap_or_default() {
        let key = format!("usage.tenants.{id}");
        let tenant: TenantId = id
            .parse()
            .with_context(|| format!("at key `{key}`: {id:?} is not a tenant id"))?;
        let monthly_fee = check_pricing(entry.markup_percent, entry.monthly_fee, &key)?;
        if let Some(name) = &entry.plan
            && !plans.contains_key(name)
        {
            bail!(
                "at key `{key}.plan`: no plan {name:?} under usage.plans (plans: {})",
                known_plans()
            );
        }
        let budget = entry
            .budget
            .map(Usd::try_from)
            .transpose()
            .with_context(|| format!("at key `{key}.budget`"))?;
        if budget.is_some_and(Usd::is_zero) {
            bail!(
                "at key `{key}.budget`: a budget must be more than {}",
                Usd::ZERO
            );
        }
        let on_budget = match &entry.on_budget {
            Some(text) => Some(BudgetAction::parse(text).with_context(|| {
                format!("at key `{key}.onBudget`: {text:?} is not one of notify, stop-channel, stop-cell")
            })?),
            None => None,
        };
        tenants.insert(
            tenant,
            TenantUsage {
                plan: entry.plan,
                markup_percent: entry.markup_percent,
                monthly_fee,
                budget,
                on_budget,
            },
        );
    }
    Ok(UsageSettings {
        interval,
        time_zone,
        plans,
        default_plan: raw.default_plan,
        tenants,
    })
}

fn check_audit(raw: RawAudit) -> anyhow::Result<AuditSettings> {
    let keep_days = raw.keep_days.unwrap_or(365);
    if !(1..=36_500).contains(&keep_days) {
        bail!("at key `audit.keepDays`: {keep_days} is outside 1..=36500");
    }
    let max_rows = raw.max_rows.unwrap_or(100_000);
    if !(10..=100_000_000).contains(&max_rows) {
        bail!("at key `audit.maxRows`: {max_rows} is outside 10..=100000000");
    }
    Ok(AuditSettings {
        keep_days,
        max_rows,
    })
}

fn check_backup(
    raw: RawBackup,
    data_dir: &Path,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<BackupSettings> {
    let env_of = |key: &str| env.get(key).filter(|v| !v.is_empty()).cloned();
    let dir = match env_of("MTP_BACKUP_DIR").map(PathBuf::from).or(raw.dir) {
        Some(dir) => absolute(&dir).context("at key `backup.dir`")?,
        None => data_dir.join("backups"),
    };
    let schedule = match env_of("MTP_BACKUP_SCHEDULE").or(raw.schedule).as_deref() {
        None => chrono::NaiveTime::from_hms_opt(3, 0, 0),
        Some("off") => None,
        Some(text) => Some(
            chrono::NaiveTime::parse_from_str(text, "%H:%M").with_context(|| {
                format!("at key `backup.schedule`: {text:?} is neither a time such as \"03:00\" nor \"off\"")
            })?,
        ),
    };
    let raw_keep = raw.keep.unwrap_or_default();
    let keep = Keep {
        daily: raw_keep.daily.unwrap_or(7),
        weekly: raw_keep.weekly.unwrap_or(4),
    };
    if keep.daily > 3650 || keep.weekly > 520 {
        bail!("at key `backup.keep`: at most 3650 daily and 520 weekly");
    }
    if keep.daily == 0 && keep.weekly == 0 {
        bail!(
            "at key `backup.keep`: keeping no backup at all is not a retention; keep at least one daily"
        );
    }
    let recipients = raw.recipients.unwrap_or_default();
    for recipient in &recipients {
        let valid = recipient.starts_with("age1")
            && recipient.len() > 50
            && recipient.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid {
            bail!(
                "at key `backup.recipients`: {recipient:?} is not an age X25519 recipient (age1…, from `age-keygen -y`)"
            );
        }
    }
    let after_command = raw.after_command.filter(|c| !c.trim().is_empty());
    Ok(BackupSettings {
        dir,
        schedule,
        keep,
        recipients,
        after_command,
    })
}

/// The shortest `sleep.after` accepted. A wake costs the client a gateway
/// boot (10-20 s), so an operator wants hours; this floor only refuses a typo.
const MIN_SLEEP_AFTER: Duration = Duration::from_secs(10);

fn check_sleep(raw: RawSleep, env: &BTreeMap<String, String>) -> anyhow::Result<SleepSettings> {
    let env_of = |key: &str| env.get(key).filter(|v| !v.is_empty()).cloned();
    let idle = |key: &str, text: &str| -> anyhow::Result<Option<Duration>> {
        if text == "off" || text == "never" {
            return Ok(None);
        }
        let value = humantime::parse_duration(text).with_context(|| {
            format!("at key `{key}`: {text:?} is neither an idle time such as \"2h\" nor \"off\"")
        })?;
        if value < MIN_SLEEP_AFTER {
            bail!(
                "at key `{key}`: {text:?} is shorter than 10 seconds; a wake costs a gateway boot"
            );
        }
        Ok(Some(value))
    };
    let after = match env_of("MTP_SLEEP_AFTER").or(raw.after) {
        Some(text) => idle("sleep.after", &text)?,
        None => None,
    };
    let mut never = Vec::new();
    for id in raw.never.unwrap_or_default() {
        let tenant: TenantId = id
            .parse()
            .with_context(|| format!("at key `sleep.never`: {id:?} is not a tenant id"))?;
        never.push(tenant);
    }
    let mut tenants = BTreeMap::new();
    for (id, settings) in raw.tenants.unwrap_or_default() {
        let tenant: TenantId = id
            .parse()
            .with_context(|| format!("at key `sleep.tenants`: {id:?} is not a tenant id"))?;
        let key = format!("sleep.tenants.{id}.after");
        let after = match settings.after {
            Some(text) => idle(&key, &text)?,
            None => bail!("at key `{key}`: missing; say an idle time such as \"2h\" or \"off\""),
        };
        tenants.insert(tenant, after);
    }
    Ok(SleepSettings {
        after,
        never,
        tenants,
    })
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Ok(cwd.join(path))
}

/// Parses `512m`, `2g`, `1.5g`, `1073741824` into bytes.
/// Docker's units: `g` is GiB. Not `bytesize`, which reads `2g` as 2·10⁹ (SI) and
/// would shrink every configured cell by 7%.
pub fn parse_memory(text: &str) -> anyhow::Result<i64> {
    let text = text.trim().to_ascii_lowercase();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text.as_str(), ""),
    };
    let number: f64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("not a size; write it like 512m or 2g"))?;
    let factor: f64 = match unit {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => bail!("unknown unit {unit:?}; use m or g"),
    };
    let bytes = number * factor;
    let min = 64.0 * 1024.0 * 1024.0;
    if !bytes.is_finite() || bytes < min || bytes > 1024.0 * 1024.0 * 1024.0 * 1024.0 {
        bail!("must be between 64m and 1024g");
    }
    Ok(bytes as i64)
}

/// Parses a log file size (`500k`, `10m`, `1g`, or bytes; whole numbers) into bytes.
fn parse_log_size(text: &str) -> anyhow::Result<u64> {
    let text = text.trim().to_ascii_lowercase();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text.as_str(), ""),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("not a size; write it like 10m"))?;
    let factor: u64 = match unit {
        "" | "b" => 1,
        "k" => 1024,
        "m" => 1024 * 1024,
        "g" => 1024 * 1024 * 1024,
        _ => bail!("unknown unit {unit:?}; write it like 500k, 10m or 1g"),
    };
    let bytes = number.saturating_mul(factor);
    // Under 100k a cell's start-up alone rotates the log away; over 1g per file
    // defeats the point of a limit.
    if !(100 * 1024..=1024 * 1024 * 1024).contains(&bytes) {
        bail!("must be between 100k and 1g");
    }
    Ok(bytes)
}

/// Parses a CPU count (`2`, `0.5`) into Docker's nano-CPUs.
pub fn cpus_to_nano(cpus: f64) -> anyhow::Result<i64> {
    if !cpus.is_finite() || !(0.1..=256.0).contains(&cpus) {
        bail!("{cpus} CPUs is outside 0.1..=256");
    }
    Ok((cpus * 1e9) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_sane() {
        let config = AdminConfig::from_json5("{}").unwrap();
        assert_eq!(config.cell.port_start, 19100);
        assert_eq!(config.cell.memory_bytes, 2 * 1024 * 1024 * 1024);
        assert_eq!(config.cell.nano_cpus, 2_000_000_000);
        assert_eq!(config.cell.pids_limit, 512);
        assert_eq!(config.cell.health_timeout, Duration::from_secs(120));
        assert_eq!(config.cell.image, DEFAULT_CELL_IMAGE);
        assert_eq!(config.cell.log_max_bytes, 10 * 1024 * 1024);
        assert_eq!(config.cell.log_max_files, 3);
        assert_eq!(
            config.audit,
            AuditSettings {
                keep_days: 365,
                max_rows: 100_000
            }
        );
    }

    // See: issue 13 (cells on Swarm).
    /// The engine is Docker unless the config says Swarm; anything else is refused.
    #[test]
    fn the_cell_engine_is_docker_or_swarm() {
        let docker = AdminConfig::from_json5("{}").unwrap();
        assert_eq!(docker.cell.engine, Engine::Docker);
        let swarm = AdminConfig::from_json5("{ cell: { engine: 'swarm' } }").unwrap();
        assert_eq!(swarm.cell.engine, Engine::Swarm);
        let refused = AdminConfig::from_json5("{ cell: { engine: 'kubernetes' } }")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("cell.engine"), "{refused}");
        let labelled =
            AdminConfig::from_json5("{ cell: { nodeLabels: { 'mtp.pool': 'clients' } } }").unwrap();
        assert_eq!(
            labelled
                .cell
                .node_labels
                .get("mtp.pool")
                .map(String::as_str),
            Some("clients")
        );
        let refused = AdminConfig::from_json5("{ cell: { nodeLabels: { 'a b': 'c' } } }")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("cell.nodeLabels"), "{refused}");
    }

    // See: issue 10 (log rotation for every cell).
    /// Log rotation sizes and counts are read and checked.
    #[test]
    fn cell_log_rotation_is_configurable_and_checked() {
        let config =
            AdminConfig::from_json5("{ cell: { logMaxSize: '500k', logMaxFiles: 5 } }").unwrap();
        assert_eq!(config.cell.log_max_bytes, 500 * 1024);
        assert_eq!(config.cell.log_max_files, 5);
        let config = AdminConfig::from_json5("{ cell: { logMaxSize: '1G' } }").unwrap();
        assert_eq!(config.cell.log_max_bytes, 1024 * 1024 * 1024);
        for (input, key) in [
            ("{ cell: { logMaxSize: 'big' } }", "cell.logMaxSize"),
            ("{ cell: { logMaxSize: '10' } }", "cell.logMaxSize"),
            ("{ cell: { logMaxSize: '1.5m' } }", "cell.logMaxSize"),
            ("{ cell: { logMaxSize: '10k' } }", "cell.logMaxSize"),
            ("{ cell: { logMaxSize: '2g' } }", "cell.logMaxSize"),
            ("{ cell: { logMaxFiles: 0 } }", "cell.logMaxFiles"),
            ("{ cell: { logMaxFiles: 101 } }", "cell.logMaxFiles"),
            ("{ cell: { logMaxFiles: -1 } }", "cell.logMaxFiles"),
        ] {
            let err = AdminConfig::from_json5(input).unwrap_err();
            let text = format!("{err:#}");
            assert!(text.contains(key), "{input}: {text}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let err = AdminConfig::from_json5("{ cell: { memroy: '1g' } }").unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("cell.memroy") || text.contains("`cell`"),
            "{text}"
        );
        assert!(text.contains("memroy"), "{text}");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (input, key) in [
            ("{ cell: { memory: 'lots' } }", "cell.memory"),
            ("{ cell: { cpus: 0 } }", "cell.cpus"),
            ("{ cell: { image: 'openclaw:latest' } }", "cell.image"),
            ("{ cell: { subnetPool: '10.0.0.1/16' } }", "cell.subnetPool"),
            ("{ cell: { healthTimeout: 'soon' } }", "cell.healthTimeout"),
            ("{ cell: { portStart: 80 } }", "cell.portStart"),
            ("{ cell: { portStart: 'x' } }", "cell.portStart"),
            ("{ audit: { keepDays: 0 } }", "audit.keepDays"),
            ("{ audit: { maxRows: 1 } }", "audit.maxRows"),
            ("{ audit: { keep: 1 } }", "audit"),
            ("{ backup: { schedule: 'nightly' } }", "backup.schedule"),
            ("{ sleep: { after: 'soon' } }", "sleep.after"),
            ("{ sleep: { after: '5s' } }", "sleep.after"),
            ("{ sleep: { never: ['Not An Id'] } }", "sleep.never"),
            (
                "{ sleep: { tenants: { acme: {} } } }",
                "sleep.tenants.acme.after",
            ),
            (
                "{ sleep: { tenants: { acme: { after: '2h', idle: 1 } } } }",
                "sleep.tenants",
            ),
            (
                "{ backup: { keep: { daily: 0, weekly: 0 } } }",
                "backup.keep",
            ),
            (
                "{ backup: { recipients: ['ssh-ed25519 AAAA'] } }",
                "backup.recipients",
            ),
            ("{ backup: { keep: { monthly: 3 } } }", "backup"),
        ] {
            let err = AdminConfig::from_json5(input).unwrap_err();
            let text = format!("{err:#}");
            assert!(text.contains(key), "{input}: {text}");
        }
    }

    #[test]
    fn sleep_is_off_unless_asked_and_per_tenant_settings_win() {
        let config = AdminConfig::from_json5("{}").unwrap();
        let acme: TenantId = "acme".parse().unwrap();
        assert_eq!(config.sleep.after_for(&acme), None);
        let config = AdminConfig::from_json5(
            "{ sleep: { after: '2h', never: ['vip'], tenants: { acme: { after: '30m' }, beta: { after: 'off' } } } }",
        )
        .unwrap();
        let id = |text: &str| -> TenantId { text.parse().unwrap() };
        assert_eq!(
            config.sleep.after_for(&id("other")),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(
            config.sleep.after_for(&acme),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(config.sleep.after_for(&id("beta")), None);
        assert_eq!(config.sleep.after_for(&id("vip")), None);
    }

    #[test]
    fn backups_default_to_daily_at_three_in_the_data_dir() {
        let config = AdminConfig::from_json5("{ dataDir: '/srv/mtp' }").unwrap();
        assert_eq!(config.backup.dir, Path::new("/srv/mtp/backups"));
        assert_eq!(
            config.backup.schedule,
            chrono::NaiveTime::from_hms_opt(3, 0, 0)
        );
        assert_eq!(
            config.backup.keep,
            Keep {
                daily: 7,
                weekly: 4
            }
        );
        let off = AdminConfig::from_json5("{ backup: { schedule: 'off', dir: '/b' } }").unwrap();
        assert_eq!(off.backup.schedule, None);
        assert_eq!(off.backup.dir, Path::new("/b"));
    }

    #[test]
    fn subnet_pool_hands_out_28s() {
        let pool = SubnetPool::parse("10.213.0.0/16").unwrap();
        assert_eq!(pool.len(), 4096);
        assert_eq!(pool.subnet(0), "10.213.0.0/28");
        assert_eq!(pool.subnet(17), "10.213.1.16/28");
    }

    /// Usage defaults, pricing by plan with per-tenant overrides, and bad values named by key.
    #[test]
    fn usage_settings_resolve_pricing_and_name_bad_keys() {
        let config = AdminConfig::from_json5("{}").unwrap();
        assert_eq!(config.usage.interval, Duration::from_secs(3600));
        assert_eq!(config.usage.time_zone, chrono_tz::UTC);
        let config = AdminConfig::from_json5(
            "{ usage: { interval: '15m', timeZone: 'Europe/Berlin', defaultPlan: 'basic',
               plans: { basic: { markupPercent: 20, monthlyFee: 10 }, pro: { monthlyFee: 99 } },
               tenants: { acme: { plan: 'pro', markupPercent: 5, budget: 50, onBudget: 'stop-channel' } } } }",
        )
        .unwrap();
        assert_eq!(config.usage.interval, Duration::from_secs(900));
        assert_eq!(config.usage.time_zone, chrono_tz::Europe::Berlin);
        let acme: TenantId = "acme".parse().unwrap();
        let other: TenantId = "other".parse().unwrap();
        assert_eq!(
            config.usage.pricing(&acme),
            Pricing {
                markup_percent: 5.0,
                monthly_fee: Usd::cents(9900)
            }
        );
        assert_eq!(
            config.usage.pricing(&other),
            Pricing {
                markup_percent: 20.0,
                monthly_fee: Usd::cents(1000)
            }
        );
        assert_eq!(
            config.usage.tenants[&acme].on_budget,
            Some(BudgetAction::StopChannel)
        );
        for (input, key) in [
            ("{ usage: { timeZone: 'Mars/Olympus' } }", "usage.timeZone"),
            ("{ usage: { interval: 'often' } }", "usage.interval"),
            ("{ usage: { defaultPlan: 'gold' } }", "usage.defaultPlan"),
            ("{ usage: { tenants: { Acme: {} } } }", "usage.tenants.Acme"),
            (
                "{ usage: { tenants: { acme: { budget: -1 } } } }",
                "usage.tenants.acme.budget",
            ),
            (
                "{ usage: { tenants: { acme: { onBudget: 'panic' } } } }",
                "usage.tenants.acme.onBudget",
            ),
            (
                "{ usage: { plans: { p: { markupPercent: -5 } } } }",
                "usage.plans.p.markupPercent",
            ),
        ] {
            let err = AdminConfig::from_json5(input).unwrap_err();
            let text = format!("{err:#}");
            assert!(text.contains(key), "{input}: {text}");
        }
    }

    #[test]
    fn memory_sizes_parse() {
        assert_eq!(parse_memory("512m").unwrap(), 512 * 1024 * 1024);
        assert_eq!(parse_memory("1.5g").unwrap(), 1536 * 1024 * 1024);
        assert!(parse_memory("1k").is_err());
    }
}
