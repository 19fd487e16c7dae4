//! The jobs a simulated run gets: synthetic (a daily shape, bursts, a label mix, job
//! durations) or replayed from a CSV trace of a real history.

use std::time::Duration;

use model::config::Config;
use rand::rngs::StdRng;
use rand::Rng;

/// One job as it arrives in Gitea.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkJob {
    /// When it is queued, in milliseconds from the start of the run.
    pub at_ms: i64,
    /// Its `runs-on` labels.
    pub labels: Vec<String>,
    /// How long it runs once a runner takes it, in milliseconds.
    pub duration_ms: i64,
    /// Its conclusion: `success`, `failure` or `cancelled`.
    pub outcome: String,
}

const DAY_MS: f64 = 86_400_000.0;

/// A synthetic workload of `jobs` jobs for `config`'s pools.
///
/// - Arrivals: a Poisson process whose rate follows a daily shape (a trough at night, a peak
///   in the afternoon) around a mean that keeps the pools about half busy, plus a burst
///   (a pushed matrix: 10 to 30 jobs of one label set within a minute) every few hours.
/// - Labels: a pool's own label, sometimes with its extra labels, weighted by the pool's
///   size; 2% ask for a foreign label (served by standing runners, never by us).
/// - Durations: log-normal around 4 minutes, between 20 s and 45 minutes.
/// - Outcomes: 90% success, 8% failure, 2% cancelled.
#[must_use]
pub fn synthetic(config: &Config, jobs: usize, rng: &mut StdRng) -> Vec<WorkJob> {
    let pools: Vec<(String, Vec<String>, f64)> = config
        .pools
        .iter()
        .map(|(name, p)| {
            (
                name.clone(),
                p.extra_labels.clone(),
                f64::from(p.max_instances.max(1)),
            )
        })
        .collect();
    let total_weight: f64 = pools.iter().map(|p| p.2).sum();
    let capacity = total_weight.min(f64::from(config.safety.max_instances.max(1)));
    // Mean time an instance is held per job: the job plus about a minute of boot.
    let service_s = 240.0 * 1.4 + 60.0;
    let mean_rate = 0.5 * capacity / service_s; // jobs per second
    let foreign = config.foreign_labels.first().cloned();
    let mut out = Vec::with_capacity(jobs);
    let mut t_s = 0.0f64;
    let mut next_burst_s = 2.0 * 3600.0 * rng.random_range(0.5..1.5);
    while out.len() < jobs {
        // Thinning: draw at the peak rate, keep with the shape's share.
        let peak = mean_rate * 1.6;
        t_s += -rng.random_range(f64::EPSILON..1.0).ln() / peak;
        if t_s >= next_burst_s {
            let size = rng.random_range(10..=30usize);
            let labels = pick_labels(&pools, total_weight, rng);
            for _ in 0..size.min(jobs - out.len()) {
                let at = next_burst_s + rng.random_range(0.0..60.0);
                out.push(job(at, labels.clone(), rng));
            }
            next_burst_s += 3.0 * 3600.0 * rng.random_range(0.5..1.5);
            continue;
        }
        let shape = 1.0 - 0.6 * (2.0 * std::f64::consts::PI * t_s * 1000.0 / DAY_MS).cos();
        if rng.random_range(0.0..1.6) > shape {
            continue;
        }
        let labels = match &foreign {
            Some(f) if rng.random_range(0.0..1.0) < 0.02 => vec![f.clone()],
            _ => pick_labels(&pools, total_weight, rng),
        };
        out.push(job(t_s, labels, rng));
    }
    out.sort_by_key(|j| j.at_ms);
    out
}

fn pick_labels(pools: &[(String, Vec<String>, f64)], total: f64, rng: &mut StdRng) -> Vec<String> {
    let mut x = rng.random_range(0.0..total.max(f64::EPSILON));
    for (name, extras, w) in pools {
        if x < *w {
            let mut labels = vec![name.clone()];
            if !extras.is_empty() && rng.random_range(0.0..1.0) < 0.5 {
                labels.push(extras[rng.random_range(0..extras.len())].clone());
            }
            return labels;
        }
        x -= w;
    }
    pools.first().map(|p| vec![p.0.clone()]).unwrap_or_default()
}

fn job(at_s: f64, labels: Vec<String>, rng: &mut StdRng) -> WorkJob {
    // Log-normal by Box-Muller: median 240 s, sigma 0.8.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    let duration_s = (240.0f64.ln() + 0.8 * z).exp().clamp(20.0, 2700.0);
    let o = rng.random_range(0.0..1.0);
    let outcome = if o < 0.9 {
        "success"
    } else if o < 0.98 {
        "failure"
    } else {
        "cancelled"
    };
    WorkJob {
        at_ms: ms(at_s),
        labels,
        duration_ms: ms(duration_s),
        outcome: outcome.to_owned(),
    }
}

