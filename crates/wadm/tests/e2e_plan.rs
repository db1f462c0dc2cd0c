//! `plan` against what a deploy then sends: on simulated hosts (4 hosts in two zones, 1 replica),
//! the control requests `model.plan` lists for a first deploy and for an upgrade are, as a
//! multiset of (subject, body), exactly those the hosts then receive from the deploy. A plan of
//! the deployed version once converged lists nothing. The CLI's `app plan` / `app diff` exit 0
//! without changes and 3 with them.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::realhost::{EFFECT_KINDS, Recorder, request_kind};
use common::{Cluster, LATTICE};
use wadm_model::StatusType;
use wadm_test_support::wait_for;

fn app(version: &str, image: &str) -> String {
    common::linked_web_app("planned", version, image, &common::east_west_spread(3))
}

/// (subject, body) → how many. Bodies compare as the JSON text of their parsed value (the same
/// serialiser writes both, so field order agrees).
type Requests = BTreeMap<(String, String), usize>;

/// The effect requests recorded from index `from` on, as a multiset.
fn sent_since(recorder: &Recorder, from: usize) -> Requests {
    let mut out = Requests::new();
    for r in recorder.requests().into_iter().skip(from) {
        if !EFFECT_KINDS.contains(&request_kind(&r.subject, LATTICE).as_str()) {
            continue;
        }
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        *out.entry((r.subject, body.to_string())).or_default() += 1;
    }
    out
}

fn planned(plan: &wadm_model::api::PlanResponse) -> Requests {
    let mut out = Requests::new();
    for r in &plan.requests {
        *out.entry((r.subject.clone(), r.body.to_string())).or_default() += 1;
    }
    out
}

/// Wait until no control request has been recorded for 2 s (the deploy has settled).
async fn quiet(recorder: &Recorder) {
    recorder.wait_quiet(|| recorder.requests().len()).await;
}

fn cli(url: &str, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wadm"))
        .args(["app", "--nats-url", url, "--lattice", LATTICE])
        .args(args)
        .output()
        .expect("wadm runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_lists_exactly_what_the_deploy_sends() {
    let cluster = Cluster::start(1, Cluster::zone_hosts(&[("east", 2), ("west", 2)])).await;
    let recorder = Recorder::start(&cluster.nats.url(), LATTICE, "_NOT_IGNORED").await;
    let url = cluster.nats.url();
    let client = &cluster.client;

    // First deploy: plan v1 (stored, not deployed), then deploy it.
    let v1 = app("v1", "ghcr.io/example/web:1.0.0");
    client.put_manifest(v1.as_bytes().to_vec(), None).await.expect("put v1");
    let plan = wait_for(Duration::from_secs(30), || async {
        let plan = client.plan_version("planned", None).await.expect("plan v1");
        // Until wadm has observed the hosts, nothing can be placed.
        (plan.requests.iter().filter(|r| r.kind == "scale_component").count() == 3).then_some(plan)
    })
    .await
    .expect("plan v1 places 3 instances");
    assert!(plan.changed && plan.deployed_version.is_none(), "{plan:?}");
    assert!(!plan.spec_changes.is_empty());
    let from = recorder.requests().len();
    client.deploy("planned", Some("v1")).await.expect("deploy v1");
    cluster
        .wait_lattice("v1 runs", |v| {
            v.count("planned-web") == 3 && v.linked("planned-http", "planned-web")
        })
        .await;
    cluster.wait_status("planned", StatusType::Deployed).await.expect("deployed");
    quiet(&recorder).await;
    assert_eq!(sent_since(&recorder, from), planned(&plan), "v1: plan vs sent");

    // Converged: planning the deployed version changes nothing (exit 0 from the CLI).
    let same = client.plan_version("planned", None).await.expect("plan again");
    assert!(!same.changed && same.requests.is_empty() && same.spec_changes.is_empty(), "{same:?}");
    let (code, text) = cli(&url, &["plan", "planned"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("No change"), "{text}");

    // Upgrade: plan v2 from a file (not stored), then store and deploy it.
    let v2 = app("v2", "ghcr.io/example/web:2.0.0");
    let from_file = client.plan_manifest(v2.as_bytes().to_vec(), None).await.expect("plan file");
    assert!(from_file.changed);
    let kinds: Vec<&str> = from_file.requests.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["update_component"; 3], "{from_file:?}");
    let paths: Vec<&str> = from_file.spec_changes.iter().map(|c| c.path.as_str()).collect();
    assert!(paths.contains(&"spec.components[name=web].properties.image"), "{paths:?}");
    client.put_manifest(v2.as_bytes().to_vec(), None).await.expect("put v2");
    let plan2 = client.plan_version("planned", Some("v2")).await.expect("plan v2");
    assert_eq!(planned(&plan2), planned(&from_file), "stored and file plans agree");
    let (code, text) = cli(&url, &["plan", "planned", "--version", "v2"]);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("update_component"), "{text}");
    let (code, text) = cli(&url, &["diff", "planned", "v1", "v2"]);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("web:2.0.0"), "{text}");
    let (code, text) = cli(&url, &["diff", "planned", "v1", "v1"]);
    assert_eq!(code, 0, "{text}");

    let from = recorder.requests().len();
    client.deploy("planned", Some("v2")).await.expect("deploy v2");
    cluster
        .wait_lattice("v2 runs", |v| {
            v.count("planned-web") == 3
                && v.images("planned-web").iter().all(|i| i.ends_with("web:2.0.0"))
        })
        .await;
    cluster.wait_status("planned", StatusType::Deployed).await.expect("deployed v2");
    quiet(&recorder).await;
    assert_eq!(sent_since(&recorder, from), planned(&plan2), "v2: plan vs sent");

    // Unknown application or version: not found, exit 1.
    let missing = client.plan_version("planned", Some("v9")).await.unwrap_err();
    assert!(missing.to_string().contains("v9"), "{missing}");
    let (code, _) = cli(&url, &["plan", "nosuchapp"]);
    assert_eq!(code, 1);
}
