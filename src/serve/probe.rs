//! `/probe?target=HOST:PORT[&module=NAME][&debug=true]`: one check, answered with the metrics
//! of blackbox_exporter's TCP prober, for Prometheus to scrape with the blackbox relabelling.
//!
//! A probe is stateless: a fresh registry each time, no target labels. Its timeout is the
//! scraper's (`X-Prometheus-Scrape-Timeout-Seconds`, 120 s without it) less the configured
//! offset, capped by the module's, and counts name resolution. Nothing is checked outside the
//! allowlist, which is applied to the address about to be checked, after resolution: the probe
//! checks exactly the address it vetted, never resolving again.
//!
//! A probe says `probe_success 0` only about the target: closed, silent, unreachable, or a name
//! that does not resolve. When the checker itself could not make the check, the answer is 503,
//! so that Prometheus records a failed scrape rather than a failed target.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tcp_shaker::{CheckOptions, Checker};

use super::allow::{Allowlist, ProbeHost, parse_probe_target};
use super::config::{IpProtocol, ProbeModule};
use super::metrics::Format;

/// The scrape timeout when the scraper sends none: blackbox_exporter's.
const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(120);

/// The longest `target` parameter considered.
const LONGEST_TARGET: usize = 1024;

/// How `/probe` is configured.
#[derive(Clone, Debug, Default)]
pub struct ProbeSettings {
    /// What may be probed; empty, nothing.
    pub allowlist: Allowlist,
    /// Taken off the scraper's timeout, to leave time for the answer to travel.
    pub timeout_offset: Duration,
    /// The modules, by name.
    pub modules: BTreeMap<String, ProbeModule>,
}

/// A probe's answer: its status, content type and body.
#[derive(Debug)]
pub struct ProbeAnswer {
    /// 200 for any probe that was made, whatever it found.
    pub status: StatusCode,
    /// The body's type.
    pub content_type: &'static str,
    /// The metrics, the explanation (with `debug=true`), or why the probe was refused.
    pub body: String,
}

impl ProbeAnswer {
    fn refused(status: StatusCode, message: impl Into<String>) -> ProbeAnswer {
        let mut body = message.into();
        body.push('\n');
        ProbeAnswer {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }
}

/// What a probe found, in blackbox_exporter's terms.
#[derive(Debug, Default)]
struct Findings {
    success: bool,
    duration: Duration,
    dns_lookup: Duration,
    address: Option<IpAddr>,
    timeout: Duration,
}

/// The parameters of a probe request.
struct Request {
    target: String,
    module: String,
    debug: bool,
}

/// Answers a probe: `query` is the request's query string, `scrape_timeout` its
/// `X-Prometheus-Scrape-Timeout-Seconds` header, `format` what its `Accept` header asks for.
pub async fn answer(
    settings: &ProbeSettings,
    checker: &Checker,
    query: Option<&str>,
    scrape_timeout: Option<&str>,
    format: Format,
) -> ProbeAnswer {
    let request = match parse_query(query.unwrap_or("")) {
        Ok(request) => request,
        Err(message) => return ProbeAnswer::refused(StatusCode::BAD_REQUEST, message),
    };
    let Some(module) = settings.modules.get(&request.module) else {
        let known: Vec<&str> = settings.modules.keys().map(String::as_str).collect();
        return ProbeAnswer::refused(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown module {:?}; the modules are: {}",
                request.module,
                known.join(", ")
            ),
        );
    };
    let timeout = match probe_timeout(scrape_timeout, settings.timeout_offset, module.timeout) {
        Ok(timeout) => timeout,
        Err(message) => return ProbeAnswer::refused(StatusCode::BAD_REQUEST, message),
    };
    let mut explanation = String::new();
    let findings = match probe(
        &request,
        module,
        &settings.allowlist,
        checker,
        timeout,
        &mut explanation,
    )
    .await
    {
        Ok(findings) => findings,
        Err(refusal) => return refusal,
    };
    let metrics = render(&findings, format);
    if request.debug {
        let _ = write!(
            explanation,
            "\nMetrics that would have been returned:\n{metrics}"
        );
        return ProbeAnswer {
            status: StatusCode::OK,
            content_type: "text/plain; charset=utf-8",
            body: explanation,
        };
    }
    ProbeAnswer {
        status: StatusCode::OK,
        content_type: format.content_type(),
        body: metrics,
    }
}

