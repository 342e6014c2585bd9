//! Fleet rollouts: one pinned image to every tenant, canary tenants first,
//! then waves, each tenant health-gated by its own upgrade (gateway healthy,
//! admin paired, Telegram poller back). The first failure rolls that tenant
//! back (the upgrade does) and halts the rollout; `resume` continues it after
//! the operator looked.
//!
//! The rollout lives in the store and is written before and after every
//! tenant, so it survives the admin: one process runs it at a time (a fleet
//! lock the kernel releases with the process), and a rollout whose runner
//! died is continued when it died between tenants, halted when it died in the
//! middle of one (that tenant's upgrade is looked at first). A tenant is never
//! upgraded twice: done ones are passed by, and an interrupted one already on
//! the new image counts as done.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::fleet::inventory::known;
use crate::fleet::upgrade::{UpgradeError, UpgradeStep, upgrade};
use crate::fleet::{Actor, App, audit, fault_point, now};
use crate::tenant::{CellState, TenantId, TenantRecord};

/// The encoding version of a stored `Rollout`.
const ROLLOUT_VERSION: u32 = 1;
/// How often a pause between waves looks for a halt request.
const HALT_LOOK: Duration = Duration::from_secs(1);

/// Which tenants go first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canary {
    /// These tenants, in this order.
    Ids(Vec<TenantId>),
    /// The first `n` tenants to upgrade, by id.
    Count(usize),
}

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutRequest {
    pub image: String,
    pub canary: Canary,
    /// Tenants per wave after the canary (at least 1).
    pub wave_size: usize,
    /// The wait after the canary and after every wave but the last.
    pub pause: Duration,
}

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Under way (or its runner died between tenants: continued by the next one).
    Running,
    /// Stopped by a failure, the operator, or a runner that died mid-tenant;
    /// `resume` continues it.
    Halted,
    /// Every tenant was upgraded or passed by.
    Done,
    /// The operator gave it up; a new rollout may start.
    Abandoned,
}

impl RolloutState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::Halted => "halted",
            RolloutState::Done => "done",
            RolloutState::Abandoned => "abandoned",
        }
    }
}

/// One tenant's part in a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TenantStep {
    Pending,
    /// Its upgrade began (unix seconds); still so after a runner died mid-way.
    Upgrading {
        since: i64,
    },
    Upgraded {
        from: String,
    },
    /// Its upgrade failed; `rolled_back` says whether it runs its old image again.
    Failed {
        reason: String,
        rolled_back: bool,
    },
    /// Gone from the fleet, or pinned meanwhile.
    Skipped {
        reason: String,
    },
}

/// A rollout as stored and reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub v: u32,
    pub image: String,
    /// Who started it (the audit label).
    pub by: String,
    /// Unix seconds.
    pub created_at: i64,
    pub pause_secs: u64,
    /// The waves in order; the first is the canary.
    pub waves: Vec<Vec<String>>,
    /// Every tenant of the waves and where it stands.
    pub tenants: BTreeMap<String, TenantStep>,
    /// Tenants left out from the start, with why (pinned, already on the image…).
    pub passed_by: BTreeMap<String, String>,
    pub state: RolloutState,
    /// While pausing between waves: when the next wave begins (unix seconds).
    pub next_wave_at: Option<i64>,
    /// The operator asked it to halt; the runner halts before its next tenant.
    pub halt_requested: bool,
    /// Why it halted.
    pub halted_because: Option<String>,
    pub finished_at: Option<i64>,
}

impl Rollout {
    /// Tenants in rollout order.
    pub fn order(&self) -> impl Iterator<Item = &String> {
        self.waves.iter().flatten()
    }

    /// How many tenants are upgraded, out of all in the waves.
    #[must_use]
    pub fn done_count(&self) -> (usize, usize) {
        let done = self
            .tenants
            .values()
            .filter(|step| {
                matches!(
                    step,
                    TenantStep::Upgraded { .. } | TenantStep::Skipped { .. }
                )
            })
            .count();
        (done, self.tenants.len())
    }

    /// Unfinished: running or halted (a new rollout waits for it).
    #[must_use]
    pub fn open(&self) -> bool {
        matches!(self.state, RolloutState::Running | RolloutState::Halted)
    }

