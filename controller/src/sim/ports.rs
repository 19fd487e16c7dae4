//! The controller's three ports over the simulated world: the real reconciler calls these
//! exactly as it calls DynamoDB, EC2 and Gitea. Every call takes virtual time, may fail as the
//! fault profile says, and is counted.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use model::cache::{RunnerJob, RunnerRecord};
use model::config::PoolConfig;
use model::desired::{AttemptCounting, DesiredRun, JobAction, JobState, RunStatus};
use model::observed::{DesiredView, ForgeRunner, Instance, JobFound, JobSeen, QueuedJob};
use model::secret::Secret;
use model::{InstanceId, Phase, RunId, RunnerName, Timestamp};
use parking_lot::{Mutex, MutexGuard};
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::sync::Notify;

use super::world::{JobStatus, KillPoint, SimWorld};
use crate::fleet::offerings::UnavailableOfferings;
use crate::fleet::{offerings, Fleet, FleetError, LaunchRequest, Offering};
use crate::forge::{Forge, ForgeError, ForgeVersion, RegisteredRunner, RepoFile};
use crate::store::memory::MemoryStore;
use crate::store::{Lease, Store, StoreError};

/// The Gitea version the simulated server reports.
pub(crate) const VERSION: ForgeVersion = ForgeVersion {
    major: 1,
    minor: 26,
    patch: 4,
};

/// What the ports and the loops share.
pub(crate) struct Ctx {
    pub world: Mutex<SimWorld>,
    /// Notified when a port has just killed its controller (see [`KillPoint`]).
    pub kill: Notify,
    /// Each controller slot's wake-up (webhooks stored).
    pub wakes: [Arc<Notify>; 2],
    /// When the run started, in tokio's (virtual) time.
    pub start: tokio::time::Instant,
    /// Notified when a call scheduled something in the world (the world loop may be
    /// sleeping until a later event).
    pub poke: Notify,
    /// Notified when a webhook reached a baseline policy's inbox.
    pub hooks: Notify,
}

impl Ctx {
    pub(crate) fn lock(&self) -> MutexGuard<'_, SimWorld> {
        self.world.lock()
    }

    /// Milliseconds since the start, in virtual time.
    pub(crate) fn now(&self) -> i64 {
        i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Whether controller `ctl` dies here: the front armed kill point is `point` and the step
    /// applies. The world then asks the supervisor to kill it.
    fn kill_here(&self, ctl: Option<usize>, point: KillPoint, applies: bool) -> bool {
        let Some(ctl) = ctl else { return false };
        if !applies {
            return false;
        }
        let mut w = self.lock();
        if w.kills_armed.front() != Some(&point) || w.kill_request.is_some() {
            return false;
        }
        w.kills_armed.pop_front();
        w.kill_request = Some(ctl);
        drop(w);
        self.kill.notify_one();
        true
    }
}

impl Ctx {
    /// One API call of `kind`: counted, its latency drawn from `lo..=hi` ms, and its fault
    /// decided by `fault` (an error and extra latency, as a hung call has); then the latency
    /// passes in virtual time.
    async fn call<E>(
        &self,
        kind: &str,
        (lo, hi): (i64, i64),
        fault: impl FnOnce(&mut SimWorld, i64) -> Option<(E, i64)>,
    ) -> Result<(), E> {
        let (latency, result) = {
            let mut w = self.lock();
            let now = self.now();
            w.api(kind);
            let latency = w.between(lo, hi);
            match fault(&mut w, now) {
                Some((e, extra)) => (latency + extra, Err(e)),
                None => (latency, Ok(())),
            }
        };
        sleep_ms(latency).await;
        result
    }
}

/// The process is being killed: this call never returns.
async fn killed<T>() -> T {
    std::future::pending::<T>().await
}

async fn sleep_ms(ms: i64) {
    tokio::time::sleep(Duration::from_millis(u64::try_from(ms).unwrap_or(0))).await;
}

// ---- DynamoDB ----

