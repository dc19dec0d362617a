//! What to check: a host (IP address or name) and a port.
//!
//! This module owns the parsing of `host:port` text, so that every entry point (the library's
//! methods, the command line, files of targets) rejects the same bad input with the same words.

use std::fmt;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::str::FromStr;

use crate::error::{CheckError, ErrorKind};

/// The longest host name DNS allows (RFC 1035: 253 characters without the trailing dot).
const MAX_HOST_NAME_LEN: usize = 253;

/// A host and port to check.
///
/// Parse one from text with [`str::parse`] (`"db.internal:5432"`, `"127.0.0.1:80"`,
/// `"[::1]:6379"`, and with an IPv6 zone `"[fe80::1%eth0]:22"`), or build one from a
/// [`SocketAddr`] or a `(host, port)` pair through [`ToTarget`] or [`TryFrom`]. No constructor
/// accepts port 0.
///
/// ```
/// use tcp_shaker::Target;
///
/// let target: Target = "[::1]:6379".parse()?;
/// assert_eq!(target.port(), 6379);
/// assert_eq!(target.to_string(), "[::1]:6379");
///
/// let address: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
/// assert!(Target::try_from(address).is_err());
/// # Ok::<(), tcp_shaker::CheckError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    host: Host,
    port: u16,
    /// The zone of an IPv6 address (`%eth0`, `%2`), which link-local addresses need.
    zone: Option<Box<Zone>>,
}

/// An IPv6 zone: the interface index the kernel uses, and how it was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Zone {
    scope_id: u32,
    text: Box<str>,
}

/// The host part of a [`Target`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IP address, checked as it is.
    Ip(IpAddr),
    /// A host name, resolved within the check's deadline.
    Name(Box<str>),
}

impl Target {
    /// A target for `host` and `port`; fails on port 0 and on a host name that cannot exist.
    ///
    /// `host` is an IP address (an IPv6 one without brackets, optionally with a zone:
    /// `fe80::1%eth0`) or a host name.
    pub fn new(host: &str, port: u16) -> Result<Target, CheckError> {
        let input = || format_host_port(host, port);
        let (host, zone) = match split_zone(host) {
            Some((address, zone)) => (address, Some(zone)),
            None => (host, None),
        };
        let host = parse_host(host).map_err(|reason| invalid(&input(), reason))?;
        let zone = match zone {
            Some(zone) => {
                Some(parse_zone(&host, zone).map_err(|reason| invalid(&input(), reason))?)
            }
            None => None,
        };
        Target::from_parts(host, port, zone).map_err(|reason| invalid(&input(), reason))
    }

    /// The same host with another port; fails on port 0.
    ///
    /// ```
    /// let ssh: tcp_shaker::Target = "db.internal:22".parse()?;
    /// assert_eq!(ssh.with_port(5432)?.to_string(), "db.internal:5432");
    /// # Ok::<(), tcp_shaker::CheckError>(())
    /// ```
    pub fn with_port(&self, port: u16) -> Result<Target, CheckError> {
        target_of(&self.host, &self.zone, port)
    }

    /// The host to check.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port to check.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The scope id (interface index) of an IPv6 address given with a zone, else 0.
    ///
    /// ```
    /// let target: tcp_shaker::Target = "[fe80::1%1]:22".parse()?;
    /// assert_eq!(target.scope_id(), 1);
    /// assert_eq!(target.socket_addr().map(|a| a.to_string()).as_deref(), Some("[fe80::1%1]:22"));
    /// # Ok::<(), tcp_shaker::CheckError>(())
    /// ```
    pub fn scope_id(&self) -> u32 {
        self.zone.as_ref().map_or(0, |zone| zone.scope_id)
    }

    /// The socket address, when the host is an IP address (with its zone's scope id).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(IpAddr::V6(ip)) => Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                self.port,
                0,
                self.scope_id(),
            ))),
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Name(_) => None,
        }
    }

    fn from_parts(host: Host, port: u16, zone: Option<Zone>) -> Result<Target, &'static str> {
        if port == 0 {
            return Err(PORT_ZERO);
        }
        Ok(Target {
            host,
            port,
            zone: zone.map(Box::new),
        })
    }
}

