//! What a simulated run reports, as text for people and JSON for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::world::{Incident, Sample, Stats};

/// The figures of one simulated run under one policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Which policy drove the fleet (`tinqs-ci`, or a baseline of `--compare`).
    pub policy: String,
    /// The seed.
    pub seed: u64,
    /// The fault profile's name.
    pub faults: String,
    /// Jobs in the workload.
    pub jobs: u64,
    /// Virtual time the run took, in seconds.
    pub virtual_seconds: i64,
    /// Jobs (and re-runs) Gitea wanted started.
    pub picks_wanted: u64,
    /// Picks a runner took.
    pub started: u64,
    /// Jobs a runner finished (any conclusion).
    pub completed: u64,
    /// Jobs still waiting for a runner when the run ended: never started.
    pub lost: u64,
    /// Of the lost jobs, those whose run the controller ended as failed (attempts used up)
    /// while Gitea still wanted the job.
    pub gave_up: u64,
    /// Launches while another live instance of the same run existed.
    pub double_launched: u64,
    /// Instances terminated or runners deleted by the controller while running a job.
    pub busy_kills: u64,
    /// Instances or runners not ours that the controller terminated, deleted or disabled.
    pub foreign_touched: u64,
    /// Jobs Gitea failed because their runner went silent (zombie tasks).
    pub zombie_failed: u64,
    /// Our instances launched.
    pub instances_launched: u64,
    /// Spot interruptions.
    pub spot_interruptions: u64,
    /// Controller processes killed (and restarted).
    pub controller_kills: u64,
    /// Seconds from queued to started.
    pub queued_to_started: Percentiles,
    /// Instance-seconds per started job, by what they were spent on.
    pub instance_seconds_per_job: InstanceSeconds,
    /// Estimated cost in USD (list prices; Spot at 35% of on-demand).
    pub cost_usd: f64,
    /// API calls by kind.
    pub api_calls: BTreeMap<String, u64>,
    /// Faults that happened, by kind.
    pub faults_injected: BTreeMap<String, u64>,
    /// Reconcile passes applied.
    pub passes: u64,
    /// Most actions in one plan.
    pub largest_plan: u64,
    /// Webhooks Gitea sent.
    pub webhooks_sent: u64,
    /// How many picks waited at most each bound (seconds; the last bucket has no bound).
    pub wait_histogram: Vec<(String, u64)>,
    /// Queue and fleet once a minute, for plots.
    pub samples: Vec<Sample>,
    /// Every busy kill and double launch, with its context.
    pub incidents: Vec<Incident>,
}

/// Upper bounds of the wait histogram's buckets, in seconds.
const WAIT_BOUNDS: [i64; 9] = [15, 30, 60, 90, 120, 180, 300, 600, 1800];

fn histogram(waits_ms: &[i64]) -> Vec<(String, u64)> {
    let mut counts = vec![0u64; WAIT_BOUNDS.len() + 1];
    for w in waits_ms {
        let k = WAIT_BOUNDS
            .iter()
            .position(|b| *w <= b * 1000)
            .unwrap_or(WAIT_BOUNDS.len());
        counts[k] += 1;
    }
    let mut out: Vec<(String, u64)> = WAIT_BOUNDS
        .iter()
        .zip(&counts)
        .map(|(b, c)| (format!("<={b}s"), *c))
        .collect();
    out.push((">1800s".to_owned(), counts[WAIT_BOUNDS.len()]));
    out
}

/// Percentiles in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Longest.
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `ms`.
    #[must_use]
    pub fn of_millis(ms: &[i64]) -> Self {
        let mut v = ms.to_vec();
        v.sort_unstable();
        let at = |p: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
            secs(v[rank - 1])
        };
        Percentiles {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// Instance-seconds per job, split by what the instance was doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct InstanceSeconds {
    /// Running a job.
    pub useful: f64,
    /// From launch to the runner's first contact.
    pub booting: f64,
    /// Online with no job.
    pub idle: f64,
    /// Alive with no runner at work: never booted, hung, offline, or exited and not yet gone.
    pub orphaned: f64,
}

#[allow(clippy::cast_precision_loss)]
fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn round(x: f64, places: i32) -> f64 {
    let k = 10f64.powi(places);
    (x * k).round() / k
}

