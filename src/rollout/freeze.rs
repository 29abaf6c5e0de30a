//! Freeze windows (`rollout.freeze` in `hydrant.yaml`): times when no new
//! version pull request is opened and none is auto-merged, because people
//! are away (a weekend, the holidays) or the business cannot take a change.
//!
//! ```yaml
//! rollout:
//!   freeze:
//!     - schedule: "0 17 * * FRI"      # minute hour day-of-month month day-of-week
//!       duration: 64h                  # until Monday 09:00 on the wall clock
//!       timezone: Europe/Berlin
//!       reason: weekend
//!     - from: 2026-12-20T00:00:00Z
//!       to: 2027-01-04T00:00:00Z
//!       reason: holidays
//!       overrides: true                # stop override changes too
//! ```
//!
//! A recurring window opens at each time its five-field cron schedule names,
//! read on the wall clock of its IANA time zone (UTC when none is given), and
//! lasts its duration, also on that wall clock: a weekend freeze that opens
//! Friday 17:00 for 64h ends Monday 09:00 local time whether or not the
//! clocks changed in between. A local time that does not exist (skipped when
//! the clocks go forward) is taken as the same time after the change; one
//! that happens twice (when the clocks go back) as its first occurrence.
//!
//! Time zone rules come from `jiff`: the system's zoneinfo when there is one,
//! else the copy of the IANA database built into hydrant, so a container
//! without `/usr/share/zoneinfo` still knows `Europe/Berlin`.
//!
//! Pure: the caller passes the time and gets the window that applies, if any,
//! with its reason and when it ends. It does not decide what a freeze stops
//! beyond saying whether a window also stops override changes.

use std::time::Duration;

use jiff::civil::{Date, DateTime};
use jiff::tz::{TimeZone, TimeZoneDatabase};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use crate::duration::{format_duration, parse_duration};

/// The longest freeze window, recurring or one-off: a bound on the cost of
/// looking back for the window that applies.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 86_400);

/// One entry of `rollout.freeze` as written in `hydrant.yaml`. Deserializing
/// a [`Freeze`] checks it with [`FreezeSpec::validate`].
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FreezeSpec {
    /// Five-field cron schedule of a recurring window's start.
    #[serde(default)]
    pub schedule: Option<String>,
    /// How long a recurring window lasts (`64h`, `2d16h`).
    #[serde(default)]
    pub duration: Option<String>,
    /// The IANA time zone the schedule and duration are read in.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Start of a one-off window (RFC 3339).
    #[serde(default)]
    pub from: Option<String>,
    /// End of a one-off window (RFC 3339).
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// The window also stops override and template changes.
    #[serde(default)]
    pub overrides: bool,
}

/// A checked freeze window.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "FreezeSpec")]
pub struct Freeze {
    pub window: Window,
    pub reason: Option<String>,
    pub overrides: bool,
}

/// When a freeze applies.
#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    /// From each start of `schedule`, for `duration` on the wall clock of `zone`.
    Recurring {
        schedule: Cron,
        duration: Duration,
        zone: TimeZone,
        /// The zone as written, for messages.
        zone_name: String,
    },
    /// From `from` (included) to `to` (excluded).
    OneOff { from: Timestamp, to: Timestamp },
}

/// A freeze entry that cannot be used, naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct FreezeError {
    pub key: &'static str,
    pub message: String,
}

fn refuse(key: &'static str, message: impl Into<String>) -> FreezeError {
    FreezeError {
        key,
        message: message.into(),
    }
}

impl FreezeSpec {
    /// Checks the entry (cron, time zone, duration, times) against the time
    /// zones hydrant knows, and returns it as a [`Freeze`].
    pub fn validate(&self) -> Result<Freeze, FreezeError> {
        self.validate_in(jiff::tz::db())
    }

