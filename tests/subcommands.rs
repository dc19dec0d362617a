//! The subcommands: bench (with its embedded listener and with a target), completions, man.

mod common;

use std::thread;
use std::time::Duration;

use common::{BoundSocket, assert_field, json_lines, stdout, tcp_checker};

#[test]
fn bench_against_its_embedded_listener_is_never_noticed() {
    let output = tcp_checker()
        .args(["bench", "-n", "2000", "-c", "50"])
        .output()
        .unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("2000 half-open checks of 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("(embedded listener), 50 in flight"), "{text}");
    for part in [
        "  rate           ",
        " checks/s (2000 checks in ",
        "  CPU per check  ",
        "on loopback this includes the server side's kernel work",
        "  rtt            p50 ",
        "  outcomes       2000 open, 0 closed, 0 timed out, 0 unreachable, 0 errors\n",
        "  accepted       0 connections: the listener's application never saw a check",
    ] {
        assert!(text.contains(part), "{part:?} missing from\n{text}");
    }
}

#[test]
fn bench_json_has_stable_fields() {
    let output = tcp_checker()
        .args(["bench", "--json", "-n", "2000", "-c", "20", "-t", "2s"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 1);
    let report = &lines[0];
    assert_eq!(report["type"], "bench");
    assert_eq!(report["embedded_listener"], true);
    assert_eq!(report["checks"], 2000);
    assert_eq!(report["concurrency"], 20);
    assert_eq!(report["timeout_ms"], 2000.0);
    assert_eq!(report["open"], 2000);
    assert_eq!(report["accepted"], 0);
    assert_field(report, "target", "string");
    for field in [
        "elapsed_ms",
        "checks_per_second",
        "cpu_per_check_us",
        "cpu_user_ms",
        "cpu_system_ms",
        "rtt_p50_ms",
        "rtt_p90_ms",
        "rtt_p99_ms",
        "rtt_max_ms",
    ] {
        assert_field(report, field, "number");
    }
    for field in ["closed", "timed_out", "unreachable", "errors"] {
        assert_eq!(report[field], 0, "{field}");
    }
    assert!(report["first_error"].is_null());
    let percentile = |field: &str| report[field].as_f64().unwrap();
    assert!(percentile("rtt_p50_ms") <= percentile("rtt_p90_ms"));
    assert!(percentile("rtt_p90_ms") <= percentile("rtt_p99_ms"));
    assert!(percentile("rtt_p99_ms") <= percentile("rtt_max_ms"));
}

#[test]
fn bench_of_a_given_target_cannot_count_accepted_connections() {
    let listening = BoundSocket::bind(0).unwrap();
    listening.listen();
    let output = tcp_checker()
        .args([
            "bench",
            &listening.address.to_string(),
            "-n",
            "500",
            "-c",
            "10",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let report = &json_lines(&output)[0];
    assert_eq!(report["embedded_listener"], false);
    assert_eq!(report["open"], 500);
    assert!(report["accepted"].is_null());
    // A leaked ACK would leave within the 200 ms delayed-ACK window.
    thread::sleep(Duration::from_millis(300));
    assert!(
        !listening.has_pending_connection(),
        "the listener's application saw a check"
    );

    let closed = BoundSocket::bind(0).unwrap();
    let output = tcp_checker()
        .args(["bench", &closed.address.to_string(), "-n", "100"])
        .output()
        .unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("  outcomes       0 open, 100 closed"),
        "{text}"
    );
    assert!(text.contains("  rtt            none"), "{text}");
    assert!(text.contains("  accepted       unknown"), "{text}");
}

#[test]
fn completions_and_the_man_page_are_generated() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = tcp_checker().args(["completions", shell]).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{shell}");
        let script = stdout(&output);
        assert!(script.contains("tcp-checker"), "{shell}: {script}");
        assert!(script.contains("all-addresses"), "{shell}: {script}");
    }
    let output = tcp_checker().arg("man").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let page = stdout(&output);
    assert!(page.contains(".TH tcp-checker"), "{page}");
    assert!(page.contains("\\-\\-wait"), "{page}");
    let output = tcp_checker()
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
