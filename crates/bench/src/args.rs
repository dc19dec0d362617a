//! The command line: what to measure, and the hidden arguments of a child run.

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Serialize;

/// Checks per run by default.
const DEFAULT_CHECKS: u64 = 200_000;
/// Checks of the `leak` scenario by default.
const DEFAULT_LEAK_CHECKS: u64 = 1_000_000;
/// Checks per run of the `rtt` scenario by default: at 100 in flight and a 50 ms round trip,
/// 2000 checks a second, so 10 s a run.
const DEFAULT_RTT_CHECKS: u64 = 20_000;
/// The `rtt` scenario's round trip by default, milliseconds.
const DEFAULT_RTT_MS: u64 = 50;
/// Checks per run of `--quick`.
const QUICK_CHECKS: u64 = 2_000;
/// In-flight levels by default.
const DEFAULT_CONCURRENCY: [usize; 3] = [100, 1_000, 10_000];
/// Runs of each (contender, concurrency) by default, and of the scan.
const DEFAULT_RUNS: usize = 3;
/// One connection in this many is captured for the delay by default.
const DEFAULT_DELAY_SAMPLE: u16 = 16;
/// Targets of the `serve` scenario by default.
const DEFAULT_TARGETS: usize = 20_000;
/// The most targets `--targets` takes (`tcp-checker serve`'s own limit for a config file).
const MAX_TARGETS: usize = 1_000_000;
/// The measured window of the `serve` and `probe` scenarios by default, seconds.
const DEFAULT_WINDOW_S: u64 = 10;
/// Concurrent clients of the `probe` scenario by default.
const DEFAULT_CLIENTS: usize = 16;
/// The most clients `--clients` takes (a thread each).
const MAX_CLIENTS: usize = 1_000;

/// Benchmark of tcp-shaker's engine against a minimal floor loop and std full connects, all
/// checking one open port of a local listener (127.0.0.1; over a veth pair with `--scenario
/// veth`; across a real round trip with `--scenario rtt`), each run in a child process.
#[derive(Debug, Parser)]
#[command(name = "shaker-bench", version)]
pub struct Args {
    /// Checks per run [default: 200000; 1000000 with --scenario leak; 20000 with --scenario
    /// rtt; 2000 with --quick].
    #[arg(short = 'n', long = "checks", value_name = "N")]
    checks: Option<u64>,

    /// Checks in flight, one level per value [default: 100,1000,10000; 100 with --quick]. The
    /// leak and scan scenarios use the highest level.
    #[arg(short, long, value_name = "C,...", value_delimiter = ',')]
    concurrency: Option<Vec<usize>>,

