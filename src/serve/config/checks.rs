//! The checks of a configuration file: the file as TOML gives it, each value checked and
//! every target expanded and named, and the problems found, placed in the text.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tcp_shaker::{Family, Host};
use toml::{Spanned, Value};

use super::{
    InitialState, IpProtocol, Knobs, LogFormat, MAX_TARGETS, NamedTarget, Position, ProbeConfig,
    ProbeModule, Problem, ServeConfig, Shard, SpannedRule, TargetEntry,
};
use crate::targets::{Spec, parse_spec, shorten};

/// The highest `rise` and `fall`.
const MAX_COUNT: u32 = 1000;
/// The longest duration taken: a century is as good as forever, and keeps deadlines
/// representable.
const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// The label names that tcp-checker or Prometheus set themselves.
const RESERVED_LABELS: [&str; 4] = ["target", "group", "instance", "job"];
/// How a duration is written, repeated in error messages.
const DURATION_FORMS: &str = "write e.g. \"2s\" or \"500ms\"";

/// The configuration of `text`, read from `path`, or its problems in the order of the text.
pub(super) fn check(text: &str, path: &Path) -> Result<ServeConfig, Vec<Problem>> {
    let mut checks = Checks {
        text,
        file: path,
        problems: Vec::new(),
    };
    let config = match toml::from_str::<RawFile>(text) {
        Ok(raw) => checks.config(raw),
        Err(error) => {
            let span = error.span().unwrap_or(0..0);
            checks.report(span, String::new(), error.message().to_owned());
            ServeConfig::default()
        }
    };
    let mut problems = checks.problems;
    if problems.is_empty() {
        return Ok(config);
    }
    problems.sort_by_key(|problem| (problem.position.line, problem.position.column));
    Err(problems)
}

/// The file as written, before its values are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawFile {
    listen: Option<Spanned<String>>,
    log_format: Option<LogFormat>,
    shard: Option<Spanned<String>>,
    #[serde(default)]
    source: Vec<Spanned<String>>,
    interface: Option<Spanned<String>>,
    #[serde(default)]
    defaults: RawTable,
    #[serde(default)]
    targets: Vec<Spanned<RawTable>>,
    #[serde(default)]
    probe: RawProbe,
}

/// `[defaults]` or a `[[targets]]` entry as written: the knobs, and a target's own keys,
/// which `[defaults]` refuses. One table for both, since serde's `flatten` would lose the
/// spans and let unknown keys through.
#[derive(Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of knobs (interval, rise, labels...)"
)]
struct RawTable {
    interval: Option<Spanned<Value>>,
    fast_interval: Option<Spanned<Value>>,
    down_interval: Option<Spanned<Value>>,
    timeout: Option<Spanned<Value>>,
    rise: Option<Spanned<Value>>,
    fall: Option<Spanned<Value>>,
    initial_state: Option<Spanned<String>>,
    family: Option<FamilyName>,
    #[serde(default)]
    labels: BTreeMap<Spanned<String>, String>,
    address: Option<Spanned<String>>,
    addresses: Option<Spanned<Vec<Spanned<String>>>>,
    name: Option<Spanned<String>>,
}

/// `[probe]` as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the [probe] table")]
struct RawProbe {
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    timeout_offset: Option<Spanned<Value>>,
    #[serde(default)]
    modules: BTreeMap<String, RawModule>,
}

/// A `[probe.modules.NAME]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [probe.modules.NAME] table")]
struct RawModule {
    timeout: Option<Spanned<Value>>,
    preferred_ip_protocol: Option<IpProtocol>,
    ip_protocol_fallback: Option<bool>,
}

/// A `family` as written.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FamilyName {
    /// `"any"`.
    Any,
    /// `"ipv4"`.
    Ipv4,
    /// `"ipv6"`.
    Ipv6,
}

impl From<FamilyName> for Family {
    fn from(name: FamilyName) -> Family {
        match name {
            FamilyName::Any => Family::Any,
            FamilyName::Ipv4 => Family::V4,
            FamilyName::Ipv6 => Family::V6,
        }
    }
}

/// A value as the file writes it, shortened for a message: `2`, `"2"`, `[1, 2]`.
fn as_written(value: &Value) -> String {
    shorten(&value.to_string())
}

/// The checks of a file's values, and the problems they found.
struct Checks<'a> {
    text: &'a str,
    file: &'a Path,
    problems: Vec<Problem>,
}

