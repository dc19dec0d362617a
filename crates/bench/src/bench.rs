//! The benchmark proper: one capture pass per half-open (contender, concurrency) for the
//! SYN-ACK-to-RST delay, then K rounds of timed runs in child processes. A round runs the
//! half-open contenders interleaved at each level, then std at each level; before the next
//! round, the TIME_WAIT sockets std leaves behind are let expire, so that they cannot slow the
//! next contender's `connect()`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::args::{Args, Contender};
use crate::child::{self, Request};
use crate::contenders;
use crate::delay::{self, DelayCapture};
use crate::listener::Listener;
use crate::procfs;
use crate::server::{Route, Server};
use crate::summary::{self, DelayResult, Row, RunResult, Verdict};

/// Where and how the benchmark ran.
#[derive(Clone, Debug, Serialize)]
pub struct Setup {
    /// The checked address.
    pub target: String,
    /// The listener's accept queue, as the kernel caps it.
    pub listener_backlog: i32,
    /// The soft limit of open files, raised to the hard limit.
    pub open_files_limit: u64,
    /// CPUs available.
    pub cpus: usize,
    /// Deadline of each check, milliseconds.
    pub timeout_ms: u64,
    /// The 1-minute load average when the benchmark started.
    pub load_average_before: f64,
}

impl Setup {
    /// The setup of a run against `listener`.
    pub fn new(args: &Args, listener: &Listener, open_files_limit: u64) -> anyhow::Result<Setup> {
        Ok(Setup {
            target: listener.address().to_string(),
            listener_backlog: listener.backlog(),
            open_files_limit,
            cpus: procfs::cpus(),
            timeout_ms: args.timeout_ms,
            load_average_before: procfs::load_average()?,
        })
    }
}

/// Everything the table shows (and `--json` prints).
#[derive(Debug, Serialize)]
pub struct Benchmark {
    /// Where and how it ran.
    pub setup: Setup,
    /// Checks per run.
    pub checks: u64,
    /// Runs per row; the table shows medians.
    pub runs: usize,
    /// The in-flight levels.
    pub concurrency: Vec<usize>,
    /// How the checks reach the listener.
    pub route: Route,
    /// The contenders asked for that run on this route.
    pub contenders: Vec<Contender>,
    /// The runs of one round, in order, as `contender/in-flight`.
    pub round_order: Vec<String>,
    /// How the SYN-ACK-to-RST delay was measured.
    pub delay_method: String,
    /// One row per (contender, concurrency), contender by contender.
    pub rows: Vec<Row>,
    /// The 1-minute load average when the benchmark ended.
    pub load_average_after: f64,
    /// Whether the runs met the bar.
    pub verdict: Verdict,
}

/// Runs the benchmark `args` describes against `server`, with the contenders asked for that
/// run on its route.
pub fn run(args: &Args, server: Server<'_>, setup: Setup) -> anyhow::Result<Benchmark> {
    let mut contenders = args.contenders.clone();
    contenders.retain(|&contender| server.route.runs(contender));
    dedup_in_order(&mut contenders);
    anyhow::ensure!(
        !contenders.is_empty(),
        "none of the contenders asked for runs on this route: {}",
        server.route.describe()
    );
    let plan = Plan {
        server,
        levels: args.concurrency(),
        contenders,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    let (delay_checks, sample) = (args.delay_checks(), args.delay_sample());
    let delays = plan.delay_passes(delay_checks, sample)?;
    let round = plan.round();
    let results = plan.timed_runs(&round, args.checks(), args.runs())?;
    let mut rows = plan.rows(results, delays);
    summary::compare(&mut rows);
    let verdict = Verdict::of(&rows);
    Ok(Benchmark {
        setup,
        checks: args.checks(),
        runs: args.runs(),
        round_order: round
            .iter()
            .map(|(contender, in_flight)| format!("{}/{in_flight}", contender.name()))
            .collect(),
        concurrency: plan.levels,
        route: server.route,
        contenders: plan.contenders,
        delay_method: format!(
            "a separate capture pass of {delay_checks} checks per (contender, concurrency), \
             not timed; capture on {} of {} in the kernel's filter; delay = kernel timestamp \
             (SO_TIMESTAMPNS) of the client's RST minus that of the SYN-ACK; a pass whose \
             capture dropped packets shows no delay",
            server.interface,
            delay::describe_sample(sample)
        ),
        rows,
        load_average_after: procfs::load_average()?,
        verdict,
    })
}

/// A (contender, checks in flight) pair: one row of the table.
type Key = (Contender, usize);

/// What to run, and against what.
struct Plan<'a> {
    server: Server<'a>,
    levels: Vec<usize>,
    contenders: Vec<Contender>,
    timeout: Duration,
}

