//! Where targets come from and how they are written: arguments, -a, files, stdin, port lists and
//! ranges, address families, every address of a name, source address and interface.

use crate::common::{
    BoundSocket, Reaped, TempFile, assert_contains, assert_field, check_line, consecutive_ports,
    json_lines, listener, open_and_closed, run_checker, stderr, stdout, tcp_checker,
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
    assert_contains(&text, "Finished 3/3 checks in ");
    assert_contains(&text, "  Succeed: 1\n");
    assert!(!ports[1].has_pending_connection(), "a check was accepted");
}

#[test]
fn port_lists_mix_ports_and_ranges_and_repeat_nothing() {
    let ports = consecutive_ports(4);
    ports[0].listen();
    let p: Vec<u16> = ports.iter().map(BoundSocket::port).collect();
    let spec = format!("127.0.0.1:{},{}-{},{},{}", p[0], p[1], p[2], p[3], p[0]);
    let output = run_checker(["--json", &spec]);
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
    let output = run_checker([&open, "-a", &open]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert_eq!(text.lines().count(), 1, "one check, no summary: {text}");
}

#[test]
fn a_file_of_targets_skips_comments_and_blank_lines_and_names_bad_lines() {
    let (_open_listener, open, closed) = open_and_closed();
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
    assert_contains(
        &errors,
        &format!(
            "tcp-checker: {}:5: \"not a target\": ",
            file.path().display()
        ),
    );
    assert_eq!(errors.lines().count(), 1, "{errors}");
    assert_eq!(check_line(&text, &open.to_string())[1], "open");
    assert_eq!(check_line(&text, &closed.address.to_string())[1], "closed");
    assert_contains(&text, "Finished 2/2 checks");
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
    assert_contains(
        &stderr(&output),
        "<stdin>:4: \"localhost\": the port is missing",
    );
}

#[test]
fn an_unreadable_file_stops_before_any_check() {
    let (_listener, open) = listener();
    let output = run_checker([&open.to_string(), "-f", "/nonexistent/targets.txt"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout(&output).is_empty());
    assert_contains(
        &stderr(&output),
        "could not open the targets file /nonexistent/targets.txt",
    );
}

#[test]
fn bad_arguments_are_reported_and_the_good_ones_still_run() {
    let (_listener, open) = listener();
    let output = run_checker(["db", &open.to_string(), "-a", "::1:80", "-a", "h:90-80"]);
    let errors = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{errors}");
    assert_contains(&errors, "tcp-checker: argument \"db\": the port is missing");
    assert_contains(
        &errors,
        "argument \"::1:80\": an IPv6 address needs brackets",
    );
    assert_contains(
        &errors,
        "argument \"h:90-80\": the port range 90-80 goes backwards",
    );
    assert_eq!(check_line(&stdout(&output), &open.to_string())[1], "open");
}

#[test]
fn only_invalid_targets_run_nothing() {
    let output = run_checker(["--json", "nope:0"]);
    assert_eq!(output.status.code(), Some(2));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["type"], "invalid_target");
    assert_eq!(lines[1]["type"], "summary");
    assert_eq!(
        (
            lines[1]["checks"].as_u64(),
            lines[1]["invalid_targets"].as_u64()
        ),
        (Some(0), Some(1))
    );
    assert_contains(
        &stderr(&output),
        "no targets to check: every target given was invalid",
    );
}

#[test]
fn families_narrow_names_and_refuse_addresses_of_the_other() {
    let (_listener, open) = listener();
    let port = open.port();
    let v4 = run_checker(["-4", &format!("localhost:{port}")]);
    assert_eq!(v4.status.code(), Some(0), "{}", stdout(&v4));
    assert!(stdout(&v4).contains(&format!("127.0.0.1:{port}")));

    // /etc/hosts gives localhost no IPv6 address here.
    let v6 = run_checker(["-6", "--json", &format!("localhost:{port}")]);
    assert_eq!(v6.status.code(), Some(1));
    let check = &json_lines(&v6)[0];
    assert_eq!(check["outcome"], "error");
    assert_eq!(check["error_kind"], "resolve");

    let mixed = run_checker(["-6", &open.to_string()]);
    assert_eq!(mixed.status.code(), Some(2));
    assert!(stderr(&mixed).contains("the host is an IPv4 address, and -6 asks for IPv6 only"));

    let v6_listener = std::net::TcpListener::bind("[::1]:0").unwrap();
    let v6_open = v6_listener.local_addr().unwrap().to_string();
    let output = run_checker(["-6", &v6_open]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).starts_with(&format!("{v6_open}  open")));
}

#[test]
fn every_address_of_a_name_is_its_own_line_and_statistics() {
    let (_listener, open) = listener();
    let target = format!("localhost:{}", open.port());
    let output = run_checker(["--all-addresses", "--json", "-n", "2", &target]);
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

    let human = run_checker(["--all-addresses", "-n", "2", &target]);
    let text = stdout(&human);
    assert_contains(&text, &format!("--- {target} at {open} statistics ---"));
}

