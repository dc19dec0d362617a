//! What the serve scenario reads of a `/metrics` body (the Prometheus text format or
//! OpenMetrics, which write samples alike): the sum of a family's samples, and an unlabelled
//! histogram's buckets, whose difference between two scrapes gives the percentiles of what
//! happened in between.

use anyhow::Context;

/// One sample line: its metric name, its labels (values unescaped) and its value.
#[derive(Debug, PartialEq)]
pub struct Sample<'a> {
    /// The metric name (`tcp_shaker_target_checks_total`).
    pub name: &'a str,
    /// The labels, in the order written.
    pub labels: Vec<(&'a str, String)>,
    /// The value.
    pub value: f64,
}

impl Sample<'_> {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(label, _)| *label == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The samples of `text`, comment lines (`# HELP`, `# TYPE`, `# EOF`) and blank lines skipped;
/// fails on a line that is not a sample.
pub fn samples(text: &str) -> impl Iterator<Item = anyhow::Result<Sample<'_>>> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| parse_sample(line).with_context(|| format!("parsing the sample {line:?}")))
}

/// The sum of the samples named `name` whose labels satisfy `keep`.
pub fn sum(text: &str, name: &str, keep: impl Fn(&Sample<'_>) -> bool) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for sample in samples(text) {
        let sample = sample?;
        if sample.name == name && keep(&sample) {
            total += sample.value;
        }
    }
    Ok(total)
}

/// A histogram as scraped: its cumulative buckets (upper bound, count at or below it; the
/// last is `+Inf`), its count and its sum.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// `(le, cumulative count)`, by ascending bound.
    pub buckets: Vec<(f64, f64)>,
    /// Observations.
    pub count: f64,
    /// Their sum.
    pub sum: f64,
}

impl Histogram {
    /// The unlabelled histogram `base` (`base_bucket`, `base_count`, `base_sum`) of `text`.
    pub fn scrape(text: &str, base: &str) -> anyhow::Result<Histogram> {
        let (bucket, count, sum) = (
            format!("{base}_bucket"),
            format!("{base}_count"),
            format!("{base}_sum"),
        );
        let mut histogram = Histogram::default();
        for sample in samples(text) {
            let sample = sample?;
            if sample.name == bucket {
                let le = sample.label("le").context("a bucket without le")?;
                let le = parse_value(le).with_context(|| format!("the bound le={le:?}"))?;
                histogram.buckets.push((le, sample.value));
            } else if sample.name == count {
                histogram.count = sample.value;
            } else if sample.name == sum {
                histogram.sum = sample.value;
            }
        }
        anyhow::ensure!(
            !histogram.buckets.is_empty(),
            "no histogram {base} in the body"
        );
        histogram.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(histogram)
    }

    /// What was observed between `earlier` and this scrape of the same histogram.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let before = |le: f64| {
            earlier
                .buckets
                .iter()
                .find(|(bound, _)| *bound == le)
                .map_or(0.0, |(_, count)| *count)
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|&(le, count)| (le, count - before(le)))
                .collect(),
            count: self.count - earlier.count,
            sum: self.sum - earlier.sum,
        }
    }

    /// The upper bound of the bucket that holds the nearest-rank percentile `percent`: the
    /// percentile is at most this (`+Inf` past the last finite bound); `None` without
    /// observations.
    pub fn percentile_bound(&self, percent: f64) -> Option<f64> {
        let total = self.total();
        if total <= 0.0 {
            return None;
        }
        let rank = (percent / 100.0 * total).ceil().max(1.0);
        self.buckets
            .iter()
            .find(|(_, count)| *count >= rank)
            .map(|(le, _)| *le)
            .or(Some(f64::INFINITY))
    }

    /// The share of observations above `bound` (one of the bucket bounds); `None` without
    /// observations or without that bound.
    pub fn share_above(&self, bound: f64) -> Option<f64> {
        let total = self.total();
        let (_, within) = self.buckets.iter().find(|(le, _)| *le == bound)?;
        (total > 0.0).then(|| (total - within) / total)
    }

    /// The mean observation; `None` without observations.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// Observations, from the `+Inf` bucket (the count, should that be missing).
    fn total(&self) -> f64 {
        match self.buckets.last() {
            Some((le, count)) if le.is_infinite() => *count,
            _ => self.count,
        }
    }
}