    fn decode(bytes: &[u8]) -> anyhow::Result<Rollout> {
        let rollout: Rollout = serde_json::from_slice(bytes).context("corrupt rollout record")?;
        anyhow::ensure!(
            rollout.v <= ROLLOUT_VERSION,
            "the stored rollout has encoding v{}, newer than this binary",
            rollout.v
        );
        Ok(rollout)
    }
}

/// Why a rollout did not start or go on; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// Bad input or nothing to do (exit 2).
    #[error("{0}")]
    Refused(String),
    /// Another process runs a rollout now.
    #[error("a rollout is running already (by {by}{since}); wait for it, or halt it")]
    Busy { by: String, since: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// What a rollout is doing now, for progress reports.
#[derive(Debug, Clone)]
pub struct RolloutProgress<'a> {
    pub rollout: &'a Rollout,
    /// The tenant being upgraded and its step.
    pub current: Option<(&'a str, UpgradeStep)>,
}

/// The stored rollout, if there ever was one.
///
/// # Errors
///
/// The store cannot be read or holds a rollout this binary cannot read.
pub fn rollout(app: &App) -> anyhow::Result<Option<Rollout>> {
    app.store
        .rollout()?
        .map(|bytes| Rollout::decode(&bytes))
        .transpose()
}

/// Which tenants a rollout of `request` would upgrade, in which waves, and
/// which it passes by; nothing is changed (`--dry-run` shows this).
///
/// # Errors
///
/// `Refused` for an unpinned or missing image, an unknown or ineligible
/// canary, a wave size of 0, or nothing to upgrade.
pub async fn plan(
    app: &App,
    actor: &Actor,
    request: &RolloutRequest,
) -> Result<Rollout, RolloutError> {
    let refuse = |text: String| RolloutError::Refused(text);
    crate::fleet::cell::check_pinned(&request.image).map_err(|err| refuse(format!("{err:#}")))?;
    if request.wave_size == 0 {
        return Err(refuse("the wave size must be at least 1".into()));
    }
    let present = app
        .runtime
        .image_id(&request.image)
        .await
        .context("cannot ask Docker for the image")?;
    if present.is_none() {
        return Err(refuse(format!(
            "Docker has no image {}; build or load it on this host first (MTP never pulls)",
            request.image
        )));
    }
    let mut records = app.store.tenants().context("cannot read the tenants")?;
    records.sort_by(|a, b| a.id.cmp(&b.id));
    let mut eligible: Vec<TenantId> = Vec::new();
    let mut passed_by = BTreeMap::new();
    for record in &records {
        match why_not(record, &request.image) {
            Some(reason) => {
                passed_by.insert(record.id.to_string(), reason);
            }
            None => eligible.push(record.id.clone()),
        }
    }
    let canary: Vec<TenantId> = match &request.canary {
        Canary::Ids(ids) => {
            for id in ids {
                if let Some(reason) = passed_by.get(id.as_str()) {
                    return Err(refuse(format!(
                        "the canary {id} would not be upgraded: {reason}"
                    )));
                }
                if !eligible.contains(id) {
                    return Err(refuse(format!(
                        "no tenant {id}; check the id against the tenant list"
                    )));
                }
            }
            let mut seen = Vec::new();
            for id in ids {
                if !seen.contains(id) {
                    seen.push(id.clone());
                }
            }
            seen
        }
        Canary::Count(0) => return Err(refuse("the canary count must be at least 1".into())),
        Canary::Count(n) => eligible.iter().take(*n).cloned().collect(),
    };
    if eligible.is_empty() {
        return Err(refuse(format!(
            "nothing to upgrade: every tenant runs {} already, is pinned, or is not running, stopped or sleeping",
            request.image
        )));
    }
    let rest: Vec<TenantId> = eligible
        .iter()
        .filter(|id| !canary.contains(id))
        .cloned()
        .collect();
    let mut waves: Vec<Vec<String>> = vec![canary.iter().map(ToString::to_string).collect()];
    waves.extend(
        rest.chunks(request.wave_size)
            .map(|wave| wave.iter().map(ToString::to_string).collect()),
    );
    let tenants = eligible
        .iter()
        .map(|id| (id.to_string(), TenantStep::Pending))
        .collect();
    Ok(Rollout {
        v: ROLLOUT_VERSION,
        image: request.image.clone(),
        by: actor.label(),
        created_at: now(),
        pause_secs: request.pause.as_secs(),
        waves,
        tenants,
        passed_by,
        state: RolloutState::Running,
        next_wave_at: None,
        halt_requested: false,
        halted_because: None,
        finished_at: None,
    })
}

/// Why a tenant is left out of a rollout to `image`, if it is.
fn why_not(record: &TenantRecord, image: &str) -> Option<String> {
    if let Some(pin) = &record.pinned_image {
        return Some(format!("pinned to {pin}"));
    }
    if record.image == image {
        return Some("runs it already".into());
    }
    if !matches!(
        record.state,
        CellState::Running | CellState::Stopped | CellState::Sleeping
    ) {
        return Some(format!("is {}", record.state.as_str()));
    }
    None
}

/// Plans and runs a rollout to its end or its first failure.
///
/// # Errors
///
/// As `plan`; `Busy` when another process runs a rollout; `Refused` when an
/// unfinished rollout waits (resume or abandon it first). A failed tenant is
/// no error: the returned rollout says `halted` and why.
pub async fn start(
    app: &App,
    actor: &Actor,
    request: &RolloutRequest,
    progress: &mut (dyn FnMut(RolloutProgress<'_>) + Send),
) -> Result<Rollout, RolloutError> {
    let _guard = take_lock(app, actor)?;
    if let Some(open) = rollout(app)?.filter(Rollout::open) {
        return Err(RolloutError::Refused(format!(
            "the rollout to {} is {}; resume it or abandon it first",
            open.image,
            open.state.as_str()
        )));
    }
    let planned = plan(app, actor, request).await?;
    save(app, &planned)?;
    audit(
        app,
        actor,
        &format!("rollout {} started", planned.image),
        None,
        Ok(()),
    );
    run_locked(app, actor, planned, progress).await
}

/// Continues a halted rollout (or one whose runner died).
///
/// # Errors
///
/// `Refused` when there is no halted or running rollout; `Busy` when
/// another process runs it now.
pub async fn resume(
    app: &App,
    actor: &Actor,
    progress: &mut (dyn FnMut(RolloutProgress<'_>) + Send),
) -> Result<Rollout, RolloutError> {
    let _guard = take_lock(app, actor)?;
    let Some(mut current) = rollout(app)?.filter(Rollout::open) else {
        return Err(RolloutError::Refused(
            "no halted rollout to resume; start one with an image".into(),
        ));
    };
    current.state = RolloutState::Running;
    current.halt_requested = false;
    current.halted_because = None;
    // A tenant whose upgrade was cut short is tried again: its own upgrade
    // passes it by (as done) when it runs the new image already.
    for step in current.tenants.values_mut() {
        if matches!(
            step,
            TenantStep::Upgrading { .. } | TenantStep::Failed { .. }
        ) {
            *step = TenantStep::Pending;
        }
    }
    save(app, &current)?;
    audit(
        app,
        actor,
        &format!("rollout {} resumed", current.image),
        None,
        Ok(()),
    );
    run_locked(app, actor, current, progress).await
}

/// Asks the running rollout to halt before its next tenant (a pause ends at
/// once). Returns the rollout as it stands.
///
/// # Errors
///
/// `Refused` when no rollout runs.
pub fn halt(app: &App, actor: &Actor) -> Result<Rollout, RolloutError> {
    let changed = update(app, |rollout| {
        if rollout.state != RolloutState::Running {
            return Err(anyhow::anyhow!(RolloutError::Refused(format!(
                "the rollout to {} is {}, not running",
                rollout.image,
                rollout.state.as_str()
            ))));
        }
        rollout.halt_requested = true;
        Ok(())
    })?;
    audit(
        app,
        actor,
        &format!("rollout {} halt asked", changed.image),
        None,
        Ok(()),
    );
    // A runner that died meanwhile cannot halt it: do it here.
    if let Ok(Ok(_guard)) = crate::fleet::lock::acquire_fleet(app, "rollout", actor) {
        return halt_now(app, "halted by the operator");
    }
    Ok(changed)
}

/// Gives up an unfinished rollout (its upgraded tenants stay upgraded), so
/// a new one may start.
///
/// # Errors
///
/// `Busy` while a process runs it (halt it first); `Refused` when none is open.
pub fn abandon(app: &App, actor: &Actor) -> Result<Rollout, RolloutError> {
    let _guard = take_lock(app, actor)?;
    let changed = update(app, |rollout| {
        if !rollout.open() {
            return Err(anyhow::anyhow!(RolloutError::Refused(format!(
                "the rollout to {} is {}; nothing to abandon",
                rollout.image,
                rollout.state.as_str()
            ))));
        }
        rollout.state = RolloutState::Abandoned;
        rollout.next_wave_at = None;
        rollout.finished_at = Some(now());
        Ok(())
    })?;
    audit(
        app,
        actor,
        &format!("rollout {} abandoned", changed.image),
        None,
        Ok(()),
    );
    Ok(changed)
}

/// What `adopt` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adopted {
    /// No rollout waits for a runner.
    Nothing,
    /// Its runner died between tenants: continued here (to its end).
    Continued(Rollout),
    /// Its runner died in the middle of a tenant: halted for the operator.
    Halted(Rollout),
}

/// A rollout whose runner died (the admin restarted, a CLI was killed):
/// continued when it died between tenants, halted when it died in the middle
/// of one. Called by `mtp serve` at start; runs the rest of a continued
/// rollout before it returns.
///
/// # Errors
///
/// The store cannot be read or written.
pub async fn adopt(
    app: &App,
    actor: &Actor,
    progress: &mut (dyn FnMut(RolloutProgress<'_>) + Send),
) -> anyhow::Result<Adopted> {
    let Ok(guard) = crate::fleet::lock::acquire_fleet(app, "rollout", actor)? else {
        return Ok(Adopted::Nothing);
    };
    let Some(current) = rollout(app)? else {
        return Ok(Adopted::Nothing);
    };
    if current.state != RolloutState::Running {
        return Ok(Adopted::Nothing);
    }
    let cut = current
        .tenants
        .iter()
        .find(|(_, step)| matches!(step, TenantStep::Upgrading { .. }))
        .map(|(tenant, _)| tenant.clone());
    if let Some(tenant) = cut {
        let halted = halt_now(
            app,
            &format!(
                "the admin stopped in the middle of upgrading {tenant}; check that tenant, then resume"
            ),
        )
        .map_err(|err| anyhow::anyhow!("{err}"))?;
        drop(guard);
        return Ok(Adopted::Halted(halted));
    }
    let done = run_locked(app, actor, current, progress)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    drop(guard);
    Ok(Adopted::Continued(done))
}

fn take_lock(app: &App, actor: &Actor) -> Result<crate::fleet::lock::Guard, RolloutError> {
    match crate::fleet::lock::acquire_fleet(app, "rollout", actor)? {
        Ok(guard) => Ok(guard),
        Err(holder) => Err(RolloutError::Busy {
            by: holder.by.unwrap_or_else(|| "another process".into()),
            since: holder
                .since
                .and_then(|at| chrono::DateTime::from_timestamp(at, 0))
                .map(|at| format!(" since {}", at.format("%H:%M:%S UTC")))
                .unwrap_or_default(),
        }),
    }
}

fn save(app: &App, rollout: &Rollout) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec(rollout)?;
    app.store
        .update_rollout(|_| Ok(Some(bytes)))
        .context("cannot record the rollout")?;
    Ok(())
}

/// Changes the stored rollout; its `Refused` passes through.
fn update(
    app: &App,
    change: impl FnOnce(&mut Rollout) -> anyhow::Result<()>,
) -> Result<Rollout, RolloutError> {
    let written = app.store.update_rollout(|bytes| {
        let Some(bytes) = bytes else {
            return Err(anyhow::anyhow!(RolloutError::Refused(
                "there was never a rollout; start one with an image".into()
            )));
        };
        let mut rollout = Rollout::decode(bytes)?;
        change(&mut rollout)?;
        Ok(Some(serde_json::to_vec(&rollout)?))
    });
    match written {
        Ok(Some(bytes)) => Ok(Rollout::decode(&bytes)?),
        Ok(None) => Err(RolloutError::Refused("there was never a rollout".into())),
        Err(err) => {
            let err = anyhow::Error::from(err);
            match err
                .chain()
                .find_map(|cause| cause.downcast_ref::<RolloutError>())
            {
                Some(RolloutError::Refused(text)) => Err(RolloutError::Refused(text.clone())),
                _ => Err(RolloutError::Other(err)),
            }
        }
    }
}

fn halt_now(app: &App, because: &str) -> Result<Rollout, RolloutError> {
    update(app, |rollout| {
        rollout.state = RolloutState::Halted;
        rollout.next_wave_at = None;
        rollout.halt_requested = false;
        rollout.halted_because = Some(because.to_string());
        Ok(())
    })
}

fn set_step(app: &App, tenant: &str, step: TenantStep) -> Result<Rollout, RolloutError> {
    update(app, |rollout| {
        rollout.tenants.insert(tenant.to_string(), step);
        Ok(())
    })
}

async fn run_locked(
    app: &App,
    actor: &Actor,
    mut current: Rollout,
    progress: &mut (dyn FnMut(RolloutProgress<'_>) + Send),
) -> Result<Rollout, RolloutError> {
    progress(RolloutProgress {
        rollout: &current,
        current: None,
    });
    let waves = current.waves.clone();
    for (index, wave) in waves.iter().enumerate() {
        let mut upgraded_any = false;
        for tenant in wave {
            if current.tenants.get(tenant) != Some(&TenantStep::Pending) {
                continue;
            }
            current =
                rollout(app)?.ok_or_else(|| anyhow::anyhow!("the rollout record vanished"))?;
            if current.halt_requested {
                return halt_now(app, "halted by the operator");
            }
            current = set_step(app, tenant, TenantStep::Upgrading { since: now() })?;
            fault_point("rollout:upgrading");
            let step = upgrade_one(app, actor, &current, tenant, progress).await;
            let failed = match &step {
                TenantStep::Failed { reason, .. } => Some(format!("{tenant} failed: {reason}")),
                _ => None,
            };
            upgraded_any |= matches!(step, TenantStep::Upgraded { .. });
            current = set_step(app, tenant, step)?;
            progress(RolloutProgress {
                rollout: &current,
                current: None,
            });
            if let Some(because) = failed {
                let halted = halt_now(app, &because)?;
                audit(
                    app,
                    actor,
                    &format!("rollout {} halted", halted.image),
                    None,
                    Err(("tenant", &because)),
                );
                return Ok(halted);
            }
            fault_point("rollout:between");
        }
        let last = index + 1 == waves.len();
        if !last && upgraded_any && current.pause_secs > 0 {
            current = pause(app, &current, progress).await?;
            if current.state == RolloutState::Halted {
                return Ok(current);
            }
        }
    }
    let finished = update(app, |rollout| {
        rollout.state = RolloutState::Done;
        rollout.next_wave_at = None;
        rollout.finished_at = Some(now());
        Ok(())
    })?;
    audit(
        app,
        actor,
        &format!("rollout {} done", finished.image),
        None,
        Ok(()),
    );
    progress(RolloutProgress {
        rollout: &finished,
        current: None,
    });
    Ok(finished)
}

/// The pause after a wave: recorded (a runner that dies meanwhile is
/// continued by the next, which waits the rest), ended early by a halt.
async fn pause(
    app: &App,
    current: &Rollout,
    progress: &mut (dyn FnMut(RolloutProgress<'_>) + Send),
) -> Result<Rollout, RolloutError> {
    let until = current
        .next_wave_at
        .unwrap_or_else(|| now() + i64::try_from(current.pause_secs).unwrap_or(i64::MAX / 4));
    let mut paused = update(app, |rollout| {
        rollout.next_wave_at = Some(until);
        Ok(())
    })?;
    progress(RolloutProgress {
        rollout: &paused,
        current: None,
    });
    while now() < until {
        tokio::time::sleep(HALT_LOOK).await;
        paused = rollout(app)?.ok_or_else(|| anyhow::anyhow!("the rollout record vanished"))?;
        if paused.halt_requested {
            return halt_now(app, "halted by the operator");
        }
    }
    update(app, |rollout| {
        rollout.next_wave_at = None;
        Ok(())
    })
}

async fn upgrade_one(
    app: &App,
    actor: &Actor,
    current: &Rollout,
    tenant: &str,
    progress: &mut (dyn FnMut(RolloutProgress<'_>) + Send),
) -> TenantStep {
    let Ok(id) = tenant.parse::<TenantId>() else {
        return TenantStep::Skipped {
            reason: "not a tenant id".into(),
        };
    };
    let record = match known(app, &id) {
        Ok(record) => record,
        Err(_) => {
            return TenantStep::Skipped {
                reason: "removed meanwhile".into(),
            };
        }
    };
    if record.image == current.image {
        // Upgraded by a run that was cut short, or by hand meanwhile.
        return TenantStep::Upgraded { from: record.image };
    }
    if let Some(pin) = record.pinned_image {
        return TenantStep::Skipped {
            reason: format!("pinned to {pin} meanwhile"),
        };
    }
    let image = current.image.clone();
    let mut report = |step: UpgradeStep| {
        progress(RolloutProgress {
            rollout: current,
            current: Some((tenant, step)),
        });
    };
    match upgrade(app, actor, &id, Some(&image), &mut report).await {
        Ok(upgraded) => TenantStep::Upgraded {
            from: upgraded.from,
        },
        Err(UpgradeError::UnknownTenant(_)) => TenantStep::Skipped {
            reason: "removed meanwhile".into(),
        },
        Err(UpgradeError::Refused(reason)) => TenantStep::Failed {
            reason,
            rolled_back: true,
        },
        Err(UpgradeError::Failed {
            step,
            reason,
            outcome,
            ..
        }) => TenantStep::Failed {
            reason: format!("at step {}: {reason}; {outcome}", step.as_str()),
            rolled_back: matches!(outcome, crate::fleet::upgrade::Rollback::Done { .. }),
        },
    }
}

/// Pins a tenant to `image` (fleet upgrades pass it by) or unpins it (`None`).
/// Returns the image the tenant runs now, so the adapter can say when it
/// differs from the pin.
///
/// # Errors
///
/// An unknown tenant or an unpinned image reference.
pub fn pin(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    image: Option<&str>,
) -> anyhow::Result<String> {
    known(app, tenant)?;
    if let Some(image) = image {
        crate::fleet::cell::check_pinned(image)?;
    }
    let record = app
        .store
        .update_tenant(tenant, |record| {
            record.pinned_image = image.map(str::to_string);
            Ok(())
        })?
        .ok_or_else(|| anyhow::anyhow!("{tenant} was removed meanwhile"))?;
    let action = match image {
        Some(image) => format!("pin {image}"),
        None => "unpin".to_string(),
    };
    audit(app, actor, &action, Some(tenant), Ok(()));
    Ok(record.image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_rollout_reads_back_and_a_newer_one_is_refused() {
        let rollout = Rollout {
            v: ROLLOUT_VERSION,
            image: "mtp/openclaw:2".into(),
            by: "cli:op".into(),
            created_at: 1,
            pause_secs: 600,
            waves: vec![vec!["a".into()], vec!["b".into(), "c".into()]],
            tenants: [
                ("a".to_string(), TenantStep::Upgraded { from: "x:1".into() }),
                ("b".to_string(), TenantStep::Upgrading { since: 5 }),
                ("c".to_string(), TenantStep::Pending),
            ]
            .into(),
            passed_by: [("d".to_string(), "pinned to x:1".to_string())].into(),
            state: RolloutState::Running,
            next_wave_at: None,
            halt_requested: false,
            halted_because: None,
            finished_at: None,
        };
        let bytes = serde_json::to_vec(&rollout).unwrap();
        assert_eq!(Rollout::decode(&bytes).unwrap(), rollout);
        assert_eq!(rollout.done_count(), (1, 3));
        assert_eq!(
            rollout.order().cloned().collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        let newer = Rollout {
            v: ROLLOUT_VERSION + 1,
            ..rollout
        };
        let err = Rollout::decode(&serde_json::to_vec(&newer).unwrap()).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
