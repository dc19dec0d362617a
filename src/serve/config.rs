//! The configuration file of `tcp-checker serve`: its format, read into a [`ServeConfig`] with
//! every value checked and every target expanded and named, and the report of a file refused,
//! each problem at its file, line and column. The rules of `[probe].allow` alone are left to
//! the probe's own module to check: they are kept with their positions.
//!
//! # Format
//!
//! A TOML file. Every key is optional, a key not listed here is refused, and the top-level
//! keys come before the first `[table]`, as TOML has it:
//!
//! ```toml
//! listen = "127.0.0.1:9476"   # socket address to serve HTTP on (IP address and port)
//! log_format = "text"        # "text" | "json"
//! shard = "0/3"               # I/N, 0 <= I < N: check shard I of N (from 0: a pod ordinal)
//! source = ["192.0.2.1"]      # local addresses to check from, at most one per family
//! interface = "eth0"          # network interface to check through
//!
//! [defaults]                  # knobs for every target that does not set them itself
//! interval = "2s"             # HAProxy's inter: in a steady state (default 2s)
//! fast_interval = "1s"        # fastinter: while the state changes (default: the interval)
//! down_interval = "5s"        # downinter: while fully down (default: the interval)
//! timeout = "1s"              # a check's, resolution included (default 1s, or a shorter interval)
//! rise = 2                    # successes in a row that bring a target up, 1..=1000 (default 2)
//! fall = 3                    # failures in a row that bring it down, 1..=1000 (default 3)
//! initial_state = "up"        # "fully-up" | "up" | "down" | "fully-down" (default "up")
//! family = "any"              # "any" | "ipv4" | "ipv6": the addresses checked (default "any")
//! labels = { env = "prod" }   # labels of the targets' metrics
//!
//! [[targets]]                 # one target, or a group of them; any number of entries
//! addresses = ["db1:5432", "db2:5432,5433", "web:8000-8010"]   # specs, as on the command line
//! name = "db"                 # one target: its name; several: the group's (label `group`)
//! labels = { team = "data" }  # merged over [defaults].labels, winning
//! interval = "1s"             # any knob of [defaults], winning over it
//!
//! [[targets]]
//! address = "cache:6379"      # `addresses = ["cache:6379"]`; not with `addresses`
//!
//! [probe]                     # the blackbox-compatible /probe
//! allow = ["127.0.0.0/8"]     # who may be probed: rules checked by the probe's module
//! timeout_offset = "500ms"    # blackbox's --timeout-offset, zero allowed (default 0.5s)
//!
//! [probe.modules.tcp_connect] # /probe?module=NAME; tcp_connect exists even if not written
//! timeout = "5s"              # the probe's cap; "0s": none of its own, as blackbox (default 5s)
//! preferred_ip_protocol = "ip6"   # "ip4" | "ip6", as blackbox (default "ip6")
//! ip_protocol_fallback = true     # none of the preferred family: try the other (default true)
//! ```
//!
//! Durations are written as humantime reads them (`"500ms"`, `"2s"`, `"1m30s"`), at most a
//! century, and the knobs' above zero. A spec is refused in the command line's words, and an
//! IP address of the other family than the entry's `family`. An entry that expands to one
//! target names it with its `name`, by default its address (`host:port`); one that expands to
//! several names each by its address, and its `name`, if any, is the group's. Target names are
//! unique over the file (groups may share a name), and a file expands to at most
//! [`MAX_TARGETS`] targets. Label names are Prometheus's, `[a-zA-Z_][a-zA-Z0-9_]*`, not
//! starting with `__`, and none of `target`, `group`, `instance` and `job`; values are any
//! string.
//!
//! # Errors
//!
//! Each problem is reported as `file:line:column: key: message` (lines and columns, in
//! characters, from 1; array indexes in keys, `targets[0]`, from 0), followed by its line with
//! carets under the offending text. A mistake of TOML itself (syntax, a value's type, an
//! unknown key) stops the reading and is reported alone; every other problem is found, and
//! they are reported in the order of the file.

mod checks;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tcp_shaker::{Family, Target};

pub use super::log::LogFormat;
pub use super::shard::Shard;
pub use tcp_shaker::health::InitialState;
use tcp_shaker::health::Policy;

/// The most targets a file may expand to (`host:1-65535` alone is 65535).
pub const MAX_TARGETS: usize = 1_000_000;
/// The probe module that exists whether the file names it or not.
pub const DEFAULT_MODULE: &str = "tcp_connect";
/// How many problems an error shows; the rest are counted.
const SHOWN_PROBLEMS: usize = 20;

