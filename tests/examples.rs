//! The example files under `examples/`: the Prometheus configs and alerting rules pass `promtool`
//! (and the rules pass their unit tests), the Kubernetes manifests pass `kubernetes-validate`
//! against the API's schemas, the TOML configs parse, and what the files repeat of each other
//! (metric names, job names, shard counts, target names) agrees.
//!
//! The tools come from Debian's `prometheus` package and PyPI's `kubernetes-validate`; `.ci/run`
//! installs both. Without them these tests skip, visibly, or fail under `TCP_SHAKER_NO_SKIP=1`.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{TempDir, Tool, test_name};

/// The metrics that `tcp-checker serve` exposes on `/metrics` and `/probe`. An alert on any
/// other name would never fire, so a renamed metric must fail here first.
const METRICS: &[&str] = &[
    "tcp_shaker_target_up",
    "tcp_shaker_target_checks_total",
    "tcp_shaker_target_check_duration_seconds",
    "tcp_shaker_target_transitions_total",
    "tcp_shaker_target_last_change_timestamp_seconds",
    "tcp_shaker_checker_errors_total",
    "tcp_shaker_checks_in_flight",
    "tcp_shaker_schedule_lateness_seconds",
    "tcp_shaker_config_reloads_total",
    "tcp_shaker_config_last_reload_successful",
    "tcp_shaker_build_info",
    "tcp_shaker_targets",
    "probe_success",
    "probe_duration_seconds",
    "probe_dns_lookup_time_seconds",
    "probe_ip_protocol",
    "probe_ip_addr_hash",
];

/// The histograms among [`METRICS`], whose series are named with a suffix.
const HISTOGRAMS: &[&str] = &[
    "tcp_shaker_target_check_duration_seconds",
    "tcp_shaker_schedule_lateness_seconds",
];

/// The Kubernetes version whose schemas the manifests are checked against: one that
/// `kubernetes-validate` 1.37 ships, and the first with the StatefulSet's pod-index label as
/// beta (1.28) plus a margin.
const KUBERNETES_VERSION: &str = "1.30.0";

/// Prometheus's `promtool`.
const PROMTOOL: Tool = Tool {
    command: &["promtool", "--version"],
    install: "apt-get install --no-install-recommends prometheus",
};

/// `kubernetes-validate`.
const KUBERNETES_VALIDATE: Tool = Tool {
    command: &["python3", "-m", "kubernetes_validate", "--version"],
    install: "python3 -m pip install kubernetes-validate",
};

/// The marker on the `modulus:` lines of the sharded Prometheus config.
const SHARDS_MARK: &str = "# PROMETHEUS_SHARDS";

/// The `regex:` line of the sharded Prometheus config's `keep` rules, as committed (server 0).
const SHARD_ZERO: &str = r#"regex: "0" # PROMETHEUS_SHARD"#;

/// The repository's root, where the tools run.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The path of `relative` under `examples/`.
fn example(relative: &str) -> PathBuf {
    root().join("examples").join(relative)
}

/// The text of the example file `relative`.
fn read_example(relative: &str) -> String {
    let path = example(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Runs `program` with `args` in the repository's root; returns its exit status's success and
/// what it printed, stdout then stderr.
fn run_tool<S: AsRef<OsStr>>(program: &str, args: &[S]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|error| panic!("running {program}: {error}"));
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Like [`run_tool`], but fails the test, showing the output, unless the tool succeeds.
fn run_tool_ok<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let (success, text) = run_tool(program, args);
    assert!(success, "{program} failed:\n{text}");
    text
}

/// The leading spaces of `line`.
fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// `line` without a trailing `# comment` and surrounding blanks (YAML: a `#` after a blank).
fn uncommented(line: &str) -> &str {
    let line = line.trim();
    if line.starts_with('#') {
        return "";
    }
    line.split_once(" #")
        .map_or(line, |(value, _)| value)
        .trim()
}

/// Every word of `text` that names a metric of this project or of a probe: a run of metric-name
/// characters starting `tcp_shaker_` or `probe_`.
fn metric_names(text: &str) -> BTreeSet<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("tcp_shaker_") || word.starts_with("probe_"))
        .collect()
}

/// Whether `name` is one of [`METRICS`], or a series of one of [`HISTOGRAMS`].
fn is_known_metric(name: &str) -> bool {
    METRICS.contains(&name)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| HISTOGRAMS.contains(&base))
        })
}

/// The values of every `key: value` line of a YAML text, comments dropped.
fn yaml_values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}: ");
    text.lines()
        .filter_map(|line| {
            uncommented(line)
                .trim_start_matches("- ")
                .strip_prefix(prefix.as_str())
        })
        .collect()
}

