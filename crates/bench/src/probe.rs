//! The `probe` scenario: `/probe?target=127.0.0.1:PORT&module=tcp_connect` of `tcp-checker
//! serve` under the load of N concurrent HTTP/1.1 keep-alive clients for a fixed time, then
//! the same load on blackbox_exporter's (`prober: tcp`, a full connect), against the same
//! listener, one after the other in each of K rounds: probes per second, the CPU time of the
//! exporter's process per probe, and the connections the listener's application accepted
//! (none from tcp-checker serve, every probe from blackbox_exporter).

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::args::Args;
use crate::bench;
use crate::comparison::{
    Column, Comparison, CpuMedians, CpuUse, Goal, Medians, Peer, Row, Run, Side,
};
use crate::daemon::{Daemon, TempDir};
use crate::http_load::{self, LoadResult};
use crate::procfs;
use crate::service::{self, Stage, number, start_tcp_checker, thread_shares};
use crate::statistics::median;

/// blackbox_exporter's name in the tables.
const BLACKBOX_NAME: &str = "blackbox_exporter";
/// The names blackbox_exporter is found by in `PATH`: Debian's, then upstream's.
const BLACKBOX: [&str; 2] = ["prometheus-blackbox-exporter", "blackbox_exporter"];
/// blackbox_exporter's configuration: the module the probes ask for.
const BLACKBOX_CONFIG: &str = "# shaker-bench --scenario probe\nmodules:\n  tcp_connect:\n    \
                               prober: tcp\n    timeout: 5s\n";
/// What a probe that found the port open says (`1` for blackbox_exporter, `1.0` for
/// tcp-checker serve).
const PROBE_SUCCESS: &str = "probe_success 1";
/// The bound: tcp-checker serve's CPU per probe at most blackbox_exporter's over this.
const CPU_RATIO_GOAL: f64 = 5.0;

/// One exporter's run under the load: `measured` is what the clients did, `cpu` the CPU time
/// of the exporter's process while they ran, per probe answered, and `accepted` the connections
/// accepted while they ran and 300 ms after.
pub type ProbeRun = Run<LoadResult>;

/// One exporter's medians over the rounds.
#[derive(Debug, Serialize)]
pub struct ProbeMedians {
    /// Median probes answered per second.
    pub probes_per_s: Option<f64>,
    /// Median of the runs' median latencies, milliseconds.
    pub latency_p50_ms: Option<f64>,
    /// Median of the runs' 99th percentiles, milliseconds.
    pub latency_p99_ms: Option<f64>,
    /// The medians of the CPU use, per probe.
    pub cpu: CpuMedians,
    /// Median of the runs' accepted connections per probe.
    pub accepted_per_probe: Option<f64>,
    /// The most failed requests in one run.
    pub failed_max: Option<u64>,
}

impl Medians for ProbeMedians {
    type Measured = LoadResult;

    fn of(runs: &[&ProbeRun]) -> ProbeMedians {
        let of = |value: fn(&ProbeRun) -> f64| median(runs.iter().map(|run| value(run)).collect());
        ProbeMedians {
            probes_per_s: of(|run| run.measured.requests_per_s),
            latency_p50_ms: of(|run| run.measured.latency_p50_ms),
            latency_p99_ms: of(|run| run.measured.latency_p99_ms),
            cpu: CpuMedians::of(runs),
            accepted_per_probe: of(|run| run.accepted as f64 / run.measured.requests.max(1) as f64),
            failed_max: runs.iter().map(|run| run.measured.failed).max(),
        }
    }
}

/// One exporter's row.
pub type ProbeRow = Row<ProbeMedians>;

/// The load the `probe` scenario puts on each exporter.
#[derive(Debug, Serialize)]
pub struct ProbeLoad {
    /// What the clients GET.
    pub path: String,
    /// Concurrent clients.
    pub clients: usize,
    /// How long they run per exporter, seconds.
    pub window_s: f64,
}

/// The `probe` scenario's results (and `--json` output); its failures: a probe of tcp-checker
/// serve accepted, failed or not open.
pub type Probe = Comparison<ProbeLoad, LoadResult, ProbeMedians>;