impl Plan<'_> {
    /// A child run of `checks` checks by `contender` with `in_flight` in flight.
    fn request(&self, (contender, in_flight): Key, checks: u64) -> Request {
        Request {
            kind: contender.into(),
            target: self.server.listener.address(),
            checks,
            in_flight,
            loops: 1,
            timeout: self.timeout,
        }
    }

    /// Whether the row can run at all (std has a thread per check in flight).
    fn runnable((contender, in_flight): Key) -> bool {
        contender != Contender::Std || in_flight <= contenders::std::MAX_THREADS
    }

    /// One capture pass of `checks` checks per half-open row, one connection in `sample`
    /// captured.
    fn delay_passes(&self, checks: u64, sample: u16) -> anyhow::Result<Vec<(Key, DelayResult)>> {
        let mut delays = Vec::new();
        for &contender in self.contenders.iter().filter(|c| c.half_open()) {
            for &in_flight in &self.levels {
                eprintln!(
                    "delay: {} at {in_flight} in flight, capture pass of {checks} checks",
                    contender.name()
                );
                let request = self.request((contender, in_flight), checks);
                let delay = delay_pass(self.server, &request, sample)?;
                delays.push(((contender, in_flight), delay));
            }
        }
        Ok(delays)
    }

    /// The runs of one round: the half-open contenders interleaved at each level, then std
    /// at each level it can run.
    fn round(&self) -> Vec<Key> {
        let half_open = self.levels.iter().flat_map(|&level| {
            self.contenders
                .iter()
                .filter(|contender| contender.half_open())
                .map(move |&contender| (contender, level))
        });
        let std = self
            .levels
            .iter()
            .map(|&level| (Contender::Std, level))
            .filter(|&key| self.contenders.contains(&key.0) && Plan::runnable(key));
        half_open.chain(std).collect()
    }

    /// `runs` rounds of `checks` checks per run, std's TIME_WAIT sockets let expire between
    /// rounds.
    fn timed_runs(
        &self,
        round: &[Key],
        checks: u64,
        runs: usize,
    ) -> anyhow::Result<Vec<(Key, RunResult)>> {
        let port = self.server.listener.address().port();
        let mut results = Vec::new();
        let total = round.len() * runs;
        for round_index in 0..runs {
            if round_index > 0 {
                wait_for_time_wait(port)?;
            }
            for &key in round {
                let result = measure(self.server.listener, &self.request(key, checks))?;
                eprintln!(
                    "[{:>3}/{total}] {:<6} {:>5} in flight, run {}/{runs}: {:.0} checks/s, \
                     {:.1} us CPU per check, {} KiB, accepted {}",
                    results.len() + 1,
                    key.0.name(),
                    key.1,
                    round_index + 1,
                    result.checks_per_s,
                    result.cpu_us_per_check,
                    result.peak_rss_kib,
                    result.accepted
                );
                results.push((key, result));
            }
        }
        Ok(results)
    }

    /// The table's rows, contender by contender, level by level.
    fn rows(
        &self,
        mut results: Vec<(Key, RunResult)>,
        mut delays: Vec<(Key, DelayResult)>,
    ) -> Vec<Row> {
        let mut rows = Vec::new();
        for &contender in &self.contenders {
            for &in_flight in &self.levels {
                let key = (contender, in_flight);
                if !Plan::runnable(key) {
                    let reason =
                        format!("std runs at most {} threads", contenders::std::MAX_THREADS);
                    rows.push(Row::not_run(contender, in_flight, reason));
                    continue;
                }
                let delay = match delays.iter().position(|(delay_key, _)| *delay_key == key) {
                    Some(index) => delays.swap_remove(index).1,
                    None => DelayResult::unavailable("closes with FIN: no RST to time"),
                };
                let (runs, rest) = results
                    .into_iter()
                    .partition(|(run_key, _)| *run_key == key);
                results = rest;
                let runs = runs.into_iter().map(|(_, result)| result).collect();
                rows.push(Row::new(contender, in_flight, runs, delay));
            }
        }
        rows
    }
}

