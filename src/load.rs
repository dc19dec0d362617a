//! N checks of one address with C in flight, summarised as the original tool did.

use std::time::Instant;

use anyhow::Context;
use tcp_shaker::{Checker, Outcome};

use crate::args::Args;

/// Counts of a finished run, in the original's categories.
#[derive(Debug, Default)]
pub struct Summary {
    pub requested: u64,
    pub finished: u64,
    pub succeeded: u64,
    /// Refused or unreachable: the connection attempt got an answer, and it was no.
    pub connect_errors: u64,
    pub timeouts: u64,
    /// The check could not be made (resolution, system limits).
    pub other_errors: u64,
}

impl Summary {
    pub fn all_succeeded(&self) -> bool {
        self.succeeded == self.requested
    }
}

pub fn run(args: &Args) -> anyhow::Result<Summary> {
    let target: tcp_shaker::Target = args.address.parse()?;
    if args.verbose {
        eprintln!(
            "Checking {target} with the following configurations:\n    Timeout: {:?}\n   \
             Requests: {}\nConcurrency: {}\n",
            args.timeout(),
            args.count,
            args.concurrency
        );
    }
    let checker = Checker::new().context("could not start the checker")?;
    let mut batch = checker.batch();
    let mut summary = Summary {
        requested: args.count,
        ..Summary::default()
    };
    let started = Instant::now();
    let mut submitted = 0;
    while submitted < args.count.min(args.concurrency) {
        batch.submit(submitted, &target, args.timeout())?;
        submitted += 1;
    }
    while let Some(completion) = batch.next() {
        summary.finished += 1;
        match completion.result {
            Ok(report) => match report.outcome() {
                Outcome::Open { .. } => summary.succeeded += 1,
                Outcome::TimedOut => summary.timeouts += 1,
                Outcome::Closed | Outcome::Unreachable => {
                    summary.connect_errors += 1;
                    if args.verbose {
                        eprintln!("{target}: {}", report.outcome());
                    }
                }
            },
            Err(error) => {
                summary.other_errors += 1;
                if args.verbose {
                    eprintln!("{error}");
                }
            }
        }
        if submitted < args.count {
            batch.submit(submitted, &target, args.timeout())?;
            submitted += 1;
        }
    }
    println!(
        "Finished {}/{} checks in {:?}",
        summary.finished,
        summary.requested,
        started.elapsed()
    );
    println!("  Succeed: {}", summary.succeeded);
    println!(
        "  Errors: connect {}, timeout {}, other {}",
        summary.connect_errors, summary.timeouts, summary.other_errors
    );
    Ok(summary)
}
