//! The `serve` scenario: `tcp-checker serve` checking N targets every second (20 000 by
//! default), then HAProxy checking the same N as `server sN ADDR check inter 1s` in one
//! backend, one after the other in each of K rounds. Per run: the checks made per second, how
//! late they started (the service's `tcp_shaker_schedule_lateness_seconds`), how long
//! `/metrics` takes for all of them, the resident memory per target, the CPU time per check,
//! and the connections the listener's application accepted. What is shared with the `probe`
//! scenario ([`crate::probe`]) is here too: the stage both run on, and starting `tcp-checker
//! serve`.
//!
//! The targets are distinct loopback addresses (127.0.0.1, 127.0.0.2, ..., skipping the .0 and
//! .255 of each /24) on the port of one listener bound to 0.0.0.0, which Linux reaches for all
//! of 127/8 over `lo`. Run as root, everything (listener, services, HTTP clients) is inside a
//! network namespace of the benchmark's own: nothing else can reach that listener, and the
//! kernel's TCP counters, by which HAProxy's checks are counted, are the scenario's alone.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::args::Args;
use crate::bench::Setup;
use crate::cpu_time::CpuTime;
use crate::daemon::{self, Daemon, TempDir};
use crate::exposition::{self, Histogram};
use crate::http_load::{Connection, Response};
use crate::interrupt;
use crate::listener::Listener;
use crate::procfs::{self, TcpCounters, ThreadCpu};
use crate::statistics::median;
use crate::table::markdown;

/// The interval of every target's checks, HAProxy's `inter` alike.
const INTERVAL: Duration = Duration::from_secs(1);
/// How long a checker runs before its window: its first checks are spread over the first
/// interval, and every target's series exist after the second.
const WARM_UP: Duration = Duration::from_secs(5);
/// How long a checker without targets runs before its memory is read.
const BASELINE_SETTLE: Duration = Duration::from_secs(2);
/// How long a service has to start (HAProxy reads 20 000 servers in seconds).
pub const START_DEADLINE: Duration = Duration::from_secs(60);
/// Timed GETs of `/metrics` per format and run.
const METRICS_GETS: usize = 5;
/// The `Accept` header Prometheus sends a scrape target (OpenMetrics first).
pub const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
     application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
/// The service's counter of checks, by target and outcome.
const CHECKS: &str = "tcp_shaker_target_checks_total";
/// The service's histogram of how late each check started.
const LATENESS: &str = "tcp_shaker_schedule_lateness_seconds";
/// The bound on the 99th percentile of lateness, seconds (one of the buckets).
const LATENESS_GOAL_S: f64 = 0.05;
/// The bound on the time `/metrics` takes, milliseconds.
const RENDER_GOAL_MS: f64 = 250.0;
/// A checker keeps the schedule if it makes this share of the checks due.
const ON_SCHEDULE: f64 = 0.99;
/// How the checks of the CPU window are counted in a namespace of the benchmark's own.
const KERNEL_COUNT: &str = "the kernel's ActiveOpens (connects) of the benchmark's network \
                            namespace, where the checker alone connects";
/// The names HAProxy is found by in `PATH`.
const HAPROXY: [&str; 1] = ["haproxy"];

/// Where the serve and probe scenarios run: the listener, and what runs against it.
pub struct Stage<'a> {
    /// The listener (on 0.0.0.0): every target's port, the probes' too.
    pub listener: &'a Listener,
    /// Where and how the benchmark runs.
    pub setup: Setup,
    /// The `tcp-checker` binary.
    pub tcp_checker: PathBuf,
    /// The network the scenario runs in, in words.
    pub network: String,
    /// Whether that is a network namespace of the benchmark's own (its kernel counters are
    /// the scenario's alone).
    pub isolated: bool,
    /// The soft limit of open files, as raised.
    pub open_files: u64,
}

impl Stage<'_> {
    /// The listener's port.
    pub fn port(&self) -> u16 {
        self.listener.address().port()
    }
}

/// The `tcp-checker` binary: `--tcp-checker`, or the one beside this program.
pub fn tcp_checker_binary(args: &Args) -> anyhow::Result<PathBuf> {
    let path = match &args.tcp_checker {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("finding this program")?
            .with_file_name("tcp-checker"),
    };
    anyhow::ensure!(
        daemon::is_executable(&path),
        "no tcp-checker binary at {}: build it first (`cargo build --release` in the \
         repository puts it beside shaker-bench), or give its path with --tcp-checker",
        path.display()
    );
    Ok(path)
}

/// Starts `tcp-checker serve ARGUMENTS --listen 127.0.0.1:0`, with `targets` (one a line) on
/// its standard input if given, and waits until it says where it serves HTTP.
pub fn start_tcp_checker(
    program: &Path,
    arguments: &[&str],
    targets: Option<&str>,
) -> anyhow::Result<(Daemon, SocketAddr)> {
    let mut command = Command::new(program);
    command
        .arg("serve")
        .args(arguments)
        .args(["--listen", "127.0.0.1:0"]);
    if targets.is_some() {
        command.args(["--file", "-"]);
    }
    let mut daemon = Daemon::start("tcp-checker serve", command, targets.map(str::as_bytes))?;
    let address = daemon.wait_until("say where it serves HTTP", START_DEADLINE, |daemon| {
        daemon
            .output()
            .split("serving http://")
            .nth(1)?
            .split('/')
            .next()?
            .parse()
            .ok()
    })?;
    Ok((daemon, address))
}

/// One thread name's share of a process's CPU time over a window.
#[derive(Clone, Debug, Serialize)]
pub struct ThreadShare {
    /// The threads' name (`comm`, cut at 15 bytes), or `(exited)` for threads that ended
    /// during the window.
    pub name: String,
    /// Threads of that name.
    pub threads: usize,
    /// Their CPU time over the window, seconds.
    pub cpu_s: f64,
    /// Per unit of work (check or probe), microseconds.
    pub us_per_unit: f64,
}

