//! IPv6 zones and port 0: a zone in a target's text and the scope id of a `SocketAddrV6` reach
//! the socket and the report; no constructor accepts port 0.
//!
//! A link-local address needs its zone to be reached at all. The host's `lo` has none, so the
//! link-local test makes a network namespace (root and `ip`; a skip without them) and gives its
//! `lo` the address `fe80::1/64`; nothing there can leave the namespace.

use crate::common;
use crate::common::netns;

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use tcp_shaker::{Checker, ErrorKind, Target, ToTarget};

const TIMEOUT: Duration = Duration::from_secs(5);

/// The interface index of `lo` in the calling thread's network namespace.
fn loopback_index() -> u32 {
    // SAFETY: if_nametoindex reads the NUL-terminated name it is given, and nothing else.
    let index = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
    assert_ne!(index, 0, "{}", std::io::Error::last_os_error());
    index
}

fn scope_id_of(address: Option<SocketAddr>) -> Option<u32> {
    match address? {
        SocketAddr::V6(v6) => Some(v6.scope_id()),
        SocketAddr::V4(_) => None,
    }
}

#[test]
fn a_zone_in_the_text_is_kept() {
    let index = loopback_index();
    let target: Target = "[fe80::1%lo]:80".parse().unwrap();
    assert_eq!(target.scope_id(), index);
    assert_eq!(target.port(), 80);
    assert_eq!(target.to_string(), "[fe80::1%lo]:80");
    let SocketAddr::V6(address) = target.socket_addr().unwrap() else {
        panic!("{target} is not IPv6");
    };
    assert_eq!(address.scope_id(), index);
    assert_eq!(*address.ip(), "fe80::1".parse::<Ipv6Addr>().unwrap());

    let numeric: Target = format!("[fe80::1%{index}]:80").parse().unwrap();
    assert_eq!(numeric.scope_id(), index);
    assert_eq!(numeric.socket_addr(), target.socket_addr());
}

/// The kernel ignores the scope id of a non-link-local address, so `::1` with `lo`'s index is
/// reachable: the report's address keeps the scope id it was given, from a `SocketAddrV6` and
/// from the text.
#[test]
fn a_scope_id_reaches_the_report() {
    let listener = common::open_listener_v6();
    let port = listener.local_addr().unwrap().port();
    let index = loopback_index();
    let checker = Checker::new().unwrap();

    let address = SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, index);
    let report = checker.check(address, TIMEOUT).unwrap();
    assert!(report.is_open(), "{report:?}");
    assert_eq!(
        scope_id_of(report.address()),
        Some(index),
        "the scope id of {address} was dropped: {report:?}"
    );
    assert_eq!(report.address(), Some(SocketAddr::V6(address)));

    let report = checker.check(format!("[::1%lo]:{port}"), TIMEOUT).unwrap();
    assert!(report.is_open(), "{report:?}");
    assert_eq!(
        scope_id_of(report.address()),
        Some(index),
        "the zone of [::1%lo]:{port} was dropped: {report:?}"
    );
    assert_eq!(common::accept_all(&listener), 0);
}

/// A link-local address is reachable only with its zone: checked with it, a listener on
/// `fe80::1%lo` in a namespace is open, and the report says which interface.
#[test]
fn a_link_local_address_is_checked_through_its_zone() {
    let Some(namespace) = netns::NetNs::for_test(&["ip"]) else {
        return;
    };
    namespace.exec(&[
        "ip",
        "-6",
        "address",
        "add",
        "fe80::1/64",
        "dev",
        "lo",
        "nodad",
    ]);
    let index = namespace.run(loopback_index);
    let link_local: Ipv6Addr = "fe80::1".parse().unwrap();
    let listener = namespace.run(|| {
        common::listener_on(
            SocketAddr::V6(SocketAddrV6::new(link_local, 0, 0, index)),
            128,
        )
    });
    let port = listener.local_addr().unwrap().port();
    let checker = namespace.checker();

    // From the text: the zone's name is looked up in the namespace, where the checks are made.
    let target: Target = namespace
        .run(move || format!("[fe80::1%lo]:{port}").parse::<Target>())
        .unwrap();
    assert_eq!(target.scope_id(), index);
    let report = checker
        .check(&target, TIMEOUT)
        .unwrap_or_else(|error| panic!("{target}: {error}"));
    assert!(report.is_open(), "{target}: {report:?}");
    assert_eq!(
        scope_id_of(report.address()),
        Some(index),
        "{target}: {report:?}"
    );

    // From a SocketAddrV6 with the scope id.
    let address = SocketAddrV6::new(link_local, port, 0, index);
    let report = checker
        .check(address, TIMEOUT)
        .unwrap_or_else(|error| panic!("{address}: {error}"));
    assert!(report.is_open(), "{address}: {report:?}");
    assert_eq!(report.address(), Some(SocketAddr::V6(address)));
    assert_eq!(common::accept_all(&listener), 0);
}

/// Port 0 cannot be checked, and no way of making a target lets it through.
#[test]
fn port_zero_is_refused_by_every_constructor() {
    let v4: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let v6: SocketAddr = "[::1]:0".parse().unwrap();
    let refusals = [
        ("Target::try_from(v4)", Target::try_from(v4).err()),
        ("Target::try_from(v6)", Target::try_from(v6).err()),
        ("SocketAddr::to_target", v4.to_target().err()),
        (
            "SocketAddrV6::to_target",
            SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 1)
                .to_target()
                .err(),
        ),
        ("(IpAddr, u16)", (v4.ip(), 0).to_target().err()),
        ("(&str, u16)", ("localhost", 0).to_target().err()),
        ("Target::new", Target::new("localhost", 0).err()),
        ("str::parse", "localhost:0".parse::<Target>().err()),
        (
            "Target::with_port",
            "localhost:80".parse::<Target>().unwrap().with_port(0).err(),
        ),
    ];
    for (how, refusal) in refusals {
        let error = refusal.unwrap_or_else(|| panic!("{how} accepted port 0"));
        assert_eq!(error.kind(), ErrorKind::InvalidTarget, "{how}: {error}");
        assert!(
            error
                .detail()
                .is_some_and(|detail| detail.contains("port 0")),
            "{how}: {error}"
        );
    }

    // A check of such an address fails at once, before anything is sent.
    let checker = Checker::new().unwrap();
    let error = checker.check(v4, TIMEOUT).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidTarget, "{error}");
    let mut batch = checker.batch();
    let error = batch.submit(0, v6, TIMEOUT).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidTarget, "{error}");
    assert_eq!(batch.outstanding(), 0);
}
