//! The command line's system calls, in one place: the open-files limit (`getrlimit`,
//! `setrlimit`). Everything else goes through std or the library.
//!
//! tcp-checker runs on Unix only (it calls libc here, and `--wait` replaces the process with
//! `exec`); `main.rs` refuses to compile elsewhere.

use std::io;

/// The soft and hard limits of open files of this process.
pub fn open_files_limit() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which outlives the call.
    zero_or_errno(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    Ok(limit)
}

/// Sets the soft and hard limits of open files of this process.
pub fn set_open_files_limit(limit: libc::rlimit) -> io::Result<()> {
    // SAFETY: setrlimit only reads the struct it is given, which outlives the call.
    zero_or_errno(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) })
}

/// The result of a call that returns 0, or -1 with `errno` set.
fn zero_or_errno(result: libc::c_int) -> io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
