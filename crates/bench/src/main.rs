//! The `shaker-bench` command: parses the command line and turns the benchmark's verdict into
//! the exit status (see the library, [`shaker_bench`], for what it measures).

use std::process::ExitCode;

use clap::Parser;
use shaker_bench::Args;

fn main() -> ExitCode {
    match shaker_bench::run(&Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("shaker-bench: {error:#}");
            // 128 + SIGINT, as a shell reports a run that Ctrl-C ended.
            ExitCode::from(if shaker_bench::interrupted() { 130 } else { 2 })
        }
    }
}
