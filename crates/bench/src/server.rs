//! The checked server as the runs reach it: the listener, the route the checks take to it, and
//! the interface their packets cross on the checkers' side, where the delay is captured.

use std::borrow::Cow;

use serde::Serialize;

use crate::args::Contender;
use crate::listener::Listener;

/// How the checks reach the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// 127.0.0.1 over `lo`: the engine's loopback shortcut.
    Loopback,
    /// An address inside a network namespace of the benchmark's own, over a veth pair: the
    /// engine's poller path.
    Veth,
    /// Across a user-space delay line between two network namespaces of the benchmark's own
    /// (see [`crate::round_trip`]): the poller's path with a real round trip.
    Rtt {
        /// The round trip, milliseconds.
        rtt_ms: u64,
    },
}

impl Route {
    /// The route in words, for the header of the table.
    pub fn describe(self) -> Cow<'static, str> {
        match self {
            Route::Loopback => Cow::Borrowed(
                "loopback (127.0.0.1 on lo): the kernel completes the handshake inside connect(), \
                 and the engine reads the outcome with a second connect(), without the poller",
            ),
            Route::Veth => Cow::Borrowed(
                "the poller's path: a non-loopback destination, a listener inside a network \
                 namespace of the benchmark's own, reached over a veth pair; the engine \
                 registers each check's socket with epoll, waits for its event, reads SO_ERROR \
                 and closes it, as the floor does. Floor and engine only: std's full connects \
                 are left out",
            ),
            Route::Rtt { rtt_ms } => Cow::Owned(format!(
                "a real round trip of {rtt_ms} ms: the checkers in one network namespace of the \
                 benchmark's own, the listener in another, joined by a user-space delay line \
                 (TUN devices; each packet held {} ms each way), so every SYN-ACK arrives a \
                 round trip after its SYN, long after connect() returned, and the checkers' \
                 pollers wait for it. Floor and engine only: std's full connects are left out",
                rtt_ms as f64 / 2.0
            )),
        }
    }

    /// What the figures of this route do not show, for the notes under the table.
    pub fn caveat(self) -> Option<&'static str> {
        match self {
            Route::Loopback => None,
            Route::Veth => Some(
                "Over the veth pair, as on lo, the kernel handles the server side in softirq on \
                 the sending CPU: the SYN-ACK is usually in before connect() returns (a second \
                 connect() would find the socket connected), which no real network's round \
                 trip allows. The engine takes its poller path for every non-loopback address \
                 all the same, so these figures are that path's cost, without a network's \
                 timing.",
            ),
            Route::Rtt { .. } => Some(
                "The delay line runs in this process, on the same CPUs as the child under test: \
                 the server's kernel work, and the client kernel's handling of each SYN-ACK, \
                 happen inside the line's write() calls, so the child's CPU per check covers its \
                 own system calls only, while the line's work competes with it for the CPUs (as \
                 a server on the same machine would). The line adds up to 0.25 ms to each \
                 one-way delay (it reads and writes in batches); the SYN-ACK-to-RST delay is \
                 measured on the client's side of the line, from the SYN-ACK entering the \
                 checkers' namespace to the RST leaving it.",
            ),
        }
    }

    /// Whether `contender` runs on this route: every one on loopback, the half-open ones over
    /// the veth pair and across the delay line.
    pub fn runs(self, contender: Contender) -> bool {
        self == Route::Loopback || contender.half_open()
    }
}

/// The checked server, as the runs reach it.
#[derive(Clone, Copy)]
pub struct Server<'a> {
    /// The listener: its address is checked, its accepted connections counted.
    pub listener: &'a Listener,
    /// How the checks reach it.
    pub route: Route,
    /// The interface the checks' packets cross in the checkers' network namespace.
    pub interface: &'a str,
}

impl<'a> Server<'a> {
    /// A listener on 127.0.0.1, reached over `lo`.
    pub fn loopback(listener: &'a Listener) -> Server<'a> {
        Server {
            listener,
            route: Route::Loopback,
            interface: shaker_wire::LOOPBACK,
        }
    }
}
