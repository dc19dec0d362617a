//! `shaker-bench`: tcp-shaker's engine against a minimal floor loop of raw syscalls and a
//! std-library full-connect baseline, all checking one open port of a local listener, at several
//! concurrency levels; one table of checks/s, CPU per check, peak memory, connections the
//! listener's application accepted, and SYN-ACK-to-RST delay, with the ratios to the floor.
//!
//! `cargo run --release -p shaker-bench` runs it (`--help` for the options) against 127.0.0.1,
//! where the engine takes its loopback shortcut; `--scenario veth` (as root) makes the same table
//! of floor and engine on the engine's poller path, to a listener inside a network namespace of
//! its own over a veth pair; `--scenario rtt` (as root) the same across a real round trip
//! (`--rtt`, 50 ms by default), made by a user-space delay line between two namespaces of its
//! own, where every SYN-ACK arrives long after `connect()` returned. Every measured run is a
//! child process (this program re-executed with hidden arguments), so that its CPU time and
//! memory are its own; the parent runs the listener and the packet capture.
//!
//! `--scenario serve` runs the service, `tcp-checker serve` (the binary beside this one, or
//! `--tcp-checker`), checking 20 000 loopback targets every second, then HAProxy checking the
//! same (if installed): checks/s, schedule lateness, `/metrics` render time, memory per target
//! and CPU per check; `--scenario probe` loads its `/probe` with concurrent keep-alive clients,
//! then blackbox_exporter's (if installed): probes/s and CPU per probe. As root both run in a
//! network namespace of their own.
//!
//! The library is also the one measurement `tcp-checker bench` makes: the [`Listener`] whose
//! application counts what it accepts, the engine's loop of checks kept in flight
//! ([`keep_in_flight`]), the process's [`CpuTime`] and the [`percentile`] arithmetic. The rest
//! is the benchmark's own, behind [`run`]. Linux only (epoll, `/proc`, network namespaces).

#![deny(missing_docs)]

mod args;
mod bench;
mod checks;
mod child;
mod command;
mod comparison;
mod contenders;
mod cpu_time;
mod daemon;
mod delay;
mod exposition;
mod http_load;
mod interrupt;
mod listener;
mod probe;
mod procfs;
mod round_trip;
mod scenario;
mod server;
mod service;
mod statistics;
mod summary;
mod sys;
mod table;
mod veth;

pub use crate::args::Args;
pub use crate::checks::keep_in_flight;
pub use crate::command::{interrupted, run};
pub use crate::cpu_time::CpuTime;
pub use crate::http_load::{Connection, Response, get, read_response};
pub use crate::listener::Listener;
pub use crate::statistics::percentile;

/// The benchmark's network namespaces are named `shaker-bench-<pid>-<n>`, apart from the
/// tests'.
const NAMESPACE_PREFIX: &str = "shaker-bench-";
