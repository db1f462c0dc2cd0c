//! Idempotent apply: a put or deploy of what is already there changes nothing and says so; a
//! put keeps the document as sent (served by `model.get`); expected revisions refuse requests
//! decided on a stale view.

use async_nats::HeaderMap;
use serde_json::Value;
use wadm_model::api::*;

use crate::common::{Env, manifest};

fn expecting(revision: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(EXPECTED_REVISION_HEADER, revision);
    headers
}

async fn history_len(env: &Env, app: &str) -> usize {
    let history: HistoryResponse = env.req(&format!("default.model.history.{app}"), "").await;
    history.history.len()
}

#[tokio::test]
async fn a_put_equal_after_normalising_is_a_no_op() {
    let env = Env::start().await;
    let original = manifest("app", Some("v1"));
    let put: PutModelResponse = env.req("default.model.put", &original).await;
    assert_eq!((put.result, put.unchanged, put.revision), (PutResult::Created, false, Some(1)));
    // The same version spelt with defaults and aliases: unchanged, no new revision or history.
    let spelt = original.replace("type: component", "type: actor").replace(
        "instances: 1\n",
        "replicas: 1\n            spread:\n              - name: default\n                requirements: {}\n                weight: 100\n",
    );
    let put: PutModelResponse = env.req("default.model.put", &spelt).await;
    assert_eq!(put.result, PutResult::NewVersion, "{put:?}");
    assert!(put.unchanged && put.message.contains("unchanged"), "{put:?}");
    assert_eq!(
        (put.current_version.as_str(), put.total_versions, put.revision),
        ("v1", 1, Some(1))
    );
    assert_eq!(history_len(&env, "app").await, 1);
    // The wire reply stays what upstream clients decode.
    let raw: Value = env.req("default.model.put", &original).await;
    assert_eq!(raw["result"], "newversion");
    assert_eq!(raw["unchanged"], true);

    // Versionless and equal to the current version: that version is the answer.
    let put: PutModelResponse = env.req("default.model.put", &manifest("app", None)).await;
    assert_eq!((put.unchanged, put.current_version.as_str()), (true, "v1"), "{put:?}");
    // Versionless and equal to the deployed version (not the current one): that one.
    let v2 = manifest("app", Some("v2")).replace("instances: 1", "instances: 2");
    env.req::<PutModelResponse>("default.model.put", &v2).await;
    let d: DeployModelResponse = env.req("default.model.deploy.app", r#"{"version":"v1"}"#).await;
    assert_eq!((d.result, d.unchanged), (DeployResult::Acknowledged, false), "{d:?}");
    let put: PutModelResponse = env.req("default.model.put", &manifest("app", None)).await;
    assert_eq!((put.unchanged, put.current_version.as_str()), (true, "v1"), "{put:?}");
    let versions: VersionResponse = env.req("default.model.versions.app", "").await;
    assert_eq!(versions.versions.len(), 2);

    // A re-deploy of the deployed version: unchanged, no new revision, no history entry.
    let before = history_len(&env, "app").await;
    let d: DeployModelResponse = env.req("default.model.deploy.app", r#"{"version":"v1"}"#).await;
    assert_eq!((d.result, d.unchanged), (DeployResult::Acknowledged, true), "{d:?}");
    assert!(d.message.contains("already deployed"), "{d:?}");
    assert_eq!(d.revision, versions.revision);
    assert_eq!(history_len(&env, "app").await, before);

    // A real change under an existing version is refused, naming the version.
    let changed = original.replace("instances: 1", "instances: 3");
    let put: PutModelResponse = env.req("default.model.put", &changed).await;
    assert_eq!(put.result, PutResult::Error);
    assert!(put.message.contains("version v1") && put.message.contains("different"), "{put:?}");
}

#[tokio::test]
async fn get_serves_the_document_as_put() {
    let env = Env::start().await;
    // JSON in its own key order and layout, with explicit defaults.
    let json = r#"{
  "kind": "Application",
  "apiVersion": "core.oam.dev/v1beta1",
  "metadata": {"name": "shop", "annotations": {"version": "v1"}},
  "spec": {"components": [{"name": "web", "type": "actor",
    "properties": {"image": "ghcr.io/example/web:1"},
    "traits": [{"type": "spreadscaler", "properties": {"replicas": 2,
      "spread": [{"name": "all", "requirements": {}, "weight": 100}]}}]}]}
}"#;
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", "application/json");
    let put: PutModelResponse = env.req_with("default.model.put", headers, json).await;
    assert_eq!(put.result, PutResult::Created, "{put:?}");
    let got: GetModelResponse = env.req("default.model.get.shop", "").await;
    let submitted = got.submitted.expect("the document is served");
    assert_eq!((submitted.format, submitted.text.as_str()), (ManifestFormat::Json, json));
    let manifest = got.manifest.unwrap();
    assert_eq!(manifest, serde_json::from_str::<Value>(json).unwrap());
    let keys: Vec<&String> = manifest.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["kind", "apiVersion", "metadata", "spec"]);
    assert_eq!(got.revision, Some(1));

    // YAML without a version: served as written, the assigned version added.
    let yaml = manifest_yaml();
    let put: PutModelResponse = env.req("default.model.put", &yaml).await;
    let got: GetModelResponse = env.req("default.model.get.yam", "").await;
    let submitted = got.submitted.unwrap();
    assert_eq!((submitted.format, submitted.text.as_str()), (ManifestFormat::Yaml, yaml.as_str()));
    let manifest = got.manifest.unwrap();
    assert_eq!(manifest["spec"]["components"][0]["type"], "actor");
    assert_eq!(manifest["metadata"]["annotations"]["version"], put.current_version.as_str());
}

