//! The open-files limit, which bounds how many checks can be in flight: each holds a socket.

/// Descriptors kept back for everything that is not a check's socket (the checker's poller
/// and waker, standard streams, files of targets, the benchmark's listener).
const RESERVED_DESCRIPTORS: u64 = 64;

/// Raises the soft open-files limit to the hard limit, as far as the system allows, and returns
/// how many checks may be in flight at once under it, at most `wanted` and at least 1.
pub fn checks_in_flight_allowed(wanted: u64) -> usize {
    let limit = raise_open_files_limit();
    let allowed = limit.map_or(wanted, |limit| {
        wanted.min(limit.saturating_sub(RESERVED_DESCRIPTORS))
    });
    usize::try_from(allowed.max(1)).unwrap_or(usize::MAX)
}

/// The soft limit in force after trying to raise it, or `None` if it cannot be read.
#[cfg(unix)]
fn raise_open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
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
fn raise_open_files_limit() -> Option<u64> {
    None
}
