//! The command line: flags, subcommands, their help, and the parsing of durations.
//!
//! The original `tcp-checker`'s flags (`-a ADDR -t MS -n N -c C -v`) keep their meaning; every
//! other flag is an addition.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};
use tcp_shaker::health::InitialState;

use crate::guide;

/// Half-open TCP checks: SYN, SYN-ACK, RST. The checked server's application never sees a
/// connection.
#[derive(Debug, Parser)]
#[command(
    name = "tcp-checker",
    version,
    after_help = guide::after_help(),
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    subcommand_value_name = "SUBCOMMAND",
    subcommand_help_heading = "Subcommands"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub check: CheckArgs,
}

/// The subcommands; without one, tcp-checker checks its targets.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Measure checks per second, CPU time and round trips, against an embedded listener
    Bench(BenchArgs),
    /// Check targets continuously and serve their health: Prometheus metrics, a
    /// blackbox-compatible /probe, /health for Kubernetes and load balancers
    Serve(Box<ServeArgs>),
    /// Print a completion script for a shell
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on standard output
    Man,
}

/// The flags of a run of checks (no subcommand).
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("target_sources")
        .args(["specs", "address", "files"])
        .required(true)
        .multiple(true)
))]
pub struct CheckArgs {
    #[command(flatten)]
    pub targets: TargetArgs,

    /// Check every address of a host name, each reported and counted on its own
    #[arg(long, help_heading = "Targets")]
    pub all_addresses: bool,

    /// Timeout of each check, name resolution included: milliseconds, or a duration such as
    /// 500ms, 2s, 1m
    #[arg(short = 't', long, value_name = "TIME", default_value = "1000",
          value_parser = parse_timeout, help_heading = "Checks")]
    pub timeout: Duration,

    /// Checks of one target in flight at once
    #[arg(short = 'c', long, value_name = "C", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..), help_heading = "Checks")]
    pub concurrency: u32,

    /// Checks in flight at once over all targets (capped by the open-files limit)
    #[arg(long, value_name = "N", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(1..), help_heading = "Checks")]
    pub max_in_flight: u64,

    /// Event-loop threads sharing the checks [default: one per CPU core, at most 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..),
          help_heading = "Checks")]
    pub loops: Option<u16>,

    /// Checks per target; 0 checks until interrupted (Ctrl-C, SIGTERM, SIGHUP)
    #[arg(
        short = 'n',
        long,
        value_name = "COUNT",
        default_value_t = 1,
        help_heading = "Repeat"
    )]
    pub count: u64,

    /// Time between the starts of two checks of a target: seconds, or a duration such as
    /// 200ms [default: 0 with a count, 1s with -n 0]
    #[arg(short = 'i', long, value_name = "TIME", value_parser = parse_interval,
          help_heading = "Repeat")]
    pub interval: Option<Duration>,

    /// Print only the checks that found the port open, and how many were not shown
    #[arg(long, conflicts_with = "summary", help_heading = "Output")]
    pub open: bool,

    /// Print no line per check, only the statistics at the end
    #[arg(short = 's', long, help_heading = "Output")]
    pub summary: bool,

    /// Print nothing on standard output; the exit status tells (errors still go to stderr)
    #[arg(short = 'q', long, conflicts_with_all = ["open", "summary", "json", "verbose"],
          help_heading = "Output")]
    pub quiet: bool,

    /// Print one JSON object per line (NDJSON): one per check, then a summary
    #[arg(long, help_heading = "Output")]
    pub json: bool,

    /// Print the configuration, and the cause of every failed check on stderr
    #[arg(short = 'v', long, help_heading = "Output")]
    pub verbose: bool,

    /// Retry each target until it is open or TIME has passed: seconds, or a duration such as
    /// 30s, 2m
    #[arg(long, value_name = "TIME", value_parser = parse_wait,
          conflicts_with_all = ["count", "interval", "concurrency", "open", "summary", "all_addresses"],
          help_heading = "Waiting")]
    pub wait: Option<Duration>,

    /// With --wait: once every target is open, run this command in place of tcp-checker
    #[arg(
        last = true,
        value_name = "COMMAND",
        requires = "wait",
        help_heading = "Waiting"
    )]
    pub command: Vec<OsString>,
}

