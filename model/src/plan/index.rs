//! Lookup tables built once per pass, so every rule is a map lookup (O(n log n) overall).

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashMap, HashSet, HashTable};

use crate::desired::{DesiredRun, JobState};
use crate::notice::Notice;
use crate::observed::{DesiredView, ForgeRunner, Instance, InstanceState, JobSeen, Observed, Seen};
use crate::plan::{Policy, PoolPolicy};
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
    /// The places in `runs` of the warm runs, in order.
    pub warm: Vec<usize>,
    /// The runner name of each of `runs` (its current attempt's) and its group.
    run_names: Vec<RunName>,
    /// The job view of each of `runs` ([`Index::job_view`]), as the pass begins.
    views: Vec<JobView>,
    /// The text of those runner names, one after the other.
    text: String,
    /// Instances carrying our cluster tag, by id, each with the tags the rules read.
    pub ours: Vec<Ours<'a>>,
    /// Our instances (places in `ours`) by runner-name tag: live ones oldest first, then the
    /// rest.
    pub by_runner: Groups<u32>,
    /// Runner names (EC2 tags and Gitea names) to their group in `by_runner` and `runners`.
    pub names: Names,
    /// Gitea runners by name.
    pub runners: Groups<Reg<'a>>,
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
    /// Since when each disabled runner is known disabled, by Gitea id.
    pub disabled_since: &'a BTreeMap<i64, Timestamp>,
    /// Pools without capacity now, until when ([`Observed::pools_without_capacity`]).
    pub pools_without_capacity: &'a BTreeMap<String, Timestamp>,
    /// When EC2's instance list was read (its read started), when known.
    pub instances_read_at: Option<Timestamp>,
}

impl<'a> Index<'a> {
    pub(super) fn new(
        desired: &'a DesiredView,
        backfilled: &'a [DesiredRun],
        observed: &'a Observed,
        policy: &'a Policy,
    ) -> Self {
        // Each instance's tags are read once, here, in the order the instances sit in memory:
        // the rules then read compact fields rather than walk a map of strings per lookup.
        let mut keyed: Vec<(SortKey, Ours<'a>)> = observed
            .instances
            .items()
            .iter()
            .filter_map(|i| Ours::of(i, policy))
            .map(|o| (SortKey::of(o.inst.id.as_str()), o))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.inst.id.cmp(&b.1.inst.id)));
        // (Keys first: ids whose leading bytes differ are different ids.)
        keyed.dedup_by(|a, b| a.0 == b.0 && a.1.inst.id == b.1.inst.id);
        let mut ours: Vec<Ours<'a>> = keyed.into_iter().map(|(_, o)| o).collect();
        for (k, o) in ours.iter_mut().enumerate() {
            o.at = u32::try_from(k).unwrap_or(u32::MAX);
        }

