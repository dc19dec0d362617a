//! Text for people: a line per check in aligned columns, statistics at the end, and the
//! original's summary block.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anstyle::{AnsiColor, Style};

use super::{CheckEvent, InterruptedEvent, Output, RunKind, Summary, TargetSummary, WaitEvent};
use crate::targets::InvalidTarget;
use crate::verdict::Verdict;

/// The widest outcome name, `unreachable`.
const OUTCOME_WIDTH: usize = 11;
/// The address column's starting width, that of `255.255.255.255:65535`.
const ADDRESS_WIDTH: usize = 21;

/// Human-readable output.
pub struct Human {
    target_width: usize,
    /// `None` while every target is an IP address, and the address column would repeat it.
    address_width: Option<usize>,
    /// Whether the address column starts with the first check of a host name.
    addresses_from_first_name: bool,
    colour: bool,
    /// Print the end statistics even after a single check (`--summary`).
    always_summarise: bool,
}

impl Human {
    /// Output whose target column is `target_width` wide (it grows if needed), with an address
    /// column if `show_addresses` (`None`: from the first check of a host name on, for targets
    /// not known in advance), colour if `colour`, and statistics even after one check if
    /// `always_summarise`.
    pub fn new(
        target_width: usize,
        show_addresses: Option<bool>,
        colour: bool,
        always_summarise: bool,
    ) -> Human {
        Human {
            target_width,
            address_width: (show_addresses == Some(true)).then_some(ADDRESS_WIDTH),
            addresses_from_first_name: show_addresses.is_none(),
            colour,
            always_summarise,
        }
    }

    /// The target column, and the address column if there is one.
    fn target_columns(
        &mut self,
        out: &mut dyn Write,
        target: &str,
        by_name: bool,
        address: Option<SocketAddr>,
    ) -> io::Result<()> {
        self.target_width = self.target_width.max(target.len());
        write!(out, "{target:0$}  ", self.target_width)?;
        if by_name && self.addresses_from_first_name && self.address_width.is_none() {
            self.address_width = Some(ADDRESS_WIDTH);
        }
        if let Some(width) = &mut self.address_width {
            let address = address.map_or_else(|| "-".to_owned(), |a| a.to_string());
            *width = (*width).max(address.len());
            write!(out, "{address:0$}  ", *width)?;
        }
        Ok(())
    }

    /// The outcome column: `name` in `colour` when colour is on.
    fn outcome(&self, out: &mut dyn Write, name: &str, colour: AnsiColor) -> io::Result<()> {
        if self.colour {
            let style = Style::new().fg_color(Some(colour.into()));
            write!(out, "{style}{name}{style:#}")?;
        } else {
            out.write_all(name.as_bytes())?;
        }
        write!(out, "{:1$}", "", OUTCOME_WIDTH.saturating_sub(name.len()))
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
            counts.finished,
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
        self.target_columns(out, check.target, check.by_name, check.address())?;
        let colour = match check.verdict {
            Verdict::Open { .. } => AnsiColor::Green,
            Verdict::TimedOut => AnsiColor::Yellow,
            Verdict::Closed | Verdict::Unreachable | Verdict::Error => AnsiColor::Red,
        };
        let name = if check.timed_out_resolving() {
            "timed out (resolving)"
        } else {
            check.verdict.human_name()
        };
        self.outcome(out, name, colour)?;
        match (check.result, check.time_taken()) {
            (Err(error), _) => writeln!(out, "  {error}"),
            (Ok(_), Some(time)) => writeln!(out, "  {}", format_millis(time)),
            (Ok(_), None) => writeln!(out),
        }
    }

