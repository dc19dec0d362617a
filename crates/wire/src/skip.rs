//! Skipping a test that lacks the privileges it needs, visibly: the reason goes to the real
//! stderr (the test harness captures `eprintln!`, and a skip must always show). With
//! `TCP_SHAKER_NO_SKIP=1` (set by CI, which runs as root) a skip is a failure instead, so that a
//! privileged test can never pass silently.

use std::io::Write as _;

/// The name of the running test (`module::function`), which the harness gives the thread it
/// runs the test on (even with `--test-threads=1`): skips and notes say which test they are
/// about without each test retyping its own name. `"unnamed test thread"` elsewhere.
pub fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed test thread")
        .to_owned()
}

/// Skips the running test for `reason`, or fails it under `TCP_SHAKER_NO_SKIP=1`.
pub fn skip(reason: &str) {
    let test = test_name();
    if std::env::var_os("TCP_SHAKER_NO_SKIP").is_some_and(|v| v == "1") {
        panic!("{test} cannot run: {reason} (TCP_SHAKER_NO_SKIP=1 forbids skipping)");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// Returns true, after reporting the skip of the running test, when the process is not root;
/// `needs` says what for ("an AF_PACKET capture on lo").
pub fn skip_unless_root(needs: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return false;
    }
    skip(&format!("needs root for {needs}"));
    true
}
