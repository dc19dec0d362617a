//! The tcp-shaker engine: one [`Checker`], one [`Batch`] (across one or more checkers), C checks in
//! flight, a new one submitted as each completes ([`keep_in_flight`], which `tcp-checker bench`
//! measures too).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use tcp_shaker::{Batch, Checker, Completion, Outcome};

use super::{Counts, Load, Run};
use crate::checks::keep_in_flight;

/// Checks `target` as `load` says: `load.checks` times, `load.in_flight` at a time.
pub fn run(target: SocketAddr, load: Load) -> anyhow::Result<Run> {
    let mut counts = Counts::default();
    let mut batch = batch_across(1)?;
    let elapsed = keep_in_flight(
        &mut batch,
        load.checks,
        load.in_flight,
        |_| target,
        load.timeout,
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
    let mut batch = batch_across(loops)?;
    let elapsed = keep_in_flight(
        &mut batch,
        checks,
        in_flight,
        target,
        timeout,
        |completion| {
            if count(&mut counts, &completion) {
                open_ports.push(port_of(completion.tag));
            }
        },
    )?;
    open_ports.sort_unstable();
    Ok(Scan {
        run: Run { counts, elapsed },
        open_ports,
    })
}

/// Starts `loops` checkers, and a batch across them.
fn batch_across(loops: usize) -> anyhow::Result<Batch> {
    let checkers = (0..loops.max(1))
        .map(|_| Checker::new())
        .collect::<Result<Vec<_>, _>>()
        .context("starting the checker")?;
    Batch::across(checkers).context("no checker to check with")
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
