//! Memory follows the checks in flight, not the targets: a single pass streams its targets from
//! arguments and files alike, keeping nothing per target but a bit to check each once; a run
//! that needs statistics per target keeps a few hundred bytes each.

use std::fs::File;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use crate::common::TempFile;

/// The bound, in KiB: the checker's tables and a few thousand checks in flight fit in a few
/// MiB; holding anything per target for 262 140 targets (before: 227 MB) cannot.
const PEAK_LIMIT_KIB: i64 = 40 * 1024;

/// Runs tcp-checker with the arguments `arguments` adds, its output thrown away and its stderr
/// kept in a file named after `name`; returns its exit status, peak memory (KiB) and stderr.
fn run_quietly_measured(
    name: &str,
    arguments: impl FnOnce(&mut Command) -> &mut Command,
) -> (Option<i32>, i64, String) {
    let errors = TempFile::new(&format!("{name}.err"), "");
    let mut command = Command::new(env!("CARGO_BIN_EXE_tcp-checker"));
    arguments(&mut command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(errors.path()).unwrap());
    let (code, peak_kib) = run_measured(&mut command);
    (
        code,
        peak_kib,
        std::fs::read_to_string(errors.path()).unwrap(),
    )
}

/// Runs `command` to its end; returns its exit status and its peak resident memory in KiB.
///
/// The peak is the child's own high-water mark (`VmHWM`), read while it runs: `wait4`'s
/// `ru_maxrss` would not do, since the kernel carries the spawning process's peak into it at
/// `exec`, and this test binary's peak depends on the tests running beside it. `VmHWM` only
/// rises, so the last reading before the exit misses at most the final few milliseconds.
fn run_measured(command: &mut Command) -> (Option<i32>, i64) {
    const POLL: Duration = Duration::from_millis(2);
    let mut child = command.spawn().unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    loop {
        if let Some(high_water) = std::fs::read_to_string(&status_file)
            .ok()
            .as_deref()
            .and_then(high_water_kib)
        {
            peak_kib = peak_kib.max(high_water);
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(peak_kib > 0, "no VmHWM was read from {status_file}");
            return (status.code(), peak_kib);
        }
        thread::sleep(POLL);
    }
}

/// The `VmHWM` of a `/proc/PID/status`, in KiB (absent once the process has exited).
fn high_water_kib(status: &str) -> Option<i64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_single_pass_over_four_hosts_of_every_port_peaks_under_40_mib() {
    // Two hosts as port ranges in arguments, two as a file of one target a line.
    let lines: String = (3..=4)
        .flat_map(|host| (1..=65535).map(move |port| format!("127.0.0.{host}:{port}\n")))
        .collect();
    let file = TempFile::new("four-hosts.txt", &lines);
    let args = [
        "-q",
        "-t",
        "1s",
        "127.0.0.1:1-65535",
        "127.0.0.2:1-65535",
        "-f",
    ];
    let (code, peak_kib, stderr) =
        run_quietly_measured("four-hosts", |command| command.args(args).arg(file.path()));
    assert_eq!(code, Some(1), "closed ports make it 1: {stderr}");
    assert!(
        peak_kib < PEAK_LIMIT_KIB,
        "peak RSS {peak_kib} KiB for 262 140 checks, over {PEAK_LIMIT_KIB} KiB"
    );
}

#[test]
fn a_repeated_run_keeps_a_few_hundred_bytes_per_target() {
    // Statistics need state per target: -n 2 keeps it, a few hundred bytes each.
    const TARGETS: i64 = 2 * 65535;
    const BYTES_PER_TARGET: i64 = 400;
    let args = [
        "-q",
        "-n",
        "2",
        "-t",
        "1s",
        "127.0.0.1:1-65535",
        "127.0.0.2:1-65535",
    ];
    let (code, peak_kib, stderr) = run_quietly_measured("repeated", |command| command.args(args));
    assert_eq!(code, Some(1), "closed ports make it 1: {stderr}");
    let baseline_kib = 16 * 1024;
    let limit_kib = baseline_kib + TARGETS * BYTES_PER_TARGET / 1024;
    assert!(
        peak_kib < limit_kib,
        "peak RSS {peak_kib} KiB for {TARGETS} targets checked twice, over {limit_kib} KiB"
    );
}
