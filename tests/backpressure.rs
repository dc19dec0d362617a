//! A timeout means the target was silent, never that the checker was busy: on loopback every
//! port answers at once (open, or closed with RST), so however many checks a scan makes and
//! however short their timeout, none may come back timed out, nor fail for want of a start.
//!
//! The scans use a loopback address of their own (127.x.y.z, not 127.0.0.1) so that the
//! listeners of tests running beside them, some silent on purpose, are not in the way.

use crate::common::{json_lines, tcp_checker};

/// A loopback address other than 127.0.0.1, varied by process.
fn loopback_host() -> String {
    let id = std::process::id();
    format!(
        "127.{}.{}.{}",
        1 + id % 250,
        1 + (id / 250) % 250,
        2 + id % 200
    )
}

/// Scans `ports` of a loopback address with `-t 20ms` and `extra` flags; returns the summary.
fn scan(ports: &str, extra: &[&str]) -> serde_json::Value {
    let spec = format!("{}:{ports}", loopback_host());
    let output = tcp_checker()
        .args(["--json", "-s", "-t", "20ms", &spec])
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "closed ports: {output:?}");
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines[0].clone()
}

#[test]
fn a_scan_of_every_loopback_port_finds_none_timed_out() {
    let summary = scan("1-65535", &[]);
    assert_eq!(summary["checks"], 65535, "{summary}");
    assert_eq!(summary["timed_out"], 0, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
}

#[test]
fn a_single_loop_fed_thousands_of_checks_times_none_out() {
    let summary = scan("1-10000", &["--loops", "1"]);
    assert_eq!(summary["checks"], 10000, "{summary}");
    assert_eq!(summary["timed_out"], 0, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
}
