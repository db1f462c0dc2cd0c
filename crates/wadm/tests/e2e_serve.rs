//! `wadm serve` as a process runs the API server AND the runtime: with no `--nats-url` it starts
//! its own `nats-server -js` in `--data-dir`, manages every lattice whose events show up
//! (discovery), makes a simulated lattice run what is deployed, and on SIGTERM stops cleanly
//! with its NATS server. Without `nats-server` it says how to install it, in one line.

mod common;

use std::process::Command;
use std::time::Duration;

use common::child::Wadm;
use wadm_model::StatusType;
use wadm_sim::{HostSpec, SimConfig, SimLattice};
use wadm_test_support::wait_for;

const WADM: &str = env!("CARGO_BIN_EXE_wadm");
const HELLO: &str = include_str!("../../../fixtures/manifests/hello.yaml");

/// URL and pid of the local NATS server `wadm serve` reports
/// (`… on nats://… (pid N, store in …)`).
fn local_nats(serve: &Wadm) -> Option<(String, u32)> {
    serve.find_line(|line| {
        let rest = line.split(" on ").nth(1)?;
        let (url, rest) = rest.split_once(" (pid ")?;
        let pid = rest.split(',').next()?.parse().ok()?;
        Some((url.to_string(), pid))
    })
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_local_nats_discovers_a_lattice_runs_a_deploy_and_stops_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let mut serve = Wadm::start(&[
        "serve",
        "--data-dir",
        data_dir,
        "--resync-every",
        "500ms",
        "--host-heartbeat",
        "2s",
    ]);
    let local = wait_for(Duration::from_secs(30), || {
        let found = local_nats(&serve);
        async move { found }
    })
    .await;
    let (url, nats_pid) = local.unwrap_or_else(|| panic!("{}", serve.output()));
    assert!(data.path().join("nats").is_dir(), "the store lives in --data-dir");

    // A lattice wadm was not told about: it is managed once its hosts show up.
    // (Hosts that started before wadm's streams existed are still learnt from heartbeats.)
    let mut sim_config = SimConfig::new(&url, "blue");
    sim_config.heartbeat_interval = Duration::from_secs(2);
    let sim = SimLattice::connect(sim_config).await.expect("sim connects");
    for _ in 0..2 {
        sim.add_host(HostSpec::default()).await;
    }
    let nats = async_nats::connect(&url).await.unwrap();
    let client = wadm_client::Client::new(nats, "blue", None);
    let put = wait_for(common::DEADLINE, || async {
        client.put_manifest(HELLO.as_bytes().to_vec(), None).await.ok()
    })
    .await
    .expect("the API answers");
    client.deploy(&put.name, None).await.expect("deploy");
    let running = wait_for(common::DEADLINE, || async {
        let hosts = sim.hosts();
        let components: u32 = hosts
            .iter()
            .filter_map(|h| sim.host_state(h))
            .flat_map(|s| s.components.into_values())
            .map(|c| c.count)
            .sum();
        let providers: usize =
            hosts.iter().filter_map(|h| sim.host_state(h)).map(|s| s.providers.len()).sum();
        (components == 1 && providers == 1 && !sim.links().is_empty()).then_some(())
    })
    .await;
    assert!(running.is_some(), "the blue lattice runs hello-world");
    let deployed = wait_for(common::DEADLINE, || async {
        let status = client.status(&put.name).await.ok()?;
        (status.status.status_type == StatusType::Deployed).then_some(())
    })
    .await;
    assert!(deployed.is_some(), "hello-world becomes deployed");

    // The hosts leave first: their NATS server goes away with wadm serve.
    sim.shutdown().await;
    let status = serve.terminate(Duration::from_secs(30)).expect("wadm serve exits after SIGTERM");
    assert!(status.success(), "{status:?}: {}", serve.output());
    assert!(!alive(nats_pid), "the local nats-server stopped with wadm serve");
}

#[test]
fn serve_without_nats_server_installed_says_how_to_install_it() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(WADM)
        .args(["serve", "--data-dir", data.path().to_str().unwrap()])
        .env_remove("WADM_NATS_URL")
        .env("NATS_SERVER_BIN", data.path().join("missing"))
        .env("RUST_LOG", "off")
        .output()
        .expect("wadm runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("wadm serve: nats-server not found"), "{stderr}");
    assert!(stderr.contains("pip install"), "{stderr}");
}

#[test]
fn a_bad_runtime_flag_is_refused_before_connecting() {
    let output = Command::new(WADM)
        .args(["serve", "--nats-url", "nats://127.0.0.1:1", "--lattice", "a.b"])
        .env("RUST_LOG", "off")
        .output()
        .expect("wadm runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid --lattice \"a.b\""), "{stderr}");
}
