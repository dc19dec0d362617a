//! The kernel floor: the least a half-open checker can do, in raw syscalls, as the reference
//! C loop `floor.c -m rst -b 256` does it, on one thread.
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
use std::mem;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::Context;
use socket2::SockRef;

use super::{Counts, Run};
use crate::system;

/// New connects between two polls at most (`floor.c -b 256`).
const CONNECTS_PER_TURN: usize = 256;
/// Events one `epoll_wait` returns at most.
const EVENTS_PER_POLL: usize = 1024;

/// Checks `target` `checks` times, `in_flight` at a time.
pub fn run(
    target: SocketAddrV4,
    checks: u64,
    in_flight: usize,
    timeout: Duration,
) -> anyhow::Result<Run> {
    let address = system::sockaddr_in(target);
    let poller = epoll_create().context("epoll_create1")?;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_POLL];
    let mut sockets = Sockets::default();
    let mut counts = Counts::default();
    let (mut launched, mut done) = (0u64, 0u64);
    let started = Instant::now();
    while done < checks {
        let mut burst = 0;
        while sockets.in_flight < in_flight && launched < checks && burst < CONNECTS_PER_TURN {
            burst += 1;
            launched += 1;
            let socket = open_socket().context("opening a check's socket")?;
            match connect(&socket, &address) {
                Ok(true) => {
                    counts.open += 1;
                    done += 1;
                }
                Ok(false) => {
                    watch(&poller, &socket).context("epoll_ctl(EPOLL_CTL_ADD)")?;
                    sockets.launch(socket, Instant::now());
                }
                Err(error) => {
                    classify(&mut counts, error);
                    done += 1;
                }
            }
        }
        if done >= checks {
            break;
        }
        let now = Instant::now();
        let expired = sockets.expire(now, timeout);
        counts.timed_out += expired;
        done += expired;
        if sockets.in_flight == 0 {
            continue;
        }
        let wait_ms = if sockets.in_flight < in_flight && launched < checks {
            0 // free slots (the cap on connects per turn, or expiries): just poll
        } else {
            sockets.next_deadline(timeout).map_or(-1, |deadline| {
                let left = deadline.saturating_duration_since(now).as_millis() + 1;
                libc::c_int::try_from(left).unwrap_or(libc::c_int::MAX)
            })
        };
        let ready = poll(&poller, &mut events, wait_ms).context("epoll_wait")?;
        for event in &events[..ready] {
            // The socket's descriptor, as registered by `watch`.
            let fd = event.u64 as RawFd;
            match socket_error(fd) {
                Ok(0) => counts.open += 1,
                Ok(errno) => classify(&mut counts, io::Error::from_raw_os_error(errno)),
                Err(error) => classify(&mut counts, error),
            }
            sockets.finish(fd);
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
    if error.raw_os_error() == Some(libc::ECONNREFUSED) {
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

/// The sockets in flight: their descriptors, owned here as raw numbers (as the C loop keeps
/// them), the sequence number of the check on each, and the FIFO of deadlines.
#[derive(Default)]
struct Sockets {
    /// The sequence number of the check on each descriptor; 0 when the descriptor is free.
    sequence_of: Vec<u64>,
    launched: VecDeque<Launched>,
    last_sequence: u64,
    in_flight: usize,
}

impl Sockets {
    /// Takes over a connecting socket started at `started`.
    fn launch(&mut self, socket: OwnedFd, started: Instant) {
        let fd = socket.into_raw_fd();
        let index = fd as usize; // an open descriptor is never negative
        if index >= self.sequence_of.len() {
            self.sequence_of.resize(index + 1, 0);
        }
        self.last_sequence += 1;
        self.sequence_of[index] = self.last_sequence;
        self.launched.push_back(Launched {
            fd,
            sequence: self.last_sequence,
            started,
        });
        self.in_flight += 1;
    }

    /// Closes a finished check's socket (which also takes it out of the epoll set).
    fn finish(&mut self, fd: RawFd) {
        if let Some(sequence) = self.sequence_of.get_mut(fd as usize) {
            if *sequence != 0 {
                *sequence = 0;
                close(fd);
                self.in_flight -= 1;
            }
        }
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
            self.finish(fd);
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
        self.sequence_of.get(entry.fd as usize) == Some(&entry.sequence)
    }
}

impl Drop for Sockets {
    /// Closes the sockets still in flight (when a run fails half-way).
    fn drop(&mut self) {
        for (fd, sequence) in self.sequence_of.iter().enumerate() {
            if *sequence != 0 {
                close(fd as RawFd);
            }
        }
    }
}

/// `epoll_create1(EPOLL_CLOEXEC)`.
fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1() takes no pointers; its result is checked before use.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by epoll_create1() and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A non-blocking, close-on-exec TCP socket with quick ACKs off and zero linger.
fn open_socket() -> io::Result<OwnedFd> {
    let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket() takes no pointers; its result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, kind, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket() and is owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // The same two setsockopt calls as floor.c, through socket2's typed wrappers.
    let options = SockRef::from(&socket);
    options.set_tcp_quickack(false)?;
    options.set_linger(Some(Duration::ZERO))?;
    Ok(socket)
}

/// Starts connecting: true if connected at once, false if in progress, else the error.
fn connect(socket: &OwnedFd, address: &libc::sockaddr_in) -> io::Result<bool> {
    // SAFETY: the pointer and length describe `address`, a sockaddr_in borrowed for the call.
    let result = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (address as *const libc::sockaddr_in).cast(),
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if result == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EINPROGRESS) {
        Ok(false)
    } else {
        Err(error)
    }
}

/// Registers `socket` for writability, its descriptor as the event's data.
fn watch(poller: &OwnedFd, socket: &OwnedFd) -> io::Result<()> {
    let fd = socket.as_raw_fd();
    let mut event = libc::epoll_event {
        events: libc::EPOLLOUT as u32,
        u64: fd as u64,
    };
    // SAFETY: both descriptors are open; the pointer is to `event`, which the kernel copies.
    let result =
        unsafe { libc::epoll_ctl(poller.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits up to `wait_ms` (-1: no limit) for events; returns how many of `events` were filled.
fn poll(
    poller: &OwnedFd,
    events: &mut [libc::epoll_event],
    wait_ms: libc::c_int,
) -> io::Result<usize> {
    let capacity = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
    // SAFETY: the pointer and capacity describe `events`, which the kernel fills at most
    // `capacity` entries of; it outlives the call.
    let ready =
        unsafe { libc::epoll_wait(poller.as_raw_fd(), events.as_mut_ptr(), capacity, wait_ms) };
    match usize::try_from(ready) {
        Ok(ready) => Ok(ready),
        Err(_) => {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(error)
            }
        }
    }
}

/// The pending error of a socket (`SO_ERROR`): 0 if it connected.
fn socket_error(fd: RawFd) -> io::Result<libc::c_int> {
    let mut error: libc::c_int = 0;
    let mut length = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the pointers are to `error` and `length`, which describe a C int the kernel
    // writes at most `length` bytes of; both outlive the call.
    let result = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut error as *mut libc::c_int).cast(),
            &mut length,
        )
    };
    if result == 0 {
        Ok(error)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Closes a descriptor the caller owns. With zero linger, a connected socket sends RST.
fn close(fd: RawFd) {
    // SAFETY: callers pass descriptors they own and never use again; close() takes no
    // pointers. Its result is of no use: the descriptor is gone either way.
    unsafe { libc::close(fd) };
}
