//! Where targets come from and how they are written: arguments, -a, files, stdin, port lists and
//! ranges, address families, every address of a name, source address and interface.

mod common;

use common::{
    BoundSocket, TempFile, assert_field, check_line, consecutive_ports, json_lines, listener,
    stderr, stdout, tcp_checker,
};

#[test]
fn a_port_range_checks_every_port_in_it() {
    let ports = consecutive_ports(3);
    ports[1].listen();
    let (first, open, last) = (ports[0].port(), ports[1].port(), ports[2].port());
    let output = tcp_checker()
        .arg(format!("127.0.0.1:{first}-{last}"))
        .output()
        .unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    for port in [first, open, last] {
        let outcome = if port == open { "open" } else { "closed" };
        assert_eq!(check_line(&text, &format!("127.0.0.1:{port}"))[1], outcome);
    }
    assert!(text.contains("Finished 3/3 checks in "), "{text}");
    assert!(text.contains("  Succeed: 1\n"), "{text}");
    assert!(!ports[1].has_pending_connection(), "a check was accepted");
}

#[test]
fn port_lists_mix_ports_and_ranges_and_repeat_nothing() {
    let ports = consecutive_ports(4);
    ports[0].listen();
    let p: Vec<u16> = ports.iter().map(BoundSocket::port).collect();
    let spec = format!("127.0.0.1:{},{}-{},{},{}", p[0], p[1], p[2], p[3], p[0]);
    let output = tcp_checker().args(["--json", &spec]).output().unwrap();
    let lines = json_lines(&output);
    let mut checked: Vec<u64> = lines
        .iter()
        .filter(|line| line["type"] == "check")
        .map(|line| {
            let address = line["target"].as_str().unwrap();
            address.rsplit_once(':').unwrap().1.parse().unwrap()
        })
        .collect();
    checked.sort_unstable();
    assert_eq!(
        checked,
        p.iter().map(|&port| u64::from(port)).collect::<Vec<_>>()
    );
    assert_eq!(output.status.code(), Some(1));

    let open = format!("127.0.0.1:{},{}", p[0], p[0]);
    let output = tcp_checker().args([&open, "-a", &open]).output().unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert_eq!(text.lines().count(), 1, "one check, no summary: {text}");
}

#[test]
fn a_file_of_targets_skips_comments_and_blank_lines_and_names_bad_lines() {
    let (_open_listener, open) = listener();
    let closed = BoundSocket::bind(0).unwrap();
    let file = TempFile::new(
        "targets.txt",
        &format!(
            "# services to check\n\n{open}   # the database\n  127.0.0.1:{}\nnot a target\n\n#{open}\n",
            closed.port()
        ),
    );
    let output = tcp_checker().arg("-f").arg(file.path()).output().unwrap();
    let text = stdout(&output);
    let errors = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}{errors}");
    assert!(
        errors.contains(&format!(
            "tcp-checker: {}:5: \"not a target\": ",
            file.path().display()
        )),
        "{errors}"
    );
    assert_eq!(errors.lines().count(), 1, "{errors}");
    assert_eq!(check_line(&text, &open.to_string())[1], "open");
    assert_eq!(check_line(&text, &closed.address.to_string())[1], "closed");
    assert!(text.contains("Finished 2/2 checks"), "{text}");
}

