//! One simulated host: what it runs and how it answers host-addressed and "all"-kind requests.
//!
//! [`HostState`] is plain data; every handler is a function of the state, the request body, the
//! shared [`LatticeStore`] and the host's fault switches, returning an [`Outcome`]. The quirks of a
//! real wasmCloud 1.9.2 host (see `protocol.md`, "Gotchas") are reproduced here on purpose.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wadm_protocol::ctl::{
    ComponentAuctionRequest, DeleteLabelRequest, ProviderAuctionRequest, PutLabelRequest,
    StopProviderRequest, UpdateComponentRequest,
};
use wadm_protocol::event::{
    ComponentScaled, HealthCheck, HostStopped, LabelsChanged, ProviderStartFailed, ProviderStarted,
    ProviderStopped,
};
use wadm_protocol::{
    ComponentDescription, Host, HostInventory, ProviderDescription, StringMap,
    normalize_provider_ref,
};

use crate::faults::FaultSwitches;
use crate::outcome::{Outcome, SimEvent, parse};
use crate::store::LatticeStore;

/// The host version simulated hosts report.
pub const SIM_HOST_VERSION: &str = "1.9.2";

/// A component running on a simulated host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningComponent {
    pub image_ref: String,
    pub count: u32,
    pub annotations: StringMap,
    pub config: Vec<String>,
}

/// A provider running on a simulated host (`image_ref` already normalised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningProvider {
    pub image_ref: String,
    pub annotations: StringMap,
    pub config: Vec<String>,
    /// What the provider's health checks report (see [`HostState::set_provider_health`]).
    pub healthy: bool,
}

/// Everything a simulated host is and runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    pub id: String,
    pub friendly_name: String,
    pub labels: StringMap,
    pub components: BTreeMap<String, RunningComponent>,
    pub providers: BTreeMap<String, RunningProvider>,
}

/// `component.scale` as a real host decodes it: an absent (or misspelt) `count` means 0.
#[derive(Deserialize)]
struct ScaleBody {
    component_ref: String,
    component_id: String,
    #[serde(default)]
    count: u32,
    #[serde(default)]
    host_id: String,
    #[serde(default)]
    annotations: StringMap,
    #[serde(default)]
    config: Vec<String>,
    #[serde(default)]
    allow_update: bool,
}

