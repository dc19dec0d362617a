//! The results: each run as measured, and each (contender, concurrency) row as shown (medians
//! over the runs, ratios to the floor, memory per in-flight check), plus the verdict. These are
//! also the `--json` output, so field names are stable.

use serde::Serialize;

use crate::args::Contender;
use crate::child::Finished;
use crate::contenders::Counts;
use crate::delay::Delays;
use crate::statistics::median;

/// One child run, as measured.
#[derive(Debug, Serialize)]
pub struct RunResult {
    /// Checks asked for.
    pub checks: u64,
    /// How they ended.
    #[serde(flatten)]
    pub counts: Counts,
    /// Seconds from the first check started to the last finished (inside the child).
    pub elapsed_s: f64,
    /// Checks per second over `elapsed_s`.
    pub checks_per_s: f64,
    /// User plus system CPU seconds of the child process, from `wait4`.
    pub cpu_s: f64,
    /// `cpu_s` per check, microseconds.
    pub cpu_us_per_check: f64,
    /// The child's own peak resident memory (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// `ru_maxrss` from `wait4`, KiB, which Linux floors at the parent's peak (kept to show it).
    pub wait4_maxrss_kib: u64,
    /// Connections the listener's application accepted during the run (and 300 ms after).
    pub accepted: u64,
    /// Seconds from spawning the child to reaping it.
    pub wall_s: f64,
    /// The ports found open, for a scan.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub open_ports: Vec<u16>,
}

impl RunResult {
    /// The result of a finished child that made `checks` checks, during which the listener
    /// accepted `accepted` connections.
    pub fn new(checks: u64, finished: Finished, accepted: u64) -> RunResult {
        let report = finished.report;
        let cpu_s = finished.cpu.as_secs_f64();
        RunResult {
            checks,
            counts: report.counts,
            elapsed_s: report.elapsed_s,
            checks_per_s: checks as f64 / report.elapsed_s.max(f64::MIN_POSITIVE),
            cpu_s,
            cpu_us_per_check: cpu_s * 1e6 / checks.max(1) as f64,
            peak_rss_kib: report.peak_rss_kib,
            wait4_maxrss_kib: finished.wait4_maxrss_kib,
            accepted,
            wall_s: finished.wall.as_secs_f64(),
            open_ports: report.open_ports,
        }
    }

    /// Whether every check found the port open.
    pub fn all_open(&self) -> bool {
        self.counts.open == self.checks
    }
}

/// The SYN-ACK-to-RST delay of a row, from its own capture pass.
#[derive(Debug, Serialize)]
pub struct DelayResult {
    /// The delays of the captured connections, if they could be measured.
    pub delays: Option<Delays>,
    /// Why not, otherwise.
    pub unavailable: Option<String>,
    /// The capture pass's own run (its checks were not timed for the table).
    pub pass: Option<RunResult>,
}

impl DelayResult {
    /// No delay, for `reason`.
    pub fn unavailable(reason: impl Into<String>) -> DelayResult {
        DelayResult {
            delays: None,
            unavailable: Some(reason.into()),
            pass: None,
        }
    }
}

/// One (contender, concurrency) of the table.
#[derive(Debug, Serialize)]
pub struct Row {
    /// The contender.
    pub contender: Contender,
    /// Checks in flight.
    pub in_flight: usize,
    /// Why the row was not run, if it was not.
    pub not_run: Option<String>,
    /// Every run, in order.
    pub runs: Vec<RunResult>,
    /// Its figures over the runs.
    #[serde(flatten)]
    pub figures: Figures,
    /// It against the others.
    #[serde(flatten)]
    pub compared: Compared,
    /// The SYN-ACK-to-RST delay.
    pub delay: DelayResult,
}

