//! Network namespaces that a test creates for itself, for outcomes that loopback alone cannot
//! produce: unreachable routes, firewall rules that reject or drop, a resolver with no way out.
//!
//! The mechanism is [`shaker_wire::netns`]; this is the tests' side of it: a [`NetNs`] is
//! named `tcpshaker-<pid>-<n>`, panics (saying why) where the mechanism fails, and has no
//! interface but its own `lo` (checked when it is made), so nothing sent inside it can leave it:
//! a route to a documentation range or a rule for a port is local to the namespace and
//! disappears with it. Dropping the guard, on success or on panic, deletes the namespace.
//!
//! Sockets belong to the network namespace of the thread that creates them, and a thread starts
//! in the namespace of the thread that spawns it. So code that must act inside the namespace
//! runs on a thread that has entered it ([`NetNs::run`], [`NetNs::spawn`]), and a checker whose
//! sockets must be inside is started from such a thread ([`NetNs::checker`]); its handle then
//! works from any thread.
//!
//! A test module uses it as `use crate::common::netns;`.

use std::os::unix::fs::PermissionsExt;
use std::thread::JoinHandle;

use shaker_wire::netns::Namespace;
use shaker_wire::skip::{skip, skip_unless_root};

/// Every namespace made here is named `tcpshaker-<pid>-<n>`; the first one of a process deletes
/// those that processes killed before their guards could run left behind.
const PREFIX: &str = "tcpshaker-";

/// A network namespace that exists while this guard does.
#[derive(Debug)]
pub struct NetNs {
    namespace: Namespace,
}

impl NetNs {
    /// A fresh namespace for the running test, or `None` after reporting its skip when this
    /// process is not root or one of `tools` is missing.
    pub fn for_test(tools: &[&str]) -> Option<NetNs> {
        if skip_unless_root("creating a network namespace") {
            return None;
        }
        if let Some(tool) = missing_tool(tools) {
            skip(&format!(
                "the `{tool}` binary is missing (packages iproute2 and nftables)"
            ));
            return None;
        }
        Some(NetNs::new())
    }

    /// Creates a uniquely named namespace with `lo` up and no other interface.
    ///
    /// Panics, saying why, if the namespace cannot be made (no root, no `ip`).
    pub fn new() -> NetNs {
        let namespace = Namespace::create(PREFIX)
            .unwrap_or_else(|error| panic!("could not create a network namespace: {error}"));
        let namespace = NetNs { namespace };
        namespace.assert_only_loopback();
        namespace
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        self.namespace.name()
    }

    /// Runs `command` inside the namespace (`ip netns exec NAME ...`) and returns its standard
    /// output; panics with its standard error if it fails.
    pub fn exec(&self, command: &[&str]) -> String {
        self.exec_with_input(command, None)
    }

    /// Loads an nftables ruleset into the namespace (`nft -f -`); panics if `nft` refuses it.
    pub fn nft(&self, ruleset: &str) {
        self.exec_with_input(&["nft", "-f", "-"], Some(ruleset));
    }

    fn exec_with_input(&self, command: &[&str], input: Option<&str>) -> String {
        self.namespace
            .exec(command, input)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Runs `f` on a new thread that has entered the namespace, waits for it and returns what it
    /// returns; a panic in `f` is re-raised here. Sockets `f` creates belong to the namespace
    /// (and keep belonging to it after `f` hands them out), and so do the sockets of threads it
    /// spawns.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.namespace
            .run(f)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Starts `f` on a new thread that has entered the namespace, and returns at once; panics
    /// if no thread can enter the namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        self.namespace
            .spawn(f)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// A checker whose event loop (and so every socket it opens, and every resolver thread it
    /// starts) lives inside the namespace. The handle can be used from any thread.
    pub fn checker(&self) -> tcp_shaker::Checker {
        self.run(tcp_shaker::Checker::new)
            .unwrap_or_else(|error| panic!("no checker in {}: {error}", self.name()))
    }

    /// Nothing in the namespace can reach beyond it: its only interface is `lo`.
    fn assert_only_loopback(&self) {
        let links = self.exec(&["ip", "-o", "link", "show"]);
        let names: Vec<&str> = links
            .lines()
            .filter_map(|line| line.split(':').nth(1))
            .map(str::trim)
            .collect();
        assert_eq!(
            names,
            ["lo"],
            "network namespace {} must have no interface but lo:\n{links}",
            self.name()
        );
    }
}

/// The first of `tools` that is not an executable on `PATH`, if any.
pub fn missing_tool<'a>(tools: &[&'a str]) -> Option<&'a str> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    tools.iter().copied().find(|tool| {
        !std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(tool))
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Why a name lookup made inside a namespace could be answered from outside it, if it could:
/// nscd, or a name service that talks to a daemon over a Unix socket (which no network
/// namespace confines), such as systemd-resolved's.
pub fn lookups_escape_namespaces() -> Option<String> {
    for socket in ["/run/nscd/socket", "/var/run/nscd/socket"] {
        if std::path::Path::new(socket).exists() {
            return Some(format!(
                "nscd listens on {socket} and would look names up outside"
            ));
        }
    }
    let nsswitch = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
    let hosts = nsswitch
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("hosts:"))
        .unwrap_or("files dns");
    hosts
        .split_whitespace()
        .filter(|word| !word.starts_with('[') && !word.ends_with(']'))
        .find(|source| !matches!(*source, "files" | "dns" | "myhostname"))
        .map(|source| {
            format!("/etc/nsswitch.conf looks hosts up with `{source}`, which may reach outside")
        })
}
