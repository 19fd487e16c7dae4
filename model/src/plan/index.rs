//! Lookup tables built once per pass, so every rule is a map lookup (O(n log n) overall).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::desired::{DesiredRun, JobState};
use crate::notice::Notice;
use crate::observed::{DesiredView, ForgeRunner, Instance, JobSeen, Observed, Seen};
use crate::time::Timestamp;

/// What the queued-jobs observation can tell.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum QueueView {
    Complete,
    Partial,
    Unavailable,
}

/// A run's job as this pass knows it: the table's last webhook state, confirmed or corrected
/// by Gitea's queued list and by jobs read one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum JobView {
    /// Waits for a runner; `confirmed` when Gitea's queued list or a read shows it waiting
    /// for this run's pick (rather than only the last webhook saying so).
    Queued { confirmed: bool },
    /// Gitea's view of it could not be had this pass: decide nothing about it.
    Unknown,
    /// A runner took it (this run's pick).
    Taken { runner: Option<String> },
    /// This run's pick of the job is over (finished, re-run since, or the job is gone).
    Done,
}

/// Everything the rules look things up in.
pub(super) struct Index<'a> {
    /// Active runs (the table's plus backfilled ones), oldest first.
    pub runs: Vec<&'a DesiredRun>,
    /// Instances carrying our cluster tag, by id.
    pub ours: Vec<&'a Instance>,
    /// Our instances by runner-name tag: live ones oldest first, then the rest.
    pub by_runner: Groups<'a, Instance>,
    /// Runner names (EC2 tags and Gitea names) to their group in `by_runner` and `runners`.
    pub names: HashMap<&'a str, u32>,
    /// Gitea runners by name.
    pub runners: Groups<'a, ForgeRunner>,
    /// What the queued-jobs list can tell.
    pub queue: QueueView,
    /// Queued Gitea jobs: id to the pick they wait for.
    pub queued: HashMap<i64, u32>,
    /// Jobs read one by one, by id.
    pub reads: HashMap<i64, &'a JobSeen>,
    /// Distinct label sets of queued jobs (sorted, deduplicated), with the earliest time a
    /// run of ours for such a job was created (when known).
    pub waiting: BTreeMap<Vec<&'a str>, Option<Timestamp>>,
    /// Runner names a job is in progress on, per the webhooks and the jobs read.
    pub in_progress_on: HashSet<&'a str>,
    /// Keys of rows that did not parse.
    pub invalid: HashSet<&'a str>,
    /// EC2's advance notices by instance id: an interruption warning over a rebalance
    /// recommendation, the earliest of a kind.
    pub notices: HashMap<&'a str, &'a Notice>,
}

