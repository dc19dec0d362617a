//! Name resolution never starves: a slow or dead DNS server delays only the names it serves,
//! lookups of one name in flight are shared, a check waiting for a resolver thread is the
//! checker's wait (not the target's time), and the time spent resolving is reported.
//!
//! Most tests inject a resolver (a closure that sleeps, counts or blocks). One runs the system
//! resolver against a DNS server that never answers: it makes a network namespace whose
//! `/etc/netns/NAME/resolv.conf` names a UDP socket inside the namespace that reads queries
//! and never answers. `ip netns exec` mounts that file over `/etc/resolv.conf` for the command
//! it runs, so the checker runs in a child process (this binary again, `dns_child` selected)
//! launched through `ip netns exec`. Needs root and `ip`; without them it reports a skip.

use crate::common;
use crate::common::child;
use crate::common::netns;
use shaker_wire::skip::skip;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tcp_shaker::{CheckError, CheckOptions, Checker, ErrorKind, Outcome, Phase, Report};

const LOCALHOST_V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The timeout of the checks of slow names: they use it all up resolving.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How late a check of a healthy target may come back beside slow names. Generous: it takes
/// microseconds; the slow names take the whole [`TIMEOUT`].
const ON_TIME: Duration = Duration::from_secs(1);
/// How many slow names at once: more than the old four resolver threads, well under the cap.
const SLOW_NAMES: usize = 12;

/// Whether `result` is a check of a name that used its whole timeout resolving: timed out in
/// the resolve phase, without an address, its resolve time the whole timeout; or a resolve error
/// (a resolver that gave up first). `Err` says what is wrong.
fn timed_out_resolving(what: &str, result: &Result<Report, CheckError>) -> Result<(), String> {
    let report = match result {
        Err(error) if error.kind() == ErrorKind::Resolve => return Ok(()),
        Err(error) => return Err(format!("{what}: {error}")),
        Ok(report) => report,
    };
    if report.outcome() != Outcome::TimedOut
        || report.phase() != Phase::Resolve
        || report.address().is_some()
    {
        return Err(format!(
            "{what}: expected a timeout in the resolve phase without an address: {report:?}"
        ));
    }
    let Some(resolving) = report.resolve_time() else {
        return Err(format!("{what}: no resolve time reported: {report:?}"));
    };
    if resolving < TIMEOUT.mul_f64(0.9) || resolving > TIMEOUT + common::SCHEDULING_MARGIN {
        return Err(format!(
            "{what}: timed out resolving after a resolve time of {resolving:?}, timeout \
             {TIMEOUT:?}: {report:?}"
        ));
    }
    Ok(())
}

/// Whether `result` is an open report that came back within [`ON_TIME`]; `Err` says what is
/// wrong.
fn open_on_time(
    what: &str,
    result: &Result<Report, CheckError>,
    arrived: Duration,
) -> Result<(), String> {
    match result {
        Err(error) => Err(format!("{what} beside {SLOW_NAMES} slow names: {error}")),
        Ok(report) if !report.is_open() => Err(format!(
            "{what} beside {SLOW_NAMES} slow names was not open after {arrived:?}: {report:?}"
        )),
        Ok(_) if arrived > ON_TIME => Err(format!(
            "{what} beside {SLOW_NAMES} slow names came back after {arrived:?}, not within \
             {ON_TIME:?}"
        )),
        Ok(_) => Ok(()),
    }
}

