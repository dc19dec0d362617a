//! The property the library exists for: the checked server's application never notices.
//!
//! After thousands of checks of a listener, with a hundred in flight at a time, every check has
//! found the port open and the listener's `accept()` returns nothing: no check completed a
//! handshake. Needs no privileges.

use crate::common;

use std::net::TcpListener;
use std::time::Duration;

use tcp_shaker::Checker;

/// The deadline of each check: generous, a check of a local port answers in microseconds.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Checks kept in flight at once.
const IN_FLIGHT: u64 = 100;
/// Longer than the kernel's 200 ms delayed-ACK timer: a final ACK the checker failed to hold
/// back has reached the server by then, and the connection is in the accept queue.
const PAST_DELAYED_ACK: Duration = Duration::from_millis(400);

/// Makes `total` checks of `listener` through one batch, [`IN_FLIGHT`] at a time (a new one
/// submitted as each completes), and asserts that each found the port open exactly once and
/// that the listener's application has nothing to accept.
fn assert_unnoticed(listener: &TcpListener, total: u64) {
    let target = listener.local_addr().unwrap();
    let checker = Checker::new().unwrap();
    let mut batch = checker.batch();
    let mut submitted = 0;
    while submitted < total.min(IN_FLIGHT) {
        batch.submit(submitted, target, TIMEOUT).unwrap();
        submitted += 1;
    }
    let mut seen = vec![false; total as usize];
    let mut open = 0u64;
    let mut failures = Vec::new();
    while let Some(completion) = batch.next() {
        let tag = completion.tag as usize;
        assert!(!seen[tag], "check {tag} completed twice");
        seen[tag] = true;
        match completion.result {
            Ok(report) if report.is_open() => open += 1,
            other => failures.push(format!("check {tag}: {other:?}")),
        }
        if submitted < total {
            batch.submit(submitted, target, TIMEOUT).unwrap();
            submitted += 1;
        }
    }
    common::assert_none_failed(&failures, total, &format!("did not find {target} open"));
    assert_eq!(open, total);
    assert!(seen.iter().all(|&done| done), "every check completed");
    std::thread::sleep(PAST_DELAYED_ACK);
    assert_eq!(
        common::accept_all(listener),
        0,
        "the listener's application accepted connections made by {total} checks of {target}"
    );
}

#[test]
fn ten_thousand_checks_leave_nothing_to_accept_ipv4() {
    assert_unnoticed(&common::open_listener(), 10_000);
}

#[test]
fn two_thousand_checks_leave_nothing_to_accept_ipv6() {
    assert_unnoticed(&common::open_listener_v6(), 2_000);
}
