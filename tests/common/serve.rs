//! `tcp-checker serve` under test: started on a free loopback port (or inside a network
//! namespace), asked over plain HTTP/1.1, its log read as it comes, stopped with SIGTERM.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use shaker_wire::netns::Namespace;

/// How long the service has to start and say where it listens.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// An HTTP response, as the tests read it: the benchmark's client's.
pub use shaker_bench::Response;

/// Everything a service has logged so far, and a signal for each line added.
#[derive(Default)]
struct Log {
    text: Mutex<String>,
    grown: Condvar,
}

/// A running `tcp-checker serve`, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Served<'ns> {
    child: Child,
    /// Where it serves HTTP, read from its "serving http://ADDR/" log line.
    pub address: SocketAddr,
    log: Arc<Log>,
    /// The thread that reads the log; it ends when the service's stderr closes.
    reader: Option<thread::JoinHandle<()>>,
    namespace: Option<&'ns Namespace>,
}

impl Served<'static> {
    /// Starts `tcp-checker serve ARGS --listen 127.0.0.1:0` and waits until it serves HTTP:
    /// its signal handlers are in place by then (they are set before the HTTP server starts),
    /// so that the test may signal it at once.
    pub fn start(args: &[&str]) -> Served<'static> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tcp-checker"));
        command
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"]);
        let served = Served::spawn(command, None);
        served.wait_until_serving();
        served
    }

    /// Starts `tcp-checker serve ARGS --listen 127.0.0.1:0` and returns the moment it logs
    /// that it serves, without asking it anything: for tests of what it does right then.
    ///
    /// The service runs at the lowest priority (`nice -n 19`) on the one CPU the calling
    /// thread is then pinned to (as is the harness's log reader, which it starts), so that the
    /// test's next step comes before whatever the service does after that log line, rather
    /// than only when the machine happens to be loaded.
    pub fn launch_starved(args: &[&str]) -> Served<'static> {
        pin_to_one_cpu();
        let mut command = Command::new("nice");
        command
            .args(["-n", "19", env!("CARGO_BIN_EXE_tcp-checker"), "serve"])
            .args(args)
            .args(["--listen", "127.0.0.1:0"]);
        Served::spawn(command, None)
    }
}

