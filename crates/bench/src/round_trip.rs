//! The rtt scenario's network: two network namespaces of the benchmark's own, the checkers' and
//! the listener's, joined by a user-space delay line (`shaker_wire::delay_line`) that holds
//! each packet half the round trip each way. The checkers' end is
//! [`CLIENT_ADDRESS`](shaker_wire::delay_line::CLIENT_ADDRESS) on
//! [`CLIENT_INTERFACE`](shaker_wire::delay_line::CLIENT_INTERFACE), the listener's
//! [`SERVER_ADDRESS`](shaker_wire::delay_line::SERVER_ADDRESS) (a /30 of TEST-NET-3, a
//! documentation range), and nothing else is routed: the checks' traffic stays on the line.
//!
//! The child runs are started from a thread inside the checkers' namespace (a process starts in
//! the namespace of the thread that spawns it), and so are the captures of the delay passes, on
//! the checkers' end of the line; the listener is started inside the listener's namespace,
//! whose accept-queue caps are raised so that 10 000 half-open connections fit.
//!
//! Dropping the [`Network`] stops the line (its devices go with it) and deletes both
//! namespaces: on success, on error, and after an interrupt (see [`crate::interrupt`]). A run
//! killed outright leaves its namespaces behind until the next run's [`Namespace::create`]
//! deletes them (`shaker-bench-<pid>-<n>`, whose process is gone).

use std::time::Duration;

use anyhow::Context;
use shaker_wire::delay_line::DelayLine;
use shaker_wire::netns::Namespace;

use crate::procfs;

/// The listener's namespace's accept-queue caps (`net.core.somaxconn`,
/// `net.ipv4.tcp_max_syn_backlog`): room for every half-open connection at 10 000 in flight.
const ACCEPT_QUEUE: &str = "65535";

/// The two namespaces and the line between them; deleted when dropped.
pub struct Network {
    // Fields drop in this order: the line (its threads and devices), then the namespaces.
    line: DelayLine,
    checkers: Namespace,
    listener: Namespace,
}

impl Network {
    /// Sets the network up with a round trip of `rtt`. Fails, saying why, without the
    /// privileges it takes, or if any step fails; then whatever was made is deleted again.
    pub fn create(rtt: Duration) -> anyhow::Result<Network> {
        procfs::ensure_network_privileges("rtt", "network namespaces and TUN devices")?;
        let namespace = || {
            Namespace::create(crate::NAMESPACE_PREFIX)
                .context("creating a network namespace (is iproute2 installed?)")
        };
        let (checkers, listener) = (namespace()?, namespace()?);
        for parameter in ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog"] {
            listener
                .sysctl(parameter, ACCEPT_QUEUE)
                .context("raising the listener's accept queue")?;
        }
        let line = DelayLine::start(&checkers, &listener, rtt / 2)
            .context("starting the delay line between the namespaces")?;
        Ok(Network {
            line,
            checkers,
            listener,
        })
    }

    /// The checkers' namespace, where the child runs and the captures go.
    pub fn checkers(&self) -> &Namespace {
        &self.checkers
    }

    /// The listener's namespace.
    pub fn listener(&self) -> &Namespace {
        &self.listener
    }

    /// The line, for its counters.
    pub fn line(&self) -> &DelayLine {
        &self.line
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use shaker_wire::delay_line;
    use shaker_wire::skip::skip;
    use tcp_shaker::Checker;

    use super::*;
    use crate::listener::Listener;

    #[test]
    fn checks_across_the_line_take_the_round_trip_and_nothing_is_left_behind() {
        let needed = [procfs::CAP_NET_ADMIN, procfs::CAP_SYS_ADMIN];
        if !procfs::has_capabilities(&needed).unwrap() {
            skip("needs root to create network namespaces and TUN devices");
            return;
        }
        let rtt = Duration::from_millis(40);
        let network = Network::create(rtt).unwrap();
        let names = [
            network.checkers().name().to_string(),
            network.listener().name().to_string(),
        ];
        let first_local_port = network.checkers().run(procfs::first_local_port).unwrap();
        let listener = network
            .listener()
            .run(|| Listener::start(delay_line::SERVER_ADDRESS, first_local_port))
            .unwrap()
            .unwrap();
        assert_eq!(listener.backlog().to_string(), ACCEPT_QUEUE);
        let server = SocketAddr::V4(listener.address());
        let checker = network.checkers().run(Checker::new).unwrap().unwrap();
        for _ in 0..4 {
            let report = checker.check(server, Duration::from_secs(2)).unwrap();
            let tcp_shaker::Outcome::Open { rtt: seen } = report.outcome() else {
                panic!("{report:?}");
            };
            assert!(seen >= rtt, "SYN-ACK after {seen:?}, under the round trip");
        }
        listener.settle();
        assert_eq!(listener.accepted(), 0);
        assert!(network.line().counters().carried() >= 12);

        drop((checker, listener, network));
        let namespaces = shaker_wire::netns::host_exec(&["ip", "netns", "list"], None).unwrap();
        for name in names {
            assert!(
                !namespaces
                    .lines()
                    .any(|line| line.split_whitespace().next() == Some(name.as_str())),
                "{name} is left behind: {namespaces}"
            );
        }
    }
}
