//! Helpers for the tests of `/probe` and of a real Prometheus scraping the service: network
//! namespaces to run them in (skipped without root), a hosts file for a namespace, the samples
//! of an exposition, and a Prometheus server inside a namespace with its HTTP API.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use shaker_wire::netns::Namespace;

use super::serve::{self, Response};
use super::{Tool, skip_unless_root};

/// Where `ip netns exec` looks for a namespace's own copies of files under `/etc`.
const NETNS_ETC: &str = "/etc/netns";

/// A fresh network namespace (only `lo`, up) named `<prefix><pid>-<n>`, or `None` after
/// reporting the skip of the running test when not root or when one of `tools` is missing (a
/// failure under `TCP_SHAKER_NO_SKIP=1`).
pub fn namespace_or_skip(prefix: &str, tools: &[Tool]) -> Option<Namespace> {
    let needs = "a network namespace to probe in";
    if skip_unless_root(needs) || tools.iter().any(Tool::missing) {
        return None;
    }
    Some(
        Namespace::create(prefix)
            .unwrap_or_else(|error| panic!("creating a network namespace: {error}")),
    )
}

/// `text` percent-encoded for a query string: everything but letters, digits and `-._~`.
pub fn query_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The value of the sample `name` in `response`, which must be a 200; panics, showing the
/// response, if it is not or the sample is missing.
pub fn expect_sample(response: &Response, name: &str) -> f64 {
    assert_eq!(response.status, 200, "{response:?}");
    serve::sample(&response.text(), name)
        .unwrap_or_else(|| panic!("no {name} in\n{}", response.text()))
}

/// A namespace's own `/etc/hosts` (`/etc/netns/NAME/hosts`, which `ip netns exec` mounts over
/// `/etc/hosts` for what it runs), removed with its directory when dropped, even in a panic.
/// `/etc/netns` itself is removed too if that leaves it empty.
pub struct NamespaceHosts {
    directory: PathBuf,
}

impl NamespaceHosts {
    /// Writes `contents` as the hosts file of `namespace`; only processes started after this
    /// (through `ip netns exec`) see it.
    pub fn write(namespace: &Namespace, contents: &str) -> NamespaceHosts {
        let directory = Path::new(NETNS_ETC).join(namespace.name());
        // The guard first, so that whatever is created below is removed.
        let hosts = NamespaceHosts { directory };
        std::fs::create_dir_all(&hosts.directory)
            .unwrap_or_else(|error| panic!("creating {}: {error}", hosts.directory.display()));
        let path = hosts.directory.join("hosts");
        std::fs::write(&path, contents)
            .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
        hosts
    }
}

impl Drop for NamespaceHosts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.directory);
        // Only if empty: another namespace's files may be there.
        let _ = std::fs::remove_dir(NETNS_ETC);
    }
}

/// `GET path` on `address` from inside `namespace`, or `None` if nothing listens there yet.
pub fn get_in(namespace: &Namespace, address: SocketAddr, path: &str) -> Option<Response> {
    namespace
        .run(|| {
            TcpStream::connect_timeout(&address, Duration::from_secs(5)).ok()?;
            Some(serve::get(address, path, &[]))
        })
        .expect("entering the namespace")
}

/// A Prometheus server running inside a namespace, killed (and reaped) when dropped. Its
/// output goes to a log file, shown when a test fails.
pub struct Prometheus<'ns> {
    child: Child,
    namespace: &'ns Namespace,
    /// Its HTTP address, inside the namespace.
    pub address: SocketAddr,
    log: PathBuf,
}

impl<'ns> Prometheus<'ns> {
    /// Starts `prometheus` inside `namespace` with the config file `config`, its database and
    /// log under `directory`, serving its API on `address` (a fixed port: Prometheus takes no
    /// port 0; in a fresh namespace any port is free).
    pub fn start(
        namespace: &'ns Namespace,
        config: &Path,
        directory: &Path,
        address: SocketAddr,
    ) -> Prometheus<'ns> {
        let log = directory.join("prometheus.log");
        let output = File::create(&log).expect("creating the Prometheus log");
        let child = Command::new("ip")
            .args(["netns", "exec", namespace.name(), "prometheus"])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                directory.join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("duplicating the log file"))
            .stderr(output)
            .spawn()
            .expect("starting prometheus");
        Prometheus {
            child,
            namespace,
            address,
            log,
        }
    }

    /// What Prometheus has logged so far.
    pub fn log(&mut self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics, with its log, if Prometheus has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("prometheus exited ({status}):\n{}", self.log());
        }
    }

    /// Waits, `within` at most, until Prometheus says it is ready (`/-/ready` answers 200).
    pub fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            self.assert_running();
            if get_in(self.namespace, self.address, "/-/ready").is_some_and(|r| r.status == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within {within:?}:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `data` of the API's answer to `GET /api/v1/PATH`, which must be a success.
    pub fn api(&mut self, path: &str) -> Value {
        self.assert_running();
        let path = format!("/api/v1/{path}");
        let response = get_in(self.namespace, self.address, &path)
            .unwrap_or_else(|| panic!("prometheus does not listen on {}", self.address));
        let answer: Value = serde_json::from_slice(&response.body)
            .unwrap_or_else(|error| panic!("{path}: {error}: {response:?}"));
        assert_eq!(answer["status"], "success", "{path}: {answer}");
        answer["data"].clone()
    }

    /// The series of the instant query `expression`: each one's labels and value.
    pub fn query(&mut self, expression: &str) -> Vec<(Value, f64)> {
        let data = self.api(&format!("query?query={}", query_encode(expression)));
        assert_eq!(data["resultType"], "vector", "{expression}: {data}");
        data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|series| {
                let value = series["value"][1]
                    .as_str()
                    .and_then(|value| value.parse().ok())
                    .unwrap_or_else(|| panic!("{expression}: no value in {series}"));
                (series["metric"].clone(), value)
            })
            .collect()
    }
}

impl Drop for Prometheus<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
