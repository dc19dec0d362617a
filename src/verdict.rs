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

/// A stable snake_case name for an error kind, for JSON.
pub fn error_kind_name(error: &CheckError) -> &'static str {
    match error.kind() {
        ErrorKind::InvalidTarget => "invalid_target",
        ErrorKind::InvalidOptions => "invalid_options",
        ErrorKind::Resolve => "resolve",
        ErrorKind::ResourceLimit => "resource_limit",
        ErrorKind::NoLocalAddress => "no_local_address",
        ErrorKind::Stopped => "stopped",
        ErrorKind::Io => "io",
        _ => "other",
    }
}
