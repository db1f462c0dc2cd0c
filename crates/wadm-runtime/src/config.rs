//! Runtime settings.

use std::time::Duration;

use wadm_lattice::LeaseConfig;
use wadm_scheduler::ScalerFactory;

use crate::backoff::Backoff;
use crate::bad_hosts::BadHostConfig;

/// How the runtime behaves; the defaults suit a real lattice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Host leases (a silent host is lost after two heartbeat intervals plus slack).
    pub lease: LeaseConfig,
    /// How long a command stays valid: older orders are dropped, not executed (default 60 s).
    pub command_ttl: Duration,
    /// How long an order issued counts as in flight without the lattice confirming it (at least
    /// `command_ttl`; default 70 s): then it is forgotten and planned again from what is seen.
    pub order_lifetime: Duration,
    /// How long after a confirmed `component.update` a `component_scaled(new ref, 0)` from the
    /// same host is taken for the update's echo (a 1.9.2 host quirk) and not applied (10 s).
    pub update_echo: Duration,
    /// Backoff of an application after a failure (a host refused or reported failing).
    pub failure_backoff: Backoff,
    /// Backoff between deliveries of a control request nobody answered.
    pub request_backoff: Backoff,
    /// When a host that keeps failing a placement is avoided for it (see
    /// [`crate::bad_hosts`]).
    pub bad_hosts: BadHostConfig,
    /// Deliveries of an unanswered control request before it counts as failed.
    pub max_request_attempts: u64,
    /// How long one control request waits for its reply.
    pub request_timeout: Duration,
    /// While a step or a command takes long, how often the consumer is told it is still in
    /// progress (keep it well under the consumers' ack wait; default 1 s).
    pub progress_every: Duration,
    /// How often resync ticks are published (leases, retries, full reconcile).
    pub tick_every: Duration,
    /// The most event-stream messages of one lattice handled as one step (one read of the
    /// record, one reconcile, one write; default 256).
    pub batch_size: usize,
    /// Compare-and-set conflicts tolerated while handling one event.
    pub max_cas_attempts: u32,
    /// While more events of a lattice are queued, a step only notes which applications it
    /// affected and leaves their reconcile to a later step — at the latest after this many
    /// steps put off in a row (`0`: never put off) ...
    pub max_deferred_steps: u32,
    /// ... or once the oldest put-off step is this old.
    pub max_deferred: Duration,
    /// The longest a lattice whose hosts ran before wadm saw them start waits, from its state's
    /// first step, for a complete discovery round before it is reconciled (see
    /// [`crate::discovery::first_round`]; default 30 s, well above a round's gathering window).
    pub first_round_wait: Duration,
    /// Orphan collection (see [`crate::orphans`]).
    pub orphans: OrphanConfig,
    /// Which scalers are built from a lattice's desired state (default: the built-in ones). Every
    /// replica of a lattice must use the same.
    pub scalers: ScalerFactory,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            lease: LeaseConfig::default(),
            command_ttl: Duration::from_secs(60),
            order_lifetime: Duration::from_secs(70),
            update_echo: Duration::from_secs(10),
            failure_backoff: Backoff {
                base: Duration::from_secs(2),
                max: Duration::from_secs(300),
            },
            request_backoff: Backoff {
                base: Duration::from_millis(500),
                max: Duration::from_secs(30),
            },
            bad_hosts: BadHostConfig::default(),
            max_request_attempts: 5,
            request_timeout: Duration::from_secs(5),
            tick_every: Duration::from_secs(5),
            progress_every: Duration::from_secs(1),
            max_cas_attempts: 50,
            batch_size: 256,
            max_deferred_steps: 256,
            max_deferred: Duration::from_secs(1),
            first_round_wait: Duration::from_secs(30),
            orphans: OrphanConfig::default(),
            scalers: ScalerFactory::builtin(),
        }
    }
}

/// What wadm does with orphans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum OrphanMode {
    /// Nothing: no marks, no reports.
    Off,
    /// Mark them and report those past the grace period (log, metrics); remove nothing.
    Report,
    /// Mark them and remove those still orphaned after the grace period.
    #[default]
    Sweep,
}

impl OrphanMode {
    /// The name on the command line and in logs (`off`, `report` or `sweep`).
    pub fn as_str(self) -> &'static str {
        match self {
            OrphanMode::Off => "off",
            OrphanMode::Report => "report",
            OrphanMode::Sweep => "sweep",
        }
    }
}

impl std::str::FromStr for OrphanMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(OrphanMode::Off),
            "report" => Ok(OrphanMode::Report),
            "sweep" => Ok(OrphanMode::Sweep),
            other => Err(format!("{other:?}: expected report, sweep or off")),
        }
    }
}

/// Default grace period: an orphan is removed once it has been one for this long.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);

/// Orphan collection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrphanConfig {
    /// What is done with orphans.
    pub mode: OrphanMode,
    /// How long something must stay an orphan before it is reported or removed.
    pub grace: Duration,
}

impl Default for OrphanConfig {
    fn default() -> Self {
        Self { mode: OrphanMode::default(), grace: DEFAULT_GRACE }
    }
}

impl OrphanConfig {
    pub(crate) fn grace_ms(&self) -> u64 {
        u64::try_from(self.grace.as_millis()).unwrap_or(u64::MAX)
    }
}
