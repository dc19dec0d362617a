//! CPU time, user and system: of this whole process (every thread: a checker's loop, a
//! listener's, the caller's), or of a child run as `wait4` reports it.

use std::io;
use std::time::Duration;

use crate::sys;

/// User and system CPU time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// Time spent in user space.
    pub user: Duration,
    /// Time spent in the kernel on the process's behalf.
    pub system: Duration,
}

impl CpuTime {
    /// The CPU time this process has used so far (`getrusage(RUSAGE_SELF)`).
    pub fn of_this_process() -> io::Result<CpuTime> {
        sys::own_usage().map(|usage| CpuTime::from(&usage))
    }

    /// The CPU time used between `earlier` and this reading.
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    /// User plus system time.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }
}

impl From<&libc::rusage> for CpuTime {
    /// The CPU time of a resource usage, from `getrusage` or `wait4`.
    fn from(usage: &libc::rusage) -> CpuTime {
        CpuTime {
            user: duration(usage.ru_utime),
            system: duration(usage.ru_stime),
        }
    }
}

/// A timeval as a duration (negative fields, which the kernel never reports, as zero).
fn duration(time: libc::timeval) -> Duration {
    let seconds = u64::try_from(time.tv_sec).unwrap_or(0);
    let micros = u64::try_from(time.tv_usec).unwrap_or(0);
    Duration::from_secs(seconds) + Duration::from_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_cpu_time_and_it_only_grows() {
        let before = CpuTime::of_this_process().unwrap();
        let mut spin = 0u64;
        while CpuTime::of_this_process().unwrap().since(&before).total() == Duration::ZERO {
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
        let after = CpuTime::of_this_process().unwrap();
        assert!(after.user >= before.user && after.system >= before.system);
        assert_eq!(before.since(&after), CpuTime::default());
    }
}
