//! NDJSON for machines: one object a line, its kind in `"type"`. The field names are stable and
//! documented in the README.

use std::fmt::Display;
use std::io::{self, Write};
use std::net::SocketAddr;

use serde::{Serialize, Serializer};
use tcp_shaker::{CheckError, Report};

use super::{CheckEvent, InterruptedEvent, Output, RunKind, Summary, WaitEvent, millis};
use crate::targets::{InvalidTarget, Source};
use crate::verdict::Verdict;

/// NDJSON output.
pub struct Json;

#[derive(Serialize)]
struct CheckObject<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    target: &'a str,
    address: Option<SocketAddr>,
    outcome: &'static str,
    rtt_ms: Option<f64>,
    elapsed_ms: Option<f64>,
    seq: u64,
    time: AsText<humantime::Rfc3339Timestamp>,
    error: Option<AsText<&'a CheckError>>,
    error_kind: Option<&'static str>,
    phase: Option<&'static str>,
    dns_ms: Option<f64>,
}

#[derive(Serialize)]
struct InvalidTargetObject<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    source: AsText<&'a Source>,
    input: &'a str,
    error: &'a str,
}

#[derive(Serialize)]
struct OpenObject<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    target: &'a str,
    address: Option<SocketAddr>,
    after_ms: f64,
    checks: u64,
}

#[derive(Serialize)]
struct NotOpenObject<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    target: &'a str,
    after_ms: f64,
    checks: u64,
    last_outcome: Option<&'static str>,
    last_error: Option<&'a str>,
}

#[derive(Serialize)]
struct SummaryObject<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    mode: &'static str,
    checks: u64,
    planned: u64,
    open: u64,
    closed: u64,
    timed_out: u64,
    unreachable: u64,
    errors: u64,
    invalid_targets: usize,
    elapsed_ms: f64,
    interrupted: bool,
    interrupted_checks: u64,
    targets: Vec<TargetObject<'a>>,
}

#[derive(Serialize)]
struct TargetObject<'a> {
    target: &'a str,
    address: Option<SocketAddr>,
    sent: u64,
    open: u64,
    closed: u64,
    timed_out: u64,
    unreachable: u64,
    errors: u64,
    loss_percent: f64,
    rtt_min_ms: Option<f64>,
    rtt_avg_ms: Option<f64>,
    rtt_max_ms: Option<f64>,
    rtt_stddev_ms: Option<f64>,
    longest_up_streak: u64,
    longest_down_streak: u64,
}

/// Serialises anything displayable as a JSON string, without an intermediate `String`.
struct AsText<T>(T);

impl<T: Display> Serialize for AsText<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

fn write_line(out: &mut dyn Write, object: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, object)?;
    out.write_all(b"\n")
}

