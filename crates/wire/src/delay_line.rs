//! A round trip of a chosen length, made in user space: two network namespaces, each with a TUN
//! device, joined by forwarding threads that hold every packet for a fixed one-way delay.
//!
//! On loopback and over a veth pair the kernel answers a SYN inside the sender's `connect()`, so
//! a checker's poller never waits for a SYN-ACK; and `tc qdisc netem`, the kernel's own delay,
//! needs a module that not every machine has. Here each of the two namespaces the caller made
//! ([`Namespace::create`]) gets a TUN device (`IFF_TUN | IFF_NO_PI`: bare IP packets), opened
//! by a thread inside that namespace: [`CLIENT_INTERFACE`] with [`CLIENT_ADDRESS`] in the
//! client's, [`SERVER_INTERFACE`] with [`SERVER_ADDRESS`] in the server's, both of one /30 of
//! TEST-NET-3 (203.0.113.0/24, a documentation range) and nothing routed beyond it. What the
//! client's kernel sends to the server's address leaves through its TUN device; a forwarding
//! thread reads it, notes the time, and writes it into the server's device once the one-way
//! delay has passed, where the server's kernel receives it as if from a wire; the other
//! direction likewise. A 25 ms one-way delay makes a 50 ms round trip.
//!
//! This module owns the two devices and the two forwarding threads (one per direction), nothing
//! else: the namespaces stay the caller's, and are deleted by their guards. Dropping the
//! [`DelayLine`] (or [`DelayLine::stop`]) wakes the threads, joins them and closes the devices,
//! which the kernel then deletes; also while unwinding from a panic.
//!
//! Each direction keeps its packets in a queue of bounded length (in packets; [`DEFAULT_QUEUE`]
//! unless told otherwise), in the order they were read, each due at the instant it was read
//! plus the delay, so that the order is kept. A packet that finds its queue full is dropped and
//! counted ([`Traffic::dropped`]), as a router's full queue would; so is a packet the receiving
//! device refuses ([`Traffic::failed`]). The devices' own queues (of packets the kernel has sent
//! and the line not yet read) are raised to [`DEVICE_QUEUE`] packets; what the kernel drops there
//! is counted too ([`DelayLine::device_drops`]).
//!
//! One thread per direction reads and writes a packet per system call. On a machine of two
//! cores, shared with the checker under test, the line has carried 100 000 packets a second
//! (33 000 checks a second, each a SYN, a SYN-ACK and an RST) without a loss: well past 10 000
//! connections' handshakes a second. With nothing on the line a thread sleeps until the first packet arrives; with packets on it, it
//! wakes when the next is due (but no sooner than 50 µs after it last slept) or after
//! [`COALESCING`] (200 µs), whichever is first, and reads what arrived meanwhile, so that
//! neither it nor the sending kernel pays a wake-up per packet. A packet spends from the delay
//! to the delay plus 250 µs on the line, plus whatever a loaded machine adds in scheduling;
//! never less than the delay.
//!
//! Mind that the line runs on the machine it measures: the server's kernel handles what the line
//! writes into its device inside the forwarding thread's `write()`, and so does the client's,
//! on the same CPUs as the code under test.
//!
//! Inside each namespace the devices' reverse-path filter is turned off
//! (`net.ipv4.conf.{all,IFACE}.rp_filter` 0), so that no setting of the caller's can drop what
//! arrives, and IPv6 is turned off on the devices, so that nothing but the caller's IPv4 traffic
//! crosses the line. The devices have no queueing discipline (`noqueue`): a packet reaches the
//! device, and the line, within the sender's own system call, instead of waiting behind
//! `pfifo_fast` for the transmit softirq, which a busy machine runs tens of milliseconds late.
//!
//! Needs root (`CAP_NET_ADMIN` for the devices, `CAP_SYS_ADMIN` to enter the namespaces),
//! `/dev/net/tun`, and `ip` and `tc` (iproute2); without them [`DelayLine::start`] fails, saying
//! which step failed.

