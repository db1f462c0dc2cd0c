//! Orphan collection, the pure half: which observed objects carry wadm's marks for an application
//! nobody manages any more, since when, and which of them are due for removal after a grace
//! period. No I/O, no clock (`now` is an argument), no hash-order iteration: the same input gives
//! the same output whatever order it was built in. The reasoning (what counts, what never does)
//! is in `docs/orphans.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use wadm_lattice::{LatticeState, Timestamp};
use wadm_model::names::sanitize;
use wadm_protocol::ctl::{ScaleComponentRequest, StopProviderRequest};
use wadm_protocol::{LinkKey, StringMap};

use crate::catalog::Catalog;
use crate::command::Command;

/// When an object was first seen orphaned, and for which application (persisted per lattice).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanMark {
    /// The application its marks name.
    pub app: String,
    /// First seen orphaned (wadm's clock).
    pub since: Timestamp,
    /// Already reported as due while removal is off (`--orphans report`): not reported again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reported: bool,
}

/// Marks by [`Orphan::key`].
pub type OrphanMarks = BTreeMap<String, OrphanMark>;

/// One object that may be an orphan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Orphan {
    /// A link (removed first: it names the components).
    Link(LinkKey),
    /// A component on a host.
    Component {
        /// The host id.
        host: String,
        /// The component id.
        id: String,
        /// The image it runs (the removal's scale-to-zero request names it).
        image_ref: String,
        /// Its annotations (which application wadm marked it for).
        annotations: StringMap,
    },
    /// A provider on a host.
    Provider {
        /// The host id.
        host: String,
        /// The provider id.
        id: String,
    },
    /// A config (removed last: links and components may name it).
    Config(String),
}

impl Orphan {
    /// Its key in [`OrphanMarks`]: a JSON array, unique per object.
    pub fn key(&self) -> String {
        let parts: Vec<&str> = match self {
            Orphan::Component { host, id, .. } => vec!["component", host, id],
            Orphan::Provider { host, id } => vec!["provider", host, id],
            Orphan::Link(k) => {
                vec!["link", &k.source_id, &k.wit_namespace, &k.wit_package, &k.name]
            }
            Orphan::Config(name) => vec!["config", name],
        };
        serde_json::to_string(&parts).unwrap_or_default()
    }

    /// `component`, `provider`, `link` or `config`.
    pub fn kind(&self) -> &'static str {
        match self {
            Orphan::Component { .. } => "component",
            Orphan::Provider { .. } => "provider",
            Orphan::Link(_) => "link",
            Orphan::Config(_) => "config",
        }
    }

    /// What it is, in words (for logs).
    pub fn describe(&self) -> String {
        match self {
            Orphan::Component { host, id, .. } => format!("component {id} on host {host}"),
            Orphan::Provider { host, id } => format!("provider {id} on host {host}"),
            Orphan::Link(k) => format!(
                "link {} from {} ({}:{})",
                k.name, k.source_id, k.wit_namespace, k.wit_package
            ),
            Orphan::Config(name) => format!("config {name}"),
        }
    }

    /// The control command that removes it (what undeploy sends for the same object).
    pub fn removal(&self) -> Command {
        match self {
            Orphan::Component { host, id, image_ref, annotations } => {
                Command::ScaleComponent(ScaleComponentRequest {
                    component_ref: Arc::from(image_ref.as_str()),
                    component_id: Arc::from(id.as_str()),
                    count: 0,
                    host_id: Arc::from(host.as_str()),
                    annotations: Arc::new(annotations.clone()),
                    config: Vec::new(),
                    allow_update: false,
                    component_limits: None,
                })
            }
            Orphan::Provider { host, id } => Command::StopProvider(StopProviderRequest {
                provider_id: Arc::from(id.as_str()),
                host_id: Arc::from(host.as_str()),
            }),
            Orphan::Link(k) => crate::engine::delete_link(k),
            Orphan::Config(name) => Command::DeleteConfig { name: name.clone() },
        }
    }
}

/// The application wadm's ownership marks name: `managed-by: wadm` and a non-empty `appspec` —
/// what the scheduler itself takes as ownership ([`crate::observed::owner_app`]). Anything else
/// is not wadm's to collect.
pub fn marked_app(annotations: &StringMap) -> Option<&str> {
    crate::observed::owner_app(annotations).filter(|app| !app.is_empty())
}

