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

use common::realhost::{
    EFFECT_KINDS, Inventory, Process, Recorder, canonical_json, ctl_request, file_ref, free_port,
    host_binary, host_get, normalise_ref, short_id, write_greeters,
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
                weight: 2
              - name: west
                requirements:
                  zone: west
                weight: 1
        - type: rollout
          properties:
            max_parallel: 1
            min_healthy_time: 1s
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

/// One status poll: when it was sent (since the recorder started), how long the answer took
/// and what it said (`None`: the request failed, `message` says why).
#[derive(Debug, Clone)]
struct Polled {
    at: Duration,
    took: Duration,
    status: Option<StatusType>,
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
    hosts: Vec<Process>,
    host_ids: Vec<String>,
    replicas: Vec<Process>,
    polled: Arc<Mutex<Vec<Polled>>>,
    epochs: Vec<Epoch>,
    inventory_peak: u64,
    provider_inventory_peak: u64,
    /// Findings made during the run (reported with the others at the end).
    findings: Vec<String>,
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
            let status = p.status.map(|s| format!("{s:?}")).unwrap_or_else(|| "ERROR".into());
            let took = p.took.as_secs_f64();
            eprintln!("  {:>8.3}s (+{took:.3}s) {status} {}", p.at.as_secs_f64(), p.message);
        }
        eprintln!("=== epochs ===\n{:#?}", self.epochs);
        for replica in &self.replicas {
            eprintln!("=== wadm {} (last lines) ===\n{}", replica.name, replica.log_tail(60));
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
            if let Some(complete) = self.poll_peaks().await {
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

    /// The east/west split asked for (a finding when the hosts run another).
    async fn check_spread(&mut self, what: &str) {
        let invs: Vec<Inventory> = self.inventories().await.into_iter().flatten().collect();
        let (got, want) = (per_zone(&invs), wanted_spread());
        if got != want {
            self.findings.push(format!(
                "{what}: spread per zone {got:?}, the manifest asks for {want:?} (weights 2:1)"
            ));
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
    /// The whole window is observed (the background poller records the statuses; the
    /// inventories polled here count towards the peaks); flaps are judged in [`analyse`].
    async fn observe_quiet(&mut self) {
        let target = self.epochs.last().map(|e| e.target).unwrap_or_default();
        let since = self.now();
        let end = Instant::now() + QUIET;
        while Instant::now() < end {
            self.poll_peaks().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let left: Vec<Polled> = self
            .polled
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.at >= since && p.status.is_some_and(|s| s != target))
            .cloned()
            .collect();
        for p in left {
            eprintln!(
                "e2e_realhost: at {:.3}s the status left {target:?} while nothing changed: {:?} {}",
                p.at.as_secs_f64(),
                p.status,
                p.message
            );
        }
    }

    /// Poll every inventory once; update the observed peaks. The answers, when all came.
    async fn poll_peaks(&mut self) -> Option<Vec<Inventory>> {
        let answers = self.inventories().await;
        let complete: Vec<Inventory> = answers.iter().flatten().cloned().collect();
        let (components, providers) = running(&complete);
        self.inventory_peak = self.inventory_peak.max(components);
        self.provider_inventory_peak = self.provider_inventory_peak.max(providers);
        (complete.len() == answers.len()).then_some(complete)
    }
}

/// Greeter instances and http-server providers running in `invs`.
fn running(invs: &[Inventory]) -> (u64, u64) {
    let components = invs.iter().filter_map(|i| i.components.get(COMPONENT)).map(|(_, n)| n).sum();
    let providers = invs.iter().filter(|i| i.providers.contains_key(PROVIDER)).count() as u64;
    (components, providers)
}

/// Instances of the greeter per zone label.
fn per_zone(invs: &[Inventory]) -> BTreeMap<String, u64> {
    let mut per_zone = BTreeMap::new();
    for inv in invs {
        if let Some((_, n)) = inv.components.get(COMPONENT) {
            let zone = inv.labels.get("zone").cloned().unwrap_or_default();
            *per_zone.entry(zone).or_insert(0) += n;
        }
    }
    per_zone
}

/// The spread the manifest asks for (weights 2:1 of 3 instances).
fn wanted_spread() -> BTreeMap<String, u64> {
    [("east".to_string(), 2), ("west".to_string(), 1)].into()
}

/// The app runs `image` exactly: TARGET instances, the builtin http-server on one host, nothing
/// else anywhere. (The east/west split is checked separately, as a finding.)
fn runs_exactly(image: &str) -> impl Fn(&[Inventory]) -> Result<(), String> + '_ {
    move |invs: &[Inventory]| {
        let mut total = 0;
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
    let replicas: Vec<Process> = (0..2)
        .map(|i| {
            Process::wadm(
                &format!("replica{i}"),
                &[
                    "serve",
                    "--nats-url",
                    &url,
                    "--lattice",
                    LATTICE,
                    "--host-heartbeat",
                    &heartbeat,
                    "--resync-every",
                    "1s",
                ],
            )
        })
        .collect();
    // Hosts start once wadm's event stream exists, so their host_started is captured.
    let js = async_nats::jetstream::new(nats.clone());
    let stream = wait_for(DEADLINE, || async {
        js.get_stream(wadm_store::StoreNames::default().events_stream()).await.ok()
    })
    .await;
    assert!(stream.is_some(), "wadm creates its event stream: {}", replicas[0].output());

    // Three real hosts; their ids come from host_started (the CloudEvent source).
    let mut started = nats.subscribe(format!("wasmbus.evt.{LATTICE}.host_started")).await.unwrap();
    nats.flush().await.unwrap();
    let zones = ["east", "east", "west"];
    let hosts: Vec<Process> = zones
        .iter()
        .enumerate()
        .map(|(i, zone)| {
            let name = format!("host{i}-{zone}");
            Process::host(&bin, &name, &url, LATTICE, HEARTBEAT, &[("zone", *zone)])
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
                let answer = client.status(APP).await;
                let took = started.elapsed() - at;
                let (status, message) = match answer {
                    Ok(status) => {
                        (Some(status.status.status_type), status.status.message.to_string())
                    }
                    Err(e) => (None, e.to_string()),
                };
                polled.lock().unwrap().push(Polled { at, took, status, message });
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
        provider_inventory_peak: 0,
        findings: Vec::new(),
        notes: Vec::new(),
    };

    // 1. Deploy v1.
    run.begin("deploy v1", StatusType::Deployed);
    put_and_deploy(&run, &manifest("v1", &v1, http_port)).await;
    run.wait_status("deploy v1", StatusType::Deployed).await;
    run.wait_inventories("v1 runs exactly the target", runs_exactly(&v1)).await;
    run.settle();
    run.check_spread("v1").await;
    check_link_and_config(&mut run, http_port).await;
    run.observe_quiet().await;

    // 2. Upgrade to v2 (another image, same shape).
    run.begin("upgrade to v2", StatusType::Deployed);
    put_and_deploy(&run, &manifest("v2", &v2, http_port)).await;
    run.wait_inventories("v2 runs exactly the target", runs_exactly(&v2)).await;
    run.wait_status("upgrade to v2", StatusType::Deployed).await;
    run.settle();
    run.check_spread("v2").await;
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

    // The rollout (max_parallel 1, min_healthy_time 1 s): from each host's `component.update`
    // until 1 s after it reported the new image, at most one host is changing.
    let mut edges: Vec<(Duration, i32)> = Vec::new();
    let mut updates = 0;
    for r in &requests {
        if run.recorder.kind(&r.subject) != "component.update" {
            continue;
        }
        updates += 1;
        let host = r.subject.rsplit('.').next().unwrap_or("").to_string();
        let Ok(body) = serde_json::from_str::<Value>(&r.body) else { continue };
        let image = body["new_component_ref"].as_str().unwrap_or_default().to_string();
        let confirmed = run.recorder.events().into_iter().find(|e| {
            let Ok(event) = serde_json::from_str::<Value>(&e.body) else { return false };
            e.at >= r.at
                && e.subject.ends_with("component_scaled")
                && event["source"] == host.as_str()
                && event["data"]["image_ref"] == image.as_str()
        });
        let Some(confirmed) = confirmed else {
            findings.push(format!("update on {host} to {image} never confirmed"));
            continue;
        };
        edges.push((r.at, 1));
        edges.push((confirmed.at + Duration::from_secs(1), -1));
    }
    edges.sort();
    let (mut changing, mut rollout_peak) = (0, 0);
    for (_, delta) in &edges {
        changing += delta;
        rollout_peak = rollout_peak.max(changing);
    }
    eprintln!(
        "e2e_realhost: rollout: {updates} updates, at most {rollout_peak} host(s) changing at once (max_parallel 1)"
    );
    if rollout_peak > 1 {
        findings.push(format!("rollout: {rollout_peak} hosts changing at once, max_parallel 1"));
    }

    // Peak providers (target 1): commanded (start/stop), reported (events), polled.
    let mut commanded: BTreeSet<String> = BTreeSet::new();
    let mut provider_commanded_peak = 0;
    for r in &requests {
        let kind = run.recorder.kind(&r.subject);
        let Ok(body) = serde_json::from_str::<Value>(&r.body) else { continue };
        if body["provider_id"] != PROVIDER {
            continue;
        }
        let host = r.subject.rsplit('.').next().unwrap_or("").to_string();
        match kind.as_str() {
            "provider.start" => commanded.insert(host),
            "provider.stop" => commanded.remove(&host),
            _ => continue,
        };
        provider_commanded_peak = provider_commanded_peak.max(commanded.len() as u64);
    }
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut provider_reported_peak = 0;
    for e in run.recorder.events() {
        let Ok(event) = serde_json::from_str::<Value>(&e.body) else { continue };
        let host = event["source"].as_str().unwrap_or("").to_string();
        let short = e.subject.rsplit('.').next().unwrap_or("");
        match short {
            "provider_started" if event["data"]["provider_id"] == PROVIDER => {
                reported.insert(host);
            }
            "provider_stopped" if event["data"]["provider_id"] == PROVIDER => {
                reported.remove(&host);
            }
            "host_heartbeat" => {
                let runs = Inventory::from_json(&event["data"])
                    .is_some_and(|i| i.providers.contains_key(PROVIDER));
                if runs {
                    reported.insert(host);
                } else {
                    reported.remove(&host);
                }
            }
            "host_stopped" => {
                reported.remove(&host);
            }
            _ => continue,
        }
        provider_reported_peak = provider_reported_peak.max(reported.len() as u64);
    }
    eprintln!(
        "e2e_realhost: peak hosts running {PROVIDER} (target 1): commanded \
         {provider_commanded_peak}, reported by events {provider_reported_peak}, polled \
         inventories {}",
        run.provider_inventory_peak
    );
    for (what, peak) in [
        ("commanded", provider_commanded_peak),
        ("reported by events", provider_reported_peak),
        ("polled inventories", run.provider_inventory_peak),
    ] {
        if peak > 1 {
            findings.push(format!("peak providers {what}: {peak} > target 1"));
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
            let Some(status) = p.status else { continue };
            if status == epoch.target {
                // Reached once it was seen after leaving, or after the epoch settled.
                if left_target || epoch.settled.is_some_and(|s| p.at >= s) {
                    reached = true;
                }
            } else {
                left_target = true;
                if reached && matches!(status, StatusType::Reconciling | StatusType::Failed) {
                    transitions += 1;
                    findings.push(format!(
                        "status {:?} -> {:?} at {:.3}s during '{}' with no lattice change: {}",
                        epoch.target,
                        status,
                        p.at.as_secs_f64(),
                        epoch.name,
                        p.message
                    ));
                }
            }
        }
    }
    let failed_polls = polled.iter().filter(|p| p.status.is_none()).count();
    let slowest = polled.iter().map(|p| p.took).max().unwrap_or_default();
    eprintln!(
        "e2e_realhost: {} statuses polled ({failed_polls} failed, slowest answer {:.3}s), \
         {transitions} deployed->reconciling/failed flap(s)",
        polled.len(),
        slowest.as_secs_f64()
    );
    findings.extend(run.findings.iter().cloned());
    for note in &run.notes {
        eprintln!("e2e_realhost: note: {note}");
    }
    findings
}
