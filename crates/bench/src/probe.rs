//! The `probe` scenario: `/probe?target=127.0.0.1:PORT&module=tcp_connect` of `tcp-checker
//! serve` under the load of N concurrent HTTP/1.1 keep-alive clients for a fixed time, then
//! the same load on blackbox_exporter's (`prober: tcp`, a full connect), against the same
//! listener, one after the other in each of K rounds: probes per second, the CPU time of the
//! exporter's process per probe, and the connections the listener's application accepted
//! (none from tcp-checker serve, every probe from blackbox_exporter).

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::args::Args;
use crate::bench::{self, Setup};
use crate::daemon::{self, Daemon, TempDir};
use crate::http_load::{self, LoadResult};
use crate::procfs;
use crate::service::{
    self, Goal, Stage, ThreadShare, describe_shares, goal_notes, number, start_tcp_checker,
    thread_shares,
};
use crate::statistics::median;
use crate::table::markdown;

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

/// Which exporter a run measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exporter {
    /// `tcp-checker serve --probe-allow 127.0.0.0/8`.
    TcpChecker,
    /// blackbox_exporter.
    Blackbox,
}

impl Exporter {
    /// Its name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Exporter::TcpChecker => "tcp-checker serve",
            Exporter::Blackbox => "blackbox_exporter",
        }
    }
}

/// One exporter's run under the load.
#[derive(Debug, Serialize)]
pub struct ProbeRun {
    /// The exporter.
    pub exporter: Exporter,
    /// The round, from 1.
    pub round: usize,
    /// What the clients did.
    pub load: LoadResult,
    /// User plus system CPU time of the exporter's process while the clients ran, seconds.
    pub cpu_s: f64,
    /// `cpu_s` per probe answered, microseconds.
    pub cpu_us_per_probe: f64,
    /// `cpu_s` over the time the clients ran: CPU cores busy.
    pub cpu_cores: f64,
    /// The CPU time of each thread name (tcp-checker serve only).
    pub threads: Vec<ThreadShare>,
    /// Connections the listener's application accepted while the clients ran, and 300 ms
    /// after.
    pub accepted: u64,
}

/// One exporter's medians over the rounds.
#[derive(Debug, Serialize)]
pub struct ProbeRow {
    /// The exporter.
    pub exporter: Exporter,
    /// Its version, as it says it.
    pub version: Option<String>,
    /// Median probes answered per second.
    pub probes_per_s: Option<f64>,
    /// Median of the runs' median latencies, milliseconds.
    pub latency_p50_ms: Option<f64>,
    /// Median of the runs' 99th percentiles, milliseconds.
    pub latency_p99_ms: Option<f64>,
    /// Median CPU per probe, microseconds.
    pub cpu_us_per_probe: Option<f64>,
    /// Median CPU cores busy.
    pub cpu_cores: Option<f64>,
    /// Median of the runs' accepted connections per probe.
    pub accepted_per_probe: Option<f64>,
    /// The most connections accepted in one run.
    pub accepted_max: Option<u64>,
    /// The most failed requests in one run.
    pub failed_max: Option<u64>,
}

impl ProbeRow {
    fn of(exporter: Exporter, version: Option<String>, runs: &[&ProbeRun]) -> ProbeRow {
        let of = |value: fn(&ProbeRun) -> f64| median(runs.iter().map(|run| value(run)).collect());
        ProbeRow {
            exporter,
            version,
            probes_per_s: of(|run| run.load.requests_per_s),
            latency_p50_ms: of(|run| run.load.latency_p50_ms),
            latency_p99_ms: of(|run| run.load.latency_p99_ms),
            cpu_us_per_probe: of(|run| run.cpu_us_per_probe),
            cpu_cores: of(|run| run.cpu_cores),
            accepted_per_probe: of(|run| run.accepted as f64 / run.load.requests.max(1) as f64),
            accepted_max: runs.iter().map(|run| run.accepted).max(),
            failed_max: runs.iter().map(|run| run.load.failed).max(),
        }
    }
}

