//! The pull-request budget: how many new pull requests hydrant may open now.
//!
//! A forge token has a budget of its own (GitHub: 80 content-creating
//! requests a minute, 500 an hour, and secondary limits that it does not
//! publish), and reviewers have one too. The operator sets how many new pull
//! requests hydrant opens in any hour (`maxNewPullRequestsPerHour`, default
//! 50) and, optionally, how many may be open at once
//! (`maxOpenPullRequests`). When the forge answers with a secondary rate
//! limit (403 with `Retry-After`, or 429), nothing is opened before the time
//! it named, and the hourly budget is halved until an hour has passed since
//! the last such answer (never below one). It is halved once however many
//! answers came: a burst of them during a forge's bad minute should slow
//! hydrant down, not stop it for the hour.
//!
//! Pure: the caller passes the creation times of hydrant's pull requests in
//! the last hour, how many are open, the forge's throttling answers and the
//! time; it decides nothing about which environments go first (they wait in
//! wave order, the planner's choice).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// The default of `maxNewPullRequestsPerHour`.
pub const DEFAULT_PER_HOUR: u32 = 50;

const HOUR: SignedDuration = SignedDuration::from_hours(1);

/// The operator's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// New pull requests in any hour.
    pub per_hour: u32,
    /// Pull requests open at once; `None` for no limit.
    pub max_open: Option<u32>,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            per_hour: DEFAULT_PER_HOUR,
            max_open: None,
        }
    }
}

/// A forge's answer that it is being asked too much (403 with `Retry-After`
/// or 429): when it came, and until when it asked to wait, if it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub at: Timestamp,
    pub retry_after: Option<Duration>,
}

/// What hydrant has done and been told, as of `now`.
#[derive(Debug, Clone, Copy)]
pub struct Usage<'a> {
    /// When hydrant opened its pull requests (those older than an hour are ignored).
    pub created: &'a [Timestamp],
    /// How many of hydrant's pull requests are open now.
    pub open: u32,
    /// The forge's throttling answers (those older than an hour are ignored).
    pub throttles: &'a [Throttle],
}

/// Why no new pull request may be opened now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The forge asked not to be called before `until`.
    Forge { until: Timestamp },
    /// The hourly budget is used up until `until`.
    Hourly { until: Timestamp, limit: u32 },
    /// `max` pull requests are open: one must be merged or closed first.
    Open { max: u32 },
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wait::Forge { until } => write!(
                f,
                "waiting for forge budget: the forge asked to slow down until {until}"
            ),
            Wait::Hourly { until, limit } => write!(
                f,
                "waiting for forge budget: {limit} new pull requests an hour used up until {until}"
            ),
            Wait::Open { max } => write!(
                f,
                "waiting for forge budget: {max} pull requests are open, the most allowed"
            ),
        }
    }
}

/// The budget as of now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// New pull requests that may be opened now.
    pub may_open: u32,
    /// The hourly limit in force (halved after throttling).
    pub limit: u32,
    /// New pull requests opened in the last hour.
    pub used: u32,
    /// Why nothing may be opened, when `may_open` is 0.
    pub wait: Option<Wait>,
}

impl Allowance {
    /// Why a new pull request waits, when one does:
    /// `waiting for forge budget: 10 of 10 this hour, next at 14:05 UTC`.
    pub fn reason(&self) -> Option<String> {
        let hhmm = |t: &Timestamp| t.strftime("%H:%M UTC").to_string();
        Some(match self.wait? {
            Wait::Hourly { until, limit } => format!(
                "waiting for forge budget: {} of {limit} this hour, next at {}",
                self.used,
                hhmm(&until)
            ),
            Wait::Forge { until } => format!(
                "waiting for forge budget: the forge asked to slow down until {}",
                until.strftime("%H:%M:%S UTC")
            ),
            open @ Wait::Open { .. } => open.to_string(),
        })
    }
}

/// The hourly limit after `throttles` answers in the last hour: halved
/// once while any stands.
fn shrunk(per_hour: u32, throttles: usize) -> u32 {
    match throttles {
        0 => per_hour,
        _ => (per_hour / 2).max(1).min(per_hour),
    }
}

/// How many new pull requests may be opened at `now`.
pub fn allowance(budget: &Budget, usage: &Usage, now: Timestamp) -> Allowance {
    let hour_ago = now - HOUR;
    // A time a little ahead of `now` (the forge's clock) still counts.
    let recent = |t: &Timestamp| *t > hour_ago;
    let mut created: Vec<Timestamp> = usage.created.iter().copied().filter(recent).collect();
    created.sort();
    let throttles: Vec<&Throttle> = usage.throttles.iter().filter(|t| recent(&t.at)).collect();
    let used = u32::try_from(created.len()).unwrap_or(u32::MAX);
    let limit = shrunk(budget.per_hour, throttles.len());
    let forge_until = throttles
        .iter()
        .filter_map(|t| {
            let wait = SignedDuration::try_from(t.retry_after?).ok()?;
            t.at.checked_add(wait).ok()
        })
        .filter(|until| *until > now)
        .max();
    let hourly_left = limit.saturating_sub(used);
    let open_left = budget
        .max_open
        .map_or(u32::MAX, |max| max.saturating_sub(usage.open));
    let may_open = if forge_until.is_some() {
        0
    } else {
        hourly_left.min(open_left)
    };
    let wait = if let Some(until) = forge_until {
        Some(Wait::Forge { until })
    } else if hourly_left == 0 {
        Some(Wait::Hourly {
            until: hourly_until(budget.per_hour, limit, &created, &throttles, now),
            limit,
        })
    } else if open_left == 0 {
        budget.max_open.map(|max| Wait::Open { max })
    } else {
        None
    };
    Allowance {
        may_open,
        limit,
        used,
        wait,
    }
}

