//! One half-open connection attempt: the socket, its options, and `connect()`.
//!
//! On Linux and Android the socket is created non-blocking and close-on-exec in one call, with
//! `TCP_QUICKACK` off so that the kernel delays the ACK of SYN-ACK (up to 200 ms) instead of
//! sending it, and `SO_LINGER {on, 0}` so that `close()` sends RST. The event loop closes the
//! socket as soon as it is writable: SYN, SYN-ACK, RST, and the server's application never
//! accepts anything. Zero linger is in place before `connect()`, so a socket that the process
//! leaves behind (killed by SIGKILL, aborted, panicking) is reset by the kernel when it closes
//! the process's descriptors, too: however the checker ends, the server never sees an
//! established connection.
//!
//! With [`Handshake::Full`] (the only choice on the BSDs, macOS and Windows, which acknowledge a
//! SYN-ACK at once and offer no switch to hold it back) the quick-ACK step is left out: the same
//! steps make a full connection, closed with RST, which the server's application may see
//! accepted and reset.
//!
//! To a loopback address, Linux runs the whole handshake inside `connect()`: the SYN is
//! delivered, and the SYN-ACK or RST comes back, before the call returns. There the outcome is
//! read at once with a second `connect()`, which answers 0 once connected, `EALREADY` while
//! connecting, or the attempt's error, and sends nothing. That saves registering the socket with
//! the poller and waiting for an event it already has.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use mio::net::TcpStream;
use socket2::{Domain, SockAddr, SockRef, Socket};

use crate::options::Handshake;
use crate::sys;

/// Where the checker's sockets come from: a source address per family, a network interface, and
/// the range of local ports `connect()` picks from.
#[derive(Clone, Debug)]
pub(crate) struct Binding {
    pub(crate) source_v4: Option<Ipv4Addr>,
    pub(crate) source_v6: Option<Ipv6Addr>,
    pub(crate) interface: Option<Box<[u8]>>,
    pub(crate) local_ports: RangeInclusive<u16>,
}

impl Default for Binding {
    fn default() -> Binding {
        Binding {
            source_v4: None,
            source_v6: None,
            interface: None,
            local_ports: local_port_range(),
        }
    }
}

impl Binding {
    fn source_for(&self, address: SocketAddr) -> Option<IpAddr> {
        match address {
            SocketAddr::V4(_) => self.source_v4.map(IpAddr::V4),
            SocketAddr::V6(_) => self.source_v6.map(IpAddr::V6),
        }
    }

    /// Whether `connect()` could pick the destination's own port as its source port: then an
    /// attempt on a local port that nothing listens on can connect to itself (a TCP
    /// simultaneous open), which must not pass for an open port.
    fn may_reach_itself(&self, destination: SocketAddr) -> bool {
        self.local_ports.contains(&destination.port())
    }
}

/// The local ports `connect()` picks from (`net.ipv4.ip_local_port_range`, which IPv6 shares),
/// read once when the checker is built; every unprivileged port where it cannot be read.
fn local_port_range() -> RangeInclusive<u16> {
    const UNPRIVILEGED: RangeInclusive<u16> = 1024..=u16::MAX;
    let Ok(text) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") else {
        return UNPRIVILEGED;
    };
    let mut bounds = text.split_whitespace().map(str::parse::<u16>);
    match (bounds.next(), bounds.next()) {
        (Some(Ok(low)), Some(Ok(high))) if low <= high => low..=high,
        _ => UNPRIVILEGED,
    }
}

/// Whether a connected socket reached itself: its local address is the destination.
fn reached_itself(socket: SockRef<'_>, destination: SocketAddr) -> bool {
    let local = socket.local_addr().ok().and_then(|local| local.as_socket());
    local.is_some_and(|local| local.ip() == destination.ip() && local.port() == destination.port())
}

/// What an attempt that connected to itself stands for: nothing listens on the port.
fn reached_itself_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionRefused,
        "the attempt connected to itself: nothing listens on the port",
    )
}

/// What `connect()` left us with.
pub(crate) enum Attempt {
    /// The handshake is under way: wait for the socket to become writable.
    InProgress(Connecting),
    /// `connect()` itself answered: the connection was made at once (and has been reset), or
    /// refused, or failed.
    Answered(io::Result<()>),
}