/// `name{label="value",...} value`, or `name value`; a timestamp after the value is ignored.
fn parse_sample(line: &str) -> anyhow::Result<Sample<'_>> {
    let name_end = line.find(['{', ' ']).context("no value")?;
    let name = &line[..name_end];
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(inside) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inside)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.split_whitespace().next().context("no value")?;
    Ok(Sample {
        name,
        labels,
        value: parse_value(value).with_context(|| format!("the value {value:?}"))?,
    })
}

/// The labels from just after `{` to the closing `}`, and the text after it.
fn parse_labels(mut text: &str) -> anyhow::Result<(Vec<(&str, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = text.split_once("=\"").context("a label without =\"")?;
        let mut value = String::new();
        let mut characters = after.char_indices();
        let end = loop {
            match characters.next().context("an unterminated label value")? {
                (at, '"') => break at,
                (_, '\\') => match characters.next().context("a dangling escape")?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, other) => value.push(other),
            }
        };
        labels.push((name.trim(), value));
        text = &after[end + 1..];
    }
}

/// A sample value or bucket bound: a float, `+Inf`, `-Inf` or `NaN`.
fn parse_value(text: &str) -> anyhow::Result<f64> {
    Ok(match text {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => text.parse()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"# HELP tcp_shaker_target_checks Checks of the target, by outcome.
# TYPE tcp_shaker_target_checks counter
tcp_shaker_target_checks_total{target="127.0.0.1:9",outcome="open"} 7
tcp_shaker_target_checks_total{target="a \"quoted\", odd}",outcome="timed_out"} 2
tcp_shaker_target_checks_total{target="127.0.0.2:9",outcome="open"} 5
# TYPE tcp_shaker_schedule_lateness_seconds histogram
tcp_shaker_schedule_lateness_seconds_sum 0.5
tcp_shaker_schedule_lateness_seconds_count 100
tcp_shaker_schedule_lateness_seconds_bucket{le="0.001"} 50
tcp_shaker_schedule_lateness_seconds_bucket{le="0.05"} 98
tcp_shaker_schedule_lateness_seconds_bucket{le="1.0"} 100
tcp_shaker_schedule_lateness_seconds_bucket{le="+Inf"} 100
tcp_shaker_targets 2
# EOF
"#;

    #[test]
    fn samples_are_summed_by_name_and_label() {
        let name = "tcp_shaker_target_checks_total";
        assert_eq!(sum(BODY, name, |_| true).unwrap(), 14.0);
        let open = sum(BODY, name, |s| s.label("outcome") == Some("open")).unwrap();
        assert_eq!(open, 12.0);
        let odd = samples(BODY)
            .map(Result::unwrap)
            .find(|s| s.label("outcome") == Some("timed_out"))
            .unwrap();
        assert_eq!(odd.label("target"), Some(r#"a "quoted", odd}"#));
        assert_eq!(sum(BODY, "tcp_shaker_targets", |_| true).unwrap(), 2.0);
        assert!(sum("a{b=\"c} 1", "a", |_| true).is_err());
        assert!(sum("just_a_name", "a", |_| true).is_err());
    }

    #[test]
    fn histogram_differences_give_the_percentiles_in_between() {
        let base = "tcp_shaker_schedule_lateness_seconds";
        let later = Histogram::scrape(BODY, base).unwrap();
        assert_eq!(later.count, 100.0);
        assert_eq!(later.buckets.last(), Some(&(f64::INFINITY, 100.0)));
        let earlier = Histogram {
            buckets: vec![
                (0.001, 40.0),
                (0.05, 40.0),
                (1.0, 40.0),
                (f64::INFINITY, 40.0),
            ],
            count: 40.0,
            sum: 0.1,
        };
        let between = later.since(&earlier);
        // 60 observations: 10 within 1 ms, 58 within 50 ms, all within 1 s.
        assert_eq!(between.percentile_bound(10.0), Some(0.001));
        assert_eq!(between.percentile_bound(50.0), Some(0.05));
        assert_eq!(between.percentile_bound(99.0), Some(1.0));
        assert_eq!(between.share_above(0.05), Some(2.0 / 60.0));
        assert!((between.mean().unwrap() - 0.4 / 60.0).abs() < 1e-12);
        assert_eq!(Histogram::default().percentile_bound(50.0), None);
        assert!(Histogram::scrape(BODY, "no_such").is_err());
    }
}