/// What one pass knows besides observed state.
#[derive(Debug, Clone, Copy)]
pub struct OrphanInput<'a> {
    /// Observed state (not projected: an order in flight is in `busy`).
    pub state: &'a LatticeState,
    /// Every application wadm manages here in any way: deployed (any version it still runs, the
    /// one it replaces during an upgrade), being undeployed, with orders in flight, or deployed
    /// in the store though not applied yet. Their objects are never orphans.
    pub known: &'a BTreeSet<String>,
    /// Who declared which links and configs (deployed and undeployed specs). `None`: unknown
    /// this pass; links and configs are then neither marked nor swept (their marks are kept).
    pub catalog: Option<&'a Catalog<'a>>,
    /// Objects ([`Orphan::key`]) with an order in flight, and the application of that order.
    pub busy: &'a BTreeMap<String, String>,
    /// The previous marks.
    pub marks: &'a OrphanMarks,
    /// The time of the pass (wadm's clock): marks start and grace periods end at it.
    pub now: Timestamp,
    /// How long an object stays orphaned before it is due.
    pub grace_ms: u64,
}

/// The result of one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanPass {
    /// The marks after the pass: every object orphaned now, with when it was first seen so.
    pub marks: OrphanMarks,
    /// Orphans whose grace period is over, with their application, links first, then components
    /// and providers, then configs (each group in key order).
    pub due: Vec<(Orphan, String)>,
    /// Orphans first marked in this pass.
    pub found: Vec<(Orphan, String)>,
    /// Keys of marks dropped: the object went away or is no longer orphaned.
    pub cleared: Vec<String>,
    /// When the next mark becomes due.
    pub next_due: Option<Timestamp>,
}

