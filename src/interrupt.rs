//! Ending a run early: Ctrl-C (SIGINT), SIGTERM and SIGHUP all set one flag, which the scheduler
//! reads between turns. The run then ends as if its work were done: the checks in flight are
//! reported as interrupted, the statistics printed, and the exit status is that of what was
//! seen.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Sets the flag on SIGINT, SIGTERM and SIGHUP from now on, and returns it.
pub fn on_signals() -> anyhow::Result<&'static AtomicBool> {
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::Relaxed))
        .context("could not handle Ctrl-C, SIGTERM and SIGHUP")?;
    Ok(&INTERRUPTED)
}