    /// Contenders to run, interleaved in this order in every round.
    #[arg(
        long,
        value_name = "NAME,...",
        value_delimiter = ',',
        default_value = "floor,engine,std"
    )]
    pub contenders: Vec<Contender>,

    /// Runs of every (contender, concurrency); the table shows medians [default: 3; 1 with
    /// --quick or --scenario leak].
    #[arg(long, value_name = "K")]
    runs: Option<usize>,

    /// Deadline of each check, in milliseconds (as `floor.c -t`).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub timeout_ms: u64,

    /// Checks of the separate capture pass that measures the SYN-ACK-to-RST delay of each
    /// (contender, concurrency) [default: the checks per run].
    #[arg(long, value_name = "N")]
    delay_checks: Option<u64>,

    /// Capture one connection in this many (a power of two, chosen by client port in the
    /// kernel's filter) for the delay [default: 16; 1 with --quick].
    #[arg(long, value_name = "K")]
    delay_sample: Option<u16>,

    /// A smoke run: 2000 checks, 100 in flight, 1 run, every contender; exits 0 only if every
    /// engine check was open and the listener accepted nothing from the engine and floor runs.
    #[arg(long)]
    quick: bool,

    /// Instead of the loopback table, a scenario: `leak` (the engine at the highest concurrency
    /// over 1000000 checks: accepted connections and delay), `scan` (the engine checks every
    /// port of 127.0.0.1), `veth` (the table of floor and engine on the poller's path, to a
    /// listener in a network namespace of its own over a veth pair; needs root), `rtt` (the
    /// same table across a real round trip of --rtt milliseconds, between two network
    /// namespaces joined by a user-space delay line; needs root), `serve` (`tcp-checker serve`
    /// checking --targets targets every second, then HAProxy checking the same, if installed)
    /// or `probe` (its /probe under --clients clients, then blackbox_exporter's, if installed).
    /// With --quick, a smoke run of the table scenarios.
    #[arg(long, value_name = "NAME")]
    pub scenario: Option<Scenario>,

    /// The round trip of `--scenario rtt`, in milliseconds (half of it each way).
    #[arg(long = "rtt", value_name = "MS", default_value_t = DEFAULT_RTT_MS)]
    pub rtt_ms: u64,

    /// Targets of `--scenario serve`, each a distinct loopback address (127.0.0.1, 127.0.0.2,
    /// ...) on the listener's port, checked every second.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_TARGETS)]
    pub targets: usize,

    /// The measured window of `--scenario serve` (per checker, after its warm-up) and of
    /// `--scenario probe` (per exporter), in seconds.
    #[arg(long = "window", value_name = "SECONDS", default_value_t = DEFAULT_WINDOW_S)]
    pub window_s: u64,

    /// Concurrent HTTP/1.1 keep-alive clients of `--scenario probe`.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CLIENTS)]
    pub clients: usize,

    /// The `tcp-checker` binary that `--scenario serve` and `--scenario probe` run [default:
    /// the one beside this program, as `cargo build --release` puts it].
    #[arg(long, value_name = "PATH")]
    pub tcp_checker: Option<PathBuf>,

    /// Print the results as JSON (stable field names) instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Internal: run one contender in this process and print its report (as the benchmark
    /// does in its child processes).
    #[arg(long, hide = true, value_name = "CONTENDER")]
    pub child: Option<ChildKind>,

    /// Internal: the listener's address, for `--child` (the scan checks every port of its IP).
    #[arg(long, hide = true, value_name = "IP:PORT")]
    pub target: Option<SocketAddrV4>,

    /// Internal: event loops (checkers) of an engine or scan child [default: 1].
    #[arg(long, hide = true)]
    pub loops: Option<usize>,
}

/// One of the compared checkers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Contender {
    /// The minimal epoll loop of raw syscalls (the technique of `floor.c -m rst -b 256`).
    Floor,
    /// The tcp-shaker library: one checker, one batch.
    Engine,
    /// `std::net::TcpStream::connect_timeout`, then drop (FIN), on worker threads.
    Std,
}

impl Contender {
    /// The contender's name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Contender::Floor => "floor",
            Contender::Engine => "engine",
            Contender::Std => "std",
        }
    }

    /// Whether the contender closes with RST, so that its SYN-ACK-to-RST delay means something
    /// and its checks must never be accepted.
    pub fn half_open(self) -> bool {
        self != Contender::Std
    }
}

/// What a child process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ChildKind {
    /// [`Contender::Floor`].
    Floor,
    /// [`Contender::Engine`].
    Engine,
    /// [`Contender::Std`].
    Std,
    /// The engine checking every port 1-65535 of the target's IP address.
    Scan,
}

impl From<Contender> for ChildKind {
    fn from(contender: Contender) -> ChildKind {
        match contender {
            Contender::Floor => ChildKind::Floor,
            Contender::Engine => ChildKind::Engine,
            Contender::Std => ChildKind::Std,
        }
    }
}

