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
use crate::comparison::{
    Column, Comparison, CpuMedians, CpuUse, Goal, Medians, Peer, Row, Run, Side,
};
use crate::cpu_time::CpuTime;
use crate::daemon::{self, Daemon, TempDir};
use crate::exposition::{self, Histogram};
use crate::http_load::{Connection, Response};
use crate::interrupt;
use crate::listener::Listener;
use crate::procfs::{self, TcpCounters, ThreadCpu};
use crate::statistics::median;

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
/// HAProxy's name in the tables.
const HAPROXY_NAME: &str = "HAProxy";
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

    /// The version of the `tcp-checker` binary, as it says it.
    pub fn tcp_checker_version(&self) -> Option<String> {
        daemon::version(&self.tcp_checker, &["--version"])
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

/// Timed GETs of `/metrics` in both formats.
#[derive(Clone, Debug, Serialize)]
pub struct MetricsTimes {
    /// The Prometheus text format.
    pub text: RenderTimes,
    /// As Prometheus asks for it: OpenMetrics.
    pub openmetrics: RenderTimes,
}

impl MetricsTimes {
    /// The longest GET of either format, milliseconds.
    fn max_ms(&self) -> f64 {
        self.text.max_ms.max(self.openmetrics.max_ms)
    }
}

/// A window of a run, and the checks counted in it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Window {
    /// Its length, seconds.
    pub length_s: f64,
    /// The checks made in it.
    pub checks: u64,
    /// What counted them.
    pub counted_by: String,
}

/// A checker's resident memory (`VmRSS`).
#[derive(Clone, Debug, Serialize)]
pub struct Memory {
    /// At the end of the window (for tcp-checker serve, 10 s after a scrape), KiB.
    pub rss_kib: u64,
    /// Right after a scrape of `/metrics` (tcp-checker serve only), KiB.
    pub after_scrape_kib: Option<u64>,
    /// Of the same checker without targets, KiB.
    pub baseline_kib: u64,
    /// `(rss - baseline) / targets`, bytes.
    pub per_target_bytes: f64,
}

impl Memory {
    /// The memory of a checker of `targets` targets: `rss_kib` at the end of the window,
    /// `after_scrape_kib` after the next scrape, `baseline_kib` without targets.
    fn new(
        rss_kib: u64,
        after_scrape_kib: Option<u64>,
        baseline_kib: u64,
        targets: usize,
    ) -> Memory {
        Memory {
            rss_kib,
            after_scrape_kib,
            baseline_kib,
            per_target_bytes: (rss_kib as f64 - baseline_kib as f64) * 1024.0
                / targets.max(1) as f64,
        }
    }
}

/// A checker's checks over the window they are counted in.
#[derive(Clone, Debug, Serialize)]
pub struct Checks {
    /// The window, and the checks counted in it.
    pub window: Window,
    /// `window.checks / window.length_s`.
    pub per_s: f64,
    /// Of the checks, those that found the port open (tcp-checker serve's own count).
    pub open: Option<u64>,
    /// How late they started (tcp-checker serve only).
    pub lateness: Option<Lateness>,
}

/// What a checker's run measured besides [`Run`]'s own: its checks, its memory and
/// `/metrics`.
#[derive(Clone, Debug, Serialize)]
pub struct CheckerMeasures {
    /// Its checks.
    pub checks: Checks,
    /// Sockets that connected, per second, by the kernel's `ActiveOpens` over the CPU window.
    pub kernel_connects_per_s: f64,
    /// The window of the CPU time (between the scrapes, for tcp-checker serve), and the checks
    /// made in it: the run's CPU time is per those.
    pub cpu_window: Window,
    /// The resident memory of the process.
    pub memory: Memory,
    /// `/metrics` in the Prometheus text format and as Prometheus asks for it (tcp-checker
    /// serve only).
    pub metrics: Option<MetricsTimes>,
    /// Connections the listener's application accepted from the checker's start to the end of
    /// its measurements, while it ran.
    pub accepted_running: u64,
}

/// One checker's run with the targets; its `accepted` counts the connections accepted from its
/// start until 300 ms after it stopped.
pub type CheckerRun = Run<CheckerMeasures>;

