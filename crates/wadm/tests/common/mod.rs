//! Shared setup of the end-to-end tests: a real `nats-server -js`, N wadm replicas (API server +
//! runtime, each in its own tasks on its own NATS connection, as separate processes would be)
//! and a simulated lattice. Timings are short (1 s heartbeats, 500 ms resync, 2 s ack wait, 5 s
//! orphan grace) so failures are detected and recovered within seconds. Assertions read the
//! SIMULATED lattice.

#![allow(dead_code)]

pub mod child;
pub mod realhost;
pub mod served;
pub mod webdriver;

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wadm_model::StatusType;
use wadm_model::status::Status;
use wadm_runtime::RunConfig;
use wadm_server::{Server, ServerConfig};
use wadm_sim::{HostSpec, SimConfig, SimLattice};
use wadm_test_support::{NatsServer, wait_for};

pub const LATTICE: &str = "default";
/// The hosts' heartbeat interval; the runtime's lease is two of these plus [`LEASE_SLACK`].
pub const HEARTBEAT: Duration = Duration::from_secs(1);
pub const LEASE_SLACK: Duration = Duration::from_millis(500);
/// Generous deadline of every wait (typical convergence takes seconds).
pub const DEADLINE: Duration = Duration::from_secs(60);
/// The replicas' orphan grace period (`--orphan-grace`; 60 s in production).
pub const ORPHAN_GRACE: Duration = Duration::from_secs(5);

/// One wadm replica: API server and runtime on their own NATS connection.
pub struct Replica {
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    runtime: JoinHandle<()>,
}

impl Replica {
    pub async fn start(url: &str) -> Replica {
        Self::start_replicated(url, 1).await
    }

    /// A replica whose streams and buckets have `replicas` copies (a JetStream cluster).
    pub async fn start_replicated(url: &str, replicas: usize) -> Replica {
        Self::start_tuned(url, replicas, |_| {}).await
    }

    /// A replica whose runtime settings `tune` adjusts (after the test defaults).
    pub async fn start_tuned(
        url: &str,
        replicas: usize,
        tune: impl FnOnce(&mut RunConfig),
    ) -> Replica {
        let client = async_nats::connect(url).await.expect("replica connects");
        Self::start_on(client, replicas, tune).await
    }

    /// A replica on a connection the caller opened (e.g. to several servers of a cluster).
    pub async fn start_on(
        client: async_nats::Client,
        replicas: usize,
        tune: impl FnOnce(&mut RunConfig),
    ) -> Replica {
        let server_config = ServerConfig {
            probe_window: Duration::from_millis(300),
            replicas,
            ..ServerConfig::default()
        };
        server_config.known_lattices.insert(LATTICE);
        let server = Server::start(client.clone(), server_config).await.expect("server starts");
        let (stop, stopped) = oneshot::channel::<()>();
        let (server_stop_tx, server_stop) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            server
                .run(async move {
                    let _ = server_stop.await;
                })
                .await
                .expect("server ran");
        });
        let mut config = run_config();
        config.streams.replicas = replicas;
        tune(&mut config);
        let runtime = tokio::spawn(async move {
            wadm_runtime::run(config, client, async move {
                let _ = stopped.await;
                let _ = server_stop_tx.send(());
            })
            .await
            .expect("runtime ran");
        });
        Replica { stop: Some(stop), server, runtime }
    }

    /// Whether both parts still run (neither failed nor stopped).
    pub fn alive(&self) -> bool {
        !self.server.is_finished() && !self.runtime.is_finished()
    }

    /// Stop gracefully and wait for both parts.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.runtime).await;
        let _ = (&mut self.server).await;
    }

    /// Die at once, mid-step (like `kill -9`): its unacked messages go to the other replicas
    /// once their ack wait ends. Returns when both tasks are gone (their futures dropped).
    pub async fn kill(self) {
        self.server.abort();
        self.runtime.abort();
        let _ = self.server.await;
        let _ = self.runtime.await;
    }
}

