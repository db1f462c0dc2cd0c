//! Host CloudEvents (`wasmbus.evt.{lattice}.{short}`), structured-mode JSON, CloudEvents 1.0.
//!
//! [`CloudEvent`] is the envelope; [`HostEvent`] is its typed payload. Decoding is tolerant: absent
//! fields take defaults, and an event type wadm does not know decodes as [`HostEvent::Unknown`]
//! (to be skipped and counted), never as an error.

use serde::{Deserialize, Serialize};

use crate::types::{HostInventory, Link, StringMap, default_link_name};

/// The type prefix of every host event: `com.wasmcloud.lattice.{short}`.
pub const HOST_EVENT_TYPE_PREFIX: &str = "com.wasmcloud.lattice.";
/// Manager event type published on deploy.
pub const MANIFEST_PUBLISHED: &str = "com.wadm.manifest_published";
/// Manager event type published on undeploy.
pub const MANIFEST_UNPUBLISHED: &str = "com.wadm.manifest_unpublished";

/// A CloudEvents 1.0 envelope in structured JSON mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    /// CloudEvents version (`1.0`).
    #[serde(default = "spec_version")]
    pub specversion: String,
    /// Unique per event: duplicates carry the same id.
    #[serde(default)]
    pub id: String,
    /// The full event type (`com.wasmcloud.lattice.host_started`, …).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The emitting host's id (prefer it over `data.host_id`).
    #[serde(default)]
    pub source: String,
    /// How `data` is encoded (JSON).
    #[serde(default = "json_content_type")]
    pub datacontenttype: String,
    /// RFC 3339; kept as text so decoding never fails on an odd timestamp.
    #[serde(default)]
    pub time: String,
    /// The type-specific payload, decoded by [`HostEvent`] when it is a host event.
    #[serde(default)]
    pub data: serde_json::Value,
}

fn spec_version() -> String {
    "1.0".to_string()
}

fn json_content_type() -> String {
    "application/json".to_string()
}

impl CloudEvent {
    /// A host event envelope with the given short type (`host_started`, …).
    pub fn host_event(
        short: &str,
        id: impl Into<String>,
        source: impl Into<String>,
        time: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            specversion: spec_version(),
            id: id.into(),
            event_type: format!("{HOST_EVENT_TYPE_PREFIX}{short}"),
            source: source.into(),
            datacontenttype: json_content_type(),
            time: time.into(),
            data,
        }
    }

    /// The short type of a host event (`component_scaled`), if this is one.
    pub fn short_type(&self) -> Option<&str> {
        self.event_type.strip_prefix(HOST_EVENT_TYPE_PREFIX)
    }
}

/// Why an event could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    /// The message is not a CloudEvent envelope.
    #[error("event is not a CloudEvent: {0}")]
    Envelope(serde_json::Error),
    /// The envelope is fine but its `data` does not fit the event type.
    #[error("event {event_type} has a malformed payload: {source}")]
    Payload {
        /// The event's type.
        event_type: String,
        /// What did not fit.
        #[source]
        source: serde_json::Error,
    },
    /// A name or id too long to be stored (see [`crate::names`]).
    #[error("event {event_type} refused: {reason}")]
    Bounds {
        /// The event's type.
        event_type: String,
        /// Which name or id, and its limit.
        reason: String,
    },
}

/// `host_started`. The host id is the CloudEvent `source`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostStarted {
    /// The human-readable name the host chose.
    #[serde(default)]
    pub friendly_name: String,
    /// The host's labels at start.
    #[serde(default)]
    pub labels: StringMap,
    /// How long the host has been up.
    #[serde(default)]
    pub uptime_seconds: u64,
    /// The wasmCloud version the host runs.
    #[serde(default)]
    pub version: String,
}

/// `host_stopped` (graceful stops only).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostStopped {
    /// The host's labels when it stopped.
    #[serde(default)]
    pub labels: StringMap,
}

