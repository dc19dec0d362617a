//! Network namespaces of the benchmark's own: made and deleted with `ip netns`, and entered
//! (`setns`) by the threads that must create their sockets inside.
//!
//! A socket belongs to the network namespace of the thread that creates it, and a thread starts
//! in the namespace of the thread that spawns it: a listener started by [`Namespace::run`] is
//! inside, its accepting thread too, and stays there when handed out to other threads.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;

use anyhow::Context;

/// Every namespace made here is named `shaker-bench-<pid>`.
const PREFIX: &str = "shaker-bench-";
/// Where `ip netns` keeps its named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// A network namespace that exists while this guard does.
#[derive(Debug)]
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// Creates `shaker-bench-<pid>` with its `lo` up, after deleting the namespaces that earlier
    /// runs left behind (killed before their guards could run).
    pub fn create() -> anyhow::Result<Namespace> {
        remove_stale();
        let name = format!("{PREFIX}{}", std::process::id());
        ip(&["netns", "add", &name])?;
        // From here on the guard deletes the namespace, whatever fails next.
        let namespace = Namespace { name };
        namespace.ip(&["link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS`: the `ip` command acting inside the namespace.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut inside = vec!["-n", self.name.as_str()];
        inside.extend_from_slice(args);
        ip(&inside)
    }

    /// Runs `f` on a new thread that has entered the namespace, and returns what it returns.
    /// Sockets that `f` creates belong to the namespace, and so do the threads it spawns.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
        let path = Path::new(NETNS_DIR).join(&self.name);
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let name = self.name.as_str();
        thread::scope(|scope| {
            let inside = thread::Builder::new()
                .name(format!("in-{name}"))
                .spawn_scoped(scope, move || {
                    enter(&file).with_context(|| format!("entering network namespace {name}"))?;
                    drop(file);
                    f()
                })
                .context("starting a thread to enter the network namespace")?;
            inside
                .join()
                .map_err(|_| anyhow::anyhow!("a thread in network namespace {name} panicked"))?
        })
    }
}

impl Drop for Namespace {
    /// Deletes the namespace: its name at once, the namespace itself once nothing inside holds
    /// it any more.
    fn drop(&mut self) {
        if let Err(error) = ip(&["netns", "delete", &self.name]) {
            eprintln!("shaker-bench: {error:#}");
        }
    }
}

/// Runs `ip ARGS`; its standard output, or an error with its standard error.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    let command = format!("ip {}", args.join(" "));
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running `{command}` (is iproute2 installed?)"))?;
    anyhow::ensure!(
        output.status.success(),
        "`{command}` failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Moves the calling thread into the network namespace that `file` stands for.
fn enter(file: &File) -> io::Result<()> {
    // SAFETY: `file` is an open descriptor, borrowed for the call; setns takes no pointers and
    // changes only the calling thread's network namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Deletes the namespaces named here whose process is gone, or that carry this process's id
/// (left by an earlier process that had it): runs killed before their guards could run. Best
/// effort.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let Some(Ok(pid)) = name.strip_prefix(PREFIX).map(str::parse::<u32>) else {
            continue;
        };
        if pid == std::process::id() || !Path::new("/proc").join(pid.to_string()).exists() {
            match ip(&["netns", "delete", name]) {
                Ok(_) => eprintln!("deleted network namespace {name}, left by a killed run"),
                Err(error) => eprintln!("shaker-bench: {error:#}"),
            }
        }
    }
}