    /// [`FreezeSpec::validate`] against a given time zone database.
    pub fn validate_in(&self, db: &TimeZoneDatabase) -> Result<Freeze, FreezeError> {
        let window = match self {
            FreezeSpec {
                schedule: Some(schedule),
                from: None,
                to: None,
                ..
            } => self.recurring(schedule, db)?,
            FreezeSpec {
                schedule: None,
                duration: None,
                timezone: None,
                from: Some(from),
                to: Some(to),
                ..
            } => {
                let from = timestamp("from", from)?;
                let to = timestamp("to", to)?;
                if to <= from {
                    return Err(refuse("to", "the window ends before it starts"));
                }
                if to.duration_since(from)
                    > SignedDuration::try_from(MAX_WINDOW).unwrap_or(SignedDuration::MAX)
                {
                    return Err(refuse("to", "a one-off window lasts at most 366 days"));
                }
                Window::OneOff { from, to }
            }
            FreezeSpec {
                schedule: None,
                from: None,
                to: None,
                ..
            } => {
                return Err(refuse(
                    "schedule",
                    "a freeze window needs `schedule` and `duration` (recurring), or `from` and `to` (one-off)",
                ));
            }
            FreezeSpec {
                schedule: Some(_), ..
            } => {
                return Err(refuse(
                    if self.from.is_some() { "from" } else { "to" },
                    "a recurring window (`schedule`) has no `from` or `to`; make a one-off window its own entry",
                ));
            }
            FreezeSpec { from: None, .. } => {
                return Err(refuse("from", "a one-off window needs `from` and `to`"));
            }
            FreezeSpec { to: None, .. } => {
                return Err(refuse("to", "a one-off window needs `from` and `to`"));
            }
            FreezeSpec {
                duration: Some(_), ..
            }
            | FreezeSpec {
                timezone: Some(_), ..
            } => {
                return Err(refuse(
                    if self.duration.is_some() {
                        "duration"
                    } else {
                        "timezone"
                    },
                    "a one-off window (`from`, `to`) has no `duration` or `timezone`: its times carry their offset",
                ));
            }
        };
        if let Some(reason) = &self.reason
            && (reason.trim().is_empty() || reason.chars().any(char::is_control))
        {
            return Err(refuse("reason", "write the reason on one line"));
        }
        Ok(Freeze {
            window,
            reason: self.reason.clone(),
            overrides: self.overrides,
        })
    }

    fn recurring(&self, schedule: &str, db: &TimeZoneDatabase) -> Result<Window, FreezeError> {
        let schedule = Cron::parse(schedule).map_err(|m| refuse("schedule", m))?;
        let Some(duration) = &self.duration else {
            return Err(refuse(
                "duration",
                "a recurring window needs a `duration`, such as `64h`",
            ));
        };
        let duration = parse_duration(duration).map_err(|m| refuse("duration", m))?;
        if duration.is_zero() || duration > MAX_WINDOW {
            return Err(refuse(
                "duration",
                "a window lasts more than nothing and at most 366 days (`366d`)",
            ));
        }
        let zone_name = self.timezone.clone().unwrap_or_else(|| "UTC".to_string());
        let zone = db.get(&zone_name).map_err(|_| {
            refuse(
                "timezone",
                format!(
                    "`{}` is not an IANA time zone; write it such as `Europe/Berlin`, `America/New_York` or `UTC`",
                    zone_name.escape_debug()
                ),
            )
        })?;
        Ok(Window::Recurring {
            schedule,
            duration,
            zone,
            zone_name,
        })
    }
}

impl TryFrom<FreezeSpec> for Freeze {
    type Error = FreezeError;

    fn try_from(spec: FreezeSpec) -> Result<Freeze, FreezeError> {
        spec.validate()
    }
}

fn timestamp(key: &'static str, text: &str) -> Result<Timestamp, FreezeError> {
    text.trim().parse().map_err(|_| {
        refuse(
            key,
            format!(
                "`{}` is not an RFC 3339 time with its offset, such as `2026-12-20T00:00:00Z`",
                text.chars().take(40).collect::<String>().escape_debug()
            ),
        )
    })
}

/// The freeze window that applies now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveFreeze {
    /// Its reason, or a description of the window when it gives none.
    pub reason: String,
    /// When it ends.
    pub ends: Timestamp,
    /// Whether a window that applies now also stops override changes.
    pub overrides: bool,
    /// The time zone its end is shown in: a recurring window's own, UTC for
    /// a one-off window.
    pub zone: TimeZone,
}

impl ActiveFreeze {
    /// When it ends on its own wall clock: `Mon 2026-12-07 09:00 CET`.
    pub fn ends_shown(&self) -> String {
        self.ends
            .to_zoned(self.zone.clone())
            .strftime("%a %Y-%m-%d %H:%M %Z")
            .to_string()
    }

