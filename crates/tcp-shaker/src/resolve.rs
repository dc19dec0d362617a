//! Turning host names into addresses, pluggably.
//!
//! A [`Checker`](crate::Checker) resolves names on threads of its own, never on the event loop,
//! and bounds every lookup by the check's timeout: a lookup that outlives it makes the check time
//! out (in [`Phase::Resolve`](crate::Phase::Resolve)) while the lookup finishes unobserved.
//! Threads start as names need them, up to
//! [`resolver_threads`](crate::CheckerBuilder::resolver_threads), so that a slow DNS server
//! holds only the threads of its own names; checks of a name being looked up share the lookup.
//! There is no cache of answers: the system's resolver (nscd, systemd-resolved) brings its own. The resolver itself is a trait, so
//! that tests can inject slow or failing ones and services can bring their own cache.

use std::io;
use std::net::{IpAddr, ToSocketAddrs};

/// Resolves host names to IP addresses.
///
/// Implementations may block: they run on the checker's resolver threads. One that panics fails
/// the checks of that name with [`ErrorKind::Resolve`](crate::ErrorKind::Resolve), and the
/// other lookups go on. Closures of the right shape are resolvers too:
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr, TcpListener};
/// use std::time::Duration;
/// use tcp_shaker::Checker;
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let port = listener.local_addr()?.port();
/// let checker = Checker::builder()
///     .resolver(|host: &str| match host {
///         "db.test" => Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]),
///         _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "unknown host")),
///     })
///     .spawn()?;
/// assert!(checker.check(("db.test", port), Duration::from_secs(1))?.is_open());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `host`, in order of preference.
    fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>>;
}

impl<F> Resolve for F
where
    F: Fn(&str) -> io::Result<Vec<IpAddr>> + Send + Sync + 'static,
{
    fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        self(host)
    }
}

/// The operating system's resolver (`getaddrinfo` on Unix): `/etc/hosts`, DNS, and whatever
/// else the system is configured with. The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        Ok((host, 0).to_socket_addrs()?.map(|addr| addr.ip()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_resolver_knows_localhost() {
        let addresses = SystemResolver.resolve("localhost").unwrap();
        assert!(addresses.iter().all(IpAddr::is_loopback), "{addresses:?}");
        assert!(!addresses.is_empty());
    }
}
