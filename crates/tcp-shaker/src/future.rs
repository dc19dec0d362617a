//! Checks as futures, for any executor, and the small `block_on` behind the blocking calls.
//!
//! A future submits its check on first poll and parks its waker in a slot that the event loop
//! fills; it stores a new waker only when the task polling it changes. Dropping it before the
//! result arrives cancels the check, and the loop closes its socket.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::checker::Checker;
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
    Sent(Arc<Slot>),
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
                let sink = Sink::Waiter(Arc::clone(&slot));
                match self.checker.submit(target, &options, self.scope, sink) {
                    Ok(()) => {
                        self.state = State::Sent(slot);
                        Poll::Pending
                    }
                    Err(error) => Poll::Ready(Delivery::failed(error)),
                }
            }
            State::Sent(slot) => match slot.poll(cx) {
                Poll::Ready(delivery) => Poll::Ready(delivery),
                Poll::Pending => {
                    self.state = State::Sent(slot);
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

impl Drop for Pending {
    fn drop(&mut self) {
        if let State::Sent(slot) = &self.state {
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

/// Runs `future` to completion on the calling thread, parking it while the future waits.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static WAKER: Waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    }
    let mut future = pin!(future);
    WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            thread::park();
        }
    })
}
