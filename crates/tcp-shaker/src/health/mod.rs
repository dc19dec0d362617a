//! Health checking over time: targets checked on a schedule, each with an up or down state
//! kept as HAProxy keeps it, and a stream of their transitions.
//!
//! A [`Monitor`] owns one scheduler thread that makes its checks on a [`Checker`] (so
//! thousands of targets cost one event loop and one scheduler). Each [`Watch`] names a target
//! and its [`Policy`]: how often to check it, and how many results in a row change its state.
//! Every result goes to an [`Observe`]r, with the state it left; a change between up and down
//! also goes as a [`Transition`]. [`Monitor::statuses`] tells where every target stands.
//!
//! ```
//! use std::net::TcpListener;
//! use std::sync::mpsc;
//! use std::time::Duration;
//! use tcp_shaker::health::{InitialState, Monitor, Policy, State, Watch};
//! use tcp_shaker::Checker;
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let policy = Policy {
//!     interval: Duration::from_millis(20),
//!     rise: 2,
//!     initial_state: InitialState::FullyDown,
//!     ..Policy::default()
//! };
//! let (transitions, changes) = mpsc::channel();
//! let monitor = Monitor::start(&Checker::new()?, transitions);
//! monitor.watch(Watch::new("web", listener.local_addr()?, policy)?);
//! let change = changes.recv_timeout(Duration::from_secs(5))?;
//! assert_eq!((change.name.as_str(), change.to), ("web", State::Up));
//! assert!(monitor.statuses()[0].health.is_up());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What counts as a failure
//!
//! A check whose port was closed, silent or unreachable, or whose name did not resolve, is a
//! failure of the target. A check the checker could not make (out of descriptors, not started
//! in time, stopped) says nothing about the target: it moves no counter, and reaches the
//! observer as a [`Judgement::CheckerError`].
//!
//! # Schedule
//!
//! A target's first check comes at a point of its first interval fixed by its name, so that
//! thousands of targets started together spread over the interval instead of checking in
//! lockstep, and in the same pattern at every start. Later checks follow at the interval of the
//! state the last result left (settled, changing, or fully down), counted from when the last
//! check was due, so that the schedule does not drift. A target is never checked twice at
//! once: a check that outlasts its interval delays the next one.

mod policy;
mod runner;
mod state;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::checker::Checker;
use crate::error::{CheckError, ErrorKind};
use crate::outcome::Report;
use crate::target::{Target, ToTarget};

pub use self::policy::{InitialState, Policy};
pub use self::state::{Health, State};

/// A target to keep checking: its name, where it is, and how to judge it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    /// The name transitions and statuses carry; the target as written, by convention.
    pub name: String,
    /// What to check. A host name is resolved again for every check, so a change of address
    /// shows in the next result.
    pub target: Target,
    /// How often to check it and how to judge the results.
    pub policy: Policy,
}

impl Watch {
    /// A watch of `target` under `name`; fails if the target or the policy is invalid.
    pub fn new(
        name: impl Into<String>,
        target: impl ToTarget,
        policy: Policy,
    ) -> Result<Watch, CheckError> {
        let target = target.to_target()?;
        policy.validate(&target.to_string())?;
        Ok(Watch {
            name: name.into(),
            target,
            policy,
        })
    }
}

/// Identifies a watch of a [`Monitor`]; ids are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatchId(u64);

/// A map keyed by [`WatchId`] that hashes an id with one multiplication instead of SipHash:
/// for what a program keeps per watch and looks up on every check (ids are handed out by the
/// monitor, not chosen by an adversary).
pub type WatchMap<V> = HashMap<WatchId, V, BuildHasherDefault<WatchIdHasher>>;

/// The hasher of a [`WatchMap`].
#[derive(Clone, Copy, Debug, Default)]
pub struct WatchIdHasher(u64);