use std::collections::VecDeque;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::interface_request;
use crate::netns::Namespace;

/// The TUN device in the client's namespace.
pub const CLIENT_INTERFACE: &str = "delay-client";
/// The TUN device in the server's namespace.
pub const SERVER_INTERFACE: &str = "delay-server";
/// The client's address, on [`CLIENT_INTERFACE`].
pub const CLIENT_ADDRESS: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The server's address, on [`SERVER_INTERFACE`].
pub const SERVER_ADDRESS: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// The line's subnet holds these two addresses only.
const PREFIX_LENGTH: u8 = 30;
/// Packets each direction holds at most, unless [`DelayLine::start_with_queue`] says otherwise.
pub const DEFAULT_QUEUE: usize = 65_536;
/// The devices' transmit queues, in packets (a TUN device's default is 500, which a burst of
/// 10 000 SYNs overflows before the line has read them).
pub const DEVICE_QUEUE: u32 = 16_384;
/// The longest one-way delay accepted.
pub const MAX_ONE_WAY: Duration = Duration::from_secs(60);
/// The largest IP packet.
const MAX_PACKET: usize = 65_536;
/// Packets read in one go before the due ones are written: a burst read never holds back
/// packets already due by more than this many reads.
const READS_PER_TURN: usize = 256;
/// While packets are on the line, a thread reads what arrived at least this often, without
/// being woken for each packet (a network card's interrupt coalescing, in effect): the sender's
/// kernel then wakes no one per packet sent. A packet is read, and so stamped, at most this
/// late.
pub const COALESCING: Duration = Duration::from_micros(200);
/// Nor does a thread wake sooner than this after it last went to sleep, when a packet is due:
/// a packet is written at most this late.
const WRITE_GRANULARITY: Duration = Duration::from_micros(50);
/// Buffers kept for reuse per direction, so that steady traffic allocates nothing.
const SPARE_BUFFERS: usize = 4096;

/// What one direction of the line has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Packets written to the far device after the delay.
    pub carried: u64,
    /// Packets dropped on arrival because the direction's queue was full.
    pub dropped: u64,
    /// Packets the far device refused when they were due (its error is not kept).
    pub failed: u64,
}

/// What the line has done, each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// From the client's namespace to the server's.
    pub to_server: Traffic,
    /// From the server's namespace to the client's.
    pub to_client: Traffic,
}

impl Counters {
    /// Packets carried both ways.
    pub fn carried(&self) -> u64 {
        self.to_server.carried + self.to_client.carried
    }

    /// Packets lost both ways: dropped on a full queue, or refused by the far device.
    pub fn lost(&self) -> u64 {
        let lost = |traffic: &Traffic| traffic.dropped + traffic.failed;
        lost(&self.to_server) + lost(&self.to_client)
    }
}

