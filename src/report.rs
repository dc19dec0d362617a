//! The recorder: takes each check's results from the scheduler, counts them, and hands the
//! lines a run prints to its output format.

use std::io::{self, Write};
use std::time::SystemTime;

use tcp_shaker::{CheckError, Completion, Report};

use crate::output::{CheckEvent, Console, Output, RunKind, Summary, TargetSummary, WaitEvent};
use crate::schedule::{Observer, RunEnd};
use crate::stats::{Counts, StatsTable};
use crate::targets::InvalidTarget;
use crate::verdict::{Verdict, error_kind_name};

/// Which per-check lines are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckLines {
    All,
    /// `--open`: only the checks that found the port open.
    OpenOnly,
    /// `--summary`, or a wait in human form: none.
    None,
}

/// Counts results and prints them.
pub struct Recorder<'a> {
    /// The targets as printed, indexed like the scheduler's.
    names: &'a [String],
    stats: StatsTable,
    output: Box<dyn Output>,
    console: Console,
    lines: CheckLines,
    hidden: u64,
    verbose: bool,
    invalid_targets: usize,
}

impl<'a> Recorder<'a> {
    /// A recorder for the targets named `names`; with `per_address`, each address of a target
    /// has statistics of its own.
    pub fn new(
        names: &'a [String],
        per_address: bool,
        output: Box<dyn Output>,
        console: Console,
        lines: CheckLines,
        verbose: bool,
    ) -> Recorder<'a> {
        Recorder {
            names,
            stats: StatsTable::new(names.len(), per_address),
            output,
            console,
            lines,
            hidden: 0,
            verbose,
            invalid_targets: 0,
        }
    }

    /// The name of target `index`, as printed.
    pub fn name(&self, index: usize) -> &'a str {
        &self.names[index]
    }

    /// Reports targets that were refused (on stderr, and in the output's own form).
    pub fn report_invalid_targets(&mut self, invalid: &[InvalidTarget]) -> io::Result<()> {
        self.invalid_targets += invalid.len();
        for invalid in invalid {
            writeln!(self.console.err(), "tcp-checker: {invalid}")?;
            self.output.invalid_target(self.console.out(), invalid)?;
        }
        self.console.flush()
    }

    /// Writes a line to stderr, in turn with the rest of the output.
    pub fn note(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.console.err(), "{text}")
    }

    /// Prints a `--wait` event.
    pub fn wait_event(&mut self, event: &WaitEvent) -> io::Result<()> {
        self.output.wait_event(self.console.out(), event)
    }

    pub fn totals(&self) -> Counts {
        self.stats.totals
    }

    fn record(&mut self, target: usize, result: &Result<Report, CheckError>) -> io::Result<()> {
        let verdict = Verdict::of(result);
        let address = result.as_ref().ok().and_then(Report::address);
        let seq = self.stats.add(target, address, verdict).counts.sent;
        let name = self.names[target].as_str();
        if self.verbose && !verdict.is_open() {
            let err = self.console.err();
            match result {
                Ok(report) => {
                    write!(err, "{name}")?;
                    if let Some(address) = address.filter(|a| a.to_string() != name) {
                        write!(err, " ({address})")?;
                    }
                    writeln!(
                        err,
                        ": {} after {:?}",
                        verdict.human_name(),
                        report.elapsed()
                    )?;
                }
                Err(error) => writeln!(err, "{name}: error ({}): {error}", error_kind_name(error))?,
            }
        }
        let shown = match self.lines {
            CheckLines::All => true,
            CheckLines::OpenOnly => verdict.is_open(),
            CheckLines::None => false,
        };
        if shown {
            let event = CheckEvent {
                target: name,
                result,
                verdict,
                seq,
                time: SystemTime::now(),
            };
            self.output.check(self.console.out(), &event)?;
        } else if self.lines == CheckLines::OpenOnly {
            self.hidden += 1;
        }
        Ok(())
    }

    /// Prints the end of the run. `planned_checks` counts one check per target and repetition,
    /// as the scheduler starts them.
    pub fn finish(&mut self, kind: RunKind, end: &RunEnd, planned_checks: u64) -> io::Result<()> {
        if self.hidden > 0 {
            self.output.hidden_checks(self.console.out(), self.hidden)?;
        }
        let totals = self.stats.totals;
        let names = self.names;
        let open_only = self.lines == CheckLines::OpenOnly;
        let targets = self
            .stats
            .entries()
            .filter(|(_, _, stats)| stats.counts.sent > 1 && (stats.counts.open > 0 || !open_only))
            .map(|(target, address, stats)| TargetSummary {
                target: &names[target],
                address,
                stats,
            })
            .collect();
        let summary = Summary {
            kind,
            totals,
            planned: planned_checks.saturating_sub(end.completed) + totals.sent,
            invalid_targets: self.invalid_targets,
            elapsed: end.elapsed,
            interrupted: end.interrupted,
            targets,
        };
        self.output.summary(self.console.out(), &summary)?;
        self.console.finish()
    }
}

impl Observer for Recorder<'_> {
    fn completed(&mut self, target: usize, completion: &Completion) -> io::Result<()> {
        self.console.advance();
        for result in completion.results() {
            self.record(target, result)?;
        }
        self.console.flush_if_full()
    }

    fn idle(&mut self) -> io::Result<()> {
        self.console.flush()
    }
}
