//! Bad input: malformed subjects, bodies and manifests, oversized requests. Nothing half-written.

use serde_json::Value;
use wadm_model::api::*;

use crate::common::{Env, manifest, test_config};

#[tokio::test]
async fn malformed_subjects() {
    let env = Env::start().await;
    for suffix in [
        "default",
        "default.model",
        "default.model.deploy",
        "default.model.put.extra",
        "default.model.get.a.b",
    ] {
        let reply: ErrorResponse = env.req(suffix, "").await;
        assert_eq!(reply.result, "error");
        assert!(reply.message.starts_with("Invalid subject"), "{suffix}: {}", reply.message);
    }
    for suffix in ["default.model.explode.app", "default.thing.get"] {
        let reply: ErrorResponse = env.req(suffix, "").await;
        assert!(reply.message.starts_with("Unsupported subject"), "{suffix}: {}", reply.message);
    }
}

#[tokio::test]
async fn bad_bodies_and_manifests_write_nothing() {
    let env = Env::start().await;
    let put: PutModelResponse = env.req("default.model.put", "this: [is not: a manifest").await;
    assert_eq!(put.result, PutResult::Error);
    assert!(!put.message.contains("backtrace") && !put.message.contains('\n'), "{}", put.message);
    let latest = manifest("app", Some("latest"));
    let put: PutModelResponse = env.req("default.model.put", &latest).await;
    assert_eq!(put.result, PutResult::Error);
    assert!(put.message.contains("version"), "{}", put.message);
    let bad_name = manifest("bad.name", Some("1"));
    let put: PutModelResponse = env.req("default.model.put", &bad_name).await;
    assert_eq!(put.result, PutResult::Error);
    assert!(put.message.contains("metadata.name"), "{}", put.message);
    let list: ListModelsResponse = env.req("default.model.get", "").await;
    assert!(list.models.is_empty(), "{list:?}");

    env.req::<PutModelResponse>("default.model.put", &manifest("app", Some("1"))).await;
    let d: DeployModelResponse = env.req("default.model.deploy.app", "{not json").await;
    assert_eq!(d.result, DeployResult::Error);
    assert!(d.message.starts_with("invalid request body"), "{}", d.message);
    let del: DeleteModelResponse = env.req("default.model.del.app", "[1,2]").await;
    assert_eq!(del.result, DeleteResult::Error);
    let get: GetModelResponse = env.req("default.model.get.app", "42").await;
    assert_eq!(get.result, GetResult::Error);
    let versions: VersionResponse = env.req("default.model.versions.app", "").await;
    assert_eq!(versions.versions.len(), 1);
    assert!(!versions.versions[0].deployed);
    let history: Value = env.req("default.model.history.app", "").await;
    assert_eq!(history["history"].as_array().unwrap().len(), 1, "{history}");
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let config = wadm_server::ServerConfig { max_request_bytes: 2048, ..test_config() };
    let env = Env::with_config(config).await;
    let padding = format!("\n# {}\n", "x".repeat(4096));
    let big = manifest("app", Some("1")) + &padding;
    let reply: ErrorResponse = env.req("default.model.put", &big).await;
    assert_eq!(reply.result, "error");
    assert!(reply.message.contains("exceeds the limit of 2048 bytes"), "{}", reply.message);
    let got: GetModelResponse = env.req("default.model.get.app", "").await;
    assert_eq!(got.result, GetResult::NotFound);
    // Under the limit it works.
    let put: PutModelResponse = env.req("default.model.put", &manifest("app", Some("1"))).await;
    assert_eq!(put.result, PutResult::Created, "{}", put.message);
}
