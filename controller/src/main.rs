//! The `tinqs-ci` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    controller::cli::run(controller::cli::Cli::parse())
}

/// `println!` panics when stdout is a pipe whose reader has gone (`tinqs-ci … | head -1`).
/// The reader chose to stop reading: that is no failure, so the process ends quietly (exit 0,
/// nothing on stderr) instead of printing a panic and a backtrace. Every other panic is
/// reported as before.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.to_string();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
