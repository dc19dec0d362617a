//! Checks across a real round trip, where the SYN-ACK arrives long after `connect()` returned
//! and the event loop's poller does the work; and checkers killed mid-run, which must leave the
//! server with nothing to accept.
//!
//! On loopback and over a veth pair the kernel answers a SYN inside `connect()`. Here a client
//! and a server network namespace (`tcpshaker-<pid>-<n>`, deleted by their guards) are joined
//! by `shaker_wire::delay_line`: TUN devices and forwarding threads that hold each packet 25 ms
//! each way, a 50 ms round trip. The checker's loop thread is started inside the client's
//! namespace (its sockets belong there), the listener inside the server's. The listener's
//! application accepts nothing while the checks run; what `accept()` returns afterwards, past
//! the kernel's 200 ms delayed-ACK timer, is counted, and must be nothing.
//!
//! The first test submits [`AT_ONCE`] checks at once in one batch: every one must be open, none
//! accepted, and the delay from each SYN-ACK entering the client's namespace to the checker's
//! RST leaving it, measured on the client's TUN device by a capture of one connection in 8
//! (kernel timestamps), must stay under [`DELAY_BOUND`] for every captured connection: well
//! inside the kernel's 200 ms delayed-ACK window, whatever else the machine is doing. (How
//! short the delay is, is measured by `shaker-bench --scenario rtt`, in a release build: a
//! test asserts no duration but a generous one.)
//!
//! The kill tests run a checker in a child process (this test binary again, with only
//! [`round_trip_child`] selected and [`CHILD`] naming the target), keeping [`KILL_IN_FLIGHT`]
//! checks in flight, and end it without its destructors running: SIGKILL; SIGSTOP for 75 ms
//! (a stall: every SYN-ACK in flight arrives meanwhile) then SIGKILL; or `abort()` in the child
//! (what a panic does under `panic = "abort"`). The kernel then closes the child's sockets
//! itself. A socket whose SYN-ACK has arrived is established on the client's side; unless it
//! has zero linger already, that close sends FIN, which completes the handshake on the server,
//! and its application accepts the connection. So the checker must set `SO_LINGER {1, 0}`
//! before `connect()`, not just before its own `close()`. The same kill test runs over loopback
//! and over a veth pair between two namespaces.
//!
//! Needs root (namespaces, TUN devices, a capture) for all but the loopback kill test; without
//! it each test reports a skip. The tests of this file run one at a time (they measure delays
//! on a machine of two cores).

use crate::common::{self};

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use shaker_wire::delay_line::DelayLine;
use shaker_wire::netns::Namespace;
use shaker_wire::skip::skip_unless_root;
use shaker_wire::{ACK, Capture, Conversations, RST, SYN};
use tcp_shaker::{Checker, Outcome};

/// The tests' namespaces are named `tcpshaker-<pid>-<n>`.
const PREFIX: &str = "tcpshaker-";
/// Each way: a 50 ms round trip.
const ONE_WAY: Duration = Duration::from_millis(25);
/// Generous: every check of this file is answered within a round trip or two.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Checks in flight at once in the big test.
const AT_ONCE: u64 = 10_000;
/// The listen backlog (capped by `net.core.somaxconn`, raised to it in the server's namespace).
const BACKLOG: i32 = 65_535;
/// The listener's port in a server namespace: below the client's local port range, as a
/// service's port is (a check of a port inside that range costs the engine one more system
/// call).
const SERVICE_PORT: u16 = 8080;
/// The capture of the big test keeps the connections whose client port has these bits clear:
/// one in 8 (bit 0 is left out: Linux gives `connect()` mostly even ports).
const SAMPLE_MASK: u16 = 0b1110;
/// The bound on every SYN-ACK-to-RST delay: half the delayed-ACK window, generous.
const DELAY_BOUND: Duration = Duration::from_millis(100);
/// Past the kernel's 200 ms delayed-ACK timer: a final ACK the checker failed to hold back has
/// reached the server by then.
const PAST_DELAYED_ACK: Duration = Duration::from_millis(300);

