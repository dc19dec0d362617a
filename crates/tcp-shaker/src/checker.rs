//! The [`Checker`] handle, its builder, and the [`EventLoop`] it drives.
//!
//! A checker is a cheap, cloneable handle to one event-loop thread; every method can be called
//! from any thread or task. This module owns the checker's life: building, starting (on a thread
//! of its own or on the caller's), and stopping.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::thread;

use crate::client::Client;
use crate::engine::{Binding, Config, Engine};
use crate::error::CheckError;
use crate::inbox::{Inbox, LoopFinished};
use crate::options::{CheckOptions, Handshake};
use crate::outcome::Report;
use crate::resolve::{Resolve, SystemResolver};
use crate::target::ToTarget;

/// How many connects the loop starts between two polls, at most.
///
/// The reference C loop needed such a cap to keep closing sockets within the kernel's 200 ms
/// delayed-ACK window with 10 000 checks in flight; 256 kept the SYN-ACK-to-RST delay under
/// 4 ms there.
const DEFAULT_CONNECTS_PER_TURN: usize = 256;
/// Enough for a few slow names (each holds a thread for as long as its DNS server takes) to
/// leave room for every other name.
const DEFAULT_RESOLVER_THREADS: usize = 64;

/// A handle to an event loop that makes half-open TCP checks.
///
/// Cloning is cheap and every clone drives the same loop; the loop stops when the last clone
/// (and the last future or batch made from one) is dropped, or when [`stop`](Checker::stop) is
/// called.
///
/// ```
/// use std::net::TcpListener;
/// use std::time::Duration;
/// use tcp_shaker::{Checker, Outcome};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let checker = Checker::new()?;
/// let report = checker.check(listener.local_addr()?, Duration::from_secs(1))?;
/// assert!(matches!(report.outcome(), Outcome::Open { .. }));
///
/// // The listener's application never saw a connection.
/// listener.set_nonblocking(true)?;
/// assert!(listener.accept().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Checker {
    client: Client,
}

impl Checker {
    /// A checker with default settings, running on a thread of its own.
    ///
    /// Fails only if the system refuses the poller, its waker or the thread.
    pub fn new() -> io::Result<Checker> {
        Checker::builder().spawn()
    }

    /// A builder for a checker with other settings.
    pub fn builder() -> CheckerBuilder {
        CheckerBuilder::default()
    }

    /// Checks `target` and waits for the outcome.
    ///
    /// `options` is a [`Duration`](std::time::Duration) timeout or full [`CheckOptions`]. For a
    /// host name with several addresses, all of them (of the family asked for) are checked at
    /// once: the report is of the first open one, else of the first address in resolver order.
    ///
    /// Blocks the calling thread; in async code use [`check_async`](Checker::check_async).
    /// Returns within the check's `start_within` with [`ErrorKind::NotStarted`](crate::ErrorKind::NotStarted) if the event
    /// loop does not take the check on by then (an [`EventLoop`] that nobody runs, say).
    pub fn check(
        &self,
        target: impl ToTarget,
        options: impl Into<CheckOptions>,
    ) -> Result<Report, CheckError> {
        self.check_async(target, options).wait()
    }

    /// Checks every address `target` resolves to (of the family asked for), at once, and
    /// returns one result per address in resolver order.
    ///
    /// The outer error is for the check as a whole (bad target, name not resolved); an inner one
    /// is for one address (say, IPv6 without a route). A deadline that passes while resolving
    /// gives one report without an address.
    pub fn check_every_address(
        &self,
        target: impl ToTarget,
        options: impl Into<CheckOptions>,
    ) -> Result<Vec<Result<Report, CheckError>>, CheckError> {
        self.check_every_address_async(target, options).wait()
    }

    /// Stops the event loop: every check in flight or queued fails at once with
    /// [`ErrorKind::Stopped`](crate::ErrorKind::Stopped), every socket is closed, and later checks fail the same way.
    ///
    /// Returns once the loop has closed its sockets and its poller (at once if the loop never
    /// ran). When the last handle is dropped, the loop's thread has ended too.
    pub fn stop(&self) {
        self.client.stop();
    }

    /// Whether the checker has been stopped.
    pub fn is_stopped(&self) -> bool {
        self.client.is_stopped()
    }

    /// The handle to the loop that the futures and batches of this checker hold.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }
}

impl fmt::Debug for Checker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checker")
            .field("stopped", &self.is_stopped())
            .finish_non_exhaustive()
    }
}