/// Mark what is orphaned now, keep the first-seen time of what stays orphaned, drop the rest,
/// and list what has been orphaned for at least the grace period.
pub fn orphan_pass(input: OrphanInput<'_>) -> OrphanPass {
    let OrphanInput { state, known, catalog, busy, marks, now, grace_ms } = input;
    let unknown = |app: &str| !known.contains(app);
    // A workload id some managed application declares is never an orphan: its scalers may rely
    // on an instance of it started (and annotated) by an application that is gone.
    let declared = |id: &str| catalog.is_some_and(|c| c.declares_workload(id));
    let mut candidates: BTreeMap<String, (Orphan, String)> = BTreeMap::new();
    // Ids of workloads that run with an orphan's marks, and ids some host runs otherwise.
    let mut orphan_ids: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut other_ids: BTreeSet<&str> = BTreeSet::new();
    for host in state.hosts.values() {
        for (id, c) in &host.components {
            match marked_app(&c.annotations).filter(|a| unknown(a) && !declared(id)) {
                Some(app) => {
                    orphan_ids.entry(id.as_str()).or_default().insert(app);
                    let orphan = Orphan::Component {
                        host: host.id.clone(),
                        id: id.clone(),
                        image_ref: c.image_ref.clone(),
                        annotations: c.annotations.clone(),
                    };
                    candidates.insert(orphan.key(), (orphan, app.to_string()));
                }
                None => {
                    other_ids.insert(id.as_str());
                }
            }
        }
        for (id, p) in &host.providers {
            match marked_app(&p.annotations).filter(|a| unknown(a) && !declared(id)) {
                Some(app) => {
                    orphan_ids.entry(id.as_str()).or_default().insert(app);
                    let orphan = Orphan::Provider { host: host.id.clone(), id: id.clone() };
                    candidates.insert(orphan.key(), (orphan, app.to_string()));
                }
                None => {
                    other_ids.insert(id.as_str());
                }
            }
        }
    }
    // Applications evidenced as orphaned: by what runs now, or by marks still standing (their
    // workloads may be gone already while their links and configs remain).
    let mut orphan_apps: BTreeSet<&str> = orphan_ids.values().flatten().copied().collect();
    orphan_apps.extend(marks.values().map(|m| m.app.as_str()).filter(|a| unknown(a)));
    // A derived name's prefix → the orphaned application, unless a known application (or two
    // orphaned ones) share it. No orphaned application, no orphaned link or config: nothing to
    // index or judge.
    let evidence = !orphan_apps.is_empty();
    let mut prefixes: BTreeMap<String, Option<&str>> = BTreeMap::new();
    for app in orphan_apps.iter().filter(|_| evidence) {
        prefixes.entry(sanitize(app)).and_modify(|owner| *owner = None).or_insert(Some(*app));
    }
    for app in known.iter().filter(|_| evidence) {
        prefixes.insert(sanitize(app), None);
    }
    let derived_owner = |name: &str| -> Option<&str> {
        let bare = name.strip_prefix("SECRET_").unwrap_or(name);
        let (head, rest) = bare.split_once('-')?;
        let shape = !rest.is_empty()
            && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !shape {
            return None;
        }
        prefixes.get(head).copied().flatten()
    };
    // A workload id that runs only with one orphaned application's marks.
    let id_owner = |id: &str| -> Option<&str> {
        if other_ids.contains(id) {
            return None;
        }
        let apps = orphan_ids.get(id)?;
        (apps.len() == 1).then(|| *apps.iter().next().expect("one"))
    };
    let mut kept_unjudged: Vec<(&String, &OrphanMark)> = Vec::new();
    match catalog {
        Some(_) if !evidence => {}
        Some(catalog) => {
            let mut named_by_kept_links: BTreeSet<&str> = BTreeSet::new();
            for (key, link) in &state.links {
                let owner = if catalog.link_owner(key).is_some()
                    || other_ids.contains(key.source_id.as_str())
                {
                    None
                } else {
                    id_owner(&key.source_id).or_else(|| {
                        let runs = orphan_ids.contains_key(key.source_id.as_str());
                        if runs { None } else { derived_owner(&key.source_id) }
                    })
                };
                match owner {
                    Some(app) => {
                        let orphan = Orphan::Link(key.clone());
                        candidates.insert(orphan.key(), (orphan, app.to_string()));
                    }
                    None => {
                        let names = link.source_config.iter().chain(&link.target_config);
                        named_by_kept_links.extend(names.map(String::as_str));
                    }
                }
            }
            for name in state.configs.keys() {
                if catalog.config_owner(name).is_some()
                    || named_by_kept_links.contains(name.as_str())
                {
                    continue;
                }
                if let Some(app) = derived_owner(name) {
                    let orphan = Orphan::Config(name.clone());
                    candidates.insert(orphan.key(), (orphan, app.to_string()));
                }
            }
        }
        None => {
            // Links and configs cannot be judged: keep their marks as they are.
            for (key, mark) in marks {
                if (key.starts_with("[\"link\"") || key.starts_with("[\"config\""))
                    && unknown(&mark.app)
                {
                    kept_unjudged.push((key, mark));
                }
            }
        }
    }
    // An order in flight for a managed application: not an orphan (it is being acted on).
    candidates.retain(|key, (_, app)| busy.get(key).is_none_or(|of| of == app));

    let mut out = OrphanPass::default();
    for (key, (orphan, app)) in candidates {
        let mark = match marks.get(&key) {
            Some(m) if m.app == app => m.clone(),
            _ => {
                out.found.push((orphan.clone(), app.clone()));
                OrphanMark { app: app.clone(), since: now, reported: false }
            }
        };
        let due_at = mark.since.saturating_add(grace_ms);
        if due_at <= now {
            // (Also while its own removal is in flight: the caller sees that in `busy`.)
            out.due.push((orphan, app));
        } else {
            out.next_due = Some(out.next_due.map_or(due_at, |n| n.min(due_at)));
        }
        out.marks.insert(key, mark);
    }
    for (key, mark) in kept_unjudged {
        let due_at = mark.since.saturating_add(grace_ms);
        if due_at > now {
            out.next_due = Some(out.next_due.map_or(due_at, |n| n.min(due_at)));
        }
        out.marks.insert(key.clone(), mark.clone());
    }
    out.cleared = marks.keys().filter(|k| !out.marks.contains_key(*k)).cloned().collect();
    out.due.sort();
    out
}
