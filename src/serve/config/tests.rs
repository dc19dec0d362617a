//! The tests of the configuration file: a whole example, the defaults, naming, and each
//! class of problem placed at its line and column.

use super::*;

/// The example of the module's documentation, whole.
const EXAMPLE: &str = r#"listen = "127.0.0.1:9476"
log_format = "json"
shard = "0/3"
source = ["192.0.2.1"]
interface = "eth0"

[defaults]
interval = "2s"
fast_interval = "1s"
down_interval = "5s"
timeout = "1s"
rise = 2
fall = 3
initial_state = "fully-down"
family = "ipv4"
labels = { env = "prod", team = "ops" }

[[targets]]
addresses = ["db1:5432", "db2:5432,5433", "web:8000-8010"]
name = "db"
labels = { team = "data" }
interval = "1s"

[[targets]]
address = "cache:6379"
name = "cache"

[probe]
allow = ["127.0.0.0/8", "localhost:80,443"]
timeout_offset = "250ms"

[probe.modules.tcp_connect]
timeout = "3s"

[probe.modules.v4_only]
preferred_ip_protocol = "ip4"
ip_protocol_fallback = false
"#;

fn parsed(text: &str) -> ServeConfig {
    parse(text, Path::new("config.toml")).unwrap_or_else(|error| panic!("{error}"))
}

fn refused(text: &str) -> ConfigError {
    match parse(text, Path::new("config.toml")) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(error) => error,
    }
}

fn names(entry: &TargetEntry) -> Vec<(&str, Option<&str>)> {
    let named = entry.targets.iter();
    named
        .map(|t| (t.name.as_str(), t.group.as_deref()))
        .collect()
}