/// Set in the child's environment: the target of its checks.
const CHILD: &str = "TCP_SHAKER_ROUND_TRIP_CHILD";
/// Set in the child's environment to `abort` for a child that aborts after [`KILL_AFTER`].
const CHILD_END: &str = "TCP_SHAKER_ROUND_TRIP_CHILD_END";
/// What the child prints, every [`PROGRESS_EVERY`], to show it checks.
const PROGRESS: &str = "round-trip child progress:";
/// Checks the child keeps in flight.
const KILL_IN_FLIGHT: u64 = 1_000;
/// How long the child checks before it is ended.
const KILL_AFTER: Duration = Duration::from_secs(1);
/// How long a stopped child stays stopped before it is killed: longer than the round trip (so
/// every SYN-ACK in flight arrives meanwhile), well inside the 200 ms delayed-ACK timer.
const FROZEN: Duration = Duration::from_millis(75);
/// How long the server's application accepts after the child is gone.
const AFTER_KILL: Duration = Duration::from_millis(500);
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// A child that outlives this ends itself (the parent is gone or stuck).
const CHILD_LIMIT: Duration = Duration::from_secs(30);

/// Holds the tests of this file to one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Two namespaces and a delay line between them. Fields drop in order: the line (its devices),
/// then the namespaces.
struct Line {
    line: DelayLine,
    client: Namespace,
    server: Namespace,
}

impl Line {
    fn new() -> Line {
        let client = Namespace::create(PREFIX).unwrap();
        let server = Namespace::create(PREFIX).unwrap();
        // Room for every half-open connection of the big test in the listener's queues.
        server.sysctl("net.core.somaxconn", "65535").unwrap();
        server
            .sysctl("net.ipv4.tcp_max_syn_backlog", "65535")
            .unwrap();
        let line = DelayLine::start(&client, &server, ONE_WAY).unwrap();
        Line {
            line,
            client,
            server,
        }
    }

    /// A listener on the server's end of the line.
    fn listener(&self) -> TcpListener {
        let address = SocketAddr::from((self.line.server_address(), SERVICE_PORT));
        self.server
            .run(|| common::listener_on(address, BACKLOG))
            .unwrap()
    }
}

/// Two namespaces joined by a veth pair: 198.51.100.1/30 in the client's, .2/30 in the
/// server's (TEST-NET-2), nothing else. The pair goes with the namespaces.
struct Veth {
    client: Namespace,
    server: Namespace,
}

const VETH_CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const VETH_SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

impl Veth {
    fn new() -> Veth {
        let client = Namespace::create(PREFIX).unwrap();
        let server = Namespace::create(PREFIX).unwrap();
        client
            .exec(
                &[
                    "ip",
                    "link",
                    "add",
                    "veth-client",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "veth-server",
                    "netns",
                    server.name(),
                ],
                None,
            )
            .unwrap();
        for (namespace, interface, address) in [
            (&client, "veth-client", VETH_CLIENT),
            (&server, "veth-server", VETH_SERVER),
        ] {
            let commands =
                format!("address add {address}/30 dev {interface}\nlink set dev {interface} up\n");
            namespace
                .exec(&["ip", "-batch", "-"], Some(&commands))
                .unwrap();
        }
        Veth { client, server }
    }

    fn listener(&self) -> TcpListener {
        let address = SocketAddr::from((VETH_SERVER, SERVICE_PORT));
        self.server
            .run(|| common::listener_on(address, BACKLOG))
            .unwrap()
    }
}

/// Accepts from `listener`, without blocking, for `window`; returns how many connections its
/// application got.
fn accept_for(listener: &TcpListener, window: Duration) -> usize {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + window;
    let mut accepted = 0;
    loop {
        match listener.accept() {
            Ok(_) => accepted += 1,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return accepted;
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(error) => panic!("accept: {error}"),
        }
    }
}

/// The SYN-ACK-to-RST delays of the captured connections, sorted; and the connections that
/// went otherwise (no RST after the SYN-ACK, or a bare ACK from the client: the final ACK let
/// out), described.
fn reset_delays(conversations: &Conversations) -> (Vec<Duration>, Vec<String>) {
    let mut delays = Vec::new();
    let mut otherwise = Vec::new();
    for connection in &conversations.connections {
        let syn_ack = connection.server_packets().find(|p| p.is(SYN | ACK));
        let leaked = connection
            .client_packets()
            .any(|p| p.is(ACK) && p.payload_len == 0);
        let reset = connection.client_packets().find(|p| p.has(RST));
        match (syn_ack, reset) {
            (Some(syn_ack), Some(reset)) if !leaked => {
                let (Some(from), Some(to)) = (syn_ack.timestamp, reset.timestamp) else {
                    otherwise.push(format!("{}: no timestamp", connection.client));
                    continue;
                };
                delays.push(to.duration_since(from).unwrap_or_default());
            }
            _ => otherwise.push(format!(
                "{}: {}",
                connection.client,
                connection.sequence().join(" ")
            )),
        }
    }
    delays.sort_unstable();
    (delays, otherwise)
}

