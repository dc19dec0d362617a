//! Helpers for driving the built `tcp-checker` against loopback sockets the tests own.

pub mod browser;
pub mod prometheus;
pub mod serve;

use std::ffi::OsStr;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Output, Stdio};
use std::thread;
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;
use shaker_wire::netns::Namespace;

/// The binary under test, killed if it runs for more than a minute.
pub fn tcp_checker() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tcp-checker"));
    command.timeout(Duration::from_secs(60));
    command
}

/// The binary under test run to its end with `args`.
pub fn run_checker<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Output {
    tcp_checker().args(args).output().unwrap()
}

/// The binary under test started with `args`, its stdout and stderr piped.
pub fn spawn_checker(args: &[&str]) -> Child {
    Process::new(env!("CARGO_BIN_EXE_tcp-checker"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends `signal` to `child` after `after`, and collects its output.
pub fn signal_after(child: Child, signal: libc::c_int, after: Duration) -> Output {
    thread::sleep(after);
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: signalling a child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    child.wait_with_output().unwrap()
}

/// A child process killed and reaped when dropped, so that a failing test leaves none behind.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every line of stdout, parsed as JSON.
pub fn json_lines(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{line:?}: {error}")))
        .collect()
}

/// Asserts that `text` contains `part`, and shows `text` if it does not.
pub fn assert_contains(text: &str, part: &str) {
    assert!(text.contains(part), "{part:?} missing from\n{text}");
}

/// The words of the human check line of `target`: target, [address,] outcome, then the rest.
pub fn check_line<'a>(text: &'a str, target: &str) -> Vec<&'a str> {
    let prefix = format!("{target} ");
    text.lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for {target} in:\n{text}"))
        .split_whitespace()
        .collect()
}

/// A listening socket on 127.0.0.1, with an ephemeral port.
pub fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

/// An open loopback port (its listener and its address) and a closed one, for tests that check
/// one of each.
pub fn open_and_closed() -> (TcpListener, SocketAddr, BoundSocket) {
    let (listener, open) = listener();
    (listener, open, BoundSocket::bind(0).unwrap())
}

/// Runs the binary under test to its end with `args` followed by an open loopback port and a
/// closed one (each kept so until it has exited); its output, and the two ports' addresses.
pub fn run_on_open_and_closed(args: &[&str]) -> (Output, SocketAddr, SocketAddr) {
    let (_listener, open, closed) = open_and_closed();
    let (open_name, closed_name) = (open.to_string(), closed.address.to_string());
    let output = run_checker(
        args.iter()
            .copied()
            .chain([open_name.as_str(), &closed_name]),
    );
    (output, open, closed.address)
}

/// A listener on 127.0.0.1 inside `namespace` (port 0: an ephemeral one), and its address.
pub fn listener_in(namespace: &Namespace, port: u16) -> (TcpListener, SocketAddr) {
    let listener = namespace
        .run(|| TcpListener::bind(("127.0.0.1", port)))
        .expect("entering the namespace")
        .expect("listening inside the namespace");
    let address = listener
        .local_addr()
        .expect("the address of a listener inside the namespace");
    (listener, address)
}

/// A closed port on 127.0.0.1 inside `namespace`: bound, not listening.
pub fn closed_in(namespace: &Namespace) -> BoundSocket {
    namespace
        .run(|| BoundSocket::bind(0))
        .expect("entering the namespace")
        .expect("binding inside the namespace")
}

/// An IPv4 TCP socket bound to a loopback port but not listening: checks of that port find it
/// closed, and no other process can take the port while the socket lives.
pub struct BoundSocket {
    fd: OwnedFd,
    pub address: SocketAddr,
}

impl BoundSocket {
    /// Binds `port` on 127.0.0.1 (0: an ephemeral port).
    pub fn bind(port: u16) -> io::Result<BoundSocket> {
        // SAFETY: plain socket calls on a descriptor this function owns.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
                },
                sin_zero: [0; 8],
            };
            let length = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            if libc::bind(fd.as_raw_fd(), (&raw const sin).cast(), length) != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut bound: libc::sockaddr_in = std::mem::zeroed();
            let mut length = length;
            if libc::getsockname(fd.as_raw_fd(), (&raw mut bound).cast(), &mut length) != 0 {
                return Err(io::Error::last_os_error());
            }
            let address =
                SocketAddrV4::new(Ipv4Addr::LOCALHOST, u16::from_be(bound.sin_port)).into();
            Ok(BoundSocket { fd, address })
        }
    }

    /// Starts listening: checks of the port now find it open.
    pub fn listen(&self) {
        // SAFETY: the descriptor is open for as long as `self`.
        assert_eq!(unsafe { libc::listen(self.fd.as_raw_fd(), 128) }, 0);
    }

    /// Whether the listening socket's application would accept a connection now.
    pub fn has_pending_connection(&self) -> bool {
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, valid for the call.
        unsafe { libc::poll(&mut poll, 1, 0) == 1 }
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }
}

