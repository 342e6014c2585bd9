//! The shared vocabulary of every layer: tenant ids, what an operator asks for
//! (`TenantSpec`), what the store remembers (`TenantRecord`), cell states, and
//! `Secret<T>`, the wrapper that keeps tokens out of logs and `Debug` output.
//!
//! Nothing here knows about Docker, redb or the gateway.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A validated tenant id: upstream's rule `^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(String);

/// Why a string is not a tenant id; the message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantIdError {
    #[error("a tenant id cannot be empty; use 1 to 40 characters: a-z, 0-9 and '-'")]
    Empty,
    #[error("tenant id is {len} characters long; the limit is 40")]
    TooLong { len: usize },
    #[error(
        "tenant id contains {found:?}; use only lowercase letters a-z, digits 0-9 and '-' (for example \"acme-corp\")"
    )]
    BadChar { found: char },
    #[error("a tenant id must start and end with a letter or digit, not '-'")]
    EdgeDash,
}

/// Upstream's limit: one first char, up to 38 middle, one last.
const TENANT_ID_MAX_LEN: usize = 40;

impl TenantId {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The container and network name of this tenant's cell.
    #[must_use]
    pub fn cell_name(&self) -> String {
        format!("mtp-cell-{}", self.0)
    }

    /// Proposes a valid id from a free-form name ("Acme Corp." → "acme-corp").
    #[must_use]
    pub fn suggest(name: &str) -> Option<TenantId> {
        let mut res = String::new();
        for c in name.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                res.push(c);
            } else if !res.is_empty() && !res.ends_with('-') {
                res.push('-');
            }
        }
        res.truncate(TENANT_ID_MAX_LEN);
        let trimmed = res.trim_matches('-');
        trimmed.parse().ok()
    }
}

impl FromStr for TenantId {
    type Err = TenantIdError;

    fn from_str(s: &str) -> Result<TenantId, TenantIdError> {
        if s.is_empty() {
            return Err(TenantIdError::Empty);
        }
        let len = s.chars().count();
        if len > TENANT_ID_MAX_LEN {
            return Err(TenantIdError::TooLong { len });
        }
        if let Some(found) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(TenantIdError::BadChar { found });
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(TenantIdError::EdgeDash);
        }
        Ok(TenantId(s.to_string()))
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A value that must never be printed: `Debug` and `Display` show `<redacted>`.
/// Call `expose()` only where the value is actually used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why an image reference is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error(
        "{0:?} is not an image reference (letters, digits and . _ - / : @, such as mtp-test/openclaw:2026.9.6)"
    )]
    Malformed(String),
    #[error("image {0:?} is not pinned; name a tag such as mtp-test/openclaw:2026.9.6 or a digest")]
    NotPinned(String),
}

/// Accepts a cell image only when it is a well-formed reference pinned to a tag
/// (not `latest`) or a digest: cells are upgraded by MTP, never by a moving tag.
/// A registry port (`host:5000/name`) is not a tag.
///
/// # Errors
///
/// `Malformed` (also for `..` or empty path parts), `NotPinned`.
pub fn check_pinned_image(image: &str) -> Result<(), ImageRefError> {
    let well_formed = !image.is_empty()
        && image.len() <= 255
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
        && !image.starts_with(['.', '-', ':', '@'])
        && !image
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if !well_formed {
        return Err(ImageRefError::Malformed(image.to_string()));
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    let tagged = last
        .split_once(':')
        .is_some_and(|(name, tag)| !name.is_empty() && !tag.is_empty() && tag != "latest");
    if image.contains('@') || tagged {
        Ok(())
    } else {
        Err(ImageRefError::NotPinned(image.to_string()))
    }
}

/// The kinds of secret the admin keeps per tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretKind {
    /// `OPENCLAW_GATEWAY_TOKEN` of the cell, generated by MTP.
    GatewayToken,
    /// The tenant's BotFather token (`TELEGRAM_BOT_TOKEN`).
    BotToken,
    /// The model provider's API key, when the tenant has its own.
    ProviderKey,
    /// The device token the cell issued to the admin when it was paired.
    DeviceToken,
    /// `OPENCLAW_HOOKS_TOKEN` of the cell (bearer of `/hooks/*` once hooks are on),
    /// generated by MTP.
    HooksToken,
}

