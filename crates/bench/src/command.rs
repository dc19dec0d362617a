//! What the command line asks for, run: the loopback table, a scenario, or (in a child process)
//! one contender; and whether a signal ended it.

use std::net::Ipv4Addr;

use anyhow::Context;
use shaker_wire::delay_line;
use shaker_wire::netns::Namespace;

use crate::args::{Args, Scenario};
use crate::bench::Setup;
use crate::comparison::Comparison;
use crate::listener::Listener;
use crate::server::{Route, Server};
use crate::service::Stage;
use crate::veth::Network;
use crate::{bench, child, interrupt, probe, procfs, round_trip, scenario, service, table, veth};

/// Descriptors a child needs beyond its checks in flight.
const SPARE_DESCRIPTORS: u64 = 64;

/// Runs what the command line asks for; false if the results missed the bar.
pub fn run(args: &Args) -> anyhow::Result<bool> {
    args.validate()?;
    if let Some(kind) = args.child {
        child::serve(args, kind)?;
        return Ok(true);
    }
    // Children inherit the raised limit.
    let open_files = shaker_wire::limits::raise_open_files()
        .context("raising the soft limit of open files to the hard limit")?;
    let highest = args.highest_concurrency() as u64;
    anyhow::ensure!(
        highest + SPARE_DESCRIPTORS <= open_files,
        "{highest} checks in flight need more open files than the limit of {open_files} \
         (raise ulimit -n, or lower --concurrency)"
    );
    match args.scenario {
        None => {
            let listener = loopback_listener()?;
            table(args, Server::loopback(&listener), open_files)
        }
        Some(Scenario::Veth) => veth_table(args, open_files),
        Some(Scenario::Rtt) => rtt_table(args, open_files),
        Some(Scenario::Leak) => loopback_scenario(
            args,
            open_files,
            scenario::leak,
            scenario::render_leak,
            |leak| leak.ok,
        ),
        Some(Scenario::Scan) => loopback_scenario(
            args,
            open_files,
            scenario::scan,
            scenario::render_scan,
            |scan| scan.ok,
        ),
        Some(Scenario::Serve) => {
            service_scenario(args, open_files, service::serve, service::render_serve)
        }
        Some(Scenario::Probe) => {
            service_scenario(args, open_files, probe::probe, probe::render_probe)
        }
    }
}

/// A service scenario (serve or probe): its results on the stage.
type ServiceRun<S, M, W> = fn(&Args, &Stage<'_>) -> anyhow::Result<Comparison<S, M, W>>;

/// Runs the service scenario `run` (serve or probe), prints what `render` makes of its results
/// (or them as JSON), and says whether they made the bar. With the privileges, it runs in a
/// network namespace of the benchmark's own, deleted on the way out; the services it starts
/// are stopped on the way out too, also after Ctrl-C.
fn service_scenario<S, M, W>(
    args: &Args,
    open_files: u64,
    run: ServiceRun<S, M, W>,
    render: fn(&Comparison<S, M, W>) -> String,
) -> anyhow::Result<bool>
where
    Comparison<S, M, W>: serde::Serialize + Send,
{
    interrupt::catch()?;
    let tcp_checker = service::tcp_checker_binary(args)?;
    let privileged = procfs::has_capabilities(&[procfs::CAP_NET_ADMIN, procfs::CAP_SYS_ADMIN])?;
    let namespace = if privileged {
        Some(
            Namespace::create(crate::NAMESPACE_PREFIX)
                .context("creating the network namespace (is iproute2 installed?)")?,
        )
    } else {
        None
    };
    let network = match &namespace {
        Some(namespace) => format!(
            "a network namespace of the benchmark's own ({}): its own lo and kernel counters, \
             and nothing outside it reaches the listener",
            namespace.name()
        ),
        None => "this machine's own (not root: no namespace of the benchmark's own), so the \
                 kernel's counters, by which HAProxy's checks are counted, count every program's \
                 connects, and the listener on 0.0.0.0 is reachable on every interface"
            .into(),
    };
    let inside = || -> anyhow::Result<Comparison<S, M, W>> {
        // On 0.0.0.0, which Linux reaches for every address of 127/8; below the local port range
        // of the namespace, as a service's port is.
        let listener = Listener::start(Ipv4Addr::UNSPECIFIED, procfs::first_local_port())
            .context("starting the listener")?;
        let stage = Stage {
            setup: Setup::new(args, &listener, open_files)?,
            listener: &listener,
            tcp_checker,
            network,
            isolated: namespace.is_some(),
            open_files,
        };
        run(args, &stage)
    };
    let results = match &namespace {
        Some(namespace) => namespace
            .run(inside)
            .context("entering the benchmark's network namespace")??,
        None => inside()?,
    };
    print(args, &results, render)?;
    Ok(results.ok)
}

/// Runs the scenario `run` against a loopback listener, prints what `render` makes of its results
/// (or them as JSON), and says whether they made the bar (`ok`).
fn loopback_scenario<T: serde::Serialize>(
    args: &Args,
    open_files: u64,
    run: fn(&Args, &Listener, Setup) -> anyhow::Result<T>,
    render: fn(&T) -> String,
    ok: fn(&T) -> bool,
) -> anyhow::Result<bool> {
    let listener = loopback_listener()?;
    let setup = Setup::new(args, &listener, open_files)?;
    let results = run(args, &listener, setup)?;
    print(args, &results, render)?;
    Ok(ok(&results))
}

/// Whether a caught signal (Ctrl-C during a network scenario) ended the run.
pub fn interrupted() -> bool {
    interrupt::requested()
}

/// The listener on 127.0.0.1.
fn loopback_listener() -> anyhow::Result<Listener> {
    Listener::on_loopback().context("starting the listener")
}

/// The table on the poller's path: over a veth pair to a listener inside a network namespace
/// of the benchmark's own, both deleted on the way out, also after Ctrl-C.
fn veth_table(args: &Args, open_files: u64) -> anyhow::Result<bool> {
    interrupt::catch()?;
    let network = Network::create()?;
    // Below the checkers' local port range, which is this namespace's.
    let first_local_port = procfs::first_local_port();
    let listener = listener_inside(network.namespace(), veth::INNER_ADDRESS, first_local_port)?;
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
        .run(procfs::first_local_port)
        .context("entering the checkers' network namespace")?;
    let listener = listener_inside(
        network.listener(),
        delay_line::SERVER_ADDRESS,
        first_local_port,
    )?;
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

/// A listener on `ip` inside `namespace`, below `first_local_port` (the checkers' local port
/// range).
fn listener_inside(
    namespace: &Namespace,
    ip: Ipv4Addr,
    first_local_port: u16,
) -> anyhow::Result<Listener> {
    namespace
        .run(|| Listener::start(ip, first_local_port))
        .with_context(|| {
            format!(
                "entering the listener's network namespace {}",
                namespace.name()
            )
        })?
        .context("starting the listener inside its network namespace")
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
