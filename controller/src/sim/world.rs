//! The simulated world: Gitea's queue and runners, EC2's instances, the runner processes on
//! them, and everything that goes wrong. One value under one lock, moved forward by timed
//! events in a fixed order, so a seed always gives the same history.
//!
//! Gitea's rules (see `wiki/Simulation.md` for the sources): a runner takes the oldest
//! waiting job whose labels are all among its own; runners are interchangeable; a runner is
//! online while it contacted Gitea within 60 s and busy while it reported a task within 10 s;
//! an ephemeral runner is deleted when its task ends; a task with no update for 10 minutes is
//! failed by a cron that runs every 5 minutes; a re-run resets the same job row to waiting
//! without raising its `run_attempt` (Gitea 1.24 – 1.26).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use model::observed::{ForgeRunner, Instance, InstanceState, Lifecycle, SPOT_INTERRUPTION};
use model::{InstanceId, Timestamp};
use rand::rngs::StdRng;
use rand::Rng;
use serde::Serialize;

use super::faults::Faults;
use super::workload::WorkJob;

/// act_runner asks for a task every 2 s while idle.
pub(crate) const POLL_MS: i64 = 2_000;
/// act_runner (v0.4+) reports a running task every 5 s.
pub(crate) const HEARTBEAT_MS: i64 = 5_000;
/// Gitea shows a runner offline once it has not been in contact for 60 s.
pub(crate) const OFFLINE_MS: i64 = 60_000;
/// Gitea shows a runner busy while it reported a task within 10 s.
pub(crate) const BUSY_MS: i64 = 10_000;
/// `[actions] ZOMBIE_TASK_TIMEOUT`: a task with no update this long is failed.
pub(crate) const ZOMBIE_MS: i64 = 600_000;
/// The `stop_zombie_tasks` cron runs this often.
pub(crate) const ZOMBIE_CRON_MS: i64 = 300_000;
/// A terminated instance stays in DescribeInstances about an hour.
pub(crate) const FORGET_MS: i64 = 3_600_000;
/// How often the queue and the fleet are sampled for the report's plots.
pub(crate) const SAMPLE_MS: i64 = 60_000;

/// Where in a launch a controller is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KillPoint {
    /// Right after the claim was written.
    AfterClaim,
    /// Right after Gitea registered the runner.
    AfterRegister,
    /// Right after RunInstances started the instance, before the answer arrived.
    AfterRunInstances,
    /// Before the instance id was recorded.
    BeforeRecord,
}

impl KillPoint {
    pub(crate) const ALL: [KillPoint; 4] = [
        KillPoint::AfterClaim,
        KillPoint::AfterRegister,
        KillPoint::AfterRunInstances,
        KillPoint::BeforeRecord,
    ];
}

#[derive(Debug, Clone)]
pub(crate) enum Event {
    Arrive(usize),
    Deliver { body: String, tries: u32 },
    Running(String),
    AgentStart(String),
    Poll(String),
    JobEnd(String, i64),
    GoOffline(String),
    Hang(String),
    PowerOff(String),
    Terminated(String),
    Forget(String),
    SpotInterrupt(String),
    ZombieCron,
    Rerun(i64),
    Sample,
    ArmKill(KillPoint),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobStatus {
    Queued,
    Running,
    Done,
}

#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub id: i64,
    pub run_id: i64,
    pub name: String,
    pub repo: String,
    pub labels: Vec<String>,
    pub status: JobStatus,
    pub attempt: u32,
    pub updated: i64,
    pub created: i64,
    pub duration: i64,
    pub outcome: String,
    pub runner_name: Option<String>,
    pub runner: Option<i64>,
    pub started: Option<i64>,
    pub stalled_since: Option<i64>,
    pub conclusion: Option<String>,
    pub reruns_left: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Runner {
    pub id: i64,
    pub name: String,
    pub labels: Vec<String>,
    pub ephemeral: bool,
    pub disabled: bool,
    /// Polling or reporting since then (ms); `None` while silent.
    pub contact: Option<i64>,
    pub last_online: i64,
    /// Reporting a task since then (ms).
    pub active: Option<i64>,
    pub last_active: i64,
    pub task: Option<i64>,
    pub instance: Option<String>,
    pub foreign: bool,
}

impl Runner {
    fn seen_online(&self, now: i64) -> i64 {
        match self.contact {
            Some(s) => s + (now - s) / POLL_MS * POLL_MS,
            None => self.last_online,
        }
    }

    fn seen_active(&self, now: i64) -> i64 {
        match self.active {
            Some(s) if now >= s => s + (now - s) / HEARTBEAT_MS * HEARTBEAT_MS,
            _ => self.last_active,
        }
    }

    pub(crate) fn online(&self, now: i64) -> bool {
        let t = self.seen_online(now);
        t > 0 && now - t < OFFLINE_MS
    }

    pub(crate) fn busy(&self, now: i64) -> bool {
        let t = self.seen_active(now);
        t > 0 && now - t < BUSY_MS
    }

    fn go_silent(&mut self, now: i64) {
        self.last_online = self.seen_online(now);
        self.contact = None;
        self.stop_active(now);
    }

    fn stop_active(&mut self, now: i64) {
        self.last_active = self.seen_active(now);
        self.active = None;
    }

