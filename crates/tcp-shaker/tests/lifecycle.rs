//! Starting and stopping: a loop on the caller's thread, stop, and what happens to checks then.

use crate::common;

use std::net::TcpListener;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tcp_shaker::{CheckError, Checker, CheckerBuilder, ErrorKind, EventLoop, Report};

/// An open listener, a checker whose loop is built but not run, and a blocking check of the
/// listener (with `timeout`) on a thread of its own, given the time to be submitted: it waits for
/// the loop.
fn a_check_queued_before_the_loop(
    timeout: Duration,
) -> (
    TcpListener,
    Checker,
    EventLoop,
    JoinHandle<Result<Report, CheckError>>,
) {
    let listener = common::open_listener();
    let (checker, event_loop) = Checker::builder().build().unwrap();
    let queued = common::check_on_a_thread(&checker, listener.local_addr().unwrap(), timeout);
    thread::sleep(Duration::from_millis(50));
    (listener, checker, event_loop, queued)
}

#[test]
fn handles_cross_threads() {
    fn send_and_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_and_sync::<Checker>();
    send_and_sync::<tcp_shaker::Check>();
    send_and_sync::<tcp_shaker::CheckEveryAddress>();
    send_and_sync::<tcp_shaker::Batch>();
    send_and_sync::<tcp_shaker::CheckError>();
    send::<CheckerBuilder>();
    send::<EventLoop>();
}

#[test]
fn a_loop_run_on_our_own_thread_serves_checks_until_stopped() {
    // A check submitted before the loop runs waits for it.
    let (listener, checker, event_loop, early) =
        a_check_queued_before_the_loop(Duration::from_secs(5));
    let loop_thread = thread::spawn(move || event_loop.run());
    assert!(early.join().unwrap().unwrap().is_open());
    assert!(!checker.is_stopped());
    checker.stop();
    assert!(checker.is_stopped());
    loop_thread.join().unwrap().unwrap();
    let error = checker
        .check(listener.local_addr().unwrap(), Duration::from_secs(5))
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Stopped);
    assert!(
        error
            .to_string()
            .contains(&listener.local_addr().unwrap().to_string()),
        "{error}"
    );
}

#[test]
fn stop_fails_checks_in_flight_at_once() {
    let silent = common::SilentListener::new();
    let checker = Checker::new().unwrap();
    let waiting: Vec<_> = (0..8)
        .map(|_| common::check_on_a_thread(&checker, silent.address, Duration::from_secs(60)))
        .collect();
    thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    checker.stop();
    for waiter in waiting {
        let error = waiter.join().unwrap().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Stopped);
    }
    // Generous: the 60 s checks must not run to their deadline.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        started.elapsed()
    );
}

#[test]
fn stopping_a_loop_that_never_ran_fails_its_queued_checks() {
    let (_listener, checker, event_loop, queued) =
        a_check_queued_before_the_loop(Duration::from_secs(60));
    drop(event_loop);
    assert_eq!(
        queued.join().unwrap().unwrap_err().kind(),
        ErrorKind::Stopped
    );
    assert!(checker.is_stopped());
}

#[test]
fn zero_linger_can_be_chosen_per_checker_and_per_check() {
    // The packets are asserted in tests/wire.rs; here: FIN-closed checks are accepted by the
    // server's application, RST-closed ones never are.
    let (listener, address) = common::open_port();
    let fin_checker = Checker::builder().zero_linger(false).spawn().unwrap();
    assert!(
        fin_checker
            .check(address, Duration::from_secs(5))
            .unwrap()
            .is_open()
    );
    let rst = tcp_shaker::CheckOptions::new(Duration::from_secs(5)).zero_linger(true);
    assert!(fin_checker.check(address, rst).unwrap().is_open());
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        common::accept_all(&listener),
        1,
        "only the FIN-closed check was accepted"
    );
}
