//! The services under test of the serve and probe scenarios (`tcp-checker serve`, HAProxy,
//! blackbox_exporter), each a long-running child process: found on disk, started with its
//! output collected, watched until it is ready, read in `/proc` while it runs, and stopped
//! (SIGTERM, then SIGKILL) when done, on error and after Ctrl-C alike; and the folder of their
//! config files, deleted with them.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::interrupt;
use crate::sys;

/// How long a service has after SIGTERM before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// How often a service is looked at while waiting for it.
const POLL: Duration = Duration::from_millis(20);
/// The most of a service's output kept (its first lines: start-up and its errors).
const KEPT_OUTPUT: usize = 256 * 1024;
/// How long the output of a service that exited may take to be read to its end.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

/// A service running as a child process, stopped when dropped.
pub struct Daemon {
    name: String,
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    reaped: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `command` as the service `name`, writing `stdin` (if any) to its standard input
    /// and closing it; its standard output and error are collected. It gets SIGKILL if the
    /// thread that started it ends first (see [`sys::die_with_parent`]).
    pub fn start(name: &str, mut command: Command, stdin: Option<&[u8]>) -> anyhow::Result<Daemon> {
        sys::die_with_parent(&mut command);
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name} ({command:?})"))?;
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = Arc::clone(&output);
            let reader = thread::Builder::new()
                .name(format!("{name}-output"))
                .spawn(move || collect(stream, &output))
                .context("starting a thread to read a service's output")?;
            readers.push(reader);
        }
        let mut daemon = Daemon {
            name: name.to_string(),
            child,
            output,
            readers,
            reaped: None,
        };
        if let (Some(input), Some(mut pipe)) = (stdin, daemon.child.stdin.take()) {
            // A service that exits before reading all of it fails here; its output says why.
            if let Err(error) = pipe.write_all(input) {
                daemon.ensure_running()?;
                return Err(error).with_context(|| format!("writing to {name}'s standard input"));
            }
        }
        Ok(daemon)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it has written so far (the first [`KEPT_OUTPUT`] bytes).
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Fails, with its output, if the service has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.exited()? {
            // Its last words may still be in the pipes.
            let deadline = Instant::now() + OUTPUT_DRAIN;
            while !self.readers.iter().all(JoinHandle::is_finished) && Instant::now() < deadline {
                thread::sleep(POLL);
            }
            anyhow::bail!(
                "{} exited ({status}); its output:\n{}",
                self.name,
                self.output().trim_end()
            );
        }
        Ok(())
    }

    /// Waits until `ready` says what the service is ready with, for `within` at most; fails if
    /// it exits meanwhile, on a Ctrl-C, or when the time is up (`what` says what was awaited).
    pub fn wait_until<T>(
        &mut self,
        what: &str,
        within: Duration,
        mut ready: impl FnMut(&Daemon) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(value) = ready(self) {
                return Ok(value);
            }
            self.ensure_running()?;
            interrupt::check()?;
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} did not {what} within {within:?}; its output:\n{}",
                self.name,
                self.output().trim_end()
            );
            thread::sleep(POLL);
        }
    }

    /// Stops the service: SIGTERM, then SIGKILL if it is still running after
    /// [`STOP_DEADLINE`]; returns how it exited.
    pub fn stop(mut self) -> anyhow::Result<ExitStatus> {
        self.terminate()
    }

    fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.exited()? {
            return Ok(status);
        }
        // Failing, it has just exited: reaped below.
        let _ = sys::send_signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self.exited()? {
                return Ok(status);
            }
            thread::sleep(POLL);
        }
        eprintln!(
            "{} did not stop within {STOP_DEADLINE:?} of SIGTERM: killing it",
            self.name
        );
        let _ = self.child.kill();
        let status = self.child.wait().context("reaping a killed service")?;
        self.reaped = Some(status);
        Ok(status)
    }

    /// Its exit status if it has exited (reaping it).
    fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.reaped.is_none() {
            self.reaped = self
                .child
                .try_wait()
                .with_context(|| format!("waiting for {}", self.name))?;
        }
        Ok(self.reaped)
    }
}

