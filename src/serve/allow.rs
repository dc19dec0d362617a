//! What `/probe` of `tcp-checker serve` may check: the allowlist (`--probe-allow
//! CIDR|HOST[:PORTS]`, or the same strings in the config), the strict parsing of a probe's
//! `target`, and the vetting of the addresses a probe would check.
//!
//! The allowlist judges resolved addresses, never names: a host-name rule stands for the
//! addresses its name had at startup or at the last reload, and a probe is allowed only if every
//! address it would check is covered (DNS rebinding gets nothing). An empty allowlist allows
//! nothing; `0.0.0.0/0` allows every IPv4 address (127.0.0.1 and 169.254.169.254 included) and
//! `::/0` every IPv6 one. IPv6 addresses that carry an IPv4 address ([`canonical`]) are judged as
//! that IPv4 address only. The unspecified addresses (`0.0.0.0`, `::`) reach this host and are
//! never allowed.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::targets::{parse_port, parse_port_list};

/// How a rule is written, repeated in error messages.
const RULE_FORMS: &str = "10.0.0.0/8, 10.0.0.5, ::1, fd00::/8, [fd00::/8]:80, localhost, \
                          db.internal:5432, 127.0.0.1:80,443,8000-8100";

/// The longest rule accepted, in bytes: a host name with a long port list.
const RULE_LIMIT: usize = 512;

/// The longest host name DNS allows, without its trailing dot (RFC 1035).
const NAME_LIMIT: usize = 253;

/// The longest label of a host name (RFC 1035).
const LABEL_LIMIT: usize = 63;

/// One rule: a network (CIDR, or a single IP) or a host name, with an optional port list.
#[derive(Clone, Debug)]
pub struct AllowRule {
    scope: Scope,
    /// The ports covered, or `None` for every port.
    ports: Option<Vec<RangeInclusive<u16>>>,
}

/// The addresses a rule covers.
#[derive(Clone, Debug)]
enum Scope {
    /// A network, or a single address as a network of one.
    Network(Network),
    /// A host name, with its canonical addresses once [`Allowlist::resolve_names`] ran.
    Name {
        name: String,
        addresses: Vec<IpAddr>,
    },
}

/// An IP network: its first address (no host bits set) and its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` (of either family) lies in the network.
    fn contains(self, ip: IpAddr) -> bool {
        match (self.base, ip) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                (u32::from(base) ^ u32::from(ip)) & mask_v4(self.prefix) == 0
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                (u128::from(base) ^ u128::from(ip)) & mask_v6(self.prefix) == 0
            }
            _ => false,
        }
    }
}

/// The IPv4 netmask of a prefix length from 0 to 32.
fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// The IPv6 netmask of a prefix length from 0 to 128.
fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl AllowRule {
    /// Parses `CIDR[:PORTS]`, `IP[:PORTS]`, `HOST[:PORTS]`; an IPv6 address or network with
    /// ports goes in brackets (`[fd00::/8]:80`). PORTS: ports and ranges `a-b`, comma-separated.
    pub fn parse(text: &str) -> Result<AllowRule, String> {
        parse_rule(text).map_err(|reason| {
            let shown: String = text.chars().take(100).collect();
            format!("probe allowlist rule {shown:?}: {reason}; the accepted forms are {RULE_FORMS}")
        })
    }

    /// Whether the rule covers `ip` (canonical already) at `port`.
    fn covers(&self, ip: IpAddr, port: u16) -> bool {
        let address_covered = match &self.scope {
            Scope::Network(network) => network.contains(ip),
            Scope::Name { addresses, .. } => addresses.contains(&ip),
        };
        let port_covered = self
            .ports
            .as_ref()
            .is_none_or(|ranges| ranges.iter().any(|range| range.contains(&port)));
        address_covered && port_covered
    }
}

impl FromStr for AllowRule {
    type Err = String;

    /// The same as [`AllowRule::parse`].
    fn from_str(text: &str) -> Result<AllowRule, String> {
        AllowRule::parse(text)
    }
}

