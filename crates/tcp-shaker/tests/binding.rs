//! Where checks come from: a source address, a network interface.

use crate::common;

use std::thread;
use std::time::Duration;

use tcp_shaker::{Checker, ErrorKind};

#[test]
fn a_source_address_is_used() {
    let (listener, address) = common::open_port();
    let checker = Checker::builder()
        .source_address("127.0.0.2".parse().unwrap())
        .zero_linger(false)
        .spawn()
        .unwrap();
    assert!(
        checker
            .check(address, Duration::from_secs(5))
            .unwrap()
            .is_open()
    );
    thread::sleep(Duration::from_millis(300));
    listener.set_nonblocking(true).unwrap();
    let (_, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.2");

    let v6_source = Checker::builder()
        .source_address("::1".parse().unwrap())
        .spawn()
        .unwrap();
    let v6 = common::open_listener_v6();
    assert!(
        v6_source
            .check(v6.local_addr().unwrap(), Duration::from_secs(5))
            .unwrap()
            .is_open()
    );

    let unusable = Checker::builder()
        .source_address("192.0.2.1".parse().unwrap())
        .spawn()
        .unwrap();
    let error = unusable.check(address, Duration::from_secs(5)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NoLocalAddress, "{error}");
}

#[test]
fn an_interface_is_used() {
    let (listener, address) = common::open_port();
    let on_lo = Checker::builder().interface("lo").spawn().unwrap();
    assert!(
        on_lo
            .check(address, Duration::from_secs(5))
            .unwrap()
            .is_open()
    );
    assert_eq!(common::accept_all(&listener), 0);

    // A name no interface has is refused when the checker is built, not check by check.
    let error = Checker::builder()
        .interface("no-such-if0")
        .spawn()
        .expect_err("a checker bound to an interface that does not exist");
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound, "{error}");
    assert!(
        error
            .to_string()
            .contains("no network interface is named \"no-such-if0\""),
        "{error}"
    );
}
