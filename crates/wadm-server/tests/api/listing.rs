//! Listing is consumer-free: `model.get` (list) and `model.history` can be asked as often as
//! clients like without exhausting the server's JetStream consumer limit (each list used to
//! create an ordered consumer that outlived the request; the 1001st list within seconds failed).

use wadm_model::StatusType;
use wadm_model::api::{GetResult, ListModelsResponse, PutModelResponse};

use crate::common::{Env, manifest};

/// How many lists in a row: twice the server's default consumer limit per stream plus one.
const LISTS: usize = 2_001;

#[tokio::test]
async fn two_thousand_lists_in_a_row_all_succeed_and_leave_no_consumer() {
    let env = Env::start().await;
    for (name, version) in [("alpha", "1"), ("beta", "1"), ("beta", "2"), ("gamma", "1")] {
        let put: PutModelResponse =
            env.req("default.model.put", &manifest(name, Some(version))).await;
        assert!(!put.current_version.is_empty(), "{put:?}");
    }
    env.req::<serde_json::Value>("default.model.del.gamma", "").await;
    // A deployed application has a status: the list reads statuses too.
    env.req::<serde_json::Value>("default.model.deploy.alpha", "").await;

    for i in 0..LISTS {
        let list: ListModelsResponse = env.req("default.model.get", "").await;
        assert_eq!(list.result, GetResult::Success, "list {i}: {}", list.message);
        let names: Vec<_> =
            list.models.iter().map(|m| (m.name.as_str(), m.version.as_str())).collect();
        assert_eq!(names, [("alpha", "1"), ("beta", "2")], "list {i}");
        assert_ne!(list.models[0].status, StatusType::Undeployed, "list {i}: alpha's status");
        if i % 500 == 0 {
            let history: serde_json::Value = env.req("default.model.history.beta", "").await;
            assert_eq!(history["history"].as_array().map(Vec::len), Some(2), "{history}");
        }
    }

    let js = async_nats::jetstream::new(env.client.clone());
    for name in ["KV_wadm_manifests", "wadm_status"] {
        let mut stream = js.get_stream(name).await.unwrap();
        assert_eq!(stream.info().await.unwrap().state.consumer_count, 0, "consumers on {name}");
    }
}
