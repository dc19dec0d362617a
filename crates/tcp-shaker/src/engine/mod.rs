//! The event loop: one thread that owns the poller and every socket of every check in flight.
//!
//! A *job* is one submitted check; it has a deadline and one *probe* (socket) per address it
//! checks. Jobs and probes live in generational slabs; probes are polled under their slab key,
//! so an event, a resolver answer or a cancel that arrives late for a finished job misses
//! instead of reaching whatever took its slot (file descriptor numbers play no part).
//!
//! One turn of the loop:
//! 1. take the inbox's commands: admit new jobs, accept resolver answers, cancel;
//! 2. start at most `connects_per_turn` queued probes, so that a burst of submissions never
//!    holds back the closes below;
//! 3. poll; for each ready socket read `SO_ERROR` and **close it at once**, which sends RST
//!    before the kernel's delayed ACK of SYN-ACK can leave;
//! 4. expire deadlines;
//! 5. hand the turn's results to their waiters, waking each waiter once.

mod connect;
mod few;
mod inbox;
mod lookups;
mod sink;
mod slab;
mod timers;

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

pub(crate) use self::connect::Binding;
use self::connect::{Attempt, Connecting};
use self::few::Few;
pub(crate) use self::inbox::{Command, Inbox, LoopFinished, Request, Scope};
use self::inbox::{Taken, WAKER_TOKEN};
use self::lookups::{Lookup, Lookups};
pub(crate) use self::sink::{Arrived, Delivery, EveryAddress, Queue, Sink, Slot, Wait};
use self::slab::{Key, Slab};
use self::timers::Timers;
use crate::error::{CheckError, ErrorKind};
use crate::options::Family;
use crate::outcome::{Outcome, Report};
use crate::resolve::Resolve;
use crate::target::{Host, Target};

/// How many events one poll returns at most.
const EVENTS_PER_POLL: usize = 1024;
/// Within a burst of connects, the loop looks at the poller after this many, closing the
/// sockets already answered: a SYN-ACK that arrives during a burst waits for at most this many
/// connects, not the whole burst, before its RST goes out.
const CONNECTS_BETWEEN_POLLS: usize = 64;
/// How many addresses of one name are checked at most.
const MAX_ADDRESSES_PER_NAME: usize = 64;

/// Settings fixed when the checker is built.
pub(crate) struct Config {
    pub(crate) zero_linger: bool,
    pub(crate) binding: Binding,
    pub(crate) connects_per_turn: usize,
    pub(crate) max_sockets: usize,
    pub(crate) resolver: Arc<dyn Resolve>,
    pub(crate) resolver_threads: usize,
}

/// One submitted check.
struct Job {
    target: Target,
    started: Instant,
    family: Family,
    zero_linger: bool,
    scope: Scope,
    sink: Sink,
    /// Keys of the probes still running.
    probes: Few<Key>,
    /// Addresses being checked, in resolver order (empty while resolving).
    addresses: Few<SocketAddr>,
    answers: Answers,
}

/// What a job's probes have found so far.
enum Answers {
    /// The most telling answer yet, with its address index: an open address wins at once,
    /// then any answer beats an error, then the lower index wins.
    Best(Option<(usize, Result<Report, CheckError>)>),
    /// One slot per address.
    Every(Vec<Option<Result<Report, CheckError>>>),
}

/// One socket of a job, for one address.
struct Probe {
    job: Key,
    index: usize,
    address: SocketAddr,
    state: ProbeState,
}

enum ProbeState {
    /// Waiting for its turn to connect.
    Queued,
    /// Connecting since the instant given.
    Connecting(Connecting, Instant),
}

pub(crate) struct Engine {
    poll: Poll,
    events: Events,
    inbox: Arc<Inbox>,
    config: Config,
    jobs: Slab<Job>,
    probes: Slab<Probe>,
    timers: Timers,
    queued: VecDeque<Key>,
    /// Probes with a socket open (connecting), at most `config.max_sockets`.
    sockets_open: usize,
    commands: Vec<Command>,
    deliveries: Vec<(Sink, Delivery)>,
    lookups: Lookups,
}