/// `component_scaled` and `component_scale_failed` (which adds `error`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ComponentScaled {
    /// The component id.
    #[serde(default)]
    pub component_id: String,
    /// Copied from the request: prefer the CloudEvent `source`.
    #[serde(default)]
    pub host_id: String,
    /// The image the component runs.
    #[serde(default)]
    pub image_ref: String,
    /// The maximum concurrent instances now on the host (`0`: stopped).
    #[serde(default)]
    pub max_instances: u32,
    /// Annotations the component carries (wadm's ownership marks).
    #[serde(default)]
    pub annotations: StringMap,
    /// The component's embedded claims, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<serde_json::Value>,
    /// Why scaling failed (`component_scale_failed` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `provider_started`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProviderStarted {
    /// The provider id.
    #[serde(default)]
    pub provider_id: String,
    /// The host it started on (prefer the CloudEvent `source`).
    #[serde(default)]
    pub host_id: String,
    /// The provider image.
    #[serde(default)]
    pub image_ref: String,
    /// Annotations the provider carries (wadm's ownership marks).
    #[serde(default)]
    pub annotations: StringMap,
    /// The provider's embedded claims, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<serde_json::Value>,
}

/// `provider_start_failed`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProviderStartFailed {
    /// The provider id.
    #[serde(default)]
    pub provider_id: String,
    /// The image that failed to start.
    #[serde(default)]
    pub provider_ref: String,
    /// The host it failed on.
    #[serde(default)]
    pub host_id: String,
    /// Why it failed.
    #[serde(default)]
    pub error: String,
}

/// `provider_stopped`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProviderStopped {
    /// The provider id.
    #[serde(default)]
    pub provider_id: String,
    /// The host it stopped on.
    #[serde(default)]
    pub host_id: String,
    /// Annotations it carried.
    #[serde(default)]
    pub annotations: StringMap,
    /// Why it stopped, as the host says.
    #[serde(default)]
    pub reason: String,
}

/// `health_check_passed` / `health_check_failed` / `health_check_status`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HealthCheck {
    /// The provider checked.
    #[serde(default)]
    pub provider_id: String,
    /// The host it runs on.
    #[serde(default)]
    pub host_id: String,
}

/// `linkdef_set_failed`: the link plus the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSetFailed {
    /// The link the host could not put.
    #[serde(flatten)]
    pub link: Link,
    /// Why it failed.
    #[serde(default)]
    pub error: String,
}

/// `linkdef_deleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkDeleted {
    /// The component the link went out from.
    pub source_id: String,
    /// The link name.
    #[serde(default = "default_link_name")]
    pub name: String,
    /// WIT namespace of the linked interfaces.
    pub wit_namespace: String,
    /// WIT package of the linked interfaces.
    pub wit_package: String,
    /// The link's target, when the host says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The linked interfaces, when the host says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<String>>,
}

/// `config_set` / `config_deleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEvent {
    /// The config that was put or deleted.
    pub config_name: String,
}

/// `labels_changed`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LabelsChanged {
    /// The host whose labels changed.
    #[serde(default)]
    pub host_id: String,
    /// Its full label set now.
    #[serde(default)]
    pub labels: StringMap,
}

/// The typed payload of a host event.
#[derive(Debug, Clone, PartialEq)]
pub enum HostEvent {
    /// A host started.
    HostStarted(HostStarted),
    /// A host's periodic inventory (`host_heartbeat`).
    HostHeartbeat(HostInventory),
    /// A host stopped gracefully.
    HostStopped(HostStopped),
    /// A component's count changed on a host.
    ComponentScaled(ComponentScaled),
    /// A host could not scale a component.
    ComponentScaleFailed(ComponentScaled),
    /// A provider started on a host.
    ProviderStarted(ProviderStarted),
    /// A provider failed to start.
    ProviderStartFailed(ProviderStartFailed),
    /// A provider stopped on a host.
    ProviderStopped(ProviderStopped),
    /// A provider passed its health check.
    HealthCheckPassed(HealthCheck),
    /// A provider failed its health check.
    HealthCheckFailed(HealthCheck),
    /// A provider's health, reported periodically.
    HealthCheckStatus(HealthCheck),
    /// A link was put (`linkdef_set`).
    LinkSet(Link),
    /// A host could not put a link.
    LinkSetFailed(LinkSetFailed),
    /// A link was deleted (`linkdef_deleted`).
    LinkDeleted(LinkDeleted),
    /// A config was put.
    ConfigSet(ConfigEvent),
    /// A config was deleted.
    ConfigDeleted(ConfigEvent),
    /// A host's labels changed.
    LabelsChanged(LabelsChanged),
    /// An event type wadm does not know: skip it and count it.
    Unknown(String),
}

