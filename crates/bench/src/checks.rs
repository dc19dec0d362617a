//! The engine's measured loop: a fixed number of checks through one batch, a fixed number of
//! them in flight, a new one submitted as each completes (as `tcp-checker` does). The engine
//! contender, the scan and `tcp-checker bench` all measure this loop.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use tcp_shaker::{Batch, Completion};

/// Runs `checks` checks of `target(tag)` for tags 0, 1, ..., keeping `in_flight` of them
/// submitted to `batch`, and hands each completion to `done`. Returns the time from the first
/// submission to the last completion.
pub fn keep_in_flight(
    batch: &mut Batch,
    checks: u64,
    in_flight: usize,
    target: impl Fn(u64) -> SocketAddr,
    timeout: Duration,
    mut done: impl FnMut(Completion),
) -> anyhow::Result<Duration> {
    let first = checks.min(u64::try_from(in_flight).unwrap_or(u64::MAX));
    let started = Instant::now();
    for tag in 0..first {
        batch
            .submit(tag, target(tag), timeout)
            .context("submitting a check")?;
    }
    let mut submitted = first;
    while let Some(completion) = batch.next() {
        done(completion);
        if submitted < checks {
            batch
                .submit(submitted, target(submitted), timeout)
                .context("submitting a check")?;
            submitted += 1;
        }
    }
    Ok(started.elapsed())
}
