//! A lattice of model hosts in memory: answers control requests the way wasmCloud hosts do (the
//! pure model of `wadm_scheduler::apply`) and reports what happened as host CloudEvents on the
//! event log, with switchable faults (a component that fails to scale, an unreachable lattice).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat};
use wadm_lattice::{HostState, LatticeState};
use wadm_protocol::ctl::{
    CtlReply, DeleteLinkRequest, ScaleComponentRequest, StartProviderRequest, StopProviderRequest,
    UpdateComponentRequest,
};
use wadm_protocol::{
    CloudEvent, ComponentDescription, HostInventory, Link, ProviderDescription, StringMap,
};
use wadm_scheduler::Command;
use wadm_scheduler::apply::apply_command;

use super::log::MemoryLog;
use crate::clock::Clock;
use crate::io::{ControlClient, IoError, Outbox, Outgoing};

#[derive(Default)]
struct Inner {
    truth: LatticeState,
    next_event: u64,
    failing_components: BTreeMap<String, String>,
    unreachable: bool,
    requests: u64,
}

/// Model hosts of one lattice. Clones share them.
#[derive(Clone)]
pub struct MemoryLattice {
    inner: Arc<Mutex<Inner>>,
    events: MemoryLog,
    clock: Arc<dyn Clock>,
}

fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

impl MemoryLattice {
    pub fn new(lattice: &str, events: MemoryLog, clock: Arc<dyn Clock>) -> Self {
        let truth = LatticeState { lattice: lattice.to_string(), ..LatticeState::default() };
        let inner = Inner { truth, ..Inner::default() };
        Self { inner: Arc::new(Mutex::new(inner)), events, clock }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the hosts run.
    pub fn truth(&self) -> LatticeState {
        self.lock().truth.clone()
    }

    /// Control requests received.
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Total instances of `component` across hosts.
    pub fn instances(&self, component: &str) -> u32 {
        let inner = self.lock();
        inner
            .truth
            .hosts
            .values()
            .filter_map(|h| h.components.get(component))
            .map(|c| c.count)
            .sum()
    }

    /// From now on, scaling `component` fails with `message` (reported as
    /// `component_scale_failed`); `None` heals it.
    pub fn fail_component(&self, component: &str, message: Option<&str>) {
        let mut inner = self.lock();
        match message {
            Some(m) => inner.failing_components.insert(component.to_string(), m.to_string()),
            None => inner.failing_components.remove(component),
        };
    }

    /// While set, every control request times out.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.lock().unreachable = unreachable;
    }

    /// Start a host: it announces itself with `host_started` and a heartbeat.
    pub async fn add_host(&self, id: &str, labels: StringMap) {
        self.add_host_quietly(id, labels.clone());
        let started = serde_json::json!({"friendly_name": format!("host-{id}"), "labels": labels, "version": "1.9.2"});
        self.emit(id, "host_started", started).await;
        self.heartbeat(id).await;
    }

    /// A host that runs but whose announcements were lost (only discovery finds it).
    pub fn add_host_quietly(&self, id: &str, labels: StringMap) {
        {
            let mut inner = self.lock();
            let host = HostState {
                id: id.to_string(),
                friendly_name: format!("host-{id}"),
                labels: labels.clone(),
                version: "1.9.2".into(),
                ..HostState::default()
            };
            inner.truth.hosts.insert(id.to_string(), host);
        }
    }

    /// Something outside wadm stops `component` on host `id` (the host reports it scaled to 0).
    pub async fn stop_component(&self, id: &str, component: &str) {
        let removed = {
            let mut inner = self.lock();
            inner.truth.hosts.get_mut(id).and_then(|h| h.components.remove(component))
        };
        let Some(removed) = removed else { return };
        let data = serde_json::json!({
            "component_id": component, "host_id": id, "image_ref": removed.image_ref,
            "max_instances": 0, "annotations": removed.annotations,
        });
        self.emit(id, "component_scaled", data).await;
    }

