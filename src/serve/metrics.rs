//! `/metrics`: the registry of every target's metrics and the service's own, the observer that
//! updates them from the health monitor, and the exposition in the format the scraper asks for.
//!
//! Exposition goes through `prometheus-client`, the official OpenMetrics crate. A scraper that
//! accepts `application/openmetrics-text` (Prometheus does) gets OpenMetrics; any other gets
//! the Prometheus text format 0.0.4, which differs only in the names of counter families and
//! in having no `# EOF` and `# UNIT` lines.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tcp_shaker::health::{CheckEvent, Judgement, Status, Transition, WatchId, WatchMap};

use super::outcome::{self, KINDS, TARGET_OUTCOMES};

/// Upper bounds of the check-duration buckets, in seconds: a host next door, a LAN, a region,
/// a continent, a timeout. Few, since every target has its own series of each.
const CHECK_BUCKETS: [f64; 5] = [0.001, 0.005, 0.025, 0.1, 0.5];

/// Upper bounds of the scheduler's lateness buckets, in seconds.
const LATENESS_BUCKETS: [f64; 8] = [0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0];

/// The labels of one target: `target`, `group` when it has one, then its configured labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetLabels(Arc<[(String, String)]>);

impl TargetLabels {
    /// The labels of a target named `name`, in `group`, with its configured `labels`.
    pub fn new(name: &str, group: Option<&str>, labels: &[(String, String)]) -> TargetLabels {
        let mut all = vec![("target".to_owned(), name.to_owned())];
        if let Some(group) = group {
            all.push(("group".to_owned(), group.to_owned()));
        }
        all.extend(labels.iter().cloned());
        TargetLabels(all.into())
    }
}

impl EncodeLabelSet for TargetLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.0.as_ref().encode(encoder)
    }
}

type LabelPair = [(&'static str, &'static str); 1];
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn check_histogram() -> Histogram {
    Histogram::new(CHECK_BUCKETS)
}

/// The metrics of every target, one series per target (per outcome for the checks).
#[derive(Debug)]
struct TargetFamilies {
    up: Family<TargetLabels, Gauge>,
    checks: Family<(TargetLabels, LabelPair), Counter>,
    duration: HistogramFamily<TargetLabels>,
    transitions: Family<TargetLabels, Counter>,
    last_change: Family<TargetLabels, Gauge<f64, AtomicU64>>,
}

/// One target's labels, and its series in each family: taken from the families once, when it
/// is watched, so that a check costs no lookup by labels.
#[derive(Debug)]
struct Series {
    labels: TargetLabels,
    up: Gauge,
    /// By outcome, in the order of [`outcome::KINDS`]; each made by the first check with it.
    checks: [OnceLock<Counter>; TARGET_OUTCOMES],
    duration: Histogram,
    transitions: Counter,
    /// Made by the first transition.
    last_change: OnceLock<Gauge<f64, AtomicU64>>,
}

/// Every metric the service exposes, and the labels of each watched target.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    targets: TargetFamilies,
    /// Each watched target's labels and series, looked up once per check.
    series: RwLock<WatchMap<Series>>,
    checker_errors: Family<LabelPair, Counter>,
    in_flight: Gauge,
    lateness: Histogram,
    resolve_duration: Histogram,
    reloads: Family<LabelPair, Counter>,
    last_reload_successful: Gauge,
    targets_checked: Gauge,
}

