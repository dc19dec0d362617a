//! `/probe` of `tcp-checker serve`, as Prometheus's blackbox relabelling asks it: the metrics
//! of blackbox_exporter's TCP prober, the allowlist (applied after name resolution, with no
//! bypass by IPv4-mapped IPv6, `inet_aton` numbers or names that resolve elsewhere), strictly
//! parsed targets, and the scrape timeout.
//!
//! Every service here runs inside a fresh network namespace with only `lo`, its listeners and
//! hosts file too, so that a probe let through by mistake can reach nothing. The tests need
//! root for that; without it they skip, visibly (a failure under `TCP_SHAKER_NO_SKIP=1`).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use shaker_wire::netns::Namespace;

use crate::common::prometheus::{NamespaceHosts, expect_sample, namespace_or_skip, query_encode};
use crate::common::serve::{Response, Served};
use crate::common::{NFT, assert_contains, closed_in, listener_in, skip};

/// The prefix of this module's network namespaces.
const PREFIX: &str = "shaker-probe-";

/// blackbox_exporter's `probe_ip_addr_hash` of 127.0.0.1: FNV-32a of its four bytes.
const LOOPBACK_HASH: f64 = 3_668_918_509.0;

/// What most tests here start from: a fresh network namespace of their own, with a listener on
/// 127.0.0.1 in it.
struct Scene {
    namespace: Namespace,
    listener: TcpListener,
    /// The listener's address: an open port to probe.
    open: SocketAddr,
}

impl Scene {
    /// The scene, or `None` after reporting the skip without root (see [`namespace_or_skip`]).
    fn new() -> Option<Scene> {
        let namespace = namespace_or_skip(PREFIX, &[])?;
        let (listener, open) = listener_in(&namespace, 0);
        Some(Scene {
            namespace,
            listener,
            open,
        })
    }

    /// `tcp-checker serve ARGS`, inside the scene's namespace.
    fn serve(&self, args: &[&str]) -> Served<'_> {
        Served::start_in(&self.namespace, args)
    }
}

/// `GET /probe?target=TARGET` (percent-encoded) with `headers`, and `extra` query parameters
/// (`&debug=true`) appended as written.
fn probe_with(served: &Served, target: &str, extra: &str, headers: &[(&str, &str)]) -> Response {
    let path = format!("/probe?target={}{extra}", query_encode(target));
    served.get_with(&path, headers)
}

/// `GET /probe?target=TARGET`.
fn probe(served: &Served, target: &str) -> Response {
    probe_with(served, target, "", &[])
}

/// Asserts that the probe's `answer` has `probe_success` `success` (1 or 0), showing the answer
/// if not.
fn assert_probe_success(answer: &Response, success: f64) {
    assert_eq!(
        expect_sample(answer, "probe_success"),
        success,
        "{answer:?}"
    );
}

/// Asserts that `response` is `status` with a plain-text body that contains each of `says`.
fn assert_refused(response: &Response, status: u16, says: &[&str], asked: &str) {
    assert_eq!(response.status, status, "{asked}: {response:?}");
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "{asked}: {response:?}"
    );
    for part in says {
        assert!(
            response.text().contains(part),
            "{asked}: {part:?} missing from {:?}",
            response.text()
        );
    }
}

/// Asserts that no sample line of a probe's metrics carries a label: blackbox_exporter's
/// probes have none, Prometheus adds `instance` and `job`.
fn assert_no_labels(body: &str) {
    let samples: Vec<&str> = body.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(!samples.is_empty(), "no samples in\n{body}");
    for line in samples {
        assert!(
            !line.contains('{'),
            "a labelled sample: {line:?} in\n{body}"
        );
    }
}

