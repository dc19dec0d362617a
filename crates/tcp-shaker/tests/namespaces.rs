//! Outcomes that need a network of their own: unreachable and prohibited routes, firewalls that
//! reject or drop, a resolver with no way out.
//!
//! Each test makes a network namespace whose only interface is its own `lo`
//! (`common/netns.rs`), sets up routes or nftables rules inside it, and checks with a checker
//! whose event loop runs inside it. Documentation addresses (192.0.2.0/24, 198.51.100.0/24,
//! 2001:db8::/32) appear only there, where nothing can leave. Needs root, `ip` (iproute2) and,
//! for the firewall rules, `nft` (nftables); without them each test reports a skip.
//!
//! Before each check of the library, the test asks the kernel directly how it answers a
//! non-blocking `connect()` to the same address, so that it is known (and asserted) which path
//! of the event loop the outcome took: `connect()` failing at once, or `SO_ERROR` after the
//! socket became ready.

use crate::common;
use crate::common::netns;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use tcp_shaker::{Checker, ErrorKind, Outcome, Report};

use crate::common::netns::NetNs;
use shaker_wire::skip::skip;

/// Long enough that an outcome before it is the network's answer, not the deadline's.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The deadline of the checks that are meant to time out.
const DROP_TIMEOUT: Duration = Duration::from_secs(1);

/// How the kernel answers a non-blocking `connect()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KernelAnswer {
    /// `connect()` itself failed with this errno.
    AtOnce(i32),
    /// `connect()` said `EINPROGRESS`; then the socket became ready with this errno in
    /// `SO_ERROR` (0: connected).
    Later(i32),
    /// `connect()` said `EINPROGRESS`, and nothing happened within the wait.
    Silence,
}

impl fmt::Display for KernelAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            KernelAnswer::AtOnce(errno) => {
                write!(f, "connect() failed at once with {}", name(errno))
            }
            KernelAnswer::Later(errno) => write!(f, "SO_ERROR {} after EINPROGRESS", name(errno)),
            KernelAnswer::Silence => f.write_str("no answer after EINPROGRESS"),
        }
    }
}

fn name(errno: i32) -> String {
    let name = match errno {
        0 => "0 (connected)",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => return format!("errno {errno}"),
    };
    name.to_owned()
}

/// Asks the kernel, on the calling thread (so in its namespace), how it answers a connect to
/// `address`, waiting up to `wait` for a socket that is in progress.
fn kernel_answer(address: SocketAddr, wait: Duration) -> KernelAnswer {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM.nonblocking(),
        None,
    )
    .unwrap();
    match socket.connect(&address.into()) {
        Ok(()) => return KernelAnswer::AtOnce(0),
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(error) => return KernelAnswer::AtOnce(error.raw_os_error().unwrap()),
    }
    let mut poll = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    let millis = libc::c_int::try_from(wait.as_millis()).unwrap();
    // SAFETY: one pollfd that lives across the call, for a descriptor `socket` keeps open.
    let ready = unsafe { libc::poll(&mut poll, 1, millis) };
    assert!(ready >= 0, "poll: {}", io::Error::last_os_error());
    if ready == 0 {
        return KernelAnswer::Silence;
    }
    match socket.take_error().unwrap() {
        None => KernelAnswer::Later(0),
        Some(error) => KernelAnswer::Later(error.raw_os_error().unwrap()),
    }
}

/// Packets counted by the `counter` statements of table `inet tcpshaker`.
fn rule_hits(namespace: &NetNs) -> u64 {
    let table = namespace.exec(&["nft", "list", "table", "inet", "tcpshaker"]);
    let mut words = table.split_whitespace();
    let mut hits = 0;
    while let Some(word) = words.next() {
        if word == "packets" {
            hits += words.next().and_then(|n| n.parse::<u64>().ok()).unwrap();
        }
    }
    hits
}

/// Checks `target` with `timeout` through the namespace's rule, and asserts that the check's SYN
/// met it; returns the report and how long the check took.
fn check_through_the_rule(
    namespace: &NetNs,
    checker: &Checker,
    target: SocketAddr,
    timeout: Duration,
) -> (Report, Duration) {
    let hits = rule_hits(namespace);
    let started = Instant::now();
    let report = checker
        .check(target, timeout)
        .unwrap_or_else(|error| panic!("{target}: {error}"));
    let waited = started.elapsed();
    assert!(
        rule_hits(namespace) > hits,
        "the check's SYN never met the rule"
    );
    (report, waited)
}

