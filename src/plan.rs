//! The run's plan: the flags [`crate::args`] parsed, turned into what a run of checks does, as
//! ripgrep turns its low-level arguments into high-level ones.
//!
//! This module owns every decision the flags imply: the targets given as arguments (parsed, so
//! that their errors come first), the address family, the checker's binding (`--source` is
//! checked here, before anything is read), the task (repeat or wait, and the command to run
//! after a wait), the output format and colour, which lines are printed, what the recorder
//! keeps, the progress bar, and the checks in flight. The rest of the program reads the plan,
//! never the flags.

use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anstream::{AutoStream, ColorChoice};
use tcp_shaker::{CheckerBuilder, Family};

use crate::args::CheckArgs;
use crate::binding;
use crate::limits::checks_in_flight_allowed;
use crate::loops;
use crate::report::{CheckLines, Settings};
use crate::schedule::{self, CheckPlan, Mode};
use crate::targets::{InvalidTarget, Source, Spec, parse_spec};

/// Checks submitted and not yet started, per event loop: about one turn of the loop (it starts
/// up to 256 connects between two polls), so that none waits longer.
const START_WINDOW_PER_LOOP: usize = 256;

/// Everything a run of checks does, decided from its flags.
pub struct RunPlan {
    /// The specs given as arguments (positionals, then `-a`), parsed.
    pub arguments: Vec<Spec>,
    /// The arguments refused, reported before anything is checked.
    pub refused: Vec<InvalidTarget>,
    /// Files of targets (`-f`; `-` is standard input), in order.
    pub files: Vec<PathBuf>,
    /// A builder of the checkers, with the source addresses and interface.
    pub checker: CheckerBuilder,
    /// How many checkers (event loops) share the checks.
    pub loops: u16,
    pub task: Task,
    pub checks: CheckPlan,
    pub output: OutputFormat,
    /// What the recorder keeps and prints.
    pub recording: Settings,
    /// Whether a progress bar may be shown on stderr.
    pub progress: bool,
}

/// What the run does with its targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Task {
    /// `count` checks per target (`None`: until interrupted), at most `concurrency` of one
    /// target in flight, their starts `interval` apart.
    Repeat {
        count: Option<u64>,
        concurrency: u32,
        interval: Duration,
    },
    /// `--wait`: check each target until it is open or `within` has passed; then, if every one
    /// is, run `then_run` (if given) in place of tcp-checker.
    Wait {
        within: Duration,
        then_run: Vec<OsString>,
    },
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// `--quiet`: nothing.
    Quiet,
    /// `--json`: NDJSON.
    Json,
    /// Text, coloured or not; with `always_summarise` (`--summary`) the statistics come even
    /// after a single check.
    Text {
        colour: bool,
        always_summarise: bool,
    },
}

impl RunPlan {
    /// The plan of `args`. Fails on a `--source` address that cannot be used, or more than one
    /// per family; an invalid target argument is not a failure, it is in [`RunPlan::refused`].
    pub fn new(args: &CheckArgs) -> anyhow::Result<RunPlan> {
        let checker =
            binding::checker_builder(&args.targets.source, args.targets.interface.as_deref())?;
        Ok(RunPlan::with_checker(args, checker, Terminals::detect()))
    }

    /// The plan of `args` for `checker`, with `terminals` deciding colour and progress.
    fn with_checker(args: &CheckArgs, checker: CheckerBuilder, terminals: Terminals) -> RunPlan {
        let family = family(args);
        let (arguments, refused) = parse_arguments(args, family);
        let task = task(args);
        let lines = check_lines(args);
        let repeats = match &task {
            Task::Repeat { count, .. } => *count != Some(1),
            Task::Wait { .. } => true,
        };
        let checks_per_target = match &task {
            Task::Repeat { count, .. } => *count,
            Task::Wait { .. } => None,
        };
        let output = if args.quiet {
            OutputFormat::Quiet
        } else if args.json {
            OutputFormat::Json
        } else {
            OutputFormat::Text {
                colour: terminals.stdout_colour,
                always_summarise: args.summary,
            }
        };
        let max_in_flight = checks_in_flight_allowed(args.max_in_flight, &checker);
        let progress = matches!(output, OutputFormat::Text { .. })
            && checks_per_target.is_some()
            && terminals.stderr_is_terminal;
        RunPlan {
            arguments,
            refused,
            files: args.targets.files.clone(),
            checker,
            loops: args.loops.unwrap_or_else(loops::per_core),
            task,
            checks: CheckPlan {
                timeout: args.timeout,
                family,
                all_addresses: args.all_addresses,
                max_in_flight,
            },
            output,
            recording: Settings {
                per_target: repeats,
                per_address: args.all_addresses,
                lines,
                verbose: args.verbose,
                checks_per_target,
            },
            progress,
        }
    }