    /// `frozen until Mon 2026-12-07 09:00 CET: weekend`, as a verdict and
    /// a plan give it.
    pub fn message(&self) -> String {
        format!("frozen until {}: {}", self.ends_shown(), self.reason)
    }
}

impl Freeze {
    /// The window's reason, else what it is ("`0 17 * * FRI` for 2d16h in Europe/Berlin").
    pub fn describe(&self) -> String {
        if let Some(reason) = &self.reason {
            return reason.clone();
        }
        match &self.window {
            Window::Recurring {
                schedule,
                duration,
                zone_name,
                ..
            } => format!(
                "`{}` for {} in {zone_name}",
                schedule.text,
                format_duration(*duration)
            ),
            Window::OneOff { from, to } => format!("freeze from {from} to {to}"),
        }
    }

    /// The time zone the window is read in (UTC for a one-off window).
    pub fn zone(&self) -> TimeZone {
        match &self.window {
            Window::Recurring { zone, .. } => zone.clone(),
            Window::OneOff { .. } => TimeZone::UTC,
        }
    }

    /// When the occurrence of this window that covers `now` ends, if one does.
    pub fn ends_after(&self, now: Timestamp) -> Option<Timestamp> {
        match &self.window {
            Window::OneOff { from, to } => (*from <= now && now < *to).then_some(*to),
            Window::Recurring {
                schedule,
                duration,
                zone,
                ..
            } => recurring_end(schedule, *duration, zone, now),
        }
    }
}

/// The window that applies at `now` to new versions, if any: of several,
/// the one that ends last. Its `overrides` is true when any window that
/// applies now stops override changes (see [`active_for_overrides`] for
/// when that ends).
pub fn active(freezes: &[Freeze], now: Timestamp) -> Option<ActiveFreeze> {
    let applying: Vec<(&Freeze, Timestamp)> = freezes
        .iter()
        .filter_map(|f| f.ends_after(now).map(|end| (f, end)))
        .collect();
    let overrides = applying.iter().any(|(f, _)| f.overrides);
    latest(&applying).map(|mut a| {
        a.overrides = overrides;
        a
    })
}

/// The window that applies at `now` to override changes, if any: of the
/// windows with `overrides: true`, the one that ends last.
pub fn active_for_overrides(freezes: &[Freeze], now: Timestamp) -> Option<ActiveFreeze> {
    let applying: Vec<(&Freeze, Timestamp)> = freezes
        .iter()
        .filter(|f| f.overrides)
        .filter_map(|f| f.ends_after(now).map(|end| (f, end)))
        .collect();
    latest(&applying)
}

/// The window that ends last; of two ending together, the first listed.
fn latest(applying: &[(&Freeze, Timestamp)]) -> Option<ActiveFreeze> {
    let mut best: Option<&(&Freeze, Timestamp)> = None;
    for candidate in applying {
        if best.is_none_or(|b| candidate.1 > b.1) {
            best = Some(candidate);
        }
    }
    best.map(|(f, ends)| ActiveFreeze {
        reason: f.describe(),
        ends: *ends,
        overrides: f.overrides,
        zone: f.zone(),
    })
}

/// The end of the latest occurrence of a recurring window that started at
/// or before `now`, if it ends after `now`. The latest start ends last (the
/// duration is the same for all), so looking back from `now` for the first
/// start is enough; starts further back than the duration (plus a day for
/// the clocks) cannot cover `now`.
fn recurring_end(
    schedule: &Cron,
    duration: Duration,
    zone: &TimeZone,
    now: Timestamp,
) -> Option<Timestamp> {
    let span = SignedDuration::try_from(duration).ok()?;
    let today = now.to_zoned(zone.clone()).date();
    let days_back = duration.as_secs() / 86_400 + 2;
    let mut day = today;
    for _ in 0..=days_back {
        if schedule.day_matches(day) {
            for start in schedule.starts_on(day).rev() {
                let start_at = zone.to_ambiguous_timestamp(start).compatible().ok()?;
                if start_at > now {
                    continue;
                }
                let end = start.checked_add(span).ok()?;
                let end_at = zone.to_ambiguous_timestamp(end).compatible().ok()?;
                return (end_at > now).then_some(end_at);
            }
        }
        day = day.yesterday().ok()?;
    }
    None
}