/// An nftables table with one rule, on hook `hook`, for TCP to `target`.
fn ruleset(hook: &str, target: SocketAddr, verdict: &str) -> String {
    let daddr = match target {
        SocketAddr::V4(v4) => format!("ip daddr {}", v4.ip()),
        SocketAddr::V6(v6) => format!("ip6 daddr {}", v6.ip()),
    };
    format!(
        "table inet tcpshaker {{\n\
         \tchain {hook} {{\n\
         \t\ttype filter hook {hook} priority 0; policy accept;\n\
         \t\t{daddr} tcp dport {port} counter {verdict}\n\
         \t}}\n\
         }}\n",
        port = target.port(),
    )
}

/// Asserts that the kernel refuses a connect to `target` at once with `errno`, and that the
/// checker reports it as unreachable.
fn assert_unreachable_at_once(namespace: &NetNs, target: &str, errno: i32) {
    let target: SocketAddr = target.parse().unwrap();
    let answer = namespace.run(|| kernel_answer(target, TIMEOUT));
    assert_eq!(
        answer,
        KernelAnswer::AtOnce(errno),
        "{target}: the kernel's answer was \"{answer}\", this test expects \"{}\"",
        KernelAnswer::AtOnce(errno)
    );
    eprintln!("{target}: {answer}");

    let checker = namespace.checker();
    let report = checker
        .check(target, TIMEOUT)
        .unwrap_or_else(|error| panic!("{target}: {error}"));
    assert_eq!(
        report.outcome(),
        Outcome::Unreachable,
        "{target}: {report:?}"
    );
    assert_eq!(report.address(), Some(target));
}

/// With a route of type `route` (`unreachable`, `prohibit`) to a documentation range, for IPv4
/// and IPv6, `connect()` fails at once with `errno` and a check of an address there is
/// unreachable.
fn assert_route_is_unreachable(route: &str, errno: i32) {
    let Some(namespace) = NetNs::for_test(&["ip"]) else {
        return;
    };
    namespace.exec(&["ip", "route", "add", route, "198.51.100.0/24"]);
    namespace.exec(&["ip", "-6", "route", "add", route, "2001:db8:51::/48"]);
    assert_unreachable_at_once(&namespace, "198.51.100.1:80", errno);
    assert_unreachable_at_once(&namespace, "[2001:db8:51::1]:80", errno);
}

#[test]
fn an_unreachable_or_prohibit_route_is_unreachable() {
    for (route, errno) in [
        ("unreachable", libc::EHOSTUNREACH),
        ("prohibit", libc::EACCES),
    ] {
        assert_route_is_unreachable(route, errno);
    }
}

/// Without any route (the namespace has only `lo`), the kernel says "network unreachable".
#[test]
fn no_route_is_unreachable() {
    let Some(namespace) = NetNs::for_test(&["ip"]) else {
        return;
    };
    assert_unreachable_at_once(&namespace, "192.0.2.1:80", libc::ENETUNREACH);
    assert_unreachable_at_once(&namespace, "[2001:db8:2::1]:80", libc::ENETUNREACH);
}

/// A listener inside the namespace that a rule on the output path rejects with an ICMP error.
/// The error comes back as a packet after `connect()` has returned `EINPROGRESS`: the checker
/// learns of it from `SO_ERROR` once the socket is ready.
fn assert_rejection_is_unreachable(v6: bool, reject: &str, errno: i32) {
    let Some(namespace) = NetNs::for_test(&["ip", "nft"]) else {
        return;
    };
    let listener = namespace.run(if v6 {
        common::open_listener_v6
    } else {
        common::open_listener
    });
    let target = listener.local_addr().unwrap();
    let checker = namespace.checker();

    // Control: without the rule, the listener answers.
    let report = checker.check(target, TIMEOUT).unwrap();
    assert!(
        report.is_open(),
        "{target} before the rule ({reject}): {report:?}"
    );

    namespace.nft(&ruleset("output", target, &format!("reject with {reject}")));
    let answer = namespace.run(|| kernel_answer(target, TIMEOUT));
    assert_eq!(
        answer,
        KernelAnswer::Later(errno),
        "{target} rejected with {reject}: the kernel's answer was \"{answer}\", this test \
         expects \"{}\" (the SO_ERROR path)",
        KernelAnswer::Later(errno)
    );
    eprintln!("{target} rejected with {reject}: {answer}");

    let (report, waited) = check_through_the_rule(&namespace, &checker, target, TIMEOUT);
    assert_eq!(
        report.outcome(),
        Outcome::Unreachable,
        "{target} rejected with {reject}: {report:?}"
    );
    assert_eq!(report.address(), Some(target));
    eprintln!("{target} rejected with {reject}: {report:?}, {waited:?} in all");
}

