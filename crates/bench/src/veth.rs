//! The veth scenario's network: a namespace of the benchmark's own holding one end of a veth
//! pair, 198.51.100.2/30 inside and 198.51.100.1/30 on the checkers' end (TEST-NET-2, a
//! documentation range), both ends and the namespace's `lo` up, and nothing else: the only
//! routes are the pair's own subnet, so the checks' traffic stays on the pair.
//!
//! Dropping the [`Network`] deletes the pair and the namespace: on success, on error, and after
//! an interrupt (see [`crate::interrupt`]). A run killed outright leaves them behind until the
//! next run's [`Namespace::create`] deletes its namespace (`shaker-bench-<pid>-<n>`, whose
//! process is gone), and with it the pair.

use std::net::Ipv4Addr;

use anyhow::Context;
use shaker_wire::netns::{self, Namespace};

use crate::procfs;

/// The checkers' end of the pair, in this process's network namespace.
pub const HOST_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The far end, inside the namespace: where the listener listens.
pub const INNER_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The pair's subnet holds these two addresses only.
const PREFIX_LENGTH: u8 = 30;

/// The namespace and the pair, set up; deleted when dropped.
#[derive(Debug)]
pub struct Network {
    // Fields drop in this order: the pair (both ends at once), then the namespace.
    pair: VethPair,
    namespace: Namespace,
}

impl Network {
    /// Sets the network up. Fails, saying why, without the privileges it takes, or if any step
    /// fails; then whatever was made is deleted again.
    pub fn create() -> anyhow::Result<Network> {
        procfs::ensure_network_privileges("veth", "a network namespace and a veth pair")?;
        let namespace = Namespace::create(crate::NAMESPACE_PREFIX)
            .context("creating the network namespace (is iproute2 installed?)")?;
        let pair = VethPair::create(&namespace)?;
        let network = Network { pair, namespace };
        network.configure()?;
        Ok(network)
    }

    /// The namespace, where the listener goes.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The checkers' end of the pair, in this process's namespace.
    pub fn host_interface(&self) -> &str {
        &self.pair.host
    }

    /// Addresses both ends and brings them up, then checks that the far end's address is
    /// reached through the pair (another network on this machine could hold the same range).
    fn configure(&self) -> anyhow::Result<()> {
        let (host, inner) = (self.pair.host.as_str(), self.pair.inner.as_str());
        let host_address = format!("{HOST_ADDRESS}/{PREFIX_LENGTH}");
        let inner_address = format!("{INNER_ADDRESS}/{PREFIX_LENGTH}");
        netns::host_exec(&["ip", "address", "add", &host_address, "dev", host], None)
            .context("addressing the checkers' end of the pair")?;
        netns::host_exec(&["ip", "link", "set", host, "up"], None)
            .context("bringing the checkers' end of the pair up")?;
        self.namespace
            .exec(
                &["ip", "address", "add", &inner_address, "dev", inner],
                None,
            )
            .context("addressing the far end of the pair")?;
        self.namespace
            .exec(&["ip", "link", "set", inner, "up"], None)
            .context("bringing the far end of the pair up")?;
        let inner_text = INNER_ADDRESS.to_string();
        let route = netns::host_exec(&["ip", "-o", "route", "get", &inner_text], None)
            .context("looking up the route to the far end")?;
        let through_pair = route
            .split_whitespace()
            .skip_while(|&word| word != "dev")
            .nth(1)
            == Some(host);
        anyhow::ensure!(
            through_pair,
            "{INNER_ADDRESS} is not reached through {host} but {route:?}: another interface \
             holds the range (another shaker-bench running?)"
        );
        Ok(())
    }
}

/// A veth pair: one end here, the other inside a namespace. Dropping it deletes both ends.
#[derive(Debug)]
struct VethPair {
    host: String,
    inner: String,
}

impl VethPair {
    /// Creates `shb<pid>host` in this namespace and its peer `shb<pid>ns` inside `namespace`.
    fn create(namespace: &Namespace) -> anyhow::Result<VethPair> {
        let pid = std::process::id();
        let (host, inner) = (format!("shb{pid}host"), format!("shb{pid}ns"));
        netns::host_exec(
            &[
                "ip",
                "link",
                "add",
                &host,
                "type",
                "veth",
                "peer",
                "name",
                &inner,
                "netns",
                namespace.name(),
            ],
            None,
        )
        .context("creating the veth pair")?;
        Ok(VethPair { host, inner })
    }
}

impl Drop for VethPair {
    /// Deletes the pair at once (deleting the namespace would too, but only once nothing inside
    /// holds it any more).
    fn drop(&mut self) {
        if let Err(error) = netns::host_exec(&["ip", "link", "delete", &self.host], None) {
            eprintln!("shaker-bench: deleting the veth pair: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, SocketAddr};
    use std::time::Duration;

    use shaker_wire::Capture;
    use shaker_wire::skip::skip;
    use tcp_shaker::Checker;

    use super::*;
    use crate::listener::Listener;

    /// Checks made across the pair.
    const CHECKS: usize = 16;
    /// `CAP_NET_RAW`, for the capture.
    const CAP_NET_RAW: u32 = 13;

    /// Skips the calling test unless the process may set the network up and capture on it.
    fn skip_unless_privileged() -> bool {
        let needed = [procfs::CAP_NET_ADMIN, procfs::CAP_SYS_ADMIN, CAP_NET_RAW];
        if procfs::has_capabilities(&needed).unwrap() {
            return false;
        }
        skip("needs root to create a network namespace, a veth pair and a capture");
        true
    }

    #[test]
    fn checks_cross_the_pair_each_packet_is_captured_once_and_nothing_is_left_behind() {
        if skip_unless_privileged() {
            return;
        }
        let network = Network::create().unwrap();
        let host = network.host_interface().to_string();
        let namespace = network.namespace().name().to_string();
        let first_local_port = procfs::first_local_port();
        let listener = network
            .namespace()
            .run(|| Listener::start(INNER_ADDRESS, first_local_port))
            .unwrap()
            .unwrap();
        let server = SocketAddr::V4(listener.address());
        let capture = Capture::start_on(&host, server.port(), 0).unwrap();
        let checker = Checker::new().unwrap();
        for _ in 0..CHECKS {
            let report = checker.check(server, Duration::from_secs(1)).unwrap();
            assert!(report.is_open(), "{report:?}");
        }
        listener.settle();
        let packets = capture.stop().unwrap();

        // On the checkers' end, the SYN and the RST are seen leaving and the SYN-ACK arriving,
        // each once (lo would show each twice).
        let conversations = shaker_wire::connections(&packets, server);
        let described = conversations.describe();
        assert_eq!(conversations.connections.len(), CHECKS, "{described}");
        assert!(conversations.strays.is_empty(), "{described}");
        for connection in &conversations.connections {
            assert_eq!(connection.client.ip(), IpAddr::V4(HOST_ADDRESS));
            assert_eq!(
                connection.sequence(),
                ["c:S", "s:SA", "c:RA"],
                "{described}"
            );
        }
        assert_eq!(listener.accepted(), 0);

        drop(listener);
        drop(network);
        let namespaces = netns::host_exec(&["ip", "netns", "list"], None).unwrap();
        assert!(
            !namespaces
                .lines()
                .any(|line| line.split_whitespace().next() == Some(namespace.as_str())),
            "{namespace} is left behind: {namespaces}"
        );
        assert!(
            netns::host_exec(&["ip", "link", "show", &host], None).is_err(),
            "{host} is left behind"
        );
    }
}