#[allow(clippy::cast_possible_truncation)]
fn ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// Reads a trace: CSV with the columns `queued_at,labels,duration,outcome`, one job a line.
///
/// - `queued_at`: seconds from any origin (`0`, `12.5`) or an RFC 3339 time
///   (`2026-03-01T09:00:00Z`); the earliest job starts the run.
/// - `labels`: the job's `runs-on` labels separated by `;` or spaces (`go;linux`).
/// - `duration`: seconds (`240`) or a duration (`4m`, `1h 5m`).
/// - `outcome`: `success`, `failure` or `cancelled` (empty: success).
///
/// A first line naming the columns is skipped; blank lines and lines starting with `#` too.
///
/// # Errors
/// The first bad line, with its number and what is wrong with it.
pub fn parse_trace(text: &str) -> Result<Vec<WorkJob>, String> {
    let mut jobs = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if n == 1 && line.to_ascii_lowercase().starts_with("queued_at") {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() < 3 || fields.len() > 4 {
            return Err(format!(
                "trace line {n}: expected 3 or 4 comma-separated fields (queued_at,labels,duration,outcome), found {}",
                fields.len()
            ));
        }
        let at_ms = parse_when(fields[0]).map_err(|e| format!("trace line {n}: queued_at {e}"))?;
        let labels: Vec<String> = fields[1]
            .split([';', ' '])
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if labels.is_empty() {
            return Err(format!("trace line {n}: labels are empty"));
        }
        if let Some(l) = labels
            .iter()
            .find(|l| model::text::label_problem(l).is_some())
        {
            return Err(format!(
                "trace line {n}: `{}` is not a runner label",
                shown(l)
            ));
        }
        let duration_ms =
            parse_duration(fields[2]).map_err(|e| format!("trace line {n}: duration {e}"))?;
        let outcome = fields.get(3).copied().unwrap_or("").to_ascii_lowercase();
        let outcome = match outcome.as_str() {
            "" | "success" => "success",
            "failure" => "failure",
            "cancelled" | "canceled" => "cancelled",
            other => {
                return Err(format!(
                    "trace line {n}: outcome `{}` is not success, failure or cancelled",
                    shown(other)
                ))
            }
        };
        jobs.push(WorkJob {
            at_ms,
            labels,
            duration_ms,
            outcome: outcome.to_owned(),
        });
    }
    if jobs.is_empty() {
        return Err("the trace has no jobs".to_owned());
    }
    jobs.sort_by_key(|j| j.at_ms);
    let origin = jobs[0].at_ms;
    for j in &mut jobs {
        j.at_ms -= origin;
    }
    Ok(jobs)
}

/// A value of the trace as an error shows it: cut to its head and length when long (a
/// 70,000-character field is not repeated whole), control characters escaped.
fn shown(value: &str) -> String {
    model::text::shown(value, 64)
}

fn parse_when(text: &str) -> Result<i64, String> {
    if let Ok(s) = text.parse::<f64>() {
        if (0.0..1e12).contains(&s) {
            return Ok(ms(s));
        }
        return Err(format!("`{}` is out of range", shown(text)));
    }
    model::Timestamp::parse(text)
        .map(model::Timestamp::as_millis)
        .map_err(|_| format!("`{}` is neither seconds nor an RFC 3339 time", shown(text)))
}

fn parse_duration(text: &str) -> Result<i64, String> {
    let d = match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s < 1e9 => Duration::from_secs_f64(s),
        Ok(_) => return Err(format!("`{}` must be positive", shown(text))),
        Err(_) => humantime::parse_duration(text).map_err(|_| {
            format!(
                "`{}` is neither seconds nor a duration like 4m",
                shown(text)
            )
        })?,
    };
    if d.is_zero() || d > Duration::from_secs(7 * 86_400) {
        return Err(format!("`{}` must be between 1 ms and 7 days", shown(text)));
    }
    Ok(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_trace_reads_seconds_times_and_durations() {
        let jobs = parse_trace(
            "queued_at,labels,duration,outcome\n\
             # a comment\n\
             2026-03-01T09:00:10Z,go;linux,4m,success\n\
             2026-03-01T09:00:00Z,docker,90,failure\n",
        )
        .expect("valid");
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].labels, vec!["docker"]);
        assert_eq!(jobs[0].at_ms, 0);
        assert_eq!(jobs[0].duration_ms, 90_000);
        assert_eq!(jobs[1].at_ms, 10_000);
        assert_eq!(jobs[1].labels, vec!["go", "linux"]);
        assert_eq!(jobs[1].duration_ms, 240_000);
    }

    #[test]
    fn a_bad_trace_line_is_named() {
        let err = parse_trace("0,go,60\n5,go,soon\n").expect_err("bad duration");
        assert!(err.contains("line 2") && err.contains("soon"), "{err}");
        let err = parse_trace("0,go,60,maybe\n").expect_err("bad outcome");
        assert!(err.contains("line 1") && err.contains("maybe"), "{err}");
        let err = parse_trace("x,go,60\n").expect_err("bad time");
        assert!(err.contains("queued_at"), "{err}");
        assert!(parse_trace("").is_err());
        let long = "9".repeat(70_000);
        for trace in [
            format!("0,go,{long}x\n"),
            format!("{long}x,go,60\n"),
            format!("0,go,60,{long}\n"),
            format!("0,go\u{1b}{long},60\n"),
        ] {
            let err = parse_trace(&trace).expect_err("bad field");
            assert!(err.len() < 300, "{} bytes: {}", err.len(), &err[..300]);
            assert!(err.contains(" characters)"), "the value's length: {err}");
            assert!(!err.contains('\u{1b}'), "{err}");
        }
    }

    #[test]
    fn the_synthetic_workload_is_seeded_sorted_and_sized() {
        let config = Config::parse(include_str!("../../../examples/config.yaml")).expect("config");
        let a = synthetic(&config, 500, &mut StdRng::seed_from_u64(7));
        let b = synthetic(&config, 500, &mut StdRng::seed_from_u64(7));
        assert_eq!(a, b);
        assert_eq!(a.len(), 500);
        assert!(a.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        assert!(a
            .iter()
            .all(|j| (20_000..=2_700_000).contains(&j.duration_ms)));
        assert!(a.iter().any(|j| j.labels == vec!["go".to_owned()]));
        assert!(a.iter().any(|j| j.labels == vec!["docker".to_owned()]));
    }
}
