//! `shaker-bench`: tcp-shaker's engine against a minimal floor loop of raw syscalls and a
//! std-library full-connect baseline, all checking one open port of a local listener, at several
//! concurrency levels; one table of checks/s, CPU per check, peak memory, connections the
//! listener's application accepted, and SYN-ACK-to-RST delay, with the ratios to the floor.
//!
//! `cargo run --release -p shaker-bench` runs it (`--help` for the options). Every measured run
//! is a child process (this program re-executed with hidden arguments), so that its CPU time and
//! memory are its own; the parent runs the listener and the packet capture.

mod args;
mod bench;
mod child;
mod contenders;
mod delay;
mod listener;
mod scenario;
mod server;
mod summary;
mod system;
mod table;

use std::net::Ipv4Addr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::args::{Args, Scenario};
use crate::bench::Setup;
use crate::listener::Listener;
use crate::server::Server;

/// Descriptors a child needs beyond its checks in flight.
const SPARE_DESCRIPTORS: u64 = 64;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("shaker-bench: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs what the command line asks for; false if the results missed the bar.
fn run() -> anyhow::Result<bool> {
    let args = Args::parse();
    args.validate()?;
    if let Some(kind) = args.child {
        child::serve(&args, kind)?;
        return Ok(true);
    }
    let open_files = system::raise_open_files_limit()?;
    let highest = args.highest_concurrency() as u64;
    anyhow::ensure!(
        highest + SPARE_DESCRIPTORS <= open_files,
        "{highest} checks in flight need more open files than the limit of {open_files} \
         (raise ulimit -n, or lower --concurrency)"
    );
    let listener = Listener::start(
        Ipv4Addr::LOCALHOST,
        system::somaxconn()?,
        system::first_local_port(),
    )
    .context("starting the listener")?;
    let setup = Setup::new(&args, &listener, open_files)?;
    match args.scenario {
        None => {
            let benchmark = bench::run(&args, Server::loopback(&listener), setup)?;
            print(&args, &benchmark, table::render)?;
            Ok(benchmark.verdict.ok)
        }
        Some(Scenario::Leak) => {
            let leak = scenario::leak(&args, &listener, setup)?;
            print(&args, &leak, scenario::render_leak)?;
            Ok(leak.ok)
        }
        Some(Scenario::Scan) => {
            let scan = scenario::scan(&args, &listener, setup)?;
            print(&args, &scan, scenario::render_scan)?;
            Ok(scan.ok)
        }
    }
}

/// Prints `results` as JSON with `--json`, else as `render` writes them.
fn print<T: serde::Serialize>(
    args: &Args,
    results: &T,
    render: fn(&T) -> String,
) -> anyhow::Result<()> {
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(results).context("writing the results as JSON")?
        );
    } else {
        print!("{}", render(results));
    }
    Ok(())
}
