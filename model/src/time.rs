//! Time as a plain value: the planner never reads a clock, it is handed `now`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, in milliseconds since the Unix epoch (UTC).
///
/// Serialized as an RFC 3339 string (`2026-11-26T23:48:29.000Z`) so that table rows and JSON
/// output stay readable; integers of milliseconds are accepted on input too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The epoch itself, handy as a fixture.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp from milliseconds since the epoch.
    #[must_use]
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the epoch.
    #[must_use]
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (for DynamoDB TTL attributes).
    #[must_use]
    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Converts a system time; times before the epoch clamp to the epoch.
    #[must_use]
    pub fn from_system(t: SystemTime) -> Self {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Timestamp(ms)
    }

    /// This time plus `d` (saturating).
    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// How long after `earlier` this is; zero if it is not after.
    #[must_use]
    pub fn since(self, earlier: Timestamp) -> Duration {
        let ms = self.0.saturating_sub(earlier.0);
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    /// Parses RFC 3339 (`2026-11-26T23:48:29Z`, fractional seconds allowed).
    ///
    /// # Errors
    /// When the text is not an RFC 3339 UTC timestamp.
    pub fn parse(s: &str) -> Result<Self, String> {
        humantime::parse_rfc3339_weak(s.trim())
            .map(Self::from_system)
            .map_err(|e| format!("`{s}` is not an RFC 3339 timestamp: {e}"))
    }

    fn to_system(self) -> SystemTime {
        let ms = u64::try_from(self.0).unwrap_or(0);
        UNIX_EPOCH + Duration::from_millis(ms)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_millis(self.to_system()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Millis(ms) => Ok(Timestamp(ms)),
            Raw::Text(s) => Timestamp::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// Formats a duration the way people write it in config files (`10m`, `1h 30m`).
#[must_use]
pub fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// A duration of a configuration file (`90s`, `10m`, `6h`, `7days`), in whole seconds: what
/// the file says is what the controller uses and what [`human`] writes back. A fraction of a
/// second (`5ms`, most likely `5m` mistyped) is refused, not rounded away. `example` is how
/// the message suggests writing it.
///
/// # Errors
/// Text that is not a duration, or not a whole number of seconds, quoted in the message.
pub fn parse_config_duration(text: &str, example: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration (write it like {example}): {e}"))?;
    if d.subsec_nanos() != 0 {
        return Err(format!(
            "`{text}` is not a whole number of seconds (write it like {example})"
        ));
    }
    Ok(d)
}

/// Serde helpers for durations written as `30s`, `10m`, `6h`.
pub mod duration_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `10m`-style text.
    ///
    /// # Errors
    /// Never, beyond the serializer's own.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&super::human(*d))
    }

    /// Reads `10m`-style text.
    ///
    /// # Errors
    /// When the text is not a duration such as `90s`, `10m` or `6h`, in whole seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_config_duration(&s, "90s, 10m or 6h").map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_rfc3339() {
        let t = Timestamp::from_millis(1_764_200_909_123);
        let text = t.to_string();
        assert_eq!(text, "2025-11-26T23:48:29.123Z");
        assert_eq!(Timestamp::parse(&text), Ok(t));
        let json = serde_json::to_string(&t).expect("serializes");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).expect("parses"), t);
        assert_eq!(
            serde_json::from_str::<Timestamp>("1000").expect("millis"),
            Timestamp(1000)
        );
    }

    #[test]
    fn since_never_goes_negative() {
        let a = Timestamp::from_millis(5_000);
        let b = Timestamp::from_millis(2_000);
        assert_eq!(a.since(b), Duration::from_secs(3));
        assert_eq!(b.since(a), Duration::ZERO);
        assert_eq!(b.plus(Duration::from_secs(3)), a);
    }

    #[test]
    fn human_durations_are_compact() {
        assert_eq!(human(Duration::from_secs(600)), "10m");
        assert_eq!(human(Duration::from_secs(5400)), "1h 30m");
    }
}
