//! `--source` and `--interface`: checked when the run starts, before any target is read or any
//! check is sent, so that a mistake is one clear error rather than a failure of every check;
//! then handed to the checker.

use std::net::{IpAddr, SocketAddr, SocketAddrV6, UdpSocket};

use anyhow::bail;
use tcp_shaker::{Checker, CheckerBuilder};

use crate::args::CheckArgs;

/// A checker builder with the run's source addresses and interface, once they are known to be
/// usable.
pub fn checker_builder(args: &CheckArgs) -> anyhow::Result<CheckerBuilder> {
    let v4 = args.source.iter().filter(|ip| ip.is_ipv4()).count();
    if v4 > 1 || args.source.len() - v4 > 1 {
        bail!("give at most one --source address per address family (IPv4, IPv6)");
    }
    let mut builder = Checker::builder();
    let interface = match &args.interface {
        Some(name) => {
            let index = interface_index(name)?;
            builder = builder.interface(name);
            Some(index)
        }
        None => None,
    };
    for source in &args.source {
        check_source(*source, interface)?;
        builder = builder.source_address(*source);
    }
    Ok(builder)
}

/// Refuses a source address that no socket can be bound to: one that is not this machine's.
/// A link-local IPv6 address is tried on `interface` (its index), where it has to be.
fn check_source(ip: IpAddr, interface: Option<u32>) -> anyhow::Result<()> {
    let address = match ip {
        IpAddr::V6(v6) if v6.is_unicast_link_local() => {
            SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, interface.unwrap_or(0)))
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

/// The index of the interface named `name`; refuses one that does not exist, rather than
/// failing every check on it.
#[cfg(unix)]
fn interface_index(name: &str) -> anyhow::Result<u32> {
    let index = std::ffi::CString::new(name)
        // SAFETY: if_nametoindex reads the NUL-terminated name and nothing else.
        .map_or(0, |name| unsafe { libc::if_nametoindex(name.as_ptr()) });
    if index == 0 {
        bail!("no network interface is named {name:?} (ip link lists them)");
    }
    Ok(index)
}

#[cfg(not(unix))]
fn interface_index(_: &str) -> anyhow::Result<u32> {
    Ok(0)
}
