//! The original `tcp-checker` flags: -a ADDR -t MS -n N -c C -v, its summary, and exit codes.

use std::net::TcpListener;

use crate::common::{assert_contains, run_checker, stderr, stdout};

#[test]
fn an_open_port_succeeds_every_check_unnoticed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let output = run_checker(["-a", &address, "-t", "2000", "-n", "200", "-c", "20"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert_contains(&text, "Finished 200/200 checks in ");
    assert_contains(&text, "\n  Succeed: 200\n");
    assert_contains(&text, "\n  Errors: connect 0, timeout 0, other 0\n");
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "the listener's application saw a check"
    );
}

#[test]
fn a_closed_port_counts_connect_errors_and_fails() {
    let address = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let output = run_checker(["-a", &address, "-n", "5", "-c", "5", "-v"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_contains(&text, "Finished 5/5 checks in ");
    assert_contains(&text, "  Succeed: 0\n");
    assert_contains(&text, "  Errors: connect 5, timeout 0, other 0\n");
    let errors = stderr(&output);
    assert!(
        errors.contains(&format!("Checking {address}")),
        "-v prints the configuration: {errors}"
    );
    assert_eq!(
        errors.matches("closed").count(),
        5,
        "-v prints each failure: {errors}"
    );
}

#[test]
fn usage_errors_exit_with_2_and_say_why() {
    for args in [
        &["-a", "localhost"][..],
        &["-a", "127.0.0.1:80", "-c", "0"],
        &["-a", "[::1"],
        &[],
    ] {
        let output = run_checker(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!output.stderr.is_empty(), "{args:?}");
    }
}
