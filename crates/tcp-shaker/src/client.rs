//! The client side of one event loop: what a [`Checker`](crate::Checker), its futures and its
//! batches each hold.
//!
//! A [`Client`] is a cheap, cloneable handle to the loop's [`Inbox`] and, when the checker
//! spawned it, the loop's thread. Every way of checking talks to the loop through it: it turns
//! a target and its options into a [`Request`], hands requests over one at a time or in bulk,
//! cancels, and stops. The last clone to go stops the loop and joins its thread, so that the
//! loop's own descriptors are closed once nothing can use them.

use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crate::delivery::{Queue, Sink};
use crate::error::CheckError;
use crate::inbox::{Command, Inbox, Request, Scope};
use crate::options::CheckOptions;
use crate::slab::Key;
use crate::target::Target;

/// A handle to one event loop.
#[derive(Clone)]
pub(crate) struct Client {
    shared: Arc<Shared>,
}

/// Stops the loop when the last client goes.
struct Shared {
    inbox: Arc<Inbox>,
    /// The loop's thread, when the checker spawned it: joined on drop.
    loop_thread: Option<JoinHandle<io::Result<()>>>,
}

impl Client {
    pub(crate) fn new(
        inbox: Arc<Inbox>,
        loop_thread: Option<JoinHandle<io::Result<()>>>,
    ) -> Client {
        Client {
            shared: Arc::new(Shared { inbox, loop_thread }),
        }
    }

    /// Hands a check to the loop; if it is refused (a stopped checker, a forked process), the
    /// check's sink has its error.
    pub(crate) fn submit(&self, request: Request) {
        let _ = self.shared.inbox.send(Command::Check(request));
    }

    /// Hands every check of `requests` to the loop at once, leaving it empty.
    pub(crate) fn submit_all(&self, requests: &mut Vec<Command>) {
        self.shared.inbox.send_all(requests);
    }

    /// Cancels the check the loop took on as `job`; its socket is closed.
    pub(crate) fn cancel(&self, job: Key) {
        // A stopped checker has already closed everything: nothing left to cancel.
        let _ = self.shared.inbox.send(Command::Cancel(job));
    }

    /// Cancels every check whose results go to `queue`, whose batch is gone.
    pub(crate) fn abandon(&self, queue: &Arc<Queue>) {
        let _ = self.shared.inbox.send(Command::Abandon(Arc::clone(queue)));
    }

    /// Stops the loop; see [`Checker::stop`](crate::Checker::stop).
    pub(crate) fn stop(&self) {
        self.shared.inbox.stop();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.shared.inbox.is_stopped()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.inbox.stop();
        if self.inbox.is_other_process() {
            // A forked child has a copy of the handle but not the thread: nothing to join.
            return;
        }
        if let Some(loop_thread) = self.loop_thread.take() {
            // The last handle can be dropped on the loop's own thread (by a waker it runs).
            if loop_thread.thread().id() != thread::current().id() {
                let _ = loop_thread.join();
            }
        }
    }
}

/// A request for the loop, submitted now: its wait for the checker starts here.
pub(crate) fn request(
    target: Target,
    options: &CheckOptions,
    scope: Scope,
    sink: Sink,
) -> Result<Request, CheckError> {
    let times = options.times(&target)?;
    Ok(Request {
        target,
        submitted: Instant::now(),
        times,
        family: options.family,
        zero_linger: options.zero_linger,
        scope,
        sink,
    })
}
