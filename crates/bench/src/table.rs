//! The benchmark as text: a header, one Markdown table, and notes on how each column was
//! measured and on anything that went wrong.

use std::fmt::Write as _;

use crate::args::Contender;
use crate::bench::Benchmark;
use crate::summary::{Row, describe_failures};

/// The table's column titles.
const COLUMNS: [&str; 10] = [
    "contender",
    "in flight",
    "checks/s",
    "vs floor",
    "CPU µs/check",
    "vs floor",
    "peak RSS",
    "memory per in-flight check",
    "accepted",
    "SYN-ACK-to-RST p50 / p99 / max",
];

/// The whole report.
pub fn render(benchmark: &Benchmark) -> String {
    let setup = &benchmark.setup;
    let mut text = String::new();
    let with_std = benchmark.contenders.contains(&Contender::Std);
    let _ = writeln!(text, "Route: {}.", benchmark.route.describe());
    let _ = writeln!(
        text,
        "shaker-bench: {} checks of {} per run; {} round(s) of runs, each {}{}; medians of the \
         runs shown.",
        benchmark.checks,
        setup.target,
        benchmark.runs,
        benchmark.round_order.join(", "),
        if with_std {
            " (std's TIME_WAIT sockets let expire between rounds)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        text,
        "{} CPUs; 1-minute load average {:.2} before, {:.2} after (it counts this benchmark's \
         own threads{}); listener backlog {}; open files limit {}; timeout {} ms.\n",
        setup.cpus,
        setup.load_average_before,
        benchmark.load_average_after,
        if with_std {
            ": std runs up to 1000"
        } else {
            ""
        },
        setup.listener_backlog,
        setup.open_files_limit,
        setup.timeout_ms
    );
    let cells: Vec<Vec<String>> = benchmark.rows.iter().map(cells).collect();
    text.push_str(&table_with_notes(&COLUMNS, &cells, &notes(benchmark)));
    text
}

/// The cells of one row.
fn cells(row: &Row) -> Vec<String> {
    let not_run = || "n/a".to_string();
    let delay = match (&row.delay.delays, &row.delay.unavailable) {
        _ if row.not_run.is_some() => not_run(),
        (Some(delays), _) => format!(
            "{} / {} / {}",
            micros(delays.p50_us),
            micros(delays.p99_us),
            micros(delays.max_us)
        ),
        _ if row.contender == Contender::Std => "-".into(),
        (None, Some(reason)) if reason.starts_with("capture failed") => "capture failed".into(),
        (None, Some(reason)) => reason.clone(),
        (None, None) => "-".into(),
    };
    let or_na = |value: Option<String>| value.unwrap_or_else(not_run);
    let (figures, compared) = (&row.figures, &row.compared);
    vec![
        row.contender.name().into(),
        row.in_flight.to_string(),
        or_na(figures.checks_per_s.map(|rate| format!("{rate:.0}"))),
        ratio(compared.checks_per_s_vs_floor),
        or_na(figures.cpu_us_per_check.map(|cpu| format!("{cpu:.1}"))),
        ratio(compared.cpu_vs_floor),
        or_na(
            figures
                .peak_rss_kib
                .map(|kib| format!("{:.1} MiB", kib / 1024.0)),
        ),
        compared
            .memory_per_in_flight_bytes
            .map_or_else(|| "-".into(), bytes),
        or_na(figures.accepted_max.map(|accepted| accepted.to_string())),
        delay,
    ]
}

/// How each column was measured, and what went wrong.
fn notes(benchmark: &Benchmark) -> Vec<String> {
    let mut notes = vec![
        "Each run is a child process (this program re-executed). checks/s: checks over the \
         child's time from the first check started to the last finished. CPU: user + system \
         time of the child from wait4, per check (process start-up included; on lo and over a \
         veth pair alike, the kernel handles the server side's packets in softirq on the \
         sending CPU, mostly within the client's own system calls, so that work is included \
         too). vs floor: ratio to the floor at the same concurrency."
            .to_string(),
        "peak RSS: the child's own VmHWM (/proc/self/status, read as it ends); wait4's \
         ru_maxrss is not used because Linux starts an exec'd child's at its parent's peak. \
         Memory per in-flight check: (peak RSS here - peak RSS of the same contender at its \
         lowest concurrency) / (difference in checks in flight)."
            .to_string(),
        "accepted: the most connections the listener's application (one thread in blocking \
         accept, counting and closing) accepted in one run, counted until 300 ms after the \
         child exited (past the 200 ms delayed-ACK timer) and the count held still. The \
         listener's port lies below the local port range, as a service's does (the engine \
         checks a port inside that range with one more system call, to rule out a socket \
         connected to itself)."
            .to_string(),
        format!("SYN-ACK-to-RST delay: {}.", benchmark.delay_method),
    ];
    notes.extend(benchmark.route.caveat().map(String::from));
    for row in &benchmark.rows {
        let name = format!("{} at {} in flight", row.contender.name(), row.in_flight);
        if let Some(reason) = &row.not_run {
            notes.push(format!("{name}: not run ({reason})."));
        }
        for (index, run) in row.runs.iter().enumerate() {
            if !run.all_open() {
                notes.push(format!(
                    "{name}, run {}: {} of {} checks open ({}).",
                    index + 1,
                    run.counts.open,
                    run.checks,
                    describe_failures(&run.counts)
                ));
            }
        }
        if let Some(delays) = &row.delay.delays {
            notes.push(format!(
                "{name}: delay from {} captured connections; {} leaked ACKs and {} without RST \
                 among them.",
                delays.measured, delays.leaked_acks, delays.without_rst
            ));
        }
        if let (Some(reason), true) = (&row.delay.unavailable, row.not_run.is_none()) {
            if reason.starts_with("capture failed") {
                notes.push(format!("{name}: {reason}."));
            }
        }
    }
    if benchmark.verdict.ok {
        notes.push(
            "Verdict: every engine check was open, and the listener accepted no connection \
             from the floor or the engine."
                .into(),
        );
    } else {
        for failure in &benchmark.verdict.failures {
            notes.push(format!("FAILED: {failure}."));
        }
    }
    notes
}

/// A Markdown table with padded columns.
pub fn markdown(columns: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..columns.len())
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .chain([columns[column].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(cell, &width)| format!("{cell:<width$}"))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut text = line(&mut columns.iter().copied());
    let rule: Vec<String> = widths.iter().map(|&width| "-".repeat(width)).collect();
    text.push_str(&line(&mut rule.iter().map(String::as_str)));
    for row in rows {
        text.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    text
}

/// A Markdown table, a blank line, then the notes, one `- note` line each.
pub fn table_with_notes(columns: &[&str], rows: &[Vec<String>], notes: &[String]) -> String {
    let mut text = markdown(columns, rows);
    text.push('\n');
    for note in notes {
        let _ = writeln!(text, "- {note}");
    }
    text
}

/// A ratio as `1.23x`, or `-`.
fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |ratio| format!("{ratio:.2}x"))
}

/// A byte count with a unit.
fn bytes(value: f64) -> String {
    if value.abs() >= 1024.0 {
        format!("{:.1} KiB", value / 1024.0)
    } else {
        format!("{value:.0} B")
    }
}

/// Microseconds with a readable unit.
pub fn micros(value: f64) -> String {
    if value >= 1000.0 {
        format!("{:.1} ms", value / 1000.0)
    } else {
        format!("{value:.0} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(micros(15.4), "15 µs");
        assert_eq!(micros(2500.0), "2.5 ms");
        assert_eq!(bytes(-300.0), "-300 B");
        assert_eq!(bytes(6300.0), "6.2 KiB");
        assert_eq!(ratio(Some(1.0)), "1.00x");
    }

    #[test]
    fn markdown_pads_columns() {
        let table = markdown(&["a", "bb"], &[vec!["ccc".into(), "d".into()]]);
        assert_eq!(table, "| a   | bb |\n| --- | -- |\n| ccc | d  |\n");
    }
}
