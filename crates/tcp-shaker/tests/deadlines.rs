//! A timeout means the target was silent: the checker's own back-pressure (a socket slot, a
//! turn of the loop) is never reported as the target's timeout.
//!
//! A check is `TimedOut` only when its SYN went out and no answer came within its timeout.
//! Time spent waiting for the checker is bounded by `CheckOptions::start_within` instead, and a
//! check that could not start within it fails with `ErrorKind::NotStarted`, having sent nothing.
//!
//! Every port here is on loopback (or on the loopback of a namespace the test creates), where a
//! port answers at once, open or closed: a timeout of one of them is the checker's doing.

use crate::common;
use crate::common::netns;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tcp_shaker::{Batch, CheckError, CheckOptions, Checker, ErrorKind, Outcome, Phase, Report};

/// Far shorter than the time a batch of thousands takes, far longer than a loopback answer.
const SHORT_TIMEOUT: Duration = Duration::from_millis(20);
/// Room to wait for the checker: longer than any batch here takes.
const ROOM_TO_START: Duration = Duration::from_secs(60);
/// Checks in a loopback batch: thousands, several times the socket slots.
const CHECKS: usize = 20_000;
const MAX_SOCKETS: usize = 64;

/// What each loopback target answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Expect {
    Open,
    Closed,
}

/// How a batch's results came out, by name, with the first few unexpected ones.
#[derive(Default)]
struct Tally {
    counts: BTreeMap<String, usize>,
    unexpected: Vec<String>,
}

impl Tally {
    fn add(&mut self, key: &str, unexpected: Option<String>) {
        *self.counts.entry(key.to_owned()).or_default() += 1;
        if let Some(what) = unexpected {
            if self.unexpected.len() < 5 {
                self.unexpected.push(what);
            }
        }
    }

    fn assert_nothing_unexpected(&self) {
        assert!(
            self.unexpected.is_empty(),
            "results: {:?}; first unexpected: {:#?}",
            self.counts,
            self.unexpected
        );
    }

    fn count(&self, key: &str) -> usize {
        self.counts.get(key).copied().unwrap_or(0)
    }
}

fn outcome_key(result: &Result<Report, CheckError>) -> String {
    match result {
        Ok(report) => report.outcome().name().to_owned(),
        Err(error) => format!("error {}", error.kind()),
    }
}

/// Checks `targets` round-robin, `CHECKS` checks in one batch, with `options`; returns the
/// tally and how long the batch took. `not_started_allowed` says whether `NotStarted` errors
/// are an expected result.
fn loopback_batch(
    checker: &Checker,
    targets: &[(SocketAddr, Expect)],
    options: CheckOptions,
    not_started_allowed: bool,
) -> (Tally, Duration) {
    let started = Instant::now();
    let mut batch = checker.batch();
    for n in 0..CHECKS {
        batch
            .submit(n as u64, targets[n % targets.len()].0, options)
            .unwrap();
    }
    let mut tally = Tally::default();
    for completion in batch {
        let (address, expect) = targets[completion.tag as usize % targets.len()];
        let result = &completion.result;
        let fine = match (expect, result) {
            (Expect::Open, Ok(report)) => report.is_open() && report.address() == Some(address),
            (Expect::Closed, Ok(report)) => {
                report.outcome() == Outcome::Closed && report.address() == Some(address)
            }
            (_, Err(error)) => {
                not_started_allowed
                    && error.kind() == ErrorKind::NotStarted
                    && error.target() == address.to_string()
            }
        };
        let unexpected = (!fine).then(|| format!("{address} ({expect:?}): {result:?}"));
        tally.add(&outcome_key(result), unexpected);
    }
    (tally, started.elapsed())
}

/// Two open and two closed loopback ports.
struct LoopbackTargets {
    list: Vec<(SocketAddr, Expect)>,
    _listeners: Vec<std::net::TcpListener>,
}

impl LoopbackTargets {
    fn new() -> LoopbackTargets {
        let listeners: Vec<_> = (0..2).map(|_| common::open_listener()).collect();
        let mut list: Vec<_> = listeners
            .iter()
            .map(|listener| (listener.local_addr().unwrap(), Expect::Open))
            .collect();
        list.extend((0..2).map(|_| (common::closed_address(), Expect::Closed)));
        LoopbackTargets {
            list,
            _listeners: listeners,
        }
    }
}

/// With room to wait for a socket slot, thousands of checks of loopback ports (which all answer
/// at once) give no timeout at all, however long the batch takes.
#[test]
fn back_pressure_with_room_to_start_is_never_a_timeout() {
    let targets = LoopbackTargets::new();
    let checker = Checker::builder().max_sockets(MAX_SOCKETS).spawn().unwrap();
    let options = CheckOptions::new(SHORT_TIMEOUT).start_within(ROOM_TO_START);
    let (tally, took) = loopback_batch(&checker, &targets.list, options, false);
    eprintln!(
        "{CHECKS} checks of loopback ports, max_sockets {MAX_SOCKETS}, timeout {SHORT_TIMEOUT:?}: \
         {:?} in {took:?}",
        tally.counts
    );
    assert_eq!(
        tally.count("timed out"),
        0,
        "{} of {CHECKS} checks of loopback ports that answer at once were reported timed out \
         (the checker's own queue counted as the targets' silence); results: {:?}; first \
         unexpected: {:#?}",
        tally.count("timed out"),
        tally.counts,
        tally.unexpected
    );
    tally.assert_nothing_unexpected();
    assert_eq!(tally.count("open") + tally.count("closed"), CHECKS);
}

