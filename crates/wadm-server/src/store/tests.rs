//! Unit tests of the store logic over the in-process bucket.

use std::sync::Arc;

use super::*;
use crate::kv::MemoryKv;

fn store() -> ManifestStore<MemoryKv> {
    ManifestStore::new(MemoryKv::default())
}

fn manifest(v: &str) -> serde_json::Value {
    serde_json::json!({"metadata": {"name": "app", "annotations": {"version": v}}})
}

#[tokio::test]
async fn put_get_versions_in_order() {
    let s = store();
    let first = s.put("l", "app", "v1", manifest("v1"), "me").await.unwrap();
    assert!(first.created);
    let second = s.put("l", "app", "v2", manifest("v2"), "me").await.unwrap();
    assert!(!second.created);
    assert_eq!(second.total_versions, 2);
    let again = s.put("l", "app", "v1", manifest("v1"), "me").await;
    assert!(matches!(again, Err(StoreError::VersionExists { .. })));
    assert_eq!(s.get("l", "app", None).await.unwrap().unwrap().version, "v2");
    assert_eq!(s.get("l", "app", Some("v1")).await.unwrap().unwrap().manifest, manifest("v1"));
    assert!(s.get("l", "app", Some("v9")).await.unwrap().is_none());
    assert!(s.get("other", "app", None).await.unwrap().is_none());
    let names: Vec<_> = s.list("l").await.unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["app"]);
}

#[tokio::test]
async fn deploy_rollback_undeploy_delete_and_history() {
    let s = store();
    s.put("l", "app", "v1", manifest("v1"), "ann").await.unwrap();
    s.put("l", "app", "v2", manifest("v2"), "ann").await.unwrap();
    let d = s.deploy("l", "app", Some(LATEST), "bob").await.unwrap();
    assert_eq!((d.version.as_str(), d.generation), ("v2", 1));
    let d = s.deploy("l", "app", Some("v1"), "bob").await.unwrap();
    assert_eq!((d.version.as_str(), d.generation, d.previous.as_deref()), ("v1", 2, Some("v2")));
    assert!(matches!(
        s.deploy("l", "app", Some("nope"), "bob").await,
        Err(StoreError::VersionNotFound { .. })
    ));
    assert!(matches!(s.deploy("l", "zzz", None, "bob").await, Err(StoreError::AppNotFound(_))));
    assert_eq!(s.undeploy("l", "app", "carl").await.unwrap().as_deref(), Some("v1"));
    assert_eq!(s.undeploy("l", "app", "carl").await.unwrap(), None);
    s.deploy("l", "app", None, "bob").await.unwrap();
    let del = s.delete("l", "app", Some("v2"), "dan").await.unwrap();
    assert_eq!(del, DeleteOutcome::Deleted { undeployed: true, app_removed: false });
    assert_eq!(s.delete("l", "app", Some("v2"), "dan").await.unwrap(), DeleteOutcome::Noop);
    let del = s.delete("l", "app", None, "dan").await.unwrap();
    assert_eq!(del, DeleteOutcome::Deleted { undeployed: false, app_removed: true });
    assert!(s.index("l", "app").await.unwrap().is_none());
    assert!(s.list("l").await.unwrap().is_empty());
    let history = s.history("l", "app").await.unwrap().unwrap();
    let seen: Vec<_> =
        history.iter().map(|h| (h.action, h.version.as_deref(), h.actor.as_str())).collect();
    use HistoryAction::*;
    assert_eq!(
        seen,
        [
            (Put, Some("v1"), "ann"),
            (Put, Some("v2"), "ann"),
            (Deploy, Some("v2"), "bob"),
            (Deploy, Some("v1"), "bob"),
            (Undeploy, Some("v1"), "carl"),
            (Deploy, Some("v2"), "bob"),
            (Delete, Some("v2"), "dan"),
            (Delete, None, "dan"),
        ]
    );
    // Only the index tombstone and history entries remain: no version data.
    let leftovers = s.kv().scan("l.app.v.*").await.unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Putting again after delete creates the application anew.
    assert!(s.put("l", "app", "v1", manifest("v1"), "ann").await.unwrap().created);
}

#[tokio::test]
async fn version_cap_prunes_oldest_undeployed() {
    let s = store().with_max_versions(3).with_max_history(4);
    s.put("l", "a", "v1", manifest("v1"), "x").await.unwrap();
    s.deploy("l", "a", None, "x").await.unwrap();
    for v in ["v2", "v3", "v4"] {
        s.put("l", "a", v, manifest(v), "x").await.unwrap();
    }
    let index = s.index("l", "a").await.unwrap().unwrap();
    let versions: Vec<_> = index.versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(versions, ["v1", "v3", "v4"]);
    assert_eq!(s.kv().scan("l.a.v.*").await.unwrap().len(), 3);
    let history = s.history("l", "a").await.unwrap().unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(history[0].action, HistoryAction::Deploy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_never_lose_a_version() {
    let s = Arc::new(store());
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let v = format!("v{i}");
                s.put("l", "app", &v, manifest(&v), "x").await
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        created += usize::from(t.await.unwrap().unwrap().created);
    }
    assert_eq!(created, 1);
    let index = s.index("l", "app").await.unwrap().unwrap();
    assert_eq!(index.versions.len(), 10);
    assert_eq!(s.history("l", "app").await.unwrap().unwrap().len(), 10);
}
