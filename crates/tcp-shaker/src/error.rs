//! Failures of a check itself, as opposed to its outcome.
//!
//! A port that is closed, silent or unreachable is an answer, an [`Outcome`](crate::Outcome).
//! This module owns the other case: the check could not be made (bad input, a name that does not
//! resolve, a system limit, a stopped checker). Every error names its target and, where the
//! caller can do something about it, says what.

use std::error::Error;
use std::fmt;
use std::io;

/// What kind of failure a [`CheckError`] is; stable, for matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The target text is not `host:port`, or its port is 0 or above 65535.
    InvalidTarget,
    /// The options cannot be honoured: a zero timeout, or a source address of the wrong family.
    InvalidOptions,
    /// The host name did not resolve, or has no address of the requested family.
    Resolve,
    /// The process or the system ran out of something a check needs: file descriptors
    /// (`EMFILE`, `ENFILE`) or memory for sockets (`ENOBUFS`, `ENOMEM`).
    ResourceLimit,
    /// No local address could be used: every local port towards that destination is taken
    /// (`EADDRNOTAVAIL`, `EADDRINUSE`), or the source address is not one of this host's.
    NoLocalAddress,
    /// The checker could not start the check in time: it waited longer than its
    /// [`start_within`](crate::CheckOptions::start_within) for a socket slot, a resolver thread or
    /// a turn of the event loop (or the loop is not running). Nothing was sent to the target, so
    /// this says nothing about it: lower the checks in flight, raise
    /// [`max_sockets`](crate::CheckerBuilder::max_sockets) or the resolver threads, or spread the
    /// work over more checkers.
    NotStarted,
    /// The checker was stopped before the check could finish.
    Stopped,
    /// Any other failure reported by the operating system; its cause is attached.
    Io,
}

impl ErrorKind {
    /// A stable `snake_case` name, for logs and machine-readable output: `invalid_target`,
    /// `invalid_options`, `resolve`, `resource_limit`, `no_local_address`, `not_started`,
    /// `stopped`, `io`.
    ///
    /// ```
    /// assert_eq!(tcp_shaker::ErrorKind::NotStarted.as_str(), "not_started");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidTarget => "invalid_target",
            ErrorKind::InvalidOptions => "invalid_options",
            ErrorKind::Resolve => "resolve",
            ErrorKind::ResourceLimit => "resource_limit",
            ErrorKind::NoLocalAddress => "no_local_address",
            ErrorKind::NotStarted => "not_started",
            ErrorKind::Stopped => "stopped",
            ErrorKind::Io => "io",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a check could not be made, naming the target it was for.
///
/// ```
/// use std::time::Duration;
/// use tcp_shaker::{Checker, ErrorKind};
///
/// let checker = Checker::new()?;
/// let error = checker.check("localhost:http", Duration::from_secs(1)).unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::InvalidTarget);
/// assert_eq!(
///     error.to_string(),
///     r#"invalid target "localhost:http": the port is not a number from 1 to 65535"#
/// );
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct CheckError {
    kind: ErrorKind,
    target: String,
    detail: Option<&'static str>,
    source: Option<io::Error>,
}

impl CheckError {
    pub(crate) fn new(kind: ErrorKind, target: impl Into<String>) -> CheckError {
        CheckError {
            kind,
            target: target.into(),
            detail: None,
            source: None,
        }
    }

    /// An error for `target` from what the operating system reported.
    pub(crate) fn from_io(target: impl Into<String>, error: io::Error) -> CheckError {
        let kind = kind_of_io_error(&error);
        CheckError::new(kind, target).with_source(error)
    }

    pub(crate) fn with_detail(mut self, detail: &'static str) -> CheckError {
        self.detail = Some(detail);
        self
    }