/// `target` (exactly once), `module` (`tcp_connect` by default), `debug`.
fn parse_query(query: &str) -> Result<Request, String> {
    let mut target = None;
    let mut module = None;
    let mut debug = false;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "target" if target.is_some() => {
                return Err("give the target parameter once".into());
            }
            "target" => target = Some(value.into_owned()),
            "module" => module = Some(value.into_owned()),
            "debug" => debug = value == "true",
            _ => {}
        }
    }
    let target = target
        .filter(|target| !target.is_empty())
        .ok_or("the target parameter is missing: /probe?target=HOST:PORT")?;
    if target.len() > LONGEST_TARGET {
        return Err(format!(
            "the target parameter is longer than {LONGEST_TARGET} bytes"
        ));
    }
    Ok(Request {
        target,
        module: module.unwrap_or_else(|| "tcp_connect".into()),
        debug,
    })
}

/// The scraper's timeout less `offset`, capped by the module's `cap` (none when zero, as
/// blackbox_exporter's 0).
fn probe_timeout(
    header: Option<&str>,
    offset: Duration,
    cap: Duration,
) -> Result<Duration, String> {
    let scrape = match header {
        None => DEFAULT_SCRAPE_TIMEOUT,
        Some(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
            .ok_or_else(|| {
                format!("X-Prometheus-Scrape-Timeout-Seconds {text:?} is not a number of seconds")
            })?,
    };
    let mut timeout = scrape.saturating_sub(offset);
    if !cap.is_zero() {
        timeout = timeout.min(cap);
    }
    if timeout.is_zero() {
        return Err(format!(
            "the scrape timeout ({scrape:?}) leaves no time for a probe after the offset of \
             {offset:?}: raise scrape_timeout or lower [probe] timeout_offset"
        ));
    }
    Ok(timeout)
}

/// Resolves, vets and checks the target.
async fn probe(
    request: &Request,
    module: &ProbeModule,
    allowlist: &Allowlist,
    checker: &Checker,
    timeout: Duration,
    explanation: &mut String,
) -> Result<Findings, ProbeAnswer> {
    let started = Instant::now();
    let target = parse_probe_target(&request.target).map_err(|malformed| {
        ProbeAnswer::refused(StatusCode::BAD_REQUEST, malformed.to_string())
    })?;
    let _ = writeln!(
        explanation,
        "Probing {:?} with module {:?}, timeout {timeout:?}",
        request.target, request.module
    );
    let mut findings = Findings {
        timeout,
        ..Findings::default()
    };
    let is_name = matches!(target.host, ProbeHost::Name(_));
    // Only a name needs the resolver, which blocks: on a thread of its own, within the timeout.
    let vetted = if is_name {
        let (allowlist, target) = (allowlist.clone(), target.clone());
        let vetting = tokio::task::spawn_blocking(move || allowlist.vet(&target, resolve));
        tokio::time::timeout(timeout, vetting).await
    } else {
        Ok(Ok(allowlist.vet(&target, resolve)))
    };
    if is_name {
        findings.dns_lookup = started.elapsed();
    }
    let addresses = match vetted {
        Ok(Ok(Ok(addresses))) => addresses,
        Ok(Ok(Err(refusal))) if refusal.is_forbidden() => {
            return Err(ProbeAnswer::refused(
                StatusCode::FORBIDDEN,
                refusal.to_string(),
            ));
        }
        Ok(Ok(Err(refusal))) => {
            let _ = writeln!(explanation, "{refusal}");
            findings.duration = started.elapsed();
            return Ok(findings);
        }
        Ok(Err(_)) => {
            return Err(ProbeAnswer::refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "resolving the target failed unexpectedly",
            ));
        }
        Err(_) => {
            let _ = writeln!(explanation, "Resolving timed out after {timeout:?}");
            findings.duration = started.elapsed();
            return Ok(findings);
        }
    };
    if is_name {
        let _ = writeln!(
            explanation,
            "Resolved to {addresses:?} in {:?}",
            findings.dns_lookup
        );
    }
    let Some(address) = choose_address(&addresses, module) else {
        let _ = writeln!(explanation, "No address of the module's IP protocol");
        findings.duration = started.elapsed();
        return Ok(findings);
    };
    // A zone (`[fe80::1%eth0]:22`) is the library's to turn into a scope id.
    let address = match &target.zone {
        Some(_) => tcp_shaker::Target::from_str(&request.target)
            .ok()
            .and_then(|zoned| zoned.socket_addr())
            .unwrap_or(address),
        None => address,
    };
    let _ = writeln!(explanation, "Checking {address} (allowed)");
    findings.address = Some(address.ip());
    let remaining = timeout
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(1));
    match checker
        .check_async(address, CheckOptions::new(remaining))
        .await
    {
        Ok(report) => {
            let _ = writeln!(
                explanation,
                "The port is {} after {:?}",
                report.outcome(),
                report.elapsed()
            );
            findings.success = report.is_open();
        }
        Err(error) => {
            return Err(ProbeAnswer::refused(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the checker could not make the probe, which says nothing about the \
                     target: {error}"
                ),
            ));
        }
    }
    findings.duration = started.elapsed();
    Ok(findings)
}

