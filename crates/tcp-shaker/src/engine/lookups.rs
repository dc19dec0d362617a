//! The resolver threads: name lookups off the event loop, a bounded number at a time.
//!
//! Threads start on the first lookup (a checker that only sees IP addresses never has one), grow
//! up to the configured count while lookups wait, and end when the checker stops. A lookup whose
//! deadline has passed before a thread takes it is skipped: the loop has already answered
//! "timed out" for it. A lookup that blocks past its deadline only occupies its thread.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread;
use std::time::Instant;

use super::inbox::{Command, Inbox};
use super::slab::Key;
use crate::resolve::Resolve;

/// One name to resolve for one job.
pub(crate) struct Lookup {
    pub(crate) job: Key,
    pub(crate) host: Box<str>,
    pub(crate) deadline: Instant,
}

pub(crate) struct Lookups {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    resolver: Arc<dyn Resolve>,
    /// Weak, so that a thread stuck in a slow lookup does not keep a stopped checker's waker
    /// (a file descriptor) open.
    inbox: Weak<Inbox>,
    max_threads: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Lookup>,
    threads: usize,
    idle: usize,
    stopped: bool,
}

impl Lookups {
    pub(crate) fn new(
        resolver: Arc<dyn Resolve>,
        inbox: Weak<Inbox>,
        max_threads: usize,
    ) -> Lookups {
        Lookups {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                resolver,
                inbox,
                max_threads: max_threads.max(1),
            }),
        }
    }

    /// Queues a lookup; its answer arrives in the inbox as [`Command::Resolved`]. Fails only if
    /// no thread exists and none could be started.
    pub(crate) fn submit(&self, lookup: Lookup) -> io::Result<()> {
        let mut state = self.shared.lock();
        state.queue.push_back(lookup);
        if state.idle > 0 {
            self.shared.work.notify_one();
            return Ok(());
        }
        if state.threads >= self.shared.max_threads {
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        let spawned = thread::Builder::new()
            .name("tcp-shaker-resolver".into())
            .spawn(move || shared.serve());
        match spawned {
            Ok(_) => {
                state.threads += 1;
                Ok(())
            }
            Err(_) if state.threads > 0 => Ok(()),
            Err(error) => {
                state.queue.pop_back();
                Err(error)
            }
        }
    }
}

impl Drop for Lookups {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.stopped = true;
        state.queue.clear();
        self.shared.work.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn serve(&self) {
        while let Some(lookup) = self.next_lookup() {
            if Instant::now() >= lookup.deadline {
                continue;
            }
            let addresses = self.resolver.resolve(&lookup.host);
            let answer = Command::Resolved {
                job: lookup.job,
                addresses,
            };
            let sent = self.inbox.upgrade().map(|inbox| inbox.send(answer).is_ok());
            if sent != Some(true) {
                break;
            }
        }
        self.lock().threads -= 1;
    }

    fn next_lookup(&self) -> Option<Lookup> {
        let mut state = self.lock();
        loop {
            if state.stopped {
                return None;
            }
            if let Some(lookup) = state.queue.pop_front() {
                return Some(lookup);
            }
            state.idle += 1;
            state = self
                .work
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.idle -= 1;
        }
    }
}