/// A configuration file, checked. `ServeConfig::default()` is the configuration without one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServeConfig {
    /// The address to serve HTTP on; `None`: the command line's, or its default.
    pub listen: Option<SocketAddr>,
    /// How log lines are written; `None`: the command line's choice.
    pub log_format: Option<LogFormat>,
    /// The part of the targets this instance checks; `None`: all of them.
    pub shard: Option<Shard>,
    /// The local addresses checks are sent from, at most one per address family.
    pub source: Vec<IpAddr>,
    /// The network interface checks are sent through.
    pub interface: Option<String>,
    /// `[defaults]`, as written (already merged into each entry's knobs).
    pub defaults: Knobs,
    /// The `[[targets]]` entries, in the order written.
    pub targets: Vec<TargetEntry>,
    /// `[probe]`: the blackbox-compatible `/probe` endpoint.
    pub probe: ProbeConfig,
}

/// The settings of a target's checks and state, each `None` where not written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Knobs {
    /// HAProxy's `inter`: the time between checks of a target in a steady state.
    pub interval: Option<Duration>,
    /// HAProxy's `fastinter`: the time between checks while the state is changing.
    pub fast_interval: Option<Duration>,
    /// HAProxy's `downinter`: the time between checks while the target is fully down.
    pub down_interval: Option<Duration>,
    /// Each check's timeout, name resolution included.
    pub timeout: Option<Duration>,
    /// The successes in a row that bring a down target up.
    pub rise: Option<u32>,
    /// The failures in a row that bring an up target down.
    pub fall: Option<u32>,
    /// The state a target starts in.
    pub initial_state: Option<InitialState>,
    /// Which addresses of a host name are checked.
    pub family: Option<Family>,
    /// Labels added to the target's metrics.
    pub labels: BTreeMap<String, String>,
}

impl Knobs {
    /// These knobs over `base`: each knob of `self` that is set wins, and labels are merged,
    /// `self`'s winning.
    pub fn over(&self, base: &Knobs) -> Knobs {
        let mut labels = base.labels.clone();
        labels.extend(self.labels.clone());
        Knobs {
            interval: self.interval.or(base.interval),
            fast_interval: self.fast_interval.or(base.fast_interval),
            down_interval: self.down_interval.or(base.down_interval),
            timeout: self.timeout.or(base.timeout),
            rise: self.rise.or(base.rise),
            fall: self.fall.or(base.fall),
            initial_state: self.initial_state.or(base.initial_state),
            family: self.family.or(base.family),
            labels,
        }
    }

    /// The health policy these knobs set, the library's defaults (HAProxy's) for the rest;
    /// an unset timeout is the library's (1 s) or the interval, whichever is shorter.
    pub fn policy(&self) -> Policy {
        let defaults = Policy::default();
        let interval = self.interval.unwrap_or(defaults.interval);
        Policy {
            interval,
            fast_interval: self.fast_interval,
            down_interval: self.down_interval,
            timeout: self.timeout.unwrap_or(defaults.timeout.min(interval)),
            rise: self.rise.unwrap_or(defaults.rise),
            fall: self.fall.unwrap_or(defaults.fall),
            initial_state: self.initial_state.unwrap_or(defaults.initial_state),
            family: self.family.unwrap_or(defaults.family),
        }
    }
}

/// One `[[targets]]` entry: its targets and their knobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetEntry {
    /// The targets of its specs, expanded, in the order written.
    pub targets: Vec<NamedTarget>,
    /// The entry's own knobs, as written (not merged over `[defaults]`, so that flags can
    /// come between the two).
    pub knobs: Knobs,
}

/// A target and its names. An entry that expands to one target names it with its `name` (by
/// default its address, `host:port`); an entry that expands to several names each by its
/// address, and its `name`, if any, is the group's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedTarget {
    /// The target's name, unique over the file.
    pub name: String,
    /// The name of the entry's group (the `group` label), for an entry of several targets.
    pub group: Option<String>,
    /// The target to check.
    pub target: Target,
    /// The spec it came from, as written (`web:8000-8010`).
    pub written: String,
}

/// `[probe]`: who may ask for probes, and the modules they may ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// The rules of `allow`, unchecked, each with where it is written.
    pub allow: Vec<SpannedRule>,
    /// Blackbox's `--timeout-offset`: taken off the scrape timeout Prometheus sends.
    pub timeout_offset: Duration,
    /// The modules by name; [`DEFAULT_MODULE`] among them.
    pub modules: BTreeMap<String, ProbeModule>,
}