/// The CPU time of each thread name between two readings of a process's threads, `units` of
/// work done meanwhile; the process's own total (`total`, which counts threads that exited)
/// less the threads' is `(exited)`.
pub fn thread_shares(
    before: &[ThreadCpu],
    after: &[ThreadCpu],
    total: CpuTime,
    units: f64,
) -> Vec<ThreadShare> {
    let mut shares: Vec<ThreadShare> = Vec::new();
    let per_unit = |cpu_s: f64| cpu_s * 1e6 / units.max(1.0);
    let mut counted = 0.0;
    for thread in after {
        let earlier = before.iter().find(|t| t.tid == thread.tid);
        let used = match earlier {
            Some(earlier) => thread.cpu.since(&earlier.cpu),
            None => thread.cpu,
        };
        let cpu_s = used.total().as_secs_f64();
        counted += cpu_s;
        match shares.iter_mut().find(|share| share.name == thread.name) {
            Some(share) => {
                share.threads += 1;
                share.cpu_s += cpu_s;
            }
            None => shares.push(ThreadShare {
                name: thread.name.clone(),
                threads: 1,
                cpu_s,
                us_per_unit: 0.0,
            }),
        }
    }
    let exited = total.total().as_secs_f64() - counted;
    if exited > 0.0 {
        let threads = before
            .iter()
            .filter(|t| !after.iter().any(|a| a.tid == t.tid))
            .count();
        shares.push(ThreadShare {
            name: "(exited)".into(),
            threads,
            cpu_s: exited,
            us_per_unit: 0.0,
        });
    }
    for share in &mut shares {
        share.us_per_unit = per_unit(share.cpu_s);
    }
    shares.sort_by(|a, b| b.cpu_s.total_cmp(&a.cpu_s));
    shares
}

/// The threads' shares in words, with their roles: `event loop (tcp-shaker) 12.0 µs, ...`.
pub fn describe_shares(shares: &[ThreadShare], unit: &str) -> String {
    let parts: Vec<String> = shares
        .iter()
        .map(|share| {
            let role = match share.name.as_str() {
                "tcp-shaker" => "the checker's event loop (tcp-shaker)",
                "tcp-shaker-heal" => "the health scheduler (tcp-shaker-health)",
                "tcp-checker-htt" => "the HTTP runtime (tcp-checker-http)",
                "tcp-shaker-reso" => "resolver threads (tcp-shaker-resolver)",
                "tcp-checker" => "the main thread (tcp-checker)",
                name => name,
            };
            let count = if share.threads > 1 {
                format!(" ×{}", share.threads)
            } else {
                String::new()
            };
            format!("{role}{count} {:.1} µs/{unit}", share.us_per_unit)
        })
        .collect();
    parts.join(", ")
}

/// The address of target `index`: 127.0.0.1, 127.0.0.2, ..., 127.0.0.254, 127.0.1.1, ...
/// (no .0 or .255 in the last byte), up to 127.255.255.254.
pub fn target_address(index: usize) -> Ipv4Addr {
    let (per_24, per_16) = (254, 254 * 256);
    let low = (index % per_24 + 1) as u8;
    let third = (index / per_24 % 256) as u8;
    let second = u8::try_from(index / per_16).unwrap_or(u8::MAX);
    Ipv4Addr::new(127, second, third, low)
}

/// Which checker a run measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checker {
    /// `tcp-checker serve`.
    TcpChecker,
    /// HAProxy.
    Haproxy,
}

impl Checker {
    /// Its name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Checker::TcpChecker => "tcp-checker serve",
            Checker::Haproxy => "HAProxy",
        }
    }
}

/// The lateness of the checks started in a window, from the difference of two scrapes of the
/// service's histogram: percentiles as the bucket bound they are at most.
#[derive(Clone, Debug, Serialize)]
pub struct Lateness {
    /// Checks observed.
    pub observed: u64,
    /// The median is at most this, seconds (`null`: past the last finite bucket).
    pub p50_at_most_s: Option<f64>,
    /// The 99th percentile is at most this, seconds.
    pub p99_at_most_s: Option<f64>,
    /// The mean, seconds.
    pub mean_s: Option<f64>,
    /// The share of checks that started more than 50 ms late.
    pub over_50ms: Option<f64>,
    /// The histogram of the window (`le`, cumulative count).
    pub buckets: Vec<(f64, f64)>,
}

impl Lateness {
    fn of(histogram: &Histogram) -> Lateness {
        let finite = |bound: Option<f64>| bound.filter(|b| b.is_finite());
        Lateness {
            observed: histogram.count.max(0.0) as u64,
            p50_at_most_s: finite(histogram.percentile_bound(50.0)),
            p99_at_most_s: finite(histogram.percentile_bound(99.0)),
            mean_s: histogram.mean(),
            over_50ms: histogram.share_above(LATENESS_GOAL_S),
            buckets: histogram.buckets.clone(),
        }
    }
}

/// Timed GETs of `/metrics` in one format.
#[derive(Clone, Debug, Serialize)]
pub struct RenderTimes {
    /// The `Accept` header sent (none: the Prometheus text format).
    pub accept: Option<String>,
    /// GETs timed, back to back on one kept-alive connection.
    pub gets: usize,
    /// Median time from sending the request to the end of the body, milliseconds.
    pub p50_ms: f64,
    /// Longest, milliseconds.
    pub max_ms: f64,
    /// The body's size, bytes (of the last GET).
    pub body_bytes: usize,
    /// Each GET's time, in order, milliseconds.
    pub times_ms: Vec<f64>,
}

/// One checker's run with the targets.
#[derive(Clone, Debug, Serialize)]
pub struct CheckerRun {
    /// The checker.
    pub checker: Checker,
    /// The round, from 1.
    pub round: usize,
    /// Checks counted over the window.
    pub checks: u64,
    /// What counted them.
    pub counted_by: String,
    /// The window's length, seconds.
    pub window_s: f64,
    /// `checks / window_s`.
    pub checks_per_s: f64,
    /// Of the checks, those that found the port open (tcp-checker serve's own count).
    pub open_checks: Option<u64>,
    /// Sockets that connected, per second, by the kernel's `ActiveOpens` over the CPU window.
    pub kernel_connects_per_s: f64,
    /// How late the checks started (tcp-checker serve only).
    pub lateness: Option<Lateness>,
    /// The window of the CPU time, seconds (between the scrapes, for tcp-checker serve).
    pub cpu_window_s: f64,
    /// The checks made in it.
    pub cpu_checks: u64,
    /// What counted them.
    pub cpu_counted_by: String,
    /// User plus system CPU time of the process over that window, seconds.
    pub cpu_s: f64,
    /// `cpu_s` per check, microseconds.
    pub cpu_us_per_check: f64,
    /// `cpu_s` over the window: CPU cores busy.
    pub cpu_cores: f64,
    /// The CPU time of each thread name (tcp-checker serve only).
    pub threads: Vec<ThreadShare>,
    /// Resident memory at the end of the window (`VmRSS`; for tcp-checker serve, 10 s after
    /// a scrape), KiB.
    pub rss_kib: u64,
    /// Resident memory right after a scrape of `/metrics` (tcp-checker serve only), KiB.
    pub rss_after_scrape_kib: Option<u64>,
    /// Resident memory of the same checker without targets, KiB.
    pub baseline_rss_kib: u64,
    /// `(rss - baseline) / targets`, bytes.
    pub memory_per_target_bytes: f64,
    /// `/metrics` in the Prometheus text format (tcp-checker serve only).
    pub metrics_text: Option<RenderTimes>,
    /// `/metrics` as Prometheus asks for it: OpenMetrics (tcp-checker serve only).
    pub metrics_openmetrics: Option<RenderTimes>,
    /// Connections the listener's application accepted from the checker's start to the end of
    /// its measurements, while it ran.
    pub accepted_running: u64,
    /// Connections accepted from its start until 300 ms after it stopped.
    pub accepted: u64,
}