impl Metrics {
    /// A registry with every family registered, and no target yet.
    pub fn new() -> Metrics {
        let targets = TargetFamilies {
            up: Family::default(),
            checks: Family::default(),
            duration: Family::new_with_constructor(check_histogram),
            transitions: Family::default(),
            last_change: Family::default(),
        };
        let metrics = Metrics {
            registry: Registry::default(),
            targets,
            series: RwLock::default(),
            checker_errors: Family::default(),
            in_flight: Gauge::default(),
            lateness: Histogram::new(LATENESS_BUCKETS),
            resolve_duration: Histogram::new(CHECK_BUCKETS),
            reloads: Family::default(),
            last_reload_successful: Gauge::default(),
            targets_checked: Gauge::default(),
        };
        metrics.last_reload_successful.set(1);
        for kind in ["not_started", "resource_limit", "no_local_address", "io"] {
            // The checker's failures that can happen, at 0 from the start, for rate() alerts.
            let _ = metrics.checker_errors.get_or_create(&[("kind", kind)]);
        }
        for result in ["success", "failure"] {
            // Both series from the start, at 0, so that increase() sees the first reload.
            let _ = metrics.reloads.get_or_create(&[("result", result)]);
        }
        let mut registry = Registry::default();
        let families = &metrics.targets;
        registry.register(
            "tcp_shaker_target_up",
            "Whether the target is up (1) or down (0), by its rise/fall state",
            families.up.clone(),
        );
        registry.register(
            "tcp_shaker_target_checks",
            "Checks of the target, by outcome: open, closed, timed_out, unreachable, resolve_failed",
            families.checks.clone(),
        );
        registry.register_with_unit(
            "tcp_shaker_target_check_duration",
            "How long each check of the target took, name resolution included",
            Unit::Seconds,
            families.duration.clone(),
        );
        registry.register(
            "tcp_shaker_target_transitions",
            "Changes of the target between up and down",
            families.transitions.clone(),
        );
        registry.register(
            "tcp_shaker_target_last_change_timestamp_seconds",
            "When the target last changed between up and down (Unix time)",
            families.last_change.clone(),
        );
        registry.register(
            "tcp_shaker_checker_errors",
            "Checks the checker itself could not make, by kind; they say nothing of a target",
            metrics.checker_errors.clone(),
        );
        registry.register(
            "tcp_shaker_checks_in_flight",
            "Health checks started and not finished",
            metrics.in_flight.clone(),
        );
        registry.register_with_unit(
            "tcp_shaker_schedule_lateness",
            "How long after it was due each health check started",
            Unit::Seconds,
            metrics.lateness.clone(),
        );
        registry.register_with_unit(
            "tcp_shaker_resolve_duration",
            "How long the resolver took for each health check of a host name",
            Unit::Seconds,
            metrics.resolve_duration.clone(),
        );
        registry.register(
            "tcp_shaker_config_reloads",
            "Reloads of the config file, by result: success, failure",
            metrics.reloads.clone(),
        );
        registry.register(
            "tcp_shaker_config_last_reload_successful",
            "Whether the last reload of the config file succeeded (1) or was refused (0)",
            metrics.last_reload_successful.clone(),
        );
        registry.register(
            "tcp_shaker_targets",
            "Targets this instance checks (its shard's share)",
            metrics.targets_checked.clone(),
        );
        let build_info: Family<LabelPair, Gauge> = Family::default();
        build_info
            .get_or_create(&[("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        registry.register(
            "tcp_shaker_build_info",
            "The version of tcp-checker, as a label; always 1",
            build_info,
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Starts the series of a newly watched target, in its initial state.
    pub fn add_target(&self, status: &Status, labels: TargetLabels) {
        let families = &self.targets;
        let series = Series {
            up: families.up.get_or_create(&labels).clone(),
            checks: Default::default(),
            duration: families.duration.get_or_create(&labels).clone(),
            // At 0 from the start, so that increase() sees the first transition.
            transitions: families.transitions.get_or_create(&labels).clone(),
            last_change: OnceLock::new(),
            labels,
        };
        series.up.set(i64::from(status.health.is_up()));
        self.write_series().insert(status.id, series);
        self.update_target_count();
    }

    /// Ends every series of a target that is no longer watched.
    pub fn remove_target(&self, id: WatchId) {
        let Some(Series { labels, .. }) = self.write_series().remove(&id) else {
            return;
        };
        let families = &self.targets;
        families.up.remove(&labels);
        families.duration.remove(&labels);
        families.transitions.remove(&labels);
        families.last_change.remove(&labels);
        for (outcome, _) in &KINDS[..TARGET_OUTCOMES] {
            families
                .checks
                .remove(&(labels.clone(), [("outcome", *outcome)]));
        }
        self.update_target_count();
    }

    /// Counts a reload of the config file.
    pub fn reloaded(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.reloads.get_or_create(&[("result", result)]).inc();
        self.last_reload_successful.set(i64::from(success));
    }

    /// The exposition of every metric, in `format`.
    pub fn render(&self, format: Format) -> String {
        encode(&self.registry, format)
    }

    fn update_target_count(&self) {
        let count = self.read_series().len();
        self.targets_checked
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    fn read_series(&self) -> RwLockReadGuard<'_, WatchMap<Series>> {
        self.series.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_series(&self) -> RwLockWriteGuard<'_, WatchMap<Series>> {
        self.series.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one finished health check.
    pub fn record_check(&self, event: &CheckEvent<'_>) {
        self.lateness.observe(event.lateness.as_secs_f64());
        let Some(judgement) = event.status.last_check.as_ref().map(|last| &last.judgement) else {
            return;
        };
        if let Judgement::CheckerError { kind, .. } = judgement {
            self.checker_errors
                .get_or_create(&[("kind", kind.as_str())])
                .inc();
            return;
        }
        let all = self.read_series();
        let Some(series) = all.get(&event.status.id) else {
            return;
        };
        series.up.set(i64::from(event.status.health.is_up()));
        // A checker error returned above: the kind is one of the target's outcomes.
        let (at, _) = outcome::kind_of(judgement);
        if let Some(checks) = series.checks.get(at) {
            let counter = checks.get_or_init(|| {
                let labels = (series.labels.clone(), [("outcome", KINDS[at].0)]);
                self.targets.checks.get_or_create(&labels).clone()
            });
            counter.inc();
        }
        series.duration.observe(event.duration.as_secs_f64());
        if let Judgement::Checked(report) = judgement {
            if let Some(resolving) = report.resolve_time() {
                self.resolve_duration.observe(resolving.as_secs_f64());
            }
        }
    }

    /// Records a change between up and down.
    pub fn record_transition(&self, transition: &Transition) {
        let all = self.read_series();
        let Some(series) = all.get(&transition.id) else {
            return;
        };
        series.transitions.inc();
        let at = transition
            .at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        series
            .last_change
            .get_or_init(|| {
                let family = &self.targets.last_change;
                family.get_or_create(&series.labels).clone()
            })
            .set(at.as_secs_f64());
    }

    /// Sets the number of health checks in flight, before a render.
    pub fn set_in_flight(&self, checks: usize) {
        self.in_flight
            .set(i64::try_from(checks).unwrap_or(i64::MAX));
    }
}

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// The format a request's `Accept` header asks for: OpenMetrics if it names it with a
    /// weight above zero, else the Prometheus text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants_openmetrics = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let is_openmetrics = parts.next() == Some("application/openmetrics-text");
                let weight = parts
                    .find_map(|parameter| parameter.strip_prefix("q="))
                    .map_or(1.0, |q| q.parse::<f32>().unwrap_or(0.0));
                is_openmetrics && weight > 0.0
            })
        });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The exposition of `registry` in `format`.
pub fn encode(registry: &Registry, format: Format) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    match format {
        Format::OpenMetrics => text,
        Format::Text => openmetrics_to_text(&text),
    }
}

