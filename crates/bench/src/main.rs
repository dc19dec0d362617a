//! `shaker-bench`: tcp-shaker's engine against a minimal floor loop of raw syscalls and a
//! std-library full-connect baseline, all checking one open port of a local listener, at several
//! concurrency levels; one table of checks/s, CPU per check, peak memory, connections the
//! listener's application accepted, and SYN-ACK-to-RST delay, with the ratios to the floor.
//!
//! `cargo run --release -p shaker-bench` runs it (`--help` for the options) against 127.0.0.1,
//! where the engine takes its loopback shortcut; `--scenario veth` (as root) makes the same table
//! of floor and engine on the engine's poller path, to a listener inside a network namespace of
//! its own over a veth pair; `--scenario rtt` (as root) the same across a real round trip
//! (`--rtt`, 50 ms by default), made by a user-space delay line between two namespaces of its own,
//! where every SYN-ACK arrives long after `connect()` returned. Every measured run is a child process (this program re-executed
//! with hidden arguments), so that its CPU time and memory are its own; the parent runs the
//! listener and the packet capture.

mod args;
mod bench;
mod child;
mod contenders;
mod delay;
mod interrupt;
mod listener;
mod round_trip;
mod scenario;
mod server;
mod summary;
mod system;
mod table;
mod veth;

use std::net::Ipv4Addr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use shaker_wire::delay_line;

use crate::args::{Args, Scenario};
use crate::bench::Setup;
use crate::listener::Listener;
use crate::server::{Route, Server};
use crate::veth::Network;

/// Descriptors a child needs beyond its checks in flight.
const SPARE_DESCRIPTORS: u64 = 64;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("shaker-bench: {error:#}");
            // 128 + SIGINT, as a shell reports a run that Ctrl-C ended.
            ExitCode::from(if interrupt::requested() { 130 } else { 2 })
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
    match args.scenario {
        None => {
            let listener = loopback_listener()?;
            table(&args, Server::loopback(&listener), open_files)
        }
        Some(Scenario::Veth) => veth_table(&args, open_files),
        Some(Scenario::Rtt) => rtt_table(&args, open_files),
        Some(Scenario::Leak) => {
            let listener = loopback_listener()?;
            let setup = Setup::new(&args, &listener, open_files)?;
            let leak = scenario::leak(&args, &listener, setup)?;
            print(&args, &leak, scenario::render_leak)?;
            Ok(leak.ok)
        }
        Some(Scenario::Scan) => {
            let listener = loopback_listener()?;
            let setup = Setup::new(&args, &listener, open_files)?;
            let scan = scenario::scan(&args, &listener, setup)?;
            print(&args, &scan, scenario::render_scan)?;
            Ok(scan.ok)
        }
    }
}

/// The listener on 127.0.0.1.
fn loopback_listener() -> anyhow::Result<Listener> {
    let somaxconn = system::somaxconn()?;
    Listener::start(Ipv4Addr::LOCALHOST, somaxconn, system::first_local_port())
        .context("starting the listener")
}

/// The table on the poller's path: over a veth pair to a listener inside a network namespace
/// of the benchmark's own, both deleted on the way out, also after Ctrl-C.
fn veth_table(args: &Args, open_files: u64) -> anyhow::Result<bool> {
    interrupt::catch()?;
    let network = Network::create()?;
    // Below the checkers' local port range, which is this namespace's.
    let first_local_port = system::first_local_port();
    let listener = network
        .namespace()
        .run(|| {
            // The namespace's own accept-queue cap.
            let somaxconn = system::somaxconn()?;
            Listener::start(veth::INNER_ADDRESS, somaxconn, first_local_port)
        })
        .context("entering the network namespace")?
        .context("starting the listener inside the network namespace")?;
    let server = Server {
        listener: &listener,
        route: Route::Veth,
        interface: network.host_interface(),
    };
    table(args, server, open_files)
}

/// The table across a real round trip: the listener and the checkers in two network namespaces
/// of the benchmark's own, joined by a delay line; all deleted on the way out, also after
/// Ctrl-C. The table is made on a thread inside the checkers' namespace, so that the child runs
/// it starts, and its captures, are inside.
fn rtt_table(args: &Args, open_files: u64) -> anyhow::Result<bool> {
    interrupt::catch()?;
    let network = round_trip::Network::create(args.rtt())?;
    // Below the checkers' local port range, which is their namespace's.
    let first_local_port = network
        .checkers()
        .run(system::first_local_port)
        .context("entering the checkers' network namespace")?;
    let listener = network
        .listener()
        .run(|| {
            let somaxconn = system::somaxconn()?;
            Listener::start(delay_line::SERVER_ADDRESS, somaxconn, first_local_port)
        })
        .context("entering the listener's network namespace")?
        .context("starting the listener inside its network namespace")?;
    let server = Server {
        listener: &listener,
        route: Route::Rtt {
            rtt_ms: args.rtt_ms,
        },
        interface: delay_line::CLIENT_INTERFACE,
    };
    let ok = network
        .checkers()
        .run(|| table(args, server, open_files))
        .context("entering the checkers' network namespace")??;
    let counters = network.line().counters();
    eprintln!(
        "delay line: {} packets carried, {} lost (queue full or refused), {} dropped by its \
         devices",
        counters.carried(),
        counters.lost(),
        network
            .line()
            .device_drops()
            .context("reading the delay line's device statistics")?
    );
    Ok(ok)
}

/// The benchmark's table against `server`; false if the results missed the bar.
fn table(args: &Args, server: Server<'_>, open_files: u64) -> anyhow::Result<bool> {
    let setup = Setup::new(args, server.listener, open_files)?;
    let benchmark = bench::run(args, server, setup)?;
    print(args, &benchmark, table::render)?;
    Ok(benchmark.verdict.ok)
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
