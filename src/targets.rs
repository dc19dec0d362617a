//! Target specs (`host:port`, `[v6]:port`, `host:80,443`, `host:8000-8100`) and where they come
//! from: arguments, `-a`, and files of one spec a line.
//!
//! Host validation is the library's ([`Target::new`]); this module only splits the host from the
//! port list, expands the list, and remembers where each bad spec came from so that it can be
//! reported with its file and line while the good ones still run.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::net::Ipv6Addr;
use std::ops::RangeInclusive;
use std::path::Path;

use anyhow::Context;
use tcp_shaker::{CheckError, Family, Host, Target};

/// How a spec's host and ports are written, repeated in error messages.
const SPEC_FORMS: &str = "host:port, [v6]:port, host:80,443 or host:8000-8100";

/// Where a spec was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A positional argument or `-a`.
    Argument,
    /// A line of a file given with `-f` (`path` is `<stdin>` for `-f -`).
    File { path: String, line: usize },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Argument => f.write_str("argument"),
            Source::File { path, line } => write!(f, "{path}:{line}"),
        }
    }
}

/// A spec that could not be used, with where it came from and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTarget {
    pub source: Source,
    pub input: String,
    pub reason: String,
}

impl fmt::Display for InvalidTarget {
    /// `FILE:LINE: "text": reason`, or `argument "text": reason`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            Source::Argument => write!(f, "argument {:?}: {}", self.input, self.reason),
            Source::File { .. } => write!(f, "{}: {:?}: {}", self.source, self.input, self.reason),
        }
    }
}

/// The targets to check, in the order given and without duplicates, and the specs refused.
#[derive(Debug, Default)]
pub struct TargetList {
    pub targets: Vec<Target>,
    pub invalid: Vec<InvalidTarget>,
    seen: HashSet<Target>,
    family: Family,
}

impl TargetList {
    /// An empty list that refuses IP addresses `family` does not admit (`-4`, `-6`).
    pub fn new(family: Family) -> TargetList {
        TargetList {
            family,
            ..TargetList::default()
        }
    }

    /// Adds the targets of one spec, or records why it is refused.
    pub fn add_spec(&mut self, spec: &str, source: Source) {
        match parse_spec(spec).and_then(|targets| self.admit_family(targets)) {
            Ok(targets) => {
                for target in targets {
                    if self.seen.insert(target.clone()) {
                        self.targets.push(target);
                    }
                }
            }
            Err(reason) => self.invalid.push(InvalidTarget {
                source,
                input: spec.to_owned(),
                reason,
            }),
        }
    }

    fn admit_family(&self, targets: Vec<Target>) -> Result<Vec<Target>, String> {
        let family = self.family;
        match targets.first().map(Target::host) {
            Some(Host::Ip(ip)) if !family.admits(*ip) => {
                let (is, asked) = if ip.is_ipv4() {
                    ("IPv4", "-6 asks for IPv6")
                } else {
                    ("IPv6", "-4 asks for IPv4")
                };
                Err(format!("the host is an {is} address, and {asked} only"))
            }
            _ => Ok(targets),
        }
    }

    /// Adds the specs of a file (`-` for standard input): one a line, blank lines and `#`
    /// comments ignored. Fails only if the file cannot be read.
    pub fn add_file(&mut self, path: &Path) -> anyhow::Result<()> {
        if path == Path::new("-") {
            return self
                .add_lines(io::stdin().lock(), "<stdin>")
                .context("could not read targets from standard input");
        }
        let file = File::open(path)
            .with_context(|| format!("could not open the targets file {}", path.display()))?;
        self.add_lines(BufReader::new(file), &path.display().to_string())
            .with_context(|| format!("could not read the targets file {}", path.display()))
    }

    fn add_lines(&mut self, reader: impl BufRead, name: &str) -> io::Result<()> {
        for (index, line) in reader.split(b'\n').enumerate() {
            let line = line?;
            let source = Source::File {
                path: name.to_owned(),
                line: index + 1,
            };
            match String::from_utf8(line) {
                Ok(text) => {
                    let spec = strip_comment(&text).trim();
                    if !spec.is_empty() {
                        self.add_spec(spec, source);
                    }
                }
                Err(error) => self.invalid.push(InvalidTarget {
                    source,
                    input: String::from_utf8_lossy(error.as_bytes()).trim().to_owned(),
                    reason: "the line is not valid UTF-8".to_owned(),
                }),
            }
        }
        Ok(())
    }
}

fn strip_comment(line: &str) -> &str {
    line.split_once('#').map_or(line, |(before, _)| before)
}

/// The targets a spec stands for, in the order written, or why the spec is refused.
///
/// The host is everything before the last `:` (or inside `[ ]` for IPv6), validated by
/// [`Target::new`]; the port list is comma-separated ports and ranges `a-b` with
/// `1 <= a <= b <= 65535`.
pub fn parse_spec(spec: &str) -> Result<Vec<Target>, String> {
    let (host, ports) = split_host_ports(spec)?;
    let ranges = parse_port_list(ports)?;
    let mut ports = ranges.into_iter().flatten();
    let Some(first_port) = ports.next() else {
        return Ok(Vec::new());
    };
    let first = Target::new(host, first_port).map_err(|error| reason_of(&error))?;
    let mut targets = Vec::with_capacity(ports.size_hint().0 + 1);
    for port in ports {
        targets.push(first.with_port(port).map_err(|error| reason_of(&error))?);
    }
    targets.insert(0, first);
    Ok(targets)
}

