//! The latency distribution in the form `loadtest/lua/lt.lua` prints it for `wrk`.

/// The percentiles printed: the round ones, then ten per "nine" (p = 1 - 10^(-k/10), up to
/// 99.999 %) for the HdrHistogram-style plot; sorted, without duplicates.
pub fn percentiles() -> Vec<f64> {
    let mut p = vec![
        1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 95.0, 97.5,
        99.0, 99.5, 99.9, 99.99,
    ];
    p.extend((1..=50).map(|k| round6(100.0 * (1.0 - 10f64.powf(-f64::from(k) / 10.0)))));
    p.sort_by(f64::total_cmp);
    p.dedup();
    p
}

/// Six decimals: enough to keep every percentile of the list apart, and a stable spelling.
fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// The value at percentile `p` (0-100) of `sorted` (ascending, nearest rank); 0 when empty.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The `LT_PCT <percentile> <latency_us>` lines of `sorted` and a last `LT_PCT 100 <max>`.
pub fn pct_lines(sorted: &[u32]) -> String {
    let mut out = String::new();
    for p in percentiles() {
        out.push_str(&format!("LT_PCT {p} {}\n", percentile(sorted, p)));
    }
    out.push_str(&format!(
        "LT_PCT 100 {}\n",
        sorted.last().copied().unwrap_or(0)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 99.9), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn the_percentile_list_is_sorted_distinct_and_ends_at_five_nines() {
        let p = percentiles();
        assert!(p.windows(2).all(|w| w[0] < w[1]), "{p:?}");
        assert_eq!(p.first(), Some(&1.0));
        assert_eq!(p.last(), Some(&99.999));
        assert!(p.contains(&50.0) && p.contains(&99.0) && p.contains(&99.9));
    }

    #[test]
    fn lines_are_what_report_py_parses() {
        let lines = pct_lines(&[10, 20, 30]);
        assert!(lines.contains("LT_PCT 50 20\n"), "{lines}");
        assert!(lines.ends_with("LT_PCT 100 30\n"), "{lines}");
        assert!(lines.lines().all(|l| l.split(' ').count() == 3));
    }
}
