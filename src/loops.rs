//! The event loops a run uses: one checker per loop, one batch across them all.
//!
//! A checker's single loop thread does every system call of its checks; on loopback, where the
//! kernel's own work dominates, one loop saturates one core. Large runs (a scan of every port)
//! go faster with a loop per core, each check made by one of them.

use std::num::NonZeroUsize;
use std::thread;

use anyhow::Context;
use tcp_shaker::{Batch, CheckerBuilder};

/// At most this many loops by default: past a few cores, the checked hosts and the network,
/// not the checker, set the pace.
const MAX_DEFAULT_LOOPS: usize = 4;

/// One loop per CPU core, at most [`MAX_DEFAULT_LOOPS`].
pub fn per_core() -> u16 {
    let cores = thread::available_parallelism().map_or(1, NonZeroUsize::get);
    u16::try_from(cores.min(MAX_DEFAULT_LOOPS)).unwrap_or(1)
}

/// Starts `loops` checkers built alike, and a batch across them.
pub fn start(builder: &CheckerBuilder, loops: u16) -> anyhow::Result<Batch> {
    let checkers = (0..loops.max(1))
        .map(|_| builder.clone().spawn())
        .collect::<Result<Vec<_>, _>>()
        .context("could not start the checker")?;
    Batch::across(checkers).context("no event loop to check with")
}