fn run_config() -> RunConfig {
    let mut config = RunConfig::new(vec![LATTICE.into()]);
    config.runtime.lease.heartbeat_interval_ms = HEARTBEAT.as_millis() as u64;
    config.runtime.lease.slack_ms = LEASE_SLACK.as_millis() as u64;
    config.runtime.tick_every = Duration::from_millis(500);
    config.runtime.failure_backoff.base = Duration::from_millis(500);
    config.runtime.failure_backoff.max = Duration::from_secs(5);
    config.runtime.request_timeout = Duration::from_secs(2);
    config.streams.ack_wait = Duration::from_secs(2);
    config.poll_wait = Duration::from_millis(200);
    // Orphans are swept (the default) after [`ORPHAN_GRACE`], well within [`DEADLINE`].
    config.runtime.orphans.grace = ORPHAN_GRACE;
    config
}

/// NATS, replicas and simulated hosts.
pub struct Cluster {
    pub nats: NatsServer,
    pub replicas: Vec<Option<Replica>>,
    pub sim: SimLattice,
    pub client: wadm_client::Client,
}

impl Cluster {
    /// Start NATS, `replicas` wadm replicas and one simulated host per spec.
    pub async fn start(replicas: usize, hosts: Vec<HostSpec>) -> Cluster {
        Self::start_tuned(replicas, hosts, |_| {}).await
    }

    /// Like [`Cluster::start`], with every replica's runtime settings adjusted by `tune`.
    pub async fn start_tuned(
        replicas: usize,
        hosts: Vec<HostSpec>,
        tune: impl Fn(&mut RunConfig),
    ) -> Cluster {
        let nats = NatsServer::start();
        let mut started = Vec::new();
        for _ in 0..replicas {
            started.push(Some(Replica::start_tuned(&nats.url(), 1, &tune).await));
        }
        // Hosts start once the event stream exists, so their `host_started` is captured.
        let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        let stream = wait_for(DEADLINE, || async {
            js.get_stream(wadm_store::StoreNames::default().events_stream()).await.ok()
        })
        .await;
        assert!(stream.is_some(), "the runtime creates its event stream");
        let mut sim_config = SimConfig::new(nats.url(), LATTICE);
        sim_config.heartbeat_interval = HEARTBEAT;
        let sim = SimLattice::connect(sim_config).await.expect("sim connects");
        for spec in hosts {
            sim.add_host(spec).await;
        }
        let nats_client = async_nats::connect(nats.url()).await.unwrap();
        let client = wadm_client::Client::new(nats_client, LATTICE, None);
        Cluster { nats, replicas: started, sim, client }
    }

    /// Like [`Cluster::start`], but the hosts run BEFORE any wadm (their `host_started` was
    /// never captured): wadm learns them from heartbeats and discovery, as with a lattice that
    /// outlived its wadm.
    pub async fn start_hosts_first(replicas: usize, hosts: Vec<HostSpec>) -> Cluster {
        let nats = NatsServer::start();
        let mut sim_config = SimConfig::new(nats.url(), LATTICE);
        sim_config.heartbeat_interval = HEARTBEAT;
        let sim = SimLattice::connect(sim_config).await.expect("sim connects");
        for spec in hosts {
            sim.add_host(spec).await;
        }
        let mut started = Vec::new();
        for _ in 0..replicas {
            started.push(Some(Replica::start(&nats.url()).await));
        }
        let nats_client = async_nats::connect(nats.url()).await.unwrap();
        let client = wadm_client::Client::new(nats_client, LATTICE, None);
        Cluster { nats, replicas: started, sim, client }
    }

    /// `count` hosts labelled `zone=<zone>`.
    pub fn zone_hosts(zones: &[(&str, usize)]) -> Vec<HostSpec> {
        let mut specs = Vec::new();
        for (zone, count) in zones {
            for _ in 0..*count {
                specs.push(HostSpec::default().label("zone", *zone));
            }
        }
        specs
    }