/// The counters of one direction, shared with its thread.
#[derive(Default)]
struct Shared {
    carried: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

impl Shared {
    fn traffic(&self) -> Traffic {
        Traffic {
            carried: self.carried.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// A running delay line between a client's and a server's network namespace; see the module
/// documentation.
pub struct DelayLine {
    one_way: Duration,
    /// An eventfd: once written, both threads see it readable and return.
    stop: Arc<OwnedFd>,
    to_server: Arc<Shared>,
    to_client: Arc<Shared>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    /// Each namespace's `/proc/thread-self/net/dev`, opened inside it: re-read for the devices'
    /// drop counts.
    device_stats: Mutex<[File; 2]>,
}

impl DelayLine {
    /// Starts a line of `one_way` delay each way (a round trip of twice that) between the
    /// `client` and `server` namespaces, with queues of [`DEFAULT_QUEUE`] packets.
    ///
    /// Returns once both devices are up and addressed, the route to the other end goes through
    /// them, and the threads forward: a packet sent after this crosses the line.
    ///
    /// Fails, saying which step failed, if the namespaces are the same one, the delay is over
    /// [`MAX_ONE_WAY`], a namespace cannot be entered, a device cannot be made (without root,
    /// without `/dev/net/tun`, or with a device of the same name there already), `ip` or `tc`
    /// fails, or another interface of a namespace holds the line's addresses.
    pub fn start(
        client: &Namespace,
        server: &Namespace,
        one_way: Duration,
    ) -> io::Result<DelayLine> {
        DelayLine::start_with_queue(client, server, one_way, DEFAULT_QUEUE)
    }

    /// Starts a line like [`start`](DelayLine::start), with queues of `queue` packets (at least
    /// 1) each way.
    pub fn start_with_queue(
        client: &Namespace,
        server: &Namespace,
        one_way: Duration,
        queue: usize,
    ) -> io::Result<DelayLine> {
        validate(client.name(), server.name(), one_way, queue)?;
        let client_end = End::open(client, CLIENT_INTERFACE, CLIENT_ADDRESS, SERVER_ADDRESS)?;
        let server_end = End::open(server, SERVER_INTERFACE, SERVER_ADDRESS, CLIENT_ADDRESS)?;
        // SAFETY: eventfd() takes no pointers; its result is checked before use.
        let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if stop < 0 {
            let error = io::Error::last_os_error();
            return Err(io::Error::new(
                error.kind(),
                format!("cannot make the delay line's stop signal (eventfd): {error}"),
            ));
        }
        // SAFETY: `stop` is a descriptor just returned by eventfd(), owned by nothing else.
        let stop = Arc::new(unsafe { OwnedFd::from_raw_fd(stop) });
        let (client_device, server_device) =
            (Arc::new(client_end.device), Arc::new(server_end.device));
        let mut line = DelayLine {
            one_way,
            stop: Arc::clone(&stop),
            to_server: Arc::default(),
            to_client: Arc::default(),
            threads: Vec::with_capacity(2),
            device_stats: Mutex::new([client_end.stats, server_end.stats]),
        };
        let directions = [
            (
                "delay-to-server",
                (&client_device, CLIENT_INTERFACE),
                &server_device,
                &line.to_server,
            ),
            (
                "delay-to-client",
                (&server_device, SERVER_INTERFACE),
                &client_device,
                &line.to_client,
            ),
        ];
        let mut threads = Vec::with_capacity(2);
        for (name, (from, from_name), to, counters) in directions {
            let direction = Direction {
                from: Arc::clone(from),
                from_name,
                to: Arc::clone(to),
                stop: Arc::clone(&stop),
                queue: DelayQueue::new(one_way, queue),
                counters: Arc::clone(counters),
            };
            let spawned = thread::Builder::new()
                .name(name.into())
                .spawn(move || direction.forward());
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(error) => {
                    // The thread already started stops with the line, which is dropped here.
                    line.threads = threads;
                    return Err(io::Error::new(
                        error.kind(),
                        format!("cannot start the delay line's thread {name}: {error}"),
                    ));
                }
            }
        }
        line.threads = threads;
        Ok(line)
    }

    /// The delay each way.
    pub fn one_way(&self) -> Duration {
        self.one_way
    }

    /// The round trip: twice the one-way delay.
    pub fn round_trip(&self) -> Duration {
        self.one_way * 2
    }

    /// The client's address, on [`CLIENT_INTERFACE`] in the client's namespace.
    pub fn client_address(&self) -> Ipv4Addr {
        CLIENT_ADDRESS
    }

    /// The server's address, on [`SERVER_INTERFACE`] in the server's namespace: where a
    /// listener there listens, and what a client there connects to.
    pub fn server_address(&self) -> Ipv4Addr {
        SERVER_ADDRESS
    }

    /// The client's device, in the client's namespace (where a capture of the client's side
    /// goes).
    pub fn client_interface(&self) -> &'static str {
        CLIENT_INTERFACE
    }

    /// The server's device, in the server's namespace.
    pub fn server_interface(&self) -> &'static str {
        SERVER_INTERFACE
    }