impl CheckerRun {
    /// The longest `/metrics` of either format, milliseconds.
    fn render_max_ms(&self) -> Option<f64> {
        let times = [&self.metrics_text, &self.metrics_openmetrics];
        times
            .iter()
            .filter_map(|times| times.as_ref().map(|t| t.max_ms))
            .reduce(f64::max)
    }
}

/// One checker's medians over the rounds.
#[derive(Debug, Serialize)]
pub struct CheckerRow {
    /// The checker.
    pub checker: Checker,
    /// Its version, as it says it.
    pub version: Option<String>,
    /// Median checks per second.
    pub checks_per_s: Option<f64>,
    /// Median bound of the lateness's median, seconds.
    pub lateness_p50_at_most_s: Option<f64>,
    /// Median bound of its 99th percentile, seconds.
    pub lateness_p99_at_most_s: Option<f64>,
    /// Median share of checks more than 50 ms late.
    pub lateness_over_50ms: Option<f64>,
    /// Median of the runs' median `/metrics` times in the text format, milliseconds.
    pub metrics_text_p50_ms: Option<f64>,
    /// The longest of every run, milliseconds.
    pub metrics_text_max_ms: Option<f64>,
    /// Median of the runs' median OpenMetrics times, milliseconds.
    pub metrics_openmetrics_p50_ms: Option<f64>,
    /// The longest of every run, milliseconds.
    pub metrics_openmetrics_max_ms: Option<f64>,
    /// Median body size in the text format, bytes.
    pub metrics_text_bytes: Option<f64>,
    /// Median resident memory, KiB.
    pub rss_kib: Option<f64>,
    /// Median resident memory right after a scrape, KiB.
    pub rss_after_scrape_kib: Option<f64>,
    /// Median memory per target, bytes.
    pub memory_per_target_bytes: Option<f64>,
    /// Median CPU per check, microseconds.
    pub cpu_us_per_check: Option<f64>,
    /// Median CPU cores busy.
    pub cpu_cores: Option<f64>,
    /// The most connections accepted in one run while the checker ran.
    pub accepted_running_max: Option<u64>,
    /// The most connections accepted in one run, its stop included.
    pub accepted_max: Option<u64>,
}

impl CheckerRow {
    fn of(checker: Checker, version: Option<String>, runs: &[&CheckerRun]) -> CheckerRow {
        let of = |value: &dyn Fn(&CheckerRun) -> Option<f64>| {
            median(runs.iter().filter_map(|run| value(run)).collect())
        };
        let most = |value: &dyn Fn(&CheckerRun) -> Option<f64>| {
            runs.iter().filter_map(|run| value(run)).reduce(f64::max)
        };
        CheckerRow {
            checker,
            version,
            checks_per_s: of(&|run| Some(run.checks_per_s)),
            lateness_p50_at_most_s: of(&|run| run.lateness.as_ref()?.p50_at_most_s),
            lateness_p99_at_most_s: of(&|run| run.lateness.as_ref()?.p99_at_most_s),
            lateness_over_50ms: of(&|run| run.lateness.as_ref()?.over_50ms),
            metrics_text_p50_ms: of(&|run| Some(run.metrics_text.as_ref()?.p50_ms)),
            metrics_text_max_ms: most(&|run| Some(run.metrics_text.as_ref()?.max_ms)),
            metrics_openmetrics_p50_ms: of(&|run| Some(run.metrics_openmetrics.as_ref()?.p50_ms)),
            metrics_openmetrics_max_ms: most(&|run| Some(run.metrics_openmetrics.as_ref()?.max_ms)),
            metrics_text_bytes: of(&|run| Some(run.metrics_text.as_ref()?.body_bytes as f64)),
            rss_kib: of(&|run| Some(run.rss_kib as f64)),
            rss_after_scrape_kib: of(&|run| Some(run.rss_after_scrape_kib? as f64)),
            memory_per_target_bytes: of(&|run| Some(run.memory_per_target_bytes)),
            cpu_us_per_check: of(&|run| Some(run.cpu_us_per_check)),
            cpu_cores: of(&|run| Some(run.cpu_cores)),
            accepted_running_max: runs.iter().map(|run| run.accepted_running).max(),
            accepted_max: runs.iter().map(|run| run.accepted).max(),
        }
    }
}

/// A target of the issue, and whether the runs met it.
#[derive(Debug, Serialize)]
pub struct Goal {
    /// The target, in words.
    pub goal: String,
    /// Met (on the medians), missed, or not judged (`null`: what it compares with did not run).
    pub met: Option<bool>,
    /// The figures it was judged on.
    pub figures: String,
}

/// The `serve` scenario's results (and `--json` output).
#[derive(Debug, Serialize)]
pub struct Serve {
    /// Where and how it ran.
    pub setup: Setup,
    /// The network it ran in.
    pub network: String,
    /// Targets.
    pub targets: usize,
    /// The first and the last target's address, and their port.
    pub target_range: (String, String),
    /// Seconds between two checks of a target.
    pub interval_s: f64,
    /// Seconds each checker ran before its window.
    pub warm_up_s: f64,
    /// The window, seconds.
    pub window_s: f64,
    /// Rounds.
    pub rounds: usize,
    /// Why HAProxy did not run, if it did not.
    pub haproxy_missing: Option<String>,
    /// Every run, in order.
    pub runs: Vec<CheckerRun>,
    /// Each checker's medians.
    pub rows: Vec<CheckerRow>,
    /// The targets of the issue.
    pub goals: Vec<Goal>,
    /// The 1-minute load average at the end.
    pub load_average_after: f64,
    /// What went wrong: a check of tcp-checker serve accepted, or not open.
    pub failures: Vec<String>,
    /// True if nothing did.
    pub ok: bool,
}

