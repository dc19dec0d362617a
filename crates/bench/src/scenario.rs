//! The scenarios of `--scenario`: `leak` (many checks at high concurrency, under a sampled
//! capture: nothing may be accepted) and `scan` (every port of 127.0.0.1).

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::args::{Args, ChildKind};
use crate::bench::{self, Setup};
use crate::child::Request;
use crate::delay;
use crate::listener::Listener;
use crate::procfs;
use crate::server::Server;
use crate::statistics::median;
use crate::summary::{DelayResult, RunResult, describe_failures};
use crate::table::{markdown, micros};

/// The `leak` scenario's results (and `--json` output).
#[derive(Debug, Serialize)]
pub struct Leak {
    /// Where and how it ran.
    pub setup: Setup,
    /// Checks per run.
    pub checks: u64,
    /// Checks in flight.
    pub in_flight: usize,
    /// How the delay was measured.
    pub delay_method: String,
    /// Each run, with the delay of its own capture.
    pub runs: Vec<LeakRun>,
    /// The 1-minute load average at the end.
    pub load_average_after: f64,
    /// True if every check was open, nothing was accepted and no final ACK was seen.
    pub ok: bool,
}

/// One run of the `leak` scenario.
#[derive(Debug, Serialize)]
pub struct LeakRun {
    /// The run.
    pub run: RunResult,
    /// Its delays, from a capture of a sample of its connections.
    pub delay: DelayResult,
}