/// The TOML documents embedded in a manifest's ConfigMaps: the block under each
/// `config.toml: |` line, its indentation removed.
fn embedded_configs(manifest: &str) -> Vec<String> {
    let mut configs = Vec::new();
    let mut lines = manifest.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() != "config.toml: |" {
            continue;
        }
        let key_indent = indent(line);
        let mut block = Vec::new();
        while let Some(next) =
            lines.next_if(|next| next.trim().is_empty() || indent(next) > key_indent)
        {
            block.push(next);
        }
        let block_indent = block
            .iter()
            .filter(|line| !line.trim().is_empty())
            .map(|line| indent(line))
            .min()
            .unwrap_or(0);
        let config: Vec<&str> = block
            .iter()
            .map(|line| line.get(block_indent..).unwrap_or(""))
            .collect();
        configs.push(config.join("\n"));
    }
    configs
}

/// `text` parsed as TOML, or the test fails naming `what`.
fn parse_toml(what: &str, text: &str) -> toml::Table {
    text.parse::<toml::Table>()
        .unwrap_or_else(|error| panic!("{what} is not valid TOML: {error}\n{text}"))
}

/// The `[[targets]]` of a config, each with its name: `name`, or else each address as written
/// (which is also its `/health/{target}` path).
fn target_names(config: &toml::Table) -> Vec<String> {
    let targets = config
        .get("targets")
        .and_then(toml::Value::as_array)
        .expect("a [[targets]] array");
    let mut names = Vec::new();
    for target in targets {
        let addresses: Vec<&str> = target
            .get("addresses")
            .and_then(toml::Value::as_array)
            .expect("addresses in every target")
            .iter()
            .map(|address| address.as_str().expect("addresses are strings"))
            .collect();
        assert!(!addresses.is_empty(), "a target without addresses");
        match target.get("name").and_then(toml::Value::as_str) {
            Some(name) => names.push(name.to_owned()),
            None => names.extend(addresses.iter().map(|address| (*address).to_owned())),
        }
    }
    names
}

/// A Prometheus config with each `kubernetes_sd_configs:` block replaced by a static target,
/// for a `promtool` built without Kubernetes discovery (Debian's): the rest is still checked.
fn without_kubernetes_sd(config: &str) -> String {
    let mut out = Vec::new();
    let mut lines = config.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() != "kubernetes_sd_configs:" {
            out.push(line.to_owned());
            continue;
        }
        let key_indent = indent(line);
        while lines
            .next_if(|next| next.trim().is_empty() || indent(next) > key_indent)
            .is_some()
        {}
        out.push(format!(
            "{}static_configs: [{{targets: [\"tcp-shaker-0.tcp-shaker.monitoring.svc:9476\"]}}]",
            " ".repeat(key_indent)
        ));
    }
    out.join("\n") + "\n"
}

/// Runs `promtool ARGS` (the test skipped without promtool) and asserts that it succeeds,
/// saying `says`.
fn assert_promtool_says(args: &[&str], says: &str) {
    if PROMTOOL.missing() {
        return;
    }
    let text = run_tool_ok("promtool", args);
    assert!(text.contains(says), "{text}");
}

#[test]
fn prometheus_config_passes_promtool() {
    // The rule file is found and checked along with the config.
    assert_promtool_says(
        &["check", "config", "examples/prometheus/prometheus.yml"],
        "SUCCESS: 1 rule files found",
    );
}

