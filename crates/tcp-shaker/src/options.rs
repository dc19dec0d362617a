//! How one check is made: its timeout and its wait for the checker, the address family, and how
//! the socket is closed.

use std::net::IpAddr;
use std::time::Duration;

use crate::error::{CheckError, ErrorKind};

/// Which addresses of a host name to check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 and IPv6, in the order the resolver gives them.
    #[default]
    Any,
    /// IPv4 addresses only.
    V4,
    /// IPv6 addresses only.
    V6,
}

impl Family {
    /// Whether `ip` belongs to this family.
    pub fn admits(self, ip: IpAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
        }
    }
}

/// How a check's connection attempt ends once the server has answered SYN with SYN-ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Handshake {
    /// SYN, SYN-ACK, RST: the kernel holds the final ACK back (`TCP_QUICKACK` off) and the
    /// checker resets the socket first, so the connection never becomes established and the
    /// server's application never accepts it. Linux and Android only; the default there.
    HalfOpen,
    /// SYN, SYN-ACK, ACK, then RST (or FIN without zero linger): a full connection, which the
    /// server's application accepts. The only choice on the BSDs, macOS and Windows, whose
    /// stacks acknowledge a SYN-ACK at once; available everywhere, for comparison.
    Full,
}

impl Handshake {
    /// [`HalfOpen`](Handshake::HalfOpen) where the system allows it, else
    /// [`Full`](Handshake::Full).
    ///
    /// ```
    /// # #[cfg(target_os = "linux")]
    /// assert_eq!(tcp_shaker::Handshake::platform_default(), tcp_shaker::Handshake::HalfOpen);
    /// ```
    pub fn platform_default() -> Handshake {
        if crate::sys::CAN_HOLD_BACK_FINAL_ACK {
            Handshake::HalfOpen
        } else {
            Handshake::Full
        }
    }
}

/// The settings of one check: a timeout, and optionally an address family and a closing mode.
///
/// A [`Duration`] converts into options with only the timeout set, so the checking methods take
/// either:
///
/// ```
/// use std::net::TcpListener;
/// use std::time::Duration;
/// use tcp_shaker::{CheckOptions, Checker, Family};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let target = listener.local_addr()?;
/// let checker = Checker::new()?;
/// assert!(checker.check(target, Duration::from_secs(1))?.is_open());
///
/// let options = CheckOptions::new(Duration::from_secs(1)).family(Family::V4);
/// assert!(checker.check(target, options)?.is_open());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CheckOptions {
    pub(crate) timeout: Duration,
    pub(crate) family: Family,
    pub(crate) zero_linger: Option<bool>,
    pub(crate) start_within: Option<Duration>,
}

impl CheckOptions {
    /// Options with this timeout: the target's time, name resolution included, counted from
    /// the start of resolution (for a name) and from the moment the SYN goes out, never
    /// including the wait for the checker itself (see [`start_within`](CheckOptions::start_within)).
    ///
    /// A zero timeout is refused when the check starts. A timeout too long to represent is
    /// capped at a year; the kernel gives up on an unanswered SYN long before (about two
    /// minutes with Linux defaults), and that is then reported as [`TimedOut`].
    ///
    /// [`TimedOut`]: crate::Outcome::TimedOut
    #[must_use]
    pub fn new(timeout: Duration) -> CheckOptions {
        CheckOptions {
            timeout,
            family: Family::Any,
            zero_linger: None,
            start_within: None,
        }
    }

    /// Check only addresses of this family (default: [`Family::Any`]).
    #[must_use]
    pub fn family(mut self, family: Family) -> CheckOptions {
        self.family = family;
        self
    }

    /// Close with RST (`true`, the default of a [`Checker`](crate::Checker)) or with FIN
    /// (`false`), overriding the checker's setting for this check.
    ///
    /// With `false` the final ACK rides on the FIN, so the server's application accepts the
    /// connection and reads end-of-file: use it only for servers that dislike RST.
    #[must_use]
    pub fn zero_linger(mut self, zero_linger: bool) -> CheckOptions {
        self.zero_linger = Some(zero_linger);
        self
    }

    /// How long the check may wait for the checker itself before its SYN goes out (default: as
    /// long as its timeout): for a socket slot under back-pressure, a resolver thread, a turn of
    /// the event loop. That wait is never counted against the target; a check still waiting
    /// when it runs out fails with [`ErrorKind::NotStarted`] instead, having sent nothing.
    ///
    /// A batch of more checks than the checker can hold at once
    /// ([`max_sockets`](crate::CheckerBuilder::max_sockets)) waits its turn: give it room
    /// here, or submit checks as earlier ones finish.
    #[must_use]
    pub fn start_within(mut self, wait: Duration) -> CheckOptions {
        self.start_within = Some(wait);
        self
    }

    /// The target's time and the wait allowed for the checker, once checked: a zero timeout
    /// (or a zero `start_within`) is refused, and a huge one capped at a year.
    pub(crate) fn times(&self, target: &dyn ToString) -> Result<Times, CheckError> {
        const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
        if self.timeout.is_zero() {
            return Err(
                CheckError::new(ErrorKind::InvalidOptions, target.to_string())
                    .with_detail("the timeout is zero; give a timeout greater than zero"),
            );
        }
        if self.start_within == Some(Duration::ZERO) {
            return Err(
                CheckError::new(ErrorKind::InvalidOptions, target.to_string())
                    .with_detail("start_within is zero; give the checker some time to start it"),
            );
        }
        let timeout = self.timeout.min(YEAR);
        Ok(Times {
            timeout,
            start_within: self.start_within.unwrap_or(timeout).min(YEAR),
        })
    }
}

/// A check's two times, checked by [`CheckOptions::times`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Times {
    /// The target's time: name resolution plus the wait for an answer to the SYN.
    pub(crate) timeout: Duration,
    /// How long the check may wait for the checker before it starts.
    pub(crate) start_within: Duration,
}

impl From<Duration> for CheckOptions {
    fn from(timeout: Duration) -> CheckOptions {
        CheckOptions::new(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_times_are_refused_and_huge_ones_capped() {
        let error = CheckOptions::new(Duration::ZERO).times(&"x:1").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidOptions);
        assert!(error.to_string().contains("timeout is zero"));
        let error = CheckOptions::new(Duration::from_secs(1))
            .start_within(Duration::ZERO)
            .times(&"x:1")
            .unwrap_err();
        assert!(error.to_string().contains("start_within is zero"));
        let Times {
            timeout,
            start_within,
        } = CheckOptions::new(Duration::MAX).times(&"x:1").unwrap();
        assert!(timeout > Duration::from_secs(3600));
        assert_eq!(start_within, timeout);
        let times = CheckOptions::new(Duration::from_secs(1))
            .start_within(Duration::from_secs(60))
            .times(&"x:1")
            .unwrap();
        assert_eq!(times.start_within, Duration::from_secs(60));
    }

    #[test]
    fn family_filters_addresses() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert!(Family::Any.admits(v4) && Family::Any.admits(v6));
        assert!(Family::V4.admits(v4) && !Family::V4.admits(v6));
        assert!(Family::V6.admits(v6) && !Family::V6.admits(v4));
    }
}