        let mut names = Names::with_capacity(ours.len() + observed.runners.items().len());
        let by_runner = Groups::new(
            &mut names,
            ours.iter().filter_map(|o| Some((o.name?, o.at))).collect(),
            |&a, &b| {
                let (a, b) = (&ours[a as usize], &ours[b as usize]);
                (!a.state.is_live(), a.launched_at, &a.inst.id).cmp(&(
                    !b.state.is_live(),
                    b.launched_at,
                    &b.inst.id,
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
                .map(|r| (r.name.as_str(), Reg::of(r)))
                .collect(),
            |a, b| (!a.online, a.id).cmp(&(!b.online, b.id)),
            |a, b| a.id == b.id,
        );

        let queue = match &observed.queued_jobs {
            Seen::Complete { .. } => QueueView::Complete,
            Seen::Partial { .. } => QueueView::Partial,
            Seen::Unavailable => QueueView::Unavailable,
        };
        let jobs = Jobs {
            queue,
            queued: observed
                .queued_jobs
                .items()
                .iter()
                .map(|j| (j.id, j.pick()))
                .collect(),
            reads: observed.jobs_read.iter().map(|j| (j.id, j)).collect(),
        };

        // One sweep over the runs, in the order they sit in memory, reads all the index needs
        // of each: its runner name (written into one buffer and looked up in the name table),
        // its sort key, whether it asks for a foreign label, and its job's state this pass
        // with the demand that makes. At 100,000 runs the runs and what they point to do not
        // stay in the cache from one sweep to the next, so each further sweep read them from
        // memory again; the rules then visit the runs oldest first, which jumps about in
        // memory, and read neither the run's id nor the table.
        let runs_total = desired.runs.len() + backfilled.len();
        let mut active: Vec<&DesiredRun> = Vec::with_capacity(runs_total);
        let mut text = String::new();
        let mut named_at: Vec<RunName> = Vec::with_capacity(runs_total);
        let mut keyed: Vec<(Timestamp, SortKey, usize)> = Vec::with_capacity(runs_total);
        let mut views: Vec<JobView> = Vec::with_capacity(runs_total);
        let mut demand = Demand::default();
        for r in desired.runs.iter().chain(backfilled) {
            if r.status.phase.is_final() {
                continue;
            }
            let start = text.len();
            let attempt = r.status.attempt.max(1);
            crate::RunnerName::write(&mut text, &policy.cluster, &r.id, attempt);
            named_at.push(RunName {
                start,
                end: text.len(),
                group: None,
                foreign: policy.is_foreign(&r.spec),
                warm: r.is_warm(),
            });
            keyed.push((r.spec.created_at, SortKey::of(r.id.as_str()), active.len()));
            let view = jobs.view(r);
            demand.add(r, &view, &jobs);
            views.push(view);
            active.push(r);
        }
        // The names looked up in a loop of their own: it reads only the buffer and the name
        // table, which then stay in the cache (in the sweep above, the runs streaming through
        // pushed the table out between lookups).
        for n in &mut named_at {
            n.group = names.get(&text[n.start..n.end]);
        }
        // Sorted by (creation, id) with each id's leading bytes copied beside it, so most
        // comparisons read neither the run nor its id (both elsewhere in memory); ids with
        // different leading bytes differ, so telling duplicates apart reads them only when
        // those bytes are the same.
        keyed.sort_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then_with(|| active[a.2].id.cmp(&active[b.2].id))
        });
        keyed.dedup_by(|a, b| a.1 == b.1 && active[a.2].id == active[b.2].id);
        if keyed.len() < active.len() {
            // The same run listed twice: only the one kept makes demand (rare; read again).
            demand = Demand::default();
            for &(_, _, k) in &keyed {
                demand.add(active[k], &views[k], &jobs);
            }
        }
        let runs: Vec<&DesiredRun> = keyed.iter().map(|&(_, _, k)| active[k]).collect();
        let run_names: Vec<RunName> = keyed.iter().map(|&(_, _, k)| named_at[k]).collect();
        let warm = (0..run_names.len())
            .filter(|&k| run_names[k].warm)
            .collect();
        let views: Vec<JobView> = keyed
            .iter()
            .map(|&(_, _, k)| std::mem::replace(&mut views[k], JobView::Unknown))
            .collect();

        // Demand: the label sets of queued jobs, each with the oldest run of ours waiting on
        // such a job. Without a queued list (Gitea 1.24, push mode), the runs' own states.
        let Demand {
            mut waiting,
            in_progress_on,
        } = demand;
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

        let Jobs {
            queue,
            queued,
            reads,
        } = jobs;
        let mut idx = Index {
            runs,
            warm,
            run_names,
            views,
            text,
            ours,
            by_runner,
            names,
            runners,
            queue,
            queued,
            reads,
            waiting,
            in_progress_on,
            invalid: desired.invalid.iter().map(|r| r.key.as_str()).collect(),
            notices: HashMap::new(),
            disabled_since: &observed.disabled_since,
            pools_without_capacity: &observed.pools_without_capacity,
            instances_read_at: observed.instances_read_at,
        };
        for n in &observed.notices {
            let slot = idx.notices.entry(n.instance.as_str()).or_insert(n);
            if (n.kind, n.at) < (slot.kind, slot.at) {
                *slot = n;
            }
        }
        // What the rules ask of each runner, answered once here rather than per lookup
        // (each answer hashes or compares strings the runner points to).
        let mut regs = std::mem::take(&mut idx.runners.items);
        let mut first: HashMap<i64, u32> = HashMap::with_capacity(regs.len());
        for (k, reg) in regs.iter_mut().enumerate() {
            let k = u32::try_from(k).unwrap_or(u32::MAX);
            reg.slot = *first.entry(reg.id).or_insert(k);
            let r = reg.runner;
            reg.working = r.busy || (r.online && idx.in_progress_on.contains(r.name.as_str()));
            reg.wanted = idx.has_demand_for(&r.labels);
        }
        idx.runners.items = regs;
        idx
    }