    pub(crate) fn view(&self, now: i64) -> ForgeRunner {
        ForgeRunner {
            id: self.id,
            name: self.name.clone(),
            online: self.online(now),
            busy: self.busy(now),
            labels: self.labels.clone(),
            ephemeral: self.ephemeral,
            disabled: self.disabled,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Normal,
    NeverBoot,
    Stuck,
    Hang,
    OfflineMidJob,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Agent {
    Off,
    Polling,
    Working(i64),
    Frozen,
    Gone,
}

/// What an instance's time is spent on, for the cost split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bucket {
    Booting = 0,
    Idle = 1,
    Useful = 2,
    Orphaned = 3,
}

#[derive(Debug, Clone)]
pub(crate) struct Inst {
    pub id: String,
    /// Built once at launch; every listing shares it.
    pub tags: model::tags::Tags,
    pub lifecycle: Lifecycle,
    pub itype: String,
    pub zone: String,
    pub state: InstanceState,
    pub reason: Option<String>,
    pub launched: i64,
    pub visible_at: i64,
    pub fate: Fate,
    pub agent: Agent,
    /// The job its runner took, once it took one (an ephemeral runner takes one only).
    pub took: Option<i64>,
    pub runner: Option<i64>,
    pub runner_name: String,
    pub labels: Vec<String>,
    pub ours: bool,
    pub bucket: Option<Bucket>,
    pub since: i64,
    pub price: f64,
}

impl Inst {
    pub(crate) fn view(&self, epoch: Timestamp) -> Instance {
        Instance {
            id: InstanceId::new(self.id.clone()),
            state: self.state,
            state_reason: self.reason.clone(),
            launched_at: Timestamp::from_millis(epoch.as_millis() + self.launched),
            lifecycle: self.lifecycle,
            instance_type: self.itype.clone(),
            zone: self.zone.clone(),
            tags: self.tags.clone(),
        }
    }

    pub(crate) fn live(&self) -> bool {
        matches!(self.state, InstanceState::Pending | InstanceState::Running)
    }
}

/// A `queued` webhook a baseline received: the job and its labels.
#[derive(Debug, Clone)]
pub(crate) struct Hook {
    pub job: i64,
    /// The pick the job waits for (its `run_attempt` plus one on Gitea 1.24 – 1.26).
    pub pick: u32,
    pub labels: Vec<String>,
}

/// One sample of the queue and the fleet, for the plots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Seconds since the start.
    pub t: i64,
    /// Jobs waiting for a runner.
    pub queued: u32,
    /// Our instances starting.
    pub pending: u32,
    /// Our instances running a job.
    pub busy: u32,
    /// Our instances running without a job (booting, idle, orphaned).
    pub idle: u32,
}

/// A broken promise (a busy kill or a double launch), with what the world knew when it
/// happened and what the controller planned in that pass, and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Incident {
    /// `busy-terminate` (an instance terminated while its runner ran a job),
    /// `busy-deregister` (a runner deleted while it ran a job) or `double-launch`.
    pub kind: String,
    /// Virtual seconds since the start.
    pub at_s: f64,
    /// The controller (0 or 1) whose call it was, when a controller's.
    pub controller: Option<usize>,
    /// The instance terminated or launched.
    pub instance: Option<String>,
    /// The run the instance was tagged with (or launched for).
    pub run: Option<String>,
    /// The runner's name.
    pub runner: Option<String>,
    /// Gitea's runner id.
    pub runner_id: Option<i64>,
    /// The job the runner was running, as the run id of that pick.
    pub job_run: Option<String>,
    /// What the world knew: when the job was taken, what Gitea showed of the runner, the
    /// other live instance of a double launch.
    pub world: String,
    /// What the controller's pass saw of the runner and the instance.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seen: Vec<String>,
    /// The actions of that pass's plan about this run, instance or runner (JSON, with the
    /// planner's reason).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<String>,
    /// Whether `seen` and `planned` were filled in (the pass finished; a killed controller's
    /// pass never does).
    #[serde(skip)]
    pub explained: bool,
}

impl Incident {
    /// One line for the text report.
    #[must_use]
    pub fn to_line(&self) -> String {
        let mut s = format!("{} at {:.1}s", self.kind, self.at_s);
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                s.push_str(&format!(", {k} {v}"));
            }
        };
        add("controller", self.controller.map(|c| c.to_string()));
        add("instance", self.instance.clone());
        add("run", self.run.clone());
        add("runner", self.runner.clone());
        add("runner id", self.runner_id.map(|i| i.to_string()));
        add("running", self.job_run.clone());
        s.push_str(&format!("\n      world: {}", self.world));
        for x in &self.seen {
            s.push_str(&format!("\n      seen: {x}"));
        }
        for x in &self.planned {
            s.push_str(&format!("\n      planned: {x}"));
        }
        s
    }
}

/// What the world counted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats {
    pub waits: Vec<i64>,
    pub picks_wanted: u64,
    pub completed: u64,
    pub zombie_failed: u64,
    pub double_launched: u64,
    pub busy_kills: u64,
    pub foreign_touched: u64,
    pub instances_launched: u64,
    pub spot_interrupted: u64,
    pub kills: u64,
    pub secs: [i64; 4],
    pub cost: f64,
    pub api: BTreeMap<String, u64>,
    pub faults: BTreeMap<String, u64>,
    pub passes: u64,
    pub largest_plan: usize,
    pub samples: Vec<Sample>,
    pub webhooks_sent: u64,
    pub webhooks_refused: u64,
    pub incidents: Vec<Incident>,
}

