//! Host names: resolved off the loop, within the check's deadline, through a pluggable resolver.

use crate::common;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tcp_shaker::{CheckOptions, Checker, ErrorKind, Family, Outcome};

const LOCALHOST_V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const SECOND_LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

#[test]
fn localhost_resolves_with_the_system_resolver() {
    let listener = common::open_listener();
    let port = listener.local_addr().unwrap().port();
    let checker = Checker::new().unwrap();
    let report = checker
        .check(
            format!("localhost:{port}"),
            CheckOptions::new(Duration::from_secs(5)).family(Family::V4),
        )
        .unwrap();
    assert!(report.is_open(), "{report:?}");
    assert_eq!(report.address().unwrap().ip(), LOCALHOST_V4);
    assert_eq!(common::accept_all(&listener), 0);
}

#[test]
fn an_unresolvable_name_is_a_resolve_error_naming_it() {
    let checker = Checker::builder()
        .resolver(|host: &str| {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host}: Name or service not known"),
            ))
        })
        .spawn()
        .unwrap();
    let error = checker
        .check("no-such-host.test:80", Duration::from_secs(5))
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Resolve);
    assert_eq!(error.target(), "no-such-host.test:80");
    let text = error.to_string();
    assert!(
        text.contains("no-such-host.test:80") && text.contains("Name or service not known"),
        "{text}"
    );
}

#[test]
fn a_slow_resolver_times_out_at_the_deadline_without_holding_up_other_checks() {
    let listener = common::open_listener();
    let checker = Checker::builder()
        .resolver(|_: &str| {
            std::thread::sleep(Duration::from_secs(3));
            Ok(vec![LOCALHOST_V4])
        })
        .spawn()
        .unwrap();
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let slow = checker.check_async("slow.test:80", timeout);
    let report = pollster::block_on(slow).unwrap();
    let took = started.elapsed();
    assert_eq!(report.outcome(), Outcome::TimedOut);
    assert_eq!(report.address(), None, "no address was known yet");
    assert!(
        took >= timeout && took <= timeout + common::SCHEDULING_MARGIN,
        "took {took:?}"
    );

    // The loop is not blocked by the lookup still running: an IP check answers at once.
    let started = Instant::now();
    let open = checker
        .check(listener.local_addr().unwrap(), Duration::from_secs(5))
        .unwrap();
    assert!(open.is_open());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "an IP check waited on the lookup"
    );
}

/// A resolver that answers `db.test` with two loopback addresses, only the second of which has
/// a listener, and counts its lookups.
fn two_address_checker(lookups: Arc<AtomicUsize>) -> Checker {
    Checker::builder()
        .resolver(move |host: &str| {
            lookups.fetch_add(1, Ordering::SeqCst);
            match host {
                "db.test" => Ok(vec![SECOND_LOOPBACK, LOCALHOST_V4, SECOND_LOOPBACK]),
                "v6only.test" => Ok(vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]),
                _ => Err(io::Error::new(io::ErrorKind::NotFound, "unknown")),
            }
        })
        .spawn()
        .unwrap()
}

#[test]
fn every_address_of_a_name_is_checked() {
    let listener = common::listener_on("127.0.0.1:0".parse().unwrap(), 128);
    let port = listener.local_addr().unwrap().port();
    let lookups = Arc::new(AtomicUsize::new(0));
    let checker = two_address_checker(Arc::clone(&lookups));

    // The best report: the open address, although the resolver listed it second.
    let best = checker
        .check(("db.test", port), Duration::from_secs(5))
        .unwrap();
    assert!(best.is_open(), "{best:?}");
    assert_eq!(best.address().unwrap().ip(), LOCALHOST_V4);

    // One report per distinct address, in resolver order.
    let every = checker
        .check_every_address(("db.test", port), Duration::from_secs(5))
        .unwrap();
    let found: Vec<(IpAddr, Outcome)> = every
        .iter()
        .map(|result| {
            let report = result.as_ref().unwrap();
            let outcome = match report.outcome() {
                Outcome::Open { .. } => Outcome::Open {
                    rtt: Duration::ZERO,
                },
                other => other,
            };
            (report.address().unwrap().ip(), outcome)
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (SECOND_LOOPBACK, Outcome::Closed),
            (
                LOCALHOST_V4,
                Outcome::Open {
                    rtt: Duration::ZERO
                }
            )
        ]
    );
    assert_eq!(lookups.load(Ordering::SeqCst), 2);
    assert_eq!(common::accept_all(&listener), 0);
}

#[test]
fn the_family_filters_resolved_addresses() {
    let listener = common::open_listener();
    let port = listener.local_addr().unwrap().port();
    let checker = two_address_checker(Arc::new(AtomicUsize::new(0)));
    let v6 = CheckOptions::new(Duration::from_secs(5)).family(Family::V6);
    let error = checker.check(("db.test", port), v6).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Resolve);
    assert!(error.to_string().contains("no IPv6 address"), "{error}");

    let v4 = CheckOptions::new(Duration::from_secs(5)).family(Family::V4);
    assert_eq!(
        checker.check(("v6only.test", port), v4).unwrap_err().kind(),
        ErrorKind::Resolve
    );

    let error = checker
        .check(listener.local_addr().unwrap(), v6)
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidOptions);
}

#[test]
fn a_batch_checks_every_address_too() {
    let listener = common::listener_on("127.0.0.1:0".parse().unwrap(), 128);
    let port = listener.local_addr().unwrap().port();
    let checker = two_address_checker(Arc::new(AtomicUsize::new(0)));
    let mut batch = checker.batch();
    batch
        .submit_every_address(7, ("db.test", port), Duration::from_secs(5))
        .unwrap();
    batch
        .submit(8, ("db.test", port), Duration::from_secs(5))
        .unwrap();
    batch
        .submit_every_address(9, ("unknown.test", port), Duration::from_secs(5))
        .unwrap();
    let mut completions: Vec<_> = batch.collect();
    completions.sort_by_key(|c| c.tag);
    let ips = |c: &tcp_shaker::Completion| -> Vec<IpAddr> {
        c.results()
            .map(|r| r.as_ref().unwrap().address().unwrap().ip())
            .collect()
    };
    assert_eq!(ips(&completions[0]), vec![SECOND_LOOPBACK, LOCALHOST_V4]);
    assert_eq!(ips(&completions[1]), vec![LOCALHOST_V4]);
    assert!(completions[1].other_addresses.is_empty());
    assert_eq!(
        completions[2].result.as_ref().unwrap_err().kind(),
        ErrorKind::Resolve
    );
    assert!(completions[2].other_addresses.is_empty());
}
