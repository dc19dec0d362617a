//! The platform layer: every system call the library makes outside socket2 and mio, and every
//! platform difference, in one place.
//!
//! The rest of the crate asks questions of this module ("may the kernel hold back the ACK of a
//! SYN-ACK here?", "how many descriptors may this process open?") instead of carrying its own
//! `cfg` pairs. Calls that answer 0 or -1 with `errno` go through [`syscall!`], as in mio and
//! socket2.

use std::io;

use socket2::{Domain, Protocol, Socket, Type};

/// Calls a libc function that returns -1 and sets `errno` on failure, turning that into an
/// [`io::Error`].
#[cfg(unix)]
macro_rules! syscall {
    ($function:ident ( $($argument:expr),* $(,)? )) => {{
        // SAFETY: each use states why its arguments are valid for the call.
        #[allow(unused_unsafe)]
        let result = unsafe { libc::$function($($argument),*) };
        if result == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(result)
        }
    }};
}

/// The index of the network interface named `name`, for IPv6 zones (`fe80::1%eth0`).
#[cfg(unix)]
pub(crate) fn interface_index(name: &str) -> io::Result<u32> {
    let name = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the name"))?;
    // SAFETY: if_nametoindex reads the NUL-terminated name it is given, and nothing else.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        index => Ok(index),
    }
}

#[cfg(not(unix))]
pub(crate) fn interface_index(_name: &str) -> io::Result<u32> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "IPv6 zones by interface name are supported on Unix only; give the interface index",
    ))
}

/// The soft limit of open files of this process, or `None` when it is unlimited or unknown.
#[cfg(unix)]
pub(crate) fn open_files_limit() -> Option<u64> {
    // SAFETY: an all-zero rlimit is a valid value for getrlimit to overwrite.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: getrlimit writes into the struct it is given, which outlives the call.
    syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut limit)).ok()?;
    if limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    #[allow(clippy::useless_conversion)] // rlim_t is not u64 on every Unix
    u64::try_from(limit.rlim_cur).ok()
}

#[cfg(not(unix))]
pub(crate) fn open_files_limit() -> Option<u64> {
    None
}

/// Which process this is, as the number of `fork()`s between the first checker's process and
/// this one: a forked child sees a number its parent's checkers were not made with. Read
/// without a system call (`getpid` would cost one per submission): a handler registered with
/// `pthread_atfork` counts forks in the child.
#[cfg(unix)]
pub(crate) fn process_generation() -> u32 {
    use std::sync::Once;
    use std::sync::atomic::{AtomicU32, Ordering};

    static FORKS: AtomicU32 = AtomicU32::new(0);
    static REGISTER: Once = Once::new();

    extern "C" fn count_fork_in_child() {
        FORKS.fetch_add(1, Ordering::Relaxed);
    }

    REGISTER.call_once(|| {
        // SAFETY: the handler only increments an atomic, which is async-signal-safe, as a
        // handler run in a child after fork() must be. Should registration fail, forks go
        // uncounted, and a forked child's checks wait for their start_within instead of
        // failing at once.
        unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) };
    });
    FORKS.load(Ordering::Relaxed)
}

#[cfg(not(unix))]
pub(crate) fn process_generation() -> u32 {
    0
}

/// Whether an error says that the process (or the system) has no descriptor left.
pub(crate) fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(errno::EMFILE | errno::ENFILE))
}

/// Whether this system can hold back the ACK of a SYN-ACK, socket by socket (`TCP_QUICKACK`
/// off): what a half-open check needs. The BSDs, macOS and Windows acknowledge a SYN-ACK at
/// once.
pub(crate) const CAN_HOLD_BACK_FINAL_ACK: bool =
    cfg!(any(target_os = "linux", target_os = "android"));

