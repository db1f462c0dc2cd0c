//! End to end against REAL wasmCloud 1.9.2 hosts (issue 12 item 8): nats-server, 3 hosts
//! (`fixtures/realhost`, labels zone=east/east/west), 2 `wadm serve` replicas. An application
//! of WAT-assembled `file://` components (a spreadscaler of 3) plus the builtin http-server
//! provider linked to it with an owned source config is deployed, upgraded to a second component
//! image, then undeployed; every step is checked against the hosts' own inventories (`host.get`).
//!
//! A recorder keeps every control request wadm sends (and the replies and events); at the end
//! the test asserts that wadm never sent two requests with the same effect (subject + body),
//! that the number of running instances never exceeded the target (from the commands, the
//! events and the inventories), and that the application's status never went from deployed back
//! to reconciling/failed without a change to the lattice. It prints requests per kind.
//!
//! Skips (prints why, passes) when the host binary is absent: build it with
//! `scripts/build-realhost.sh` (docs/realhost.md).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::child::Wadm;
use common::realhost::{
    Inventory, RealHost, Recorder, canonical_json, ctl_request, file_ref, free_port, host_binary,
    host_get, normalise_ref, short_id, write_greeters,
};
use futures::StreamExt;
use serde_json::Value;
use wadm_model::StatusType;
use wadm_test_support::{NatsServer, wait_for};

const LATTICE: &str = "default";
const APP: &str = "realhost";
const COMPONENT: &str = "realhost-greeter";
const PROVIDER: &str = "realhost-httpserver";
const BUILTIN_HTTP: &str = "wasmcloud+builtin://http-server";
const TARGET: u64 = 3;
/// The hosts' heartbeat (wadm is told the same).
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Deadline of every wait on the real lattice.
const DEADLINE: Duration = Duration::from_secs(120);
/// After each step settles, the lattice is watched this long for flapping and repeated requests
/// (two heartbeats and several resyncs): an observation window, not a synchronisation.
const QUIET: Duration = Duration::from_secs(12);
/// The test's own connection answers on this inbox prefix; the recorder ignores its requests.
const TEST_INBOX: &str = "_RHTEST";

/// Request kinds whose repetition with the same body is a wasted or harmful command (reads such
/// as `host.get`, `host.ping` and `link.get` may legitimately repeat).
const EFFECT_KINDS: &[&str] = &[
    "component.scale",
    "component.update",
    "provider.start",
    "provider.stop",
    "link.put",
    "link.del",
    "config.put",
    "config.del",
    "label.put",
    "label.del",
    "host.stop",
];

fn manifest(version: &str, image: &str, http_port: u16) -> String {
    format!(
        r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {APP}
  annotations:
    version: {version}
spec:
  components:
    - name: greeter
      type: component
      properties:
        image: {image}
      traits:
        - type: spreadscaler
          properties:
            instances: {TARGET}
            spread:
              - name: east
                requirements:
                  zone: east
                weight: 67
              - name: west
                requirements:
                  zone: west
                weight: 33
    - name: httpserver
      type: capability
      properties:
        image: {BUILTIN_HTTP}
      traits:
        - type: spreadscaler
          properties:
            instances: 1
        - type: link
          properties:
            target:
              name: greeter
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
            source:
              config:
                - name: greeter-http
                  properties:
                    ADDRESS: 127.0.0.1:{http_port}
"#
    )
}

/// One status poll: when it was sent (since the recorder started) and what it said.
#[derive(Debug, Clone)]
struct Polled {
    at: Duration,
    status: StatusType,
    message: String,
}

/// A change the test made to the lattice (deploy, upgrade, undeploy): statuses after it belong
/// to a new epoch. `settled` is when the test saw that epoch's target reached.
#[derive(Debug, Clone)]
struct Epoch {
    name: &'static str,
    at: Duration,
    target: StatusType,
    settled: Option<Duration>,
}

/// Everything the scenario runs with.
struct Run {
    recorder: Recorder,
    nats: async_nats::Client,
    client: wadm_client::Client,
    hosts: Vec<RealHost>,
    host_ids: Vec<String>,
    replicas: Vec<Wadm>,
    polled: Arc<Mutex<Vec<Polled>>>,
    epochs: Vec<Epoch>,
    inventory_peak: u64,
    notes: Vec<String>,
}