/// Splits `[v6]:ports` or `host:ports` at the last `:`.
fn split_host_ports(spec: &str) -> Result<(&str, &str), String> {
    if spec.is_empty() {
        return Err(format!("the target is empty; write {SPEC_FORMS}"));
    }
    if spec.chars().any(char::is_whitespace) {
        return Err(format!(
            "a target contains no spaces; write one target ({SPEC_FORMS}) per argument or line"
        ));
    }
    if let Some(rest) = spec.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err("the '[' of an IPv6 address is not closed; write [address]:port".into());
        };
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err("the text inside [ ] is not an IPv6 address".into());
        }
        let Some(ports) = after.strip_prefix(':') else {
            return Err("a port must follow the bracketed IPv6 address, as in [::1]:80".into());
        };
        return Ok((inside, ports));
    }
    let Some((host, ports)) = spec.rsplit_once(':') else {
        return Err(format!("the port is missing; write {SPEC_FORMS}"));
    };
    if host.contains(':') {
        return Err(
            "an IPv6 address needs brackets around it, as in [::1]:80 or [::1]:80,443".into(),
        );
    }
    if host.is_empty() {
        return Err(format!("the host is missing; write {SPEC_FORMS}"));
    }
    Ok((host, ports))
}

/// `80`, `80,443`, `8000-8100`, `22,80,8000-8010`: the port ranges, in the order written.
fn parse_port_list(list: &str) -> Result<Vec<RangeInclusive<u16>>, String> {
    if list.is_empty() {
        return Err(format!("the port is missing; write {SPEC_FORMS}"));
    }
    list.split(',')
        .map(|item| {
            if item.is_empty() {
                return Err(format!("the port list {list:?} has an empty entry"));
            }
            match item.split_once('-') {
                Some((first, last)) => {
                    let (first, last) = (parse_port(first)?, parse_port(last)?);
                    if first > last {
                        return Err(format!(
                            "the port range {item} goes backwards; write {last}-{first}"
                        ));
                    }
                    Ok(first..=last)
                }
                None => parse_port(item).map(|port| port..=port),
            }
        })
        .collect()
}

fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{text:?} is not a port; ports are numbers from 1 to 65535"
        ));
    }
    match text.parse::<u16>() {
        Ok(0) => Err("port 0 cannot be checked; ports go from 1 to 65535".into()),
        Ok(port) => Ok(port),
        Err(_) => Err(format!(
            "port {text} is out of range; ports go from 1 to 65535"
        )),
    }
}

