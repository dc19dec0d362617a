//! A real Prometheus (Debian's `prometheus`, which `.ci/run` installs) scraping `tcp-checker
//! serve` with `examples/prometheus/prometheus.yml`, its addresses replaced: the `/metrics` job
//! and the blackbox-relabelled `/probe` job both scrape without error, their series carry the
//! targets' states, and the example's alerting rules evaluate on them.
//!
//! Everything runs inside a fresh network namespace with only `lo`: the service, its targets,
//! Prometheus and the test's queries. The test needs root for that, and skips visibly without it
//! or without `prometheus` (a failure under `TCP_SHAKER_NO_SKIP=1`).

use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::prometheus::{Prometheus, namespace_or_skip};
use crate::common::serve::Served;
use crate::common::{TempDir, Tool};
use crate::common::{closed_in, listener_in};

/// Debian's Prometheus server.
const PROMETHEUS: Tool = Tool {
    command: &["prometheus", "--version"],
    install: "apt-get install --no-install-recommends prometheus",
};

/// Where Prometheus serves its API inside the namespace; a fresh namespace has every port free.
const PROMETHEUS_ADDRESS: &str = "127.0.0.1:19090";

/// How long Prometheus has to start and to have scraped and evaluated everything.
const DEADLINE: Duration = Duration::from_secs(30);

/// The text of `relative` under `examples/prometheus/`.
fn example(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/prometheus")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// `text` with `from` replaced by `to`; panics unless `from` occurs exactly once, so that a
/// change to the example shows here instead of going untested.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    let found = text.matches(from).count();
    assert_eq!(
        found, 1,
        "examples/prometheus/prometheus.yml holds {from:?} {found} times, not once: \
         update tests/prometheus.rs"
    );
    text.replace(from, to)
}

/// `examples/prometheus/prometheus.yml` made to scrape the service at `service` every second,
/// probing `open` and `closed` through it instead of the example's three addresses.
fn config(service: SocketAddr, open: SocketAddr, closed: SocketAddr) -> String {
    let mut text = example("prometheus.yml");
    for (from, to) in [
        ("scrape_interval: 15s", "scrape_interval: 1s".to_owned()),
        (
            "evaluation_interval: 15s",
            "evaluation_interval: 1s".to_owned(),
        ),
        // At most the interval, as Prometheus requires.
        ("scrape_timeout: 10s", "scrape_timeout: 1s".to_owned()),
        (r#"["localhost:9476"]"#, format!(r#"["{service}"]"#)),
        (
            "replacement: localhost:9476",
            format!("replacement: {service}"),
        ),
        ("- db-primary.internal:5432", format!("- {open}")),
        ("- ingress.example.com:443", format!("- {closed}")),
    ] {
        text = replace_once(&text, from, &to);
    }
    let third = "- 10.20.0.15:6379";
    let lines = text.lines().count();
    let text: String = text
        .lines()
        .filter(|line| line.trim() != third)
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(text.lines().count(), lines - 1, "{third:?} not found once");
    text
}

/// The string label `name` of a series' labels, or "".
fn label<'a>(labels: &'a Value, name: &str) -> &'a str {
    labels[name].as_str().unwrap_or_default()
}

