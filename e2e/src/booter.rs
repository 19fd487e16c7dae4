//! The booter: plays EC2 booting our runner AMI.
//!
//! moto starts no machine, so the booter does what the AMI's boot script would: it polls EC2
//! (moto) for instances carrying the cluster's ownership tag, reads each new one's user-data,
//! takes the `.runner` file out of the rendered boot script
//! ([`model::userdata::runner_file_from_script`]) and starts a [`gitea_sim::Agent`] from it
//! after a boot delay: an act_runner-like agent that takes one job and exits. When the agent
//! ends (job done, or registration refused) the booter terminates the instance in moto, as the
//! boot script's power-off does with instance-initiated shutdown set to terminate. When the
//! controller terminates an instance, the booter stops its agent at once (the machine is gone).
//!
//! Faults are scripted per machine by [`FaultRule`]s: the first rule matching a new instance
//! decides its fate (never starts its agent, goes offline mid-job, is Spot-interrupted before
//! its agent starts, boots slowly).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, InstanceAttributeName, InstanceStateName};
use base64::Engine as _;
use gitea_sim::{
    Agent, AgentConfig, AgentFault, AgentHandle, AgentOutcome, AgentState, RunnerFile,
};
use model::{tags, RunId};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::faults::Interruptions;
use crate::narrate::{Events, Source};

/// Timings of the simulated machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootSettings {
    /// From the instance appearing in EC2 to its agent's first contact with Gitea.
    pub boot_delay: Duration,
    /// From the agent exiting to the instance being terminated (power-off).
    pub power_off_delay: Duration,
    /// The agent's `FetchTask` interval (act_runner: 2 s).
    pub fetch_interval: Duration,
    /// The agent's heartbeat interval while running a job.
    pub report_interval: Duration,
    /// How often the booter lists EC2.
    pub poll_interval: Duration,
}

impl Default for BootSettings {
    fn default() -> Self {
        BootSettings {
            boot_delay: Duration::from_millis(300),
            power_off_delay: Duration::from_secs(1),
            fetch_interval: Duration::from_millis(250),
            report_interval: Duration::from_millis(250),
            poll_interval: Duration::from_millis(200),
        }
    }
}

/// Which new instances a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Every instance.
    Any,
    /// The n-th instance the booter sees (from 1).
    Nth(usize),
    /// Instances of one pool.
    Pool(String),
    /// Every attempt of one run.
    Run(RunId),
    /// One attempt of one run.
    Attempt(RunId, u32),
}

/// What happens to a matched machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootFault {
    /// The machine never starts its agent (hangs at boot): the runner never registers.
    NeverStarts,
    /// The agent takes a job and goes silent this long into it (the machine dies mid-job).
    OfflineMidJob {
        /// Time into the job.
        after: Duration,
    },
    /// EC2 reclaims the Spot instance before its agent starts.
    SpotInterruptedBeforeStart,
    /// The agent starts, but only after this boot delay instead of the usual one.
    SlowBoot(Duration),
    /// The agent comes online and stays in contact, but never takes a job (a hung runner).
    Stuck,
}

impl std::fmt::Display for BootFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootFault::NeverStarts => f.write_str("hangs at boot: its runner never starts"),
            BootFault::OfflineMidJob { after } => write!(
                f,
                "dies {} into its job: its runner goes offline",
                humantime::format_duration(*after)
            ),
            BootFault::SpotInterruptedBeforeStart => {
                f.write_str("is reclaimed by EC2 (Spot interruption) before its runner starts")
            }
            BootFault::SlowBoot(d) => {
                write!(f, "boots slowly ({})", humantime::format_duration(*d))
            }
            BootFault::Stuck => f.write_str("comes online but never takes a job"),
        }
    }
}

/// One scripted fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// Which instances.
    pub matches: Match,
    /// What happens to them.
    pub fault: BootFault,
}

impl FaultRule {
    /// A rule.
    #[must_use]
    pub fn new(matches: Match, fault: BootFault) -> Self {
        FaultRule { matches, fault }
    }
}

/// What the booter knows of one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineView {
    /// The instance id.
    pub instance: String,
    /// In which order the booter saw it (from 1).
    pub ordinal: usize,
    /// Its run (tag).
    pub run: Option<String>,
    /// Its attempt (tag).
    pub attempt: Option<u32>,
    /// Its pool (tag).
    pub pool: Option<String>,
    /// Its runner name (tag).
    pub runner: Option<String>,
    /// The scripted fault, if any.
    pub fault: Option<BootFault>,
    /// Whether a `.runner` file was found in its user-data.
    pub has_runner_file: bool,
    /// How its agent ended, once it did.
    pub outcome: Option<AgentOutcome>,
    /// Whether the instance is gone (terminated by anyone).
    pub gone: bool,
    /// Whether the booter powered it off (the instance ended itself).
    pub powered_off: bool,
}