/// The host of a target without its port: an IP address (an IPv6 one with its zone, if it was
/// given one) or a host name, validated as parsing a [`Target`] validates it.
///
/// It serves callers whose text has more than one port after the host, such as a list
/// (`db:80,443`) or a range (`db:8000-8100`): [`TargetHost::split`] parses the host and hands
/// back the text after its `:`, [`Target::parse_port`] parses each port, and
/// [`TargetHost::with_port`] makes the targets. A bad host or port is refused in the same words
/// as `"host:port".parse::<Target>()` refuses it.
///
/// ```
/// use tcp_shaker::{Target, TargetHost};
///
/// let (host, ports) = TargetHost::split("[fe80::1%1]:80,443")?;
/// assert_eq!((host.to_string().as_str(), ports), ("[fe80::1%1]", "80,443"));
/// let targets = ports
///     .split(',')
///     .map(|port| host.with_port(Target::parse_port(port)?))
///     .collect::<Result<Vec<Target>, _>>()?;
/// assert_eq!(targets[1], "[fe80::1%1]:443".parse::<Target>()?);
///
/// let refused = TargetHost::split("db").unwrap_err();
/// assert_eq!(refused.detail(), "db".parse::<Target>().unwrap_err().detail());
/// # Ok::<(), tcp_shaker::CheckError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetHost {
    host: Host,
    zone: Option<Box<Zone>>,
}

impl TargetHost {
    /// Splits `host:PORTS` (`[v6]:PORTS`, `[v6%zone]:PORTS`) after its host: the host, parsed,
    /// and the text after the `:` that ends it, not parsed. Fails as parsing a [`Target`] fails
    /// for everything but the port.
    pub fn split(text: &str) -> Result<(TargetHost, &str), CheckError> {
        let (host, zone, ports) = split_target(text).map_err(|reason| invalid(&text, reason))?;
        let host = TargetHost {
            host,
            zone: zone.map(Box::new),
        };
        Ok((host, ports))
    }

    /// The host to check.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The scope id (interface index) of an IPv6 address given with a zone, else 0.
    pub fn scope_id(&self) -> u32 {
        self.zone.as_ref().map_or(0, |zone| zone.scope_id)
    }

    /// The target of this host and `port`; fails on port 0.
    pub fn with_port(&self, port: u16) -> Result<Target, CheckError> {
        target_of(&self.host, &self.zone, port)
    }
}

impl fmt::Display for TargetHost {
    /// The host as a target writes it before its port: `db`, `127.0.0.1`, `[::1]`,
    /// `[fe80::1%eth0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, &self.zone) {
            (Host::Ip(ip), Some(zone)) => write!(f, "[{ip}%{}]", zone.text),
            (host, _) => write!(f, "{host}"),
        }
    }
}

impl Target {
    /// Parses a port as the port of a target is parsed: decimal digits only, from 1 to 65535.
    ///
    /// ```
    /// use tcp_shaker::Target;
    ///
    /// assert_eq!(Target::parse_port("5432")?, 5432);
    /// let refused = Target::parse_port("http").unwrap_err();
    /// assert_eq!(refused.detail(), Some("the port is not a number from 1 to 65535"));
    /// assert!(Target::parse_port("0").is_err());
    /// # Ok::<(), tcp_shaker::CheckError>(())
    /// ```
    pub fn parse_port(text: &str) -> Result<u16, CheckError> {
        match parse_port(text) {
            Ok(0) => Err(invalid(&text, PORT_ZERO)),
            Ok(port) => Ok(port),
            Err(reason) => Err(invalid(&text, reason)),
        }
    }
}

/// The target of `host` with `zone` and `port`; fails on port 0.
fn target_of(host: &Host, zone: &Option<Box<Zone>>, port: u16) -> Result<Target, CheckError> {
    let target = Target {
        host: host.clone(),
        port,
        zone: zone.clone(),
    };
    if port == 0 {
        return Err(invalid(&target, PORT_ZERO));
    }
    Ok(target)
}