impl Checks<'_> {
    /// The configuration of `raw`, with a problem reported for each value refused.
    fn config(&mut self, raw: RawFile) -> ServeConfig {
        let defaults = self.knobs(&raw.defaults, "defaults");
        self.target_keys_refused(&raw.defaults);
        let targets = self.targets(&raw.targets, &defaults);
        ServeConfig {
            listen: raw.listen.and_then(|listen| {
                let parsed = listen.get_ref().parse::<SocketAddr>().ok();
                let why =
                    "is not a socket address (write e.g. \"127.0.0.1:9476\" or \"[::]:9476\")";
                self.or_report(parsed, &listen, "listen", why)
            }),
            log_format: raw.log_format,
            shard: raw
                .shard
                .and_then(|shard| match shard.get_ref().parse::<Shard>() {
                    Ok(parsed) => Some(parsed),
                    Err(why) => {
                        self.or_report(None, &shard, "shard", &format!("is refused: {why}"))
                    }
                }),
            source: self.sources(&raw.source),
            interface: raw.interface.and_then(|name| {
                let given = Some(name.get_ref().clone()).filter(|name| !name.is_empty());
                self.or_report(given, &name, "interface", "is not an interface name")
            }),
            defaults,
            targets,
            probe: self.probe(&raw.probe),
        }
    }

    /// `value`, or a problem `"written" why` reported at `written` for `None`.
    fn or_report<T>(
        &mut self,
        value: Option<T>,
        written: &Spanned<String>,
        key: &str,
        why: &str,
    ) -> Option<T> {
        if value.is_none() {
            let message = format!("{:?} {why}", shorten(written.get_ref()));
            self.report(written.span(), key.to_owned(), message);
        }
        value
    }

    /// Reports a problem of `key` at `span` (byte offsets into the text).
    fn report(&mut self, span: Range<usize>, key: String, message: String) {
        let (start, end) = (self.boundary(span.start), self.boundary(span.end));
        let line_start = self.text[..start]
            .rfind('\n')
            .map_or(0, |newline| newline + 1);
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |at| start + at);
        let pad: String = (self.text[line_start..start].chars())
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let width = self.text[start..end.clamp(start, line_end)].chars().count();
        let position = self.position(start);
        let gutter = " ".repeat(position.line.to_string().len());
        let source = self.text[line_start..line_end].trim_end_matches('\r');
        let excerpt = format!(
            "{gutter} |\n{} | {source}\n{gutter} | {pad}{}",
            position.line,
            "^".repeat(width.max(1))
        );
        self.problems.push(Problem {
            position,
            key,
            message,
            excerpt,
        });
    }

    /// The position of the byte at `offset`.
    fn position(&self, offset: usize) -> Position {
        let before = &self.text[..self.boundary(offset)];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        Position {
            file: self.file.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    /// `offset`, or the start of the character it falls in, within the text.
    fn boundary(&self, offset: usize) -> usize {
        (0..=offset.min(self.text.len()))
            .rev()
            .find(|&at| self.text.is_char_boundary(at))
            .unwrap_or(0)
    }

    /// The knobs of `raw`, a table at `at`.
    fn knobs(&mut self, raw: &RawTable, at: &str) -> Knobs {
        let key = |name: &str| format!("{at}.{name}");
        let mut labels = BTreeMap::new();
        for (name, value) in &raw.labels {
            match label_name_problem(name.get_ref()) {
                Some(why) => {
                    let message = format!("{:?} {why}", shorten(name.get_ref()));
                    self.report(name.span(), key("labels"), message);
                }
                None => drop(labels.insert(name.get_ref().clone(), value.clone())),
            }
        }
        Knobs {
            interval: self.duration(raw.interval.as_ref(), key("interval"), false),
            fast_interval: self.duration(raw.fast_interval.as_ref(), key("fast_interval"), false),
            down_interval: self.duration(raw.down_interval.as_ref(), key("down_interval"), false),
            timeout: self.duration(raw.timeout.as_ref(), key("timeout"), false),
            rise: self.count(raw.rise.as_ref(), key("rise")),
            fall: self.count(raw.fall.as_ref(), key("fall")),
            initial_state: raw.initial_state.as_ref().and_then(|state| {
                let parsed = state.get_ref().parse::<InitialState>().ok();
                let why = "is not a state (write \"fully-up\", \"up\", \"down\" or \"fully-down\")";
                self.or_report(parsed, state, &key("initial_state"), why)
            }),
            family: raw.family.map(Family::from),
            labels,
        }
    }

    /// Reports a target's own keys given in `[defaults]`.
    fn target_keys_refused(&mut self, defaults: &RawTable) {
        let why = "is a target's own key, not a default (write it in a [[targets]] entry)";
        for (key, span) in [
            ("address", defaults.address.as_ref().map(Spanned::span)),
            ("addresses", defaults.addresses.as_ref().map(Spanned::span)),
            ("name", defaults.name.as_ref().map(Spanned::span)),
        ] {
            if let Some(span) = span {
                self.report(span, format!("defaults.{key}"), why.to_owned());
            }
        }
    }

    /// A duration as humantime reads it, at most [`LONGEST`], and above zero unless `zero_ok`.
    fn duration(
        &mut self,
        raw: Option<&Spanned<Value>>,
        key: String,
        zero_ok: bool,
    ) -> Option<Duration> {
        let raw = raw?;
        let message = match raw.get_ref() {
            Value::String(text) => {
                let written = format!("{:?}", shorten(text));
                match humantime::parse_duration(text) {
                    Ok(time) if time.is_zero() && !zero_ok => {
                        format!("{written} is not a duration above zero ({DURATION_FORMS})")
                    }
                    Ok(time) if time > LONGEST => format!("{written} is longer than a century"),
                    Ok(time) => return Some(time),
                    Err(error) => {
                        format!("{written} is not a duration: {error} ({DURATION_FORMS})")
                    }
                }
            }
            other => format!("{} is not a duration ({DURATION_FORMS})", as_written(other)),
        };
        self.report(raw.span(), key, message);
        None
    }

    /// `rise` or `fall`: a whole number from 1 to [`MAX_COUNT`].
    fn count(&mut self, raw: Option<&Spanned<Value>>, key: String) -> Option<u32> {
        let raw = raw?;
        let message = match raw.get_ref().as_integer() {
            Some(number) => match u32::try_from(number) {
                Ok(count) if (1..=MAX_COUNT).contains(&count) => return Some(count),
                _ => format!("{number} is not from 1 to {MAX_COUNT}"),
            },
            None => format!(
                "{} is not a whole number from 1 to {MAX_COUNT}",
                as_written(raw.get_ref())
            ),
        };
        self.report(raw.span(), key, message);
        None
    }

    /// `source`: IP addresses, at most one per family.
    fn sources(&mut self, raw: &[Spanned<String>]) -> Vec<IpAddr> {
        let mut sources: Vec<IpAddr> = Vec::new();
        for (index, written) in raw.iter().enumerate() {
            let key = format!("source[{index}]");
            let why = "is not an IP address (write e.g. \"192.0.2.1\" or \"2001:db8::1\")";
            let Some(ip) =
                self.or_report(written.get_ref().parse::<IpAddr>().ok(), written, &key, why)
            else {
                continue;
            };
            if sources
                .iter()
                .any(|source| source.is_ipv4() == ip.is_ipv4())
            {
                let why = "is a second address of its family; give at most one per family";
                self.or_report(None::<()>, written, &key, why);
            } else {
                sources.push(ip);
            }
        }
        sources
    }

    /// The entries of `[[targets]]`, expanded and named, their knobs over `defaults`.
    fn targets(&mut self, raw: &[Spanned<RawTable>], defaults: &Knobs) -> Vec<TargetEntry> {
        let mut names = Names::default();
        let mut entries = Vec::new();
        for (index, entry) in raw.iter().enumerate() {
            let at = format!("targets[{index}]");
            let knobs = self.knobs(entry.get_ref(), &at);
            let family = knobs.over(defaults).family.unwrap_or_default();
            let mut expanded = Vec::new();
            for (spec, key) in self.specs(entry, &at) {
                let Some(parsed) = self.spec(spec, &key, family) else {
                    continue;
                };
                for target in parsed.into_targets() {
                    if names.total == MAX_TARGETS {
                        let why = format!("takes the file past {MAX_TARGETS} targets, its most");
                        self.or_report(None::<()>, spec, &key, &why);
                        return entries;
                    }
                    names.total += 1;
                    expanded.push((target, spec, names.origins.len()));
                }
                names.origins.push((spec.span(), key));
            }
            let name = entry.get_ref().name.as_ref();
            if let Some(empty) = name.filter(|name| name.get_ref().is_empty()) {
                self.or_report(None::<()>, empty, &format!("{at}.name"), "is not a name");
            }
            let single = expanded.len() == 1;
            let own_name = name.filter(|_| single).map(|name| {
                names.origins.push((name.span(), format!("{at}.name")));
                (name.get_ref().clone(), names.origins.len() - 1)
            });
            let group = name.filter(|_| !single).map(|name| name.get_ref().clone());
            let mut targets = Vec::with_capacity(expanded.len());
            for (target, spec, origin) in expanded {
                let (name, origin) = (own_name.clone()).unwrap_or((target.to_string(), origin));
                self.claim(&mut names, &name, origin);
                let (group, written) = (group.clone(), spec.get_ref().clone());
                targets.push(NamedTarget {
                    name,
                    group,
                    target,
                    written,
                });
            }
            entries.push(TargetEntry { targets, knobs });
        }
        entries
    }

    /// An entry's specs with their keys: `address`, or the items of `addresses`.
    fn specs<'r>(
        &mut self,
        entry: &'r Spanned<RawTable>,
        at: &str,
    ) -> Vec<(&'r Spanned<String>, String)> {
        let raw = entry.get_ref();
        match (&raw.address, &raw.addresses) {
            (Some(address), None) => vec![(address, format!("{at}.address"))],
            (Some(address), Some(_)) => {
                let why = "is given with addresses; give either address or addresses";
                self.or_report(None::<()>, address, &format!("{at}.address"), why);
                Vec::new()
            }
            (None, Some(list)) if list.get_ref().is_empty() => {
                let message = "is empty; give at least one target".to_owned();
                self.report(list.span(), format!("{at}.addresses"), message);
                Vec::new()
            }
            (None, Some(list)) => (list.get_ref().iter().enumerate())
                .map(|(index, spec)| (spec, format!("{at}.addresses[{index}]")))
                .collect(),
            (None, None) => {
                let message = "has no address; give address = \"host:port\" or addresses = [...]";
                self.report(entry.span(), at.to_owned(), message.to_owned());
                Vec::new()
            }
        }
    }

    /// A spec parsed as the command line parses it, an IP address refused if `family` does not
    /// admit it.
    fn spec(&mut self, written: &Spanned<String>, key: &str, family: Family) -> Option<Spec> {
        let parsed = parse_spec(written.get_ref(), Family::Any).and_then(|spec| {
            let (is, only) = match spec.first().host() {
                Host::Ip(ip) if family.admits(*ip) => return Ok(spec),
                Host::Ip(IpAddr::V4(_)) => ("IPv4", "ipv6"),
                Host::Ip(IpAddr::V6(_)) => ("IPv6", "ipv4"),
                Host::Name(_) => return Ok(spec),
            };
            Err(format!(
                "the host is an {is} address, and family is {only:?}"
            ))
        });
        match parsed {
            Ok(spec) => Some(spec),
            Err(why) => self.or_report(None, written, key, &format!("is refused: {why}")),
        }
    }

    /// Takes `name` for a target named at `origin`, or reports it taken already.
    fn claim(&mut self, names: &mut Names, name: &str, origin: usize) {
        let Some(&first) = names.claims.get(name) else {
            names.claims.insert(name.to_owned(), origin);
            return;
        };
        let (Some((span, key)), Some((first_span, first_key))) =
            (names.origins.get(origin), names.origins.get(first))
        else {
            return;
        };
        let message = if first == origin {
            format!("gives the target name {name:?} twice; target names are unique")
        } else {
            let there = self.position(first_span.start);
            format!(
                "the target name {name:?} is taken already, by {first_key} at {there}; target \
                 names are unique"
            )
        };
        self.report(span.clone(), key.clone(), message);
    }

    /// `[probe]`, its rules kept as written, its modules over the default one.
    fn probe(&mut self, raw: &RawProbe) -> ProbeConfig {
        let default = ProbeConfig::default();
        let allow = (raw.allow.iter())
            .map(|rule| SpannedRule {
                text: rule.get_ref().clone(),
                position: self.position(rule.span().start),
            })
            .collect();
        let offset = raw.timeout_offset.as_ref();
        let offset = self.duration(offset, "probe.timeout_offset".to_owned(), true);
        let mut modules = default.modules;
        for (name, module) in &raw.modules {
            let key = format!("probe.modules.{name}.timeout");
            let timeout = self.duration(module.timeout.as_ref(), key, true);
            let module = ProbeModule {
                timeout: timeout.unwrap_or(ProbeModule::default().timeout),
                preferred_ip_protocol: module.preferred_ip_protocol.unwrap_or_default(),
                ip_protocol_fallback: module.ip_protocol_fallback.unwrap_or(true),
            };
            modules.insert(name.clone(), module);
        }
        ProbeConfig {
            allow,
            timeout_offset: offset.unwrap_or(default.timeout_offset),
            modules,
        }
    }
}

/// The target names taken, and where each was given.
#[derive(Default)]
struct Names {
    /// Each name taken, with the index of its origin.
    claims: HashMap<String, usize>,
    /// Where names come from: a spec or a `name`, with its key.
    origins: Vec<(Range<usize>, String)>,
    /// The targets expanded so far.
    total: usize,
}

/// Why `name` is not a label name a file may set, if it is not.
fn label_name_problem(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    let first = chars.next();
    if !first.is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Some(
            "is not a label name: ASCII letters, digits and underscores, not starting with a digit",
        );
    }
    if name.starts_with("__") {
        return Some("is not a label name of a user: names starting with \"__\" are Prometheus's");
    }
    if RESERVED_LABELS.contains(&name) {
        return Some(
            "is a label tcp-checker or Prometheus sets itself (target, group, instance, job)",
        );
    }
    None
}