/// tcp-checker serve's `/probe` under the load, then blackbox_exporter's (if installed), in
/// each of the rounds.
pub fn probe(args: &Args, stage: &Stage<'_>) -> anyhow::Result<Probe> {
    let port = stage.port();
    let path = format!("/probe?target=127.0.0.1:{port}&module=tcp_connect");
    let blackbox = Peer::find(
        "probe",
        BLACKBOX_NAME,
        &BLACKBOX,
        &["--version"],
        "blackbox_exporter is not installed (neither prometheus-blackbox-exporter nor \
         blackbox_exporter in PATH): `apt-get install --no-install-recommends \
         prometheus-blackbox-exporter` adds it",
    );
    let folder = TempDir::new()?;
    let config = folder.write("blackbox.yml", BLACKBOX_CONFIG)?;
    let mut runs = Vec::new();
    for round in 1..=args.runs() {
        if blackbox.program.is_some() && round > 1 {
            // blackbox_exporter's connections of the round before, in TIME_WAIT, would slow
            // the connects of the next run.
            bench::wait_for_time_wait(port)?;
        }
        eprintln!(
            "probe: round {round}: tcp-checker serve, {} clients for {:?}",
            args.clients,
            args.window()
        );
        let (daemon, http) =
            start_tcp_checker(&stage.tcp_checker, &["--probe-allow", "127.0.0.0/8"], None)?;
        runs.push(measure(
            args,
            stage,
            Side::TcpChecker,
            daemon,
            http,
            &path,
            round,
        )?);
        if let Some(program) = &blackbox.program {
            eprintln!("probe: round {round}: blackbox_exporter, the same load");
            let (daemon, http) = start_blackbox(program, &config)?;
            runs.push(measure(
                args,
                stage,
                Side::Peer,
                daemon,
                http,
                &path,
                round,
            )?);
        }
    }
    let load = ProbeLoad {
        path,
        clients: args.clients,
        window_s: args.window().as_secs_f64(),
    };
    Comparison::new(
        args,
        stage,
        load,
        blackbox,
        runs,
        probe_goals,
        probe_failure,
    )
}

/// What went wrong in a run of tcp-checker serve besides connections accepted: probes that
/// failed.
fn probe_failure(run: &ProbeRun) -> Option<String> {
    let load = &run.measured;
    (load.failed > 0).then(|| {
        format!(
            "round {}: {} of {} probes of tcp-checker serve failed; the first: {}",
            run.round,
            load.failed,
            load.requests,
            load.first_failure.as_deref().unwrap_or("?")
        )
    })
}

/// Starts blackbox_exporter with `config` on a free loopback port.
fn start_blackbox(program: &Path, config: &Path) -> anyhow::Result<(Daemon, SocketAddr)> {
    // A port the kernel has just given out, free again: nothing else here binds one.
    let address = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .context("finding a free port for blackbox_exporter")?;
    let mut command = Command::new(program);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address={address}"));
    Ok((Daemon::start("blackbox_exporter", command, None)?, address))
}

