//! What `--help` and the manual page say beyond the flags, written once for both: examples, exit
//! statuses, the environment, and the objects of the JSON output.

/// Commands and what each does.
pub const EXAMPLES: &[(&str, &str)] = &[
    ("tcp-checker db:5432", "check once"),
    (
        "tcp-checker -n 0 db:5432 cache:6379",
        "every second until Ctrl-C, then statistics",
    ),
    (
        "tcp-checker --open 127.0.0.1:1-1024",
        "which local ports are open",
    ),
    (
        "tcp-checker -f hosts.txt --json",
        "one JSON object per check, then a summary",
    ),
    (
        "tcp-checker --wait 30s db:5432 -- ./start.sh",
        "wait until the database is open, then run start.sh",
    ),
    (
        "tcp-checker bench",
        "measure the checker against its own listener",
    ),
    (
        "tcp-checker -a 127.0.0.1:22 -n 1000 -c 100",
        "the original's flags",
    ),
];

/// Exit statuses and their meaning.
pub const EXIT_STATUSES: &[(&str, &str)] = &[
    (
        "0",
        "every check found its port open (with --wait: every target became open)",
    ),
    (
        "1",
        "at least one check did not (with --wait: the time ran out, or Ctrl-C)",
    ),
    (
        "2",
        "usage or system error: bad flags, an unreadable file, invalid targets (the valid ones \
         still run), no targets at all, a --source address not on this machine, an interface \
         that does not exist, the checker could not start or could not start a check in time \
         (error kinds not_started and stopped)",
    ),
];

/// What else decides the exit status.
pub const EXIT_NOTES: &[&str] = &[
    "Ctrl-C, SIGTERM and SIGHUP end a run early as if it were done: the checks in flight are \
     reported as interrupted, statistics are printed, and the status is that of the checks \
     that finished.",
    "With --wait and a command, the command replaces tcp-checker and its status is the \
     command's (126 or 127 if it could not be started).",
];

/// Environment variables and what they do.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "NO_COLOR",
        "if set and not empty, outcomes are never coloured (otherwise they are on a terminal)",
    ),
    (
        "CLICOLOR_FORCE",
        "if set and not 0, outcomes are coloured even when standard output is not a terminal",
    ),
    (
        "CLICOLOR",
        "if 0, outcomes are not coloured (NO_COLOR and CLICOLOR_FORCE come first)",
    ),
];

/// The objects of `--json` output, by their `"type"`, and their fields.
pub const JSON_OBJECTS: &[(&str, &str)] = &[
    (
        "check",
        "one per check: target (as given, one port), address (the ip:port checked; null for \
         an error or a deadline passed while resolving), outcome (open, closed, timed_out, \
         unreachable, error, or interrupted: still in flight when the run was stopped), rtt_ms \
         (open only, else null), elapsed_ms (the whole check, resolution included; for \
         interrupted, how long it had run; null for an error), seq (this target's check \
         number, from 1; per address with --all-addresses), time (RFC 3339, UTC), error (the \
         message, else null), error_kind (invalid_target, invalid_options, resolve, \
         resource_limit, no_local_address, not_started, stopped, io; else null), phase \
         (resolve when the deadline passed while the name was being resolved, else connect; \
         null for an error or an interrupted check), dns_ms (time spent resolving the name; \
         null for an IP target, an error or an interrupted check)",
    ),
    (
        "invalid_target",
        "a target refused: source (FILE:LINE, <stdin>:LINE or argument), input, error",
    ),
    (
        "open",
        "with --wait, a target became open: target, address, after_ms (since the start), \
         checks (this target's, this one included)",
    ),
    (
        "not_open",
        "with --wait, at the end, a target that never became open: target, after_ms, checks, \
         last_outcome (as outcome, or null if never checked), last_error",
    ),
    (
        "summary",
        "last: mode (repeat or wait), checks (results), planned, open, closed, timed_out, \
         unreachable, errors, invalid_targets, elapsed_ms, interrupted, interrupted_checks, \
         targets: for each target (with --all-addresses, each target address) checked more \
         than once: target, address (null unless --all-addresses), sent, open, closed, \
         timed_out, unreachable, errors, loss_percent, rtt_min_ms, rtt_avg_ms, rtt_max_ms, \
         rtt_stddev_ms (null without an open check), longest_up_streak, longest_down_streak",
    ),
];

/// Help text is wrapped to this many columns.
const HELP_WIDTH: usize = 100;

/// What `--help` prints after the flags: examples, exit statuses and the environment.
pub fn after_help() -> String {
    let mut text = String::from("Examples:\n");
    for (command, what) in EXAMPLES {
        text.push_str(&format!("  {command:<47}{what}\n"));
    }
    text.push_str("\nExit status:\n");
    for (status, meaning) in EXIT_STATUSES {
        push_wrapped(&mut text, &format!("  {status}  "), "     ", meaning);
    }
    for note in EXIT_NOTES {
        push_wrapped(&mut text, "  ", "  ", note);
    }
    text.push_str("\nEnvironment:\n");
    for (name, effect) in ENVIRONMENT {
        push_wrapped(&mut text, &format!("  {name:<16}"), &" ".repeat(18), effect);
    }
    text.truncate(text.trim_end().len());
    text
}

/// Appends `words` wrapped to [`HELP_WIDTH`], the first line after `first`, the others after
/// `indent`.
fn push_wrapped(text: &mut String, first: &str, indent: &str, words: &str) {
    let mut line = first.to_owned();
    let mut line_has_words = false;
    for word in words.split_whitespace() {
        if line_has_words && line.chars().count() + 1 + word.chars().count() > HELP_WIDTH {
            text.push_str(&line);
            text.push('\n');
            line = indent.to_owned();
            line_has_words = false;
        }
        if line_has_words {
            line.push(' ');
        }
        line.push_str(word);
        line_has_words = true;
    }
    text.push_str(&line);
    text.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lines_fit_and_keep_every_example_and_status() {
        let text = after_help();
        assert!(
            text.lines().all(|line| line.chars().count() <= HELP_WIDTH),
            "{text}"
        );
        for (command, _) in EXAMPLES {
            assert!(text.contains(command), "{command}");
        }
        assert!(text.contains("\n  2  usage or system error: "), "{text}");
        assert!(text.contains("\n  NO_COLOR        if set"), "{text}");
    }
}