/// Every ICMP error a firewall may reject with, over IPv4 and IPv6, with the `SO_ERROR` the
/// kernel gives for it; each case in a namespace of its own.
#[test]
fn a_rejection_of_every_kind_is_unreachable() {
    for (v6, reject, errno) in [
        (false, "icmp type host-unreachable", libc::EHOSTUNREACH),
        (false, "icmp type admin-prohibited", libc::EHOSTUNREACH),
        (false, "icmp type net-unreachable", libc::ENETUNREACH),
        (true, "icmpv6 type addr-unreachable", libc::EHOSTUNREACH),
        (true, "icmpv6 type admin-prohibited", libc::EACCES),
        (true, "icmpv6 type no-route", libc::ENETUNREACH),
    ] {
        assert_rejection_is_unreachable(v6, reject, errno);
    }
}

/// A listener inside the namespace whose SYNs a rule on `hook` drops: the check times out, no
/// sooner than its deadline and not much later.
fn assert_drop_times_out(hook: &str, listen: fn() -> TcpListener) {
    let Some(namespace) = NetNs::for_test(&["ip", "nft"]) else {
        return;
    };
    let listener = namespace.run(listen);
    let target = listener.local_addr().unwrap();
    let checker = namespace.checker();

    // Control: without the rule, the listener answers.
    let report = checker.check(target, TIMEOUT).unwrap();
    assert!(report.is_open(), "{target} before the rule: {report:?}");

    namespace.nft(&ruleset(hook, target, "drop"));
    let (report, waited) = check_through_the_rule(&namespace, &checker, target, DROP_TIMEOUT);
    assert_eq!(report.outcome(), Outcome::TimedOut, "{target}: {report:?}");
    assert_eq!(report.address(), Some(target));
    assert!(
        report.elapsed() >= DROP_TIMEOUT,
        "{target}: reported {report:?} before the deadline of {DROP_TIMEOUT:?}"
    );
    assert!(
        waited >= DROP_TIMEOUT,
        "{target}: answered after {waited:?}, before the deadline of {DROP_TIMEOUT:?}"
    );
    assert!(
        waited <= DROP_TIMEOUT + common::SCHEDULING_MARGIN,
        "{target}: answered after {waited:?}, long after the deadline of {DROP_TIMEOUT:?}"
    );
    eprintln!("{target} dropped on {hook}: {report:?}, {waited:?} in all");
}

#[test]
fn dropped_on_input_v4_times_out() {
    assert_drop_times_out("input", common::open_listener);
}

#[test]
fn dropped_on_input_v6_times_out() {
    assert_drop_times_out("input", common::open_listener_v6);
}

#[test]
fn dropped_on_output_v4_times_out() {
    assert_drop_times_out("output", common::open_listener);
}

/// Inside the namespace the configured nameserver has no route (or, on loopback, no server), so
/// the system resolver fails at once without anything leaving: a resolve error that names the
/// target, well before the deadline (a lookup that outlived it would be `Ok(TimedOut)`).
#[test]
fn unresolvable_name_is_a_resolve_error() {
    if let Some(reason) = netns::lookups_escape_namespaces() {
        skip(&reason);
        return;
    }
    let Some(namespace) = NetNs::for_test(&["ip"]) else {
        return;
    };
    // The checker's resolver threads are started by its event loop, so they are inside too.
    let checker = namespace.checker();
    let error = checker
        .check("no-such-host.invalid:80", Duration::from_secs(2))
        .expect_err("a name that cannot be resolved must not give a report");
    assert_eq!(error.kind(), ErrorKind::Resolve, "{error}");
    assert_eq!(error.target(), "no-such-host.invalid:80");
    let text = error.to_string();
    assert!(
        text.starts_with("could not resolve no-such-host.invalid:80: "),
        "{text}"
    );
    assert!(
        error.io_error().is_some(),
        "the resolver's error is lost: {error:?}"
    );
    eprintln!("{text}");
}

