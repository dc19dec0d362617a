//! The system calls the benchmark makes itself, where neither std nor socket2 has them: the
//! floor's epoll set, the parent's `wait4` of a child run, the CPU time of this process, the
//! signal handler of the network scenarios, and for the services under test: a signal to stop
//! one, its death with the thread that started it, and the length of a clock tick. Calls that
//! answer -1 and set `errno` go through [`syscall!`], as in mio and socket2.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Calls a libc function that returns -1 and sets `errno` on failure, turning that into an
/// [`io::Error`].
macro_rules! syscall {
    ($function:ident ( $($argument:expr),* $(,)? )) => {{
        // SAFETY: each use states why its arguments are valid for the call.
        #[allow(unused_unsafe)]
        let result = unsafe { libc::$function($($argument),*) };
        if result == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(result)
        }
    }};
}

/// `epoll_create1(EPOLL_CLOEXEC)`: a new epoll set.
pub fn epoll_create() -> io::Result<OwnedFd> {
    // epoll_create1() takes no pointers.
    let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
    // SAFETY: `fd` was just returned by epoll_create1() and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds `fd` to the epoll set `poller`, for writability, with `fd` itself as the event's data.
pub fn epoll_add_writable(poller: &OwnedFd, fd: RawFd) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: libc::EPOLLOUT as u32,
        u64: fd as u64,
    };
    // Both descriptors are open; the pointer is to `event`, which the kernel copies.
    syscall!(epoll_ctl(
        poller.as_raw_fd(),
        libc::EPOLL_CTL_ADD,
        fd,
        &mut event
    ))?;
    Ok(())
}

/// Waits up to `wait_ms` (-1: no limit) for events of `poller`; returns how many of `events`
/// were filled (none when a signal interrupted the wait).
pub fn epoll_wait(
    poller: &OwnedFd,
    events: &mut [libc::epoll_event],
    wait_ms: libc::c_int,
) -> io::Result<usize> {
    let capacity = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
    // The pointer and capacity describe `events`, which the kernel fills at most `capacity`
    // entries of; it outlives the call.
    match syscall!(epoll_wait(
        poller.as_raw_fd(),
        events.as_mut_ptr(),
        capacity,
        wait_ms
    )) {
        Ok(ready) => Ok(usize::try_from(ready).unwrap_or(0)),
        Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(error) => Err(error),
    }
}

/// What `wait4` found of a child: nothing yet, or its wait status and resource usage.
pub enum Reaped {
    /// The child is still running.
    Running,
    /// The child has exited (or was killed).
    Exited {
        /// Its wait status.
        status: libc::c_int,
        /// Its resource usage.
        usage: libc::rusage,
    },
}

/// `wait4(pid, WNOHANG)`: reaps the child `pid` if it has exited (an interrupted wait counts as
/// still running).
pub fn reap(pid: libc::pid_t) -> io::Result<Reaped> {
    let mut status = 0;
    let mut usage = zeroed_rusage();
    // The pointers are to `status` and `usage`, live for the call, which the kernel fills.
    match syscall!(wait4(pid, &mut status, libc::WNOHANG, &mut usage)) {
        Ok(reaped) if reaped == pid => Ok(Reaped::Exited { status, usage }),
        Ok(_) => Ok(Reaped::Running),
        Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(Reaped::Running),
        Err(error) => Err(error),
    }
}

/// `getrusage(RUSAGE_SELF)`: the resource usage of this whole process, every thread.
pub fn own_usage() -> io::Result<libc::rusage> {
    let mut usage = zeroed_rusage();
    // The pointer is to `usage`, live for the call, which the kernel fills.
    syscall!(getrusage(libc::RUSAGE_SELF, &mut usage))?;
    Ok(usage)
}

/// Installs `handler` for `signal`, restarting the system calls it interrupts.
pub fn catch_signal(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: sigaction is a plain C struct of a handler address, a signal set and integers;
    // all zeroes (an empty mask, no flags) is a valid value of it.
    let mut action: libc::sigaction = unsafe { mem::zeroed() };
    action.sa_sigaction = handler as libc::sighandler_t;
    action.sa_flags = libc::SA_RESTART;
    // The pointer is to `action`, which outlives the call; the old action is not asked for
    // (null). The caller's handler must be async-signal-safe.
    syscall!(sigaction(signal, &action, std::ptr::null_mut()))?;
    Ok(())
}

/// `kill(pid, signal)`: sends `signal` to the process `pid`.
pub fn send_signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // kill() takes no pointers.
    syscall!(kill(pid, signal))?;
    Ok(())
}

/// Makes the process that `command` starts get SIGKILL when the thread that starts it ends
/// (`PR_SET_PDEATHSIG`), so that a service under test cannot outlive a benchmark killed
/// outright, whose guards never ran.
pub fn die_with_parent(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec, and makes only prctl(), which
    // is async-signal-safe, allocating nothing.
    unsafe {
        command.pre_exec(|| {
            // prctl(PR_SET_PDEATHSIG) takes the signal number as its only argument.
            syscall!(prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong
            ))?;
            Ok(())
        });
    }
}

/// The length of a clock tick, the unit of the CPU times of `/proc/PID/stat`
/// (`sysconf(_SC_CLK_TCK)`, 100 a second on Linux).
pub fn clock_tick() -> Duration {
    static TICK: OnceLock<Duration> = OnceLock::new();
    *TICK.get_or_init(|| {
        // sysconf() takes no pointers.
        let per_second = syscall!(sysconf(libc::_SC_CLK_TCK)).unwrap_or(100);
        Duration::from_secs(1) / u32::try_from(per_second.max(1)).unwrap_or(100)
    })
}

/// An all-zero `rusage`, for the kernel to fill.
fn zeroed_rusage() -> libc::rusage {
    // SAFETY: rusage is a plain C struct of integers and timevals; all zeroes is a valid value
    // of it.
    unsafe { mem::zeroed() }
}
