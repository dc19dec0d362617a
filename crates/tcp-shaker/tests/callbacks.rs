//! Code the caller hands the checker cannot break it: a resolver that panics fails only its own
//! check, and a waker that panics cannot kill the event loop or lose another check's result.
//!
//! The panics here are deliberate; their messages on stderr are expected.

use crate::common;
use crate::common::child;

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use tcp_shaker::{Batch, Checker, ErrorKind};

const LOCALHOST_V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Far longer than any check here takes: a result that comes this late was lost or stuck.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a scenario may take before it counts as hanging. Generous; it takes milliseconds.
const PROMPTLY: Duration = Duration::from_secs(10);

/// A resolver that panics for names starting with `boom`, and answers 127.0.0.1 otherwise.
fn panicking_resolver(lookups: Arc<AtomicUsize>) -> impl Fn(&str) -> io::Result<Vec<IpAddr>> {
    move |host: &str| {
        lookups.fetch_add(1, Ordering::SeqCst);
        if host.starts_with("boom") {
            panic!("a resolver that panics on {host} (deliberate, for the test)");
        }
        Ok(vec![LOCALHOST_V4])
    }
}

/// With one resolver thread, so that a thread killed by the panic would starve every later
/// name: each panic fails its check with a resolve error, at once, and the next name resolves.
#[test]
fn a_panicking_resolver_fails_only_its_check() {
    let listener = common::open_listener();
    let port = listener.local_addr().unwrap().port();
    let lookups = Arc::new(AtomicUsize::new(0));
    let checker = Checker::builder()
        .resolver(panicking_resolver(Arc::clone(&lookups)))
        .resolver_threads(1)
        .spawn()
        .unwrap();

    for round in 0..3 {
        let (error, took) = common::failing_check(
            &checker,
            ("boom.test", port),
            TIMEOUT,
            &format!("round {round}: a check whose resolver panicked"),
        );
        assert_eq!(error.kind(), ErrorKind::Resolve, "round {round}: {error}");
        assert_eq!(error.target(), format!("boom.test:{port}"), "{error}");
        assert!(
            took < TIMEOUT / 2,
            "round {round}: the resolve error came after {took:?}, as if at the deadline"
        );

        let report = checker
            .check(("fine.test", port), TIMEOUT)
            .unwrap_or_else(|error| {
                panic!("round {round}: a name after a panicking lookup: {error}")
            });
        assert!(report.is_open(), "round {round}: {report:?}");
    }
    assert!(
        lookups.load(Ordering::SeqCst) >= 2,
        "the resolver never ran"
    );
}

/// Many checks of a name whose resolver panics, beside checks of a name that resolves, all in
/// one batch: every check of the first is a resolve error, every check of the second is open.
#[test]
fn a_panicking_lookup_shared_by_many_checks_fails_them_all_and_only_them() {
    const EACH: u64 = 20;
    let listener = common::open_listener();
    let port = listener.local_addr().unwrap().port();
    let checker = Checker::builder()
        .resolver(panicking_resolver(Arc::new(AtomicUsize::new(0))))
        .spawn()
        .unwrap();
    let mut batch = checker.batch();
    for tag in 0..EACH * 2 {
        let host = if tag % 2 == 0 {
            "boom.test"
        } else {
            "fine.test"
        };
        batch.submit(tag, (host, port), TIMEOUT).unwrap();
    }
    let deadline = Instant::now() + PROMPTLY;
    let (mut errors, mut open) = (0, 0);
    while let Some(completion) = batch.next_until(deadline) {
        match (completion.tag % 2, completion.result) {
            (0, Err(error)) => {
                assert_eq!(error.kind(), ErrorKind::Resolve, "{error}");
                errors += 1;
            }
            (0, Ok(report)) => panic!("a check whose resolver panicked gave {report:?}"),
            (_, result) => {
                let report = result.unwrap_or_else(|error| panic!("fine.test: {error}"));
                assert!(report.is_open(), "fine.test: {report:?}");
                open += 1;
            }
        }
    }
    assert_eq!(
        (errors, open),
        (EACH, EACH),
        "results missing after {PROMPTLY:?}: {} outstanding",
        batch.outstanding()
    );
}

/// A waker that panics whenever it is woken, counting its wake-ups.
#[derive(Default)]
struct PanickingWaker(AtomicUsize);

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("a waker that panics (deliberate, for the test)");
    }
}

/// The completions `batch` delivers within [`PROMPTLY`], each of which must be open (`beside`:
/// what ran beside the checks, for the message when one is not).
fn open_completions(batch: &mut Batch, beside: &str) -> u64 {
    let deadline = Instant::now() + PROMPTLY;
    let mut open = 0;
    while let Some(completion) = batch.next_until(deadline) {
        let report = completion.result.unwrap_or_else(|error| {
            panic!("a check beside {beside}: {error}");
        });
        assert!(report.is_open(), "{report:?}");
        open += 1;
    }
    open
}