/// Settings for a [`Checker`], then how to run it.
///
/// ```
/// use std::net::TcpListener;
/// use std::time::Duration;
/// use tcp_shaker::Checker;
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// // Run the loop on a thread of our choosing, then stop it.
/// let (checker, event_loop) = Checker::builder()
///     .source_address("127.0.0.1".parse()?)
///     .build()?;
/// let loop_thread = std::thread::spawn(move || event_loop.run());
/// assert!(checker.check(listener.local_addr()?, Duration::from_secs(1))?.is_open());
/// checker.stop();
/// loop_thread.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct CheckerBuilder {
    config: Config,
}

impl Default for CheckerBuilder {
    fn default() -> CheckerBuilder {
        CheckerBuilder {
            config: Config {
                zero_linger: true,
                handshake: Handshake::platform_default(),
                binding: Binding::default(),
                connects_per_turn: DEFAULT_CONNECTS_PER_TURN,
                max_sockets: default_max_sockets(),
                resolver: Arc::new(SystemResolver),
                resolver_threads: DEFAULT_RESOLVER_THREADS,
            },
        }
    }
}

impl fmt::Debug for CheckerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.config;
        f.debug_struct("CheckerBuilder")
            .field("zero_linger", &config.zero_linger)
            .field("handshake", &config.handshake)
            .field("binding", &config.binding)
            .field("connects_per_turn", &config.connects_per_turn)
            .field("max_sockets", &config.max_sockets)
            .field("resolver_threads", &config.resolver_threads)
            .finish_non_exhaustive()
    }
}

impl CheckerBuilder {
    /// Whether checks close with RST (`true`, the default: the connection never becomes
    /// established on the server) or with FIN (`false`: the server's application accepts each
    /// check and reads end-of-file; for servers that dislike RST). A check can override it with
    /// [`CheckOptions::zero_linger`].
    #[must_use]
    pub fn zero_linger(mut self, zero_linger: bool) -> CheckerBuilder {
        self.config.zero_linger = zero_linger;
        self
    }

    /// How checks end once the server has answered (default:
    /// [`Handshake::platform_default`], half-open on Linux and Android). [`Handshake::Full`]
    /// completes every handshake, as checks must on other systems; building a checker that asks
    /// for [`Handshake::HalfOpen`] where the system cannot hold the final ACK back fails.
    #[must_use]
    pub fn handshake(mut self, handshake: Handshake) -> CheckerBuilder {
        self.config.handshake = handshake;
        self
    }

    /// Sends checks from this local address. Set one per family if needed; a family without a
    /// source address uses the system's choice.
    #[must_use]
    pub fn source_address(mut self, address: IpAddr) -> CheckerBuilder {
        match address {
            IpAddr::V4(v4) => self.config.binding.source_v4 = Some(v4),
            IpAddr::V6(v6) => self.config.binding.source_v6 = Some(v6),
        }
        self
    }

    /// Sends checks through this network interface only (`SO_BINDTODEVICE`; Linux and Android).
    /// Building the checker fails if no interface has that name; elsewhere every check fails
    /// with an error saying so.
    #[must_use]
    pub fn interface(mut self, name: &str) -> CheckerBuilder {
        self.config.binding.interface = Some(name.as_bytes().into());
        self
    }

    /// Resolves host names with `resolver` instead of the system's.
    #[must_use]
    pub fn resolver(mut self, resolver: impl Resolve) -> CheckerBuilder {
        self.config.resolver = Arc::new(resolver);
        self
    }

    /// How many threads may resolve names at once (default 64). Threads start as lookups need
    /// them and end when idle; checks of a name already being looked up share its lookup. When
    /// every thread is busy, further names wait for one, their `start_within` running (not
    /// their timeouts), and fail with [`ErrorKind::NotStarted`](crate::ErrorKind::NotStarted) if none comes free in time.
    #[must_use]
    pub fn resolver_threads(mut self, threads: usize) -> CheckerBuilder {
        self.config.resolver_threads = threads.max(1);
        self
    }

    /// How many connects the loop starts between two polls (default 256). Lower keeps the delay
    /// between SYN-ACK and RST shorter under bursts; higher admits bursts faster.
    #[must_use]
    pub fn connects_per_turn(mut self, connects: usize) -> CheckerBuilder {
        self.config.connects_per_turn = connects.max(1);
        self
    }

