//! Durations as people write them, everywhere hydrant reads one (flags,
//! variables, settings files, `rollout:`): `90s`, `30m`, `2h`, `1d`, `1h30m`
//! (units from the largest to the smallest, each at most once; `ms` too, for
//! tests and short timeouts). A day is 24 hours here; where a
//! duration meets a calendar (a freeze window across a daylight saving
//! change) the caller decides on the wall clock, not this parser.
//!
//! A bare number is refused (`0` aside): in a rollout, `64` could mean
//! seconds or hours. Flags keep reading a bare number as seconds
//! ([`crate::settings::parse_duration`]).

use std::time::Duration;

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Reads `90s`, `30m`, `2h`, `1d`, `1h30m` or `250ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let refuse = |why: &str| {
        let shown: String = text.chars().take(40).collect();
        Err(format!(
            "`{}` is not a duration{why}: write it such as `90s`, `30m`, `2h`, `1d` or `1h30m`",
            shown.escape_debug()
        ))
    };
    let t = text.trim();
    if t.is_empty() {
        return refuse(" (it is empty)");
    }
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = t;
    let mut total: u64 = 0;
    // The index in UNITS the next unit must come after.
    let mut next = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return refuse("");
        }
        let Ok(n) = rest[..digits].parse::<u64>() else {
            return refuse(" (the number is too large)");
        };
        rest = &rest[digits..];
        let letters = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..letters];
        rest = &rest[letters..];
        if unit.is_empty() {
            return refuse(" (a number needs a unit: `d`, `h`, `m`, `s` or `ms`)");
        }
        let Some(at) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return refuse(" (units are `d`, `h`, `m`, `s` and `ms`)");
        };
        if at < next {
            return refuse(" (give each unit once, the largest first)");
        }
        next = at + 1;
        let Some(sum) = n
            .checked_mul(UNITS[at].1)
            .and_then(|ms| total.checked_add(ms))
        else {
            return refuse(" (it is too long)");
        };
        total = sum;
    }
    Ok(Duration::from_millis(total))
}

/// A duration as [`parse_duration`] reads it: `1h30m`, `2d`, `90s`.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis().min(u128::from(u64::MAX)) as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, len) in UNITS {
        if ms >= len {
            out.push_str(&format!("{}{unit}", ms / len));
            ms %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Result<Duration, String> {
        Ok(Duration::from_secs(s))
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("90s"), secs(90));
        assert_eq!(parse_duration("30m"), secs(1800));
        assert_eq!(parse_duration("2h"), secs(7200));
        assert_eq!(parse_duration("1d"), secs(86_400));
        assert_eq!(parse_duration("1h30m"), secs(5400));
        assert_eq!(parse_duration("64h"), secs(64 * 3600));
        assert_eq!(parse_duration(" 2d12h "), secs(60 * 3600));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(
            parse_duration("1m30s500ms"),
            Ok(Duration::from_millis(90_500))
        );
        assert_eq!(parse_duration("0s"), secs(0));
    }

    #[test]
    fn a_duration_that_is_not_one_is_refused_with_an_example() {
        for bad in [
            "",
            "64",
            "soon",
            "1x",
            "h",
            "1h 30m",
            "30m1h",
            "1h1h",
            "-1h",
            "1.5h",
            "99999999999999999999d",
            "999999999999999d",
        ] {
            let error = parse_duration(bad).unwrap_err();
            assert!(error.contains("1h30m"), "{bad:?}: {error}");
        }
        assert!(parse_duration("64").unwrap_err().contains("needs a unit"));
    }

    #[test]
    fn a_formatted_duration_reads_back() {
        for text in ["1h30m", "2d", "90s", "64h", "1d1h1m1s1ms", "0s"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(64 * 3600)), "2d16h");
    }
}
