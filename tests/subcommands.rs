//! The subcommands: bench (with its embedded listener and with a target), completions, man.

use std::thread;
use std::time::Duration;

use std::process::Command;

use crate::common::{
    BoundSocket, TempFile, assert_contains, assert_field, json_lines, run_checker, stderr, stdout,
};

#[test]
fn bench_against_its_embedded_listener_is_never_noticed() {
    let output = run_checker(["bench", "-n", "2000", "-c", "50"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("2000 half-open checks of 127.0.0.1:"),
        "{text}"
    );
    assert_contains(&text, "(embedded listener), 50 in flight");
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
    let output = run_checker(["bench", "--json", "-n", "2000", "-c", "20", "-t", "2s"]);
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
    let output = run_checker([
        "bench",
        &listening.address.to_string(),
        "-n",
        "500",
        "-c",
        "10",
        "--json",
    ]);
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
    let output = run_checker(["bench", &closed.address.to_string(), "-n", "100"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_contains(&text, "  outcomes       0 open, 100 closed");
    assert_contains(&text, "  rtt            none");
    assert_contains(&text, "  accepted       unknown");
}

#[test]
fn completions_are_generated_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = run_checker(["completions", shell]);
        assert_eq!(output.status.code(), Some(0), "{shell}");
        let script = stdout(&output);
        assert!(script.contains("tcp-checker"), "{shell}: {script}");
        assert!(script.contains("all-addresses"), "{shell}: {script}");
    }
    let output = run_checker(["completions", "tcsh"]);
    assert_eq!(output.status.code(), Some(2));
}

/// What bash offers for the words `line` (the last one being completed), with tcp-checker's
/// completion script sourced.
fn bash_completes(line: &[&str]) -> Vec<String> {
    let script = stdout(&run_checker(["completions", "bash"]));
    let file = TempFile::new("completion.bash", &script);
    let function = script
        .lines()
        .find_map(|line| line.trim().strip_prefix("complete -F "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the script registers a function");
    let words = line
        .iter()
        .map(|word| format!("'{word}'"))
        .collect::<Vec<_>>();
    let current = line.len() - 1;
    let previous = if current > 0 { line[current - 1] } else { "" };
    let program = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={current}\n{function} tcp-checker '{}' '{previous}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.path().display(),
        words.join(" "),
        line[current],
    );
    let output = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .expect("bash runs");
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output).lines().map(str::to_owned).collect()
}

#[test]
fn bash_completes_the_flags_of_subcommands_and_of_checks() {
    let bench = bash_completes(&["tcp-checker", "bench", "--"]);
    for flag in ["--count", "--concurrency", "--timeout", "--loops", "--json"] {
        assert!(
            bench.iter().any(|word| word == flag),
            "{flag} not in {bench:?}"
        );
    }
    assert!(!bench.iter().any(|word| word == "--wait"), "{bench:?}");
    let checks = bash_completes(&["tcp-checker", "--al"]);
    assert_eq!(checks, ["--all-addresses"]);
    let subcommands = bash_completes(&["tcp-checker", "be"]);
    assert_eq!(subcommands, ["bench"]);
    let shells = bash_completes(&["tcp-checker", "completions", "fi"]);
    assert_eq!(shells, ["fish"]);
}

/// The manual page as roff, and its section headings.
fn manual_page() -> (String, Vec<String>) {
    let output = run_checker(["man"]);
    assert_eq!(output.status.code(), Some(0));
    let page = stdout(&output);
    let sections = page
        .lines()
        .filter_map(|line| line.strip_prefix(".SH "))
        .map(|heading| heading.trim_matches('"').to_owned())
        .collect();
    (page, sections)
}

#[test]
fn the_manual_page_has_its_sections_in_order() {
    let (page, sections) = manual_page();
    assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{page}");
    assert_eq!(page.matches(".ds Aq \\(aq").count(), 1, "one preamble");
    assert_contains(&page, ".TH tcp-checker 1");
    let expected = [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "TARGETS",
        "CHECKS",
        "REPEAT",
        "OUTPUT",
        "WAITING",
        "SUBCOMMANDS",
        "EXIT STATUS",
        "ENVIRONMENT",
        "JSON OUTPUT",
        "EXAMPLES",
        "VERSION",
    ];
    assert_eq!(sections, expected);
    assert!(!sections.iter().any(|section| section == "EXTRA"));
}

#[test]
fn the_manual_page_names_every_option_with_its_placeholder_and_refers_to_no_other_page() {
    let (page, _) = manual_page();
    for option in [
        "\\fB\\-a\\fR, \\fB\\-\\-address\\fR \\fI<ADDR>\\fR",
        "\\fB\\-f\\fR, \\fB\\-\\-file\\fR \\fI<FILE>\\fR",
        "\\fB\\-t\\fR, \\fB\\-\\-timeout\\fR \\fI<TIME>\\fR",
        "\\fB\\-\\-wait\\fR \\fI<TIME>\\fR",
        "\\fB\\-n\\fR, \\fB\\-\\-count\\fR \\fI<N>\\fR",
    ] {
        assert!(page.contains(option), "{option} missing from\n{page}");
    }
    for synopsis in ["[\\-a ADDR]...", "[\\-f FILE]...", "\\-\\-wait TIME"] {
        assert!(
            page.contains(synopsis),
            "{synopsis} missing from the synopsis\n{page}"
        );
    }
    assert!(
        !page.contains("(1)"),
        "a reference to another page:\n{page}"
    );
    assert!(
        !page.contains("[default: 2]") && !page.contains("[default: 4]"),
        "{page}"
    );
    for (section, words) in [
        ("EXIT STATUS", "\\fB2\\fR"),
        ("ENVIRONMENT", "\\fBNO_COLOR\\fR"),
        ("JSON OUTPUT", "\\fBcheck\\fR"),
        (
            "EXAMPLES",
            "tcp\\-checker \\-\\-wait 30s db:5432 \\-\\- ./start.sh",
        ),
    ] {
        let start = page
            .find(&format!(".SH \"{section}\""))
            .or_else(|| page.find(&format!(".SH {section}")));
        let Some(start) = start else {
            panic!("no {section} section in\n{page}");
        };
        assert!(page[start..].contains(words), "{words} not in {section}");
    }
    for field in [
        "error_kind",
        "longest_down_streak",
        "last_outcome",
        "after_ms",
    ] {
        assert!(page.contains(field), "{field} missing from the JSON fields");
    }
}
