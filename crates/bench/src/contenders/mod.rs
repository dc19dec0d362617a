//! The compared checkers, each run inside a child process: N checks of one address with C in
//! flight, counted by outcome and timed from the first check to the last result.

pub mod engine;
pub mod floor;
pub mod std;

use ::std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a contender is asked to do.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Checks to make.
    pub checks: u64,
    /// Checks in flight at once.
    pub in_flight: usize,
    /// Each check's timeout.
    pub timeout: ::std::time::Duration,
}

/// How the checks of one run ended.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Counts {
    /// SYN-ACK (or an established connection, for `std`).
    pub open: u64,
    /// RST: nothing listening.
    pub closed: u64,
    /// No answer before the deadline.
    pub timed_out: u64,
    /// Anything else: unreachable, or the check could not be made.
    pub errors: u64,
    /// The first error's message, if any.
    pub first_error: Option<String>,
}

impl Counts {
    /// Counts an error, keeping its message if it is the first.
    pub fn error(&mut self, message: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(message());
        }
    }

    /// Adds another run's counts (of another thread) to these.
    pub fn merge(&mut self, other: Counts) {
        self.open += other.open;
        self.closed += other.closed;
        self.timed_out += other.timed_out;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// How many checks ended.
    pub fn total(&self) -> u64 {
        self.open + self.closed + self.timed_out + self.errors
    }
}

/// A contender's run: its counts, and the time from the first check started to the last one
/// finished (setting up the checker or the threads excluded).
#[derive(Debug)]
pub struct Run {
    /// How the checks ended.
    pub counts: Counts,
    /// Wall time of the checks.
    pub elapsed: Duration,
}