/// The rule, or what is wrong with it (without the rule's text).
fn parse_rule(text: &str) -> Result<AllowRule, String> {
    if text.is_empty() {
        return Err("the rule is empty".into());
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a rule has no spaces; give one rule per --probe-allow".into());
    }
    if text.len() > RULE_LIMIT {
        return Err(format!("a rule is at most {RULE_LIMIT} bytes long"));
    }
    let (host, ports) = split_rule(text)?;
    let ports = ports.map(parse_port_list).transpose()?;
    Ok(AllowRule {
        scope: parse_scope(host)?,
        ports,
    })
}

/// The rule's host or network, and its port list if one follows.
fn split_rule(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or("the '[' is not closed; write [fd00::/8]:80")?;
        if !inside.contains(':') {
            return Err("brackets are for IPv6 only; write 10.0.0.0/8:80 without them".into());
        }
        return match after.strip_prefix(':') {
            Some(ports) => Ok((inside, Some(ports))),
            None if after.is_empty() => Ok((inside, None)),
            None if after.starts_with('/') => Err(format!(
                "the prefix length goes inside the brackets; write [{inside}{after}]"
            )),
            None => Err(format!(
                "after ']' come ':' and the ports, like [{inside}]:80"
            )),
        };
    }
    if text.matches(':').count() > 1 {
        return Ok((text, None));
    }
    Ok(match text.split_once(':') {
        Some((host, ports)) => (host, Some(ports)),
        None => (text, None),
    })
}

/// A network (`10.0.0.0/8`, `fd00::/8`), a single address, or a host name.
fn parse_scope(host: &str) -> Result<Scope, String> {
    if host.is_empty() {
        return Err("the address, network or host name is missing".into());
    }
    if host.contains('%') {
        return Err("a rule matches addresses, not zones; write the address without %zone".into());
    }
    let (address, prefix) = match host.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (host, None),
    };
    let Ok(base) = address.parse::<IpAddr>() else {
        if prefix.is_some() {
            return Err(
                "a network is an IP address and a prefix length: 10.0.0.0/8, fd00::/8".into(),
            );
        }
        check_name(host)?;
        let name = host.to_owned();
        let addresses = Vec::new();
        return Ok(Scope::Name { name, addresses });
    };
    let width = if base.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => width,
        Some(text) => match text.parse::<u8>() {
            Ok(prefix) if prefix <= width && text.bytes().all(|b| b.is_ascii_digit()) => prefix,
            _ => {
                return Err(format!(
                    "the prefix length {text:.12} is not a number from 0 to {width} (an IPv6 \
                     network with ports is written [fd00::/8]:80)"
                ));
            }
        },
    };
    let network = Network {
        base: match base {
            IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & mask_v4(prefix)).into()),
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & mask_v6(prefix)).into()),
        },
        prefix,
    };
    if network.base != base {
        return Err(format!(
            "{host} has host bits set; the network is {}/{prefix}, or write {base} alone",
            network.base
        ));
    }
    if let IpAddr::V6(first) = base {
        let last = Ipv6Addr::from(u128::from(first) | !mask_v6(prefix));
        if let (Some(v4), Some(_)) = (embedded_ipv4(first), embedded_ipv4(last)) {
            let prefix = prefix.saturating_sub(96);
            return Err(format!(
                "{host} holds IPv4 addresses, which are matched as IPv4; write {v4}/{prefix}"
            ));
        }
    }
    Ok(Scope::Network(network))
}