/// A loopback port that never answers: its listener's accept queue (`listen(0)`) holds one
/// connection that is never accepted, so the kernel drops every new SYN and checks time out.
pub struct SilentPort {
    socket: BoundSocket,
    _queued: TcpStream,
}

impl SilentPort {
    pub fn new() -> SilentPort {
        let socket = BoundSocket::bind(0).unwrap();
        // SAFETY: the descriptor is open for as long as `socket`.
        assert_eq!(unsafe { libc::listen(socket.fd.as_raw_fd(), 0) }, 0);
        let queued = TcpStream::connect(socket.address).unwrap();
        // Let the filler's handshake finish before anyone relies on the queue being full.
        std::thread::sleep(Duration::from_millis(50));
        SilentPort {
            socket,
            _queued: queued,
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.socket.address
    }
}

/// `count` consecutive loopback ports, each held by a bound socket (none listening yet).
///
/// They are taken below the ephemeral range (32768 and up by default), where no connect() of
/// another process (a benchmark running alongside, say) picks its local port.
pub fn consecutive_ports(count: u16) -> Vec<BoundSocket> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id();
    let mut first = 10_000 + (seed % 20_000) as u16;
    for _ in 0..200 {
        let sockets: Result<Vec<_>, _> = (first..first + count).map(BoundSocket::bind).collect();
        if let Ok(sockets) = sockets {
            return sockets;
        }
        first = 10_000 + (first - 10_000 + 97 * count) % 20_000;
    }
    panic!("no {count} consecutive free loopback ports");
}

pub use shaker_wire::skip::{skip, skip_unless_root};

pub use shaker_wire::skip::test_name;

/// A program a test needs: the command that finds it (the program and its arguments, such as its
/// `--version`) and how to install it.
pub struct Tool {
    pub command: &'static [&'static str],
    pub install: &'static str,
}

/// nftables' `nft`, for rules that drop a port's packets.
pub const NFT: Tool = Tool {
    command: &["nft", "--version"],
    install: "apt-get install --no-install-recommends nftables",
};

impl Tool {
    /// Returns true, after reporting the skip of the running test, when the tool's command cannot
    /// be run or fails.
    pub fn missing(&self) -> bool {
        let Some((program, args)) = self.command.split_first() else {
            panic!("a tool with no command to look for");
        };
        let runs = Process::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !runs {
            let needs = format!("needs `{}` ({})", self.command.join(" "), self.install);
            skip(&needs);
        }
        !runs
    }
}

/// A directory in the temporary directory, removed with its contents when dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates the directory, empty; `name` tells the tests' directories apart.
    pub fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("tcp-checker-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating a temporary directory");
        TempDir { path }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A file named `name` in a [`TempDir`] of its own, removed with it when dropped.
pub struct TempFile {
    path: PathBuf,
    _dir: TempDir,
}

impl TempFile {
    /// The file, holding `contents`.
    pub fn new(name: &str, contents: &str) -> TempFile {
        let file = TempFile::reserved(name);
        std::fs::write(&file.path, contents)
            .unwrap_or_else(|error| panic!("writing {}: {error}", file.path.display()));
        file
    }

    /// A path for a file the test expects someone else to create (or not).
    pub fn reserved(name: &str) -> TempFile {
        let dir = TempDir::new(name);
        TempFile {
            path: dir.path().join(name),
            _dir: dir,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Asserts that `value[field]` exists and has the JSON type `kind` (`"string"`, `"number"`,
/// `"integer"`, `"bool"`, `"null"`, `"array"`), or `"string|null"` and the like.
pub fn assert_field(value: &Value, field: &str, kind: &str) {
    let Some(found) = value.get(field) else {
        panic!("{field} missing from {value}");
    };
    let matches = kind.split('|').any(|kind| match kind {
        "string" => found.is_string(),
        "number" => found.is_number(),
        "integer" => found.is_u64(),
        "bool" => found.is_boolean(),
        "null" => found.is_null(),
        "array" => found.is_array(),
        other => panic!("unknown kind {other}"),
    });
    assert!(matches, "{field} is not {kind} in {value}");
}

/// Asserts that `value` has exactly these fields.
pub fn assert_fields(value: &Value, fields: &[&str]) {
    let mut found: Vec<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = fields.to_vec();
    found.sort_unstable();
    expected.sort_unstable();
    assert_eq!(found, expected, "fields of {value}");
}
