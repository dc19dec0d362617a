//! A small packet capture, for the wire tests and the benchmark: an `AF_PACKET` socket bound to
//! one interface (`lo` unless told otherwise) that keeps the TCP segments to or from one port,
//! read on a thread of its own. Needs `CAP_NET_RAW`. Linux only.
//!
//! A loopback interface shows every packet twice, once leaving (`PACKET_OUTGOING`) and once
//! arriving (`PACKET_HOST`); there only the arriving copy is kept. Any other interface (the end
//! of a veth pair in this namespace, say) shows each packet once, leaving or arriving, and every
//! one is kept. Which kind an interface is comes from its `IFF_LOOPBACK` flag, not its name.
//!
//! Loopback and veth interfaces frame each packet with an Ethernet header; a TUN device (link
//! type `ARPHRD_NONE`, such as the ends of a [`delay_line`]) hands over the bare IP packet. The
//! capture asks the interface's link type (`SIOCGIFHWADDR`) and reads either framing
//! ([`parse_frame`], [`parse_ip`]); an interface of any other link type is refused.
//!
//! A classic BPF filter, attached before the socket is bound, drops loopback's leaving copies and
//! everything but TCP to or from the port inside the kernel, so that the rest of the traffic
//! (other tests, other processes on the machine) can neither crowd the receive buffer nor reach
//! the results. The same filter can keep only a sample of the connections, chosen by client port
//! ([`Capture::start_sampled`]), for captures of more traffic than a reader thread can take.
//! Should the kernel still drop a packet for want of buffer space, [`Capture::stop`] says so
//! instead of returning an incomplete list.
//!
//! Each captured packet carries the kernel's timestamp (`SO_TIMESTAMPNS`, real-time clock) of the
//! moment it passed the interface: an arriving packet (every packet kept on loopback) as it
//! entered the receive path, a leaving one as it passed the transmit path's tap. Timestamps of
//! one capture are comparable between packets.
//!
//! The [`netns`] module holds the other half of the tests' network plumbing: network namespaces
//! that the tests and the benchmark make for themselves, and threads that act inside them; the
//! [`delay_line`] module, a round trip of a chosen length between two such namespaces, made in
//! user space; the [`skip`] module, how a test without the privileges for these says so.

#![cfg(target_os = "linux")]

pub mod delay_line;
pub mod limits;
pub mod netns;
pub mod skip;

use std::ffi::{CStr, CString};
use std::fmt::Write as _;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// TCP header flags, as in the header's flags byte.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

/// The ECN bits: a SYN asking for ECN carries both, a SYN-ACK granting it carries ECE. Whether
/// they appear depends on `net.ipv4.tcp_ecn`, not on the checker, so sequences leave them out.
pub const ECN: u8 = ECE | CWR;

/// Flag letters in the order they are written: `SA` is SYN-ACK, `RA` is RST with the ACK bit
/// (tcpdump's `R.`), `FA` is FIN with the ACK bit, `A` a bare ACK.
const FLAG_LETTERS: [(u8, char); 6] = [
    (SYN, 'S'),
    (FIN, 'F'),
    (RST, 'R'),
    (PSH, 'P'),
    (ACK, 'A'),
    (URG, 'U'),
];

/// How long the reader waits in one `recvfrom` before looking at the stop flag.
const READ_TIMEOUT: Duration = Duration::from_millis(50);
/// The receive buffer asked for; the filter keeps the traffic small, this is only headroom.
const RECEIVE_BUFFER: libc::c_int = 8 << 20;
/// Bytes of each packet the kernel hands over: enough for Ethernet, IPv6 and a full TCP header.
const SNAP_LENGTH: u32 = 256;
const ETHERNET_HEADER: usize = 14;
/// `ARPHRD_RAWIP`: a link of bare IP packets (some modems' interfaces); missing from `libc`.
const ARPHRD_RAWIP: u16 = 519;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const IPPROTO_TCP: u8 = 6;

/// The loopback interface, where [`Capture::start`] and [`Capture::start_sampled`] capture.
pub const LOOPBACK: &str = "lo";

/// Which copies of each packet an interface shows, and so which the capture keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Copies {
    /// A loopback interface: each packet leaving and again arriving; the arriving copy is kept.
    LeavingAndArriving,
    /// Any other interface: each packet once, leaving or arriving; every packet is kept.
    One,
}

/// How an interface frames the packets a capture receives, from its link type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// An Ethernet header (14 bytes) before the IP header: loopback and veth interfaces.
    Ethernet,
    /// The IP header first, no link-layer header: TUN devices (`ARPHRD_NONE`) and other links of
    /// bare IP packets.
    RawIp,
}

impl Framing {
    /// Bytes before the IP header.
    fn link_header(self) -> usize {
        match self {
            Framing::Ethernet => ETHERNET_HEADER,
            Framing::RawIp => 0,
        }
    }

    /// The TCP segment a received frame of this framing carries, if any.
    fn parse(self, frame: &[u8]) -> Option<Packet> {
        match self {
            Framing::Ethernet => parse_frame(frame),
            Framing::RawIp => parse_ip(frame),
        }
    }
}

/// One captured TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// The TCP flags byte: a combination of [`SYN`], [`ACK`], [`RST`], [`FIN`], ...
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    /// Bytes of TCP payload, from the IP length fields (not from what was captured).
    pub payload_len: usize,
    /// When the kernel received the packet (`SO_TIMESTAMPNS`, real-time clock): set for every
    /// packet a [`Capture`] returns, `None` for a frame parsed with [`parse_frame`].
    pub timestamp: Option<SystemTime>,
}

