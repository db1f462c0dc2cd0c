//! Cost of `parse_manifest` (read + validate + canonical wire form) per manifest: a small sample
//! in YAML and JSON, and a generated 200-component manifest in both formats, so costs can be
//! compared as ratios.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use wadm_model::{Format, Limits, parse_manifest};

fn large_manifest(components: usize) -> String {
    let mut yaml = String::from(
        "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: big\nspec:\n  components:\n",
    );
    for i in 0..components {
        yaml.push_str(&format!(
            "    - name: c{i}\n      type: component\n      properties:\n        image: ghcr.io/x/c{i}:1\n        \
             config:\n          - name: cfg{i}\n            properties: {{k: v{i}}}\n      traits:\n        \
             - type: spreadscaler\n          properties:\n            instances: 3\n            spread:\n              \
             - name: east\n                requirements: {{zone: east}}\n                weight: 60\n              \
             - name: west\n                requirements: {{zone: west}}\n                weight: 40\n        \
             - type: link\n          properties:\n            namespace: wasi\n            package: keyvalue\n            \
             interfaces: [store]\n            target: {{name: c{}}}\n",
            (i + 1) % components
        ));
    }
    yaml
}

fn bench(c: &mut Criterion) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/manifests");
    let kv_yaml = std::fs::read(format!("{dir}/kvcounter.yaml")).unwrap();
    let simple_json = std::fs::read(format!("{dir}/simple1.json")).unwrap();
    let big = large_manifest(200).into_bytes();
    let limits = Limits::default();
    let parsed =
        parse_manifest(&big, Format::Yaml, &limits).expect("the generated manifest is valid");
    let big_json = serde_json::to_vec(&parsed.manifest).unwrap();
    let mut group = c.benchmark_group("parse_manifest");
    for (name, bytes, format) in [
        ("kvcounter.yaml", &kv_yaml, Format::Yaml),
        ("simple1.json", &simple_json, Format::Json),
        ("generated-200-components.yaml", &big, Format::Yaml),
        ("generated-200-components.json", &big_json, Format::Json),
    ] {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group
            .bench_function(name, |b| b.iter(|| parse_manifest(black_box(bytes), format, &limits)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
