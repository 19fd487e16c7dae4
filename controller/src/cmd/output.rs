//! The `--output` format of the commands that print data: a leaf, so the subcommands and the
//! command line that dispatches to them do not import each other.

use clap::ValueEnum;

/// Output format for commands that print data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Output {
    /// For people.
    #[default]
    Text,
    /// For scripts.
    Json,
}
