//! One entry of `spec.components`: its type, `properties` (source, id, config, secrets) and
//! traits (dispatched to [`super::traits`]).

use crate::app::{Component, ComponentKind, INSTANCES_RESOURCE, Needs, Scaler, ScalerSpec, Source};
use crate::diag::{Diagnostics, Path};
use crate::names;
use crate::node::Node;

use super::fields::{Fields, check_len, check_len_derived, list, non_empty_string};
use super::references::{configs, secrets};
use super::traits::{self, TraitOutcome, default_spread};
use super::{Facts, IdFact};

const COMPONENT: &[&str] = &["name", "type", "properties", "traits"];
const PROPERTIES: &[&str] = &["image", "application", "id", "config", "secrets", "needs"];
const APPLICATION: &[&str] = &["name", "component"];

/// Reads `spec.components[index]`.
pub(super) fn component(
    node: &Node,
    path: &Path,
    app: &str,
    index: usize,
    facts: &mut Facts,
    d: &mut Diagnostics,
) -> Component {
    let f = Fields::of(node, path, "a component", COMPONENT, d);
    let name = f.req("name", d, non_empty_string);
    facts.component_names.push((name.clone(), path.key("name")));
    let kind = f
        .req_opt("type", d, |n, p, d| match n {
            Node::Str(s) if s == "component" || s == "actor" => ComponentKind::Component,
            Node::Str(s) if s == "capability" => ComponentKind::Capability,
            other => {
                let found = match other {
                    Node::Str(s) => format!("`{s}`"),
                    other => other.kind().to_string(),
                };
                d.error(
                    p,
                    "bad-component-type",
                    format!("must be `component` or `capability`, found {found}"),
                );
                ComponentKind::Component
            }
        })
        .unwrap_or(ComponentKind::Component);
    let props_path = path.key("properties");
    let props_node = f.get_present("properties").unwrap_or(&Node::Null);
    if f.get_present("properties").is_none() {
        d.error(&props_path, "missing-field", "`properties` is required");
    }
    let props = Fields::of(props_node, &props_path, "component properties", PROPERTIES, d);
    let source = source(&props, matches!(props_node, Node::Null), d);
    let explicit = props.opt_str("id", d);
    if explicit.as_deref() == Some("") {
        d.error(&props_path.key("id"), "empty-value", "the id must not be empty");
    }
    let is_shared = matches!(source, Source::Shared { .. });
    let id = explicit.clone().unwrap_or_else(|| names::component_id(app, &name));
    match &explicit {
        Some(explicit) => {
            check_len(&name, &path.key("name"), "a component name", d);
            check_len(explicit, &props_path.key("id"), "a component id", d);
        }
        // A shared reference runs nothing of its own: its name derives no id here.
        None if is_shared => {
            check_len(&name, &path.key("name"), "a component name", d);
        }
        None => check_len_derived(
            &name,
            &id,
            &path.key("name"),
            "a component name",
            "the component id",
            d,
        ),
    }
    if !is_shared {
        let id_path = if explicit.is_some() { props_path.key("id") } else { path.key("name") };
        facts.ids.push(IdFact {
            id: id.clone(),
            name: name.clone(),
            path: id_path,
            explicit: explicit.is_some(),
        });
    }
    let config = props
        .get_present("config")
        .map(|n| configs(n, &props_path.key("config"), app, false, facts, d))
        .unwrap_or_default();
    let secrets = props
        .get_present("secrets")
        .map(|n| secrets(n, &props_path.key("secrets"), app, facts, d))
        .unwrap_or_default();
    if is_shared {
        for key in ["config", "secrets"] {
            if props.has(key) {
                d.error(
                    &props_path.key(key),
                    "shared-reference-with-settings",
                    format!("a reference to a shared application's component cannot set `{key}`"),
                );
            }
        }
    }
    let needs = props
        .get_present("needs")
        .map(|n| needs(n, &props_path.key("needs"), is_shared, d))
        .unwrap_or_default();
    let mut out = Component {
        name,
        kind,
        source,
        id,
        explicit_id: explicit.is_some(),
        config,
        secrets,
        scalers: Vec::new(),
        links: Vec::new(),
        other_traits: Vec::new(),
        rollout: None,
        needs,
        avoid: Vec::new(),
    };
    let traits_path = path.key("traits");
    let trait_nodes = f.get_present("traits").map(|n| list(n, &traits_path, d)).unwrap_or_default();
    for (node, tpath) in trait_nodes {
        match traits::read(node, &tpath, &out.name, app, index, facts, d) {
            TraitOutcome::Scaler(s) => {
                if is_shared {
                    d.error(
                        &tpath.key("type"),
                        "shared-reference-with-settings",
                        "a reference to a shared application's component cannot have a scaler trait",
                    );
                }
                out.scalers.push(s);
            }
            TraitOutcome::Link(l) => out.links.push(l),
            TraitOutcome::Other(o) => out.other_traits.push(o),
            TraitOutcome::Rollout(r) => {
                if is_shared {
                    d.error(
                        &tpath.key("type"),
                        "rollout-on-shared-reference",
                        "a rollout applies to an entry with an image of its own",
                    );
                } else if kind == crate::app::ComponentKind::Capability
                    && r.max_unavailable == Some(0)
                {
                    d.error(
                        &tpath.key("properties").key("max_unavailable"),
                        "unsatisfiable-rollout",
                        "a provider's image is replaced by a stop and a start: at least 1 host is \
                         unavailable while it changes",
                    );
                } else if out.rollout.is_some() {
                    d.error(&tpath.key("type"), "duplicate-rollout", "only one rollout trait");
                } else {
                    out.rollout = Some(r);
                }
            }
            TraitOutcome::AntiAffinity(names) => {
                if is_shared {
                    d.error(
                        &tpath.key("type"),
                        "shared-reference-with-settings",
                        "a reference to a shared application's component runs nothing to keep apart",
                    );
                }
                for (other, at) in names {
                    if other == out.name {
                        d.error(&at, "anti-affinity-self", "a component cannot avoid itself");
                    } else if !other.is_empty() && !out.avoid.contains(&other) {
                        facts.avoid.push((other.clone(), at));
                        out.avoid.push(other);
                    }
                }
            }
            TraitOutcome::Invalid => {}
        }
    }
    if out.scalers.len() > 1 {
        d.warning(
            &traits_path,
            "multiple-scalers",
            format!(
                "component `{}` has {} scaler traits; they will compete",
                out.name,
                out.scalers.len()
            ),
        );
    }
    if out.kind == ComponentKind::Capability {
        for (i, s) in out.scalers.iter().enumerate() {
            if s.spec().max_per_host.is_some() {
                let at = traits_path.index(i).key("properties").key("max_per_host");
                d.error(&at, "max-per-host-on-capability", "a provider runs at most once per host");
            }
        }
    }
    if out.kind == ComponentKind::Capability && !is_shared && out.scalers.is_empty() {
        out.scalers.push(implicit_scaler());
    }
    out
}