impl<'a> Index<'a> {
    pub(super) fn new(
        desired: &'a DesiredView,
        backfilled: &'a [DesiredRun],
        observed: &'a Observed,
        cluster: &str,
    ) -> Self {
        // Sorted by (creation, id) with each id's leading bytes copied beside it, so most
        // comparisons read neither the run nor its id (both elsewhere in memory).
        let mut keyed: Vec<(Timestamp, SortKey, &DesiredRun)> = desired
            .runs
            .iter()
            .chain(backfilled)
            .filter(|r| !r.status.phase.is_final())
            .map(|r| (r.spec.created_at, SortKey::of(r.id.as_str()), r))
            .collect();
        keyed.sort_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then_with(|| a.2.id.cmp(&b.2.id))
        });
        let mut runs: Vec<&DesiredRun> = keyed.into_iter().map(|(_, _, r)| r).collect();
        runs.dedup_by(|a, b| a.id == b.id);

        // The runner-name tag is read here too, while the instance's tags are at hand.
        let mut keyed: Vec<(SortKey, &Instance, Option<&str>)> = observed
            .instances
            .items()
            .iter()
            .filter(|i| i.is_ours(cluster))
            .map(|i| {
                let name = i.tags.get(crate::tags::RUNNER_NAME).map(String::as_str);
                (SortKey::of(i.id.as_str()), i, name)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        keyed.dedup_by(|a, b| a.1.id == b.1.id);
        let ours: Vec<&Instance> = keyed.iter().map(|&(_, i, _)| i).collect();

        let mut names = HashMap::with_capacity(ours.len() + observed.runners.items().len());
        let by_runner = Groups::new(
            &mut names,
            keyed
                .iter()
                .filter_map(|&(_, i, name)| Some((name?, i)))
                .collect(),
            |a, b| {
                (!a.state.is_live(), a.launched_at, &a.id).cmp(&(
                    !b.state.is_live(),
                    b.launched_at,
                    &b.id,
                ))
            },
            |_, _| false,
        );

        let runners = Groups::new(
            &mut names,
            observed
                .runners
                .items()
                .iter()
                .map(|r| (r.name.as_str(), r))
                .collect(),
            |a, b| (!a.online, a.id).cmp(&(!b.online, b.id)),
            |a, b| a.id == b.id,
        );

        let queue = match &observed.queued_jobs {
            Seen::Complete { .. } => QueueView::Complete,
            Seen::Partial { .. } => QueueView::Partial,
            Seen::Unavailable => QueueView::Unavailable,
        };
        let queued = observed
            .queued_jobs
            .items()
            .iter()
            .map(|j| (j.id, j.pick()))
            .collect();
        let reads = observed.jobs_read.iter().map(|j| (j.id, j)).collect();

        let mut idx = Index {
            runs,
            ours,
            by_runner,
            names,
            runners,
            queue,
            queued,
            reads,
            waiting: BTreeMap::new(),
            in_progress_on: HashSet::new(),
            invalid: desired.invalid.iter().map(|r| r.key.as_str()).collect(),
            notices: HashMap::new(),
        };
        for n in &observed.notices {
            let slot = idx.notices.entry(n.instance.as_str()).or_insert(n);
            if (n.kind, n.at) < (slot.kind, slot.at) {
                *slot = n;
            }
        }

        // Demand: the label sets of queued jobs, each with the oldest run of ours waiting on
        // such a job. Without a queued list (Gitea 1.24, push mode), the runs' own states.
        let mut waiting: BTreeMap<Vec<&str>, Option<Timestamp>> = BTreeMap::new();
        if queue == QueueView::Complete {
            for j in observed.queued_jobs.items() {
                waiting.entry(label_set(&j.labels)).or_insert(None);
            }
            for read in &observed.jobs_read {
                if let crate::observed::JobFound::Job {
                    action: crate::desired::JobAction::Queued,
                    labels,
                    ..
                } = &read.found
                {
                    waiting.entry(label_set(labels)).or_insert(None);
                }
            }
        }
        let mut in_progress_on = HashSet::new();
        for run in &idx.runs {
            match idx.job_view(run) {
                // A warm run has no job: its runner is supply, never demand.
                JobView::Queued { confirmed }
                    if (confirmed || queue == QueueView::Unavailable) && !run.is_warm() =>
                {
                    let since = waiting.entry(label_set(&run.spec.labels)).or_insert(None);
                    let created = run.spec.created_at;
                    *since = Some(since.map_or(created, |s| s.min(created)));
                }
                JobView::Taken { runner: Some(_) } => {
                    if let Some(name) = taken_by(run, &idx.reads) {
                        in_progress_on.insert(name);
                    }
                }
                _ => {}
            }
        }
        idx.waiting = waiting;
        idx.in_progress_on = in_progress_on;
        idx
    }

    /// The oldest live instance tagged with `runner`.
    pub(super) fn live_instance(&self, runner: &str) -> Option<&'a Instance> {
        live(self.named(runner).0)
    }

    /// The instances tagged with `runner` (live ones oldest first, then the rest) and the
    /// Gitea runners named `runner` (online first), found with one lookup.
    pub(super) fn named(&self, runner: &str) -> (&[&'a Instance], &[&'a ForgeRunner]) {
        match self.names.get(runner) {
            Some(&g) => (self.by_runner.group(g), self.runners.group(g)),
            None => (&[], &[]),
        }
    }

    /// An instance tagged with `runner` that has ended (terminated or shutting down).
    pub(super) fn ended_instance(&self, runner: &str) -> Option<&'a Instance> {
        self.named(runner)
            .0
            .iter()
            .copied()
            .find(|i| !i.state.is_live())
    }

    /// Gitea runners named `runner` (online first), borrowed from the table (no copy per
    /// lookup).
    pub(super) fn runners_named(&self, runner: &str) -> &[&'a ForgeRunner] {
        self.named(runner).1
    }

    /// The state of `run`'s job this pass. The table's state is the last webhook's; where it
    /// still says queued, Gitea's queued list (or a read of the job, for one the list does not
    /// show) confirms it, or tells that the job was taken, finished or re-run since.
    pub(super) fn job_view(&self, run: &DesiredRun) -> JobView {
        match &run.spec.job_state {
            JobState::InProgress { runner } => {
                return JobView::Taken {
                    runner: runner.clone(),
                }
            }
            JobState::Completed { .. } => return JobView::Done,
            JobState::Queued => {}
        }
        let Some(job) = &run.spec.job else {
            return JobView::Queued { confirmed: false };
        };
        if self.queue != QueueView::Complete {
            return JobView::Queued { confirmed: false };
        }
        match self.queued.get(&job.id) {
            Some(&pick) if pick == job.attempt => return JobView::Queued { confirmed: true },
            // Queued for a later pick: ours ran and the job was re-run since.
            Some(&pick) if pick > job.attempt => return JobView::Done,
            _ => {}
        }
        match self
            .reads
            .get(&job.id)
            .map(|r| r.state_for_pick(job.attempt))
        {
            Some(Some(JobState::Queued)) => JobView::Queued { confirmed: true },
            Some(Some(JobState::InProgress { runner })) => JobView::Taken { runner },
            Some(Some(JobState::Completed { .. })) => JobView::Done,
            Some(None) | None => JobView::Unknown,
        }
    }

    /// EC2's advance notice about instance `i`, if any.
    pub(super) fn notice(&self, i: &Instance) -> Option<&'a Notice> {
        self.notices.get(i.id.as_str()).copied()
    }

    /// Whether a runner is (or may be) running a job: Gitea says busy, or it is online and a
    /// webhook or a read of the job says a job is in progress on it (Gitea's busy flag lags
    /// by up to 10 s). A runner that is offline runs nothing, whatever the last webhook said.
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

    /// Whether some waiting job could run on a runner with `labels` (all of its labels are
    /// among the runner's, as Gitea matches).
    pub(super) fn has_demand_for(&self, labels: &[String]) -> bool {
        self.waiting.keys().any(|set| covers(labels, set))
    }

    /// Since when a job a runner with `labels` could serve has been waiting, as far as our
    /// runs tell (the earliest creation of a run of ours for such a job); `None` when no such
    /// job waits or none of them has a run of ours.
    pub(super) fn demand_waiting_since(&self, labels: &[String]) -> Option<Timestamp> {
        self.waiting
            .iter()
            .filter(|(set, _)| covers(labels, set))
            .filter_map(|(_, since)| *since)
            .min()
    }

    /// Whether `id` names a row that did not parse.
    pub(super) fn is_invalid(&self, id: &str) -> bool {
        self.invalid.contains(id)
    }
}