impl Default for ProbeConfig {
    /// No rules, an offset of 0.5s (blackbox's), and only the default module.
    fn default() -> ProbeConfig {
        ProbeConfig {
            allow: Vec::new(),
            timeout_offset: Duration::from_millis(500),
            modules: BTreeMap::from([(DEFAULT_MODULE.to_owned(), ProbeModule::default())]),
        }
    }
}

/// A rule's text and where it is written, for the rule's own checks to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpannedRule {
    /// The rule, as written.
    pub text: String,
    /// Where its string starts.
    pub position: Position,
}

/// A `/probe?module=NAME` module, as blackbox's TCP prober's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeModule {
    /// The longest a probe takes: the probe takes the shorter of this and the scrape timeout
    /// less the offset. Zero: no cap of its own, as blackbox's 0.
    pub timeout: Duration,
    /// The family of a host name's addresses tried first.
    pub preferred_ip_protocol: IpProtocol,
    /// Whether the other family is tried when the preferred one has no address.
    pub ip_protocol_fallback: bool,
}

impl Default for ProbeModule {
    /// A 5s timeout, IPv6 preferred, with fallback (blackbox's, but for the timeout).
    fn default() -> ProbeModule {
        ProbeModule {
            timeout: Duration::from_secs(5),
            preferred_ip_protocol: IpProtocol::V6,
            ip_protocol_fallback: true,
        }
    }
}

/// An IP version, in blackbox's words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum IpProtocol {
    /// `"ip4"`.
    #[serde(rename = "ip4")]
    V4,
    /// `"ip6"`.
    #[serde(rename = "ip6")]
    #[default]
    V6,
}

/// A place in a file: lines and columns (in characters) from 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// The file, as given.
    pub file: PathBuf,
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
}

impl fmt::Display for Position {
    /// `file:line:column`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One thing wrong in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where the offending key or value starts.
    pub position: Position,
    /// Its key, `targets[1].interval`; empty for a mistake of TOML itself.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// The line, and the carets under the offending text.
    excerpt: String,
}

impl fmt::Display for Problem {
    /// `file:line:column: key: message`, on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key.as_str() {
            "" => write!(f, "{}: {}", self.position, self.message),
            key => write!(f, "{}: {key}: {}", self.position, self.message),
        }
    }
}

/// A configuration file refused: unreadable, or with one or more problems.
#[derive(Debug)]
pub struct ConfigError(Failure);

/// Why a file is refused.
#[derive(Debug)]
enum Failure {
    /// It could not be read.
    Unreadable {
        /// The file, as given.
        file: PathBuf,
        /// Why not, as the system says it.
        error: io::Error,
    },
    /// Its problems, in the order of the file.
    Invalid(Vec<Problem>),
}

#[cfg(test)]
impl ConfigError {
    /// The problems found in the file (none if it could not be read).
    fn problems(&self) -> &[Problem] {
        match &self.0 {
            Failure::Unreadable { .. } => &[],
            Failure::Invalid(problems) => problems,
        }
    }
}

impl fmt::Display for ConfigError {
    /// Each problem on its line, followed by the offending line with carets under the
    /// offending text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let problems = match &self.0 {
            Failure::Unreadable { file, error } => {
                return write!(f, "{}: cannot read the file: {error}", file.display());
            }
            Failure::Invalid(problems) => problems,
        };
        for (index, problem) in problems.iter().take(SHOWN_PROBLEMS).enumerate() {
            let separator = if index == 0 { "" } else { "\n" };
            write!(f, "{separator}{problem}\n{}", problem.excerpt)?;
        }
        match problems.len().checked_sub(SHOWN_PROBLEMS) {
            Some(more @ 1..) => write!(f, "\n… and {more} more problems"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads and checks the configuration file at `path`.
pub fn load(path: &Path) -> Result<ServeConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigError(Failure::Unreadable {
            file: path.to_owned(),
            error,
        })
    })?;
    parse(&text, path)
}

/// Checks the configuration `text`, read from `path` (named in errors).
pub fn parse(text: &str, path: &Path) -> Result<ServeConfig, ConfigError> {
    checks::check(text, path).map_err(|problems| ConfigError(Failure::Invalid(problems)))
}

#[cfg(test)]
mod tests;