impl Engine {
    pub(crate) fn new(config: Config) -> io::Result<Engine> {
        let poll = Poll::new()?;
        let inbox = Arc::new(Inbox::new(poll.registry())?);
        let lookups = Lookups::new(
            Arc::clone(&config.resolver),
            Arc::downgrade(&inbox),
            config.resolver_threads,
        );
        Ok(Engine {
            poll,
            events: Events::with_capacity(EVENTS_PER_POLL),
            inbox,
            config,
            jobs: Slab::new(),
            probes: Slab::new(),
            timers: Timers::new(),
            queued: VecDeque::new(),
            sockets_open: 0,
            commands: Vec::new(),
            deliveries: Vec::new(),
            lookups,
        })
    }

    pub(crate) fn inbox(&self) -> &Arc<Inbox> {
        &self.inbox
    }

    /// Runs until the checker is stopped; when the engine is dropped after that, every check
    /// still in flight has failed with "checker stopped" and every socket is closed.
    pub(crate) fn run(mut self) -> io::Result<()> {
        self.inbox.loop_started();
        loop {
            if self.inbox.take(&mut self.commands) == Taken::Stopped {
                return Ok(());
            }
            self.admit_commands();
            self.start_queued();
            self.deliver();
            let timeout = self.poll_timeout();
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
            let now = Instant::now();
            self.finish_ready_sockets(now);
            self.expire(now);
            self.deliver();
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if self.can_start_more() || !self.inbox.sleep_unless_pending() {
            return Some(Duration::ZERO);
        }
        let deadline = self.timers.next_deadline()?;
        Some(deadline.saturating_duration_since(Instant::now()))
    }

    fn admit_commands(&mut self) {
        let mut commands = std::mem::take(&mut self.commands);
        for command in commands.drain(..) {
            match command {
                Command::Check(request) => self.admit(request),
                Command::Resolved { job, addresses } => self.resolved(job, addresses),
                Command::Cancel(job) => self.cancel(job),
                Command::Abandon(queue) => self.abandon(&queue),
            }
        }
        self.commands = commands;
    }

    fn admit(&mut self, request: Request) {
        if request.sink.is_abandoned() {
            return;
        }
        let answers = match request.scope {
            Scope::Best => Answers::Best(None),
            Scope::Every => Answers::Every(Vec::new()),
        };
        let job = Job {
            zero_linger: request.zero_linger.unwrap_or(self.config.zero_linger),
            target: request.target,
            started: request.started,
            family: request.family,
            scope: request.scope,
            sink: request.sink,
            probes: Few::Empty,
            addresses: Few::Empty,
            answers,
        };
        let key = match self.jobs.insert(job) {
            Ok(key) => key,
            Err(job) => {
                let error = too_many_checks(&job.target);
                return self.deliveries.push((job.sink, Delivery::failed(error)));
            }
        };
        if !self.jobs.get(key).is_some_and(|job| job.sink.bind(key)) {
            self.jobs.remove(key);
            return;
        }
        self.timers.insert(key, request.deadline);
        let Some(job) = self.jobs.get(key) else {
            return;
        };
        match job.target.host().clone() {
            Host::Ip(ip) if job.family.admits(ip) => self.add_probes(key, [ip]),
            Host::Ip(_) => {
                let error = CheckError::new(ErrorKind::InvalidOptions, job.target.to_string())
                    .with_detail("the address is not of the family asked for");
                self.finish_job(key, Err(error));
            }
            Host::Name(host) => {
                let lookup = Lookup {
                    job: key,
                    host,
                    deadline: request.deadline,
                };
                if let Err(error) = self.lookups.submit(lookup) {
                    let error = CheckError::from_io(job.target.to_string(), error);
                    self.finish_job(key, Err(error));
                }
            }
        }
    }

    fn resolved(&mut self, key: Key, addresses: io::Result<Vec<IpAddr>>) {
        let Some(job) = self.jobs.get(key) else {
            return; // timed out or cancelled while resolving
        };
        let addresses = match addresses {
            Ok(addresses) => addresses,
            Err(error) => {
                let error =
                    CheckError::new(ErrorKind::Resolve, job.target.to_string()).with_source(error);
                return self.finish_job(key, Err(error));
            }
        };
        let mut usable = Vec::new();
        for ip in addresses {
            if job.family.admits(ip) && !usable.contains(&ip) {
                usable.push(ip);
            }
        }
        usable.truncate(MAX_ADDRESSES_PER_NAME);
        if usable.is_empty() {
            let detail = match job.family {
                Family::Any => "the name has no address",
                Family::V4 => "the name has no IPv4 address",
                Family::V6 => "the name has no IPv6 address",
            };
            let error =
                CheckError::new(ErrorKind::Resolve, job.target.to_string()).with_detail(detail);
            return self.finish_job(key, Err(error));
        }
        self.add_probes(key, usable);
    }

    fn add_probes(&mut self, key: Key, ips: impl IntoIterator<Item = IpAddr>) {
        let Some(job) = self.jobs.get_mut(key) else {
            return;
        };
        let port = job.target.port();
        for ip in ips {
            job.addresses.push(SocketAddr::new(ip, port));
        }
        if let Answers::Every(answers) = &mut job.answers {
            answers.resize_with(job.addresses.as_slice().len(), || None);
        }
        for (index, &address) in job.addresses.as_slice().iter().enumerate() {
            let probe = Probe {
                job: key,
                index,
                address,
                state: ProbeState::Queued,
            };
            match self.probes.insert(probe) {
                Ok(probe) => {
                    job.probes.push(probe);
                    self.queued.push_back(probe);
                }
                Err(_) => {
                    let error = too_many_checks(&job.target);
                    return self.finish_job(key, Err(error));
                }
            }
        }
    }

    fn cancel(&mut self, key: Key) {
        if let Some(job) = self.jobs.remove(key) {
            self.timers.remove(key);
            self.drop_probes(&job);
        }
    }

    /// Cancels every job whose results would go to `queue`, whose batch is gone.
    fn abandon(&mut self, queue: &Arc<Queue>) {
        for key in self.jobs.keys() {
            if self.jobs.get(key).is_some_and(|job| job.sink.is_for(queue)) {
                self.cancel(key);
            }
        }
    }

    /// Whether queued probes wait and a socket may be opened for one.
    fn can_start_more(&self) -> bool {
        !self.queued.is_empty() && self.sockets_open < self.config.max_sockets
    }

    /// Starts up to `connects_per_turn` queued probes, while fewer than `max_sockets` sockets
    /// are open; the others wait for a later turn, their deadlines running. Every
    /// [`CONNECTS_BETWEEN_POLLS`] connects, closes the sockets that have become ready.
    fn start_queued(&mut self) {
        let mut started = 0;
        let mut since_poll = 0;
        while started < self.config.connects_per_turn && self.sockets_open < self.config.max_sockets
        {
            if since_poll == CONNECTS_BETWEEN_POLLS {
                self.close_ready_sockets_now();
                since_poll = 0;
            }
            let Some(key) = self.queued.pop_front() else {
                break;
            };
            let Some(probe) = self.probes.get(key) else {
                continue; // its job finished first
            };
            let Some(job) = self.jobs.get(probe.job) else {
                continue;
            };
            if job.sink.is_abandoned() {
                self.cancel(probe.job);
                continue;
            }
            started += 1;
            since_poll += 1;
            let connect_started = Instant::now();
            match connect::start(probe.address, job.zero_linger, &self.config.binding) {
                Attempt::InProgress(mut socket) => {
                    let token = Token(key.to_usize());
                    let registry = self.poll.registry();
                    match registry.register(socket.stream_mut(), token, Interest::WRITABLE) {
                        Ok(()) => {
                            if let Some(probe) = self.probes.get_mut(key) {
                                probe.state = ProbeState::Connecting(socket, connect_started);
                                self.sockets_open += 1;
                            }
                        }
                        Err(error) => self.finish_probe(key, Err(error), Instant::now()),
                    }
                }
                Attempt::Answered(result) => {
                    let now = Instant::now();
                    let outcome = result.map(|()| Outcome::Open {
                        rtt: now - connect_started,
                    });
                    self.finish_probe(key, outcome, now);
                }
            }
        }
    }

    /// Polls without waiting and closes the sockets that are ready. A failure to poll is left
    /// for the turn's own poll to report.
    fn close_ready_sockets_now(&mut self) {
        if self
            .poll
            .poll(&mut self.events, Some(Duration::ZERO))
            .is_ok()
        {
            self.finish_ready_sockets(Instant::now());
        }
    }

    /// Reads the verdict of every socket the poll reported and closes it on the spot.
    fn finish_ready_sockets(&mut self, now: Instant) {
        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        for event in events.iter() {
            let token = event.token();
            let writable = event.is_writable() || event.is_error() || event.is_write_closed();
            if token == WAKER_TOKEN || !writable {
                continue;
            }
            let key = Key::from_usize(token.0);
            let Some(ProbeState::Connecting(socket, connect_started)) =
                self.probes.get_mut(key).map(|probe| &mut probe.state)
            else {
                continue;
            };
            let rtt = now.saturating_duration_since(*connect_started);
            let outcome = socket.result().map(|()| Outcome::Open { rtt });
            self.finish_probe(key, outcome, now);
        }
        self.events = events;
    }

    /// Closes the probe's socket, if any, and records its answer in its job.
    fn finish_probe(&mut self, key: Key, outcome: io::Result<Outcome>, now: Instant) {
        let Some(probe) = self.remove_probe(key) else {
            return;
        };
        // close() now, before anything else happens: RST if connected.
        if let ProbeState::Connecting(socket, _) = probe.state {
            socket.close();
        }
        let Some(job) = self.jobs.get_mut(probe.job) else {
            return;
        };
        job.probes.remove(key);
        let result = match outcome {
            Ok(outcome) => Ok(outcome),
            Err(error) => Outcome::from_connect_error(&error).ok_or(error),
        };
        let answer = match result {
            Ok(outcome) => Ok(Report::new(
                Some(probe.address),
                outcome,
                now.saturating_duration_since(job.started),
                None,
            )),
            Err(error) => Err(CheckError::from_io(
                describe_address(&job.target, probe.address),
                error,
            )),
        };
        let open = answer.as_ref().is_ok_and(Report::is_open);
        job.answers.record(probe.index, answer);
        if job.probes.is_empty() || (open && job.scope == Scope::Best) {
            self.finish_job(probe.job, Ok(()));
        }
    }

    /// Answers every job whose deadline has passed with "timed out" for what is still pending.
    fn expire(&mut self, now: Instant) {
        while let Some(key) = self.timers.pop_expired(now) {
            let Some(job) = self.jobs.get_mut(key) else {
                continue;
            };
            let elapsed = now.saturating_duration_since(job.started);
            if job.addresses.is_empty() {
                job.answers
                    .record(0, Ok(Report::new(None, Outcome::TimedOut, elapsed, None)));
            }
            for &probe_key in job.probes.as_slice() {
                if let Some(probe) = self.probes.get(probe_key) {
                    let report = Report::new(Some(probe.address), Outcome::TimedOut, elapsed, None);
                    job.answers.record(probe.index, Ok(report));
                }
            }
            self.finish_job(key, Ok(()));
        }
    }

    /// Removes the job, closes its remaining sockets and queues its result for delivery:
    /// `failure` if given, else what its probes found.
    fn finish_job(&mut self, key: Key, failure: Result<(), CheckError>) {
        let Some(job) = self.jobs.remove(key) else {
            return;
        };
        self.timers.remove(key);
        self.drop_probes(&job);
        let delivery = match failure {
            Err(error) => Delivery::failed(error),
            Ok(()) => job
                .answers
                .into_delivery(&job.target, job.addresses.as_slice()),
        };
        self.deliveries.push((job.sink, delivery));
    }

    fn drop_probes(&mut self, job: &Job) {
        for &probe in job.probes.as_slice() {
            self.remove_probe(probe);
        }
    }

    /// Removes a probe (its socket, if any, is closed when the probe is dropped).
    fn remove_probe(&mut self, key: Key) -> Option<Probe> {
        let probe = self.probes.remove(key)?;
        if let ProbeState::Connecting(..) = probe.state {
            self.sockets_open -= 1;
        }
        Some(probe)
    }

    fn deliver(&mut self) {
        if !self.deliveries.is_empty() {
            sink::deliver_all(&mut self.deliveries);
        }
    }
}

impl Drop for Engine {
    /// Fails every check the loop holds with "checker stopped" and closes every socket, whether
    /// the loop ended by `stop`, by a poll error, or by a panic.
    fn drop(&mut self) {
        self.inbox.stop();
        for key in self.jobs.keys() {
            if let Some(job) = self.jobs.remove(key) {
                self.drop_probes(&job);
                let error = CheckError::new(ErrorKind::Stopped, job.target.to_string());
                self.deliveries.push((job.sink, Delivery::failed(error)));
            }
        }
        self.deliver();
    }
}

impl Answers {
    fn record(&mut self, index: usize, answer: Result<Report, CheckError>) {
        match self {
            Answers::Best(best) => {
                let better = match best {
                    None => true,
                    Some((best_index, best_answer)) => match (&answer, best_answer) {
                        (Ok(_), Err(_)) => true,
                        (Err(_), Ok(_)) => false,
                        (Ok(report), Ok(_)) if report.is_open() => true,
                        _ => index < *best_index,
                    },
                };
                if better {
                    *best = Some((index, answer));
                }
            }
            Answers::Every(answers) => {
                if let Some(slot) = answers.get_mut(index) {
                    *slot = Some(answer);
                } else if answers.is_empty() {
                    answers.push(Some(answer));
                }
            }
        }
    }

