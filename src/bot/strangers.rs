//! Updates from anyone who is not an operator. Each stranger gets one polite
//! refusal a minute, and the whole crowd of them a fixed cost: a flood from
//! many user ids must not fill the audit log (every entry is an fsync'd
//! write), grow memory, or queue refusals in front of an operator's replies.
//! So refusals are rationed per minute for all strangers together, only the
//! rationed ones are remembered, and the rest are counted into one summary.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A stranger gets at most one audit entry and one refusal message per this long.
pub const REFUSAL_EVERY: Duration = Duration::from_secs(60);
/// Refusals (an audit entry, or a message) per minute for all strangers
/// together: plenty for the odd stranger, and far below the 30 messages a
/// second that the admin bot's replies to operators share.
pub const REFUSALS_PER_MINUTE: usize = 20;
/// The most strangers remembered at once: only rationed refusals are
/// remembered, each for `REFUSAL_EVERY`, so two windows' worth.
pub const MAX_TRACKED: usize = 2 * REFUSALS_PER_MINUTE;
/// The ration's window.
const WINDOW: Duration = Duration::from_secs(60);

/// The gate every stranger's update passes first; cheap to share (`Arc`).
pub struct Strangers {
    inner: Mutex<Inner>,
}

struct Inner {
    /// Strangers refused within `REFUSAL_EVERY`, and whether they were also sent
    /// the refusal message (only private chats get one).
    seen: HashMap<u64, bool>,
    /// The same strangers, oldest first, to forget them in order.
    order: VecDeque<(u64, Instant)>,
    /// Start of the current ration window and what it spent.
    window_start: Instant,
    spent: usize,
    /// Updates from strangers neither audited nor answered since the last summary.
    unrecorded: u64,
}

/// What to do with one stranger's update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Write one audit entry for this stranger.
    pub record: bool,
    /// Send the refusal message (only ever true for a private chat).
    pub reply: bool,
    /// Updates that went unrecorded in a ration window now over: one summary
    /// audit entry counts them.
    pub unrecorded: u64,
}

impl Strangers {
    #[must_use]
    pub fn new() -> Strangers {
        Strangers {
            inner: Mutex::new(Inner {
                seen: HashMap::new(),
                order: VecDeque::new(),
                window_start: Instant::now(),
                spent: 0,
                unrecorded: 0,
            }),
        }
    }

    /// Judges one update from `user`, sent in a private chat or not.
    pub fn judge(&self, user: u64, private: bool) -> Verdict {
        self.judge_at(user, private, Instant::now())
    }

    /// The count of unrecorded updates once their window is over (for a
    /// periodic summary when no stranger writes any more); zero otherwise.
    pub fn take_unrecorded(&self) -> u64 {
        let mut inner = self.lock();
        inner.roll(Instant::now())
    }

    /// How many strangers are remembered now; never above `MAX_TRACKED`.
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.lock().seen.len()
    }

    fn judge_at(&self, user: u64, private: bool, now: Instant) -> Verdict {
        let mut inner = self.lock();
        let unrecorded = inner.roll(now);
        inner.forget_before(now);
        let mut verdict = Verdict {
            unrecorded,
            ..Verdict::default()
        };
        let known = inner.seen.get(&user).copied();
        let wants_reply = private && known != Some(true);
        if (known.is_some() && !wants_reply) || inner.spent >= REFUSALS_PER_MINUTE {
            inner.unrecorded += 1;
            return verdict;
        }
        inner.spent += 1;
        verdict.reply = wants_reply;
        if known.is_none() {
            verdict.record = true;
            inner.order.push_back((user, now));
        }
        inner.seen.insert(user, wants_reply || known == Some(true));
        verdict
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map is a cache of recent refusals; a poisoned lock leaves it usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for Strangers {
    fn default() -> Strangers {
        Strangers::new()
    }
}

impl Inner {
    /// Starts a new window when the current one is over; returns the count of
    /// unrecorded updates it leaves behind.
    fn roll(&mut self, now: Instant) -> u64 {
        if now.duration_since(self.window_start) < WINDOW {
            return 0;
        }
        self.window_start = now;
        self.spent = 0;
        std::mem::take(&mut self.unrecorded)
    }

    fn forget_before(&mut self, now: Instant) {
        while let Some(&(user, at)) = self.order.front() {
            if now.duration_since(at) < REFUSAL_EVERY && self.order.len() <= MAX_TRACKED {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten thousand strangers in a minute: the ration, then silence, a flat
    /// map, and one summary of the rest when the next window opens.
    #[test]
    fn a_flood_of_strangers_costs_a_fixed_amount() {
        let gate = Strangers::new();
        let start = Instant::now();
        let mut records = 0;
        let mut replies = 0;
        for user in 0..10_000u64 {
            let verdict = gate.judge_at(user, true, start + Duration::from_millis(user));
            records += usize::from(verdict.record);
            replies += usize::from(verdict.reply);
            assert_eq!(verdict.unrecorded, 0);
            assert!(gate.tracked() <= MAX_TRACKED);
        }
        assert_eq!(
            (records, replies),
            (REFUSALS_PER_MINUTE, REFUSALS_PER_MINUTE)
        );
        let next = gate.judge_at(20_000, true, start + Duration::from_secs(61));
        assert_eq!(
            next,
            Verdict {
                record: true,
                reply: true,
                unrecorded: 10_000 - REFUSALS_PER_MINUTE as u64
            }
        );
        assert!(gate.tracked() <= MAX_TRACKED);
    }

    /// One stranger: a group message is audited but not answered, the first
    /// private one is answered, the rest of the minute is quiet; a minute later
    /// it starts over.
    #[test]
    fn one_stranger_is_refused_once_a_minute() {
        let gate = Strangers::new();
        let start = Instant::now();
        let group = gate.judge_at(7, false, start);
        assert_eq!((group.record, group.reply), (true, false));
        let private = gate.judge_at(7, true, start);
        assert_eq!((private.record, private.reply), (false, true));
        for _ in 0..5 {
            let again = gate.judge_at(7, true, start + Duration::from_secs(30));
            assert_eq!((again.record, again.reply), (false, false));
        }
        let later = gate.judge_at(7, true, start + Duration::from_secs(61));
        assert_eq!(
            later,
            Verdict {
                record: true,
                reply: true,
                unrecorded: 5
            }
        );
    }
}
