//! The library's integration tests, in one binary: each module tests one capability against
//! loopback listeners or network namespaces the tests make themselves, nothing else.
//!
//! Tests that count what the whole process does (its descriptors, its heap allocations) or
//! change what it may do (its open-files limit) run alone, in a child process of this binary
//! ([`common::child::alone`]).

mod common;

mod allocations;
mod binding;
mod callbacks;
mod concurrency;
mod deadlines;
mod dns;
mod executors;
mod fd_limit;
mod health;
mod input;
mod leaks;
mod lifecycle;
mod names;
mod namespaces;
mod no_hang;
mod open_files;
mod outcomes;
mod round_trip;
mod unnoticed;
mod wire;
mod zones;
