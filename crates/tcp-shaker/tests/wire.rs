//! The packets a check puts on the wire, captured on `lo` (needs root for `AF_PACKET`).
//!
//! With zero linger (the default) every check must be exactly SYN, SYN-ACK, RST: the client
//! never sends the final ACK of the handshake, so the server's application never accepts the
//! connection. Without zero linger the client closes with FIN instead, which completes the
//! handshake, and the application does accept it; so it does with a full handshake (the only
//! kind other systems can make), which ends in RST.
//!
//! Tests in this binary run in parallel and every capture sees all of `lo`, so each capture keeps
//! only the port of its own listener, and connections are told apart by client address and port.

use crate::common::{self, test_name};
use shaker_wire as capture;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use capture::skip::skip_unless_root;
use capture::{ACK, Capture, Connection, Conversations, FIN, RST, SYN};
use tcp_shaker::{CheckOptions, Checker, CheckerBuilder, Handshake, Outcome};

/// The deadline of each check: generous, a check of a local port answers in microseconds.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long to keep capturing after the last check: longer than the kernel's 200 ms delayed-ACK
/// timer, so that a final ACK the checker failed to hold back would be on the wire by then.
const PAST_DELAYED_ACK: Duration = Duration::from_millis(400);
/// Checks per test: half one at a time, half at once in a batch.
const CHECKS: usize = 50;

/// Runs `count` checks of `target`, the first half one after another with
/// [`Checker::check`], the rest all at once in a batch; the options of check `i` are
/// `options(i)`. Asserts that every check found the port open.
fn check_open(
    checker: &Checker,
    target: SocketAddr,
    count: usize,
    options: impl Fn(usize) -> CheckOptions,
) {
    let one_by_one = count / 2;
    for i in 0..one_by_one {
        let report = checker.check(target, options(i)).unwrap();
        assert!(report.is_open(), "check {i} of {target}: {report:?}");
    }
    let mut batch = checker.batch();
    for i in one_by_one..count {
        batch.submit(i as u64, target, options(i)).unwrap();
    }
    let mut open = 0;
    for completion in batch {
        let report = completion.result.unwrap();
        assert!(
            report.is_open(),
            "check {} of {target}: {report:?}",
            completion.tag
        );
        open += 1;
    }
    assert_eq!(open, count - one_by_one);
}

/// How many connections showed each flag sequence, for messages and the log.
fn tally(conversations: &Conversations) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    for connection in &conversations.connections {
        *tally
            .entry(connection.sequence().join(" "))
            .or_insert(0usize) += 1;
    }
    tally
}

/// Captures the packets of `listener`'s port while `checks` runs, plus [`PAST_DELAYED_ACK`],
/// and splits them into connections to the listener's address.
fn capture_while(listener: &TcpListener, checks: impl FnOnce(SocketAddr)) -> Conversations {
    let target = listener.local_addr().unwrap();
    let capture = Capture::start(target.port()).unwrap();
    checks(target);
    std::thread::sleep(PAST_DELAYED_ACK);
    let packets = capture.stop().unwrap();
    capture::connections(&packets, target)
}

/// Asserts that `connection` is SYN, SYN-ACK, RST and nothing else, with the RST inside the
/// server's window (so that the server drops its half-open request).
/// Every packet belongs to a connection, and there is one connection per check.
fn assert_one_connection_per_check(conversations: &Conversations) {
    assert!(
        conversations.strays.is_empty(),
        "packets outside any connection:\n{}",
        conversations.describe()
    );
    assert_eq!(
        conversations.connections.len(),
        CHECKS,
        "one connection per check:\n{}",
        conversations.describe()
    );
}

fn assert_syn_synack_rst(connection: &Connection, all: &Conversations) {
    let sequence = connection.sequence();
    assert!(
        sequence == ["c:S", "s:SA", "c:RA"] || sequence == ["c:S", "s:SA", "c:R"],
        "connection from {} is {sequence:?}, not SYN, SYN-ACK, RST; all connections:\n{}",
        connection.client,
        all.describe()
    );
    let [(_, syn), (_, syn_ack), (_, rst)] = connection.packets[..] else {
        unreachable!("three packets, as just asserted")
    };
    assert_eq!(
        syn_ack.ack,
        syn.seq.wrapping_add(1),
        "the SYN-ACK acknowledges the SYN"
    );
    assert_eq!(
        rst.seq,
        syn.seq.wrapping_add(1),
        "the RST carries the next sequence number, so the server accepts it"
    );
    if rst.has(ACK) {
        assert_eq!(rst.ack, syn_ack.seq.wrapping_add(1));
    }
    assert!(
        connection.packets.iter().all(|(_, p)| p.payload_len == 0),
        "no packet of a check carries data: {connection:?}"
    );
}

