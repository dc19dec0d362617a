//! A run of checks (no subcommand): gathers the targets, starts the checker, chooses the
//! output, then repeats the checks or waits for the targets to open.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tcp_shaker::{Batch, Checker, Family, Host, Target};

use crate::args::CheckArgs;
use crate::limits::checks_in_flight_allowed;
use crate::loops;
use crate::output::{Console, Human, Json, Output, Quiet, RunKind};
use crate::report::{CheckLines, Recorder};
use crate::schedule::{Mode, Plan, Scheduler};
use crate::stats::Counts;
use crate::targets::{Source, TargetList};
use crate::wait;

/// A progress bar is shown for runs of at least this many checks.
const PROGRESS_FROM: u64 = 1000;

/// Set by Ctrl-C; the scheduler ends the run when it sees it.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

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
    /// A usage or system error, invalid targets included.
    pub const ERROR: u8 = 2;
}

/// Checks the targets as `args` say.
pub fn run(args: &CheckArgs) -> anyhow::Result<Ending> {
    let list = collect_targets(args)?;
    let names: Vec<String> = list.targets.iter().map(Target::to_string).collect();
    let batch = start_checks(args)?;
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::Relaxed))
        .context("could not handle Ctrl-C")?;

    let per_target = args.count().filter(|_| args.wait.is_none());
    let planned = per_target.map(|count| count.saturating_mul(names.len() as u64));
    let mut recorder = Recorder::new(
        &names,
        args.all_addresses,
        output_for(args, &list.targets, &names),
        Console::new(progress_bar(args, planned)),
        check_lines(args),
        args.verbose,
    );
    recorder.report_invalid_targets(&list.invalid)?;
    if list.targets.is_empty() {
        return Ok(Ending::Exit(status::ERROR));
    }
    let invalid = list.invalid.len();
    let plan = Plan {
        timeout: args.timeout,
        family: family(args),
        all_addresses: args.all_addresses,
        max_in_flight: checks_in_flight_allowed(args.max_in_flight),
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
        recorder.note(&configuration(args, &names, &plan))?;
    }
    let scheduler = Scheduler::new(batch, &list.targets, plan, &INTERRUPTED);
    if args.wait.is_some() {
        let all_open = wait::run(scheduler, &mut recorder)?;
        return Ok(match (invalid, all_open) {
            (0, true) if !args.command.is_empty() => Ending::Exec(args.command.clone()),
            (0, true) => Ending::Exit(status::ALL_OPEN),
            (0, false) => Ending::Exit(status::NOT_ALL_OPEN),
            _ => Ending::Exit(status::ERROR),
        });
    }
    let end = scheduler.run(&mut recorder)?;
    let totals = recorder.totals();
    let planned = planned.unwrap_or(end.started);
    recorder.finish(RunKind::Repeat, &end, planned)?;
    Ok(Ending::Exit(repeat_status(&totals, invalid)))
}

/// 2 if some targets were invalid, else 0 if checks ran and every one found its port open.
fn repeat_status(totals: &Counts, invalid: usize) -> u8 {
    if invalid > 0 {
        status::ERROR
    } else if totals.sent > 0 && totals.open == totals.sent {
        status::ALL_OPEN
    } else {
        status::NOT_ALL_OPEN
    }
}

fn collect_targets(args: &CheckArgs) -> anyhow::Result<TargetList> {
    let mut list = TargetList::new(family(args));
    for spec in args.targets.iter().chain(&args.address) {
        list.add_spec(spec, Source::Argument);
    }
    for path in &args.files {
        list.add_file(path)?;
    }
    Ok(list)
}

fn start_checks(args: &CheckArgs) -> anyhow::Result<Batch> {
    let mut builder = Checker::builder();
    let v4 = args.source.iter().filter(|ip| ip.is_ipv4()).count();
    if v4 > 1 || args.source.len() - v4 > 1 {
        bail!("give at most one --source address per address family (IPv4, IPv6)");
    }
    for source in &args.source {
        builder = builder.source_address(*source);
    }
    if let Some(interface) = &args.interface {
        check_interface(interface)?;
        builder = builder.interface(interface);
    }
    loops::start(&builder, args.loops)
}

/// Refuses an interface that does not exist, rather than failing every check on it.
#[cfg(unix)]
fn check_interface(name: &str) -> anyhow::Result<()> {
    let exists = std::ffi::CString::new(name)
        // SAFETY: if_nametoindex reads the NUL-terminated name and nothing else.
        .is_ok_and(|name| unsafe { libc::if_nametoindex(name.as_ptr()) } != 0);
    if !exists {
        bail!("no network interface is named {name:?} (ip link lists them)");
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_interface(_: &str) -> anyhow::Result<()> {
    Ok(())
}

fn family(args: &CheckArgs) -> Family {
    match (args.ipv4, args.ipv6) {
        (true, _) => Family::V4,
        (_, true) => Family::V6,
        _ => Family::Any,
    }
}

fn output_for(args: &CheckArgs, targets: &[Target], names: &[String]) -> Box<dyn Output> {
    if args.quiet {
        return Box::new(Quiet);
    }
    if args.json {
        return Box::new(Json);
    }
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let show_addresses = targets
        .iter()
        .any(|target| matches!(target.host(), Host::Name(_)));
    let target_width = names.iter().map(String::len).max().unwrap_or(0);
    Box::new(Human::new(
        target_width,
        show_addresses,
        colour,
        args.summary,
    ))
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

/// A bar on a terminal's stderr for runs of at least [`PROGRESS_FROM`] checks.
fn progress_bar(args: &CheckArgs, planned: Option<u64>) -> Option<ProgressBar> {
    let planned = planned.filter(|&planned| planned >= PROGRESS_FROM)?;
    if args.quiet || args.json || !std::io::stderr().is_terminal() {
        return None;
    }
    let style = ProgressStyle::with_template(
        "{bar:40.cyan/blue} {pos}/{len} checks, {elapsed} elapsed, {eta} left",
    )
    .ok()?;
    Some(ProgressBar::new(planned).with_style(style))
}

/// The original's `-v` header, with what this version adds.
fn configuration(args: &CheckArgs, names: &[String], plan: &Plan) -> String {
    let what = match names {
        [one] => one.clone(),
        [first, second] => format!("{first} and {second}"),
        [first, .., last] => format!("{} targets ({first} to {last})", names.len()),
        [] => String::new(),
    };
    if let Some(wait) = args.wait {
        return format!(
            "Waiting up to {wait:?} for {what} to be open, each check's timeout {:?}\n",
            plan.timeout
        );
    }
    let requests = args
        .count()
        .map_or_else(|| "until interrupted".to_owned(), |count| count.to_string());
    let mut text = format!(
        "Checking {what} with the following configurations:\n    Timeout: {:?}\n   \
         Requests: {requests}\nConcurrency: {}\n",
        plan.timeout, args.concurrency
    );
    if args.interval() > Duration::ZERO {
        text.push_str(&format!("   Interval: {:?}\n", args.interval()));
    }
    text
}