    fn into_delivery(self, target: &Target, addresses: &[SocketAddr]) -> Delivery {
        let unanswered = |index: usize| {
            let address = addresses.get(index).map(|&a| describe_address(target, a));
            CheckError::new(ErrorKind::Io, address.unwrap_or_else(|| target.to_string()))
                .with_detail("the check ended without an answer")
        };
        match self {
            Answers::Best(Some((_, answer))) => Delivery::Best(answer),
            Answers::Best(None) => Delivery::Best(Err(unanswered(0))),
            Answers::Every(answers) => Delivery::Every(
                answers
                    .into_iter()
                    .enumerate()
                    .map(|(index, answer)| answer.unwrap_or_else(|| Err(unanswered(index))))
                    .collect(),
            ),
        }
    }
}

fn too_many_checks(target: &Target) -> CheckError {
    CheckError::new(ErrorKind::ResourceLimit, target.to_string())
        .with_detail("too many checks in flight in one checker")
}

/// How an error names one address of a target: `db:5432 (10.0.0.5:5432)`, or just the address
/// when the target was one.
fn describe_address(target: &Target, address: SocketAddr) -> String {
    match target.host() {
        Host::Ip(_) => address.to_string(),
        Host::Name(_) => format!("{target} ({address})"),
    }
}
