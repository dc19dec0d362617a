//! Text for people: a line per check in aligned columns, statistics at the end, and the
//! original's summary block.

use std::io::{self, Write};
use std::time::Duration;

use super::{CheckEvent, Output, RunKind, Summary, TargetSummary, WaitEvent};
use crate::targets::InvalidTarget;
use crate::verdict::Verdict;

/// The widest outcome name, `unreachable`.
const OUTCOME_WIDTH: usize = 11;
/// The address column's starting width, that of `255.255.255.255:65535`.
const ADDRESS_WIDTH: usize = 21;

/// Human-readable output.
pub struct Human {
    target_width: usize,
    /// `None` when every target is an IP address, and the address column would repeat it.
    address_width: Option<usize>,
    colour: bool,
    /// Print the end statistics even after a single check (`--summary`).
    always_summarise: bool,
}

impl Human {
    /// Output whose target column is `target_width` wide (it grows if needed), with an address
    /// column if `show_addresses`, colour if `colour`, and statistics even after one check if
    /// `always_summarise`.
    pub fn new(
        target_width: usize,
        show_addresses: bool,
        colour: bool,
        always_summarise: bool,
    ) -> Human {
        Human {
            target_width,
            address_width: show_addresses.then_some(ADDRESS_WIDTH),
            colour,
            always_summarise,
        }
    }

    fn outcome(&self, out: &mut dyn Write, verdict: Verdict) -> io::Result<()> {
        let name = verdict.human_name();
        let colour = match verdict {
            Verdict::Open { .. } => "32",
            Verdict::TimedOut => "33",
            Verdict::Closed | Verdict::Unreachable | Verdict::Error => "31",
        };
        if self.colour {
            write!(out, "\x1b[{colour}m{name}\x1b[0m")?;
        } else {
            out.write_all(name.as_bytes())?;
        }
        write!(out, "{:1$}", "", OUTCOME_WIDTH - name.len())
    }

    fn target_statistics(&self, out: &mut dyn Write, entry: &TargetSummary) -> io::Result<()> {
        match entry.address {
            Some(address) => writeln!(out, "--- {} at {address} statistics ---", entry.target)?,
            None => writeln!(out, "--- {} statistics ---", entry.target)?,
        }
        let stats = entry.stats;
        let counts = &stats.counts;
        writeln!(
            out,
            "{} sent, {} open, {} closed, {} timed out, {} unreachable, {} errors, {:.1}% loss",
            counts.sent,
            counts.open,
            counts.closed,
            counts.timed_out,
            counts.unreachable,
            counts.errors,
            counts.loss_percent()
        )?;
        match stats.rtt() {
            Some(rtt) => writeln!(
                out,
                "rtt min/avg/max/stddev = {:.3}/{:.3}/{:.3}/{:.3} ms",
                rtt.min,
                rtt.mean,
                rtt.max,
                rtt.stddev()
            )?,
            None => writeln!(out, "rtt: no check found the port open")?,
        }
        writeln!(
            out,
            "longest up streak {}, longest down streak {}",
            stats.longest_up_streak, stats.longest_down_streak
        )
    }
}

impl Output for Human {
    fn check(&mut self, out: &mut dyn Write, check: &CheckEvent) -> io::Result<()> {
        self.target_width = self.target_width.max(check.target.len());
        write!(out, "{:1$}  ", check.target, self.target_width)?;
        if let Some(width) = &mut self.address_width {
            let address = check
                .address()
                .map_or_else(|| "-".to_owned(), |a| a.to_string());
            *width = (*width).max(address.len());
            write!(out, "{address:0$}  ", *width)?;
        }
        self.outcome(out, check.verdict)?;
        match (check.result, check.time_taken()) {
            (Err(error), _) => writeln!(out, "  {error}"),
            (Ok(_), Some(time)) => writeln!(out, "  {}", format_millis(time)),
            (Ok(_), None) => writeln!(out),
        }
    }

    fn invalid_target(&mut self, _: &mut dyn Write, _: &InvalidTarget) -> io::Result<()> {
        // Reported on stderr for every format.
        Ok(())
    }

    fn hidden_checks(&mut self, out: &mut dyn Write, hidden: u64) -> io::Result<()> {
        let noun = if hidden == 1 { "check" } else { "checks" };
        writeln!(out, "({hidden} {noun} not shown: the port was not open)")
    }

    fn wait_event(&mut self, out: &mut dyn Write, event: &WaitEvent) -> io::Result<()> {
        match event {
            WaitEvent::Open {
                target,
                after,
                checks,
                ..
            } => writeln!(
                out,
                "{target} is open after {:.2} s ({})",
                after.as_secs_f64(),
                plural(*checks, "check")
            ),
            WaitEvent::NotOpen {
                target,
                after,
                checks,
                last,
            } => {
                write!(
                    out,
                    "{target} is not open after {:.2} s ({})",
                    after.as_secs_f64(),
                    plural(*checks, "check")
                )?;
                match last {
                    Some((_, Some(error))) => writeln!(out, "; last: {error}"),
                    Some((verdict, None)) => writeln!(out, "; last: {}", verdict.human_name()),
                    None => writeln!(out),
                }
            }
        }
    }

    fn summary(&mut self, out: &mut dyn Write, summary: &Summary) -> io::Result<()> {
        let totals = &summary.totals;
        if summary.kind == RunKind::Wait || (totals.sent <= 1 && !self.always_summarise) {
            return Ok(());
        }
        for entry in &summary.targets {
            self.target_statistics(out, entry)?;
        }
        writeln!(
            out,
            "Finished {}/{} checks in {:?}",
            totals.sent, summary.planned, summary.elapsed
        )?;
        writeln!(out, "  Succeed: {}", totals.open)?;
        writeln!(
            out,
            "  Errors: connect {}, timeout {}, other {}",
            totals.closed + totals.unreachable,
            totals.timed_out,
            totals.errors
        )
    }
}

fn format_millis(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}

fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("{count} {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use tcp_shaker::{Checker, Target};

    use super::*;

    #[test]
    fn columns_line_up_and_colour_wraps_only_the_outcome() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = Target::try_from(listener.local_addr().unwrap()).unwrap();
        let result = Checker::new()
            .unwrap()
            .check(&target, Duration::from_secs(5));
        let name = target.to_string();
        let check = CheckEvent {
            target: &name,
            result: &result,
            verdict: Verdict::of(&result),
            seq: 1,
            time: SystemTime::now(),
        };
        let mut plain = Vec::new();
        Human::new(30, true, false, false)
            .check(&mut plain, &check)
            .unwrap();
        let line = String::from_utf8(plain).unwrap();
        assert_eq!(line.find(&name), Some(0), "{line}");
        assert_eq!(line[32..].find(&name), Some(0), "{line}");
        assert_eq!(&line[32 + 23..32 + 23 + 13], "open         ", "{line}");
        assert!(line.ends_with(" ms\n"), "{line}");

        let mut coloured = Vec::new();
        Human::new(30, false, true, false)
            .check(&mut coloured, &check)
            .unwrap();
        let line = String::from_utf8(coloured).unwrap();
        assert!(line.contains("\x1b[32mopen\x1b[0m        "), "{line:?}");
    }
}