/// Where the targets come from and how they are reached: the same for a run of checks and for
/// `serve`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Targets")]
pub struct TargetArgs {
    /// Target specs given as arguments.
    #[arg(
        value_name = "TARGET",
        help = "Targets: host:port, [v6]:port, host:80,443, host:8000-8100, host:22,80,8000-8010"
    )]
    pub specs: Vec<String>,

    /// A target, as a positional TARGET (repeatable)
    #[arg(short = 'a', long = "address", value_name = "ADDR")]
    pub address: Vec<String>,

    /// Read targets from FILE, one a line; blank lines and # comments are ignored; - is
    /// standard input (repeatable)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Check IPv4 addresses only
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Check IPv6 addresses only
    #[arg(short = '6')]
    pub ipv6: bool,

    /// Send checks from this local address (one per address family; repeatable)
    #[arg(long, value_name = "ADDR")]
    pub source: Vec<IpAddr>,

    /// Send checks through this network interface only (Linux)
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
}

/// The flags of `tcp-checker serve`. A flag given here overrides the config file's
/// `[defaults]` (and its top-level setting of the same name).
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub targets: TargetArgs,

    #[command(flatten)]
    pub service: ServiceArgs,

    #[command(flatten)]
    pub health: HealthArgs,
}

/// How `serve` serves: where, from which config, which shard, its log, its probe allowlist.
#[derive(Debug, Args)]
#[command(next_help_heading = "Service")]
pub struct ServiceArgs {
    /// Serve HTTP on this address [default: 127.0.0.1:9476]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,

    /// Read targets and settings from this TOML file; SIGHUP reads it again
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Check only this instance's share of the targets: I/N, I from 0 to N-1
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,

    /// Log transitions as text or as JSON lines [default: text]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<crate::serve::LogFormat>,

    /// Let /probe check this network, address or host (CIDR, IP or HOST, each with :PORTS for
    /// some ports only); repeatable. Without any, /probe checks nothing
    #[arg(long, value_name = "RULE")]
    pub probe_allow: Vec<String>,
}

/// How `serve` judges its targets' health (each overrides the config's `[defaults]`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Health")]
pub struct HealthArgs {
    /// Time between checks of a target whose state is settled [default: 2s]
    #[arg(short = 'i', long, value_name = "TIME", value_parser = parse_timeout)]
    pub interval: Option<Duration>,

    /// Time between checks while a state is changing [default: the interval]
    #[arg(long, value_name = "TIME", value_parser = parse_timeout)]
    pub fast_interval: Option<Duration>,

    /// Time between checks while a target is down [default: the interval]
    #[arg(long, value_name = "TIME", value_parser = parse_timeout)]
    pub down_interval: Option<Duration>,

    /// Timeout of each check, name resolution included [default: 1s]
    #[arg(short = 't', long, value_name = "TIME", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,

    /// Successes in a row that bring a down target up [default: 2, as HAProxy's rise]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rise: Option<u32>,

    /// Failures in a row that bring an up target down [default: 3, as HAProxy's fall]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub fall: Option<u32>,

    /// The state of a target before its first check: fully-up, up (the first failure marks
    /// it down), down (the first success marks it up) or fully-down [default: up]
    #[arg(long, value_name = "STATE", value_parser = <InitialState as std::str::FromStr>::from_str)]
    pub initial_state: Option<InitialState>,
}

/// The flags of `tcp-checker bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Target to check [default: an embedded listener on 127.0.0.1]
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,

    /// Number of checks
    #[arg(short = 'n', long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,

    /// Checks in flight at once
    #[arg(short = 'c', long, value_name = "C", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: u64,

    /// Timeout of each check: milliseconds, or a duration such as 500ms, 2s
    #[arg(short = 't', long, value_name = "TIME", default_value = "1000",
          value_parser = parse_timeout)]
    pub timeout: Duration,

    /// Event-loop threads sharing the checks (1 compares with a single-threaded loop)
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub loops: u16,

    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    nonzero(parse_duration(text, Duration::from_millis(1))?)
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    parse_duration(text, Duration::from_secs(1))
}

fn parse_wait(text: &str) -> Result<Duration, String> {
    nonzero(parse_duration(text, Duration::from_secs(1))?)
}

fn nonzero(duration: Duration) -> Result<Duration, String> {
    if duration.is_zero() {
        return Err("give a time greater than zero".into());
    }
    Ok(duration)
}

