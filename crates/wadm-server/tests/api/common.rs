//! Shared helpers: a NATS server plus one or more API servers, and request shortcuts.

use std::time::Duration;

use async_nats::HeaderMap;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wadm_server::{Server, ServerConfig};
use wadm_test_support::NatsServer;

pub const PREFIX: &str = "wadm.api";

/// A running API server task and the switch that stops it.
pub struct Running {
    pub stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<Result<(), wadm_server::ServerError>>,
}

impl Running {
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().expect("not stopped yet").send(());
        self.task.await.expect("server task").expect("server ran");
    }
}

pub fn test_config() -> ServerConfig {
    ServerConfig { probe_window: Duration::from_millis(300), ..ServerConfig::default() }
}

pub async fn start_server(nats: &NatsServer, config: ServerConfig) -> Running {
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let server = Server::start(client, config).await.expect("server starts");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running { stop: Some(stop), task }
}

/// A NATS server, one API server and a client (the first two are kept alive by the value).
pub struct Env {
    _nats: NatsServer,
    _server: Running,
    pub client: async_nats::Client,
}

impl Env {
    pub async fn start() -> Env {
        Self::with_config(test_config()).await
    }

    pub async fn with_config(config: ServerConfig) -> Env {
        let nats = NatsServer::start();
        let server = start_server(&nats, config).await;
        let client = async_nats::connect(nats.url()).await.expect("connect");
        Env { _nats: nats, _server: server, client }
    }

    /// Send a request on `{PREFIX}.{suffix}` and decode the reply.
    pub async fn req<T: DeserializeOwned>(&self, suffix: &str, body: &str) -> T {
        self.req_with(suffix, HeaderMap::new(), body).await
    }

    pub async fn req_with<T: DeserializeOwned>(
        &self,
        suffix: &str,
        headers: HeaderMap,
        body: &str,
    ) -> T {
        let reply = self
            .client
            .request_with_headers(format!("{PREFIX}.{suffix}"), headers, body.to_string().into())
            .await
            .unwrap_or_else(|e| panic!("request {suffix}: {e}"));
        serde_json::from_slice(&reply.payload).unwrap_or_else(|e| {
            panic!(
                "reply to {suffix} does not decode ({e}): {}",
                String::from_utf8_lossy(&reply.payload)
            )
        })
    }

    /// `model.put` with a JSON or YAML body, as an actor.
    pub async fn put_as(
        &self,
        lattice: &str,
        manifest: &str,
        actor: &str,
    ) -> wadm_model::api::PutModelResponse {
        let mut headers = HeaderMap::new();
        headers.insert("Wadm-Actor", actor);
        self.req_with(&format!("{lattice}.model.put"), headers, manifest).await
    }
}

/// A small valid manifest in YAML; `version: None` leaves the annotation out.
pub fn manifest(name: &str, version: Option<&str>) -> String {
    manifest_with(name, version, "")
}

/// A manifest whose single component has extra properties lines (e.g. `id: x`).
pub fn manifest_with(name: &str, version: Option<&str>, extra_props: &str) -> String {
    let version = version.map(|v| format!("\n    version: \"{v}\"")).unwrap_or_default();
    let extra =
        if extra_props.is_empty() { String::new() } else { format!("\n        {extra_props}") };
    format!(
        r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  annotations:
    description: "test app {name}"{version}
spec:
  components:
    - name: hello
      type: component
      properties:
        image: ghcr.io/wasmcloud/components/http-hello-world-rust:0.1.0{extra}
      traits:
        - type: spreadscaler
          properties:
            instances: 1
"#
    )
}
