//! What the benchmark reads of the system in `/proc`: the accept-queue cap, the local port
//! range, the load average, this process's peak memory and capabilities (and whether they allow
//! the network scenarios), the TCP sockets in TIME_WAIT and the ports listened on, the kernel's
//! TCP counters; and of another process (a service under test): its CPU time, each of its
//! threads' and its resident memory.
//!
//! The network tables and counters are read from `/proc/thread-self/net`: those of the calling
//! thread's network namespace, which is not the process's when the thread has entered another
//! (`/proc/net` is the main thread's).

use std::collections::BTreeSet;
use std::io;

use anyhow::Context;

use crate::cpu_time::CpuTime;
use crate::sys;

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
    status_field_of("self", name)
}

/// The value of the field `name` of `/proc/<process>/status` (`process` a pid or `self`),
/// trimmed.
fn status_field_of(process: &str, name: &str) -> anyhow::Result<String> {
    let path = format!("/proc/{process}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(|value| value.trim().to_string())
        .with_context(|| format!("no {name} in {path}"))
}

/// The resident memory of process `pid` now, KiB (`VmRSS` of its `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let value = status_field_of(&pid.to_string(), "VmRSS")?;
    let kib = value.trim_end_matches("kB").trim();
    kib.parse()
        .with_context(|| format!("parsing VmRSS {value:?} of process {pid}"))
}

/// The CPU time process `pid` has used so far, every thread, those gone included
/// (`utime` and `stime` of `/proc/PID/stat`, in clock ticks: 10 ms steps).
pub fn process_cpu(pid: u32) -> anyhow::Result<CpuTime> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let (_, cpu) = parse_stat(&stat).with_context(|| format!("parsing {path} {stat:?}"))?;
    Ok(cpu)
}

/// One thread of a process, as its `/proc/PID/task/TID/stat` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadCpu {
    /// The thread's id.
    pub tid: u32,
    /// Its name (`comm`: at most 15 bytes, as `pthread_setname_np` cuts it).
    pub name: String,
    /// The CPU time it has used so far.
    pub cpu: CpuTime,
}

/// The threads of process `pid` now, with the CPU time each has used (threads that have
/// exited are not among them; [`process_cpu`] counts their time).
pub fn threads_cpu(pid: u32) -> anyhow::Result<Vec<ThreadCpu>> {
    let directory = format!("/proc/{pid}/task");
    let mut threads = Vec::new();
    for entry in std::fs::read_dir(&directory).with_context(|| format!("listing {directory}"))? {
        let entry = entry.with_context(|| format!("listing {directory}"))?;
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        // A thread that exits between the listing and the read is skipped.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (name, cpu) = parse_stat(&stat).with_context(|| format!("parsing {stat:?}"))?;
        threads.push(ThreadCpu { tid, name, cpu });
    }
    threads.sort_by_key(|thread| thread.tid);
    Ok(threads)
}

/// The name (`comm`) and the CPU time (`utime`, `stime`) of a `stat` line. The name is in
/// parentheses and may itself hold spaces and parentheses: the fields follow the last `)`.
fn parse_stat(stat: &str) -> Option<(String, CpuTime)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    // After the name: state (field 3), ..., utime (field 14), stime (field 15).
    let mut fields = stat.get(close + 1..)?.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let tick = sys::clock_tick();
    Some((
        name,
        CpuTime {
            user: tick * u32::try_from(utime).ok()?,
            system: tick * u32::try_from(stime).ok()?,
        },
    ))
}

/// The kernel's TCP counters of the calling thread's network namespace (`Tcp:` of
/// `/proc/thread-self/net/snmp`), by name, and those of `TcpExt:` (`netstat`).
pub fn tcp_counters() -> anyhow::Result<TcpCounters> {
    let mut counters = TcpCounters::default();
    for (path, prefix) in [
        ("/proc/thread-self/net/snmp", "Tcp:"),
        ("/proc/thread-self/net/netstat", "TcpExt:"),
    ] {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        counters
            .values
            .extend(counter_table(&text, prefix).with_context(|| format!("parsing {path}"))?);
    }
    Ok(counters)
}

