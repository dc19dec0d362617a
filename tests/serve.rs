//! `tcp-checker serve`: health state over HTTP, reloads and stops, bad input.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::common::serve::{Served, get, poll_until, run_refused, sample};
use crate::common::{
    BoundSocket, TempDir, assert_contains, assert_field, consecutive_ports, listener, skip, stderr,
};

/// A listener on a free loopback port, its address (the name of the service's one target), and
/// the service checking it every `interval`.
fn serving_one_open_port(interval: &str) -> (TcpListener, String, Served<'static>) {
    let (open, address) = listener();
    let name = address.to_string();
    let served = Served::start(&["-i", interval, &name]);
    (open, name, served)
}

#[test]
fn an_open_and_a_closed_port_show_up_and_down_on_health_and_metrics() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let open = open.local_addr().map(|a| (open, a)).unwrap();
    let (open_name, closed_name) = (open.1.to_string(), closed.to_string());
    let served = Served::start(&["-i", "100ms", &open_name, &closed_name]);
    served.wait_for_log(
        &format!("{closed_name} is DOWN"),
        1,
        std::time::Duration::from_secs(10),
    );
    assert_eq!(served.get(&format!("/health/{open_name}")).status, 200);
    assert_eq!(served.get(&format!("/health/{closed_name}")).status, 503);
    assert_eq!(served.get("/health/nothing:1").status, 404);
    assert_eq!(served.get("/health").status, 503);
    let metrics = served.get("/metrics");
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        metrics
            .text()
            .contains(&format!("tcp_shaker_target_up{{target=\"{open_name}\"}} 1")),
        "{}",
        metrics.text()
    );
    assert!(
        metrics.text().contains(&format!(
            "tcp_shaker_target_up{{target=\"{closed_name}\"}} 0"
        )),
        "{}",
        metrics.text()
    );
    assert!(served.stop().success());
}

/// A bound for anything the tests wait for that should take a second or two.
const GENEROUS: Duration = Duration::from_secs(5);

/// The one log line that holds `needle`, which must be logged exactly once.
fn only_line(log: &str, needle: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|line| line.contains(needle)).collect();
    assert_eq!(lines.len(), 1, "{needle:?} logged once:\n{log}");
    lines[0].to_owned()
}

/// A text log line split at its first space: when it says it happened (its RFC 3339
/// timestamp), and what it says.
fn logged(line: &str) -> (SystemTime, &str) {
    let (stamp, said) = line.split_once(' ').unwrap();
    let at =
        humantime::parse_rfc3339(stamp).unwrap_or_else(|e| panic!("{stamp:?} in {line:?}: {e}"));
    (at, said)
}

/// How long after `earlier` the time `later` is (zero if it is not later).
fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or(Duration::ZERO)
}

/// The text of `line` between `after` and the next comma, checked to be a duration as Rust
/// prints them with `{:.1?}` (`217.1µs`, `1.2ms`).
fn duration_after<'a>(line: &'a str, after: &str) -> &'a str {
    let duration = line
        .split(after)
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no {after:?} in {line:?}"));
    let number = duration.trim_end_matches(|c: char| c.is_alphabetic() || c == 'µ');
    let unit = &duration[number.len()..];
    assert!(
        number.parse::<f64>().is_ok() && ["ns", "µs", "ms", "s"].contains(&unit),
        "{duration:?} is not a duration in {line:?}"
    );
    duration
}

/// Polls `/health/NAME` until it answers `until` (a status code). Returns every distinct
/// answer seen on the way, in order, as (status, body without its newline), and every
/// distinct `state health` that `/api/targets` gave for the target meanwhile.
fn health_answers_until(
    served: &Served,
    name: &str,
    until: u16,
) -> (Vec<(u16, String)>, BTreeSet<String>) {
    let deadline = Instant::now() + GENEROUS;
    let mut seen: Vec<(u16, String)> = Vec::new();
    let mut api_states = BTreeSet::new();
    loop {
        let response = served.get(&format!("/health/{name}"));
        let answer = (response.status, response.text().trim_end().to_owned());
        if seen.last() != Some(&answer) {
            seen.push(answer);
        }
        if response.status == until {
            return (seen, api_states);
        }
        let target = served.target(name);
        let (state, health) = (&target["state"], &target["health"]);
        api_states.insert(format!(
            "{} {}",
            state.as_str().unwrap(),
            health.as_str().unwrap()
        ));
        assert!(
            Instant::now() < deadline,
            "/health/{name} not {until} within {GENEROUS:?}; seen {seen:?}, {api_states:?}"
        );
    }
}

