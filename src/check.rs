//! A run of checks (no subcommand): checks the binding flags and opens the target files, starts
//! the checker, chooses the output, then repeats the checks or waits for the targets to open,
//! and turns what was seen into the exit status.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::time::Instant;

use tcp_shaker::Family;

use crate::args::CheckArgs;
use crate::banner;
use crate::binding;
use crate::feed::Feed;
use crate::interrupt;
use crate::limits::checks_in_flight_allowed;
use crate::loops;
use crate::output::{Console, Human, Json, Output, Quiet, RunKind};
use crate::report::{CheckLines, Recorder, Settings};
use crate::schedule::{Mode, Observer, Plan, RunEnd, Scheduler};
use crate::stream::TargetStream;
use crate::target_files::{Layout, TargetFile};
use crate::targets::{InvalidTarget, Source, Spec, parse_spec};
use crate::wait;

/// Checks submitted and not yet known to have started, per event loop: about one turn of the
/// loop (it starts up to 256 connects between two polls), so that none waits longer.
const START_WINDOW_PER_LOOP: usize = 256;

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

/// Checks the targets as `args` say.
pub fn run(args: &CheckArgs) -> anyhow::Result<Ending> {
    let interrupted = interrupt::on_signals()?;
    let family = family(args);
    let builder = binding::checker_builder(args)?;
    let (arguments, refused) = parse_arguments(args, family);
    let mut files = args
        .files
        .iter()
        .map(|path| TargetFile::open(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let lines = check_lines(args);
    let output = output_for(args, lines, &arguments, &mut files, family)?;
    let batch = loops::start(&builder, args.loops)?;

    let settings = Settings {
        per_target: args.wait.is_some() || args.count() != Some(1),
        per_address: args.all_addresses,
        lines,
        verbose: args.verbose,
        checks_per_target: args.count().filter(|_| args.wait.is_none()),
    };
    let mut recorder = Recorder::new(settings, output, Console::new(progress_allowed(args)));
    for invalid in &refused {
        recorder.report_invalid_target(invalid)?;
    }
    let plan = Plan {
        timeout: args.timeout,
        family,
        all_addresses: args.all_addresses,
        max_in_flight: checks_in_flight_allowed(args.max_in_flight),
        start_window: START_WINDOW_PER_LOOP.saturating_mul(usize::from(args.loops)),
        mode: match args.wait {
            Some(wait) => Mode::UntilOpen {
                deadline: Instant::now() + wait,
            },
            None => Mode::Repeat {
                count: args.count(),
                concurrency: args.concurrency,
                interval: args.interval(),
            },
        },
    };
    if args.verbose {
        recorder.note(&banner::configuration(args, &arguments, plan.timeout))?;
    }
    recorder.idle()?;
    let stream = TargetStream::new(Feed::start(arguments, files, family)?);
    let scheduler = Scheduler::new(batch, stream, plan, interrupted);

    if args.wait.is_some() {
        let (end, all_open) = wait::run(scheduler, &mut recorder)?;
        say_if_nothing_was_checked(&end, &recorder);
        let failed = recorder.invalid_targets() > 0 || end.input_failed || no_targets(&end);
        return Ok(match (failed, all_open) {
            (true, _) => Ending::Exit(status::ERROR),
            (false, true) if !args.command.is_empty() => Ending::Exec(args.command.clone()),
            (false, true) => Ending::Exit(status::ALL_OPEN),
            (false, false) => Ending::Exit(status::NOT_ALL_OPEN),
        });
    }
    let end = scheduler.run(&mut recorder)?;
    say_if_nothing_was_checked(&end, &recorder);
    let planned = match args.count() {
        Some(count) => u64::try_from(end.targets)
            .unwrap_or(u64::MAX)
            .saturating_mul(count),
        None => end.started,
    };
    recorder.finish(RunKind::Repeat, &end, planned)?;
    Ok(Ending::Exit(repeat_status(&recorder, &end)))
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
    } else if totals.sent > 0 && totals.open == totals.sent {
        status::ALL_OPEN
    } else {
        status::NOT_ALL_OPEN
    }
}

/// The specs given as arguments, and those refused.
fn parse_arguments(args: &CheckArgs, family: Family) -> (Vec<Spec>, Vec<InvalidTarget>) {
    let mut specs = Vec::new();
    let mut refused = Vec::new();
    for spec in args.targets.iter().chain(&args.address) {
        match parse_spec(spec, family) {
            Ok(parsed) => specs.push(parsed),
            Err(reason) => refused.push(InvalidTarget::new(Source::Argument, spec, reason)),
        }
    }
    (specs, refused)
}

fn family(args: &CheckArgs) -> Family {
    match (args.ipv4, args.ipv6) {
        (true, _) => Family::V4,
        (_, true) => Family::V6,
        _ => Family::Any,
    }
}

/// The output format. Text lays its columns out for the targets known ahead: the arguments,
/// and regular files, read once ahead for it; a pipe's targets come only once, so with one the
/// address column starts at its first host name.
fn output_for(
    args: &CheckArgs,
    lines: CheckLines,
    arguments: &[Spec],
    files: &mut [TargetFile],
    family: Family,
) -> anyhow::Result<Box<dyn Output>> {
    if args.quiet {
        return Ok(Box::new(Quiet));
    }
    if args.json {
        return Ok(Box::new(Json));
    }
    let mut layout = Layout::default();
    for spec in arguments {
        layout.add(spec);
    }
    let mut all_known = true;
    if lines != CheckLines::None {
        for file in files {
            match file.layout(family)? {
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
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    Ok(Box::new(Human::new(
        layout.widest,
        show_addresses,
        colour,
        args.summary,
    )))
}

fn check_lines(args: &CheckArgs) -> CheckLines {
    if args.open {
        CheckLines::OpenOnly
    } else if args.summary || (args.wait.is_some() && !args.json) {
        CheckLines::None
    } else {
        CheckLines::All
    }
}

/// A progress bar goes to a terminal's stderr, for a run with a planned end and text output.
fn progress_allowed(args: &CheckArgs) -> bool {
    !args.quiet
        && !args.json
        && args.wait.is_none()
        && args.count().is_some()
        && std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::time::Duration;

    use tcp_shaker::{CheckOptions, Checker, Completion, ErrorKind, Target};

    use super::*;

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