/// A future polled by an executor whose waker panics, and in the same turn of the loop a batch
/// of 100 checks and a blocking check: the other checks all get their results, the loop keeps
/// running, and later checks work.
///
/// The loop is built, not spawned, and runs only once everything is submitted, so that every
/// one of these results is delivered in the same turn as the waker that panics.
#[test]
fn a_panicking_waker_cannot_kill_the_loop_or_lose_other_results() {
    const BATCHED: u64 = 100;
    let (listener, address) = common::open_port();
    let (checker, event_loop) = Checker::builder().build().unwrap();

    let panicking = Arc::new(PanickingWaker::default());
    let waker = Waker::from(Arc::clone(&panicking));
    let mut doomed = Box::pin(checker.check_async(address, TIMEOUT));
    assert!(
        doomed
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    let mut batch = checker.batch();
    for tag in 0..BATCHED {
        batch.submit(tag, address, TIMEOUT).unwrap();
    }
    batch.flush();
    let blocking = common::check_on_a_thread(&checker, address, TIMEOUT);
    thread::sleep(Duration::from_millis(100)); // the blocking check is submitted by now

    let loop_thread = thread::spawn(move || event_loop.run());
    let open = open_completions(&mut batch, "a panicking waker");
    assert!(
        panicking.0.load(Ordering::SeqCst) >= 1,
        "the panicking waker was never woken: the scenario did not happen"
    );
    assert_eq!(
        open,
        BATCHED,
        "{} of {BATCHED} results of a batch were lost beside a waker that panicked \
         (none arrived within {PROMPTLY:?})",
        batch.outstanding()
    );
    let (blocked, _) = child::within("the blocking check", PROMPTLY, move || {
        blocking.join().unwrap()
    });
    let report = blocked.unwrap_or_else(|error| panic!("a blocking check: {error}"));
    assert!(report.is_open(), "{report:?}");

    // The loop survived: it still runs, and checks later work.
    assert!(
        !loop_thread.is_finished(),
        "the event loop ended after a waker panicked: {:?}",
        loop_thread.join().map_err(|_| "it panicked")
    );
    assert!(!checker.is_stopped(), "the checker stopped");
    let later = checker.clone();
    let (result, _) = child::within("a later check", PROMPTLY, move || {
        later.check(address, TIMEOUT)
    });
    assert!(result.unwrap().is_open());
    let mut batch = checker.batch();
    batch.submit(0, address, TIMEOUT).unwrap();
    let completion = batch
        .next_until(Instant::now() + PROMPTLY)
        .expect("a later batch got no result");
    assert!(completion.result.unwrap().is_open());

    // The doomed future's own result was kept: it is ready when polled again.
    match doomed
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(result) => assert!(result.unwrap().is_open()),
        Poll::Pending => panic!("the future whose waker panicked lost its result"),
    }

    checker.stop();
    let ran = loop_thread.join();
    assert!(ran.is_ok(), "the event loop's thread panicked");
    ran.unwrap().unwrap();
    assert_eq!(common::accept_all(&listener), 0);
}

/// The same on a spawned checker, with the waker panicking in the middle of a stream of
/// checks: every check submitted before and after it is answered.
#[test]
fn a_panicking_waker_amid_a_stream_of_checks_loses_nothing() {
    const ROUNDS: u64 = 20;
    const PER_ROUND: u64 = 50;
    let (_listener, address) = common::open_port();
    let checker = Checker::new().unwrap();
    let panicking = Arc::new(PanickingWaker::default());
    let waker = Waker::from(Arc::clone(&panicking));

    let mut batch = checker.batch();
    let mut doomed: Vec<Pin<Box<tcp_shaker::Check>>> = Vec::new();
    for round in 0..ROUNDS {
        for n in 0..PER_ROUND {
            batch
                .submit(round * PER_ROUND + n, address, TIMEOUT)
                .unwrap();
        }
        batch.flush();
        let mut check = Box::pin(checker.check_async(address, TIMEOUT));
        let _ = check.as_mut().poll(&mut Context::from_waker(&waker));
        doomed.push(check);
    }
    let open = open_completions(&mut batch, "wakers that panic");
    let panics = panicking.0.load(Ordering::SeqCst);
    assert!(
        panics >= 1,
        "the panicking waker was never woken: the scenario did not happen"
    );
    assert_eq!(
        open,
        ROUNDS * PER_ROUND,
        "results lost beside wakers that panicked {panics} times"
    );
    assert!(!checker.is_stopped(), "the checker stopped");
    let later = checker.clone();
    let (result, _) = child::within("a later check", PROMPTLY, move || {
        later.check(address, TIMEOUT)
    });
    assert!(result.unwrap().is_open());
}
