//! Nothing leaks: after many checks, cancelled futures, a stopped checker or a dropped one, the
//! process holds exactly the file descriptors it held before.
//!
//! File-descriptor counts are process-wide and the tests of one binary run on parallel threads,
//! so every test here takes [`FD_COUNTING`] first: while one scenario counts, no other opens or
//! closes anything.

use crate::common;
use crate::common::child;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use tcp_shaker::{Batch, Check, CheckOptions, Checker};

/// Taken by every test of this binary before it opens anything, through [`fd_counting`].
static FD_COUNTING: Mutex<()> = Mutex::new(());

/// The right to count descriptors, until dropped.
struct FdCounting {
    _lock: MutexGuard<'static, ()>,
    at_start: usize,
}

/// What most of these tests start from: the count held, a silent port, and a checker, with
/// the descriptors open before it (`without_checker`) and after it (`baseline`).
struct Scene {
    _counting: FdCounting,
    silent: common::SilentListener,
    without_checker: usize,
    checker: Checker,
    baseline: usize,
}

impl Scene {
    /// The scene, in a child process where the running test runs [`child::alone`]; `None` in
    /// the parent, once that child has passed.
    fn alone() -> Option<Scene> {
        child::alone().then(Scene::new)
    }

    fn new() -> Scene {
        let counting = fd_counting();
        let silent = common::SilentListener::new();
        let without_checker = common::open_fds();
        let checker = Checker::new().unwrap();
        Scene {
            _counting: counting,
            silent,
            without_checker,
            checker,
            baseline: common::open_fds(),
        }
    }

    /// The sockets of `what` (dropped just now) are closed promptly, long before their deadline,
    /// and the checker is unharmed: a new check of the silent port is made (and times out).
    fn closed_at_once_and_unharmed(&self, what: &str) {
        expect_back_to(
            self.baseline,
            &format!(
                "sockets of {what} still open {PROMPTLY:?} after the drop (deadline \
                 {LONG_TIMEOUT:?})"
            ),
        );
        let report = self
            .checker
            .check(self.silent.address, Duration::from_millis(200))
            .unwrap();
        assert_eq!(report.outcome(), tcp_shaker::Outcome::TimedOut);
    }

    /// Drops the checker, which ended `how` ("stopped", "dropped"), and expects every
    /// descriptor it opened closed.
    fn close(self, how: &str) {
        let Scene {
            without_checker,
            checker,
            ..
        } = self;
        drop(checker);
        expect_back_to(
            without_checker,
            &format!("the {how} checker left descriptors open"),
        );
    }
}

/// [`fd_counting`], in a child process where the running test runs [`child::alone`]; `None` in
/// the parent, once that child has passed.
fn fd_counting_alone() -> Option<FdCounting> {
    child::alone().then(fd_counting)
}

/// Waits for the other tests of this binary to finish counting. Take it first, so that it is
/// dropped last.
fn fd_counting() -> FdCounting {
    let lock = FD_COUNTING.lock().unwrap_or_else(PoisonError::into_inner);
    FdCounting {
        _lock: lock,
        at_start: common::open_fds(),
    }
}

impl Drop for FdCounting {
    /// If this test failed half-way, lets whatever it left in flight close before the next test
    /// counts.
    fn drop(&mut self) {
        wait_for_fds(PROMPTLY, |count| count <= self.at_start);
    }
}

/// Far longer than any scenario here waits: a check still in flight when a test asserts on it
/// was kept alive by the library, not by its deadline.
const LONG_TIMEOUT: Duration = Duration::from_secs(60);

/// How long closing sockets and ending the loop thread may take. Generous (a loaded 2-core CI
/// machine, a debug build); the work itself takes milliseconds, and every bound is still more
/// than ten times shorter than [`LONG_TIMEOUT`].
const PROMPTLY: Duration = Duration::from_secs(5);

