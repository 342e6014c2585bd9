//! Resizing a tenant's cell: new memory and CPU limits applied to its
//! container in place (`docker update`), so the gateway keeps running, and
//! recorded, so upgrades, restores and repairs make its next container with
//! them too.

use anyhow::{Context, anyhow};

use crate::fleet::capacity::HOST_RESERVE;
use crate::fleet::inventory::known;
use crate::fleet::lock::{self, Op};
use crate::fleet::{Actor, App, audit_result, now};
use crate::tenant::{CellState, Limits, TenantId};

/// The least memory a cell may get: an idle OpenClaw gateway holds about
/// 0.9 GiB, so less than this only makes an OOM loop.
pub const MIN_MEMORY: i64 = 512 * 1024 * 1024;

/// What to change; `None` keeps the current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resize {
    pub memory_bytes: Option<i64>,
    /// CPUs × 10⁹.
    pub nano_cpus: Option<i64>,
}

impl Resize {
    /// The change as an operator types it: memory like `3g` or `1536m`,
    /// CPUs like `1.5`; either may be left out.
    ///
    /// # Errors
    ///
    /// `ResizeRefused` for a size or CPU count that does not parse.
    pub fn parse(memory: Option<&str>, cpus: Option<&str>) -> Result<Resize, ResizeRefused> {
        let memory_bytes = memory
            .map(|text| {
                crate::config::parse_memory(text).map_err(|err| {
                    ResizeRefused(format!(
                        "memory {text:?}: {err:#}; write it like 3g or 1536m"
                    ))
                })
            })
            .transpose()?;
        let nano_cpus = cpus
            .map(|text| match text.trim().parse::<f64>() {
                Ok(cpus) if cpus.is_finite() && cpus > 0.0 && cpus <= 1024.0 => {
                    Ok((cpus * 1e9).round() as i64)
                }
                _ => Err(ResizeRefused(format!(
                    "CPUs {text:?} is not a positive number like 1.5"
                ))),
            })
            .transpose()?;
        Ok(Resize {
            memory_bytes,
            nano_cpus,
        })
    }
}

/// The limits before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct Resized {
    pub before: Limits,
    pub after: Limits,
}

/// Why a resize was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ResizeRefused(pub String);

/// Applies new limits to the tenant's container without recreating or
/// restarting it, and records them.
///
/// # Errors
///
/// `ResizeRefused` (as the root) for nothing to change, a limit out of
/// range, memory the host cannot hold, or a limit below what the cell uses
/// now; `lock::Busy`, an unknown tenant; Docker refusing the update.
pub async fn resize(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    change: Resize,
) -> anyhow::Result<Resized> {
    let _guard = lock::acquire(app, tenant, Op::Resize, actor)?;
    let result = resize_locked(app, tenant, change).await;
    // A refusal changed nothing and is told to whoever asked; not audited.
    if result
        .as_ref()
        .err()
        .is_none_or(|err| err.downcast_ref::<ResizeRefused>().is_none())
    {
        audit_result(app, actor, "resize", tenant, "docker", &result);
    }
    result
}

