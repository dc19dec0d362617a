//! `--wait`: retry every target until it is open or the time is up, then, with a command, run
//! it in place of tcp-checker (as wait-for-it.sh does, without a trace in the server's log).

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use tcp_shaker::{Completion, Target};

use crate::output::{RunKind, WaitEvent};
use crate::report::Recorder;
use crate::schedule::{Observer, RunEnd, Scheduler};
use crate::targets::InvalidTarget;
use crate::verdict::Verdict;

/// What is known of one target while waiting for it.
#[derive(Clone, Debug)]
struct TargetWait {
    name: String,
    checks: u64,
    open: bool,
    /// The last check's verdict, with its error message for an error.
    last: Option<(Verdict, Option<String>)>,
}

/// Follows each target's checks and reports the moment it becomes open.
struct Waiter<'r> {
    recorder: &'r mut Recorder,
    started: Instant,
    /// By target number.
    targets: Vec<TargetWait>,
}

impl Observer for Waiter<'_> {
    fn added(&mut self, number: usize, target: &Target) -> io::Result<()> {
        if number == self.targets.len() {
            self.targets.push(TargetWait {
                name: target.to_string(),
                checks: 0,
                open: false,
                last: None,
            });
        }
        self.recorder.added(number, target)
    }

    fn refused(&mut self, invalid: &InvalidTarget) -> io::Result<()> {
        self.recorder.refused(invalid)
    }

    fn input_failed(&mut self, message: &str) -> io::Result<()> {
        self.recorder.input_failed(message)
    }

    fn completed(&mut self, number: usize, target: &Target, done: &Completion) -> io::Result<()> {
        self.recorder.completed(number, target, done)?;
        let Some(state) = self.targets.get_mut(number) else {
            return Ok(());
        };
        state.checks += 1;
        let open = done
            .results()
            .filter_map(|result| result.as_ref().ok())
            .find(|report| report.is_open());
        if let Some(report) = open {
            state.open = true;
            let event = WaitEvent::Open {
                target: &state.name,
                address: report.address(),
                after: self.started.elapsed(),
                checks: state.checks,
            };
            return self.recorder.wait_event(&event);
        }
        let message = done.result.as_ref().err().map(ToString::to_string);
        state.last = Some((Verdict::of(&done.result), message));
        Ok(())
    }

    fn interrupted(&mut self, number: usize, target: &Target, ran_for: Duration) -> io::Result<()> {
        self.recorder.interrupted(number, target, ran_for)
    }

    fn idle(&mut self) -> io::Result<()> {
        self.recorder.idle()
    }
}

/// Runs `scheduler` (planned with [`Mode::UntilOpen`](crate::schedule::Mode::UntilOpen)),
/// reports the targets that did not become open, and returns how the run ended and whether
/// every target did (none at all: `false`).
pub fn run(scheduler: Scheduler, recorder: &mut Recorder) -> io::Result<(RunEnd, bool)> {
    let mut waiter = Waiter {
        recorder,
        started: Instant::now(),
        targets: Vec::new(),
    };
    let end = scheduler.run(&mut waiter)?;
    let after = waiter.started.elapsed();
    let all_open = !waiter.targets.is_empty() && waiter.targets.iter().all(|target| target.open);
    for target in &waiter.targets {
        if !target.open {
            let event = WaitEvent::NotOpen {
                target: &target.name,
                after,
                checks: target.checks,
                last: target
                    .last
                    .as_ref()
                    .map(|(verdict, error)| (*verdict, error.as_deref())),
            };
            waiter.recorder.wait_event(&event)?;
        }
    }
    waiter.recorder.finish(RunKind::Wait, &end, end.started)?;
    Ok((end, all_open))
}

/// Runs `command` in place of tcp-checker: it replaces this process (`exec`), and this returns
/// only if it could not be started, with the status a shell gives then (127: not found, 126:
/// not runnable).
pub fn run_command(command: &[OsString]) -> u8 {
    let Some((program, arguments)) = command.split_first() else {
        return 127;
    };
    let mut process = std::process::Command::new(program);
    process.args(arguments);
    let error = process.exec();
    eprintln!(
        "tcp-checker: could not run {}: {error}",
        program.to_string_lossy()
    );
    if error.kind() == io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}