impl SecretKind {
    pub const ALL: [SecretKind; 5] = [
        SecretKind::GatewayToken,
        SecretKind::BotToken,
        SecretKind::ProviderKey,
        SecretKind::DeviceToken,
        SecretKind::HooksToken,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::GatewayToken => "gateway-token",
            SecretKind::BotToken => "bot-token",
            SecretKind::ProviderKey => "provider-key",
            SecretKind::DeviceToken => "device-token",
            SecretKind::HooksToken => "hooks-token",
        }
    }
}

/// A Telegram bot token as BotFather hands it out: `<bot id>:<35 chars>`.
#[derive(Clone, PartialEq, Eq)]
pub struct BotToken(Secret<String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotTokenError {
    #[error(
        "this does not look like a bot token; BotFather's tokens look like 123456789:AA… (digits, a colon, then 30 or more letters, digits, '_' or '-')"
    )]
    Malformed,
}

impl BotToken {
    pub fn parse(raw: &str) -> Result<BotToken, BotTokenError> {
        let raw = raw.trim();
        let Some((id, rest)) = raw.split_once(':') else {
            return Err(BotTokenError::Malformed);
        };
        let id_ok = !id.is_empty() && id.len() <= 20 && id.chars().all(|c| c.is_ascii_digit());
        let rest_ok = rest.len() >= 30
            && rest.len() <= 100
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !id_ok || !rest_ok {
            return Err(BotTokenError::Malformed);
        }
        Ok(BotToken(Secret::new(raw.to_string())))
    }

    /// The numeric bot id before the colon; not a secret.
    #[must_use]
    pub fn bot_id(&self) -> u64 {
        // The constructor checked that the part before ':' is 1..=20 digits;
        // 20 digits can overflow u64, so fall back to 0 rather than panic.
        let id = self.0.expose().split(':').next().unwrap_or_default();
        id.parse().unwrap_or(0)
    }

    pub fn secret(&self) -> &Secret<String> {
        &self.0
    }
}

impl fmt::Debug for BotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BotToken({}:<redacted>)", self.bot_id())
    }
}

/// Who may talk to the tenant's own bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmPolicy {
    /// Strangers get a pairing code that the operator approves (OpenClaw's default).
    Pairing,
    /// Only these numeric Telegram user ids.
    Allowlist(Vec<i64>),
}

/// Resource limits of one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    pub pids: i64,
}

/// Everything the operator chose for a new tenant.
#[derive(Debug, Clone)]
pub struct TenantSpec {
    pub id: TenantId,
    pub display_name: Option<String>,
    pub bot_token: BotToken,
    pub provider_key: Option<Secret<String>>,
    /// `provider/model`, e.g. `anthropic/claude-opus-4-6`.
    pub model: String,
    /// Image reference; `None` takes the configured default.
    pub image: Option<String>,
    pub limits: Option<Limits>,
    pub dm_policy: DmPolicy,
    /// Bundled skills to allow; `None` keeps OpenClaw's default.
    pub skills: Option<Vec<String>>,
    /// The bot's @username, when `getMe` was asked (the bot does; the CLI may not).
    pub bot_username: Option<String>,
    /// Keep the container and dirs of a failed create for inspection.
    pub keep_failed: bool,
}

/// What the store remembers of a tenant (the desired state).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRecord {
    pub id: TenantId,
    pub display_name: Option<String>,
    pub state: CellState,
    pub port: u16,
    /// The /28 subnet of the cell's own network, e.g. `10.213.0.16/28`.
    pub subnet: String,
    pub image: String,
    /// The image id actually used (`sha256:…`), once the container exists.
    pub image_id: Option<String>,
    pub model: String,
    pub limits: Limits,
    pub bot_id: u64,
    pub bot_username: Option<String>,
    pub generation: u64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last state change.
    pub updated_at: i64,
    /// Why the tenant is `Failed`, when it is.
    pub last_error: Option<String>,
    /// The admin's device is paired with the cell's gateway.
    pub paired: bool,
    /// While the state is `Creating`: what the create is making or has made,
    /// written before each step, so an undo removes exactly that and never a
    /// directory or container this create did not make.
    pub create_progress: CreateProgress,
    /// While the state is `Removing`: the data dirs go too.
    pub purge_on_remove: bool,
    /// Alerts for this tenant are muted until then (unix seconds): the operator's mute.
    pub muted_until: Option<i64>,
    /// The monitor keeps quiet until then (unix seconds) because an action
    /// (an upgrade) is taking the cell down on purpose; cleared when it ends.
    /// Kept apart from `muted_until`, so neither overwrites the other.
    pub maintenance_until: Option<i64>,
    /// While `Sleeping`: since when (unix seconds).
    pub slept_at: Option<i64>,
    /// While `Sleeping`: when to wake for the next scheduled job (unix seconds).
    pub wake_at: Option<i64>,
    /// The image the operator pinned this tenant to: fleet upgrades pass it by.
    pub pinned_image: Option<String>,
    /// On Swarm, the node that holds the cell's volumes and runs it.
    pub node: Option<String>,
}

