//! Fault injection: switches a test (or the CLI) flips on a running host.
//!
//! [`FaultSwitches`] are shared between the test and the simulator through an `Arc`, so a change
//! applies to the next request, event or heartbeat. Crashing and stopping a host are operations on
//! [`crate::SimLattice`], not switches.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Initial fault settings for new hosts (plain data; see [`FaultSwitches`] for the live form).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultSettings {
    /// Accept every `component.scale`, then emit `component_scale_failed`.
    pub reject_scales: bool,
    /// Accept every `provider.start`, then emit `provider_start_failed`.
    pub reject_provider_starts: bool,
    /// Publish no heartbeats.
    pub pause_heartbeats: bool,
    /// Receive requests (they are counted) but never act on or answer them (gotcha 9).
    pub ignore_requests: bool,
    /// Answer every workload request (component scale/update, provider start/stop) with
    /// `success: false` and do nothing.
    pub refuse_workloads: bool,
    /// Answer every workload request with bytes that are not a control reply, and do nothing.
    pub garble_workloads: bool,
    /// Accept every workload request (`success: true`), then do nothing: no event, and the
    /// inventory never shows it.
    pub swallow_workloads: bool,
    /// Wait this long before handling each request (and so before replying).
    pub reply_delay: Duration,
    /// Fraction (0.0–1.0) of events silently not published, drawn from the seeded RNG.
    pub drop_events: f64,
    /// Images (component or provider refs, as sent) that fail to start: a scale up, update or
    /// provider start with one is accepted, then `component_scale_failed` /
    /// `provider_start_failed` follows and what ran before keeps running.
    pub fail_images: Vec<String>,
    /// Provider images that start but fail their health checks: `provider_started`, then
    /// `health_check_failed` (and the provider keeps running, unhealthy).
    pub unhealthy_images: Vec<String>,
}

const PPM: f64 = 1_000_000.0;

