//! `--source`: each address is checked when the run is planned, before any target is read or
//! any check is sent, so that a mistake is one clear error rather than a failure of every
//! check. (`--interface` is the library's to check: a checker refuses to start on an interface
//! that does not exist.)

use std::net::{IpAddr, SocketAddr, SocketAddrV6, UdpSocket};

use anyhow::bail;
use tcp_shaker::{Checker, CheckerBuilder, TargetHost};

/// A checker builder with the run's source addresses and interface, once the addresses are
/// known to be usable.
pub fn checker_builder(
    sources: &[IpAddr],
    interface: Option<&str>,
) -> anyhow::Result<CheckerBuilder> {
    let v4 = sources.iter().filter(|ip| ip.is_ipv4()).count();
    if v4 > 1 || sources.len() - v4 > 1 {
        bail!("give at most one --source address per address family (IPv4, IPv6)");
    }
    let mut builder = Checker::builder();
    if let Some(name) = interface {
        builder = builder.interface(name);
    }
    for &source in sources {
        check_source(source, interface)?;
        builder = builder.source_address(source);
    }
    Ok(builder)
}

/// Refuses a source address that no socket can be bound to: one that is not this machine's.
/// A link-local IPv6 address is tried on `interface`, where it has to be; if that interface
/// does not exist, the checker refuses it when it starts.
fn check_source(ip: IpAddr, interface: Option<&str>) -> anyhow::Result<()> {
    let address = match (ip, interface) {
        (IpAddr::V6(v6), Some(name)) if v6.is_unicast_link_local() => {
            match TargetHost::split(&format!("[{v6}%{name}]:")) {
                Ok((zoned, _)) => SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, zoned.scope_id())),
                Err(_) => return Ok(()),
            }
        }
        _ => SocketAddr::new(ip, 0),
    };
    match UdpSocket::bind(address) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AddrNotAvailable => bail!(
            "--source {ip} is not an address of this machine ({error}); give one of its \
             addresses (ip address lists them)"
        ),
        Err(error) => bail!("--source {ip} cannot be used: binding a socket to it failed: {error}"),
    }
}
