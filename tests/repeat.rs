//! Repeated checks: -n with statistics, -i, -c, --max-in-flight, and -n 0 ended by Ctrl-C.

use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use crate::common::{
    BoundSocket, assert_contains, json_lines, listener, run_checker, run_on_open_and_closed,
    signal_after, spawn_checker, stdout,
};

#[test]
fn repeated_checks_print_statistics_per_target() {
    let (output, open, closed) = run_on_open_and_closed(&["-n", "3"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(text.matches("  open ").count(), 3, "{text}");
    assert_eq!(text.matches("  closed ").count(), 3, "{text}");
    let open_block = format!(
        "--- {open} statistics ---\n3 sent, 3 open, 0 closed, 0 timed out, 0 unreachable, 0 errors, 0.0% loss\nrtt min/avg/max/stddev = "
    );
    assert_contains(&text, &open_block);
    assert_contains(&text, " ms\nlongest up streak 3, longest down streak 0\n");
    let closed_block = format!(
        "--- {closed} statistics ---\n3 sent, 0 open, 3 closed, 0 timed out, 0 unreachable, 0 errors, 100.0% loss\nrtt: no check found the port open\nlongest up streak 0, longest down streak 3\n"
    );
    assert_contains(&text, &closed_block);
    assert_contains(&text, "Finished 6/6 checks in ");
    assert!(
        text.ends_with("  Succeed: 3\n  Errors: connect 3, timeout 0, other 0\n"),
        "{text}"
    );
}

#[test]
fn rtt_statistics_are_consistent() {
    let (_listener, open) = listener();
    let output = run_checker(["--json", "-n", "20", "-c", "4", &open.to_string()]);
    assert_eq!(output.status.code(), Some(0));
    let lines = json_lines(&output);
    let summary = lines.last().unwrap();
    let stats = &summary["targets"][0];
    assert_eq!(stats["sent"], 20);
    assert_eq!(stats["longest_up_streak"], 20);
    let number = |field: &str| stats[field].as_f64().unwrap();
    assert!(number("rtt_min_ms") <= number("rtt_avg_ms"), "{stats}");
    assert!(number("rtt_avg_ms") <= number("rtt_max_ms"), "{stats}");
    assert!(number("rtt_stddev_ms") >= 0.0, "{stats}");
    let mut seqs: Vec<u64> = lines
        .iter()
        .filter(|line| line["type"] == "check")
        .map(|line| line["seq"].as_u64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
}

#[test]
fn the_interval_spaces_the_starts_of_a_targets_checks() {
    let (_listener, open) = listener();
    let output = run_checker(["--json", "-n", "3", "-i", "100ms", &open.to_string()]);
    let summary = json_lines(&output).pop().unwrap();
    assert_eq!(summary["checks"], 3);
    // Three starts 100 ms apart take at least 200 ms; no upper bound is asserted.
    assert!(
        summary["elapsed_ms"].as_f64().unwrap() >= 200.0,
        "{summary}"
    );
}

#[test]
fn many_targets_run_within_the_in_flight_bound() {
    let output = run_checker([
        "-s",
        "--max-in-flight",
        "50",
        "-t",
        "5s",
        "127.0.0.1:20001-22000",
    ]);
    let text = stdout(&output);
    assert!(text.starts_with("Finished 2000/2000 checks in "), "{text}");
    let succeeded: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("  Succeed: "))
        .unwrap()
        .parse()
        .unwrap();
    let connect_errors: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("  Errors: connect "))
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(succeeded + connect_errors, 2000, "{text}");
}

/// Sends SIGINT to `child` after `after`, and collects its output.
fn interrupt(child: Child, after: Duration) -> Output {
    signal_after(child, libc::SIGINT, after)
}

#[test]
fn until_interrupted_prints_statistics_on_ctrl_c() {
    let (_listener, open) = listener();
    let child = spawn_checker(&["-n", "0", "-i", "100ms", &open.to_string()]);
    let output = interrupt(child, Duration::from_millis(800));
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let finished = text
        .lines()
        .find_map(|line| line.strip_prefix("Finished "))
        .unwrap_or_else(|| panic!("no summary: {text}"));
    let (done, planned) = finished
        .split_once(" checks")
        .unwrap()
        .0
        .split_once('/')
        .unwrap();
    let done: u64 = done.parse().unwrap();
    assert!(done >= 2, "{text}");
    assert!(planned.parse::<u64>().unwrap() >= done, "{text}");
    assert_contains(
        &text,
        &format!("--- {open} statistics ---\n{done} sent, {done} open"),
    );
}

#[test]
fn an_interrupted_json_run_says_so_and_exits_by_what_it_saw() {
    let closed = BoundSocket::bind(0).unwrap();
    let child = spawn_checker(&[
        "--json",
        "-n",
        "0",
        "-i",
        "50ms",
        &closed.address.to_string(),
    ]);
    let output = interrupt(child, Duration::from_millis(500));
    assert_eq!(output.status.code(), Some(1));
    let summary = json_lines(&output).pop().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["interrupted"], true);
    assert!(summary["closed"].as_u64().unwrap() >= 2, "{summary}");
    assert_eq!(summary["targets"][0]["loss_percent"], 100.0);
}

#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit() {
    let (_listener, open) = listener();
    let child = Command::new("sh")
        .args(["-c", "ulimit -Sn 100 && exec \"$0\" -n 0 -i 50ms \"$1\""])
        .args([env!("CARGO_BIN_EXE_tcp-checker"), &open.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(300));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let output = interrupt(child, Duration::ZERO);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let open_files: Vec<&str> = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        open_files[3], open_files[4],
        "soft and hard limits: {limits}"
    );
    assert_ne!(open_files[3], "100", "{limits}");
}
