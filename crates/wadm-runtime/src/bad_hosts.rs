//! Hosts that keep failing a placement: after [`BadHostConfig::strikes`] failed attempts in a
//! row to place one resource (an application's component or provider) on one host — refused,
//! unreadable, unanswered, reported failing, or not running by the order's deadline — that host
//! is avoided for it for [`BadHostConfig::avoid_for`] (`wadm_scheduler::Avoid`, soft), then tried
//! again on probation. Kept in the lattice head, so any replica carries it on; pure, time is an
//! argument. The rule in full: `docs/intents.md`, "Hosts that keep failing a placement".

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wadm_lattice::Timestamp;
use wadm_scheduler::{Avoid, Command};

/// When a host is avoided for a resource, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadHostConfig {
    /// Failed attempts in a row before the host is avoided (default 3; `0`: never avoid).
    pub strikes: u32,
    /// How long it is then avoided (default 5 min).
    pub avoid_for: Duration,
}

impl Default for BadHostConfig {
    fn default() -> Self {
        Self { strikes: 3, avoid_for: Duration::from_secs(300) }
    }
}

impl BadHostConfig {
    fn avoid_ms(&self) -> u64 {
        u64::try_from(self.avoid_for.as_millis()).unwrap_or(u64::MAX)
    }
}

/// The failed attempts to place one resource of one application on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Strikes {
    /// The application that wanted the resource placed.
    pub app: String,
    /// The component or provider id.
    pub resource: String,
    /// The host the placements failed on.
    pub host: String,
    /// Failed attempts in a row.
    pub failures: u32,
    /// What the last one said.
    pub last_error: String,
    /// Avoided until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avoid_until: Option<Timestamp>,
    /// Forgotten then unless avoided or failing again.
    pub forget_at: Timestamp,
}

impl Strikes {
    fn key(&self) -> (&str, &str, &str) {
        (&self.app, &self.resource, &self.host)
    }
}

/// Every [`Strikes`] of a lattice, in (app, resource, host) order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BadHosts {
    entries: Vec<Strikes>,
}

/// The (host, resource id) an order adds instances of, if it is a placement. Updates are not:
/// an image that fails to start on one host usually fails on every host, and that is the
/// rollout's to handle (it stops, or reverts: `crate::revert`), not a reason to move what runs.
pub fn placement_of(command: &Command) -> Option<(&str, &str)> {
    match command {
        Command::ScaleComponent(r) if r.count > 0 => Some((&*r.host_id, &*r.component_id)),
        Command::StartProvider(r) => Some((&*r.host_id, &*r.provider_id)),
        _ => None,
    }
}

impl BadHosts {
    /// Whether no host is noted for any resource.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, in (app, resource, host) order.
    pub fn entries(&self) -> &[Strikes] {
        &self.entries
    }