/// With the default `start_within` (the timeout), a check that cannot get a slot in time fails
/// with `NotStarted`: never `TimedOut`, which would blame the target.
#[test]
fn back_pressure_without_room_to_start_is_not_started_never_a_timeout() {
    let targets = LoopbackTargets::new();
    let checker = Checker::builder().max_sockets(MAX_SOCKETS).spawn().unwrap();
    let (tally, took) = loopback_batch(
        &checker,
        &targets.list,
        CheckOptions::new(SHORT_TIMEOUT),
        true,
    );
    eprintln!(
        "{CHECKS} checks of loopback ports, max_sockets {MAX_SOCKETS}, timeout {SHORT_TIMEOUT:?}, \
         default start_within: {:?} in {took:?}",
        tally.counts
    );
    assert_eq!(
        tally.count("timed out"),
        0,
        "{} of {CHECKS} checks of loopback ports that answer at once were reported timed out \
         instead of not started; results: {:?}; first unexpected: {:#?}",
        tally.count("timed out"),
        tally.counts,
        tally.unexpected
    );
    tally.assert_nothing_unexpected();
}

/// The reproduction: every port of 127.0.0.1, in one batch, with a 20 ms timeout. In a
/// namespace of its own, so that no other process's silent listener is among them: exactly one
/// port is open (ours), every other is closed, none times out.
#[test]
fn a_scan_of_every_loopback_port_has_no_timeout() {
    let Some(namespace) = netns::NetNs::for_test(&["ip"]) else {
        return;
    };
    let listener = namespace.run(common::open_listener);
    let open_port = listener.local_addr().unwrap().port();
    let checker = namespace
        .run(|| Checker::builder().max_sockets(MAX_SOCKETS).spawn())
        .unwrap();
    let options = CheckOptions::new(SHORT_TIMEOUT).start_within(ROOM_TO_START);

    let started = Instant::now();
    let mut batch = checker.batch();
    for port in 1..=u16::MAX {
        batch
            .submit(
                u64::from(port),
                SocketAddr::from(([127, 0, 0, 1], port)),
                options,
            )
            .unwrap();
    }
    let mut tally = Tally::default();
    let mut open_ports = Vec::new();
    for completion in batch {
        let port = completion.tag;
        let result = &completion.result;
        let fine = match result {
            Ok(report) if report.is_open() => {
                open_ports.push(port);
                port == u64::from(open_port)
            }
            Ok(report) => report.outcome() == Outcome::Closed,
            Err(_) => false,
        };
        tally.add(
            &outcome_key(result),
            (!fine).then(|| format!("port {port}: {result:?}")),
        );
    }
    let took = started.elapsed();
    eprintln!(
        "127.0.0.1:1-65535 in a namespace, max_sockets {MAX_SOCKETS}, timeout {SHORT_TIMEOUT:?}: \
         {:?} in {took:?}",
        tally.counts
    );
    assert_eq!(
        tally.count("timed out"),
        0,
        "{} of 65535 loopback ports, where every port answers at once, were reported timed out; \
         results: {:?}; first unexpected: {:#?}",
        tally.count("timed out"),
        tally.counts,
        tally.unexpected
    );
    assert_eq!(
        open_ports,
        [u64::from(open_port)],
        "the open ports found are not exactly the listener's"
    );
    tally.assert_nothing_unexpected();
}

/// A check queued behind a full socket slot keeps its whole timeout for its own SYN: with one
/// slot, checks of a silent port time out one after the other, each after its full timeout.
#[test]
fn a_timeout_is_counted_from_the_syn_not_from_submission() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    const SILENT_CHECKS: u64 = 3;
    let silent = common::SilentListener::new();
    let checker = Checker::builder().max_sockets(1).spawn().unwrap();
    let options = CheckOptions::new(TIMEOUT).start_within(ROOM_TO_START);

    let started = Instant::now();
    let mut batch = checker.batch();
    for tag in 0..SILENT_CHECKS {
        batch.submit(tag, silent.address, options).unwrap();
    }
    let mut reports = Vec::new();
    for completion in &mut batch {
        reports.push(completion.result.unwrap());
    }
    let took = started.elapsed();
    for report in &reports {
        assert_eq!(report.outcome(), Outcome::TimedOut, "{report:?}");
        assert_eq!(report.phase(), Phase::Connect, "{report:?}");
        assert_eq!(report.address(), Some(silent.address), "{report:?}");
        assert!(
            report.elapsed() >= TIMEOUT && report.elapsed() <= TIMEOUT + common::SCHEDULING_MARGIN,
            "a check of a silent port reported {:?} for a timeout of {TIMEOUT:?}",
            report.elapsed()
        );
    }
    // One slot: the SYNs went out one after the other, each waited its full timeout.
    let serial = TIMEOUT * SILENT_CHECKS as u32;
    assert!(
        took >= serial,
        "{SILENT_CHECKS} checks through one socket slot all timed out after {took:?}, less than \
         {serial:?}: the later ones timed out in the queue, before their SYN was sent"
    );
}

