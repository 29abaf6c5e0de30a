//! Durations as people write them in flags, variables and the settings
//! file: `30s`, `5m`, `1h`, `250ms`, or a bare number of seconds.

use std::time::Duration;

/// `90s`, `5m`, `1h30m`, `250ms`, or plain seconds: the one duration syntax
/// ([`crate::duration`]), where a flag also takes a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => crate::duration::parse_duration(text),
    }
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
