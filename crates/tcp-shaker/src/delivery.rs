//! Where finished checks go: a single waiter (a future or a blocked thread), or a queue shared
//! by many checks (a [`Batch`](crate::Batch)).
//!
//! The event loop collects the results of one turn and hands them over at the end of it, so a
//! queue's consumer is woken once per turn, not once per check.
//!
//! Every check gets exactly one result, whatever happens: a [`Sink`] dropped without one (its
//! check lost in a loop that panicked, say) delivers "checker stopped" as it goes. Wakers are
//! the caller's code, run on the loop's thread: each is called under `catch_unwind`, so a
//! waker that panics loses nobody else's result and does not end the loop.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::error::{CheckError, ErrorKind};
use crate::outcome::Report;
use crate::slab::Key;

/// The result of a check with one report per address.
pub(crate) type EveryAddress = Result<Vec<Result<Report, CheckError>>, CheckError>;

/// What a finished check hands to its sink.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// A check of [`Scope::Best`](crate::inbox::Scope::Best), or any check that failed as a whole.
    Best(Result<Report, CheckError>),
    /// A check of [`Scope::Every`](crate::inbox::Scope::Every).
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

/// The receiving end of one check; delivers "checker stopped" if dropped without a result.
pub(crate) struct Sink {
    receiver: Option<Receiver>,
    /// Whether the loop has started the check (see [`Sink::started`]).
    started: bool,
}

enum Receiver {
    Waiter(Arc<Slot>),
    Queue { queue: Arc<Queue>, tag: u64 },
}

impl Sink {
    /// Results go to one waiter (a future, or a blocked thread).
    pub(crate) fn waiter(slot: Arc<Slot>) -> Sink {
        Sink::to(Receiver::Waiter(slot))
    }

    /// Results go to a batch's queue, with this tag.
    /// A check of a batch counts as waiting to start from now until [`Sink::started`].
    pub(crate) fn queue(queue: Arc<Queue>, tag: u64) -> Sink {
        queue.waiting_to_start.fetch_add(1, Ordering::Relaxed);
        Sink::to(Receiver::Queue { queue, tag })
    }

    fn to(receiver: Receiver) -> Sink {
        Sink {
            receiver: Some(receiver),
            started: false,
        }
    }

    /// The loop has started the check: its SYN went out, or its name went to a resolver
    /// thread. (A check that ends without starting stops waiting when it ends.)
    pub(crate) fn started(&mut self) {
        if !std::mem::replace(&mut self.started, true) {
            if let Some(Receiver::Queue { queue, .. }) = &self.receiver {
                queue.waiting_to_start.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether nobody waits for the result any more (a dropped future or batch).
    pub(crate) fn is_abandoned(&self) -> bool {
        self.receiver.as_ref().is_none_or(Receiver::is_abandoned)
    }

    /// Whether results go to `queue`.
    pub(crate) fn is_for(&self, queue: &Arc<Queue>) -> bool {
        matches!(&self.receiver, Some(Receiver::Queue { queue: ours, .. }) if Arc::ptr_eq(ours, queue))
    }

    /// Tells the waiter which job carries its check, so that it can cancel it. Returns false
    /// if the waiter has already gone.
    pub(crate) fn bind(&self, job: Key) -> bool {
        match &self.receiver {
            Some(Receiver::Waiter(slot)) => slot.bind(job),
            Some(Receiver::Queue { .. }) => true,
            None => false,
        }
    }

    /// Hands over one result, on its own.
    pub(crate) fn deliver(self, delivery: Delivery) {
        deliver_all(&mut vec![(self, delivery)]);
    }

    fn queue_of(&self) -> Option<&Arc<Queue>> {
        match &self.receiver {
            Some(Receiver::Queue { queue, .. }) => Some(queue),
            _ => None,
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.started();
        if let Some(receiver) = self.receiver.take() {
            if !receiver.is_abandoned() {
                let error = CheckError::new(ErrorKind::Stopped, String::new())
                    .with_detail("the event loop ended before the check had a result");
                deliver_all(&mut vec![(Sink::to(receiver), Delivery::failed(error))]);
            }
        }
    }
}

impl Receiver {
    fn is_abandoned(&self) -> bool {
        match self {
            Receiver::Waiter(slot) => slot.is_cancelled(),
            Receiver::Queue { queue, .. } => queue.closed.load(Ordering::Relaxed),
        }
    }
}

/// Hands over a turn's results, taking each queue's lock once for its whole run of results and
/// waking its consumer once.
pub(crate) fn deliver_all(deliveries: &mut Vec<(Sink, Delivery)>) {
    let mut pending = deliveries.drain(..).peekable();
    while let Some((mut sink, delivery)) = pending.next() {
        sink.started();
        match sink.receiver.take() {
            None => {}
            Some(Receiver::Waiter(slot)) => slot.deliver(delivery),
            Some(Receiver::Queue { queue, tag }) => {
                let mut state = queue.lock();
                state.completions.push_back((tag, delivery));
                while let Some((next, _)) = pending.peek() {
                    if !next
                        .queue_of()
                        .is_some_and(|next| Arc::ptr_eq(next, &queue))
                    {
                        break;
                    }
                    if let Some((mut next, delivery)) = pending.next() {
                        next.started();
                        if let Some(Receiver::Queue { tag, .. }) = next.receiver.take() {
                            state.completions.push_back((tag, delivery));
                        }
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
            // The waker is the caller's code: a panic in it (or in its drop) is its own task's
            // business, and must not reach the loop.
            let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
        }
    }

    /// Whether the loop has taken the check on (or the waiter has gone).
    pub(crate) fn is_taken(&self) -> bool {
        self.job.load(Ordering::Acquire) != UNBOUND
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
    /// Checks handed to the loop that it has not started yet.
    waiting_to_start: AtomicUsize,
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
            waiting_to_start: AtomicUsize::new(0),
        }
    }

    /// How many of its checks the loops have not started yet.
    pub(crate) fn waiting_to_start(&self) -> usize {
        self.waiting_to_start.load(Ordering::Relaxed)
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