/// The `probe` scenario's results (and `--json` output).
#[derive(Debug, Serialize)]
pub struct Probe {
    /// Where and how it ran.
    pub setup: Setup,
    /// The network it ran in.
    pub network: String,
    /// What the clients GET.
    pub path: String,
    /// Concurrent clients.
    pub clients: usize,
    /// How long they run per exporter, seconds.
    pub window_s: f64,
    /// Rounds.
    pub rounds: usize,
    /// Why blackbox_exporter did not run, if it did not.
    pub blackbox_missing: Option<String>,
    /// Every run, in order.
    pub runs: Vec<ProbeRun>,
    /// Each exporter's medians.
    pub rows: Vec<ProbeRow>,
    /// The targets of the issue.
    pub goals: Vec<Goal>,
    /// The 1-minute load average at the end.
    pub load_average_after: f64,
    /// What went wrong: a probe of tcp-checker serve accepted, failed or not open.
    pub failures: Vec<String>,
    /// True if nothing did.
    pub ok: bool,
}

/// tcp-checker serve's `/probe` under the load, then blackbox_exporter's (if installed), in
/// each of the rounds.
pub fn probe(args: &Args, stage: &Stage<'_>) -> anyhow::Result<Probe> {
    let port = stage.port();
    let path = format!("/probe?target=127.0.0.1:{port}&module=tcp_connect");
    let blackbox = daemon::find_in_path(&BLACKBOX);
    let blackbox_missing = blackbox.is_none().then(|| {
        "blackbox_exporter is not installed (neither prometheus-blackbox-exporter nor \
         blackbox_exporter in PATH): `apt-get install --no-install-recommends \
         prometheus-blackbox-exporter` adds it"
            .to_string()
    });
    if let Some(reason) = &blackbox_missing {
        eprintln!("probe: {reason}; measuring tcp-checker serve alone");
    }
    let folder = TempDir::new()?;
    let config = folder.write("blackbox.yml", BLACKBOX_CONFIG)?;
    let mut runs = Vec::new();
    for round in 1..=args.runs() {
        if blackbox.is_some() && round > 1 {
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
            Exporter::TcpChecker,
            daemon,
            http,
            &path,
            round,
        )?);
        if let Some(program) = &blackbox {
            eprintln!("probe: round {round}: blackbox_exporter, the same load");
            let (daemon, http) = start_blackbox(program, &config)?;
            runs.push(measure(
                args,
                stage,
                Exporter::Blackbox,
                daemon,
                http,
                &path,
                round,
            )?);
        }
    }
    let versions = [
        (
            Exporter::TcpChecker,
            daemon::version(&stage.tcp_checker, &["--version"]),
        ),
        (
            Exporter::Blackbox,
            blackbox
                .as_deref()
                .and_then(|path| daemon::version(path, &["--version"])),
        ),
    ];
    let rows: Vec<ProbeRow> = versions
        .into_iter()
        .filter_map(|(exporter, version)| {
            let of: Vec<&ProbeRun> = runs.iter().filter(|r| r.exporter == exporter).collect();
            (!of.is_empty()).then(|| ProbeRow::of(exporter, version, &of))
        })
        .collect();
    let mut failures = Vec::new();
    for run in runs
        .iter()
        .filter(|run| run.exporter == Exporter::TcpChecker)
    {
        if run.accepted > 0 {
            failures.push(format!(
                "round {}: the listener accepted {} connections from tcp-checker serve's probes",
                run.round, run.accepted
            ));
        }
        if run.load.failed > 0 {
            failures.push(format!(
                "round {}: {} of {} probes of tcp-checker serve failed; the first: {}",
                run.round,
                run.load.failed,
                run.load.requests,
                run.load.first_failure.as_deref().unwrap_or("?")
            ));
        }
    }
    Ok(Probe {
        setup: stage.setup.clone(),
        network: stage.network.clone(),
        path,
        clients: args.clients,
        window_s: args.window().as_secs_f64(),
        rounds: args.runs(),
        blackbox_missing,
        goals: probe_goals(&rows),
        runs,
        rows,
        load_average_after: procfs::load_average()?,
        ok: failures.is_empty(),
        failures,
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
    exporter: Exporter,
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
                exporter.name(),
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
    let probes = load.requests.max(1) as f64;
    let cpu_s = cpu.total().as_secs_f64();
    Ok(ProbeRun {
        exporter,
        round,
        cpu_s,
        cpu_us_per_probe: cpu_s * 1e6 / probes,
        cpu_cores: cpu_s / ended.duration_since(started).as_secs_f64(),
        threads: match exporter {
            Exporter::TcpChecker => thread_shares(&start_threads, &end_threads, cpu, probes),
            Exporter::Blackbox => Vec::new(),
        },
        accepted: stage.listener.accepted() - accepted_before,
        load,
    })
}

/// The targets for the probe scenario, judged on the medians.
fn probe_goals(rows: &[ProbeRow]) -> Vec<Goal> {
    let find = |exporter| rows.iter().find(|row| row.exporter == exporter);
    let (Some(ours), blackbox) = (find(Exporter::TcpChecker), find(Exporter::Blackbox)) else {
        return Vec::new();
    };
    let cpu = |row: Option<&ProbeRow>| row.and_then(|row| row.cpu_us_per_probe);
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
        Goal {
            goal: "the listener's application accepts nothing from /probe".into(),
            met: ours.accepted_max.map(|accepted| accepted == 0),
            figures: format!(
                "at most {} accepted in a run{}",
                ours.accepted_max.unwrap_or(0),
                blackbox
                    .and_then(|row| row.accepted_per_probe)
                    .map(|a| format!(" (blackbox_exporter: {a:.3} per probe)"))
                    .unwrap_or_default()
            ),
        },
    ]
}

