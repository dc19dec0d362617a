//! Statistics of checks: counts over the whole run, and per target (or per target and address)
//! for a run that checks a target more than once.
//!
//! Every update is O(1): counts, a running mean and variance of round trips (Welford's method),
//! and the current and longest runs of open and not-open checks.

use std::net::SocketAddr;
use std::time::Duration;

use tcp_shaker::Target;

use crate::verdict::Verdict;

/// How many checks ended each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Checks that finished, whatever their outcome (shown as "sent", the original's word).
    pub finished: u64,
    pub open: u64,
    pub closed: u64,
    pub timed_out: u64,
    pub unreachable: u64,
    pub errors: u64,
}

impl Counts {
    /// Counts one more check.
    pub fn add(&mut self, verdict: Verdict) {
        self.finished += 1;
        match verdict {
            Verdict::Open { .. } => self.open += 1,
            Verdict::Closed => self.closed += 1,
            Verdict::TimedOut => self.timed_out += 1,
            Verdict::Unreachable => self.unreachable += 1,
            Verdict::Error => self.errors += 1,
        }
    }

    /// The share of checks that did not find the port open, in percent (0 with no checks).
    pub fn loss_percent(&self) -> f64 {
        if self.finished == 0 {
            return 0.0;
        }
        (self.finished - self.open) as f64 * 100.0 / self.finished as f64
    }
}

/// Round-trip times of the open checks, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rtt {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    count: u64,
    sum_of_squared_deviations: f64,
}

impl Rtt {
    fn add(&mut self, rtt: Duration) {
        let ms = rtt.as_secs_f64() * 1000.0;
        if self.count == 0 {
            self.min = ms;
            self.max = ms;
        } else {
            self.min = self.min.min(ms);
            self.max = self.max.max(ms);
        }
        self.count += 1;
        let delta = ms - self.mean;
        self.mean += delta / self.count as f64;
        self.sum_of_squared_deviations += delta * (ms - self.mean);
    }

    /// The population standard deviation.
    pub fn stddev(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        (self.sum_of_squared_deviations / self.count as f64).sqrt()
    }
}

/// The statistics of one target's (or one target address's) checks.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub counts: Counts,
    rtt: Rtt,
    up_streak: u64,
    down_streak: u64,
    pub longest_up_streak: u64,
    pub longest_down_streak: u64,
}

impl Stats {
    /// Adds a check, in the order checks finished.
    pub fn add(&mut self, verdict: Verdict) {
        self.counts.add(verdict);
        if let Verdict::Open { rtt } = verdict {
            self.rtt.add(rtt);
            self.up_streak += 1;
            self.down_streak = 0;
            self.longest_up_streak = self.longest_up_streak.max(self.up_streak);
        } else {
            self.down_streak += 1;
            self.up_streak = 0;
            self.longest_down_streak = self.longest_down_streak.max(self.down_streak);
        }
    }

    /// Round-trip statistics, if any check found the port open.
    pub fn rtt(&self) -> Option<&Rtt> {
        (self.rtt.count > 0).then_some(&self.rtt)
    }
}

/// Statistics of every target of a repeated run, in the order targets were taken.
#[derive(Debug)]
pub struct StatsTable {
    targets: Vec<TargetStats>,
    per_address: bool,
}

/// One target's statistics: one entry, or with `per_address` one per address in the order
/// first seen.
#[derive(Debug)]
struct TargetStats {
    target: Target,
    by_address: Vec<(Option<SocketAddr>, Stats)>,
    /// Checks in flight when the run was interrupted.
    interrupted: u64,
}

impl StatsTable {
    /// An empty table; with `per_address`, each address of a target is counted on its own.
    pub fn new(per_address: bool) -> StatsTable {
        StatsTable {
            targets: Vec::new(),
            per_address,
        }
    }

    /// Adds target `number`, the next in order.
    pub fn add_target(&mut self, number: usize, target: &Target) {
        if number == self.targets.len() {
            self.targets.push(TargetStats {
                target: target.clone(),
                by_address: Vec::new(),
                interrupted: 0,
            });
        }
    }