/// What went wrong in a run of tcp-checker serve besides connections accepted: checks that did
/// not find the port open.
fn serve_failure(run: &CheckerRun) -> Option<String> {
    let checks = &run.measured.checks;
    let open = checks.open.filter(|&open| open < checks.window.checks)?;
    Some(format!(
        "round {}: {open} of tcp-checker serve's {} checks found the port open",
        run.round, checks.window.checks
    ))
}

/// The medians of timed GETs of `/metrics` in one format over the runs.
#[derive(Debug, Serialize)]
pub struct RenderMedians {
    /// Median of the runs' median times, milliseconds.
    pub p50_ms: f64,
    /// The longest of every run, milliseconds.
    pub max_ms: f64,
    /// Median body size, bytes.
    pub body_bytes: f64,
}

impl RenderMedians {
    /// The medians of `times`; `None` if there are none.
    fn of(times: &[&RenderTimes]) -> Option<RenderMedians> {
        Some(RenderMedians {
            p50_ms: median(times.iter().map(|t| t.p50_ms).collect())?,
            max_ms: times.iter().map(|t| t.max_ms).reduce(f64::max)?,
            body_bytes: median(times.iter().map(|t| t.body_bytes as f64).collect())?,
        })
    }
}

/// The medians of the `/metrics` GETs of both formats over the runs.
#[derive(Debug, Serialize)]
pub struct MetricsMedians {
    /// The Prometheus text format.
    pub text: RenderMedians,
    /// OpenMetrics.
    pub openmetrics: RenderMedians,
}

impl MetricsMedians {
    /// The medians of the runs that timed `/metrics`; `None` if none did.
    fn of(runs: &[&CheckerRun]) -> Option<MetricsMedians> {
        let times: Vec<&MetricsTimes> = runs
            .iter()
            .filter_map(|run| run.measured.metrics.as_ref())
            .collect();
        let of = |format: fn(&MetricsTimes) -> &RenderTimes| {
            RenderMedians::of(&times.iter().map(|t| format(t)).collect::<Vec<_>>())
        };
        Some(MetricsMedians {
            text: of(|t| &t.text)?,
            openmetrics: of(|t| &t.openmetrics)?,
        })
    }
}

/// The medians of the runs' lateness bounds.
#[derive(Debug, Serialize)]
pub struct LatenessMedians {
    /// Median bound of the lateness's median, seconds.
    pub p50_at_most_s: Option<f64>,
    /// Median bound of its 99th percentile, seconds.
    pub p99_at_most_s: Option<f64>,
    /// Median share of checks more than 50 ms late.
    pub over_50ms: Option<f64>,
}

/// The medians of the runs' resident memory.
#[derive(Debug, Serialize)]
pub struct MemoryMedians {
    /// Median resident memory, KiB.
    pub rss_kib: Option<f64>,
    /// Median resident memory right after a scrape, KiB.
    pub after_scrape_kib: Option<f64>,
    /// Median memory per target, bytes.
    pub per_target_bytes: Option<f64>,
}

/// One checker's medians over the rounds.
#[derive(Debug, Serialize)]
pub struct CheckerMedians {
    /// Median checks per second.
    pub checks_per_s: Option<f64>,
    /// How late the checks started (tcp-checker serve only).
    pub lateness: LatenessMedians,
    /// How long `/metrics` took (tcp-checker serve only).
    pub metrics: Option<MetricsMedians>,
    /// The resident memory.
    pub memory: MemoryMedians,
    /// The CPU use, per check.
    pub cpu: CpuMedians,
    /// The most connections accepted in one run while the checker ran (the row's
    /// `accepted_max` counts its stop too).
    pub accepted_running_max: Option<u64>,
}

impl Medians for CheckerMedians {
    type Measured = CheckerMeasures;

    fn of(runs: &[&CheckerRun]) -> CheckerMedians {
        let of = |value: &dyn Fn(&CheckerMeasures) -> Option<f64>| {
            median(runs.iter().filter_map(|run| value(&run.measured)).collect())
        };
        CheckerMedians {
            checks_per_s: of(&|run| Some(run.checks.per_s)),
            lateness: LatenessMedians {
                p50_at_most_s: of(&|run| run.checks.lateness.as_ref()?.p50_at_most_s),
                p99_at_most_s: of(&|run| run.checks.lateness.as_ref()?.p99_at_most_s),
                over_50ms: of(&|run| run.checks.lateness.as_ref()?.over_50ms),
            },
            metrics: MetricsMedians::of(runs),
            memory: MemoryMedians {
                rss_kib: of(&|run| Some(run.memory.rss_kib as f64)),
                after_scrape_kib: of(&|run| Some(run.memory.after_scrape_kib? as f64)),
                per_target_bytes: of(&|run| Some(run.memory.per_target_bytes)),
            },
            cpu: CpuMedians::of(runs),
            accepted_running_max: runs.iter().map(|run| run.measured.accepted_running).max(),
        }
    }
}

