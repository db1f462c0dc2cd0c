//! Config and secret references (`config` / `secrets` lists), read the same way for a
//! component's properties and for both ends of a link.

use crate::app::{ConfigRef, SecretRef};
use crate::diag::{Diagnostics, Path};
use crate::names;
use crate::node::Node;

use super::fields::{Fields, check_len, check_len_derived, list, non_empty_string, string_map};
use super::{ConfigFact, Facts};

const CONFIG: &[&str] = &["name", "properties"];
const SECRET: &[&str] = &["name", "properties"];
const SECRET_PROPERTIES: &[&str] = &["policy", "key", "field", "version"];

/// Reads a config list (`properties.config`, `source.config`, `target.config`, …).
pub(super) fn configs(
    node: &Node,
    path: &Path,
    app: &str,
    on_link: bool,
    facts: &mut Facts,
    d: &mut Diagnostics,
) -> Vec<ConfigRef> {
    let mut out = Vec::new();
    for (node, path) in list(node, path, d) {
        let f = Fields::of(node, &path, "a config", CONFIG, d);
        let name = f.req("name", d, non_empty_string);
        let properties =
            f.get_present("properties").map(|n| string_map(n, &path.key("properties"), d));
        let name_path = path.key("name");
        let lattice_name = match &properties {
            Some(props) => {
                let lattice_name = names::owned_config_name(app, &name);
                let derived_what = "the config's lattice name";
                check_len_derived(
                    &name,
                    &lattice_name,
                    &name_path,
                    "a config name",
                    derived_what,
                    d,
                );
                facts.owned_configs.push(ConfigFact {
                    lattice_name: lattice_name.clone(),
                    properties: props.clone(),
                    path: path.key("name"),
                    on_link,
                });
                lattice_name
            }
            None => {
                check_len(&name, &name_path, "a config name", d);
                name.clone()
            }
        };
        out.push(ConfigRef { name, lattice_name, properties });
    }
    out
}

/// Reads a secrets list.
pub(super) fn secrets(
    node: &Node,
    path: &Path,
    app: &str,
    facts: &mut Facts,
    d: &mut Diagnostics,
) -> Vec<SecretRef> {
    let mut out = Vec::new();
    for (node, path) in list(node, path, d) {
        let f = Fields::of(node, &path, "a secret", SECRET, d);
        let name = f.req("name", d, non_empty_string);
        let lattice_name = names::secret_config_name(app, &name);
        let derived_what = "the secret's config name";
        check_len_derived(
            &name,
            &lattice_name,
            &path.key("name"),
            "a secret name",
            derived_what,
            d,
        );
        let props = f.get_present("properties").unwrap_or(&Node::Null);
        let props_path = path.key("properties");
        if f.get_present("properties").is_none() {
            d.error(&props_path, "missing-field", "`properties` is required");
        }
        let p = Fields::of(props, &props_path, "secret properties", SECRET_PROPERTIES, d);
        let policy = p.req("policy", d, non_empty_string);
        facts.secret_policies.push((policy.clone(), props_path.key("policy")));
        out.push(SecretRef {
            lattice_name,
            name,
            policy,
            key: p.req("key", d, non_empty_string),
            field: p.opt_str("field", d),
            version: p.opt_str("version", d),
        });
    }
    out
}
