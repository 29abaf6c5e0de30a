//! Durations as people write them in flags, variables and the settings
//! file: `30s`, `5m`, `1h`, `250ms`.

use std::time::Duration;

/// `90s`, `5m`, `1h`, `250ms`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = t
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| t.split_at(i))
        .unwrap_or((t, "s"));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 30s, 5m or 1h"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("`{text}`: use ms, s, m or h")),
    })
}

/// `--interval`: a duration of at least a second.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_duration(text)?;
    if interval < Duration::from_secs(1) {
        return Err(format!(
            "`{text}` is under a second: the interval is the time between cycles, each of which fetches the repository and the channels (hint: use `30s`, `5m` or `1h`; `--once` runs one cycle and exits)"
        ));
    }
    Ok(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn an_interval_under_a_second_is_refused_with_a_hint() {
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        for text in ["0s", "0", "999ms", "100ms"] {
            let error = parse_interval(text).unwrap_err();
            assert!(error.contains("under a second"), "{text}: {error}");
            assert!(error.contains("hint:"), "{text}: {error}");
        }
    }
}
