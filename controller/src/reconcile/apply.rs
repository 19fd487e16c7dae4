//! Apply: carry out a plan. Every decision was made by the planner; this module only executes,
//! with bounded concurrency, a timeout on every call, and one typed result per action
//! ([`StepError`]). One failed action never stops another run's; a lost lease stops them all.
//!
//! Order: new runs are created first (several at once); then each run's actions run one after
//! another in plan order, never re-sorted (the planner emits them in an order that is safe as
//! written, see `model::Plan::misordered_steps`: disable, or deregister then terminate, then
//! the status change and the launch of the next attempt), stopping at the first that fails;
//! different runs concurrently. A cleanup names the run its machine was launched for even
//! when that run's row is gone (an orphan), so its runner is stopped before the machine goes
//! there too; only actions that name no run (a registration with no machine) are groups of
//! one. Once a write finds the lease lost, nothing more of the pass is carried
//! out: no store write, launch, registration or removal.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::stream::{self, StreamExt};
use model::desired::{DesiredRun, RunStatus};
use model::ids::client_token;
use model::userdata::{self, UserDataInput};
use model::{Action, RunId};

use super::error::{Skip, StepError};
use super::Reconciler;
use crate::fleet::LaunchRequest;
use crate::store::Lease;

/// The result of one action.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The action.
    pub action: Action,
    /// `Ok` or what went wrong (its text never holds a secret).
    pub result: Result<(), StepError>,
}

/// Every action's result.
#[derive(Debug, Clone, Default)]
pub struct ApplyReport {
    /// One per action, in no particular order.
    pub outcomes: Vec<Outcome>,
}

impl ApplyReport {
    /// How many actions failed.
    #[must_use]
    pub fn failures(&self) -> usize {
        self.outcomes.iter().filter(|o| o.result.is_err()).count()
    }

    /// Whether a write of the pass found the lease lost (and the rest of the pass stopped).
    #[must_use]
    pub fn lease_lost(&self) -> bool {
        self.outcomes
            .iter()
            .any(|o| o.result.as_ref().is_err_and(StepError::lease_lost))
    }
}

/// The lease as one pass holds it: the first write that finds it lost says so here, and every
/// later step of the pass checks before it acts.
struct PassLease<'a> {
    lease: &'a Lease,
    lost: AtomicBool,
}

impl<'a> PassLease<'a> {
    fn new(lease: &'a Lease) -> Self {
        PassLease {
            lease,
            lost: AtomicBool::new(false),
        }
    }

    /// `Ok` while the lease is not known lost.
    fn check(&self) -> Result<(), StepError> {
        if self.lost.load(Ordering::SeqCst) {
            Err(StepError::Skipped(Skip::LeaseLost))
        } else {
            Ok(())
        }
    }

    /// Notes `result`'s lost lease, if it found one; passes it on.
    fn note<T>(&self, result: Result<T, StepError>) -> Result<T, StepError> {
        if matches!(result, Err(StepError::LeaseLost)) {
            self.lost.store(true, Ordering::SeqCst);
        }
        result
    }
}

/// A run's actions, applied in order against the status as it evolves.
struct RunGroup {
    run: Option<DesiredRun>,
    actions: Vec<Action>,
}