    /// The scheduler's plan, for a run starting now (a wait's deadline counts from now).
    pub fn schedule(&self) -> schedule::Plan {
        let mode = match &self.task {
            Task::Repeat {
                count,
                concurrency,
                interval,
            } => Mode::Repeat {
                count: *count,
                concurrency: *concurrency,
                interval: *interval,
            },
            Task::Wait { within, .. } => Mode::UntilOpen {
                deadline: Instant::now() + *within,
            },
        };
        schedule::Plan {
            checks: self.checks,
            start_window: START_WINDOW_PER_LOOP.saturating_mul(usize::from(self.loops)),
            mode,
        }
    }
}

/// What colour and progress depend on: whether the standard streams are terminals, and the
/// colour environment (`NO_COLOR`, `CLICOLOR`, `CLICOLOR_FORCE`, `TERM`), as anstream reads it.
#[derive(Clone, Copy, Debug)]
struct Terminals {
    stdout_colour: bool,
    stderr_is_terminal: bool,
}

impl Terminals {
    fn detect() -> Terminals {
        Terminals {
            stdout_colour: AutoStream::choice(&io::stdout()) != ColorChoice::Never,
            stderr_is_terminal: io::stderr().is_terminal(),
        }
    }
}

fn family(args: &CheckArgs) -> Family {
    match (args.targets.ipv4, args.targets.ipv6) {
        (true, _) => Family::V4,
        (_, true) => Family::V6,
        _ => Family::Any,
    }
}

/// The specs given as arguments, and those refused.
fn parse_arguments(args: &CheckArgs, family: Family) -> (Vec<Spec>, Vec<InvalidTarget>) {
    let mut specs = Vec::new();
    let mut refused = Vec::new();
    for spec in args.targets.specs.iter().chain(&args.targets.address) {
        match parse_spec(spec, family) {
            Ok(parsed) => specs.push(parsed),
            Err(reason) => refused.push(InvalidTarget::new(Source::Argument, spec, reason)),
        }
    }
    (specs, refused)
}

