//! The platform layer: every system call the library makes outside socket2 and mio, and every
//! platform difference, in one place.
//!
//! The rest of the crate asks questions of this module ("may the kernel hold back the ACK of a
//! SYN-ACK here?", "how many descriptors may this process open?") instead of carrying its own
//! `cfg` pairs. Calls that answer 0 or -1 with `errno` go through [`syscall!`], as in mio and
//! socket2.

use std::io;

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

/// The id of the current process, to tell a forked child from the process that made a checker.
pub(crate) fn process_id() -> u32 {
    std::process::id()
}

/// Whether an error says that the process (or the system) has no descriptor left.
#[cfg(unix)]
pub(crate) fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

#[cfg(not(unix))]
pub(crate) fn is_out_of_descriptors(_error: &io::Error) -> bool {
    false
}