impl Reconciler {
    /// Applies `plan` to the world it was made from (`runs` are the rows the planner saw).
    pub async fn apply(
        &self,
        plan: &model::Plan,
        desired: &model::DesiredView,
        lease: &Lease,
    ) -> ApplyReport {
        let lease = PassLease::new(lease);
        let mut report = ApplyReport::default();
        // Ended runs too: one failed after its attempts may be tried again.
        let mut by_id: BTreeMap<RunId, DesiredRun> = desired
            .runs
            .iter()
            .chain(&desired.finished)
            .map(|r| (r.id.clone(), r.clone()))
            .collect();

        // Phase 1: create backfilled runs (a row that exists already is left as it is), several
        // at once: a burst of jobs backfilled together must not cost a round trip each in turn.
        let to_create: Vec<Action> = plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::CreateRun { .. }))
            .cloned()
            .collect();
        let creates: Vec<(Action, Result<Option<DesiredRun>, StepError>)> = stream::iter(to_create)
            .map(|action: Action| async move {
                let result = self.create_run(&action).await;
                (action, result)
            })
            .buffered(self.limits.concurrency.max(1))
            .collect()
            .await;
        for (action, result) in creates {
            // Only a row this pass wrote is the one its later steps were planned on; a row
            // that existed already (written by a webhook or an earlier pass meanwhile) may be
            // in any phase, so the run's other actions find no row and wait for the next pass.
            let result = result.map(|created| {
                if let Some(row) = created {
                    by_id.insert(row.id.clone(), row);
                }
            });
            report.outcomes.push(self.record(&action, result));
        }

        // Phase 2: group the rest by the run they name (a cleanup's run may be one this view
        // does not hold: a deleted row whose machine is an orphan); the rest are groups of
        // one.
        let mut groups: Vec<RunGroup> = Vec::new();
        let mut index: BTreeMap<RunId, usize> = BTreeMap::new();
        for action in &plan.actions {
            if matches!(action, Action::CreateRun { .. }) {
                continue;
            }
            let key = action.run().cloned();
            match key {
                Some(run) => {
                    let slot = *index.entry(run.clone()).or_insert_with(|| {
                        groups.push(RunGroup {
                            run: by_id.get(&run).cloned(),
                            actions: Vec::new(),
                        });
                        groups.len() - 1
                    });
                    groups[slot].actions.push(action.clone());
                }
                None => groups.push(RunGroup {
                    run: None,
                    actions: vec![action.clone()],
                }),
            }
        }
        let lease = &lease;
        let results: Vec<Vec<Outcome>> = stream::iter(groups)
            .map(|g| async move { self.apply_group(g, lease).await })
            .buffer_unordered(self.limits.concurrency.max(1))
            .collect()
            .await;
        report.outcomes.extend(results.into_iter().flatten());
        report
    }

    /// Creates the row of a backfilled run: the row just written, or `None` when another
    /// writer made it first (not the row the pass planned on).
    async fn create_run(&self, action: &Action) -> Result<Option<DesiredRun>, StepError> {
        let Action::CreateRun { run, spec, .. } = action else {
            return Err(StepError::Invalid(format!("not a run to create: {action}")));
        };
        let row = DesiredRun::new(run.clone(), spec.clone());
        if self.call(self.store.create(&row)).await? {
            return Ok(Some(row));
        }
        tracing::info!(run = %run, "the backfilled run existed already; its planned steps wait for the next pass");
        Ok(None)
    }

    /// Carries out one run's actions one after another, in plan order.
    async fn apply_group(&self, group: RunGroup, lease: &PassLease<'_>) -> Vec<Outcome> {
        let RunGroup { mut run, actions } = group;
        let mut outcomes = Vec::with_capacity(actions.len());
        let mut blocked: Option<StepError> = None;
        for action in actions {
            // A step after a failed one of the same run would act on a state that did not
            // happen (a machine terminated while its registration still takes jobs, a status
            // that did not come true): skip it; the next pass plans again. After a lost
            // lease nothing is carried out at all.
            let result = match (&blocked, lease.check()) {
                (_, Err(lost)) => Err(lost),
                (Some(e), Ok(())) => {
                    Err(StepError::Skipped(Skip::EarlierStep(Box::new(e.clone()))))
                }
                (None, Ok(())) => {
                    let result = self.apply_one(&action, run.as_mut(), lease).await;
                    if let Err(e) = &result {
                        blocked = Some(e.clone());
                    }
                    result
                }
            };
            outcomes.push(self.record(&action, result));
        }
        outcomes
    }

    async fn apply_one(
        &self,
        action: &Action,
        run: Option<&mut DesiredRun>,
        lease: &PassLease<'_>,
    ) -> Result<(), StepError> {
        let not_in_view =
            |id: &RunId| StepError::Invalid(format!("run {id} is not in this pass's view"));
        match action {
            Action::CreateRun { .. } => Ok(()),
            Action::Terminate { instance, .. } => {
                self.call(self.fleet.terminate(std::slice::from_ref(instance)))
                    .await
            }
            Action::Deregister {
                runner_id, guard, ..
            } => {
                if let Some(seen) = guard {
                    // The plan's precondition: the runner is still as it was seen.
                    match self.call(self.forge.get_runner(*runner_id)).await? {
                        None => return Ok(()),
                        Some(now) if !seen.still_holds(now.online, now.busy) => {
                            return Err(StepError::RunnerChanged {
                                runner_id: *runner_id,
                                online: now.online,
                                busy: now.busy,
                            })
                        }
                        Some(_) => {}
                    }
                }
                self.call(self.forge.delete_runner(*runner_id)).await
            }
            Action::DisableRunner { runner_id, .. } => {
                self.call(self.forge.disable_runner(*runner_id)).await?;
                self.disabled.record(*runner_id, self.clock.now());
                Ok(())
            }
            Action::UpdateStatus {
                run: id, change, ..
            } => {
                let run = run.ok_or_else(|| not_in_view(id))?;
                let next = run.status.apply(change, self.clock.now());
                self.write_status(run, next, lease).await
            }
            Action::Launch {
                run: id,
                attempt,
                runner,
                pool,
                labels,
                ..
            } => {
                let run = run.ok_or_else(|| not_in_view(id))?;
                self.launch(run, *attempt, runner, pool, labels, lease)
                    .await
            }
        }
    }

    /// Writes `next` over the run's status, conditional on the version we hold and the lease
    /// (not at all once the pass found the lease lost).
    async fn write_status(
        &self,
        run: &mut DesiredRun,
        next: RunStatus,
        lease: &PassLease<'_>,
    ) -> Result<(), StepError> {
        lease.check()?;
        let written = lease.note(
            self.call(
                self.store
                    .write_status(&run.id, run.status.version, &next, lease.lease),
            )
            .await,
        )?;
        run.status = written;
        Ok(())
    }

    /// Runs one call of a port under the call timeout, its error typed.
    async fn call<T, E: Into<StepError>>(
        &self,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, StepError> {
        match tokio::time::timeout(self.limits.call_timeout, fut).await {
            Ok(result) => result.map_err(Into::into),
            Err(_) => Err(StepError::TimedOut(self.limits.call_timeout)),
        }
    }

    /// When the cache service is configured: a fresh random credential for `runner`, its hash
    /// recorded in the table, and the `cache.external_server` URL holding it. `None` (the
    /// runner goes without the cache) when the hash cannot be recorded: a runner without a
    /// cache is better than none.
    async fn cache_credential(
        &self,
        runner: &model::RunnerName,
        pool: &str,
    ) -> Option<model::secret::Secret> {
        let cache = self.config.cache.as_ref()?;
        self.config.server.cache_listen.as_ref()?;
        let token = hex::encode(rand::random::<[u8; 32]>());
        let expires = self
            .clock
            .now()
            .plus(self.config.max_lifetime(pool))
            .plus(crate::webhook::RUNNER_RECORD_KEPT);
        let hash = model::cache::token_hash(&token);
        match self
            .call(
                self.store
                    .set_runner_credential(runner.as_str(), &hash, expires),
            )
            .await
        {
            Ok(()) => Some(model::secret::Secret::new(model::cache::runner_url(
                &cache.url,
                runner.as_str(),
                &token,
            ))),
            Err(e) => {
                tracing::warn!(runner = %runner, error = %e, "cannot record the runner's cache credential; it runs without the cache");
                None
            }
        }
    }

    /// The crash-safe launch: claim, register, launch, record. A crash between any two steps
    /// is repaired by a later pass (a tagged instance is adopted; a stale claim is launched
    /// again with the same client token; an unused registration is deregistered), and so is
    /// a launch stopped between two steps by a lost lease.
    async fn launch(
        &self,
        run: &mut DesiredRun,
        attempt: u32,
        runner: &model::RunnerName,
        pool: &str,
        labels: &[String],
        lease: &PassLease<'_>,
    ) -> Result<(), StepError> {
        let now = self.clock.now();
        // 1. Claim: only one writer can move the run to Launching at this version.
        let claimed = run.status.claimed(attempt, runner.clone(), now);
        self.write_status(run, claimed, lease)
            .await
            .map_err(|e| e.at("claim failed"))?;

        // From here on a lost lease stops the launch between two steps; the claim it leaves
        // goes stale and a later pass (of whoever holds the lease) launches again.
        let stopped = |e: StepError| e.at("claimed, then stopped");

        // 2. Identity for the instance.
        lease.check().map_err(stopped)?;
        let registration = match self.config.gitea.registration {
            model::config::RegistrationMode::Preregister => {
                let reg = self
                    .call(self.forge.register_runner(runner, labels))
                    .await?;
                let registered = run.status.preregistered(reg.id);
                self.write_status(run, registered, lease).await?;
                userdata::Registration::Preregistered {
                    id: reg.id,
                    uuid: reg.uuid,
                    token: reg.token,
                }
            }
            model::config::RegistrationMode::SelfRegister => {
                let token = self.call(self.forge.registration_token()).await?;
                userdata::Registration::SelfRegister {
                    registration_token: token,
                }
            }
        };
        lease.check().map_err(stopped)?;
        let cache_url = self.cache_credential(runner, pool).await;
        let rendered = UserDataInput::for_pool(&self.config, pool, runner.clone(), registration)
            .and_then(|mut input| {
                input.cache_url = cache_url;
                userdata::render(&input)
            });
        let (user_data, pool_config) = match (rendered, self.config.pools.get(pool)) {
            (Ok(user_data), Some(pool_config)) => (user_data, pool_config.clone()),
            (Err(e), _) => {
                let e = StepError::Invalid(e.to_string());
                return Err(self.abandon_launch(run, e, "", lease).await);
            }
            (Ok(_), None) => {
                let e = StepError::Invalid(format!("pool {pool} is not configured"));
                return Err(self.abandon_launch(run, e, "", lease).await);
            }
        };

        // 3. Launch, idempotent per client token on real EC2.
        lease.check().map_err(stopped)?;
        let request = LaunchRequest {
            run: run.id.clone(),
            attempt,
            runner: runner.clone(),
            pool: pool.to_owned(),
            pool_config,
            user_data,
            client_token: client_token(&self.config.cluster_id, &run.id, attempt),
            runner_id: run.status.runner_id,
        };
        let launched =
            match tokio::time::timeout(self.limits.launch_timeout, self.fleet.launch(&request))
                .await
            {
                Ok(Ok((instance, _offering))) => instance,
                Ok(Err(e)) => {
                    return Err(self
                        .abandon_launch(run, e.into(), "launch failed", lease)
                        .await)
                }
                Err(_) => {
                    // Unknown outcome: keep the claim. The next passes adopt the instance if it
                    // started, or launch again with the same client token after the launch timeout.
                    return Err(StepError::TimedOut(self.limits.launch_timeout)
                        .at("launch outcome unknown, to be adopted or retried"));
                }
            };

        // 4. Record.
        let recorded = run
            .status
            .launched(launched.id.clone(), launched.launched_at.max(now));
        self.write_status(run, recorded, lease).await.map_err(|e| {
            e.at(format!(
                "instance {} launched but not recorded (it will be adopted)",
                launched.id
            ))
        })
    }

    /// A launch that cannot go on (EC2 refused it, or the boot script could not be made):
    /// drop the registration made for it and release the claim (back to Pending with the
    /// error, [`model::RunStatus::released`]), so the next pass tries again. Returns the
    /// error, at `stage` when one is named. With the lease lost, leaves both to the next
    /// holder (the ghost rule and the stale-claim rule).
    async fn abandon_launch(
        &self,
        run: &mut DesiredRun,
        error: StepError,
        stage: &str,
        lease: &PassLease<'_>,
    ) -> StepError {
        let error = if stage.is_empty() {
            error
        } else {
            error.at(stage)
        };
        if lease.check().is_err() {
            return error;
        }
        if let Some(id) = run.status.runner_id {
            if let Err(e) = self.call(self.forge.delete_runner(id)).await {
                tracing::warn!(run = %run.id, runner_id = id, error = %e, "could not delete the unused registration; the ghost rule will");
            }
        }
        let released = run.status.released(error.to_string());
        if let Err(e) = self.write_status(run, released, lease).await {
            tracing::warn!(run = %run.id, error = %e, "could not release the claim; it goes stale and is retried");
        }
        error
    }

    fn record(&self, action: &Action, result: Result<(), StepError>) -> Outcome {
        let target = action.run().map(ToString::to_string).unwrap_or_default();
        match &result {
            Ok(()) => tracing::info!(kind = action.kind(), run = %target, "{action}"),
            Err(e) => {
                tracing::warn!(kind = action.kind(), run = %target, error = %e, error_kind = e.kind(), "failed: {action}");
            }
        }
        self.metrics
            .action(action, result.as_ref().err().map(StepError::kind));
        Outcome {
            action: action.clone(),
            result,
        }
    }
}