/// With an injected resolver that takes 5 s for `slow*` names, twelve of them and a fast name
/// submitted at once (the slow ones first), with the default resolver threads: the fast name
/// is open on time, the slow ones time out resolving.
#[test]
fn a_slow_name_delays_only_itself() {
    let listener = common::open_listener();
    let port = listener.local_addr().unwrap().port();
    let checker = Checker::builder()
        .resolver(|host: &str| {
            if host.starts_with("slow") {
                thread::sleep(Duration::from_secs(5));
            }
            Ok(vec![LOCALHOST_V4])
        })
        .spawn()
        .unwrap();

    let started = Instant::now();
    let mut batch = checker.batch();
    for n in 1..=SLOW_NAMES {
        batch
            .submit(n as u64, (format!("slow{n}.test").as_str(), port), TIMEOUT)
            .unwrap();
    }
    batch.submit(0, ("fast.test", port), TIMEOUT).unwrap();
    let mut results: Vec<_> = (&mut batch)
        .map(|completion| (completion.tag, completion.result, started.elapsed()))
        .collect();
    results.sort_by_key(|(tag, ..)| *tag);
    // The healthy name first: it is what the checker must not starve.
    let (_, fast, arrived) = &results[0];
    open_on_time("fast.test", fast, *arrived).unwrap_or_else(|why| panic!("{why}"));
    let mut slow = 0;
    for (tag, result, _) in &results[1..] {
        slow += 1;
        timed_out_resolving(&format!("slow{tag}.test"), result)
            .unwrap_or_else(|why| panic!("{why}"));
    }
    assert_eq!(slow, SLOW_NAMES);
    assert_eq!(common::accept_all(&listener), 0);
}

/// Fifty checks of one name at once share one lookup.
#[test]
fn lookups_of_one_name_in_flight_are_shared() {
    const CHECKS: u64 = 50;
    const LOOKUP: Duration = Duration::from_millis(300);
    let listener = common::open_listener();
    let port = listener.local_addr().unwrap().port();
    let lookups = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&lookups);
    let checker = Checker::builder()
        .resolver(move |_: &str| {
            counted.fetch_add(1, Ordering::SeqCst);
            thread::sleep(LOOKUP);
            Ok(vec![LOCALHOST_V4])
        })
        .spawn()
        .unwrap();

    let mut batch = checker.batch();
    for tag in 0..CHECKS {
        batch
            .submit(tag, ("shared.test", port), Duration::from_secs(5))
            .unwrap();
    }
    let reports: Vec<Report> = batch.map(|completion| completion.result.unwrap()).collect();
    let made = lookups.load(Ordering::SeqCst);
    assert_eq!(reports.len() as u64, CHECKS);
    assert!(
        reports.iter().all(Report::is_open),
        "not every check of an open port was open: {reports:?}"
    );
    assert!(
        made <= 2,
        "{CHECKS} checks of one name submitted at once made {made} lookups, not one"
    );
    for report in &reports {
        let resolving = report
            .resolve_time()
            .unwrap_or_else(|| panic!("a check of a name reported no resolve time: {report:?}"));
        assert!(
            resolving >= LOOKUP.mul_f64(0.9) && resolving <= LOOKUP + common::SCHEDULING_MARGIN,
            "resolve time {resolving:?} for a lookup of {LOOKUP:?}: {report:?}"
        );
    }
}

/// A resolver that blocks on names starting with `block` until released, and answers others
/// with 127.0.0.1 at once.
#[derive(Default)]
struct Gate {
    state: Arc<(Mutex<bool>, Condvar)>,
}

impl Gate {
    fn resolver(&self) -> impl Fn(&str) -> io::Result<Vec<IpAddr>> + Send + Sync + 'static {
        let state = Arc::clone(&self.state);
        move |host: &str| {
            if host.starts_with("block") {
                let (open, changed) = &*state;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = changed.wait(open).unwrap();
                }
            }
            Ok(vec![LOCALHOST_V4])
        }
    }

    fn open(&self) {
        let (open, changed) = &*self.state;
        *open.lock().unwrap() = true;
        changed.notify_all();
    }
}

impl Drop for Gate {
    /// Releases the blocked lookups, also when a test fails half-way.
    fn drop(&mut self) {
        let (open, changed) = &*self.state;
        *open.lock().unwrap_or_else(|poison| poison.into_inner()) = true;
        changed.notify_all();
    }
}