    fn find(&self, app: &str, resource: &str, host: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|s| s.key().cmp(&(app, resource, host)))
    }

    /// Note a failed attempt to place `resource` of `app` on `host` at `now`. Returns whether the
    /// host became avoided by it.
    pub fn failed(
        &mut self,
        (app, resource, host): (&str, &str, &str),
        error: &str,
        now: Timestamp,
        config: &BadHostConfig,
    ) -> bool {
        let avoid_ms = config.avoid_ms();
        let at = match self.find(app, resource, host) {
            Ok(at) => at,
            Err(at) => {
                let entry = Strikes {
                    app: app.to_string(),
                    resource: resource.to_string(),
                    host: host.to_string(),
                    failures: 0,
                    last_error: String::new(),
                    avoid_until: None,
                    forget_at: 0,
                };
                self.entries.insert(at, entry);
                at
            }
        };
        let entry = &mut self.entries[at];
        entry.failures = entry.failures.saturating_add(1);
        entry.last_error = error.to_string();
        entry.forget_at = entry.forget_at.max(now.saturating_add(avoid_ms));
        let begins =
            config.strikes > 0 && entry.failures >= config.strikes && entry.avoid_until.is_none();
        if begins {
            let until = now.saturating_add(avoid_ms);
            entry.avoid_until = Some(until);
            // On probation for another `avoid_for` once the avoidance ends.
            entry.forget_at = until.saturating_add(avoid_ms);
        }
        begins
    }

    /// `resource` of `app` was placed on `host`: its strikes there are forgotten.
    pub fn placed(&mut self, app: &str, resource: &str, host: &str) {
        if let Ok(at) = self.find(app, resource, host) {
            self.entries.remove(at);
        }
    }

    /// Settle at `now`: avoidances that ended are lifted (the host may be tried again), strikes
    /// past their time, or of applications or hosts `keep` rejects, are forgotten. Returns the
    /// applications whose avoidance ended (worth a reconcile: the share may come back).
    pub fn expire(&mut self, now: Timestamp, keep: impl Fn(&Strikes) -> bool) -> BTreeSet<String> {
        let mut ended = BTreeSet::new();
        self.entries.retain_mut(|s| {
            if !keep(s) {
                return false;
            }
            if s.avoid_until.is_some_and(|until| until <= now) {
                s.avoid_until = None;
                ended.insert(s.app.clone());
            }
            s.avoid_until.is_some() || now < s.forget_at
        });
        ended
    }

    /// The hosts avoided at `now`, for the scheduler.
    pub fn avoid(&self, now: Timestamp) -> Avoid {
        let mut avoid = Avoid::default();
        for s in self.entries.iter().filter(|s| s.avoid_until.is_some_and(|u| now < u)) {
            avoid.insert(&s.app, &s.resource, &s.host);
        }
        avoid
    }

    /// When the next avoidance after `now` ends (a timer then reconciles its application).
    pub fn next_deadline(&self, now: Timestamp) -> Option<Timestamp> {
        self.entries.iter().filter_map(|s| s.avoid_until).filter(|u| *u > now).min()
    }

    /// For `app`'s status: the hosts that keep failing it, with their last error.
    pub fn describe(&self, app: &str) -> Option<String> {
        let failing = self.entries.iter().filter(|s| s.app == app && s.failures > 0);
        let parts: Vec<String> = failing
            .map(|s| {
                let avoided = if s.avoid_until.is_some() { ", avoided" } else { "" };
                format!(
                    "{} failed on host {} {} time{}{avoided}: {}",
                    s.resource,
                    s.host,
                    s.failures,
                    if s.failures == 1 { "" } else { "s" },
                    s.last_error
                )
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn config() -> BadHostConfig {
        BadHostConfig { strikes: 3, avoid_for: Duration::from_secs(300) }
    }

    fn key() -> (&'static str, &'static str, &'static str) {
        ("app", "app-web", "bad")
    }

    #[test]
    fn three_strikes_avoid_for_a_while_then_one_more_avoids_again() {
        let c = config();
        let mut b = BadHosts::default();
        assert!(!b.failed(key(), "refused", 0, &c));
        assert!(!b.failed(key(), "refused", MIN, &c));
        assert!(b.avoid(2 * MIN).is_empty());
        assert!(b.failed(key(), "refused", 2 * MIN, &c), "third strike");
        assert_eq!(b.avoid(2 * MIN).hosts("app", "app-web").collect::<Vec<_>>(), ["bad"]);
        assert_eq!(b.next_deadline(2 * MIN), Some(7 * MIN));
        assert!(b.expire(6 * MIN, |_| true).is_empty());
        assert_eq!(b.expire(7 * MIN, |_| true), BTreeSet::from(["app".to_string()]));
        assert!(b.avoid(7 * MIN).is_empty(), "may be tried again");
        // On probation: one more failure avoids it again.
        assert!(b.failed(key(), "refused", 8 * MIN, &c));
        assert!(!b.avoid(8 * MIN).is_empty());
        let text = b.describe("app").unwrap();
        assert!(text.contains("host bad 4 times, avoided: refused"), "{text}");
    }

    #[test]
    fn a_success_or_a_quiet_while_forgets_the_strikes() {
        let c = config();
        let mut b = BadHosts::default();
        b.failed(key(), "x", 0, &c);
        b.failed(key(), "x", 0, &c);
        b.placed("app", "app-web", "bad");
        assert!(b.is_empty());
        b.failed(key(), "x", 0, &c);
        b.failed(key(), "x", 0, &c);
        b.expire(5 * MIN, |_| true);
        assert!(b.is_empty(), "forgotten after a quiet avoid_for");
        b.failed(key(), "x", 0, &c);
        b.expire(0, |s| s.host != "bad");
        assert!(b.is_empty(), "host gone");
    }
}
