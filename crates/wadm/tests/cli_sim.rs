//! `wadm sim` smoke test: the binary starts 5 hosts on a harness server, all 5 answer a ping with
//! their labels, and the process dies cleanly when killed.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wadm_test_support::{NatsServer, wait_for};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `wadm sim --nats-url url --lattice lattice extra…` with no stdio, killed on drop.
fn spawn_sim(url: &str, lattice: &str, extra: &[&str]) -> KillOnDrop {
    let child = Command::new(env!("CARGO_BIN_EXE_wadm"))
        .args(["sim", "--nats-url", url, "--lattice", lattice])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn wadm sim");
    KillOnDrop(child)
}

/// A client of the harness server (retrying briefly: it has only just started).
async fn connect(server: &NatsServer) -> async_nats::Client {
    wait_for(Duration::from_secs(10), || async {
        let attempt = async_nats::connect(server.url());
        tokio::time::timeout(Duration::from_secs(1), attempt).await.ok()?.ok()
    })
    .await
    .expect("a NATS connection to the harness server")
}

#[tokio::test]
async fn five_simulated_hosts_answer_a_ping() {
    let server = NatsServer::start();
    let extra =
        ["--hosts", "5", "--labels", "zone=east:2,zone=west:3", "--heartbeat-interval", "1s"];
    let mut child = spawn_sim(&server.url(), "clitest", &extra);
    let client = connect(&server).await;

    let hosts = wait_for(Duration::from_secs(20), || async {
        let hosts =
            wadm_sim::ping_hosts(&client, "clitest", 5, Duration::from_millis(500)).await.ok()?;
        (hosts.len() == 5).then_some(hosts)
    })
    .await
    .expect("5 ping answers from `wadm sim --hosts 5`");

    let zone = |z: &str| {
        hosts.iter().filter(|h| h.labels.get("zone").map(String::as_str) == Some(z)).count()
    };
    assert_eq!(zone("east"), 2);
    assert_eq!(zone("west"), 3);
    for h in &hosts {
        assert_eq!(h.id.len(), 56);
        assert_eq!(h.lattice, "clitest");
        assert!(h.labels.contains_key("hostcore.os"));
    }

    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    assert!(!status.success(), "killed, not exited by itself");
}

#[tokio::test]
async fn fault_flags_reach_the_hosts() {
    let server = NatsServer::start();
    let _child = spawn_sim(&server.url(), "clifault", &["--hosts", "1", "--reject-scales"]);
    let client = connect(&server).await;
    let tap = wadm_sim::EventTap::start(&client, "clifault").await.unwrap();
    let host = wait_for(Duration::from_secs(20), || async {
        let hosts =
            wadm_sim::ping_hosts(&client, "clifault", 1, Duration::from_millis(500)).await.ok()?;
        hosts.into_iter().next()
    })
    .await
    .expect("the simulated host answers a ping");

    let scale = serde_json::json!({"component_ref": "ghcr.io/x/echo:1", "component_id": "echo",
        "count": 1, "host_id": host.id});
    let subject = format!("wasmbus.ctl.v1.clifault.component.scale.{}", host.id);
    let reply = client.request(subject, serde_json::to_vec(&scale).unwrap().into()).await.unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["success"], true, "accepted first: {reply}");
    let failed = wait_for(Duration::from_secs(10), || async {
        tap.of("component_scale_failed").into_iter().next()
    })
    .await
    .expect("component_scale_failed after --reject-scales");
    assert_eq!(failed.source, host.id);
    assert!(tap.of("component_scaled").is_empty());
}

#[test]
fn bad_label_groups_are_refused_with_the_flag_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_wadm"))
        .args(["sim", "--nats-url", "nats://127.0.0.1:1", "--labels", "zone:2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--labels") && err.contains("key=value"), "{err}");
}

/// Two `wadm sim` processes on one lattice (e.g. one beside `wadm up`) name their hosts
/// differently unless both are given the same `--seed`.
#[tokio::test]
async fn separate_simulators_name_their_hosts_apart_unless_seeded_alike() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let names = |lattice: &'static str, seed: Option<&'static str>| {
        let url = server.url();
        let client = client.clone();
        async move {
            let start = || {
                let mut extra = vec!["--hosts", "1"];
                if let Some(seed) = seed {
                    extra.extend(["--seed", seed]);
                }
                spawn_sim(&url, lattice, &extra)
            };
            let _sims = [start(), start()];
            let hosts = wait_for(Duration::from_secs(20), || async {
                let hosts = wadm_sim::ping_hosts(&client, lattice, 2, Duration::from_millis(500))
                    .await
                    .ok()?;
                (hosts.len() == 2).then_some(hosts)
            })
            .await
            .expect("2 ping answers");
            (hosts[0].friendly_name.clone(), hosts[1].friendly_name.clone())
        }
    };
    let (a, b) = names("unseeded", None).await;
    assert_ne!(a, b, "two runs without --seed");
    let (a, b) = names("seeded", Some("7")).await;
    assert_eq!(a, b, "the same --seed names alike");
}
