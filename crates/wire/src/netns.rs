//! Network namespaces for the tests and the benchmark: made and deleted with `ip netns`, and
//! entered (`setns`) by the threads that must create their sockets inside.
//!
//! A socket belongs to the network namespace of the thread that creates it, and a thread starts
//! in the namespace of the thread that spawns it. So code that must act inside a [`Namespace`]
//! runs on a thread that has entered it ([`Namespace::run`], [`Namespace::spawn`]): a listener
//! opened there is inside, its accepting threads too, and it stays inside when handed out to
//! threads elsewhere.
//!
//! Every namespace is named `<prefix><pid>-<n>`, the prefix chosen by the caller (the tests and
//! the benchmark each have their own). Dropping the guard, on success, on error or while
//! unwinding from a panic, deletes it. A process killed before its guards could run leaves its
//! namespaces behind; the first [`Namespace::create`] of a prefix in a later process deletes
//! those of that prefix whose process is gone.
//!
//! Everything here needs `ip` (iproute2) and the privileges to make and enter a namespace
//! (`CAP_SYS_ADMIN`); without them the calls fail, saying why.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::panic;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};

/// Where `ip netns` keeps its named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// A network namespace that exists while this guard does.
#[derive(Debug)]
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// Creates a namespace named `<prefix><pid>-<n>` (this process's id, then a counter), with
    /// its `lo` up.
    ///
    /// The first call for a prefix in this process first deletes the namespaces of that prefix
    /// left behind by processes that are gone (or by an earlier process that had this one's
    /// id), saying so on stderr; namespaces of other prefixes, and of processes still running,
    /// are left alone.
    ///
    /// `prefix` must end with `-`, so that the names of one prefix cannot be read as names of
    /// another. Fails if it does not, if `ip` cannot be run, or if it fails (without the
    /// privileges, say).
    pub fn create(prefix: &str) -> io::Result<Namespace> {
        if !prefix.ends_with('-') || prefix.contains(['/', '\0']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("network namespace prefix {prefix:?} must end with '-' and hold no '/'"),
            ));
        }
        sweep_once(prefix);
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{prefix}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        host_exec(&["ip", "netns", "add", &name], None)?;
        // From here on the guard deletes the namespace, whatever fails next.
        let namespace = Namespace { name };
        namespace.exec(&["ip", "link", "set", "lo", "up"], None)?;
        Ok(namespace)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `command` (program and arguments) inside the namespace (`ip netns exec NAME ...`),
    /// with `stdin` as its standard input if given (none otherwise), and returns its standard
    /// output. Fails if it cannot be run or exits unsuccessfully, with its standard error.
    pub fn exec(&self, command: &[&str], stdin: Option<&str>) -> io::Result<String> {
        let mut ip = Command::new("ip");
        ip.args(["netns", "exec", &self.name]).args(command);
        output(
            &mut ip,
            stdin,
            format_args!("`{}` in network namespace {}", command.join(" "), self.name),
        )
    }

    /// Runs `f` on a new thread that has entered the namespace, waits for it and returns what it
    /// returns; a panic in `f` is resumed here. Sockets that `f` creates belong to the namespace
    /// (and keep belonging to it after `f` hands them out), and so do the threads it spawns.
    ///
    /// Fails, without running `f`, if the thread cannot be started or cannot enter the
    /// namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let file = self.open()?;
        let name = self.name.as_str();
        thread::scope(|scope| {
            let inside = thread::Builder::new()
                .name(format!("in-{name}"))
                .spawn_scoped(scope, move || {
                    enter(&file, name)?;
                    drop(file);
                    Ok(f())
                })
                .map_err(|error| {
                    io::Error::new(
                        error.kind(),
                        format!("cannot start a thread for network namespace {name}: {error}"),
                    )
                })?;
            inside
                .join()
                .unwrap_or_else(|panic| panic::resume_unwind(panic))
        })
    }

    /// Starts `f` on a new thread inside the namespace and returns its handle once the thread
    /// is inside, without waiting for `f`. Sockets and threads it creates belong to the
    /// namespace, as with [`Namespace::run`].
    ///
    /// Fails, without running `f`, if the thread cannot be started or cannot enter the
    /// namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<JoinHandle<T>> {
        let name = format!("in-{}", self.name);
        // A thread starts in the namespace of the thread that spawns it: spawned from inside,
        // `f`'s thread is inside from its first instruction.
        self.run(move || thread::Builder::new().name(name).spawn(f))?
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!(
                        "cannot start a thread in network namespace {}: {error}",
                        self.name
                    ),
                )
            })
    }

    /// Sets the kernel parameter `name` (as `sysctl` spells it: `net.core.somaxconn`, or a path
    /// under `/proc/sys` such as `net/ipv4/conf/eth0.1/rp_filter` when a part holds a dot) to
    /// `value` inside the namespace, and reads it back.
    ///
    /// The `net.` parameters are the namespace's own, written from a thread that has entered
    /// it; others (`kernel.`, `vm.`) are the machine's, and this is not the way to set them.
    /// Fails, saying which parameter, if the name is not a parameter of this kernel, the value
    /// is refused, or the kernel keeps another value (it clamps some).
    pub fn sysctl(&self, name: &str, value: &str) -> io::Result<()> {
        let path = sysctl_path(name)?;
        let written = self.run(|| {
            std::fs::write(&path, value)?;
            std::fs::read_to_string(&path)
        })?;
        let in_context = |error: io::Error| {
            io::Error::new(
                error.kind(),
                format!(
                    "cannot set {name} to {value:?} in network namespace {}: {error}",
                    self.name
                ),
            )
        };
        let written = written.map_err(in_context)?;
        // The kernel writes multi-value parameters back with tabs.
        let words = |text: &str| {
            text.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        if words(&written) != words(value) {
            return Err(in_context(io::Error::other(format!(
                "the kernel kept {:?}",
                written.trim()
            ))));
        }
        Ok(())
    }

    /// The namespace's file, for `setns`.
    fn open(&self) -> io::Result<File> {
        let path = Path::new(NETNS_DIR).join(&self.name);
        File::open(&path).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot open {}: {error}", path.display()),
            )
        })
    }
}

