//! The default `max_sockets` never exceeds what the open-files limit allows: under a soft limit
//! of 32 (`ulimit -n 32`), a checker made with the defaults makes 200 checks of an open port at
//! once by waiting for socket slots, never failing one with `ResourceLimit`.
//!
//! The limit is lowered in a child process (this binary again, `open_files_child` selected), so
//! that it cannot starve the other tests.

use crate::common;
use crate::common::child;

use std::time::Duration;

use tcp_shaker::{CheckOptions, Checker, ErrorKind, Outcome};

/// Set in the child's environment: run the scenario.
const CHILD: &str = "TCP_SHAKER_OPEN_FILES_CHILD";
/// Printed by the child at the end of the scenario, to prove it ran.
const MARKER: &str = "open-files scenario completed";
/// The soft limit of the reproduction.
const LIMIT: u64 = 32;
const CHECKS: u64 = 200;
/// Generous: loopback checks answer in microseconds.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The timeout of checks of a silent port, which hold their sockets that long.
const SILENT_TIMEOUT: Duration = Duration::from_millis(100);

#[test]
fn the_default_max_sockets_fits_a_low_open_files_limit() {
    child::run_passed(
        child::scenario("open_files::open_files_child", CHILD),
        MARKER,
    );
}

/// The scenario, run only in the child process (see the module documentation).
#[test]
fn open_files_child() {
    if !child::is_child(CHILD) {
        return;
    }
    let (listener, address) = common::open_port();
    let open_before = common::open_fds();
    shaker_wire::limits::set_soft_open_files(LIMIT).unwrap();
    println!("soft open-files limit {LIMIT}, {open_before} descriptors open before the checker");

    // Made under the limit, with every default.
    let checker = Checker::new().unwrap();

    // The case: checks of an open port, all at once.
    let mut batch = checker.batch();
    for tag in 0..CHECKS {
        batch.submit(tag, address, TIMEOUT).unwrap();
    }
    let (mut open, mut out_of_descriptors, mut others) = (0, 0, Vec::new());
    for completion in batch {
        match completion.result {
            Ok(report) if report.is_open() => open += 1,
            Err(error) if error.kind() == ErrorKind::ResourceLimit => out_of_descriptors += 1,
            other => others.push(format!("{other:?}")),
        }
    }
    println!("open port: {open} open, {out_of_descriptors} out of descriptors, others: {others:?}");
    assert_eq!(
        out_of_descriptors, 0,
        "under ulimit -n {LIMIT}, {out_of_descriptors} of {CHECKS} checks of an open port failed \
         for want of descriptors: the default max_sockets exceeds the limit"
    );
    assert_eq!(
        open, CHECKS,
        "not every check of an open port was open: {others:?}"
    );

    // On loopback a check of an open port gives its socket back within the connect() call, so
    // the case above holds few sockets at once. Checks of a silent port hold theirs until
    // their timeout: here the number of sockets open at once is max_sockets itself. With room
    // to wait for a slot, every one of them times out, none fails for want of descriptors;
    // checks of the open port among them are open.
    let silent = common::SilentListener::new();
    let options = CheckOptions::new(SILENT_TIMEOUT).start_within(Duration::from_secs(60));
    let mut batch = checker.batch();
    for tag in 0..CHECKS {
        let target = if tag % 4 == 0 {
            address
        } else {
            silent.address
        };
        batch.submit(tag, target, options).unwrap();
    }
    let (mut expected, mut out_of_descriptors, mut others) = (0, 0, Vec::new());
    for completion in batch {
        let to_open_port = completion.tag % 4 == 0;
        match completion.result {
            Ok(report) if to_open_port && report.is_open() => expected += 1,
            Ok(report) if !to_open_port && report.outcome() == Outcome::TimedOut => expected += 1,
            Err(error) if error.kind() == ErrorKind::ResourceLimit => out_of_descriptors += 1,
            other if others.len() < 5 => others.push(format!("{other:?}")),
            _ => {}
        }
    }
    println!(
        "silent and open ports: {expected} as expected, {out_of_descriptors} out of \
         descriptors, first others: {others:?}"
    );
    assert_eq!(
        out_of_descriptors, 0,
        "under ulimit -n {LIMIT}, {out_of_descriptors} of {CHECKS} checks that hold their \
         sockets failed for want of descriptors: the default max_sockets exceeds the limit"
    );
    assert_eq!(expected, CHECKS, "first unexpected results: {others:?}");
    assert_eq!(common::accept_all(&listener), 0);
    println!("{MARKER}");
}