/// Refuses a host name that cannot exist, or that the resolver would read as an IPv4 number
/// (`inet_aton`: `167772161`, `0x0a000001`, `10.1`, `012.0.0.1` all mean 10.0.0.1). As in the
/// WHATWG URL standard, a name whose last label is a decimal or `0x` number is such a number.
fn check_name(name: &str) -> Result<(), String> {
    let labels = name.strip_suffix('.').unwrap_or(name);
    if labels.len() > NAME_LIMIT {
        return Err(format!("the host name is over {NAME_LIMIT} bytes long"));
    }
    for label in labels.split('.') {
        if label.is_empty() || label.len() > LABEL_LIMIT {
            return Err(format!(
                "the host name {name:?} has an empty label or one over {LABEL_LIMIT} bytes"
            ));
        }
        if let Some(bad) = label
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || "-_".contains(c)))
        {
            return Err(format!(
                "the host {name:?} has {bad:?}: a host is an IP address or a name of letters, \
                 digits, '-', '_' and dots"
            ));
        }
    }
    let last = labels.rsplit('.').next().unwrap_or(labels);
    let is_number = match last.strip_prefix("0x").or_else(|| last.strip_prefix("0X")) {
        Some(hex) => hex.chars().all(|c| c.is_ascii_hexdigit()),
        None => last.chars().all(|c| c.is_ascii_digit()),
    };
    if is_number {
        return Err(format!(
            "{name:?} would be read as an IPv4 number; write the address as four decimal parts \
             without leading zeros, like 10.0.0.1"
        ));
    }
    Ok(())
}

/// The IPv4 address in `v6`, if it carries one: IPv4-mapped `::ffff:a.b.c.d` (sent as IPv4 by
/// the kernel), IPv4-compatible `::a.b.c.d` (deprecated, but still an IPv4 host where honoured;
/// `::` and `::1` excluded) and the NAT64 well-known prefix `64:ff9b::/96` (RFC 6052). Other
/// embeddings (6to4, Teredo, local-use NAT64 prefixes) are judged as IPv6.
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let [a, b, c, d, e, f, ..] = v6.segments();
    let [.., w, x, y, z] = v6.octets();
    let carried = match (a, b, c, d, e, f) {
        (0, 0, 0, 0, 0, 0xffff) | (0x64, 0xff9b, 0, 0, 0, 0) => true,
        (0, 0, 0, 0, 0, 0) => u128::from(v6) > 1,
        _ => false,
    };
    carried.then_some(Ipv4Addr::new(w, x, y, z))
}

/// IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d` (not `::` or `::1`) and NAT64
/// `64:ff9b::a.b.c.d` → `a.b.c.d`; other addresses unchanged. This is the form the allowlist
/// judges; the probe still checks the address it was given.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The rules `/probe` obeys; the default, empty, allows nothing.
#[derive(Clone, Debug, Default)]
pub struct Allowlist {
    rules: Vec<AllowRule>,
}

impl Allowlist {
    /// An allowlist of `rules`; its host-name rules cover nothing until [`Self::resolve_names`].
    pub fn new(rules: Vec<AllowRule>) -> Allowlist {
        Allowlist { rules }
    }

    /// Whether there is no rule at all (then `/probe` answers 403).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Gives the host-name rules the addresses `resolve` finds (at startup and on each reload).
    /// A name that does not resolve is an error naming it, and leaves the allowlist unchanged.
    pub fn resolve_names(
        &mut self,
        mut resolve: impl FnMut(&str) -> io::Result<Vec<IpAddr>>,
    ) -> Result<(), String> {
        let mut rules = self.rules.clone();
        for rule in &mut rules {
            if let Scope::Name { name, addresses } = &mut rule.scope {
                let unusable = |why: String| {
                    format!("the probe allowlist's host {name} {why}; fix it or allow its address")
                };
                let found = resolve(name)
                    .map_err(|error| unusable(format!("does not resolve ({error})")))?;
                if found.is_empty() {
                    return Err(unusable("resolves to no address".into()));
                }
                *addresses = found.into_iter().map(canonical).collect();
            }
        }
        self.rules = rules;
        Ok(())
    }

    /// Whether a probe of this resolved address and port is allowed: its [`canonical`] address
    /// and port are covered by a rule, and it is neither unspecified nor port 0.
    pub fn permits(&self, address: SocketAddr) -> bool {
        let ip = canonical(address.ip());
        let port = address.port();
        !ip.is_unspecified() && port != 0 && self.rules.iter().any(|rule| rule.covers(ip, port))
    }

