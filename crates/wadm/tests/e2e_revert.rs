//! A failed rollout reverted automatically, on simulated hosts, judged by what the hosts
//! received: 8 hosts each run one instance; v2 rolls out fine under
//! `rollout: {max_parallel: 2, min_healthy_time: 1s, auto_revert: true}` and becomes stable; v3
//! has an image every host fails to start. Then:
//! - `wadm app deploy --wait` of v3 exits non-zero, saying it is reverting to v2;
//! - wadm deploys v2 again by itself (once): the status says `reverted to v2 from v3: … on host
//!   …`, the history has the rollout, the revert and its reason;
//! - only v3's first batch (at most 2 hosts) was ever asked to update, each once, and every
//!   host ends on v2's image with its instance running;
//! - `wadm app rollback` then deploys the stable version before v2 (v1) on every host.
//!
//! Two wadm replicas run that one; the others show the same for a provider failing its health
//! checks and for a host not healthy within `healthy_deadline`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::realhost::Recorder;
use common::{Cluster, LATTICE};
use wadm_model::StatusType;
use wadm_test_support::wait_for;

const HOSTS: usize = 8;
const V1: &str = "ghcr.io/example/web:1.0.0";
const V2: &str = "ghcr.io/example/web:2.0.0";
const BAD: &str = "ghcr.io/example/web:3.0.0-broken";

fn app(version: &str, image: &str) -> String {
    common::rolling_app(version, image, HOSTS, "auto_revert: true")
}

