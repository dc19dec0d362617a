//! Each outcome, produced for real against loopback servers.

use crate::common;

use std::time::{Duration, Instant};

use tcp_shaker::{Checker, Outcome};

#[test]
fn a_listening_port_is_open_and_never_accepted() {
    let (listener, address) = common::open_port();
    let report = Checker::new()
        .unwrap()
        .check(address, Duration::from_secs(5))
        .unwrap();
    let Outcome::Open { rtt } = report.outcome() else {
        panic!("expected open, got {report:?}");
    };
    assert!(rtt <= report.elapsed(), "{report:?}");
    assert_eq!(report.address(), Some(address));
    assert_eq!(common::accept_all(&listener), 0);
}

#[test]
fn a_port_without_listener_is_closed() {
    let address = common::closed_address();
    let report = Checker::new()
        .unwrap()
        .check(address, Duration::from_secs(5))
        .unwrap();
    assert_eq!(report.outcome(), Outcome::Closed);
    assert_eq!(report.address(), Some(address));
}

#[test]
fn a_silent_port_times_out_at_its_deadline() {
    let silent = common::SilentListener::new();
    let timeout = Duration::from_millis(400);
    let started = Instant::now();
    let report = Checker::new()
        .unwrap()
        .check(silent.address, timeout)
        .unwrap();
    let took = started.elapsed();
    assert_eq!(report.outcome(), Outcome::TimedOut);
    assert_eq!(report.address(), Some(silent.address));
    assert!(took >= timeout, "answered before the deadline: {took:?}");
    assert!(
        took <= timeout + common::SCHEDULING_MARGIN,
        "answered {took:?} after start, deadline {timeout:?} plus margin {:?}",
        common::SCHEDULING_MARGIN
    );
}

#[test]
fn outcomes_over_ipv6() {
    let listener = common::open_listener_v6();
    let checker = Checker::new().unwrap();
    let open = checker
        .check(listener.local_addr().unwrap(), Duration::from_secs(5))
        .unwrap();
    assert!(open.is_open(), "{open:?}");
    let closed_port = common::listener_on("[::1]:0".parse().unwrap(), 1)
        .local_addr()
        .unwrap();
    let closed = checker.check(closed_port, Duration::from_secs(5)).unwrap();
    assert_eq!(closed.outcome(), Outcome::Closed);
    assert_eq!(common::accept_all(&listener), 0);
}

#[test]
fn the_default_checker_is_shared_and_checks() {
    let listener = common::open_listener();
    let first = tcp_shaker::default_checker().unwrap() as *const Checker;
    let second = tcp_shaker::default_checker().unwrap() as *const Checker;
    assert_eq!(first, second);
    let report = tcp_shaker::check(listener.local_addr().unwrap(), Duration::from_secs(5));
    assert!(report.unwrap().is_open());
}
