//! The scheduler: when each check starts, on one thread, through one [`Batch`].
//!
//! Targets come from a [`TargetStream`] only when a check can start, so that a run holds the
//! targets in play, not every target: a target leaves the scheduler once it has no check to
//! make (a single pass forgets each target after its check). Targets that may check again at
//! once wait in a FIFO ready queue, ahead of new ones; those that must wait for an interval or a
//! backoff, in a min-heap keyed by the time they are due.
//!
//! At most `max_in_flight` checks are in flight, and at most `start_window` of them waiting for
//! the checkers to start them ([`Batch::waiting_to_start`]), so that a check never queues long
//! for the checker: the checker is fed as its loops take checks, rather than handed thousands
//! at once. The loop then waits for results until something is due, or 100 ms at most so that
//! an interrupt is noticed; while the window is full, [`START_POLL`] at most, since checks
//! start without a result to say so. Each check costs O(1), plus O(log targets) when it has to
//! wait in the heap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tcp_shaker::{Batch, CheckOptions, Completion, Family, Target};

use crate::slots::Slots;
use crate::stream::{Pull, TargetStream};
use crate::targets::InvalidTarget;

/// The longest the loop waits before it looks at the interrupt flag again.
const TICK: Duration = Duration::from_millis(100);
/// The longest the loop waits before it looks again whether the checkers have started checks
/// of a full start window: well under a turn of a loop.
const START_POLL: Duration = Duration::from_millis(1);
/// The first wait before retrying a target that was not open, with `--wait`.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between retries with `--wait`.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// A check may wait this long for the checker to start it, or its timeout if that is longer,
/// before it fails as not started. The start window keeps the wait to about a loop turn; this
/// only catches a checker that stalled.
const START_WITHIN: Duration = Duration::from_secs(1);

/// How the targets are checked.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub checks: CheckPlan,
    /// Checks submitted and not yet started by the checkers, at most.
    pub start_window: usize,
    pub mode: Mode,
}

/// How each check is made, and how many are in flight at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckPlan {
    pub timeout: Duration,
    pub family: Family,
    /// Check every address of a name, each on its own.
    pub all_addresses: bool,
    /// Checks in flight at once over all targets, within the open-files limit.
    pub max_in_flight: usize,
}

/// Whether targets are checked a number of times or until they are open.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// `count` checks per target (`None`: until interrupted), at most `concurrency` of one
    /// target in flight, their starts `interval` apart.
    Repeat {
        count: Option<u64>,
        concurrency: u32,
        interval: Duration,
    },
    /// Checks of each target one at a time, with a doubling backoff between them, until it is
    /// open or `deadline` passes; no check starts after the deadline, nor is given a timeout
    /// reaching past it.
    UntilOpen { deadline: Instant },
}

/// What the scheduler hands its events to. `number` is a target's place in the order targets
/// were taken, from 0; no two targets of a run share one.
pub trait Observer {
    /// A target joins the run.
    fn added(&mut self, number: usize, target: &Target) -> io::Result<()>;

    /// A spec was refused.
    fn refused(&mut self, invalid: &InvalidTarget) -> io::Result<()>;

    /// The targets could not be read to their end; no more will come.
    fn input_failed(&mut self, message: &str) -> io::Result<()>;

    /// A check of target `number` finished.
    fn completed(&mut self, number: usize, target: &Target, done: &Completion) -> io::Result<()>;

    /// A check of target `number` was still in flight when the run was interrupted, after
    /// running for `ran_for`.
    fn interrupted(&mut self, number: usize, target: &Target, ran_for: Duration) -> io::Result<()>;

    /// Every event available for now has been handed over: a good time to flush output.
    fn idle(&mut self) -> io::Result<()>;
}

/// How a run ended.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunEnd {
    /// Targets taken.
    pub targets: usize,
    /// Checks started (for `--all-addresses`, one per target, whatever its addresses).
    pub started: u64,
    /// Checks whose results were handed over.
    pub completed: u64,
    /// Checks in flight when the run was interrupted.
    pub interrupted_checks: u64,
    /// Whether an interrupt (Ctrl-C, SIGTERM, SIGHUP) ended the run.
    pub interrupted: bool,
    /// Whether the targets could not be read to their end.
    pub input_failed: bool,
    pub elapsed: Duration,
}

