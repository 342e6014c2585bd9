//! How many more tenants this host holds: its memory, a cell's measured
//! footprint (the monitor's memory samples, kept in the store, never a
//! constant), and the running/sleeping mix.
//!
//! - **Idle footprint**: the median of every running cell's recent samples
//!   (cells are idle most of the time). **Active**: their 95th percentile,
//!   what a cell takes while it works. New cells are planned at the active figure.
//! - **More running**: the free memory over the active footprint.
//! - **More at the current mix**: a new tenant is awake as often as the
//!   fleet's tenants are now (running / (running + sleeping)), so it costs that
//!   share of the active footprint on average.

use crate::fleet::App;
use crate::fleet::health::Sweep;
use crate::tenant::{CellState, TenantId};

/// Kept for the host itself, Docker and the admin.
pub const HOST_RESERVE: u64 = 1 << 30;
/// Samples kept per tenant: a day at the default 5-minute sweep.
const SAMPLES_KEPT: usize = 288;

/// A cell's measured memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Median of the samples (bytes).
    pub idle: u64,
    /// 95th percentile of the samples (bytes).
    pub active: u64,
    pub samples: usize,
    /// Cells the samples come from.
    pub cells: usize,
}

/// The host's room for tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    pub host_memory: u64,
    pub reserve: u64,
    /// The running cells' newest samples, summed (bytes).
    pub in_use: u64,
    /// What is left for more cells (bytes).
    pub free: u64,
    pub running: usize,
    pub sleeping: usize,
    pub stopped: usize,
    /// `None` until the monitor has sampled a running cell.
    pub footprint: Option<Footprint>,
    pub more_running: Option<u64>,
    pub more_at_mix: Option<u64>,
    /// Memory still missing if every sleeping tenant woke at once (bytes; 0: fits).
    pub all_awake_short: Option<u64>,
}

/// Stores the memory samples of a sweep's running cells.
///
/// # Errors
///
/// The store cannot be written.
pub fn record_footprints(app: &App, sweep: &Sweep) -> anyhow::Result<()> {
    let samples: Vec<(TenantId, u64)> = sweep
        .tenants
        .iter()
        .filter(|health| health.record.state == CellState::Running && health.container_up())
        .filter_map(|health| {
            health
                .memory
                .map(|(used, _)| (health.record.id.clone(), used))
        })
        .filter(|(_, used)| *used > 0)
        .collect();
    app.store.add_footprints(sweep.at, &samples, SAMPLES_KEPT)?;
    Ok(())
}

/// The host's memory, the measured footprint and how many more tenants fit.
///
/// # Errors
///
/// Docker or the store cannot be read.
pub async fn capacity(app: &App) -> anyhow::Result<Capacity> {
    let host_memory = app.runtime.host_memory().await?;
    let records = app.store.tenants()?;
    let count = |state| records.iter().filter(|r| r.state == state).count();
    let (running, sleeping, stopped) = (
        count(CellState::Running),
        count(CellState::Sleeping),
        count(CellState::Stopped),
    );
    let series = app.store.footprints()?;
    let running_ids: Vec<&TenantId> = records
        .iter()
        .filter(|r| r.state == CellState::Running)
        .map(|r| &r.id)
        .collect();
    let in_use: u64 = series
        .iter()
        .filter(|(tenant, _)| running_ids.contains(&tenant))
        .filter_map(|(_, samples)| samples.last().map(|(_, bytes)| *bytes))
        .sum();
    let footprint = footprint(&series);
    Ok(plan(
        host_memory,
        in_use,
        (running, sleeping, stopped),
        footprint,
    ))
}

fn footprint(series: &[(TenantId, crate::store::MemorySeries)]) -> Option<Footprint> {
    let mut all: Vec<u64> = series
        .iter()
        .flat_map(|(_, samples)| samples.iter().map(|(_, bytes)| *bytes))
        .collect();
    if all.is_empty() {
        return None;
    }
    all.sort_unstable();
    let at = |share: f64| all[((all.len() - 1) as f64 * share).floor() as usize];
    Some(Footprint {
        idle: at(0.5),
        active: at(0.95),
        samples: all.len(),
        cells: series.iter().filter(|(_, s)| !s.is_empty()).count(),
    })
}

fn plan(
    host_memory: u64,
    in_use: u64,
    (running, sleeping, stopped): (usize, usize, usize),
    footprint: Option<Footprint>,
) -> Capacity {
    let free = host_memory
        .saturating_sub(HOST_RESERVE)
        .saturating_sub(in_use);
    let per_cell = footprint.map(|f| f.active.max(1));
    let more_running = per_cell.map(|cell| free / cell);
    let awake_share = if running + sleeping == 0 {
        1.0
    } else {
        running as f64 / (running + sleeping) as f64
    };
    let more_at_mix = per_cell.map(|cell| {
        let cost = (cell as f64 * awake_share).max(1.0);
        (free as f64 / cost).floor() as u64
    });
    let all_awake_short = per_cell.map(|cell| (cell * sleeping as u64).saturating_sub(free));
    Capacity {
        host_memory,
        reserve: HOST_RESERVE,
        in_use,
        free,
        running,
        sleeping,
        stopped,
        footprint,
        more_running,
        more_at_mix,
        all_awake_short,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn the_mix_decides_how_many_more_fit() {
        let cell = Footprint {
            idle: GIB * 8 / 10,
            active: GIB,
            samples: 10,
            cells: 2,
        };
        // 8 GiB host, 2 running cells using 2 GiB: 5 GiB free.
        let all_awake = plan(8 * GIB, 2 * GIB, (2, 0, 0), Some(cell));
        assert_eq!(all_awake.free, 5 * GIB);
        assert_eq!(all_awake.more_running, Some(5));
        assert_eq!(all_awake.more_at_mix, Some(5));
        // 2 awake of 20: a new tenant costs a tenth of a cell on average.
        let mostly_asleep = plan(8 * GIB, 2 * GIB, (2, 18, 0), Some(cell));
        assert_eq!(mostly_asleep.more_running, Some(5));
        assert_eq!(mostly_asleep.more_at_mix, Some(50));
        // If all 18 woke at once, 13 GiB would be missing.
        assert_eq!(mostly_asleep.all_awake_short, Some(13 * GIB));
    }

    #[test]
    fn without_samples_nothing_is_guessed() {
        let unknown = plan(8 * GIB, 0, (0, 0, 0), None);
        assert_eq!(unknown.more_running, None);
        assert_eq!(unknown.more_at_mix, None);
        assert_eq!(unknown.free, 7 * GIB);
    }

    #[test]
    fn idle_is_the_median_and_active_the_95th_percentile() {
        let id: TenantId = "acme".parse().unwrap();
        let samples: Vec<(i64, u64)> = (1..=100u64).map(|n| (n as i64, n * 10)).collect();
        let measured = footprint(&[(id, samples)]).unwrap();
        assert_eq!(measured.idle, 500);
        assert_eq!(measured.active, 950);
        assert_eq!(measured.samples, 100);
    }
}