/// Work the loop must do outside the lock (an async call into the webhook receiver).
#[derive(Debug, Clone)]
pub(crate) enum Effect {
    Deliver { body: String, tries: u32 },
}

/// The whole simulated world (see the module's doc), kept under one lock in the ports' `Ctx`.
pub(crate) struct SimWorld {
    pub rng: StdRng,
    pub faults: Faults,
    pub cluster: String,
    pub epoch: Timestamp,
    pub workload: Vec<WorkJob>,
    pub arrivals_left: usize,
    events: BTreeMap<(i64, u64), Event>,
    seq: u64,
    pub jobs: BTreeMap<i64, Job>,
    queue: BTreeSet<(i64, i64)>,
    pub runners: BTreeMap<i64, Runner>,
    next_runner: i64,
    pub instances: BTreeMap<String, Inst>,
    pub by_token: BTreeMap<String, String>,
    next_instance: u64,
    pub gitea_down: Vec<(i64, i64)>,
    pub dynamo_down: Vec<(i64, i64)>,
    pub kills_armed: VecDeque<KillPoint>,
    pub kill_request: Option<usize>,
    pub pending_reruns: u32,
    pub stats: Stats,
    /// Pool name to the labels its runners register with (self-registration).
    pub pool_labels: BTreeMap<String, Vec<String>>,
    /// `queued` webhooks delivered to a baseline policy, not yet read.
    pub inbox: Vec<Hook>,
}

impl SimWorld {
    pub(crate) fn new(
        rng: StdRng,
        faults: Faults,
        cluster: &str,
        epoch: Timestamp,
        workload: Vec<WorkJob>,
        pool_labels: BTreeMap<String, Vec<String>>,
    ) -> Self {
        let arrivals_left = workload.len();
        SimWorld {
            rng,
            faults,
            cluster: cluster.to_owned(),
            epoch,
            workload,
            arrivals_left,
            events: BTreeMap::new(),
            seq: 0,
            jobs: BTreeMap::new(),
            queue: BTreeSet::new(),
            runners: BTreeMap::new(),
            next_runner: 1,
            instances: BTreeMap::new(),
            by_token: BTreeMap::new(),
            next_instance: 1,
            gitea_down: Vec::new(),
            dynamo_down: Vec::new(),
            kills_armed: VecDeque::new(),
            kill_request: None,
            pending_reruns: 0,
            stats: Stats::default(),
            pool_labels,
            inbox: Vec::new(),
        }
    }

    // ---- time and events ----

    pub(crate) fn schedule(&mut self, at: i64, event: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    pub(crate) fn next_event_at(&self) -> Option<i64> {
        self.events.keys().next().map(|k| k.0)
    }

    pub(crate) fn pop_due(&mut self, now: i64) -> Option<Event> {
        let key = *self.events.keys().next()?;
        if key.0 > now {
            return None;
        }
        self.events.remove(&key)
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_range(0.0..1.0) < p
    }

    pub(crate) fn between(&mut self, lo_ms: i64, hi_ms: i64) -> i64 {
        if hi_ms <= lo_ms {
            lo_ms
        } else {
            self.rng.random_range(lo_ms..=hi_ms)
        }
    }

    pub(crate) fn fault(&mut self, kind: &str) {
        *self.stats.faults.entry(kind.to_owned()).or_default() += 1;
    }

    pub(crate) fn api(&mut self, kind: &str) {
        *self.stats.api.entry(kind.to_owned()).or_default() += 1;
    }

    pub(crate) fn in_window(windows: &[(i64, i64)], now: i64) -> bool {
        windows.iter().any(|(a, b)| (*a..*b).contains(&now))
    }

    /// Whether the run is over: every job arrived, none waits or runs, no re-run pending.
    pub(crate) fn settled(&self) -> bool {
        self.arrivals_left == 0
            && self.pending_reruns == 0
            && self.jobs.values().all(|j| j.status == JobStatus::Done)
    }

    // ---- accounting ----

    fn switch(&mut self, id: &str, now: i64, to: Option<Bucket>) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        if let Some(b) = inst.bucket {
            let dt = (now - inst.since).max(0);
            self.stats.secs[b as usize] += dt;
            #[allow(clippy::cast_precision_loss)]
            let cost = dt as f64 / 3_600_000.0 * inst.price;
            self.stats.cost += cost;
        }
        inst.bucket = to;
        inst.since = now;
    }

    /// Closes every open accounting period at the end of the run.
    pub(crate) fn close_books(&mut self, now: i64) {
        let ids: Vec<String> = self.instances.keys().cloned().collect();
        for id in ids {
            let ours = self.instances.get(&id).is_some_and(|i| i.ours);
            if ours {
                self.switch(&id, now, None);
            }
        }
    }

    // ---- Gitea ----

