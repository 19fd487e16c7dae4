//! Keeping logs bounded whatever the input: a field capped to a length, a condition logged
//! when it starts and when it changes (not every pass), and a per-request warning limited to
//! one per interval with a count of the ones held back.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use model::Timestamp;

/// The most characters one field puts in a log line ([`cap`]).
pub const FIELD_CHARS: usize = 200;

/// The most items of a list one field shows ([`cap_list`]).
pub const LIST_ITEMS: usize = 16;

/// `text` cut to at most `max` characters; a cut value ends with a marker saying how many
/// characters were left out, so a long value can never flood a line.
#[must_use]
pub fn cap(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => {
            let cut = text[at..].chars().count();
            format!("{}…(+{cut} chars)", &text[..at])
        }
    }
}

/// A list for a log line: at most [`LIST_ITEMS`] items, each [`cap`]ped to [`FIELD_CHARS`],
/// and a marker with how many more there were.
#[must_use]
pub fn cap_list(items: &[String]) -> String {
    let shown: Vec<String> = items
        .iter()
        .take(LIST_ITEMS)
        .map(|i| format!("{:?}", cap(i, FIELD_CHARS)))
        .collect();
    let more = items.len().saturating_sub(LIST_ITEMS);
    if more == 0 {
        format!("[{}]", shown.join(", "))
    } else {
        format!("[{}, …(+{more} more)]", shown.join(", "))
    }
}

/// What changed in a set of conditions since the last look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes<K, V> {
    /// Conditions not there last time.
    pub started: Vec<(K, V)>,
    /// Conditions there last time with another value.
    pub changed: Vec<(K, V)>,
    /// Conditions there last time and gone now.
    pub ended: Vec<K>,
}

/// Remembers a set of conditions (key and value) between passes, so each is logged when it
/// starts, when its value changes and when it ends, not every pass.
#[derive(Debug, Clone)]
pub struct ChangeTracker<K, V> {
    seen: BTreeMap<K, V>,
}

impl<K, V> Default for ChangeTracker<K, V> {
    fn default() -> Self {
        ChangeTracker {
            seen: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone + Debug, V: PartialEq + Clone + Debug> ChangeTracker<K, V> {
    /// Replaces the remembered set with `now` and says what differs from the last one.
    pub fn update(&mut self, now: impl IntoIterator<Item = (K, V)>) -> Changes<K, V> {
        let now: BTreeMap<K, V> = now.into_iter().collect();
        let mut changes = Changes {
            started: Vec::new(),
            changed: Vec::new(),
            ended: Vec::new(),
        };
        for (k, v) in &now {
            match self.seen.get(k) {
                None => changes.started.push((k.clone(), v.clone())),
                Some(old) if old != v => changes.changed.push((k.clone(), v.clone())),
                Some(_) => {}
            }
        }
        changes.ended = self
            .seen
            .keys()
            .filter(|k| !now.contains_key(*k))
            .cloned()
            .collect();
        self.seen = now;
        changes
    }
}

/// Lets one warning through per interval and counts the ones held back in between.
#[derive(Debug, Clone)]
pub struct RateLimit {
    every: Duration,
    last: Option<Timestamp>,
    held_back: u64,
}

impl RateLimit {
    /// At most one warning per `every`.
    #[must_use]
    pub fn new(every: Duration) -> Self {
        RateLimit {
            every,
            last: None,
            held_back: 0,
        }
    }

    /// Whether to log now: `Some(n)` with `n` the warnings held back since the last one
    /// logged, or `None` to stay quiet (counted).
    pub fn admit(&mut self, now: Timestamp) -> Option<u64> {
        let due = self
            .last
            .is_none_or(|last| now < last || now.since(last) >= self.every);
        if due {
            self.last = Some(now);
            Some(std::mem::take(&mut self.held_back))
        } else {
            self.held_back += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_field_is_cut_with_a_marker_and_a_short_one_kept() {
        assert_eq!(cap("linux", 10), "linux");
        assert_eq!(cap("abcdef", 6), "abcdef");
        assert_eq!(cap("abcdef", 2), "ab…(+4 chars)");
        // Cut on a character, never inside one.
        assert_eq!(cap("ééééé", 3), "ééé…(+2 chars)");
        let huge = "x".repeat(900_000);
        assert!(cap(&huge, FIELD_CHARS).len() < FIELD_CHARS + 32);
    }

    #[test]
    fn a_long_list_shows_its_first_items_and_how_many_more() {
        assert_eq!(cap_list(&["a".into(), "b".into()]), r#"["a", "b"]"#);
        let many: Vec<String> = (0..10_000).map(|i| format!("label-{i}")).collect();
        let line = cap_list(&many);
        assert!(line.ends_with("…(+9984 more)]"), "{line}");
        assert!(line.len() < 400, "{}", line.len());
        let long = vec!["y".repeat(500_000)];
        assert!(cap_list(&long).len() < FIELD_CHARS + 40);
    }

    #[test]
    fn a_condition_is_reported_when_it_starts_changes_and_ends_not_every_pass() {
        let mut t = ChangeTracker::default();
        let first = t.update([("r1", 1), ("r2", 2)]);
        assert_eq!(first.started, [("r1", 1), ("r2", 2)]);
        assert!(first.changed.is_empty() && first.ended.is_empty());

        for _ in 0..100 {
            let same = t.update([("r1", 1), ("r2", 2)]);
            assert!(same.started.is_empty() && same.changed.is_empty() && same.ended.is_empty());
        }

        let next = t.update([("r2", 3), ("r3", 1)]);
        assert_eq!(next.started, [("r3", 1)]);
        assert_eq!(next.changed, [("r2", 3)]);
        assert_eq!(next.ended, ["r1"]);

        // Ended and back again: a new start.
        let back = t.update([("r1", 1)]);
        assert_eq!(back.started, [("r1", 1)]);
        assert_eq!(back.ended, ["r2", "r3"]);
    }

    #[test]
    fn one_warning_per_interval_with_the_held_back_count() {
        let t0 = Timestamp::from_millis(1_700_000_000_000);
        let at = |ms: i64| Timestamp::from_millis(t0.as_millis() + ms);
        let mut limit = RateLimit::new(Duration::from_secs(10));
        assert_eq!(limit.admit(t0), Some(0));
        for ms in [1, 500, 5_000, 9_999] {
            assert_eq!(limit.admit(at(ms)), None);
        }
        assert_eq!(limit.admit(at(10_000)), Some(4));
        assert_eq!(limit.admit(at(10_001)), None);
        assert_eq!(limit.admit(at(60_000)), Some(1));
        // A clock that stepped back does not silence warnings for good.
        assert_eq!(limit.admit(at(1)), Some(0));
    }
}