/// The desired-state table: [`MemoryStore`]'s semantics (conditional writes, fencing, the
/// active index) behind DynamoDB's latency, outages and throttling.
pub(crate) struct SimStore {
    pub ctx: Arc<Ctx>,
    pub table: Arc<MemoryStore>,
    /// The controller slot calling, `None` for the webhook receiver.
    pub ctl: Option<usize>,
}

impl SimStore {
    async fn enter(&self, kind: &str) -> Result<(), StoreError> {
        self.ctx
            .call(kind, (4, 25), |w, now| {
                let throttle = w.faults.dynamo_throttle;
                if SimWorld::in_window(&w.dynamo_down, now) {
                    w.fault("dynamodb-outage-call");
                    let e = StoreError::Unavailable("dispatch failure: connection refused".into());
                    Some((e, 0))
                } else if w.chance(throttle) {
                    w.fault("dynamodb-throttled");
                    let e = StoreError::Throttled("ProvisionedThroughputExceededException".into());
                    Some((e, 0))
                } else {
                    None
                }
            })
            .await
    }
}

#[async_trait]
impl Store for SimStore {
    async fn list_active(&self) -> Result<DesiredView, StoreError> {
        self.enter("dynamodb:Query").await?;
        self.table.list_active().await
    }

    async fn get(&self, id: &RunId) -> Result<Option<DesiredRun>, StoreError> {
        self.enter("dynamodb:GetItem").await?;
        self.table.get(id).await
    }

    async fn create(&self, run: &DesiredRun) -> Result<bool, StoreError> {
        self.enter("dynamodb:PutItem").await?;
        self.table.create(run).await
    }

    async fn set_job_state(&self, id: &RunId, state: &JobState) -> Result<bool, StoreError> {
        self.enter("dynamodb:UpdateItem").await?;
        self.table.set_job_state(id, state).await
    }

    async fn set_cancel(&self, id: &RunId, cancel: bool) -> Result<bool, StoreError> {
        self.enter("dynamodb:UpdateItem").await?;
        self.table.set_cancel(id, cancel).await
    }

    async fn write_status(
        &self,
        id: &RunId,
        expected_version: u64,
        status: &RunStatus,
        lease: &Lease,
    ) -> Result<RunStatus, StoreError> {
        self.enter("dynamodb:UpdateItem").await?;
        let record = status.phase == Phase::Running && status.instance_id.is_some();
        if self
            .ctx
            .kill_here(self.ctl, KillPoint::BeforeRecord, record)
        {
            return killed().await;
        }
        let written = self
            .table
            .write_status(id, expected_version, status, lease)
            .await?;
        let claim = status.phase == Phase::Launching
            && status.runner_id.is_none()
            && status.instance_id.is_none();
        if self.ctx.kill_here(self.ctl, KillPoint::AfterClaim, claim) {
            return killed().await;
        }
        Ok(written)
    }

    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease, StoreError> {
        self.enter("dynamodb:UpdateItem").await?;
        self.table.acquire_lease(holder, ttl, now).await
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease, StoreError> {
        self.enter("dynamodb:UpdateItem").await?;
        self.table.renew_lease(lease, ttl, now).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.enter("dynamodb:UpdateItem").await?;
        self.table.release_lease(lease).await
    }

    async fn set_runner_credential(
        &self,
        runner: &str,
        hash: &str,
        expires: Timestamp,
    ) -> Result<(), StoreError> {
        self.enter("dynamodb:PutItem").await?;
        self.table
            .set_runner_credential(runner, hash, expires)
            .await
    }

    async fn set_runner_job(
        &self,
        runner: &str,
        job: &RunnerJob,
        expires: Timestamp,
    ) -> Result<(), StoreError> {
        self.enter("dynamodb:UpdateItem").await?;
        self.table.set_runner_job(runner, job, expires).await
    }

    async fn runner_record(&self, runner: &str) -> Result<Option<RunnerRecord>, StoreError> {
        self.enter("dynamodb:GetItem").await?;
        self.table.runner_record(runner).await
    }
}

// ---- EC2 ----

/// EC2 as seen through the fleet port: instances with our tag, boot delays, capacity errors,
/// throttling, lists that lag behind launches, idempotent client tokens.
pub(crate) struct SimFleet {
    pub ctx: Arc<Ctx>,
    pub ctl: Option<usize>,
    /// The process's memory of offerings without capacity (lost when it is killed).
    pub unavailable: UnavailableOfferings,
}

impl SimFleet {
    async fn enter(&self, kind: &str, lo: i64, hi: i64) -> Result<(), FleetError> {
        self.ctx
            .call(kind, (lo, hi), |w, _| {
                let p = w.faults.ec2_throttle;
                w.chance(p).then(|| {
                    w.fault("ec2-throttled");
                    let e = FleetError::Throttled(
                        "RequestLimitExceeded: Request limit exceeded.".into(),
                    );
                    (e, 0)
                })
            })
            .await
    }
}

#[async_trait]
impl Fleet for SimFleet {
    async fn list(&self) -> Result<Vec<Instance>, FleetError> {
        self.enter("ec2:DescribeInstances", 80, 400).await?;
        let w = self.ctx.lock();
        let now = self.ctx.now();
        // Real EC2 filters by the ownership tag before answering: only ours are copied.
        Ok(w.instances
            .values()
            .filter(|i| i.visible_at <= now && i.tags.owned_by(&w.cluster))
            .map(|i| i.view(w.epoch))
            .collect())
    }

