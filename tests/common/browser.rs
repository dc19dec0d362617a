//! Headless Chromium for the status page's tests, driven over WebDriver: chromedriver and the
//! browser it starts run inside a test's network namespace, beside the service under test, and
//! are spoken to by a small HTTP/1.1 client over `std::net::TcpStream` whose every connection
//! is opened from a thread inside that namespace.
//!
//! chromedriver leads a process group of its own, which the browser's processes join; dropping
//! the [`Browser`] ends the session, then kills the whole group, so that no browser process
//! outlives a test. The browser's crash handlers leave the group (they daemonize); the profile,
//! the crash database and the caches all live in one temporary directory, which their command
//! lines name, so they are found, waited for (they end with the browser) and killed if they
//! linger, before the directory is removed.

use std::fs::File;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shaker_wire::netns::Namespace;

use super::{TempDir, Tool};

/// How to get the browser and its driver.
const INSTALL: &str = "apt-get install --no-install-recommends chromium chromium-driver";

/// The browser.
const CHROMIUM: Tool = Tool {
    command: &["chromium", "--version"],
    install: INSTALL,
};

/// Its WebDriver.
const CHROMEDRIVER: Tool = Tool {
    command: &["chromedriver", "--version"],
    install: INSTALL,
};

/// chromedriver's port, inside the test's own namespace (where nothing else listens).
const DRIVER_PORT: u16 = 9515;

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Returns true, after reporting the skip of the running test (a failure under
/// `TCP_SHAKER_NO_SKIP=1`), when Chromium or chromedriver cannot be run.
pub fn skip_without_browser() -> bool {
    CHROMIUM.missing() || CHROMEDRIVER.missing()
}

/// `program` as found on `PATH`.
fn on_path(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| Path::new("/usr/bin").join(program))
}

/// An element found on the page, as WebDriver names it.
#[derive(Clone, Debug)]
pub struct Element(String);

/// A headless Chromium session inside a network namespace.
pub struct Browser<'ns> {
    namespace: &'ns Namespace,
    driver: Child,
    session: Option<String>,
    log: PathBuf,
    /// The browser's profile and chromedriver's log; removed last.
    _dir: TempDir,
}

impl<'ns> Browser<'ns> {
    /// Starts chromedriver inside `namespace` and opens a session of headless Chromium with a
    /// viewport of `width` × `height` CSS pixels; `name` tells the tests' profiles apart. The
    /// session records the browser console ([`Browser::console`]).
    pub fn start(namespace: &'ns Namespace, name: &str, width: u32, height: u32) -> Browser<'ns> {
        let dir = TempDir::new(&format!("browser-{name}"));
        let log = dir.path().join("chromedriver.log");
        let output = File::create(&log).expect("creating chromedriver's log");
        let temporary = dir.path().join("tmp");
        std::fs::create_dir(&temporary).expect("creating the browser's temporary directory");
        let driver = Command::new("ip")
            .args(["netns", "exec", namespace.name()])
            .arg(on_path("chromedriver"))
            .arg(format!("--port={DRIVER_PORT}"))
            // Not ~/.config/chromium, ~/.cache, /tmp: the crash database, caches and Chromium's
            // scoped directories stay in `dir`, which goes with the test.
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .env("TMPDIR", &temporary)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("sharing the log"))
            .stderr(output)
            // Its own group: the browser's processes join it, and dropping kills them all.
            .process_group(0)
            .spawn()
            .expect("starting chromedriver");
        let mut browser = Browser {
            namespace,
            driver,
            session: None,
            log,
            _dir: dir,
        };
        browser.wait_ready();
        let profile = browser._dir.path().join("profile");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": on_path("chromium"),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions",
                    "--disable-dev-shm-usage", "--hide-scrollbars", "--force-color-profile=srgb",
                    "--lang=en-US", format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={width},{height}"),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let session = browser.command("POST", "/session", Some(&capabilities));
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session in {session}"))
            .to_owned();
        browser.session = Some(id);
        browser.set_viewport(width, height, false);
        browser
    }

    /// Waits (15 s at most) until chromedriver answers `/status` as ready.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ready = self
                .http("GET", "/status", None)
                .is_ok_and(|(status, body)| {
                    status == 200
                        && serde_json::from_str::<Value>(&body)
                            .is_ok_and(|v| v["value"]["ready"] == true)
                });
            if ready {
                return;
            }
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!("chromedriver exited ({status}):\n{}", self.driver_log());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready within 15 s:\n{}",
                self.driver_log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn driver_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One HTTP/1.1 exchange with chromedriver, its connection opened inside the namespace:
    /// the status and the body.
    fn http(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::io::Result<(u16, String)> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let stream = self
            .namespace
            .run(|| TcpStream::connect(("127.0.0.1", DRIVER_PORT)))??;
        exchange(stream, method, path, &body)
    }

