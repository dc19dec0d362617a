//! Local servers and process probes shared by the integration tests.
//!
//! Every server here listens on loopback; nothing a test does reaches beyond 127.0.0.0/8, ::1,
//! or a network namespace the test creates itself.

pub mod child;
pub mod netns;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use tcp_shaker::{CheckError, CheckOptions, Checker, ErrorKind, Report, ToTarget};

pub use shaker_wire::skip::test_name;

/// A generous margin for "within the deadline": CI machines stall, and a test must not flake.
pub const SCHEDULING_MARGIN: Duration = Duration::from_millis(750);

/// A listener on 127.0.0.1 with a free port and a deep accept queue.
pub fn open_listener() -> TcpListener {
    listener_on("127.0.0.1:0".parse().unwrap(), 4096)
}

/// An [`open_listener`] and its address.
pub fn open_port() -> (TcpListener, SocketAddr) {
    let listener = open_listener();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

/// A listener on ::1 with a free port and a deep accept queue.
pub fn open_listener_v6() -> TcpListener {
    listener_on("[::1]:0".parse().unwrap(), 4096)
}

/// A listener on `address` with an accept queue of `backlog`.
pub fn listener_on(address: SocketAddr, backlog: i32) -> TcpListener {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.bind(&address.into()).unwrap();
    socket.listen(backlog).unwrap();
    socket.into()
}

/// A loopback address where nothing listens: the kernel answers SYN with RST.
pub fn closed_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A loopback listener that never answers: its accept queue (`listen(0)`) holds one connection
/// that is never accepted, so the kernel drops every new SYN.
pub struct SilentListener {
    pub address: SocketAddr,
    _listener: TcpListener,
    _queued: TcpStream,
}

impl SilentListener {
    pub fn new() -> SilentListener {
        let listener = listener_on("127.0.0.1:0".parse().unwrap(), 0);
        let address = listener.local_addr().unwrap();
        let queued = TcpStream::connect(address).unwrap();
        // Let the handshake of the filler finish before anyone relies on the queue being full.
        std::thread::sleep(Duration::from_millis(50));
        SilentListener {
            address,
            _listener: listener,
            _queued: queued,
        }
    }
}

/// How many connections `listener`'s application can accept right now (accepting them all).
pub fn accept_all(listener: &TcpListener) -> usize {
    listener.set_nonblocking(true).unwrap();
    let mut accepted = 0;
    while listener.accept().is_ok() {
        accepted += 1;
    }
    listener.set_nonblocking(false).unwrap();
    accepted
}

/// The number of file descriptors this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A blocking check of `address` by a clone of `checker`, on a thread of its own.
pub fn check_on_a_thread(
    checker: &Checker,
    address: SocketAddr,
    timeout: Duration,
) -> JoinHandle<Result<Report, CheckError>> {
    let checker = checker.clone();
    thread::spawn(move || checker.check(address, timeout))
}

/// A check of `target` that must fail: its error, and how long it took. `what` describes the
/// check, for the panic if it gives a report instead.
pub fn failing_check(
    checker: &Checker,
    target: impl ToTarget,
    options: impl Into<CheckOptions>,
    what: &str,
) -> (CheckError, Duration) {
    let started = Instant::now();
    let result = checker.check(target, options);
    let took = started.elapsed();
    match result {
        Err(error) => (error, took),
        Ok(report) => panic!("{what} gave {report:?} after {took:?}"),
    }
}

/// Asserts that `error`, of a check that took `took`, is `NotStarted`, naming `target`, and came
/// once `start_within` had passed (within [`SCHEDULING_MARGIN`]).
pub fn assert_not_started(
    error: &CheckError,
    target: &str,
    took: Duration,
    start_within: Duration,
) {
    assert_eq!(error.kind(), ErrorKind::NotStarted, "{error}");
    assert_eq!(error.target(), target, "{error}");
    assert!(
        took <= start_within + SCHEDULING_MARGIN,
        "NotStarted came after {took:?}, long after start_within {start_within:?}"
    );
}

/// Asserts that none of `total` checks failed: `failures` says how each that did failed, and
/// `failed` how they failed, for the message (with the first ten).
pub fn assert_none_failed(failures: &[String], total: u64, failed: &str) {
    assert!(
        failures.is_empty(),
        "{} of {total} checks {failed}; the first: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
}

/// Asserts that a check failed because its checker stopped, naming `target`.
pub fn assert_stopped(result: &Result<Report, CheckError>, target: &str) {
    match result {
        Err(error) => {
            assert_eq!(error.kind(), ErrorKind::Stopped, "{error}");
            assert_eq!(error.target(), target, "{error}");
        }
        Ok(report) => panic!("expected the check to be stopped, got {report:?}"),
    }
}