async fn resize_locked(app: &App, tenant: &TenantId, change: Resize) -> anyhow::Result<Resized> {
    let refuse = |text: String| anyhow!(ResizeRefused(text));
    let record = known(app, tenant)?;
    if !matches!(
        record.state,
        CellState::Running | CellState::Stopped | CellState::Sleeping
    ) {
        return Err(refuse(format!(
            "{tenant} is {}; only a running, stopped or sleeping tenant can be resized",
            record.state.as_str()
        )));
    }
    if change == Resize::default() {
        return Err(refuse("name a new memory or CPU limit".into()));
    }
    let before = record.limits.clone();
    let after = Limits {
        memory_bytes: change.memory_bytes.unwrap_or(before.memory_bytes),
        nano_cpus: change.nano_cpus.unwrap_or(before.nano_cpus),
        pids: before.pids,
    };
    if after.memory_bytes < MIN_MEMORY {
        return Err(refuse(format!(
            "{} is too little memory for an OpenClaw cell; give it at least {}",
            gib(after.memory_bytes),
            gib(MIN_MEMORY)
        )));
    }
    let cpus = app
        .runtime
        .host_cpus()
        .await
        .context("cannot ask Docker for the host's CPUs")?;
    if after.nano_cpus <= 0 || after.nano_cpus > i64::from(cpus) * 1_000_000_000 {
        return Err(refuse(format!(
            "{} CPUs is out of range: this host has {cpus}",
            after.nano_cpus as f64 / 1e9
        )));
    }
    // The host must hold the new limit beside what the other cells use now.
    let host = app
        .runtime
        .host_memory()
        .await
        .context("cannot ask Docker for the host's memory")?;
    let (own, others) = memory_in_use(app, tenant).await?;
    let room = host.saturating_sub(HOST_RESERVE).saturating_sub(others);
    if u64::try_from(after.memory_bytes).unwrap_or(u64::MAX) > room {
        return Err(refuse(format!(
            "this host cannot hold {}: {} of memory, {} kept for the host, {} used by the other cells, so {} is the most {tenant} can get",
            gib(after.memory_bytes),
            gib_u(host),
            gib_u(HOST_RESERVE),
            gib_u(others),
            gib_u(room)
        )));
    }
    if u64::try_from(after.memory_bytes).unwrap_or(0) < own {
        return Err(refuse(format!(
            "{tenant} uses {} now; a limit of {} would OOM-kill it",
            gib_u(own),
            gib(after.memory_bytes)
        )));
    }
    if record.state != CellState::Sleeping || container_exists(app, tenant).await? {
        app.runtime
            .update_limits(tenant, &after)
            .await
            .map_err(|err| anyhow!(err).context("Docker refused the new limits"))?;
    }
    app.store
        .update_tenant(tenant, |record| {
            record.limits = after.clone();
            record.updated_at = now();
            Ok(())
        })
        .context("the container has its new limits, but they could not be recorded")?;
    Ok(Resized { before, after })
}

async fn container_exists(app: &App, tenant: &TenantId) -> anyhow::Result<bool> {
    Ok(app.runtime.inspect(tenant).await?.is_some())
}

/// Memory this tenant's cell uses now, and what every other running cell
/// uses, in bytes (one `docker stats` sample each).
async fn memory_in_use(app: &App, tenant: &TenantId) -> anyhow::Result<(u64, u64)> {
    let records = app.store.tenants()?;
    let running: Vec<TenantId> = records
        .into_iter()
        .filter(|record| record.state == CellState::Running)
        .map(|record| record.id)
        .collect();
    let samples =
        futures_util::future::join_all(running.iter().map(|id| app.runtime.memory(id))).await;
    let (mut own, mut others) = (0, 0);
    for (id, sample) in running.iter().zip(samples) {
        let used = match sample {
            Ok(Some((used, _))) => used,
            Ok(None) | Err(crate::runtime::Error::NotFound(_)) => 0,
            Err(err) => return Err(anyhow!(err).context("cannot read the cells' memory")),
        };
        if id == tenant {
            own = used;
        } else {
            others += used;
        }
    }
    Ok((own, others))
}

fn gib(bytes: i64) -> String {
    format!("{:.2} GiB", bytes as f64 / f64::from(1u32 << 30))
}

fn gib_u(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / f64::from(1u32 << 30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_change_parses_or_is_refused() {
        assert_eq!(
            Resize::parse(Some("1536m"), Some("1.5")).unwrap(),
            Resize {
                memory_bytes: Some(1536 * 1024 * 1024),
                nano_cpus: Some(1_500_000_000),
            }
        );
        assert_eq!(Resize::parse(None, None).unwrap(), Resize::default());
        for (memory, cpus) in [
            (Some("lots"), None),
            (None, Some("0")),
            (None, Some("NaN")),
            (None, Some("-1")),
        ] {
            assert!(Resize::parse(memory, cpus).is_err(), "{memory:?} {cpus:?}");
        }
    }
}