/// `provider.start`, tolerant of an absent `host_id`.
#[derive(Deserialize)]
struct StartProviderBody {
    provider_id: String,
    provider_ref: String,
    #[serde(default)]
    host_id: String,
    #[serde(default)]
    config: Vec<String>,
    #[serde(default)]
    annotations: StringMap,
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
    pub fn ping(&self, lattice: &str, uptime: Duration, nats_url: &str) -> Outcome {
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
    pub fn stop(&self) -> Outcome {
        let mut o =
            Outcome::ok().event("host_stopped", HostStopped { labels: self.labels.clone() });
        o.stop_host = true;
        o
    }

    /// `component.scale.{host}`.
    pub fn scale(&mut self, body: &[u8], store: &LatticeStore, faults: &FaultSwitches) -> Outcome {
        let req: ScaleBody = match parse(body, "component scale") {
            Ok(r) => r,
            Err(o) => return *o,
        };
        let event = |image_ref: &str, count: u32, annotations: &StringMap| ComponentScaled {
            component_id: req.component_id.clone(),
            host_id: req.host_id.clone(),
            image_ref: image_ref.to_string(),
            max_instances: count,
            annotations: annotations.clone(),
            claims: None,
            error: None,
        };
        let failed = |error: String| {
            let mut e = event(&req.component_ref, req.count, &req.annotations);
            e.error = Some(error);
            Outcome::ok().event("component_scale_failed", e)
        };
        if faults.reject_scales() {
            return failed("simulated fault: scale rejected".to_string());
        }
        let missing = store.missing_configs(&req.config);
        if req.count > 0 && !missing.is_empty() {
            return failed(format!("configuration not found: {}", missing.join(", ")));
        }
        let Some(running) = self.components.get_mut(&req.component_id) else {
            if req.count == 0 {
                return Outcome::ok()
                    .event("component_scaled", event(&req.component_ref, 0, &req.annotations));
            }
            self.components.insert(
                req.component_id.clone(),
                RunningComponent {
                    image_ref: req.component_ref.clone(),
                    count: req.count,
                    annotations: req.annotations.clone(),
                    config: req.config.clone(),
                },
            );
            // A first start reports itself twice.
            let scaled = event(&req.component_ref, req.count, &req.annotations);
            return Outcome::ok()
                .event("component_scaled", scaled.clone())
                .event("component_scaled", scaled);
        };
        if req.count == 0 {
            let image_ref = running.image_ref.clone();
            self.components.remove(&req.component_id);
            return Outcome::ok().event("component_scaled", event(&image_ref, 0, &req.annotations));
        }
        let mut outcome = Outcome::ok();
        if running.image_ref != req.component_ref {
            if req.allow_update {
                running.image_ref = req.component_ref.clone();
            } else if let Some(reply) = outcome.reply.as_mut() {
                reply.message = format!(
                    "component {} is already running with a different image reference `{}`; \
                     keeping it (use component.update to change it)",
                    req.component_id, running.image_ref
                );
            }
        }
        running.count = req.count;
        running.annotations = req.annotations.clone();
        running.config = req.config.clone();
        let scaled = event(&running.image_ref, running.count, &running.annotations);
        outcome.event("component_scaled", scaled)
    }

    /// `component.update.{host}`: new image, then a spurious `component_scaled(new ref, 0)`.
    pub fn update(&mut self, body: &[u8]) -> Outcome {
        let req: UpdateComponentRequest = match parse(body, "component update") {
            Ok(r) => r,
            Err(o) => return *o,
        };
        let Some(running) = self.components.get_mut(&req.component_id) else {
            return Outcome::error(format!(
                "component {} is not running on host {}",
                req.component_id, self.id
            ));
        };
        if running.image_ref == req.new_component_ref {
            return Outcome::reply(wadm_protocol::ctl::CtlReply {
                success: true,
                message: format!("component {} already runs that image", req.component_id),
                response: None,
            });
        }
        running.image_ref = req.new_component_ref.clone();
        if let Some(annotations) = req.annotations {
            running.annotations = annotations;
        }
        let scaled = ComponentScaled {
            component_id: req.component_id,
            host_id: req.host_id,
            image_ref: running.image_ref.clone(),
            max_instances: running.count,
            annotations: running.annotations.clone(),
            claims: None,
            error: None,
        };
        let spurious = ComponentScaled { max_instances: 0, ..scaled.clone() };
        Outcome::ok().event("component_scaled", scaled).event("component_scaled", spurious)
    }

    /// `provider.start.{host}`: refuses an id already running; the ref comes back normalised.
    pub fn start_provider(
        &mut self,
        body: &[u8],
        store: &LatticeStore,
        faults: &FaultSwitches,
    ) -> Outcome {
        let req: StartProviderBody = match parse(body, "provider start") {
            Ok(r) => r,
            Err(o) => return *o,
        };
        if self.providers.contains_key(&req.provider_id) {
            return Outcome::error(format!(
                "provider {} is already running on host {}",
                req.provider_id, self.id
            ));
        }
        let failed = |error: String| {
            Outcome::ok().event(
                "provider_start_failed",
                ProviderStartFailed {
                    provider_id: req.provider_id.clone(),
                    provider_ref: req.provider_ref.clone(),
                    host_id: req.host_id.clone(),
                    error,
                },
            )
        };
        if faults.reject_provider_starts() {
            return failed("simulated fault: provider start rejected".to_string());
        }
        let missing = store.missing_configs(&req.config);
        if !missing.is_empty() {
            return failed(format!("configuration not found: {}", missing.join(", ")));
        }
        let image_ref = normalize_provider_ref(&req.provider_ref).to_string();
        self.providers.insert(
            req.provider_id.clone(),
            RunningProvider {
                image_ref: image_ref.clone(),
                annotations: req.annotations.clone(),
                config: req.config.clone(),
                healthy: true,
            },
        );
        let health = HealthCheck { provider_id: req.provider_id.clone(), host_id: self.id.clone() };
        Outcome::ok()
            .event(
                "provider_started",
                ProviderStarted {
                    provider_id: req.provider_id.clone(),
                    host_id: req.host_id.clone(),
                    image_ref,
                    annotations: req.annotations.clone(),
                    claims: None,
                },
            )
            .event("health_check_passed", health)
    }

    /// `provider.stop.{host}`: refuses an id that is not running.
    pub fn stop_provider(&mut self, body: &[u8]) -> Outcome {
        let req: StopProviderRequest = match parse(body, "provider stop") {
            Ok(r) => r,
            Err(o) => return *o,
        };
        let Some(stopped) = self.providers.remove(&req.provider_id) else {
            return Outcome::error(format!(
                "provider {} is not running on host {}",
                req.provider_id, self.id
            ));
        };
        Outcome::ok().event(
            "provider_stopped",
            ProviderStopped {
                provider_id: req.provider_id,
                host_id: req.host_id,
                annotations: stopped.annotations,
                reason: "normal".to_string(),
            },
        )
    }

    /// Make a provider's health checks pass or fail. Returns the event its next check emits:
    /// `health_check_passed` / `health_check_failed` on a change, else `health_check_status`;
    /// `None` when the provider does not run here.
    pub fn set_provider_health(&mut self, provider_id: &str, healthy: bool) -> Option<SimEvent> {
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
    pub fn health_statuses(&self) -> Vec<SimEvent> {
        self.providers
            .keys()
            .map(|id| {
                let check = HealthCheck { provider_id: id.clone(), host_id: self.id.clone() };
                SimEvent::new("health_check_status", check)
            })
            .collect()
    }

    /// `label.put.{host}`: `hostcore.*` labels are fixed.
    pub fn put_label(&mut self, body: &[u8]) -> Outcome {
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
    pub fn delete_label(&mut self, body: &[u8]) -> Outcome {
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
    pub fn component_auction(&self, body: &[u8]) -> Outcome {
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
    pub fn provider_auction(&self, body: &[u8]) -> Outcome {
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
