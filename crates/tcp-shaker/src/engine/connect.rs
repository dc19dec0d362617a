//! One half-open connection attempt: the socket, its options, and `connect()`.
//!
//! On Linux and Android the socket is created non-blocking and close-on-exec in one call, with
//! `TCP_QUICKACK` off so that the kernel delays the ACK of SYN-ACK (up to 200 ms) instead of
//! sending it. The event loop closes the socket as soon as it is writable, after setting
//! `SO_LINGER {on, 0}` so that `close()` sends RST: SYN, SYN-ACK, RST, and the server's
//! application never accepts anything. (The linger option is set at close rather than at
//! creation so that a refused attempt, which has nothing left to reset, costs one system call
//! less; dropping a [`Connecting`] socket for any other reason still resets it.)
//!
//! Other systems (the BSDs, macOS, Windows) acknowledge a SYN-ACK at once and offer no switch to
//! hold it back, so there the same steps make a full connection, closed with RST: the server's
//! application may see it accepted and reset.
//!
//! To a loopback address, Linux runs the whole handshake inside `connect()`: the SYN is
//! delivered, and the SYN-ACK or RST comes back, before the call returns. There the outcome is
//! read at once with a second `connect()`, which answers 0 once connected, `EALREADY` while
//! connecting, or the attempt's error, and sends nothing. That saves registering the socket with
//! the poller and waiting for an event it already has.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use mio::net::TcpStream;
use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};

/// Where the checker's sockets come from: a source address per family and a network interface.
#[derive(Clone, Debug, Default)]
pub(crate) struct Binding {
    pub(crate) source_v4: Option<Ipv4Addr>,
    pub(crate) source_v6: Option<Ipv6Addr>,
    pub(crate) interface: Option<Box<[u8]>>,
}

impl Binding {
    fn source_for(&self, address: SocketAddr) -> Option<IpAddr> {
        match address {
            SocketAddr::V4(_) => self.source_v4.map(IpAddr::V4),
            SocketAddr::V6(_) => self.source_v6.map(IpAddr::V6),
        }
    }
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
    reset_on_close: bool,
}

impl Connecting {
    pub(crate) fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// The attempt's error, once the poller says it is over: `Ok(())` means connected.
    pub(crate) fn result(&self) -> io::Result<()> {
        match self.stream.take_error() {
            Ok(None) => Ok(()),
            Ok(Some(error)) | Err(error) => Err(error),
        }
    }

    /// Closes a socket whose attempt failed: there is no connection left to reset.
    pub(crate) fn close_failed(mut self) {
        self.reset_on_close = false;
    }
}

impl Drop for Connecting {
    fn drop(&mut self) {
        if self.reset_on_close {
            // Should this fail, close() sends FIN instead; nothing better can be done here.
            let _ = SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        }
    }
}

/// Opens a socket for `address` and starts connecting it.
pub(crate) fn start(address: SocketAddr, zero_linger: bool, binding: &Binding) -> Attempt {
    let socket = match open(address, binding) {
        Ok(socket) => socket,
        Err(error) => return Attempt::Answered(Err(error)),
    };
    let answer = match socket.connect(&SockAddr::from(address)) {
        Err(error) if is_in_progress(&error) => match answered_in_connect(&socket, address) {
            Some(answer) => answer,
            None => {
                return Attempt::InProgress(Connecting {
                    stream: TcpStream::from_std(std::net::TcpStream::from(socket)),
                    reset_on_close: zero_linger,
                });
            }
        },
        answer => answer,
    };
    if answer.is_ok() && zero_linger {
        // Connected: reset it. Should this fail, close() sends FIN instead.
        let _ = socket.set_linger(Some(Duration::ZERO));
    }
    Attempt::Answered(answer)
}

/// The outcome of a handshake that `connect()` already completed, which happens to loopback
/// destinations on Linux; `None` when it is still under way (or the destination is elsewhere).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn answered_in_connect(socket: &Socket, address: SocketAddr) -> Option<io::Result<()>> {
    if !is_loopback(address.ip()) {
        return None;
    }
    match socket.connect(&SockAddr::from(address)) {
        Err(error) if error.raw_os_error() == Some(libc::EALREADY) => None,
        answer => Some(answer),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn answered_in_connect(_socket: &Socket, _address: SocketAddr) -> Option<io::Result<()>> {
    None
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn open(address: SocketAddr, binding: &Binding) -> io::Result<Socket> {
    let domain = Domain::for_address(address);
    let socket = new_nonblocking_socket(domain)?;
    hold_back_final_ack(&socket)?;
    if let Some(interface) = &binding.interface {
        bind_interface(&socket, interface)?;
    }
    if let Some(source) = binding.source_for(address) {
        defer_port_choice_to_connect(&socket)?;
        socket.bind(&SockAddr::from(SocketAddr::new(source, 0)))?;
    }
    Ok(socket)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn new_nonblocking_socket(domain: Domain) -> io::Result<Socket> {
    // socket2 adds SOCK_CLOEXEC on these systems: one system call for all three properties.
    Socket::new(domain, Type::STREAM.nonblocking(), Some(Protocol::TCP))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn new_nonblocking_socket(domain: Domain) -> io::Result<Socket> {
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Turns off quick ACKs, so that the ACK of SYN-ACK waits on the delayed-ACK timer.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn hold_back_final_ack(socket: &Socket) -> io::Result<()> {
    socket.set_tcp_quickack(false)
}

/// Nothing to do: these systems acknowledge SYN-ACK at once.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn hold_back_final_ack(_socket: &Socket) -> io::Result<()> {
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_interface(socket: &Socket, interface: &[u8]) -> io::Result<()> {
    socket.bind_device(Some(interface))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn bind_interface(_socket: &Socket, _interface: &[u8]) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "binding checks to a network interface is supported on Linux and Android only",
    ))
}

/// With a source address, lets `connect()` rather than `bind()` pick the local port, so that
/// ports are shared across destinations (`IP_BIND_ADDRESS_NO_PORT`).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn defer_port_choice_to_connect(socket: &Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let enable: libc::c_int = 1;
    // SAFETY: a plain integer option on a socket this function borrows; the pointer and length
    // describe `enable`, which outlives the call.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&enable as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn defer_port_choice_to_connect(_socket: &Socket) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn is_in_progress(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::EINPROGRESS)
}

#[cfg(not(unix))]
fn is_in_progress(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock
}