#[test]
fn the_example_parses_to_its_values() {
    let config = parsed(EXAMPLE);
    assert_eq!(config.listen, "127.0.0.1:9476".parse().ok());
    assert_eq!(config.log_format, Some(LogFormat::Json));
    assert_eq!(config.shard, Some(Shard { index: 0, count: 3 }));
    assert_eq!(config.source, ["192.0.2.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(config.interface.as_deref(), Some("eth0"));
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs.iter().map(|&(k, v)| (k.into(), v.into())).collect()
    };
    let defaults = Knobs {
        interval: Some(Duration::from_secs(2)),
        fast_interval: Some(Duration::from_secs(1)),
        down_interval: Some(Duration::from_secs(5)),
        timeout: Some(Duration::from_secs(1)),
        rise: Some(2),
        fall: Some(3),
        initial_state: Some(InitialState::FullyDown),
        family: Some(Family::V4),
        labels: labels(&[("env", "prod"), ("team", "ops")]),
    };
    assert_eq!(config.defaults, defaults);
    let [db, cache] = &config.targets[..] else {
        panic!("{:?}", config.targets);
    };
    // An entry keeps its own knobs; over the defaults, they merge.
    let db_knobs = Knobs {
        interval: Some(Duration::from_secs(1)),
        labels: labels(&[("team", "data")]),
        ..Knobs::default()
    };
    assert_eq!(db.knobs, db_knobs);
    let merged = Knobs {
        interval: Some(Duration::from_secs(1)),
        labels: labels(&[("env", "prod"), ("team", "data")]),
        ..defaults.clone()
    };
    assert_eq!(db.knobs.over(&config.defaults), merged);
    assert_eq!(db.targets.len(), 1 + 2 + 11);
    assert_eq!(
        names(db)[..3],
        [
            ("db1:5432", Some("db")),
            ("db2:5432", Some("db")),
            ("db2:5433", Some("db"))
        ]
    );
    let last = &db.targets[13];
    assert_eq!(
        (last.name.as_str(), last.written.as_str()),
        ("web:8010", "web:8000-8010")
    );
    assert_eq!(last.target, "web:8010".parse::<Target>().unwrap());
    assert_eq!(names(cache), [("cache", None)]);
    assert_eq!(cache.targets[0].written, "cache:6379");
    assert_eq!(cache.knobs.over(&config.defaults), defaults);
    let rules: Vec<_> = config
        .probe
        .allow
        .iter()
        .map(|rule| (rule.text.as_str(), rule.position.to_string()))
        .collect();
    assert_eq!(
        rules,
        [
            ("127.0.0.0/8", "config.toml:29:10".to_owned()),
            ("localhost:80,443", "config.toml:29:25".to_owned())
        ]
    );
    assert_eq!(config.probe.timeout_offset, Duration::from_millis(250));
    let modules: Vec<_> = config
        .probe
        .modules
        .iter()
        .map(|(name, module)| (name.as_str(), *module))
        .collect();
    let module = |secs, preferred_ip_protocol, ip_protocol_fallback| ProbeModule {
        timeout: Duration::from_secs(secs),
        preferred_ip_protocol,
        ip_protocol_fallback,
    };
    assert_eq!(
        modules,
        [
            ("tcp_connect", module(3, IpProtocol::V6, true)),
            ("v4_only", module(5, IpProtocol::V4, false))
        ]
    );
}

#[test]
fn no_file_and_an_empty_file_take_the_defaults() {
    let config = ServeConfig::default();
    assert_eq!(parsed(""), config);
    assert_eq!(parsed("# nothing\n[defaults]\n[probe]\n"), config);
    assert_eq!(
        (config.listen, config.shard, config.targets.len()),
        (None, None, 0)
    );
    let modules: Vec<_> = config.probe.modules.into_iter().collect();
    assert_eq!(
        modules,
        [(
            DEFAULT_MODULE.to_owned(),
            ProbeModule {
                timeout: Duration::from_secs(5),
                preferred_ip_protocol: IpProtocol::V6,
                ip_protocol_fallback: true
            }
        )]
    );
    assert_eq!(config.probe.timeout_offset, Duration::from_millis(500));
    assert_eq!(Knobs::default().policy(), Policy::default());
    let two = Duration::from_secs(2);
    let fast = Knobs {
        interval: Some(Duration::from_millis(300)),
        down_interval: Some(two),
        ..Knobs::default()
    }
    .policy();
    assert_eq!(
        (fast.fast_interval, fast.down_interval, fast.timeout),
        (None, Some(two), Duration::from_millis(300))
    );
}

#[test]
fn knobs_over_others_win_where_set_and_merge_labels() {
    let base = parsed("[defaults]\nrise = 5\nfall = 7\nlabels = { a = \"base\", b = \"base\" }\n")
        .defaults;
    let own =
        parsed("[defaults]\nrise = 1\nfamily = \"ipv6\"\nlabels = { b = \"own\", c = \"own\" }\n")
            .defaults;
    let merged = own.over(&base);
    assert_eq!(
        (merged.rise, merged.fall, merged.family),
        (Some(1), Some(7), Some(Family::V6))
    );
    let labels: Vec<_> = merged
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(labels, [("a", "base"), ("b", "own"), ("c", "own")]);
    assert_eq!(Knobs::default().over(&base), base);
}

#[test]
fn an_entry_names_its_one_target_or_its_group() {
    let config = parsed(
        "[[targets]]\naddress = \"a:1\"\n\
             [[targets]]\naddresses = [\"b:1\"]\nname = \"bee\"\n\
             [[targets]]\naddress = \"c:1,2\"\nname = \"sea\"\n\
             [[targets]]\naddresses = [\"d:1\", \"[::1]:2\"]\n",
    );
    let all: Vec<_> = config.targets.iter().map(names).collect();
    assert_eq!(
        all,
        [
            vec![("a:1", None)],
            vec![("bee", None)],
            vec![("c:1", Some("sea")), ("c:2", Some("sea"))],
            vec![("d:1", None), ("[::1]:2", None)]
        ]
    );
}

/// Each problem's position, key and message, as displayed on its line.
#[test]
fn each_problem_is_placed_and_said() {
    for (text, says) in [
        (
            "[defaults]\ninterval = \"0s\"\n",
            "2:12: defaults.interval: \"0s\" is not a duration above zero \
             (write e.g. \"2s\" or \"500ms\")",
        ),
        (
            "[[targets]]\naddress = \"x:1\"\ntimeout = \"2 parsecs\"\n",
            "3:11: targets[0].timeout: \"2 parsecs\" is not a duration: \
             unknown time unit \"parsecs\"",
        ),
        (
            "[defaults]\nfast_interval = 2\n",
            "2:17: defaults.fast_interval: 2 is not a duration (write e.g. \"2s\" or \"500ms\")",
        ),
        (
            "[defaults]\naddress = \"db:5432\"\n",
            "2:11: defaults.address: is a target's own key, not a default \
             (write it in a [[targets]] entry)",
        ),
        (
            "[defaults]\ndown_interval = \"101years\"\n",
            "2:17: defaults.down_interval: \"101years\" is longer than a century",
        ),
        (
            "[probe]\ntimeout_offset = \"-1s\"\n",
            "2:18: probe.timeout_offset: \"-1s\" is not a duration",
        ),
        (
            "[probe.modules.m]\ntimeout = \"x\"\n",
            "2:11: probe.modules.m.timeout: \"x\" is not a duration",
        ),
        (
            "[defaults]\nrise = 0\n",
            "2:8: defaults.rise: 0 is not from 1 to 1000",
        ),
        (
            "[defaults]\nfall = 1001\n",
            "2:8: defaults.fall: 1001 is not from 1 to 1000",
        ),
        (
            "[defaults]\nrise = \"2\"\n",
            "2:8: defaults.rise: \"2\" is not a whole number from 1 to 1000",
        ),
        (
            "[defaults]\nlabels = { ok = \"\", 1b = \"x\" }\n",
            "2:21: defaults.labels: \"1b\" is not a label name: ASCII letters",
        ),
        (
            "[[targets]]\naddress = \"x:1\"\nlabels = { __meta = \"x\" }\n",
            "3:12: targets[0].labels: \"__meta\" is not a label name of a user",
        ),
        (
            "[defaults]\nlabels = { job = \"x\" }\n",
            "2:12: defaults.labels: \"job\" is a label tcp-checker or Prometheus sets itself",
        ),
        (
            "[defaults]\nlabels = { \"a-b\" = \"x\" }\n",
            "2:12: defaults.labels: \"a-b\" is not a label name",
        ),
        (
            "[[targets]]\naddress = \"db\"\n",
            "2:11: targets[0].address: \"db\" is refused: the port is missing",
        ),
        (
            "[[targets]]\naddresses = [\"a:1\", \"b:0\"]\n",
            "2:21: targets[0].addresses[1]: \"b:0\" is refused: ",
        ),
        (
            "[[targets]]\naddresses = [\"a:1\", \"[::1]:2\"]\nfamily = \"ipv4\"\n",
            "2:21: targets[0].addresses[1]: \"[::1]:2\" is refused: \
             the host is an IPv6 address, and family is \"ipv4\"",
        ),
        (
            "[defaults]\nfamily = \"ipv6\"\n[[targets]]\naddress = \"127.0.0.1:80\"\n",
            "4:11: targets[0].address: \"127.0.0.1:80\" is refused: \
             the host is an IPv4 address, and family is \"ipv6\"",
        ),
        (
            "[[targets]]\naddress = \"a:1\"\naddresses = [\"b:1\"]\n",
            "2:11: targets[0].address: \"a:1\" is given with addresses; \
             give either address or addresses",
        ),
        (
            "[[targets]]\naddresses = []\n",
            "2:13: targets[0].addresses: is empty",
        ),
        (
            "\n[[targets]]\nname = \"x\"\n",
            "2:1: targets[0]: has no address; give address = \"host:port\"",
        ),
        (
            "[[targets]]\naddress = \"a:1\"\nname = \"\"\n",
            "3:8: targets[0].name: \"\" is not a name",
        ),
        (
            "shard = \"3/3\"\n",
            "1:9: shard: \"3/3\" is refused: the index 3 is not below the count 3",
        ),
        (
            "shard = \"0/0\"\n",
            "1:9: shard: \"0/0\" is refused: the count is 0",
        ),
        (
            "listen = \"localhost:80\"\n",
            "1:10: listen: \"localhost:80\" is not a socket address",
        ),
        (
            "source = [\"::1\", \"::2\"]\n",
            "1:18: source[1]: \"::2\" is a second address of its family",
        ),
        (
            "source = [\"192.0.2.300\"]\n",
            "1:11: source[0]: \"192.0.2.300\" is not an IP address",
        ),
        (
            "interface = \"\"\n",
            "1:13: interface: \"\" is not an interface name",
        ),
        (
            "log_format = \"xml\"\n",
            "1:14: unknown variant `xml`, expected `text` or `json`",
        ),
        (
            "[defaults]\ninitial_state = \"upp\"\n",
            "2:17: defaults.initial_state: \"upp\" is not a state (write \"fully-up\", \"up\", \"down\" or \"fully-down\")",
        ),
        (
            "[probe.modules.m]\npreferred_ip_protocol = \"ipv4\"\n",
            "2:25: unknown variant `ipv4`, expected `ip4` or `ip6`",
        ),
        ("listen = \n", "1:10: string values must be quoted"),
        ("listen = \"a\"\nlisten = \"b\"\n", "2:1: duplicate key"),
    ] {
        let error = refused(text);
        let first = error
            .problems()
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            first.starts_with(&format!("config.toml:{says}")),
            "{text:?}:\n{error}"
        );
    }
}

