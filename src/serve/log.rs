//! The service's log on standard error: one line per transition of a target, per change of a
//! target's address, and per event of the service itself (start, reload, stop), as text or as
//! JSON lines.

use std::io::Write;
use std::net::SocketAddr;
use std::time::SystemTime;

use serde_json::json;
use tcp_shaker::health::{CheckEvent, Observe, Transition};

/// How log lines are written: `--log-format`, or `log_format` in the config file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event: `2026-12-02T07:10:00.123Z web is DOWN, reason: ...`
    #[default]
    Text,
    /// One JSON object per line, with `time` and `event`
    Json,
}

/// Writes log lines in one format.
#[derive(Clone, Copy, Debug)]
pub struct Log {
    format: LogFormat,
}

impl Log {
    /// A log writing `format`.
    pub fn new(format: LogFormat) -> Log {
        Log { format }
    }

    /// An event of the service itself: `event` names it (`started`, `reloaded`,
    /// `reload_refused`, `stopping`), `message` says it for a reader.
    pub fn service(&self, event: &str, message: &str) {
        match self.format {
            // A message of several lines (a config file's excerpt) is several log lines, each
            // with its time, for shippers that read a line at a time.
            LogFormat::Text => {
                let now = now();
                for line in message.lines() {
                    self.write(&format!("{now} {line}"));
                }
            }
            LogFormat::Json => self.write_json(json!({
                "time": now(), "event": event, "message": message,
            })),
        }
    }

    fn transition(&self, transition: &Transition) {
        let address = transition.address;
        let (done, of) = transition.health.progress();
        let state = if transition.to.is_up() { "UP" } else { "DOWN" };
        let reason = transition.judgement.reason();
        let duration = transition.check_duration;
        match self.format {
            LogFormat::Text => {
                // The address, unless the name is the address already.
                let at = address
                    .filter(|a| a.to_string() != transition.name)
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default();
                self.write(&format!(
                    "{} {}{at} is {state}, reason: {reason}, check duration: {duration:.1?}, \
                     status: {done}/{of} {state}",
                    humantime::format_rfc3339_millis(transition.at),
                    transition.name,
                ));
            }
            LogFormat::Json => self.write_json(json!({
                "time": humantime::format_rfc3339_millis(transition.at).to_string(),
                "event": "transition",
                "target": transition.name,
                "address": address.map(|a| a.to_string()),
                "state": transition.to.as_str(),
                "reason": reason,
                "check_duration_seconds": duration.as_secs_f64(),
                "status": format!("{done}/{of}"),
            })),
        }
    }

    fn address_changed(&self, name: &str, from: SocketAddr, to: Option<SocketAddr>) {
        let to_text = to.map_or_else(|| "none".to_owned(), |to| to.to_string());
        match self.format {
            LogFormat::Text => self.write(&format!(
                "{} {name} changed address from {from} to {to_text}",
                now()
            )),
            LogFormat::Json => self.write_json(json!({
                "time": now(), "event": "address_changed", "target": name,
                "from": from.to_string(), "to": to.map(|to| to.to_string()),
            })),
        }
    }

    fn write_json(&self, value: serde_json::Value) {
        self.write(&value.to_string());
    }

    fn write(&self, line: &str) {
        // A log that cannot be written (a closed stderr) must not stop the checks.
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Logs transitions and changes of address.
impl Observe for Log {
    fn checked(&mut self, event: &CheckEvent<'_>) {
        if let Some(previous) = event.previous_address {
            self.address_changed(&event.status.name, previous, event.status.address);
        }
    }

    fn changed(&mut self, transition: &Transition) {
        self.transition(transition);
    }
}