    /// What the line has done so far.
    pub fn counters(&self) -> Counters {
        Counters {
            to_server: self.to_server.traffic(),
            to_client: self.to_client.traffic(),
        }
    }

    /// Packets the two devices dropped before the line read them (their transmit queues full)
    /// or as it wrote them (the receiving namespace's backlog full): the drop counts of
    /// `/proc/net/dev` in each namespace, both directions, summed.
    pub fn device_drops(&self) -> io::Result<u64> {
        let mut files = self
            .device_stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut drops = 0;
        for (file, interface) in files.iter_mut().zip([CLIENT_INTERFACE, SERVER_INTERFACE]) {
            let mut text = String::new();
            file.seek(SeekFrom::Start(0))
                .and_then(|_| file.read_to_string(&mut text))
                .map_err(|error| {
                    io::Error::new(
                        error.kind(),
                        format!("reading the statistics of {interface}: {error}"),
                    )
                })?;
            drops += interface_drops(&text, interface).ok_or_else(|| {
                io::Error::other(format!("no statistics of {interface} in /proc/net/dev"))
            })?;
        }
        Ok(drops)
    }

    /// Stops the line: wakes and joins both threads, then closes the devices (which the kernel
    /// deletes). Returns the final counters, or the error that ended a thread early (a device
    /// that could no longer be read).
    pub fn stop(mut self) -> io::Result<Counters> {
        self.shut_down()?;
        Ok(self.counters())
    }

    /// Wakes the threads and joins them; the first error one of them ended with.
    fn shut_down(&mut self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: the pointer and length describe `one`, the 8-byte counter an eventfd takes;
        // the descriptor is open while `self.stop` is.
        let written = unsafe {
            libc::write(
                self.stop.as_raw_fd(),
                (&one as *const u64).cast(),
                mem::size_of::<u64>(),
            )
        };
        if written < 0 {
            // Nothing can wake the threads: leave them rather than wait for ever. They end
            // with the process.
            let error = io::Error::last_os_error();
            self.threads.clear();
            return Err(io::Error::new(
                error.kind(),
                format!("cannot signal the delay line's threads to stop: {error}"),
            ));
        }
        let mut result = Ok(());
        for thread in self.threads.drain(..) {
            let ended = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a delay line thread panicked")));
            if result.is_ok() {
                result = ended;
            }
        }
        result
    }
}

impl Drop for DelayLine {
    /// Stops the line, as [`DelayLine::stop`] does, if it was not stopped already.
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            let _ = self.shut_down();
        }
    }
}

/// Refuses a line of a namespace (`client`, `server`: their names) with itself, a delay over
/// [`MAX_ONE_WAY`], and queues without room.
fn validate(client: &str, server: &str, one_way: Duration, queue: usize) -> io::Result<()> {
    let message = if client == server {
        format!("a delay line joins two network namespaces, not {client} with itself")
    } else if one_way > MAX_ONE_WAY {
        format!("a one-way delay of {one_way:?} is over the {MAX_ONE_WAY:?} a delay line holds")
    } else if queue == 0 {
        "a delay line needs room for at least one packet each way".into()
    } else {
        return Ok(());
    };
    Err(io::Error::new(io::ErrorKind::InvalidInput, message))
}

/// One end of the line, made inside its namespace: the TUN device and the namespace's
/// interface statistics.
struct End {
    device: OwnedFd,
    stats: File,
}

