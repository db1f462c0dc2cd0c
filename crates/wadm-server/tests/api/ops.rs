//! Every operation of api.md §2, success paths and not-found paths.

use async_nats::HeaderMap;
use serde_json::Value;
use wadm_model::StatusType;
use wadm_model::api::*;

use crate::common::{Env, manifest};

#[tokio::test]
async fn put_get_versions_list() {
    let env = Env::start().await;
    let put: PutModelResponse = env.req("default.model.put", &manifest("app", Some("v1"))).await;
    assert_eq!(put.result, PutResult::Created, "{put:?}");
    assert_eq!(
        (put.total_versions, put.current_version.as_str(), put.name.as_str()),
        (1, "v1", "app")
    );

    // JSON with a content type, no version, other content: a ULID is assigned and written into
    // the manifest.
    let changed = manifest("app", None).replace("instances: 1", "instances: 2");
    let json: Value = serde_saphyr_free_json(&changed);
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", "application/json");
    let put: PutModelResponse =
        env.req_with("default.model.put", headers.clone(), &json.to_string()).await;
    assert_eq!(put.result, PutResult::NewVersion, "{put:?}");
    assert_eq!(put.total_versions, 2);
    let assigned = put.current_version.clone();
    assert!(ulid::Ulid::from_string(&assigned).is_ok(), "{assigned}");
    // The same again: nothing new, the existing version named.
    let put: PutModelResponse = env.req_with("default.model.put", headers, &json.to_string()).await;
    assert_eq!((put.result, put.unchanged), (PutResult::NewVersion, true), "{put:?}");
    assert_eq!((put.total_versions, put.current_version.as_str()), (2, assigned.as_str()));

    // An existing version with other content is an error and changes nothing.
    let other = manifest("app", Some("v1")).replace("instances: 1", "instances: 5");
    let again: PutModelResponse = env.req("default.model.put", &other).await;
    assert_eq!(again.result, PutResult::Error);
    assert!(again.message.contains("version v1 of application app already exists"), "{again:?}");

    let got: GetModelResponse = env.req("default.model.get.app", "").await;
    assert_eq!(got.result, GetResult::Success);
    let stored = got.manifest.unwrap();
    assert_eq!(stored["metadata"]["annotations"]["version"], assigned.as_str());
    let got: GetModelResponse = env.req("default.model.get.app", r#"{"version":"v1"}"#).await;
    assert_eq!(got.manifest.unwrap()["metadata"]["annotations"]["version"], "v1");
    let got: GetModelResponse = env.req("default.model.get.app", r#"{"version":"v9"}"#).await;
    assert_eq!(got.result, GetResult::NotFound);
    let got: GetModelResponse = env.req("default.model.get.nope", "").await;
    assert_eq!(got.result, GetResult::NotFound);

    let versions: VersionResponse = env.req("default.model.versions.app", "").await;
    let names: Vec<_> =
        versions.versions.iter().map(|v| (v.version.as_str(), v.deployed)).collect();
    assert_eq!(names, [("v1", false), (assigned.as_str(), false)]);
    let versions: VersionResponse = env.req("default.model.versions.nope", "").await;
    assert_eq!(versions.result, GetResult::NotFound);

    env.req::<PutModelResponse>("default.model.put", &manifest("other", Some("1.0"))).await;
    env.req::<PutModelResponse>("elsewhere.model.put", &manifest("hidden", Some("1.0"))).await;
    let list: ListModelsResponse = env.req("default.model.get", "").await;
    assert_eq!(list.result, GetResult::Success);
    let summary: Vec<_> =
        list.models.iter().map(|m| (m.name.as_str(), m.version.as_str())).collect();
    assert_eq!(summary, [("app", assigned.as_str()), ("other", "1.0")]);
    assert_eq!(list.models[0].description.as_deref(), Some("test app app"));
    assert_eq!(list.models[0].status, wadm_model::StatusType::Undeployed);
    let legacy: Vec<ModelSummary> = env.req("default.model.list", "").await;
    assert_eq!(legacy, list.models);
}

/// Convert a YAML manifest to JSON through the server-independent path: parse it with the model.
fn serde_saphyr_free_json(yaml: &str) -> Value {
    let parsed = wadm_model::parse_manifest(
        yaml.as_bytes(),
        wadm_model::Format::Yaml,
        &wadm_model::Limits::default(),
    )
    .expect("test manifest is valid");
    serde_json::to_value(&parsed.manifest).unwrap()
}

#[tokio::test]
async fn deploy_rollback_undeploy_delete_with_history() {
    let env = Env::start().await;
    for v in ["v1", "v2"] {
        env.put_as("default", &manifest("app", Some(v)), "alice").await;
    }
    let mut bob = HeaderMap::new();
    bob.insert("Wadm-Actor", "bob");
    let d: DeployModelResponse = env.req_with("default.model.deploy.app", bob.clone(), "").await;
    assert_eq!((d.result, d.version.as_deref()), (DeployResult::Acknowledged, Some("v2")), "{d:?}");
    let d: DeployModelResponse =
        env.req_with("default.model.deploy.app", bob.clone(), r#"{"version":"v1"}"#).await;
    assert_eq!((d.result, d.version.as_deref()), (DeployResult::Acknowledged, Some("v1")));
    let d: DeployModelResponse =
        env.req_with("default.model.deploy.app", bob.clone(), r#"{"version":"latest"}"#).await;
    assert_eq!(d.version.as_deref(), Some("v2"));
    // v2 is deployed already: nothing changes (no history entry below).
    let d: DeployModelResponse = env.req("default.model.deploy.app", r#"{"version":null}"#).await;
    assert_eq!((d.version.as_deref(), d.unchanged), (Some("v2"), true), "{d:?}");
    assert_eq!(d.result, DeployResult::Acknowledged);
    let d: DeployModelResponse = env.req("default.model.deploy.app", r#"{"version":"v7"}"#).await;
    assert_eq!(d.result, DeployResult::NotFound);
    let d: DeployModelResponse = env.req("default.model.deploy.nope", "").await;
    assert_eq!(d.result, DeployResult::NotFound);

    let versions: VersionResponse = env.req("default.model.versions.app", "").await;
    let deployed: Vec<_> =
        versions.versions.iter().filter(|v| v.deployed).map(|v| v.version.as_str()).collect();
    assert_eq!(deployed, ["v2"]);

    let u: DeployModelResponse = env.req("default.model.undeploy.app", "{}").await;
    assert_eq!((u.result, u.version.as_deref()), (DeployResult::Acknowledged, Some("v2")));
    let u: DeployModelResponse = env.req("default.model.undeploy.nope", "").await;
    assert_eq!(u.result, DeployResult::NotFound);
    let list: ListModelsResponse = env.req("default.model.get", "").await;
    assert_eq!(list.models[0].deployed_version, None);

    env.req::<DeployModelResponse>("default.model.deploy.app", r#"{"version":"v1"}"#).await;
    let del: DeleteModelResponse = env.req("default.model.del.app", r#"{"version":"v1"}"#).await;
    assert_eq!((del.result, del.undeploy), (DeleteResult::Deleted, true), "{del:?}");
    let del: DeleteModelResponse = env.req("default.model.del.app", r#"{"version":"v1"}"#).await;
    assert_eq!(del.result, DeleteResult::Noop);
    let del: DeleteModelResponse = env.req("default.model.del.app", "").await;
    assert_eq!((del.result, del.undeploy), (DeleteResult::Deleted, false));
    let del: DeleteModelResponse = env.req("default.model.del.app", "").await;
    assert_eq!(del.result, DeleteResult::Noop);
    let got: GetModelResponse = env.req("default.model.get.app", "").await;
    assert_eq!(got.result, GetResult::NotFound);

    let history: Value = env.req("default.model.history.app", "").await;
    assert_eq!(history["result"], "success", "{history}");
    let seen: Vec<(String, Value, String)> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            assert!(chrono::DateTime::parse_from_rfc3339(h["at"].as_str().unwrap()).is_ok(), "{h}");
            (
                h["action"].as_str().unwrap().to_string(),
                h["version"].clone(),
                h["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let e = |a: &str, v: Option<&str>, who: &str| {
        (a.to_string(), v.map_or(Value::Null, Value::from), who.to_string())
    };
    assert_eq!(
        seen,
        [
            e("put", Some("v1"), "alice"),
            e("put", Some("v2"), "alice"),
            e("deploy", Some("v2"), "bob"),
            e("deploy", Some("v1"), "bob"),
            e("deploy", Some("v2"), "bob"),
            e("undeploy", Some("v2"), "unknown"),
            e("deploy", Some("v1"), "unknown"),
            e("delete", Some("v1"), "unknown"),
            e("delete", None, "unknown"),
        ]
    );
    let history: Value = env.req("default.model.history.never", "").await;
    assert_eq!(history["result"], "notfound");
}

#[tokio::test]
async fn deploy_time_checks() {
    let env = Env::start().await;
    let fixed = crate::common::manifest_with("first", Some("1"), "id: fixed-id");
    env.req::<PutModelResponse>("default.model.put", &fixed).await;
    let d: DeployModelResponse = env.req("default.model.deploy.first", "").await;
    assert_eq!(d.result, DeployResult::Acknowledged);
    let clash = crate::common::manifest_with("second", Some("1"), "id: fixed-id");
    env.req::<PutModelResponse>("default.model.put", &clash).await;
    let d: DeployModelResponse = env.req("default.model.deploy.second", "").await;
    assert_eq!(d.result, DeployResult::Error);
    assert!(d.message.contains("fixed-id") && d.message.contains("first"), "{}", d.message);
    // Another lattice is independent.
    env.req::<PutModelResponse>("other.model.put", &clash).await;
    let d: DeployModelResponse = env.req("other.model.deploy.second", "").await;
    assert_eq!(d.result, DeployResult::Acknowledged, "{}", d.message);

    let user = r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: user
  annotations:
    version: "1"
spec:
  components:
    - name: ref
      type: component
      properties:
        application:
          name: lib
          component: hello
"#;
    let put: PutModelResponse = env.req("default.model.put", user).await;
    assert_eq!(put.result, PutResult::Created, "{}", put.message);
    // Its shared application is not deployed: accepted, and it waits for it.
    let d: DeployModelResponse = env.req("default.model.deploy.user", "").await;
    assert_eq!(d.result, DeployResult::Acknowledged, "{}", d.message);
    assert!(
        d.message.contains("waiting for shared application(s) not deployed: lib"),
        "{}",
        d.message
    );
    let s: StatusResponse = env.req("default.model.status.user", "").await;
    let status = s.status.unwrap().status;
    assert_eq!(status.status_type, StatusType::Waiting);
    assert_eq!(&*status.message, "shared application lib not deployed");
    env.req::<DeployModelResponse>("default.model.undeploy.user", "").await;
    env.req::<PutModelResponse>("default.model.put", &crate::common::manifest("lib", Some("1")))
        .await;
    env.req::<DeployModelResponse>("default.model.deploy.lib", "").await;
    let d: DeployModelResponse = env.req("default.model.deploy.user", "").await;
    assert!(d.message.contains("not marked shared"), "{}", d.message);
    let shared = crate::common::manifest("lib", Some("2")).replace(
        "    description:",
        "    experimental.wasmcloud.dev/shared: \"true\"\n    description:",
    );
    env.req::<PutModelResponse>("default.model.put", &shared).await;
    env.req::<DeployModelResponse>("default.model.deploy.lib", "").await;
    let d: DeployModelResponse = env.req("default.model.deploy.user", "").await;
    assert_eq!(d.result, DeployResult::Acknowledged, "{}", d.message);

    // Now `user` depends on `lib`: undeploying or deleting lib is refused, naming it.
    let used = "shared application lib is used by deployed applications: user; \
                undeploy them first or pass force";
    let d: DeployModelResponse = env.req("default.model.undeploy.lib", "{}").await;
    assert_eq!((d.result, d.message.as_str()), (DeployResult::Error, used));
    for body in ["", r#"{"version": "2"}"#, r#"{"version": "2", "other": 1}"#] {
        let del: DeleteModelResponse = env.req("default.model.del.lib", body).await;
        assert_eq!((del.result, del.message.as_str()), (DeleteResult::Error, used), "{body}");
    }
    let versions: VersionResponse = env.req("default.model.versions.lib", "").await;
    assert!(versions.versions.iter().any(|v| v.version == "2" && v.deployed));
    // A version that is not deployed can go.
    let del: DeleteModelResponse = env.req("default.model.del.lib", r#"{"version": "1"}"#).await;
    assert_eq!(del.result, DeleteResult::Deleted, "{}", del.message);
    // Forced: it goes, the reply says who is left waiting.
    let d: DeployModelResponse = env.req("default.model.undeploy.lib", r#"{"force": true}"#).await;
    assert_eq!(d.result, DeployResult::Acknowledged, "{}", d.message);
    assert_eq!(d.message, "Undeployed version 2 of lib (forced: user left waiting for it)");
    // Not deployed any more: nothing to protect.
    let del: DeleteModelResponse = env.req("default.model.del.lib", "").await;
    assert_eq!(del.result, DeleteResult::Deleted, "{}", del.message);
}

#[tokio::test]
async fn content_type_selects_the_format() {
    let env = Env::start().await;
    let yaml = manifest("app", Some("y"));
    let json = serde_saphyr_free_json(&manifest("app", Some("j"))).to_string();
    let with = |ct: &str| {
        let mut h = HeaderMap::new();
        h.insert("Content-Type", ct);
        h
    };
    let put: PutModelResponse = env.req_with("d.model.put", with("application/yaml"), &yaml).await;
    assert_eq!(put.result, PutResult::Created, "{}", put.message);
    // No content type: YAML first, then JSON.
    let put: PutModelResponse = env.req("d.model.put", &json).await;
    assert_eq!(put.result, PutResult::NewVersion, "{}", put.message);
    // A declared format is honoured: YAML sent as JSON is refused and nothing is stored.
    let yaml2 = manifest("app", Some("y2"));
    let put: PutModelResponse = env.req_with("d.model.put", with("application/json"), &yaml2).await;
    assert_eq!(put.result, PutResult::Error);
    let versions: VersionResponse = env.req("d.model.versions.app", "").await;
    let names: Vec<_> = versions.versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(names, ["y", "j"]);
}

#[tokio::test]
async fn rollback_needs_a_stable_version() {
    let env = Env::start().await;
    let _: PutModelResponse = env.req("default.model.put", &manifest("app", Some("v1"))).await;
    let _: DeployModelResponse = env.req("default.model.deploy.app", "").await;
    // Nothing has become stable (no runtime here): nothing to go back to, nothing changes.
    let rollback: DeployModelResponse = env.req("default.model.rollback.app", "").await;
    assert_eq!(rollback.result, DeployResult::Error, "{rollback:?}");
    assert!(rollback.message.contains("no stable version"), "{rollback:?}");
    let history: HistoryResponse = env.req("default.model.history.app", "").await;
    assert!(history.history.iter().all(|h| h.action.to_string() != "rollback"));
    let missing: DeployModelResponse = env.req("default.model.rollback.nope", "").await;
    assert_eq!(missing.result, DeployResult::NotFound, "{missing:?}");
}