/// Live fault switches of one host.
#[derive(Debug, Default)]
pub struct FaultSwitches {
    reject_scales: AtomicBool,
    reject_provider_starts: AtomicBool,
    pause_heartbeats: AtomicBool,
    ignore_requests: AtomicBool,
    refuse_workloads: AtomicBool,
    garble_workloads: AtomicBool,
    swallow_workloads: AtomicBool,
    reply_delay_ms: AtomicU64,
    drop_events_ppm: AtomicU32,
    fail_images: std::sync::Mutex<std::collections::BTreeSet<String>>,
    unhealthy_images: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl FaultSwitches {
    /// Switches set as `settings` says.
    pub fn from_settings(settings: &FaultSettings) -> Self {
        let s = Self::default();
        s.set_reject_scales(settings.reject_scales);
        s.set_reject_provider_starts(settings.reject_provider_starts);
        s.set_pause_heartbeats(settings.pause_heartbeats);
        s.set_ignore_requests(settings.ignore_requests);
        s.set_refuse_workloads(settings.refuse_workloads);
        s.set_garble_workloads(settings.garble_workloads);
        s.set_swallow_workloads(settings.swallow_workloads);
        s.set_reply_delay(settings.reply_delay);
        s.set_drop_events(settings.drop_events);
        s.set_fail_images(settings.fail_images.iter().cloned());
        s.set_unhealthy_images(settings.unhealthy_images.iter().cloned());
        s
    }

    /// Make exactly these provider images fail their health checks.
    pub fn set_unhealthy_images(&self, images: impl IntoIterator<Item = String>) {
        let mut set = self.unhealthy_images.lock().unwrap_or_else(|e| e.into_inner());
        *set = images.into_iter().collect();
    }

    /// Whether a provider started from `image` fails its health checks.
    pub fn unhealthy_image(&self, image: &str) -> bool {
        self.unhealthy_images.lock().unwrap_or_else(|e| e.into_inner()).contains(image)
    }

    /// Make exactly these images fail to start.
    pub fn set_fail_images(&self, images: impl IntoIterator<Item = String>) {
        let mut set = self.fail_images.lock().unwrap_or_else(|e| e.into_inner());
        *set = images.into_iter().collect();
    }

    /// Whether `image` fails to start.
    pub fn fails_image(&self, image: &str) -> bool {
        self.fail_images.lock().unwrap_or_else(|e| e.into_inner()).contains(image)
    }

    /// On: accept every `component.scale`, then emit `component_scale_failed`.
    pub fn set_reject_scales(&self, on: bool) {
        self.reject_scales.store(on, Ordering::Relaxed);
    }
    /// Whether `component.scale` requests are rejected.
    pub fn reject_scales(&self) -> bool {
        self.reject_scales.load(Ordering::Relaxed)
    }
    /// On: accept every `provider.start`, then emit `provider_start_failed`.
    pub fn set_reject_provider_starts(&self, on: bool) {
        self.reject_provider_starts.store(on, Ordering::Relaxed);
    }
    /// Whether `provider.start` requests are rejected.
    pub fn reject_provider_starts(&self) -> bool {
        self.reject_provider_starts.load(Ordering::Relaxed)
    }
    /// On: publish no heartbeats.
    pub fn set_pause_heartbeats(&self, on: bool) {
        self.pause_heartbeats.store(on, Ordering::Relaxed);
    }
    /// Whether heartbeats are paused.
    pub fn heartbeats_paused(&self) -> bool {
        self.pause_heartbeats.load(Ordering::Relaxed)
    }
    /// On: count requests but never act on or answer them.
    pub fn set_ignore_requests(&self, on: bool) {
        self.ignore_requests.store(on, Ordering::Relaxed);
    }
    /// Whether requests are ignored.
    pub fn ignores_requests(&self) -> bool {
        self.ignore_requests.load(Ordering::Relaxed)
    }
    /// On: answer workload requests with `success: false` and do nothing.
    pub fn set_refuse_workloads(&self, on: bool) {
        self.refuse_workloads.store(on, Ordering::Relaxed);
    }
    /// Whether workload requests are refused.
    pub fn refuses_workloads(&self) -> bool {
        self.refuse_workloads.load(Ordering::Relaxed)
    }
    /// On: answer workload requests with bytes that are not a control reply, and do nothing.
    pub fn set_garble_workloads(&self, on: bool) {
        self.garble_workloads.store(on, Ordering::Relaxed);
    }
    /// Whether workload replies are garbled.
    pub fn garbles_workloads(&self) -> bool {
        self.garble_workloads.load(Ordering::Relaxed)
    }
    /// On: accept workload requests (`success: true`), then do nothing at all.
    pub fn set_swallow_workloads(&self, on: bool) {
        self.swallow_workloads.store(on, Ordering::Relaxed);
    }
    /// Whether workload requests are accepted and then swallowed.
    pub fn swallows_workloads(&self) -> bool {
        self.swallow_workloads.load(Ordering::Relaxed)
    }
    /// Wait `delay` before handling each request (and so before replying); millisecond precision.
    pub fn set_reply_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.reply_delay_ms.store(ms, Ordering::Relaxed);
    }
    /// How long the host waits before handling each request.
    pub fn reply_delay(&self) -> Duration {
        Duration::from_millis(self.reply_delay_ms.load(Ordering::Relaxed))
    }
    /// Silently drop this fraction of events; clamped to 0.0–1.0 (NaN counts as 0), kept in
    /// parts per million.
    pub fn set_drop_events(&self, fraction: f64) {
        let f = if fraction.is_nan() { 0.0 } else { fraction.clamp(0.0, 1.0) };
        self.drop_events_ppm.store((f * PPM).round() as u32, Ordering::Relaxed);
    }
    /// The fraction (0.0–1.0) of events silently not published.
    pub fn drop_events(&self) -> f64 {
        f64::from(self.drop_events_ppm.load(Ordering::Relaxed)) / PPM
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_clamp() {
        let s = FaultSwitches::from_settings(&FaultSettings {
            reject_scales: true,
            reply_delay: Duration::from_millis(250),
            drop_events: 7.0,
            ..FaultSettings::default()
        });
        assert!(s.reject_scales() && !s.reject_provider_starts() && !s.heartbeats_paused());
        assert_eq!(s.reply_delay(), Duration::from_millis(250));
        assert_eq!(s.drop_events(), 1.0);
        s.set_drop_events(f64::NAN);
        assert_eq!(s.drop_events(), 0.0);
        s.set_drop_events(0.1);
        assert!((s.drop_events() - 0.1).abs() < 1e-9);
    }
}