/// The system resolver's addresses of `name`.
fn resolve(name: &str) -> std::io::Result<Vec<IpAddr>> {
    Ok((name, 0).to_socket_addrs()?.map(|a| a.ip()).collect())
}

/// The first address of the module's preferred protocol, or of the other if it falls back.
fn choose_address(addresses: &[SocketAddr], module: &ProbeModule) -> Option<SocketAddr> {
    let preferred = |address: &&SocketAddr| match module.preferred_ip_protocol {
        IpProtocol::V4 => address.is_ipv4(),
        IpProtocol::V6 => address.is_ipv6(),
    };
    addresses
        .iter()
        .find(preferred)
        .or_else(|| {
            module
                .ip_protocol_fallback
                .then(|| addresses.first())
                .flatten()
        })
        .copied()
}

/// blackbox_exporter's `probe_ip_addr_hash`: FNV-32a of the address's bytes.
fn address_hash(ip: IpAddr) -> u32 {
    let bytes = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// The probe's metrics, in a registry of their own.
fn render(findings: &Findings, format: Format) -> String {
    let mut registry = Registry::default();
    let mut gauge = |name: &str, help: &str, value: f64| {
        let metric: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
        metric.set(value);
        registry.register(name, help, metric);
    };
    gauge(
        "probe_success",
        "Whether the probe found the port open",
        f64::from(u8::from(findings.success)),
    );
    gauge(
        "probe_duration_seconds",
        "How long the probe took, name resolution included",
        findings.duration.as_secs_f64(),
    );
    gauge(
        "probe_dns_lookup_time_seconds",
        "How long the name took to resolve",
        findings.dns_lookup.as_secs_f64(),
    );
    gauge(
        "probe_timeout_seconds",
        "The timeout the probe was given",
        findings.timeout.as_secs_f64(),
    );
    let protocol = match findings.address {
        Some(IpAddr::V4(_)) => 4.0,
        Some(IpAddr::V6(_)) => 6.0,
        None => 0.0,
    };
    gauge(
        "probe_ip_protocol",
        "The IP protocol of the address checked (4 or 6)",
        protocol,
    );
    if let Some(ip) = findings.address {
        gauge(
            "probe_ip_addr_hash",
            "A hash of the address checked, to see it change",
            f64::from(address_hash(ip)),
        );
    }
    super::metrics::encode(&registry, format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_is_the_scrapers_less_the_offset_capped_by_the_module() {
        let offset = Duration::from_millis(500);
        let cap = Duration::from_secs(5);
        assert_eq!(
            probe_timeout(Some("3"), offset, cap),
            Ok(Duration::from_millis(2500))
        );
        assert_eq!(probe_timeout(Some("10.0"), offset, cap), Ok(cap));
        assert_eq!(probe_timeout(None, offset, cap), Ok(cap));
        let uncapped = Duration::ZERO;
        assert_eq!(
            probe_timeout(Some("10"), offset, uncapped),
            Ok(Duration::from_millis(9500))
        );
        assert!(probe_timeout(Some("0.5"), offset, cap).is_err());
        assert!(probe_timeout(Some("soon"), offset, cap).is_err());
        assert!(probe_timeout(Some("-1"), offset, cap).is_err());
    }

    #[test]
    fn queries_need_one_target_and_default_the_module() {
        let request = parse_query("target=db%3A5432&debug=true").unwrap();
        assert_eq!(
            (
                request.target.as_str(),
                request.module.as_str(),
                request.debug
            ),
            ("db:5432", "tcp_connect", true)
        );
        assert!(parse_query("").is_err());
        assert!(parse_query("target=").is_err());
        assert!(parse_query("target=a:1&target=b:2").is_err());
        assert!(parse_query(&format!("target={}", "a".repeat(2000))).is_err());
        assert!(parse_query("%zz=%%&&&==").is_err());
    }

    #[test]
    fn the_address_hash_is_fnv32a_of_the_address_bytes() {
        // FNV-32a of the four bytes 127, 0, 0, 1, as a reference implementation computes it.
        assert_eq!(address_hash("127.0.0.1".parse().unwrap()), 0xdaaf_40ed);
    }
}