/// Why port 0 is refused, in every constructor's words.
const PORT_ZERO: &str = "port 0 cannot be checked; give a port from 1 to 65535";

impl TryFrom<SocketAddr> for Target {
    type Error = CheckError;

    /// The address as a target, keeping an IPv6 scope id; fails on port 0.
    fn try_from(address: SocketAddr) -> Result<Target, CheckError> {
        let zone = match address {
            SocketAddr::V6(v6) if v6.scope_id() != 0 => Some(Zone {
                scope_id: v6.scope_id(),
                text: v6.scope_id().to_string().into(),
            }),
            _ => None,
        };
        Target::from_parts(Host::Ip(address.ip()), address.port(), zone)
            .map_err(|reason| invalid(&address, reason))
    }
}

impl FromStr for Target {
    type Err = CheckError;

    fn from_str(text: &str) -> Result<Target, CheckError> {
        parse_target(text).map_err(|reason| invalid(&text, reason))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, &self.zone) {
            (Host::Ip(ip), Some(zone)) => write!(f, "[{ip}%{}]:{}", zone.text, self.port),
            (host, _) => write!(f, "{host}:{}", self.port),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// Anything that names a [`Target`]: text such as `"db:5432"`, a [`SocketAddr`], an
/// `(IpAddr, u16)` or `(&str, u16)` pair, or a `Target` itself.
///
/// Like [`std::net::ToSocketAddrs`], it lets the checking methods take whatever the caller has;
/// unlike it, turning text into a target never resolves anything: names are resolved inside the
/// check, within its deadline.
pub trait ToTarget {
    /// The target, or an error of kind [`ErrorKind::InvalidTarget`] that quotes the input.
    fn to_target(self) -> Result<Target, CheckError>;
}

impl ToTarget for Target {
    fn to_target(self) -> Result<Target, CheckError> {
        Ok(self)
    }
}

impl ToTarget for &Target {
    fn to_target(self) -> Result<Target, CheckError> {
        Ok(self.clone())
    }
}

impl ToTarget for &str {
    fn to_target(self) -> Result<Target, CheckError> {
        self.parse()
    }
}

impl ToTarget for String {
    fn to_target(self) -> Result<Target, CheckError> {
        self.parse()
    }
}

impl ToTarget for &String {
    fn to_target(self) -> Result<Target, CheckError> {
        self.parse()
    }
}

impl ToTarget for SocketAddr {
    fn to_target(self) -> Result<Target, CheckError> {
        Target::try_from(self)
    }
}

impl ToTarget for SocketAddrV4 {
    fn to_target(self) -> Result<Target, CheckError> {
        SocketAddr::V4(self).to_target()
    }
}

impl ToTarget for SocketAddrV6 {
    fn to_target(self) -> Result<Target, CheckError> {
        SocketAddr::V6(self).to_target()
    }
}

impl ToTarget for (IpAddr, u16) {
    fn to_target(self) -> Result<Target, CheckError> {
        SocketAddr::from(self).to_target()
    }
}

impl ToTarget for (&str, u16) {
    fn to_target(self) -> Result<Target, CheckError> {
        Target::new(self.0, self.1)
    }
}

fn invalid(input: &impl fmt::Display, reason: &'static str) -> CheckError {
    CheckError::new(ErrorKind::InvalidTarget, format!("{:?}", input.to_string()))
        .with_detail(reason)
}

fn format_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn parse_target(text: &str) -> Result<Target, &'static str> {
    let (host, zone, port) = split_target(text)?;
    Target::from_parts(host, parse_port(port)?, zone)
}

/// The host, zone and port text of `text`, refusing empty text and surrounding spaces.
fn split_target(text: &str) -> Result<(Host, Option<Zone>, &str), &'static str> {
    if text.trim().is_empty() {
        return Err("the target is empty; give host:port");
    }
    if text.trim() != text {
        return Err("the target has leading or trailing spaces");
    }
    split_host_port(text)
}

