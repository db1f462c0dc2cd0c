//! Test support shared by every wadm test that touches NATS.
//!
//! [`NatsServer`] runs a real `nats-server -js` bound to 127.0.0.1 on a free port with its own
//! temporary store directory, waits until it accepts connections, and on drop stops the process and
//! removes the directory. The process itself is managed by `wadm-nats-server`.
//!
//! [`wait_until`] and [`wait_for`] poll a condition with a deadline: tests never sleep to
//! synchronise.

#![warn(missing_docs, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wadm_nats_server::{LaunchOptions, NatsServerProcess};

mod cluster;
pub use cluster::NatsCluster;

pub use wadm_nats_server::LaunchError as HarnessError;

const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `nats-server -js` on 127.0.0.1. Stopped and cleaned up on drop.
pub struct NatsServer {
    process: Option<NatsServerProcess>,
    port: u16,
    binary: PathBuf,
    extra_args: Vec<String>,
    // Declared last: dropped after the process is killed.
    store: tempfile::TempDir,
}

impl NatsServer {
    /// Start a server with JetStream on a free port; panics with a clear message on failure.
    pub fn start() -> NatsServer {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start a server with JetStream on a free port.
    pub fn try_start() -> Result<NatsServer, HarnessError> {
        Self::try_start_with(Vec::new())
    }

    /// Start a server with JetStream on a free port and more command-line arguments (e.g.
    /// `["-c", "auth.conf"]`, `["--user", "u", "--pass", "p"]`); panics on failure. The
    /// arguments stay with the server across [`NatsServer::restart`].
    pub fn start_with(extra_args: Vec<String>) -> NatsServer {
        Self::try_start_with(extra_args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`NatsServer::start_with`], returning the failure.
    pub fn try_start_with(extra_args: Vec<String>) -> Result<NatsServer, HarnessError> {
        let binary = wadm_nats_server::find_binary()?;
        let store = tempfile::Builder::new().prefix("wadm-nats-").tempdir()?;
        let process = NatsServerProcess::launch(&LaunchOptions {
            binary: binary.clone(),
            port: 0,
            store_dir: store.path().to_path_buf(),
            ready_timeout: READY_TIMEOUT,
            extra_args: extra_args.clone(),
        })?;
        Ok(NatsServer { port: process.port(), process: Some(process), binary, store, extra_args })
    }

    /// `nats://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (kept across [`NatsServer::restart`]).
    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// Send the server process `signal` (`"STOP"` freezes it: its connections stay open but
    /// nothing is answered; `"CONT"` lets it go on). A frozen server is still killed on drop.
    pub fn signal(&self, signal: &str) -> std::io::Result<()> {
        match &self.process {
            Some(process) => process.signal(signal),
            None => Err(std::io::Error::other("the NATS server is stopped")),
        }
    }

    /// Stop the server (SIGKILL) and wait for it to exit. The store directory is kept.
    pub fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill();
        }
    }

    /// Stop the server if running, then start it again on the same port and store.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop();
        let options = LaunchOptions {
            binary: self.binary.clone(),
            port: self.port,
            store_dir: self.store.path().to_path_buf(),
            ready_timeout: READY_TIMEOUT,
            extra_args: self.extra_args.clone(),
        };
        // The port can stay busy for a moment after the kill: retry until a deadline.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match NatsServerProcess::launch(&options) {
                Ok(process) => {
                    self.process = Some(process);
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The path of a committed test-only TLS file (`ca.pem`, `server.pem`, `server-key.pem`,
/// `client.pem`, `client-key.pem`; see `fixtures/tls/README.md`).
pub fn tls_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls").join(name)
}

/// Poll `condition` every few milliseconds until it holds or `timeout` passes. Returns whether it
/// held. For synchronous conditions; async tests use [`wait_for`].
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Async polling: evaluate `condition` until it yields `Some` or `timeout` passes.
/// Usage: `wait_for(Duration::from_secs(5), || async { check().await.then_some(()) }).await`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut condition: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = condition().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A one-component application manifest (YAML): the `http-hello-world` component under a
/// spreadscaler of `instances`, named `name` at `version`. Shared by the client, CLI and bench
/// tests that only need some valid application.
pub fn hello_manifest(name: &str, version: &str, instances: u32) -> String {
    format!(
        "apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  annotations:
    version: {version}
spec:
  components:
    - name: hello
      type: component
      properties:
        image: ghcr.io/wasmcloud/components/http-hello-world-rust:0.1.0
      traits:
        - type: spreadscaler
          properties:
            instances: {instances}
"
    )
}
