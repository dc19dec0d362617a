//! The command line's integration tests, in one binary: each module drives the built
//! `tcp-checker` against loopback sockets the tests own ([`common`]), and checks what it prints
//! and how it exits; [`examples`] checks the files under `examples/` with the tools that read
//! them.

mod common;

mod backpressure;
mod examples;
mod interrupt;
mod memory;
mod output;
mod page;
mod parity;
mod probe;
mod prometheus;
mod repeat;
mod serve;
mod subcommands;
mod targets;
mod wait;