    fn without_capacity_until(&self, pool: &PoolConfig) -> Option<Timestamp> {
        let epoch = self.ctx.lock().epoch;
        let at = Timestamp::from_millis(epoch.as_millis() + self.ctx.now());
        self.unavailable.all_unavailable_until(&offerings(pool), at)
    }

    async fn launch(&self, req: &LaunchRequest) -> Result<(Instance, Offering), FleetError> {
        self.enter("ec2:RunInstances", 300, 1_500).await?;
        let (instance, offering) = {
            let mut w = self.ctx.lock();
            let now = self.ctx.now();
            let epoch = w.epoch;
            // Real EC2: the same client token returns the instance it already started.
            if let Some(id) = w.by_token.get(&req.client_token).cloned() {
                if let Some(i) = w.instances.get(&id) {
                    let offering = Offering {
                        instance_type: i.itype.clone(),
                        subnet: i.zone.trim_end_matches("-zone").to_owned(),
                        lifecycle: i.lifecycle,
                    };
                    return Ok((i.view(epoch), offering));
                }
            }
            let at = Timestamp::from_millis(epoch.as_millis() + now);
            let mut last = None;
            let mut chosen = None;
            for offering in offerings(&req.pool_config) {
                if self.unavailable.is_unavailable(&offering, at) {
                    continue;
                }
                if chosen.is_none() && last.is_some() {
                    // Each offering tried is one more RunInstances call.
                    w.api("ec2:RunInstances");
                }
                let ice = w.faults.ice;
                if w.chance(ice) {
                    w.fault("ec2-insufficient-capacity");
                    self.unavailable.mark(&offering, at);
                    last = Some(FleetError::Capacity {
                        code: "InsufficientInstanceCapacity".into(),
                        message: format!(
                            "We currently do not have sufficient {} capacity in the Availability Zone you requested.",
                            offering.instance_type
                        ),
                    });
                    continue;
                }
                chosen = Some(offering);
                break;
            }
            let Some(offering) = chosen else {
                return Err(last.unwrap_or_else(|| FleetError::Capacity {
                    code: "UnavailableOffering".into(),
                    message: format!(
                        "every offering of pool {} was recently without capacity",
                        req.pool
                    ),
                }));
            };
            let cluster = w.cluster.clone();
            let tags = crate::fleet::launch_tags(&cluster, req);
            let run = req.run.to_string();
            // A double launch: another live machine of this run could still serve its job.
            // One whose ephemeral runner took another job (running, hung or gone offline in
            // it since), or has exited, never will: Gitea gives an ephemeral runner that has
            // had a task no other
            // (go-gitea/gitea v1.26.4 services/actions/task.go:31-49).
            let job = req.run.job_id();
            let other = w
                .instances
                .values()
                .filter(|i| i.ours && i.live() && i.tags.get(model::tags::RUN_ID) == Some(&run))
                .find(|i| match i.took {
                    Some(on) => Some(on) == job,
                    None => i.agent != super::world::Agent::Gone,
                })
                .map(|i| {
                    #[allow(clippy::cast_precision_loss)]
                    let launched = i.launched as f64 / 1000.0;
                    format!(
                        "another live instance {} ({:?}, runner {}, agent {:?}) of this run, launched at {launched:.1}s; this launch's client token {}",
                        i.id, i.state, i.runner_name, i.agent, req.client_token
                    )
                });
            if let Some(other) = other {
                w.stats.double_launched += 1;
                let incident = super::world::Incident {
                    kind: "double-launch".into(),
                    run: Some(run.clone()),
                    runner: Some(req.runner.as_str().to_owned()),
                    runner_id: req.runner_id,
                    world: other,
                    ..super::world::Incident::default()
                };
                w.incident(incident, self.ctl, None, now);
            }
            let labels = w.pool_labels.get(&req.pool).cloned().unwrap_or_default();
            let id = w.start_instance(
                now,
                tags,
                offering.lifecycle,
                &offering.instance_type,
                &offering.subnet,
                req.runner.as_str(),
                req.runner_id,
                labels,
                true,
            );
            w.by_token.insert(req.client_token.clone(), id.clone());
            self.ctx.poke.notify_one();
            let view = w.instances.get(&id).map(|i| i.view(epoch));
            match view {
                Some(v) => (v, offering),
                None => return Err(FleetError::Other("instance vanished".into())),
            }
        };
        if self
            .ctx
            .kill_here(self.ctl, KillPoint::AfterRunInstances, true)
        {
            return killed().await;
        }
        Ok((instance, offering))
    }