/// Waits until the exporter answers a probe of `path` that found the port open, then runs the
/// load on it, reading its CPU time around it; stops it.
fn measure(
    args: &Args,
    stage: &Stage<'_>,
    exporter: Side,
    mut daemon: Daemon,
    http: SocketAddr,
    path: &str,
    round: usize,
) -> anyhow::Result<ProbeRun> {
    let mut last = String::new();
    let ready = daemon.wait_until(
        "answer a probe that found the port open",
        service::START_DEADLINE,
        |_| match http_load::get(http, path, &[]) {
            Ok(response) if response.status == 200 && response.text().contains(PROBE_SUCCESS) => {
                Some(Ok(()))
            }
            Ok(response) if response.status != 200 => Some(Err(format!(
                "{} answered {}: {}",
                exporter.name(BLACKBOX_NAME),
                response.status,
                response.text().trim()
            ))),
            Ok(response) => {
                last = response.text();
                None
            }
            Err(_) => None,
        },
    );
    match ready {
        Ok(Ok(())) => {}
        Ok(Err(refusal)) => anyhow::bail!("{refusal}"),
        Err(error) => return Err(error.context(format!("the last answer: {last}"))),
    }
    // The readiness probe's connection is counted before the window opens.
    stage.listener.settle();
    let accepted_before = stage.listener.accepted();
    let pid = daemon.pid();
    let mut start = None;
    let load = http_load::run(
        http,
        path,
        args.clients,
        args.window(),
        PROBE_SUCCESS,
        || {
            start = Some((
                procfs::process_cpu(pid),
                procfs::threads_cpu(pid),
                Instant::now(),
            ));
        },
    )?;
    let (end_cpu, end_threads) = (procfs::process_cpu(pid)?, procfs::threads_cpu(pid)?);
    let ended = Instant::now();
    let (start_cpu, start_threads, started) = start.context("the load did not start")?;
    let (start_cpu, start_threads) = (start_cpu?, start_threads?);
    daemon.ensure_running()?;
    daemon.stop()?;
    stage.listener.settle();
    let cpu = end_cpu.since(&start_cpu);
    let probes = load.requests as f64;
    let threads = match exporter {
        Side::TcpChecker => thread_shares(&start_threads, &end_threads, cpu, probes),
        Side::Peer => Vec::new(),
    };
    let window_s = ended.duration_since(started).as_secs_f64();
    Ok(ProbeRun {
        side: exporter,
        round,
        cpu: CpuUse::new(cpu, window_s, probes, threads),
        accepted: stage.listener.accepted() - accepted_before,
        measured: load,
    })
}

/// The targets for the probe scenario, judged on the medians.
fn probe_goals(rows: &[ProbeRow]) -> Vec<Goal> {
    let find = |side| rows.iter().find(|row| row.side == side);
    let (Some(ours), blackbox) = (find(Side::TcpChecker), find(Side::Peer)) else {
        return Vec::new();
    };
    let cpu = |row: Option<&ProbeRow>| row.and_then(|row| row.medians.cpu.us_per_unit);
    vec![
        Goal {
            goal: "CPU per probe at most a fifth of blackbox_exporter's".into(),
            met: cpu(Some(ours))
                .zip(cpu(blackbox))
                .map(|(a, b)| a * CPU_RATIO_GOAL <= b),
            figures: match (cpu(Some(ours)), cpu(blackbox)) {
                (Some(a), Some(b)) => format!(
                    "{a:.0} µs against blackbox_exporter's {b:.0} µs: {:.2}x, 1/{:.1} of it",
                    a / b,
                    b / a
                ),
                (Some(a), None) => format!("{a:.0} µs; blackbox_exporter did not run"),
                _ => "not measured".into(),
            },
        },
        ours.accepts_nothing(
            "/probe",
            blackbox
                .and_then(|row| row.medians.accepted_per_probe)
                .map(|a| format!("blackbox_exporter: {a:.3} per probe")),
        ),
    ]
}