impl TenantRecord {
    /// Until when the monitor keeps quiet about this tenant (mute or maintenance).
    #[must_use]
    pub fn quiet_until(&self) -> Option<i64> {
        match (self.muted_until, self.maintenance_until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The steps of a create that leave something behind, each marked before it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreateProgress {
    /// `<data>/tenants/<id>` was made by this create (it did not exist before).
    pub dirs: bool,
    pub network: bool,
    pub container: bool,
}

/// What the monitor checks of every tenant; alert state is kept per check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// The container runs (not exited, not restarting).
    Container,
    /// `/healthz`, `/readyz` and the RPC `health` answer.
    Gateway,
    /// The Telegram channel runs without errors (401, 409, network).
    Channel,
    /// Memory stays under 90% of the limit.
    Memory,
}

impl Check {
    pub const ALL: [Check; 4] = [
        Check::Container,
        Check::Gateway,
        Check::Channel,
        Check::Memory,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Container => "container",
            Check::Gateway => "gateway",
            Check::Channel => "channel",
            Check::Memory => "memory",
        }
    }

    #[must_use]
    pub fn parse(text: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|check| check.as_str() == text)
    }
}

/// The alert state of one (tenant, check), kept across admin restarts so an
/// open alert is neither repeated nor forgotten. `monitor::rules` drives it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertState {
    pub status: AlertStatus,
    /// Consecutive failures so far.
    pub failures: u32,
    /// When the current status began (unix seconds).
    pub since: i64,
    /// When the first failure of the current outage was seen.
    pub failing_since: Option<i64>,
    pub last_error: Option<String>,
    /// Unix seconds of recent DOWN/RECOVERED transitions, for flap detection.
    pub transitions: Vec<i64>,
    /// A flapping alert was sent and not yet cleared.
    pub flapping: bool,
    pub last_notified: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    #[default]
    Ok,
    Suspect,
    Down,
}

/// How a start of a cell went; a cell that already runs is not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    Started,
    AlreadyRunning,
}

/// Where cells run: Docker on the admin's own host, or services of a Docker
/// Swarm across several (`cell.engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    #[default]
    Docker,
    Swarm,
}

/// How a stop of a cell went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Stopped,
    AlreadyStopped,
}

/// The desired/recorded state of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellState {
    /// A create is in progress (or crashed half-way; reconcile finishes or undoes it).
    Creating,
    Running,
    /// Stopped on purpose by an operator.
    Stopped,
    /// Idle, its container stopped to free its memory; the admin starts it
    /// again on its client's next Telegram message or before a scheduled job.
    Sleeping,
    /// A create failed and the operator asked to keep what was made.
    Failed,
    /// A removal is in progress (or crashed half-way; reconcile finishes it).
    Removing,
}

impl CellState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CellState::Creating => "creating",
            CellState::Running => "running",
            CellState::Stopped => "stopped",
            CellState::Sleeping => "sleeping",
            CellState::Failed => "failed",
            CellState::Removing => "removing",
        }
    }
}

impl fmt::Display for CellState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens when a tenant's spend reaches its monthly budget (100%).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BudgetAction {
    /// Only tell the ops group.
    #[default]
    Notify,
    /// Suspend: stop the tenant's Telegram channel (`channels.stop`); the cell keeps running.
    StopChannel,
    /// Suspend: stop the tenant's cell.
    StopCell,
}

impl BudgetAction {
    pub const ALL: [BudgetAction; 3] = [
        BudgetAction::Notify,
        BudgetAction::StopChannel,
        BudgetAction::StopCell,
    ];

    /// The word in config (`usage.tenants.<id>.onBudget`), `/budget` and the store.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetAction::Notify => "notify",
            BudgetAction::StopChannel => "stop-channel",
            BudgetAction::StopCell => "stop-cell",
        }
    }

    #[must_use]
    pub fn parse(text: &str) -> Option<BudgetAction> {
        BudgetAction::ALL
            .into_iter()
            .find(|action| action.as_str() == text)
    }
}