    /// Store `yaml` as a new version and deploy it (no wait). A request nobody answered (a
    /// replica just died with it) is sent again, as a client would.
    pub async fn put_and_deploy(&self, yaml: &str) -> String {
        let put = wait_for(DEADLINE, || async {
            match self.client.put_manifest(yaml.as_bytes().to_vec(), None).await {
                Ok(put) => Some(Ok(put)),
                Err(e) if e.is_connection_problem() => None,
                Err(e) => Some(Err(e)),
            }
        })
        .await
        .expect("put answered")
        .expect("put");
        let name = put.name.clone();
        wait_for(DEADLINE, || async {
            match self.client.deploy(&name, Some(&put.current_version)).await {
                Ok(_) => Some(()),
                Err(e) if e.is_connection_problem() => None,
                Err(e) => panic!("deploy {name}: {e}"),
            }
        })
        .await
        .expect("deploy answered");
        name
    }

    /// `wadm <args…>` aimed at this cluster (its NATS URL and lattice), ready to run or spawn.
    pub fn wadm_command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wadm"));
        command.args(args).env("WADM_NATS_URL", self.nats.url()).env("WADM_LATTICE", LATTICE);
        command
    }

    /// Run `wadm <args…>` against this cluster; its exit status and everything it printed.
    pub async fn wadm(&self, args: &[&str]) -> std::process::Output {
        self.wadm_command(args).output().await.expect("wadm runs")
    }

    /// The application's status, when it has one.
    pub async fn status(&self, name: &str) -> Option<Status> {
        self.client.status(name).await.ok()
    }

    /// Wait until `name` has status `wanted`; the last status seen when it never does.
    pub async fn wait_status(&self, name: &str, wanted: StatusType) -> Result<Status, String> {
        let last = std::sync::Mutex::new(None);
        let found = wait_for(DEADLINE, || async {
            let status = self.status(name).await?;
            let hit = (status.status.status_type == wanted).then(|| status.clone());
            *last.lock().unwrap() = Some(status);
            hit
        })
        .await;
        found.ok_or_else(|| format!("{name} never {wanted:?}; last: {:?}", last.lock().unwrap()))
    }

    /// Wait until the simulated lattice satisfies `check`; panics with a dump otherwise.
    pub async fn wait_lattice(&self, what: &str, check: impl Fn(&LatticeView) -> bool) {
        let ok = wait_for(DEADLINE, || {
            let view = self.view();
            let ok = check(&view);
            async move { ok.then_some(()) }
        })
        .await;
        assert!(ok.is_some(), "{what}: the lattice never got there: {:#?}", self.view());
    }

    /// What the simulated lattice runs right now.
    pub fn view(&self) -> LatticeView {
        let mut view = LatticeView::default();
        for host in self.sim.hosts() {
            let Some(state) = self.sim.host_state(&host) else { continue };
            for (id, c) in &state.components {
                view.components.insert((host.clone(), id.clone()), (c.image_ref.clone(), c.count));
            }
            for (id, p) in &state.providers {
                view.providers.insert((host.clone(), id.clone()), p.image_ref.clone());
            }
            view.labels.insert(host.clone(), state.labels.clone());
        }
        view.links = self.sim.links();
        view.configs = self.sim.configs();
        view
    }

    /// Stop every replica gracefully, then the hosts.
    pub async fn shutdown(mut self) {
        for replica in self.replicas.iter_mut().filter_map(Option::take) {
            replica.stop().await;
        }
        self.sim.shutdown().await;
    }
}

