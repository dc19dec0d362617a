//! `tcp-checker serve`: health state over HTTP, reloads and stops, bad input.

use std::net::TcpListener;

use crate::common::serve::Served;

#[test]
fn an_open_and_a_closed_port_show_up_and_down_on_health_and_metrics() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let open = open.local_addr().map(|a| (open, a)).unwrap();
    let (open_name, closed_name) = (open.1.to_string(), closed.to_string());
    let served = Served::start(&["-i", "100ms", &open_name, &closed_name]);
    served.wait_for_log(
        &format!("{closed_name} is DOWN"),
        1,
        std::time::Duration::from_secs(10),
    );
    assert_eq!(served.get(&format!("/health/{open_name}")).status, 200);
    assert_eq!(served.get(&format!("/health/{closed_name}")).status, 503);
    assert_eq!(served.get("/health/nothing:1").status, 404);
    assert_eq!(served.get("/health").status, 503);
    let metrics = served.get("/metrics");
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        metrics
            .body
            .contains(&format!("tcp_shaker_target_up{{target=\"{open_name}\"}} 1")),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains(&format!(
            "tcp_shaker_target_up{{target=\"{closed_name}\"}} 0"
        )),
        "{}",
        metrics.body
    );
    assert!(served.stop().success());
}
