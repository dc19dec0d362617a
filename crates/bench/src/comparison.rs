//! What the `serve` and `probe` scenarios share: tcp-checker serve and the program it is
//! compared with (HAProxy, blackbox_exporter: the peer) run one after the other in each of K
//! rounds. A [`Comparison`] holds where it ran, every run, each side's medians over the rounds,
//! the targets judged on them and what went wrong in tcp-checker serve's runs, and
//! writes the tables and the notes of both reports.

use std::iter;
use std::path::PathBuf;

use serde::Serialize;

use crate::args::Args;
use crate::bench::Setup;
use crate::cpu_time::CpuTime;
use crate::daemon;
use crate::procfs;
use crate::service::{Stage, ThreadShare, describe_shares};
use crate::statistics::median;
use crate::table::{markdown, table_with_notes};

/// Which of the two a run measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    /// `tcp-checker serve`.
    TcpChecker,
    /// The peer.
    Peer,
}

impl Side {
    /// Its name in the tables, `peer` the peer's.
    pub fn name(self, peer: &'static str) -> &'static str {
        match self {
            Side::TcpChecker => "tcp-checker serve",
            Side::Peer => peer,
        }
    }
}

/// One run of either side: what every scenario measures, and what its own `M` holds.
#[derive(Clone, Debug, Serialize)]
pub struct Run<M> {
    /// The side it measured.
    pub side: Side,
    /// The round, from 1.
    pub round: usize,
    /// The CPU time of the side's process over the run's CPU window.
    pub cpu: CpuUse,
    /// Connections the listener's application accepted during the run, counted until 300 ms
    /// after it (the scenario's notes say from when).
    pub accepted: u64,
    /// What else the scenario measured.
    #[serde(flatten)]
    pub measured: M,
}

/// One side's row: what every scenario shows of it, and the scenario's own medians `W` of its
/// runs.
#[derive(Debug, Serialize)]
pub struct Row<W> {
    /// The side.
    pub side: Side,
    /// Its version, as it says it.
    pub version: Option<String>,
    /// The most connections accepted in one run.
    pub accepted_max: Option<u64>,
    /// The scenario's medians.
    #[serde(flatten)]
    pub medians: W,
}

impl<W> Row<W> {
    /// The side's name with its version, if known: `HAProxy 2.6.12-1+deb12u4`; `peer` is the
    /// peer's name.
    pub fn name(&self, peer: &'static str) -> String {
        let name = self.side.name(peer);
        match &self.version {
            Some(version) => format!("{name} {version}"),
            None => name.into(),
        }
    }

