//! Network namespaces that a test creates for itself, for outcomes that loopback alone cannot
//! produce: unreachable routes, firewall rules that reject or drop, a resolver with no way out.
//!
//! A [`NetNs`] has no interface but its own `lo` (checked when it is made), so nothing sent
//! inside it can leave it: a route to a documentation range or a rule for a port is local to the
//! namespace and disappears with it. Dropping the guard, on success or on panic, deletes the
//! namespace.
//!
//! Sockets belong to the network namespace of the thread that creates them, and a thread starts
//! in the namespace of the thread that spawns it. So code that must act inside the namespace
//! runs on a thread that has entered it ([`NetNs::run`], [`NetNs::spawn`]), and a checker whose
//! sockets must be inside is started from such a thread ([`NetNs::checker`]); its handle then
//! works from any thread.
//!
//! Include it from a test file next to `mod common;` with
//! `#[path = "common/netns.rs"] mod netns;`.

#![allow(dead_code)] // each test binary uses its own subset

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};

/// Every namespace made here is named `tcpshaker-<pid>-<n>`.
const PREFIX: &str = "tcpshaker-";
/// Where `ip netns` keeps its named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// A network namespace that exists while this guard does.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a uniquely named namespace with `lo` up and no other interface.
    ///
    /// Panics, saying why, if the namespace cannot be made (no root, no `ip`).
    pub fn new() -> NetNs {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(remove_stale_namespaces);
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(error) = run(Command::new("ip").args(["netns", "add", &name]), None) {
            panic!("could not create network namespace {name}: {error}");
        }
        // From here on the guard deletes the namespace, whatever fails next.
        let namespace = NetNs { name };
        namespace.exec(&["ip", "link", "set", "lo", "up"]);
        namespace.assert_only_loopback();
        namespace
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
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
        let mut ip = Command::new("ip");
        ip.args(["netns", "exec", &self.name]).args(command);
        match run(&mut ip, input) {
            Ok(stdout) => stdout,
            Err(error) => panic!(
                "`{}` in network namespace {} failed: {error}",
                command.join(" "),
                self.name
            ),
        }
    }

    /// Runs `f` on a new thread that has entered the namespace, waits for it and returns what it
    /// returns; a panic in `f` is re-raised here. Sockets `f` creates belong to the namespace
    /// (and keep belonging to it after `f` hands them out), and so do the sockets of threads it
    /// spawns.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = self.open();
        thread::scope(|scope| {
            let name = self.name.as_str();
            let inside = scope.spawn(move || {
                enter(&file, name);
                drop(file);
                f()
            });
            inside
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Starts `f` on a new thread that has entered the namespace, and returns at once; the
    /// thread panics if it cannot enter the namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let file = self.open();
        let name = self.name.clone();
        thread::Builder::new()
            .name(format!("in-{name}"))
            .spawn(move || {
                enter(&file, &name);
                drop(file);
                f()
            })
            .unwrap_or_else(|error| panic!("could not spawn a thread for {}: {error}", self.name))
    }

    /// A checker whose event loop (and so every socket it opens, and every resolver thread it
    /// starts) lives inside the namespace. The handle can be used from any thread.
    pub fn checker(&self) -> tcp_shaker::Checker {
        self.run(tcp_shaker::Checker::new)
            .unwrap_or_else(|error| panic!("no checker in {}: {error}", self.name))
    }

    /// The namespace's file, for `setns`.
    fn open(&self) -> File {
        let path = Path::new(NETNS_DIR).join(&self.name);
        File::open(&path).unwrap_or_else(|error| panic!("cannot open {}: {error}", path.display()))
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
            self.name
        );
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Threads or sockets still inside keep the namespace itself alive until they go; the
        // name is gone at once, and nothing can be added to the namespace through it any more.
        if let Err(error) = run(
            Command::new("ip").args(["netns", "delete", &self.name]),
            None,
        ) {
            // No panic here: this may run while unwinding from a failed assertion.
            let _ = writeln!(
                io::stderr(),
                "could not delete network namespace {}: {error}",
                self.name
            );
        }
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

/// Moves the calling thread into the namespace `file` stands for.
fn enter(file: &File, name: &str) {
    // SAFETY: `file` is an open descriptor of a network namespace, borrowed for the call;
    // setns only changes the calling thread's network namespace.
    let result = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if result != 0 {
        panic!(
            "could not enter network namespace {name}: {}",
            io::Error::last_os_error()
        );
    }
}

/// Runs `command`, feeding it `input`; its standard output, or why it failed.
fn run(command: &mut Command, input: Option<&str>) -> Result<String, String> {
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run {:?}: {error}", command.get_program()))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A write error shows up as the command's failure below.
        let _ = stdin.write_all(input.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|error| format!("cannot wait for {:?}: {error}", command.get_program()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Deletes namespaces this helper made in processes that no longer exist (killed before their
/// guards could run): `tcpshaker-<pid>-<n>` whose `<pid>` is gone. Best effort.
fn remove_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let Some((pid, n)) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !numeric(pid) || !numeric(n) || Path::new("/proc").join(pid).exists() {
            continue;
        }
        let _ = run(Command::new("ip").args(["netns", "delete", name]), None);
    }
}