/// The kernel's TCP counters at one moment.
#[derive(Clone, Debug, Default)]
pub struct TcpCounters {
    values: Vec<(String, i64)>,
}

impl TcpCounters {
    /// The counter `name` (`ActiveOpens`, `EmbryonicRsts`, ...), 0 if this kernel has none.
    pub fn get(&self, name: &str) -> i64 {
        self.values
            .iter()
            .find(|(counter, _)| counter == name)
            .map_or(0, |(_, value)| *value)
    }

    /// How much the counter `name` grew from `earlier` to these.
    pub fn since(&self, earlier: &TcpCounters, name: &str) -> u64 {
        u64::try_from(self.get(name) - earlier.get(name)).unwrap_or(0)
    }
}

/// The counters of the table `prefix` (`Tcp:`) of an snmp-style file: a line of names, then
/// one of values, both starting with the prefix.
fn counter_table(text: &str, prefix: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let mut lines = text.lines().filter_map(|line| line.strip_prefix(prefix));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        anyhow::bail!("no {prefix} table");
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .map(|(name, value)| {
            let value = value
                .parse()
                .with_context(|| format!("{prefix} {name} {value:?}"))?;
            Ok((name.to_string(), value))
        })
        .collect()
}

/// How many IPv4 TCP sockets of the calling thread's network namespace with `port` at either
/// end are in TIME_WAIT.
pub fn time_wait_sockets(port: u16) -> anyhow::Result<usize> {
    const TIME_WAIT: u8 = 0x06;
    let sockets = tcp_sockets("/proc/thread-self/net/tcp")?;
    Ok(sockets
        .iter()
        .filter(|s| s.state == TIME_WAIT && (s.local_port == port || s.remote_port == port))
        .count())
}

/// The ports on which some TCP socket (IPv4 or IPv6) of the calling thread's network namespace
/// listens now.
pub fn listening_ports() -> anyhow::Result<BTreeSet<u16>> {
    const LISTEN: u8 = 0x0A;
    let mut ports = BTreeSet::new();
    for table in ["/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"] {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn stat_lines_give_the_name_and_the_cpu_time_after_the_last_parenthesis() {
        let tick = sys::clock_tick();
        let line = "4242 (tcp-shaker (x) y) S 1 4242 4242 0 -1 4194560 120 0 0 0 250 75 0 0 20 0 \
                    5 0 100 1000 200 18446744073709551615";
        let (name, cpu) = parse_stat(line).unwrap();
        assert_eq!(name, "tcp-shaker (x) y");
        assert_eq!((cpu.user, cpu.system), (tick * 250, tick * 75));
        assert_eq!(parse_stat("4242 (cut"), None);
    }

    #[test]
    fn this_process_and_its_threads_are_read() {
        let pid = std::process::id();
        let threads = threads_cpu(pid).unwrap();
        assert!(
            threads.iter().any(|thread| thread.tid == pid),
            "{threads:?}"
        );
        assert!(rss_kib(pid).unwrap() > 0);
        let total = process_cpu(pid).unwrap().total();
        assert!(total < Duration::from_secs(24 * 3600));
    }

    #[test]
    fn counter_tables_pair_names_with_values() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm ActiveOpens MaxConn\n\
                    Tcp: 1 4096 -1\nUdp: InDatagrams\nUdp: 3\n";
        let table = counter_table(snmp, "Tcp:").unwrap();
        let counters = TcpCounters { values: table };
        assert_eq!(counters.get("ActiveOpens"), 4096);
        assert_eq!(counters.get("MaxConn"), -1);
        assert_eq!(counters.get("NoSuchCounter"), 0);
        let later = TcpCounters {
            values: vec![("ActiveOpens".into(), 5000)],
        };
        assert_eq!(later.since(&counters, "ActiveOpens"), 904);
        assert!(counter_table(snmp, "TcpExt:").is_err());
        assert!(tcp_counters().unwrap().get("ActiveOpens") >= 0);
    }
}
