//! What a health check found, in the service's words: the names `/metrics` and `/api/targets`
//! give it and the letters of the status page's history, in one table.

use std::time::Duration;

use tcp_shaker::Outcome;
use tcp_shaker::health::Judgement;

/// Each kind of result: its name (a metric label, a JSON value) and its letter in a target's
/// history. The first [`TARGET_OUTCOMES`] are the target's; the last is the checker's own.
pub const KINDS: [(&str, u8); 6] = [
    ("open", b'o'),
    ("closed", b'c'),
    ("timed_out", b't'),
    ("unreachable", b'u'),
    ("resolve_failed", b'r'),
    ("checker_error", b'e'),
];

/// How many of [`KINDS`] say something of the target (all but `checker_error`).
pub const TARGET_OUTCOMES: usize = 5;

/// The place of a check's result in [`KINDS`], and the SYN-ACK's round trip if the port was
/// open.
pub fn kind_of(judgement: &Judgement) -> (usize, Option<Duration>) {
    match judgement {
        Judgement::Checked(report) => match report.outcome() {
            Outcome::Open { rtt } => (0, Some(rtt)),
            Outcome::Closed => (1, None),
            Outcome::TimedOut => (2, None),
            Outcome::Unreachable => (3, None),
        },
        Judgement::NotResolved(_) => (4, None),
        Judgement::CheckerError { .. } => (5, None),
    }
}
