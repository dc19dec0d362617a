//! The `-v` header: the original's configuration block, with what this version adds.

use std::path::PathBuf;
use std::time::Duration;

use crate::plan::{RunPlan, Task};
use crate::targets::Spec;
use crate::unique::Seen;

/// What a run checks and how, as `-v` prints it first.
pub fn configuration(plan: &RunPlan) -> String {
    let what = describe(&plan.arguments, &plan.files);
    let timeout = plan.checks.timeout;
    let (count, concurrency, interval) = match &plan.task {
        Task::Wait { within, .. } => {
            return format!(
                "Waiting up to {within:?} for {what} to be open, each check's timeout {timeout:?}\n"
            );
        }
        Task::Repeat {
            count,
            concurrency,
            interval,
        } => (count, concurrency, *interval),
    };
    let requests = count.map_or_else(|| "until interrupted".to_owned(), |count| count.to_string());
    let mut text = format!(
        "Checking {what} with the following configurations:\n    Timeout: {timeout:?}\n   \
         Requests: {requests}\nConcurrency: {concurrency}\n"
    );
    if interval > Duration::ZERO {
        text.push_str(&format!("   Interval: {interval:?}\n"));
    }
    text
}

/// `db:5432`, `db:5432 and cache:6379`, `3 targets (db:1 to db:3)`, `the targets of hosts.txt`.
fn describe(arguments: &[Spec], files: &[PathBuf]) -> String {
    let mut parts = Vec::new();
    if !arguments.is_empty() {
        parts.push(describe_arguments(arguments));
    }
    if !files.is_empty() {
        let names: Vec<String> = files
            .iter()
            .map(|path| match path.to_str() {
                Some("-") => "standard input".to_owned(),
                _ => path.display().to_string(),
            })
            .collect();
        parts.push(format!("the targets of {}", names.join(", ")));
    }
    parts.join(" and ")
}

fn describe_arguments(arguments: &[Spec]) -> String {
    let mut seen = Seen::default();
    let (mut count, mut first, mut second, mut last) = (0usize, None, None, None);
    for spec in arguments {
        let host = seen.host(spec.first());
        for target in spec.clone().into_targets() {
            if seen.first_time(host, target.port()) {
                count += 1;
                let name = target.to_string();
                match count {
                    1 => first = Some(name),
                    2 => second = Some(name),
                    _ => last = Some(name),
                }
            }
        }
    }
    let first = first.unwrap_or_default();
    match (count, second, last) {
        (2, Some(second), _) => format!("{first} and {second}"),
        (3.., _, Some(last)) => format!("{count} targets ({first} to {last})"),
        _ => first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tcp_shaker::Family;

    use crate::targets::parse_spec;

    fn specs(texts: &[&str]) -> Vec<Spec> {
        texts
            .iter()
            .map(|text| parse_spec(text, Family::Any).unwrap())
            .collect()
    }

    #[test]
    fn targets_are_named_counted_or_referred_to_their_file() {
        assert_eq!(describe(&specs(&["db:1"]), &[]), "db:1");
        assert_eq!(describe(&specs(&["db:1", "db:1,2"]), &[]), "db:1 and db:2");
        assert_eq!(
            describe(&specs(&["db:1-3", "db:2"]), &[]),
            "3 targets (db:1 to db:3)"
        );
        assert_eq!(
            describe(&specs(&["db:1"]), &["hosts.txt".into(), "-".into()]),
            "db:1 and the targets of hosts.txt, standard input"
        );
    }
}