struct Machine {
    view: MachineView,
    agent: Option<Arc<AgentHandle>>,
}

struct Shared {
    ec2: aws_sdk_ec2::Client,
    cluster: String,
    sim_url: String,
    settings: BootSettings,
    rules: Mutex<Vec<FaultRule>>,
    machines: Mutex<BTreeMap<String, Machine>>,
    events: Events,
    interruptions: Arc<Interruptions>,
    errors: Mutex<Vec<String>>,
    busy_kills: Mutex<Vec<(String, i64)>>,
}

/// The running booter.
pub struct Booter {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Booter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Booter")
            .field("cluster", &self.shared.cluster)
            .finish_non_exhaustive()
    }
}

impl Booter {
    /// Starts polling EC2 for `cluster`'s instances; agents talk to the simulator at `sim_url`.
    #[must_use]
    pub fn start(
        ec2: aws_sdk_ec2::Client,
        cluster: &str,
        sim_url: &str,
        settings: BootSettings,
        interruptions: Arc<Interruptions>,
        events: Events,
    ) -> Self {
        let shared = Arc::new(Shared {
            ec2,
            cluster: cluster.to_owned(),
            sim_url: sim_url.to_owned(),
            settings,
            rules: Mutex::new(Vec::new()),
            machines: Mutex::new(BTreeMap::new()),
            events,
            interruptions,
            errors: Mutex::new(Vec::new()),
            busy_kills: Mutex::new(Vec::new()),
        });
        let (stop, mut stopped) = watch::channel(false);
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                s.tick().await;
                tokio::select! {
                    _ = stopped.wait_for(|v| *v) => break,
                    () = tokio::time::sleep(s.settings.poll_interval) => {}
                }
            }
        });
        Booter {
            shared,
            stop,
            task: Mutex::new(Some(task)),
        }
    }

    /// Adds a fault rule; the first rule matching a new instance applies.
    pub fn add_rule(&self, rule: FaultRule) {
        self.shared.rules.lock().push(rule);
    }

    /// Every machine seen so far, in the order seen.
    #[must_use]
    pub fn machines(&self) -> Vec<MachineView> {
        let mut all: Vec<MachineView> = self
            .shared
            .machines
            .lock()
            .values()
            .map(|m| m.view.clone())
            .collect();
        all.sort_by_key(|m| m.ordinal);
        all
    }

    /// The machines of one run, in the order seen.
    #[must_use]
    pub fn machines_of(&self, run: &RunId) -> Vec<MachineView> {
        self.machines()
            .into_iter()
            .filter(|m| m.run.as_deref() == Some(run.as_str()))
            .collect()
    }

    /// Busy kills: machines terminated by someone other than themselves or EC2's Spot
    /// reclaim while their runner was running a job, with that job's id.
    #[must_use]
    pub fn busy_kills(&self) -> Vec<(String, i64)> {
        self.shared.busy_kills.lock().clone()
    }

    /// Problems the booter met (EC2 calls that failed, unreadable user-data).
    #[must_use]
    pub fn errors(&self) -> Vec<String> {
        self.shared.errors.lock().clone()
    }

    /// Stops polling and stops every agent still running.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
        for m in self.shared.machines.lock().values() {
            if let Some(a) = &m.agent {
                a.stop();
            }
        }
    }
}

impl Shared {
    fn error(&self, what: String) {
        self.events.push(Source::Ec2, "error", what.clone());
        self.errors.lock().push(what);
    }

    async fn tick(self: &Arc<Self>) {
        let listed = match self.list().await {
            Ok(l) => l,
            Err(e) => return self.error(e),
        };
        for (id, state, tags) in listed {
            let live = matches!(
                state,
                InstanceStateName::Pending | InstanceStateName::Running
            );
            let known = self.machines.lock().contains_key(&id);
            if live && !known {
                self.discover(&id, &tags);
            } else if !live && known {
                self.gone(&id);
            }
        }
    }