/// The spread of one instance a capability with an image and no scaler trait gets.
pub(crate) fn implicit_scaler() -> Scaler {
    Scaler::Spread(ScalerSpec::new(1, vec![default_spread()]))
}

/// The most resources one component may declare in `needs`.
const MAX_NEEDS: usize = 16;

/// `properties.needs`: resource name (lowercase letters, digits, `_`; not `instances`, which every
/// instance needs one of) → a whole number ≥ 1.
fn needs(node: &Node, path: &Path, is_shared: bool, d: &mut Diagnostics) -> Needs {
    let mut out = Needs::new();
    if is_shared {
        d.error(
            path,
            "shared-reference-with-settings",
            "a reference to a shared application's component cannot set `needs`",
        );
        return out;
    }
    let entries = match node {
        Node::Map(entries) => entries,
        Node::Null => return out,
        other => {
            let found = other.kind();
            d.error(
                path,
                "wrong-type",
                format!("must be a map of resource to amount, found {found}"),
            );
            return out;
        }
    };
    super::fields::check_duplicate_keys(entries, path, d);
    if entries.len() > MAX_NEEDS {
        d.error(path, "too-many-needs", format!("at most {MAX_NEEDS} resources"));
    }
    for (key, value) in entries {
        let at = path.key(key);
        let valid_name = !key.is_empty()
            && key.len() <= 64
            && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_name {
            d.error(
                &at,
                "bad-resource-name",
                "a resource name is lowercase letters, digits and `_` (at most 64)",
            );
            continue;
        }
        if key == INSTANCES_RESOURCE {
            d.error(
                &at,
                "reserved-resource",
                "every instance counts as one of `instances`; it cannot be declared",
            );
            continue;
        }
        let amount = match value {
            Node::Int(i) if *i >= 1 => match u64::try_from(*i) {
                Ok(n) => n,
                Err(_) => {
                    d.error(&at, "number-out-of-range", format!("must be at most {}", u64::MAX));
                    continue;
                }
            },
            Node::Int(i) => {
                d.error(&at, "number-out-of-range", format!("must be at least 1, found {i}"));
                continue;
            }
            other => {
                d.error(
                    &at,
                    "wrong-type",
                    format!("must be a whole number, found {}", other.kind()),
                );
                continue;
            }
        };
        out.entry(key.clone()).or_insert(amount);
    }
    out
}

/// Reads `image` / `application`. `missing` (no `properties` at all) was reported already.
fn source(props: &Fields<'_>, missing: bool, d: &mut Diagnostics) -> Source {
    let path = &props.path;
    match (props.get_present("image"), props.get_present("application")) {
        (Some(image), None) => Source::Image(non_empty_string(image, &path.key("image"), d)),
        (None, Some(app)) => {
            let f = Fields::of(
                app,
                &path.key("application"),
                "a shared application reference",
                APPLICATION,
                d,
            );
            let application = f.req("name", d, non_empty_string);
            let component = f.req("component", d, non_empty_string);
            let at = path.key("application");
            if application.len() > names::MAX_APP_NAME_LEN {
                let reason = format!(
                    "an application name is at most {} bytes (this one has {})",
                    names::MAX_APP_NAME_LEN,
                    application.len()
                );
                d.error(&at.key("name"), "name-too-long", reason);
            }
            check_len(&component, &at.key("component"), "a component name", d);
            Source::Shared { application, component }
        }
        (Some(_), Some(_)) => {
            d.error(path, "image-xor-application", "set either `image` or `application`, not both");
            Source::Image(String::new())
        }
        (None, None) => {
            if !missing {
                d.error(
                    path,
                    "image-xor-application",
                    "one of `image` or `application` is required",
                );
            }
            Source::Image(String::new())
        }
    }
}
