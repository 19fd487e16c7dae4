//! Logging: `tracing` to stderr, human-readable or JSON, filtered by `RUST_LOG`
//! (default `info`). Log lines carry run ids, instance ids and runner names as fields; they
//! never carry a secret (secrets are `model::secret::Secret`, which prints `[redacted]`).
//! Colours only when stderr is a terminal and `NO_COLOR` is not set, so a file or journald
//! never gets escape sequences.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = use_colours(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().try_init()
    };
    // Already installed (tests, or a second command in one process): keep the first.
    let _ = result;
}

/// Whether log lines get colours: only on a terminal, and never when `NO_COLOR` is set to
/// anything but the empty string (<https://no-color.org>).
fn use_colours(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::use_colours;
    use std::ffi::OsStr;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(use_colours(true, None));
        assert!(
            !use_colours(false, None),
            "a file or journald gets no escapes"
        );
        assert!(!use_colours(true, Some(OsStr::new("1"))));
        assert!(use_colours(true, Some(OsStr::new(""))));
    }
}