#[test]
fn a_source_address_not_on_this_machine_is_refused_before_anything_is_read() {
    let (_listener, open) = listener();
    // Documentation addresses (TEST-NET-1, 2001:db8::/32) are not this host's.
    for source in ["192.0.2.1", "2001:db8::1"] {
        let output = tcp_checker()
            .args(["--json", "--source", source, &open.to_string()])
            .args(["-f", "/nonexistent/targets.txt"])
            .output()
            .unwrap();
        let errors = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{errors}");
        assert!(output.stdout.is_empty(), "{}", stdout(&output));
        assert_contains(
            &errors,
            &format!("--source {source} is not an address of this machine"),
        );
        assert!(
            !errors.contains("targets file"),
            "the file was not read: {errors}"
        );
    }
}

#[test]
fn source_address_and_interface_bind_the_checks() {
    let (_listener, open) = listener();
    let open = open.to_string();
    let output = run_checker(["--source", "127.0.0.1", "--interface", "lo", &open]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));

    let v6_listener = std::net::TcpListener::bind("[::1]:0").unwrap();
    let v6_open = v6_listener.local_addr().unwrap().to_string();
    let output = run_checker(["--source", "::1", "--interface", "lo", &v6_open]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));

    let output = run_checker(["--interface", "nosuch0", &open]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no network interface is named \"nosuch0\""));

    let output = run_checker(["--source", "127.0.0.1", "--source", "127.0.0.2", &open]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("at most one --source address per address family"));
}

#[test]
fn standard_input_is_checked_as_it_is_written() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    let (_listener, open) = listener();
    let child = Command::new(env!("CARGO_BIN_EXE_tcp-checker"))
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reaped(child);
    let mut input = child.0.stdin.take().unwrap();
    let output = child.0.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    writeln!(input, "{open}").unwrap();
    input.flush().unwrap();
    let first = received
        .recv_timeout(Duration::from_secs(20))
        .expect("a line of output while standard input is still open");
    assert!(first.starts_with(&format!("{open}  open ")), "{first}");
    drop(input);
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn an_empty_target_list_says_so_and_exits_with_2() {
    let empty = TempFile::new("empty.txt", "");
    let comments = TempFile::new("comments.txt", "# nothing\n\n   # to check\n");
    let paths = [
        empty.path(),
        comments.path(),
        std::path::Path::new("/dev/null"),
    ];
    for path in paths {
        let output = tcp_checker().arg("-f").arg(path).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", path.display());
        assert!(output.stdout.is_empty(), "{}", stdout(&output));
        assert!(
            stderr(&output).contains("tcp-checker: no targets to check: "),
            "{}: {}",
            path.display(),
            stderr(&output)
        );
    }
    let output = tcp_checker()
        .args(["-f", "-"])
        .write_stdin("")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_contains(&stderr(&output), "no targets to check");

    let output = run_checker(["--json", "-f", "/dev/null"]);
    assert_eq!(output.status.code(), Some(2));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let summary = &lines[0];
    assert_eq!(summary["type"], "summary");
    assert_eq!(
        (summary["checks"].as_u64(), summary["planned"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(summary["interrupted"], false);
}

#[test]
fn huge_bad_input_is_echoed_in_part() {
    let (_listener, open) = listener();
    let huge_line = "x".repeat(10 << 20);
    let long_line = format!("db:{}", "7".repeat(200_000));
    let file = TempFile::new("huge.txt", &format!("{huge_line}\n{long_line}\n{open}\n"));
    let long_argument = format!("db:1,{}", "8".repeat(100_000));
    let output = tcp_checker()
        .arg("-f")
        .arg(file.path())
        .arg(&long_argument)
        .output()
        .unwrap();
    let errors = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{errors:.500}");
    assert_eq!(check_line(&stdout(&output), &open.to_string())[1], "open");
    assert_eq!(errors.lines().count(), 3, "{errors:.1000}");
    for line in errors.lines() {
        assert!(line.chars().count() < 400, "{line:.500}...");
        assert_contains(line, "…");
    }
    assert!(errors.contains(":1: \"xxxx"), "{errors:.1000}");

    let output = tcp_checker()
        .args(["--json", "-f"])
        .arg(file.path())
        .output()
        .unwrap();
    let lines = json_lines(&output);
    let refused: Vec<_> = lines
        .iter()
        .filter(|line| line["type"] == "invalid_target")
        .collect();
    assert_eq!(refused.len(), 2, "{:.1000}", stdout(&output));
    for invalid in refused {
        let input = invalid["input"].as_str().unwrap();
        assert_eq!(input.chars().count(), 101, "{input}");
        assert!(input.ends_with('…'), "{input}");
        assert!(invalid["error"].as_str().unwrap().len() < 300, "{invalid}");
    }
}

#[test]
fn a_file_that_cannot_be_read_to_its_end_is_an_error_and_the_rest_still_runs() {
    let (_listener, open) = listener();
    // Reading a process's own memory at offset 0 fails with EIO, once the file is open.
    let output = run_checker(["--json", "-f", "/proc/self/mem", &open.to_string()]);
    assert_eq!(output.status.code(), Some(2));
    assert_contains(
        &stderr(&output),
        "could not read the targets file /proc/self/mem: ",
    );
    let lines = json_lines(&output);
    assert_eq!(lines[0]["outcome"], "open", "{lines:?}");
    assert_eq!(lines.last().unwrap()["type"], "summary");

    let output = run_checker(["-f", "/proc/self/mem", &open.to_string()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("could not read the targets file /proc/self/mem: "),
        "text output reads regular files ahead: {}",
        stderr(&output)
    );

    let directory = std::env::temp_dir();
    let output = tcp_checker().arg("-f").arg(&directory).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_contains(&stderr(&output), "is a directory");
}