    /// Something outside wadm runs `count` instances of `component` (no wadm annotations) on
    /// host `id`, which reports it scaled.
    pub async fn run_outside_wadm(&self, id: &str, component: &str, image: &str, count: u32) {
        let instance = wadm_lattice::ComponentInstance {
            id: component.to_string(),
            image_ref: image.to_string(),
            count,
            annotations: StringMap::new(),
        };
        {
            let mut inner = self.lock();
            let Some(host) = inner.truth.hosts.get_mut(id) else { return };
            host.components.insert(component.to_string(), instance);
        }
        let data = serde_json::json!({
            "component_id": component, "host_id": id, "image_ref": image,
            "max_instances": count, "annotations": {},
        });
        self.emit(id, "component_scaled", data).await;
    }

    /// Something outside wadm puts `link`, and host `source` (any id, known or not) answers.
    pub async fn put_link_answered_by(&self, source: &str, link: Link) {
        self.lock().truth.links.insert(link.key(), link.clone());
        self.emit(source, "linkdef_set", to_json(&link)).await;
    }

    /// Every host sends a heartbeat.
    pub async fn heartbeat_all(&self) {
        let hosts: Vec<String> = self.lock().truth.hosts.keys().cloned().collect();
        for host in hosts {
            self.heartbeat(&host).await;
        }
    }

    /// One host sends a heartbeat (its full inventory).
    pub async fn heartbeat(&self, id: &str) {
        let Some(host) = self.lock().truth.hosts.get(id).cloned() else { return };
        let inventory = inventory_of(&host);
        self.emit(id, "host_heartbeat", to_json(&inventory)).await;
    }

    async fn emit(&self, source: &str, short: &str, data: serde_json::Value) {
        let (lattice, n) = {
            let mut inner = self.lock();
            inner.next_event += 1;
            (inner.truth.lattice.clone(), inner.next_event)
        };
        let now = self.clock.now();
        let time = DateTime::from_timestamp_millis(now as i64)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_default();
        let id = format!("ev-{n:012}");
        let event = CloudEvent::host_event(short, id.clone(), source, time, data);
        let outgoing = Outgoing {
            subject: wadm_protocol::subject::event(&lattice, short),
            payload: serde_json::to_vec(&event).unwrap_or_default(),
            msg_id: id,
            ttl: None,
        };
        // The in-memory log never fails.
        let _ = self.events.publish(outgoing).await;
    }

    fn decode(suffix: &[&str], body: &[u8]) -> Option<Command> {
        fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
            serde_json::from_slice(body).ok()
        }
        Some(match suffix {
            ["component", "scale", _] => {
                Command::ScaleComponent(json::<ScaleComponentRequest>(body)?)
            }
            ["component", "update", _] => {
                Command::UpdateComponent(json::<UpdateComponentRequest>(body)?)
            }
            ["provider", "start", _] => Command::StartProvider(json::<StartProviderRequest>(body)?),
            ["provider", "stop", _] => Command::StopProvider(json::<StopProviderRequest>(body)?),
            ["link", "put"] => Command::PutLink(json::<Link>(body)?),
            ["link", "del"] => Command::DeleteLink(json::<DeleteLinkRequest>(body)?),
            ["config", "put", name] => {
                Command::PutConfig { name: name.to_string(), values: json(body)? }
            }
            ["config", "del", name] => Command::DeleteConfig { name: name.to_string() },
            _ => return None,
        })
    }
}