    /// Sends a WebDriver command (`path` from the root, or from the session with
    /// [`Browser::session_command`]) and returns its `value`; panics with WebDriver's error.
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, text) = self
            .http(method, path, body)
            .unwrap_or_else(|error| panic!("{method} {path}: {error}\n{}", self.driver_log()));
        let answer: Value = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{method} {path}: {error} in {text:?}"));
        let value = answer["value"].clone();
        assert_eq!(
            status,
            200,
            "{method} {path}: {} {}",
            value["error"],
            value["message"].as_str().unwrap_or_default()
        );
        value
    }

    fn session_command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let session = self.session.as_deref().expect("a session");
        self.command(method, &format!("/session/{session}{path}"), body)
    }

    /// Sets the viewport to `width` × `height` CSS pixels, one device pixel each, in the dark
    /// colour scheme if `dark` (Chrome's DevTools protocol, through chromedriver).
    pub fn set_viewport(&self, width: u32, height: u32, dark: bool) {
        let metrics = json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}});
        self.session_command("POST", "/goog/cdp/execute", Some(&metrics));
        let scheme = if dark { "dark" } else { "light" };
        let media = json!({"cmd": "Emulation.setEmulatedMedia", "params": {
            "features": [{"name": "prefers-color-scheme", "value": scheme}]}});
        self.session_command("POST", "/goog/cdp/execute", Some(&media));
    }

    /// Loads `url` and waits for the page's load event.
    pub fn open(&self, url: &str) {
        self.session_command("POST", "/url", Some(&json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns what it returns.
    /// A promise returned is awaited.
    pub fn eval(&self, script: &str, args: &[Value]) -> Value {
        self.session_command(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// Evaluates `script` every 50 ms until it returns something other than null or false,
    /// for `within` at most, and returns that; panics saying `what` it waited for, with the
    /// last value of `report` (a script that describes the page).
    pub fn wait_for(&self, what: &str, within: Duration, script: &str, report: &str) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let value = self.eval(script, &[]);
            if !value.is_null() && value != false {
                return value;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{what}: not within {within:?}; the page: {}",
                    self.eval(report, &[])
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The first element that the CSS `selector` matches.
    pub fn find(&self, selector: &str) -> Element {
        let found = self.session_command(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": selector})),
        );
        Element(
            found[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("no element for {selector}: {found}"))
                .to_owned(),
        )
    }

    /// Types `text` into `element` (WebDriver's key codes, such as `\u{E007}` for Enter, work).
    pub fn type_into(&self, element: &Element, text: &str) {
        self.session_command(
            "POST",
            &format!("/element/{}/value", element.0),
            Some(&json!({ "text": text })),
        );
    }

    /// Empties an input element.
    pub fn clear(&self, element: &Element) {
        self.session_command(
            "POST",
            &format!("/element/{}/clear", element.0),
            Some(&json!({})),
        );
    }

    /// Clicks `element`.
    pub fn click(&self, element: &Element) {
        self.session_command(
            "POST",
            &format!("/element/{}/click", element.0),
            Some(&json!({})),
        );
    }

    /// Sends `keys` to whatever element has the focus (WebDriver actions).
    pub fn press(&self, keys: &str) {
        let mut actions = Vec::new();
        for key in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": key.to_string()}));
            actions.push(json!({"type": "keyUp", "value": key.to_string()}));
        }
        let body = json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]});
        self.session_command("POST", "/actions", Some(&body));
    }

    /// A screenshot of the viewport, as PNG.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.session_command("GET", "/screenshot", None);
        base64_decode(encoded.as_str().expect("a base64 screenshot"))
    }

    /// What the browser console received since the last call: chromedriver's `se/log` of type
    /// `browser` (recorded through the `goog:loggingPrefs` capability), each entry with its
    /// `level` (`SEVERE` for errors) and `message`.
    pub fn console(&self) -> Vec<Value> {
        let entries = self.session_command("POST", "/se/log", Some(&json!({"type": "browser"})));
        entries.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        // Ending the session quits the browser; whatever is left of the group is killed while
        // chromedriver, its leader, is not yet reaped (so the group id cannot be anyone else's).
        if let Some(session) = self.session.take() {
            let _ = self.http("DELETE", &format!("/session/{session}"), None);
        }
        let group = libc::pid_t::try_from(self.driver.id()).expect("a pid");
        // SAFETY: kill takes no pointers; the group is the one chromedriver leads.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.driver.wait();
        // Browser processes that chromedriver had not reaped are gone once no process of the
        // group is left; wait a little for the kernel to finish them.
        let deadline = Instant::now() + Duration::from_secs(5);
        // SAFETY: as above; signal 0 only asks whether the group still has a process.
        while unsafe { libc::kill(-group, 0) } == 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        // The crash handlers, outside the group, end with the browser; killed if they linger.
        loop {
            let left = processes_naming(self._dir.path());
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                for pid in left {
                    // SAFETY: kill takes no pointers; the process names this test's directory.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The processes whose command line names `dir`.
fn processes_naming(dir: &Path) -> Vec<libc::pid_t> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|line| line.windows(needle.len()).any(|window| window == needle))
        })
        .collect()
}

/// Sends one request on `stream` and reads its response: status and body. The body is read by
/// its `Content-Length` (or its chunks), by the benchmark's client: chromedriver keeps the
/// connection open even when asked to close it.
fn exchange(
    mut stream: TcpStream,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{DRIVER_PORT}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let response = shaker_bench::read_response(&mut std::io::BufReader::new(stream))?;
    Ok((response.status, response.text()))
}

/// Standard base64 (with padding, no line breaks expected; others ignored).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |byte: u8| match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut count) = (0u32, 0);
    for sextet in text.bytes().filter_map(value) {
        bits = (bits << 6) | u32::from(sextet);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

#[test]
fn base64_decodes_with_and_without_padding() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8gd29ybGQ="), b"hello world");
    assert_eq!(base64_decode("AAEC/w=="), [0, 1, 2, 255]);
    assert_eq!(base64_decode("YWJj"), b"abc");
}
