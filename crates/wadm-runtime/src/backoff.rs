//! Exponential backoff with jitter, as a pure function of the attempt number and a random sample.

use std::time::Duration;

/// Exponential backoff: attempt `n` (from 1) waits between half and all of
/// `min(max, base * 2^(n-1))` ("equal jitter"), so retries spread out but never come sooner than
/// half the nominal delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay of the first attempt.
    pub base: Duration,
    /// The longest delay, however many attempts failed.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_secs(1), max: Duration::from_secs(300) }
    }
}

impl Backoff {
    /// The nominal (un-jittered) delay of attempt `attempt` (0 and 1 give `base`).
    pub fn ceiling_ms(&self, attempt: u32) -> u64 {
        let base = self.base.as_millis() as u64;
        let max = (self.max.as_millis() as u64).max(base);
        let shift = attempt.saturating_sub(1).min(63);
        base.checked_shl(shift).filter(|d| *d >> shift == base).unwrap_or(u64::MAX).min(max)
    }

    /// The jittered delay of attempt `attempt`, using `sample` (any `u64`) as the randomness.
    pub fn delay_ms(&self, attempt: u32, sample: u64) -> u64 {
        let ceiling = self.ceiling_ms(attempt);
        let half = ceiling / 2;
        half + sample % (ceiling - half + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_millis(1000) };
        let ceilings: Vec<u64> = (1..=6).map(|n| b.ceiling_ms(n)).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.ceiling_ms(200), 1000);
    }

    proptest! {
        #[test]
        fn delay_is_within_half_and_full_ceiling(attempt in 0u32..100, sample: u64, base in 1u64..10_000, max in 1u64..1_000_000) {
            let b = Backoff { base: Duration::from_millis(base), max: Duration::from_millis(max) };
            let d = b.delay_ms(attempt, sample);
            let c = b.ceiling_ms(attempt);
            prop_assert!(d >= c / 2 && d <= c);
            prop_assert!(b.ceiling_ms(attempt + 1) >= c);
        }
    }
}
