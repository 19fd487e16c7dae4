//! The simulator's notion of "now": wall-clock time plus an offset that tests can advance.
//!
//! Everything time-dependent on the server side (runner online/offline/busy, zombie tasks,
//! timestamps in JSON) reads this clock, so a test can jump past Gitea's one-minute offline
//! threshold without waiting. Agents and webhook delivery use real tokio timers.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A clock shared by the server parts of one simulator.
#[derive(Debug, Clone, Default)]
pub struct SimClock {
    offset_ms: Arc<AtomicI64>,
}

impl SimClock {
    /// A clock that starts at the real time.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Milliseconds since the Unix epoch, including every advance so far.
    #[must_use]
    pub fn now_ms(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        real.saturating_add(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

/// Formats milliseconds since the epoch as Go formats a UTC `time.Time` with whole seconds:
/// `2026-11-26T23:48:29Z`. Gitea stores seconds, so sub-second parts are dropped.
#[must_use]
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_the_epoch_like_go_formats_a_zero_gitea_timestamp() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn formats_a_leap_day_and_drops_milliseconds() {
        // 2024-02-29T12:34:56.789Z
        assert_eq!(rfc3339(1_709_210_096_789), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn advancing_moves_now_forward() {
        let clock = SimClock::new();
        let before = clock.now_ms();
        clock.advance(Duration::from_secs(120));
        assert!(clock.now_ms() - before >= 120_000);
    }
}
