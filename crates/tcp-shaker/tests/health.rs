//! Health over time: rise and fall on a listener that closes and opens again, the intervals,
//! checker errors that move no counter, a name whose address changes, and the spread of first
//! checks.

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tcp_shaker::Checker;
use tcp_shaker::health::{CheckEvent, InitialState, Monitor, Observe, Policy, State, Watch};

use crate::common::{SCHEDULING_MARGIN, listener_on, open_port};

/// What the tests see of one check.
#[derive(Debug)]
struct Seen {
    name: String,
    success: Option<bool>,
    health: String,
    previous_address: Option<SocketAddr>,
    at: Instant,
}

/// Sends every check's [`Seen`] to the test.
struct Recorder(Sender<Seen>);

impl Observe for Recorder {
    fn checked(&mut self, event: &CheckEvent<'_>) {
        let last = event.status.last_check.as_ref();
        let _ = self.0.send(Seen {
            name: event.status.name.clone(),
            success: last.and_then(|last| last.judgement.success()),
            health: event.status.health.to_string(),
            previous_address: event.previous_address,
            at: Instant::now(),
        });
    }
}

/// A monitor of `checker` that sends the test every check it makes.
fn recorded(checker: &Checker) -> (Monitor, Receiver<Seen>) {
    let (sender, seen) = mpsc::channel();
    (Monitor::start(checker, Recorder(sender)), seen)
}

/// A checker of its own, [`recorded`].
fn recorded_checker() -> (Checker, Monitor, Receiver<Seen>) {
    let checker = Checker::new().unwrap();
    let (monitor, seen) = recorded(&checker);
    (checker, monitor, seen)
}

fn next(seen: &Receiver<Seen>) -> Seen {
    seen.recv_timeout(Duration::from_secs(10))
        .expect("a check within 10 s")
}

/// The next `count` checks that succeeded (`success`) or failed (not `success`), passing over
/// the others: checks already on their way when the port changed.
fn next_judged(seen: &Receiver<Seen>, success: bool, count: usize) -> Vec<Seen> {
    let mut judged = Vec::new();
    while judged.len() < count {
        let check = next(seen);
        if check.success == Some(success) {
            judged.push(check);
        }
    }
    judged
}

const FAST: Policy = Policy {
    interval: Duration::from_millis(100),
    fast_interval: Some(Duration::from_millis(40)),
    down_interval: Some(Duration::from_millis(250)),
    timeout: Duration::from_secs(1),
    rise: 2,
    fall: 3,
    initial_state: InitialState::FullyUp,
    family: tcp_shaker::Family::Any,
};

#[test]
fn a_port_that_closes_goes_down_after_fall_failures_and_up_after_rise_successes() {
    let (listener, address) = open_port();
    let (_checker, monitor, seen) = recorded_checker();
    let id = monitor.watch(Watch::new("web", address, FAST).unwrap());

    let first = next(&seen);
    assert_eq!((first.success, first.health.as_str()), (Some(true), "UP"));
    drop(listener);
    // Checks already on their way may still find the port open.
    let failures = next_judged(&seen, false, 3);
    let states: Vec<&str> = failures.iter().map(|f| f.health.as_str()).collect();
    assert_eq!(states, ["UP 2/3", "UP 1/3", "DOWN"]);
    // While going down, checks come at the fast interval, not the settled one.
    let changing = failures[2].at - failures[0].at;
    assert!(
        changing >= Duration::from_millis(70)
            && changing < Duration::from_millis(200) + SCHEDULING_MARGIN,
        "two fast intervals (40 ms each) took {changing:?}"
    );
    let status = monitor.status(id).unwrap();
    assert_eq!(
        (status.health.state(), status.transitions),
        (State::Down, 1)
    );

    let _reopened = listener_on(address, 128);
    let successes = next_judged(&seen, true, 2);
    let states: Vec<&str> = successes.iter().map(|s| s.health.as_str()).collect();
    assert_eq!(states, ["DOWN 1/2", "UP"]);
    let status = monitor.status(id).unwrap();
    assert_eq!((status.health.state(), status.transitions), (State::Up, 2));
}

#[test]
fn transitions_stream_through_a_channel() {
    let (listener, address) = open_port();
    let checker = Checker::new().unwrap();
    let (sender, transitions) = mpsc::channel();
    let monitor = Monitor::start(&checker, sender);
    let policy = Policy {
        initial_state: InitialState::FullyDown,
        ..FAST
    };
    monitor.watch(Watch::new("db", address, policy).unwrap());
    let up = transitions.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((up.name.as_str(), up.to), ("db", State::Up));
    assert!(
        up.judgement.reason().starts_with("open in "),
        "{:?}",
        up.judgement.reason()
    );
    drop(listener);
    let down = transitions.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        (down.to, down.health.to_string().as_str()),
        (State::Down, "DOWN")
    );
    assert_eq!(down.judgement.reason(), "closed");
}