    async fn terminate(&self, ids: &[InstanceId]) -> Result<(), FleetError> {
        self.enter("ec2:TerminateInstances", 100, 600).await?;
        let mut w = self.ctx.lock();
        let now = self.ctx.now();
        for id in ids {
            w.terminate(id.as_str(), now, self.ctl);
        }
        self.ctx.poke.notify_one();
        Ok(())
    }
}

// ---- Gitea ----

/// Gitea's REST API and runner registration over the simulated server.
pub(crate) struct SimForge {
    pub ctx: Arc<Ctx>,
    pub ctl: Option<usize>,
}

impl SimForge {
    async fn enter(&self, kind: &str) -> Result<(), ForgeError> {
        self.ctx
            .call(kind, (20, 150), |w, now| {
                let five_xx = w.faults.gitea_5xx;
                if SimWorld::in_window(&w.gitea_down, now) {
                    w.fault("gitea-outage-call");
                    // Half the calls in an outage hang until the caller's timeout.
                    let extra = if w.chance(0.5) { 30_000 } else { 0 };
                    Some((ForgeError::Unavailable("502 Bad Gateway".into()), extra))
                } else if w.chance(five_xx) {
                    w.fault("gitea-5xx");
                    let e = ForgeError::Unavailable("500 Internal Server Error".into());
                    Some((e, 0))
                } else {
                    None
                }
            })
            .await
    }
}

#[async_trait]
impl Forge for SimForge {
    async fn version(&self) -> Result<ForgeVersion, ForgeError> {
        self.enter("gitea:version").await?;
        Ok(VERSION)
    }

    async fn list_runners(&self) -> Result<Vec<ForgeRunner>, ForgeError> {
        self.enter("gitea:list_runners").await?;
        let mut w = self.ctx.lock();
        let now = self.ctx.now();
        let mut out: Vec<ForgeRunner> = w.runners.values().map(|r| r.view(now)).collect();
        // Released Gitea orders the list by last contact only; rows move between pages while
        // it is read, and one can be skipped while the list still looks whole.
        let paging = w.faults.runner_paging;
        if out.len() > 1 && w.chance(paging) {
            w.fault("runner-list-skipped-row");
            let k = w.rng.random_range(0..out.len());
            out.remove(k);
        }
        out.shuffle(&mut w.rng);
        Ok(out)
    }