    /// How many checks may have a socket open at once (default: the process's soft limit of
    /// open files, less 64 for the rest of the program, or less half of it under a limit below
    /// 128: never more than the limit allows). Further checks wait in the loop's queue for up to
    /// their [`start_within`](crate::CheckOptions::start_within), not their timeouts, instead
    /// of failing for want of descriptors; so do checks that find the process out of
    /// descriptors while the checker's own sockets hold some.
    #[must_use]
    pub fn max_sockets(mut self, sockets: usize) -> CheckerBuilder {
        self.config.max_sockets = sockets.max(1);
        self
    }

    /// How many sockets the checker will keep open at most: what
    /// [`max_sockets`](CheckerBuilder::max_sockets) set, or the default it derives from the
    /// open-files limit. A caller that keeps checks waiting outside the checker can size itself
    /// by it.
    ///
    /// ```
    /// let builder = tcp_shaker::Checker::builder().max_sockets(100);
    /// assert_eq!(builder.socket_limit(), 100);
    /// ```
    pub fn socket_limit(&self) -> usize {
        self.config.max_sockets
    }

    /// Builds the checker and starts its loop on a new thread named `tcp-shaker`.
    pub fn spawn(self) -> io::Result<Checker> {
        let (inbox, event_loop) = self.build_loop()?;
        let loop_thread = thread::Builder::new()
            .name("tcp-shaker".into())
            .spawn(move || event_loop.run())?;
        Ok(Checker {
            client: Client::new(inbox, Some(loop_thread)),
        })
    }

    /// Builds the checker and its loop without starting it: run the loop with
    /// [`EventLoop::run`] on a thread of your choosing. Checks submitted before then wait.
    pub fn build(self) -> io::Result<(Checker, EventLoop)> {
        let (inbox, event_loop) = self.build_loop()?;
        let checker = Checker {
            client: Client::new(inbox, None),
        };
        Ok((checker, event_loop))
    }

    fn build_loop(self) -> io::Result<(Arc<Inbox>, EventLoop)> {
        if self.config.handshake == Handshake::HalfOpen && !crate::sys::CAN_HOLD_BACK_FINAL_ACK {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this system acknowledges a SYN-ACK at once, so half-open checks cannot be made \
                 here; use Handshake::Full",
            ));
        }
        if let Some(interface) = &self.config.binding.interface {
            let name = String::from_utf8_lossy(interface);
            if let Err(error) = crate::sys::interface_index(&name) {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no network interface is named {name:?} (ip link lists them): {error}"),
                ));
            }
        }
        let engine = Engine::new(self.config)?;
        Ok((Arc::clone(engine.inbox()), EventLoop { engine }))
    }
}

/// Descriptors left to the rest of the program by the default [`CheckerBuilder::max_sockets`],
/// at most; under a low open-files limit, half of it.
const DESCRIPTORS_LEFT_TO_THE_PROGRAM: u64 = 64;
/// The default [`CheckerBuilder::max_sockets`] where the open-files limit is unknown or
/// unlimited.
const MAX_SOCKETS_WITHOUT_LIMIT: usize = 1 << 16;

/// The open-files limit less what the rest of the program needs: never more than the limit
/// allows, and at least one.
fn default_max_sockets() -> usize {
    let Some(limit) = crate::sys::open_files_limit() else {
        return MAX_SOCKETS_WITHOUT_LIMIT;
    };
    let left = DESCRIPTORS_LEFT_TO_THE_PROGRAM.min(limit / 2);
    usize::try_from(limit - left)
        .unwrap_or(MAX_SOCKETS_WITHOUT_LIMIT)
        .clamp(1, MAX_SOCKETS_WITHOUT_LIMIT)
}

/// The loop of a checker built with [`CheckerBuilder::build`], to run on a thread of your
/// choosing.
pub struct EventLoop {
    engine: Engine,
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop").finish_non_exhaustive()
    }
}

impl EventLoop {
    /// Runs the loop on the calling thread until the checker is stopped (by
    /// [`Checker::stop`] or by dropping every handle). Returns an error only if polling fails;
    /// the checks in flight then fail with [`ErrorKind::Stopped`](crate::ErrorKind::Stopped).
    ///
    /// Dropping an `EventLoop` without running it stops its checker.
    pub fn run(self) -> io::Result<()> {
        // Dropped last, after the engine (consumed by `run`) has closed everything.
        let _finished = LoopFinished(Arc::clone(self.engine.inbox()));
        self.engine.run()
    }
}