#[test]
fn a_listener_that_closes_goes_down_after_fall_failures_and_up_after_rise_successes() {
    // Below the ephemeral range, so that no one takes the port while it is closed.
    let port = consecutive_ports(1).remove(0);
    let address = port.address;
    port.listen();
    let name = address.to_string();
    let fast = Duration::from_millis(300);
    let served = Served::start(&[
        "-i",
        "500ms",
        "--fast-interval",
        "300ms",
        "--down-interval",
        "1s",
        "--rise",
        "2",
        "--fall",
        "3",
        "--initial-state",
        "fully-up",
        &name,
    ]);
    let transitions = format!("tcp_shaker_target_transitions_total{{target=\"{name}\"}}");
    let open_checks =
        format!("tcp_shaker_target_checks_total{{target=\"{name}\",outcome=\"open\"}}");
    poll_until("a first open check", GENEROUS, || {
        sample(&served.metrics(), &open_checks).filter(|&checks| checks >= 1.0)
    });
    assert_eq!(sample(&served.metrics(), &transitions), Some(0.0));

    // Closed: RST to every SYN. Three failures in a row, and only then down.
    let closed_at = SystemTime::now();
    drop(port);
    let (going_down, api_states) = health_answers_until(&served, &name, 503);
    let expected = [
        (200, format!("{name} UP")),
        (200, format!("{name} UP 2/3")),
        (200, format!("{name} UP 1/3")),
        (503, format!("{name} DOWN")),
    ];
    assert_eq!(going_down, expected, "/health/{name} while going down");
    for state in ["going_down UP 2/3", "going_down UP 1/3"] {
        assert!(
            api_states.contains(state),
            "{state:?} not in {api_states:?}"
        );
    }
    let log = served.wait_for_log(&format!("{name} is DOWN"), 1, GENEROUS);
    let down = only_line(&log, &format!("{name} is DOWN"));
    let (down_at, said) = logged(&down);
    let duration = duration_after(said, "check duration: ");
    assert_eq!(
        said,
        format!("{name} is DOWN, reason: closed, check duration: {duration}, status: 0/2 DOWN")
    );
    let to_down = since(down_at, closed_at);
    // The first failure may come at once; the two after it one fast interval apart each.
    assert!(
        to_down >= 2 * fast - Duration::from_millis(50) && to_down < GENEROUS,
        "closed to DOWN in {to_down:?}"
    );
    let metrics = served.metrics();
    assert_eq!(sample(&metrics, &transitions), Some(1.0), "{metrics}");
    let closed_checks =
        format!("tcp_shaker_target_checks_total{{target=\"{name}\",outcome=\"closed\"}}");
    assert!(sample(&metrics, &closed_checks) >= Some(3.0), "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            &format!("tcp_shaker_target_up{{target=\"{name}\"}}")
        ),
        Some(0.0)
    );

    // Open again on the same port: two successes in a row, and only then up.
    let port = BoundSocket::bind(address.port()).expect("the port again");
    let opened_at = SystemTime::now();
    port.listen();
    let (going_up, api_states) = health_answers_until(&served, &name, 200);
    assert_eq!(
        going_up,
        [
            (503, format!("{name} DOWN")),
            (503, format!("{name} DOWN 1/2")),
            (200, format!("{name} UP")),
        ],
        "/health/{name} while coming up"
    );
    assert!(api_states.contains("going_up DOWN 1/2"), "{api_states:?}");
    let log = served.wait_for_log(&format!("{name} is UP"), 1, GENEROUS);
    let up = only_line(&log, &format!("{name} is UP"));
    let (up_at, said) = logged(&up);
    let (rtt, duration) = (
        duration_after(said, "open in "),
        duration_after(said, "check duration: "),
    );
    assert_eq!(
        said,
        format!("{name} is UP, reason: open in {rtt}, check duration: {duration}, status: 3/3 UP")
    );
    let to_up = since(up_at, opened_at);
    assert!(
        to_up >= fast - Duration::from_millis(50) && to_up < GENEROUS,
        "opened to UP in {to_up:?}"
    );
    assert!(up_at > down_at);
    assert_eq!(sample(&served.metrics(), &transitions), Some(2.0));
    let target = served.target(&name);
    assert_eq!(target["transitions"], 2);
    assert_eq!(target["state"], "up");
    assert!(served.stop().success());
    assert!(
        !port.has_pending_connection(),
        "a half-open check left a connection for the application to accept"
    );
}

#[test]
fn the_json_log_has_one_object_per_line_with_each_transition() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = BoundSocket::bind(0).unwrap();
    let dir = TempDir::new("serve-json-log");
    let config = dir.path().join("serve.toml");
    let text = format!(
        "[defaults]\ninterval = \"100ms\"\n\n\
         [[targets]]\nname = \"web\"\naddress = \"{}\"\ninitial_state = \"down\"\n\n\
         [[targets]]\nname = \"db\"\naddress = \"{}\"\ninitial_state = \"up\"\n",
        open.local_addr().unwrap(),
        closed.address
    );
    std::fs::write(&config, text).unwrap();
    let served = Served::start(&["--log-format", "json", "--config", config.to_str().unwrap()]);
    served.wait_for_log("\"event\":\"transition\"", 2, GENEROUS);
    let (status, log) = served.stop_with_log(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{log}");
    let lines: Vec<Value> = log
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line:?}"));
            assert!(value.is_object(), "{line}");
            assert_field(&value, "time", "string");
            assert_field(&value, "event", "string");
            value
        })
        .collect();
    assert_eq!(lines[0]["event"], "started");
    assert_contains(lines[0]["message"].as_str().unwrap(), "serving http://");
    let transition = |target: &str| {
        let found: Vec<&Value> = lines
            .iter()
            .filter(|line| line["event"] == "transition" && line["target"] == target)
            .collect();
        assert_eq!(found.len(), 1, "one transition of {target} in {lines:?}");
        found[0].clone()
    };
    let web = transition("web");
    assert_has_fields(
        &web,
        &[
            "time",
            "event",
            "target",
            "address",
            "state",
            "reason",
            "check_duration_seconds",
            "status",
        ],
    );
    assert_eq!(web["state"], "up");
    assert_eq!(web["status"], "3/3");
    assert_eq!(web["address"], open.local_addr().unwrap().to_string());
    assert!(
        web["reason"].as_str().unwrap().starts_with("open in "),
        "{web}"
    );
    assert!(
        web["check_duration_seconds"].as_f64().unwrap() < 1.0,
        "{web}"
    );
    let db = transition("db");
    assert_eq!(db["state"], "down");
    assert_eq!(db["reason"], "closed");
    assert_eq!(db["status"], "0/2");
    assert_eq!(db["address"], closed.address.to_string());
    assert!(humantime::parse_rfc3339(db["time"].as_str().unwrap()).is_ok());
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "stopping", "{lines:?}");
}

