//! Logging: `tracing` to stderr, human-readable or JSON, filtered by `RUST_LOG`
//! (default `info`). Log lines carry run ids, instance ids and runner names as fields; they
//! never carry a secret (secrets are `model::secret::Secret`, which prints `[redacted]`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().try_init()
    };
    // Already installed (tests, or a second command in one process): keep the first.
    let _ = result;
}
