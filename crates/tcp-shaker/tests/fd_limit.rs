//! Running out of file descriptors gives the typed error, naming the target and the open-files
//! limit, and the checker works again once descriptors are free.
//!
//! The limit is lowered in a child process, so that it cannot starve the other tests: the test
//! runs its own binary again with only [`fd_limit_child`] selected and [`CHILD`] set in its
//! environment; without that variable the child test does nothing.

use crate::common;
use crate::common::child;

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use shaker_wire::limits;
use tcp_shaker::{CheckError, CheckOptions, Checker, ErrorKind, Outcome, Report};

/// Set in the child's environment: run the scenario.
const CHILD: &str = "TCP_SHAKER_FD_LIMIT_CHILD";
/// Printed by the child at the end of the scenario, to prove it ran.
const MARKER: &str = "fd-limit scenario completed";
/// Descriptors allowed above those open when the limit is set.
const HEADROOM: u64 = 16;
/// Generous: loopback checks answer in microseconds.
const TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn running_out_of_descriptors_gives_a_typed_error_and_recovers() {
    child::run_passed(child::scenario("fd_limit::fd_limit_child", CHILD), MARKER);
}

/// The scenario, run only in the child process (see the module documentation).
#[test]
fn fd_limit_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let (_listener, address) = common::open_port();
    let silent = common::SilentListener::new();
    // Created while descriptors are plentiful: its loop thread will hit the limit.
    let checker = Checker::new().unwrap();
    assert!(checker.check(address, TIMEOUT).unwrap().is_open());

    let original = lower_open_files_limit();
    let mut files = exhaust_descriptors(limits::open_files().unwrap().0);
    println!(
        "open-files limit {}, exhausted after opening {} more files",
        limits::open_files().unwrap().0,
        files.len()
    );

    // socket() fails in the loop thread: the check fails with the typed error.
    let error = checker.check(address, TIMEOUT).unwrap_err();
    assert_out_of_descriptors(&error, address);
    let error = pollster::block_on(checker.check_async(address, TIMEOUT)).unwrap_err();
    assert_out_of_descriptors(&error, address);
    let results = batch_of(&checker, address, 20);
    assert_eq!(results.len(), 20);
    for result in &results {
        match result {
            Err(error) => assert_out_of_descriptors(error, address),
            Ok(report) => panic!("a check without descriptors gave {report:?}"),
        }
    }

    // A checker cannot even be created: its poller needs a descriptor.
    let error = Checker::new().expect_err("a checker started without descriptors");
    assert_eq!(error.raw_os_error(), Some(libc::EMFILE), "{error}");
    // Nor can the default one, which the free function starts on first use: the same typed
    // error, saying why.
    let error = tcp_shaker::check(address, TIMEOUT).unwrap_err();
    assert_out_of_descriptors(&error, address);
    assert!(
        error
            .to_string()
            .contains("the default checker could not start"),
        "{error}"
    );

    // A few descriptors free: as many checks at once as there are descriptors get through; the
    // others wait for those sockets to close instead of failing, and those that could not start
    // within their start_within (by default their timeout) fail as not started: the checker's
    // limit, not the target's silence. The checks go to a silent port, so that each keeps its
    // socket until its deadline: a loopback check of an open port is answered within connect()
    // and gives its descriptor back at once.
    const FREED: usize = 4;
    files.truncate(files.len() - FREED);
    assert!(checker.check(address, TIMEOUT).unwrap().is_open());
    let silent_timeout = Duration::from_millis(300);
    let results = batch_with_options(&checker, silent.address, 40, silent_timeout.into());
    let made = results.iter().filter(|result| result.is_ok()).count();
    for result in &results {
        match result {
            Err(error) => assert_not_started_for_descriptors(error, silent.address),
            Ok(report) => assert_eq!(report.outcome(), Outcome::TimedOut, "{report:?}"),
        }
    }
    println!("with {FREED} descriptors free, {made} of 40 checks at once were made");
    assert!(made >= 1, "no check was made with {FREED} descriptors free");
    assert!(
        made < 40,
        "40 checks at once were made within 300 ms with only {FREED} descriptors"
    );
    // Given time to wait, every check gets its turn, a few at a time.
    let patient = CheckOptions::new(silent_timeout).start_within(Duration::from_secs(30));
    let results = batch_with_options(&checker, silent.address, 40, patient);
    assert!(
        results.iter().all(|result| result
            .as_ref()
            .is_ok_and(|report| report.outcome() == Outcome::TimedOut)),
        "{results:?}"
    );

    // Every descriptor back: everything works again, the default checker included.
    drop(files);
    let results = batch_of(&checker, address, 40);
    assert!(
        results
            .iter()
            .all(|result| result.as_ref().is_ok_and(Report::is_open)),
        "{results:?}"
    );
    assert!(tcp_shaker::check(address, TIMEOUT).unwrap().is_open());
    assert!(
        Checker::new()
            .unwrap()
            .check(address, TIMEOUT)
            .unwrap()
            .is_open()
    );

    limits::set_soft_open_files(original).unwrap();
    println!("{MARKER}");
}

