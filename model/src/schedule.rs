//! Weekly time windows such as `Mon-Fri 07:00-19:00 Europe/Berlin`, for warm pools.
//!
//! A window is read once from the configuration and asked one question by the planner: does
//! it hold at `now`? The time zone comes from the tz database bundled into the binary (no
//! system files are read, and no clock: `now` is passed in), so daylight-saving changes are
//! followed as the zone's rules say.

use std::fmt;

use jiff::tz::TimeZone;

/// One weekly window: on the days it names, from `start` to `end` local time.
///
/// Written `<days> <HH:MM>-<HH:MM> [<time zone>]`:
/// - days: `Mon-Fri`, `Sat,Sun`, `Fri-Mon` (a range may wrap), `Mon-Sun` or `daily`;
/// - times from `00:00` to `24:00`; an end before the start runs past midnight (the window
///   belongs to the day it starts on: `Fri 22:00-06:00` holds until Saturday 06:00);
/// - a time zone name from the IANA database (`Europe/Berlin`); left out, UTC.
#[derive(Clone)]
pub struct Window {
    text: String,
    /// Bit `d` set: the window starts on weekday `d` (Monday 0).
    days: u8,
    /// Minutes after local midnight.
    start: u16,
    end: u16,
    zone: TimeZone,
}

impl Window {
    /// Reads a window.
    ///
    /// # Errors
    /// A message saying which part is wrong and how to write it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let (days, times, zone) = match parts.as_slice() {
            [days, times] => (*days, *times, None),
            [days, times, zone] => (*days, *times, Some(*zone)),
            _ => {
                return Err(format!(
                    "`{}` is not a window: write it like `Mon-Fri 07:00-19:00 Europe/Berlin`",
                    text.escape_debug()
                ))
            }
        };
        let days = parse_days(days)?;
        let (start, end) = times
            .split_once('-')
            .ok_or_else(|| format!("`{times}` is not a time range like 07:00-19:00"))?;
        let (start, end) = (parse_time(start)?, parse_time(end)?);
        if start == end {
            return Err(format!(
                "`{times}` starts and ends at the same time; write 00:00-24:00 for a whole day"
            ));
        }
        let zone = match zone {
            None => TimeZone::UTC,
            Some(name) => jiff::tz::db().get(name).map_err(|_| {
                format!(
                    "`{}` is not a time zone name from the IANA database (like Europe/Berlin or UTC)",
                    name.escape_debug()
                )
            })?,
        };
        Ok(Window {
            text: parts.join(" "),
            days,
            start,
            end,
            zone,
        })
    }

    /// Whether the window holds at `now`.
    #[must_use]
    pub fn contains(&self, now: crate::time::Timestamp) -> bool {
        let Ok(t) = jiff::Timestamp::from_millisecond(now.as_millis()) else {
            return false;
        };
        let local = self.zone.to_datetime(t);
        let day = u8::try_from(local.weekday().to_monday_zero_offset()).unwrap_or(0);
        let minute =
            u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute())).unwrap_or(0);
        let starts_on = |d: u8| self.days & (1 << d) != 0;
        if self.start < self.end {
            starts_on(day) && (self.start..self.end).contains(&minute)
        } else {
            // Past midnight: the evening part on its own day, the morning part the day after.
            (starts_on(day) && minute >= self.start)
                || (starts_on((day + 6) % 7) && minute < self.end)
        }
    }

    /// The window as written (spaces normalised).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Window({:?})", self.text)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Window {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Window {}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_day(s: &str) -> Result<u8, String> {
    let lower = s.to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|d| *d == lower)
        .and_then(|d| u8::try_from(d).ok())
        .ok_or_else(|| {
            format!(
                "`{}` is not a day: write Mon, Tue, Wed, Thu, Fri, Sat or Sun",
                s.escape_debug()
            )
        })
}

fn parse_days(s: &str) -> Result<u8, String> {
    if s.eq_ignore_ascii_case("daily") {
        return Ok(0x7f);
    }
    let mut days = 0u8;
    for part in s.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (parse_day(from)?, parse_day(to)?);
                let mut d = from;
                loop {
                    days |= 1 << d;
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days |= 1 << parse_day(part)?,
        }
    }
    Ok(days)
}

fn parse_time(s: &str) -> Result<u16, String> {
    let bad = || format!("`{}` is not a time from 00:00 to 24:00", s.escape_debug());
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn at(rfc3339: &str) -> Timestamp {
        Timestamp::parse(rfc3339).expect("test time")
    }

    #[test]
    fn office_hours_in_berlin_follow_daylight_saving() {
        let w = Window::parse("Mon-Fri 07:00-19:00 Europe/Berlin").expect("valid");
        // Winter (UTC+1): Monday 2026-01-05 07:00 local is 06:00Z.
        assert!(!w.contains(at("2026-01-05T05:59:00Z")));
        assert!(w.contains(at("2026-01-05T06:00:00Z")));
        assert!(w.contains(at("2026-01-05T17:59:00Z")));
        assert!(!w.contains(at("2026-01-05T18:00:00Z")));
        // Summer (UTC+2): Monday 2026-07-06 07:00 local is 05:00Z.
        assert!(w.contains(at("2026-07-06T05:00:00Z")));
        assert!(!w.contains(at("2026-07-06T17:00:00Z")));
        // Saturday.
        assert!(!w.contains(at("2026-01-10T10:00:00Z")));
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_starts_on() {
        let w = Window::parse("Fri 22:00-06:00").expect("valid");
        assert!(w.contains(at("2026-01-09T23:00:00Z")), "Friday night");
        assert!(w.contains(at("2026-01-10T05:59:00Z")), "Saturday morning");
        assert!(!w.contains(at("2026-01-10T06:00:00Z")));
        assert!(!w.contains(at("2026-01-09T05:00:00Z")), "Friday morning");
        assert!(!w.contains(at("2026-01-10T23:00:00Z")), "Saturday night");
    }

    #[test]
    fn day_lists_ranges_that_wrap_and_whole_days() {
        let w = Window::parse("Sat-Mon 00:00-24:00 UTC").expect("valid");
        assert!(w.contains(at("2026-01-10T00:00:00Z")), "Saturday");
        assert!(w.contains(at("2026-01-11T23:59:00Z")), "Sunday");
        assert!(w.contains(at("2026-01-12T12:00:00Z")), "Monday");
        assert!(!w.contains(at("2026-01-13T12:00:00Z")), "Tuesday");
        let w = Window::parse("tue,THU 09:30-10:00").expect("valid");
        assert!(w.contains(at("2026-01-08T09:45:00Z")), "Thursday");
        assert!(!w.contains(at("2026-01-07T09:45:00Z")), "Wednesday");
        assert!(Window::parse("daily 08:00-09:00").is_ok());
    }

    #[test]
    fn mistakes_are_named() {
        for (text, says) in [
            ("Mon-Fri", "is not a window"),
            ("Mon-Fry 07:00-19:00", "`Fry` is not a day"),
            ("Mon 7:00-19:00", "`7:00` is not a time"),
            ("Mon 07:00-25:00", "`25:00` is not a time"),
            ("Mon 07:00", "not a time range"),
            ("Mon 07:00-07:00", "same time"),
            ("Mon 07:00-19:00 Europe/Berlinn", "not a time zone name"),
            ("Mon 07:00-19:00 Europe/Berlin extra", "is not a window"),
        ] {
            let err = Window::parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
