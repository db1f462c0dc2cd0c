//! A small load harness: one `nats-server`, one API server, and concurrent clients. Prints the
//! per-operation cost of put, get, list and deploy (and their ratio to get), plus how contended
//! puts to one application fare. Run: `cargo run -p wadm-server --example api_load [requests]`.

use std::time::{Duration, Instant};

use wadm_model::api::{
    DeployModelResponse, GetModelResponse, ListModelsResponse, PutModelResponse,
};
use wadm_server::{Server, ServerConfig};
use wadm_test_support::NatsServer;

fn manifest(name: &str, version: &str) -> String {
    format!(
        "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: {name}\n  annotations:\n    version: \"{version}\"\nspec:\n  components:\n    - name: c\n      type: component\n      properties:\n        image: ghcr.io/x/y:1\n      traits:\n        - type: spreadscaler\n          properties:\n            instances: 1\n"
    )
}

async fn timed<F, Fut>(label: &str, n: usize, concurrency: usize, f: F) -> Duration
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures::StreamExt;
    let start = Instant::now();
    futures::stream::iter((0..n).map(&f)).buffer_unordered(concurrency).collect::<Vec<_>>().await;
    let per_op = start.elapsed() / n as u32;
    println!("{label:<28} {n:>6} requests, {concurrency:>3} in flight: {per_op:>10.2?} per op");
    per_op
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(400);
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let config =
        ServerConfig { probe_window: Duration::from_millis(100), ..ServerConfig::default() };
    let server = Server::start(client.clone(), config).await.unwrap();
    tokio::spawn(server.run(std::future::pending()));
    let request = |subject: String, body: String| {
        let client = client.clone();
        async move { client.request(subject, body.into()).await.unwrap().payload }
    };

    let put = timed("put (distinct apps)", n, 16, |i| {
        let r = request("wadm.api.default.model.put".into(), manifest(&format!("app{i}"), "1"));
        async move {
            let p: PutModelResponse = serde_json::from_slice(&r.await).unwrap();
            assert_ne!(p.result, wadm_model::api::PutResult::Error, "{}", p.message);
        }
    })
    .await;
    let contended = timed("put (one app, contended)", n / 4, 16, |i| {
        let r = request("wadm.api.default.model.put".into(), manifest("hot", &format!("v{i}")));
        async move {
            let p: PutModelResponse = serde_json::from_slice(&r.await).unwrap();
            assert_ne!(p.result, wadm_model::api::PutResult::Error, "{}", p.message);
        }
    })
    .await;
    let get = timed("get.{name}", n, 16, |i| {
        let r = request(format!("wadm.api.default.model.get.app{i}"), String::new());
        async move {
            let g: GetModelResponse = serde_json::from_slice(&r.await).unwrap();
            assert_eq!(g.result, wadm_model::api::GetResult::Success);
        }
    })
    .await;
    let deploy = timed("deploy.{name}", n, 16, |i| {
        let r = request(format!("wadm.api.default.model.deploy.app{i}"), String::new());
        async move {
            let d: DeployModelResponse = serde_json::from_slice(&r.await).unwrap();
            assert_eq!(d.result, wadm_model::api::DeployResult::Acknowledged, "{}", d.message);
        }
    })
    .await;
    let list = timed(&format!("get (list of {} apps)", n + 1), 20, 4, |_| {
        let r = request("wadm.api.default.model.get".into(), String::new());
        async move {
            let l: ListModelsResponse = serde_json::from_slice(&r.await).unwrap();
            assert_eq!(l.models.len(), n + 1);
        }
    })
    .await;
    let ratio = |d: Duration| d.as_secs_f64() / get.as_secs_f64();
    println!(
        "relative to get: put {:.1}x, contended put {:.1}x, deploy {:.1}x, list {:.1}x",
        ratio(put),
        ratio(contended),
        ratio(deploy),
        ratio(list)
    );
}
