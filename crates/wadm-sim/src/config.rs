//! How a simulated lattice and its hosts are set up: [`SimConfig`], [`HostSpec`], and the
//! per-host bookkeeping tests read back ([`RequestCounts`]).

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use wadm_protocol::StringMap;

use crate::faults::FaultSettings;

/// Settings of one simulated lattice (one NATS connection for all its hosts).
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// `nats://127.0.0.1:4222`.
    pub nats_url: String,
    /// Lattice name, used verbatim in subjects.
    pub lattice: String,
    /// Heartbeat period; the first heartbeat comes one interval after the host starts.
    pub heartbeat_interval: Duration,
    /// Each host's first heartbeat is delayed by an extra uniform random share of this, so that
    /// many hosts started together do not beat in lockstep. Zero (the default) means exact.
    pub heartbeat_stagger: Duration,
    /// Seed of the RNG behind friendly names, stagger and dropped events.
    pub seed: u64,
    /// Fault switches every new host starts with.
    pub faults: FaultSettings,
}

impl SimConfig {
    /// Defaults: 30 s heartbeats, no stagger, seed 0, no faults.
    pub fn new(nats_url: impl Into<String>, lattice: impl Into<String>) -> Self {
        Self {
            nats_url: nats_url.into(),
            lattice: lattice.into(),
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_stagger: Duration::ZERO,
            seed: 0,
            faults: FaultSettings::default(),
        }
    }
}

/// What to start a host with. The `hostcore.*` labels are always added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSpec {
    /// Labels the host starts with, besides the `hostcore.*` ones.
    pub labels: StringMap,
    /// Generated (`adjective-noun-1234`) when absent.
    pub friendly_name: Option<String>,
}

impl HostSpec {
    /// Add one label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
    /// Fix the friendly name.
    pub fn friendly_name(mut self, name: impl Into<String>) -> Self {
        self.friendly_name = Some(name.into());
        self
    }
}

/// The labels every host carries: `hostcore.arch`, `hostcore.os`, `hostcore.osfamily`.
pub fn hostcore_labels() -> StringMap {
    [
        ("hostcore.arch", std::env::consts::ARCH),
        ("hostcore.os", std::env::consts::OS),
        ("hostcore.osfamily", std::env::consts::FAMILY),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A friendly name like `quiet-river-4821`.
pub fn friendly_name(rng: &mut impl Rng) -> String {
    const FIRST: [&str; 12] = [
        "amber", "brisk", "calm", "dusty", "eager", "frosty", "gentle", "hollow", "ivory", "jolly",
        "quiet", "rapid",
    ];
    const SECOND: [&str; 12] = [
        "brook", "canyon", "delta", "ember", "fjord", "grove", "harbor", "island", "meadow",
        "ridge", "river", "summit",
    ];
    let a = FIRST[rng.random_range(0..FIRST.len())];
    let b = SECOND[rng.random_range(0..SECOND.len())];
    format!("{a}-{b}-{:04}", rng.random_range(0..10_000))
}

/// How many control requests of each kind a host handled. Kinds are subject suffixes without
/// the host id: `host.ping`, `component.scale`, `link.put`, `config.get`, …
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Requests handled, by kind.
    pub by_kind: BTreeMap<String, u64>,
}

impl RequestCounts {
    /// Requests of one kind.
    pub fn get(&self, kind: &str) -> u64 {
        self.by_kind.get(kind).copied().unwrap_or(0)
    }
    /// All requests.
    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }
    pub(crate) fn record(&mut self, kind: &str) {
        *self.by_kind.entry(kind.to_string()).or_default() += 1;
    }
}
