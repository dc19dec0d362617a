//! `tcp-checker`: half-open TCP checks from the command line.
//!
//! Checks targets once, a number of times with statistics, or until they are open (`--wait`);
//! `bench` measures the checker itself. Exit status: 0 every check found its port open, 1 at
//! least one did not, 2 a usage or system error (the checker's own failures included).
//!
//! The flags are parsed in [`args`], turned into a run's plan in [`plan`], and the rest reads
//! the plan. tcp-checker runs on Unix only: see [`sys`].

#[cfg(not(unix))]
compile_error!("tcp-checker runs on Unix only: it calls libc (src/sys.rs) and execs for --wait");

mod args;
mod banner;
mod bench;
mod binding;
mod check;
mod completions;
mod feed;
mod guide;
mod interrupt;
mod limits;
mod loops;
mod manual;
mod output;
mod plan;
mod report;
mod schedule;
mod serve;
mod slots;
mod stats;
mod stream;
mod sys;
mod target_files;
mod targets;
mod unique;
mod verdict;
mod wait;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::check::{Ending, status};
use crate::plan::RunPlan;

fn main() -> ExitCode {
    let cli = Cli::parse();
    limits::raise_open_files_limit();
    let result = match cli.command {
        Some(Command::Bench(bench)) => bench::run(&bench),
        Some(Command::Serve(serve)) => serve::run(serve),
        Some(Command::Completions { shell }) => print(|out| completions::write(shell, out)),
        Some(Command::Man) => print(manual::render),
        None => RunPlan::new(&cli.check)
            .and_then(check::run)
            .map(|ending| match ending {
                Ending::Exit(status) => status,
                Ending::Exec(command) => wait::run_command(&command),
            }),
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(error) if is_broken_pipe(&error) => ExitCode::from(status::ERROR),
        Err(error) => {
            eprintln!("tcp-checker: {error:#}");
            ExitCode::from(status::ERROR)
        }
    }
}

/// Whether the error is stdout's reader having gone away (`tcp-checker ... | head`): nothing
/// to say then.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|cause| cause.kind() == io::ErrorKind::BrokenPipe)
}

/// Writes what `render` makes (a completion script, the manual page) on standard output.
fn print(render: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> anyhow::Result<u8> {
    let mut out = io::stdout().lock();
    render(&mut out)?;
    out.flush()?;
    Ok(status::ALL_OPEN)
}