/// The longest time any flag takes: a century is as good as forever, and keeps deadlines
/// representable.
const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A bare number (decimals allowed) in `bare_unit`, or a number with its unit (`500ms`, `2s`,
/// `1m`, `1h 30m`), at most [`LONGEST`].
fn parse_duration(text: &str, bare_unit: Duration) -> Result<Duration, String> {
    let duration = parse_any_duration(text, bare_unit)?;
    if duration > LONGEST {
        return Err(format!("{text} is too long a time (at most 100 years)"));
    }
    Ok(duration)
}

fn parse_any_duration(text: &str, bare_unit: Duration) -> Result<Duration, String> {
    let is_bare_number = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.bytes().filter(|&b| b == b'.').count() <= 1
        && text != ".";
    if !is_bare_number {
        return humantime::parse_duration(text).map_err(|error| {
            format!("{error}; write a number, or a number with a unit such as 500ms, 2s, 1m")
        });
    }
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    Duration::try_from_secs_f64(value * bare_unit.as_secs_f64())
        .map_err(|_| format!("{text} is too long a time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let mut argv = vec!["tcp-checker"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap_or_else(|error| panic!("{args:?}: {error}"))
    }

    fn refused(args: &[&str]) -> String {
        let mut argv = vec!["tcp-checker"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv) {
            Ok(cli) => panic!("{args:?} accepted: {cli:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn the_originals_flags_keep_their_meaning() {
        let cli = parse(&[
            "-a",
            "127.0.0.1:80",
            "-t",
            "2000",
            "-n",
            "5",
            "-c",
            "3",
            "-v",
        ]);
        let check = cli.check;
        assert_eq!(check.targets.address, ["127.0.0.1:80"]);
        assert_eq!(check.timeout, Duration::from_millis(2000));
        assert_eq!(check.count, 5);
        assert_eq!(check.concurrency, 3);
        assert!(check.verbose);
        assert_eq!(check.interval, None);
        assert!(cli.command.is_none());
    }

    #[test]
    fn defaults() {
        let check = parse(&["db:5432"]).check;
        assert_eq!(check.targets.specs, ["db:5432"]);
        assert_eq!(check.timeout, Duration::from_secs(1));
        assert_eq!(check.count, 1);
        assert_eq!(check.concurrency, 1);
        assert_eq!(check.max_in_flight, 4096);
        assert_eq!(check.loops, None);
        assert_eq!(check.interval, None);
        assert_eq!(check.wait, None);
    }

    #[test]
    fn targets_come_from_positionals_addresses_and_files() {
        let check = parse(&[
            "a:1", "-a", "b:2", "c:3", "-a", "d:4", "-f", "x.txt", "-f", "-",
        ])
        .check;
        assert_eq!(check.targets.specs, ["a:1", "c:3"]);
        assert_eq!(check.targets.address, ["b:2", "d:4"]);
        assert_eq!(
            check.targets.files,
            [PathBuf::from("x.txt"), PathBuf::from("-")]
        );
        assert!(parse(&["-f", "x.txt"]).check.targets.specs.is_empty());
    }

    #[test]
    fn a_target_is_required_unless_a_subcommand_is_given() {
        assert!(refused(&[]).contains("required"));
        assert!(refused(&["-n", "3"]).contains("required"));
        assert!(matches!(parse(&["man"]).command, Some(Command::Man)));
    }

    #[test]
    fn durations_take_bare_numbers_in_their_unit_or_a_unit() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        for (flag, value, expected) in [
            ("-t", "250", ms(250)),
            ("-t", "2s", s(2)),
            ("-t", "500ms", ms(500)),
            ("-t", "1m", s(60)),
        ] {
            let timeout = parse(&[flag, value, "x:1"]).check.timeout;
            assert_eq!(timeout, expected, "{flag} {value}");
        }
        for (flag, value, expected) in [
            ("-i", "2", s(2)),
            ("-i", "0.2", ms(200)),
            ("-i", "300ms", ms(300)),
            ("--wait", "30", s(30)),
            ("--wait", "1m", s(60)),
        ] {
            let check = parse(&[flag, value, "x:1"]).check;
            let given = if flag == "-i" {
                check.interval
            } else {
                check.wait
            };
            assert_eq!(given, Some(expected), "{flag} {value}");
        }
        assert_eq!(
            parse(&["-i", "0", "-n", "0", "x:1"]).check.interval,
            Some(Duration::ZERO)
        );
        assert!(refused(&["-t", "0", "x:1"]).contains("greater than zero"));
        assert!(refused(&["-t", "0ms", "x:1"]).contains("greater than zero"));
        assert!(refused(&["-t", "fast", "x:1"]).contains("500ms"));
        assert!(refused(&["-t", "1.2.3", "x:1"]).contains("500ms"));
        assert!(refused(&["-i", "-1", "x:1"]).contains("-1"));
        assert!(refused(&["--wait", "0", "x:1"]).contains("greater than zero"));
        assert!(refused(&["-t", "1e400", "x:1"]).contains("500ms"));
        assert!(refused(&["-i", "99999999999999999999999", "x:1"]).contains("too long"));
        assert!(refused(&["--wait", "101y", "x:1"]).contains("too long"));
        assert!(refused(&["-i", "3200000000", "x:1"]).contains("too long"));
    }

    #[test]
    fn counts_must_be_positive() {
        assert!(refused(&["-c", "0", "x:1"]).contains("-c"));
        assert!(refused(&["--max-in-flight", "0", "x:1"]).contains("max-in-flight"));
        assert!(refused(&["-n", "-1", "x:1"]).contains("-1"));
    }

    #[test]
    fn contradictory_flags_are_refused() {
        assert!(refused(&["-4", "-6", "x:1"]).contains("cannot be used with"));
        assert!(refused(&["-q", "--json", "x:1"]).contains("cannot be used with"));
        assert!(refused(&["-q", "-v", "x:1"]).contains("cannot be used with"));
        assert!(refused(&["--open", "-s", "x:1"]).contains("cannot be used with"));
        assert!(refused(&["--wait", "5", "-n", "3", "x:1"]).contains("cannot be used with"));
        assert!(refused(&["x:1", "--", "echo"]).contains("--wait"));
    }

    #[test]
    fn waiting_takes_a_command_after_the_targets() {
        let check = parse(&[
            "--wait",
            "30s",
            "db:5432",
            "cache:6379",
            "--",
            "./start.sh",
            "-x",
        ])
        .check;
        assert_eq!(check.targets.specs, ["db:5432", "cache:6379"]);
        assert_eq!(
            check.command,
            [OsString::from("./start.sh"), OsString::from("-x")]
        );
    }

    #[test]
    fn output_and_address_flags() {
        let check = parse(&[
            "--json",
            "--open",
            "-6",
            "--all-addresses",
            "--source",
            "::1",
            "--source",
            "127.0.0.1",
            "--interface",
            "lo",
            "x:1",
        ])
        .check;
        assert!(check.json && check.open && check.targets.ipv6 && check.all_addresses);
        assert_eq!(check.targets.source.len(), 2);
        assert_eq!(check.targets.interface.as_deref(), Some("lo"));
        assert!(refused(&["--source", "localhost", "x:1"]).contains("--source"));
    }

    #[test]
    fn subcommands_coexist_with_positional_targets() {
        let Some(Command::Bench(bench)) = parse(&["bench"]).command else {
            panic!("bench is a subcommand");
        };
        assert_eq!(
            (bench.target, bench.count, bench.concurrency),
            (None, 100_000, 100)
        );
        let Some(Command::Bench(bench)) = parse(&[
            "bench",
            "127.0.0.1:80",
            "-n",
            "10",
            "-c",
            "2",
            "-t",
            "2s",
            "--json",
        ])
        .command
        else {
            panic!("bench is a subcommand");
        };
        assert_eq!(bench.target.as_deref(), Some("127.0.0.1:80"));
        assert_eq!((bench.count, bench.concurrency), (10, 2));
        assert_eq!(bench.timeout, Duration::from_secs(2));
        assert!(bench.json);
        assert!(matches!(
            parse(&["completions", "bash"]).command,
            Some(Command::Completions {
                shell: clap_complete::Shell::Bash
            })
        ));
    }

    #[test]
    fn help_is_grouped_and_explains_exit_codes() {
        let help = refused(&["--help"]);
        for heading in [
            "Targets:",
            "Checks:",
            "Repeat:",
            "Output:",
            "Waiting:",
            "Exit status:",
        ] {
            assert!(help.contains(heading), "{heading} missing from\n{help}");
        }
    }
}
