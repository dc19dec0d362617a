//! `tcp-checker bench`: N checks with C in flight through one batch, against an embedded
//! loopback listener (or a given target), what they cost, and the report of it.
//!
//! The measurement is shaker-bench's own: its [`Listener`], whose application counts the
//! connections it accepts (a half-open check is never one of them, so any count above zero means
//! final ACKs leaked), its engine loop ([`keep_in_flight`]), [`CpuTime`] and [`percentile`].
//! The loop allocates nothing per check beyond the round-trip vector reserved up front.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use shaker_bench::{CpuTime, Listener, keep_in_flight, percentile};
use tcp_shaker::{Batch, Checker, Target};

use crate::args::BenchArgs;
use crate::check::status;
use crate::limits::checks_in_flight_allowed;
use crate::loops;
use crate::output::millis;
use crate::stats::Counts;
use crate::verdict::Verdict;

/// Runs the benchmark and prints its report; returns the exit status.
pub fn run(args: &BenchArgs) -> anyhow::Result<u8> {
    let builder = Checker::builder();
    let in_flight = checks_in_flight_allowed(args.concurrency, &builder);
    let listener = match args.target {
        None => Some(Listener::on_loopback().context("could not start the embedded listener")?),
        Some(_) => None,
    };
    let mut batch = loops::start(&builder, args.loops)?;
    let address = match (&listener, &args.target) {
        (Some(listener), _) => SocketAddr::V4(listener.address()),
        (None, Some(text)) => resolve(&mut batch, text, args.timeout)?,
        (None, None) => bail!("no target and no listener"),
    };

    let measured = measure(&mut batch, address, args.count, in_flight, args.timeout)?;
    let accepted = listener.map(|listener| {
        // Past the delayed-ACK window, so that a leaked final ACK is counted.
        listener.settle();
        listener.accepted()
    });
    let report = BenchReport::new(args, address, in_flight as u64, measured, accepted);
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        report.write_human(&mut out)?;
    }
    out.flush()?;
    let clean = report.open == report.checks && report.accepted.is_none_or(|n| n == 0);
    Ok(if clean {
        status::ALL_OPEN
    } else {
        status::NOT_ALL_OPEN
    })
}

/// The address to check: the target's own for an IP address; for a host name, the address a
/// first, uncounted check used, so that the measured checks resolve nothing.
fn resolve(batch: &mut Batch, text: &str, timeout: Duration) -> anyhow::Result<SocketAddr> {
    let target: Target = text.parse()?;
    if let Some(address) = target.socket_addr() {
        return Ok(address);
    }
    batch.submit(0, &target, timeout)?;
    let first = batch.next().context("the first check got no result")?;
    first
        .result?
        .address()
        .with_context(|| format!("{target} did not resolve within {timeout:?}"))
}

/// What the checks found and cost.
struct Measured {
    counts: Counts,
    /// Round trips of the open checks, sorted.
    rtts: Vec<Duration>,
    elapsed: Duration,
    cpu: CpuTime,
    first_error: Option<String>,
}

fn measure(
    batch: &mut Batch,
    address: SocketAddr,
    count: u64,
    in_flight: usize,
    timeout: Duration,
) -> anyhow::Result<Measured> {
    let mut rtts = Vec::with_capacity(usize::try_from(count).unwrap_or(usize::MAX));
    let mut counts = Counts::default();
    let mut first_error = None;
    let cpu_before = CpuTime::of_this_process().context("reading the CPU time used")?;
    let elapsed = keep_in_flight(
        batch,
        count,
        in_flight,
        |_| address,
        timeout,
        |completion| {
            let verdict = Verdict::of(&completion.result);
            counts.add(verdict);
            match (&completion.result, verdict) {
                (_, Verdict::Open { rtt }) => rtts.push(rtt),
                (Err(error), _) if first_error.is_none() => first_error = Some(error.to_string()),
                _ => {}
            }
        },
    )?;
    let cpu_after = CpuTime::of_this_process().context("reading the CPU time used")?;
    rtts.sort_unstable();
    Ok(Measured {
        counts,
        rtts,
        elapsed,
        cpu: cpu_after.since(&cpu_before),
        first_error,
    })
}

