//! End to end on a real NATS: the API server (in process), the runtime and simulated hosts.
//! Deploying the hello-world manifest makes the simulated lattice run it, and its status
//! becomes `deployed`.

use std::time::Duration;

use wadm_model::StatusType;
use wadm_model::api::StatusResponse;
use wadm_runtime::{RunConfig, run};
use wadm_server::{Server, ServerConfig};
use wadm_sim::{HostSpec, SimConfig, SimLattice};
use wadm_test_support::{NatsServer, wait_for};

const HELLO: &str = include_str!("../../../../shared/manifests/hello.yaml");

async fn request(client: &async_nats::Client, subject: &str, body: &[u8]) -> serde_json::Value {
    let reply = client.request(subject.to_string(), body.to_vec().into()).await.expect("reply");
    serde_json::from_slice(&reply.payload).expect("JSON reply")
}

#[tokio::test]
async fn deploying_hello_runs_it_on_simulated_hosts_and_reports_deployed() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();

    let server_config =
        ServerConfig { probe_window: Duration::from_millis(300), ..ServerConfig::default() };
    let server = Server::start(client.clone(), server_config).await.expect("server starts");
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server_task = tokio::spawn(server.run(async move {
        let _ = server_stopped.await;
    }));

    let mut config = RunConfig::new(vec!["default".into()]);
    config.runtime.tick_every = Duration::from_secs(1);
    config.poll_wait = Duration::from_millis(200);
    config.discovery.gather_window = Duration::from_millis(500);
    let (stop_runtime, runtime_stopped) = tokio::sync::oneshot::channel::<()>();
    let runtime_task = tokio::spawn(run(config, client.clone(), async move {
        let _ = runtime_stopped.await;
    }));

    let mut sim_config = SimConfig::new(nats.url(), "default");
    sim_config.heartbeat_interval = Duration::from_secs(2);
    let sim = SimLattice::connect(sim_config).await.expect("sim connects");
    let hosts = [sim.add_host(HostSpec::default()).await, sim.add_host(HostSpec::default()).await];

    let put = request(&client, "wadm.api.default.model.put", HELLO.as_bytes()).await;
    assert_eq!(put["result"], "created", "{put}");
    let deploy = request(&client, "wadm.api.default.model.deploy.hello-world", b"{}").await;
    assert_eq!(deploy["result"], "acknowledged", "{deploy}");

    let running = wait_for(Duration::from_secs(60), || {
        let sim = &sim;
        let hosts = &hosts;
        async move {
            let (mut components, mut providers) = (0, 0);
            for host in hosts {
                let inventory = sim.inventory(host)?;
                components += inventory.components.iter().map(|c| c.max_instances).sum::<u32>();
                providers += inventory.providers.len();
            }
            let linked = !sim.links().is_empty();
            (components == 1 && providers == 1 && linked).then_some(())
        }
    })
    .await;
    assert!(
        running.is_some(),
        "the lattice runs hello-world: {:?}",
        hosts.map(|h| sim.inventory(&h))
    );
    let configs = sim.configs();
    let address = configs.values().filter_map(|c| c.get("ADDRESS")).next();
    assert_eq!(address.map(String::as_str), Some("127.0.0.1:8080"), "{configs:?}");

    let deployed = wait_for(Duration::from_secs(60), || {
        let client = client.clone();
        async move {
            let reply = client
                .request("wadm.api.default.model.status.hello-world", "".into())
                .await
                .ok()?;
            let status: StatusResponse = serde_json::from_slice(&reply.payload).ok()?;
            let status = status.status?;
            (status.status.status_type == StatusType::Deployed).then_some(status)
        }
    })
    .await;
    assert!(deployed.is_some(), "status becomes deployed");

    let _ = stop_runtime.send(());
    runtime_task.await.unwrap().expect("runtime ran");
    let _ = stop_server.send(());
    server_task.await.unwrap().expect("server ran");
    sim.shutdown().await;
}