/// `tcp-checker serve` with the targets, then HAProxy with the same (if installed), in each of
/// the rounds.
pub fn serve(args: &Args, stage: &Stage<'_>) -> anyhow::Result<Serve> {
    let count = args.targets;
    let port = stage.port();
    let addresses: Vec<SocketAddrV4> = (0..count)
        .map(|index| SocketAddrV4::new(target_address(index), port))
        .collect();
    let haproxy = daemon::find_in_path(&HAPROXY);
    let haproxy_missing = haproxy.is_none().then(|| {
        "haproxy is not installed (not found in PATH): `apt-get install --no-install-recommends \
         haproxy` adds it"
            .to_string()
    });
    if let Some(reason) = &haproxy_missing {
        eprintln!("serve: {reason}; measuring tcp-checker serve alone");
    }
    let folder = TempDir::new()?;
    let targets_text: String = addresses.iter().map(|a| format!("{a}\n")).collect();
    let mut runs = Vec::new();
    for round in 1..=args.runs() {
        // Odd rounds start with tcp-checker serve, even ones with HAProxy, so that neither
        // always runs second, after the other has warmed the machine up.
        let mut order = vec![Checker::TcpChecker];
        if haproxy.is_some() {
            order.insert(usize::from(round % 2 == 1), Checker::Haproxy);
        }
        for checker in order {
            eprintln!(
                "serve: round {round}: {}, {count} targets every {INTERVAL:?}: warm-up \
                 {WARM_UP:?}, window {:?}",
                checker.name(),
                args.window()
            );
            runs.push(match (checker, &haproxy) {
                (Checker::Haproxy, Some(haproxy)) => {
                    measure_haproxy(args, stage, haproxy, &folder, &addresses, round)?
                }
                _ => measure_tcp_checker(args, stage, &targets_text, round)?,
            });
        }
    }
    let versions = [
        (
            Checker::TcpChecker,
            daemon::version(&stage.tcp_checker, &["--version"]),
        ),
        (
            Checker::Haproxy,
            haproxy
                .as_deref()
                .and_then(|path| daemon::version(path, &["-v"])),
        ),
    ];
    let rows: Vec<CheckerRow> = versions
        .into_iter()
        .filter_map(|(checker, version)| {
            let of: Vec<&CheckerRun> = runs.iter().filter(|r| r.checker == checker).collect();
            (!of.is_empty()).then(|| CheckerRow::of(checker, version, &of))
        })
        .collect();
    let mut failures = Vec::new();
    for run in runs.iter().filter(|run| run.checker == Checker::TcpChecker) {
        let round = run.round;
        if run.accepted > 0 {
            failures.push(format!(
                "round {round}: the listener accepted {} connections from tcp-checker serve",
                run.accepted
            ));
        }
        if let Some(open) = run.open_checks.filter(|&open| open < run.checks) {
            failures.push(format!(
                "round {round}: {open} of tcp-checker serve's {} checks found the port open",
                run.checks
            ));
        }
    }
    Ok(Serve {
        setup: stage.setup.clone(),
        network: stage.network.clone(),
        targets: count,
        target_range: (
            addresses
                .first()
                .map(ToString::to_string)
                .unwrap_or_default(),
            addresses
                .last()
                .map(ToString::to_string)
                .unwrap_or_default(),
        ),
        interval_s: INTERVAL.as_secs_f64(),
        warm_up_s: WARM_UP.as_secs_f64(),
        window_s: args.window().as_secs_f64(),
        rounds: args.runs(),
        haproxy_missing,
        goals: serve_goals(count, &rows),
        runs,
        rows,
        load_average_after: procfs::load_average()?,
        ok: failures.is_empty(),
        failures,
    })
}

/// A scrape of `/metrics`: when, and what it says of the checks.
struct Scrape {
    /// The middle of the GET.
    at: Instant,
    /// Every target's checks, summed.
    checks: f64,
    /// Those that found the port open.
    open: f64,
    /// The lateness histogram.
    lateness: Histogram,
}

impl Scrape {
    /// GETs `/metrics` as Prometheus does; the body is read by [`Scrape::read`], later, so that
    /// reading tens of megabytes does not take CPU from the service during its window.
    fn fetch(connection: &mut Connection) -> anyhow::Result<(Instant, Response)> {
        let started = Instant::now();
        let response = get_metrics(connection, Some(PROMETHEUS_ACCEPT))?;
        Ok((started + started.elapsed() / 2, response))
    }

    /// What a body fetched `at` says.
    fn read((at, response): (Instant, Response)) -> anyhow::Result<Scrape> {
        let text = std::str::from_utf8(&response.body).context("/metrics is not UTF-8")?;
        Ok(Scrape {
            at,
            checks: exposition::sum(text, CHECKS, |_| true)?,
            open: exposition::sum(text, CHECKS, |s| s.label("outcome") == Some("open"))?,
            lateness: Histogram::scrape(text, LATENESS)?,
        })
    }
}

/// `GET /metrics`, with `accept` as its `Accept` header if given; fails unless it is 200.
fn get_metrics(connection: &mut Connection, accept: Option<&str>) -> anyhow::Result<Response> {
    let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
    let response = connection
        .get("/metrics", &headers)
        .context("GET /metrics of tcp-checker serve")?;
    anyhow::ensure!(
        response.status == 200,
        "GET /metrics answered {}: {}",
        response.status,
        response.text().trim()
    );
    Ok(response)
}

/// [`METRICS_GETS`] timed GETs of `/metrics`, back to back.
fn time_metrics(connection: &mut Connection, accept: Option<&str>) -> anyhow::Result<RenderTimes> {
    let mut times = Vec::new();
    let mut body_bytes = 0;
    for _ in 0..METRICS_GETS {
        let started = Instant::now();
        let response = get_metrics(connection, accept)?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        body_bytes = response.body.len();
    }
    Ok(RenderTimes {
        accept: accept.map(str::to_string),
        gets: times.len(),
        p50_ms: median(times.clone()).unwrap_or(0.0),
        max_ms: times.iter().copied().fold(0.0, f64::max),
        body_bytes,
        times_ms: times,
    })
}

/// CPU, threads and kernel counters of a process at one moment.
struct Reading {
    at: Instant,
    cpu: CpuTime,
    threads: Vec<ThreadCpu>,
    kernel: TcpCounters,
}

impl Reading {
    fn take(pid: u32) -> anyhow::Result<Reading> {
        Ok(Reading {
            kernel: procfs::tcp_counters()?,
            cpu: procfs::process_cpu(pid)?,
            threads: procfs::threads_cpu(pid)?,
            at: Instant::now(),
        })
    }
}