/// Splits `host:port`, `[v6]:port`, `[v6%zone]:port` and `v4:port`; a bare IPv6 address is
/// refused because its last group cannot be told from a port.
fn split_host_port(text: &str) -> Result<(Host, Option<Zone>, &str), &'static str> {
    if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err("the '[' of an IPv6 address is not closed; write [address]:port");
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err("a port must follow the bracketed IPv6 address, as in [::1]:80");
        };
        let (address, zone) = match split_zone(inside) {
            Some((address, zone)) => (address, Some(zone)),
            None => (inside, None),
        };
        let ip = address
            .parse()
            .map_err(|_| "the text inside [ ] is not an IPv6 address")?;
        let host = Host::Ip(IpAddr::V6(ip));
        let zone = match zone {
            Some(zone) => Some(parse_zone(&host, zone)?),
            None => None,
        };
        return Ok((host, zone, port));
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("the port is missing; write host:port");
    };
    if host.contains(':') {
        return Err("an IPv6 address needs brackets around it, as in [::1]:80");
    }
    Ok((parse_host(host)?, None, port))
}

/// `address%zone` split at the `%`, if there is one.
fn split_zone(text: &str) -> Option<(&str, &str)> {
    text.split_once('%')
}

/// The zone of an IPv6 address: an interface index, or the name of an interface of this host.
fn parse_zone(host: &Host, zone: &str) -> Result<Zone, &'static str> {
    if !matches!(host, Host::Ip(IpAddr::V6(_))) {
        return Err("only an IPv6 address can have a zone (%interface)");
    }
    if zone.is_empty() {
        return Err("the zone after '%' is empty; write [fe80::1%eth0]:port");
    }
    let scope_id = match zone.parse::<u32>() {
        Ok(index) => index,
        Err(_) => crate::sys::interface_index(zone)
            .map_err(|_| "the zone names no network interface of this host (ip link lists them)")?,
    };
    Ok(Zone {
        scope_id,
        text: zone.into(),
    })
}

fn parse_port(text: &str) -> Result<u16, &'static str> {
    if text.is_empty() {
        return Err("the port is missing; write host:port");
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the port is not a number from 1 to 65535");
    }
    text.parse()
        .map_err(|_| "the port is out of range; ports go from 1 to 65535")
}