/// A five-field cron schedule: minute, hour, day of month, month, day of
/// week; each field `*`, a number or name, a range `a-b`, a step `*/n`,
/// `a-b/n` or `a/n`, or a list of those. Day of week is 0-7 (0 and 7 are
/// Sunday) or `SUN`..`SAT`; month is 1-12 or `JAN`..`DEC`. When both day
/// fields are restricted (neither starts with `*`), a day matches either,
/// as in every cron since Vixie's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// The schedule as written.
    pub text: String,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    any_day: bool,
    any_weekday: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One field's name, bounds and names (the first name has the lowest value).
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
    },
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: &WEEKDAYS,
    },
];

impl Cron {
    /// Reads a five-field schedule, such as `0 17 * * FRI`.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "`{}` is not a cron schedule: give five fields (minute hour day-of-month month day-of-week), such as `0 17 * * FRI`",
                text.chars().take(60).collect::<String>().escape_debug()
            ));
        }
        let mut bits = [0u64; 5];
        for (i, (field, spec)) in FIELDS.iter().zip(&fields).enumerate() {
            bits[i] = parse_field(field, spec)?;
        }
        // Sunday is 0 and 7.
        let weekdays = (bits[4] | (bits[4] >> 7)) & 0x7f;
        Ok(Cron {
            text: fields.join(" "),
            minutes: bits[0],
            hours: bits[1] as u32,
            days: bits[2] as u32,
            months: bits[3] as u16,
            weekdays: weekdays as u8,
            any_day: fields[2].starts_with('*'),
            any_weekday: fields[4].starts_with('*'),
        })
    }

    /// Whether the schedule fires on some time of `day`.
    fn day_matches(&self, day: Date) -> bool {
        let month = self.months & (1 << day.month()) != 0;
        let dom = self.days & (1 << day.day()) != 0;
        let dow = self.weekdays & (1 << day.weekday().to_sunday_zero_offset()) != 0;
        let day_ok = match (self.any_day, self.any_weekday) {
            (false, false) => dom || dow,
            _ => dom && dow,
        };
        month && day_ok
    }

    /// The times of day it fires, on the wall clock, earliest first.
    fn starts_on(&self, day: Date) -> impl DoubleEndedIterator<Item = DateTime> + '_ {
        (0..24i8)
            .filter(move |h| self.hours & (1 << h) != 0)
            .flat_map(move |h| {
                (0..60i8)
                    .filter(move |m| self.minutes & (1 << m) != 0)
                    .map(move |m| day.at(h, m, 0, 0))
            })
    }
}