/// A row's figures over its runs.
#[derive(Debug, Serialize)]
pub struct Figures {
    /// Median checks per second.
    pub checks_per_s: Option<f64>,
    /// Median CPU microseconds per check.
    pub cpu_us_per_check: Option<f64>,
    /// Median peak resident memory, KiB.
    pub peak_rss_kib: Option<f64>,
    /// The most connections the listener accepted in one run.
    pub accepted_max: Option<u64>,
}

/// A row's figures against the other rows', from [`compare`].
#[derive(Debug, Default, Serialize)]
pub struct Compared {
    /// `checks_per_s` over the floor's at the same concurrency.
    pub checks_per_s_vs_floor: Option<f64>,
    /// `cpu_us_per_check` over the floor's at the same concurrency.
    pub cpu_vs_floor: Option<f64>,
    /// (median peak RSS here - at the contender's lowest concurrency) / (difference in checks
    /// in flight), bytes; absent at the lowest concurrency.
    pub memory_per_in_flight_bytes: Option<f64>,
}

impl Row {
    /// A row of `runs`, its medians filled in; ratios and memory per check come from
    /// [`compare`].
    pub fn new(
        contender: Contender,
        in_flight: usize,
        runs: Vec<RunResult>,
        delay: DelayResult,
    ) -> Row {
        let statistic = |value: fn(&RunResult) -> f64| median(runs.iter().map(value).collect());
        Row {
            contender,
            in_flight,
            not_run: None,
            figures: Figures {
                checks_per_s: statistic(|run| run.checks_per_s),
                cpu_us_per_check: statistic(|run| run.cpu_us_per_check),
                peak_rss_kib: statistic(|run| run.peak_rss_kib as f64),
                accepted_max: runs.iter().map(|run| run.accepted).max(),
            },
            compared: Compared::default(),
            runs,
            delay,
        }
    }

    /// A row that was not run, for `reason`.
    pub fn not_run(contender: Contender, in_flight: usize, reason: impl Into<String>) -> Row {
        let reason = reason.into();
        let mut row = Row::new(
            contender,
            in_flight,
            Vec::new(),
            DelayResult::unavailable(reason.as_str()),
        );
        row.not_run = Some(reason);
        row
    }
}

/// Fills in the ratios to the floor and the memory per in-flight check of every row.
pub fn compare(rows: &mut [Row]) {
    let ran = |row: &&Row| row.not_run.is_none();
    // (in flight, checks/s, CPU per check) of the floor's rows.
    let floors: Vec<(usize, Option<f64>, Option<f64>)> = rows
        .iter()
        .filter(ran)
        .filter(|row| row.contender == Contender::Floor)
        .map(|row| {
            let figures = &row.figures;
            (
                row.in_flight,
                figures.checks_per_s,
                figures.cpu_us_per_check,
            )
        })
        .collect();
    // (contender, in flight, peak RSS) of each contender's lowest concurrency that ran.
    let mut lowest: Vec<(Contender, usize, Option<f64>)> = Vec::new();
    for row in rows.iter().filter(ran) {
        match lowest
            .iter_mut()
            .find(|(contender, ..)| *contender == row.contender)
        {
            Some(entry) if entry.1 <= row.in_flight => {}
            Some(entry) => *entry = (row.contender, row.in_flight, row.figures.peak_rss_kib),
            None => lowest.push((row.contender, row.in_flight, row.figures.peak_rss_kib)),
        }
    }
    for row in rows.iter_mut() {
        if let Some(&(_, rate, cpu)) = floors.iter().find(|floor| floor.0 == row.in_flight) {
            row.compared.checks_per_s_vs_floor = ratio(row.figures.checks_per_s, rate);
            row.compared.cpu_vs_floor = ratio(row.figures.cpu_us_per_check, cpu);
        }
        let base = lowest
            .iter()
            .find(|(contender, ..)| *contender == row.contender);
        if let (Some(&(_, base_in_flight, Some(base_rss))), Some(rss)) =
            (base, row.figures.peak_rss_kib)
        {
            if row.in_flight > base_in_flight {
                let checks = (row.in_flight - base_in_flight) as f64;
                row.compared.memory_per_in_flight_bytes = Some((rss - base_rss) * 1024.0 / checks);
            }
        }
    }
}