    /// The goal that the listener's application accepts nothing from `what` (tcp-checker
    /// serve, its probes), judged on this row's most accepted in a run; `peer` is what the
    /// peer's row shows beside it.
    pub fn accepts_nothing(&self, what: &str, peer: Option<String>) -> Goal {
        Goal {
            goal: format!("the listener's application accepts nothing from {what}"),
            met: self.accepted_max.map(|accepted| accepted == 0),
            figures: format!(
                "at most {} accepted in a run{}",
                self.accepted_max.unwrap_or(0),
                peer.map(|peer| format!(" ({peer})")).unwrap_or_default()
            ),
        }
    }
}

/// A column of a table: its title, and its cell of an item.
pub type Column<'a, T> = (&'a str, &'a dyn Fn(&T) -> String);

/// A scenario's medians of one side's runs.
pub trait Medians {
    /// What the scenario measures in a run besides [`Run`]'s own.
    type Measured;
    /// The medians of `runs` (at least one).
    fn of(runs: &[&Run<Self::Measured>]) -> Self;
}

/// The peer: its name, where it is and its version, or why it does not run.
pub struct Peer {
    /// Its name in the tables.
    pub name: &'static str,
    /// Its path, if it is installed.
    pub program: Option<PathBuf>,
    /// Its version, as it says it.
    pub version: Option<String>,
    /// Why it does not run, if it is not installed.
    pub missing: Option<String>,
}

impl Peer {
    /// The peer `name`: the first of `names` found in `PATH`, and what it says run with
    /// `version`. If none is there, `missing` says why it does not run, also on standard error
    /// as the `scenario`'s.
    pub fn find(
        scenario: &str,
        name: &'static str,
        names: &[&str],
        version: &[&str],
        missing: &str,
    ) -> Peer {
        let program = daemon::find_in_path(names);
        let missing = program.is_none().then(|| missing.to_string());
        if let Some(reason) = &missing {
            eprintln!("{scenario}: {reason}; measuring tcp-checker serve alone");
        }
        Peer {
            name,
            version: program
                .as_deref()
                .and_then(|program| daemon::version(program, version)),
            program,
            missing,
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

/// A process's CPU time over a window, and per unit of work (check or probe) done in it.
#[derive(Clone, Debug, Serialize)]
pub struct CpuUse {
    /// User plus system CPU time of the process over the window, seconds.
    pub time_s: f64,
    /// `time_s` per unit of work, microseconds.
    pub us_per_unit: f64,
    /// `time_s` over the window's length: CPU cores busy.
    pub cores: f64,
    /// The CPU time of each thread name (tcp-checker serve only).
    pub threads: Vec<ThreadShare>,
}

impl CpuUse {
    /// `cpu` used over `window_s` seconds in which `units` of work were done, `threads` its
    /// threads' shares.
    pub fn new(cpu: CpuTime, window_s: f64, units: f64, threads: Vec<ThreadShare>) -> CpuUse {
        let time_s = cpu.total().as_secs_f64();
        CpuUse {
            time_s,
            us_per_unit: time_s * 1e6 / units.max(1.0),
            cores: time_s / window_s,
            threads,
        }
    }
}

/// One side's CPU use, medians over its runs.
#[derive(Debug, Serialize)]
pub struct CpuMedians {
    /// Median CPU per unit of work, microseconds.
    pub us_per_unit: Option<f64>,
    /// Median CPU cores busy.
    pub cores: Option<f64>,
}

impl CpuMedians {
    /// The medians of `runs`.
    pub fn of<M>(runs: &[&Run<M>]) -> CpuMedians {
        let of =
            |value: fn(&CpuUse) -> f64| median(runs.iter().map(|run| value(&run.cpu)).collect());
        CpuMedians {
            us_per_unit: of(|cpu| cpu.us_per_unit),
            cores: of(|cpu| cpu.cores),
        }
    }
}

/// The results of a scenario that compares tcp-checker serve with a peer over rounds (and its
/// `--json` output): `S` is what the scenario ran, `M` what it measures in a run besides
/// [`Run`]'s own, `W` its medians of a side's runs.
#[derive(Debug, Serialize)]
pub struct Comparison<S, M, W> {
    /// Where and how it ran.
    pub setup: Setup,
    /// The network it ran in.
    pub network: String,
    /// What the scenario ran.
    #[serde(flatten)]
    pub scenario: S,
    /// Rounds.
    pub rounds: usize,
    /// The peer's name.
    pub peer: &'static str,
    /// Why the peer did not run, if it did not.
    pub peer_missing: Option<String>,
    /// Every run, in order.
    pub runs: Vec<Run<M>>,
    /// Each side's medians.
    pub rows: Vec<Row<W>>,
    /// The targets of the issue.
    pub goals: Vec<Goal>,
    /// The 1-minute load average at the end.
    pub load_average_after: f64,
    /// What went wrong in tcp-checker serve's runs.
    pub failures: Vec<String>,
    /// True if nothing did.
    pub ok: bool,
}

impl<S, M, W: Medians<Measured = M>> Comparison<S, M, W> {
    /// The `scenario`'s results on the `stage`: `runs` of the rounds `args` asks for, the
    /// `peer`'s if it ran; the row of each side that ran, the `goals` judged on the rows, and
    /// what went wrong in tcp-checker serve's runs: connections accepted, and what the
    /// scenario's `failures` find.
    pub fn new(
        args: &Args,
        stage: &Stage<'_>,
        scenario: S,
        peer: Peer,
        runs: Vec<Run<M>>,
        goals: impl FnOnce(&[Row<W>]) -> Vec<Goal>,
        failures: impl Fn(&Run<M>) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let ours = stage.tcp_checker_version();
        let rows: Vec<Row<W>> = [(Side::TcpChecker, ours), (Side::Peer, peer.version)]
            .into_iter()
            .filter_map(|(side, version)| {
                let of: Vec<&Run<M>> = runs.iter().filter(|run| run.side == side).collect();
                (!of.is_empty()).then(|| Row {
                    side,
                    version,
                    accepted_max: of.iter().map(|run| run.accepted).max(),
                    medians: W::of(&of),
                })
            })
            .collect();
        let mut found = Vec::new();
        for run in runs.iter().filter(|run| run.side == Side::TcpChecker) {
            if run.accepted > 0 {
                found.push(format!(
                    "round {}: the listener accepted {} connections from tcp-checker serve",
                    run.round, run.accepted
                ));
            }
            found.extend(failures(run));
        }
        Ok(Comparison {
            setup: stage.setup.clone(),
            network: stage.network.clone(),
            scenario,
            rounds: args.runs(),
            peer: peer.name,
            peer_missing: peer.missing,
            goals: goals(&rows),
            runs,
            rows,
            load_average_after: procfs::load_average()?,
            ok: found.is_empty(),
            failures: found,
        })
    }

    /// The sides that ran, with their versions, and the rounds: `tcp-checker serve 0.1.0 and
    /// HAProxy 2.6.12, one after the other in each of 3 round(s)`.
    pub fn sides_in_rounds(&self) -> String {
        let names: Vec<String> = self.rows.iter().map(|row| row.name(self.peer)).collect();
        let order = if names.len() > 1 {
            "one after the other in each of"
        } else {
            "in"
        };
        format!("{}, {order} {} round(s)", names.join(" and "), self.rounds)
    }

    /// Where it ran, in words (the network, the CPUs, the load before and after, the limit of
    /// open files), and a blank line.
    pub fn describe_setup(&self) -> String {
        format!(
            "Network: {}.\n{} CPUs; 1-minute load average {:.2} before, {:.2} after (it counts \
             this benchmark's own work, and that of anything else on the machine); open files \
             limit {}.\n\n",
            self.network,
            self.setup.cpus,
            self.setup.load_average_before,
            self.load_average_after,
            self.setup.open_files_limit
        )
    }

    /// The table of each side's medians: a column `side` of its name, then `columns`.
    pub fn rows_table(&self, side: &str, columns: &[Column<'_, Row<W>>]) -> String {
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| {
                iter::once(row.name(self.peer))
                    .chain(cells(columns, row))
                    .collect()
            })
            .collect();
        markdown(&titles(&[side], columns), &rows)
    }

    /// The table of each run, `Each run:` above it: columns of its round and its `side`, then
    /// `columns`; and the `notes` after it.
    pub fn runs_table(
        &self,
        side: &str,
        columns: &[Column<'_, Run<M>>],
        notes: &[String],
    ) -> String {
        let runs: Vec<Vec<String>> = self
            .runs
            .iter()
            .map(|run| {
                let first = [run.round.to_string(), run.side.name(self.peer).to_string()];
                first.into_iter().chain(cells(columns, run)).collect()
            })
            .collect();
        let table = table_with_notes(&titles(&["round", side], columns), &runs, notes);
        format!("\nEach run:\n\n{table}")
    }

    /// The notes that end the report: the scenario's `method` (how each column was measured),
    /// tcp-checker serve's CPU by thread (medians per `unit` of work), `run_note` of each run
    /// that has one, the peer not run, the goals, and the verdict or what failed.
    pub fn notes(
        &self,
        method: Vec<String>,
        unit: &str,
        run_note: impl Fn(&Run<M>) -> Option<String>,
    ) -> Vec<String> {
        let mut notes = method;
        if let Some(shares) = self.median_shares() {
            notes.push(format!(
                "tcp-checker serve's CPU by thread (medians per {unit}): {}.",
                describe_shares(&shares, unit)
            ));
        }
        notes.extend(self.runs.iter().filter_map(run_note));
        if let Some(reason) = &self.peer_missing {
            notes.push(format!("{}: not run ({reason}).", self.peer));
        }
        notes.extend(self.goals.iter().map(|goal| {
            let verdict = match goal.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not judged",
            };
            format!("Target {verdict}: {} ({}).", goal.goal, goal.figures)
        }));
        if self.ok {
            notes.push(format!(
                "Verdict: every {unit} of tcp-checker serve found the port open, and the \
                 listener accepted none of them."
            ));
        } else {
            notes.extend(
                self.failures
                    .iter()
                    .map(|failure| format!("FAILED: {failure}.")),
            );
        }
        notes
    }

    /// The median of each thread name's share over tcp-checker serve's runs, in the order of
    /// the first run's.
    fn median_shares(&self) -> Option<Vec<ThreadShare>> {
        let ours: Vec<&[ThreadShare]> = self
            .runs
            .iter()
            .filter(|run| run.side == Side::TcpChecker)
            .map(|run| run.cpu.threads.as_slice())
            .collect();
        let mut shares = ours.first()?.to_vec();
        for share in &mut shares {
            let of = |value: fn(&ThreadShare) -> f64| {
                median(
                    ours.iter()
                        .filter_map(|threads| threads.iter().find(|s| s.name == share.name))
                        .map(value)
                        .collect(),
                )
            };
            share.cpu_s = of(|s| s.cpu_s).unwrap_or(share.cpu_s);
            share.us_per_unit = of(|s| s.us_per_unit).unwrap_or(share.us_per_unit);
        }
        Some(shares)
    }
}

/// The titles of a table: `first`, then those of `columns`.
fn titles<'a, T>(first: &[&'a str], columns: &[Column<'a, T>]) -> Vec<&'a str> {
    first
        .iter()
        .copied()
        .chain(columns.iter().map(|(title, _)| *title))
        .collect()
}

/// The cells of `columns` for `item`.
fn cells<'a, T>(columns: &'a [Column<'_, T>], item: &'a T) -> impl Iterator<Item = String> + 'a {
    columns.iter().map(move |(_, cell)| cell(item))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_named_with_their_versions() {
        let row = |side, version: Option<&str>| Row {
            side,
            version: version.map(str::to_string),
            accepted_max: None,
            medians: (),
        };
        let name = row(Side::Peer, Some("2.6.12")).name("HAProxy");
        assert_eq!(name, "HAProxy 2.6.12");
        let name = row(Side::TcpChecker, None).name("HAProxy");
        assert_eq!(name, "tcp-checker serve");
    }
}
