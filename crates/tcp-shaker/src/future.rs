//! Checks as futures, for any executor, and the small `block_on` behind the blocking calls.
//!
//! A future submits its check on first poll and parks its waker in a slot that the event loop
//! fills; it stores a new waker only when the task polling it changes. Dropping it before the
//! result arrives cancels the check, and the loop closes its socket.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::checker::{self, Checker};
use crate::engine::{Command, Delivery, EveryAddress, Scope, Sink, Slot};
use crate::error::{CheckError, ErrorKind};
use crate::options::CheckOptions;
use crate::outcome::Report;
use crate::target::Target;

/// A check in progress, from [`Checker::check_async`]; resolves to the same result as
/// [`Checker::check`].
#[must_use = "a check does nothing until it is polled"]
pub struct Check {
    pending: Pending,
}

/// A check of every address of a target, from [`Checker::check_every_address_async`].
#[must_use = "a check does nothing until it is polled"]
pub struct CheckEveryAddress {
    pending: Pending,
}

impl Check {
    pub(crate) fn new(
        checker: Checker,
        target: Result<Target, CheckError>,
        options: CheckOptions,
    ) -> Check {
        Check {
            pending: Pending::new(checker, target, options, Scope::Best),
        }
    }

    /// Runs the check on the calling thread, as [`Checker::check`] does.
    pub(crate) fn wait(self) -> Result<Report, CheckError> {
        self.pending.wait().into_best()
    }
}

impl CheckEveryAddress {
    pub(crate) fn new(
        checker: Checker,
        target: Result<Target, CheckError>,
        options: CheckOptions,
    ) -> CheckEveryAddress {
        CheckEveryAddress {
            pending: Pending::new(checker, target, options, Scope::Every),
        }
    }

    /// Runs the check on the calling thread, as [`Checker::check_every_address`] does.
    pub(crate) fn wait(self) -> EveryAddress {
        self.pending.wait().into_every()
    }
}

impl Future for Check {
    type Output = Result<Report, CheckError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.pending.poll(cx).map(Delivery::into_best)
    }
}

impl Future for CheckEveryAddress {
    type Output = EveryAddress;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.pending.poll(cx).map(Delivery::into_every)
    }
}

/// The state shared by both futures.
struct Pending {
    checker: Checker,
    scope: Scope,
    state: State,
}

enum State {
    NotSent(Result<(Target, CheckOptions), CheckError>),
    /// Submitted, and to be taken on by the loop within `start_within`.
    Sent {
        slot: Arc<Slot>,
        start_within: Duration,
    },
    Done,
}

impl Pending {
    fn new(
        checker: Checker,
        target: Result<Target, CheckError>,
        options: CheckOptions,
        scope: Scope,
    ) -> Pending {
        Pending {
            checker,
            scope,
            state: State::NotSent(target.map(|target| (target, options))),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Delivery> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::NotSent(Err(error)) => Poll::Ready(Delivery::failed(error)),
            State::NotSent(Ok((target, options))) => {
                let slot = Arc::new(Slot::new());
                // The waker goes in before the check goes out, so no result can miss it.
                let _ = slot.poll(cx);
                let sink = Sink::waiter(Arc::clone(&slot));
                let request = match checker::request(target, &options, self.scope, sink) {
                    Ok(request) => request,
                    Err(error) => return Poll::Ready(Delivery::failed(error)),
                };
                let start_within = request.start_within;
                // A refused check has its error in the slot already.
                self.checker.submit(request);
                let polled = slot.poll(cx);
                if polled.is_pending() {
                    self.state = State::Sent { slot, start_within };
                }
                polled
            }
            State::Sent { slot, start_within } => match slot.poll(cx) {
                Poll::Ready(delivery) => Poll::Ready(delivery),
                Poll::Pending => {
                    self.state = State::Sent { slot, start_within };
                    Poll::Pending
                }
            },
            State::Done => Poll::Ready(Delivery::failed(
                CheckError::new(ErrorKind::Io, "a finished check")
                    .with_detail("its future was polled again after it completed"),
            )),
        }
    }
}

impl Pending {
    /// Runs the check to completion on the calling thread, parked while it waits. If the loop
    /// has not taken the check on within its `start_within` (nobody runs the loop, or it is
    /// stuck), gives up with [`ErrorKind::NotStarted`] rather than wait for ever.
    fn wait(mut self) -> Delivery {
        thread_local! {
            static WAKER: Waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
        }
        let target = match &self.state {
            State::NotSent(Ok((target, _))) => target.to_string(),
            _ => String::new(),
        };
        WAKER.with(|waker| {
            let mut cx = Context::from_waker(waker);
            let mut give_up_at = None;
            loop {
                if let Poll::Ready(delivery) = self.poll(&mut cx) {
                    return delivery;
                }
                let State::Sent { slot, start_within } = &self.state else {
                    continue;
                };
                if slot.is_taken() {
                    thread::park();
                    continue;
                }
                let give_up_at = *give_up_at.get_or_insert_with(|| Instant::now() + *start_within);
                let Some(left) = give_up_at.checked_duration_since(Instant::now()) else {
                    return Delivery::failed(not_taken_on(target));
                };
                thread::park_timeout(left);
            }
        })
    }
}

/// The error of a check that the loop did not take on in time.
fn not_taken_on(target: String) -> CheckError {
    CheckError::new(ErrorKind::NotStarted, target).with_detail(
        "the event loop did not take the check on in time: it is not running (call \
         EventLoop::run) or is blocked",
    )
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let State::Sent { slot, .. } = &self.state {
            if let Some(job) = slot.cancel() {
                // A stopped checker has already closed everything: nothing left to cancel.
                let _ = self.checker.inbox().send(Command::Cancel(job));
            }
        }
    }
}

/// Wakes a thread blocked in [`block_on`].
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}