#[test]
fn health_is_200_only_while_every_target_is_up() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let late = BoundSocket::bind(0).unwrap();
    let (open_name, late_name) = (
        open.local_addr().unwrap().to_string(),
        late.address.to_string(),
    );
    let served = Served::start(&[
        "-i",
        "100ms",
        "--rise",
        "1",
        "--fall",
        "1",
        "--initial-state",
        "fully-down",
        &open_name,
        &late_name,
    ]);
    let health = || {
        let response = served.get("/health");
        (response.status, response.text())
    };
    assert_eq!(health().0, 503, "before any check, nothing is up");
    poll_until("the open target up", GENEROUS, || {
        (served.get(&format!("/health/{open_name}")).status == 200).then_some(())
    });
    assert_eq!(health(), (503, "1 of 2 targets up\n".to_owned()));
    assert_eq!(served.get(&format!("/health/{late_name}")).status, 503);
    late.listen();
    poll_until("/health 200 once both are up", GENEROUS, || {
        (health().0 == 200).then_some(())
    });
    assert_eq!(health(), (200, "2 of 2 targets up\n".to_owned()));
    let late_health = served.get(&format!("/health/{late_name}"));
    assert_eq!(late_health.status, 200);
    assert_eq!(late_health.text(), format!("{late_name} UP\n"));
    assert_eq!(
        late_health.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    drop(open);
    poll_until("/health 503 once one is down", GENEROUS, || {
        (health().0 == 503).then_some(())
    });
    assert_eq!(health(), (503, "1 of 2 targets up\n".to_owned()));
    let down = served.get(&format!("/health/{open_name}"));
    assert_eq!(
        (down.status, down.text()),
        (503, format!("{open_name} DOWN\n"))
    );
    let unknown = served.get("/health/127.0.0.1:1");
    assert_eq!(unknown.status, 404);
    assert_contains(&unknown.text(), "/api/targets");
    assert!(served.stop().success());
}

#[test]
fn health_of_one_target_finds_names_with_brackets_slashes_and_spaces() {
    let Ok(v6) = TcpListener::bind("[::1]:0") else {
        skip("no IPv6 loopback (::1)");
        return;
    };
    let v6_name = v6.local_addr().unwrap().to_string();
    assert!(v6_name.starts_with("[::1]:"), "{v6_name}");
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = TempDir::new("serve-health-names");
    let config = dir.path().join("serve.toml");
    let text = format!(
        "[[targets]]\nname = \"web/front\"\naddress = \"{0}\"\n\n\
         [[targets]]\nname = \"my db\"\naddress = \"{0}\"\n",
        open.local_addr().unwrap()
    );
    std::fs::write(&config, text).unwrap();
    let served = Served::start(&[
        "-i",
        "100ms",
        "--initial-state",
        "fully-down",
        "--rise",
        "1",
        "--config",
        config.to_str().unwrap(),
        &v6_name,
    ]);
    let port = &v6_name["[::1]:".len()..];
    let encoded = format!("/health/%5B%3A%3A1%5D%3A{port}");
    poll_until("the IPv6 target up", GENEROUS, || {
        (served.get(&encoded).status == 200).then_some(())
    });
    let written = served.get(&format!("/health/{v6_name}"));
    assert_eq!(
        written.status, 200,
        "/health/{v6_name} as written: {written:?}"
    );
    assert_eq!(written.text(), format!("{v6_name} UP\n"));
    let encoded = served.get(&encoded);
    assert_eq!(
        (encoded.status, encoded.text()),
        (200, format!("{v6_name} UP\n"))
    );
    poll_until("web/front up", GENEROUS, || {
        (served.get("/health/web/front").status == 200).then_some(())
    });
    assert_eq!(served.get("/health/web/front").text(), "web/front UP\n");
    assert_eq!(served.get("/health/web%2Ffront").status, 200);
    assert_eq!(served.get("/health/web").status, 404);
    let spaced = served.get("/health/my%20db");
    assert_eq!(
        (spaced.status, spaced.text()),
        (200, "my db UP\n".to_owned())
    );
    assert_eq!(served.get("/health/%5B%3A%3A1%5D%3A1").status, 404);
    assert!(served.stop().success());
}

/// Asserts that the object `value` has each of `fields` (and maybe more: the API may grow).
fn assert_has_fields(value: &Value, fields: &[&str]) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"));
    for field in fields {
        assert!(object.contains_key(*field), "{field} missing from {value}");
    }
}

/// Asserts that `value` is an RFC 3339 time, as the API writes them.
fn assert_time(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    assert!(
        humantime::parse_rfc3339(text).is_ok(),
        "{text:?} is not RFC 3339"
    );
}

