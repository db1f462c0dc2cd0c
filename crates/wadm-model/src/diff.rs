//! Differences between two manifests in their normal form (or any two JSON documents): each
//! field added, removed or changed, by a readable path. Lists of objects that name themselves
//! (components by `name`, traits by `type`) are matched by that name, so inserting a component
//! shows as one addition rather than a change of every later one. Pure and deterministic.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What happened to one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Only in the newer manifest.
    Added,
    /// Only in the older manifest.
    Removed,
    /// In both, with different values.
    Changed,
}

/// One difference: `path` like `spec.components[name=http].properties.image`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Where in the manifest.
    pub path: String,
    /// Added, removed or changed.
    pub change: ChangeKind,
    /// The older value (absent when added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    /// The newer value (absent when removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map(Value::to_string).unwrap_or_default();
        match self.change {
            ChangeKind::Added => write!(f, "+ {}: {}", self.path, show(&self.to)),
            ChangeKind::Removed => write!(f, "- {}: {}", self.path, show(&self.from)),
            ChangeKind::Changed => {
                write!(f, "~ {}: {} → {}", self.path, show(&self.from), show(&self.to))
            }
        }
    }
}

/// Every difference from `old` to `new`, in document order (object keys sorted).
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk(String::new(), old, new, &mut out);
    out
}

fn walk(path: String, old: &Value, new: &Value, out: &mut Vec<Change>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let at = child(&path, key);
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => walk(at, x, y, out),
                    (Some(x), None) => out.push(removed(at, x)),
                    (None, Some(y)) => out.push(added(at, y)),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => match name_field(a, b) {
            Some(field) => {
                let name = |v: &Value| v.get(field).and_then(Value::as_str).map(str::to_string);
                let at = |n: &str| format!("{path}[{field}={n}]");
                for x in a {
                    let n = name(x).unwrap_or_default();
                    match b.iter().find(|y| name(y).as_deref() == Some(n.as_str())) {
                        Some(y) => walk(at(&n), x, y, out),
                        None => out.push(removed(at(&n), x)),
                    }
                }
                for y in b {
                    let n = name(y).unwrap_or_default();
                    if !a.iter().any(|x| name(x).as_deref() == Some(n.as_str())) {
                        out.push(added(at(&n), y));
                    }
                }
            }
            None => {
                for i in 0..a.len().max(b.len()) {
                    let at = format!("{path}[{i}]");
                    match (a.get(i), b.get(i)) {
                        (Some(x), Some(y)) => walk(at, x, y, out),
                        (Some(x), None) => out.push(removed(at, x)),
                        (None, Some(y)) => out.push(added(at, y)),
                        (None, None) => {}
                    }
                }
            }
        },
        (x, y) if x == y => {}
        (x, y) => out.push(Change {
            path: display_root(path),
            change: ChangeKind::Changed,
            from: Some(x.clone()),
            to: Some(y.clone()),
        }),
    }
}

/// The field that names every element of both lists uniquely (`name`, else `type`), if any.
fn name_field(a: &[Value], b: &[Value]) -> Option<&'static str> {
    ["name", "type"].into_iter().find(|field| {
        [a, b].iter().all(|list| {
            let names: Option<Vec<&str>> =
                list.iter().map(|v| v.get(*field).and_then(Value::as_str)).collect();
            names.is_some_and(|mut names| {
                let n = names.len();
                names.sort_unstable();
                names.dedup();
                names.len() == n
            })
        }) && !(a.is_empty() && b.is_empty())
    })
}

fn child(path: &str, key: &str) -> String {
    let plain =
        !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", Value::String(key.to_string())),
    }
}

fn display_root(path: String) -> String {
    if path.is_empty() { "(document)".to_string() } else { path }
}

fn added(path: String, value: &Value) -> Change {
    Change {
        path: display_root(path),
        change: ChangeKind::Added,
        from: None,
        to: Some(value.clone()),
    }
}

fn removed(path: String, value: &Value) -> Change {
    Change {
        path: display_root(path),
        change: ChangeKind::Removed,
        from: Some(value.clone()),
        to: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn equal_documents_have_no_changes() {
        let doc = json!({"a": [1, {"name": "x", "v": 2}], "b": {"c": null}});
        assert!(diff(&doc, &doc).is_empty());
    }

    #[test]
    fn named_lists_are_matched_by_name() {
        let old = json!({"spec": {"components": [
            {"name": "a", "properties": {"image": "a:1"}},
            {"name": "b", "properties": {"image": "b:1"}},
        ]}});
        let new = json!({"spec": {"components": [
            {"name": "new", "properties": {"image": "n:1"}},
            {"name": "a", "properties": {"image": "a:2"}},
            {"name": "b", "properties": {"image": "b:1"}},
        ]}});
        let changes = diff(&old, &new);
        let lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "~ spec.components[name=a].properties.image: \"a:1\" → \"a:2\"",
                "+ spec.components[name=new]: {\"name\":\"new\",\"properties\":{\"image\":\"n:1\"}}",
            ]
        );
    }

    #[test]
    fn other_lists_by_position_and_odd_keys_quoted() {
        let old = json!({"metadata": {"annotations": {"wasmcloud.dev/x": "1"}}, "l": [1, 2]});
        let new = json!({"metadata": {"annotations": {}}, "l": [1, 3, 4]});
        let lines: Vec<String> = diff(&old, &new).iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            ["~ l[1]: 2 → 3", "+ l[2]: 4", "- metadata.annotations[\"wasmcloud.dev/x\"]: \"1\"",]
        );
    }

    #[test]
    fn duplicate_names_fall_back_to_positions() {
        let old = json!([{"type": "link", "t": 1}, {"type": "link", "t": 2}]);
        let new = json!([{"type": "link", "t": 1}, {"type": "link", "t": 3}]);
        assert_eq!(diff(&old, &new)[0].path, "[1].t");
        assert_eq!(diff(&json!(1), &json!(2))[0].path, "(document)");
    }
}