    /// The addresses a probe of `target` checks, each permitted, or why there is none. A name is
    /// resolved once, by `resolve`, and only if there are rules; the probe must check exactly the
    /// addresses returned, never resolve again. An IPv6 literal's zone is the caller's to apply.
    pub fn vet(
        &self,
        target: &ProbeTarget,
        resolve: impl FnOnce(&str) -> io::Result<Vec<IpAddr>>,
    ) -> Result<Vec<SocketAddr>, Refusal> {
        if self.is_empty() {
            return Err(Refusal::NoRules);
        }
        let addresses = match &target.host {
            ProbeHost::Ip(ip) => vec![*ip],
            ProbeHost::Name(name) => {
                let unresolved = |reason: String| Refusal::Unresolved {
                    name: name.clone(),
                    reason,
                };
                let found = resolve(name).map_err(|error| unresolved(error.to_string()))?;
                if found.is_empty() {
                    return Err(unresolved("no address".into()));
                }
                found
            }
        };
        let sockets: Vec<SocketAddr> = addresses
            .into_iter()
            .map(|ip| SocketAddr::new(ip, target.port))
            .collect();
        match sockets.iter().find(|&&socket| !self.permits(socket)) {
            Some(&address) => Err(Refusal::NotAllowed { address }),
            None => Ok(sockets),
        }
    }
}

/// Why a probe checks nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The allowlist has no rule: `/probe` is off.
    NoRules,
    /// The target's name did not resolve to any address (a failed probe, not a forbidden one).
    Unresolved {
        /// The name, as written in the target.
        name: String,
        /// The resolver's error.
        reason: String,
    },
    /// An address the probe would check is outside every rule.
    NotAllowed {
        /// The first such address.
        address: SocketAddr,
    },
}

impl Refusal {
    /// Whether the answer is HTTP 403 (the allowlist said no) rather than a failed probe.
    pub fn is_forbidden(&self) -> bool {
        !matches!(self, Refusal::Unresolved { .. })
    }
}

impl fmt::Display for Refusal {
    /// What was refused, and what to do about it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoRules => write!(
                f,
                "/probe checks nothing until it is allowed to: give --probe-allow \
                 CIDR|HOST[:PORTS] (repeatable) or list such rules in the config ({RULE_FORMS}); \
                 0.0.0.0/0 and ::/0 allow everything"
            ),
            Refusal::Unresolved { name, reason } => write!(f, "{name} does not resolve: {reason}"),
            Refusal::NotAllowed { address } => write!(
                f,
                "{address} is outside the probe allowlist; add a --probe-allow rule that covers it"
            ),
        }
    }
}

/// The host of a probe's target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeHost {
    /// An IP address, checked as written.
    Ip(IpAddr),
    /// A host name, to be resolved once by [`Allowlist::vet`].
    Name(String),
}

/// A probe's `target`, parsed: a host, an IPv6 zone if one was written, and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeTarget {
    /// The address or name, as written.
    pub host: ProbeHost,
    /// The zone of an IPv6 address (`eth0` of `[fe80::1%eth0]:22`); rules ignore it.
    pub zone: Option<String>,
    /// From 1 to 65535.
    pub port: u16,
}

/// Why a probe's `target` is refused as malformed (HTTP 400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed(pub String);

