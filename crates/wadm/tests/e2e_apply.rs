//! Idempotent apply end to end: `wadm app deploy FILE` run again on an unchanged file (and on
//! the same content spelt otherwise: aliases, defaults written out, keys reordered) against a
//! running wadm (API server and runtime) and simulated hosts exits 0 and says "Unchanged", stores
//! no version, records no history, keeps the status, and makes wadm send the hosts no command.

mod common;

use std::time::Duration;

use common::realhost::{EFFECT_KINDS, Recorder};
use common::{Cluster, LATTICE};
use wadm_model::StatusType;

/// A component (spread over two zones, explicit default weight, `actor` alias), a provider with
/// its default single instance written out, a link with owned config.
const APP: &str = r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: apply
  annotations:
    version: v1
    description: idempotent apply
spec:
  components:
    - name: web
      type: actor
      properties:
        image: ghcr.io/example/web:1.0.0
      traits:
        - type: spreadscaler
          properties:
            instances: 4
            spread:
              - name: east
                requirements: {zone: east}
                weight: 100
              - name: west
                requirements: {zone: west}
                weight: 100
    - name: http
      type: capability
      properties:
        image: ghcr.io/example/http:1.0.0
      traits:
        - type: spreadscaler
          properties:
            instances: 1
        - type: link
          properties:
            target: {name: web}
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
            source:
              config:
                - name: listen
                  properties: {address: "0.0.0.0:8080"}
"#;

/// The same application spelt otherwise: `component`, `replicas`, no weights, no provider
/// scaler, the legacy link target form, keys of the metadata reordered.
const RESPELT: &str = r#"kind: Application
apiVersion: core.oam.dev/v1beta1
metadata:
  annotations:
    description: idempotent apply
    version: v1
  name: apply
spec:
  components:
    - name: web
      type: component
      properties:
        image: ghcr.io/example/web:1.0.0
      traits:
        - type: spreadscaler
          properties:
            replicas: 4
            spread:
              - name: east
                requirements: {zone: east}
              - name: west
                requirements: {zone: west}
    - name: http
      type: capability
      properties:
        image: ghcr.io/example/http:1.0.0
      traits:
        - type: link
          properties:
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
            target: web
            source:
              config:
                - name: listen
                  properties: {address: "0.0.0.0:8080"}
"#;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn wadm_app(cluster: &Cluster, args: &[&str]) -> Run {
    let output = cluster.wadm(&[&["app"], args].concat()).await;
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn effects(recorder: &Recorder) -> Vec<String> {
    recorder
        .requests()
        .iter()
        .filter(|r| EFFECT_KINDS.contains(&recorder.kind(&r.subject).as_str()))
        .map(|r| format!("{} {}", recorder.kind(&r.subject), r.body))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redeploying_an_unchanged_file_changes_nothing_anywhere() {
    let cluster = Cluster::start(1, Cluster::zone_hosts(&[("east", 1), ("west", 1)])).await;
    let recorder = Recorder::start(&cluster.nats.url(), LATTICE, "_NOT_IGNORED").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apply.yaml");
    std::fs::write(&file, APP).unwrap();
    let respelt = dir.path().join("respelt.yaml");
    std::fs::write(&respelt, RESPELT).unwrap();
    let file = file.to_str().unwrap();

    let first = wadm_app(&cluster, &["deploy", file]).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    assert!(first.stdout.contains("Deployed apply version v1"), "{}", first.stdout);
    cluster
        .wait_lattice("v1 runs", |v| {
            v.count("apply-web") == 4
                && v.provider_hosts("apply-http").len() == 1
                && v.linked("apply-http", "apply-web")
        })
        .await;
    cluster.wait_status("apply", StatusType::Deployed).await.unwrap();
    // Let the runtime settle (a resync or two), then take the baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = effects(&recorder);
    assert!(before.len() >= 4, "the first deploy commanded the hosts: {before:?}");
    let versions = cluster.client.versions_reply("apply").await.unwrap();
    let history = cluster.client.history("apply").await.unwrap();
    let status = cluster.client.status("apply").await.unwrap();

    for path in [file, file, respelt.to_str().unwrap()] {
        let again = wadm_app(&cluster, &["deploy", path]).await;
        assert_eq!(again.code, 0, "{path}: {}{}", again.stdout, again.stderr);
        assert_eq!(again.stdout, "Unchanged: apply version v1 is already deployed\n");
        assert!(
            again.stderr.contains("Unchanged: apply version v1 is already stored"),
            "{}",
            again.stderr
        );
    }
    let waited = wadm_app(&cluster, &["deploy", file, "--wait", "--timeout", "30s"]).await;
    assert_eq!(waited.code, 0, "{}{}", waited.stdout, waited.stderr);
    assert!(waited.stdout.contains("already deployed: deployed"), "{}", waited.stdout);

    // Past a few resyncs: still nothing sent to the hosts, nothing stored or recorded.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = effects(&recorder);
    assert_eq!(after, before, "the re-deploys made wadm command the hosts");
    assert_eq!(cluster.client.versions_reply("apply").await.unwrap(), versions);
    assert_eq!(cluster.client.history("apply").await.unwrap(), history);
    let now = cluster.client.status("apply").await.unwrap();
    assert_eq!(now.status.status_type, status.status.status_type);
    assert_eq!(cluster.view().count("apply-web"), 4);

    // A real change still goes through: a new version, deployed, the hosts updated.
    let changed = dir.path().join("changed.yaml");
    std::fs::write(
        &changed,
        APP.replace("version: v1", "version: v2").replace("instances: 4", "instances: 2"),
    )
    .unwrap();
    let run = wadm_app(&cluster, &["deploy", changed.to_str().unwrap()]).await;
    assert!(run.stdout.contains("Deployed apply version v2"), "{}{}", run.stdout, run.stderr);
    cluster.wait_lattice("v2 runs", |v| v.count("apply-web") == 2).await;
    assert!(effects(&recorder).len() > after.len());
    cluster.shutdown().await;
}
