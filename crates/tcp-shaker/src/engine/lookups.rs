//! The resolver threads: name lookups off the event loop, so that a slow name delays only the
//! checks of that name.
//!
//! The loop hands over one lookup per name in flight (checks of a name already being looked up
//! wait for the same answer; see the engine's `resolving` table). A lookup goes to an idle
//! thread, or to a new one while there are fewer than the configured maximum: a slow or dead DNS
//! server holds only the threads of its own names, and an IP literal, a name in `/etc/hosts` or
//! a name on a healthy server finds a thread of its own. Only when every thread is busy does a
//! lookup wait in the queue; the thread that takes it then tells the loop when it started, so
//! that the wait is counted against the checker, not the target.
//!
//! Threads start on demand (a checker that only sees IP addresses never has one), end after
//! [`IDLE_THREAD_LIFETIME`] without work, and end when the checker stops. A resolver that
//! panics fails its lookup with an error saying so; its thread carries on.

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant};

use crate::inbox::{Command, Inbox};
use crate::resolve::Resolve;

/// How long a resolver thread waits for work before it ends.
const IDLE_THREAD_LIFETIME: Duration = Duration::from_secs(10);

/// Whether a lookup went to a thread at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Queued {
    /// A thread took it: it is being resolved from now on.
    Started,
    /// Every thread is busy: it waits, and [`Command::LookupStarted`] tells when it starts.
    Waiting,
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
    /// Names waiting for a thread, with whether the loop was told they wait.
    queue: VecDeque<(Box<str>, Queued)>,
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

    /// Looks `host` up; the answer arrives in the inbox as [`Command::Resolved`]. Fails only if
    /// no thread exists and none could be started.
    pub(crate) fn submit(&self, host: Box<str>) -> io::Result<Queued> {
        let mut state = self.shared.lock();
        if state.idle > state.queue.len() {
            state.queue.push_back((host, Queued::Started));
            self.shared.work.notify_one();
            return Ok(Queued::Started);
        }
        if state.threads >= self.shared.max_threads {
            state.queue.push_back((host, Queued::Waiting));
            return Ok(Queued::Waiting);
        }
        let shared = Arc::clone(&self.shared);
        let spawned = thread::Builder::new()
            .name("tcp-shaker-resolver".into())
            .spawn(move || shared.serve());
        match spawned {
            Ok(_) => {
                state.threads += 1;
                state.queue.push_back((host, Queued::Started));
                Ok(Queued::Started)
            }
            Err(_) if state.threads > 0 => {
                state.queue.push_back((host, Queued::Waiting));
                Ok(Queued::Waiting)
            }
            Err(error) => Err(error),
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
        while let Some((host, queued)) = self.next_lookup() {
            if queued == Queued::Waiting {
                let started = Command::LookupStarted {
                    host: host.clone(),
                    at: Instant::now(),
                };
                if !self.send(started) {
                    break;
                }
            }
            let addresses = resolve_catching_panics(&*self.resolver, &host);
            let answer = Command::Resolved {
                host,
                addresses,
                at: Instant::now(),
            };
            if !self.send(answer) {
                break;
            }
        }
        self.lock().threads -= 1;
    }

    /// Hands a command to the loop; false once the checker is gone.
    fn send(&self, command: Command) -> bool {
        self.inbox
            .upgrade()
            .is_some_and(|inbox| inbox.send(command).is_ok())
    }

    fn next_lookup(&self) -> Option<(Box<str>, Queued)> {
        let mut state = self.lock();
        loop {
            if state.stopped {
                return None;
            }
            if let Some(lookup) = state.queue.pop_front() {
                return Some(lookup);
            }
            state.idle += 1;
            let (next, waited) = self
                .work
                .wait_timeout(state, IDLE_THREAD_LIFETIME)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            state.idle -= 1;
            if waited.timed_out() && state.queue.is_empty() {
                return None;
            }
        }
    }
}

/// The resolver's answer, or an error if it panicked (the panic is not the target's doing, and
/// must not take the thread, or the checks waiting on it, down with it).
fn resolve_catching_panics(resolver: &dyn Resolve, host: &str) -> io::Result<Vec<IpAddr>> {
    catch_unwind(AssertUnwindSafe(|| resolver.resolve(host))).unwrap_or_else(|_| {
        Err(io::Error::other(
            "the resolver panicked; the checker's other lookups go on",
        ))
    })
}
