//! The kernel floor: the least a half-open checker can do, in raw syscalls, as the reference
//! C loop `floor.c -m rst -b 256` does it, on one thread. socket2 makes the socket calls (each
//! one system call, the same as the C loop's), [`crate::sys`] the epoll ones.
//!
//! Per check: `socket(SOCK_NONBLOCK | SOCK_CLOEXEC)`, `setsockopt(TCP_QUICKACK, 0)` and
//! `setsockopt(SO_LINGER, {1, 0})`, `connect`, `epoll_ctl(ADD, EPOLLOUT)`, a share of an
//! `epoll_wait` of up to 1024 events, `getsockopt(SO_ERROR)`, `close` (which sends RST). At most
//! 256 new connects are started between two polls, so that refilling thousands of free slots
//! never holds back the closes. Every check has the same timeout, so the checks launched form a
//! FIFO of deadlines; a check that finished leaves a stale entry there, recognised by its
//! sequence number.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::Context;
use socket2::{Domain, SockAddr, Socket, Type};

use super::{Counts, Load, Run};
use crate::sys;

/// New connects between two polls at most (`floor.c -b 256`).
const CONNECTS_PER_TURN: usize = 256;
/// Events one `epoll_wait` returns at most.
const EVENTS_PER_POLL: usize = 1024;

/// Checks `target` as `load` says: `load.checks` times, `load.in_flight` at a time.
pub fn run(target: SocketAddrV4, load: Load) -> anyhow::Result<Run> {
    let address = SockAddr::from(target);
    let poller = sys::epoll_create().context("epoll_create1")?;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_POLL];
    let mut sockets = Sockets::default();
    let mut counts = Counts::default();
    let (mut launched, mut done) = (0u64, 0u64);
    let started = Instant::now();
    while done < load.checks {
        let mut burst = 0;
        while sockets.in_flight < load.in_flight
            && launched < load.checks
            && burst < CONNECTS_PER_TURN
        {
            burst += 1;
            launched += 1;
            let socket = open_socket().context("opening a check's socket")?;
            match connect(&socket, &address) {
                Ok(true) => {
                    counts.open += 1;
                    done += 1;
                }
                Ok(false) => {
                    sys::epoll_add_writable(&poller, socket.as_raw_fd())
                        .context("epoll_ctl(EPOLL_CTL_ADD)")?;
                    sockets.launch(socket, Instant::now());
                }
                Err(error) => {
                    classify(&mut counts, error);
                    done += 1;
                }
            }
        }
        if done >= load.checks {
            break;
        }
        let now = Instant::now();
        let expired = sockets.expire(now, load.timeout);
        counts.timed_out += expired;
        done += expired;
        if sockets.in_flight == 0 {
            continue;
        }
        let wait_ms = if sockets.in_flight < load.in_flight && launched < load.checks {
            0 // free slots (the cap on connects per turn, or expiries): just poll
        } else {
            sockets.next_deadline(load.timeout).map_or(-1, |deadline| {
                let left = deadline.saturating_duration_since(now).as_millis() + 1;
                libc::c_int::try_from(left).unwrap_or(libc::c_int::MAX)
            })
        };
        let ready = sys::epoll_wait(&poller, &mut events, wait_ms).context("epoll_wait")?;
        for event in &events[..ready] {
            // The socket's descriptor, as registered by `epoll_add_writable`.
            let Some(socket) = sockets.finish(event.u64 as RawFd) else {
                continue;
            };
            match socket.take_error() {
                Ok(None) => counts.open += 1,
                Ok(Some(error)) | Err(error) => classify(&mut counts, error),
            }
            // Dropped here: closed, which with zero linger sends RST.
            drop(socket);
            done += 1;
        }
    }
    Ok(Run {
        counts,
        elapsed: started.elapsed(),
    })
}

/// Counts a failed check: refused is closed, anything else an error.
fn classify(counts: &mut Counts, error: io::Error) {
    if error.kind() == io::ErrorKind::ConnectionRefused {
        counts.closed += 1;
    } else {
        counts.error(|| error.to_string());
    }
}

/// One launched check in the FIFO of deadlines.
struct Launched {
    fd: RawFd,
    sequence: u64,
    started: Instant,
}

/// A socket in flight, and the sequence number of its check.
struct InFlight {
    socket: Socket,
    sequence: u64,
}

/// The sockets in flight, indexed by descriptor (as the C loop keeps them), and the FIFO of
/// deadlines. Dropping it closes the sockets still in flight (when a run fails half-way).
#[derive(Default)]
struct Sockets {
    /// The socket on each descriptor that holds a check in flight.
    by_fd: Vec<Option<InFlight>>,
    launched: VecDeque<Launched>,
    last_sequence: u64,
    in_flight: usize,
}

impl Sockets {
    /// Takes over a connecting socket started at `started`.
    fn launch(&mut self, socket: Socket, started: Instant) {
        let fd = socket.as_raw_fd();
        let index = fd as usize; // an open descriptor is never negative
        if index >= self.by_fd.len() {
            self.by_fd.resize_with(index + 1, || None);
        }
        self.last_sequence += 1;
        let sequence = self.last_sequence;
        self.by_fd[index] = Some(InFlight { socket, sequence });
        self.launched.push_back(Launched {
            fd,
            sequence,
            started,
        });
        self.in_flight += 1;
    }

    /// Takes a finished check's socket out of the table (closing it also takes it out of the
    /// epoll set); `None` if no check is in flight on `fd`.
    fn finish(&mut self, fd: RawFd) -> Option<Socket> {
        let in_flight = self.by_fd.get_mut(fd as usize)?.take()?;
        self.in_flight -= 1;
        Some(in_flight.socket)
    }

    /// Closes the sockets whose deadline has passed at `now`, dropping stale entries on the
    /// way; returns how many timed out.
    fn expire(&mut self, now: Instant, timeout: Duration) -> u64 {
        let mut expired = 0;
        while let Some(head) = self.launched.front() {
            if !self.is_live(head) {
                self.launched.pop_front();
                continue;
            }
            if head.started + timeout > now {
                break;
            }
            let fd = head.fd;
            self.launched.pop_front();
            drop(self.finish(fd));
            expired += 1;
        }
        expired
    }

    /// The deadline of the oldest check in flight (after [`expire`](Sockets::expire), the
    /// FIFO's head).
    fn next_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.launched.front().map(|head| head.started + timeout)
    }

    /// Whether a FIFO entry is still the check on its descriptor.
    fn is_live(&self, entry: &Launched) -> bool {
        let on_fd = self.by_fd.get(entry.fd as usize);
        on_fd.is_some_and(|slot| slot.as_ref().is_some_and(|s| s.sequence == entry.sequence))
    }
}

/// A non-blocking, close-on-exec TCP socket with quick ACKs off and zero linger: `socket()`
/// with both flags, and the same two `setsockopt` calls as floor.c.
fn open_socket() -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM.nonblocking(), None)?;
    socket.set_tcp_quickack(false)?;
    socket.set_linger(Some(Duration::ZERO))?;
    Ok(socket)
}

/// Starts connecting: true if connected at once, false if in progress, else the error.
fn connect(socket: &Socket, address: &SockAddr) -> io::Result<bool> {
    match socket.connect(address) {
        Ok(()) => Ok(true),
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
        Err(error) => Err(error),
    }
}
