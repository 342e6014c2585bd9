//! Failed-credential rate limiting as PROTOCOL.md §2.9 describes it: per client IP and
//! credential class, 10 wrong credentials within 60 s lock the class out for 5 min;
//! missing credentials do not count; a success resets the class. Unlike the real
//! gateway, loopback is not exempt: the fake treats every peer as remote.
//!
//! Hand-written rather than `governor`: its GCRA refills the budget continuously
//! (10 per 60 s is one every 6 s), so 9 failures at 0 s and one at 59 s would pass
//! where the gateway's sliding window locks out; and it has neither a lockout that
//! outlasts the window nor a per-key reset on success.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The real defaults (`gateway.auth.rateLimit`).
const MAX_ATTEMPTS: usize = 10;
const WINDOW: Duration = Duration::from_secs(60);
const LOCKOUT: Duration = Duration::from_secs(300);
/// Bounds memory: beyond this many tracked keys the oldest are dropped.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    SharedSecret,
    DeviceToken,
}

#[derive(Default)]
struct Entry {
    failures: Vec<Instant>,
    locked_until: Option<Instant>,
}

#[derive(Default)]
pub struct RateLimiter {
    entries: HashMap<(IpAddr, Class), Entry>,
}

impl RateLimiter {
    /// `Some(retry_after)` while the class is locked out for this address.
    #[must_use]
    pub fn locked(&self, ip: IpAddr, class: Class, now: Instant) -> Option<Duration> {
        let until = self.entries.get(&(ip, class))?.locked_until?;
        (until > now).then(|| until - now)
    }

    pub fn record_failure(&mut self, ip: IpAddr, class: Class, now: Instant) {
        if self.entries.len() >= MAX_KEYS && !self.entries.contains_key(&(ip, class)) {
            self.entries.clear();
        }
        let entry = self.entries.entry((ip, class)).or_default();
        entry.failures.retain(|at| now.duration_since(*at) < WINDOW);
        entry.failures.push(now);
        if entry.failures.len() >= MAX_ATTEMPTS {
            entry.locked_until = Some(now + LOCKOUT);
            entry.failures.clear();
        }
    }

    pub fn reset(&mut self, ip: IpAddr, class: Class) {
        self.entries.remove(&(ip, class));
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten failures lock the eleventh attempt out, with about five minutes to wait;
    /// the lock ends on its own.
    #[test]
    fn ten_failures_lock_out_for_five_minutes() {
        let ip: IpAddr = "172.17.0.1".parse().unwrap();
        let start = Instant::now();
        let mut limiter = RateLimiter::default();
        for i in 0..9 {
            limiter.record_failure(ip, Class::SharedSecret, start + Duration::from_millis(i));
            assert_eq!(limiter.locked(ip, Class::SharedSecret, start), None);
        }
        limiter.record_failure(ip, Class::SharedSecret, start + Duration::from_millis(9));
        let retry = limiter
            .locked(ip, Class::SharedSecret, start + Duration::from_secs(1))
            .unwrap();
        assert!(retry > Duration::from_secs(298) && retry <= LOCKOUT);
        assert_eq!(limiter.locked(ip, Class::DeviceToken, start), None);
        assert_eq!(
            limiter.locked(
                ip,
                Class::SharedSecret,
                start + LOCKOUT + Duration::from_secs(1)
            ),
            None
        );
    }

    /// Failures spread wider than the window never lock.
    #[test]
    fn old_failures_fall_out_of_the_window() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let start = Instant::now();
        let mut limiter = RateLimiter::default();
        for i in 0..30 {
            limiter.record_failure(ip, Class::SharedSecret, start + Duration::from_secs(7 * i));
        }
        assert_eq!(
            limiter.locked(ip, Class::SharedSecret, start + Duration::from_secs(210)),
            None
        );
    }

    /// A sliding window, not a refilling budget: ten failures inside 60 s lock out
    /// however they are spread; a success forgets the failures before it.
    #[test]
    fn the_window_slides_and_a_success_resets() {
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        let start = Instant::now();
        let mut limiter = RateLimiter::default();
        for _ in 0..9 {
            limiter.record_failure(ip, Class::DeviceToken, start);
        }
        let late = start + Duration::from_secs(59);
        limiter.record_failure(ip, Class::DeviceToken, late);
        assert!(limiter.locked(ip, Class::DeviceToken, late).is_some());
        limiter.clear();
        for _ in 0..9 {
            limiter.record_failure(ip, Class::DeviceToken, start);
        }
        limiter.reset(ip, Class::DeviceToken);
        limiter.record_failure(ip, Class::DeviceToken, start);
        assert_eq!(limiter.locked(ip, Class::DeviceToken, start), None);
    }
}