/// The runner a run's job is in progress on, borrowed from the run or from a read of it.
fn taken_by<'a>(run: &'a DesiredRun, reads: &HashMap<i64, &'a JobSeen>) -> Option<&'a str> {
    if let JobState::InProgress { runner: Some(r) } = &run.spec.job_state {
        return Some(r.as_str());
    }
    let job = run.spec.job.as_ref()?;
    match &reads.get(&job.id)?.found {
        crate::observed::JobFound::Job {
            runner: Some(r), ..
        } => Some(r.as_str()),
        crate::observed::JobFound::Job { .. } | crate::observed::JobFound::Missing => None,
    }
}

fn label_set(labels: &[String]) -> Vec<&str> {
    let mut set: Vec<&str> = labels.iter().map(String::as_str).collect();
    set.sort_unstable();
    set.dedup();
    set
}

fn covers(have: &[String], want: &[&str]) -> bool {
    want.iter().all(|l| have.iter().any(|h| h == l))
}

/// The first 32 bytes of a string, zero-padded, as numbers that order as the strings do:
/// where two keys differ, the strings differ the same way; where they are equal, only the
/// whole strings can tell.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SortKey(u128, u128);

impl SortKey {
    fn of(s: &str) -> Self {
        let mut b = [0u8; 32];
        let n = s.len().min(32);
        b[..n].copy_from_slice(&s.as_bytes()[..n]);
        let (hi, lo) = b.split_at(16);
        let word = |half: &[u8]| u128::from_be_bytes(half.try_into().unwrap_or([0; 16]));
        SortKey(word(hi), word(lo))
    }
}