impl Report {
    /// The report of a finished run.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_stats(
        policy: &str,
        seed: u64,
        faults: &str,
        jobs: u64,
        virtual_ms: i64,
        lost: u64,
        gave_up: u64,
        stats: &Stats,
    ) -> Self {
        let started = stats.waits.len() as u64;
        #[allow(clippy::cast_precision_loss)]
        let per = |ms: i64| round(secs(ms) / started.max(1) as f64, 1);
        Report {
            policy: policy.to_owned(),
            seed,
            faults: faults.to_owned(),
            jobs,
            virtual_seconds: virtual_ms / 1000,
            picks_wanted: stats.picks_wanted,
            started,
            completed: stats.completed,
            lost,
            gave_up,
            double_launched: stats.double_launched,
            busy_kills: stats.busy_kills,
            foreign_touched: stats.foreign_touched,
            zombie_failed: stats.zombie_failed,
            instances_launched: stats.instances_launched,
            spot_interruptions: stats.spot_interrupted,
            controller_kills: stats.kills,
            queued_to_started: Percentiles::of_millis(&stats.waits),
            instance_seconds_per_job: InstanceSeconds {
                useful: per(stats.secs[2]),
                booting: per(stats.secs[0]),
                idle: per(stats.secs[1]),
                orphaned: per(stats.secs[3]),
            },
            cost_usd: round(stats.cost, 2),
            api_calls: stats.api.clone(),
            faults_injected: stats.faults.clone(),
            passes: stats.passes,
            largest_plan: stats.largest_plan as u64,
            webhooks_sent: stats.webhooks_sent,
            wait_histogram: histogram(&stats.waits),
            samples: stats.samples.clone(),
            incidents: stats.incidents.clone(),
        }
    }

    /// Whether the run kept every promise: nothing lost, no double launch, no busy kill,
    /// nothing foreign touched.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.double_launched == 0
            && self.busy_kills == 0
            && self.foreign_touched == 0
    }

    /// The report for people.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let q = &self.queued_to_started;
        let i = &self.instance_seconds_per_job;
        let _ = writeln!(
            s,
            "policy {}: {} jobs, seed {}, faults {}, {} of virtual time",
            self.policy,
            self.jobs,
            self.seed,
            self.faults,
            humantime::format_duration(std::time::Duration::from_secs(
                u64::try_from(self.virtual_seconds).unwrap_or(0)
            ))
        );
        let _ = writeln!(
            s,
            "  started {} of {} wanted, completed {}, lost {} ({} given up after their attempts), double-launched {}, busy kills {}, foreign touched {}",
            self.started, self.picks_wanted, self.completed, self.lost, self.gave_up, self.double_launched, self.busy_kills, self.foreign_touched
        );
        let _ = writeln!(
            s,
            "  queued to started: p50 {:.1}s, p95 {:.1}s, p99 {:.1}s, max {:.1}s",
            q.p50, q.p95, q.p99, q.max
        );
        let _ = writeln!(
            s,
            "  instance-seconds per job: useful {:.1}, booting {:.1}, idle {:.1}, orphaned {:.1}",
            i.useful, i.booting, i.idle, i.orphaned
        );
        let _ = writeln!(
            s,
            "  cost ${:.2} (estimated), {} instances launched, {} Spot interruptions, {} zombie tasks failed, {} controller kills",
            self.cost_usd, self.instances_launched, self.spot_interruptions, self.zombie_failed, self.controller_kills
        );
        let _ = writeln!(
            s,
            "  {} passes, largest plan {} actions, {} webhooks sent",
            self.passes, self.largest_plan, self.webhooks_sent
        );
        let calls: Vec<String> = self
            .api_calls
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(s, "  API calls: {}", calls.join(", "));
        if !self.faults_injected.is_empty() {
            let faults: Vec<String> = self
                .faults_injected
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(s, "  faults: {}", faults.join(", "));
        }
        for i in &self.incidents {
            let _ = writeln!(s, "  incident: {}", i.to_line());
        }
        s
    }
}