/// The report, also its JSON form (`"type": "bench"`).
#[derive(Serialize)]
struct BenchReport {
    #[serde(rename = "type")]
    kind: &'static str,
    target: SocketAddr,
    embedded_listener: bool,
    checks: u64,
    concurrency: u64,
    timeout_ms: f64,
    elapsed_ms: f64,
    checks_per_second: f64,
    cpu_per_check_us: f64,
    cpu_user_ms: f64,
    cpu_system_ms: f64,
    rtt_p50_ms: Option<f64>,
    rtt_p90_ms: Option<f64>,
    rtt_p99_ms: Option<f64>,
    rtt_max_ms: Option<f64>,
    open: u64,
    closed: u64,
    timed_out: u64,
    unreachable: u64,
    errors: u64,
    first_error: Option<String>,
    accepted: Option<u64>,
}

impl BenchReport {
    fn new(
        args: &BenchArgs,
        target: SocketAddr,
        concurrency: u64,
        measured: Measured,
        accepted: Option<u64>,
    ) -> BenchReport {
        let Measured {
            counts,
            rtts,
            elapsed,
            cpu,
            first_error,
        } = measured;
        let seconds = elapsed.as_secs_f64();
        let percentile = |p: f64| percentile(&rtts, p).map(millis);
        BenchReport {
            kind: "bench",
            target,
            embedded_listener: args.target.is_none(),
            checks: counts.finished,
            concurrency,
            timeout_ms: millis(args.timeout),
            elapsed_ms: millis(elapsed),
            checks_per_second: if seconds > 0.0 {
                (counts.finished as f64 / seconds).round()
            } else {
                0.0
            },
            cpu_per_check_us: (cpu.total().as_secs_f64() * 1e6 / counts.finished.max(1) as f64
                * 100.0)
                .round()
                / 100.0,
            cpu_user_ms: millis(cpu.user),
            cpu_system_ms: millis(cpu.system),
            rtt_p50_ms: percentile(50.0),
            rtt_p90_ms: percentile(90.0),
            rtt_p99_ms: percentile(99.0),
            rtt_max_ms: rtts.last().copied().map(millis),
            open: counts.open,
            closed: counts.closed,
            timed_out: counts.timed_out,
            unreachable: counts.unreachable,
            errors: counts.errors,
            first_error,
            accepted,
        }
    }

    fn write_human(&self, out: &mut dyn Write) -> io::Result<()> {
        let whose = if self.embedded_listener {
            " (embedded listener)"
        } else {
            ""
        };
        writeln!(
            out,
            "{} half-open checks of {}{whose}, {} in flight, timeout {} ms",
            self.checks, self.target, self.concurrency, self.timeout_ms
        )?;
        writeln!(
            out,
            "  rate           {:.0} checks/s ({} checks in {:.3} s)",
            self.checks_per_second,
            self.checks,
            self.elapsed_ms / 1000.0
        )?;
        writeln!(
            out,
            "  CPU per check  {:.2} µs (user {:.0} ms + system {:.0} ms for the whole process; \
             on loopback this includes the server side's kernel work)",
            self.cpu_per_check_us, self.cpu_user_ms, self.cpu_system_ms
        )?;
        match (
            self.rtt_p50_ms,
            self.rtt_p90_ms,
            self.rtt_p99_ms,
            self.rtt_max_ms,
        ) {
            (Some(p50), Some(p90), Some(p99), Some(max)) => writeln!(
                out,
                "  rtt            p50 {p50:.3} ms, p90 {p90:.3} ms, p99 {p99:.3} ms, max {max:.3} ms"
            )?,
            _ => writeln!(out, "  rtt            none: no check found the port open")?,
        }
        writeln!(
            out,
            "  outcomes       {} open, {} closed, {} timed out, {} unreachable, {} errors",
            self.open, self.closed, self.timed_out, self.unreachable, self.errors
        )?;
        if let Some(error) = &self.first_error {
            writeln!(out, "  first error    {error}")?;
        }
        match self.accepted {
            Some(0) => writeln!(
                out,
                "  accepted       0 connections: the listener's application never saw a check \
                 (each handshake ended with RST before the final ACK)"
            ),
            Some(accepted) => writeln!(
                out,
                "  accepted       {accepted} connections: the final ACK of {accepted} checks \
                 leaked before the RST, and the listener's application accepted them"
            ),
            None => writeln!(
                out,
                "  accepted       unknown: the listener is not tcp-checker's own (its \
                 application's log tells whether it saw the checks)"
            ),
        }
    }
}
