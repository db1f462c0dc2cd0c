//! Typed reads from a [`Node`] that report every problem with its path instead of failing.
//!
//! Each reader returns a usable value even when the input is wrong (empty string, zero, empty
//! list), after recording an error: the walk always continues so that all problems are reported,
//! and the partially built application is discarded when any error was found.

use std::collections::BTreeMap;

use crate::diag::{Diagnostics, Path};
use crate::node::Node;

/// The entries of a map node whose keys were checked against the fields a type allows.
pub(super) struct Fields<'n> {
    entries: &'n [(String, Node)],
    pub path: Path,
}

impl<'n> Fields<'n> {
    /// Reads `node` as a map with the given allowed keys: reports a non-map, duplicate keys and
    /// unknown keys. `what` names the object for messages (`"a component"`).
    pub(super) fn of(
        node: &'n Node,
        path: &Path,
        what: &str,
        allowed: &[&str],
        d: &mut Diagnostics,
    ) -> Self {
        let entries: &[(String, Node)] = match node {
            Node::Map(entries) => entries,
            // A missing or null object is reported by the caller as a missing field.
            Node::Null => &[],
            other => {
                d.error(
                    path,
                    "wrong-type",
                    format!("must be {what} (a map), found {}", other.kind()),
                );
                &[]
            }
        };
        check_duplicate_keys(entries, path, d);
        for (key, _) in entries {
            if !allowed.contains(&key.as_str()) {
                d.error(
                    &path.key(key),
                    "unknown-field",
                    format!(
                        "unknown field `{key}` in {what}; expected one of: {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
        Self { entries, path: path.clone() }
    }

    /// The first value under `key` (duplicates were already reported).
    pub(super) fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Like [`Self::get`], treating an explicit `null` as absent.
    pub(super) fn get_present(&self, key: &str) -> Option<&'n Node> {
        self.get(key).filter(|n| !matches!(n, Node::Null))
    }

    pub(super) fn has(&self, key: &str) -> bool {
        self.get_present(key).is_some()
    }

    /// A required string field.
    pub(super) fn req_str(&self, key: &str, d: &mut Diagnostics) -> String {
        let path = self.path.key(key);
        match self.get_present(key) {
            Some(node) => string(node, &path, d),
            None => {
                d.error(&path, "missing-field", format!("`{key}` is required"));
                String::new()
            }
        }
    }

    /// An optional string field.
    pub(super) fn opt_str(&self, key: &str, d: &mut Diagnostics) -> Option<String> {
        self.get_present(key).map(|node| string(node, &self.path.key(key), d))
    }

    /// A required field, handed to `read`; the type's default when missing (reported).
    pub(super) fn req<T: Default>(
        &self,
        key: &str,
        d: &mut Diagnostics,
        read: impl FnOnce(&'n Node, &Path, &mut Diagnostics) -> T,
    ) -> T {
        self.req_opt(key, d, read).unwrap_or_default()
    }

    /// A required field, handed to `read`; `None` when missing (reported).
    pub(super) fn req_opt<T>(
        &self,
        key: &str,
        d: &mut Diagnostics,
        read: impl FnOnce(&'n Node, &Path, &mut Diagnostics) -> T,
    ) -> Option<T> {
        let path = self.path.key(key);
        match self.get_present(key) {
            Some(node) => Some(read(node, &path, d)),
            None => {
                d.error(&path, "missing-field", format!("`{key}` is required"));
                None
            }
        }
    }
}

/// Reports every key that appears more than once (at its second and later occurrences).
pub(super) fn check_duplicate_keys(entries: &[(String, Node)], path: &Path, d: &mut Diagnostics) {
    for (i, (key, _)) in entries.iter().enumerate() {
        if entries[..i].iter().any(|(k, _)| k == key) {
            d.error(
                &path.key(key),
                "duplicate-key",
                format!("the key `{key}` appears more than once"),
            );
        }
    }
}

/// A string. Like upstream wadm (and its schema), a plain YAML scalar that parses as a number or
/// a boolean (`namespace: 5`, `port: 8080`, `enabled: true`) is not a string: it is an error at
/// its path that says how to write it (quoted), never silently turned into text.
pub(super) fn string(node: &Node, path: &Path, d: &mut Diagnostics) -> String {
    match node {
        Node::Str(s) => s.clone(),
        Node::Int(_) | Node::Bool(_) | Node::Float(_) => {
            let text = match node {
                Node::Int(i) => i.to_string(),
                Node::Bool(b) => b.to_string(),
                Node::Float(f) => f.to_string(),
                _ => String::new(),
            };
            d.error(
                path,
                "wrong-type",
                format!("must be a string, found {} {text}: quote it (\"{text}\")", node.kind()),
            );
            String::new()
        }
        other => {
            d.error(path, "wrong-type", format!("must be a string, found {}", other.kind()));
            String::new()
        }
    }
}

/// A string that must not be empty.
pub(super) fn non_empty_string(node: &Node, path: &Path, d: &mut Diagnostics) -> String {
    let s = string(node, path, d);
    if s.is_empty() && matches!(node, Node::Str(_)) {
        d.error(path, "empty-value", "must not be empty");
    }
    s
}

/// Reports `value`, which the manifest calls `what` (`"a config name"`), when it is longer than
/// [`crate::names::MAX_NAME_LEN`] (it becomes a subject token or part of a storage key); true
/// when it was reported.
pub(super) fn check_len(value: &str, path: &Path, what: &str, d: &mut Diagnostics) -> bool {
    let reason = crate::names::name_len_error(what, value);
    if let Some(reason) = &reason {
        d.error(path, "name-too-long", reason.clone());
    }
    reason.is_some()
}

/// Checks the name at `path` (called `what`) and the lattice name derived from it (called
/// `derived_what`): the derived one is reported only when the name itself is within bounds, so
/// one long name yields one error.
pub(super) fn check_len_derived(
    name: &str,
    derived: &str,
    path: &Path,
    what: &str,
    derived_what: &str,
    d: &mut Diagnostics,
) {
    if check_len(name, path, what, d) || derived.len() <= crate::names::MAX_NAME_LEN {
        return;
    }
    d.error(
        path,
        "name-too-long",
        format!(
            "{derived_what} derived from this name and the application name is {} bytes; at most \
             {} are accepted: shorten one of them",
            derived.len(),
            crate::names::MAX_NAME_LEN
        ),
    );
}

/// A non-negative whole number that fits in 32 bits.
pub(super) fn u32_number(node: &Node, path: &Path, d: &mut Diagnostics) -> u32 {
    match node {
        Node::Int(i) if *i < 0 => {
            d.error(path, "number-out-of-range", format!("must not be negative, found {i}"));
            0
        }
        Node::Int(i) => u32::try_from(*i).unwrap_or_else(|_| {
            d.error(
                path,
                "number-out-of-range",
                format!("must be at most {}, found {i}", u32::MAX),
            );
            0
        }),
        Node::Float(f) => {
            d.error(path, "not-a-whole-number", format!("must be a whole number, found {f}"));
            0
        }
        other => {
            d.error(path, "wrong-type", format!("must be a whole number, found {}", other.kind()));
            0
        }
    }
}

/// A list; `null` reads as empty. Returns each element with its path; `null` elements are
/// reported and left out.
pub(super) fn list<'n>(node: &'n Node, path: &Path, d: &mut Diagnostics) -> Vec<(&'n Node, Path)> {
    match node {
        Node::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if matches!(item, Node::Null) {
                    d.error(&path.index(i), "empty-entry", "this list entry is empty (null)");
                } else {
                    out.push((item, path.index(i)));
                }
            }
            out
        }
        Node::Null => Vec::new(),
        other => {
            d.error(path, "wrong-type", format!("must be a list, found {}", other.kind()));
            Vec::new()
        }
    }
}

/// A list of strings.
pub(super) fn string_list(node: &Node, path: &Path, d: &mut Diagnostics) -> Vec<String> {
    list(node, path, d).into_iter().map(|(n, p)| non_empty_string(n, &p, d)).collect()
}

/// A map of string to string; `null` reads as empty.
pub(super) fn string_map(
    node: &Node,
    path: &Path,
    d: &mut Diagnostics,
) -> BTreeMap<String, String> {
    match node {
        Node::Map(entries) => {
            check_duplicate_keys(entries, path, d);
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                let value = string(v, &path.key(k), d);
                out.entry(k.clone()).or_insert(value);
            }
            out
        }
        Node::Null => BTreeMap::new(),
        other => {
            d.error(
                path,
                "wrong-type",
                format!("must be a map of strings, found {}", other.kind()),
            );
            BTreeMap::new()
        }
    }
}