/// Polls the process's descriptor count until `done` holds or `within` passes; returns the last
/// count seen.
fn wait_for_fds(within: Duration, done: impl Fn(usize) -> bool) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let count = common::open_fds();
        if done(count) || Instant::now() >= deadline {
            return count;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until `sockets` more descriptors than `base` are open (the checks' sockets), and fails
/// with `what` if they never are.
fn expect_sockets(base: usize, sockets: usize, what: &str) {
    let in_flight = wait_for_fds(PROMPTLY, |count| count >= base + sockets);
    assert_eq!(in_flight, base + sockets, "{what}");
}

/// Waits until the descriptor count is back to `base`, and fails with `what` if it is not within
/// [`PROMPTLY`].
fn expect_back_to(base: usize, what: &str) {
    let after = wait_for_fds(PROMPTLY, |count| count == base);
    assert_eq!(after, base, "{what}");
}

/// Polls each check once with a waker that does nothing: enough to submit it.
fn poll_once(checks: &mut [Pin<Box<Check>>]) {
    let mut cx = Context::from_waker(Waker::noop());
    for check in checks {
        assert!(
            check.as_mut().poll(&mut cx).is_pending(),
            "a check of a silent listener answered at once"
        );
    }
}

/// A batch of `checks` checks of `address` (tags `0..checks`, each of [`LONG_TIMEOUT`]), flushed
/// to the loop.
fn batch_in_flight(checker: &Checker, address: SocketAddr, checks: u64) -> Batch {
    let mut batch = checker.batch();
    for tag in 0..checks {
        batch.submit(tag, address, LONG_TIMEOUT).unwrap();
    }
    batch.flush();
    batch
}

/// `checks` futures checking `address` (each of [`LONG_TIMEOUT`]), each polled once: submitted.
fn futures_in_flight(
    checker: &Checker,
    address: SocketAddr,
    checks: usize,
) -> Vec<Pin<Box<Check>>> {
    let mut futures: Vec<_> = (0..checks)
        .map(|_| Box::pin(checker.check_async(address, LONG_TIMEOUT)))
        .collect();
    poll_once(&mut futures);
    futures
}

#[test]
fn a_hundred_thousand_checks_leave_no_descriptor_open() {
    let Some(_counting) = fd_counting_alone() else {
        return;
    };
    const CHECKS: u64 = 100_000;
    const IN_FLIGHT: u64 = 200;

    let (_listener, address) = common::open_port();
    let without_checker = common::open_fds();
    let checker = Checker::new().unwrap();
    // The checker's own descriptors (its poller and its waker) are open from here on.
    let with_checker = common::open_fds();
    assert!(
        with_checker > without_checker,
        "the checker opened no descriptor: is open_fds() counting anything?"
    );

    // As the command line's load test does: a batch kept at IN_FLIGHT checks.
    let started = Instant::now();
    let mut batch = checker.batch();
    let mut submitted = 0;
    while submitted < IN_FLIGHT {
        batch.submit(submitted, address, PROMPTLY).unwrap();
        submitted += 1;
    }
    let mut seen = vec![false; CHECKS as usize];
    let (mut finished, mut open) = (0u64, 0u64);
    let mut not_open = Vec::new();
    while let Some(completion) = batch.next() {
        finished += 1;
        let tag = completion.tag as usize;
        assert!(!seen[tag], "check {tag} completed twice");
        seen[tag] = true;
        match &completion.result {
            Ok(report) if report.is_open() => open += 1,
            other if not_open.len() < 5 => not_open.push(format!("{other:?}")),
            _ => {}
        }
        if submitted < CHECKS {
            batch.submit(submitted, address, PROMPTLY).unwrap();
            submitted += 1;
        }
    }
    let took = started.elapsed();
    eprintln!("{CHECKS} checks, {IN_FLIGHT} in flight, took {took:?}");

    assert_eq!(finished, CHECKS);
    assert_eq!(
        open, CHECKS,
        "not every check of a listening port was open; first others: {not_open:?}"
    );
    // Every check's socket is closed by the time its result is delivered: exactly the
    // checker's own descriptors remain.
    assert_eq!(
        common::open_fds(),
        with_checker,
        "descriptors leaked by {CHECKS} checks"
    );

    drop(batch);
    drop(checker);
    // Dropping the last handle joins the loop thread: its poller and waker are closed by now.
    assert_eq!(
        common::open_fds(),
        without_checker,
        "the dropped checker left its poller or waker open"
    );
}

#[test]
fn dropping_futures_mid_check_closes_their_sockets() {
    let Some(scene) = Scene::alone() else {
        return;
    };
    const CHECKS: usize = 500;

    // Dropped right after their first poll: most are still on their way into the loop, which
    // must skip (or cancel) the checks of futures that are already gone.
    drop(futures_in_flight(
        &scene.checker,
        scene.silent.address,
        CHECKS,
    ));
    expect_back_to(scene.baseline, "checks dropped at once left sockets open");

    // Dropped once every one of them holds a socket waiting for an answer that never comes.
    let mut checks = futures_in_flight(&scene.checker, scene.silent.address, CHECKS);
    expect_sockets(
        scene.baseline,
        CHECKS,
        "expected one socket per check in flight",
    );
    poll_once(&mut checks); // still waiting: the silent listener never answers
    drop(checks);
    scene.closed_at_once_and_unharmed("dropped futures");
    assert_eq!(common::open_fds(), scene.baseline);

    scene.close("dropped");
}

#[test]
fn stopping_a_checker_with_blocked_checks_fails_them_and_closes_everything() {
    let Some(scene) = Scene::alone() else {
        return;
    };
    const THREADS: usize = 8;

    let (checker, silent) = (&scene.checker, &scene.silent);
    let target = silent.address.to_string();
    let with_checker = scene.baseline;

    let (results, returned) = mpsc::channel();
    let waiters: Vec<_> = (0..THREADS)
        .map(|_| {
            let checker = checker.clone();
            let results = results.clone();
            let address = silent.address;
            thread::spawn(move || {
                let result = checker.check(address, LONG_TIMEOUT);
                let _ = results.send((result, Instant::now()));
            })
        })
        .collect();
    drop(results);
    expect_sockets(
        with_checker,
        THREADS,
        "expected every thread's check to be in flight",
    );

    let stopping = Instant::now();
    {
        let checker = checker.clone();
        child::within("stop()", PROMPTLY, move || checker.stop());
    }
    // stop() returns once the loop has closed its sockets: none of the checks' remains. (The
    // poller and the waker may still be closing with the loop thread.)
    let right_after = common::open_fds();
    assert!(
        right_after <= with_checker,
        "{} sockets still open after stop() returned",
        right_after.saturating_sub(with_checker)
    );
    assert!(checker.is_stopped());

    for _ in 0..THREADS {
        let (result, at) = returned
            .recv_timeout(PROMPTLY)
            .expect("a blocked check did not return after stop()");
        common::assert_stopped(&result, &target);
        // Generous: their timeouts are 60 s.
        assert!(
            at - stopping < PROMPTLY,
            "returned {:?} after stop()",
            at - stopping
        );
    }
    for waiter in waiters {
        waiter.join().unwrap();
    }

    // Checks submitted afterwards fail at once, in every form.
    let asked = Instant::now();
    common::assert_stopped(&checker.check(silent.address, LONG_TIMEOUT), &target);
    common::assert_stopped(
        &pollster::block_on(checker.check_async(silent.address, LONG_TIMEOUT)),
        &target,
    );
    let mut batch = checker.batch();
    batch.submit(7, silent.address, LONG_TIMEOUT).unwrap();
    let completion = batch.next().expect("a submitted check gave no result");
    assert_eq!(completion.tag, 7);
    common::assert_stopped(&completion.result, &target);
    assert!(batch.next().is_none());
    // Generous: "at once" is microseconds; the checks' timeouts are 60 s.
    assert!(asked.elapsed() < PROMPTLY, "took {:?}", asked.elapsed());
    drop(batch);

    scene.close("stopped");
}

#[test]
fn stopping_a_checker_under_a_batch_and_futures_answers_them_stopped() {
    let Some(scene) = Scene::alone() else {
        return;
    };
    const BATCHED: u64 = 50;
    const FUTURES: usize = 50;

    let (checker, silent) = (&scene.checker, &scene.silent);
    let target = silent.address.to_string();
    let with_checker = scene.baseline;

    let mut batch = batch_in_flight(checker, silent.address, BATCHED);
    let mut checks = futures_in_flight(checker, silent.address, FUTURES);
    // And one future awaited by an executor, which must be woken by the stop.
    let awaited = {
        let check = checker.check_async(silent.address, LONG_TIMEOUT);
        thread::spawn(move || pollster::block_on(check))
    };
    let sockets = BATCHED as usize + FUTURES + 1;
    expect_sockets(with_checker, sockets, "expected every check in flight");

    {
        let stopper = checker.clone();
        child::within("stop()", PROMPTLY, move || stopper.stop());
    }
    assert!(
        common::open_fds() <= with_checker,
        "sockets open after stop()"
    );

    // The batch answers every outstanding check with "stopped", then ends.
    let mut tags = Vec::new();
    let deadline = Instant::now() + PROMPTLY;
    while let Some(completion) = batch.next_until(deadline) {
        common::assert_stopped(&completion.result, &target);
        tags.push(completion.tag);
    }
    tags.sort_unstable();
    assert_eq!(tags, (0..BATCHED).collect::<Vec<_>>());
    assert_eq!(batch.outstanding(), 0);
    assert!(batch.next().is_none());

    // Every future is ready with "stopped", without being woken (the loop filled their slots
    // before stop() returned).
    let mut cx = Context::from_waker(Waker::noop());
    for check in &mut checks {
        match check.as_mut().poll(&mut cx) {
            Poll::Ready(result) => common::assert_stopped(&result, &target),
            Poll::Pending => panic!("a future of a stopped checker is still pending"),
        }
    }
    let (result, _) = child::within("the awaited future", PROMPTLY, move || {
        awaited.join().unwrap()
    });
    common::assert_stopped(&result, &target);

    drop((checks, batch));
    scene.close("stopped");
}

/// The loop lives as long as any batch or future made from a checker; when the last of them
/// goes, the loop stops and closes every socket, long before the checks' deadlines.
#[test]
fn dropping_every_handle_with_checks_in_flight_closes_everything() {
    let Some(_counting) = fd_counting_alone() else {
        return;
    };
    const BATCHED: u64 = 50;
    const FUTURES: usize = 50;

    let silent = common::SilentListener::new();
    let listener = common::open_listener();
    let without_checker = common::open_fds();

    // Twice: the last handle to go is a future, then a batch.
    for future_goes_last in [true, false] {
        let checker = Checker::new().unwrap();
        let with_checker = common::open_fds();
        let mut batch = batch_in_flight(&checker, silent.address, BATCHED);
        let checks = futures_in_flight(&checker, silent.address, FUTURES);
        let sockets = BATCHED as usize + FUTURES;
        expect_sockets(with_checker, sockets, "expected every check in flight");

        // The checker goes first; the batch and the futures keep its loop running.
        child::within("dropping the checker", PROMPTLY, move || drop(checker));
        batch
            .submit(u64::MAX, listener.local_addr().unwrap(), PROMPTLY)
            .unwrap();
        let completion = batch
            .next_until(Instant::now() + PROMPTLY)
            .expect("the loop stopped while a batch still used it");
        assert_eq!(completion.tag, u64::MAX);
        assert!(completion.result.unwrap().is_open());
        assert_eq!(common::open_fds(), with_checker + sockets);

        let last = if future_goes_last {
            "a future"
        } else {
            "the batch"
        };
        let dropping = Instant::now();
        if future_goes_last {
            // The dropped batch's checks stay in flight, held by the futures' loop...
            child::within("dropping the batch", PROMPTLY, move || drop(batch));
            // ...until the last future goes and the loop stops.
            child::within("dropping the futures", PROMPTLY, move || drop(checks));
        } else {
            child::within("dropping the futures", PROMPTLY, move || drop(checks));
            child::within("dropping the batch", PROMPTLY, move || drop(batch));
        }
        let after = wait_for_fds(PROMPTLY, |count| count == without_checker);
        eprintln!(
            "last handle {last}: everything closed {:?} after the drops began",
            dropping.elapsed()
        );
        assert_eq!(
            after, without_checker,
            "descriptors left open after every handle was dropped (last: {last})"
        );
    }
}

/// A dropped batch cancels its checks: their sockets close at once, long before their deadline.
#[test]
fn a_dropped_batch_closes_its_sockets_at_once() {
    let Some(scene) = Scene::alone() else {
        return;
    };
    const BATCHED: u64 = 50;

    let batch = batch_in_flight(&scene.checker, scene.silent.address, BATCHED);
    expect_sockets(
        scene.baseline,
        BATCHED as usize,
        "expected every check in flight",
    );
    drop(batch);
    scene.closed_at_once_and_unharmed("a dropped batch");

    scene.close("dropped");
}

/// A flood of checks never opens more sockets than `max_sockets`: the rest wait their turn
/// instead of failing for want of descriptors, and every check is answered, each after the
/// whole of its own timeout: the wait for a socket slot is not the target's time.
#[test]
fn a_flood_of_checks_is_held_to_max_sockets() {
    let Some(_counting) = fd_counting_alone() else {
        return;
    };
    const MAX_SOCKETS: usize = 8;
    const CHECKS: u64 = 64;
    const TIMEOUT: Duration = Duration::from_millis(400);

    let silent = common::SilentListener::new();
    let checker = Checker::builder().max_sockets(MAX_SOCKETS).spawn().unwrap();
    let baseline = common::open_fds();

    let mut batch = checker.batch();
    let options = CheckOptions::new(TIMEOUT).start_within(Duration::from_secs(60));
    for tag in 0..CHECKS {
        batch.submit(tag, silent.address, options).unwrap();
    }
    batch.flush();
    let mut most_open = 0;
    let mut answered = 0;
    while batch.outstanding() > 0 {
        most_open = most_open.max(common::open_fds() - baseline);
        let poll_again = Instant::now() + Duration::from_millis(2);
        while let Some(completion) = batch.next_until(poll_again) {
            let report = completion.result.unwrap();
            assert_eq!(
                report.outcome(),
                tcp_shaker::Outcome::TimedOut,
                "{report:?}"
            );
            assert!(
                report.elapsed() >= TIMEOUT,
                "timed out after {:?}, before its timeout of {TIMEOUT:?}",
                report.elapsed()
            );
            answered += 1;
        }
    }
    assert_eq!(answered, CHECKS);
    assert!(most_open > 0, "no socket was ever seen open");
    assert!(
        most_open <= MAX_SOCKETS,
        "{most_open} sockets open at once, more than max_sockets {MAX_SOCKETS}"
    );
}