impl HostEvent {
    /// Decode the payload of an envelope according to its type.
    pub fn decode(event: &CloudEvent) -> Result<HostEvent, EventDecodeError> {
        fn payload<T: serde::de::DeserializeOwned>(
            event: &CloudEvent,
        ) -> Result<T, EventDecodeError> {
            // `null` data (absent) decodes as an empty object so all-default payloads work.
            let data = if event.data.is_null() {
                serde_json::Value::Object(Default::default())
            } else {
                event.data.clone()
            };
            serde_json::from_value(data).map_err(|source| EventDecodeError::Payload {
                event_type: event.event_type.clone(),
                source,
            })
        }
        let Some(short) = event.short_type() else {
            return Ok(HostEvent::Unknown(event.event_type.clone()));
        };
        Ok(match short {
            "host_started" => HostEvent::HostStarted(payload(event)?),
            "host_heartbeat" => HostEvent::HostHeartbeat(payload(event)?),
            "host_stopped" => HostEvent::HostStopped(payload(event)?),
            "component_scaled" => HostEvent::ComponentScaled(payload(event)?),
            "component_scale_failed" => HostEvent::ComponentScaleFailed(payload(event)?),
            "provider_started" => HostEvent::ProviderStarted(payload(event)?),
            "provider_start_failed" => HostEvent::ProviderStartFailed(payload(event)?),
            "provider_stopped" => HostEvent::ProviderStopped(payload(event)?),
            "health_check_passed" => HostEvent::HealthCheckPassed(payload(event)?),
            "health_check_failed" => HostEvent::HealthCheckFailed(payload(event)?),
            "health_check_status" => HostEvent::HealthCheckStatus(payload(event)?),
            "linkdef_set" => HostEvent::LinkSet(payload(event)?),
            "linkdef_set_failed" => HostEvent::LinkSetFailed(payload(event)?),
            "linkdef_deleted" => HostEvent::LinkDeleted(payload(event)?),
            "config_set" => HostEvent::ConfigSet(payload(event)?),
            "config_deleted" => HostEvent::ConfigDeleted(payload(event)?),
            "labels_changed" => HostEvent::LabelsChanged(payload(event)?),
            _ => HostEvent::Unknown(event.event_type.clone()),
        })
    }

    /// Decode an envelope from bytes, then its payload; refuse it when a name or id in it is
    /// too long to be stored ([`HostEvent::bounds_error`]).
    pub fn decode_bytes(bytes: &[u8]) -> Result<(CloudEvent, HostEvent), EventDecodeError> {
        let envelope: CloudEvent =
            serde_json::from_slice(bytes).map_err(EventDecodeError::Envelope)?;
        let event = HostEvent::decode(&envelope)?;
        let source = crate::names::id_error("source", &envelope.source);
        if let Some(reason) = source.or_else(|| event.bounds_error()) {
            return Err(EventDecodeError::Bounds { event_type: envelope.event_type, reason });
        }
        Ok((envelope, event))
    }

