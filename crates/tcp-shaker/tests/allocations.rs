//! The hot path allocates nothing per check: a batch of IP checks, once the engine's tables have
//! grown, makes no heap allocation for each further check, in any thread.

use crate::common;
use crate::common::child;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tcp_shaker::Checker;

/// The system allocator, counting allocations made by every thread of this test process.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers every operation to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `checks` checks of `target` with `in_flight` at a time through one batch.
fn run(batch: &mut tcp_shaker::Batch, target: std::net::SocketAddr, checks: u64, in_flight: u64) {
    let mut submitted = 0;
    while submitted < in_flight.min(checks) {
        batch
            .submit(submitted, target, Duration::from_secs(5))
            .unwrap();
        submitted += 1;
    }
    while let Some(completion) = batch.next() {
        assert!(completion.result.unwrap().is_open());
        if submitted < checks {
            batch
                .submit(submitted, target, Duration::from_secs(5))
                .unwrap();
            submitted += 1;
        }
    }
}

#[test]
fn a_batch_of_ip_checks_allocates_nothing_per_check() {
    if !child::alone() {
        return;
    }
    let listener = common::open_listener();
    let target = listener.local_addr().unwrap();
    let checker = Checker::new().unwrap();
    let mut batch = checker.batch();
    // Warm up: the slabs, heaps, queues and buffers grow to their working size.
    run(&mut batch, target, 20_000, 200);

    const CHECKS: u64 = 20_000;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    run(&mut batch, target, CHECKS, 200);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    // A few stray allocations (a buffer growing once more) are not per check; one per hundred
    // checks would be a leak of the property.
    assert!(
        allocations < CHECKS / 100,
        "{allocations} allocations for {CHECKS} checks"
    );
    assert_eq!(common::accept_all(&listener), 0);
}