/// `wadm app …` against the cluster: exit code and everything printed.
async fn wadm_app(cluster: &Cluster, args: &[&str]) -> (i32, String) {
    let output = cluster.wadm(&[&["app"], args].concat()).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// Whether the history has `action` of `version`.
async fn has_history(cluster: &Cluster, action: &str, version: &str) -> bool {
    let history = cluster.client.history("rolling").await.unwrap_or_default();
    history.iter().any(|h| h.action.to_string() == action && h.version.as_deref() == Some(version))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollout_is_reverted_to_the_last_stable_version() {
    // Two wadm replicas: the revert still happens once.
    let cluster = Cluster::start(2, Cluster::zone_hosts(&[("any", HOSTS)])).await;
    for host in cluster.sim.hosts() {
        cluster.sim.faults(&host).expect("host").set_fail_images([BAD.to_string()]);
    }
    let on_every_host = |image: &'static str| {
        move |v: &common::LatticeView| {
            v.count("rolling-web") == HOSTS as u32
                && v.images("rolling-web").iter().all(|i| i == image)
        }
    };
    cluster.put_and_deploy(&app("v1", V1)).await;
    cluster.wait_lattice("v1 on every host", on_every_host(V1)).await;
    cluster.wait_status("rolling", StatusType::Deployed).await.expect("v1 deployed");
    cluster.put_and_deploy(&app("v2", V2)).await;
    cluster.wait_lattice("v2 on every host", on_every_host(V2)).await;
    let stable = wait_for(Duration::from_secs(60), || async {
        has_history(&cluster, "stable", "v2").await.then_some(())
    })
    .await;
    assert!(stable.is_some(), "v2 became stable: {:?}", cluster.client.history("rolling").await);

    // v3: stored, then deployed with --wait by the CLI.
    let recorder = Recorder::start(&cluster.nats.url(), LATTICE, "_NOT_IGNORED").await;
    let put = cluster.client.put_manifest(app("v3", BAD).into_bytes(), None).await.expect("put");
    assert_eq!(put.current_version, "v3");
    let (code, said) =
        wadm_app(&cluster, &["deploy", "rolling", "--version", "v3", "--wait"]).await;
    assert_ne!(code, 0, "deploy --wait of a reverted version fails: {said}");
    assert!(said.contains("to v2"), "says it goes back to v2: {said}");

    // wadm deploys v2 again: every host runs it, the status says why.
    let reverted = wait_for(Duration::from_secs(60), || async {
        let s = cluster.client.status("rolling").await.ok()?;
        let done = s.status.status_type == StatusType::Deployed
            && s.status.message.starts_with("reverted to v2 from v3: ");
        done.then_some(s)
    })
    .await;
    let status = cluster.client.status("rolling").await;
    let reverted = reverted.unwrap_or_else(|| panic!("reverted and deployed: {status:?}"));
    assert!(reverted.status.message.contains("on host N"), "{}", reverted.status.message);
    assert!(reverted.status.message.contains("fails to start"), "{}", reverted.status.message);
    cluster.wait_lattice("v2 on every host again", on_every_host(V2)).await;

    let history = cluster.client.history("rolling").await.expect("history");
    let deployed: Vec<(String, String)> = history
        .iter()
        .filter(|h| h.action.to_string() != "put")
        .map(|h| (h.action.to_string(), h.version.clone().unwrap_or_default()))
        .collect();
    let revert = history.iter().find(|h| h.action.to_string() == "revert");
    let revert = revert.unwrap_or_else(|| panic!("a revert in the history: {history:?}"));
    assert_eq!(revert.version.as_deref(), Some("v2"));
    assert_eq!(revert.actor, "wadm");
    let reason = revert.reason.as_deref().unwrap_or_default();
    assert!(reason.starts_with("v3 failed: ") && reason.contains("on host"), "{reason}");
    assert_eq!(history.iter().filter(|h| h.action.to_string() == "revert").count(), 1);
    assert!(has_history(&cluster, "rollout", "v3").await, "the rollout start: {deployed:?}");

    // What the hosts were asked: v3 reached the first batch only, each host once; nothing was
    // stopped or scaled (every instance kept running).
    let requests = recorder.requests();
    let mut per_host: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &requests {
        let kind = recorder.kind(&r.subject);
        if kind.starts_with("component.") {
            let host = r.subject.rsplit('.').next().unwrap().to_string();
            per_host.entry(host).or_default().push(format!("{kind} {}", r.body));
        }
    }
    let v3_updates: BTreeMap<&String, usize> = per_host
        .iter()
        .map(|(h, sent)| (h, sent.iter().filter(|s| s.contains(BAD)).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert!(
        !v3_updates.is_empty() && v3_updates.len() <= 2,
        "v3 tried on the first batch only: {}",
        recorder.dump_requests()
    );
    assert!(v3_updates.values().all(|n| *n == 1), "each once: {v3_updates:?}");
    // The failed hosts kept v2: going back to it sent nothing at all.
    let sent: usize = per_host.values().map(Vec::len).sum();
    assert_eq!(sent, v3_updates.values().sum::<usize>(), "only v3's tries: {per_host:#?}");
    let scaled = requests.iter().filter(|r| recorder.kind(&r.subject) == "component.scale");
    assert_eq!(scaled.count(), 0, "nothing stopped or scaled: {}", recorder.dump_requests());
    let view = cluster.view();
    assert_eq!(view.count("rolling-web"), HOSTS as u32);

    // Rollback from the stable v2 deploys the stable version before it, v1, everywhere.
    let (code, said) = wadm_app(&cluster, &["rollback", "rolling"]).await;
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("back to version v1 from v2"), "{said}");
    cluster.wait_lattice("v1 on every host after the rollback", on_every_host(V1)).await;
    let back = cluster.wait_status("rolling", StatusType::Deployed).await.expect("deployed");
    assert!(!back.status.message.starts_with("reverted"), "{}", back.status.message);
    assert!(has_history(&cluster, "rollback", "v1").await);
    let (code, said) = wadm_app(&cluster, &["history", "rolling"]).await;
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("revert") && said.contains("v3 failed"), "{said}");
    cluster.shutdown().await;
}

const KV1: &str = "ghcr.io/example/kv:1.0.0";
const KV2: &str = "ghcr.io/example/kv:2.0.0-unhealthy";

/// A component under a rollout with `auto_revert` and a provider `kv` at `kv_image`.
fn with_provider(version: &str, kv_image: &str) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: healthy
  annotations:
    version: {version}
spec:
  components:
    - name: kv
      type: capability
      properties:
        image: {kv_image}
    - name: web
      type: component
      properties:
        image: {V1}
      traits:
        - type: spreadscaler
          properties:
            instances: 3
        - type: rollout
          properties:
            auto_revert: true
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_failing_its_health_checks_reverts_the_rollout() {
    let cluster = Cluster::start(1, Cluster::zone_hosts(&[("any", 3)])).await;
    for host in cluster.sim.hosts() {
        cluster.sim.faults(&host).expect("host").set_unhealthy_images([KV2.to_string()]);
    }
    let kv_image = |v: &common::LatticeView| v.providers.values().cloned().collect::<Vec<_>>();
    cluster.put_and_deploy(&with_provider("v1", KV1)).await;
    cluster.wait_lattice("v1's provider", |v| kv_image(v) == [KV1]).await;
    let stable = wait_for(Duration::from_secs(60), || async {
        let history = cluster.client.history("healthy").await.ok()?;
        history.iter().any(|h| h.action.to_string() == "stable").then_some(())
    })
    .await;
    assert!(stable.is_some(), "v1 became stable");

    let recorder = Recorder::start(&cluster.nats.url(), LATTICE, "_NOT_IGNORED").await;
    cluster.put_and_deploy(&with_provider("v2", KV2)).await;
    let reverted = wait_for(Duration::from_secs(60), || async {
        let s = cluster.client.status("healthy").await.ok()?;
        let done = s.status.status_type == StatusType::Deployed
            && s.status.message.starts_with("reverted to v1 from v2: ");
        done.then_some(s)
    })
    .await;
    let last = cluster.client.status("healthy").await;
    let reverted = reverted.unwrap_or_else(|| panic!("reverted to v1: {last:?}"));
    assert!(reverted.status.message.contains("failed its health check on host"), "{reverted:?}");
    cluster.wait_lattice("v1's provider again", |v| kv_image(v) == [KV1]).await;
    // The unhealthy provider was started (once) and the healthy one started again.
    let starts: Vec<String> = recorder
        .requests()
        .iter()
        .filter(|r| recorder.kind(&r.subject) == "provider.start")
        .map(|r| r.body.clone())
        .collect();
    assert_eq!(starts.iter().filter(|b| b.contains(KV2)).count(), 1, "{starts:?}");
    assert_eq!(starts.iter().filter(|b| b.contains(KV1)).count(), 1, "{starts:?}");
    let history = cluster.client.history("healthy").await.expect("history");
    let revert = history.iter().find(|h| h.action.to_string() == "revert").expect("a revert");
    assert!(revert.reason.as_deref().unwrap_or_default().contains("health check"), "{revert:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_not_healthy_within_the_deadline_reverts_the_rollout() {
    const N: usize = 4;
    let deadline_app = |version: &str, image: &str| {
        app(version, image)
            .replace("name: rolling", "name: slow")
            .replace(&format!("instances: {HOSTS}"), &format!("instances: {N}"))
            .replace("auto_revert: true", "auto_revert: true\n            healthy_deadline: 2s")
    };
    let cluster = Cluster::start(1, Cluster::zone_hosts(&[("any", N)])).await;
    let all_on = |image: &'static str| {
        move |v: &common::LatticeView| {
            v.count("slow-web") == N as u32 && v.images("slow-web").iter().all(|i| i == image)
        }
    };
    cluster.put_and_deploy(&deadline_app("v1", V1)).await;
    cluster.wait_lattice("v1 on every host", all_on(V1)).await;
    let stable = wait_for(Duration::from_secs(60), || async {
        let history = cluster.client.history("slow").await.ok()?;
        history.iter().any(|h| h.action.to_string() == "stable").then_some(())
    })
    .await;
    assert!(stable.is_some(), "v1 became stable");

    // The hosts now take 6 s to act on anything: v2's first batch cannot be healthy in 2 s.
    for host in cluster.sim.hosts() {
        cluster.sim.faults(&host).expect("host").set_reply_delay(Duration::from_secs(6));
    }
    cluster.put_and_deploy(&deadline_app("v2", V2)).await;
    let reverted = wait_for(Duration::from_secs(30), || async {
        let s = cluster.client.status("slow").await.ok()?;
        s.status.message.starts_with("reverted to v1 from v2: ").then_some(s)
    })
    .await;
    let last = cluster.client.status("slow").await;
    let reverted = reverted.unwrap_or_else(|| panic!("reverted: {last:?}"));
    let message = &reverted.status.message;
    assert!(message.contains("not healthy within healthy_deadline 2s on host"), "{message}");
    for host in cluster.sim.hosts() {
        cluster.sim.faults(&host).expect("host").set_reply_delay(Duration::ZERO);
    }
    // What the slow hosts did meanwhile is undone: every host ends on v1.
    cluster.wait_lattice("v1 on every host again", all_on(V1)).await;
    let history = cluster.client.history("slow").await.expect("history");
    let reverts: Vec<_> = history.iter().filter(|h| h.action.to_string() == "revert").collect();
    assert_eq!(reverts.len(), 1, "{history:?}");
    cluster.shutdown().await;
}