fn manifest_yaml() -> String {
    manifest("yam", None).replace("type: component", "type: actor")
}

#[tokio::test]
async fn expected_revisions_refuse_stale_requests() {
    let env = Env::start().await;
    // 0: the application must not exist yet.
    let put: PutModelResponse =
        env.req_with("default.model.put", expecting("0"), &manifest("app", Some("v1"))).await;
    assert_eq!((put.result, put.revision), (PutResult::Created, Some(1)), "{put:?}");
    let v2 = manifest("app", Some("v2")).replace("instances: 1", "instances: 2");
    let put: PutModelResponse = env.req_with("default.model.put", expecting("0"), &v2).await;
    assert_eq!(put.result, PutResult::Error);
    assert!(put.message.contains("at revision 1, not the expected revision 0"), "{put:?}");
    let versions: VersionResponse = env.req("default.model.versions.app", "").await;
    assert_eq!((versions.versions.len(), versions.revision), (1, Some(1)));

    let put: PutModelResponse = env.req_with("default.model.put", expecting("1"), &v2).await;
    assert_eq!((put.result, put.revision), (PutResult::NewVersion, Some(2)), "{put:?}");
    let stale: DeployModelResponse =
        env.req_with("default.model.deploy.app", expecting("1"), "").await;
    assert_eq!(stale.result, DeployResult::Error);
    assert!(stale.message.contains("at revision 2"), "{stale:?}");
    let list: ListModelsResponse = env.req("default.model.get", "").await;
    assert_eq!(list.models[0].deployed_version, None);
    let d: DeployModelResponse = env.req_with("default.model.deploy.app", expecting("2"), "").await;
    assert_eq!((d.result, d.revision), (DeployResult::Acknowledged, Some(3)), "{d:?}");
    let got: GetModelResponse = env.req("default.model.get.app", "").await;
    assert_eq!(got.revision, Some(3));

    let bad: Value = env.req_with("default.model.deploy.app", expecting("x"), "").await;
    assert_eq!(bad["result"], "error");
    assert!(bad["message"].as_str().unwrap().contains(EXPECTED_REVISION_HEADER), "{bad}");
}

#[tokio::test]
async fn every_corpus_manifest_put_twice_is_stored_once() {
    let env = Env::start().await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/manifests");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let first: PutModelResponse = env.req("default.model.put", &text).await;
        assert_ne!(first.result, PutResult::Error, "{path:?}: {first:?}");
        let again: PutModelResponse = env.req("default.model.put", &text).await;
        assert!(again.unchanged, "{path:?}: {again:?}");
        assert_eq!(again.current_version, first.current_version, "{path:?}");
        assert_eq!(again.revision, first.revision, "{path:?}");
    }
}

#[tokio::test]
async fn a_failed_deployment_is_taken_up_afresh_by_the_same_deploy() {
    let env = Env::start().await;
    env.req::<PutModelResponse>("default.model.put", &manifest("app", Some("v1"))).await;
    let d: DeployModelResponse = env.req("default.model.deploy.app", "").await;
    assert_eq!((d.unchanged, d.revision), (false, Some(2)), "{d:?}");
    // The runtime reports the deployment failed (as it publishes statuses).
    let failed = serde_json::json!({"status": {"type": "failed", "message": "no hosts fit"}});
    env.client.publish("wadm.status.default.app", failed.to_string().into()).await.unwrap();
    let seen = wadm_test_support::wait_for(std::time::Duration::from_secs(20), || async {
        let s: StatusResponse = env.req("default.model.status.app", "").await;
        (s.status?.status.status_type == wadm_model::StatusType::Failed).then_some(())
    })
    .await;
    assert!(seen.is_some(), "the failed status is read back");
    let d: DeployModelResponse = env.req("default.model.deploy.app", "").await;
    assert_eq!((d.result, d.unchanged, d.revision), (DeployResult::Acknowledged, false, Some(3)));
    let history = history_len(&env, "app").await;
    assert_eq!(history, 3, "put, deploy, deploy again");
}