/// An amount of US dollars, exact: a decimal, not a float, so a month's bill
/// is the sum of its days to the cent however many tiny per-token costs went
/// into it. Budgets, prices, costs and bills are all `Usd`.
///
/// Full precision is kept (a price per million tokens may need more than two
/// decimals); only display rounds: `Display` shows cents (`$12.34`, or more
/// decimals with `{:.4}`), rounding half away from zero, as a bill does.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Usd(rust_decimal::Decimal);

/// Why a text is not an amount of money; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsdError {
    #[error("{0:?} is not an amount; write US dollars like 50 or 49.90")]
    NotAnAmount(String),
    #[error("{0:?} is negative; an amount is 0 or more US dollars")]
    Negative(String),
    #[error("{0:?} is more than {max}", max = Usd::MAX)]
    TooLarge(String),
}

impl Usd {
    pub const ZERO: Usd = Usd(rust_decimal::Decimal::ZERO);

    /// The largest amount one may type or configure: a billion dollars is a
    /// typo, not a budget.
    pub const MAX: Usd = Usd(rust_decimal::Decimal::from_parts(
        1_000_000_000,
        0,
        0,
        false,
        0,
    ));

    /// Decimals kept of a float from the gateway: beyond them a float carries
    /// only binary noise (0.1 + 0.2 = 0.30000000000000004).
    const FLOAT_DECIMALS: u32 = 10;

    /// An exact amount.
    #[must_use]
    pub fn new(amount: rust_decimal::Decimal) -> Usd {
        Usd(amount)
    }

    /// Whole cents: `Usd::cents(1234)` is $12.34.
    #[must_use]
    pub fn cents(cents: i64) -> Usd {
        Usd(rust_decimal::Decimal::new(cents, 2))
    }

    /// An amount the gateway or a config file gave as a float, to 10 decimals
    /// (NaN and infinities are zero: no real cost is either).
    #[must_use]
    pub fn from_f64(amount: f64) -> Usd {
        use rust_decimal::prelude::FromPrimitive;
        Usd(rust_decimal::Decimal::from_f64(amount)
            .unwrap_or_default()
            .round_dp(Usd::FLOAT_DECIMALS)
            .normalize())
    }

    /// Checks an amount a person gave (typed or configured): 0 or more, at
    /// most `Usd::MAX`. `text` names it in the error. The one validation of money.
    ///
    /// # Errors
    ///
    /// A negative or too large amount.
    pub fn checked(amount: rust_decimal::Decimal, text: &str) -> Result<Usd, UsdError> {
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(UsdError::Negative(text.to_string()));
        }
        if amount > Usd::MAX.0 {
            return Err(UsdError::TooLarge(text.to_string()));
        }
        Ok(Usd(amount.normalize()))
    }

    /// The exact decimal.
    #[must_use]
    pub fn decimal(self) -> rust_decimal::Decimal {
        self.0
    }

    /// A float, for charts and JSON numbers; never for arithmetic.
    #[must_use]
    pub fn to_f64(self) -> f64 {
        use rust_decimal::prelude::ToPrimitive;
        self.0.to_f64().unwrap_or_default()
    }

    #[must_use]
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Rounded to `decimals`, half away from zero (the rounding of a bill).
    #[must_use]
    pub fn round(self, decimals: u32) -> Usd {
        Usd(self.0.round_dp_with_strategy(
            decimals,
            rust_decimal::RoundingStrategy::MidpointAwayFromZero,
        ))
    }

    /// `self` with `percent` added (a markup: 20 makes $1.00 into $1.20).
    /// The percent is a configured float, taken to 10 decimals.
    #[must_use]
    pub fn plus_percent(self, percent: f64) -> Usd {
        let percent = Usd::from_f64(percent).0;
        Usd(self.0 + self.0 * percent / rust_decimal::Decimal::ONE_HUNDRED)
    }

    /// `self * numerator / denominator` (a monthly fee pro rata for some days).
    #[must_use]
    pub fn pro_rata(self, numerator: i64, denominator: i64) -> Usd {
        if denominator == 0 {
            return Usd::ZERO;
        }
        Usd(self.0 * rust_decimal::Decimal::from(numerator)
            / rust_decimal::Decimal::from(denominator))
    }

    /// `self` is at least `percent` of `whole`, compared exactly.
    #[must_use]
    pub fn reaches_percent(self, percent: u8, whole: Usd) -> bool {
        self.0 * rust_decimal::Decimal::ONE_HUNDRED
            >= rust_decimal::Decimal::from(percent) * whole.0
    }

    /// What percent `self` is of `whole` (for display); `None` for a zero whole.
    #[must_use]
    pub fn percent_of(self, whole: Usd) -> Option<f64> {
        use rust_decimal::prelude::ToPrimitive;
        if whole.0 <= rust_decimal::Decimal::ZERO {
            return None;
        }
        (self.0 * rust_decimal::Decimal::ONE_HUNDRED / whole.0).to_f64()
    }
}

