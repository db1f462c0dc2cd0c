//! One simulated host: what it runs and how it answers host-addressed and "all"-kind requests.
//!
//! [`HostState`] is plain data; every handler is a function of the state, the request body (and,
//! for workloads, the shared [`crate::LatticeStore`] and the host's fault switches), returning an
//! `Outcome`. This module owns the state, inventory, ping, stop, labels, auctions and provider
//! health; the workload commands live in `workloads.rs`. The quirks of a real wasmCloud 1.9.2
//! host (see `protocol.md`, "Gotchas") are reproduced on purpose.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use wadm_protocol::ctl::{
    ComponentAuctionRequest, DeleteLabelRequest, ProviderAuctionRequest, PutLabelRequest,
};
use wadm_protocol::event::{HealthCheck, HostStopped, LabelsChanged};
use wadm_protocol::{ComponentDescription, Host, HostInventory, ProviderDescription, StringMap};

use crate::outcome::{Outcome, SimEvent, parse};

/// The host version simulated hosts report.
pub const SIM_HOST_VERSION: &str = "1.9.2";

/// A component running on a simulated host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningComponent {
    /// The image it runs, as sent (a scale to another ref keeps it unless it allows an update).
    pub image_ref: String,
    /// How many instances run (`max_instances` in the inventory).
    pub count: u32,
    /// The annotations of the last scale (each scale replaces them).
    pub annotations: StringMap,
    /// Names of the configs of the last scale.
    pub config: Vec<String>,
}

/// A provider running on a simulated host (`image_ref` already normalised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningProvider {
    /// The image it was started from (normalised).
    pub image_ref: String,
    /// The annotations it was started with.
    pub annotations: StringMap,
    /// Names of the configs it was started with.
    pub config: Vec<String>,
    /// What the provider's health checks report (see [`crate::SimLattice::set_provider_health`]).
    pub healthy: bool,
}

/// Everything a simulated host is and runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    /// The host id (an nkeys server public key, `N…`).
    pub id: String,
    /// The human-friendly name (`quiet-river-4821`).
    pub friendly_name: String,
    /// Every label, `hostcore.*` included.
    pub labels: StringMap,
    /// The components it runs, by component id.
    pub components: BTreeMap<String, RunningComponent>,
    /// The providers it runs, by provider id.
    pub providers: BTreeMap<String, RunningProvider>,
}

/// What an auction ack carries.
#[derive(Serialize)]
struct AuctionAck<'a> {
    #[serde(flatten)]
    request: serde_json::Value,
    host_id: &'a str,
}

impl HostState {
    /// A host with no workloads; `labels` should already hold the `hostcore.*` ones.
    pub fn new(id: String, friendly_name: String, labels: StringMap) -> Self {
        Self { id, friendly_name, labels, components: BTreeMap::new(), providers: BTreeMap::new() }
    }

    /// The inventory (`host.get` reply and heartbeat payload) after `uptime`.
    pub fn inventory(&self, uptime: Duration) -> HostInventory {
        HostInventory {
            host_id: self.id.clone(),
            friendly_name: self.friendly_name.clone(),
            labels: self.labels.clone(),
            version: SIM_HOST_VERSION.to_string(),
            uptime_seconds: uptime.as_secs(),
            uptime_human: human_uptime(uptime),
            components: self
                .components
                .iter()
                .map(|(id, c)| ComponentDescription {
                    id: id.clone(),
                    image_ref: c.image_ref.clone(),
                    name: None,
                    annotations: c.annotations.clone(),
                    revision: 0,
                    max_instances: c.count,
                    limits: None,
                })
                .collect(),
            providers: self
                .providers
                .iter()
                .map(|(id, p)| ProviderDescription {
                    id: id.clone(),
                    image_ref: p.image_ref.clone(),
                    name: None,
                    annotations: p.annotations.clone(),
                    revision: 0,
                })
                .collect(),
        }
    }

    /// The `host.ping` answer.
    pub(crate) fn ping(&self, lattice: &str, uptime: Duration, nats_url: &str) -> Outcome {
        Outcome::with(Host {
            id: self.id.clone(),
            friendly_name: self.friendly_name.clone(),
            labels: self.labels.clone(),
            lattice: lattice.to_string(),
            version: SIM_HOST_VERSION.to_string(),
            uptime_seconds: uptime.as_secs(),
            uptime_human: human_uptime(uptime),
            ctl_host: Some(nats_url.to_string()),
            rpc_host: Some(nats_url.to_string()),
        })
    }

