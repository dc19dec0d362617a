//! The capture on real loopback traffic (needs root for `AF_PACKET`): receive timestamps, and
//! sampling by client port done by the kernel's filter.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, SystemTime};

use shaker_wire::skip::skip_unless_root;
use shaker_wire::{Capture, SYN};

/// Connections made per capture.
const CONNECTIONS: usize = 64;
/// Longer than loopback needs for the last packets to arrive.
const SETTLE: Duration = Duration::from_millis(100);

/// Connects to `listener` [`CONNECTIONS`] times under a capture sampled with `mask`, and checks
/// that exactly the connections whose client port has no bit of `mask` set were captured, every
/// packet with a receive timestamp from the time of the capture.
fn assert_sampled(listener: &TcpListener, mask: u16) {
    let server = listener.local_addr().unwrap();
    let started = SystemTime::now();
    let capture = Capture::start_sampled(server.port(), mask).unwrap();
    let mut client_ports = BTreeSet::new();
    for _ in 0..CONNECTIONS {
        let stream = TcpStream::connect(server).unwrap();
        client_ports.insert(stream.local_addr().unwrap().port());
        let (accepted, _) = listener.accept().unwrap();
        drop((stream, accepted));
    }
    std::thread::sleep(SETTLE);
    let packets = capture.stop().unwrap();
    let ended = SystemTime::now();

    let client_port = |src: SocketAddr, dst: SocketAddr| {
        if src == server {
            dst.port()
        } else {
            src.port()
        }
    };
    let captured: BTreeSet<u16> = packets.iter().map(|p| client_port(p.src, p.dst)).collect();
    let expected: BTreeSet<u16> = client_ports
        .iter()
        .copied()
        .filter(|port| port & mask == 0)
        .collect();
    assert_eq!(captured, expected, "mask {mask:#b}: the clients captured");
    let syns = packets.iter().filter(|p| p.is(SYN)).count();
    assert_eq!(syns, expected.len(), "one SYN per sampled connection");
    for packet in &packets {
        let timestamp = packet.timestamp.expect("a captured packet has a timestamp");
        assert!(
            started <= timestamp && timestamp <= ended,
            "{packet:?} was received outside the capture ({started:?} to {ended:?})"
        );
    }
}

#[test]
fn captures_every_connection_or_a_sample_by_client_port_with_timestamps() {
    if skip_unless_root("an AF_PACKET capture on lo") {
        return;
    }
    for address in ["127.0.0.1:0", "[::1]:0"] {
        let listener = TcpListener::bind(address).unwrap();
        assert_sampled(&listener, 0);
        assert_sampled(&listener, 0b110);
    }
}