/// A socket whose handshake is under way. Dropping it closes it, with RST when the checker
/// closes with zero linger: whatever state the handshake reached, the server is never left
/// with an established connection.
pub(crate) struct Connecting {
    stream: TcpStream,
    /// The destination, when the attempt could connect to itself (see
    /// [`Binding::may_reach_itself`]).
    may_reach: Option<SocketAddr>,
}

impl Connecting {
    pub(crate) fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// The attempt's outcome, once the poller says it is over: `Ok(())` means connected.
    pub(crate) fn result(&mut self) -> io::Result<()> {
        if let Some(error) = self.stream.take_error().unwrap_or_else(Some) {
            return Err(error);
        }
        self.connected_outcome()
    }

    /// The attempt's outcome as the kernel has it now, whatever the poller has said: `None`
    /// while the handshake is still under way (no answer yet). Asked at the deadline, so that a
    /// check is reported timed out only if the kernel has really seen no answer, not because
    /// the loop had not got round to an event it already had.
    pub(crate) fn result_now(&mut self) -> Option<io::Result<()>> {
        match still_connecting(SockRef::from(&self.stream)) {
            Ok(true) => None,
            Ok(false) => Some(self.connected_outcome()),
            Err(error) => Some(Err(error)),
        }
    }

    /// What a socket that connected stands for: an open port, unless it connected to itself.
    fn connected_outcome(&self) -> io::Result<()> {
        match self.may_reach {
            Some(destination) if reached_itself(SockRef::from(&self.stream), destination) => {
                Err(reached_itself_error())
            }
            _ => Ok(()),
        }
    }
}

/// Opens a socket for `address` and starts connecting it.
///
/// An error before `connect()` (no descriptor, a bad source address) is returned as such: the
/// loop may wait and try again. Everything `connect()` says is an [`Attempt`].
pub(crate) fn start(
    address: SocketAddr,
    zero_linger: bool,
    handshake: Handshake,
    binding: &Binding,
) -> io::Result<Attempt> {
    let socket = open(address, zero_linger, handshake, binding)?;
    let answer = match socket.connect(&SockAddr::from(address)) {
        Err(error) if sys::is_in_progress(&error) => match answered_in_connect(&socket, address) {
            Some(answer) => answer,
            None => {
                return Ok(Attempt::InProgress(Connecting {
                    stream: TcpStream::from_std(std::net::TcpStream::from(socket)),
                    may_reach: binding.may_reach_itself(address).then_some(address),
                }));
            }
        },
        answer => answer,
    };
    Ok(match answer {
        Ok(())
            if binding.may_reach_itself(address) && reached_itself((&socket).into(), address) =>
        {
            Attempt::Answered(Err(reached_itself_error()))
        }
        answer => Attempt::Answered(answer),
    })
}

/// Whether the socket's handshake is still under way: a socket with a peer has connected, one
/// without has either a pending error (the attempt failed) or no answer yet.
fn still_connecting(socket: SockRef<'_>) -> io::Result<bool> {
    if socket.peer_addr().is_ok() {
        return Ok(false);
    }
    match socket.take_error()? {
        Some(error) => Err(error),
        None => Ok(true),
    }
}

/// The outcome of a handshake that `connect()` already completed, which happens to loopback
/// destinations on Linux; `None` when it is still under way (or the destination is elsewhere).
fn answered_in_connect(socket: &Socket, address: SocketAddr) -> Option<io::Result<()>> {
    if !sys::HANDSHAKE_INSIDE_LOOPBACK_CONNECT || !is_loopback(address.ip()) {
        return None;
    }
    match socket.connect(&SockAddr::from(address)) {
        Err(error) if sys::is_already_connecting(&error) => None,
        answer => Some(answer),
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn open(
    address: SocketAddr,
    zero_linger: bool,
    handshake: Handshake,
    binding: &Binding,
) -> io::Result<Socket> {
    let socket = sys::new_stream_socket(Domain::for_address(address))?;
    if handshake == Handshake::HalfOpen {
        sys::hold_back_final_ack(&socket)?;
    }
    if zero_linger {
        socket.set_linger(Some(Duration::ZERO))?;
    }
    if let Some(interface) = &binding.interface {
        sys::bind_interface(&socket, interface)?;
    }
    if let Some(source) = binding.source_for(address) {
        sys::defer_port_choice_to_connect(&socket)?;
        socket.bind(&SockAddr::from(SocketAddr::new(source, 0)))?;
    }
    Ok(socket)
}
