//! What a run prints: the events it reports, and the formats that print them.
//!
//! The recorder turns check results into the events below and hands them to an [`Output`]
//! (human text, NDJSON, or nothing), which writes them into the [`Console`]'s buffers.

mod console;
mod human;
mod json;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use tcp_shaker::{CheckError, Phase, Report};

pub use self::console::Console;
pub use self::human::Human;
pub use self::json::Json;
use crate::stats::{Counts, Stats};
use crate::targets::InvalidTarget;
use crate::verdict::Verdict;

/// One address's result of a check.
pub struct CheckEvent<'a> {
    pub target: &'a str,
    /// Whether the target's host is a name (resolved), rather than an IP address.
    pub by_name: bool,
    pub result: &'a Result<Report, CheckError>,
    pub verdict: Verdict,
    /// The number of this check among its target's (or target address's), from 1.
    pub seq: u64,
    pub time: SystemTime,
}

impl CheckEvent<'_> {
    /// The address checked; `None` for an error, or a deadline that passed while resolving.
    pub fn address(&self) -> Option<SocketAddr> {
        self.result.as_ref().ok().and_then(Report::address)
    }

    /// Whether the check timed out before its host name was resolved.
    pub fn timed_out_resolving(&self) -> bool {
        self.verdict == Verdict::TimedOut
            && self
                .result
                .as_ref()
                .is_ok_and(|report| report.phase() == Phase::Resolve)
    }

    /// The round trip for an open port, else the time the check took; `None` for an error.
    pub fn time_taken(&self) -> Option<Duration> {
        match (self.verdict, self.result) {
            (Verdict::Open { rtt }, _) => Some(rtt),
            (_, Ok(report)) => Some(report.elapsed()),
            (_, Err(_)) => None,
        }
    }
}

/// A check still in flight when the run was interrupted: it has no result.
pub struct InterruptedEvent<'a> {
    pub target: &'a str,
    /// The address, for a target given as an IP address.
    pub address: Option<SocketAddr>,
    pub by_name: bool,
    /// How long it had been running.
    pub ran_for: Duration,
    /// The number of this check among its target's, from 1.
    pub seq: u64,
    pub time: SystemTime,
}

/// With `--wait`: a target became open, or the time ran out before it did.
pub enum WaitEvent<'a> {
    Open {
        target: &'a str,
        address: Option<SocketAddr>,
        after: Duration,
        checks: u64,
    },
    NotOpen {
        target: &'a str,
        after: Duration,
        checks: u64,
        /// The last check's verdict and, for an error, its message.
        last: Option<(Verdict, Option<&'a str>)>,
    },
}

/// Which kind of run a summary ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    Repeat,
    Wait,
}

/// The end of a run.
pub struct Summary<'a> {
    pub kind: RunKind,
    pub totals: Counts,
    /// Checks planned: for a count, targets times count; until interrupted, the checks started.
    /// With `--all-addresses` a finished check counts once per address it had.
    pub planned: u64,
    pub invalid_targets: usize,
    pub elapsed: Duration,
    pub interrupted: bool,
    /// Checks in flight when the run was interrupted, without a result.
    pub interrupted_checks: u64,
    /// The statistics of each target (or target address) checked more than once (with
    /// `--open`, of those found open at least once).
    pub targets: Vec<TargetSummary<'a>>,
}

/// The statistics of one target, or of one address of a target with `--all-addresses`.
pub struct TargetSummary<'a> {
    pub target: String,
    pub address: Option<SocketAddr>,
    pub stats: &'a Stats,
}

/// A format for the events of a run.
pub trait Output {
    fn check(&mut self, out: &mut dyn Write, check: &CheckEvent) -> io::Result<()>;

    fn interrupted(&mut self, out: &mut dyn Write, check: &InterruptedEvent) -> io::Result<()>;

    fn invalid_target(&mut self, out: &mut dyn Write, invalid: &InvalidTarget) -> io::Result<()>;

    /// With `--open`: how many check lines were left out.
    fn hidden_checks(&mut self, out: &mut dyn Write, hidden: u64) -> io::Result<()>;

    fn wait_event(&mut self, out: &mut dyn Write, event: &WaitEvent) -> io::Result<()>;

    fn summary(&mut self, out: &mut dyn Write, summary: &Summary) -> io::Result<()>;
}

/// `--quiet`: nothing at all.
pub struct Quiet;

impl Output for Quiet {
    fn check(&mut self, _: &mut dyn Write, _: &CheckEvent) -> io::Result<()> {
        Ok(())
    }

    fn interrupted(&mut self, _: &mut dyn Write, _: &InterruptedEvent) -> io::Result<()> {
        Ok(())
    }

    fn invalid_target(&mut self, _: &mut dyn Write, _: &InvalidTarget) -> io::Result<()> {
        Ok(())
    }

    fn hidden_checks(&mut self, _: &mut dyn Write, _: u64) -> io::Result<()> {
        Ok(())
    }

    fn wait_event(&mut self, _: &mut dyn Write, _: &WaitEvent) -> io::Result<()> {
        Ok(())
    }

    fn summary(&mut self, _: &mut dyn Write, _: &Summary) -> io::Result<()> {
        Ok(())
    }
}

/// Milliseconds, rounded to the microsecond.
pub fn millis(duration: Duration) -> f64 {
    (duration.as_nanos() as f64 / 1000.0).round() / 1000.0
}

/// A check of `slow.test:80` whose timeout passed while its name was being resolved, for the
/// writers' tests.
#[cfg(test)]
pub fn timed_out_while_resolving() -> Result<tcp_shaker::Report, tcp_shaker::CheckError> {
    let checker = tcp_shaker::Checker::builder()
        .resolver(|_: &str| -> std::io::Result<Vec<std::net::IpAddr>> {
            std::thread::sleep(Duration::from_millis(500));
            Ok(vec![std::net::IpAddr::from([127, 0, 0, 1])])
        })
        .spawn()
        .expect("a checker");
    checker.check("slow.test:80", Duration::from_millis(50))
}
