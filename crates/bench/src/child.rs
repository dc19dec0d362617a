//! Child runs: every measured run is this program re-executed with hidden arguments, so that
//! the parent can take the run's CPU time from `wait4` of that child alone. The child runs one
//! contender and prints one line of JSON: its counts, its timing and its own peak memory.

use std::io::Read;
use std::net::{SocketAddr, SocketAddrV4};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::args::{Args, ChildKind};
use crate::contenders::{self, Counts, Load, Run};
use crate::cpu_time::CpuTime;
use crate::interrupt;
use crate::procfs;
use crate::sys::{self, Reaped};

/// What a child is asked to run.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    /// The contender, or the scan.
    pub kind: ChildKind,
    /// The listener's address (the scan checks every port of its IP).
    pub target: SocketAddrV4,
    /// Checks to make (the scan makes one per port, whatever this says).
    pub checks: u64,
    /// Checks in flight.
    pub in_flight: usize,
    /// Event loops (checkers) sharing an engine's or a scan's checks.
    pub loops: usize,
    /// Deadline of each check.
    pub timeout: Duration,
}

impl Request {
    /// The command-line arguments that make a child run this.
    fn arguments(&self) -> Vec<String> {
        let kind = match self.kind {
            ChildKind::Floor => "floor",
            ChildKind::Engine => "engine",
            ChildKind::Std => "std",
            ChildKind::Scan => "scan",
        };
        vec![
            format!("--child={kind}"),
            format!("--target={}", self.target),
            format!("--checks={}", self.checks),
            format!("--concurrency={}", self.in_flight),
            format!("--loops={}", self.loops),
            format!("--timeout-ms={}", self.timeout.as_millis()),
        ]
    }

    /// How long the child may take before it is killed: enough for every check to time out,
    /// plus a generous floor.
    fn time_limit(&self) -> Duration {
        /// A child's time limit, before what its checks may take.
        const BASE_TIME_LIMIT: Duration = Duration::from_secs(60);
        /// A child's time limit grows by this much per check (at least 5000 checks per second).
        const TIME_LIMIT_PER_CHECK: Duration = Duration::from_micros(200);
        let rounds = self.checks / u64::try_from(self.in_flight.max(1)).unwrap_or(1) + 1;
        let checks = u32::try_from(self.checks).unwrap_or(u32::MAX);
        let rounds = u32::try_from(rounds).unwrap_or(u32::MAX);
        BASE_TIME_LIMIT + TIME_LIMIT_PER_CHECK * checks + self.timeout.saturating_mul(rounds)
    }
}

/// What a child prints: one line of JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    /// How the checks ended.
    pub counts: Counts,
    /// Seconds from the first check started to the last finished.
    pub elapsed_s: f64,
    /// The child's own peak resident memory, KiB (see [`procfs::peak_rss_kib`]).
    pub peak_rss_kib: u64,
    /// The scan's open ports (empty for the contenders).
    pub open_ports: Vec<u16>,
}

/// A child that ran to the end, as the parent saw it.
#[derive(Debug)]
pub struct Finished {
    /// What the child printed.
    pub report: Report,
    /// User plus system CPU time of the child, from `wait4`.
    pub cpu: Duration,
    /// Wall time from spawning the child to reaping it.
    pub wall: Duration,
    /// `ru_maxrss` from `wait4`, KiB: the child's peak or the parent's at the spawn, whichever
    /// is higher (Linux carries the replaced address space's peak over an exec).
    pub wait4_maxrss_kib: u64,
}

/// Runs `request` in a child process and waits for it; kills it if it outlives its time
/// limit, or if anything fails on the way.
pub fn run(request: &Request) -> anyhow::Result<Finished> {
    let program = std::env::current_exe().context("finding this program to re-execute it")?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(request.arguments())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting a child run")?;
    let stdout = child
        .stdout
        .take()
        .context("the child's standard output is not piped")?;
    let mut child = Reaper::new(child);
    // Read on a thread of its own, so that a large report cannot block the child.
    let reader = thread::Builder::new()
        .name("child-stdout".into())
        .spawn(move || {
            let mut text = String::new();
            let mut stdout = stdout;
            stdout.read_to_string(&mut text).map(|_| text)
        })
        .context("starting the thread that reads the child's output")?;
    let (status, usage) = child.wait(started + request.time_limit())?;
    // A child killed by the same Ctrl-C: say so rather than report its death.
    interrupt::check()?;
    let wall = started.elapsed();
    let output = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the thread reading the child's output panicked"))?
        .context("reading the child's output")?;
    anyhow::ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the {:?} child run ({} checks, {} in flight) failed: {}",
        request.kind,
        request.checks,
        request.in_flight,
        describe_status(status)
    );
    let report: Report = serde_json::from_str(output.trim())
        .with_context(|| format!("parsing the child's report {output:?}"))?;
    Ok(Finished {
        report,
        cpu: CpuTime::from(&usage).total(),
        wall,
        wait4_maxrss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
    })
}

/// The child side: runs what `args` asks for and prints the [`Report`].
pub fn serve(args: &Args, kind: ChildKind) -> anyhow::Result<()> {
    let target = args.target.context("--child needs --target")?;
    let (checks, in_flight) = (args.checks(), args.highest_concurrency());
    let timeout = Duration::from_millis(args.timeout_ms);
    let load = Load {
        checks,
        in_flight,
        timeout,
    };
    let mut open_ports = Vec::new();
    let run = match kind {
        ChildKind::Floor => contenders::floor::run(target, load)?,
        ChildKind::Engine => contenders::engine::run(SocketAddr::V4(target), load)?,
        ChildKind::Std => contenders::std::run(SocketAddr::V4(target), load)?,
        ChildKind::Scan => {
            let loops = args.loops.unwrap_or(1);
            let scan = contenders::engine::scan(*target.ip(), in_flight, loops, timeout)?;
            open_ports = scan.open_ports;
            scan.run
        }
    };
    let Run { counts, elapsed } = run;
    let report = Report {
        counts,
        elapsed_s: elapsed.as_secs_f64(),
        peak_rss_kib: procfs::peak_rss_kib()?,
        open_ports,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// A spawned child that is reaped when dropped: killed first unless it was waited for.
struct Reaper {
    child: Child,
    reaped: bool,
}

impl Reaper {
    fn new(child: Child) -> Reaper {
        Reaper {
            child,
            reaped: false,
        }
    }

    /// Waits for the child to exit, until `deadline` at most (then kills it and fails);
    /// returns its wait status and resource usage.
    fn wait(&mut self, deadline: Instant) -> anyhow::Result<(libc::c_int, libc::rusage)> {
        /// How often the parent looks whether the child has exited.
        const REAP_INTERVAL: Duration = Duration::from_millis(5);
        let pid = libc::pid_t::try_from(self.child.id()).context("the child's process id")?;
        loop {
            let reaped = sys::reap(pid).context("waiting for a child run")?;
            if let Reaped::Exited { status, usage } = reaped {
                self.reaped = true;
                return Ok((status, usage));
            }
            // The child is killed when the caller drops it.
            interrupt::check()?;
            anyhow::ensure!(
                Instant::now() < deadline,
                "a child run outlived its time limit; killed it"
            );
            thread::sleep(REAP_INTERVAL);
        }
    }
}

impl Drop for Reaper {
    /// Kills and reaps a child that was not waited for (the parent is failing).
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A wait status in words.
fn describe_status(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status:#x}")
    }
}
