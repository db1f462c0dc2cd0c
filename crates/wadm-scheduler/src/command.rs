//! Commands a plan issues. Each maps one-to-one to a lattice control request: a subject suffix, an
//! optional target host and a JSON body, so the I/O layer can send it without interpreting it.

use serde::{Deserialize, Serialize};
use wadm_protocol::ctl::{
    DeleteLinkRequest, ScaleComponentRequest, StartProviderRequest, StopProviderRequest,
    UpdateComponentRequest,
};
use wadm_protocol::subject::{self, suffix};
use wadm_protocol::{Link, StringMap};

use crate::hash::Fnv128;

/// One control request wadm wants sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// `component.scale.{host}` (count 0 stops the component on that host).
    ScaleComponent(ScaleComponentRequest),
    /// `component.update.{host}`: change the image of a running component without a gap.
    UpdateComponent(UpdateComponentRequest),
    /// `provider.start.{host}`.
    StartProvider(StartProviderRequest),
    /// `provider.stop.{host}`.
    StopProvider(StopProviderRequest),
    /// `link.put`.
    PutLink(Link),
    /// `link.del`.
    DeleteLink(DeleteLinkRequest),
    /// `config.put.{name}`.
    PutConfig { name: String, values: StringMap },
    /// `config.del.{name}`.
    DeleteConfig { name: String },
}

impl Command {
    /// The control subject suffix, including the host id or config name where the subject has one
    /// (`component.scale.NABC…`, `config.put.my_config`, `link.put`).
    pub fn subject_suffix(&self) -> String {
        let (suffix, tail) = self.suffix_parts();
        let mut out = String::with_capacity(suffix.len() + tail.map_or(0, |t| 1 + t.len()));
        out.push_str(suffix);
        if let Some(tail) = tail {
            out.push('.');
            out.push_str(tail);
        }
        out
    }

    /// The suffix's fixed part and the host id or config name that follows it after a `.`.
    fn suffix_parts(&self) -> (&'static str, Option<&str>) {
        match self {
            Command::ScaleComponent(r) => (suffix::COMPONENT_SCALE, Some(&r.host_id)),
            Command::UpdateComponent(r) => (suffix::COMPONENT_UPDATE, Some(&r.host_id)),
            Command::StartProvider(r) => (suffix::PROVIDER_START, Some(&r.host_id)),
            Command::StopProvider(r) => (suffix::PROVIDER_STOP, Some(&r.host_id)),
            Command::PutLink(_) => (suffix::LINK_PUT, None),
            Command::DeleteLink(_) => (suffix::LINK_DEL, None),
            Command::PutConfig { name, .. } => (suffix::CONFIG_PUT, Some(name)),
            Command::DeleteConfig { name } => (suffix::CONFIG_DEL, Some(name)),
        }
    }

    /// The full control subject in `lattice`.
    pub fn subject(&self, lattice: &str) -> String {
        subject::ctl(lattice, &self.subject_suffix())
    }

    /// The host that must answer, for host-addressed requests.
    pub fn target_host(&self) -> Option<&str> {
        match self {
            Command::ScaleComponent(r) => Some(&r.host_id),
            Command::UpdateComponent(r) => Some(&r.host_id),
            Command::StartProvider(r) => Some(&r.host_id),
            Command::StopProvider(r) => Some(&r.host_id),
            _ => None,
        }
    }

    /// The request body as JSON, exactly as the host expects it.
    pub fn body(&self) -> serde_json::Value {
        let value = match self {
            Command::ScaleComponent(r) => serde_json::to_value(r),
            Command::UpdateComponent(r) => serde_json::to_value(r),
            Command::StartProvider(r) => serde_json::to_value(r),
            Command::StopProvider(r) => serde_json::to_value(r),
            Command::PutLink(r) => serde_json::to_value(r),
            Command::DeleteLink(r) => serde_json::to_value(r),
            Command::PutConfig { values, .. } => serde_json::to_value(values),
            Command::DeleteConfig { .. } => Ok(serde_json::Value::Object(Default::default())),
        };
        // Serialising plain structs of strings and maps with string keys cannot fail.
        value.unwrap_or_default()
    }

    /// The body as bytes, ready to publish (serialised directly, without a JSON tree).
    pub fn body_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_body(&mut out);
        out
    }

    /// Append [`Command::body_bytes`] to `out`.
    fn write_body(&self, out: &mut Vec<u8>) {
        let written = match self {
            Command::ScaleComponent(r) => serde_json::to_writer(&mut *out, r),
            Command::UpdateComponent(r) => serde_json::to_writer(&mut *out, r),
            Command::StartProvider(r) => serde_json::to_writer(&mut *out, r),
            Command::StopProvider(r) => serde_json::to_writer(&mut *out, r),
            Command::PutLink(r) => serde_json::to_writer(&mut *out, r),
            Command::DeleteLink(r) => serde_json::to_writer(&mut *out, r),
            Command::PutConfig { values, .. } => serde_json::to_writer(&mut *out, values),
            Command::DeleteConfig { .. } => Ok(()),
        };
        // Serialising plain structs of strings and maps with string keys into memory cannot fail.
        debug_assert!(written.is_ok());
    }

    /// A short kind name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::ScaleComponent(_) => "scale_component",
            Command::UpdateComponent(_) => "update_component",
            Command::StartProvider(_) => "start_provider",
            Command::StopProvider(_) => "stop_provider",
            Command::PutLink(_) => "put_link",
            Command::DeleteLink(_) => "delete_link",
            Command::PutConfig { .. } => "put_config",
            Command::DeleteConfig { .. } => "delete_config",
        }
    }
}

