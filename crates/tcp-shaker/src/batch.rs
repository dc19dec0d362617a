//! Many checks in one go: submit them, take the results in the order they finish.
//!
//! A batch buffers submissions and hands them to the loop in one go when asked for a result, and
//! its results arrive a turn of the loop at a time, so the cost of crossing threads is paid per
//! turn, not per check. This is what the command line and the benchmark are built on.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::checker::Checker;
use crate::client::{self, Client};
use crate::delivery::{Arrived, Queue, Sink, Wait};
use crate::error::CheckError;
use crate::inbox::{Command, Scope};
use crate::options::CheckOptions;
use crate::outcome::Report;
use crate::target::{Target, ToTarget};

/// Submissions buffered beyond this many are handed to the loop without waiting for a call to
/// [`Batch::next`], so that a long submission run starts checking before it ends.
const UNSENT_LIMIT: usize = 1024;

/// The result of one check of a [`Batch`], with the tag it was submitted under.
#[derive(Debug)]
pub struct Completion {
    /// The tag given to [`Batch::submit`].
    pub tag: u64,
    /// What [`Checker::check`] would have returned; for a check from
    /// [`submit_every_address`](Batch::submit_every_address), the first address's result (or
    /// the error that ended the check as a whole).
    pub result: Result<Report, CheckError>,
    /// For a check from [`submit_every_address`](Batch::submit_every_address), the results of
    /// its other addresses in resolver order; empty otherwise.
    pub other_addresses: Vec<Result<Report, CheckError>>,
}

impl Completion {
    /// Every result of the check: [`result`](Completion::result), then
    /// [`other_addresses`](Completion::other_addresses).
    pub fn results(&self) -> impl Iterator<Item = &Result<Report, CheckError>> {
        std::iter::once(&self.result).chain(&self.other_addresses)
    }
}

impl Checker {
    /// A batch: many checks submitted at once, their results taken as they finish. The way to
    /// run thousands of checks with the least overhead (no allocation per check for IP targets).
    pub fn batch(&self) -> Batch {
        Batch::new(self.client().clone())
    }
}

/// Checks submitted together, results taken as they finish; from [`Checker::batch`].
///
/// ```
/// use std::net::TcpListener;
/// use std::time::Duration;
/// use tcp_shaker::Checker;
///
/// let open = TcpListener::bind("127.0.0.1:0")?;
/// let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?; // dropped: nothing listens
/// let checker = Checker::new()?;
/// let mut batch = checker.batch();
/// batch.submit(1, open.local_addr()?, Duration::from_secs(1))?;
/// batch.submit(2, closed, Duration::from_secs(1))?;
/// let mut open_tags = Vec::new();
/// while let Some(completion) = batch.next() {
///     if completion.result?.is_open() {
///         open_tags.push(completion.tag);
///     }
/// }
/// assert_eq!(open_tags, [1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Dropping a batch cancels its checks and closes their sockets.
pub struct Batch {
    /// One per checker; checks go to each in turn.
    lanes: Vec<Lane>,
    next_lane: usize,
    queue: Arc<Queue>,
    /// Results taken from the queue in one go and not yet handed out.
    arrived: Arrived,
    outstanding: usize,
}

/// A checker of a batch, and the submissions not yet handed to its loop.
struct Lane {
    client: Client,
    unsent: Vec<Command>,
}

impl Batch {
    fn new(client: Client) -> Batch {
        Batch::with_lanes(vec![Lane {
            client,
            unsent: Vec::new(),
        }])
    }

