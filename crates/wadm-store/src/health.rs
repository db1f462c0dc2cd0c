//! What this process knows about its own health, part by part (the API server, each lattice's
//! pipeline), for a readiness check that tells the truth about *this* replica: a part is
//! failing from its first failure until its next success.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A shared handle (clones report to the same registry).
#[derive(Debug, Clone, Default)]
pub struct Health {
    parts: Arc<Mutex<BTreeMap<String, Part>>>,
}

#[derive(Debug, Clone)]
struct Part {
    /// `None` while healthy; else since when it fails and why (one line).
    failing: Option<(Instant, String)>,
    /// Not working yet: counts as failing at once, whatever the grace.
    starting: bool,
}

/// A part that has been failing for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    /// The part's name (`api`, `pipeline.{lattice}`, `commands.{lattice}`…).
    pub part: String,
    /// Why it fails, as it last reported.
    pub reason: String,
    /// How long it has been failing, in milliseconds.
    pub for_ms: u64,
}

impl Health {
    /// `part` works (again).
    pub fn ok(&self, part: &str) {
        let mut parts = self.lock();
        match parts.get_mut(part) {
            Some(p) => {
                p.failing = None;
                p.starting = false;
            }
            None => {
                parts.insert(part.to_string(), Part { failing: None, starting: false });
            }
        }
    }

    /// `part` failed; it stays failing until [`Health::ok`].
    pub fn failed(&self, part: &str, reason: &str) {
        let reason = reason.lines().map(str::trim).collect::<Vec<_>>().join(" ");
        let mut parts = self.lock();
        let entry =
            parts.entry(part.to_string()).or_insert(Part { failing: None, starting: false });
        match &mut entry.failing {
            Some((_, why)) => *why = reason,
            None => entry.failing = Some((Instant::now(), reason)),
        }
    }

    /// `part` is starting: not ready until [`Health::ok`] or [`Health::forget`].
    pub fn starting(&self, part: &str) {
        let since = Some((Instant::now(), "starting".to_string()));
        self.lock().insert(part.to_string(), Part { failing: since, starting: true });
    }

    /// The part is gone (a stopped component): it no longer counts.
    pub fn forget(&self, part: &str) {
        self.lock().remove(part);
    }

    /// Whether `part` has reported at all.
    pub fn knows(&self, part: &str) -> bool {
        self.lock().contains_key(part)
    }

    /// The parts failing for at least `grace` (a single failed step is not an outage).
    pub fn failing(&self, grace: Duration) -> Vec<Failing> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter_map(|(name, p)| {
                let (since, reason) = p.failing.as_ref()?;
                let for_time = now.saturating_duration_since(*since);
                (p.starting || for_time >= grace).then(|| Failing {
                    part: name.clone(),
                    reason: reason.clone(),
                    for_ms: for_time.as_millis() as u64,
                })
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Part>> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_fails_until_it_works_again() {
        let health = Health::default();
        assert!(!health.knows("api"));
        health.ok("api");
        assert!(health.knows("api") && health.failing(Duration::ZERO).is_empty());
        health.failed("pipeline.default", "stream not found\n(code 404)");
        let failing = health.failing(Duration::ZERO);
        assert_eq!(failing.len(), 1);
        assert_eq!(failing[0].reason, "stream not found (code 404)");
        assert!(health.failing(Duration::from_secs(3600)).is_empty(), "within the grace");
        health.clone().ok("pipeline.default");
        assert!(health.failing(Duration::ZERO).is_empty());
        health.failed("api", "down");
        health.forget("api");
        assert!(health.failing(Duration::ZERO).is_empty());
        health.starting("runtime");
        assert_eq!(health.failing(Duration::from_secs(3600)).len(), 1, "starting is not ready");
        health.forget("runtime");
        assert!(health.failing(Duration::ZERO).is_empty());
    }
}