/// The reason the library gives, without its `invalid target "host:port": ` headline (the spec
/// is quoted by [`InvalidTarget`] already).
fn reason_of(error: &CheckError) -> String {
    error
        .detail()
        .map_or_else(|| error.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn targets(spec: &str) -> Vec<String> {
        parse_spec(spec)
            .unwrap_or_else(|reason| panic!("{spec:?} refused: {reason}"))
            .iter()
            .map(Target::to_string)
            .collect()
    }

    fn refusal(spec: &str) -> String {
        match parse_spec(spec) {
            Ok(targets) => panic!("{spec:?} accepted as {targets:?}"),
            Err(reason) => reason,
        }
    }

    #[test]
    fn single_ports_lists_and_ranges_expand_in_order() {
        assert_eq!(targets("db:5432"), ["db:5432"]);
        assert_eq!(targets("[::1]:80,443"), ["[::1]:80", "[::1]:443"]);
        assert_eq!(
            targets("127.0.0.1:8000-8002"),
            ["127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:8002"]
        );
        assert_eq!(
            targets("host:22,80,8000-8001,1"),
            ["host:22", "host:80", "host:8000", "host:8001", "host:1"]
        );
        assert_eq!(targets("h:1-1"), ["h:1"]);
        assert_eq!(parse_spec("127.0.0.1:1-65535").map(|t| t.len()), Ok(65535));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        assert!(refusal("").contains("empty"));
        assert!(refusal("db").contains("port is missing"));
        assert!(refusal("db:").contains("port is missing"));
        assert!(refusal(":80").contains("host is missing"));
        assert!(refusal("db:0").contains("port 0"));
        assert!(refusal("db:65536").contains("out of range"));
        assert!(refusal("db:http").contains("not a port"));
        assert!(refusal("db:+80").contains("not a port"));
        assert!(refusal("db:80,").contains("empty entry"));
        assert!(refusal("db:,80").contains("empty entry"));
        assert!(refusal("db:90-80").contains("write 80-90"));
        assert!(refusal("db:80-").contains("not a port"));
        assert!(refusal("db:1-2-3").contains("not a port"));
        assert!(refusal("db:0-5").contains("port 0"));
        assert!(refusal("::1:80").contains("brackets"));
        assert!(refusal("::1").contains("brackets"));
        assert!(refusal("[::1").contains("not closed"));
        assert!(refusal("[::1]").contains("port must follow"));
        assert!(refusal("[::1]80").contains("port must follow"));
        assert!(refusal("[127.0.0.1]:80").contains("not an IPv6"));
        assert!(refusal("db:80 cache:6379").contains("no spaces"));
        assert!(refusal("exa_mple!:80").contains("neither an IP"));
        assert_eq!(
            refusal("999.1.1.1:80"),
            "the host is not a valid IPv4 address"
        );
    }

    #[test]
    fn files_skip_blank_lines_and_comments_and_number_bad_lines() {
        let mut list = TargetList::default();
        let text = "# services\n\ndb:5432  # the database\n  cache:6379\nbad line\n\n[::1]:1-2\r\ndb:5432\n";
        list.add_lines(text.as_bytes(), "targets.txt").unwrap();
        let names: Vec<String> = list.targets.iter().map(Target::to_string).collect();
        assert_eq!(names, ["db:5432", "cache:6379", "[::1]:1", "[::1]:2"]);
        assert_eq!(list.invalid.len(), 1);
        let invalid = &list.invalid[0];
        assert_eq!(
            invalid.source,
            Source::File {
                path: "targets.txt".into(),
                line: 5
            }
        );
        assert!(
            invalid
                .to_string()
                .starts_with("targets.txt:5: \"bad line\": "),
            "{invalid}"
        );
    }

    #[test]
    fn invalid_lines_that_are_not_text_are_reported() {
        let mut list = TargetList::default();
        list.add_lines(&b"db:1\n\xff\xfe:80\n"[..], "f").unwrap();
        assert_eq!(list.targets.len(), 1);
        assert_eq!(list.invalid[0].reason, "the line is not valid UTF-8");
    }

    #[test]
    fn addresses_of_the_other_family_are_refused() {
        let mut list = TargetList::new(Family::V6);
        list.add_spec("127.0.0.1:80", Source::Argument);
        list.add_spec("[::1]:80", Source::Argument);
        list.add_spec("localhost:80", Source::Argument);
        assert_eq!(list.targets.len(), 2);
        assert!(list.invalid[0].reason.contains("IPv4 address, and -6"));
        let mut list = TargetList::new(Family::V4);
        list.add_spec("[::1]:80", Source::Argument);
        assert!(list.invalid[0].reason.contains("IPv6 address, and -4"));
    }

    #[test]
    fn arguments_are_reported_as_such() {
        let mut list = TargetList::default();
        list.add_spec("db", Source::Argument);
        assert!(
            list.invalid[0]
                .to_string()
                .starts_with("argument \"db\": the port is missing"),
            "{}",
            list.invalid[0]
        );
    }

    /// A host as a user writes it in a spec, and as `Target::new` takes it.
    fn host() -> impl Strategy<Value = (String, String)> {
        let label = "[a-z]([a-z0-9-]{0,10}[a-z0-9])?";
        prop_oneof![
            any::<[u8; 4]>().prop_map(|o| {
                let ip = std::net::Ipv4Addr::from(o).to_string();
                (ip.clone(), ip)
            }),
            any::<[u16; 8]>().prop_map(|s| {
                let ip = Ipv6Addr::from(s).to_string();
                (format!("[{ip}]"), ip)
            }),
            proptest::collection::vec(label, 1..4).prop_map(|labels| {
                let name = labels.join(".");
                (name.clone(), name)
            }),
        ]
    }

    fn port_item() -> impl Strategy<Value = (u16, u16)> {
        prop_oneof![
            (1u16..=65535).prop_map(|port| (port, port)),
            (1u16..=65535, 0u16..20)
                .prop_map(|(first, extra)| (first, first.saturating_add(extra))),
        ]
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in ".{0,40}") {
            let _ = parse_spec(&text);
        }

        #[test]
        fn never_panics_on_spec_like_text(text in "[\\[\\]0-9a-f:.,-]{0,30}") {
            let _ = parse_spec(&text);
        }

        #[test]
        fn accepted_specs_round_trip(
            (written, bare) in host(),
            items in proptest::collection::vec(port_item(), 1..5),
        ) {
            let ports: Vec<String> = items
                .iter()
                .map(|&(first, last)| {
                    if first == last && first % 2 == 0 {
                        first.to_string()
                    } else {
                        format!("{first}-{last}")
                    }
                })
                .collect();
            let spec = format!("{written}:{}", ports.join(","));
            let parsed = parse_spec(&spec).map_err(|reason| {
                TestCaseError::fail(format!("{spec:?} refused: {reason}"))
            })?;
            let expected: Vec<Target> = items
                .iter()
                .flat_map(|&(first, last)| first..=last)
                .map(|port| Target::new(&bare, port).unwrap())
                .collect();
            prop_assert_eq!(&parsed, &expected);
            for target in &parsed {
                prop_assert_eq!(parse_spec(&target.to_string()), Ok(vec![target.clone()]));
            }
        }
    }
}
