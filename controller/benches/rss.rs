//! `rss`: the resident memory (VmRSS) of a controller process with 10,000 active runs, after
//! 10 observe-and-plan passes over the in-memory ports. A binary of its own, so nothing the
//! other benchmarks allocated counts.
//!
//! The in-memory table, EC2 and Gitea live in this process too (in production they are
//! elsewhere), so the figure is an upper bound of the controller's own memory; the memory
//! held before the first pass (the fakes and the runtime) is printed beside it.
//!
//! Run with `make bench`; under `cargo test --benches` it runs a small smoke version.

use std::process::ExitCode;

use controller::reconcile::Mode;

#[path = "support/ports.rs"]
mod ports;
use ports::Figures;

/// Passes before the reading.
const PASSES: usize = 10;

fn main() -> ExitCode {
    let (json, full) = ports::args();
    let n = if full { 10_000 } else { 300 };
    // Built as `serve` builds its runtime.
    let runtime = match controller::wiring::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let (store, fleet, forge, clock) = ports::busy_world(n);
        let config = ports::config(u32::try_from(n * 2).unwrap_or(u32::MAX), 20);
        let r = ports::reconciler(config, store, fleet, forge, ports::fixed_clock(&clock));
        let before = ports::resident_bytes()?;
        for _ in 0..PASSES {
            let out = r.pass(Mode::DryRun, None).await;
            if out.observation.desired.runs.len() != n {
                return Err(format!(
                    "a pass saw {} runs, want {n}",
                    out.observation.desired.runs.len()
                ));
            }
        }
        let after = ports::resident_bytes()?;
        Ok((before, after))
    });
    let (before, after) = match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("rss bench FAILED: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut figures = Figures::default();
    figures.add("rss", mb(after), "MB");
    println!(
        "  ({n} active runs, {PASSES} passes; {:.1} MB before the first pass: runtime and the in-memory table, EC2 and Gitea)",
        mb(before)
    );
    if let Some(path) = json {
        if let Err(e) = figures.append_to(&path) {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
