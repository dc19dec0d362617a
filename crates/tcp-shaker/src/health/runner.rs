//! The scheduler thread of a [`Monitor`](super::Monitor): when each target is due, its checks
//! through one [`Batch`], and what each result does to its status.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::{
    CheckEvent, Control, Health, Judgement, LastCheck, Observe, State, Statuses, Transition, Watch,
    WatchId, WatchMap,
};
use crate::batch::{Batch, Completion};

/// The longest the scheduler waits for a result without looking at its control channel: how
/// late a `watch` or `unwatch` can take effect while checks are in flight.
const CONTROL_LATENCY: Duration = Duration::from_millis(20);

/// The shortest the scheduler sleeps between two rounds of starting checks while checks are in
/// flight: the checks that fall due meanwhile go to the checker together, in one hand-over,
/// rather than one wake-up of its loop each. A check starts at most this much late for it.
const START_TICK: Duration = Duration::from_millis(1);

/// The longest it sleeps with nothing in flight and nothing due.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// What the scheduler keeps of a watch beside its shared status.
struct Scheduled {
    watch: Watch,
    /// When its next check is due, or, while one is in flight, when that one was due.
    due: Instant,
    /// The start of the check in flight.
    started: Option<Instant>,
}

/// The scheduler: owned by its thread.
pub(super) struct Scheduler {
    batch: Batch,
    commands: Receiver<Control>,
    statuses: Statuses,
    observer: Box<dyn Observe>,
    watches: WatchMap<Scheduled>,
    /// Due times, earliest first; an entry whose watch is gone or has moved on is skipped.
    queue: BinaryHeap<Reverse<(Instant, WatchId)>>,
    /// Checks in flight, for [`Monitor::checks_in_flight`](super::Monitor::checks_in_flight).
    in_flight: Arc<AtomicUsize>,
}

impl Scheduler {
    pub(super) fn new(
        batch: Batch,
        commands: Receiver<Control>,
        statuses: Statuses,
        observer: Box<dyn Observe>,
        in_flight: Arc<AtomicUsize>,
    ) -> Scheduler {
        Scheduler {
            batch,
            commands,
            statuses,
            observer,
            watches: WatchMap::default(),
            queue: BinaryHeap::new(),
            in_flight,
        }
    }

    /// Runs until the monitor is dropped.
    pub(super) fn run(mut self) {
        let mut next_round = Instant::now();
        loop {
            loop {
                match self.commands.try_recv() {
                    Ok(control) => self.obey(control),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let now = Instant::now();
            if now >= next_round {
                self.start_due(now);
                next_round = now + START_TICK;
            }
            self.in_flight
                .store(self.batch.outstanding(), Ordering::Relaxed);
            let next_due = self.queue.peek().map(|Reverse((due, _))| *due);
            let next_start = next_due.map(|due| due.max(next_round));
            if self.batch.outstanding() > 0 {
                let until = next_start.map_or(now + CONTROL_LATENCY, |start| {
                    start.min(now + CONTROL_LATENCY)
                });
                if let Some(completion) = self.batch.next_until(until) {
                    self.finish(completion);
                    while let Some(completion) = self.batch.try_next() {
                        self.finish(completion);
                    }
                }
            } else {
                let wait = next_start.map_or(IDLE_WAIT, |start| {
                    start.saturating_duration_since(now).min(IDLE_WAIT)
                });
                match self.commands.recv_timeout(wait) {
                    Ok(control) => self.obey(control),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        }
    }

    fn obey(&mut self, control: Control) {
        match control {
            Control::Watch(id, watch) => {
                let due = Instant::now() + first_offset(&watch.name, watch.policy.interval);
                self.queue.push(Reverse((due, id)));
                let scheduled = Scheduled {
                    watch,
                    due,
                    started: None,
                };
                self.watches.insert(id, scheduled);
            }
            Control::Unwatch(id) => {
                self.watches.remove(&id);
            }
        }
    }

    /// Starts every check that is due by `now`.
    fn start_due(&mut self, now: Instant) {
        while let Some(&Reverse((due, id))) = self.queue.peek() {
            if due > now {
                break;
            }
            self.queue.pop();
            let Some(scheduled) = self.watches.get_mut(&id) else {
                continue;
            };
            if scheduled.due != due || scheduled.started.is_some() {
                continue;
            }
            let watch = &scheduled.watch;
            let options = watch.policy.check_options();
            match self.batch.submit(id.0, watch.target.clone(), options) {
                Ok(()) => scheduled.started = Some(Instant::now()),
                // The target and the policy were validated by `Watch::new`; should the batch
                // still refuse, the refusal is this check's result.
                Err(error) => {
                    let completion = Completion {
                        tag: id.0,
                        result: Err(error),
                        other_addresses: Vec::new(),
                    };
                    scheduled.started = Some(Instant::now());
                    self.finish(completion);
                }
            }
        }
    }

    /// Applies a finished check to its target's status, tells the observer, and schedules the
    /// next check.
    fn finish(&mut self, completion: Completion) {
        let id = WatchId(completion.tag);
        let Some(scheduled) = self.watches.get_mut(&id) else {
            return; // unwatched while in flight
        };
        let now = Instant::now();
        let started = scheduled.started.take().unwrap_or(now);
        let lateness = started.saturating_duration_since(scheduled.due);
        let duration = now.saturating_duration_since(started);
        let judgement = Judgement::of(completion.result);
        let mut statuses = self.statuses.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(status) = statuses.get_mut(&id) else {
            return;
        };
        let change = judgement
            .success()
            .and_then(|success| status.health.record(success));
        let previous_address = match &judgement {
            Judgement::Checked(report) => {
                let previous = status.address;
                status.address = report.address().or(previous);
                report
                    .address()
                    .and(previous)
                    .filter(|&previous| Some(previous) != report.address())
            }
            _ => None,
        };
        let at = SystemTime::now();
        status.checks += 1;
        if change.is_some() {
            status.transitions += 1;
            status.last_change = Some(at);
        }
        status.last_check = Some(LastCheck {
            at,
            judgement: judgement.clone(),
        });
        let interval = next_interval(&scheduled.watch, &status.health);
        let event = CheckEvent {
            status,
            lateness,
            duration,
            previous_address,
        };
        let observer = &mut self.observer;
        let _ = catch_unwind(AssertUnwindSafe(|| observer.checked(&event)));
        let transition = change.map(|to| Transition {
            id,
            name: status.name.clone(),
            to,
            health: status.health,
            judgement,
            address: status.address,
            check_duration: duration,
            at,
        });
        drop(statuses);
        if let Some(transition) = transition {
            let _ = catch_unwind(AssertUnwindSafe(|| observer.changed(&transition)));
        }
        scheduled.due = (scheduled.due + interval).max(now);
        self.queue.push(Reverse((scheduled.due, id)));
    }
}

/// The interval the state calls for: changing, fully down, or settled.
fn next_interval(watch: &Watch, health: &Health) -> Duration {
    let policy = &watch.policy;
    match health.state() {
        State::GoingDown | State::GoingUp => policy.fast_interval.unwrap_or(policy.interval),
        State::Down => policy.down_interval.unwrap_or(policy.interval),
        State::Up => policy.interval,
    }
}

/// Where in its first interval a target's first check falls: fixed by its name, spread evenly
/// over many names.
fn first_offset(name: &str, interval: Duration) -> Duration {
    // FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let nanos = u64::try_from(interval.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_nanos(hash % nanos)
}
