//! The SYN-ACK-to-RST delay: how long a checker takes to reset a connection after the server's
//! SYN-ACK reached it. Past the kernel's 200 ms delayed-ACK timer the final ACK leaves first
//! and the server's application accepts the connection, so this is the margin a checker keeps.
//!
//! Measured with a capture (shaker-wire, needs `CAP_NET_RAW`) on the interface the checks cross
//! on the checker's side (`lo`, or the checker's end of a veth pair) of a sample of the
//! connections, chosen by client port in the kernel's filter: the time between the kernel's
//! timestamps of the SYN-ACK and of the client's RST. On `lo` both are arriving copies; on a
//! veth end the SYN-ACK is seen arriving and the RST leaving, each once.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use shaker_wire::{ACK, Capture, Packet, RST, SYN};

use crate::statistics::percentile;

/// A capture running while a checker checks the listener.
pub struct DelayCapture {
    capture: Capture,
    server: SocketAddr,
}

/// Why there is no delay to show.
pub const NEEDS_CAP_NET_RAW: &str = "n/a (needs CAP_NET_RAW)";

impl DelayCapture {
    /// Starts capturing on `interface` the connections to `server` whose client port is in the
    /// sample of one in `sample` (a power of two); `None` without the privilege to capture.
    pub fn start(
        interface: &str,
        server: SocketAddr,
        sample: u16,
    ) -> anyhow::Result<Option<DelayCapture>> {
        match Capture::start_on(interface, server.port(), client_port_mask(sample)) {
            Ok(capture) => Ok(Some(DelayCapture { capture, server })),
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => Ok(None),
            Err(error) => {
                Err(anyhow::Error::new(error).context(format!("starting a capture on {interface}")))
            }
        }
    }

    /// Stops the capture and measures the delays; fails if the kernel dropped packets (the
    /// sample would not be what it claims).
    pub fn finish(self) -> io::Result<Delays> {
        let packets = self.capture.stop()?;
        Ok(Delays::measure(&packets, self.server))
    }
}

/// The filter mask that keeps one connection in `sample`: bits 1 and up of the client port
/// (bit 0 is left out: Linux gives `connect()` mostly even ports).
fn client_port_mask(sample: u16) -> u16 {
    sample.saturating_sub(1) << 1
}

/// A description of the sampling, for the table's notes.
pub fn describe_sample(sample: u16) -> String {
    if sample <= 1 {
        "every connection".into()
    } else {
        let mask = client_port_mask(sample);
        let (low, high) = (mask.trailing_zeros(), 15 - mask.leading_zeros());
        format!("1 connection in {sample} (client port bits {low}-{high} zero)")
    }
}

/// The delays of the captured connections.
#[derive(Clone, Debug, Serialize)]
pub struct Delays {
    /// Connections whose SYN-ACK and RST were both captured: the number of delays.
    pub measured: u64,
    /// Median delay, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// Longest delay, microseconds.
    pub max_us: f64,
    /// Bare ACKs the clients sent after a SYN-ACK: final ACKs that got out.
    pub leaked_acks: u64,
    /// Connections with a SYN-ACK but no RST from the client.
    pub without_rst: u64,
}

/// A captured connection, by client port.
#[derive(Default)]
struct Connection {
    syn_ack: Option<SystemTime>,
}

impl Delays {
    /// The delays in `packets`, the traffic of `server`'s port in arrival order.
    fn measure(packets: &[Packet], server: SocketAddr) -> Delays {
        let mut open: HashMap<u16, Connection> = HashMap::new();
        let mut delays = Vec::new();
        let mut leaked_acks = 0;
        for packet in packets {
            let Some(timestamp) = packet.timestamp else {
                continue;
            };
            if packet.dst == server {
                let client = packet.src.port();
                if packet.is(SYN) {
                    open.insert(client, Connection::default());
                } else if packet.has(RST) {
                    if let Some(syn_ack) = open.remove(&client).and_then(|c| c.syn_ack) {
                        delays.push(timestamp.duration_since(syn_ack).unwrap_or_default());
                    }
                } else if packet.is(ACK)
                    && packet.payload_len == 0
                    && open.get(&client).is_some_and(|c| c.syn_ack.is_some())
                {
                    leaked_acks += 1;
                }
            } else if packet.src == server && packet.is(SYN | ACK) {
                if let Some(connection) = open.get_mut(&packet.dst.port()) {
                    connection.syn_ack.get_or_insert(timestamp);
                }
            }
        }
        delays.sort_unstable();
        let micros = |delay: Option<Duration>| delay.map_or(0.0, |d| d.as_secs_f64() * 1e6);
        Delays {
            measured: delays.len() as u64,
            p50_us: micros(percentile(&delays, 50.0)),
            p99_us: micros(percentile(&delays, 99.0)),
            max_us: micros(delays.last().copied()),
            leaked_acks,
            without_rst: open.values().filter(|c| c.syn_ack.is_some()).count() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_mask_leaves_bit_0_out() {
        assert_eq!(client_port_mask(1), 0);
        assert_eq!(client_port_mask(16), 0b11110);
        assert_eq!(
            describe_sample(16),
            "1 connection in 16 (client port bits 1-4 zero)"
        );
    }

    /// A packet between `from` and `to` with `flags`, received `micros` after an origin.
    fn packet(from: &str, to: &str, flags: u8, micros: u64) -> Packet {
        Packet {
            src: from.parse().unwrap(),
            dst: to.parse().unwrap(),
            flags,
            seq: 0,
            ack: 0,
            payload_len: 0,
            timestamp: Some(SystemTime::UNIX_EPOCH + Duration::from_micros(micros)),
        }
    }

    #[test]
    fn delays_run_from_the_syn_ack_to_the_clients_rst() {
        let server = "127.0.0.1:80";
        let (a, b, c) = ("127.0.0.1:40000", "127.0.0.1:40002", "127.0.0.1:40004");
        let packets = [
            packet(a, server, SYN, 0),
            packet(b, server, SYN, 1),
            packet(server, a, SYN | ACK, 10),
            packet(server, b, SYN | ACK, 11),
            packet(a, server, RST | ACK, 15),
            packet(c, server, SYN, 20),
            packet(server, c, SYN | ACK, 30),
            // b's final ACK got out before its RST: a leak, and a long delay.
            packet(b, server, ACK, 200_011),
            packet(b, server, RST, 200_111),
            // a's port used again: a new connection, still open at the end.
            packet(a, server, SYN, 300_000),
            packet(server, a, SYN | ACK, 300_010),
        ];
        let delays = Delays::measure(&packets, server.parse().unwrap());
        assert_eq!(delays.measured, 2);
        assert_eq!((delays.p50_us, delays.max_us), (5.0, 200_100.0));
        assert_eq!((delays.leaked_acks, delays.without_rst), (1, 2));
    }
}
