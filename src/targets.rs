//! Target specs (`host:port`, `[v6]:port`, `host:80,443`, `host:8000-8100`): their syntax, the
//! targets each stands for (expanded one at a time, never all at once), and the report of a
//! spec refused, with where it came from.
//!
//! The host and each port are parsed by the library, in its words; this module only expands
//! port lists and ranges. Reading specs from files is [`crate::target_files`]'s job.

use std::fmt;
use std::ops::RangeInclusive;

use tcp_shaker::{CheckError, Family, Host, Target, TargetHost};

/// How a spec's host and ports are written, repeated in error messages.
const SPEC_FORMS: &str = "host:port, [v6]:port, host:80,443 or host:8000-8100";

/// Echoed input is cut to this many characters, so that a huge bad line stays readable.
const ECHO_LIMIT: usize = 100;

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
    /// The spec as given, cut to [`ECHO_LIMIT`] characters.
    pub input: String,
    pub reason: String,
}

impl InvalidTarget {
    /// The refusal of `input` from `source`; the input is kept only in part if it is long.
    pub fn new(source: Source, input: &str, reason: String) -> InvalidTarget {
        InvalidTarget {
            source,
            input: shorten(input),
            reason,
        }
    }
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

/// `text` whole if it has at most [`ECHO_LIMIT`] characters, else its start and an ellipsis.
pub fn shorten(text: &str) -> String {
    match text.char_indices().nth(ECHO_LIMIT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The targets of one spec: a host and its port ranges, in the order written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// The host with the spec's first port.
    first: Target,
    ranges: Vec<RangeInclusive<u16>>,
}

impl Spec {
    /// The spec's first target: its host, and the first port written.
    pub fn first(&self) -> &Target {
        &self.first
    }

    /// The width of the widest target of the spec, as printed.
    pub fn widest_name(&self) -> usize {
        let highest = self.ranges.iter().map(|range| *range.end()).max();
        let digits = |port: u16| port.to_string().len();
        let first = self.first.port();
        self.first.to_string().len() - digits(first) + digits(highest.unwrap_or(first))
    }

    /// Whether the host is a name (to be resolved) rather than an IP address.
    pub fn has_host_name(&self) -> bool {
        matches!(self.first.host(), Host::Name(_))
    }

    /// The spec's targets one at a time, in the order written (duplicates included).
    pub fn into_targets(self) -> SpecTargets {
        SpecTargets {
            spec: self,
            range: 0,
            next: 0,
        }
    }
}

/// The targets of a [`Spec`], made one at a time.
#[derive(Debug)]
pub struct SpecTargets {
    spec: Spec,
    /// The range being walked.
    range: usize,
    /// The next port of that range (0: its start); wider than a port, to pass 65535.
    next: u32,
}

impl Iterator for SpecTargets {
    type Item = Target;

    fn next(&mut self) -> Option<Target> {
        loop {
            let range = self.spec.ranges.get(self.range)?;
            let port = self.next.max(u32::from(*range.start()));
            if port > u32::from(*range.end()) {
                self.range += 1;
                self.next = 0;
                continue;
            }
            self.next = port + 1;
            let port = u16::try_from(port).ok()?;
            if port == self.spec.first.port() {
                return Some(self.spec.first.clone());
            }
            // Ports were checked to be from 1 to 65535, and port 0 is `with_port`'s only failure.
            if let Ok(target) = self.spec.first.with_port(port) {
                return Some(target);
            }
        }
    }
}

/// The targets a spec stands for, or why the spec is refused; with `-4`/`-6` (`family`), an IP
/// address of the other family is refused.
///
/// The host and each port are the library's to parse ([`TargetHost::split`],
/// [`Target::parse_port`]), so that a spec is refused in the words a single target is; this
/// function adds what only the command line has: one target per argument or line, and the
/// port list of comma-separated ports and ranges `a-b` with `a <= b`.
pub fn parse_spec(spec: &str, family: Family) -> Result<Spec, String> {
    if spec.trim().contains(char::is_whitespace) {
        return Err(format!(
            "a target contains no spaces; write one target ({SPEC_FORMS}) per argument or line"
        ));
    }
    let (host, ports) = TargetHost::split(spec).map_err(|error| reason_of(&error))?;
    let ranges = parse_port_list(ports)?;
    let first_port = ranges.first().map_or(1, |range| *range.start());
    let first = host
        .with_port(first_port)
        .map_err(|error| reason_of(&error))?;
    admit_family(&first, family)?;
    Ok(Spec { first, ranges })
}

/// Refuses an IP address that `family` does not admit.
fn admit_family(target: &Target, family: Family) -> Result<(), String> {
    match target.host() {
        Host::Ip(ip) if !family.admits(*ip) => {
            let (is, asked) = if ip.is_ipv4() {
                ("IPv4", "-6 asks for IPv6")
            } else {
                ("IPv6", "-4 asks for IPv4")
            };
            Err(format!("the host is an {is} address, and {asked} only"))
        }
        _ => Ok(()),
    }
}

/// `80`, `80,443`, `8000-8100`, `22,80,8000-8010`: the port ranges, in the order written.
pub fn parse_port_list(list: &str) -> Result<Vec<RangeInclusive<u16>>, String> {
    if !list.contains(',') {
        return parse_port_item(list).map(|range| vec![range]);
    }
    list.split(',')
        .map(|item| {
            if item.is_empty() {
                return Err(format!(
                    "the port list {:?} has an empty entry",
                    shorten(list)
                ));
            }
            parse_port_item(item)
        })
        .collect()
}

/// A port, or a range of ports `first-last`.
fn parse_port_item(item: &str) -> Result<RangeInclusive<u16>, String> {
    let Some((first, last)) = item.split_once('-') else {
        return parse_port(item).map(|port| port..=port);
    };
    let (first, last) = (parse_port(first)?, parse_port(last)?);
    if first > last {
        return Err(format!(
            "the port range {item} goes backwards; write {last}-{first}"
        ));
    }
    Ok(first..=last)
}

/// A port from 1 to 65535, refused in the library's words.
pub fn parse_port(text: &str) -> Result<u16, String> {
    Target::parse_port(text).map_err(|error| reason_of(&error))
}

/// The reason the library gives, without its `invalid target "host:port": ` headline (the spec
/// is quoted by [`InvalidTarget`] already).
fn reason_of(error: &CheckError) -> String {
    error
        .detail()
        .map_or_else(|| shorten(&error.to_string()), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn expand(spec: &str) -> Result<Vec<Target>, String> {
        parse_spec(spec, Family::Any).map(|spec| spec.into_targets().collect())
    }

    fn targets(spec: &str) -> Vec<String> {
        expand(spec)
            .unwrap_or_else(|reason| panic!("{spec:?} refused: {reason}"))
            .iter()
            .map(Target::to_string)
            .collect()
    }

    fn refusal(spec: &str) -> String {
        match parse_spec(spec, Family::Any) {
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
        assert_eq!(targets("h:80,80"), ["h:80", "h:80"]);
        assert_eq!(targets("[fe80::1%1]:22"), ["[fe80::1%1]:22"]);
        let all = expand("127.0.0.1:1-65535").unwrap();
        assert_eq!(all.len(), 65535);
        assert_eq!(all.last().map(Target::port), Some(65535));
        let spec = parse_spec("127.0.0.1:65530-65535,1", Family::Any).unwrap();
        assert_eq!(spec.widest_name(), "127.0.0.1:65535".len());
        assert!(!spec.has_host_name());
        assert!(parse_spec("db:1", Family::Any).unwrap().has_host_name());
    }

    #[test]
    fn a_single_target_is_refused_in_the_library_s_words() {
        for spec in [
            "",
            "db",
            "db:",
            ":80",
            "db:0",
            "db:65536",
            "db:http",
            "db:+80",
            "::1:80",
            "::1",
            "[::1",
            "[::1]",
            "[::1]80",
            "[127.0.0.1]:80",
            " db:80",
            "exa_mple!:80",
            "999.1.1.1:80",
        ] {
            let library = spec.parse::<Target>().expect_err(spec);
            assert_eq!(refusal(spec), reason_of(&library), "{spec:?}");
        }
    }

    #[test]
    fn port_lists_and_ranges_say_what_is_wrong() {
        for (spec, says) in [
            ("db:80,", "the port list \"80,\" has an empty entry"),
            ("db:,80", "the port list \",80\" has an empty entry"),
            (
                "db:90-80",
                "the port range 90-80 goes backwards; write 80-90",
            ),
            ("db:80-", "the port is missing; write host:port"),
            ("db:1-2-3", "the port is not a number from 1 to 65535"),
            (
                "db:0-5",
                "port 0 cannot be checked; give a port from 1 to 65535",
            ),
            (
                "db:80 cache:6379",
                "a target contains no spaces; write one target (host:port, \
                 [v6]:port, host:80,443 or host:8000-8100) per argument or line",
            ),
        ] {
            assert_eq!(refusal(spec), says, "{spec:?}");
        }
    }

    #[test]
    fn addresses_of_the_other_family_are_refused() {
        let v6_only = |spec| parse_spec(spec, Family::V6);
        assert!(
            v6_only("127.0.0.1:80")
                .unwrap_err()
                .contains("IPv4 address, and -6")
        );
        assert!(v6_only("[::1]:80").is_ok() && v6_only("localhost:80").is_ok());
        assert!(
            parse_spec("[::1]:80", Family::V4)
                .unwrap_err()
                .contains("IPv6 address, and -4")
        );
    }

    #[test]
    fn long_input_is_echoed_in_part() {
        let long = "x".repeat(10_000);
        let echoed = shorten(&long);
        assert_eq!(echoed.chars().count(), ECHO_LIMIT + 1);
        assert!(echoed.ends_with('…'));
        assert_eq!(shorten("short"), "short");
        assert_eq!(shorten(&"é".repeat(150)).chars().count(), ECHO_LIMIT + 1);
        let invalid = InvalidTarget::new(Source::Argument, &long, "why".into());
        assert!(invalid.to_string().len() < 200, "{invalid}");
        for spec in [
            format!("db:{long}"),
            format!("db:1,{long}"),
            format!("db:1,,{long}"),
            format!("db:{}", "9".repeat(10_000)),
        ] {
            let reason = refusal(&spec);
            assert!(reason.len() < 300, "{spec:.20}: {reason}");
        }
    }

    #[test]
    fn arguments_and_lines_are_reported_as_such() {
        let argument = InvalidTarget::new(Source::Argument, "db", "the port is missing".into());
        assert_eq!(argument.to_string(), "argument \"db\": the port is missing");
        let line = InvalidTarget::new(
            Source::File {
                path: "targets.txt".into(),
                line: 5,
            },
            "bad line",
            "why".into(),
        );
        assert_eq!(line.to_string(), "targets.txt:5: \"bad line\": why");
    }

    /// A host as a user writes it before the ports: an IPv4 address, an IPv6 one in brackets
    /// (some with a numeric zone), or a host name.
    fn host() -> impl Strategy<Value = String> {
        let label = "[a-z]([a-z0-9-]{0,10}[a-z0-9])?";
        prop_oneof![
            any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string()),
            any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
            (any::<[u16; 8]>(), 1u32..100)
                .prop_map(|(s, zone)| format!("[{}%{zone}]", std::net::Ipv6Addr::from(s))),
            proptest::collection::vec(label, 1..4).prop_map(|labels| labels.join(".")),
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
            let _ = parse_spec(&text, Family::Any);
        }

        #[test]
        fn never_panics_on_spec_like_text(text in "[\\[\\]0-9a-f:.,%-]{0,30}") {
            let _ = parse_spec(&text, Family::Any);
        }

        /// Text without a port list or range is one target: the command line takes what the
        /// library takes, and refuses the rest in the library's words.
        #[test]
        fn a_single_target_is_parsed_as_the_library_parses_it(
            text in "[\\[\\]0-9a-z:.%_]{0,24}",
        ) {
            match text.parse::<Target>() {
                Ok(target) => prop_assert_eq!(expand(&text), Ok(vec![target])),
                Err(error) => prop_assert_eq!(
                    expand(&text).map(|_| ()),
                    Err(reason_of(&error)),
                    "{:?}", text
                ),
            }
        }

        #[test]
        fn accepted_specs_round_trip(
            written in host(),
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
            let parsed = expand(&spec).map_err(|reason| {
                TestCaseError::fail(format!("{spec:?} refused: {reason}"))
            })?;
            let expected: Vec<Target> = items
                .iter()
                .flat_map(|&(first, last)| first..=last)
                .map(|port| format!("{written}:{port}").parse().unwrap())
                .collect();
            prop_assert_eq!(&parsed, &expected);
            let parsed_spec = parse_spec(&spec, Family::Any).unwrap();
            let widest = expected.iter().map(|t| t.to_string().len()).max().unwrap();
            prop_assert_eq!(parsed_spec.widest_name(), widest);
            for target in &parsed {
                prop_assert_eq!(expand(&target.to_string()), Ok(vec![target.clone()]));
            }
        }
    }
}