    /// The oldest live instance tagged with `runner`.
    pub(super) fn live_instance(&self, runner: &str) -> Option<&Ours<'a>> {
        self.live(self.named(runner).0)
    }

    /// The instances tagged with `runner` (places in `ours`, live ones oldest first, then
    /// the rest) and the Gitea runners named `runner` (online first), found with one lookup.
    pub(super) fn named(&self, runner: &str) -> (&[u32], &[Reg<'a>]) {
        match self.names.get(runner) {
            Some(g) => (self.by_runner.group(g), self.runners.group(g)),
            None => (&[], &[]),
        }
    }

    /// The runner name of the `k`th of `runs` (its current attempt's), with what
    /// [`Index::named`] finds for it.
    pub(super) fn run_named(&self, k: usize) -> (&str, &[u32], &[Reg<'a>]) {
        let n = self.run_names[k];
        let name = &self.text[n.start..n.end];
        match n.group {
            Some(g) => (name, self.by_runner.group(g), self.runners.group(g)),
            None => (name, &[], &[]),
        }
    }

    /// Whether the `k`th of `runs` asks for a label only runners not ours serve, and its
    /// job's state as the pass began ([`Index::job_view`]).
    pub(super) fn run_facts(&self, k: usize) -> (bool, &JobView) {
        (self.run_names[k].foreign, &self.views[k])
    }

    /// The first of an instance group (see [`Index::named`]) if it is live.
    pub(super) fn live(&self, instances: &[u32]) -> Option<&Ours<'a>> {
        instances
            .first()
            .map(|&k| &self.ours[k as usize])
            .filter(|i| i.state.is_live())
    }

    /// An instance tagged with `runner` that has ended (terminated or shutting down).
    pub(super) fn ended_instance(&self, runner: &str) -> Option<&Ours<'a>> {
        self.named(runner)
            .0
            .iter()
            .map(|&k| &self.ours[k as usize])
            .find(|i| !i.state.is_live())
    }

    /// Gitea runners named `runner` (online first), borrowed from the table (no copy per
    /// lookup).
    pub(super) fn runners_named(&self, runner: &str) -> &[Reg<'a>] {
        self.named(runner).1
    }

    /// The state of `run`'s job this pass. The table's state is the last webhook's; where it
    /// still says queued, Gitea's queued list (or a read of the job, for one the list does not
    /// show) confirms it, or tells that the job was taken, finished or re-run since.
    pub(super) fn job_view(&self, run: &DesiredRun) -> JobView {
        job_view(self.queue, &self.queued, &self.reads, run)
    }

    /// EC2's advance notice about instance `i`, if any.
    pub(super) fn notice(&self, i: &Instance) -> Option<&'a Notice> {
        if self.notices.is_empty() {
            return None; // the usual case: no id to hash
        }
        self.notices.get(i.id.as_str()).copied()
    }

    /// Whether a runner is (or may be) running a job: Gitea says busy, or it is online and a
    /// webhook or a read of the job says a job is in progress on it (Gitea's busy flag lags
    /// by up to 10 s). A runner that is offline runs nothing, whatever the last webhook said.
    pub(super) fn is_busy(&self, r: &Reg) -> bool {
        r.working
    }

    /// Whether any runner called `name` is busy.
    pub(super) fn is_busy_name(&self, name: &str) -> bool {
        self.runners_named(name).iter().any(|r| self.is_busy(r))
    }

    /// Since when the runner with Gitea id `id` is known to be disabled, if known.
    pub(super) fn disabled_since(&self, id: i64) -> Option<Timestamp> {
        self.disabled_since.get(&id).copied()
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

/// [`Index::job_view`] of `run`, given what the queued-jobs list can tell (`queue`), the
/// queued jobs' picks by id and the jobs read one by one.
fn job_view(
    queue: QueueView,
    queued: &HashMap<i64, u32>,
    reads: &HashMap<i64, &JobSeen>,
    run: &DesiredRun,
) -> JobView {
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
    if queue != QueueView::Complete {
        return JobView::Queued { confirmed: false };
    }
    match queued.get(&job.id) {
        Some(&pick) if pick == job.attempt => return JobView::Queued { confirmed: true },
        // Queued for a later pick: ours ran and the job was re-run since.
        Some(&pick) if pick > job.attempt => return JobView::Done,
        _ => {}
    }
    match reads.get(&job.id).map(|r| r.state_for_pick(job.attempt)) {
        Some(Some(JobState::Queued)) => JobView::Queued { confirmed: true },
        Some(Some(JobState::InProgress { runner })) => JobView::Taken { runner },
        Some(Some(JobState::Completed { .. })) => JobView::Done,
        Some(None) | None => JobView::Unknown,
    }
}

/// What the queued-jobs observation says of jobs, for [`job_view`] while the index is built.
struct Jobs<'a> {
    queue: QueueView,
    queued: HashMap<i64, u32>,
    reads: HashMap<i64, &'a JobSeen>,
}

