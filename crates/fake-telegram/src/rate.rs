//! Telegram's limit on a bot's messages to one group: at most N in any 60
//! seconds, else 429 `Too Many Requests` with `retry_after`, the seconds until
//! the oldest of them leaves the window.
//!
//! A sliding window kept by hand, not `governor`: a GCRA limiter with a burst
//! of N lets one more message through every 60/N seconds right after a full
//! burst (2N - 1 in a minute), and its `retry_after` would be those 60/N
//! seconds. The rule checked here is the stricter "N in any minute" that a
//! bot's own throttle must keep.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::call::Failure;

/// The window of the rule.
const WINDOW: Duration = Duration::from_secs(60);

/// One bot's limit on messages to groups, off unless a test sets it.
#[derive(Default)]
pub(crate) struct GroupRate {
    /// Messages a minute to one group; `None` for no limit.
    per_minute: Option<usize>,
    /// When messages went to each group in the last minute.
    sends: HashMap<i64, VecDeque<Instant>>,
}

impl GroupRate {
    pub(crate) fn set_limit(&mut self, per_minute: usize) {
        self.per_minute = Some(per_minute);
    }

    /// Counts a message to `chat` against the limit, or refuses it with 429.
    /// Private chats (positive ids) are not limited here.
    pub(crate) fn check(&mut self, chat: i64) -> Result<(), Failure> {
        let Some(per_minute) = self.per_minute else {
            return Ok(());
        };
        if chat >= 0 {
            return Ok(());
        }
        let now = Instant::now();
        let sends = self.sends.entry(chat).or_default();
        while sends
            .front()
            .is_some_and(|at| now.duration_since(*at) >= WINDOW)
        {
            sends.pop_front();
        }
        if sends.len() >= per_minute {
            let wait = sends.front().map_or(1, |at| {
                WINDOW.as_secs() - now.duration_since(*at).as_secs().min(59)
            });
            return Err(Failure::retry_after(u32::try_from(wait).unwrap_or(60)));
        }
        sends.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// N messages in a minute pass, the next waits for the oldest to age out.
    #[tokio::test(start_paused = true)]
    async fn n_a_minute_then_429_until_the_oldest_leaves_the_window() {
        let mut rate = GroupRate::default();
        let group = -100;
        for _ in 0..3 {
            rate.check(group).expect("no limit set");
        }
        rate.set_limit(2);
        assert_eq!(rate.check(group), Ok(()));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(rate.check(group), Ok(()));
        assert_eq!(rate.check(group), Err(Failure::retry_after(40)));
        assert_eq!(rate.check(42), Ok(()), "private chats are not limited");
        tokio::time::advance(Duration::from_secs(40)).await;
        assert_eq!(rate.check(group), Ok(()));
        assert_eq!(rate.check(group), Err(Failure::retry_after(20)));
    }
}