/// The resident memory of `tcp-checker serve` without targets, after one `/metrics`.
fn tcp_checker_baseline(program: &Path) -> anyhow::Result<u64> {
    let (daemon, http) = start_tcp_checker(program, &[], None)?;
    interrupt::sleep(BASELINE_SETTLE)?;
    get_metrics(&mut Connection::open(http)?, Some(PROMETHEUS_ACCEPT))?;
    let rss = procfs::rss_kib(daemon.pid())?;
    daemon.stop()?;
    Ok(rss)
}

/// One run of `tcp-checker serve` with the targets (one a line in `targets`).
fn measure_tcp_checker(
    args: &Args,
    stage: &Stage<'_>,
    targets: &str,
    round: usize,
) -> anyhow::Result<CheckerRun> {
    let baseline_rss_kib = tcp_checker_baseline(&stage.tcp_checker)?;
    let accepted_before = stage.listener.accepted();
    let interval = format!("{}ms", INTERVAL.as_millis());
    let (mut daemon, http) = start_tcp_checker(
        &stage.tcp_checker,
        &["--interval", &interval],
        Some(targets),
    )?;
    let pid = daemon.pid();
    interrupt::sleep(WARM_UP)?;
    daemon.ensure_running()?;
    let mut connection = Connection::open(http).context("connecting to tcp-checker serve")?;
    let first = Scrape::fetch(&mut connection)?;
    let start = Reading::take(pid)?;
    interrupt::sleep(args.window())?;
    let end = Reading::take(pid)?;
    // Between two scrapes, as Prometheus leaves it; then right after one.
    let rss_kib = procfs::rss_kib(pid)?;
    let last = Scrape::fetch(&mut connection)?;
    let rss_after_scrape_kib = Some(procfs::rss_kib(pid)?);
    let metrics_text = time_metrics(&mut connection, None)?;
    let metrics_openmetrics = time_metrics(&mut connection, Some(PROMETHEUS_ACCEPT))?;
    daemon.ensure_running()?;
    drop(connection);
    let accepted_running = stage.listener.accepted() - accepted_before;
    daemon.stop()?;
    stage.listener.settle();
    let (first, last) = (Scrape::read(first)?, Scrape::read(last)?);
    let window = last.at.duration_since(first.at).as_secs_f64();
    let checks = (last.checks - first.checks).max(0.0);
    let checks_per_s = checks / window;
    let cpu = end.cpu.since(&start.cpu);
    let cpu_window = end.at.duration_since(start.at).as_secs_f64();
    let connects = end.kernel.since(&start.kernel, "ActiveOpens");
    // The checks of the CPU window: in a namespace of the benchmark's own, the kernel's count
    // of connects, as HAProxy's; on a shared one, the scrapes' rate over it.
    let (checks_in_cpu_window, cpu_counted_by) = if stage.isolated {
        (connects as f64, KERNEL_COUNT)
    } else {
        (checks_per_s * cpu_window, "its checks/s over the window")
    };
    Ok(CheckerRun {
        checker: Checker::TcpChecker,
        round,
        checks: checks as u64,
        counted_by: format!("its own {CHECKS}, summed over the targets"),
        window_s: window,
        checks_per_s,
        open_checks: Some((last.open - first.open).max(0.0) as u64),
        kernel_connects_per_s: connects as f64 / cpu_window,
        lateness: Some(Lateness::of(&last.lateness.since(&first.lateness))),
        cpu_window_s: cpu_window,
        cpu_checks: checks_in_cpu_window as u64,
        cpu_counted_by: cpu_counted_by.into(),
        cpu_s: cpu.total().as_secs_f64(),
        cpu_us_per_check: cpu.total().as_secs_f64() * 1e6 / checks_in_cpu_window.max(1.0),
        cpu_cores: cpu.total().as_secs_f64() / cpu_window,
        threads: thread_shares(&start.threads, &end.threads, cpu, checks_in_cpu_window),
        rss_kib,
        rss_after_scrape_kib,
        baseline_rss_kib,
        memory_per_target_bytes: memory_per_target(rss_kib, baseline_rss_kib, args.targets),
        metrics_text: Some(metrics_text),
        metrics_openmetrics: Some(metrics_openmetrics),
        accepted_running,
        accepted: stage.listener.accepted() - accepted_before,
    })
}

/// `(rss - baseline) / targets`, bytes.
fn memory_per_target(rss_kib: u64, baseline_kib: u64, targets: usize) -> f64 {
    (rss_kib as f64 - baseline_kib as f64) * 1024.0 / targets.max(1) as f64
}

/// HAProxy's configuration: `servers` in one backend, each checked every [`INTERVAL`], and
/// the stats socket at `socket`, the one listener it insists on having.
pub fn haproxy_config(servers: &[SocketAddrV4], socket: &Path, open_files: u64) -> String {
    let mut config = format!(
        "# shaker-bench --scenario serve: {} targets checked every {} ms, half-open (HAProxy's \
         plain TCP check: SYN, SYN-ACK, RST).\n\
         global\n    maxconn 1000\n\
         \x20   # HAProxy reserves a descriptor per checked server on top of 2 per connection, \
         more than the hard limit\n\
         \x20   # of open files for 20 000 servers; its checks hold a few at a time, so it is told \
         to make do.\n\
         \x20   ulimit-n {open_files}\n    no strict-limits\n\
         \x20   # It refuses to start without a listener: the stats socket is one, and nothing \
         else listens.\n\
         \x20   stats socket {} mode 600\n\
         defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n\
         backend targets\n",
        servers.len(),
        INTERVAL.as_millis(),
        socket.display()
    );
    for (index, server) in servers.iter().enumerate() {
        let _ = writeln!(
            config,
            "    server s{index} {server} check inter {}ms",
            INTERVAL.as_millis()
        );
    }
    config
}

/// Starts HAProxy with `servers` and waits until its stats socket answers (it has read its
/// configuration).
fn start_haproxy(
    program: &Path,
    folder: &TempDir,
    servers: &[SocketAddrV4],
    open_files: u64,
) -> anyhow::Result<Daemon> {
    let socket = folder.path().join("haproxy.sock");
    // A socket left by the previous run would look ready.
    let _ = std::fs::remove_file(&socket);
    let config = folder.write("haproxy.cfg", &haproxy_config(servers, &socket, open_files))?;
    let mut command = Command::new(program);
    command.arg("-f").arg(&config).arg("-db");
    let mut daemon = Daemon::start("haproxy", command, None)?;
    daemon.wait_until("open its stats socket", START_DEADLINE, |_| {
        UnixStream::connect(&socket).ok()
    })?;
    Ok(daemon)
}

