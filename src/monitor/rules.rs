//! The alert state machine of one (tenant, check): pure, persisted by the caller,
//! driven by observations and the clock, so it is tested without sleeping.
//!
//! OK → suspect on the first failure → DOWN after `down_after` consecutive
//! failures (one alert) → RECOVERED with the downtime on the next pass.
//! `flap_transitions` state changes within `flap_window` → one "flapping" alert,
//! then quiet until the check has been stable for a whole window.

use crate::tenant::{AlertState, AlertStatus};

/// Thresholds of the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Consecutive failures before DOWN.
    pub down_after: u32,
    /// Transitions within `flap_window` that make a check flapping.
    pub flap_transitions: usize,
    /// Seconds.
    pub flap_window: i64,
}

/// What one observation turned into, for the notifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Down { since: i64, error: String },
    Recovered { down_for: i64 },
    Flapping { transitions: usize },
    Stable,
}

/// Applies one observation at `now` to a check's state; returns the
/// notification to send, if any.
pub fn observe(
    state: &mut AlertState,
    rules: &Rules,
    now: i64,
    result: Result<(), String>,
) -> Option<Transition> {
    state.observe_inner(rules, now, result)
}

// The steps of `observe`, private to this module.
impl AlertState {
    fn observe_inner(
        &mut self,
        rules: &Rules,
        now: i64,
        result: Result<(), String>,
    ) -> Option<Transition> {
        self.transitions.retain(|at| now - at < rules.flap_window);
        let mut event = match result {
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                self.failing_since.get_or_insert(now);
                self.last_error = Some(error.clone());
                match self.status {
                    AlertStatus::Ok if self.failures >= rules.down_after => {
                        self.go_down(now, error)
                    }
                    AlertStatus::Ok => {
                        self.status = AlertStatus::Suspect;
                        self.since = now;
                        None
                    }
                    AlertStatus::Suspect if self.failures >= rules.down_after => {
                        self.go_down(now, error)
                    }
                    AlertStatus::Suspect | AlertStatus::Down => None,
                }
            }
            Ok(()) => {
                let previous = self.status;
                let outage_began = self.failing_since.take();
                self.failures = 0;
                self.status = AlertStatus::Ok;
                match previous {
                    AlertStatus::Down => {
                        self.since = now;
                        self.transitions.push(now);
                        Some(Transition::Recovered {
                            down_for: now - outage_began.unwrap_or(now),
                        })
                    }
                    AlertStatus::Suspect => {
                        self.since = now;
                        None
                    }
                    AlertStatus::Ok => None,
                }
            }
        };
        if self.flapping {
            // While flapping, individual DOWN/RECOVERED stay quiet; one Stable
            // ends it once a whole window passed without a transition.
            event = None;
            if self.transitions.is_empty() && self.status == AlertStatus::Ok {
                self.flapping = false;
                event = Some(Transition::Stable);
            }
        } else if self.transitions.len() >= rules.flap_transitions {
            self.flapping = true;
            event = Some(Transition::Flapping {
                transitions: self.transitions.len(),
            });
        }
        if event.is_some() {
            self.last_notified = Some(now);
        }
        event
    }

    fn go_down(&mut self, now: i64, error: String) -> Option<Transition> {
        self.status = AlertStatus::Down;
        self.since = now;
        self.transitions.push(now);
        Some(Transition::Down {
            since: self.failing_since.unwrap_or(now),
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        down_after: 3,
        flap_transitions: 4,
        flap_window: 600,
    };

    fn run(state: &mut AlertState, steps: &[(i64, bool)]) -> Vec<(i64, Transition)> {
        steps
            .iter()
            .filter_map(|(at, ok)| {
                let result = if *ok { Ok(()) } else { Err("boom".to_string()) };
                observe(state, &RULES, *at, result).map(|t| (*at, t))
            })
            .collect()
    }

    #[test]
    fn down_fires_once_after_n_failures_and_recovered_carries_the_downtime() {
        let mut state = AlertState::default();
        let events = run(
            &mut state,
            &[
                (0, true),
                (30, false),
                (60, false),
                (90, false),
                (120, false),
                (150, true),
            ],
        );
        assert_eq!(
            events,
            vec![
                (
                    90,
                    Transition::Down {
                        since: 30,
                        error: "boom".into()
                    }
                ),
                (150, Transition::Recovered { down_for: 120 })
            ]
        );
    }

    #[test]
    fn a_blip_shorter_than_n_raises_nothing() {
        let mut state = AlertState::default();
        assert_eq!(
            run(
                &mut state,
                &[
                    (0, false),
                    (30, false),
                    (60, true),
                    (90, false),
                    (120, true)
                ]
            ),
            vec![]
        );
        assert_eq!(state.status, AlertStatus::Ok);
    }

    #[test]
    fn flapping_gives_one_alert_then_quiet_until_stable() {
        let mut state = AlertState::default();
        let mut steps = Vec::new();
        let mut t = 0;
        for _ in 0..5 {
            for ok in [false, false, false, true] {
                steps.push((t, ok));
                t += 10;
            }
        }
        let events = run(&mut state, &steps);
        let kinds: Vec<&str> = events
            .iter()
            .map(|(_, e)| match e {
                Transition::Down { .. } => "down",
                Transition::Recovered { .. } => "recovered",
                Transition::Flapping { .. } => "flapping",
                Transition::Stable => "stable",
            })
            .collect();
        assert_eq!(kinds, ["down", "recovered", "down", "flapping"]);
        // Quiet while it keeps flapping; Stable once a whole window passes.
        assert_eq!(run(&mut state, &[(t + 10, true), (t + 300, true)]), vec![]);
        assert_eq!(
            run(&mut state, &[(t + 700, true)]),
            vec![(t + 700, Transition::Stable)]
        );
    }

    #[test]
    fn state_survives_a_restart_as_data() {
        let mut state = AlertState::default();
        run(&mut state, &[(0, false), (30, false), (60, false)]);
        let mut restored = state.clone();
        // Still down: no second DOWN; the recovery still comes.
        assert_eq!(run(&mut restored, &[(90, false)]), vec![]);
        assert_eq!(
            run(&mut restored, &[(120, true)]),
            vec![(120, Transition::Recovered { down_for: 120 })]
        );
    }
}
