//! The event loop: one thread that owns the poller and every socket of every check in flight.
//!
//! A *job* is one submitted check; it has one *probe* (socket) per address it checks. Jobs and
//! probes live in generational slabs; probes are polled under their slab key, so an event, a
//! resolver answer or a cancel that arrives late for a finished job misses instead of reaching
//! whatever took its slot (file descriptor numbers play no part).
//!
//! # Whose time is it
//!
//! A check's timeout is the target's time: the time its name takes to resolve, plus the time
//! its SYN waits for an answer, counted from the moment `connect()` sends it. Time the check
//! spends waiting for the checker itself (in the inbox for a turn of the loop, for a resolver
//! thread, for one of the `max_sockets` socket slots) is not counted; it is bounded apart, by
//! the check's `start_within`, and a check that could not start within it fails with
//! [`ErrorKind::NotStarted`], having sent nothing. So back-pressure can never pass for a silent
//! target. When a probe's deadline comes, the kernel is asked for the socket's state before it
//! is reported timed out: an answer that had arrived, but that the loop had not yet seen among
//! its events, is reported as what it is.
//!
//! Each job has one timer, for the phase it is in (waiting for a resolver thread or a socket
//! slot: its start deadline; resolving: its resolution deadline), and each connecting probe
//! one, for its answer.
//!
//! # One turn of the loop
//! 1. take the inbox's commands: admit new jobs, accept resolver answers, cancel;
//! 2. start at most `connects_per_turn` queued probes, so that a burst of submissions never
//!    holds back the closes below;
//! 3. poll; for each ready socket read `SO_ERROR` and **close it at once**, which sends RST
//!    before the kernel's delayed ACK of SYN-ACK can leave;
//! 4. expire deadlines;
//! 5. hand the turn's results to their waiters, waking each waiter once.

mod connect;
mod few;
mod lookups;
mod timers;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

pub(crate) use self::connect::Binding;
use self::connect::{Attempt, Connecting};
use self::few::Few;
use self::lookups::{Lookups, Queued};
use self::timers::Timers;
use crate::delivery::{self, Delivery, Queue, Sink};
use crate::error::{CheckError, ErrorKind};
use crate::inbox::{Command, Inbox, Request, Scope, Taken, WAKER_TOKEN};
use crate::options::{Family, Handshake};
use crate::outcome::{Outcome, Report};
use crate::resolve::Resolve;
use crate::slab::{Key, Slab};
use crate::target::{Host, Target};

/// How many events one poll returns at most.
const EVENTS_PER_POLL: usize = 1024;
/// Within a burst of connects, the loop looks at the poller after this many, closing the
/// sockets already answered: a SYN-ACK that arrives during a burst waits for at most this many
/// connects, not the whole burst, before its RST goes out. Across a 50 ms round trip at 10 000
/// in flight, 16 rather than 64 took the delay's median from about 2 ms to 0.6 ms; the extra
/// polls cost nothing on loopback, where no socket waits on the poller.
const CONNECTS_BETWEEN_POLLS: usize = 16;
/// How many addresses of one name are checked at most.
const MAX_ADDRESSES_PER_NAME: usize = 64;

/// Settings fixed when the checker is built: what a [`CheckerBuilder`](crate::CheckerBuilder)
/// holds and its setters change.
#[derive(Clone)]
pub(crate) struct Config {
    /// Whether checks close with RST unless their options say otherwise.
    pub(crate) zero_linger: bool,
    /// Half-open or full handshakes.
    pub(crate) handshake: Handshake,
    /// Source addresses, interface and local ports of the sockets.
    pub(crate) binding: Binding,
    /// Connects started between two polls, at most.
    pub(crate) connects_per_turn: usize,
    /// Sockets open at once, at most.
    pub(crate) max_sockets: usize,
    pub(crate) resolver: Arc<dyn Resolve>,
    /// Resolver threads at once, at most.
    pub(crate) resolver_threads: usize,
}

/// One submitted check.
struct Job {
    target: Target,
    family: Family,
    zero_linger: bool,
    scope: Scope,
    sink: Sink,
    /// The target's time: resolution plus the wait for an answer to the SYN.
    timeout: Duration,
    /// Until when its probes may wait for a socket slot (or its name for a resolver thread).
    start_deadline: Instant,
    phase: JobPhase,
    /// Keys of the probes still running.
    probes: Few<Key>,
    /// Addresses being checked, in resolver order (empty while resolving).
    addresses: Few<SocketAddr>,
    answers: Answers,
}