/// Returns true, after reporting the skip of the running test, unless this process is root, as a
/// capture on `lo` needs.
fn skip_without_capture() -> bool {
    skip_unless_root("an AF_PACKET capture on lo")
}

/// The whole RST-mode assertion, for a listener opened by `listen` (the test skipped unless this
/// process is root): every connection SYN, SYN-ACK, RST, one per check, and nothing for the
/// listener's application to accept.
fn assert_every_check_half_open(listen: fn() -> TcpListener) {
    if skip_without_capture() {
        return;
    }
    let listener = listen();
    let checker = Checker::new().unwrap();
    let conversations = capture_while(&listener, |target| {
        check_open(&checker, target, CHECKS, |_| CheckOptions::new(TIMEOUT));
    });
    eprintln!("{}: {:?}", test_name(), tally(&conversations));
    let sent_by_clients = || {
        conversations
            .connections
            .iter()
            .flat_map(Connection::client_packets)
    };
    let bare_acks = sent_by_clients().filter(|p| p.is(ACK)).count();
    let fins = sent_by_clients().filter(|p| p.has(FIN)).count();
    assert_eq!(
        (bare_acks, fins),
        (0, 0),
        "the client sent bare ACKs (leaked final ACKs) or FINs:\n{}",
        conversations.describe()
    );
    assert_one_connection_per_check(&conversations);
    for connection in &conversations.connections {
        assert_syn_synack_rst(connection, &conversations);
    }
    assert_eq!(
        common::accept_all(&listener),
        0,
        "the listener's application accepted a check"
    );
}

#[test]
fn zero_linger_checks_are_syn_synack_rst_ipv4() {
    assert_every_check_half_open(common::open_listener);
}

#[test]
fn zero_linger_checks_are_syn_synack_rst_ipv6() {
    assert_every_check_half_open(common::open_listener_v6);
}

/// The closing sequence of a check without zero linger: the client's FIN carries the ACK that
/// completes the handshake, the server acknowledges the FIN, and once its application has
/// accepted and closed the connection, the server's FIN is acknowledged by the client.
const FIN_SEQUENCE: [&str; 6] = ["c:S", "s:SA", "c:FA", "s:A", "s:FA", "c:A"];

/// Asserts that `connection` is [`FIN_SEQUENCE`], with no RST from the client and the
/// handshake completed by the FIN.
fn assert_closed_with_fin(connection: &Connection, all: &Conversations) {
    assert!(
        connection.client_packets().all(|p| !p.has(RST)),
        "connection from {} was reset by the client: {:?}",
        connection.client,
        connection.sequence()
    );
    assert_eq!(
        connection.sequence(),
        FIN_SEQUENCE,
        "connection from {}; all connections:\n{}",
        connection.client,
        all.describe()
    );
    let [
        (_, syn),
        (_, syn_ack),
        (_, fin),
        (_, fin_ack),
        (_, server_fin),
        (_, last_ack),
    ] = connection.packets[..]
    else {
        unreachable!("six packets, as just asserted")
    };
    assert_eq!(syn_ack.ack, syn.seq.wrapping_add(1));
    assert_eq!(
        (fin.seq, fin.ack),
        (syn.seq.wrapping_add(1), syn_ack.seq.wrapping_add(1)),
        "the FIN is the client's first segment after SYN and acknowledges the SYN-ACK"
    );
    assert_eq!(
        fin_ack.ack,
        fin.seq.wrapping_add(1),
        "the server ACKs the FIN"
    );
    assert_eq!(server_fin.seq, syn_ack.seq.wrapping_add(1));
    assert_eq!(last_ack.ack, server_fin.seq.wrapping_add(1));
    assert!(
        connection.packets.iter().all(|(_, p)| p.payload_len == 0),
        "no packet of a check carries data: {connection:?}"
    );
}

/// Captures `CHECKS` checks of a fresh listener by a checker of `checker`, made with
/// `options(i)`, then lets the listener's application accept and close what it can, and returns
/// the connections with the number accepted. Logs their tally, and asserts that there is one
/// connection per check. `None`, after reporting the test's skip, unless this process is root.
fn capture_and_accept(
    checker: CheckerBuilder,
    options: impl Fn(usize) -> CheckOptions,
) -> Option<(Conversations, usize)> {
    if skip_without_capture() {
        return None;
    }
    let checker = checker.spawn().unwrap();
    let listener = common::open_listener();
    let mut accepted = 0;
    let conversations = capture_while(&listener, |target| {
        check_open(&checker, target, CHECKS, options);
        // Past the delayed ACK: the server has ACKed every FIN before its application closes.
        std::thread::sleep(PAST_DELAYED_ACK);
        accepted = common::accept_all(&listener);
    });
    eprintln!("{}: {:?}", test_name(), tally(&conversations));
    assert_one_connection_per_check(&conversations);
    Some((conversations, accepted))
}