#[test]
fn unknown_keys_are_named_with_the_known_ones() {
    for (text, at, key, known) in [
        ("rise = 2\n", "1:1", "rise", "`listen`, `log_format`"),
        (
            "[defaults]\nintervl = \"1s\"\n",
            "2:1",
            "intervl",
            "`interval`, `fast_interval`",
        ),
        (
            "[[targets]]\naddress = \"a:1\"\nnmae = \"x\"\n",
            "3:1",
            "nmae",
            "`interval`, `fast_interval`, `down_interval`, `timeout`, `rise`, `fall`, \
             `initial_state`, `family`, `labels`, `address`, `addresses`, `name`",
        ),
        (
            "[probe]\nallowed = []\n",
            "2:1",
            "allowed",
            "`allow`, `timeout_offset`, `modules`",
        ),
        (
            "[probe.modules.m]\nprober = \"tcp\"\n",
            "2:1",
            "prober",
            "`timeout`, `preferred_ip_protocol`",
        ),
    ] {
        let said = refused(text).to_string();
        let expected = format!("config.toml:{at}: unknown field `{key}`, expected one of {known}");
        assert!(said.starts_with(&expected), "{said}");
    }
}

#[test]
fn target_names_are_unique_and_a_duplicate_names_the_first() {
    let error = refused(
        "[[targets]]\naddress = \"db:1\"\n\n\
         [[targets]]\naddresses = [\"x:1\", \"db:1,2\"]\n\
         [[targets]]\naddress = \"y:1\"\nname = \"x:1\"\n\
         [[targets]]\naddress = \"h:80,80\"\n",
    );
    let said: Vec<String> = error.problems().iter().map(ToString::to_string).collect();
    assert_eq!(
        said,
        [
            "config.toml:5:21: targets[1].addresses[1]: the target name \"db:1\" is taken \
             already, by targets[0].address at config.toml:2:11; target names are unique",
            "config.toml:8:8: targets[2].name: the target name \"x:1\" is taken already, by \
             targets[1].addresses[0] at config.toml:5:14; target names are unique",
            "config.toml:10:11: targets[3].address: gives the target name \"h:80\" twice; target \
             names are unique",
        ]
    );
    let groups = "[[targets]]\naddress = \"a:1,2\"\nname = \"g\"\n\
                  [[targets]]\naddress = \"b:1,2\"\nname = \"g\"\n";
    assert_eq!(parsed(groups).targets.len(), 2, "groups may share a name");
}

