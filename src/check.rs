//! A run of checks (no subcommand), as its [`RunPlan`] says: starts the checkers (which refuse
//! an interface that does not exist), opens the target files, chooses the output, then repeats
//! the checks or waits for the targets to open, and turns what was seen into the exit status.

use std::ffi::OsString;

use crate::banner;
use crate::feed::Feed;
use crate::interrupt;
use crate::loops;
use crate::output::{Console, Human, Json, Output, Quiet, RunKind};
use crate::plan::{OutputFormat, RunPlan, Task};
use crate::report::{CheckLines, Recorder};
use crate::schedule::{Observer, RunEnd, Scheduler};
use crate::stream::TargetStream;
use crate::target_files::{Layout, TargetFile};
use crate::wait;

/// What the process does once a run is over.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// Exit with this status.
    Exit(u8),
    /// Every target became open: run this command in place of tcp-checker.
    Exec(Vec<OsString>),
}

/// Exit statuses, as documented in `--help` and the README.
pub mod status {
    /// Every check found its port open (with `--wait`: every target became open).
    pub const ALL_OPEN: u8 = 0;
    /// At least one check did not.
    pub const NOT_ALL_OPEN: u8 = 1;
    /// A usage or system error: invalid or no targets, an unreadable file, a checker that could
    /// not start or make a check.
    pub const ERROR: u8 = 2;
}