    /// Why this event is refused, if it is: a name or id past [`crate::names::MAX_ID_LEN`]
    /// (it would make a storage key NATS refuses, and the event would wedge its lattice).
    pub fn bounds_error(&self) -> Option<String> {
        let one = |pairs: &[(&str, &str)]| {
            crate::names::first_id_error(pairs.iter().map(|(f, v)| (f.to_string(), *v)))
        };
        match self {
            HostEvent::HostHeartbeat(inventory) => inventory.bounds_error(),
            HostEvent::ComponentScaled(c) | HostEvent::ComponentScaleFailed(c) => {
                one(&[("component_id", &c.component_id), ("host_id", &c.host_id)])
            }
            HostEvent::ProviderStarted(p) => {
                one(&[("provider_id", &p.provider_id), ("host_id", &p.host_id)])
            }
            HostEvent::ProviderStartFailed(p) => {
                one(&[("provider_id", &p.provider_id), ("host_id", &p.host_id)])
            }
            HostEvent::ProviderStopped(p) => {
                one(&[("provider_id", &p.provider_id), ("host_id", &p.host_id)])
            }
            HostEvent::HealthCheckPassed(h)
            | HostEvent::HealthCheckFailed(h)
            | HostEvent::HealthCheckStatus(h) => {
                one(&[("provider_id", &h.provider_id), ("host_id", &h.host_id)])
            }
            HostEvent::LinkSet(link) => link.bounds_error(),
            HostEvent::LinkSetFailed(failed) => failed.link.bounds_error(),
            HostEvent::LinkDeleted(d) => one(&[
                ("source_id", &d.source_id),
                ("name", &d.name),
                ("wit_namespace", &d.wit_namespace),
                ("wit_package", &d.wit_package),
                ("target", d.target.as_deref().unwrap_or_default()),
            ]),
            HostEvent::ConfigSet(c) | HostEvent::ConfigDeleted(c) => {
                one(&[("config_name", &c.config_name)])
            }
            HostEvent::LabelsChanged(l) => one(&[("host_id", &l.host_id)]),
            HostEvent::HostStarted(_) | HostEvent::HostStopped(_) | HostEvent::Unknown(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: &str = include_str!("../../../fixtures/events/upstream-event-samples.json");

    #[test]
    fn overlong_ids_are_refused_naming_the_field() {
        let huge = "c".repeat(crate::names::MAX_ID_LEN + 1);
        let event = serde_json::json!({
            "specversion": "1.0", "id": "1", "source": "NHOST",
            "type": "com.wasmcloud.lattice.host_heartbeat",
            "data": {"host_id": "NHOST", "components": [{"id": "ok", "image_ref": "i"}, {"id": huge, "image_ref": "i"}]},
        });
        let e = HostEvent::decode_bytes(&serde_json::to_vec(&event).unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "event com.wasmcloud.lattice.host_heartbeat refused: components[1].id is 257 bytes long; at most 256 are accepted"
        );
        let link = serde_json::json!({
            "specversion": "1.0", "id": "2", "source": "NHOST",
            "type": "com.wasmcloud.lattice.linkdef_set",
            "data": {"source_id": "a", "target": "b", "name": "default", "wit_namespace": "wasi",
                     "wit_package": "http", "interfaces": ["x", huge]},
        });
        let e = HostEvent::decode_bytes(&serde_json::to_vec(&link).unwrap()).unwrap_err();
        assert!(e.to_string().contains("interfaces[1] is 257 bytes"), "{e}");
    }

    #[test]
    fn every_upstream_sample_decodes() {
        let samples: Vec<serde_json::Value> = serde_json::from_str(SAMPLES).unwrap();
        assert!(samples.len() >= 15);
        let mut known = 0;
        for sample in samples {
            let bytes = serde_json::to_vec(&sample).unwrap();
            let (envelope, event) = HostEvent::decode_bytes(&bytes)
                .unwrap_or_else(|e| panic!("{} failed: {e}", sample["type"]));
            match event {
                HostEvent::Unknown(t) => assert!(t.starts_with("com.wadm."), "{t}"),
                _ => {
                    known += 1;
                    assert!(envelope.short_type().is_some());
                }
            }
        }
        assert!(known >= 13);
    }

    #[test]
    fn unknown_types_are_not_errors() {
        let ev = CloudEvent::host_event("brand_new", "1", "N", "", serde_json::json!({"x": 1}));
        assert!(matches!(HostEvent::decode(&ev).unwrap(), HostEvent::Unknown(_)));
    }

    #[test]
    fn absent_fields_default() {
        let ev = CloudEvent::host_event("host_heartbeat", "1", "NHOST", "", serde_json::json!({}));
        let HostEvent::HostHeartbeat(inv) = HostEvent::decode(&ev).unwrap() else { panic!() };
        assert!(inv.components.is_empty() && inv.host_id.is_empty());
    }
}
