//! The one door into the event loop: the protocol between the clients and the loop (requests
//! and commands), from any thread, and the loop's wake-up.
//!
//! Submitters append commands under a mutex and write to the loop's waker only when the loop is
//! asleep in `poll` with nothing queued, so a burst of submissions costs one wake-up. The inbox
//! also owns the checker's life: once stopped, it refuses commands and fails the ones still
//! queued, and it lets `stop` wait until the loop has closed every socket.
//!
//! A process that forks gets a copy of the inbox but not of the loop's thread: the inbox
//! remembers which process made it and refuses, at once, commands from any other.

use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};
use std::time::Instant;

use mio::{Registry, Token, Waker};

use crate::delivery::{Delivery, Queue, Sink};
use crate::error::{CheckError, ErrorKind};
use crate::options::{Family, Times};
use crate::slab::Key;
use crate::sys;
use crate::target::Target;

/// The poll token of the inbox's waker; slab keys never take it.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);

/// Whether a check reports on the best of its addresses or on each of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// One report: the first open address, else the first address in resolver order.
    Best,
    /// One report per resolved address, in resolver order.
    Every,
}

/// A check to make, as submitted.
pub(crate) struct Request {
    pub(crate) target: Target,
    /// When it was submitted: the start of its wait for the checker.
    pub(crate) submitted: Instant,
    pub(crate) times: Times,
    pub(crate) family: Family,
    pub(crate) zero_linger: Option<bool>,
    pub(crate) scope: Scope,
    pub(crate) sink: Sink,
}

pub(crate) enum Command {
    Check(Request),
    /// A resolver thread took a lookup that had waited for one.
    LookupStarted {
        host: Box<str>,
        at: Instant,
    },
    /// A lookup's answer, and when it came.
    Resolved {
        host: Box<str>,
        addresses: io::Result<Vec<IpAddr>>,
        at: Instant,
    },
    Cancel(Key),
    /// The batch reading this queue is gone: cancel its checks.
    Abandon(Arc<Queue>),
}

/// What the loop learns when it takes its commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    Running,
    Stopped,
}

/// Why the inbox refused a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The checker was stopped.
    Stopped,
    /// The caller is a forked child of the process that made the checker, which has no loop.
    OtherProcess,
}

impl Refusal {
    /// The error a check refused for this reason fails with.
    pub(crate) fn error(self, target: &Target) -> CheckError {
        let error = CheckError::new(ErrorKind::Stopped, target.to_string());
        match self {
            Refusal::Stopped => error,
            Refusal::OtherProcess => error.with_detail(
                "the checker was made by the parent of this forked process, and its event loop \
                 did not come along; make a new checker in this process",
            ),
        }
    }
}

pub(crate) struct Inbox {
    state: Mutex<State>,
    finished: Condvar,
    waker: Waker,
    /// The process that made the checker (see [`sys::process_generation`]).
    process: u32,
}

struct State {
    commands: Vec<Command>,
    loop_asleep: bool,
    stopped: bool,
    loop_thread: Option<ThreadId>,
    loop_running: bool,
}

impl Inbox {
    pub(crate) fn new(registry: &Registry) -> io::Result<Inbox> {
        Ok(Inbox {
            state: Mutex::new(State {
                commands: Vec::new(),
                loop_asleep: false,
                stopped: false,
                loop_thread: None,
                loop_running: false,
            }),
            finished: Condvar::new(),
            waker: Waker::new(registry, WAKER_TOKEN)?,
            process: sys::process_generation(),
        })
    }

