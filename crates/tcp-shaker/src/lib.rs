//! TCP health checks that the checked server never notices.
//!
//! A health check only needs to know that the server answers SYN with SYN-ACK. A plain
//! `connect()` then sends the final ACK, the server's application accepts a connection that
//! closes at once, and its log fills with "incomplete startup packet" and "connection reset by
//! peer". `tcp-shaker` sends SYN, waits for SYN-ACK and answers RST: the connection never
//! becomes established, and the application's `accept()` never returns it.
//!
//! On Linux (and Android) this needs no privileges: the socket turns `TCP_QUICKACK` off, so the
//! kernel holds the ACK of SYN-ACK back for up to 200 ms, and sets `SO_LINGER` to zero, so
//! `close()` sends RST. The event loop closes each socket the moment it becomes writable, well
//! inside that window. Other systems cannot hold the ACK back: there the same API makes a full
//! connection and closes it with RST (see [`Outcome`] for what is reported either way).
//!
//! # Checking
//!
//! ```
//! use std::net::TcpListener;
//! use std::time::Duration;
//! use tcp_shaker::Outcome;
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let report = tcp_shaker::check(listener.local_addr()?, Duration::from_secs(1))?;
//! match report.outcome() {
//!     Outcome::Open { rtt } => println!("open, SYN-ACK after {rtt:?}"),
//!     Outcome::Closed => println!("closed: the host answered RST"),
//!     Outcome::TimedOut => println!("no answer within the deadline"),
//!     Outcome::Unreachable => println!("no route to the host"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same check as a future, on any executor, and many checks at once:
//!
//! ```
//! use std::net::TcpListener;
//! use std::time::Duration;
//! use tcp_shaker::Checker;
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let checker = Checker::new()?;
//! let report = pollster::block_on(checker.check_async(listener.local_addr()?, Duration::from_secs(1)))?;
//! assert!(report.is_open());
//!
//! let mut batch = checker.batch();
//! for tag in 0..100 {
//!     batch.submit(tag, listener.local_addr()?, Duration::from_secs(1))?;
//! }
//! assert_eq!(batch.filter(|done| done.result.as_ref().is_ok_and(|r| r.is_open())).count(), 100);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//!
//! A [`Checker`] owns one event-loop thread (a `mio` poller) that serves checks from any
//! number of threads and tasks. Checks in flight sit in a slab keyed by poll token, with their
//! deadlines in a heap; host names are resolved on threads of their own, within the check's
//! timeout. A check's outcome is data ([`Outcome`]); a check that could not be made at all is a
//! [`CheckError`] that names its target.
//!
//! # Whose time a timeout is
//!
//! A check's timeout is the target's time: the time its name takes to resolve, plus the time its
//! SYN waits for an answer, counted from the moment `connect()` sends it. [`Outcome::TimedOut`]
//! means the target (or the network, or its DNS server) was silent for that long:
//! [`Report::phase`] says whether in resolving or in connecting. Time a check spends waiting
//! for the checker itself (a turn of the event loop, a resolver thread, one of its
//! [`max_sockets`](CheckerBuilder::max_sockets)) never counts against the target; it is bounded
//! by [`CheckOptions::start_within`] (by default, as long as the timeout), and a check that
//! could not start within it fails with [`ErrorKind::NotStarted`], having sent nothing.
//!
//! # However the process ends
//!
//! Every socket has zero linger before its SYN goes out, so the kernel resets it whenever it is
//! closed: by the loop, or by the kernel itself when the process is killed. If the event loop
//! ends for any reason, every pending check, future and batch gets [`ErrorKind::Stopped`] at
//! once; a resolver or a waker that panics takes nothing else down with it.
//!
//! # Processes that fork
//!
//! A `fork()` in another thread copies every open descriptor, check sockets included, into the
//! child until it calls `exec()` (the sockets are close-on-exec). A socket caught in that window
//! is really closed, with RST, only at the child's `exec()`, and keeps its local port until then.
//! `std::process::Command` execs at once, which costs nothing noticeable; a child that forks
//! without `exec()` and outlives the 200 ms delayed-ACK timer would let the final ACK out.
//!
//! A checker does not survive into a forked child (its event-loop thread stays in the parent):
//! there its checks fail at once with [`ErrorKind::Stopped`], saying so. Make a new checker in
//! the child.

#![deny(missing_docs, missing_debug_implementations)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod batch;
mod checker;
mod client;
mod delivery;
mod engine;
mod error;
mod future;
pub mod health;
mod inbox;
mod options;
mod outcome;
mod resolve;
mod slab;
mod sys;
mod target;

use std::io;
use std::sync::{Mutex, OnceLock, PoisonError};

pub use crate::batch::{Batch, Completion};
pub use crate::checker::{Checker, CheckerBuilder, EventLoop};
pub use crate::error::{CheckError, ErrorKind};
pub use crate::future::{Check, CheckEveryAddress};
pub use crate::options::{CheckOptions, Family, Handshake};
pub use crate::outcome::{Outcome, Phase, Report};
pub use crate::resolve::{Resolve, SystemResolver};
pub use crate::target::{Host, Target, TargetHost, ToTarget};

/// The shared checker, started on first use: one event-loop thread for the whole process.
///
/// Use it instead of creating a checker per check (which costs a thread and a poller each).
/// Stopping it is permanent for the process; checks on it then fail with
/// [`ErrorKind::Stopped`]. Its sockets live in the network namespace of the thread that first
/// called this function (which matters only to programs that switch namespaces per thread).
///
/// ```
/// # use std::net::TcpListener;
/// # use std::time::Duration;
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let checker = tcp_shaker::default_checker()?;
/// assert!(checker.check(listener.local_addr()?, Duration::from_secs(1))?.is_open());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn default_checker() -> io::Result<&'static Checker> {
    static DEFAULT: OnceLock<Checker> = OnceLock::new();
    static STARTING: Mutex<()> = Mutex::new(());
    if let Some(checker) = DEFAULT.get() {
        return Ok(checker);
    }
    let _starting = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(checker) = DEFAULT.get() {
        return Ok(checker);
    }
    let checker = Checker::new()?;
    Ok(DEFAULT.get_or_init(|| checker))
}

/// Checks `target` with the [`default_checker`] and waits for the outcome; see
/// [`Checker::check`].
pub fn check(
    target: impl ToTarget,
    options: impl Into<CheckOptions>,
) -> Result<Report, CheckError> {
    let target = target.to_target()?;
    let checker = default_checker().map_err(|error| {
        CheckError::from_io(target.to_string(), error)
            .with_detail("the default checker could not start")
    })?;
    checker.check(target, options)
}