impl Packet {
    /// Whether every flag in `flags` is set.
    pub fn has(&self, flags: u8) -> bool {
        self.flags & flags == flags
    }

    /// Whether the flags are exactly `flags`, leaving out the [`ECN`] bits.
    pub fn is(&self, flags: u8) -> bool {
        self.flags & !ECN == flags
    }

    /// The flags as letters, leaving out the [`ECN`] bits: `S`, `SA`, `RA`, `FA`, `A`, ...
    pub fn flag_letters(&self) -> String {
        FLAG_LETTERS
            .iter()
            .filter(|&&(flag, _)| self.has(flag))
            .map(|&(_, letter)| letter)
            .collect()
    }
}

/// Parses an Ethernet frame (as `lo` and veth interfaces present them) carrying TCP over IPv4 or
/// IPv6 (without extension headers). `None` for anything else or anything too short, and for an
/// IP header whose version is not the one the frame's ethertype announces.
pub fn parse_frame(frame: &[u8]) -> Option<Packet> {
    let ethertype = u16::from_be_bytes(field(frame, 12)?);
    let ip = frame.get(ETHERNET_HEADER..)?;
    let version = match ethertype {
        ETHERTYPE_IPV4 => 4,
        ETHERTYPE_IPV6 => 6,
        _ => return None,
    };
    if *ip.first()? >> 4 != version {
        return None;
    }
    parse_ip(ip)
}

/// Parses a bare IP packet (as a TUN device presents it, without a link-layer header) carrying
/// TCP over IPv4 or IPv6 (without extension headers); the version comes from the IP header's
/// first four bits. `None` for anything else or anything too short.
pub fn parse_ip(ip: &[u8]) -> Option<Packet> {
    let (src, dst, ip_header, ip_payload) = match *ip.first()? >> 4 {
        4 => {
            let version_ihl = *ip.first()?;
            let header = usize::from(version_ihl & 0x0f) * 4;
            if header < 20 || *ip.get(9)? != IPPROTO_TCP {
                return None;
            }
            let fragment_offset = u16::from_be_bytes(field(ip, 6)?) & 0x1fff;
            if fragment_offset != 0 {
                return None;
            }
            let total = usize::from(u16::from_be_bytes(field(ip, 2)?));
            let src = IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip.get(12..16)?).ok()?));
            let dst = IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip.get(16..20)?).ok()?));
            (src, dst, header, total.checked_sub(header)?)
        }
        6 => {
            if *ip.get(6)? != IPPROTO_TCP {
                return None;
            }
            let payload = usize::from(u16::from_be_bytes(field(ip, 4)?));
            let src = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip.get(8..24)?).ok()?));
            let dst = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip.get(24..40)?).ok()?));
            (src, dst, 40, payload)
        }
        _ => return None,
    };
    let tcp = ip.get(ip_header..)?;
    let data_offset = usize::from(*tcp.get(12)? >> 4) * 4;
    if data_offset < 20 {
        return None;
    }
    Some(Packet {
        src: SocketAddr::new(src, u16::from_be_bytes(field(tcp, 0)?)),
        dst: SocketAddr::new(dst, u16::from_be_bytes(field(tcp, 2)?)),
        flags: *tcp.get(13)?,
        seq: u32::from_be_bytes(field(tcp, 4)?),
        ack: u32::from_be_bytes(field(tcp, 8)?),
        payload_len: ip_payload.saturating_sub(data_offset),
        timestamp: None,
    })
}

/// `N` bytes of `bytes` from `at`, if there are that many.
fn field<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// A running capture of the TCP traffic to and from one port on one interface.
pub struct Capture {
    port: u16,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<io::Result<Vec<Packet>>>>,
}

impl Capture {
    /// Starts capturing TCP segments to or from `port` (any address, either family) on `lo`.
    ///
    /// Returns once the socket is bound: every packet sent after this is seen.
    pub fn start(port: u16) -> io::Result<Capture> {
        Capture::start_sampled(port, 0)
    }

    /// Starts capturing like [`start`](Capture::start), but keeps only the connections whose
    /// client port (the other end's port) has none of the bits of `client_port_mask` set: with
    /// `0b11110`, one connection in 16. The choice is made by the kernel's filter, so the
    /// connections left out cost the reader nothing. A mask of 0 keeps every connection.
    ///
    /// Linux gives `connect()` mostly even source ports, so a mask meant to sample connections
    /// should leave bit 0 out.
    pub fn start_sampled(port: u16, client_port_mask: u16) -> io::Result<Capture> {
        Capture::start_on(LOOPBACK, port, client_port_mask)
    }

    /// Starts capturing like [`start_sampled`](Capture::start_sampled), on `interface` (a name
    /// in the calling thread's network namespace) instead of `lo`. On an interface that is not
    /// a loopback, such as the end of a veth pair or a TUN device, each packet is seen once, and
    /// both the packets leaving and those arriving are kept.
    ///
    /// Fails with [`io::ErrorKind::Unsupported`] on an interface whose frames are neither
    /// Ethernet (loopback, veth) nor bare IP packets (TUN).
    pub fn start_on(interface: &str, port: u16, client_port_mask: u16) -> io::Result<Capture> {
        let (socket, link) = open_socket(interface, port, client_port_mask)?;
        let stop = Arc::new(AtomicBool::new(false));
        let reader = thread::Builder::new()
            .name(format!("capture-{port}"))
            .spawn({
                let stop = Arc::clone(&stop);
                move || read_until_stopped(&socket, port, link, &stop)
            })?;
        Ok(Capture {
            port,
            stop,
            reader: Some(reader),
        })
    }

