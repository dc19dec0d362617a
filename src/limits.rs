//! The open-files limit, which bounds how many checks can be in flight: each holds a socket.

/// Descriptors kept back for everything that is not a check's socket (the checker's poller
/// and waker, standard streams, files of targets, the benchmark's listener).
const RESERVED_DESCRIPTORS: u64 = 64;

/// Raises the soft open-files limit to the hard limit, as far as the system allows. Called
/// first, so that the checker, which sizes itself by the soft limit, sees the raised one.
#[cfg(unix)]
pub fn raise_open_files_limit() {
    if let Some(limit) = open_files_limit() {
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: setrlimit only reads the struct passed to it. On failure the limit
            // stays as it was, which is still a working limit.
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
        }
    }
}

#[cfg(not(unix))]
pub fn raise_open_files_limit() {}

/// How many checks may be in flight at once under the open-files limit: at most `wanted`, and
/// at least 1.
pub fn checks_in_flight_allowed(wanted: u64) -> usize {
    let allowed = match soft_open_files_limit() {
        Some(limit) => wanted.min(limit.saturating_sub(RESERVED_DESCRIPTORS)),
        None => wanted,
    };
    usize::try_from(allowed.max(1)).unwrap_or(usize::MAX)
}

#[cfg(unix)]
fn open_files_limit() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed to it.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit)
}

/// The soft limit, or `None` if it is unknown or infinite.
#[cfg(unix)]
fn soft_open_files_limit() -> Option<u64> {
    let limit = open_files_limit()?;
    if limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    #[allow(
        clippy::unnecessary_cast,
        reason = "rlim_t is narrower on some 32-bit targets"
    )]
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn soft_open_files_limit() -> Option<u64> {
    None
}