/// The first time after `now` when one more pull request fits the hourly
/// budget: when enough of the `created` times have aged past an hour, or
/// when throttling answers age out and the limit grows back.
fn hourly_until(
    per_hour: u32,
    limit: u32,
    created: &[Timestamp],
    throttles: &[&Throttle],
    now: Timestamp,
) -> Timestamp {
    // With `limit` in force, the time the count drops below it.
    let under = |limit: u32| -> Timestamp {
        match created.len().checked_sub(limit as usize) {
            // A limit of 0 never lets one through: look again in an hour.
            _ if limit == 0 => now + HOUR,
            Some(oldest_to_age) => (created[oldest_to_age] + HOUR).max(now),
            None => now,
        }
    };
    let mut best = under(limit);
    // Once the last throttle ages out, the limit is whole again.
    let mut ages: Vec<Timestamp> = throttles.iter().map(|t| t.at + HOUR).collect();
    ages.sort();
    for (i, aged) in ages.iter().enumerate() {
        let later_limit = shrunk(per_hour, ages.len() - i - 1);
        best = best.min(under(later_limit).max(*aged));
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + minute * 60).unwrap()
    }

    fn budget(per_hour: u32, max_open: Option<u32>) -> Budget {
        Budget { per_hour, max_open }
    }

    #[test]
    fn the_default_is_fifty_an_hour_and_no_open_limit() {
        let a = allowance(
            &Budget::default(),
            &Usage {
                created: &[],
                open: 500,
                throttles: &[],
            },
            at(0),
        );
        assert_eq!((a.may_open, a.limit, a.used, a.wait), (50, 50, 0, None));
    }

    #[test]
    fn pull_requests_of_the_last_hour_use_the_budget_until_they_age_out() {
        let created: Vec<Timestamp> = (0..10).map(|i| at(i * 5)).collect();
        let usage = Usage {
            created: &created,
            open: 10,
            throttles: &[],
        };
        // At minute 50: all ten count; none left.
        let a = allowance(&budget(10, None), &usage, at(50));
        assert_eq!((a.may_open, a.used), (0, 10));
        assert_eq!(
            a.wait,
            Some(Wait::Hourly {
                until: at(60),
                limit: 10
            })
        );
        assert!(
            a.wait
                .unwrap()
                .to_string()
                .starts_with("waiting for forge budget")
        );
        assert_eq!(
            a.reason().as_deref(),
            Some("waiting for forge budget: 10 of 10 this hour, next at 09:00 UTC")
        );
        // At minute 61: the one of minute 0 aged out.
        let a = allowance(&budget(10, None), &usage, at(61));
        assert_eq!((a.may_open, a.used, a.wait), (1, 9, None));
        // A budget of 30 leaves 20.
        assert_eq!(allowance(&budget(30, None), &usage, at(50)).may_open, 20);
    }

    #[test]
    fn the_open_limit_caps_what_the_hour_allows() {
        let usage = |open| Usage {
            created: &[],
            open,
            throttles: &[],
        };
        assert_eq!(
            allowance(&budget(50, Some(5)), &usage(2), at(0)).may_open,
            3
        );
        let a = allowance(&budget(50, Some(5)), &usage(7), at(0));
        assert_eq!((a.may_open, a.wait), (0, Some(Wait::Open { max: 5 })));
    }

    #[test]
    fn a_forge_rate_limit_stops_all_until_its_retry_after_and_halves_the_next_hour() {
        let created: Vec<Timestamp> = (0..4).map(at).collect();
        let throttles = [Throttle {
            at: at(10),
            retry_after: Some(Duration::from_secs(600)),
        }];
        let usage = Usage {
            created: &created,
            open: 4,
            throttles: &throttles,
        };
        let a = allowance(&budget(10, None), &usage, at(15));
        assert_eq!((a.may_open, a.limit), (0, 5));
        assert_eq!(a.wait, Some(Wait::Forge { until: at(20) }));
        assert_eq!(
            a.reason().as_deref(),
            Some("waiting for forge budget: the forge asked to slow down until 08:20:00 UTC")
        );
        // After the retry-after: half of ten, four used.
        let a = allowance(&budget(10, None), &usage, at(20));
        assert_eq!((a.may_open, a.limit, a.wait), (1, 5, None));
        // An hour after the answer, the whole budget is back.
        let a = allowance(&budget(10, None), &usage, at(71));
        assert_eq!((a.may_open, a.limit), (10, 10));
    }

    #[test]
    fn throttling_answers_halve_the_budget_once_and_never_below_one() {
        let throttles: Vec<Throttle> = (0..3)
            .map(|i| Throttle {
                at: at(i),
                retry_after: None,
            })
            .collect();
        let usage = Usage {
            created: &[],
            open: 0,
            throttles: &throttles,
        };
        assert_eq!(allowance(&budget(50, None), &usage, at(5)).limit, 25);
        assert_eq!(allowance(&budget(1, None), &usage, at(5)).limit, 1);
    }

    #[test]
    fn a_shrunk_budget_says_when_the_limit_grows_back() {
        // Ten an hour, halved by a 429 at minute 0; five opened at minutes 1-5.
        let created: Vec<Timestamp> = (1..=5).map(at).collect();
        let throttles = [Throttle {
            at: at(0),
            retry_after: None,
        }];
        let usage = Usage {
            created: &created,
            open: 5,
            throttles: &throttles,
        };
        let a = allowance(&budget(10, None), &usage, at(30));
        assert_eq!(a.may_open, 0);
        // At minute 60 the 429 ages out and ten an hour holds again.
        assert_eq!(
            a.wait,
            Some(Wait::Hourly {
                until: at(60),
                limit: 5
            })
        );
    }
}
