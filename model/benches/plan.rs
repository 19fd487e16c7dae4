//! Planning cost: a world of N runs with as many instances and runners, planned repeatedly.
//! Prints one line per size, `plan <N>: <milliseconds> ms` (the median of several passes), and
//! the ratio to the smaller size, so growth worse than n log n shows at a glance.
//!
//! Run with `make bench` (or `cargo bench -p tinqs-model --bench plan`).

use std::time::Instant;

use model::desired::JobState;
use model::observed::InstanceState;
use model::testing::{at, instance_for, job_run, name_of, policy, queued, runner, running, World};

/// A busy world of `n` runs: a mix of pending, booting, idle, busy, finished and lost runs,
/// each with its instance and runner, plus queued jobs for a third of them.
fn world(n: usize) -> World {
    let now = at(20_000);
    let mut runs = Vec::with_capacity(n);
    let mut instances = Vec::with_capacity(n);
    let mut runners = Vec::with_capacity(n);
    let mut jobs = Vec::with_capacity(n / 3);
    for k in 0..n {
        let job = i64::try_from(k).unwrap_or(i64::MAX) + 1;
        let labels: &[&str] = if k % 2 == 0 { &["go"] } else { &["docker"] };
        let mut r = job_run(job, labels);
        let id = format!("i-{job:017x}");
        let launched = at(20_000 - 60 * (k as u64 % 300));
        match k % 6 {
            0 => {} // pending
            1 => r = running(r, &id, launched),
            2 => {
                r = running(r, &id, launched);
                r.status.registered_at = Some(launched.plus(std::time::Duration::from_secs(30)));
            }
            3 => {
                r = running(r, &id, launched);
                r.status.registered_at = Some(launched);
                r.spec.job_state = JobState::InProgress {
                    runner: Some(name_of(&r).to_string()),
                };
            }
            4 => {
                r = running(r, &id, launched);
                r.spec.job_state = JobState::Completed {
                    conclusion: "success".into(),
                };
            }
            _ => r = running(r, &id, launched),
        }
        let state = if k % 6 == 5 {
            InstanceState::Terminated
        } else {
            InstanceState::Running
        };
        if k % 6 != 0 {
            instances.push(instance_for(&r, &id, labels[0], state, launched));
            runners.push(runner(
                job,
                name_of(&r).as_str(),
                &[labels[0], "linux"],
                k % 6 != 1,
                k % 6 == 3,
            ));
        } else {
            // Pending runs: stand-in instances and runners of other clusters' size.
            instances.push(model::testing::bare_instance(
                &id,
                InstanceState::Running,
                launched,
            ));
            runners.push(runner(
                job,
                &format!("standing-{job}"),
                &["host"],
                true,
                false,
            ));
        }
        if k % 3 == 0 {
            jobs.push(queued(job, labels));
        }
        runs.push(r);
    }
    World::new(runs, instances, runners, jobs, now)
}

fn main() {
    let mut p = policy();
    p.safety.max_launches_per_pass = 1_000;
    p.safety.max_terminations_per_pass = 1_000;
    p.safety.max_instances = u32::MAX;
    for pool in &mut p.pools {
        pool.max_instances = u32::MAX;
    }
    let mut previous: Option<(usize, f64)> = None;
    for n in [1_000, 10_000, 100_000] {
        let w = world(n);
        let observed = w.observed();
        let passes = if n >= 100_000 { 3 } else { 7 };
        let mut times: Vec<f64> = (0..passes)
            .map(|_| {
                let start = Instant::now();
                let plan = model::plan(&w.desired, &observed, &p, w.now);
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                assert!(
                    !plan.actions.is_empty(),
                    "the benchmark world must give the planner work"
                );
                ms
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!("plan {n}: {median:.1} ms");
        if let Some((pn, pms)) = previous {
            let size = n as f64 / pn as f64;
            eprintln!(
                "  x{size:.0} size -> x{:.1} time (n log n would be about x{:.1})",
                median / pms,
                size * (n as f64).ln() / (pn as f64).ln()
            );
        }
        previous = Some((n, median));
    }
}