/// Lowers the soft open-files limit to [`HEADROOM`] above the highest descriptor open now;
/// returns the soft limit it replaced.
fn lower_open_files_limit() -> u64 {
    let (soft, hard) = limits::open_files().unwrap();
    let highest = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    let lowered = (highest + 1 + HEADROOM).min(hard);
    assert!(
        lowered < soft,
        "the limit ({soft}) is already too low to lower"
    );
    limits::set_soft_open_files(lowered).unwrap();
    assert_eq!(limits::open_files().unwrap().0, lowered);
    soft
}

/// Opens `/dev/null` until the process runs out of descriptors; returns the files opened.
///
/// Their number depends on the holes below the highest descriptor (inherited ones can be high),
/// but cannot reach `limit`.
fn exhaust_descriptors(limit: u64) -> Vec<File> {
    let mut files = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(file) => files.push(file),
            Err(error) => {
                assert_eq!(error.raw_os_error(), Some(libc::EMFILE), "{error}");
                break;
            }
        }
        assert!(
            files.len() as u64 <= limit,
            "the lowered limit does not hold"
        );
    }
    assert!(
        files.len() > 4,
        "too few descriptors were free to free some later"
    );
    files
}

/// The results of `count` checks of `address` submitted at once.
fn batch_of(checker: &Checker, address: SocketAddr, count: u64) -> Vec<Result<Report, CheckError>> {
    batch_with_options(checker, address, count, TIMEOUT.into())
}

fn batch_with_options(
    checker: &Checker,
    address: SocketAddr,
    count: u64,
    options: CheckOptions,
) -> Vec<Result<Report, CheckError>> {
    let mut batch = checker.batch();
    for tag in 0..count {
        batch.submit(tag, address, options).unwrap();
    }
    batch.map(|completion| completion.result).collect()
}

/// A check that waited for one of the checker's own sockets to give its descriptor back, in vain.
fn assert_not_started_for_descriptors(error: &CheckError, address: SocketAddr) {
    assert_eq!(error.kind(), ErrorKind::NotStarted, "{error}");
    assert_eq!(error.target(), address.to_string(), "{error}");
    assert!(error.to_string().contains("open-files limit"), "{error}");
}

fn assert_out_of_descriptors(error: &CheckError, address: SocketAddr) {
    assert_eq!(error.kind(), ErrorKind::ResourceLimit, "{error}");
    assert_eq!(error.target(), address.to_string(), "{error}");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("out of resources checking {address}")),
        "{text}"
    );
    assert!(text.contains("open-files limit"), "{text}");
    assert!(text.contains("ulimit -n"), "{text}");
    let cause = error.io_error().and_then(io::Error::raw_os_error);
    assert_eq!(cause, Some(libc::EMFILE), "{text}");
}