/// An IP address, or a name made of the characters DNS and `/etc/hosts` names use.
fn parse_host(text: &str) -> Result<Host, &'static str> {
    if text.is_empty() {
        return Err("the host is missing; write host:port");
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    if text.contains(':') {
        return Err("the host is not a valid IPv6 address");
    }
    if text.len() > MAX_HOST_NAME_LEN {
        return Err("the host name is longer than 253 characters");
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let name = text.strip_suffix('.').unwrap_or(text);
    if name
        .rsplit('.')
        .next()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
    {
        // RFC 1123: a top-level label is never all digits, so this is a mistyped IPv4 address.
        return Err("the host is not a valid IPv4 address");
    }
    if !name.split('.').all(valid_label) {
        return Err(
            "the host is neither an IP address nor a host name (letters, digits, '-', '_' and dots)",
        );
    }
    Ok(Host::Name(text.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(text: &str) -> String {
        match text.parse::<Target>() {
            Ok(target) => panic!("{text:?} parsed as {target}"),
            Err(error) => {
                assert_eq!(error.kind(), ErrorKind::InvalidTarget);
                error.to_string()
            }
        }
    }

    #[test]
    fn parses_the_three_forms() {
        let v4: Target = "127.0.0.1:80".parse().unwrap();
        assert_eq!(v4.socket_addr(), Some("127.0.0.1:80".parse().unwrap()));
        let v6: Target = "[::1]:6379".parse().unwrap();
        assert_eq!(v6.socket_addr(), Some("[::1]:6379".parse().unwrap()));
        let name: Target = "db.internal:5432".parse().unwrap();
        assert_eq!(name.host(), &Host::Name("db.internal".into()));
        assert_eq!(name.port(), 5432);
        assert_eq!(name.socket_addr(), None);
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "127.0.0.1:1",
            "[::1]:65535",
            "localhost:22",
            "a-b_c.example.:443",
        ] {
            let target: Target = text.parse().unwrap();
            assert_eq!(target.to_string(), text);
            assert_eq!(target.to_string().parse::<Target>().unwrap(), target);
        }
    }

    #[test]
    fn bad_input_says_what_is_wrong_and_quotes_it() {
        for (text, says) in [
            ("", "empty"),
            ("localhost", "port is missing"),
            ("localhost:", "port is missing"),
            ("localhost:0", "port 0"),
            ("localhost:65536", "out of range"),
            ("localhost:http", "not a number"),
            ("[::1", "not closed"),
            ("[::1]", "port must follow"),
            ("[nonsense]:80", "not an IPv6"),
            ("::1:80", "brackets"),
            (":80", "host is missing"),
            ("exa mple:80", "neither an IP"),
            ("999.1.1.1:80", "not a valid IPv4"),
            ("127.1:80", "not a valid IPv4"),
            (" localhost:80", "spaces"),
            ("%%%:80", "\"%%%:80\""),
        ] {
            let said = reason(text);
            assert!(said.contains(says), "{text:?}: {said}");
        }
    }

    #[test]
    fn a_split_host_and_its_ports_are_refused_as_a_target_is() {
        let detail = |error: CheckError| error.detail().map(str::to_owned);
        for text in [
            "", " db:80", "db", "[::1", "[::1]", "[x]:80", "::1:80", ":80", "a b:80",
        ] {
            let Err(split) = TargetHost::split(text) else {
                panic!("{text:?} split");
            };
            let parsed = text.parse::<Target>().unwrap_err();
            assert_eq!(detail(split), detail(parsed), "{text:?}");
        }
        for port in ["", "http", "+80", "0", "65536"] {
            let text = format!("db:{port}");
            let parsed = detail(text.parse::<Target>().unwrap_err());
            assert_eq!(
                detail(Target::parse_port(port).unwrap_err()),
                parsed,
                "{port:?}"
            );
        }
        let (host, ports) = TargetHost::split("[fe80::1%7]:1-2").unwrap();
        assert_eq!((host.scope_id(), ports), (7, "1-2"));
        assert_eq!(
            host.with_port(22).unwrap(),
            "[fe80::1%7]:22".parse().unwrap()
        );
        assert!(host.with_port(0).is_err());
    }

    #[test]
    fn another_port_keeps_the_host() {
        let v6: Target = "[::1]:80".parse().unwrap();
        assert_eq!(v6.with_port(443).unwrap().to_string(), "[::1]:443");
        let error = v6.with_port(0).unwrap_err();
        assert_eq!(error.target(), "\"[::1]:0\"");
        assert!(error.detail().unwrap().contains("port 0"));
    }

    #[test]
    fn pairs_and_addresses_convert() {
        let target = ("localhost", 22).to_target().unwrap();
        assert_eq!(target.to_string(), "localhost:22");
        let target = ("::1", 22).to_target().unwrap();
        assert_eq!(target.to_string(), "[::1]:22");
        assert!(("localhost", 0).to_target().is_err());
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert!(addr.to_target().is_err());
        assert!(Target::try_from(addr).is_err());
    }

    #[test]
    fn zones_are_kept_and_shown() {
        let target: Target = "[fe80::1%lo]:22".parse().unwrap();
        assert_eq!(target.to_string(), "[fe80::1%lo]:22");
        assert_ne!(target.scope_id(), 0);
        let SocketAddr::V6(address) = target.socket_addr().unwrap() else {
            panic!("not IPv6");
        };
        assert_eq!(address.scope_id(), target.scope_id());
        let numeric = Target::new("fe80::1%7", 22).unwrap();
        assert_eq!(numeric.scope_id(), 7);
        assert_eq!(numeric.to_string(), "[fe80::1%7]:22");
        let from_address = Target::try_from(SocketAddr::V6(SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            80,
            0,
            3,
        )))
        .unwrap();
        assert_eq!(from_address.scope_id(), 3);
        assert_eq!(from_address.to_string(), "[fe80::1%3]:80");
        assert!(reason("[fe80::1%no-such-interface0]:22").contains("no network interface"));
        assert!(reason("[fe80::1%]:22").contains("empty"));
        assert!(reason("127.0.0.1%lo:22").contains("neither an IP"));
    }
}