/// One run of HAProxy with the targets, its checks counted by the kernel's `ActiveOpens`.
fn measure_haproxy(
    args: &Args,
    stage: &Stage<'_>,
    program: &Path,
    folder: &TempDir,
    servers: &[SocketAddrV4],
    round: usize,
) -> anyhow::Result<CheckerRun> {
    let baseline_rss_kib = {
        let daemon = start_haproxy(program, folder, &[], stage.open_files)?;
        interrupt::sleep(BASELINE_SETTLE)?;
        let rss = procfs::rss_kib(daemon.pid())?;
        daemon.stop()?;
        rss
    };
    let accepted_before = stage.listener.accepted();
    let mut daemon = start_haproxy(program, folder, servers, stage.open_files)?;
    let pid = daemon.pid();
    interrupt::sleep(WARM_UP)?;
    daemon.ensure_running()?;
    let start = Reading::take(pid)?;
    interrupt::sleep(args.window())?;
    let end = Reading::take(pid)?;
    let rss_kib = procfs::rss_kib(pid)?;
    daemon.ensure_running()?;
    let accepted_running = stage.listener.accepted() - accepted_before;
    daemon.stop()?;
    stage.listener.settle();
    let window = end.at.duration_since(start.at).as_secs_f64();
    let checks = end.kernel.since(&start.kernel, "ActiveOpens");
    let cpu = end.cpu.since(&start.cpu);
    let counted_by = if stage.isolated {
        KERNEL_COUNT
    } else {
        "the kernel's ActiveOpens of this machine's network namespace, shared with every other \
         program here: at most HAProxy's"
    };
    Ok(CheckerRun {
        checker: Checker::Haproxy,
        round,
        checks,
        counted_by: counted_by.into(),
        window_s: window,
        checks_per_s: checks as f64 / window,
        open_checks: None,
        kernel_connects_per_s: checks as f64 / window,
        lateness: None,
        cpu_window_s: window,
        cpu_checks: checks,
        cpu_counted_by: counted_by.into(),
        cpu_s: cpu.total().as_secs_f64(),
        cpu_us_per_check: cpu.total().as_secs_f64() * 1e6 / checks.max(1) as f64,
        cpu_cores: cpu.total().as_secs_f64() / window,
        threads: Vec::new(),
        rss_kib,
        rss_after_scrape_kib: None,
        baseline_rss_kib,
        memory_per_target_bytes: memory_per_target(rss_kib, baseline_rss_kib, servers.len()),
        metrics_text: None,
        metrics_openmetrics: None,
        accepted_running,
        accepted: stage.listener.accepted() - accepted_before,
    })
}

/// The targets for the serve scenario, judged on the medians.
fn serve_goals(targets: usize, rows: &[CheckerRow]) -> Vec<Goal> {
    let ours = rows.iter().find(|row| row.checker == Checker::TcpChecker);
    let haproxy = rows.iter().find(|row| row.checker == Checker::Haproxy);
    let Some(ours) = ours else {
        return Vec::new();
    };
    let due = targets as f64 / INTERVAL.as_secs_f64();
    let rate = ours.checks_per_s.unwrap_or(0.0);
    let p99 = ours.lateness_p99_at_most_s;
    let render = [ours.metrics_text_p50_ms, ours.metrics_openmetrics_p50_ms]
        .into_iter()
        .flatten()
        .reduce(f64::max);
    let mut goals = vec![
        Goal {
            goal: format!(
                "every check starts on schedule: {due:.0} checks/s, p99 lateness under 50 ms"
            ),
            met: Some(rate >= ON_SCHEDULE * due && p99.is_some_and(|p| p <= LATENESS_GOAL_S)),
            figures: format!(
                "{rate:.0} checks/s ({:.1}% of those due); p99 lateness {}; {} started more \
                 than 50 ms late",
                100.0 * rate / due,
                bound(p99),
                share(ours.lateness_over_50ms)
            ),
        },
        Goal {
            goal: format!(
                "/metrics for all {targets} targets in under 250 ms (the median GET of each \
                 format; the longest is shown beside it)"
            ),
            met: render.map(|ms| ms < RENDER_GOAL_MS),
            figures: format!(
                "text p50 {} (max {}), OpenMetrics p50 {} (max {}), {} in the text format",
                millis(ours.metrics_text_p50_ms),
                millis(ours.metrics_text_max_ms),
                millis(ours.metrics_openmetrics_p50_ms),
                millis(ours.metrics_openmetrics_max_ms),
                size(ours.metrics_text_bytes)
            ),
        },
    ];
    let cpu = |row: Option<&CheckerRow>| row.and_then(|row| row.cpu_us_per_check);
    goals.push(Goal {
        goal: "CPU per check at most HAProxy's".into(),
        met: cpu(Some(ours)).zip(cpu(haproxy)).map(|(a, b)| a <= b),
        figures: match (cpu(Some(ours)), cpu(haproxy)) {
            (Some(a), Some(b)) => format!("{a:.1} µs against HAProxy's {b:.1} µs ({:.2}x)", a / b),
            (Some(a), None) => format!("{a:.1} µs; HAProxy did not run"),
            _ => "not measured".into(),
        },
    });
    goals.push(Goal {
        goal: "the listener's application accepts nothing from tcp-checker serve".into(),
        met: ours.accepted_max.map(|accepted| accepted == 0),
        figures: format!(
            "at most {} accepted in a run{}",
            ours.accepted_max.unwrap_or(0),
            haproxy
                .and_then(|row| row.accepted_max)
                .map(|a| format!(" (HAProxy: at most {a})"))
                .unwrap_or_default()
        ),
    });
    goals
}

