//! When a replica runs discovery rounds and how their answers enter the event stream: one at
//! start-up, one per period (deduplicated across replicas by the period's message id) and one
//! when the pipeline finds observed state in doubt; each round's answers are published as
//! `discovered` messages (cut into bounded parts, [`super::parts`]) and merged in order.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::NatsDiscoverer;
use super::parts::{DISCOVERY_PART_BYTES, split_report};
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::io::{Discoverer, IoError, Outbox, Outgoing};
use wadm_store::streams::subjects::internal_subject;

use crate::messages::DiscoveryReport;
use crate::nats::JsOutbox;

/// Run a discovery round and put its answers in the event stream, where the pipeline merges
/// them in order with everything else. Replicas do this at start-up: state may be stale then.
/// The message id names this replica's round.
pub async fn discover_into<X, O>(
    discoverer: &X,
    events: &O,
    lattice: &str,
    started_at: wadm_lattice::Timestamp,
    replica: &str,
) -> Result<usize, IoError>
where
    X: Discoverer,
    O: Outbox,
{
    let msg_id = format!("discovered.{lattice}.{replica}.{started_at}");
    discover_with_id(discoverer, events, lattice, started_at, msg_id).await
}

/// The message id of the periodic discovery round of `lattice` that `now` falls in: every
/// replica's round of the same period is stored once.
pub fn periodic_discovery_id(
    lattice: &str,
    now: wadm_lattice::Timestamp,
    every: Duration,
) -> String {
    let period = (every.as_millis() as u64).max(1);
    format!("discovered.{lattice}.period.{}", now / period)
}

/// Run a discovery round and publish its answers as the `discovered` message `msg_id`.
pub async fn discover_with_id<X, O>(
    discoverer: &X,
    events: &O,
    lattice: &str,
    started_at: wadm_lattice::Timestamp,
    msg_id: String,
) -> Result<usize, IoError>
where
    X: Discoverer,
    O: Outbox,
{
    let discovery = discoverer.discover(lattice, started_at).await?;
    let hosts = discovery.hosts.len();
    publish_round(events, lattice, DiscoveryReport::from(discovery), &msg_id, DISCOVERY_PART_BYTES)
        .await?;
    Ok(hosts)
}

/// Publish a round's answers as `discovered` messages of at most about `max_bytes` each, in
/// order (see [`crate::discovery::parts`]): `msg_id` when it fits in one, `{msg_id}.p{i}of{n}` for parts.
/// Returns how many messages were published.
pub async fn publish_round<O: Outbox>(
    events: &O,
    lattice: &str,
    report: DiscoveryReport,
    msg_id: &str,
    max_bytes: usize,
) -> Result<usize, IoError> {
    let parts = split_report(report, max_bytes);
    let count = parts.len();
    for part in parts {
        let id = if part.part == 0 {
            msg_id.to_string()
        } else {
            format!("{msg_id}.p{}of{}", part.part, part.parts)
        };
        let outgoing = Outgoing {
            subject: internal_subject(lattice, "discovered"),
            payload: serde_json::to_vec(&part).unwrap_or_default(),
            msg_id: id,
            ttl: None,
        };
        events.publish(outgoing).await?;
    }
    Ok(count)
}

/// The discovery rounds of one lattice in this replica: one at start-up, one per period
/// (deduplicated across replicas by the period's message id), and one when the event loop
/// reports observed state in doubt (at most one per `min_gap`). Every round's answers go into
/// the event stream as a `discovered` message, merged in order by the pipeline.
pub(crate) struct DiscoveryRounds {
    pub(crate) lattice: String,
    pub(crate) replica: String,
    pub(crate) every: Duration,
    pub(crate) min_gap: Duration,
}

impl DiscoveryRounds {
    pub(crate) async fn run(
        self,
        discoverer: NatsDiscoverer,
        events: JsOutbox,
        clock: Arc<dyn Clock>,
        mut doubt: mpsc::Receiver<()>,
        mut stop: watch::Receiver<bool>,
    ) {
        let started = clock.now();
        let own_id = |at: u64| format!("discovered.{}.{}.{at}", self.lattice, self.replica);
        // A round whose answers could not be stored (the event stream electing a leader) is
        // run again after a pause: reconciles may be waiting for the first one.
        let mut retry = Retry::default();
        let ok = self.round(&discoverer, &events, started, own_id(started), "start-up").await;
        retry.after(ok);
        let mut last = started;
        let every = self.every.max(Duration::from_millis(1));
        let mut periodic = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        periodic.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let gap = self.min_gap.as_millis() as u64;
        loop {
            let again = retry.at;
            let retry_due = async move {
                match again {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = periodic.tick() => {
                    let now = clock.now();
                    let id = periodic_discovery_id(&self.lattice, now, every);
                    retry.after(self.round(&discoverer, &events, now, id, "periodic").await);
                    last = now;
                }
                Some(()) = doubt.recv() => {
                    let now = clock.now();
                    if now.saturating_sub(last) >= gap {
                        let ok = self.round(&discoverer, &events, now, own_id(now), "state in doubt");
                        retry.after(ok.await);
                        last = now;
                    }
                }
                _ = retry_due => {
                    let now = clock.now();
                    let ok = self.round(&discoverer, &events, now, own_id(now), "retry").await;
                    retry.after(ok);
                    last = now;
                }
                _ = stop.changed() => return,
            }
        }
    }

    /// Run one round; whether its answers were stored.
    async fn round(
        &self,
        discoverer: &NatsDiscoverer,
        events: &JsOutbox,
        at: u64,
        msg_id: String,
        why: &str,
    ) -> bool {
        match discover_with_id(discoverer, events, &self.lattice, at, msg_id).await {
            Ok(hosts) => {
                tracing::info!(lattice = %self.lattice, hosts, why, "discovery round");
                true
            }
            Err(e) => {
                tracing::warn!(lattice = %self.lattice, error = %e, why, "discovery failed");
                false
            }
        }
    }
}

/// When a failed round runs again: 0.5 s after the first failure, doubling to 8 s.
#[derive(Debug, Default)]
struct Retry {
    failures: u32,
    at: Option<tokio::time::Instant>,
}

impl Retry {
    fn after(&mut self, ok: bool) {
        if ok {
            *self = Retry::default();
            return;
        }
        self.failures = self.failures.saturating_add(1);
        self.at = Some(tokio::time::Instant::now() + Self::pause(self.failures));
    }

    fn pause(failures: u32) -> Duration {
        let backoff = Backoff { base: Duration::from_millis(500), max: Duration::from_secs(8) };
        Duration::from_millis(backoff.ceiling_ms(failures))
    }
}

#[cfg(test)]
mod tests {
    use super::Retry;

    #[test]
    fn a_failed_round_runs_again_sooner_than_the_wait_for_it() {
        let pauses: Vec<u128> = (1..=7).map(|n| Retry::pause(n).as_millis()).collect();
        assert_eq!(pauses, [500, 1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
        let mut r = Retry::default();
        r.after(false);
        assert!(r.at.is_some());
        r.after(true);
        assert!(r.at.is_none() && r.failures == 0, "a stored round ends the retries");
    }
}
