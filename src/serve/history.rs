//! What the status page shows of each target's past: its recent checks (outcome and round
//! trip), and the share of successful checks over the last hour and day, in bounded memory
//! (about 700 bytes a target).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use tcp_shaker::health::{CheckEvent, WatchId, WatchMap};

use super::outcome;

/// Checks kept per target for the page's chart.
pub const RECENT_CHECKS: usize = 60;

/// Successful and all checks in one period (a minute, or an hour).
#[derive(Clone, Copy, Debug, Default)]
struct Period {
    /// Which period it counts (minutes or hours since the Unix epoch); 0: none yet.
    stamp: u64,
    checks: u32,
    successes: u32,
}

/// A ring of periods, one per minute of the last hour or per hour of the last day.
#[derive(Clone, Debug)]
struct Periods<const N: usize> {
    periods: [Period; N],
}

impl<const N: usize> Default for Periods<N> {
    fn default() -> Periods<N> {
        Periods {
            periods: [Period::default(); N],
        }
    }
}

impl<const N: usize> Periods<N> {
    fn record(&mut self, stamp: u64, success: bool) {
        let slot = &mut self.periods[(stamp % N as u64) as usize];
        if slot.stamp != stamp {
            *slot = Period {
                stamp,
                ..Period::default()
            };
        }
        slot.checks += 1;
        slot.successes += u32::from(success);
    }

    /// The share of successes over the `N` periods up to `now`; `None` without a check.
    fn ratio(&self, now: u64) -> Option<f64> {
        let recent = self
            .periods
            .iter()
            .filter(|period| period.stamp + N as u64 > now && period.stamp <= now);
        let (checks, successes) = recent.fold((0u64, 0u64), |(c, s), period| {
            (
                c + u64::from(period.checks),
                s + u64::from(period.successes),
            )
        });
        (checks > 0).then(|| successes as f64 / checks as f64)
    }
}

/// One target's past.
#[derive(Clone, Debug, Default)]
struct Record {
    /// One letter per recent check, oldest first, as [`outcome::KINDS`] gives them.
    outcomes: Vec<u8>,
    /// The round trip of each, in microseconds (0 when not open).
    rtt_us: Vec<u32>,
    minutes: Periods<60>,
    hours: Periods<24>,
}

/// What the page gets of one target's past.
#[derive(Debug)]
pub struct Past {
    /// One letter per recent check, oldest first: o open, c closed, t timed out, u unreachable,
    /// r not resolved, e checker error.
    pub outcomes: String,
    /// The round trip of each in microseconds, 0 when the port was not open.
    pub rtt_us: Vec<u32>,
    /// The share of successful checks over the last hour, and over the last day.
    pub uptime_hour: Option<f64>,
    /// See `uptime_hour`.
    pub uptime_day: Option<f64>,
}

/// Every target's past, by watch.
#[derive(Debug, Default)]
pub struct History {
    records: Mutex<WatchMap<Record>>,
}

impl History {
    /// Records a finished check.
    pub fn record(&self, event: &CheckEvent<'_>) {
        let Some(last) = &event.status.last_check else {
            return;
        };
        let (kind, rtt) = outcome::kind_of(&last.judgement);
        let letter = outcome::KINDS[kind].1;
        let rtt = rtt.map_or(0, |rtt| u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX));
        let mut records = self.lock();
        let record = records.entry(event.status.id).or_default();
        if record.outcomes.len() == RECENT_CHECKS {
            record.outcomes.remove(0);
            record.rtt_us.remove(0);
        }
        record.outcomes.push(letter);
        record.rtt_us.push(rtt);
        if let Some(success) = last.judgement.success() {
            let seconds = unix_seconds(last.at);
            record.minutes.record(seconds / 60, success);
            record.hours.record(seconds / 3600, success);
        }
    }

    /// Forgets a target that is no longer watched.
    pub fn forget(&self, id: WatchId) {
        self.lock().remove(&id);
    }

    /// The past of one target, as of now.
    pub fn past(&self, id: WatchId) -> Past {
        let seconds = unix_seconds(SystemTime::now());
        let records = self.lock();
        let Some(record) = records.get(&id) else {
            return Past {
                outcomes: String::new(),
                rtt_us: Vec::new(),
                uptime_hour: None,
                uptime_day: None,
            };
        };
        Past {
            outcomes: String::from_utf8_lossy(&record.outcomes).into_owned(),
            rtt_us: record.rtt_us.clone(),
            uptime_hour: record.minutes.ratio(seconds / 60),
            uptime_day: record.hours.ratio(seconds / 3600),
        }
    }

    /// The uptime over the last day, for a badge.
    pub fn uptime_day(&self, id: WatchId) -> Option<f64> {
        let hour = unix_seconds(SystemTime::now()) / 3600;
        self.lock()
            .get(&id)
            .and_then(|record| record.hours.ratio(hour))
    }

    fn lock(&self) -> MutexGuard<'_, WatchMap<Record>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_counts_only_the_periods_of_the_window() {
        let mut minutes: Periods<60> = Periods::default();
        minutes.record(1000, true);
        minutes.record(1000, false);
        minutes.record(1059, true);
        assert_eq!(minutes.ratio(1059), Some(2.0 / 3.0));
        // An hour on, minute 1000 has left the window; 1059 is still in it.
        assert_eq!(minutes.ratio(1060), Some(1.0));
        // Minute 1060 reuses minute 1000's slot, starting it afresh.
        minutes.record(1060, false);
        assert_eq!(minutes.ratio(1060), Some(0.5));
        assert_eq!(minutes.ratio(2000), None);
    }
}