/// The `serve` scenario as text.
pub fn render_serve(serve: &Serve) -> String {
    let mut text = String::new();
    let checkers: Vec<String> = serve
        .rows
        .iter()
        .map(|row| row_name(row.checker, row.version.as_deref()))
        .collect();
    let _ = writeln!(
        text,
        "serve scenario: {} targets ({} to {}) checked every {} s by {}{} {} round(s){}: each \
         warmed up {} s, then measured over {} s; medians of the rounds shown.",
        serve.targets,
        serve.target_range.0,
        serve.target_range.1,
        serve.interval_s,
        checkers.join(" and "),
        if checkers.len() > 1 {
            ", one after the other in each of"
        } else {
            ", in"
        },
        serve.rounds,
        if checkers.len() > 1 {
            " (which goes first alternates)"
        } else {
            ""
        },
        serve.warm_up_s,
        serve.window_s
    );
    let _ = writeln!(text, "Network: {}.", serve.network);
    let _ = writeln!(
        text,
        "{} CPUs; 1-minute load average {:.2} before, {:.2} after (it counts this benchmark's \
         own work, and that of anything else on the machine); open files limit {}.\n",
        serve.setup.cpus,
        serve.setup.load_average_before,
        serve.load_average_after,
        serve.setup.open_files_limit
    );
    let columns = [
        "checker",
        "checks/s",
        "lateness p50 / p99",
        "> 50 ms late",
        "/metrics text p50 / max",
        "/metrics OpenMetrics p50 / max",
        "body (text)",
        "RSS / after a scrape",
        "memory per target",
        "CPU µs/check",
        "CPU cores",
        "accepted: running / with its stop",
    ];
    let rows: Vec<Vec<String>> = serve
        .rows
        .iter()
        .map(|row| {
            vec![
                row_name(row.checker, row.version.as_deref()),
                number(row.checks_per_s, 0),
                if row.checker == Checker::TcpChecker {
                    format!(
                        "{} / {}",
                        bound(row.lateness_p50_at_most_s),
                        bound(row.lateness_p99_at_most_s)
                    )
                } else {
                    "-".into()
                },
                if row.checker == Checker::TcpChecker {
                    share(row.lateness_over_50ms)
                } else {
                    "-".into()
                },
                pair(row.metrics_text_p50_ms, row.metrics_text_max_ms),
                pair(
                    row.metrics_openmetrics_p50_ms,
                    row.metrics_openmetrics_max_ms,
                ),
                size(row.metrics_text_bytes),
                match row.rss_after_scrape_kib {
                    Some(after) => format!(
                        "{} / {}",
                        size(row.rss_kib.map(|kib| kib * 1024.0)),
                        size(Some(after * 1024.0))
                    ),
                    None => size(row.rss_kib.map(|kib| kib * 1024.0)),
                },
                size(row.memory_per_target_bytes),
                number(row.cpu_us_per_check, 1),
                number(row.cpu_cores, 2),
                format!(
                    "{} / {}",
                    number(row.accepted_running_max.map(|a| a as f64), 0),
                    number(row.accepted_max.map(|a| a as f64), 0)
                ),
            ]
        })
        .collect();
    text.push_str(&markdown(&columns, &rows));
    text.push_str("\nEach run:\n\n");
    let run_columns = [
        "round",
        "checker",
        "checks/s",
        "lateness p99",
        "/metrics max",
        "RSS",
        "memory per target",
        "CPU µs/check",
        "CPU cores",
        "accepted",
    ];
    let run_rows: Vec<Vec<String>> = serve
        .runs
        .iter()
        .map(|run| {
            vec![
                run.round.to_string(),
                run.checker.name().into(),
                format!("{:.0}", run.checks_per_s),
                run.lateness
                    .as_ref()
                    .map_or("-".into(), |l| bound(l.p99_at_most_s)),
                millis(run.render_max_ms()),
                size(Some(run.rss_kib as f64 * 1024.0)),
                size(Some(run.memory_per_target_bytes)),
                format!("{:.1}", run.cpu_us_per_check),
                format!("{:.2}", run.cpu_cores),
                format!("{} / {}", run.accepted_running, run.accepted),
            ]
        })
        .collect();
    text.push_str(&markdown(&run_columns, &run_rows));
    text.push('\n');
    for note in serve_notes(serve) {
        let _ = writeln!(text, "- {note}");
    }
    text
}

/// How each column was measured, each thread's share, what went wrong, and the goals.
fn serve_notes(serve: &Serve) -> Vec<String> {
    let mut notes = vec![
        format!(
            "checks/s: tcp-checker serve's by its own {CHECKS} (every target's, summed) between \
             two scrapes of /metrics {} s apart; HAProxy's by the kernel's count of connects \
             (ActiveOpens) over the same length of window. lateness: how long after it was due \
             each check started, from the difference of the two scrapes of the service's \
             {LATENESS} histogram, each percentile shown as the bucket bound it is at most \
             (HAProxy has no such figure).",
            serve.window_s
        ),
        format!(
            "/metrics: {METRICS_GETS} GETs in a row of each format after the window, on one \
             kept-alive connection, timed from sending the request to the end of the body; \
             OpenMetrics is what Prometheus asks for (its Accept header), the text format what \
             a client without one gets."
        ),
        "RSS: VmRSS at the end of the window (for tcp-checker serve 10 s after a scrape, as \
         Prometheus leaves it between two), and right after the scrape that follows; memory \
         per target: the first less the VmRSS of the same checker without targets (tcp-checker \
         serve after one /metrics, HAProxy with an empty backend), over the targets. CPU: user + system time of the \
         process over the window (/proc/PID/stat, 10 ms ticks), per check; on loopback the \
         kernel runs the listener's side of each handshake within the checker's connect(), so \
         that work is included."
            .into(),
        "accepted: connections the listener's application (one thread in blocking accept(), \
         counting and closing) accepted from the checker's start to the end of its \
         measurements (running), and until 300 ms after it stopped (with its stop: \
         tcp-checker serve and HAProxy alike are stopped with SIGTERM). Both checkers check \
         half-open (HAProxy's plain TCP check sets TCP_QUICKACK 0 and closes with RST)."
            .into(),
    ];
    let ours: Vec<&CheckerRun> = serve
        .runs
        .iter()
        .filter(|run| run.checker == Checker::TcpChecker)
        .collect();
    if let Some(shares) = median_shares(&ours) {
        notes.push(format!(
            "tcp-checker serve's CPU by thread (medians per check): {}.",
            describe_shares(&shares, "check")
        ));
    }
    for run in &serve.runs {
        notes.push(format!(
            "round {}, {}: {} checks over {:.2} s, counted by {}; CPU {:.2} s over {:.2} s for \
             {} checks, counted by {}.",
            run.round,
            run.checker.name(),
            run.checks,
            run.window_s,
            run.counted_by,
            run.cpu_s,
            run.cpu_window_s,
            run.cpu_checks,
            run.cpu_counted_by
        ));
    }
    if let Some(reason) = &serve.haproxy_missing {
        notes.push(format!("HAProxy: not run ({reason})."));
    }
    notes.extend(goal_notes(&serve.goals));
    if serve.ok {
        notes.push(
            "Verdict: every check of tcp-checker serve found the port open, and the listener \
             accepted none of them."
                .into(),
        );
    } else {
        notes.extend(
            serve
                .failures
                .iter()
                .map(|failure| format!("FAILED: {failure}.")),
        );
    }
    notes
}