/// The `probe` scenario as text.
pub fn render_probe(probe: &Probe) -> String {
    let load = &probe.scenario;
    let mut text = format!(
        "probe scenario: GET {} from {} concurrent HTTP/1.1 keep-alive clients for {} s, to {}; \
         medians of the rounds shown.\n",
        load.path,
        load.clients,
        load.window_s,
        probe.sides_in_rounds()
    );
    text.push_str(&probe.describe_setup());
    let blackbox_cpu = probe
        .rows
        .iter()
        .find(|row| row.side == Side::Peer)
        .and_then(|row| row.medians.cpu.us_per_unit);
    let latency = |row: &ProbeRow| {
        let medians = &row.medians;
        let (p50, p99) = (medians.latency_p50_ms, medians.latency_p99_ms);
        format!("{} / {} ms", number(p50, 2), number(p99, 2))
    };
    let vs_blackbox = |row: &ProbeRow| {
        let cpu = row.medians.cpu.us_per_unit;
        cpu.zip(blackbox_cpu)
            .map_or("-".into(), |(a, b)| format!("{:.2}x", a / b))
    };
    let columns: [Column<'_, ProbeRow>; 7] = [
        ("probes/s", &|row| number(row.medians.probes_per_s, 0)),
        ("latency p50 / p99", &latency),
        ("CPU µs/probe", &|row| {
            number(row.medians.cpu.us_per_unit, 0)
        }),
        ("vs blackbox", &vs_blackbox),
        ("CPU cores", &|row| number(row.medians.cpu.cores, 2)),
        ("accepted per probe", &|row| {
            number(row.medians.accepted_per_probe, 3)
        }),
        ("failed", &|row| {
            row.medians.failed_max.map_or("-".into(), |f| f.to_string())
        }),
    ];
    text.push_str(&probe.rows_table("exporter", &columns));
    let latencies = |run: &ProbeRun| {
        let load = &run.measured;
        let (p50, p99, max) = (
            load.latency_p50_ms,
            load.latency_p99_ms,
            load.latency_max_ms,
        );
        format!("{p50:.2} / {p99:.2} / {max:.1} ms")
    };
    let run_columns: [Column<'_, ProbeRun>; 7] = [
        ("probes", &|run| run.measured.requests.to_string()),
        ("probes/s", &|run| {
            format!("{:.0}", run.measured.requests_per_s)
        }),
        ("latency p50 / p99 / max", &latencies),
        ("CPU µs/probe", &|run| {
            format!("{:.0}", run.cpu.us_per_unit)
        }),
        ("CPU cores", &|run| format!("{:.2}", run.cpu.cores)),
        ("accepted", &|run| run.accepted.to_string()),
        ("failed", &|run| run.measured.failed.to_string()),
    ];
    let method = vec![
        format!(
            "Each client keeps one connection open and sends the next GET when the last \
             answer is in; probes/s: answers over the time from the clients' start to the last \
             one's end. CPU: user + system time of the exporter's process while the clients \
             ran (/proc/PID/stat), per answer; on loopback the kernel runs the listener's side \
             of each handshake within the exporter's connect(), so that work is included (the \
             clients and the listener run in this benchmark's process, not counted). \
             blackbox_exporter runs with a config of one module, tcp_connect (prober: tcp, \
             timeout 5s); tcp-checker serve with --probe-allow 127.0.0.0/8. A probe succeeds \
             when its answer says {PROBE_SUCCESS:?}."
        ),
        "accepted: connections the listener's application accepted while the clients ran, \
         counted until 300 ms after (past the 200 ms delayed-ACK timer): a full connect is \
         accepted every time, a half-open check never."
            .into(),
    ];
    let notes = probe.notes(method, "probe", |run| {
        let failure = run.measured.first_failure.as_ref()?;
        Some(format!(
            "round {}, {}: {} of {} requests failed; the first: {failure}",
            run.round,
            run.side.name(BLACKBOX_NAME),
            run.measured.failed,
            run.measured.requests
        ))
    });
    text.push_str(&probe.runs_table("exporter", &run_columns, &notes));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_goal_is_a_fifth_of_blackboxs() {
        let row = |side, cpu| ProbeRow {
            side,
            version: None,
            accepted_max: Some(0),
            medians: ProbeMedians {
                probes_per_s: Some(1.0),
                latency_p50_ms: None,
                latency_p99_ms: None,
                cpu: CpuMedians {
                    us_per_unit: Some(cpu),
                    cores: None,
                },
                accepted_per_probe: Some(0.0),
                failed_max: Some(0),
            },
        };
        let goals = probe_goals(&[row(Side::TcpChecker, 80.0), row(Side::Peer, 400.0)]);
        assert_eq!(goals[0].met, Some(true), "{goals:?}");
        let goals = probe_goals(&[row(Side::TcpChecker, 81.0), row(Side::Peer, 400.0)]);
        assert_eq!(goals[0].met, Some(false));
        assert_eq!(probe_goals(&[row(Side::TcpChecker, 81.0)])[0].met, None);
    }
}