    async fn list(
        &self,
    ) -> Result<Vec<(String, InstanceStateName, BTreeMap<String, String>)>, String> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .ec2
                .describe_instances()
                .filters(
                    Filter::builder()
                        .name(format!("tag:{}", tags::CLUSTER))
                        .values(&self.cluster)
                        .build(),
                )
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "booter: DescribeInstances failed: {}",
                        aws_sdk_ec2::error::DisplayErrorContext(&e)
                    )
                })?;
            for r in resp.reservations() {
                for i in r.instances() {
                    let (Some(id), Some(state)) =
                        (i.instance_id(), i.state().and_then(|s| s.name()))
                    else {
                        continue;
                    };
                    let tags = i
                        .tags()
                        .iter()
                        .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                        .collect();
                    out.push((id.to_owned(), state.clone(), tags));
                }
            }
            match resp.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    fn fault_for(&self, ordinal: usize, tags: &BTreeMap<String, String>) -> Option<BootFault> {
        let run = tags.get(tags::RUN_ID).map(String::as_str);
        let attempt: Option<u32> = tags.get(tags::ATTEMPT).and_then(|a| a.parse().ok());
        let pool = tags.get(tags::POOL).map(String::as_str);
        self.rules
            .lock()
            .iter()
            .find(|r| match &r.matches {
                Match::Any => true,
                Match::Nth(n) => *n == ordinal,
                Match::Pool(p) => pool == Some(p.as_str()),
                Match::Run(id) => run == Some(id.as_str()),
                Match::Attempt(id, a) => run == Some(id.as_str()) && attempt == Some(*a),
            })
            .map(|r| r.fault)
    }

    fn discover(self: &Arc<Self>, id: &str, tags: &BTreeMap<String, String>) {
        let ordinal = self.machines.lock().len() + 1;
        let fault = self.fault_for(ordinal, tags);
        let view = MachineView {
            instance: id.to_owned(),
            ordinal,
            run: tags.get(tags::RUN_ID).cloned(),
            attempt: tags.get(tags::ATTEMPT).and_then(|a| a.parse().ok()),
            pool: tags.get(tags::POOL).cloned(),
            runner: tags.get(tags::RUNNER_NAME).cloned(),
            fault,
            has_runner_file: false,
            outcome: None,
            gone: false,
            powered_off: false,
        };
        self.machines
            .lock()
            .insert(id.to_owned(), Machine { view, agent: None });
        let s = self.clone();
        let id = id.to_owned();
        tokio::spawn(async move { s.boot(&id, fault).await });
    }

    /// What the AMI does at first boot: read the user-data, start the runner from its
    /// `.runner` file, power off when the runner exits.
    async fn boot(self: Arc<Self>, id: &str, fault: Option<BootFault>) {
        let script = match self.user_data(id).await {
            Ok(s) => s,
            Err(e) => return self.error(e),
        };
        let file = script
            .as_deref()
            .and_then(model::userdata::runner_file_from_script)
            .map(|text| RunnerFile::from_json(&text));
        let cache_url = script
            .as_deref()
            .and_then(model::userdata::cache_server_from_script);
        let file = match file {
            None => {
                self.events.push(
                    Source::Ec2,
                    "boot",
                    format!("{id} booted with no runner in its user-data: nothing starts on it"),
                );
                return;
            }
            Some(Err(e)) => {
                return self.error(format!(
                    "{id}: the .runner in its user-data is unusable: {e}"
                ))
            }
            Some(Ok(f)) => f,
        };
        let runner = file.name.clone();
        self.with_machine(id, |m| m.view.has_runner_file = true);
        let settings = self.settings;
        let mut config = AgentConfig::from_runner_file(file)
            .base_url(self.sim_url.clone())
            .boot_delay(settings.boot_delay)
            .fetch_interval(settings.fetch_interval)
            .report_interval(settings.report_interval)
            .cache_url(cache_url);
        match fault {
            Some(BootFault::SpotInterruptedBeforeStart) => {
                self.events.push(
                    Source::Ec2,
                    "spot-interruption",
                    format!("{id} ({runner}) reclaimed by EC2: Spot interruption before its runner started"),
                );
                if let Err(e) = self.interruptions.interrupt(&self.ec2, id).await {
                    self.error(e);
                }
                return;
            }
            Some(BootFault::NeverStarts) => {
                self.events.push(
                    Source::Ec2,
                    "boot",
                    format!("{id} ({runner}) hangs at boot: its runner never starts"),
                );
                config = config.fault(AgentFault::NeverStarts);
            }
            Some(BootFault::OfflineMidJob { after }) => {
                config = config.fault(AgentFault::OfflineMidJob {
                    after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
                });
            }
            Some(BootFault::SlowBoot(d)) => config = config.boot_delay(d),
            Some(BootFault::Stuck) => {
                self.events.push(
                    Source::Ec2,
                    "boot",
                    format!("{id} ({runner}) will come online but never take a job"),
                );
                config = config.fault(AgentFault::Stuck);
            }
            None => {}
        }
        if fault != Some(BootFault::NeverStarts) {
            self.events.push(
                Source::Ec2,
                "boot",
                format!(
                    "{id} booting; runner {runner} starts from its pre-registered .runner file"
                ),
            );
        }
        let agent = Arc::new(Agent::spawn(config));
        let gone = self.with_machine(id, |m| {
            m.agent = Some(agent.clone());
            m.view.gone
        });
        if gone == Some(true) {
            agent.stop();
        }
        let outcome = agent.wait().await;
        self.ended(id, &runner, outcome).await;
    }

    async fn ended(&self, id: &str, runner: &str, outcome: AgentOutcome) {
        self.with_machine(id, |m| m.view.outcome = Some(outcome.clone()));
        let power_off = match &outcome {
            AgentOutcome::Finished { job_id, result, .. } => {
                self.events.push(
                    Source::Ec2,
                    "agent",
                    format!(
                        "{id}: runner {runner} finished job {job_id} ({}) and exits",
                        result.as_str()
                    ),
                );
                true
            }
            AgentOutcome::Failed { reason } => {
                self.events.push(
                    Source::Ec2,
                    "agent",
                    format!("{id}: runner {runner} failed ({reason}) and exits"),
                );
                true
            }
            AgentOutcome::WentOffline { job_id, .. } => {
                self.events.push(
                    Source::Ec2,
                    "agent",
                    format!("{id}: machine froze during job {job_id}; runner {runner} went silent"),
                );
                false
            }
            AgentOutcome::NeverStarted | AgentOutcome::Stopped => false,
        };
        if !power_off {
            return;
        }
        tokio::time::sleep(self.settings.power_off_delay).await;
        if self.with_machine(id, |m| m.view.gone) == Some(true) {
            return;
        }
        match self.ec2.terminate_instances().instance_ids(id).send().await {
            Ok(_) => {
                self.with_machine(id, |m| m.view.powered_off = true);
                self.events.push(
                    Source::Ec2,
                    "power-off",
                    format!("{id} powered itself off: instance-initiated shutdown terminates it"),
                );
            }
            Err(e) => self.error(format!(
                "booter: cannot terminate {id} at power-off: {}",
                aws_sdk_ec2::error::DisplayErrorContext(&e)
            )),
        }
    }

    fn gone(&self, id: &str) {
        let stopped = self.with_machine(id, |m| {
            if m.view.gone {
                return None;
            }
            m.view.gone = true;
            let running = m.agent.as_ref().filter(|a| !a.is_finished()).cloned();
            if let Some(AgentState::Running { job_id, .. }) = running.as_ref().map(|a| a.state()) {
                if !m.view.powered_off && !self.interruptions.contains(id) {
                    // Terminated by someone else while its runner ran a job.
                    self.busy_kills.lock().push((id.to_owned(), job_id));
                }
            }
            if let Some(a) = &running {
                a.stop();
            }
            Some((running.is_some(), m.view.powered_off))
        });
        if let Some(Some((stopped_agent, powered_off))) = stopped {
            if !powered_off && !self.interruptions.contains(id) {
                let text = if stopped_agent {
                    format!("{id} terminated: its runner stops with it")
                } else {
                    format!("{id} terminated")
                };
                self.events.push(Source::Ec2, "gone", text);
            }
        }
    }

    fn with_machine<T>(&self, id: &str, f: impl FnOnce(&mut Machine) -> T) -> Option<T> {
        self.machines.lock().get_mut(id).map(f)
    }

    async fn user_data(&self, id: &str) -> Result<Option<String>, String> {
        let attr = self
            .ec2
            .describe_instance_attribute()
            .instance_id(id)
            .attribute(InstanceAttributeName::UserData)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "booter: cannot read the user-data of {id}: {}",
                    aws_sdk_ec2::error::DisplayErrorContext(&e)
                )
            })?;
        let Some(encoded) = attr.user_data().and_then(|u| u.value()) else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| format!("booter: the user-data of {id} is not base64: {e}"))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| format!("booter: the user-data of {id} is not UTF-8"))
    }
}