impl FromStr for Usd {
    type Err = UsdError;

    /// `50`, `49.90`, `$49.90`, `0.000015`: a plain decimal, an optional `$`.
    fn from_str(text: &str) -> Result<Usd, UsdError> {
        let trimmed = text.trim();
        let digits = trimmed.strip_prefix('$').unwrap_or(trimmed);
        let plain = !digits.is_empty()
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+');
        let amount = plain
            .then(|| rust_decimal::Decimal::from_str_exact(digits).ok())
            .flatten()
            .ok_or_else(|| UsdError::NotAnAmount(text.to_string()))?;
        Usd::checked(amount, text)
    }
}

impl TryFrom<f64> for Usd {
    type Error = UsdError;

    /// A configured amount (a JSON number), under the same bound as typed text.
    fn try_from(amount: f64) -> Result<Usd, UsdError> {
        use rust_decimal::prelude::FromPrimitive;
        let text = amount.to_string();
        let decimal = rust_decimal::Decimal::from_f64(amount)
            .ok_or_else(|| UsdError::NotAnAmount(text.clone()))?;
        Usd::checked(decimal, &text)
    }
}

impl fmt::Display for Usd {
    /// `$12.34`; `{:.4}` shows four decimals. Rounds half away from zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let decimals = f.precision().unwrap_or(2);
        let rounded = self.round(u32::try_from(decimals).unwrap_or(u32::MAX)).0;
        let sign = if rounded.is_sign_negative() && !rounded.is_zero() {
            "-"
        } else {
            ""
        };
        write!(f, "{sign}${:.decimals$}", rounded.abs())
    }
}

impl fmt::Debug for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Usd({})", self.0)
    }
}

impl std::ops::Add for Usd {
    type Output = Usd;

    fn add(self, other: Usd) -> Usd {
        Usd(self.0 + other.0)
    }
}

impl std::ops::AddAssign for Usd {
    fn add_assign(&mut self, other: Usd) {
        self.0 += other.0;
    }
}

impl std::ops::Sub for Usd {
    type Output = Usd;

    fn sub(self, other: Usd) -> Usd {
        Usd(self.0 - other.0)
    }
}

impl std::iter::Sum for Usd {
    fn sum<I: Iterator<Item = Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, |sum, amount| sum + amount)
    }
}

impl<'a> std::iter::Sum<&'a Usd> for Usd {
    fn sum<I: Iterator<Item = &'a Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, |sum, amount| sum + *amount)
    }
}