/// One checker's row.
pub type CheckerRow = Row<CheckerMedians>;

/// The targets of the `serve` scenario, and how long each checker runs with them.
#[derive(Debug, Serialize)]
pub struct ServeTargets {
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
}

/// The `serve` scenario's results (and `--json` output); its failures: a check of tcp-checker
/// serve accepted, or not open.
pub type Serve = Comparison<ServeTargets, CheckerMeasures, CheckerMedians>;

/// `tcp-checker serve` with the targets, then HAProxy with the same (if installed), in each of
/// the rounds.
pub fn serve(args: &Args, stage: &Stage<'_>) -> anyhow::Result<Serve> {
    let count = args.targets;
    let port = stage.port();
    let addresses: Vec<SocketAddrV4> = (0..count)
        .map(|index| SocketAddrV4::new(target_address(index), port))
        .collect();
    let haproxy = Peer::find(
        "serve",
        HAPROXY_NAME,
        &HAPROXY,
        &["-v"],
        "haproxy is not installed (not found in PATH): `apt-get install --no-install-recommends \
         haproxy` adds it",
    );
    let folder = TempDir::new()?;
    let targets_text: String = addresses.iter().map(|a| format!("{a}\n")).collect();
    let mut runs = Vec::new();
    for round in 1..=args.runs() {
        // Odd rounds start with tcp-checker serve, even ones with HAProxy, so that neither
        // always runs second, after the other has warmed the machine up.
        let mut order = vec![Side::TcpChecker];
        if haproxy.program.is_some() {
            order.insert(usize::from(round % 2 == 1), Side::Peer);
        }
        for checker in order {
            eprintln!(
                "serve: round {round}: {}, {count} targets every {INTERVAL:?}: warm-up \
                 {WARM_UP:?}, window {:?}",
                checker.name(HAPROXY_NAME),
                args.window()
            );
            runs.push(match (checker, &haproxy.program) {
                (Side::Peer, Some(haproxy)) => {
                    measure_haproxy(args, stage, haproxy, &folder, &addresses, round)?
                }
                _ => measure_tcp_checker(args, stage, &targets_text, round)?,
            });
        }
    }
    let targets = ServeTargets {
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
    };
    let goals = |rows: &[CheckerRow]| serve_goals(count, rows);
    Comparison::new(args, stage, targets, haproxy, runs, goals, serve_failure)
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
    let rss_after_scrape_kib = procfs::rss_kib(pid)?;
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
    let threads = thread_shares(&start.threads, &end.threads, cpu, checks_in_cpu_window);
    Ok(CheckerRun {
        side: Side::TcpChecker,
        round,
        cpu: CpuUse::new(cpu, cpu_window, checks_in_cpu_window, threads),
        accepted: stage.listener.accepted() - accepted_before,
        measured: CheckerMeasures {
            checks: Checks {
                window: Window {
                    length_s: window,
                    checks: checks as u64,
                    counted_by: format!("its own {CHECKS}, summed over the targets"),
                },
                per_s: checks_per_s,
                open: Some((last.open - first.open).max(0.0) as u64),
                lateness: Some(Lateness::of(&last.lateness.since(&first.lateness))),
            },
            kernel_connects_per_s: connects as f64 / cpu_window,
            cpu_window: Window {
                length_s: cpu_window,
                checks: checks_in_cpu_window as u64,
                counted_by: cpu_counted_by.into(),
            },
            memory: Memory::new(
                rss_kib,
                Some(rss_after_scrape_kib),
                baseline_rss_kib,
                args.targets,
            ),
            metrics: Some(MetricsTimes {
                text: metrics_text,
                openmetrics: metrics_openmetrics,
            }),
            accepted_running,
        },
    })
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
    let counted = Window {
        length_s: window,
        checks,
        counted_by: counted_by.into(),
    };
    Ok(CheckerRun {
        side: Side::Peer,
        round,
        cpu: CpuUse::new(cpu, window, checks as f64, Vec::new()),
        accepted: stage.listener.accepted() - accepted_before,
        measured: CheckerMeasures {
            checks: Checks {
                window: counted.clone(),
                per_s: checks as f64 / window,
                open: None,
                lateness: None,
            },
            kernel_connects_per_s: checks as f64 / window,
            cpu_window: counted,
            memory: Memory::new(rss_kib, None, baseline_rss_kib, servers.len()),
            metrics: None,
            accepted_running,
        },
    })
}