impl Jobs<'_> {
    fn view(&self, run: &DesiredRun) -> JobView {
        job_view(self.queue, &self.queued, &self.reads, run)
    }
}

/// The demand the runs make: the label sets their waiting jobs ask for, each with the
/// earliest creation of such a run, and the runners their jobs are in progress on.
#[derive(Default)]
struct Demand<'a> {
    waiting: BTreeMap<Vec<&'a str>, Option<Timestamp>>,
    in_progress_on: HashSet<&'a str>,
}

impl<'a> Demand<'a> {
    /// Adds `run`'s, whose job is as `view` says. Which runs add theirs in which order does
    /// not change the result.
    fn add(&mut self, run: &'a DesiredRun, view: &JobView, jobs: &Jobs<'a>) {
        match view {
            // A warm run has no job: its runner is supply, never demand.
            JobView::Queued { confirmed }
                if (*confirmed || jobs.queue == QueueView::Unavailable) && !run.is_warm() =>
            {
                let since = self
                    .waiting
                    .entry(label_set(&run.spec.labels))
                    .or_insert(None);
                let created = run.spec.created_at;
                *since = Some(since.map_or(created, |s| s.min(created)));
            }
            JobView::Taken { runner: Some(_) } => {
                if let Some(name) = taken_by(run, &jobs.reads) {
                    self.in_progress_on.insert(name);
                }
            }
            _ => {}
        }
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

/// Where a run's runner name is in [`Index::text`], and its group in [`Index::names`].
#[derive(Clone, Copy)]
struct RunName {
    start: usize,
    end: usize,
    group: Option<u32>,
    /// Whether the run asks for a label only runners not ours serve (and names no pool).
    foreign: bool,
    /// Whether it is a warm run.
    warm: bool,
}

/// A Gitea runner with what the rules ask of it, answered once per pass (see
/// [`Index::is_busy`] and [`Index::has_demand_for`]). The runner itself is at hand through
/// `Deref`.
#[derive(Clone, Copy)]
pub(super) struct Reg<'a> {
    /// The runner.
    pub runner: &'a ForgeRunner,
    /// Its id.
    pub id: i64,
    /// Online, as listed.
    pub online: bool,
    /// Disabled, as listed.
    pub disabled: bool,
    /// Whether it is (or may be) running a job ([`Index::is_busy`]).
    pub working: bool,
    /// Whether some waiting job could run on it ([`Index::has_demand_for`] its labels).
    pub wanted: bool,
    /// The place in [`Groups::all`] of the first runner listed with its id: the same for
    /// every runner with this id.
    pub slot: u32,
}

impl<'a> Reg<'a> {
    fn of(r: &'a ForgeRunner) -> Self {
        Reg {
            runner: r,
            id: r.id,
            online: r.online,
            disabled: r.disabled,
            working: r.busy,
            wanted: false,
            slot: 0,
        }
    }
}

impl std::ops::Deref for Reg<'_> {
    type Target = ForgeRunner;

    fn deref(&self) -> &ForgeRunner {
        self.runner
    }
}

/// An instance of ours with what the rules read of it, copied out of the instance and its
/// tag map (a tree of separately allocated strings) once per pass. The instance itself is
/// still at hand (through `Deref`) for what only some rules read.
#[derive(Clone, Copy)]
pub(super) struct Ours<'a> {
    /// The instance.
    pub inst: &'a Instance,
    /// Its state.
    pub state: InstanceState,
    /// When EC2 launched it.
    pub launched_at: Timestamp,
    /// The configured pool its pool tag names, if any.
    pub policy_pool: Option<&'a PoolPolicy>,
    /// Its runner-name tag.
    pub name: Option<&'a str>,
    /// Its run-id tag, as written.
    pub run_tag: Option<&'a str>,
    /// Its place in [`Index::ours`].
    pub at: u32,
}

impl<'a> Ours<'a> {
    /// The compact form of `i`, if it carries `policy`'s cluster tag; every tag is looked
    /// at once.
    fn of(i: &'a Instance, policy: &'a Policy) -> Option<Self> {
        let (mut cluster, mut pool, mut name, mut run_tag) = (None, None, None, None);
        for (k, v) in &i.tags {
            match k.as_str() {
                crate::tags::CLUSTER => cluster = Some(v.as_str()),
                crate::tags::POOL => pool = Some(v.as_str()),
                crate::tags::RUNNER_NAME => name = Some(v.as_str()),
                crate::tags::RUN_ID => run_tag = Some(v.as_str()),
                _ => {}
            }
        }
        if cluster != Some(policy.cluster.as_str()) {
            return None;
        }
        Some(Ours {
            inst: i,
            state: i.state,
            launched_at: i.launched_at,
            policy_pool: pool.and_then(|p| policy.pool(p)),
            name,
            run_tag,
            at: 0,
        })
    }
}

