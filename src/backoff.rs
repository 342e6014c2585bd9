//! The one retry helper: a visible backoff (start, double, cap, give up after a
//! total wait) used wherever MTP waits for something that is busy or not there
//! yet — the store file held by another process, a booting gateway, a pairing
//! request. Like `tenant.rs`, it uses no other module of the crate, so every
//! layer may use it.

use std::future::Future;
use std::time::{Duration, Instant};

/// How a retry loop waits: `first`, doubled after each try up to `max`, until
/// `give_up_after` has passed since the first try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub give_up_after: Duration,
}

/// What one try of a retried operation says.
#[derive(Debug)]
pub enum Attempt<T, E> {
    /// Finished: stop trying.
    Done(T),
    /// Not yet (busy, booting): try again after the next delay, unless time is up;
    /// then this error is the result.
    Retry(E),
    /// Failed for good: stop trying.
    Fail(E),
}

/// Why a retried operation ended without a result.
#[derive(Debug, PartialEq, Eq)]
pub enum GaveUp<E> {
    /// A try failed for good.
    Failed(E),
    /// Time ran out; the last try's error.
    TimedOut(E),
}

impl<E> GaveUp<E> {
    /// The error, however it ended.
    pub fn into_inner(self) -> E {
        match self {
            GaveUp::Failed(err) | GaveUp::TimedOut(err) => err,
        }
    }
}

impl Backoff {
    /// A fixed delay (no doubling) for `give_up_after` in all: polling.
    #[must_use]
    pub fn polling(every: Duration, give_up_after: Duration) -> Backoff {
        Backoff {
            first: every,
            max: every,
            give_up_after,
        }
    }

    /// The delay before try number `attempt + 1` (0-based count of tries made).
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        self.first
            .saturating_mul(2u32.saturating_pow(attempt.min(30)))
            .min(self.max)
    }

    /// Runs `f` until it is done, fails for good, or time runs out, sleeping
    /// the thread between tries. For synchronous code off the async workers.
    ///
    /// # Errors
    ///
    /// `GaveUp::Failed` with a try's final error, `GaveUp::TimedOut` with the last one.
    pub fn retry_blocking<T, E>(
        &self,
        mut f: impl FnMut() -> Attempt<T, E>,
    ) -> Result<T, GaveUp<E>> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            match f() {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fail(err) => return Err(GaveUp::Failed(err)),
                Attempt::Retry(err) => {
                    if started.elapsed() >= self.give_up_after {
                        return Err(GaveUp::TimedOut(err));
                    }
                    std::thread::sleep(self.delay(attempt));
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// Runs `f` until it is done, fails for good, or time runs out, awaiting a
    /// tokio timer between tries.
    ///
    /// # Errors
    ///
    /// `GaveUp::Failed` with a try's final error, `GaveUp::TimedOut` with the last one.
    pub async fn retry<T, E, Fut>(&self, mut f: impl FnMut() -> Fut) -> Result<T, GaveUp<E>>
    where
        Fut: Future<Output = Attempt<T, E>>,
    {
        let started = tokio::time::Instant::now();
        let mut attempt = 0;
        loop {
            match f().await {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fail(err) => return Err(GaveUp::Failed(err)),
                Attempt::Retry(err) => {
                    if started.elapsed() >= self.give_up_after {
                        return Err(GaveUp::TimedOut(err));
                    }
                    tokio::time::sleep(self.delay(attempt)).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        first: Duration::from_millis(10),
        max: Duration::from_millis(50),
        give_up_after: Duration::from_secs(1),
    };

    #[test]
    fn delays_double_then_cap() {
        let delays: Vec<u128> = (0..5).map(|n| BACKOFF.delay(n).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 50, 50]);
        assert_eq!(BACKOFF.delay(u32::MAX), Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_when_done_or_failed_or_out_of_time() {
        let mut tries = 0;
        let done: Result<u32, GaveUp<&str>> = BACKOFF
            .retry(|| {
                tries += 1;
                let n = tries;
                async move {
                    if n < 3 {
                        Attempt::Retry("busy")
                    } else {
                        Attempt::Done(n)
                    }
                }
            })
            .await;
        assert_eq!(done, Ok(3));

        let failed: Result<(), GaveUp<&str>> =
            BACKOFF.retry(|| async { Attempt::Fail("bad") }).await;
        assert_eq!(failed, Err(GaveUp::Failed("bad")));

        let started = tokio::time::Instant::now();
        let timed_out: Result<(), GaveUp<&str>> = BACKOFF
            .retry(|| async { Attempt::Retry("still busy") })
            .await;
        assert_eq!(timed_out, Err(GaveUp::TimedOut("still busy")));
        assert!(started.elapsed() >= BACKOFF.give_up_after);
    }

    #[test]
    fn retry_blocking_gives_the_last_error_when_time_runs_out() {
        let backoff = Backoff::polling(Duration::from_millis(1), Duration::from_millis(5));
        let mut tries = 0;
        let res: Result<(), GaveUp<u32>> = backoff.retry_blocking(|| {
            tries += 1;
            Attempt::Retry(tries)
        });
        assert_eq!(res, Err(GaveUp::TimedOut(tries)));
        assert!(tries >= 2, "tried {tries} times");
    }
}
