//! Semantic equality over the corpus of real manifests (`fixtures/manifests`): each one equals
//! itself re-serialised, with its keys reordered and with its defaults written out; a real change
//! (an image, an instance count, a link target) never does.

use std::path::PathBuf;

use serde_json::{Map, Value, json};
use wadm_model::{Application, Format, Limits, normal_form, parse_manifest, same_content};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/manifests"));
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "json")))
        .map(|p| {
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(out.len() >= 9, "the corpus is there");
    out
}

fn parse(bytes: &[u8]) -> Result<Application, String> {
    parse_manifest(bytes, Format::Auto, &Limits::default())
        .map(|p| p.app)
        .map_err(|e| format!("{:?}", e.diagnostics))
}

fn value(bytes: &[u8]) -> Value {
    serde_saphyr::from_str(std::str::from_utf8(bytes).unwrap()).unwrap()
}

fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

/// Every map's keys in reverse order.
fn reversed(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map.iter().rev() {
                out.insert(k.clone(), reversed(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(reversed).collect()),
        other => other.clone(),
    }
}

fn components(v: &mut Value) -> &mut Vec<Value> {
    v["spec"]["components"].as_array_mut().unwrap()
}

fn is_scaler(t: &Value) -> bool {
    matches!(t["type"].as_str(), Some("spreadscaler" | "daemonscaler"))
}

/// The defaults written out: `actor` for `component`, spread weights of 100, link names
/// `default`, a provider's single instance.
fn explicit(v: &Value) -> Value {
    let mut v = v.clone();
    for c in components(&mut v) {
        if c["type"] == "component" {
            c["type"] = json!("actor");
        }
        let provider = c["type"] == "capability" && c["properties"].get("image").is_some();
        let traits = c.as_object_mut().unwrap().entry("traits").or_insert_with(|| json!([]));
        let traits = traits.as_array_mut().unwrap();
        if provider && !traits.iter().any(is_scaler) {
            traits.push(json!({"type": "spreadscaler", "properties": {"instances": 1}}));
        }
        for t in traits.iter_mut() {
            if t["type"] == "link" && t["properties"].get("name").is_none() {
                t["properties"]["name"] = json!("default");
            }
            if is_scaler(t) {
                for s in t["properties"]["spread"].as_array_mut().into_iter().flatten() {
                    if s.get("weight").is_none() {
                        s["weight"] = json!(100);
                    }
                }
            }
        }
    }
    v
}

#[test]
fn every_manifest_equals_its_other_spellings() {
    for (file, bytes) in corpus() {
        let original = parse(&bytes).unwrap();
        let v = value(&bytes);
        let spellings = [
            ("json", json_bytes(&v)),
            ("yaml", serde_saphyr::to_string(&v).unwrap().into_bytes()),
            ("reordered", json_bytes(&reversed(&v))),
            ("explicit", json_bytes(&explicit(&v))),
            (
                "explicit yaml",
                serde_saphyr::to_string(&explicit(&reversed(&v))).unwrap().into_bytes(),
            ),
            ("normal form", serde_json::to_vec(&normal_form(&original)).unwrap()),
        ];
        for (how, text) in spellings {
            let other = parse(&text).unwrap_or_else(|e| panic!("{file} {how}: {e}"));
            assert!(same_content(&original, &other), "{file}: {how} differs");
            assert!(same_content(&other, &original), "{file}: {how} differs (reversed)");
        }
        let mut versioned = v.clone();
        versioned["metadata"]["annotations"]["version"] = json!("some-other-version");
        assert!(same_content(&original, &parse(&json_bytes(&versioned)).unwrap()), "{file}");
    }
}

#[test]
fn real_changes_are_not_equal() {
    let (mut images, mut instances, mut targets) = (0, 0, 0);
    for (file, bytes) in corpus() {
        let original = parse(&bytes).unwrap();
        let v = value(&bytes);
        let names: Vec<String> = v["spec"]["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        let mut changes = Vec::new();
        // Each component's image.
        for i in 0..names.len() {
            let mut c = v.clone();
            if let Some(Value::String(image)) = components(&mut c)[i]["properties"].get_mut("image")
            {
                image.push_str("-changed");
                changes.push(("image", c));
            }
        }
        // Each scaler's instance count.
        for i in 0..names.len() {
            let count = v["spec"]["components"][i]["traits"].as_array().map_or(0, Vec::len);
            for t in 0..count {
                let mut c = v.clone();
                let props = &mut components(&mut c)[i]["traits"][t]["properties"];
                let key = ["instances", "replicas"].into_iter().find(|k| props.get(*k).is_some());
                if let Some(key) = key {
                    props[key] = json!(props[key].as_u64().unwrap() + 1);
                    changes.push(("instances", c));
                }
            }
        }
        // Each link's target, moved to another component of the manifest.
        for i in 0..names.len() {
            let count = v["spec"]["components"][i]["traits"].as_array().map_or(0, Vec::len);
            for t in 0..count {
                let link = &v["spec"]["components"][i]["traits"][t];
                if link["type"] != "link" {
                    continue;
                }
                let target = &link["properties"]["target"];
                let current = target.as_str().or(target["name"].as_str()).unwrap().to_string();
                for other in names.iter().filter(|n| **n != current && **n != names[i]) {
                    let mut c = v.clone();
                    let target = &mut components(&mut c)[i]["traits"][t]["properties"]["target"];
                    if target.is_string() {
                        *target = json!(other);
                    } else {
                        target["name"] = json!(other);
                    }
                    changes.push(("link target", c));
                }
            }
        }
        for (what, changed) in changes {
            // Some moves break a rule (e.g. a duplicate link): those are not comparable.
            let Ok(changed) = parse(&json_bytes(&changed)) else { continue };
            assert!(!same_content(&original, &changed), "{file}: a changed {what} is equal");
            match what {
                "image" => images += 1,
                "instances" => instances += 1,
                _ => targets += 1,
            }
        }
    }
    assert!(images > 10 && instances > 5 && targets > 3, "{images} {instances} {targets}");
}