/// The targets for the serve scenario, judged on the medians.
fn serve_goals(targets: usize, rows: &[CheckerRow]) -> Vec<Goal> {
    let find = |side| rows.iter().find(|row| row.side == side);
    let (Some(row), haproxy) = (find(Side::TcpChecker), find(Side::Peer)) else {
        return Vec::new();
    };
    let ours = &row.medians;
    let due = targets as f64 / INTERVAL.as_secs_f64();
    let rate = ours.checks_per_s.unwrap_or(0.0);
    let p99 = ours.lateness.p99_at_most_s;
    let (text, openmetrics) = match &ours.metrics {
        Some(metrics) => (Some(&metrics.text), Some(&metrics.openmetrics)),
        None => (None, None),
    };
    let render = ours
        .metrics
        .as_ref()
        .map(|metrics| metrics.text.p50_ms.max(metrics.openmetrics.p50_ms));
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
                share(ours.lateness.over_50ms)
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
                millis(text.map(|t| t.p50_ms)),
                millis(text.map(|t| t.max_ms)),
                millis(openmetrics.map(|t| t.p50_ms)),
                millis(openmetrics.map(|t| t.max_ms)),
                size(text.map(|t| t.body_bytes))
            ),
        },
    ];
    let cpu = |row: Option<&CheckerRow>| row.and_then(|row| row.medians.cpu.us_per_unit);
    goals.push(Goal {
        goal: "CPU per check at most HAProxy's".into(),
        met: cpu(Some(row)).zip(cpu(haproxy)).map(|(a, b)| a <= b),
        figures: match (cpu(Some(row)), cpu(haproxy)) {
            (Some(a), Some(b)) => format!("{a:.1} µs against HAProxy's {b:.1} µs ({:.2}x)", a / b),
            (Some(a), None) => format!("{a:.1} µs; HAProxy did not run"),
            _ => "not measured".into(),
        },
    });
    goals.push(
        row.accepts_nothing(
            "tcp-checker serve",
            haproxy
                .and_then(|row| row.accepted_max)
                .map(|a| format!("HAProxy: at most {a}")),
        ),
    );
    goals
}

