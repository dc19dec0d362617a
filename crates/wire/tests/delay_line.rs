//! The delay line on real traffic (needs root: network namespaces, TUN devices, a capture): a
//! TCP handshake across it takes the round trip, datagrams cross in order one delay after they
//! were sent, a full queue drops and counts, and nothing is left behind.

use std::io;
use std::mem;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::{Duration, Instant};

use shaker_wire::delay_line::{self, DelayLine};
use shaker_wire::netns::Namespace;
use shaker_wire::skip::skip_unless_root;
use shaker_wire::{ACK, Capture, SYN};

/// The tests' namespaces are named `shaker-wire-test-<pid>-<n>`.
const PREFIX: &str = "shaker-wire-test-";
const ONE_WAY: Duration = Duration::from_millis(25);
/// Generous, for a loaded machine: the line itself adds well under a millisecond.
const MARGIN: Duration = Duration::from_millis(200);

/// A client's and a server's namespace, or `None` after reporting the running test's skip
/// without root.
fn namespaces() -> Option<(Namespace, Namespace)> {
    if skip_unless_root("network namespaces and TUN devices") {
        return None;
    }
    let client = Namespace::create(PREFIX).unwrap();
    let server = Namespace::create(PREFIX).unwrap();
    Some((client, server))
}

/// Whether `interface` exists in `namespace`.
fn has_interface(namespace: &Namespace, interface: &str) -> bool {
    namespace
        .exec(&["ip", "link", "show", "dev", interface], None)
        .is_ok()
}

#[test]
fn a_tcp_connect_across_the_line_takes_the_round_trip_and_the_devices_go_with_it() {
    let Some((client, server)) = namespaces() else {
        return;
    };
    let line = DelayLine::start(&client, &server, ONE_WAY).unwrap();
    assert_eq!(line.round_trip(), 2 * ONE_WAY);
    assert!(has_interface(&client, line.client_interface()));
    assert!(has_interface(&server, line.server_interface()));
    let listener = server
        .run(|| TcpListener::bind((line.server_address(), 0)))
        .unwrap()
        .unwrap();
    let address = listener.local_addr().unwrap();
    // The capture on the client's TUN device: bare IP packets, each seen once.
    let capture = client
        .run(|| Capture::start_on(line.client_interface(), address.port(), 0))
        .unwrap()
        .unwrap();

    let (connected, took) = client
        .run(|| {
            let started = Instant::now();
            let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5));
            (stream, started.elapsed())
        })
        .unwrap();
    let stream = connected.unwrap();
    let round_trip = line.round_trip();
    eprintln!("connect across a {round_trip:?} round trip took {took:?}");
    assert!(
        took >= round_trip,
        "connect took {took:?}, under the round trip"
    );
    assert!(took < round_trip + MARGIN, "connect took {took:?}");
    assert_eq!(
        stream.local_addr().unwrap().ip(),
        line.client_address(),
        "the client's end is the line's address"
    );
    // The final ACK crosses too: the listener's application gets the connection.
    let (accepted, peer) = listener.accept().unwrap();
    assert_eq!(peer, stream.local_addr().unwrap());
    drop((accepted, stream));
    thread::sleep(round_trip);

    let packets = capture.stop().unwrap();
    let conversations = shaker_wire::connections(&packets, address);
    let described = conversations.describe();
    assert_eq!(conversations.connections.len(), 1, "{described}");
    let connection = &conversations.connections[0];
    assert_eq!(
        connection.sequence()[..3],
        ["c:S", "s:SA", "c:A"],
        "{described}"
    );
    let syn = connection.client_packets().next().unwrap();
    let syn_ack = connection.server_packets().next().unwrap();
    assert!(syn.is(SYN) && syn_ack.is(SYN | ACK), "{described}");
    let measured = syn_ack
        .timestamp
        .unwrap()
        .duration_since(syn.timestamp.unwrap())
        .unwrap();
    eprintln!("SYN to SYN-ACK on the client's device: {measured:?}");
    assert!(measured >= round_trip, "SYN-ACK after {measured:?}");
    assert!(measured < round_trip + MARGIN, "SYN-ACK after {measured:?}");

    let counters = line.counters();
    assert!(
        counters.to_server.carried >= 2 && counters.to_client.carried >= 1,
        "{counters:?}"
    );
    assert_eq!(counters.lost(), 0, "{counters:?}");
    assert_eq!(line.device_drops().unwrap(), 0);
    let stopped = line.stop().unwrap();
    assert!(stopped.carried() >= counters.carried());
    assert!(!has_interface(&client, delay_line::CLIENT_INTERFACE));
    assert!(!has_interface(&server, delay_line::SERVER_INTERFACE));
}

/// Asks for a receive buffer of `bytes` (past `net.core.rmem_max`: root only).
fn set_receive_buffer(socket: &UdpSocket, bytes: libc::c_int) {
    // SAFETY: the pointer and length describe `bytes`, a C int that outlives the call.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(result, 0, "{}", io::Error::last_os_error());
}

/// A UDP socket on `ip` inside `namespace`, and its address.
fn udp_in(namespace: &Namespace, ip: std::net::Ipv4Addr) -> (UdpSocket, SocketAddr) {
    let socket = namespace.run(|| UdpSocket::bind((ip, 0))).unwrap().unwrap();
    let address = socket.local_addr().unwrap();
    (socket, address)
}