/// One row of the comparison table: its name and how to read it from a report.
type Row = (&'static str, fn(&Report) -> String);

/// One table, policy by metric, for `--compare`.
#[must_use]
pub fn comparison_table(reports: &[Report]) -> String {
    let rows: [Row; 12] = [
        ("completed", |r| r.completed.to_string()),
        ("lost", |r| r.lost.to_string()),
        ("double-launched", |r| r.double_launched.to_string()),
        ("busy kills", |r| r.busy_kills.to_string()),
        ("foreign touched", |r| r.foreign_touched.to_string()),
        ("zombie failed", |r| r.zombie_failed.to_string()),
        ("wait p50 (s)", |r| {
            format!("{:.1}", r.queued_to_started.p50)
        }),
        ("wait p95 (s)", |r| {
            format!("{:.1}", r.queued_to_started.p95)
        }),
        ("wait max (s)", |r| {
            format!("{:.1}", r.queued_to_started.max)
        }),
        ("instances", |r| r.instances_launched.to_string()),
        ("idle+orphan s/job", |r| {
            format!(
                "{:.1}",
                r.instance_seconds_per_job.idle + r.instance_seconds_per_job.orphaned
            )
        }),
        ("cost (USD)", |r| format!("{:.2}", r.cost_usd)),
    ];
    let mut widths = vec![18usize];
    for r in reports {
        widths.push(r.policy.len().max(10));
    }
    let mut s = String::new();
    let _ = write!(s, "{:<w$}", "metric", w = widths[0]);
    for (r, w) in reports.iter().zip(&widths[1..]) {
        let _ = write!(s, "  {:>w$}", r.policy, w = *w);
    }
    s.push('\n');
    for (name, f) in rows {
        let _ = write!(s, "{name:<w$}", w = widths[0]);
        for (r, w) in reports.iter().zip(&widths[1..]) {
            let _ = write!(s, "  {:>w$}", f(r), w = *w);
        }
        s.push('\n');
    }
    s
}

/// One self-contained HTML page (inline SVG, no scripts, nothing fetched) with, for each
/// policy, its figures, the queue and fleet over time, and the wait histogram.
#[must_use]
pub fn html(reports: &[Report]) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tinqs-ci simulation</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}pre{background:#f4f4f4;padding:1em}svg{background:#fff;border:1px solid #ccc}.k{display:inline-block;width:1em;height:.6em;margin:0 .3em 0 1em}</style></head><body>\n<h1>tinqs-ci simulation</h1>\n",
    );
    if reports.len() > 1 {
        let _ = write!(
            s,
            "<h2>Policies side by side</h2>\n<pre>{}</pre>\n",
            escape(&comparison_table(reports))
        );
    }
    for r in reports {
        let _ = write!(
            s,
            "<h2>{}</h2>\n<pre>{}</pre>\n",
            escape(&r.policy),
            escape(&r.to_text())
        );
        s.push_str("<h3>Queue and instances over time</h3>\n");
        s.push_str(&time_plot(&r.samples));
        s.push_str("<h3>Queued to started</h3>\n");
        s.push_str(&bar_plot(&r.wait_histogram));
    }
    s.push_str("</body></html>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const SERIES: [(&str, &str); 4] = [
    ("queued jobs", "#d62728"),
    ("busy instances", "#2ca02c"),
    ("idle instances", "#ff7f0e"),
    ("starting instances", "#1f77b4"),
];

#[allow(clippy::cast_precision_loss)]
fn time_plot(samples: &[Sample]) -> String {
    let (w, h, pad) = (1000.0, 260.0, 30.0);
    let t_max = samples.last().map_or(1, |x| x.t.max(1)) as f64;
    let v_max = samples
        .iter()
        .map(|x| x.queued.max(x.busy).max(x.idle).max(x.pending))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n");
    let _ = writeln!(s, "<text x=\"2\" y=\"12\" font-size=\"11\">{v_max}</text><text x=\"{}\" y=\"{}\" font-size=\"11\">{:.1} h</text>", w - 50.0, h - 4.0, t_max / 3600.0);
    for (k, (_, colour)) in SERIES.iter().enumerate() {
        let mut points = String::new();
        for x in samples {
            let v = match k {
                0 => x.queued,
                1 => x.busy,
                2 => x.idle,
                _ => x.pending,
            };
            let px = pad + (x.t as f64 / t_max) * (w - 2.0 * pad);
            let py = h - pad - (f64::from(v) / v_max) * (h - 2.0 * pad);
            let _ = write!(points, "{px:.1},{py:.1} ");
        }
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1\" points=\"{}\"/>",
            points.trim_end()
        );
    }
    s.push_str("</svg>\n<p>");
    for (name, colour) in SERIES {
        let _ = write!(
            s,
            "<span class=\"k\" style=\"background:{colour}\"></span>{name}"
        );
    }
    s.push_str("</p>\n");
    s
}

#[allow(clippy::cast_precision_loss)]
fn bar_plot(buckets: &[(String, u64)]) -> String {
    let (w, h, pad) = (1000.0, 200.0, 30.0);
    let max = buckets.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
    let n = buckets.len().max(1) as f64;
    let bw = (w - 2.0 * pad) / n;
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n");
    for (k, (label, count)) in buckets.iter().enumerate() {
        let bh = (*count as f64 / max) * (h - 2.0 * pad);
        let x = pad + k as f64 * bw;
        let _ = writeln!(s, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#1f77b4\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"11\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{count}</text>", x + 2.0, h - pad - bh, bw - 4.0, x + 4.0, h - 10.0, escape(label), x + 4.0, h - pad - bh - 3.0);
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let ms: Vec<i64> = (1..=100).map(|x| x * 1000).collect();
        let p = Percentiles::of_millis(&ms);
        assert!((p.p50 - 50.0).abs() < f64::EPSILON);
        assert!((p.p95 - 95.0).abs() < f64::EPSILON);
        assert!((p.p99 - 99.0).abs() < f64::EPSILON);
        assert!((p.max - 100.0).abs() < f64::EPSILON);
        assert_eq!(Percentiles::of_millis(&[]), Percentiles::default());
    }

    #[test]
    fn the_histogram_puts_each_wait_in_its_bucket() {
        let h = histogram(&[1_000, 15_000, 15_001, 2_000_000]);
        assert_eq!(h[0], ("<=15s".to_owned(), 2));
        assert_eq!(h[1], ("<=30s".to_owned(), 1));
        assert_eq!(h.last(), Some(&(">1800s".to_owned(), 1)));
        assert_eq!(h.iter().map(|b| b.1).sum::<u64>(), 4);
    }
}
