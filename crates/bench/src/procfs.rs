//! What the benchmark reads of the system in `/proc`: the accept-queue cap, the local port
//! range, the load average, this process's peak memory and capabilities (and whether they allow
//! the network scenarios), the TCP sockets in TIME_WAIT and the ports listened on.

use std::collections::BTreeSet;
use std::io;

use anyhow::Context;

/// `net.core.somaxconn`: the kernel caps every listen() backlog at it.
pub fn somaxconn() -> anyhow::Result<i32> {
    let text = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .context("reading /proc/sys/net/core/somaxconn")?;
    text.trim()
        .parse()
        .with_context(|| format!("parsing net.core.somaxconn {text:?}"))
}

/// The first port of the local port range (`net.ipv4.ip_local_port_range`), from which
/// `connect()` picks the checking sockets' ports; the kernel's default 32768 if it cannot be
/// read.
pub fn first_local_port() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768)
}

/// The 1-minute load average, from `/proc/loadavg`.
pub fn load_average() -> anyhow::Result<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    let first = text.split_whitespace().next().unwrap_or_default();
    first
        .parse()
        .with_context(|| format!("parsing /proc/loadavg {text:?}"))
}

/// How many CPUs this process may run on.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// This process's peak resident memory in KiB (`VmHWM` of `/proc/self/status`): the high-water
/// mark of its own address space since its exec.
///
/// A parent cannot get this from `wait4`: Linux starts an exec'd child's `ru_maxrss` at the peak
/// of the address space it replaced, which after `fork`/`vfork` is the parent's.
pub fn peak_rss_kib() -> anyhow::Result<u64> {
    let value = status_field("VmHWM")?;
    let kib = value.trim_end_matches("kB").trim();
    kib.parse()
        .with_context(|| format!("parsing VmHWM {value:?}"))
}

/// `CAP_NET_ADMIN`: configuring interfaces, addresses and routes.
pub const CAP_NET_ADMIN: u32 = 12;
/// `CAP_SYS_ADMIN`: making a named network namespace (`ip netns add` mounts it) and entering it.
pub const CAP_SYS_ADMIN: u32 = 21;

/// Fails, saying that `scenario` needs root to make `what`, unless this process may make and
/// enter network namespaces and configure their interfaces (`CAP_NET_ADMIN`, `CAP_SYS_ADMIN`).
pub fn ensure_network_privileges(scenario: &str, what: &str) -> anyhow::Result<()> {
    let privileged = has_capabilities(&[CAP_NET_ADMIN, CAP_SYS_ADMIN])?;
    anyhow::ensure!(
        privileged,
        "the {scenario} scenario needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create {what}: \
         run it as root, e.g. with sudo"
    );
    Ok(())
}

/// Whether this process has each capability of `capabilities` (by number, as in
/// `linux/capability.h`) in its effective set (`CapEff` of `/proc/self/status`).
pub fn has_capabilities(capabilities: &[u32]) -> anyhow::Result<bool> {
    let value = status_field("CapEff")?;
    let effective =
        u64::from_str_radix(&value, 16).with_context(|| format!("parsing CapEff {value:?}"))?;
    Ok(capabilities
        .iter()
        .all(|&capability| effective >> capability & 1 == 1))
}

/// The value of the field `name` of `/proc/self/status`, trimmed.
fn status_field(name: &str) -> anyhow::Result<String> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(|value| value.trim().to_string())
        .with_context(|| format!("no {name} in /proc/self/status"))
}

/// How many IPv4 TCP sockets with `port` at either end are in TIME_WAIT.
pub fn time_wait_sockets(port: u16) -> anyhow::Result<usize> {
    const TIME_WAIT: u8 = 0x06;
    let sockets = tcp_sockets("/proc/net/tcp")?;
    Ok(sockets
        .iter()
        .filter(|s| s.state == TIME_WAIT && (s.local_port == port || s.remote_port == port))
        .count())
}

/// The ports on which some TCP socket (IPv4 or IPv6) listens now.
pub fn listening_ports() -> anyhow::Result<BTreeSet<u16>> {
    const LISTEN: u8 = 0x0A;
    let mut ports = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let sockets = tcp_sockets(table)?;
        ports.extend(
            sockets
                .iter()
                .filter(|s| s.state == LISTEN)
                .map(|s| s.local_port),
        );
    }
    Ok(ports)
}

/// One line of `/proc/net/tcp` or `tcp6`.
struct TcpSocket {
    local_port: u16,
    remote_port: u16,
    state: u8,
}

/// The sockets of a `/proc/net/tcp`-style table (a missing table, as without IPv6, is empty).
fn tcp_sockets(path: &str) -> anyhow::Result<Vec<TcpSocket>> {
    let table = match std::fs::read_to_string(path) {
        Ok(table) => table,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("reading {path}")),
    };
    let port = |address: &str| {
        let (_, port) = address.rsplit_once(':')?;
        u16::from_str_radix(port, 16).ok()
    };
    // sl, local address:port, remote address:port, state (hex), ...
    let sockets = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let (local, remote, state) = (fields.next()?, fields.next()?, fields.next()?);
            Some(TcpSocket {
                local_port: port(local)?,
                remote_port: port(remote)?,
                state: u8::from_str_radix(state, 16).ok()?,
            })
        })
        .collect();
    Ok(sockets)
}
