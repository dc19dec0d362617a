//! Interrupts while the benchmark holds something to clean up (the veth scenario's namespace and
//! pair, the serve and probe scenarios' services): once [`catch`] has run, Ctrl-C (SIGINT),
//! SIGTERM and SIGHUP no longer end the process at once. The signal is noted, the child run or
//! service in progress is stopped, and the benchmark fails with "interrupted", dropping its
//! guards on the way out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::sys;

/// How often [`sleep`] looks for a signal.
const SLEEP_SLICE: Duration = Duration::from_millis(50);

/// The signals caught.
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Set by the handler.
static REQUESTED: AtomicBool = AtomicBool::new(false);

/// The handler: notes the signal, nothing else (storing to an atomic is async-signal-safe).
extern "C" fn note(_signal: libc::c_int) {
    REQUESTED.store(true, Ordering::Relaxed);
}

/// From now on, the [`SIGNALS`] are noted instead of ending the process. (Child processes
/// get the default actions back when they exec.)
pub fn catch() -> anyhow::Result<()> {
    for signal in SIGNALS {
        sys::catch_signal(signal, note).with_context(|| format!("catching signal {signal}"))?;
    }
    Ok(())
}

/// Whether a caught signal has arrived.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// Fails if a caught signal has arrived.
pub fn check() -> anyhow::Result<()> {
    anyhow::ensure!(!requested(), "interrupted by a signal");
    Ok(())
}

/// Sleeps for `duration`, or fails as soon as a caught signal arrives.
pub fn sleep(duration: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + duration;
    loop {
        check()?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(SLEEP_SLICE));
    }
}
