//! Where finished checks go: a single waiter (a future or a blocked thread), or a queue shared
//! by many checks (a [`Batch`](crate::Batch)).
//!
//! The event loop collects the results of one turn and hands them over at the end of it, so a
//! queue's consumer is woken once per turn, not once per check.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::slab::Key;
use crate::error::{CheckError, ErrorKind};
use crate::outcome::Report;

/// The result of a check with one report per address.
pub(crate) type EveryAddress = Result<Vec<Result<Report, CheckError>>, CheckError>;

/// What a finished check hands to its sink.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// A check of [`Scope::Best`](super::inbox::Scope::Best), or any check that failed as a whole.
    Best(Result<Report, CheckError>),
    /// A check of [`Scope::Every`](super::inbox::Scope::Every).
    Every(Vec<Result<Report, CheckError>>),
}

impl Delivery {
    pub(crate) fn failed(error: CheckError) -> Delivery {
        Delivery::Best(Err(error))
    }

    /// The single report a best-address check asked for.
    pub(crate) fn into_best(self) -> Result<Report, CheckError> {
        match self {
            Delivery::Best(result) => result,
            Delivery::Every(results) => results.into_iter().next().unwrap_or_else(|| {
                Err(CheckError::new(ErrorKind::Resolve, "").with_detail("no address was checked"))
            }),
        }
    }

    /// The first result, and those of the other addresses if there are any.
    pub(crate) fn into_first_and_others(
        self,
    ) -> (Result<Report, CheckError>, Vec<Result<Report, CheckError>>) {
        match self {
            Delivery::Best(result) => (result, Vec::new()),
            Delivery::Every(mut results) if !results.is_empty() => {
                let first = results.remove(0);
                (first, results)
            }
            every => (every.into_best(), Vec::new()),
        }
    }

    /// The per-address reports an every-address check asked for.
    pub(crate) fn into_every(self) -> EveryAddress {
        match self {
            Delivery::Best(result) => result.map(|report| vec![Ok(report)]),
            Delivery::Every(results) => Ok(results),
        }
    }
}

/// The receiving end of one check.
pub(crate) enum Sink {
    Waiter(Arc<Slot>),
    Queue { queue: Arc<Queue>, tag: u64 },
}

impl Sink {
    /// Whether nobody waits for the result any more (a dropped future or batch).
    pub(crate) fn is_abandoned(&self) -> bool {
        match self {
            Sink::Waiter(slot) => slot.is_cancelled(),
            Sink::Queue { queue, .. } => queue.closed.load(Ordering::Relaxed),
        }
    }

    /// Whether results go to `queue`.
    pub(crate) fn is_for(&self, queue: &Arc<Queue>) -> bool {
        matches!(self, Sink::Queue { queue: ours, .. } if Arc::ptr_eq(ours, queue))
    }

    /// Tells the waiter which job carries its check, so that it can cancel it. Returns false
    /// if the waiter has already gone.
    pub(crate) fn bind(&self, job: Key) -> bool {
        match self {
            Sink::Waiter(slot) => slot.bind(job),
            Sink::Queue { .. } => true,
        }
    }

    /// Hands over one result, on its own.
    pub(crate) fn deliver(self, delivery: Delivery) {
        deliver_all(&mut vec![(self, delivery)]);
    }
}

/// Hands over a turn's results, taking each queue's lock once for its whole run of results and
/// waking its consumer once.
pub(crate) fn deliver_all(deliveries: &mut Vec<(Sink, Delivery)>) {
    let mut pending = deliveries.drain(..).peekable();
    while let Some((sink, delivery)) = pending.next() {
        match sink {
            Sink::Waiter(slot) => slot.deliver(delivery),
            Sink::Queue { queue, tag } => {
                let mut state = queue.lock();
                state.completions.push_back((tag, delivery));
                while let Some((Sink::Queue { queue: next, .. }, _)) = pending.peek() {
                    if !Arc::ptr_eq(next, &queue) {
                        break;
                    }
                    if let Some((Sink::Queue { tag, .. }, delivery)) = pending.next() {
                        state.completions.push_back((tag, delivery));
                    }
                }
                let waiting = std::mem::replace(&mut state.consumer_waiting, false);
                drop(state);
                if waiting {
                    queue.ready.notify_one();
                }
            }
        }
    }
}

/// No job bound yet.
const UNBOUND: usize = 0;
/// The waiter is gone.
const CANCELLED: usize = 1;
/// Bound job keys are stored shifted by this much.
const KEY_OFFSET: usize = 2;

/// A one-result rendezvous between the loop and a future.
pub(crate) struct Slot {
    state: Mutex<SlotState>,
    /// `UNBOUND`, `CANCELLED`, or the packed job key plus `KEY_OFFSET`.
    job: AtomicUsize,
}

#[derive(Default)]
struct SlotState {
    delivery: Option<Delivery>,
    waker: Option<Waker>,
}

impl Slot {
    pub(crate) fn new() -> Slot {
        Slot {
            state: Mutex::new(SlotState::default()),
            job: AtomicUsize::new(UNBOUND),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deliver(&self, delivery: Delivery) {
        let mut state = self.lock();
        state.delivery = Some(delivery);
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The result if it has come; otherwise remembers the task's waker, replacing the stored
    /// one only when it would wake a different task.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<Delivery> {
        let mut state = self.lock();
        if let Some(delivery) = state.delivery.take() {
            return Poll::Ready(delivery);
        }
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            stored => *stored = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn bind(&self, job: Key) -> bool {
        let bound = job.to_usize().wrapping_add(KEY_OFFSET);
        self.job
            .compare_exchange(UNBOUND, bound, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn is_cancelled(&self) -> bool {
        self.job.load(Ordering::Acquire) == CANCELLED
    }

    /// Marks the waiter gone; returns the job to cancel if the loop had already taken it on.
    pub(crate) fn cancel(&self) -> Option<Key> {
        match self.job.swap(CANCELLED, Ordering::AcqRel) {
            UNBOUND | CANCELLED => None,
            bound => Some(Key::from_usize(bound.wrapping_sub(KEY_OFFSET))),
        }
    }
}

/// Results taken from a [`Queue`], with their tags, in the order they finished.
pub(crate) type Arrived = VecDeque<(u64, Delivery)>;

/// How long [`Queue::take_all`] waits for a first result.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    No,
    Until(Instant),
    Forever,
}

/// Results of many checks, in the order they finish.
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
    closed: AtomicBool,
}

#[derive(Default)]
struct QueueState {
    completions: Arrived,
    consumer_waiting: bool,
}

impl Queue {
    pub(crate) fn new() -> Queue {
        Queue {
            state: Mutex::new(QueueState::default()),
            ready: Condvar::new(),
            closed: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves every result that has arrived into `into` (which must be empty, and whose
    /// allocation is swapped in for reuse), first waiting as `wait` says for at least one.
    pub(crate) fn take_all(&self, into: &mut Arrived, wait: Wait) {
        let mut state = self.lock();
        while state.completions.is_empty() {
            state.consumer_waiting = true;
            state = match wait {
                Wait::No => return,
                Wait::Forever => self
                    .ready
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Wait::Until(deadline) => {
                    let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                        return;
                    };
                    self.ready
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        std::mem::swap(&mut state.completions, into);
    }

    /// Tells the loop that nobody will read further results: checks not yet started are dropped
    /// when their turn comes.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}
