//! What each output mode prints: human lines, --open, --summary, --quiet, --json and its schema,
//! -v, colour, help; and the exit codes that go with them.

use std::net::TcpListener;

use crate::common::{
    BoundSocket, SilentPort, assert_contains, assert_field, assert_fields, check_line,
    consecutive_ports, json_lines, listener, open_and_closed, run_checker, run_on_open_and_closed,
    stderr, stdout, tcp_checker,
};
use serde_json::Value;

#[test]
fn a_single_check_prints_one_aligned_line_and_no_summary() {
    let (_listener, open) = listener();
    let output = run_checker([open.to_string()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(text.lines().count(), 1, "{text}");
    let words = check_line(&text, &open.to_string());
    assert_eq!(words[1], "open", "{text}");
    assert_eq!(words[3], "ms", "{text}");
    assert!(words[2].parse::<f64>().is_ok_and(|ms| ms >= 0.0), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn host_names_get_an_address_column_and_columns_line_up() {
    let (_listener, open, closed) = open_and_closed();
    let name = format!("localhost:{}", open.port());
    let ip = closed.address.to_string();
    let output = run_checker([&name, &ip]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(
        check_line(&text, &name)[1..3],
        [open.to_string().as_str(), "open"]
    );
    assert_eq!(check_line(&text, &ip)[1..3], [ip.as_str(), "closed"]);
    let columns: Vec<Vec<usize>> = text.lines().take(2).map(word_starts).collect();
    assert_eq!(columns[0][..4], columns[1][..4], "{text}");
}

/// Where each word of `line` starts.
fn word_starts(line: &str) -> Vec<usize> {
    let bytes = line.as_bytes();
    (0..bytes.len())
        .filter(|&i| bytes[i] != b' ' && (i == 0 || bytes[i - 1] == b' '))
        .collect()
}

#[test]
fn open_only_shows_open_ports_and_counts_the_rest() {
    let ports = consecutive_ports(5);
    ports[2].listen();
    let spec = format!("127.0.0.1:{}-{}", ports[0].port(), ports[4].port());
    let output = run_checker(["--open", &spec]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        check_line(lines[0], &ports[2].address.to_string())[1],
        "open"
    );
    assert_eq!(
        lines[1], "(4 checks not shown: the port was not open)",
        "{text}"
    );
    assert_contains(&text, "Finished 5/5 checks in ");
    assert_contains(&text, "  Succeed: 1\n");
    assert_contains(&text, "  Errors: connect 4, timeout 0, other 0\n");
}

#[test]
fn summary_prints_only_the_statistics_even_for_one_check() {
    let (_listener, open) = listener();
    let output = run_checker(["-s", &open.to_string()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0));
    assert!(text.starts_with("Finished 1/1 checks in "), "{text}");
    assert!(text.contains("  Succeed: 1\n  Errors: connect 0, timeout 0, other 0\n"));
    assert_eq!(text.lines().count(), 3, "{text}");
}

#[test]
fn quiet_prints_nothing_and_exits_by_the_result() {
    let (_listener, open, closed) = open_and_closed();
    let output = run_checker(["-q", "-n", "3", &open.to_string()]);
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stdout.is_empty() && output.stderr.is_empty());
    let output = run_checker(["-q", &open.to_string(), &closed.address.to_string()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty() && output.stderr.is_empty());
    let output = run_checker(["-q", "bad"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(
        stderr(&output).contains("argument \"bad\""),
        "errors still go to stderr"
    );
}

#[test]
fn a_silent_port_times_out_within_the_timeout_and_exits_with_1() {
    let silent = SilentPort::new();
    let target = silent.address().to_string();
    let output = run_checker(["-t", "300ms", &target]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let words = check_line(&text, &target);
    assert_eq!(words[1..3], ["timed", "out"], "{text}");
    // The check's duration: the deadline, give or take the scheduler (generous bounds).
    let milliseconds: f64 = words[3].parse().unwrap();
    assert!(
        (290.0..5_000.0).contains(&milliseconds),
        "{milliseconds} ms for a 300 ms timeout"
    );

    let output = run_checker(["-t", "200", "-n", "2", "--json", &target]);
    assert_eq!(output.status.code(), Some(1));
    let lines = json_lines(&output);
    let outcomes: Vec<&Value> = lines
        .iter()
        .filter(|line| line["type"] == "check")
        .map(|check| &check["outcome"])
        .collect();
    assert_eq!(outcomes, ["timed_out", "timed_out"], "{lines:?}");
    let summary = lines.last().unwrap();
    assert_summary_schema(summary);
    assert_eq!(summary["timed_out"], 2, "{summary}");
    assert_eq!(summary["targets"][0]["loss_percent"], 100.0, "{summary}");
}

fn assert_check_schema(check: &Value) {
    assert_fields(
        check,
        &[
            "type",
            "target",
            "address",
            "outcome",
            "rtt_ms",
            "elapsed_ms",
            "seq",
            "time",
            "error",
            "error_kind",
            "phase",
            "dns_ms",
        ],
    );
    assert_field(check, "target", "string");
    assert_field(check, "address", "string|null");
    assert_field(check, "outcome", "string");
    assert_field(check, "rtt_ms", "number|null");
    assert_field(check, "elapsed_ms", "number|null");
    assert_field(check, "seq", "integer");
    assert_field(check, "time", "string");
    assert_field(check, "error", "string|null");
    assert_field(check, "error_kind", "string|null");
    assert_field(check, "phase", "string|null");
    assert_field(check, "dns_ms", "number|null");
    let time = check["time"].as_str().unwrap();
    assert!(
        time.len() >= 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "RFC 3339 UTC: {time}"
    );
    let outcome = check["outcome"].as_str().unwrap();
    assert!(
        [
            "open",
            "closed",
            "timed_out",
            "unreachable",
            "error",
            "interrupted"
        ]
        .contains(&outcome),
        "{check}"
    );
    let has_result = !["error", "interrupted"].contains(&outcome);
    assert_eq!(check["phase"].is_string(), has_result, "{check}");
    if has_result {
        assert!(["connect", "resolve"].contains(&check["phase"].as_str().unwrap()));
    }
    assert_eq!(check["rtt_ms"].is_number(), outcome == "open", "{check}");
    assert_eq!(check["error"].is_string(), outcome == "error", "{check}");
    assert_eq!(
        check["error_kind"].is_string(),
        outcome == "error",
        "{check}"
    );
    assert_eq!(
        check["elapsed_ms"].is_number(),
        outcome != "error",
        "{check}"
    );
    if check["address"]
        .as_str()
        .is_some_and(|address| address == check["target"])
    {
        assert!(
            check["dns_ms"].is_null(),
            "an IP target is not resolved: {check}"
        );
    }
}

const COUNT_FIELDS: [&str; 5] = ["open", "closed", "timed_out", "unreachable", "errors"];

fn assert_summary_schema(summary: &Value) {
    let mut fields = vec![
        "type",
        "mode",
        "checks",
        "planned",
        "invalid_targets",
        "elapsed_ms",
        "interrupted",
        "interrupted_checks",
        "targets",
    ];
    fields.extend(COUNT_FIELDS);
    assert_fields(summary, &fields);
    for field in ["checks", "planned", "invalid_targets", "interrupted_checks"]
        .iter()
        .chain(&COUNT_FIELDS)
    {
        assert_field(summary, field, "integer");
    }
    assert_field(summary, "mode", "string");
    assert_field(summary, "elapsed_ms", "number");
    assert_field(summary, "interrupted", "bool");
    assert_field(summary, "targets", "array");
    for target in summary["targets"].as_array().unwrap() {
        let mut fields = vec![
            "target",
            "address",
            "sent",
            "loss_percent",
            "rtt_min_ms",
            "rtt_avg_ms",
            "rtt_max_ms",
            "rtt_stddev_ms",
            "longest_up_streak",
            "longest_down_streak",
        ];
        fields.extend(COUNT_FIELDS);
        assert_fields(target, &fields);
        assert_field(target, "target", "string");
        assert_field(target, "address", "string|null");
        for field in ["sent", "longest_up_streak", "longest_down_streak"]
            .iter()
            .chain(&COUNT_FIELDS)
        {
            assert_field(target, field, "integer");
        }
        assert_field(target, "loss_percent", "number");
        for field in ["rtt_min_ms", "rtt_avg_ms", "rtt_max_ms", "rtt_stddev_ms"] {
            assert_field(target, field, "number|null");
        }
    }
}

#[test]
fn json_is_one_object_a_line_with_stable_fields() {
    let open_listener = TcpListener::bind("[::1]:0").unwrap();
    let open = open_listener.local_addr().unwrap();
    let closed = TcpListener::bind("[::1]:0").unwrap().local_addr().unwrap();
    // /etc/hosts gives localhost no IPv6 address here: with -6 its checks fail to resolve, and
    // nothing is sent.
    let unresolved = format!("localhost:{}", open.port());
    let output = run_checker([
        "--json",
        "-6",
        "-n",
        "2",
        &open.to_string(),
        &closed.to_string(),
        &unresolved,
        "not-a-target",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let lines = json_lines(&output);
    let kinds: Vec<&str> = lines
        .iter()
        .map(|line| line["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"invalid_target"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"summary"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|&&kind| kind == "check").count(),
        6,
        "{kinds:?}"
    );

    let invalid = &lines[0];
    assert_fields(invalid, &["type", "source", "input", "error"]);
    assert_eq!(invalid["source"], "argument");
    assert_eq!(invalid["input"], "not-a-target");
    assert_field(invalid, "error", "string");

    let mut outcomes = Vec::new();
    for check in lines.iter().filter(|line| line["type"] == "check") {
        assert_check_schema(check);
        outcomes.push((
            check["target"].as_str().unwrap().to_owned(),
            check["outcome"].as_str().unwrap().to_owned(),
        ));
    }
    outcomes.sort();
    outcomes.dedup();
    let mut expected = vec![
        (open.to_string(), "open".to_owned()),
        (closed.to_string(), "closed".to_owned()),
        (unresolved.clone(), "error".to_owned()),
    ];
    expected.sort();
    assert_eq!(outcomes, expected);

    let summary = lines.last().unwrap();
    assert_summary_schema(summary);
    assert_eq!(summary["mode"], "repeat");
    assert_eq!(summary["checks"], 6);
    assert_eq!(summary["planned"], 6);
    assert_eq!(
        (summary["open"].as_u64(), summary["closed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(summary["errors"], 2);
    assert_eq!(summary["invalid_targets"], 1);
    assert_eq!(summary["interrupted"], false);
    let targets = summary["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3);
    let open_stats = targets
        .iter()
        .find(|t| t["target"] == open.to_string())
        .unwrap();
    assert_eq!(open_stats["loss_percent"], 0.0);
    assert!(
        open_stats["rtt_min_ms"].as_f64().unwrap() <= open_stats["rtt_max_ms"].as_f64().unwrap()
    );
    let closed_stats = targets
        .iter()
        .find(|t| t["target"] == closed.to_string())
        .unwrap();
    assert_eq!(closed_stats["loss_percent"], 100.0);
    assert!(closed_stats["rtt_avg_ms"].is_null());
    assert_eq!(closed_stats["longest_down_streak"], 2);
}

#[test]
fn json_with_open_leaves_out_the_other_checks() {
    let (output, ..) = run_on_open_and_closed(&["--json", "--open"]);
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["outcome"], "open");
    assert_eq!(lines[1]["type"], "summary");
    assert_eq!(lines[1]["checks"], 2);
}

#[test]
fn verbose_prints_the_configuration_and_each_failure_on_stderr() {
    let closed = BoundSocket::bind(0).unwrap();
    let name = format!("localhost:{}", closed.port());
    let output = run_checker(["-v", "-n", "2", "-i", "10ms", "-t", "2s", &name]);
    let errors = stderr(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        errors.starts_with(&format!(
            "Checking {name} with the following configurations:\n    Timeout: 2s\n   \
             Requests: 2\nConcurrency: 1\n   Interval: 10ms\n"
        )),
        "{errors}"
    );
    assert_eq!(
        errors
            .matches(&format!("{name} ({}): closed after ", closed.address))
            .count(),
        2,
        "{errors}"
    );
}

#[test]
fn no_color_and_pipes_get_plain_text() {
    let (_listener, open) = listener();
    for no_color in ["1", ""] {
        let output = tcp_checker()
            .env("NO_COLOR", no_color)
            .args(["-n", "2", &open.to_string()])
            .output()
            .unwrap();
        assert!(!output.stdout.contains(&0x1b), "{}", stdout(&output));
    }
}

#[test]
fn help_is_grouped_and_usage_errors_exit_with_2() {
    let output = run_checker(["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let help = stdout(&output);
    for part in [
        "Targets:",
        "Checks:",
        "Repeat:",
        "Output:",
        "Waiting:",
        "Subcommands:",
        "Examples:",
        "Exit status:",
        "--all-addresses",
        "--max-in-flight",
        "--wait",
    ] {
        assert!(help.contains(part), "{part} missing from\n{help}");
    }
    for args in [
        &["--no-such-flag", "x:1"][..],
        &["-t", "soon", "x:1"],
        &["-4", "-6", "x:1"],
    ] {
        let output = run_checker(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!output.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn open_only_keeps_statistics_to_the_targets_found_open() {
    let ports = consecutive_ports(3);
    ports[1].listen();
    let spec = format!("127.0.0.1:{}-{}", ports[0].port(), ports[2].port());
    let output = run_checker(["--open", "-n", "2", &spec]);
    let text = stdout(&output);
    assert_eq!(text.matches(" statistics ---").count(), 1, "{text}");
    assert!(text.contains(&format!(
        "--- {} statistics ---\n2 sent, 2 open",
        ports[1].address
    )));
    assert_contains(&text, "(4 checks not shown: the port was not open)");
    assert_contains(&text, "Finished 6/6 checks in ");
}

#[test]
fn json_says_where_a_check_ended_and_how_long_resolving_took() {
    let (_listener, open) = listener();
    let by_name = format!("localhost:{}", open.port());
    let by_ip = open.to_string();
    let output = run_checker(["--json", &by_ip, &by_name]);
    assert_eq!(output.status.code(), Some(0));
    let lines = json_lines(&output);
    let check = |target: &str| {
        lines
            .iter()
            .find(|line| line["target"] == target)
            .unwrap_or_else(|| panic!("no check of {target}: {lines:?}"))
    };
    let ip_check = check(&by_ip);
    assert_check_schema(ip_check);
    assert_eq!(ip_check["phase"], "connect");
    assert!(ip_check["dns_ms"].is_null(), "{ip_check}");
    let name_check = check(&by_name);
    assert_check_schema(name_check);
    assert_eq!(name_check["phase"], "connect");
    let dns_ms = name_check["dns_ms"].as_f64().unwrap_or(-1.0);
    let elapsed_ms = name_check["elapsed_ms"].as_f64().unwrap_or(-1.0);
    assert!((0.0..=elapsed_ms).contains(&dns_ms), "{name_check}");
}
