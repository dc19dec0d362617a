//! No hang, no lost result: however the loop ends or fails to run, every check returns.
//!
//! A checker stopped under a batch answers every outstanding check `Stopped` at once; a check
//! on an `EventLoop` nobody runs fails with `NotStarted` within its `start_within`; a checker
//! used in a forked child (which has the handle but not the loop's thread) fails within the
//! check's timeout instead of waiting for a loop that does not exist there.
//!
//! The fork happens in a child process of its own (this binary again, `fork_child` selected),
//! so that the forked copy never holds the descriptors of the other tests' checks.

use crate::common;
use crate::common::child;

use std::io::Write as _;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use tcp_shaker::{CheckError, CheckOptions, Checker, ErrorKind, Report};

/// Far longer than any scenario here waits: a check still pending when a test asserts on it
/// was kept by the library, not by its deadline.
const LONG_TIMEOUT: Duration = Duration::from_secs(60);
/// How long "at once" may take. Generous (a loaded 2-core machine, a debug build).
const PROMPTLY: Duration = Duration::from_secs(5);
/// The timeout of checks that must fail within it.
const TIMEOUT: Duration = Duration::from_secs(1);
/// "Within its timeout", generously: the timeout and a second.
const WITHIN_TIMEOUT: Duration = Duration::from_secs(2);

fn assert_not_started(what: &str, result: &Result<Report, CheckError>, target: SocketAddr) {
    match result {
        Err(error) => {
            assert_eq!(error.kind(), ErrorKind::NotStarted, "{what}: {error}");
            assert_eq!(error.target(), target.to_string(), "{what}: {error}");
        }
        Ok(report) => panic!("{what}: expected NotStarted, got {report:?}"),
    }
}

/// `stop()` from another thread while a batch of silent checks is being iterated (blocked in
/// `next()`): the iteration ends promptly, every check answered `Stopped`, those submitted but
/// not yet handed to the loop included.
#[test]
fn a_batch_iterated_while_its_checker_stops_ends_with_every_check_stopped() {
    const FLUSHED: u64 = 200;
    const UNSENT: u64 = 10;
    let silent = common::SilentListener::new();
    let target = silent.address.to_string();
    let checker = Checker::new().unwrap();
    let mut batch = checker.batch();
    for tag in 0..FLUSHED {
        batch.submit(tag, silent.address, LONG_TIMEOUT).unwrap();
    }
    batch.flush();
    for tag in FLUSHED..FLUSHED + UNSENT {
        batch.submit(tag, silent.address, LONG_TIMEOUT).unwrap();
    }

    let stopper = {
        let checker = checker.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            let stopping = Instant::now();
            checker.stop();
            stopping
        })
    };
    let (tags, _) = child::within("iterating the batch", PROMPTLY, move || {
        let mut tags = Vec::new();
        for completion in batch {
            common::assert_stopped(&completion.result, &target);
            tags.push(completion.tag);
        }
        (tags, Instant::now())
    });
    let (mut tags, ended) = tags;
    let stopping = stopper.join().unwrap();
    tags.sort_unstable();
    assert_eq!(tags, (0..FLUSHED + UNSENT).collect::<Vec<_>>());
    assert!(
        ended.saturating_duration_since(stopping) < PROMPTLY,
        "the batch ended {:?} after stop()",
        ended.saturating_duration_since(stopping)
    );
}

/// Blocking checks on an `EventLoop` that nobody runs fail with `NotStarted` within their
/// timeout (given less room to start, within their `start_within`), instead of waiting for
/// ever; once the loop runs, checks work.
#[test]
fn checks_on_a_loop_nobody_runs_are_not_started_within_their_timeout() {
    let (listener, address) = common::open_port();
    let (checker, event_loop) = Checker::builder().build().unwrap();

    let blocking = checker.clone();
    let (result, took) = child::within("a blocking check", TIMEOUT + PROMPTLY, move || {
        blocking.check(address, TIMEOUT)
    });
    assert_not_started("a blocking check", &result, address);
    assert!(
        took <= WITHIN_TIMEOUT,
        "a blocking check on a loop nobody runs returned after {took:?}, timeout {TIMEOUT:?}"
    );

    let blocking = checker.clone();
    let (result, took) = child::within("check_every_address", TIMEOUT + PROMPTLY, move || {
        blocking.check_every_address(address, TIMEOUT)
    });
    match result {
        Err(error) => {
            assert_eq!(error.kind(), ErrorKind::NotStarted, "{error}");
            assert_eq!(error.target(), address.to_string(), "{error}");
        }
        Ok(reports) => panic!("check_every_address: expected NotStarted, got {reports:?}"),
    }
    assert!(
        took <= WITHIN_TIMEOUT,
        "check_every_address returned after {took:?}"
    );

    // A shorter start_within than the timeout: NotStarted when it runs out.
    const START_WITHIN: Duration = Duration::from_millis(300);
    let blocking = checker.clone();
    let options = CheckOptions::new(LONG_TIMEOUT).start_within(START_WITHIN);
    let (result, took) = child::within("a blocking check", PROMPTLY, move || {
        blocking.check(address, options)
    });
    assert_not_started("a blocking check with start_within", &result, address);
    assert!(
        took <= START_WITHIN + common::SCHEDULING_MARGIN,
        "NotStarted came after {took:?}, start_within {START_WITHIN:?}"
    );

    // The loop runs at last: checks are made.
    let loop_thread = thread::spawn(move || event_loop.run());
    let report = checker.check(address, Duration::from_secs(5)).unwrap();
    assert!(report.is_open(), "{report:?}");
    checker.stop();
    loop_thread.join().unwrap().unwrap();
    assert_eq!(common::accept_all(&listener), 0);
}