#[test]
fn without_zero_linger_checks_close_with_fin() {
    let Some((conversations, accepted)) =
        capture_and_accept(Checker::builder().zero_linger(false), |_| {
            CheckOptions::new(TIMEOUT)
        })
    else {
        return;
    };
    for connection in &conversations.connections {
        assert_closed_with_fin(connection, &conversations);
    }
    assert_eq!(
        accepted, CHECKS,
        "a FIN completes the handshake: the application accepts every check"
    );
}

/// A full handshake, as checks are made where the kernel cannot hold the final ACK back (and on
/// Linux when asked): the client acknowledges the SYN-ACK, then resets the connection, and the
/// server's application accepts every check.
#[test]
fn a_full_handshake_is_syn_synack_ack_rst_and_accepted() {
    let Some((conversations, accepted)) =
        capture_and_accept(Checker::builder().handshake(Handshake::Full), |_| {
            CheckOptions::new(TIMEOUT)
        })
    else {
        return;
    };
    for connection in &conversations.connections {
        let sequence = connection.sequence();
        assert!(
            sequence == ["c:S", "s:SA", "c:A", "c:RA"] || sequence == ["c:S", "s:SA", "c:A", "c:R"],
            "connection from {} is {sequence:?}, not SYN, SYN-ACK, ACK, RST; all:\n{}",
            connection.client,
            conversations.describe()
        );
    }
    assert_eq!(
        accepted, CHECKS,
        "a full handshake is established: the application accepts every check"
    );
}

#[test]
fn zero_linger_off_for_one_check_closes_that_check_with_fin() {
    // Even checks close with FIN, odd ones keep the checker's default (RST).
    let Some((conversations, accepted)) = capture_and_accept(Checker::builder(), |i| {
        let options = CheckOptions::new(TIMEOUT);
        if i % 2 == 0 {
            options.zero_linger(false)
        } else {
            options
        }
    }) else {
        return;
    };
    let (with_fin, with_rst): (Vec<&Connection>, Vec<&Connection>) = conversations
        .connections
        .iter()
        .partition(|connection| connection.client_packets().any(|p| p.has(FIN)));
    assert_eq!(
        (with_fin.len(), with_rst.len()),
        (CHECKS.div_ceil(2), CHECKS / 2),
        "the override applies to its own check only:\n{}",
        conversations.describe()
    );
    for connection in with_fin {
        assert_closed_with_fin(connection, &conversations);
    }
    for connection in with_rst {
        assert_syn_synack_rst(connection, &conversations);
    }
    assert_eq!(
        accepted,
        CHECKS.div_ceil(2),
        "the application accepts exactly the checks closed with FIN"
    );
}

#[test]
fn a_closed_port_answers_syn_with_rst_and_the_client_sends_nothing_more() {
    if skip_without_capture() {
        return;
    }
    const CLOSED_CHECKS: usize = 5;
    let target = common::closed_address();
    let capture = Capture::start(target.port()).unwrap();
    let checker = Checker::new().unwrap();
    for i in 0..CLOSED_CHECKS {
        let report = checker.check(target, TIMEOUT).unwrap();
        assert_eq!(report.outcome(), Outcome::Closed, "check {i}: {report:?}");
    }
    std::thread::sleep(PAST_DELAYED_ACK);
    let conversations = capture::connections(&capture.stop().unwrap(), target);
    eprintln!("{}: {:?}", test_name(), tally(&conversations));
    // Strays are not asserted on: once closed, the port is free for any process on the machine
    // to use as the source port of its own connections.
    assert_eq!(
        conversations.connections.len(),
        CLOSED_CHECKS,
        "one connection per check:\n{}",
        conversations.describe()
    );
    for connection in &conversations.connections {
        assert_eq!(
            connection.sequence(),
            ["c:S", "s:RA"],
            "connection from {}; all connections:\n{}",
            connection.client,
            conversations.describe()
        );
        let [(_, syn), (_, rst)] = connection.packets[..] else {
            unreachable!("two packets, as just asserted")
        };
        assert!(syn.is(SYN), "{syn:?}");
        assert_eq!(rst.ack, syn.seq.wrapping_add(1), "the RST answers the SYN");
    }
}