impl End {
    /// Makes the device `interface` inside `namespace`, with `address`, up, and checks that
    /// `peer` (the other end's address) is reached through it.
    fn open(
        namespace: &Namespace,
        interface: &'static str,
        address: Ipv4Addr,
        peer: Ipv4Addr,
    ) -> io::Result<End> {
        let name = namespace.name();
        let in_context = |what: &str, error: io::Error| {
            io::Error::new(
                error.kind(),
                format!("{what} {interface} in network namespace {name}: {error}"),
            )
        };
        let (device, stats) = namespace.run(|| -> io::Result<(OwnedFd, File)> {
            let device = open_tun(interface).map_err(|e| in_context("cannot create", e))?;
            quiet(interface).map_err(|e| in_context("cannot configure", e))?;
            let stats = File::open("/proc/thread-self/net/dev")
                .map_err(|e| in_context("cannot open the statistics of", e))?;
            Ok((device, stats))
        })??;
        // From here on, dropping `device` deletes the device again.
        let commands = format!(
            "link set dev {interface} txqueuelen {DEVICE_QUEUE} up\n\
             address add {address}/{PREFIX_LENGTH} dev {interface}\n"
        );
        namespace
            .exec(&["ip", "-batch", "-"], Some(&commands))
            .map_err(|e| in_context("cannot address and bring up", e))?;
        // No queueing discipline: the kernel hands each packet to the device in the sender's
        // own system call. Behind pfifo_fast, packets can wait for the transmit softirq, which
        // a busy machine runs late (tens of milliseconds), on top of the line's delay.
        namespace
            .exec(
                &[
                    "tc", "qdisc", "replace", "dev", interface, "root", "noqueue",
                ],
                None,
            )
            .map_err(|e| in_context("cannot remove the queueing discipline of", e))?;
        let peer_text = peer.to_string();
        let route = namespace
            .exec(&["ip", "-o", "route", "get", &peer_text], None)
            .map_err(|e| in_context("cannot look up the route through", e))?;
        let through = route
            .split_whitespace()
            .skip_while(|&word| word != "dev")
            .nth(1);
        if through != Some(interface) {
            return Err(io::Error::other(format!(
                "in network namespace {name}, {peer} is not reached through {interface} but \
                 {route:?}: another interface there holds the delay line's range"
            )));
        }
        Ok(End { device, stats })
    }
}

/// Makes the TUN device `interface` (bare IP packets, no packet information header) in the
/// calling thread's network namespace; its descriptor, non-blocking. Closing it deletes the
/// device. Refuses a device of that name that exists already.
fn open_tun(interface: &str) -> io::Result<OwnedFd> {
    let path = c"/dev/net/tun";
    // SAFETY: the path is a NUL-terminated string that outlives the call; the result is checked
    // before use.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if fd < 0 {
        let error = io::Error::last_os_error();
        return Err(io::Error::new(
            error.kind(),
            format!(
                "cannot open /dev/net/tun ({error}): it needs root, and the tun module (or \
                 `mknod /dev/net/tun c 10 200` in a container)"
            ),
        ));
    }
    // SAFETY: `fd` is a descriptor just returned by open(), owned by nothing else.
    let device = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = CString::new(interface).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{interface:?} is not an interface name"),
        )
    })?;
    let mut request = interface_request(&name)?;
    request.ifr_ifru.ifru_flags =
        (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_TUN_EXCL) as libc::c_short;
    // SAFETY: TUNSETIFF reads the name and flags of `request`, a whole ifreq that outlives the
    // call, and writes the name back.
    let result = unsafe { libc::ioctl(device.as_raw_fd(), libc::TUNSETIFF, &mut request) };
    if result != 0 {
        let error = io::Error::last_os_error();
        let hint = match error.raw_os_error() {
            Some(libc::EBUSY | libc::EEXIST) => " (a device of that name exists already)",
            Some(libc::EPERM) => " (it needs CAP_NET_ADMIN)",
            _ => "",
        };
        return Err(io::Error::new(
            error.kind(),
            format!("TUNSETIFF: {error}{hint}"),
        ));
    }
    Ok(device)
}

/// Turns the reverse-path filter off for the namespace and `interface`, and IPv6 off on
/// `interface` (where the kernel has IPv6), from the calling thread, inside the namespace.
fn quiet(interface: &str) -> io::Result<()> {
    let settings = [
        ("net/ipv4/conf/all/rp_filter".to_string(), "0", true),
        (format!("net/ipv4/conf/{interface}/rp_filter"), "0", true),
        (
            format!("net/ipv6/conf/{interface}/disable_ipv6"),
            "1",
            false,
        ),
    ];
    for (parameter, value, required) in settings {
        let path = Path::new("/proc/sys").join(&parameter);
        match std::fs::write(&path, value) {
            Ok(()) => {}
            // A kernel without IPv6 has no IPv6 to quieten.
            Err(error) if !required && error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(io::Error::new(
                    error.kind(),
                    format!("setting {parameter} to {value}: {error}"),
                ));
            }
        }
    }
    Ok(())
}