/// The nearest-rank percentile `q` (0 to 1) of `sorted`.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.saturating_sub(1).min(sorted.len() - 1)]
}

#[test]
fn ten_thousand_checks_at_once_across_a_50_ms_round_trip_are_open_unaccepted_and_reset_at_once() {
    if skip_unless_root("network namespaces, TUN devices and a capture") {
        return;
    }
    let _serial = serial();
    // 10 000 sockets at once: the checker opens at most the soft limit of open files (less a
    // few), so raise it to the hard limit, as a program that checks this many would.
    shaker_wire::limits::raise_open_files().unwrap();
    let line = Line::new();
    let listener = line.listener();
    let target = listener.local_addr().unwrap();
    let interface = line.line.client_interface();
    let capture = line
        .client
        .run(|| Capture::start_on(interface, target.port(), SAMPLE_MASK))
        .unwrap()
        .unwrap();
    let checker = line.client.run(Checker::new).unwrap().unwrap();

    let started = Instant::now();
    let mut batch = checker.batch();
    for tag in 0..AT_ONCE {
        batch.submit(tag, target, TIMEOUT).unwrap();
    }
    let (mut open, mut rtts, mut failures) = (0u64, Vec::new(), Vec::new());
    for completion in batch {
        match completion.result {
            Ok(report) => match report.outcome() {
                Outcome::Open { rtt } => {
                    open += 1;
                    rtts.push(rtt);
                }
                other => failures.push(format!("check {}: {other:?}", completion.tag)),
            },
            Err(error) => failures.push(format!("check {}: {error}", completion.tag)),
        }
    }
    let elapsed = started.elapsed();
    // Nothing was accepted while the checks ran; now the application accepts, past the
    // delayed-ACK timer.
    let accepted = accept_for(&listener, PAST_DELAYED_ACK);
    let packets = capture.stop().unwrap();
    let counters = line.line.counters();
    let device_drops = line.line.device_drops().unwrap();

    let conversations = shaker_wire::connections(&packets, target);
    let (delays, otherwise) = reset_delays(&conversations);
    rtts.sort_unstable();
    let round_trip = line.line.round_trip();
    eprintln!(
        "{AT_ONCE} checks at once across a {round_trip:?} round trip: {open} open in \
         {elapsed:?} ({:.0} checks/s); accepted {accepted}; rtt {:?} to {:?}; delay line \
         {counters:?}, device drops {device_drops}",
        AT_ONCE as f64 / elapsed.as_secs_f64(),
        rtts.first(),
        rtts.last(),
    );
    common::assert_none_failed(&failures, AT_ONCE, "were not open");
    assert_eq!(open, AT_ONCE);
    assert_eq!(
        accepted, 0,
        "the listener's application accepted {accepted} connections of {AT_ONCE} checks"
    );
    assert!(
        otherwise.is_empty(),
        "{} captured connections did not go SYN, SYN-ACK, RST; the first: {:?}",
        otherwise.len(),
        &otherwise[..otherwise.len().min(10)]
    );
    // About one connection in 8 is captured; half of that is plenty for a 99th percentile.
    let sampled = AT_ONCE / 16;
    assert!(
        delays.len() as u64 >= sampled,
        "only {} connections captured, of about {}",
        delays.len(),
        AT_ONCE / 8
    );
    let (p50, p99, max) = (
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        percentile(&delays, 1.0),
    );
    eprintln!(
        "SYN-ACK-to-RST delay of {} captured connections: p50 {p50:?}, p99 {p99:?}, max {max:?}",
        delays.len()
    );
    assert!(
        max < DELAY_BOUND,
        "a SYN-ACK waited {max:?} for its RST, too close to the 200 ms delayed-ACK timer (p50 \
         {p50:?}, p99 {p99:?})"
    );
    // The round trip was real: no SYN-ACK came back before it.
    assert!(
        rtts[0] >= round_trip,
        "a check saw SYN-ACK after {:?}",
        rtts[0]
    );
    // The line carried every handshake: SYN and RST one way, SYN-ACK the other.
    assert_eq!(counters.lost() + device_drops, 0, "{counters:?}");
    assert!(counters.to_server.carried >= 2 * AT_ONCE, "{counters:?}");
    assert!(counters.to_client.carried >= AT_ONCE, "{counters:?}");
}