#[derive(Clone, Copy, Debug)]
enum JobPhase {
    /// Its name is being looked up since the instant given, or (`None`) waits for a resolver
    /// thread.
    Resolving(Option<Instant>),
    /// Its addresses are known (after `resolve_time` spent resolving a name).
    Connecting { resolve_time: Option<Duration> },
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
    /// Waiting for a socket slot.
    Queued,
    /// Connecting since the instant given: the SYN went out then.
    Connecting(Connecting, Instant),
}

/// The checks waiting for the answer of one lookup in flight.
struct Lookup {
    jobs: Vec<Key>,
    /// When a resolver thread took it; `None` while it waits for one.
    started: Option<Instant>,
}

pub(crate) struct Engine {
    poll: Poll,
    events: Events,
    inbox: Arc<Inbox>,
    config: Config,
    jobs: Slab<Job>,
    probes: Slab<Probe>,
    /// One deadline per job: the end of the phase it is in.
    job_timers: Timers,
    /// One deadline per connecting probe: the end of its wait for an answer.
    probe_timers: Timers,
    queued: VecDeque<Key>,
    /// Probes with a socket open (connecting), at most `config.max_sockets`.
    sockets_open: usize,
    /// Set when the process ran out of descriptors with sockets of ours open: no more are
    /// opened until one of them closes.
    out_of_descriptors: bool,
    /// Names being looked up, and the jobs waiting for each.
    resolving: HashMap<Box<str>, Lookup>,
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
            job_timers: Timers::new(),
            probe_timers: Timers::new(),
            queued: VecDeque::new(),
            sockets_open: 0,
            out_of_descriptors: false,
            resolving: HashMap::new(),
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
            let timeout = if self.can_start_more() || !self.inbox.prepare_to_sleep() {
                Some(Duration::ZERO)
            } else {
                self.time_to_next_deadline()
            };
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