    /// Whether the caller runs in a process other than the one that made the checker.
    pub(crate) fn is_other_process(&self) -> bool {
        sys::process_generation() != self.process
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one command. If it is refused, says why, and a check among it fails with
    /// [`ErrorKind::Stopped`] (delivered to its sink).
    pub(crate) fn send(&self, command: Command) -> Result<(), Refusal> {
        if self.is_other_process() {
            refuse(std::iter::once(command), Refusal::OtherProcess);
            return Err(Refusal::OtherProcess);
        }
        let mut state = self.lock();
        if state.stopped {
            drop(state);
            refuse(std::iter::once(command), Refusal::Stopped);
            return Err(Refusal::Stopped);
        }
        state.commands.push(command);
        self.wake_if_asleep(state);
        Ok(())
    }

    /// Queues every command of `commands` at once, leaving it empty. If they are refused, their
    /// checks fail with [`ErrorKind::Stopped`] instead.
    pub(crate) fn send_all(&self, commands: &mut Vec<Command>) {
        if self.is_other_process() {
            return refuse(commands.drain(..), Refusal::OtherProcess);
        }
        let mut state = self.lock();
        if state.stopped {
            drop(state);
            return refuse(commands.drain(..), Refusal::Stopped);
        }
        state.commands.append(commands);
        self.wake_if_asleep(state);
    }

    fn wake_if_asleep(&self, mut state: MutexGuard<'_, State>) {
        let asleep = std::mem::replace(&mut state.loop_asleep, false);
        drop(state);
        if asleep {
            // A failed write leaves the eventfd counter saturated, which still wakes the loop.
            let _ = self.waker.wake();
        }
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    /// Refuses further commands, fails the queued checks, and wakes the loop so that it closes
    /// its sockets and fails its own checks. Unless called on the loop's own thread, waits until
    /// the loop has done so, which takes one turn of the loop. In a forked child, which has no
    /// loop, does nothing.
    pub(crate) fn stop(&self) {
        if self.is_other_process() {
            return;
        }
        let mut state = self.lock();
        let queued = if state.stopped {
            Vec::new()
        } else {
            state.stopped = true;
            std::mem::take(&mut state.commands)
        };
        let on_loop_thread = state.loop_thread == Some(thread::current().id());
        drop(state);
        let _ = self.waker.wake();
        refuse(queued.into_iter(), Refusal::Stopped);
        if on_loop_thread {
            return;
        }
        let mut state = self.lock();
        while state.loop_running {
            state = self
                .finished
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Called by the loop when it starts running on the current thread.
    pub(crate) fn loop_started(&self) {
        let mut state = self.lock();
        state.loop_thread = Some(thread::current().id());
        state.loop_running = !state.stopped;
    }

    fn loop_finished(&self) {
        let mut state = self.lock();
        state.loop_running = false;
        self.finished.notify_all();
    }

    /// Moves the queued commands into `into` (which must be empty, and whose allocation is
    /// swapped in for reuse).
    pub(crate) fn take(&self, into: &mut Vec<Command>) -> Taken {
        let mut state = self.lock();
        state.loop_asleep = false;
        std::mem::swap(&mut state.commands, into);
        if state.stopped {
            Taken::Stopped
        } else {
            Taken::Running
        }
    }

    /// Marks the loop asleep for the poll it is about to make, so that the next command wakes
    /// it, unless commands are already waiting: then it returns false, and the loop should poll
    /// without blocking and come back for them.
    pub(crate) fn prepare_to_sleep(&self) -> bool {
        let mut state = self.lock();
        if !state.commands.is_empty() || state.stopped {
            return false;
        }
        state.loop_asleep = true;
        true
    }
}

/// Tells [`Inbox::stop`] that the loop is over, when dropped after the engine: by then every
/// check has been answered and every socket, the poller included, is closed.
pub(crate) struct LoopFinished(pub(crate) Arc<Inbox>);

impl Drop for LoopFinished {
    fn drop(&mut self) {
        self.0.loop_finished();
    }
}

/// Answers every check among `commands` with "checker stopped", saying why.
fn refuse(commands: impl Iterator<Item = Command>, refusal: Refusal) {
    for command in commands {
        if let Command::Check(request) = command {
            let error = refusal.error(&request.target);
            request.sink.deliver(Delivery::failed(error));
        }
    }
}