    /// The port being captured.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the capture, after taking every packet already queued, and returns the packets in
    /// the order they arrived. Fails if the kernel dropped any (the list would be incomplete).
    pub fn stop(mut self) -> io::Result<Vec<Packet>> {
        self.stop.store(true, Ordering::Release);
        let reader = self
            .reader
            .take()
            .ok_or_else(|| io::Error::other("the capture was already stopped"))?;
        reader
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the capture thread panicked")))
    }
}

impl Drop for Capture {
    /// Ends the reader thread of a capture that was never stopped (a test that panicked).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// What a capture needs to know of its interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Link {
    copies: Copies,
    framing: Framing,
}

/// An `AF_PACKET` socket on `interface` that receives only TCP to or from `port`, of the
/// connections whose client port has no bit of `client_port_mask` set, with receive timestamps;
/// and which copies of each packet the interface shows, framed how.
fn open_socket(interface: &str, port: u16, client_port_mask: u16) -> io::Result<(OwnedFd, Link)> {
    let name = CString::new(interface).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{interface:?} is not an interface name"),
        )
    })?;
    // Protocol 0: the socket receives nothing until it is bound, so no packet slips in before
    // the filter is attached. The bind below then asks for every protocol (ETH_P_ALL).
    // SAFETY: socket() takes no pointers; its result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a descriptor just returned by socket(), owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let in_context =
        |error: io::Error| io::Error::new(error.kind(), format!("interface {interface}: {error}"));
    let index = interface_index(&name).map_err(in_context)?;
    let link = Link {
        copies: copies_shown(&socket, &name).map_err(in_context)?,
        framing: framing(&socket, &name).map_err(in_context)?,
    };
    attach_port_filter(&socket, port, client_port_mask, link)?;
    // SO_RCVBUFFORCE passes net.core.rmem_max (root only); fall back to what SO_RCVBUF allows.
    set_option(
        &socket,
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        &RECEIVE_BUFFER,
    )
    .or_else(|_| set_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUF, &RECEIVE_BUFFER))?;
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: READ_TIMEOUT.as_micros() as libc::suseconds_t,
    };
    set_option(&socket, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeout)?;
    let on: libc::c_int = 1;
    set_option(&socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &on)?;
    bind_to_interface(&socket, index)?;
    Ok((socket, link))
}

/// The index of the interface called `name`.
fn interface_index(name: &CStr) -> io::Result<libc::c_int> {
    // SAFETY: the argument is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    libc::c_int::try_from(index).map_err(io::Error::other)
}

/// An `ifreq` holding the interface name `name`, the rest zero.
pub(crate) fn interface_request(name: &CStr) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is a plain C struct of a byte array and a union of integers, addresses and
    // byte arrays; all zeroes is a valid value of it.
    let mut request: libc::ifreq = unsafe { mem::zeroed() };
    let name = name.to_bytes();
    if name.is_empty() || name.len() >= request.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "an interface name has 1 to {} bytes",
                request.ifr_name.len() - 1
            ),
        ));
    }
    for (slot, &byte) in request.ifr_name.iter_mut().zip(name) {
        *slot = byte as libc::c_char;
    }
    Ok(request)
}

/// Which copies of each packet the interface called `name` shows: both on a loopback interface
/// (`IFF_LOOPBACK`), one elsewhere. Asked with `SIOCGIFFLAGS` through `socket`.
fn copies_shown(socket: &OwnedFd, name: &CStr) -> io::Result<Copies> {
    let mut request = interface_request(name)?;
    // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name in `request` and writes the flags into
    // it; `request` is a whole ifreq that outlives the call.
    let result = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut request) };
    zero_or_error(result)?;
    // SAFETY: a successful SIOCGIFFLAGS has written the union's flags member.
    let flags = libc::c_int::from(unsafe { request.ifr_ifru.ifru_flags });
    Ok(if flags & libc::IFF_LOOPBACK != 0 {
        Copies::LeavingAndArriving
    } else {
        Copies::One
    })
}

/// How the interface called `name` frames its packets, from its link type (`SIOCGIFHWADDR`):
/// Ethernet for Ethernet and loopback links, bare IP for `ARPHRD_NONE` (TUN) and
/// `ARPHRD_RAWIP`. Any other link type is [`io::ErrorKind::Unsupported`].
fn framing(socket: &OwnedFd, name: &CStr) -> io::Result<Framing> {
    let mut request = interface_request(name)?;
    // SAFETY: SIOCGIFHWADDR reads the NUL-terminated name in `request` and writes the hardware
    // address, whose family is the link type, into it; `request` is a whole ifreq that outlives
    // the call.
    let result = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFHWADDR as _, &mut request) };
    zero_or_error(result)?;
    // SAFETY: a successful SIOCGIFHWADDR has written the union's hardware address member.
    let link_type = unsafe { request.ifr_ifru.ifru_hwaddr.sa_family };
    match link_type {
        libc::ARPHRD_ETHER | libc::ARPHRD_LOOPBACK => Ok(Framing::Ethernet),
        libc::ARPHRD_NONE | ARPHRD_RAWIP => Ok(Framing::RawIp),
        other => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "link type {other} is neither Ethernet nor bare IP: the capture reads loopback, \
                 veth and TUN interfaces"
            ),
        )),
    }
}