/// A non-blocking, close-on-exec TCP socket.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn new_stream_socket(domain: Domain) -> io::Result<Socket> {
    // socket2 adds SOCK_CLOEXEC on these systems: one system call for all three properties.
    Socket::new(domain, Type::STREAM.nonblocking(), Some(Protocol::TCP))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn new_stream_socket(domain: Domain) -> io::Result<Socket> {
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Turns off quick ACKs, so that the ACK of SYN-ACK waits on the delayed-ACK timer.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn hold_back_final_ack(socket: &Socket) -> io::Result<()> {
    socket.set_tcp_quickack(false)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn hold_back_final_ack(_socket: &Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "this system acknowledges a SYN-ACK at once: half-open checks need Linux or Android",
    ))
}

/// Sends the socket's packets through this network interface only (`SO_BINDTODEVICE`).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn bind_interface(socket: &Socket, interface: &[u8]) -> io::Result<()> {
    socket.bind_device(Some(interface))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn bind_interface(_socket: &Socket, _interface: &[u8]) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "binding checks to a network interface is supported on Linux and Android only",
    ))
}

/// With a source address, lets `connect()` rather than `bind()` pick the local port, so that
/// ports are shared across destinations (`IP_BIND_ADDRESS_NO_PORT`, which socket2 lacks).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn defer_port_choice_to_connect(socket: &Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let enable: libc::c_int = 1;
    // The pointer and length describe `enable`, which outlives the call, on a socket borrowed
    // for it.
    syscall!(setsockopt(
        socket.as_raw_fd(),
        libc::IPPROTO_IP,
        libc::IP_BIND_ADDRESS_NO_PORT,
        (&enable as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
    ))
    .map(drop)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn defer_port_choice_to_connect(_socket: &Socket) -> io::Result<()> {
    Ok(())
}

/// Whether `connect()` of a loopback destination runs the whole handshake before it returns,
/// so that a second `connect()` tells the outcome at once.
pub(crate) const HANDSHAKE_INSIDE_LOOPBACK_CONNECT: bool =
    cfg!(any(target_os = "linux", target_os = "android"));

/// Whether a non-blocking `connect()` answered that the handshake is under way.
pub(crate) fn is_in_progress(error: &io::Error) -> bool {
    match error.raw_os_error() {
        Some(errno) if cfg!(unix) => errno == errno::EINPROGRESS,
        _ => error.kind() == io::ErrorKind::WouldBlock,
    }
}

/// Whether a second `connect()` answered that the first one is still under way.
pub(crate) fn is_already_connecting(error: &io::Error) -> bool {
    error.raw_os_error() == Some(errno::EALREADY)
}

/// The `errno` values the crate tells apart; on systems without them, values no error has, so
/// that matching falls through to [`io::ErrorKind`].
pub(crate) mod errno {
    #[cfg(unix)]
    pub(crate) use libc::{
        EACCES, EADDRINUSE, EADDRNOTAVAIL, EALREADY, ECONNREFUSED, ECONNRESET, EHOSTDOWN,
        EHOSTUNREACH, EINPROGRESS, EMFILE, ENETDOWN, ENETUNREACH, ENFILE, ENOBUFS, ENODEV, ENOMEM,
        EPERM, ETIMEDOUT,
    };

    #[cfg(not(unix))]
    mod absent {
        pub(crate) const EACCES: i32 = -1;
        pub(crate) const EADDRINUSE: i32 = -2;
        pub(crate) const EADDRNOTAVAIL: i32 = -3;
        pub(crate) const EALREADY: i32 = -4;
        pub(crate) const ECONNREFUSED: i32 = -5;
        pub(crate) const ECONNRESET: i32 = -6;
        pub(crate) const EHOSTDOWN: i32 = -7;
        pub(crate) const EHOSTUNREACH: i32 = -8;
        pub(crate) const EINPROGRESS: i32 = -9;
        pub(crate) const EMFILE: i32 = -10;
        pub(crate) const ENETDOWN: i32 = -11;
        pub(crate) const ENETUNREACH: i32 = -12;
        pub(crate) const ENFILE: i32 = -13;
        pub(crate) const ENOBUFS: i32 = -14;
        pub(crate) const ENODEV: i32 = -15;
        pub(crate) const ENOMEM: i32 = -16;
        pub(crate) const EPERM: i32 = -17;
        pub(crate) const ETIMEDOUT: i32 = -18;
    }
    #[cfg(not(unix))]
    pub(crate) use absent::*;
}