    /// `host.stop.{host}`: acknowledge, say `host_stopped`, exit.
    pub(crate) fn stop(&self) -> Outcome {
        let mut o =
            Outcome::ok().event("host_stopped", HostStopped { labels: self.labels.clone() });
        o.stop_host = true;
        o
    }

    /// Make a provider's health checks pass or fail. Returns the event its next check emits:
    /// `health_check_passed` / `health_check_failed` on a change, else `health_check_status`;
    /// `None` when the provider does not run here.
    pub(crate) fn set_provider_health(
        &mut self,
        provider_id: &str,
        healthy: bool,
    ) -> Option<SimEvent> {
        let provider = self.providers.get_mut(provider_id)?;
        let short = match (provider.healthy == healthy, healthy) {
            (true, _) => "health_check_status",
            (false, true) => "health_check_passed",
            (false, false) => "health_check_failed",
        };
        provider.healthy = healthy;
        let check = HealthCheck { provider_id: provider_id.to_string(), host_id: self.id.clone() };
        Some(SimEvent::new(short, check))
    }

    /// The periodic `health_check_status` of every provider (health unchanged).
    pub(crate) fn health_statuses(&self) -> Vec<SimEvent> {
        self.providers
            .keys()
            .map(|id| {
                let check = HealthCheck { provider_id: id.clone(), host_id: self.id.clone() };
                SimEvent::new("health_check_status", check)
            })
            .collect()
    }

    /// `label.put.{host}`: `hostcore.*` labels are fixed.
    pub(crate) fn put_label(&mut self, body: &[u8]) -> Outcome {
        let req: PutLabelRequest = match parse(body, "label put") {
            Ok(r) => r,
            Err(o) => return *o,
        };
        if req.key.to_ascii_lowercase().starts_with("hostcore.") {
            return Outcome::error(format!("label `{}` is reserved and cannot be set", req.key));
        }
        self.labels.insert(req.key, req.value);
        self.labels_changed()
    }

    /// `label.del.{host}`.
    pub(crate) fn delete_label(&mut self, body: &[u8]) -> Outcome {
        let req: DeleteLabelRequest = match parse(body, "label delete") {
            Ok(r) => r,
            Err(o) => return *o,
        };
        if req.key.to_ascii_lowercase().starts_with("hostcore.") {
            return Outcome::error(format!(
                "label `{}` is reserved and cannot be deleted",
                req.key
            ));
        }
        self.labels.remove(&req.key);
        self.labels_changed()
    }

    fn labels_changed(&self) -> Outcome {
        Outcome::ok().event(
            "labels_changed",
            LabelsChanged { host_id: self.id.clone(), labels: self.labels.clone() },
        )
    }

    /// `component.auction`: only hosts whose labels satisfy the constraints answer.
    pub(crate) fn component_auction(&self, body: &[u8]) -> Outcome {
        let req: ComponentAuctionRequest = match parse(body, "component auction") {
            Ok(r) => r,
            Err(o) => return *o,
        };
        if !self.satisfies(&req.constraints) {
            return Outcome::silent();
        }
        self.auction_ack(&req)
    }

    /// `provider.auction`: qualifying hosts that do not already run the provider answer.
    pub(crate) fn provider_auction(&self, body: &[u8]) -> Outcome {
        let req: ProviderAuctionRequest = match parse(body, "provider auction") {
            Ok(r) => r,
            Err(o) => return *o,
        };
        if !self.satisfies(&req.constraints) || self.providers.contains_key(&req.provider_id) {
            return Outcome::silent();
        }
        self.auction_ack(&req)
    }

    fn auction_ack(&self, request: &impl Serialize) -> Outcome {
        let request = serde_json::to_value(request).unwrap_or_default();
        Outcome::with(AuctionAck { request, host_id: &self.id })
    }

    fn satisfies(&self, constraints: &StringMap) -> bool {
        constraints.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }
}

/// `1h 2m 3s`-style uptime, leading zero units omitted (`0s` at start).
pub fn human_uptime(uptime: Duration) -> String {
    let secs = uptime.as_secs();
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut parts = Vec::new();
    for (value, unit) in [(d, "d"), (h, "h"), (m, "m")] {
        if value > 0 || !parts.is_empty() {
            parts.push(format!("{value}{unit}"));
        }
    }
    parts.push(format!("{s}s"));
    parts.join(" ")
}
