//! The scheduler: when each target's next check starts, on one thread, through one [`Batch`].
//!
//! Targets that may start a check now wait in a FIFO ready queue; targets that must wait for an
//! interval or a backoff wait in a min-heap keyed by the time they are due. The loop starts what
//! is ready (at most `max_in_flight` checks at once over all targets), then waits for results
//! until the next due time, or 100 ms at most so that Ctrl-C is noticed. Each check costs O(1)
//! plus O(log targets) when it has to wait in the heap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tcp_shaker::{Batch, CheckOptions, Completion, Family, Target};

/// The longest the loop waits before it looks at the interrupt flag again.
const TICK: Duration = Duration::from_millis(100);
/// The first wait before retrying a target that was not open, with `--wait`.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between retries with `--wait`.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How the targets are checked.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub timeout: Duration,
    pub family: Family,
    pub all_addresses: bool,
    pub max_in_flight: usize,
    pub mode: Mode,
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
    /// open or `deadline` passes; no check runs past the deadline.
    UntilOpen { deadline: Instant },
}

/// What the scheduler hands its results to.
pub trait Observer {
    /// A check of target `target` (an index into the scheduler's targets) finished.
    fn completed(&mut self, target: usize, completion: &Completion) -> io::Result<()>;

    /// Every result available for now has been handed over: a good time to flush output.
    fn idle(&mut self) -> io::Result<()>;
}

/// How a run ended.
#[derive(Clone, Copy, Debug)]
pub struct RunEnd {
    /// Checks started (for `--all-addresses`, one per target, whatever its addresses).
    pub started: u64,
    /// Checks whose results were handed over.
    pub completed: u64,
    /// Whether Ctrl-C ended the run; checks in flight then were abandoned.
    pub interrupted: bool,
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

/// Runs the checks of a [`Plan`] over a list of targets.
pub struct Scheduler<'a> {
    batch: Batch,
    targets: &'a [Target],
    plan: Plan,
    states: Vec<TargetState>,
    ready: VecDeque<usize>,
    waiting: BinaryHeap<Reverse<(Instant, usize)>>,
    in_flight: usize,
    started: u64,
    completed: u64,
    interrupted: &'a AtomicBool,
}

