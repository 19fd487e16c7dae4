//! Observe: read all sources together, and say which ones were seen whole.

use std::collections::HashSet;

use futures::StreamExt;
use model::observed::{DesiredView, Observed, Seen};

use super::Reconciler;

/// The most jobs read one by one in a pass; runs whose job was not read decide nothing this
/// pass and are read in a later one.
pub const MAX_JOB_READS: usize = 256;

/// What one pass saw, with the errors that made any source partial.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The table.
    pub desired: DesiredView,
    /// EC2 and Gitea.
    pub observed: Observed,
    /// One line per source that failed, e.g. `ec2: throttled by EC2: …`.
    pub errors: Vec<(&'static str, String)>,
}

impl Observation {
    /// Whether every source was seen whole.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.errors.is_empty()
    }
}

impl Reconciler {
    /// Reads the table, EC2, Gitea's runners and (in jobs mode, Gitea 1.25+) its queued jobs,
    /// all at once. A source that fails becomes `Seen::Partial` (or an incomplete table), never
    /// an error of the whole pass: the planner then holds back anything destructive.
    pub async fn observe(&self) -> Observation {
        let jobs_wanted = self.features.queued_jobs;
        // The list shows nothing launched later than this; a machine missing from it is
        // judged against this time, not the (later) time of planning.
        let instances_read_at = self.clock.now();
        let (desired, instances, runners, jobs) = tokio::join!(
            self.timed(self.store.list_active()),
            self.timed(self.fleet.list()),
            self.timed(self.forge.list_runners()),
            async {
                if jobs_wanted {
                    Some(self.timed(self.forge.queued_jobs()).await)
                } else {
                    None
                }
            }
        );
        let mut errors = Vec::new();
        let mut desired = desired.unwrap_or_else(|e| {
            errors.push(("dynamodb", e));
            DesiredView {
                complete: false,
                ..DesiredView::default()
            }
        });
        if !desired.invalid.is_empty() {
            for row in &desired.invalid {
                tracing::warn!(run = %row.key, error = %row.error, "invalid row in the desired-state table; its instances are left alone");
            }
        }
        let instances = seen(instances, "ec2", &mut errors);
        let mut runners = seen(runners, "gitea runners", &mut errors);
        let queued_jobs = match jobs {
            Some(result) => seen(result, "gitea queued jobs", &mut errors),
            None => Seen::Unavailable,
        };
        if let (true, Seen::Complete { items }) = (desired.complete, &mut runners) {
            if let Err(e) = self
                .confirm_runners(&desired.runs, instances.items(), items)
                .await
            {
                errors.push(("gitea runners", e.clone()));
                runners = Seen::Partial {
                    items: std::mem::take(items),
                    error: e,
                };
            }
        }
        let jobs_read = match &queued_jobs {
            Seen::Complete { items } => self.read_jobs(&desired.runs, items).await,
            _ => Vec::new(),
        };
        self.note_finished(&mut desired, &queued_jobs).await;
        if let Seen::Complete { items } = &instances {
            self.notices.forget_absent(items);
        }
        let disabled_since =
            self.disabled
                .observe(runners.items(), runners.is_complete(), self.clock.now());
        Observation {
            desired,
            observed: Observed {
                instances,
                runners,
                queued_jobs,
                jobs_read,
                notices: self.notices.snapshot(),
                disabled_since,
                instances_read_at: Some(instances_read_at),
                pools_without_capacity: self
                    .config
                    .pools
                    .iter()
                    .filter_map(|(name, p)| {
                        let until = self.fleet.without_capacity_until(p)?;
                        Some((name.clone(), until))
                    })
                    .collect(),
            },
            errors,
        }
    }

