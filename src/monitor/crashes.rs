//! Crashes as Docker reports them, per tenant: pure bookkeeping driven by
//! event times, so it is tested without Docker or a clock.
//!
//! A death that follows a signal sent through the Docker API (a stop, restart
//! or upgrade by MTP, a `docker kill` by hand) was asked for: the sweeps judge
//! a cell that stays down. Any other death is a crash. One crash is reported
//! as such; `LOOP_CRASHES` within `LOOP_WINDOW_SECS` make a crash loop,
//! reported once per `LOOP_QUIET_SECS`. A crash opens an outage that closes
//! when the gateway answers again.

use std::collections::HashMap;

use crate::tenant::TenantId;

/// `docker stop` waits up to 30 s (the stop grace) between its SIGTERM and
/// the death; a death this long after a signal is still the one asked for.
const SIGNAL_WINDOW_SECS: i64 = 60;
/// The kernel's OOM event comes just before the death it causes.
const OOM_WINDOW_SECS: i64 = 10;
/// Crashes within the window that make a crash loop, and the window.
pub const LOOP_CRASHES: usize = 3;
pub const LOOP_WINDOW_SECS: i64 = 15 * 60;
/// A crash loop is reported at most once per this many seconds per tenant.
const LOOP_QUIET_SECS: i64 = 30 * 60;

/// What a crash amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Crashed {
        oom: bool,
    },
    CrashLoop {
        crashes: usize,
        oom: bool,
    },
    /// Part of a crash loop already reported.
    Quiet,
}

#[derive(Debug, Default)]
struct Watch {
    signalled_at: Option<i64>,
    oom_at: Option<i64>,
    /// Crash times within the loop window.
    recent: Vec<i64>,
    /// When the current outage began; `None` while the gateway answers.
    outage_since: Option<i64>,
    loop_reported_at: Option<i64>,
}

/// Every tenant's crash history, in memory.
#[derive(Debug, Default)]
pub struct Crashes {
    tenants: HashMap<TenantId, Watch>,
}

impl Crashes {
    /// A signal was sent to the cell through the Docker API.
    pub fn signalled(&mut self, tenant: &TenantId, at: i64) {
        self.tenants.entry(tenant.clone()).or_default().signalled_at = Some(at);
    }

    /// The OOM killer hit the cell.
    pub fn oom(&mut self, tenant: &TenantId, at: i64) {
        self.tenants.entry(tenant.clone()).or_default().oom_at = Some(at);
    }

    /// True when a death at `at` was asked for (a signal came just before);
    /// the signal is used up.
    pub fn asked(&mut self, tenant: &TenantId, at: i64) -> bool {
        let Some(watch) = self.tenants.get_mut(tenant) else {
            return false;
        };
        match watch.signalled_at.take() {
            Some(signalled) => at - signalled <= SIGNAL_WINDOW_SECS,
            None => false,
        }
    }

    /// Counts a crash at `at` and says how to report it.
    pub fn crashed(&mut self, tenant: &TenantId, at: i64) -> Verdict {
        let watch = self.tenants.entry(tenant.clone()).or_default();
        let oom = watch
            .oom_at
            .take()
            .is_some_and(|oom| at - oom <= OOM_WINDOW_SECS);
        watch.recent.retain(|t| at - t < LOOP_WINDOW_SECS);
        watch.recent.push(at);
        watch.outage_since.get_or_insert(at);
        if watch.recent.len() < LOOP_CRASHES {
            return Verdict::Crashed { oom };
        }
        if watch
            .loop_reported_at
            .is_some_and(|reported| at - reported < LOOP_QUIET_SECS)
        {
            return Verdict::Quiet;
        }
        watch.loop_reported_at = Some(at);
        Verdict::CrashLoop {
            crashes: watch.recent.len(),
            oom,
        }
    }

    /// Tenants whose gateway has not answered since a crash, and since when.
    #[must_use]
    pub fn outages(&self) -> Vec<(TenantId, i64)> {
        let mut res: Vec<(TenantId, i64)> = self
            .tenants
            .iter()
            .filter_map(|(tenant, watch)| watch.outage_since.map(|since| (tenant.clone(), since)))
            .collect();
        res.sort();
        res
    }

    /// The gateway answers again: closes the outage, returning when it began.
    pub fn back(&mut self, tenant: &TenantId) -> Option<i64> {
        self.tenants.get_mut(tenant)?.outage_since.take()
    }

    /// Stopped, muted or removed: nothing about it is pending any more.
    pub fn forget(&mut self, tenant: &TenantId) {
        self.tenants.remove(tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> TenantId {
        "acme".parse().unwrap()
    }

    #[test]
    fn a_death_after_a_signal_was_asked_for_and_uses_the_signal_up() {
        let mut crashes = Crashes::default();
        crashes.signalled(&acme(), 100);
        assert!(crashes.asked(&acme(), 130));
        assert!(!crashes.asked(&acme(), 140), "one signal, one death");
        crashes.signalled(&acme(), 200);
        assert!(
            !crashes.asked(&acme(), 200 + SIGNAL_WINDOW_SECS + 1),
            "a signal long ago does not excuse a crash now"
        );
        assert_eq!(crashes.outages(), vec![]);
    }

    #[test]
    fn crashes_become_a_loop_reported_once_and_an_outage_until_back() {
        let mut crashes = Crashes::default();
        crashes.oom(&acme(), 9);
        assert_eq!(crashes.crashed(&acme(), 10), Verdict::Crashed { oom: true });
        assert_eq!(
            crashes.crashed(&acme(), 20),
            Verdict::Crashed { oom: false }
        );
        assert_eq!(
            crashes.crashed(&acme(), 30),
            Verdict::CrashLoop {
                crashes: 3,
                oom: false
            }
        );
        assert_eq!(crashes.crashed(&acme(), 40), Verdict::Quiet);
        assert_eq!(crashes.outages(), vec![(acme(), 10)]);
        assert_eq!(crashes.back(&acme()), Some(10));
        assert_eq!(crashes.back(&acme()), None, "one back per outage");
        // Long after: a single crash again.
        let later = 40 + LOOP_QUIET_SECS + LOOP_WINDOW_SECS;
        assert_eq!(
            crashes.crashed(&acme(), later),
            Verdict::Crashed { oom: false }
        );
        assert_eq!(crashes.outages(), vec![(acme(), later)]);
        crashes.forget(&acme());
        assert_eq!(crashes.outages(), vec![]);
    }
}
