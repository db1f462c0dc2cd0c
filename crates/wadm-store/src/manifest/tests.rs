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
    assert!(matches!(again, Err(ManifestError::VersionExists { .. })));
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
        Err(ManifestError::VersionNotFound { .. })
    ));
    assert!(matches!(s.deploy("l", "zzz", None, "bob").await, Err(ManifestError::AppNotFound(_))));
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
    let seen: Vec<_> = history
        .iter()
        .map(|h| (h.action.clone(), h.version.as_deref(), h.actor.as_str()))
        .collect();
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

/// One step of a generated scenario.
#[derive(Debug, Clone)]
enum Step {
    Put(u8),
    Deploy(Option<u8>),
    Undeploy,
    Delete(Option<u8>),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        (0u8..6).prop_map(Step::Put),
        proptest::option::of(0u8..6).prop_map(Step::Deploy),
        Just(Step::Undeploy),
        proptest::option::of(0u8..6).prop_map(Step::Delete),
    ]
}

/// The obvious in-memory model of one application, to compare the store with.
#[derive(Default)]
struct Model {
    versions: Vec<String>,
    deployed: Option<String>,
    generation: u64,
    history: usize,
}

const CAP: usize = 3;

impl Model {
    fn apply(&mut self, step: &Step) {
        let name = |v: &u8| format!("v{v}");
        match step {
            Step::Put(v) if !self.versions.contains(&name(v)) => {
                self.versions.push(name(v));
                while self.versions.len() > CAP {
                    let n = self.versions.len();
                    if let Some(pos) = self.versions[..n - 1]
                        .iter()
                        .position(|x| Some(x) != self.deployed.as_ref())
                    {
                        self.versions.remove(pos);
                    } else {
                        break;
                    }
                }
                self.history += 1;
            }
            Step::Deploy(v) if !self.versions.is_empty() => {
                let wanted =
                    v.as_ref().map(name).unwrap_or_else(|| self.versions.last().unwrap().clone());
                if self.versions.contains(&wanted) {
                    self.deployed = Some(wanted);
                    self.generation += 1;
                    self.history += 1;
                }
            }
            Step::Undeploy if self.deployed.is_some() => {
                self.deployed = None;
                self.history += 1;
            }
            Step::Delete(Some(v)) if self.versions.contains(&name(v)) => {
                self.versions.retain(|x| *x != name(v));
                if self.deployed.as_ref() == Some(&name(v)) || self.versions.is_empty() {
                    self.deployed = None;
                }
                self.history += 1;
            }
            Step::Delete(None) if !self.versions.is_empty() => {
                self.versions.clear();
                self.deployed = None;
                self.history += 1;
            }
            _ => {}
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    #[test]
    fn store_matches_the_model(steps in proptest::collection::vec(step(), 1..30)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(async {
            let s = store().with_max_versions(CAP);
            let mut model = Model::default();
            for step in &steps {
                let v = |n: &u8| format!("v{n}");
                // Errors (existing version, missing app/version) are expected; the model skips them.
                let _ = match step {
                    Step::Put(n) => s.put("l", "a", &v(n), manifest(&v(n)), "x").await.map(drop),
                    Step::Deploy(n) => s.deploy("l", "a", n.as_ref().map(v).as_deref(), "x").await.map(drop),
                    Step::Undeploy => s.undeploy("l", "a", "x").await.map(drop),
                    Step::Delete(n) => s.delete("l", "a", n.as_ref().map(v).as_deref(), "x").await.map(drop),
                };
                model.apply(step);
                let index = s.index("l", "a").await.unwrap();
                let versions: Vec<String> =
                    index.iter().flat_map(|i| i.versions.iter().map(|r| r.version.clone())).collect();
                assert_eq!(versions, model.versions, "after {step:?}");
                assert_eq!(index.as_ref().and_then(|i| i.deployed.clone()), model.deployed);
                if let Some(index) = &index {
                    assert_eq!(index.generation, model.generation);
                }
                // Exactly one data key per stored version, and every one readable.
                assert_eq!(s.kv().scan("l.a.v.*").await.unwrap().len(), model.versions.len());
                for version in &model.versions {
                    let got = s.get("l", "a", Some(version)).await.unwrap().unwrap();
                    assert_eq!(&got.manifest, &manifest(version));
                }
                let history = s.history("l", "a").await.unwrap().unwrap_or_default();
                assert_eq!(history.len(), model.history);
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_mixed_writers_keep_the_index_consistent() {
    let s = Arc::new(store().with_max_versions(4));
    let tasks: Vec<_> = (0..40u32)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let v = format!("v{}", i % 6);
                match i % 4 {
                    0 => drop(s.put("l", "app", &v, manifest(&v), "x").await),
                    1 => drop(s.deploy("l", "app", Some(&v), "x").await),
                    2 => drop(s.delete("l", "app", Some(&v), "x").await),
                    _ => drop(s.undeploy("l", "app", "x").await),
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let index = s.index("l", "app").await.unwrap();
    let versions: Vec<String> =
        index.iter().flat_map(|i| i.versions.iter().map(|v| v.version.clone())).collect();
    if let Some(deployed) = index.as_ref().and_then(|i| i.deployed.clone()) {
        assert!(versions.contains(&deployed), "deployed {deployed} not stored: {versions:?}");
    }
    assert!(versions.len() <= 4);
    // Exactly the stored versions have data, and nothing else is left behind.
    assert_eq!(s.kv().scan("l.app.v.*").await.unwrap().len(), versions.len());
    let history = s.history("l", "app").await.unwrap().unwrap();
    assert!(!history.is_empty());
}

/// Compares by the `content` field, as the API compares normal forms.
fn same_as(content: &'static str) -> impl Fn(&StoredVersion) -> bool {
    move |stored| stored.manifest["content"] == content
}

fn new_version(version: &str, assigned: bool, content: &str) -> NewVersion {
    NewVersion {
        version: version.to_string(),
        assigned,
        manifest: serde_json::json!({"metadata": {"name": "app"}, "content": content}),
        submitted: Some(SubmittedManifest { format: ManifestFormat::Yaml, text: content.into() }),
    }
}

#[tokio::test]
async fn puts_of_stored_content_write_nothing() {
    let s = store();
    let put = |v, assigned, content| {
        s.put_version("l", "app", new_version(v, assigned, content), None, same_as(content), "me")
    };
    let first = put("v1", false, "a").await.unwrap();
    assert_eq!((first.unchanged, first.revision), (false, 1));
    let again = put("v1", false, "a").await.unwrap();
    assert_eq!((again.unchanged, again.current_version.as_str(), again.revision), (true, "v1", 1));
    assert!(matches!(put("v1", false, "b").await, Err(ManifestError::VersionExists { .. })));
    // Versionless: equal to the current version, then (after v2) to the deployed one.
    let same = put("X1", true, "a").await.unwrap();
    assert_eq!((same.unchanged, same.current_version.as_str()), (true, "v1"));
    put("v2", false, "b").await.unwrap();
    s.deploy("l", "app", Some("v1"), "me").await.unwrap();
    let deployed = put("X2", true, "a").await.unwrap();
    assert_eq!((deployed.unchanged, deployed.current_version.as_str()), (true, "v1"));
    let current = put("X3", true, "b").await.unwrap();
    assert_eq!((current.unchanged, current.current_version.as_str()), (true, "v2"));
    let new = put("X4", true, "c").await.unwrap();
    assert_eq!((new.unchanged, new.current_version.as_str(), new.revision), (false, "X4", 4));
    // Only the stored versions have data keys; only real changes are in the history.
    assert_eq!(s.kv().scan("l.app.v.*").await.unwrap().len(), 3);
    let actions: Vec<_> = s.history("l", "app").await.unwrap().unwrap();
    assert_eq!(actions.len(), 4, "{actions:?}");
    let stored = s.get("l", "app", Some("v1")).await.unwrap().unwrap();
    assert_eq!(stored.submitted.unwrap().text, "a");
}

#[tokio::test]
async fn deploys_of_the_deployed_version_change_nothing_unless_asked() {
    let s = store();
    s.put("l", "app", "v1", manifest("v1"), "me").await.unwrap();
    let plain = DeployOptions::default();
    let d = s.deploy_with("l", "app", None, plain, "me").await.unwrap();
    assert_eq!((d.unchanged, d.generation, d.revision), (false, 1, 2));
    let d = s.deploy_with("l", "app", Some("v1"), plain, "me").await.unwrap();
    assert_eq!((d.unchanged, d.generation, d.revision), (true, 1, 2));
    let redeploy = DeployOptions { redeploy: true, ..plain };
    let d = s.deploy_with("l", "app", Some("v1"), redeploy, "me").await.unwrap();
    assert_eq!((d.unchanged, d.generation, d.revision), (false, 2, 3));
    assert_eq!(s.history("l", "app").await.unwrap().unwrap().len(), 3);
}

#[tokio::test]
async fn expected_revisions_are_checked() {
    let s = store();
    let put = |v: &'static str, expect| {
        s.put_version("l", "app", new_version(v, false, v), expect, same_as(v), "me")
    };
    assert!(matches!(
        put("v1", Some(3)).await,
        Err(ManifestError::RevisionMoved { expected: 3, current: 0, .. })
    ));
    assert!(s.index("l", "app").await.unwrap().is_none());
    put("v1", Some(0)).await.unwrap();
    let moved = put("v2", Some(0)).await.unwrap_err();
    assert!(moved.to_string().contains("at revision 1, not the expected revision 0"), "{moved}");
    put("v2", Some(1)).await.unwrap();
    let stale = DeployOptions { expect: Some(1), redeploy: false };
    assert!(matches!(
        s.deploy_with("l", "app", None, stale, "me").await,
        Err(ManifestError::RevisionMoved { current: 2, .. })
    ));
    let fresh = DeployOptions { expect: Some(2), redeploy: false };
    assert_eq!(s.deploy_with("l", "app", None, fresh, "me").await.unwrap().revision, 3);
    // Nothing was left behind by the refused puts.
    assert_eq!(s.kv().scan("l.app.v.*").await.unwrap().len(), 2);
}

#[tokio::test]
async fn records_from_before_revisions_and_documents_still_read() {
    let s = store();
    let index = serde_json::json!({"name": "app", "versions": [{"version": "v1", "id": "01"}],
        "deployed": null, "generation": 0, "history_next": 0, "history_first": 0});
    s.kv().put("l.app.index", Bytes::from(index.to_string())).await.unwrap();
    let stored = serde_json::json!({"version": "v1", "manifest": manifest("v1")});
    s.kv().put("l.app.v.01", Bytes::from(stored.to_string())).await.unwrap();
    let (got, index) = s.get_with_index("l", "app", None).await.unwrap().unwrap();
    assert_eq!((got.submitted, index.revision), (None, 0));
    let put = s.put("l", "app", "v2", manifest("v2"), "me").await.unwrap();
    assert_eq!(put.revision, 1);
}

#[tokio::test]
async fn concurrent_identical_versionless_puts_store_one_version() {
    let s = Arc::new(store());
    s.put_version("l", "app", new_version("v1", false, "a"), None, same_as("a"), "me")
        .await
        .unwrap();
    let puts = (0..8).map(|i| {
        let s = s.clone();
        tokio::spawn(async move {
            let new = new_version(&format!("X{i}"), true, "b");
            s.put_version("l", "app", new, None, same_as("b"), "me").await.unwrap()
        })
    });
    let outcomes: Vec<PutOutcome> =
        futures::future::join_all(puts).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(outcomes.iter().filter(|o| !o.unchanged).count(), 1, "{outcomes:?}");
    let index = s.index("l", "app").await.unwrap().unwrap();
    assert_eq!(index.versions.len(), 2);
    assert_eq!(s.kv().scan("l.app.v.*").await.unwrap().len(), 2);
}

#[tokio::test]
async fn stable_versions_revert_once_and_rollback() {
    let s = store();
    for v in ["v1", "v2", "v3"] {
        s.put("l", "app", v, manifest(v), "ann").await.unwrap();
    }
    assert_eq!(s.rollback("l", "app", None, "bob").await.unwrap(), None, "nothing stable yet");
    s.deploy("l", "app", Some("v1"), "bob").await.unwrap();
    // Only the deployed generation can become stable, once.
    assert!(!s.mark_stable("l", "app", "v1", 7, "wadm").await.unwrap());
    assert!(s.mark_stable("l", "app", "v1", 1, "wadm").await.unwrap());
    assert!(!s.mark_stable("l", "app", "v1", 1, "wadm").await.unwrap());
    let deployed = s.deploy("l", "app", Some("v2"), "bob").await.unwrap();
    assert!(s.mark_stable("l", "app", "v2", 2, "wadm").await.unwrap());
    // wadm's own notes leave the revision clients expect.
    assert_eq!(s.index("l", "app").await.unwrap().unwrap().revision, deployed.revision);
    let d = s.deploy("l", "app", Some("v3"), "bob").await.unwrap();
    assert!(s.note_rollout("l", "app", d.generation, "v3 over 8 hosts", "wadm").await.unwrap());
    assert!(!s.note_rollout("l", "app", d.generation, "again", "wadm").await.unwrap());
    // Two replicas act on the same decision: one revert.
    let first = s.revert("l", "app", 3, "v2", "boom on host A", "wadm").await.unwrap();
    let second = s.revert("l", "app", 3, "v2", "boom on host A", "wadm").await.unwrap();
    assert_eq!(first.map(|o| (o.version, o.generation)), Some(("v2".to_string(), 4)));
    assert_eq!(second, None);
    let index = s.index("l", "app").await.unwrap().unwrap();
    let reverted = index.current_revert().unwrap();
    assert_eq!((reverted.from.as_str(), reverted.to.as_str()), ("v3", "v2"));
    // A revert decided before a newer user deploy does not undo it.
    s.deploy("l", "app", Some("v3"), "bob").await.unwrap();
    assert_eq!(s.revert("l", "app", 4, "v2", "late", "wadm").await.unwrap(), None);
    assert!(s.index("l", "app").await.unwrap().unwrap().current_revert().is_none());
    // Rollback: the last stable version; from it, the one stable before.
    let back = s.rollback("l", "app", None, "carl").await.unwrap().unwrap();
    assert_eq!((back.version.as_str(), back.previous.as_deref()), ("v2", Some("v3")));
    let back = s.rollback("l", "app", None, "carl").await.unwrap().unwrap();
    assert_eq!(back.version, "v1");
    let history = s.history("l", "app").await.unwrap().unwrap();
    let seen: Vec<_> = history
        .iter()
        .map(|e| (e.action.to_string(), e.version.clone().unwrap_or_default(), e.reason.clone()))
        .filter(|(a, _, _)| a != "put")
        .collect();
    let entry =
        |a: &str, v: &str, r: Option<&str>| (a.to_string(), v.to_string(), r.map(String::from));
    assert_eq!(
        seen,
        [
            entry("deploy", "v1", None),
            entry("stable", "v1", None),
            entry("deploy", "v2", None),
            entry("stable", "v2", None),
            entry("deploy", "v3", None),
            entry("rollout", "v3", Some("v3 over 8 hosts")),
            entry("revert", "v2", Some("v3 failed: boom on host A")),
            entry("deploy", "v3", None),
            entry("rollback", "v2", Some("from v3")),
            entry("rollback", "v1", Some("from v2")),
        ]
    );
}
