//! A generic document tree, read from YAML or JSON before any validation.
//!
//! serde's derived deserializers stop at the first problem and lose the field path, so the manifest
//! is first read into a [`Node`] — which only fails on syntax, nesting beyond the depth limit and
//! non-text mapping keys — and then walked field by field. Maps keep every entry in document
//! order, including duplicate keys, so that the walker can report duplicates with their paths.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// One value of a document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    /// Every integer the parsers produce fits in an `i128`.
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; duplicate keys are kept.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// A short description of the value's type, for messages (`"a list"`, `"a number"`).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) | Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a map",
        }
    }

    /// Converts to JSON (used for traits wadm does not know, which are kept as written).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    Value::from(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    Value::from(v)
                } else {
                    Value::String(i.to_string())
                }
            }
            Node::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Node::Str(s) => Value::String(s.clone()),
            Node::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Node::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    map.insert(k.clone(), v.to_json());
                }
                Value::Object(map)
            }
        }
    }
}

/// Deserializes a [`Node`], failing when nesting exceeds `max_depth` (so that hostile input
/// cannot exhaust the stack).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeSeed {
    /// Depth of the value about to be read (the document root is 1).
    pub depth: usize,
    pub max_depth: usize,
}

impl NodeSeed {
    pub(crate) fn root(max_depth: usize) -> Self {
        Self { depth: 1, max_depth }
    }

    fn child(self) -> Self {
        Self { depth: self.depth + 1, max_depth: self.max_depth }
    }

    fn check<E: de::Error>(self) -> Result<(), E> {
        if self.depth > self.max_depth {
            Err(E::custom(format!("the document is nested deeper than {} levels", self.max_depth)))
        } else {
            Ok(())
        }
    }
}

impl<'de> DeserializeSeed<'de> for NodeSeed {
    type Value = Node;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML or JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
        // Beyond i128 nothing is a valid manifest number; keep it as a huge float for messages.
        Ok(i128::try_from(v).map_or(Node::Float(v as f64), Node::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Node, E> {
        Ok(Node::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        self.check()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.child())? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        self.check()?;
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(self.child())? {
            let key = match key {
                Node::Str(s) => s,
                Node::Int(i) => i.to_string(),
                Node::Bool(b) => b.to_string(),
                Node::Float(f) => f.to_string(),
                Node::Null => "null".to_string(),
                other => {
                    return Err(de::Error::custom(format!(
                        "mapping keys must be text, found {}",
                        other.kind()
                    )));
                }
            };
            let value = map.next_value_seed(self.child())?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_duplicate_keys_in_order() {
        let mut de = serde_json::Deserializer::from_str(r#"{"a": 1, "a": [true, null]}"#);
        let node = NodeSeed::root(8).deserialize(&mut de).unwrap();
        assert_eq!(
            node,
            Node::Map(vec![
                ("a".into(), Node::Int(1)),
                ("a".into(), Node::Seq(vec![Node::Bool(true), Node::Null])),
            ])
        );
    }

    #[test]
    fn nesting_beyond_the_limit_is_an_error() {
        let deep = format!("{}{}", "[".repeat(10), "]".repeat(10));
        let mut de = serde_json::Deserializer::from_str(&deep);
        let err = NodeSeed::root(5).deserialize(&mut de).unwrap_err();
        assert!(err.to_string().contains("deeper than 5"), "{err}");
    }
}