#[derive(Clone, Debug)]
struct TargetState {
    started: u64,
    in_flight: u32,
    /// The earliest time the next check may start.
    due: Instant,
    /// In the ready queue or the heap.
    queued: bool,
    /// With [`Mode::UntilOpen`]: a check found the port open.
    open: bool,
    backoff: Duration,
}

/// A target in play.
struct Active {
    target: Target,
    number: usize,
    state: TargetState,
}

/// A check in flight.
struct InFlight {
    slot: usize,
    submitted: Instant,
}

/// Runs the checks of a [`Plan`] over a stream of targets.
pub struct Scheduler<'a> {
    batch: Batch,
    stream: TargetStream,
    /// Whether the stream has nothing more to give (or must not be asked any more).
    stream_done: bool,
    plan: Plan,
    active: Slots<Active>,
    ready: VecDeque<usize>,
    waiting: BinaryHeap<Reverse<(Instant, usize)>>,
    /// By tag: the submission's number, from 1.
    in_flight: HashMap<u64, InFlight>,
    last_tag: u64,
    end: RunEnd,
    interrupted: &'a AtomicBool,
}

impl<'a> Scheduler<'a> {
    /// A scheduler for the targets of `stream`. `interrupted` ends the run when it becomes true.
    pub fn new(
        batch: Batch,
        stream: TargetStream,
        plan: Plan,
        interrupted: &'a AtomicBool,
    ) -> Scheduler<'a> {
        Scheduler {
            batch,
            stream,
            stream_done: false,
            plan,
            active: Slots::default(),
            ready: VecDeque::new(),
            waiting: BinaryHeap::new(),
            in_flight: HashMap::new(),
            last_tag: 0,
            end: RunEnd::default(),
            interrupted,
        }
    }

    /// Runs until every planned check is done, the deadline of [`Mode::UntilOpen`] has passed
    /// and its checks are done, or `interrupted` is set. Fails only if the observer does.
    pub fn run(mut self, observer: &mut dyn Observer) -> io::Result<RunEnd> {
        let start = Instant::now();
        loop {
            if self.interrupted.load(Ordering::Relaxed) {
                self.interrupt(observer)?;
                break;
            }
            let now = Instant::now();
            self.stop_past_deadline(now);
            self.promote_due(now);
            self.start_ready(now, observer)?;
            if self.in_flight.is_empty()
                && self.ready.is_empty()
                && self.waiting.is_empty()
                && self.stream_done
            {
                break;
            }
            let wake = self.wake_time(now);
            if !self.in_flight.is_empty() {
                if let Some(completion) = self.batch.next_until(wake) {
                    self.complete(completion, observer)?;
                    while let Some(completion) = self.batch.try_next() {
                        self.complete(completion, observer)?;
                    }
                }
            } else if !self.stream_done && self.ready.is_empty() {
                self.stream.wait(wake);
            } else {
                thread::sleep(wake.saturating_duration_since(now));
            }
            observer.idle()?;
        }
        observer.idle()?;
        self.end.elapsed = start.elapsed();
        Ok(self.end)
    }

    fn wake_time(&self, now: Instant) -> Instant {
        let mut wake = now + TICK;
        if let Some(Reverse((due, _))) = self.waiting.peek() {
            wake = wake.min(*due);
        }
        if let Mode::UntilOpen { deadline } = self.plan.mode {
            if deadline > now {
                wake = wake.min(deadline);
            }
        }
        let more_to_start = !self.ready.is_empty() || !self.stream_done;
        if more_to_start
            && self.in_flight.len() < self.plan.checks.max_in_flight
            && !self.window_open()
        {
            wake = wake.min(now + START_POLL);
        }
        wake
    }

    /// With [`Mode::UntilOpen`], once the deadline has passed nothing more starts.
    fn stop_past_deadline(&mut self, now: Instant) {
        let Mode::UntilOpen { deadline } = self.plan.mode else {
            return;
        };
        if now < deadline {
            return;
        }
        self.stream_done = true;
        let queued: Vec<usize> = self
            .ready
            .drain(..)
            .chain(self.waiting.drain().map(|Reverse((_, slot))| slot))
            .collect();
        for slot in queued {
            if let Some(active) = self.active.get_mut(slot) {
                active.state.queued = false;
            }
            self.release_if_done(slot, now);
        }
    }

    fn promote_due(&mut self, now: Instant) {
        while let Some(&Reverse((due, slot))) = self.waiting.peek() {
            if due > now {
                break;
            }
            self.waiting.pop();
            self.ready.push_back(slot);
        }
    }

    /// Whether another check may be submitted now, as far as the run as a whole goes.
    fn has_room(&self) -> bool {
        self.in_flight.len() < self.plan.checks.max_in_flight && self.window_open()
    }

    /// Whether fewer checks than the start window's wait for the checkers to start them.
    fn window_open(&self) -> bool {
        self.batch.waiting_to_start() < self.plan.start_window.max(1)
    }

    /// Starts what may start: targets ready to check again first, then new targets.
    fn start_ready(&mut self, now: Instant, observer: &mut dyn Observer) -> io::Result<()> {
        while self.has_room() {
            if let Some(slot) = self.ready.pop_front() {
                if let Some(active) = self.active.get_mut(slot) {
                    active.state.queued = false;
                }
                while self.may_start_now(slot, now) && self.has_room() {
                    self.start(slot, now, observer)?;
                }
                self.requeue(slot, now);
                continue;
            }
            if self.stream_done {
                break;
            }
            match self.stream.pull() {
                Pull::Target(target) => self.admit(target, now, observer)?,
                Pull::Invalid(invalid) => observer.refused(&invalid)?,
                Pull::Failed(message) => {
                    self.end.input_failed = true;
                    self.stream_done = true;
                    observer.input_failed(&message)?;
                }
                Pull::NotYet => break,
                Pull::Ended => self.stream_done = true,
            }
        }
        Ok(())
    }

    /// Takes a new target into play, ready to check.
    fn admit(
        &mut self,
        target: Target,
        now: Instant,
        observer: &mut dyn Observer,
    ) -> io::Result<()> {
        let number = self.end.targets;
        self.end.targets += 1;
        observer.added(number, &target)?;
        let slot = self.active.insert(Active {
            target,
            number,
            state: TargetState {
                started: 0,
                in_flight: 0,
                due: now,
                queued: true,
                open: false,
                backoff: FIRST_BACKOFF,
            },
        });
        self.ready.push_back(slot);
        Ok(())
    }

    /// Whether the target in `slot` may start another check at some point from `now`, its
    /// checks in flight and its due time aside.
    fn has_checks_left(&self, slot: usize, now: Instant) -> bool {
        let Some(active) = self.active.get(slot) else {
            return false;
        };
        match self.plan.mode {
            Mode::Repeat { count, .. } => count.is_none_or(|count| active.state.started < count),
            Mode::UntilOpen { deadline } => !active.state.open && now < deadline,
        }
    }

    /// Whether the target in `slot` has room for another check in flight.
    fn has_target_room(&self, slot: usize) -> bool {
        let Some(active) = self.active.get(slot) else {
            return false;
        };
        match self.plan.mode {
            Mode::Repeat { concurrency, .. } => active.state.in_flight < concurrency,
            Mode::UntilOpen { .. } => active.state.in_flight == 0,
        }
    }

    fn may_start_now(&self, slot: usize, now: Instant) -> bool {
        self.has_checks_left(slot, now)
            && self.has_target_room(slot)
            && self
                .active
                .get(slot)
                .is_some_and(|active| active.state.due <= now)
    }

    /// Puts the target in `slot` in the ready queue or the heap if it can start another check
    /// once it is due; lets it go if it is done.
    fn requeue(&mut self, slot: usize, now: Instant) {
        let may_queue = self.has_checks_left(slot, now) && self.has_target_room(slot);
        let Some(active) = self.active.get_mut(slot) else {
            return;
        };
        if active.state.queued {
            return;
        }
        if !may_queue {
            self.release_if_done(slot, now);
            return;
        }
        active.state.queued = true;
        if active.state.due <= now {
            self.ready.push_back(slot);
        } else {
            self.waiting.push(Reverse((active.state.due, slot)));
        }
    }

    /// Forgets the target in `slot` if it has no check in flight and none left to make.
    fn release_if_done(&mut self, slot: usize, now: Instant) {
        let idle = self
            .active
            .get(slot)
            .is_some_and(|active| active.state.in_flight == 0 && !active.state.queued);
        if idle && !self.has_checks_left(slot, now) {
            self.active.remove(slot);
        }
    }

    fn start(&mut self, slot: usize, now: Instant, observer: &mut dyn Observer) -> io::Result<()> {
        let Some(active) = self.active.get_mut(slot) else {
            return Ok(());
        };
        let (timeout, start_within) = match self.plan.mode {
            Mode::Repeat { interval, .. } => {
                active.state.due = now + interval;
                (
                    self.plan.checks.timeout,
                    self.plan.checks.timeout.max(START_WITHIN),
                )
            }
            Mode::UntilOpen { deadline } => {
                let left = deadline.saturating_duration_since(now);
                (self.plan.checks.timeout.min(left), START_WITHIN.min(left))
            }
        };
        let options = CheckOptions::new(timeout)
            .family(self.plan.checks.family)
            .start_within(start_within);
        self.last_tag += 1;
        let tag = self.last_tag;
        let submitted = if self.plan.checks.all_addresses {
            self.batch
                .submit_every_address(tag, &active.target, options)
        } else {
            self.batch.submit(tag, &active.target, options)
        };
        active.state.started += 1;
        active.state.in_flight += 1;
        self.end.started += 1;
        self.in_flight.insert(
            tag,
            InFlight {
                slot,
                submitted: now,
            },
        );
        match submitted {
            Ok(()) => Ok(()),
            Err(error) => self.complete(
                Completion {
                    tag,
                    result: Err(error),
                    other_addresses: Vec::new(),
                },
                observer,
            ),
        }
    }

    fn complete(&mut self, completion: Completion, observer: &mut dyn Observer) -> io::Result<()> {
        let Some(flight) = self.in_flight.remove(&completion.tag) else {
            return Ok(());
        };
        let now = Instant::now();
        self.end.completed += 1;
        let until_open = matches!(self.plan.mode, Mode::UntilOpen { .. });
        let Some(active) = self.active.get_mut(flight.slot) else {
            return Ok(());
        };
        let state = &mut active.state;
        state.in_flight -= 1;
        if until_open {
            if completion
                .results()
                .any(|result| result.as_ref().is_ok_and(|r| r.is_open()))
            {
                state.open = true;
            } else {
                state.due = now + state.backoff;
                state.backoff = (state.backoff * 2).min(MAX_BACKOFF);
            }
        }
        observer.completed(active.number, &active.target, &completion)?;
        self.requeue(flight.slot, now);
        Ok(())
    }

    /// Hands over the results already in, then reports every check still in flight as
    /// interrupted, in the order they started. Dropping the batch then cancels them.
    fn interrupt(&mut self, observer: &mut dyn Observer) -> io::Result<()> {
        self.end.interrupted = true;
        while let Some(completion) = self.batch.try_next() {
            self.complete(completion, observer)?;
        }
        let now = Instant::now();
        let mut left: Vec<(u64, InFlight)> = self.in_flight.drain().collect();
        left.sort_unstable_by_key(|&(tag, _)| tag);
        for (_, flight) in left {
            if let Some(active) = self.active.get(flight.slot) {
                let ran_for = now.saturating_duration_since(flight.submitted);
                observer.interrupted(active.number, &active.target, ran_for)?;
                self.end.interrupted_checks += 1;
            }
        }
        Ok(())
    }
}
