//! --wait: retry until open or out of time, then optionally run a command in tcp-checker's place.

use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use crate::common::{
    BoundSocket, TempFile, assert_contains, assert_field, assert_fields, json_lines, listener,
    run_checker, run_on_open_and_closed, stderr, stdout, tcp_checker,
};

/// The number in `(N checks)` or `(1 check)` of a wait line.
fn checks_in(line: &str) -> u64 {
    let inside = line.rsplit_once('(').unwrap().1;
    inside.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn waiting_succeeds_once_a_late_listener_opens() {
    let socket = BoundSocket::bind(0).unwrap();
    let target = socket.address.to_string();
    let opener = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        socket.listen();
        socket
    });
    let output = run_checker(["--wait", "20s", &target]);
    let socket = opener.join().unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    let line = text.lines().next().unwrap();
    assert!(
        line.starts_with(&format!("{target} is open after ")),
        "{text}"
    );
    assert!(
        checks_in(line) >= 2,
        "the first check, before listen(), was closed: {text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        !socket.has_pending_connection(),
        "the listener's application saw a check"
    );
}

#[test]
fn waiting_times_out_without_running_the_command() {
    let closed = BoundSocket::bind(0).unwrap();
    let (_listener, open) = listener();
    let marker = TempFile::reserved("not-run");
    let script = format!("echo ran > {}", marker.path().display());
    let output = tcp_checker()
        .args([
            "--wait",
            "500ms",
            &open.to_string(),
            &closed.address.to_string(),
        ])
        .args(["--", "sh", "-c", &script])
        .output()
        .unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(!marker.path().exists(), "the command ran");
    assert_contains(&text, &format!("{open} is open after "));
    let line = text
        .lines()
        .find(|line| line.starts_with(&format!("{} is not open after ", closed.address)))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.ends_with("; last: closed"), "{line}");
    assert!(checks_in(line) >= 2, "{line}");
}

#[test]
fn once_every_target_is_open_the_command_runs_in_its_place() {
    let (_first, first) = listener();
    let (_second, second) = listener();
    let marker = TempFile::reserved("ran");
    let script = format!(
        "echo ran > {}; echo \"$0 $1\"; exit 7",
        marker.path().display()
    );
    let output = tcp_checker()
        .args(["--wait", "5", &first.to_string(), &second.to_string()])
        .args(["--", "sh", "-c", &script, "zero", "one"])
        .output()
        .unwrap();
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(7),
        "the command's status: {text}"
    );
    assert_eq!(std::fs::read_to_string(marker.path()).unwrap(), "ran\n");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[..2]
            .iter()
            .all(|line| line.contains(" is open after ")),
        "{text}"
    );
    assert_eq!(lines[2], "zero one");
}

#[test]
fn a_command_that_cannot_start_exits_with_127() {
    let (_listener, open) = listener();
    let output = run_checker([
        "--wait",
        "5",
        &open.to_string(),
        "--",
        "/nonexistent/command",
    ]);
    assert_eq!(output.status.code(), Some(127));
    assert!(stderr(&output).contains("could not run /nonexistent/command"));
}

#[test]
fn waiting_in_json_reports_each_attempt_and_each_target() {
    let (output, open, closed) = run_on_open_and_closed(&["--json", "--wait", "300ms"]);
    assert_eq!(output.status.code(), Some(1));
    let lines = json_lines(&output);
    let opened = lines.iter().find(|line| line["type"] == "open").unwrap();
    assert_fields(opened, &["type", "target", "address", "after_ms", "checks"]);
    assert_eq!(opened["target"], open.to_string());
    assert_eq!(opened["address"], open.to_string());
    assert_field(opened, "after_ms", "number");
    assert_eq!(opened["checks"], 1);
    let not_open = lines
        .iter()
        .find(|line| line["type"] == "not_open")
        .unwrap();
    assert_fields(
        not_open,
        &[
            "type",
            "target",
            "after_ms",
            "checks",
            "last_outcome",
            "last_error",
        ],
    );
    assert_eq!(not_open["last_outcome"], "closed");
    assert!(not_open["last_error"].is_null());
    let attempts = lines
        .iter()
        .filter(|line| line["type"] == "check" && line["target"] == closed.to_string())
        .count() as u64;
    assert_eq!(not_open["checks"].as_u64(), Some(attempts));
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["mode"], "wait");
    assert_eq!(summary["checks"].as_u64(), Some(attempts + 1));
}

#[test]
fn ctrl_c_ends_a_wait_as_not_open() {
    let closed = BoundSocket::bind(0).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tcp-checker"))
        .args(["--wait", "60s", &closed.address.to_string(), "--", "true"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(400));
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: signalling a child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let output = child.wait_with_output().unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with(&format!("{} is not open after ", closed.address)),
        "{text}"
    );
}
