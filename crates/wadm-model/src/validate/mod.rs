//! Turns a [`Node`] tree into an [`Application`], checking every rule of the manifest format.
//!
//! The walk is in two phases. [`walk`] reads each field (shape, types, per-field rules) and
//! records [`Facts`]: the names, ids, links, configs and secret references it saw, each with its
//! path. [`rules`] then checks what spans several fields (uniqueness, references between
//! components, policies). Both phases only add diagnostics; nothing stops at the first problem.

mod component;
mod fields;
mod interfaces;
mod labels;
mod references;
mod rules;
mod traits;

use std::collections::BTreeMap;

use crate::app::{Application, Policy};
use crate::diag::{Diagnostics, Path};
use crate::node::Node;
use crate::wire::{API_VERSION, KIND};
pub(crate) use component::implicit_scaler;
use fields::{Fields, list, string_map};
pub(crate) use traits::default_spread;

/// What the field walk saw, with paths, for the cross-field rules.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// Each component's name with the path of its `name` field.
    pub component_names: Vec<(String, Path)>,
    /// Each non-shared component's id, its path and whether it was written explicitly.
    pub ids: Vec<IdFact>,
    pub links: Vec<LinkFact>,
    /// Every owned config (one with `properties`).
    pub owned_configs: Vec<ConfigFact>,
    /// Every secret reference: policy name and the path of its `policy` field.
    pub secret_policies: Vec<(String, Path)>,
    /// Each policy's name with the path of its `name` field.
    pub policy_names: Vec<(String, Path)>,
    /// Every component an `anti-affinity` trait names, with its path.
    pub avoid: Vec<(String, Path)>,
}

#[derive(Debug)]
pub(crate) struct IdFact {
    pub id: String,
    /// The component's manifest name.
    pub name: String,
    pub path: Path,
    pub explicit: bool,
}

#[derive(Debug)]
pub(crate) struct LinkFact {
    /// Index of the source component.
    pub source: usize,
    pub name: String,
    pub namespace: String,
    pub package: String,
    /// Each interface with its path.
    pub interfaces: Vec<(String, Path)>,
    pub target: String,
    pub target_path: Path,
}

#[derive(Debug)]
pub(crate) struct ConfigFact {
    pub lattice_name: String,
    pub properties: BTreeMap<String, String>,
    pub path: Path,
    /// Defined on a link end (rather than on a component).
    pub on_link: bool,
}

const TOP_LEVEL: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
const METADATA: &[&str] = &["name", "annotations", "labels"];
const SPEC: &[&str] = &["components", "policies"];
const POLICY: &[&str] = &["name", "type", "properties"];

/// Walks a whole document. The application is meaningful only when `d` holds no errors.
pub(crate) fn walk(root: &Node, d: &mut Diagnostics) -> Application {
    if !matches!(root, Node::Map(_)) {
        d.error(
            &Path::root(),
            "not-a-manifest",
            format!(
                "the document must be a map with apiVersion, kind, metadata and spec, found {}",
                root.kind()
            ),
        );
        return empty_app();
    }
    let top = Fields::of(root, &Path::root(), "a manifest", TOP_LEVEL, d);
    let api_version = top.req_str("apiVersion", d);
    if !api_version.is_empty() && api_version != API_VERSION {
        d.error(
            &Path::root().key("apiVersion"),
            "bad-api-version",
            format!("must be `{API_VERSION}`, found `{api_version}`"),
        );
    }
    let kind = top.req_str("kind", d);
    if !kind.is_empty() && kind != KIND {
        d.error(&Path::root().key("kind"), "bad-kind", format!("must be `{KIND}`, found `{kind}`"));
    }
    let mut app = top.req_opt("metadata", d, metadata).unwrap_or_else(empty_app);
    let mut facts = Facts::default();
    if let Some(spec) = top.get_present("spec") {
        let spec = Fields::of(spec, &Path::root().key("spec"), "the spec", SPEC, d);
        app.policies = spec
            .get_present("policies")
            .map(|n| policies(n, &spec.path.key("policies"), &mut facts, d))
            .unwrap_or_default();
        let components = spec.req("components", d, |n, p, d| list(n, p, d));
        for (i, (node, path)) in components.into_iter().enumerate() {
            let c = component::component(node, &path, &app.name, i, &mut facts, d);
            app.components.push(c);
        }
    } else {
        d.error(&Path::root().key("spec"), "missing-field", "`spec` is required");
    }
    rules::check(&app, &facts, d);
    app
}

fn metadata(node: &Node, path: &Path, d: &mut Diagnostics) -> Application {
    let meta = Fields::of(node, path, "the metadata", METADATA, d);
    let name = meta.req_str("name", d);
    // A name past the length bound is not echoed back (it may be huge).
    if let Some(reason) = crate::names::app_name_error(&name)
        && meta.has("name")
    {
        d.error(&path.key("name"), "bad-name", reason);
    }
    let annotations_path = path.key("annotations");
    let annotations = meta
        .get_present("annotations")
        .map(|n| string_map(n, &annotations_path, d))
        .unwrap_or_default();
    let labels_path = path.key("labels");
    let labels =
        meta.get_present("labels").map(|n| string_map(n, &labels_path, d)).unwrap_or_default();
    for key in annotations.keys() {
        labels::check_key(key, &annotations_path.key(key), "annotation", d);
    }
    for key in labels.keys() {
        labels::check_key(key, &labels_path.key(key), "label", d);
    }
    let version = annotations.get(crate::VERSION_ANNOTATION).cloned();
    let version_path = annotations_path.key(crate::VERSION_ANNOTATION);
    match version.as_deref() {
        Some("latest") => d.error(
            &version_path,
            "reserved-version",
            "`latest` is reserved (it means the newest version); choose another version",
        ),
        Some("") => d.error(&version_path, "empty-value", "the version must not be empty"),
        _ => {}
    }
    Application {
        description: annotations.get(crate::DESCRIPTION_ANNOTATION).cloned(),
        shared: annotations.get(crate::SHARED_ANNOTATION).is_some_and(|v| v == "true"),
        name,
        version,
        annotations,
        labels,
        components: Vec::new(),
        policies: Vec::new(),
    }
}

fn policies(node: &Node, path: &Path, facts: &mut Facts, d: &mut Diagnostics) -> Vec<Policy> {
    let mut out = Vec::new();
    for (node, path) in list(node, path, d) {
        let f = Fields::of(node, &path, "a policy", POLICY, d);
        let name = f.req_str("name", d);
        facts.policy_names.push((name.clone(), path.key("name")));
        let policy_type = f.req_str("type", d);
        let properties = f
            .get_present("properties")
            .map(|n| string_map(n, &path.key("properties"), d))
            .unwrap_or_default();
        out.push(Policy { name, policy_type, properties });
    }
    out
}

fn empty_app() -> Application {
    Application {
        name: String::new(),
        version: None,
        description: None,
        shared: false,
        annotations: BTreeMap::new(),
        labels: BTreeMap::new(),
        components: Vec::new(),
        policies: Vec::new(),
    }
}
