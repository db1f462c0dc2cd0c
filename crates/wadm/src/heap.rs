//! Giving freed heap back to the operating system. glibc's allocator keeps what a burst freed
//! (its per-thread arenas are not shrunk on their own), so a replica that once parsed hundreds
//! of large bad requests kept nearly twice its resident memory for good; trimming every few
//! seconds returns it (`docs/deploy.md`, "Memory"). A no-op where the allocator is not glibc's.

use std::future::Future;
use std::time::Duration;

/// How often freed memory is given back.
pub(crate) const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Give freed memory back every [`TRIM_EVERY`] until `stop` resolves.
pub(crate) async fn return_freed_memory(stop: impl Future<Output = ()>) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut every = tokio::time::interval(TRIM_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = every.tick() => trim(),
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    stop.await
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: `malloc_trim` only releases memory the allocator holds free (the top of each
    // arena's heap, whole free pages inside them); it takes the allocator's own locks and
    // touches no live allocation. It takes and returns plain integers.
    unsafe {
        libc::malloc_trim(0);
    }
}
