//! The arithmetic of the figures: nearest-rank percentiles of sorted samples, and medians.

/// The nearest-rank percentile `percent` (0 to 100) of `sorted`: the smallest value that at
/// least `percent`% of the values are at or below; `None` if there are none.
pub fn percentile<T: Copy>(sorted: &[T], percent: f64) -> Option<T> {
    let rank = (percent / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// The median of `values` (the mean of the middle two for an even count); `None` if empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_unstable_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => None,
        length if length % 2 == 1 => Some(values[middle]),
        _ => Some((values[middle - 1] + values[middle]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let at = |percent| percentile(&values, percent);
        assert_eq!(at(0.0), Some(Duration::from_millis(1)));
        assert_eq!(at(50.0), Some(Duration::from_millis(50)));
        assert_eq!(at(99.0), Some(Duration::from_millis(99)));
        assert_eq!(at(100.0), Some(Duration::from_millis(100)));
        assert_eq!(
            percentile(&values[..1], 90.0),
            Some(Duration::from_millis(1))
        );
        assert_eq!(percentile::<Duration>(&[], 50.0), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
