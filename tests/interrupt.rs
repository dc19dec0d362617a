//! How a run ends early: SIGINT (Ctrl-C), SIGTERM and SIGHUP all end it normally, statistics
//! printed, the status that of what was seen; checks in flight then are reported as
//! interrupted.

use std::time::Duration;

use crate::common::{
    SilentPort, assert_contains, check_line, json_lines, listener, signal_after, spawn_checker,
    stdout,
};

#[test]
fn sigterm_and_sighup_end_a_run_as_ctrl_c_does() {
    let (_listener, open) = listener();
    let target = open.to_string();
    for signal in [libc::SIGTERM, libc::SIGHUP] {
        let child = spawn_checker(&["-n", "0", "-i", "100ms", &target]);
        let output = signal_after(child, signal, Duration::from_millis(700));
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(0), "signal {signal}: {text}");
        assert!(
            text.contains(&format!("--- {target} statistics ---\n")),
            "signal {signal}: {text}"
        );
        assert!(text.contains("Finished "), "signal {signal}: {text}");
        assert!(text.contains("  Succeed: "), "signal {signal}: {text}");
    }
}

#[test]
fn a_check_in_flight_at_ctrl_c_is_reported_interrupted() {
    let silent = SilentPort::new();
    let target = silent.address().to_string();
    let child = spawn_checker(&["-n", "0", "-t", "10s", &target]);
    let output = signal_after(child, libc::SIGINT, Duration::from_millis(600));
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "nothing was seen open: {text}"
    );
    let words = check_line(&text, &target);
    assert_eq!(words[1], "interrupted", "{text}");
    let ran_for: f64 = words[2].parse().unwrap();
    assert!(ran_for >= 300.0, "{text}");
    assert_contains(&text, "Finished 0/1 checks in ");
    assert_contains(
        &text,
        "  Interrupted: 1 (in flight when the run was stopped)\n",
    );
}

#[test]
fn interrupted_checks_are_json_objects_of_their_own_outcome() {
    let silent = SilentPort::new();
    let (_listener, open) = listener();
    let (silent_target, open_target) = (silent.address().to_string(), open.to_string());
    let child = spawn_checker(&["--json", "-t", "10s", &silent_target, &open_target]);
    let output = signal_after(child, libc::SIGTERM, Duration::from_millis(600));
    assert_eq!(
        output.status.code(),
        Some(0),
        "the status of what was seen: the one check that finished found its port open"
    );
    let lines = json_lines(&output);
    let check = |target: &str| {
        lines
            .iter()
            .find(|line| line["type"] == "check" && line["target"] == target)
            .unwrap_or_else(|| panic!("no check of {target}: {lines:?}"))
    };
    assert_eq!(check(&open_target)["outcome"], "open");
    let interrupted = check(&silent_target);
    assert_eq!(interrupted["outcome"], "interrupted", "{interrupted}");
    assert_eq!(interrupted["address"], silent_target.as_str());
    assert_eq!(interrupted["seq"], 1);
    assert!(
        interrupted["elapsed_ms"].as_f64().unwrap() >= 300.0,
        "{interrupted}"
    );
    for field in ["rtt_ms", "error", "error_kind", "phase", "dns_ms"] {
        assert!(interrupted[field].is_null(), "{field}: {interrupted}");
    }
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["interrupted"], true);
    assert_eq!(summary["interrupted_checks"], 1);
    assert_eq!(summary["checks"], 1);
    assert_eq!(summary["planned"], 2);
}