impl std::ops::Deref for Ours<'_> {
    type Target = Instance;

    fn deref(&self) -> &Instance {
        self.inst
    }
}

/// Runner names, each numbered once (its group in [`Index::by_runner`] and
/// [`Index::runners`]), in the order first seen.
///
/// Each name is copied once into one buffer, in group order, and the table holds only group
/// numbers (4 bytes each): telling a name found from one that merely shares its hash reads
/// that buffer and the small table, not a string somewhere in the inputs. At 100,000 runs
/// the names of a `HashMap<&str, u32>` sat in as many allocations all over the observation,
/// and each lookup missed the cache up to three times (control bytes, bucket, the string).
pub(super) struct Names {
    /// Group numbers, found by the hash of their name.
    table: HashTable<u32>,
    /// Every group's name, one after the other, by group number.
    text: String,
    /// Where each group's name ends in `text` (it starts where the previous one ends).
    ends: Vec<usize>,
    /// The keyed hash of the table (the one std's and hashbrown's maps use).
    hasher: DefaultHashBuilder,
}

impl Names {
    fn with_capacity(n: usize) -> Self {
        Names {
            table: HashTable::with_capacity(n),
            text: String::new(),
            ends: Vec::with_capacity(n),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// The name of group `g`.
    fn name_in<'t>(text: &'t str, ends: &[usize], g: u32) -> &'t str {
        let g = g as usize;
        let start = if g == 0 { 0 } else { ends[g - 1] };
        &text[start..ends[g]]
    }

    /// The group of `name`, if it was seen.
    pub(super) fn get(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.table
            .find(hash, |&g| Self::name_in(&self.text, &self.ends, g) == name)
            .copied()
    }

    /// The group of `name`, numbered next if it is new.
    fn intern(&mut self, name: &str) -> u32 {
        let Names {
            table,
            text,
            ends,
            hasher,
        } = self;
        let hash = hasher.hash_one(name);
        let entry = table.entry(
            hash,
            |&g| Self::name_in(text, ends, g) == name,
            |&g| hasher.hash_one(Self::name_in(text, ends, g)),
        );
        match entry {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(v) => {
                let g = u32::try_from(ends.len()).unwrap_or(u32::MAX);
                text.push_str(name);
                ends.push(text.len());
                v.insert(g);
                g
            }
        }
    }

    /// How many names were seen.
    fn len(&self) -> usize {
        self.ends.len()
    }
}

/// Items grouped by name, each name's items together in one flat list (no list per name to
/// allocate, follow and free). Group numbers come from a name table shared with other
/// groupings, so one lookup finds a name's group in each.
pub(super) struct Groups<T> {
    /// Every item, grouped by name, each group in the order asked for.
    pub(super) items: Vec<T>,
    /// Each group's start and end in `items`, by group number.
    ranges: Vec<(u32, u32)>,
}

impl<T: Copy> Groups<T> {
    /// Groups `pairs` by name, numbering new names in `names`; within a group, items are
    /// sorted (stably) by `order` and a run of items that are `same` is cut down to its first.
    fn new(
        names: &mut Names,
        pairs: Vec<(&str, T)>,
        mut order: impl FnMut(&T, &T) -> std::cmp::Ordering,
        mut same: impl FnMut(&T, &T) -> bool,
    ) -> Self {
        let mut counts: Vec<u32> = vec![0; names.len()];
        let mut group_of: Vec<u32> = Vec::with_capacity(pairs.len());
        for (name, _) in &pairs {
            let g = names.intern(name);
            if g as usize == counts.len() {
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
        let mut placed: Vec<Option<T>> = vec![None; pairs.len()];
        for ((_, item), g) in pairs.iter().zip(&group_of) {
            let slot = &mut next[*g as usize];
            placed[*slot as usize] = Some(*item);
            *slot += 1;
        }
        let mut items: Vec<T> = Vec::with_capacity(pairs.len());
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
                    if !same(&items[kept - 1], &items[k]) {
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
    pub(super) fn group(&self, g: u32) -> &[T] {
        match self.ranges.get(g as usize) {
            Some(&(start, end)) => &self.items[start as usize..end as usize],
            None => &[],
        }
    }

    /// Every item, group by group.
    pub(super) fn all(&self) -> &[T] {
        &self.items
    }
}