/// A command with the application it acts for and its deduplication id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedCommand {
    /// Deterministic: the same (lattice, app, generation, command) always gives the same id, so it
    /// can be the `Nats-Msg-Id` of the command message.
    pub id: String,
    /// The application the command acts for (for shared resources: the first by name).
    pub app: String,
    /// That application's generation.
    pub generation: u64,
    pub command: Command,
}

impl PlannedCommand {
    /// Stamp a command with its id.
    pub fn new(lattice: &str, app: &str, generation: u64, command: Command) -> Self {
        Self::with_scratch(&mut Vec::new(), lattice, app, generation, command)
    }

    /// [`PlannedCommand::new`], encoding the command for its id in `scratch` (reused across the
    /// commands of a plan: no allocation per command for it).
    pub(crate) fn with_scratch(
        scratch: &mut Vec<u8>,
        lattice: &str,
        app: &str,
        generation: u64,
        command: Command,
    ) -> Self {
        let id = command_id_with(scratch, lattice, app, generation, &command);
        Self { id, app: app.to_string(), generation, command }
    }
}

/// The deduplication id of a command: 128-bit FNV-1a over a canonical encoding of the lattice, the
/// application, its generation and the command (its kind, subject suffix and JSON body, whose maps
/// are ordered).
pub fn command_id(lattice: &str, app: &str, generation: u64, command: &Command) -> String {
    command_id_with(&mut Vec::new(), lattice, app, generation, command)
}

/// [`command_id`], encoding the suffix and body in `scratch`.
fn command_id_with(
    scratch: &mut Vec<u8>,
    lattice: &str,
    app: &str,
    generation: u64,
    command: &Command,
) -> String {
    scratch.clear();
    let (suffix, tail) = command.suffix_parts();
    scratch.extend_from_slice(suffix.as_bytes());
    if let Some(tail) = tail {
        scratch.push(b'.');
        scratch.extend_from_slice(tail.as_bytes());
    }
    let suffix_len = scratch.len();
    command.write_body(scratch);
    let (suffix, body) = scratch.split_at(suffix_len);
    Fnv128::default()
        .field(lattice.as_bytes())
        .field(app.as_bytes())
        .field(&generation.to_le_bytes())
        .field(command.kind().as_bytes())
        .field(suffix)
        .field(body)
        .hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_bytes_match_the_json_body() {
        let c = Command::PutConfig { name: "c".into(), values: [("k".into(), "v".into())].into() };
        let parsed: serde_json::Value = serde_json::from_slice(&c.body_bytes()).unwrap();
        assert_eq!(parsed, c.body());
        assert!(Command::DeleteConfig { name: "c".into() }.body_bytes().is_empty());
    }

    #[test]
    fn maps_to_subjects_and_bodies() {
        let c = Command::StopProvider(StopProviderRequest {
            provider_id: "p".into(),
            host_id: "N1".into(),
        });
        assert_eq!(c.subject("l"), "wasmbus.ctl.v1.l.provider.stop.N1");
        assert_eq!(c.target_host(), Some("N1"));
        assert_eq!(c.body(), serde_json::json!({"provider_id": "p", "host_id": "N1"}));
        let put = Command::PutConfig {
            name: "cfg".into(),
            values: [("k".to_string(), "v".to_string())].into(),
        };
        assert_eq!(put.subject("l"), "wasmbus.ctl.v1.l.config.put.cfg");
        assert_eq!(put.body(), serde_json::json!({"k": "v"}));
        assert_eq!(put.target_host(), None);
    }

    #[test]
    fn ids_are_stable_and_sensitive() {
        let c = Command::DeleteConfig { name: "x".into() };
        let a = command_id("l", "app", 1, &c);
        assert_eq!(a, command_id("l", "app", 1, &c));
        assert_ne!(a, command_id("l", "app", 2, &c));
        assert_ne!(a, command_id("l", "app2", 1, &c));
        assert_ne!(a, command_id("l", "app", 1, &Command::DeleteConfig { name: "y".into() }));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn the_id_encodes_the_suffix_and_body() {
        // The id is defined over the subject suffix and body as sent (stable for all time).
        let c = Command::PutConfig { name: "c".into(), values: [("k".into(), "v".into())].into() };
        let expected = Fnv128::default()
            .field(b"l")
            .field(b"app")
            .field(&3u64.to_le_bytes())
            .field(b"put_config")
            .field(c.subject_suffix().as_bytes())
            .field(&c.body_bytes())
            .hex();
        assert_eq!(command_id("l", "app", 3, &c), expected);
        assert_eq!(c.subject_suffix(), "config.put.c");
    }
}