/// The values of the series of `expression` by their label `by`, sorted, as text for messages.
fn by_label(prometheus: &mut Prometheus, expression: &str, by: &str) -> Vec<(String, f64)> {
    let mut found: Vec<(String, f64)> = prometheus
        .query(expression)
        .into_iter()
        .map(|(labels, value)| (label(&labels, by).to_owned(), value))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// What is not yet as it should be, one line each; empty when everything is.
fn unmet(
    prometheus: &mut Prometheus,
    service: SocketAddr,
    open: &str,
    closed: &str,
) -> Vec<String> {
    let mut unmet = Vec::new();
    let mut expect = |what: &str, found: Vec<(String, f64)>, wanted: Vec<(String, f64)>| {
        if found != wanted {
            unmet.push(format!("{what}: {found:?}, not {wanted:?}"));
        }
    };
    let mut pair = [open.to_owned(), closed.to_owned()];
    pair.sort();
    let both = |value_of: &dyn Fn(&str) -> f64| -> Vec<(String, f64)> {
        pair.iter()
            .map(|target| (target.clone(), value_of(target)))
            .collect()
    };
    let state = |target: &str| f64::from(u8::from(target == open));
    let found = by_label(prometheus, r#"up{job="tcp-shaker"}"#, "instance");
    expect("up of /metrics", found, vec![(service.to_string(), 1.0)]);
    let found = by_label(prometheus, r#"up{job="tcp-shaker-probe"}"#, "instance");
    expect("up of /probe", found, both(&|_| 1.0));
    let found = by_label(
        prometheus,
        r#"tcp_shaker_target_up{job="tcp-shaker"}"#,
        "target",
    );
    expect("tcp_shaker_target_up", found, both(&state));
    let found = by_label(
        prometheus,
        r#"probe_success{job="tcp-shaker-probe"}"#,
        "instance",
    );
    expect("probe_success", found, both(&state));

    // Every scrape target healthy, with no scrape error: the Content-Type and the format of
    // both endpoints are Prometheus's to accept.
    let targets = prometheus.api("targets?state=active");
    let active = targets["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let described: Vec<String> = active
        .iter()
        .map(|target| {
            format!(
                "{}/{} {} {:?}",
                label(&target["labels"], "job"),
                label(&target["labels"], "instance"),
                target["health"],
                target["lastError"]
            )
        })
        .collect();
    let healthy = active.len() == 3
        && active
            .iter()
            .all(|target| target["health"] == "up" && target["lastError"] == "");
    if !healthy {
        unmet.push(format!("scrape targets: {described:?}"));
    }

    // The example's rules, read from alerts.yml beside the config, evaluate without error; the
    // closed target's alerts are pending (their `for` has not run out), the open one's absent.
    let rules = prometheus.api("rules");
    let rules: Vec<Value> = rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    let unhealthy: Vec<String> = rules
        .iter()
        .filter(|rule| rule["health"] != "ok")
        .map(|rule| format!("{} {} {}", rule["name"], rule["health"], rule["lastError"]))
        .collect();
    if rules.len() < 4 || !unhealthy.is_empty() {
        unmet.push(format!("{} rules, not ok: {unhealthy:?}", rules.len()));
    }
    let alerts = prometheus.api("alerts");
    let mut alerts: Vec<String> = alerts["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|alert| {
            let labels = &alert["labels"];
            format!(
                "{} target={} instance={} {}",
                label(labels, "alertname"),
                label(labels, "target"),
                label(labels, "instance"),
                alert["state"].as_str().unwrap_or_default()
            )
        })
        .collect();
    alerts.sort();
    let wanted = vec![
        format!("TcpShakerProbeFailed target= instance={closed} pending"),
        format!("TcpShakerTargetDown target={closed} instance={service} pending"),
    ];
    if alerts != wanted {
        unmet.push(format!("alerts: {alerts:?}, not {wanted:?}"));
    }
    unmet
}

#[test]
fn prometheus_scrapes_metrics_and_blackbox_probes_with_the_example_config() {
    let Some(namespace) = namespace_or_skip("shaker-prom-", &[PROMETHEUS]) else {
        return;
    };
    let (open_listener, open) = listener_in(&namespace, 0);
    let closed = closed_in(&namespace);
    let (open_text, closed_text) = (open.to_string(), closed.address.to_string());
    let served = Served::start_in(
        &namespace,
        &[
            "-i",
            "200ms",
            "--probe-allow",
            "127.0.0.0/8",
            &open_text,
            &closed_text,
        ],
    );

    let directory = TempDir::new("prometheus");
    let config_path = directory.path().join("prometheus.yml");
    std::fs::write(&config_path, config(served.address, open, closed.address)).unwrap();
    std::fs::write(directory.path().join("alerts.yml"), example("alerts.yml")).unwrap();
    let started = Instant::now();
    let mut prometheus = Prometheus::start(
        &namespace,
        &config_path,
        directory.path(),
        PROMETHEUS_ADDRESS.parse().unwrap(),
    );
    prometheus.wait_ready(DEADLINE);
    loop {
        let unmet = unmet(&mut prometheus, served.address, &open_text, &closed_text);
        if unmet.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "not within {DEADLINE:?}:\n{}\n\nPrometheus:\n{}\n\nThe service:\n{}",
            unmet.join("\n"),
            prometheus.log(),
            served.log()
        );
        thread::sleep(Duration::from_millis(250));
    }
    // The open port's listener was only ever checked half-open, by both jobs.
    open_listener.set_nonblocking(true).unwrap();
    let accepted = open_listener.accept().map(|(_, peer)| peer);
    assert!(
        matches!(&accepted, Err(error) if error.kind() == std::io::ErrorKind::WouldBlock),
        "the open port's application accepted: {accepted:?}"
    );
}