    /// Makes the runner listing trustworthy for what we act on: every runner a live run or a
    /// live instance of ours expects that the listing skipped is read by id (added when
    /// found; absent only on Gitea's 404); names with no known id get one more listing,
    /// merged in. An error leaves the listing partial.
    async fn confirm_runners(
        &self,
        runs: &[model::DesiredRun],
        instances: &[model::Instance],
        listed: &mut Vec<model::ForgeRunner>,
    ) -> Result<(), String> {
        let checks =
            model::observed::runner_checks(runs, instances, &self.config.cluster_id, listed);
        if !checks.names.is_empty() {
            let again = self.timed(self.forge.list_runners()).await?;
            let known: HashSet<i64> = listed.iter().map(|r| r.id).collect();
            listed.extend(again.into_iter().filter(|r| !known.contains(&r.id)));
        }
        let found: Vec<Result<Option<model::ForgeRunner>, String>> =
            futures::stream::iter(checks.ids.iter().copied())
                .map(|id| self.timed(self.forge.get_runner(id)))
                .buffer_unordered(self.limits.concurrency.max(1))
                .collect()
                .await;
        let known: HashSet<i64> = listed.iter().map(|r| r.id).collect();
        for result in found {
            if let Some(r) = result? {
                if !known.contains(&r.id) {
                    tracing::debug!(runner = %r.name, id = r.id, "runner missing from the listing found by id");
                    listed.push(r);
                }
            }
        }
        Ok(())
    }

    /// Reads, one by one, the jobs of active runs that still think their job waits but do
    /// not find it in the queued list (see `model::observed::jobs_to_read`). A read that
    /// fails is left out: the planner then decides nothing about that run this pass.
    async fn read_jobs(
        &self,
        runs: &[model::DesiredRun],
        queued: &[model::QueuedJob],
    ) -> Vec<model::observed::JobSeen> {
        let wanted = model::observed::jobs_to_read(runs, queued);
        if wanted.len() > MAX_JOB_READS {
            tracing::info!(
                wanted = wanted.len(),
                read = MAX_JOB_READS,
                "many runs' jobs are missing from the queued list (webhooks late?); reading some this pass, the rest next passes"
            );
        }
        futures::stream::iter(wanted.into_iter().take(MAX_JOB_READS))
            .map(|(repo, id)| async move {
                match self.timed(self.forge.get_job(&repo, id)).await {
                    Ok(seen) => Some(seen),
                    Err(e) => {
                        tracing::debug!(job = id, repo = %repo, error = %e, "could not read a job");
                        None
                    }
                }
            })
            .buffer_unordered(self.limits.concurrency.max(1))
            .filter_map(|seen| async move { seen })
            .collect()
            .await
    }

    /// For queued jobs with no active run, reads their row (several at once, up to the
    /// concurrency limit: a burst of new jobs must not cost one round trip each in turn): a
    /// run that ended (failed after its attempts, say) must not be backfilled again.
    async fn note_finished(&self, desired: &mut DesiredView, jobs: &Seen<model::QueuedJob>) {
        let active: HashSet<String> = desired
            .runs
            .iter()
            .map(|r| r.id.to_string())
            .chain(desired.invalid.iter().map(|r| r.key.clone()))
            .collect();
        let unknown: Vec<model::RunId> = jobs
            .items()
            .iter()
            .map(model::QueuedJob::run_id)
            .filter(|id| !active.contains(id.as_str()))
            .collect();
        let finished: Vec<Option<model::DesiredRun>> = futures::stream::iter(unknown)
            .map(|id| async move {
                match self.timed(self.store.get(&id)).await {
                    Ok(Some(run)) if run.status.phase.is_final() => Some(run),
                    Ok(_) => None,
                    Err(e) => {
                        // Unknown: treat as not ended; creating the run again is idempotent.
                        tracing::debug!(run = %id, error = %e, "could not read the row of a queued job");
                        None
                    }
                }
            })
            .buffered(self.limits.concurrency.max(1))
            .collect()
            .await;
        desired.finished.extend(finished.into_iter().flatten());
    }
}

fn seen<T>(
    result: Result<Vec<T>, String>,
    source: &'static str,
    errors: &mut Vec<(&'static str, String)>,
) -> Seen<T> {
    match result {
        Ok(items) => Seen::Complete { items },
        Err(error) => {
            errors.push((source, error.clone()));
            Seen::Partial {
                items: Vec::new(),
                error,
            }
        }
    }
}
