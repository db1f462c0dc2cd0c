//! End to end, the `wadm app` binary following an application on real NATS with a wadm replica
//! and simulated hosts: `deploy --wait`, `status --watch`, `undeploy --wait` and
//! `delete --wait` return only when the hosts are where they said (checked on the hosts).

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{Cluster, LATTICE};
use wadm_sim::HostSpec;

const HELLO: &str = include_str!("../../../examples/hello.yaml");
const APP: &str = "hello-world";

/// `wadm app <args…>` against `cluster`.
async fn app(cluster: &Cluster, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_wadm"))
        .arg("app")
        .args(args)
        .env("WADM_NATS_URL", cluster.nats.url())
        .env("WADM_LATTICE", LATTICE)
        .output()
        .await
        .expect("wadm runs")
}

fn ok(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {text}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// Instances of the application's component and provider on every host.
fn running(cluster: &Cluster) -> (u32, usize) {
    let view = cluster.view();
    let components = view.count("hello_world-http_component");
    let providers = view.provider_hosts("hello_world-httpserver").len();
    (components, providers)
}

/// Every host waits `delay` before handling each request (within wadm's request timeout).
fn slow_hosts(cluster: &Cluster, delay: Duration) {
    for host in cluster.sim.hosts() {
        cluster.sim.faults(&host).expect("a host").set_reply_delay(delay);
    }
}

#[tokio::test]
async fn waits_end_when_the_hosts_are_there() {
    let cluster = Cluster::start(1, vec![HostSpec::default(), HostSpec::default()]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.yaml");
    std::fs::write(&file, HELLO).unwrap();
    let file = file.to_str().unwrap();

    ok(&app(&cluster, &["deploy", file, "--wait", "--timeout", "60s"]).await);
    assert_eq!(running(&cluster), (1, 1), "deployed means running: {:#?}", cluster.view());

    // Following: the current status at once, as JSON lines, until the timeout; exit 0.
    let watched =
        ok(&app(&cluster, &["status", APP, "--watch", "--timeout", "2s", "-o", "json"]).await);
    let first = watched.lines().next().expect("at least one status");
    let status: serde_json::Value = serde_json::from_str(first).expect(first);
    assert_eq!(status["status"]["type"], "deployed", "{watched}");

    // `undeploy --wait` returns once nothing of the application runs — on the hosts. Hosts
    // that take their time (longer than the wait's own confirming polls) must be waited for.
    slow_hosts(&cluster, Duration::from_millis(1_800));
    let undeployed = ok(&app(&cluster, &["undeploy", APP, "--wait", "--timeout", "60s"]).await);
    assert!(undeployed.contains("nothing of it runs"), "{undeployed}");
    assert_eq!(running(&cluster), (0, 0), "undeployed means gone: {:#?}", cluster.view());
    assert!(cluster.view().links.is_empty(), "its link is gone too: {:#?}", cluster.view());

    // `delete --wait` of a deployed application: deleted, and its instances gone on return.
    ok(&app(&cluster, &["deploy", APP, "--wait", "--timeout", "60s"]).await);
    assert_eq!(running(&cluster), (1, 1));
    let deleted = ok(&app(&cluster, &["delete", APP, "--wait", "--timeout", "60s"]).await);
    assert!(deleted.contains("nothing of it runs"), "{deleted}");
    assert_eq!(running(&cluster), (0, 0), "deleted means gone: {:#?}", cluster.view());
    assert!(Path::new(file).exists());

    cluster.shutdown().await;
}