/// Checks the targets as `plan` says.
pub fn run(mut plan: RunPlan) -> anyhow::Result<Ending> {
    let interrupted = interrupt::on_signals()?;
    let batch = loops::start(&plan.checker, plan.loops)?;
    let mut files = plan
        .files
        .iter()
        .map(|path| TargetFile::open(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let output = output_for(&plan, &mut files)?;
    let mut recorder = Recorder::new(plan.recording, output, Console::new(plan.progress));
    for invalid in &plan.refused {
        recorder.report_invalid_target(invalid)?;
    }
    if plan.recording.verbose {
        recorder.note(&banner::configuration(&plan))?;
    }
    recorder.idle()?;
    let arguments = std::mem::take(&mut plan.arguments);
    let stream = TargetStream::new(Feed::start(arguments, files, plan.checks.family)?);
    let scheduler = Scheduler::new(batch, stream, plan.schedule(), interrupted);

    match plan.task {
        Task::Wait { then_run, .. } => {
            let (end, all_open) = wait::run(scheduler, &mut recorder)?;
            say_if_nothing_was_checked(&end, &recorder);
            Ok(wait_ending(&recorder, &end, all_open, then_run))
        }
        Task::Repeat { count, .. } => {
            let end = scheduler.run(&mut recorder)?;
            say_if_nothing_was_checked(&end, &recorder);
            let planned = match count {
                Some(count) => u64::try_from(end.targets)
                    .unwrap_or(u64::MAX)
                    .saturating_mul(count),
                None => end.started,
            };
            recorder.finish(RunKind::Repeat, &end, planned)?;
            Ok(Ending::Exit(repeat_status(&recorder, &end)))
        }
    }
}

/// 2 if some targets were invalid or unread, or there were none; else, if every target became
/// open, `then_run` in tcp-checker's place (or 0 without one); else 1.
fn wait_ending(
    recorder: &Recorder,
    end: &RunEnd,
    all_open: bool,
    then_run: Vec<OsString>,
) -> Ending {
    let failed = recorder.invalid_targets() > 0 || end.input_failed || no_targets(end);
    match (failed, all_open) {
        (true, _) => Ending::Exit(status::ERROR),
        (false, true) if !then_run.is_empty() => Ending::Exec(then_run),
        (false, true) => Ending::Exit(status::ALL_OPEN),
        (false, false) => Ending::Exit(status::NOT_ALL_OPEN),
    }
}

/// Whether the run ended with no target to check, not for an interrupt.
fn no_targets(end: &RunEnd) -> bool {
    end.targets == 0 && !end.interrupted
}

/// An empty target list is a mistake worth a word: the run would otherwise end in silence.
fn say_if_nothing_was_checked(end: &RunEnd, recorder: &Recorder) {
    if !no_targets(end) {
        return;
    }
    let why = if recorder.invalid_targets() > 0 {
        "every target given was invalid"
    } else if end.input_failed {
        "the targets could not be read"
    } else {
        "the arguments and files gave none (an empty file, or only blank lines and comments?)"
    };
    eprintln!("tcp-checker: no targets to check: {why}");
}

/// 2 if some targets were invalid or unread, there were none, or the checker failed to make a
/// check; else 0 if checks ran and every one found its port open; else 1.
fn repeat_status(recorder: &Recorder, end: &RunEnd) -> u8 {
    let totals = recorder.totals();
    if recorder.invalid_targets() > 0
        || end.input_failed
        || no_targets(end)
        || recorder.checker_failures() > 0
    {
        status::ERROR
    } else if totals.finished > 0 && totals.open == totals.finished {
        status::ALL_OPEN
    } else {
        status::NOT_ALL_OPEN
    }
}

/// The output format. Text lays its columns out for the targets known ahead: the arguments,
/// and regular files, read once ahead for it; a pipe's targets come only once, so with one the
/// address column starts at its first host name.
fn output_for(plan: &RunPlan, files: &mut [TargetFile]) -> anyhow::Result<Box<dyn Output>> {
    let (colour, always_summarise) = match plan.output {
        OutputFormat::Quiet => return Ok(Box::new(Quiet)),
        OutputFormat::Json => return Ok(Box::new(Json)),
        OutputFormat::Text {
            colour,
            always_summarise,
        } => (colour, always_summarise),
    };
    let mut layout = Layout::default();
    for spec in &plan.arguments {
        layout.add(spec);
    }
    let mut all_known = true;
    if plan.recording.lines != CheckLines::None {
        for file in files {
            match file.layout(plan.checks.family)? {
                Some(file_layout) => layout.merge(file_layout),
                None => all_known = false,
            }
        }
    }
    let show_addresses = match (layout.has_host_names, all_known) {
        (true, _) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
    };
    Ok(Box::new(Human::new(
        layout.widest,
        show_addresses,
        colour,
        always_summarise,
    )))
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::time::Duration;

    use tcp_shaker::{CheckOptions, Checker, Completion, ErrorKind, Target};

    use super::*;
    use crate::report::Settings;

    fn recorder() -> Recorder {
        let settings = Settings {
            per_target: false,
            per_address: false,
            lines: CheckLines::All,
            verbose: false,
            checks_per_target: Some(1),
        };
        Recorder::new(settings, Box::new(Quiet), Console::new(false))
    }

    #[test]
    fn a_check_the_checker_could_not_start_makes_the_status_2() {
        // A checker whose loop nobody runs never starts a check.
        let (checker, _event_loop) = Checker::builder().build().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = Target::try_from(listener.local_addr().unwrap()).unwrap();
        let options =
            CheckOptions::new(Duration::from_secs(1)).start_within(Duration::from_millis(50));
        let completion = Completion {
            tag: 1,
            result: checker.check(&target, options),
            other_addresses: Vec::new(),
        };
        let kind = completion.result.as_ref().map_err(|error| error.kind());
        assert_eq!(kind.err(), Some(ErrorKind::NotStarted));

        let mut not_started = recorder();
        not_started.added(0, &target).unwrap();
        not_started.completed(0, &target, &completion).unwrap();
        let end = RunEnd {
            targets: 1,
            started: 1,
            completed: 1,
            ..RunEnd::default()
        };
        assert_eq!(not_started.checker_failures(), 1);
        assert_eq!(repeat_status(&not_started, &end), status::ERROR);

        assert_eq!(repeat_status(&recorder(), &end), status::NOT_ALL_OPEN);
        assert_eq!(
            repeat_status(&recorder(), &RunEnd::default()),
            status::ERROR,
            "no targets"
        );
    }
}
