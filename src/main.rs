//! `tcp-checker`: half-open TCP checks from the command line.
//!
//! Checks targets once, a number of times with statistics, or until they are open (`--wait`);
//! `bench` measures the checker itself. Exit status: 0 every check found its port open, 1 at
//! least one did not, 2 a usage or system error (the checker's own failures included).

mod args;
mod banner;
mod bench;
mod binding;
mod check;
mod feed;
mod interrupt;
mod limits;
mod loops;
mod output;
mod report;
mod schedule;
mod slots;
mod stats;
mod stream;
mod target_files;
mod targets;
mod unique;
mod verdict;
mod wait;
mod window;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};
use crate::check::{Ending, status};

fn main() -> ExitCode {
    let cli = Cli::parse();
    limits::raise_open_files_limit();
    let result = match &cli.command {
        Some(Command::Bench(bench)) => bench::run(bench),
        Some(Command::Completions { shell }) => completions(*shell),
        Some(Command::Man) => man_page(),
        None => check::run(&cli.check).map(|ending| match ending {
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

fn completions(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    let mut out = io::stdout().lock();
    clap_complete::generate(shell, &mut Cli::command(), "tcp-checker", &mut out);
    out.flush()?;
    Ok(status::ALL_OPEN)
}

fn man_page() -> anyhow::Result<u8> {
    let mut out = io::stdout().lock();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    out.flush()?;
    Ok(status::ALL_OPEN)
}
