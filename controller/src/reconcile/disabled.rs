//! When each disabled runner became disabled, as far as this controller knows: the moment it
//! disabled the runner itself, or the first pass that saw it disabled. The planner removes a
//! disabled runner only once the disable has stood long enough for a job the runner picked
//! just before it to show as busy (`model::plan::DISABLE_SETTLE`); Gitea's runner list says
//! whether a runner is disabled, not since when.
//!
//! Kept in memory: after a restart every disabled runner counts from the first pass that sees
//! it, which only delays its removal.

use std::collections::{BTreeMap, HashMap};

use model::{ForgeRunner, Timestamp};
use parking_lot::Mutex;

/// Since when runners are known disabled, by Gitea id.
#[derive(Debug, Default)]
pub struct DisabledBook {
    since: Mutex<HashMap<i64, Timestamp>>,
}

impl DisabledBook {
    /// Notes that this controller disabled runner `id` at `at`.
    pub fn record(&self, id: i64, at: Timestamp) {
        self.since.lock().insert(id, at);
    }

    /// What the planner gets for a runner listing seen at `now`: every disabled runner in it
    /// with the time it is known disabled since (first seen now, when not known). A whole
    /// listing also forgets runners that are gone or enabled again.
    pub fn observe(
        &self,
        runners: &[ForgeRunner],
        complete: bool,
        now: Timestamp,
    ) -> BTreeMap<i64, Timestamp> {
        let mut since = self.since.lock();
        if complete {
            let disabled: std::collections::HashSet<i64> = runners
                .iter()
                .filter(|r| r.disabled)
                .map(|r| r.id)
                .collect();
            since.retain(|id, _| disabled.contains(id));
        }
        runners
            .iter()
            .filter(|r| r.disabled)
            .map(|r| (r.id, *since.entry(r.id).or_insert(now)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn runner(id: i64, disabled: bool) -> ForgeRunner {
        ForgeRunner {
            id,
            name: format!("r{id}"),
            online: true,
            busy: false,
            labels: vec!["go".into()],
            ephemeral: true,
            disabled,
        }
    }

    #[test]
    fn a_disable_counts_from_when_it_was_made_else_from_when_first_seen() {
        let book = DisabledBook::default();
        let t0 = Timestamp::from_millis(1_000_000);
        let later = t0.plus(Duration::from_secs(30));
        book.record(1, t0);
        let seen = book.observe(
            &[runner(1, true), runner(2, true), runner(3, false)],
            true,
            later,
        );
        assert_eq!(seen, BTreeMap::from([(1, t0), (2, later)]));
        // Seen again: runner 2 keeps the time it was first seen.
        let again = book.observe(
            &[runner(1, true), runner(2, true)],
            true,
            later.plus(Duration::from_secs(5)),
        );
        assert_eq!(again, BTreeMap::from([(1, t0), (2, later)]));
    }

    #[test]
    fn a_whole_listing_forgets_runners_gone_or_enabled_again_a_partial_one_does_not() {
        let book = DisabledBook::default();
        let t0 = Timestamp::from_millis(1_000_000);
        book.record(1, t0);
        book.record(2, t0);
        let now = t0.plus(Duration::from_secs(60));
        // Partial: runner 2 is missing from it but may exist; nothing is forgotten.
        book.observe(&[runner(1, false)], false, now);
        assert_eq!(
            book.observe(&[runner(2, true)], false, now),
            BTreeMap::from([(2, t0)])
        );
        // Whole: runner 1 is enabled again, runner 2 gone.
        assert!(book.observe(&[runner(1, false)], true, now).is_empty());
        assert_eq!(
            book.observe(&[runner(1, true), runner(2, true)], true, now),
            BTreeMap::from([(1, now), (2, now)])
        );
    }
}
