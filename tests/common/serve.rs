//! `tcp-checker serve` under test: started on a free loopback port (or inside a network
//! namespace), asked over plain HTTP/1.1, its log read as it comes, stopped with SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use shaker_wire::netns::Namespace;

/// How long the service has to start and say where it listens.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// An HTTP response, as the tests read it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case, with their values.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A running `tcp-checker serve`, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Served<'ns> {
    child: Child,
    /// Where it serves HTTP, read from its "serving http://ADDR/" log line.
    pub address: SocketAddr,
    log: Arc<Mutex<String>>,
    namespace: Option<&'ns Namespace>,
}

impl Served<'static> {
    /// Starts `tcp-checker serve ARGS --listen 127.0.0.1:0` and waits until it listens.
    pub fn start(args: &[&str]) -> Served<'static> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tcp-checker"));
        command
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"]);
        Served::spawn(command, None)
    }
}

impl<'ns> Served<'ns> {
    /// Starts `tcp-checker serve ARGS --listen 127.0.0.1:0` inside `namespace` (through
    /// `ip netns exec`, which also puts `/etc/netns/NAME/hosts` in place of `/etc/hosts`).
    pub fn start_in(namespace: &'ns Namespace, args: &[&str]) -> Served<'ns> {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", namespace.name()])
            .arg(env!("CARGO_BIN_EXE_tcp-checker"))
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"]);
        Served::spawn(command, Some(namespace))
    }

    fn spawn(mut command: Command, namespace: Option<&'ns Namespace>) -> Served<'ns> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tcp-checker serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let written = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = written.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut served = Served {
            child,
            address: "0.0.0.0:0".parse().unwrap(),
            log,
            namespace,
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let log = served.log();
            if let Some(address) = log
                .split("serving http://")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .and_then(|address| address.parse().ok())
            {
                served.address = address;
                return served;
            }
            if let Ok(Some(status)) = served.child.try_wait() {
                panic!("tcp-checker serve exited ({status}) before listening:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "tcp-checker serve did not listen within {START_DEADLINE:?}:\n{log}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything it has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until its log holds `needle` `count` times, for `within` at most; the log then.
    pub fn wait_for_log(&self, needle: &str, count: usize, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let log = self.log();
            if log.matches(needle).count() >= count {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "{count} × {needle:?} not logged within {within:?}:\n{log}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET path` with `headers`, from inside the service's namespace if it has one.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let address = self.address;
        let request = move || get(address, path, headers);
        match self.namespace {
            Some(namespace) => namespace.run(request).expect("entering the namespace"),
            None => request(),
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        self.get_with(path, &[])
    }

    /// Sends `signal` (`libc::SIGHUP`, ...) to the service.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "signalling the service"
        );
    }

    /// Sends SIGTERM and waits (20 s at most) for the service to exit; its exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within 20 s of SIGTERM:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served<'_> {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET path` on `address` over one HTTP/1.1 connection, closed after the response.
pub fn get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut stream = TcpStream::connect(address).expect("connecting to the service");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("sending the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("reading the response");
    parse_response(&String::from_utf8_lossy(&raw))
}

/// A response's status line, headers and body (not chunked: the service sends lengths).
pub fn parse_response(raw: &str) -> Response {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}