impl fmt::Display for Malformed {
    /// The reason, which says what to write instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Malformed {}

/// Parses a probe's `target` strictly: `host:port` or `[v6]:port` (`[fe80::1%eth0]:22`), the
/// port required. The only IPv4 form is the dotted quad without leading zeros.
pub fn parse_probe_target(text: &str) -> Result<ProbeTarget, Malformed> {
    split_probe_target(text).map_err(|reason| Malformed(format!("bad target: {reason}")))
}

/// The target, or what is wrong with it.
fn split_probe_target(text: &str) -> Result<ProbeTarget, String> {
    let form = "write host:port or [v6]:port, like db.internal:5432";
    if text.is_empty() {
        return Err(format!("it is empty; {form}"));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("it has a space or control character; {form}"));
    }
    if text.contains(['/', '@', '?', '#']) {
        return Err(format!("it has no scheme, user or path; {form}"));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("'[' is not closed; {form}"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("the port must follow ']'; {form}"))?;
        let (address, zone) = match inside.split_once('%') {
            Some((address, zone)) => (address, Some(zone)),
            None => (inside, None),
        };
        let Ok(v6) = address.parse::<Ipv6Addr>() else {
            return Err(format!("brackets hold an IPv6 address only; {form}"));
        };
        if let Some(zone) = zone {
            let valid = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
            if zone.is_empty() || zone.len() > 15 || !zone.chars().all(valid) {
                return Err(
                    "the zone after '%' is not an interface; write [fe80::1%eth0]:22".into(),
                );
            }
        }
        let (host, zone) = (ProbeHost::Ip(v6.into()), zone.map(str::to_owned));
        let port = parse_port(port)?;
        return Ok(ProbeTarget { host, zone, port });
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("the port is missing; {form}"))?;
    if host.contains(':') {
        return Err(format!("an IPv6 address goes in brackets; {form}"));
    }
    let port = parse_port(port)?;
    let host = match host.parse::<Ipv4Addr>() {
        Ok(v4) => ProbeHost::Ip(v4.into()),
        Err(_) if host.is_empty() => return Err(format!("the host is missing; {form}")),
        Err(_) => check_name(host).map(|()| ProbeHost::Name(host.to_owned()))?,
    };
    Ok(ProbeTarget {
        host,
        zone: None,
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn list(rules: &[&str]) -> Allowlist {
        let parse = |text: &&str| text.parse().unwrap_or_else(|why| panic!("{text:?}: {why}"));
        Allowlist::new(rules.iter().map(parse).collect())
    }

    fn socket(text: &str) -> SocketAddr {
        text.parse()
            .unwrap_or_else(|error| panic!("{text:?}: {error}"))
    }

    fn target(text: &str) -> ProbeTarget {
        parse_probe_target(text).unwrap_or_else(|why| panic!("{text:?} refused: {why}"))
    }

    /// The resolver of the tests: a few names, and an error for the rest.
    fn resolver(name: &str) -> io::Result<Vec<IpAddr>> {
        let addresses = match name {
            "localhost" => "127.0.0.1 ::1",
            "db.internal" => "::ffff:10.0.0.9",
            "rebound.example" => "10.0.0.1 169.254.169.254",
            "inside.example" => "10.0.0.1 10.0.0.2",
            "empty.example" => "",
            _ => return Err(io::Error::other("no such host")),
        };
        Ok(addresses
            .split_whitespace()
            .map(|ip| ip.parse().unwrap())
            .collect())
    }

    /// Asserts that `allowlist` permits each address of `covered` and none of `refused`.
    fn assert_covers(allowlist: &Allowlist, covered: &str, refused: &str, why: &str) {
        for address in covered.split_whitespace() {
            assert!(
                allowlist.permits(socket(address)),
                "{why} should allow {address}"
            );
        }
        for address in refused.split_whitespace() {
            assert!(
                !allowlist.permits(socket(address)),
                "{why} should refuse {address}"
            );
        }
    }

    #[test]
    fn each_rule_form_covers_its_addresses_and_ports_only() {
        for (rule, covered, refused) in [
            (
                "10.0.0.0/8",
                "10.1.2.3:1 [::ffff:10.0.0.1]:9",
                "11.0.0.0:1 9.255.255.255:1",
            ),
            ("10.0.0.5", "10.0.0.5:80", "10.0.0.6:80 10.0.0.4:80"),
            ("::1", "[::1]:22", "127.0.0.1:22 [::2]:22"),
            ("[::1]", "[::1]:22", "[::]:22"),
            ("[::1]:22", "[::1]:22", "[::1]:23"),
            (
                "fd00::/8",
                "[fd12::1]:1 [fdff::]:1",
                "[fe00::1]:1 [fc00::1]:1",
            ),
            ("[fd00::/8]:80", "[fd00::1]:80", "[fd00::1]:81"),
            (
                "127.0.0.1:80,443,8000-8100",
                "127.0.0.1:80 127.0.0.1:443",
                "127.0.0.1:81",
            ),
            (
                "127.0.0.1:80,443,8000-8100",
                "127.0.0.1:8000 127.0.0.1:8100",
                "127.0.0.1:7999",
            ),
            (
                "127.0.0.1:80,443,8000-8100",
                "",
                "127.0.0.1:8101 127.0.0.2:80",
            ),
            (
                "10.0.0.0/8:5432",
                "10.9.9.9:5432",
                "10.9.9.9:5433 11.0.0.1:5432",
            ),
            (
                "0.0.0.0/0",
                "169.254.169.254:80 127.0.0.1:1",
                "[::1]:1 0.0.0.0:1",
            ),
            (
                "::/0",
                "[2001:db8::1]:1",
                "[::ffff:10.0.0.1]:1 [64:ff9b::a00:1]:1 [::]:1",
            ),
            ("[fe80::/10]:22", "[fe80::1]:22", "[fec0::1]:22"),
            (
                "10.0.0.1:1-65535",
                "10.0.0.1:1 10.0.0.1:65535",
                "10.0.0.1:0",
            ),
        ] {
            assert_covers(&list(&[rule]), covered, refused, rule);
        }
    }

    #[test]
    fn bad_rules_say_what_is_wrong_and_show_the_forms() {
        let long = format!("db:{}", "1,".repeat(300));
        for (text, says) in [
            ("", "empty"),
            ("10.0.0.0 /8", "no spaces"),
            (&long, "at most 512 bytes"),
            (
                "10.0.0.1/8",
                "the network is 10.0.0.0/8, or write 10.0.0.1 alone",
            ),
            ("fd00::1/8", "the network is fd00::/8"),
            ("10.0.0.0/33", "from 0 to 32"),
            ("fd00::/129", "from 0 to 128"),
            ("10.0.0.0/", "from 0 to 32"),
            ("10.0.0.0/+8", "from 0 to 32"),
            ("fd00::/8:80", "written [fd00::/8]:80"),
            ("[fd00::]/8", "write [fd00::/8]"),
            ("[fd00::/8", "not closed"),
            ("[fd00::/8]80", "like [fd00::/8]:80"),
            ("[10.0.0.0/8]:80", "IPv6 only"),
            ("db/8", "an IP address and a prefix length"),
            ("::ffff:10.0.0.0/104", "matched as IPv4; write 10.0.0.0/8"),
            ("[64:ff9b::a00:1]:80", "write 10.0.0.1/32"),
            ("fe80::1%eth0", "not zones"),
            ("db:", "port is missing"),
            (":80", "missing"),
            ("db:0", "port 0 cannot be checked"),
            ("db:65536", "out of range"),
            ("db:http", "not a number"),
            ("db:80,", "empty entry"),
            ("db:,80", "empty entry"),
            ("db:90-80", "write 80-90"),
            ("db:80-", "port is missing"),
            ("bad!name", "has '!'"),
            ("a..b", "empty label"),
            ("10.1", "read as an IPv4 number"),
            ("167772161", "read as an IPv4 number"),
            ("0x0a000001:80", "read as an IPv4 number"),
            ("012.0.0.1", "read as an IPv4 number"),
            ("0x0a.0.0.1", "read as an IPv4 number"),
        ] {
            let said = AllowRule::parse(text).map(|_| ()).unwrap_err();
            assert!(said.contains(says), "{text:?}: {said}");
            assert!(
                said.contains(RULE_FORMS) && said.len() < 900,
                "{text:?}: {said}"
            );
        }
    }

    #[test]
    fn probe_targets_are_parsed_strictly() {
        let ip = |text: &str| ProbeHost::Ip(text.parse().unwrap());
        let name = |text: &str| ProbeHost::Name(text.into());
        for (text, host, zone, port) in [
            ("db.internal:5432", name("db.internal"), None, 5432),
            ("Example.COM.:443", name("Example.COM."), None, 443),
            ("_srv.host-1:1", name("_srv.host-1"), None, 1),
            ("10.0.0.1:65535", ip("10.0.0.1"), None, 65535),
            ("[::1]:22", ip("::1"), None, 22),
            ("[::ffff:a00:1]:80", ip("::ffff:10.0.0.1"), None, 80),
            ("[fe80::1%eth0]:22", ip("fe80::1"), Some("eth0"), 22),
        ] {
            let zone = zone.map(str::to_owned);
            assert_eq!(target(text), ProbeTarget { host, zone, port }, "{text}");
        }
        let longest = ["a", "b", "c"].map(|l| l.repeat(63)).join(".") + "." + &"d".repeat(61);
        assert_eq!(target(&format!("{longest}:80")).host, name(&longest));
        for (text, says) in [
            ("", "empty"),
            ("db", "port is missing"),
            ("db:", "port is missing"),
            (":80", "host is missing"),
            ("db:0", "1 to 65535"),
            ("db:65536", "1 to 65535"),
            ("db:x", "not a number"),
            ("db:80,443", "not a number"),
            ("db: 80", "space"),
            (" db:80", "space"),
            ("db:80\n", "control"),
            ("d\u{7}b:80", "control"),
            (&format!("{longest}x:80"), "over 253 bytes"),
            (&format!("{}:80", "a".repeat(64)), "over 63 bytes"),
            ("a..b:80", "empty label"),
            ("bad!:80", "has '!'"),
            ("167772161:80", "IPv4 number"),
            ("0x0a000001:80", "IPv4 number"),
            ("10.1:80", "IPv4 number"),
            ("012.0.0.1:80", "IPv4 number"),
            ("0x0a.0.0.1:80", "IPv4 number"),
            ("10.0.0.01:80", "IPv4 number"),
            ("http://x:80", "no scheme"),
            ("a@b:1", "no scheme, user"),
            ("x:1/y", "path"),
            ("::1:80", "in brackets"),
            ("[::1]", "port must follow"),
            ("[::1", "not closed"),
            ("[127.0.0.1]:80", "IPv6 address only"),
            ("[::1%]:80", "zone"),
        ] {
            let said = parse_probe_target(text).map(|_| ()).unwrap_err().0;
            assert!(said.contains(says), "{text:?}: {said}");
        }
    }

    #[test]
    fn ipv6_forms_carrying_ipv4_are_judged_as_ipv4() {
        for (written, canonical_form) in [
            ("::ffff:10.0.0.1", "10.0.0.1"),
            ("::ffff:a00:1", "10.0.0.1"),
            ("::10.0.0.1", "10.0.0.1"),
            ("64:ff9b::a00:1", "10.0.0.1"),
            ("::1", "::1"),
            ("::", "::"),
            ("64:ff9b:1::a00:1", "64:ff9b:1::a00:1"),
            ("2001:db8::1", "2001:db8::1"),
            ("10.0.0.1", "10.0.0.1"),
        ] {
            let ip: IpAddr = written.parse().unwrap();
            assert_eq!(canonical(ip).to_string(), canonical_form, "{written}");
        }
        let carried = "[::ffff:10.0.0.1]:80 [::ffff:a00:1]:80 [::a00:1]:80 [64:ff9b::a00:1]:80";
        assert_covers(&list(&["192.168.0.0/16", "::/0"]), "", carried, "no 10/8");
        assert_covers(
            &list(&["192.168.0.0/16", "10.0.0.0/8"]),
            carried,
            "",
            "10/8",
        );
    }

    #[test]
    fn metadata_and_unspecified_addresses_need_a_rule_that_covers_them() {
        let private = list(&["10.0.0.0/8", "127.0.0.0/8", "::1"]);
        let refused = "169.254.169.254:80 [::ffff:169.254.169.254]:80 [fd00:ec2::254]:80";
        assert_covers(&private, "127.0.0.1:80 [::1]:80", refused, "10/8 127/8 ::1");
        assert_covers(&private, "", "0.0.0.0:80 [::]:80", "10/8 127/8 ::1");
        assert_covers(
            &list(&["169.254.169.254:80"]),
            "169.254.169.254:80",
            "",
            "metadata",
        );
        assert_covers(&list(&["0.0.0.0/0"]), "", "[::ffff:0.0.0.0]:80", "0/0");
    }

    #[test]
    fn an_empty_allowlist_permits_nothing_and_says_how_to_allow() {
        let empty = Allowlist::default();
        assert!(empty.is_empty() && !list(&["::1"]).is_empty());
        assert_covers(
            &empty,
            "",
            "127.0.0.1:80 10.0.0.1:22 [::1]:80 8.8.8.8:53",
            "empty",
        );
        let refusal = empty.vet(&target("localhost:80"), |_| {
            panic!("resolved with no rules")
        });
        assert_eq!(refusal, Err(Refusal::NoRules));
        let refusal = refusal.unwrap_err();
        assert!(refusal.is_forbidden() && refusal.to_string().contains("--probe-allow"));
    }

    #[test]
    fn a_probe_is_allowed_only_if_every_address_it_checks_is() {
        let private = list(&["10.0.0.0/8"]);
        let vet = |text: &str| private.vet(&target(text), resolver);
        let refused = vet("rebound.example:80").unwrap_err();
        assert_eq!(
            refused,
            Refusal::NotAllowed {
                address: socket("169.254.169.254:80")
            }
        );
        assert!(refused.is_forbidden() && refused.to_string().contains("169.254.169.254:80"));
        let inside = Ok(vec![socket("10.0.0.1:80"), socket("10.0.0.2:80")]);
        assert_eq!(vet("inside.example:80"), inside);
        assert_eq!(vet("10.0.0.3:22"), Ok(vec![socket("10.0.0.3:22")]));
        assert!(vet("[::ffff:127.0.0.1]:22").unwrap_err().is_forbidden());
        let link_local = list(&["[fe80::/10]:22"]).vet(&target("[fe80::1%eth0]:22"), resolver);
        assert_eq!(link_local, Ok(vec![socket("[fe80::1]:22")]));
        for (text, says) in [
            ("nowhere.example:80", "no such host"),
            ("empty.example:1", "no ad"),
        ] {
            let unresolved = vet(text).unwrap_err();
            assert!(!unresolved.is_forbidden() && unresolved.to_string().contains(says));
        }
    }

    #[test]
    fn host_name_rules_cover_the_addresses_their_names_had() {
        let mut allowlist = list(&["localhost:22", "db.internal"]);
        assert_covers(&allowlist, "", "127.0.0.1:22", "names not resolved yet");
        assert_eq!(allowlist.resolve_names(resolver), Ok(()));
        let covered = "127.0.0.1:22 [::1]:22 10.0.0.9:5432 [::ffff:10.0.0.9]:1";
        assert_covers(
            &allowlist,
            covered,
            "127.0.0.1:23 127.0.0.2:22 [::1]:23",
            "names",
        );
        allowlist.rules.extend(list(&["gone.example"]).rules);
        let moved = |name: &str| match name {
            "localhost" => Ok(vec![IpAddr::from([127, 0, 0, 5])]),
            _ => resolver(name),
        };
        let said = allowlist.resolve_names(moved).unwrap_err();
        assert!(said.contains("gone.example") && said.contains("no such host"));
        let kept = "a failed reload keeps the addresses";
        assert_covers(&allowlist, covered, "127.0.0.5:22", kept);
        let said = list(&["empty.example"])
            .resolve_names(resolver)
            .unwrap_err();
        assert!(
            said.contains("empty.example resolves to no address"),
            "{said}"
        );
    }

    proptest! {
        #[test]
        fn permits_matches_a_bitwise_reference(address: u32, base: u32, prefix in 0u8..=32) {
            let network = (0..32 - prefix).fold(base, |network, bit| network & !(1 << bit));
            let allowlist = list(&[&format!("{}/{prefix}", Ipv4Addr::from(network))]);
            let same_prefix = (0..prefix).all(|bit| (address ^ network) & (1 << (31 - bit)) == 0);
            let expected = same_prefix && address != 0;
            let v4 = Ipv4Addr::from(address);
            prop_assert_eq!(allowlist.permits(SocketAddr::new(v4.into(), 80)), expected);
            let mapped = SocketAddr::new(v4.to_ipv6_mapped().into(), 80);
            prop_assert_eq!(allowlist.permits(mapped), expected);
        }

        #[test]
        fn parsers_never_panic(text in "[\\[\\]0-9a-fx:./%,@ -]{0,30}") {
            let _ = AllowRule::parse(&text);
            let _ = parse_probe_target(&text);
        }
    }
}