#[test]
fn a_check_the_checker_could_not_make_moves_no_counter() {
    let (_listener, address) = open_port();
    let (checker, monitor, seen) = recorded_checker();
    let id = monitor.watch(Watch::new("web", address, FAST).unwrap());
    assert_eq!(next(&seen).success, Some(true));
    checker.stop();
    for _ in 0..4 {
        let check = next(&seen);
        assert_eq!((check.success, check.health.as_str()), (None, "UP"));
    }
    let status = monitor.status(id).unwrap();
    assert_eq!(status.transitions, 0);
    let message = match status.last_check.unwrap().judgement {
        tcp_shaker::health::Judgement::CheckerError { kind, message } => (kind, message),
        other => panic!("a checker error, not {other:?}"),
    };
    assert_eq!(message.0, tcp_shaker::ErrorKind::Stopped, "{}", message.1);
}

#[test]
fn a_name_is_resolved_again_for_every_check_and_a_new_address_shows() {
    // Two listeners on one port, at 127.0.0.1 and 127.0.0.2: try ports until one is free on both.
    let (_first, second, address) = (0..20)
        .find_map(|_| {
            let (first, address) = open_port();
            let second = std::net::TcpListener::bind(("127.0.0.2", address.port())).ok()?;
            Some((first, second, address))
        })
        .expect("a port free on 127.0.0.1 and 127.0.0.2");
    let port = address.port();
    let answer = Arc::new(Mutex::new(address.ip()));
    let resolved = Arc::clone(&answer);
    let checker = Checker::builder()
        .resolver(move |_: &str| Ok(vec![*resolved.lock().unwrap()]))
        .spawn()
        .unwrap();
    let (monitor, seen) = recorded(&checker);
    let id = monitor.watch(Watch::new("svc", ("svc.test", port), FAST).unwrap());
    assert_eq!(next(&seen).previous_address, None);
    let moved: IpAddr = second.local_addr().unwrap().ip();
    *answer.lock().unwrap() = moved;
    let change = loop {
        let check = next(&seen);
        if let Some(previous) = check.previous_address {
            break previous;
        }
    };
    assert_eq!(change, address);
    assert_eq!(
        monitor.status(id).unwrap().address,
        Some(SocketAddr::new(moved, port))
    );
}

#[test]
fn an_unwatched_target_is_gone_at_once_and_checked_no_more() {
    let (_listener, address) = open_port();
    let (_checker, monitor, seen) = recorded_checker();
    let gone = monitor.watch(Watch::new("gone", address, FAST).unwrap());
    monitor.watch(Watch::new("kept", address, FAST).unwrap());
    while next(&seen).name != "gone" {}
    monitor.unwatch(gone);
    assert!(monitor.status(gone).is_none());
    let names: Vec<String> = monitor.statuses().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["kept"]);
    // A check of it in flight may still finish; none starts after that.
    let settle = Instant::now() + Duration::from_millis(300);
    while seen
        .recv_timeout(settle.saturating_duration_since(Instant::now()))
        .is_ok()
    {}
    let until = Instant::now() + Duration::from_millis(500);
    while let Ok(check) = seen.recv_timeout(until.saturating_duration_since(Instant::now())) {
        assert_eq!(check.name, "kept");
    }
}

#[test]
fn first_checks_spread_over_the_interval_instead_of_in_lockstep() {
    let (_listener, address) = open_port();
    let (_checker, monitor, seen) = recorded_checker();
    let interval = Duration::from_secs(1);
    let policy = Policy { interval, ..FAST };
    let started = Instant::now();
    for n in 0..200 {
        monitor.watch(Watch::new(format!("target-{n}"), address, policy).unwrap());
    }
    let mut firsts: Vec<Duration> = (0..200).map(|_| next(&seen).at - started).collect();
    firsts.sort();
    let (earliest, latest) = (firsts[0], firsts[199]);
    assert!(
        latest < interval + SCHEDULING_MARGIN,
        "first checks ended at {latest:?}"
    );
    // An even spread puts a tenth of them in each tenth of the interval; lockstep, all in one.
    let in_first_tenth = firsts
        .iter()
        .filter(|at| **at < earliest + interval / 10)
        .count();
    assert!(
        in_first_tenth < 60,
        "{in_first_tenth} of 200 first checks in the first 100 ms"
    );
}