/// Datagram sockets at either end of `line`: a sender in `client`, and a receiver (waiting at
/// most `read_timeout`) in `server`, with the receiver's address.
fn datagrams_across(
    line: &DelayLine,
    client: &Namespace,
    server: &Namespace,
    read_timeout: Duration,
) -> (UdpSocket, UdpSocket, SocketAddr) {
    let (receiver, to) = udp_in(server, line.server_address());
    receiver.set_read_timeout(Some(read_timeout)).unwrap();
    let (sender, _) = udp_in(client, line.client_address());
    (sender, receiver, to)
}

#[test]
fn datagrams_cross_in_order_one_delay_after_they_were_sent() {
    let Some((client, server)) = namespaces() else {
        return;
    };
    /// As many packets as the handshakes (SYN, SYN-ACK, RST) of 1000 checks.
    const DATAGRAMS: u64 = 3000;
    let line = DelayLine::start(&client, &server, ONE_WAY).unwrap();
    let (sender, receiver, to) = datagrams_across(&line, &client, &server, Duration::from_secs(2));
    set_receive_buffer(&receiver, 16 << 20);

    // Each datagram: its number and when it was sent, in nanoseconds since `origin`.
    let origin = Instant::now();
    let receiving = thread::spawn(move || {
        let mut arrivals = Vec::new();
        let mut buffer = [0u8; 16];
        while arrivals.len() < DATAGRAMS as usize {
            match receiver.recv(&mut buffer) {
                Ok(16) => {
                    let arrived = origin.elapsed();
                    let number = u64::from_be_bytes(buffer[..8].try_into().unwrap());
                    let sent = u64::from_be_bytes(buffer[8..].try_into().unwrap());
                    arrivals.push((number, Duration::from_nanos(sent), arrived));
                }
                Ok(other) => panic!("a datagram of {other} bytes"),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => panic!("receiving: {error}"),
            }
        }
        arrivals
    });
    let sending_started = Instant::now();
    for number in 0..DATAGRAMS {
        let mut datagram = [0u8; 16];
        datagram[..8].copy_from_slice(&number.to_be_bytes());
        let sent = u64::try_from(origin.elapsed().as_nanos()).unwrap();
        datagram[8..].copy_from_slice(&sent.to_be_bytes());
        sender.send_to(&datagram, to).unwrap();
    }
    let sending = sending_started.elapsed();
    let arrivals = receiving.join().unwrap();
    assert_eq!(line.device_drops().unwrap(), 0);
    // Final once the threads are joined (a datagram can arrive before its count).
    let counters = line.stop().unwrap();
    eprintln!(
        "{DATAGRAMS} datagrams sent in {sending:?} ({:.0}/s); {} arrived; {counters:?}",
        DATAGRAMS as f64 / sending.as_secs_f64(),
        arrivals.len()
    );
    assert_eq!(arrivals.len() as u64, DATAGRAMS, "{counters:?}");
    let numbers: Vec<u64> = arrivals.iter().map(|&(number, ..)| number).collect();
    assert!(
        numbers.iter().copied().eq(0..DATAGRAMS),
        "out of order: {numbers:?}"
    );
    let delays: Vec<Duration> = arrivals
        .iter()
        .map(|&(_, sent, arrived)| arrived - sent)
        .collect();
    let (shortest, longest) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
    eprintln!("one-way delays from {shortest:?} to {longest:?}");
    assert!(*shortest >= ONE_WAY, "a datagram crossed in {shortest:?}");
    assert!(*longest < ONE_WAY + MARGIN, "a datagram took {longest:?}");
    assert_eq!(counters.to_server.carried, DATAGRAMS, "{counters:?}");
    assert_eq!(counters.lost(), 0, "{counters:?}");
}

#[test]
fn a_full_queue_drops_and_counts_what_it_cannot_hold() {
    let Some((client, server)) = namespaces() else {
        return;
    };
    const QUEUE: usize = 8;
    const BURST: u64 = 100;
    // Long enough that the whole burst is read before the first datagram is due.
    let line =
        DelayLine::start_with_queue(&client, &server, Duration::from_millis(200), QUEUE).unwrap();
    let (sender, receiver, to) = datagrams_across(&line, &client, &server, Duration::from_secs(1));
    for number in 0..BURST {
        sender.send_to(&number.to_be_bytes(), to).unwrap();
    }
    let mut received = Vec::new();
    let mut buffer = [0u8; 8];
    while let Ok(8) = receiver.recv(&mut buffer) {
        received.push(u64::from_be_bytes(buffer));
    }
    let counters = line.stop().unwrap();
    // The first QUEUE datagrams found room; every later one found the queue full.
    assert_eq!(
        received,
        (0..QUEUE as u64).collect::<Vec<_>>(),
        "{counters:?}"
    );
    assert_eq!(counters.to_server.carried, QUEUE as u64, "{counters:?}");
    assert_eq!(
        counters.to_server.dropped,
        BURST - QUEUE as u64,
        "{counters:?}"
    );
    assert_eq!(counters.lost(), BURST - QUEUE as u64, "{counters:?}");
}
