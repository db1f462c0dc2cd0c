//! Time and randomness as injected capabilities: every timer of the runtime (leases, resync ticks,
//! retries, command TTL) reads [`Clock::now`], and every jitter draws from [`Random`], so a test
//! can run the whole runtime in virtual time ([`VirtualClock`]) from a seed ([`SeededRandom`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use wadm_lattice::Timestamp;

/// Milliseconds since the Unix epoch, as the runtime sees them.
pub trait Clock: Send + Sync + 'static {
    /// The current time, in milliseconds since the Unix epoch.
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as Timestamp)
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct VirtualClock(Arc<AtomicU64>);

impl VirtualClock {
    /// A clock stopped at `start` (ms since the epoch).
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicU64::new(start)))
    }

    /// Move time forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Jump to `at` (never backwards).
    pub fn set(&self, at: Timestamp) {
        self.0.fetch_max(at, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        self.0.load(Ordering::SeqCst)
    }
}

/// A source of random numbers (only used for jitter).
pub trait Random: Send + Sync + 'static {
    /// The next number of the sequence.
    fn next_u64(&self) -> u64;
}

/// SplitMix64 from a seed: the same seed always gives the same sequence.
#[derive(Debug, Default)]
pub struct SeededRandom(AtomicU64);

impl SeededRandom {
    /// The sequence of `seed`.
    pub fn new(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }

    /// Seeded from the wall clock and the process id (for production use).
    pub fn from_entropy() -> Self {
        let pid = u64::from(std::process::id());
        Self::new(SystemClock.now().rotate_left(17) ^ pid.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

impl Random for SeededRandom {
    fn next_u64(&self) -> u64 {
        let mut x = self.0.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::SeqCst);
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C>
where
    Arc<C>: Send + Sync + 'static,
{
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_forward_when_told() {
        let clock = VirtualClock::new(100);
        let shared = clock.clone();
        clock.advance(50);
        assert_eq!(shared.now(), 150);
        clock.set(120);
        assert_eq!(shared.now(), 150);
    }

    #[test]
    fn seeded_random_replays() {
        let a: Vec<u64> = (0..4).map(|_| SeededRandom::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let r = SeededRandom::new(7);
        let seq: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_ne!(seq[0], seq[1]);
    }
}