/// When every resolver thread is busy, a further name fails with `NotStarted` within its
/// `start_within` (not at its timeout), saying which setting to raise; once a thread is free,
/// names resolve again.
#[test]
fn saturated_resolver_threads_give_not_started_naming_them() {
    const START_WITHIN: Duration = Duration::from_millis(300);
    let listener = common::open_listener();
    let port = listener.local_addr().unwrap().port();
    let gate = Gate::default();
    let checker = Checker::builder()
        .resolver(gate.resolver())
        .resolver_threads(2)
        .spawn()
        .unwrap();

    let mut blocked = checker.batch();
    for (tag, name) in [(1, "block1.test"), (2, "block2.test")] {
        blocked
            .submit(tag, (name, port), Duration::from_secs(30))
            .unwrap();
    }
    blocked.flush();
    thread::sleep(Duration::from_millis(100)); // both threads now hold a lookup

    let options = CheckOptions::new(Duration::from_secs(10)).start_within(START_WITHIN);
    let (error, took) = common::failing_check(
        &checker,
        ("fast.test", port),
        options,
        &format!("with every resolver thread busy, a check with start_within {START_WITHIN:?}"),
    );
    common::assert_not_started(&error, &format!("fast.test:{port}"), took, START_WITHIN);
    assert!(
        error.to_string().contains("resolver threads"),
        "the error does not name the resolver threads: {error}"
    );

    gate.open();
    let report = checker
        .check(("fast.test", port), Duration::from_secs(5))
        .unwrap();
    assert!(report.is_open(), "{report:?}");
    for completion in blocked {
        assert!(completion.result.unwrap().is_open());
    }
}

/// With one resolver thread and room to start, names wait for the thread in turn; the wait is
/// not counted against them: each resolves, is open, and reports only its own lookup's time.
#[test]
fn waiting_for_a_resolver_thread_is_not_the_targets_time() {
    const LOOKUP: Duration = Duration::from_millis(400);
    const NAMES: u64 = 3;
    let listener = common::open_listener();
    let port = listener.local_addr().unwrap().port();
    let checker = Checker::builder()
        .resolver(|_: &str| {
            thread::sleep(LOOKUP);
            Ok(vec![LOCALHOST_V4])
        })
        .resolver_threads(1)
        .spawn()
        .unwrap();
    // Each name alone fits its timeout; all three one after the other do not.
    let timeout = LOOKUP * 2;
    let options = CheckOptions::new(timeout).start_within(Duration::from_secs(30));

    let started = Instant::now();
    let mut batch = checker.batch();
    for tag in 0..NAMES {
        batch
            .submit(tag, (format!("name{tag}.test").as_str(), port), options)
            .unwrap();
    }
    let mut results: Vec<_> = batch
        .map(|completion| (format!("name{}.test", completion.tag), completion.result))
        .collect();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, result) in &results {
        let report = result
            .as_ref()
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert!(
            report.is_open(),
            "{name} waited for the only resolver thread, then: {report:?} (timeout {timeout:?})"
        );
    }
    for (name, result) in &results {
        let report = result.as_ref().unwrap();
        let resolving = report
            .resolve_time()
            .unwrap_or_else(|| panic!("{name}: no resolve time reported: {report:?}"));
        assert!(
            resolving < LOOKUP + LOOKUP / 2,
            "{name}: the resolve time {resolving:?} counts the wait for a thread \
             (a lookup takes {LOOKUP:?})"
        );
    }
    assert!(
        started.elapsed() >= LOOKUP * NAMES as u32,
        "one resolver thread made {NAMES} lookups of {LOOKUP:?} in {:?}",
        started.elapsed()
    );
}

/// An IP target reports no resolve time; a name reports its lookup's, within the elapsed time.
#[test]
fn the_resolve_time_is_reported_for_names_only() {
    const LOOKUP: Duration = Duration::from_millis(200);
    let (_listener, address) = common::open_port();
    let checker = checker_resolving_slowly(LOOKUP);

    let report = checker.check(address, Duration::from_secs(5)).unwrap();
    assert!(report.is_open());
    assert_eq!(report.resolve_time(), None, "{report:?}");

    let report = checker
        .check(("named.test", address.port()), Duration::from_secs(5))
        .unwrap();
    assert!(report.is_open(), "{report:?}");
    assert_eq!(report.phase(), Phase::Connect);
    let resolving = report
        .resolve_time()
        .unwrap_or_else(|| panic!("a check of a name reported no resolve time: {report:?}"));
    assert!(
        resolving >= LOOKUP && resolving <= LOOKUP + common::SCHEDULING_MARGIN,
        "resolve time {resolving:?} for a lookup of {LOOKUP:?}"
    );
    assert!(
        resolving <= report.elapsed(),
        "the resolve time is longer than the whole check: {report:?}"
    );
}