impl<'a> Scheduler<'a> {
    /// A scheduler for `targets`; every target is ready at once. `interrupted` ends the run
    /// when it becomes true.
    pub fn new(
        batch: Batch,
        targets: &'a [Target],
        plan: Plan,
        interrupted: &'a AtomicBool,
    ) -> Scheduler<'a> {
        let now = Instant::now();
        let state = TargetState {
            started: 0,
            in_flight: 0,
            due: now,
            queued: true,
            open: false,
            backoff: FIRST_BACKOFF,
        };
        Scheduler {
            batch,
            targets,
            plan,
            states: vec![state; targets.len()],
            ready: (0..targets.len()).collect(),
            waiting: BinaryHeap::new(),
            in_flight: 0,
            started: 0,
            completed: 0,
            interrupted,
        }
    }

    /// How many targets there are.
    pub fn target_count(&self) -> usize {
        self.targets.len()
    }

    /// Runs until every planned check is done, the deadline of [`Mode::UntilOpen`] has passed
    /// and its checks are done, or `interrupted` is set. Fails only if the observer does.
    pub fn run(mut self, observer: &mut dyn Observer) -> io::Result<RunEnd> {
        let start = Instant::now();
        let mut interrupted = false;
        loop {
            if self.interrupted.load(Ordering::Relaxed) {
                interrupted = true;
                break;
            }
            let now = Instant::now();
            self.drop_targets_past_deadline(now);
            self.promote_due(now);
            self.start_ready(now, observer)?;
            if self.in_flight == 0 && self.ready.is_empty() && self.waiting.is_empty() {
                break;
            }
            let wake = self.wake_time(now);
            if self.in_flight > 0 {
                if let Some(completion) = self.batch.next_until(wake) {
                    self.complete(completion, observer)?;
                    while let Some(completion) = self.batch.try_next() {
                        self.complete(completion, observer)?;
                    }
                }
            } else {
                thread::sleep(wake.saturating_duration_since(now));
            }
            observer.idle()?;
        }
        observer.idle()?;
        Ok(RunEnd {
            started: self.started,
            completed: self.completed,
            interrupted,
            elapsed: start.elapsed(),
        })
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
        wake
    }

    /// With [`Mode::UntilOpen`], once the deadline has passed nothing more starts.
    fn drop_targets_past_deadline(&mut self, now: Instant) {
        if let Mode::UntilOpen { deadline } = self.plan.mode {
            if now >= deadline {
                for index in self.ready.drain(..) {
                    self.states[index].queued = false;
                }
                for Reverse((_, index)) in self.waiting.drain() {
                    self.states[index].queued = false;
                }
            }
        }
    }

    fn promote_due(&mut self, now: Instant) {
        while let Some(&Reverse((due, index))) = self.waiting.peek() {
            if due > now {
                break;
            }
            self.waiting.pop();
            self.ready.push_back(index);
        }
    }

    fn start_ready(&mut self, now: Instant, observer: &mut dyn Observer) -> io::Result<()> {
        while self.in_flight < self.plan.max_in_flight {
            let Some(index) = self.ready.pop_front() else {
                break;
            };
            self.states[index].queued = false;
            while self.in_flight < self.plan.max_in_flight && self.may_start_now(index, now) {
                self.start(index, now, observer)?;
            }
            self.requeue(index, now);
        }
        Ok(())
    }

    /// Whether target `index` may start another check at some point from `now`, its checks in
    /// flight and its due time aside.
    fn has_checks_left(&self, index: usize, now: Instant) -> bool {
        let state = &self.states[index];
        match self.plan.mode {
            Mode::Repeat { count, .. } => count.is_none_or(|count| state.started < count),
            Mode::UntilOpen { deadline } => !state.open && now < deadline,
        }
    }

    /// Whether target `index` has room for another check in flight.
    fn has_room(&self, index: usize) -> bool {
        let in_flight = self.states[index].in_flight;
        match self.plan.mode {
            Mode::Repeat { concurrency, .. } => in_flight < concurrency,
            Mode::UntilOpen { .. } => in_flight == 0,
        }
    }

    fn may_start_now(&self, index: usize, now: Instant) -> bool {
        self.has_checks_left(index, now) && self.has_room(index) && self.states[index].due <= now
    }

    /// Puts target `index` in the ready queue or the heap if it can start another check once
    /// it is due.
    fn requeue(&mut self, index: usize, now: Instant) {
        if self.states[index].queued || !self.has_checks_left(index, now) || !self.has_room(index) {
            return;
        }
        let state = &mut self.states[index];
        state.queued = true;
        if state.due <= now {
            self.ready.push_back(index);
        } else {
            self.waiting.push(Reverse((state.due, index)));
        }
    }

    fn start(&mut self, index: usize, now: Instant, observer: &mut dyn Observer) -> io::Result<()> {
        let timeout = match self.plan.mode {
            Mode::Repeat { interval, .. } => {
                self.states[index].due = now + interval;
                self.plan.timeout
            }
            Mode::UntilOpen { deadline } => self.plan.timeout.min(deadline - now),
        };
        let options = CheckOptions::new(timeout).family(self.plan.family);
        let target = &self.targets[index];
        let tag = index as u64;
        let submitted = if self.plan.all_addresses {
            self.batch.submit_every_address(tag, target, options)
        } else {
            self.batch.submit(tag, target, options)
        };
        self.started += 1;
        self.states[index].started += 1;
        self.states[index].in_flight += 1;
        self.in_flight += 1;
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
        let now = Instant::now();
        let index = completion.tag as usize;
        self.in_flight -= 1;
        self.completed += 1;
        let until_open = matches!(self.plan.mode, Mode::UntilOpen { .. });
        let state = &mut self.states[index];
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
        observer.completed(index, &completion)?;
        self.requeue(index, now);
        Ok(())
    }
}
