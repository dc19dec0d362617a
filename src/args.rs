//! The command line, as the original `tcp-checker` spelled it.

use std::time::Duration;

use clap::Parser;

/// Half-open TCP checks: SYN, SYN-ACK, RST. The checked server's application never sees a
/// connection.
#[derive(Debug, Parser)]
#[command(name = "tcp-checker", version)]
pub struct Args {
    #[arg(
        short = 'a',
        value_name = "ADDR",
        help = "TCP address to check, as host:port or [v6]:port"
    )]
    pub address: String,

    /// Timeout of each check in milliseconds, name resolution included
    #[arg(short = 't', value_name = "MS", default_value_t = 1000)]
    pub timeout_ms: u64,

    /// Number of checks to make
    #[arg(short = 'n', value_name = "N", default_value_t = 1)]
    pub count: u64,

    /// Number of checks in flight at once
    #[arg(short = 'c', value_name = "C", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: u64,

    /// Print the configuration and the cause of every failed check
    #[arg(short = 'v')]
    pub verbose: bool,
}

impl Args {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}