/// The drop counts (received and sent) of `interface` in a `/proc/net/dev` table.
fn interface_drops(table: &str, interface: &str) -> Option<u64> {
    table.lines().find_map(|line| {
        let (name, counts) = line.split_once(':')?;
        if name.trim() != interface {
            return None;
        }
        // Received: bytes packets errs drop fifo frame compressed multicast; sent: bytes
        // packets errs drop ...
        let counts: Vec<u64> = counts
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        Some(counts.get(3)? + counts.get(11)?)
    })
}

/// One direction of the line, owned by its thread.
struct Direction {
    from: Arc<OwnedFd>,
    from_name: &'static str,
    to: Arc<OwnedFd>,
    stop: Arc<OwnedFd>,
    queue: DelayQueue,
    counters: Arc<Shared>,
}

impl Direction {
    /// Forwards packets until the stop signal: writes those due, waits, reads what arrived.
    /// With nothing on the line, it waits for the first packet; with packets on it, until the
    /// next is due, but no longer than [`COALESCING`] (then it reads what arrived) and no
    /// shorter than [`WRITE_GRANULARITY`]. Ends early only if the device cannot be read.
    fn forward(mut self) -> io::Result<()> {
        // Wake-ups within a microsecond of the due time, not the default 50 µs later. Only a
        // matter of precision: a refusal changes nothing else.
        // SAFETY: PR_SET_TIMERSLACK takes an integer and changes only the calling thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong) };
        let mut buffer = vec![0u8; MAX_PACKET];
        loop {
            let now = Instant::now();
            self.write_due(now);
            let ready = match self.queue.next_due() {
                None => wait(&self.stop, Some(&self.from), None)?,
                Some(due) => {
                    let wake = due.min(now + COALESCING).max(now + WRITE_GRANULARITY);
                    wait(&self.stop, None, Some(wake.saturating_duration_since(now)))?;
                    // Whatever arrived meanwhile (or nothing: the read says so).
                    Ready::Packets
                }
            };
            match ready {
                Ready::Stop => return Ok(()),
                Ready::Nothing => {}
                Ready::Packets => self.read_some(&mut buffer)?,
            }
        }
    }

    /// Writes every packet due at `now` to the far device, in order.
    fn write_due(&mut self, now: Instant) {
        while let Some(packet) = self.queue.pop_due(now) {
            let written = loop {
                // SAFETY: the pointer and length describe `packet`, borrowed for the call; the
                // descriptor is open while `self.to` is.
                let result = unsafe {
                    libc::write(self.to.as_raw_fd(), packet.as_ptr().cast(), packet.len())
                };
                if result >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    break result >= 0;
                }
            };
            let counter = if written {
                &self.counters.carried
            } else {
                &self.counters.failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.queue.recycle(packet);
        }
    }

