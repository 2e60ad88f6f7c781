//! What the benchmark binaries share.

use std::time::Duration;

/// Nearest-rank percentile (`p` from 0 to 1) of `times`, given in any
/// order; zero when there are none.
pub fn percentile(times: &[Duration], p: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        let t = ms(&[5, 1, 4, 2, 3]);
        assert_eq!(percentile(&t, 0.5), Duration::from_millis(3));
        assert_eq!(percentile(&t, 0.99), Duration::from_millis(5));
        assert_eq!(percentile(&t, 0.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