/// Binds the socket to the interface of `index`, for every protocol.
fn bind_to_interface(socket: &OwnedFd, index: libc::c_int) -> io::Result<()> {
    // SAFETY: sockaddr_ll is a plain C struct of integers and byte arrays; all zeroes is a valid
    // value of it.
    let mut address: libc::sockaddr_ll = unsafe { mem::zeroed() };
    address.sll_family = libc::AF_PACKET as libc::c_ushort;
    address.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    address.sll_ifindex = index;
    // SAFETY: the pointer and length describe `address`, a sockaddr_ll that outlives the call.
    let result = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    zero_or_error(result)
}

/// Attaches a classic BPF program that keeps what `tcpdump -dd "tcp port PORT"` keeps (TCP over
/// IPv6 without extension headers, or over IPv4, first fragments only, with `port` as source or
/// destination port), minus the leaving copies where the interface shows each packet twice,
/// minus the connections whose client port has a bit of `client_port_mask` set. At most
/// [`SNAP_LENGTH`] bytes of each packet are kept.
fn attach_port_filter(
    socket: &OwnedFd,
    port: u16,
    client_port_mask: u16,
    link: Link,
) -> io::Result<()> {
    let mut program = filter_program(port, client_port_mask, link)?;
    let fprog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_mut_ptr(),
    };
    // The kernel copies the program during the call; `program` outlives it.
    set_option(socket, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

/// The classic BPF program of [`attach_port_filter`], for the interface's framing: the IP
/// version comes from the ethertype of an Ethernet header, or, without one, from the protocol
/// the kernel noted for the packet (an ancillary field, the ethertype all the same). Fails only
/// if its jumps were mistyped.
fn filter_program(
    port: u16,
    client_port_mask: u16,
    link: Link,
) -> io::Result<Vec<libc::sock_filter>> {
    const LDW_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const LDH_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
    const LDB_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
    const LDH_IND: u16 = 0x48; // BPF_LD | BPF_H | BPF_IND: A = P[X + k]
    const LDX_IMM: u16 = 0x01; // BPF_LDX | BPF_W | BPF_IMM: X = k
    const LDX_MSH: u16 = 0xb1; // BPF_LDX | BPF_B | BPF_MSH: X = 4 * (P[k] & 0xf)
    const JA: u16 = 0x05; // BPF_JMP | BPF_JA: always, k instructions ahead
    const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JSET: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const RET: u16 = 0x06; // BPF_RET | BPF_K
    /// The packet type: an ancillary field the kernel offers at a negative offset.
    const PACKET_TYPE: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;
    /// The packet's protocol (`skb->protocol`, an ethertype), another ancillary field.
    const PROTOCOL: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32;
    /// The IPv6 header's length: fixed, extension headers are not followed.
    const IPV6_HEADER: u32 = 40;
    // Offsets of the IP header's fields: after the link-layer header, if any. The ports are
    // read past X, the length of the IP header, which each version's branch sets.
    let ip = link.framing.link_header() as u32;
    let source_port = ip;
    let destination_port = ip + 2;
    let load_ethertype = match link.framing {
        Framing::Ethernet => (LDH_ABS, 12),
        Framing::RawIp => (LDW_ABS, PROTOCOL),
    };
    /// Where the port filter starts, after the check of the packet type.
    const PORT_FILTER: usize = 2;
    const V4: usize = 8;
    const PORTS: usize = 14;
    const ACCEPT: usize = 22;
    const DROP: usize = 23;
    let port = u32::from(port);
    let mask = u32::from(client_port_mask);
    let outgoing = u32::from(libc::PACKET_OUTGOING);
    let (tcp, ipv4, ipv6) = (
        u32::from(IPPROTO_TCP),
        u32::from(ETHERTYPE_IPV4),
        u32::from(ETHERTYPE_IPV6),
    );
    // (code, k, where to go if true, if false), by position in this list; an instruction that
    // does not jump names the next one, and `JA` names where it goes in both.
    let instructions: [(u16, u32, usize, usize); 24] = [
        (LDW_ABS, PACKET_TYPE, 1, 1),               // 0
        (JEQ, outgoing, DROP, PORT_FILTER),         // 1: the leaving copy: drop
        (load_ethertype.0, load_ethertype.1, 3, 3), // 2 (PORT_FILTER): ethertype
        (JEQ, ipv6, 4, V4),                         // 3
        (LDB_ABS, ip + 6, 5, 5),                    // 4: IPv6 next header
        (JEQ, tcp, 6, DROP),                        // 5
        (LDX_IMM, IPV6_HEADER, 7, 7),               // 6: X = IPv6 header length
        (JA, 0, PORTS, PORTS),                      // 7
        (JEQ, ipv4, 9, DROP),                       // 8 (V4): the ethertype is still loaded
        (LDB_ABS, ip + 9, 10, 10),                  // 9: IPv4 protocol
        (JEQ, tcp, 11, DROP),                       // 10
        (LDH_ABS, ip + 6, 12, 12),                  // 11: flags and fragment offset
        (JSET, 0x1fff, DROP, 13),                   // 12: a later fragment: drop
        (LDX_MSH, ip, 14, 14),                      // 13: X = IPv4 header length
        (LDH_IND, source_port, 15, 15),             // 14 (PORTS)
        (JEQ, port, 20, 16),                        // 15: from the server? its client is at 20
        (LDH_IND, destination_port, 17, 17),        // 16
        (JEQ, port, 18, DROP),                      // 17: to the server? its client is at 18
        (LDH_IND, source_port, 19, 19),             // 18: the client's port
        (JSET, mask, DROP, ACCEPT),                 // 19: not in the sample: drop
        (LDH_IND, destination_port, 21, 21),        // 20: the client's port
        (JSET, mask, DROP, ACCEPT),                 // 21: not in the sample: drop
        (RET, SNAP_LENGTH, 23, 23),                 // 22 (ACCEPT)
        (RET, 0, 24, 24),                           // 23 (DROP)
    ];
    let mut program = instructions
        .iter()
        .enumerate()
        .map(|(at, &(code, k, if_true, if_false))| {
            // BPF jumps forward only, counting from the next instruction.
            let offset = |to: usize| {
                to.checked_sub(at + 1)
                    .and_then(|offset| u8::try_from(offset).ok())
                    .ok_or_else(|| {
                        io::Error::other(format!("filter instruction {at} jumps to {to}"))
                    })
            };
            if code == JA {
                let k = u32::from(offset(if_true)?);
                return Ok(libc::sock_filter {
                    code,
                    jt: 0,
                    jf: 0,
                    k,
                });
            }
            Ok(libc::sock_filter {
                code,
                jt: offset(if_true)?,
                jf: offset(if_false)?,
                k,
            })
        })
        .collect::<io::Result<Vec<_>>>()?;
    if link.copies == Copies::One {
        // Nothing to drop by packet type. The jumps being relative and forward only, the
        // instructions from the port filter on are a whole program of their own.
        program.drain(..PORT_FILTER);
    }
    Ok(program)
}

/// `setsockopt(level, name)` with `value` as the option's bytes.
fn set_option<T>(
    socket: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`, borrowed for the whole call; every option
    // passed here is a plain C type whose layout the kernel expects for that option.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    zero_or_error(result)
}

/// Receives packets until `stop` is set and the socket's queue is empty, then checks that the
/// kernel dropped none. Of an interface that shows two copies of each packet, only the arriving
/// copy is kept.
fn read_until_stopped(
    socket: &OwnedFd,
    port: u16,
    link: Link,
    stop: &AtomicBool,
) -> io::Result<Vec<Packet>> {
    let mut packets = Vec::new();
    let mut buffer = [0u8; 2 * SNAP_LENGTH as usize];
    // Room for the timestamp's control message, aligned as control messages must be.
    let mut control = [0u64; 8];
    loop {
        // SAFETY: sockaddr_ll is a plain C struct of integers and byte arrays; all zeroes is a
        // valid value of it.
        let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
        let mut data = libc::iovec {
            iov_base: buffer.as_mut_ptr().cast(),
            iov_len: buffer.len(),
        };
        // SAFETY: msghdr is a plain C struct of integers and pointers; all zeroes (null
        // pointers, zero lengths) is a valid value of it.
        let mut message: libc::msghdr = unsafe { mem::zeroed() };
        message.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
        message.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        message.msg_iov = &mut data;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = mem::size_of_val(&control) as _;
        // SAFETY: `message` points at `from`, `data` (which describes `buffer`) and `control`,
        // with their sizes; the kernel writes within those sizes, and all outlive the call.
        let received = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut message, 0) };
        let Ok(length) = usize::try_from(received) else {
            let error = io::Error::last_os_error();
            match error.kind() {
                // The queue is empty: done if asked to stop (everything sent before the stop
                // request has been read by now), else wait again.
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    continue;
                }
                io::ErrorKind::Interrupted => continue,
                _ => return Err(error),
            }
        };
        if link.copies == Copies::LeavingAndArriving && from.sll_pkttype == libc::PACKET_OUTGOING {
            continue; // a departing copy (the filter drops them already); its arriving copy follows
        }
        let frame = buffer.get(..length).unwrap_or(&buffer);
        if let Some(mut packet) = link.framing.parse(frame) {
            if packet.src.port() == port || packet.dst.port() == port {
                packet.timestamp = receive_timestamp(&message);
                packets.push(packet);
            }
        }
    }
    let drops = dropped_packets(socket)?;
    if drops > 0 {
        return Err(io::Error::other(format!(
            "the capture of port {port} dropped {drops} packets: its {} packets are not all \
             there were",
            packets.len()
        )));
    }
    Ok(packets)
}

/// The `SCM_TIMESTAMPNS` control message of a received message, if the kernel sent one.
fn receive_timestamp(message: &libc::msghdr) -> Option<SystemTime> {
    // SAFETY: `message` was filled by recvmsg(); its control pointer and length describe the
    // control buffer, still alive, which CMSG_FIRSTHDR and CMSG_NXTHDR stay within (returning
    // null past its end).
    let mut header = unsafe { libc::CMSG_FIRSTHDR(message) };
    while !header.is_null() {
        // SAFETY: a non-null header from CMSG_FIRSTHDR/CMSG_NXTHDR lies within the buffer.
        let cmsghdr = unsafe { &*header };
        if cmsghdr.cmsg_level == libc::SOL_SOCKET && cmsghdr.cmsg_type == libc::SCM_TIMESTAMPNS {
            // SAFETY: an SCM_TIMESTAMPNS message carries one struct timespec after its header
            // (the kernel wrote it within the buffer); it may be unaligned for timespec.
            let time: libc::timespec =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(header).cast()) };
            let seconds = u64::try_from(time.tv_sec).ok()?;
            let nanoseconds = u32::try_from(time.tv_nsec).ok()?;
            return UNIX_EPOCH.checked_add(Duration::new(seconds, nanoseconds));
        }
        // SAFETY: as for CMSG_FIRSTHDR; `header` is a header within the buffer.
        header = unsafe { libc::CMSG_NXTHDR(message, header) };
    }
    None
}

/// How many packets the kernel dropped for this socket (`PACKET_STATISTICS`).
fn dropped_packets(socket: &OwnedFd) -> io::Result<u32> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut length = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: the pointer and length describe `stats`, which outlives the call; the kernel
    // writes at most `length` bytes.
    let result = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut stats as *mut libc::tpacket_stats).cast(),
            &mut length,
        )
    };
    zero_or_error(result)?;
    Ok(stats.tp_drops)
}

/// The outcome of a system call that returns 0 on success and -1 with `errno` on failure.
fn zero_or_error(result: libc::c_int) -> io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Which end of a connection sent a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// The packets of one connection to the server, in the order they arrived.
#[derive(Clone, Debug)]
pub struct Connection {
    pub client: SocketAddr,
    pub packets: Vec<(Side, Packet)>,
}

impl Connection {
    /// The flags of each packet, prefixed by who sent it: `["c:S", "s:SA", "c:RA"]`.
    pub fn sequence(&self) -> Vec<String> {
        self.packets
            .iter()
            .map(|(side, packet)| {
                let who = match side {
                    Side::Client => 'c',
                    Side::Server => 's',
                };
                format!("{who}:{}", packet.flag_letters())
            })
            .collect()
    }

    /// The packets the client sent.
    pub fn client_packets(&self) -> impl Iterator<Item = &Packet> {
        self.sent_by(Side::Client)
    }

    /// The packets the server sent.
    pub fn server_packets(&self) -> impl Iterator<Item = &Packet> {
        self.sent_by(Side::Server)
    }

    fn sent_by(&self, side: Side) -> impl Iterator<Item = &Packet> {
        self.packets
            .iter()
            .filter(move |(sender, _)| *sender == side)
            .map(|(_, packet)| packet)
    }

    /// Whether every packet so far is a SYN from the client (the first one and retransmits).
    fn only_client_syns(&self) -> bool {
        self.packets
            .iter()
            .all(|(side, packet)| *side == Side::Client && packet.is(SYN))
    }
}

/// The traffic of one server address, split into connections.
#[derive(Clone, Debug, Default)]
pub struct Conversations {
    /// Connections in the order their first SYN arrived.
    pub connections: Vec<Connection>,
    /// Packets of the server's address that belong to no connection opened by a client SYN.
    pub strays: Vec<Packet>,
}

impl Conversations {
    /// One line per connection (`client: c:S s:SA c:RA`) and one per stray packet, for
    /// assertion messages.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for connection in &self.connections {
            let _ = writeln!(
                text,
                "  {}: {}",
                connection.client,
                connection.sequence().join(" ")
            );
        }
        for stray in &self.strays {
            let _ = writeln!(
                text,
                "  stray {} -> {}: {}",
                stray.src,
                stray.dst,
                stray.flag_letters()
            );
        }
        text
    }
}

/// Groups the packets to and from `server` (address and port) by client address and port.
///
/// A connection starts with a client SYN (without ACK; ECN bits aside); a later SYN from the same client address
/// and port starts a new connection unless the current one holds only client SYNs (a SYN
/// retransmit). Packets between the two addresses before any client SYN are strays, as is
/// everything of other addresses.
pub fn connections(packets: &[Packet], server: SocketAddr) -> Conversations {
    let is_server = |address: SocketAddr| same_address(address, server);
    let mut conversations = Conversations::default();
    for packet in packets {
        let (side, client) = if is_server(packet.dst) {
            (Side::Client, packet.src)
        } else if is_server(packet.src) {
            (Side::Server, packet.dst)
        } else {
            conversations.strays.push(*packet);
            continue;
        };
        let current = conversations
            .connections
            .iter()
            .rposition(|connection| same_address(connection.client, client));
        let opens = side == Side::Client && packet.is(SYN);
        match current {
            Some(index) if !opens || conversations.connections[index].only_client_syns() => {
                conversations.connections[index]
                    .packets
                    .push((side, *packet));
            }
            _ if opens => conversations.connections.push(Connection {
                client,
                packets: vec![(side, *packet)],
            }),
            _ => conversations.strays.push(*packet),
        }
    }
    conversations
}

/// Address and port equality, ignoring IPv6 flow information and scope.
fn same_address(a: SocketAddr, b: SocketAddr) -> bool {
    a.ip() == b.ip() && a.port() == b.port()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic BPF program of the instructions [`filter_program`] uses on `frame`, as
    /// the kernel would for a packet of type `packet_type` whose protocol (`skb->protocol`)
    /// is `protocol`; returns the bytes kept.
    fn run_filter(
        program: &[libc::sock_filter],
        frame: &[u8],
        packet_type: u8,
        protocol: u16,
    ) -> u32 {
        let load = |at: u32, size: usize| -> Option<u32> {
            let at = usize::try_from(at).ok()?;
            let bytes = frame.get(at..at + size)?;
            Some(
                bytes
                    .iter()
                    .fold(0, |value, &byte| value << 8 | u32::from(byte)),
            )
        };
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        loop {
            let instruction = program[pc];
            pc += 1;
            let (k, jt, jf) = (
                instruction.k,
                usize::from(instruction.jt),
                usize::from(instruction.jf),
            );
            // A load out of the packet ends the program with 0, as in the kernel.
            let loaded = match instruction.code {
                0x20 if k == (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32 => {
                    Some(u32::from(packet_type))
                }
                0x20 if k == (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32 => {
                    Some(u32::from(protocol))
                }
                0x28 => load(k, 2),
                0x30 => load(k, 1),
                0x48 => load(x + k, 2),
                0xb1 => {
                    x = 4 * (load(k, 1).unwrap_or(0) & 0xf);
                    continue;
                }
                0x01 => {
                    x = k;
                    continue;
                }
                0x05 => {
                    pc += usize::try_from(k).unwrap();
                    continue;
                }
                0x15 => {
                    pc += if a == k { jt } else { jf };
                    continue;
                }
                0x45 => {
                    pc += if a & k != 0 { jt } else { jf };
                    continue;
                }
                0x06 => return k,
                code => panic!("instruction {code:#x} is not interpreted here"),
            };
            match loaded {
                Some(value) => a = value,
                None => return 0,
            }
        }
    }

    /// An Ethernet frame as `lo` shows it, carrying one TCP segment from `src` to `dst` with
    /// `flags` and `payload` bytes of data (over IPv4, with `ip_options` bytes of IP options).
    fn frame(
        src: SocketAddr,
        dst: SocketAddr,
        flags: u8,
        ip_options: usize,
        payload: usize,
    ) -> Vec<u8> {
        let mut tcp = Vec::new();
        tcp.extend(src.port().to_be_bytes());
        tcp.extend(dst.port().to_be_bytes());
        tcp.extend(1000u32.to_be_bytes()); // seq
        tcp.extend(2000u32.to_be_bytes()); // ack
        tcp.extend([0x60, flags]); // a 24-byte header: one option word
        tcp.extend([0xff, 0xff, 0, 0, 0, 0, 2, 4, 0xff, 0xd7]); // window, checksum, urgent, MSS
        tcp.extend(vec![0xaa; payload]);
        let mut frame = vec![0; 12];
        match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let header = 20 + ip_options;
                frame.extend([0x08, 0x00, 0x40 | (header / 4) as u8, 0]);
                frame.extend(((header + tcp.len()) as u16).to_be_bytes());
                frame.extend([0, 0, 0x40, 0, 64, IPPROTO_TCP, 0, 0]); // id, DF, TTL, checksum
                frame.extend(s.octets());
                frame.extend(d.octets());
                frame.extend(vec![1; ip_options]); // NOPs
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                frame.extend([0x86, 0xdd, 0x60, 0, 0, 0]);
                frame.extend((tcp.len() as u16).to_be_bytes());
                frame.extend([IPPROTO_TCP, 64]); // hop limit
                frame.extend(s.octets());
                frame.extend(d.octets());
            }
            _ => unreachable!("one family per frame"),
        }
        frame.extend(tcp);
        frame
    }

    /// The protocol the kernel notes for a frame: its ethertype.
    fn protocol_of(frame: &[u8]) -> u16 {
        u16::from_be_bytes([frame[12], frame[13]])
    }

    /// `frame` as an interface of `framing` hands it over: without the Ethernet header on a
    /// TUN device.
    fn framed(frame: &[u8], framing: Framing) -> &[u8] {
        &frame[ETHERNET_HEADER - framing.link_header()..]
    }

    #[test]
    fn the_filter_keeps_tcp_of_the_port_from_sampled_clients_and_the_copies_asked_for() {
        const PORT: u16 = 8080;
        const MASK: u16 = 0b11110;
        let links = [
            (Copies::LeavingAndArriving, Framing::Ethernet),
            (Copies::One, Framing::Ethernet),
            (Copies::One, Framing::RawIp),
        ];
        for (copies, framing) in links {
            let link = Link { copies, framing };
            let program = filter_program(PORT, MASK, link).unwrap();
            let everything = filter_program(PORT, 0, link).unwrap();
            // Loopback's leaving copies are dropped; elsewhere, packets leaving are kept too.
            let leaving_kept = match copies {
                Copies::LeavingAndArriving => 0,
                Copies::One => SNAP_LENGTH,
            };
            let packet_types = [
                (libc::PACKET_HOST, SNAP_LENGTH),
                (libc::PACKET_OUTGOING, leaving_kept),
            ];
            let pairs = [
                ("127.0.0.1", "127.0.0.1"),
                ("::1", "::1"),
                ("198.51.100.1", "198.51.100.2"),
            ];
            for (client, server) in pairs {
                let server = SocketAddr::new(server.parse().unwrap(), PORT);
                let client_ip: IpAddr = client.parse().unwrap();
                for ip_options in [0, 8] {
                    for client_port in [40000u16, 40001, 40002, 40004, 40016, 40032, 40033] {
                        let client = SocketAddr::new(client_ip, client_port);
                        let sampled = client_port & MASK == 0;
                        for (src, dst) in [(client, server), (server, client)] {
                            let whole_frame = frame(src, dst, SYN, ip_options, 0);
                            let protocol = protocol_of(&whole_frame);
                            let bytes = framed(&whole_frame, framing);
                            for (packet_type, whole) in packet_types {
                                let what = format!(
                                    "{link:?}, {src} -> {dst}, packet type {packet_type}, \
                                     options {ip_options}"
                                );
                                let kept = run_filter(&program, bytes, packet_type, protocol);
                                assert_eq!(kept, if sampled { whole } else { 0 }, "{what}");
                                let all = run_filter(&everything, bytes, packet_type, protocol);
                                assert_eq!(all, whole, "{what}, no sampling");
                            }
                        }
                    }
                }
                let elsewhere = SocketAddr::new(client_ip, 9);
                let other = frame(SocketAddr::new(client_ip, 40000), elsewhere, SYN, 0, 0);
                let mut udp = frame(SocketAddr::new(client_ip, 40000), server, SYN, 0, 0);
                let protocol_at = if client_ip.is_ipv4() { 9 } else { 6 };
                udp[ETHERNET_HEADER + protocol_at] = 17;
                for (packet_type, _) in packet_types {
                    for not_kept in [&other, &udp] {
                        let bytes = framed(not_kept, framing);
                        let protocol = protocol_of(not_kept);
                        assert_eq!(
                            run_filter(&everything, bytes, packet_type, protocol),
                            0,
                            "{link:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_capture_parses_tcp_over_ipv4_and_ipv6() {
        let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let server: SocketAddr = "127.0.0.2:8080".parse().unwrap();
        let packet = parse_frame(&frame(client, server, SYN | ECN, 4, 0)).unwrap();
        assert_eq!((packet.src, packet.dst), (client, server));
        assert_eq!(
            (packet.seq, packet.ack, packet.payload_len),
            (1000, 2000, 0)
        );
        assert!(packet.is(SYN) && packet.has(SYN | ECN) && !packet.has(ACK));
        assert_eq!(packet.flag_letters(), "S");
        let packet = parse_frame(&frame(server, client, ACK | PSH, 0, 7)).unwrap();
        assert_eq!(
            (packet.flag_letters(), packet.payload_len),
            ("PA".into(), 7)
        );

        let client: SocketAddr = "[::1]:40000".parse().unwrap();
        let server: SocketAddr = "[::1]:8080".parse().unwrap();
        let packet = parse_frame(&frame(client, server, RST | ACK, 0, 0)).unwrap();
        assert_eq!((packet.src, packet.dst), (client, server));
        assert_eq!(
            (packet.flag_letters(), packet.payload_len),
            ("RA".into(), 0)
        );

        let mut not_tcp = frame(client, server, SYN, 0, 0);
        not_tcp[14 + 6] = 17; // UDP
        assert_eq!(parse_frame(&not_tcp), None);
        let short = frame(client, server, SYN, 0, 0);
        assert_eq!(parse_frame(&short[..14 + 40 + 10]), None);
    }

    #[test]
    fn bare_ip_packets_parse_as_their_ethernet_frames_do() {
        let pairs = [
            ("203.0.113.1:40000", "203.0.113.2:8080"),
            ("[2001:db8::1]:40000", "[2001:db8::2]:8080"),
        ];
        for (client, server) in pairs {
            let (client, server): (SocketAddr, SocketAddr) =
                (client.parse().unwrap(), server.parse().unwrap());
            for (src, dst, flags, options, payload) in [
                (client, server, SYN, 0, 0),
                (server, client, SYN | ACK, 8, 0),
                (client, server, ACK | PSH, 4, 100),
            ] {
                let whole = frame(src, dst, flags, options, payload);
                let packet = parse_frame(&whole).unwrap();
                assert_eq!(parse_ip(&whole[ETHERNET_HEADER..]), Some(packet));
                assert_eq!(
                    Framing::RawIp.parse(&whole[ETHERNET_HEADER..]),
                    Some(packet)
                );
                assert_eq!(Framing::Ethernet.parse(&whole), Some(packet));
                assert_eq!((packet.src, packet.dst, packet.flags), (src, dst, flags));
                assert_eq!(packet.payload_len, payload);
            }
        }
        let v4 = frame(
            "203.0.113.1:1".parse().unwrap(),
            "203.0.113.2:2".parse().unwrap(),
            SYN,
            0,
            0,
        );
        // An Ethernet frame is no IP packet (its first byte is a MAC address's), and an IP
        // version that is neither 4 nor 6, or another than the ethertype says, is refused.
        assert_eq!(parse_ip(&v4), None);
        let mut wrong_version = v4.clone();
        wrong_version[ETHERNET_HEADER] = 0x65;
        assert_eq!(parse_ip(&wrong_version[ETHERNET_HEADER..]), None);
        assert_eq!(parse_frame(&wrong_version), None);
        let mut mislabelled = v4.clone();
        mislabelled[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        assert_eq!(parse_frame(&mislabelled), None);
        // Too short, and empty.
        assert_eq!(parse_ip(&v4[ETHERNET_HEADER..ETHERNET_HEADER + 30]), None);
        assert_eq!(parse_ip(&[]), None);
    }

    #[test]
    fn connections_split_on_a_new_syn_and_keep_syn_retransmits() {
        let server: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let elsewhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let segment = |src, dst, flags| parse_frame(&frame(src, dst, flags, 0, 0)).unwrap();
        let packets = [
            // Before any SYN of this client: a stray.
            segment(server, client, ACK),
            // Connection 1, then connection 2 from another port.
            segment(client, server, SYN),
            segment(other, server, SYN),
            // A retransmitted SYN, and the rest of connection 1.
            segment(client, server, SYN),
            segment(server, client, SYN | ACK),
            segment(client, server, RST | ACK),
            // The same client port used again: connection 3.
            segment(client, server, SYN),
            segment(server, client, RST | ACK),
            // Another server: a stray.
            segment(client, elsewhere, SYN),
        ];
        let conversations = connections(&packets, server);
        let sequences: Vec<(SocketAddr, Vec<String>)> = conversations
            .connections
            .iter()
            .map(|connection| (connection.client, connection.sequence()))
            .collect();
        let strings = |sequence: &[&str]| sequence.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            sequences,
            [
                (client, strings(&["c:S", "c:S", "s:SA", "c:RA"])),
                (other, strings(&["c:S"])),
                (client, strings(&["c:S", "s:RA"])),
            ]
        );
        assert_eq!(
            conversations.strays.len(),
            2,
            "{}",
            conversations.describe()
        );
    }
}
