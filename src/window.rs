//! The start window: how many submitted checks may be waiting for the checker to start them.
//!
//! An event loop starts its checks in the order they were submitted, a few hundred a turn. A
//! check whose result has come in has started; so has every check submitted before it (the
//! loops take checks in turn and keep pace with each other). Checks after the latest result
//! are *unconfirmed*: they may still be waiting for a socket slot or a loop turn. The scheduler
//! submits more only while fewer than the window's limit are unconfirmed, so that no check
//! waits more than about a turn to start.
//!
//! Results alone would stall the window behind checks that take long to answer (silent ports,
//! slow names): a check submitted [`GRACE`] ago is taken to have started without one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long after its submission a check is taken to have started even without evidence: well
/// beyond a turn of a loop (a few milliseconds), short next to a check's timeout.
pub const GRACE: Duration = Duration::from_millis(50);

/// Submitted checks not yet known to have started, bounded.
#[derive(Debug)]
pub struct StartWindow {
    limit: usize,
    /// Tags (increasing) and submission times of the unconfirmed checks.
    unconfirmed: VecDeque<(u64, Instant)>,
    /// The latest tag whose result has come in.
    latest_result: Option<u64>,
}

impl StartWindow {
    /// A window of at most `limit` unconfirmed checks (at least 1).
    pub fn new(limit: usize) -> StartWindow {
        StartWindow {
            limit: limit.max(1),
            unconfirmed: VecDeque::new(),
            latest_result: None,
        }
    }

    /// A check tagged `tag` (greater than every earlier tag) was submitted at `now`.
    pub fn submitted(&mut self, tag: u64, now: Instant) {
        self.unconfirmed.push_back((tag, now));
    }

    /// The result of the check tagged `tag` came in.
    pub fn finished(&mut self, tag: u64) {
        self.latest_result = self.latest_result.max(Some(tag));
    }

    /// Whether another check may be submitted at `now`.
    pub fn has_room(&mut self, now: Instant) -> bool {
        while let Some(&(tag, submitted)) = self.unconfirmed.front() {
            let started = self.latest_result.is_some_and(|latest| tag <= latest);
            if !started && now.saturating_duration_since(submitted) < GRACE {
                break;
            }
            self.unconfirmed.pop_front();
        }
        self.unconfirmed.len() < self.limit
    }

    /// When the oldest unconfirmed check will be taken to have started without a result.
    pub fn reopens_at(&self) -> Option<Instant> {
        self.unconfirmed
            .front()
            .map(|&(_, submitted)| submitted + GRACE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_confirms_every_check_submitted_before_it() {
        let now = Instant::now();
        let mut window = StartWindow::new(3);
        for tag in 1..=3 {
            window.submitted(tag, now);
        }
        assert!(!window.has_room(now));
        window.finished(2);
        assert!(window.has_room(now));
        window.submitted(4, now);
        window.submitted(5, now);
        assert!(!window.has_room(now), "3, 4 and 5 are unconfirmed");
        window.finished(1);
        assert!(
            !window.has_room(now),
            "an older result confirms nothing new"
        );
        window.finished(5);
        assert!(window.has_room(now));
        assert_eq!(window.reopens_at(), None);
    }

    #[test]
    fn without_results_checks_count_as_started_after_the_grace() {
        let start = Instant::now();
        let mut window = StartWindow::new(2);
        window.submitted(1, start);
        window.submitted(2, start + Duration::from_millis(10));
        assert!(!window.has_room(start + Duration::from_millis(10)));
        assert_eq!(window.reopens_at(), Some(start + GRACE));
        assert!(window.has_room(start + GRACE));
        assert_eq!(
            window.reopens_at(),
            Some(start + Duration::from_millis(10) + GRACE)
        );
    }
}
