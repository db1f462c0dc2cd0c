//! Property tests: random structural mutations of the shared manifests (deleted, duplicated,
//! retyped and renamed fields, random strings, numbers at the integer limits) never panic; every
//! rejection names a path for each field error; every accepted mutation round-trips.

use proptest::prelude::*;
use serde_json::{Value, json};
use wadm_model::{Format, Limits, parse_manifest};

/// Rules about the document as a whole, which have no field path.
const DOCUMENT_RULES: &[&str] =
    &["syntax", "document-too-large", "invalid-utf8", "empty-document", "not-a-manifest"];

fn samples() -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/manifests");
    let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
        .iter()
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "json")))
        .map(|p| serde_saphyr::from_slice::<Value>(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// Every JSON pointer in `v`, the root included.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                pointers(child, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Duplicate(usize),
    Replace(usize, Value),
    Rename(usize, String),
    Insert(usize, String, Value),
}

fn edge_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop_oneof![
            Just(json!(0)),
            Just(json!(-1)),
            Just(json!(u32::MAX)),
            Just(json!(u64::from(u32::MAX) + 1)),
            Just(json!(i64::MIN)),
            Just(json!(i64::MAX)),
            Just(json!(u64::MAX)),
            Just(json!(1.5)),
            Just(json!(1e300)),
            any::<i64>().prop_map(Value::from),
        ],
        "\\PC{0,12}".prop_map(Value::from),
        prop_oneof![Just("latest"), Just("web"), Just("kv"), Just("wasi"), Just(""), Just("a/b")]
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let key = prop_oneof![
        Just("name".to_string()),
        Just("instances".to_string()),
        Just("target".to_string()),
        Just("id".to_string()),
        Just("application".to_string()),
        "[a-z_]{1,10}",
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Duplicate),
        (any::<usize>(), edge_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        (any::<usize>(), key.clone()).prop_map(|(i, k)| Mutation::Rename(i, k)),
        (any::<usize>(), key, edge_value()).prop_map(|(i, k, v)| Mutation::Insert(i, k, v)),
    ]
}

fn split(pointer: &str) -> (&str, String) {
    let cut = pointer.rfind('/').unwrap_or(0);
    (&pointer[..cut], pointer[cut + 1..].replace("~1", "/").replace("~0", "~"))
}

fn apply(doc: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    let pick = |i: usize| all[i % all.len()].clone();
    match m {
        Mutation::Replace(i, v) => {
            if let Some(slot) = doc.pointer_mut(&pick(*i)) {
                *slot = v.clone();
            }
        }
        Mutation::Insert(i, k, v) => {
            if let Some(Value::Object(map)) = doc.pointer_mut(&pick(*i)) {
                map.insert(k.clone(), v.clone());
            }
        }
        Mutation::Delete(i) | Mutation::Duplicate(i) | Mutation::Rename(i, _) => {
            let pointer = pick(*i);
            if pointer.is_empty() {
                return;
            }
            let (parent, last) = split(&pointer);
            match (doc.pointer_mut(parent), m) {
                (Some(Value::Object(map)), Mutation::Delete(_)) => {
                    map.remove(&last);
                }
                (Some(Value::Object(map)), Mutation::Rename(_, new)) => {
                    if let Some(v) = map.remove(&last) {
                        map.insert(new.clone(), v);
                    }
                }
                (Some(Value::Array(items)), Mutation::Delete(_)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        items.remove(i);
                    }
                }
                (Some(Value::Array(items)), Mutation::Duplicate(_)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        let copy = items[i].clone();
                        items.insert(i, copy);
                    }
                }
                _ => {}
            }
        }
    }
}

fn check_outcome(bytes: &[u8], format: Format) -> Result<(), TestCaseError> {
    match parse_manifest(bytes, format, &Limits::default()) {
        Ok(parsed) => {
            let json = serde_json::to_vec(&parsed.app.to_wire()).unwrap();
            let again = parse_manifest(&json, Format::Json, &Limits::default());
            prop_assert!(again.is_ok(), "canonical form rejected: {:?}", again.err());
            prop_assert_eq!(again.unwrap().app, parsed.app);
        }
        Err(invalid) => {
            prop_assert!(invalid.diagnostics.iter().any(|d| d.is_error()));
            for d in &invalid.diagnostics {
                prop_assert!(!d.message.is_empty());
                if !DOCUMENT_RULES.contains(&d.rule) {
                    prop_assert!(!d.path.is_empty(), "field error without a path: {:?}", d);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn mutated_manifests_never_panic_and_name_their_fields(
        sample in any::<usize>(),
        mutations in prop::collection::vec(mutation(), 1..6),
        as_yaml in any::<bool>(),
    ) {
        let all = samples();
        let mut doc = all[sample % all.len()].clone();
        for m in &mutations {
            apply(&mut doc, m);
        }
        if as_yaml {
            let yaml = serde_saphyr::to_string(&doc).unwrap();
            check_outcome(yaml.as_bytes(), Format::Yaml)?;
        } else {
            check_outcome(&serde_json::to_vec(&doc).unwrap(), Format::Json)?;
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for format in [Format::Auto, Format::Yaml, Format::Json] {
            check_outcome(&bytes, format)?;
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        check_outcome(text.as_bytes(), Format::Auto)?;
    }
}