impl Serialize for Usd {
    /// A JSON number, as the CLI's documented shapes have it.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.to_f64())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn images_must_be_well_formed_and_pinned() {
        for ok in [
            "mtp-test/openclaw:2026.9.6",
            "registry.local:5000/team/openclaw:1.2",
            "openclaw@sha256:4f14aa",
        ] {
            assert_eq!(check_pinned_image(ok), Ok(()), "{ok}");
        }
        for unpinned in [
            "mtp-test/openclaw",
            "mtp-test/openclaw:latest",
            "registry.local:5000/openclaw",
        ] {
            assert_eq!(
                check_pinned_image(unpinned),
                Err(ImageRefError::NotPinned(unpinned.to_string())),
                "{unpinned}"
            );
        }
        for bad in [
            "",
            "../../containers/x:1",
            "a//b:1",
            "/abs:1",
            "-x:1",
            "a b:1",
            "a:1?x=2",
            "ünï:1",
        ] {
            assert_eq!(
                check_pinned_image(bad),
                Err(ImageRefError::Malformed(bad.to_string())),
                "{bad:?}"
            );
        }
    }
    use super::*;

    #[test]
    fn tenant_ids_follow_the_upstream_rule() {
        for ok in ["a", "acme", "acme-corp", "a1", "0", &"a".repeat(40)] {
            assert!(ok.parse::<TenantId>().is_ok(), "{ok:?} should be valid");
        }
        let cases: [(&str, TenantIdError); 7] = [
            ("", TenantIdError::Empty),
            ("../x", TenantIdError::BadChar { found: '.' }),
            ("Acme", TenantIdError::BadChar { found: 'A' }),
            ("a_b", TenantIdError::BadChar { found: '_' }),
            ("-a", TenantIdError::EdgeDash),
            ("a-", TenantIdError::EdgeDash),
            (&"a".repeat(41), TenantIdError::TooLong { len: 41 }),
        ];
        for (input, expected) in cases {
            assert_eq!(input.parse::<TenantId>(), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn suggest_makes_a_valid_id_from_a_name() {
        assert_eq!(
            TenantId::suggest("Acme Corp.").unwrap().as_str(),
            "acme-corp"
        );
        assert_eq!(
            TenantId::suggest("  --Zoë's Café!").unwrap().as_str(),
            "zo-s-caf"
        );
        assert_eq!(TenantId::suggest("!!!"), None);
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2".to_string());
        assert_eq!(format!("{secret:?} {secret}"), "<redacted> <redacted>");
        let token = BotToken::parse("123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw").unwrap();
        let shown = format!("{token:?}");
        assert!(!shown.contains("AAHdq"), "{shown}");
        assert_eq!(token.bot_id(), 123456);
    }

    #[test]
    fn bot_token_format_is_checked() {
        for bad in [
            "",
            "abc",
            "123:short",
            ":AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
            "12a:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
            "123:AAHdqTcvCH1vGWJxfSeofSAs0K5PALD saw",
        ] {
            assert_eq!(
                BotToken::parse(bad),
                Err(BotTokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn money_parses_one_way_with_one_bound() {
        let usd = |text: &str| text.parse::<Usd>();
        assert_eq!(usd("50"), Ok(Usd::cents(5000)));
        assert_eq!(usd("$49.90"), Ok(Usd::cents(4990)));
        assert_eq!(usd(" 0 "), Ok(Usd::ZERO));
        assert_eq!(
            usd("0.000015").map(Usd::decimal),
            Ok(rust_decimal::Decimal::new(15, 6))
        );
        assert_eq!(usd("1000000000"), Ok(Usd::MAX));
        for (bad, why) in [
            ("lots", "is not an amount"),
            ("", "is not an amount"),
            ("1e3", "is not an amount"),
            ("$", "is not an amount"),
            ("-1", "is negative"),
            ("1000000000.01", "is more than $1000000000.00"),
        ] {
            let err = usd(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert_eq!(Usd::try_from(29.5), Ok(Usd::cents(2950)));
        assert!(Usd::try_from(-1.0).is_err());
        assert!(Usd::try_from(f64::NAN).is_err());
    }

    #[test]
    fn money_shows_cents_rounded_half_away_from_zero() {
        assert_eq!(Usd::cents(1234).to_string(), "$12.34");
        assert_eq!(Usd::ZERO.to_string(), "$0.00");
        assert_eq!("12.345".parse::<Usd>().unwrap().to_string(), "$12.35");
        assert_eq!("0.125".parse::<Usd>().unwrap().to_string(), "$0.13");
        assert_eq!(format!("{:.4}", Usd::from_f64(0.0042)), "$0.0042");
        assert_eq!(Usd::from_f64(-0.25).to_string(), "-$0.25");
        assert_eq!(Usd::from_f64(0.1 + 0.2), Usd::from_f64(0.3));
    }

    /// A month of tiny per-token costs: in f64 the sum drifts off the exact
    /// total and rounds to the wrong cent; in `Usd` the days add up to the
    /// month exactly.
    #[test]
    fn many_small_costs_add_up_to_the_cent() {
        // 1015 calls at a tenth of a cent: $1.015 exactly, $1.02 on the bill.
        let price = "0.001".parse::<Usd>().unwrap();
        let exact: Usd = std::iter::repeat_n(price, 1015).sum();
        assert_eq!(exact, "1.015".parse().unwrap());
        assert_eq!(exact.to_string(), "$1.02");
        let float: f64 = std::iter::repeat_n(0.001_f64, 1015).sum();
        assert!(float < 1.015, "f64 drifts below the exact sum: {float}");
        assert_eq!(format!("${float:.2}"), "$1.01", "and bills the wrong cent");
        // Thirty days of 1000 calls each: the days add up to the month.
        let day: Usd = std::iter::repeat_n("0.000015".parse::<Usd>().unwrap(), 1000).sum();
        let days = vec![day; 30];
        let month: Usd = std::iter::repeat_n("0.000015".parse::<Usd>().unwrap(), 30_000).sum();
        assert_eq!(days.iter().sum::<Usd>(), month);
        assert_eq!(month, "0.45".parse().unwrap());
    }
}