#[test]
fn api_targets_gives_every_documented_field_with_groups_and_labels() {
    let first = TcpListener::bind("127.0.0.1:0").unwrap();
    let second = BoundSocket::bind(0).unwrap();
    let (p1, p2) = (first.local_addr().unwrap(), second.address);
    let dir = TempDir::new("serve-api-targets");
    let config = dir.path().join("serve.toml");
    let text = format!(
        "[defaults]\ninterval = \"100ms\"\nrise = 3\nfall = 4\ninitial_state = \"fully-up\"\n\n\
         [[targets]]\nname = \"grp\"\naddresses = [\"{p1}\", \"{p2}\"]\nlabels = {{ team = \"x\" }}\n"
    );
    std::fs::write(&config, text).unwrap();
    let served = Served::start(&["--config", config.to_str().unwrap()]);
    // Fully up at first: the closed one goes down after its fourth failure.
    served.wait_for_log(&format!("{p2} is DOWN"), 1, GENEROUS);
    let targets = served.targets();
    assert_eq!(targets.len(), 2, "{targets:?}");
    for (target, address) in targets.iter().zip([p1, p2]) {
        assert_has_fields(
            target,
            &[
                "name",
                "group",
                "labels",
                "target",
                "address",
                "state",
                "up",
                "health",
                "rise",
                "fall",
                "checks",
                "transitions",
                "last_change",
                "last_check",
            ],
        );
        assert_eq!(target["name"], address.to_string());
        assert_eq!(target["group"], "grp");
        assert_eq!(target["labels"], serde_json::json!({ "team": "x" }));
        assert_eq!(target["target"], address.to_string());
        assert_eq!(target["address"], address.to_string());
        assert_eq!(
            (target["rise"].as_u64(), target["fall"].as_u64()),
            (Some(3), Some(4))
        );
        assert_field(target, "up", "bool");
        assert_field(target, "checks", "integer");
        assert_field(target, "transitions", "integer");
        assert!(target["checks"].as_u64() >= Some(1), "{target}");
        let last = &target["last_check"];
        assert_has_fields(last, &["at", "outcome", "rtt_ms", "reason"]);
        assert_time(&last["at"]);
    }
    let (open, closed) = (&targets[0], &targets[1]);
    assert_eq!(open["state"], "up");
    assert_eq!(open["up"], true);
    assert_eq!(open["health"], "UP");
    assert_eq!(open["transitions"], 0);
    assert!(open["last_change"].is_null(), "{open}");
    assert_eq!(open["last_check"]["outcome"], "open");
    assert!(
        open["last_check"]["rtt_ms"].as_f64().unwrap() >= 0.0,
        "{open}"
    );
    assert!(
        open["last_check"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("open in "),
        "{open}"
    );
    assert!(closed["checks"].as_u64() >= Some(4), "{closed}");
    assert_eq!(closed["state"], "down");
    assert_eq!(closed["up"], false);
    assert_eq!(closed["health"], "DOWN");
    assert_eq!(closed["transitions"], 1);
    assert_time(&closed["last_change"]);
    assert_eq!(closed["last_check"]["outcome"], "closed");
    assert!(closed["last_check"]["rtt_ms"].is_null(), "{closed}");
    assert_eq!(closed["last_check"]["reason"], "closed");

    let metrics = served.metrics();
    assert_contains(
        &metrics,
        &format!("tcp_shaker_target_up{{target=\"{p1}\",group=\"grp\",team=\"x\"}} 1"),
    );
    assert_contains(
        &metrics,
        &format!("tcp_shaker_target_up{{target=\"{p2}\",group=\"grp\",team=\"x\"}} 0"),
    );
    assert_contains(
        &metrics,
        &format!(
            "tcp_shaker_target_checks_total{{target=\"{p2}\",group=\"grp\",team=\"x\",outcome=\"closed\"}}"
        ),
    );
    assert_eq!(sample(&metrics, "tcp_shaker_targets"), Some(2.0));
    assert!(served.stop().success());
}

/// Writes `text` to `path`, replacing the file's contents.
fn rewrite(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// A config of targets named `a`, `b` (with `b_knobs`) and, if given, `c`, checked every
/// 200 ms by default.
fn abc_config(a: SocketAddr, b: SocketAddr, b_knobs: &str, c: Option<SocketAddr>) -> String {
    let mut text = format!(
        "[defaults]\ninterval = \"200ms\"\n\n\
         [[targets]]\nname = \"a\"\naddress = \"{a}\"\n\n\
         [[targets]]\nname = \"b\"\naddress = \"{b}\"\n{b_knobs}"
    );
    if let Some(c) = c {
        text.push_str(&format!("\n[[targets]]\nname = \"c\"\naddress = \"{c}\"\n"));
    }
    text
}

/// The names of the targets of `/api/targets`, in order.
fn target_names(served: &Served) -> Vec<String> {
    served
        .targets()
        .iter()
        .map(|target| target["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn sighup_keeps_unchanged_targets_state_and_refuses_broken_configs() {
    // a is closed (and goes down at its first check), b and c are open.
    let closed = BoundSocket::bind(0).unwrap();
    let (open_b, open_c) = (
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    let a = closed.address;
    let (b, c) = (open_b.local_addr().unwrap(), open_c.local_addr().unwrap());
    let dir = TempDir::new("serve-sighup");
    let config = dir.path().join("serve.toml");
    let path = config.to_str().unwrap();
    rewrite(&config, &abc_config(a, b, "", None));
    let served = Served::start(&["--config", path]);
    served.wait_for_log(&format!("a ({a}) is DOWN, reason: closed"), 1, GENEROUS);
    let before = poll_until("a checked three times", GENEROUS, || {
        Some(served.target("a")).filter(|a| a["checks"].as_u64() >= Some(3))
    });
    assert_eq!(before["transitions"], 1);
    let metrics = served.metrics();
    assert_eq!(
        sample(&metrics, "tcp_shaker_config_last_reload_successful"),
        Some(1.0)
    );
    // Both series from the start, so that increase() sees the first reload of each.
    for result in ["success", "failure"] {
        let series = format!("tcp_shaker_config_reloads_total{{result=\"{result}\"}}");
        assert_eq!(sample(&metrics, &series), Some(0.0), "{metrics}");
    }

    // a unchanged, b's interval changed, c new.
    rewrite(
        &config,
        &abc_config(a, b, "interval = \"300ms\"\n", Some(c)),
    );
    served.signal(libc::SIGHUP);
    let log = served.wait_for_log("reloaded", 1, GENEROUS);
    assert_contains(
        &log,
        &format!("reloaded {path}: 1 targets kept with their state, 2 new, 1 removed"),
    );
    let kept = served.target("a");
    assert_eq!(
        kept["last_change"], before["last_change"],
        "a kept its state: {before} then {kept}"
    );
    assert_eq!(kept["transitions"], 1, "{kept}");
    assert_eq!(kept["state"], "down");
    assert!(
        kept["checks"].as_u64() >= before["checks"].as_u64(),
        "{before} then {kept}"
    );
    assert_eq!(target_names(&served), ["a", "b", "c"]);
    assert_eq!(served.get("/health/c").status, 200);
    let metrics = served.metrics();
    assert_eq!(
        sample(
            &metrics,
            "tcp_shaker_config_reloads_total{result=\"success\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "tcp_shaker_config_last_reload_successful"),
        Some(1.0)
    );
    assert_eq!(sample(&metrics, "tcp_shaker_targets"), Some(3.0));
    assert_eq!(
        metrics
            .matches("tcp_shaker_target_up{target=\"b\"}")
            .count(),
        1,
        "the changed target has one series: {metrics}"
    );
    assert_eq!(
        sample(&metrics, "tcp_shaker_target_up{target=\"c\"}"),
        Some(1.0)
    );

    // A syntax error: refused, where it is said, and nothing changes.
    let good = abc_config(a, b, "interval = \"300ms\"\n", Some(c));
    rewrite(
        &config,
        "[defaults]\ninterval = \"200ms\"\n[[targets]\nname = \"a\"\n",
    );
    served.signal(libc::SIGHUP);
    let log = served.wait_for_log("reload refused", 1, GENEROUS);
    assert_contains(
        &log,
        &format!("reload refused, the running config is kept: {path}:3:11: "),
    );
    let metrics = served.metrics();
    assert_eq!(
        sample(
            &metrics,
            "tcp_shaker_config_reloads_total{result=\"failure\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "tcp_shaker_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(target_names(&served), ["a", "b", "c"]);
    assert_eq!(served.target("a")["last_change"], before["last_change"]);

    // A value out of range, in valid TOML: refused the same way.
    let broken = good.replace("interval = \"300ms\"\n", "interval = \"300ms\"\nrise = 0\n");
    let line = broken.lines().position(|l| l == "rise = 0").unwrap() + 1;
    rewrite(&config, &broken);
    served.signal(libc::SIGHUP);
    let log = served.wait_for_log("reload refused", 2, GENEROUS);
    assert_contains(
        &log,
        &format!(
            "reload refused, the running config is kept: {path}:{line}:8: targets[1].rise: 0 is not from 1 to 1000"
        ),
    );
    let metrics = served.metrics();
    assert_eq!(
        sample(
            &metrics,
            "tcp_shaker_config_reloads_total{result=\"failure\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(&metrics, "tcp_shaker_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(target_names(&served), ["a", "b", "c"]);
    assert_eq!(served.target("a")["last_change"], before["last_change"]);

    // The good file again: everything kept, and the last reload successful again.
    rewrite(&config, &good);
    served.signal(libc::SIGHUP);
    let log = served.wait_for_log("reloaded", 2, GENEROUS);
    assert_contains(
        &log,
        &format!("reloaded {path}: 3 targets kept with their state, 0 new, 0 removed"),
    );
    let metrics = served.metrics();
    assert_eq!(
        sample(
            &metrics,
            "tcp_shaker_config_reloads_total{result=\"success\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(&metrics, "tcp_shaker_config_last_reload_successful"),
        Some(1.0)
    );
    assert_eq!(served.target("a")["last_change"], before["last_change"]);
    assert!(served.stop().success());
}

#[test]
fn sighup_without_a_config_file_changes_nothing() {
    let (_open, name, served) = serving_one_open_port("100ms");
    served.signal(libc::SIGHUP);
    served.wait_for_log("SIGHUP: no --config file to read again", 1, GENEROUS);
    assert_eq!(target_names(&served), std::slice::from_ref(&name));
    assert_eq!(served.get(&format!("/health/{name}")).status, 200);
    assert_eq!(
        sample(
            &served.metrics(),
            "tcp_shaker_config_last_reload_successful"
        ),
        Some(1.0)
    );
    assert_eq!(served.stop().code(), Some(0));
}

#[test]
fn sigterm_exits_0_and_the_checked_application_never_accepted_a_connection() {
    let (listener, name, served) = serving_one_open_port("50ms");
    listener.set_nonblocking(true).unwrap();
    let open_checks =
        format!("tcp_shaker_target_checks_total{{target=\"{name}\",outcome=\"open\"}}");
    poll_until("five open checks", GENEROUS, || {
        sample(&served.metrics(), &open_checks).filter(|&checks| checks >= 5.0)
    });
    // A client in the middle of its request does not hold up the stop.
    let mut idle = TcpStream::connect(served.address).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
    let stopping = Instant::now();
    let (status, log) = served.stop_with_log(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        stopping.elapsed() < GENEROUS,
        "stopped in {:?}",
        stopping.elapsed()
    );
    drop(idle);
    assert_contains(
        &log,
        "stopping: no new checks; the ones in flight end with RST",
    );
    match listener.accept() {
        Err(error) if error.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the application could accept a connection: {other:?}"),
    }
}

#[test]
fn sigint_exits_0() {
    let (_listener, _, served) = serving_one_open_port("100ms");
    let (status, log) = served.stop_with_log(libc::SIGINT);
    assert_eq!(status.code(), Some(0), "{log}");
    assert_contains(&log, "stopping: ");
}

#[test]
fn a_signal_the_moment_the_service_says_it_serves_is_handled() {
    // On a thread of its own, which `launch_starved` pins to one CPU.
    thread::spawn(|| {
        let closed = BoundSocket::bind(0).unwrap();
        let name = closed.address.to_string();
        // Each attempt meets the service before its handlers are set more often than not.
        for attempt in 0..10 {
            let mut served = Served::launch_starved(&["-i", "1s", &name]);
            served.signal(libc::SIGTERM);
            let status = served.wait_exit(GENEROUS);
            assert_eq!(
                status.code(),
                Some(0),
                "attempt {attempt}: SIGTERM right after the \"serving\" line ended the service \
                 with {status} (signal {:?}), not the orderly exit 0:\n{}",
                status.signal(),
                served.log()
            );
        }
        for attempt in 0..5 {
            let mut served = Served::launch_starved(&["-i", "1s", &name]);
            served.signal(libc::SIGHUP);
            let survived = poll_until("an answer to SIGHUP", GENEROUS, || {
                if served.log().contains("SIGHUP: no --config file") {
                    Some(true)
                } else {
                    served.has_exited().then_some(false)
                }
            });
            assert!(
                survived,
                "attempt {attempt}: SIGHUP right after the \"serving\" line killed the service:\n{}",
                served.log()
            );
            assert_eq!(served.stop().code(), Some(0));
        }
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

/// `serve --config FILE` with `text` in FILE: its exit status, its stderr, and FILE's path.
fn refused_config(dir: &TempDir, text: &str) -> (Option<i32>, String, String) {
    let config = dir.path().join("refused.toml");
    rewrite(&config, text);
    let path = config.to_str().unwrap().to_owned();
    let output = run_refused(&["--config", &path]);
    (output.status.code(), stderr(&output), path)
}

#[test]
fn malformed_config_files_exit_2_naming_file_line_column_and_the_mistake() {
    let dir = TempDir::new("serve-refused-configs");
    let cases: [(&str, &str, &str, &str); 6] = [
        (
            "TOML syntax",
            "[defaults]\ninterval = \"1s\"\n[[targets]\nname = \"x\"\n",
            "3:11",
            "unclosed array table, expected `]`",
        ),
        (
            "an unknown key",
            "[defaults]\nintervall = \"1s\"\n",
            "2:1",
            "unknown field `intervall`",
        ),
        (
            "a bad duration",
            "[defaults]\ninterval = \"fast\"\n",
            "2:12",
            "defaults.interval: \"fast\" is not a duration",
        ),
        (
            "a bad target spec",
            "[[targets]]\naddress = \"127.0.0.1:99999\"\n",
            "2:11",
            "targets[0].address: \"127.0.0.1:99999\" is refused: the port is out of range",
        ),
        (
            "a duplicate name",
            "[[targets]]\nname = \"x\"\naddress = \"127.0.0.1:1\"\n\
             [[targets]]\nname = \"x\"\naddress = \"127.0.0.1:2\"\n",
            "5:8",
            "targets[1].name: the target name \"x\" is taken already, by targets[0].name at ",
        ),
        (
            "rise of zero",
            "[[targets]]\naddress = \"127.0.0.1:1\"\nrise = 0\n",
            "3:8",
            "targets[0].rise: 0 is not from 1 to 1000",
        ),
    ];
    for (kind, text, at, says) in cases {
        let (code, stderr, path) = refused_config(&dir, text);
        assert_eq!(code, Some(2), "{kind}: {stderr}");
        assert_contains(&stderr, &format!("{path}:{at}: "));
        assert_contains(&stderr, says);
        assert!(!stderr.contains("serving"), "{kind}: {stderr}");
    }
}

#[test]
fn bad_command_lines_exit_2_with_a_message() {
    let closed = BoundSocket::bind(0).unwrap().address.to_string();
    let missing = std::env::temp_dir().join("tcp-checker-test-no-such-config.toml");
    let missing = missing.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--shard", "3/3", &closed],
            "--shard: the index 3 is not below the count 3",
        ),
        (&["--shard", "one/3", &closed], "--shard: the index \"one\""),
        (
            &["127.0.0.1:99999"],
            "invalid target \"127.0.0.1:99999\": the port is out of range",
        ),
        (&[&closed, &closed], "is given twice; give each target once"),
        (&["--config", missing], "cannot read the file"),
    ];
    for (args, says) in cases {
        let output = run_refused(args);
        let stderr = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_contains(&stderr, says);
    }
}

#[test]
fn garbage_and_huge_requests_get_a_4xx_or_a_closed_connection_and_health_still_answers() {
    let closed = BoundSocket::bind(0).unwrap().address.to_string();
    let served = Served::start(&["-i", "100ms", &closed]);
    served.wait_for_log(&format!("{closed} is DOWN"), 1, GENEROUS);
    let request = |target: &[u8]| {
        let mut bytes = b"GET ".to_vec();
        bytes.extend_from_slice(target);
        bytes.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        bytes
    };
    let huge_query = |path: &str, size: usize| {
        let mut target = format!("{path}?x=").into_bytes();
        target.resize(target.len() + size, b'a');
        request(&target)
    };
    let mut big_header = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big_header.resize(big_header.len() + 1024 * 1024, b'b');
    big_header.extend_from_slice(b"\r\n\r\n");
    // Every endpoint refuses a query of 100 KB as too long.
    let long_queries = ["/metrics", "/probe", "/health", "/api/targets"]
        .map(|path| (format!("{path}?x= of 100 KB"), huge_query(path, 100 * 1024)));
    // (what, request, the status it must get, if a precise one is due).
    let mut cases: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
        ("/probe?%zz%%", request(b"/probe?%zz%%"), Some(400)),
        (
            "/probe with invalid UTF-8",
            request(b"/probe?target=%ff%fe:80"),
            Some(400),
        ),
        (
            "/health/ with invalid UTF-8",
            request(b"/health/%ff%fe"),
            Some(400),
        ),
        ("/metrics?%ff%zz", request(b"/metrics?%ff%fe%zz&&=="), None),
        ("/api/targets?%ff", request(b"/api/targets?%ff%00%"), None),
        ("/?%ff", request(b"/?%ff%fe"), None),
        (
            "a path of 1 MB",
            huge_query(&format!("/health/{}", "a".repeat(1024 * 1024)), 0),
            None,
        ),
        ("a header of 1 MB", big_header, None),
        (
            "garbage bytes",
            b"\x00\xff\xfe\x01garbage \x7f\x80\r\n\r\n".to_vec(),
            Some(400),
        ),
        (
            "a request line without a version",
            b"GET /health\r\n\r\n".to_vec(),
            Some(400),
        ),
        ("a space in the path", request(b"/health/my db"), Some(400)),
        (
            "an unknown method",
            b"BREW /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            Some(405),
        ),
    ];
    let long_queries = long_queries.iter();
    cases.extend(long_queries.map(|(what, bytes)| (what.as_str(), bytes.clone(), Some(414))));
    for (what, bytes, due) in cases {
        let answer = served.send_raw(&bytes);
        if let Some(response) = &answer {
            assert!(
                response.status < 500,
                "{what}: a server error: {} {}",
                response.status,
                response.text()
            );
        }
        if let Some(due) = due {
            let status = answer.as_ref().map(|response| response.status);
            assert_eq!(status, Some(due), "{what}: {answer:?}");
        }
        let health = served.get("/health");
        assert_eq!(
            (health.status, health.text().as_str()),
            (503, "0 of 1 targets up\n"),
            "/health after {what}"
        );
    }
    assert_eq!(served.get("/api/targets").status, 200);
    assert!(served.stop().success());
}

#[test]
fn probe_without_an_allowlist_or_with_bad_parameters_is_refused_with_a_reason() {
    let (open, name, served) = serving_one_open_port("1s");
    let forbidden = served.get(&format!("/probe?target={name}"));
    assert_eq!(forbidden.status, 403, "{forbidden:?}");
    assert_contains(&forbidden.text(), "--probe-allow");
    let missing = served.get("/probe");
    assert_eq!(missing.status, 400);
    assert_contains(&missing.text(), "the target parameter is missing");
    assert_eq!(served.get("/probe?target=").status, 400);
    assert_eq!(served.get("/probe?module=tcp_connect").status, 400);
    let module = served.get(&format!("/probe?target={name}&module=nope"));
    assert_eq!(module.status, 400);
    assert_contains(&module.text(), "unknown module \"nope\"");
    assert_contains(&module.text(), "tcp_connect");
    let twice = served.get(&format!("/probe?target={name}&target={name}"));
    assert_eq!(twice.status, 400);
    assert!(served.stop().success());
    match open.set_nonblocking(true).and_then(|()| open.accept()) {
        Err(error) if error.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the application could accept a connection: {other:?}"),
    }
}

/// Waits until `/metrics` has a check of `name` (the checks' families appear with the first).
fn wait_for_a_check(served: &Served, name: &str) {
    let checks = format!("tcp_shaker_target_checks_total{{target=\"{name}\",outcome=\"open\"}}");
    poll_until("a first check", GENEROUS, || {
        sample(&served.metrics(), &checks)
    });
}

/// The `# TYPE` lines of an exposition: its families.
fn families(exposition: &str) -> BTreeSet<&str> {
    exposition
        .lines()
        .filter(|line| line.starts_with("# TYPE "))
        .collect()
}

#[test]
fn two_thousand_scrapes_over_two_hundred_connections_all_get_every_family() {
    let (_open, name, served) = serving_one_open_port("100ms");
    wait_for_a_check(&served, &name);
    let expected: BTreeSet<String> = families(&served.metrics())
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert!(expected.len() >= 10, "{expected:?}");
    let address = served.address;
    let started = Instant::now();
    let answers: Vec<(u16, BTreeSet<String>)> = thread::scope(|scope| {
        let threads: Vec<_> = (0..200)
            .map(|_| {
                scope.spawn(move || {
                    (0..10)
                        .map(|_| {
                            let response = get(address, "/metrics", &[]);
                            let found = families(&response.text())
                                .into_iter()
                                .map(str::to_owned)
                                .collect();
                            (response.status, found)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|thread| thread.join().unwrap())
            .collect()
    });
    let took = started.elapsed();
    assert_eq!(answers.len(), 2000);
    for (status, found) in &answers {
        assert_eq!(*status, 200);
        assert_eq!(found, &expected);
    }
    let asked = Instant::now();
    let health = served.get("/health");
    assert_eq!(health.status, 200);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "/health took {:?} after 2000 scrapes (which took {took:?})",
        asked.elapsed()
    );
    assert!(served.stop().success());
}

#[test]
fn a_client_sending_a_byte_a_second_neither_holds_up_others_nor_stays_connected() {
    // The service gives a client 10 s for its request's headers (HEADER_DEADLINE).
    let (_open, name, served) = serving_one_open_port("1s");
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let connected = Instant::now();
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let stream = TcpStream::connect(served.address).unwrap();
            stream.set_nonblocking(true).unwrap();
            stream
        })
        .collect();
    let mut closed_after: Vec<Option<Duration>> = vec![None; slow.len()];
    let mut sent = 0;
    let mut others_served = 0;
    while closed_after.iter().any(Option::is_none) {
        let elapsed = connected.elapsed();
        assert!(
            elapsed < Duration::from_secs(15),
            "slow clients still connected after {elapsed:?}: {closed_after:?}"
        );
        let byte = request.get(sent).copied().unwrap_or(b'a');
        sent += 1;
        for (stream, closed) in slow.iter_mut().zip(&mut closed_after) {
            if closed.is_some() {
                continue;
            }
            let mut answer = [0; 1024];
            match stream.read(&mut answer) {
                // Closed with nothing said, or (if the server chose to) a 408.
                Ok(0) => *closed = Some(connected.elapsed()),
                Ok(read) => {
                    let text = String::from_utf8_lossy(&answer[..read]);
                    assert!(
                        text.starts_with("HTTP/1.1 408"),
                        "a slow client got {text:?}"
                    );
                    *closed = Some(connected.elapsed());
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    if stream.write_all(&[byte]).is_err() {
                        *closed = Some(connected.elapsed());
                    }
                }
                Err(_) => *closed = Some(connected.elapsed()),
            }
        }
        if (2..=4).contains(&sent) {
            let asked = Instant::now();
            let health = served.get(&format!("/health/{name}"));
            assert_eq!(health.status, 200);
            assert!(
                asked.elapsed() < Duration::from_secs(1),
                "a normal request took {:?} beside the slow ones",
                asked.elapsed()
            );
            others_served += 1;
        }
        thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(others_served, 3);
    let first = closed_after.iter().flatten().min().unwrap();
    assert!(
        *first >= Duration::from_secs(5),
        "a slow client was cut off after {first:?}, before its deadline"
    );
    assert_eq!(served.get("/health").status, 200);
    assert!(served.stop().success());
}

#[test]
fn metrics_speak_openmetrics_when_asked_and_prometheus_text_otherwise() {
    let (_open, name, served) = serving_one_open_port("100ms");
    wait_for_a_check(&served, &name);
    let openmetrics = served.get_with(
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0")],
    );
    assert_eq!(openmetrics.status, 200);
    assert_eq!(
        openmetrics.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(
        openmetrics.text().ends_with("# EOF\n"),
        "{}",
        openmetrics.text()
    );
    assert_contains(
        &openmetrics.text(),
        "# TYPE tcp_shaker_target_checks counter",
    );
    assert_contains(
        &openmetrics.text(),
        "# UNIT tcp_shaker_target_check_duration_seconds seconds",
    );
    let prometheus_accept = served.get_with(
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )],
    );
    assert_eq!(
        prometheus_accept.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    for (accept, why) in [
        (None, "no Accept"),
        (Some("text/plain"), "text/plain"),
        (
            Some("application/openmetrics-text;q=0"),
            "OpenMetrics refused",
        ),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let text = served.get_with("/metrics", &headers);
        assert_eq!(text.status, 200, "{why}");
        assert_eq!(
            text.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8"),
            "{why}"
        );
        assert!(!text.text().contains("# EOF"), "{why}: {}", text.text());
        assert!(!text.text().contains("# UNIT"), "{why}: {}", text.text());
        assert_contains(
            &text.text(),
            "# TYPE tcp_shaker_target_checks_total counter",
        );
        assert_contains(
            &text.text(),
            "# TYPE tcp_shaker_target_transitions_total counter",
        );
    }
    assert!(served.stop().success());
}
