//! The status page of `tcp-checker serve` in headless Chromium: every test runs the service,
//! chromedriver and the browser inside a network namespace of its own, with the checked
//! listeners there too, so that fixed ports (5432, 443, ...) and whole loopback ranges are the
//! test's alone. Skipped, visibly, without root, Chromium or chromedriver (a failure under
//! `TCP_SHAKER_NO_SKIP=1`).
//!
//! `TCP_SHAKER_SCREENSHOT=1` makes the realistic page's test save its screenshot as
//! `docs/status-page.png`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shaker_wire::netns::Namespace;

use crate::common::browser::{Browser, skip_without_browser};
use crate::common::serve::Served;
use crate::common::{BoundSocket, SilentPort, TempFile, closed_in, listener_in, skip_unless_root};

/// The rows on screen, in order: name, state, its words, the last check, whether marked as
/// changed, the chart's text.
const ROWS: &str = "return [...document.querySelectorAll('#rows .row:not([hidden])')]
  .sort((a, b) => a.getAttribute('aria-rowindex') - b.getAttribute('aria-rowindex'))
  .map((r) => ({ name: r.dataset.name, state: r.dataset.state,
    health: r.querySelector('.st').textContent,
    last: r.querySelector('.last > span').textContent,
    changed: !r.querySelector('.changed').hidden,
    chart: r.querySelector('svg').getAttribute('aria-label') }));";

/// What a failed wait shows of the page.
const REPORT: &str = "return { summary: document.getElementById('summary').textContent,
  problem: document.getElementById('problem').textContent, polls: document.body.dataset.polls,
  rows: [...document.querySelectorAll('#rows .row:not([hidden])')]
    .map((r) => r.dataset.name + ' ' + r.querySelector('.st').textContent) };";

const WAIT: Duration = Duration::from_secs(10);

/// A namespace for the running test, or None (the skip reported) without root, Chromium or
/// chromedriver.
fn namespace() -> Option<Namespace> {
    if skip_unless_root("a network namespace") || skip_without_browser() {
        return None;
    }
    Some(Namespace::create("tcp-checker-page-").expect("creating a network namespace"))
}

/// Opens the service's page and waits for its first data.
fn open(browser: &Browser<'_>, served: &Served<'_>) {
    browser.open(&format!("http://{}/", served.address));
    browser.wait_for(
        "the first data on the page",
        WAIT,
        "return document.body.dataset.loadedMs",
        REPORT,
    );
}