/// The `serve` scenario as text.
pub fn render_serve(serve: &Serve) -> String {
    let targets = &serve.scenario;
    let mut text = format!(
        "serve scenario: {} targets ({} to {}) checked every {} s by {}{}: each warmed up {} s, \
         then measured over {} s; medians of the rounds shown.\n",
        targets.targets,
        targets.target_range.0,
        targets.target_range.1,
        targets.interval_s,
        serve.sides_in_rounds(),
        if serve.rows.len() > 1 {
            " (which goes first alternates)"
        } else {
            ""
        },
        targets.warm_up_s,
        targets.window_s
    );
    text.push_str(&serve.describe_setup());
    // Lateness is tcp-checker serve's own figure; HAProxy has none.
    let lateness = |row: &CheckerRow, figure: fn(&LatenessMedians) -> String| match row.side {
        Side::TcpChecker => figure(&row.medians.lateness),
        Side::Peer => "-".into(),
    };
    let rss = |row: &CheckerRow| {
        let memory = &row.medians.memory;
        let rss = size(memory.rss_kib.map(|kib| kib * 1024.0));
        match memory.after_scrape_kib {
            Some(after) => format!("{rss} / {}", size(Some(after * 1024.0))),
            None => rss,
        }
    };
    let accepted = |row: &CheckerRow| {
        let running = row.medians.accepted_running_max.map(|a| a as f64);
        let with_stop = row.accepted_max.map(|a| a as f64);
        format!("{} / {}", number(running, 0), number(with_stop, 0))
    };
    let columns: [Column<'_, CheckerRow>; 11] = [
        ("checks/s", &|row| number(row.medians.checks_per_s, 0)),
        ("lateness p50 / p99", &|row| {
            lateness(row, |l| {
                format!("{} / {}", bound(l.p50_at_most_s), bound(l.p99_at_most_s))
            })
        }),
        ("> 50 ms late", &|row| lateness(row, |l| share(l.over_50ms))),
        ("/metrics text p50 / max", &|row| {
            pair(row.medians.metrics.as_ref().map(|metrics| &metrics.text))
        }),
        ("/metrics OpenMetrics p50 / max", &|row| {
            pair(
                row.medians
                    .metrics
                    .as_ref()
                    .map(|metrics| &metrics.openmetrics),
            )
        }),
        ("body (text)", &|row| {
            size(
                row.medians
                    .metrics
                    .as_ref()
                    .map(|metrics| metrics.text.body_bytes),
            )
        }),
        ("RSS / after a scrape", &rss),
        ("memory per target", &|row| {
            size(row.medians.memory.per_target_bytes)
        }),
        ("CPU µs/check", &|row| {
            number(row.medians.cpu.us_per_unit, 1)
        }),
        ("CPU cores", &|row| number(row.medians.cpu.cores, 2)),
        ("accepted: running / with its stop", &accepted),
    ];
    text.push_str(&serve.rows_table("checker", &columns));
    let run_lateness = |run: &CheckerRun| {
        let lateness = run.measured.checks.lateness.as_ref();
        lateness.map_or("-".into(), |l| bound(l.p99_at_most_s))
    };
    let run_columns: [Column<'_, CheckerRun>; 8] = [
        ("checks/s", &|run| {
            format!("{:.0}", run.measured.checks.per_s)
        }),
        ("lateness p99", &run_lateness),
        ("/metrics max", &|run| {
            millis(run.measured.metrics.as_ref().map(MetricsTimes::max_ms))
        }),
        ("RSS", &|run| {
            size(Some(run.measured.memory.rss_kib as f64 * 1024.0))
        }),
        ("memory per target", &|run| {
            size(Some(run.measured.memory.per_target_bytes))
        }),
        ("CPU µs/check", &|run| {
            format!("{:.1}", run.cpu.us_per_unit)
        }),
        ("CPU cores", &|run| format!("{:.2}", run.cpu.cores)),
        ("accepted", &|run| {
            format!("{} / {}", run.measured.accepted_running, run.accepted)
        }),
    ];
    text.push_str(&serve.runs_table("checker", &run_columns, &serve_notes(serve)));
    text
}

/// How each column was measured, each thread's share, each run's counts, what went wrong, and
/// the goals.
fn serve_notes(serve: &Serve) -> Vec<String> {
    let method = vec![
        format!(
            "checks/s: tcp-checker serve's by its own {CHECKS} (every target's, summed) between \
             two scrapes of /metrics {} s apart; HAProxy's by the kernel's count of connects \
             (ActiveOpens) over the same length of window. lateness: how long after it was due \
             each check started, from the difference of the two scrapes of the service's \
             {LATENESS} histogram, each percentile shown as the bucket bound it is at most \
             (HAProxy has no such figure).",
            serve.scenario.window_s
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
    serve.notes(method, "check", |run| {
        let (checks, cpu) = (&run.measured.checks.window, &run.measured.cpu_window);
        let cpu_window = if cpu == checks {
            "the same window".to_owned()
        } else {
            format!(
                "{:.2} s for {} checks, counted by {}",
                cpu.length_s, cpu.checks, cpu.counted_by
            )
        };
        Some(format!(
            "round {}, {}: {} checks over {:.2} s, counted by {}; CPU {:.2} s over {cpu_window}.",
            run.round,
            run.side.name(HAPROXY_NAME),
            checks.checks,
            checks.length_s,
            checks.counted_by,
            run.cpu.time_s,
        ))
    })
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

/// `p50 / max` in milliseconds, or `-`.
fn pair(times: Option<&RenderMedians>) -> String {
    times.map_or("-".into(), |times| {
        format!(
            "{} / {}",
            millis(Some(times.p50_ms)),
            millis(Some(times.max_ms))
        )
    })
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
        assert_eq!(bound(Some(0.05)), "≤ 50.0 ms");
        assert_eq!(bound(Some(f64::INFINITY)), "> 1 s");
        assert_eq!(size(Some(26.5 * 1024.0 * 1024.0)), "26.5 MiB");
        let memory = Memory::new(12_000, None, 2_000, 20_000);
        assert_eq!(memory.per_target_bytes, 512.0);
    }
}
