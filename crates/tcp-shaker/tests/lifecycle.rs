//! Starting and stopping: a loop on the caller's thread, stop, and what happens to checks then.

use crate::common;

use std::thread;
use std::time::{Duration, Instant};

use tcp_shaker::{Checker, CheckerBuilder, ErrorKind, EventLoop};

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
    let listener = common::open_listener();
    let (checker, event_loop) = Checker::builder().build().unwrap();
    // A check submitted before the loop runs waits for it.
    let early = {
        let checker = checker.clone();
        let address = listener.local_addr().unwrap();
        thread::spawn(move || checker.check(address, Duration::from_secs(5)))
    };
    thread::sleep(Duration::from_millis(50));
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
        .map(|_| {
            let checker = checker.clone();
            let address = silent.address;
            thread::spawn(move || checker.check(address, Duration::from_secs(60)))
        })
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
    let listener = common::open_listener();
    let (checker, event_loop) = Checker::builder().build().unwrap();
    let queued = {
        let checker = checker.clone();
        let address = listener.local_addr().unwrap();
        thread::spawn(move || checker.check(address, Duration::from_secs(60)))
    };
    thread::sleep(Duration::from_millis(50));
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
    let listener = common::open_listener();
    let address = listener.local_addr().unwrap();
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
