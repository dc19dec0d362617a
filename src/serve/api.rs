//! `/health`, `/health/{target}` and `/api/targets`: the targets' state for load balancers,
//! Kubernetes probes and programs.
//!
//! `/health/{target}` answers 200 while the target is up by its rise/fall state (a target going
//! down still is), 503 while it is down, 404 for a name that is not configured; `/health`
//! answers 200 when every target is up. The body says the state in HAProxy's words.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::http::StatusCode;
use serde::Serialize;
use tcp_shaker::health::Status;

use super::outcome;
use super::service::Service;

/// The answer of `/health/{name}`.
pub fn target_health(service: &Service, name: &str) -> (StatusCode, String) {
    let current = service.current();
    let Some(status) = current
        .id_of(name)
        .and_then(|id| service.monitor.status(id))
    else {
        return (
            StatusCode::NOT_FOUND,
            format!("no target is named {name:?}; /api/targets lists them\n"),
        );
    };
    let code = if status.health.is_up() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, format!("{name} {}\n", status.health))
}

/// The answer of `/health`: 200 when every target is up, with the count of each.
pub fn overall_health(service: &Service) -> (StatusCode, String) {
    let (up, total) = service.monitor.with_statuses(|statuses| {
        statuses.fold((0, 0), |(up, total), status| {
            (up + usize::from(status.health.is_up()), total + 1)
        })
    });
    let code = if up == total {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, format!("{up} of {total} targets up\n"))
}

/// One target in `/api/targets`.
#[derive(Debug, Serialize)]
pub struct TargetJson<'a> {
    name: &'a str,
    group: Option<&'a str>,
    labels: BTreeMap<&'a str, &'a str>,
    /// The target as configured.
    target: &'a str,
    /// The address its last check reached.
    address: Option<String>,
    /// `up`, `going_down`, `down` or `going_up`.
    state: &'static str,
    up: bool,
    /// HAProxy's words: `UP`, `UP 2/3`, `DOWN 1/2`, `DOWN`.
    health: String,
    rise: u32,
    fall: u32,
    checks: u64,
    transitions: u64,
    last_change: Option<String>,
    last_check: Option<LastCheckJson>,
    uptime: UptimeJson,
    history: HistoryJson,
}

/// A target's share of successful checks in `/api/targets`.
#[derive(Debug, Serialize)]
pub struct UptimeJson {
    hour: Option<f64>,
    day: Option<f64>,
}

/// A target's recent checks in `/api/targets`, oldest first.
#[derive(Debug, Serialize)]
pub struct HistoryJson {
    /// One letter per check: o open, c closed, t timed out, u unreachable, r not resolved,
    /// e checker error.
    outcomes: String,
    /// The round trip of each in microseconds, 0 when not open.
    rtt_us: Vec<u32>,
}

/// A target's last check in `/api/targets`.
#[derive(Debug, Serialize)]
pub struct LastCheckJson {
    at: String,
    /// `open`, `closed`, `timed_out`, `unreachable`, `resolve_failed` or `checker_error`.
    outcome: &'static str,
    /// The SYN-ACK's round trip, for an open port.
    rtt_ms: Option<f64>,
    reason: String,
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

fn last_check_json(status: &Status) -> Option<LastCheckJson> {
    let last = status.last_check.as_ref()?;
    let (kind, rtt) = outcome::kind_of(&last.judgement);
    Some(LastCheckJson {
        at: rfc3339(last.at),
        outcome: outcome::KINDS[kind].0,
        rtt_ms: rtt.map(|rtt| rtt.as_secs_f64() * 1e3),
        reason: last.judgement.reason(),
    })
}

/// The body of `/api/targets`: every target's state, in the configured order.
pub fn targets_json(service: &Service) -> String {
    let current = service.current();
    // A copy, so that the scheduler, which updates the statuses, does not wait for the JSON.
    let statuses = service.monitor.statuses();
    let targets: Vec<TargetJson<'_>> = statuses
        .iter()
        .filter_map(|status| {
            let plan = current.plan_of(status.id)?;
            let past = service.history.past(status.id);
            Some(TargetJson {
                name: &status.name,
                group: plan.group.as_deref(),
                labels: plan
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
                target: &plan.written,
                address: status.address.map(|a| a.to_string()),
                state: status.health.state().as_str(),
                up: status.health.is_up(),
                health: status.health.to_string(),
                rise: plan.watch.policy.rise,
                fall: plan.watch.policy.fall,
                checks: status.checks,
                transitions: status.transitions,
                last_change: status.last_change.map(rfc3339),
                last_check: last_check_json(status),
                uptime: UptimeJson {
                    hour: past.uptime_hour,
                    day: past.uptime_day,
                },
                history: HistoryJson {
                    outcomes: past.outcomes,
                    rtt_us: past.rtt_us,
                },
            })
        })
        .collect();
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_string(&targets).unwrap_or_default()
}