impl ControlClient for MemoryLattice {
    async fn request(
        &self,
        subject: &str,
        body: Vec<u8>,
        _timeout: Duration,
    ) -> Result<Vec<u8>, IoError> {
        let reply = |r: CtlReply| serde_json::to_vec(&r).unwrap_or_default();
        {
            let mut inner = self.lock();
            inner.requests += 1;
            if inner.unreachable {
                return Err(IoError::Timeout { what: subject.to_string() });
            }
        }
        let tokens: Vec<&str> = subject.split('.').collect();
        if let [_, _, _, _, "config", "get", name] = tokens.as_slice() {
            let values = self.lock().truth.configs.get(*name).and_then(|c| c.values.clone());
            return Ok(reply(match values {
                Some(values) => CtlReply::with(to_json(&values)),
                None => CtlReply { message: "Configuration not found".into(), ..CtlReply::ok() },
            }));
        }
        let Some(command) = tokens.get(4..).and_then(|suffix| Self::decode(suffix, &body)) else {
            return Ok(reply(CtlReply::error(format!("unknown request {subject}"))));
        };
        if let Command::ScaleComponent(r) = &command {
            let failing = self.lock().failing_components.get(&r.component_id).cloned();
            if let Some(error) = failing {
                let mut data = to_json(r);
                data["max_instances"] = r.count.into();
                data["image_ref"] = r.component_ref.clone().into();
                data["error"] = error.into();
                self.emit(&r.host_id, "component_scale_failed", data).await;
                return Ok(reply(CtlReply::ok()));
            }
        }
        let accepted = apply_command(&mut self.lock().truth, &command);
        if !accepted {
            // The hosts' own words for the refusals of protocol gotcha 8.
            let message = match &command {
                Command::StartProvider(r) => {
                    format!("provider {} is already running on host {}", r.provider_id, r.host_id)
                }
                Command::StopProvider(r) => {
                    format!("provider {} is not running on host {}", r.provider_id, r.host_id)
                }
                other => format!("{} refused", other.kind()),
            };
            return Ok(reply(CtlReply::error(message)));
        }
        match &command {
            Command::PutLink(link) => self.emit("", "linkdef_set", to_json(link)).await,
            Command::DeleteLink(r) => self.emit("", "linkdef_deleted", to_json(r)).await,
            Command::PutConfig { name, .. } | Command::DeleteConfig { name } => {
                let short = if matches!(command, Command::PutConfig { .. }) {
                    "config_set"
                } else {
                    "config_deleted"
                };
                self.emit("", short, serde_json::json!({ "config_name": name })).await;
            }
            other => {
                if let Some(host) = other.target_host() {
                    self.heartbeat(host).await;
                }
            }
        }
        Ok(reply(CtlReply::ok()))
    }
}

impl crate::io::Discoverer for MemoryLattice {
    async fn discover(
        &self,
        _lattice: &str,
        started_at: wadm_lattice::Timestamp,
    ) -> Result<wadm_lattice::Discovery, IoError> {
        let truth = self.truth();
        let hosts = truth
            .hosts
            .values()
            .map(|h| wadm_lattice::DiscoveredHost {
                host: wadm_protocol::Host {
                    id: h.id.clone(),
                    friendly_name: h.friendly_name.clone(),
                    labels: h.labels.clone(),
                    lattice: truth.lattice.clone(),
                    version: h.version.clone(),
                    ..Default::default()
                },
                inventory: Some(inventory_of(h)),
            })
            .collect();
        Ok(wadm_lattice::Discovery {
            started_at,
            hosts,
            links: Some(truth.links.values().cloned().collect()),
            configs: Default::default(),
        })
    }
}

/// A host's inventory (heartbeat payload) from the model.
fn inventory_of(host: &HostState) -> HostInventory {
    HostInventory {
        host_id: host.id.clone(),
        friendly_name: host.friendly_name.clone(),
        labels: host.labels.clone(),
        version: host.version.clone(),
        uptime_seconds: 0,
        uptime_human: String::new(),
        components: host
            .components
            .values()
            .map(|c| ComponentDescription {
                id: c.id.clone(),
                image_ref: c.image_ref.clone(),
                name: None,
                annotations: c.annotations.clone(),
                revision: 0,
                max_instances: c.count,
                limits: None,
            })
            .collect(),
        providers: host
            .providers
            .values()
            .map(|p| ProviderDescription {
                id: p.id.clone(),
                image_ref: p.image_ref.clone(),
                name: None,
                annotations: p.annotations.clone(),
                revision: 0,
            })
            .collect(),
    }
}