    /// Reads up to [`READS_PER_TURN`] packets, each stamped with the instant it was read.
    fn read_some(&mut self, buffer: &mut [u8]) -> io::Result<()> {
        for _ in 0..READS_PER_TURN {
            // SAFETY: the pointer and length describe `buffer`, which the kernel fills at most
            // that far; the descriptor is open while `self.from` is.
            let read = unsafe {
                libc::read(
                    self.from.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            };
            let Ok(length) = usize::try_from(read) else {
                let error = io::Error::last_os_error();
                match error.kind() {
                    io::ErrorKind::WouldBlock => return Ok(()),
                    io::ErrorKind::Interrupted => continue,
                    _ => {
                        return Err(io::Error::new(
                            error.kind(),
                            format!("reading {}: {error}", self.from_name),
                        ));
                    }
                }
            };
            let packet = buffer.get(..length).unwrap_or(buffer);
            if !self.queue.push(Instant::now(), packet) {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// What [`wait`] found.
#[derive(Debug, PartialEq, Eq)]
enum Ready {
    /// The stop signal.
    Stop,
    /// Packets to read.
    Packets,
    /// Neither, within the wait (or a signal interrupted it).
    Nothing,
}

/// Waits until `stop` is signalled or `device`, if given, is readable, for at most `timeout`
/// (without limit if `None`), with nanosecond precision (`ppoll`).
fn wait(stop: &OwnedFd, device: Option<&OwnedFd>, timeout: Option<Duration>) -> io::Result<Ready> {
    let watch = |fd: libc::c_int| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // A negative descriptor is left out of the poll.
    let mut fds = [
        watch(stop.as_raw_fd()),
        watch(device.map_or(-1, AsRawFd::as_raw_fd)),
    ];
    let timeout = timeout.map(timespec);
    let timeout_pointer = timeout
        .as_ref()
        .map_or(std::ptr::null(), |timeout| timeout as *const libc::timespec);
    // SAFETY: the pointers describe `fds` (two entries) and `timeout`, live for the call; the
    // kernel writes only the entries' `revents`. No signal mask is given.
    let ready = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            timeout_pointer,
            std::ptr::null(),
        )
    };
    if ready < 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok(Ready::Nothing);
        }
        return Err(io::Error::new(
            error.kind(),
            format!("waiting for packets (ppoll): {error}"),
        ));
    }
    Ok(if fds[0].revents != 0 {
        Ready::Stop
    } else if fds[1].revents != 0 {
        // Readable, or an error condition that the read will report.
        Ready::Packets
    } else {
        Ready::Nothing
    })
}

/// `duration` as a C `timespec` (a delay line's waits are far below its limits).
fn timespec(duration: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(duration.as_secs()).unwrap_or(libc::time_t::MAX),
        // Under 10^9: fits a C long of any width.
        tv_nsec: duration.subsec_nanos() as libc::c_long,
    }
}

/// The packets of one direction, in the order they were read, each due `delay` after it was
/// read; at most `capacity` of them.
struct DelayQueue {
    delay: Duration,
    capacity: usize,
    packets: VecDeque<(Instant, Vec<u8>)>,
    spare: Vec<Vec<u8>>,
}

impl DelayQueue {
    fn new(delay: Duration, capacity: usize) -> DelayQueue {
        DelayQueue {
            delay,
            capacity,
            packets: VecDeque::new(),
            spare: Vec::new(),
        }
    }

    /// Queues a copy of `packet`, read at `read_at`; false (the packet dropped) if the queue is
    /// full. Instants must not go backwards from one push to the next (they come from a
    /// monotonic clock), so that due times keep the order of reading.
    fn push(&mut self, read_at: Instant, packet: &[u8]) -> bool {
        if self.packets.len() >= self.capacity {
            return false;
        }
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(packet);
        // A delay is at most MAX_ONE_WAY, which a monotonic instant cannot overflow by in
        // practice; should it, the packet is due at once rather than never.
        let due = read_at.checked_add(self.delay).unwrap_or(read_at);
        self.packets.push_back((due, buffer));
        true
    }

    /// When the oldest packet is due, if there is one.
    fn next_due(&self) -> Option<Instant> {
        self.packets.front().map(|(due, _)| *due)
    }