impl Hasher for WatchIdHasher {
    fn finish(&self) -> u64 {
        // Fibonacci hashing spreads consecutive ids over the table's high bits too.
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8) | u64::from(byte);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

/// What one check said about its target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// The target answered, or failed to: the report of the check.
    Checked(Report),
    /// The target's name did not resolve: a failure of the target.
    NotResolved(String),
    /// The checker could not make the check; nothing is known of the target.
    CheckerError {
        /// What kind of failure it was.
        kind: ErrorKind,
        /// The error, as it prints.
        message: String,
    },
}

impl Judgement {
    pub(crate) fn of(result: Result<Report, CheckError>) -> Judgement {
        match result {
            Ok(report) => Judgement::Checked(report),
            Err(error) if error.kind() == ErrorKind::Resolve => {
                Judgement::NotResolved(error.to_string())
            }
            Err(error) => Judgement::CheckerError {
                kind: error.kind(),
                message: error.to_string(),
            },
        }
    }

    /// `Some(true)` if the port answered, `Some(false)` if the target failed, `None` if the
    /// check says nothing about the target.
    pub fn success(&self) -> Option<bool> {
        match self {
            Judgement::Checked(report) => Some(report.is_open()),
            Judgement::NotResolved(_) => Some(false),
            Judgement::CheckerError { .. } => None,
        }
    }

    /// Why it counts as it does, for a log line: `open in 0.2ms`, `closed`, `timed out after
    /// 1s (connecting)`, the resolver's or the checker's message.
    pub fn reason(&self) -> String {
        match self {
            Judgement::Checked(report) => match report.outcome() {
                crate::Outcome::Open { rtt } => format!("open in {rtt:.1?}"),
                crate::Outcome::TimedOut => {
                    format!(
                        "timed out after {:.1?} ({})",
                        report.elapsed(),
                        report.phase()
                    )
                }
                outcome => outcome.to_string(),
            },
            Judgement::NotResolved(message) | Judgement::CheckerError { message, .. } => {
                message.clone()
            }
        }
    }
}

/// The last check of a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastCheck {
    /// When it finished.
    pub at: SystemTime,
    /// What it said.
    pub judgement: Judgement,
}

/// Where a watched target stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The watch's id.
    pub id: WatchId,
    /// The watch's name.
    pub name: String,
    /// The watch's target.
    pub target: Target,
    /// Its health counter and state.
    pub health: Health,
    /// Its last check; `None` before the first one finished.
    pub last_check: Option<LastCheck>,
    /// The address its last check reached.
    pub address: Option<SocketAddr>,
    /// When it last changed between up and down; `None` if never since it was watched.
    pub last_change: Option<SystemTime>,
    /// Changes between up and down since it was watched.
    pub transitions: u64,
    /// Checks finished since it was watched, checker errors included.
    pub checks: u64,
}

/// A change of a target between up and down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The watch's id.
    pub id: WatchId,
    /// The watch's name.
    pub name: String,
    /// [`State::Up`] or [`State::Down`].
    pub to: State,
    /// The counter after the change.
    pub health: Health,
    /// The check that made it.
    pub judgement: Judgement,
    /// The address that check reached (or the last one known, if it reached none).
    pub address: Option<SocketAddr>,
    /// How long that check took.
    pub check_duration: Duration,
    /// When it happened.
    pub at: SystemTime,
}

/// One finished check, as an [`Observe`]r sees it.
#[derive(Debug)]
pub struct CheckEvent<'a> {
    /// The target's status after the check.
    pub status: &'a Status,
    /// How long after it was due the check started (the scheduler's own delay).
    pub lateness: Duration,
    /// How long the check took.
    pub duration: Duration,
    /// The address the check before reached, when this one reached another.
    pub previous_address: Option<SocketAddr>,
}

/// Receives what a [`Monitor`] finds, on its scheduler thread: keep it quick. A panic in it is
/// caught and ignored, so an observer cannot stop the monitor.
///
/// A channel's sender is an observer of transitions, so a stream of them is one `mpsc::channel`
/// away (see the [module](self) example).
pub trait Observe: Send + 'static {
    /// Called after every check, with the status it left.
    fn checked(&mut self, event: &CheckEvent<'_>) {
        let _ = event;
    }

    /// Called when a target changes between up and down (after [`checked`](Observe::checked)).
    fn changed(&mut self, transition: &Transition) {
        let _ = transition;
    }
}

