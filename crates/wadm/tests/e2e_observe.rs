//! `wadm serve --http-addr` as a process, on a real NATS with simulated hosts: `/metrics` is
//! Prometheus text that counts the events, commands and API requests of a deploy, `/healthz`
//! answers while the process runs, `/readyz` follows NATS and JetStream (503 once the NATS
//! server is gone), other paths are 404, and a taken address is a one-line error.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::child::Wadm;
use common::served::{serve_with_hosts, wait_http_addr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wadm_sim::{HostSpec, SimConfig, SimLattice};
use wadm_test_support::{NatsServer, wait_for};

const WADM: &str = env!("CARGO_BIN_EXE_wadm");
const HELLO: &str = include_str!("../../../fixtures/manifests/hello.yaml");
const LATTICE: &str = "default";
const DEADLINE: Duration = Duration::from_secs(60);

/// `GET path` over a fresh connection: the status code and the body.
async fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((code, body.to_string()))
}

/// One Prometheus sample: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parse the text exposition format; every non-comment line must be a valid sample.
fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').ok_or(format!("no value: {line}"))?;
        let value: f64 = value.parse().map_err(|_| format!("bad value: {line}"))?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').ok_or(format!("unclosed labels: {line}"))?;
                let mut labels = BTreeMap::new();
                for pair in inner.split(',').filter(|p| !p.is_empty()) {
                    let (key, quoted) = pair.split_once('=').ok_or(format!("bad label: {line}"))?;
                    let value = quoted
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .ok_or(format!("unquoted label: {line}"))?;
                    labels.insert(key.to_string(), value.to_string());
                }
                (name, labels)
            }
            None => (series, BTreeMap::new()),
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !valid {
            return Err(format!("bad metric name: {line}"));
        }
        samples.push(Sample { name: name.to_string(), labels, value });
    }
    Ok(samples)
}