    fn interrupted(&mut self, out: &mut dyn Write, check: &InterruptedEvent) -> io::Result<()> {
        self.target_columns(out, check.target, check.by_name, check.address)?;
        self.outcome(out, "interrupted", AnsiColor::Yellow)?;
        writeln!(out, "  {}", format_millis(check.ran_for))
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
        let checks = totals.finished + summary.interrupted_checks;
        let worth_it = checks > 1 || summary.interrupted || self.always_summarise;
        if summary.kind == RunKind::Wait || !worth_it || summary.planned == 0 {
            return Ok(());
        }
        for entry in &summary.targets {
            self.target_statistics(out, entry)?;
        }
        writeln!(
            out,
            "Finished {}/{} checks in {:?}",
            totals.finished, summary.planned, summary.elapsed
        )?;
        writeln!(out, "  Succeed: {}", totals.open)?;
        writeln!(
            out,
            "  Errors: connect {}, timeout {}, other {}",
            totals.closed + totals.unreachable,
            totals.timed_out,
            totals.errors
        )?;
        if summary.interrupted_checks > 0 {
            writeln!(
                out,
                "  Interrupted: {} (in flight when the run was stopped)",
                summary.interrupted_checks
            )?;
        }
        Ok(())
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

    use tcp_shaker::{CheckError, Checker, Report, Target};

    use super::*;

    fn event<'a>(name: &'a str, result: &'a Result<Report, CheckError>) -> CheckEvent<'a> {
        CheckEvent {
            target: name,
            by_name: false,
            result,
            verdict: Verdict::of(result),
            seq: 1,
            time: SystemTime::now(),
        }
    }

    fn open_check() -> (String, Result<Report, CheckError>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = Target::try_from(listener.local_addr().unwrap()).unwrap();
        let result = Checker::new()
            .unwrap()
            .check(&target, Duration::from_secs(5));
        (target.to_string(), result)
    }

    fn line(human: &mut Human, check: &CheckEvent) -> String {
        let mut out = Vec::new();
        human.check(&mut out, check).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn columns_line_up_and_colour_wraps_only_the_outcome() {
        let (name, result) = open_check();
        let check = event(&name, &result);
        let text = line(&mut Human::new(30, Some(true), false, false), &check);
        assert_eq!(text.find(&name), Some(0), "{text}");
        assert_eq!(text[32..].find(&name), Some(0), "{text}");
        assert_eq!(&text[32 + 23..32 + 23 + 13], "open         ", "{text}");
        assert!(text.ends_with(" ms\n"), "{text}");

        let coloured = line(&mut Human::new(30, Some(false), true, false), &check);
        assert!(
            coloured.contains("\x1b[32mopen\x1b[0m        "),
            "{coloured:?}"
        );
    }

    #[test]
    fn the_address_column_can_start_at_the_first_host_name() {
        let (name, result) = open_check();
        let mut human = Human::new(0, None, false, false);
        let by_ip = line(&mut human, &event(&name, &result));
        assert!(by_ip.starts_with(&format!("{name}  open ")), "{by_ip}");
        let by_name = CheckEvent {
            by_name: true,
            ..event(&name, &result)
        };
        let named = line(&mut human, &by_name);
        assert!(
            named.starts_with(&format!("{name}  {name:21}  open ")),
            "{named}"
        );
        let after = line(&mut human, &event(&name, &result));
        assert!(
            after.starts_with(&format!("{name}  {name:21}  open ")),
            "{after}"
        );
    }

    #[test]
    fn a_timeout_while_resolving_says_so() {
        let result = super::super::timed_out_while_resolving();
        let check = CheckEvent {
            by_name: true,
            ..event("slow.test:80", &result)
        };
        let text = line(&mut Human::new(0, Some(true), false, false), &check);
        assert!(text.contains("  -  "), "no address: {text}");
        assert!(text.contains(" timed out (resolving)  "), "{text}");
    }

    #[test]
    fn an_interrupted_check_has_its_own_outcome() {
        let mut out = Vec::new();
        let check = InterruptedEvent {
            target: "127.0.0.1:80",
            address: "127.0.0.1:80".parse().ok(),
            by_name: false,
            ran_for: Duration::from_millis(1500),
            seq: 1,
            time: SystemTime::now(),
        };
        Human::new(0, Some(false), false, false)
            .interrupted(&mut out, &check)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "127.0.0.1:80  interrupted  1500.000 ms\n"
        );
    }
}
