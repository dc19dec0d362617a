//! The checked server: a listener on an IPv4 address (127.0.0.1, or the far end of the veth
//! and rtt scenarios' networks) whose "application" is one thread that accepts, counts and
//! closes every connection, the way a real server's accept loop would see them. A half-open
//! check is never one of them: every count above zero is a final ACK that leaked.

use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use crate::procfs;

/// The backlog asked for, unless `net.core.somaxconn` allows more.
const MIN_BACKLOG: i32 = 4096;
/// How long to wait after a run before reading the count: longer than the kernel's 200 ms
/// delayed-ACK timer, so that a final ACK the checker failed to hold back has reached the
/// application by then.
const PAST_DELAYED_ACK: Duration = Duration::from_millis(300);
/// After [`PAST_DELAYED_ACK`], the count must hold still this long.
const STILL: Duration = Duration::from_millis(50);
/// How long the count may keep moving before [`Listener::settle`] gives up waiting.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);

/// A listening socket and the thread that accepts from it; dropping it stops the thread.
#[derive(Debug)]
pub struct Listener {
    socket: Arc<TcpListener>,
    address: SocketAddrV4,
    backlog: i32,
    accepted: Arc<AtomicU64>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Listens on 127.0.0.1 below this network namespace's local port range, and starts
    /// accepting.
    pub fn on_loopback() -> anyhow::Result<Listener> {
        Listener::start(Ipv4Addr::LOCALHOST, procfs::first_local_port())
    }

    /// Listens on `ip` on a free port below `first_local_port` (the highest free one of the
    /// thousand below it, where services listen; one the kernel chooses if none is free), with a
    /// backlog of 4096 or `net.core.somaxconn` if higher, and starts accepting.
    ///
    /// The socket belongs to the calling thread's network namespace, and the accepting thread
    /// starts in it: called from a thread that has entered a namespace, the listener is inside
    /// (and the accept-queue cap read is that namespace's).
    pub fn start(ip: Ipv4Addr, first_local_port: u16) -> anyhow::Result<Listener> {
        let somaxconn = procfs::somaxconn()?;
        let backlog = MIN_BACKLOG.max(somaxconn);
        let socket =
            listen(ip, backlog, first_local_port).with_context(|| format!("listening on {ip}"))?;
        let socket = Arc::new(socket);
        let address = match socket.local_addr().context("the listener's address")? {
            SocketAddr::V4(address) => address,
            SocketAddr::V6(address) => anyhow::bail!("the listener got an IPv6 address {address}"),
        };
        let accepted = Arc::new(AtomicU64::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = thread::Builder::new()
            .name("listener".into())
            .spawn({
                let (socket, accepted, stopping) = (
                    Arc::clone(&socket),
                    Arc::clone(&accepted),
                    Arc::clone(&stopping),
                );
                move || accept_until_stopped(&socket, &accepted, &stopping)
            })
            .context("starting the listener thread")?;
        Ok(Listener {
            socket,
            address,
            backlog: backlog.min(somaxconn),
            accepted,
            stopping,
            thread: Some(thread),
        })
    }

    /// The address checked.
    pub fn address(&self) -> SocketAddrV4 {
        self.address
    }

    /// The accept queue's length, as the kernel caps it.
    pub fn backlog(&self) -> i32 {
        self.backlog
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Waits out the delayed-ACK window after a run, then until the count holds still (the
    /// queue of a full-connect run takes a moment to drain), so that everything a run caused
    /// is counted for it and nothing spills into the next.
    pub fn settle(&self) {
        thread::sleep(PAST_DELAYED_ACK);
        let started = Instant::now();
        loop {
            let before = self.accepted();
            thread::sleep(STILL);
            if self.accepted() == before || started.elapsed() > SETTLE_LIMIT {
                return;
            }
        }
    }
}

impl Drop for Listener {
    /// Stops the accepting thread: shutting a listening socket down wakes a blocked accept().
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        // Failing, the thread was not in accept(): it sees the flag on its next turn.
        let _ = SockRef::from(&*self.socket).shutdown(Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Ports tried for the listener, below the checkers' local port range, which starts at
/// `first_local_port` (services listen there): a check of a port inside that range pays one
/// more system call, which rules out a connection of the checking socket to itself, and a
/// benchmark should measure the common case.
fn service_ports(first_local_port: u16) -> impl Iterator<Item = u16> {
    (1024..first_local_port).rev().take(1000)
}

/// A listening TCP socket on `ip` with `backlog`, on the first free port of [`service_ports`],
/// or one the kernel chooses if none is free.
fn listen(ip: Ipv4Addr, backlog: i32, first_local_port: u16) -> io::Result<TcpListener> {
    for port in service_ports(first_local_port) {
        match listen_on(SocketAddrV4::new(ip, port), backlog) {
            Err(error) if error.kind() == io::ErrorKind::AddrInUse => continue,
            result => return result,
        }
    }
    listen_on(SocketAddrV4::new(ip, 0), backlog)
}

/// A listening TCP socket on `address` with `backlog`.
fn listen_on(address: SocketAddrV4, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SockAddr::from(address))?;
    socket.listen(backlog)?;
    Ok(TcpListener::from(socket))
}

/// Accepts, counts and closes connections until `stopping` is set (and the socket shut down).
fn accept_until_stopped(socket: &TcpListener, accepted: &AtomicU64, stopping: &AtomicBool) {
    loop {
        match socket.accept() {
            Ok((connection, _)) => {
                accepted.fetch_add(1, Ordering::Relaxed);
                drop(connection);
            }
            Err(_) if stopping.load(Ordering::Acquire) => return,
            // A connection reset before it was accepted: the next one.
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                ) => {}
            // Out of descriptors or memory: give the system a moment.
            Err(_) => thread::sleep(Duration::from_millis(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;

    use tcp_shaker::Checker;

    use super::*;

    #[test]
    fn counts_full_connects_and_never_a_half_open_check() {
        let listener = Listener::on_loopback().unwrap();
        let address = SocketAddr::V4(listener.address());
        assert!(address.port() < procfs::first_local_port());
        let checker = Checker::new().unwrap();
        for _ in 0..8 {
            let report = checker.check(address, Duration::from_secs(1)).unwrap();
            assert!(report.is_open(), "{report:?}");
        }
        listener.settle();
        assert_eq!(listener.accepted(), 0);

        for _ in 0..3 {
            drop(TcpStream::connect(address).unwrap());
        }
        listener.settle();
        assert_eq!(listener.accepted(), 3);
    }
}