    pub(crate) fn with_source(mut self, source: io::Error) -> CheckError {
        self.source = Some(source);
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The target the check was for, as the caller gave it or as it was resolved.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// What was wrong, in words, when the error carries a description of its own (an invalid
    /// target or option, a name without an address of the family asked for); the operating
    /// system's error is the [`source`](Error::source) instead.
    ///
    /// ```
    /// let error = "localhost:0".parse::<tcp_shaker::Target>().unwrap_err();
    /// assert_eq!(error.detail(), Some("port 0 cannot be checked; give a port from 1 to 65535"));
    /// ```
    pub fn detail(&self) -> Option<&str> {
        self.detail
    }

    /// The operating system's error behind this one, when there is one (its text is already
    /// part of this error's message).
    ///
    /// ```
    /// use std::time::Duration;
    /// let error = tcp_shaker::check("[::1]:0", Duration::from_secs(1)).unwrap_err();
    /// assert!(error.io_error().is_none()); // an invalid target: nothing from the system
    /// ```
    pub fn io_error(&self) -> Option<&io::Error> {
        self.source.as_ref()
    }

    fn headline(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidTarget => "invalid target",
            ErrorKind::InvalidOptions => "invalid options for",
            ErrorKind::Resolve => "could not resolve",
            ErrorKind::ResourceLimit => "out of resources checking",
            ErrorKind::NoLocalAddress => "no local address to check",
            ErrorKind::NotStarted => "checker could not start checking",
            ErrorKind::Stopped => "checker stopped before checking",
            ErrorKind::Io => "could not check",
        }
    }

    /// What the caller can do about it, when there is something to do.
    fn advice(&self) -> Option<&'static str> {
        let errno = self.source.as_ref().and_then(io::Error::raw_os_error);
        match self.kind {
            ErrorKind::ResourceLimit if errno == Some(EMFILE) => Some(
                "raise the open-files limit (ulimit -n) or lower the number of checks in flight",
            ),
            ErrorKind::ResourceLimit => Some("lower the number of checks in flight"),
            ErrorKind::NoLocalAddress if errno == Some(EADDRNOTAVAIL) => Some(
                "no free local port or unusable source address: lower the number of checks in \
                 flight to this destination, widen net.ipv4.ip_local_port_range, or check the \
                 source address",
            ),
            ErrorKind::NoLocalAddress => Some(
                "every local port towards this destination is in use: lower the number of checks \
                 in flight",
            ),
            ErrorKind::NotStarted => Some(
                "nothing was sent to the target; lower the number of checks in flight, raise \
                 max_sockets (the open-files limit) or the resolver threads, or use more event \
                 loops",
            ),
            ErrorKind::Stopped => Some("create a new checker; a stopped one does not restart"),
            ErrorKind::Io if errno == Some(ENODEV) => {
                Some("no such network interface: check the interface name (ip link)")
            }
            _ => None,
        }
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.headline())?;
        if !self.target.is_empty() {
            write!(f, " {}", self.target)?;
        }
        if let Some(detail) = self.detail {
            write!(f, ": {detail}")?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        if let Some(advice) = self.advice() {
            write!(f, " ({advice})")?;
        }
        Ok(())
    }
}

/// The operating system's error is part of the message (see [`CheckError::io_error`]), so it
/// is not also returned as the [`source`](Error::source): a chain printed whole (`{:#}` of
/// `anyhow`) shows it once.
impl Error for CheckError {}

use crate::sys::errno::{EADDRINUSE, EADDRNOTAVAIL, EMFILE, ENFILE, ENOBUFS, ENODEV, ENOMEM};

/// Sorts an operating-system error that stopped a check from being made.
fn kind_of_io_error(error: &io::Error) -> ErrorKind {
    match error.raw_os_error() {
        Some(EMFILE | ENFILE | ENOBUFS | ENOMEM) => return ErrorKind::ResourceLimit,
        Some(EADDRNOTAVAIL | EADDRINUSE) => return ErrorKind::NoLocalAddress,
        _ => {}
    }
    match error.kind() {
        io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse => ErrorKind::NoLocalAddress,
        io::ErrorKind::OutOfMemory => ErrorKind::ResourceLimit,
        _ => ErrorKind::Io,
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn system_limits_are_sorted_and_explained() {
        let error = CheckError::from_io("127.0.0.1:80", io::Error::from_raw_os_error(EMFILE));
        assert_eq!(error.kind(), ErrorKind::ResourceLimit);
        let text = error.to_string();
        assert!(
            text.starts_with("out of resources checking 127.0.0.1:80: "),
            "{text}"
        );
        assert!(text.contains("ulimit -n"), "{text}");

        let error = CheckError::from_io("[::1]:80", io::Error::from_raw_os_error(EADDRNOTAVAIL));
        assert_eq!(error.kind(), ErrorKind::NoLocalAddress);
        assert!(error.to_string().contains("ip_local_port_range"));

        let error = CheckError::from_io("[::1]:80", io::Error::from_raw_os_error(libc::EINVAL));
        assert_eq!(error.kind(), ErrorKind::Io);
        assert!(error.io_error().is_some());
        assert!(
            error.source().is_none(),
            "the message carries the cause already"
        );
    }
}