/// Repeat or wait. A repeat's interval is as given, else back to back for a count (the
/// original's behaviour) and a second until interrupted (ping's).
fn task(args: &CheckArgs) -> Task {
    if let Some(within) = args.wait {
        return Task::Wait {
            within,
            then_run: args.command.clone(),
        };
    }
    let count = (args.count > 0).then_some(args.count);
    let interval = args.interval.unwrap_or(if count.is_none() {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    });
    Task::Repeat {
        count,
        concurrency: args.concurrency,
        interval,
    }
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

#[cfg(test)]
mod tests {
    use clap::Parser;
    use tcp_shaker::Checker;

    use super::*;
    use crate::args::Cli;

    const TERMINALS: Terminals = Terminals {
        stdout_colour: true,
        stderr_is_terminal: true,
    };
    const PIPES: Terminals = Terminals {
        stdout_colour: false,
        stderr_is_terminal: false,
    };

    fn plan_on(terminals: Terminals, flags: &[&str]) -> RunPlan {
        let argv = ["tcp-checker"].iter().chain(flags);
        let cli = Cli::try_parse_from(argv).unwrap_or_else(|error| panic!("{flags:?}: {error}"));
        RunPlan::with_checker(&cli.check, Checker::builder(), terminals)
    }

    fn plan(flags: &[&str]) -> RunPlan {
        plan_on(PIPES, flags)
    }

    fn repeat(count: Option<u64>, concurrency: u32, interval: Duration) -> Task {
        Task::Repeat {
            count,
            concurrency,
            interval,
        }
    }

    #[test]
    fn a_count_checks_back_to_back_and_none_checks_every_second() {
        assert_eq!(plan(&["x:1"]).task, repeat(Some(1), 1, Duration::ZERO));
        assert_eq!(
            plan(&["-n", "5", "-c", "3", "x:1"]).task,
            repeat(Some(5), 3, Duration::ZERO)
        );
        assert_eq!(
            plan(&["-n", "0", "x:1"]).task,
            repeat(None, 1, Duration::from_secs(1))
        );
        assert_eq!(
            plan(&["-n", "0", "-i", "0.2", "x:1"]).task,
            repeat(None, 1, Duration::from_millis(200))
        );
        assert_eq!(
            plan(&["-i", "300ms", "x:1"]).task,
            repeat(Some(1), 1, Duration::from_millis(300))
        );
    }

    #[test]
    fn a_wait_keeps_its_command_and_prints_no_check_lines_in_text() {
        let waiting = plan(&["--wait", "30s", "db:5432", "--", "./start.sh", "-x"]);
        assert_eq!(
            waiting.task,
            Task::Wait {
                within: Duration::from_secs(30),
                then_run: vec!["./start.sh".into(), "-x".into()],
            }
        );
        assert_eq!(waiting.recording.lines, CheckLines::None);
        assert!(waiting.recording.per_target);
        assert_eq!(waiting.recording.checks_per_target, None);
        assert!(!plan_on(TERMINALS, &["--wait", "1", "x:1"]).progress);
        let json = plan(&["--json", "--wait", "1", "x:1"]);
        assert_eq!(json.recording.lines, CheckLines::All);
        assert!(matches!(json.schedule().mode, Mode::UntilOpen { .. }));
    }

    #[test]
    fn output_colour_and_progress_follow_the_flags_and_the_terminals() {
        assert_eq!(
            plan_on(TERMINALS, &["x:1"]).output,
            OutputFormat::Text {
                colour: true,
                always_summarise: false
            }
        );
        assert_eq!(
            plan(&["-s", "x:1"]).output,
            OutputFormat::Text {
                colour: false,
                always_summarise: true
            }
        );
        assert_eq!(
            plan_on(TERMINALS, &["--json", "x:1"]).output,
            OutputFormat::Json
        );
        assert_eq!(
            plan_on(TERMINALS, &["-q", "x:1"]).output,
            OutputFormat::Quiet
        );
        assert!(plan_on(TERMINALS, &["x:1"]).progress);
        assert!(!plan(&["x:1"]).progress, "stderr is not a terminal");
        assert!(!plan_on(TERMINALS, &["--json", "x:1"]).progress);
        assert!(
            !plan_on(TERMINALS, &["-n", "0", "x:1"]).progress,
            "no planned end"
        );
        assert_eq!(
            plan(&["--open", "x:1"]).recording.lines,
            CheckLines::OpenOnly
        );
        assert_eq!(plan(&["-s", "x:1"]).recording.lines, CheckLines::None);
    }

    #[test]
    fn statistics_are_kept_per_target_only_when_a_target_is_checked_again() {
        let once = plan(&["x:1"]).recording;
        assert!(!once.per_target && !once.per_address);
        assert_eq!(once.checks_per_target, Some(1));
        let twice = plan(&["-n", "2", "--all-addresses", "x:1"]).recording;
        assert!(twice.per_target && twice.per_address);
        assert_eq!(twice.checks_per_target, Some(2));
    }

    #[test]
    fn arguments_are_parsed_in_order_and_refusals_kept() {
        let plan = plan(&["a:1", "-a", "b:2", "db", "-6", "-f", "x.txt"]);
        let firsts: Vec<String> = plan
            .arguments
            .iter()
            .map(|spec| spec.first().to_string())
            .collect();
        assert_eq!(firsts, ["a:1", "b:2"]);
        assert_eq!(plan.refused.len(), 1);
        assert_eq!(plan.refused[0].input, "db");
        assert_eq!(plan.checks.family, Family::V6);
        assert_eq!(plan.files, [PathBuf::from("x.txt")]);
    }

    #[test]
    fn source_addresses_are_checked_when_planning() {
        let planned = |flags: &[&str]| {
            let argv = ["tcp-checker"].iter().chain(flags);
            RunPlan::new(&Cli::try_parse_from(argv).unwrap().check).map(|_| ())
        };
        assert!(planned(&["--source", "127.0.0.1", "x:1"]).is_ok());
        let foreign = planned(&["--source", "192.0.2.1", "x:1"]).unwrap_err();
        assert!(
            foreign
                .to_string()
                .contains("not an address of this machine"),
            "{foreign}"
        );
        let two = planned(&["--source", "127.0.0.1", "--source", "127.0.0.2", "x:1"]);
        assert!(
            two.unwrap_err()
                .to_string()
                .contains("at most one --source")
        );
    }

    #[test]
    fn the_schedule_has_a_start_window_per_loop_and_in_flight_within_the_limit() {
        let schedule = plan(&["--loops", "3", "--max-in-flight", "10", "x:1"]).schedule();
        assert_eq!(schedule.start_window, 3 * START_WINDOW_PER_LOOP);
        assert!(schedule.checks.max_in_flight <= 10 && schedule.checks.max_in_flight >= 1);
        assert_eq!(plan(&["x:1"]).loops, loops::per_core());
    }
}
