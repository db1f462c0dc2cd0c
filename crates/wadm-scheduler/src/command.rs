//! Commands a plan issues. Each maps one-to-one to a lattice control request: a subject suffix, an
//! optional target host and a JSON body, so the I/O layer can send it without interpreting it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use wadm_protocol::ctl::{
    DeleteLinkRequest, ScaleComponentRequest, StartProviderRequest, StopProviderRequest,
    UpdateComponentRequest,
};
use wadm_protocol::subject::{self, suffix};
use wadm_protocol::{Link, StringMap};

use crate::text::hex128_into;

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
    PutConfig {
        /// The config's lattice name.
        name: String,
        /// Its full set of values.
        values: StringMap,
    },
    /// `config.del.{name}`.
    DeleteConfig {
        /// The config's lattice name.
        name: String,
    },
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

/// Why `command` is needed, in words, from what `state` observes of its target (for logs and
/// `plan`; never part of what is sent).
pub fn reason(command: &Command, state: &wadm_lattice::LatticeState) -> String {
    match command {
        Command::ScaleComponent(r) => {
            let Some(host) = state.hosts.get(&*r.host_id) else {
                return format!("wanted {} on a host wadm has not observed yet", r.count);
            };
            let running = host.components.get(&*r.component_id);
            let have = running.map_or(0, |c| c.count);
            match (r.count, have) {
                (0, have) => format!("not wanted on this host any more (it runs {have})"),
                (want, 0) => format!("wanted {want} here, the host runs none"),
                (want, have) if want > have => format!("scale up: wanted {want} here, runs {have}"),
                (want, have) if want < have => {
                    format!("scale down: wanted {want} here, runs {have}")
                }
                (want, _) => match running {
                    Some(c) if *c.image_ref != *r.component_ref => {
                        format!("wanted {want} of {} here, runs {}", r.component_ref, c.image_ref)
                    }
                    _ => format!("runs {want} as wanted, but with other annotations or config"),
                },
            }
        }
        Command::UpdateComponent(r) => {
            let running = state
                .hosts
                .get(&*r.host_id)
                .and_then(|h| h.components.get(&*r.component_id))
                .map_or("nothing", |c| c.image_ref.as_str());
            format!("new image {}: the host runs {running}", r.new_component_ref)
        }
        Command::StartProvider(r) => {
            let running =
                state.hosts.get(&*r.host_id).and_then(|h| h.providers.get(&*r.provider_id));
            match running {
                None => "wanted here, not running on this host".to_string(),
                Some(p) => {
                    format!("wanted here with image {}, runs {}", r.provider_ref, p.image_ref)
                }
            }
        }
        Command::StopProvider(_) => "not wanted on this host any more".to_string(),
        Command::PutLink(link) => match state.links.get(&link.key()) {
            None => format!("link {} → {} missing", link.source_id, link.target),
            Some(old) if old.target != link.target => {
                format!("link retargeted from {} to {}", old.target, link.target)
            }
            Some(_) => "link differs from the manifest (interfaces or config)".to_string(),
        },
        Command::DeleteLink(_) => "link not wanted any more".to_string(),
        Command::PutConfig { name, values } => match state.configs.get(name) {
            None => "config missing".to_string(),
            Some(c) if c.values.as_ref() == Some(values) => "config rewritten".to_string(),
            Some(c) if c.values.is_none() => "config values unknown: written".to_string(),
            Some(_) => "config values differ from the manifest".to_string(),
        },
        Command::DeleteConfig { .. } => "no deployed application needs the config".to_string(),
    }
}

/// A command with the application it acts for and its deduplication id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedCommand {
    /// Deterministic: the same (lattice, app, generation, command) always gives the same id, so it
    /// can be the `Nats-Msg-Id` of the command message.
    pub id: CommandId,
    /// The application the command acts for (for shared resources: the first by name). Shared
    /// with every other command of the application.
    pub app: Arc<str>,
    /// That application's generation.
    pub generation: u64,
    /// The control request itself.
    pub command: Command,
}

impl PlannedCommand {
    /// Stamp a command with its id.
    pub fn new(lattice: &str, app: &str, generation: u64, command: Command) -> Self {
        let app: Arc<str> = Arc::from(app);
        let id = command_id_with(&mut Vec::new(), lattice, &app, generation, &command, None);
        Self { id, app, generation, command }
    }

    /// [`PlannedCommand::new`] onto the end of `commands`, encoding the command for its id in
    /// `scratch` (reused across the commands of a plan: no allocation per command for it) and
    /// writing the id where the command lies (it is moved once, not through a return value).
    pub(crate) fn push_with_scratch(
        commands: &mut Vec<PlannedCommand>,
        scratch: &mut Vec<u8>,
        lattice: &str,
        app: Arc<str>,
        generation: u64,
        command: Command,
        known: Option<&EncodedMap>,
    ) {
        commands.push(Self { id: CommandId([0; 32]), app, generation, command });
        if let Some(p) = commands.last_mut() {
            p.id = command_id_with(scratch, lattice, &p.app, generation, &p.command, known);
        }
    }
}