    /// The oldest packet, if it is due at `now`.
    fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_due()? > now {
            return None;
        }
        self.packets.pop_front().map(|(_, packet)| packet)
    }

    /// Keeps a written packet's buffer for a later one.
    fn recycle(&mut self, buffer: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_millis(25);

    #[test]
    fn packets_are_due_the_delay_after_they_were_read_and_leave_in_order() {
        let start = Instant::now();
        let at = |micros: u64| start + Duration::from_micros(micros);
        let mut queue = DelayQueue::new(DELAY, 10);
        assert_eq!(queue.next_due(), None);
        assert_eq!(queue.pop_due(at(1_000_000)), None);
        // Read at 0, 10 µs, 10 µs (the same instant) and 3 ms.
        for (micros, byte) in [(0, 1u8), (10, 2), (10, 3), (3_000, 4)] {
            assert!(queue.push(at(micros), &[byte; 3]));
        }
        assert_eq!(queue.packets.len(), 4);
        assert_eq!(queue.next_due(), Some(at(25_000)));
        // Nothing is due a microsecond early; exactly at the due time, it is.
        assert_eq!(queue.pop_due(at(24_999)), None);
        assert_eq!(queue.pop_due(at(25_000)), Some(vec![1; 3]));
        assert_eq!(queue.next_due(), Some(at(25_010)));
        // Late: everything due by then comes out, oldest first, and no more.
        let drained: Vec<Vec<u8>> = std::iter::from_fn(|| queue.pop_due(at(27_000))).collect();
        assert_eq!(drained, [vec![2; 3], vec![3; 3]]);
        assert_eq!(queue.next_due(), Some(at(28_000)));
        assert_eq!(queue.pop_due(at(28_000)), Some(vec![4; 3]));
        assert_eq!(queue.pop_due(at(u64::from(u32::MAX))), None);
    }

    #[test]
    fn a_full_queue_drops_what_arrives_until_a_packet_has_left() {
        let start = Instant::now();
        let mut queue = DelayQueue::new(DELAY, 2);
        assert!(queue.push(start, b"a"));
        assert!(queue.push(start, b"b"));
        assert!(!queue.push(start, b"c"), "a third packet in a queue of 2");
        assert_eq!(queue.packets.len(), 2);
        let due = start + DELAY;
        let first = queue.pop_due(due).unwrap();
        assert_eq!(first, b"a");
        queue.recycle(first);
        // Room again; the recycled buffer holds the new packet only.
        assert!(queue.push(due, b"dd"));
        assert_eq!(queue.pop_due(due), Some(b"b".to_vec()));
        assert_eq!(queue.pop_due(due), None);
        assert_eq!(queue.pop_due(due + DELAY), Some(b"dd".to_vec()));
    }

    #[test]
    fn no_delay_passes_packets_at_once() {
        let now = Instant::now();
        let mut queue = DelayQueue::new(Duration::ZERO, 4);
        assert!(queue.push(now, b"x"));
        assert_eq!(queue.pop_due(now), Some(b"x".to_vec()));
    }

    #[test]
    fn waits_convert_to_timespecs() {
        let t = timespec(Duration::new(3, 25_000_001));
        assert_eq!((t.tv_sec, t.tv_nsec), (3, 25_000_001));
        let t = timespec(Duration::ZERO);
        assert_eq!((t.tv_sec, t.tv_nsec), (0, 0));
    }

    #[test]
    fn device_drops_sum_both_directions_of_the_interface() {
        let table = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    9    0     0       0          0
delay-client:   5000      50    0    3    0     0          0         0     6000      60    0    4    0     0       0          0
";
        assert_eq!(interface_drops(table, "delay-client"), Some(7));
        assert_eq!(interface_drops(table, "lo"), Some(9));
        assert_eq!(interface_drops(table, "delay-server"), None);
    }

    #[test]
    fn the_line_refuses_what_it_cannot_be() {
        assert!(validate("a", "b", DELAY, 1).is_ok());
        assert!(validate("a", "b", MAX_ONE_WAY, 1).is_ok());
        for (client, server, one_way, queue, says) in [
            ("a", "a", DELAY, 1, "with itself"),
            (
                "a",
                "b",
                MAX_ONE_WAY + Duration::from_nanos(1),
                1,
                "over the",
            ),
            ("a", "b", DELAY, 0, "at least one packet"),
        ] {
            let error = validate(client, server, one_way, queue).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
            assert!(error.to_string().contains(says), "{error}");
        }
    }
}
