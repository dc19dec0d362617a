//! shaker-wire's integration tests, in one binary, on real traffic (they need root, and say so
//! when they skip): `capture` on loopback, `delay_line` between two network namespaces.

#![cfg(target_os = "linux")]

mod capture;
mod delay_line;
