//! The plain baseline: `std::net::TcpStream::connect_timeout`, then drop (a FIN close after a
//! full handshake, which the server's application accepts), on C worker threads that share the
//! N checks.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{Counts, Load, Run};

/// The most worker threads this contender starts; higher concurrency is not run.
pub const MAX_THREADS: usize = 1000;

/// Checks `target` `load.checks` times on `load.in_flight` threads (at most [`MAX_THREADS`]).
pub fn run(target: SocketAddr, load: Load) -> anyhow::Result<Run> {
    anyhow::ensure!(
        load.in_flight <= MAX_THREADS,
        "the std contender runs at most {MAX_THREADS} threads, not {}",
        load.in_flight
    );
    let next = Arc::new(AtomicU64::new(0));
    // The workers wait on this gate, held shut while they are being started.
    let gate = Arc::new(RwLock::new(()));
    let shut = gate
        .write()
        .map_err(|_| anyhow::anyhow!("the start gate is poisoned"))?;
    let mut workers = Vec::with_capacity(load.in_flight);
    for index in 0..load.in_flight {
        let (shared_next, shared_gate) = (Arc::clone(&next), Arc::clone(&gate));
        let worker = thread::Builder::new()
            .name(format!("std-{index}"))
            .spawn(move || {
                drop(shared_gate.read());
                connect_until_done(target, load.checks, load.timeout, &shared_next)
            });
        match worker {
            Ok(worker) => workers.push(worker),
            Err(error) => {
                // Let the workers already started go, with nothing left to check, then fail.
                next.store(load.checks, Ordering::Relaxed);
                drop(shut);
                for worker in workers {
                    let _ = worker.join();
                }
                return Err(error).with_context(|| format!("starting worker thread {index}"));
            }
        }
    }
    let started = Instant::now();
    drop(shut);
    let mut counts = Counts::default();
    for worker in workers {
        let worker_counts = worker
            .join()
            .map_err(|_| anyhow::anyhow!("a worker thread panicked"))?;
        counts.merge(worker_counts);
    }
    Ok(Run {
        counts,
        elapsed: started.elapsed(),
    })
}

/// Takes checks from `next` until all `checks` are taken, and counts their outcomes.
fn connect_until_done(
    target: SocketAddr,
    checks: u64,
    timeout: Duration,
    next: &AtomicU64,
) -> Counts {
    let mut counts = Counts::default();
    while next.fetch_add(1, Ordering::Relaxed) < checks {
        match TcpStream::connect_timeout(&target, timeout) {
            Ok(stream) => {
                counts.open += 1;
                drop(stream);
            }
            Err(error) => match error.kind() {
                io::ErrorKind::ConnectionRefused => counts.closed += 1,
                io::ErrorKind::TimedOut => counts.timed_out += 1,
                _ => counts.error(|| error.to_string()),
            },
        }
    }
    counts
}