#[test]
fn an_allowed_open_port_succeeds_and_a_closed_one_fails_with_blackbox_metrics() {
    let Some(scene) = Scene::new() else {
        return;
    };
    let (open, closed) = (scene.open, closed_in(&scene.namespace));
    let served = scene.serve(&["--probe-allow", "127.0.0.0/8"]);

    let answer = probe(&served, &open.to_string());
    assert_probe_success(&answer, 1.0);
    assert_eq!(expect_sample(&answer, "probe_ip_protocol"), 4.0);
    assert_eq!(expect_sample(&answer, "probe_ip_addr_hash"), LOOPBACK_HASH);
    assert_eq!(expect_sample(&answer, "probe_dns_lookup_time_seconds"), 0.0);
    let duration = expect_sample(&answer, "probe_duration_seconds");
    assert!(duration > 0.0 && duration < 5.0, "{}", answer.text());
    let content_type = answer.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{answer:?}"
    );
    assert_no_labels(&answer.text());
    assert!(!answer.text().contains("target"), "{}", answer.text());

    let answer = probe(&served, &closed.address.to_string());
    assert_probe_success(&answer, 0.0);
    // The address was checked: it has a protocol and a hash.
    assert_eq!(expect_sample(&answer, "probe_ip_protocol"), 4.0);
    assert_eq!(expect_sample(&answer, "probe_ip_addr_hash"), LOOPBACK_HASH);
    assert_no_labels(&answer.text());

    let explained = probe_with(&served, &open.to_string(), "&debug=true", &[]);
    assert_eq!(explained.status, 200, "{explained:?}");
    let content_type = explained.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{explained:?}");
    assert_contains(&explained.text(), &format!("Checking {open} (allowed)"));
    assert_contains(&explained.text(), "probe_success 1");
    let explained = probe_with(&served, &closed.address.to_string(), "&debug=true", &[]);
    assert_eq!(explained.status, 200, "{explained:?}");
    assert_contains(&explained.text(), &closed.address.to_string());
    assert_contains(&explained.text(), "allowed");
    assert_contains(&explained.text(), "probe_success 0");
}

#[test]
fn probes_are_half_open_and_leave_the_application_nothing_to_accept() {
    let Some(scene) = Scene::new() else {
        return;
    };
    let served = scene.serve(&["--probe-allow", "127.0.0.0/8"]);
    for _ in 0..5 {
        let answer = probe(&served, &scene.open.to_string());
        assert_probe_success(&answer, 1.0);
    }
    // Time for a stray ACK to complete a handshake, were one sent.
    std::thread::sleep(Duration::from_millis(200));
    scene.listener.set_nonblocking(true).unwrap();
    match scene.listener.accept() {
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("the application accepted a connection from {peer}"),
        Err(error) => panic!("accept failed: {error}"),
    }
}

#[test]
fn addresses_outside_the_allowlist_are_refused_in_every_spelling() {
    let Some(scene) = Scene::new() else {
        return;
    };
    let served = scene.serve(&["--probe-allow", "127.0.0.0/8"]);
    for (target, names) in [
        ("10.0.0.1:80", "10.0.0.1:80"),
        ("169.254.169.254:80", "169.254.169.254:80"),
        ("[::ffff:10.0.0.1]:80", "10.0.0.1"),
        ("[::ffff:a00:1]:80", "10.0.0.1"),
        ("[::ffff:169.254.169.254]:80", "169.254.169.254"),
        ("0.0.0.0:80", "0.0.0.0:80"),
        ("[::1]:80", "[::1]:80"),
    ] {
        let answer = probe(&served, target);
        assert_refused(
            &answer,
            403,
            &[names, "outside the probe allowlist", "--probe-allow"],
            target,
        );
        assert!(
            !answer.text().contains("probe_success"),
            "{target}: {answer:?}"
        );
    }
    // The same service probes what its rule covers.
    let answer = probe(&served, &scene.open.to_string());
    assert_probe_success(&answer, 1.0);
}

#[test]
fn a_port_outside_the_rules_ports_is_refused() {
    let Some(namespace) = namespace_or_skip(PREFIX, &[]) else {
        return;
    };
    // Port 80 of the namespace's own loopback: free in a fresh namespace.
    let (_listener, open) = listener_in(&namespace, 80);
    let served = Served::start_in(&namespace, &["--probe-allow", "127.0.0.1:80"]);
    let answer = probe(&served, &open.to_string());
    assert_probe_success(&answer, 1.0);
    for (target, says) in [
        ("127.0.0.1:81", "127.0.0.1:81"),
        ("127.0.0.2:80", "127.0.0.2:80"),
    ] {
        let answer = probe(&served, target);
        assert_refused(&answer, 403, &[says, "outside the probe allowlist"], target);
    }
}