/// Waits until no socket of `port` is in TIME_WAIT any more (at most the 60 s they live, with a
/// margin).
///
/// std's FIN closes leave its client sockets in TIME_WAIT for 60 s, tens of thousands of them;
/// the next checker's `connect()` has to reclaim their ports one by one, which slowed the floor by
/// about 8% on the run after a std run (blackbox_exporter's full connects in the probe scenario
/// leave as many).
pub fn wait_for_time_wait(port: u16) -> anyhow::Result<()> {
    /// How long TIME_WAIT sockets live (the kernel's 60 s), with a margin.
    const TIME_WAIT_LIMIT: Duration = Duration::from_secs(65);
    /// How often to count them meanwhile.
    const TIME_WAIT_POLL: Duration = Duration::from_secs(1);
    let started = Instant::now();
    let mut announced = false;
    loop {
        let left = procfs::time_wait_sockets(port)?;
        if left == 0 {
            return Ok(());
        }
        if started.elapsed() > TIME_WAIT_LIMIT {
            eprintln!("gave up waiting: {left} sockets still in TIME_WAIT");
            return Ok(());
        }
        if !announced {
            eprintln!("waiting for {left} sockets of port {port} to leave TIME_WAIT (up to 60 s)");
            announced = true;
        }
        crate::interrupt::sleep(TIME_WAIT_POLL)?;
    }
}

/// Runs `request` in a child, and counts what the listener accepted meanwhile (waiting out
/// the delayed-ACK window after the child exits).
pub fn measure(listener: &Listener, request: &Request) -> anyhow::Result<RunResult> {
    let before = listener.accepted();
    let finished = child::run(request)?;
    listener.settle();
    let accepted = listener.accepted() - before;
    Ok(RunResult::new(request.checks, finished, accepted))
}

/// Runs `request` under a capture of one connection in `sample` on the server's interface, and
/// measures the delays.
pub fn delay_pass(
    server: Server<'_>,
    request: &Request,
    sample: u16,
) -> anyhow::Result<DelayResult> {
    let address = SocketAddr::V4(server.listener.address());
    let Some(capture) = DelayCapture::start(server.interface, address, sample)? else {
        return Ok(DelayResult::unavailable(delay::NEEDS_CAP_NET_RAW));
    };
    let pass = measure(server.listener, request)?;
    Ok(match capture.finish() {
        Ok(delays) => DelayResult {
            delays: Some(delays),
            unavailable: None,
            pass: Some(pass),
        },
        Err(error) => DelayResult {
            delays: None,
            unavailable: Some(format!("capture failed: {error}")),
            pass: Some(pass),
        },
    })
}

/// Removes repeats, keeping the first of each.
fn dedup_in_order(contenders: &mut Vec<Contender>) {
    let mut seen = Vec::new();
    contenders.retain(|contender| {
        let new = !seen.contains(contender);
        seen.push(*contender);
        new
    });
}