/// The `probe` scenario as text.
pub fn render_probe(probe: &Probe) -> String {
    let mut text = String::new();
    let exporters: Vec<String> = probe
        .rows
        .iter()
        .map(|row| exporter_name(row.exporter, row.version.as_deref()))
        .collect();
    let _ = writeln!(
        text,
        "probe scenario: GET {} from {} concurrent HTTP/1.1 keep-alive clients for {} s, to {}, \
         {} {} round(s); medians of the rounds shown.",
        probe.path,
        probe.clients,
        probe.window_s,
        exporters.join(", then "),
        if exporters.len() > 1 {
            "one after the other in each of"
        } else {
            "in each of"
        },
        probe.rounds
    );
    let _ = writeln!(text, "Network: {}.", probe.network);
    let _ = writeln!(
        text,
        "{} CPUs; 1-minute load average {:.2} before, {:.2} after (it counts this benchmark's \
         own work, and that of anything else on the machine).\n",
        probe.setup.cpus, probe.setup.load_average_before, probe.load_average_after
    );
    let blackbox_cpu = probe
        .rows
        .iter()
        .find(|row| row.exporter == Exporter::Blackbox)
        .and_then(|row| row.cpu_us_per_probe);
    let columns = [
        "exporter",
        "probes/s",
        "latency p50 / p99",
        "CPU µs/probe",
        "vs blackbox",
        "CPU cores",
        "accepted per probe",
        "failed",
    ];
    let rows: Vec<Vec<String>> = probe
        .rows
        .iter()
        .map(|row| {
            vec![
                exporter_name(row.exporter, row.version.as_deref()),
                number(row.probes_per_s, 0),
                format!(
                    "{} / {} ms",
                    number(row.latency_p50_ms, 2),
                    number(row.latency_p99_ms, 2)
                ),
                number(row.cpu_us_per_probe, 0),
                row.cpu_us_per_probe
                    .zip(blackbox_cpu)
                    .map_or("-".into(), |(a, b)| format!("{:.2}x", a / b)),
                number(row.cpu_cores, 2),
                number(row.accepted_per_probe, 3),
                row.failed_max.map_or("-".into(), |f| f.to_string()),
            ]
        })
        .collect();
    text.push_str(&markdown(&columns, &rows));
    text.push_str("\nEach run:\n\n");
    let run_columns = [
        "round",
        "exporter",
        "probes",
        "probes/s",
        "latency p50 / p99 / max",
        "CPU µs/probe",
        "CPU cores",
        "accepted",
        "failed",
    ];
    let run_rows: Vec<Vec<String>> = probe
        .runs
        .iter()
        .map(|run| {
            vec![
                run.round.to_string(),
                run.exporter.name().into(),
                run.load.requests.to_string(),
                format!("{:.0}", run.load.requests_per_s),
                format!(
                    "{:.2} / {:.2} / {:.1} ms",
                    run.load.latency_p50_ms, run.load.latency_p99_ms, run.load.latency_max_ms
                ),
                format!("{:.0}", run.cpu_us_per_probe),
                format!("{:.2}", run.cpu_cores),
                run.accepted.to_string(),
                run.load.failed.to_string(),
            ]
        })
        .collect();
    text.push_str(&markdown(&run_columns, &run_rows));
    text.push('\n');
    let mut notes = vec![
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
    let ours: Vec<&ProbeRun> = probe
        .runs
        .iter()
        .filter(|run| run.exporter == Exporter::TcpChecker)
        .collect();
    if let Some(first) = ours.first() {
        let shares: Vec<ThreadShare> = first
            .threads
            .iter()
            .map(|share| {
                let mut share = share.clone();
                let values = ours
                    .iter()
                    .filter_map(|run| run.threads.iter().find(|s| s.name == share.name))
                    .map(|s| s.us_per_unit)
                    .collect();
                share.us_per_unit = median(values).unwrap_or(share.us_per_unit);
                share
            })
            .collect();
        notes.push(format!(
            "tcp-checker serve's CPU by thread (medians per probe): {}.",
            describe_shares(&shares, "probe")
        ));
    }
    for run in &probe.runs {
        if let Some(failure) = &run.load.first_failure {
            notes.push(format!(
                "round {}, {}: {} of {} requests failed; the first: {failure}",
                run.round,
                run.exporter.name(),
                run.load.failed,
                run.load.requests
            ));
        }
    }
    if let Some(reason) = &probe.blackbox_missing {
        notes.push(format!("blackbox_exporter: not run ({reason})."));
    }
    notes.extend(goal_notes(&probe.goals));
    if probe.ok {
        notes.push(
            "Verdict: every probe of tcp-checker serve found the port open, and the listener \
             accepted none of them."
                .into(),
        );
    } else {
        notes.extend(
            probe
                .failures
                .iter()
                .map(|failure| format!("FAILED: {failure}.")),
        );
    }
    for note in notes {
        let _ = writeln!(text, "- {note}");
    }
    text
}

/// An exporter's name with its version.
fn exporter_name(exporter: Exporter, version: Option<&str>) -> String {
    service::with_version(exporter.name(), version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporters_are_named_with_their_versions() {
        let name = exporter_name(Exporter::Blackbox, Some("0.23.0"));
        assert_eq!(name, "blackbox_exporter 0.23.0");
        let name = exporter_name(Exporter::TcpChecker, None);
        assert_eq!(name, "tcp-checker serve");
    }

    #[test]
    fn the_cpu_goal_is_a_fifth_of_blackboxs() {
        let row = |exporter, cpu| ProbeRow {
            exporter,
            version: None,
            probes_per_s: Some(1.0),
            latency_p50_ms: None,
            latency_p99_ms: None,
            cpu_us_per_probe: Some(cpu),
            cpu_cores: None,
            accepted_per_probe: Some(0.0),
            accepted_max: Some(0),
            failed_max: Some(0),
        };
        let goals = probe_goals(&[
            row(Exporter::TcpChecker, 80.0),
            row(Exporter::Blackbox, 400.0),
        ]);
        assert_eq!(goals[0].met, Some(true), "{goals:?}");
        let goals = probe_goals(&[
            row(Exporter::TcpChecker, 81.0),
            row(Exporter::Blackbox, 400.0),
        ]);
        assert_eq!(goals[0].met, Some(false));
        assert_eq!(probe_goals(&[row(Exporter::TcpChecker, 81.0)])[0].met, None);
    }
}