#[test]
fn names_are_judged_by_the_addresses_they_resolve_to() {
    let Some(scene) = Scene::new() else {
        return;
    };
    // Before the service starts: `ip netns exec` mounts it over /etc/hosts as it starts.
    let _hosts = NamespaceHosts::write(
        &scene.namespace,
        "127.0.0.1 localhost good.test\n10.0.0.1 rebind.test\n169.254.169.254 meta.test\n",
    );
    let (open, served) = (scene.open, scene.serve(&["--probe-allow", "127.0.0.0/8"]));
    let port = open.port();

    let good = format!("good.test:{port}");
    let answer = probe(&served, &good);
    assert_probe_success(&answer, 1.0);
    assert_eq!(expect_sample(&answer, "probe_ip_protocol"), 4.0);
    assert_eq!(expect_sample(&answer, "probe_ip_addr_hash"), LOOPBACK_HASH);
    let lookup = expect_sample(&answer, "probe_dns_lookup_time_seconds");
    assert!(lookup > 0.0 && lookup < 5.0, "{}", answer.text());
    let explained = probe_with(&served, &good, "&debug=true", &[]);
    assert_contains(&explained.text(), "Resolved to");
    assert_contains(&explained.text(), &format!("Checking {open} (allowed)"));

    for (target, says) in [
        ("rebind.test:80".to_owned(), "10.0.0.1:80"),
        (format!("rebind.test:{port}"), "10.0.0.1"),
        ("meta.test:80".to_owned(), "169.254.169.254:80"),
    ] {
        let answer = probe(&served, &target);
        assert_refused(
            &answer,
            403,
            &[says, "outside the probe allowlist"],
            &target,
        );
    }

    // A name that does not resolve is a failed probe, not a refused one.
    let timeout = [("X-Prometheus-Scrape-Timeout-Seconds", "2")];
    let answer = probe_with(&served, "nowhere.test:80", "", &timeout);
    assert_probe_success(&answer, 0.0);
    assert_eq!(expect_sample(&answer, "probe_ip_protocol"), 0.0);
    assert!(
        !answer.text().contains("probe_ip_addr_hash"),
        "{}",
        answer.text()
    );
}

#[test]
fn a_name_of_both_families_is_probed_over_ipv6_as_blackbox_prefers() {
    let Some(namespace) = namespace_or_skip(PREFIX, &[]) else {
        return;
    };
    let Ok(Ok(listener)) = namespace.run(|| TcpListener::bind("[::1]:0")) else {
        skip("no IPv6 loopback in the namespace");
        return;
    };
    let open = listener.local_addr().unwrap();
    let _hosts = NamespaceHosts::write(&namespace, "127.0.0.1 dual.test\n::1 dual.test\n");
    let served = Served::start_in(
        &namespace,
        &["--probe-allow", "127.0.0.0/8", "--probe-allow", "::1"],
    );
    let answer = probe(&served, &format!("dual.test:{}", open.port()));
    assert_probe_success(&answer, 1.0);
    assert_eq!(expect_sample(&answer, "probe_ip_protocol"), 6.0);
    let answer = probe(&served, &open.to_string());
    assert_probe_success(&answer, 1.0);
    assert_eq!(expect_sample(&answer, "probe_ip_protocol"), 6.0);
    // Every address of the name must be allowed, not only the one checked.
    let served = Served::start_in(&namespace, &["--probe-allow", "::1"]);
    let answer = probe(&served, &format!("dual.test:{}", open.port()));
    assert_refused(
        &answer,
        403,
        &["127.0.0.1", "outside the probe allowlist"],
        "dual.test",
    );
}

#[test]
fn malformed_targets_are_bad_requests_even_when_everything_is_allowed() {
    let Some(namespace) = namespace_or_skip(PREFIX, &[]) else {
        return;
    };
    // Everything allowed, so that a 400 can only come from the parsing (and the namespace has
    // nothing but `lo` to reach).
    let served = Served::start_in(
        &namespace,
        &["--probe-allow", "0.0.0.0/0", "--probe-allow", "::/0"],
    );
    let long = format!("{}:80", "a".repeat(5 * 1024));
    for (target, says) in [
        ("167772161:80", "IPv4 number"),
        ("0x0a000001:80", "IPv4 number"),
        ("0x0a.0.0.1:80", "IPv4 number"),
        ("012.0.0.1:80", "IPv4 number"),
        ("10.1:80", "IPv4 number"),
        ("127.0.0.1", "port is missing"),
        ("127.0.0.1:", "port is missing"),
        ("127.0.0.1:0", "1 to 65535"),
        ("127.0.0.1:65536", "1 to 65535"),
        ("http://x:80", "no scheme"),
        ("a@b:80", "no scheme"),
        ("::1:80", "in brackets"),
        ("[::1]", "port must follow"),
        ("127.0.0.1:80 ", "space"),
        (long.as_str(), "longer than"),
    ] {
        let answer = probe(&served, target);
        assert_refused(&answer, 400, &[says], target);
    }
    for path in ["/probe", "/probe?target=", "/probe?module=tcp_connect"] {
        let answer = served.get(path);
        assert_refused(&answer, 400, &["target parameter is missing"], path);
    }
    let path = "/probe?target=127.0.0.1:80&target=127.0.0.1:81";
    assert_refused(&served.get(path), 400, &["once"], path);
    let path = "/probe?target=127.0.0.1:80&module=nonesuch";
    assert_refused(
        &served.get(path),
        400,
        &["unknown module", "tcp_connect"],
        path,
    );
}

