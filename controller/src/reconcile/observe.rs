//! Observe: read all sources together, and say which ones were seen whole.

use std::collections::HashSet;

use model::observed::{DesiredView, Observed, Seen};

use super::Reconciler;

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
        let runners = seen(runners, "gitea runners", &mut errors);
        let queued_jobs = match jobs {
            Some(result) => seen(result, "gitea queued jobs", &mut errors),
            None => Seen::Unavailable,
        };
        self.note_finished(&mut desired, &queued_jobs).await;
        Observation {
            desired,
            observed: Observed {
                instances,
                runners,
                queued_jobs,
            },
            errors,
        }
    }

    /// For queued jobs with no active run, reads their row one by one: a run that ended
    /// (failed after its attempts, say) must not be backfilled again.
    async fn note_finished(&self, desired: &mut DesiredView, jobs: &Seen<model::QueuedJob>) {
        let active: HashSet<String> = desired
            .runs
            .iter()
            .map(|r| r.id.to_string())
            .chain(desired.invalid.iter().map(|r| r.key.clone()))
            .collect();
        for job in jobs.items() {
            let id = job.run_id();
            if active.contains(id.as_str()) {
                continue;
            }
            match self.timed(self.store.get(&id)).await {
                Ok(Some(run)) if run.status.phase.is_final() => desired.finished.push(id),
                Ok(_) => {}
                Err(e) => {
                    // Unknown: treat as not ended; creating the run again is idempotent.
                    tracing::debug!(run = %id, error = %e, "could not read the row of a queued job");
                }
            }
        }
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