/// One timeout covers resolving and connecting: a name that takes 300 ms to resolve, to a
/// silent port, times out at the timeout (not 300 ms after it), in the connect phase.
#[test]
fn resolving_and_connecting_share_one_timeout() {
    const LOOKUP: Duration = Duration::from_millis(300);
    const TIMEOUT: Duration = Duration::from_secs(1);
    let silent = common::SilentListener::new();
    let checker = checker_resolving_slowly(LOOKUP);
    let started = Instant::now();
    let report = checker
        .check(("silent.test", silent.address.port()), TIMEOUT)
        .unwrap();
    let took = started.elapsed();
    assert_eq!(report.outcome(), Outcome::TimedOut, "{report:?}");
    assert_eq!(report.phase(), Phase::Connect, "{report:?}");
    assert_eq!(report.address(), Some(silent.address), "{report:?}");
    let resolving = report.resolve_time().unwrap_or_else(|| {
        panic!("a check of a name reported no resolve time: {report:?}");
    });
    assert!(
        resolving >= LOOKUP && resolving <= LOOKUP + common::SCHEDULING_MARGIN,
        "resolve time {resolving:?} for a lookup of {LOOKUP:?}"
    );
    assert!(
        took >= TIMEOUT && took <= TIMEOUT + common::SCHEDULING_MARGIN,
        "a check with a timeout of {TIMEOUT:?} took {took:?}"
    );
}

// ---- The system resolver against a DNS server that never answers ----

/// Set in the child's environment: run the scenario.
const CHILD: &str = "TCP_SHAKER_DNS_CHILD";
/// Printed by the child before each result.
const RESULT: &str = "RESULT ";
/// Printed by the child at the end of the scenario, to prove it ran.
const MARKER: &str = "dead-dns scenario completed";

/// `/etc/netns/NAME/resolv.conf`, for as long as this guard lives (removed on drop, also when
/// a test fails), and the directories it needed.
struct NetnsResolvConf {
    made: Vec<PathBuf>,
    file: PathBuf,
}

impl NetnsResolvConf {
    fn write(namespace: &str, contents: &str) -> NetnsResolvConf {
        let mut made = Vec::new();
        let top = Path::new("/etc/netns");
        let dir = top.join(namespace);
        for dir in [top, dir.as_path()] {
            if !dir.exists() {
                std::fs::create_dir(dir).unwrap();
                made.push(dir.to_owned());
            }
        }
        let guard = NetnsResolvConf {
            made,
            file: dir.join("resolv.conf"),
        };
        std::fs::write(&guard.file, contents).unwrap();
        guard
    }
}

