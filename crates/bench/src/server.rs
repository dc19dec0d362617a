//! The checked server as the runs reach it: the listener, the route the checks take to it, and
//! the interface their packets cross on the checkers' side, where the delay is captured.

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
}

impl Route {
    /// The route in words, for the header of the table.
    pub fn describe(self) -> &'static str {
        match self {
            Route::Loopback => {
                "loopback (127.0.0.1 on lo): the kernel completes the handshake inside connect(), \
                 and the engine reads the outcome with a second connect(), without the poller"
            }
            Route::Veth => {
                "the poller's path: a non-loopback destination, a listener inside a network \
                 namespace of the benchmark's own, reached over a veth pair; the engine \
                 registers each check's socket with epoll, waits for its event, reads SO_ERROR \
                 and closes it, as the floor does. Floor and engine only: std's full connects \
                 are left out"
            }
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
        }
    }

    /// Whether `contender` runs on this route: every one on loopback, the half-open ones over
    /// the veth pair.
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