/// OpenMetrics text turned into the Prometheus text format 0.0.4: counter families named with
/// their `_total` suffix, no `# UNIT` and no `# EOF` lines.
fn openmetrics_to_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, after) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {after}"))
        });
        match renamed {
            Some(line) => text.push_str(&line),
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapers_that_name_openmetrics_get_it_and_others_get_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0")),
            Format::Text
        );
    }

    #[test]
    fn the_text_format_names_counters_with_total_and_has_no_eof() {
        let openmetrics = "# HELP a_checks Checks.\n# TYPE a_checks counter\na_checks_total 3\n# HELP b_seconds B.\n# TYPE b_seconds gauge\n# UNIT b_seconds seconds\nb_seconds 1.5\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(openmetrics),
            "# HELP a_checks_total Checks.\n# TYPE a_checks_total counter\na_checks_total 3\n# HELP b_seconds B.\n# TYPE b_seconds gauge\nb_seconds 1.5\n"
        );
    }

    #[test]
    fn a_removed_target_leaves_no_series() {
        let metrics = Metrics::new();
        let labels = TargetLabels::new("db:5432", Some("db"), &[("env".into(), "prod".into())]);
        let checker = tcp_shaker::Checker::new().unwrap();
        let monitor = tcp_shaker::health::Monitor::start(&checker, ());
        let watch = tcp_shaker::health::Watch::new(
            "db:5432",
            "127.0.0.1:5432",
            tcp_shaker::health::Policy::default(),
        )
        .unwrap();
        let id = monitor.watch(watch);
        metrics.add_target(&monitor.status(id).unwrap(), labels);
        let rendered = metrics.render(Format::OpenMetrics);
        assert!(
            rendered.contains(r#"tcp_shaker_target_up{target="db:5432",group="db",env="prod"} 1"#),
            "{rendered}"
        );
        assert!(rendered.contains("tcp_shaker_targets 1"), "{rendered}");
        metrics.remove_target(id);
        let rendered = metrics.render(Format::OpenMetrics);
        assert!(!rendered.contains("db:5432"), "{rendered}");
        assert!(rendered.contains("tcp_shaker_targets 0"), "{rendered}");
    }
}