/// How the child checker ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// SIGKILL from the parent.
    Kill,
    /// SIGSTOP, [`FROZEN`] later SIGKILL.
    FreezeThenKill,
    /// `abort()` in the child itself.
    Abort,
}

/// A child process that is killed and reaped when dropped, unless it was reaped already.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn pid(&self) -> libc::pid_t {
        let child = self.0.as_ref().unwrap();
        libc::pid_t::try_from(child.id()).unwrap()
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill() takes no pointers; the pid is our child's, not yet reaped.
        let result = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(result, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits for the child, at most `limit`.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let child = self.0.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.0 = None;
                return status;
            }
            assert!(Instant::now() < deadline, "the child did not end");
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a kill test saw.
#[derive(Debug)]
struct Killed {
    /// Checks the child found open, by its last progress line.
    open: u64,
    /// Checks that ended otherwise.
    other: u64,
    /// Connections the listener's application accepted while the child checked.
    accepted_during: usize,
    /// And in the [`AFTER_KILL`] after it was gone.
    accepted_after: usize,
    /// How it ended.
    status: ExitStatus,
}

/// Runs a child checker of `listener` (spawned inside `namespace`, or here), ends it as
/// `ending` says, and counts what the listener's application accepted.
fn kill_checker(namespace: Option<&Namespace>, listener: &TcpListener, ending: Ending) -> Killed {
    let target = listener.local_addr().unwrap();
    let spawn = || {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "round_trip::round_trip_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, target.to_string())
            .env(
                CHILD_END,
                if ending == Ending::Abort {
                    "abort"
                } else {
                    "wait"
                },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // A process starts in the network namespace of the thread that spawns it.
    let mut child = match namespace {
        Some(namespace) => namespace.run(spawn).unwrap(),
        None => spawn(),
    };
    let (stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let mut child = ChildGuard(Some(child));
    let (lines, progress) = mpsc::channel();
    let reading = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = lines.send(line);
        }
    });
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut last_progress = None;
    // The child checks once it reports progress; its start-up is not timed.
    let first = loop {
        match progress.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.starts_with(PROGRESS) => break line,
            Ok(_) => continue,
            Err(_) => {
                drop(child);
                panic!(
                    "the child never reported progress; its stderr:\n{}",
                    errors.join().unwrap()
                );
            }
        }
    };
    last_progress.get_or_insert(first);
    let accepted_during = match ending {
        Ending::Abort => accept_for(listener, KILL_AFTER),
        Ending::Kill | Ending::FreezeThenKill => {
            let accepted = accept_for(listener, KILL_AFTER);
            if ending == Ending::FreezeThenKill {
                child.signal(libc::SIGSTOP);
                thread::sleep(FROZEN);
            }
            child.signal(libc::SIGKILL);
            accepted
        }
    };
    let status = child.wait(Duration::from_secs(10));
    let accepted_after = accept_for(listener, AFTER_KILL);
    reading.join().unwrap();
    let stderr = errors.join().unwrap();
    last_progress = progress
        .try_iter()
        .filter(|line| line.starts_with(PROGRESS))
        .last()
        .or(last_progress);
    let counts: Vec<u64> = last_progress
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    let [open, other] = counts[..] else {
        panic!("no progress counts in {last_progress:?}; the child's stderr:\n{stderr}");
    };
    let killed = Killed {
        open,
        other,
        accepted_during,
        accepted_after,
        status,
    };
    eprintln!("{ending:?} of a checker of {target}: {killed:?}");
    let signal = std::os::unix::process::ExitStatusExt::signal(&killed.status);
    let expected = match ending {
        Ending::Abort => libc::SIGABRT,
        Ending::Kill | Ending::FreezeThenKill => libc::SIGKILL,
    };
    assert_eq!(
        signal,
        Some(expected),
        "the child ended with {}; its stderr:\n{stderr}",
        killed.status
    );
    assert_eq!(
        killed.other, 0,
        "checks were not open; the child's stderr:\n{stderr}"
    );
    assert!(
        killed.open >= KILL_IN_FLIGHT,
        "the child found only {} checks open before it ended",
        killed.open
    );
    killed
}