/// Rounds to three decimals: milliseconds to the microsecond, as every time in the output is.
fn round_to_thousandths(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

impl Output for Json {
    fn check(&mut self, out: &mut dyn Write, check: &CheckEvent) -> io::Result<()> {
        let error = check.result.as_ref().err();
        write_line(
            out,
            &CheckObject {
                kind: "check",
                target: check.target,
                address: check.address(),
                outcome: check.verdict.json_name(),
                rtt_ms: match check.verdict {
                    Verdict::Open { rtt } => Some(millis(rtt)),
                    _ => None,
                },
                elapsed_ms: check
                    .result
                    .as_ref()
                    .ok()
                    .map(|report| millis(report.elapsed())),
                seq: check.seq,
                time: AsText(humantime::format_rfc3339_micros(check.time)),
                error: error.map(AsText),
                error_kind: error.map(|error| error.kind().as_str()),
                phase: check
                    .result
                    .as_ref()
                    .ok()
                    .map(|report| report.phase().as_str()),
                dns_ms: check
                    .result
                    .as_ref()
                    .ok()
                    .and_then(Report::resolve_time)
                    .map(millis),
            },
        )
    }

    fn interrupted(&mut self, out: &mut dyn Write, check: &InterruptedEvent) -> io::Result<()> {
        write_line(
            out,
            &CheckObject {
                kind: "check",
                target: check.target,
                address: check.address,
                outcome: "interrupted",
                rtt_ms: None,
                elapsed_ms: Some(millis(check.ran_for)),
                seq: check.seq,
                time: AsText(humantime::format_rfc3339_micros(check.time)),
                error: None,
                error_kind: None,
                phase: None,
                dns_ms: None,
            },
        )
    }

    fn invalid_target(&mut self, out: &mut dyn Write, invalid: &InvalidTarget) -> io::Result<()> {
        write_line(
            out,
            &InvalidTargetObject {
                kind: "invalid_target",
                source: AsText(&invalid.source),
                input: &invalid.input,
                error: &invalid.reason,
            },
        )
    }

    fn hidden_checks(&mut self, _: &mut dyn Write, _: u64) -> io::Result<()> {
        // Every object says what it is; a consumer counts what it left out itself.
        Ok(())
    }

    fn wait_event(&mut self, out: &mut dyn Write, event: &WaitEvent) -> io::Result<()> {
        match *event {
            WaitEvent::Open {
                target,
                address,
                after,
                checks,
            } => write_line(
                out,
                &OpenObject {
                    kind: "open",
                    target,
                    address,
                    after_ms: millis(after),
                    checks,
                },
            ),
            WaitEvent::NotOpen {
                target,
                after,
                checks,
                last,
            } => write_line(
                out,
                &NotOpenObject {
                    kind: "not_open",
                    target,
                    after_ms: millis(after),
                    checks,
                    last_outcome: last.map(|(verdict, _)| verdict.json_name()),
                    last_error: last.and_then(|(_, error)| error),
                },
            ),
        }
    }

    fn summary(&mut self, out: &mut dyn Write, summary: &Summary) -> io::Result<()> {
        let totals = &summary.totals;
        let targets = summary
            .targets
            .iter()
            .map(|entry| {
                let stats = entry.stats;
                let counts = &stats.counts;
                let rtt = stats.rtt();
                TargetObject {
                    target: &entry.target,
                    address: entry.address,
                    sent: counts.finished,
                    open: counts.open,
                    closed: counts.closed,
                    timed_out: counts.timed_out,
                    unreachable: counts.unreachable,
                    errors: counts.errors,
                    loss_percent: round_to_thousandths(counts.loss_percent()),
                    rtt_min_ms: rtt.map(|rtt| round_to_thousandths(rtt.min)),
                    rtt_avg_ms: rtt.map(|rtt| round_to_thousandths(rtt.mean)),
                    rtt_max_ms: rtt.map(|rtt| round_to_thousandths(rtt.max)),
                    rtt_stddev_ms: rtt.map(|rtt| round_to_thousandths(rtt.stddev())),
                    longest_up_streak: stats.longest_up_streak,
                    longest_down_streak: stats.longest_down_streak,
                }
            })
            .collect();
        write_line(
            out,
            &SummaryObject {
                kind: "summary",
                mode: match summary.kind {
                    RunKind::Repeat => "repeat",
                    RunKind::Wait => "wait",
                },
                checks: totals.finished,
                planned: summary.planned,
                open: totals.open,
                closed: totals.closed,
                timed_out: totals.timed_out,
                unreachable: totals.unreachable,
                errors: totals.errors,
                invalid_targets: summary.invalid_targets,
                elapsed_ms: millis(summary.elapsed),
                interrupted: summary.interrupted,
                interrupted_checks: summary.interrupted_checks,
                targets,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use serde_json::Value;

    use super::*;

    #[test]
    fn a_timeout_while_resolving_has_the_resolve_phase_and_its_dns_time() {
        let result = super::super::timed_out_while_resolving();
        let check = CheckEvent {
            target: "slow.test:80",
            by_name: true,
            result: &result,
            verdict: Verdict::of(&result),
            seq: 1,
            time: SystemTime::now(),
        };
        let mut out = Vec::new();
        Json.check(&mut out, &check).unwrap();
        let object: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(object["outcome"], "timed_out", "{object}");
        assert_eq!(object["phase"], "resolve", "{object}");
        assert!(object["address"].is_null(), "{object}");
        assert!(
            object["dns_ms"].as_f64().is_some_and(|ms| ms >= 40.0),
            "{object}"
        );
    }
}