#[test]
fn without_probe_allow_every_probe_is_refused() {
    let Some(scene) = Scene::new() else {
        return;
    };
    let (open, served) = (scene.open, scene.serve(&[]));
    let port = open.port();
    for target in [
        open.to_string(),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
    ] {
        let answer = probe(&served, &target);
        assert_refused(&answer, 403, &["--probe-allow"], &target);
        let explained = probe_with(&served, &target, "&debug=true", &[]);
        assert_refused(&explained, 403, &["--probe-allow"], &target);
    }
}

#[test]
fn the_scrape_timeout_header_less_the_offset_is_the_probes_timeout() {
    let Some(scene) = Scene::new() else {
        return;
    };
    let served = scene.serve(&["--probe-allow", "127.0.0.0/8"]);
    let target = scene.open.to_string();
    const HEADER: &str = "X-Prometheus-Scrape-Timeout-Seconds";
    for (header, timeout) in [
        (Some("3"), 2.5),
        (Some(" 1.5 "), 1.0),
        // Capped by the module's timeout (5 s by default), and 120 s without the header.
        (Some("10"), 5.0),
        (None, 5.0),
    ] {
        let headers: Vec<(&str, &str)> = header.map(|value| (HEADER, value)).into_iter().collect();
        let answer = probe_with(&served, &target, "", &headers);
        let found = expect_sample(&answer, "probe_timeout_seconds");
        assert!(
            (found - timeout).abs() < 1e-9,
            "{header:?}: {}",
            answer.text()
        );
        assert_eq!(expect_sample(&answer, "probe_success"), 1.0, "{header:?}");
    }
    for garbage in ["soon", "", "-1", "NaN", "inf", "1e400", "3s"] {
        let answer = probe_with(&served, &target, "", &[(HEADER, garbage)]);
        assert_refused(&answer, 400, &[HEADER], garbage);
    }
    // Nothing left once the offset is taken.
    let answer = probe_with(&served, &target, "", &[(HEADER, "0.5")]);
    assert_refused(&answer, 400, &["offset"], "0.5");
}

#[test]
fn a_module_timeout_of_zero_leaves_the_scrapers_timeout_uncapped() {
    let Some(scene) = Scene::new() else {
        return;
    };
    let config = crate::common::TempFile::new(
        "probe-zero-module-timeout.toml",
        "[probe]\nallow = [\"127.0.0.0/8\"]\ntimeout_offset = \"250ms\"\n\n\
         [probe.modules.tcp_connect]\ntimeout = \"0s\"\n",
    );
    let served = scene.serve(&["--config", config.path().to_str().unwrap()]);
    let headers = [("X-Prometheus-Scrape-Timeout-Seconds", "30")];
    let answer = probe_with(&served, &scene.open.to_string(), "", &headers);
    assert_eq!(expect_sample(&answer, "probe_timeout_seconds"), 29.75);
    assert_probe_success(&answer, 1.0);
}

#[test]
fn a_silent_target_fails_when_its_timeout_runs_out() {
    let Some(namespace) = namespace_or_skip(PREFIX, &[NFT]) else {
        return;
    };
    // A listener, so that only the rule makes the port silent rather than closed.
    let (_listener, silent) = listener_in(&namespace, 0);
    let port = silent.port().to_string();
    let rules = format!(
        "table inet silence {{\n  chain input {{\n    type filter hook input priority 0;\n    \
         tcp dport {port} drop\n  }}\n}}\n"
    );
    namespace
        .exec(&["nft", "-f", "-"], Some(&rules))
        .expect("dropping the port's packets inside the namespace");
    let served = Served::start_in(&namespace, &["--probe-allow", "127.0.0.0/8"]);
    let started = Instant::now();
    let headers = [("X-Prometheus-Scrape-Timeout-Seconds", "1.5")];
    let answer = probe_with(&served, &silent.to_string(), "", &headers);
    let took = started.elapsed();
    assert_probe_success(&answer, 0.0);
    assert_eq!(expect_sample(&answer, "probe_timeout_seconds"), 1.0);
    let duration = expect_sample(&answer, "probe_duration_seconds");
    assert!((0.5..5.0).contains(&duration), "{}", answer.text());
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "answered after {took:?}"
    );
    let explained = probe_with(&served, &silent.to_string(), "&debug=true", &headers);
    assert_contains(&explained.text(), "allowed");
    assert_contains(&explained.text(), "probe_success 0");
}
