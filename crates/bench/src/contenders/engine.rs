//! The tcp-shaker engine: one [`Checker`], one [`Batch`] (across one or more checkers), C checks in
//! flight, a new one submitted as each completes (as the `tcp-checker` command does).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use tcp_shaker::{Batch, Checker, Completion, Outcome};

use super::{Counts, Run};

/// Checks `target` `checks` times, `in_flight` at a time.
pub fn run(
    target: SocketAddr,
    checks: u64,
    in_flight: usize,
    timeout: Duration,
) -> anyhow::Result<Run> {
    let mut counts = Counts::default();
    let elapsed = keep_in_flight(
        checks,
        in_flight,
        1,
        |_| target,
        timeout,
        |completion| {
            count(&mut counts, &completion);
        },
    )?;
    Ok(Run { counts, elapsed })
}

/// What a scan of every port found.
#[derive(Debug)]
pub struct Scan {
    /// How the checks ended.
    pub run: Run,
    /// The ports found open, ascending.
    pub open_ports: Vec<u16>,
}

/// Checks every port 1-65535 of `ip`, `in_flight` at a time, spread over `loops` checkers.
pub fn scan(
    ip: Ipv4Addr,
    in_flight: usize,
    loops: usize,
    timeout: Duration,
) -> anyhow::Result<Scan> {
    let port_of = |tag: u64| u16::try_from(tag + 1).unwrap_or(u16::MAX);
    let target = |tag| SocketAddr::from((ip, port_of(tag)));
    let mut counts = Counts::default();
    let mut open_ports = Vec::new();
    let checks = u64::from(u16::MAX);
    let elapsed = keep_in_flight(checks, in_flight, loops, target, timeout, |completion| {
        if count(&mut counts, &completion) {
            open_ports.push(port_of(completion.tag));
        }
    })?;
    open_ports.sort_unstable();
    Ok(Scan {
        run: Run { counts, elapsed },
        open_ports,
    })
}

/// Runs `checks` checks of `target(tag)` for tags 0, 1, ..., keeping `in_flight` of them
/// submitted through one batch across `loops` checkers, and hands each completion to `done`. Returns the time from the first submission to
/// the last completion.
fn keep_in_flight(
    checks: u64,
    in_flight: usize,
    loops: usize,
    target: impl Fn(u64) -> SocketAddr,
    timeout: Duration,
    mut done: impl FnMut(Completion),
) -> anyhow::Result<Duration> {
    let checkers = (0..loops.max(1))
        .map(|_| Checker::new())
        .collect::<Result<Vec<_>, _>>()
        .context("starting the checker")?;
    let mut batch = Batch::across(checkers).context("no checker to check with")?;
    let first = checks.min(u64::try_from(in_flight).unwrap_or(u64::MAX));
    let started = Instant::now();
    for tag in 0..first {
        batch
            .submit(tag, target(tag), timeout)
            .context("submitting a check")?;
    }
    let mut submitted = first;
    while let Some(completion) = batch.next() {
        done(completion);
        if submitted < checks {
            batch
                .submit(submitted, target(submitted), timeout)
                .context("submitting a check")?;
            submitted += 1;
        }
    }
    Ok(started.elapsed())
}

/// Counts a completion; true if the port was open.
fn count(counts: &mut Counts, completion: &Completion) -> bool {
    match &completion.result {
        Ok(report) => match report.outcome() {
            Outcome::Open { .. } => {
                counts.open += 1;
                return true;
            }
            Outcome::Closed => counts.closed += 1,
            Outcome::TimedOut => counts.timed_out += 1,
            Outcome::Unreachable => counts.error(|| report.outcome().to_string()),
        },
        Err(error) => counts.error(|| error.to_string()),
    }
    false
}
