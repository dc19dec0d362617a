//! The command line's integration tests, in one binary: each module drives the built
//! `tcp-checker` against loopback sockets the tests own ([`common`]), and checks what it prints
//! and how it exits.

mod common;

mod backpressure;
mod interrupt;
mod memory;
mod output;
mod parity;
mod repeat;
mod subcommands;
mod targets;
mod wait;