/// `value / base`, when both are there.
fn ratio(value: Option<f64>, base: Option<f64>) -> Option<f64> {
    Some(value? / base.filter(|base| *base > 0.0)?)
}

/// Whether the runs met the benchmark's bar, and if not, why.
#[derive(Debug, Default, Serialize)]
pub struct Verdict {
    /// True if nothing below failed.
    pub ok: bool,
    /// What failed.
    pub failures: Vec<String>,
}

impl Verdict {
    /// The verdict on `rows`: every engine check open, and no connection accepted from the
    /// half-open contenders (floor, engine), in the timed runs and the capture passes alike.
    pub fn of(rows: &[Row]) -> Verdict {
        let mut failures = Vec::new();
        for row in rows {
            let runs = row
                .runs
                .iter()
                .enumerate()
                .map(|(index, run)| (format!("run {}", index + 1), run));
            let pass = row
                .delay
                .pass
                .iter()
                .map(|run| ("capture pass".to_string(), run));
            for (what, run) in runs.chain(pass) {
                let name = format!(
                    "{} at {} in flight, {what}",
                    row.contender.name(),
                    row.in_flight
                );
                if row.contender == Contender::Engine && !run.all_open() {
                    failures.push(format!(
                        "{name}: {} of {} checks open ({})",
                        run.counts.open,
                        run.checks,
                        describe_failures(&run.counts)
                    ));
                }
                if row.contender.half_open() && run.accepted > 0 {
                    failures.push(format!(
                        "{name}: the listener accepted {} connections",
                        run.accepted
                    ));
                }
            }
        }
        Verdict {
            ok: failures.is_empty(),
            failures,
        }
    }
}

/// The checks that were not open, in words.
pub fn describe_failures(counts: &Counts) -> String {
    let mut text = format!(
        "{} closed, {} timed out, {} errors",
        counts.closed, counts.timed_out, counts.errors
    );
    if let Some(error) = &counts.first_error {
        text.push_str(&format!("; first error: {error}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row that ran, with the given medians (checks/s, CPU us per check, peak RSS KiB).
    fn row(contender: Contender, in_flight: usize, medians: (f64, f64, f64)) -> Row {
        let mut row = Row::not_run(contender, in_flight, "");
        row.not_run = None;
        let figures = &mut row.figures;
        (
            figures.checks_per_s,
            figures.cpu_us_per_check,
            figures.peak_rss_kib,
        ) = (Some(medians.0), Some(medians.1), Some(medians.2));
        row
    }

    #[test]
    fn rows_compare_to_the_floor_and_to_their_lowest_concurrency() {
        let mut rows = [
            row(Contender::Floor, 100, (40_000.0, 25.0, 3000.0)),
            row(Contender::Floor, 1000, (50_000.0, 20.0, 3000.0)),
            row(Contender::Engine, 100, (60_000.0, 20.0, 3000.0)),
            row(Contender::Engine, 1000, (50_000.0, 30.0, 4000.0)),
            Row::not_run(Contender::Std, 100, "not asked for"),
        ];
        compare(&mut rows);
        let engine = &rows[3];
        assert_eq!(engine.compared.checks_per_s_vs_floor, Some(1.0));
        assert_eq!(engine.compared.cpu_vs_floor, Some(1.5));
        assert_eq!(rows[2].compared.checks_per_s_vs_floor, Some(1.5));
        // 1000 KiB more for 900 more checks in flight.
        assert_eq!(
            engine.compared.memory_per_in_flight_bytes,
            Some(1000.0 * 1024.0 / 900.0)
        );
        assert_eq!(rows[2].compared.memory_per_in_flight_bytes, None);
        assert_eq!(rows[4].compared.checks_per_s_vs_floor, None);
    }
}