/// A command's deduplication id: 32 lowercase hex digits, held inline (no allocation per
/// command). Reads, compares, prints and serialises as the string it is.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommandId([u8; 32]);

impl CommandId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::ops::Deref for CommandId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for CommandId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for CommandId {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

// Hashed as its text, as `Borrow<str>` requires.
impl std::hash::Hash for CommandId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::fmt::Display for CommandId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for CommandId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for CommandId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl From<CommandId> for String {
    fn from(id: CommandId) -> Self {
        id.as_str().to_string()
    }
}

impl PartialEq<str> for CommandId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for CommandId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for CommandId {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<CommandId> for String {
    fn eq(&self, other: &CommandId) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<CommandId> for &str {
    fn eq(&self, other: &CommandId) -> bool {
        *self == other.as_str()
    }
}

/// The deduplication id of a command: the 128-bit XXH3 hash (seedless, so the same in every
/// process and on every machine) of a canonical encoding of the lattice, the application, its
/// generation and the command: its kind, subject suffix and every field of its body, each
/// length-prefixed, maps in key order. Equal commands get equal ids; any change to what the
/// command does changes the id.
pub fn command_id(lattice: &str, app: &str, generation: u64, command: &Command) -> String {
    command_id_with(&mut Vec::new(), lattice, app, generation, command, None).into()
}

/// [`command_id`], encoding in `scratch`; the annotation map `known` holds is copied from its
/// encoding rather than encoded again.
fn command_id_with(
    scratch: &mut Vec<u8>,
    lattice: &str,
    app: &str,
    generation: u64,
    command: &Command,
    known: Option<&EncodedMap>,
) -> CommandId {
    scratch.clear();
    let mut e = IdEncoding(scratch);
    e.str(lattice).str(app).u64(generation).str(command.kind());
    let (suffix, tail) = command.suffix_parts();
    e.str(suffix).opt_str(tail);
    match command {
        Command::ScaleComponent(r) => {
            e.str(&r.component_ref).str(&r.component_id).u64(r.count.into()).str(&r.host_id);
            e.known_map(&r.annotations, known).strs(&r.config).u64(r.allow_update.into());
            e.opt_json(r.component_limits.as_ref());
        }
        Command::UpdateComponent(r) => {
            e.str(&r.component_id).str(&r.new_component_ref).str(&r.host_id);
            match &r.annotations {
                Some(map) => e.u64(1).known_map(map, known),
                None => e.u64(0),
            };
        }
        Command::StartProvider(r) => {
            e.str(&r.provider_id).str(&r.provider_ref).str(&r.host_id);
            e.strs(&r.config).known_map(&r.annotations, known);
        }
        Command::StopProvider(r) => {
            e.str(&r.provider_id).str(&r.host_id);
        }
        Command::PutLink(l) => {
            e.str(&l.source_id).str(&l.target).str(&l.name).str(&l.wit_namespace);
            e.str(&l.wit_package).strs(&l.interfaces).strs(&l.source_config);
            e.strs(&l.target_config);
        }
        Command::DeleteLink(r) => {
            e.str(&r.source_id).str(&r.name).str(&r.wit_namespace).str(&r.wit_package);
        }
        Command::PutConfig { name, values } => {
            e.str(name).map(values);
        }
        Command::DeleteConfig { name } => {
            e.str(name);
        }
    }
    let mut id = [0u8; 32];
    hex128_into(xxhash_rust::xxh3::xxh3_128(scratch), &mut id);
    CommandId(id)
}

/// An annotation map with its encoding in command ids, computed once for every command carrying it.
#[derive(Debug, Clone)]
pub(crate) struct EncodedMap {
    pub map: std::sync::Arc<StringMap>,
    pub id_encoding: Box<[u8]>,
}

impl EncodedMap {
    pub(crate) fn new(map: StringMap) -> Self {
        let id_encoding = encode_map(&map).into_boxed_slice();
        Self { map: std::sync::Arc::new(map), id_encoding }
    }
}

/// How `map` is encoded in command ids (for [`EncodedMap`]).
pub(crate) fn encode_map(map: &StringMap) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(8 + map.iter().map(|(k, v)| 16 + k.len() + v.len()).sum::<usize>());
    IdEncoding(&mut out).map(map);
    out
}

/// The canonical encoding command ids hash: every string length-prefixed, every sequence
/// count-prefixed, so no two different field lists encode alike.
struct IdEncoding<'a>(&'a mut Vec<u8>);

impl IdEncoding<'_> {
    fn u64(&mut self, n: u64) -> &mut Self {
        self.0.extend_from_slice(&n.to_le_bytes());
        self
    }

    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    fn opt_str(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.u64(1).str(s),
            None => self.u64(0),
        }
    }

    fn strs(&mut self, items: &[String]) -> &mut Self {
        self.u64(items.len() as u64);
        for item in items {
            self.str(item);
        }
        self
    }

    fn map(&mut self, map: &StringMap) -> &mut Self {
        self.u64(map.len() as u64);
        for (k, v) in map {
            self.str(k).str(v);
        }
        self
    }

    /// [`Self::map`], copying the encoding of `known` when `map` is its map (the same allocation).
    fn known_map(&mut self, map: &StringMap, known: Option<&EncodedMap>) -> &mut Self {
        match known {
            Some(known) if std::ptr::eq(map, &*known.map) => {
                self.0.extend_from_slice(&known.id_encoding);
                self
            }
            _ => self.map(map),
        }
    }

    fn opt_json(&mut self, value: Option<&serde_json::Value>) -> &mut Self {
        match value {
            // Rare (component limits); its JSON text is canonical enough for an id.
            Some(v) => self.u64(1).str(&v.to_string()),
            None => self.u64(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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
    fn a_known_annotation_encoding_gives_the_same_id() {
        let known = EncodedMap::new([("k".into(), "v".into()), ("x".into(), "yz".into())].into());
        let scale = |annotations: Arc<StringMap>| {
            Command::ScaleComponent(ScaleComponentRequest {
                component_ref: "r".into(),
                component_id: "c".into(),
                count: 1,
                host_id: "h".into(),
                annotations,
                config: vec!["cfg".into()],
                allow_update: false,
                component_limits: None,
            })
        };
        let shared = scale(Arc::clone(&known.map));
        let copied = scale(Arc::new((*known.map).clone()));
        let plain = command_id("l", "a", 1, &shared);
        let mut scratch = Vec::new();
        assert_eq!(command_id_with(&mut scratch, "l", "a", 1, &shared, Some(&known)), plain);
        assert_eq!(command_id_with(&mut scratch, "l", "a", 1, &copied, Some(&known)), plain);
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
        // The inline id reads, prints and serialises as the string.
        let id = command_id_with(&mut Vec::new(), "l", "app", 1, &c, None);
        assert_eq!(
            (id.as_str(), id.to_string(), format!("{id:?}")),
            (&*a, a.clone(), format!("{a:?}"))
        );
        assert_eq!(serde_json::to_string(&id).unwrap(), serde_json::to_string(&a).unwrap());
        assert!(id == a && a.clone() == id && id == a.as_str());
    }

    #[test]
    fn every_field_of_a_command_changes_its_id() {
        let scale = |f: &dyn Fn(&mut ScaleComponentRequest)| {
            let mut r = ScaleComponentRequest {
                component_ref: "r".into(),
                component_id: "c".into(),
                count: 1,
                host_id: "h".into(),
                annotations: Arc::new([("k".into(), "v".into())].into()),
                config: vec!["cfg".into()],
                allow_update: false,
                component_limits: None,
            };
            f(&mut r);
            command_id("l", "a", 1, &Command::ScaleComponent(r))
        };
        let base = scale(&|_| {});
        let changes: [&dyn Fn(&mut ScaleComponentRequest); 8] = [
            &|r| r.component_ref = "rx".into(),
            &|r| r.component_id = "cx".into(),
            &|r| r.count = 2,
            &|r| r.host_id = "hx".into(),
            &|r| r.annotations = Arc::new([("k".into(), "w".into())].into()),
            &|r| r.config.push("more".into()),
            &|r| r.allow_update = true,
            &|r| r.component_limits = Some(serde_json::json!({"max": 1})),
        ];
        let ids: std::collections::BTreeSet<String> =
            changes.iter().map(|f| scale(*f)).chain([base.clone()]).collect();
        assert_eq!(ids.len(), changes.len() + 1, "each field is part of the id");
        // Moving bytes from one field to the next is a different command, so a different id.
        let a = Command::PutConfig { name: "ab".into(), values: [("c".into(), "d".into())].into() };
        let b = Command::PutConfig { name: "a".into(), values: [("bc".into(), "d".into())].into() };
        assert_ne!(command_id("l", "a", 1, &a), command_id("l", "a", 1, &b));
        // Stable across processes and machines (no seed): pinned.
        assert_eq!(base, scale(&|_| {}));
        let pinned = command_id("l", "app", 1, &Command::DeleteConfig { name: "x".into() });
        assert_eq!(pinned, "db6475d1192fb95abae45fef2b7e6d4b");
    }
}