    /// A batch whose checks are spread over several checkers, each check made by the next
    /// checker in turn, their results all coming back here. With one checker per CPU core,
    /// their event loops share the work of a large run; each checker keeps its own
    /// [`max_sockets`](crate::CheckerBuilder::max_sockets). `None` if `checkers` is empty.
    ///
    /// ```
    /// use std::net::TcpListener;
    /// use std::time::Duration;
    /// use tcp_shaker::{Batch, Checker};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let checkers = [Checker::new()?, Checker::new()?];
    /// let mut batch = Batch::across(checkers).expect("two checkers");
    /// for tag in 0..100 {
    ///     batch.submit(tag, listener.local_addr()?, Duration::from_secs(1))?;
    /// }
    /// assert!(batch.all(|done| done.result.is_ok_and(|report| report.is_open())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn across(checkers: impl IntoIterator<Item = Checker>) -> Option<Batch> {
        let lanes: Vec<Lane> = checkers
            .into_iter()
            .map(|checker| Lane {
                client: checker.client().clone(),
                unsent: Vec::new(),
            })
            .collect();
        (!lanes.is_empty()).then(|| Batch::with_lanes(lanes))
    }

    fn with_lanes(lanes: Vec<Lane>) -> Batch {
        Batch {
            lanes,
            next_lane: 0,
            queue: Arc::new(Queue::new()),
            arrived: Arrived::new(),
            outstanding: 0,
        }
    }

    /// Adds a check, tagged with `tag` for recognising its result. Its wait for the checker
    /// runs from now (see [`CheckOptions::start_within`]: a batch of more checks than the
    /// checker holds at once waits its turn, so give it room there); its timeout from the
    /// moment its SYN goes out.
    ///
    /// Fails at once, adding nothing, if the target or the options are invalid. Every other
    /// failure (including a stopped checker) arrives as the check's result.
    pub fn submit(
        &mut self,
        tag: u64,
        target: impl ToTarget,
        options: impl Into<CheckOptions>,
    ) -> Result<(), CheckError> {
        self.submit_scoped(tag, target.to_target()?, options.into(), Scope::Best)
    }

    /// Adds a check of every address `target` resolves to, as
    /// [`Checker::check_every_address`] makes it; its [`Completion`] carries one result per
    /// address.
    pub fn submit_every_address(
        &mut self,
        tag: u64,
        target: impl ToTarget,
        options: impl Into<CheckOptions>,
    ) -> Result<(), CheckError> {
        self.submit_scoped(tag, target.to_target()?, options.into(), Scope::Every)
    }

    fn submit_scoped(
        &mut self,
        tag: u64,
        target: Target,
        options: CheckOptions,
        scope: Scope,
    ) -> Result<(), CheckError> {
        let sink = Sink::queue(Arc::clone(&self.queue), tag);
        let request = client::request(target, &options, scope, sink)?;
        // A batch has at least one lane, and next_lane stays below their number.
        let lane = &mut self.lanes[self.next_lane];
        lane.unsent.push(Command::Check(request));
        if lane.unsent.len() >= UNSENT_LIMIT {
            lane.flush();
        }
        self.next_lane = (self.next_lane + 1) % self.lanes.len();
        self.outstanding += 1;
        Ok(())
    }

    /// Hands the buffered submissions to the loops now. [`next`](Batch::next) and its
    /// siblings do this before they wait.
    pub fn flush(&mut self) {
        for lane in &mut self.lanes {
            lane.flush();
        }
    }

    /// How many submitted checks have not been taken as results yet.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// How many submitted checks the checkers have not started yet: not yet handed to a loop,
    /// or waiting in one for a socket slot or a resolver thread. A check counts as started once
    /// its SYN went out or its name went to a resolver thread.
    ///
    /// To feed a batch as the checkers take checks, rather than all at once, keep this small
    /// (say, a turn's worth of connects per checker) and submit more as it falls: then no check
    /// waits long for the checker, however many there are to make.
    ///
    /// ```
    /// use std::net::TcpListener;
    /// use std::time::Duration;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let mut batch = tcp_shaker::Checker::new()?.batch();
    /// batch.submit(0, listener.local_addr()?, Duration::from_secs(1))?;
    /// assert_eq!(batch.waiting_to_start(), 1); // not even handed over yet
    /// let done = batch.next().expect("one check");
    /// assert!(done.result?.is_open());
    /// assert_eq!(batch.waiting_to_start(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn waiting_to_start(&self) -> usize {
        self.queue.waiting_to_start()
    }

    /// The next result, waiting until `deadline` at most; `None` if the deadline passed first
    /// or nothing is outstanding (tell them apart with [`outstanding`](Batch::outstanding)).
    pub fn next_until(&mut self, deadline: Instant) -> Option<Completion> {
        self.take(Wait::Until(deadline))
    }

    /// The next result if one has arrived, without waiting.
    pub fn try_next(&mut self) -> Option<Completion> {
        self.take(Wait::No)
    }

    fn take(&mut self, wait: Wait) -> Option<Completion> {
        self.flush();
        if self.outstanding == 0 {
            return None;
        }
        if self.arrived.is_empty() {
            self.queue.take_all(&mut self.arrived, wait);
        }
        let (tag, delivery) = self.arrived.pop_front()?;
        self.outstanding -= 1;
        let (result, other_addresses) = delivery.into_first_and_others();
        Some(Completion {
            tag,
            result,
            other_addresses,
        })
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("checkers", &self.lanes.len())
            .field("outstanding", &self.outstanding)
            .finish_non_exhaustive()
    }
}

impl Iterator for Batch {
    type Item = Completion;

    /// The next result, waiting for it; `None` once every submitted check has been taken.
    fn next(&mut self) -> Option<Completion> {
        self.take(Wait::Forever)
    }
}

impl Lane {
    fn flush(&mut self) {
        if !self.unsent.is_empty() {
            self.client.submit_all(&mut self.unsent);
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.queue.close();
        let unsent: usize = self.lanes.iter().map(|lane| lane.unsent.len()).sum();
        if self.outstanding > unsent {
            for lane in &self.lanes {
                lane.client.abandon(&self.queue);
            }
        }
    }
}