impl Run {
    fn now(&self) -> Duration {
        self.recorder.started.elapsed()
    }

    /// Panic after printing everything that was recorded.
    fn fail(&self, what: &str) -> ! {
        self.print_diagnostics();
        panic!("{what}");
    }

    fn print_diagnostics(&self) {
        eprintln!("=== recorded control requests (wadm's) ===\n{}", self.recorder.dump_requests());
        eprintln!("=== events ===\n{}", self.recorder.dump_events());
        eprintln!("=== statuses polled ===");
        for p in self.polled.lock().unwrap().iter() {
            eprintln!("  {:>8.3}s {:?} {}", p.at.as_secs_f64(), p.status, p.message);
        }
        eprintln!("=== epochs ===\n{:#?}", self.epochs);
        for (i, replica) in self.replicas.iter().enumerate() {
            let out = replica.output();
            let tail: Vec<&str> = out.lines().rev().take(40).collect();
            eprintln!("=== wadm replica {i} (last lines) ===");
            for line in tail.into_iter().rev() {
                eprintln!("  {line}");
            }
        }
        for host in &self.hosts {
            eprintln!("=== host {} (last lines) ===\n{}", host.name, host.log_tail(30));
        }
    }

    async fn inventories(&self) -> Vec<Option<Inventory>> {
        let mut all = Vec::new();
        for host in &self.host_ids {
            all.push(host_get(&self.nats, LATTICE, host).await);
        }
        all
    }

