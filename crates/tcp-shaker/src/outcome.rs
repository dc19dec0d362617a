//! What a check found: the port's answer, and the report that carries it.
//!
//! Outcomes are named as nmap names port states; this module owns those names and the mapping
//! from what the kernel reported for a connection attempt to one of them.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// The answer of a port to a check.
///
/// None of these is an error: a closed or silent port is what a health check exists to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The server answered SYN with SYN-ACK: something is listening. `rtt` is the time from
    /// sending SYN to seeing SYN-ACK.
    Open {
        /// Time from `connect()` to the SYN-ACK being seen by the event loop.
        rtt: Duration,
    },
    /// The host answered with RST: it is up, but nothing listens on the port.
    Closed,
    /// No answer within the timeout (nmap calls this *filtered*): the host is down, a firewall
    /// drops the SYN, or the server's accept queue is full; or, in [`Phase::Resolve`], the name
    /// did not resolve in time. Never the checker's own delay: see
    /// [`ErrorKind::NotStarted`](crate::ErrorKind::NotStarted).
    TimedOut,
    /// The network said there is no way there: ICMP host or network unreachable,
    /// administratively prohibited, or a local `unreachable`/`prohibit` route.
    Unreachable,
}

impl Outcome {
    /// Whether the port is open.
    pub fn is_open(&self) -> bool {
        matches!(self, Outcome::Open { .. })
    }

    /// A short lowercase name: `open`, `closed`, `timed out` or `unreachable`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Open { .. } => "open",
            Outcome::Closed => "closed",
            Outcome::TimedOut => "timed out",
            Outcome::Unreachable => "unreachable",
        }
    }

    /// The outcome a connection error stands for, or `None` when the error is a failure of the
    /// check itself (out of file descriptors, no local port, ...).
    pub(crate) fn from_connect_error(error: &io::Error) -> Option<Outcome> {
        use crate::sys::errno::{
            EACCES, ECONNREFUSED, ECONNRESET, EHOSTDOWN, EHOSTUNREACH, ENETDOWN, ENETUNREACH,
            EPERM, ETIMEDOUT,
        };
        match error.raw_os_error() {
            Some(ECONNREFUSED | ECONNRESET) => return Some(Outcome::Closed),
            Some(ETIMEDOUT) => return Some(Outcome::TimedOut),
            Some(EHOSTUNREACH | ENETUNREACH | EHOSTDOWN | ENETDOWN | EACCES | EPERM) => {
                return Some(Outcome::Unreachable);
            }
            Some(_) if cfg!(unix) => return None,
            _ => {}
        }
        match error.kind() {
            io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => {
                Some(Outcome::Closed)
            }
            io::ErrorKind::TimedOut => Some(Outcome::TimedOut),
            io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown
            | io::ErrorKind::PermissionDenied => Some(Outcome::Unreachable),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The part of a check that its outcome came from.
///
/// A check resolves its host name (when it has one), then connects; a [`TimedOut`] outcome says
/// which of the two used up the timeout.
///
/// [`TimedOut`]: Outcome::TimedOut
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Resolving the host name: the deadline passed before the resolver answered, so no SYN was
    /// sent and [`Report::address`] is `None`.
    Resolve,
    /// Connecting: the SYN was sent, and the outcome is the answer to it (or its absence).
    Connect,
}

impl Phase {
    /// A short lowercase name: `resolve` or `connect`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Resolve => "resolve",
            Phase::Connect => "connect",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of checking one address, with the address and how long it took.
///
/// ```
/// use std::net::TcpListener;
/// use std::time::Duration;
/// use tcp_shaker::Checker;
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let report = Checker::new()?.check(listener.local_addr()?, Duration::from_secs(1))?;
/// assert!(report.is_open());
/// assert_eq!(report.address(), Some(listener.local_addr()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    address: Option<SocketAddr>,
    outcome: Outcome,
    elapsed: Duration,
    resolve_time: Option<Duration>,
}

impl Report {
    pub(crate) fn new(
        address: Option<SocketAddr>,
        outcome: Outcome,
        elapsed: Duration,
        resolve_time: Option<Duration>,
    ) -> Report {
        Report {
            address,
            outcome,
            elapsed,
            resolve_time,
        }
    }

    /// The address that was checked; `None` only when the deadline passed while the host name
    /// was still being resolved.
    pub fn address(&self) -> Option<SocketAddr> {
        self.address
    }

    /// What the port answered.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Whether the port is open.
    pub fn is_open(&self) -> bool {
        self.outcome.is_open()
    }

    /// Time from the start of the check (including name resolution, excluding any wait for the
    /// checker itself) to its outcome.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Time spent resolving the host name (the whole of it when the deadline passed while
    /// resolving); `None` when the target was an IP address.
    pub fn resolve_time(&self) -> Option<Duration> {
        self.resolve_time
    }

    /// Which part of the check the outcome came from: [`Phase::Resolve`] only for a check whose
    /// deadline passed while its name was being resolved.
    pub fn phase(&self) -> Phase {
        match self.address {
            None => Phase::Resolve,
            Some(_) => Phase::Connect,
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn outcome_of(errno: i32) -> Option<Outcome> {
        Outcome::from_connect_error(&io::Error::from_raw_os_error(errno))
    }

    #[test]
    fn kernel_errors_map_to_port_states() {
        assert_eq!(outcome_of(libc::ECONNREFUSED), Some(Outcome::Closed));
        assert_eq!(outcome_of(libc::ETIMEDOUT), Some(Outcome::TimedOut));
        assert_eq!(outcome_of(libc::EHOSTUNREACH), Some(Outcome::Unreachable));
        assert_eq!(outcome_of(libc::ENETUNREACH), Some(Outcome::Unreachable));
        assert_eq!(outcome_of(libc::EACCES), Some(Outcome::Unreachable));
        assert_eq!(outcome_of(libc::EMFILE), None);
        assert_eq!(outcome_of(libc::EADDRNOTAVAIL), None);
    }
}
