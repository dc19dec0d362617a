//! Scenarios that must run in a process of their own (a lowered open-files limit, a `fork()`, a
//! mount namespace made by `ip netns exec`), and bounds on work that could hang.
//!
//! A scenario is a test of the same binary that does nothing unless an environment variable
//! selects it. The parent test runs its own binary again with only that test selected and the
//! variable set ([`scenario`]), waits for it with a bound ([`run`]), and asserts that it ran
//! and passed ([`Finished::assert_passed`]).
//!
//! A test module uses it as `use crate::common::child;`.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Set, to the name of the test it runs, in a child that runs one test [`alone`].
const ALONE: &str = "TCP_SHAKER_TEST_ALONE";

/// Runs the calling test alone, in a child process of this binary: for a test that counts what
/// the whole process does (its descriptors, its heap allocations), which the other tests running
/// beside it in this binary would disturb. Returns true in that child (run the test's body
/// there), false in the parent once the child has passed; fails the test if it did not.
pub fn alone() -> bool {
    let test = super::test_name();
    if std::env::var(ALONE).is_ok_and(|name| name == test) {
        return true;
    }
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(scenario_args(&test)).env(ALONE, &test);
    // Generous: the slowest of these tests takes seconds.
    let finished = run(command, Duration::from_secs(300));
    assert!(
        finished.status.success() && finished.stdout.contains("1 passed"),
        "{test}, run alone in a child process, failed ({});\nstdout:\n{}\nstderr:\n{}",
        finished.status,
        finished.stdout,
        finished.stderr
    );
    false
}

/// Whether this process is the child that `variable` selects.
pub fn is_child(variable: &str) -> bool {
    std::env::var_os(variable).is_some()
}

/// The arguments that run only the test `test` of this binary, its output not captured.
pub fn scenario_args(test: &str) -> [&str; 4] {
    ["--exact", test, "--nocapture", "--test-threads=1"]
}

/// A command that runs this binary's test `test` alone, with `variable` set to select it.
pub fn scenario(test: &str, variable: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(scenario_args(test)).env(variable, "1");
    command
}

/// The same, through a launcher: `launcher` (say `ip netns exec NAME`), then this binary and
/// its arguments.
pub fn scenario_through(launcher: &[&str], test: &str, variable: &str) -> Command {
    let (program, args) = launcher.split_first().expect("a launcher program");
    let mut command = Command::new(program);
    command
        .args(args)
        .arg(std::env::current_exe().unwrap())
        .args(scenario_args(test))
        .env(variable, "1");
    command
}

/// How a child process ended, and what it wrote.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Fails unless the child exited successfully after printing `marker` and a passed test.
    pub fn assert_passed(&self, marker: &str) {
        assert!(
            self.status.success(),
            "the child scenario failed ({});\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        assert!(
            self.stdout.contains(marker) && self.stdout.contains("1 passed"),
            "the child scenario did not run;\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }

    /// The lines of standard output that start with `prefix`, without it.
    pub fn lines_after<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.stdout
            .lines()
            .filter_map(move |line| line.strip_prefix(prefix))
    }
}

/// Runs the scenario `command` as [`run`] does, within a minute (generous: a scenario takes
/// seconds), and fails unless it passed, printing `marker`.
pub fn run_passed(command: Command, marker: &str) -> Finished {
    let finished = run(command, Duration::from_secs(60));
    finished.assert_passed(marker);
    finished
}

/// Runs `command` with its output piped, and waits for it for `within` at most; kills it and
/// fails the test (with its output so far) if it takes longer.
pub fn run(mut command: Command, within: Duration) -> Finished {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    let started = Instant::now();
    let stdout = read_all(&mut child, true);
    let stderr = read_all(&mut child, false);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() >= within {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the child scenario still ran after {within:?}: it hangs;\nstdout:\n{}\nstderr:\n{}",
                stdout.join().unwrap(),
                stderr.join().unwrap()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    Finished {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn read_all(child: &mut Child, stdout: bool) -> thread::JoinHandle<String> {
    let mut pipe: Box<dyn Read + Send> = if stdout {
        Box::new(child.stdout.take().unwrap())
    } else {
        Box::new(child.stderr.take().unwrap())
    };
    thread::spawn(move || {
        let mut text = Vec::new();
        let _ = pipe.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// Runs `work` on a thread of its own and returns its result and how long it took, failing the
/// test (instead of hanging it) if it takes longer than `within`. A thread that hangs is left
/// behind, blocked; the test that fails should release it (by stopping its checker) as it
/// unwinds.
pub fn within<T: Send + 'static>(
    what: &str,
    within: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> (T, Duration) {
    let (done, result) = mpsc::channel();
    let started = Instant::now();
    thread::spawn(move || {
        let value = work();
        let _ = done.send((value, started.elapsed()));
    });
    match result.recv_timeout(within) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not finish within {within:?}: it hangs")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}