    /// A new job arrives (index into the workload).
    fn arrive(&mut self, index: usize, now: i64) {
        self.arrivals_left = self.arrivals_left.saturating_sub(1);
        let Some(w) = self.workload.get(index).cloned() else {
            return;
        };
        let id = i64::try_from(index).unwrap_or(i64::MAX - 1) + 1;
        let job = Job {
            id,
            run_id: id / 4 + 1,
            name: format!("job-{id}"),
            repo: format!("acme/repo-{}", id % 7),
            labels: w.labels,
            status: JobStatus::Queued,
            attempt: 0,
            updated: now,
            created: now,
            duration: w.duration_ms,
            outcome: w.outcome,
            runner_name: None,
            runner: None,
            started: None,
            stalled_since: None,
            conclusion: None,
            reruns_left: 1,
        };
        self.queue.insert((now, id));
        self.jobs.insert(id, job);
        self.stats.picks_wanted += 1;
        self.webhook(id, "queued", now);
    }

    /// Sends a `workflow_job` webhook for `job`, through the webhook faults.
    fn webhook(&mut self, job_id: i64, action: &str, now: i64) {
        let Some(job) = self.jobs.get(&job_id) else {
            return;
        };
        let body = hook_body(job, action, self.epoch);
        self.stats.webhooks_sent += 1;
        if self.chance(self.faults.webhook_drop) {
            self.fault("webhook-dropped");
            return;
        }
        let copies = if self.chance(self.faults.webhook_duplicate) {
            self.fault("webhook-duplicated");
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = self.between(50, 1_500);
            if self.chance(self.faults.webhook_delay) {
                self.fault("webhook-delayed");
                delay += self.between(1_000, 120_000);
            }
            self.schedule(
                now + delay,
                Event::Deliver {
                    body: body.clone(),
                    tries: 0,
                },
            );
        }
    }

    /// The oldest waiting job whose labels are all among `labels`.
    fn oldest_fitting(&self, labels: &[String]) -> Option<i64> {
        self.queue.iter().map(|(_, id)| *id).find(|id| {
            self.jobs
                .get(id)
                .is_some_and(|j| j.labels.iter().all(|l| labels.contains(l)))
        })
    }

    /// Registers a runner row (Register, or a self-registering runner).
    pub(crate) fn register(&mut self, name: &str, labels: &[String], ephemeral: bool) -> i64 {
        let id = self.next_runner;
        self.next_runner += 1;
        self.runners.insert(
            id,
            Runner {
                id,
                name: name.to_owned(),
                labels: labels.to_vec(),
                ephemeral,
                disabled: false,
                contact: None,
                last_online: 0,
                active: None,
                last_active: 0,
                task: None,
                instance: None,
                foreign: false,
            },
        );
        id
    }

    /// Gitea stops hearing about a task: the zombie cron fails it later.
    fn stall(&mut self, job_id: i64, now: i64) {
        if let Some(j) = self.jobs.get_mut(&job_id) {
            if j.status == JobStatus::Running && j.stalled_since.is_none() {
                j.stalled_since = Some(now);
            }
        }
    }

    fn zombie_cron(&mut self, now: i64) {
        let dead: Vec<i64> = self
            .jobs
            .values()
            .filter(|j| {
                j.status == JobStatus::Running
                    && j.stalled_since.is_some_and(|s| now - s >= ZOMBIE_MS)
            })
            .map(|j| j.id)
            .collect();
        for id in dead {
            self.stats.zombie_failed += 1;
            let runner = self.jobs.get(&id).and_then(|j| j.runner);
            if let Some(j) = self.jobs.get_mut(&id) {
                j.status = JobStatus::Done;
                j.conclusion = Some("failure".into());
            }
            if let Some(r) = runner.and_then(|r| self.runners.get_mut(&r)) {
                if r.task == Some(id) {
                    r.task = None;
                }
            }
            self.webhook(id, "completed", now);
        }
        self.schedule(now + ZOMBIE_CRON_MS, Event::ZombieCron);
    }

    fn rerun(&mut self, job_id: i64, now: i64) {
        self.pending_reruns = self.pending_reruns.saturating_sub(1);
        let Some(j) = self.jobs.get_mut(&job_id) else {
            return;
        };
        if j.status != JobStatus::Done {
            return;
        }
        // Gitea 1.24 – 1.26: the same row waits again; run_attempt is raised on the next pick.
        j.status = JobStatus::Queued;
        j.updated = now;
        j.runner = None;
        j.runner_name = None;
        j.stalled_since = None;
        j.conclusion = None;
        j.outcome = "success".into();
        self.queue.insert((now, job_id));
        self.stats.picks_wanted += 1;
        self.webhook(job_id, "queued", now);
    }

    // ---- EC2 ----

