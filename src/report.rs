//! The recorder: takes each check's results from the scheduler, counts them, and hands the
//! lines a run prints to its output format.
//!
//! It keeps the run's totals, and statistics per target only for a run that checks a target
//! more than once; a single pass keeps nothing per target.

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use tcp_shaker::{CheckError, Completion, Host, Phase, Report, Target};

use crate::output::{
    CheckEvent, Console, InterruptedEvent, Output, RunKind, Summary, TargetSummary, WaitEvent,
};
use crate::schedule::{Observer, RunEnd};
use crate::stats::{Counts, StatsTable};
use crate::targets::InvalidTarget;
use crate::verdict::{Verdict, is_checker_failure};

/// Which per-check lines are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckLines {
    All,
    /// `--open`: only the checks that found the port open.
    OpenOnly,
    /// `--summary`, or a wait in human form: none.
    None,
}

/// What a recorder keeps and prints, besides its output format.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Keep statistics per target (a target is checked more than once).
    pub per_target: bool,
    /// With `per_target`, per address of a target.
    pub per_address: bool,
    pub lines: CheckLines,
    pub verbose: bool,
    /// Checks planned per target, for the progress bar; `None` without a planned end.
    pub checks_per_target: Option<u64>,
}

/// Counts results and prints them.
pub struct Recorder {
    settings: Settings,
    stats: Option<StatsTable>,
    totals: Counts,
    interrupted: u64,
    checker_failures: u64,
    output: Box<dyn Output>,
    console: Console,
    hidden: u64,
    invalid_targets: usize,
}

impl Recorder {
    pub fn new(settings: Settings, output: Box<dyn Output>, console: Console) -> Recorder {
        Recorder {
            settings,
            stats: settings
                .per_target
                .then(|| StatsTable::new(settings.per_address)),
            totals: Counts::default(),
            interrupted: 0,
            checker_failures: 0,
            output,
            console,
            hidden: 0,
            invalid_targets: 0,
        }
    }

    /// Reports a spec that was refused (on stderr, and in the output's own form).
    pub fn report_invalid_target(&mut self, invalid: &InvalidTarget) -> io::Result<()> {
        self.invalid_targets += 1;
        writeln!(self.console.err(), "tcp-checker: {invalid}")?;
        self.output.invalid_target(self.console.out(), invalid)
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
        self.totals
    }

    pub fn invalid_targets(&self) -> usize {
        self.invalid_targets
    }

    /// Checks that failed for the checker's own sake (not started in time, checker stopped).
    pub fn checker_failures(&self) -> u64 {
        self.checker_failures
    }

    fn record(
        &mut self,
        number: usize,
        target: &Target,
        result: &Result<Report, CheckError>,
    ) -> io::Result<()> {
        let verdict = Verdict::of(result);
        self.totals.add(verdict);
        if is_checker_failure(result) {
            self.checker_failures += 1;
        }
        let address = result.as_ref().ok().and_then(Report::address);
        let seq = match &mut self.stats {
            Some(stats) => stats
                .add(number, address, verdict)
                .map_or(1, |stats| stats.counts.finished),
            None => 1,
        };
        let name = target.to_string();
        if self.settings.verbose && !verdict.is_open() {
            let err = self.console.err();
            match result {
                Ok(report) => {
                    write!(err, "{name}")?;
                    if let Some(address) = address.filter(|a| a.to_string() != name) {
                        write!(err, " ({address})")?;
                    }
                    let outcome = if report.phase() == Phase::Resolve {
                        "timed out (resolving)"
                    } else {
                        verdict.human_name()
                    };
                    writeln!(err, ": {outcome} after {:?}", report.elapsed())?;
                }
                Err(error) => writeln!(err, "{name}: error ({}): {error}", error.kind())?,
            }
        }
        let shown = match self.settings.lines {
            CheckLines::All => true,
            CheckLines::OpenOnly => verdict.is_open(),
            CheckLines::None => false,
        };
        if shown {
            let event = CheckEvent {
                target: &name,
                by_name: is_by_name(target),
                result,
                verdict,
                seq,
                time: SystemTime::now(),
            };
            self.output.check(self.console.out(), &event)?;
        } else if self.settings.lines == CheckLines::OpenOnly {
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
        let open_only = self.settings.lines == CheckLines::OpenOnly;
        let targets = self
            .stats
            .iter()
            .flat_map(StatsTable::entries)
            .filter(|(_, _, stats)| {
                stats.counts.finished > 1 && (stats.counts.open > 0 || !open_only)
            })
            .map(|(target, address, stats)| TargetSummary {
                target: target.to_string(),
                address,
                stats,
            })
            .collect();
        let summary = Summary {
            kind,
            totals: self.totals,
            planned: planned_checks.saturating_sub(end.completed) + self.totals.finished,
            invalid_targets: self.invalid_targets,
            elapsed: end.elapsed,
            interrupted: end.interrupted,
            interrupted_checks: self.interrupted,
            targets,
        };
        self.output.summary(self.console.out(), &summary)?;
        self.console.finish()
    }
}

fn is_by_name(target: &Target) -> bool {
    matches!(target.host(), Host::Name(_))
}

impl Observer for Recorder {
    fn added(&mut self, number: usize, target: &Target) -> io::Result<()> {
        if let Some(stats) = &mut self.stats {
            stats.add_target(number, target);
        }
        if let Some(per_target) = self.settings.checks_per_target {
            let targets = u64::try_from(number + 1).unwrap_or(u64::MAX);
            self.console.plan(targets.saturating_mul(per_target));
        }
        Ok(())
    }

    fn refused(&mut self, invalid: &InvalidTarget) -> io::Result<()> {
        self.report_invalid_target(invalid)
    }

    fn input_failed(&mut self, message: &str) -> io::Result<()> {
        writeln!(self.console.err(), "tcp-checker: {message}")
    }

    fn completed(&mut self, number: usize, target: &Target, done: &Completion) -> io::Result<()> {
        self.console.advance();
        for result in done.results() {
            self.record(number, target, result)?;
        }
        self.console.flush_if_full()
    }

    fn interrupted(&mut self, number: usize, target: &Target, ran_for: Duration) -> io::Result<()> {
        self.interrupted += 1;
        let seq = self
            .stats
            .as_mut()
            .map_or(1, |stats| stats.add_interrupted(number));
        let name = target.to_string();
        if self.settings.verbose {
            writeln!(self.console.err(), "{name}: interrupted after {ran_for:?}")?;
        }
        if self.settings.lines == CheckLines::None {
            return Ok(());
        }
        let event = InterruptedEvent {
            target: &name,
            address: target.socket_addr(),
            by_name: is_by_name(target),
            ran_for,
            seq,
            time: SystemTime::now(),
        };
        self.output.interrupted(self.console.out(), &event)
    }

    fn idle(&mut self) -> io::Result<()> {
        self.console.flush()
    }
}
