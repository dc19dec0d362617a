//! The open-files limit, which bounds how many checks can be in flight: each holds a socket.
//! How many that allows is the library's to say ([`tcp_shaker::CheckerBuilder::socket_limit`]);
//! the command line only raises the limit first.

use crate::sys;

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

/// How many checks may be in flight at once: at most `wanted`, at most what `checker` keeps
/// open under the open-files limit, and at least 1.
pub fn checks_in_flight_allowed(wanted: u64, checker: &tcp_shaker::CheckerBuilder) -> usize {
    usize::try_from(wanted)
        .unwrap_or(usize::MAX)
        .min(checker.socket_limit())
        .max(1)
}