/// Set in the child's environment: run the fork scenario.
const FORK_CHILD: &str = "TCP_SHAKER_FORK_CHILD";
/// Printed by the child at the end of the scenario, to prove it ran.
const MARKER: &str = "fork scenario completed";
/// Written by the forked process, then its verdict.
const FORKED: &str = "FORKED ";

/// A checker used in a forked child returns an error (`Stopped`, saying why) within the
/// check's timeout; the parent's checker is unharmed.
#[test]
fn a_checker_used_in_a_forked_child_fails_within_the_timeout() {
    let finished = child::run_passed(child::scenario("no_hang::fork_child", FORK_CHILD), MARKER);
    let verdicts: Vec<&str> = finished.lines_after(FORKED).collect();
    assert!(
        !verdicts.is_empty(),
        "the forked process said nothing;\nstdout:\n{}\nstderr:\n{}",
        finished.stdout,
        finished.stderr
    );
    for verdict in verdicts {
        assert!(
            verdict.starts_with("ok "),
            "in the forked process: {verdict}\nstdout:\n{}",
            finished.stdout
        );
        assert!(
            verdict.to_lowercase().contains("fork"),
            "the error in the forked process does not say why: {verdict}"
        );
    }
}

/// What the forked process found, as one line: `ok <error>` when its check failed with
/// `Stopped` within the timeout, else what happened.
fn forked_verdict(what: &str, result: &Result<Report, CheckError>, took: Duration) -> String {
    match result {
        Err(error) if error.kind() == ErrorKind::Stopped && took <= WITHIN_TIMEOUT => {
            format!("ok {what}: {error}")
        }
        Err(error) => format!("{what}: {} after {took:?}: {error}", error.kind()),
        Ok(report) => format!("{what}: a report after {took:?}: {report:?}"),
    }
}

/// The fork scenario, run only in the child process (see the module documentation).
#[test]
fn fork_child() {
    if !child::is_child(FORK_CHILD) {
        return;
    }
    let (listener, address) = common::open_port();
    let checker = Checker::new().unwrap();
    assert!(checker.check(address, TIMEOUT).unwrap().is_open());
    // The harness printed "test fork_child ... " without a line end.
    println!();
    std::io::stdout().flush().unwrap();

    // SAFETY: the child only runs the library's check (its loop thread, busy with nothing, holds
    // no lock), writes to its standard output with write(2), and leaves with _exit: no
    // destructor, no harness code runs in it.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let verdicts = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let started = Instant::now();
            let result = checker.check(address, TIMEOUT);
            let blocking = forked_verdict("a blocking check", &result, started.elapsed());
            let started = Instant::now();
            let mut batch = checker.batch();
            let batched = match batch.submit(1, address, TIMEOUT) {
                Err(error) => forked_verdict("a batch", &Err(error), started.elapsed()),
                Ok(()) => match batch.next_until(Instant::now() + TIMEOUT + PROMPTLY) {
                    Some(completion) => {
                        forked_verdict("a batch", &completion.result, started.elapsed())
                    }
                    None => format!("a batch: no result after {:?}", started.elapsed()),
                },
            };
            // No destructor runs in the forked process.
            std::mem::forget(batch);
            format!("{FORKED}{blocking}\n{FORKED}{batched}\n")
        }))
        .unwrap_or_else(|_| format!("{FORKED}the check panicked in the forked process\n"));
        // SAFETY: writes the bytes of a live String to standard output, then ends the process
        // without running anything else.
        unsafe {
            libc::write(1, verdicts.as_ptr().cast(), verdicts.len());
            libc::_exit(0);
        }
    }

    // Generous: the forked process's checks must end within their timeout.
    let give_up = Instant::now() + TIMEOUT * 2 + PROMPTLY;
    let mut status = 0;
    let ended = loop {
        // SAFETY: waits for our own child without blocking, writing its status into `status`.
        let waited = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if waited == pid {
            break true;
        }
        if Instant::now() >= give_up {
            // SAFETY: kills and reaps our own child, which still runs.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            break false;
        }
        thread::sleep(Duration::from_millis(10));
    };
    assert!(
        ended,
        "a check in the forked process still hung {:?} after the fork (timeout {TIMEOUT:?})",
        TIMEOUT * 2 + PROMPTLY
    );
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the forked process ended with status {status:#x}"
    );

    // The parent's checker is unharmed.
    assert!(checker.check(address, TIMEOUT).unwrap().is_open());
    assert_eq!(common::accept_all(&listener), 0);
    println!("{MARKER}");
}
