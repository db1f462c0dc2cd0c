//! Rules that span several fields: uniqueness of names and ids, link targets and duplicates,
//! owned config names, and secret references to policies.

use std::collections::BTreeMap;

use crate::app::{Application, SECRET_POLICY_TYPE};
use crate::diag::{Diagnostics, Path};

use super::{Facts, IdFact};

/// Runs every cross-field rule.
pub(super) fn check(app: &Application, facts: &Facts, d: &mut Diagnostics) {
    duplicates(&facts.component_names, "duplicate-component-name", "component name", d);
    duplicates(&facts.policy_names, "duplicate-policy-name", "policy name", d);
    ids(facts, d);
    link_targets(app, facts, d);
    duplicate_links(app, facts, d);
    owned_configs(facts, d);
    secret_policies(app, facts, d);
    anti_affinity(app, facts, d);
}

/// An `anti-affinity` trait names components of this manifest that run something.
fn anti_affinity(app: &Application, facts: &Facts, d: &mut Diagnostics) {
    for (name, path) in &facts.avoid {
        match app.component(name) {
            None => d.error(
                path,
                "anti-affinity-unknown",
                format!("`{name}` is not a component of this manifest"),
            ),
            Some(c) if !matches!(c.source, crate::app::Source::Image(_)) => d.error(
                path,
                "anti-affinity-unknown",
                format!("`{name}` refers to a shared application's component; wadm runs nothing for it here"),
            ),
            Some(_) => {}
        }
    }
}

/// Reports each non-empty name that was already used earlier in `names`.
fn duplicates(names: &[(String, Path)], rule: &'static str, what: &str, d: &mut Diagnostics) {
    let mut first: BTreeMap<&str, &Path> = BTreeMap::new();
    for (name, path) in names {
        // An overlong name was reported already, and is not echoed.
        if name.is_empty() || name.len() > crate::names::MAX_NAME_LEN {
            continue;
        }
        match first.get(name.as_str()) {
            Some(earlier) => {
                d.error(path, rule, format!("the {what} `{name}` is already used at {earlier}"))
            }
            None => {
                first.insert(name, path);
            }
        }
    }
}

fn ids(facts: &Facts, d: &mut Diagnostics) {
    let mut first: BTreeMap<&str, &IdFact> = BTreeMap::new();
    for fact in &facts.ids {
        if fact.id.is_empty() {
            continue;
        }
        match first.get(fact.id.as_str()) {
            // Two derived ids from one duplicated name: already reported as a duplicate name.
            Some(earlier) if !fact.explicit && !earlier.explicit && earlier.name == fact.name => {}
            Some(earlier) => {
                let earlier = &earlier.path;
                let how = if fact.explicit {
                    "this explicit id"
                } else {
                    "the id derived from this name"
                };
                d.error(
                    &fact.path,
                    "duplicate-component-id",
                    format!("{how} `{}` is already the id of the component at {earlier}", fact.id),
                );
            }
            None => {
                first.insert(&fact.id, fact);
            }
        }
    }
}

fn link_targets(app: &Application, facts: &Facts, d: &mut Diagnostics) {
    for link in &facts.links {
        if link.target.is_empty() || link.target.len() > crate::names::MAX_NAME_LEN {
            continue;
        }
        if app.component(&link.target).is_none() {
            d.error(
                &link.target_path,
                "link-target-missing",
                format!("the link target `{}` is not a component of this manifest", link.target),
            );
        }
    }
}

fn duplicate_links(app: &Application, facts: &Facts, d: &mut Diagnostics) {
    type Key<'a> = (usize, &'a str, &'a str, &'a str, &'a str);
    let mut seen: BTreeMap<Key<'_>, &Path> = BTreeMap::new();
    for link in &facts.links {
        for (iface, path) in &link.interfaces {
            let key = (
                link.source,
                link.name.as_str(),
                link.namespace.as_str(),
                link.package.as_str(),
                iface.as_str(),
            );
            if let Some(earlier) = seen.get(&key) {
                let source = app.components.get(link.source).map_or("", |c| c.name.as_str());
                d.error(
                    path,
                    "duplicate-link",
                    format!(
                        "component `{source}` already has a link named `{}` for `{}:{}/{iface}` (at {earlier}); \
                         give one of them a different `name`",
                        link.name, link.namespace, link.package
                    ),
                );
            } else {
                seen.insert(key, path);
            }
        }
    }
}

/// An owned config name may be defined once across links; anywhere else, defining it twice with
/// different values is a conflict (both would write the same lattice config).
fn owned_configs(facts: &Facts, d: &mut Diagnostics) {
    for (i, cfg) in facts.owned_configs.iter().enumerate() {
        let earlier = facts.owned_configs[..i].iter().find(|c| c.lattice_name == cfg.lattice_name);
        let Some(earlier) = earlier else { continue };
        if cfg.on_link && earlier.on_link {
            d.error(
                &cfg.path,
                "duplicate-link-config-name",
                format!(
                    "the owned config `{}` is already defined by another link at {}; use a different name",
                    cfg.lattice_name, earlier.path
                ),
            );
        } else if cfg.properties != earlier.properties {
            d.error(
                &cfg.path,
                "conflicting-config",
                format!(
                    "the owned config `{}` is already defined with different properties at {}",
                    cfg.lattice_name, earlier.path
                ),
            );
        }
    }
}

fn secret_policies(app: &Application, facts: &Facts, d: &mut Diagnostics) {
    for (policy, path) in &facts.secret_policies {
        if policy.is_empty() {
            continue;
        }
        match app.policies.iter().find(|p| &p.name == policy) {
            None => d.error(
                path,
                "secret-policy-missing",
                format!("there is no policy named `{policy}` in spec.policies"),
            ),
            Some(p) if p.policy_type != SECRET_POLICY_TYPE => d.error(
                path,
                "secret-policy-wrong-type",
                format!(
                    "the policy `{policy}` has type `{}`, not `{SECRET_POLICY_TYPE}`",
                    p.policy_type
                ),
            ),
            Some(p) if !p.properties.contains_key("backend") => d.error(
                path,
                "secret-policy-without-backend",
                format!("the policy `{policy}` has no `backend` property"),
            ),
            Some(_) => {}
        }
    }
}
