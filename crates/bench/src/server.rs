//! The checked server as the runs reach it: the listener, and the interface the checks' packets
//! cross on the checkers' side, where the delay is captured.

use crate::listener::Listener;

/// The checked server, as the runs reach it.
#[derive(Clone, Copy)]
pub struct Server<'a> {
    /// The listener: its address is checked, its accepted connections counted.
    pub listener: &'a Listener,
    /// The interface the checks' packets cross in the checkers' network namespace.
    pub interface: &'a str,
}

impl<'a> Server<'a> {
    /// A listener on 127.0.0.1, reached over `lo`.
    pub fn loopback(listener: &'a Listener) -> Server<'a> {
        Server {
            listener,
            interface: shaker_wire::LOOPBACK,
        }
    }
}
