//! What one check found, errors included, under the names the outputs print.

use std::time::Duration;

use tcp_shaker::{CheckError, ErrorKind, Outcome, Report};

/// The port's answer to a check, or that the check could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Open { rtt: Duration },
    Closed,
    TimedOut,
    Unreachable,
    Error,
}

impl Verdict {
    /// The verdict of a check's result.
    pub fn of(result: &Result<Report, CheckError>) -> Verdict {
        match result {
            Ok(report) => match report.outcome() {
                Outcome::Open { rtt } => Verdict::Open { rtt },
                Outcome::Closed => Verdict::Closed,
                Outcome::TimedOut => Verdict::TimedOut,
                Outcome::Unreachable => Verdict::Unreachable,
            },
            Err(_) => Verdict::Error,
        }
    }

    pub fn is_open(self) -> bool {
        matches!(self, Verdict::Open { .. })
    }

    /// `open`, `closed`, `timed out`, `unreachable` or `error`.
    pub fn human_name(self) -> &'static str {
        match self {
            Verdict::Open { .. } => "open",
            Verdict::Closed => "closed",
            Verdict::TimedOut => "timed out",
            Verdict::Unreachable => "unreachable",
            Verdict::Error => "error",
        }
    }

    /// `open`, `closed`, `timed_out`, `unreachable` or `error`.
    pub fn json_name(self) -> &'static str {
        match self {
            Verdict::TimedOut => "timed_out",
            other => other.human_name(),
        }
    }
}

/// Whether a check failed for the checker's own sake (it could not start the check in time, or
/// it stopped): nothing was learnt of the target.
pub fn is_checker_failure(result: &Result<Report, CheckError>) -> bool {
    result
        .as_ref()
        .is_err_and(|error| matches!(error.kind(), ErrorKind::NotStarted | ErrorKind::Stopped))
}