/// The goals as notes: `Target met: ...` or `Target MISSED: ...`.
pub fn goal_notes(goals: &[Goal]) -> Vec<String> {
    goals
        .iter()
        .map(|goal| {
            let verdict = match goal.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not judged",
            };
            format!("Target {verdict}: {} ({}).", goal.goal, goal.figures)
        })
        .collect()
}

/// The median of each thread name's share over `runs`.
pub fn median_shares(runs: &[&CheckerRun]) -> Option<Vec<ThreadShare>> {
    let first = runs.first()?;
    let mut shares: Vec<ThreadShare> = first.threads.clone();
    for share in &mut shares {
        let of = |value: fn(&ThreadShare) -> f64| {
            median(
                runs.iter()
                    .filter_map(|run| run.threads.iter().find(|s| s.name == share.name))
                    .map(value)
                    .collect(),
            )
        };
        share.cpu_s = of(|s| s.cpu_s).unwrap_or(share.cpu_s);
        share.us_per_unit = of(|s| s.us_per_unit).unwrap_or(share.us_per_unit);
    }
    Some(shares)
}

/// A checker's name with its version: `HAProxy 2.6.12-1+deb12u4`.
fn row_name(checker: Checker, version: Option<&str>) -> String {
    with_version(checker.name(), version)
}

/// A name with its version, if known.
pub fn with_version(name: &str, version: Option<&str>) -> String {
    match version {
        Some(version) => format!("{name} {version}"),
        None => name.into(),
    }
}

/// A percentile bound: `≤ 5 ms`, `> 1 s` past the last bucket, `-` without one.
fn bound(seconds: Option<f64>) -> String {
    match seconds {
        Some(seconds) if seconds.is_finite() => {
            format!("≤ {}", crate::table::micros(seconds * 1e6))
        }
        Some(_) => "> 1 s".into(),
        None => "-".into(),
    }
}

/// A share as a percentage.
fn share(value: Option<f64>) -> String {
    value.map_or("-".into(), |share| format!("{:.2}%", share * 100.0))
}

/// Milliseconds.
fn millis(value: Option<f64>) -> String {
    value.map_or("-".into(), |ms| format!("{ms:.0} ms"))
}

/// `p50 / max` in milliseconds.
fn pair(p50: Option<f64>, max: Option<f64>) -> String {
    match (p50, max) {
        (None, None) => "-".into(),
        _ => format!("{} / {}", millis(p50), millis(max)),
    }
}

/// A number with `decimals` decimals, or `-`.
pub fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".into(), |value| format!("{value:.decimals$}"))
}

/// Bytes with a readable unit.
fn size(bytes: Option<f64>) -> String {
    match bytes {
        None => "-".into(),
        Some(b) if b.abs() >= 1024.0 * 1024.0 => format!("{:.1} MiB", b / (1024.0 * 1024.0)),
        Some(b) if b.abs() >= 1024.0 => format!("{:.1} KiB", b / 1024.0),
        Some(b) => format!("{b:.0} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_distinct_loopback_addresses_without_0_or_255() {
        assert_eq!(target_address(0), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(target_address(253), Ipv4Addr::new(127, 0, 0, 254));
        assert_eq!(target_address(254), Ipv4Addr::new(127, 0, 1, 1));
        assert_eq!(target_address(19_999), Ipv4Addr::new(127, 0, 78, 188));
        assert_eq!(target_address(254 * 256), Ipv4Addr::new(127, 1, 0, 1));
        let addresses: std::collections::HashSet<Ipv4Addr> =
            (0..100_000).map(target_address).collect();
        assert_eq!(addresses.len(), 100_000);
        assert!(
            addresses
                .iter()
                .all(|a| a.is_loopback() && ![0, 255].contains(&a.octets()[3]))
        );
    }

    #[test]
    fn haproxy_gets_one_server_line_per_target() {
        let servers = [
            SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 4000),
            SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 4000),
        ];
        let config = haproxy_config(&servers, Path::new("/tmp/x/haproxy.sock"), 20_000);
        assert!(config.contains("\n    server s1 127.0.0.2:4000 check inter 1000ms\n"));
        assert!(config.contains("\n    ulimit-n 20000\n    no strict-limits\n"));
        assert!(config.contains("\n    stats socket /tmp/x/haproxy.sock mode 600\n"));
        assert!(config.contains("\ndefaults\n    mode tcp\n"));
        assert_eq!(config.matches(" check inter ").count(), 2);
    }

    fn thread(tid: u32, name: &str, millis: u64) -> ThreadCpu {
        ThreadCpu {
            tid,
            name: name.into(),
            cpu: CpuTime {
                user: Duration::from_millis(millis),
                system: Duration::ZERO,
            },
        }
    }

    #[test]
    fn thread_shares_group_by_name_and_count_the_exited() {
        let before = [
            thread(1, "main", 100),
            thread(2, "w", 0),
            thread(3, "gone", 50),
        ];
        let after = [
            thread(1, "main", 300),
            thread(2, "w", 100),
            thread(4, "w", 100),
        ];
        let total = CpuTime {
            user: Duration::from_millis(500),
            system: Duration::ZERO,
        };
        let shares = thread_shares(&before, &after, total, 1000.0);
        let find = |name: &str| shares.iter().find(|s| s.name == name).unwrap();
        assert_eq!((find("main").cpu_s, find("main").threads), (0.2, 1));
        assert_eq!((find("w").cpu_s, find("w").threads), (0.2, 2));
        assert!((find("(exited)").cpu_s - 0.1).abs() < 1e-9);
        assert!((find("w").us_per_unit - 200.0).abs() < 1e-9);
        assert!(describe_shares(&shares, "check").contains("w ×2 200.0 µs/check"));
    }

    #[test]
    fn names_and_units() {
        assert_eq!(row_name(Checker::Haproxy, Some("2.6.12")), "HAProxy 2.6.12");
        assert_eq!(row_name(Checker::TcpChecker, None), "tcp-checker serve");
        assert_eq!(bound(Some(0.05)), "≤ 50.0 ms");
        assert_eq!(bound(Some(f64::INFINITY)), "> 1 s");
        assert_eq!(size(Some(26.5 * 1024.0 * 1024.0)), "26.5 MiB");
        assert_eq!(memory_per_target(12_000, 2_000, 20_000), 512.0);
    }
}
