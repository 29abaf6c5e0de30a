//! Waiting before trying again: exponential backoff with jitter, the one
//! mechanism the channel client, the forge client and the daemon share.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A wait of up to `max`, spread so that many replicas do not retry in step.
/// Not cryptographic randomness, and it need not be.
pub fn jitter(max: Duration) -> Duration {
    let millis = max.as_millis() as u64;
    if millis == 0 {
        return Duration::ZERO;
    }
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0) as u64
        ^ u64::from(std::process::id()).rotate_left(17);
    let mut x = seed | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    Duration::from_millis(x % millis)
}

/// The wait before retry number `attempt` (from 0): `base` doubled per
/// attempt, plus up to as much again in jitter, never more than `cap`.
pub fn delay(base: Duration, attempt: u32, cap: Duration) -> Duration {
    let backoff = base.saturating_mul(2u32.saturating_pow(attempt)).min(cap);
    (backoff + jitter(backoff)).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_and_stay_under_the_cap() {
        let base = Duration::from_millis(100);
        for attempt in 0..4 {
            let floor = base * 2u32.pow(attempt);
            let d = delay(base, attempt, Duration::from_secs(60));
            assert!(d >= floor && d <= floor * 2, "{attempt}: {d:?}");
        }
        assert!(delay(base, 30, Duration::from_secs(1)) <= Duration::from_secs(1));
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
