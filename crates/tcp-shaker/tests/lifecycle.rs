//! Starting and stopping: a loop on the caller's thread, stop, and what happens to checks then.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use tcp_shaker::{Checker, ErrorKind};

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

#[test]
fn a_source_address_is_used() {
    let listener = common::open_listener();
    let address = listener.local_addr().unwrap();
    let checker = Checker::builder()
        .source_address("127.0.0.2".parse().unwrap())
        .zero_linger(false)
        .spawn()
        .unwrap();
    assert!(
        checker
            .check(address, Duration::from_secs(5))
            .unwrap()
            .is_open()
    );
    thread::sleep(Duration::from_millis(300));
    listener.set_nonblocking(true).unwrap();
    let (_, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.2");

    let v6_source = Checker::builder()
        .source_address("::1".parse().unwrap())
        .spawn()
        .unwrap();
    let v6 = common::open_listener_v6();
    assert!(
        v6_source
            .check(v6.local_addr().unwrap(), Duration::from_secs(5))
            .unwrap()
            .is_open()
    );

    let unusable = Checker::builder()
        .source_address("192.0.2.1".parse().unwrap())
        .spawn()
        .unwrap();
    let error = unusable.check(address, Duration::from_secs(5)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NoLocalAddress, "{error}");
}