impl Drop for NetnsResolvConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        for dir in self.made.iter().rev() {
            // Only if empty: another namespace's files stay.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// A UDP socket on 127.0.0.1:53 inside a namespace that reads DNS queries and never answers;
/// stopped and joined on drop.
struct DeadDnsServer {
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DeadDnsServer {
    fn start(namespace: &netns::NetNs) -> DeadDnsServer {
        let socket = namespace.run(|| UdpSocket::bind("127.0.0.1:53").unwrap());
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (queries, stop) = (Arc::clone(&queries), Arc::clone(&stop));
            thread::spawn(move || {
                let mut buffer = [0; 1500];
                while !stop.load(Ordering::SeqCst) {
                    if socket.recv_from(&mut buffer).is_ok() {
                        queries.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        };
        DeadDnsServer {
            queries,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DeadDnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether `localhost` is in /etc/hosts, so that looking it up never asks a DNS server.
fn localhost_in_etc_hosts() -> bool {
    std::fs::read_to_string("/etc/hosts")
        .unwrap_or_default()
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .any(|line| {
            let mut words = line.split_whitespace();
            words.next() == Some("127.0.0.1") && words.any(|name| name == "localhost")
        })
}

/// The reproduction: twelve names whose DNS server never answers, beside `localhost`
/// (in /etc/hosts) and an IP address, all open ports: the healthy two are open on time; the
/// twelve time out resolving, saying so.
#[test]
fn a_dead_dns_server_delays_only_its_names() {
    if let Some(reason) = netns::lookups_escape_namespaces() {
        skip(&reason);
        return;
    }
    if !localhost_in_etc_hosts() {
        skip("/etc/hosts has no `127.0.0.1 localhost` line");
        return;
    }
    let Some(namespace) = netns::NetNs::for_test(&["ip"]) else {
        return;
    };
    let _resolv_conf = NetnsResolvConf::write(
        namespace.name(),
        "nameserver 127.0.0.1\noptions timeout:5 attempts:2\n",
    );
    let server = DeadDnsServer::start(&namespace);

    let command = child::scenario_through(
        &["ip", "netns", "exec", namespace.name()],
        "dns::dns_child",
        CHILD,
    );
    // The scenario takes the checks' timeout, then the child exits.
    let finished = child::run_passed(command, MARKER);

    let verdicts: Vec<(&str, &str)> = finished
        .lines_after(RESULT)
        .map(|line| line.split_once(' ').unwrap())
        .collect();
    assert_eq!(
        verdicts.len(),
        SLOW_NAMES + 2,
        "child stdout:\n{}\nstderr:\n{}",
        finished.stdout,
        finished.stderr
    );
    // The healthy targets first: they are what the checker must not starve.
    let (healthy, slow): (Vec<_>, Vec<_>) = verdicts
        .iter()
        .partition(|(target, _)| !target.starts_with("slow"));
    for (target, verdict) in healthy.iter().chain(&slow) {
        assert_eq!(
            *verdict, "ok",
            "{target}: {verdict}\nchild stdout:\n{}",
            finished.stdout
        );
    }
    let queries = server.queries.load(Ordering::SeqCst);
    assert!(
        queries > 0,
        "the slow names never reached the dead DNS server: the scenario did not test it"
    );
    eprintln!("the dead DNS server read {queries} queries");
}

/// The scenario, run only in the child process inside the namespace (see the module
/// documentation). Each result is checked here, and printed as `RESULT <target> ok`, or with
/// the failure, for the parent.
#[test]
fn dns_child() {
    if !child::is_child(CHILD) {
        return;
    }
    let listener = common::open_listener();
    let port = listener.local_addr().unwrap().port();
    let checker = Checker::new().unwrap();

    let mut targets: Vec<String> = (1..=SLOW_NAMES)
        .map(|n| format!("slow{n}.example:{port}"))
        .collect();
    targets.push(format!("localhost:{port}"));
    targets.push(SocketAddr::from((LOCALHOST_V4, port)).to_string());
    // The harness printed "test dns_child ... " without a line end.
    println!();
    let started = Instant::now();
    let mut batch = checker.batch();
    for (tag, target) in targets.iter().enumerate() {
        batch.submit(tag as u64, target.as_str(), TIMEOUT).unwrap();
    }
    for completion in batch {
        let arrived = started.elapsed();
        let target = &targets[completion.tag as usize];
        let result = &completion.result;
        let verdict = if target.starts_with("slow") {
            timed_out_resolving(target, result)
        } else {
            open_on_time(target, result, arrived)
        };
        match verdict {
            Ok(()) => println!("{RESULT}{target} ok"),
            Err(why) => println!("{RESULT}{target} FAILED after {arrived:?}: {why}"),
        }
        println!("  {target}: {result:?} after {arrived:?}");
    }
    // The parent reads each result's verdict.
    println!("{MARKER}");
}

/// A checker whose resolver answers 127.0.0.1 for every name, after `lookup`.
fn checker_resolving_slowly(lookup: Duration) -> Checker {
    Checker::builder()
        .resolver(move |_: &str| {
            thread::sleep(lookup);
            Ok(vec![LOCALHOST_V4])
        })
        .spawn()
        .unwrap()
}
