//! The open-files limit, which bounds how many checks can be in flight: each holds a socket.

use crate::sys;

/// Descriptors kept back for everything that is not a check's socket (the checker's poller
/// and waker, standard streams, files of targets, the benchmark's listener).
const RESERVED_DESCRIPTORS: u64 = 64;

/// Raises the soft open-files limit to the hard limit, as far as the system allows. Called
/// first, so that the checker, which sizes itself by the soft limit, sees the raised one. On
/// failure the limit stays as it was, which is still a working limit.
pub fn raise_open_files_limit() {
    let Ok(limit) = sys::open_files_limit() else {
        return;
    };
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        let _ = sys::set_open_files_limit(raised);
    }
}

/// How many checks may be in flight at once under the open-files limit: at most `wanted`, and
/// at least 1.
pub fn checks_in_flight_allowed(wanted: u64) -> usize {
    let allowed = match soft_open_files_limit() {
        Some(limit) => wanted.min(limit.saturating_sub(RESERVED_DESCRIPTORS)),
        None => wanted,
    };
    usize::try_from(allowed.max(1)).unwrap_or(usize::MAX)
}

/// The soft limit, or `None` if it is unknown or infinite.
fn soft_open_files_limit() -> Option<u64> {
    let limit = sys::open_files_limit().ok()?;
    if limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    #[allow(
        clippy::useless_conversion,
        reason = "rlim_t is narrower than u64 on some 32-bit targets"
    )]
    u64::try_from(limit.rlim_cur).ok()
}
