//! Bad input gets a clear error, and the checker goes on working.

use crate::common;

use std::time::Duration;

use tcp_shaker::{CheckOptions, Checker, ErrorKind};

#[test]
fn bad_targets_are_refused_with_the_reason_and_the_input() {
    let listener = common::open_listener();
    let checker = Checker::new().unwrap();
    let cases = [
        ("", "empty"),
        ("localhost", "port is missing"),
        ("127.0.0.1:", "port is missing"),
        ("127.0.0.1:0", "port 0"),
        ("127.0.0.1:65536", "out of range"),
        ("127.0.0.1:-1", "not a number"),
        ("!!garbage!!", "port is missing"),
        ("gar bage:80", "neither an IP address nor a host name"),
        ("[::1", "not closed"),
        ("[::1]80", "port must follow"),
        ("::1:80", "brackets"),
        ("999.1.1.1:80", "not a valid IPv4 address"),
    ];
    for (input, reason) in cases {
        let error = checker.check(input, Duration::from_secs(1)).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidTarget, "{input:?}: {error}");
        let text = error.to_string();
        assert!(text.contains(reason), "{input:?}: {text}");
        assert!(
            text.contains(&format!("{input:?}")),
            "the input is quoted: {text}"
        );
        let future = checker.check_async(input, Duration::from_secs(1));
        assert_eq!(
            pollster::block_on(future).unwrap_err().kind(),
            ErrorKind::InvalidTarget
        );
    }
    let report = checker
        .check(listener.local_addr().unwrap(), Duration::from_secs(5))
        .unwrap();
    assert!(report.is_open(), "the checker still works: {report:?}");
}

#[test]
fn a_zero_timeout_is_refused() {
    let listener = common::open_listener();
    let checker = Checker::new().unwrap();
    let error = checker
        .check(listener.local_addr().unwrap(), Duration::ZERO)
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidOptions);
    assert!(error.to_string().contains("timeout is zero"), "{error}");
    let mut batch = checker.batch();
    assert!(
        batch
            .submit(0, listener.local_addr().unwrap(), Duration::ZERO)
            .is_err()
    );
    assert_eq!(batch.outstanding(), 0);
}

#[test]
fn a_huge_timeout_works() {
    let listener = common::open_listener();
    let checker = Checker::new().unwrap();
    for timeout in [
        Duration::MAX,
        Duration::from_secs(u64::MAX / 2),
        Duration::from_secs(86_400 * 365 * 100),
    ] {
        let report = checker
            .check(listener.local_addr().unwrap(), CheckOptions::new(timeout))
            .unwrap();
        assert!(report.is_open(), "{timeout:?}: {report:?}");
    }
    let closed = checker
        .check(common::closed_address(), Duration::MAX)
        .unwrap();
    assert_eq!(closed.outcome(), tcp_shaker::Outcome::Closed);
}
