//! Which targets a run has taken already, so that a target given twice is checked once: one port
//! set per host, small for a host with a few ports (a sorted list), 8 KiB for one with many (a
//! bitset of every port).
//!
//! A host is looked up once per spec ([`Seen::host`]); each of the spec's ports is then a probe
//! of that host's set, without hashing.

use std::collections::HashMap;

use tcp_shaker::{Host, Target};

/// Past this many ports, a host's list becomes a bitset (the list would then take more room).
const LIST_LIMIT: usize = 512;
/// Words of a bitset of every port.
const BITSET_WORDS: usize = 65536 / 64;

/// A host seen by [`Seen`], to ask about its ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostId(usize);

/// The ports taken of every host seen.
#[derive(Debug, Default)]
pub struct Seen {
    /// A host and the scope id of its zone (two spellings of one zone are one host).
    hosts: HashMap<(Host, u32), HostId>,
    ports: Vec<PortSet>,
}

#[derive(Debug)]
enum PortSet {
    /// Sorted.
    List(Vec<u16>),
    Bits(Box<[u64]>),
}

impl Seen {
    /// The host of `target`, registered if it is new.
    pub fn host(&mut self, target: &Target) -> HostId {
        let key = (target.host().clone(), target.scope_id());
        let next = HostId(self.ports.len());
        let id = *self.hosts.entry(key).or_insert(next);
        if id == next {
            self.ports.push(PortSet::List(Vec::new()));
        }
        id
    }

    /// Takes `port` of `host`: whether it had not been taken before.
    pub fn first_time(&mut self, host: HostId, port: u16) -> bool {
        let Some(set) = self.ports.get_mut(host.0) else {
            return true;
        };
        match set {
            PortSet::List(list) => match list.binary_search(&port) {
                Ok(_) => false,
                Err(position) => {
                    if list.len() < LIST_LIMIT {
                        list.insert(position, port);
                    } else {
                        let mut bits = vec![0u64; BITSET_WORDS].into_boxed_slice();
                        for &taken in list.iter().chain([&port]) {
                            set_bit(&mut bits, taken);
                        }
                        *set = PortSet::Bits(bits);
                    }
                    true
                }
            },
            PortSet::Bits(bits) => set_bit(bits, port),
        }
    }
}

/// Sets the bit of `port`; whether it was clear.
fn set_bit(bits: &mut [u64], port: u16) -> bool {
    let (word, bit) = (usize::from(port / 64), 1u64 << (port % 64));
    let was_clear = bits[word] & bit == 0;
    bits[word] |= bit;
    was_clear
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host of the target `text`, as `seen` numbers it.
    fn host(seen: &mut Seen, text: &str) -> HostId {
        seen.host(&text.parse().unwrap())
    }

    #[test]
    fn hosts_are_told_apart_by_name_address_and_zone_and_not_by_port() {
        for (one, other, other_again) in [
            ("db:5432", "cache:6379", "cache:1"),
            ("[fe80::1]:22", "[fe80::1%1]:22", "[fe80::1%1]:80"),
        ] {
            let mut seen = Seen::default();
            let first = host(&mut seen, one);
            let second = host(&mut seen, other);
            assert_ne!(first, second, "{one} and {other}");
            assert_eq!(host(&mut seen, other_again), second, "{other_again}");
        }
    }

    #[test]
    fn each_port_of_a_host_is_taken_once() {
        let mut seen = Seen::default();
        let db = host(&mut seen, "db:5432");
        let cache = host(&mut seen, "cache:6379");
        assert!(seen.first_time(db, 5432));
        assert!(!seen.first_time(db, 5432));
        assert!(seen.first_time(cache, 5432));
        assert!(seen.first_time(db, 22));
        assert!(!seen.first_time(db, 22));
    }

    #[test]
    fn a_host_with_many_ports_moves_to_a_bitset_and_keeps_what_it_had() {
        let mut seen = Seen::default();
        let host = host(&mut seen, "127.0.0.1:1");
        for port in (1..=65535).rev() {
            assert!(seen.first_time(host, port), "{port}");
        }
        assert!(matches!(seen.ports[host.0], PortSet::Bits(_)));
        for port in 1..=65535 {
            assert!(!seen.first_time(host, port), "{port}");
        }
    }
}
