//! The `tinqs-ci` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    controller::cli::run(controller::cli::Cli::parse())
}
