//! `tcp-checker`: half-open TCP checks from the command line.

mod args;
mod load;

use std::process::ExitCode;

use clap::Parser;

use crate::args::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    match load::run(&args) {
        Ok(summary) if summary.all_succeeded() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(error) => {
            eprintln!("tcp-checker: {error:#}");
            ExitCode::from(2)
        }
    }
}