impl<'ns> Served<'ns> {
    /// Starts `tcp-checker serve ARGS --listen 127.0.0.1:0` inside `namespace` (through
    /// `ip netns exec`, which also puts `/etc/netns/NAME/hosts` in place of `/etc/hosts`), and
    /// waits until it serves HTTP.
    pub fn start_in(namespace: &'ns Namespace, args: &[&str]) -> Served<'ns> {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", namespace.name()])
            .arg(env!("CARGO_BIN_EXE_tcp-checker"))
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"]);
        let served = Served::spawn(command, Some(namespace));
        served.wait_until_serving();
        served
    }

    /// Spawns `command` and waits for its "serving http://ADDR/" log line.
    fn spawn(mut command: Command, namespace: Option<&'ns Namespace>) -> Served<'ns> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tcp-checker serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Log::default());
        let written = Arc::clone(&log);
        let reader = thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut text = written.text.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
                written.grown.notify_all();
            }
        });
        let mut served = Served {
            child,
            address: "0.0.0.0:0".parse().unwrap(),
            log,
            reader: Some(reader),
            namespace,
        };
        let deadline = Instant::now() + START_DEADLINE;
        let mut text = served.log.text.lock().unwrap();
        loop {
            if let Some(address) = text
                .split("serving http://")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .and_then(|address| address.parse().ok())
            {
                drop(text);
                served.address = address;
                return served;
            }
            if let Ok(Some(status)) = served.child.try_wait() {
                panic!("tcp-checker serve exited ({status}) before listening:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "tcp-checker serve did not listen within {START_DEADLINE:?}:\n{text}"
            );
            // Woken by each new line; the timeout only to see an exit without output.
            text = served
                .log
                .grown
                .wait_timeout(text, Duration::from_millis(20))
                .unwrap()
                .0;
        }
    }

    /// Waits until the service answers `GET /`.
    fn wait_until_serving(&self) {
        let index = self.get("/");
        assert_eq!(index.status, 200, "GET / while starting: {index:?}");
    }

    /// Everything it has logged so far.
    pub fn log(&self) -> String {
        self.log.text.lock().unwrap().clone()
    }

    /// Waits until its log holds `needle` `count` times, for `within` at most; the log then.
    pub fn wait_for_log(&self, needle: &str, count: usize, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut text = self.log.text.lock().unwrap();
        loop {
            if text.matches(needle).count() >= count {
                return text.clone();
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "{count} × {needle:?} not logged within {within:?}:\n{text}"
            );
            text = self.log.grown.wait_timeout(text, deadline - now).unwrap().0;
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

    /// Sends `bytes` as they are on a new connection (from inside the service's namespace if it
    /// has one), and reads until the service closes it; its response, or `None` if it closed
    /// (or reset) the connection without one.
    pub fn send_raw(&self, bytes: &[u8]) -> Option<Response> {
        let address = self.address;
        let request = move || send_raw(address, bytes);
        match self.namespace {
            Some(namespace) => namespace.run(request).expect("entering the namespace"),
            None => request(),
        }
    }

    /// The body of `GET /metrics`, which must answer 200.
    pub fn metrics(&self) -> String {
        let response = self.get("/metrics");
        assert_eq!(response.status, 200, "/metrics: {response:?}");
        response.text()
    }

    /// `GET /api/targets`, parsed: one JSON object per target.
    pub fn targets(&self) -> Vec<Value> {
        let response = self.get("/api/targets");
        assert_eq!(response.status, 200, "/api/targets: {response:?}");
        assert_eq!(response.header("content-type"), Some("application/json"));
        match serde_json::from_slice(&response.body) {
            Ok(Value::Array(targets)) => targets,
            other => panic!(
                "/api/targets is not a JSON array ({other:?}): {}",
                response.text()
            ),
        }
    }

    /// The object of `/api/targets` whose `name` is `name`.
    pub fn target(&self, name: &str) -> Value {
        let targets = self.targets();
        targets
            .iter()
            .find(|target| target["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no target named {name:?} in {targets:?}"))
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

    /// Whether the service has exited (it is then reaped).
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Waits `within` at most for the service to exit, and returns its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {within:?}:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` and waits (20 s at most) for the service to exit; its exit status.
    pub fn stop_with(self, signal: i32) -> ExitStatus {
        self.stop_with_log(signal).0
    }

    /// Sends `signal` and waits (20 s at most) for the service to exit; its exit status and
    /// its whole log, to the last line.
    pub fn stop_with_log(mut self, signal: i32) -> (ExitStatus, String) {
        self.signal(signal);
        let status = self.wait_exit(Duration::from_secs(20));
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the log reader");
        }
        (status, self.log())
    }

    /// Sends SIGTERM and waits (20 s at most) for the service to exit; its exit status.
    pub fn stop(self) -> ExitStatus {
        self.stop_with(libc::SIGTERM)
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

/// Pins the calling thread (and so the threads and processes it starts) to the first CPU it
/// may run on.
fn pin_to_one_cpu() {
    // SAFETY: the cpu_set_t is a plain bit set, initialised before use and valid for each call;
    // pid 0 is the calling thread.
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        assert_eq!(libc::sched_getaffinity(0, size, &mut allowed), 0);
        let cpu = (0..libc::CPU_SETSIZE as usize)
            .find(|&cpu| libc::CPU_ISSET(cpu, &allowed))
            .expect("a CPU to run on");
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        assert_eq!(
            libc::sched_setaffinity(0, size, &one),
            0,
            "pinning to CPU {cpu}"
        );
    }
}

/// `tcp-checker serve ARGS --listen 127.0.0.1:0` run to its end (killed after a minute), for
/// arguments it should refuse at once: its exit status and output.
pub fn run_refused(args: &[&str]) -> Output {
    crate::common::tcp_checker()
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("running tcp-checker serve")
}

/// The value of the sample `series` (its name and labels exactly as exposed, such as
/// `tcp_shaker_targets` or `tcp_shaker_target_up{target="a"}`) in an exposition.
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().expect("a sample's value"))
    })
}

/// Polls `probe` until it returns `Some`, for `within` at most (then fails, saying `what`).
pub fn poll_until<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `bytes` on a new connection to `address` and reads until it is closed (30 s at most);
/// the response read, or `None` if the connection closed or was reset without one.
pub fn send_raw(address: SocketAddr, bytes: &[u8]) -> Option<Response> {
    let mut stream = TcpStream::connect(address).expect("connecting to the service");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // The service may answer and close before it has read everything (a request too large):
    // a failed write is not the test's failure, the answer is.
    let _ = stream.write_all(bytes);
    let mut raw = Vec::new();
    let mut buffer = [0; 16 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => raw.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) if error.kind() == ErrorKind::ConnectionReset => break,
            Err(error) => panic!("reading the answer to a raw request: {error}"),
        }
    }
    (!raw.is_empty()).then(|| {
        shaker_bench::read_response(&mut raw.as_slice())
            .unwrap_or_else(|error| panic!("{error} in the answer {raw:?}"))
    })
}

/// `GET path` on `address` over one HTTP/1.1 connection of its own (a body by length, chunked,
/// or to the end: the benchmark's client).
pub fn get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    shaker_bench::get(address, path, headers)
        .unwrap_or_else(|error| panic!("GET {path} from {address}: {error}"))
}
