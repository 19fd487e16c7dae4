//! `tinqs-demo`: the scripted end-to-end story behind `make demo`. Run it under
//! `scripts/with-moto.sh` (moto on loopback); it starts the Gitea simulator, the booter and the
//! real controller, narrates, prints the final status and a one-line summary, and stops
//! everything it started. Exit status 0 when the story converged, 1 when it did not, 2 when
//! moto is not set up.

use std::process::ExitCode;

use e2e::narrate::{CaptureLayer, Events};
use tracing_subscriber::layer::SubscriberExt as _;

fn main() -> ExitCode {
    if let Err(e) = e2e::world::moto_url() {
        eprintln!("tinqs-demo: {e:#}");
        return ExitCode::from(2);
    }
    let events = Events::new(true);
    let subscriber = tracing_subscriber::registry()
        .with(CaptureLayer::new(events.clone()))
        .with(tracing_subscriber::filter::LevelFilter::INFO);
    if let Err(e) = tracing::subscriber::set_global_default(subscriber) {
        eprintln!("tinqs-demo: cannot set up logging: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tinqs-demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(e2e::story::demo(events)) {
        Ok(summary) => {
            println!();
            println!(
                "To review every planner rule over a recorded world without running anything:"
            );
            println!("  tinqs-ci plan --world examples/world.json");
            println!();
            println!("{summary}");
            if summary.lost > 0 {
                eprintln!("demo: FAILED: {} jobs lost", summary.lost);
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!();
            eprintln!("demo: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}
