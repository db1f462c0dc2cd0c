//! What a replica puts into the event stream on its own — periodic ticks (deduplicated per period
//! across replicas) and timers at the deadlines steps report — and the tasks that publish them
//! ([`Announcer`]). What a step does with them: `crate::step`; leases
//! over a silence of the stream: [`crate::recording`]. Discovery rounds: [`crate::discovery`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::io::{IoError, Outbox, Outgoing};
use wadm_store::streams::subjects::internal_subject;

use crate::messages::Tick;

/// The tick a replica publishes for `lattice` at `now`. Its id names the tick period, so every
/// replica's tick of the same period is one message.
pub fn tick_message(lattice: &str, now: wadm_lattice::Timestamp, every: Duration) -> Outgoing {
    let period = (every.as_millis() as u64).max(1);
    Outgoing {
        subject: internal_subject(lattice, "tick"),
        payload: serde_json::to_vec(&Tick { at: now }).unwrap_or_default(),
        msg_id: format!("tick.{lattice}.{}", now / period),
        ttl: None,
    }
}

/// The timer a replica publishes for `lattice` when the deadline `at` (a host lease, an order's
/// deadline, the end of a failure backoff) is reached. Its id names the deadline, so every
/// replica's timer for it is one message.
pub fn timer_message(lattice: &str, at: wadm_lattice::Timestamp) -> Outgoing {
    Outgoing {
        subject: internal_subject(lattice, "timer"),
        payload: serde_json::to_vec(&Tick { at }).unwrap_or_default(),
        msg_id: format!("timer.{lattice}.{at}"),
        ttl: None,
    }
}

/// A replica's own ticks and timers for one lattice. A run of failed publishes is logged once
/// when it begins and once when it ends.
#[derive(Clone)]
pub(crate) struct Announcer<O> {
    lattice: String,
    outbox: O,
    /// When publishing began to fail, while it fails.
    failing: Arc<Mutex<Option<u64>>>,
}

impl<O: Outbox + Clone + 'static> Announcer<O> {
    pub(crate) fn new(lattice: String, outbox: O) -> Self {
        Self { lattice, outbox, failing: Arc::default() }
    }

    /// Publish a tick every `every` until `stop`.
    pub(crate) async fn run_ticks(
        self,
        clock: Arc<dyn Clock>,
        every: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut interval = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    let now = clock.now();
                    self.publish_logged(tick_message(&self.lattice, now, every), now, "tick").await;
                }
                _ = stop.changed() => return,
            }
        }
    }

    /// When the next deadline the last step reported (a host lease, an order's deadline, a
    /// failure backoff) is reached, publish a timer for it (its id names the deadline: the
    /// replicas' timers for one deadline are one message). So a silent host is lost at its
    /// lease, not at the next tick.
    pub(crate) async fn run_timer(
        self,
        clock: Arc<dyn Clock>,
        mut deadline: watch::Receiver<Option<u64>>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let next = *deadline.borrow_and_update();
            let Some(at) = next else {
                tokio::select! {
                    changed = deadline.changed() => if changed.is_err() { return },
                    _ = stop.changed() => return,
                }
                continue;
            };
            let wait = Duration::from_millis(at.saturating_sub(clock.now()));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {
                    let timer = timer_message(&self.lattice, at);
                    self.publish_logged(timer, clock.now(), "timer").await;
                    // Fired: wait for the next deadline a step reports.
                    tokio::select! {
                        changed = deadline.changed() => if changed.is_err() { return },
                        _ = stop.changed() => return,
                    }
                }
                changed = deadline.changed() => if changed.is_err() { return },
                _ = stop.changed() => return,
            }
        }
    }

    /// When publishing began to fail (its holders never panic, so it is never poisoned).
    fn failing(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.failing.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publish `message`; remember when a run of failures began, and log its end.
    async fn publish(&self, message: Outgoing, now: u64) -> Result<(), IoError> {
        let result = self.outbox.publish(message).await;
        match &result {
            Ok(_) => {
                if let Some(since) = self.failing().take() {
                    tracing::info!(lattice = %self.lattice, since, "event stream recording again");
                }
            }
            Err(_) => {
                self.failing().get_or_insert(now);
            }
        }
        result.map(|_| ())
    }

    /// Publish `message` (a tick or a timer, `what`); a failure is logged at warn when it is
    /// the first of a run of failures, at debug after that (`recording again` ends the run).
    async fn publish_logged(&self, message: Outgoing, now: u64, what: &str) {
        let first = self.failing().is_none();
        if let Err(e) = self.publish(message, now).await {
            if first {
                tracing::warn!(lattice = %self.lattice, error = %e, "cannot publish {what}");
            } else {
                tracing::debug!(lattice = %self.lattice, error = %e, "cannot publish {what}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Published;

    /// An outbox that refuses while `down` and records what it took.
    #[derive(Clone, Default)]
    struct Flaky(Arc<Mutex<(bool, Vec<Outgoing>)>>);

    impl Outbox for Flaky {
        async fn publish(&self, message: Outgoing) -> Result<Published, IoError> {
            let mut inner = self.0.lock().unwrap();
            if inner.0 {
                return Err(IoError::storage("publish", "no stream found for given subject"));
            }
            inner.1.push(message);
            Ok(Published { sequence: inner.1.len() as u64, duplicate: false })
        }
    }

    #[tokio::test]
    async fn a_run_of_failures_is_remembered_from_its_first_until_a_publish_works() {
        let outbox = Flaky::default();
        let ours = Announcer::new("l".to_string(), outbox.clone());
        ours.publish_logged(tick_message("l", 1_000, Duration::from_secs(5)), 1_000, "tick").await;
        outbox.0.lock().unwrap().0 = true;
        ours.publish_logged(timer_message("l", 2_000), 2_000, "timer").await;
        ours.publish_logged(tick_message("l", 6_000, Duration::from_secs(5)), 6_000, "tick").await;
        assert_eq!(*ours.failing(), Some(2_000), "the run began with the first failure");
        outbox.0.lock().unwrap().0 = false;
        ours.publish_logged(tick_message("l", 11_000, Duration::from_secs(5)), 11_000, "tick")
            .await;
        assert_eq!(*ours.failing(), None, "a publish worked: the run is over");
        ours.publish_logged(timer_message("l", 12_000), 12_000, "timer").await;
        let ids: Vec<String> =
            outbox.0.lock().unwrap().1.iter().map(|m| m.msg_id.clone()).collect();
        assert_eq!(ids, ["tick.l.0", "tick.l.2", "timer.l.12000"]);
    }
}