    /// Poll the inventories until `check` accepts them (or the deadline passes: fail). Every
    /// polled inventory counts towards the observed peak.
    async fn wait_inventories(
        &mut self,
        what: &str,
        check: impl Fn(&[Inventory]) -> Result<(), String>,
    ) {
        let mut last;
        let deadline = Instant::now() + DEADLINE;
        loop {
            let answers = self.inventories().await;
            let complete: Vec<Inventory> = answers.iter().flatten().cloned().collect();
            let running: u64 =
                complete.iter().filter_map(|i| i.components.get(COMPONENT)).map(|(_, n)| *n).sum();
            self.inventory_peak = self.inventory_peak.max(running);
            if complete.len() == answers.len() {
                match check(&complete) {
                    Ok(()) => return,
                    Err(why) => last = format!("{why}\n{complete:#?}"),
                }
            } else {
                last = "a host did not answer host.get".into();
            }
            if Instant::now() > deadline {
                self.fail(&format!("{what}: never reached; last: {last}"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Wait until wadm reports `wanted` for the app (polled by the background poller too).
    async fn wait_status(&self, what: &str, wanted: StatusType) {
        let found = wait_for(DEADLINE, || async {
            let status = self.client.status(APP).await.ok()?;
            (status.status.status_type == wanted).then_some(())
        })
        .await;
        if found.is_none() {
            self.fail(&format!("{what}: status never {wanted:?}"));
        }
    }

    fn begin(&mut self, name: &'static str, target: StatusType) {
        let at = self.now();
        self.epochs.push(Epoch { name, at, target, settled: None });
    }

    fn settle(&mut self) {
        let now = self.now();
        if let Some(epoch) = self.epochs.last_mut() {
            epoch.settled = Some(now);
        }
    }

    /// Watch the lattice for [`QUIET`]: the status must stay at the epoch's target.
    async fn observe_quiet(&self) {
        let target = self.epochs.last().map(|e| e.target).unwrap_or_default();
        let flapped = wait_for(QUIET, || async {
            let status = self.client.status(APP).await.ok()?;
            (status.status.status_type != target).then_some(status)
        })
        .await;
        if let Some(status) = flapped {
            eprintln!(
                "e2e_realhost: status left {target:?} while nothing changed: {:?} {}",
                status.status.status_type, status.status.message
            );
        }
    }
}

/// The app runs `image` exactly: TARGET instances (2 east, 1 west), the builtin http-server on
/// one host, nothing else anywhere.
fn runs_exactly(image: &str) -> impl Fn(&[Inventory]) -> Result<(), String> + '_ {
    move |invs: &[Inventory]| {
        let mut total = 0;
        let mut per_zone: BTreeMap<String, u64> = BTreeMap::new();
        let mut provider_hosts = 0;
        for inv in invs {
            for (id, (image_ref, n)) in &inv.components {
                if id != COMPONENT {
                    return Err(format!("unexpected component {id} on {}", short_id(&inv.host_id)));
                }
                if image_ref != image {
                    return Err(format!("{id} runs {image_ref} on {}", short_id(&inv.host_id)));
                }
                total += n;
                let zone = inv.labels.get("zone").cloned().unwrap_or_default();
                *per_zone.entry(zone).or_insert(0) += n;
            }
            for (id, image_ref) in &inv.providers {
                if id != PROVIDER || normalise_ref(image_ref) != normalise_ref(BUILTIN_HTTP) {
                    return Err(format!("unexpected provider {id} ({image_ref})"));
                }
                provider_hosts += 1;
            }
        }
        if total != TARGET {
            return Err(format!("{total} instances, want {TARGET}"));
        }
        let want: BTreeMap<String, u64> = [("east".to_string(), 2), ("west".to_string(), 1)].into();
        if per_zone != want {
            return Err(format!("per zone {per_zone:?}, want {want:?}"));
        }
        if provider_hosts != 1 {
            return Err(format!("the http-server runs on {provider_hosts} hosts, want 1"));
        }
        Ok(())
    }
}

fn empty(invs: &[Inventory]) -> Result<(), String> {
    match invs.iter().find(|i| !i.components.is_empty() || !i.providers.is_empty()) {
        Some(inv) => Err(format!("{} still runs something", short_id(&inv.host_id))),
        None => Ok(()),
    }
}

/// The two greeter variants assemble (without a host) into distinct components.
#[test]
fn greeter_variants_assemble_into_two_distinct_components() {
    let dir = tempfile::tempdir().unwrap();
    let [v1, v2] = write_greeters(dir.path());
    let (v1, v2) = (std::fs::read(v1).unwrap(), std::fs::read(v2).unwrap());
    for wasm in [&v1, &v2] {
        // Magic, then the component-model layer (version 0x0d, layer 1).
        assert_eq!(&wasm[..8], b"\0asm\x0d\0\x01\0", "a component binary");
    }
    assert_ne!(v1, v2, "different bodies, different image files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_hosts_deploy_upgrade_undeploy_without_redundant_commands() {
    let bin = match host_binary() {
        Ok(bin) => bin,
        Err(reason) => {
            eprintln!("e2e_realhost: SKIPPED: {reason}");
            return;
        }
    };
    eprintln!("e2e_realhost: host binary {}", bin.display());
    let components = tempfile::tempdir().unwrap();
    let [v1, v2] = write_greeters(components.path());
    let (v1, v2) = (file_ref(&v1), file_ref(&v2));
    let http_port = free_port();

    let nats_server = NatsServer::start();
    let url = nats_server.url();
    let recorder = Recorder::start(&url, LATTICE, TEST_INBOX).await;
    let nats = async_nats::ConnectOptions::new()
        .custom_inbox_prefix(TEST_INBOX)
        .connect(&url)
        .await
        .expect("test connects");
    let client = wadm_client::Client::new(nats.clone(), LATTICE, None);

    // Two wadm replicas.
    let heartbeat = format!("{}s", HEARTBEAT.as_secs());
    let replicas: Vec<Wadm> = (0..2)
        .map(|_| {
            Wadm::start(&[
                "serve",
                "--nats-url",
                &url,
                "--lattice",
                LATTICE,
                "--host-heartbeat",
                &heartbeat,
                "--resync-every",
                "1s",
            ])
        })
        .collect();
    // Hosts start once wadm's event stream exists, so their host_started is captured.
    let js = async_nats::jetstream::new(nats.clone());
    let stream =
        wait_for(DEADLINE, || async { js.get_stream(wadm_runtime::nats::EVENT_STREAM).await.ok() })
            .await;
    assert!(stream.is_some(), "wadm creates its event stream: {}", replicas[0].output());

    // Three real hosts; their ids come from host_started (the CloudEvent source).
    let mut started = nats.subscribe(format!("wasmbus.evt.{LATTICE}.host_started")).await.unwrap();
    nats.flush().await.unwrap();
    let zones = ["east", "east", "west"];
    let hosts: Vec<RealHost> = zones
        .iter()
        .enumerate()
        .map(|(i, zone)| {
            let name = format!("host{i}-{zone}");
            RealHost::start(&bin, &name, &url, LATTICE, HEARTBEAT, &[("zone", *zone)])
        })
        .collect();
    let mut host_ids = Vec::new();
    let startup_deadline = Instant::now() + DEADLINE;
    while host_ids.len() < hosts.len() {
        let left = startup_deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, started.next()).await {
            Ok(Some(m)) => {
                let event: Value = serde_json::from_slice(&m.payload).unwrap_or_default();
                if let Some(id) = event["source"].as_str() {
                    host_ids.push(id.to_string());
                }
            }
            _ => {
                for host in &hosts {
                    eprintln!("=== host {} ===\n{}", host.name, host.log_tail(40));
                }
                panic!("only {} of {} hosts started", host_ids.len(), hosts.len());
            }
        }
    }
    eprintln!("e2e_realhost: hosts {:?}", host_ids.iter().map(|h| short_id(h)).collect::<Vec<_>>());

    // Status poller: the app's status every 250 ms for the whole run.
    let polled = Arc::new(Mutex::new(Vec::new()));
    let poller = {
        let client = client.clone();
        let polled = polled.clone();
        let started = recorder.started;
        tokio::spawn(async move {
            loop {
                let at = started.elapsed();
                if let Ok(status) = client.status(APP).await {
                    polled.lock().unwrap().push(Polled {
                        at,
                        status: status.status.status_type,
                        message: status.status.message,
                    });
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let mut run = Run {
        recorder,
        nats,
        client,
        hosts,
        host_ids,
        replicas,
        polled,
        epochs: Vec::new(),
        inventory_peak: 0,
        notes: Vec::new(),
    };

    // 1. Deploy v1.
    run.begin("deploy v1", StatusType::Deployed);
    put_and_deploy(&run, &manifest("v1", &v1, http_port)).await;
    run.wait_status("deploy v1", StatusType::Deployed).await;
    run.wait_inventories("v1 runs exactly the target", runs_exactly(&v1)).await;
    run.settle();
    check_link_and_config(&mut run, http_port).await;
    run.observe_quiet().await;

    // 2. Upgrade to v2 (another image, same shape).
    run.begin("upgrade to v2", StatusType::Deployed);
    put_and_deploy(&run, &manifest("v2", &v2, http_port)).await;
    run.wait_inventories("v2 runs exactly the target", runs_exactly(&v2)).await;
    run.wait_status("upgrade to v2", StatusType::Deployed).await;
    run.settle();
    run.observe_quiet().await;

    // 3. Undeploy.
    run.begin("undeploy", StatusType::Undeployed);
    if let Err(e) = run.client.undeploy(APP).await {
        run.fail(&format!("undeploy: {e}"));
    }
    run.wait_inventories("nothing runs after undeploy", empty).await;
    run.wait_status("undeploy", StatusType::Undeployed).await;
    run.settle();
    run.observe_quiet().await;
    let links = ctl_request(&run.nats, LATTICE, "link.get").await;
    let left: Vec<&Value> = links
        .as_ref()
        .and_then(|l| l["response"].as_array())
        .into_iter()
        .flatten()
        .filter(|l| l["source_id"] == PROVIDER)
        .collect();
    if !left.is_empty() {
        run.notes.push(format!("links left after undeploy: {left:?}"));
    }
    poller.abort();

    // Stop wadm, then the hosts (gracefully: each publishes host_stopped).
    for replica in &mut run.replicas {
        let status = replica.terminate(Duration::from_secs(30));
        if !status.is_some_and(|s| s.success()) {
            run.notes.push(format!("a wadm replica did not exit cleanly: {status:?}"));
        }
    }
    for host in &mut run.hosts {
        let status = host.terminate(Duration::from_secs(30));
        assert!(
            status.is_some_and(|s| s.success()),
            "host {} stops on SIGTERM: {status:?}\n{}",
            host.name,
            host.log_tail(30)
        );
    }
    let stopped = wait_for(Duration::from_secs(10), || {
        let stopped: BTreeSet<String> = run
            .recorder
            .events()
            .iter()
            .filter(|e| e.subject.ends_with(".host_stopped"))
            .filter_map(|e| {
                serde_json::from_str::<Value>(&e.body).ok()?["source"].as_str().map(String::from)
            })
            .collect();
        let all = run.host_ids.iter().all(|h| stopped.contains(h));
        async move { all.then_some(()) }
    })
    .await;
    assert!(stopped.is_some(), "every host publishes host_stopped on SIGTERM");

    // 4. What wadm sent.
    let findings = analyse(&run);
    if !findings.is_empty() {
        run.print_diagnostics();
        panic!("{} finding(s):\n{}", findings.len(), findings.join("\n"));
    }
}

/// Store `yaml` as a new version and deploy it.
async fn put_and_deploy(run: &Run, yaml: &str) {
    let put = match run.client.put_manifest(yaml.as_bytes().to_vec(), None).await {
        Ok(put) => put,
        Err(e) => run.fail(&format!("put: {e}")),
    };
    if let Err(e) = run.client.deploy(&put.name, Some(&put.current_version)).await {
        run.fail(&format!("deploy {}: {e}", put.current_version));
    }
}

/// The link from the http-server to the greeter exists with its source config (holding the
/// ADDRESS), and the builtin http-server listens there.
async fn check_link_and_config(run: &mut Run, http_port: u16) {
    let address = format!("127.0.0.1:{http_port}");
    let link = wait_for(DEADLINE, || async {
        let links = ctl_request(&run.nats, LATTICE, "link.get").await?;
        links["response"]
            .as_array()?
            .iter()
            .find(|l| l["source_id"] == PROVIDER && l["target"] == COMPONENT)
            .cloned()
    })
    .await;
    let Some(link) = link else { run.fail("no link from the http-server to the greeter") };
    let names: Vec<String> = link["source_config"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(String::from))
        .collect();
    let mut found = false;
    for name in &names {
        let config = ctl_request(&run.nats, LATTICE, &format!("config.get.{name}")).await;
        if config.as_ref().and_then(|c| c["response"]["ADDRESS"].as_str()) == Some(&address) {
            found = true;
        }
    }
    if !found {
        run.fail(&format!("no source config of the link holds ADDRESS {address}: {link}"));
    }
    let listening = wait_for(DEADLINE, || async {
        tokio::net::TcpStream::connect(&address).await.ok().map(|_| ())
    })
    .await;
    if listening.is_none() {
        run.fail(&format!("the builtin http-server never listened on {address}"));
    }
}

/// The assertions on what was recorded; prints the per-kind summary. Each finding is one line.
fn analyse(run: &Run) -> Vec<String> {
    let requests = run.recorder.requests();
    let mut findings = Vec::new();
    let mut summary = String::new();
    for (kind, n) in run.recorder.counts() {
        let _ = write!(summary, "{kind}={n} ");
    }
    eprintln!("e2e_realhost: wadm sent {} control requests: {summary}", requests.len());

    // No two requests with the same effect.
    let mut seen: BTreeMap<(String, String), Vec<Duration>> = BTreeMap::new();
    for r in &requests {
        if !EFFECT_KINDS.contains(&run.recorder.kind(&r.subject).as_str()) {
            continue;
        }
        let body = serde_json::from_str::<Value>(&r.body)
            .map(|v| canonical_json(&v).to_string())
            .unwrap_or_else(|_| r.body.clone());
        seen.entry((r.subject.clone(), body)).or_default().push(r.at);
    }
    let mut repeats_per_kind: BTreeMap<String, usize> = BTreeMap::new();
    for ((subject, body), times) in &seen {
        if times.len() > 1 {
            *repeats_per_kind.entry(run.recorder.kind(subject)).or_insert(0) += times.len() - 1;
            let times: Vec<String> =
                times.iter().map(|t| format!("{:.3}s", t.as_secs_f64())).collect();
            findings.push(format!(
                "repeated {}x: {} {} at {}",
                times.len(),
                common::realhost::short_subject(subject),
                common::realhost::truncate(body, 300),
                times.join(", ")
            ));
        }
    }
    eprintln!("e2e_realhost: repeated requests per kind (extra copies): {repeats_per_kind:?}");

    // Peak instances: commanded (scale requests), reported (events), polled (inventories).
    let mut commanded: BTreeMap<String, u64> = BTreeMap::new();
    let mut commanded_peak = 0;
    for r in &requests {
        if run.recorder.kind(&r.subject) != "component.scale" {
            continue;
        }
        let Ok(body) = serde_json::from_str::<Value>(&r.body) else { continue };
        if body["component_id"] != COMPONENT {
            continue;
        }
        let host = r.subject.rsplit('.').next().unwrap_or("").to_string();
        commanded.insert(host, body["count"].as_u64().unwrap_or(0));
        commanded_peak = commanded_peak.max(commanded.values().sum::<u64>());
    }
    let mut reported: BTreeMap<String, u64> = BTreeMap::new();
    let mut reported_peak = 0;
    for e in run.recorder.events() {
        let Ok(event) = serde_json::from_str::<Value>(&e.body) else { continue };
        let host = event["source"].as_str().unwrap_or("").to_string();
        if e.subject.ends_with(".component_scaled") && event["data"]["component_id"] == COMPONENT {
            reported.insert(host, event["data"]["max_instances"].as_u64().unwrap_or(0));
        } else if e.subject.ends_with(".host_heartbeat") {
            let n = Inventory::from_json(&event["data"])
                .and_then(|i| i.components.get(COMPONENT).map(|(_, n)| *n))
                .unwrap_or(0);
            reported.insert(host, n);
        } else if e.subject.ends_with(".host_stopped") {
            reported.remove(&host);
        } else {
            continue;
        }
        reported_peak = reported_peak.max(reported.values().sum::<u64>());
    }
    eprintln!(
        "e2e_realhost: peak instances of {COMPONENT} (target {TARGET}): commanded {commanded_peak}, \
         reported by events {reported_peak}, polled inventories {}",
        run.inventory_peak
    );
    for (what, peak) in [
        ("commanded", commanded_peak),
        ("reported by events", reported_peak),
        ("polled inventories", run.inventory_peak),
    ] {
        if peak > TARGET {
            findings.push(format!("peak instances {what}: {peak} > target {TARGET}"));
        }
    }

    // Status never leaves its epoch's target once reached, until the next change.
    let polled = run.polled.lock().unwrap().clone();
    let mut transitions = 0;
    for (i, epoch) in run.epochs.iter().enumerate() {
        let end = run.epochs.get(i + 1).map(|e| e.at).unwrap_or(Duration::MAX);
        let in_epoch: Vec<&Polled> =
            polled.iter().filter(|p| p.at >= epoch.at && p.at < end).collect();
        let mut reached = false;
        let mut left_target = false;
        for p in in_epoch {
            if p.status == epoch.target {
                // Reached once it was seen after leaving, or after the epoch settled.
                if left_target || epoch.settled.is_some_and(|s| p.at >= s) {
                    reached = true;
                }
            } else {
                left_target = true;
                if reached && matches!(p.status, StatusType::Reconciling | StatusType::Failed) {
                    transitions += 1;
                    findings.push(format!(
                        "status {:?} -> {:?} at {:.3}s during '{}' with no lattice change: {}",
                        epoch.target,
                        p.status,
                        p.at.as_secs_f64(),
                        epoch.name,
                        p.message
                    ));
                }
            }
        }
    }
    eprintln!(
        "e2e_realhost: {} statuses polled, {transitions} deployed->reconciling/failed flap(s)",
        polled.len()
    );
    for note in &run.notes {
        eprintln!("e2e_realhost: note: {note}");
    }
    findings
}