    async fn get_runner(&self, id: i64) -> Result<Option<ForgeRunner>, ForgeError> {
        self.enter("gitea:get_runner").await?;
        let w = self.ctx.lock();
        let now = self.ctx.now();
        Ok(w.runners.get(&id).map(|r| r.view(now)))
    }

    async fn delete_runner(&self, id: i64) -> Result<(), ForgeError> {
        self.enter("gitea:delete_runner").await?;
        let mut w = self.ctx.lock();
        let now = self.ctx.now();
        w.delete_runner(id, now, self.ctl);
        self.ctx.poke.notify_one();
        Ok(())
    }

    async fn disable_runner(&self, id: i64) -> Result<(), ForgeError> {
        self.enter("gitea:disable_runner").await?;
        self.ctx.lock().disable_runner(id);
        Ok(())
    }

    async fn registration_token(&self) -> Result<Secret, ForgeError> {
        self.enter("gitea:registration_token").await?;
        Ok(Secret::new("sim-registration-token"))
    }

    async fn register_runner(
        &self,
        name: &RunnerName,
        labels: &[String],
    ) -> Result<RegisteredRunner, ForgeError> {
        self.enter("gitea:register").await?;
        let id = self.ctx.lock().register(name.as_str(), labels, true);
        if self.ctx.kill_here(self.ctl, KillPoint::AfterRegister, true) {
            return killed().await;
        }
        Ok(RegisteredRunner {
            id,
            uuid: format!("00000000-0000-4000-8000-{id:012}"),
            token: Secret::new(format!("sim-runner-token-{id}")),
            name: name.clone(),
        })
    }

    async fn get_job(&self, _repo: &str, id: i64) -> Result<JobSeen, ForgeError> {
        self.enter("gitea:get_job").await?;
        let w = self.ctx.lock();
        let Some(j) = w.jobs.get(&id) else {
            return Ok(JobSeen {
                id,
                found: JobFound::Missing,
            });
        };
        let action = match j.status {
            JobStatus::Queued => JobAction::Queued,
            JobStatus::Running => JobAction::InProgress,
            JobStatus::Done => JobAction::Completed,
        };
        Ok(JobSeen {
            id,
            found: JobFound::Job {
                attempt: j.attempt,
                action,
                runner: j.runner_name.clone(),
                conclusion: j.conclusion.clone(),
                labels: j.labels.clone(),
                counting: AttemptCounting::RaisedOnPick,
            },
        })
    }

    async fn queued_jobs(&self) -> Result<Vec<QueuedJob>, ForgeError> {
        self.enter("gitea:queued_jobs").await?;
        let mut w = self.ctx.lock();
        let mut out: Vec<QueuedJob> = w
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Queued)
            .map(|j| QueuedJob {
                id: j.id,
                attempt: j.attempt,
                labels: j.labels.clone(),
                repo: j.repo.clone(),
                name: j.name.clone(),
                run_id: Some(j.run_id),
                counting: AttemptCounting::RaisedOnPick,
            })
            .collect();
        // The list has no order before Gitea 1.27.
        out.shuffle(&mut w.rng);
        Ok(out)
    }

    async fn workflow_files(&self, repo: &str, _commit: &str) -> Result<Vec<RepoFile>, ForgeError> {
        Err(ForgeError::NotFound(format!(
            "{repo}: the simulator models demand mode `jobs` only"
        )))
    }

    async fn changed_files(
        &self,
        repo: &str,
        _before: &str,
        _after: &str,
    ) -> Result<Option<Vec<String>>, ForgeError> {
        Err(ForgeError::NotFound(format!(
            "{repo}: the simulator models demand mode `jobs` only"
        )))
    }
}
