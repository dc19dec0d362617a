//! The open-files limit, for the benchmark (which raises it for ten thousand checks in flight)
//! and the tests (which lower it in child processes to run out of descriptors on purpose).

use std::io;

/// The soft and hard limits of open files of this process.
pub fn open_files() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given, which outlives the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// Sets the soft limit of open files, keeping the hard one.
pub fn set_soft_open_files(soft: u64) -> io::Result<()> {
    set(libc::RLIMIT_NOFILE, soft, open_files()?.1)
}

/// Raises the soft limit of open files to the hard one; returns it.
pub fn raise_open_files() -> io::Result<u64> {
    let (soft, hard) = open_files()?;
    if soft < hard {
        set_soft_open_files(hard)?;
    }
    Ok(hard)
}

/// Turns core dumps off, for a child that is made to abort on purpose.
pub fn disable_core_dumps() -> io::Result<()> {
    set(libc::RLIMIT_CORE, 0, 0)
}

fn set(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct it is given, which outlives the call.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_at_most_the_hard_one() {
        let (soft, hard) = open_files().unwrap();
        assert!(soft <= hard, "{soft} > {hard}");
    }
}