/// Asserts that the listener's application accepted nothing, during the run or after.
fn assert_nothing_accepted(killed: &Killed, route: &str, ending: Ending) {
    assert_eq!(
        (killed.accepted_during, killed.accepted_after),
        (0, 0),
        "{route}, {ending:?}: the listener's application accepted connections (during the run, \
         after the end) of a checker with {KILL_IN_FLIGHT} checks in flight; a socket whose \
         SYN-ACK had arrived was closed by the kernel without zero linger, with FIN"
    );
}

/// The networks the kill tests cross, between namespaces they make.
#[derive(Clone, Copy, Debug)]
enum Network {
    DelayLine,
    Veth,
}

/// Runs the kill test across `network` once for each of `endings`, one test at a time: the
/// checker in its client namespace, the listener in its server namespace, both new each time.
fn kill_across(network: Network, endings: &[Ending]) {
    let needs = match network {
        Network::DelayLine => "network namespaces and TUN devices",
        Network::Veth => "network namespaces and a veth pair",
    };
    if skip_unless_root(needs) {
        return;
    }
    let _serial = serial();
    for &ending in endings {
        match network {
            Network::DelayLine => {
                let line = Line::new();
                let killed = kill_checker(Some(&line.client), &line.listener(), ending);
                eprintln!("delay line, {ending:?}: {:?}", line.line.counters());
                assert_nothing_accepted(&killed, "across the delay line", ending);
            }
            Network::Veth => {
                let veth = Veth::new();
                let killed = kill_checker(Some(&veth.client), &veth.listener(), ending);
                assert_nothing_accepted(&killed, "over a veth pair", ending);
            }
        }
    }
}

#[test]
fn a_checker_killed_frozen_or_aborted_across_the_delay_line_leaves_nothing_to_accept() {
    let endings = [Ending::Kill, Ending::FreezeThenKill, Ending::Abort];
    kill_across(Network::DelayLine, &endings);
}

#[test]
fn a_checker_killed_or_frozen_then_killed_over_loopback_leaves_nothing_to_accept() {
    let _serial = serial();
    for ending in [Ending::Kill, Ending::FreezeThenKill] {
        let listener = common::listener_on("127.0.0.1:0".parse().unwrap(), 4096);
        let killed = kill_checker(None, &listener, ending);
        assert_nothing_accepted(&killed, "over loopback", ending);
    }
}

#[test]
fn a_checker_killed_or_frozen_then_killed_over_a_veth_pair_leaves_nothing_to_accept() {
    kill_across(Network::Veth, &[Ending::Kill, Ending::FreezeThenKill]);
}

/// The kill tests' checker, run only in the child process (see the module documentation):
/// keeps [`KILL_IN_FLIGHT`] checks of the target in flight, printing its counts every
/// [`PROGRESS_EVERY`], until it is killed (or aborts, or outlives [`CHILD_LIMIT`]).
#[test]
fn round_trip_child() {
    let Ok(target) = std::env::var(CHILD) else {
        return;
    };
    let target: SocketAddr = target.parse().unwrap();
    let aborts = std::env::var(CHILD_END).is_ok_and(|end| end == "abort");
    // An abort leaves no core file behind.
    shaker_wire::limits::disable_core_dumps().unwrap();
    let checker = Checker::new().unwrap();
    let mut batch = checker.batch();
    for tag in 0..KILL_IN_FLIGHT {
        batch.submit(tag, target, TIMEOUT).unwrap();
    }
    let (mut open, mut other, mut next_tag) = (0u64, 0u64, KILL_IN_FLIGHT);
    let started = Instant::now();
    let mut report_at = started;
    while let Some(completion) = batch.next() {
        match completion.result {
            Ok(report) if report.is_open() => open += 1,
            result => {
                if other == 0 {
                    eprintln!("check {}: {result:?}", completion.tag);
                }
                other += 1;
            }
        }
        batch.submit(next_tag, target, TIMEOUT).unwrap();
        next_tag += 1;
        let now = Instant::now();
        if now >= report_at {
            println!("{PROGRESS} {open} {other}");
            report_at = now + PROGRESS_EVERY;
        }
        if aborts && now.duration_since(started) >= KILL_AFTER {
            println!("{PROGRESS} {open} {other}");
            std::process::abort();
        }
        if now.duration_since(started) >= CHILD_LIMIT {
            eprintln!("the parent never ended this child");
            std::process::exit(3);
        }
    }
}
