//! The running service: the health monitor and its checker, the metrics, the log, and the
//! targets and probe settings in force, which a reload replaces while keeping the state of
//! every target that did not change.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use tcp_shaker::Checker;
use tcp_shaker::health::{CheckEvent, Monitor, Observe, Transition, WatchId, WatchMap};

use super::history::History;
use super::log::Log;
use super::metrics::{Metrics, TargetLabels};
use super::plan::TargetPlan;
use super::probe::ProbeSettings;

/// The targets and probe settings in force.
#[derive(Debug, Default)]
pub struct Current {
    /// The watched targets, in the plan's order, with their watch ids.
    pub targets: Vec<(WatchId, TargetPlan)>,
    /// Index into `targets` by watch id.
    by_id: WatchMap<usize>,
    /// Index into `targets` by name.
    by_name: HashMap<String, usize>,
    /// How `/probe` is configured.
    pub probe: Arc<ProbeSettings>,
}

impl Current {
    fn new(targets: Vec<(WatchId, TargetPlan)>, probe: ProbeSettings) -> Current {
        let by_id = targets
            .iter()
            .enumerate()
            .map(|(at, (id, _))| (*id, at))
            .collect();
        let by_name = targets
            .iter()
            .enumerate()
            .map(|(at, (_, plan))| (plan.watch.name.clone(), at))
            .collect();
        Current {
            targets,
            by_id,
            by_name,
            probe: Arc::new(probe),
        }
    }

    /// The watch id of the target named `name`.
    pub fn id_of(&self, name: &str) -> Option<WatchId> {
        self.by_name.get(name).map(|&at| self.targets[at].0)
    }

    /// The plan of the target watched as `id`.
    pub fn plan_of(&self, id: WatchId) -> Option<&TargetPlan> {
        self.by_id.get(&id).map(|&at| &self.targets[at].1)
    }
}

/// What a reload changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Targets unchanged, whose state was kept.
    pub kept: usize,
    /// Targets new or changed, whose state starts afresh.
    pub added: usize,
    /// Targets no longer configured (or changed).
    pub removed: usize,
}

/// The running service.
#[derive(Debug)]
pub struct Service {
    /// The checker every check goes through: the monitor's and the probes'.
    pub checker: Checker,
    /// The health monitor of the configured targets.
    pub monitor: Monitor,
    /// The metrics of `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The service's log.
    pub log: Log,
    /// The targets' recent checks and uptime, for the status page.
    pub history: Arc<History>,
    current: RwLock<Arc<Current>>,
}

impl Service {
    /// Starts monitoring `targets` on `checker`.
    pub fn start(
        checker: Checker,
        log: Log,
        targets: Vec<TargetPlan>,
        probe: ProbeSettings,
    ) -> Service {
        let metrics = Arc::new(Metrics::new());
        let history = Arc::new(History::default());
        let observer = Recorder {
            metrics: Arc::clone(&metrics),
            history: Arc::clone(&history),
            log,
        };
        let monitor = Monitor::start(&checker, observer);
        let service = Service {
            checker,
            monitor,
            metrics,
            log,
            history,
            current: RwLock::default(),
        };
        service.apply(targets, probe);
        service
    }

    /// The targets and probe settings in force.
    pub fn current(&self) -> Arc<Current> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `targets` and `probe` in force: a target whose plan is unchanged keeps its watch
    /// and its state; any other starts afresh, and targets no longer planned are forgotten.
    pub fn apply(&self, targets: Vec<TargetPlan>, probe: ProbeSettings) -> Changes {
        let old = self.current();
        let kept: Vec<Option<WatchId>> = targets
            .iter()
            .map(|plan| {
                old.id_of(&plan.watch.name)
                    .filter(|&id| old.plan_of(id) == Some(plan))
            })
            .collect();
        let kept_ids: HashSet<WatchId> = kept.iter().flatten().copied().collect();
        // Forget first: a changed target's new series may carry the same labels as its old.
        let mut changes = Changes::default();
        for (id, _) in old.targets.iter().filter(|(id, _)| !kept_ids.contains(id)) {
            changes.removed += 1;
            self.monitor.unwatch(*id);
            self.metrics.remove_target(*id);
            self.history.forget(*id);
        }
        let watched: Vec<(WatchId, TargetPlan)> = targets
            .into_iter()
            .zip(kept)
            .map(|(plan, kept)| match kept {
                Some(id) => (id, plan),
                None => (self.watch(&plan), plan),
            })
            .collect();
        changes.kept = kept_ids.len();
        changes.added = watched.len() - changes.kept;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) =
            Arc::new(Current::new(watched, probe));
        changes
    }

    fn watch(&self, plan: &TargetPlan) -> WatchId {
        let id = self.monitor.watch(plan.watch.clone());
        if let Some(status) = self.monitor.status(id) {
            let labels = TargetLabels::new(&plan.watch.name, plan.group.as_deref(), &plan.labels);
            self.metrics.add_target(&status, labels);
        }
        id
    }
}

/// The monitor's observer: every check goes to the metrics and the history, every transition
/// to the metrics and the log.
struct Recorder {
    metrics: Arc<Metrics>,
    history: Arc<History>,
    log: Log,
}

impl Observe for Recorder {
    fn checked(&mut self, event: &CheckEvent<'_>) {
        self.metrics.record_check(event);
        self.history.record(event);
        self.log.checked(event);
    }

    fn changed(&mut self, transition: &Transition) {
        self.metrics.record_transition(transition);
        self.log.changed(transition);
    }
}