/// The time a check waited for a socket slot is not its own: an open port checked after a wait
/// is open, and its report's elapsed time leaves the wait out.
#[test]
fn waiting_for_a_socket_slot_is_not_the_targets_time() {
    // The only slot is held longer than the next check's timeout.
    const HOLD: Duration = Duration::from_millis(500);
    const TIMEOUT: Duration = Duration::from_millis(300);
    let mut slot = one_socket_slot_held_for(HOLD);
    slot.batch
        .submit(
            1,
            slot.address,
            CheckOptions::new(TIMEOUT).start_within(ROOM_TO_START),
        )
        .unwrap();
    let mut results: Vec<_> = (&mut slot.batch).collect();
    results.sort_by_key(|completion| completion.tag);
    let held = results[0].result.as_ref().unwrap();
    assert_eq!(held.outcome(), Outcome::TimedOut, "{held:?}");
    let waited = results[1].result.as_ref().unwrap_or_else(|error| {
        panic!("an open port checked after waiting for a slot: {error}");
    });
    assert!(
        waited.is_open(),
        "an open port that waited {HOLD:?} for a socket slot, timeout {TIMEOUT:?}: {waited:?}"
    );
    // Generous: the check itself takes microseconds; the wait was HOLD.
    assert!(
        waited.elapsed() < HOLD / 2,
        "the report counts the wait for a socket slot: {waited:?}"
    );
    assert_eq!(common::accept_all(&slot.listener), 0);
}

/// A check that cannot get a socket slot within its `start_within` fails with `NotStarted`,
/// naming its target, once that time has passed (not at its timeout), having sent nothing.
#[test]
fn a_check_that_cannot_start_in_time_is_not_started() {
    const HOLD: Duration = Duration::from_secs(3);
    const START_WITHIN: Duration = Duration::from_millis(300);
    let slot = one_socket_slot_held_for(HOLD);
    let options = CheckOptions::new(Duration::from_secs(10)).start_within(START_WITHIN);
    let (error, took) = common::failing_check(
        &slot.checker,
        slot.address,
        options,
        &format!("a check that could not get a socket slot within {START_WITHIN:?}"),
    );
    common::assert_not_started(&error, &slot.address.to_string(), took, START_WITHIN);
    assert_eq!(error.kind().as_str(), "not_started");
    assert!(
        error.to_string().contains("nothing was sent"),
        "the error does not say that the target was not contacted: {error}"
    );
}

/// A batch says how many of its checks the checker has not started: those not handed over yet,
/// and those waiting for one of its socket slots; a check counts as started once its SYN is out.
#[test]
fn a_batch_counts_the_checks_waiting_to_start() {
    let silent = common::SilentListener::new();
    let checker = Checker::builder().max_sockets(4).spawn().unwrap();
    let mut batch = checker.batch();
    // Long enough that the first four hold their slots while the count is read.
    let options = CheckOptions::new(Duration::from_secs(5)).start_within(Duration::from_secs(60));
    for tag in 0..20 {
        batch.submit(tag, silent.address, options).unwrap();
    }
    assert_eq!(
        batch.waiting_to_start(),
        20,
        "nothing is handed over before a flush"
    );
    batch.flush();
    // Generous: the loop takes the checks within a turn.
    let give_up = Instant::now() + Duration::from_secs(3);
    while batch.waiting_to_start() > 16 && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        batch.waiting_to_start(),
        16,
        "four checks hold the four socket slots; sixteen wait"
    );
    assert_eq!(batch.outstanding(), 20);
}

/// A checker with one socket slot, which a check of a silent port in `batch` holds, and an open
/// port (its listener and address) to check behind it.
struct SlotHeld {
    _silent: common::SilentListener,
    listener: std::net::TcpListener,
    address: SocketAddr,
    checker: Checker,
    batch: Batch,
}

/// The one socket slot, held for `hold` (the holding check's timeout) from now.
fn one_socket_slot_held_for(hold: Duration) -> SlotHeld {
    let silent = common::SilentListener::new();
    let (listener, address) = common::open_port();
    let checker = Checker::builder().max_sockets(1).spawn().unwrap();
    let mut batch = checker.batch();
    batch.submit(0, silent.address, hold).unwrap();
    batch.flush();
    SlotHeld {
        _silent: silent,
        listener,
        address,
        checker,
        batch,
    }
}
