//! The CloudEvents wadm publishes about manifests: `com.wadm.manifest_published` (data: the
//! manifest) on deploy and `com.wadm.manifest_unpublished` (data: `{name}`) on undeploy, on
//! `wadm.evt.{lattice}.manifest_published|manifest_unpublished`. Source `"wadm"`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// A structured-mode CloudEvent 1.0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CloudEvent {
    /// Always `"1.0"`.
    pub specversion: &'static str,
    /// A fresh, unique event id.
    pub id: String,
    /// `com.wadm.manifest_published` or `com.wadm.manifest_unpublished`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Always `"wadm"`.
    pub source: &'static str,
    /// Always `"application/json"`.
    pub datacontenttype: &'static str,
    /// When it was published (RFC 3339).
    pub time: String,
    /// The manifest, or `{name}` for an undeploy.
    pub data: serde_json::Value,
}

impl CloudEvent {
    fn new(short: &str, data: serde_json::Value, id: String, time: DateTime<Utc>) -> Self {
        Self {
            specversion: "1.0",
            id,
            event_type: format!("com.wadm.{short}"),
            source: "wadm",
            datacontenttype: "application/json",
            time: time.to_rfc3339_opts(SecondsFormat::Micros, true),
            data,
        }
    }

    /// The deploy event; `manifest` is the deployed manifest.
    pub fn manifest_published(
        manifest: serde_json::Value,
        id: String,
        time: DateTime<Utc>,
    ) -> Self {
        Self::new("manifest_published", manifest, id, time)
    }

    /// The undeploy event.
    pub fn manifest_unpublished(name: &str, id: String, time: DateTime<Utc>) -> Self {
        Self::new("manifest_unpublished", serde_json::json!({ "name": name }), id, time)
    }

    /// `wadm.evt.{lattice}.{short}`.
    pub fn subject(&self, lattice: &str) -> String {
        let short = self.event_type.trim_start_matches("com.wadm.");
        wadm_protocol::subject::scoped(lattice, |name| format!("wadm.evt.{name}.{short}"))
    }
}

/// Publish an event with a fresh id and the current time.
pub async fn publish(
    client: &async_nats::Client,
    lattice: &str,
    build: impl FnOnce(String, DateTime<Utc>) -> CloudEvent,
) -> Result<(), async_nats::PublishError> {
    let event = build(uuid::Uuid::new_v4().to_string(), Utc::now());
    let payload = serde_json::to_vec(&event).expect("events serialise");
    client.publish(event.subject(lattice), payload.into()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_matches_upstream_samples() {
        let time = DateTime::parse_from_rfc3339("2023-03-05T00:14:53.990820Z").unwrap().to_utc();
        let e = CloudEvent::manifest_unpublished("foobar", "id-1".into(), time);
        assert_eq!(e.subject("default"), "wadm.evt.default.manifest_unpublished");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({
                "specversion": "1.0", "id": "id-1", "type": "com.wadm.manifest_unpublished",
                "source": "wadm", "datacontenttype": "application/json",
                "time": "2023-03-05T00:14:53.990820Z", "data": {"name": "foobar"}
            })
        );
    }
}