#[test]
fn targets_can_come_from_standard_input() {
    let (_listener, open) = listener();
    let output = tcp_checker()
        .args(["-f", "-"])
        .write_stdin(format!("# from a pipe\n{open}\n\nlocalhost\n"))
        .output()
        .unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert_eq!(check_line(&text, &open.to_string())[1], "open");
    assert!(
        stderr(&output).contains("<stdin>:4: \"localhost\": the port is missing"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_unreadable_file_stops_before_any_check() {
    let (_listener, open) = listener();
    let output = tcp_checker()
        .args([&open.to_string(), "-f", "/nonexistent/targets.txt"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout(&output).is_empty());
    assert!(
        stderr(&output).contains("could not open the targets file /nonexistent/targets.txt"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_arguments_are_reported_and_the_good_ones_still_run() {
    let (_listener, open) = listener();
    let output = tcp_checker()
        .args(["db", &open.to_string(), "-a", "::1:80", "-a", "h:90-80"])
        .output()
        .unwrap();
    let errors = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{errors}");
    assert!(
        errors.contains("tcp-checker: argument \"db\": the port is missing"),
        "{errors}"
    );
    assert!(
        errors.contains("argument \"::1:80\": an IPv6 address needs brackets"),
        "{errors}"
    );
    assert!(
        errors.contains("argument \"h:90-80\": the port range 90-80 goes backwards"),
        "{errors}"
    );
    assert_eq!(check_line(&stdout(&output), &open.to_string())[1], "open");
}

#[test]
fn only_invalid_targets_run_nothing() {
    let output = tcp_checker().args(["--json", "nope:0"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["type"], "invalid_target");
}

#[test]
fn families_narrow_names_and_refuse_addresses_of_the_other() {
    let (_listener, open) = listener();
    let port = open.port();
    let v4 = tcp_checker()
        .args(["-4", &format!("localhost:{port}")])
        .output()
        .unwrap();
    assert_eq!(v4.status.code(), Some(0), "{}", stdout(&v4));
    assert!(stdout(&v4).contains(&format!("127.0.0.1:{port}")));

    // /etc/hosts gives localhost no IPv6 address here.
    let v6 = tcp_checker()
        .args(["-6", "--json", &format!("localhost:{port}")])
        .output()
        .unwrap();
    assert_eq!(v6.status.code(), Some(1));
    let check = &json_lines(&v6)[0];
    assert_eq!(check["outcome"], "error");
    assert_eq!(check["error_kind"], "resolve");

    let mixed = tcp_checker()
        .args(["-6", &open.to_string()])
        .output()
        .unwrap();
    assert_eq!(mixed.status.code(), Some(2));
    assert!(stderr(&mixed).contains("the host is an IPv4 address, and -6 asks for IPv6 only"));

    let v6_listener = std::net::TcpListener::bind("[::1]:0").unwrap();
    let v6_open = v6_listener.local_addr().unwrap().to_string();
    let output = tcp_checker().args(["-6", &v6_open]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).starts_with(&format!("{v6_open}  open")));
}

#[test]
fn every_address_of_a_name_is_its_own_line_and_statistics() {
    let (_listener, open) = listener();
    let target = format!("localhost:{}", open.port());
    let output = tcp_checker()
        .args(["--all-addresses", "--json", "-n", "2", &target])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let lines = json_lines(&output);
    let checks: Vec<_> = lines
        .iter()
        .filter(|line| line["type"] == "check")
        .collect();
    assert_eq!(checks.len(), 2);
    for (seq, check) in checks.iter().enumerate() {
        assert_eq!(check["address"], open.to_string());
        assert_eq!(check["seq"], seq as u64 + 1);
    }
    let summary = lines.last().unwrap();
    let targets = summary["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["target"], target);
    assert_eq!(targets[0]["address"], open.to_string());
    assert_field(&targets[0], "sent", "integer");

    let human = tcp_checker()
        .args(["--all-addresses", "-n", "2", &target])
        .output()
        .unwrap();
    let text = stdout(&human);
    assert!(
        text.contains(&format!("--- {target} at {open} statistics ---")),
        "{text}"
    );
}

#[test]
fn source_address_and_interface_bind_the_checks() {
    let (_listener, open) = listener();
    let open = open.to_string();
    let output = tcp_checker()
        .args(["--source", "127.0.0.1", "--interface", "lo", &open])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));

    // A documentation address (TEST-NET-1) is not this host's: bind fails, nothing is sent.
    let output = tcp_checker()
        .args(["--json", "--source", "192.0.2.1", &open])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(json_lines(&output)[0]["error_kind"], "no_local_address");

    let output = tcp_checker()
        .args(["--interface", "nosuch0", &open])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no network interface is named \"nosuch0\""));

    let output = tcp_checker()
        .args(["--source", "127.0.0.1", "--source", "127.0.0.2", &open])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("at most one --source address per address family"));
}