/// The engine at the highest concurrency over many checks, each run under a sampled capture.
pub fn leak(args: &Args, listener: &Listener, setup: Setup) -> anyhow::Result<Leak> {
    let request = Request {
        kind: ChildKind::Engine,
        target: listener.address(),
        checks: args.checks(),
        in_flight: args.highest_concurrency(),
        loops: 1,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    let sample = args.delay_sample();
    let mut runs = Vec::new();
    for round in 1..=args.runs() {
        eprintln!(
            "leak: run {round}: {} checks, {} in flight",
            request.checks, request.in_flight
        );
        let mut delay = bench::delay_pass(Server::loopback(listener), &request, sample)?;
        let run = match delay.pass.take() {
            Some(run) => run,
            None => bench::measure(listener, &request)?,
        };
        runs.push(LeakRun { run, delay });
    }
    let ok = runs.iter().all(|leak| {
        leak.run.all_open()
            && leak.run.accepted == 0
            && leak
                .delay
                .delays
                .as_ref()
                .is_none_or(|d| d.leaked_acks == 0)
    });
    Ok(Leak {
        setup,
        checks: request.checks,
        in_flight: request.in_flight,
        delay_method: format!(
            "capture on lo during the run itself of {} in the kernel's filter; delay = kernel \
             receive timestamp (SO_TIMESTAMPNS) of the client's RST minus that of the SYN-ACK",
            delay::describe_sample(sample)
        ),
        runs,
        load_average_after: procfs::load_average()?,
        ok,
    })
}

/// The `leak` scenario as text.
pub fn render_leak(leak: &Leak) -> String {
    let mut text = format!(
        "leak scenario: the engine, {} checks of {} at {} in flight per run.\n{} CPUs; load \
         average {:.2} before, {:.2} after.\n\n",
        leak.checks,
        leak.setup.target,
        leak.in_flight,
        leak.setup.cpus,
        leak.setup.load_average_before,
        leak.load_average_after
    );
    let columns = [
        "run",
        "checks/s",
        "CPU µs/check",
        "peak RSS",
        "open",
        "accepted",
        "SYN-ACK-to-RST p50 / p99 / max",
        "delays measured",
        "leaked ACKs",
    ];
    let rows: Vec<Vec<String>> = leak
        .runs
        .iter()
        .enumerate()
        .map(|(index, LeakRun { run, delay })| {
            let (delays, measured, leaked) = match (&delay.delays, &delay.unavailable) {
                (Some(d), _) => (
                    format!(
                        "{} / {} / {}",
                        micros(d.p50_us),
                        micros(d.p99_us),
                        micros(d.max_us)
                    ),
                    d.measured.to_string(),
                    d.leaked_acks.to_string(),
                ),
                (None, reason) => (reason.clone().unwrap_or_default(), "-".into(), "-".into()),
            };
            vec![
                (index + 1).to_string(),
                format!("{:.0}", run.checks_per_s),
                format!("{:.1}", run.cpu_us_per_check),
                format!("{:.1} MiB", run.peak_rss_kib as f64 / 1024.0),
                format!("{}/{}", run.counts.open, run.checks),
                run.accepted.to_string(),
                delays,
                measured,
                leaked,
            ]
        })
        .collect();
    text.push_str(&markdown(&columns, &rows));
    let _ = writeln!(text, "\n- SYN-ACK-to-RST delay: {}.", leak.delay_method);
    for (index, LeakRun { run, .. }) in leak.runs.iter().enumerate() {
        if !run.all_open() {
            let _ = writeln!(
                text,
                "- run {}: {}",
                index + 1,
                describe_failures(&run.counts)
            );
        }
    }
    let _ = writeln!(
        text,
        "- Verdict: {}",
        if leak.ok {
            "every check open, no connection accepted, no final ACK seen."
        } else {
            "FAILED (see the open, accepted and leaked-ACK columns)."
        }
    );
    text
}

/// The `scan` scenario's results (and `--json` output).
#[derive(Debug, Serialize)]
pub struct Scan {
    /// Where and how it ran.
    pub setup: Setup,
    /// Checks in flight.
    pub in_flight: usize,
    /// The listener's port, which must be found open.
    pub listener_port: u16,
    /// Each run.
    pub runs: Vec<ScanRun>,
    /// Median seconds from the first check to the last result, for each number of event loops.
    pub medians: Vec<ScanMedian>,
    /// The 1-minute load average at the end.
    pub load_average_after: f64,
    /// True if every run found the listener's port open and accounted for every port.
    pub ok: bool,
}

/// The median scan time with a number of event loops.
#[derive(Debug, Serialize)]
pub struct ScanMedian {
    /// Event loops (checkers) sharing the scan.
    pub loops: usize,
    /// Median seconds from the first check to the last result.
    pub scan_s: f64,
}

/// One run of the `scan` scenario.
#[derive(Debug, Serialize)]
pub struct ScanRun {
    /// Event loops (checkers) sharing the scan.
    pub loops: usize,
    /// The run (`checks` is 65535, one per port; `open_ports` what it found).
    pub run: RunResult,
    /// Ports found open on which nothing listened right after the run: a connection from an
    /// ephemeral port to the same port connects to itself (TCP simultaneous open), or a
    /// short-lived listener of another process came and went.
    pub open_but_not_listening: Vec<u16>,
}

/// The engine checks every port 1-65535 of 127.0.0.1 at the highest concurrency, with one event
/// loop and with one per CPU core (as `tcp-checker` does), in turn.
pub fn scan(args: &Args, listener: &Listener, setup: Setup) -> anyhow::Result<Scan> {
    let listener_port = listener.address().port();
    let request = |loops| Request {
        kind: ChildKind::Scan,
        target: listener.address(),
        checks: u64::from(u16::MAX),
        in_flight: args.highest_concurrency(),
        loops,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    let mut loop_counts = vec![1];
    if setup.cpus > 1 {
        loop_counts.push(setup.cpus);
    }
    let mut runs = Vec::new();
    for (round, loops) in
        (1..=args.runs()).flat_map(|round| loop_counts.iter().map(move |&l| (round, l)))
    {
        let request = request(loops);
        eprintln!(
            "scan: run {round}: ports 1-65535, {} in flight, {loops} event loop(s)",
            request.in_flight
        );
        let run = bench::measure(listener, &request)?;
        let listening = procfs::listening_ports()?;
        let open_but_not_listening = run
            .open_ports
            .iter()
            .copied()
            .filter(|port| !listening.contains(port))
            .collect();
        runs.push(ScanRun {
            loops,
            run,
            open_but_not_listening,
        });
    }
    let ok = runs.iter().all(|ScanRun { run, .. }| {
        run.open_ports.contains(&listener_port) && run.counts.total() == run.checks
    });
    let medians = loop_counts
        .iter()
        .filter_map(|&loops| {
            let times = runs.iter().filter(|scan| scan.loops == loops);
            let scan_s = median(times.map(|scan| scan.run.elapsed_s).collect())?;
            Some(ScanMedian { loops, scan_s })
        })
        .collect();
    Ok(Scan {
        setup,
        in_flight: args.highest_concurrency(),
        listener_port,
        medians,
        runs,
        load_average_after: procfs::load_average()?,
        ok,
    })
}

/// The `scan` scenario as text.
pub fn render_scan(scan: &Scan) -> String {
    let mut text = format!(
        "scan scenario: the engine checks every port 1-65535 of 127.0.0.1, {} in flight; the \
         listener is on port {}.\n{} CPUs; load average {:.2} before, {:.2} after.\n\n",
        scan.in_flight,
        scan.listener_port,
        scan.setup.cpus,
        scan.setup.load_average_before,
        scan.load_average_after
    );
    let columns = [
        "run",
        "event loops",
        "scan time",
        "process wall time",
        "CPU",
        "open ports",
        "of which not listening",
        "closed",
        "timed out",
        "errors",
    ];
    let rows: Vec<Vec<String>> = scan
        .runs
        .iter()
        .enumerate()
        .map(|(index, scan)| {
            let list = |ports: &[u16]| {
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                if ports.is_empty() {
                    "-".to_string()
                } else {
                    ports.join(", ")
                }
            };
            let run = &scan.run;
            vec![
                (index + 1).to_string(),
                scan.loops.to_string(),
                format!("{:.3} s", run.elapsed_s),
                format!("{:.3} s", run.wall_s),
                format!("{:.3} s", run.cpu_s),
                list(&run.open_ports),
                list(&scan.open_but_not_listening),
                run.counts.closed.to_string(),
                run.counts.timed_out.to_string(),
                run.counts.errors.to_string(),
            ]
        })
        .collect();
    text.push_str(&markdown(&columns, &rows));
    let _ = writeln!(
        text,
        "\n- scan time: first check started to last result, inside the child; process wall \
         time: spawning the child to reaping it (start-up and checker set-up included); CPU: \
         user + system of the child from wait4.\n- Open ports other than the listener's are \
         other listeners on this machine; \"not listening\": found open, but no socket listened \
         on the port right after the run (a check from an ephemeral port to the same port \
         connects to itself by TCP simultaneous open, or another process's listener came and \
         went)."
    );
    for ScanMedian { loops, scan_s } in &scan.medians {
        let _ = writeln!(
            text,
            "- Median scan time with {loops} event loop(s): {scan_s:.3} s."
        );
    }
    let _ = writeln!(
        text,
        "- Verdict: {}",
        if scan.ok {
            "every run found the listener's port open and accounted for every port."
        } else {
            "FAILED: a run missed the listener's port or lost checks."
        }
    );
    text
}