    /// The time until the earliest deadline of a job or a probe; `None` if there is none.
    fn time_to_next_deadline(&self) -> Option<Duration> {
        let next = match (
            self.job_timers.next_deadline(),
            self.probe_timers.next_deadline(),
        ) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return None,
        };
        Some(next.saturating_duration_since(Instant::now()))
    }

    fn admit_commands(&mut self) {
        let mut commands = std::mem::take(&mut self.commands);
        for command in commands.drain(..) {
            match command {
                Command::Check(request) => self.admit(request),
                Command::LookupStarted { host, at } => self.lookup_started(&host, at),
                Command::Resolved {
                    host,
                    addresses,
                    at,
                } => self.resolved(&host, addresses, at),
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
            start_deadline: later_by(request.submitted, request.times.start_within),
            timeout: request.times.timeout,
            target: request.target,
            family: request.family,
            scope: request.scope,
            sink: request.sink,
            phase: JobPhase::Connecting { resolve_time: None },
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
        let Some(job) = self.jobs.get(key) else {
            return;
        };
        if !job.sink.bind(key) {
            self.jobs.remove(key);
            return;
        }
        match (job.target.host().clone(), job.target.socket_addr()) {
            (Host::Ip(ip), Some(address)) if job.family.admits(ip) => {
                let start_deadline = job.start_deadline;
                self.job_timers.insert(key, start_deadline);
                self.add_probes(key, [address]);
            }
            (Host::Ip(_), _) => {
                let error = CheckError::new(ErrorKind::InvalidOptions, job.target.to_string())
                    .with_detail("the address is not of the family asked for");
                self.finish_job(key, Err(error));
            }
            (Host::Name(host), _) => self.resolve(key, host, Instant::now()),
        }
    }

    /// Starts resolving the job's name, or joins the lookup of it already in flight.
    fn resolve(&mut self, key: Key, host: Box<str>, now: Instant) {
        let started = match self.resolving.get_mut(&host) {
            Some(lookup) => {
                lookup.jobs.push(key);
                lookup.started.map(|_| now)
            }
            None => match self.lookups.submit(host.clone()) {
                Ok(queued) => {
                    let started = (queued == Queued::Started).then_some(now);
                    let jobs = vec![key];
                    self.resolving.insert(host, Lookup { jobs, started });
                    started
                }
                Err(error) => {
                    let target = self.jobs.get(key).map(|job| job.target.to_string());
                    let error = CheckError::new(ErrorKind::NotStarted, target.unwrap_or_default())
                        .with_detail("no resolver thread could be started")
                        .with_source(error);
                    return self.finish_job(key, Err(error));
                }
            },
        };
        self.set_resolving(key, started);
    }

    /// Puts a job in the resolving phase, and its timer at the end of it.
    fn set_resolving(&mut self, key: Key, since: Option<Instant>) {
        let Some(job) = self.jobs.get_mut(key) else {
            return;
        };
        job.phase = JobPhase::Resolving(since);
        if since.is_some() {
            job.sink.started();
        }
        let deadline = match since {
            Some(since) => later_by(since, job.timeout),
            None => job.start_deadline,
        };
        self.job_timers.remove(key);
        self.job_timers.insert(key, deadline);
    }

    /// A lookup that waited for a resolver thread has one: its checks start resolving now.
    fn lookup_started(&mut self, host: &str, at: Instant) {
        let Some(lookup) = self.resolving.get_mut(host) else {
            return;
        };
        lookup.started = Some(at);
        let jobs = lookup.jobs.clone();
        for key in jobs {
            if self
                .jobs
                .get(key)
                .is_some_and(|job| matches!(job.phase, JobPhase::Resolving(None)))
            {
                self.set_resolving(key, Some(at));
            }
        }
    }

    fn resolved(&mut self, host: &str, addresses: io::Result<Vec<IpAddr>>, at: Instant) {
        let Some(lookup) = self.resolving.remove(host) else {
            return;
        };
        let mut addresses = Some(addresses);
        let last = lookup.jobs.len().saturating_sub(1);
        for (position, key) in lookup.jobs.into_iter().enumerate() {
            let Some(job) = self.jobs.get(key) else {
                continue; // timed out or cancelled while resolving
            };
            let JobPhase::Resolving(Some(since)) = job.phase else {
                continue;
            };
            // The last waiting job takes the answer itself; the others a copy.
            let answer = if position == last {
                addresses.take()
            } else {
                addresses.as_ref().map(copy_answer)
            };
            if let Some(answer) = answer {
                self.resolved_job(key, answer, at.saturating_duration_since(since));
            }
        }
    }

    fn resolved_job(
        &mut self,
        key: Key,
        addresses: io::Result<Vec<IpAddr>>,
        resolve_time: Duration,
    ) {
        let Some(job) = self.jobs.get_mut(key) else {
            return;
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
        job.phase = JobPhase::Connecting {
            resolve_time: Some(resolve_time),
        };
        // The wait for a socket slot starts now: the time spent resolving was the target's.
        job.start_deadline = later_by(job.start_deadline, resolve_time);
        let start_deadline = job.start_deadline;
        let port = job.target.port();
        self.job_timers.remove(key);
        self.job_timers.insert(key, start_deadline);
        self.add_probes(key, usable.into_iter().map(|ip| SocketAddr::new(ip, port)));
    }

    fn add_probes(&mut self, key: Key, addresses: impl IntoIterator<Item = SocketAddr>) {
        let Some(job) = self.jobs.get_mut(key) else {
            return;
        };
        for address in addresses {
            job.addresses.push(address);
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
            self.job_timers.remove(key);
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
        !self.queued.is_empty()
            && self.sockets_open < self.config.max_sockets
            && !self.out_of_descriptors
    }

    /// Starts up to `connects_per_turn` queued probes, while fewer than `max_sockets` sockets
    /// are open; the others wait for a later turn (their start deadlines running, not their
    /// timeouts). Every [`CONNECTS_BETWEEN_POLLS`] connects, closes the sockets that have
    /// become ready.
    fn start_queued(&mut self) {
        let mut started = 0;
        let mut since_poll = 0;
        while started < self.config.connects_per_turn && self.can_start_more() {
            // Only sockets the poller watches can be waiting to be closed: a loopback connect is
            // answered (and closed) within connect() itself.
            if since_poll >= CONNECTS_BETWEEN_POLLS && self.sockets_open > 0 {
                self.close_ready_sockets_now();
                since_poll = 0;
            }
            let Some(key) = self.queued.pop_front() else {
                break;
            };
            let Some(&Probe {
                job: job_key,
                address,
                ..
            }) = self.probes.get(key)
            else {
                continue; // its job finished first
            };
            let Some(job) = self.jobs.get_mut(job_key) else {
                continue;
            };
            if job.sink.is_abandoned() {
                self.cancel(job_key);
                continue;
            }
            job.sink.started();
            started += 1;
            since_poll += 1;
            let connect_started = Instant::now();
            let attempt = connect::start(
                address,
                job.zero_linger,
                self.config.handshake,
                &self.config.binding,
            );
            match attempt {
                Ok(Attempt::InProgress(socket)) => self.register(key, socket, connect_started),
                Ok(Attempt::Answered(result)) => {
                    let now = Instant::now();
                    let outcome = result.map(|()| Outcome::Open {
                        rtt: now - connect_started,
                    });
                    self.finish_probe(key, outcome, connect_started, now);
                }
                Err(error)
                    if crate::sys::is_out_of_descriptors(&error) && self.sockets_open > 0 =>
                {
                    // Our own sockets hold the descriptors: wait for one of them to close.
                    self.out_of_descriptors = true;
                    self.queued.push_front(key);
                }
                Err(error) => {
                    let now = Instant::now();
                    self.finish_probe(key, Err(error), now, now);
                }
            }
        }
    }

    /// Hands a connecting socket to the poller, with a deadline for its answer.
    fn register(&mut self, key: Key, mut socket: Connecting, connect_started: Instant) {
        let token = Token(key.to_usize());
        let registry = self.poll.registry();
        if let Err(error) = registry.register(socket.stream_mut(), token, Interest::WRITABLE) {
            let now = Instant::now();
            return self.finish_probe(key, Err(error), now, now);
        }
        let Some(probe) = self.probes.get_mut(key) else {
            return;
        };
        let left = match self.jobs.get(probe.job) {
            Some(job) => job
                .timeout
                .saturating_sub(job.resolve_time().unwrap_or_default()),
            None => Duration::ZERO,
        };
        probe.state = ProbeState::Connecting(socket, connect_started);
        self.sockets_open += 1;
        self.probe_timers
            .insert(key, later_by(connect_started, left));
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
            let connect_started = *connect_started;
            let rtt = now.saturating_duration_since(connect_started);
            let outcome = socket.result().map(|()| Outcome::Open { rtt });
            self.finish_probe(key, outcome, connect_started, now);
        }
        self.events = events;
    }

    /// Closes the probe's socket, if any, and records its answer in its job. `connect_started`
    /// is when its SYN went out (or, for an attempt that failed before, when it failed).
    fn finish_probe(
        &mut self,
        key: Key,
        outcome: io::Result<Outcome>,
        connect_started: Instant,
        now: Instant,
    ) {
        let Some(probe) = self.remove_probe(key) else {
            return;
        };
        // close() now, before anything else happens: RST if connected.
        drop(probe.state);
        let Some(job) = self.jobs.get(probe.job) else {
            return;
        };
        let result = match outcome {
            Ok(outcome) => Ok(outcome),
            Err(error) => Outcome::from_connect_error(&error).ok_or(error),
        };
        let answer = match result {
            Ok(outcome) => {
                let resolve_time = job.resolve_time();
                let connecting = now.saturating_duration_since(connect_started);
                let elapsed = resolve_time.unwrap_or_default() + connecting;
                Ok(Report::new(
                    Some(probe.address),
                    outcome,
                    elapsed,
                    resolve_time,
                ))
            }
            Err(error) => Err(CheckError::from_io(
                describe_address(&job.target, probe.address),
                error,
            )),
        };
        self.answer_probe(probe.job, key, probe.index, answer);
    }

    /// Records a probe's answer in its job, and finishes the job once it has its answer.
    fn answer_probe(
        &mut self,
        job_key: Key,
        probe: Key,
        index: usize,
        answer: Result<Report, CheckError>,
    ) {
        let Some(job) = self.jobs.get_mut(job_key) else {
            return;
        };
        job.probes.remove(probe);
        let open = answer.as_ref().is_ok_and(Report::is_open);
        job.answers.record(index, answer);
        if job.probes.is_empty() || (open && job.scope == Scope::Best) {
            self.finish_job(job_key, Ok(()));
        }
    }

    /// Answers every deadline that has passed: probes without an answer from their target are
    /// timed out, checks that could not start in time fail as not started.
    fn expire(&mut self, now: Instant) {
        while let Some(key) = self.probe_timers.pop_expired(now) {
            self.probe_deadline(key, now);
        }
        while let Some(key) = self.job_timers.pop_expired(now) {
            self.job_deadline(key, now);
        }
    }

    /// A connecting probe's time is up: timed out, unless the kernel has an answer the loop had
    /// not seen yet.
    fn probe_deadline(&mut self, key: Key, now: Instant) {
        let Some(ProbeState::Connecting(socket, connect_started)) =
            self.probes.get_mut(key).map(|probe| &mut probe.state)
        else {
            return;
        };
        let connect_started = *connect_started;
        let outcome = match socket.result_now() {
            None => Ok(Outcome::TimedOut),
            Some(result) => result.map(|()| Outcome::Open {
                rtt: now.saturating_duration_since(connect_started),
            }),
        };
        self.finish_probe(key, outcome, connect_started, now);
    }

    /// The end of a job's phase: its resolution took the whole timeout, or it waited longer
    /// than its `start_within` for the checker.
    fn job_deadline(&mut self, key: Key, now: Instant) {
        let Some(job) = self.jobs.get_mut(key) else {
            return;
        };
        match job.phase {
            JobPhase::Resolving(Some(since)) => {
                let resolving = now.saturating_duration_since(since);
                let report = Report::new(None, Outcome::TimedOut, resolving, Some(resolving));
                job.answers.record(0, Ok(report));
                self.finish_job(key, Ok(()));
            }
            JobPhase::Resolving(None) => {
                let error = not_started(&job.target.to_string()).with_detail(
                    "every resolver thread was busy with other names until the check's \
                     start_within passed (a slow DNS server?); raise resolver_threads",
                );
                self.finish_job(key, Err(error));
            }
            JobPhase::Connecting { .. } => {
                let waiting: Vec<(Key, usize, SocketAddr)> = job
                    .probes
                    .as_slice()
                    .iter()
                    .filter_map(|&probe| {
                        let probe_ref = self.probes.get(probe)?;
                        matches!(probe_ref.state, ProbeState::Queued).then_some((
                            probe,
                            probe_ref.index,
                            probe_ref.address,
                        ))
                    })
                    .collect();
                for (probe, index, address) in waiting {
                    let Some(job) = self.jobs.get(key) else {
                        return;
                    };
                    let error = not_started(&describe_address(&job.target, address)).with_detail(
                        "no socket slot came free before the check's start_within passed \
                         (max_sockets, or the open-files limit)",
                    );
                    self.remove_probe(probe);
                    self.answer_probe(key, probe, index, Err(error));
                }
            }
        }
    }

    /// Removes the job, closes its remaining sockets and queues its result for delivery:
    /// `failure` if given, else what its probes found.
    fn finish_job(&mut self, key: Key, failure: Result<(), CheckError>) {
        let Some(job) = self.jobs.remove(key) else {
            return;
        };
        self.job_timers.remove(key);
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

    /// Removes a probe and its deadline (its socket, if any, is closed when the probe is
    /// dropped).
    fn remove_probe(&mut self, key: Key) -> Option<Probe> {
        let probe = self.probes.remove(key)?;
        if let ProbeState::Connecting(..) = probe.state {
            self.sockets_open -= 1;
            self.out_of_descriptors = false;
            self.probe_timers.remove(key);
        }
        Some(probe)
    }

    fn deliver(&mut self) {
        if !self.deliveries.is_empty() {
            delivery::deliver_all(&mut self.deliveries);
        }
    }
}

impl Job {
    /// The time its name took to resolve, once resolved; `None` for an IP address.
    fn resolve_time(&self) -> Option<Duration> {
        match self.phase {
            JobPhase::Connecting { resolve_time } => resolve_time,
            JobPhase::Resolving(_) => None,
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

/// `at` plus `duration`, or far in the future where that cannot be represented.
fn later_by(at: Instant, duration: Duration) -> Instant {
    at.checked_add(duration)
        .unwrap_or_else(|| at + Duration::from_secs(365 * 24 * 3600))
}

/// A copy of a lookup's answer, for one more check that waited for it.
fn copy_answer(answer: &io::Result<Vec<IpAddr>>) -> io::Result<Vec<IpAddr>> {
    match answer {
        Ok(addresses) => Ok(addresses.clone()),
        Err(error) => Err(match error.raw_os_error() {
            Some(errno) => io::Error::from_raw_os_error(errno),
            None => io::Error::new(error.kind(), error.to_string()),
        }),
    }
}

fn not_started(target: &str) -> CheckError {
    CheckError::new(ErrorKind::NotStarted, target)
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