/// Observes nothing.
impl Observe for () {}

/// Sends every transition; a receiver that went away is ignored.
impl Observe for mpsc::Sender<Transition> {
    fn changed(&mut self, transition: &Transition) {
        let _ = self.send(transition.clone());
    }
}

/// What the monitor's callers tell its thread.
enum Control {
    Watch(WatchId, Watch),
    Unwatch(WatchId),
}

/// The statuses, shared by the scheduler thread (which writes them) and the monitor's callers.
type Statuses = Arc<Mutex<BTreeMap<WatchId, Status>>>;

/// Targets checked on a schedule, each with its health; see the [module](self) docs.
///
/// Dropping the monitor stops its scheduler (checks in flight are cancelled) and waits for it.
pub struct Monitor {
    control: Option<mpsc::Sender<Control>>,
    statuses: Statuses,
    next_id: AtomicU64,
    in_flight: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Starts a monitor making its checks on `checker`, telling `observer` what it finds.
    pub fn start(checker: &Checker, observer: impl Observe) -> Monitor {
        let (control, commands) = mpsc::channel();
        let statuses = Statuses::default();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let scheduler = runner::Scheduler::new(
            checker.batch(),
            commands,
            Arc::clone(&statuses),
            Box::new(observer),
            Arc::clone(&in_flight),
        );
        let thread = std::thread::Builder::new()
            .name("tcp-shaker-health".into())
            .spawn(move || scheduler.run());
        Monitor {
            control: Some(control),
            statuses,
            next_id: AtomicU64::new(0),
            in_flight,
            // Without a thread, the monitor still answers for its statuses; they just never
            // change, which `Monitor::is_running` tells.
            thread: thread.ok(),
        }
    }

    /// Whether the scheduler thread runs (it could not start only if the system refused a
    /// thread).
    pub fn is_running(&self) -> bool {
        self.thread
            .as_ref()
            .is_some_and(|thread| !thread.is_finished())
    }

    /// How many checks are in flight (as of the scheduler's last turn).
    pub fn checks_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Starts watching a target; its status is there at once, in its initial state.
    pub fn watch(&self, watch: Watch) -> WatchId {
        let id = WatchId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let status = Status {
            id,
            name: watch.name.clone(),
            target: watch.target.clone(),
            health: Health::new(&watch.policy),
            last_check: None,
            address: watch.target.socket_addr(),
            last_change: None,
            transitions: 0,
            checks: 0,
        };
        self.lock().insert(id, status);
        self.send(Control::Watch(id, watch));
        id
    }

    /// Stops watching a target; its status is gone at once, and a check of it in flight is
    /// forgotten.
    pub fn unwatch(&self, id: WatchId) {
        self.lock().remove(&id);
        self.send(Control::Unwatch(id));
    }

    /// The status of one watch; `None` if it is not watched.
    pub fn status(&self, id: WatchId) -> Option<Status> {
        self.lock().get(&id).cloned()
    }

    /// Every watched target's status, in the order they were watched.
    pub fn statuses(&self) -> Vec<Status> {
        self.lock().values().cloned().collect()
    }

    /// Runs `read` on the statuses in place, in the order they were watched, without copying
    /// them: for rendering thousands at once. The scheduler waits meanwhile, so keep it short.
    pub fn with_statuses<R>(&self, read: impl FnOnce(&mut dyn Iterator<Item = &Status>) -> R) -> R {
        let statuses = self.lock();
        read(&mut statuses.values())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<WatchId, Status>> {
        self.statuses.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, control: Control) {
        if let Some(sender) = &self.control {
            // The scheduler thread ends only when the monitor drops this sender.
            let _ = sender.send(control);
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.control = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("watches", &self.lock().len())
            .field("running", &self.is_running())
            .finish()
    }
}