impl Drop for Namespace {
    /// Deletes the namespace: its name at once (nothing can be added to it through the name any
    /// more), the namespace itself once no thread or socket inside holds it.
    fn drop(&mut self) {
        if let Err(error) = host_exec(&["ip", "netns", "delete", &self.name], None) {
            // No panic here: this may run while unwinding from one.
            let _ = writeln!(
                io::stderr(),
                "could not delete network namespace {}: {error}",
                self.name
            );
        }
    }
}

/// Runs `command` (program and arguments) here, in the network namespace of the calling thread
/// (the host's, unless called inside [`Namespace::run`]), with `stdin` as its standard input if
/// given (none otherwise), and returns its standard output. Fails if it cannot be run or exits
/// unsuccessfully, with its standard error.
pub fn host_exec(command: &[&str], stdin: Option<&str>) -> io::Result<String> {
    let Some((program, args)) = command.split_first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no command to run",
        ));
    };
    let mut host = Command::new(program);
    host.args(args);
    output(&mut host, stdin, format_args!("`{}`", command.join(" ")))
}

/// Runs `command`, feeding it `stdin`; its standard output, or why it failed (`what` names the
/// command in the error).
fn output(
    command: &mut Command,
    stdin: Option<&str>,
    what: fmt::Arguments<'_>,
) -> io::Result<String> {
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| io::Error::new(error.kind(), format!("cannot run {what}: {error}")))?;
    // Fed on a thread of its own, so that a command that writes much before it has read all
    // of its input cannot block on a full pipe while this one blocks on writing.
    let pipe = child.stdin.take();
    let (fed, waited) = thread::scope(|scope| {
        let feeder = scope.spawn(move || match (stdin, pipe) {
            (Some(input), Some(mut pipe)) => pipe.write_all(input.as_bytes()),
            _ => Ok(()),
        });
        let waited = child.wait_with_output();
        (feeder.join(), waited)
    });
    let output =
        waited.map_err(|error| io::Error::new(error.kind(), format!("{what}: {error}")))?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    match fed {
        Ok(Ok(())) => {}
        // The command succeeded without reading all of its input: its business.
        Ok(Err(error)) if error.kind() == io::ErrorKind::BrokenPipe => {}
        Ok(Err(error)) => {
            return Err(io::Error::new(
                error.kind(),
                format!("feeding {what}: {error}"),
            ));
        }
        Err(panic) => panic::resume_unwind(panic),
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The file under `/proc/sys` of the kernel parameter `name`: dots separate its parts unless it
/// holds a slash (then it is the path itself, for parts such as interface names with dots).
fn sysctl_path(name: &str) -> io::Result<PathBuf> {
    let relative = if name.contains('/') {
        name.to_owned()
    } else {
        name.replace('.', "/")
    };
    let parts_valid = relative
        .split('/')
        .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\0'));
    if !parts_valid {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not the name of a kernel parameter"),
        ));
    }
    Ok(Path::new("/proc/sys").join(relative))
}

