//! The service's plan: the config file and the flags, turned into the targets to watch (each
//! with its name, labels and policy), the probe settings, and where to listen.
//!
//! A flag overrides the config file's `[defaults]` and top-level settings; a setting of a
//! target in the file overrides both. Targets given as arguments take the defaults. On SIGHUP
//! the plan is made again, from the file as it is then and the same flags.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use anyhow::{Context, bail};
use tcp_shaker::health::Watch;
use tcp_shaker::{CheckerBuilder, Family};

use super::allow::{AllowRule, Allowlist};
use super::config::{self, Knobs, ServeConfig};
use super::log::LogFormat;
use super::probe::ProbeSettings;
use super::shard::Shard;
use crate::args::ServeArgs;
use crate::binding;
use crate::target_files::{Line, TargetFile};
use crate::targets::parse_spec;

/// Where the service listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9476";

/// One target of the service, as planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetPlan {
    /// The watch: its name, target and policy.
    pub watch: Watch,
    /// The group of targets it was configured in, if it has a name.
    pub group: Option<String>,
    /// Its configured labels, in name order.
    pub labels: Vec<(String, String)>,
    /// The target as written (`host:port`).
    pub written: String,
}

/// Everything the service does, decided from its flags and config file.
#[derive(Debug)]
pub struct ServePlan {
    /// The HTTP address.
    pub listen: SocketAddr,
    /// How the log is written.
    pub log: LogFormat,
    /// A builder of the checker, with the source addresses and interface.
    pub checker: CheckerBuilder,
    /// The targets this instance watches (its shard's share).
    pub targets: Vec<TargetPlan>,
    /// Targets configured, before sharding.
    pub configured: usize,
    /// How `/probe` is configured.
    pub probe: ProbeSettings,
}

impl ServePlan {
    /// The plan of `args`, reading the config file and the target files they name.
    pub fn new(args: &ServeArgs) -> anyhow::Result<ServePlan> {
        let file = match &args.service.config {
            Some(path) => config::load(path).map_err(|error| anyhow::anyhow!("{error}"))?,
            None => ServeConfig::default(),
        };
        let flags = flag_knobs(args);
        let defaults = flags.over(&file.defaults);
        let family = defaults.family.unwrap_or_default();
        let mut targets = Vec::new();
        for spec in args.targets.specs.iter().chain(&args.targets.address) {
            let spec = parse_spec(spec, family)
                .map_err(|reason| anyhow::anyhow!("invalid target {spec:?}: {reason}"))?;
            targets.extend(
                spec.into_targets()
                    .map(|target| (target, None, defaults.clone(), None)),
            );
        }
        for path in &args.targets.files {
            let mut lines = TargetFile::open(path)?.lines(family);
            while let Some(line) = lines.next() {
                match line.with_context(|| format!("cannot read {}", path.display()))? {
                    Line::Spec(spec) => targets.extend(
                        spec.into_targets()
                            .map(|target| (target, None, defaults.clone(), None)),
                    ),
                    Line::Invalid(invalid) => bail!("{invalid}"),
                }
            }
        }
        for entry in file.targets {
            let knobs = entry.knobs.over(&defaults);
            for named in entry.targets {
                targets.push((named.target, named.group, knobs.clone(), Some(named.name)));
            }
        }
        let configured = targets.len();
        let shard = match &args.service.shard {
            Some(text) => Some(
                text.parse::<Shard>()
                    .map_err(|e| anyhow::anyhow!("--shard: {e}"))?,
            ),
            None => file.shard,
        };
        let mut names = HashSet::new();
        let mut planned = Vec::new();
        for (target, group, knobs, name) in targets {
            let written = target.to_string();
            let name = name.unwrap_or_else(|| written.clone());
            if !names.insert(name.clone()) {
                bail!(
                    "the target name {name:?} is given twice; give each target once, or name one of them in the config file"
                );
            }
            if shard.is_some_and(|shard| !shard.keeps(&name)) {
                continue;
            }
            let watch = Watch::new(name, target, knobs.policy())
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            let mut labels: Vec<(String, String)> = knobs.labels.into_iter().collect();
            labels.sort();
            planned.push(TargetPlan {
                watch,
                group,
                labels,
                written,
            });
        }
        let sources = if args.targets.source.is_empty() {
            &file.source
        } else {
            &args.targets.source
        };
        let interface = args
            .targets
            .interface
            .as_deref()
            .or(file.interface.as_deref());
        let checker = binding::checker_builder(sources, interface)?;
        Ok(ServePlan {
            listen: match args.service.listen.or(file.listen) {
                Some(listen) => listen,
                None => DEFAULT_LISTEN.parse()?,
            },
            log: args
                .service
                .log_format
                .or(file.log_format)
                .unwrap_or_default(),
            checker,
            targets: planned,
            configured,
            probe: probe_settings(args, file.probe)?,
        })
    }
}

/// The flags that set a knob.
fn flag_knobs(args: &ServeArgs) -> Knobs {
    Knobs {
        interval: args.health.interval,
        fast_interval: args.health.fast_interval,
        down_interval: args.health.down_interval,
        timeout: args.health.timeout,
        rise: args.health.rise,
        fall: args.health.fall,
        initial_state: args.health.initial_state,
        family: match (args.targets.ipv4, args.targets.ipv6) {
            (true, _) => Some(Family::V4),
            (_, true) => Some(Family::V6),
            _ => None,
        },
        labels: Default::default(),
    }
}

/// The allowlist of the file and the flags, its host names resolved, and the modules.
fn probe_settings(args: &ServeArgs, probe: config::ProbeConfig) -> anyhow::Result<ProbeSettings> {
    let mut rules = Vec::new();
    for rule in &probe.allow {
        rules.push(AllowRule::parse(&rule.text).map_err(|reason| {
            anyhow::anyhow!("{}: [probe] allow {:?}: {reason}", rule.position, rule.text)
        })?);
    }
    for text in &args.service.probe_allow {
        rules.push(
            AllowRule::parse(text)
                .map_err(|reason| anyhow::anyhow!("--probe-allow {text:?}: {reason}"))?,
        );
    }
    let mut allowlist = Allowlist::new(rules);
    allowlist
        .resolve_names(|host| {
            Ok((host, 0)
                .to_socket_addrs()?
                .map(|a| a.ip())
                .collect::<Vec<IpAddr>>())
        })
        .map_err(|reason| anyhow::anyhow!("the probe allowlist: {reason}"))?;
    Ok(ProbeSettings {
        allowlist,
        timeout_offset: probe.timeout_offset,
        modules: probe.modules,
    })
}
