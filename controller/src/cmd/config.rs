//! `tinqs-ci config validate FILE`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use model::config::Config;

/// Reads and validates `file`; prints a summary, or every problem.
///
/// # Errors
/// When the file cannot be read or is invalid (the message lists every problem).
pub fn validate(file: &Path) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let config = Config::parse(&text)
        .with_context(|| format!("{} is not a valid configuration", file.display()))?;
    println!(
        "{}: valid (cluster {}, {} pool{}: {})",
        file.display(),
        config.cluster_id,
        config.pools.len(),
        if config.pools.len() == 1 { "" } else { "s" },
        config.pools.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