/// The network namespace of the calling thread, as `net:[inode]`.
fn current_namespace() -> PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net").unwrap()
}

/// Control for the plumbing: a checker whose loop runs on a thread inside the namespace finds
/// the namespace's listeners open, does not see this process's own loopback listener, and
/// resolves names on threads inside the namespace too.
#[test]
fn listeners_inside_the_namespace_are_open() {
    let Some(namespace) = NetNs::for_test(&["ip"]) else {
        return;
    };
    let inside = [
        namespace.run(common::open_listener),
        namespace.run(common::open_listener_v6),
    ];
    let outside = common::open_listener();

    // A resolver that notes the namespace of the thread each lookup runs on.
    let lookups_seen = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&lookups_seen);
    let resolver = move |host: &str| {
        seen.lock().unwrap().push(current_namespace());
        match host {
            "inside.test" => Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, "unknown host")),
        }
    };
    // This time the loop is built here and run on a thread that entered the namespace.
    let (checker, event_loop) = Checker::builder().resolver(resolver).build().unwrap();
    let loop_thread = namespace.spawn(move || event_loop.run());
    for listener in &inside {
        let target = listener.local_addr().unwrap();
        let report = checker.check(target, TIMEOUT).unwrap();
        assert!(report.is_open(), "{target} inside: {report:?}");
    }
    // Nothing listens on that port of the namespace's own loopback: the kernel there answers
    // RST, which it would not if the checker's sockets were outside.
    let target = outside.local_addr().unwrap();
    let report = checker.check(target, TIMEOUT).unwrap();
    assert_eq!(
        report.outcome(),
        Outcome::Closed,
        "{target} outside: {report:?}"
    );

    // Lookups run on threads that the loop starts, so inside the namespace.
    let port = inside[0].local_addr().unwrap().port();
    let report = checker.check(("inside.test", port), TIMEOUT).unwrap();
    assert!(report.is_open(), "inside.test:{port}: {report:?}");
    let namespace_id = namespace.run(current_namespace);
    assert_ne!(namespace_id, current_namespace());
    assert_eq!(*lookups_seen.lock().unwrap(), [namespace_id]);

    checker.stop();
    loop_thread.join().unwrap().unwrap();
}

/// With one port in the local port range, `connect()` to that port of 127.0.0.1, where nothing
/// listens, picks it as its own source port and connects to itself (a TCP simultaneous open).
/// That must be reported as closed, not open, and leave the port usable for the next check.
#[test]
fn a_check_that_connects_to_itself_is_closed() {
    const PORT: u16 = 40000;
    let Some(namespace) = NetNs::for_test(&["ip", "sh"]) else {
        return;
    };
    namespace.exec(&[
        "sh",
        "-c",
        &format!("echo '{PORT} {PORT}' > /proc/sys/net/ipv4/ip_local_port_range"),
    ]);
    // The kernel alone: the attempt succeeds, connected to itself.
    let reached_itself = namespace.run(|| {
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, PORT));
        let stream = std::net::TcpStream::connect_timeout(&target, TIMEOUT).unwrap();
        // Reset on close, or TIME_WAIT would hold the range's only port.
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        stream.local_addr().unwrap() == target
    });
    assert!(
        reached_itself,
        "the one-port range did not make connect() reach itself"
    );

    let checker = namespace.checker();
    for attempt in 0..3 {
        let report = check_when_the_port_is_free(&checker, PORT);
        assert_eq!(
            report.outcome(),
            Outcome::Closed,
            "attempt {attempt}: {report:?}"
        );
    }
}

/// Checks `127.0.0.1:port` when the range's only local port is free. Another test thread
/// that spawns a process (`ip`, `nft`) copies every open descriptor into its child until the
/// child's `exec()`; a check socket caught in that window is closed only then, and holds the
/// port for that long. The port is free again within moments: not within a second would mean
/// that something else holds it, which fails the test.
fn check_when_the_port_is_free(checker: &Checker, port: u16) -> Report {
    let give_up = Instant::now() + Duration::from_secs(1);
    loop {
        match checker.check(("127.0.0.1", port), TIMEOUT) {
            Err(error) if error.kind() == ErrorKind::NoLocalAddress && Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(1));
            }
            result => return result.unwrap(),
        }
    }
}