/// The rows on screen.
fn rows(browser: &Browser<'_>) -> Vec<Value> {
    browser
        .eval(ROWS, &[])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The names of the rows on screen, in order.
fn names(browser: &Browser<'_>) -> Vec<String> {
    rows(browser)
        .iter()
        .map(|row| row["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits until the row of `name` shows `state` (`up`, `down`, `going_down`, `going_up`).
fn wait_for_state(browser: &Browser<'_>, name: &str, state: &str, within: Duration) {
    let script = format!(
        "const row = document.querySelector('#rows .row:not([hidden])[data-name=\"{name}\"]');
         return row && row.dataset.state === '{state}';"
    );
    browser.wait_for(&format!("{name} shown {state}"), within, &script, REPORT);
}

/// Waits (50 ms steps, `within` at most) until the page shows `shown` rows after a filter.
fn wait_for_shown(browser: &Browser<'_>, shown: usize) {
    let script = format!("return document.body.dataset.shown === '{shown}';");
    browser.wait_for(&format!("{shown} rows shown"), WAIT, &script, REPORT);
}

/// A port on `address` that never answers, as [`SilentPort`] but on a given address: its
/// accept queue (backlog 0) holds one connection that is never accepted, so new SYNs are
/// dropped and checks time out. Made inside the namespace.
fn silent_at(address: &str) -> (TcpListener, TcpStream) {
    let listener = TcpListener::bind(address).unwrap();
    // SAFETY: listen() again on a listening socket only changes its backlog.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let queued = TcpStream::connect(address).unwrap();
    thread::sleep(Duration::from_millis(50));
    (listener, queued)
}

#[test]
fn the_page_lists_every_target_with_its_state() {
    let Some(namespace) = namespace() else {
        return;
    };
    type Ports = (Vec<TcpListener>, Vec<BoundSocket>, SilentPort);
    let (open, closed, silent): Ports = namespace
        .run(|| {
            let open = (0..3)
                .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
                .collect();
            let closed = (0..2).map(|_| BoundSocket::bind(0).unwrap()).collect();
            (open, closed, SilentPort::new())
        })
        .unwrap();
    let mut expected: Vec<(String, &str, &str)> = open
        .iter()
        .map(|l| (l.local_addr().unwrap().to_string(), "UP", "open in "))
        .collect();
    expected.extend(
        closed
            .iter()
            .map(|s| (s.address.to_string(), "DOWN", "closed")),
    );
    expected.push((silent.address().to_string(), "DOWN", "timed out"));
    // Nothing routes there from a namespace that has only its loopback.
    expected.push(("10.20.0.5:5672".to_owned(), "DOWN", "unreachable"));
    let mut args = vec!["-i", "200ms", "--rise", "1", "--fall", "1"];
    args.extend(expected.iter().map(|(name, _, _)| name.as_str()));
    let served = Served::start_in(&namespace, &args);
    let browser = Browser::start(&namespace, "lists", 1280, 900);
    open_and_settle(&browser, &served, &expected);

    let shown = rows(&browser);
    for (name, health, last) in &expected {
        let row = shown
            .iter()
            .find(|row| row["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no row for {name} in {shown:?}"));
        assert_eq!(row["health"], *health, "{row}");
        let text = row["last"].as_str().unwrap();
        assert!(
            text.starts_with(last),
            "{name}: last check {text:?}, not {last:?}"
        );
        let chart = row["chart"].as_str().unwrap();
        assert!(chart.starts_with("last "), "{name}: chart text {chart:?}");
    }
    // Down first, then in the configured order.
    let order: Vec<String> = names(&browser);
    let mut by_state: Vec<&(String, &str, &str)> = expected.iter().collect();
    by_state.sort_by_key(|(_, health, _)| *health == "UP");
    let by_state: Vec<&str> = by_state.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(order, by_state);
    let api: Value = serde_json::from_slice(&served.get("/api/targets").body).unwrap();
    let mut api_names: Vec<&str> = api
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut page_names: Vec<&str> = order.iter().map(String::as_str).collect();
    api_names.sort_unstable();
    page_names.sort_unstable();
    assert_eq!(page_names, api_names);
    let summary = browser.eval("return document.getElementById('summary').textContent", &[]);
    assert_eq!(summary, "7 targets · 3 up · 4 down");

    // Self-contained: everything it loaded came from the service itself, and it is small.
    let origin = format!("http://{}/", served.address);
    let loaded = browser.eval(
        "return performance.getEntriesByType('resource').map((e) => e.name)",
        &[],
    );
    for resource in loaded.as_array().unwrap() {
        let resource = resource.as_str().unwrap();
        assert!(
            resource.starts_with(&origin),
            "{resource} is not the service's"
        );
    }
    let size: usize = ["/", "/page.js", "/page.css"]
        .iter()
        .map(|path| served.get(path).body.len())
        .sum();
    assert!(size <= 30 * 1024, "the page weighs {size} bytes");
}

/// Opens the page and waits until every row shows its expected state words.
fn open_and_settle(browser: &Browser<'_>, served: &Served<'_>, expected: &[(String, &str, &str)]) {
    open(browser, served);
    let wanted: Value = expected
        .iter()
        .map(|(name, health, last)| json!([name, health, last]))
        .collect();
    let script = format!(
        "const wanted = {wanted};
         const rows = [...document.querySelectorAll('#rows .row:not([hidden])')];
         return wanted.every(([name, health, last]) => rows.some((r) => r.dataset.name === name
           && r.querySelector('.st').textContent === health
           && r.querySelector('.last > span').textContent.startsWith(last)));"
    );
    browser.wait_for("every target in its state", WAIT, &script, REPORT);
}

#[test]
fn a_listener_that_closes_is_shown_down_and_up_again_without_a_reload() {
    let Some(namespace) = namespace() else {
        return;
    };
    let (listener, address) = listener_in(&namespace, 0);
    let name = address.to_string();
    let served = Served::start_in(
        &namespace,
        &["-i", "200ms", "--rise", "1", "--fall", "1", &name],
    );
    let browser = Browser::start(&namespace, "live", 1280, 800);
    open(&browser, &served);
    wait_for_state(&browser, &name, "up", WAIT);
    // A reload would forget this.
    browser.eval("window.notReloaded = true;", &[]);

    drop(listener);
    let closed = Instant::now();
    wait_for_state(&browser, &name, "down", WAIT);
    eprintln!(
        "page: DOWN shown {:?} after the listener closed",
        closed.elapsed()
    );
    let row = rows(&browser).remove(0);
    assert_eq!(row["health"], "DOWN");
    assert_eq!(row["changed"], true, "the change is marked in text: {row}");
    assert_eq!(
        browser.eval("return document.getElementById('summary').textContent", &[]),
        "1 target · 0 up · 1 down"
    );

    let _listener_again = namespace
        .run(|| TcpListener::bind(address))
        .unwrap()
        .unwrap();
    let reopened = Instant::now();
    wait_for_state(&browser, &name, "up", WAIT);
    eprintln!(
        "page: UP shown {:?} after the listener reopened",
        reopened.elapsed()
    );
    assert_eq!(
        browser.eval("return window.notReloaded === true", &[]),
        true
    );

    // The service goes away: the page says so, and keeps what it knew.
    assert!(served.stop().success());
    browser.wait_for(
        "the message that the service does not answer",
        WAIT,
        "return document.body.dataset.stale === '1' && !document.getElementById('problem').hidden",
        REPORT,
    );
    let problem = browser.eval("return document.getElementById('problem').textContent", &[]);
    assert!(
        problem.as_str().unwrap().contains("not answering"),
        "{problem}"
    );
    assert_eq!(names(&browser), [name]);
}

#[test]
fn the_filter_keeps_the_matching_rows_and_headers_sort() {
    let Some(namespace) = namespace() else {
        return;
    };
    // (name, team, open)
    let targets = [
        ("db-primary", "data", true),
        ("db-replica", "data", false),
        ("web-frontend", "web", true),
        ("web-backend", "web", false),
        ("cache", "infra", true),
    ];
    let (listeners, closed): (Vec<TcpListener>, Vec<BoundSocket>) = namespace
        .run(|| {
            let listeners = (0..3)
                .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
                .collect();
            let closed = (0..2).map(|_| BoundSocket::bind(0).unwrap()).collect();
            (listeners, closed)
        })
        .unwrap();
    let mut opens = listeners.iter().map(|l| l.local_addr().unwrap());
    let mut closes = closed.iter().map(|s| s.address);
    let mut config = String::new();
    for (name, team, open) in targets {
        let address: SocketAddr = if open { opens.next() } else { closes.next() }.unwrap();
        config.push_str(&format!(
            "[[targets]]\nname = \"{name}\"\naddress = \"{address}\"\nlabels = {{ team = \"{team}\" }}\n\n"
        ));
    }
    let config = TempFile::new("page-filter.toml", &config);
    let path = config.path().to_str().unwrap();
    let served = Served::start_in(
        &namespace,
        &[
            "--config", path, "-i", "200ms", "--rise", "1", "--fall", "1",
        ],
    );
    let browser = Browser::start(&namespace, "filter", 1280, 800);
    open(&browser, &served);
    wait_for_state(&browser, "db-replica", "down", WAIT);
    wait_for_state(&browser, "web-backend", "down", WAIT);
    // Down first by default, then in the configured order.
    assert_eq!(
        names(&browser),
        [
            "db-replica",
            "web-backend",
            "db-primary",
            "web-frontend",
            "cache"
        ]
    );

    let filter = browser.find("#filter");
    let cases: [(&str, &[&str]); 5] = [
        ("db-primary", &["db-primary"]),
        ("state:down", &["db-replica", "web-backend"]),
        ("team=web", &["web-backend", "web-frontend"]),
        ("team=data -state:down", &["db-primary"]),
        ("state:up web", &["web-frontend"]),
    ];
    for (typed, expected) in cases {
        browser.clear(&filter);
        browser.type_into(&filter, typed);
        wait_for_shown(&browser, expected.len());
        assert_eq!(names(&browser), expected, "filter {typed:?}");
        if typed == "state:down" {
            assert!(rows(&browser).iter().all(|row| row["health"] == "DOWN"));
        }
    }
    // Escape clears the filter.
    browser.type_into(&filter, "\u{E00C}");
    wait_for_shown(&browser, targets.len());

    // The state buttons.
    let down = browser.find("#states [data-state=down]");
    browser.click(&down);
    wait_for_shown(&browser, 2);
    assert_eq!(
        browser.eval("return document.querySelector('#states [data-state=down]').getAttribute('aria-pressed')", &[]),
        "true"
    );
    browser.click(&down);
    wait_for_shown(&browser, targets.len());

    // Sorting by name, both ways.
    let by_name = browser.find("[data-key=name] button");
    browser.click(&by_name);
    assert_eq!(
        names(&browser),
        [
            "cache",
            "db-primary",
            "db-replica",
            "web-backend",
            "web-frontend"
        ]
    );
    let sort = "return document.querySelector('[data-key=name]').getAttribute('aria-sort')";
    assert_eq!(browser.eval(sort, &[]), "ascending");
    browser.click(&by_name);
    assert_eq!(
        names(&browser),
        [
            "web-frontend",
            "web-backend",
            "db-replica",
            "db-primary",
            "cache"
        ]
    );
    assert_eq!(browser.eval(sort, &[]), "descending");

    // The keyboard: `/` reaches the filter, arrows the rows, whose details show below.
    browser.eval("document.activeElement.blur()", &[]);
    browser.press("/");
    let focused = "return document.activeElement.id || document.activeElement.dataset.name";
    assert_eq!(browser.eval(focused, &[]), "filter");
    browser.press("\u{E015}\u{E015}");
    assert_eq!(browser.eval(focused, &[]), "web-backend");
    let detail = browser.eval("return document.getElementById('detail').textContent", &[]);
    assert!(detail.as_str().unwrap().contains("team=web"), "{detail}");
}

#[test]
fn the_browser_console_has_no_errors() {
    let Some(namespace) = namespace() else {
        return;
    };
    let (_listener, open) = listener_in(&namespace, 0);
    let closed = closed_in(&namespace);
    let (open, closed) = (open.to_string(), closed.address.to_string());
    let served = Served::start_in(&namespace, &["-i", "200ms", &open, &closed]);
    let browser = Browser::start(&namespace, "console", 1280, 800);
    open_and_settle(
        &browser,
        &served,
        &[
            (open.clone(), "UP", "open"),
            (closed.clone(), "DOWN", "closed"),
        ],
    );
    // Some use: a filter, a sort, a row's details, and two more polls.
    let filter = browser.find("#filter");
    browser.type_into(&filter, "state:up");
    wait_for_shown(&browser, 1);
    browser.clear(&filter);
    browser.click(&browser.find("[data-key=recent] button"));
    browser.click(&browser.find("#rows .row:not([hidden])"));
    let polls = browser.eval("return Number(document.body.dataset.polls)", &[]);
    let polls = polls.as_u64().unwrap();
    browser.wait_for(
        "two more polls",
        WAIT,
        &format!(
            "return Number(document.body.dataset.polls) >= {}",
            polls + 2
        ),
        REPORT,
    );
    // So that an empty log cannot pass for a log that is not read.
    browser.eval("console.info('page test: the console is recorded')", &[]);
    let console = browser.console();
    let entries: Vec<String> = console
        .iter()
        .map(|entry| {
            let text = |key: &str| entry[key].as_str().unwrap_or_default().to_owned();
            format!("{} {}", text("level"), text("message"))
        })
        .collect();
    eprintln!(
        "page: the browser console, read through chromedriver's se/log (goog:loggingPrefs \
         browser ALL): {entries:?}"
    );
    assert!(
        console.iter().any(|entry| entry["message"]
            .as_str()
            .unwrap_or("")
            .contains("the console is recorded")),
        "the console is not recorded: {console:?}"
    );
    let errors: Vec<&Value> = console
        .iter()
        .filter(|entry| entry["level"] == "SEVERE" || entry["level"] == "WARNING")
        .collect();
    assert!(errors.is_empty(), "the console has errors: {errors:?}");
}

#[test]
fn twenty_thousand_targets_load_quickly_and_render_only_the_rows_in_view() {
    let Some(namespace) = namespace() else {
        return;
    };
    const TARGETS: usize = 20_000;
    const PORT: u16 = 8080;
    // One listener answers every loopback address.
    let _listener = namespace
        .run(|| TcpListener::bind(("0.0.0.0", PORT)).unwrap())
        .unwrap();
    let list: String = (0..TARGETS)
        .map(|i| format!("127.0.{}.{}:{PORT}\n", i / 250, i % 250 + 1))
        .collect();
    let file = TempFile::new("page-20000.txt", &list);
    let served = Served::start_in(
        &namespace,
        &["-f", file.path().to_str().unwrap(), "-i", "5s"],
    );
    // Every target checked once, so that the page gets the full data.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let api: Value = serde_json::from_slice(&served.get("/api/targets").body).unwrap();
        let targets = api.as_array().unwrap();
        if targets.len() == TARGETS && targets.iter().all(|t| !t["last_check"].is_null()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every target checked within 20 s"
        );
        thread::sleep(Duration::from_millis(200));
    }
    let browser = Browser::start(&namespace, "many", 1280, 800);
    let api_started = Instant::now();
    let bytes = served.get("/api/targets").body.len();
    let api_time = api_started.elapsed();
    browser.open(&format!("http://{}/", served.address));
    let loaded = browser.wait_for(
        "the first data of 20 000 targets",
        Duration::from_secs(30),
        "return document.body.dataset.loadedMs",
        REPORT,
    );
    let loaded: u64 = loaded.as_str().unwrap().parse().unwrap();
    let timing = browser.eval("return document.body.dataset.timing", &[]);
    let in_dom = browser.eval("return document.querySelectorAll('#rows .row').length", &[]);
    let total = browser.eval("return document.body.dataset.total", &[]);
    eprintln!(
        "page: {TARGETS} targets loaded in {loaded} ms from navigation start (first poll: \
         fetched, parsed, shown in {} ms; /api/targets {bytes} bytes in {api_time:?} from the \
         test); {in_dom} row elements in the DOM",
        timing.as_str().unwrap_or("?")
    );
    assert_eq!(total, TARGETS.to_string());
    assert!(loaded < 10_000, "loading took {loaded} ms");
    assert!(in_dom.as_u64().unwrap() < 100, "{in_dom} rows in the DOM");

    // Staying responsive: a filter and a sort, timed in the page.
    let filtered = browser.eval(
        "const f = document.getElementById('filter'), started = performance.now();
         f.value = '127.0.42.'; f.dispatchEvent(new Event('input'));
         return [performance.now() - started, document.body.dataset.shown];",
        &[],
    );
    let sorted = browser.eval(
        "const started = performance.now();
         document.querySelector('[data-key=address] button').click();
         const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input'));
         return performance.now() - started;",
        &[],
    );
    eprintln!(
        "page: filtering {TARGETS} targets took {:.0} ms, sorting them by address and \
         clearing the filter {:.0} ms",
        filtered[0].as_f64().unwrap(),
        sorted.as_f64().unwrap()
    );
    assert_eq!(filtered[1], "250");
    assert!(filtered[0].as_f64().unwrap() < 1000.0);
    assert!(sorted.as_f64().unwrap() < 2000.0);
    // The end of the list is there when scrolled to.
    browser.eval("document.getElementById('scroller').scrollTop = 1e9", &[]);
    let last = browser.wait_for(
        "the last row after scrolling to the end",
        WAIT,
        "const last = [...document.querySelectorAll('#rows .row:not([hidden])')]
           .find((r) => r.getAttribute('aria-rowindex') === '20001');
         return last && last.dataset.name;",
        REPORT,
    );
    assert_eq!(last, "127.0.79.250:8080");
}

#[test]
fn a_realistic_page_shows_every_state_and_its_screenshot() {
    let Some(namespace) = namespace() else {
        return;
    };
    let answering = [
        "127.0.0.1:5432",
        "127.0.0.2:5432",
        "127.0.0.3:9092",
        "127.0.0.1:443",
        "127.0.0.1:8080",
        "127.0.0.1:6379",
        "127.0.0.1:25",
        "127.0.0.1:53",
        "127.0.0.2:53",
    ];
    let bind = |address: &str| {
        namespace
            .run(|| TcpListener::bind(address).unwrap())
            .unwrap()
    };
    let mut listeners: Vec<Option<TcpListener>> = answering.iter().map(|a| Some(bind(a))).collect();
    let _silent = namespace.run(|| silent_at("127.0.0.1:11211")).unwrap();
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/realistic-page.toml"
    );
    let served = Served::start_in(&namespace, &["--config", config]);
    let browser = Browser::start(&namespace, "realistic", 1280, 900);
    open(&browser, &served);

    // A blip on the replica: a few closed checks in its history.
    thread::sleep(Duration::from_secs(2));
    listeners[1] = None;
    thread::sleep(Duration::from_millis(600));
    listeners[1] = Some(bind(answering[1]));
    thread::sleep(Duration::from_secs(2));
    // The broker starts failing (four failures bring it down, 2 s apart), and ldap answers
    // again (four successes bring it up).
    listeners[2] = None;
    let _ldap = bind("127.0.0.1:389");
    let expected = [
        ("postgres-primary", "up"),
        ("kafka-broker-1", "going_down"),
        ("rabbitmq", "down"),
        ("memcached", "down"),
        ("search", "down"),
        ("ldap", "going_up"),
        ("smtp-relay", "up"),
        ("127.0.0.2:53", "up"),
    ];
    let wanted: Value = expected.iter().map(|(n, s)| json!([n, s])).collect();
    browser.wait_for(
        "every state on the page at once",
        Duration::from_secs(15),
        &format!(
            "const rows = [...document.querySelectorAll('#rows .row:not([hidden])')];
             return {wanted}.every(([name, state]) =>
               rows.some((r) => r.dataset.name === name && r.dataset.state === state));"
        ),
        REPORT,
    );
    let shown = rows(&browser);
    assert_eq!(shown.len(), 13, "{shown:?}");
    let last_of = |name: &str| {
        shown
            .iter()
            .find(|row| row["name"] == name)
            .map(|row| row["last"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(last_of("rabbitmq"), "unreachable");
    assert_eq!(last_of("memcached"), "timed out");
    assert_eq!(last_of("search"), "closed");
    // The broker's details at the bottom, as an operator would look at them.
    browser.click(&browser.find("#rows .row[data-name=\"kafka-broker-1\"]"));
    browser.eval("document.activeElement.blur()", &[]);
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    if std::env::var_os("TCP_SHAKER_SCREENSHOT").is_some_and(|v| v == "1") {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/status-page.png");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &png).unwrap();
        eprintln!("page: screenshot saved as {}", path.display());
    }
}