/// The sum of `name`'s samples whose labels include every pair of `labels`.
fn total(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

async fn metrics(addr: &str) -> Option<Vec<Sample>> {
    let (code, body) = get(addr, "/metrics").await.ok()?;
    assert_eq!(code, 200, "{body}");
    Some(parse_prometheus(&body).unwrap_or_else(|e| panic!("{e}\n{body}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_follow_a_deploy_and_readiness_follows_nats() {
    let mut served = serve_with_hosts(&[], 2).await;
    let (addr, url) = (served.addr.clone(), served.nats_server.url());
    assert_eq!(get(&addr, "/healthz").await.unwrap().0, 200);
    // Ready once the runtime has set up (503 "starting" until then).
    let ready_at = wait_for(DEADLINE, || async {
        get(&addr, "/readyz").await.ok().filter(|(code, _)| *code == 200)
    })
    .await;
    let (code, body) = ready_at.unwrap_or_else(|| (0, served.wadm.output()));
    assert_eq!(code, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready, serde_json::json!({"nats": "connected", "storage": "ok", "failing": []}));

    let client = wadm_client::Client::new(async_nats::connect(&url).await.unwrap(), LATTICE, None);
    let put = client.put_manifest(HELLO.as_bytes().to_vec(), None).await.expect("put");
    client.deploy(&put.name, None).await.expect("deploy");

    // The deploy's commands reach the hosts; the counters show it.
    let seen = wait_for(DEADLINE, || async {
        let samples = metrics(&addr).await?;
        (total(&samples, "wadm_commands_sent_total", &[("result", "ok")]) > 0.0
            && total(&samples, "wadm_events_handled_total", &[("lattice", LATTICE)]) > 0.0)
            .then_some(samples)
    })
    .await
    .expect("events handled and commands sent show in /metrics");
    assert!(total(&seen, "wadm_commands_published_total", &[]) > 0.0);
    assert_eq!(total(&seen, "wadm_api_requests_total", &[("operation", "deploy")]), 1.0);
    assert_eq!(
        total(&seen, "wadm_api_requests_total", &[("operation", "put"), ("result", "created")]),
        1.0
    );
    let steps = total(&seen, "wadm_reconcile_seconds_count", &[("lattice", LATTICE)]);
    assert!(steps > 0.0, "reconcile steps are timed");
    assert!(
        seen.iter().any(|s| s.name == "wadm_reconcile_seconds_bucket"),
        "wadm_reconcile_seconds is a histogram"
    );
    assert!(seen.iter().any(|s| s.name == "wadm_event_queue_pending"), "queue lag gauge");
    assert!(
        total(&seen, "wadm_command_seconds_count", &[]) > 0.0,
        "answered commands are timed by kind"
    );
    let deploys = [("lattice", LATTICE), ("reason_class", "deploy"), ("outcome", "accepted")];
    assert!(
        total(&seen, "wadm_allocations_total", &deploys) > 0.0,
        "answered commands are counted as allocations"
    );
    // The lattice-wide gauges follow what the API reports: 2 hosts, the app deployed.
    let lattice_wide = wait_for(DEADLINE, || async {
        let samples = metrics(&addr).await?;
        let deployed =
            total(&samples, "wadm_apps", &[("lattice", LATTICE), ("status", "deployed")]);
        let failed = total(&samples, "wadm_apps", &[("lattice", LATTICE), ("status", "failed")]);
        let hosts = total(&samples, "wadm_hosts", &[("lattice", LATTICE)]);
        let has_failed_series = samples.iter().any(|s| {
            s.name == "wadm_apps" && s.labels.get("status").map(String::as_str) == Some("failed")
        });
        (deployed == 1.0 && failed == 0.0 && hosts == 2.0 && has_failed_series).then_some(())
    })
    .await;
    assert!(lattice_wide.is_some(), "wadm_apps and wadm_hosts: {:?}", metrics(&addr).await);

    assert_eq!(get(&addr, "/nope").await.unwrap().0, 404);

    // NATS goes away: not ready, still alive.
    served.sim.shutdown().await;
    served.nats_server.stop();
    let not_ready = wait_for(DEADLINE, || async {
        let (code, body) = get(&addr, "/readyz").await.ok()?;
        (code == 503).then_some(body)
    })
    .await
    .expect("/readyz turns 503 without NATS");
    let body: serde_json::Value = serde_json::from_str(&not_ready).unwrap();
    assert_ne!(body["storage"], "ok", "{body}");
    assert_eq!(get(&addr, "/healthz").await.unwrap().0, 200);
}

/// The JetStream store is wiped under a running wadm (NATS restarted on an empty store): wadm
/// recreates its streams, buckets and consumers by itself, `/readyz` says 200 only once its
/// storage answers again, and a deploy made afterwards reaches the hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_store_is_recreated_and_readiness_tells_the_truth() {
    let mut nats = NatsServer::start();
    let url = nats.url();
    let serve = Wadm::start(&[
        "serve",
        "--nats-url",
        &url,
        "--lattice",
        LATTICE,
        "--http-addr",
        "127.0.0.1:0",
        "--host-heartbeat",
        "1s",
    ]);
    let addr = wait_http_addr(&serve, "wadm reports its HTTP address").await;
    let ready = || async {
        let (code, body) = get(&addr, "/readyz").await.ok()?;
        (code == 200).then_some(body)
    };
    assert!(wait_for(DEADLINE, ready).await.is_some(), "ready at first: {}", serve.output());

    nats.stop();
    for entry in std::fs::read_dir(nats.store_dir()).unwrap() {
        let path = entry.unwrap().path();
        let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
    }
    nats.restart().expect("nats restarts on an empty store");
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let recreated = wait_for(DEADLINE, || async {
        js.get_stream(wadm_store::StoreNames::default().events_stream()).await.ok()?;
        js.get_key_value("wadm_manifests").await.ok()?;
        ready().await
    })
    .await;
    assert!(recreated.is_some(), "storage recreated and ready: {}", serve.output());

    let mut sim_config = SimConfig::new(&url, LATTICE);
    sim_config.heartbeat_interval = Duration::from_secs(1);
    let sim = SimLattice::connect(sim_config).await.expect("sim connects");
    sim.add_host(HostSpec::default()).await;
    let client = wadm_client::Client::new(async_nats::connect(&url).await.unwrap(), LATTICE, None);
    let put = client.put_manifest(HELLO.as_bytes().to_vec(), None).await.expect("put");
    client.deploy(&put.name, None).await.expect("deploy");
    let host = sim.hosts()[0].clone();
    let runs = wait_for(DEADLINE, || {
        let running = sim.host_state(&host).is_some_and(|s| !s.components.is_empty());
        async move { running.then_some(()) }
    })
    .await;
    assert!(runs.is_some(), "a deploy after the wipe reaches the host: {}", serve.output());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_passes_http_addr_through_and_its_banner_names_the_bound_address() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut up = Wadm::start(&[
        "up",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--port",
        &port.to_string(),
        "--hosts",
        "2",
        "--heartbeat-interval",
        "1s",
        "--http-addr",
        "127.0.0.1:0",
    ]);
    let addr = wait_http_addr(&up, "the banner names the HTTP address").await;
    assert!(!addr.ends_with(":0"), "the bound port, not the requested one: {addr}");
    // Ready once the runtime has set up (503 "starting" until then, longer on a loaded machine).
    let ready = wait_for(DEADLINE, || async {
        get(&addr, "/readyz").await.ok().filter(|(code, _)| *code == 200)
    })
    .await;
    assert!(ready.is_some(), "/readyz turns 200: {:?}", get(&addr, "/readyz").await);
    // The simulated hosts' start events are handled by wadm in this process.
    let handled = wait_for(DEADLINE, || async {
        let samples = metrics(&addr).await?;
        (total(&samples, "wadm_events_handled_total", &[("lattice", LATTICE)]) >= 2.0).then_some(())
    })
    .await;
    assert!(handled.is_some(), "wadm up counts the hosts' events: {}", up.output());
    let status = up.terminate(DEADLINE).expect("wadm up exits after SIGTERM");
    assert!(status.success(), "{status:?}: {}", up.output());
}

/// Connections that send nothing, or half a request, are closed by the server (they would
/// otherwise hold a connection slot for ever), while requests keep being answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_http_connections_are_closed() {
    let nats = NatsServer::start();
    let serve = Wadm::start(&["serve", "--nats-url", &nats.url(), "--http-addr", "127.0.0.1:0"]);
    let addr = wait_http_addr(&serve, "wadm reports its HTTP address").await;
    let silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut half = tokio::net::TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    for (what, mut stream) in [("silent", silent), ("half-sent", half)] {
        let mut buf = [0u8; 256];
        // Closed: the read ends (0 bytes, or an error response then the end).
        let closed = tokio::time::timeout(DEADLINE, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the {what} connection was never closed");
    }
    assert_eq!(get(&addr, "/healthz").await.unwrap().0, 200, "still serving");
}

#[test]
fn a_taken_http_address_is_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = Command::new(WADM)
        .args(["serve", "--nats-url", "nats://127.0.0.1:1", "--http-addr", &addr])
        .env_remove("WADM_HTTP_ADDR")
        .output()
        .expect("wadm runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("wadm serve: cannot listen on --http-addr 127.0.0.1:"), "{stderr}");
}

#[test]
fn prometheus_parser_rejects_malformed_lines() {
    assert!(parse_prometheus("a_total{x=\"1\"} 2\n# HELP a\n").is_ok());
    assert!(parse_prometheus("a_total{x=1} 2").is_err());
    assert!(parse_prometheus("a_total 2x").is_err());
    assert!(parse_prometheus("bad-name 1").is_err());
}
