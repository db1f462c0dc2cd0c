//! End to end on a real NATS: the API server (in process), the runtime and simulated hosts
//! (here, where both are dependencies: the runtime and the server do not know each other).
//! Deploying the hello-world manifest makes the simulated lattice run it, and its status
//! becomes `deployed`.

use std::time::Duration;

use wadm_model::StatusType;
use wadm_model::api::StatusResponse;
use wadm_runtime::{RunConfig, run};
use wadm_server::{Server, ServerConfig};
use wadm_sim::{HostSpec, SimConfig, SimLattice};
use wadm_store::StoreNames;
use wadm_store::observed::{KvStateStore, StateStore};
use wadm_test_support::{NatsServer, wait_for};

const HELLO: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/manifests/hello.yaml"));

struct Stopper(
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), wadm_runtime::RunError>>,
);

impl Stopper {
    async fn stop(self) {
        let _ = self.0.send(());
        self.1.await.unwrap().expect("runtime ran");
    }
}

fn start_runtime(client: &async_nats::Client) -> Stopper {
    let mut config = RunConfig::new(vec!["default".into()]);
    config.runtime.tick_every = Duration::from_secs(1);
    config.poll_wait = Duration::from_millis(200);
    config.discovery.gather_window = Duration::from_millis(500);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(config, client.clone(), async move {
        let _ = stopped.await;
    }));
    Stopper(stop, task)
}

/// Instances of components and providers, and links, the simulated lattice runs.
fn running(sim: &SimLattice, hosts: &[String]) -> (u32, usize, usize) {
    let (mut components, mut providers) = (0, 0);
    for host in hosts {
        if let Some(inventory) = sim.inventory(host) {
            components += inventory.components.iter().map(|c| c.max_instances).sum::<u32>();
            providers += inventory.providers.len();
        }
    }
    (components, providers, sim.links().len())
}

async fn status_is(client: &async_nats::Client, wanted: StatusType) -> Option<()> {
    let reply =
        client.request("wadm.api.default.model.status.hello-world", "".into()).await.ok()?;
    let status: StatusResponse = serde_json::from_slice(&reply.payload).ok()?;
    (status.status?.status.status_type == wanted).then_some(())
}

async fn request(client: &async_nats::Client, subject: &str, body: &[u8]) -> serde_json::Value {
    let reply = client.request(subject.to_string(), body.to_vec().into()).await.expect("reply");
    serde_json::from_slice(&reply.payload).expect("JSON reply")
}

async fn start_server(
    client: &async_nats::Client,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<Result<(), wadm_server::ServerError>>)
{
    let config =
        ServerConfig { probe_window: Duration::from_millis(300), ..ServerConfig::default() };
    let server = Server::start(client.clone(), config).await.expect("server starts");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

async fn sim_with_two_hosts(nats: &NatsServer) -> (SimLattice, Vec<String>) {
    let mut sim_config = SimConfig::new(nats.url(), "default");
    sim_config.heartbeat_interval = Duration::from_secs(2);
    let sim = SimLattice::connect(sim_config).await.expect("sim connects");
    let hosts =
        vec![sim.add_host(HostSpec::default()).await, sim.add_host(HostSpec::default()).await];
    (sim, hosts)
}

async fn put_and_deploy(client: &async_nats::Client) {
    let put = request(client, "wadm.api.default.model.put", HELLO.as_bytes()).await;
    assert_eq!(put["result"], "created", "{put}");
    let deploy = request(client, "wadm.api.default.model.deploy.hello-world", b"{}").await;
    assert_eq!(deploy["result"], "acknowledged", "{deploy}");
}

const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn deploying_hello_runs_it_on_simulated_hosts_and_undeploying_removes_it() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let (stop_server, server_task) = start_server(&client).await;
    let runtime = start_runtime(&client);
    let (sim, hosts) = sim_with_two_hosts(&nats).await;
    put_and_deploy(&client).await;

    let up = wait_for(DEADLINE, || async { (running(&sim, &hosts) == (1, 1, 1)).then_some(()) });
    assert!(up.await.is_some(), "the lattice runs hello-world: {:?}", running(&sim, &hosts));
    let configs = sim.configs();
    let address = configs.values().filter_map(|c| c.get("ADDRESS")).next();
    assert_eq!(address.map(String::as_str), Some("127.0.0.1:8080"), "{configs:?}");
    let deployed = wait_for(DEADLINE, || status_is(&client, StatusType::Deployed)).await;
    assert!(deployed.is_some(), "status becomes deployed");

    // Observed state is in the state bucket, one key per entity, readable by any replica.
    let js = async_nats::jetstream::new(client.clone());
    let stored = KvStateStore::open(&js, &StoreNames::default().observed_bucket())
        .await
        .expect("state bucket");
    let persisted = wait_for(DEADLINE, || async {
        let state = stored.load("default").await.ok()?;
        let on_hosts: u32 =
            state.hosts.values().flat_map(|h| h.components.values()).map(|c| c.count).sum();
        let known = hosts.iter().all(|h| state.hosts.contains_key(h));
        let stamped = hosts.iter().all(|h| state.bookkeeping.hosts.contains_key(h));
        (known && stamped && on_hosts == 1).then_some(())
    });
    assert!(persisted.await.is_some(), "hosts, their snapshot stamps and the component stored");

    let undeploy = request(&client, "wadm.api.default.model.undeploy.hello-world", b"{}").await;
    assert_eq!(undeploy["result"], "acknowledged", "{undeploy}");
    let down = wait_for(DEADLINE, || async { (running(&sim, &hosts) == (0, 0, 0)).then_some(()) });
    assert!(down.await.is_some(), "undeploy removed everything: {:?}", running(&sim, &hosts));

    runtime.stop().await;
    let _ = stop_server.send(());
    server_task.await.unwrap().expect("server ran");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_deploy_made_while_no_runtime_runs_is_carried_out_when_one_starts() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    // A first run creates the streams; then no runtime runs.
    start_runtime(&client).stop().await;
    let (stop_server, server_task) = start_server(&client).await;
    let (sim, hosts) = sim_with_two_hosts(&nats).await;
    put_and_deploy(&client).await;
    assert_eq!(running(&sim, &hosts), (0, 0, 0));

    let runtime = start_runtime(&client);
    let up = wait_for(DEADLINE, || async { (running(&sim, &hosts) == (1, 1, 1)).then_some(()) });
    assert!(up.await.is_some(), "the lattice runs hello-world: {:?}", running(&sim, &hosts));
    let deployed = wait_for(DEADLINE, || status_is(&client, StatusType::Deployed)).await;
    assert!(deployed.is_some(), "status becomes deployed");

    runtime.stop().await;
    let _ = stop_server.send(());
    server_task.await.unwrap().expect("server ran");
    sim.shutdown().await;
}