/// A scenario of `--scenario`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Many checks at high concurrency: accepted connections must stay 0.
    Leak,
    /// Every port of 127.0.0.1.
    Scan,
    /// The table over a veth pair, to a listener in a network namespace: the poller's path.
    Veth,
    /// The table across a real round trip (`--rtt`), between two network namespaces joined by
    /// a user-space delay line: the poller's path, with the SYN-ACK arriving late.
    Rtt,
    /// `tcp-checker serve` with `--targets` targets at a 1 s interval, then HAProxy with the
    /// same: checks/s, schedule lateness, `/metrics` render time, memory and CPU per check.
    Serve,
    /// `/probe` of `tcp-checker serve` under a load of `--clients` clients, then
    /// blackbox_exporter's: probes/s and CPU per probe.
    Probe,
}

impl Args {
    /// Checks per run, after the mode's default.
    pub fn checks(&self) -> u64 {
        self.checks.unwrap_or(match (self.quick, self.scenario) {
            (true, _) => QUICK_CHECKS,
            (false, Some(Scenario::Leak)) => DEFAULT_LEAK_CHECKS,
            (false, Some(Scenario::Rtt)) => DEFAULT_RTT_CHECKS,
            (false, _) => DEFAULT_CHECKS,
        })
    }

    /// In-flight levels, after the mode's default, in ascending order without repeats.
    pub fn concurrency(&self) -> Vec<usize> {
        let mut levels = match (&self.concurrency, self.quick) {
            (Some(levels), _) => levels.clone(),
            (None, true) => vec![100],
            (None, false) => DEFAULT_CONCURRENCY.to_vec(),
        };
        levels.sort_unstable();
        levels.dedup();
        levels
    }

    /// The highest in-flight level: the scenarios' concurrency.
    pub fn highest_concurrency(&self) -> usize {
        self.concurrency().last().copied().unwrap_or(1)
    }

    /// Runs per (contender, concurrency), after the mode's default.
    pub fn runs(&self) -> usize {
        self.runs
            .unwrap_or(match (self.quick, self.scenario) {
                (true, _) | (false, Some(Scenario::Leak)) => 1,
                (false, _) => DEFAULT_RUNS,
            })
            .max(1)
    }

    /// Checks of each delay capture pass.
    pub fn delay_checks(&self) -> u64 {
        self.delay_checks.unwrap_or_else(|| self.checks())
    }

    /// One connection in this many is captured.
    pub fn delay_sample(&self) -> u16 {
        self.delay_sample
            .unwrap_or(if self.quick { 1 } else { DEFAULT_DELAY_SAMPLE })
    }

    /// The round trip of the `rtt` scenario.
    pub fn rtt(&self) -> Duration {
        Duration::from_millis(self.rtt_ms)
    }

    /// The measured window of the `serve` and `probe` scenarios.
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_s)
    }

    /// Checks the values that clap cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        let sample = self.delay_sample();
        anyhow::ensure!(
            sample.is_power_of_two() && sample <= 1 << 14,
            "--delay-sample must be a power of two up to 16384, not {sample}"
        );
        anyhow::ensure!(self.checks() > 0, "-n must be at least 1");
        anyhow::ensure!(
            self.concurrency().first().is_some_and(|&lowest| lowest > 0),
            "--concurrency needs levels of at least 1"
        );
        anyhow::ensure!(self.timeout_ms > 0, "--timeout-ms must be at least 1");
        anyhow::ensure!(
            (1..=MAX_TARGETS).contains(&self.targets),
            "--targets must be from 1 to {MAX_TARGETS}"
        );
        anyhow::ensure!(self.window_s > 0, "--window must be at least 1 second");
        anyhow::ensure!(
            (1..=MAX_CLIENTS).contains(&self.clients),
            "--clients must be from 1 to {MAX_CLIENTS}"
        );
        let longest = 2 * shaker_wire::delay_line::MAX_ONE_WAY;
        anyhow::ensure!(
            self.rtt() <= longest,
            "--rtt must be at most {} ms",
            longest.as_millis()
        );
        anyhow::ensure!(
            self.scenario != Some(Scenario::Rtt) || self.timeout_ms > self.rtt_ms,
            "--timeout-ms ({}) must be longer than the round trip of --rtt ({}), or every check \
             times out",
            self.timeout_ms,
            self.rtt_ms
        );
        Ok(())
    }
}