    /// Starts an instance (RunInstances succeeded on an offering).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_instance(
        &mut self,
        now: i64,
        tags: BTreeMap<String, String>,
        lifecycle: Lifecycle,
        itype: &str,
        subnet: &str,
        runner_name: &str,
        runner: Option<i64>,
        labels: Vec<String>,
        ours: bool,
    ) -> String {
        let id = format!("i-{:017x}", self.next_instance);
        self.next_instance += 1;
        let fate = if ours {
            let f = &self.faults;
            let edges = [
                (f.never_boot, Fate::NeverBoot),
                (f.runner_stuck, Fate::Stuck),
                (f.runner_hang, Fate::Hang),
                (f.runner_offline, Fate::OfflineMidJob),
            ];
            let x = self.rng.random_range(0.0..1.0);
            let mut edge = 0.0;
            let mut fate = Fate::Normal;
            for (p, kind) in edges {
                edge += p;
                if x < edge {
                    fate = kind;
                    break;
                }
            }
            fate
        } else {
            Fate::Normal
        };
        let lag = i64::try_from(self.faults.list_lag_s).unwrap_or(0) * 1000;
        let visible_at = now + self.between(0, lag);
        if ours && visible_at > now {
            self.fault("ec2-list-lag");
        }
        let price = price_per_hour(itype, lifecycle);
        let inst = Inst {
            id: id.clone(),
            tags: tags.into(),
            lifecycle,
            itype: itype.to_owned(),
            zone: format!("{subnet}-zone"),
            state: InstanceState::Pending,
            reason: None,
            launched: now,
            visible_at,
            fate,
            agent: Agent::Off,
            took: None,
            runner,
            runner_name: runner_name.to_owned(),
            labels,
            ours,
            bucket: ours.then_some(Bucket::Booting),
            since: now,
            price,
        };
        self.instances.insert(id.clone(), inst);
        if ours {
            self.stats.instances_launched += 1;
        }
        let to_running = self.between(5_000, 15_000);
        self.schedule(now + to_running, Event::Running(id.clone()));
        let (lo, hi) = boot_delay_ms(itype);
        let boot = self.between(lo, hi);
        self.schedule(now + boot, Event::AgentStart(id.clone()));
        if lifecycle == Lifecycle::Spot && self.faults.spot_per_hour > 0.0 {
            let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
            let hours = -u.ln() / self.faults.spot_per_hour;
            if hours < 12.0 {
                #[allow(clippy::cast_possible_truncation)]
                let at = now + (hours * 3_600_000.0) as i64;
                self.schedule(at, Event::SpotInterrupt(id.clone()));
            }
        }
        id
    }

    /// The instance stops (terminated by someone, interrupted, or powered off): its runner
    /// process dies with it.
    fn end_instance(&mut self, id: &str, now: i64, state: InstanceState, reason: Option<&str>) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        if !inst.live() {
            return;
        }
        inst.state = state;
        inst.reason = reason.map(str::to_owned);
        let agent = inst.agent;
        inst.agent = Agent::Gone;
        let runner = inst.runner;
        if let Agent::Working(job) = agent {
            self.stall(job, now);
        }
        if let Some(r) = runner.and_then(|r| self.runners.get_mut(&r)) {
            r.go_silent(now);
        }
        self.switch(id, now, None);
        if state == InstanceState::ShuttingDown {
            let d = self.between(20_000, 60_000);
            self.schedule(now + d, Event::Terminated(id.to_owned()));
        } else {
            self.schedule(now + FORGET_MS, Event::Forget(id.to_owned()));
        }
    }

    /// TerminateInstances on one id, as the controller (`ctl`) asks. Counts what it should
    /// never do.
    pub(crate) fn terminate(&mut self, id: &str, now: i64, ctl: Option<usize>) {
        let Some(inst) = self.instances.get(id) else {
            return;
        };
        if !inst.ours {
            self.stats.foreign_touched += 1;
        }
        if inst.live() {
            if let Agent::Working(job) = inst.agent {
                self.stats.busy_kills += 1;
                let incident = Incident {
                    kind: "busy-terminate".into(),
                    instance: Some(id.to_owned()),
                    run: inst.tags.get(model::tags::RUN_ID).cloned(),
                    runner: Some(inst.runner_name.clone()),
                    runner_id: inst.runner,
                    ..Incident::default()
                };
                self.incident(incident, ctl, Some(job), now);
            }
        }
        self.end_instance(id, now, InstanceState::ShuttingDown, None);
    }

    /// DeleteRunner, as the controller (`ctl`) asks.
    pub(crate) fn delete_runner(&mut self, id: i64, now: i64, ctl: Option<usize>) {
        let Some(r) = self.runners.get(&id) else {
            return;
        };
        if r.foreign {
            self.stats.foreign_touched += 1;
        }
        if let Some(job) = r.task {
            let inst = r.instance.as_ref().and_then(|i| self.instances.get(i));
            let healthy = inst.is_some_and(|i| i.live() && i.agent == Agent::Working(job));
            if healthy {
                self.stats.busy_kills += 1;
                let incident = Incident {
                    kind: "busy-deregister".into(),
                    instance: r.instance.clone(),
                    run: inst.and_then(|i| i.tags.get(model::tags::RUN_ID).cloned()),
                    runner: Some(r.name.clone()),
                    runner_id: Some(id),
                    ..Incident::default()
                };
                self.incident(incident, ctl, Some(job), now);
            }
            // The runner's reports are refused from now on: Gitea hears nothing more.
            self.stall(job, now);
        }
        self.runners.remove(&id);
    }

    /// Records an incident with what the world knows of `job` and the runner now.
    pub(crate) fn incident(
        &mut self,
        mut incident: Incident,
        ctl: Option<usize>,
        job: Option<i64>,
        now: i64,
    ) {
        #[allow(clippy::cast_precision_loss)]
        let at = |ms: i64| ms as f64 / 1000.0;
        incident.at_s = at(now);
        incident.controller = ctl;
        let mut world = Vec::new();
        if let Some(j) = job.and_then(|j| self.jobs.get(&j)) {
            incident.job_run = Some(model::RunId::for_job(j.id, j.attempt).to_string());
            world.push(format!(
                "job {} (labels {}) queued at {:.1}s, taken at {:.1}s by {}",
                j.id,
                j.labels.join(","),
                at(j.updated),
                at(j.started.unwrap_or(0)),
                j.runner_name.as_deref().unwrap_or("?")
            ));
        }
        if let Some(r) = incident.runner_id.and_then(|r| self.runners.get(&r)) {
            world.push(format!(
                "Gitea shows the runner online {}, busy {}, disabled {}",
                r.online(now),
                r.busy(now),
                r.disabled
            ));
        }
        if !incident.world.is_empty() {
            world.push(std::mem::take(&mut incident.world));
        }
        incident.world = world.join("; ");
        self.stats.incidents.push(incident);
    }

    /// Disable, as the controller asks.
    pub(crate) fn disable_runner(&mut self, id: i64) {
        if let Some(r) = self.runners.get_mut(&id) {
            if r.foreign {
                self.stats.foreign_touched += 1;
            }
            r.disabled = true;
        }
    }

    /// Adds a standing runner of someone else's (a foreign instance that is never ours).
    pub(crate) fn add_foreign_runner(&mut self, name: &str, labels: &[String], now: i64) {
        let mut tags = BTreeMap::new();
        tags.insert(model::tags::CLUSTER.to_owned(), "someone-else".to_owned());
        tags.insert(model::tags::NAME.to_owned(), name.to_owned());
        let id = self.start_instance(
            now,
            tags,
            Lifecycle::OnDemand,
            "m7a.large",
            "subnet-other",
            name,
            None,
            labels.to_vec(),
            false,
        );
        let rid = self.register(name, labels, false);
        if let Some(r) = self.runners.get_mut(&rid) {
            r.foreign = true;
            r.instance = Some(id.clone());
        }
        if let Some(i) = self.instances.get_mut(&id) {
            i.runner = Some(rid);
        }
    }

    /// An untagged instance in the same account: must never be touched.
    pub(crate) fn add_untagged_instance(&mut self, now: i64) {
        let mut tags = BTreeMap::new();
        tags.insert(model::tags::NAME.to_owned(), "database".to_owned());
        let id = self.start_instance(
            now,
            tags,
            Lifecycle::OnDemand,
            "r7a.large",
            "subnet-db",
            "",
            None,
            Vec::new(),
            false,
        );
        if let Some(i) = self.instances.get_mut(&id) {
            i.fate = Fate::NeverBoot;
        }
    }

    // ---- the runner process ----

    fn agent_start(&mut self, id: &str, now: i64) {
        let Some(inst) = self.instances.get(id) else {
            return;
        };
        if !inst.live() || inst.agent != Agent::Off {
            return;
        }
        if inst.fate == Fate::NeverBoot {
            if inst.ours {
                self.fault("never-boot");
                self.switch(id, now, Some(Bucket::Orphaned));
            }
            return;
        }
        let runner = match inst.runner {
            Some(r) => Some(r),
            None if inst.ours => {
                // Self-registration: the boot script registers with the pool's labels.
                let (name, labels) = (inst.runner_name.clone(), inst.labels.clone());
                let r = self.register(&name, &labels, true);
                if let Some(i) = self.instances.get_mut(id) {
                    i.runner = Some(r);
                }
                Some(r)
            }
            None => None,
        };
        let Some(rid) = runner else {
            return;
        };
        let Some(r) = self.runners.get_mut(&rid) else {
            // The registration was deleted before the runner started: act_runner is refused
            // ("unregistered runner") and the boot script powers off.
            self.power_off(id, now);
            return;
        };
        r.instance = Some(id.to_owned());
        r.contact = Some(now);
        if let Some(i) = self.instances.get_mut(id) {
            i.agent = Agent::Polling;
        }
        let ours = self.instances.get(id).is_some_and(|i| i.ours);
        if ours {
            self.switch(id, now, Some(Bucket::Idle));
        }
        if self
            .instances
            .get(id)
            .is_some_and(|i| i.fate == Fate::Stuck)
        {
            self.fault("runner-stuck");
        }
        if self.instances.get(id).is_some_and(|i| i.fate == Fate::Hang) {
            let at = now + self.between(5_000, 60_000);
            self.schedule(at, Event::Hang(id.to_owned()));
        }
        self.schedule(now, Event::Poll(id.to_owned()));
    }

    fn poll(&mut self, id: &str, now: i64) {
        let Some(inst) = self.instances.get(id) else {
            return;
        };
        if !inst.live() || inst.agent != Agent::Polling {
            return;
        }
        let (fate, runner) = (inst.fate, inst.runner);
        let Some(rid) = runner else {
            return;
        };
        let Some(r) = self.runners.get(&rid) else {
            // Deleted while idle: the next request is refused and the runner exits.
            self.power_off(id, now);
            return;
        };
        if fate == Fate::Stuck || r.disabled {
            self.schedule(now + POLL_MS, Event::Poll(id.to_owned()));
            return;
        }
        let labels = r.labels.clone();
        let Some(job_id) = self.oldest_fitting(&labels) else {
            self.schedule(now + POLL_MS, Event::Poll(id.to_owned()));
            return;
        };
        // Take the job.
        let name = r.name.clone();
        let (updated, duration) = match self.jobs.get_mut(&job_id) {
            Some(j) => {
                j.status = JobStatus::Running;
                j.attempt += 1;
                j.runner = Some(rid);
                j.runner_name = Some(name);
                j.started = Some(now);
                (j.updated, j.duration)
            }
            None => return,
        };
        self.queue.remove(&(updated, job_id));
        self.stats.waits.push(now - updated);
        // Picking writes only `last_online`; `busy` shows from the first task report, up to
        // a heartbeat later (`last_active` is written by UpdateTask and UpdateLog only).
        let first_report = now + self.between(500, HEARTBEAT_MS);
        if let Some(r) = self.runners.get_mut(&rid) {
            r.task = Some(job_id);
            r.active = Some(first_report);
        }
        if let Some(i) = self.instances.get_mut(id) {
            i.agent = Agent::Working(job_id);
            i.took = Some(job_id);
        }
        let ours = self.instances.get(id).is_some_and(|i| i.ours);
        if ours {
            self.switch(id, now, Some(Bucket::Useful));
        }
        self.webhook(job_id, "in_progress", now);
        if fate == Fate::OfflineMidJob {
            let at = now + self.between(1_000, duration.max(1_001));
            self.schedule(at, Event::GoOffline(id.to_owned()));
        } else {
            self.schedule(now + duration, Event::JobEnd(id.to_owned(), job_id));
        }
    }

    fn job_end(&mut self, id: &str, job_id: i64, now: i64) {
        let Some(inst) = self.instances.get(id) else {
            return;
        };
        if !inst.live() || inst.agent != Agent::Working(job_id) {
            return;
        }
        let (ours, runner) = (inst.ours, inst.runner);
        let runner_alive = runner.is_some_and(|r| self.runners.contains_key(&r));
        let mut rerun = false;
        if let Some(j) = self.jobs.get_mut(&job_id) {
            if j.status == JobStatus::Running && j.stalled_since.is_none() && runner_alive {
                j.status = JobStatus::Done;
                j.conclusion = Some(j.outcome.clone());
                rerun = j.outcome == "failure" && j.reruns_left > 0;
                if rerun {
                    j.reruns_left -= 1;
                }
                self.stats.completed += 1;
                self.webhook(job_id, "completed", now);
            }
        }
        if rerun && self.chance(0.3) {
            self.pending_reruns += 1;
            let at = now + self.between(60_000, 600_000);
            self.schedule(at, Event::Rerun(job_id));
        }
        let ephemeral = runner
            .and_then(|r| self.runners.get(&r))
            .is_some_and(|r| r.ephemeral);
        if let Some(r) = runner.and_then(|r| self.runners.get_mut(&r)) {
            r.task = None;
            r.stop_active(now);
        }
        if ephemeral || !runner_alive || ours {
            // Gitea deletes an ephemeral runner once its task is done; the process exits and
            // the boot script powers the machine off.
            if let Some(r) = runner {
                self.runners.remove(&r);
            }
            self.power_off(id, now);
        } else if let Some(i) = self.instances.get_mut(id) {
            // A standing runner goes back to polling.
            i.agent = Agent::Polling;
            self.schedule(now + POLL_MS, Event::Poll(id.to_owned()));
        }
    }

    fn power_off(&mut self, id: &str, now: i64) {
        if let Some(i) = self.instances.get_mut(id) {
            if i.live() {
                i.agent = Agent::Gone;
            }
        }
        self.switch(id, now, Some(Bucket::Orphaned));
        let at = now + self.between(3_000, 10_000);
        self.schedule(at, Event::PowerOff(id.to_owned()));
    }

    fn freeze(&mut self, id: &str, now: i64, kind: &str) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        if !inst.live() || !matches!(inst.agent, Agent::Polling | Agent::Working(_)) {
            return;
        }
        let agent = inst.agent;
        inst.agent = Agent::Frozen;
        let runner = inst.runner;
        self.fault(kind);
        if let Agent::Working(job) = agent {
            self.stall(job, now);
        }
        if let Some(r) = runner.and_then(|r| self.runners.get_mut(&r)) {
            r.go_silent(now);
        }
        self.switch(id, now, Some(Bucket::Orphaned));
    }

    // ---- the event loop ----

    /// Handles one event; returns what must happen outside the lock.
    pub(crate) fn handle(&mut self, event: Event, now: i64) -> Option<Effect> {
        match event {
            Event::Arrive(i) => self.arrive(i, now),
            Event::Deliver { body, tries } => return Some(Effect::Deliver { body, tries }),
            Event::Running(id) => {
                if let Some(i) = self.instances.get_mut(&id) {
                    if i.state == InstanceState::Pending {
                        i.state = InstanceState::Running;
                    }
                }
            }
            Event::AgentStart(id) => self.agent_start(&id, now),
            Event::Poll(id) => self.poll(&id, now),
            Event::JobEnd(id, job) => self.job_end(&id, job, now),
            Event::GoOffline(id) => self.freeze(&id, now, "runner-offline"),
            Event::Hang(id) => self.freeze(&id, now, "runner-hang"),
            Event::PowerOff(id) => self.end_instance(&id, now, InstanceState::ShuttingDown, None),
            Event::Terminated(id) => {
                if let Some(i) = self.instances.get_mut(&id) {
                    i.state = InstanceState::Terminated;
                }
                self.schedule(now + FORGET_MS, Event::Forget(id));
            }
            Event::Forget(id) => {
                if self
                    .instances
                    .get(&id)
                    .is_some_and(|i| i.state == InstanceState::Terminated)
                {
                    self.instances.remove(&id);
                }
            }
            Event::SpotInterrupt(id) => {
                if self.instances.get(&id).is_some_and(Inst::live) {
                    self.stats.spot_interrupted += 1;
                    self.fault("spot-interruption");
                    self.end_instance(&id, now, InstanceState::Terminated, Some(SPOT_INTERRUPTION));
                }
            }
            Event::ZombieCron => self.zombie_cron(now),
            Event::Rerun(job) => self.rerun(job, now),
            Event::Sample => {
                let mut s = Sample {
                    t: now / 1000,
                    queued: u32::try_from(self.queue.len()).unwrap_or(u32::MAX),
                    ..Sample::default()
                };
                for i in self.instances.values().filter(|i| i.ours) {
                    match (i.state, i.agent) {
                        (InstanceState::Pending, _) => s.pending += 1,
                        (InstanceState::Running, Agent::Working(_)) => s.busy += 1,
                        (InstanceState::Running, _) => s.idle += 1,
                        _ => {}
                    }
                }
                self.stats.samples.push(s);
                self.schedule(now + SAMPLE_MS, Event::Sample);
            }
            Event::ArmKill(point) => self.kills_armed.push_back(point),
        }
        None
    }

    /// Jobs still waiting for a runner.
    pub(crate) fn waiting(&self) -> u64 {
        self.queue.len() as u64
    }

    /// The run ids (job and the pick it waits for) of the jobs still waiting.
    pub(crate) fn waiting_runs(&self) -> Vec<model::RunId> {
        self.queue
            .iter()
            .filter_map(|(_, id)| self.jobs.get(id))
            .map(|j| model::RunId::for_job(j.id, j.attempt + 1))
            .collect()
    }
}

