//! Checks as futures, for any executor ([`Checker::check_async`] and its sibling), and the
//! blocking wait behind [`Checker::check`].
//!
//! A future submits its check on first poll and parks its waker in a slot that the event loop
//! fills; it stores a new waker only when the task polling it changes. Dropping it before the
//! result arrives cancels the check, and the loop closes its socket.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::checker::Checker;
use crate::client::{self, Client};
use crate::delivery::{Delivery, EveryAddress, Sink, Slot};
use crate::error::{CheckError, ErrorKind};
use crate::inbox::Scope;
use crate::options::CheckOptions;
use crate::outcome::Report;
use crate::target::{Target, ToTarget};

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

impl Checker {
    /// The same check as [`check`](Checker::check), as a future for any executor.
    ///
    /// Nothing is sent until the future is first polled; its wait for the checker runs from
    /// then, its timeout from the moment its SYN goes out.
    /// Dropping the future cancels the check and closes its socket.
    ///
    /// ```
    /// use std::net::TcpListener;
    /// use std::time::Duration;
    /// use tcp_shaker::Checker;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let checker = Checker::new()?;
    /// let check = checker.check_async(listener.local_addr()?, Duration::from_secs(1));
    /// let report = pollster::block_on(check)?;
    /// assert!(report.is_open());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_async(&self, target: impl ToTarget, options: impl Into<CheckOptions>) -> Check {
        Check::new(self.client().clone(), target.to_target(), options.into())
    }

    /// The same as [`check_every_address`](Checker::check_every_address), as a future.
    pub fn check_every_address_async(
        &self,
        target: impl ToTarget,
        options: impl Into<CheckOptions>,
    ) -> CheckEveryAddress {
        CheckEveryAddress::new(self.client().clone(), target.to_target(), options.into())
    }
}

impl Check {
    fn new(client: Client, target: Result<Target, CheckError>, options: CheckOptions) -> Check {
        Check {
            pending: Pending::new(client, target, options, Scope::Best),
        }
    }

    /// Runs the check on the calling thread, as [`Checker::check`] does.
    pub(crate) fn wait(self) -> Result<Report, CheckError> {
        self.pending.wait().into_best()
    }
}

impl CheckEveryAddress {
    fn new(
        client: Client,
        target: Result<Target, CheckError>,
        options: CheckOptions,
    ) -> CheckEveryAddress {
        CheckEveryAddress {
            pending: Pending::new(client, target, options, Scope::Every),
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

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("state", &self.pending.state_name())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for CheckEveryAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckEveryAddress")
            .field("state", &self.pending.state_name())
            .finish_non_exhaustive()
    }
}

/// The state shared by both futures.
struct Pending {
    client: Client,
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
        client: Client,
        target: Result<Target, CheckError>,
        options: CheckOptions,
        scope: Scope,
    ) -> Pending {
        Pending {
            client,
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
                let request = match client::request(target, &options, self.scope, sink) {
                    Ok(request) => request,
                    Err(error) => return Poll::Ready(Delivery::failed(error)),
                };
                let start_within = request.times.start_within;
                // A refused check has its error in the slot already.
                self.client.submit(request);
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
    /// `not sent`, `sent` or `done`, for `Debug`.
    fn state_name(&self) -> &'static str {
        match self.state {
            State::NotSent(_) => "not sent",
            State::Sent { .. } => "sent",
            State::Done => "done",
        }
    }

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
                self.client.cancel(job);
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