/// The first of an instance group (see [`Index::named`]) if it is live.
pub(super) fn live<'a>(instances: &[&'a Instance]) -> Option<&'a Instance> {
    instances.first().copied().filter(|i| i.state.is_live())
}

/// Items grouped by name, each name's items together in one flat list (no list per name to
/// allocate, follow and free). Group numbers come from a name table shared with other
/// groupings, so one lookup finds a name's group in each.
pub(super) struct Groups<'a, T> {
    /// Every item, grouped by name, each group in the order asked for.
    items: Vec<&'a T>,
    /// Each group's start and end in `items`, by group number.
    ranges: Vec<(u32, u32)>,
}

impl<'a, T> Groups<'a, T> {
    /// Groups `pairs` by name, numbering new names in `names`; within a group, items are
    /// sorted (stably) by `order` and a run of items that are `same` is cut down to its first.
    fn new(
        names: &mut HashMap<&'a str, u32>,
        pairs: Vec<(&'a str, &'a T)>,
        mut order: impl FnMut(&T, &T) -> std::cmp::Ordering,
        mut same: impl FnMut(&T, &T) -> bool,
    ) -> Self {
        let mut counts: Vec<u32> = vec![0; names.len()];
        let mut group_of: Vec<u32> = Vec::with_capacity(pairs.len());
        for (name, _) in &pairs {
            let next = u32::try_from(names.len()).unwrap_or(u32::MAX);
            let g = *names.entry(name).or_insert(next);
            if g == next {
                counts.push(0);
            }
            counts[g as usize] += 1;
            group_of.push(g);
        }
        // Place each item in its group's slot (counting sort, stable), then order each group.
        let mut next: Vec<u32> = Vec::with_capacity(counts.len());
        let mut at = 0u32;
        for c in &counts {
            next.push(at);
            at += c;
        }
        let mut placed: Vec<Option<&T>> = vec![None; pairs.len()];
        for ((_, item), g) in pairs.iter().zip(&group_of) {
            let slot = &mut next[*g as usize];
            placed[*slot as usize] = Some(item);
            *slot += 1;
        }
        let mut items: Vec<&T> = Vec::with_capacity(pairs.len());
        let mut ranges = Vec::with_capacity(counts.len());
        let mut from = 0usize;
        for c in counts {
            let start = items.len();
            items.extend(placed[from..from + c as usize].iter().flatten().copied());
            from += c as usize;
            if c > 1 {
                items[start..].sort_by(|a, b| order(a, b));
                let mut kept = start + 1;
                for k in start + 1..items.len() {
                    if !same(items[kept - 1], items[k]) {
                        items[kept] = items[k];
                        kept += 1;
                    }
                }
                items.truncate(kept);
            }
            let end = items.len();
            ranges.push((
                u32::try_from(start).unwrap_or(u32::MAX),
                u32::try_from(end).unwrap_or(u32::MAX),
            ));
        }
        Groups { items, ranges }
    }

    /// The items of group `g` (none for a group numbered after this grouping was made).
    pub(super) fn group(&self, g: u32) -> &[&'a T] {
        match self.ranges.get(g as usize) {
            Some(&(start, end)) => &self.items[start as usize..end as usize],
            None => &[],
        }
    }

    /// Every item, group by group.
    pub(super) fn all(&self) -> &[&'a T] {
        &self.items
    }
}