/// A snapshot of the simulated lattice.
#[derive(Debug, Default, Clone)]
pub struct LatticeView {
    /// (host, component id) → (image, count).
    pub components: BTreeMap<(String, String), (String, u32)>,
    /// (host, provider id) → image.
    pub providers: BTreeMap<(String, String), String>,
    pub labels: BTreeMap<String, BTreeMap<String, String>>,
    pub links: Vec<wadm_protocol::Link>,
    pub configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl LatticeView {
    /// Total instances of `component_id` across hosts.
    pub fn count(&self, component_id: &str) -> u32 {
        self.components.iter().filter(|((_, id), _)| id == component_id).map(|(_, (_, n))| n).sum()
    }

    /// Instances of `component_id` on hosts whose label `key` is `value`.
    pub fn count_where(&self, component_id: &str, key: &str, value: &str) -> u32 {
        self.components
            .iter()
            .filter(|((host, id), _)| {
                id == component_id
                    && self.labels.get(host).and_then(|l| l.get(key)).map(String::as_str)
                        == Some(value)
            })
            .map(|(_, (_, n))| n)
            .sum()
    }

    /// Images `component_id` runs with (every host).
    pub fn images(&self, component_id: &str) -> Vec<String> {
        let mut images: Vec<String> = self
            .components
            .iter()
            .filter(|((_, id), _)| id == component_id)
            .map(|(_, (image, _))| image.clone())
            .collect();
        images.dedup();
        images
    }

    /// Hosts running provider `provider_id`.
    pub fn provider_hosts(&self, provider_id: &str) -> Vec<String> {
        self.providers.keys().filter(|(_, id)| id == provider_id).map(|(h, _)| h.clone()).collect()
    }

    /// Whether a link from `source` to `target` exists.
    pub fn linked(&self, source: &str, target: &str) -> bool {
        self.links.iter().any(|l| l.source_id == source && l.target == target)
    }

    /// Hosts running `component_id`.
    pub fn component_hosts(&self, component_id: &str) -> Vec<String> {
        self.components
            .iter()
            .filter(|((_, id), (_, n))| id == component_id && *n > 0)
            .map(|((h, _), _)| h.clone())
            .collect()
    }
}

/// Wait until wadm's view of the lattice (`lattice.hosts`) lists `hosts` hosts: a burst that
/// starts earlier places on the hosts known so far, and the spread then moves instances onto a
/// host heard of later — correct requests that a test counting one per placement would miscount.
pub async fn wait_hosts_known(client: &wadm_client::Client, hosts: usize) {
    let known = wait_for(DEADLINE, || async {
        let listed = client.lattice_hosts().await.ok()?;
        (listed.len() == hosts).then_some(())
    })
    .await;
    assert!(known.is_some(), "wadm never listed the {hosts} hosts");
}

/// `app{i}`: one component `c` (image `ghcr.io/example/c{i}:1.0.0`) with one scaler trait,
/// `trait_yaml` (indented for the trait list), e.g. [`spread_trait`].
pub fn numbered_app(i: usize, trait_yaml: &str) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: app{i}
  annotations:
    version: v1
spec:
  components:
    - name: c
      type: component
      properties:
        image: ghcr.io/example/c{i}:1.0.0
      traits:
        {trait_yaml}
"#
    )
}

/// A spreadscaler trait of `instances`, as [`numbered_app`] takes it.
pub fn spread_trait(instances: u32) -> String {
    format!("- type: spreadscaler\n          properties:\n            instances: {instances}")
}

/// An application `name` at `version`: a provider `http` linked to a component `web` (image
/// `web_image`) with an owned listen config, the component scaled by a spreadscaler whose
/// properties are `scaler` (YAML lines at the depth of `instances:`). The shape several e2e
/// tests deploy.
pub fn linked_web_app(name: &str, version: &str, web_image: &str, scaler: &str) -> String {
    linked_web_app_at(name, version, web_image, "127.0.0.1:8080", scaler)
}

/// [`linked_web_app`] whose listen config has `ADDRESS: "{address}"`.
pub fn linked_web_app_at(
    name: &str,
    version: &str,
    web_image: &str,
    address: &str,
    scaler: &str,
) -> String {
    let scaler: String = scaler.lines().map(|l| format!("            {l}\n")).collect();
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  annotations:
    version: {version}
spec:
  components:
    - name: http
      type: capability
      properties:
        image: ghcr.io/example/http:1.0.0
      traits:
        - type: link
          properties:
            target: {{name: web}}
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
            source:
              config:
                - name: listen
                  properties:
                    ADDRESS: "{address}"
    - name: web
      type: component
      properties:
        image: {web_image}
      traits:
        - type: spreadscaler
          properties:
{scaler}"#
    )
}