#[test]
fn sharded_prometheus_config_passes_promtool_for_every_shard() {
    if PROMTOOL.missing() {
        return;
    }
    let committed = read_example("prometheus/prometheus-sharded.yml");

    // Every modulus is the same N, and every keep rule is marked for rendering.
    let moduli: BTreeSet<&str> = committed
        .lines()
        .filter(|line| line.trim_end().ends_with(SHARDS_MARK))
        .map(|line| uncommented(line).trim_start_matches("modulus: "))
        .collect();
    let shards: u32 = match moduli.iter().collect::<Vec<_>>()[..] {
        [modulus] => modulus.parse().expect("a numeric modulus"),
        _ => panic!("the hashmod rules disagree on the modulus, or have none: {moduli:?}"),
    };
    assert!(shards >= 2, "a sharded config with {shards} shard(s)");
    let rules: Vec<&str> = committed
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect();
    let count = |part: &str| rules.iter().filter(|line| line.contains(part)).count();
    let hashmods = count("action: hashmod");
    assert!(hashmods >= 2, "hashmod in both jobs");
    assert_eq!(count(SHARDS_MARK), hashmods, "marked moduli");
    assert_eq!(count(SHARD_ZERO), hashmods, "marked keep rules");

    let (success, output) = run_tool(
        "promtool",
        &[
            "check",
            "config",
            "examples/prometheus/prometheus-sharded.yml",
        ],
    );
    let checkable = if success {
        committed
    } else if output.contains("field kubernetes_sd_configs not found") {
        let _ = writeln!(
            std::io::stderr(),
            "NOTE {}: this promtool is built without Kubernetes discovery (Debian's); \
             checking the config with a static target in place of kubernetes_sd_configs",
            test_name()
        );
        without_kubernetes_sd(&committed)
    } else {
        panic!("promtool failed:\n{output}");
    };

    // Each server's copy, rendered as the file's header says, is a valid config.
    let dir = TempDir::new("prometheus-sharded");
    std::fs::copy(
        example("prometheus/alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .expect("copying alerts.yml");
    for shard in 0..shards {
        let rendered = checkable.replace(
            SHARD_ZERO,
            &format!(r#"regex: "{shard}" # PROMETHEUS_SHARD"#),
        );
        let path = dir.path().join(format!("prometheus-{shard}.yml"));
        std::fs::write(&path, rendered).expect("writing a rendered config");
        let text = run_tool_ok(
            "promtool",
            &[OsStr::new("check"), "config".as_ref(), path.as_ref()],
        );
        assert!(text.contains("SUCCESS: 1 rule files found"), "{text}");
    }
}

#[test]
fn alert_rules_pass_promtool() {
    assert_promtool_says(
        &["check", "rules", "examples/prometheus/alerts.yml"],
        "SUCCESS: 4 rules found",
    );
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    assert_promtool_says(
        &["test", "rules", "examples/prometheus/alerts_test.yml"],
        "SUCCESS",
    );
}

#[test]
fn every_alert_is_tested_firing_and_silent() {
    let rules = read_example("prometheus/alerts.yml");
    let tests = read_example("prometheus/alerts_test.yml");
    let alerts: BTreeSet<&str> = yaml_values(&rules, "alert").into_iter().collect();
    assert_eq!(alerts.len(), 4, "{alerts:?}");

    let lines: Vec<&str> = tests
        .lines()
        .map(uncommented)
        .filter(|line| !line.is_empty())
        .collect();
    let (mut firing, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for pair in lines.windows(2) {
        let Some(alert) = pair[0].strip_prefix("alertname: ") else {
            continue;
        };
        match pair[1] {
            "exp_alerts: []" => silent.insert(alert),
            "exp_alerts:" => firing.insert(alert),
            other => panic!("alertname {alert} followed by {other:?}"),
        };
    }
    assert_eq!(firing, alerts, "alerts with a test where they fire");
    assert_eq!(
        silent, alerts,
        "alerts with a test where they must not fire"
    );
}

#[test]
fn alerts_use_only_the_services_metric_names() {
    for file in ["prometheus/alerts.yml", "prometheus/alerts_test.yml"] {
        let text = read_example(file);
        let names = metric_names(&text);
        assert!(names.contains("tcp_shaker_target_up"), "{file}: {names:?}");
        let unknown: Vec<&&str> = names.iter().filter(|name| !is_known_metric(name)).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses unknown metrics {unknown:?}"
        );
    }
}

#[test]
fn alerts_select_jobs_that_the_prometheus_configs_define() {
    let rules = read_example("prometheus/alerts.yml");
    let jobs: BTreeSet<&str> = yaml_values(&rules, "expr")
        .into_iter()
        .flat_map(|expr| expr.split("job=\"").skip(1))
        .filter_map(|rest| rest.split_once('"').map(|(job, _)| job))
        .collect();
    assert_eq!(
        jobs,
        BTreeSet::from(["tcp-shaker", "tcp-shaker-probe"]),
        "jobs in alerts.yml"
    );
    for file in [
        "prometheus/prometheus.yml",
        "prometheus/prometheus-sharded.yml",
    ] {
        let config = read_example(file);
        let defined: BTreeSet<&str> = yaml_values(&config, "job_name").into_iter().collect();
        assert!(defined.is_superset(&jobs), "{file} defines {defined:?}");
    }
}

#[test]
fn serve_config_uses_every_section() {
    let config = parse_toml("serve/config.toml", &read_example("serve/config.toml"));
    for key in ["listen", "shard", "defaults", "targets", "probe"] {
        assert!(config.contains_key(key), "no {key} in serve/config.toml");
    }
    let defaults = config["defaults"].as_table().expect("a [defaults] table");
    for knob in [
        "interval",
        "fast_interval",
        "down_interval",
        "timeout",
        "rise",
        "fall",
        "initial_state",
        "family",
        "labels",
    ] {
        assert!(defaults.contains_key(knob), "no {knob} in [defaults]");
    }
    assert!(target_names(&config).len() >= 2);
    let probe = config["probe"].as_table().expect("a [probe] table");
    let allow = probe["allow"].as_array().expect("a probe allow list");
    assert!(!allow.is_empty());
    let module = probe
        .get("modules")
        .and_then(|modules| modules.get("tcp_connect"))
        .expect("[probe.modules.tcp_connect]");
    assert!(module.get("timeout").is_some());
}

/// The manifests under `examples/kubernetes`, sorted.
fn manifests() -> Vec<PathBuf> {
    let dir = example("kubernetes");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    let names: Vec<_> = paths.iter().filter_map(|path| path.file_name()).collect();
    assert_eq!(names, ["sidecar.yaml", "statefulset.yaml"]);
    paths
}

#[test]
fn kubernetes_manifests_pass_kubernetes_validate() {
    if KUBERNETES_VALIDATE.missing() {
        return;
    }
    for path in manifests() {
        let args = [
            OsStr::new("-m"),
            "kubernetes_validate".as_ref(),
            "--kubernetes-version".as_ref(),
            KUBERNETES_VERSION.as_ref(),
            "--strict".as_ref(),
            path.as_ref(),
        ];
        let text = run_tool_ok("python3", &args);
        // Every resource is checked and passes: an empty or unparsed document would pass
        // silently otherwise.
        let manifest = std::fs::read_to_string(&path).expect("reading a manifest");
        let resources = manifest
            .lines()
            .filter(|line| line.starts_with("kind: "))
            .count();
        assert!(resources > 0, "{}: no resources", path.display());
        assert_eq!(
            text.matches(" passed for resource ").count(),
            resources,
            "{text}"
        );
        assert!(!text.contains("WARN") && !text.contains("ERROR"), "{text}");
    }
}

#[test]
fn kubernetes_configs_are_valid_toml_listening_beyond_loopback() {
    for path in manifests() {
        let manifest = std::fs::read_to_string(&path).expect("reading a manifest");
        let configs = embedded_configs(&manifest);
        assert_eq!(configs.len(), 1, "{}: config.toml blocks", path.display());
        let config = parse_toml(&path.display().to_string(), &configs[0]);
        // Prometheus and the kubelet reach a pod at its IP, never at its loopback.
        let listen = config.get("listen").and_then(toml::Value::as_str);
        assert_eq!(listen, Some("0.0.0.0:9476"), "{}", path.display());
        assert!(!target_names(&config).is_empty());
    }
}

#[test]
fn statefulset_replicas_match_its_shard_count() {
    let manifest = read_example("kubernetes/statefulset.yaml");
    let replicas = yaml_values(&manifest, "replicas");
    assert_eq!(replicas.len(), 1, "{replicas:?}");
    let shards: Vec<&str> = manifest
        .lines()
        .filter_map(|line| uncommented(line).strip_prefix("- $(POD_INDEX)/"))
        .collect();
    assert_eq!(shards, replicas, "--shard $(POD_INDEX)/N against replicas");
    assert!(manifest.contains("fieldPath: metadata.labels['apps.kubernetes.io/pod-index']"));
    // Liveness never on /health: the service is alive while the targets it reports are down.
    assert!(!manifest.contains("path: /health"));
}

#[test]
fn sidecar_readiness_asks_for_the_target_the_sidecar_checks() {
    let manifest = read_example("kubernetes/sidecar.yaml");
    let configs = embedded_configs(&manifest);
    let config = parse_toml("the sidecar's config", &configs[0]);
    let paths: Vec<&str> = yaml_values(&manifest, "path")
        .into_iter()
        .filter_map(|path| path.strip_prefix("/health/"))
        .collect();
    assert_eq!(paths, ["127.0.0.1:5432"], "readiness paths");
    assert_eq!(target_names(&config), paths);
    // The probe's port, the line after its path, is the one the sidecar listens on.
    let after_path = manifest
        .split_once("path: /health/")
        .map(|(_, rest)| rest)
        .expect("a /health path");
    let probe_port = yaml_values(after_path, "port").first().copied();
    let listen_port = config["listen"]
        .as_str()
        .and_then(|listen| listen.rsplit_once(':'))
        .map(|(_, port)| port);
    assert_eq!(probe_port, listen_port);
    assert_eq!(probe_port, Some("9476"));
}