    /// Adds a check of target `number` that used `address`; returns the statistics it was
    /// added to (`None` for a target never added).
    pub fn add(
        &mut self,
        number: usize,
        address: Option<SocketAddr>,
        verdict: Verdict,
    ) -> Option<&Stats> {
        let key = if self.per_address { address } else { None };
        let entries = &mut self.targets.get_mut(number)?.by_address;
        let position = match entries.iter().position(|(entry, _)| *entry == key) {
            Some(position) => position,
            None => {
                // Most targets have one entry: room for exactly that, not a growing vector's 4.
                entries.reserve_exact(1);
                entries.push((key, Stats::default()));
                entries.len() - 1
            }
        };
        let stats = &mut entries[position].1;
        stats.add(verdict);
        Some(stats)
    }

    /// Counts a check of target `number` that was interrupted; returns its number among the
    /// target's checks, after those that finished (from 1).
    pub fn add_interrupted(&mut self, number: usize) -> u64 {
        let Some(target) = self.targets.get_mut(number) else {
            return 1;
        };
        target.interrupted += 1;
        let finished = target
            .by_address
            .iter()
            .map(|(_, stats)| stats.counts.finished)
            .max()
            .unwrap_or(0);
        finished + target.interrupted
    }

    /// Every entry as (target, address when counted per address, statistics).
    pub fn entries(&self) -> impl Iterator<Item = (&Target, Option<SocketAddr>, &Stats)> {
        self.targets.iter().flat_map(|target| {
            target
                .by_address
                .iter()
                .map(move |(address, stats)| (&target.target, *address, stats))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(ms: u64) -> Verdict {
        Verdict::Open {
            rtt: Duration::from_millis(ms),
        }
    }

    /// The checks finished by the entry of `table` that a closed check of target `number` at
    /// `address` went into.
    fn finished_after_closed(table: &mut StatsTable, number: usize, address: SocketAddr) -> u64 {
        let stats = table.add(number, Some(address), Verdict::Closed).unwrap();
        stats.counts.finished
    }

    #[test]
    fn counts_loss_rtt_and_streaks() {
        let mut stats = Stats::default();
        for verdict in [
            open(1),
            open(3),
            Verdict::Closed,
            Verdict::TimedOut,
            Verdict::Error,
            open(2),
            Verdict::Unreachable,
            open(2),
            open(2),
            open(2),
        ] {
            stats.add(verdict);
        }
        let counts = stats.counts;
        assert_eq!(
            (
                counts.finished,
                counts.open,
                counts.closed,
                counts.timed_out
            ),
            (10, 6, 1, 1)
        );
        assert_eq!((counts.unreachable, counts.errors), (1, 1));
        assert!((counts.loss_percent() - 40.0).abs() < 1e-9);
        let rtt = stats.rtt().unwrap();
        assert_eq!((rtt.min, rtt.max), (1.0, 3.0));
        assert!((rtt.mean - 2.0).abs() < 1e-9);
        assert!((rtt.stddev() - (2.0f64 / 6.0).sqrt()).abs() < 1e-9);
        assert_eq!((stats.longest_up_streak, stats.longest_down_streak), (3, 3));
    }

    #[test]
    fn no_open_check_means_no_rtt() {
        let mut stats = Stats::default();
        stats.add(Verdict::Closed);
        assert!(stats.rtt().is_none());
        assert_eq!(stats.counts.loss_percent(), 100.0);
        assert_eq!(Counts::default().loss_percent(), 0.0);
    }

    #[test]
    fn the_table_keeps_addresses_apart_only_when_asked() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "[::1]:1".parse().unwrap();
        let target: Target = "localhost:1".parse().unwrap();
        let mut merged = StatsTable::new(false);
        merged.add_target(0, &target);
        merged.add(0, Some(a), open(1));
        assert_eq!(finished_after_closed(&mut merged, 0, b), 2);
        assert!(merged.add(1, Some(a), open(1)).is_none(), "no target 1");
        assert_eq!(merged.add_interrupted(0), 3);
        let mut apart = StatsTable::new(true);
        apart.add_target(0, &target);
        apart.add_target(1, &target);
        apart.add(1, Some(a), open(1));
        assert_eq!(finished_after_closed(&mut apart, 1, b), 1);
        let entries: Vec<_> = apart.entries().map(|(_, addr, _)| addr).collect();
        assert_eq!(entries, [Some(a), Some(b)]);
        assert_eq!(apart.add_interrupted(1), 2);
        assert_eq!(apart.add_interrupted(1), 3);
    }
}
