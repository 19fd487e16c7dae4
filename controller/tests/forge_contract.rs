//! The forge port's contract (`tests/contract/forge.rs`) on the tests' `FakeForge`;
//! `tests/forge.rs` runs the same clauses on the Gitea client against the Gitea simulator, so
//! the fake the other tests rely on cannot drift from Gitea.

#[path = "contract/forge.rs"]
#[macro_use]
mod forge_contract;

use std::sync::atomic::{AtomicI64, Ordering};

use controller::forge::{FakeForge, Forge};
use forge_contract::ForgeRig;
use model::desired::AttemptCounting;
use model::observed::QueuedJob;

struct FakeRig {
    forge: FakeForge,
    next_job: AtomicI64,
}

fn rig() -> FakeRig {
    FakeRig {
        forge: FakeForge::new(),
        next_job: AtomicI64::new(100),
    }
}

impl ForgeRig for FakeRig {
    fn forge(&self) -> &dyn Forge {
        &self.forge
    }

    fn queue_job(&self, repo: &str, name: &str, labels: &[&str]) -> i64 {
        let id = self.next_job.fetch_add(1, Ordering::SeqCst);
        self.forge.queue_job(QueuedJob {
            id,
            attempt: 0,
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            repo: repo.to_owned(),
            name: name.to_owned(),
            run_id: Some(id),
            counting: AttemptCounting::RaisedOnPick,
        });
        id
    }
}

forge_contract!(rig());