/// Moves the calling thread into the network namespace that `file` stands for.
fn enter(file: &File, name: &str) -> io::Result<()> {
    // SAFETY: `file` is an open descriptor, borrowed for the call; setns takes no pointers and
    // changes only the calling thread's network namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        let error = io::Error::last_os_error();
        Err(io::Error::new(
            error.kind(),
            format!("cannot enter network namespace {name}: {error}"),
        ))
    }
}

/// Runs [`remove_stale`] for `prefix` unless this process already has. The lock is held
/// throughout, so no namespace of the prefix is made in this process until the sweep is done:
/// what carries this process's id then can only be an earlier process's.
fn sweep_once(prefix: &str) {
    static SWEPT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut swept = SWEPT.lock().unwrap_or_else(PoisonError::into_inner);
    if !swept.iter().any(|done| done == prefix) {
        remove_stale(prefix);
        swept.push(prefix.to_owned());
    }
}

/// Deletes the namespaces `<prefix><pid>-<n>` whose process is gone or is this one (a process
/// that had this id before it): left by processes killed before their guards could run. Best
/// effort; says on stderr what it deleted or failed to.
fn remove_stale(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let Some((pid, n)) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        if !numeric(pid) || !numeric(n) {
            continue;
        }
        let ours = pid.parse() == Ok(std::process::id());
        if !ours && Path::new("/proc").join(pid).exists() {
            continue;
        }
        let _ = match host_exec(&["ip", "netns", "delete", name], None) {
            Ok(_) => writeln!(
                io::stderr(),
                "deleted network namespace {name}, left by a process that is gone"
            ),
            Err(error) => writeln!(io::stderr(), "could not delete stale {name}: {error}"),
        };
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::skip::skip_unless_root;

    /// No process can have this id: ids stay below `pid_max`, which is at most 2^22.
    const NEVER_A_PID: u32 = 1 << 22;

    /// Whether the running test is skipped, for want of root.
    fn skipped() -> bool {
        skip_unless_root("creating network namespaces")
    }

    /// The network namespace of the calling thread, as `net:[inode]`.
    fn current_namespace() -> PathBuf {
        std::fs::read_link("/proc/thread-self/ns/net").unwrap()
    }

    fn exists(name: &str) -> bool {
        Path::new(NETNS_DIR).join(name).exists()
    }

    #[test]
    fn threads_run_and_spawned_inside_are_inside_and_drop_deletes() {
        if skipped() {
            return;
        }
        let namespace = Namespace::create("shaker-wire-test-").unwrap();
        let name = namespace.name().to_owned();
        let (pid, n) = name
            .strip_prefix("shaker-wire-test-")
            .and_then(|rest| rest.split_once('-'))
            .unwrap();
        assert_eq!(pid, std::process::id().to_string());
        assert!(n.parse::<usize>().is_ok(), "{name}");
        assert!(exists(&name));

        let inside = namespace.run(current_namespace).unwrap();
        assert_ne!(inside, current_namespace());
        let spawned = namespace.spawn(current_namespace).unwrap();
        assert_eq!(spawned.join().unwrap(), inside);
        // Threads that a thread inside starts are inside too.
        let nested = namespace
            .run(|| thread::spawn(current_namespace).join().unwrap())
            .unwrap();
        assert_eq!(nested, inside);

        let links = namespace.exec(&["ip", "-o", "link", "show"], None).unwrap();
        assert!(links.contains("lo:") && links.contains("UP"), "{links}");
        let fed = namespace.exec(&["cat"], Some("fed")).unwrap();
        assert_eq!(fed, "fed");
        let error = namespace.exec(&["false"], None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("`false` in network namespace {name} failed")),
            "{error}"
        );

        drop(namespace);
        assert!(!exists(&name), "{name} is left behind");
    }

    #[test]
    fn a_panic_inside_is_resumed_and_the_namespace_still_deleted() {
        if skipped() {
            return;
        }
        let mut name = String::new();
        let panicked = panic::catch_unwind(panic::AssertUnwindSafe(|| {
            let namespace = Namespace::create("shaker-wire-test-").unwrap();
            name = namespace.name().to_owned();
            namespace.run(|| panic!("inside")).unwrap();
        }))
        .unwrap_err();
        assert_eq!(panicked.downcast_ref::<&str>(), Some(&"inside"));
        assert!(!name.is_empty());
        assert!(!exists(&name), "{name} is left behind");
    }

    /// Only namespaces of the prefix whose process is gone are swept, once per prefix.
    #[test]
    fn the_first_create_of_a_prefix_sweeps_what_dead_processes_left() {
        if skipped() {
            return;
        }
        const PREFIX: &str = "shaker-wire-sweep-";
        // A process that is gone, and an earlier process that had this one's id.
        let dead = [
            format!("{PREFIX}{NEVER_A_PID}-0"),
            format!("{PREFIX}{}-999999", std::process::id()),
        ];
        // Process 1 always runs; and another prefix's, or a name of another shape.
        let kept = [
            format!("{PREFIX}1-0"),
            format!("shaker-wire-other-{NEVER_A_PID}-0"),
            format!("{PREFIX}{NEVER_A_PID}"),
        ];
        for name in kept.iter().chain(&dead) {
            host_exec(&["ip", "netns", "add", name], None).unwrap();
        }
        let namespace = Namespace::create(PREFIX);
        let dead_exist: Vec<bool> = dead.iter().map(|name| exists(name)).collect();
        let kept_exist: Vec<bool> = kept.iter().map(|name| exists(name)).collect();
        // Not again: a second create of the prefix leaves a new one alone.
        host_exec(&["ip", "netns", "add", &dead[0]], None).unwrap();
        let again = Namespace::create(PREFIX);
        let dead_exists_again = exists(&dead[0]);
        for name in kept.iter().chain(&dead) {
            let _ = host_exec(&["ip", "netns", "delete", name], None);
        }
        let (namespace, again) = (namespace.unwrap(), again.unwrap());
        assert_ne!(namespace.name(), again.name());
        assert_eq!(dead_exist, [false; 2], "{dead:?} must be swept");
        assert_eq!(kept_exist, [true; 3], "{kept:?} must be kept");
        assert!(dead_exists_again, "{} was swept twice", dead[0]);
    }

    #[test]
    fn sysctl_sets_the_namespaces_own_parameter() {
        if skipped() {
            return;
        }
        const SOMAXCONN: &str = "/proc/sys/net/core/somaxconn";
        let host_before = std::fs::read_to_string(SOMAXCONN).unwrap();
        let namespace = Namespace::create("shaker-wire-test-").unwrap();
        namespace.sysctl("net.core.somaxconn", "12345").unwrap();
        let inside = namespace.exec(&["cat", SOMAXCONN], None).unwrap();
        assert_eq!(inside.trim(), "12345");
        assert_eq!(std::fs::read_to_string(SOMAXCONN).unwrap(), host_before);
        // Multi-value parameters, and the path form.
        namespace
            .sysctl("net/ipv4/ip_local_port_range", "20000 40000")
            .unwrap();
        let range = namespace
            .exec(&["cat", "/proc/sys/net/ipv4/ip_local_port_range"], None)
            .unwrap();
        assert_eq!(
            range.split_whitespace().collect::<Vec<_>>(),
            ["20000", "40000"]
        );
        let error = namespace
            .sysctl("net.core.no_such_parameter", "1")
            .unwrap_err();
        assert!(
            error.to_string().contains("net.core.no_such_parameter"),
            "{error}"
        );
    }

    #[test]
    fn sysctl_names_map_to_paths_under_proc_sys() {
        assert_eq!(
            sysctl_path("net.core.somaxconn").unwrap(),
            Path::new("/proc/sys/net/core/somaxconn")
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.1/rp_filter").unwrap(),
            Path::new("/proc/sys/net/ipv4/conf/eth0.1/rp_filter")
        );
        for bad in [
            "",
            "net..core",
            "net/../../etc/passwd",
            "/net/core",
            "net.core.",
        ] {
            let error = sysctl_path(bad).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn a_prefix_must_end_with_a_dash() {
        for prefix in ["", "shaker", "a/b-"] {
            let error = Namespace::create(prefix).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{prefix:?}");
        }
    }

    #[test]
    fn host_exec_returns_the_output_and_feeds_the_input() {
        assert_eq!(
            host_exec(&["echo", "one", "two"], None).unwrap(),
            "one two\n"
        );
        assert_eq!(host_exec(&["cat"], Some("fed\n")).unwrap(), "fed\n");
        // More than a pipe holds, both ways.
        let big = "x".repeat(1 << 20);
        assert_eq!(host_exec(&["cat"], Some(&big)).unwrap(), big);
    }

    #[test]
    fn host_exec_fails_with_the_standard_error() {
        let error = host_exec(&["sh", "-c", "echo oops >&2; exit 3"], None).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("`sh -c echo oops >&2; exit 3` failed"),
            "{text}"
        );
        assert!(text.ends_with(": oops"), "{text}");
        let error = host_exec(&["no-such-program-here"], None).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
        assert!(host_exec(&[], None).is_err());
    }
}
