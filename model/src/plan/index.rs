//! Lookup tables built once per pass, so every rule is a map lookup (O(n log n) overall).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::desired::{DesiredRun, JobState};
use crate::observed::{DesiredView, ForgeRunner, Instance, Observed};

/// Everything the rules look things up in.
pub(super) struct Index<'a> {
    /// Active runs (the table's plus backfilled ones), oldest first.
    pub runs: Vec<&'a DesiredRun>,
    /// Instances carrying our cluster tag, by id.
    pub ours: Vec<&'a Instance>,
    /// Our instances by runner-name tag: live ones oldest first, then the rest.
    pub by_runner: HashMap<&'a str, Vec<&'a Instance>>,
    /// Gitea runners by name.
    pub runners: HashMap<&'a str, Vec<&'a ForgeRunner>>,
    /// Ids of queued Gitea jobs.
    pub queued: HashSet<i64>,
    /// Distinct label sets of queued jobs (sorted, deduplicated).
    pub queued_label_sets: Vec<Vec<&'a str>>,
    /// Runner names a job is in progress on, per the webhooks.
    pub in_progress_on: HashSet<&'a str>,
    /// Keys of rows that did not parse.
    pub invalid: HashSet<&'a str>,
}

impl<'a> Index<'a> {
    pub(super) fn new(
        desired: &'a DesiredView,
        backfilled: &'a [DesiredRun],
        observed: &'a Observed,
        cluster: &str,
    ) -> Self {
        let mut runs: Vec<&DesiredRun> = desired
            .runs
            .iter()
            .chain(backfilled)
            .filter(|r| !r.status.phase.is_final())
            .collect();
        runs.sort_by(|a, b| (a.spec.created_at, &a.id).cmp(&(b.spec.created_at, &b.id)));
        runs.dedup_by(|a, b| a.id == b.id);

        let mut ours: Vec<&Instance> = observed
            .instances
            .items()
            .iter()
            .filter(|i| i.is_ours(cluster))
            .collect();
        ours.sort_by(|a, b| a.id.cmp(&b.id));
        ours.dedup_by(|a, b| a.id == b.id);

        let mut by_runner: HashMap<&str, Vec<&Instance>> = HashMap::new();
        for i in &ours {
            if let Some(name) = i.tags.get(crate::tags::RUNNER_NAME) {
                by_runner.entry(name.as_str()).or_default().push(i);
            }
        }
        for list in by_runner.values_mut() {
            list.sort_by(|a, b| {
                (!a.state.is_live(), a.launched_at, &a.id).cmp(&(
                    !b.state.is_live(),
                    b.launched_at,
                    &b.id,
                ))
            });
        }

        let mut runners: HashMap<&str, Vec<&ForgeRunner>> = HashMap::new();
        for r in observed.runners.items() {
            runners.entry(r.name.as_str()).or_default().push(r);
        }
        for list in runners.values_mut() {
            list.sort_by_key(|r| (!r.online, r.id));
        }

        let queued = observed.queued_jobs.items().iter().map(|j| j.id).collect();
        let mut sets: BTreeMap<Vec<&str>, ()> = BTreeMap::new();
        for j in observed.queued_jobs.items() {
            let mut set: Vec<&str> = j.labels.iter().map(String::as_str).collect();
            set.sort_unstable();
            set.dedup();
            sets.insert(set, ());
        }

        let in_progress_on = runs
            .iter()
            .filter_map(|r| match &r.spec.job_state {
                JobState::InProgress { runner: Some(name) } => Some(name.as_str()),
                _ => None,
            })
            .collect();

        Index {
            runs,
            ours,
            by_runner,
            runners,
            queued,
            queued_label_sets: sets.into_keys().collect(),
            in_progress_on,
            invalid: desired.invalid.iter().map(|r| r.key.as_str()).collect(),
        }
    }

    /// The oldest live instance tagged with `runner`.
    pub(super) fn live_instance(&self, runner: &str) -> Option<&'a Instance> {
        self.by_runner
            .get(runner)?
            .first()
            .copied()
            .filter(|i| i.state.is_live())
    }

    /// An instance tagged with `runner` that has ended (terminated or shutting down).
    pub(super) fn ended_instance(&self, runner: &str) -> Option<&'a Instance> {
        self.by_runner
            .get(runner)?
            .iter()
            .copied()
            .find(|i| !i.state.is_live())
    }

    /// Gitea runners named `runner` (online first).
    pub(super) fn runners_named(&self, runner: &str) -> Vec<&'a ForgeRunner> {
        self.runners.get(runner).cloned().unwrap_or_default()
    }

    /// Whether a runner is (or may be) running a job: Gitea says busy, or it is online and a
    /// webhook said a job is in progress on it (Gitea's busy flag lags by up to 10 s). A
    /// runner that is offline runs nothing, whatever the last webhook said.
    pub(super) fn is_busy(&self, r: &ForgeRunner) -> bool {
        r.busy || (r.online && self.in_progress_on.contains(r.name.as_str()))
    }

    /// Whether any runner called `name` is busy.
    pub(super) fn is_busy_name(&self, name: &str) -> bool {
        self.runners_named(name).iter().any(|r| self.is_busy(r))
    }

    /// Whether a webhook said a job is in progress on the runner called `name`.
    pub(super) fn took_a_job(&self, name: &str) -> bool {
        self.in_progress_on.contains(name)
    }

    /// Whether some queued job could run on a runner with `labels` (all of its labels are
    /// among the runner's, as Gitea matches).
    pub(super) fn has_demand_for(&self, labels: &[String]) -> bool {
        self.queued_label_sets
            .iter()
            .any(|set| set.iter().all(|l| labels.iter().any(|have| have == l)))
    }

    /// Whether `id` names a row that did not parse.
    pub(super) fn is_invalid(&self, id: &str) -> bool {
        self.invalid.contains(id)
    }
}