/// Application `name`: one component `web` (image `ghcr.io/example/web:1.0.0`) on `instances`
/// instances.
pub fn web_app(name: &str, instances: u32) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  annotations:
    version: v1
spec:
  components:
    - name: web
      type: component
      properties:
        image: ghcr.io/example/web:1.0.0
      traits:
        - type: spreadscaler
          properties:
            instances: {instances}
"#
    )
}

/// [`web_app`] and a provider `http` (image `ghcr.io/example/http:1.0.0`), which comes last and
/// without traits (append them to give it some).
pub fn web_http_app(name: &str, instances: u32) -> String {
    web_app(name, instances)
        + r#"    - name: http
      type: capability
      properties:
        image: ghcr.io/example/http:1.0.0
"#
}

/// Application `name`: a component `api` (image `ghcr.io/example/api:1.0.0`) on 6 instances
/// spread 66:33 over `zone: east` and `zone: west` hosts, linked to a provider `store` (image
/// `ghcr.io/example/store:1.0.0`), which comes last and without traits (append them to place it).
pub fn weighted_api_app(name: &str) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  annotations:
    version: v1
spec:
  components:
    - name: api
      type: component
      properties:
        image: ghcr.io/example/api:1.0.0
      traits:
        - type: spreadscaler
          properties:
            instances: 6
            spread:
              - name: east
                weight: 66
                requirements: {{zone: east}}
              - name: west
                weight: 33
                requirements: {{zone: west}}
        - type: link
          properties:
            target: {{name: store}}
            namespace: wasi
            package: keyvalue
            interfaces: [atomics]
    - name: store
      type: capability
      properties:
        image: ghcr.io/example/store:1.0.0
"#
    )
}

/// Shared application `name` (annotated `experimental.wasmcloud.dev/shared`): one provider
/// `httpserver` (image `ghcr.io/example/http:1.0.0`) on one instance, for [`shared_user_app`]s.
pub fn shared_http_app(name: &str) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  annotations:
    version: v1
    experimental.wasmcloud.dev/shared: "true"
spec:
  components:
    - name: httpserver
      type: capability
      properties:
        image: ghcr.io/example/http:1.0.0
      traits:
        - type: spreadscaler
          properties:
            instances: 1
"#
    )
}

/// A user `name` of [`shared_http_app`] `shared`: its own component `handler` (image
/// `ghcr.io/example/{name}:1.0.0`), linked from the shared provider. The link is named after the
/// app, because links from one source with the same (namespace, package, name) are one link in
/// the lattice.
pub fn shared_user_app(name: &str, shared: &str) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  annotations:
    version: v1
spec:
  components:
    - name: handler
      type: component
      properties:
        image: ghcr.io/example/{name}:1.0.0
      traits:
        - type: spreadscaler
          properties:
            instances: 1
    - name: http
      type: capability
      properties:
        application:
          name: {shared}
          component: httpserver
      traits:
        - type: link
          properties:
            target: {{name: handler}}
            name: {name}
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
"#
    )
}

/// `linked_web_app`'s scaler: `instances` split 2:1 over `zone: east` and `zone: west` hosts.
pub fn east_west_spread(instances: u32) -> String {
    format!(
        "instances: {instances}\nspread:\n  - name: east\n    requirements: {{zone: east}}\n    \
         weight: 2\n  - name: west\n    requirements: {{zone: west}}\n    weight: 1"
    )
}

/// Application `rolling` at `version`: one component `web` (image `image`) on `instances`
/// instances under `rollout: {max_parallel: 2, min_healthy_time: 1s}` plus `extra` rollout
/// properties (one `key: value` per line). The rollout tests deploy it.
pub fn rolling_app(version: &str, image: &str, instances: usize, extra: &str) -> String {
    let extra: String = extra.lines().map(|l| format!("            {l}\n")).collect();
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: rolling
  annotations:
    version: {version}
spec:
  components:
    - name: web
      type: component
      properties:
        image: {image}
      traits:
        - type: spreadscaler
          properties:
            instances: {instances}
        - type: rollout
          properties:
            max_parallel: 2
            min_healthy_time: 1s
{extra}"#
    )
}
