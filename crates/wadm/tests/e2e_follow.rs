//! End to end, the `wadm app` binary following an application on real NATS with a wadm replica
//! and simulated hosts: `deploy --wait`, `status --watch`, `undeploy --wait` and
//! `delete --wait` return only when the hosts are where they said (checked on the hosts).

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{Cluster, DEADLINE};
use wadm_sim::HostSpec;

const HELLO: &str = include_str!("../../../examples/hello.yaml");
const APP: &str = "hello-world";

/// `wadm app <args…>` against `cluster`.
async fn app(cluster: &Cluster, args: &[&str]) -> Output {
    cluster.wadm(&[&["app"], args].concat()).await
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

/// The lines a running `wadm app status --watch -o json` printed so far, collected as it prints.
struct Watch {
    child: tokio::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl Watch {
    fn start(cluster: &Cluster, name: &str) -> Watch {
        use tokio::io::AsyncBufReadExt;
        let mut child = cluster
            .wadm_command(&["app", "status", name, "--watch", "-o", "json"])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("wadm runs");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut reader = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let into = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                let status = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                into.lock().unwrap().push(status);
            }
        });
        Watch { child, lines }
    }

    /// Wait until some printed line satisfies `check`; its index.
    async fn printed(&self, what: &str, check: impl Fn(&serde_json::Value) -> bool) -> usize {
        let found = wait_for_lines(&self.lines, &check).await;
        found.unwrap_or_else(|| panic!("the watch never printed {what}: {:#?}", self.lines()))
    }

    fn lines(&self) -> Vec<serde_json::Value> {
        self.lines.lock().unwrap().clone()
    }
}

async fn wait_for_lines(
    lines: &std::sync::Mutex<Vec<serde_json::Value>>,
    check: &impl Fn(&serde_json::Value) -> bool,
) -> Option<usize> {
    wadm_test_support::wait_for(DEADLINE, || {
        let hit = lines.lock().unwrap().iter().position(check);
        async move { hit }
    })
    .await
}

/// The counts of the scaler named `scaler` in a printed status.
fn instances(status: &serde_json::Value, scaler: &str) -> serde_json::Value {
    let scalers = status["scalers"].as_array().cloned().unwrap_or_default();
    let s = scalers.iter().find(|s| s["name"].as_str().is_some_and(|n| n.contains(scaler)));
    s.map(|s| s["status"]["instances"].clone()).unwrap_or_default()
}

#[tokio::test]
async fn a_watch_prints_each_change_and_ends_on_interrupt() {
    let cluster = Cluster::start(1, vec![HostSpec::default(), HostSpec::default()]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.yaml");
    std::fs::write(&file, HELLO).unwrap();
    ok(&app(&cluster, &["deploy", file.to_str().unwrap(), "--wait", "--timeout", "60s"]).await);

    let mut watch = Watch::start(&cluster, APP);
    let one = serde_json::json!({"running": 1, "target": 1});
    let first = watch
        .printed("the deployed status", |s| {
            s["status"]["type"] == "deployed" && instances(s, "http-component") == one
        })
        .await;
    assert_eq!(first, 0, "the current status comes first: {:#?}", watch.lines());

    // Scaled to three by a new version: the watch prints the change as it happens, and the
    // final state: deployed, three of three.
    let scaled = HELLO.replace("instances: 1", "instances: 3");
    assert_ne!(scaled, HELLO);
    std::fs::write(&file, scaled).unwrap();
    ok(&app(&cluster, &["deploy", file.to_str().unwrap()]).await);
    let three = serde_json::json!({"running": 3, "target": 3});
    let last = watch
        .printed("three of three deployed", |s| {
            s["status"]["type"] == "deployed" && instances(s, "http-component") == three
        })
        .await;
    assert!(last > first, "{:#?}", watch.lines());
    let lines = watch.lines();
    assert!(
        lines[first + 1..=last]
            .iter()
            .any(|s| instances(s, "http-component")["target"] == 3
                && s["status"]["type"] != "deployed"),
        "the way there is shown too: {lines:#?}"
    );
    // Nothing printed twice in a row: a line is a change.
    assert!(lines.windows(2).all(|w| w[0] != w[1]), "{lines:#?}");
    assert_eq!(cluster.view().count("hello_world-http_component"), 3);

    // Interrupted (as by Ctrl-C): it ends, successfully.
    let pid = watch.child.id().expect("still running").to_string();
    let signalled = std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(signalled.success());
    let exit = tokio::time::timeout(DEADLINE, watch.child.wait()).await.expect("ends").unwrap();
    assert!(exit.success(), "{exit:?}");

    cluster.shutdown().await;
}