/// The values a field allows, as bits.
fn parse_field(field: &Field, spec: &str) -> Result<u64, String> {
    let bad = |why: String| {
        Err(format!(
            "the {} field `{}` {why}",
            field.name,
            spec.chars().take(40).collect::<String>().escape_debug()
        ))
    };
    let value = |text: &str| -> Option<u32> {
        if let Some(i) = field
            .names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(text))
        {
            return Some(field.min + i as u32);
        }
        let n: u32 = text.parse().ok()?;
        (field.min..=field.max).contains(&n).then_some(n)
    };
    let names = if field.names.is_empty() {
        String::new()
    } else {
        format!(
            " or {}..{}",
            field.names[0],
            field.names[field.names.len() - 1]
        )
    };
    let range_hint = format!("{}-{}{names}", field.min, field.max);
    let mut bits = 0u64;
    for item in spec.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => match step.parse::<u32>() {
                Ok(n) if n > 0 && n <= field.max => (base, Some(n)),
                _ => return bad(format!("has a step that is not 1 to {}", field.max)),
            },
            None => (item, None),
        };
        let (low, high) = if base == "*" {
            (field.min, field.max)
        } else if let Some((a, b)) = base.split_once('-') {
            match (value(a), value(b)) {
                (Some(a), Some(b)) if a <= b => (a, b),
                (Some(_), Some(_)) => return bad("has a range that runs backwards".to_string()),
                _ => return bad(format!("is not a value of {range_hint}")),
            }
        } else {
            match value(base) {
                // `a/n` runs from `a` to the field's end.
                Some(a) if step.is_some() => (a, field.max),
                Some(a) => (a, a),
                None => return bad(format!("is not a value of {range_hint}")),
            }
        };
        let step = step.unwrap_or(1);
        for v in (low..=high).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn weekend() -> Freeze {
        FreezeSpec {
            schedule: Some("0 17 * * FRI".into()),
            duration: Some("64h".into()),
            timezone: Some("Europe/Berlin".into()),
            reason: Some("weekend".into()),
            ..FreezeSpec::default()
        }
        .validate()
        .unwrap()
    }

    fn one_off(from: &str, to: &str, reason: &str) -> Freeze {
        FreezeSpec {
            from: Some(from.into()),
            to: Some(to.into()),
            reason: Some(reason.into()),
            ..FreezeSpec::default()
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn a_weekend_window_ends_on_monday_morning_local_time_across_daylight_saving_changes() {
        let w = [weekend()];
        // Clocks go forward on Sunday 29 March 2026 (CET, +01:00 → CEST, +02:00).
        assert_eq!(active(&w, ts("2026-03-27T15:59:00Z")), None, "16:59 CET");
        let spring = active(&w, ts("2026-03-27T16:00:00Z")).unwrap();
        assert_eq!(spring.reason, "weekend");
        assert_eq!(
            spring.message(),
            "frozen until Mon 2026-03-30 09:00 CEST: weekend"
        );
        // 64 hours on the wall clock: Monday 09:00 CEST is 07:00Z, an hour
        // before 64 elapsed hours would end.
        assert_eq!(spring.ends, ts("2026-03-30T07:00:00Z"));
        assert!(active(&w, ts("2026-03-30T06:59:59Z")).is_some());
        assert_eq!(active(&w, ts("2026-03-30T07:00:00Z")), None);
        // Clocks go back on Sunday 25 October 2026: Friday 17:00 CEST is 15:00Z,
        // Monday 09:00 CET is 08:00Z.
        assert_eq!(active(&w, ts("2026-10-23T14:59:00Z")), None);
        let autumn = active(&w, ts("2026-10-25T01:30:00Z")).unwrap();
        assert_eq!(autumn.ends, ts("2026-10-26T08:00:00Z"));
        assert!(active(&w, ts("2026-10-26T07:59:00Z")).is_some());
        // A Wednesday is free.
        assert_eq!(active(&w, ts("2026-10-28T12:00:00Z")), None);
    }

    #[test]
    fn time_zones_come_from_the_database_built_into_hydrant_without_system_files() {
        let spec = FreezeSpec {
            schedule: Some("0 17 * * FRI".into()),
            duration: Some("64h".into()),
            timezone: Some("Europe/Berlin".into()),
            ..FreezeSpec::default()
        };
        let bundled = spec.validate_in(&TimeZoneDatabase::bundled()).unwrap();
        let now = ts("2026-03-28T12:00:00Z");
        assert_eq!(bundled.ends_after(now), Some(ts("2026-03-30T07:00:00Z")));
        assert_eq!(
            bundled.describe(),
            "`0 17 * * FRI` for 2d16h in Europe/Berlin"
        );
    }

    #[test]
    fn a_one_off_window_covers_from_its_start_to_its_end() {
        let w = [one_off(
            "2026-12-20T00:00:00Z",
            "2027-01-04T00:00:00+01:00",
            "holidays",
        )];
        assert_eq!(active(&w, ts("2026-12-19T23:59:59Z")), None);
        let a = active(&w, ts("2026-12-20T00:00:00Z")).unwrap();
        assert_eq!(
            a,
            ActiveFreeze {
                reason: "holidays".into(),
                ends: ts("2027-01-03T23:00:00Z"),
                overrides: false,
                zone: TimeZone::UTC,
            }
        );
        assert_eq!(
            a.message(),
            "frozen until Sun 2027-01-03 23:00 UTC: holidays"
        );
        assert_eq!(active(&w, ts("2027-01-03T23:00:00Z")), None);
    }

    #[test]
    fn of_overlapping_windows_the_one_ending_last_wins() {
        let mut holidays = one_off("2026-12-20T00:00:00Z", "2027-01-04T00:00:00Z", "holidays");
        let long_weekend = one_off("2026-12-18T00:00:00Z", "2026-12-22T00:00:00Z", "offsite");
        holidays.overrides = false;
        let mut stop_everything = long_weekend.clone();
        stop_everything.overrides = true;
        let w = [weekend(), stop_everything.clone(), holidays.clone()];
        // Saturday 19 December: the weekend (ends Monday 21st 08:00Z) and the
        // offsite (ends 22nd) apply; the offsite ends last.
        let a = active(&w, ts("2026-12-19T12:00:00Z")).unwrap();
        assert_eq!(a.reason, "offsite");
        assert_eq!(a.ends, ts("2026-12-22T00:00:00Z"));
        assert!(a.overrides);
        // On the 21st the holidays apply too and end last, while the offsite
        // still stops override changes.
        let a = active(&w, ts("2026-12-21T12:00:00Z")).unwrap();
        assert_eq!(
            (a.reason.as_str(), a.ends),
            ("holidays", ts("2027-01-04T00:00:00Z"))
        );
        assert!(a.overrides, "the offsite stops overrides until the 22nd");
        let o = active_for_overrides(&w, ts("2026-12-21T12:00:00Z")).unwrap();
        assert_eq!(
            (o.reason.as_str(), o.ends),
            ("offsite", ts("2026-12-22T00:00:00Z"))
        );
        assert!(!active(&w, ts("2026-12-23T12:00:00Z")).unwrap().overrides);
        assert_eq!(active_for_overrides(&w, ts("2026-12-23T12:00:00Z")), None);
    }

    #[test]
    fn a_window_longer_than_its_period_ends_with_its_latest_start() {
        let daily = FreezeSpec {
            schedule: Some("0 0 * * *".into()),
            duration: Some("3d".into()),
            ..FreezeSpec::default()
        }
        .validate()
        .unwrap();
        let a = active(&[daily], ts("2026-05-05T10:00:00Z")).unwrap();
        assert_eq!(a.ends, ts("2026-05-08T00:00:00Z"));
        assert_eq!(a.reason, "`0 0 * * *` for 3d in UTC");
    }

    #[test]
    fn a_window_that_started_long_ago_is_found_and_one_that_ended_is_not() {
        // The first of December, for 30 days.
        let december = FreezeSpec {
            schedule: Some("0 0 1 DEC *".into()),
            duration: Some("30d".into()),
            timezone: Some("America/New_York".into()),
            ..FreezeSpec::default()
        }
        .validate()
        .unwrap();
        assert_eq!(
            december.ends_after(ts("2026-12-29T12:00:00Z")),
            Some(ts("2026-12-31T05:00:00Z"))
        );
        assert_eq!(december.ends_after(ts("2026-12-31T05:00:00Z")), None);
        assert_eq!(december.ends_after(ts("2026-11-30T12:00:00Z")), None);
    }

    #[test]
    fn cron_fields_take_lists_ranges_steps_and_names() {
        let c = Cron::parse("*/15 9-17/4 * jan,Jul-SEP mon-fri").unwrap();
        assert_eq!(c.minutes, 1 | 1 << 15 | 1 << 30 | 1 << 45);
        assert_eq!(c.hours, 1 << 9 | 1 << 13 | 1 << 17);
        assert_eq!(c.months, 1 << 1 | 1 << 7 | 1 << 8 | 1 << 9);
        assert_eq!(c.weekdays, 0b0111110);
        let sunday = Cron::parse("5/20 0 * * 7").unwrap();
        assert_eq!(sunday.minutes, 1 << 5 | 1 << 25 | 1 << 45);
        assert_eq!(sunday.weekdays, 1);
        // Both day fields restricted: either matches (the 13th, or a Friday).
        let c = Cron::parse("0 0 13 * FRI").unwrap();
        let day = |s: &str| s.parse::<Date>().unwrap();
        assert!(c.day_matches(day("2026-05-13")), "a Wednesday the 13th");
        assert!(c.day_matches(day("2026-05-15")), "a Friday");
        assert!(!c.day_matches(day("2026-05-14")));
        // Only one restricted: both must hold.
        let c = Cron::parse("0 0 */2 * FRI").unwrap();
        assert!(c.day_matches(day("2026-05-15")), "Friday the 15th");
        assert!(!c.day_matches(day("2026-05-22")), "Friday the 22nd");
    }

    #[test]
    fn a_bad_cron_names_the_key_and_the_field() {
        for (schedule, says) in [
            ("0 17 * *", "five fields"),
            ("0 17 * * FRY", "day of week field `FRY`"),
            ("60 17 * * FRI", "minute field `60`"),
            ("0 24 * * *", "hour field"),
            ("0 0 0 * *", "day of month field"),
            ("0 0 * 13 *", "month field"),
            ("0 0 * * FRI-MON", "runs backwards"),
            ("*/0 0 * * *", "step"),
            ("0 0 * * 1,,2", "day of week field"),
        ] {
            let error = FreezeSpec {
                schedule: Some(schedule.into()),
                duration: Some("1h".into()),
                ..FreezeSpec::default()
            }
            .validate()
            .unwrap_err();
            assert_eq!(error.key, "schedule", "{schedule}: {error}");
            assert!(error.to_string().contains(says), "{schedule}: {error}");
        }
    }

    #[test]
    fn an_unknown_zone_a_bad_duration_and_bad_times_name_their_key() {
        let recurring = |duration: &str, zone: &str| FreezeSpec {
            schedule: Some("0 17 * * FRI".into()),
            duration: Some(duration.into()),
            timezone: Some(zone.into()),
            ..FreezeSpec::default()
        };
        let e = recurring("64h", "Europe/Berlln").validate().unwrap_err();
        assert_eq!(e.key, "timezone", "{e}");
        assert!(
            e.message
                .contains("`Europe/Berlln` is not an IANA time zone"),
            "{e}"
        );
        for bad in ["64", "soon", "0s", "367d"] {
            let e = recurring(bad, "UTC").validate().unwrap_err();
            assert_eq!(e.key, "duration", "{bad}: {e}");
        }
        let mut no_duration = recurring("1h", "UTC");
        no_duration.duration = None;
        assert_eq!(no_duration.validate().unwrap_err().key, "duration");
        let one_off = |from: &str, to: &str| FreezeSpec {
            from: Some(from.into()),
            to: Some(to.into()),
            ..FreezeSpec::default()
        };
        let e = one_off("2026-12-20", "2027-01-04T00:00:00Z")
            .validate()
            .unwrap_err();
        assert_eq!(e.key, "from", "{e}");
        assert!(e.message.contains("RFC 3339"), "{e}");
        let e = one_off("2027-01-04T00:00:00Z", "2026-12-20T00:00:00Z")
            .validate()
            .unwrap_err();
        assert_eq!(e.key, "to", "{e}");
        let mut both = recurring("1h", "UTC");
        both.from = Some("2027-01-04T00:00:00Z".into());
        assert_eq!(both.validate().unwrap_err().key, "from");
        assert_eq!(
            FreezeSpec::default().validate().unwrap_err().key,
            "schedule"
        );
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rollout {
        #[serde(default)]
        freeze: Vec<Freeze>,
    }

    #[test]
    fn freeze_entries_parse_from_yaml_and_errors_name_file_line_and_key() {
        let text = "freeze:\n  - schedule: \"0 17 * * FRI\"\n    duration: 64h\n    timezone: Europe/Berlin\n    reason: weekend\n  - from: 2026-12-20T00:00:00Z\n    to: 2027-01-04T00:00:00Z\n    overrides: true\n";
        let parsed: Rollout = crate::config::parse("hydrant.yaml", text).unwrap();
        assert_eq!(parsed.freeze.len(), 2);
        assert_eq!(parsed.freeze[0], weekend());
        assert!(parsed.freeze[1].overrides);
        assert_eq!(
            parsed.freeze[1].window,
            Window::OneOff {
                from: ts("2026-12-20T00:00:00Z"),
                to: ts("2027-01-04T00:00:00Z")
            }
        );

        let text = "freeze:\n  - schedule: \"0 17 * * FRI\"\n    duration: 64h\n  - schedule: \"0 17 * * FRY\"\n    duration: 64h\n";
        let e = crate::config::parse::<Rollout>("hydrant.yaml", text).unwrap_err();
        // The error points at the entry's own key, and its path names it.
        assert_eq!(e.line, Some(4), "{e}");
        let shown = e.to_string();
        assert!(
            shown.contains("`freeze.1`") && shown.contains("`schedule`"),
            "{shown}"
        );

        let text = "freeze:\n  - schedule: \"0 17 * * FRI\"\n    duraton: 64h\n";
        let e = crate::config::parse::<Rollout>("hydrant.yaml", text).unwrap_err();
        assert!(e.to_string().contains("duraton"), "{e}");
        assert_eq!(e.line, Some(3), "{e}");
    }
}