impl Drop for Daemon {
    /// Stops the service if it is still running (the benchmark is failing, or was interrupted).
    fn drop(&mut self) {
        if let Err(error) = self.terminate() {
            eprintln!("shaker-bench: stopping {}: {error:#}", self.name);
        }
    }
}

/// Appends what `stream` says to `output`, line by line, up to [`KEPT_OUTPUT`] bytes; reads
/// on to the end regardless, so that the service never blocks on a full pipe.
fn collect(stream: Box<dyn Read + Send>, output: &Mutex<String>) {
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        let mut output = output.lock().unwrap_or_else(PoisonError::into_inner);
        if output.len() < KEPT_OUTPUT {
            output.push_str(&line);
            output.push('\n');
        }
    }
}

/// A folder of the benchmark's own under the system's temporary folder
/// (`shaker-bench-<pid>-<n>`, readable by root only), deleted with everything in it when
/// dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates the folder.
    pub fn new() -> anyhow::Result<TempDir> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "{}{}-{}",
            crate::NAMESPACE_PREFIX,
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to the file `name` in the folder; its path.
    pub fn write(&self, name: &str, contents: &str) -> anyhow::Result<PathBuf> {
        let path = self.path.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            eprintln!("shaker-bench: deleting {}: {error}", self.path.display());
        }
    }
}

/// The first of `names` found as an executable file in a folder of `PATH`.
pub fn find_in_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|folder| names.iter().map(move |name| folder.join(name)))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a file that someone may execute.
pub fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// The version a program says it is when run with `arguments` (`--version`): the first word
/// starting with a digit on the first line it prints, if it runs.
pub fn version(program: &Path, arguments: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(arguments)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = [output.stdout, output.stderr].concat();
    version_of(
        String::from_utf8_lossy(&text)
            .lines()
            .find(|l| !l.trim().is_empty())?,
    )
}

/// The first word of `line` that starts with a digit (words are split at spaces and commas).
fn version_of(line: &str) -> Option<String> {
    line.split([' ', ','])
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_is_read_waited_for_and_stopped() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "read line; echo \"got $line\"; echo oops >&2; exec sleep 30",
        ]);
        let mut daemon = Daemon::start("sh", command, Some(b"ping\n")).unwrap();
        let pid = daemon.pid();
        let output = daemon
            .wait_until("answer", Duration::from_secs(10), |daemon| {
                let output = daemon.output();
                output.contains("oops").then_some(output)
            })
            .unwrap();
        assert!(output.contains("got ping"), "{output}");
        assert!(crate::procfs::rss_kib(pid).is_ok());
        let status = daemon.stop().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGTERM)
        );
        assert!(
            crate::procfs::rss_kib(pid).is_err(),
            "process {pid} is still there"
        );
    }

    #[test]
    fn a_service_that_exits_fails_the_wait_with_its_output() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo 'no config' >&2; exit 3"]);
        let mut daemon = Daemon::start("sh", command, None).unwrap();
        let error = daemon
            .wait_until("listen", Duration::from_secs(10), |_| None::<()>)
            .unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains("exit status: 3") && message.contains("no config"),
            "{message}"
        );
    }

    #[test]
    fn temporary_folders_go_with_their_files() {
        let folder = TempDir::new().unwrap();
        let path = folder.path().to_path_buf();
        let file = folder.write("a.cfg", "x").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
        drop(folder);
        assert!(!path.exists());
    }

    #[test]
    fn programs_are_found_in_path() {
        assert!(find_in_path(&["no-such-program-here", "sh"]).is_some());
        assert_eq!(find_in_path(&["no-such-program-here"]), None);
        let sh = Path::new("/bin/sh");
        assert_eq!(
            version(sh, &["-c", "echo; echo 'x 1.2 3'"]).as_deref(),
            Some("1.2")
        );
        let blackbox = "blackbox_exporter, version 0.23.0 (branch: debian/sid, revision: 0.23.0-4)";
        assert_eq!(version_of(blackbox).as_deref(), Some("0.23.0"));
        let haproxy = "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/";
        assert_eq!(version_of(haproxy).as_deref(), Some("2.6.12-1+deb12u4"));
        assert_eq!(version_of("tcp-checker"), None);
    }
}