#[test]
fn problems_are_shown_with_their_line_and_carets() {
    let error = refused("[defaults]\n\tinterval = \"é0s\"\nrise = 0\n");
    assert_eq!(
        error.to_string(),
        "config.toml:2:13: defaults.interval: \"é0s\" is not a duration: expected number at 0 \
         (write e.g. \"2s\" or \"500ms\")\n  |\n2 | \tinterval = \"é0s\"\n  | \t           ^^^^^\n\
         config.toml:3:8: defaults.rise: 0 is not from 1 to 1000\n  |\n3 | rise = 0\n  |        ^"
    );
    let many: String = (0..25)
        .map(|i| format!("[[targets]]\naddress = \"h{i}\"\n"))
        .collect();
    let error = refused(&many);
    assert_eq!(error.problems().len(), 25);
    assert!(
        error.to_string().ends_with("\n… and 5 more problems"),
        "{error}"
    );
}

#[test]
fn a_file_of_more_than_a_million_targets_is_refused() {
    let text: String = (0..16)
        .map(|i| format!("[[targets]]\naddress = \"h{i}:1-65535\"\n"))
        .collect();
    let said = refused(&text).to_string();
    let expected = "config.toml:32:11: targets[15].address: \"h15:1-65535\" takes the file past \
                    1000000 targets";
    assert!(said.starts_with(expected), "{said}");
}

#[test]
fn load_reads_the_file_or_says_why_not() {
    let path = std::env::temp_dir().join(format!("tcp-checker-config-{}.toml", std::process::id()));
    std::fs::write(&path, "listen = \"[::1]:1\"\n").unwrap();
    let loaded = load(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded.unwrap().listen, "[::1]:1".parse().ok());
    let said = load(&path).unwrap_err();
    assert_eq!(
        said.to_string(),
        format!(
            "{}: cannot read the file: No such file or directory (os error 2)",
            path.display()
        )
    );
}

#[test]
fn the_example_config_file_of_the_repository_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/serve/config.toml");
    let config = load(&path).unwrap_or_else(|error| panic!("{error}"));
    assert!(!config.targets.is_empty());
    assert!(!config.probe.allow.is_empty());
}