/// A `workflow_job` webhook body as Gitea sends it (the fields tinqs-ci reads).
fn hook_body(job: &Job, action: &str, epoch: Timestamp) -> String {
    let at = |ms: i64| Timestamp::from_millis(epoch.as_millis() + ms).to_string();
    let mut wj = serde_json::json!({
        "id": job.id,
        "run_id": job.run_id,
        "run_attempt": job.attempt,
        "name": job.name,
        "labels": job.labels,
        "status": action,
        "url": format!("https://gitea.example.com/api/v1/repos/{}/actions/jobs/{}", job.repo, job.id),
        "created_at": at(job.created),
    });
    if let Some(name) = &job.runner_name {
        wj["runner_name"] = serde_json::Value::String(name.clone());
    }
    if let Some(started) = job.started {
        wj["started_at"] = serde_json::Value::String(at(started));
    }
    if let Some(c) = &job.conclusion {
        wj["conclusion"] = serde_json::Value::String(c.clone());
    }
    serde_json::json!({
        "action": action,
        "workflow_job": wj,
        "repository": {"full_name": job.repo},
    })
    .to_string()
}

/// Boot time of an instance type, from RunInstances to its runner's first contact: a few
/// seconds to running, then the OS and the runner service. Larger and GPU types boot slower;
/// metal types take minutes.
pub(crate) fn boot_delay_ms(itype: &str) -> (i64, i64) {
    let size = itype.split('.').nth(1).unwrap_or("large");
    let base = if size == "metal" || size.starts_with("metal") {
        (240_000, 480_000)
    } else if itype.starts_with('g') || itype.starts_with('p') {
        (90_000, 180_000)
    } else {
        (25_000, 60_000)
    };
    let extra = match size {
        "xlarge" => 3_000,
        s if s.ends_with("xlarge") => 8_000,
        _ => 0,
    };
    (base.0 + extra, base.1 + extra)
}

/// An estimated price per hour (USD): on-demand list prices of common us-east-1 types, or an
/// estimate from the size; Spot at 35% of on-demand. Only for comparing policies: the
/// report says so.
pub(crate) fn price_per_hour(itype: &str, lifecycle: Lifecycle) -> f64 {
    let od = match itype {
        "c7a.large" => 0.1027,
        "c7a.xlarge" => 0.2053,
        "c7a.2xlarge" => 0.4106,
        "c6a.large" => 0.0765,
        "c6a.xlarge" => 0.153,
        "c6a.2xlarge" => 0.306,
        "m7a.large" => 0.1159,
        "m7a.xlarge" => 0.2318,
        "r7a.large" => 0.1522,
        "t3.medium" => 0.0416,
        other => {
            let size = other.split('.').nth(1).unwrap_or("large");
            match size {
                "medium" => 0.05,
                "large" => 0.1,
                "xlarge" => 0.2,
                s => s
                    .strip_suffix("xlarge")
                    .and_then(|n| n.parse::<f64>().ok())
                    .map_or(0.2, |n| 0.2 * n),
            }
        }
    };
    match lifecycle {
        Lifecycle::Spot => od * 0.35,
        Lifecycle::OnDemand => od,
    }
}
