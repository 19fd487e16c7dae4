//! Planning cost: a world of N runs with as many instances and runners, planned repeatedly.
//! Prints one line per figure, `<name>: <value> <unit>`: `plan <N>: <milliseconds> ms` per size
//! (the median of several passes, after one untimed pass), and `plan <N>/<n>: <ratio> x`, the
//! time for ten times the runs as a multiple, so growth worse than n log n (about x13) shows
//! at a glance. With `--json <path>`, also writes the figures there as a JSON list of
//! `{"name", "value", "unit"}`. With `--digest`, also prints a SHA-256 of each size's plan
//! (as JSON), so a change meant only to make planning faster can show it plans the same.
//!
//! Run with `make bench` (or `cargo bench -p tinqs-model --bench plan`).

use std::time::Instant;

use model::desired::JobState;
use model::observed::InstanceState;
use model::testing::{at, instance_for, job_run, name_of, policy, queued, runner, running, Scene};

/// A busy world of `n` runs: a mix of pending, booting, idle, busy, finished and lost runs,
/// each with its instance and runner, plus queued jobs for a third of them.
fn world(n: usize) -> Scene {
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
    Scene::new(runs, instances, runners, jobs, now)
}

/// Passes timed for `n` runs; the figure is their median. About a second of passes per size
/// (at least 9), so that one pass slowed by the machine moves the median of the small sizes,
/// and the ratios built on them, no more than that of the large one.
fn passes(n: usize) -> usize {
    (1_000_000 / n.max(1)).clamp(9, 101)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut json = None;
    let mut digest = false;
    while let Some(arg) = args.next() {
        if arg == "--json" {
            json = args.next();
        } else if arg == "--digest" {
            digest = true;
        }
    }
    let mut p = policy();
    p.safety.max_launches_per_pass = 1_000;
    p.safety.max_terminations_per_pass = 1_000;
    p.safety.max_instances = u32::MAX;
    for pool in &mut p.pools {
        pool.max_instances = u32::MAX;
    }
    let mut figures = Vec::new();
    let mut figure = |name: String, value: f64, unit: &str| {
        let value = (value * 10.0).round() / 10.0;
        println!("{name}: {value:.1} {unit}");
        figures.push(serde_json::json!({"name": name, "value": value, "unit": unit}));
    };
    let mut previous: Option<(usize, f64)> = None;
    for n in [1_000, 10_000, 100_000] {
        let w = world(n);
        let observed = w.observed();
        // One untimed pass first, so every timed pass finds the allocator warmed up alike.
        let warm = model::plan(&w.desired, &observed, &p, w.now);
        assert!(
            !warm.actions.is_empty(),
            "the benchmark world must give the planner work"
        );
        if digest {
            use sha2::Digest;
            let text = serde_json::to_vec(&warm).expect("a plan serialises");
            println!("digest {n}: {}", hex::encode(sha2::Sha256::digest(&text)));
        }
        drop(warm);
        let mut times: Vec<f64> = (0..passes(n))
            .map(|_| {
                let start = Instant::now();
                let plan = model::plan(&w.desired, &observed, &p, w.now);
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                drop(plan);
                ms
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        figure(format!("plan {n}"), median, "ms");
        if let Some((pn, pms)) = previous {
            // Time for ten times the runs, as a multiple: n log n is about 12.5 to 13.3.
            figure(format!("plan {n}/{pn}"), median / pms, "x");
        }
        previous = Some((n, median));
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&figures).expect("figures serialise");
        if let Err(e) = std::fs::write(&path, text + "\n") {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
}
